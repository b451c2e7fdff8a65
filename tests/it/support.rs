//! Helpers shared by the integration tests: scan texts with chosen policies, pick findings.

use guardrail::findings::Finding;
use guardrail::policy::{LoadOptions, PolicySet};
use guardrail::scan::{scan_texts, Scan, ScanOptions};

/// The example Constraints of the built-ins that need an organisation's data (registries, node
/// pools): with them, the built-in pack is what an organisation that configured all of it runs.
pub const CONFIGURED_BUILTINS: [(&str, &str); 2] = [
    ("allowed-registries.yaml", include_str!("../../policies/allowed-registries/samples/constraint_example.yaml")),
    ("dedicated-node-pool.yaml", include_str!("../../policies/dedicated-node-pool/samples/constraint_example.yaml")),
];

/// Policies from in-memory YAML/Rego texts (no built-ins unless asked). `builtin` loads the built-in
/// pack configured as `CONFIGURED_BUILTINS` configures it.
pub fn policies(builtin: bool, files: &[(&str, &str)]) -> PolicySet {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    let configured = if builtin { &CONFIGURED_BUILTINS[..] } else { &[] };
    for (name, text) in configured {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write constraint");
        paths.push(p);
    }
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write policy");
        paths.push(p);
    }
    let opts = LoadOptions { builtin, ..Default::default() };
    PolicySet::load(&paths, &opts).unwrap_or_else(|e| panic!("policies failed to load: {e:?}"))
}

pub fn scan(policies: &PolicySet, files: &[(&str, &str)]) -> Scan {
    let texts: Vec<(String, String)> = files.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
    scan_texts(&texts, policies, &ScanOptions::default())
}

/// `policy@line:column pointer` of every finding, for compact assertions.
pub fn summary(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| format!("{}@{}:{}:{} {}", f.policy, f.file, f.region.line, f.region.column, f.pointer))
        .collect()
}

/// A message-only ConstraintTemplate in the style of gatekeeper-library's psp-privileged-container.
pub const PRIVILEGED_TEMPLATE: &str = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: testprivileged
spec:
  crd:
    spec:
      names:
        kind: TestPrivileged
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package testprivileged

        violation[{"msg": msg}] {
          c := input_containers[_]
          c.securityContext.privileged
          msg := sprintf("Privileged container is not allowed: %v, securityContext: %v", [c.name, c.securityContext])
        }

        violation[{"msg": msg}] {
          c := input_containers[_]
          not c.resources.limits.memory
          msg := sprintf("container <%v> has no memory limit", [c.name])
        }

        input_containers[c] { c := input.review.object.spec.containers[_] }
        input_containers[c] { c := input.review.object.spec.initContainers[_] }
"#;

pub const PRIVILEGED_CONSTRAINT: &str = r#"
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: TestPrivileged
metadata:
  name: no-privileged
spec:
  match:
    kinds:
      - apiGroups: [""]
        kinds: ["Pod"]
"#;
