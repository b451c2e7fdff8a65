//! GitHub's App manifest flow, as GitHub documents it ("Registering a GitHub App from a manifest"):
//! the web form a browser submits to `POST /settings/apps/new?state=…` (or
//! `/organizations/{org}/settings/apps/new`) with `manifest=<JSON>` creates the App and redirects to
//! the manifest's `redirect_url` with a one-time `code` and the `state`; the REST operation
//! `POST /app-manifests/{code}/conversions` (no authentication) exchanges the code, once, for the App's
//! id, private key and webhook secret. Manifests are checked against the documented parameters.

use serde_json::{json, Value};

use super::server::{Reply, Req};
use super::state::{user_json, State};
use super::FakeGitHub;

/// Apps registered through the flow, in order.
#[derive(Default)]
pub(crate) struct Registry {
    pub apps: Vec<RegisteredApp>,
}

pub(crate) struct RegisteredApp {
    pub id: u64,
    pub slug: String,
    pub owner: String,
    pub manifest: Value,
    pub code: String,
    pub webhook_secret: String,
    pub converted: bool,
}

const MANIFEST_KEYS: [&str; 12] = [
    "name",
    "url",
    "hook_attributes",
    "redirect_url",
    "callback_urls",
    "setup_url",
    "description",
    "public",
    "default_events",
    "default_permissions",
    "request_oauth_on_install",
    "setup_on_update",
];

const EVENTS: [&str; 12] = [
    "check_run",
    "check_suite",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "push",
    "installation",
    "installation_repositories",
    "issues",
    "issue_comment",
    "repository",
    "merge_group",
];

const PERMISSIONS: [&str; 10] = [
    "checks",
    "contents",
    "metadata",
    "pull_requests",
    "issues",
    "statuses",
    "actions",
    "security_events",
    "members",
    "administration",
];

/// The web form's path, if `path` is one: `Some(owner)` (`None` inside for a personal account).
pub(crate) fn web_form(path: &str) -> Option<Option<String>> {
    if path == "/settings/apps/new" {
        return Some(None);
    }
    let org = path.strip_prefix("/organizations/")?.strip_suffix("/settings/apps/new")?;
    (!org.is_empty() && !org.contains('/')).then(|| Some(org.to_string()))
}

/// The browser's form post: registers the App and redirects with a code.
pub(crate) fn web(s: &mut State, method: &str, path: &str, query: &str, body: &[u8]) -> Reply {
    let owner = web_form(path).flatten().unwrap_or_else(|| "octocat".to_string());
    if method != "POST" {
        s.problem(format!("{method} {path}: the manifest flow posts the form"));
        return Reply::not_found();
    }
    let form = form_fields(body);
    let Some(text) = form.iter().find(|(k, _)| k == "manifest").map(|(_, v)| v.clone()) else {
        s.problem(format!("POST {path}: no `manifest` form field"));
        return Reply::error(422, "Manifest is missing", "");
    };
    let manifest: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            s.problem(format!("POST {path}: the manifest is not JSON: {e}"));
            return Reply::error(422, "Manifest is not JSON", "");
        }
    };
    let errors = check_manifest(&manifest);
    if !errors.is_empty() {
        s.problem(format!("POST {path}: manifest refused: {}", errors.join("; ")));
        return Reply::error(422, &errors.join("; "), "");
    }
    let state = super::openapi::query_map(query).get("state").cloned().unwrap_or_default();
    let n = s.app_manifests.apps.len() as u64 + 1;
    let name = manifest["name"].as_str().unwrap_or("app").to_string();
    let app = RegisteredApp {
        id: 900_000 + n,
        slug: name.to_ascii_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        owner,
        code: format!("v1{n:04}a9f3c2e1d0b8"),
        webhook_secret: format!("whsec{n}-0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
        manifest,
        converted: false,
    };
    let redirect = app.manifest["redirect_url"].as_str().unwrap_or_default().to_string();
    let separator = if redirect.contains('?') { '&' } else { '?' };
    let location = format!("{redirect}{separator}code={}&state={state}", app.code);
    s.app_manifests.apps.push(app);
    let mut reply = Reply::new(302, json!({}));
    reply.headers.push(("location".into(), location));
    reply
}

/// `POST /app-manifests/{code}/conversions`.
pub(crate) fn convert(s: &mut State, req: &Req) -> Reply {
    let code = req.param("code");
    let Some(app) = s.app_manifests.apps.iter_mut().find(|a| a.code == code && !a.converted) else {
        return Reply::not_found();
    };
    app.converted = true;
    let m = &app.manifest;
    Reply::new(
        201,
        json!({
            "id": app.id, "slug": app.slug, "node_id": format!("A_{}", app.id), "client_id": format!("Iv1.{}", app.id),
            "owner": user_json(&app.owner, 77, "Organization"), "name": m["name"], "description": m.get("description").cloned().unwrap_or(Value::Null),
            "external_url": m["url"], "html_url": format!("https://github.com/apps/{}", app.slug),
            "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z",
            "permissions": m.get("default_permissions").cloned().unwrap_or(json!({})),
            "events": m.get("default_events").cloned().unwrap_or(json!([])),
            "installations_count": 0,
            "client_secret": "0123456789abcdef0123456789abcdef01234567",
            "webhook_secret": app.webhook_secret,
            "pem": FakeGitHub::private_key_pem(),
        }),
    )
}

/// What GitHub checks of a manifest (its documented parameters).
fn check_manifest(m: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(object) = m.as_object() else { return vec!["the manifest is not an object".into()] };
    for key in object.keys() {
        if !MANIFEST_KEYS.contains(&key.as_str()) {
            errors.push(format!("unknown parameter `{key}`"));
        }
    }
    if !m["url"].as_str().is_some_and(|u| u.starts_with("http")) {
        errors.push("`url` is required (the App's homepage)".into());
    }
    match &m["hook_attributes"] {
        Value::Null => {}
        hook => {
            if !hook["url"].as_str().is_some_and(|u| u.starts_with("http")) {
                errors.push("`hook_attributes.url` must be a URL".into());
            }
            if hook.as_object().is_some_and(|h| h.keys().any(|k| k != "url" && k != "active")) {
                errors.push("`hook_attributes` takes `url` and `active`".into());
            }
        }
    }
    if !m["redirect_url"].as_str().is_some_and(|u| u.starts_with("http")) {
        errors.push("`redirect_url` must be a URL".into());
    }
    if !m["public"].is_null() && !m["public"].is_boolean() {
        errors.push("`public` is a boolean".into());
    }
    for event in m["default_events"].as_array().into_iter().flatten() {
        if !event.as_str().is_some_and(|e| EVENTS.contains(&e)) {
            errors.push(format!("unknown event {event}"));
        }
    }
    for (name, level) in m["default_permissions"].as_object().into_iter().flatten() {
        if !PERMISSIONS.contains(&name.as_str()) || !matches!(level.as_str(), Some("read" | "write")) {
            errors.push(format!("permission {name}: {level}"));
        }
    }
    errors
}

/// `application/x-www-form-urlencoded` pairs.
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
