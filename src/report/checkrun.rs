//! The check run: conclusion, title, summary and details (templates/summary.md.j2, text.md.j2), and one
//! annotation per finding at its exact line and column. Pure: the job sends what this builds.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::paths::{readable_pointer, repo_path};
use crate::findings::{Finding, Outcome, Severity};

/// GitHub's limit for `output.summary` and `output.text`.
pub const MAX_OUTPUT: usize = 65_535;
/// GitHub accepts at most 50 annotations per request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;

/// An exemption that silenced a finding, for the summary.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct UsedExemption {
    pub policy: String,
    pub resource: String,
    pub reason: String,
    pub owner: String,
    pub until: String,
    /// `annotation in deploy.yaml:12` or `policy repository`.
    pub source: String,
}

#[derive(Clone, Debug, Default)]
pub struct CheckRunContext {
    pub files: usize,
    pub resources: usize,
    /// e.g. "built-in pack + acme/policies@1a2b3c4 (policies/)".
    pub policy_source: String,
    pub exemptions: Vec<UsedExemption>,
    pub rejected_exemptions: Vec<String>,
    pub outside_diff: usize,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckRunReport {
    pub conclusion: &'static str,
    pub title: String,
    pub summary: String,
    pub text: String,
    pub annotations: Vec<Value>,
}

/// Cuts `text` to at most `max` bytes at a line boundary and says so.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let note = "\n\n… truncated: GitHub shows at most 65535 characters here. Run `guardrail check` locally or see the annotations for everything.\n";
    let mut cut = max.saturating_sub(note.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let cut = text[..cut].rfind('\n').unwrap_or(cut);
    format!("{}{note}", &text[..cut])
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Deny => "failure",
        Severity::Warn => "warning",
        Severity::Info => "notice",
    }
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max - 1).collect::<String>() + "…"
    }
}

/// One annotation; `None` for findings without a file line (nothing to point at).
pub fn annotation(f: &Finding) -> Option<Value> {
    if f.file.is_empty() || f.region.line == 0 {
        return None;
    }
    let end_line = f.region.end_line.max(f.region.line);
    let mut a = json!({
        "path": repo_path(&f.file),
        "start_line": f.region.line,
        "end_line": end_line,
        "annotation_level": level(f.severity),
        "title": clip(&if f.constraint.is_empty() { f.policy.clone() } else { format!("{} ({})", f.policy, f.constraint) }, 255),
        "message": clip(&f.message, 60_000),
    });
    if !f.pointer.is_empty() {
        a["raw_details"] = json!(clip(&readable_pointer(&f.pointer), 60_000));
    }
    // GitHub accepts columns only on single-line annotations.
    if end_line == f.region.line && f.region.column > 0 {
        a["start_column"] = json!(f.region.column);
        a["end_column"] = json!(f.region.end_column.max(f.region.column));
    }
    Some(a)
}

pub fn build(outcome: &Outcome, ctx: &CheckRunContext) -> CheckRunReport {
    let count = |s: Severity| outcome.findings.iter().filter(|f| f.severity == s).count();
    let (deny, warn, info) = (count(Severity::Deny), count(Severity::Warn), count(Severity::Info));
    let conclusion = if deny > 0 || !outcome.errors.is_empty() {
        "failure"
    } else if warn > 0 {
        "neutral"
    } else {
        "success"
    };
    let title = match (deny, warn) {
        (0, 0) if outcome.errors.is_empty() => "No policy violations".to_string(),
        (0, 0) => "Policies could not be evaluated".to_string(),
        (d, 0) => format!("{d} policy violation(s)"),
        (0, w) => format!("{w} warning(s)"),
        (d, w) => format!("{d} policy violation(s), {w} warning(s)"),
    };
    let env = super::templates::environment();
    let mut notes = ctx.notes.clone();
    notes.extend(outcome.errors.iter().map(|e| format!("error: {e}")));
    // Files guardrail did not check (a Helm template, a file it could not read as a manifest): always
    // named in the summary, so that a skip is never silent.
    let skipped: Vec<String> = outcome
        .findings
        .iter()
        .filter(|f| f.policy == crate::manifest::NOTE_POLICY)
        .map(|f| format!("`{}`: {}", repo_path(&f.file), f.message))
        .collect();
    let summary = env
        .get_template("summary.md")
        .and_then(|t| {
            t.render(json!({
                "counts": {"deny": deny, "warn": warn, "info": info, "files": ctx.files, "resources": ctx.resources},
                "policy_source": ctx.policy_source,
                "exemptions": ctx.exemptions,
                "rejected_exemptions": ctx.rejected_exemptions,
                "outside_diff": ctx.outside_diff,
                "notes": notes,
                "skipped": skipped,
            }))
        })
        .unwrap_or_else(|e| format!("(summary template failed: {e})"));
    let mut by_file: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for f in &outcome.findings {
        by_file.entry(repo_path(&f.file)).or_default().push(super::templates::finding_context(f));
    }
    let files: Vec<Value> =
        by_file.into_iter().map(|(name, findings)| json!({"name": name, "findings": findings})).collect();
    let text = env
        .get_template("text.md")
        .and_then(|t| t.render(json!({ "files": files })))
        .unwrap_or_else(|e| format!("(details template failed: {e})"));
    CheckRunReport {
        conclusion,
        title,
        summary: truncate(&summary, MAX_OUTPUT),
        text: truncate(&text, MAX_OUTPUT),
        annotations: outcome.findings.iter().filter_map(annotation).collect(),
    }
}

/// The check run's "Re-run" button.
pub fn rerun_action() -> Value {
    json!({"label": "Re-run", "description": "Check this commit again", "identifier": crate::intake::RERUN_ACTION})
}
