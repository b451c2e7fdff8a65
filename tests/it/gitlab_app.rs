//! Merge-request stories through the real App: `guardrail serve`'s settings, router and workers against
//! the fake GitLab. A webhook is delivered over HTTP to `/webhooks/gitlab`, the queue is drained, and
//! the assertions read what the fake recorded (statuses, discussions with positions the fake validated
//! as GitLab does, notes). Every story ends with no request the fake refused or did not know, and no
//! job left behind.

mod harness;

use clap::Parser;
use guardrail::settings::Settings;
use serde_json::{json, Value};

use crate::app::{job_retry, run_worker};
use crate::fake_gitlab::FakeGitLab;
pub use harness::*;

pub(crate) const CLEAN: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n    - name: web\n      image: registry.example/web:1.0\n      securityContext:\n        runAsNonRoot: true\n        allowPrivilegeEscalation: false\n        readOnlyRootFilesystem: true\n        capabilities:\n          drop: [\"ALL\"]\n      resources:\n        limits:\n          cpu: 100m\n          memory: 64Mi\n        requests:\n          cpu: 50m\n          memory: 32Mi\n";

pub(crate) fn privileged(base: &str) -> String {
    base.replace("        runAsNonRoot: true\n", "        runAsNonRoot: true\n        privileged: true\n")
}

fn note_hook(fake: &FakeGitLab, target: u64, iid: u64, author: u64, note: &str) -> Vec<u8> {
    let head = fake.mr_head(target, iid);
    json!({
        "object_kind": "note",
        "project": {"id": target, "path_with_namespace": fake.project_path(target), "default_branch": "main"},
        "object_attributes": {"id": 1, "note": note, "noteable_type": "MergeRequest", "author_id": author, "system": false},
        "merge_request": {"iid": iid, "state": "opened", "last_commit": {"id": head},
                          "source_project_id": target, "target_project_id": target},
    })
    .to_string()
    .into_bytes()
}

fn push_hook(fake: &FakeGitLab, project: u64, after: &str) -> Vec<u8> {
    json!({"object_kind": "push", "ref": "refs/heads/main", "before": "0".repeat(40), "after": after,
           "project": {"id": project, "path_with_namespace": fake.project_path(project), "default_branch": "main"}})
    .to_string()
    .into_bytes()
}

/// A project with a clean Pod and a merge request that makes it privileged (line 11 of the new file).
pub(crate) fn open_violating(fake: &FakeGitLab) -> (u64, u64) {
    let (project, _) = fake.add_project("platform/apps/web", &[("deploy/pod.yaml", CLEAN), ("README.md", "hi\n")]);
    fake.commit(project, "feature", &[("deploy/pod.yaml", Some(&privileged(CLEAN)))]);
    let iid = fake.open_mr(project, project, "feature", "Make it privileged");
    (project, iid)
}

/// (state, git ref) of the `guardrail` statuses on `sha` in `project`.
pub(crate) fn statuses(fake: &FakeGitLab, project: u64, sha: &str) -> Vec<(String, String)> {
    fake.statuses(project, sha).into_iter().filter(|s| s.name == "guardrail").map(|s| (s.status, s.git_ref)).collect()
}

/// Counts of what the bot wrote: (discussions, open discussions, notes).
fn written(fake: &FakeGitLab, project: u64, iid: u64) -> (usize, usize, usize) {
    let d = fake.discussions(project, iid);
    let open = d.iter().filter(|d| !d.notes[0].resolved).count();
    (d.len(), open, fake.plain_notes(project, iid).len())
}

#[tokio::test]
async fn a_violating_merge_request_gets_a_failed_status_discussions_at_the_changed_line_and_one_summary() {
    violating_merge_request(None).await;
}

/// On SQLite (`None`) or on the PostgreSQL database given (`gitlab_durability`).
pub(crate) async fn violating_merge_request(database: Option<String>) {
    let h = GitLabHarness::on(database, &[]).await;
    let (project, iid) = open_violating(&h.fake);
    let (status, reply) =
        h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["jobs"], 1);
    h.drain().await;

    let head = h.fake.mr_head(project, iid);
    assert_eq!(statuses(&h.fake, project, &head), [("failed".to_string(), "feature".to_string())]);
    let discussions = h.fake.discussions(project, iid);
    assert!(!discussions.is_empty());
    for d in &discussions {
        let note = &d.notes[0];
        assert_eq!(note.author_id, FakeGitLab::BOT_ID);
        let pos = note.position.as_ref().expect("a diff note");
        assert_eq!(pos["position_type"], "text");
        assert_eq!(
            (pos["old_path"].as_str(), pos["new_path"].as_str()),
            (Some("deploy/pod.yaml"), Some("deploy/pod.yaml"))
        );
        assert_eq!(pos["head_sha"], head.as_str());
        // The added `privileged: true`: an added line carries new_line only.
        assert_eq!(pos["new_line"], 11, "{pos}");
        assert!(pos["old_line"].is_null(), "{pos}");
        assert!(note.body.contains("<!-- guardrail:finding:"), "{}", note.body);
        assert!(note.body.contains("privileged"), "{}", note.body);
    }
    let notes = h.fake.plain_notes(project, iid);
    assert_eq!(notes.len(), 1, "one summary note");
    assert!(notes[0].body.contains("<!-- guardrail:summary -->"));
    assert!(notes[0].body.contains("deploy/pod.yaml"), "{}", notes[0].body);
    assert!(notes[0].body.contains("built-in pack"), "{}", notes[0].body);
    h.finish().await;
}

