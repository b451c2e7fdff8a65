//! GitLab webhook intake: the token (constant-time, several while rotating), the signing-token signature,
//! the delivery key, and which events ask for a check, a re-run or a policy reload, on payloads the fake
//! GitLab builds the way GitLab sends them.

use base64::Engine;
use guardrail::forge::gitlab::{MrIid, ProjectRef};
use guardrail::intake::gitlab::{
    authenticate, delivery_key, read, signature_valid, token_valid, AuthFailure, GitlabEvent, GitlabIntakeContext,
    WebhookAuth,
};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use serde_json::json;
use sha2::Sha256;

use crate::fake_gitlab::FakeGitLab;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn sign(key: &[u8], id: &str, ts: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn the_token_must_match_one_of_the_configured_secrets() {
    let secrets = WebhookAuth::split(" old-secret , new-secret,,");
    assert_eq!(secrets.len(), 2);
    assert!(token_valid(&secrets, "old-secret"));
    assert!(token_valid(&secrets, "new-secret"));
    for wrong in ["", "new-secre", "new-secret ", "NEW-SECRET", "old-secret,new-secret"] {
        assert!(!token_valid(&secrets, wrong), "{wrong:?}");
    }
    assert!(!token_valid(&[], ""), "no secret configured accepts nothing");
    let auth = WebhookAuth { tokens: secrets, signing_keys: vec![] };
    assert_eq!(authenticate(&auth, &headers(&[("x-gitlab-token", "new-secret")]), b"{}"), Ok(()));
    assert_eq!(authenticate(&auth, &headers(&[]), b"{}"), Err(AuthFailure::Token));
}

#[test]
fn a_signing_token_signature_is_verified_when_configured() {
    let body = br#"{"object_kind":"push"}"#;
    let key = b"0123456789abcdef0123456789abcdef";
    let whsec = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key));
    let keys = WebhookAuth::split(&whsec);
    let t = now();
    let sig = sign(key, "msg_1", t, body);
    assert!(signature_valid(&keys, "msg_1", &t.to_string(), body, &sig, t));
    // Several signatures (a rotation on GitLab's side): one valid is enough.
    assert!(signature_valid(&keys, "msg_1", &t.to_string(), body, &format!("v1,AAAA {sig}"), t));
    assert!(!signature_valid(&keys, "msg_1", &t.to_string(), b"{}", &sig, t), "another body");
    assert!(!signature_valid(&keys, "msg_2", &t.to_string(), body, &sig, t), "another id");
    assert!(!signature_valid(&keys, "msg_1", &t.to_string(), body, &sig, t + 301), "too old");
    // A plain (not whsec_) key is used as its bytes.
    let plain = WebhookAuth::split("plain-key");
    assert!(signature_valid(&plain, "m", &t.to_string(), body, &sign(b"plain-key", "m", t, body), t));

    let auth = WebhookAuth { tokens: WebhookAuth::split("tok"), signing_keys: keys };
    let ok = headers(&[
        ("x-gitlab-token", "tok"),
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", &t.to_string()),
        ("webhook-signature", &sig),
    ]);
    assert_eq!(authenticate(&auth, &ok, body), Ok(()));
    let unsigned = headers(&[("x-gitlab-token", "tok")]);
    assert_eq!(authenticate(&auth, &unsigned, body), Err(AuthFailure::Signature));
    let bad_token = headers(&[
        ("x-gitlab-token", "nope"),
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", &t.to_string()),
        ("webhook-signature", &sig),
    ]);
    assert_eq!(authenticate(&auth, &bad_token, body), Err(AuthFailure::Token));
}

#[test]
fn deliveries_are_keyed_by_idempotency_key_then_event_uuid_then_body() {
    let body = b"{}";
    let both = headers(&[("idempotency-key", "idem-1"), ("x-gitlab-event-uuid", "uuid-1")]);
    assert_eq!(delivery_key(&both, body), "gitlab:idem-1");
    assert_eq!(delivery_key(&headers(&[("x-gitlab-event-uuid", "uuid-1")]), body), "gitlab:uuid-1");
    let a = delivery_key(&headers(&[]), body);
    assert_eq!(a, delivery_key(&headers(&[]), body));
    assert_ne!(a, delivery_key(&headers(&[]), b"{ }"));
}

