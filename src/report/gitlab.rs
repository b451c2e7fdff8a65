//! GitLab Code Quality report (a subset of the Code Climate issue format): a JSON array that GitLab
//! shows in the merge request widget and diff when a job uploads it as `artifacts:reports:codequality`.
//! GitLab keeps only one issue per fingerprint, so fingerprints must be unique within a report.
//! Severities follow GitLab's scale (info, minor, major, critical, blocker): a deny finding blocks the
//! change, so it is `critical`, and `blocker` when guardrail could not check the input at all (a file
//! it could not read, a policy that failed on an object) or the run failed; warnings are `minor`.
//! Exempted findings are left out: GitLab has no way to show them as accepted.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::fingerprint::{location_identity_at, Fingerprint};
use super::RenderOptions;
use crate::findings::{Finding, Outcome, Severity};

pub(super) fn render(outcome: &Outcome, opts: &RenderOptions) -> String {
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut issues: Vec<Value> = Vec::new();
    for f in &outcome.findings {
        let path = opts.run.repo_path(&f.file);
        let identity = identity(f, &path);
        // The same message on the same field twice (rare, but YAML errors have no pointer) would
        // collide; the occurrence number keeps each unique and still stable from run to run.
        let n = seen.entry(identity.hex()).or_insert(0);
        *n += 1;
        let fingerprint = if *n == 1 { identity.hex() } else { identity.field(&n.to_string()).hex() };
        issues.push(issue(f, &path, fingerprint));
    }
    for error in &outcome.errors {
        // Errors are not about a place in a file, but GitLab drops issues without a path and line.
        issues.push(json!({
            "type": "issue",
            "check_name": "guardrail/error",
            "description": error,
            "fingerprint": Fingerprint::new().field("guardrail/error").field(error).hex(),
            "severity": "blocker",
            "location": { "path": ".", "lines": { "begin": 1 } },
        }));
    }
    let mut text = serde_json::to_string_pretty(&issues).expect("a serde_json::Value always serializes");
    text.push('\n');
    text
}

/// Unique per finding, unlike SARIF's: GitLab has no rule-plus-location key of its own to tell apart
/// two messages about one field.
fn identity(f: &Finding, path: &str) -> Fingerprint {
    location_identity_at(f, path).field(&f.message)
}

/// A deny finding about the input itself, or a policy that could not run on an object: nothing was
/// checked there, which is worse than a known violation.
fn unchecked(f: &Finding) -> bool {
    f.policy.starts_with("guardrail/")
        || f.message.contains("was not checked")
        || f.message.contains("not checked by it")
}

fn issue(f: &Finding, path: &str, fingerprint: String) -> Value {
    let severity = match f.severity {
        Severity::Deny if unchecked(f) => "blocker",
        Severity::Deny => "critical",
        Severity::Warn => "minor",
        Severity::Info => "info",
    };
    let r = f.region;
    let location = if r.line == 0 {
        // A finding about the whole file; GitLab requires a line.
        json!({ "path": path, "lines": { "begin": 1 } })
    } else {
        let end_line = r.end_line.max(r.line);
        json!({
            "path": path,
            "positions": {
                "begin": { "line": r.line, "column": r.column },
                "end": { "line": end_line, "column": r.end_column },
            },
        })
    };
    json!({
        "type": "issue",
        "check_name": f.policy,
        "description": f.message,
        "fingerprint": fingerprint,
        "severity": severity,
        "location": location,
    })
}
