//! `guardrail check` as a new user runs it: nothing checked is never a pass, policies given among the
//! paths are used, the configuration of the App applies, reports go where they are asked to, and a
//! baseline survives lines moving. Every case runs the real binary in a folder of its own.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::cli::{SEEN_CONSTRAINT, SEEN_TEMPLATE};
use crate::report::validate_sarif;

/// The binary in `dir` with `args`: exit code, stdout, stderr.
pub fn guardrail_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("GUARDRAIL_POLICY")
        .env_remove("GITHUB_REPOSITORY")
        .env_remove("CI_PROJECT_PATH")
        .output()
        .expect("run guardrail");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A repository (a folder with `.git`) holding `files`.
pub fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn pod(name: &str, image: &str, privileged: bool) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  containers:\n    - name: app\n      image: {image}\n      securityContext:\n        privileged: {privileged}\n      resources:\n        limits: {{cpu: 100m, memory: 64Mi}}\n"
    )
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn policies_of(findings: &Value) -> Vec<String> {
    findings.as_array().unwrap().iter().map(|f| f["policy"].as_str().unwrap().to_string()).collect()
}

fn last_line(text: &str) -> &str {
    text.trim_end().lines().last().unwrap_or("")
}

// ---- no silent pass ----------------------------------------------------------------------------

