//! Process configuration for `guardrail serve`: flags and `GUARDRAIL_*` environment variables, checked
//! once at start-up. Secrets are `SecretString`s from here on, so they never reach a log by accident.
//! GitHub (an App) and GitLab (a bot token) are each optional, but one of them must be configured;
//! one process serves both when both are.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::forge::gitlab::PolicyProject;
use crate::forge::RepoSlug;
use crate::intake::gitlab::WebhookAuth;

/// The flags of `guardrail serve`; every one can also come from the environment.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// The GitHub App's numeric id.
    #[arg(long, env = "GUARDRAIL_APP_ID")]
    pub app_id: Option<String>,
    /// The App's private key (PEM text).
    #[arg(long, env = "GUARDRAIL_PRIVATE_KEY", hide_env_values = true)]
    pub private_key: Option<String>,
    /// A file holding the App's private key (PEM), when GUARDRAIL_PRIVATE_KEY is not set.
    #[arg(long, env = "GUARDRAIL_PRIVATE_KEY_PATH")]
    pub private_key_path: Option<PathBuf>,
    /// Webhook secret; several, comma-separated, while rotating.
    #[arg(long, env = "GUARDRAIL_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// REST API root (GitHub Enterprise Server: https://HOST/api/v3).
    #[arg(long, env = "GUARDRAIL_GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,
    /// GraphQL endpoint (default: derived from the API URL; GHES serves it at /api/graphql).
    #[arg(long, env = "GUARDRAIL_GITHUB_GRAPHQL_URL")]
    pub github_graphql_url: Option<String>,
    /// sqlite://FILE (the default) or postgres://…
    #[arg(long, env = "GUARDRAIL_DATABASE_URL", default_value = "sqlite://guardrail.db")]
    pub database_url: String,
    #[arg(long, env = "GUARDRAIL_LISTEN", default_value = "0.0.0.0:3000")]
    pub listen: String,
    /// GitLab instance root (https://gitlab.com, or a self-managed URL, also under a sub-path).
    #[arg(long, env = "GUARDRAIL_GITLAB_URL")]
    pub gitlab_url: Option<String>,
    /// A GitLab bot user's, project or group access token with `api` scope.
    #[arg(long, env = "GUARDRAIL_GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Option<String>,
    /// The GitLab webhook's secret token; several, comma-separated, while rotating.
    #[arg(long, env = "GUARDRAIL_GITLAB_WEBHOOK_SECRET", hide_env_values = true)]
    pub gitlab_webhook_secret: Option<String>,
    /// GitLab webhook signing tokens (`whsec_…`), comma-separated; when set, every GitLab delivery
    /// must carry a valid `webhook-signature` too.
    #[arg(long, env = "GUARDRAIL_GITLAB_SIGNING_TOKEN", hide_env_values = true)]
    pub gitlab_signing_token: Option<String>,
    /// The organisation's policy repository: [github:]owner/repo[@ref][:path], or
    /// gitlab:group/sub/project[@ref][:path].
    #[arg(long, env = "GUARDRAIL_POLICY_REPO")]
    pub policy_repo: Option<String>,
    /// The name of the check run guardrail posts.
    #[arg(long, env = "GUARDRAIL_CHECK_NAME", default_value = "guardrail")]
    pub check_name: String,
    /// Jobs worked on at the same time.
    #[arg(long, env = "GUARDRAIL_WORKERS", default_value_t = 2)]
    pub workers: usize,
    /// Seconds a worker holds a job before another replica may take it over (its heartbeat extends
    /// it while the job runs).
    #[arg(long, env = "GUARDRAIL_LEASE_SECONDS", default_value_t = 60)]
    pub lease_seconds: u64,
    /// This process's identity in the queue (default: the host name). A process that starts takes
    /// back, at once, the jobs a previous process with the same id held.
    #[arg(long, env = "GUARDRAIL_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Seconds from SIGTERM until jobs still in hand are handed back and the server closes.
    #[arg(long, env = "GUARDRAIL_SHUTDOWN_GRACE_SECONDS", default_value_t = 25)]
    pub shutdown_grace_seconds: u64,
    /// Days deliveries and finished jobs are kept.
    #[arg(long, env = "GUARDRAIL_RETENTION_DAYS", default_value_t = 14)]
    pub retention_days: u64,
    /// Seconds a client has to send a request's headers.
    #[arg(long, env = "GUARDRAIL_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a request's body.
    #[arg(long, env = "GUARDRAIL_BODY_TIMEOUT_SECONDS", default_value_t = 20)]
    pub body_timeout_seconds: u64,
    /// Open connections at most; more wait until one closes.
    #[arg(long, env = "GUARDRAIL_MAX_CONNECTIONS", default_value_t = 256)]
    pub max_connections: usize,
    /// Bytes of request bodies whose signature is not checked yet, over all requests; a request
    /// that would go over gets 503 and nothing is stored.
    #[arg(long, env = "GUARDRAIL_MAX_UNVERIFIED_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_unverified_bytes: usize,
    /// Run ConstraintTemplates' K8sNativeValidation (CEL) code where they have it (false: their Rego).
    #[arg(long, env = "GUARDRAIL_ENABLE_K8S_NATIVE_VALIDATION", default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_k8s_native_validation: bool,
    /// Memory (MiB) each evaluation worker process may use (policy-repository tests run in one). 0: no limit.
    #[arg(long, env = "GUARDRAIL_MEMORY_LIMIT", value_name = "MIB", default_value_t = crate::isolate::DEFAULT_MEMORY_BYTES >> 20)]
    pub memory_limit: u64,
}

