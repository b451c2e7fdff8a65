//! A faithful fake GitHub for integration tests, served over HTTP on 127.0.0.1: the REST and GraphQL calls
//! guardrail makes, checked against GitHub's own OpenAPI description and GraphQL schema, with GitHub's limits.
//! Tests build state (repos, commits, pull requests), let the bot talk to it, then assert on what it recorded,
//! and on `problems()` being empty: every request the fake does not know, or that GitHub would refuse, lands there.

// The whole API is for the other test modules; a build that uses only part of it must not warn.
#![allow(dead_code)]

mod app_manifests;
mod auth;
mod checks;
mod diff;
mod graphql;
mod graphql_exec;
mod openapi;
mod pulls;
mod rest;
mod server;
mod state;
mod webhooks;

#[cfg(test)]
mod selftest;
#[cfg(test)]
mod selftest_api;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::oneshot;

use state::State;

/// A handle on a running fake; clones share it. The server stops on `shutdown()` or when the last handle drops.
#[derive(Clone)]
pub struct FakeGitHub {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test must not hide the state from the next assertion.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub text: Option<String>,
    /// Accumulated over all POST/PATCH calls, as GitHub appends them.
    pub annotations: Vec<serde_json::Value>,
    pub actions: Vec<serde_json::Value>,
    pub details_url: Option<String>,
    pub external_id: Option<String>,
    /// How many successful POST/PATCH calls wrote this run.
    pub writes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewComment {
    pub id: u64,
    pub node_id: String,
    pub path: String,
    pub line: Option<u64>,
    pub start_line: Option<u64>,
    pub side: String,
    pub body: String,
    pub commit_id: String,
    pub review_id: Option<u64>,
    pub user_login: String,
    /// The classifier of `minimizeComment` (e.g. "OUTDATED"), once minimized.
    pub minimized: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// The operation: GitHub's operationId ("pulls/list-files", "checks/create"), "graphql", or "unknown".
    pub kind: String,
}

/// The next `times` requests whose method matches (or "*") and whose path contains `path_contains`
/// get this response instead of the real one.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    pub path_contains: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
    pub times: usize,
}

/// What the fake does to the write with index `at` (0 = the App's first write, counted from when
/// the fault was set): a crash point, seen from GitHub's side.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteFault {
    pub at: usize,
    pub mode: WriteMode,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteMode {
    /// Refused before anything is applied (a plain 5xx).
    Refuse(u16),
    /// Applied, then answered with this status: the App cannot know it landed.
    ApplyThenFail(u16),
    /// Applied, then the answer is held this long (a timeout or a crash while waiting).
    ApplyThenHold(Duration),
}

impl FakeGitHub {
    pub const APP_ID: u64 = 4242;
    pub const APP_SLUG: &'static str = "guardrail";

