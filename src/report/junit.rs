//! JUnit XML for CI test-report views (GitLab's test report tab, Jenkins, Azure Pipelines). A deny
//! finding is a failed test case; warn and info findings are passing test cases whose `<system-out>`
//! holds the diagnostic, so they are visible without failing the pipeline. Errors are `<error>` cases.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::human::{diagnostic, Paint};
use super::paths::repo_path;
use super::SourceText;
use crate::findings::{Finding, Outcome, Severity};

pub(super) fn render(outcome: &Outcome, sources: &dyn SourceText) -> String {
    let mut cases = String::new();
    let mut names: HashMap<(String, String), usize> = HashMap::new();
    for f in &outcome.findings {
        test_case(&mut cases, f, sources, &mut names);
    }
    for (i, error) in outcome.errors.iter().enumerate() {
        let _ = write!(
            cases,
            "    <testcase classname=\"guardrail\" name=\"error {}\">\n      <error message=\"{}\" type=\"error\">{}</error>\n    </testcase>\n",
            i + 1,
            escape(first_line(error), true),
            escape(error, false),
        );
    }
    // A report without test cases shows as "no tests" (or an error) in CI; a clean run should be green.
    let passing = usize::from(outcome.findings.is_empty() && outcome.errors.is_empty());
    if passing == 1 {
        cases.push_str("    <testcase classname=\"guardrail\" name=\"guardrail\"/>\n");
    }

    let tests = outcome.findings.len() + outcome.errors.len() + passing;
    let failures = outcome.findings.iter().filter(|f| f.severity == Severity::Deny).count();
    let errors = outcome.errors.len();
    let counts = format!("tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\"");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites name=\"guardrail\" {counts}>\n  \
         <testsuite name=\"guardrail\" {counts} skipped=\"0\">\n\
         {cases}  \
         </testsuite>\n\
         </testsuites>\n"
    )
}

fn test_case(out: &mut String, f: &Finding, sources: &dyn SourceText, names: &mut HashMap<(String, String), usize>) {
    let mut name = match &f.resource {
        Some(r) => format!("{}/{}", f.policy, r.display()),
        None => f.policy.clone(),
    };
    // Two findings of one policy on one resource (two containers, say) would otherwise share a name,
    // and some report viewers merge or drop test cases with the same class and name.
    let seen = names.entry((repo_path(&f.file), name.clone())).or_insert(0);
    *seen += 1;
    if *seen > 1 {
        name = format!("{name} ({seen})");
    }

    // GitLab links `file` to the repository, so both carry the repository path, not `./a.yaml`.
    let file = escape(&repo_path(&f.file), true);
    let _ = write!(out, "    <testcase classname=\"{file}\" name=\"{}\" file=\"{file}\"", escape(&name, true));
    if f.region.line > 0 {
        let _ = write!(out, " line=\"{}\"", f.region.line);
    }
    out.push_str(">\n");
    let body = escape(&diagnostic(f, sources, Paint(false)), false);
    match f.severity {
        Severity::Deny => {
            let _ = writeln!(
                out,
                "      <failure message=\"{}\" type=\"deny\">{body}</failure>",
                escape(first_line(&f.message), true)
            );
        }
        Severity::Warn | Severity::Info => {
            let _ = writeln!(out, "      <system-out>{body}</system-out>");
        }
    }
    out.push_str("    </testcase>\n");
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
