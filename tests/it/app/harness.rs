//! Builds a guardrail App against a fresh fake GitHub.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use guardrail::forge::github::CallPolicy;
use guardrail::jobs::JobRetry;
use guardrail::service::Service;
use guardrail::settings::{ServeArgs, Settings};
use serde_json::Value;

use crate::fake_github::{sign, FakeGitHub};

pub const SECRET: &str = "It's a Secret to Everybody";
pub const REPO: &str = "acme/shop";
pub const INSTALLATION: u64 = 77;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    serve: ServeArgs,
}

pub struct Harness {
    pub gh: FakeGitHub,
    pub service: Service,
    pub url: String,
    /// Holds the SQLite file for the harness's lifetime.
    pub _db: tempfile::TempDir,
    pub database_url: String,
    next_delivery: AtomicU64,
    http: reqwest::Client,
    extra_args: Vec<String>,
    calls: CallPolicy,
    retry: JobRetry,
}

/// Quick retries: the fake answers in microseconds and tests must not sleep for seconds.
pub fn call_policy() -> CallPolicy {
    CallPolicy {
        attempts: 3,
        backoff: Duration::from_millis(10),
        max_inline_wait: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
    }
}

pub fn job_retry() -> JobRetry {
    // No slow attempts after the quick ones: a story that exhausts its retries ends there.
    JobRetry {
        max_attempts: 3,
        base: Duration::from_millis(20),
        cap: Duration::from_millis(200),
        later_attempts: 0,
        ..JobRetry::default()
    }
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_args(&[]).await
    }

    /// `args` are extra `guardrail serve` flags, e.g. `["--policy-repo", "acme/policies"]`.
    pub async fn with_args(args: &[&str]) -> Harness {
        Harness::with_calls(args, call_policy()).await
    }

    /// `with_args` with the GitHub client's own call policy (e.g. a short timeout).
    pub async fn with_calls(args: &[&str], calls: CallPolicy) -> Harness {
        Harness::with_retry(args, calls, job_retry()).await
    }

    /// `with_calls` with the queue's own retry policy (e.g. slow attempts after the quick ones).
    pub async fn with_retry(args: &[&str], calls: CallPolicy, retry: JobRetry) -> Harness {
        let gh = FakeGitHub::start().await;
        gh.add_repo(REPO, INSTALLATION);
        let db = tempfile::tempdir().expect("tempdir");
        let database_url = format!("sqlite://{}", db.path().join("guardrail.db").display());
        let extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let service = build_service(&gh, &database_url, &extra_args, &calls, &retry).await;
        let url = serve(&service).await;
        Harness {
            gh,
            service,
            url,
            _db: db,
            database_url,
            next_delivery: AtomicU64::new(1),
            http: reqwest::Client::new(),
            extra_args,
            calls,
            retry,
        }
    }

    /// Another replica: its own Service (workers, caches, metrics) on the same database and GitHub.
    pub async fn replica(&self) -> Service {
        build_service(&self.gh, &self.database_url, &self.extra_args, &self.calls, &self.retry).await
    }

    /// Another replica with its own instance id (pass no `--instance-id` to the harness then).
    pub async fn replica_as(&self, instance: &str) -> Service {
        let mut args = self.extra_args.clone();
        args.extend(["--instance-id".to_string(), instance.to_string()]);
        build_service(&self.gh, &self.database_url, &args, &self.calls, &self.retry).await
    }

    /// A new process on the same database and fake GitHub (a restart).
    pub async fn restart(&mut self) {
        self.service = build_service(&self.gh, &self.database_url, &self.extra_args, &self.calls, &self.retry).await;
        self.url = serve(&self.service).await;
    }

    /// Delivers a signed webhook with a fresh delivery id; returns the status and JSON reply.
    pub async fn deliver(&self, event: &str, payload: &Value) -> (u16, Value) {
        let id = format!("delivery-{}", self.next_delivery.fetch_add(1, Ordering::SeqCst));
        self.deliver_as(event, &id, payload, SECRET).await
    }

    pub async fn deliver_as(&self, event: &str, delivery: &str, payload: &Value, secret: &str) -> (u16, Value) {
        let body = serde_json::to_vec(payload).expect("json");
        let response = self
            .http
            .post(format!("{}/webhooks/github", self.url))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", sign(secret, &body))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("deliver");
        let status = response.status().as_u16();
        let json = response.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.url)).send().await.expect("get");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    /// Runs the workers until nothing is queued or running.
    pub async fn drain(&self) -> usize {
        self.drain_within(Duration::from_secs(60)).await
    }

    /// `drain` with a longer bound for big pull requests on a busy machine (the bound catches hangs,
    /// it is not a speed target).
    pub async fn drain_within(&self, limit: Duration) -> usize {
        tokio::time::timeout(limit, self.service.run_until_idle())
            .await
            .unwrap_or_else(|_| panic!("the queue did not drain within {limit:?}"))
            .expect("queue works")
    }

    /// A pull request on REPO from `base` files to `head` files; returns (base sha, head sha).
    pub fn pull(&self, number: u64, base: &[(&str, &str)], head: &[(&str, Option<&str>)]) -> (String, String) {
        let root = self.gh.branch_head(REPO, "main");
        let base_changes: Vec<(&str, Option<&str>)> = base.iter().map(|(p, t)| (*p, Some(*t))).collect();
        let base_sha = self.gh.commit(REPO, Some(&root), &base_changes);
        self.gh.set_branch(REPO, "main", &base_sha);
        let head_sha = self.gh.commit(REPO, Some(&base_sha), head);
        self.gh.open_pull(REPO, number, &base_sha, &head_sha, None);
        (base_sha, head_sha)
    }

    /// The story's end: GitHub saw nothing it would refuse, and no work is left behind.
    pub async fn finish(&self) {
        let problems = self.gh.problems();
        assert!(problems.is_empty(), "the fake GitHub recorded problems: {problems:#?}");
        let jobs = self.service.app.queue.jobs().await.expect("jobs");
        let left: Vec<_> = jobs.iter().filter(|(_, state, _, _)| state != "done" && state != "superseded").collect();
        assert!(left.is_empty(), "jobs left behind: {left:#?}");
    }
}

