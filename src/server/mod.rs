//! The HTTP side of the App: where a webhook enters. Body limit -> signature -> delivery id -> intake
//! -> one database transaction -> 202. Nothing is processed inside the request; workers do that.

mod webhook;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use secrecy::SecretString;
use tokio::sync::Notify;

use crate::forge::RepoSlug;
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
}

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/webhooks/github", post(webhook::github))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    match state.queue.ping().await {
        Ok(()) => (StatusCode::OK, "ready".to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database unreachable: {e}")),
    }
}

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let counts = state.queue.counts().await.ok();
    ([("content-type", "text/plain; version=0.0.4")], state.metrics.render(counts.as_ref()))
}
