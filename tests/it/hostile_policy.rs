//! Policies written to crash, stall or fool the engine (issue 9, policy evaluation): each runs the
//! real binary, which must exit normally with a finding or an error that names what went wrong.

use std::path::Path;
use std::process::Command;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: nginx\n  - name: d\n    image: nginx\n";

/// A template of `kind` with `rego` and a Constraint for Pods, in `dir`.
fn policy(dir: &Path, kind: &str, rego: &str) {
    policy_with(dir, kind, rego, "")
}

fn policy_with(dir: &Path, kind: &str, rego: &str, annotations: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let indented: String = rego.lines().map(|l| format!("      {l}\n")).collect();
    let lower = kind.to_lowercase();
    std::fs::write(
        dir.join("template.yaml"),
        format!(
            "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: {lower}\n{annotations}spec:\n  crd:\n    spec:\n      names:\n        kind: {kind}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n{indented}"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("constraint.yaml"),
        format!("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata:\n  name: c-{lower}\nspec:\n  match:\n    kinds:\n    - apiGroups: [\"\"]\n      kinds: [\"Pod\"]\n"),
    )
    .unwrap();
}

/// `guardrail check --no-builtin --policy <policy> <manifests> --format json` in `dir`.
fn check(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["check", "--format", "json"])
        .args(extra)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run guardrail");
    let code = out.status.code().expect("a normal exit, not a signal");
    (code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn messages(stdout: &str) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    json["findings"].as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap().to_string()).collect()
}

/// Each finding of `check --format json` as (resource name, line, message).
fn by_resource(stdout: &str) -> Vec<(String, u64, String)> {
    let json: serde_json::Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let resource = f["resource"]["name"].as_str().unwrap_or_default().to_string();
            (resource, f["line"].as_u64().unwrap(), f["message"].as_str().unwrap().to_string())
        })
        .collect()
}

/// A folder with the pod, removed when the test ends (each run used to leave one behind in /tmp).
fn scratch(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(&format!("guardrail-hostile-{name}-")).tempdir().unwrap();
    std::fs::write(dir.path().join("pod.yaml"), POD).unwrap();
    dir
}