/// The organisation's policy repository and where in it the policies are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRepo {
    pub repo: RepoSlug,
    /// A branch, tag or commit; `None` means the default branch.
    pub reference: Option<String>,
    /// Folder inside the repository ("" for the root).
    pub path: String,
}

impl PolicyRepo {
    pub fn parse(text: &str) -> Result<PolicyRepo, String> {
        let (rest, path) = match text.split_once(':') {
            Some((r, p)) => (r, p.trim_matches('/').to_string()),
            None => (text, String::new()),
        };
        let (slug, reference) = match rest.split_once('@') {
            Some((s, r)) if !r.is_empty() => (s, Some(r.to_string())),
            Some(_) => return Err("the part after @ must name a branch, tag or commit".into()),
            None => (rest, None),
        };
        let repo = RepoSlug::parse(slug).ok_or_else(|| format!("`{slug}` is not owner/repo"))?;
        if path.split('/').any(|part| part == "..") {
            return Err("the path must stay inside the repository".into());
        }
        Ok(PolicyRepo { repo, reference, path })
    }
}

/// GitLab: where it is, the bot's token and the webhook's secrets.
#[derive(Clone, Debug)]
pub struct GitLabSettings {
    /// The instance root; `/api/v4` is appended.
    pub url: String,
    pub token: SecretString,
    pub webhook: WebhookAuth,
}

/// Checked configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Whether a GitHub App is configured (`app_id`, `private_key`, `webhook_secrets` are empty when not).
    pub github: bool,
    pub gitlab: Option<GitLabSettings>,
    /// `GUARDRAIL_POLICY_REPO` with the `gitlab:` prefix.
    pub gitlab_policy: Option<PolicyProject>,
    pub app_id: u64,
    pub private_key: SecretString,
    pub webhook_secrets: Vec<SecretString>,
    pub api_url: String,
    pub graphql_url: String,
    pub database_url: String,
    pub listen: SocketAddr,
    pub policy_repo: Option<PolicyRepo>,
    pub check_name: String,
    pub workers: usize,
    pub lease: Duration,
    /// Templates run their CEL code where they have it (Gatekeeper's default).
    pub k8s_native_validation: bool,
    /// How untrusted evaluation is contained (worker processes and their limits).
    pub isolation: crate::isolate::Isolation,
    pub instance_id: String,
    pub shutdown_grace: Duration,
    pub retention: Duration,
    pub limits: ServerLimits,
}

