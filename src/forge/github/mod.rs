//! GitHub: App authentication, the HTTP client with its retry policy (`client`), and the typed
//! operations guardrail performs (`api`).

mod api;
mod client;

use crate::forge::{CommitSha, Contents, ForgeError, InstallationId, RepoSlug};

pub use api::{CheckRunState, FileText, PullFile, PullRequest, ReviewThread, BLOBS_PER_QUERY, MAX_PULL_FILES};
pub use client::{next_link, rate_limit_wait, CallPolicy, GitHub, Reply};

/// A repository at one commit, read through the App's installation (the `Contents` seam).
pub struct RepoAt<'a> {
    pub github: &'a GitHub,
    pub installation: &'a InstallationId,
    pub repo: &'a RepoSlug,
    pub sha: &'a CommitSha,
    listing: tokio::sync::OnceCell<(Vec<(String, u64)>, bool)>,
}

impl<'a> RepoAt<'a> {
    pub fn new(github: &'a GitHub, installation: &'a InstallationId, repo: &'a RepoSlug, sha: &'a CommitSha) -> Self {
        RepoAt { github, installation, repo, sha, listing: tokio::sync::OnceCell::new() }
    }
}

impl Contents for RepoAt<'_> {
    async fn listing(&self) -> Result<(Vec<(String, u64)>, bool), ForgeError> {
        let listing =
            self.listing.get_or_try_init(|| self.github.tree_listing(self.installation, self.repo, self.sha)).await?;
        Ok(listing.clone())
    }

    async fn files(&self, paths: &[String], max_bytes: u64) -> Result<Vec<(String, FileText)>, ForgeError> {
        self.github.files_at(self.installation, self.repo, self.sha, paths, max_bytes).await
    }
}
