//! guardrail's own JSON output: a flat object per finding (position fields at the top level, the
//! resource as an object or `null`), the findings exemptions or the baseline cover (with why), the
//! errors, and what the run checked, for scripts and editor integrations.

use serde_json::{json, Value};

use super::RenderOptions;
use crate::findings::{Finding, Outcome, Severity, Suppressed};

pub(super) fn render(outcome: &Outcome, opts: &RenderOptions) -> String {
    let findings: Vec<Value> = outcome.findings.iter().map(finding).collect();
    let suppressed: Vec<Value> = outcome.suppressed.iter().map(suppressed).collect();
    let count = |s: Severity| outcome.findings.iter().filter(|f| f.severity == s).count();
    let mut summary = json!({
        "findings": outcome.findings.len(),
        "deny": count(Severity::Deny),
        "warn": count(Severity::Warn),
        "info": count(Severity::Info),
        "suppressed": outcome.suppressed.len(),
        "errors": outcome.errors.len(),
    });
    if let Some(c) = opts.run.checked {
        summary["files"] = c.files.into();
        summary["objects"] = c.objects.into();
        summary["policies"] = c.policies.into();
    }
    let doc = json!({
        "findings": findings,
        "suppressed": suppressed,
        "exceptions": outcome.exceptions,
        "errors": outcome.errors,
        "notes": opts.run.notes,
        "summary": summary,
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("a serde_json::Value always serializes");
    text.push('\n');
    text
}

fn finding(f: &Finding) -> Value {
    let resource = match &f.resource {
        Some(r) => json!({
            "apiVersion": r.api_version,
            "kind": r.kind,
            "namespace": r.namespace,
            "name": r.name,
        }),
        None => Value::Null,
    };
    json!({
        "policy": f.policy,
        "constraint": f.constraint,
        "severity": f.severity.as_str(),
        "message": f.message,
        "file": f.file,
        "line": f.region.line,
        "column": f.region.column,
        "end_line": f.region.end_line,
        "end_column": f.region.end_column,
        "pointer": f.pointer,
        "resource": resource,
    })
}

fn suppressed(s: &Suppressed) -> Value {
    let mut value = finding(&s.finding);
    value["suppression"] = serde_json::to_value(&s.suppression).expect("a suppression serializes");
    value
}
