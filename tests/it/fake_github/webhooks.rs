//! Webhook payloads built from GitHub's real examples (vendored from octokit/webhooks), patched so that ids,
//! names, shas and numbers describe the fake's state. Deliver them with `sign()` for `X-Hub-Signature-256`.

use serde_json::{json, Value};

use super::checks::check_run_json;
use super::pulls::pull_json;
use super::state::State;
use super::FakeGitHub;

fn example(name: &str) -> Value {
    let text = match name {
        "pull_request/opened" => include_str!("../../fixtures/github/webhooks/pull_request/opened.payload.json"),
        "pull_request/synchronize" => {
            include_str!("../../fixtures/github/webhooks/pull_request/synchronize.payload.json")
        }
        "pull_request/reopened" => include_str!("../../fixtures/github/webhooks/pull_request/reopened.payload.json"),
        "pull_request/ready_for_review" => {
            include_str!("../../fixtures/github/webhooks/pull_request/ready_for_review.with-installation.payload.json")
        }
        "check_run/rerequested" => include_str!("../../fixtures/github/webhooks/check_run/rerequested.payload.json"),
        "check_run/requested_action" => {
            include_str!("../../fixtures/github/webhooks/check_run/requested_action.payload.json")
        }
        "check_suite/requested" => include_str!("../../fixtures/github/webhooks/check_suite/requested.payload.json"),
        "check_suite/rerequested" => {
            include_str!("../../fixtures/github/webhooks/check_suite/rerequested.payload.json")
        }
        "push" => include_str!("../../fixtures/github/webhooks/push/with-installation.payload.json"),
        "installation/created" => include_str!("../../fixtures/github/webhooks/installation/created.payload.json"),
        other => panic!("no vendored webhook example {other}"),
    };
    serde_json::from_str(text).expect("vendored webhook example is JSON")
}

