//! Webhook intake, payload to jobs: the first byte picks the forge and the event header, the rest
//! is the body as the server hands it to the GitHub or GitLab reader. Never a panic; every job
//! payload made is JSON.
#![no_main]

use guardrail::forge::RepoSlug;
use guardrail::intake::gitlab::{read as read_gitlab, GitlabIntakeContext};
use guardrail::intake::{read as read_github, IntakeContext};
use libfuzzer_sys::fuzz_target;

const GITHUB: &[&str] = &[
    "pull_request",
    "check_run",
    "check_suite",
    "push",
    "installation",
    "installation_repositories",
    "issue_comment",
    "ping",
];
const GITLAB: &[&str] =
    &["Merge Request Hook", "Note Hook", "Push Hook", "Pipeline Hook", "System Hook", "Tag Push Hook"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    if pick & 1 == 0 {
        let event = GITHUB[(pick as usize >> 1) % GITHUB.len()];
        let Ok(payload) = serde_json::from_slice::<serde_json::Value>(body) else { return };
        let policy = RepoSlug::parse("acme/policies");
        let ctx = IntakeContext { app_id: 1, check_name: "guardrail", policy_repo: policy.as_ref() };
        let intake = read_github(event, &payload, &ctx);
        for job in &intake.jobs {
            serde_json::from_str::<serde_json::Value>(&job.payload).expect("a job payload is JSON");
        }
    } else {
        let event = GITLAB[(pick as usize >> 1) % GITLAB.len()];
        let ctx = GitlabIntakeContext {
            policy_project: guardrail::forge::gitlab::ProjectRef::parse_path("acme/policies"),
            bot_user_id: Some(7),
        };
        let _ = read_gitlab(event, body, &ctx);
    }
});
