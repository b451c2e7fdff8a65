//! One discussion per finding, reconciled with what the merge request already holds: findings whose
//! discussion is open are left alone (a redelivery or re-run adds nothing), new findings get a
//! discussion (at most `max_new` a run), discussions whose finding is gone are resolved, and a finding
//! that comes back reopens its resolved discussion when it sits on the same line of the same version,
//! or gets a new one.

use std::collections::{HashMap, HashSet};

use super::api::{Discussion, Written};
use super::client::GitLab;
use super::diff::Position;
use super::text::{find_marker, Marker};
use super::{MrIid, ProjectRef};
use crate::forge::ForgeError;

const FINDING_PREFIX: &str = "guardrail:finding:";

/// A finding that should have a discussion: its marker (from the finding's fingerprint), the text, and
/// a position made by `FileDiff::position` on the version being checked.
#[derive(Clone, Debug)]
pub struct WantedDiscussion {
    pub marker: Marker,
    pub body: String,
    pub position: Position,
}

/// What `sync_discussions` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscussionSync {
    pub created: usize,
    pub reopened: usize,
    pub resolved: usize,
    /// Already open, left as they were.
    pub kept: usize,
    /// Not posted because of `max_new`: list them in the summary note.
    pub over_limit: Vec<Marker>,
}

impl GitLab {
    pub async fn sync_discussions(
        &self,
        project: &ProjectRef,
        iid: MrIid,
        author: u64,
        wanted: &[WantedDiscussion],
        max_new: usize,
    ) -> Result<DiscussionSync, ForgeError> {
        let mut mine: HashMap<String, Vec<Discussion>> = HashMap::new();
        for d in self.discussions(project, iid).await? {
            let Some(first) = d.first() else { continue };
            if first.author_id != author || first.system {
                continue;
            }
            if let Some(fp) = find_marker(&first.body, FINDING_PREFIX) {
                mine.entry(format!("{FINDING_PREFIX}{fp}")).or_default().push(d.clone());
            }
        }
        let mut out = DiscussionSync::default();
        let mut seen = HashSet::new();
        for w in wanted {
            if !seen.insert(w.marker.0.clone()) {
                continue;
            }
            let existing = mine.get(&w.marker.0).map(Vec::as_slice).unwrap_or_default();
            if existing.iter().any(|d| !d.resolved()) {
                out.kept += 1;
                continue;
            }
            let same_place = existing.iter().find(|d| {
                d.first().and_then(|n| n.position.as_ref()).is_some_and(|p| {
                    p.head_sha == w.position.head_sha
                        && p.new_path == w.position.new_path
                        && p.new_line == w.position.new_line
                })
            });
            if let Some(d) = same_place {
                self.resolve_discussion(project, iid, &d.id, false).await?;
                out.reopened += 1;
                continue;
            }
            if out.created >= max_new {
                out.over_limit.push(w.marker.clone());
                continue;
            }
            match self.create_discussion(project, iid, author, &w.marker, &w.body, &w.position).await? {
                Written::Created(_) | Written::Updated(_) | Written::Unchanged(_) => out.created += 1,
            }
        }
        for (marker, discussions) in &mine {
            if seen.contains(marker) {
                continue;
            }
            for d in discussions.iter().filter(|d| !d.resolved()) {
                self.resolve_discussion(project, iid, &d.id, true).await?;
                out.resolved += 1;
            }
        }
        Ok(out)
    }
}