#[test]
fn recursion_is_refused_at_load_naming_the_cycle() {
    let scratch = scratch("recursion");
    let dir = scratch.path();
    policy(
        &dir.join("self"),
        "HostileSelf",
        "package hostileself\nf(x) = y { y := f(x) }\nviolation[{\"msg\": m}] { m := sprintf(\"%v\", [f(1)]) }",
    );
    let (code, _, stderr) = check(dir, &["--no-builtin", "--policy", "self", "pod.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("recursion: data.hostileself.f -> data.hostileself.f"), "{stderr}");

    // Through another function, another rule, and an import of the package.
    policy(
        &dir.join("mutual"),
        "HostileMutual",
        "package hostilemutual\nimport data.hostilemutual as me\nf(x) = y { y := g(x) }\ng(x) = y { y := me.h[x] }\nh[k] = v { k := input.review.object.kind; v := f(k) }\nviolation[{\"msg\": m}] { m := f(\"Pod\") }",
    );
    let (code, _, stderr) = check(dir, &["--no-builtin", "--policy", "mutual", "pod.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("recursion: ") && stderr.contains("data.hostilemutual.g"), "{stderr}");

    // The same shapes without the cycle load and deny: locals and arguments named like rules are
    // not calls.
    policy(
        &dir.join("fine"),
        "HostileFine",
        "package hostilefine\nf(g) = y { y := g }\ng(x) = y { f := x; y := f }\nviolation[{\"msg\": m}] { m := g(f(\"ok\")) }",
    );
    let (code, stdout, stderr) = check(dir, &["--no-builtin", "--policy", "fine", "pod.yaml"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(messages(&stdout), vec!["ok"]);
}

#[test]
fn allocating_builtins_are_capped_and_sprintf_never_panics() {
    let scratch = scratch("builtins");
    let dir = scratch.path();
    policy(&dir.join("range"), "HostileRange", "package hostilerange\nviolation[{\"msg\": m}] { r := numbers.range(0, 2e9); m := sprintf(\"%v\", [count(r)]) }");
    let (code, stdout, stderr) = check(dir, &["--no-builtin", "--policy", "range", "pod.yaml"]);
    assert_eq!(code, 1, "{stderr}");
    let m = messages(&stdout);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("went over a limit") && m[0].contains("numbers.range") && m[0].contains("1000000"), "{m:?}");

    // Go's answer for widths and precisions past 1e6 (as OPA prints them, checked with OPA
    // v1's Go library), not a panic or gigabytes.
    policy(
        &dir.join("sprintf"),
        "HostileSprintf",
        "package hostilesprintf\nviolation[{\"msg\": m}] { m := sprintf(\"%.3000000000f\", [1.5]) }\nviolation[{\"msg\": m}] { m := sprintf(\"a%99999999999sb\", [\"x\"]) }\nviolation[{\"msg\": m}] { m := sprintf(\"%.3f|%6.2f|%-4s|\", [3.14159, 2.5, \"ab\"]) }",
    );
    let (code, stdout, stderr) = check(dir, &["--no-builtin", "--policy", "sprintf", "pod.yaml"]);
    assert_eq!(code, 1, "{stderr}");
    let mut m = messages(&stdout);
    m.sort();
    assert_eq!(
        m,
        vec![
            "%!(NOVERB)%!(EXTRA float64=1.5)".to_string(),
            "3.142|  2.50|ab  |".to_string(),
            "a%!(NOVERB)%!(EXTRA string=x)".to_string(),
        ]
    );

    // A concat that multiplies a string by 8 ten times: the concat cap on the interpreter; on the
    // VM, the memory limit of one evaluation. Either way a deny finding that names the limit.
    policy(
        &dir.join("concat"),
        "HostileConcat",
        "package hostileconcat\nd(s) = concat(\"\", [s, s, s, s, s, s, s, s])\nviolation[{\"msg\": m}] { s1 := d(d(d(d(d(\"0123456789abcdef\"))))); s2 := d(d(d(d(d(s1))))); m := sprintf(\"%v\", [count(s2)]) }",
    );
    for (mode, limit) in [("interpreter", "concat would make a string"), ("vm", "more than 128 MiB of memory")] {
        let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
            .args([
                "check",
                "--format",
                "json",
                "--memory-limit",
                "512",
                "--no-builtin",
                "--policy",
                "concat",
                "pod.yaml",
            ])
            .current_dir(dir)
            .env("GUARDRAIL_REGO", mode)
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{mode}: {stdout} {stderr}");
        let m = messages(&stdout);
        assert!(m.len() == 1 && m[0].contains("went over a limit") && m[0].contains(limit), "{mode}: {m:?}");
    }
}

/// A Pod the bomb policies below blow up on, and a control Pod they deny as usual (at line 15,
/// its `hostNetwork`).
const BOMB_AND_CONTROL: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bomb\nspec:\n  containers:\n  - name: c\n    image: nginx\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: control\nspec:\n  hostNetwork: true\n  containers:\n  - name: c\n    image: nginx\n";

/// A policy that denies the control Pod's host network, and on the Pod named `bomb` computes
/// `bomb` (Rego lines, `m` the message).
fn bomb_policy(dir: &Path, kind: &str, bomb: &str) {
    let package = kind.to_lowercase();
    policy(
        dir,
        kind,
        &format!("package {package}\nviolation[{{\"msg\": \"host network\"}}] {{ input.review.object.spec.hostNetwork }}\nviolation[{{\"msg\": m}}] {{\n  input.review.object.metadata.name == \"bomb\"\n{bomb}\n}}"),
    );
}

/// Forty locals, each `step` (with `{p}` the previous one) applied to the one before: 2^40 bytes
/// or items at the end, from the object's name (so nothing can be folded when the policy loads).
fn doubling(start: &str, step: &str) -> String {
    let mut lines = vec![format!("  s0 := {start}")];
    for i in 1..=40 {
        lines.push(format!("  s{i} := {}", step.replace("{p}", &format!("s{}", i - 1))));
    }
    lines.push("  m := sprintf(\"%v\", [count(s40)])".into());
    lines.join("\n")
}

/// Bombs that grow step by step on the bytecode VM, which cannot call the interpreter's capped
/// builtins: each is stopped by the memory limit of one evaluation, and becomes a deny finding
/// on its object naming the limit, while the control object is denied at its line as usual. The
/// worker's memory limit (1 GiB) leaves no room for the bombs' gigabytes: bounded peak memory.
#[test]
fn bombs_on_the_bytecode_vm_are_a_finding_naming_the_memory_limit() {
    let name = "input.review.object.metadata.name";
    let bombs = [
        ("HostileVmConcat", doubling(name, "concat(\"\", [{p}, {p}])")),
        ("HostileVmSprintf", doubling(name, "sprintf(\"%s%s\", [{p}, {p}])")),
        ("HostileVmArrays", doubling(&format!("[{name}]"), "array.concat({p}, {p})")),
        ("HostileVmReplace", doubling(name, "strings.replace_n({\"b\": \"bb\"}, {p})")),
        ("HostileVmMarshal", doubling(name, "json.marshal([{p}])")),
        (
            "HostileVmProduct",
            "  n := numbers.range(1, 2000)\n  c := [[x, y, z] | x := n[_]; y := n[_]; z := n[_]]\n  m := sprintf(\"%v\", [count(c)])"
                .to_string(),
        ),
    ];
    let scratch = scratch("vmbombs");
    let dir = scratch.path();
    std::fs::write(dir.join("pods.yaml"), BOMB_AND_CONTROL).unwrap();
    for (kind, bomb) in bombs {
        let sub = kind.to_lowercase();
        bomb_policy(&dir.join(&sub), kind, &bomb);
        let started = std::time::Instant::now();
        let (code, stdout, stderr) =
            check(dir, &["--memory-limit", "1024", "--no-builtin", "--policy", &sub, "pods.yaml"]);
        let took = started.elapsed();
        assert_eq!(code, 1, "{kind}: {stdout} {stderr}");
        let found = by_resource(&stdout);
        assert_eq!(found.len(), 2, "{kind}: {found:#?}");
        let bombed = found.iter().find(|f| f.0 == "bomb").unwrap_or_else(|| panic!("{kind}: {found:#?}"));
        assert!(
            bombed.2.contains("went over a limit on this object")
                && bombed.2.contains("more than 128 MiB of memory, the limit of one evaluation"),
            "{kind}: {found:#?}"
        );
        let control = found.iter().find(|f| f.0 == "control").unwrap_or_else(|| panic!("{kind}: {found:#?}"));
        assert_eq!((control.1, control.2.as_str()), (15, "host network"), "{kind}: {found:#?}");
        assert!(took < std::time::Duration::from_secs(10), "{kind} took {took:?}");
    }
}

/// The same bombs on the interpreter (`GUARDRAIL_REGO=interpreter`; policies the VM cannot take run
/// there too), which has no budget per evaluation: the worker's limit on the engine's memory (a
/// quarter of `--memory-limit`) stops them, a deny finding naming it on the bomb's object, where
/// they used to grow until the worker died and the whole check was an error.
#[test]
fn bombs_on_the_interpreter_are_a_finding_naming_the_memory_limit() {
    let name = "input.review.object.metadata.name";
    let bombs = [
        ("HostileInConcat", doubling(&format!("[{name}]"), "array.concat({p}, {p})")),
        ("HostileInReplace", doubling(name, "strings.replace_n({\"b\": \"bb\"}, {p})")),
        ("HostileInMarshal", doubling(name, "json.marshal([{p}, {p}])")),
    ];
    let scratch = scratch("inbombs");
    let dir = scratch.path();
    std::fs::write(dir.join("pods.yaml"), BOMB_AND_CONTROL).unwrap();
    for (kind, bomb) in bombs {
        let sub = kind.to_lowercase();
        bomb_policy(&dir.join(&sub), kind, &bomb);
        let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
            .args([
                "check",
                "--format",
                "json",
                "--memory-limit",
                "1024",
                "--no-builtin",
                "--policy",
                &sub,
                "pods.yaml",
            ])
            .current_dir(dir)
            .env("GUARDRAIL_REGO", "interpreter")
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{kind}: {stdout} {stderr}");
        let found = by_resource(&stdout);
        assert_eq!(found.len(), 2, "{kind}: {found:#?}");
        let bombed = found.iter().find(|f| f.0 == "bomb").unwrap_or_else(|| panic!("{kind}: {found:#?}"));
        assert!(
            bombed.2.contains("went over a limit on this object") && bombed.2.contains("more than 256 MiB of memory"),
            "{kind}: {found:#?}"
        );
        let control = found.iter().find(|f| f.0 == "control").unwrap_or_else(|| panic!("{kind}: {found:#?}"));
        assert_eq!((control.1, control.2.as_str()), (15, "host network"), "{kind}: {found:#?}");
    }
}

/// gatekeeper-library's host-probes-lifecycle shape: one function definition per probe kind, and
/// a conflict error (OPA, Gatekeeper: the object is denied) when a container's probes differ.
const PROBES: &str = r#"package hostileprobes
probe_port(c) = p { p := c.livenessProbe.httpGet.port }
probe_port(c) = p { p := c.readinessProbe.httpGet.port }
violation[{"msg": msg}] {
  c := input.review.object.spec.containers[_]
  probe_port(c) == 8080
  msg := sprintf("container %v probes port 8080", [c.name])
}"#;

#[test]
fn conflicting_functions_give_the_conflict_error_on_every_object() {
    let scratch = scratch("conflict");
    let dir = scratch.path();
    policy(&dir.join("probes"), "HostileProbes", PROBES);
    // More objects than the VM's sampled evaluations: the ones after them must not pass.
    let mut text = String::new();
    for i in 0..12 {
        let (live, ready) = if i % 3 == 0 { (8080, 8080) } else { (8080, 9090) };
        text.push_str(&format!("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\nspec:\n  containers:\n  - name: c\n    image: nginx\n    livenessProbe: {{httpGet: {{port: {live}}}}}\n    readinessProbe: {{httpGet: {{port: {ready}}}}}\n"));
    }
    std::fs::write(dir.join("pods.yaml"), text).unwrap();
    let (code, stdout, stderr) = check(dir, &["--no-builtin", "--policy", "probes", "pods.yaml"]);
    assert_eq!(code, 1, "{stderr}");
    let m = messages(&stdout);
    assert_eq!(m.len(), 12, "{m:?}");
    assert_eq!(m.iter().filter(|m| m.as_str() == "container c probes port 8080").count(), 4, "{m:?}");
    assert_eq!(
        m.iter().filter(|m| m.contains("failed on this object") && m.contains("multiple outputs")).count(),
        8,
        "{m:?}"
    );
}

#[test]
fn a_kind_defined_twice_is_an_error_unless_the_override_is_explicit() {
    let scratch = scratch("duplicate");
    let dir = scratch.path();
    let rego = "package mine\nviolation[{\"msg\": \"mine\"}] { true }";
    policy(&dir.join("a"), "HostileTwice", rego);
    policy(&dir.join("b"), "HostileTwice", rego);
    let (code, _, stderr) = check(dir, &["--no-builtin", "--policy", "a", "--policy", "b", "pod.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("kind HostileTwice is defined twice: in a/template.yaml and in b/template.yaml"),
        "{stderr}"
    );

    // A built-in's kind.
    policy(&dir.join("builtin"), "GuardrailPrivilegedContainers", rego);
    let (code, _, stderr) = check(dir, &["--policy", "builtin", "pod.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("kind GuardrailPrivilegedContainers is defined twice: in builtin:privileged-containers/template.yaml and in builtin/template.yaml"),
        "{stderr}"
    );

    // Explicit: the override wins, and only it runs.
    policy_with(
        &dir.join("over"),
        "GuardrailPrivilegedContainers",
        rego,
        "  annotations:\n    guardrail.dev/override: \"true\"\n",
    );
    std::fs::remove_file(dir.join("over/constraint.yaml")).unwrap();
    let (code, stdout, stderr) = check(dir, &["--policy", "over", "pod.yaml"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(messages(&stdout).iter().any(|m| m == "mine"), "{stdout}");

    // A --policy path with no policy in it.
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("empty/readme.md"), "nothing").unwrap();
    let (code, _, stderr) = check(dir, &["--policy", "empty", "pod.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("holds no policy"), "{stderr}");
}

#[test]
fn a_policy_that_runs_out_of_time_denies_every_object_it_applies_to() {
    let scratch = scratch("timeout");
    let dir = scratch.path();
    policy(
        &dir.join("loop"),
        "HostileLoop",
        // Loops without collecting: a comprehension that grows would reach the memory limit first
        // on a fast, idle machine.
        "package hostileloop\nviolation[{\"msg\": m}] { n := numbers.range(1, 1000000); n[a]; n[b]; a + b == -1; m := \"never\" }",
    );
    let mut text = String::new();
    for i in 0..3 {
        text.push_str(&format!("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\nspec:\n  containers:\n  - name: c\n    image: nginx\n"));
    }
    std::fs::write(dir.join("pods.yaml"), text).unwrap();
    let (code, stdout, stderr) = check(dir, &["--no-builtin", "--policy", "loop", "pods.yaml"]);
    assert_eq!(code, 1, "{stderr}");
    let m = messages(&stdout);
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m.iter().all(|m| m.contains("did not finish within its time limit")), "{m:?}");
}

#[test]
fn verify_survives_a_policy_that_crashes_the_engine() {
    let scratch = scratch("verify");
    let dir = scratch.path();
    // A gator suite whose template asks for 4 GiB in one `concat` call on the bytecode VM (which
    // cannot cap `concat`, and checks its memory limit between instructions): the worker process
    // dies, `verify` reports it and exits normally.
    policy(
        &dir.join("bomb"),
        "HostileBomb",
        "package hostilebomb\nd(s) = concat(\"\", [s, s, s, s, s, s, s, s])\nviolation[{\"msg\": m}] { s1 := d(d(d(d(d(\"0123456789abcdef\"))))); s2 := concat(\"\", [s1 | numbers.range(1, 8192)[_]]); m := sprintf(\"%v\", [count(s2)]) }",
    );
    std::fs::write(dir.join("bomb/pod.yaml"), POD).unwrap();
    std::fs::write(
        dir.join("bomb/suite.yaml"),
        "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n- name: bomb\n  template: template.yaml\n  constraint: constraint.yaml\n  cases:\n  - name: pod\n    object: pod.yaml\n    assertions:\n    - violations: no\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["verify", "--memory-limit", "512", "bomb"])
        .current_dir(dir)
        .output()
        .unwrap();
    let code = out.status.code().expect("a normal exit, not a signal");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAIL policy tests") && stdout.contains("policy engine crashed"), "{stdout}");
    assert!(stdout.ends_with("0 passed, 1 failed\n"), "{stdout}");
}

/// Keeping rules that can conflict on the interpreter must not cost the common case: helpers that
/// split by case (`S` / `not S`, `a <= b` / `a > b`, `not has_x` beside `has_x`'s statements),
/// comprehensions and `numbers.range(0, count(x))` stay on the bytecode VM, as the whole built-in
/// pack does.
#[test]
fn the_builtin_pack_stays_on_the_bytecode_vm() {
    let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["check", "examples/", "--format", "json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GUARDRAIL_LOG", "guardrail=debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let routed: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("rule can conflict") || l.contains("evaluated by the interpreter"))
        .collect();
    assert!(routed.is_empty(), "{routed:#?}");

    // The same shapes with the split removed do conflict, and go to the interpreter.
    let scratch = scratch("routing");
    let dir = scratch.path();
    policy(
        &dir.join("split"),
        "HostileSplit",
        "package hostilesplit\nlimit_text = \"none\" { input.review.object.spec.replicas <= 0 }\nlimit_text = t { input.review.object.spec.replicas > 0; t := \"some\" }\nviolation[{\"msg\": m}] { m := limit_text }",
    );
    policy(
        &dir.join("overlap"),
        "HostileOverlap",
        "package hostileoverlap\nlimit_text = \"none\" { input.review.object.spec.replicas <= 0 }\nlimit_text = t { input.review.object.spec.replicas >= 0; t := \"some\" }\nviolation[{\"msg\": m}] { m := limit_text }",
    );
    policy(
        &dir.join("literal"),
        "HostileLiteral",
        "package hostileliteral\nmult(\"E\") = 10 { true }\nmult(\"P\") = 5 { true }\nviolation[{\"msg\": m}] { m := sprintf(\"%v\", [mult(\"E\")]) }",
    );
    std::fs::write(dir.join("n.yaml"), "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  replicas: 0\n")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args([
            "check",
            "--format",
            "json",
            "--no-builtin",
            "--policy",
            "split",
            "--policy",
            "overlap",
            "--policy",
            "literal",
            "n.yaml",
        ])
        .current_dir(dir)
        .env("GUARDRAIL_LOG", "guardrail=debug")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let routed: Vec<&str> = stderr.lines().filter(|l| l.contains("rule can conflict")).collect();
    assert_eq!(routed.len(), 1, "{routed:#?}");
    assert!(routed[0].contains("HostileOverlap"), "{routed:#?}");
    let mut m = messages(&stdout);
    m.sort();
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!((m[0].as_str(), m[1].as_str()), ("10", "none"));
    assert!(m[2].contains("HostileOverlap failed on this object") && m[2].contains("conflict"), "{m:?}");
}

/// regorus's parser backtracks over every `[` and `{`: 40 levels did not finish (a 2.8 KB policy
/// found by the fuzzer stalled a worker). Deep nesting is refused at the bracket that crosses the
/// bound, in the template's YAML file, and so is nesting each in the first element of the one
/// around it (read twice per level) past its own bound; the nesting real policies use still loads.
#[test]
fn brackets_nested_past_the_bound_are_refused_at_the_bracket_not_parsed_for_ever() {
    let scratch = scratch("nesting");
    let dir = scratch.path();
    let rego = |open: &str, depth: usize| {
        format!(
            "package hostiledeep\nviolation[{{\"msg\": m}}] {{\n  x := {}1{}\n  count(x) > 0\n  m := \"deep\"\n}}",
            open.repeat(depth),
            "]".repeat(depth)
        )
    };
    policy(&dir.join("deep"), "HostileDeep", &rego("[1, ", 40));
    let (code, _, stderr) = check(dir, &["--no-builtin", "--policy", "deep", "pod.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("brackets nested more than 13 deep"), "{stderr}");
    // Rego line 3 is the YAML file's line 15 (the block starts at line 13, indented by 6); the rule
    // body's `{` is level 1, so the 13th `[` after `  x := ` (Rego column 8 + 4 * 12, 6 more in YAML)
    // crosses the bound.
    assert!(stderr.contains("template.yaml:15:62"), "{stderr}");

    policy(&dir.join("first"), "HostileFirst", &rego("[", 7));
    let (code, _, stderr) = check(dir, &["--no-builtin", "--policy", "first", "pod.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("more than 6 deep each in the first element"), "{stderr}");
    // The rule's body is read once, so the 7th `[` (Rego column 7 + 7) crosses it.
    assert!(stderr.contains("template.yaml:15:20"), "{stderr}");

    for (open, depth) in [("[1, ", 12), ("[", 6)] {
        policy(&dir.join("fine"), "HostileDeepFine", &rego(open, depth));
        let (code, stdout, stderr) = check(dir, &["--no-builtin", "--policy", "fine", "pod.yaml"]);
        assert_eq!(code, 1, "{open} {depth}: {stderr}");
        assert_eq!(messages(&stdout), vec!["deep"]);
    }
}

/// regorus's lexer reads a NUL character as the end of the file: a rule after one would be dropped
/// without a word (found by the `rego_rewrite` fuzz target). A policy with one is refused where it is.
#[test]
fn a_nul_character_in_a_rego_file_is_refused_not_read_as_its_end() {
    let scratch = scratch("nul");
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("nul")).unwrap();
    let rego = "package main\n\ndeny[msg] {\n  input.kind == \"Pod\"\n  msg := \"before\"\n}\n\0\ndeny[msg] {\n  msg := \"after\"\n}\n";
    std::fs::write(dir.join("nul/policy.rego"), rego).unwrap();
    let (code, stdout, stderr) = check(dir, &["--no-builtin", "--policy", "nul", "pod.yaml"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("NUL character") && stderr.contains("policy.rego:7:1"), "{stderr}");

    std::fs::write(dir.join("nul/policy.rego"), rego.replace('\0', "")).unwrap();
    let (code, stdout, stderr) = check(dir, &["--no-builtin", "--policy", "nul", "pod.yaml"]);
    assert_eq!(code, 1, "{stderr}");
    let mut m = messages(&stdout);
    m.sort();
    assert_eq!(m, vec!["after", "before"]);
}
