//! A check that GitHub kept failing is not left for a person to re-run: after the quick retries the
//! author sees an honest failure, and the job keeps its place and completes the same run once GitHub
//! recovers (Re-run still works, at once). A check run is recognised by the identity of the attempt
//! that created it, not by its start time, and a job superseded after it opened a run closes it.

use std::time::Duration;

use guardrail::jobs::JobRetry;

use super::*;
use crate::fake_github::{Fault, WriteMode};

/// Three quick attempts, then up to four slow ones `later` apart (doubling).
fn slow_retry(later: Duration) -> JobRetry {
    JobRetry {
        max_attempts: 3,
        base: Duration::from_millis(20),
        cap: Duration::from_millis(200),
        later,
        later_cap: later * 4,
        later_attempts: 4,
    }
}

/// The changed-files listing fails with GitHub's HTML 502 page until the faults are cleared.
fn files_fail(h: &Harness, number: u64) {
    h.gh.inject(Fault {
        method: "*",
        path_contains: format!("/pulls/{number}/files"),
        status: 502,
        headers: vec![],
        body: serde_json::json!("<html><body><h1>502 Bad Gateway</h1></body></html>"),
        times: 1000,
    });
}

/// Runs `n` attempts of the queued job, one at a time (waiting for each retry to fall due).
async fn attempts(h: &Harness, n: usize) {
    let app = h.service.app.clone();
    let handler = move |job| guardrail::jobs::perform(app.clone(), job);
    let worker = h.service.worker(0);
    for _ in 0..n {
        while !worker.run_one(&handler).await.expect("queue works") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// After the quick attempts: the run says, in words, that GitHub failed and when guardrail tries
/// again, offers Re-run, and the job is still queued.
async fn assert_given_up_for_now(h: &Harness, head: &str) -> u64 {
    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run.head_sha, head);
    assert_eq!((run.status.as_str(), run.conclusion.as_deref()), ("completed", Some("failure")));
    assert_eq!(run.title.as_deref(), Some("GitHub is failing"));
    let summary = run.summary.as_deref().unwrap();
    assert!(summary.contains("tries again by itself at") && summary.contains("Re-run"), "{summary}");
    assert!(!summary.contains('<'), "no upstream HTML: {summary}");
    assert!(!run.actions.is_empty(), "the Re-run button");
    let jobs = h.service.app.queue.jobs().await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].1.as_str(), jobs[0].2), ("queued", 3), "the job keeps its place: {jobs:?}");
    run.id
}

#[tokio::test]
async fn a_check_github_kept_failing_completes_later_by_itself() {
    let h = Harness::with_retry(&[], call_policy(), slow_retry(Duration::from_millis(300))).await;
    let (_, head) = h.pull(60, &[], &[("deploy/web.yaml", Some(CLEAN))]);
    files_fail(&h, 60);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 60)).await;
    attempts(&h, 3).await;
    let id = assert_given_up_for_now(&h, &head).await;
    // GitHub recovers. Nobody presses anything.
    h.gh.state().faults.clear();
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs.len(), 1, "the same run is completed again, no second one: {runs:#?}");
    assert_eq!(runs[0].id, id);
    assert_eq!((runs[0].status.as_str(), runs[0].conclusion.as_deref()), ("completed", Some("success")));
    h.finish().await;
}

#[tokio::test]
async fn slow_attempts_are_bounded_and_end_in_a_failure_that_asks_for_rerun() {
    let h = Harness::with_retry(&[], call_policy(), slow_retry(Duration::from_millis(50))).await;
    h.pull(61, &[], &[("deploy/web.yaml", Some(CLEAN))]);
    files_fail(&h, 61);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 61)).await;
    h.drain().await;
    let jobs = h.service.app.queue.jobs().await.unwrap();
    assert_eq!((jobs[0].1.as_str(), jobs[0].2), ("failed", 3 + 4), "3 quick and 4 slow attempts: {jobs:?}");
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!((run.status.as_str(), run.conclusion.as_deref()), ("completed", Some("failure")));
    let summary = run.summary.as_deref().unwrap();
    assert!(summary.contains("GitHub kept failing") && summary.contains("Use **Re-run**"), "{summary}");
    assert!(!summary.contains("tries again by itself"), "no promise it will not keep: {summary}");
}

#[tokio::test]
async fn rerun_while_the_job_waits_for_its_slow_attempt_runs_it_at_once() {
    // The slow attempt is an hour away: only the Re-run can make the queue drain now.
    let h = Harness::with_retry(&[], call_policy(), slow_retry(Duration::from_secs(3600))).await;
    let (_, head) = h.pull(62, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    files_fail(&h, 62);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 62)).await;
    attempts(&h, 3).await;
    let id = assert_given_up_for_now(&h, &head).await;
    h.gh.state().faults.clear();
    h.deliver("check_run", &h.gh.check_run("requested_action", REPO, id)).await;
    h.drain_within(Duration::from_secs(30)).await;
    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].conclusion.as_deref(), Some("failure"));
    assert_eq!(runs[0].annotations.len(), 2, "checked this time");
    assert_eq!(h.gh.review_comments(REPO, 62).len(), 2);
    h.finish().await;
}

