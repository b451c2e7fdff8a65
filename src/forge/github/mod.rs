//! GitHub: App authentication, the HTTP client with its retry policy (`client`), and the typed
//! operations guardrail performs (`api`).

mod api;
mod client;

pub use api::{CheckRunState, FileText, PullFile, PullRequest, ReviewThread, BLOBS_PER_QUERY, MAX_PULL_FILES};
pub use client::{next_link, rate_limit_wait, CallPolicy, GitHub, Reply};
