//! The fake's model of GitHub: repositories as snapshots of files, pull requests between two snapshots, and
//! everything the App wrote (check runs, reviews, comments). One mutex guards it; handlers never await with it held.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use super::{Call, CheckRun, FakeGitHub, Fault, ReviewComment, WriteFault};

pub(crate) type Files = BTreeMap<String, String>; // path -> blob sha

pub(crate) struct Repo {
    pub id: u64,
    pub full_name: String,
    pub installation_id: u64,
    pub default_branch: String,
    pub branches: BTreeMap<String, String>,
}

pub(crate) struct Commit {
    pub sha: String,
    pub tree_sha: String,
    pub repo: String,
    pub parent: Option<String>,
    pub files: Arc<Files>,
    pub date: DateTime<Utc>,
}

pub(crate) struct Pull {
    pub id: u64,
    pub repo: String,
    pub number: u64,
    pub base_sha: String,
    pub head_sha: String,
    pub previous_head: Option<String>,
    pub head_repo: Option<String>,
    pub open: bool,
    pub draft: bool,
    pub created_at: DateTime<Utc>,
    /// Moves on every push, as GitHub's `updated_at` does.
    pub updated_at: DateTime<Utc>,
}

pub(crate) struct CheckRunRec {
    pub repo: String,
    pub run: CheckRun,
    pub suite_id: u64,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

pub(crate) struct CommentRec {
    pub repo: String,
    pub number: u64,
    pub comment: ReviewComment,
    pub start_side: Option<String>,
    pub thread_id: String,
    pub resolved: bool,
    pub diff_hunk: String,
    pub created_at: DateTime<Utc>,
}

pub(crate) struct Token {
    pub installation_id: u64,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

pub(crate) struct State {
    pub base_url: String,
    pub repos: BTreeMap<String, Repo>,
    pub commits: HashMap<String, Commit>,
    pub trees: HashMap<String, String>, // tree sha -> commit sha
    pub blobs: HashMap<String, Arc<Vec<u8>>>,
    pub pulls: BTreeMap<(String, u64), Pull>,
    pub check_runs: Vec<CheckRunRec>,
    pub reviews: Vec<(String, u64, Value)>,
    pub comments: Vec<CommentRec>,
    pub tokens: HashMap<String, Token>,
    pub calls: Vec<Call>,
    pub problems: Vec<String>,
    pub faults: Vec<Fault>,
    /// What happens to the App's next writes (REST writes and GraphQL mutations), in order.
    pub write_faults: Vec<WriteFault>,
    /// Writes seen so far.
    pub writes: usize,
    pub latency: Duration,
    pub truncate_above: usize,
    pub app_manifests: super::app_manifests::Registry,
    next_id: u64,
}

impl State {
    pub fn new(base_url: String) -> State {
        State {
            base_url,
            repos: BTreeMap::new(),
            commits: HashMap::new(),
            trees: HashMap::new(),
            blobs: HashMap::new(),
            pulls: BTreeMap::new(),
            check_runs: Vec::new(),
            reviews: Vec::new(),
            comments: Vec::new(),
            tokens: HashMap::new(),
            calls: Vec::new(),
            problems: Vec::new(),
            faults: Vec::new(),
            write_faults: Vec::new(),
            writes: 0,
            latency: Duration::ZERO,
            truncate_above: 512 * 1024,
            app_manifests: Default::default(),
            next_id: 1000,
        }
    }

    /// Ids are unique across kinds, as GitHub's database ids practically are; that catches mixed-up ids.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn problem(&mut self, text: impl Into<String>) {
        self.problems.push(text.into());
    }

    pub fn put_blob(&mut self, bytes: &[u8]) -> String {
        let sha = git_blob_sha(bytes);
        self.blobs.entry(sha.clone()).or_insert_with(|| Arc::new(bytes.to_vec()));
        sha
    }

    pub fn blob(&self, sha: &str) -> Option<Arc<Vec<u8>>> {
        self.blobs.get(sha).cloned()
    }

