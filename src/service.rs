//! Assembles the App from `Settings`: database queue, GitHub and/or GitLab clients, job context, HTTP
//! router and workers. `guardrail serve` calls `Service::serve`; tests build the same `Service` and drive its
//! router and `run_until_idle`, so there is no test-only path through the code.

use std::sync::Arc;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use tokio::sync::Notify;

use crate::forge::github::{CallPolicy, GitHub};
use crate::forge::gitlab::{GitLab, GitLabBot};
use crate::jobs::{self, App, JobRetry};
use crate::metrics::Metrics;
use crate::queue::worker::Worker;
use crate::queue::Queue;
use crate::server::{self, GitLabIntake, ServerState};
use crate::settings::Settings;

pub struct Service {
    pub app: Arc<App>,
    pub server: Arc<ServerState>,
    pub workers: usize,
    pub shutdown_grace: std::time::Duration,
    pub retention: std::time::Duration,
    /// Turning it true makes every worker cancel the job in hand and hand its lease back.
    hand_back: tokio::sync::watch::Sender<bool>,
}

impl Service {
    pub async fn build(settings: &Settings, calls: CallPolicy, retry: JobRetry) -> anyhow::Result<Service> {
        let queue = Queue::connect(&settings.database_url)
            .await
            .with_context(|| format!("GUARDRAIL_DATABASE_URL: cannot open {}", redact(&settings.database_url)))?;
        let metrics = Metrics::new();
        let github = if settings.github {
            Some(GitHub::new(
                settings.app_id,
                settings.private_key.expose_secret(),
                &settings.api_url,
                &settings.graphql_url,
                metrics.clone(),
                calls.clone(),
            )?)
        } else {
            None
        };
        let gitlab = match &settings.gitlab {
            Some(g) => Some(Arc::new(GitLabBot::new(
                GitLab::new(&g.url, g.token.clone(), metrics.clone(), calls)
                    .map_err(|e| anyhow::anyhow!("GUARDRAIL_GITLAB_URL: {e}"))?,
            ))),
            None => None,
        };
        let wake = Arc::new(Notify::new());
        let worker_id = settings.instance_id.clone();
        // Jobs this instance held in a previous life (a crash, a kill -9) are ready again at once.
        let taken_back = queue.reclaim_instance(&worker_id).await.context("taking back this instance's jobs")?;
        if taken_back > 0 {
            tracing::info!(instance = %worker_id, jobs = taken_back, "took back the jobs of this instance's previous run");
        }
        let app = Arc::new(App {
            github,
            gitlab: gitlab.clone(),
            gitlab_policy: settings.gitlab_policy.clone(),
            queue: queue.clone(),
            check_name: settings.check_name.clone(),
            policy_repo: settings.policy_repo.clone(),
            policies: crate::jobs::policies::PolicyCache::new(settings.k8s_native_validation),
            metrics: metrics.clone(),
            retry,
            worker_id,
            lease: settings.lease,
            scanner: jobs::isolated_scanner(settings.isolation.clone()),
            isolation: settings.isolation.clone(),
        });
        let server = Arc::new(ServerState {
            queue,
            webhook_secrets: settings.webhook_secrets.clone(),
            app_id: settings.app_id,
            check_name: settings.check_name.clone(),
            policy_repo: settings.policy_repo.as_ref().map(|p| p.repo.clone()),
            metrics,
            wake,
            draining: Default::default(),
            unverified: Default::default(),
            limits: settings.limits.clone(),
            gitlab: match (&settings.gitlab, gitlab) {
                (Some(g), Some(bot)) => Some(GitLabIntake {
                    auth: g.webhook.clone(),
                    policy_project: settings.gitlab_policy.as_ref().map(|p| p.project.clone()),
                    bot,
                }),
                _ => None,
            },
        });
        let (hand_back, _) = tokio::sync::watch::channel(false);
        Ok(Service {
            app,
            server,
            workers: settings.workers,
            shutdown_grace: settings.shutdown_grace,
            retention: settings.retention,
            hand_back,
        })
    }

