//! The fake GitLab's HTTP side: one handler for every request, so unknown routes are recorded like known
//! ones. Order as on GitLab: rate limiter and injected faults, authentication, route, then the operation
//! with GitLab's validation and error bodies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as AxumState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use super::merge_requests::mr_route;
use super::state::{State, Status};
use super::Shared;

pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Reply {
    pub(super) fn json(status: u16, v: Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(v.to_string().into_bytes()),
        }
    }
    pub(super) fn message(status: u16, m: &str) -> Reply {
        Reply::json(status, json!({ "message": m }))
    }
    pub(super) fn not_found(what: &str) -> Reply {
        Reply::message(404, &format!("404 {what} Not Found"))
    }
    pub(super) fn bad(m: &str) -> Reply {
        Reply::message(400, &format!("400 Bad request - {m}"))
    }
    pub(super) fn missing(param: &str) -> Reply {
        Reply::json(400, json!({ "error": format!("{param} is missing") }))
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).layer(DefaultBodyLimit::disable()).with_state(shared)
}

fn decode(seg: &str) -> String {
    let bytes = seg.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&seg[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(&v.replace('+', " ")))
        })
        .collect()
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = shared.lock();
    let path = uri.path().to_string();
    let reply = dispatch(&mut s, &shared.prefix, &method, &uri, &headers, &body);
    s.calls.push((method.to_string(), format!("{path}?{}", uri.query().unwrap_or("")), reply.status));
    drop(s);
    let mut response = match reply.body {
        Some(b) => (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), b).into_response(),
        None => StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR).into_response(),
    };
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) =
            (axum::http::HeaderName::try_from(k.as_str()), axum::http::HeaderValue::try_from(v.as_str()))
        {
            response.headers_mut().insert(k, v);
        }
    }
    response
}

fn dispatch(s: &mut State, prefix: &str, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Reply {
    let raw = uri.path();
    if let Some(at) = s.not_before {
        if Instant::now() < at {
            s.problems.push(format!("{method} {raw}: sent before the Retry-After of a 429 had passed"));
        }
    }
    let Some(rest) = raw.strip_prefix(prefix) else {
        s.problems.push(format!("{method} {raw}: outside {prefix}"));
        return Reply::message(404, "404 Not Found");
    };
    let fault_at = s.faults.iter().position(|f| {
        f.times > 0 && (f.method == "*" || f.method == method.as_str()) && raw.contains(&f.path_contains)
    });
    let mut after_apply = None;
    if let Some(i) = fault_at {
        s.faults[i].times -= 1;
        let f = s.faults[i].clone();
        if f.status == 429 {
            let secs = f
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            s.not_before = Some(Instant::now() + Duration::from_secs(secs));
        }
        let reply = Reply { status: f.status, headers: f.headers.clone(), body: Some(f.body.to_string().into_bytes()) };
        if !f.after_apply {
            return reply;
        }
        after_apply = Some(reply);
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("private-token").and_then(|v| v.to_str().ok()));
    if token != Some(s.token.as_str()) {
        s.problems.push(format!("{method} {raw}: not authenticated"));
        return Reply::message(401, "401 Unauthorized");
    }
    let segs: Vec<String> = rest.trim_start_matches('/').split('/').map(decode).collect();
    let q = query(uri);
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                s.problems.push(format!("{method} {raw}: body is not JSON: {e}"));
                return Reply::message(400, "400 Bad request");
            }
        }
    };
    let reply = route(s, method, &segs, &q, &body);
    if reply.status == 404 && reply.body.as_deref().is_some_and(|b| b == b"{\"message\":\"404 Route Not Found\"}") {
        s.problems.push(format!("{method} {raw}: unknown request"));
    }
    after_apply.unwrap_or(reply)
}

fn route(s: &mut State, method: &Method, segs: &[String], q: &HashMap<String, String>, body: &Value) -> Reply {
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["user"]) => Reply::json(200, json!({"id": s.bot_id, "username": "guardrail-bot", "bot": true})),
        (_, ["projects", pid, rest @ ..]) => {
            let Some(project) = s.project_by(pid).cloned() else { return Reply::not_found("Project") };
            if !project.readable {
                return Reply::not_found("Project");
            }
            project_route(s, method.as_str(), project.id, rest, q, body)
        }
        _ => Reply::message(404, "404 Route Not Found"),
    }
}

fn project_json(p: &super::state::Project) -> Value {
    json!({
        "id": p.id, "path_with_namespace": p.path, "default_branch": p.default_branch,
        "web_url": format!("https://gitlab.example/{}", p.path),
        "forked_from_project": p.forked_from.map(|id| json!({"id": id})),
    })
}

