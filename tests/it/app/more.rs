//! The rest of the App's contract: configuration errors, the body limit, check suites, policy pushes,
//! token expiry, large blobs, exemptions that do not apply, and intake on GitHub's real payloads.

use std::process::Command;

use serde_json::{json, Value};

use super::*;

fn serve(env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guardrail"));
    cmd.arg("serve");
    for (k, _) in std::env::vars() {
        if k.starts_with("GUARDRAIL_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run guardrail serve");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn serve_names_the_setting_that_is_missing_or_wrong_and_exits_2() {
    let (code, stderr) = serve(&[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("GUARDRAIL_APP_ID: is required"), "{stderr}");
    let pem = crate::fake_github::FakeGitHub::private_key_pem();
    let (code, stderr) = serve(&[("GUARDRAIL_APP_ID", "12"), ("GUARDRAIL_PRIVATE_KEY", "not a key")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("GUARDRAIL_PRIVATE_KEY: is not an RSA private key"), "{stderr}");
    assert!(!stderr.contains("not a key"), "the secret is not echoed: {stderr}");
    let (code, stderr) = serve(&[("GUARDRAIL_APP_ID", "12"), ("GUARDRAIL_PRIVATE_KEY", &pem)]);
    assert_eq!(code, 2);
    assert!(stderr.contains("GUARDRAIL_WEBHOOK_SECRET: is required"), "{stderr}");
    let (code, stderr) = serve(&[
        ("GUARDRAIL_APP_ID", "12"),
        ("GUARDRAIL_PRIVATE_KEY", &pem),
        ("GUARDRAIL_WEBHOOK_SECRET", "s"),
        ("GUARDRAIL_LISTEN", "everywhere"),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("GUARDRAIL_LISTEN"), "{stderr}");
    let (code, stderr) = serve(&[
        ("GUARDRAIL_APP_ID", "12"),
        ("GUARDRAIL_PRIVATE_KEY", &pem),
        ("GUARDRAIL_WEBHOOK_SECRET", "s"),
        ("GUARDRAIL_POLICY_REPO", "acme/policies:../../etc"),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("GUARDRAIL_POLICY_REPO: the path must stay inside the repository"), "{stderr}");
    assert!(!stderr.contains("BEGIN RSA"), "the key is never printed");
}

#[test]
fn graphql_lives_beside_the_rest_api_on_github_enterprise() {
    use guardrail::settings::{graphql_url_for, PolicyRepo};
    assert_eq!(graphql_url_for("https://api.github.com"), "https://api.github.com/graphql");
    assert_eq!(graphql_url_for("https://ghe.corp/api/v3"), "https://ghe.corp/api/graphql");
    let p = PolicyRepo::parse("acme/policies@v2:gatekeeper/").unwrap();
    assert_eq!(
        (p.repo.to_string(), p.reference.as_deref(), p.path.as_str()),
        ("acme/policies".into(), Some("v2"), "gatekeeper")
    );
    assert!(PolicyRepo::parse("not-a-slug").is_err());
}

#[tokio::test]
async fn a_body_over_25_mb_is_refused_and_nothing_is_stored() {
    let h = Harness::new().await;
    let big = json!({"action": "opened", "padding": "x".repeat(26 * 1024 * 1024)});
    let (status, _) = h.deliver("pull_request", &big).await;
    assert_eq!(status, 413);
    assert_eq!(h.service.app.queue.delivery_count().await.unwrap(), 0);
    h.finish().await;
}

#[tokio::test]
async fn check_suite_events_coalesce_with_the_pull_request_and_rerequest_reruns() {
    let h = Harness::new().await;
    let (_, head) = h.pull(60, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 60)).await;
    let (status, reply) = h.deliver("check_suite", &h.gh.check_suite("requested", REPO, &head)).await;
    assert_eq!((status, reply["jobs"].as_u64()), (202, Some(1)), "{reply}");
    h.drain().await;
    assert_eq!(h.gh.check_runs(REPO).len(), 1, "the requested suite and the opened pull request are one job");
    h.deliver("check_suite", &h.gh.check_suite("rerequested", REPO, &head)).await;
    h.drain().await;
    assert_eq!(h.gh.check_runs(REPO).len(), 2, "re-requested: checked again");
    assert_eq!(h.gh.review_comments(REPO, 60).len(), 2, "without duplicate comments");
    h.finish().await;
}

#[tokio::test]
async fn a_push_to_the_policy_repository_is_used_by_the_next_check() {
    let h = Harness::with_args(&["--policy-repo", "acme/policies"]).await;
    h.gh.add_repo("acme/policies", INSTALLATION);
    let root = h.gh.branch_head("acme/policies", "main");
    let first = h.gh.commit("acme/policies", Some(&root), &[("README.md", Some("v1\n"))]);
    h.gh.set_branch("acme/policies", "main", &first);
    h.pull(61, &[], &[("deploy/web.yaml", Some(CLEAN))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 61)).await;
    h.drain().await;
    assert!(h.gh.check_runs(REPO)[0].summary.as_deref().unwrap().contains(&first[..7]));

    let second = h.gh.commit("acme/policies", Some(&first), &[("README.md", Some("v2\n"))]);
    h.gh.set_branch("acme/policies", "main", &second);
    let (status, reply) = h.deliver("push", &h.gh.push("acme/policies", "main", &first, &second)).await;
    assert_eq!((status, reply["jobs"].as_u64()), (202, Some(1)), "{reply}");
    // A push elsewhere is not a policy change.
    let (_, reply) = h.deliver("push", &h.gh.push(REPO, "main", &first, &second)).await;
    assert_eq!(reply["jobs"].as_u64(), Some(0));
    h.drain().await;
    assert_eq!(h.service.app.policies.cached_commits(), vec![second.clone()], "reloaded at the pushed commit");

    let head = h.gh.commit(REPO, Some(&h.gh.branch_head(REPO, "main")), &[("deploy/other.yaml", Some(CLEAN))]);
    h.gh.open_pull(REPO, 62, &h.gh.branch_head(REPO, "main"), &head, None);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 62)).await;
    h.drain().await;
    let run = h.gh.check_runs(REPO).into_iter().find(|r| r.head_sha == head).unwrap();
    assert!(run.summary.as_deref().unwrap().contains(&second[..7]), "{:?}", run.summary);
    h.finish().await;
}

#[tokio::test]
async fn an_expired_installation_token_is_replaced() {
    let h = Harness::new().await;
    h.pull(63, &[], &[("deploy/web.yaml", Some(CLEAN))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 63)).await;
    h.drain().await;
    h.gh.expire_tokens();
    h.pull(64, &[], &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 64)).await;
    h.drain().await;
    let tokens = h.gh.calls().iter().filter(|c| c.kind == "apps/create-installation-access-token").count();
    assert_eq!(tokens, 2, "one token, then a new one after the 401");
    assert_eq!(h.gh.check_runs(REPO).len(), 2);
    assert!(h.gh.check_runs(REPO).iter().all(|r| r.status == "completed"));
    h.finish().await;
}

#[tokio::test]
async fn a_file_graphql_truncates_is_read_through_the_blob_api() {
    let h = Harness::new().await;
    h.gh.set_truncate_above(200);
    h.pull(
        65,
        &[],
        &[
            ("deploy/web.yaml", Some(PRIVILEGED)),
            ("deploy/small.yaml", Some("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")),
        ],
    );
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 65)).await;
    h.drain().await;
    assert_eq!(h.gh.calls().iter().filter(|c| c.kind == "git/get-blob").count(), 1, "only the big file");
    assert_eq!(h.gh.check_runs(REPO)[0].annotations.len(), 2);
    h.finish().await;
}

