//! Assembles the App from `Settings`: database queue, GitHub client, job context, HTTP router and
//! workers. `guardrail serve` calls `Service::serve`; tests build the same `Service` and drive its
//! router and `run_until_idle`, so there is no test-only path through the code.

use std::sync::Arc;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use tokio::sync::Notify;

use crate::forge::github::{CallPolicy, GitHub};
use crate::jobs::{self, App, JobRetry};
use crate::metrics::Metrics;
use crate::queue::worker::Worker;
use crate::queue::Queue;
use crate::server::{self, ServerState};
use crate::settings::Settings;

pub struct Service {
    pub app: Arc<App>,
    pub server: Arc<ServerState>,
    pub workers: usize,
}

impl Service {
    pub async fn build(settings: &Settings, calls: CallPolicy, retry: JobRetry) -> anyhow::Result<Service> {
        let queue = Queue::connect(&settings.database_url)
            .await
            .with_context(|| format!("GUARDRAIL_DATABASE_URL: cannot open {}", redact(&settings.database_url)))?;
        let metrics = Metrics::new();
        let github = GitHub::new(
            settings.app_id,
            settings.private_key.expose_secret(),
            &settings.api_url,
            &settings.graphql_url,
            metrics.clone(),
            calls,
        )?;
        let wake = Arc::new(Notify::new());
        let worker_id = format!("{}-{}-{}", hostname(), std::process::id(), crate::queue::now_ms() % 100_000);
        let app = Arc::new(App {
            github,
            queue: queue.clone(),
            check_name: settings.check_name.clone(),
            policy_repo: settings.policy_repo.clone(),
            policies: crate::jobs::policies::PolicyCache::new(settings.k8s_native_validation),
            metrics: metrics.clone(),
            retry,
            worker_id,
            lease: settings.lease,
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
        });
        Ok(Service { app, server, workers: settings.workers })
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
        }
    }

    /// Works until no job is queued or running (tests, one-shot runs).
    pub async fn run_until_idle(&self) -> anyhow::Result<usize> {
        let app = self.app.clone();
        Ok(self.worker(0).run_until_idle(move |job| jobs::perform(app.clone(), job)).await?)
    }

    /// Serves webhooks and runs the workers until `shutdown` resolves.
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
            let mut rx = stop_rx.clone();
            handles.push(tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                worker.run(move |job| jobs::perform(app.clone(), job), stop).await
            }));
        }
        let router = self.router();
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            })
            .await
            .context("HTTP server")?;
        for h in handles {
            let _ = h.await;
        }
        Ok(())
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "guardrail".into())
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}
