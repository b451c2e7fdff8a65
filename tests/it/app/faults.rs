//! The App says exactly one true thing per head commit under crashes, lost answers, lost leases,
//! out-of-order deliveries and shutdowns. The crash-point harness arms a fault at each write the
//! check job makes (GitHub refuses it; GitHub applies it and the answer fails; GitHub applies it and
//! the worker dies while waiting), then lets the job recover, and checks the invariants: exactly one
//! completed check run for the head, none left in progress, no annotation or comment twice.

use std::collections::HashSet;
use std::time::Duration;

use super::*;
use crate::fake_github::WriteMode;

/// `n` privileged Deployments in one file: 2 findings each, so 2n annotations (over one batch of
/// 50 when n > 25).
fn many_privileged(n: usize) -> String {
    (0..n).map(|i| PRIVILEGED.replace("name: web\n", &format!("name: web-{i}\n"))).collect::<Vec<_>>().join("---\n")
}

/// The invariants for one head: one completed run, nothing in progress, `annotations` annotations
/// none of them twice, `comments` comments none of them twice.
fn assert_one_true_thing(h: &Harness, number: u64, head: &str, annotations: usize, comments: usize) {
    let runs = h.gh.check_runs(REPO);
    let in_progress: Vec<_> = runs.iter().filter(|r| r.status != "completed").collect();
    assert!(in_progress.is_empty(), "orphan runs: {in_progress:#?}");
    let for_head: Vec<_> = runs.iter().filter(|r| r.head_sha == head).collect();
    assert_eq!(for_head.len(), 1, "one check run for the head: {runs:#?}");
    let run = for_head[0];
    let unique: HashSet<String> = run.annotations.iter().map(|a| a.to_string()).collect();
    assert_eq!(unique.len(), run.annotations.len(), "an annotation was sent twice");
    assert_eq!(run.annotations.len(), annotations, "every annotation, once");
    let posted = h.gh.review_comments(REPO, number);
    let bodies: HashSet<&str> = posted.iter().map(|c| c.body.as_str()).collect();
    assert_eq!(bodies.len(), posted.len(), "a comment was posted twice");
    assert_eq!(posted.len(), comments, "every comment, once");
}

