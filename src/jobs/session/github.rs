//! A GitHub pull request's check: the `Session` over one pull-request head. Where GitHub gets written:
//! the check run (created or adopted, progress notes, annotations, completion) and the inline review
//! comments (`review_comments`, bodies from `report::review`). Every write is fenced (the job must
//! still hold its claim), and every write that GitHub may have applied without our knowing (a crash, a
//! timeout, a 5xx) is reconciled with what GitHub holds before it is made again: the check run is found
//! by name, head and `external_id`; annotations already on the run are counted and not sent twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Change, Changes, Failure, Scanned, Session, Stop, TrustedText, Words};
use crate::findings::Severity;
use crate::forge::github::{PullRequest, ReviewThread, MAX_PULL_FILES};
use crate::forge::{ChangedFile, Contents, FileText, ForgeError};
use crate::intake::{self, CheckPullRequest};
use crate::jobs::config::REPO_CONFIG;
use crate::jobs::App;
use crate::queue::worker::JobResult;
use crate::queue::{ClaimedJob, RateLimitKey};
use crate::report::checkrun::{self, CheckRunReport, ANNOTATIONS_PER_REQUEST};
use crate::report::review::{self, Existing};

const WORDS: Words = Words { change: "pull request", rerun: "use **Re-run**" };

/// What earlier attempts of this job already did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub check_run_id: Option<u64>,
    /// Saved before the check run is created: its `started_at`, which identifies the run on GitHub
    /// if the creation was applied but its answer lost.
    #[serde(default)]
    pub creating: Option<String>,
    /// Saved with `creating`: this job's and claim's identity, carried in the run's `external_id`, so
    /// the run is recognised exactly even when other runs for the head started in the same second.
    #[serde(default)]
    pub intent: Option<String>,
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub struct GitHubSession<'a> {
    pub app: &'a App,
    pub job: &'a ClaimedJob,
    pub req: CheckPullRequest,
    pub progress: Progress,
    /// The pull request as GitHub had it at the start.
    pr: Option<PullRequest>,
    /// Changed file -> its patch (where inline comments may go; `None` where GitHub shows none).
    patches: HashMap<String, Option<String>>,
    /// The head's listing, read once (a commit's tree never changes).
    listing: tokio::sync::OnceCell<(Vec<(String, u64)>, bool)>,
}

impl<'a> GitHubSession<'a> {
    /// The session of a `check-pull-request` job, or the job's end when its payload does not parse.
    pub fn open(app: &'a App, job: &'a ClaimedJob) -> Result<Self, JobResult> {
        let Ok(req) = serde_json::from_str::<CheckPullRequest>(&job.payload) else {
            return Err(JobResult::Failed("malformed check payload".into()));
        };
        let progress = serde_json::from_str(&job.progress).unwrap_or_default();
        let (pr, patches, listing) = (None, HashMap::new(), tokio::sync::OnceCell::new());
        Ok(GitHubSession { app, job, req, progress, pr, patches, listing })
    }

    /// Every forge write goes through here first.
    pub async fn fence(&self) -> Result<(), Stop> {
        Ok(self.app.queue.fence(self.job, self.app.lease).await?)
    }

    pub async fn save(&self) -> Result<(), Stop> {
        let text = serde_json::to_string(&self.progress).expect("serialisable");
        Ok(self.app.queue.save_progress(self.job, &text, self.app.lease).await?)
    }

    /// Step "start": the pull request as GitHub has it now. `None` when there is nothing to check
    /// at this head (closed, or a newer head was pushed: then that head is made sure to be checked).
    async fn begin(&mut self) -> Result<Option<PullRequest>, Stop> {
        let (inst, repo) = (self.req.installation.clone(), self.req.repo.clone());
        let (inst, repo) = (&inst, &repo);
        let pr = self.app.github()?.pull(inst, repo, &self.req.number).await?;
        if pr.state == "open" && pr.head_sha == self.req.head_sha {
            return Ok(Some(pr));
        }
        if pr.state == "open" {
            // Deliveries arrive out of order: the current head must not be left unchecked because
            // its job was superseded by this (older) one.
            let mut current = CheckPullRequest::new(
                repo,
                inst,
                self.req.number.0,
                &pr.head_sha.0,
                format!("head moved from {}", self.req.head_sha),
            );
            current.recency = pr.updated_at;
            if self.app.queue.ensure(&current.job(false), self.job).await? {
                tracing::info!(repo = %repo, pr = %self.req.number, head = %pr.head_sha, "the current head gets its check");
            }
        }
        if let Some(id) = self.known_run().await? {
            let body = json!({"status": "completed", "conclusion": "neutral",
                "output": {"title": "Superseded", "summary": "A newer commit was pushed, or the pull request was closed, before this check finished."}});
            self.fence().await?;
            self.app.github()?.update_check_run(inst, repo, id, &body).await?;
        }
        Ok(None)
    }

