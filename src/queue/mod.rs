//! Durable work. A webhook delivery and the jobs it asks for are written in one transaction before
//! GitHub gets its 2xx; workers lease jobs, and a job whose worker died is taken up again once its
//! lease runs out. One contract (`Queue`) over SQLite (the default) and PostgreSQL: the SQL is shared
//! where the dialects agree and chosen per backend where they do not.

mod inspect;
mod shared;
pub mod worker;

pub use inspect::JobCounts;
pub use shared::RateLimitKey;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// How new the state this job is about is, in ms since the epoch (for a pull request: when its
    /// head last changed, as the webhook payload says). Within a group, a queued job is superseded
    /// only by a job with a larger recency, never by insertion order (deliveries arrive out of order).
    pub recency: i64,
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
    /// This claim's fencing token: every progress save, completion and forge write checks that the
    /// job still carries it, so a worker whose lease was taken over cannot write any more.
    pub token: String,
    pub recency: i64,
    pub group_key: String,
}

/// A write refused because the job is no longer ours (its lease ran out and another worker took it,
/// or it was handed back).
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("the job's lease is gone (another worker holds it now)")]
    LeaseLost,
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What retention removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: u64,
    pub jobs: u64,
}

/// What happened to a delivery at intake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// The same `X-GitHub-Delivery` was stored before (a redelivery): nothing was enqueued.
    Duplicate,
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
    // One holder at a time for work that one replica should do (retention).
    "CREATE TABLE IF NOT EXISTS singletons (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until_ms BIGINT NOT NULL)",
    // Rate limits seen by any replica, per forge account (`RateLimitKey`; the column keeps its first name).
    "CREATE TABLE IF NOT EXISTS rate_limits (installation BIGINT PRIMARY KEY, until_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS deliveries_received ON deliveries (received_at)",
];

