//! One check-run session over one pull-request head: the writes every check job makes (create or
//! adopt the check run, progress notes, annotations, completion) and the rules they follow. Every
//! write is fenced (the job must still hold its claim), and every write that GitHub may have applied
//! without our knowing (a crash, a timeout, a 5xx) is reconciled with what GitHub holds before it is
//! made again: the check run is found by name, head and `external_id`; annotations already on the
//! run are counted and not sent twice.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::App;
use crate::forge::github::PullRequest;
use crate::forge::ForgeError;
use crate::intake::{self, CheckPullRequest};
use crate::queue::{ClaimedJob, FenceError};
use crate::report::checkrun::{self, CheckRunReport, ANNOTATIONS_PER_REQUEST};

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

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub struct Session<'a> {
    pub app: &'a App,
    pub job: &'a ClaimedJob,
    pub req: CheckPullRequest,
    pub progress: Progress,
}

impl<'a> Session<'a> {
    pub fn new(app: &'a App, job: &'a ClaimedJob, req: CheckPullRequest) -> Self {
        let progress = serde_json::from_str(&job.progress).unwrap_or_default();
        Session { app, job, req, progress }
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
    pub async fn start(&mut self) -> Result<Option<PullRequest>, Stop> {
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
    pub async fn say_retrying(&mut self, error: &ForgeError, after: std::time::Duration) {
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
    pub async fn finish_with_error(&mut self, title: &str, message: &str) {
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
