//! Read-only REST operations on the App, repositories and git data (commits, trees, blobs, contents).

use base64::Engine;
use serde_json::{json, Value};

use super::diff::diff_snapshots;
use super::server::{Reply, Req};
use super::state::{bot_json, sha1_hex, user_json, Commit, State};
use super::FakeGitHub;

/// The contents API serves content up to this size; above it, `content` is empty (raw media type needed).
const CONTENTS_LIMIT: usize = 1024 * 1024;

/// GitHub's base64: wrapped at 60 characters per line.
pub(crate) fn base64_wrapped(bytes: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = text.as_bytes().chunks(60).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

pub(crate) fn get_app(_s: &mut State) -> Reply {
    Reply::ok(json!({
        "id": FakeGitHub::APP_ID, "slug": FakeGitHub::APP_SLUG, "node_id": "A_guardrail", "name": "guardrail",
        "client_id": "Iv1.fakeclientid", "owner": user_json("octo-org", 1, "Organization"), "description": "",
        "external_url": "https://example.invalid", "html_url": "https://github.com/apps/guardrail",
        "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
        "permissions": {"checks": "write", "contents": "read", "pull_requests": "write", "metadata": "read"},
        "events": ["check_run", "check_suite", "pull_request", "push"], "installations_count": 1,
        "bot": bot_json(),
    }))
}

pub(crate) fn get_repo_installation(s: &mut State, req: &Req) -> Reply {
    match s.repos.get(&req.repo()).map(|r| r.installation_id) {
        Some(id) => Reply::ok(s.installation_json(id)),
        None => Reply::not_found(),
    }
}

pub(crate) fn get_repo(s: &mut State, req: &Req) -> Reply {
    match s.repos.get(&req.repo()) {
        Some(repo) => Reply::ok(s.repo_json(repo)),
        None => Reply::not_found(),
    }
}

fn commit_json(s: &State, repo: &str, c: &Commit) -> Value {
    let url = format!("{}/repos/{repo}/commits/{}", s.base_url, c.sha);
    let date = c.date.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let person = json!({"name": "Octo Cat", "email": "octocat@example.com", "date": date});
    let parents: Vec<Value> =
        c.parent.iter().map(|p| json!({"sha": p, "url": format!("{}/repos/{repo}/commits/{p}", s.base_url)})).collect();
    json!({
        "sha": c.sha, "node_id": format!("C_{}", &c.sha[..12]), "url": url,
        "html_url": format!("https://github.com/{repo}/commit/{}", c.sha),
        "commit": {
            "message": "fake commit", "author": person, "committer": person, "comment_count": 0,
            "url": format!("{}/repos/{repo}/git/commits/{}", s.base_url, c.sha),
            "tree": {"sha": c.tree_sha, "url": format!("{}/repos/{repo}/git/trees/{}", s.base_url, c.tree_sha)},
            "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null},
        },
        "author": null, "committer": null, "parents": parents,
    })
}

pub(crate) fn get_commit(s: &mut State, req: &Req) -> Reply {
    let repo = req.repo();
    let Some(c) = s.resolve(&repo, req.param("ref")) else {
        return Reply::error(422, &format!("No commit found for SHA: {}", req.param("ref")), req.docs);
    };
    let mut body = commit_json(s, &repo, c);
    let empty = Default::default();
    let parent_files = c.parent.as_ref().and_then(|p| s.commits.get(p)).map(|p| p.files.clone());
    let files = diff_snapshots(s, parent_files.as_deref().unwrap_or(&empty), &c.files);
    let (additions, deletions) = files.iter().fold((0, 0), |(a, d), f| (a + f.additions, d + f.deletions));
    let files: Vec<Value> = files
        .iter()
        .take(300)
        .map(|f| {
            let mut v = json!({"sha": f.sha, "filename": f.filename, "status": f.status, "additions": f.additions,
                "deletions": f.deletions, "changes": f.additions + f.deletions});
            if let Some(patch) = &f.patch {
                v["patch"] = json!(patch);
            }
            v
        })
        .collect();
    body["stats"] = json!({"additions": additions, "deletions": deletions, "total": additions + deletions});
    body["files"] = Value::Array(files);
    Reply::ok(body)
}

pub(crate) fn get_blob(s: &mut State, req: &Req) -> Reply {
    let repo = req.repo();
    let sha = req.param("file_sha");
    // A blob is visible through a repo if one of the repo's visible commits holds it.
    let visible =
        s.commits.values().any(|c| s.commit_in(&repo, &c.sha).is_some() && c.files.values().any(|b| b == sha));
    match s.blob(sha).filter(|_| visible) {
        Some(bytes) => Reply::ok(json!({
            "sha": sha, "node_id": format!("B_{}", &sha[..12.min(sha.len())]), "size": bytes.len(),
            "url": format!("{}/repos/{repo}/git/blobs/{sha}", s.base_url),
            "content": base64_wrapped(&bytes), "encoding": "base64",
        })),
        None => Reply::not_found(),
    }
}

pub(crate) fn get_tree(s: &mut State, req: &Req) -> Reply {
    let repo = req.repo();
    let recursive = req.query.get("recursive").is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
    let Some(c) = s.resolve(&repo, req.param("tree_sha")) else {
        return Reply::not_found();
    };
    let mut dirs = std::collections::BTreeSet::new();
    let mut entries: Vec<(String, Value)> = Vec::new();
    for (path, blob) in c.files.iter() {
        let parts: Vec<&str> = path.split('/').collect();
        for i in 1..parts.len() {
            dirs.insert(parts[..i].join("/"));
        }
        if recursive || parts.len() == 1 {
            let size = s.blob(blob).map(|b| b.len()).unwrap_or_default();
            let entry = json!({"path": path, "mode": "100644", "type": "blob", "sha": blob, "size": size,
                "url": format!("{}/repos/{repo}/git/blobs/{blob}", s.base_url)});
            entries.push((path.clone(), entry));
        }
    }
    for dir in dirs.iter().filter(|d| recursive || !d.contains('/')) {
        let sha = sha1_hex(format!("tree {} {dir}", c.tree_sha).as_bytes());
        let entry = json!({"path": dir, "mode": "040000", "type": "tree", "sha": sha,
            "url": format!("{}/repos/{repo}/git/trees/{sha}", s.base_url)});
        entries.push((dir.clone(), entry));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    // GitHub stops at 100,000 entries and says so.
    let truncated = entries.len() > 100_000;
    let tree: Vec<Value> = entries.into_iter().take(100_000).map(|(_, e)| e).collect();
    Reply::ok(json!({
        "sha": c.tree_sha, "url": format!("{}/repos/{repo}/git/trees/{}", s.base_url, c.tree_sha),
        "tree": tree, "truncated": truncated,
    }))
}

pub(crate) fn get_content(s: &mut State, req: &Req) -> Reply {
    let repo = req.repo();
    let default = s.repos.get(&repo).map(|r| r.default_branch.clone()).unwrap_or_default();
    let reference = req.query.get("ref").filter(|r| !r.is_empty()).cloned().unwrap_or(default);
    let Some(c) = s.resolve(&repo, &reference) else {
        return Reply::error(404, &format!("No commit found for the ref {reference}"), req.docs);
    };
    let path = req.param("path").trim_matches('/').to_string();
    let url = |p: &str| format!("{}/repos/{repo}/contents/{p}?ref={reference}", s.base_url);
    if let Some(blob) = c.files.get(&path) {
        let bytes = s.blob(blob).unwrap_or_default();
        let (content, encoding) =
            if bytes.len() > CONTENTS_LIMIT { (String::new(), "none") } else { (base64_wrapped(&bytes), "base64") };
        let name = path.rsplit('/').next().unwrap_or(&path);
        let git_url = format!("{}/repos/{repo}/git/blobs/{blob}", s.base_url);
        let html_url = format!("https://github.com/{repo}/blob/{reference}/{path}");
        return Reply::ok(json!({
            "type": "file", "encoding": encoding, "size": bytes.len(), "name": name, "path": path,
            "content": content, "sha": blob, "url": url(&path), "git_url": git_url, "html_url": html_url,
            "download_url": format!("https://raw.githubusercontent.com/{repo}/{reference}/{path}"),
            "_links": {"self": url(&path), "git": git_url, "html": html_url},
        }));
    }
    let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
    let mut children = std::collections::BTreeMap::new();
    for (file, blob) in c.files.iter() {
        if let Some(rest) = file.strip_prefix(&prefix) {
            match rest.split_once('/') {
                Some((dir, _)) => children.entry(format!("{prefix}{dir}")).or_insert((None, "dir")),
                None => children.entry(file.clone()).or_insert((Some(blob.clone()), "file")),
            };
        }
    }
    if children.is_empty() {
        return Reply::not_found();
    }
    let listing: Vec<Value> = children
        .into_iter()
        .map(|(p, (blob, kind))| {
            let size = blob.as_deref().and_then(|b| s.blob(b)).map(|b| b.len()).unwrap_or_default();
            let sha = blob.unwrap_or_else(|| sha1_hex(format!("tree {} {p}", c.tree_sha).as_bytes()));
            let name = p.rsplit('/').next().unwrap_or(&p).to_string();
            json!({"type": kind, "size": size, "name": name, "path": p, "sha": sha, "url": url(&p),
                "git_url": null, "html_url": null, "download_url": null,
                "_links": {"self": url(&p), "git": null, "html": null}})
        })
        .collect();
    Reply::ok(Value::Array(listing))
}
