//! A GitLab merge request's check: the `Session` over one merge-request head. Where GitLab gets
//! written: the `guardrail` commit status on the head (running, then failed or success with the
//! counts), one discussion per finding on a line the merge request changed (`report`: positions from
//! `forge::gitlab::FileDiff`, bodies from `report::review`, as on GitHub), and one summary note edited
//! in place. Every write is fenced and reconciled with what GitLab holds (see `forge::gitlab`), so a
//! retried job never writes twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{Change, Changes, Failure, Scanned, Session, Stop, TrustedText, Words};
use crate::findings::Severity;
use crate::forge::gitlab::{
    FileDiff, GitLabBot, Marker, MergeRequest, MrVersion, ProjectAt, ProjectRef, StatusState, StatusWrite,
    WantedDiscussion, MAX_DIFF_FILES, MAX_NEW_DISCUSSIONS,
};
use crate::forge::{ChangedFile, Contents, FileText, ForgeError};
use crate::intake::gitlab::{CheckMergeRequest, RERUN_MIN_ACCESS_LEVEL};
use crate::jobs::config::GITLAB_REPO_CONFIG;
use crate::jobs::App;
use crate::queue::worker::JobResult;
use crate::queue::{ClaimedJob, RateLimitKey};
use crate::report::checkrun::{self, CheckRunReport};
use crate::report::review;

/// The name of the commit status.
pub const STATUS_NAME: &str = "guardrail";
/// The description of a status left behind by a newer push.
const SUPERSEDED: &str = "A newer commit was pushed before this check finished";
/// GitLab keeps this much of a note; the summary is cut to fit.
const MAX_NOTE: usize = 1_000_000;

/// The job's progress once its status may be `running` on GitLab.
const RUNNING_NOTE: &str = r#"{"running":true}"#;

const WORDS: Words = Words { change: "merge request", rerun: "comment `/guardrail rerun`" };

/// One check of one merge request head.
pub struct GitLabSession<'a> {
    pub app: &'a App,
    pub job: &'a ClaimedJob,
    pub req: CheckMergeRequest,
    pub gitlab: &'a GitLabBot,
    /// The merge request as GitLab had it at the start (where statuses go).
    mr: Option<MergeRequest>,
    /// Set by `changes`: the version whose head is the commit being checked, the lines a discussion
    /// may go on per new path (`None`: GitLab withheld the diff), and where the head's files are read (a fork
    /// the bot cannot read: the target project's merge request ref).
    version: Option<MrVersion>,
    diffs: HashMap<String, Option<FileDiff>>,
    head: std::sync::OnceLock<ProjectAt<'a>>,
}

impl<'a> GitLabSession<'a> {
    /// The session of a `check-merge-request` job, or the job's end when it cannot run here.
    pub fn open(app: &'a App, job: &'a ClaimedJob) -> Result<Self, JobResult> {
        let Ok(req) = serde_json::from_str::<CheckMergeRequest>(&job.payload) else {
            return Err(JobResult::Failed("malformed merge request payload".into()));
        };
        let gitlab = app.gitlab().map_err(|e| JobResult::Failed(e.to_string()))?;
        let (mr, version, diffs, head) = (None, None, HashMap::new(), std::sync::OnceLock::new());
        Ok(GitLabSession { app, job, req, gitlab, mr, version, diffs, head })
    }

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

