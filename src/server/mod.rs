//! The HTTP side of the App: where a webhook enters. Body limit -> signature -> delivery id -> intake
//! -> one database transaction -> 202. Nothing is processed inside the request; workers do that.

mod gitlab;
pub mod listen;
mod webhook;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use secrecy::SecretString;
use tokio::sync::Notify;

use crate::forge::gitlab::{GitLabBot, ProjectRef};
use crate::forge::RepoSlug;
use crate::intake::gitlab::WebhookAuth;
use crate::metrics::Metrics;
use crate::queue::Queue;

/// GitHub sends at most 25 MB per delivery.
pub const BODY_LIMIT: usize = 25 * 1024 * 1024;

/// What the HTTP handlers share.
pub struct ServerState {
    pub queue: Queue,
    pub webhook_secrets: Vec<SecretString>,
    pub app_id: u64,
    pub check_name: String,
    pub policy_repo: Option<RepoSlug>,
    pub metrics: Metrics,
    /// Wakes idle workers when a delivery enqueued work.
    pub wake: Arc<Notify>,
    /// Set on SIGTERM: `/readyz` answers 503 (webhooks are still stored while the listener is open).
    pub draining: AtomicBool,
    /// Bytes of request bodies read but not yet authenticated, over all requests.
    pub unverified: AtomicUsize,
    pub limits: crate::settings::ServerLimits,
    /// `None` when GitLab is not configured (`/webhooks/gitlab` answers 404).
    pub gitlab: Option<GitLabIntake>,
}

/// What `/webhooks/gitlab` needs.
pub struct GitLabIntake {
    pub auth: WebhookAuth,
    pub policy_project: Option<ProjectRef>,
    /// The bot, whose own notes never trigger anything (its id, once known).
    pub bot: Arc<GitLabBot>,
}

impl ServerState {
    /// Reserves `n` unauthenticated bytes; `false` when that would go over the cap.
    fn reserve(&self, n: usize) -> bool {
        let max = self.limits.max_unverified_bytes;
        self.unverified
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| cur.checked_add(n).filter(|t| *t <= max))
            .is_ok()
    }

    fn unreserve(&self, n: usize) {
        self.unverified.fetch_sub(n, Ordering::AcqRel);
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/webhooks/github", post(webhook::github))
        .route("/webhooks/gitlab", post(gitlab::webhook))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    if state.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_string());
    }
    match state.queue.ping().await {
        Ok(()) => (StatusCode::OK, "ready".to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database unreachable: {e}")),
    }
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let counts = state.queue.counts().await.ok();
    ([("content-type", "text/plain; version=0.0.4")], state.metrics.render(counts.as_ref()))
}
