//! Same answers as OPA and conftest (issue 14). Each expected answer below was obtained from real
//! OPA 1.20 (its Python bindings, `opa_bindings`) on the same policy and input, and is recorded
//! here; scripts/opa-diff runs the comparison on whole libraries.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn guardrail(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("guardrail runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ab\nspec:\n  containers:\n  - name: a\n    image: a\n    securityContext:\n      privileged: true\n  - name: b\n    image: b\n";

/// The messages of a JSON check of `pod.yaml` against `policy` (sorted), and the whole report.
fn messages(dir: &Path, extra: &[&str]) -> (Vec<String>, Value) {
    let mut args = vec!["check", "--no-builtin", "--no-config", "-f", "json", "-p", "policy"];
    args.extend_from_slice(extra);
    args.push("pod.yaml");
    let (_, stdout, stderr) = guardrail(dir, &args);
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let mut found: Vec<String> =
        doc["findings"].as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap().to_string()).collect();
    found.sort();
    (found, doc)
}

fn check_policy(rego: &str, extra: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("policy/p.rego", rego), ("pod.yaml", POD)]);
    messages(dir.path(), extra).0
}

#[test]
fn some_in_a_string_iterates_nothing_and_keeps_the_other_results() {
    let rego = "package main\n\ndeny contains msg if {\n\tsome c in input.metadata.name\n\tmsg := sprintf(\"char %v\", [c])\n}\n\ndeny contains \"kind is Pod\" if input.kind == \"Pod\"\n";
    // OPA: ["kind is Pod"]
    assert_eq!(check_policy(rego, &[]), ["kind is Pod"]);
}

#[test]
fn a_reference_head_into_an_undefined_array_is_the_empty_set() {
    let v1 = "package main\n\nvolumes contains input.spec.template.spec.volumes[_]\n\ndeny contains \"no volumes\" if count(volumes) == 0\n\ndeny contains msg if {\n\tv := volumes[_]\n\tmsg := sprintf(\"volume %v\", [v.name])\n}\n";
    // OPA on the Pod: ["no volumes"]
    assert_eq!(check_policy(v1, &[]), ["no volumes"]);
    // redhat-cop's konstraint library: `pod` is false for a Pod, so `pod.spec` is undefined.
    let v0 = "package main\n\ndefault pod := false\n\npod := input.spec.template {\n\tinput.kind == \"Deployment\"\n}\n\nvolumes[pod.spec.volumes[_]]\n\ndeny[msg] {\n\tcount(volumes) == 0\n\tmsg := \"none\"\n}\n";
    // OPA (after `opa fmt --v0-v1`): ["none"]
    assert_eq!(check_policy(v0, &[]), ["none"]);
}

#[test]
fn a_variable_keyed_by_itself_iterates_the_set() {
    // raspbernetes/k8s-security-policies' `container = containers[container]`
    let rego = "package main\n\ncontainers[c] {\n\tc := input.spec.containers[_]\n}\n\nprivileged[container] {\n\tcontainer = containers[container]\n\tcontainer.securityContext.privileged\n}\n\ndeny[msg] {\n\tc := privileged[_]\n\tmsg := sprintf(\"%v is privileged\", [c.name])\n}\n";
    // OPA: ["a is privileged"]
    assert_eq!(check_policy(rego, &[]), ["a is privileged"]);
}

#[test]
fn comprehensions_that_redeclare_an_enclosing_variable() {
    let rego = r#"package main

deny contains msg if {
	some c in input.spec.containers
	names := [c | some c in input.spec.containers]
	msg := sprintf("A %v %v", [c.name, count(names)])
}

deny contains msg if {
	x := input.spec.containers
	m := {k: x | some k, x in input.spec.containers}
	msg := sprintf("F %v %v", [count(m), count(x)])
}

deny contains msg if {
	name := input.spec.containers[_].name
	same := [name | some i; input.spec.containers[i].name == name; name := input.spec.containers[i].image]
	msg := sprintf("N %v %v", [name, same])
}

deny contains msg if {
	some i
	images := {m | some i; m := input.spec.containers[i].image}
	names := [n | n := input.spec.containers[i].name]
	msg := sprintf("S %v %v", [count(images), count(names)])
}
"#;
    // OPA: the four rules as below (`same`: the first `name` is the enclosing one).
    assert_eq!(check_policy(rego, &[]), ["A a 2", "A b 2", "F 2 2", "N a [\"a\"]", "N b [\"b\"]", "S 2 2"]);
}

#[test]
fn only_package_main_runs_unless_namespaces_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("policy/main.rego", "package main\n\ndeny contains \"from main\" if input.kind == \"Pod\"\n"),
            ("policy/other.rego", "package team.pods\n\nwarn contains \"from team.pods\" if input.kind == \"Pod\"\n"),
            ("policy/bare.rego", "package bare\n\ndeny if true\n"),
            ("pod.yaml", POD),
        ],
    );
    assert_eq!(messages(dir.path(), &[]).0, ["from main"]);
    assert_eq!(messages(dir.path(), &["--rego-namespace", "team.*"]).0, ["from team.pods"]);
    // `deny if true` is a boolean, not a set: conftest reports nothing for it.
    assert_eq!(messages(dir.path(), &["--all-namespaces"]).0, ["from main", "from team.pods"]);
    // No rule in the packages asked for: conftest passes.
    let (code, _, _) = guardrail(
        dir.path(),
        &["check", "--no-builtin", "--no-config", "-p", "policy", "--rego-namespace", "notpresent", "pod.yaml"],
    );
    assert_eq!(code, 0);
}

