//! The GitLab side of `guardrail serve` against a fresh fake GitLab, on SQLite or PostgreSQL, with
//! replicas on the same database.

use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use guardrail::service::Service;
use guardrail::settings::{ServeArgs, Settings};
use serde_json::Value;

use crate::app::{call_policy, job_retry, serve};
use crate::fake_gitlab::{FakeGitLab, TOKEN};

pub const SECRET: &str = "gitlab-hook-secret";

#[derive(Parser)]
pub struct Args {
    #[command(flatten)]
    pub serve: ServeArgs,
}

pub struct GitLabHarness {
    pub fake: FakeGitLab,
    pub service: Service,
    pub url: String,
    _db: tempfile::TempDir,
    next: AtomicU64,
    http: reqwest::Client,
    /// The `guardrail serve` command line, for replicas.
    argv: Vec<String>,
    retry: guardrail::jobs::JobRetry,
}

/// `guardrail serve` flags for GitLab only (no GitHub App settings at all), plus `extra`.
pub fn gitlab_args(fake: &FakeGitLab, extra: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        "--gitlab-url".into(),
        fake.base_url(),
        "--gitlab-token".into(),
        TOKEN.into(),
        "--gitlab-webhook-secret".into(),
        format!("rotated-out, {SECRET}"),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv
}

impl GitLabHarness {
    pub async fn new(extra: &[&str]) -> GitLabHarness {
        Self::with_retry(extra, job_retry()).await
    }

    pub async fn with_retry(extra: &[&str], retry: guardrail::jobs::JobRetry) -> GitLabHarness {
        Self::build(None, extra, retry).await
    }

    /// On the PostgreSQL database `database` when given (`app::postgres_url`), else on a SQLite file.
    pub async fn on(database: Option<String>, extra: &[&str]) -> GitLabHarness {
        Self::build(database, extra, job_retry()).await
    }

    async fn build(database: Option<String>, extra: &[&str], retry: guardrail::jobs::JobRetry) -> GitLabHarness {
        let fake = FakeGitLab::start().await;
        let db = tempfile::tempdir().expect("tempdir");
        let database = database.unwrap_or_else(|| format!("sqlite://{}", db.path().join("guardrail.db").display()));
        let mut argv = vec!["guardrail".to_string()];
        argv.extend(gitlab_args(&fake, extra));
        argv.extend([
            "--database-url".to_string(),
            database,
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--lease-seconds".into(),
            "2".into(),
        ]);
        let service = build_service(&argv, &retry).await;
        let url = serve(&service).await;
        let (next, http) = (AtomicU64::new(1), reqwest::Client::new());
        GitLabHarness { fake, service, url, _db: db, next, http, argv, retry }
    }

    /// Another replica: its own Service (workers, GitLab client with its own rate-limit state, caches)
    /// on the same database and fake GitLab.
    pub async fn replica(&self) -> Service {
        build_service(&self.argv, &self.retry).await
    }

    /// Delivers a hook with a fresh `Idempotency-Key`.
    pub async fn deliver(&self, event: &str, body: &[u8]) -> (u16, Value) {
        let key = format!("idem-{}", self.next.fetch_add(1, Ordering::SeqCst));
        deliver(&self.http, &self.url, event, &key, body, SECRET).await
    }

    pub async fn deliver_as(&self, event: &str, key: &str, body: &[u8], token: &str) -> (u16, Value) {
        deliver(&self.http, &self.url, event, key, body, token).await
    }

    pub async fn drain(&self) -> usize {
        tokio::time::timeout(std::time::Duration::from_secs(60), self.service.run_until_idle())
            .await
            .expect("the queue drains")
            .expect("queue works")
    }

    /// The story's end: nothing GitLab would refuse or the fake does not know, no job left behind.
    pub async fn finish(&self) {
        assert_eq!(self.fake.problems(), Vec::<String>::new(), "calls: {:#?}", self.fake.calls());
        // No write GitLab refused (an invalid position or body, a status transition it forbids).
        let refused: Vec<_> =
            self.fake.calls().into_iter().filter(|c| c.0 != "GET" && (400..500).contains(&c.2) && c.2 != 429).collect();
        assert!(refused.is_empty(), "GitLab refused: {refused:#?}");
        let jobs = self.service.app.queue.jobs().await.expect("jobs");
        let left: Vec<_> = jobs.iter().filter(|(_, state, _, _)| state != "done" && state != "superseded").collect();
        assert!(left.is_empty(), "jobs left behind: {left:#?}");
    }
}

async fn build_service(argv: &[String], retry: &guardrail::jobs::JobRetry) -> Service {
    let args = Args::try_parse_from(argv).unwrap_or_else(|e| panic!("serve flags do not parse: {e}"));
    let mut settings = Settings::from_args(&args.serve).expect("GitLab settings alone are enough");
    assert!(!settings.github && settings.gitlab.is_some());
    settings.isolation.exe = env!("CARGO_BIN_EXE_guardrail").into();
    Service::build(&settings, call_policy(), retry.clone()).await.expect("service builds")
}

pub async fn deliver(
    http: &reqwest::Client,
    url: &str,
    event: &str,
    key: &str,
    body: &[u8],
    token: &str,
) -> (u16, Value) {
    let response = http
        .post(format!("{url}/webhooks/gitlab"))
        .header("X-Gitlab-Event", event)
        .header("X-Gitlab-Token", token)
        .header("Idempotency-Key", key)
        .header("X-Gitlab-Event-UUID", format!("uuid-{key}"))
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("deliver");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