#[tokio::test]
async fn a_clean_merge_request_gets_success_and_no_discussions() {
    let h = GitLabHarness::new(&[]).await;
    let (project, _) = h.fake.add_project("g/clean", &[("deploy/pod.yaml", CLEAN)]);
    h.fake.commit(project, "bump", &[("deploy/pod.yaml", Some(&CLEAN.replace("web:1.0", "web:1.1")))]);
    let iid = h.fake.open_mr(project, project, "bump", "Bump");
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    h.drain().await;
    let head = h.fake.mr_head(project, iid);
    assert_eq!(statuses(&h.fake, project, &head), [("success".to_string(), "bump".to_string())]);
    assert!(h.fake.discussions(project, iid).is_empty());
    assert_eq!(h.fake.plain_notes(project, iid).len(), 1);
    h.finish().await;
}

#[tokio::test]
async fn redelivery_a_title_only_update_and_a_rerun_add_nothing() {
    redelivery_and_rerun(None).await;
}

/// On SQLite (`None`) or on the PostgreSQL database given (`gitlab_durability`).
pub(crate) async fn redelivery_and_rerun(database: Option<String>) {
    let h = GitLabHarness::on(database, &[]).await;
    let (project, iid) = open_violating(&h.fake);
    h.fake.add_member(project, 42, 30);
    // As GitLab sends it: with the merge request's `updated_at`, which orders the jobs of one MR.
    let mut open: Value =
        serde_json::from_slice(&h.fake.merge_request_hook(project, iid, "open", None, json!({}))).expect("json");
    open["object_attributes"]["updated_at"] = json!("2026-01-01T10:00:00Z");
    let open = open.to_string().into_bytes();
    assert_eq!(h.deliver_as("Merge Request Hook", "same-key", &open, SECRET).await.0, 202);
    h.drain().await;
    let before = written(&h.fake, project, iid);
    let calls = h.fake.calls().len();

    // GitLab resends with the same Idempotency-Key: acknowledged, nothing queued, no call to GitLab.
    let (status, reply) = h.deliver_as("Merge Request Hook", "same-key", &open, SECRET).await;
    assert_eq!((status, &reply["duplicate"]), (200, &json!(true)), "{reply}");
    let title = json!({"title": {"previous": "Make it privileged", "current": "Privileged, on purpose"}});
    let (status, reply) =
        h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "update", None, title)).await;
    assert_eq!((status, &reply["jobs"]), (202, &json!(0)), "{reply}");
    assert_eq!(h.drain().await, 0);
    assert_eq!(h.fake.calls().len(), calls, "no GitLab call for a redelivery or a title change");

    assert_eq!(h.fake.status_count(), 1);
    // A re-run by a Developer runs the whole check again: a new status (GitLab keeps finished ones),
    // no new discussion or note.
    let (status, reply) = h.deliver("Note Hook", &note_hook(&h.fake, project, iid, 42, "/guardrail rerun")).await;
    assert_eq!((status, &reply["jobs"]), (202, &json!(1)), "{reply}");
    assert_eq!(h.drain().await, 1);
    assert!(h.fake.calls().len() > calls, "the re-run read the merge request again");
    assert_eq!(written(&h.fake, project, iid), before);
    let head = h.fake.mr_head(project, iid);
    assert_eq!(statuses(&h.fake, project, &head).last().map(|s| s.0.as_str()), Some("failed"));
    // Someone without access asks too: nothing is written.
    let calls = h.fake.calls().len();
    h.deliver("Note Hook", &note_hook(&h.fake, project, iid, 99, "/guardrail rerun")).await;
    h.drain().await;
    assert_eq!(written(&h.fake, project, iid), before);
    let writes = h.fake.calls()[calls..].iter().filter(|c| c.0 != "GET").count();
    assert_eq!(writes, 0, "{:#?}", &h.fake.calls()[calls..]);
    h.finish().await;
}

