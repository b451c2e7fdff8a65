//! Stories of the GitLab client against the fake GitLab: a check of a merge request done the way the App's
//! job will do it (status, versions, diffs, contents, built-in policies, discussions at positions, summary
//! note), and what must hold around it: redelivery and re-runs add nothing, a fix resolves, a fork is read
//! through the target project, rate limits are waited out, and a write whose answer was lost is not
//! repeated. Every story ends with the fake's `problems()` empty.

use std::time::Duration;

use guardrail::forge::github::CallPolicy;
use guardrail::forge::gitlab::{
    escape_quick_actions, next_page_url, rate_limit_wait, FileDiff, FileText, GitLab, Marker, MrIid, MrVersion,
    PolicyProject, ProjectRef, Reply, StatusState, StatusWrite, WantedDiscussion, Written, MAX_NEW_DISCUSSIONS,
};
use guardrail::forge::ForgeError;
use guardrail::metrics::Metrics;
use guardrail::policy::PolicySet;
use guardrail::scan::{scan_texts, ScanOptions};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::fake_gitlab::{FakeGitLab, TOKEN};

const CLEAN: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n    - name: web\n      image: registry.example/web:1.0\n      securityContext:\n        runAsNonRoot: true\n        allowPrivilegeEscalation: false\n        readOnlyRootFilesystem: true\n        capabilities:\n          drop: [\"ALL\"]\n      resources:\n        limits:\n          cpu: 100m\n          memory: 64Mi\n        requests:\n          cpu: 50m\n          memory: 32Mi\n";

fn client(fake: &FakeGitLab) -> GitLab {
    let policy = CallPolicy {
        attempts: 3,
        backoff: Duration::from_millis(20),
        max_inline_wait: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
    };
    GitLab::new(&fake.base_url(), SecretString::from(TOKEN.to_string()), Metrics::new(), policy).expect("client")
}

/// What one check of a merge request did.
#[derive(Debug, Default)]
struct Run {
    findings: Vec<(String, u32, String)>,
    positioned: usize,
    summary_only: Vec<(String, u32)>,
    created: usize,
    resolved: usize,
    kept: usize,
    reopened: usize,
    summary: Option<Written>,
}

fn marker_of(policy: &str, file: &str, pointer: &str) -> Marker {
    let digest = Sha256::digest(format!("{policy}\0{file}\0{pointer}").as_bytes());
    Marker::finding(&hex::encode(&digest[..12]))
}

/// The check job, forge side, as phase 2 wires it: the steps and calls are the client's public API.
async fn check(gl: &GitLab, project: &ProjectRef, iid: u64) -> Result<Run, ForgeError> {
    let iid = MrIid(iid);
    let bot = gl.current_user().await?;
    let mr = gl.merge_request(project, iid).await?;
    let head = mr.sha.clone().expect("head sha");
    let status = |state, description: &str| StatusWrite {
        state,
        name: "guardrail".into(),
        description: description.into(),
        target_url: None,
        git_ref: None,
    };
    gl.set_mr_status(&mr, &head, &status(StatusState::Running, "checking")).await?;
    let version: MrVersion = gl.version_for(project, iid, &head).await?.expect("a version for the head");
    let (diffs, complete) = gl.diffs(project, iid).await?;
    assert!(complete);
    let (source, git_ref) = gl.content_source(&mr, &head).await?.expect("head still current");
    let mut texts = Vec::new();
    for d in diffs.iter().filter(|d| !d.deleted_file && d.new_path.ends_with(".yaml")) {
        if let FileText::Text(t) = gl.file_text(&source, &d.new_path, &git_ref, 1 << 20).await? {
            texts.push((d.new_path.clone(), t));
        }
    }
    let policies = PolicySet::load(&[], &Default::default()).expect("built-in policies");
    let scan = scan_texts(&texts, &policies, &ScanOptions::default());
    let mut run = Run::default();
    let mut wanted = Vec::new();
    for f in &scan.outcome.findings {
        run.findings.push((f.file.clone(), f.region.line, f.policy.clone()));
        let lines: Option<FileDiff> = diffs.iter().find(|d| d.new_path == f.file).and_then(|d| d.lines());
        match lines.and_then(|l| l.position(&version, f.region.line, f.region.end_line.max(f.region.line))) {
            Some(position) => wanted.push(WantedDiscussion {
                marker: marker_of(&f.policy, &f.file, &f.pointer),
                body: format!("**{}**: {}", f.policy, f.message),
                position,
            }),
            None => run.summary_only.push((f.file.clone(), f.region.line)),
        }
    }
    run.positioned = wanted.len();
    let sync = gl.sync_discussions(project, iid, bot.id, &wanted, MAX_NEW_DISCUSSIONS).await?;
    (run.created, run.resolved, run.kept, run.reopened) = (sync.created, sync.resolved, sync.kept, sync.reopened);
    let mut summary = format!("guardrail found {} problem(s) at {}\n", run.findings.len(), &head[..8]);
    for (file, line, policy) in &run.findings {
        summary.push_str(&format!("- {file}:{line} {policy}\n"));
    }
    run.summary = Some(gl.upsert_note(project, iid, bot.id, &Marker::summary(), &summary).await?);
    let (state, text) = if run.findings.is_empty() {
        (StatusState::Success, "no problems".to_string())
    } else {
        (StatusState::Failed, format!("{} problem(s)", run.findings.len()))
    };
    gl.set_mr_status(&mr, &head, &status(state, &text)).await?;
    Ok(run)
}

fn no_problems(fake: &FakeGitLab) {
    assert_eq!(fake.problems(), Vec::<String>::new(), "calls: {:#?}", fake.calls());
}

fn privileged(base: &str) -> String {
    base.replace("        runAsNonRoot: true\n", "        runAsNonRoot: true\n        privileged: true\n")
}

fn open_violating(fake: &FakeGitLab) -> (u64, u64, ProjectRef) {
    let (project, _) = fake.add_project("platform/apps/web", &[("deploy/pod.yaml", CLEAN), ("README.md", "hi\n")]);
    fake.commit(project, "feature", &[("deploy/pod.yaml", Some(&privileged(CLEAN)))]);
    let iid = fake.open_mr(project, project, "feature", "Make it privileged");
    (project, iid, ProjectRef::parse_path("platform/apps/web").expect("path"))
}

#[tokio::test]
async fn a_violating_merge_request_gets_discussions_at_valid_positions_a_summary_and_a_failed_status() {
    let fake = FakeGitLab::start().await;
    let (project, iid, path) = open_violating(&fake);
    let gl = client(&fake);
    let run = check(&gl, &path, iid).await.expect("check");
    // The only finding of the change is the added `privileged: true` (line 11 of the new file).
    let privileged_findings: Vec<_> = run.findings.iter().filter(|(_, line, _)| *line == 11).collect();
    assert!(!privileged_findings.is_empty(), "{:?}", run.findings);
    assert!(run.positioned >= 1 && run.summary_only.is_empty(), "{run:?}");
    let discussions = fake.discussions(project, iid);
    assert_eq!(discussions.len(), run.positioned);
    assert_eq!(run.created, run.positioned);
    for d in &discussions {
        let pos = d.notes[0].position.as_ref().expect("a diff note");
        assert_eq!(pos["position_type"], "text");
        assert_eq!(pos["new_path"], "deploy/pod.yaml");
        assert_eq!(pos["head_sha"], fake.mr_head(project, iid).as_str());
        // An added line: new_line only.
        assert_eq!(pos["new_line"], 11, "{pos}");
        assert!(pos["old_line"].is_null());
        assert!(d.notes[0].body.contains("<!-- guardrail:finding:"));
    }
    let statuses = fake.statuses(project, &fake.mr_head(project, iid));
    assert_eq!(statuses.len(), 1, "one status, moved from running to failed: {statuses:?}");
    assert_eq!((statuses[0].name.as_str(), statuses[0].status.as_str()), ("guardrail", "failed"));
    assert_eq!(statuses[0].git_ref, "feature");
    let notes = fake.plain_notes(project, iid);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].body.contains("<!-- guardrail:summary -->"));
    no_problems(&fake);
}

