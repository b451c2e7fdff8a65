//! guardrail's own JSON output: a flat object per finding (position fields at the top level, the
//! resource as an object or `null`), the findings exemptions or the baseline cover (with why), the
//! errors, and what the run checked, for scripts and editor integrations.

use serde::Serialize;

use super::RenderOptions;
use crate::findings::{Finding, Outcome, Severity, Suppressed};

/// The document, borrowed from the outcome and serialized as it is written: at 100,000 workloads a
/// `serde_json::Value` tree of every finding held more than the findings themselves.
#[derive(Serialize)]
struct Doc<'a> {
    findings: Vec<FindingOut<'a>>,
    suppressed: Vec<SuppressedOut<'a>>,
    exceptions: &'a [crate::findings::ExceptionApplied],
    errors: &'a [String],
    notes: &'a [String],
    summary: Summary,
}

#[derive(Serialize)]
struct Summary {
    findings: usize,
    deny: usize,
    warn: usize,
    info: usize,
    suppressed: usize,
    errors: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    objects: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policies: Option<usize>,
}

#[derive(Serialize)]
struct FindingOut<'a> {
    policy: &'a str,
    constraint: &'a str,
    severity: &'static str,
    message: &'a str,
    file: &'a str,
    line: u32,
    column: u32,
    end_line: u32,
    end_column: u32,
    pointer: &'a str,
    resource: &'a Option<crate::findings::ResourceRef>,
}

#[derive(Serialize)]
struct SuppressedOut<'a> {
    #[serde(flatten)]
    finding: FindingOut<'a>,
    suppression: &'a crate::findings::Suppression,
}

pub(super) fn render(outcome: &Outcome, opts: &RenderOptions) -> String {
    let count = |s: Severity| outcome.findings.iter().filter(|f| f.severity == s).count();
    let checked = opts.run.checked;
    let doc = Doc {
        findings: outcome.findings.iter().map(finding).collect(),
        suppressed: outcome
            .suppressed
            .iter()
            .map(|s: &Suppressed| SuppressedOut { finding: finding(&s.finding), suppression: &s.suppression })
            .collect(),
        exceptions: &outcome.exceptions,
        errors: &outcome.errors,
        notes: &opts.run.notes,
        summary: Summary {
            findings: outcome.findings.len(),
            deny: count(Severity::Deny),
            warn: count(Severity::Warn),
            info: count(Severity::Info),
            suppressed: outcome.suppressed.len(),
            errors: outcome.errors.len(),
            files: checked.map(|c| c.files),
            objects: checked.map(|c| c.objects),
            policies: checked.map(|c| c.policies),
        },
    };
    let mut text = serde_json::to_string_pretty(&doc).expect("the report serializes");
    text.push('\n');
    text
}

fn finding(f: &Finding) -> FindingOut<'_> {
    FindingOut {
        policy: &f.policy,
        constraint: &f.constraint,
        severity: f.severity.as_str(),
        message: &f.message,
        file: &f.file,
        line: f.region.line,
        column: f.region.column,
        end_line: f.region.end_line,
        end_column: f.region.end_column,
        pointer: &f.pointer,
        resource: &f.resource,
    }
}