/// Columns added after the first release: (column, definition). Added when missing.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("claim_token", "TEXT NOT NULL DEFAULT ''"),
    ("instance", "TEXT NOT NULL DEFAULT ''"),
    ("recency", "BIGINT NOT NULL DEFAULT 0"),
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
        for (column, definition) in ADDED_COLUMNS {
            let present = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {column} FROM jobs LIMIT 1")))
                .fetch_optional(&pool)
                .await
                .is_ok();
            if !present {
                sqlx::query(sqlx::AssertSqlSafe(format!("ALTER TABLE jobs ADD COLUMN {column} {definition}")))
                    .execute(&pool)
                    .await?;
            }
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
                "INSERT INTO jobs (dedupe_key, group_key, kind, payload, state, run_at, created_at, updated_at, recency)
                 VALUES ($1, $2, $3, $4, 'queued', $5, $5, $5, $7)
                 ON CONFLICT (dedupe_key) DO UPDATE SET
                   rerun = CASE WHEN $6 = 1 AND jobs.state = 'running' THEN 1 ELSE jobs.rerun END,
                   progress = CASE WHEN $6 = 1 AND jobs.state IN ('done', 'failed', 'superseded')
                                   THEN '{}' ELSE jobs.progress END,
                   attempts = CASE WHEN $6 = 1 AND jobs.state IN ('queued', 'done', 'failed', 'superseded')
                                   THEN 0 ELSE jobs.attempts END,
                   payload = CASE WHEN $6 = 1 THEN excluded.payload ELSE jobs.payload END,
                   run_at = CASE WHEN $6 = 1 AND jobs.state IN ('queued', 'done', 'failed', 'superseded')
                                 THEN $5 ELSE jobs.run_at END,
                   state = CASE WHEN $6 = 1 AND jobs.state IN ('done', 'failed', 'superseded')
                                THEN 'queued' ELSE jobs.state END,
                   recency = CASE WHEN excluded.recency > jobs.recency THEN excluded.recency ELSE jobs.recency END,
                   updated_at = $5",
            )
            .bind(&job.dedupe_key)
            .bind(&job.group_key)
            .bind(&job.kind)
            .bind(&job.payload)
            .bind(now)
            .bind(force)
            .bind(job.recency)
            .execute(&mut *tx)
            .await?;
            supersede(&mut tx, &job.group_key, now).await?;
        }
        tx.commit().await?;
        Ok(Recorded::New)
    }

    /// Takes the next ready job for `lease`, or `None` when nothing is ready. `worker` is
    /// `INSTANCE/n`: the instance part lets a restarted process take back its own jobs at once.
    pub async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<ClaimedJob>, QueueError> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let instance = worker.rsplit_once('/').map_or(worker, |(i, _)| i);
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, worker = $3, updated_at = $1,
               claim_token = $4, instance = $5
             WHERE id = (SELECT id FROM jobs WHERE {READY} ORDER BY run_at, id LIMIT 1{lock}) AND {READY}
             RETURNING id, kind, dedupe_key, payload, attempts, progress, recency, group_key"
        );
        // Two workers can race for the same row; the loser's UPDATE matches nothing, so try a few times.
        for _ in 0..5 {
            let now = now_ms();
            let token = new_token();
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(now)
                .bind(now + lease.as_millis() as i64)
                .bind(worker)
                .bind(&token)
                .bind(instance)
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
                    token,
                    recency: row.try_get("recency")?,
                    group_key: row.try_get("group_key")?,
                }));
            }
            if !self.has_ready().await? {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// A process that starts takes back the jobs its previous life (same instance id) held: they are
    /// ready at once instead of after their lease. Returns how many.
    pub async fn reclaim_instance(&self, instance: &str) -> Result<u64, QueueError> {
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = $1, lease_until = 0, claim_token = '', updated_at = $1
             WHERE state = 'running' AND instance = $2",
        )
        .bind(now)
        .bind(instance)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    /// Runs an update that only applies while the job still carries its claim: no row changed means
    /// the lease is gone.
    async fn fenced_update(
        &self,
        update: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<(), FenceError> {
        let n = update.execute(&self.pool).await.map_err(QueueError)?.rows_affected();
        fenced(n)
    }

    async fn has_ready(&self) -> Result<bool, QueueError> {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM jobs WHERE {READY}")))
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Keeps the job's notes for a later attempt and extends the lease (a heartbeat). Refused when
    /// the claim is no longer this job's.
    pub async fn save_progress(&self, job: &ClaimedJob, progress: &str, lease: Duration) -> Result<(), FenceError> {
        let now = now_ms();
        self.fenced_update(
            sqlx::query(
                "UPDATE jobs SET progress = $1, lease_until = $2, updated_at = $3
                 WHERE id = $4 AND claim_token = $5 AND state = 'running'",
            )
            .bind(progress)
            .bind(now + lease.as_millis() as i64)
            .bind(now)
            .bind(job.id)
            .bind(&job.token),
        )
        .await
    }

    /// The fence before a forge write: the claim is still ours and its lease has not run out (the
    /// lease is extended). A worker paused past its lease gets `LeaseLost` here, before it writes.
    pub async fn fence(&self, job: &ClaimedJob, lease: Duration) -> Result<(), FenceError> {
        let now = now_ms();
        self.fenced_update(
            sqlx::query(
                "UPDATE jobs SET lease_until = $1
                 WHERE id = $2 AND claim_token = $3 AND state = 'running' AND lease_until >= $4",
            )
            .bind(now + lease.as_millis() as i64)
            .bind(job.id)
            .bind(&job.token)
            .bind(now),
        )
        .await
    }

    /// Heartbeat: the worker is still on it. `LeaseLost` when another worker took the job over.
    pub async fn extend_lease(&self, job: &ClaimedJob, lease: Duration) -> Result<(), FenceError> {
        self.fence(job, lease).await
    }

    /// The job is finished. If a re-run was asked for while it ran, it goes back to the queue.
    pub async fn complete(&self, job: &ClaimedJob) -> Result<(), FenceError> {
        let now = now_ms();
        self.fenced_update(
            sqlx::query(
                "UPDATE jobs SET
                   state = CASE WHEN rerun = 1 THEN 'queued' ELSE 'done' END,
                   attempts = CASE WHEN rerun = 1 THEN 0 ELSE attempts END,
                   progress = CASE WHEN rerun = 1 THEN '{}' ELSE progress END,
                   rerun = 0, lease_until = 0, run_at = $1, updated_at = $1, last_error = '', claim_token = ''
                 WHERE id = $2 AND claim_token = $3 AND state = 'running'",
            )
            .bind(now)
            .bind(job.id)
            .bind(&job.token),
        )
        .await
    }

    /// Puts the job back to run again after `delay`.
    pub async fn retry(&self, job: &ClaimedJob, delay: Duration, error: &str) -> Result<(), FenceError> {
        let now = now_ms();
        self.fenced_update(
            // A re-run asked for while this attempt ran is not kept waiting behind a long delay.
            sqlx::query(
                "UPDATE jobs SET state = 'queued', lease_until = 0, last_error = $2, updated_at = $3, claim_token = '',
                   run_at = CASE WHEN rerun = 1 THEN $3 ELSE $1 END,
                   attempts = CASE WHEN rerun = 1 THEN 0 ELSE attempts END, rerun = 0
                 WHERE id = $4 AND claim_token = $5 AND state = 'running'",
            )
            .bind(now + delay.as_millis() as i64)
            .bind(error)
            .bind(now)
            .bind(job.id)
            .bind(&job.token),
        )
        .await
    }

    /// Hands the job back unfinished (shutdown): it is ready at once for any worker, and this
    /// attempt does not count.
    pub async fn release(&self, job: &ClaimedJob) -> Result<(), FenceError> {
        let now = now_ms();
        self.fenced_update(
            sqlx::query(
                "UPDATE jobs SET state = 'queued', run_at = $1, lease_until = 0, updated_at = $1, claim_token = '',
                   attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END
                 WHERE id = $2 AND claim_token = $3 AND state = 'running'",
            )
            .bind(now)
            .bind(job.id)
            .bind(&job.token),
        )
        .await
    }

    /// Gives up on the job; the error is kept for operators.
    pub async fn fail(&self, job: &ClaimedJob, error: &str) -> Result<(), FenceError> {
        let now = now_ms();
        self.fenced_update(
            sqlx::query(
                "UPDATE jobs SET state = CASE WHEN rerun = 1 THEN 'queued' ELSE 'failed' END,
                   attempts = CASE WHEN rerun = 1 THEN 0 ELSE attempts END,
                   rerun = 0, lease_until = 0, last_error = $1, updated_at = $2, run_at = $2, claim_token = ''
                 WHERE id = $3 AND claim_token = $4 AND state = 'running'",
            )
            .bind(error)
            .bind(now)
            .bind(job.id)
            .bind(&job.token),
        )
        .await
    }

    /// Makes sure a job exists and will run for `job` (a pull request's current head that `stale`, a
    /// job for an older head, found): inserted if new, brought back if it was superseded. Returns
    /// whether anything changed. `stale` gives up its recency first: whatever its delivery said, it
    /// is older than the current head, and must not supersede that head's job or a later push's
    /// (GitHub's one-second timestamps make equal recencies common; raising the current head's
    /// recency above the stale one instead let a finished job supersede the next push's).
    pub async fn ensure(&self, job: &NewJob, stale: &ClaimedJob) -> Result<bool, QueueError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE jobs SET recency = $1 WHERE id = $2 AND recency >= $1")
            .bind(job.recency - 1)
            .bind(stale.id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "INSERT INTO jobs (dedupe_key, group_key, kind, payload, state, run_at, created_at, updated_at, recency)
             VALUES ($1, $2, $3, $4, 'queued', $5, $5, $5, $6)
             ON CONFLICT (dedupe_key) DO UPDATE SET
               state = 'queued', run_at = $5, updated_at = $5, attempts = 0, progress = '{}',
               recency = CASE WHEN excluded.recency > jobs.recency THEN excluded.recency ELSE jobs.recency END
             WHERE jobs.state = 'superseded'",
        )
        .bind(&job.dedupe_key)
        .bind(&job.group_key)
        .bind(&job.kind)
        .bind(&job.payload)
        .bind(now)
        .bind(job.recency)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            supersede(&mut tx, &job.group_key, now).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Deletes deliveries, and jobs that are done, failed or superseded, last touched before
    /// `before_ms`. Queued and running jobs are never pruned.
    pub async fn prune(&self, before_ms: i64) -> Result<Pruned, QueueError> {
        let deliveries = sqlx::query("DELETE FROM deliveries WHERE received_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let jobs = sqlx::query("DELETE FROM jobs WHERE state IN ('done', 'failed', 'superseded') AND updated_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM minimized_comments WHERE minimized_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        // Rate limits that ran out long ago (one row per installation ever limited otherwise).
        sqlx::query("DELETE FROM rate_limits WHERE until_ms < $1").bind(before_ms).execute(&self.pool).await?;
        Ok(Pruned { deliveries, jobs })
    }

    /// Whether a job about newer state of the same pull request exists (by recency, not by id).
    pub async fn is_superseded(&self, job: &ClaimedJob) -> Result<bool, QueueError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE group_key = $1 AND id <> $2 AND recency > $3 AND state <> 'superseded'",
        )
        .bind(&job.group_key)
        .bind(job.id)
        .bind(job.recency)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
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

fn fenced(rows: u64) -> Result<(), FenceError> {
    if rows == 0 {
        Err(FenceError::LeaseLost)
    } else {
        Ok(())
    }
}

/// A fresh fencing token.
fn new_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy: the time and a counter still make tokens unique within the process.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&now_ms().to_le_bytes());
        bytes[8..].copy_from_slice(&n.to_le_bytes());
    }
    hex::encode(bytes)
}

/// Within `group`, queued jobs about older state than the newest job are superseded. Recency comes
/// from the pull request (its head's time), so a late delivery about an older head supersedes nothing
/// and is itself superseded; jobs of equal recency are left alone (each finds out from GitHub).
/// An older job that already began (it has progress: it may have a check run on GitHub, say one left
/// "Checking…" by a crash) is not dropped but run at once: it finds the head moved and closes what it
/// opened, so nothing it started stays in progress for ever.
async fn supersede(tx: &mut sqlx::Transaction<'_, sqlx::Any>, group: &str, now: i64) -> Result<(), QueueError> {
    const OLDER: &str = "group_key = $2 AND state = 'queued' AND rerun = 0
           AND recency < (SELECT MAX(recency) FROM jobs WHERE group_key = $2 AND state <> 'superseded')";
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET state = 'superseded', updated_at = $1 WHERE {OLDER} AND progress = '{{}}'"
    )))
    .bind(now)
    .bind(group)
    .execute(&mut **tx)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET run_at = $1, updated_at = $1 WHERE {OLDER} AND progress <> '{{}}' AND run_at > $1"
    )))
    .bind(now)
    .bind(group)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
