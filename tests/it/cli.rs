//! The `guardrail` binary as users run it: the README's first command, exit codes, verify.

use std::process::Command;

fn guardrail(args: &[&str]) -> (i32, String, String) {
    run(args, &[])
}

/// The binary with `args` and extra environment: exit code, stdout, stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .expect("run guardrail");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_on_the_examples_pins_every_finding_position() {
    let (code, stdout, stderr) = guardrail(&["check", "examples/", "--format", "json"]);
    assert_eq!(code, 1, "deny findings exit 1; stderr: {stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    let lines: Vec<String> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}:{}-{}:{} {} [{}] {} {} {}/{}",
                f["file"].as_str().unwrap(),
                f["line"],
                f["column"],
                f["end_line"],
                f["end_column"],
                f["severity"].as_str().unwrap(),
                f["policy"].as_str().unwrap(),
                f["pointer"].as_str().unwrap(),
                f["resource"]["kind"].as_str().unwrap_or("-"),
                f["resource"]["namespace"].as_str().unwrap_or("-"),
                f["resource"]["name"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
    assert_eq!(json["errors"], serde_json::json!([]));
}

#[test]
fn check_human_output_underlines_the_offending_value() {
    let (code, stdout, _) = guardrail(&["check", "examples/deployment.yaml"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("--> examples/deployment.yaml:34:13"), "{stdout}");
    // The whole field, key to value.
    assert!(stdout.contains("privileged: true\n   |             ^^^^^^^^^^^^^^^^"), "{stdout}");
}

#[test]
fn exit_codes_distinguish_clean_findings_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.yaml");
    std::fs::write(&clean, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n").unwrap();
    let (code, stdout, _) = guardrail(&["check", clean.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("no findings"), "{stdout}");

    let (code, _, stderr) = guardrail(&["check", "does/not/exist"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("does/not/exist"), "{stderr}");

    let broken = dir.path().join("broken.rego");
    std::fs::write(&broken, "package x\ndeny[msg] {\n  msg := \n").unwrap();
    let (code, _, stderr) = guardrail(&["check", clean.to_str().unwrap(), "--policy", broken.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("does not compile"), "{stderr}");

    let (code, _, _) = guardrail(&["check", "examples/", "--format", "nonsense"]);
    assert_eq!(code, 2, "clap usage errors exit 2");
}

/// A template that reports every object its constraint matches: shows what a run looked at.
pub const SEEN_TEMPLATE: &str = "apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: testseen
spec:
  crd:
    spec:
      names:
        kind: TestSeen
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package testseen
        violation[{\"msg\": msg}] {
          msg := sprintf(\"seen %v %v\", [input.review.object.kind, input.review.object.metadata.name])
        }
";

pub const SEEN_CONSTRAINT: &str = "apiVersion: constraints.gatekeeper.sh/v1beta1
kind: TestSeen
metadata:
  name: seen
spec:
  match:
    kinds:
      - apiGroups: [\"\"]
        kinds: [\"Pod\"]
";

#[test]
fn no_builtin_with_a_namespace_default() {
    // Without the built-ins and without --policy nothing would be checked: that is no pass.
    let (code, stdout, stderr) =
        guardrail(&["check", "examples/base", "--no-builtin", "--namespace", "payments", "-f", "json"]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.contains("no policies to check against: --no-builtin"), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["findings"], serde_json::json!([]));
    assert_eq!(json["errors"].as_array().map(Vec::len), Some(1), "{json}");

    // With a policy of its own, the namespace default decides what a namespace-scoped constraint sees.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.yaml"), SEEN_TEMPLATE).unwrap();
    std::fs::write(
        dir.path().join("constraint.yaml"),
        SEEN_CONSTRAINT.replace("kinds: [\"Pod\"]", "kinds: [\"Pod\"]\n    namespaces: [\"payments\"]"),
    )
    .unwrap();
    let policy = dir.path().to_str().unwrap();
    let findings = |namespace: &[&str]| {
        // The file alone: the folder is a kustomization, which sets `namespace: payments` itself.
        let mut args = vec!["check", "examples/base/deployment.yaml", "--no-builtin", "-p", policy, "-f", "json"];
        args.extend(namespace);
        let (code, stdout, stderr) = guardrail(&args);
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
        (code, json["findings"].as_array().unwrap().len())
    };
    // Gatekeeper applies `namespaces` to namespaced objects only; without one, the object is matched.
    assert_eq!(findings(&[]), (1, 1));
    assert_eq!(findings(&["--namespace", "payments"]), (1, 1));
    assert_eq!(findings(&["--namespace", "shop"]), (0, 0), "outside `namespaces`");
}

#[test]
fn verify_runs_the_builtin_pack_suites() {
    let (code, stdout, stderr) = guardrail(&["verify", "policies/"]);
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.ends_with(" 0 failed"), "{stdout}{stderr}");
    let passed: usize = last.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 11 * 5, "every built-in policy has at least 5 cases, got {passed}");
    assert_eq!(code, 0);
}

#[test]
fn verify_reports_failures_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("template.yaml"), crate::support::PRIVILEGED_TEMPLATE).unwrap();
    std::fs::write(d.join("constraint.yaml"), crate::support::PRIVILEGED_CONSTRAINT).unwrap();
    std::fs::write(d.join("pod.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, securityContext: {privileged: true}, resources: {limits: {memory: 1}}}\n").unwrap();
    std::fs::write(
        d.join("review.yaml"),
        "kind: AdmissionReview\napiVersion: admission.k8s.io/v1\nrequest:\n  operation: UPDATE\n  object:\n    apiVersion: v1\n    kind: Pod\n    metadata: {name: p}\n    spec:\n      containers:\n      - {name: c, resources: {limits: {memory: 1}}}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("suite.yaml"),
        "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n- name: priv\n  template: template.yaml\n  constraint: constraint.yaml\n  cases:\n  - name: caught\n    object: pod.yaml\n    assertions:\n    - violations: 1\n      message: Privileged\n  - name: wrong-expectation\n    object: pod.yaml\n    assertions:\n    - violations: no\n  - name: admission-review\n    object: review.yaml\n    assertions:\n    - violations: no\n",
    )
    .unwrap();
    std::fs::write(
        d.join("lib_test.rego"),
        "package lib\nimport rego.v1\ntest_ok if { 1 + 1 == 2 }\ntest_broken if { 1 + 1 == 3 }\n",
    )
    .unwrap();
    let (code, stdout, _) = guardrail(&["verify", d.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("FAIL")
            && stdout.contains("wrong-expectation")
            && stdout.contains("got 1 violations but want none"),
        "{stdout}"
    );
    assert!(stdout.contains("test_broken"), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("3 passed, 2 failed"), "{stdout}");
}

#[test]
fn check_reads_standard_input_as_dash() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["check", "-", "-f", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run guardrail");
    let pod =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\nspec:\n  hostPID: true\n  containers: []\n";
    child.stdin.take().unwrap().write_all(pod.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &json["findings"][0];
    assert_eq!(
        (f["file"].as_str(), f["line"].as_u64(), f["policy"].as_str()),
        (Some("-"), Some(5), Some("host-namespaces"))
    );
}

#[test]
fn verify_expands_workloads_when_a_suite_names_expansion_templates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("template.yaml"), crate::support::PRIVILEGED_TEMPLATE).unwrap();
    std::fs::write(d.join("constraint.yaml"), crate::support::PRIVILEGED_CONSTRAINT).unwrap();
    std::fs::write(
        d.join("expansion.yaml"),
        "apiVersion: expansion.gatekeeper.sh/v1alpha1\nkind: ExpansionTemplate\nmetadata: {name: expand-deployments}\nspec:\n  applyTo: [{groups: [apps], kinds: [Deployment], versions: [v1]}]\n  templateSource: spec.template\n  generatedGVK: {kind: Pod, group: '', version: v1}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: c, securityContext: {privileged: true}, resources: {limits: {memory: 1}}}\n",
    )
    .unwrap();
    let suite = |expansion: &str| {
        format!("kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n- name: t\n  template: template.yaml\n  constraint: constraint.yaml\n{expansion}  cases:\n  - name: deployment\n    object: deploy.yaml\n    assertions:\n    - violations: 1\n      message: '^\\[Implied by expand-deployments\\] Privileged'\n")
    };
    std::fs::write(d.join("suite.yaml"), suite("  expansion: expansion.yaml\n")).unwrap();
    let (code, stdout, _) = guardrail(&["verify", d.to_str().unwrap()]);
    assert_eq!((code, stdout.lines().last()), (0, Some("1 passed, 0 failed")), "{stdout}");
    // Without `expansion`, gator does not expand: the Pod constraint never sees the Deployment.
    std::fs::write(d.join("suite.yaml"), suite("")).unwrap();
    let (code, stdout, _) = guardrail(&["verify", d.to_str().unwrap()]);
    assert_eq!((code, stdout.lines().last()), (1, Some("0 passed, 1 failed")), "{stdout}");
}

/// The binary with `GUARDRAIL_REGO=rego` and the engine's debug log on stderr.
fn guardrail_with(rego: &str, args: &[&str]) -> (i32, String, String) {
    run(args, &[("GUARDRAIL_REGO", rego), ("GUARDRAIL_LOG", "guardrail=debug")])
}

/// `GUARDRAIL_REGO=crosscheck` evaluates everything on both evaluators and prints every
/// difference: on the built-in suites and the examples there must be none, and the findings of
/// the VM (the default) and of the interpreter alone must be the same.
#[test]
fn the_bytecode_vm_agrees_with_the_interpreter_on_the_builtin_pack() {
    let (code, stdout, stderr) = guardrail_with("crosscheck", &["verify", "policies"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(!stderr.contains("crosscheck:"), "{stderr}");
    let mut outputs = Vec::new();
    for mode in ["vm", "interpreter", "crosscheck"] {
        let (code, stdout, stderr) = guardrail_with(mode, &["check", "examples/", "--format", "json"]);
        assert_eq!(code, 1, "{stderr}");
        assert!(!stderr.contains("crosscheck:"), "{stderr}");
        outputs.push(stdout);
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

/// Rego the bytecode VM reads differently from OPA (a function defined without a body, an
/// assignment of an undefined value that is never used, an `else` after a body whose builtin
/// failed, `sprintf` with too few arguments or a verb it prints differently) gives OPA's answers
/// on every evaluator.
#[test]
fn rego_the_vm_reads_differently_gets_opas_answers() {
    let dir = tempfile::tempdir().unwrap();
    let template = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: vmquirks
spec:
  crd:
    spec:
      names:
        kind: VmQuirks
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package vmquirks

        accept("RunAsAny", _)

        violation[{"msg": msg}] {
          c := input.review.object.spec.containers[_]
          rule := object.get(c, "rule", "MustRunAs")
          not accept(rule, c.name)
          msg := sprintf("container %v: rule %v is not accepted", [c.name, rule])
        }

        violation[{"msg": msg}] {
          c := input.review.object.spec.containers[_]
          unused := c.securityContext.runAsUser
          msg := sprintf(
            "container %v sets runAsUser, allowed: %v",
            [c.name],
          )
        }

        port_number(p) = n {
          n := to_number(p)
        } else = 0 {
          true
        }

        violation[{"msg": msg}] {
          c := input.review.object.spec.containers[_]
          port_number(object.get(c, "port", "none")) == 0
          msg := sprintf("container %v has no numeric port", [c.name])
        }
"#;
    // `%d` is a verb the VM's sprintf prints differently: this template stays on the interpreter.
    let gated = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: vmgated
spec:
  crd:
    spec:
      names:
        kind: VmGated
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package vmgated

        violation[{"msg": msg}] {
          c := input.review.object.spec.containers[_]
          c.replicas
          msg := sprintf("container %v wants %d replicas", [c.name, c.replicas])
        }
"#;
    let constraint = |kind: &str| {
        format!("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata:\n  name: c\nspec:\n  match:\n    kinds:\n      - apiGroups: [\"\"]\n        kinds: [\"Pod\"]\n")
    };
    std::fs::write(dir.path().join("template.yaml"), template).unwrap();
    std::fs::write(dir.path().join("constraint.yaml"), constraint("VmQuirks")).unwrap();
    std::fs::write(dir.path().join("gated-template.yaml"), gated).unwrap();
    std::fs::write(dir.path().join("gated-constraint.yaml"), constraint("VmGated")).unwrap();
    // More pods than the VM's sampled first evaluations, so that most answers are the VM's own.
    let mut pods = String::new();
    for i in 0..12 {
        pods.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\nspec:\n  containers:\n    - name: free\n      rule: RunAsAny\n    - name: strict\n      port: \"8080\"\n      securityContext:\n        runAsUser: 1000\n      replicas: 3\n"
        ));
    }
    std::fs::write(dir.path().join("pods.yaml"), pods).unwrap();
    let policy = dir.path().to_str().unwrap();
    let pods = dir.path().join("pods.yaml");
    let mut outputs = Vec::new();
    for mode in ["vm", "interpreter", "crosscheck"] {
        let (code, stdout, stderr) =
            guardrail_with(mode, &["check", pods.to_str().unwrap(), "--no-builtin", "-p", policy, "--format", "json"]);
        assert_eq!(code, 1, "{mode}: {stderr}");
        assert!(!stderr.contains("crosscheck:"), "{stderr}");
        if mode == "vm" {
            // Only the template with `%d` was refused, so the quirks above ran on the VM.
            assert!(stderr.contains("VmGated") && !stderr.contains("VmQuirks"), "{stderr}");
        }
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let mut messages: Vec<String> =
            json["findings"].as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap().to_string()).collect();
        messages.sort();
        messages.dedup();
        outputs.push(messages);
    }
    assert_eq!(
        outputs[0],
        vec![
            "container free has no numeric port".to_string(),
            "container strict sets runAsUser, allowed: %!v(MISSING)".to_string(),
            "container strict wants 3 replicas".to_string(),
            "container strict: rule MustRunAs is not accepted".to_string(),
        ]
    );
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

/// A seeded corpus of workloads with odd values (strings for booleans and numbers, nulls, lists
/// where objects belong, missing and empty fields): where builtins fail and undefined spreads, the
/// evaluators are most likely to part. Crosscheck on every built-in must report no difference.
#[test]
fn the_vm_agrees_with_the_interpreter_on_odd_workloads() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let odd = [
        "true",
        "false",
        "\"true\"",
        "yes",
        "null",
        "0",
        "\"0\"",
        "1000",
        "-1",
        "1.5",
        "[]",
        "{}",
        "\"\"",
        "[\"NET_ADMIN\"]",
        "\"NET_ADMIN\"",
        "[ALL]",
        "{add: [SYS_ADMIN]}",
        "{drop: [ALL]}",
        "\"500m\"",
        "2",
        "{cpu: 1, memory: 1Gi}",
        "{cpu: \"\", memory: null}",
        "/var/run/docker.sock",
        "{path: /etc, type: Directory}",
        "\"RuntimeDefault\"",
        "{type: Localhost}",
        "{type: Unconfined}",
        "[{containerPort: 80, hostPort: 80}]",
        "[{hostPort: \"x\"}]",
    ];
    let fields = [
        "securityContext: {privileged: V}",
        "securityContext: {allowPrivilegeEscalation: V}",
        "securityContext: {capabilities: V}",
        "securityContext: {capabilities: {add: V}}",
        "securityContext: {runAsUser: V, runAsNonRoot: V}",
        "securityContext: {readOnlyRootFilesystem: V}",
        "securityContext: {seccompProfile: V}",
        "securityContext: V",
        "resources: V",
        "resources: {limits: V, requests: V}",
        "ports: V",
        "lifecycle: {stopSignal: V}",
    ];
    let pod_fields = [
        "hostNetwork: V",
        "hostPID: V",
        "hostIPC: V",
        "volumes: [{name: v, hostPath: V}]",
        "volumes: V",
        "nodeSelector: V",
        "tolerations: V",
        "securityContext: V",
        "hostnameOverride: V",
    ];
    for i in 0..160 {
        let mut containers = String::new();
        for c in 0..1 + next(3) {
            let image =
                ["nginx", "registry.corp.example/team/app:1", "gcr.io/corp-evil/x", "docker.io/library/busybox"]
                    [next(4)];
            containers.push_str(&format!("      - name: c{c}\n        image: {image}\n"));
            let mut keys = std::collections::BTreeSet::from(["image"]);
            for _ in 0..1 + next(4) {
                let field = fields[next(fields.len())];
                // One value per key: a duplicate key is a YAML error, not a workload.
                if keys.insert(field.split(':').next().unwrap()) {
                    containers.push_str(&format!("        {}\n", field.replace('V', odd[next(odd.len())])));
                }
            }
        }
        let mut pod = String::new();
        let mut keys = std::collections::BTreeSet::new();
        for _ in 0..next(3) {
            let field = pod_fields[next(pod_fields.len())];
            if keys.insert(field.split(':').next().unwrap()) {
                pod.push_str(&format!("      {}\n", field.replace('V', odd[next(odd.len())])));
            }
        }
        let kind = ["Pod", "Deployment"][next(2)];
        let body = format!(
            "  template:\n    metadata:\n      labels: {{app: a{i}}}\n    spec:\n{pod}      containers:\n{containers}"
        );
        let text = if kind == "Pod" {
            // A Pod's spec is the template's spec, two levels up.
            let spec: String = format!("{pod}      containers:\n{containers}")
                .lines()
                .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
                .collect();
            format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\n  namespace: ns{}\nspec:\n{spec}", next(3))
        } else {
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d{i}\n  namespace: ns{}\nspec:\n  selector: {{matchLabels: {{app: a{i}}}}}\n{body}", next(3))
        };
        std::fs::write(dir.path().join(format!("w{i:03}.yaml")), text).unwrap();
    }
    let path = dir.path().to_str().unwrap();
    // The built-ins that wait for an organisation's data, configured with their examples.
    let mut args = vec![
        "check",
        path,
        "--format",
        "json",
        "--policy",
        "policies/allowed-registries/samples/constraint_example.yaml",
        "--policy",
        "policies/dedicated-node-pool/samples/constraint_example.yaml",
    ];
    // GUARDRAIL_CROSSCHECK_POLICIES=<folder> adds more templates (e.g. gatekeeper-library's).
    let extra = std::env::var("GUARDRAIL_CROSSCHECK_POLICIES").unwrap_or_default();
    if !extra.is_empty() {
        args.extend(["--policy", extra.as_str()]);
    }
    let (code, stdout, stderr) = guardrail_with("crosscheck", &args);
    assert!(!stderr.contains("crosscheck:"), "{}", &stderr[..stderr.len().min(4000)]);
    assert_eq!(code, 1, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let findings = json["findings"].as_array().unwrap();
    // The corpus exercises the pack: many policies fire, on both kinds.
    let policies: std::collections::BTreeSet<&str> = findings.iter().filter_map(|f| f["policy"].as_str()).collect();
    let is_yaml_error = |f: &&serde_json::Value| f["policy"] == "guardrail/yaml" && f["severity"] != "warn";
    let yaml_errors = findings.iter().filter(is_yaml_error).count();
    let first: Vec<&str> =
        findings.iter().filter(is_yaml_error).take(3).filter_map(|f| f["message"].as_str()).collect();
    assert!(yaml_errors < 10, "the corpus should be mostly valid YAML: {yaml_errors} errors {first:?}");
    assert!(policies.len() >= 8, "{policies:?}");
    assert!(findings.len() > 160, "{}", findings.len());
    eprintln!("{} findings from {} policies: {policies:?}", findings.len(), policies.len());
}
