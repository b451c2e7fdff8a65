//! Checking one pull request head, as named steps over one check-run session (see `session`):
//! start (the pull request now; the check run `in_progress`) -> trusted configuration (from the
//! default branch) -> fetch (changed files at the head) -> scan -> report (inline review comments on
//! lines in the diff, outdated ones resolved) -> finish (annotations in batches of 50, completed
//! check run). A pull request to the policy repository takes the `policy_repo_check` steps instead.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::config::{self, FileFilter, RepoConfig};
use super::policies::{Policies, PolicyLoadError};
use super::session::{Session, Stop};
use super::{retry_or_fail, App};
use crate::exempt::Exemptions;
use crate::findings::{Finding, Outcome, Severity};
use crate::forge::github::{PullRequest, RepoAt};
use crate::forge::{ChangedFile, Contents, FileText, Retry};
use crate::intake::CheckPullRequest;
use crate::manifest;
use crate::queue::worker::JobResult;
use crate::queue::ClaimedJob;
use crate::report::checkrun::{self, CheckRunContext};
use crate::report::review::{self, Existing, Explanation};
use crate::scan::{self, ScanOptions};

pub async fn run(app: &App, job: &ClaimedJob) -> JobResult {
    let Ok(req) = serde_json::from_str::<CheckPullRequest>(&job.payload) else {
        return JobResult::Failed("malformed check payload".into());
    };
    // A rate limit another replica recorded for this installation holds here too.
    if let Ok(Some(until)) = app.queue.rate_limit(req.installation.0).await {
        let wait = until - crate::queue::now_ms();
        if wait > 0 {
            if let Ok(gh) = app.github() {
                gh.limit(&req.installation, std::time::Duration::from_millis(wait as u64));
            }
        }
    }
    let mut session = Session::new(app, job, req);
    let result = steps(&mut session).await;
    conclude(&mut session, result).await
}

/// Turns how the steps ended into the queue's decision, telling the author what they need to know.
pub(super) async fn conclude(session: &mut Session<'_>, result: Result<(), Stop>) -> JobResult {
    let (app, job) = (session.app, session.job);
    match result {
        Ok(()) => JobResult::Done,
        Err(Stop::Queue(e)) => JobResult::Retry { after: app.retry.base, error: e },
        Err(Stop::LeaseLost) => {
            tracing::warn!(job = job.id, "the lease is gone; another worker continues this job");
            JobResult::Retry { after: app.retry.base, error: "lease lost".into() }
        }
        Err(Stop::Forge(crate::forge::ForgeError::Uninstalled(why))) => {
            tracing::warn!(job = job.id, key = %job.dedupe_key, %why, "the App is not installed any more: job dropped");
            JobResult::Done
        }
        Err(Stop::Forge(e)) => {
            if let crate::forge::ForgeError::RateLimited { wait, .. } = &e {
                // Other replicas wait too.
                let until = crate::queue::now_ms() + wait.as_millis() as i64;
                let _ = app.queue.set_rate_limit(session.req.installation.0, until).await;
            }
            let result = retry_or_fail(app, job, &e);
            match &result {
                JobResult::Retry { after, .. } => session.say_retrying(&e, *after).await,
                JobResult::Later { after, .. } => {
                    let at = chrono::Utc::now() + chrono::Duration::from_std(*after).unwrap_or_default();
                    let message = format!("GitHub kept failing ({}) after {} attempts, so this pull request was not checked yet. guardrail tries again by itself at {}; use **Re-run** to try now.", e.short(), job.attempts, at.format("%H:%M UTC"));
                    session.finish_with_error("GitHub is failing", &message).await;
                }
                JobResult::Failed(_) => {
                    let (title, message) = match e.retry() {
                        Retry::Never => (
                            "guardrail could not check this pull request",
                            format!("{}, and asking again will not help. If the App lost a permission, reinstall it; then use **Re-run**.", e.short()),
                        ),
                        _ => (
                            "GitHub is failing",
                            format!("GitHub kept failing ({}) after {} attempts, so this pull request was not checked. Use **Re-run** to try again.", e.short(), job.attempts),
                        ),
                    };
                    session.finish_with_error(title, &message).await;
                }
                JobResult::Done => {}
            }
            result
        }
        Err(Stop::Broken { title, message }) => {
            session.finish_with_error(&title, &message).await;
            JobResult::Done
        }
        Err(Stop::Internal(why)) => {
            tracing::error!(job = job.id, key = %job.dedupe_key, %why, "internal failure");
            app.metrics.job_finished(&job.kind, "internal_error");
            session
                .finish_with_error(
                    "guardrail failed",
                    "guardrail failed while checking this pull request; this is not something in the pull request. The operators were told (logs). Use **Re-run** to try again.",
                )
                .await;
            JobResult::Failed(format!("internal failure: {why}"))
        }
    }
}

