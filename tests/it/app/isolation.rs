//! A policy repository's pull request whose policies crash the engine, while a normal pull
//! request is in flight: the crash stays in its worker process, its check run says what happened,
//! and the other pull request is checked as usual.

use super::*;

const POLICIES: &str = "acme/policies";

/// A template whose evaluation makes a 512 KiB string, then asks for 8192 copies of it in one
/// `concat` call (4 GiB at once): the bytecode VM (which cannot cap `concat`, and checks its memory
/// limit between instructions) allocates past the worker's memory limit and aborts the process.
pub(super) const BOMB: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sbomb
spec:
  crd:
    spec:
      names:
        kind: K8sBomb
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sbomb
        d(s) = concat("", [s, s, s, s, s, s, s, s])
        violation[{"msg": m}] {
          s1 := d(d(d(d(d("0123456789abcdef")))))
          s2 := concat("", [s1 | numbers.range(1, 8192)[_]])
          m := sprintf("%v", [count(s2)])
        }
"#;

const BOMB_CONSTRAINT: &str = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sBomb\nmetadata:\n  name: bomb\nspec:\n  match:\n    kinds:\n      - apiGroups: [apps]\n        kinds: [Deployment]\n";

const SUITE: &str = "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n- name: bomb\n  template: template.yaml\n  constraint: constraint.yaml\n  cases:\n  - name: any\n    object: deployment.yaml\n    assertions:\n    - violations: no\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_pull_request_that_crashes_the_engine_fails_alone() {
    let h = Harness::with_args(&["--policy-repo", POLICIES, "--workers", "2", "--memory-limit", "512"]).await;
    h.gh.add_repo(POLICIES, INSTALLATION);
    let root = h.gh.branch_head(POLICIES, "main");
    let base = h.gh.commit(POLICIES, Some(&root), &[("README.md", Some("policies\n"))]);
    h.gh.set_branch(POLICIES, "main", &base);
    let head = h.gh.commit(
        POLICIES,
        Some(&base),
        &[
            ("bomb/template.yaml", Some(BOMB)),
            ("bomb/constraint.yaml", Some(BOMB_CONSTRAINT)),
            ("bomb/suite.yaml", Some(SUITE)),
            ("bomb/deployment.yaml", Some(PRIVILEGED)),
        ],
    );
    h.gh.open_pull(POLICIES, 7, &base, &head, None);
    h.pull(8, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    // Both in flight at once: two workers take them together.
    h.deliver("pull_request", &h.gh.pull_request("opened", POLICIES, 7)).await;
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 8)).await;
    h.drain().await;

    let crashed = &h.gh.check_runs(POLICIES)[0];
    assert_eq!(crashed.status, "completed");
    assert_eq!(crashed.conclusion.as_deref(), Some("failure"));
    let text = crashed.text.as_deref().unwrap_or_default();
    assert!(text.contains("policy engine crashed"), "{text}");

    let normal = &h.gh.check_runs(REPO)[0];
    assert_eq!(normal.status, "completed");
    assert_eq!(normal.conclusion.as_deref(), Some("failure"));
    let titles: Vec<&str> = normal.annotations.iter().map(|a| a["title"].as_str().unwrap()).collect();
    assert!(titles.contains(&"privileged-containers (privileged-containers)"), "{titles:?}");
    h.finish().await;
}