fn project_route(
    s: &mut State,
    method: &str,
    pid: u64,
    rest: &[&str],
    q: &HashMap<String, String>,
    body: &Value,
) -> Reply {
    let project = s.projects[&pid].clone();
    match (method, rest) {
        ("GET", []) => Reply::json(200, project_json(&project)),
        ("GET", ["repository", "commits", r]) => match s.resolve(&project, r) {
            Some(sha) => Reply::json(200, json!({"id": sha, "short_id": &sha[..8]})),
            None => Reply::not_found("Commit"),
        },
        ("HEAD", ["repository", "files", path]) | ("GET", ["repository", "files", path, "raw"]) => {
            let Some(r) = q.get("ref") else { return Reply::missing("ref") };
            let Some(sha) = s.resolve(&project, r) else { return Reply::not_found("Commit") };
            let Some(content) = s.commits[&sha].get(*path).cloned() else { return Reply::not_found("File") };
            let mut reply = Reply {
                status: 200,
                headers: vec![
                    ("x-gitlab-size".into(), content.len().to_string()),
                    ("x-gitlab-file-path".into(), path.to_string()),
                    ("x-gitlab-commit-id".into(), sha.clone()),
                ],
                body: None,
            };
            if method == "GET" {
                reply.headers.push(("content-type".into(), "text/plain; charset=utf-8".into()));
                reply.body = Some(content.into_bytes());
            }
            reply
        }
        ("GET", ["repository", "tree"]) => tree(s, &project, q),
        ("GET", ["repository", "commits", sha, "statuses"]) => {
            let mut list: Vec<&Status> =
                s.statuses.iter().filter(|st| st.project_id == pid && st.sha == *sha).collect();
            if let Some(name) = q.get("name") {
                list.retain(|st| &st.name == name);
            }
            if let Some(r) = q.get("ref") {
                list.retain(|st| &st.git_ref == r);
            }
            list.sort_by_key(|st| std::cmp::Reverse(st.id));
            let items: Vec<Value> = list.iter().map(|st| status_json(st)).collect();
            paginate(s, q, items, 20)
        }
        ("POST", ["statuses", sha]) => post_status(s, &project, sha, body),
        ("GET", ["members", "all", user]) => {
            let user: u64 = user.parse().unwrap_or(0);
            match project.members.get(&user) {
                Some(level) => Reply::json(200, json!({"id": user, "access_level": level})),
                None => Reply::not_found(""),
            }
        }
        (_, ["merge_requests", iid, rest @ ..]) => {
            let iid: u64 = iid.parse().unwrap_or(0);
            if s.mr(pid, iid).is_none() {
                return Reply::not_found("");
            }
            mr_route(s, method, pid, iid, rest, q, body)
        }
        _ => Reply::message(404, "404 Route Not Found"),
    }
}

fn status_json(st: &Status) -> Value {
    json!({"id": st.id, "sha": st.sha, "ref": st.git_ref, "status": st.status, "name": st.name,
           "description": st.description, "target_url": st.target_url, "allow_failure": false})
}

fn post_status(s: &mut State, project: &super::state::Project, sha: &str, body: &Value) -> Reply {
    // Setting a status needs Developer access; the bot is a member of the projects the tests create, and
    // of a fork only when a test adds it.
    if project.forked_from.is_some() && project.members.get(&s.bot_id).copied().unwrap_or(0) < 30 {
        return Reply::message(403, "403 Forbidden");
    }
    if !project.shas.contains(sha) {
        return Reply::not_found("Commit");
    }
    let Some(state) = body.get("state").and_then(Value::as_str) else { return Reply::missing("state") };
    if !["pending", "running", "success", "failed", "canceled", "skipped"].contains(&state) {
        return Reply::json(400, json!({"error": "state does not have a valid value"}));
    }
    let name =
        body.get("name").or_else(|| body.get("context")).and_then(Value::as_str).unwrap_or("default").to_string();
    let git_ref = match body.get("ref").and_then(Value::as_str) {
        Some(r) => r.to_string(),
        None => match project.branches.iter().filter(|(_, h)| *h == sha).map(|(b, _)| b.clone()).min() {
            Some(b) => b,
            None => return Reply::not_found("References for commit"),
        },
    };
    for (k, max) in [("description", 255usize), ("target_url", 255)] {
        if body.get(k).and_then(Value::as_str).is_some_and(|v| v.chars().count() > max) {
            return Reply::bad(&format!("{k} is too long"));
        }
    }
    let description = body.get("description").and_then(Value::as_str).map(str::to_string);
    let target_url = body.get("target_url").and_then(Value::as_str).map(str::to_string);
    // GitLab updates a running or pending status of this name and ref in place; posting the state it
    // already has is an invalid transition.
    let open = s
        .statuses
        .iter_mut()
        .filter(|st| st.project_id == project.id && st.sha == sha && st.name == name && st.git_ref == git_ref)
        .max_by_key(|st| st.id);
    if let Some(st) = open.filter(|st| st.status == "running" || st.status == "pending") {
        if st.status == state {
            let event = if state == "running" { "run" } else { "enqueue" };
            return Reply::bad(&format!("Cannot transition status via :{event} from :{state} (Reason(s): Status cannot transition via \"{event}\")"))
                .relabel(400);
        }
        st.status = state.to_string();
        st.description = description.or(st.description.take());
        st.target_url = target_url.or(st.target_url.take());
        let v = status_json(st);
        return Reply::json(201, v);
    }
    let id = s.next_id();
    let st = Status {
        id,
        project_id: project.id,
        sha: sha.to_string(),
        git_ref,
        name,
        status: state.to_string(),
        description,
        target_url,
    };
    let v = status_json(&st);
    s.statuses.push(st);
    Reply::json(201, v)
}

