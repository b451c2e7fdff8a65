//! The worker loop: claim a job, run it while a heartbeat keeps its lease, then record the result.
//! `run_until_idle` is the same loop stopping when nothing is left: the service uses `run`, tests and
//! one-shot tools use `run_until_idle`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use super::{now_ms, ClaimedJob, FenceError, Queue, QueueError};

/// What a job handler decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobResult {
    Done,
    /// A transient failure: run the job again after the delay.
    Retry {
        after: Duration,
        error: String,
    },
    /// Given up for now (the author was told): the job keeps its place and runs again after the
    /// delay, in case what failed passes by then.
    Later {
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
    /// Becomes true at the end of a shutdown's grace period: a job still in hand is cancelled and
    /// its lease handed back, so another replica takes it at once.
    pub hand_back: watch::Receiver<bool>,
}

/// How a claimed job ended in this worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ran {
    Finished(JobResult),
    /// The heartbeat found the lease gone: the job was cancelled, and another worker owns it.
    LeaseLost,
    /// Shutdown: the job was cancelled and handed back.
    HandedBack,
}

impl Worker {
    /// Claims and runs one job; `false` when none was ready.
    pub async fn run_one<F, Fut>(&self, handler: &F) -> Result<bool, QueueError>
    where
        F: Fn(ClaimedJob) -> Fut,
        Fut: Future<Output = JobResult>,
    {
        if *self.hand_back.borrow() {
            return Ok(false);
        }
        let Some(job) = self.queue.claim(&self.id, self.lease).await? else {
            return Ok(false);
        };
        let ran = self.run_claimed(job.clone(), handler).await;
        let recorded = match ran {
            Ran::Finished(JobResult::Done) => self.queue.complete(&job).await,
            Ran::Finished(JobResult::Retry { after, error }) => {
                tracing::info!(job = job.id, key = %job.dedupe_key, attempt = job.attempts, ?after, %error, "retrying job");
                self.queue.retry(&job, after, &error).await
            }
            Ran::Finished(JobResult::Later { after, error }) => {
                tracing::warn!(job = job.id, key = %job.dedupe_key, attempt = job.attempts, ?after, %error, "given up for now; the job runs again later");
                self.queue.retry(&job, after, &error).await
            }
            Ran::Finished(JobResult::Failed(error)) => {
                tracing::error!(job = job.id, key = %job.dedupe_key, %error, "job failed");
                self.queue.fail(&job, &error).await
            }
            Ran::LeaseLost => Ok(()),
            Ran::HandedBack => {
                tracing::info!(job = job.id, key = %job.dedupe_key, "shutting down: job handed back");
                self.queue.release(&job).await
            }
        };
        match recorded {
            Ok(()) => {}
            Err(FenceError::LeaseLost) => {
                tracing::warn!(job = job.id, key = %job.dedupe_key, "the lease was taken over; result dropped")
            }
            Err(FenceError::Queue(e)) => return Err(e),
        }
        Ok(true)
    }

    /// Runs the handler for a job this worker holds: a heartbeat keeps the lease, and the handler is
    /// cancelled (dropped at its next await) when the lease is lost or the job must be handed back.
    pub async fn run_claimed<F, Fut>(&self, job: ClaimedJob, handler: &F) -> Ran
    where
        F: Fn(ClaimedJob) -> Fut,
        Fut: Future<Output = JobResult>,
    {
        // The heartbeat runs as its own task: awaiting it inside the handler's poll loop would stop
        // polling the handler, and on a one-connection SQLite pool a handler paused mid-query
        // holds the connection the heartbeat waits for (measured: stalls of the pool's 30 s
        // acquire timeout, again and again, under load).
        let (lost_tx, mut lost_rx) = watch::channel(false);
        let heartbeat = {
            let (queue, job, lease) = (self.queue.clone(), job.clone(), self.lease);
            tokio::spawn(async move {
                let mut beat = tokio::time::interval((lease / 3).max(Duration::from_millis(50)));
                beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                beat.tick().await;
                loop {
                    beat.tick().await;
                    match queue.extend_lease(&job, lease).await {
                        Ok(()) => {}
                        Err(FenceError::LeaseLost) => {
                            tracing::warn!(job = job.id, "lease lost: cancelling the job");
                            let _ = lost_tx.send(true);
                            return;
                        }
                        Err(e) => tracing::warn!(job = job.id, error = %e, "could not extend the lease"),
                    }
                }
            })
        };
        let mut hand_back = self.hand_back.clone();
        // A closed channel (its sender gone) is no signal: wait for ever then.
        let lost = async move {
            if lost_rx.wait_for(|lost| *lost).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let handed_back = async move {
            if hand_back.wait_for(|h| *h).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let ran = tokio::select! {
            result = handler(job) => Ran::Finished(result),
            _ = lost => Ran::LeaseLost,
            _ = handed_back => Ran::HandedBack,
        };
        heartbeat.abort();
        ran
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
    /// (another replica may have enqueued work). Once `stop` resolves no new job is claimed; the job
    /// in hand finishes, or is handed back when `hand_back` turns true.
    pub async fn run<F, Fut>(&self, handler: F, mut stop: watch::Receiver<bool>)
    where
        F: Fn(ClaimedJob) -> Fut,
        Fut: Future<Output = JobResult>,
    {
        loop {
            if *stop.borrow() {
                return;
            }
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
                _ = stop.wait_for(|s| *s) => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
