//! Checking one pull request head: check run `in_progress` -> trusted configuration and policies ->
//! changed manifests at the head -> scan -> inline review comments on lines in the diff -> annotations
//! in batches of 50 -> completed check run. Each step's result that must not be repeated (the check
//! run's id, annotations already sent) is saved in the job's progress, so a retry continues.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::{self, FileFilter, RepoConfig};
use super::policies::PolicyLoadError;
use super::{retry_or_fail, App};
use crate::exempt::Exemptions;
use crate::findings::{Finding, Outcome, Severity};
use crate::forge::github::FileText;
use crate::forge::{ForgeError, Retry};
use crate::intake::CheckPullRequest;
use crate::manifest;
use crate::queue::worker::JobResult;
use crate::queue::ClaimedJob;
use crate::report::checkrun::{self, CheckRunContext, CheckRunReport, ANNOTATIONS_PER_REQUEST};
use crate::report::review::{self, Existing, Explanation};
use crate::scan::{self, ScanOptions};

/// What earlier attempts of this job already did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Progress {
    check_run_id: Option<u64>,
    annotations_sent: usize,
}

/// Why a check stopped early.
pub(super) enum Stop {
    Forge(ForgeError),
    /// Something a person must fix (a broken policy repository or configuration): not retried.
    Broken {
        title: String,
        message: String,
    },
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

pub async fn run(app: &App, job: &ClaimedJob) -> JobResult {
    let Ok(req) = serde_json::from_str::<CheckPullRequest>(&job.payload) else {
        return JobResult::Failed("malformed check payload".into());
    };
    let mut progress: Progress = serde_json::from_str(&job.progress).unwrap_or_default();
    match check(app, job, &req, &mut progress).await {
        Ok(()) => JobResult::Done,
        Err(Stop::Queue(e)) => JobResult::Retry { after: app.retry.base, error: e },
        Err(Stop::Forge(e)) => {
            let result = retry_or_fail(app, job, &e);
            if let JobResult::Failed(_) = &result {
                let (title, message) = match e.retry() {
                    Retry::Never => (
                        "guardrail could not check this pull request",
                        format!("A GitHub request failed and will fail again if retried:\n\n```\n{e}\n```\n\nIf the App lost a permission, reinstall it; then use **Re-run**."),
                    ),
                    _ => (
                        "guardrail could not reach GitHub",
                        format!("GitHub kept failing after {} attempts:\n\n```\n{e}\n```\n\nUse **Re-run** to try again.", job.attempts),
                    ),
                };
                finish_with_error(app, &req, &mut progress, title, &message).await;
            }
            result
        }
        Err(Stop::Broken { title, message }) => {
            finish_with_error(app, &req, &mut progress, &title, &message).await;
            JobResult::Done
        }
    }
}

/// Completes the check run (creating it if needed) with a failure that says what went wrong: a check
/// must never stay `in_progress` or pass by mistake.
async fn finish_with_error(app: &App, req: &CheckPullRequest, progress: &mut Progress, title: &str, message: &str) {
    let body = json!({
        "status": "completed",
        "conclusion": "failure",
        "completed_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "output": {"title": title, "summary": checkrun::truncate(message, checkrun::MAX_OUTPUT)},
        "actions": [checkrun::rerun_action()],
    });
    let result = match progress.check_run_id {
        Some(id) => app.github.update_check_run(&req.installation, &req.repo, id, &body).await,
        None => {
            let mut create = body.clone();
            create["name"] = json!(app.check_name);
            create["head_sha"] = json!(req.head_sha.0);
            create["external_id"] = json!(req.external_id());
            app.github.create_check_run(&req.installation, &req.repo, &create).await.map(|_| ())
        }
    };
    if let Err(e) = result {
        tracing::error!(repo = %req.repo, pr = %req.number, error = %e, "could not report the failure on the check run");
    }
}

pub(super) async fn save(app: &App, job: &ClaimedJob, progress: &Progress) -> Result<(), Stop> {
    let text = serde_json::to_string(progress).expect("serialisable");
    app.queue.save_progress(job, &text, app.lease).await?;
    Ok(())
}

async fn check(app: &App, job: &ClaimedJob, req: &CheckPullRequest, progress: &mut Progress) -> Result<(), Stop> {
    let gh = &app.github;
    let (inst, repo) = (&req.installation, &req.repo);
    let pr = gh.pull(inst, repo, &req.number).await?;
    if pr.state != "open" || pr.head_sha != req.head_sha {
        // A newer head has its own job; a closed pull request needs nothing.
        if let Some(id) = progress.check_run_id {
            let body = json!({"status": "completed", "conclusion": "neutral",
                "output": {"title": "Superseded", "summary": "A newer commit was pushed, or the pull request was closed, before this check finished."}});
            gh.update_check_run(inst, repo, id, &body).await?;
        }
        return Ok(());
    }
    if progress.check_run_id.is_none() {
        let body = json!({
            "name": app.check_name,
            "head_sha": req.head_sha.0,
            "status": "in_progress",
            "started_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "external_id": req.external_id(),
            "output": {"title": "Checking…", "summary": "guardrail is evaluating the changed manifests."},
        });
        progress.check_run_id = Some(gh.create_check_run(inst, repo, &body).await?);
        save(app, job, progress).await?;
    }
    let check_run_id = progress.check_run_id.expect("set above");

    // Configuration from the base repository's default branch, never from the head.
    let config_text = gh.file(inst, repo, &pr.base_default_branch, config::REPO_CONFIG).await?;
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
        let body = json!({"status": "completed", "conclusion": "skipped",
            "output": {"title": "Draft pull request", "summary": format!("Drafts are not checked (`drafts: false` in `{}`).", config::REPO_CONFIG)}});
        gh.update_check_run(inst, repo, check_run_id, &body).await?;
        return Ok(());
    }
    if app.policy_repo.as_ref().is_some_and(|p| &p.repo == repo) {
        return super::policy_repo_check::run(app, job, req, progress, check_run_id).await;
    }

