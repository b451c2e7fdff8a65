//! Hostile and odd inputs (issue 9): every read is bounded and going over a bound is a blocking
//! finding, never a drop; a file is a Helm template only when it really is one, and every skipped
//! file is visible; YAML merge keys read as kubectl reads them; a streaming scan sees across batches.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use guardrail::findings::Severity;
use guardrail::manifest::{load_text, LoadOptions, Loaded};
use serde_json::Value;

const LIMIT: usize = 8 * 1024 * 1024;

fn pod(name: &str, security: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: registry.corp.example/app:1\n    securityContext:\n{security}")
}

/// `guardrail check --format json ARGS` in `dir` with the built-in pack: exit code, JSON, stderr.
fn check(dir: &Path, args: &[&str], stdin: Option<Vec<u8>>) -> (i32, Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .arg("check")
        .args(["--no-config", "--format", "json", "--allow-empty"])
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run guardrail");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes); // guardrail stops reading at the limit: a broken pipe is expected
        });
    }
    let out = child.wait_with_output().expect("guardrail ends");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON output ({e}); stderr: {stderr}"));
    (out.status.code().expect("exited normally, not killed by a signal"), json, stderr)
}

fn findings(json: &Value) -> Vec<(String, String, u64, String)> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
                format!("[{}] {}", f["policy"].as_str().unwrap(), f["message"].as_str().unwrap()),
            )
        })
        .collect()
}

fn load(name: &str, text: &str) -> Loaded {
    let mut out = Loaded::default();
    load_text(name, text, &LoadOptions::default(), &mut out);
    out
}

#[test]
fn a_merge_key_after_an_explicit_key_wins_as_in_kubectl_and_is_denied_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    // Line 11 holds the merged `privileged: true`; kubectl (go-yaml v2) reads true.
    let text = pod("merged", "      privileged: false\n      <<: {privileged: true}\n");
    std::fs::write(dir.path().join("pod.yaml"), &text).unwrap();
    let (code, json, stderr) = check(dir.path(), &["pod.yaml"], None);
    assert_eq!(code, 1, "{stderr}");
    let privileged: Vec<_> =
        findings(&json).into_iter().filter(|f| f.3.contains("rivileged") && f.0 == "deny").collect();
    assert_eq!(privileged.len(), 1, "{json}");
    assert_eq!(privileged[0].2, 11, "at the merge that sets it");
    // Control: the explicit key after the merge wins, and nothing is found.
    std::fs::write(
        dir.path().join("pod.yaml"),
        pod("merged", "      <<: {privileged: true}\n      privileged: false\n"),
    )
    .unwrap();
    let (code, json, _) = check(dir.path(), &["pod.yaml"], None);
    assert!(findings(&json).iter().all(|f| !f.3.contains("rivileged")), "{json}");
    assert_eq!(code, 1, "the pod has no resource limits: the built-in pack still denies it");
}

#[test]
fn merge_lists_apply_from_the_end_and_bad_merges_are_refused() {
    let loaded = load("m.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\nspec:\n  a: 0\n  <<: [{a: 1, b: 1}, {a: 2, c: 2}]\n  \"<<\": {quoted: true}\n");
    let spec = &loaded.resources[0].object["spec"];
    assert_eq!(spec, &serde_json::json!({"a": 1, "b": 1, "c": 2, "<<": {"quoted": true}}));
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    let loaded = load("m.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\nspec:\n  <<: [{a: 1}, 5]\n");
    let refused: Vec<_> = loaded.findings.iter().filter(|f| f.severity == Severity::Deny).collect();
    assert_eq!(refused.len(), 1, "{:?}", loaded.findings);
    assert!(refused[0].message.contains("merge key"));
    assert_eq!(refused[0].region.line, 6);
}