async fn steps(session: &mut Session<'_>) -> Result<(), Stop> {
    let Some(pr) = session.start().await? else { return Ok(()) };
    session.ensure_run("Checking…", "guardrail is evaluating the changed manifests.").await?;
    let Some(repo_config) = trusted_configuration(session, &pr).await? else { return Ok(()) };
    if session.app.policy_repo.as_ref().is_some_and(|p| p.repo == session.req.repo) {
        return super::policy_repo_check::steps(session).await;
    }
    let started = Instant::now();
    let policies = organisation_policies(session.app, &repo_config).await?;
    let fetched = fetch(session, &repo_config).await?;
    let repository = session.req.repo.to_string();
    let (outcome, scanned) =
        scan(session.app, &repository, &repo_config, &policies, fetched.texts, fetched.extra, fetched.kustomize)
            .await?;
    session.app.metrics.evaluation(started.elapsed());
    let mut notes = fetched.notes;
    notes.extend(policies.notes.iter().cloned());
    let outside_diff =
        review_comments(session, &repo_config, &policies, &outcome, &scanned, &fetched.patches, &mut notes).await?;
    let ctx = CheckRunContext {
        files: scanned.stats.files,
        resources: scanned.stats.resources,
        policy_source: policies.policies.source.clone(),
        exemptions: scanned.exemptions.used.clone(),
        rejected_exemptions: scanned.exemptions.rejected.clone(),
        outside_diff,
        notes,
    };
    let report = checkrun::build(&outcome, &ctx);
    session.send_report(&report).await
}

/// Step "trusted configuration": `.github/guardrail.yml` from the base repository's default branch,
/// never from the head. `None` when the check ends here (a skipped draft).
async fn trusted_configuration(session: &mut Session<'_>, pr: &PullRequest) -> Result<Option<RepoConfig>, Stop> {
    let (gh, req) = (session.app.github()?, &session.req);
    let config_text = gh.file(&req.installation, &req.repo, &pr.base_default_branch, config::REPO_CONFIG).await?;
    let repo_config: RepoConfig = match config::parse(config::REPO_CONFIG, config_text.as_deref().unwrap_or("")) {
        Ok(c) => c,
        Err(e) => {
            return Err(Stop::Broken {
                title: format!("{} does not load", config::REPO_CONFIG),
                message: format!("guardrail reads `{}` from the default branch `{}`:\n\n```\n{e}\n```\n\nFix it there; this pull request was not checked.", config::REPO_CONFIG, pr.base_default_branch),
            })
        }
    };
    if pr.draft && !repo_config.drafts {
        let summary = format!("Drafts are not checked (`drafts: false` in `{}`).", config::REPO_CONFIG);
        session.complete("skipped", "Draft pull request", &summary).await?;
        return Ok(None);
    }
    Ok(Some(repo_config))
}

/// The organisation's policies for this repository, and notes about them for the summary.
pub(super) struct OrgPolicies {
    pub policies: Policies,
    pub notes: Vec<String>,
}

/// Built-ins minus what the repository disables (never the required ones), plus the policy
/// repository at its default branch head; the disabled built-ins' constraints are dropped, as in
/// the CLI, so a policy repository may hold a Constraint of a kind a repository disables.
/// Forge-neutral: the policy repository may live on GitHub or on GitLab (`App::policy_files`).
pub(super) async fn organisation_policies(app: &App, repo_config: &RepoConfig) -> Result<OrgPolicies, Stop> {
    let policy_files = app.policy_files().await.map_err(policy_stop)?;
    let org = policy_files.as_ref().map(|f| f.org.clone()).unwrap_or_default();
    let (builtins, refused) = config::builtin_selection(repo_config, &org);
    let label = app.policy_label();
    let label = label.as_ref().map(|(name, path)| (name.as_str(), path.as_str()));
    let policies = app.policies.policies(label, policy_files, &builtins).await.map_err(policy_stop)?;
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
    pub patches: HashMap<String, Option<String>>,
    pub kustomize: super::kustomize::Gathered,
}

