//! GitLab webhooks -> what they ask for. The only place that reads GitLab's webhook JSON, through one
//! small typed payload per event. Authentication (`X-Gitlab-Token`, and the `webhook-signature` of a
//! signing token where GitLab sends one) and the delivery key come first, as pure functions the HTTP
//! handler calls before it stores anything.
//!
//! Events: `Merge Request Hook` (open, reopen, update with new commits (`oldrev`), draft changes),
//! `Push Hook` to the policy project's default branch, `Note Hook` with `/guardrail rerun`, and the same
//! object kinds arriving as `System Hook` from an instance-level hook.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::forge::gitlab::{MrIid, ProjectRef};
use crate::forge::CommitSha;
use crate::queue::NewJob;

/// Job kinds of GitLab deliveries.
pub const CHECK_MERGE_REQUEST: &str = "check-merge-request";
pub const REFRESH_GITLAB_POLICIES: &str = "refresh-gitlab-policies";

/// The command that re-runs the check, alone on a line of a merge request comment.
pub const RERUN_COMMAND: &str = "/guardrail rerun";
/// How far a signed delivery's `webhook-timestamp` may be from now (Standard Webhooks' advice).
pub const SIGNATURE_TOLERANCE_SECS: u64 = 300;
/// GitLab's Developer role: the least that may ask for a re-run.
pub const RERUN_MIN_ACCESS_LEVEL: u64 = 30;

/// The secrets a GitLab webhook is checked with.
#[derive(Clone, Debug, Default)]
pub struct WebhookAuth {
    /// Secret tokens (several while rotating); `X-Gitlab-Token` must equal one of them.
    pub tokens: Vec<SecretString>,
    /// Signing tokens; when any is configured, every delivery must carry a valid `webhook-signature`.
    pub signing_keys: Vec<SecretString>,
}

impl WebhookAuth {
    /// Splits a comma-separated setting (`GUARDRAIL_GITLAB_WEBHOOK_SECRET`) into secrets.
    pub fn split(setting: &str) -> Vec<SecretString> {
        setting.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| SecretString::from(s.to_string())).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// `X-Gitlab-Token` missing or wrong (or no token configured at all).
    Token,
    /// A signing token is configured and the signature is missing, stale or wrong.
    Signature,
}

