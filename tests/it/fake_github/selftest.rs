//! Self-tests of the fake GitHub: authentication, faults, signatures, webhook payloads and the vendored data.
//! REST and GraphQL behaviour is in `selftest_api.rs`.

use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{sign, FakeGitHub, Fault};

pub(super) const REPO: &str = "octo-org/deploy";
pub(super) const INSTALLATION: u64 = 77;

pub(super) fn jwt_with(key_pem: &str, iat_offset: i64, exp_offset: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iat": now + iat_offset, "exp": now + exp_offset, "iss": FakeGitHub::APP_ID.to_string()});
    let key = EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("test key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).expect("sign JWT")
}

pub(super) fn jwt() -> String {
    jwt_with(&FakeGitHub::private_key_pem(), -60, 540)
}

/// A fake with one repository, and an installation token for it.
pub(super) async fn setup() -> (FakeGitHub, Client) {
    let fake = FakeGitHub::start().await;
    fake.add_repo(REPO, INSTALLATION);
    let http = reqwest::Client::new();
    let url = format!("{}/app/installations/{INSTALLATION}/access_tokens", fake.api_url());
    let response = http.post(url).bearer_auth(jwt()).send().await.expect("token request");
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("token JSON");
    let token = body["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("ghs_") && token.len() == 40, "{token}");
    let client = Client { http, base: fake.api_url(), token };
    (fake, client)
}

/// Requests with the installation token, answering (status, headers, JSON body).
pub(super) struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Client {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) };
        let mut request = self.http.request(method, url).header("authorization", format!("token {}", self.token));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.expect("body");
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.send("GET", path, None).await;
        (status, body)
    }
}