    pub fn router(&self) -> axum::Router {
        server::router(self.server.clone())
    }

    /// The `n`-th worker of this process.
    pub fn worker(&self, n: usize) -> Worker {
        Worker {
            queue: self.app.queue.clone(),
            id: format!("{}/{n}", self.app.worker_id),
            lease: self.app.lease,
            wake: self.server.wake.clone(),
            hand_back: self.hand_back.subscribe(),
        }
    }

    /// Cancels the jobs in hand and hands their leases back (the end of a shutdown's grace period;
    /// tests use it to stop a replica).
    pub fn hand_back(&self) {
        let _ = self.hand_back.send(true);
    }

    /// Deletes what is older than the retention period, if this replica holds the retention
    /// singleton (one replica at a time prunes).
    pub async fn prune(&self) -> anyhow::Result<Option<crate::queue::Pruned>> {
        let queue = &self.app.queue;
        if !queue.hold_singleton("retention", &self.app.worker_id, std::time::Duration::from_secs(3600)).await? {
            return Ok(None);
        }
        let before = crate::queue::now_ms() - self.retention.as_millis() as i64;
        let pruned = queue.prune(before).await?;
        tracing::info!(deliveries = pruned.deliveries, jobs = pruned.jobs, "retention: pruned");
        Ok(Some(pruned))
    }

    /// Works until no job is queued or running (tests, one-shot runs).
    pub async fn run_until_idle(&self) -> anyhow::Result<usize> {
        let app = self.app.clone();
        Ok(self.worker(0).run_until_idle(move |job| jobs::perform(app.clone(), job)).await?)
    }

    /// Serves webhooks and runs the workers until `shutdown` resolves (SIGTERM). Then: `/readyz`
    /// answers 503 and no new job is claimed, while webhooks are still stored; jobs in hand finish
    /// or, at the end of the grace period, are cancelled and handed back; the listener closes and
    /// every connection is dropped, whatever idle clients do. All within `shutdown_grace`.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut handles = Vec::new();
        for n in 0..self.workers {
            let worker = self.worker(n);
            let app = self.app.clone();
            let stop = stop_rx.clone();
            handles
                .push(tokio::spawn(async move { worker.run(move |job| jobs::perform(app.clone(), job), stop).await }));
        }
        let (close_tx, close_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(server::listen::serve(listener, self.router(), self.server.limits.clone(), close_rx));
        let retention = {
            let me = Service {
                app: self.app.clone(),
                server: self.server.clone(),
                workers: 0,
                shutdown_grace: self.shutdown_grace,
                retention: self.retention,
                hand_back: tokio::sync::watch::channel(false).0,
            };
            tokio::spawn(async move {
                loop {
                    if let Err(e) = me.prune().await {
                        tracing::warn!(error = %e, "retention failed");
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                }
            })
        };

        shutdown.await;
        let started = tokio::time::Instant::now();
        tracing::info!(grace = ?self.shutdown_grace, "shutting down: no new jobs; jobs in hand finish or are handed back");
        self.server.start_draining();
        let _ = stop_tx.send(true);
        retention.abort();
        // Leave time at the end for handing back and closing connections.
        let closing = server::listen::CLOSE_GRACE + std::time::Duration::from_secs(1);
        let for_jobs = self.shutdown_grace.saturating_sub(closing).max(std::time::Duration::from_millis(200));
        let mut workers = futures_join(handles);
        if tokio::time::timeout(for_jobs, &mut workers).await.is_err() {
            self.hand_back();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), &mut workers).await;
        }
        let _ = close_tx.send(true);
        let _ = tokio::time::timeout(closing, server).await;
        tracing::info!(took = ?started.elapsed(), "stopped");
        Ok(())
    }
}

/// Waits for every handle (a join of the workers without an extra crate).
fn futures_join(
    handles: Vec<tokio::task::JoinHandle<()>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        for h in handles {
            let _ = h.await;
        }
    })
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}
