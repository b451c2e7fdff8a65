//! The organisation's policies: the built-in pack plus the policy repository at its default branch
//! head (on GitHub, or a GitLab project named `gitlab:group/sub/policies[@ref][:path]`), fetched once
//! per commit and cached by commit SHA (in the App state, not a global).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::forge::github::GitHub;
use crate::forge::gitlab::{GitLab, PolicyProject};
use crate::forge::{CommitSha, Contents, FileText, ForgeError, InstallationId};
use crate::policy::{self, PolicySet};
use crate::settings::PolicyRepo;

use super::config::{self, OrgConfig};

/// Policy files of the policy repository at one commit.
#[derive(Debug)]
pub struct PolicyFiles {
    pub commit: CommitSha,
    pub files: Vec<(String, String)>,
    pub org: OrgConfig,
}

/// A policy set ready to evaluate, and where it came from.
pub struct Policies {
    pub set: Arc<PolicySet>,
    /// For the check run: "built-in pack + acme/policies@1a2b3c4".
    pub source: String,
    pub org: OrgConfig,
    /// Built-ins the repository disabled: their templates are loaded, their constraints dropped.
    pub disabled: Vec<String>,
}

/// Why policies could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    #[error(transparent)]
    Forge(#[from] ForgeError),
    /// The policy repository holds something that does not load: the author must fix it.
    #[error("{0}")]
    Broken(String),
}

/// (policy repository commit, enabled built-ins): one policy set for each.
type SetKey = (String, Vec<String>);

#[derive(Default)]
pub struct PolicyCache {
    /// `GUARDRAIL_ENABLE_K8S_NATIVE_VALIDATION=false`: templates run their Rego, not their CEL.
    pub rego_over_cel: bool,
    installation: Mutex<Option<InstallationId>>,
    files: Mutex<HashMap<String, Arc<PolicyFiles>>>,
    sets: Mutex<HashMap<SetKey, Arc<PolicySet>>>,
    /// Single flight: workers that need the same commit wait for one fetch instead of each fetching.
    flight: tokio::sync::Mutex<()>,
}

impl PolicyCache {
    /// `k8s_native_validation`: templates run their CEL code where they have it.
    pub fn new(k8s_native_validation: bool) -> Self {
        PolicyCache { rego_over_cel: !k8s_native_validation, ..Default::default() }
    }

    /// Forgets everything (a push to the policy repository's default branch).
    pub fn clear(&self) {
        self.files.lock().expect("policy cache").clear();
        self.sets.lock().expect("policy cache").clear();
    }

    pub fn cached_commits(&self) -> Vec<String> {
        self.files.lock().expect("policy cache").keys().cloned().collect()
    }

    async fn installation(&self, github: &GitHub, repo: &PolicyRepo) -> Result<InstallationId, ForgeError> {
        if let Some(id) = self.installation.lock().expect("policy cache").clone() {
            return Ok(id);
        }
        let id = github.installation_of(&repo.repo).await?;
        *self.installation.lock().expect("policy cache") = Some(id.clone());
        Ok(id)
    }

    /// The policy repository's files at the head of its branch (or the configured ref).
    pub async fn files(&self, github: &GitHub, repo: &PolicyRepo) -> Result<Arc<PolicyFiles>, PolicyLoadError> {
        let inst = self.installation(github, repo).await?;
        let reference = match &repo.reference {
            Some(r) => r.clone(),
            None => github.default_branch(&inst, &repo.repo).await?,
        };
        let commit = github.commit_sha(&inst, &repo.repo, &reference).await?;
        let _flight = self.flight.lock().await;
        if let Some(files) = self.files.lock().expect("policy cache").get(&commit.0) {
            return Ok(files.clone());
        }
        let files = Arc::new(fetch_files(github, &inst, repo, &commit).await?);
        self.files.lock().expect("policy cache").insert(commit.0.clone(), files.clone());
        Ok(files)
    }

    /// The GitLab policy project's files at the head of its default branch (or the configured ref).
    pub async fn gitlab_files(
        &self,
        gitlab: &GitLab,
        project: &PolicyProject,
    ) -> Result<Arc<PolicyFiles>, PolicyLoadError> {
        let reference = match &project.git_ref {
            Some(r) => r.clone(),
            None => gitlab.project(&project.project).await?.default_branch.unwrap_or_else(|| "main".into()),
        };
        let commit = CommitSha(gitlab.commit_sha(&project.project, &reference).await?);
        let _flight = self.flight.lock().await;
        if let Some(files) = self.files.lock().expect("policy cache").get(&commit.0) {
            return Ok(files.clone());
        }
        let path = project.path.clone().unwrap_or_default();
        let contents = crate::forge::gitlab::ProjectAt::new(gitlab, project.project.clone(), commit.0.clone());
        let (tree, _) = gitlab.tree(&project.project, &commit.0, &path, MAX_POLICY_FILES).await?;
        let files = Arc::new(read_policy_files(&contents, tree, &path, &commit).await?);
        self.files.lock().expect("policy cache").insert(commit.0.clone(), files.clone());
        Ok(files)
    }

