//! Output formats: the same `Outcome` rendered for a terminal (rustc-style diagnostics), for machines
//! (JSON, SARIF) and for CI systems (JUnit XML, GitHub workflow commands, GitLab Code Quality).
//! Every renderer is a pure function from findings to text; writing it somewhere is the caller's job.

pub mod checkrun;
mod fingerprint;
mod github;
mod gitlab;
mod human;
mod json;
mod junit;
mod paths;
pub mod review;
mod sarif;
mod templates;

use std::collections::HashMap;

use crate::findings::Outcome;

pub use paths::readable_pointer;

/// Which output `render` produces; the names are the values of `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// rustc-style diagnostics with the offending line underlined.
    Human,
    /// guardrail's own JSON: one object per finding, plus the errors.
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.
    Sarif,
    /// JUnit XML, for CI test report views (GitLab, Jenkins, Azure Pipelines).
    Junit,
    /// GitHub Actions workflow commands (`::error file=…`), which become annotations on the diff.
    Github,
    /// GitLab Code Quality report (a JSON array), shown in the merge request widget.
    Gitlab,
}

/// Source text by file name, so the human output can show and underline the offending line.
pub trait SourceText {
    fn source(&self, file: &str) -> Option<&str>;
}

impl SourceText for HashMap<String, String> {
    fn source(&self, file: &str) -> Option<&str> {
        self.get(file).map(String::as_str)
    }
}

pub struct RenderOptions {
    /// ANSI colors in the human output; the other formats are for machines and ignore it.
    pub color: bool,
    /// Reported as the tool version in SARIF.
    pub tool_version: &'static str,
}

/// Render `outcome` in `format`. Findings are rendered in the order given (call `Outcome::sort` first
/// for stable output); the text always ends with a newline.
pub fn render(format: Format, outcome: &Outcome, sources: &dyn SourceText, opts: &RenderOptions) -> String {
    match format {
        Format::Human => human::render(outcome, sources, opts),
        Format::Json => json::render(outcome),
        Format::Sarif => sarif::render(outcome, opts),
        Format::Junit => junit::render(outcome, sources),
        Format::Github => github::render(outcome),
        Format::Gitlab => gitlab::render(outcome),
    }
}
