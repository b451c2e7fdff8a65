//! Checking one GitLab merge request head, as named steps over one session, the GitLab twin of
//! `check`: start (the merge request now; a re-run's author has access) -> trusted configuration
//! (`.gitlab/guardrail.yml` from the target project's default branch) -> status `running` -> fetch
//! (the latest version's diffs, files at the head) and scan through the same forge-neutral steps as
//! GitHub's -> report (one discussion per finding on a changed line, one summary note edited in place,
//! gone findings resolved) -> status `failed` or `success` with the counts. Every write is fenced and
//! reconciled with what GitLab holds (see `forge::gitlab`), so a retried job never writes twice.

use std::collections::{HashMap, HashSet};

use super::check::{self, OrgPolicies};
use super::config::{self, RepoConfig, GITLAB_REPO_CONFIG};
use super::session::Stop;
use super::{retry_or_fail, App};
use crate::findings::{Outcome, Severity};
use crate::forge::gitlab::{
    FileDiff, GitLabBot, Marker, MergeRequest, MrVersion, ProjectAt, ProjectRef, StatusState, StatusWrite,
    WantedDiscussion, MAX_DIFF_FILES, MAX_NEW_DISCUSSIONS,
};
use crate::forge::{ChangedFile, FileText, ForgeError, Retry};
use crate::intake::gitlab::{CheckMergeRequest, RERUN_MIN_ACCESS_LEVEL};
use crate::queue::worker::JobResult;
use crate::queue::ClaimedJob;
use crate::report::checkrun::{self, CheckRunContext};
use crate::report::review::{self, Explanation};

/// The name of the commit status.
pub const STATUS_NAME: &str = "guardrail";
/// The description of a status left behind by a newer push.
const SUPERSEDED: &str = "A newer commit was pushed before this check finished";
/// GitLab keeps this much of a note; the summary is cut to fit.
const MAX_NOTE: usize = 1_000_000;

/// One check of one merge request head.
pub struct MrSession<'a> {
    pub app: &'a App,
    pub job: &'a ClaimedJob,
    pub req: CheckMergeRequest,
    pub gitlab: &'a GitLabBot,
    /// The merge request as GitLab had it at the start (where statuses go).
    mr: Option<MergeRequest>,
}

pub async fn run(app: &App, job: &ClaimedJob) -> JobResult {
    let Ok(req) = serde_json::from_str::<CheckMergeRequest>(&job.payload) else {
        return JobResult::Failed("malformed merge request payload".into());
    };
    let gitlab = match app.gitlab() {
        Ok(g) => g,
        Err(e) => return JobResult::Failed(e.to_string()),
    };
    let mut session = MrSession { app, job, req, gitlab, mr: None };
    let result = steps(&mut session).await;
    conclude(&mut session, result).await
}

/// After a panic inside the job: the status says guardrail failed (best effort).
pub async fn internal_failure(app: &App, job: &ClaimedJob) {
    let (Ok(req), Ok(gitlab)) = (serde_json::from_str::<CheckMergeRequest>(&job.payload), app.gitlab()) else {
        return;
    };
    let mut session = MrSession { app, job, req, gitlab, mr: None };
    let _ = conclude(&mut session, Err(Stop::Internal("the job panicked".into()))).await;
}

impl MrSession<'_> {
    async fn fence(&self) -> Result<(), Stop> {
        Ok(self.app.queue.fence(self.job, self.app.lease).await?)
    }

    fn project(&self) -> &ProjectRef {
        &self.req.project
    }

    /// Sets the head's `guardrail` status (reconciled: nothing is sent when GitLab shows it already).
    async fn status(&self, state: StatusState, description: &str, target_url: Option<String>) -> Result<(), Stop> {
        let Some(mr) = &self.mr else { return Ok(()) };
        let write = StatusWrite {
            state,
            name: STATUS_NAME.into(),
            description: description.chars().take(255).collect(),
            target_url,
            git_ref: None,
        };
        self.fence().await?;
        self.gitlab.client.set_mr_status(mr, &self.req.head_sha.0, &write).await?;
        Ok(())
    }

    /// The summary note, created once and edited in place.
    async fn summary_note(&self, body: &str) -> Result<u64, Stop> {
        let bot = self.gitlab.user().await?;
        self.fence().await?;
        let written =
            self.gitlab.client.upsert_note(self.project(), self.req.iid, bot.id, &Marker::summary(), body).await?;
        Ok(written.id())
    }

    /// Where a status links to: the summary note.
    fn note_url(&self, note: u64) -> Option<String> {
        self.mr.as_ref().filter(|m| !m.web_url.is_empty()).map(|m| format!("{}#note_{note}", m.web_url))
    }
}

