//! Pull-request stories: what an author sees on GitHub after pushing.

use serde_json::Value;

use super::*;
use crate::fake_github::Fault;

fn markers(comments: &[crate::fake_github::ReviewComment]) -> Vec<String> {
    comments.iter().filter_map(|c| guardrail::report::review::marker_of(&c.body).map(str::to_string)).collect()
}

#[tokio::test]
async fn a_violating_pull_request_gets_a_failed_check_annotations_and_inline_comments() {
    let h = Harness::new().await;
    let (_, head) = h.pull(1, &[("README.md", "shop\n")], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    let (status, reply) = h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 1)).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["jobs"], 1);
    h.drain().await;

    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(
        (run.name.as_str(), run.head_sha.as_str(), run.status.as_str()),
        ("guardrail", head.as_str(), "completed")
    );
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert_eq!(run.title.as_deref(), Some("2 policy violation(s)"));
    let at: Vec<(String, u64, u64, String)> = run
        .annotations
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["start_line"].as_u64().unwrap(),
                a["start_column"].as_u64().unwrap_or(0),
                a["raw_details"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        at,
        vec![
            ("deploy/web.yaml".into(), 22, 13, "spec.template.spec.containers[1].securityContext.privileged".into()),
            (
                "deploy/web.yaml".into(),
                24,
                21,
                "spec.template.spec.containers[1].securityContext.capabilities.add[0]".into()
            ),
        ]
    );
    assert!(run.actions.iter().any(|a| a["identifier"] == "rerun"), "a Re-run button: {:?}", run.actions);
    assert!(run.summary.as_deref().unwrap().contains("built-in pack"), "{:?}", run.summary);

    let comments = h.gh.review_comments(REPO, 1);
    let lines: Vec<(String, Option<u64>, String)> =
        comments.iter().map(|c| (c.path.clone(), c.line, c.commit_id.clone())).collect();
    assert_eq!(
        lines,
        vec![("deploy/web.yaml".into(), Some(22), head.clone()), ("deploy/web.yaml".into(), Some(24), head.clone())]
    );
    let privileged = &comments[0].body;
    assert!(privileged.contains("privileged-containers"), "{privileged}");
    assert!(privileged.contains("```suggestion\n            privileged: false\n```"), "a one-line fix: {privileged}");
    assert!(privileged.contains("**Why it matters:**") && privileged.contains("**How to fix:**"), "{privileged}");
    assert_eq!(markers(&comments).len(), 2);
    assert_eq!(h.gh.reviews(REPO, 1).len(), 1, "one review per run");
    h.finish().await;
}

#[tokio::test]
async fn a_clean_pull_request_passes_without_comments() {
    let h = Harness::new().await;
    h.pull(2, &[], &[("deploy/web.yaml", Some(CLEAN)), ("docs/notes.txt", Some("not yaml"))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 2)).await;
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs[0].conclusion.as_deref(), Some("success"));
    assert_eq!(runs[0].title.as_deref(), Some("No policy violations"));
    assert!(runs[0].annotations.is_empty());
    assert!(h.gh.review_comments(REPO, 2).is_empty());
    assert!(h.gh.reviews(REPO, 2).is_empty(), "no empty review");
    h.finish().await;
}

#[tokio::test]
async fn a_fix_pushed_later_marks_the_old_comments_outdated() {
    let h = Harness::new().await;
    let (_, head) = h.pull(3, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 3)).await;
    h.drain().await;
    assert_eq!(h.gh.review_comments(REPO, 3).len(), 2);

    let fixed = h.gh.commit(REPO, Some(&head), &[("deploy/web.yaml", Some(CLEAN))]);
    h.gh.push_pull(REPO, 3, &fixed);
    h.deliver("pull_request", &h.gh.pull_request("synchronize", REPO, 3)).await;
    h.drain().await;

    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs.len(), 2);
    let latest = runs.iter().find(|r| r.head_sha == fixed).expect("a check run for the fix");
    assert_eq!(latest.conclusion.as_deref(), Some("success"));
    let comments = h.gh.review_comments(REPO, 3);
    assert_eq!(comments.len(), 2, "nothing new posted");
    // Outdated comments are resolved as review threads, the way reviewers expect, not hidden.
    assert_eq!(h.gh.threads_resolved(REPO, 3), vec![true, true]);
    assert!(comments.iter().all(|c| c.minimized.is_none()), "{comments:#?}");
    // Checking the fixed head again resolves nothing a second time: two GraphQL reads (review
    // threads, file contents), no mutation.
    let run_id = latest.id;
    let graphql_calls = || h.gh.calls().iter().filter(|c| c.kind == "graphql" && c.method == "POST").count();
    let before = graphql_calls();
    h.deliver("check_run", &h.gh.check_run("rerequested", REPO, run_id)).await;
    h.drain().await;
    assert_eq!(graphql_calls(), before + 2, "threads and contents read, nothing resolved again");

    // The finding comes back: its thread is reopened, and still no second comment.
    let again = h.gh.commit(REPO, Some(&fixed), &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.gh.push_pull(REPO, 3, &again);
    h.deliver("pull_request", &h.gh.pull_request("synchronize", REPO, 3)).await;
    h.drain().await;
    assert_eq!(h.gh.review_comments(REPO, 3).len(), 2, "nothing posted twice");
    assert_eq!(h.gh.threads_resolved(REPO, 3), vec![false, false], "a re-introduced finding is visible again");
    h.finish().await;
}

