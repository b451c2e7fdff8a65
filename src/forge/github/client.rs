//! The GitHub App's HTTP client: App JWT and installation tokens through octocrab (which caches a token
//! until 30 s before it expires), requests through reqwest so that status and headers (rate limits,
//! `Link`) stay visible and absolute URLs work (GitHub Enterprise serves GraphQL beside, not under, the
//! REST root; octocrab only authenticates requests to api.github.com or its base path), and one retry
//! policy for every call: wait out rate limits, retry 5xx and timeouts, give up on the rest. Writes to
//! one installation are serialised (GitHub's secondary limits punish bursts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method};
use octocrab::Octocrab;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::forge::{ForgeError, InstallationId, RepoSlug};
use crate::metrics::Metrics;

/// How calls are retried inside one job attempt; longer waits go back to the queue.
#[derive(Clone, Debug)]
pub struct CallPolicy {
    /// Attempts for 5xx and transport errors.
    pub attempts: u32,
    /// First backoff; doubled after each failure.
    pub backoff: Duration,
    /// Rate-limit waits up to this long happen inline; longer ones reschedule the job.
    pub max_inline_wait: Duration,
    pub timeout: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_inline_wait: Duration::from_secs(20),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A response with its status and headers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self, operation: &str) -> Result<Value, ForgeError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ForgeError::Decode { operation: operation.into(), message: e.to_string() })
    }
}

pub struct GitHub {
    app: Octocrab,
    app_id: u64,
    key: jsonwebtoken::EncodingKey,
    http: reqwest::Client,
    pub api_url: String,
    pub graphql_url: String,
    installations: Mutex<HashMap<u64, Arc<Octocrab>>>,
    writes: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    /// One rate-limit state per installation, shared by every worker of the process: once GitHub
    /// asks an installation to wait, no call for it goes out before the time is up.
    limits: Mutex<HashMap<u64, Instant>>,
    metrics: Metrics,
    pub policy: CallPolicy,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub").field("api_url", &self.api_url).finish_non_exhaustive()
    }
}