/// Turns how the steps ended into the queue's decision, telling the author what they need to know.
async fn conclude(session: &mut MrSession<'_>, result: Result<(), Stop>) -> JobResult {
    let (app, job) = (session.app, session.job);
    match result {
        Ok(()) => JobResult::Done,
        Err(Stop::Queue(e)) => JobResult::Retry { after: app.retry.base, error: e },
        Err(Stop::LeaseLost) => {
            tracing::warn!(job = job.id, "the lease is gone; another worker continues this job");
            JobResult::Retry { after: app.retry.base, error: "lease lost".into() }
        }
        Err(Stop::Forge(e)) => {
            let result = retry_or_fail(app, job, &e);
            let description = match &result {
                // The job keeps its place for a slow attempt: the status must not stay `running`.
                JobResult::Later { after, .. } => {
                    let at = chrono::Utc::now() + chrono::Duration::from_std(*after).unwrap_or_default();
                    Some(format!(
                        "GitLab kept failing ({}) after {} attempts; guardrail tries again by itself at {}; comment /guardrail rerun to try now",
                        gitlab_short(&e),
                        job.attempts,
                        at.format("%H:%M UTC")
                    ))
                }
                JobResult::Failed(_) => Some(match e.retry() {
                    Retry::Never => format!("guardrail could not check this merge request: {}", gitlab_short(&e)),
                    _ => format!(
                        "GitLab kept failing ({}) after {} attempts; comment /guardrail rerun to try again",
                        gitlab_short(&e),
                        job.attempts
                    ),
                }),
                JobResult::Retry { .. } | JobResult::Done => None,
            };
            if let Some(description) = description {
                finish_with_error(session, &description, None).await;
            }
            result
        }
        Err(Stop::Broken { title, message }) => {
            finish_with_error(session, &title, Some(&format!("### guardrail: {title}\n\n{message}"))).await;
            JobResult::Done
        }
        Err(Stop::Internal(why)) => {
            tracing::error!(job = job.id, key = %job.dedupe_key, %why, "internal failure");
            app.metrics.job_finished(&job.kind, "internal_error");
            finish_with_error(
                session,
                "guardrail failed (not something in this merge request); comment /guardrail rerun to try again",
                None,
            )
            .await;
            JobResult::Failed(format!("internal failure: {why}"))
        }
    }
}

/// A failed status that says what went wrong (a check must never stay `running` or pass by mistake),
/// and the summary note when there is something for the author to read. Best effort: errors are logged.
async fn finish_with_error(session: &mut MrSession<'_>, description: &str, note: Option<&str>) {
    let result = async {
        if session.mr.is_none() {
            session.mr = Some(session.gitlab.client.merge_request(session.project(), session.req.iid).await?);
        }
        let url = match note {
            Some(body) => session.note_url(session.summary_note(body).await?),
            None => None,
        };
        session.status(StatusState::Failed, description, url).await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(project = %session.req.project, mr = %session.req.iid, error = ?e, "could not report the failure on the status");
    }
}

/// For a status description: what failed, without response bodies.
fn gitlab_short(e: &ForgeError) -> String {
    match e {
        ForgeError::RateLimited { operation, .. } => format!("GitLab rate-limited {operation}"),
        ForgeError::Status { operation, status, .. } => format!("GitLab answered {status} to {operation}"),
        ForgeError::Transport { operation, .. } => format!("{operation} got no answer from GitLab"),
        ForgeError::Decode { operation, .. } => format!("GitLab's answer to {operation} was not understood"),
        ForgeError::Auth(_) | ForgeError::Uninstalled(_) => "the bot's token was refused".to_string(),
    }
}

