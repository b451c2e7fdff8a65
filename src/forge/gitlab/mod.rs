//! GitLab merge requests: the REST client with GitLab's retry and pagination rules (`client`), the typed
//! operations guardrail performs (`api`), diff positions as GitLab validates them (`diff`), and note
//! bodies that GitLab cannot mistake for quick actions (`text`). Writes are exactly-once: each one is
//! reconciled with what GitLab already holds (statuses by name and sha, discussions and the summary note
//! by hidden markers) before it is sent, and again before any retry.

mod api;
mod client;
mod diff;
mod sync;
mod text;
mod writes;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use api::{
    BotUser, CommitStatus, Discussion, DiscussionNote, FileText, MergeRequest, MrDiff, MrVersion, Project, StatusState,
    StatusWrite, Written, MAX_DIFF_FILES, MAX_NEW_DISCUSSIONS,
};
pub use client::{next_page_url, rate_limit_wait, GitLab, Page, Reply, API_PREFIX};
pub use diff::{line_code, DiffLine, FileDiff, LineKind, Position};
pub use sync::{DiscussionSync, WantedDiscussion};
pub use text::{escape_quick_actions, find_marker, Marker};

/// A project by its full path (`group/sub/name`) or numeric id, as GitLab's `:id` path parameter takes both.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectRef(pub String);

impl ProjectRef {
    pub fn id(id: u64) -> ProjectRef {
        ProjectRef(id.to_string())
    }

    /// A full path: namespaces and name of GitLab's allowed characters, at least two segments.
    pub fn parse_path(text: &str) -> Option<ProjectRef> {
        let segments: Vec<&str> = text.split('/').collect();
        let ok = |s: &&str| {
            !s.is_empty()
                && *s != "."
                && *s != ".."
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        (segments.len() >= 2 && segments.iter().all(ok)).then(|| ProjectRef(text.to_string()))
    }

    /// The `:id` path segment: a numeric id as is, a full path URL-encoded (`group%2Fname`).
    pub fn segment(&self) -> String {
        encode_component(&self.0)
    }
}

impl fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `GUARDRAIL_POLICY_REPO` with the `gitlab:` prefix: `gitlab:group/sub/policies[@ref][:path]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyProject {
    pub project: ProjectRef,
    /// The project's default branch when absent.
    pub git_ref: Option<String>,
    /// A folder inside the project; the whole project when absent.
    pub path: Option<String>,
}

impl PolicyProject {
    /// `None` for text without the `gitlab:` prefix (GitHub is the default forge) or a malformed path.
    pub fn parse(text: &str) -> Option<PolicyProject> {
        let rest = text.trim().strip_prefix("gitlab:")?;
        let (rest, path) = match rest.split_once(':') {
            Some((r, p)) => (r, Some(p.trim_matches('/').to_string()).filter(|p| !p.is_empty())),
            None => (rest, None),
        };
        let (project, git_ref) = match rest.split_once('@') {
            Some((p, r)) if !r.is_empty() => (p, Some(r.to_string())),
            Some(_) => return None,
            None => (rest, None),
        };
        Some(PolicyProject { project: ProjectRef::parse_path(project)?, git_ref, path })
    }
}

/// A merge request's project-scoped number (`!iid`), not its global id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MrIid(pub u64);

impl fmt::Display for MrIid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Percent-encodes everything but unreserved characters, and `.` too: GitLab's documentation encodes
/// file paths as `lib%2Fclass%2Erb`, so that a path never reads as a format suffix.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A project at one ref (a SHA, or `refs/merge-requests/:iid/head` for an unreadable fork), read
/// through the bot's token (the `Contents` seam).
pub struct ProjectAt<'a> {
    pub gitlab: &'a GitLab,
    pub project: ProjectRef,
    pub git_ref: String,
    listing: tokio::sync::OnceCell<(Vec<String>, bool)>,
}

impl<'a> ProjectAt<'a> {
    pub fn new(gitlab: &'a GitLab, project: ProjectRef, git_ref: String) -> Self {
        ProjectAt { gitlab, project, git_ref, listing: tokio::sync::OnceCell::new() }
    }
}

/// Blobs listed at most from one project tree (the Terraform step reads the tree).
pub const MAX_TREE_FILES: usize = 20_000;

impl crate::forge::Contents for ProjectAt<'_> {
    /// GitLab's tree API gives no sizes (0 here): each file read is still bounded by `max_bytes`.
    async fn listing(&self) -> Result<(Vec<(String, u64)>, bool), crate::forge::ForgeError> {
        let (paths, complete) =
            self.listing.get_or_try_init(|| self.gitlab.tree(&self.project, &self.git_ref, "", MAX_TREE_FILES)).await?;
        Ok((paths.iter().map(|p| (p.clone(), 0)).collect(), !*complete))
    }

    async fn files(
        &self,
        paths: &[String],
        max_bytes: u64,
    ) -> Result<Vec<(String, FileText)>, crate::forge::ForgeError> {
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            out.push((path.clone(), self.gitlab.file_text(&self.project, path, &self.git_ref, max_bytes).await?));
        }
        Ok(out)
    }
}

/// The App's GitLab side: the client, and the bot's own identity, asked once when first needed (its
/// id tells the bot's notes and discussions from everyone else's).
pub struct GitLabBot {
    pub client: GitLab,
    user: tokio::sync::OnceCell<BotUser>,
}

impl GitLabBot {
    pub fn new(client: GitLab) -> GitLabBot {
        GitLabBot { client, user: tokio::sync::OnceCell::new() }
    }

    pub async fn user(&self) -> Result<&BotUser, crate::forge::ForgeError> {
        self.user.get_or_try_init(|| self.client.current_user()).await
    }

    /// The bot's id if it was asked for already (webhook intake does not call GitLab).
    pub fn known_user_id(&self) -> Option<u64> {
        self.user.get().map(|u| u.id)
    }
}
