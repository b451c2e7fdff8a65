//! JUnit XML for CI test-report views (GitLab's test report tab, Jenkins, Azure Pipelines). One test
//! suite per file; a deny finding is a failed test case, warn and info findings are passing test cases
//! whose `<system-out>` holds the diagnostic (visible without failing the pipeline), exempted findings
//! are skipped cases that say why, and errors are `<error>` cases.
//!
//! Where each viewer shows the place: GitLab shows a case's `file` attribute and the failure text,
//! Jenkins and Azure show the class and name and the failure message. So the file is the class name
//! and the `file` attribute (relative to the repository root), the line is the `line` attribute, and
//! the failure message starts with `file:line:column`. Names carry the field, not the line, so a
//! case keeps its identity (and its history in Jenkins) when lines move.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::human::{diagnostic, Paint};
use super::paths::readable_pointer;
use super::{RenderOptions, SourceText};
use crate::findings::{Finding, Outcome, Severity, Suppressed};

/// The cases of one file.
#[derive(Default)]
struct Suite {
    cases: String,
    tests: usize,
    failures: usize,
    skipped: usize,
}

pub(super) fn render(outcome: &Outcome, sources: &dyn SourceText, opts: &RenderOptions) -> String {
    let mut suites: BTreeMap<String, Suite> = BTreeMap::new();
    let mut names: HashMap<(String, String), usize> = HashMap::new();
    for f in &outcome.findings {
        let path = opts.run.repo_path(&f.file);
        let suite = suites.entry(path.clone()).or_default();
        test_case(suite, f, None, &path, sources, &mut names);
    }
    for s in &outcome.suppressed {
        let path = opts.run.repo_path(&s.finding.file);
        let suite = suites.entry(path.clone()).or_default();
        test_case(suite, &s.finding, Some(s), &path, sources, &mut names);
    }
    let mut body = String::new();
    let mut totals = Suite::default();
    for (file, suite) in &suites {
        let counts = format!(
            "tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\"",
            suite.tests, suite.failures, suite.skipped
        );
        let file = escape(file, true);
        let _ = write!(body, "  <testsuite name=\"{file}\" file=\"{file}\" {counts}>\n{}  </testsuite>\n", suite.cases);
        totals.tests += suite.tests;
        totals.failures += suite.failures;
        totals.skipped += suite.skipped;
    }
    // Errors, and a clean run: a report without test cases shows as "no tests" (or an error) in CI,
    // while a clean run should be green.
    let mut cases = String::new();
    for (i, error) in outcome.errors.iter().enumerate() {
        let _ = write!(
            cases,
            "    <testcase classname=\"guardrail\" name=\"error {}\">\n      <error message=\"{}\" type=\"error\">{}</error>\n    </testcase>\n",
            i + 1,
            escape(first_line(error), true),
            escape(error, false),
        );
    }
    let passing = usize::from(outcome.findings.is_empty() && outcome.errors.is_empty());
    if passing == 1 {
        let what = match opts.run.checked {
            Some(c) => format!("{} files and {} objects checked", c.files, c.objects),
            None => "no findings".to_string(),
        };
        let _ = writeln!(cases, "    <testcase classname=\"guardrail\" name=\"guardrail\">\n      <system-out>{}</system-out>\n    </testcase>", escape(&what, false));
    }
    if !cases.is_empty() {
        let n = outcome.errors.len() + passing;
        let _ = write!(
            body,
            "  <testsuite name=\"guardrail\" tests=\"{n}\" failures=\"0\" errors=\"{}\" skipped=\"0\">\n{cases}  </testsuite>\n",
            outcome.errors.len()
        );
    }
    let tests = totals.tests + outcome.errors.len() + passing;
    let counts = format!(
        "tests=\"{tests}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\"",
        totals.failures,
        outcome.errors.len(),
        totals.skipped
    );
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"guardrail\" {counts}>\n{body}</testsuites>\n"
    )
}

fn test_case(
    suite: &mut Suite,
    f: &Finding,
    suppressed: Option<&Suppressed>,
    path: &str,
    sources: &dyn SourceText,
    names: &mut HashMap<(String, String), usize>,
) {
    let mut name = f.policy.clone();
    if let Some(r) = &f.resource {
        name.push_str(&format!(" {}", r.display()));
    }
    let field = readable_pointer(&f.pointer);
    if !field.is_empty() {
        name.push_str(&format!(" {field}"));
    }
    // Two findings of one policy on one field would otherwise share a name, and some report viewers
    // merge or drop test cases with the same class and name.
    let seen = names.entry((path.to_string(), name.clone())).or_insert(0);
    *seen += 1;
    if *seen > 1 {
        name = format!("{name} ({seen})");
    }
    suite.tests += 1;
    let file = escape(path, true);
    let _ = write!(suite.cases, "    <testcase classname=\"{file}\" name=\"{}\" file=\"{file}\"", escape(&name, true));
    if f.region.line > 0 {
        let _ = write!(suite.cases, " line=\"{}\"", f.region.line);
    }
    suite.cases.push_str(">\n");
    let location = match (f.region.line, f.region.column) {
        (0, _) => path.to_string(),
        (line, 0) => format!("{path}:{line}"),
        (line, column) => format!("{path}:{line}:{column}"),
    };
    let body = escape(&diagnostic(f, sources, Paint(false)), false);
    if let Some(s) = suppressed {
        suite.skipped += 1;
        let why = format!("exempted ({}): {}", s.suppression.source, s.suppression.reason);
        let _ = writeln!(suite.cases, "      <skipped message=\"{}\"/>", escape(&why, true));
        let _ = writeln!(suite.cases, "      <system-out>{body}</system-out>");
    } else {
        match f.severity {
            Severity::Deny => {
                suite.failures += 1;
                let message = format!("{location}: {}", first_line(&f.message));
                let _ = writeln!(
                    suite.cases,
                    "      <failure message=\"{}\" type=\"deny\">{body}</failure>",
                    escape(&message, true)
                );
            }
            Severity::Warn | Severity::Info => {
                let _ = writeln!(suite.cases, "      <system-out>{body}</system-out>");
            }
        }
    }
    suite.cases.push_str("    </testcase>\n");
}

/// Report viewers show the `message` attribute on one line; the full text is in the body.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// Escape for XML 1.0 text (`attribute == false`) or a double-quoted attribute value. Control
/// characters other than tab, newline and carriage return cannot appear in XML 1.0 at all, not even
/// as character references, so they become U+FFFD. In attributes, whitespace is written as character
/// references because parsers would otherwise normalise it to spaces.
fn escape(text: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' | '\t' => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            _ => out.push(c),
        }
    }
    out
}
