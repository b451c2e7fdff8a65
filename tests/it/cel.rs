//! CEL policies: the expression engine against Kubernetes' own library cases, Gatekeeper templates
//! with K8sNativeValidation code (and the engine switch), and ValidatingAdmissionPolicies with
//! their bindings, parameters, selectors, match conditions, failure policies and actions.

use std::path::PathBuf;

use guardrail::findings::Severity;
use guardrail::policy::cel::{compile, eval, Failure};
use guardrail::policy::{LoadOptions, PolicySet};
use guardrail::scan::{scan_texts, ScanOptions};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cel").join(name))
        .expect("fixture")
}

fn load(files: &[(&str, String)], cel: bool) -> PolicySet {
    let groups = vec![files.iter().map(|(n, t)| (n.to_string(), t.clone())).collect::<Vec<_>>()];
    let opts = LoadOptions { builtin: false, k8s_native_validation: cel, ..Default::default() };
    PolicySet::from_sources(&groups, &opts).unwrap_or_else(|e| panic!("policies load: {e:?}"))
}

/// `severity line pointer message` for each finding.
fn findings(policies: &PolicySet, name: &str, text: &str) -> Vec<(Severity, u32, String, String)> {
    let scan = scan_texts(&[(name.to_string(), text.to_string())], policies, &ScanOptions::default());
    assert!(scan.outcome.errors.is_empty(), "{:?}", scan.outcome.errors);
    scan.outcome
        .findings
        .iter()
        .filter(|f| !f.policy.starts_with("guardrail/"))
        .map(|f| (f.severity, f.region.line, f.pointer.clone(), f.message.clone()))
        .collect()
}

fn run(expr: &str) -> Result<String, Failure> {
    let e = compile(expr).map_err(Failure::Error)?;
    eval(&e, &[]).map(|v| format!("{v:?}"))
}

#[test]
fn kubernetes_library_cases_evaluate_as_in_the_api_server() {
    let text = fixture("conformance.txt");
    let mut failed = Vec::new();
    let mut total = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (expr, want) = line.rsplit_once(" => ").expect("case has =>");
        total += 1;
        let ok = if want == "!error" {
            run(expr).is_err()
        } else {
            match (run(expr), run(want)) {
                (Ok(got), Ok(w)) => got == w,
                _ => false,
            }
        };
        if !ok {
            failed.push(expr.to_string());
        }
    }
    // What guardrail's CEL does not do like the API server (README: not supported).
    let known = [
        r#"string(ip("192.168.0.1"))"#,
        r#"string(cidr("192.168.0.0/24"))"#,
        r#"quantity("9999999999999999999999999999999999999G").isInteger()"#,
        r#"format.named("dns1123Subdomain").hasValue()"#,
        r#"format.named("notAFormat").hasValue()"#,
    ];
    assert_eq!(failed, known, "cases that differ from Kubernetes");
    assert!(total > 150, "{total} cases");
    println!("{} of {total} Kubernetes CEL cases as the API server", total - failed.len());
}

#[test]
fn an_unknown_function_is_not_supported_not_a_pass() {
    match run("object.foo(1)").or_else(|_| run("doesNotExist(1)")) {
        Err(Failure::NotSupported(m)) => assert!(m.contains("doesNotExist"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Parser nesting is bounded: a hostile expression is a compile error, not a stack overflow.
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(compile(&deep).is_err());
}

#[test]
fn the_cel_of_a_template_runs_unless_switched_off() {
    let template = fixture("disagree-template.yaml");
    let pod = fixture("disagree-pod.yaml");
    let cel = load(&[("t.yaml", template.clone())], true);
    let got = findings(&cel, "pod.yaml", &pod);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].3, "cel: container app uses a :latest image");
    assert_eq!((got[0].1, got[0].2.as_str()), (9, "/spec/containers/0/image"));
    let rego = load(&[("t.yaml", template)], false);
    let got = findings(&rego, "pod.yaml", &pod);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].3, "rego: container sidecar has no registry");
    assert_eq!(got[0].1, 11);
}

#[test]
fn validating_admission_policies_with_bindings_params_selectors_and_actions() {
    let policies = load(&[("vap.yaml", fixture("vap-policies.yaml"))], true);
    let manifests = fixture("vap-manifests.yaml");
    let got = findings(&policies, "m.yaml", &manifests);
    insta::assert_debug_snapshot!("vap_findings", got);
    // Each finding is about its line: deleting that line makes exactly that finding go away.
    for (severity, line, _, message) in got.iter().filter(|f| !f.3.contains("audit annotation")) {
        let edited: Vec<&str> =
            manifests.lines().enumerate().filter(|(i, _)| *i + 1 != *line as usize).map(|(_, l)| l).collect();
        let after = findings(&policies, "m.yaml", &edited.join("\n"));
        assert!(
            !after.iter().any(|f| &f.3 == message && f.0 == *severity),
            "deleting line {line} left {message:?}: {after:?}"
        );
    }
}

const AUTHZ: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: authz}
spec:
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: ["*"], operations: ["*"], resources: ["*"]}]
  validations:
    - expression: authorizer.group("").resource("pods").check("create").allowed()
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: authz}
spec: {policyName: authz, validationActions: [Deny]}
"#;