#[test]
fn nothing_to_check_is_an_error_that_says_what_was_missing() {
    let dir = repo(&[
        ("empty/.keep", ""),
        ("values/values.yaml", "replicas: 3\nimage: nginx\n"),
        ("values/ci.yml", "stages: [test]\n"),
        ("k8s/pod.yaml", &pod("web", "nginx:1.27", true)),
        ("nopolicy/readme.yaml", "title: not a policy\n"),
        ("emptypolicy/.keep", ""),
        ("templates-only/template.yaml", SEEN_TEMPLATE),
    ]);
    let d = dir.path();
    // An empty folder, and a folder of YAML that is not Kubernetes objects.
    let (code, _, stderr) = guardrail_in(d, &["check", "empty"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no Kubernetes objects were checked: no manifest files"), "{stderr}");
    let (code, stdout, stderr) = guardrail_in(d, &["check", "values"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("the 2 file(s) read hold none"), "{stderr}");
    assert_eq!(last_line(&stdout), "no findings, 1 error; 2 files and 0 objects checked against 9 policies");
    // No policies at all, an empty --policy folder, a --policy folder without a policy in it.
    let (code, _, stderr) = guardrail_in(d, &["check", "k8s", "--no-builtin"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no policies to check against: --no-builtin"), "{stderr}");
    for folder in ["emptypolicy", "nopolicy"] {
        let (code, _, stderr) = guardrail_in(d, &["check", "k8s", "--no-builtin", "--policy", folder]);
        assert_eq!(code, 2);
        assert!(stderr.contains(&format!("--policy {folder} holds no policy")), "{stderr}");
        // ...with the built-ins too: a --policy path that holds nothing is a mistake either way.
        let (code, _, _) = guardrail_in(d, &["check", "k8s", "--policy", folder]);
        assert_eq!(code, 2);
    }
    // Templates but no Constraint: nothing would be evaluated.
    let (code, _, stderr) = guardrail_in(d, &["check", "k8s", "--no-builtin", "--policy", "templates-only"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("1 ConstraintTemplate(s) (TestSeen) but no Constraint"), "{stderr}");
    // The control: the same manifest with policies fails on its finding.
    let (code, stdout, _) = guardrail_in(d, &["check", "k8s"]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        last_line(&stdout),
        "1 finding (1 deny, 0 warn, 0 info) in 1 file; 1 file and 1 object checked against 9 policies"
    );
    // Standard input that holds nothing (a chart that renders no object) is no pass either.
    let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["check", "-"])
        .current_dir(d)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn policy_documents_among_the_paths_are_policies_as_gator_takes_them() {
    let constraint = SEEN_CONSTRAINT;
    let mixed = format!("{}---\n{constraint}", pod("other", "nginx:1", false));
    let dir = repo(&[
        ("templates/seen.yaml", SEEN_TEMPLATE),
        ("constraints/seen.yaml", constraint),
        ("manifests/pod.yaml", &pod("web", "nginx:1", false)),
        ("manifests/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: shop}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: nginx}]\n"),
        ("mixed/all.yaml", &format!("{SEEN_TEMPLATE}---\n{mixed}")),
    ]);
    let d = dir.path();
    let (code, stdout, stderr) =
        guardrail_in(d, &["check", "templates", "constraints", "manifests", "--no-builtin", "-f", "json"]);
    assert_eq!(code, 1, "{stderr}");
    let doc = json(&stdout);
    let messages: Vec<&str> =
        doc["findings"].as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap()).collect();
    // The Pod, and the Pod the Deployment implies; never the template or the constraint themselves.
    assert_eq!(messages, ["[Implied by expand-workloads] seen Pod d-pod", "seen Pod web"]);
    assert_eq!(doc["summary"]["files"], 2, "the policy files are not manifests");
    assert_eq!(doc["summary"]["objects"], 2);
    assert_eq!(doc["summary"]["policies"], 1);
    // One file with the template, the constraint and a Pod: the Pod alone is an object.
    let (code, stdout, stderr) = guardrail_in(d, &["check", "mixed", "--no-builtin", "-f", "json"]);
    assert_eq!(code, 1, "{stderr}");
    let doc = json(&stdout);
    assert_eq!(policies_of(&doc["findings"]), ["TestSeen"]);
    assert_eq!(doc["summary"]["objects"], 1);
    // With the built-ins: no built-in reports the policy documents as objects either (an
    // ExpansionTemplate's v1alpha1 API would be an alpha API to no-alpha-features).
    let expansion = "apiVersion: expansion.gatekeeper.sh/v1alpha1\nkind: ExpansionTemplate\nmetadata:\n  name: expand-deployments\nspec:\n  applyTo:\n    - groups: [\"apps\"]\n      kinds: [\"Deployment\"]\n      versions: [\"v1\"]\n  templateSource: \"spec.template\"\n  generatedGVK:\n    kind: \"Pod\"\n    group: \"\"\n    version: \"v1\"\n";
    std::fs::write(d.join("manifests/expansion.yaml"), expansion).unwrap();
    let (_, stdout, _) = guardrail_in(d, &["check", "manifests", "-f", "json"]);
    let doc = json(&stdout);
    let about_policies =
        doc["findings"].as_array().unwrap().iter().filter(|f| f["file"] == "manifests/expansion.yaml").count();
    assert_eq!(about_policies, 0, "{doc}");
    let implied: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["message"].as_str())
        .filter(|m| m.contains("Implied by"))
        .collect();
    assert!(
        implied.iter().all(|m| m.contains("[Implied by expand-deployments]")),
        "the ExpansionTemplate given as a path is used: {implied:?}"
    );
}

// ---- one configuration for the CLI and the App ------------------------------------------------

#[test]
fn the_repository_configuration_applies_as_in_the_app() {
    let dir = repo(&[
        (".github/guardrail.yml", "exclude: [\"**/testdata/**\"]\nnamespace: payments\ndisable: [resource-limits]\n"),
        (
            "deploy/app/pod.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: app, image: nginx}]\n",
        ),
        ("deploy/testdata/bad.yaml", &pod("bad", "nginx", true)),
    ]);
    let d = dir.path();
    let check = |cwd: &Path, args: &[&str]| {
        let mut all = vec!["check", "-f", "json"];
        all.extend(args);
        let (code, stdout, stderr) = guardrail_in(cwd, &all);
        assert_ne!(code, 2, "{stderr}");
        json(&stdout)
    };
    // From the root: testdata excluded; resource-limits disabled; the namespace default applied.
    let doc = check(d, &["deploy"]);
    assert_eq!(doc["findings"], serde_json::json!([]), "{doc}");
    assert_eq!(doc["summary"]["files"], 1);
    // From a subfolder, the configuration at the repository root still applies.
    let doc = check(&d.join("deploy"), &["."]);
    assert_eq!(doc["findings"], serde_json::json!([]), "{doc}");
    // Without it: the excluded privileged Pod and the missing limits are back.
    let doc = check(d, &["deploy", "--no-config"]);
    let policies: std::collections::BTreeSet<String> = policies_of(&doc["findings"]).into_iter().collect();
    assert_eq!(policies, ["privileged-containers".to_string(), "resource-limits".to_string()].into());
    // --config names another file; its globs are relative to the folder holding `.github`.
    std::fs::write(d.join("strict.yml"), "include: [\"deploy/testdata/**\"]\n").unwrap();
    let doc = check(d, &["deploy", "--config", "strict.yml"]);
    assert_eq!(policies_of(&doc["findings"]), ["privileged-containers"]);
    // A broken configuration stops the run, as it stops the App's check.
    std::fs::write(d.join("broken.yml"), "exclude: [\"**/testdata/**\"]\nunknown_key: 1\n").unwrap();
    let (code, _, stderr) = guardrail_in(d, &["check", "deploy", "--config", "broken.yml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown_key"), "{stderr}");
}

#[test]
fn the_organisation_configuration_requires_built_ins_and_exempts_centrally() {
    let org = "required: [privileged-containers]\nexemptions:\n  - policy: resource-limits\n    namespace: shop\n    name: legacy*\n    reason: sized by the platform team\n    until: \"2099-12-31\"\n";
    let dir = repo(&[
        (".github/guardrail.yml", "disable: [privileged-containers]\n"),
        ("policy-repo/guardrail-org.yml", org),
        ("policy-repo/template.yaml", SEEN_TEMPLATE),
        ("policy-repo/constraint.yaml", &SEEN_CONSTRAINT.replace("kinds: [\"Pod\"]", "kinds: [\"ConfigMap\"]")),
        (
            "k8s/legacy.yaml",
            &pod("legacy-api", "nginx", true)
                .replace("      resources:\n        limits: {cpu: 100m, memory: 64Mi}\n", ""),
        ),
    ]);
    let d = dir.path();
    // The guardrail-org.yml at the root of the --policy folder is read, as the App reads it.
    let (code, stdout, stderr) = guardrail_in(d, &["check", "k8s", "--policy", "policy-repo", "-f", "json"]);
    assert_eq!(code, 1, "{stderr}");
    let doc = json(&stdout);
    assert_eq!(policies_of(&doc["findings"]), ["privileged-containers"], "required, so the disable is refused");
    assert!(doc["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("cannot disable privileged-containers")));
    let suppressed = doc["suppressed"].as_array().unwrap();
    assert_eq!(suppressed.len(), 4, "every resource-limits finding is exempted: {suppressed:?}");
    assert_eq!(suppressed[0]["suppression"]["kind"], "organisation");
    assert_eq!(suppressed[0]["suppression"]["reason"], "sized by the platform team");
    assert!(suppressed[0]["suppression"]["source"].as_str().unwrap().ends_with("guardrail-org.yml"));
    // --org-config names the file directly; repositories in exemptions come from --repository.
    let repo_only = org.replace("    namespace: shop\n", "    repository: acme/billing-*\n");
    std::fs::write(d.join("org.yml"), repo_only).unwrap();
    let count = |repository: &str| {
        let (_, stdout, _) =
            guardrail_in(d, &["check", "k8s", "--org-config", "org.yml", "--repository", repository, "-f", "json"]);
        json(&stdout)["suppressed"].as_array().unwrap().len()
    };
    assert_eq!(count("acme/billing-api"), 4);
    assert_eq!(count("acme/web"), 0);
}

#[test]
fn built_ins_that_need_organisation_data_wait_for_it() {
    let dir = repo(&[
        ("k8s/pod.yaml", &pod("web", "docker.io/library/nginx:1.27", false)),
        (
            "org/registries.yaml",
            &std::fs::read_to_string("policies/allowed-registries/samples/constraint_example.yaml").unwrap(),
        ),
    ]);
    let d = dir.path();
    // Out of the box: no allowed-registries finding for a real image, and one note that says why.
    let (code, stdout, _) = guardrail_in(d, &["check", "k8s"]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(stdout.matches("note: not configured, so not checked").count(), 1, "{stdout}");
    assert!(
        stdout.contains("allowed-registries (a GuardrailAllowedRegistries Constraint with `registries`)"),
        "{stdout}"
    );
    assert!(stdout.contains("dedicated-node-pool"), "{stdout}");
    // Configured by the organisation: it checks.
    let (code, stdout, _) = guardrail_in(d, &["check", "k8s", "--policy", "org", "-f", "json"]);
    assert_eq!(code, 1);
    let doc = json(&stdout);
    assert_eq!(policies_of(&doc["findings"]), ["allowed-registries"]);
    assert!(doc["notes"].as_array().unwrap().iter().all(|n| !n.as_str().unwrap().contains("allowed-registries")));
}

// ---- reports -----------------------------------------------------------------------------------

#[test]
fn several_formats_in_one_run_each_where_asked() {
    let dir = repo(&[("k8s/pod.yaml", &pod("web", "nginx", true))]);
    let d = dir.path();
    let (code, stdout, stderr) = guardrail_in(
        d,
        &["check", "k8s", "--format", "human", "--format", "sarif=out.sarif", "-f", "junit=out/junit.xml"],
    );
    // A report that cannot be written (no such folder) is an error, and the others are still written.
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot write out/junit.xml"), "{stderr}");
    assert!(stdout.contains("deny[privileged-containers]"), "{stdout}");
    let sarif: Value = json(&std::fs::read_to_string(d.join("out.sarif")).unwrap());
    validate_sarif(&sarif);
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 1);

    // --output: the report goes to the file, nothing to standard output.
    let (code, stdout, _) = guardrail_in(d, &["check", "k8s", "-f", "json", "--output", "report.json"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(json(&std::fs::read_to_string(d.join("report.json")).unwrap())["summary"]["deny"], 1);
    // Two reports for one place is a usage error.
    let (code, _, stderr) = guardrail_in(d, &["check", "k8s", "-f", "json", "-f", "sarif"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("would both write to standard output"), "{stderr}");
    // Every option value is checked.
    for bad in [["--color", "purple"], ["--fail-on", "sometimes"], ["--format", "yaml"], ["--format", "yaml=x.yaml"]] {
        let (code, _, stderr) = guardrail_in(d, &["check", "k8s", bad[0], bad[1]]);
        assert_eq!(code, 2, "{bad:?}");
        assert!(stderr.contains("invalid value") && stderr.contains("possible values"), "{bad:?}: {stderr}");
    }
}

#[test]
fn a_failed_run_still_writes_a_sarif_log_that_says_so() {
    let dir = repo(&[("empty/.keep", "")]);
    let d = dir.path();
    for args in [
        vec!["check", "missing-folder", "-f", "sarif=out.sarif"],
        vec!["check", "empty", "-f", "sarif=out.sarif"],
        vec!["check", "empty", "--no-builtin", "-f", "sarif=out.sarif"],
    ] {
        let _ = std::fs::remove_file(d.join("out.sarif"));
        let (code, _, stderr) = guardrail_in(d, &args);
        assert_eq!(code, 2, "{args:?}");
        let sarif: Value = json(&std::fs::read_to_string(d.join("out.sarif")).unwrap());
        validate_sarif(&sarif);
        let invocation = &sarif["runs"][0]["invocations"][0];
        assert_eq!(invocation["executionSuccessful"], false);
        let note = invocation["toolExecutionNotifications"][0]["message"]["text"].as_str().unwrap();
        assert_eq!(note.lines().next(), stderr.lines().next().and_then(|l| l.strip_prefix("error: ")), "{args:?}");
    }
}

#[test]
fn sarif_paths_are_relative_to_the_repository_root() {
    let dir = repo(&[("services/web/k8s/pod.yaml", &pod("web", "nginx", true))]);
    let web = dir.path().join("services/web");
    let (_, stdout, _) = guardrail_in(&web, &["check", "k8s", "-f", "sarif"]);
    let sarif = json(&stdout);
    validate_sarif(&sarif);
    let run = &sarif["runs"][0];
    let location = &run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(location["uri"], "services/web/k8s/pod.yaml");
    assert_eq!(location["uriBaseId"], "%SRCROOT%");
    let root = run["originalUriBaseIds"]["%SRCROOT%"]["uri"].as_str().unwrap();
    assert!(root.starts_with("file:///") && root.ends_with('/'), "{root}");
    // Rules carry the templates' description and remediation, and a security severity.
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let privileged = rules.iter().find(|r| r["id"] == "privileged-containers").unwrap();
    assert!(privileged["fullDescription"]["text"].as_str().unwrap().contains("privileged"));
    assert!(privileged["help"]["markdown"].as_str().unwrap().contains("**How to fix:**"));
    assert!(privileged["helpUri"].as_str().unwrap().ends_with("docs/builtin-policies.md#privileged-containers"));
    assert_eq!(privileged["properties"]["security-severity"], "8.0");
    assert!(rules.len() >= 9, "every policy that ran is a rule");
}

#[test]
fn fail_on_and_quiet() {
    let warn_constraint = SEEN_CONSTRAINT.replace("spec:\n", "spec:\n  enforcementAction: warn\n");
    let dir = repo(&[
        ("p/template.yaml", SEEN_TEMPLATE),
        ("p/constraint.yaml", &warn_constraint),
        ("k8s/pod.yaml", &pod("web", "nginx", false)),
        ("bad/pod.yaml", &pod("root", "nginx", true)),
    ]);
    let d = dir.path();
    let code = |extra: &[&str]| {
        let mut args = vec!["check", "k8s", "--no-builtin", "-p", "p"];
        args.extend(extra);
        guardrail_in(d, &args).0
    };
    assert_eq!(code(&[]), 0, "a warning does not fail by default");
    assert_eq!(code(&["--fail-on", "warn"]), 1);
    assert_eq!(code(&["--fail-on", "info"]), 1);
    assert_eq!(code(&["--fail-on", "deny"]), 0);
    let (code_never, _, _) = guardrail_in(d, &["check", "bad", "--fail-on", "never"]);
    assert_eq!(code_never, 0);
    // --quiet: nothing when the run passes; only what fails it otherwise.
    let (code, stdout, _) = guardrail_in(d, &["check", "k8s", "--no-builtin", "-p", "p", "--quiet"]);
    assert_eq!((code, stdout.as_str()), (0, ""));
    let (code, stdout, _) = guardrail_in(d, &["check", "k8s", "bad", "-p", "p", "-q"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("deny[privileged-containers]") && !stdout.contains("warn[TestSeen]"), "{stdout}");
    assert!(!stdout.contains("note:"), "{stdout}");
}

#[test]
fn a_baseline_accepts_todays_findings_and_survives_lines_moving() {
    let two_containers = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  containers:\n    - name: a\n      image: nginx\n      securityContext: {privileged: true}\n    - name: b\n      image: nginx\n      securityContext: {privileged: true}\n";
    let dir = repo(&[("k8s/pod.yaml", two_containers)]);
    let d = dir.path();
    let (code, _, stderr) = guardrail_in(d, &["check", "k8s", "--write-baseline", "baseline.json"]);
    assert_eq!(code, 0, "writing a baseline accepts today's findings: {stderr}");
    let baseline = json(&std::fs::read_to_string(d.join("baseline.json")).unwrap());
    let recorded = baseline["findings"].as_array().unwrap().len();
    assert!(recorded >= 2, "{baseline}");
    // Lines move (a comment and a label above): nothing is new.
    let shifted = two_containers.replace("metadata:\n", "# moved\n\nmetadata:\n  labels: {app: web}\n");
    std::fs::write(d.join("k8s/pod.yaml"), &shifted).unwrap();
    let (code, stdout, _) = guardrail_in(d, &["check", "k8s", "--baseline", "baseline.json"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(last_line(&stdout).starts_with(&format!("no findings, {recorded} in the baseline;")), "{stdout}");
    // A third privileged container is new, and only it is reported.
    let third = format!("{shifted}    - name: c\n      image: nginx\n      securityContext: {{privileged: true}}\n      resources: {{limits: {{cpu: 1, memory: 1Gi}}}}\n");
    std::fs::write(d.join("k8s/pod.yaml"), third).unwrap();
    let (code, stdout, _) = guardrail_in(d, &["check", "k8s", "--baseline", "baseline.json", "-f", "json"]);
    assert_eq!(code, 1);
    let doc = json(&stdout);
    let new: Vec<&str> = doc["findings"].as_array().unwrap().iter().map(|f| f["pointer"].as_str().unwrap()).collect();
    assert_eq!(new, ["/spec/containers/2/securityContext/privileged"]);
    assert_eq!(doc["suppressed"].as_array().unwrap().len(), recorded);
    assert_eq!(doc["suppressed"][0]["suppression"]["kind"], "baseline");
    // A baseline that is not one is an error, not an empty baseline.
    std::fs::write(d.join("nonsense.json"), "{\"findings\": 3}").unwrap();
    let (code, _, stderr) = guardrail_in(d, &["check", "k8s", "--baseline", "nonsense.json"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a guardrail baseline"), "{stderr}");
}

#[test]
fn exempted_findings_are_reported_as_such_and_do_not_fail() {
    let exempt = pod("cni", "nginx", true).replace(
        "  namespace: shop\n",
        "  namespace: shop\n  annotations:\n    guardrail.dev/exempt: privileged-containers\n    guardrail.dev/exempt-reason: the CNI needs it\n    guardrail.dev/exempt-until: \"2099-01-01\"\n",
    );
    let dir = repo(&[("k8s/pod.yaml", &exempt)]);
    let d = dir.path();
    let (code, stdout, _) =
        guardrail_in(d, &["check", "k8s", "-f", "human", "-f", "sarif=out.sarif", "-f", "json=out.json"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(last_line(&stdout).starts_with("no findings, 1 exempted;"), "{stdout}");
    let doc = json(&std::fs::read_to_string(d.join("out.json")).unwrap());
    assert_eq!(doc["findings"], serde_json::json!([]));
    assert_eq!(doc["suppressed"][0]["suppression"]["reason"], "the CNI needs it");
    let sarif = json(&std::fs::read_to_string(d.join("out.sarif")).unwrap());
    validate_sarif(&sarif);
    assert_eq!(
        sarif["runs"][0]["results"][0]["suppressions"][0]["justification"],
        "the CNI needs it (until 2099-01-01)"
    );
}

#[test]
fn control_characters_from_manifests_never_reach_the_terminal_raw() {
    // ANSI colour and cursor movement, an OSC window title and hyperlink, C1 CSI, a bidi override.
    let hostile = "\u{1b}[2J\u{1b}[31mfake\u{1b}]0;owned\u{7}\u{1b}]8;;http://x\u{1b}\\\\link\u{9b}1A\u{202e}txt.yaml";
    let manifest = pod("web", "nginx", true).replace(
        "  name: web\n",
        &format!(
            "  name: web\n  labels:\n    note: \"{}\"\n",
            hostile
                .replace('\u{1b}', "\\e")
                .replace('\u{7}', "\\a")
                .replace('\u{9b}', "\\x9b")
                .replace('\u{202e}', "\\u202e")
        ),
    );
    let policy = SEEN_TEMPLATE.replace(
        "msg := sprintf(\"seen %v %v\", [input.review.object.kind, input.review.object.metadata.name])",
        "msg := sprintf(\"label %v\", [input.review.object.metadata.labels.note])",
    );
    assert_ne!(policy, SEEN_TEMPLATE);
    let dir =
        repo(&[("k8s/pod.yaml", &manifest), ("p/template.yaml", &policy), ("p/constraint.yaml", SEEN_CONSTRAINT)]);
    let d = dir.path();
    for format in ["human", "github"] {
        let (code, stdout, stderr) = guardrail_in(d, &["check", "k8s", "-p", "p", "-f", format]);
        assert_eq!(code, 1, "{stderr}");
        for c in stdout.chars() {
            assert!(
                c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
                "{format}: {c:?} in {stdout:?}"
            );
        }
        assert!(stdout.contains("\\x1b[31mfake") && stdout.contains("\\u{202e}"), "{format}: {stdout}");
    }
    // Colours, when asked for, are guardrail's own and still work.
    let (_, stdout, _) = guardrail_in(d, &["check", "k8s", "-p", "p", "--color", "always"]);
    assert!(stdout.contains("\u{1b}[1;31mdeny"), "{stdout:?}");
    assert!(!stdout.contains("\u{1b}]"), "no OSC from the manifest");
}

// ---- other commands ----------------------------------------------------------------------------

#[test]
fn policies_lists_every_policy_with_what_it_denies() {
    let dir = repo(&[
        (
            "p/template.yaml",
            &SEEN_TEMPLATE.replace(
                "  name: testseen\n",
                "  name: testseen\n  annotations:\n    description: Reports every Pod.\n",
            ),
        ),
        ("p/constraint.yaml", SEEN_CONSTRAINT),
        (".github/guardrail.yml", "disable: [no-alpha-features]\n"),
    ]);
    let d = dir.path();
    let (code, stdout, stderr) = guardrail_in(d, &["policies", "-p", "p", "-f", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let doc = json(&stdout);
    let policies = doc["policies"].as_array().unwrap();
    let by_name = |name: &str| policies.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name}: {doc}"));
    for builtin in std::fs::read_dir("policies").unwrap() {
        let name = builtin.unwrap().file_name().to_string_lossy().to_string();
        let p = by_name(&name);
        assert_eq!(p["source"], "built-in");
        assert!(!p["description"].as_str().unwrap().is_empty(), "{name}");
    }
    assert_eq!(by_name("allowed-registries")["status"], "not-configured");
    assert_eq!(by_name("allowed-registries")["parameters"][0]["name"], "registries");
    assert_eq!(by_name("no-alpha-features")["status"], "disabled");
    assert_eq!(by_name("privileged-containers")["status"], "active");
    let seen = by_name("TestSeen");
    assert_eq!(seen["source"], "p/template.yaml");
    assert_eq!(seen["description"], "Reports every Pod.");
    assert_eq!(seen["constraints"][0]["name"], "seen");
    let (code, stdout, _) = guardrail_in(d, &["policies", "-p", "p"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("privileged-containers  [active]"), "{stdout}");
    assert!(stdout.contains("parameter registries (array of string)"), "{stdout}");
    assert!(stdout.contains("TestSeen  [active]\n  source: p/template.yaml"), "{stdout}");
}

#[test]
fn completions_for_each_shell() {
    let d = std::env::temp_dir();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (code, stdout, stderr) = guardrail_in(&d, &["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(stdout.contains("guardrail") && stdout.contains("check") && stdout.contains("--fail-on"), "{shell}");
    }
    // The values of value options are completed too.
    let (_, bash, _) = guardrail_in(&d, &["completions", "bash"]);
    assert!(bash.contains("deny warn info never") && bash.contains("auto always never"), "{bash}");
    let (code, _, _) = guardrail_in(&d, &["completions", "tcsh"]);
    assert_eq!(code, 2);
}

#[test]
fn logs_have_no_colour_codes_when_not_on_a_terminal() {
    let dir = repo(&[("k8s/pod.yaml", &pod("web", "nginx", true))]);
    let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["check", "k8s"])
        .current_dir(dir.path())
        .env("GUARDRAIL_LOG", "guardrail=debug")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scan finished"), "the log is there: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'), "auto colour is off on a pipe");
}
