//! Read-only views of the queue for operators (`/metrics`, the CLI) and tests.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{ClaimedJob, Queue, QueueError};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobCounts {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub superseded: i64,
}

impl Queue {
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

    /// The notes a job holds now (a handler's copy may be older).
    pub async fn progress_of(&self, job: &ClaimedJob) -> Result<Option<String>, QueueError> {
        Ok(sqlx::query_scalar("SELECT progress FROM jobs WHERE id = $1")
            .bind(job.id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Running jobs as (dedupe_key, worker): for operators and tests.
    pub async fn running(&self) -> Result<Vec<(String, String)>, QueueError> {
        let rows = sqlx::query("SELECT dedupe_key, worker FROM jobs WHERE state = 'running' ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(QueueError)
    }

    pub async fn delivery_count(&self) -> Result<i64, QueueError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM deliveries").fetch_one(&self.pool).await?)
    }
}
