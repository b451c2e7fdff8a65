//! Gatekeeper templates, constraints, expansion and conftest modules, evaluated end to end, with
//! findings located at the offending field.

use guardrail::findings::Severity;

use crate::support::*;

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
spec:
  containers:
    - name: ok
      image: nginx
      resources:
        limits:
          memory: 1Gi
    - name: bad
      image: nginx
      securityContext:
        privileged: true
      resources:
        limits:
          memory: 1Gi
";

#[test]
fn message_only_templates_are_located_by_search() {
    let set = policies(false, &[("t.yaml", PRIVILEGED_TEMPLATE), ("c.yaml", PRIVILEGED_CONSTRAINT)]);
    let scan = scan(&set, &[("pod.yaml", POD)]);
    assert_eq!(
        summary(&scan.outcome.findings),
        ["TestPrivileged@pod.yaml:16:9 /spec/containers/1/securityContext/privileged"]
    );
    assert_eq!(scan.stats.located_searched, 1);
    assert!(scan.stats.locate_evaluations <= 12, "search cost {} evaluations", scan.stats.locate_evaluations);
}

#[test]
fn a_missing_field_lands_on_the_nearest_enclosing_object() {
    let set = policies(false, &[("t.yaml", PRIVILEGED_TEMPLATE), ("c.yaml", PRIVILEGED_CONSTRAINT)]);
    let pod =
        POD.replace("      resources:\n        limits:\n          memory: 1Gi\n    - name: bad", "    - name: bad");
    let scan = scan(&set, &[("pod.yaml", &pod)]);
    let found = summary(&scan.outcome.findings);
    assert!(
        found.contains(&"TestPrivileged@pod.yaml:8:7 /spec/containers/0/resources/limits/memory".to_string()),
        "{found:?}"
    );
}

#[test]
fn workloads_are_expanded_and_findings_map_into_the_parent() {
    let set = policies(false, &[("t.yaml", PRIVILEGED_TEMPLATE), ("c.yaml", PRIVILEGED_CONSTRAINT)]);
    let cron = "apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
  namespace: jobs
spec:
  schedule: '@daily'
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: run
              image: x
              securityContext: {privileged: true}
              resources: {limits: {memory: 1Gi}}
";
    let scan = scan(&set, &[("cron.yaml", cron)]);
    let f = &scan.outcome.findings;
    assert_eq!(
        summary(f),
        ["TestPrivileged@cron.yaml:15:33 /spec/jobTemplate/spec/template/spec/containers/0/securityContext/privileged"]
    );
    assert!(f[0].message.starts_with("[Implied by expand-workloads] Privileged container"), "{}", f[0].message);
    let r = f[0].resource.as_ref().unwrap();
    assert_eq!((r.kind.as_str(), r.namespace.as_str(), r.name.as_str()), ("CronJob", "jobs", "nightly"));
}

#[test]
fn expansion_templates_override_defaults_and_enforcement() {
    let expansion = "apiVersion: expansion.gatekeeper.sh/v1alpha1
kind: ExpansionTemplate
metadata:
  name: expand-deployments
spec:
  applyTo:
    - groups: [apps]
      kinds: [Deployment]
      versions: [v1]
  templateSource: spec.template
  enforcementAction: warn
  generatedGVK: {kind: Pod, group: '', version: v1}
";
    let set =
        policies(false, &[("t.yaml", PRIVILEGED_TEMPLATE), ("c.yaml", PRIVILEGED_CONSTRAINT), ("e.yaml", expansion)]);
    let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: team}\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        securityContext: {privileged: true}\n        resources: {limits: {memory: 1}}\n";
    let scan = scan(&set, &[("d.yaml", dep)]);
    let f = &scan.outcome.findings;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Warn);
    assert!(f[0].message.starts_with("[Implied by expand-deployments]"));
}

