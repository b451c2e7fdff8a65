//! The HTTP side of the GitLab client: one token (a bot user's, project or group access token with `api`
//! scope), sent as `PRIVATE-TOKEN`, the header GitLab documents for every kind of access token. Reads are retried (rate limits waited out when short, 5xx and transport errors with
//! backoff); writes are sent once, except after a 429, which GitLab's rate limiter answers before the
//! request reaches the application. A write that failed otherwise may have landed: the typed operations
//! in `api` reconcile with GitLab's state before they try again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::forge::github::CallPolicy;
use crate::forge::ForgeError;
use crate::metrics::Metrics;

/// GitLab serves REST v4 under the instance's root URL, which may itself be a sub-path
/// (`https://example.com/gitlab`).
pub const API_PREFIX: &str = "/api/v4";

/// A response with its status and headers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The body was longer than the caller's limit: reading stopped there.
    pub truncated: bool,
}

impl Reply {
    pub fn json(&self, operation: &str) -> Result<Value, ForgeError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ForgeError::Decode { operation: operation.into(), message: e.to_string() })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Items of a paginated list, and whether the list ended before the cap.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Value>,
    pub complete: bool,
}

pub struct GitLab {
    http: reqwest::Client,
    /// The instance root, without a trailing slash (`https://gitlab.com`, `https://host/gitlab`).
    pub base_url: String,
    pub api_url: String,
    token: SecretString,
    metrics: Metrics,
    pub policy: CallPolicy,
    /// Writes are serialised: GitLab's per-user write limits punish bursts, and the reconcile-then-write
    /// steps of one merge request must not interleave.
    writes: tokio::sync::Mutex<()>,
    /// One rate-limit state for the token, shared by every worker of the process: once GitLab
    /// answers 429, no call goes out before the time it gave is up.
    limited_until: std::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for GitLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLab").field("api_url", &self.api_url).finish_non_exhaustive()
    }
}

impl GitLab {
    pub fn new(
        base_url: &str,
        token: SecretString,
        metrics: Metrics,
        policy: CallPolicy,
    ) -> Result<GitLab, ForgeError> {
        let base = base_url.trim().trim_end_matches('/');
        let base = base.strip_suffix(API_PREFIX).unwrap_or(base).to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ForgeError::Auth(format!("GitLab URL must start with http:// or https://: {base_url}")));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("guardrail/", env!("CARGO_PKG_VERSION")))
            .timeout(policy.timeout)
            .build()
            .map_err(|e| ForgeError::Auth(format!("HTTP client: {e}")))?;
        Ok(GitLab {
            http,
            api_url: format!("{base}{API_PREFIX}"),
            base_url: base,
            token,
            metrics,
            policy,
            writes: tokio::sync::Mutex::new(()),
            limited_until: std::sync::Mutex::new(None),
        })
    }

    /// An absolute URL for an API path (`/projects/...`); absolute URLs (from `Link`) pass through.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.api_url, path)
        }
    }

    /// A read, retried by the policy; non-2xx statuses become errors.
    pub async fn get(&self, path: &str, operation: &str) -> Result<Reply, ForgeError> {
        let reply = self.send_retried(Method::GET, &self.url(path), None, operation, true, u64::MAX).await?;
        check(reply, operation)
    }

    /// A read that stops after `max_bytes` of body (`Reply::truncated`), for file contents.
    pub async fn get_capped(&self, path: &str, operation: &str, max_bytes: u64) -> Result<Reply, ForgeError> {
        let reply = self.send_retried(Method::GET, &self.url(path), None, operation, true, max_bytes).await?;
        check(reply, operation)
    }

    /// A write, sent once (twice or more only after 429s). The caller reconciles before trying again.
    pub async fn write(&self, method: Method, path: &str, body: &Value, operation: &str) -> Result<Reply, ForgeError> {
        let _guard = self.writes.lock().await;
        let reply = self.send_retried(method, &self.url(path), Some(body), operation, false, u64::MAX).await?;
        check(reply, operation)
    }

    /// All pages of a list, following `Link: rel="next"` or `X-Next-Page` (GitLab omits `X-Total` and
    /// `X-Total-Pages` past 10,000 items, so neither is relied on), up to `max` items.
    pub async fn pages(&self, path: &str, operation: &str, max: usize) -> Result<Page, ForgeError> {
        let mut items = Vec::new();
        let mut next = Some(self.url(&with_per_page(path)));
        while let Some(url) = next.take() {
            let reply = self.get(&url, operation).await?;
            let Value::Array(page) = reply.json(operation)? else {
                return Err(ForgeError::Decode { operation: operation.into(), message: "expected a list".into() });
            };
            let empty = page.is_empty();
            items.extend(page);
            if items.len() >= max {
                let complete = items.len() == max && next_page_url(&url, &reply.headers).is_none();
                items.truncate(max);
                return Ok(Page { items, complete });
            }
            if empty {
                break;
            }
            next = next_page_url(&url, &reply.headers);
        }
        Ok(Page { items, complete: true })
    }

    /// How long calls must still wait, if GitLab asked to.
    pub fn limited_for(&self) -> Option<Duration> {
        let until = (*self.limited_until.lock().expect("rate limit"))?;
        until.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero())
    }

    /// Records that GitLab asked to wait `wait`.
    pub fn limit(&self, wait: Duration) {
        let until = std::time::Instant::now() + wait;
        let mut slot = self.limited_until.lock().expect("rate limit");
        if slot.is_none_or(|u| u < until) {
            *slot = Some(until);
        }
    }

    async fn send_retried(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        operation: &str,
        idempotent: bool,
        max_bytes: u64,
    ) -> Result<Reply, ForgeError> {
        let mut attempt = 0u32;
        let mut waits = 0u32;
        loop {
            if let Some(wait) = self.limited_for() {
                if wait > self.policy.max_inline_wait {
                    return Err(ForgeError::RateLimited { operation: operation.into(), wait });
                }
                tokio::time::sleep(wait).await;
            }
            attempt += 1;
            let result = self.send_once(method.clone(), url, body, operation, max_bytes).await;
            let retryable = match &result {
                Ok(reply) => {
                    if let Some(wait) = rate_limit_wait(reply) {
                        self.limit(wait);
                        waits += 1;
                        if wait > self.policy.max_inline_wait || waits > self.policy.attempts + 2 {
                            return Err(ForgeError::RateLimited { operation: operation.into(), wait });
                        }
                        tracing::info!(operation, ?wait, "GitLab rate limit; waiting");
                        self.metrics.rate_limit_wait(wait);
                        tokio::time::sleep(wait).await;
                        attempt -= 1;
                        continue;
                    }
                    idempotent && reply.status >= 500
                }
                Err(ForgeError::Transport { .. }) => idempotent,
                Err(_) => false,
            };
            if !retryable || attempt >= self.policy.attempts {
                return result;
            }
            let backoff = self.policy.backoff * 2u32.pow(attempt - 1);
            tracing::info!(operation, attempt, ?backoff, "GitLab call failed; retrying");
            tokio::time::sleep(backoff).await;
        }
    }

    async fn send_once(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        operation: &str,
        max_bytes: u64,
    ) -> Result<Reply, ForgeError> {
        let mut request = self
            .http
            .request(method, url)
            .header("private-token", self.token.expose_secret())
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport =
            |e: reqwest::Error| ForgeError::Transport { operation: operation.into(), message: e.to_string() };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.metrics.github_call(&format!("gitlab:{operation}"), status);
        tracing::debug!(operation, status, "GitLab call");
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Ok(Reply { status, headers, body: Vec::new(), truncated: true });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > max_bytes {
                return Ok(Reply { status, headers, body, truncated: true });
            }
        }
        Ok(Reply { status, headers, body, truncated: false })
    }
}