    /// The head's files at `source` (project, ref), by default the target project at the head SHA.
    fn head_at(&self, source: Option<(ProjectRef, String)>) -> ProjectAt<'a> {
        let gitlab: &'a GitLabBot = self.gitlab;
        let (project, git_ref) =
            source.unwrap_or_else(|| (ProjectRef::id(self.req.project_id), self.req.head_sha.0.clone()));
        ProjectAt::new(&gitlab.client, project, git_ref)
    }

    /// Where nothing more lands because a newer head exists: the `running` status is canceled.
    async fn superseded(&self) -> Result<(), Stop> {
        self.status(StatusState::Canceled, SUPERSEDED, None).await
    }

    /// A failed status that says what went wrong, and the summary note when there is something for
    /// the author to read. Best effort: errors are logged.
    async fn fail_status(&mut self, description: &str, note: Option<&str>) {
        let result = async {
            if self.mr.is_none() {
                self.mr = Some(self.gitlab.client.merge_request(self.project(), self.req.iid).await?);
            }
            let url = match note {
                Some(body) => self.note_url(self.summary_note(body).await?),
                None => None,
            };
            self.status(StatusState::Failed, description, url).await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(project = %self.req.project, mr = %self.req.iid, error = ?e, "could not report the failure on the status");
        }
    }

    /// Step "start": the merge request as GitLab has it now, and the bot's identity. `None` when there
    /// is nothing to check at this head (closed or merged; a newer head, which is made sure to be
    /// checked; a re-run asked by someone without Developer access).
    async fn begin(&mut self) -> Result<Option<MergeRequest>, Stop> {
        let gl = &self.gitlab.client;
        self.gitlab.user().await?;
        let mr = gl.merge_request(self.project(), self.req.iid).await?;
        if mr.state != "opened" {
            tracing::info!(project = %self.req.project, mr = %self.req.iid, state = %mr.state, "merge request not open: nothing to check");
            return Ok(None);
        }
        let head = mr.sha.clone().unwrap_or_default();
        if head != self.req.head_sha.0 {
            if !head.is_empty() {
                // Deliveries arrive out of order: the current head must not be left unchecked.
                let mut current = self.req.clone();
                current.head_sha = crate::forge::CommitSha(head.clone());
                current.reason = format!("head moved from {}", self.req.head_sha);
                current.requested_by = None;
                current.force = false;
                // The merge request's own time, as GitHub's `updated_at` orders pull requests; `ensure`
                // lowers this (stale) job's recency below it. Whole seconds, as hooks give it (the API
                // gives milliseconds): a later push's hook in the same second must not rank below it.
                let updated = crate::intake::gitlab::gitlab_time_ms(mr.updated_at.as_deref()) / 1000 * 1000;
                current.recency = if updated > 0 { updated } else { self.req.recency + 1 };
                if self.app.queue.ensure(&current.job(), self.job).await? {
                    tracing::info!(project = %self.req.project, mr = %self.req.iid, head = %head, "the current head gets its check");
                }
            }
            self.cancel_running(&mr).await?;
            return Ok(None);
        }
        if let Some(user) = self.req.requested_by {
            let level = gl.member_access_level(&ProjectRef::id(mr.target_project_id), user).await?;
            if level.unwrap_or(0) < RERUN_MIN_ACCESS_LEVEL {
                tracing::info!(project = %self.req.project, mr = %self.req.iid, user, "re-run asked by someone without Developer access: ignored");
                return Ok(None);
            }
        }
        self.mr = Some(mr.clone());
        Ok(Some(mr))
    }

    /// An earlier attempt of this job may have left the old head's status `running`: it is canceled, so
    /// no status stays running for ever.
    async fn cancel_running(&self, mr: &MergeRequest) -> Result<(), Stop> {
        let gl = &self.gitlab.client;
        let sha = &self.req.head_sha.0;
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
                self.fence().await?;
                gl.set_status(&project, sha, &write).await?;
            }
        }
        Ok(())
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

/// The head commit, where `changes` found the bot may read it.
impl Contents for GitLabSession<'_> {
    async fn listing(&self) -> Result<(Vec<(String, u64)>, bool), ForgeError> {
        self.head.get_or_init(|| self.head_at(None)).listing().await
    }

    async fn files(&self, paths: &[String], max_bytes: u64) -> Result<Vec<(String, FileText)>, ForgeError> {
        self.head.get_or_init(|| self.head_at(None)).files(paths, max_bytes).await
    }
}

