//! The fake GitLab's state model: projects (and forks) with the commits they can reach, merge requests
//! with one version per push and real diffs, commit statuses with GitLab's state machine, discussions
//! and notes. Plain data; the HTTP side (`server`) reads and changes it under one lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use similar::TextDiff;

pub type Files = Arc<BTreeMap<String, String>>;

#[derive(Debug, Clone)]
pub struct Project {
    pub id: u64,
    pub path: String,
    pub default_branch: String,
    pub branches: HashMap<String, String>,
    /// Commits this project's repository holds (its own, and fork heads of its merge requests).
    pub shas: HashSet<String>,
    pub forked_from: Option<u64>,
    /// Whether the bot's token can read it (a private fork usually cannot be).
    pub readable: bool,
    /// user id -> access level.
    pub members: HashMap<u64, u64>,
}

#[derive(Debug, Clone)]
pub struct FileDiff {
    pub old_path: String,
    pub new_path: String,
    pub new_file: bool,
    pub renamed_file: bool,
    pub deleted_file: bool,
    pub collapsed: bool,
    pub too_large: bool,
    pub diff: String,
}

#[derive(Debug, Clone)]
pub struct Version {
    pub id: u64,
    pub head: String,
    pub base: String,
    pub start: String,
    pub diffs: Vec<FileDiff>,
}

#[derive(Debug, Clone)]
pub struct MergeRequest {
    pub id: u64,
    pub iid: u64,
    pub project_id: u64,
    pub source_project_id: u64,
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub draft: bool,
    pub state: String,
    /// Newest last.
    pub versions: Vec<Version>,
}

impl MergeRequest {
    pub fn head(&self) -> &Version {
        self.versions.last().expect("a merge request has a version")
    }
}