#[test]
fn constraint_match_namespaces_selectors_and_actions() {
    let constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1
kind: TestPrivileged
metadata:
  name: mesh-only
spec:
  enforcementAction: dryrun
  match:
    kinds: [{apiGroups: [''], kinds: [Pod]}]
    excludedNamespaces: ['kube-*']
    namespaceSelector:
      matchLabels: {tier: prod}
";
    let set = policies(false, &[("t.yaml", PRIVILEGED_TEMPLATE), ("c.yaml", constraint)]);
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {tier: prod}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: dev\n";
    let in_dev = POD.replace("namespace: shop", "namespace: dev");
    let in_kube = POD.replace("namespace: shop", "namespace: kube-system");
    let scan = scan(&set, &[("ns.yaml", ns), ("shop.yaml", POD), ("dev.yaml", &in_dev), ("kube.yaml", &in_kube)]);
    let f = &scan.outcome.findings;
    assert_eq!(summary(f), ["TestPrivileged@shop.yaml:16:9 /spec/containers/1/securityContext/privileged"]);
    assert_eq!(f[0].severity, Severity::Info, "dryrun is informational");
    assert_eq!(f[0].constraint, "mesh-only");
    assert!(!scan.outcome.has_deny());
}

#[test]
fn scoped_enforcement_actions_that_skip_gator_are_not_evaluated() {
    let constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1
kind: TestPrivileged
metadata: {name: webhook-only}
spec:
  enforcementAction: scoped
  scopedEnforcementActions:
    - action: deny
      enforcementPoints: [{name: validation.gatekeeper.sh}]
";
    let set = policies(false, &[("t.yaml", PRIVILEGED_TEMPLATE), ("c.yaml", constraint)]);
    assert!(scan(&set, &[("pod.yaml", POD)]).outcome.findings.is_empty());
}

#[test]
fn inventory_is_keyed_like_gator() {
    let template = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: uniquehost}
spec:
  crd: {spec: {names: {kind: UniqueHost}}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package uniquehost
        violation[{"msg": msg}] {
          host := input.review.object.spec.rules[_].host
          other := data.inventory.namespace[ns][_]["Ingress"][name]
          other.spec.rules[_].host == host
          not same(ns, name)
          msg := sprintf("host %v is also used by %v/%v", [host, ns, name])
        }
        same(ns, name) { ns == input.review.object.metadata.namespace; name == input.review.object.metadata.name }
"#;
    let constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: UniqueHost\nmetadata: {name: unique}\n";
    let set = policies(false, &[("t.yaml", template), ("c.yaml", constraint)]);
    let ing = |ns: &str, name: &str| {
        format!("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  rules:\n  - host: shop.example\n")
    };
    let scan = scan(&set, &[("a.yaml", &ing("a", "one")), ("b.yaml", &ing("b", "two"))]);
    let msgs: Vec<_> = scan.outcome.findings.iter().map(|f| f.message.clone()).collect();
    assert_eq!(msgs, ["host shop.example is also used by b/two", "host shop.example is also used by a/one"]);
    assert_eq!(scan.outcome.findings[0].region.line, 6, "located by search at the host");
}