#[tokio::test]
async fn the_expected_line_is_proven_by_the_edit_that_removes_it() {
    // Same change without the privileged line: the finding at line 11 is gone, nothing else changes.
    let fake = FakeGitLab::start().await;
    let (project, _) = fake.add_project("g/p", &[("deploy/pod.yaml", CLEAN)]);
    fake.commit(project, "feature", &[("deploy/pod.yaml", Some(&CLEAN.replace("web:1.0", "web:1.1")))]);
    let iid = fake.open_mr(project, project, "feature", "Bump");
    let gl = client(&fake);
    let run = check(&gl, &ProjectRef("g/p".into()), iid).await.expect("check");
    assert!(run.findings.is_empty(), "{:?}", run.findings);
    assert_eq!(fake.discussions(project, iid).len(), 0);
    let statuses = fake.statuses(project, &fake.mr_head(project, iid));
    assert_eq!(statuses.iter().map(|s| s.status.as_str()).collect::<Vec<_>>(), ["success"]);
    no_problems(&fake);
}

#[tokio::test]
async fn redelivery_and_rerun_add_nothing() {
    let fake = FakeGitLab::start().await;
    let (project, iid, path) = open_violating(&fake);
    let gl = client(&fake);
    let first = check(&gl, &path, iid).await.expect("first");
    let before = (fake.discussions(project, iid).len(), fake.plain_notes(project, iid).len());
    let second = check(&gl, &path, iid).await.expect("second");
    assert_eq!(second.created, 0);
    assert_eq!(second.kept, first.created);
    assert!(matches!(second.summary, Some(Written::Unchanged(_))), "{:?}", second.summary);
    assert_eq!((fake.discussions(project, iid).len(), fake.plain_notes(project, iid).len()), before);
    // Posting `running` twice would be refused by GitLab (400): the second run's statuses are new ones
    // only because the first finished; none was refused.
    assert!(fake.calls().iter().all(|(_, _, status)| *status < 400), "{:#?}", fake.calls());
    no_problems(&fake);
}

