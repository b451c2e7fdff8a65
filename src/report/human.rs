//! Diagnostics for a terminal, shaped like rustc's and cargo-deny's: a header, the location, the
//! offending line with the field underlined, then notes. The JUnit output reuses `diagnostic` (without
//! colors) as the body of its test cases.

use std::collections::BTreeSet;

use super::paths::readable_pointer;
use super::terminal::{self, escape, escape_line};
use super::{RenderOptions, RunInfo, SourceText};
use crate::findings::{Finding, Outcome, Severity, SuppressionKind};

/// Spaces per tab when a source line is shown; rustc's choice. Columns count characters, so a tab is
/// one column but four cells, and the underline has to account for that.
const TAB_WIDTH: usize = 4;

pub(super) fn render(outcome: &Outcome, sources: &dyn SourceText, opts: &RenderOptions) -> String {
    let paint = Paint(opts.color);
    let run = &opts.run;
    let mut out = String::new();
    let shown: Vec<&Finding> = outcome.findings.iter().filter(|f| run.shows(f.severity)).collect();
    for finding in &shown {
        out.push_str(&diagnostic(finding, sources, paint));
        out.push('\n');
    }
    if !run.errors_elsewhere {
        for error in &outcome.errors {
            out.push_str(&paint.apply(ERROR, "error"));
            out.push_str(&paint.apply(BOLD, &format!(": {}", indent_continuation(&escape(error)))));
            out.push('\n');
        }
        if !outcome.errors.is_empty() {
            out.push('\n');
        }
    }
    if run.quiet {
        if shown.is_empty() && outcome.errors.is_empty() {
            return out;
        }
    } else {
        for note in &run.notes {
            out.push_str(&paint.apply(NOTE, "note"));
            out.push_str(&format!(": {}\n", indent_continuation(&escape(note))));
        }
    }
    out.push_str(&paint.apply(BOLD, &summary(outcome, run)));
    out.push('\n');
    out
}

/// `3 findings (1 deny, 1 warn, 1 info) in 2 files; 4 files and 9 objects checked against 10 policies`,
/// `no findings; …`, with `, 1 error` appended when guardrail could not check everything (so "no
/// findings" never reads as a clean bill of health) and what exemptions and the baseline covered.
pub(super) fn summary(outcome: &Outcome, run: &RunInfo) -> String {
    let count = |s: Severity| outcome.findings.iter().filter(|f| f.severity == s).count();
    let mut text = if outcome.findings.is_empty() {
        "no findings".to_string()
    } else {
        let files: BTreeSet<&str> = outcome.findings.iter().map(|f| f.file.as_str()).collect();
        format!(
            "{} ({} deny, {} warn, {} info) in {}",
            plural(outcome.findings.len(), "finding"),
            count(Severity::Deny),
            count(Severity::Warn),
            count(Severity::Info),
            plural(files.len(), "file"),
        )
    };
    let baseline = outcome.suppressed.iter().filter(|s| s.suppression.kind == SuppressionKind::Baseline).count();
    let exempted = outcome.suppressed.len() - baseline;
    if exempted > 0 {
        text.push_str(&format!(", {exempted} exempted"));
    }
    if baseline > 0 {
        text.push_str(&format!(", {baseline} in the baseline"));
    }
    if !outcome.errors.is_empty() {
        text.push_str(&format!(", {}", plural(outcome.errors.len(), "error")));
    }
    if let Some(c) = run.checked {
        text.push_str(&format!(
            "; {} and {} checked against {}",
            plural(c.files, "file"),
            plural(c.objects, "object"),
            plural(c.policies, "policy")
        ));
    }
    text
}

fn plural(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {noun}s"),
    }
}