async fn steps(session: &mut MrSession<'_>) -> Result<(), Stop> {
    let Some(mr) = start(session).await? else { return Ok(()) };
    let Some(repo_config) = trusted_configuration(session, &mr).await? else { return Ok(()) };
    session.status(StatusState::Running, "guardrail is checking the changed manifests", None).await?;
    let app = session.app;
    let started = std::time::Instant::now();
    let policies = check::organisation_policies(app, &repo_config).await?;
    let Some(fetched) = fetch(session, &mr, &repo_config).await? else {
        // The head moved while this job ran: its `running` must not stay (the newer head has its job).
        return session.status(StatusState::Canceled, SUPERSEDED, None).await;
    };
    let (outcome, scanned) = check::scan(
        app,
        &session.req.project.0,
        &repo_config,
        &policies,
        fetched.read.texts,
        fetched.read.extra,
        fetched.read.kustomize,
    )
    .await?;
    app.metrics.evaluation(started.elapsed());
    let mut notes = fetched.read.notes;
    notes.extend(fetched.notes);
    notes.extend(policies.notes.iter().cloned());
    let sources = &scanned.sources;
    report(session, &repo_config, &policies, &outcome, &scanned, &fetched.version, &fetched.diffs, sources, notes).await
}

/// Step "start": the merge request as GitLab has it now, and the bot's identity. `None` when there
/// is nothing to check at this head (closed or merged; a newer head, which is made sure to be
/// checked; a re-run asked by someone without Developer access).
async fn start(session: &mut MrSession<'_>) -> Result<Option<MergeRequest>, Stop> {
    let gl = &session.gitlab.client;
    session.gitlab.user().await?;
    let mr = gl.merge_request(session.project(), session.req.iid).await?;
    if mr.state != "opened" {
        tracing::info!(project = %session.req.project, mr = %session.req.iid, state = %mr.state, "merge request not open: nothing to check");
        return Ok(None);
    }
    let head = mr.sha.clone().unwrap_or_default();
    if head != session.req.head_sha.0 {
        if !head.is_empty() {
            // Deliveries arrive out of order: the current head must not be left unchecked.
            let mut current = session.req.clone();
            current.head_sha = crate::forge::CommitSha(head.clone());
            current.reason = format!("head moved from {}", session.req.head_sha);
            current.requested_by = None;
            current.force = false;
            // The merge request's own time, as GitHub's `updated_at` orders pull requests; `ensure`
            // lowers this (stale) job's recency below it. Whole seconds, as hooks give it (the API
            // gives milliseconds): a later push's hook in the same second must not rank below it.
            let updated = crate::intake::gitlab::gitlab_time_ms(mr.updated_at.as_deref()) / 1000 * 1000;
            current.recency = if updated > 0 { updated } else { session.req.recency + 1 };
            if session.app.queue.ensure(&current.job(), session.job).await? {
                tracing::info!(project = %session.req.project, mr = %session.req.iid, head = %head, "the current head gets its check");
            }
        }
        cancel_running(session, &mr).await?;
        return Ok(None);
    }
    if let Some(user) = session.req.requested_by {
        let level = gl.member_access_level(&ProjectRef::id(mr.target_project_id), user).await?;
        if level.unwrap_or(0) < RERUN_MIN_ACCESS_LEVEL {
            tracing::info!(project = %session.req.project, mr = %session.req.iid, user, "re-run asked by someone without Developer access: ignored");
            return Ok(None);
        }
    }
    session.mr = Some(mr.clone());
    Ok(Some(mr))
}