/// Overlays `patch` on `base`: objects merge key by key, anything else is replaced.
fn overlay(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                overlay(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

fn common(s: &State, payload: &mut Value, repo: &str) {
    let r = s.repos.get(repo).unwrap_or_else(|| panic!("webhook: unknown repo {repo}"));
    let mut repository = s.repo_json(r);
    repository["has_discussions"] = json!(false);
    overlay(&mut payload["repository"], repository);
    if payload.get("organization").is_some() {
        let owner = repo.split('/').next().unwrap_or_default();
        overlay(&mut payload["organization"], json!({"login": owner, "id": r.id + 1}));
    }
    payload["installation"] = json!({"id": r.installation_id, "node_id": format!("MDIz{}", r.installation_id)});
}

fn minimal_pull(s: &State, repo: &str, head_sha: &str) -> Vec<Value> {
    let id = s.repos.get(repo).map(|r| r.id).unwrap_or_default();
    let repo_ref = json!({"id": id, "url": format!("{}/repos/{repo}", s.base_url), "name": repo.split('/').nth(1)});
    s.pulls
        .values()
        .filter(|p| p.open && p.repo == repo && p.head_sha == head_sha)
        .map(|p| {
            json!({"url": format!("{}/repos/{repo}/pulls/{}", s.base_url, p.number), "id": p.id, "number": p.number,
                "head": {"ref": format!("pr-{}", p.number), "sha": p.head_sha, "repo": repo_ref},
                "base": {"ref": "main", "sha": p.base_sha, "repo": repo_ref}})
        })
        .collect()
}

impl FakeGitHub {
    /// `action`: opened, synchronize, reopened or ready_for_review; uses the pull request's current shas and
    /// draft flag (`set_draft`). For `synchronize`, `before` is the head before the last `push_pull`.
    pub fn pull_request(&self, action: &str, repo: &str, number: u64) -> Value {
        let s = self.state();
        let mut payload = example(&format!("pull_request/{action}"));
        let pull =
            s.pulls.get(&(repo.to_string(), number)).unwrap_or_else(|| panic!("no pull request {repo}#{number}"));
        common(&s, &mut payload, repo);
        let mut body = pull_json(&s, pull);
        if action == "ready_for_review" {
            body["draft"] = json!(false);
        }
        overlay(&mut payload["pull_request"], body);
        payload["action"] = json!(action);
        payload["number"] = json!(number);
        if action == "synchronize" {
            payload["before"] = json!(pull.previous_head.clone().unwrap_or_else(|| pull.base_sha.clone()));
            payload["after"] = json!(pull.head_sha);
        }
        payload
    }

    /// `action`: rerequested or requested_action (then `requested_action.identifier` is "rerun").
    pub fn check_run(&self, action: &str, repo: &str, check_run_id: u64) -> Value {
        let s = self.state();
        let mut payload = example(&format!("check_run/{action}"));
        let rec = s.check_runs.iter().find(|c| c.repo == repo && c.run.id == check_run_id);
        let rec = rec.unwrap_or_else(|| panic!("no check run {check_run_id} in {repo}"));
        common(&s, &mut payload, repo);
        let mut run = check_run_json(&s, rec);
        run["pull_requests"] = json!(minimal_pull(&s, repo, &rec.run.head_sha));
        run["check_suite"] = json!({"id": rec.suite_id, "head_sha": rec.run.head_sha, "status": "completed",
            "pull_requests": minimal_pull(&s, repo, &rec.run.head_sha), "app": run["app"].clone()});
        overlay(&mut payload["check_run"], run);
        payload["action"] = json!(action);
        if action == "requested_action" {
            payload["requested_action"] = json!({"identifier": "rerun"});
        }
        payload
    }

    /// `action`: requested or rerequested.
    pub fn check_suite(&self, action: &str, repo: &str, head_sha: &str) -> Value {
        let mut s = self.state();
        let id = s.next_id();
        let mut payload = example(&format!("check_suite/{action}"));
        common(&s, &mut payload, repo);
        let branch = s.repos[repo].branches.iter().find(|(_, sha)| *sha == head_sha).map(|(b, _)| b.clone());
        let parent = s.commits.get(head_sha).and_then(|c| c.parent.clone());
        overlay(
            &mut payload["check_suite"],
            json!({
                "id": id, "node_id": format!("CS_{id}"), "head_branch": branch, "head_sha": head_sha,
                "status": "queued", "conclusion": null, "before": parent, "after": head_sha,
                "url": format!("{}/repos/{repo}/check-suites/{id}", s.base_url),
                "pull_requests": minimal_pull(&s, repo, head_sha),
                "app": {"id": FakeGitHub::APP_ID, "slug": FakeGitHub::APP_SLUG, "name": "guardrail"},
            }),
        );
        payload["action"] = json!(action);
        payload
    }

    pub fn push(&self, repo: &str, branch: &str, before: &str, after: &str) -> Value {
        let s = self.state();
        let mut payload = example("push");
        common(&s, &mut payload, repo);
        let tree = s.commits.get(after).map(|c| c.tree_sha.clone());
        let commit = json!({"id": after, "tree_id": tree, "distinct": true, "message": "fake commit",
            "timestamp": chrono::Utc::now().to_rfc3339(), "url": format!("https://github.com/{repo}/commit/{after}"),
            "author": {"name": "Octo Cat", "email": "octocat@example.com"},
            "committer": {"name": "Octo Cat", "email": "octocat@example.com"},
            "added": [], "removed": [], "modified": []});
        overlay(
            &mut payload,
            json!({
                "ref": format!("refs/heads/{branch}"), "before": before, "after": after, "created": false,
                "deleted": false, "forced": false, "base_ref": null, "commits": [commit.clone()], "head_commit": commit,
                "compare": format!("https://github.com/{repo}/compare/{}...{}", &before[..12.min(before.len())], &after[..12.min(after.len())]),
            }),
        );
        payload
    }

    /// For the installation of the first repository added (the lowest installation id).
    pub fn installation_created(&self) -> Value {
        let s = self.state();
        let id = s.repos.values().map(|r| r.installation_id).min().expect("installation_created: add a repo first");
        let mut payload = example("installation/created");
        overlay(&mut payload["installation"], s.installation_json(id));
        let repositories: Vec<Value> = s
            .repos
            .values()
            .filter(|r| r.installation_id == id)
            .map(|r| {
                json!({"id": r.id, "node_id": format!("R_{}", r.id), "name": r.full_name.split('/').nth(1),
                "full_name": r.full_name, "private": false})
            })
            .collect();
        payload["repositories"] = json!(repositories);
        payload["action"] = json!("created");
        payload
    }
}
