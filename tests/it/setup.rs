//! `guardrail setup` against the fake GitHub: the page it serves posts `app.yml` to GitHub's form,
//! GitHub creates the App and sends the browser back with a code, setup exchanges it through
//! `POST /app-manifests/{code}/conversions` and writes the App id, key and webhook secret where
//! `serve` reads them, readable by the owner only, and never prints the key or the secret.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use clap::Parser;

use crate::fake_github::FakeGitHub;

#[derive(Parser)]
struct Serve {
    #[command(flatten)]
    args: guardrail::settings::ServeArgs,
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("{start} not in {text}")) + start.len();
    let to = text[from..].find(end).unwrap() + from;
    &text[from..to]
}

fn html_unescape(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_registers_the_app_and_writes_its_credentials_where_serve_reads_them() {
    let github = FakeGitHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("creds");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/app.yml");
    let setup = |out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_guardrail"))
            .args(["setup", "--webhook-url", "https://guardrail.example.com/webhooks/github", "--org", "acme"])
            .args(["--github-url", &github.api_url(), "--github-api-url", &github.api_url()])
            .args(["--listen", "127.0.0.1:0", "--timeout", "60", "--manifest", manifest])
            .arg("--out")
            .arg(out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start guardrail setup")
    };
    let mut child = setup(&out);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut child_stderr = child.stderr.take().unwrap();
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let url = format!("http://{}/", between(&first, "http://", "/"));

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client.get(&url).send().await.unwrap().text().await.unwrap();
    let action = html_unescape(between(&page, "action=\"", "\""));
    let form_manifest = html_unescape(between(&page, "name=\"manifest\" value=\"", "\""));
    assert!(
        action.starts_with(&format!("{}/organizations/acme/settings/apps/new?state=", github.api_url())),
        "{action}"
    );
    let sent: serde_json::Value = serde_json::from_str(&form_manifest).unwrap();
    assert_eq!(sent["hook_attributes"]["url"], "https://guardrail.example.com/webhooks/github");
    assert_eq!(sent["redirect_url"], format!("{url}callback"));
    assert_eq!(sent["default_permissions"]["checks"], "write", "the permissions of app.yml");

    // A callback that is not from this setup (another state) is refused, and nothing is exchanged.
    let forged = client.get(format!("{url}callback?code=abc&state=forged")).send().await.unwrap();
    assert_eq!(forged.status(), 400);

    // The browser submits the form to GitHub, which creates the App and sends the browser back.
    let created = client.post(&action).form(&[("manifest", form_manifest.as_str())]).send().await.unwrap();
    assert_eq!(created.status(), 302);
    let back = created.headers()["location"].to_str().unwrap().to_string();
    assert!(back.starts_with(&format!("{url}callback?code=")), "{back}");
    let done = client.get(&back).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("was created"));

    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{first}{rest}");

    // Where serve reads them, readable by the owner only.
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let key = read("private-key");
    let secret = read("webhook-secret");
    assert_eq!(key, FakeGitHub::private_key_pem());
    assert!(secret.starts_with("whsec"));
    let app_id = read("app-id").trim().to_string();
    #[cfg(unix)]
    for name in ["private-key", "webhook-secret", "app-id", "guardrail.env"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    let env: std::collections::HashMap<String, String> = read("guardrail.env")
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.trim_matches('\'').to_string())
        })
        .collect();
    assert_eq!(env["GUARDRAIL_APP_ID"], app_id);
    assert_eq!(env["GUARDRAIL_WEBHOOK_SECRET"], secret);
    assert_eq!(env["GUARDRAIL_GITHUB_API_URL"], github.api_url());
    let serve = Serve::try_parse_from([
        "serve",
        "--app-id",
        &env["GUARDRAIL_APP_ID"],
        "--private-key-path",
        &env["GUARDRAIL_PRIVATE_KEY_PATH"],
        "--webhook-secret",
        &env["GUARDRAIL_WEBHOOK_SECRET"],
        "--database-url",
        "sqlite://unused.db",
    ])
    .unwrap();
    let settings = guardrail::settings::Settings::from_args(&serve.args).expect("serve accepts what setup wrote");
    assert_eq!(settings.app_id.to_string(), app_id);

    // Never printed: neither the key nor the secret.
    let mut stderr = String::new();
    child_stderr.read_to_string(&mut stderr).unwrap();
    let printed = format!("{first}{rest}{stderr}");
    assert!(!printed.contains("PRIVATE KEY") && !printed.contains(&secret), "{printed}");
    assert!(printed.contains("/installations/new") && printed.contains("guardrail.env"), "{printed}");

    // GitHub holds one App from the manifest, its code exchanged once.
    let apps = github.registered_apps();
    assert_eq!(apps.len(), 1);
    let (registered, owner, converted) = &apps[0];
    assert_eq!(registered["hook_attributes"]["url"], "https://guardrail.example.com/webhooks/github");
    assert_eq!((owner.as_str(), *converted), ("acme", true));
    let conversions: Vec<_> = github.calls().into_iter().filter(|c| c.kind == "apps/create-from-manifest").collect();
    assert_eq!(conversions.len(), 1);
    assert_eq!(conversions[0].status, 201);
    assert!(github.problems().is_empty(), "{:?}", github.problems());

    // A second setup into the same folder refuses to overwrite the credentials.
    let again = setup(&out).wait_with_output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds an App's private key"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_github_refuses_is_an_error_and_nothing_is_written() {
    let github = FakeGitHub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("creds");
    let mut child = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(["setup", "--webhook-url", "https://guardrail.example.com/webhooks/github"])
        .args(["--github-url", &github.api_url(), "--github-api-url", &github.api_url()])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--timeout",
            "60",
            "--manifest",
            concat!(env!("CARGO_MANIFEST_DIR"), "/app.yml"),
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let url = format!("http://{}/", between(&first, "http://", "/"));
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let state = between(&page, "state=", "\"").to_string();
    // A code GitHub never issued (or one already used, or expired).
    let back = reqwest::get(format!("{url}callback?code=v1deadbeef&state={state}")).await.unwrap();
    assert_eq!(back.status(), 502);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GitHub refused to hand over the App's credentials (404 Not Found"), "{stderr}");
    assert!(!out.join("private-key").exists());
    let conversions = github.calls().into_iter().filter(|c| c.kind == "apps/create-from-manifest").count();
    assert_eq!(conversions, 1);
}