    let started = Instant::now();
    // The organisation's policies: built-ins minus what the repository disables (never the required
    // ones), plus the policy repository at its default branch head.
    let policy_files = match &app.policy_repo {
        Some(p) => Some(app.policies.files(gh, p).await.map_err(policy_stop)?),
        None => None,
    };
    let org = policy_files.as_ref().map(|f| f.org.clone()).unwrap_or_default();
    let (builtins, refused) = config::builtin_selection(&repo_config, &org);
    let policies =
        app.policies.policies(app.policy_repo.as_ref(), policy_files, &builtins).await.map_err(policy_stop)?;

    let filter = FileFilter::new(&repo_config)
        .map_err(|e| Stop::Broken { title: format!("{} does not load", config::REPO_CONFIG), message: e })?;
    let files = gh.pull_files(inst, repo, &req.number).await?;
    let patches: HashMap<String, Option<String>> =
        files.iter().map(|f| (f.filename.clone(), f.patch.clone())).collect();
    let wanted: Vec<String> = files
        .iter()
        .filter(|f| f.status != "removed" && filter.wants(&f.filename))
        .map(|f| f.filename.clone())
        .collect();
    let limits = manifest::Limits::default();
    let fetched = gh.files_at(inst, repo, &req.head_sha, &wanted, limits.max_file_bytes).await?;
    let mut notes = Vec::new();
    if files.len() >= crate::forge::github::MAX_PULL_FILES {
        notes.push(format!(
            "GitHub lists at most {} files of a pull request; files beyond that were not checked.",
            crate::forge::github::MAX_PULL_FILES
        ));
    }
    if !refused.is_empty() {
        notes.push(format!(
            "{} cannot be disabled: the organisation requires {}.",
            config::REPO_CONFIG,
            refused.join(", ")
        ));
    }
    let changed: Vec<String> = files.iter().filter(|f| f.status != "removed").map(|f| f.filename.clone()).collect();
    let (terraform, terraform_notes) =
        super::terraform::gather(gh, inst, repo, &req.head_sha, &changed, &filter, limits.max_file_bytes).await?;
    notes.extend(terraform_notes);
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
    let opts = ScanOptions {
        load: manifest::LoadOptions { default_namespace: repo_config.namespace.clone(), ..Default::default() },
        threads: 0,
        exemptions: Exemptions { rules: policies.org.exemptions.clone(), repository: repo.to_string(), today: None },
        ..Default::default()
    };
    let set = policies.set.clone();
    let scanned = tokio::task::spawn_blocking(move || scan::scan_texts(&texts, &set, &opts))
        .await
        .map_err(|e| Stop::Broken { title: "guardrail failed".into(), message: format!("evaluation panicked: {e}") })?;
    app.metrics.evaluation(started.elapsed());
    let mut outcome = Outcome {
        findings: scanned.outcome.findings.clone(),
        errors: scanned.outcome.errors.clone(),
        ..Default::default()
    };
    outcome.findings.extend(extra);
    outcome.sort();

