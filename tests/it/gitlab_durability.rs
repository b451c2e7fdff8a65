//! GitLab's core stories on PostgreSQL as well as SQLite (the queue promises both), and a rate limit
//! that holds across replicas: GitLab answers one token's requests, whichever process sends them.

use std::time::Duration;

use guardrail::queue::RateLimitKey;
use serde_json::json;

use crate::app::postgres_url;
use crate::gitlab_app::{
    dies_after_its_writes, fix_push, open_violating, privileged, redelivery_and_rerun, statuses,
    violating_merge_request, GitLabHarness, CLEAN,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_violating_merge_request_on_postgres() {
    violating_merge_request(Some(postgres_url().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_and_a_rerun_add_nothing_on_postgres() {
    redelivery_and_rerun(Some(postgres_url().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_push_resolves_on_postgres() {
    fix_push(Some(postgres_url().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_dies_after_its_writes_is_reconciled_on_postgres() {
    dies_after_its_writes(Some(postgres_url().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_every_replica_sqlite() {
    rate_limit_across_replicas(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_every_replica_postgres() {
    rate_limit_across_replicas(Some(postgres_url().await)).await;
}

/// Two replicas on one database: one gets a 429 (longer than the inline wait, so its job goes back to
/// the queue); the other, with its own client that never saw the 429, takes the next merge request
/// and sends nothing to GitLab before the Retry-After has passed (the fake records any request sent
/// inside the window as a problem). Then both merge requests are checked.
async fn rate_limit_across_replicas(database: Option<String>) {
    let h = GitLabHarness::on(database, &[]).await;
    let replica = h.replica().await;
    let (project, first) = open_violating(&h.fake);
    h.fake.commit(project, "second", &[("deploy/pod.yaml", Some(&privileged(CLEAN)))]);
    let second = h.fake.open_mr(project, project, "second", "Also privileged");
    h.fake.rate_limit("GET", "/diffs", 3, 1);
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, first, "open", None, json!({}))).await;
    // The first replica runs the first merge request's job once: the 429, and back to the queue.
    let app = h.service.app.clone();
    let handler = move |job| guardrail::jobs::perform(app.clone(), job);
    assert!(h.service.worker(0).run_one(&handler).await.expect("queue works"));
    assert_eq!(h.fake.calls().iter().filter(|c| c.2 == 429).count(), 1);

    // The second merge request goes to the other replica, inside the window.
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, second, "open", None, json!({}))).await;
    let ran = tokio::time::timeout(Duration::from_secs(60), replica.run_until_idle())
        .await
        .expect("the queue drains")
        .expect("queue works");
    assert!(ran >= 2, "the replica checked both merge requests: {ran}");
    assert_eq!(h.fake.calls().iter().filter(|c| c.2 == 429).count(), 1, "one 429 in all");
    for (iid, branch) in [(first, "feature"), (second, "second")] {
        let head = h.fake.mr_head(project, iid);
        assert_eq!(statuses(&h.fake, project, &head), [("failed".to_string(), branch.to_string())]);
    }
    h.finish().await;
}

/// A push while the old head's check is under way (its first attempt failed after `running` and waits
/// for its retry): the old head's status ends `canceled` with the reason, never `running` for ever, and
/// the new head gets its own check.
#[tokio::test]
async fn a_push_during_the_old_heads_check_leaves_its_status_canceled_not_running() {
    let h = GitLabHarness::new(&[]).await;
    let (project, iid) = open_violating(&h.fake);
    let old = h.fake.mr_head(project, iid);
    h.fake.fail_gets("/versions", 500, "500 Internal Server Error", 3);
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    let app = h.service.app.clone();
    let handler = move |job| guardrail::jobs::perform(app.clone(), job);
    assert!(h.service.worker(0).run_one(&handler).await.expect("queue works"));
    assert_eq!(statuses(&h.fake, project, &old), [("running".to_string(), "feature".to_string())]);

    h.fake.commit(project, "feature", &[("deploy/pod.yaml", Some(CLEAN))]);
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "update", Some(&old), json!({}))).await;
    h.drain().await;
    let new = h.fake.mr_head(project, iid);
    assert_eq!(statuses(&h.fake, project, &new), [("success".to_string(), "feature".to_string())]);
    let left: Vec<_> = h.fake.statuses(project, &old).into_iter().filter(|s| s.name == "guardrail").collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].status, "canceled", "{left:?}");
    assert!(left[0].description.as_deref().unwrap_or("").contains("newer commit"), "{left:?}");
    h.finish().await;
}

/// The GitLab token's row in `rate_limits` and GitHub installations' rows never meet: not even an
/// installation id past `i64::MAX`, whose plain cast would land on GitLab's negative key.
#[tokio::test]
async fn a_gitlab_rate_limit_holds_no_github_installation_and_the_reverse() {
    let h = GitLabHarness::new(&[]).await;
    let queue = &h.service.app.queue;
    let until = guardrail::queue::now_ms() + 30_000;
    queue.set_rate_limit(RateLimitKey::GitLab, until).await.expect("recorded");
    assert_eq!(queue.rate_limit(RateLimitKey::GitLab).await.expect("read"), Some(until));
    for id in [0, 1, 77, i64::MAX as u64, u64::MAX] {
        assert_eq!(queue.rate_limit(RateLimitKey::Installation(id)).await.expect("read"), None, "installation {id}");
    }
    let other = guardrail::queue::now_ms() + 60_000;
    queue.set_rate_limit(RateLimitKey::Installation(u64::MAX), other).await.expect("recorded");
    assert_eq!(queue.rate_limit(RateLimitKey::GitLab).await.expect("read"), Some(until));
}