#[tokio::test]
async fn a_fix_push_resolves_and_a_reintroduced_finding_is_visible_again() {
    let fake = FakeGitLab::start().await;
    let (project, iid, path) = open_violating(&fake);
    let gl = client(&fake);
    check(&gl, &path, iid).await.expect("first");
    let opened = fake.discussions(project, iid).len();
    assert!(opened > 0);
    fake.commit(project, "feature", &[("deploy/pod.yaml", Some(CLEAN)), ("deploy/other.yaml", Some(CLEAN))]);
    assert_eq!(fake.version_count(project, iid), 2);
    let fixed = check(&gl, &path, iid).await.expect("fixed");
    assert_eq!(fixed.resolved, opened);
    assert!(fake.discussions(project, iid).iter().all(|d| d.notes[0].resolved));
    let head = fake.mr_head(project, iid);
    assert_eq!(fake.statuses(project, &head).last().map(|s| s.status.clone()).as_deref(), Some("success"));
    // The summary note was edited in place, not posted again.
    assert_eq!(fake.plain_notes(project, iid).len(), 1);
    assert!(fake.plain_notes(project, iid)[0].body.contains("0 problem(s)"));

    fake.commit(project, "feature", &[("deploy/pod.yaml", Some(&privileged(CLEAN)))]);
    let again = check(&gl, &path, iid).await.expect("again");
    assert_eq!(again.created + again.reopened, opened);
    let open: Vec<_> = fake.discussions(project, iid).into_iter().filter(|d| !d.notes[0].resolved).collect();
    assert_eq!(open.len(), opened);
    assert!(open
        .iter()
        .all(|d| d.notes[0].position.as_ref().unwrap()["head_sha"] == fake.mr_head(project, iid).as_str()));
    no_problems(&fake);
}