#[tokio::test]
async fn a_run_is_recognised_by_its_attempt_not_by_its_start_second() {
    let h = Harness::new().await;
    let (_, head) = h.pull(63, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 63)).await;
    h.drain().await;
    let first = h.gh.check_runs(REPO)[0].clone();
    // The author presses Re-run; its attempt creates a run, and GitHub's answer is lost.
    h.gh.fail_write(0, WriteMode::ApplyThenFail(502));
    h.deliver("check_run", &h.gh.check_run("requested_action", REPO, first.id)).await;
    attempts(&h, 1).await;
    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let second = runs.iter().find(|r| r.id != first.id).unwrap().clone();
    assert_eq!(second.status, "in_progress");
    {
        // Both runs started in the same second, and GitHub lists the earlier one first (its order
        // is no contract): a start time cannot tell them apart.
        let mut s = h.gh.state();
        let started = s.check_runs.iter().find(|c| c.run.id == second.id).unwrap().started_at.clone();
        let at = s.check_runs.iter().position(|c| c.run.id == first.id).unwrap();
        s.check_runs[at].started_at = started;
        let rec = s.check_runs.remove(at);
        s.check_runs.push(rec);
    }
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    assert!(runs.iter().all(|r| r.status == "completed"), "no orphan: {runs:#?}");
    let before = runs.iter().find(|r| r.id == first.id).unwrap();
    assert_eq!(before.writes, first.writes, "the other run was not touched");
    let adopted = runs.iter().find(|r| r.id == second.id).unwrap();
    assert_eq!((adopted.conclusion.as_deref(), adopted.annotations.len()), (Some("failure"), 2));
    // A re-run from a fork's point of view (GitHub leaves `pull_requests` empty): the run's
    // external id still names the pull request.
    let mut rerun = h.gh.check_run("rerequested", REPO, second.id);
    rerun["check_run"]["pull_requests"] = serde_json::json!([]);
    let (status, _) = h.deliver("check_run", &rerun).await;
    assert_eq!(status, 202);
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    assert_eq!(runs.iter().filter(|r| r.head_sha == head).count(), 3, "{runs:#?}");
    assert!(runs.iter().all(|r| r.status == "completed"));
    h.finish().await;
}

#[tokio::test]
async fn a_job_superseded_after_it_opened_a_run_closes_that_run() {
    let h = Harness::new().await;
    let (_, a) = h.pull(64, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    // The first attempt opens the run, then GitHub fails (one attempt's worth of calls).
    h.gh.inject(Fault {
        method: "*",
        path_contains: "/pulls/64/files".into(),
        status: 502,
        headers: vec![],
        body: serde_json::json!({"message": "Server Error"}),
        times: call_policy().attempts as usize,
    });
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 64)).await;
    attempts(&h, 1).await;
    let runs = h.gh.check_runs(REPO);
    assert_eq!((runs.len(), runs[0].status.as_str()), (1, "in_progress"), "the setup: {runs:#?}");
    // A newer head arrives while the job waits for its retry.
    let b = h.gh.commit(REPO, Some(&a), &[("deploy/web.yaml", Some(CLEAN))]);
    h.gh.push_pull(REPO, 64, &b);
    h.deliver("pull_request", &h.gh.pull_request("synchronize", REPO, 64)).await;
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    assert!(runs.iter().all(|r| r.status == "completed"), "nothing left Checking…: {runs:#?}");
    let old: Vec<_> = runs.iter().filter(|r| r.head_sha == a).collect();
    assert_eq!((old.len(), old[0].conclusion.as_deref()), (1, Some("neutral")), "{runs:#?}");
    let current: Vec<_> = runs.iter().filter(|r| r.head_sha == b).collect();
    assert_eq!((current.len(), current[0].conclusion.as_deref()), (1, Some("success")), "{runs:#?}");
    h.finish().await;
}

#[tokio::test]
async fn heads_pushed_within_one_second_all_get_checked() {
    let h = Harness::new().await;
    // GitHub's timestamps have whole seconds: three heads pushed in one second carry the same one.
    let second = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let same_second = |h: &Harness, payload: &mut serde_json::Value| {
        let at: chrono::DateTime<chrono::Utc> = second.parse().unwrap();
        h.gh.state().pulls.get_mut(&(REPO.to_string(), 65)).unwrap().updated_at = at;
        payload["pull_request"]["updated_at"] = serde_json::json!(second);
    };
    let (_, a) = h.pull(65, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    // a is itself a push.
    let mut sync_a = h.gh.pull_request("synchronize", REPO, 65);
    same_second(&h, &mut sync_a);
    h.deliver("pull_request", &sync_a).await;
    // b is pushed before a's job runs and before b's own delivery arrives: a's job finds the head
    // moved and makes sure b is checked.
    let b = h.gh.commit(REPO, Some(&a), &[("deploy/web.yaml", Some(CLEAN))]);
    h.gh.push_pull(REPO, 65, &b);
    let mut sync_b = h.gh.pull_request("synchronize", REPO, 65);
    same_second(&h, &mut sync_b);
    h.drain().await;
    h.deliver("pull_request", &sync_b).await;
    // c, in the same second.
    let c = h.gh.commit(REPO, Some(&b), &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.gh.push_pull(REPO, 65, &c);
    let mut sync_c = h.gh.pull_request("synchronize", REPO, 65);
    same_second(&h, &mut sync_c);
    h.deliver("pull_request", &sync_c).await;
    h.drain().await;
    let runs = h.gh.check_runs(REPO);
    let current: Vec<_> = runs.iter().filter(|r| r.head_sha == c).collect();
    assert_eq!(current.len(), 1, "the current head is checked: {runs:#?}");
    assert_eq!((current[0].status.as_str(), current[0].conclusion.as_deref()), ("completed", Some("failure")));
    assert_eq!(h.gh.review_comments(REPO, 65).iter().filter(|c2| c2.commit_id == c).count(), 2, "and commented");
    h.finish().await;
}
