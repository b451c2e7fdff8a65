//! The App treats built-ins as the CLI does (one shared code path): a built-in that a repository
//! disables may still have a Constraint in the policy repository (its constraints are dropped, the
//! policies load), and built-ins that wait for the organisation's data are named in the summary.

use super::*;

const CONSTRAINT: &str = "apiVersion: constraints.gatekeeper.sh/v1beta1
kind: GuardrailPrivilegedContainers
metadata:
  name: org-privileged
spec:
  match:
    kinds:
      - apiGroups: [apps]
        kinds: [Deployment]
";

fn with_policy_repo(h: &Harness) {
    h.gh.add_repo("acme/policies", INSTALLATION);
    let root = h.gh.branch_head("acme/policies", "main");
    let sha = h.gh.commit("acme/policies", Some(&root), &[("privileged/constraint.yaml", Some(CONSTRAINT))]);
    h.gh.set_branch("acme/policies", "main", &sha);
}

fn titles(run: &crate::fake_github::CheckRun) -> Vec<String> {
    run.annotations.iter().map(|a| a["title"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn a_builtin_disabled_by_the_repository_may_have_a_constraint_in_the_policy_repository() {
    let h = Harness::with_args(&["--policy-repo", "acme/policies"]).await;
    with_policy_repo(&h);
    h.pull(
        50,
        &[(".github/guardrail.yml", "disable: [privileged-containers]\n")],
        &[("deploy/web.yaml", Some(PRIVILEGED))],
    );
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 50)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_ne!(run.title.as_deref(), Some("The policy repository does not load"), "{:?}", run.summary);
    let titles = titles(run);
    assert_eq!(titles.len(), 1, "{titles:?}");
    assert!(titles[0].starts_with("capabilities"), "only the capability finding: {titles:?}");
    h.finish().await;
}

#[tokio::test]
async fn the_summary_names_the_builtins_that_wait_for_the_organisations_data() {
    let h = Harness::new().await;
    h.pull(52, &[], &[("deploy/web.yaml", Some(CLEAN))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 52)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    let summary = run.summary.as_deref().unwrap_or_default();
    assert!(summary.contains("not configured, so not checked: allowed-registries"), "{summary}");
    h.finish().await;
}