/// Compares in constant time: both sides are hashed first, so neither content nor length leaks through
/// timing, and every configured token is tried (no early return tells which one matched).
pub fn token_valid(tokens: &[SecretString], presented: &str) -> bool {
    let presented = Sha256::digest(presented.as_bytes());
    let mut valid = false;
    for token in tokens {
        let expected = Sha256::digest(token.expose_secret().as_bytes());
        let diff = expected.iter().zip(presented.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        valid |= diff == 0 && !token.expose_secret().is_empty();
    }
    valid
}

/// Verifies a Standard Webhooks signature as GitLab's signing tokens send it: `webhook-signature` holds
/// space-separated `v1,<base64 HMAC-SHA256>` of `{webhook-id}.{webhook-timestamp}.{body}`. A key given as
/// `whsec_<base64>` is used decoded, any other as its bytes.
pub fn signature_valid(
    keys: &[SecretString],
    webhook_id: &str,
    timestamp: &str,
    body: &[u8],
    signature_header: &str,
    now_secs: u64,
) -> bool {
    let Ok(ts) = timestamp.trim().parse::<u64>() else { return false };
    if ts.abs_diff(now_secs) > SIGNATURE_TOLERANCE_SECS || webhook_id.is_empty() {
        return false;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let presented: Vec<Vec<u8>> = signature_header
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| b64.decode(s).ok())
        .collect();
    let mut valid = false;
    for key in keys {
        let secret = key.expose_secret();
        let bytes = match secret.strip_prefix("whsec_") {
            Some(encoded) => b64.decode(encoded).unwrap_or_else(|_| secret.as_bytes().to_vec()),
            None => secret.as_bytes().to_vec(),
        };
        for sig in &presented {
            let mut mac = Hmac::<Sha256>::new_from_slice(&bytes).expect("HMAC takes keys of any length");
            mac.update(webhook_id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.trim().as_bytes());
            mac.update(b".");
            mac.update(body);
            valid |= mac.verify_slice(sig).is_ok();
        }
    }
    valid
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks a delivery before anything is parsed or stored.
pub fn authenticate(auth: &WebhookAuth, headers: &HeaderMap, body: &[u8]) -> Result<(), AuthFailure> {
    if !token_valid(&auth.tokens, header(headers, "x-gitlab-token").unwrap_or("")) {
        return Err(AuthFailure::Token);
    }
    if auth.signing_keys.is_empty() {
        return Ok(());
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let ok = signature_valid(
        &auth.signing_keys,
        header(headers, "webhook-id").unwrap_or(""),
        header(headers, "webhook-timestamp").unwrap_or(""),
        body,
        header(headers, "webhook-signature").unwrap_or(""),
        now,
    );
    if ok {
        Ok(())
    } else {
        Err(AuthFailure::Signature)
    }
}

/// The key a delivery is stored and deduplicated under: `Idempotency-Key` (the same on GitLab's
/// automatic retries and manual resends), else `X-Gitlab-Event-UUID`, else (older GitLab) a hash of the
/// body, which a resend repeats byte for byte.
pub fn delivery_key(headers: &HeaderMap, body: &[u8]) -> String {
    let usable = |v: &&str| !v.trim().is_empty() && v.len() <= 200;
    if let Some(k) = header(headers, "idempotency-key").filter(usable) {
        return format!("gitlab:{}", k.trim());
    }
    if let Some(k) = header(headers, "x-gitlab-event-uuid").filter(usable) {
        return format!("gitlab:{}", k.trim());
    }
    format!("gitlab-body:{}", hex::encode(Sha256::digest(body)))
}

/// Check one head commit of one merge request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckMergeRequest {
    /// The target project (where the merge request, its discussions and statuses live).
    pub project: ProjectRef,
    pub project_id: u64,
    pub iid: MrIid,
    pub head_sha: CommitSha,
    /// Set when the source branch lives in a fork.
    pub source_project_id: u64,
    /// What asked for it (`merge_request.open`, `note.rerun`...), for logs and the status.
    pub reason: String,
    /// Check again even if this head was checked already (re-run, draft made ready).
    pub force: bool,
    /// A re-run asked for by this user: the job checks their access first.
    #[serde(default)]
    pub requested_by: Option<u64>,
    /// When the merge request was last updated (ms since the epoch), from the payload: orders the jobs
    /// of one merge request however their deliveries arrive. 0 when unknown.
    #[serde(default)]
    pub recency: i64,
}

impl CheckMergeRequest {
    pub fn dedupe_key(&self) -> String {
        format!("gitlab-check:{}!{}@{}", self.project, self.iid, self.head_sha)
    }

    /// Jobs of one merge request run one at a time.
    pub fn group_key(&self) -> String {
        format!("gitlab-mr:{}!{}", self.project, self.iid)
    }

    /// The queue's job. A re-run has its own key, so a comment by someone without access never
    /// replaces the payload of the check a push asked for.
    pub fn job(&self) -> NewJob {
        let dedupe_key = match self.requested_by {
            Some(_) => format!("gitlab-rerun:{}!{}@{}", self.project, self.iid, self.head_sha),
            None => self.dedupe_key(),
        };
        NewJob {
            kind: CHECK_MERGE_REQUEST.into(),
            dedupe_key,
            group_key: self.group_key(),
            payload: serde_json::to_string(self).expect("serialisable"),
            force: self.force,
            recency: self.recency,
        }
    }
}

/// Reload policies after a push to the policy project's default branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshGitlabPolicies {
    pub project: ProjectRef,
    pub after: CommitSha,
}

/// What intake made of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitlabEvent {
    Check(CheckMergeRequest),
    /// `/guardrail rerun` by `author_id`: the job checks that the author is a member with Developer
    /// access or more (`GitLab::member_access_level`) before it runs the check.
    Rerun {
        check: CheckMergeRequest,
        author_id: u64,
    },
    RefreshPolicies(RefreshGitlabPolicies),
    /// Nothing to do, and why (stored with the delivery).
    Ignored(String),
}

impl GitlabEvent {
    /// The jobs this event asks for, as the webhook handler stores them with the delivery.
    pub fn into_intake(self, event: &str) -> crate::intake::Intake {
        let action = event.to_string();
        match self {
            GitlabEvent::Check(check) => {
                let job = check.job();
                crate::intake::Intake { action, outcome: format!("check {}", job.dedupe_key), jobs: vec![job] }
            }
            GitlabEvent::Rerun { mut check, author_id } => {
                check.requested_by = Some(author_id);
                if check.recency == 0 {
                    // Without the comment's time: the delivery's, so that the head's earlier check
                    // (with its push time) does not count as newer than the re-run.
                    check.recency = crate::queue::now_ms();
                }
                let job = check.job();
                crate::intake::Intake { action, outcome: format!("re-run {}", job.dedupe_key), jobs: vec![job] }
            }
            GitlabEvent::RefreshPolicies(refresh) => {
                let job = NewJob {
                    kind: REFRESH_GITLAB_POLICIES.into(),
                    dedupe_key: format!("gitlab-policies:{}@{}", refresh.project, refresh.after),
                    group_key: "gitlab-policies".into(),
                    payload: serde_json::to_string(&refresh).expect("serialisable"),
                    force: false,
                    recency: 0,
                };
                crate::intake::Intake {
                    action,
                    outcome: format!("reload policies at {}", refresh.after),
                    jobs: vec![job],
                }
            }
            GitlabEvent::Ignored(why) => crate::intake::Intake { action, jobs: Vec::new(), outcome: why },
        }
    }
}