/// How the webhook server defends itself.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_unverified_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(20),
            max_connections: 256,
            max_unverified_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A setting that is missing or wrong; the message names the environment variable.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingsError {
    pub setting: &'static str,
    pub message: String,
}

fn bad(setting: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError { setting, message: message.into() }
}

impl Settings {
    pub fn from_args(args: &ServeArgs) -> Result<Settings, SettingsError> {
        let gitlab = gitlab_settings(args)?;
        let github_given = args.app_id.is_some()
            || args.private_key.is_some()
            || args.private_key_path.is_some()
            || args.webhook_secret.is_some();
        let (app_id, pem, secrets) = if github_given || gitlab.is_none() {
            let (app_id, pem, secrets) = github_settings(args)?;
            (app_id, SecretString::from(pem), secrets)
        } else {
            (0, SecretString::from(String::new()), Vec::new())
        };
        let (policy_repo, gitlab_policy) = match args.policy_repo.as_deref().map(str::trim) {
            Some(text) if text.starts_with("gitlab:") => {
                let project = PolicyProject::parse(text).ok_or_else(|| {
                    bad("GUARDRAIL_POLICY_REPO", "`gitlab:` must be followed by group/project[@ref][:path]")
                })?;
                if gitlab.is_none() {
                    return Err(bad(
                        "GUARDRAIL_POLICY_REPO",
                        "names a GitLab project, but GUARDRAIL_GITLAB_URL is not set",
                    ));
                }
                if project.path.as_deref().is_some_and(|p| p.split('/').any(|part| part == "..")) {
                    return Err(bad("GUARDRAIL_POLICY_REPO", "the path must stay inside the project"));
                }
                (None, Some(project))
            }
            Some(text) if !text.is_empty() => {
                let text = text.strip_prefix("github:").unwrap_or(text);
                (Some(PolicyRepo::parse(text).map_err(|m| bad("GUARDRAIL_POLICY_REPO", m))?), None)
            }
            _ => (None, None),
        };
        let api_url = args.github_api_url.trim_end_matches('/').to_string();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(bad("GUARDRAIL_GITHUB_API_URL", format!("`{api_url}` is not an http(s) URL")));
        }
        let graphql_url = match &args.github_graphql_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => graphql_url_for(&api_url),
        };
        let database_url = args.database_url.clone();
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            return Err(bad("GUARDRAIL_DATABASE_URL", "must start with sqlite: or postgres://"));
        }
        let listen = args
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| bad("GUARDRAIL_LISTEN", format!("`{}` is not an address like 0.0.0.0:3000", args.listen)))?;
        if args.check_name.trim().is_empty() {
            return Err(bad("GUARDRAIL_CHECK_NAME", "must not be empty"));
        }
        Ok(Settings {
            github: app_id != 0,
            gitlab,
            gitlab_policy,
            app_id,
            private_key: pem,
            webhook_secrets: secrets,
            api_url,
            graphql_url,
            database_url,
            listen,
            policy_repo,
            check_name: args.check_name.trim().to_string(),
            workers: args.workers.max(1),
            lease: Duration::from_secs(args.lease_seconds.max(1)),
            k8s_native_validation: args.enable_k8s_native_validation,
            isolation: crate::isolate::Isolation { memory_bytes: args.memory_limit << 20, ..Default::default() },
            instance_id: match args.instance_id.as_deref().map(str::trim) {
                Some(id) if !id.is_empty() => {
                    if id.contains('/') {
                        return Err(bad("GUARDRAIL_INSTANCE_ID", "must not contain `/`"));
                    }
                    id.to_string()
                }
                _ => default_instance_id(),
            },
            shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
            retention: Duration::from_secs(args.retention_days.max(1) * 86_400),
            limits: ServerLimits {
                header_timeout: Duration::from_secs(args.header_timeout_seconds.max(1)),
                body_timeout: Duration::from_secs(args.body_timeout_seconds.max(1)),
                max_connections: args.max_connections.max(1),
                max_unverified_bytes: args.max_unverified_bytes.max(1),
            },
        })
    }
}