#[tokio::test]
async fn a_merge_request_from_an_unreadable_fork_is_read_through_the_target_project() {
    let fake = FakeGitLab::start().await;
    let (target, _) = fake.add_project("platform/web", &[("deploy/pod.yaml", CLEAN)]);
    let fork = fake.fork(target, "someone/web", false);
    fake.commit(fork, "patch", &[("deploy/pod.yaml", Some(&privileged(CLEAN)))]);
    let iid = fake.open_mr(target, fork, "patch", "From a fork");
    let gl = client(&fake);
    let path = ProjectRef("platform/web".into());
    let mr = gl.merge_request(&path, MrIid(iid)).await.expect("mr");
    assert!(mr.is_fork());
    let head = mr.sha.clone().unwrap();
    let (source, git_ref) = gl.content_source(&mr, &head).await.expect("source").expect("current");
    assert_eq!((source, git_ref.as_str()), (ProjectRef::id(target), "refs/merge-requests/1/head"));
    let run = check(&gl, &path, iid).await.expect("check");
    assert!(run.created > 0);
    // The fork refused the status (the bot cannot even see it): the target project took it.
    assert!(fake.statuses(fork, &head).is_empty());
    let statuses = fake.statuses(target, &head);
    assert_eq!(statuses.len(), 1);
    assert_eq!((statuses[0].status.as_str(), statuses[0].git_ref.as_str()), ("failed", "refs/merge-requests/1/head"));
    no_problems(&fake);
}

#[tokio::test]
async fn a_fork_the_bot_may_write_gets_the_status_on_its_branch_where_gitlab_shows_it() {
    let fake = FakeGitLab::start().await;
    let (target, _) = fake.add_project("platform/web", &[("deploy/pod.yaml", CLEAN)]);
    let readable = fake.fork(target, "someone/web", true);
    fake.add_member(readable, FakeGitLab::BOT_ID, 30);
    fake.commit(readable, "patch", &[("deploy/pod.yaml", Some(&privileged(CLEAN)))]);
    let iid = fake.open_mr(target, readable, "patch", "From a fork");
    let gl = client(&fake);
    let path = ProjectRef("platform/web".into());
    check(&gl, &path, iid).await.expect("check");
    let head = fake.mr_head(target, iid);
    let on_fork = fake.statuses(readable, &head);
    assert_eq!(
        on_fork.iter().map(|s| (s.status.as_str(), s.git_ref.as_str())).collect::<Vec<_>>(),
        [("failed", "patch")]
    );
    assert!(fake.statuses(target, &head).is_empty());
    // Files were read from the fork itself.
    assert!(fake.calls().iter().any(|c| c.1.contains(&format!("/projects/{readable}/repository/files/"))));

    // A readable fork where the bot is no Developer refuses the status (403): the target takes it.
    let other = fake.fork(target, "another/web", true);
    fake.commit(other, "p2", &[("deploy/pod.yaml", Some(&privileged(CLEAN)))]);
    let iid2 = fake.open_mr(target, other, "p2", "Another fork");
    check(&gl, &path, iid2).await.expect("check");
    let head2 = fake.mr_head(target, iid2);
    assert!(fake.statuses(other, &head2).is_empty());
    assert_eq!(fake.statuses(target, &head2).iter().map(|s| s.status.as_str()).collect::<Vec<_>>(), ["failed"]);
    no_problems(&fake);
}

#[tokio::test]
async fn rate_limits_are_waited_out_and_never_retried_early() {
    let fake = FakeGitLab::start().await;
    let (project, iid, path) = open_violating(&fake);
    fake.rate_limit("GET", "/diffs", 1, 1);
    fake.rate_limit("POST", "/discussions", 1, 1);
    let gl = client(&fake);
    let run = check(&gl, &path, iid).await.expect("check");
    assert_eq!(fake.discussions(project, iid).len(), run.created);
    assert_eq!(fake.calls().iter().filter(|c| c.2 == 429).count(), 2);
    no_problems(&fake);
    // A wait longer than the inline limit goes back to the queue as a typed error.
    fake.rate_limit("GET", "/user", 3600, 1);
    let err = gl.current_user().await.expect_err("rate limited");
    assert!(matches!(err, ForgeError::RateLimited { wait, .. } if wait == Duration::from_secs(3600)), "{err}");
}

