//! `POST /webhooks/github`. The body is streamed through the HMAC of every configured secret (several
//! during a rotation) under a read timeout, and counted against a process-wide cap on bytes not yet
//! authenticated (over it: 503, nothing stored). Only a verified delivery is parsed, labelled in
//! metrics (by a fixed list of events) and stored before it is acknowledged; a redelivered id is
//! acknowledged without enqueuing anything twice.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::{ServerState, BODY_LIMIT};
use crate::forge::DeliveryId;
use crate::intake::{self, IntakeContext};
use crate::queue::Recorded;

/// One running HMAC per secret, fed as the body arrives.
pub(super) struct Macs(Vec<Hmac<Sha256>>);

impl Macs {
    pub(super) fn new(secrets: &[SecretString]) -> Macs {
        Macs(
            secrets
                .iter()
                .map(|s| {
                    Hmac::<Sha256>::new_from_slice(s.expose_secret().as_bytes()).expect("HMAC takes keys of any length")
                })
                .collect(),
        )
    }

    fn update(&mut self, bytes: &[u8]) {
        for mac in &mut self.0 {
            mac.update(bytes);
        }
    }

    fn verify(self, signature: &str) -> bool {
        let Some(hex_sig) = signature.strip_prefix("sha256=") else { return false };
        let Ok(expected) = hex::decode(hex_sig.trim()) else { return false };
        let mut valid = false;
        for mac in self.0 {
            // No early return: every secret is tried, so timing does not tell which one matched.
            valid |= mac.verify_slice(&expected).is_ok();
        }
        valid
    }
}

/// The events guardrail knows; anything else is counted as "other", so request headers cannot
/// create metric series.
pub fn event_label(event: &str) -> &'static str {
    match event {
        "pull_request" => "pull_request",
        "check_run" => "check_run",
        "check_suite" => "check_suite",
        "push" => "push",
        "installation" => "installation",
        "installation_repositories" => "installation_repositories",
        "ping" => "ping",
        _ => "other",
    }
}

pub(super) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// Bytes reserved against the unverified cap; given back when dropped.
struct Reserved<'a> {
    state: &'a ServerState,
    bytes: usize,
}

impl Reserved<'_> {
    fn add(&mut self, n: usize) -> bool {
        if self.state.reserve(n) {
            self.bytes += n;
            true
        } else {
            false
        }
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.state.unreserve(self.bytes);
    }
}

pub(super) enum ReadError {
    TooLarge,
    OverCap,
    Timeout,
    Broken,
}

/// Reads the body under the body timeout and the caps, feeding the HMACs.
pub(super) async fn read_body(
    state: &ServerState,
    headers: &HeaderMap,
    body: Body,
    macs: &mut Macs,
) -> Result<Vec<u8>, ReadError> {
    let declared = header(headers, "content-length").and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(ReadError::TooLarge);
    }
    let mut reserved = Reserved { state, bytes: 0 };
    if let Some(n) = declared {
        if !reserved.add(n) {
            return Err(ReadError::OverCap);
        }
    }
    let deadline = tokio::time::Instant::now() + state.limits.body_timeout;
    let mut body = body;
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(1024 * 1024));
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(ReadError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(ReadError::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        if bytes.len() + data.len() > declared.unwrap_or(BODY_LIMIT).min(BODY_LIMIT) {
            return Err(ReadError::TooLarge);
        }
        if declared.is_none() && !reserved.add(data.len()) {
            return Err(ReadError::OverCap);
        }
        macs.update(&data);
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}

/// The answer to a webhook whose body could not be read within the bounds. The rest of the body is
/// not read: the connection is closed after the answer.
pub(super) fn unreadable(state: &ServerState, e: ReadError) -> Response {
    let (status, why, outcome) = match e {
        ReadError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body too large", "too_large"),
        ReadError::OverCap => {
            (StatusCode::SERVICE_UNAVAILABLE, "too many unauthenticated bytes in flight", "over_capacity")
        }
        ReadError::Timeout => (StatusCode::REQUEST_TIMEOUT, "body not received in time", "timeout"),
        ReadError::Broken => (StatusCode::BAD_REQUEST, "body could not be read", "bad_request"),
    };
    state.metrics.delivery("unverified", outcome);
    let mut response = reply(status, serde_json::json!({"error": why}));
    response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    response
}

pub async fn github(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let mut macs = Macs::new(&state.webhook_secrets);
    let body = match read_body(&state, &headers, body, &mut macs).await {
        Ok(body) => body,
        Err(e) => return unreadable(&state, e),
    };
    let signature = header(&headers, "x-hub-signature-256").unwrap_or("");
    if !macs.verify(signature) {
        state.metrics.delivery("unverified", "bad_signature");
        return reply(StatusCode::UNAUTHORIZED, serde_json::json!({"error": "signature does not match"}));
    }
    let event = header(&headers, "x-github-event").unwrap_or("").to_string();
    let label = event_label(&event);
    let Some(delivery) = header(&headers, "x-github-delivery").filter(|d| !d.is_empty() && d.len() <= 200) else {
        state.metrics.delivery(label, "bad_request");
        return reply(StatusCode::BAD_REQUEST, serde_json::json!({"error": "X-GitHub-Delivery is missing"}));
    };
    if event.is_empty() {
        state.metrics.delivery(label, "bad_request");
        return reply(StatusCode::BAD_REQUEST, serde_json::json!({"error": "X-GitHub-Event is missing"}));
    }
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            state.metrics.delivery(label, "bad_request");
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
            state.metrics.delivery(label, if intake.jobs.is_empty() { "ignored" } else { "queued" });
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
            state.metrics.delivery(label, "duplicate");
            reply(StatusCode::OK, serde_json::json!({"delivery": delivery.0, "duplicate": true}))
        }
        Err(e) => {
            // Not acknowledged: GitHub shows the delivery as failed and it can be redelivered.
            tracing::error!(%delivery, error = %e, "could not store delivery");
            state.metrics.delivery(label, "store_failed");
            reply(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"error": "could not store the delivery"}))
        }
    }
}
