//! Inline review comments: which findings can be commented (their line is in the pull request's diff),
//! what the comment says (templates/comment.md.j2), and which earlier comments are now outdated.
//! A hidden marker in each comment names (policy, constraint, resource, field), so a re-run or a
//! redelivery never posts the same comment twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use super::fingerprint::Fingerprint;
use super::paths::repo_path;
use crate::findings::{Finding, Severity};

const MARKER: &str = "<!-- guardrail:finding ";
/// GitHub rejects comment bodies over 65536 characters.
pub const MAX_COMMENT: usize = 65_000;
/// New inline comments per run: beyond this a review buries the conversation (and huge reviews hit
/// GitHub's secondary limits); the rest are annotations, and the summary says so.
pub const MAX_NEW_COMMENTS: usize = 50;

/// Lines of the new file (`RIGHT` side) that a review comment may point at: added and context lines
/// of every hunk in a file's `patch`.
pub fn commentable_lines(patch: &str) -> BTreeSet<u32> {
    let mut lines = BTreeSet::new();
    let mut next: Option<u32> = None;
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("@@ ") {
            // `@@ -a,b +c,d @@ heading`
            next = rest
                .split_whitespace()
                .find_map(|part| part.strip_prefix('+'))
                .and_then(|p| p.split(',').next())
                .and_then(|n| n.parse().ok());
            continue;
        }
        let Some(n) = next else { continue };
        match line.as_bytes().first() {
            // `None`: an empty context line whose leading space was stripped.
            Some(b'+') | Some(b' ') | None => {
                lines.insert(n);
                // A hunk that claims to run past line 4294967295 is not GitHub's: its rest is ignored.
                next = n.checked_add(1);
            }
            _ => {} // `-` (old side only) and `\ No newline at end of file`
        }
    }
    lines
}

/// The identity of a finding across commits: not its line (lines move), but what it is about.
pub fn finding_key(f: &Finding) -> String {
    Fingerprint::new()
        .field(&f.policy)
        .field(&f.constraint)
        .resource(f.resource.as_ref())
        .field(&f.pointer)
        .field(&repo_path(&f.file))
        .hex()
}

/// The marker inside a comment body, if guardrail wrote it.
pub fn marker_of(body: &str) -> Option<&str> {
    let start = body.find(MARKER)? + MARKER.len();
    let rest = &body[start..];
    Some(rest[..rest.find(' ')?].trim())
}

/// What the policy says about itself, for "why it matters" and "how to fix".
#[derive(Clone, Debug, Default)]
pub struct Explanation {
    pub description: String,
    pub remediation: String,
}

/// One comment to post.
#[derive(Clone, Debug, PartialEq)]
pub struct NewComment {
    pub path: String,
    pub line: u32,
    pub body: String,
    pub key: String,
}

/// What the review step has to do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReviewPlan {
    pub comments: Vec<NewComment>,
    /// Node ids of earlier guardrail comments whose finding is gone.
    pub outdated: Vec<String>,
    /// Findings that already have a comment (nothing new is posted).
    pub unchanged: usize,
    /// Findings whose line is not in the diff: annotations and the summary only.
    pub outside_diff: usize,
    /// Findings in the diff left without a comment because of `MAX_NEW_COMMENTS`.
    pub over_limit: usize,
}

/// An earlier review comment, as the list endpoint returns it.
pub struct Existing {
    pub node_id: String,
    pub body: String,
    pub by_us: bool,
    pub minimized: bool,
}

impl Existing {
    /// Comments by any bot account count as ours when they carry our marker (a person copying the
    /// marker into a comment of their own must not make guardrail hide it).
    pub fn from_api(v: &Value) -> Existing {
        Existing {
            node_id: v.get("node_id").and_then(Value::as_str).unwrap_or("").to_string(),
            body: v.get("body").and_then(Value::as_str).unwrap_or("").to_string(),
            by_us: v.pointer("/user/type").and_then(Value::as_str) == Some("Bot"),
            minimized: false,
        }
    }
}