#[test]
fn conftest_modules_v0_and_v1_with_exceptions() {
    let v1 = r#"package main
import rego.v1

deny contains msg if {
  input.kind == "Deployment"
  not input.spec.template.spec.securityContext.runAsNonRoot
  msg := sprintf("%s must run as non-root", [input.metadata.name])
}

warn_latest contains {"msg": "image uses :latest", "details": {"path": "spec.template.spec.containers[0].image"}} if {
  endswith(input.spec.template.spec.containers[0].image, ":latest")
}

exception contains rules if {
  input.metadata.name == "legacy"
  rules := [""]
}
"#;
    let set = policies(false, &[("policy.rego", v1)]);
    let dep = |name: &str| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: nginx:latest\n")
    };
    let scan = scan(&set, &[("a.yaml", &dep("api")), ("b.yaml", &dep("legacy"))]);
    let found: Vec<_> = scan
        .outcome
        .findings
        .iter()
        .map(|f| format!("{} {:?} {}:{} {}", f.policy, f.severity, f.file, f.region.line, f.message))
        .collect();
    assert_eq!(
        found,
        [
            "main Deny a.yaml:7 api must run as non-root (missing: securityContext.runAsNonRoot)",
            "main Warn a.yaml:10 image uses :latest",
            "main Warn b.yaml:10 image uses :latest",
        ]
    );
    // A package other than `main` runs when asked for (`--rego-namespace`, as conftest's `--namespace`).
    let v0 = "package k8s\ndeny[msg] {\n  input.kind == \"Service\"\n  input.spec.type == \"NodePort\"\n  msg := \"NodePort services are not allowed\"\n}\n";
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80}]\n  type: NodePort\n";
    let set = policies(false, &[("svc.rego", v0)]);
    assert!(crate::support::scan(&set, &[("svc.yaml", svc)]).outcome.findings.is_empty());
    let opts = guardrail::policy::LoadOptions {
        builtin: false,
        conftest: guardrail::policy::conftest::Options { namespaces: vec!["k8s".into()], ..Default::default() },
        ..Default::default()
    };
    let set =
        guardrail::policy::PolicySet::from_sources(&[vec![("svc.rego".to_string(), v0.to_string())]], &opts).unwrap();
    let svc_scan = crate::support::scan(&set, &[("svc.yaml", svc)]);
    assert_eq!(summary(&svc_scan.outcome.findings), ["k8s@svc.yaml:6:3 /spec/type"]);
}

#[test]
fn a_policy_that_fails_or_runs_too_long_is_an_error_finding_not_a_pass() {
    let template = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: slow}
spec:
  crd: {spec: {names: {kind: Slow}}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package slow
        violation[{"msg": "never"}] {
          count([1 | numbers.range(1, 5000)[_]; numbers.range(1, 5000)[_]]) < 0
        }
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.yaml"), template).unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: Slow\nmetadata: {name: slow}\n",
    )
    .unwrap();
    let opts = guardrail::policy::LoadOptions {
        builtin: false,
        time_limit: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    let set = guardrail::policy::PolicySet::load(&[dir.path().to_path_buf()], &opts).unwrap();
    let started = std::time::Instant::now();
    let scan = scan(&set, &[("pod.yaml", POD)]);
    assert!(started.elapsed().as_secs() < 20);
    let f = &scan.outcome.findings;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].policy.as_str(), f[0].severity, f[0].region.line), ("Slow", Severity::Deny, 1));
    assert!(f[0].message.contains("did not finish within its time limit"), "{}", f[0].message);

    // Past the first evaluations (which the interpreter checks too), the VM alone answers: its
    // own time limit must hold as well.
    let pods: Vec<(String, String)> =
        (0..10).map(|i| (format!("p{i}.yaml"), POD.replace("name: web", &format!("name: web{i}")))).collect();
    let scan = guardrail::scan::scan_texts(&pods, &set, &Default::default());
    let timeouts = scan.outcome.findings.iter().filter(|f| f.message.contains("did not finish")).count();
    assert_eq!(timeouts, 10, "{:?}", scan.outcome.findings);
}

#[test]
fn cel_only_templates_run_and_are_unsupported_with_the_engine_off() {
    let template = "apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: celonly}
spec:
  crd: {spec: {names: {kind: CelOnly}}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: K8sNativeValidation
          source:
            validations:
              - expression: 'true'
";
    let set = policies(
        false,
        &[
            ("t.yaml", template),
            ("c.yaml", "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: CelOnly\nmetadata: {name: c}\n"),
        ],
    );
    let passing = scan(&set, &[("pod.yaml", POD)]);
    assert!(passing.outcome.findings.is_empty(), "{:?}", passing.outcome.findings);
    let groups = vec![vec![
        ("t.yaml".to_string(), template.to_string()),
        (
            "c.yaml".to_string(),
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: CelOnly\nmetadata: {name: c}\n".to_string(),
        ),
    ]];
    let opts = guardrail::policy::LoadOptions { builtin: false, k8s_native_validation: false, ..Default::default() };
    let rego_only = guardrail::policy::PolicySet::from_sources(&groups, &opts).expect("loads");
    let scan = scan(&rego_only, &[("pod.yaml", POD)]);
    let f = &scan.outcome.findings;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Deny);
    assert!(f[0].message.contains("only K8sNativeValidation code"), "{}", f[0].message);
}