    pub fn add_commit(&mut self, repo: &str, parent: Option<&str>, files: Files) -> String {
        let listing: String = files.iter().map(|(path, blob)| format!("{blob} {path}\n")).collect();
        let tree_sha = sha1_hex(format!("tree {listing}").as_bytes());
        let salt = self.next_id();
        let sha = sha1_hex(format!("commit {tree_sha} {parent:?} {repo} {salt}").as_bytes());
        self.trees.insert(tree_sha.clone(), sha.clone());
        let commit = Commit {
            sha: sha.clone(),
            tree_sha,
            repo: repo.to_string(),
            parent: parent.map(str::to_string),
            files: Arc::new(files),
            date: Utc::now(),
        };
        self.commits.insert(sha.clone(), commit);
        sha
    }

    /// A commit is readable through `repo` if it was made there, or in a fork whose pull request targets `repo`
    /// (GitHub exposes a fork's pull request commits through the base repository).
    pub fn commit_in(&self, repo: &str, sha: &str) -> Option<&Commit> {
        let commit = self.commits.get(sha)?;
        let visible = commit.repo == repo
            || self.pulls.values().any(|p| p.repo == repo && p.head_repo.as_deref() == Some(commit.repo.as_str()));
        visible.then_some(commit)
    }

    /// A branch name, a commit sha or a tree sha (as git accepts for trees).
    pub fn resolve(&self, repo: &str, reference: &str) -> Option<&Commit> {
        let r = self.repos.get(repo)?;
        let reference = reference.strip_prefix("heads/").unwrap_or(reference);
        if let Some(sha) = r.branches.get(reference) {
            return self.commits.get(sha);
        }
        if let Some(commit) = self.commit_in(repo, reference) {
            return Some(commit);
        }
        self.trees.get(reference).and_then(|c| self.commit_in(repo, c))
    }

    pub fn repo_json(&self, repo: &Repo) -> Value {
        let (owner, name) = repo.full_name.split_once('/').unwrap_or(("", &repo.full_name));
        let url = format!("{}/repos/{}", self.base_url, repo.full_name);
        json!({
            "id": repo.id, "node_id": format!("R_{}", repo.id), "name": name, "full_name": repo.full_name,
            "private": false, "visibility": "public", "fork": false, "archived": false, "disabled": false,
            "owner": user_json(owner, repo.id + 1, "Organization"),
            "html_url": format!("https://github.com/{}", repo.full_name), "url": url,
            "default_branch": repo.default_branch, "description": null,
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "pushed_at": "2024-01-01T00:00:00Z",
        })
    }

    pub fn installation_json(&self, id: u64) -> Value {
        let login = self.repos.values().find(|r| r.installation_id == id).map(|r| r.full_name.clone());
        let login = login.as_deref().and_then(|n| n.split('/').next()).unwrap_or("octo-org").to_string();
        json!({
            "id": id, "app_id": FakeGitHub::APP_ID, "app_slug": FakeGitHub::APP_SLUG, "target_type": "Organization",
            "target_id": 1, "account": user_json(&login, 1, "Organization"), "repository_selection": "selected",
            "access_tokens_url": format!("{}/app/installations/{id}/access_tokens", self.base_url),
            "repositories_url": format!("{}/installation/repositories", self.base_url),
            "html_url": format!("https://github.com/settings/installations/{id}"),
            "permissions": {"checks": "write", "contents": "read", "pull_requests": "write", "metadata": "read"},
            "events": ["check_run", "check_suite", "pull_request", "push"],
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "single_file_name": null, "suspended_at": null, "suspended_by": null,
        })
    }
}

pub(crate) fn user_json(login: &str, id: u64, kind: &str) -> Value {
    json!({
        "login": login, "id": id, "node_id": format!("U_{id}"), "type": kind, "site_admin": false,
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}"), "gravatar_id": "",
        "url": format!("https://api.github.com/users/{login}"), "html_url": format!("https://github.com/{login}"),
    })
}

pub(crate) fn bot_json() -> Value {
    user_json(&format!("{}[bot]", FakeGitHub::APP_SLUG), 900_000 + FakeGitHub::APP_ID, "Bot")
}

pub(crate) fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// The id git gives a file's content, so shas the fake hands out look and behave like GitHub's.
pub(crate) fn git_blob_sha(bytes: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hex::encode(hasher.finalize())
}
