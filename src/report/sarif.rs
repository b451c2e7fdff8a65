//! SARIF 2.1.0, the format GitHub code scanning (and most security dashboards) ingest. One rule per
//! policy; each finding is a result at its file region, with the field pointer, the resource and the
//! constraint in the result's property bag and a fingerprint that survives unrelated edits.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::fingerprint::location_identity;
use super::paths::{readable_pointer, sarif_uri};
use super::RenderOptions;
use crate::findings::{Finding, Outcome, Severity};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Key of our entry in `partialFingerprints`; versioned so a change of recipe cannot be mistaken for
/// the old one.
const FINGERPRINT_KEY: &str = "guardrail/v1";

pub(super) fn render(outcome: &Outcome, opts: &RenderOptions) -> String {
    // Sorted, so the rule indices do not depend on which policy happened to be found first.
    let rule_index: BTreeMap<&str, usize> = {
        let mut policies: Vec<&str> = outcome.findings.iter().map(|f| f.policy.as_str()).collect();
        policies.sort_unstable();
        policies.dedup();
        policies.into_iter().enumerate().map(|(i, p)| (p, i)).collect()
    };
    // GitHub shows `shortDescription` at the top of an alert; policies carry no description of their
    // own here, so it names the policy.
    let rules: Vec<Value> = rule_index
        .keys()
        .map(|id| json!({ "id": id, "shortDescription": { "text": format!("guardrail policy {id}") } }))
        .collect();
    let results: Vec<Value> = outcome.findings.iter().map(|f| result(f, rule_index[f.policy.as_str()])).collect();

    let mut driver = Map::new();
    driver.insert("name".into(), "guardrail".into());
    driver.insert("version".into(), opts.tool_version.into());
    // Cargo's `repository` field; absent until the manifest names one, and SARIF wants a real URI or none.
    let information_uri = env!("CARGO_PKG_REPOSITORY");
    if !information_uri.is_empty() {
        driver.insert("informationUri".into(), information_uri.into());
    }
    driver.insert("rules".into(), rules.into());

    let mut invocation = Map::new();
    invocation.insert("executionSuccessful".into(), outcome.errors.is_empty().into());
    if !outcome.errors.is_empty() {
        let notifications: Vec<Value> =
            outcome.errors.iter().map(|e| json!({ "level": "error", "message": { "text": e } })).collect();
        invocation.insert("toolExecutionNotifications".into(), notifications.into());
    }

    let doc = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": driver },
            "invocations": [invocation],
            // Our columns count characters; SARIF's default is UTF-16 code units.
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("a serde_json::Value always serializes");
    text.push('\n');
    text
}

fn result(f: &Finding, rule_index: usize) -> Value {
    let level = match f.severity {
        Severity::Deny => "error",
        Severity::Warn => "warning",
        Severity::Info => "note",
    };
    let mut physical = Map::new();
    physical.insert("artifactLocation".into(), json!({ "uri": sarif_uri(&f.file) }));
    // SARIF lines and columns start at 1; a finding about a whole file has no region.
    if f.region.line > 0 {
        let r = f.region;
        let mut region = Map::new();
        region.insert("startLine".into(), r.line.into());
        if r.column > 0 {
            region.insert("startColumn".into(), r.column.into());
        }
        if r.end_line >= r.line {
            region.insert("endLine".into(), r.end_line.into());
            let ordered = r.end_line > r.line || r.end_column >= r.column;
            if r.column > 0 && r.end_column > 0 && ordered {
                region.insert("endColumn".into(), r.end_column.into());
            }
        }
        physical.insert("region".into(), region.into());
    }

    let mut properties = Map::new();
    properties.insert("constraint".into(), f.constraint.clone().into());
    properties.insert("pointer".into(), f.pointer.clone().into());
    properties.insert("path".into(), readable_pointer(&f.pointer).into());
    if let Some(r) = &f.resource {
        properties.insert(
            "resource".into(),
            json!({ "apiVersion": r.api_version, "kind": r.kind, "namespace": r.namespace, "name": r.name }),
        );
    }

    json!({
        "ruleId": f.policy,
        "ruleIndex": rule_index,
        "level": level,
        "message": { "text": f.message },
        "locations": [{ "physicalLocation": physical }],
        "partialFingerprints": { FINGERPRINT_KEY: location_identity(f).hex() },
        "properties": properties,
    })
}