#[tokio::test]
async fn a_fix_push_resolves_the_discussion_and_a_reintroduced_finding_is_visible_again() {
    fix_push(None).await;
}

/// On SQLite (`None`) or on the PostgreSQL database given (`gitlab_durability`).
pub(crate) async fn fix_push(database: Option<String>) {
    let h = GitLabHarness::on(database, &[]).await;
    let (project, iid) = open_violating(&h.fake);
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    h.drain().await;
    let opened = h.fake.discussions(project, iid).len();
    assert!(opened > 0);

    let old = h.fake.mr_head(project, iid);
    h.fake.commit(project, "feature", &[("deploy/pod.yaml", Some(CLEAN)), ("deploy/other.yaml", Some(CLEAN))]);
    let update = h.fake.merge_request_hook(project, iid, "update", Some(&old), json!({}));
    h.deliver("Merge Request Hook", &update).await;
    h.drain().await;
    let fixed = h.fake.mr_head(project, iid);
    assert_eq!(statuses(&h.fake, project, &fixed), [("success".to_string(), "feature".to_string())]);
    assert!(h.fake.discussions(project, iid).iter().all(|d| d.notes[0].resolved), "the fix resolved them");
    assert_eq!(h.fake.plain_notes(project, iid).len(), 1, "the summary note is edited in place");
    assert!(h.fake.plain_notes(project, iid)[0].body.contains("No policy violations"));

    h.fake.commit(project, "feature", &[("deploy/pod.yaml", Some(&privileged(CLEAN)))]);
    let update = h.fake.merge_request_hook(project, iid, "update", Some(&fixed), json!({}));
    h.deliver("Merge Request Hook", &update).await;
    h.drain().await;
    let head = h.fake.mr_head(project, iid);
    let open: Vec<_> = h.fake.discussions(project, iid).into_iter().filter(|d| !d.notes[0].resolved).collect();
    assert_eq!(open.len(), opened, "the finding came back and is visible again");
    assert!(open.iter().all(|d| d.notes[0].position.as_ref().unwrap()["head_sha"] == head.as_str()));
    assert_eq!(statuses(&h.fake, project, &head), [("failed".to_string(), "feature".to_string())]);
    h.finish().await;
}

#[tokio::test]
async fn a_merge_request_from_an_unreadable_fork_is_checked_through_the_target_project() {
    let h = GitLabHarness::new(&[]).await;
    let (target, _) = h.fake.add_project("platform/web", &[("deploy/pod.yaml", CLEAN)]);
    let fork = h.fake.fork(target, "someone/web", false);
    h.fake.commit(fork, "patch", &[("deploy/pod.yaml", Some(&privileged(CLEAN)))]);
    let iid = h.fake.open_mr(target, fork, "patch", "From a fork");
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(target, iid, "open", None, json!({}))).await;
    h.drain().await;
    let head = h.fake.mr_head(target, iid);
    assert!(h.fake.statuses(fork, &head).is_empty());
    assert_eq!(statuses(&h.fake, target, &head), [("failed".to_string(), format!("refs/merge-requests/{iid}/head"))]);
    assert!(!h.fake.discussions(target, iid).is_empty());
    assert!(h.fake.calls().iter().any(|c| c.1.contains("refs%2Fmerge-requests%2F1%2Fhead")), "read at the MR ref");
    h.finish().await;
}

