//! A faithful fake GitLab for integration tests, served over HTTP on 127.0.0.1 under a sub-path (as a
//! self-managed instance at `https://host/gitlab` is): the REST v4 calls guardrail makes, with GitLab's
//! validation (positions must name a line of the version's diff, or 400), state machine (commit statuses),
//! pagination (`X-Next-Page`, totals omitted past the count limit) and rate limits. Tests build state,
//! let the client talk to it, then assert on what it recorded and on `problems()` being empty: every
//! unknown request, early retry after a 429, or note line GitLab would run as a quick action lands there.

#![allow(dead_code)]

mod merge_requests;
mod server;
mod state;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::oneshot;

pub use state::{Discussion, Fault, Note, Status};
use state::{MergeRequest, Project, State, Version};

pub const TOKEN: &str = "glpat-test-token";
pub const PREFIX: &str = "/gitlab/api/v4";

#[derive(Clone)]
pub struct FakeGitLab {
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
    prefix: String,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn sha_of(files: &BTreeMap<String, String>, parent: Option<&str>, salt: u64) -> String {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(parent.unwrap_or("root").as_bytes());
    h.update(salt.to_le_bytes());
    for (k, v) in files {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl FakeGitLab {
    pub const BOT_ID: u64 = 7;

    pub async fn start() -> FakeGitLab {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let mut state = State::new(TOKEN);
        state.api_root = format!("http://{addr}{PREFIX}");
        let shared = Arc::new(Shared { state: Mutex::new(state), prefix: PREFIX.to_string() });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeGitLab { inner: Arc::new(Inner { shared, addr, stop: Mutex::new(Some(stop)) }) }
    }

    /// The instance root, under a sub-path like a self-managed GitLab behind a path prefix.
    pub fn base_url(&self) -> String {
        format!("http://{}/gitlab", self.inner.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.shared.lock()
    }

    /// A project with branch `main` at a root commit holding `files`. Returns (project id, root sha).
    pub fn add_project(&self, path: &str, files: &[(&str, &str)]) -> (u64, String) {
        let mut s = self.state();
        let id = s.next_id();
        let files: BTreeMap<String, String> = files.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let sha = sha_of(&files, None, id);
        s.commits.insert(sha.clone(), Arc::new(files));
        let project = Project {
            id,
            path: path.to_string(),
            default_branch: "main".into(),
            branches: [("main".to_string(), sha.clone())].into(),
            shas: [sha.clone()].into(),
            forked_from: None,
            readable: true,
            members: HashMap::new(),
        };
        s.projects.insert(id, project);
        (id, sha)
    }

    /// A fork of `of` (same commits), readable by the bot or not.
    pub fn fork(&self, of: u64, path: &str, readable: bool) -> u64 {
        let mut s = self.state();
        let id = s.next_id();
        let parent = s.projects[&of].clone();
        s.projects.insert(
            id,
            Project { id, path: path.into(), forked_from: Some(of), readable, members: HashMap::new(), ..parent },
        );
        id
    }

    pub fn add_member(&self, project: u64, user: u64, access_level: u64) {
        self.state().projects.get_mut(&project).expect("project").members.insert(user, access_level);
    }

    /// A commit on `branch` of `project` (created from `main` when new): the branch's files plus
    /// `changes` (`None` deletes). Returns its sha.
    pub fn commit(&self, project: u64, branch: &str, changes: &[(&str, Option<&str>)]) -> String {
        let mut s = self.state();
        let p = s.projects[&project].clone();
        let parent = p.branches.get(branch).or_else(|| p.branches.get(&p.default_branch)).cloned().expect("a base");
        let mut files = (*s.commits[&parent]).clone();
        for (path, content) in changes {
            match content {
                Some(text) => files.insert(path.to_string(), text.to_string()),
                None => files.remove(*path),
            };
        }
        let salt = s.next_id();
        let sha = sha_of(&files, Some(&parent), salt);
        s.commits.insert(sha.clone(), Arc::new(files));
        let p = s.projects.get_mut(&project).expect("project");
        p.branches.insert(branch.to_string(), sha.clone());
        p.shas.insert(sha.clone());
        drop(s);
        self.refresh_mrs(project, branch);
        sha
    }

    /// Opens a merge request from `source`'s `branch` into `target`'s `main`. Returns its iid.
    pub fn open_mr(&self, target: u64, source: u64, branch: &str, title: &str) -> u64 {
        let mut s = self.state();
        let iid = s.mrs.iter().filter(|m| m.project_id == target).count() as u64 + 1;
        let id = s.next_id();
        let version = new_version(&mut s, target, source, branch);
        s.mrs.push(MergeRequest {
            id,
            iid,
            project_id: target,
            source_project_id: source,
            source_branch: branch.into(),
            target_branch: "main".into(),
            title: title.into(),
            draft: title.starts_with("Draft:"),
            state: "opened".into(),
            versions: vec![version],
        });
        iid
    }

    /// A push to a merge request's source branch makes a new version of each open merge request.
    fn refresh_mrs(&self, project: u64, branch: &str) {
        let mut s = self.state();
        let targets: Vec<(u64, u64)> = s
            .mrs
            .iter()
            .filter(|m| m.source_project_id == project && m.source_branch == branch && m.state == "opened")
            .map(|m| (m.project_id, m.iid))
            .collect();
        for (target, iid) in targets {
            let version = new_version(&mut s, target, project, branch);
            s.mr_mut(target, iid).expect("mr").versions.push(version);
        }
    }

    /// Marks a merge request draft or ready (as the UI's "Mark as ready" does).
    pub fn set_draft(&self, target: u64, iid: u64, draft: bool) {
        self.state().mr_mut(target, iid).expect("mr").draft = draft;
    }

    pub fn mr_head(&self, target: u64, iid: u64) -> String {
        self.state().mr(target, iid).expect("mr").head().head.clone()
    }

    pub fn version_count(&self, target: u64, iid: u64) -> usize {
        self.state().mr(target, iid).expect("mr").versions.len()
    }

    pub fn collapse(&self, path: &str) {
        self.state().collapsed_paths.insert(path.into());
    }

    pub fn too_large(&self, path: &str) {
        self.state().too_large_paths.insert(path.into());
    }

    pub fn set_count_limit(&self, n: usize) {
        self.state().count_limit = n;
    }

    pub fn fault(&self, fault: Fault) {
        self.state().faults.push(fault);
    }

    /// The next `times` GETs whose path contains `path_contains` are answered `status` with
    /// `{"message": message}` (a failing GitLab, before anything is read).
    pub fn fail_gets(&self, path_contains: &str, status: u16, message: &str, times: usize) {
        self.fault(Fault {
            method: "GET".into(),
            path_contains: path_contains.into(),
            status,
            headers: vec![],
            body: json!({ "message": message }),
            times,
            after_apply: false,
        });
    }

    /// A 429 with `Retry-After: secs` for the next `times` requests matching.
    pub fn rate_limit(&self, method: &str, path_contains: &str, secs: u64, times: usize) {
        self.fault(Fault {
            method: method.into(),
            path_contains: path_contains.into(),
            status: 429,
            headers: vec![("retry-after".into(), secs.to_string()), ("ratelimit-remaining".into(), "0".into())],
            body: json!({"message": "Retry later"}),
            times,
            after_apply: false,
        });
    }

    /// The next matching write is applied, then answered with a 502 (the answer was lost).
    pub fn lose_answer(&self, method: &str, path_contains: &str) {
        self.fault(Fault {
            method: method.into(),
            path_contains: path_contains.into(),
            status: 502,
            headers: vec![],
            body: json!({"message": "502 Bad Gateway"}),
            times: 1,
            after_apply: true,
        });
    }

    pub fn add_user_discussion(&self, target: u64, iid: u64, author: u64, body: &str) {
        let mut s = self.state();
        let note = Note {
            id: s.next_id(),
            body: body.into(),
            author_id: author,
            system: false,
            resolvable: true,
            resolved: false,
            position: None,
        };
        let id = format!("{:040x}", s.next_id());
        s.discussions.push(Discussion { id, project_id: target, iid, individual_note: false, notes: vec![note] });
    }

    pub fn discussions(&self, target: u64, iid: u64) -> Vec<Discussion> {
        self.state()
            .discussions
            .iter()
            .filter(|d| d.project_id == target && d.iid == iid && !d.individual_note)
            .cloned()
            .collect()
    }

    /// Notes that are not in threads (the summary note).
    pub fn plain_notes(&self, target: u64, iid: u64) -> Vec<Note> {
        self.state()
            .discussions
            .iter()
            .filter(|d| d.project_id == target && d.iid == iid && d.individual_note)
            .flat_map(|d| d.notes.clone())
            .collect()
    }

    pub fn statuses(&self, project: u64, sha: &str) -> Vec<Status> {
        self.state().statuses.iter().filter(|s| s.project_id == project && s.sha == sha).cloned().collect()
    }

    /// Every commit status of every project.
    pub fn status_count(&self) -> usize {
        self.state().statuses.len()
    }

    pub fn calls(&self) -> Vec<(String, String, u16)> {
        self.state().calls.clone()
    }

    pub fn problems(&self) -> Vec<String> {
        self.state().problems.clone()
    }

    pub fn project_path(&self, id: u64) -> String {
        self.state().projects[&id].path.clone()
    }

    /// A `Merge Request Hook` body as GitLab sends it for this merge request.
    pub fn merge_request_hook(
        &self,
        target: u64,
        iid: u64,
        action: &str,
        oldrev: Option<&str>,
        changes: Value,
    ) -> Vec<u8> {
        let s = self.state();
        let m = s.mr(target, iid).expect("mr");
        let p = &s.projects[&target];
        let mut attrs = json!({
            "id": m.id, "iid": m.iid, "title": m.title, "state": m.state, "action": action, "draft": m.draft,
            "work_in_progress": m.draft, "source_project_id": m.source_project_id, "target_project_id": m.project_id,
            "source_branch": m.source_branch, "target_branch": m.target_branch,
            "last_commit": {"id": m.head().head, "message": "change"},
            "updated_at": format!("2026-12-03 10:00:{:02} UTC", m.versions.len()),
        });
        if let Some(rev) = oldrev {
            attrs["oldrev"] = json!(rev);
        }
        json!({
            "object_kind": "merge_request", "event_type": "merge_request",
            "user": {"id": 1, "username": "author"},
            "project": {"id": p.id, "path_with_namespace": p.path, "default_branch": p.default_branch},
            "object_attributes": attrs, "changes": changes,
        })
        .to_string()
        .into_bytes()
    }
}

fn new_version(s: &mut State, target: u64, source: u64, branch: &str) -> Version {
    let head = s.projects[&source].branches[branch].clone();
    let base = s.projects[&target].branches["main"].clone();
    // GitLab fetches a fork's head into the target project as refs/merge-requests/:iid/head.
    s.projects.get_mut(&target).expect("target").shas.insert(head.clone());
    let diffs = s.diffs(&base, &head);
    Version { id: s.next_id(), head, base: base.clone(), start: base, diffs }
}
