//! The head commit of a pull request as the fetch step reads it beyond the changed files: its
//! whole file listing (read once per check, shared by the Terraform and kustomize steps) and file
//! texts. A trait so that the steps do not name a forge.

use std::future::Future;

use crate::forge::github::{FileText, GitHub};
use crate::forge::{CommitSha, ForgeError, InstallationId, RepoSlug};

/// The head commit of a pull request, as any forge can give it.
pub trait HeadTree: Sync {
    /// Every file with its size, and whether the forge cut the listing short.
    fn listing(&self) -> impl Future<Output = Result<(Vec<(String, u64)>, bool), ForgeError>> + Send;
    /// The texts of `paths`, each no larger than `max_bytes`.
    fn texts(
        &self,
        paths: &[String],
        max_bytes: u64,
    ) -> impl Future<Output = Result<Vec<(String, FileText)>, ForgeError>> + Send;
}

/// A pull request's head on GitHub: the git trees API (recursive) and GraphQL blobs. The listing
/// is read once and shared by the steps that need it (Terraform, kustomize): a commit's tree
/// never changes.
pub struct GitHubHead<'a> {
    pub gh: &'a GitHub,
    pub inst: &'a InstallationId,
    pub repo: &'a RepoSlug,
    pub sha: &'a CommitSha,
    listing: tokio::sync::OnceCell<(Vec<(String, u64)>, bool)>,
}

impl<'a> GitHubHead<'a> {
    pub fn new(gh: &'a GitHub, inst: &'a InstallationId, repo: &'a RepoSlug, sha: &'a CommitSha) -> Self {
        GitHubHead { gh, inst, repo, sha, listing: tokio::sync::OnceCell::new() }
    }
}

impl HeadTree for GitHubHead<'_> {
    async fn listing(&self) -> Result<(Vec<(String, u64)>, bool), ForgeError> {
        let listing = self.listing.get_or_try_init(|| self.gh.tree_listing(self.inst, self.repo, self.sha)).await?;
        Ok(listing.clone())
    }

    async fn texts(&self, paths: &[String], max_bytes: u64) -> Result<Vec<(String, FileText)>, ForgeError> {
        self.gh.files_at(self.inst, self.repo, self.sha, paths, max_bytes).await
    }
}
