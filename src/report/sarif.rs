//! SARIF 2.1.0, the format GitHub code scanning (and most security dashboards) ingest. One rule per
//! policy of the run (with its description, remediation and a security severity), each finding a result
//! at its file region with a fingerprint unique in the log that survives lines moving, and exempted
//! findings as results with `suppressions`. A run that failed still writes a log, with
//! `executionSuccessful: false` and the errors as notifications, so an upload step has something to say.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::catalog::{self, PolicyInfo, Status};
use super::fingerprint::unique_fingerprints;
use super::paths::{readable_pointer, sarif_uri};
use super::RenderOptions;
use crate::findings::{Finding, Outcome, Severity, Suppressed, SuppressionKind};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Key of our entry in `partialFingerprints`; versioned so a change of recipe cannot be mistaken for
/// the old one (v1 left the message out, so two findings on one field shared a fingerprint).
const FINGERPRINT_KEY: &str = "guardrail/v2";

/// The base relative artifact locations are resolved against: the repository root.
const SRCROOT: &str = "%SRCROOT%";

pub(super) fn render(outcome: &Outcome, opts: &RenderOptions) -> String {
    let run = &opts.run;
    let rules = rules(outcome, &run.policies);
    let rule_index: BTreeMap<&str, usize> = rules.iter().enumerate().map(|(i, r)| (r.name.as_str(), i)).collect();

    let everything =
        outcome.findings.iter().map(|f| (f, None)).chain(outcome.suppressed.iter().map(|s| (&s.finding, Some(s))));
    let all: Vec<(&Finding, Option<&Suppressed>)> = everything.collect();
    let fingerprints = unique_fingerprints(all.iter().map(|(f, _)| (*f, run.repo_path(&f.file))));
    let results: Vec<Value> = all
        .iter()
        .zip(fingerprints)
        .map(|((f, suppressed), fingerprint)| {
            let mut result = result(f, *suppressed, rule_index[f.policy.as_str()], fingerprint, opts);
            let related = related(f, all.iter().map(|(g, _)| *g), opts);
            if !related.is_empty() {
                result["relatedLocations"] = related.into();
            }
            result
        })
        .collect();

    let mut driver = Map::new();
    driver.insert("name".into(), "guardrail".into());
    driver.insert("version".into(), opts.tool_version.into());
    // Cargo's `repository` field; SARIF wants a real URI or none.
    let information_uri = env!("CARGO_PKG_REPOSITORY");
    if !information_uri.is_empty() {
        driver.insert("informationUri".into(), information_uri.into());
    }
    driver.insert("rules".into(), rules.iter().map(rule).collect::<Vec<_>>().into());

    let mut invocation = Map::new();
    invocation.insert("executionSuccessful".into(), outcome.errors.is_empty().into());
    let notifications: Vec<Value> = outcome
        .errors
        .iter()
        .map(|e| json!({ "level": "error", "message": { "text": e } }))
        .chain(run.notes.iter().map(|n| json!({ "level": "note", "message": { "text": n } })))
        .collect();
    if !notifications.is_empty() {
        invocation.insert("toolExecutionNotifications".into(), notifications.into());
    }

    let mut sarif_run = Map::new();
    sarif_run.insert("tool".into(), json!({ "driver": driver }));
    sarif_run.insert("invocations".into(), json!([invocation]));
    if let Some(base) = run.root.as_ref().or(Some(&run.cwd)).filter(|p| p.is_absolute()) {
        sarif_run.insert("originalUriBaseIds".into(), json!({ SRCROOT: { "uri": directory_uri(base) } }));
    }
    // Our columns count characters; SARIF's default is UTF-16 code units.
    sarif_run.insert("columnKind".into(), "unicodeCodePoints".into());
    sarif_run.insert("results".into(), results.into());

    let doc = json!({ "$schema": SCHEMA, "version": "2.1.0", "runs": [sarif_run] });
    let mut text = serde_json::to_string_pretty(&doc).expect("a serde_json::Value always serializes");
    text.push('\n');
    text
}

/// Every policy that ran (code scanning closes the alerts of a rule that ran and found nothing), and
/// one for every other policy a finding names (guardrail's own checks of the input), sorted by id so the
/// indices do not depend on the order findings came in.
fn rules(outcome: &Outcome, policies: &[PolicyInfo]) -> Vec<PolicyInfo> {
    let mut rules: BTreeMap<String, PolicyInfo> =
        policies.iter().filter(|p| p.status == Status::Active).map(|p| (p.name.clone(), p.clone())).collect();
    let named: Vec<&Finding> = outcome.findings.iter().chain(outcome.suppressed.iter().map(|s| &s.finding)).collect();
    for f in &named {
        if !rules.contains_key(&f.policy) {
            let severity =
                named.iter().filter(|g| g.policy == f.policy).map(|g| g.severity).min().unwrap_or(f.severity);
            let info = policies
                .iter()
                .find(|p| p.name == f.policy)
                .cloned()
                .unwrap_or_else(|| catalog::unknown(&f.policy, severity));
            rules.insert(f.policy.clone(), PolicyInfo { name: f.policy.clone(), ..info });
        }
    }
    rules.into_values().collect()
}