/// Decides the comments: at most one per finding key, only on lines inside the diff, none for a key
/// that already has a comment; earlier comments whose key is gone are outdated.
pub fn plan(
    findings: &[Finding],
    patches: &HashMap<String, Option<String>>,
    existing: &[Existing],
    sources: &HashMap<String, String>,
    explain: &dyn Fn(&str) -> Explanation,
) -> ReviewPlan {
    let mut plan = ReviewPlan::default();
    let ours: BTreeMap<String, &Existing> =
        existing.iter().filter(|e| e.by_us).filter_map(|e| Some((marker_of(&e.body)?.to_string(), e))).collect();
    let mut lines_of: HashMap<&str, BTreeSet<u32>> = HashMap::new();
    let mut current = BTreeSet::new();
    for f in findings {
        if f.severity == Severity::Info {
            continue;
        }
        let key = finding_key(f);
        if !current.insert(key.clone()) {
            continue;
        }
        if ours.contains_key(&key) {
            plan.unchanged += 1;
            continue;
        }
        let path = repo_path(&f.file);
        let lines = lines_of.entry(f.file.as_str()).or_insert_with(|| {
            patches.get(&path).cloned().flatten().map(|p| commentable_lines(&p)).unwrap_or_default()
        });
        if f.region.line == 0 || !lines.contains(&f.region.line) {
            plan.outside_diff += 1;
            continue;
        }
        if plan.comments.len() >= MAX_NEW_COMMENTS {
            plan.over_limit += 1;
            continue;
        }
        let source_line = sources.get(&f.file).and_then(|t| t.lines().nth(f.region.line as usize - 1));
        let body = comment_body(f, &key, &explain(&f.policy), source_line);
        plan.comments.push(NewComment { path, line: f.region.line, body, key });
    }
    plan.outdated = ours
        .iter()
        .filter(|(key, e)| !current.contains(*key) && !e.minimized && !e.node_id.is_empty())
        .map(|(_, e)| e.node_id.clone())
        .collect();
    plan
}

/// A one-line fix, when there is an obvious one: a boolean the policy objects to, set to `false`.
fn suggestion(f: &Finding, source_line: Option<&str>) -> Option<String> {
    const FLAGS: &[&str] = &[
        "privileged",
        "allowPrivilegeEscalation",
        "hostNetwork",
        "hostPID",
        "hostIPC",
        "automountServiceAccountToken",
    ];
    let line = source_line?;
    let field = f.pointer.rsplit('/').next()?;
    if !FLAGS.contains(&field) {
        return None;
    }
    let (head, value) = line.split_once(':')?;
    if head.trim().trim_start_matches("- ").trim_matches(|c| c == '"' || c == '\'') != field {
        return None;
    }
    let value = value.split('#').next()?.trim();
    let truthy = ["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"];
    truthy.contains(&value).then(|| format!("{head}: false"))
}

pub fn comment_body(f: &Finding, key: &str, explanation: &Explanation, source_line: Option<&str>) -> String {
    let env = super::templates::environment();
    let mut context = super::templates::finding_context(f);
    context["why"] = json!(explanation.description);
    context["fix"] = json!(explanation.remediation);
    context["suggestion"] = json!(suggestion(f, source_line));
    context["marker"] = json!(format!("{MARKER}{key} -->"));
    let mut body = env
        .get_template("comment.md")
        .and_then(|t| t.render(context))
        .unwrap_or_else(|e| format!("{}: {}\n\n{MARKER}{key} -->", f.policy, e));
    if body.len() > MAX_COMMENT {
        let mut cut = MAX_COMMENT - 200;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body = format!("{}\n\n(truncated)\n\n{MARKER}{key} -->", &body[..cut]);
    }
    body
}

/// The body of `POST /pulls/{n}/reviews` for the new comments.
pub fn review_request(commit: &str, comments: &[NewComment]) -> Value {
    json!({
        "commit_id": commit,
        "event": "COMMENT",
        "body": format!("guardrail found {} new policy violation(s) on lines changed by this pull request.", comments.len()),
        "comments": comments.iter().map(|c| json!({
            "path": c.path,
            "line": c.line,
            "side": "RIGHT",
            "body": c.body,
        })).collect::<Vec<_>>(),
    })
}