impl<'a> Session for GitLabSession<'a> {
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
        self.req.project.0.clone()
    }

    /// One token, one limit: every project the bot reads shares it.
    fn rate_limit_key(&self) -> RateLimitKey {
        RateLimitKey::GitLab
    }

    fn hold(&self, wait: Duration) {
        self.gitlab.client.limit(wait);
    }

    async fn start(&mut self) -> Result<Option<Change>, Stop> {
        Ok(self.begin().await?.map(|mr| Change { draft: mr.draft }))
    }

    /// `.gitlab/guardrail.yml` from the target project's default branch.
    async fn settings(&mut self) -> Result<TrustedText, Stop> {
        let gl = &self.gitlab.client;
        let target = ProjectRef::id(self.mr.as_ref().map_or(self.req.project_id, |mr| mr.target_project_id));
        let Some(branch) = gl.project(&target).await?.default_branch else {
            return Ok(TrustedText { path: GITLAB_REPO_CONFIG, branch: None, text: Ok(String::new()) });
        };
        let text = match gl.file_text(&target, GITLAB_REPO_CONFIG, &branch, 1024 * 1024).await? {
            FileText::Text(t) => Ok(t),
            FileText::Missing => Ok(String::new()),
            FileText::TooLarge(n) => Err(format!("{GITLAB_REPO_CONFIG}: {n} bytes, more than guardrail reads (1 MiB)")),
            FileText::Binary => Err(format!("{GITLAB_REPO_CONFIG}: not a text file")),
        };
        Ok(TrustedText { path: GITLAB_REPO_CONFIG, branch: Some(branch), text })
    }

    /// Before any `running`: GitLab cannot move a running status to skipped.
    async fn skip_draft(&mut self) -> Result<(), Stop> {
        let description = format!("Drafts are not checked (drafts: false in {GITLAB_REPO_CONFIG})");
        self.status(StatusState::Skipped, &description, None).await
    }

    async fn in_progress(&mut self) -> Result<(), Stop> {
        // Noted before the write: a job that may have left `running` is not dropped when a newer head
        // supersedes it, but run at once (`queue::supersede`), so that it cancels what it started.
        self.app.queue.save_progress(self.job, RUNNING_NOTE, self.app.lease).await?;
        self.status(StatusState::Running, "guardrail is checking the changed manifests", None).await
    }

    /// A merge request to the GitLab policy project runs its policy tests (GitLab routes project
    /// paths without regard to case, so they are compared so here too).
    fn policy_repository(&self) -> Option<String> {
        let policy = self.app.gitlab_policy.as_ref()?;
        // `PolicyProject::parse` takes a full path only, never a numeric id.
        policy.project.0.eq_ignore_ascii_case(&self.req.project.0).then(|| policy.path.clone().unwrap_or_default())
    }

    /// The version whose head is the commit being checked and its changed files; where the head's
    /// files are read (a fork the bot cannot read: through the target project's merge request ref).
    async fn changes(&mut self) -> Result<Option<Changes>, Stop> {
        let gitlab: &'a GitLabBot = self.gitlab;
        let gl = &gitlab.client;
        let (project, iid, head) = (self.req.project.clone(), self.req.iid, self.req.head_sha.0.clone());
        let versions = gl.versions(&project, iid).await?;
        let Some(version) = versions.iter().find(|v| v.head_commit_sha == head).cloned() else {
            // GitLab makes the version shortly after the push: try again soon.
            return Err(Stop::Forge(ForgeError::Transport {
                operation: "merge_requests/versions".into(),
                message: format!("no version for {head} yet"),
            }));
        };
        if versions.first().is_some_and(|newest| newest.head_commit_sha != head) {
            // `/diffs` lists the newest version's files: positions made from them would not fit this
            // version's SHAs. The newer head has its own event.
            return self.superseded().await.map(|()| None);
        }
        let (diffs, complete) = gl.diffs(&project, iid).await?;
        let Some(mr) = self.mr.as_ref() else { return Ok(None) };
        let Some(source) = gl.content_source(mr, &head).await? else {
            return self.superseded().await.map(|()| None);
        };
        let files = diffs.iter().map(|d| ChangedFile { path: d.new_path.clone(), removed: d.deleted_file }).collect();
        let mut notes = Vec::new();
        if !complete {
            notes.push(format!(
                "GitLab lists at most {MAX_DIFF_FILES} files of a merge request; files beyond that were not checked."
            ));
        }
        self.diffs = diffs.iter().filter(|d| !d.deleted_file).map(|d| (d.new_path.clone(), d.lines())).collect();
        self.version = Some(version);
        self.head = std::sync::OnceLock::from(self.head_at(Some(source)));
        Ok(Some(Changes { files, notes }))
    }

    /// Discussions for findings on changed lines (kept, created, reopened; gone ones resolved), then
    /// the summary note and the final status.
    async fn report(&mut self, scanned: Scanned<'_>) -> Result<(), Stop> {
        // If this job is superseded meanwhile, nothing lands on an old head.
        if self.app.queue.is_superseded(self.job).await? {
            return self.superseded().await;
        }
        let Some(version) = &self.version else {
            return Err(Stop::Internal("the report step ran before the changes were read".into()));
        };
        let mut wanted = Vec::new();
        let mut outside = 0usize;
        let mut seen = HashSet::new();
        for f in scanned.outcome.findings.iter().filter(|f| f.severity != Severity::Info) {
            if !seen.insert(review::finding_key(f)) {
                continue;
            }
            let path = f.file.trim_start_matches("./");
            let end = f.region.end_line.max(f.region.line);
            let position = self
                .diffs
                .get(path)
                .and_then(Option::as_ref)
                .filter(|_| f.region.line > 0)
                .and_then(|lines| lines.position(version, f.region.line, end));
            let Some(position) = position else {
                outside += 1;
                continue;
            };
            let (key, body) = scanned.comment(f);
            wanted.push(WantedDiscussion { marker: Marker::finding(&key), body, position });
        }
        let mut notes = scanned.notes.clone();
        if scanned.repo_config.review_comments {
            let bot = self.gitlab.user().await?;
            self.fence().await?;
            let sync = self
                .gitlab
                .client
                .sync_discussions(self.project(), self.req.iid, bot.id, &wanted, MAX_NEW_DISCUSSIONS)
                .await?;
            tracing::info!(project = %self.req.project, mr = %self.req.iid, created = sync.created, kept = sync.kept, resolved = sync.resolved, reopened = sync.reopened, "discussions synced");
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
        self.verdict(&scanned.summary(0, notes)).await
    }

    /// The summary note (created once, edited in place), then the status linking to it.
    async fn verdict(&mut self, report: &CheckRunReport) -> Result<(), Stop> {
        let head = &self.req.head_sha.0;
        let body = checkrun::truncate(
            &format!(
                "### guardrail: {}\n\nCommit {}.\n\n{}\n\n{}",
                report.title,
                &head[..head.len().min(12)],
                report.summary,
                report.text
            ),
            MAX_NOTE,
        );
        let note = self.summary_note(&body).await?;
        let state = if report.conclusion == "failure" { StatusState::Failed } else { StatusState::Success };
        self.status(state, &report.title, self.note_url(note)).await
    }

    /// The status stays `running` through the quick retries; `finish_with_error` says what happened
    /// once they are used up.
    async fn retrying(&mut self, _error: &ForgeError, _after: Duration) {}

    async fn finish_with_error(&mut self, failure: Failure<'_>) {
        let (description, note) = match failure {
            Failure::FailingUntil { error, attempts, at } => (
                format!(
                    "GitLab kept failing ({}) after {attempts} attempts; guardrail tries again by itself at {}; comment /guardrail rerun to try now",
                    gitlab_short(error),
                    at.format("%H:%M UTC")
                ),
                None,
            ),
            Failure::Failing { error, attempts } => (
                format!(
                    "GitLab kept failing ({}) after {attempts} attempts; comment /guardrail rerun to try again",
                    gitlab_short(error)
                ),
                None,
            ),
            Failure::Refused { error } => {
                (format!("guardrail could not check this merge request: {}", gitlab_short(error)), None)
            }
            Failure::Broken { title, message } => (title.to_string(), Some(format!("### guardrail: {title}\n\n{message}"))),
            Failure::Internal => (
                "guardrail failed (not something in this merge request); comment /guardrail rerun to try again".to_string(),
                None,
            ),
        };
        self.fail_status(&description, note.as_deref()).await
    }
}