fn rule(p: &PolicyInfo) -> Value {
    let full = if p.description.is_empty() { format!("guardrail policy {}", p.name) } else { p.description.clone() };
    let short = first_sentence(&full);
    let mut text = full.clone();
    let mut markdown = format!("**{}**: {full}", p.name);
    if !p.remediation.is_empty() {
        text.push_str(&format!("\n\nHow to fix: {}", p.remediation));
        markdown.push_str(&format!("\n\n**How to fix:** {}", p.remediation));
    }
    if !p.parameters.is_empty() {
        text.push_str("\n\nParameters:");
        markdown.push_str("\n\n| parameter | type | meaning |\n| --- | --- | --- |");
        for param in &p.parameters {
            text.push_str(&format!("\n- {} ({}): {}", param.name, param.kind, param.description));
            markdown.push_str(&format!(
                "\n| `{}` | {} | {} |",
                param.name,
                param.kind,
                param.description.replace('|', "\\|")
            ));
        }
    }
    let source = if p.builtin { "guardrail's built-in pack" } else { p.source.as_str() };
    if !source.is_empty() {
        markdown.push_str(&format!("\n\nSource: {source}"));
    }
    let mut properties = Map::new();
    properties.insert("tags".into(), json!(["security", "kubernetes"]));
    properties.insert("security-severity".into(), security_severity(p.severity()).into());
    if !p.constraint_kind.is_empty() {
        properties.insert("constraintKind".into(), p.constraint_kind.clone().into());
    }
    let mut rule = json!({
        "id": p.name,
        "name": rule_name(&p.name),
        "shortDescription": { "text": short },
        "fullDescription": { "text": full },
        "help": { "text": text, "markdown": markdown },
        "defaultConfiguration": { "level": level(p.severity()) },
        "properties": properties,
    });
    if let Some(uri) = p.help_uri() {
        rule["helpUri"] = uri.into();
    }
    rule
}

/// GitHub's scale: 9.0 and above critical, 7.0 high, 4.0 medium, below low. A deny constraint blocks a
/// change, so its alerts are high; the policy's own severity is the constraint's enforcement action.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Deny => "8.0",
        Severity::Warn => "5.0",
        Severity::Info => "2.0",
    }
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Deny => "error",
        Severity::Warn => "warning",
        Severity::Info => "note",
    }
}

/// `privileged-containers` -> `PrivilegedContainers`, `guardrail/yaml` -> `GuardrailYaml`.
fn rule_name(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next().map(|c| c.to_ascii_uppercase().to_string() + cs.as_str()).unwrap_or_default()
        })
        .collect()
}

fn first_sentence(text: &str) -> String {
    let end = text.find(". ").map(|i| i + 1).unwrap_or(text.len());
    text[..end].trim().to_string()
}

fn directory_uri(path: &std::path::Path) -> String {
    let mut uri = sarif_uri(&path.to_string_lossy());
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// The other offenders behind the same violation (two containers one message names, each volume
/// of a set): the findings of the same policy, constraint and resource whose message differs at
/// most by the missing field it names. Each is also a result of its own; linking them lets a
/// viewer of one see the others.
fn related<'a>(f: &Finding, all: impl Iterator<Item = &'a Finding>, opts: &RenderOptions) -> Vec<Value> {
    fn base(m: &str) -> &str {
        m.split(" (missing: ").next().unwrap_or(m)
    }
    let same = |g: &Finding| {
        g.policy == f.policy
            && g.constraint == f.constraint
            && g.file == f.file
            && g.resource.is_some()
            && g.resource == f.resource
            && base(&g.message) == base(&f.message)
            && (g.region.line, g.region.column, &g.pointer) != (f.region.line, f.region.column, &f.pointer)
    };
    all.filter(|g| same(g))
        .enumerate()
        .map(|(i, g)| {
            json!({
                "id": i,
                "physicalLocation": physical_location(g, opts),
                "message": { "text": format!("another offender: {}", readable_pointer(&g.pointer)) },
            })
        })
        .collect()
}

fn physical_location(f: &Finding, opts: &RenderOptions) -> Value {
    let mut physical = Map::new();
    let path = opts.run.repo_path(&f.file);
    let uri = sarif_uri(&path);
    let artifact = if uri.starts_with("file:") || path == "-" {
        json!({ "uri": uri })
    } else {
        json!({ "uri": uri, "uriBaseId": SRCROOT })
    };
    physical.insert("artifactLocation".into(), artifact);
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
    physical.into()
}

fn result(
    f: &Finding,
    suppressed: Option<&Suppressed>,
    rule_index: usize,
    fingerprint: String,
    opts: &RenderOptions,
) -> Value {
    let physical = physical_location(f, opts);
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

    let mut result = json!({
        "ruleId": f.policy,
        "ruleIndex": rule_index,
        "level": level(f.severity),
        "message": { "text": f.message },
        "locations": [{ "physicalLocation": physical }],
        "partialFingerprints": { FINGERPRINT_KEY: fingerprint },
        "properties": properties,
    });
    if let Some(s) = suppressed {
        let s = &s.suppression;
        // SARIF's two kinds: written in the file itself (an annotation on the resource), or beside it.
        let kind = match s.kind {
            SuppressionKind::Annotation => "inSource",
            SuppressionKind::Organisation | SuppressionKind::Baseline => "external",
        };
        let mut justification = s.reason.clone();
        if !s.until.is_empty() {
            justification.push_str(&format!(" (until {})", s.until));
        }
        let mut suppression = json!({ "kind": kind, "status": "accepted", "justification": justification });
        let mut bag = Map::new();
        bag.insert("source".into(), s.source.clone().into());
        if !s.owner.is_empty() {
            bag.insert("owner".into(), s.owner.clone().into());
        }
        if !s.until.is_empty() {
            bag.insert("until".into(), s.until.clone().into());
        }
        suppression["properties"] = bag.into();
        result["suppressions"] = json!([suppression]);
    }
    result
}