#[tokio::test]
async fn a_push_to_the_gitlab_policy_project_reloads_the_policies_the_next_check_uses() {
    let h = GitLabHarness::new(&["--policy-repo", "gitlab:sec/policies"]).await;
    let (policies, first) = h.fake.add_project("sec/policies", &[("README.md", "policies\n")]);
    let (project, iid) = open_violating(&h.fake);
    h.fake.add_member(project, 42, 40);
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    h.drain().await;
    let head = h.fake.mr_head(project, iid);
    assert_eq!(statuses(&h.fake, project, &head)[0].0, "failed");
    let summary = h.fake.plain_notes(project, iid)[0].body.clone();
    assert!(summary.contains(&format!("sec/policies@{}", &first[..7])), "{summary}");

    // A push to the policy project's default branch reloads; the next check names the new commit.
    let after = h.fake.commit(policies, "main", &[("guardrail-org.yml", Some("required: []\n"))]);
    let (status, reply) = h.deliver("Push Hook", &push_hook(&h.fake, policies, &after)).await;
    assert_eq!((status, &reply["jobs"]), (202, &json!(1)), "{reply}");
    h.drain().await;
    assert!(h.fake.calls().iter().any(|c| c.1.contains("guardrail-org")), "the new commit was read");
    h.deliver("Note Hook", &note_hook(&h.fake, project, iid, 42, "/guardrail rerun")).await;
    h.drain().await;
    let notes = h.fake.plain_notes(project, iid);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].body.contains(&format!("sec/policies@{}", &after[..7])), "{}", notes[0].body);
    // A push to another project's default branch is not a reload.
    let (_, reply) = h.deliver("Push Hook", &push_hook(&h.fake, project, &head)).await;
    assert_eq!(reply["jobs"], 0, "{reply}");
    h.finish().await;
}

#[tokio::test]
async fn a_merge_request_to_the_gitlab_policy_project_runs_its_tests_at_its_head() {
    use crate::app::durability::{CONSTRAINT, TEMPLATE};
    // The project is named in another case than GitLab spells it: GitLab routes paths without regard to case.
    let h = GitLabHarness::new(&["--policy-repo", "gitlab:Sec/Policies:gatekeeper"]).await;
    let (policies, _) = h.fake.add_project(
        "sec/policies",
        &[("gatekeeper/team/template.yaml", TEMPLATE), ("gatekeeper/team/constraint.yaml", CONSTRAINT)],
    );
    // The second case expects a violation the policy does not give until `has_team` says "no".
    let suite = |has_team: &str| {
        format!("kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n- name: team\n  template: template.yaml\n  constraint: constraint.yaml\n  cases:\n  - name: no-team\n    object: no-team.yaml\n    assertions:\n    - violations: yes\n  - name: has-team\n    object: has-team.yaml\n    assertions:\n    - violations: {has_team}\n")
    };
    let no_team = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n";
    let has_team = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n  labels:\n    team: web\n";
    h.fake.commit(
        policies,
        "tests",
        &[
            ("gatekeeper/team/suite.yaml", Some(&suite("yes"))),
            ("gatekeeper/team/no-team.yaml", Some(no_team)),
            ("gatekeeper/team/has-team.yaml", Some(has_team)),
            // Outside the policy folder: not a policy test, and not scanned as a manifest either.
            ("deploy/pod.yaml", Some(&privileged(CLEAN))),
        ],
    );
    let iid = h.fake.open_mr(policies, policies, "tests", "Test the team label");
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(policies, iid, "open", None, json!({}))).await;
    h.drain().await;
    let head = h.fake.mr_head(policies, iid);
    assert_eq!(statuses(&h.fake, policies, &head), [("failed".to_string(), "tests".to_string())]);
    let status = h.fake.statuses(policies, &head).into_iter().find(|s| s.name == "guardrail").unwrap();
    assert_eq!(status.description.as_deref(), Some("Policy tests: 1 passed, 1 failed"), "{status:?}");
    let notes = h.fake.plain_notes(policies, iid);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].body.contains("has-team"), "the failing case is named: {}", notes[0].body);
    assert!(h.fake.discussions(policies, iid).is_empty(), "policy tests, not a manifest scan");

    // The author fixes the expectation: the same merge request passes.
    let fixed = h.fake.commit(policies, "tests", &[("gatekeeper/team/suite.yaml", Some(&suite("no")))]);
    let update = h.fake.merge_request_hook(policies, iid, "update", Some(&head), json!({}));
    h.deliver("Merge Request Hook", &update).await;
    h.drain().await;
    assert_eq!(h.fake.mr_head(policies, iid), fixed);
    assert_eq!(statuses(&h.fake, policies, &fixed), [("success".to_string(), "tests".to_string())]);
    h.finish().await;
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_and_nothing_is_sent_early() {
    let h = GitLabHarness::new(&[]).await;
    let (project, iid) = open_violating(&h.fake);
    h.fake.rate_limit("GET", "/diffs", 1, 1);
    h.fake.rate_limit("POST", "/discussions", 1, 1);
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    h.drain().await;
    assert_eq!(h.fake.calls().iter().filter(|c| c.2 == 429).count(), 2);
    let head = h.fake.mr_head(project, iid);
    assert_eq!(statuses(&h.fake, project, &head)[0].0, "failed");
    assert!(!h.fake.discussions(project, iid).is_empty());
    // The fake records any request sent before Retry-After ended as a problem.
    h.finish().await;
}

