//! The GitLab operations guardrail performs, typed: merge requests with their versions and diffs, file
//! contents at a commit, commit statuses, discussions at diff positions, and the one summary note. The
//! writes reconcile first (read what GitLab holds, write only the difference) and again after a failure
//! that may have landed, so a retried job never posts twice.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::GitLab;
use super::diff::{FileDiff, Position};
use super::text::Marker;
use super::{encode_component, MrIid, ProjectRef};
use crate::forge::ForgeError;

/// GitLab shows at most 3,000 files of a merge request diff (its maximum "diff files" limit).
pub const MAX_DIFF_FILES: usize = 3000;
/// New discussions per run, as for GitHub review comments; the rest go into the summary note.
pub const MAX_NEW_DISCUSSIONS: usize = 50;

fn decode(operation: &str, message: impl Into<String>) -> ForgeError {
    ForgeError::Decode { operation: operation.into(), message: message.into() }
}

fn parse<T: serde::de::DeserializeOwned>(operation: &str, v: Value) -> Result<T, ForgeError> {
    serde_json::from_value(v).map_err(|e| decode(operation, e.to_string()))
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BotUser {
    pub id: u64,
    pub username: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Project {
    pub id: u64,
    pub path_with_namespace: String,
    /// Absent for an empty repository.
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub web_url: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DiffRefs {
    pub base_sha: Option<String>,
    pub head_sha: Option<String>,
    pub start_sha: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MergeRequest {
    pub id: u64,
    pub iid: u64,
    pub project_id: u64,
    #[serde(default)]
    pub title: String,
    /// `opened`, `closed`, `locked`, `merged`.
    pub state: String,
    #[serde(default)]
    pub draft: bool,
    /// The head commit.
    pub sha: Option<String>,
    pub source_project_id: u64,
    pub target_project_id: u64,
    pub source_branch: String,
    pub target_branch: String,
    #[serde(default)]
    pub diff_refs: Option<DiffRefs>,
    #[serde(default)]
    pub web_url: String,
    /// When the merge request last changed (a push moves it): orders its jobs.
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl MergeRequest {
    pub fn is_fork(&self) -> bool {
        self.source_project_id != self.target_project_id
    }

    /// Where GitLab keeps this merge request's head in the target project.
    pub fn head_ref(&self) -> String {
        format!("refs/merge-requests/{}/head", self.iid)
    }

    /// Where a commit status on the head goes, in order of preference. GitLab shows a merge request the
    /// pipelines of its *source* project, so a status belongs on the source branch (for a fork: in the
    /// fork, which needs Developer access there). When the fork refuses it, the target project takes it
    /// at `refs/merge-requests/:iid/head`, the ref of merge request pipelines.
    pub fn status_targets(&self) -> Vec<(ProjectRef, String)> {
        let mut targets = vec![(ProjectRef::id(self.source_project_id), self.source_branch.clone())];
        if self.is_fork() {
            targets.push((ProjectRef::id(self.target_project_id), self.head_ref()));
        }
        targets
    }
}

/// One version (diff) of a merge request; each push makes a new one. Positions name its three SHAs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct MrVersion {
    pub id: u64,
    pub head_commit_sha: String,
    pub base_commit_sha: String,
    pub start_commit_sha: String,
    #[serde(default)]
    pub state: String,
}

/// A changed file of a merge request, as `/merge_requests/:iid/diffs` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MrDiff {
    pub old_path: String,
    pub new_path: String,
    #[serde(default)]
    pub diff: String,
    #[serde(default)]
    pub new_file: bool,
    #[serde(default)]
    pub renamed_file: bool,
    #[serde(default)]
    pub deleted_file: bool,
    /// Lock files and the like (GitLab 16.9+): listed, collapsed in the UI, checked like any file.
    #[serde(default)]
    pub generated_file: bool,
    /// Over the diff limits: GitLab sends no diff text at all.
    #[serde(default)]
    pub too_large: bool,
    /// Over 10% of a limit: the diff text is empty, though the file changed.
    #[serde(default)]
    pub collapsed: bool,
}

impl MrDiff {
    /// The lines the diff shows, or `None` when GitLab withheld them (too large, collapsed, binary): the
    /// file is still checked, its findings go into the summary note.
    pub fn lines(&self) -> Option<FileDiff> {
        if self.diff.is_empty() || self.too_large || self.collapsed {
            return None;
        }
        Some(FileDiff::parse(&self.old_path, &self.new_path, &self.diff))
    }
}

pub use crate::forge::FileText;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusState {
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
    Skipped,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Running => "running",
            StatusState::Success => "success",
            StatusState::Failed => "failed",
            StatusState::Canceled => "canceled",
            StatusState::Skipped => "skipped",
        }
    }
}

/// A commit status to set (name `guardrail`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusWrite {
    pub state: StatusState,
    pub name: String,
    /// GitLab keeps 255 characters.
    pub description: String,
    pub target_url: Option<String>,
    /// The branch (or merge request ref, for forks) the status is for: see `MergeRequest::status_targets`.
    pub git_ref: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CommitStatus {
    pub id: u64,
    pub sha: String,
    #[serde(rename = "ref", default)]
    pub git_ref: Option<String>,
    pub status: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub target_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscussionNote {
    pub id: u64,
    pub body: String,
    pub author_id: u64,
    pub system: bool,
    pub resolvable: bool,
    pub resolved: bool,
    pub position: Option<Position>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discussion {
    pub id: String,
    pub individual_note: bool,
    pub notes: Vec<DiscussionNote>,
}

impl Discussion {
    pub fn first(&self) -> Option<&DiscussionNote> {
        self.notes.first()
    }

    pub fn resolved(&self) -> bool {
        self.notes.iter().filter(|n| n.resolvable).all(|n| n.resolved) && self.notes.iter().any(|n| n.resolvable)
    }

    /// Started by `author` and carrying `marker` in its first note.
    pub fn is_marked(&self, author: u64, marker: &Marker) -> bool {
        self.first().is_some_and(|n| n.author_id == author && !n.system && marker.is_in(&n.body))
    }

    fn from_json(v: &Value) -> Option<Discussion> {
        let notes = v.get("notes")?.as_array()?;
        Some(Discussion {
            id: v.get("id")?.as_str()?.to_string(),
            individual_note: v.get("individual_note").and_then(Value::as_bool).unwrap_or(false),
            notes: notes.iter().filter_map(note_from_json).collect(),
        })
    }
}

fn note_from_json(n: &Value) -> Option<DiscussionNote> {
    let b = |k: &str| n.get(k).and_then(Value::as_bool).unwrap_or(false);
    Some(DiscussionNote {
        id: n.get("id")?.as_u64()?,
        body: n.get("body").and_then(Value::as_str).unwrap_or("").to_string(),
        author_id: n.pointer("/author/id").and_then(Value::as_u64).unwrap_or(0),
        system: b("system"),
        resolvable: b("resolvable"),
        resolved: b("resolved"),
        position: n.get("position").filter(|p| !p.is_null()).and_then(Position::from_json),
    })
}

/// What a reconciled write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    Created(u64),
    Updated(u64),
    /// GitLab already held exactly this.
    Unchanged(u64),
}

impl Written {
    pub fn id(&self) -> u64 {
        match self {
            Written::Created(id) | Written::Updated(id) | Written::Unchanged(id) => *id,
        }
    }
}

impl GitLab {
    async fn get_json(&self, path: &str, operation: &str) -> Result<Value, ForgeError> {
        self.get(path, operation).await?.json(operation)
    }

    pub(super) fn mr_path(project: &ProjectRef, iid: MrIid) -> String {
        format!("/projects/{}/merge_requests/{iid}", project.segment())
    }

    /// The token's user: its id tells the bot's own notes from everyone else's.
    pub async fn current_user(&self) -> Result<BotUser, ForgeError> {
        let op = "users/current";
        parse(op, self.get_json("/user", op).await?)
    }

    pub async fn project(&self, project: &ProjectRef) -> Result<Project, ForgeError> {
        let op = "projects/get";
        parse(op, self.get_json(&format!("/projects/{}", project.segment()), op).await?)
    }

    /// The commit a ref (branch, tag, SHA) points at.
    pub async fn commit_sha(&self, project: &ProjectRef, git_ref: &str) -> Result<String, ForgeError> {
        let op = "commits/get";
        let path = format!("/projects/{}/repository/commits/{}", project.segment(), encode_component(git_ref));
        let v = self.get_json(&path, op).await?;
        v.get("id").and_then(Value::as_str).map(str::to_string).ok_or_else(|| decode(op, "commit without id"))
    }

    pub async fn merge_request(&self, project: &ProjectRef, iid: MrIid) -> Result<MergeRequest, ForgeError> {
        let op = "merge_requests/get";
        parse(op, self.get_json(&Self::mr_path(project, iid), op).await?)
    }

    /// Versions, newest first as GitLab lists them.
    pub async fn versions(&self, project: &ProjectRef, iid: MrIid) -> Result<Vec<MrVersion>, ForgeError> {
        let op = "merge_requests/versions";
        let page = self.pages(&format!("{}/versions", Self::mr_path(project, iid)), op, 10_000).await?;
        let mut versions: Vec<MrVersion> = page.items.into_iter().map(|v| parse(op, v)).collect::<Result<_, _>>()?;
        versions.sort_by_key(|v| std::cmp::Reverse(v.id));
        Ok(versions)
    }

    /// The version whose head is `head_sha`, the one positions must name.
    pub async fn version_for(
        &self,
        project: &ProjectRef,
        iid: MrIid,
        head_sha: &str,
    ) -> Result<Option<MrVersion>, ForgeError> {
        Ok(self.versions(project, iid).await?.into_iter().find(|v| v.head_commit_sha == head_sha))
    }

    /// The changed files of the merge request's latest version, all pages, up to `MAX_DIFF_FILES`.
    /// `complete` is false when GitLab had more.
    pub async fn diffs(&self, project: &ProjectRef, iid: MrIid) -> Result<(Vec<MrDiff>, bool), ForgeError> {
        let op = "merge_requests/diffs";
        let page = self.pages(&format!("{}/diffs", Self::mr_path(project, iid)), op, MAX_DIFF_FILES).await?;
        let diffs = page.items.into_iter().map(|v| parse(op, v)).collect::<Result<_, _>>()?;
        Ok((diffs, page.complete))
    }

    /// Where to read the files of `mr` at `head_sha`: the fork itself when the token can read it, else
    /// the target project's `refs/merge-requests/:iid/head`, which GitLab keeps for every merge request.
    /// `None` when that ref has moved past `head_sha` (a newer push; its own event checks it).
    pub async fn content_source(
        &self,
        mr: &MergeRequest,
        head_sha: &str,
    ) -> Result<Option<(ProjectRef, String)>, ForgeError> {
        if !mr.is_fork() {
            return Ok(Some((ProjectRef::id(mr.target_project_id), head_sha.to_string())));
        }
        match self.project(&ProjectRef::id(mr.source_project_id)).await {
            Ok(_) => return Ok(Some((ProjectRef::id(mr.source_project_id), head_sha.to_string()))),
            Err(ForgeError::Status { status: 403 | 404, .. }) => {}
            Err(e) => return Err(e),
        }
        let target = ProjectRef::id(mr.target_project_id);
        let op = "commits/get";
        let commit = self
            .get_json(
                &format!("/projects/{}/repository/commits/{}", target.segment(), encode_component(&mr.head_ref())),
                op,
            )
            .await?;
        let at = commit.get("id").and_then(Value::as_str).unwrap_or("");
        Ok((at == head_sha).then(|| (target, mr.head_ref())))
    }

    /// A file at `git_ref` (a SHA, branch or ref) through `/repository/files/:path/raw`, reading at most
    /// `max_bytes` of it (a larger file is `TooLarge` with its `Content-Length`, or the bytes read).
    pub async fn file_text(
        &self,
        project: &ProjectRef,
        path: &str,
        git_ref: &str,
        max_bytes: u64,
    ) -> Result<FileText, ForgeError> {
        let url = format!(
            "/projects/{}/repository/files/{}/raw?ref={}",
            project.segment(),
            encode_component(path.trim_start_matches('/')),
            encode_component(git_ref)
        );
        let reply = match self.get_capped(&url, "repository_files/raw", max_bytes).await {
            Err(e) if e.is_not_found() => return Ok(FileText::Missing),
            other => other?,
        };
        if reply.truncated {
            let size = reply
                .header("content-length")
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(reply.body.len() as u64);
            return Ok(FileText::TooLarge(size));
        }
        if reply.body.iter().take(8000).any(|b| *b == 0) {
            return Ok(FileText::Binary);
        }
        Ok(String::from_utf8(reply.body).map(FileText::Text).unwrap_or(FileText::Binary))
    }

    /// The files (blobs) under `path` at `git_ref`, recursively, for the policy project: keyset
    /// pagination (`pagination=keyset`, next page in `Link`), as GitLab recommends for large trees.
    pub async fn tree(
        &self,
        project: &ProjectRef,
        git_ref: &str,
        path: &str,
        max: usize,
    ) -> Result<(Vec<String>, bool), ForgeError> {
        let op = "repository/tree";
        let mut url = format!(
            "/projects/{}/repository/tree?recursive=true&pagination=keyset&ref={}",
            project.segment(),
            encode_component(git_ref)
        );
        let path = path.trim_matches('/');
        if !path.is_empty() {
            url.push_str(&format!("&path={}", encode_component(path)));
        }
        let page = match self.pages(&url, op, max).await {
            Err(e) if e.is_not_found() => return Ok((Vec::new(), true)),
            other => other?,
        };
        let files = page
            .items
            .iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("blob"))
            .filter_map(|e| e.get("path").and_then(Value::as_str).map(str::to_string))
            .collect();
        Ok((files, page.complete))
    }

    /// Statuses named `name` on `sha`, newest first.
    pub async fn statuses(&self, project: &ProjectRef, sha: &str, name: &str) -> Result<Vec<CommitStatus>, ForgeError> {
        let op = "commits/statuses";
        let path = format!(
            "/projects/{}/repository/commits/{sha}/statuses?all=true&name={}",
            project.segment(),
            encode_component(name)
        );
        let page = self.pages(&path, op, 1000).await?;
        let mut list: Vec<CommitStatus> = page.items.into_iter().map(|v| parse(op, v)).collect::<Result<_, _>>()?;
        list.retain(|s| s.name == name);
        list.sort_by_key(|s| std::cmp::Reverse(s.id));
        Ok(list)
    }

    pub async fn discussions(&self, project: &ProjectRef, iid: MrIid) -> Result<Vec<Discussion>, ForgeError> {
        let op = "discussions/list";
        let page = self.pages(&format!("{}/discussions", Self::mr_path(project, iid)), op, 100_000).await?;
        page.items
            .iter()
            .map(|v| Discussion::from_json(v).ok_or_else(|| decode(op, "discussion without id or notes")))
            .collect()
    }

    /// Non-system notes of the merge request, oldest first.
    pub async fn notes(&self, project: &ProjectRef, iid: MrIid) -> Result<Vec<DiscussionNote>, ForgeError> {
        let op = "notes/list";
        let path = format!("{}/notes?sort=asc&order_by=created_at", Self::mr_path(project, iid));
        let page = self.pages(&path, op, 100_000).await?;
        Ok(page.items.iter().filter_map(note_from_json).filter(|n| !n.system).collect())
    }

    /// The access level (10 guest .. 50 owner) of a user in a project, counting inherited and invited
    /// memberships; `None` when not a member. A re-run command needs Developer (30) or more.
    pub async fn member_access_level(&self, project: &ProjectRef, user: u64) -> Result<Option<u64>, ForgeError> {
        let op = "members/get-all";
        match self.get_json(&format!("/projects/{}/members/all/{user}", project.segment()), op).await {
            Ok(v) => Ok(v.get("access_level").and_then(Value::as_u64)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
