//! Durable work. A webhook delivery and the jobs it asks for are written in one transaction before
//! GitHub gets its 2xx; workers lease jobs, and a job whose worker died is taken up again once its
//! lease runs out. One contract (`Queue`) over SQLite (the default) and PostgreSQL: the SQL is shared
//! where the dialects agree and chosen per backend where they do not.

pub mod worker;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use crate::forge::DeliveryId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct QueueError(#[from] sqlx::Error);

/// A job to be done. `dedupe_key` makes bursts coalesce: one job per key, whatever the number of
/// events asking for it. Jobs with the same `group_key` (one pull request) supersede older queued ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    pub kind: String,
    pub dedupe_key: String,
    pub group_key: String,
    pub payload: String,
    /// Run it again even if it is done (a re-run button, a re-requested check suite).
    pub force: bool,
}

/// A job a worker holds. `progress` is the job's own notes from earlier attempts (e.g. the check run
/// it already created), so a retry continues instead of starting over.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub dedupe_key: String,
    pub payload: String,
    pub attempts: i64,
    pub progress: String,
    /// The worker holding the lease.
    pub worker: String,
}

/// What happened to a delivery at intake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// The same `X-GitHub-Delivery` was stored before (a redelivery): nothing was enqueued.
    Duplicate,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobCounts {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub superseded: i64,
}