/// Step "fetch", GitHub side: the pull request's changed files (with their patches, which say where
/// inline comments may go), read through the forge-neutral `read_changed`.
async fn fetch(session: &Session<'_>, repo_config: &RepoConfig) -> Result<Fetched, Stop> {
    let (gh, req) = (session.app.github()?, &session.req);
    let (inst, repo) = (&req.installation, &req.repo);
    let files = gh.pull_files(inst, repo, &req.number).await?;
    let changed: Vec<ChangedFile> =
        files.iter().map(|f| ChangedFile { path: f.filename.clone(), removed: f.status == "removed" }).collect();
    let contents = RepoAt::new(gh, inst, repo, &req.head_sha);
    let mut fetched = read_changed(&contents, &changed, repo_config).await?;
    fetched.patches = files.iter().map(|f| (f.filename.clone(), f.patch.clone())).collect();
    if files.len() >= crate::forge::github::MAX_PULL_FILES {
        fetched.notes.push(format!(
            "GitHub lists at most {} files of a pull request; files beyond that were not checked.",
            crate::forge::github::MAX_PULL_FILES
        ));
    }
    Ok(fetched)
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
    Ok(Fetched { texts, extra, notes, patches: HashMap::new(), kustomize })
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

/// Step "report": inline comments for new findings on lines in the diff (those already posted, by
/// marker, are not posted again), outdated ones resolved, ones that came back reopened. Returns how
/// many findings were outside the diff.
async fn review_comments(
    session: &Session<'_>,
    repo_config: &RepoConfig,
    policies: &OrgPolicies,
    outcome: &Outcome,
    scanned: &scan::Scan,
    patches: &HashMap<String, Option<String>>,
    notes: &mut Vec<String>,
) -> Result<usize, Stop> {
    let (app, req) = (session.app, &session.req);
    let (gh, inst, repo) = (app.github()?, &req.installation, &req.repo);
    // If this job is superseded meanwhile, no comments land on an old head.
    if !repo_config.review_comments || app.queue.is_superseded(session.job).await? {
        return Ok(0);
    }
    let mut existing: Vec<Existing> =
        gh.review_comments(inst, repo, &req.number).await?.iter().map(Existing::from_api).collect();
    let threads = gh.review_threads(inst, repo, &req.number).await?;
    let thread_of: HashMap<&str, &crate::forge::github::ReviewThread> =
        threads.iter().map(|t| (t.comment_node_id.as_str(), t)).collect();
    for e in &mut existing {
        e.minimized = thread_of.get(e.node_id.as_str()).is_some_and(|t| t.resolved || t.minimized);
    }
    let set = &policies.policies.set;
    let explain = |policy: &str| explanation(set, policy);
    let plan = review::plan(&outcome.findings, patches, &existing, &scanned.sources, &explain);
    if plan.over_limit > 0 {
        notes.push(format!(
            "{} more finding(s) on changed lines have no inline comment: guardrail posts at most {} new comments per run. All of them are annotations.",
            plan.over_limit,
            review::MAX_NEW_COMMENTS
        ));
    }
    if !plan.comments.is_empty() {
        session.fence().await?;
        gh.create_review(inst, repo, &req.number, &review::review_request(&req.head_sha.0, &plan.comments)).await?;
    }
    // Outdated: resolve the thread, as a reviewer would; minimise only what has no thread.
    let (resolve, minimize): (Vec<String>, Vec<String>) = (
        plan.outdated.iter().filter_map(|n| thread_of.get(n.as_str()).map(|t| t.id.clone())).collect(),
        plan.outdated.iter().filter(|n| !thread_of.contains_key(n.as_str())).cloned().collect(),
    );
    if !resolve.is_empty() {
        session.fence().await?;
        gh.resolve_threads(inst, &resolve, true).await?;
    }
    if !minimize.is_empty() {
        session.fence().await?;
        gh.minimize_outdated(inst, &minimize).await?;
    }
    // A finding that came back: its thread is reopened and its comment shown again.
    let current: HashSet<String> =
        outcome.findings.iter().filter(|f| f.severity != Severity::Info).map(review::finding_key).collect();
    let back: Vec<&crate::forge::github::ReviewThread> = existing
        .iter()
        .filter(|e| e.by_us && e.minimized && review::marker_of(&e.body).is_some_and(|k| current.contains(k)))
        .filter_map(|e| thread_of.get(e.node_id.as_str()).copied())
        .collect();
    let reopen: Vec<String> = back.iter().filter(|t| t.resolved).map(|t| t.id.clone()).collect();
    let unhide: Vec<String> = back.iter().filter(|t| t.minimized).map(|t| t.comment_node_id.clone()).collect();
    if !reopen.is_empty() {
        session.fence().await?;
        gh.resolve_threads(inst, &reopen, false).await?;
    }
    if !unhide.is_empty() {
        session.fence().await?;
        gh.unminimize(inst, &unhide).await?;
    }
    Ok(plan.outside_diff)
}

pub(super) fn policy_stop(e: PolicyLoadError) -> Stop {
    match e {
        PolicyLoadError::Forge(e) => Stop::Forge(e),
        PolicyLoadError::Broken(message) => Stop::Broken {
            title: "The policy repository does not load".into(),
            message: format!("guardrail could not load the organisation's policies, so this pull request was not checked:\n\n{message}\n\nThe policy repository's maintainers must fix this; then use **Re-run**."),
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
