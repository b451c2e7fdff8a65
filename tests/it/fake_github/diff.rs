//! Pull request files as GitHub lists them: status, renames (same content under a new path), counts, and the
//! `patch` in git's unified format (3 lines of context, `@@ -a,b +c,d @@`, no file headers). The hunks also
//! decide which lines a review comment may point at.

use std::ops::Range;

use similar::{ChangeTag, TextDiff};

use super::state::{Files, State};

/// GitHub leaves `patch` out for diffs this large (and for binary files).
pub(crate) const PATCH_LIMIT: usize = 1024 * 1024;

pub(crate) struct FileDiff {
    pub filename: String,
    pub previous_filename: Option<String>,
    pub status: &'static str,
    pub sha: String,
    pub additions: u64,
    pub deletions: u64,
    pub patch: Option<String>,
    pub hunks: Vec<Hunk>,
}

/// 1-based line ranges: `old` are the LEFT lines a comment may use (context or removed), `new` the RIGHT ones.
pub(crate) struct Hunk {
    pub old: Range<u64>,
    pub new: Range<u64>,
}

impl FileDiff {
    /// Whether `line` on `side` ("LEFT"/"RIGHT") lies in a hunk; returns the hunk's index.
    pub fn hunk_of(&self, side: &str, line: u64) -> Option<usize> {
        self.hunks.iter().position(|h| if side == "LEFT" { h.old.contains(&line) } else { h.new.contains(&line) })
    }
}

pub(crate) fn is_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(8000).any(|b| *b == 0) || std::str::from_utf8(bytes).is_err()
}

pub(crate) fn diff_snapshots(s: &State, base: &Files, head: &Files) -> Vec<FileDiff> {
    let mut removed: Vec<(&String, &String)> = base.iter().filter(|(p, _)| !head.contains_key(*p)).collect();
    let mut out = Vec::new();
    for (path, sha) in head {
        match base.get(path) {
            Some(old) if old == sha => {}
            Some(old) => out.push(content_diff(s, path, None, "modified", old, sha)),
            None => match removed.iter().position(|(_, old)| *old == sha) {
                Some(i) => {
                    let (old_path, _) = removed.remove(i);
                    out.push(FileDiff {
                        filename: path.clone(),
                        previous_filename: Some(old_path.clone()),
                        status: "renamed",
                        sha: sha.clone(),
                        additions: 0,
                        deletions: 0,
                        patch: None,
                        hunks: Vec::new(),
                    });
                }
                None => out.push(content_diff(s, path, None, "added", "", sha)),
            },
        }
    }
    for (path, sha) in removed {
        let mut file = content_diff(s, path, None, "removed", sha, "");
        file.sha = sha.clone();
        out.push(file);
    }
    out.sort_by(|a, b| a.filename.cmp(&b.filename));
    out
}

fn content_diff(
    s: &State,
    path: &str,
    previous: Option<String>,
    status: &'static str,
    old: &str,
    new: &str,
) -> FileDiff {
    let bytes = |sha: &str| if sha.is_empty() { Default::default() } else { s.blob(sha).unwrap_or_default() };
    let (old_bytes, new_bytes) = (bytes(old), bytes(new));
    let mut file = FileDiff {
        filename: path.to_string(),
        previous_filename: previous,
        status,
        sha: new.to_string(),
        additions: 0,
        deletions: 0,
        patch: None,
        hunks: Vec::new(),
    };
    if is_binary(&old_bytes) || is_binary(&new_bytes) {
        return file;
    }
    let (old_text, new_text) = (String::from_utf8_lossy(&old_bytes), String::from_utf8_lossy(&new_bytes));
    let (patch, hunks, additions, deletions) = unified(&old_text, &new_text);
    file.additions = additions;
    file.deletions = deletions;
    file.hunks = hunks;
    file.patch = (!patch.is_empty() && patch.len() <= PATCH_LIMIT).then_some(patch);
    file
}

/// git's unified diff body: hunks only, lines joined by "\n" with no trailing newline, as in GitHub's `patch`.
pub(crate) fn unified(old: &str, new: &str) -> (String, Vec<Hunk>, u64, u64) {
    let diff = TextDiff::from_lines(old, new);
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let mut lines: Vec<String> = Vec::new();
    let mut hunks = Vec::new();
    let (mut additions, mut deletions) = (0, 0);
    for group in diff.grouped_ops(3) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else { continue };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        let heading = old_lines[..old_range.start]
            .iter()
            .rev()
            .find(|l| l.starts_with(|c: char| c.is_alphabetic() || c == '_' || c == '$'));
        let heading = heading.map(|l| format!(" {}", truncate(l.trim_end(), 80))).unwrap_or_default();
        lines.push(format!("@@ -{} +{} @@{heading}", range_text(&old_range), range_text(&new_range)));
        hunks.push(Hunk {
            old: (old_range.start as u64 + 1)..(old_range.end as u64 + 1),
            new: (new_range.start as u64 + 1)..(new_range.end as u64 + 1),
        });
        for op in &group {
            for change in diff.iter_changes(op) {
                let prefix = match change.tag() {
                    ChangeTag::Equal => ' ',
                    ChangeTag::Delete => {
                        deletions += 1;
                        '-'
                    }
                    ChangeTag::Insert => {
                        additions += 1;
                        '+'
                    }
                };
                let value = change.value();
                match value.strip_suffix('\n') {
                    Some(text) => lines.push(format!("{prefix}{text}")),
                    None => {
                        lines.push(format!("{prefix}{value}"));
                        lines.push("\\ No newline at end of file".to_string());
                    }
                }
            }
        }
    }
    (lines.join("\n"), hunks, additions, deletions)
}

/// git keeps at most 80 bytes of the hunk heading.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `start,len` with git's conventions: an empty range names the line before it; a length of 1 is left out.
fn range_text(range: &Range<usize>) -> String {
    match range.len() {
        0 => format!("{},0", range.start),
        1 => format!("{}", range.start + 1),
        n => format!("{},{n}", range.start + 1),
    }
}
