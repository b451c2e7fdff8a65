//! Kustomize overlays (issue 16): `tests/fixtures/kustomize` rendered with the real kustomize
//! (`kubectl kustomize` on these machines), every finding at the line of the base, patch, component
//! or kustomization that set the field. Each expected line is proven by editing it: after the
//! edit, exactly that finding is gone and nothing new appears.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kustomize");

/// A repository (with `.git`) holding a copy of the fixtures.
fn copy_fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    copy_dir(Path::new(FIXTURES), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

struct Run {
    code: i32,
    findings: Vec<Value>,
    stderr: String,
}

fn check(repo: &Path, target: &str) -> Run {
    check_env(repo, target, None)
}

fn check_env(repo: &Path, target: &str, path: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guardrail"));
    cmd.args(["check", target, "--no-builtin", "-p", "policies", "--format", "json"])
        .current_dir(repo)
        .env("NO_COLOR", "1")
        .env_remove("GUARDRAIL_POLICY");
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    let out = cmd.output().expect("run guardrail");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Run {
        code: out.status.code().unwrap_or(-1),
        findings: json["findings"].as_array().cloned().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `policy@file:line:column` of the findings on objects as written (not on implied Pods).
fn places(run: &Run) -> BTreeSet<String> {
    run.findings
        .iter()
        .filter(|f| !f["message"].as_str().unwrap_or("").starts_with("[Implied"))
        .map(|f| {
            format!("{}@{}:{}:{}", f["policy"].as_str().unwrap(), f["file"].as_str().unwrap(), f["line"], f["column"])
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn edit(repo: &Path, file: &str, from: &str, to: &str) {
    let path: PathBuf = repo.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "`{from}` occurs once in {file}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

/// Edits one line and checks that exactly `gone` disappears from the overlay's findings.
fn proof(overlay: &str, file: &str, from: &str, to: &str, gone: &str) {
    let repo = copy_fixtures();
    let before = places(&check(repo.path(), overlay));
    assert!(before.contains(gone), "{gone} expected before the edit, got {before:#?}");
    edit(repo.path(), file, from, to);
    let after = places(&check(repo.path(), overlay));
    let removed: BTreeSet<_> = before.difference(&after).cloned().collect();
    let added: BTreeSet<_> = after.difference(&before).cloned().collect();
    assert_eq!(removed, set(&[gone]), "editing {file}: `{from}` -> `{to}`");
    assert!(added.is_empty(), "editing {file} added {added:?}");
}

const PROD: [&str; 6] = [
    "K8sTestLabelFormat@overlays/prod/kustomization.yaml:23:3",
    "K8sTestNoPasswordKey@overlays/prod/kustomization.yaml:28:9",
    "K8sTestDisallowedTags@overlays/prod/kustomization.yaml:21:5",
    "K8sTestPrivileged@components/debug/debug.yaml:11:13",
    "K8sTestPrivileged@overlays/prod/sidecar.yaml:11:13",
    "K8sTestReplicaLimits@overlays/prod/kustomization.yaml:18:9",
];

const STAGING: [&str; 4] = [
    "K8sTestAllowedRepos@overlays/staging/kustomization.yaml:6:5",
    "K8sTestDisallowedTags@base/extra/worker.yaml:17:11",
    "K8sTestPrivileged@overlays/staging/privileged.yaml:4:5",
    "K8sTestReplicaLimits@overlays/staging/kustomization.yaml:10:5",
];

const TMP: [&str; 3] = [
    "K8sTestDisallowedTags@base/extra/worker.yaml:17:11",
    "K8sTestNamePrefix@overlays/tmp/kustomization.yaml:3:1",
    "K8sTestNoDefaultNamespace@overlays/tmp/kustomization.yaml:4:1",
];

/// Older spellings: `patchesStrategicMerge` (a file and inline text), `labels:` pairs, `nameSuffix`,
/// an inline `patchesJson6902` with a flow mapping value, `newName` alone, a `secretGenerator` file.
const LEGACY: [&str; 6] = [
    "K8sTestAllowedRepos@overlays/legacy/kustomization.yaml:28:3",
    "K8sTestDisallowedTags@base/extra/worker.yaml:17:11",
    "K8sTestLabelFormat@overlays/legacy/kustomization.yaml:7:5",
    "K8sTestPrivileged@overlays/legacy/kustomization.yaml:25:15",
    "K8sTestReplicaLimits@overlays/legacy/kustomization.yaml:17:5",
    "K8sTestReplicaLimits@overlays/legacy/smp.yaml:6:3",
];

#[test]
fn legacy_fields_report_at_their_sources() {
    let repo = copy_fixtures();
    let run = check(repo.path(), "overlays/legacy");
    assert_eq!(places(&run), set(&LEGACY), "{}", run.stderr);
    assert_eq!(run.code, 1);
}

#[test]
fn proof_legacy_lines() {
    let cases = [
        ("quay.io/proxy", "registry.example.com/proxy2", LEGACY[0]),
        ("team: BadTeam", "team: good", LEGACY[2]),
        ("{privileged: true}", "{privileged: false}", LEGACY[3]),
        ("replicas: 12", "replicas: 2", LEGACY[4]),
    ];
    for (from, to, gone) in cases {
        proof("overlays/legacy", "overlays/legacy/kustomization.yaml", from, to, gone);
    }
    proof("overlays/legacy", "overlays/legacy/smp.yaml", "replicas: 7", "replicas: 1", LEGACY[5]);
}

#[test]
fn every_overlay_reports_at_its_sources_and_nothing_else() {
    let repo = copy_fixtures();
    let prod = check(repo.path(), "overlays/prod");
    assert_eq!(places(&prod), set(&PROD), "{}", prod.stderr);
    assert_eq!(prod.code, 1);
    assert!(prod
        .findings
        .iter()
        .all(|f| f["message"].as_str().unwrap().ends_with("(rendered by overlay overlays/prod)")));
    let staging = check(repo.path(), "overlays/staging");
    assert_eq!(places(&staging), set(&STAGING));
    let tmp = check(repo.path(), "overlays/tmp");
    assert_eq!(places(&tmp), set(&TMP));
    let clean = check(repo.path(), "overlays/clean");
    assert_eq!((clean.code, places(&clean)), (0, BTreeSet::new()), "{}", clean.stderr);
}

#[test]
fn columns_cover_the_field_as_for_plain_yaml() {
    let repo = copy_fixtures();
    let prod = check(repo.path(), "overlays/prod");
    let tag = prod.findings.iter().find(|f| f["policy"] == "K8sTestDisallowedTags").unwrap();
    // `    newTag: latest`: from the key to the end of the value, as a plain YAML finding covers a field.
    assert_eq!(
        (tag["line"].as_u64(), tag["column"].as_u64(), tag["end_column"].as_u64()),
        (Some(21), Some(5), Some(19))
    );
    assert_eq!(tag["pointer"], "/spec/template/spec/containers/1/image", "kustomize put the patched sidecar first");
}

#[test]
fn a_folder_of_overlays_renders_each_root_and_never_reads_patches_alone() {
    let repo = copy_fixtures();
    let run = check(repo.path(), ".");
    let all = places(&run);
    for expected in PROD.iter().chain(&STAGING).chain(&TMP) {
        assert!(all.contains(*expected), "{expected} missing from {all:#?}");
    }
    // Every finding comes from a rendering (or is about a kustomization): no patch file, component
    // or base was checked on its own.
    for f in &run.findings {
        let message = f["message"].as_str().unwrap();
        assert!(message.contains("(rendered by overlay ") || f["policy"] == "guardrail/kustomize", "{f}");
    }
    // The base's bad worker image is seen through the two overlays that do not patch it.
    let worker: Vec<_> = run
        .findings
        .iter()
        .filter(|f| f["file"] == "base/extra/worker.yaml" && f["policy"] == "K8sTestDisallowedTags")
        .map(|f| f["message"].as_str().unwrap().rsplit("overlay ").next().unwrap().to_string())
        .collect();
    assert_eq!(worker, ["overlays/legacy)", "overlays/staging)", "overlays/tmp)"]);
    assert_eq!(run.code, 1);
}

#[test]
fn remote_resources_are_refused_at_their_line() {
    let repo = copy_fixtures();
    let run = check(repo.path(), "overlays/remote");
    assert_eq!(
        places(&run),
        set(&[
            "guardrail/kustomize@overlays/remote/kustomization.yaml:3:5",
            "guardrail/kustomize@overlays/remote/kustomization.yaml:5:5",
        ])
    );
    assert!(run
        .findings
        .iter()
        .all(|f| f["severity"] == "deny" && f["message"].as_str().unwrap().contains("not fetched")));
    assert_eq!(run.code, 1, "{}", run.stderr);
}

#[test]
fn paths_outside_the_repository_and_absolute_paths_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\n")
        .unwrap();
    let repo = outer.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("app")).unwrap();
    std::fs::create_dir_all(repo.join("policies")).unwrap();
    std::fs::copy(Path::new(FIXTURES).join("policies/policies.yaml"), repo.join("policies/policies.yaml")).unwrap();
    std::fs::write(repo.join("app/kustomization.yaml"), "resources:\n  - ../../secret.yaml\n  - /etc/hostname\n")
        .unwrap();
    let run = check(&repo, "app");
    assert_eq!(
        places(&run),
        set(&["guardrail/kustomize@app/kustomization.yaml:2:5", "guardrail/kustomize@app/kustomization.yaml:3:5"])
    );
    let messages: Vec<&str> = run.findings.iter().map(|f| f["message"].as_str().unwrap()).collect();
    assert!(messages[0].contains("outside the repository") && messages[1].contains("absolute path"), "{messages:?}");
}

#[test]
fn no_renderer_is_an_error_that_names_what_is_missing() {
    let repo = copy_fixtures();
    let run = check_env(repo.path(), "overlays/clean", Some(""));
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("kustomize") && run.stderr.contains("kubectl"), "{}", run.stderr);
}

#[test]
fn a_kustomize_failure_is_a_finding_at_the_kustomization() {
    let repo = copy_fixtures();
    edit(repo.path(), "overlays/clean/kustomization.yaml", "kind: Deployment", "kind: Deploymnt");
    let run = check(repo.path(), "overlays/clean");
    let f = &run.findings[0];
    assert_eq!(
        (f["policy"].as_str(), f["file"].as_str(), f["line"].as_u64()),
        (Some("guardrail/kustomize"), Some("overlays/clean/kustomization.yaml"), Some(1))
    );
    assert!(f["message"].as_str().unwrap().starts_with("kustomize could not render overlay overlays/clean"));
    assert_eq!(run.code, 1);
}

// Edit proofs: each expected line, edited, takes exactly its finding away.

#[test]
fn proof_component_patch_line() {
    proof("overlays/prod", "components/debug/debug.yaml", "privileged: true", "privileged: false", PROD[3]);
}

#[test]
fn proof_strategic_merge_patch_line_in_a_reordered_list() {
    proof("overlays/prod", "overlays/prod/sidecar.yaml", "privileged: true", "privileged: false", PROD[4]);
}

#[test]
fn proof_inline_json6902_value_line() {
    proof("overlays/prod", "overlays/prod/kustomization.yaml", "value: 9", "value: 3", PROD[5]);
}

#[test]
fn proof_images_new_tag_line() {
    proof("overlays/prod", "overlays/prod/kustomization.yaml", "newTag: latest", "newTag: \"1.1\"", PROD[2]);
}

#[test]
fn proof_common_labels_line() {
    proof("overlays/prod", "overlays/prod/kustomization.yaml", "team: Payments", "team: payments", PROD[0]);
}

#[test]
fn proof_generator_literal_line() {
    proof("overlays/prod", "overlays/prod/kustomization.yaml", "password=hunter2", "colour=blue", PROD[1]);
}

#[test]
fn proof_images_new_name_line() {
    proof(
        "overlays/staging",
        "overlays/staging/kustomization.yaml",
        "docker.io/library/web",
        "registry.example.com/web2",
        STAGING[0],
    );
}

#[test]
fn proof_replicas_count_line() {
    proof("overlays/staging", "overlays/staging/kustomization.yaml", "count: 8", "count: 3", STAGING[3]);
}

#[test]
fn proof_json6902_file_value_line() {
    proof("overlays/staging", "overlays/staging/privileged.yaml", "privileged: true", "privileged: false", STAGING[2]);
}

#[test]
fn proof_base_line_through_a_directory_resource() {
    proof("overlays/staging", "base/extra/worker.yaml", "worker:latest", "worker:1.0", STAGING[1]);
}

#[test]
fn proof_name_prefix_line() {
    proof("overlays/tmp", "overlays/tmp/kustomization.yaml", "namePrefix: tmp-", "namePrefix: dev-", TMP[1]);
}

#[test]
fn proof_namespace_line() {
    proof("overlays/tmp", "overlays/tmp/kustomization.yaml", "namespace: default", "namespace: apps", TMP[2]);
}

#[test]
fn a_patch_that_fixes_a_base_violation_is_where_it_comes_back() {
    // prod patches the worker's `latest` image away; breaking the patch brings the finding back at
    // the patch line, and the shared base still violates only where it is not patched.
    let repo = copy_fixtures();
    edit(repo.path(), "overlays/prod/worker-fix.yaml", "worker:3.1", "worker:latest");
    let after = places(&check(repo.path(), "overlays/prod"));
    let mut expected = set(&PROD);
    expected.insert("K8sTestDisallowedTags@overlays/prod/worker-fix.yaml:10:11".into());
    assert_eq!(after, expected);
}

#[test]
fn fixing_the_shared_base_changes_only_the_overlays_that_saw_it() {
    let repo = copy_fixtures();
    edit(repo.path(), "base/extra/worker.yaml", "worker:latest", "worker:1.0");
    assert_eq!(places(&check(repo.path(), "overlays/prod")), set(&PROD));
    assert_eq!(places(&check(repo.path(), "overlays/tmp")), set(&TMP[1..]));
}

/// gatekeeper-library templates as published (from the clone at /tmp/gklib), with constraints of
/// our own: the same overlays, the same source lines.
#[test]
fn gatekeeper_library_templates_report_at_the_same_sources() {
    let library = Path::new("/tmp/gklib/library");
    if !library.exists() {
        println!("skipped: gatekeeper-library is not at /tmp/gklib");
        return;
    }
    let repo = copy_fixtures();
    let policies = repo.path().join("policies");
    std::fs::remove_file(policies.join("policies.yaml")).unwrap();
    for (i, t) in [
        "general/allowedrepos",
        "general/disallowedtags",
        "general/replicalimits",
        "general/requiredlabels",
        "pod-security-policy/privileged-containers",
    ]
    .iter()
    .enumerate()
    {
        std::fs::copy(library.join(t).join("template.yaml"), policies.join(format!("t{i}.yaml"))).unwrap();
    }
    std::fs::write(policies.join("constraints.yaml"), GKLIB_CONSTRAINTS).unwrap();
    let prod = check(repo.path(), "overlays/prod");
    assert_eq!(
        places(&prod),
        set(&[
            "K8sReplicaLimits@overlays/prod/kustomization.yaml:18:9",
            "K8sRequiredLabels@overlays/prod/kustomization.yaml:23:3"
        ]),
        "{}",
        prod.stderr
    );
    let on_pods = |run: &Run| -> BTreeSet<String> {
        run.findings
            .iter()
            .filter(|f| f["policy"] != "K8sPSPPrivilegedContainer")
            .map(|f| {
                format!(
                    "{}@{}:{}:{}",
                    f["policy"].as_str().unwrap(),
                    f["file"].as_str().unwrap(),
                    f["line"],
                    f["column"]
                )
            })
            .collect()
    };
    assert!(on_pods(&prod).contains("K8sDisallowedTags@overlays/prod/kustomization.yaml:21:5"));
    let staging = check(repo.path(), "overlays/staging");
    assert_eq!(
        on_pods(&staging),
        set(&[
            "K8sAllowedRepos@overlays/staging/kustomization.yaml:6:5",
            "K8sDisallowedTags@base/extra/worker.yaml:17:11",
            "K8sReplicaLimits@overlays/staging/kustomization.yaml:10:5",
        ])
    );
    let privileged: Vec<_> = staging.findings.iter().filter(|f| f["policy"] == "K8sPSPPrivilegedContainer").collect();
    assert_eq!(
        (privileged.len(), privileged[0]["file"].as_str(), privileged[0]["line"].as_u64()),
        (1, Some("overlays/staging/privileged.yaml"), Some(4))
    );
}

const GKLIB_CONSTRAINTS: &str = r#"
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sAllowedRepos
metadata:
  name: repos
spec:
  match:
    kinds: [{apiGroups: [""], kinds: ["Pod"]}]
  parameters:
    repos: ["registry.example.com/"]
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sDisallowedTags
metadata:
  name: tags
spec:
  match:
    kinds: [{apiGroups: [""], kinds: ["Pod"]}]
  parameters:
    tags: ["latest"]
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sReplicaLimits
metadata:
  name: replicas
spec:
  match:
    kinds: [{apiGroups: ["apps"], kinds: ["Deployment"]}]
  parameters:
    ranges: [{min_replicas: 1, max_replicas: 5}]
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredLabels
metadata:
  name: team-in-prod
spec:
  match:
    namespaces: ["prod"]
    kinds: [{apiGroups: ["apps"], kinds: ["Deployment"]}]
  parameters:
    labels: [{key: team, allowedRegex: "^[a-z]+$"}]
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sPSPPrivilegedContainer
metadata:
  name: privileged
spec:
  match:
    kinds: [{apiGroups: [""], kinds: ["Pod"]}]
"#;