#[tokio::test]
async fn jwt_is_checked_like_github() {
    let (fake, client) = setup().await;
    let url = format!("{}/app/installations/{INSTALLATION}/access_tokens", fake.api_url());
    let other_key = include_str!("../../fixtures/github/other-key.pem");
    for (jwt, why) in [
        (jwt_with(other_key, -60, 540), "signed by another key"),
        (jwt_with(&FakeGitHub::private_key_pem(), -60, 900), "exp more than 10 minutes ahead"),
        (jwt_with(&FakeGitHub::private_key_pem(), 300, 500), "iat in the future"),
        (jwt_with(&FakeGitHub::private_key_pem(), -700, -100), "expired"),
    ] {
        let response = client.http.post(&url).bearer_auth(jwt).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{why}");
    }
    assert_eq!(fake.problems().len(), 4, "{:#?}", fake.problems());
    let response = client.http.get(format!("{}/repos/{REPO}/installation", fake.api_url())).bearer_auth(jwt());
    let body: Value = response.send().await.unwrap().json().await.unwrap();
    assert_eq!((body["id"].as_u64(), body["app_id"].as_u64()), (Some(INSTALLATION), Some(FakeGitHub::APP_ID)));
    // An installation token where the JWT belongs, and the JWT where a token belongs, are misuse.
    let misuse = client.http.get(format!("{}/app", fake.api_url())).bearer_auth(&client.token).send().await.unwrap();
    assert_eq!(misuse.status(), StatusCode::UNAUTHORIZED);
    let misuse = client.http.get(format!("{}/repos/{REPO}", fake.api_url())).bearer_auth(jwt()).send().await.unwrap();
    assert_eq!(misuse.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(fake.problems().len(), 6);
}

#[tokio::test]
async fn tokens_expire_and_stay_within_their_installation() {
    let (fake, client) = setup().await;
    fake.add_repo("someone-else/repo", 99);
    assert_eq!(client.get(&format!("/repos/{REPO}")).await.0, StatusCode::OK);
    assert_eq!(client.get("/repos/someone-else/repo").await.0, StatusCode::NOT_FOUND);
    fake.expire_tokens();
    let (status, body) = client.get(&format!("/repos/{REPO}")).await;
    assert_eq!((status, body["message"].as_str()), (StatusCode::UNAUTHORIZED, Some("Bad credentials")));
    assert!(fake.problems().is_empty(), "refreshing after a 401 is not misuse: {:?}", fake.problems());
}

#[tokio::test]
async fn injected_faults_answer_first_then_the_real_thing() {
    let (fake, client) = setup().await;
    fake.inject(Fault {
        method: "GET",
        path_contains: "/pulls".to_string(),
        status: 429,
        headers: vec![("retry-after".to_string(), "1".to_string())],
        body: json!({"message": "You have exceeded a secondary rate limit"}),
        times: 1,
    });
    fake.set_latency(std::time::Duration::from_millis(5));
    let (status, headers, _) = client.send("GET", &format!("/repos/{REPO}/pulls"), None).await;
    assert_eq!((status, headers["retry-after"].to_str().unwrap()), (StatusCode::TOO_MANY_REQUESTS, "1"));
    let (status, body) = client.get(&format!("/repos/{REPO}/pulls?state=open")).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    let kinds: Vec<(String, u16)> = fake.calls().into_iter().map(|c| (c.kind, c.status)).collect();
    let expected = [("apps/create-installation-access-token", 201), ("pulls/list", 429), ("pulls/list", 200)];
    assert_eq!(kinds, expected.map(|(k, s)| (k.to_string(), s)));
    assert_eq!(fake.calls()[2].query, "state=open");
}

#[tokio::test]
async fn unknown_routes_are_problems() {
    let (fake, client) = setup().await;
    assert_eq!(client.get(&format!("/repos/{REPO}/frobnicate")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(client.send("DELETE", &format!("/repos/{REPO}/pulls/1"), None).await.0, StatusCode::NOT_FOUND);
    let problems = fake.problems();
    assert!(problems[0].contains("unknown route") && problems[1].contains("method not served"), "{problems:?}");
    assert_eq!(fake.calls().last().map(|c| c.kind.as_str()), Some("unknown"));
}

#[test]
fn signature_matches_githubs_test_vector() {
    assert_eq!(
        sign("It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[tokio::test]
async fn webhook_payloads_describe_the_fakes_state() {
    let (fake, _client) = setup().await;
    fake.add_repo("contributor/deploy", 5);
    let base = fake.branch_head(REPO, "main");
    let first = fake.commit("contributor/deploy", Some(&base), &[("a.yaml", Some("a: 1\n"))]);
    let second = fake.commit("contributor/deploy", Some(&first), &[("a.yaml", Some("a: 2\n"))]);
    fake.open_pull(REPO, 7, &base, &first, Some("contributor/deploy"));
    fake.push_pull(REPO, 7, &second);
    let event = fake.pull_request("synchronize", REPO, 7);
    assert_eq!((event["before"].as_str(), event["after"].as_str()), (Some(first.as_str()), Some(second.as_str())));
    assert_eq!(event["pull_request"]["head"]["repo"]["full_name"], "contributor/deploy");
    assert_eq!(event["pull_request"]["base"]["sha"], json!(base));
    assert_eq!((event["number"].as_u64(), event["installation"]["id"].as_u64()), (Some(7), Some(INSTALLATION)));
    assert_eq!(event["repository"]["full_name"], REPO);
    fake.set_draft(REPO, 7, true);
    assert_eq!(fake.pull_request("opened", REPO, 7)["pull_request"]["draft"], true);
    assert_eq!(fake.pull_request("ready_for_review", REPO, 7)["pull_request"]["draft"], false);
    assert_eq!(fake.check_suite("requested", REPO, &second)["check_suite"]["pull_requests"][0]["number"], 7);
    let push = fake.push(REPO, "main", &base, &second);
    assert_eq!((push["ref"].as_str(), push["after"].as_str()), (Some("refs/heads/main"), Some(second.as_str())));
    let installed = fake.installation_created();
    assert_eq!(
        (installed["installation"]["id"].as_u64(), installed["installation"]["app_slug"].as_str()),
        (Some(5), Some("guardrail"))
    );
}

#[tokio::test]
async fn check_run_webhooks_carry_the_run_and_its_pull_requests() {
    let (fake, client) = setup().await;
    let base = fake.branch_head(REPO, "main");
    let head = fake.commit(REPO, Some(&base), &[("x.yaml", Some("x: 1\n"))]);
    fake.open_pull(REPO, 3, &base, &head, None);
    let (status, _, run) = client
        .send("POST", &format!("/repos/{REPO}/check-runs"), Some(json!({"name": "guardrail", "head_sha": head})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let event = fake.check_run("requested_action", REPO, run["id"].as_u64().unwrap());
    assert_eq!(event["requested_action"]["identifier"], "rerun");
    assert_eq!(event["check_run"]["id"], run["id"]);
    assert_eq!(event["check_run"]["pull_requests"][0]["number"], 3);
    assert_eq!(event["installation"]["id"], INSTALLATION);
    assert_eq!(fake.check_run("rerequested", REPO, run["id"].as_u64().unwrap())["action"], "rerequested");
}

/// The vendored OpenAPI subset must be what `scripts/vendor-github-fixtures` makes from `../shared` today.
#[test]
fn vendored_openapi_subset_is_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let full = root.join("../shared/github/api.github.com.json");
    if !full.exists() {
        println!(
            "SKIPPED vendored_openapi_subset_is_fresh: {} is absent (a clean clone); nothing compared",
            full.display()
        );
        return;
    }
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(&full).unwrap()).unwrap();
    let operations = std::fs::read_to_string(root.join("tests/fixtures/github/operations.txt")).unwrap();
    let mut out = json!({"openapi": spec["openapi"], "info": spec["info"], "paths": {}, "components": {}});
    let mut pending = Vec::new();
    for line in operations.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (method, path) = line.split_once(' ').unwrap();
        let item = &mut out["paths"][path];
        item[method.to_lowercase()] = spec["paths"][path][method.to_lowercase()].clone();
        if let Some(parameters) = spec["paths"][path].get("parameters") {
            item["parameters"] = parameters.clone();
        }
        refs(item, &mut pending);
    }
    while let Some(reference) = pending.pop() {
        let mut parts = reference.splitn(4, '/').skip(2);
        let (kind, name) = (parts.next().unwrap().to_string(), parts.next().unwrap().to_string());
        if out["components"][&kind].get(&name).is_none() {
            let component = spec["components"][&kind][&name].clone();
            refs(&component, &mut pending);
            out["components"][&kind][&name] = component;
        }
    }
    let vendored: Value =
        serde_json::from_str(include_str!("../../fixtures/github/openapi-subset.json")).expect("vendored subset");
    assert!(vendored == out, "tests/fixtures/github/openapi-subset.json is stale: run scripts/vendor-github-fixtures");
}

fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("$ref", Value::String(r)) => found.push(r.clone()),
                    _ => refs(item, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, found)),
        _ => {}
    }
}