async fn build_service(
    gh: &FakeGitHub,
    database_url: &str,
    extra: &[String],
    calls: &CallPolicy,
    retry: &JobRetry,
) -> Service {
    let mut argv = vec![
        "guardrail".to_string(),
        "--app-id".into(),
        FakeGitHub::APP_ID.to_string(),
        format!("--private-key={}", FakeGitHub::private_key_pem()),
        "--webhook-secret".into(),
        format!("old-secret,{SECRET}"),
        "--github-api-url".into(),
        gh.api_url(),
        "--github-graphql-url".into(),
        gh.graphql_url(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--lease-seconds".into(),
        "2".into(),
    ];
    if !extra.iter().any(|a| a == "--database-url") {
        argv.extend(["--database-url".to_string(), database_url.to_string()]);
    }
    argv.extend(extra.iter().cloned());
    let args = Args::try_parse_from(argv).unwrap_or_else(|e| panic!("serve flags do not parse: {}", e.kind()));
    let mut settings = Settings::from_args(&args.serve).expect("settings are valid");
    // Workers are the guardrail binary (this process is the test harness).
    settings.isolation.exe = env!("CARGO_BIN_EXE_guardrail").into();
    Service::build(&settings, calls.clone(), retry.clone()).await.expect("service builds")
}

/// PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth); each run uses its own database.
pub async fn postgres_url() -> String {
    let admin = "postgres://postgres@127.0.0.1:5432/test";
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(admin).await.expect("PostgreSQL runs at 127.0.0.1:5432 (see .ci/run)");
    let name = format!("guardrail_it_{}_{}", std::process::id(), guardrail::queue::now_ms());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.expect("create database");
    format!("postgres://postgres@127.0.0.1:5432/{name}")
}

/// Serves `service`'s router on a free local port; returns its base URL.
pub async fn serve(service: &Service) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = service.router();
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    format!("http://{addr}")
}

/// Runs worker `n` of `service` until the queue is idle; returns how many jobs it ran. Two of these
/// joined are two workers of one process taking jobs at the same time (`drain` runs one).
pub async fn run_worker(service: &Service, n: usize) -> usize {
    let (app, worker) = (service.app.clone(), service.worker(n));
    worker.run_until_idle(move |job| guardrail::jobs::perform(app.clone(), job)).await.expect("queue works")
}

/// A Deployment with a privileged second container (line 22) and an added capability (line 24).
pub const PRIVILEGED: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: gcr.io/corp/pause:3.9
          resources:
            limits: {cpu: 100m, memory: 64Mi}
            requests: {cpu: 100m, memory: 64Mi}
        - name: sidecar
          image: gcr.io/corp/pause:3.9
          securityContext:
            privileged: true
            capabilities:
              add: [NET_ADMIN]
          resources:
            limits: {cpu: 100m, memory: 64Mi}
            requests: {cpu: 100m, memory: 64Mi}
";

/// The same Deployment without the privileged sidecar.
pub const CLEAN: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: gcr.io/corp/pause:3.9
          resources:
            limits: {cpu: 100m, memory: 64Mi}
            requests: {cpu: 100m, memory: 64Mi}
";
