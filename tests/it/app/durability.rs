//! Work survives crashes and restarts, the policy repository is trusted and checked, and the queue
//! contract holds on PostgreSQL as on SQLite.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn a_job_whose_worker_died_completes_after_a_restart() {
    let mut h = Harness::new().await;
    h.pull(20, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    let (status, _) = h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 20)).await;
    assert_eq!(status, 202, "acknowledged");
    // A worker takes the job and dies before finishing it.
    let taken = h.service.app.queue.claim("worker-that-crashed", Duration::from_millis(300)).await.unwrap();
    assert!(taken.is_some());
    h.restart().await;
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].conclusion.as_deref(), Some("failure"));
    let jobs = h.service.app.queue.jobs().await.unwrap();
    assert_eq!((jobs[0].1.as_str(), jobs[0].2), ("done", 2), "taken over after the lease, second attempt");
    h.finish().await;
}

#[tokio::test]
async fn an_acknowledged_delivery_survives_a_restart_before_any_work() {
    let mut h = Harness::new().await;
    h.pull(21, &[], &[("deploy/web.yaml", Some(CLEAN))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 21)).await;
    h.restart().await;
    assert_eq!(h.drain().await, 1);
    assert_eq!(h.gh.check_runs(REPO)[0].conclusion.as_deref(), Some("success"));
    h.finish().await;
}

#[tokio::test]
async fn a_newer_head_supersedes_a_queued_older_one() {
    let h = Harness::new().await;
    let (_, head) = h.pull(22, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 22)).await;
    let newer = h.gh.commit(REPO, Some(&head), &[("deploy/web.yaml", Some(CLEAN))]);
    h.gh.push_pull(REPO, 22, &newer);
    h.deliver("pull_request", &h.gh.pull_request("synchronize", REPO, 22)).await;
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs.len(), 1, "only the newest head is checked: {runs:#?}");
    assert_eq!(runs[0].head_sha, newer);
    let states: Vec<String> = h.service.app.queue.jobs().await.unwrap().into_iter().map(|j| j.1).collect();
    assert_eq!(states, vec!["superseded", "done"]);
    h.finish().await;
}

const POLICY_REPO: &str = "acme/policies";

pub(crate) const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8srequiredteam
  annotations:
    description: Every workload names its owning team, so on-call knows whom to page.
spec:
  crd:
    spec:
      names:
        kind: K8sRequiredTeam
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8srequiredteam
        violation[{"msg": msg}] {
          not input.review.object.metadata.labels.team
          msg := sprintf("%v %v has no team label", [input.review.object.kind, input.review.object.metadata.name])
        }
"#;

pub(crate) const CONSTRAINT: &str = "apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredTeam
metadata:
  name: workloads-need-a-team
spec:
  match:
    kinds:
      - apiGroups: [apps]
        kinds: [Deployment]
";

fn policy_repo(h: &Harness, files: &[(&str, Option<&str>)]) -> String {
    h.gh.add_repo(POLICY_REPO, INSTALLATION);
    let root = h.gh.branch_head(POLICY_REPO, "main");
    let sha = h.gh.commit(POLICY_REPO, Some(&root), files);
    h.gh.set_branch(POLICY_REPO, "main", &sha);
    sha
}

#[tokio::test]
async fn the_policy_repository_adds_policies_requires_builtins_and_lists_exemptions() {
    let h = Harness::with_args(&["--policy-repo", "acme/policies:gatekeeper"]).await;
    let org = "required: [privileged-containers]\nexemptions:\n  - policy: capabilities\n    repository: acme/*\n    name: web\n    owner: team-network\n    reason: sidecar manages iptables\n    until: \"2999-01-01\"\n";
    let sha = policy_repo(
        &h,
        &[
            ("gatekeeper/team/template.yaml", Some(TEMPLATE)),
            ("gatekeeper/team/constraint.yaml", Some(CONSTRAINT)),
            ("gatekeeper/guardrail-org.yml", Some(org)),
            ("README.md", Some("policies\n")),
        ],
    );
    // The repository tries to disable the required built-in.
    h.pull(
        30,
        &[(".github/guardrail.yml", "disable: [privileged-containers]\n")],
        &[("deploy/web.yaml", Some(PRIVILEGED))],
    );
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 30)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    let titles: Vec<&str> = run.annotations.iter().map(|a| a["title"].as_str().unwrap()).collect();
    assert_eq!(
        titles,
        vec!["K8sRequiredTeam (workloads-need-a-team)", "privileged-containers (privileged-containers)"]
    );
    let summary = run.summary.as_deref().unwrap();
    assert!(summary.contains(&format!("acme/policies@{}", &sha[..7])), "names the policy commit: {summary}");
    assert!(summary.contains("sidecar manages iptables") && summary.contains("team-network"), "{summary}");
    assert!(summary.contains("cannot be disabled"), "{summary}");
    h.finish().await;
}