#[tokio::test]
async fn an_attempt_that_dies_after_its_writes_is_retried_without_writing_twice() {
    dies_after_its_writes(None).await;
}

/// On SQLite (`None`) or on the PostgreSQL database given (`gitlab_durability`).
pub(crate) async fn dies_after_its_writes(database: Option<String>) {
    let h = GitLabHarness::on(database, &[]).await;
    let (project, iid) = open_violating(&h.fake);
    // The discussion is created and its answer lost; then reading the notes fails for the whole first
    // attempt (three tries): the attempt ends after its writes, the job is retried.
    h.fake.lose_answer("POST", "/discussions");
    h.fake.fail_gets("/notes", 500, "500 Internal Server Error", 3);
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    h.drain().await;
    let head = h.fake.mr_head(project, iid);
    let discussions = h.fake.discussions(project, iid);
    let markers: std::collections::HashSet<String> = discussions
        .iter()
        .map(|d| d.notes[0].body.split("<!-- guardrail:finding:").nth(1).unwrap_or("").to_string())
        .collect();
    assert_eq!(markers.len(), discussions.len(), "no finding has two discussions: {discussions:#?}");
    assert_eq!(h.fake.plain_notes(project, iid).len(), 1);
    assert_eq!(statuses(&h.fake, project, &head), [("failed".to_string(), "feature".to_string())]);
    assert_eq!(h.fake.problems(), Vec::<String>::new());
    let jobs = h.service.app.queue.jobs().await.expect("jobs");
    assert!(jobs.iter().all(|(_, state, _, _)| state == "done"), "{jobs:#?}");
    // It really was a second attempt: the first one ended on the three failed reads.
    assert_eq!(h.fake.calls().iter().filter(|c| c.2 == 500).count(), 3);
    assert!(jobs.iter().any(|(_, _, attempts, _)| *attempts >= 2), "{jobs:#?}");
}

#[tokio::test]
async fn a_wrong_token_gets_401_and_nothing_is_stored_or_done() {
    let h = GitLabHarness::new(&[]).await;
    let (project, iid) = open_violating(&h.fake);
    let body = h.fake.merge_request_hook(project, iid, "open", None, json!({}));
    let calls = h.fake.calls().len();
    for token in ["wrong", "", "rotated-out,gitlab-hook-secret"] {
        let (status, _) = h.deliver_as("Merge Request Hook", "k1", &body, token).await;
        assert_eq!(status, 401, "token {token:?}");
    }
    assert_eq!(h.service.app.queue.delivery_count().await.expect("count"), 0);
    assert_eq!(h.drain().await, 0);
    assert_eq!(h.fake.calls().len(), calls);
    // The secret being rotated out is still accepted.
    assert_eq!(h.deliver_as("Merge Request Hook", "k2", &body, "rotated-out").await.0, 202);
    h.drain().await;
    h.finish().await;
}

#[tokio::test]
async fn one_process_serves_github_and_gitlab() {
    let gl = FakeGitLab::start().await;
    let extra = gitlab_args(&gl, &[]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let h = crate::app::Harness::with_args(&extra).await;
    // GitHub: a pull request.
    h.pull(1, &[("README.md", "shop\n")], &[("deploy/web.yaml", Some(crate::app::PRIVILEGED))]);
    let (status, _) = h.deliver("pull_request", &h.gh.pull_request("opened", crate::app::REPO, 1)).await;
    assert_eq!(status, 202);
    // GitLab: a merge request, into the same process.
    let (project, iid) = open_violating(&gl);
    let http = reqwest::Client::new();
    let body = gl.merge_request_hook(project, iid, "open", None, json!({}));
    let (status, reply) = deliver(&http, &h.url, "Merge Request Hook", "both-1", &body, SECRET).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(h.drain().await, 2);

    let runs = h.gh.check_runs(crate::app::REPO);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].conclusion.as_deref(), Some("failure"));
    let head = gl.mr_head(project, iid);
    assert_eq!(statuses(&gl, project, &head)[0].0, "failed");
    assert!(!gl.discussions(project, iid).is_empty());
    assert_eq!(gl.problems(), Vec::<String>::new());
    h.finish().await;
}