#[derive(Clone, Debug)]
pub struct Queue {
    pool: AnyPool,
    backend: Backend,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The tables, with `{ID}` standing for the one column type the dialects spell differently.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS deliveries (
        delivery_id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        action TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        payload TEXT NOT NULL,
        outcome TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS jobs (
        id {ID},
        dedupe_key TEXT NOT NULL UNIQUE,
        group_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        run_at BIGINT NOT NULL,
        lease_until BIGINT NOT NULL DEFAULT 0,
        worker TEXT NOT NULL DEFAULT '',
        rerun BIGINT NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        progress TEXT NOT NULL DEFAULT '{}',
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, run_at)",
    "CREATE INDEX IF NOT EXISTS jobs_group ON jobs (group_key, state)",
    "CREATE TABLE IF NOT EXISTS minimized_comments (node_id TEXT PRIMARY KEY, minimized_at BIGINT NOT NULL)",
];

/// A job is ready when it is queued and due, or running under a lease that ran out (its worker died).
const READY: &str = "((state = 'queued' AND run_at <= $1) OR (state = 'running' AND lease_until < $1))";

impl Queue {
    /// Connects and creates the tables if they are missing. `sqlite://FILE` creates the file.
    pub async fn connect(url: &str) -> Result<Queue, QueueError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") { Backend::Postgres } else { Backend::Sqlite };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') && !url.contains(":memory:") => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        // One SQLite connection: SQLite serialises writers anyway, and an in-memory database exists
        // per connection.
        let max = if backend == Backend::Sqlite { 1 } else { 8 };
        let pool = AnyPoolOptions::new().max_connections(max).connect(&url).await?;
        let id = match backend {
            Backend::Sqlite => {
                // Readers do not block the writer.
                sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
                "INTEGER PRIMARY KEY AUTOINCREMENT"
            }
            Backend::Postgres => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        };
        for statement in SCHEMA {
            sqlx::query(sqlx::AssertSqlSafe(statement.replace("{ID}", id))).execute(&pool).await?;
        }
        Ok(Queue { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `SELECT 1`, for readiness probes.
    pub async fn ping(&self) -> Result<(), QueueError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Stores a delivery and enqueues its jobs, atomically. A delivery id seen before enqueues nothing.
    pub async fn record_delivery(
        &self,
        delivery: &DeliveryId,
        event: &str,
        action: &str,
        payload: &str,
        outcome: &str,
        jobs: &[NewJob],
    ) -> Result<Recorded, QueueError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO deliveries (delivery_id, event, action, received_at, payload, outcome)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(&delivery.0)
        .bind(event)
        .bind(action)
        .bind(now)
        .bind(payload)
        .bind(outcome)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.commit().await?;
            return Ok(Recorded::Duplicate);
        }
        for job in jobs {
            let force = i64::from(job.force);
            sqlx::query(
                "INSERT INTO jobs (dedupe_key, group_key, kind, payload, state, run_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, 'queued', $5, $5, $5)
                 ON CONFLICT (dedupe_key) DO UPDATE SET
                   rerun = CASE WHEN $6 = 1 AND jobs.state = 'running' THEN 1 ELSE jobs.rerun END,
                   progress = CASE WHEN $6 = 1 AND jobs.state IN ('done', 'failed', 'superseded')
                                   THEN '{}' ELSE jobs.progress END,
                   attempts = CASE WHEN $6 = 1 AND jobs.state IN ('done', 'failed', 'superseded')
                                   THEN 0 ELSE jobs.attempts END,
                   payload = CASE WHEN $6 = 1 THEN excluded.payload ELSE jobs.payload END,
                   run_at = CASE WHEN $6 = 1 AND jobs.state IN ('done', 'failed', 'superseded')
                                 THEN $5 ELSE jobs.run_at END,
                   state = CASE WHEN $6 = 1 AND jobs.state IN ('done', 'failed', 'superseded')
                                THEN 'queued' ELSE jobs.state END,
                   updated_at = $5",
            )
            .bind(&job.dedupe_key)
            .bind(&job.group_key)
            .bind(&job.kind)
            .bind(&job.payload)
            .bind(now)
            .bind(force)
            .execute(&mut *tx)
            .await?;
            // A newer head supersedes queued jobs for older heads of the same pull request; a late
            // delivery about an older head must not supersede a newer one, hence the id comparison.
            sqlx::query(
                "UPDATE jobs SET state = 'superseded', updated_at = $1
                 WHERE group_key = $2 AND dedupe_key <> $3 AND state = 'queued'
                   AND id < (SELECT id FROM jobs WHERE dedupe_key = $3)",
            )
            .bind(now)
            .bind(&job.group_key)
            .bind(&job.dedupe_key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Recorded::New)
    }

    /// Takes the next ready job for `lease`, or `None` when nothing is ready.
    pub async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedJob>, QueueError> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, worker = $3, updated_at = $1
             WHERE id = (SELECT id FROM jobs WHERE {READY} ORDER BY run_at, id LIMIT 1{lock}) AND {READY}
             RETURNING id, kind, dedupe_key, payload, attempts, progress"
        );
        // Two workers can race for the same row; the loser's UPDATE matches nothing, so try a few times.
        for _ in 0..5 {
            let now = now_ms();
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(now)
                .bind(now + lease.as_millis() as i64)
                .bind(worker)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(row) = row {
                return Ok(Some(ClaimedJob {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    dedupe_key: row.try_get("dedupe_key")?,
                    payload: row.try_get("payload")?,
                    attempts: row.try_get("attempts")?,
                    progress: row.try_get("progress")?,
                    worker: worker.to_string(),
                }));
            }
            if !self.has_ready().await? {
                return Ok(None);
            }
        }
        Ok(None)
    }