#[test]
fn broken_policies_fail_to_load_with_the_file_named() {
    let bad = PRIVILEGED_TEMPLATE.replace("c.securityContext.privileged\n", "c.securityContext.privileged ===\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.yaml"), bad).unwrap();
    let err = guardrail::policy::PolicySet::load(&[dir.path().to_path_buf()], &Default::default()).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(err[0].to_string().contains("TestPrivileged"), "{}", err[0]);
}

#[test]
fn the_builtin_pack_flags_the_bundled_examples() {
    let set = policies(true, &[]);
    let dep = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/deployment.yaml")).unwrap();
    let scan = scan(&set, &[("examples/deployment.yaml", &dep)]);
    let found = summary(&scan.outcome.findings);
    assert!(found.contains(&"privileged-containers@examples/deployment.yaml:34:13 /spec/template/spec/containers/1/securityContext/privileged".to_string()), "{found:?}");
    assert!(found.iter().any(|f| f.starts_with("capabilities@examples/deployment.yaml:36:")), "{found:?}");
}

#[test]
fn code_entries_with_rego_v1_and_match_by_name_scope_and_source() {
    let template = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: nolatest}
spec:
  crd: {spec: {names: {kind: NoLatest}}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: Rego
          source:
            version: "v1"
            rego: |
              package nolatest
              violation contains {"msg": msg, "details": {"path": sprintf("spec.containers[%d].image", [i])}} if {
                some i, c in input.review.object.spec.containers
                endswith(c.image, ":latest")
                msg := sprintf("%s uses :latest", [c.name])
              }
"#;
    let constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1
kind: NoLatest
metadata: {name: web-pods}
spec:
  match:
    scope: Namespaced
    name: 'web-*'
    source: Generated
";
    let set = policies(false, &[("t.yaml", template), ("c.yaml", constraint)]);
    let dep = |name: &str| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: nginx:latest\n")
    };
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-pod-by-hand, namespace: shop}\nspec:\n  containers:\n  - name: c\n    image: nginx:latest\n";
    let cluster_pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web-x}\nspec:\n  containers:\n  - name: c\n    image: nginx:latest\n";
    let scan = scan(
        &set,
        &[("web.yaml", &dep("web")), ("api.yaml", &dep("api")), ("pod.yaml", pod), ("cluster.yaml", cluster_pod)],
    );
    // Only the Pod implied by Deployment "web" (named web-pod, Generated, namespaced) matches.
    assert_eq!(summary(&scan.outcome.findings), ["NoLatest@web.yaml:9:9 /spec/template/spec/containers/0/image"]);
}

#[test]
fn conftest_violation_rules_and_named_deny_rules() {
    let rego = r#"package main

violation[{"msg": msg, "details": {}}] {
  input.kind == "Service"
  input.spec.type == "LoadBalancer"
  msg := "LoadBalancer services need an approval"
}

deny_no_owner[msg] {
  not input.metadata.labels.owner
  msg := sprintf("%s has no owner label", [input.metadata.name])
}
"#;
    let set = policies(false, &[("p.rego", rego)]);
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: lb\nspec:\n  type: LoadBalancer\n";
    let scan = scan(&set, &[("svc.yaml", svc)]);
    let msgs: Vec<_> = scan.outcome.findings.iter().map(|f| (f.severity, f.region.line, f.message.clone())).collect();
    assert_eq!(
        msgs,
        [
            (Severity::Deny, 3, "lb has no owner label (missing: labels.owner)".to_string()),
            (Severity::Deny, 6, "LoadBalancer services need an approval".to_string()),
        ]
    );
}
