//! Hostile Terraform (issue 9): each case runs the real binary and must end normally with a deny
//! finding that names the bound, at the place it was hit; the controls beside the attacks are
//! still denied at their lines.

use std::process::Command;

struct Run {
    code: Option<i32>,
    findings: Vec<serde_json::Value>,
}

fn check(files: &[(&str, String)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["check", "--format", "json", "."])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    Run { code: out.status.code(), findings: json["findings"].as_array().cloned().unwrap_or_default() }
}

fn has(run: &Run, file: &str, line: u64, text: &str) -> bool {
    run.findings.iter().any(|f| {
        f["severity"] == "deny"
            && f["file"] == file
            && f["line"] == line
            && f["message"].as_str().unwrap().contains(text)
    })
}

fn summary(run: &Run) -> String {
    run.findings
        .iter()
        .map(|f| format!("{} {}:{} {}", f["severity"], f["file"], f["line"], f["message"]))
        .collect::<Vec<_>>()
        .join("\n")
}

const CONTROL: &str = r#"
resource "kubernetes_pod" "control" {
  metadata { name = "control" }
  spec {
    container {
      name  = "c"
      image = "gcr.io/corp/c:1"
      security_context {
        privileged = true
      }
    }
  }
}
"#;

/// The control's `privileged = true` line in `control.tf`.
fn control_denied(run: &Run) -> bool {
    run.findings.iter().any(|f| f["file"] == "control.tf" && f["line"] == 9 && f["severity"] == "deny")
}

fn assert_bound(run: &Run, file: &str, line: u64, text: &str) {
    assert_eq!(run.code, Some(1), "a deny, and a normal exit:\n{}", summary(run));
    assert!(has(run, file, line, text), "a deny naming the bound at {file}:{line}:\n{}", summary(run));
    assert!(control_denied(run), "the control is still denied:\n{}", summary(run));
}

#[test]
fn a_template_that_renders_itself_stops_at_the_template_recursion_bound() {
    let run = check(&[
        ("control.tf", CONTROL.into()),
        (
            "main.tf",
            "resource \"kubernetes_manifest\" \"x\" {\n  manifest = yamldecode(templatefile(\"t.tpl\", {}))\n}\n"
                .into(),
        ),
        ("t.tpl", "a: ${templatefile(\"t.tpl\", {})}\n".into()),
    ]);
    assert_bound(&run, "t.tpl", 1, "template recursion bound");
}

#[test]
fn a_module_that_calls_itself_ten_times_per_level_stops_at_the_total_instance_bound() {
    let root = "module \"loop\" {\n  source = \"./loop\"\n}\n";
    let module = "module \"again\" {\n  source = \"./\"\n  count  = 10\n}\n";
    let run = check(&[("control.tf", CONTROL.into()), ("main.tf", root.into()), ("loop/main.tf", module.into())]);
    assert_bound(&run, "loop/main.tf", 3, "bound on instances");
}

#[test]
fn locals_that_double_a_string_forty_times_stop_at_the_string_bound() {
    let mut text = String::from("locals {\n  s0 = \"xxxxxxxxxxxxxxxx\"\n");
    for i in 1..=40 {
        text.push_str(&format!("  s{i} = \"${{local.s{}}}${{local.s{}}}\"\n", i - 1, i - 1));
    }
    text.push_str("}\nresource \"kubernetes_manifest\" \"x\" {\n  manifest = { apiVersion = \"v1\", kind = \"ConfigMap\", metadata = { name = \"x\" }, data = { a = local.s40 } }\n}\n");
    let run = check(&[("control.tf", CONTROL.into()), ("main.tf", text)]);
    // 16 * 2^19 characters pass the 4 MiB bound: s19 is the first string over it (line 21).
    assert_bound(&run, "main.tf", 21, "string bound");
}

#[test]
fn a_nested_for_of_a_billion_elements_stops_at_the_evaluation_bounds() {
    let text = "locals {\n  cube = [for a in range(1000) : [for b in range(1000) : [for c in range(1000) : \"${a}-${b}-${c}\"]]]\n}\nresource \"kubernetes_manifest\" \"x\" {\n  manifest = { apiVersion = \"v1\", kind = \"ConfigMap\", metadata = { name = \"x\" }, data = { n = length(flatten(local.cube)) } }\n}\n";
    let run = check(&[("control.tf", CONTROL.into()), ("main.tf", text.into())]);
    assert_bound(&run, "main.tf", 2, "guardrail's");
}

#[test]
fn count_beyond_the_per_resource_bound_is_a_deny_at_the_block_and_the_first_instances_are_checked() {
    let text = CONTROL
        .replace("\"control\" {\n", "\"many\" {\n  count = 5000\n")
        .replace("name = \"control\"", "name = \"many-${count.index}\"");
    let run = check(&[("control.tf", CONTROL.into()), ("many.tf", text)]);
    assert_bound(&run, "many.tf", 2, "more than guardrail's bound of 1000 per resource");
    assert!(run.findings.iter().any(|f| f["resource"]["name"] == "many-999"), "instance 999 is checked");
    assert!(!run.findings.iter().any(|f| f["resource"]["name"] == "many-1000"));
}