    pub async fn start() -> FakeGitHub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared { state: Mutex::new(State::new(format!("http://{addr}"))) });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeGitHub { inner: Arc::new(Inner { shared, addr, stop: Mutex::new(Some(stop)) }) }
    }

    pub fn shutdown(&self) {
        if let Some(stop) = self.inner.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.inner.addr)
    }

    /// The committed TEST-ONLY App key (PKCS#1 PEM, like the keys GitHub issues).
    pub fn private_key_pem() -> String {
        include_str!("../../fixtures/github/app-key.pem").to_string()
    }

    /// Apps registered through the manifest flow: (manifest, owner, converted).
    pub fn registered_apps(&self) -> Vec<(serde_json::Value, String, bool)> {
        self.state().app_manifests.apps.iter().map(|a| (a.manifest.clone(), a.owner.clone(), a.converted)).collect()
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner.shared.lock()
    }

    /// A repository with default branch "main" at an empty root commit.
    pub fn add_repo(&self, full_name: &str, installation_id: u64) {
        let mut s = self.state();
        let id = s.next_id();
        let root = s.add_commit(full_name, None, Default::default());
        let repo = state::Repo {
            id,
            full_name: full_name.to_string(),
            installation_id,
            default_branch: "main".to_string(),
            branches: [("main".to_string(), root)].into(),
        };
        s.repos.insert(full_name.to_string(), repo);
    }

    /// A new snapshot: the parent's files plus `changes` (`None` deletes). Returns the commit's 40-hex sha.
    pub fn commit(&self, repo: &str, parent: Option<&str>, changes: &[(&str, Option<&str>)]) -> String {
        let mut s = self.state();
        assert!(s.repos.contains_key(repo), "commit: unknown repo {repo}");
        let mut files = match parent {
            Some(p) => (*s.commits.get(p).unwrap_or_else(|| panic!("commit: unknown parent {p}")).files).clone(),
            None => Default::default(),
        };
        for (path, content) in changes {
            match content {
                Some(text) => {
                    let blob = s.put_blob(text.as_bytes());
                    files.insert(path.to_string(), blob);
                }
                None => {
                    files.remove(*path);
                }
            }
        }
        s.add_commit(repo, parent, files)
    }

    pub fn set_branch(&self, repo: &str, branch: &str, sha: &str) {
        let mut s = self.state();
        assert!(s.commits.contains_key(sha), "set_branch: unknown commit {sha}");
        let r = s.repos.get_mut(repo).unwrap_or_else(|| panic!("set_branch: unknown repo {repo}"));
        r.branches.insert(branch.to_string(), sha.to_string());
    }

    pub fn branch_head(&self, repo: &str, branch: &str) -> String {
        let s = self.state();
        let r = s.repos.get(repo).unwrap_or_else(|| panic!("branch_head: unknown repo {repo}"));
        r.branches.get(branch).unwrap_or_else(|| panic!("branch_head: no branch {branch} in {repo}")).clone()
    }

    /// `head_repo`: the fork's full name for a pull request from a fork (add the fork with `add_repo` first).
    pub fn open_pull(&self, repo: &str, number: u64, base_sha: &str, head_sha: &str, head_repo: Option<&str>) {
        let mut s = self.state();
        assert!(s.repos.contains_key(repo), "open_pull: unknown repo {repo}");
        for sha in [base_sha, head_sha] {
            assert!(s.commits.contains_key(sha), "open_pull: unknown commit {sha}");
        }
        let id = s.next_id();
        let pull = state::Pull {
            id,
            repo: repo.to_string(),
            number,
            base_sha: base_sha.to_string(),
            head_sha: head_sha.to_string(),
            previous_head: None,
            head_repo: head_repo.map(str::to_string),
            open: true,
            draft: false,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        s.pulls.insert((repo.to_string(), number), pull);
    }

    fn with_pull(&self, repo: &str, number: u64, f: impl FnOnce(&mut state::Pull)) {
        let mut s = self.state();
        let pull = s.pulls.get_mut(&(repo.to_string(), number));
        f(pull.unwrap_or_else(|| panic!("no pull request {repo}#{number}")));
    }

    pub fn push_pull(&self, repo: &str, number: u64, head_sha: &str) {
        assert!(self.state().commits.contains_key(head_sha), "push_pull: unknown commit {head_sha}");
        self.with_pull(repo, number, |p| {
            p.previous_head = Some(std::mem::replace(&mut p.head_sha, head_sha.to_string()));
            p.updated_at = chrono::Utc::now();
        });
    }

    pub fn close_pull(&self, repo: &str, number: u64) {
        self.with_pull(repo, number, |p| p.open = false);
    }

    pub fn reopen_pull(&self, repo: &str, number: u64) {
        self.with_pull(repo, number, |p| p.open = true);
    }

    pub fn set_draft(&self, repo: &str, number: u64, draft: bool) {
        self.with_pull(repo, number, |p| p.draft = draft);
    }

    pub fn check_runs(&self, repo: &str) -> Vec<CheckRun> {
        self.state().check_runs.iter().filter(|c| c.repo == repo).map(|c| c.run.clone()).collect()
    }

    pub fn review_comments(&self, repo: &str, number: u64) -> Vec<ReviewComment> {
        let s = self.state();
        s.comments.iter().filter(|c| c.repo == repo && c.number == number).map(|c| c.comment.clone()).collect()
    }

    pub fn reviews(&self, repo: &str, number: u64) -> Vec<serde_json::Value> {
        let s = self.state();
        s.reviews.iter().filter(|(r, n, _)| r == repo && *n == number).map(|(_, _, v)| v.clone()).collect()
    }

    /// Whether each review thread of a pull request is resolved, in comment order.
    pub fn threads_resolved(&self, repo: &str, number: u64) -> Vec<bool> {
        let s = self.state();
        s.comments.iter().filter(|c| c.repo == repo && c.number == number).map(|c| c.resolved).collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    pub fn problems(&self) -> Vec<String> {
        self.state().problems.clone()
    }

    pub fn inject(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// Arms a crash point at the `at`-th write from now.
    pub fn fail_write(&self, at: usize, mode: WriteMode) {
        let mut s = self.state();
        let at = s.writes + at;
        s.write_faults.push(WriteFault { at, mode });
    }

    /// Writes the App made so far.
    pub fn writes(&self) -> usize {
        self.state().writes
    }

    pub fn set_latency(&self, d: Duration) {
        self.state().latency = d;
    }

    /// Every installation token issued so far now answers 401, as after its hour is up.
    pub fn expire_tokens(&self) {
        for token in self.state().tokens.values_mut() {
            token.revoked = true;
        }
    }

    pub fn set_truncate_above(&self, bytes: usize) {
        self.state().truncate_above = bytes;
    }
}

/// The `X-Hub-Signature-256` value GitHub sends with a webhook body.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
