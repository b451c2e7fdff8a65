//! The HTTP side: one handler for every request, so that unknown routes are seen (and recorded) like known ones.
//! Order as on GitHub: injected fault, operation lookup, authentication, body validation, then the operation.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as AxumState};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use super::state::State;
use super::{app_manifests, auth, checks, graphql_exec, openapi, pulls, rest, Call, Shared};

pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Reply {
    pub fn new(status: u16, body: Value) -> Reply {
        Reply { status, headers: Vec::new(), body }
    }

    pub fn ok(body: Value) -> Reply {
        Reply::new(200, body)
    }

    pub fn error(status: u16, message: &str, docs: &str) -> Reply {
        Reply::new(status, json!({"message": message, "documentation_url": docs, "status": status.to_string()}))
    }

    pub fn not_found() -> Reply {
        Reply::error(404, "Not Found", "https://docs.github.com/rest")
    }

    /// GitHub's answer to a body its schema refuses.
    pub fn invalid(errors: &[String], docs: &str) -> Reply {
        Reply::error(422, &format!("Invalid request.\n\n{}", errors.join("\n")), docs)
    }

    pub fn unprocessable(error: &str, docs: &str) -> Reply {
        Reply::new(
            422,
            json!({"message": "Unprocessable Entity", "errors": [error], "documentation_url": docs, "status": "422"}),
        )
    }
}

/// What an operation handler gets: the path parameters, the query, the (validated) body.
pub(crate) struct Req<'a> {
    pub params: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub body: Value,
    pub path: &'a str,
    pub docs: &'a str,
}

impl Req<'_> {
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or_default()
    }

    pub fn repo(&self) -> String {
        format!("{}/{}", self.param("owner"), self.param("repo"))
    }

    pub fn number(&self, name: &str) -> Option<u64> {
        self.param(name).parse().ok()
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).layer(DefaultBodyLimit::disable()).with_state(shared)
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = shared.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let write = is_write(method.as_str(), uri.path(), &body);
    let (reply, after) = {
        let mut s = shared.lock();
        let fault = if write {
            let index = s.writes;
            s.writes += 1;
            let at = s.write_faults.iter().position(|f| f.at == index);
            at.map(|i| s.write_faults.remove(i).mode)
        } else {
            None
        };
        match fault {
            Some(super::WriteMode::Refuse(status)) => {
                (Reply::error(status, "Server Error", "https://docs.github.com/rest"), None)
            }
            Some(super::WriteMode::ApplyThenFail(status)) => {
                respond(&mut s, method.as_str(), &uri, &headers, &body);
                (Reply::error(status, "Server Error", "https://docs.github.com/rest"), None)
            }
            Some(super::WriteMode::ApplyThenHold(hold)) => {
                (respond(&mut s, method.as_str(), &uri, &headers, &body), Some(hold))
            }
            None => (respond(&mut s, method.as_str(), &uri, &headers, &body), None),
        }
    };
    if let Some(hold) = after {
        tokio::time::sleep(hold).await;
    }
    let mut response =
        (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), { axum::Json(reply.body) })
            .into_response();
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().append(name, value);
        }
    }
    let rate = response.headers_mut();
    rate.entry("x-ratelimit-limit").or_insert(HeaderValue::from_static("5000"));
    rate.entry("x-ratelimit-remaining").or_insert(HeaderValue::from_static("4999"));
    response
}

