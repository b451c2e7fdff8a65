//! Patch and diff parsing: a GitHub file `patch` -> the lines a review comment may take, and a
//! GitLab merge-request `diff` -> its numbered lines and positions. Never a panic (overflow checks
//! are on), and every added line is found again by its number.
#![no_main]

use guardrail::forge::gitlab::{FileDiff, MrVersion};
use guardrail::report::review::commentable_lines;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = commentable_lines(&text);

    let diff = FileDiff::parse("a.yaml", "b.yaml", &text);
    let version = MrVersion {
        id: 1,
        head_commit_sha: "h".into(),
        base_commit_sha: "b".into(),
        start_commit_sha: "s".into(),
        state: String::new(),
    };
    // The first lines only: `line_at` is a linear search (fine per finding), and fuzzing speed
    // matters more here than asking it again for every line of a long hunk.
    for n in diff.added_lines().take(16).collect::<Vec<_>>() {
        assert!(diff.line_at(n).is_some(), "an added line is found by its number");
        let _ = diff.position(&version, n, n);
        let _ = diff.position(&version, n, n.saturating_add(3));
    }
});
