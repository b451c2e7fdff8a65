//! The configuration a local or CI run shares with the App, so both give the same answer: the
//! repository's `.github/guardrail.yml` (include, exclude, namespace, disable) and the organisation's
//! `guardrail-org.yml` (required built-ins, central exemptions), parsed by the App's own parser
//! (`jobs::config`).

use std::path::{Path, PathBuf};

use super::PolicyArgs;
use crate::jobs::config::{self, OrgConfig, RepoConfig};

/// The configuration of one run, and where it came from.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub repo: RepoConfig,
    /// The `.github/guardrail.yml` read, if any.
    pub repo_file: Option<PathBuf>,
    pub org: OrgConfig,
    pub org_file: Option<PathBuf>,
    /// The repository root: include and exclude globs, and CI reports, use paths relative to it.
    pub root: Option<PathBuf>,
    pub cwd: PathBuf,
    /// owner/name, for exemptions that name repositories.
    pub repository: String,
}

/// Finds and reads both files. A file that is named but missing, or that does not parse, is an error.
pub fn load(args: &PolicyArgs) -> Result<Loaded, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}"))?;
    let git_root = git_root(&cwd);
    let mut loaded = Loaded { cwd: cwd.clone(), root: git_root.clone(), ..Default::default() };
    let repo_file = match (&args.config, args.no_config) {
        (_, true) => None,
        (Some(file), false) => {
            if !file.is_file() {
                return Err(format!("--config {}: no such file", file.display()));
            }
            Some(file.clone())
        }
        // `.github/guardrail.yml` first; a GitLab project's `.gitlab/guardrail.yml` when it is absent.
        (None, false) => [config::REPO_CONFIG, config::GITLAB_REPO_CONFIG].iter().find_map(|name| {
            let here = cwd.join(name);
            let at_root = git_root.as_ref().map(|r| r.join(name));
            if here.is_file() {
                Some(here)
            } else {
                at_root.filter(|p| p.is_file())
            }
        }),
    };
    if let Some(file) = &repo_file {
        let text = read(file)?;
        loaded.repo = config::parse(&file.display().to_string(), &text)?;
        // The folder that holds `.github/` (or `.gitlab/`) is the root the globs are relative to.
        let absolute = if file.is_absolute() { file.clone() } else { cwd.join(file) };
        let in_forge_folder = |p: &&Path| p.ends_with(".github") || p.ends_with(".gitlab");
        if let Some(root) = absolute.parent().filter(in_forge_folder).and_then(Path::parent) {
            loaded.root = Some(crate::report::normalize_path(root));
        }
        loaded.repo_file = Some(file.clone());
    }
    let org_file = match &args.org_config {
        Some(file) if !file.is_file() => return Err(format!("--org-config {}: no such file", file.display())),
        Some(file) => Some(file.clone()),
        // The App reads guardrail-org.yml at the root of the policy repository's path.
        None => args.policy.iter().map(|p| p.join(config::ORG_CONFIG)).find(|p| p.is_file()),
    };
    if let Some(file) = &org_file {
        loaded.org = config::parse(&file.display().to_string(), &read(file)?)?;
        loaded.org_file = Some(file.clone());
    }
    loaded.repository = match &args.repository {
        Some(r) => r.clone(),
        None => repository_from_environment(git_root.as_deref()).unwrap_or_default(),
    };
    Ok(loaded)
}

fn read(file: &Path) -> Result<String, String> {
    // Configuration files are small; a bound keeps a wrong path (a device, a huge file) harmless.
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(1024 * 1024).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok(text)
}

/// The nearest folder at or above `dir` with a `.git` (a folder, or a file in a worktree).
pub fn git_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find(|d| d.join(".git").exists()).map(Path::to_path_buf)
}

/// `owner/name` as CI systems give it, or from the `origin` remote of the repository's git config.
fn repository_from_environment(git_root: Option<&Path>) -> Option<String> {
    for var in ["GITHUB_REPOSITORY", "CI_PROJECT_PATH"] {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
            return Some(v.trim().to_string());
        }
    }
    let git = git_root?.join(".git");
    let config = if git.is_dir() { git.join("config") } else { return None };
    let text = read(&config).ok()?;
    origin_slug(&text)
}

/// `owner/name` from the `url` of `[remote "origin"]`: `git@github.com:acme/web.git`,
/// `https://github.com/acme/web`, `ssh://git@host/group/sub/web.git`.
pub fn origin_slug(git_config: &str) -> Option<String> {
    let mut in_origin = false;
    for line in git_config.lines().map(str::trim) {
        if line.starts_with('[') {
            in_origin = line.replace(' ', "") == "[remote\"origin\"]";
            continue;
        }
        let Some(url) = line.strip_prefix("url").map(str::trim).and_then(|l| l.strip_prefix('=')) else { continue };
        if !in_origin {
            continue;
        }
        let url = url.trim().trim_end_matches('/').trim_end_matches(".git");
        let path = match url.split_once("://") {
            Some((_, rest)) => rest.split_once('/').map(|(_, p)| p)?,
            None => url.split_once(':').map(|(_, p)| p)?,
        };
        let path = path.trim_matches('/');
        return path.contains('/').then(|| path.to_string());
    }
    None
}
