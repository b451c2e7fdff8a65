//! Prometheus metrics owned by the App state (no global recorder, so tests can run several Apps in one
//! process): deliveries, jobs by state, GitHub calls by status, evaluation time, rate-limit waits.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::queue::JobCounts;

#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        Metrics { recorder: Arc::new(recorder), handle }
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.recorder, f)
    }

    pub fn delivery(&self, event: &str, outcome: &'static str) {
        self.with(|| {
            metrics::counter!("guardrail_webhook_deliveries_total", "event" => event.to_string(), "outcome" => outcome)
                .increment(1)
        });
    }

    pub fn github_call(&self, operation: &str, status: u16) {
        self.with(|| {
            metrics::counter!("guardrail_github_calls_total", "operation" => operation.to_string(), "status" => status.to_string())
                .increment(1)
        });
    }

    pub fn rate_limit_wait(&self, wait: Duration) {
        self.with(|| {
            metrics::counter!("guardrail_github_rate_limit_waits_total").increment(1);
            metrics::counter!("guardrail_github_rate_limit_wait_seconds_total").increment(wait.as_secs());
        });
    }

    pub fn evaluation(&self, took: Duration) {
        self.with(|| metrics::histogram!("guardrail_evaluation_seconds").record(took.as_secs_f64()));
    }

    pub fn job_finished(&self, kind: &str, result: &'static str) {
        self.with(|| {
            metrics::counter!("guardrail_jobs_finished_total", "kind" => kind.to_string(), "result" => result)
                .increment(1)
        });
    }

    /// The text exposition, with the job gauges read just now.
    pub fn render(&self, jobs: Option<&JobCounts>) -> String {
        if let Some(c) = jobs {
            self.with(|| {
                for (state, n) in [
                    ("queued", c.queued),
                    ("running", c.running),
                    ("done", c.done),
                    ("failed", c.failed),
                    ("superseded", c.superseded),
                ] {
                    metrics::gauge!("guardrail_jobs", "state" => state).set(n as f64);
                }
            });
        }
        self.handle.render()
    }
}
