//! A pull request to the policy repository itself is checked by running its policy tests (gator
//! suites and Rego `test_*` rules) at the head commit, in a scratch folder that the suites cannot
//! read out of. The policies are never used for other repositories until they are merged.

use super::session::{Session, Stop};
use crate::forge::FileText;
use crate::report::checkrun::{self, CheckRunReport};

/// The steps after "in progress": fetch the policy tree under `folder` at the head, run its tests,
/// report the verdict.
pub(super) async fn steps(session: &mut impl Session, folder: &str) -> Result<(), Stop> {
    let prefix = if folder.is_empty() { String::new() } else { format!("{}/", folder.trim_matches('/')) };
    let (listing, _) = session.listing().await?;
    let paths: Vec<String> = listing
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.starts_with(&prefix))
        .filter(|p| p.ends_with(".yaml") || p.ends_with(".yml") || p.ends_with(".rego") || p.ends_with(".json"))
        .collect();
    let files = session.files(&paths, 4 * 1024 * 1024).await?;
    let app = session.app();
    let engine = crate::verify::Options { k8s_native_validation: !app.policies.rego_over_cel, ..Default::default() };
    let isolation = app.isolation.clone();
    let summary = tokio::task::spawn_blocking(move || -> Result<crate::verify::Summary, String> {
        let dir = tempfile_dir()?;
        for (path, text) in &files {
            let FileText::Text(text) = text else { continue };
            // Tree paths never hold `..` or a leading `/`, but they come from a pull request.
            if path.split('/').any(|p| p == ".." || p.is_empty()) {
                continue;
            }
            let target = dir.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::write(&target, text).map_err(|e| e.to_string())?;
        }
        // A pull request's policies may crash the engine: they run in a worker process.
        let request = crate::isolate::Request::Verify { paths: vec![dir.clone()], within: true, options: engine };
        let summary = crate::isolate::verify(&isolation, request);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(summary)
    })
    .await
    .map_err(|e| Stop::Internal(format!("policy tests panicked: {e}")))?
    .map_err(|e| Stop::Internal(format!("could not prepare the policy tests: {e}")))?;

    let failed: Vec<String> = summary
        .results
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| format!("- **{}**: {}", r.name, e.replace('\n', " "))))
        .collect();
    let title = format!("Policy tests: {} passed, {} failed", summary.passed(), summary.failed());
    let mut text = String::new();
    if !failed.is_empty() {
        text = format!("### Failing cases\n\n{}\n", failed.join("\n"));
    }
    let report = CheckRunReport {
        conclusion: if summary.failed() > 0 || summary.results.is_empty() { "failure" } else { "success" },
        title: title.clone(),
        summary: checkrun::truncate(
            &if summary.results.is_empty() {
                "No policy tests (gator `suite.yaml` or Rego `test_*` rules) were found. Add tests so that policy changes are checked before they reach every repository.".to_string()
            } else {
                format!("{title}. Pull requests to the policy repository are checked by running its tests (`guardrail verify`), at the head commit.")
            },
            checkrun::MAX_OUTPUT,
        ),
        text: checkrun::truncate(&text, checkrun::MAX_OUTPUT),
        annotations: Vec::new(),
    };
    session.verdict(&report).await
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("guardrail-verify-{}-{}", std::process::id(), crate::queue::now_ms()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}