impl GitHub {
    pub fn new(
        app_id: u64,
        private_key_pem: &str,
        api_url: &str,
        graphql_url: &str,
        metrics: Metrics,
        policy: CallPolicy,
    ) -> Result<GitHub, ForgeError> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
            .map_err(|e| ForgeError::Auth(format!("private key: {e}")))?;
        let app = Octocrab::builder()
            .base_uri(api_url)
            .map_err(|e| ForgeError::Auth(format!("API URL {api_url}: {e}")))?
            .app(octocrab::models::AppId(app_id), key.clone())
            .set_connect_timeout(Some(policy.timeout))
            .set_read_timeout(Some(policy.timeout))
            .set_write_timeout(Some(policy.timeout))
            .build()
            .map_err(|e| ForgeError::Auth(e.to_string()))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("guardrail/", env!("CARGO_PKG_VERSION")))
            .timeout(policy.timeout)
            .build()
            .map_err(|e| ForgeError::Auth(format!("HTTP client: {e}")))?;
        Ok(GitHub {
            app,
            app_id,
            key,
            http,
            api_url: api_url.trim_end_matches('/').to_string(),
            graphql_url: graphql_url.to_string(),
            installations: Mutex::new(HashMap::new()),
            writes: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            metrics,
            policy,
        })
    }

    /// A client acting as the installation; its token is cached inside it.
    fn installation(&self, id: &InstallationId) -> Result<Arc<Octocrab>, ForgeError> {
        let mut map = self.installations.lock().expect("installation map");
        if let Some(client) = map.get(&id.0) {
            return Ok(client.clone());
        }
        // One client per installation, shared: the token cache lives inside it.
        let client = Arc::new(
            self.app
                .installation(octocrab::models::InstallationId(id.0))
                .map_err(|e| ForgeError::Auth(e.to_string()))?,
        );
        map.insert(id.0, client.clone());
        Ok(client)
    }

    fn forget_token(&self, id: &InstallationId) {
        self.installations.lock().expect("installation map").remove(&id.0);
    }

    /// How long calls for `id` must still wait, if GitHub asked it to.
    pub fn limited_for(&self, id: &InstallationId) -> Option<Duration> {
        let until = *self.limits.lock().expect("rate limits").get(&id.0)?;
        until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// Records that GitHub asked `id` to wait `wait` (from a reply, or from another replica).
    pub fn limit(&self, id: &InstallationId, wait: Duration) {
        let until = Instant::now() + wait;
        let mut limits = self.limits.lock().expect("rate limits");
        let slot = limits.entry(id.0).or_insert(until);
        if *slot < until {
            *slot = until;
        }
    }

    fn write_lock(&self, id: &InstallationId) -> Arc<tokio::sync::Mutex<()>> {
        self.writes.lock().expect("write locks").entry(id.0).or_default().clone()
    }

    /// An absolute URL for an API path (`/repos/...`).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.api_url, path)
        }
    }

    /// One call as the App itself (JWT), e.g. to find the installation of a repository.
    pub async fn app_get(&self, path: &str, operation: &str) -> Result<Value, ForgeError> {
        let reply = self.send_with(None, Method::GET, &self.url(path), None, operation, false).await?;
        self.check(reply, operation)?.json(operation)
    }

    /// The installation that can read `repo`.
    pub async fn installation_of(&self, repo: &RepoSlug) -> Result<InstallationId, ForgeError> {
        let v = self.app_get(&format!("/repos/{repo}/installation"), "apps/get-repo-installation").await?;
        v.get("id").and_then(Value::as_u64).map(InstallationId).ok_or_else(|| ForgeError::Decode {
            operation: "apps/get-repo-installation".into(),
            message: "no id".into(),
        })
    }

    /// Sends a request as the installation, with the retry policy; non-2xx statuses become errors.
    pub async fn call(
        &self,
        installation: &InstallationId,
        method: Method,
        path: &str,
        body: Option<&Value>,
        operation: &str,
    ) -> Result<Reply, ForgeError> {
        let url = self.url(path);
        // GraphQL queries are reads even though they are POSTs; mutations are writes.
        let is_write =
            if operation.starts_with("graphql") { body.is_some_and(is_mutation) } else { method != Method::GET };
        let lock = is_write.then(|| self.write_lock(installation));
        let _guard = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let mut refreshed = false;
        loop {
            if let Some(wait) = self.limited_for(installation) {
                if wait > self.policy.max_inline_wait {
                    return Err(ForgeError::RateLimited { operation: operation.into(), wait });
                }
                tokio::time::sleep(wait).await;
            }
            let reply = self.send_with(Some(installation), method.clone(), &url, body, operation, is_write).await;
            match reply {
                Ok(r) if r.status == 401 && !refreshed => {
                    // The token expired early or was revoked: get a new one, once.
                    self.forget_token(installation);
                    refreshed = true;
                }
                Err(ForgeError::Auth(_)) if !refreshed => {
                    self.forget_token(installation);
                    refreshed = true;
                }
                other => return self.check(other?, operation),
            }
        }
    }

    fn check(&self, reply: Reply, operation: &str) -> Result<Reply, ForgeError> {
        if (200..300).contains(&reply.status) {
            return Ok(reply);
        }
        let message = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|v| {
                let m = v.get("message")?.as_str()?.to_string();
                let errors = v.get("errors").map(|e| format!(" {e}")).unwrap_or_default();
                Some(format!("{m}{errors}"))
            })
            // Never an upstream HTML page: its text ends up in check runs and logs.
            .unwrap_or_else(|| format!("a response that is not JSON ({} bytes)", reply.body.len()));
        Err(ForgeError::Status { operation: operation.into(), status: reply.status, message })
    }

    /// Sends with retries for rate limits (waited out inline when short), 5xx and transport errors.
    /// A write is not repeated after a 5xx or a transport error: GitHub may have applied it, so the
    /// job reconciles with what GitHub holds before it writes again.
    async fn send_with(
        &self,
        installation: Option<&InstallationId>,
        method: Method,
        url: &str,
        body: Option<&Value>,
        operation: &str,
        is_write: bool,
    ) -> Result<Reply, ForgeError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.send_once(installation, method.clone(), url, body, operation).await;
            let retryable = match &result {
                Ok(reply) => {
                    if let Some(wait) = rate_limit_wait(reply) {
                        if let Some(id) = installation {
                            self.limit(id, wait);
                        }
                        if wait > self.policy.max_inline_wait || attempt > self.policy.attempts + 2 {
                            return Err(ForgeError::RateLimited { operation: operation.into(), wait });
                        }
                        tracing::info!(operation, ?wait, "rate limited; waiting");
                        self.metrics.rate_limit_wait(wait);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    reply.status >= 500 && !is_write
                }
                Err(ForgeError::Transport { .. }) => !is_write,
                Err(_) => false,
            };
            if !retryable || attempt >= self.policy.attempts {
                return result;
            }
            let backoff = self.policy.backoff * 2u32.pow(attempt - 1);
            tracing::info!(operation, attempt, ?backoff, "GitHub call failed; retrying");
            tokio::time::sleep(backoff).await;
        }
    }

    /// The `Authorization` header: the installation's cached token, or a fresh App JWT.
    async fn bearer(&self, installation: Option<&InstallationId>) -> Result<String, ForgeError> {
        let token = match installation {
            Some(id) => {
                let client = self.installation(id)?;
                let token = client.installation_token().await.map_err(|e| match e {
                    // The installation is gone (uninstalled) or suspended: retrying cannot help.
                    octocrab::Error::GitHub { source, .. }
                        if source.status_code.as_u16() == 404 || source.status_code.as_u16() == 403 =>
                    {
                        ForgeError::Uninstalled(format!(
                            "installation {id}: {} ({})",
                            source.message, source.status_code
                        ))
                    }
                    octocrab::Error::GitHub { source, .. } => {
                        ForgeError::Auth(format!("installation token: {} ({})", source.message, source.status_code))
                    }
                    other => {
                        ForgeError::Transport { operation: "installation token".into(), message: other.to_string() }
                    }
                })?;
                token.expose_secret().to_string()
            }
            None => octocrab::auth::create_jwt(octocrab::models::AppId(self.app_id), &self.key)
                .map_err(|e| ForgeError::Auth(format!("App JWT: {e}")))?,
        };
        Ok(format!("Bearer {token}"))
    }

    async fn send_once(
        &self,
        installation: Option<&InstallationId>,
        method: Method,
        url: &str,
        body: Option<&Value>,
        operation: &str,
    ) -> Result<Reply, ForgeError> {
        let bearer = self.bearer(installation).await?;
        let mut request = self
            .http
            .request(method, url)
            .header("authorization", bearer)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport =
            |e: reqwest::Error| ForgeError::Transport { operation: operation.into(), message: e.to_string() };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        self.metrics.github_call(operation, status);
        tracing::debug!(operation, status, "GitHub call");
        Ok(Reply { status, headers, body })
    }
}

fn is_mutation(body: &Value) -> bool {
    body.get("query").and_then(Value::as_str).is_some_and(|q| q.trim_start().starts_with("mutation"))
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// How long GitHub asked us to wait, if this reply is a rate limit (primary or secondary).
pub fn rate_limit_wait(reply: &Reply) -> Option<Duration> {
    if reply.status != 403 && reply.status != 429 {
        return None;
    }
    if let Some(secs) = header_u64(&reply.headers, "retry-after") {
        return Some(Duration::from_secs(secs));
    }
    if header_u64(&reply.headers, "x-ratelimit-remaining") == Some(0) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let reset = header_u64(&reply.headers, "x-ratelimit-reset").unwrap_or(now + 60);
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    let body = String::from_utf8_lossy(&reply.body).to_lowercase();
    if reply.status == 429 || body.contains("secondary rate limit") || body.contains("abuse") {
        // GitHub's advice for secondary limits without headers: wait at least a minute.
        return Some(Duration::from_secs(60));
    }
    None
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}
