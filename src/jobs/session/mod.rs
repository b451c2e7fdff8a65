//! One check of one change request's head (a GitHub pull request, a GitLab merge request), as the one
//! step list in `check` sees it: the `Session` trait. Each forge implements it beside its own writes:
//! `github` (check run, inline review comments, annotations) and `gitlab` (commit status, discussions,
//! summary note). The step list and `check::conclude` never name a forge; what the author reads about a
//! failure (GitHub's Re-run button, GitLab's `/guardrail rerun`) is worded by the implementation.

pub mod github;
pub mod gitlab;

use std::future::Future;
use std::time::Duration;

use super::check::OrgPolicies;
use super::config::RepoConfig;
use super::App;
use crate::findings::{Finding, Outcome};
use crate::forge::{ChangedFile, Contents, ForgeError};
use crate::queue::{ClaimedJob, FenceError, RateLimitKey};
use crate::report::checkrun::{self, CheckRunContext, CheckRunReport};
use crate::report::review::{self, Explanation};

/// Why a check stopped early.
#[derive(Debug)]
pub enum Stop {
    Forge(ForgeError),
    /// Something a person must fix (a broken policy repository or configuration): not retried.
    Broken {
        title: String,
        message: String,
    },
    /// Something inside guardrail failed (a panic): logged and counted; the author is told so.
    Internal(String),
    /// The claim is gone: another worker holds the job. Nothing more may be written.
    LeaseLost,
    Queue(String),
}

impl From<ForgeError> for Stop {
    fn from(e: ForgeError) -> Self {
        Stop::Forge(e)
    }
}

impl From<crate::queue::QueueError> for Stop {
    fn from(e: crate::queue::QueueError) -> Self {
        Stop::Queue(e.to_string())
    }
}

impl From<FenceError> for Stop {
    fn from(e: FenceError) -> Self {
        match e {
            FenceError::LeaseLost => Stop::LeaseLost,
            FenceError::Queue(e) => Stop::Queue(e.to_string()),
        }
    }
}

/// The words a forge's authors know, for text the step list writes itself.
pub struct Words {
    /// "pull request" or "merge request".
    pub change: &'static str,
    /// How the author asks for the check again, after "then": "use **Re-run**".
    pub rerun: &'static str,
}

/// The change request as the forge has it when the check starts.
pub struct Change {
    pub draft: bool,
}

/// The settings file, as read from the target's default branch (never from the change request).
pub struct TrustedText {
    /// `.github/guardrail.yml` or `.gitlab/guardrail.yml`.
    pub path: &'static str,
    /// The default branch; `None` for a project without one (an empty project): the defaults apply.
    pub branch: Option<String>,
    /// The text (empty when the file is missing), or why it is not readable as settings.
    pub text: Result<String, String>,
}

/// What the change request changed, as the forge lists it.
pub struct Changes {
    pub files: Vec<ChangedFile>,
    /// About the listing, for the summary (a list cut short by the forge).
    pub notes: Vec<String>,
}

/// Everything the scan found, for the report step.
pub struct Scanned<'r> {
    pub repo_config: &'r RepoConfig,
    pub policies: &'r OrgPolicies,
    /// Findings (with the fetch step's own, e.g. too-large files), sorted.
    pub outcome: Outcome,
    pub scan: crate::scan::Scan,
    /// For the summary: from the fetch step, the forge's listing and the policies.
    pub notes: Vec<String>,
}

impl Scanned<'_> {
    /// The what/why/fix text of a finding's inline comment or discussion, the same on every forge:
    /// (the finding's key for its marker, the body).
    pub fn comment(&self, finding: &Finding) -> (String, String) {
        let key = review::finding_key(finding);
        let source_line = self
            .scan
            .sources
            .get(&finding.file)
            .and_then(|t| t.lines().nth(finding.region.line.saturating_sub(1) as usize));
        let body = review::comment_body(finding, &key, &self.explanation(&finding.policy), source_line);
        (key, body)
    }

    pub fn explanation(&self, policy: &str) -> Explanation {
        super::check::explanation(&self.policies.policies.set, policy)
    }

    /// The verdict and summary: `outside_diff` findings had no place for an inline comment.
    pub fn summary(&self, outside_diff: usize, notes: Vec<String>) -> CheckRunReport {
        let ctx = CheckRunContext {
            files: self.scan.stats.files,
            resources: self.scan.stats.resources,
            policy_source: self.policies.policies.source.clone(),
            exemptions: self.scan.exemptions.used.clone(),
            rejected_exemptions: self.scan.exemptions.rejected.clone(),
            outside_diff,
            notes,
        };
        checkrun::build(&self.outcome, &ctx)
    }
}

