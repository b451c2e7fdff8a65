//! What workers do: `check` (the head commit of a GitHub pull request or a GitLab merge request: one
//! step list over a forge's `session::Session`) and `refresh` (the policy repository changed).
//! `perform` is the explicit dispatch the worker loop calls.

pub mod check;
pub mod config;
pub mod kustomize;
pub mod policies;
mod policy_repo_check;
pub mod session;
pub mod terraform;

use std::sync::Arc;
use std::time::Duration;

use crate::forge::github::GitHub;
use crate::forge::gitlab::{GitLabBot, PolicyProject};
use crate::forge::{ForgeError, Retry};
use crate::intake::{self, RefreshPolicies};
use crate::metrics::Metrics;
use crate::queue::worker::JobResult;
use crate::queue::{ClaimedJob, Queue};
use crate::settings::PolicyRepo;

use policies::PolicyCache;

/// The one seam where the check job evaluates: texts and policies in, findings out. `serve` uses
/// `isolated_scanner`; `in_process_scanner` is for embedding and tests that need no worker binary.
/// The changed files' texts, and the kustomize overlays to render with them.
pub type Scanner = Arc<
    dyn Fn(
            Vec<(String, String)>,
            kustomize::Gathered,
            Arc<crate::policy::PolicySet>,
            crate::scan::ScanOptions,
        ) -> crate::scan::Scan
        + Send
        + Sync,
>;

pub fn in_process_scanner() -> Scanner {
    Arc::new(|texts, overlays, set, opts| kustomize::scan_with_overlays(&texts, overlays, &set, &opts))
}

/// Evaluation in a `guardrail __worker` process (what `serve` uses): an engine abort, a stack
/// overflow or memory over the worker's limit ends that worker, and the check reports it as an
/// error while the service and its other jobs go on.
pub fn isolated_scanner(isolation: crate::isolate::Isolation) -> Scanner {
    Arc::new(move |texts, overlays, set, opts| crate::isolate::scan(&isolation, texts, overlays, &set, &opts))
}

/// How failed jobs are retried: `max_attempts` quick retries (backoff from `base` up to `cap`); then
/// the author is told the check failed, and a job whose error may pass keeps its place in the queue:
/// it runs again after `later` (doubling up to `later_cap`), `later_attempts` more times, so it
/// succeeds once GitHub recovers without anyone pressing Re-run.
#[derive(Clone, Debug)]
pub struct JobRetry {
    pub max_attempts: i64,
    pub base: Duration,
    pub cap: Duration,
    pub later: Duration,
    pub later_cap: Duration,
    pub later_attempts: i64,
}

impl Default for JobRetry {
    fn default() -> Self {
        JobRetry {
            max_attempts: 6,
            base: Duration::from_secs(5),
            cap: Duration::from_secs(600),
            // 10 min, 20, 40, 80, then every 2 h: about 10 hours in all.
            later: Duration::from_secs(600),
            later_cap: Duration::from_secs(7200),
            later_attempts: 8,
        }
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

    /// After the quick retries (`delay` said give up): when the job runs again, or `None` when the
    /// slow attempts are used up too or the error will not pass by waiting.
    pub fn later(&self, attempt: i64, retry: Retry) -> Option<Duration> {
        let slow = attempt - self.max_attempts;
        if slow < 0 || slow >= self.later_attempts {
            return None;
        }
        let after = (self.later * 2u32.saturating_pow(slow.clamp(0, 16) as u32)).min(self.later_cap);
        match retry {
            Retry::Never => None,
            Retry::After(wait) => Some(after.max(wait)),
            Retry::Soon => Some(after),
        }
    }
}

/// Everything a job needs; one per process, shared by the workers.
pub struct App {
    /// `None` when only GitLab is configured.
    pub github: Option<GitHub>,
    /// `None` when only GitHub is configured.
    pub gitlab: Option<Arc<GitLabBot>>,
    /// The policy repository when it is a GitLab project (`gitlab:` in GUARDRAIL_POLICY_REPO).
    pub gitlab_policy: Option<PolicyProject>,
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

impl App {
    /// The GitHub client; a GitHub job in a process without a GitHub App configured fails for good.
    pub fn github(&self) -> Result<&GitHub, ForgeError> {
        self.github.as_ref().ok_or_else(|| ForgeError::Uninstalled("no GitHub App is configured".into()))
    }

