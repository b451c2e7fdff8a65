//! kill -9 at random moments: the real `guardrail serve` process (SQLite, then PostgreSQL) checks
//! pull requests against the fake GitHub and is killed with SIGKILL at seeded random moments, new
//! heads are pushed while it is down, and it is restarted with the same instance id. At the end every
//! final head has exactly one completed check run, no run is left in progress, no annotation or
//! comment is there twice, and the last restart redoes the job its previous life held well inside
//! the 60 s lease (the instance id, not the lease running out, brings it back).
//! The seed is printed; `GUARDRAIL_SOAK_SEED=N` replays a run's kill moments.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use guardrail::queue::Queue;

use super::*;
use crate::fake_github::{sign, FakeGitHub};

const PULLS: u64 = 6;
const KILLS: usize = 8;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

struct Serve {
    gh: FakeGitHub,
    dir: tempfile::TempDir,
    database_url: String,
    http: reqwest::Client,
    deliveries: u64,
}

impl Serve {
    /// Starts `guardrail serve` (configured by environment only, default 60 s lease) and waits
    /// until it is ready; returns the process and its base URL.
    async fn start(&self) -> (Child, String) {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let key_path = self.dir.path().join("app.pem");
        std::fs::write(&key_path, FakeGitHub::private_key_pem()).unwrap();
        // Every life's log goes to one file, for the failure messages.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_guardrail"));
        for (k, _) in std::env::vars() {
            if k.starts_with("GUARDRAIL_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .arg("serve")
            .env("GUARDRAIL_APP_ID", FakeGitHub::APP_ID.to_string())
            .env("GUARDRAIL_PRIVATE_KEY_PATH", &key_path)
            .env("GUARDRAIL_WEBHOOK_SECRET", SECRET)
            .env("GUARDRAIL_GITHUB_API_URL", self.gh.api_url())
            .env("GUARDRAIL_GITHUB_GRAPHQL_URL", self.gh.graphql_url())
            .env("GUARDRAIL_DATABASE_URL", &self.database_url)
            .env("GUARDRAIL_LISTEN", format!("127.0.0.1:{port}"))
            .env("GUARDRAIL_INSTANCE_ID", "soak-pod")
            .env("GUARDRAIL_WORKERS", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start guardrail serve");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while self.http.get(format!("{base}/readyz")).send().await.map(|r| r.status().as_u16()).ok() != Some(200) {
            assert!(started.elapsed() < Duration::from_secs(30), "guardrail serve did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (child, base)
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("serve.log")
    }

    /// The last lines the process lives logged, and the queue's jobs: what a failure message needs.
    async fn story(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        let jobs = match Queue::connect(&self.database_url).await {
            Ok(q) => format!("{:#?}", q.jobs().await),
            Err(e) => e.to_string(),
        };
        format!("jobs: {jobs}\nlog tail:\n{tail}")
    }

    /// Delivers a webhook and expects it acknowledged (persisted).
    async fn deliver(&mut self, base: &str, event: &str, payload: &serde_json::Value) {
        self.deliveries += 1;
        let body = serde_json::to_vec(payload).unwrap();
        let reply = self
            .http
            .post(format!("{base}/webhooks/github"))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", format!("soak-{}", self.deliveries))
            .header("X-Hub-Signature-256", sign(SECRET, &body))
            .body(body)
            .send()
            .await
            .expect("deliver");
        assert_eq!(reply.status().as_u16(), 202);
    }

    /// A new head for pull request `number`: a variant of the privileged Deployment, so each head
    /// has findings of its own.
    fn push(&self, number: u64, n: usize) -> String {
        let head = head_of(&self.gh, number);
        let text = PRIVILEGED.replace("name: web\n", &format!("name: web-{number}-{n}\n"));
        let sha = self.gh.commit(REPO, Some(&head), &[("deploy/web.yaml", Some(&text))]);
        self.gh.push_pull(REPO, number, &sha);
        sha
    }
}

fn head_of(gh: &FakeGitHub, number: u64) -> String {
    gh.state().pulls[&(REPO.to_string(), number)].head_sha.clone()
}

fn kill9(child: &mut Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}

async fn soak(database_url: Option<String>) {
    let seed = std::env::var("GUARDRAIL_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_0010);
    eprintln!("soak seed {seed} (GUARDRAIL_SOAK_SEED={seed} replays the kill moments)");
    let mut rng = Rng(seed | 1);
    let gh = FakeGitHub::start().await;
    gh.add_repo(REPO, INSTALLATION);
    // Every call takes a little while, so kills land in the middle of jobs.
    gh.set_latency(Duration::from_millis(10));
    let dir = tempfile::tempdir().unwrap();
    let database_url = database_url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("soak.db").display()));
    let mut serve = Serve { gh: gh.clone(), dir, database_url, http: reqwest::Client::new(), deliveries: 0 };
    let root = gh.branch_head(REPO, "main");
    for number in 1..=PULLS {
        let text = PRIVILEGED.replace("name: web\n", &format!("name: web-{number}\n"));
        let head = gh.commit(REPO, Some(&root), &[("deploy/web.yaml", Some(&text))]);
        gh.open_pull(REPO, number, &root, &head, None);
    }
    let mut pending: Vec<(&str, serde_json::Value)> =
        (1..=PULLS).map(|n| ("pull_request", gh.pull_request("opened", REPO, n))).collect();
    for round in 0..KILLS {
        let (mut child, base) = serve.start().await;
        for (event, payload) in pending.drain(..) {
            serve.deliver(&base, event, &payload).await;
        }
        tokio::time::sleep(Duration::from_millis(20 + rng.below(1200))).await;
        kill9(&mut child);
        let queue = Queue::connect(&serve.database_url).await.expect("the queue's database");
        let held = queue.running().await.unwrap().len();
        let open = gh.check_runs(REPO).iter().filter(|r| r.status != "completed").count();
        eprintln!(
            "soak: kill {round}: {held} job(s) in hand, {open} run(s) in progress, {} writes so far",
            gh.writes()
        );
        // While it is down, pull requests get new heads (their deliveries arrive after the restart).
        for k in 0..3 {
            let number = 1 + rng.below(PULLS);
            serve.push(number, round * 10 + k);
            pending.push(("pull_request", gh.pull_request("synchronize", REPO, number)));
        }
    }
    // The last kill lands while a job is surely in hand: a check run it opened is in progress.
    let (mut child, base) = serve.start().await;
    for (event, payload) in pending.drain(..) {
        serve.deliver(&base, event, &payload).await;
    }
    let last = serve.push(1, KILLS * 10);
    serve.deliver(&base, "pull_request", &gh.pull_request("synchronize", REPO, 1)).await;
    let waiting = Instant::now();
    while !gh.check_runs(REPO).iter().any(|r| r.head_sha == last) {
        if waiting.elapsed() > Duration::from_secs(30) {
            panic!("no run for the last head: {}", serve.story().await);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    kill9(&mut child);
    let queue = Queue::connect(&serve.database_url).await.expect("the queue's database");
    assert!(!queue.running().await.unwrap().is_empty(), "the setup: the dead process held a job");

    // The restart: everything is done, well inside the 60 s lease.
    let (mut child, _base) = serve.start().await;
    let restarted = Instant::now();
    let heads: Vec<String> = (1..=PULLS).map(|n| head_of(&gh, n)).collect();
    loop {
        let runs = gh.check_runs(REPO);
        let checked = heads.iter().all(|h| runs.iter().any(|r| &r.head_sha == h && r.status == "completed"));
        let counts = queue.counts().await.unwrap();
        if checked && runs.iter().all(|r| r.status == "completed") && counts.queued + counts.running == 0 {
            break;
        }
        if restarted.elapsed() > Duration::from_secs(30) {
            let open: Vec<_> = runs.iter().filter(|r| r.status != "completed").collect();
            panic!("not done 30 s after the restart: {counts:?} {open:#?}\n{}", serve.story().await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("soak: done {:?} after the last restart", restarted.elapsed());
    kill9(&mut child);

    let runs = gh.check_runs(REPO);
    for (n, head) in heads.iter().enumerate() {
        let ours: Vec<_> = runs.iter().filter(|r| &r.head_sha == head).collect();
        assert_eq!(ours.len(), 1, "#{}: one run for the final head: {runs:#?}", n + 1);
        assert_eq!(ours[0].conclusion.as_deref(), Some("failure"), "#{}", n + 1);
        assert_eq!(ours[0].annotations.len(), 2, "#{}: every annotation once", n + 1);
    }
    let orphans: Vec<_> = runs.iter().filter(|r| r.status != "completed").collect();
    assert!(orphans.is_empty(), "orphan runs: {orphans:#?}");
    for run in &runs {
        let unique: HashSet<String> = run.annotations.iter().map(|a| a.to_string()).collect();
        assert_eq!(unique.len(), run.annotations.len(), "an annotation twice on run {}", run.id);
    }
    for number in 1..=PULLS {
        let comments = gh.review_comments(REPO, number);
        let unique: HashSet<_> = comments.iter().map(|c| (&c.path, c.line, &c.commit_id, &c.body)).collect();
        assert_eq!(unique.len(), comments.len(), "#{number}: a comment twice: {comments:#?}");
        let head = &heads[number as usize - 1];
        assert_eq!(comments.iter().filter(|c| &c.commit_id == head).count(), 2, "#{number}: the head's comments");
    }
    let failed: Vec<_> = queue.jobs().await.unwrap().into_iter().filter(|j| j.1 == "failed").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(gh.problems().is_empty(), "{:#?}", gh.problems());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kill_9_soak_sqlite() {
    soak(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kill_9_soak_postgres() {
    soak(Some(super::durability::postgres_url().await)).await;
}
