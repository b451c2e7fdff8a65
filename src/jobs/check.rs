//! Checking one head of a change request (a GitHub pull request, a GitLab merge request): ONE list of
//! named steps over a forge's `Session` (see `session`), and ONE `conclude` that turns how they ended
//! into the queue's decision. start (the change request now) -> trusted configuration (from the
//! default branch) -> in progress -> fetch (changed files at the head, through `forge::Contents`) ->
//! scan -> report (comments on changed lines, the verdict with the summary). A change request to the
//! policy repository takes the `policy_repo_check` steps after "in progress" instead.
//! Where a comment is written: `session::github` (review comments, check run) and `session::gitlab`
//! (discussions, commit status, summary note).

use std::time::{Duration, Instant};

use super::config::{self, FileFilter, RepoConfig};
use super::policies::{Policies, PolicyLoadError};
use super::session::github::GitHubSession;
use super::session::gitlab::GitLabSession;
use super::session::{Change, Failure, Scanned, Session, Stop, Words};
use super::{retry_or_fail, App};
use crate::exempt::Exemptions;
use crate::findings::{Finding, Outcome, Severity};
use crate::forge::{ChangedFile, Contents, FileText, ForgeError, Retry};
use crate::intake;
use crate::manifest;
use crate::queue::worker::JobResult;
use crate::queue::ClaimedJob;
use crate::report::review::Explanation;
use crate::scan::{self, ScanOptions};

/// A `check-pull-request` or `check-merge-request` job.
pub async fn run(app: &App, job: &ClaimedJob) -> JobResult {
    match job.kind.as_str() {
        intake::CHECK_PULL_REQUEST => match GitHubSession::open(app, job) {
            Ok(session) => check(session).await,
            Err(refused) => refused,
        },
        intake::gitlab::CHECK_MERGE_REQUEST => match GitLabSession::open(app, job) {
            Ok(session) => check(session).await,
            Err(refused) => refused,
        },
        other => JobResult::Failed(format!("not a check job: {other}")),
    }
}

/// After a panic inside a check job: the author is told that guardrail failed (best effort).
pub async fn internal_failure(app: &App, job: &ClaimedJob, why: &str) {
    let mut job = job.clone();
    if let Ok(Some(progress)) = app.queue.progress_of(&job).await {
        job.progress = progress;
    }
    let failed = || Err(Stop::Internal(why.to_string()));
    match job.kind.as_str() {
        intake::CHECK_PULL_REQUEST => {
            if let Ok(mut session) = GitHubSession::open(app, &job) {
                conclude(&mut session, failed()).await;
            }
        }
        intake::gitlab::CHECK_MERGE_REQUEST => {
            if let Ok(mut session) = GitLabSession::open(app, &job) {
                conclude(&mut session, failed()).await;
            }
        }
        _ => {}
    }
}

async fn check(mut session: impl Session) -> JobResult {
    // A rate limit another replica recorded for this forge account holds here too.
    if let Ok(Some(until)) = session.app().queue.rate_limit(session.rate_limit_key()).await {
        let wait = until - crate::queue::now_ms();
        if wait > 0 {
            session.hold(Duration::from_millis(wait as u64));
        }
    }
    let result = steps(&mut session).await;
    conclude(&mut session, result).await
}

/// Turns how the steps ended into the queue's decision, telling the author what they need to know.
async fn conclude(session: &mut impl Session, result: Result<(), Stop>) -> JobResult {
    let (app, job) = (session.app(), session.job());
    let (base, attempts) = (app.retry.base, job.attempts);
    match result {
        Ok(()) => JobResult::Done,
        Err(Stop::Queue(e)) => JobResult::Retry { after: base, error: e },
        Err(Stop::LeaseLost) => {
            tracing::warn!(job = job.id, "the lease is gone; another worker continues this job");
            JobResult::Retry { after: base, error: "lease lost".into() }
        }
        // Only GitHub says so (an App uninstalled or suspended): nobody is left to tell.
        Err(Stop::Forge(ForgeError::Uninstalled(why))) => {
            tracing::warn!(job = job.id, key = %job.dedupe_key, %why, "the App is not installed any more: job dropped");
            JobResult::Done
        }
        Err(Stop::Forge(e)) => {
            if let ForgeError::RateLimited { wait, .. } = &e {
                // Other replicas wait too.
                let until = crate::queue::now_ms() + wait.as_millis() as i64;
                let _ = app.queue.set_rate_limit(session.rate_limit_key(), until).await;
            }
            let result = retry_or_fail(app, job, &e);
            match &result {
                JobResult::Retry { after, .. } => session.retrying(&e, *after).await,
                JobResult::Later { after, .. } => {
                    let at = chrono::Utc::now() + chrono::Duration::from_std(*after).unwrap_or_default();
                    session.finish_with_error(Failure::FailingUntil { error: &e, attempts, at }).await;
                }
                JobResult::Failed(_) => {
                    let failure = match e.retry() {
                        Retry::Never => Failure::Refused { error: &e },
                        _ => Failure::Failing { error: &e, attempts },
                    };
                    session.finish_with_error(failure).await;
                }
                JobResult::Done => {}
            }
            result
        }
        Err(Stop::Broken { title, message }) => {
            session.finish_with_error(Failure::Broken { title: &title, message: &message }).await;
            JobResult::Done
        }
        Err(Stop::Internal(why)) => {
            tracing::error!(job = job.id, key = %job.dedupe_key, %why, "internal failure");
            app.metrics.job_finished(&job.kind, "internal_error");
            session.finish_with_error(Failure::Internal).await;
            JobResult::Failed(format!("internal failure: {why}"))
        }
    }
}