    /// The check run this job made, if it made one (reconciled with GitHub when an earlier
    /// attempt may have created it without learning its id).
    pub async fn known_run(&mut self) -> Result<Option<u64>, Stop> {
        if let Some(id) = self.progress.check_run_id {
            return Ok(Some(id));
        }
        let external_id = self.req.external_id();
        let runs = self
            .app
            .github()?
            .check_runs_for(&self.req.installation, &self.req.repo, &self.req.head_sha, &self.app.check_name)
            .await?;
        let ours = runs.iter().filter(|r| intake::pull_of_external_id(&r.external_id) == external_id);
        // Ours from this job (its intent in the external id; a run made before intents were saved:
        // its start time), or one left in progress by an attempt whose notes were lost.
        let found = match (&self.progress.intent, &self.progress.creating) {
            (Some(intent), _) => runs.iter().find(|r| r.external_id == intake::external_id_with(&external_id, intent)),
            (None, Some(at)) => {
                let at = intake::time_ms(Some(at.as_str()));
                ours.clone()
                    .find(|r| r.external_id == external_id && intake::time_ms(Some(r.started_at.as_str())) == at)
            }
            (None, None) => None,
        }
        .or_else(|| ours.clone().find(|r| r.status != "completed"));
        if let Some(run) = found {
            tracing::info!(repo = %self.req.repo, run = run.id, "adopted the check run an earlier attempt created");
            self.progress.check_run_id = Some(run.id);
            self.save().await?;
            return Ok(Some(run.id));
        }
        Ok(None)
    }

    /// The check run for this head: adopted if an earlier attempt made it, created otherwise (the
    /// intent is saved before the create, so a lost answer is reconciled, never repeated blindly).
    pub async fn ensure_run(&mut self, title: &str, summary: &str) -> Result<u64, Stop> {
        if let Some(id) = self.known_run().await? {
            return Ok(id);
        }
        let (started_at, intent) = match (&self.progress.creating, &self.progress.intent) {
            (Some(at), Some(intent)) => (at.clone(), intent.clone()),
            _ => {
                let intent = format!("{}.{}", self.job.id, self.job.token.get(..8).unwrap_or(&self.job.token));
                self.progress.creating = Some(now_text());
                self.progress.intent = Some(intent.clone());
                self.save().await?;
                (self.progress.creating.clone().expect("set above"), intent)
            }
        };
        let body = json!({
            "name": self.app.check_name,
            "head_sha": self.req.head_sha.0,
            "status": "in_progress",
            "started_at": started_at,
            "external_id": intake::external_id_with(&self.req.external_id(), &intent),
            "output": {"title": title, "summary": summary},
        });
        self.fence().await?;
        let id = self.app.github()?.create_check_run(&self.req.installation, &self.req.repo, &body).await?;
        self.progress.check_run_id = Some(id);
        self.save().await?;
        Ok(id)
    }

    /// Completes the run with a short verdict and no annotations (skipped drafts and the like).
    pub async fn complete(&mut self, conclusion: &str, title: &str, summary: &str) -> Result<(), Stop> {
        let id = self.ensure_run(title, summary).await?;
        let body = json!({"status": "completed", "conclusion": conclusion,
            "completed_at": now_text(),
            "output": {"title": title, "summary": checkrun::truncate(summary, checkrun::MAX_OUTPUT)}});
        self.fence().await?;
        self.app.github()?.update_check_run(&self.req.installation, &self.req.repo, id, &body).await?;
        Ok(())
    }

    /// Step "finish": the annotations in batches of 50 (GitHub's limit), then the completed run.
    /// GitHub appends annotations, so the run's own count says what earlier attempts sent.
    pub async fn send_report(&mut self, report: &CheckRunReport) -> Result<(), Stop> {
        let id = self.ensure_run("Checking…", "guardrail is evaluating the changed manifests.").await?;
        let (inst, repo) = (&self.req.installation, &self.req.repo);
        let sent = self.app.github()?.check_run(inst, repo, id).await?.annotations as usize;
        let output = |annotations: &[Value]| json!({"title": report.title, "summary": report.summary, "text": report.text, "annotations": annotations});
        let pending = &report.annotations[sent.min(report.annotations.len())..];
        let mut chunks: Vec<&[Value]> = pending.chunks(ANNOTATIONS_PER_REQUEST).collect();
        let last = chunks.pop().unwrap_or(&[]);
        for chunk in chunks {
            self.fence().await?;
            self.app.github()?.update_check_run(inst, repo, id, &json!({"output": output(chunk)})).await?;
        }
        let body = json!({
            "status": "completed",
            "conclusion": report.conclusion,
            "completed_at": now_text(),
            "output": output(last),
            "actions": [checkrun::rerun_action()],
        });
        self.fence().await?;
        self.app.github()?.update_check_run(inst, repo, id, &body).await?;
        Ok(())
    }

