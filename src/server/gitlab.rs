//! `POST /webhooks/gitlab`. The body is read under the same limits as GitHub's (size, time, bytes not
//! yet authenticated); then `X-Gitlab-Token` (constant time, every configured secret) and, when a
//! signing token is configured, the `webhook-signature`; a delivery that fails gets 401 and nothing is
//! stored. A verified delivery is read into jobs and stored under its key (`Idempotency-Key`, else
//! `X-Gitlab-Event-UUID`) before the 202; a resent one is acknowledged without enqueuing twice.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::webhook::{header, read_body, reply, unreadable, Macs};
use super::ServerState;
use crate::forge::DeliveryId;
use crate::intake::gitlab::{authenticate, delivery_key, read, GitlabIntakeContext};
use crate::queue::Recorded;

/// The events guardrail reads; anything else is "other", so headers cannot create metric series.
fn event_label(event: &str) -> &'static str {
    match event {
        "Merge Request Hook" => "gitlab_merge_request",
        "Push Hook" => "gitlab_push",
        "Note Hook" => "gitlab_note",
        "System Hook" => "gitlab_system",
        _ => "gitlab_other",
    }
}

pub async fn webhook(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let Some(gitlab) = &state.gitlab else {
        return reply(StatusCode::NOT_FOUND, json!({"error": "GitLab is not configured"}));
    };
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let body = match read_body(&state, &headers, body, &mut Macs::new(&[])).await {
        Ok(body) => body,
        Err(e) => return unreadable(&state, e),
    };
    if authenticate(&gitlab.auth, &headers, &body).is_err() {
        state.metrics.delivery("unverified", "bad_signature");
        return reply(StatusCode::UNAUTHORIZED, json!({"error": "token or signature does not match"}));
    }
    let event = header(&headers, "x-gitlab-event").unwrap_or("").to_string();
    let label = event_label(&event);
    if event.is_empty() {
        state.metrics.delivery(label, "bad_request");
        return reply(StatusCode::BAD_REQUEST, json!({"error": "X-Gitlab-Event is missing"}));
    }
    let ctx =
        GitlabIntakeContext { policy_project: gitlab.policy_project.clone(), bot_user_id: gitlab.bot.known_user_id() };
    let intake = read(&event, &body, &ctx).into_intake(&event);
    let delivery = DeliveryId(delivery_key(&headers, &body));
    let text = String::from_utf8_lossy(&body);
    match state.queue.record_delivery(&delivery, &event, &intake.action, &text, &intake.outcome, &intake.jobs).await {
        Ok(Recorded::New) => {
            state.metrics.delivery(label, if intake.jobs.is_empty() { "ignored" } else { "queued" });
            if !intake.jobs.is_empty() {
                state.wake.notify_waiters();
            }
            tracing::info!(%delivery, %event, outcome = %intake.outcome, "GitLab delivery stored");
            reply(
                StatusCode::ACCEPTED,
                json!({"delivery": delivery.0, "jobs": intake.jobs.len(), "outcome": intake.outcome}),
            )
        }
        Ok(Recorded::Duplicate) => {
            state.metrics.delivery(label, "duplicate");
            reply(StatusCode::OK, json!({"delivery": delivery.0, "duplicate": true}))
        }
        Err(e) => {
            // Not acknowledged: GitLab retries the delivery.
            tracing::error!(%delivery, error = %e, "could not store the GitLab delivery");
            state.metrics.delivery(label, "store_failed");
            reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "could not store the delivery"}))
        }
    }
}