/// The GitLab settings, all or nothing: a URL needs a token and a webhook secret, and either of those
/// needs a URL.
fn gitlab_settings(args: &ServeArgs) -> Result<Option<GitLabSettings>, SettingsError> {
    let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let (url, token, secret) = (given(&args.gitlab_url), given(&args.gitlab_token), given(&args.gitlab_webhook_secret));
    let Some(url) = url else {
        if token.is_some() {
            return Err(bad("GUARDRAIL_GITLAB_URL", "is required when GUARDRAIL_GITLAB_TOKEN is set"));
        }
        if secret.is_some() {
            return Err(bad("GUARDRAIL_GITLAB_URL", "is required when GUARDRAIL_GITLAB_WEBHOOK_SECRET is set"));
        }
        return Ok(None);
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(bad("GUARDRAIL_GITLAB_URL", format!("`{url}` is not an http(s) URL")));
    }
    let token = token.ok_or_else(|| bad("GUARDRAIL_GITLAB_TOKEN", "is required with GUARDRAIL_GITLAB_URL"))?;
    let tokens = WebhookAuth::split(&secret.unwrap_or_default());
    if tokens.is_empty() {
        return Err(bad("GUARDRAIL_GITLAB_WEBHOOK_SECRET", "is required with GUARDRAIL_GITLAB_URL"));
    }
    let signing_keys = WebhookAuth::split(args.gitlab_signing_token.as_deref().unwrap_or(""));
    Ok(Some(GitLabSettings {
        url: url.trim_end_matches('/').to_string(),
        token: SecretString::from(token),
        webhook: WebhookAuth { tokens, signing_keys },
    }))
}

/// The GitHub App's id, private key (PEM) and webhook secrets.
fn github_settings(args: &ServeArgs) -> Result<(u64, String, Vec<SecretString>), SettingsError> {
    let app_id = args.app_id.as_deref().ok_or_else(|| bad("GUARDRAIL_APP_ID", "is required"))?;
    let app_id =
        app_id.trim().parse::<u64>().map_err(|_| bad("GUARDRAIL_APP_ID", format!("`{app_id}` is not a number")))?;
    let pem = match (&args.private_key, &args.private_key_path) {
        (Some(pem), _) => pem.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| bad("GUARDRAIL_PRIVATE_KEY_PATH", format!("cannot read {}: {e}", path.display())))?,
        (None, None) => return Err(bad("GUARDRAIL_PRIVATE_KEY", "is required (or GUARDRAIL_PRIVATE_KEY_PATH)")),
    };
    if jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).is_err() {
        return Err(bad("GUARDRAIL_PRIVATE_KEY", "is not an RSA private key in PEM format"));
    }
    let secrets: Vec<SecretString> = args
        .webhook_secret
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.to_string()))
        .collect();
    if secrets.is_empty() {
        return Err(bad("GUARDRAIL_WEBHOOK_SECRET", "is required"));
    }
    Ok((app_id, pem, secrets))
}

/// github.com serves GraphQL at /graphql; GitHub Enterprise Server at /api/graphql beside /api/v3.
pub fn graphql_url_for(api_url: &str) -> String {
    match api_url.strip_suffix("/api/v3") {
        Some(host) => format!("{host}/api/graphql"),
        None => format!("{api_url}/graphql"),
    }
}

/// The host name (a pod's name; stable across a container restart), else a random id.
fn default_instance_id() -> String {
    match std::env::var("HOSTNAME") {
        Ok(h) if !h.trim().is_empty() && !h.contains('/') => h.trim().to_string(),
        _ => {
            let mut bytes = [0u8; 6];
            let _ = getrandom::fill(&mut bytes);
            format!("guardrail-{}", hex::encode(bytes))
        }
    }
}