#[tokio::test]
async fn an_expired_exemption_does_not_apply_and_says_so() {
    let h = Harness::new().await;
    let expired = PRIVILEGED.replace(
        "  namespace: shop\n",
        "  namespace: shop\n  annotations:\n    guardrail.dev/exempt: privileged-containers,capabilities\n    guardrail.dev/exempt-reason: legacy\n    guardrail.dev/exempt-until: \"2020-01-31\"\n",
    );
    h.pull(66, &[], &[("deploy/web.yaml", Some(&expired))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 66)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    let titles: Vec<&str> = run.annotations.iter().map(|a| a["title"].as_str().unwrap()).collect();
    assert_eq!(
        titles,
        vec!["guardrail/exemption", "privileged-containers (privileged-containers)", "capabilities (capabilities)"]
    );
    assert_eq!(run.annotations[0]["start_line"], 7, "at the exempt annotation");
    assert!(run.annotations[0]["message"].as_str().unwrap().contains("expired on 2020-01-31"));
    assert!(run.summary.as_deref().unwrap().contains("Exemptions that do not apply"));
    h.finish().await;
}

#[test]
fn intake_reads_githubs_real_payloads() {
    use guardrail::intake::{read, IntakeContext};
    let example = |name: &str| -> Value {
        let path = format!("{}/tests/fixtures/github/webhooks/{name}.payload.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let ctx = IntakeContext { app_id: 1, check_name: "guardrail", policy_repo: None };
    let opened = read("pull_request", &example("pull_request/opened"), &ctx);
    assert_eq!(opened.action, "opened");
    assert_eq!(opened.jobs.len(), 1);
    assert!(opened.jobs[0].dedupe_key.starts_with("check:Codertocat/Hello-World#2@"), "{:?}", opened.jobs);
    let sync = read("pull_request", &example("pull_request/synchronize"), &ctx);
    assert_eq!(sync.jobs.len(), 1);
    assert_eq!(
        sync.jobs[0].group_key,
        opened.jobs[0].group_key.replace("#2", &format!("#{}", example("pull_request/synchronize")["number"]))
    );
    // A check run of another app is not ours to re-run.
    let rerun = read("check_run", &example("check_run/rerequested"), &ctx);
    assert!(rerun.jobs.is_empty(), "{}", rerun.outcome);
    let installation = read("installation", &example("installation/created"), &ctx);
    assert!(installation.jobs.is_empty());
}

#[test]
fn summaries_and_details_stay_within_githubs_limit() {
    use guardrail::findings::{Finding, Outcome, Region, Severity};
    use guardrail::report::checkrun::{build, CheckRunContext, MAX_OUTPUT};
    let findings: Vec<Finding> = (0..3000)
        .map(|i| Finding {
            policy: "privileged-containers".into(),
            constraint: "privileged-containers".into(),
            severity: Severity::Deny,
            message: format!("container {i} is privileged {}", "é".repeat(40)),
            file: format!("deploy/app-{i}.yaml"),
            region: Region::point(3, 5),
            pointer: "/spec/containers/0/securityContext/privileged".into(),
            resource: None,
        })
        .collect();
    let report = build(&Outcome { findings, errors: vec![], ..Default::default() }, &CheckRunContext::default());
    assert!(report.text.len() <= MAX_OUTPUT && report.summary.len() <= MAX_OUTPUT);
    assert!(report.text.contains("truncated"), "says it was cut");
    assert_eq!(report.annotations.len(), 3000, "annotations are not truncated: they go out 50 at a time");
    assert_eq!(report.conclusion, "failure");
}