    pub fn gitlab(&self) -> Result<&GitLabBot, ForgeError> {
        self.gitlab.as_deref().ok_or_else(|| ForgeError::Uninstalled("GitLab is not configured".into()))
    }

    /// The policy repository's files at its head, wherever it lives; `None` without one.
    pub async fn policy_files(&self) -> Result<Option<Arc<policies::PolicyFiles>>, policies::PolicyLoadError> {
        if let Some(repo) = &self.policy_repo {
            return Ok(Some(self.policies.files(self.github()?, repo).await?));
        }
        if let Some(project) = &self.gitlab_policy {
            return Ok(Some(self.policies.gitlab_files(&self.gitlab()?.client, project).await?));
        }
        Ok(None)
    }

    /// The policy repository for summaries: (repository or project, folder inside).
    pub fn policy_label(&self) -> Option<(String, String)> {
        if let Some(repo) = &self.policy_repo {
            return Some((repo.repo.to_string(), repo.path.clone()));
        }
        self.gitlab_policy.as_ref().map(|p| (p.project.to_string(), p.path.clone().unwrap_or_default()))
    }
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
                intake::CHECK_PULL_REQUEST | intake::gitlab::CHECK_MERGE_REQUEST => check::run(&app, &job).await,
                intake::REFRESH_POLICIES => refresh(&app, &job).await,
                intake::gitlab::REFRESH_GITLAB_POLICIES => refresh_gitlab(&app, &job).await,
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
            check::internal_failure(&app, &job, why).await;
            return JobResult::Failed(format!("internal failure: {why}"));
        }
    };
    let label = match &result {
        JobResult::Done => "done",
        JobResult::Retry { .. } => "retry",
        JobResult::Later { .. } => "later",
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
    let github = match app.github() {
        Ok(gh) => gh,
        Err(e) => return JobResult::Failed(e.to_string()),
    };
    match app.policies.files(github, repo).await {
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

/// A push to the GitLab policy project's default branch: as `refresh`.
async fn refresh_gitlab(app: &App, job: &ClaimedJob) -> JobResult {
    let Ok(refresh) = serde_json::from_str::<intake::gitlab::RefreshGitlabPolicies>(&job.payload) else {
        return JobResult::Failed("malformed refresh payload".into());
    };
    if app.gitlab_policy.is_none() {
        return JobResult::Done;
    }
    app.policies.clear();
    match app.policy_files().await {
        Ok(files) => {
            let (commit, count) = files.map(|f| (f.commit.0.clone(), f.files.len())).unwrap_or_default();
            tracing::info!(%commit, pushed = %refresh.after, files = count, "GitLab policy project reloaded");
            JobResult::Done
        }
        Err(policies::PolicyLoadError::Forge(e)) => retry_or_fail(app, job, &e),
        Err(policies::PolicyLoadError::Broken(message)) => {
            tracing::error!(%message, "the policy project does not load");
            JobResult::Done
        }
    }
}

pub fn retry_or_fail(app: &App, job: &ClaimedJob, error: &ForgeError) -> JobResult {
    match app.retry.delay(job.attempts, error.retry()) {
        Some(after) => JobResult::Retry { after, error: error.to_string() },
        None => match app.retry.later(job.attempts, error.retry()) {
            Some(after) => JobResult::Later { after, error: error.to_string() },
            None => JobResult::Failed(error.to_string()),
        },
    }
}
