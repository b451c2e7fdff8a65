//! Reading YAML the way kubectl does, with positions, budgets and clear findings for bad input.

use guardrail::findings::Severity;
use guardrail::manifest::{load_text, LoadOptions, Loaded};

fn load(text: &str) -> Loaded {
    let mut out = Loaded::default();
    load_text("m.yaml", text, &LoadOptions::default(), &mut out);
    out
}

fn messages(loaded: &Loaded) -> Vec<String> {
    loaded.findings.iter().map(|f| format!("{:?}@{}: {}", f.severity, f.region.line, f.message)).collect()
}

#[test]
fn yaml_1_1_booleans_and_octal_are_read_like_kubectl_with_warnings() {
    let loaded = load(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  hostNetwork: on\n  containers:\n  - name: c\n    securityContext:\n      privileged: yes\n      readOnlyRootFilesystem: n\n  volumes:\n  - name: v\n    secret:\n      defaultMode: 0644\n      optional: \"yes\"\n",
    );
    let pod = &loaded.resources[0].object;
    assert_eq!(pod["spec"]["hostNetwork"], true);
    assert_eq!(pod["spec"]["containers"][0]["securityContext"]["privileged"], true);
    assert_eq!(pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"], false);
    assert_eq!(pod["spec"]["volumes"][0]["secret"]["defaultMode"], 420);
    assert_eq!(pod["spec"]["volumes"][0]["secret"]["optional"], "yes", "quoted stays a string");
    let warnings: Vec<_> =
        loaded.findings.iter().filter(|f| f.severity == Severity::Warn).map(|f| f.region.line).collect();
    assert_eq!(warnings, vec![6, 10, 11, 15], "{:?}", messages(&loaded));
    assert!(loaded.findings[0].message.contains("YAML 1.1"));
}

#[test]
fn yaml_1_2_octal_is_a_number_as_in_kubectl() {
    // kubectl 1.32 reads `0o644` as 420 (tests/it/kubectl.rs checks it against kubectl itself).
    let loaded = load("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  mode: 0o644\n");
    assert_eq!(loaded.resources[0].object["data"]["mode"], 420);
    assert!(loaded.findings.is_empty());
}

#[test]
fn merge_keys_and_aliases_resolve_and_keep_positions() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - &base\n    name: a\n    image: x\n    securityContext:\n      privileged: true\n  - <<: *base\n    name: b\n";
    let loaded = load(text);
    let pod = &loaded.resources[0].object;
    assert_eq!(pod["spec"]["containers"][1]["name"], "b");
    assert_eq!(pod["spec"]["containers"][1]["securityContext"]["privileged"], true);
    let (region, _) = loaded.resources[0].origin.locate("/spec/containers/1/securityContext/privileged");
    // Editing the anchor's line would change both containers; the merge is what brings this copy in.
    assert_eq!((region.line, region.column), (12, 5), "a merged value points at the merge key");
    let (region, _) = loaded.resources[0].origin.locate("/spec/containers/0/securityContext/privileged");
    assert_eq!(region.line, 11, "the anchor's own copy is where it is written");
    let (region, _) = loaded.resources[0].origin.locate("/spec/containers/1/name");
    assert_eq!((region.line, region.column), (13, 5));
}

#[test]
fn duplicate_keys_are_error_findings_at_the_second_key() {
    let loaded = load("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  hostPID: false\n  hostPID: true\n");
    let dup: Vec<_> = loaded.findings.iter().filter(|f| f.message.contains("duplicate key")).collect();
    assert_eq!(dup.len(), 1);
    assert_eq!((dup[0].severity, dup[0].region.line, dup[0].region.column), (Severity::Deny, 7, 3));
    assert!(dup[0].message.contains("first at line 6"));
    assert_eq!(loaded.resources[0].object["spec"]["hostPID"], true, "last wins, as the API server decodes");
}

