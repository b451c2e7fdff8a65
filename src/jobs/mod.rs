//! What workers do, one file per job kind: `check` (a pull request's head commit) and `refresh`
//! (the policy repository changed). `perform` is the explicit dispatch the worker loop calls.

pub mod check;
pub mod config;
pub mod policies;
mod policy_repo_check;
pub mod session;
pub mod terraform;

use std::sync::Arc;
use std::time::Duration;

use crate::forge::github::GitHub;
use crate::forge::{ForgeError, Retry};
use crate::intake::{self, RefreshPolicies};
use crate::metrics::Metrics;
use crate::queue::worker::JobResult;
use crate::queue::{ClaimedJob, Queue};
use crate::settings::PolicyRepo;

use policies::PolicyCache;

/// The one seam where the check job evaluates: texts and policies in, findings out. `serve` uses
/// `isolated_scanner`; `in_process_scanner` is for embedding and tests that need no worker binary.
pub type Scanner = Arc<
    dyn Fn(Vec<(String, String)>, Arc<crate::policy::PolicySet>, crate::scan::ScanOptions) -> crate::scan::Scan
        + Send
        + Sync,
>;

pub fn in_process_scanner() -> Scanner {
    Arc::new(|texts, set, opts| crate::scan::scan_texts(&texts, &set, &opts))
}

/// Evaluation in a `guardrail __worker` process (what `serve` uses): an engine abort, a stack
/// overflow or memory over the worker's limit ends that worker, and the check reports it as an
/// error while the service and its other jobs go on.
pub fn isolated_scanner(isolation: crate::isolate::Isolation) -> Scanner {
    Arc::new(move |texts, set, opts| crate::isolate::scan(&isolation, texts, &set, &opts))
}

/// How failed jobs are retried.
#[derive(Clone, Debug)]
pub struct JobRetry {
    pub max_attempts: i64,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for JobRetry {
    fn default() -> Self {
        JobRetry { max_attempts: 6, base: Duration::from_secs(5), cap: Duration::from_secs(600) }
    }
}

impl JobRetry {
    /// Exponential backoff after the `attempt`-th failure, or `None` when it is time to give up.
    pub fn delay(&self, attempt: i64, retry: Retry) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        match retry {
            Retry::Never => None,
            Retry::After(wait) => Some(wait),
            Retry::Soon => Some((self.base * 2u32.saturating_pow(attempt.clamp(0, 16) as u32 - 1)).min(self.cap)),
        }
    }
}

/// Everything a job needs; one per process, shared by the workers.
pub struct App {
    pub github: GitHub,
    pub queue: Queue,
    pub check_name: String,
    pub policy_repo: Option<PolicyRepo>,
    pub policies: PolicyCache,
    pub metrics: Metrics,
    pub retry: JobRetry,
    /// This process's instance id (GUARDRAIL_INSTANCE_ID): its workers are `INSTANCE/n` in the
    /// queue, and a restarted process takes back the jobs of its previous life at once.
    pub worker_id: String,
    pub lease: Duration,
    /// Where policy-repository tests run (a worker process a crash cannot take the service down with).
    pub isolation: crate::isolate::Isolation,
    pub scanner: Scanner,
}

/// Aborts a spawned job when the worker drops it (lease lost, shutdown hand-back).
struct AbortOnDrop(tokio::task::JoinHandle<JobResult>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub async fn perform(app: Arc<App>, job: ClaimedJob) -> JobResult {
    // The job runs as its own task so that a panic inside it is caught here: an internal failure
    // (logged, counted, the check run says guardrail failed), never a crashed worker.
    let mut task = AbortOnDrop(tokio::spawn({
        let (app, job) = (app.clone(), job.clone());
        async move {
            match job.kind.as_str() {
                intake::CHECK_PULL_REQUEST => check::run(&app, &job).await,
                intake::REFRESH_POLICIES => refresh(&app, &job).await,
                other => JobResult::Failed(format!("unknown job kind {other}")),
            }
        }
    }));
    let result = match (&mut task.0).await {
        Ok(result) => result,
        Err(e) => {
            let why = if e.is_panic() { "the job panicked" } else { "the job was cancelled" };
            tracing::error!(job = job.id, key = %job.dedupe_key, why, "internal failure");
            app.metrics.job_finished(&job.kind, "internal_error");
            if job.kind == intake::CHECK_PULL_REQUEST {
                internal_failure(&app, &job, why).await;
            }
            return JobResult::Failed(format!("internal failure: {why}"));
        }
    };
    let label = match &result {
        JobResult::Done => "done",
        JobResult::Retry { .. } => "retry",
        JobResult::Failed(_) => "failed",
    };
    app.metrics.job_finished(&job.kind, label);
    result
}

/// A push to the policy repository: drop cached policies and load the new commit now, so the next
/// check uses it (and a broken push shows up in the logs before a pull request trips over it).
async fn refresh(app: &App, job: &ClaimedJob) -> JobResult {
    let Ok(refresh) = serde_json::from_str::<RefreshPolicies>(&job.payload) else {
        return JobResult::Failed("malformed refresh payload".into());
    };
    let Some(repo) = &app.policy_repo else { return JobResult::Done };
    app.policies.clear();
    match app.policies.files(&app.github, repo).await {
        Ok(files) => {
            tracing::info!(commit = %files.commit, pushed = %refresh.after, files = files.files.len(), "policy repository reloaded");
            JobResult::Done
        }
        Err(policies::PolicyLoadError::Forge(e)) => retry_or_fail(app, job, &e),
        Err(policies::PolicyLoadError::Broken(message)) => {
            tracing::error!(%message, "the policy repository does not load");
            JobResult::Done
        }
    }
}

/// Tells the author on the check run that guardrail failed (not their pull request).
async fn internal_failure(app: &App, job: &ClaimedJob, why: &str) {
    let Ok(req) = serde_json::from_str::<intake::CheckPullRequest>(&job.payload) else { return };
    let mut job = job.clone();
    if let Ok(Some(progress)) = app.queue.progress_of(&job).await {
        job.progress = progress;
    }
    let mut session = session::Session::new(app, &job, req);
    let result: Result<(), session::Stop> = Err(session::Stop::Internal(why.to_string()));
    let _ = check::conclude(&mut session, result).await;
}

pub fn retry_or_fail(app: &App, job: &ClaimedJob, error: &ForgeError) -> JobResult {
    match app.retry.delay(job.attempts, error.retry()) {
        Some(after) => JobResult::Retry { after, error: error.to_string() },
        None => JobResult::Failed(error.to_string()),
    }
}
