//! A baseline of accepted findings: `--write-baseline FILE` records today's, `--baseline FILE` reports
//! only the others. A finding is recorded by a fingerprint of what it is (policy, constraint, file,
//! field, resource, message), not where it is, so it stays accepted when lines move; equal findings
//! are counted, so a second copy of an accepted finding is new.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::findings::{Finding, Outcome, Suppressed, Suppression, SuppressionKind};
use crate::report::{baseline_fingerprints, RunInfo};

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub version: u32,
    pub tool: String,
    /// One entry per accepted finding; `policy`, `file`, `resource` and `message` are for people
    /// reviewing the file, only `fingerprint` is compared.
    pub findings: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub fingerprint: String,
    pub policy: String,
    pub file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    pub message: String,
}

/// The baseline of `outcome`'s findings (exempted ones are not recorded: their exemption covers them).
pub fn of(outcome: &Outcome, run: &RunInfo) -> Baseline {
    let fingerprints = baseline_fingerprints(&outcome.findings, run);
    let mut findings: Vec<Entry> = outcome
        .findings
        .iter()
        .zip(fingerprints)
        .map(|(f, fingerprint)| Entry {
            fingerprint,
            policy: f.policy.clone(),
            file: run.repo_path(&f.file),
            resource: f.resource.as_ref().map(|r| r.display()).unwrap_or_default(),
            message: f.message.clone(),
        })
        .collect();
    findings.sort_by(|a, b| (&a.file, &a.policy, &a.fingerprint).cmp(&(&b.file, &b.policy, &b.fingerprint)));
    Baseline { version: VERSION, tool: "guardrail".into(), findings }
}

pub fn write(path: &Path, baseline: &Baseline) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(baseline).expect("a baseline serializes");
    text.push('\n');
    super::output::write_file(path, &text)
}

pub fn read(path: &Path) -> Result<Baseline, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--baseline {}: {e}", path.display()))?;
    let baseline: Baseline = serde_json::from_str(&text)
        .map_err(|e| format!("--baseline {}: not a guardrail baseline: {e}", path.display()))?;
    if baseline.version != VERSION {
        return Err(format!(
            "--baseline {}: version {} is not one this guardrail reads ({VERSION}); write it again with --write-baseline",
            path.display(),
            baseline.version
        ));
    }
    Ok(baseline)
}

/// Moves the findings the baseline accepts to `outcome.suppressed`; returns how many.
pub fn apply(outcome: &mut Outcome, baseline: &Baseline, source: &Path, run: &RunInfo) -> usize {
    let mut budget: HashMap<&str, usize> = HashMap::new();
    for e in &baseline.findings {
        *budget.entry(e.fingerprint.as_str()).or_default() += 1;
    }
    let fingerprints = baseline_fingerprints(&outcome.findings, run);
    let mut kept: Vec<Finding> = Vec::new();
    let mut accepted = 0;
    for (f, fingerprint) in outcome.findings.drain(..).zip(fingerprints) {
        match budget.get_mut(fingerprint.as_str()).filter(|n| **n > 0) {
            Some(n) => {
                *n -= 1;
                accepted += 1;
                outcome.suppressed.push(Suppressed {
                    finding: f,
                    suppression: Suppression {
                        kind: SuppressionKind::Baseline,
                        reason: "accepted in the baseline".into(),
                        owner: String::new(),
                        until: String::new(),
                        source: format!("baseline {}", source.display()),
                    },
                });
            }
            None => kept.push(f),
        }
    }
    outcome.findings = kept;
    accepted
}