#[test]
fn data_files_are_data_and_exceptions_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "policy/p.rego",
                "package main\n\ndeny_registry contains msg if {\n\tc := input.spec.containers[_]\n\tc.image == data.registries.denied[_]\n\tmsg := sprintf(\"%v: %v is from a denied registry\", [input.metadata.name, c.image])\n}\n",
            ),
            ("exceptions/e.rego", "package main\n\nexception contains [\"registry\"] if input.metadata.name == \"ab\"\n"),
            ("data/registries.yaml", "registries:\n  denied: [\"a\"]\n"),
            ("pod.yaml", POD),
        ],
    );
    // Without --data, `data.registries` is undefined and nothing fires (as in conftest).
    assert!(messages(dir.path(), &[]).0.is_empty());
    // With it, container `a` is from a denied registry (OPA: the same message).
    assert_eq!(messages(dir.path(), &["--data", "data"]).0, ["ab: a is from a denied registry"]);
    // The exception (another -p folder: one module set) excuses the Pod and is listed.
    let (found, doc) = messages(dir.path(), &["--data", "data", "-p", "exceptions"]);
    assert!(found.is_empty(), "{found:?}");
    let exceptions = doc["exceptions"].as_array().unwrap();
    assert_eq!(exceptions.len(), 1, "{doc}");
    assert_eq!(exceptions[0]["rule"], "deny_registry");
    assert_eq!(exceptions[0]["query"], "data.main.exception[_][_] == \"registry\"");
    assert_eq!(exceptions[0]["resource"]["name"], "ab");
}

#[test]
fn missing_builtins_are_undefined_or_errors_with_show_builtin_errors() {
    let rego = "package main\n\ndeny_dns contains \"resolved\" if {\n\tnet.lookup_ip_addr(\"not-real-domainxyz\")\n}\n\nwarn contains \"still here\" if input.kind == \"Pod\"\n";
    assert_eq!(check_policy(rego, &[]), ["still here"]);
    let with = check_policy(rego, &["--show-builtin-errors"]);
    assert!(with.iter().any(|m| m.contains("built-in error")), "{with:?}");
}

#[test]
fn combine_runs_the_modules_once_on_every_document() {
    let dir = tempfile::tempdir().unwrap();
    let second = POD.replace("name: ab", "name: cd");
    write(
        dir.path(),
        &[
            (
                "policy/p.rego",
                "package main\n\ndeny contains msg if {\n\tcount(input) > 1\n\tmsg := sprintf(\"%v objects: %v\", [count(input), [p | p := input[_].path]])\n}\n",
            ),
            ("a.yaml", POD),
            ("b.yaml", &second),
        ],
    );
    let (code, stdout, stderr) = guardrail(
        dir.path(),
        &["check", "--no-builtin", "--no-config", "-f", "json", "-p", "policy", "--combine", "b.yaml", "a.yaml"],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["findings"][0]["message"], "2 objects: [\"a.yaml\", \"b.yaml\"]");
    assert_eq!(doc["findings"][0]["file"], "Combined");
}

#[test]
fn verify_counts_test_copies_and_loads_every_path_as_one_set() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("lib/k8s.rego", "package lib.k8s\n\nis_pod if input.kind == \"Pod\"\n"),
            (
                "checks/pods_test.rego",
                "package checks\n\nimport data.lib.k8s\n\ntest_pod if {\n\tk8s.is_pod with input as {\"kind\": \"Pod\"}\n}\n\ntest_pod if {\n\tk8s.is_pod with input as {\"kind\": \"Deployment\"}\n}\n\ntest_region if {\n\tdata.region == \"eu\"\n}\n",
            ),
            ("data/region.json", "{\"region\": \"eu\"}"),
        ],
    );
    // OPA (`opa test lib checks`): test_pod passes, test_pod#01 fails, test_region fails without data.
    let (code, stdout, _) = guardrail(dir.path(), &["verify", "-v", "lib", "checks"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("ok   checks/pods_test.rego › test_pod\n"), "{stdout}");
    assert!(stdout.contains("FAIL checks/pods_test.rego › test_pod#01"), "{stdout}");
    assert!(stdout.ends_with("1 passed, 2 failed\n"), "{stdout}");
    let (_, stdout, _) = guardrail(dir.path(), &["verify", "lib", "checks", "--data", "data"]);
    assert!(stdout.ends_with("2 passed, 1 failed\n"), "{stdout}");
    // Only the packages asked for.
    let (code, stdout, _) = guardrail(dir.path(), &["verify", "lib", "checks", "--rego-namespace", "other"]);
    assert_eq!((code, stdout.as_str()), (0, "0 passed, 0 failed\n"));
}
