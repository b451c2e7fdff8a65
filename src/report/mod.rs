//! Output formats: the same `Outcome` rendered for a terminal (rustc-style diagnostics), for machines
//! (JSON, SARIF) and for CI systems (JUnit XML, GitHub workflow commands, GitLab Code Quality).
//! Every renderer is a pure function from findings to text; writing it somewhere is the caller's job.
//! Text from the inputs that goes to a terminal passes through `terminal::escape` first.

pub mod catalog;
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
pub mod terminal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::findings::{Outcome, Severity};

pub use catalog::PolicyInfo;
pub use fingerprint::baseline_fingerprints;
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

impl Format {
    /// Formats meant for people reading a terminal (colours, escaping of control characters).
    pub fn is_for_terminal(self) -> bool {
        matches!(self, Format::Human | Format::Github)
    }
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

#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// ANSI colors in the human output; the other formats are for machines and ignore it.
    pub color: bool,
    /// Reported as the tool version in SARIF.
    pub tool_version: &'static str,
    /// What the run covered; a bare render (tests, the App) leaves it empty.
    pub run: RunInfo,
}

/// How much a run checked: the last line of the human report says it, so that "no findings" can
/// never stand for "nothing was looked at".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Checked {
    pub files: usize,
    pub objects: usize,
    pub policies: usize,
}

/// What a run knows beyond its findings, for the reports that say it.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub checked: Option<Checked>,
    /// Things to say once per run (a built-in waiting for the organisation's data, say).
    pub notes: Vec<String>,
    /// Every policy of the run: SARIF rules carry their descriptions and remediations.
    pub policies: Vec<PolicyInfo>,
    /// The repository root: CI reports (SARIF, GitLab, GitHub, JUnit) name files relative to it.
    pub root: Option<PathBuf>,
    /// The folder relative file names are relative to (the working directory).
    pub cwd: PathBuf,
    /// Human and GitHub output show only what fails the run (`fails`), and say nothing when nothing
    /// does (`--quiet`).
    pub quiet: bool,
    /// The least severe finding that fails the run (`--fail-on`); `None`: none does.
    pub fail_on: Option<Severity>,
    /// Errors are printed on standard error already: the human report only counts them.
    pub errors_elsewhere: bool,
}

impl RunInfo {
    /// Whether a finding of this severity fails the run.
    pub fn fails(&self, severity: Severity) -> bool {
        self.fail_on.is_some_and(|least| severity <= least)
    }

    /// Whether the human and GitHub outputs show a finding of this severity.
    pub fn shows(&self, severity: Severity) -> bool {
        !self.quiet || self.fails(severity)
    }

    /// A finding's file as CI systems want it: relative to the repository root, forward slashes.
    pub fn repo_path(&self, file: &str) -> String {
        let Some(root) = &self.root else { return paths::repo_path(file) };
        if file == "-" {
            return file.to_string();
        }
        let absolute = paths::normalize(&self.cwd.join(Path::new(file)));
        match absolute.strip_prefix(root) {
            Ok(relative) if !relative.as_os_str().is_empty() => paths::repo_path(&relative.to_string_lossy()),
            _ => paths::repo_path(file),
        }
    }
}

/// Render `outcome` in `format`. Findings are rendered in the order given (call `Outcome::sort` first
/// for stable output); the text always ends with a newline, except a quiet report with nothing to say.
pub fn render(format: Format, outcome: &Outcome, sources: &dyn SourceText, opts: &RenderOptions) -> String {
    match format {
        Format::Human => human::render(outcome, sources, opts),
        Format::Json => json::render(outcome, opts),
        Format::Sarif => sarif::render(outcome, opts),
        Format::Junit => junit::render(outcome, sources, opts),
        Format::Github => github::render(outcome, opts),
        Format::Gitlab => gitlab::render(outcome, opts),
    }
}

/// `a/./b/../c` -> `a/c` without the file system; for callers that compare paths the way reports do.
pub fn normalize_path(path: &Path) -> PathBuf {
    paths::normalize(path)
}
