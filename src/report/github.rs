//! GitHub Actions workflow commands: each finding printed as `::error file=…,line=…::message` becomes an
//! annotation on the pull request diff when guardrail runs in a workflow step. Plain lines (the summary)
//! are shown in the log only.

use super::human::summary;
use super::paths::{readable_pointer, repo_path};
use crate::findings::{Finding, Outcome, Severity};

pub(super) fn render(outcome: &Outcome) -> String {
    let mut out = String::new();
    for f in &outcome.findings {
        out.push_str(&command(f));
        out.push('\n');
    }
    for error in &outcome.errors {
        out.push_str(&format!("::error::{}\n", escape_data(error)));
    }
    out.push_str(&summary(outcome));
    out.push('\n');
    out
}

fn command(f: &Finding) -> String {
    let name = match f.severity {
        Severity::Deny => "error",
        Severity::Warn => "warning",
        Severity::Info => "notice",
    };
    let mut props = vec![("file", repo_path(&f.file))];
    let r = f.region;
    if r.line > 0 {
        props.push(("line", r.line.to_string()));
        // GitHub rejects columns on annotations that span lines.
        let one_line = r.end_line <= r.line;
        if one_line && r.column > 0 {
            props.push(("col", r.column.to_string()));
        }
        if r.end_line > r.line {
            props.push(("endLine", r.end_line.to_string()));
        } else {
            props.push(("endLine", r.line.to_string()));
        }
        if one_line && r.column > 0 && r.end_column > r.column {
            props.push(("endColumn", r.end_column.to_string()));
        }
    }
    let title = match &f.resource {
        Some(resource) => format!("{}: {}", f.policy, resource.display()),
        None => f.policy.clone(),
    };
    props.push(("title", title));

    // The annotation shows the message only, so the field it is about goes on its own line.
    let path = readable_pointer(&f.pointer);
    let message = if path.is_empty() { f.message.clone() } else { format!("{}\nfield: {path}", f.message) };

    let props: Vec<String> = props.into_iter().map(|(k, v)| format!("{k}={}", escape_property(&v))).collect();
    format!("::{name} {}::{}", props.join(","), escape_data(&message))
}

/// The runner's escaping for a command's message (what `@actions/core` calls `escapeData`).
fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Property values additionally escape the separators of the property list.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}