#[tokio::test]
async fn drafts_follow_the_default_branchs_gitlab_settings_never_the_merge_requests() {
    let h = GitLabHarness::new(&[]).await;
    let settings = "drafts: false\n";
    let (project, _) =
        h.fake.add_project("g/drafts", &[("deploy/pod.yaml", CLEAN), (".gitlab/guardrail.yml", settings)]);
    // The merge request tries to check nothing at all and to have drafts checked: neither counts.
    h.fake.commit(
        project,
        "wip",
        &[
            ("deploy/pod.yaml", Some(&privileged(CLEAN))),
            (".gitlab/guardrail.yml", Some("drafts: true\nexclude: [\"**\"]\n")),
        ],
    );
    let iid = h.fake.open_mr(project, project, "wip", "Draft: privileged");
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    h.drain().await;
    let head = h.fake.mr_head(project, iid);
    assert_eq!(statuses(&h.fake, project, &head), [("skipped".to_string(), "wip".to_string())]);
    assert!(h.fake.discussions(project, iid).is_empty());
    assert!(h.fake.calls().iter().all(|c| !c.1.contains("ref=wip") && !c.1.contains(&format!("ref={head}"))));

    // Marked ready: checked, with the default branch's settings (the merge request's `exclude` is ignored).
    h.fake.set_draft(project, iid, false);
    let ready = json!({"draft": {"previous": true, "current": false}});
    let (_, reply) =
        h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "update", None, ready)).await;
    assert_eq!(reply["jobs"], 1, "{reply}");
    h.drain().await;
    let last = statuses(&h.fake, project, &head).last().cloned();
    assert_eq!(last.map(|s| s.0).as_deref(), Some("failed"));
    assert!(!h.fake.discussions(project, iid).is_empty());
    h.finish().await;
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_inline_wait_sends_the_job_back_to_the_queue_until_it_ends() {
    let h = GitLabHarness::new(&[]).await;
    let (project, iid) = open_violating(&h.fake);
    // 3 s is over the harness's inline limit (2 s): the job is rescheduled, not retried early.
    h.fake.rate_limit("GET", "/versions", 3, 1);
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    h.drain().await;
    let head = h.fake.mr_head(project, iid);
    assert_eq!(statuses(&h.fake, project, &head), [("failed".to_string(), "feature".to_string())]);
    assert_eq!(h.fake.calls().iter().filter(|c| c.2 == 429).count(), 1);
    let jobs = h.service.app.queue.jobs().await.expect("jobs");
    assert!(jobs.iter().any(|(_, _, attempts, _)| *attempts >= 2), "{jobs:#?}");
    h.finish().await;
}

#[test]
fn gitlab_settings_are_all_or_nothing_and_make_github_optional() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["guardrail"];
        argv.extend(extra);
        Settings::from_args(&Args::try_parse_from(argv).expect("flags parse").serve)
    };
    let gitlab =
        ["--gitlab-url", "https://git.example.com/gitlab", "--gitlab-token", "t", "--gitlab-webhook-secret", "s"];
    let s = parse(&gitlab).expect("GitLab alone");
    assert!(!s.github);
    assert_eq!(s.gitlab.as_ref().map(|g| g.url.as_str()), Some("https://git.example.com/gitlab"));
    // Nothing at all: GitHub's settings are still what is asked for.
    assert_eq!(parse(&[]).unwrap_err().setting, "GUARDRAIL_APP_ID");
    assert_eq!(parse(&gitlab[..4]).unwrap_err().setting, "GUARDRAIL_GITLAB_WEBHOOK_SECRET");
    assert_eq!(parse(&gitlab[2..]).unwrap_err().setting, "GUARDRAIL_GITLAB_URL");
    assert_eq!(
        parse(&["--gitlab-url", "git.example.com", "--gitlab-token", "t", "--gitlab-webhook-secret", "s"])
            .unwrap_err()
            .setting,
        "GUARDRAIL_GITLAB_URL"
    );
    // The policy repository's forge prefix.
    let mut with_policy = gitlab.to_vec();
    with_policy.extend(["--policy-repo", "gitlab:sec/team/policies@v2:gatekeeper"]);
    let s = parse(&with_policy).expect("a GitLab policy project");
    let p = s.gitlab_policy.expect("gitlab policy");
    assert_eq!(
        (p.project.0.as_str(), p.git_ref.as_deref(), p.path.as_deref()),
        ("sec/team/policies", Some("v2"), Some("gatekeeper"))
    );
    assert!(s.policy_repo.is_none());
    // A GitLab policy project needs GitLab, even where a GitHub App is configured.
    let key = format!("--private-key={}", crate::fake_github::FakeGitHub::private_key_pem());
    let github_only = ["--app-id", "1", &key, "--webhook-secret", "x"];
    assert!(parse(&github_only).expect("GitHub alone").gitlab.is_none());
    let mut github_with_gitlab_policy = github_only.to_vec();
    github_with_gitlab_policy.extend(["--policy-repo", "gitlab:sec/policies"]);
    assert_eq!(parse(&github_with_gitlab_policy).unwrap_err().setting, "GUARDRAIL_POLICY_REPO");
    let mut bad = gitlab.to_vec();
    bad.extend(["--policy-repo", "gitlab:nogroup"]);
    assert_eq!(parse(&bad).unwrap_err().setting, "GUARDRAIL_POLICY_REPO");
}