#[test]
fn a_200k_key_configmap_and_an_8_mib_one_line_json_load_whole() {
    // Were quadratic (64 s and 135 s); benches/inputs.rs measures the time, this checks the result.
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n");
    for i in 0..200_000 {
        text.push_str(&format!("  k{i}: v\n"));
    }
    text.push_str("  k199999: again\n");
    let loaded = load("big.yaml", &text);
    assert_eq!(loaded.resources[0].object["data"].as_object().unwrap().len(), 200_000);
    let dup: Vec<_> = loaded.findings.iter().filter(|f| f.message.contains("duplicate key `k199999`")).collect();
    assert_eq!(dup.len(), 1, "{:?}", &loaded.findings[..loaded.findings.len().min(3)]);
    assert_eq!(dup[0].region.line, 200_006);

    let mut json = String::from(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"wide"},"data":{"#);
    let mut i = 0;
    while json.len() < LIMIT - 100 {
        // ~45 bytes an entry: within the 500k node budget.
        json.push_str(&format!(r#""é{i}":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","#));
        i += 1;
    }
    json.push_str(r#""last":"y"}}"#);
    let loaded = load("wide.json", &json);
    assert_eq!(loaded.resources[0].object["data"].as_object().unwrap().len(), i + 1);
    let (region, _) = loaded.resources[0].origin.locate("/data/last");
    assert_eq!(region.line, 1);
    // The field's span starts at its key, `"last"`.
    assert_eq!(
        region.column as usize,
        json.chars().count() - 11,
        "columns count characters on a long line (`\"last\":\"y\"}}`)"
    );
}

#[test]
fn dev_zero_a_fifo_and_stdin_stop_at_the_size_limit_with_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let (code, json, stderr) = check(dir.path(), &["/dev/zero"], None);
    assert_eq!(code, 1, "{stderr}");
    let f = findings(&json);
    assert_eq!(f.len(), 1, "{json}");
    assert_eq!((f[0].0.as_str(), f[0].1.as_str(), f[0].2), ("deny", "/dev/zero", 1));
    assert!(f[0].3.contains("8 MiB file size limit"), "{}", f[0].3);

    let fifo = dir.path().join("pipe.yaml");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut pipe = std::fs::OpenOptions::new().write(true).open(writer_path).unwrap();
        let line = b"# an endless comment line to keep the reader busy\n";
        let mut written = 0;
        while pipe.write_all(line).is_ok() {
            written += line.len();
        }
        written
    });
    let (code, json, stderr) = check(dir.path(), &["pipe.yaml"], None);
    let written = writer.join().unwrap();
    assert_eq!(code, 1, "{stderr}");
    let f = findings(&json);
    assert_eq!(f.len(), 1, "{json}");
    assert!(f[0].3.contains("over the 8 MiB file size limit"), "{}", f[0].3);
    assert!(written < 2 * LIMIT, "the reader stopped near the limit ({written} bytes written)");

    // A FIFO inside a folder is not read, but named.
    let (_, json, stderr) = check(dir.path(), &["."], None);
    let f = findings(&json);
    assert!(f.iter().any(|f| f.1 == "pipe.yaml" && f.3.contains("not a regular file")), "{json}");
    assert!(stderr.contains("warning: pipe.yaml not checked"), "{stderr}");

    let mut big = pod("stdin", "      privileged: true\n").into_bytes();
    big.resize(LIMIT + 10, b'\n');
    let (code, json, stderr) = check(dir.path(), &["-"], Some(big));
    assert_eq!(code, 1, "{stderr}");
    let f = findings(&json);
    assert_eq!(f.len(), 1, "{json}");
    assert!(f[0].3.contains("standard input is over the 8 MiB file size limit"), "{}", f[0].3);
    // Control: the same input within the limit is read, and its violation found.
    let (code, json, _) = check(dir.path(), &["-"], Some(pod("stdin", "      privileged: true\n").into_bytes()));
    assert_eq!(code, 1);
    assert!(findings(&json).iter().any(|f| f.2 == 10 && f.3.contains("rivileged")), "{json}");
}

#[test]
fn yaml_budgets_are_blocking_findings_that_name_the_bound() {
    let docs: String =
        (0..10_001).map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n")).collect();
    let loaded = load("docs.yaml", &docs);
    assert_eq!(loaded.resources.len(), 10_000);
    let over: Vec<_> = loaded.findings.iter().filter(|f| f.severity == Severity::Deny).collect();
    assert_eq!(over.len(), 1);
    assert!(over[0].message.contains("more than 10000 documents"), "{}", over[0].message);
    assert_eq!(over[0].region.line, 10_000 * 5 + 2);

    let deep = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\ndata: {}{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    let loaded = load("deep.yaml", &deep);
    assert!(loaded.resources.is_empty());
    assert!(
        loaded.findings.iter().any(|f| f.severity == Severity::Deny && f.message.contains("depth")),
        "{:?}",
        loaded.findings
    );

    let mut laughs = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\ndata:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        laughs.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
    }
    let loaded = load("lol.yaml", &laughs);
    assert!(loaded.resources.is_empty());
    let f: Vec<_> = loaded.findings.iter().filter(|f| f.severity == Severity::Deny).collect();
    assert_eq!(f.len(), 1, "{:?}", loaded.findings);
    assert!(f[0].message.to_lowercase().contains("alias"), "{}", f[0].message);

    let nodes = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: n\ndata:\n  x: [{}]\n",
        vec!["1"; 600_000].join(",")
    );
    let loaded = load("nodes.yaml", &nodes);
    assert!(loaded.resources.is_empty());
    assert!(
        loaded.findings.iter().any(|f| f.severity == Severity::Deny && f.message.contains("node")),
        "{:?}",
        loaded.findings
    );
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn only_real_helm_templates_are_skipped_and_each_skip_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Template syntax only in a comment: a plain manifest, checked (privileged at line 11).
    write(
        d,
        "plain/commented.yaml",
        &format!(
            "# rendered from {{{{ .Values.image }}}}\n{}",
            pod("commented", "      privileged: true # {{ not a template }}\n")
        ),
    );
    // `{{ }}` outside a chart: not a Helm template; YAML that does not parse is a blocking finding.
    write(d, "plain/braces.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Values.name }}\n");
    // In a chart: real templates are skipped with a note; a file without actions is checked.
    write(d, "chart/Chart.yaml", "apiVersion: v2\nname: demo\nversion: 0.1.0\n");
    write(d, "chart/values.yaml", "image: nginx\n");
    write(
        d,
        "chart/templates/deploy.yaml",
        &format!("{}      privileged: {{{{ .Values.privileged }}}}\n", pod("t", "")),
    );
    write(d, "chart/templates/static.yaml", &pod("static", "      privileged: true\n"));
    write(
        d,
        "chart/templates/commented.yaml",
        &format!("# {{{{ include \"x\" . }}}}\n{}", pod("c2", "      privileged: true\n")),
    );
    let (code, json, stderr) = check(d, &["."], None);
    assert_eq!(code, 1, "{stderr}");
    let f = findings(&json);
    let at = |file: &str| -> Vec<(String, u64)> {
        f.iter().filter(|x| x.1 == file && x.3.contains("rivileged")).map(|x| (x.0.clone(), x.2)).collect()
    };
    assert_eq!(at("plain/commented.yaml"), vec![("deny".to_string(), 11)], "{json}");
    assert!(
        f.iter().any(|x| x.1 == "plain/braces.yaml" && x.0 == "deny" && x.3.contains("[guardrail/yaml]")),
        "{json}"
    );
    assert_eq!(at("chart/templates/static.yaml"), vec![("deny".to_string(), 10)], "{json}");
    assert_eq!(at("chart/templates/commented.yaml"), vec![("deny".to_string(), 11)], "{json}");
    let skipped: Vec<_> =
        f.iter().filter(|x| x.3.starts_with("[guardrail/note]")).map(|x| (x.1.as_str(), x.2)).collect();
    assert_eq!(skipped, vec![("chart/templates/deploy.yaml", 10)], "{json}");
    assert!(stderr.contains("warning: chart/templates/deploy.yaml not checked: a Helm template"), "{stderr}");
    assert_eq!(stderr.matches("not checked").count(), 1, "{stderr}");
}