/// An earlier attempt of this job may have left the old head's status `running`: it is canceled, so
/// no status stays running for ever.
async fn cancel_running(session: &MrSession<'_>, mr: &MergeRequest) -> Result<(), Stop> {
    let gl = &session.gitlab.client;
    let sha = &session.req.head_sha.0;
    for (project, git_ref) in mr.status_targets() {
        let current = match gl.statuses(&project, sha, STATUS_NAME).await {
            Ok(list) => list.into_iter().next(),
            Err(ForgeError::Status { status: 403 | 404, .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if current.is_some_and(|s| s.status == "running" || s.status == "pending") {
            let write = StatusWrite {
                state: StatusState::Canceled,
                name: STATUS_NAME.into(),
                description: SUPERSEDED.into(),
                target_url: None,
                git_ref: Some(git_ref),
            };
            session.fence().await?;
            gl.set_status(&project, sha, &write).await?;
        }
    }
    Ok(())
}

/// Step "trusted configuration": `.gitlab/guardrail.yml` from the target project's default branch,
/// never from the merge request. `None` when the check ends here (a skipped draft).
async fn trusted_configuration(session: &MrSession<'_>, mr: &MergeRequest) -> Result<Option<RepoConfig>, Stop> {
    let gl = &session.gitlab.client;
    let target = ProjectRef::id(mr.target_project_id);
    let project = gl.project(&target).await?;
    let Some(branch) = project.default_branch else {
        return Ok(Some(RepoConfig::default()));
    };
    let text = match gl.file_text(&target, GITLAB_REPO_CONFIG, &branch, 1024 * 1024).await? {
        FileText::Text(t) => Ok(t),
        FileText::Missing => Ok(String::new()),
        FileText::TooLarge(n) => Err(format!("{GITLAB_REPO_CONFIG}: {n} bytes, more than guardrail reads (1 MiB)")),
        FileText::Binary => Err(format!("{GITLAB_REPO_CONFIG}: not a text file")),
    };
    let repo_config: RepoConfig = match text.and_then(|t| config::parse(GITLAB_REPO_CONFIG, &t)) {
        Ok(c) => c,
        Err(e) => {
            return Err(Stop::Broken {
                title: format!("{GITLAB_REPO_CONFIG} does not load"),
                message: format!("guardrail reads `{GITLAB_REPO_CONFIG}` from the default branch `{branch}`:\n\n```\n{e}\n```\n\nFix it there; this merge request was not checked."),
            })
        }
    };
    if mr.draft && !repo_config.drafts {
        // No `running` before: GitLab cannot move a running status to skipped.
        session
            .status(
                StatusState::Skipped,
                &format!("Drafts are not checked (drafts: false in {GITLAB_REPO_CONFIG})"),
                None,
            )
            .await?;
        return Ok(None);
    }
    Ok(Some(repo_config))
}

/// What step "fetch" read.
struct MrFetched {
    read: check::Fetched,
    version: MrVersion,
    /// New path -> the lines a discussion may go on (`None`: GitLab withheld the diff).
    diffs: HashMap<String, Option<FileDiff>>,
    notes: Vec<String>,
}

/// Step "fetch": the version whose head is the commit being checked, its changed files, and their
/// contents at the head (a fork the bot cannot read through the target project's merge request ref).
/// `None` when the head moved meanwhile (the newer head has its own event).
async fn fetch(
    session: &MrSession<'_>,
    mr: &MergeRequest,
    repo_config: &RepoConfig,
) -> Result<Option<MrFetched>, Stop> {
    let gl = &session.gitlab.client;
    let (project, iid, head) = (session.project(), session.req.iid, &session.req.head_sha.0);
    let versions = gl.versions(project, iid).await?;
    let Some(version) = versions.iter().find(|v| v.head_commit_sha == *head).cloned() else {
        // GitLab makes the version shortly after the push: try again soon.
        return Err(Stop::Forge(ForgeError::Transport {
            operation: "merge_requests/versions".into(),
            message: format!("no version for {head} yet"),
        }));
    };
    if versions.first().is_some_and(|newest| newest.head_commit_sha != *head) {
        // `/diffs` lists the newest version's files: positions made from them would not fit this
        // version's SHAs. The newer head has its own event.
        return Ok(None);
    }
    let (diffs, complete) = gl.diffs(project, iid).await?;
    let Some((source, git_ref)) = gl.content_source(mr, head).await? else { return Ok(None) };
    let changed: Vec<ChangedFile> =
        diffs.iter().map(|d| ChangedFile { path: d.new_path.clone(), removed: d.deleted_file }).collect();
    let contents = ProjectAt::new(gl, source, git_ref);
    let read = check::read_changed(&contents, &changed, repo_config).await?;
    let mut notes = Vec::new();
    if !complete {
        notes.push(format!(
            "GitLab lists at most {MAX_DIFF_FILES} files of a merge request; files beyond that were not checked."
        ));
    }
    let diffs = diffs.iter().filter(|d| !d.deleted_file).map(|d| (d.new_path.clone(), d.lines())).collect();
    Ok(Some(MrFetched { read, version, diffs, notes }))
}

/// Step "report": discussions for findings on changed lines (kept, created, reopened; gone ones
/// resolved), the summary note, and the final status.
#[allow(clippy::too_many_arguments)]
async fn report(
    session: &MrSession<'_>,
    repo_config: &RepoConfig,
    policies: &OrgPolicies,
    outcome: &Outcome,
    scanned: &crate::scan::Scan,
    version: &MrVersion,
    diffs: &HashMap<String, Option<FileDiff>>,
    sources: &HashMap<String, String>,
    mut notes: Vec<String>,
) -> Result<(), Stop> {
    let app = session.app;
    // If this job is superseded meanwhile, nothing lands on an old head.
    if app.queue.is_superseded(session.job).await? {
        return session.status(StatusState::Canceled, SUPERSEDED, None).await;
    }
    let set = &policies.policies.set;
    let mut wanted = Vec::new();
    let mut outside = 0usize;
    let mut seen = HashSet::new();
    for f in outcome.findings.iter().filter(|f| f.severity != Severity::Info) {
        let key = review::finding_key(f);
        if !seen.insert(key.clone()) {
            continue;
        }
        let path = f.file.trim_start_matches("./");
        let end = f.region.end_line.max(f.region.line);
        let position = diffs
            .get(path)
            .and_then(Option::as_ref)
            .filter(|_| f.region.line > 0)
            .and_then(|lines| lines.position(version, f.region.line, end));
        let Some(position) = position else {
            outside += 1;
            continue;
        };
        let source_line = sources.get(&f.file).and_then(|t| t.lines().nth(f.region.line.saturating_sub(1) as usize));
        let explanation: Explanation = check::explanation(set, &f.policy);
        let body = review::comment_body(f, &key, &explanation, source_line);
        wanted.push(WantedDiscussion { marker: Marker::finding(&key), body, position });
    }
    if repo_config.review_comments {
        let bot = session.gitlab.user().await?;
        session.fence().await?;
        let sync = session
            .gitlab
            .client
            .sync_discussions(session.project(), session.req.iid, bot.id, &wanted, MAX_NEW_DISCUSSIONS)
            .await?;
        tracing::info!(project = %session.req.project, mr = %session.req.iid, created = sync.created, kept = sync.kept, resolved = sync.resolved, reopened = sync.reopened, "discussions synced");
        if !sync.over_limit.is_empty() {
            notes.push(format!(
                "{} more finding(s) on changed lines have no discussion yet: guardrail starts at most {MAX_NEW_DISCUSSIONS} a run; they are listed below and get theirs on the next run.",
                sync.over_limit.len()
            ));
        }
    }
    if outside > 0 {
        notes.push(format!(
            "{outside} finding(s) are on lines this merge request did not change, or in a diff GitLab did not show: they are listed below, without a discussion."
        ));
    }
    let ctx = CheckRunContext {
        files: scanned.stats.files,
        resources: scanned.stats.resources,
        policy_source: policies.policies.source.clone(),
        exemptions: scanned.exemptions.used.clone(),
        rejected_exemptions: scanned.exemptions.rejected.clone(),
        outside_diff: 0,
        notes,
    };
    let built = checkrun::build(outcome, &ctx);
    let head = &session.req.head_sha.0;
    let body = checkrun::truncate(
        &format!(
            "### guardrail: {}\n\nCommit {}.\n\n{}\n\n{}",
            built.title,
            &head[..head.len().min(12)],
            built.summary,
            built.text
        ),
        MAX_NOTE,
    );
    let note = session.summary_note(&body).await?;
    let state = if built.conclusion == "failure" { StatusState::Failed } else { StatusState::Success };
    session.status(state, &built.title, session.note_url(note)).await
}