#[tokio::test]
async fn merge_request_events_ask_for_checks_only_when_the_code_or_draft_state_changed() {
    let fake = FakeGitLab::start().await;
    let (project, _) = fake.add_project("group/sub/app", &[("a.yaml", "a: 1\n")]);
    let old = fake.commit(project, "f", &[("a.yaml", Some("a: 2\n"))]);
    let iid = fake.open_mr(project, project, "f", "Change");
    let ctx = GitlabIntakeContext::default();
    let head = fake.mr_head(project, iid);
    let check = |body: Vec<u8>| read("Merge Request Hook", &body, &ctx);
    match check(fake.merge_request_hook(project, iid, "open", None, json!({}))) {
        GitlabEvent::Check(c) => {
            assert_eq!(
                (c.project.clone(), c.iid, c.head_sha.0.as_str(), c.force),
                (ProjectRef("group/sub/app".into()), MrIid(iid), head.as_str(), false)
            );
            assert_eq!(c.dedupe_key(), format!("gitlab-check:group/sub/app!{iid}@{head}"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(check(fake.merge_request_hook(project, iid, "reopen", None, json!({}))), GitlabEvent::Check(_)));
    let pushed = fake.commit(project, "f", &[("a.yaml", Some("a: 3\n"))]);
    match check(fake.merge_request_hook(project, iid, "update", Some(&old), json!({}))) {
        GitlabEvent::Check(c) => assert_eq!(c.head_sha.0, pushed),
        other => panic!("{other:?}"),
    }
    let title_only =
        fake.merge_request_hook(project, iid, "update", None, json!({"title": {"previous": "a", "current": "b"}}));
    assert!(matches!(check(title_only), GitlabEvent::Ignored(_)));
    let ready =
        fake.merge_request_hook(project, iid, "update", None, json!({"draft": {"previous": true, "current": false}}));
    assert!(matches!(check(ready), GitlabEvent::Check(c) if c.force));
    for action in ["close", "merge", "approved", "unapproved"] {
        assert!(
            matches!(check(fake.merge_request_hook(project, iid, action, None, json!({}))), GitlabEvent::Ignored(_)),
            "{action}"
        );
    }
    // The same object kind from an instance-level (system) hook.
    let system = read("System Hook", &fake.merge_request_hook(project, iid, "open", None, json!({})), &ctx);
    assert!(matches!(system, GitlabEvent::Check(_)));
    assert!(matches!(read("Merge Request Hook", b"not json", &ctx), GitlabEvent::Ignored(_)));
    assert!(matches!(read("Pipeline Hook", b"{}", &ctx), GitlabEvent::Ignored(_)));
}

fn push_body(path: &str, git_ref: &str, after: &str) -> Vec<u8> {
    json!({"object_kind": "push", "ref": git_ref, "before": "0".repeat(40), "after": after,
           "project": {"id": 5, "path_with_namespace": path, "default_branch": "main"}})
    .to_string()
    .into_bytes()
}

#[test]
fn pushes_reload_policies_only_for_the_policy_projects_default_branch() {
    let ctx = GitlabIntakeContext { policy_project: Some(ProjectRef("sec/policies".into())), bot_user_id: Some(7) };
    let sha = "a".repeat(40);
    match read("Push Hook", &push_body("sec/policies", "refs/heads/main", &sha), &ctx) {
        GitlabEvent::RefreshPolicies(r) => assert_eq!(r.after.0, sha),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read("Push Hook", &push_body("Sec/Policies", "refs/heads/main", &sha), &ctx),
        GitlabEvent::RefreshPolicies(_)
    ));
    for (path, r, after) in [
        ("sec/policies", "refs/heads/dev", sha.clone()),
        ("other/project", "refs/heads/main", sha.clone()),
        ("sec/policies", "refs/heads/main", "0".repeat(40)),
    ] {
        assert!(matches!(read("Push Hook", &push_body(path, r, &after), &ctx), GitlabEvent::Ignored(_)), "{path} {r}");
    }
}

fn note_body(author: u64, note: &str, system: bool) -> Vec<u8> {
    json!({
        "object_kind": "note", "project": {"id": 5, "path_with_namespace": "g/app", "default_branch": "main"},
        "object_attributes": {"id": 1, "note": note, "noteable_type": "MergeRequest", "author_id": author, "system": system},
        "merge_request": {"iid": 3, "state": "opened", "last_commit": {"id": "b".repeat(40)},
                          "source_project_id": 5, "target_project_id": 5},
    })
    .to_string()
    .into_bytes()
}

#[test]
fn a_rerun_command_asks_for_a_forced_check_that_the_job_gates_on_membership() {
    let ctx = GitlabIntakeContext { policy_project: None, bot_user_id: Some(7) };
    match read("Note Hook", &note_body(42, "please\n/guardrail rerun\n", false), &ctx) {
        GitlabEvent::Rerun { check, author_id } => {
            assert_eq!((author_id, check.iid, check.force), (42, MrIid(3), true));
        }
        other => panic!("{other:?}"),
    }
    for (author, text, system) in [
        (7, "/guardrail rerun", false),
        (42, "/guardrail rerun", true),
        (42, "guardrail rerun please", false),
        (42, "/guardrail rerunx", false),
    ] {
        assert!(matches!(read("Note Hook", &note_body(author, text, system), &ctx), GitlabEvent::Ignored(_)), "{text}");
    }
}

#[test]
fn merge_request_times_order_jobs_in_both_formats_gitlab_sends() {
    use guardrail::intake::gitlab::gitlab_time_ms;
    let iso = gitlab_time_ms(Some("2024-05-01T10:00:00Z"));
    assert_eq!(iso, 1_714_557_600_000);
    assert_eq!(gitlab_time_ms(Some("2024-05-01 10:00:00 UTC")), iso);
    assert_eq!(gitlab_time_ms(Some("2024-05-01 12:00:00 +0200")), iso);
    assert_eq!(gitlab_time_ms(Some("yesterday")), 0);
    assert_eq!(gitlab_time_ms(None), 0);
    // A push's delivery carries it into the job; a re-run gets the comment's time.
    let body = json!({"object_kind": "merge_request", "project": {"id": 5, "path_with_namespace": "g/app"},
        "object_attributes": {"iid": 3, "action": "update", "state": "opened", "oldrev": "c".repeat(40),
            "last_commit": {"id": "b".repeat(40)}, "source_project_id": 5, "target_project_id": 5,
            "updated_at": "2024-05-01T10:00:00Z"}});
    match read("Merge Request Hook", body.to_string().as_bytes(), &GitlabIntakeContext::default()) {
        GitlabEvent::Check(c) => {
            assert_eq!(c.recency, iso);
            let job = c.job();
            assert_eq!((job.recency, job.force, job.dedupe_key.starts_with("gitlab-check:")), (iso, false, true));
        }
        other => panic!("{other:?}"),
    }
}
