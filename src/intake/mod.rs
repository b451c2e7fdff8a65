//! GitHub webhook payloads -> the jobs they ask for. The only place that reads webhook JSON: everything
//! after this sees `CheckPullRequest` and friends. Pure functions, so the HTTP handler can call them
//! before it commits the delivery, and tests can call them on the real payload examples.

pub mod gitlab;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::forge::{CommitSha, InstallationId, PrNumber, RepoSlug};
use crate::queue::NewJob;

pub const CHECK_PULL_REQUEST: &str = "check-pull-request";
pub const REFRESH_POLICIES: &str = "refresh-policies";
/// The identifier of the check run's "Re-run" button.
pub const RERUN_ACTION: &str = "rerun";

/// Check one head commit of one pull request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckPullRequest {
    pub repo: RepoSlug,
    pub installation: InstallationId,
    pub number: PrNumber,
    pub head_sha: CommitSha,
    /// `event.action` that asked for it, for logs and the check run.
    pub reason: String,
    /// When the pull request's head was last updated (ms since the epoch), from the payload: orders
    /// jobs of one pull request however their deliveries arrive. 0 when unknown (re-runs).
    #[serde(default)]
    pub recency: i64,
}

impl CheckPullRequest {
    pub fn new(repo: &RepoSlug, installation: &InstallationId, number: u64, sha: &str, reason: String) -> Self {
        CheckPullRequest {
            repo: repo.clone(),
            installation: installation.clone(),
            number: PrNumber(number),
            head_sha: CommitSha(sha.into()),
            reason,
            recency: 0,
        }
    }

    pub fn job(&self, force: bool) -> NewJob {
        NewJob {
            kind: CHECK_PULL_REQUEST.into(),
            dedupe_key: format!("check:{}#{}@{}", self.repo, self.number, self.head_sha),
            group_key: format!("pr:{}#{}", self.repo, self.number),
            payload: serde_json::to_string(self).expect("serialisable"),
            force,
            recency: self.recency,
        }
    }

    /// What the check run's `external_id` holds, so a re-run request finds its pull request even when
    /// GitHub leaves `pull_requests` empty (it does for pull requests from forks).
    pub fn external_id(&self) -> String {
        format!("{}#{}", self.repo, self.number)
    }
}

/// A check run's `external_id`: the pull request (`CheckPullRequest::external_id`), then the
/// identity of the job attempt that created it, so that attempt recognises its own run exactly.
pub fn external_id_with(pull: &str, intent: &str) -> String {
    format!("{pull} {intent}")
}

/// The pull-request part of a check run's `external_id` (runs made before intents have only it).
pub fn pull_of_external_id(external_id: &str) -> &str {
    external_id.split_once(' ').map_or(external_id, |(pull, _)| pull)
}

/// Reload the policy repository after a push to its default branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshPolicies {
    pub installation: InstallationId,
    pub after: CommitSha,
}

/// What intake made of a delivery.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Intake {
    pub action: String,
    pub jobs: Vec<NewJob>,
    /// Why nothing was enqueued, or what was: stored with the delivery.
    pub outcome: String,
}

/// What intake needs to know about this App.
pub struct IntakeContext<'a> {
    pub app_id: u64,
    pub check_name: &'a str,
    pub policy_repo: Option<&'a RepoSlug>,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn u64_at(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

/// An RFC 3339 time as ms since the epoch (0 when absent or malformed).
pub fn time_ms(text: Option<&str>) -> i64 {
    text.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).map_or(0, |t| t.timestamp_millis())
}

/// How recent the head a `pull_request` delivery names is. GitHub's times have one-second steps:
/// within the same second, a `synchronize` (a push) is newer than the event before it.
fn pull_recency(payload: &Value, action: &str) -> i64 {
    let at = time_ms(str_at(payload, "/pull_request/updated_at"));
    if at > 0 && action == "synchronize" {
        at + 500
    } else {
        at
    }
}

fn ignored(action: &str, why: impl Into<String>) -> Intake {
    Intake { action: action.into(), jobs: Vec::new(), outcome: why.into() }
}