/// How a check ended without a verdict, for the author to read; each forge words it.
pub enum Failure<'e> {
    /// The forge kept failing for `attempts`; the job keeps its place and runs again by itself at `at`.
    FailingUntil { error: &'e ForgeError, attempts: i64, at: chrono::DateTime<chrono::Utc> },
    /// The forge kept failing for `attempts`; the job gave up.
    Failing { error: &'e ForgeError, attempts: i64 },
    /// The forge refused in a way asking again will not change (a lost permission, a 404).
    Refused { error: &'e ForgeError },
    /// Something a person must fix (the settings, the policy repository), in the step's words.
    Broken { title: &'e str, message: &'e str },
    /// guardrail itself failed; not something in the change request.
    Internal,
}

/// One check of one change request's head on one forge. Every forge write an implementation makes is
/// fenced (the job still holds its claim) and reconciled with what the forge holds before it is made
/// again, so a retried job never writes twice. A session is also the head commit's `Contents`, read
/// where the forge lets the bot read them (after `changes`: a fork may be read through its target).
pub trait Session: Contents + Send {
    fn app(&self) -> &App;
    fn job(&self) -> &ClaimedJob;
    fn words(&self) -> &'static Words;
    /// The repository or project, as the organisation's exemptions name it.
    fn repository(&self) -> String;
    /// Where a rate limit on this forge's account is recorded, so that every replica waits.
    fn rate_limit_key(&self) -> RateLimitKey;
    /// Holds this process's calls to the forge for `wait` (a limit another replica recorded).
    fn hold(&self, wait: Duration);

    /// Step "start": the change request as the forge has it now. `None` when there is nothing to
    /// check at this head (closed, a newer head pushed, a re-run asked by someone without access);
    /// the implementation has made sure the current head gets its check and left nothing running.
    fn start(&mut self) -> impl Future<Output = Result<Option<Change>, Stop>> + Send;
    /// Step "trusted configuration", the forge's half: the settings file on the default branch.
    fn settings(&mut self) -> impl Future<Output = Result<TrustedText, Stop>> + Send;
    /// Ends the check of a draft the settings say not to check.
    fn skip_draft(&mut self) -> impl Future<Output = Result<(), Stop>> + Send;
    /// The author sees the check running.
    fn in_progress(&mut self) -> impl Future<Output = Result<(), Stop>> + Send;
    /// The folder of policies when the change request is to the policy repository itself: its
    /// tests run instead of a scan (`policy_repo_check`).
    fn policy_repository(&self) -> Option<String>;
    /// Step "fetch", the forge's half: the changed files. `None` when the head moved meanwhile (the
    /// newer head has its own job; the implementation left nothing running on this one).
    fn changes(&mut self) -> impl Future<Output = Result<Option<Changes>, Stop>> + Send;
    /// Step "report": a comment on each finding on a line the change request changed (kept, added,
    /// resolved when gone, reopened when back), then the verdict with the summary and the counts.
    fn report(&mut self, scanned: Scanned<'_>) -> impl Future<Output = Result<(), Stop>> + Send;
    /// A verdict without findings to comment on (the policy repository's tests).
    fn verdict(&mut self, report: &CheckRunReport) -> impl Future<Output = Result<(), Stop>> + Send;
    /// While the forge fails and the job will try again after `after` (best effort).
    fn retrying(&mut self, error: &ForgeError, after: Duration) -> impl Future<Output = ()> + Send;
    /// Ends the check as failed, saying why: a check must never stay running or pass by mistake.
    /// Best effort: errors are logged.
    fn finish_with_error(&mut self, failure: Failure<'_>) -> impl Future<Output = ()> + Send;
}