#[test]
fn the_cli_reads_gitlab_settings_when_there_are_no_github_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("skip")).unwrap();
    std::fs::create_dir_all(d.join(".gitlab")).unwrap();
    std::fs::write(d.join("skip/pod.yaml"), privileged(CLEAN)).unwrap();
    std::fs::create_dir_all(d.join("k8s")).unwrap();
    std::fs::write(d.join("k8s/pod.yaml"), CLEAN).unwrap();
    let (code, _, stderr) = crate::check::guardrail_in(d, &["check", "."]);
    assert_eq!(code, 1, "without settings the privileged Pod fails: {stderr}");
    std::fs::write(d.join(".gitlab/guardrail.yml"), "exclude: [\"skip/**\"]\n").unwrap();
    let (code, _, stderr) = crate::check::guardrail_in(d, &["check", "."]);
    assert_eq!(code, 0, ".gitlab/guardrail.yml excludes it: {stderr}");
    std::fs::create_dir_all(d.join(".github")).unwrap();
    std::fs::write(d.join(".github/guardrail.yml"), "namespace: shop\n").unwrap();
    let (code, _, stderr) = crate::check::guardrail_in(d, &["check", "."]);
    assert_eq!(code, 1, ".github/guardrail.yml wins when both are there: {stderr}");
}

#[tokio::test]
async fn settings_that_do_not_load_fail_the_status_and_say_why_in_the_summary() {
    let h = GitLabHarness::new(&[]).await;
    let (project, _) =
        h.fake.add_project("g/broken", &[("deploy/pod.yaml", CLEAN), (".gitlab/guardrail.yml", "exlude: [\"x\"]\n")]);
    h.fake.commit(project, "f", &[("deploy/pod.yaml", Some(&privileged(CLEAN)))]);
    let iid = h.fake.open_mr(project, project, "f", "Change");
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    h.drain().await;
    let head = h.fake.mr_head(project, iid);
    assert_eq!(statuses(&h.fake, project, &head), [("failed".to_string(), "f".to_string())]);
    assert!(h.fake.discussions(project, iid).is_empty());
    let notes = h.fake.plain_notes(project, iid);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].body.contains(".gitlab/guardrail.yml does not load") && notes[0].body.contains("exlude"),
        "{}",
        notes[0].body
    );
    h.finish().await;
}

#[tokio::test]
async fn while_gitlab_keeps_failing_the_status_ends_failed_in_words_not_running() {
    let h = GitLabHarness::new(&[]).await;
    let (project, iid) = open_violating(&h.fake);
    h.fake.fail_gets("/diffs", 502, "<html>502 Bad Gateway</html>", 1000);
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    h.drain().await;
    let head = h.fake.mr_head(project, iid);
    let list = h.fake.statuses(project, &head);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].status, "failed");
    let description = list[0].description.clone().unwrap_or_default();
    assert!(description.contains("GitLab kept failing") && description.contains("/guardrail rerun"), "{description}");
    assert!(!description.contains("<html>"), "no upstream HTML: {description}");
    assert!(h.fake.discussions(project, iid).is_empty());
    assert_eq!(h.fake.problems(), Vec::<String>::new());
    let jobs = h.service.app.queue.jobs().await.expect("jobs");
    assert_eq!(jobs.iter().map(|j| j.1.as_str()).collect::<Vec<_>>(), ["failed"], "{jobs:#?}");
}

