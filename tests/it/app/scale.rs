//! Large pull requests (1500 files, 1500 findings) complete, with few GitHub calls. The figures (calls by kind, time with 50 ms
//! added per call) are printed; run with `--nocapture` to read them. Times are not asserted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;

async fn measure(files: usize, latency: Duration) -> (BTreeMap<String, usize>, Duration, usize) {
    let h = Harness::new().await;
    let texts: Vec<(String, String)> = (0..files)
        .map(|i| {
            let text = if i % 2 == 0 { PRIVILEGED } else { CLEAN };
            (format!("deploy/app-{i:04}.yaml"), text.replace("name: web", &format!("name: web-{i}")))
        })
        .collect();
    let changes: Vec<(&str, Option<&str>)> = texts.iter().map(|(p, t)| (p.as_str(), Some(t.as_str()))).collect();
    h.pull(50, &[], &changes);
    h.gh.set_latency(latency);
    let started = Instant::now();
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 50)).await;
    h.drain_within(Duration::from_secs(600)).await;
    let took = started.elapsed();
    let mut kinds = BTreeMap::new();
    for c in h.gh.calls() {
        *kinds.entry(c.kind).or_insert(0) += 1;
    }
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!(run.status, "completed");
    let annotations = run.annotations.len();
    let comments = h.gh.review_comments(REPO, 50).len();
    assert_eq!(comments, annotations.min(guardrail::report::review::MAX_NEW_COMMENTS), "inline comments are capped");
    h.finish().await;
    (kinds, took, annotations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_per_pull_request_stay_few() {
    // 1500 files with 1500 findings: a large pull request completes.
    for (files, latency) in [(1, 0), (100, 0), (1000, 0), (1500, 0), (100, 50), (1000, 50)] {
        let (kinds, took, annotations) = measure(files, Duration::from_millis(latency)).await;
        let total: usize = kinds.values().sum();
        eprintln!("{files} manifests, {latency} ms/call: {total} calls {kinds:?}, {annotations} annotations, {took:?} webhook -> completed");
        // pull, config, files (100/page), contents (50/GraphQL query), check run create + updates,
        // review comments list, review, token: a fixed part plus one call per 100 files, 50 files
        // and 50 annotations.
        let expected = 8 + files.div_ceil(100) + files.div_ceil(50) + annotations.div_ceil(50);
        assert!(total <= expected + 2, "{files} files: {total} calls, expected about {expected}: {kinds:?}");
        assert_eq!(annotations, files.div_ceil(2) * 2);
    }
}