#[tokio::test]
async fn writes_whose_answer_was_lost_are_reconciled_not_repeated() {
    let fake = FakeGitLab::start().await;
    let (project, iid, path) = open_violating(&fake);
    fake.lose_answer("POST", "/discussions");
    fake.lose_answer("POST", "/notes");
    fake.lose_answer("POST", "/statuses/");
    let gl = client(&fake);
    let run = check(&gl, &path, iid).await.expect("check");
    assert_eq!(fake.discussions(project, iid).len(), run.positioned, "one discussion per finding");
    assert_eq!(fake.plain_notes(project, iid).len(), 1, "one summary note");
    let statuses = fake.statuses(project, &fake.mr_head(project, iid));
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0].status, "failed");
    assert_eq!(fake.calls().iter().filter(|c| c.2 == 502).count(), 3);
    no_problems(&fake);
}

#[tokio::test]
async fn long_lists_are_paged_past_the_count_limit_and_withheld_diffs_are_told_apart() {
    let fake = FakeGitLab::start().await;
    let (project, _) = fake.add_project("g/big", &[("old-name.yaml", "a: 1\nb: 2\n"), ("gone.yaml", "x: 1\n")]);
    let mut changes: Vec<(String, Option<String>)> =
        (0..230).map(|i| (format!("cfg/f{i:03}.yaml"), Some(format!("n: {i}\n")))).collect();
    changes.push(("renamed.yaml".into(), Some("a: 1\nb: 2\n".into())));
    changes.push(("old-name.yaml".into(), None));
    changes.push(("gone.yaml".into(), None));
    changes.push(("huge.yaml".into(), Some("k: v\n".repeat(50))));
    changes.push(("lock.yaml".into(), Some("z: 1\n".into())));
    let refs: Vec<(&str, Option<&str>)> = changes.iter().map(|(p, c)| (p.as_str(), c.as_deref())).collect();
    fake.too_large("huge.yaml");
    fake.collapse("lock.yaml");
    fake.set_count_limit(100);
    fake.commit(project, "many", &refs);
    let iid = fake.open_mr(project, project, "many", "Many files");
    let gl = client(&fake);
    let (diffs, complete) = gl.diffs(&ProjectRef("g/big".into()), MrIid(iid)).await.expect("diffs");
    assert!(complete);
    assert_eq!(diffs.len(), 230 + 4, "{:?}", diffs.iter().map(|d| &d.new_path).collect::<Vec<_>>());
    let renamed = diffs.iter().find(|d| d.new_path == "renamed.yaml").unwrap();
    assert!(renamed.renamed_file && renamed.old_path == "old-name.yaml");
    assert!(diffs.iter().any(|d| d.deleted_file && d.old_path == "gone.yaml"));
    assert!(diffs.iter().find(|d| d.new_path == "huge.yaml").unwrap().lines().is_none());
    assert!(diffs.iter().find(|d| d.new_path == "lock.yaml").unwrap().lines().is_none());
    assert_eq!(
        diffs
            .iter()
            .find(|d| d.new_path == "cfg/f007.yaml")
            .unwrap()
            .lines()
            .unwrap()
            .added_lines()
            .collect::<Vec<_>>(),
        [1]
    );
    // 234 files at 100 a page: three pages, the last found by X-Next-Page alone (no totals past 100).
    assert_eq!(fake.calls().iter().filter(|c| c.1.contains("/diffs")).count(), 3);
    no_problems(&fake);
}