/// A clean run: how many writes, annotations and comments the story makes without faults.
async fn baseline(base: &str, content: &str) -> (usize, usize, usize) {
    let h = Harness::new().await;
    let (_, head) = h.pull(1, &[("deploy/web.yaml", base)], &[("deploy/web.yaml", Some(content))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 1)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!(run.head_sha, head);
    (h.gh.writes(), run.annotations.len(), h.gh.review_comments(REPO, 1).len())
}

/// Runs the workers until the fake has seen `writes` writes, then drops them mid-job (a kill -9 at
/// that point: the write is applied, its answer is never read).
async fn crash_after_write(h: &Harness, writes: usize) {
    let reached = async {
        while h.gh.writes() <= writes {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::select! {
        ran = h.service.run_until_idle() => panic!("the job finished although its write never answered: {ran:?}"),
        _ = reached => {}
    }
}

async fn crash_points(database: Option<String>, modes: &[&str]) {
    // The base holds 30 violating Deployments; the pull request adds one: 62 annotations (two
    // batches), 2 inline comments (only the added lines are in the diff).
    let base = many_privileged(30);
    let content = many_privileged(31);
    let (writes, annotations, comments) = baseline(&base, &content).await;
    assert_eq!(writes, 4, "create, review, two annotation batches");
    assert_eq!((annotations, comments), (62, 2));
    for at in 0..writes {
        for (m, mode) in modes.iter().enumerate() {
            let mut args = vec!["--instance-id", "crash-test"];
            if let Some(url) = &database {
                args.extend(["--database-url", url.as_str()]);
            }
            let mut h = Harness::with_args(&args).await;
            // Pull requests differ per case: on PostgreSQL the cases share one database.
            let number = 100 + (at * 10 + m) as u64;
            let (_, head) = h.pull(number, &[("deploy/web.yaml", &base)], &[("deploy/web.yaml", Some(&content))]);
            let before = h.gh.writes();
            match *mode {
                "refuse" => h.gh.fail_write(at, WriteMode::Refuse(502)),
                "apply-then-fail" => h.gh.fail_write(at, WriteMode::ApplyThenFail(502)),
                _ => h.gh.fail_write(at, WriteMode::ApplyThenHold(Duration::from_secs(5))),
            }
            // Delivery ids differ per case too (the harness numbers them from 1).
            let payload = h.gh.pull_request("opened", REPO, number);
            h.deliver_as("pull_request", &format!("crash-case-{number}"), &payload, SECRET).await;
            if *mode == "crash" {
                crash_after_write(&h, before + at).await;
                // The process restarts with the same instance id and takes its job back at once.
                h.restart().await;
            }
            h.drain().await;
            assert_one_true_thing(&h, number, &head, annotations, comments);
            h.finish().await;
        }
    }
}

#[tokio::test]
async fn every_write_boundary_is_a_crash_point_sqlite() {
    crash_points(None, &["refuse", "apply-then-fail", "crash"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_boundary_is_a_crash_point_postgres() {
    let url = super::durability::postgres_url().await;
    crash_points(Some(url), &["apply-then-fail", "crash"]).await;
}

#[tokio::test]
async fn a_write_whose_answer_times_out_is_reconciled_not_repeated() {
    let calls = guardrail::forge::github::CallPolicy { timeout: Duration::from_millis(400), ..call_policy() };
    let h = Harness::with_calls(&[], calls).await;
    let (_, head) = h.pull(5, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    // GitHub applies the check run's creation and the review, and both answers time out.
    h.gh.fail_write(0, WriteMode::ApplyThenHold(Duration::from_secs(2)));
    h.gh.fail_write(1, WriteMode::ApplyThenHold(Duration::from_secs(2)));
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 5)).await;
    h.drain().await;
    assert_one_true_thing(&h, 5, &head, 2, 2);
    assert_eq!(h.gh.check_runs(REPO)[0].conclusion.as_deref(), Some("failure"));
    h.finish().await;
}

#[tokio::test]
async fn an_older_head_delivered_late_does_not_leave_the_current_head_unchecked() {
    let h = Harness::new().await;
    let (_, a) = h.pull(6, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    let opened = h.gh.pull_request("opened", REPO, 6);
    let b = h.gh.commit(REPO, Some(&a), &[("deploy/web.yaml", Some(CLEAN))]);
    h.gh.push_pull(REPO, 6, &b);
    // The newer head's delivery arrives first, the older head's after it.
    h.deliver("pull_request", &h.gh.pull_request("synchronize", REPO, 6)).await;
    h.deliver("pull_request", &opened).await;
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    let current: Vec<_> = runs.iter().filter(|r| r.head_sha == b).collect();
    assert_eq!(current.len(), 1, "{runs:#?}");
    assert_eq!(current[0].conclusion.as_deref(), Some("success"));
    assert!(runs.iter().all(|r| r.status == "completed"));
    h.finish().await;
}

#[tokio::test]
async fn a_job_that_finds_the_head_moved_makes_sure_the_new_head_is_checked() {
    let h = Harness::new().await;
    let (_, a) = h.pull(7, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    let mut opened = h.gh.pull_request("opened", REPO, 7);
    let b = h.gh.commit(REPO, Some(&a), &[("deploy/web.yaml", Some(CLEAN))]);
    h.gh.push_pull(REPO, 7, &b);
    h.deliver("pull_request", &h.gh.pull_request("synchronize", REPO, 7)).await;
    // A misleading timestamp makes the older head look newest: its job supersedes the current
    // head's, then finds the head moved and brings the current head's job back.
    opened["pull_request"]["updated_at"] = serde_json::json!("2999-01-01T00:00:00Z");
    h.deliver("pull_request", &opened).await;
    let states: Vec<String> = h.service.app.queue.jobs().await.unwrap().into_iter().map(|j| j.1).collect();
    assert_eq!(states, vec!["superseded", "queued"], "the setup: the current head's job is superseded");
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs.iter().filter(|r| r.head_sha == b && r.status == "completed").count(), 1, "{runs:#?}");
    assert!(runs.iter().all(|r| r.head_sha != a), "nothing posted for the old head: {runs:#?}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_paused_past_its_lease_writes_nothing_when_it_resumes() {
    let url = super::durability::postgres_url().await;
    let h = Harness::with_args(&["--database-url", &url]).await;
    let (_, head) = h.pull(8, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 8)).await;
    // Replica A takes the job, then is paused past its lease.
    let stale = h.service.app.queue.claim("replica-a/0", Duration::from_millis(100)).await.unwrap().expect("claimed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Replica B takes it over and finishes it.
    let b = h.replica_as("replica-b").await;
    assert_eq!(b.run_until_idle().await.unwrap(), 1);
    let writes = h.gh.writes();
    // A resumes with its old claim: every write is fenced off, and so is its result.
    let result = guardrail::jobs::perform(h.service.app.clone(), stale.clone()).await;
    assert!(matches!(result, guardrail::queue::worker::JobResult::Retry { .. }), "{result:?}");
    assert_eq!(h.gh.writes(), writes, "the paused replica wrote nothing");
    assert!(matches!(h.service.app.queue.complete(&stale).await, Err(guardrail::queue::FenceError::LeaseLost)));
    assert_one_true_thing(&h, 8, &head, 2, 2);
    h.finish().await;
}

#[tokio::test]
async fn a_restarted_process_takes_back_its_own_job_at_once() {
    let mut h = Harness::with_args(&["--instance-id", "pod-1"]).await;
    let (_, head) = h.pull(9, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 9)).await;
    // The process holds the job (for an hour) and dies.
    let taken = h.service.app.queue.claim("pod-1/0", Duration::from_secs(3600)).await.unwrap();
    assert!(taken.is_some());
    h.restart().await;
    assert_eq!(h.drain_within(Duration::from_secs(20)).await, 1, "redone without waiting out the lease");
    assert_one_true_thing(&h, 9, &head, 2, 2);
    h.finish().await;
}

#[tokio::test]
async fn persistent_github_failure_ends_in_an_honest_failure_and_rerun_works() {
    let h = Harness::new().await;
    let (_, head) = h.pull(10, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    // The contents endpoint fails with GitHub's HTML 502 page, every time.
    h.gh.inject(crate::fake_github::Fault {
        method: "*",
        path_contains: "/pulls/10/files".into(),
        status: 502,
        headers: vec![],
        body: serde_json::json!("<html><body><h1>502 Bad Gateway</h1></body></html>"),
        times: 1000,
    });
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 10)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!((run.status.as_str(), run.conclusion.as_deref()), ("completed", Some("failure")));
    assert_eq!(run.title.as_deref(), Some("GitHub is failing"));
    let summary = run.summary.as_deref().unwrap();
    assert!(summary.contains("GitHub kept failing") && summary.contains("Re-run"), "{summary}");
    assert!(!summary.contains('<'), "no upstream HTML: {summary}");
    assert!(!run.actions.is_empty(), "the Re-run button");
    let retrying = h.gh.calls().iter().filter(|c| c.method == "PATCH").count();
    assert!(retrying >= 2, "the run said it was retrying before giving up");
    // GitHub recovers; the author presses Re-run.
    h.gh.state().faults.clear();
    let id = run.id;
    h.deliver("check_run", &h.gh.check_run("requested_action", REPO, id)).await;
    h.drain().await;
    let latest = h.gh.check_runs(REPO).into_iter().rfind(|r| r.head_sha == head).unwrap();
    assert_eq!(latest.conclusion.as_deref(), Some("failure"));
    assert_eq!(latest.annotations.len(), 2, "checked this time");
    let jobs = h.service.app.queue.jobs().await.unwrap();
    assert_eq!(jobs.last().unwrap().1, "done");
}

#[tokio::test]
async fn retention_prunes_old_deliveries_and_finished_jobs_only() {
    let h = Harness::new().await;
    h.pull(11, &[], &[("deploy/web.yaml", Some(CLEAN))]);
    h.pull(12, &[], &[("deploy/web.yaml", Some(CLEAN))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 11)).await;
    h.drain().await;
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 12)).await;
    let queue = &h.service.app.queue;
    assert_eq!(queue.delivery_count().await.unwrap(), 2);
    let pruned = queue.prune(guardrail::queue::now_ms() + 1).await.unwrap();
    assert_eq!((pruned.deliveries, pruned.jobs), (2, 1), "the queued job stays");
    let jobs = queue.jobs().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].1, "queued");
    // One replica at a time prunes.
    assert!(queue.hold_singleton("retention", "a", Duration::from_secs(60)).await.unwrap());
    assert!(!queue.hold_singleton("retention", "b", Duration::from_secs(60)).await.unwrap());
    assert!(queue.hold_singleton("retention", "a", Duration::from_secs(60)).await.unwrap());
    // Fresh rows survive the service's own pruning (14 days by default).
    assert_eq!(h.service.prune().await.unwrap(), None, "replica `a` holds retention in this test");
    h.drain().await;
    h.finish().await;
}

#[tokio::test]
async fn a_rate_limit_another_replica_saw_holds_here_too() {
    let h = Harness::new().await;
    h.pull(13, &[], &[("deploy/web.yaml", Some(CLEAN))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 13)).await;
    // Another replica was told to wait 30 s for this installation and recorded it.
    let queue = h.service.app.queue.clone();
    queue
        .set_rate_limit(guardrail::queue::RateLimitKey::Installation(INSTALLATION), guardrail::queue::now_ms() + 30_000)
        .await
        .unwrap();
    let calls = h.gh.calls().len();
    let app = h.service.app.clone();
    let ran = h.service.worker(0).run_one(&move |job| guardrail::jobs::perform(app.clone(), job)).await.unwrap();
    assert!(ran);
    assert_eq!(h.gh.calls().len(), calls, "no GitHub call inside the window");
    let jobs = queue.jobs().await.unwrap();
    assert_eq!(jobs[0].1, "queued", "back in the queue for after the wait: {jobs:?}");
    assert!(jobs[0].3.contains("rate limited"), "{jobs:?}");
}
