//! Merge request diffs as GitLab numbers them, and the positions a discussion may take on them. GitLab
//! answers 400 ("must be a valid line code") unless a position names a line of the version's diff exactly
//! as its own parser numbers it: an added line has `new_line` only, a removed line `old_line` only, an
//! unchanged (context) line both. Lines outside the hunks get no position: they go into the summary note.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use super::api::MrVersion;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineKind {
    Added,
    Removed,
    Context,
}

/// One line of a hunk. `old_pos`/`new_pos` are GitLab's counters at that line (an added line carries the
/// old side's next line number, and the other way round): they make up its `line_code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiffLine {
    pub kind: LineKind,
    pub old_pos: u32,
    pub new_pos: u32,
    /// Index of the hunk this line belongs to.
    pub hunk: usize,
}

impl DiffLine {
    pub fn old_line(&self) -> Option<u32> {
        (self.kind != LineKind::Added).then_some(self.old_pos)
    }

    pub fn new_line(&self) -> Option<u32> {
        (self.kind != LineKind::Removed).then_some(self.new_pos)
    }
}

/// A changed file of a merge request version, with the lines its diff shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDiff {
    pub old_path: String,
    pub new_path: String,
    pub lines: Vec<DiffLine>,
}

/// `sha1(path)_old_new`, the identifier GitLab gives a diff line.
pub fn line_code(path: &str, old_pos: u32, new_pos: u32) -> String {
    format!("{}_{old_pos}_{new_pos}", hex::encode(Sha1::digest(path.as_bytes())))
}

impl FileDiff {
    /// Parses GitLab's `diff` text (hunks, with or without `---`/`+++` headers).
    pub fn parse(old_path: &str, new_path: &str, diff: &str) -> FileDiff {
        let mut lines = Vec::new();
        let (mut old, mut new) = (0u32, 0u32);
        let mut hunk: Option<usize> = None;
        // Off after a line number would pass u32::MAX (no diff GitLab makes): the rest of that hunk
        // is not numbered.
        let mut counting = false;
        for raw in diff.lines() {
            if let Some(rest) = raw.strip_prefix("@@ ") {
                let mut parts = rest.split_whitespace();
                let start = |p: Option<&str>, sign: char| {
                    p.and_then(|p| p.strip_prefix(sign))
                        .and_then(|p| p.split(',').next())
                        .and_then(|n| n.parse::<u32>().ok())
                };
                let (o, n) = (start(parts.next(), '-'), start(parts.next(), '+'));
                let (Some(o), Some(n)) = (o, n) else { continue };
                // `-0,0` (a new file) starts counting at 1 like every other side.
                old = o.max(1);
                new = n.max(1);
                hunk = Some(hunk.map_or(0, |h| h + 1));
                counting = true;
                continue;
            }
            let Some(h) = hunk.filter(|_| counting) else { continue };
            let (kind, o, n) = match raw.chars().next() {
                Some('+') => (LineKind::Added, 0, 1),
                Some('-') => (LineKind::Removed, 1, 0),
                Some(' ') | None => (LineKind::Context, 1, 1),
                // `\ No newline at end of file` and anything else is not a line of either side.
                _ => continue,
            };
            lines.push(DiffLine { kind, old_pos: old, new_pos: new, hunk: h });
            match (old.checked_add(o), new.checked_add(n)) {
                (Some(a), Some(b)) => (old, new) = (a, b),
                _ => counting = false,
            }
        }
        FileDiff { old_path: old_path.to_string(), new_path: new_path.to_string(), lines }
    }

    /// The diff line showing `new_line` of the new file, if the diff shows it.
    pub fn line_at(&self, new_line: u32) -> Option<&DiffLine> {
        self.lines.iter().find(|l| l.new_line() == Some(new_line))
    }

    /// New-file lines this diff adds.
    pub fn added_lines(&self) -> impl Iterator<Item = u32> + '_ {
        self.lines.iter().filter(|l| l.kind == LineKind::Added).map(|l| l.new_pos)
    }

    /// A position for a finding on new-file lines `start..=end` (`end` is where the discussion shows),
    /// or `None` when the diff does not show line `end`. The range is cut to the lines of `end`'s hunk.
    pub fn position(&self, version: &MrVersion, start: u32, end: u32) -> Option<Position> {
        let end_index = self.lines.iter().position(|l| l.new_line() == Some(end))?;
        let last = self.lines[end_index];
        let mut first = last;
        for l in self.lines[..end_index].iter().rev() {
            if l.hunk != last.hunk {
                break;
            }
            match l.new_line() {
                Some(n) if n >= start => first = *l,
                Some(_) => break,
                None => {}
            }
        }
        let line_range =
            (first != last).then(|| LineRange { start: self.range_end(&first), end: self.range_end(&last) });
        Some(Position {
            base_sha: version.base_commit_sha.clone(),
            start_sha: version.start_commit_sha.clone(),
            head_sha: version.head_commit_sha.clone(),
            old_path: self.old_path.clone(),
            new_path: self.new_path.clone(),
            new_line: last.new_line(),
            old_line: last.old_line(),
            line_range,
        })
    }

    fn range_end(&self, l: &DiffLine) -> RangeEnd {
        RangeEnd {
            line_code: line_code(&self.new_path, l.old_pos, l.new_pos),
            kind: if l.kind == LineKind::Removed { "old" } else { "new" }.to_string(),
            old_line: l.old_line(),
            new_line: l.new_line(),
        }
    }
}

/// A `text` position on one version of a merge request (`position_type` is always `text` here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub base_sha: String,
    pub start_sha: String,
    pub head_sha: String,
    pub old_path: String,
    pub new_path: String,
    pub new_line: Option<u32>,
    pub old_line: Option<u32>,
    pub line_range: Option<LineRange>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineRange {
    pub start: RangeEnd,
    pub end: RangeEnd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeEnd {
    pub line_code: String,
    /// `new` for added and unchanged lines, `old` for removed ones.
    pub kind: String,
    pub old_line: Option<u32>,
    pub new_line: Option<u32>,
}

impl Position {
    /// The `position` object of "Create new merge request thread".
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "position_type": "text",
            "base_sha": self.base_sha,
            "start_sha": self.start_sha,
            "head_sha": self.head_sha,
            "old_path": self.old_path,
            "new_path": self.new_path,
            "new_line": self.new_line,
            "old_line": self.old_line,
        });
        if let Some(range) = &self.line_range {
            let end = |e: &RangeEnd| json!({"line_code": e.line_code, "type": e.kind, "old_line": e.old_line, "new_line": e.new_line});
            v["line_range"] = json!({"start": end(&range.start), "end": end(&range.end)});
        }
        v
    }

    /// Reads a position from a note as GitLab returns it (for reconciling and resolving).
    pub fn from_json(v: &Value) -> Option<Position> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| v.get(k).and_then(Value::as_u64).map(|n| n as u32);
        Some(Position {
            base_sha: s("base_sha").unwrap_or_default(),
            start_sha: s("start_sha").unwrap_or_default(),
            head_sha: s("head_sha")?,
            old_path: s("old_path").unwrap_or_default(),
            new_path: s("new_path")?,
            new_line: n("new_line"),
            old_line: n("old_line"),
            line_range: None,
        })
    }
}