/// GitLab's `updated_at` as ms since the epoch: `2024-05-01T10:00:00Z` (ISO 8601, newer GitLab) or
/// `2024-05-01 10:00:00 UTC` (older hooks); 0 when absent or unreadable.
pub fn gitlab_time_ms(text: Option<&str>) -> i64 {
    let Some(text) = text.map(str::trim) else { return 0 };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return t.timestamp_millis();
    }
    if let Ok(t) = chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z") {
        return t.timestamp_millis();
    }
    chrono::NaiveDateTime::parse_from_str(text.trim_end_matches(" UTC"), "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
}

/// What intake needs to know about this deployment.
#[derive(Clone, Debug, Default)]
pub struct GitlabIntakeContext {
    pub policy_project: Option<ProjectRef>,
    /// The bot's user id: its own notes never trigger anything.
    pub bot_user_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct HookProject {
    id: u64,
    path_with_namespace: String,
    #[serde(default)]
    default_branch: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LastCommit {
    id: String,
}

#[derive(Debug, Deserialize)]
struct MrAttributes {
    iid: u64,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    oldrev: Option<String>,
    last_commit: Option<LastCommit>,
    source_project_id: u64,
    target_project_id: u64,
    #[serde(default)]
    updated_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Change<T> {
    previous: Option<T>,
    current: Option<T>,
}

#[derive(Debug, Default, Deserialize)]
struct MrChanges {
    #[serde(default)]
    draft: Option<Change<bool>>,
    #[serde(default)]
    work_in_progress: Option<Change<bool>>,
}

#[derive(Debug, Deserialize)]
struct MergeRequestHook {
    project: HookProject,
    object_attributes: MrAttributes,
    #[serde(default)]
    changes: Option<MrChanges>,
}

#[derive(Debug, Deserialize)]
struct PushHook {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    project: HookProject,
}

#[derive(Debug, Deserialize)]
struct NoteAttributes {
    note: String,
    noteable_type: String,
    author_id: u64,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    created_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NoteMergeRequest {
    iid: u64,
    #[serde(default)]
    state: Option<String>,
    last_commit: Option<LastCommit>,
    source_project_id: u64,
    target_project_id: u64,
}

#[derive(Debug, Deserialize)]
struct NoteHook {
    project: HookProject,
    object_attributes: NoteAttributes,
    merge_request: Option<NoteMergeRequest>,
}

fn ignored(why: impl Into<String>) -> GitlabEvent {
    GitlabEvent::Ignored(why.into())
}

fn is_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Turns one delivery (`X-Gitlab-Event` and body) into what it asks for. Malformed payloads are not
/// errors (GitLab cannot fix them): they are ignored with a reason.
pub fn read(event: &str, body: &[u8], ctx: &GitlabIntakeContext) -> GitlabEvent {
    let kind = match event {
        "Merge Request Hook" => "merge_request".to_string(),
        "Push Hook" => "push".to_string(),
        "Note Hook" => "note".to_string(),
        // Instance-level (system) hooks name the kind in the body.
        "System Hook" => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => v.get("object_kind").and_then(|k| k.as_str()).unwrap_or("").to_string(),
            Err(e) => return ignored(format!("body is not JSON: {e}")),
        },
        other => return ignored(format!("event {other:?} not used")),
    };
    match kind.as_str() {
        "merge_request" => match serde_json::from_slice::<MergeRequestHook>(body) {
            Ok(hook) => merge_request(hook),
            Err(e) => ignored(format!("merge request payload not understood: {e}")),
        },
        "push" => match serde_json::from_slice::<PushHook>(body) {
            Ok(hook) => push(hook, ctx),
            Err(e) => ignored(format!("push payload not understood: {e}")),
        },
        "note" => match serde_json::from_slice::<NoteHook>(body) {
            Ok(hook) => note(hook, ctx),
            Err(e) => ignored(format!("note payload not understood: {e}")),
        },
        other => ignored(format!("object kind {other:?} not used")),
    }
}

fn merge_request(hook: MergeRequestHook) -> GitlabEvent {
    let a = &hook.object_attributes;
    let action = a.action.as_deref().unwrap_or("");
    if a.state.as_deref().is_some_and(|s| s != "opened") {
        return ignored(format!("merge request is {}", a.state.as_deref().unwrap_or("")));
    }
    let changes = hook.changes.unwrap_or_default();
    let draft = changes.draft.or(changes.work_in_progress);
    let (reason, force) = match action {
        "open" | "reopen" => (format!("merge_request.{action}"), false),
        "update" if a.oldrev.as_deref().is_some_and(|r| !r.is_empty()) => ("merge_request.push".to_string(), false),
        "update" => match draft {
            // Made ready: a draft may have been skipped (`drafts: false`), so check it now.
            Some(Change { previous: Some(true), current: Some(false) }) => ("merge_request.ready".to_string(), true),
            Some(Change { current: Some(true), .. }) => ("merge_request.draft".to_string(), false),
            _ => return ignored("merge request update without new commits or draft change"),
        },
        other => return ignored(format!("merge request action {other:?} not used")),
    };
    let Some(sha) = a.last_commit.as_ref().map(|c| c.id.as_str()).filter(|s| is_sha(s)) else {
        return ignored("merge request without last_commit id");
    };
    if a.target_project_id != hook.project.id {
        return ignored("merge request hook of another project");
    }
    GitlabEvent::Check(CheckMergeRequest {
        project: ProjectRef(hook.project.path_with_namespace),
        project_id: hook.project.id,
        iid: MrIid(a.iid),
        head_sha: CommitSha(sha.to_string()),
        source_project_id: a.source_project_id,
        reason,
        force,
        requested_by: None,
        recency: gitlab_time_ms(a.updated_at.as_deref()),
    })
}

fn push(hook: PushHook, ctx: &GitlabIntakeContext) -> GitlabEvent {
    let Some(policy) = &ctx.policy_project else { return ignored("no GitLab policy project configured") };
    let same =
        policy.0.eq_ignore_ascii_case(&hook.project.path_with_namespace) || policy.0 == hook.project.id.to_string();
    if !same {
        return ignored("push to a project that is not the policy project");
    }
    let default = hook.project.default_branch.as_deref().unwrap_or("main");
    if hook.git_ref != format!("refs/heads/{default}") {
        return ignored("push to a branch other than the policy project's default");
    }
    if !is_sha(&hook.after) || hook.after.bytes().all(|b| b == b'0') {
        return ignored("push without a new head (branch deleted)");
    }
    GitlabEvent::RefreshPolicies(RefreshGitlabPolicies {
        project: ProjectRef(hook.project.path_with_namespace),
        after: CommitSha(hook.after),
    })
}

fn note(hook: NoteHook, ctx: &GitlabIntakeContext) -> GitlabEvent {
    let a = &hook.object_attributes;
    if a.noteable_type != "MergeRequest" {
        return ignored("note not on a merge request");
    }
    if a.system || ctx.bot_user_id == Some(a.author_id) {
        return ignored("system note or the bot's own note");
    }
    if !a.note.lines().any(|l| l.trim() == RERUN_COMMAND) {
        return ignored("note without a guardrail command");
    }
    let Some(mr) = hook.merge_request else { return ignored("note without merge_request") };
    if mr.state.as_deref().is_some_and(|s| s != "opened") {
        return ignored("re-run asked on a merge request that is not open");
    }
    let Some(sha) = mr.last_commit.as_ref().map(|c| c.id.as_str()).filter(|s| is_sha(s)) else {
        return ignored("merge request without last_commit id");
    };
    if mr.target_project_id != hook.project.id {
        return ignored("note hook of another project");
    }
    GitlabEvent::Rerun {
        check: CheckMergeRequest {
            project: ProjectRef(hook.project.path_with_namespace),
            project_id: hook.project.id,
            iid: MrIid(mr.iid),
            head_sha: CommitSha(sha.to_string()),
            source_project_id: mr.source_project_id,
            reason: "note.rerun".into(),
            force: true,
            requested_by: Some(a.author_id),
            // The comment came after the head it re-runs: newer than that head's own check, so the
            // re-run is not taken for superseded by it.
            recency: gitlab_time_ms(a.created_at.as_deref()),
        },
        author_id: a.author_id,
    }
}