impl Reply {
    fn relabel(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }
}

/// Offset pagination as GitLab does it: `page`/`per_page` (at most 100), `X-Next-Page` and `Link`, and
/// `X-Total`/`X-Total-Pages` only while the list is not longer than the count limit.
pub(super) fn paginate(
    s: &mut State,
    q: &HashMap<String, String>,
    items: Vec<Value>,
    default_per_page: usize,
) -> Reply {
    let per_page = q.get("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(default_per_page).clamp(1, 100);
    let page = q.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let has_next = page * per_page < total;
    let mut reply = Reply::json(200, Value::Array(slice));
    reply.headers.push(("x-page".into(), page.to_string()));
    reply.headers.push(("x-per-page".into(), per_page.to_string()));
    reply.headers.push(("x-next-page".into(), if has_next { (page + 1).to_string() } else { String::new() }));
    reply.headers.push(("x-prev-page".into(), if page > 1 { (page - 1).to_string() } else { String::new() }));
    if total <= s.count_limit {
        reply.headers.push(("x-total".into(), total.to_string()));
        reply.headers.push(("x-total-pages".into(), total.div_ceil(per_page).max(1).to_string()));
    }
    let _ = s;
    reply
}

/// `GET /repository/tree`: recursive listing with keyset pagination (`pagination=keyset`, `page_token`,
/// next page only in an absolute `Link`); offset pagination otherwise.
fn tree(s: &mut State, project: &super::state::Project, q: &HashMap<String, String>) -> Reply {
    let r = q.get("ref").cloned().unwrap_or_else(|| project.default_branch.clone());
    let Some(sha) = s.resolve(project, &r) else { return Reply::not_found("Tree") };
    let base = q.get("path").map(|p| format!("{}/", p.trim_matches('/'))).unwrap_or_default();
    let base = if base == "/" { String::new() } else { base };
    let recursive = q.get("recursive").map(String::as_str) == Some("true");
    let mut entries: std::collections::BTreeMap<String, &str> = Default::default();
    for path in s.commits[&sha].keys().filter(|p| p.starts_with(&base)) {
        let rel = &path[base.len()..];
        let parts: Vec<&str> = rel.split('/').collect();
        for i in 1..parts.len() {
            if recursive || i == 1 {
                entries.insert(format!("{base}{}", parts[..i].join("/")), "tree");
            }
        }
        if recursive || parts.len() == 1 {
            entries.insert(path.clone(), "blob");
        }
    }
    if entries.is_empty() && !base.is_empty() {
        return Reply::not_found("Tree");
    }
    let items: Vec<Value> = entries.iter().map(|(p, t)| json!({"id": "0".repeat(40), "name": p.rsplit('/').next(), "type": t, "path": p, "mode": "100644"})).collect();
    if q.get("pagination").map(String::as_str) != Some("keyset") {
        return paginate(s, q, items, 20);
    }
    let per_page = q.get("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(20).clamp(1, 100);
    let after = q.get("page_token").cloned();
    let rest: Vec<Value> =
        items.into_iter().filter(|e| after.as_deref().is_none_or(|a| e["path"].as_str().unwrap_or("") > a)).collect();
    let page: Vec<Value> = rest.iter().take(per_page).cloned().collect();
    let mut reply = Reply::json(200, Value::Array(page.clone()));
    if rest.len() > per_page {
        let last = page.last().and_then(|e| e["path"].as_str()).unwrap_or("");
        let mut params: Vec<String> =
            q.iter().filter(|(k, _)| *k != "page_token").map(|(k, v)| format!("{k}={}", enc(v))).collect();
        params.sort();
        params.push(format!("page_token={}", enc(last)));
        reply.headers.push((
            "link".into(),
            format!("<{}/projects/{}/repository/tree?{}>; rel=\"next\"", s.api_root, project.id, params.join("&")),
        ));
    }
    reply
}

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