    async fn has_ready(&self) -> Result<bool, QueueError> {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM jobs WHERE {READY}")))
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Keeps the job's notes for a later attempt and extends the lease (a heartbeat).
    pub async fn save_progress(&self, job: &ClaimedJob, progress: &str, lease: Duration) -> Result<(), QueueError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE jobs SET progress = $1, lease_until = $2, updated_at = $3
             WHERE id = $4 AND worker = $5 AND state = 'running'",
        )
        .bind(progress)
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(job.id)
        .bind(&job.worker)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Heartbeat: the worker is still on it.
    pub async fn extend_lease(&self, job: &ClaimedJob, worker: &str, lease: Duration) -> Result<(), QueueError> {
        let now = now_ms();
        sqlx::query("UPDATE jobs SET lease_until = $1 WHERE id = $2 AND worker = $3 AND state = 'running'")
            .bind(now + lease.as_millis() as i64)
            .bind(job.id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The job is finished. If a re-run was asked for while it ran, it goes back to the queue.
    pub async fn complete(&self, job: &ClaimedJob, worker: &str) -> Result<(), QueueError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE jobs SET
               state = CASE WHEN rerun = 1 THEN 'queued' ELSE 'done' END,
               attempts = CASE WHEN rerun = 1 THEN 0 ELSE attempts END,
               progress = CASE WHEN rerun = 1 THEN '{}' ELSE progress END,
               rerun = 0, lease_until = 0, run_at = $1, updated_at = $1, last_error = ''
             WHERE id = $2 AND worker = $3 AND state = 'running'",
        )
        .bind(now)
        .bind(job.id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts the job back to run again after `delay`.
    pub async fn retry(&self, job: &ClaimedJob, worker: &str, delay: Duration, error: &str) -> Result<(), QueueError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = $1, lease_until = 0, last_error = $2, updated_at = $3
             WHERE id = $4 AND worker = $5 AND state = 'running'",
        )
        .bind(now + delay.as_millis() as i64)
        .bind(error)
        .bind(now)
        .bind(job.id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives up on the job; the error is kept for operators.
    pub async fn fail(&self, job: &ClaimedJob, worker: &str, error: &str) -> Result<(), QueueError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE jobs SET state = CASE WHEN rerun = 1 THEN 'queued' ELSE 'failed' END,
               attempts = CASE WHEN rerun = 1 THEN 0 ELSE attempts END,
               rerun = 0, lease_until = 0, last_error = $1, updated_at = $2, run_at = $2
             WHERE id = $3 AND worker = $4 AND state = 'running'",
        )
        .bind(error)
        .bind(now)
        .bind(job.id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the job is still the newest for its pull request (a newer head supersedes it).
    pub async fn is_superseded(&self, job: &ClaimedJob) -> Result<bool, QueueError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE group_key = (SELECT group_key FROM jobs WHERE id = $1) AND id > $1",
        )
        .bind(job.id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    pub async fn counts(&self) -> Result<JobCounts, QueueError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetch_all(&self.pool).await?;
        let mut counts = JobCounts::default();
        for row in rows {
            let state: String = row.try_get("state")?;
            let n: i64 = row.try_get("n")?;
            match state.as_str() {
                "queued" => counts.queued = n,
                "running" => counts.running = n,
                "done" => counts.done = n,
                "failed" => counts.failed = n,
                "superseded" => counts.superseded = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// Every job as (dedupe_key, state, attempts, last_error), oldest first: for operators and tests.
    pub async fn jobs(&self) -> Result<Vec<(String, String, i64, String)>, QueueError> {
        let rows = sqlx::query("SELECT dedupe_key, state, attempts, last_error FROM jobs ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(QueueError)
    }

    pub async fn delivery_count(&self) -> Result<i64, QueueError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM deliveries").fetch_one(&self.pool).await?)
    }

    /// Remembers review comments guardrail minimised, so later runs do not minimise them again (GitHub's
    /// REST listing does not say whether a comment is minimised).
    pub async fn mark_minimized(&self, node_ids: &[String]) -> Result<(), QueueError> {
        let now = now_ms();
        for id in node_ids {
            sqlx::query("INSERT INTO minimized_comments (node_id, minimized_at) VALUES ($1, $2) ON CONFLICT (node_id) DO NOTHING")
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Which of `node_ids` guardrail already minimised.
    pub async fn minimized(&self, node_ids: &[String]) -> Result<std::collections::HashSet<String>, QueueError> {
        let mut out = std::collections::HashSet::new();
        for id in node_ids {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM minimized_comments WHERE node_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
            if n > 0 {
                out.insert(id.clone());
            }
        }
        Ok(out)
    }

    /// When the next queued job becomes due, if any: lets an idle worker sleep exactly that long.
    pub async fn next_due(&self) -> Result<Option<i64>, QueueError> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN state = 'queued' THEN run_at ELSE lease_until END) FROM jobs
             WHERE state IN ('queued', 'running')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(at)
    }
}