#[derive(Debug, Clone)]
pub struct Status {
    pub id: u64,
    pub project_id: u64,
    pub sha: String,
    pub git_ref: String,
    pub name: String,
    pub status: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Note {
    pub id: u64,
    pub body: String,
    pub author_id: u64,
    pub system: bool,
    pub resolvable: bool,
    pub resolved: bool,
    pub position: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct Discussion {
    pub id: String,
    pub project_id: u64,
    pub iid: u64,
    pub individual_note: bool,
    pub notes: Vec<Note>,
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub method: String,
    pub path_contains: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub times: usize,
    /// Apply the request first, then answer with the fault (a write whose answer was lost).
    pub after_apply: bool,
}

pub struct State {
    pub next: u64,
    pub projects: BTreeMap<u64, Project>,
    pub commits: HashMap<String, Files>,
    pub mrs: Vec<MergeRequest>,
    pub statuses: Vec<Status>,
    pub discussions: Vec<Discussion>,
    pub faults: Vec<Fault>,
    pub problems: Vec<String>,
    pub calls: Vec<(String, String, u16)>,
    /// Files whose diff GitLab collapses (empty `diff`, `collapsed: true`) or withholds (`too_large`).
    pub collapsed_paths: HashSet<String>,
    pub too_large_paths: HashSet<String>,
    /// GitLab omits `X-Total`/`X-Total-Pages` for lists longer than this (10,000 on gitlab.com).
    pub count_limit: usize,
    /// After a 429: nothing may arrive before this instant.
    pub not_before: Option<Instant>,
    pub bot_id: u64,
    pub token: String,
    /// `http://127.0.0.1:port/gitlab/api/v4`, for absolute `Link` URLs.
    pub api_root: String,
}

impl State {
    pub fn new(token: &str) -> State {
        State {
            next: 100,
            projects: BTreeMap::new(),
            commits: HashMap::new(),
            mrs: Vec::new(),
            statuses: Vec::new(),
            discussions: Vec::new(),
            faults: Vec::new(),
            problems: Vec::new(),
            calls: Vec::new(),
            collapsed_paths: HashSet::new(),
            too_large_paths: HashSet::new(),
            count_limit: 10_000,
            not_before: None,
            bot_id: 7,
            token: token.to_string(),
            api_root: String::new(),
        }
    }

    pub fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub fn project_by(&self, segment: &str) -> Option<&Project> {
        match segment.parse::<u64>() {
            Ok(id) => self.projects.get(&id),
            Err(_) => self.projects.values().find(|p| p.path.eq_ignore_ascii_case(segment)),
        }
    }

    /// A commit id in the project: a reachable sha, a branch, or a merge request's head ref.
    pub fn resolve(&self, project: &Project, git_ref: &str) -> Option<String> {
        if project.shas.contains(git_ref) {
            return Some(git_ref.to_string());
        }
        if let Some(sha) = project.branches.get(git_ref.trim_start_matches("refs/heads/")) {
            return Some(sha.clone());
        }
        let iid = git_ref.strip_prefix("refs/merge-requests/")?.strip_suffix("/head")?.parse::<u64>().ok()?;
        self.mrs.iter().find(|m| m.project_id == project.id && m.iid == iid).map(|m| m.head().head.clone())
    }

    pub fn mr(&self, project_id: u64, iid: u64) -> Option<&MergeRequest> {
        self.mrs.iter().find(|m| m.project_id == project_id && m.iid == iid)
    }

    pub fn mr_mut(&mut self, project_id: u64, iid: u64) -> Option<&mut MergeRequest> {
        self.mrs.iter_mut().find(|m| m.project_id == project_id && m.iid == iid)
    }

    /// The diffs between two snapshots, as GitLab lists them (renames found by equal content).
    pub fn diffs(&self, base: &str, head: &str) -> Vec<FileDiff> {
        let (old, new) = (&self.commits[base], &self.commits[head]);
        let mut out = Vec::new();
        let deleted: Vec<&String> = old.keys().filter(|k| !new.contains_key(*k)).collect();
        let added: Vec<&String> = new.keys().filter(|k| !old.contains_key(*k)).collect();
        let mut renamed_from: HashMap<&String, &String> = HashMap::new();
        for a in &added {
            if let Some(d) = deleted.iter().find(|d| old[**d] == new[*a] && !renamed_from.values().any(|v| v == *d)) {
                renamed_from.insert(a, d);
            }
        }
        let paths: BTreeMap<&String, ()> = old.keys().chain(new.keys()).map(|k| (k, ())).collect();
        for (path, ()) in paths {
            let before = old.get(path);
            let after = new.get(path);
            if before == after {
                continue;
            }
            if after.is_none() && renamed_from.values().any(|d| *d == path) {
                continue;
            }
            let (old_path, before) = match (before, renamed_from.get(path)) {
                (None, Some(from)) => ((*from).clone(), old.get(*from)),
                _ => (path.clone(), before),
            };
            let renamed = old_path != *path;
            let text = unified(before.map(String::as_str).unwrap_or(""), after.map(String::as_str).unwrap_or(""));
            let collapsed = self.collapsed_paths.contains(path);
            let too_large = self.too_large_paths.contains(path);
            out.push(FileDiff {
                old_path,
                new_path: path.clone(),
                new_file: before.is_none(),
                renamed_file: renamed,
                deleted_file: after.is_none(),
                collapsed,
                too_large,
                diff: if collapsed || too_large { String::new() } else { text },
            });
        }
        out
    }
}

/// Hunks with three lines of context, headers as GitLab's `diff` field has them (no `---`/`+++`).
pub fn unified(old: &str, new: &str) -> String {
    let diff = TextDiff::from_lines(old, new);
    let mut out = String::new();
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&hunk.to_string());
    }
    out
}

/// GitLab's line code: `sha1(path)_old_new`.
pub fn line_code(path: &str, old: u32, new: u32) -> String {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(path.as_bytes());
    let digest: Vec<String> = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("{}_{old}_{new}", digest.concat())
}

/// The lines of a diff as GitLab's parser numbers them: (kind, old counter, new counter).
pub fn diff_lines(diff: &str) -> Vec<(char, u32, u32)> {
    let mut out = Vec::new();
    let (mut old, mut new) = (0u32, 0u32);
    let mut in_hunk = false;
    for line in diff.lines() {
        if let Some(rest) = line.strip_prefix("@@ -") {
            let mut parts = rest.split(' ');
            let o = parts.next().and_then(|p| p.split(',').next()).and_then(|n| n.parse::<u32>().ok());
            let n = parts
                .next()
                .and_then(|p| p.strip_prefix('+'))
                .and_then(|p| p.split(',').next())
                .and_then(|n| n.parse::<u32>().ok());
            old = o.unwrap_or(1).max(1);
            new = n.unwrap_or(1).max(1);
            in_hunk = true;
            continue;
        }
        if !in_hunk {
            continue;
        }
        match line.chars().next() {
            Some('+') => {
                out.push(('+', old, new));
                new += 1;
            }
            Some('-') => {
                out.push(('-', old, new));
                old += 1;
            }
            Some(' ') | None => {
                out.push((' ', old, new));
                old += 1;
                new += 1;
            }
            _ => {}
        }
    }
    out
}
