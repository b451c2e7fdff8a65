//! guardrail's own JSON output: a flat object per finding (position fields at the top level, the
//! resource as an object or `null`) and the errors, for scripts and editor integrations.

use serde_json::{json, Value};

use crate::findings::{Finding, Outcome};

pub(super) fn render(outcome: &Outcome) -> String {
    let findings: Vec<Value> = outcome.findings.iter().map(finding).collect();
    let doc = json!({ "findings": findings, "errors": outcome.errors });
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