#[tokio::test]
async fn positions_name_diff_lines_as_gitlab_numbers_them_and_others_are_refused() {
    let fake = FakeGitLab::start().await;
    let old: String = (1..=20).map(|i| format!("line{i}\n")).collect();
    let new = old.replace("line10\n", "line10\nadded11\nadded12\n").replace("line2\n", "");
    let (project, _) = fake.add_project("g/pos", &[("f.yaml", &old)]);
    fake.commit(project, "b", &[("f.yaml", Some(&new))]);
    let iid = fake.open_mr(project, project, "b", "Positions");
    let gl = client(&fake);
    let path = ProjectRef("g/pos".into());
    let head = fake.mr_head(project, iid);
    let version = gl.version_for(&path, MrIid(iid), &head).await.unwrap().unwrap();
    let (diffs, _) = gl.diffs(&path, MrIid(iid)).await.unwrap();
    let lines = diffs[0].lines().unwrap();
    assert_eq!(lines.added_lines().collect::<Vec<_>>(), [10, 11]);
    let bot = gl.current_user().await.unwrap().id;
    // An added line, a multi-line range over an unchanged and two added lines, an unchanged line.
    for (start, end, old_line) in [(10, 10, None), (8, 11, None), (12, 12, Some(11))] {
        let pos = lines.position(&version, start, end).expect("in the diff");
        assert_eq!(pos.old_line, old_line);
        assert_eq!(pos.line_range.is_some(), start != end);
        let w =
            gl.create_discussion(&path, MrIid(iid), bot, &Marker::finding(&format!("{start}-{end}")), "x", &pos).await;
        assert!(matches!(w, Ok(Written::Created(_))), "{start}-{end}: {w:?}");
    }
    // Line 18 is outside every hunk: no position, and GitLab refuses a made-up one with 400.
    assert!(lines.position(&version, 18, 18).is_none());
    let mut bad = lines.position(&version, 10, 10).unwrap();
    bad.new_line = Some(18);
    let err = gl.create_discussion(&path, MrIid(iid), bot, &Marker::finding("bad"), "x", &bad).await.unwrap_err();
    assert!(
        matches!(&err, ForgeError::Status { status: 400, message, .. } if message.contains("valid line code")),
        "{err}"
    );
    // A context line given as `new_line` only is refused too: GitLab needs both sides.
    let mut half = lines.position(&version, 12, 12).unwrap();
    half.old_line = None;
    assert!(gl.create_discussion(&path, MrIid(iid), bot, &Marker::finding("half"), "x", &half).await.is_err());
    no_problems(&fake);
}

#[tokio::test]
async fn note_bodies_never_run_quick_actions() {
    let body = "Found:\n/close\n  /merge\n```\n/keep in code\n```\n    /indented code\npath /etc is fine";
    let escaped = escape_quick_actions(body);
    assert_eq!(escaped, "Found:\n\\/close\n  \\/merge\n```\n/keep in code\n```\n    /indented code\npath /etc is fine");
    let fake = FakeGitLab::start().await;
    let (project, iid, path) = open_violating(&fake);
    let gl = client(&fake);
    let bot = gl.current_user().await.unwrap().id;
    gl.upsert_note(&path, MrIid(iid), bot, &Marker::summary(), "/close\n/approve").await.unwrap();
    assert!(fake.plain_notes(project, iid)[0].body.starts_with("\\/close\n\\/approve"));
    no_problems(&fake);
}

#[tokio::test]
async fn other_peoples_notes_are_never_taken_for_the_bots() {
    let fake = FakeGitLab::start().await;
    let (project, iid, path) = open_violating(&fake);
    // Someone quotes the bot's marker: it is still not the bot's note.
    fake.add_user_discussion(project, iid, 99, "copied <!-- guardrail:summary -->");
    let gl = client(&fake);
    let bot = gl.current_user().await.unwrap().id;
    let w = gl.upsert_note(&path, MrIid(iid), bot, &Marker::summary(), "mine").await.unwrap();
    assert!(matches!(w, Written::Created(_)));
    assert_eq!(fake.plain_notes(project, iid).len(), 1);
    no_problems(&fake);
}