/// After the quick retries a job keeps its place for slow attempts (the default): meanwhile the
/// status must say so, not stay `running` for hours.
#[tokio::test]
async fn while_a_failing_check_waits_for_its_slow_attempt_the_status_is_failed_and_says_when() {
    let retry = guardrail::jobs::JobRetry {
        later: std::time::Duration::from_secs(3600),
        later_cap: std::time::Duration::from_secs(3600),
        later_attempts: 2,
        ..job_retry()
    };
    let h = GitLabHarness::with_retry(&[], retry).await;
    let (project, iid) = open_violating(&h.fake);
    h.fake.fail_gets("/diffs", 502, "<html>502 Bad Gateway</html>", 1000);
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "open", None, json!({}))).await;
    // The quick attempts, one at a time as each falls due; the slow one is an hour away.
    let app = h.service.app.clone();
    let handler = move |job| guardrail::jobs::perform(app.clone(), job);
    let worker = h.service.worker(0);
    for _ in 0..job_retry().max_attempts {
        while !worker.run_one(&handler).await.expect("queue works") {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let head = h.fake.mr_head(project, iid);
    let list = h.fake.statuses(project, &head);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].status, "failed");
    let description = list[0].description.clone().unwrap_or_default();
    assert!(
        description.contains("tries again by itself at") && description.contains("/guardrail rerun"),
        "{description}"
    );
    assert!(!description.contains("<html>"), "no upstream HTML: {description}");
    assert_eq!(h.fake.problems(), Vec::<String>::new());
    let jobs = h.service.app.queue.jobs().await.expect("jobs");
    assert_eq!(jobs.iter().map(|j| j.1.as_str()).collect::<Vec<_>>(), ["queued"], "keeps its place: {jobs:#?}");
}

#[tokio::test]
async fn out_of_order_deliveries_check_the_current_head_and_leave_nothing_on_the_old_one() {
    let h = GitLabHarness::new(&[]).await;
    let (project, iid) = open_violating(&h.fake);
    let first = h.fake.mr_head(project, iid);
    let mut old: Value =
        serde_json::from_slice(&h.fake.merge_request_hook(project, iid, "open", None, json!({}))).expect("json");
    h.fake.commit(project, "feature", &[("deploy/pod.yaml", Some(CLEAN)), ("deploy/other.yaml", Some(CLEAN))]);
    let current = h.fake.mr_head(project, iid);
    // The push's delivery arrives first, the open's (naming the first head) after it.
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, iid, "update", Some(&first), json!({}))).await;
    old["object_attributes"]["last_commit"]["id"] = json!(first);
    h.deliver("Merge Request Hook", old.to_string().as_bytes()).await;
    h.drain().await;
    assert_eq!(statuses(&h.fake, project, &current), [("success".to_string(), "feature".to_string())]);
    assert!(h.fake.statuses(project, &first).is_empty(), "{:?}", h.fake.statuses(project, &first));
    assert!(h.fake.discussions(project, iid).is_empty());
    h.finish().await;
}

/// One token, one rate limit: after GitLab answers one worker 429, the other worker of the process
/// does not call GitLab either until the Retry-After has passed (the fake records any request sent
/// inside the window as a problem). The second merge request arrives once the 429 was answered, so
/// none of its requests was already on its way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_every_worker_of_the_process() {
    let h = GitLabHarness::new(&["--workers", "2"]).await;
    let (project, first) = open_violating(&h.fake);
    h.fake.commit(project, "second", &[("deploy/pod.yaml", Some(&privileged(CLEAN)))]);
    let second = h.fake.open_mr(project, project, "second", "Also privileged");
    h.fake.rate_limit("GET", "/diffs", 2, 1);
    h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, first, "open", None, json!({}))).await;
    let limited = async {
        while !h.fake.calls().iter().any(|c| c.2 == 429) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        h.deliver("Merge Request Hook", &h.fake.merge_request_hook(project, second, "open", None, json!({}))).await;
        run_worker(&h.service, 1).await
    };
    let ran = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        tokio::join!(run_worker(&h.service, 0), limited)
    })
    .await
    .expect("the queue drains");
    assert_eq!(ran, (1, 1), "each worker took one merge request");
    assert_eq!(h.fake.calls().iter().filter(|c| c.2 == 429).count(), 1);
    for iid in [first, second] {
        let head = h.fake.mr_head(project, iid);
        assert_eq!(statuses(&h.fake, project, &head)[0].0, "failed", "merge request !{iid}");
    }
    h.finish().await;
}