fn respond(s: &mut State, method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Reply {
    let path = uri.path();
    let query = uri.query().unwrap_or_default();
    let spec = openapi::spec();
    let operation = spec.find(method, path);
    let kind = match (&operation, path) {
        (Some((op, _)), _) => op.id.clone(),
        (None, "/graphql") if method == "POST" => "graphql".to_string(),
        (None, p) if app_manifests::web_form(p).is_some() => "web/create-app-from-manifest".to_string(),
        _ => "unknown".to_string(),
    };
    let reply = match take_fault(s, method, path) {
        Some(reply) => reply,
        None if kind == "graphql" => graphql_exec::handle(s, headers, body),
        None if app_manifests::web_form(path).is_some() => app_manifests::web(s, method, path, query, body),
        None => match operation {
            Some((op, params)) => operate(s, op, params, query, headers, body, path),
            None => {
                let why = if spec.has_path(path) { "method not served" } else { "unknown route" };
                s.problem(format!("{why}: {method} {path}"));
                Reply::not_found()
            }
        },
    };
    s.calls.push(Call {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        status: reply.status,
        kind,
    });
    reply
}

/// A REST write, or a GraphQL mutation.
fn is_write(method: &str, path: &str, body: &[u8]) -> bool {
    if path == "/graphql" {
        let query = serde_json::from_slice::<Value>(body).ok();
        let query = query.as_ref().and_then(|v| v.get("query")).and_then(Value::as_str).unwrap_or_default();
        return query.trim_start().starts_with("mutation");
    }
    method != "GET" && !path.contains("/access_tokens")
}

fn take_fault(s: &mut State, method: &str, path: &str) -> Option<Reply> {
    let index = s.faults.iter().position(|f| {
        f.times > 0 && (f.method == "*" || f.method.eq_ignore_ascii_case(method)) && path.contains(&f.path_contains)
    })?;
    let fault = &mut s.faults[index];
    fault.times -= 1;
    let reply = Reply { status: fault.status, headers: fault.headers.clone(), body: fault.body.clone() };
    if fault.times == 0 {
        s.faults.remove(index);
    }
    Some(reply)
}

fn operate(
    s: &mut State,
    op: &openapi::Operation,
    params: HashMap<String, String>,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
) -> Reply {
    let what = format!("{} {}", op.method, path);
    let repo = params.get("owner").zip(params.get("repo")).map(|(o, r)| format!("{o}/{r}"));
    let app_auth = op.template == "/app" || op.template.starts_with("/app/") || op.id == "apps/get-repo-installation";
    // The manifest conversion needs no credentials: the one-time code is the credential.
    let authed = if op.id == "apps/create-from-manifest" {
        Ok(())
    } else if app_auth {
        auth::check_jwt(s, headers, &what)
    } else {
        auth::check_token(s, headers, repo.as_deref(), &what).map(|_| ())
    };
    if let Err(reply) = authed {
        return reply;
    }
    let parsed = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => Some(value),
            Err(e) => {
                s.problem(format!("{what}: body is not JSON: {e}"));
                return Reply::error(400, "Problems parsing JSON", &op.docs);
            }
        }
    };
    let errors = openapi::spec().validate_body(op, parsed.as_ref());
    if !errors.is_empty() {
        s.problem(format!("{what}: body refused by the OpenAPI schema of {}: {}", op.id, errors.join(" ")));
        return Reply::invalid(&errors, &op.docs);
    }
    let req =
        Req { params, query: openapi::query_map(query), body: parsed.unwrap_or(Value::Null), path, docs: &op.docs };
    // One explicit match: the call graph stays visible.
    match op.id.as_str() {
        "apps/get-authenticated" => rest::get_app(s),
        "apps/create-installation-access-token" => match req.number("installation_id") {
            Some(id) => auth::create_token(s, id),
            None => Reply::not_found(),
        },
        "apps/get-repo-installation" => rest::get_repo_installation(s, &req),
        "repos/get" => rest::get_repo(s, &req),
        "repos/get-commit" => rest::get_commit(s, &req),
        "repos/get-content" => rest::get_content(s, &req),
        "git/get-blob" => rest::get_blob(s, &req),
        "git/get-tree" => rest::get_tree(s, &req),
        "pulls/list" => pulls::list(s, &req),
        "pulls/get" => pulls::get(s, &req),
        "pulls/list-files" => pulls::list_files(s, &req),
        "pulls/list-review-comments" => pulls::list_comments(s, &req),
        "pulls/list-reviews" => pulls::list_reviews(s, &req),
        "pulls/create-review" => pulls::create_review(s, &req),
        "checks/create" => checks::create(s, &req),
        "checks/update" => checks::update(s, &req),
        "checks/get" => checks::get(s, &req),
        "checks/list-annotations" => checks::list_annotations(s, &req),
        "checks/list-for-ref" => checks::list_for_ref(s, &req),
        "apps/create-from-manifest" => app_manifests::convert(s, &req),
        other => {
            s.problem(format!("{what}: operation {other} is in the subset but has no handler"));
            Reply::not_found()
        }
    }
}

/// A page of `items` with GitHub's `Link` header (absolute URLs on the fake). `cap` bounds the whole list.
pub(crate) fn paginate(s: &State, req: &Req, items: Vec<Value>, cap: usize) -> Reply {
    let per_page = req.query.get("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(30).clamp(1, 100);
    let page = req.query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let total = items.len().min(cap);
    let last = total.div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = (start + per_page).min(total);
    let page_items: Vec<Value> = items.into_iter().skip(start).take(end - start).collect();
    let mut reply = Reply::ok(Value::Array(page_items));
    let link = |n: usize, rel: &str| {
        let mut query: Vec<(String, String)> =
            req.query.iter().filter(|(k, _)| *k != "page").map(|(k, v)| (k.clone(), v.clone())).collect();
        query.sort();
        query.push(("page".to_string(), n.to_string()));
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("<{}{}?{}>; rel=\"{rel}\"", s.base_url, req.path, query.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    if !links.is_empty() {
        reply.headers.push(("link".to_string(), links.join(", ")));
    }
    reply
}
