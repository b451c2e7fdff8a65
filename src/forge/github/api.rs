//! The GitHub operations guardrail uses, typed: pull requests and their files, file contents at a
//! commit (batched through GraphQL, REST blobs for what GraphQL truncates), check runs, reviews.

use std::time::Duration;

use base64::Engine;
use http::Method;
use serde_json::{json, Value};

use super::client::{next_link, GitHub};
use crate::forge::{CommitSha, ForgeError, InstallationId, PrNumber, RepoSlug};

/// GitHub lists at most 3000 files of a pull request.
pub const MAX_PULL_FILES: usize = 3000;
/// Files per GraphQL query: GitHub limits a query's cost and a response's size.
pub const BLOBS_PER_QUERY: usize = 50;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub number: PrNumber,
    pub state: String,
    pub draft: bool,
    pub head_sha: CommitSha,
    pub base_sha: CommitSha,
    /// Set when the head lives in another repository (a fork).
    pub head_repo: Option<RepoSlug>,
    pub base_default_branch: String,
    /// `updated_at` in ms since the epoch (0 when absent): how recent the head is.
    pub updated_at: i64,
}

/// One of our check runs as GitHub holds it: what reconciliation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRunState {
    pub id: u64,
    pub external_id: String,
    pub started_at: String,
    pub status: String,
    pub annotations: u64,
}

/// A review thread and its first comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewThread {
    pub id: String,
    pub resolved: bool,
    pub comment_node_id: String,
    pub minimized: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullFile {
    pub filename: String,
    pub status: String,
    pub previous_filename: Option<String>,
    /// Absent for binary files and very large diffs.
    pub patch: Option<String>,
}

pub use crate::forge::FileText;

fn decode(operation: &str, message: impl Into<String>) -> ForgeError {
    ForgeError::Decode { operation: operation.into(), message: message.into() }
}

fn s(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("").to_string()
}

impl GitHub {
    pub async fn get_json(&self, inst: &InstallationId, path: &str, operation: &str) -> Result<Value, ForgeError> {
        self.call(inst, Method::GET, path, None, operation).await?.json(operation)
    }

    /// Follows `Link: rel="next"` until `max` items.
    pub async fn get_pages(
        &self,
        inst: &InstallationId,
        path: &str,
        operation: &str,
        max: usize,
    ) -> Result<Vec<Value>, ForgeError> {
        let mut items = Vec::new();
        let mut next = Some(path.to_string());
        while let Some(url) = next.take() {
            let reply = self.call(inst, Method::GET, &url, None, operation).await?;
            let page = reply.json(operation)?;
            let Value::Array(page) = page else { return Err(decode(operation, "expected a list")) };
            items.extend(page);
            if items.len() >= max {
                items.truncate(max);
                break;
            }
            next = next_link(&reply.headers);
        }
        Ok(items)
    }

    pub async fn pull(&self, inst: &InstallationId, repo: &RepoSlug, n: &PrNumber) -> Result<PullRequest, ForgeError> {
        let op = "pulls/get";
        let v = self.get_json(inst, &format!("/repos/{repo}/pulls/{n}"), op).await?;
        let head_repo = v.pointer("/head/repo/full_name").and_then(Value::as_str).and_then(RepoSlug::parse);
        Ok(PullRequest {
            number: n.clone(),
            state: s(&v, "/state"),
            draft: v.get("draft").and_then(Value::as_bool).unwrap_or(false),
            head_sha: CommitSha(s(&v, "/head/sha")),
            base_sha: CommitSha(s(&v, "/base/sha")),
            head_repo: head_repo.filter(|h| h != repo),
            base_default_branch: match s(&v, "/base/repo/default_branch") {
                b if b.is_empty() => "main".into(),
                b => b,
            },
            updated_at: crate::intake::time_ms(v.get("updated_at").and_then(Value::as_str)),
        })
    }

    pub async fn pull_files(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        n: &PrNumber,
    ) -> Result<Vec<PullFile>, ForgeError> {
        let op = "pulls/list-files";
        let items =
            self.get_pages(inst, &format!("/repos/{repo}/pulls/{n}/files?per_page=100"), op, MAX_PULL_FILES).await?;
        Ok(items
            .iter()
            .map(|f| PullFile {
                filename: s(f, "/filename"),
                status: s(f, "/status"),
                previous_filename: f.get("previous_filename").and_then(Value::as_str).map(str::to_string),
                patch: f.get("patch").and_then(Value::as_str).map(str::to_string),
            })
            .collect())
    }