async fn steps(session: &mut impl Session) -> Result<(), Stop> {
    let Some(change) = session.start().await? else { return Ok(()) };
    let Some(repo_config) = trusted_configuration(session, &change).await? else { return Ok(()) };
    session.in_progress().await?;
    if let Some(folder) = session.policy_repository() {
        return super::policy_repo_check::steps(session, &folder).await;
    }
    let started = Instant::now();
    let policies = organisation_policies(session.app(), &repo_config, session.words()).await?;
    let Some(changes) = session.changes().await? else { return Ok(()) };
    let fetched = read_changed(&*session, &changes.files, &repo_config).await?;
    let (app, repository) = (session.app(), session.repository());
    let (outcome, scan) =
        scan(app, &repository, &repo_config, &policies, fetched.texts, fetched.extra, fetched.kustomize).await?;
    app.metrics.evaluation(started.elapsed());
    let mut notes = fetched.notes;
    notes.extend(changes.notes);
    notes.extend(policies.notes.iter().cloned());
    session.report(Scanned { repo_config: &repo_config, policies: &policies, outcome, scan, notes }).await
}

/// Step "trusted configuration": the settings file from the target's default branch, never from the
/// change request. `None` when the check ends here (a skipped draft).
async fn trusted_configuration(session: &mut impl Session, change: &Change) -> Result<Option<RepoConfig>, Stop> {
    let settings = session.settings().await?;
    let repo_config: RepoConfig = match settings.text.and_then(|text| config::parse(settings.path, &text)) {
        Ok(c) => c,
        Err(e) => {
            let (path, branch) = (settings.path, settings.branch.unwrap_or_default());
            return Err(Stop::Broken {
                title: format!("{path} does not load"),
                message: format!("guardrail reads `{path}` from the default branch `{branch}`:\n\n```\n{e}\n```\n\nFix it there; this {} was not checked.", session.words().change),
            });
        }
    };
    if change.draft && !repo_config.drafts {
        session.skip_draft().await?;
        return Ok(None);
    }
    Ok(Some(repo_config))
}

/// The organisation's policies for this repository, and notes about them for the summary.
pub struct OrgPolicies {
    pub policies: Policies,
    pub notes: Vec<String>,
}

/// Built-ins minus what the repository disables (never the required ones), plus the policy
/// repository at its default branch head; the disabled built-ins' constraints are dropped, as in
/// the CLI, so a policy repository may hold a Constraint of a kind a repository disables.
/// Forge-neutral: the policy repository may live on GitHub or on GitLab (`App::policy_files`).
pub(super) async fn organisation_policies(
    app: &App,
    repo_config: &RepoConfig,
    words: &Words,
) -> Result<OrgPolicies, Stop> {
    let policy_files = app.policy_files().await.map_err(|e| policy_stop(e, words))?;
    let org = policy_files.as_ref().map(|f| f.org.clone()).unwrap_or_default();
    let (builtins, refused) = config::builtin_selection(repo_config, &org);
    let label = app.policy_label();
    let label = label.as_ref().map(|(name, path)| (name.as_str(), path.as_str()));
    let policies = app.policies.policies(label, policy_files, &builtins).await.map_err(|e| policy_stop(e, words))?;
    let mut notes = Vec::new();
    if !refused.is_empty() {
        notes.push(format!(
            "{} cannot be disabled: the organisation requires {}.",
            config::REPO_CONFIG,
            refused.join(", ")
        ));
    }
    let described = crate::report::catalog::describe(&policies.set, &policies.disabled);
    notes.extend(crate::report::catalog::unconfigured_note(&described));
    Ok(OrgPolicies { policies, notes })
}

/// What step "fetch" read at the head.
pub(super) struct Fetched {
    pub texts: Vec<(String, String)>,
    pub extra: Vec<Finding>,
    pub notes: Vec<String>,
    pub kustomize: super::kustomize::Gathered,
}

