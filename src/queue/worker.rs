//! The worker loop: claim a job, run it while a heartbeat keeps its lease, then record the result.
//! `run_until_idle` is the same loop stopping when nothing is left: the service uses `run`, tests and
//! one-shot tools use `run_until_idle`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{now_ms, ClaimedJob, Queue, QueueError};

/// What a job handler decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobResult {
    Done,
    /// A transient failure: run the job again after the delay.
    Retry {
        after: Duration,
        error: String,
    },
    /// It will not succeed; keep the error for operators.
    Failed(String),
}

#[derive(Clone)]
pub struct Worker {
    pub queue: Queue,
    pub id: String,
    pub lease: Duration,
    /// Notified when a delivery enqueued work, so an idle worker does not wait for its poll.
    pub wake: Arc<Notify>,
}

impl Worker {
    /// Claims and runs one job; `false` when none was ready.
    pub async fn run_one<F, Fut>(&self, handler: &F) -> Result<bool, QueueError>
    where
        F: Fn(ClaimedJob) -> Fut,
        Fut: Future<Output = JobResult>,
    {
        let Some(job) = self.queue.claim(&self.id, self.lease).await? else {
            return Ok(false);
        };
        // The heartbeat runs as its own task: awaiting it inside the handler's poll loop would stop
        // polling the handler, and on a one-connection SQLite pool a handler paused mid-query
        // holds the connection the heartbeat waits for (measured: stalls of the pool's 30 s
        // acquire timeout, again and again, under load).
        let heartbeat = {
            let (queue, job, id, lease) = (self.queue.clone(), job.clone(), self.id.clone(), self.lease);
            tokio::spawn(async move {
                let mut beat = tokio::time::interval((lease / 3).max(Duration::from_millis(50)));
                beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                beat.tick().await;
                loop {
                    beat.tick().await;
                    if let Err(e) = queue.extend_lease(&job, &id, lease).await {
                        tracing::warn!(job = job.id, error = %e, "could not extend the lease");
                    }
                }
            })
        };
        let result = handler(job.clone()).await;
        heartbeat.abort();
        match result {
            JobResult::Done => self.queue.complete(&job, &self.id).await?,
            JobResult::Retry { after, error } => {
                tracing::info!(job = job.id, key = %job.dedupe_key, attempt = job.attempts, ?after, %error, "retrying job");
                self.queue.retry(&job, &self.id, after, &error).await?
            }
            JobResult::Failed(error) => {
                tracing::error!(job = job.id, key = %job.dedupe_key, %error, "job failed");
                self.queue.fail(&job, &self.id, &error).await?
            }
        }
        Ok(true)
    }

    /// Runs jobs until no job is queued or running, waiting for retries and expired leases that are due.
    pub async fn run_until_idle<F, Fut>(&self, handler: F) -> Result<usize, QueueError>
    where
        F: Fn(ClaimedJob) -> Fut,
        Fut: Future<Output = JobResult>,
    {
        let mut ran = 0;
        loop {
            if self.run_one(&handler).await? {
                ran += 1;
                continue;
            }
            match self.queue.next_due().await? {
                None => return Ok(ran),
                Some(at) => {
                    let wait = (at - now_ms()).clamp(1, 60_000) as u64;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            }
        }
    }

    /// Runs jobs until `stop` resolves; sleeps until woken, a job falls due, or a poll interval passes
    /// (another replica may have enqueued work).
    pub async fn run<F, Fut>(&self, handler: F, stop: impl Future<Output = ()>)
    where
        F: Fn(ClaimedJob) -> Fut,
        Fut: Future<Output = JobResult>,
    {
        tokio::pin!(stop);
        loop {
            let wait = match self.run_one(&handler).await {
                Ok(true) => continue,
                Ok(false) => match self.queue.next_due().await {
                    Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(10, 5_000) as u64),
                    _ => Duration::from_secs(5),
                },
                Err(e) => {
                    tracing::error!(error = %e, "queue unavailable");
                    Duration::from_secs(2)
                }
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