    pub async fn open_pulls(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
    ) -> Result<Vec<(PrNumber, CommitSha)>, ForgeError> {
        let items =
            self.get_pages(inst, &format!("/repos/{repo}/pulls?state=open&per_page=100"), "pulls/list", 1000).await?;
        Ok(items
            .iter()
            .filter_map(|p| Some((PrNumber(p.get("number")?.as_u64()?), CommitSha(s(p, "/head/sha")))))
            .collect())
    }

    /// The commit a branch, tag or sha names.
    pub async fn commit_sha(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        reference: &str,
    ) -> Result<CommitSha, ForgeError> {
        let op = "repos/get-commit";
        let v = self.get_json(inst, &format!("/repos/{repo}/commits/{reference}"), op).await?;
        match s(&v, "/sha") {
            sha if sha.len() == 40 => Ok(CommitSha(sha)),
            _ => Err(decode(op, "no sha")),
        }
    }

    pub async fn default_branch(&self, inst: &InstallationId, repo: &RepoSlug) -> Result<String, ForgeError> {
        let v = self.get_json(inst, &format!("/repos/{repo}"), "repos/get").await?;
        Ok(match s(&v, "/default_branch") {
            b if b.is_empty() => "main".into(),
            b => b,
        })
    }

    /// Every blob path under `prefix` at a commit, with its size.
    pub async fn tree(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        sha: &CommitSha,
        prefix: &str,
    ) -> Result<Vec<(String, u64)>, ForgeError> {
        let op = "git/get-tree";
        let v = self.get_json(inst, &format!("/repos/{repo}/git/trees/{sha}?recursive=1"), op).await?;
        let Some(entries) = v.get("tree").and_then(Value::as_array) else { return Err(decode(op, "no tree")) };
        let prefix = if prefix.is_empty() { String::new() } else { format!("{}/", prefix.trim_matches('/')) };
        Ok(entries
            .iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("blob"))
            .filter_map(|e| {
                let path = e.get("path")?.as_str()?;
                path.starts_with(&prefix)
                    .then(|| (path.to_string(), e.get("size").and_then(Value::as_u64).unwrap_or(0)))
            })
            .collect())
    }

    /// Every file of a commit with its size, and whether GitHub cut the listing short (it lists at
    /// most 100,000 entries); a caller that needs the whole tree must not trust a truncated one.
    pub async fn tree_listing(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        sha: &CommitSha,
    ) -> Result<(Vec<(String, u64)>, bool), ForgeError> {
        let op = "git/get-tree";
        let v = self.get_json(inst, &format!("/repos/{repo}/git/trees/{sha}?recursive=1"), op).await?;
        let Some(entries) = v.get("tree").and_then(Value::as_array) else { return Err(decode(op, "no tree")) };
        let truncated = v.get("truncated").and_then(Value::as_bool).unwrap_or(false);
        let files = entries
            .iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("blob"))
            .filter_map(|e| {
                let path = e.get("path")?.as_str()?;
                Some((path.to_string(), e.get("size").and_then(Value::as_u64).unwrap_or(0)))
            })
            .collect();
        Ok((files, truncated))
    }

    /// One small file through the contents API (`None` when it does not exist).
    pub async fn file(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        reference: &str,
        path: &str,
    ) -> Result<Option<String>, ForgeError> {
        let op = "repos/get-content";
        match self.get_json(inst, &format!("/repos/{repo}/contents/{path}?ref={reference}"), op).await {
            Ok(v) => {
                let content = s(&v, "/content").replace(['\n', '\r'], "");
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(content)
                    .map_err(|e| decode(op, format!("content is not base64: {e}")))?;
                Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Many files at one commit in few calls: GraphQL `object(expression: "SHA:path")` for batches of
    /// files, then the REST blob for each file GraphQL truncated. Files over `max_bytes` are not fetched.
    pub async fn files_at(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        sha: &CommitSha,
        paths: &[String],
        max_bytes: u64,
    ) -> Result<Vec<(String, FileText)>, ForgeError> {
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(BLOBS_PER_QUERY) {
            let mut query =
                String::from("query($owner: String!, $name: String!) { repository(owner: $owner, name: $name) {");
            for (i, path) in chunk.iter().enumerate() {
                let expression = serde_json::to_string(&format!("{sha}:{path}")).expect("string");
                query.push_str(&format!(
                    " f{i}: object(expression: {expression}) {{ ... on Blob {{ oid byteSize isBinary isTruncated text }} }}"
                ));
            }
            query.push_str(" } }");
            let data =
                self.graphql(inst, &query, json!({"owner": repo.owner, "name": repo.name}), "graphql/blobs").await?;
            for (i, path) in chunk.iter().enumerate() {
                let blob = data.pointer(&format!("/repository/f{i}")).cloned().unwrap_or(Value::Null);
                let text = if blob.is_null() {
                    FileText::Missing
                } else if blob.get("isBinary").and_then(Value::as_bool) == Some(true) {
                    FileText::Binary
                } else {
                    let size = blob.get("byteSize").and_then(Value::as_u64).unwrap_or(0);
                    let truncated = blob.get("isTruncated").and_then(Value::as_bool).unwrap_or(false);
                    match blob.get("text").and_then(Value::as_str) {
                        _ if size > max_bytes => FileText::TooLarge(size),
                        Some(text) if !truncated => FileText::Text(text.to_string()),
                        _ => self.blob(inst, repo, &s(&blob, "/oid")).await?,
                    }
                };
                out.push((path.clone(), text));
            }
        }
        Ok(out)
    }

    /// A blob through REST (up to 100 MB), for what GraphQL truncates.
    pub async fn blob(&self, inst: &InstallationId, repo: &RepoSlug, oid: &str) -> Result<FileText, ForgeError> {
        let op = "git/get-blob";
        let v = self.get_json(inst, &format!("/repos/{repo}/git/blobs/{oid}"), op).await?;
        let content = s(&v, "/content").replace(['\n', '\r'], "");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|e| decode(op, format!("content is not base64: {e}")))?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => FileText::Text(text),
            Err(_) => FileText::Binary,
        })
    }

    /// A GraphQL call; GraphQL errors become a `Decode` error naming the first message.
    pub async fn graphql(
        &self,
        inst: &InstallationId,
        query: &str,
        variables: Value,
        operation: &str,
    ) -> Result<Value, ForgeError> {
        let body = json!({"query": query, "variables": variables});
        let url = self.graphql_url.clone();
        let v = self.call(inst, Method::POST, &url, Some(&body), operation).await?.json(operation)?;
        if let Some(errors) = v.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()) {
            let message = errors.iter().filter_map(|e| e.get("message")?.as_str()).collect::<Vec<_>>().join("; ");
            // Typed before any retry decision: a rate limit waits, a missing node is permanent.
            let kind = |t: &str| errors.iter().any(|e| e.get("type").and_then(Value::as_str) == Some(t));
            if kind("RATE_LIMITED") {
                let wait = Duration::from_secs(60);
                self.limit(inst, wait);
                return Err(ForgeError::RateLimited { operation: operation.into(), wait });
            }
            if kind("NOT_FOUND") {
                return Err(ForgeError::Status { operation: operation.into(), status: 404, message });
            }
            return Err(decode(operation, message));
        }
        Ok(v.get("data").cloned().unwrap_or(Value::Null))
    }

    pub async fn create_check_run(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        body: &Value,
    ) -> Result<u64, ForgeError> {
        let op = "checks/create";
        let v = self.call(inst, Method::POST, &format!("/repos/{repo}/check-runs"), Some(body), op).await?.json(op)?;
        v.get("id").and_then(Value::as_u64).ok_or_else(|| decode(op, "no id"))
    }

    pub async fn update_check_run(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        id: u64,
        body: &Value,
    ) -> Result<(), ForgeError> {
        self.call(inst, Method::PATCH, &format!("/repos/{repo}/check-runs/{id}"), Some(body), "checks/update").await?;
        Ok(())
    }

    fn run_state(v: &Value) -> CheckRunState {
        CheckRunState {
            id: v.get("id").and_then(Value::as_u64).unwrap_or(0),
            external_id: s(v, "/external_id"),
            started_at: s(v, "/started_at"),
            status: s(v, "/status"),
            annotations: v.pointer("/output/annotations_count").and_then(Value::as_u64).unwrap_or(0),
        }
    }

    /// The check runs named `name` on a commit, newest first (every run, not only the latest).
    pub async fn check_runs_for(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        sha: &CommitSha,
        name: &str,
    ) -> Result<Vec<CheckRunState>, ForgeError> {
        let op = "checks/list-for-ref";
        let mut out = Vec::new();
        let mut next = Some(format!(
            "/repos/{repo}/commits/{sha}/check-runs?check_name={}&filter=all&per_page=100",
            query_escape(name)
        ));
        while let Some(url) = next.take() {
            let reply = self.call(inst, Method::GET, &url, None, op).await?;
            let v = reply.json(op)?;
            let runs = v.get("check_runs").and_then(Value::as_array).ok_or_else(|| decode(op, "no check_runs"))?;
            out.extend(runs.iter().map(Self::run_state));
            if out.len() >= 1000 {
                break;
            }
            next = next_link(&reply.headers);
        }
        Ok(out)
    }

    pub async fn check_run(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        id: u64,
    ) -> Result<CheckRunState, ForgeError> {
        let op = "checks/get";
        let v = self.get_json(inst, &format!("/repos/{repo}/check-runs/{id}"), op).await?;
        Ok(Self::run_state(&v))
    }

    /// Every review thread of a pull request with its first comment.
    pub async fn review_threads(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        n: &PrNumber,
    ) -> Result<Vec<ReviewThread>, ForgeError> {
        let query = "query($owner: String!, $name: String!, $number: Int!, $after: String) {
  repository(owner: $owner, name: $name) { pullRequest(number: $number) {
    reviewThreads(first: 100, after: $after) { pageInfo { hasNextPage endCursor }
      nodes { id isResolved comments(first: 1) { nodes { id isMinimized } } } } } } }";
        let mut out = Vec::new();
        let mut after = Value::Null;
        for _ in 0..100 {
            let vars = json!({"owner": repo.owner, "name": repo.name, "number": n.0, "after": after});
            let data = self.graphql(inst, query, vars, "graphql/review-threads").await?;
            let threads = data.pointer("/repository/pullRequest/reviewThreads").cloned().unwrap_or(Value::Null);
            for t in threads.pointer("/nodes").and_then(Value::as_array).into_iter().flatten() {
                let comment = t.pointer("/comments/nodes/0").cloned().unwrap_or(Value::Null);
                out.push(ReviewThread {
                    id: s(t, "/id"),
                    resolved: t.get("isResolved").and_then(Value::as_bool).unwrap_or(false),
                    comment_node_id: s(&comment, "/id"),
                    minimized: comment.get("isMinimized").and_then(Value::as_bool).unwrap_or(false),
                });
            }
            if threads.pointer("/pageInfo/hasNextPage").and_then(Value::as_bool) != Some(true) {
                break;
            }
            after = threads.pointer("/pageInfo/endCursor").cloned().unwrap_or(Value::Null);
        }
        Ok(out)
    }

    /// Resolves (or, with `resolve` false, reopens) review threads, several per mutation.
    pub async fn resolve_threads(
        &self,
        inst: &InstallationId,
        thread_ids: &[String],
        resolve: bool,
    ) -> Result<(), ForgeError> {
        let field = if resolve { "resolveReviewThread" } else { "unresolveReviewThread" };
        for chunk in thread_ids.chunks(20) {
            let mut query = String::from("mutation {");
            for (i, id) in chunk.iter().enumerate() {
                let id = serde_json::to_string(id).expect("string");
                query.push_str(&format!(" r{i}: {field}(input: {{threadId: {id}}}) {{ thread {{ isResolved }} }}"));
            }
            query.push_str(" }");
            self.graphql(inst, &query, json!({}), "graphql/resolve-review-thread").await?;
        }
        Ok(())
    }

    /// Shows minimised comments again (a finding that came back).
    pub async fn unminimize(&self, inst: &InstallationId, node_ids: &[String]) -> Result<(), ForgeError> {
        for chunk in node_ids.chunks(20) {
            let mut query = String::from("mutation {");
            for (i, id) in chunk.iter().enumerate() {
                let id = serde_json::to_string(id).expect("string");
                query.push_str(&format!(
                    " u{i}: unminimizeComment(input: {{subjectId: {id}}}) {{ unminimizedComment {{ isMinimized }} }}"
                ));
            }
            query.push_str(" }");
            self.graphql(inst, &query, json!({}), "graphql/unminimize-comment").await?;
        }
        Ok(())
    }

    pub async fn review_comments(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        n: &PrNumber,
    ) -> Result<Vec<Value>, ForgeError> {
        self.get_pages(
            inst,
            &format!("/repos/{repo}/pulls/{n}/comments?per_page=100"),
            "pulls/list-review-comments",
            10_000,
        )
        .await
    }

    pub async fn create_review(
        &self,
        inst: &InstallationId,
        repo: &RepoSlug,
        n: &PrNumber,
        body: &Value,
    ) -> Result<(), ForgeError> {
        self.call(inst, Method::POST, &format!("/repos/{repo}/pulls/{n}/reviews"), Some(body), "pulls/create-review")
            .await?;
        Ok(())
    }

    /// Minimises comments as outdated, several per mutation.
    pub async fn minimize_outdated(&self, inst: &InstallationId, node_ids: &[String]) -> Result<(), ForgeError> {
        for chunk in node_ids.chunks(20) {
            let mut query = String::from("mutation {");
            for (i, id) in chunk.iter().enumerate() {
                let id = serde_json::to_string(id).expect("string");
                query.push_str(&format!(
                    " m{i}: minimizeComment(input: {{subjectId: {id}, classifier: OUTDATED}}) {{ minimizedComment {{ isMinimized }} }}"
                ));
            }
            query.push_str(" }");
            self.graphql(inst, &query, json!({}), "graphql/minimize-comment").await?;
        }
        Ok(())
    }
}

/// A query-string value: letters, digits and `-_.~` stay, the rest is percent-encoded.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
