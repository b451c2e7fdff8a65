//! The real `guardrail serve` process: configured only by environment variables, it takes a webhook,
//! its own workers check the pull request, and SIGTERM stops it cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::fake_github::{sign, FakeGitHub};

#[tokio::test]
async fn guardrail_serve_checks_a_pull_request_and_stops_on_sigterm() {
    let gh = FakeGitHub::start().await;
    gh.add_repo(REPO, INSTALLATION);
    let root = gh.branch_head(REPO, "main");
    let head = gh.commit(REPO, Some(&root), &[("deploy/web.yaml", Some(PRIVILEGED))]);
    gh.open_pull(REPO, 1, &root, &head, None);
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let key_path = dir.path().join("app.pem");
    std::fs::write(&key_path, FakeGitHub::private_key_pem()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guardrail"));
    for (k, _) in std::env::vars() {
        if k.starts_with("GUARDRAIL_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .arg("serve")
        .env("GUARDRAIL_APP_ID", FakeGitHub::APP_ID.to_string())
        .env("GUARDRAIL_PRIVATE_KEY_PATH", &key_path)
        .env("GUARDRAIL_WEBHOOK_SECRET", SECRET)
        .env("GUARDRAIL_GITHUB_API_URL", gh.api_url())
        .env("GUARDRAIL_GITHUB_GRAPHQL_URL", gh.graphql_url())
        .env("GUARDRAIL_DATABASE_URL", format!("sqlite://{}", dir.path().join("g.db").display()))
        .env("GUARDRAIL_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start guardrail serve");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/readyz")).send().await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(started.elapsed() < Duration::from_secs(30), "guardrail serve did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = serde_json::to_vec(&gh.pull_request("opened", REPO, 1)).unwrap();
    let reply = http
        .post(format!("{base}/webhooks/github"))
        .header("X-GitHub-Event", "pull_request")
        .header("X-GitHub-Delivery", "d-1")
        .header("X-Hub-Signature-256", sign(SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 202);
    while gh.check_runs(REPO).first().map(|r| r.status.as_str() != "completed").unwrap_or(true) {
        assert!(started.elapsed() < Duration::from_secs(60), "no completed check run: {:?}", gh.check_runs(REPO));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gh.check_runs(REPO)[0].conclusion.as_deref(), Some("failure"));
    assert_eq!(gh.review_comments(REPO, 1).len(), 2);
    assert!(gh.problems().is_empty(), "{:?}", gh.problems());
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
