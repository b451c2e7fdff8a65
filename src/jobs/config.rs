//! Configuration read from trusted places only: `.github/guardrail.yml` from the base repository's
//! default branch (never the pull request head) and `guardrail-org.yml` from the policy repository.

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::exempt::Rule;

pub const REPO_CONFIG: &str = ".github/guardrail.yml";
/// A GitLab project's settings: the same schema, in GitLab's folder.
pub const GITLAB_REPO_CONFIG: &str = ".gitlab/guardrail.yml";
pub const ORG_CONFIG: &str = "guardrail-org.yml";

/// A repository's `.github/guardrail.yml`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RepoConfig {
    /// Globs of files to check (default: every YAML file).
    pub include: Vec<String>,
    /// Globs of files not to check.
    pub exclude: Vec<String>,
    /// Namespace of namespaced objects that do not set one (as `--namespace`).
    pub namespace: Option<String>,
    /// Built-in policies to switch off (policies the organisation requires stay on).
    pub disable: Vec<String>,
    /// Check draft pull requests.
    pub drafts: bool,
    /// Post inline review comments (annotations are always posted).
    pub review_comments: bool,
}

impl Default for RepoConfig {
    fn default() -> Self {
        RepoConfig {
            include: Vec::new(),
            exclude: Vec::new(),
            namespace: None,
            disable: Vec::new(),
            drafts: true,
            review_comments: true,
        }
    }
}

/// The policy repository's `guardrail-org.yml`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OrgConfig {
    /// Built-in policies no repository may switch off.
    pub required: Vec<String>,
    pub exemptions: Vec<Rule>,
}

pub fn parse<T: serde::de::DeserializeOwned + Default>(file: &str, text: &str) -> Result<T, String> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_saphyr::from_str(text).map_err(|e| format!("{file}: {e}"))
}

/// Which files of a pull request the repository wants checked.
pub struct FileFilter {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

fn globs(patterns: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| format!("{REPO_CONFIG}: glob `{p}`: {e}"))?);
    }
    b.build().map_err(|e| e.to_string())
}

impl FileFilter {
    pub fn new(config: &RepoConfig) -> Result<FileFilter, String> {
        Ok(FileFilter {
            include: if config.include.is_empty() { None } else { Some(globs(&config.include)?) },
            exclude: globs(&config.exclude)?,
        })
    }

    /// A changed manifest to check on its own.
    pub fn wants(&self, path: &str) -> bool {
        let yaml = path.ends_with(".yaml") || path.ends_with(".yml");
        yaml && self.matches(path)
    }

    /// Inside `include` and outside `exclude`, whatever the file type.
    pub fn matches(&self, path: &str) -> bool {
        self.include.as_ref().is_none_or(|g| g.is_match(path)) && !self.exclude.is_match(path)
    }
}

/// Built-ins to run: all but those the repository disables, except the required ones.
pub fn builtin_selection(repo: &RepoConfig, org: &OrgConfig) -> (Vec<String>, Vec<String>) {
    let all = crate::policy::builtin_names();
    let mut refused = Vec::new();
    let enabled = all
        .iter()
        .filter(|name| {
            let disabled = repo.disable.iter().any(|d| d == *name);
            if disabled && org.required.iter().any(|r| r == *name) {
                refused.push(name.to_string());
                return true;
            }
            !disabled
        })
        .map(|s| s.to_string())
        .collect();
    (enabled, refused)
}