#[tokio::test]
async fn files_are_read_with_size_limits_and_missing_files_are_told_apart() {
    let fake = FakeGitLab::start().await;
    let (project, root) =
        fake.add_project("g/files", &[("dir/a b.yaml", "k: v\n"), ("big.yaml", &"x".repeat(5000)), ("bin", "a\0b")]);
    let gl = client(&fake);
    let p = ProjectRef::id(project);
    assert_eq!(gl.file_text(&p, "dir/a b.yaml", &root, 100).await.unwrap(), FileText::Text("k: v\n".into()));
    assert_eq!(gl.file_text(&p, "big.yaml", &root, 100).await.unwrap(), FileText::TooLarge(5000));
    assert_eq!(gl.file_text(&p, "bin", "main", 100).await.unwrap(), FileText::Binary);
    assert_eq!(gl.file_text(&p, "nope.yaml", &root, 100).await.unwrap(), FileText::Missing);
    // The path is one URL-encoded segment, `/` and `.` included, as GitLab's docs encode it.
    assert!(
        fake.calls().iter().any(|c| c.1.contains("/repository/files/dir%2Fa%20b%2Eyaml/raw?ref=")),
        "{:#?}",
        fake.calls()
    );
    assert_eq!(gl.member_access_level(&p, 5).await.unwrap(), None);
    fake.add_member(project, 5, 30);
    assert_eq!(gl.member_access_level(&p, 5).await.unwrap(), Some(30));
    no_problems(&fake);
}

#[tokio::test]
async fn server_errors_on_reads_are_retried_and_on_writes_reconciled() {
    let fake = FakeGitLab::start().await;
    let (project, iid, path) = open_violating(&fake);
    for route in ["/versions", "/diffs", "/raw"] {
        fake.fail_gets(route, 500, "500 Internal Server Error", 1);
    }
    let gl = client(&fake);
    let run = check(&gl, &path, iid).await.expect("check");
    assert_eq!(fake.discussions(project, iid).len(), run.created);
    assert_eq!(fake.calls().iter().filter(|c| c.2 == 500).count(), 3);
    no_problems(&fake);
}

#[test]
fn pages_follow_link_first_then_x_next_page_and_rate_limits_read_every_header() {
    let mut h = http::HeaderMap::new();
    h.insert("x-next-page", "3".parse().unwrap());
    let next = next_page_url("http://h/api/v4/x?per_page=100&page=2", &h).unwrap();
    assert_eq!(next, "http://h/api/v4/x?per_page=100&page=3");
    h.insert(
        "link",
        r#"<http://h/api/v4/x?cursor=abc>; rel="next", <http://h/api/v4/x?page=1>; rel="first""#.parse().unwrap(),
    );
    assert_eq!(next_page_url("http://h/api/v4/x", &h).unwrap(), "http://h/api/v4/x?cursor=abc");
    let mut last = http::HeaderMap::new();
    last.insert("x-next-page", "".parse().unwrap());
    assert_eq!(next_page_url("http://h/api/v4/x?page=9", &last), None);

    let reply = |status: u16, pairs: &[(&'static str, String)]| {
        let mut headers = http::HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(*k, v.parse().unwrap());
        }
        Reply { status, headers, body: Vec::new(), truncated: false }
    };
    assert_eq!(rate_limit_wait(&reply(429, &[("retry-after", "7".into())])), Some(Duration::from_secs(7)));
    let reset = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 30;
    let wait = rate_limit_wait(&reply(429, &[("ratelimit-reset", reset.to_string())])).unwrap();
    assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28), "{wait:?}");
    assert_eq!(rate_limit_wait(&reply(429, &[])), Some(Duration::from_secs(60)));
    assert_eq!(rate_limit_wait(&reply(403, &[("retry-after", "7".into())])), None);
}

