//! `guardrail setup`: registers the GitHub App with GitHub's manifest flow. It serves a local page
//! whose form posts `app.yml` (as JSON, with this deployment's webhook URL) to GitHub; GitHub creates
//! the App and sends the browser back with a one-time `code`, which is exchanged through
//! `POST /app-manifests/{code}/conversions` for the App's id, private key and webhook secret. Those are
//! written where `serve` reads them (files named as the deployment's Secret keys, and an env file
//! for `GUARDRAIL_*`), readable by the owner only. The key and the secret are never printed.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::SetupArgs;

/// What GitHub's conversion returns, as far as guardrail needs it.
#[derive(Debug, serde::Deserialize)]
struct Conversion {
    id: u64,
    slug: Option<String>,
    #[serde(default)]
    html_url: String,
    pem: String,
    webhook_secret: Option<String>,
}

/// The files written, and what to tell the user about them.
#[derive(Debug)]
struct Written {
    id: u64,
    slug: String,
    html_url: String,
    dir: PathBuf,
}

struct Flow {
    args: SetupArgs,
    manifest: Value,
    state: String,
    /// The first completed attempt (success or failure) ends the command.
    done: Mutex<Option<tokio::sync::oneshot::Sender<Result<Written, String>>>>,
}

pub fn run(args: &SetupArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(setup(args.clone())) {
        Ok(w) => {
            let dir = w.dir.display();
            println!("Created the GitHub App {} (id {}).", w.slug, w.id);
            println!("Wrote its credentials to {dir}/ (app-id, private-key, webhook-secret, guardrail.env), readable by you only.");
            println!();
            println!("Next:");
            println!(
                "  1. Install the App on your organisation: {}/installations/new",
                w.html_url.trim_end_matches('/')
            );
            println!("  2. Run it here:      set -a; . {dir}/guardrail.env; set +a; guardrail serve");
            println!("     or on Kubernetes: kubectl -n guardrail create secret generic guardrail \\");
            println!(
                "                         --from-file=app-id={dir}/app-id --from-file=private-key={dir}/private-key \\"
            );
            println!("                         --from-file=webhook-secret={dir}/webhook-secret");
            println!("     (see docs/operating.md)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn setup(args: SetupArgs) -> Result<Written, String> {
    if !(args.webhook_url.starts_with("https://") || args.webhook_url.starts_with("http://")) {
        return Err(format!("--webhook-url {}: not an http(s) URL", args.webhook_url));
    }
    if args.out.join("private-key").exists() {
        return Err(format!(
            "{} already holds an App's private key: move it, or choose another --out",
            args.out.display()
        ));
    }
    let text =
        std::fs::read_to_string(&args.manifest).map_err(|e| format!("--manifest {}: {e}", args.manifest.display()))?;
    let manifest: Value =
        serde_saphyr::from_str(&text).map_err(|e| format!("--manifest {}: {e}", args.manifest.display()))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("--listen {}: cannot listen: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let manifest = app_manifest(manifest, &args, addr)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let flow = Arc::new(Flow { args: args.clone(), manifest, state: random_hex(20)?, done: Mutex::new(Some(tx)) });
    let app = Router::new().route("/", get(page)).route("/callback", get(callback)).with_state(flow.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
    });
    println!("Open http://{addr}/ in your browser to register the GitHub App `{}` on {}.", args.name, args.github_url);
    let _ = std::io::stdout().flush();
    let result = match tokio::time::timeout(Duration::from_secs(args.timeout), rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err("the setup page stopped".into()),
        Err(_) => {
            Err(format!("GitHub did not send the browser back within {} s; run guardrail setup again", args.timeout))
        }
    };
    // Let the last page reach the browser before the server goes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    result
}

/// `app.yml` with this deployment's URLs: the webhook URL, and the local page GitHub sends the
/// browser back to.
fn app_manifest(mut manifest: Value, args: &SetupArgs, addr: SocketAddr) -> Result<Value, String> {
    let Some(object) = manifest.as_object_mut() else {
        return Err(format!("--manifest {}: not a GitHub App manifest (a mapping)", args.manifest.display()));
    };
    object.insert("name".into(), args.name.clone().into());
    let hook = object.entry("hook_attributes").or_insert_with(|| serde_json::json!({}));
    if let Some(hook) = hook.as_object_mut() {
        hook.insert("url".into(), args.webhook_url.clone().into());
        hook.entry("active").or_insert(true.into());
    }
    object.insert("redirect_url".into(), format!("http://{addr}/callback").into());
    if !object.contains_key("url") {
        object.insert("url".into(), args.webhook_url.trim_end_matches("/webhooks/github").to_string().into());
    }
    Ok(manifest)
}

async fn page(State(flow): State<Arc<Flow>>) -> Html<String> {
    let base = flow.args.github_url.trim_end_matches('/');
    let action = match &flow.args.org {
        Some(org) => format!("{base}/organizations/{org}/settings/apps/new?state={}", flow.state),
        None => format!("{base}/settings/apps/new?state={}", flow.state),
    };
    let manifest = serde_json::to_string(&flow.manifest).expect("a manifest serializes");
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Register guardrail</title></head><body>\n\
         <h1>Register the GitHub App {name}</h1>\n\
         <p>GitHub will show the App's settings (permissions, events, webhook URL <code>{hook}</code>) and create it \
         when you confirm. It then sends you back here, and guardrail writes the App's credentials to <code>{out}</code>.</p>\n\
         <form action=\"{action}\" method=\"post\">\n\
         <input type=\"hidden\" name=\"manifest\" value=\"{manifest}\">\n\
         <button type=\"submit\">Create the GitHub App on GitHub</button>\n\
         </form>\n</body></html>\n",
        name = html(&flow.args.name),
        hook = html(&flow.args.webhook_url),
        out = html(&flow.args.out.display().to_string()),
        action = html(&action),
        manifest = html(&manifest),
    ))
}

async fn callback(
    State(flow): State<Arc<Flow>>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, Html<String>) {
    let given = query.get("state").map(String::as_str).unwrap_or("");
    if !constant_time_eq(given.as_bytes(), flow.state.as_bytes()) {
        // Not the browser we sent: ignore it and keep waiting for the real one.
        return (StatusCode::BAD_REQUEST, Html("<p>This link is not from the setup in progress.</p>".into()));
    }
    let Some(code) = query
        .get("code")
        .filter(|c| !c.is_empty() && c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    else {
        return (StatusCode::BAD_REQUEST, Html("<p>GitHub sent no code.</p>".into()));
    };
    let Some(done) = flow.done.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return (StatusCode::CONFLICT, Html("<p>This setup has finished already.</p>".into()));
    };
    let result = match convert(&flow.args, code).await {
        Ok(c) => write(&flow.args.out, &flow.args, c),
        Err(e) => Err(e),
    };
    let page = match &result {
        Ok(w) => format!(
            "<p>The GitHub App <b>{}</b> was created, and its credentials are in <code>{}</code>.</p>\
             <p><a href=\"{}/installations/new\">Install it</a> on your organisation next.</p>",
            html(&w.slug),
            html(&w.dir.display().to_string()),
            html(w.html_url.trim_end_matches('/'))
        ),
        Err(e) => format!("<p>Setup failed: {}</p>", html(e)),
    };
    let status = if result.is_ok() { StatusCode::OK } else { StatusCode::BAD_GATEWAY };
    let _ = done.send(result);
    (status, Html(page))
}

/// `POST /app-manifests/{code}/conversions`: no authentication, the code is the credential.
async fn convert(args: &SetupArgs, code: &str) -> Result<Conversion, String> {
    let url = format!("{}/app-manifests/{code}/conversions", args.github_api_url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("guardrail/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(&url)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .send()
        .await
        .map_err(|e| format!("GitHub could not be reached to finish the registration: {e}"))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}"));
        return Err(format!(
            "GitHub refused to hand over the App's credentials ({status}: {message}); a code works once and for one hour: run guardrail setup again"
        ));
    }
    serde_json::from_str(&body)
        .map_err(|e| format!("GitHub's answer to the conversion is not what guardrail expects: {e}"))
}

fn write(dir: &Path, args: &SetupArgs, c: Conversion) -> Result<Written, String> {
    let secret = c.webhook_secret.clone().filter(|s| !s.is_empty()).ok_or("GitHub returned no webhook secret")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let absolute = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let key_path = absolute.join("private-key");
    private_file(&absolute.join("app-id"), &format!("{}\n", c.id))?;
    private_file(&key_path, &c.pem)?;
    private_file(&absolute.join("webhook-secret"), &secret)?;
    let mut env = format!(
        "# The GitHub App {slug}, written by guardrail setup. Load it before guardrail serve:\n\
         #   set -a; . {env_file}; set +a\n\
         GUARDRAIL_APP_ID={id}\n\
         GUARDRAIL_PRIVATE_KEY_PATH={key}\n\
         GUARDRAIL_WEBHOOK_SECRET={secret}\n",
        slug = c.slug.as_deref().unwrap_or(""),
        env_file = absolute.join("guardrail.env").display(),
        id = c.id,
        key = shell_quote(&key_path.display().to_string()),
        secret = shell_quote(&secret),
    );
    if args.github_api_url.trim_end_matches('/') != "https://api.github.com" {
        env.push_str(&format!("GUARDRAIL_GITHUB_API_URL={}\n", shell_quote(&args.github_api_url)));
    }
    private_file(&absolute.join("guardrail.env"), &env)?;
    Ok(Written {
        id: c.id,
        slug: c.slug.unwrap_or_else(|| args.name.clone()),
        html_url: c.html_url,
        dir: dir.to_path_buf(),
    })
}

/// A new file only its owner can read.
fn private_file(path: &Path, text: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn shell_quote(text: &str) -> String {
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:".contains(c)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| format!("no randomness for the setup's state: {e}"))?;
    Ok(hex::encode(buf))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