    /// While GitHub fails and the job will try again: the run says so in words, with the time of
    /// the next attempt (only when the run exists; best effort).
    async fn say_retrying(&mut self, error: &ForgeError, after: Duration) {
        let Some(id) = self.progress.check_run_id else { return };
        let at = chrono::Utc::now() + chrono::Duration::from_std(after).unwrap_or_default();
        let summary =
            format!("GitHub is failing; retrying, next attempt at {} ({}).", at.format("%H:%M:%S UTC"), error.short());
        let body = json!({"output": {"title": "GitHub is failing; retrying", "summary": summary}});
        if self.fence().await.is_ok() {
            if let Ok(gh) = self.app.github() {
                let _ = gh.update_check_run(&self.req.installation, &self.req.repo, id, &body).await;
            }
        }
    }

    /// Completes the run (creating it if needed) with a failure that says what went wrong: a check
    /// must never stay `in_progress` or pass by mistake. Best effort: errors are logged.
    async fn fail_run(&mut self, title: &str, message: &str) {
        let result = async {
            let id = self.ensure_run(title, "guardrail could not finish this check.").await?;
            let body = json!({
                "status": "completed",
                "conclusion": "failure",
                "completed_at": now_text(),
                "output": {"title": title, "summary": checkrun::truncate(message, checkrun::MAX_OUTPUT)},
                "actions": [checkrun::rerun_action()],
            });
            self.fence().await?;
            self.app.github()?.update_check_run(&self.req.installation, &self.req.repo, id, &body).await?;
            Ok::<(), Stop>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(repo = %self.req.repo, pr = %self.req.number, error = ?e, "could not report the failure on the check run");
        }
    }
}

/// Step "report": inline comments for new findings on lines in the diff (those already posted, by
/// marker, are not posted again), outdated ones resolved, ones that came back reopened. Returns how
/// many findings were outside the diff.
async fn review_comments(
    session: &GitHubSession<'_>,
    scanned: &Scanned<'_>,
    notes: &mut Vec<String>,
) -> Result<usize, Stop> {
    let (app, req) = (session.app, &session.req);
    let (repo_config, outcome, patches) = (scanned.repo_config, &scanned.outcome, &session.patches);
    let (gh, inst, repo) = (app.github()?, &req.installation, &req.repo);
    // If this job is superseded meanwhile, no comments land on an old head.
    if !repo_config.review_comments || app.queue.is_superseded(session.job).await? {
        return Ok(0);
    }
    let mut existing: Vec<Existing> =
        gh.review_comments(inst, repo, &req.number).await?.iter().map(Existing::from_api).collect();
    let threads = gh.review_threads(inst, repo, &req.number).await?;
    let thread_of: HashMap<&str, &ReviewThread> = threads.iter().map(|t| (t.comment_node_id.as_str(), t)).collect();
    for e in &mut existing {
        e.minimized = thread_of.get(e.node_id.as_str()).is_some_and(|t| t.resolved || t.minimized);
    }
    let explain = |policy: &str| scanned.explanation(policy);
    let plan = review::plan(&outcome.findings, patches, &existing, &scanned.scan.sources, &explain);
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
    let back: Vec<&ReviewThread> = existing
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

/// The head commit, read through the installation's token.
impl Contents for GitHubSession<'_> {
    async fn listing(&self) -> Result<(Vec<(String, u64)>, bool), ForgeError> {
        let req = &self.req;
        let gh = self.app.github()?;
        let listing =
            self.listing.get_or_try_init(|| gh.tree_listing(&req.installation, &req.repo, &req.head_sha)).await?;
        Ok(listing.clone())
    }

    async fn files(&self, paths: &[String], max_bytes: u64) -> Result<Vec<(String, FileText)>, ForgeError> {
        let req = &self.req;
        self.app.github()?.files_at(&req.installation, &req.repo, &req.head_sha, paths, max_bytes).await
    }
}