    /// Built-ins (`builtins` selects them) plus the policy repository's `files` (see `files`), if
    /// one is configured. `repo` names it for the summary: (repository or project, path inside).
    pub async fn policies(
        &self,
        repo: Option<(&str, &str)>,
        files: Option<Arc<PolicyFiles>>,
        builtins: &[String],
    ) -> Result<Policies, PolicyLoadError> {
        let commit = files.as_ref().map(|f| f.commit.0.clone()).unwrap_or_default();
        let key = (commit.clone(), builtins.to_vec());
        let cached = self.sets.lock().expect("policy cache").get(&key).cloned();
        let set = match cached {
            Some(set) => set,
            None => {
                let groups = files.as_ref().map(|f| vec![f.files.clone()]).unwrap_or_default();
                // Every built-in template loads (a policy repository may hold a Constraint of a kind
                // a repository disables); the disabled ones' constraints are dropped, as in the CLI.
                let opts = policy::LoadOptions {
                    builtin: true,
                    k8s_native_validation: !self.rego_over_cel,
                    ..Default::default()
                };
                let enabled = builtins.to_vec();
                let set = tokio::task::spawn_blocking(move || {
                    PolicySet::from_sources(&groups, &opts).map(|mut set| {
                        crate::report::catalog::disable_builtins(&mut set, &enabled);
                        set
                    })
                })
                .await
                .map_err(|e| PolicyLoadError::Broken(format!("loading policies panicked: {e}")))?
                .map_err(|errors| {
                    PolicyLoadError::Broken(errors.iter().map(|e| format!("- {e}")).collect::<Vec<_>>().join("\n"))
                })?;
                let set = Arc::new(set);
                self.sets.lock().expect("policy cache").insert(key, set.clone());
                set
            }
        };
        let source = match (repo, &files) {
            (Some((name, path)), Some(f)) => format!(
                "built-in pack ({} enabled) + {}@{}{}",
                builtins.len(),
                name,
                &f.commit.0[..f.commit.0.len().min(7)],
                if path.is_empty() { String::new() } else { format!(" ({path})") }
            ),
            _ => format!("built-in pack ({} enabled)", builtins.len()),
        };
        let disabled = policy::builtin_names()
            .into_iter()
            .filter(|n| !builtins.iter().any(|b| b == n))
            .map(String::from)
            .collect();
        Ok(Policies { set, source, org: files.map(|f| f.org.clone()).unwrap_or_default(), disabled })
    }
}

/// Every policy file under the configured path at `commit`: YAML (templates, constraints, expansion
/// templates) and Rego (conftest modules), plus `guardrail-org.yml`. Suites and samples are skipped.
pub async fn fetch_files(
    github: &GitHub,
    inst: &InstallationId,
    repo: &PolicyRepo,
    commit: &CommitSha,
) -> Result<PolicyFiles, PolicyLoadError> {
    let tree = github.tree(inst, &repo.repo, commit, &repo.path).await?;
    let contents = crate::forge::github::RepoAt::new(github, inst, &repo.repo, commit);
    read_policy_files(&contents, tree.into_iter().map(|(p, _)| p).collect(), &repo.path, commit).await
}

/// Policy files listed at most from a GitLab policy project.
pub const MAX_POLICY_FILES: usize = 10_000;

/// The policy files and `guardrail-org.yml` among `tree` (paths under `path`), read at `commit`.
async fn read_policy_files(
    contents: &impl Contents,
    tree: Vec<String>,
    path: &str,
    commit: &CommitSha,
) -> Result<PolicyFiles, PolicyLoadError> {
    let org_path =
        if path.is_empty() { config::ORG_CONFIG.to_string() } else { format!("{path}/{}", config::ORG_CONFIG) };
    let wanted: Vec<String> = tree.into_iter().filter(|p| is_policy_file(p) || *p == org_path).collect();
    let fetched = contents.files(&wanted, 4 * 1024 * 1024).await?;
    let mut files = Vec::new();
    let mut org = OrgConfig::default();
    let mut problems = Vec::new();
    for (path, text) in fetched {
        match text {
            FileText::Text(text) if path == org_path => match config::parse::<OrgConfig>(&path, &text) {
                Ok(c) => org = c,
                Err(e) => problems.push(format!("- {e}")),
            },
            FileText::Text(text) => files.push((path, text)),
            FileText::TooLarge(n) => problems.push(format!("- {path}: {n} bytes, more than guardrail reads")),
            FileText::Binary | FileText::Missing => {}
        }
    }
    if !problems.is_empty() {
        return Err(PolicyLoadError::Broken(problems.join("\n")));
    }
    Ok(PolicyFiles { commit: commit.clone(), files, org })
}

/// Policy files, not their tests: suites, samples and `*_test.rego` are for `guardrail verify`.
pub fn is_policy_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let in_samples = path.split('/').any(|p| p == "samples" || p == "tests" || p == "test");
    if name.ends_with(".rego") {
        return !name.ends_with("_test.rego");
    }
    (name.ends_with(".yaml") || name.ends_with(".yml"))
        && !in_samples
        && name != "suite.yaml"
        && !name.starts_with("example")
}