#[tokio::test]
async fn redelivery_and_rerun_post_nothing_twice() {
    let h = Harness::new().await;
    h.pull(4, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    let payload = h.gh.pull_request("opened", REPO, 4);
    let (status, _) = h.deliver_as("pull_request", "same-id", &payload, SECRET).await;
    assert_eq!(status, 202);
    h.drain().await;
    let (status, reply) = h.deliver_as("pull_request", "same-id", &payload, SECRET).await;
    assert_eq!((status, reply["duplicate"].as_bool()), (200, Some(true)));
    // A burst of other events about the same head coalesces into the job that already ran.
    h.deliver("pull_request", &h.gh.pull_request("reopened", REPO, 4)).await;
    h.drain().await;
    assert_eq!(h.gh.check_runs(REPO).len(), 1, "no second check run for the same head");

    // The Re-run button: a new check run, and no duplicate comments.
    let run_id = h.gh.check_runs(REPO)[0].id;
    let (status, _) = h.deliver("check_run", &h.gh.check_run("requested_action", REPO, run_id)).await;
    assert_eq!(status, 202);
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.conclusion.as_deref() == Some("failure")));
    assert_eq!(h.gh.review_comments(REPO, 4).len(), 2, "the re-run found the same two findings and posted nothing new");
    assert_eq!(h.service.app.queue.delivery_count().await.unwrap(), 3);
    h.finish().await;
}

#[tokio::test]
async fn a_bad_signature_is_refused_and_nothing_is_stored() {
    let h = Harness::new().await;
    h.pull(5, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    let payload = h.gh.pull_request("opened", REPO, 5);
    let (status, _) = h.deliver_as("pull_request", "forged", &payload, "not-the-secret").await;
    assert_eq!(status, 401);
    assert_eq!(h.service.app.queue.delivery_count().await.unwrap(), 0);
    assert_eq!(h.drain().await, 0);
    // The previous secret still works during a rotation.
    let (status, _) = h.deliver_as("pull_request", "rotated", &payload, "old-secret").await;
    assert_eq!(status, 202);
    h.drain().await;
    assert_eq!(h.gh.check_runs(REPO).len(), 1);
    h.finish().await;
}

#[tokio::test]
async fn a_pull_request_from_a_fork_is_checked_through_the_base_repository() {
    let h = Harness::new().await;
    h.gh.add_repo("mallory/shop", 99);
    let root = h.gh.branch_head(REPO, "main");
    let head = h.gh.commit(REPO, Some(&root), &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.gh.open_pull(REPO, 6, &root, &head, Some("mallory/shop"));
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 6)).await;
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs[0].conclusion.as_deref(), Some("failure"));
    assert_eq!(h.gh.review_comments(REPO, 6).len(), 2);
    assert!(h.gh.calls().iter().all(|c| !c.path.contains("mallory")), "nothing read from the fork itself");
    h.finish().await;
}

#[tokio::test]
async fn more_than_fifty_annotations_arrive_in_batches() {
    let h = Harness::new().await;
    let files: Vec<(String, String)> = (0..30)
        .map(|i| (format!("deploy/web-{i:02}.yaml"), PRIVILEGED.replace("name: web", &format!("name: web-{i}"))))
        .collect();
    let changes: Vec<(&str, Option<&str>)> = files.iter().map(|(p, t)| (p.as_str(), Some(t.as_str()))).collect();
    h.pull(7, &[], &changes);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 7)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!(run.annotations.len(), 60, "every annotation delivered");
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    let updates = h.gh.calls().iter().filter(|c| c.kind == "checks/update").count();
    assert_eq!(updates, 2, "60 annotations take two requests of at most 50");
    h.finish().await;
}