#[tokio::test]
async fn the_policy_project_is_named_with_the_gitlab_prefix_and_listed_through_keyset_pages() {
    let p = PolicyProject::parse("gitlab:sec/platform/policies@v2:gatekeeper/").unwrap();
    assert_eq!(
        (p.project.0.as_str(), p.git_ref.as_deref(), p.path.as_deref()),
        ("sec/platform/policies", Some("v2"), Some("gatekeeper"))
    );
    let plain = PolicyProject::parse("gitlab:sec/policies").unwrap();
    assert_eq!((plain.git_ref, plain.path), (None, None));
    for bad in ["sec/policies", "github:sec/policies", "gitlab:policies", "gitlab:sec/policies@", "gitlab:sec/../x"] {
        assert_eq!(PolicyProject::parse(bad), None, "{bad}");
    }
    let fake = FakeGitLab::start().await;
    let files: Vec<(String, String)> =
        (0..150).map(|i| (format!("gatekeeper/t{i:03}.yaml"), "kind: X\n".to_string())).collect();
    let mut refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    refs.push(("README.md", "policies\n"));
    let (project, _) = fake.add_project("sec/platform/policies", &refs);
    let gl = client(&fake);
    let (listed, complete) = gl.tree(&p.project, "main", "gatekeeper", 10_000).await.unwrap();
    assert!(complete);
    assert_eq!(listed.len(), 150);
    assert!(listed.iter().all(|f| f.starts_with("gatekeeper/")));
    assert_eq!(fake.calls().iter().filter(|c| c.1.contains("/repository/tree")).count(), 2, "two keyset pages");
    let (whole, _) = gl.tree(&ProjectRef::id(project), "main", "", 10_000).await.unwrap();
    assert_eq!(whole.len(), 151);
    let (none, _) = gl.tree(&ProjectRef::id(project), "main", "nope", 10_000).await.unwrap();
    assert!(none.is_empty());
    no_problems(&fake);
}

#[tokio::test]
async fn new_discussions_are_capped_per_run_and_the_rest_come_on_the_next() {
    let fake = FakeGitLab::start().await;
    let (project, _) = fake.add_project("g/cap", &[("f.yaml", "a: 1\n")]);
    fake.commit(project, "b", &[("f.yaml", Some("a: 1\nb: 2\nc: 3\nd: 4\n"))]);
    let iid = fake.open_mr(project, project, "b", "Three findings");
    let gl = client(&fake);
    let path = ProjectRef("g/cap".into());
    let head = fake.mr_head(project, iid);
    let version = gl.version_for(&path, MrIid(iid), &head).await.unwrap().unwrap();
    let (diffs, _) = gl.diffs(&path, MrIid(iid)).await.unwrap();
    let lines = diffs[0].lines().unwrap();
    let wanted: Vec<WantedDiscussion> = (2..=4)
        .map(|line| WantedDiscussion {
            marker: Marker::finding(&format!("line{line}")),
            body: format!("finding at {line}"),
            position: lines.position(&version, line, line).unwrap(),
        })
        .collect();
    let bot = gl.current_user().await.unwrap().id;
    let first = gl.sync_discussions(&path, MrIid(iid), bot, &wanted, 2).await.unwrap();
    assert_eq!((first.created, first.over_limit.len()), (2, 1));
    assert_eq!(first.over_limit[0], Marker::finding("line4"));
    let second = gl.sync_discussions(&path, MrIid(iid), bot, &wanted, 2).await.unwrap();
    assert_eq!((second.created, second.kept, second.over_limit.len()), (1, 2, 0));
    assert_eq!(fake.discussions(project, iid).len(), 3);
    no_problems(&fake);
}

#[test]
fn instance_urls_may_have_a_sub_path_and_project_paths_are_one_segment() {
    for (given, api) in [
        ("https://gitlab.com", "https://gitlab.com/api/v4"),
        ("https://git.example.com/gitlab/", "https://git.example.com/gitlab/api/v4"),
        ("https://git.example.com/gitlab/api/v4", "https://git.example.com/gitlab/api/v4"),
    ] {
        let gl =
            GitLab::new(given, SecretString::from("t".to_string()), Metrics::new(), CallPolicy::default()).unwrap();
        assert_eq!(gl.api_url, api);
    }
    assert!(
        GitLab::new("gitlab.com", SecretString::from("t".to_string()), Metrics::new(), CallPolicy::default()).is_err()
    );
    assert_eq!(ProjectRef("group/sub.x/name".into()).segment(), "group%2Fsub%2Ex%2Fname");
    assert_eq!(ProjectRef::id(42).segment(), "42");
    assert_eq!(ProjectRef::parse_path("single"), None);
    assert_eq!(ProjectRef::parse_path("a/../b"), None);
}
