//! `POST /webhooks/github`. The signature is checked in constant time against every configured secret
//! (several during a rotation) before the body is even parsed; a delivery is stored before it is
//! acknowledged, and a redelivered id is acknowledged without enqueuing anything twice.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::ServerState;
use crate::forge::DeliveryId;
use crate::intake::{self, IntakeContext};
use crate::queue::Recorded;

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under one of `secrets`.
/// `verify_slice` compares in constant time.
pub fn signature_valid(secrets: &[SecretString], body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("sha256=") else { return false };
    let Ok(expected) = hex::decode(hex_sig.trim()) else { return false };
    let mut valid = false;
    for secret in secrets {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC takes keys of any length");
        mac.update(body);
        // No early return: every secret is tried, so timing does not tell which one matched.
        valid |= mac.verify_slice(&expected).is_ok();
    }
    valid
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

pub async fn github(State(state): State<Arc<ServerState>>, headers: HeaderMap, body: Bytes) -> Response {
    let event = header(&headers, "x-github-event").unwrap_or("").to_string();
    let signature = header(&headers, "x-hub-signature-256").unwrap_or("");
    if !signature_valid(&state.webhook_secrets, &body, signature) {
        state.metrics.delivery(&event, "bad_signature");
        return reply(StatusCode::UNAUTHORIZED, serde_json::json!({"error": "signature does not match"}));
    }
    let Some(delivery) = header(&headers, "x-github-delivery").filter(|d| !d.is_empty() && d.len() <= 200) else {
        state.metrics.delivery(&event, "bad_request");
        return reply(StatusCode::BAD_REQUEST, serde_json::json!({"error": "X-GitHub-Delivery is missing"}));
    };
    if event.is_empty() {
        state.metrics.delivery(&event, "bad_request");
        return reply(StatusCode::BAD_REQUEST, serde_json::json!({"error": "X-GitHub-Event is missing"}));
    }
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            state.metrics.delivery(&event, "bad_request");
            return reply(StatusCode::BAD_REQUEST, serde_json::json!({"error": format!("body is not JSON: {e}")}));
        }
    };
    let ctx =
        IntakeContext { app_id: state.app_id, check_name: &state.check_name, policy_repo: state.policy_repo.as_ref() };
    let intake = intake::read(&event, &payload, &ctx);
    let text = String::from_utf8_lossy(&body);
    let delivery = DeliveryId(delivery.to_string());
    match state.queue.record_delivery(&delivery, &event, &intake.action, &text, &intake.outcome, &intake.jobs).await {
        Ok(Recorded::New) => {
            state.metrics.delivery(&event, if intake.jobs.is_empty() { "ignored" } else { "queued" });
            if !intake.jobs.is_empty() {
                state.wake.notify_waiters();
            }
            tracing::info!(%delivery, %event, action = %intake.action, outcome = %intake.outcome, "delivery stored");
            reply(
                StatusCode::ACCEPTED,
                serde_json::json!({"delivery": delivery.0, "jobs": intake.jobs.len(), "outcome": intake.outcome}),
            )
        }
        Ok(Recorded::Duplicate) => {
            state.metrics.delivery(&event, "duplicate");
            reply(StatusCode::OK, serde_json::json!({"delivery": delivery.0, "duplicate": true}))
        }
        Err(e) => {
            // Not acknowledged: GitHub shows the delivery as failed and it can be redelivered.
            tracing::error!(%delivery, error = %e, "could not store delivery");
            state.metrics.delivery(&event, "store_failed");
            reply(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"error": "could not store the delivery"}))
        }
    }
}
