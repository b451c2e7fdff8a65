//! Code forges guardrail talks to. Identifiers are newtypes so a pull-request number is never passed
//! where an installation id is expected, and `ForgeError` says whether a failed call is worth retrying.
//!
//! The seam the check job reads through is forge-neutral: `ChangedFile` (what a pull or merge request
//! changed, with the lines an inline comment may go on) and `Contents` (files at the head commit,
//! bounded, and the tree). `github` and `gitlab` each implement it beside their own API calls; what
//! is reported where (a check run, a commit status and discussions) stays with each forge.

pub mod github;
pub mod gitlab;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `owner/name` of a repository.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RepoSlug {
    pub owner: String,
    pub name: String,
}

impl RepoSlug {
    pub fn parse(text: &str) -> Option<RepoSlug> {
        let (owner, name) = text.split_once('/')?;
        let ok = |s: &str| {
            !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        (ok(owner) && ok(name)).then(|| RepoSlug { owner: owner.to_string(), name: name.to_string() })
    }
}

impl fmt::Display for RepoSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_newtype!(
    /// A 40-hex commit id.
    CommitSha(String)
);
id_newtype!(PrNumber(u64));
id_newtype!(InstallationId(u64));
id_newtype!(
    /// `X-GitHub-Delivery`: stays the same when a delivery is redelivered.
    DeliveryId(String)
);

/// What the caller should do about a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Try again soon (a 5xx, a timeout, a dropped connection).
    Soon,
    /// The forge asked us to wait (rate limit) this long.
    After(Duration),
    /// It will fail the same way again (a 404, a 422, a broken policy).
    Never,
}

/// A failed forge call, classified before anything turns it into text.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("rate limited by {operation}; retry in {wait:?}")]
    RateLimited { operation: String, wait: Duration },
    #[error("{operation} failed with {status}: {message}")]
    Status { operation: String, status: u16, message: String },
    #[error("{operation} failed: {message}")]
    Transport { operation: String, message: String },
    #[error("{operation}: unexpected response: {message}")]
    Decode { operation: String, message: String },
    #[error("GitHub App authentication failed: {0}")]
    Auth(String),
    /// The installation token was refused with 404/403: the App was uninstalled or suspended.
    #[error("the App cannot act for this installation (uninstalled or suspended): {0}")]
    Uninstalled(String),
}

impl ForgeError {
    pub fn retry(&self) -> Retry {
        match self {
            ForgeError::RateLimited { wait, .. } => Retry::After(*wait),
            ForgeError::Status { status, .. } if *status >= 500 || *status == 408 => Retry::Soon,
            ForgeError::Status { .. } => Retry::Never,
            ForgeError::Transport { .. } => Retry::Soon,
            ForgeError::Decode { .. } => Retry::Never,
            ForgeError::Auth(_) => Retry::Soon,
            ForgeError::Uninstalled(_) => Retry::Never,
        }
    }

    /// A short description for a pull-request author (no response bodies): what failed and how.
    pub fn short(&self) -> String {
        match self {
            ForgeError::RateLimited { operation, .. } => format!("GitHub rate-limited `{operation}`"),
            ForgeError::Status { operation, status, .. } => format!("GitHub answered {status} to `{operation}`"),
            ForgeError::Transport { operation, .. } => format!("`{operation}` got no answer from GitHub"),
            ForgeError::Decode { operation, .. } => format!("GitHub's answer to `{operation}` was not understood"),
            ForgeError::Auth(_) => "the App could not authenticate to GitHub".to_string(),
            ForgeError::Uninstalled(_) => "the App is not installed here any more".to_string(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ForgeError::Status { status: 404, .. })
    }
}

/// A file's content at a commit, whatever the forge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileText {
    Text(String),
    Binary,
    Missing,
    TooLarge(u64),
}

/// A file a pull or merge request changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedFile {
    /// The path at the head (the new name of a renamed file).
    pub path: String,
    pub removed: bool,
}

/// Files of one commit of one repository, as the check job reads them. Implemented per forge.
pub trait Contents: Send + Sync {
    /// Every blob of the commit with its size (0 where the forge does not say), and whether the
    /// forge cut the listing short. Read once per check and shared by the steps that need it
    /// (Terraform, kustomize): a commit's tree never changes.
    fn listing(&self) -> impl std::future::Future<Output = Result<(Vec<(String, u64)>, bool), ForgeError>> + Send;
    /// Every blob path in the commit.
    fn tree(&self) -> impl std::future::Future<Output = Result<Vec<String>, ForgeError>> + Send {
        async { Ok(self.listing().await?.0.into_iter().map(|(p, _)| p).collect()) }
    }
    /// The files at `paths`, each read up to `max_bytes` (larger ones are `TooLarge`).
    fn files(
        &self,
        paths: &[String],
        max_bytes: u64,
    ) -> impl std::future::Future<Output = Result<Vec<(String, FileText)>, ForgeError>> + Send;
}