/// Non-2xx replies as typed errors, with GitLab's message: `{"message": "..."}`, `{"message": {field:
/// [..]}}` for validation errors, or `{"error": "..."}` for parameter errors.
fn check(reply: Reply, operation: &str) -> Result<Reply, ForgeError> {
    if (200..300).contains(&reply.status) {
        return Ok(reply);
    }
    let message = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| {
            let m = v.get("message").or_else(|| v.get("error"))?;
            Some(match m {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).chars().take(300).collect());
    Err(ForgeError::Status { operation: operation.into(), status: reply.status, message })
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// How long GitLab asked us to wait, if this reply is a rate limit: `429` with `Retry-After` (seconds),
/// else `RateLimit-Reset` (a Unix time), else a minute.
pub fn rate_limit_wait(reply: &Reply) -> Option<Duration> {
    if reply.status != 429 {
        return None;
    }
    if let Some(secs) = header_u64(&reply.headers, "retry-after") {
        return Some(Duration::from_secs(secs.max(1)));
    }
    if let Some(reset) = header_u64(&reply.headers, "ratelimit-reset") {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    Some(Duration::from_secs(60))
}

fn with_per_page(path: &str) -> String {
    if path.contains("per_page=") {
        path.to_string()
    } else if path.contains('?') {
        format!("{path}&per_page=100")
    } else {
        format!("{path}?per_page=100")
    }
}

/// The next page: `Link: <..>; rel="next"` when present (it carries keyset cursors too), else the
/// current URL with `page` set to `X-Next-Page`. An empty `X-Next-Page` is the last page.
pub fn next_page_url(current: &str, headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link").and_then(|v| v.to_str().ok()).and_then(|link| {
        link.split(',').find_map(|part| {
            let (url, rel) = part.split_once(';')?;
            rel.contains("rel=\"next\"").then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
        })
    });
    if link.is_some() {
        return link;
    }
    let next = headers.get("x-next-page")?.to_str().ok()?.trim();
    if next.is_empty() {
        return None;
    }
    let (base, query) = current.split_once('?').unwrap_or((current, ""));
    let mut params: Vec<String> =
        query.split('&').filter(|p| !p.is_empty() && !p.starts_with("page=")).map(str::to_string).collect();
    params.push(format!("page={next}"));
    Some(format!("{base}?{}", params.join("&")))
}