#[tokio::test]
async fn a_finding_outside_the_diff_is_an_annotation_not_a_comment() {
    let h = Harness::new().await;
    // The privileged line exists at the base; the pull request only changes the first container's image.
    let head_text = PRIVILEGED.replace(
        "          image: gcr.io/corp/pause:3.9\n          resources",
        "          image: gcr.io/corp/app:2\n          resources",
    );
    let (_, _) = h.pull(8, &[("deploy/web.yaml", PRIVILEGED)], &[("deploy/web.yaml", Some(&head_text))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 8)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!(run.annotations.len(), 2);
    assert!(h.gh.review_comments(REPO, 8).is_empty(), "line 22 is not in the diff");
    assert!(
        run.summary.as_deref().unwrap().contains("2 finding(s) are on lines this pull request did not change"),
        "{:?}",
        run.summary
    );
    h.finish().await;
}

#[tokio::test]
async fn a_rate_limited_call_is_retried_after_the_wait() {
    let h = Harness::new().await;
    h.pull(9, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.gh.inject(Fault {
        method: "GET",
        path_contains: "/pulls/9/files".into(),
        status: 429,
        headers: vec![("retry-after".into(), "1".into())],
        body: serde_json::json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
        times: 1,
    });
    h.gh.inject(Fault {
        method: "POST",
        path_contains: "/graphql".into(),
        status: 502,
        headers: vec![],
        body: serde_json::json!({"message": "Server Error"}),
        times: 1,
    });
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 9)).await;
    h.drain().await;
    let statuses: Vec<u16> =
        h.gh.calls().iter().filter(|c| c.path.ends_with("/pulls/9/files")).map(|c| c.status).collect();
    assert_eq!(statuses, vec![429, 200]);
    assert_eq!(h.gh.check_runs(REPO)[0].conclusion.as_deref(), Some("failure"), "the check still completed");
    let metrics = h.get("/metrics").await.1;
    assert!(metrics.contains("guardrail_github_rate_limit_waits_total 1"), "{metrics}");
    h.finish().await;
}

#[tokio::test]
async fn github_failing_after_every_retry_completes_the_check_with_a_message() {
    let h = Harness::new().await;
    h.pull(10, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.gh.inject(Fault {
        method: "GET",
        path_contains: "/pulls/10/files".into(),
        status: 503,
        headers: vec![],
        body: serde_json::json!({"message": "Service Unavailable"}),
        times: 1000,
    });
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 10)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!(run.status, "completed");
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert_eq!(run.title.as_deref(), Some("GitHub is failing"));
    let jobs = h.service.app.queue.jobs().await.unwrap();
    assert_eq!(jobs[0].1, "failed", "the job gave up after its attempts: {jobs:?}");
    assert!(h.gh.problems().is_empty(), "{:?}", h.gh.problems());
}

#[tokio::test]
async fn configuration_comes_from_the_default_branch_not_the_pull_request() {
    let h = Harness::new().await;
    // The base disables nothing; the head tries to switch the privileged check off and exclude its file.
    let sneaky = "disable: [privileged-containers, capabilities]\nexclude: ['deploy/**']\n";
    h.pull(
        11,
        &[(".github/guardrail.yml", "drafts: true\n")],
        &[(".github/guardrail.yml", Some(sneaky)), ("deploy/web.yaml", Some(PRIVILEGED))],
    );
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 11)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!(run.conclusion.as_deref(), Some("failure"), "{:?}", run.summary);
    assert_eq!(run.annotations.len(), 2);
    h.finish().await;
}

#[tokio::test]
async fn drafts_are_skipped_when_the_repository_says_so() {
    let h = Harness::new().await;
    h.pull(12, &[(".github/guardrail.yml", "drafts: false\n")], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.gh.set_draft(REPO, 12, true);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 12)).await;
    h.drain().await;
    assert_eq!(h.gh.check_runs(REPO)[0].conclusion.as_deref(), Some("skipped"));
    h.gh.set_draft(REPO, 12, false);
    h.deliver("pull_request", &h.gh.pull_request("ready_for_review", REPO, 12)).await;
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    assert!(runs.iter().any(|r| r.conclusion.as_deref() == Some("failure")), "{runs:#?}");
    h.finish().await;
}

#[tokio::test]
async fn an_exemption_annotation_silences_a_policy_and_is_listed() {
    let h = Harness::new().await;
    let exempt = PRIVILEGED.replace(
        "  namespace: shop\n",
        "  namespace: shop\n  annotations:\n    guardrail.dev/exempt: capabilities\n    guardrail.dev/exempt-reason: CNI needs NET_ADMIN\n    guardrail.dev/exempt-until: \"2999-12-31\"\n",
    );
    h.pull(13, &[], &[("deploy/web.yaml", Some(&exempt))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 13)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    let policies: Vec<&str> = run.annotations.iter().map(|a| a["title"].as_str().unwrap()).collect();
    assert_eq!(policies, vec!["privileged-containers (privileged-containers)"]);
    let summary = run.summary.as_deref().unwrap();
    assert!(summary.contains("Exemptions used") && summary.contains("CNI needs NET_ADMIN"), "{summary}");
    h.finish().await;
}

#[tokio::test]
async fn events_guardrail_does_not_use_are_acknowledged_and_dropped() {
    let h = Harness::new().await;
    let (status, reply) = h.deliver("installation", &h.gh.installation_created()).await;
    assert_eq!((status, reply["jobs"].as_u64()), (202, Some(0)));
    let (status, _) = h.deliver("star", &serde_json::json!({"action": "created"})).await;
    assert_eq!(status, 202);
    assert_eq!(h.drain().await, 0);
    let (status, body) = h.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert_eq!(h.get("/readyz").await.0, 200);
    let metrics = h.get("/metrics").await.1;
    assert!(
        metrics.contains("guardrail_webhook_deliveries_total{event=\"installation\",outcome=\"ignored\"} 1"),
        "{metrics}"
    );
    let _: Value = serde_json::json!(null);
    h.finish().await;
}