#[test]
fn a_chain_of_thousands_of_locals_stops_at_the_nesting_bound() {
    let mut text = String::from("locals {\n  l0 = true\n");
    for i in 1..=5000 {
        text.push_str(&format!("  l{i} = local.l{}\n", i - 1));
    }
    text.push_str("}\n");
    text.push_str(
        &CONTROL.replace("\"control\"", "\"chained\"").replace("privileged = true", "privileged = local.l5000"),
    );
    let run = check(&[("control.tf", CONTROL.into()), ("main.tf", text)]);
    assert_eq!(run.code, Some(1), "{}", summary(&run));
    assert!(run
        .findings
        .iter()
        .any(|f| f["severity"] == "deny" && f["message"].as_str().unwrap().contains("nesting bound")));
    assert!(control_denied(&run));
}

#[test]
fn a_one_line_terraform_file_of_600_kb_loads_with_exact_columns() {
    let items: Vec<String> = (0..70_000).map(|i| format!("\"v{i}\"")).collect();
    let line = format!("locals {{ l = [{}] }}\n", items.join(","));
    assert!(line.len() > 600_000);
    let pod = CONTROL
        .replace("\"control\"", "\"long\"")
        .replace("privileged = true", "privileged = length(local.l) == 70000");
    let run = check(&[("control.tf", CONTROL.into()), ("long.tf", line), ("pod.tf", pod)]);
    assert_eq!(run.code, Some(1), "{}", summary(&run));
    assert!(has(&run, "pod.tf", 9, "Privileged"), "{}", summary(&run));
    assert!(control_denied(&run));
}

#[test]
fn for_each_beyond_the_per_resource_bound_is_a_deny_at_the_block() {
    let text = CONTROL
        .replace("\"control\" {\n", "\"keyed\" {\n  for_each = toset([for i in range(1024) : tostring(i)])\n")
        .replace("name = \"control\"", "name = \"keyed-${each.key}\"");
    let run = check(&[("control.tf", CONTROL.into()), ("keyed.tf", text)]);
    assert_bound(
        &run,
        "keyed.tf",
        2,
        "for_each makes 1024 instances, more than guardrail's bound of 1000 per resource",
    );
    let keyed = run
        .findings
        .iter()
        .filter(|f| f["file"] == "keyed.tf" && f["message"].as_str().unwrap().starts_with("Privileged"));
    assert_eq!(keyed.count(), 1000, "the first 1,000 instances are checked");
}

#[test]
fn a_module_that_does_not_parse_is_reported_once_however_often_it_is_called() {
    let root = "module \"a\" {\n  source = \"./m\"\n  count  = 3\n}\nmodule \"b\" {\n  source = \"./m\"\n}\n";
    let broken = "resource \"kubernetes_manifest\" \"x\" {\n  manifest = {\n";
    let run = check(&[("control.tf", CONTROL.into()), ("main.tf", root.into()), ("m/main.tf", broken.into())]);
    let parse: Vec<_> =
        run.findings.iter().filter(|f| f["message"].as_str().unwrap().contains("does not parse")).collect();
    assert_eq!(parse.len(), 1, "one finding for the one broken file:\n{}", summary(&run));
    assert_eq!(parse[0]["file"], "m/main.tf");
    assert_eq!(parse[0]["severity"], "deny");
    assert!(control_denied(&run), "the control is still denied:\n{}", summary(&run));
}

#[test]
fn a_manifest_not_known_statically_in_many_module_instances_is_one_finding_that_counts_them() {
    let root = "module \"m\" {\n  source = \"./m\"\n  count  = 3\n}\nmodule \"n\" {\n  source = \"./m\"\n}\n";
    let module = "resource \"kubernetes_manifest\" \"x\" {\n  manifest = yamldecode(file(\"/etc/x.yaml\"))\n}\n";
    let run = check(&[("control.tf", CONTROL.into()), ("main.tf", root.into()), ("m/main.tf", module.into())]);
    let unknown: Vec<_> =
        run.findings.iter().filter(|f| f["message"].as_str().unwrap().contains("not known statically")).collect();
    assert_eq!(unknown.len(), 1, "one finding for the one manifest:\n{}", summary(&run));
    assert_eq!((unknown[0]["file"].as_str(), unknown[0]["line"].as_u64()), (Some("m/main.tf"), Some(2)));
    let message = unknown[0]["message"].as_str().unwrap();
    assert!(message.starts_with("module.m[0].kubernetes_manifest.x (and 3 more instances of it): "), "{message}");
    assert!(control_denied(&run), "the control is still denied:\n{}", summary(&run));
}

#[test]
fn a_module_that_calls_itself_reports_what_holds_for_every_instance_once_per_call_path() {
    let root = "module \"loop\" {\n  source = \"./loop\"\n}\n";
    let module = "module \"again\" {\n  source = \"./\"\n  count  = 5\n}\nresource \"kubernetes_labels\" \"l\" {\n  api_version = \"v1\"\n}\n";
    let run = check(&[("control.tf", CONTROL.into()), ("main.tf", root.into()), ("loop/main.tf", module.into())]);
    assert_bound(&run, "loop/main.tf", 3, "bound on instances");
    let unconverted: Vec<&str> = run
        .findings
        .iter()
        .filter_map(|f| f["message"].as_str().filter(|m| m.contains("does not convert kubernetes_labels")))
        .collect();
    // One per depth (module.loop., module.loop.module.again., …), not one per instance (thousands).
    assert!((2..=9).contains(&unconverted.len()), "{unconverted:#?}");
    assert!(unconverted.contains(&"module.loop.module.again.kubernetes_labels.l: guardrail does not convert kubernetes_labels resources to Kubernetes objects, so no policy checked it"), "{unconverted:#?}");
    assert!(run.findings.len() < 30, "{}", summary(&run));
}