#[test]
fn the_check_run_summary_names_every_skipped_file() {
    use guardrail::report::checkrun::{build, CheckRunContext};
    let policies = crate::support::policies(true, &[]);
    let scan = crate::support::scan(
        &policies,
        &[
            ("chart/templates/a.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Values.name }}\n"),
            ("ok.yaml", &pod("ok", "      privileged: false\n")),
        ],
    );
    let report = build(&scan.outcome, &CheckRunContext::default());
    assert!(report.summary.contains("### Files not checked"), "{}", report.summary);
    assert!(report.summary.contains("- `chart/templates/a.yaml`: a Helm template"), "{}", report.summary);
    let scan = crate::support::scan(&policies, &[("ok.yaml", &pod("ok", "      privileged: false\n"))]);
    assert!(!build(&scan.outcome, &CheckRunContext::default()).summary.contains("Files not checked"));
}

#[test]
fn a_streaming_scan_sees_namespaces_and_exemptions_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A Namespace label read by a constraint's namespaceSelector, in the last file of many.
    let constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: TestPrivileged\nmetadata:\n  name: only-prod\nspec:\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [\"Pod\"]}]\n    namespaceSelector:\n      matchLabels: {env: prod}\n";
    let policies =
        crate::support::policies(false, &[("t.yaml", crate::support::PRIVILEGED_TEMPLATE), ("c.yaml", constraint)]);
    for i in 0..600 {
        let ns = if i % 2 == 0 { "prod" } else { "dev" };
        let text = pod(&format!("p{i}"), "      privileged: true\n")
            .replace("  name: p", &format!("  namespace: {ns}\n  name: p"));
        write(d, &format!("pods/{i:04}.yaml"), &text);
    }
    write(d, "pods/0007.yaml", &pod("p7", "      privileged: true\n").replace("  name: p7", "  namespace: prod\n  name: p7\n  annotations:\n    guardrail.dev/exempt: testprivileged\n    guardrail.dev/exempt-reason: test\n    guardrail.dev/exempt-until: \"2999-01-01\""));
    write(d, "zz-namespaces.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n  labels: {env: prod}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: dev\n");
    let scan = guardrail::scan::scan_paths(&[d.to_path_buf()], &policies, &Default::default()).unwrap();
    let hits: Vec<_> = scan.outcome.findings.iter().filter(|f| f.message.starts_with("Privileged container")).collect();
    assert_eq!(
        hits.len(),
        300,
        "every prod pod but the exempt one: {:?}",
        crate::support::summary(&scan.outcome.findings[..5.min(scan.outcome.findings.len())])
    );
    assert!(hits.iter().all(|f| f.region.line == 11));
    assert_eq!(scan.outcome.suppressed.len(), 2, "both of the exempt pod's findings");
    assert_eq!(scan.stats.resources, 602);
    assert!(scan.sources.len() <= 301, "only files with findings keep their text");
}