impl Session for GitHubSession<'_> {
    fn app(&self) -> &App {
        self.app
    }

    fn job(&self) -> &ClaimedJob {
        self.job
    }

    fn words(&self) -> &'static Words {
        &WORDS
    }

    fn repository(&self) -> String {
        self.req.repo.to_string()
    }

    fn rate_limit_key(&self) -> RateLimitKey {
        RateLimitKey::Installation(self.req.installation.0)
    }

    fn hold(&self, wait: Duration) {
        if let Ok(gh) = self.app.github() {
            gh.limit(&self.req.installation, wait);
        }
    }

    async fn start(&mut self) -> Result<Option<Change>, Stop> {
        let Some(pr) = self.begin().await? else { return Ok(None) };
        let change = Change { draft: pr.draft };
        self.pr = Some(pr);
        Ok(Some(change))
    }

    /// `.github/guardrail.yml` from the base repository's default branch.
    async fn settings(&mut self) -> Result<TrustedText, Stop> {
        let branch = self.pr.as_ref().map(|pr| pr.base_default_branch.clone()).unwrap_or_default();
        let text = self.app.github()?.file(&self.req.installation, &self.req.repo, &branch, REPO_CONFIG).await?;
        Ok(TrustedText { path: REPO_CONFIG, branch: Some(branch), text: Ok(text.unwrap_or_default()) })
    }

    async fn skip_draft(&mut self) -> Result<(), Stop> {
        let summary = format!("Drafts are not checked (`drafts: false` in `{REPO_CONFIG}`).");
        self.complete("skipped", "Draft pull request", &summary).await
    }

    async fn in_progress(&mut self) -> Result<(), Stop> {
        self.ensure_run("Checking…", "guardrail is evaluating the changed manifests.").await?;
        Ok(())
    }

    fn policy_repository(&self) -> Option<String> {
        self.app.policy_repo.as_ref().filter(|p| p.repo == self.req.repo).map(|p| p.path.clone())
    }

    /// The pull request's files, with their patches (which say where inline comments may go).
    async fn changes(&mut self) -> Result<Option<Changes>, Stop> {
        let req = &self.req;
        let files = self.app.github()?.pull_files(&req.installation, &req.repo, &req.number).await?;
        let changed =
            files.iter().map(|f| ChangedFile { path: f.filename.clone(), removed: f.status == "removed" }).collect();
        self.patches = files.iter().map(|f| (f.filename.clone(), f.patch.clone())).collect();
        let mut notes = Vec::new();
        if files.len() >= MAX_PULL_FILES {
            notes.push(format!(
                "GitHub lists at most {MAX_PULL_FILES} files of a pull request; files beyond that were not checked."
            ));
        }
        Ok(Some(Changes { files: changed, notes }))
    }

    /// Inline review comments on lines in the diff, then the check run with its annotations.
    async fn report(&mut self, scanned: Scanned<'_>) -> Result<(), Stop> {
        let mut notes = scanned.notes.clone();
        let outside_diff = review_comments(self, &scanned, &mut notes).await?;
        self.send_report(&scanned.summary(outside_diff, notes)).await
    }

    async fn verdict(&mut self, report: &CheckRunReport) -> Result<(), Stop> {
        self.send_report(report).await
    }

    async fn retrying(&mut self, error: &ForgeError, after: Duration) {
        self.say_retrying(error, after).await
    }

    async fn finish_with_error(&mut self, failure: Failure<'_>) {
        let (title, message) = match failure {
            Failure::FailingUntil { error, attempts, at } => (
                "GitHub is failing".to_string(),
                format!("GitHub kept failing ({}) after {attempts} attempts, so this pull request was not checked yet. guardrail tries again by itself at {}; use **Re-run** to try now.", error.short(), at.format("%H:%M UTC")),
            ),
            Failure::Failing { error, attempts } => (
                "GitHub is failing".to_string(),
                format!("GitHub kept failing ({}) after {attempts} attempts, so this pull request was not checked. Use **Re-run** to try again.", error.short()),
            ),
            Failure::Refused { error } => (
                "guardrail could not check this pull request".to_string(),
                format!("{}, and asking again will not help. If the App lost a permission, reinstall it; then use **Re-run**.", error.short()),
            ),
            Failure::Broken { title, message } => (title.to_string(), message.to_string()),
            Failure::Internal => (
                "guardrail failed".to_string(),
                "guardrail failed while checking this pull request; this is not something in the pull request. The operators were told (logs). Use **Re-run** to try again.".to_string(),
            ),
        };
        self.fail_run(&title, &message).await
    }
}