#[test]
fn the_authorizer_is_not_evaluable_a_warning() {
    let policies = load(&[("a.yaml", AUTHZ.to_string())], true);
    let got = findings(&policies, "p.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: n}\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, Severity::Warn);
    assert!(got[0].3.contains("not evaluable"), "{}", got[0].3);
}

fn failing(policy: &str, param_action: &str) -> String {
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: p}}
spec:
  failurePolicy: {policy}
  paramKind: {{apiVersion: v1, kind: ConfigMap}}
  matchConstraints:
    resourceRules: [{{apiGroups: ["apps"], apiVersions: ["v1"], operations: ["CREATE"], resources: ["deployments"], scope: Namespaced}}]
  validations:
    - expression: object.spec.replicas / int(params.data.divisor) >= 0
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: b}}
spec:
  policyName: p
  validationActions: [Warn, Audit]
  paramRef: {{selector: {{matchLabels: {{use: divisor}}}}, parameterNotFoundAction: {param_action}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: zero, namespace: shop, labels: {{use: divisor}}}}
data: {{divisor: "0"}}
"#
    )
}

const DEPLOY: &str =
    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: shop}\nspec: {replicas: 2}\n";

#[test]
fn failure_policies_and_missing_parameters() {
    // Fail: the division by zero is a finding, with the binding's strictest action (Warn).
    let got = findings(&load(&[("p.yaml", failing("Fail", "Deny"))], true), "d.yaml", DEPLOY);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, Severity::Warn);
    assert!(got[0].3.contains("resulted in error"), "{}", got[0].3);
    // Ignore: no finding.
    let got = findings(&load(&[("p.yaml", failing("Ignore", "Deny"))], true), "d.yaml", DEPLOY);
    assert!(got.is_empty(), "{got:?}");
    // The parameter is in namespace shop: an object elsewhere finds none. Deny denies, Allow skips.
    let elsewhere = DEPLOY.replace("namespace: shop", "namespace: other");
    let got = findings(&load(&[("p.yaml", failing("Ignore", "Deny"))], true), "d.yaml", &elsewhere);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].3.contains("no params found"), "{}", got[0].3);
    let got = findings(&load(&[("p.yaml", failing("Ignore", "Allow"))], true), "d.yaml", &elsewhere);
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn gatekeeper_library_passes_with_either_engine() {
    let library = PathBuf::from("/tmp/gklib/library");
    if !library.is_dir() {
        println!("skipped: gatekeeper-library is not at /tmp/gklib");
        return;
    }
    for cel in [true, false] {
        let summary = guardrail::verify::run_with(
            std::slice::from_ref(&library),
            guardrail::verify::Options { k8s_native_validation: cel, ..Default::default() },
        );
        let failures: Vec<_> = summary.results.iter().filter(|r| r.error.is_some()).collect();
        assert!(failures.is_empty(), "cel={cel}: {failures:#?}");
        assert_eq!(summary.passed(), 270, "cel={cel}");
    }
}

#[test]
fn holdout_findings_at_their_lines_and_nothing_else() {
    let policies = load(&[("p.yaml", fixture("holdout/policies.yaml"))], true);
    let manifests = fixture("holdout/manifests.yaml");
    let got = findings(&policies, "m.yaml", &manifests);
    let brief: Vec<(Severity, u32)> = got.iter().map(|f| (f.0, f.1)).collect();
    // CronJob -> Job -> Pod (warn constraint; the container, as its pull policy is wrong, not
    // missing), the StatefulSet's claim, the public LoadBalancer; not legacy-lb (excluded by
    // resourceNames) nor the kube-system Pod (match condition).
    assert_eq!(brief, [(Severity::Warn, 14), (Severity::Deny, 41), (Severity::Deny, 49)], "{got:?}");
    assert!(got[0].3.starts_with("[Implied by expand-workloads] imagePullPolicy must be Always: report"));
    // Each expectation proven by the edit that fixes it: that finding, and only it, goes away.
    let fixes =
        [(16, "              imagePullPolicy: Always"), (41, "            storage: 50Gi"), (49, "  type: ClusterIP")];
    for (i, (line, text)) in fixes.iter().enumerate() {
        let edited: Vec<&str> =
            manifests.lines().enumerate().map(|(n, l)| if n + 1 == *line { *text } else { l }).collect();
        let after: Vec<(Severity, u32)> =
            findings(&policies, "m.yaml", &edited.join("\n")).iter().map(|f| (f.0, f.1)).collect();
        let mut want = brief.clone();
        want.remove(i);
        assert_eq!(after, want, "after fixing line {line}");
    }
    // With the engine switched off, the CEL-only template cannot run: a deny finding says so.
    let rego = load(&[("p.yaml", fixture("holdout/policies.yaml"))], false);
    let got = findings(&rego, "m.yaml", &manifests);
    assert!(
        got.iter().any(|f| f.0 == Severity::Deny && f.3.contains("K8s native validation is switched off")),
        "{got:?}"
    );
}
