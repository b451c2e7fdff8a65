//! The writes: commit statuses, discussions, the summary note. Each reads what GitLab holds first and
//! writes only the difference, and after a failure that may have landed (5xx, timeout, dropped
//! connection) reads again before it tries once more, so a retried job never posts twice.

use http::Method;
use serde_json::{json, Value};

use super::api::{CommitStatus, DiscussionNote, MergeRequest, StatusWrite, Written};
use super::client::GitLab;
use super::diff::Position;
use super::text::{escape_quick_actions, Marker};
use super::{MrIid, ProjectRef};
use crate::forge::{ForgeError, Retry};

fn may_have_landed(e: &ForgeError) -> bool {
    matches!(e.retry(), Retry::Soon)
}

impl GitLab {
    /// Sets a commit status unless GitLab already shows it. GitLab refuses (400, "Cannot transition
    /// status") to post the state a running or pending status already has, so the current one is read
    /// first, and again after a failure that may have landed.
    pub async fn set_status(
        &self,
        project: &ProjectRef,
        sha: &str,
        status: &StatusWrite,
    ) -> Result<Written, ForgeError> {
        let same = |s: &CommitStatus| {
            s.status == status.state.as_str()
                && s.description.as_deref().unwrap_or("") == status.description
                && (status.target_url.is_none() || s.target_url == status.target_url)
        };
        if let Some(current) = self.statuses(project, sha, &status.name).await?.into_iter().next() {
            if same(&current) {
                return Ok(Written::Unchanged(current.id));
            }
        }
        let mut body = json!({
            "state": status.state.as_str(),
            "name": status.name,
            "description": status.description.chars().take(255).collect::<String>(),
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = json!(url);
        }
        if let Some(r) = &status.git_ref {
            body["ref"] = json!(r);
        }
        let path = format!("/projects/{}/statuses/{sha}", project.segment());
        let mut tries = 0;
        loop {
            tries += 1;
            match self.write(Method::POST, &path, &body, "commits/set-status").await {
                Ok(reply) => {
                    let id = reply.json("commits/set-status")?.get("id").and_then(Value::as_u64).unwrap_or(0);
                    return Ok(Written::Created(id));
                }
                Err(e) if may_have_landed(&e) || matches!(&e, ForgeError::Status { status: 400, .. }) => {
                    if let Some(current) = self.statuses(project, sha, &status.name).await?.into_iter().next() {
                        if same(&current) {
                            return Ok(Written::Created(current.id));
                        }
                    }
                    if tries >= self.policy.attempts || !may_have_landed(&e) {
                        return Err(e);
                    }
                    tokio::time::sleep(self.policy.backoff * tries).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sets the status of a merge request's head where GitLab shows it (`MergeRequest::status_targets`):
    /// the first target that accepts it, falling back past a 403 or 404 (a fork the token may not write).
    pub async fn set_mr_status(
        &self,
        mr: &MergeRequest,
        sha: &str,
        status: &StatusWrite,
    ) -> Result<(ProjectRef, Written), ForgeError> {
        let targets = mr.status_targets();
        let last = targets.len() - 1;
        for (i, (project, git_ref)) in targets.into_iter().enumerate() {
            let write = StatusWrite { git_ref: Some(git_ref), ..status.clone() };
            match self.set_status(&project, sha, &write).await {
                Ok(w) => return Ok((project, w)),
                Err(ForgeError::Status { status: 403 | 404, .. }) if i < last => {}
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last target returns")
    }

    /// Starts a discussion at `position` with `marker` in its body, unless `author`'s discussion with that
    /// marker is already there (looked up again after a failure that may have landed).
    pub async fn create_discussion(
        &self,
        project: &ProjectRef,
        iid: MrIid,
        author: u64,
        marker: &Marker,
        body: &str,
        position: &Position,
    ) -> Result<Written, ForgeError> {
        let op = "discussions/create";
        let text = format!("{}\n\n{}", escape_quick_actions(body), marker.comment());
        let payload = json!({"body": text, "position": position.to_json()});
        let path = format!("{}/discussions", GitLab::mr_path(project, iid));
        let mut tries = 0;
        loop {
            tries += 1;
            match self.write(Method::POST, &path, &payload, op).await {
                Ok(reply) => {
                    let v = reply.json(op)?;
                    let id = v.pointer("/notes/0/id").and_then(Value::as_u64).unwrap_or(0);
                    return Ok(Written::Created(id));
                }
                Err(e) if may_have_landed(&e) => {
                    let found = self.discussions(project, iid).await?.into_iter().find(|d| {
                        d.is_marked(author, marker)
                            && !d.resolved()
                            && d.first()
                                .and_then(|n| n.position.as_ref())
                                .is_some_and(|p| p.head_sha == position.head_sha)
                    });
                    if let Some(d) = found {
                        return Ok(Written::Created(d.first().map(|n| n.id).unwrap_or(0)));
                    }
                    if tries >= self.policy.attempts {
                        return Err(e);
                    }
                    tokio::time::sleep(self.policy.backoff * tries).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Resolves or reopens a discussion (idempotent on GitLab's side).
    pub async fn resolve_discussion(
        &self,
        project: &ProjectRef,
        iid: MrIid,
        discussion: &str,
        resolved: bool,
    ) -> Result<(), ForgeError> {
        let op = "discussions/resolve";
        let path = format!("{}/discussions/{discussion}?resolved={resolved}", GitLab::mr_path(project, iid));
        let mut tries = 0;
        loop {
            tries += 1;
            match self.write(Method::PUT, &path, &json!({"resolved": resolved}), op).await {
                Ok(_) => return Ok(()),
                Err(e) if may_have_landed(&e) && tries < self.policy.attempts => {
                    tokio::time::sleep(self.policy.backoff * tries).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The one note of `author` carrying `marker`, created once and edited in place afterwards.
    pub async fn upsert_note(
        &self,
        project: &ProjectRef,
        iid: MrIid,
        author: u64,
        marker: &Marker,
        body: &str,
    ) -> Result<Written, ForgeError> {
        let text = format!("{}\n\n{}", escape_quick_actions(body), marker.comment());
        let find =
            |notes: Vec<DiscussionNote>| notes.into_iter().find(|n| n.author_id == author && marker.is_in(&n.body));
        let mut tries = 0;
        loop {
            tries += 1;
            let existing = find(self.notes(project, iid).await?);
            let result = match &existing {
                Some(n) if n.body == text => return Ok(Written::Unchanged(n.id)),
                Some(n) => {
                    let path = format!("{}/notes/{}", GitLab::mr_path(project, iid), n.id);
                    self.write(Method::PUT, &path, &json!({"body": text}), "notes/update")
                        .await
                        .map(|_| Written::Updated(n.id))
                }
                None => {
                    let path = format!("{}/notes", GitLab::mr_path(project, iid));
                    match self.write(Method::POST, &path, &json!({"body": text}), "notes/create").await {
                        Ok(reply) => {
                            let id = reply.json("notes/create")?.get("id").and_then(Value::as_u64).unwrap_or(0);
                            Ok(Written::Created(id))
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match result {
                Ok(w) => return Ok(w),
                // The loop reads the notes again: a create that landed becomes an edit or nothing.
                Err(e) if may_have_landed(&e) && tries < self.policy.attempts => {
                    tokio::time::sleep(self.policy.backoff * tries).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