/// One finding as a multi-line block ending in a newline.
pub(super) fn diagnostic(f: &Finding, sources: &dyn SourceText, paint: Paint) -> String {
    let severity_style = match f.severity {
        Severity::Deny => ERROR,
        Severity::Warn => WARNING,
        Severity::Info => NOTE,
    };
    let region = f.region;
    let width = digits(region.line.max(1));
    let pad = " ".repeat(width);
    let bar = paint.apply(GUTTER, "|");
    let path = escape_line(&readable_pointer(&f.pointer)).into_owned();

    let mut out = String::new();
    let policy = escape_line(&f.policy);
    out.push_str(&paint.apply(severity_style, &format!("{}[{policy}]", f.severity.as_str())));
    out.push_str(&paint.apply(BOLD, &format!(": {}", indent_continuation(&escape(&f.message)))));
    out.push('\n');

    let file = escape_line(&f.file);
    let location = match (region.line, region.column) {
        (0, _) => file.into_owned(),
        (line, 0) => format!("{file}:{line}"),
        (line, column) => format!("{file}:{line}:{column}"),
    };
    out.push_str(&format!("{pad}{} {location}\n", paint.apply(GUTTER, "-->")));

    let source_line = match region.line {
        0 => None,
        line => sources.source(&f.file).and_then(|text| text.lines().nth(line as usize - 1)),
    };
    let mut notes = Vec::new();
    if let Some(text) = source_line {
        let (shown, start, len) = underline(text, f);
        out.push_str(&format!("{pad} {bar}\n"));
        let number = paint.apply(GUTTER, &format!("{:>width$}", region.line));
        out.push_str(format!("{number} {bar} {shown}").trim_end());
        out.push('\n');
        let carets = paint.apply(severity_style, &"^".repeat(len));
        let label = if path.is_empty() { String::new() } else { format!(" {}", paint.apply(severity_style, &path)) };
        out.push_str(&format!("{pad} {bar} {}{carets}{label}\n", " ".repeat(start)));
    } else if !path.is_empty() {
        // Without the line there is no underline to carry the field, so it becomes a note.
        notes.push(("field", path));
    }
    if let Some(resource) = &f.resource {
        notes.push(("resource", escape_line(&resource.display()).into_owned()));
    }
    if !f.constraint.is_empty() {
        notes.push(("constraint", escape_line(&f.constraint).into_owned()));
    }
    if !notes.is_empty() {
        out.push_str(&format!("{pad} {bar}\n"));
    }
    for (name, value) in notes {
        out.push_str(&format!("{pad} {} {}: {value}\n", paint.apply(GUTTER, "="), paint.apply(BOLD, name)));
    }
    out
}

/// The source line with tabs expanded and control characters escaped, and where the underline starts
/// and how long it is, in cells. The underline covers `column..end_column`, or to the end of the line
/// when the region spans lines; it is clamped to the line and is never empty, so a point past the last
/// character still shows.
fn underline(text: &str, f: &Finding) -> (String, usize, usize) {
    let text = text.trim_end_matches('\r');
    let chars: Vec<char> = text.chars().collect();
    let start = (f.region.column.max(1) as usize - 1).min(chars.len());
    let end = if f.region.end_line == f.region.line {
        (f.region.end_column.max(1) as usize - 1).min(chars.len())
    } else {
        chars.len()
    };
    let cells = |c: &char| terminal::cells(*c, TAB_WIDTH);
    let start_cell: usize = chars[..start].iter().map(cells).sum();
    let len_cells: usize = chars[start..end.max(start)].iter().map(cells).sum();
    let shown = escape(text).replace('\t', &" ".repeat(TAB_WIDTH));
    (shown, start_cell, len_cells.max(1))
}

fn digits(n: u32) -> usize {
    n.to_string().len()
}

/// Later lines of a multi-line message are indented so they do not read as the start of a new block.
fn indent_continuation(text: &str) -> String {
    text.trim_end_matches('\n').replace('\n', "\n  ")
}

const ERROR: &str = "1;31";
const WARNING: &str = "1;33";
const NOTE: &str = "1;36";
const GUTTER: &str = "1;34";
const BOLD: &str = "1";

/// Whether to wrap text in ANSI SGR sequences.
#[derive(Clone, Copy)]
pub(super) struct Paint(pub(super) bool);

impl Paint {
    fn apply(self, style: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{style}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}