    // Inline comments first: if this job is superseded meanwhile, no comments land on an old head.
    let mut outside_diff = 0;
    if repo_config.review_comments && !app.queue.is_superseded(job).await? {
        let mut existing: Vec<Existing> =
            gh.review_comments(inst, repo, &req.number).await?.iter().map(Existing::from_api).collect();
        let ids: Vec<String> = existing.iter().filter(|e| e.by_us).map(|e| e.node_id.clone()).collect();
        let minimized = app.queue.minimized(&ids).await?;
        for e in &mut existing {
            e.minimized = minimized.contains(&e.node_id);
        }
        let explain = |policy: &str| explanation(&policies.set, policy);
        let plan = review::plan(&outcome.findings, &patches, &existing, &scanned.sources, &explain);
        outside_diff = plan.outside_diff;
        if plan.over_limit > 0 {
            notes.push(format!(
                "{} more finding(s) on changed lines have no inline comment: guardrail posts at most {} new comments per run. All of them are annotations.",
                plan.over_limit,
                review::MAX_NEW_COMMENTS
            ));
        }
        if !plan.comments.is_empty() {
            gh.create_review(inst, repo, &req.number, &review::review_request(&req.head_sha.0, &plan.comments)).await?;
        }
        if !plan.outdated.is_empty() {
            gh.minimize_outdated(inst, &plan.outdated).await?;
            app.queue.mark_minimized(&plan.outdated).await?;
        }
    }

    let ctx = CheckRunContext {
        files: scanned.stats.files,
        resources: scanned.stats.resources,
        policy_source: policies.source.clone(),
        exemptions: scanned.exemptions.used.clone(),
        rejected_exemptions: scanned.exemptions.rejected.clone(),
        outside_diff,
        notes,
    };
    let report = checkrun::build(&outcome, &ctx);
    send_report(app, job, req, progress, check_run_id, &report).await
}

fn policy_stop(e: PolicyLoadError) -> Stop {
    match e {
        PolicyLoadError::Forge(e) => Stop::Forge(e),
        PolicyLoadError::Broken(message) => Stop::Broken {
            title: "The policy repository does not load".into(),
            message: format!("guardrail could not load the organisation's policies, so this pull request was not checked:\n\n{message}\n\nThe policy repository's maintainers must fix this; then use **Re-run**."),
        },
    }
}

fn file_finding(path: &str, message: String) -> Finding {
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

fn explanation(set: &crate::policy::PolicySet, policy: &str) -> Explanation {
    set.templates
        .iter()
        .enumerate()
        .find(|(i, t)| set.builtin_of.get(i).map(String::as_str) == Some(policy) || t.kind == policy)
        .map(|(_, t)| Explanation { description: t.description.clone(), remediation: t.remediation.clone() })
        .unwrap_or_default()
}

/// Sends the annotations in batches of 50 (GitHub's limit), then completes the check run. Batches
/// already sent by an earlier attempt are not sent again.
pub(super) async fn send_report(
    app: &App,
    job: &ClaimedJob,
    req: &CheckPullRequest,
    progress: &mut Progress,
    check_run_id: u64,
    report: &CheckRunReport,
) -> Result<(), Stop> {
    let output = |annotations: &[Value]| json!({"title": report.title, "summary": report.summary, "text": report.text, "annotations": annotations});
    let pending = &report.annotations[progress.annotations_sent.min(report.annotations.len())..];
    let mut chunks: Vec<&[Value]> = pending.chunks(ANNOTATIONS_PER_REQUEST).collect();
    let last = chunks.pop().unwrap_or(&[]);
    for chunk in chunks {
        app.github
            .update_check_run(&req.installation, &req.repo, check_run_id, &json!({"output": output(chunk)}))
            .await?;
        progress.annotations_sent += chunk.len();
        save(app, job, progress).await?;
    }
    let body = json!({
        "status": "completed",
        "conclusion": report.conclusion,
        "completed_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "output": output(last),
        "actions": [checkrun::rerun_action()],
    });
    app.github.update_check_run(&req.installation, &req.repo, check_run_id, &body).await?;
    Ok(())
}