#[tokio::test]
async fn a_broken_policy_repository_fails_the_check_with_a_message() {
    let h = Harness::with_args(&["--policy-repo", "acme/policies"]).await;
    let broken = TEMPLATE
        .replace("not input.review.object.metadata.labels.team", "not input.review.object.metadata.labels.team {{");
    policy_repo(&h, &[("team/template.yaml", Some(&broken)), ("team/constraint.yaml", Some(CONSTRAINT))]);
    h.pull(31, &[], &[("deploy/web.yaml", Some(CLEAN))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 31)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!(run.status, "completed");
    assert_eq!(run.conclusion.as_deref(), Some("failure"), "never a pass by mistake");
    assert_eq!(run.title.as_deref(), Some("The policy repository does not load"));
    assert!(run.summary.as_deref().unwrap().contains("team/template.yaml"), "{:?}", run.summary);
    h.finish().await;
}

#[tokio::test]
async fn a_pull_request_to_the_policy_repository_runs_its_tests() {
    let h = Harness::with_args(&["--policy-repo", "acme/policies"]).await;
    let good = policy_repo(&h, &[("team/template.yaml", Some(TEMPLATE)), ("team/constraint.yaml", Some(CONSTRAINT))]);
    let suite = "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n- name: team\n  template: template.yaml\n  constraint: constraint.yaml\n  cases:\n  - name: no-team\n    object: no-team.yaml\n    assertions:\n    - violations: yes\n  - name: escape\n    object: ../../../../etc/hostname\n    assertions:\n    - violations: no\n";
    let no_team = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n";
    let head = h.gh.commit(
        POLICY_REPO,
        Some(&good),
        &[("team/suite.yaml", Some(suite)), ("team/no-team.yaml", Some(no_team))],
    );
    h.gh.open_pull(POLICY_REPO, 1, &good, &head, None);
    h.deliver("pull_request", &h.gh.pull_request("opened", POLICY_REPO, 1)).await;
    h.drain().await;
    let run = &h.gh.check_runs(POLICY_REPO)[0];
    assert_eq!(run.title.as_deref(), Some("Policy tests: 1 passed, 1 failed"));
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert!(
        run.text.as_deref().unwrap().contains("may only read files inside the policy repository"),
        "{:?}",
        run.text
    );
    h.finish().await;
}

pub(super) use super::harness::postgres_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_postgres_queue_and_post_once() {
    let url = postgres_url().await;
    let h = Harness::with_args(&["--database-url", &url]).await;
    assert_eq!(h.service.app.queue.backend(), guardrail::queue::Backend::Postgres);
    // A second replica: its own workers, token and policy caches, on the same database and GitHub.
    let replica = h.replica().await;
    for n in 40..46 {
        h.pull(n, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
        h.deliver("pull_request", &h.gh.pull_request("opened", REPO, n)).await;
    }
    // Redeliveries and a burst about the same heads change nothing.
    for n in 40..46 {
        h.deliver("pull_request", &h.gh.pull_request("reopened", REPO, n)).await;
    }
    let (a, b) = tokio::join!(h.drain(), replica.run_until_idle());
    let b = b.expect("the replica's queue works");
    assert_eq!(a + b, 6, "each job ran once, on one replica or the other");
    assert_eq!(h.gh.check_runs(REPO).len(), 6, "one check run per pull request");
    for n in 40..46 {
        assert_eq!(h.gh.review_comments(REPO, n).len(), 2, "no duplicate comments on #{n}");
        assert_eq!(h.gh.reviews(REPO, n).len(), 1);
    }
    h.finish().await;
}
