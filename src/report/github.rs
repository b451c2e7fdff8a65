//! GitHub Actions workflow commands: each finding printed as `::error file=…,line=…::message` becomes an
//! annotation on the pull request diff when guardrail runs in a workflow step. Plain lines (the summary)
//! are shown in the log only.

use super::human::summary;
use super::paths::readable_pointer;
use super::terminal;
use super::{RenderOptions, RunInfo};
use crate::findings::{Finding, Outcome, Severity};

pub(super) fn render(outcome: &Outcome, opts: &RenderOptions) -> String {
    let run = &opts.run;
    let mut out = String::new();
    let mut shown = 0;
    for f in outcome.findings.iter().filter(|f| run.shows(f.severity)) {
        out.push_str(&command(f, run));
        out.push('\n');
        shown += 1;
    }
    for error in &outcome.errors {
        out.push_str(&format!("::error::{}\n", escape_data(error)));
    }
    if run.quiet && shown == 0 && outcome.errors.is_empty() {
        return out;
    }
    if !run.quiet {
        for note in &run.notes {
            out.push_str(&format!("::notice title=guardrail::{}\n", escape_data(note)));
        }
    }
    out.push_str(&terminal::escape(&summary(outcome, run)));
    out.push('\n');
    out
}

fn command(f: &Finding, run: &RunInfo) -> String {
    let name = match f.severity {
        Severity::Deny => "error",
        Severity::Warn => "warning",
        Severity::Info => "notice",
    };
    let mut props = vec![("file", run.repo_path(&f.file))];
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

/// The runner's escaping for a command's message (what `@actions/core` calls `escapeData`); the log
/// is a terminal too, so other control characters are shown as escapes rather than interpreted.
fn escape_data(text: &str) -> String {
    let text = text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    terminal::escape_line(&text).into_owned()
}

/// Property values additionally escape the separators of the property list.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}