/// Turns one delivery into jobs. Malformed payloads are not errors for GitHub (it cannot fix them):
/// they are stored with an outcome that says what was wrong, and nothing runs.
pub fn read(event: &str, payload: &Value, ctx: &IntakeContext) -> Intake {
    let action = str_at(payload, "/action").unwrap_or("").to_string();
    let installation = u64_at(payload, "/installation/id").map(InstallationId);
    let repo = str_at(payload, "/repository/full_name").and_then(RepoSlug::parse);
    match event {
        "pull_request" => {
            if !matches!(action.as_str(), "opened" | "synchronize" | "reopened" | "ready_for_review") {
                return ignored(&action, "pull_request action not used");
            }
            let (Some(installation), Some(repo)) = (installation, repo) else {
                return ignored(&action, "payload without installation or repository");
            };
            let (Some(number), Some(sha)) =
                (u64_at(payload, "/pull_request/number"), str_at(payload, "/pull_request/head/sha"))
            else {
                return ignored(&action, "payload without pull_request number or head sha");
            };
            let mut check = CheckPullRequest::new(&repo, &installation, number, sha, format!("pull_request.{action}"));
            check.recency = pull_recency(payload, &action);
            // A draft may have been skipped (`drafts: false`): when it becomes ready, check it again.
            let job = check.job(action == "ready_for_review");
            Intake { outcome: format!("check {}", job.dedupe_key), jobs: vec![job], action }
        }
        "check_run" => {
            let rerun = action == "rerequested"
                || (action == "requested_action"
                    && str_at(payload, "/requested_action/identifier") == Some(RERUN_ACTION));
            if !rerun {
                return ignored(&action, "check_run action not used");
            }
            if u64_at(payload, "/check_run/app/id") != Some(ctx.app_id)
                || str_at(payload, "/check_run/name") != Some(ctx.check_name)
            {
                return ignored(&action, "check run of another app or name");
            }
            let (Some(installation), Some(repo)) = (installation, repo) else {
                return ignored(&action, "payload without installation or repository");
            };
            let Some(sha) = str_at(payload, "/check_run/head_sha") else {
                return ignored(&action, "check run without head_sha");
            };
            let number = str_at(payload, "/check_run/external_id")
                .and_then(|id| pull_of_external_id(id).rsplit_once('#'))
                .filter(|(r, _)| *r == repo.to_string())
                .and_then(|(_, n)| n.parse().ok())
                .or_else(|| u64_at(payload, "/check_run/pull_requests/0/number"));
            let Some(number) = number else {
                return ignored(&action, "check run not tied to a pull request");
            };
            let job = CheckPullRequest::new(&repo, &installation, number, sha, format!("check_run.{action}")).job(true);
            Intake { outcome: format!("re-run {}", job.dedupe_key), jobs: vec![job], action }
        }
        "check_suite" => {
            if !matches!(action.as_str(), "requested" | "rerequested") {
                return ignored(&action, "check_suite action not used");
            }
            let (Some(installation), Some(repo)) = (installation, repo) else {
                return ignored(&action, "payload without installation or repository");
            };
            let Some(sha) = str_at(payload, "/check_suite/head_sha") else {
                return ignored(&action, "check suite without head_sha");
            };
            let force = action == "rerequested";
            let jobs: Vec<NewJob> = payload
                .pointer("/check_suite/pull_requests")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|pr| u64_at(pr, "/number"))
                .map(|number| {
                    CheckPullRequest::new(&repo, &installation, number, sha, format!("check_suite.{action}")).job(force)
                })
                .collect();
            if jobs.is_empty() {
                return ignored(&action, "check suite without pull requests (pull_request events cover forks)");
            }
            Intake { outcome: format!("{} check(s)", jobs.len()), jobs, action }
        }
        "push" => {
            let (Some(installation), Some(repo)) = (installation, repo) else {
                return ignored(&action, "payload without installation or repository");
            };
            if ctx.policy_repo != Some(&repo) {
                return ignored(&action, "push to a repository that is not the policy repository");
            }
            let default = str_at(payload, "/repository/default_branch").unwrap_or("main");
            if str_at(payload, "/ref") != Some(&format!("refs/heads/{default}")) {
                return ignored(&action, "push to a branch other than the policy repository's default");
            }
            let Some(after) = str_at(payload, "/after") else {
                return ignored(&action, "push without `after`");
            };
            let refresh = RefreshPolicies { installation, after: CommitSha(after.into()) };
            let job = NewJob {
                kind: REFRESH_POLICIES.into(),
                dedupe_key: format!("policies:{after}"),
                group_key: "policies".into(),
                payload: serde_json::to_string(&refresh).expect("serialisable"),
                force: false,
                recency: 0,
            };
            Intake { action, jobs: vec![job], outcome: format!("reload policies at {after}") }
        }
        "installation" | "installation_repositories" => {
            let account = str_at(payload, "/installation/account/login").unwrap_or("?");
            tracing::info!(event, %action, account, installation = ?installation, "installation event");
            ignored(&action, format!("installation event for {account}"))
        }
        "ping" => ignored(&action, "ping"),
        _ => ignored(&action, format!("event {event} not used")),
    }
}
