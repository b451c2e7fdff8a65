//! Under steady load the database stays flat: deliveries, their payloads and finished jobs are pruned
//! once older than the retention age, so rows and (on SQLite) the file's pages do not grow with the
//! number of deliveries ever received. Both databases.

use std::time::Duration;

use sqlx::AnyPool;

use super::*;

const ROUNDS: u64 = 8;
const PULLS_PER_ROUND: u64 = 6;

/// Rows in the tables that grow with traffic.
async fn rows(pool: &AnyPool) -> (i64, i64) {
    let deliveries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries").fetch_one(pool).await.unwrap();
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs").fetch_one(pool).await.unwrap();
    (deliveries, jobs)
}

/// Pages the SQLite file spans (free pages included: a file that reuses its pages stays this size).
async fn sqlite_pages(pool: &AnyPool) -> i64 {
    sqlx::query_scalar("PRAGMA page_count").fetch_one(pool).await.unwrap()
}

async fn steady_load(database: Option<String>) {
    let mut args = vec![];
    if let Some(url) = &database {
        args.extend(["--database-url", url.as_str()]);
    }
    let mut h = Harness::with_args(&args).await;
    // A short age stands in for 14 days; `prune` is what the service's retention loop calls.
    h.service.retention = Duration::from_millis(1);
    let url = database.clone().unwrap_or_else(|| h.database_url.clone());
    let pool = AnyPool::connect(&url).await.expect("a second connection to the database");
    let mut pages = vec![];
    let mut delivered = 0;
    for round in 0..ROUNDS {
        for i in 0..PULLS_PER_ROUND {
            let number = 1000 + round * PULLS_PER_ROUND + i;
            h.pull(number, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
            // An opened pull request and GitHub's redelivery-like burst about it.
            h.deliver("pull_request", &h.gh.pull_request("opened", REPO, number)).await;
            h.deliver("pull_request", &h.gh.pull_request("reopened", REPO, number)).await;
            delivered += 2;
        }
        let (deliveries, jobs) = rows(&pool).await;
        assert_eq!((deliveries, jobs), (2 * PULLS_PER_ROUND as i64, PULLS_PER_ROUND as i64), "round {round}: load");
        h.drain().await;
        // Rows are now older than the (1 ms) retention age.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let pruned = h.service.prune().await.unwrap().expect("this replica holds retention");
        assert_eq!((pruned.deliveries, pruned.jobs), (2 * PULLS_PER_ROUND, PULLS_PER_ROUND), "round {round}");
        assert_eq!(rows(&pool).await, (0, 0), "round {round}: nothing finished is kept past its age");
        if database.is_none() {
            pages.push(sqlite_pages(&pool).await);
        }
    }
    assert_eq!(delivered, 2 * ROUNDS * PULLS_PER_ROUND);
    assert_eq!(h.gh.check_runs(REPO).len(), (ROUNDS * PULLS_PER_ROUND) as usize, "the load was real work");
    if database.is_none() {
        // Freed pages are reused: once the first rounds sized the file, it does not grow.
        eprintln!("retention: SQLite pages after each round's prune: {pages:?}");
        let settled = pages[1];
        assert!(pages[2..].iter().all(|p| *p <= settled), "the file grows under steady load: {pages:?} pages");
    }
    h.finish().await;
}

#[tokio::test]
async fn retention_keeps_the_database_flat_under_steady_load_sqlite() {
    steady_load(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_database_flat_under_steady_load_postgres() {
    steady_load(Some(super::durability::postgres_url().await)).await;
}