#[test]
fn multi_document_files_and_lists_keep_each_objects_lines() {
    let text = "# comment\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: a\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: b\n  spec:\n    hostIPC: true\n...\n";
    let loaded = load(text);
    let names: Vec<_> = loaded.resources.iter().map(|r| r.reported.name.clone()).collect();
    assert_eq!(names, ["s", "a", "b"]);
    assert_eq!(loaded.resources[0].origin.head().line, 2);
    let (region, pointer) = loaded.resources[2].origin.locate("/spec/hostIPC");
    assert_eq!((region.line, region.column, pointer.as_str()), (20, 5, "/items/1/spec/hostIPC"));
    assert_eq!(loaded.resources[1].origin.head().line, 11);
}

#[test]
fn a_broken_document_does_not_hide_the_others() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ok\n---\napiVersion: v1\nkind: Pod\nmetadata: [unclosed\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: also-ok\n";
    let loaded = load(text);
    assert_eq!(loaded.resources.len(), 2);
    let errors: Vec<_> = loaded.findings.iter().filter(|f| f.severity == Severity::Deny).collect();
    assert_eq!(errors.len(), 1, "{:?}", messages(&loaded));
    assert!((8..=9).contains(&errors[0].region.line), "{:?}", messages(&loaded));
    assert!(errors[0].message.starts_with("YAML could not be read"));
}

#[test]
fn alias_bombs_are_stopped_with_a_located_error() {
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        text.push_str(&format!("  a{i}: &a{i} [{}]\n", vec![prev; 9].join(",")));
    }
    let started = std::time::Instant::now();
    let loaded = load(&text);
    assert!(started.elapsed().as_secs() < 30, "must not hang");
    assert!(loaded.resources.is_empty());
    assert_eq!(loaded.findings.len(), 1, "{:?}", messages(&loaded));
    assert_eq!(loaded.findings[0].severity, Severity::Deny);
    assert!(loaded.findings[0].region.line >= 6);
}

#[test]
fn deep_nesting_hits_the_depth_budget_not_the_stack() {
    // 10 KB of `- - - - …`: 5000 nested sequences on one line. Run on a small stack on purpose.
    let text = "- ".repeat(5000) + "x\n";
    let handle = std::thread::Builder::new().stack_size(2 * 1024 * 1024).spawn(move || load(&text)).expect("spawn");
    let loaded = handle.join().expect("no stack overflow");
    assert_eq!(loaded.findings.len(), 1);
    assert_eq!(loaded.findings[0].region.line, 1);
    assert!(
        loaded.findings[0].message.to_lowercase().contains("depth") || loaded.findings[0].message.contains("nesting"),
        "{}",
        loaded.findings[0].message
    );
}

#[test]
fn huge_files_are_refused_with_a_finding() {
    let opts = LoadOptions {
        limits: guardrail::manifest::Limits { max_file_bytes: 1000, ..Default::default() },
        ..Default::default()
    };
    let mut out = Loaded::default();
    let text =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  x: \"{}\"\n", "a".repeat(2000));
    load_text("big.yaml", &text, &opts, &mut out);
    assert!(out.resources.is_empty());
    assert_eq!(out.findings.len(), 1);
    assert!(out.findings[0].message.contains("over the file size limit of 1000 bytes"));
}

#[test]
fn non_kubernetes_yaml_is_skipped_silently_and_helm_templates_with_a_note() {
    assert!(load("replicaCount: 3\nimage:\n  tag: latest\n").findings.is_empty());
    assert!(load("replicaCount: 3\n").resources.is_empty());
    let mut helm = Loaded::default();
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: {{ .Values.replicas }}\n";
    load_text("chart/templates/d.yaml", text, &LoadOptions::default(), &mut helm);
    assert!(helm.resources.is_empty());
    assert_eq!(helm.findings.len(), 1);
    assert_eq!(helm.findings[0].severity, Severity::Info);
    assert!(helm.findings[0].message.contains("Helm"));
}

#[test]
fn default_namespace_applies_to_namespaced_objects_only() {
    let opts = LoadOptions { default_namespace: Some("team".into()), ..Default::default() };
    let mut out = Loaded::default();
    load_text("m.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: q\n  namespace: other\n", &opts, &mut out);
    let ns: Vec<_> = out.resources.iter().map(|r| r.reported.namespace.clone()).collect();
    assert_eq!(ns, ["team", "", "other"]);
}