/// Step "fetch", forge-neutral: the changed files the configuration selects, at the head commit,
/// and the Terraform modules they need, read through `contents`.
pub(super) async fn read_changed(
    contents: &impl Contents,
    files: &[ChangedFile],
    repo_config: &RepoConfig,
) -> Result<Fetched, Stop> {
    let filter = FileFilter::new(repo_config)
        .map_err(|e| Stop::Broken { title: format!("{} does not load", config::REPO_CONFIG), message: e })?;
    let wanted: Vec<String> =
        files.iter().filter(|f| !f.removed && filter.wants(&f.path)).map(|f| f.path.clone()).collect();
    let limits = manifest::Limits::default();
    let fetched = contents.files(&wanted, limits.max_file_bytes).await?;
    let mut notes = Vec::new();
    let changed: Vec<String> = files.iter().filter(|f| !f.removed).map(|f| f.path.clone()).collect();
    let (terraform, terraform_notes) =
        super::terraform::gather(contents, &changed, &filter, limits.max_file_bytes).await?;
    notes.extend(terraform_notes);
    // Kustomize: overlays that include a changed file are rendered; the files they reach are not
    // checked on their own.
    let all: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    let load = manifest::LoadOptions::default();
    let kustomize =
        super::kustomize::gather(contents, &all, &|p| filter.matches(p), &load, &Default::default()).await?;
    notes.extend(kustomize.notes.iter().cloned());
    let mut texts = Vec::new();
    let mut extra: Vec<Finding> = Vec::new();
    for (path, text) in fetched {
        match text {
            FileText::Text(t) => texts.push((path, t)),
            FileText::TooLarge(n) => extra.push(file_finding(
                &path,
                format!(
                    "{path} is {n} bytes, over guardrail's limit of {} bytes: it was not checked",
                    limits.max_file_bytes
                ),
            )),
            FileText::Binary => notes.push(format!("{path} is binary and was skipped.")),
            FileText::Missing => notes.push(format!("{path} is not in the head commit.")),
        }
    }
    for (path, text) in terraform {
        if !texts.iter().any(|(p, _): &(String, String)| *p == path) {
            texts.push((path, text));
        }
    }
    texts.retain(|(path, _)| !kustomize.covers(path));
    Ok(Fetched { texts, extra, notes, kustomize })
}

/// Step "scan": through the App's scanner seam, off the async threads. A panic is ours.
/// `repository` names the repository (or project) for the organisation's exemptions.
pub(super) async fn scan(
    app: &App,
    repository: &str,
    repo_config: &RepoConfig,
    policies: &OrgPolicies,
    texts: Vec<(String, String)>,
    extra: Vec<Finding>,
    kustomize: super::kustomize::Gathered,
) -> Result<(Outcome, scan::Scan), Stop> {
    let opts = ScanOptions {
        load: manifest::LoadOptions { default_namespace: repo_config.namespace.clone(), ..Default::default() },
        threads: 0,
        exemptions: Exemptions {
            rules: policies.policies.org.exemptions.clone(),
            repository: repository.to_string(),
            today: None,
        },
        ..Default::default()
    };
    let set = policies.policies.set.clone();
    let scanner = app.scanner.clone();
    let scanned = tokio::task::spawn_blocking(move || scanner(texts, kustomize, set, opts))
        .await
        .map_err(|e| Stop::Internal(format!("evaluation panicked: {e}")))?;
    let mut outcome = Outcome {
        findings: scanned.outcome.findings.clone(),
        errors: scanned.outcome.errors.clone(),
        ..Default::default()
    };
    outcome.findings.extend(extra);
    outcome.sort();
    Ok((outcome, scanned))
}

pub(super) fn policy_stop(e: PolicyLoadError, words: &Words) -> Stop {
    match e {
        PolicyLoadError::Forge(e) => Stop::Forge(e),
        PolicyLoadError::Broken(message) => Stop::Broken {
            title: "The policy repository does not load".into(),
            message: format!("guardrail could not load the organisation's policies, so this {} was not checked:\n\n{message}\n\nThe policy repository's maintainers must fix this; then {}.", words.change, words.rerun),
        },
    }
}

pub(super) fn file_finding(path: &str, message: String) -> Finding {
    Finding {
        policy: "guardrail/input".into(),
        constraint: String::new(),
        severity: Severity::Deny,
        message,
        file: path.to_string(),
        region: crate::findings::Region::point(1, 1),
        pointer: String::new(),
        resource: None,
    }
}

pub(super) fn explanation(set: &crate::policy::PolicySet, policy: &str) -> Explanation {
    set.templates
        .iter()
        .enumerate()
        .find(|(i, t)| set.builtin_of.get(i).map(String::as_str) == Some(policy) || t.kind == policy)
        .map(|(_, t)| Explanation { description: t.description.clone(), remediation: t.remediation.clone() })
        .unwrap_or_default()
}
