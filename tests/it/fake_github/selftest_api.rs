//! Self-tests of the fake's REST and GraphQL behaviour: pages, patches, reviews, check-run limits, blobs.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::selftest::{setup, Client, REPO};
use super::FakeGitHub;

const OLD: &str = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
const NEW: &str = "a\nb\nc\nd\nE\nf\ng\nh\ni\nj\nk\n";

/// A pull request #1 that modifies `deploy.yaml` (OLD -> NEW) and adds `new.yaml`.
async fn with_pull() -> (FakeGitHub, Client, String) {
    let (fake, client) = setup().await;
    let root = fake.branch_head(REPO, "main");
    let base = fake.commit(REPO, Some(&root), &[("deploy.yaml", Some(OLD)), ("gone.yaml", Some("x: 1\n"))]);
    fake.set_branch(REPO, "main", &base);
    let head = fake.commit(
        REPO,
        Some(&base),
        &[("deploy.yaml", Some(NEW)), ("new.yaml", Some("n: 1\n")), ("gone.yaml", None)],
    );
    fake.open_pull(REPO, 1, &base, &head, None);
    (fake, client, head)
}

#[tokio::test]
async fn pull_files_carry_githubs_patch() {
    let (fake, client, head) = with_pull().await;
    let (status, files) = client.get(&format!("/repos/{REPO}/pulls/1/files")).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<(&str, &str)> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["filename"].as_str().unwrap(), f["status"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("deploy.yaml", "modified"), ("gone.yaml", "removed"), ("new.yaml", "added")]);
    let modified = &files[0];
    // git's default hunk heading: the last line before the hunk that starts with a letter.
    assert_eq!(modified["patch"], "@@ -2,9 +2,10 @@ a\n b\n c\n d\n-e\n+E\n f\n g\n h\n i\n j\n+k");
    assert_eq!(
        (modified["additions"].as_u64(), modified["deletions"].as_u64(), modified["changes"].as_u64()),
        (Some(2), Some(1), Some(3))
    );
    assert_eq!(files[2]["patch"], "@@ -0,0 +1 @@\n+n: 1");
    // Blob shas are git's, and the blob and contents APIs serve the same bytes.
    assert_eq!(files[2]["sha"], "db46ac54d4347a13dd2d4e1497b609d17a941be8");
    let (_, blob) = client.get(&format!("/repos/{REPO}/git/blobs/{}", files[0]["sha"].as_str().unwrap())).await;
    assert_eq!(decode(&blob["content"]), NEW);
    let (_, content) = client.get(&format!("/repos/{REPO}/contents/deploy.yaml?ref={head}")).await;
    assert_eq!((decode(&content["content"]).as_str(), content["encoding"].as_str()), (NEW, Some("base64")));
    let (status, _) = client.get(&format!("/repos/{REPO}/contents/nothing.yaml?ref={head}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, tree) = client.get(&format!("/repos/{REPO}/git/trees/{head}?recursive=1")).await;
    assert_eq!(tree["tree"].as_array().unwrap().len(), 2);
    let (_, commit) = client.get(&format!("/repos/{REPO}/commits/main")).await;
    assert_eq!(commit["sha"], json!(fake.branch_head(REPO, "main")));
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

/// GitHub's base64 comes wrapped in lines.
fn decode(content: &Value) -> String {
    use base64::Engine;
    let text: String = content.as_str().unwrap().split('\n').collect();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(text).unwrap()).unwrap()
}

#[tokio::test]
async fn pull_files_page_with_link_headers_and_stop_at_3000() {
    let (fake, client) = setup().await;
    let base = fake.branch_head(REPO, "main");
    let names: Vec<String> = (0..3005).map(|i| format!("m/{i:04}.yaml")).collect();
    let changes: Vec<(&str, Option<&str>)> = names.iter().map(|n| (n.as_str(), Some("a: 1\n"))).collect();
    let head = fake.commit(REPO, Some(&base), &changes);
    fake.open_pull(REPO, 2, &base, &head, None);
    let (_, headers, first) = client.send("GET", &format!("/repos/{REPO}/pulls/2/files"), None).await;
    assert_eq!(first.as_array().unwrap().len(), 30);
    let link = headers["link"].to_str().unwrap();
    assert!(link.contains(&format!("<{}/repos/{REPO}/pulls/2/files?page=2>; rel=\"next\"", fake.api_url())), "{link}");
    assert!(link.contains("page=100>; rel=\"last\""), "{link}");
    let (_, headers, page) =
        client.send("GET", &format!("/repos/{REPO}/pulls/2/files?per_page=100&page=30"), None).await;
    assert_eq!(page.as_array().unwrap().len(), 100);
    assert!(!headers["link"].to_str().unwrap().contains("rel=\"next\""));
    let next = format!("/repos/{REPO}/pulls/2/files?per_page=100&page=31");
    assert_eq!(client.get(&next).await.1, json!([]));
    let (_, headers, page) = client.send("GET", &format!("/repos/{REPO}/pulls/2/files?per_page=500"), None).await;
    assert_eq!(page.as_array().unwrap().len(), 100, "per_page is capped at 100");
    assert!(headers["link"].to_str().unwrap().contains("page=30>; rel=\"last\""));
}

#[tokio::test]
async fn reviews_must_point_inside_the_diff() {
    let (fake, client, head) = with_pull().await;
    let review =
        |comments: Value| json!({"commit_id": head, "event": "COMMENT", "body": "guardrail", "comments": comments});
    let outside = review(json!([
        {"path": "deploy.yaml", "line": 5, "side": "RIGHT", "body": "fine"},
        {"path": "deploy.yaml", "line": 1, "side": "RIGHT", "body": "line 1 is outside every hunk"},
    ]));
    let (status, _, body) = client.send("POST", &format!("/repos/{REPO}/pulls/1/reviews"), Some(outside)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0], "Pull request review thread line must be part of the diff");
    assert!(fake.reviews(REPO, 1).is_empty() && fake.review_comments(REPO, 1).is_empty(), "nothing is stored");
    let good = review(json!([
        {"path": "deploy.yaml", "line": 5, "side": "RIGHT", "body": "E"},
        {"path": "deploy.yaml", "start_line": 4, "line": 6, "side": "RIGHT", "body": "range"},
        {"path": "deploy.yaml", "line": 5, "side": "LEFT", "body": "old e"},
    ]));
    let (status, _, body) = client.send("POST", &format!("/repos/{REPO}/pulls/1/reviews"), Some(good)).await;
    assert_eq!((status, body["state"].as_str()), (StatusCode::OK, Some("COMMENTED")));
    let comments = fake.review_comments(REPO, 1);
    assert_eq!(comments.len(), 3);
    assert_eq!((comments[0].user_login.as_str(), comments[0].review_id), ("guardrail[bot]", body["id"].as_u64()));
    let (_, listed) = client.get(&format!("/repos/{REPO}/pulls/1/comments?per_page=2")).await;
    assert_eq!((listed[1]["start_line"].as_u64(), listed[1]["line"].as_u64()), (Some(4), Some(6)));
    assert_eq!(listed[0]["user"]["type"], "Bot");
}

#[tokio::test]
async fn check_runs_enforce_githubs_limits() {
    let (fake, client, head) = with_pull().await;
    let annotation =
        json!({"path": "deploy.yaml", "start_line": 5, "end_line": 5, "annotation_level": "failure", "message": "m"});
    let create = |extra: Value| {
        let mut body = json!({"name": "guardrail", "head_sha": head, "status": "in_progress"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let path = format!("/repos/{REPO}/check-runs");
    let output =
        |annotations: Vec<Value>| json!({"output": {"title": "t", "summary": "s", "annotations": annotations}});
    let (status, _, body) = client.send("POST", &path, Some(create(output(vec![annotation.clone(); 51])))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["message"].as_str().unwrap().contains("No more than 50 items are allowed; 51 were supplied"),
        "{body}"
    );
    let long = json!({"output": {"title": "t", "summary": "x".repeat(65536)}});
    assert_eq!(client.send("POST", &path, Some(create(long))).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let bogus = create(json!({"status": "bogus"}));
    assert_eq!(client.send("POST", &path, Some(bogus)).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(fake.problems().iter().any(|p| p.contains("bogus")), "{:?}", fake.problems());
    let no_conclusion = create(json!({"status": "completed"}));
    assert_eq!(client.send("POST", &path, Some(no_conclusion)).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let mut columns = annotation.clone();
    columns["end_line"] = json!(6);
    columns["start_column"] = json!(1);
    assert_eq!(
        client.send("POST", &path, Some(create(output(vec![columns])))).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let mut elsewhere = annotation.clone();
    elsewhere["path"] = json!("not/in/head.yaml");
    assert_eq!(
        client.send("POST", &path, Some(create(output(vec![elsewhere])))).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert!(fake.check_runs(REPO).is_empty());

    let (status, _, run) = client.send("POST", &path, Some(create(output(vec![annotation.clone(); 50])))).await;
    assert_eq!(status, StatusCode::CREATED);
    let update =
        json!({"conclusion": "failure", "output": {"title": "t", "summary": "done", "annotations": [annotation]}});
    let (status, _, _) = client.send("PATCH", &format!("{path}/{}", run["id"]), Some(update)).await;
    assert_eq!(status, StatusCode::OK);
    let stored = &fake.check_runs(REPO)[0];
    assert_eq!((stored.annotations.len(), stored.status.as_str(), stored.writes), (51, "completed", 2));
    assert_eq!(stored.conclusion.as_deref(), Some("failure"));
    let (_, listed) = client.get(&format!("/repos/{REPO}/commits/{head}/check-runs?check_name=guardrail")).await;
    assert_eq!(listed["total_count"], 1);
}

async fn graphql(client: &Client, url: &str, query: &str, variables: Value) -> Value {
    let body = json!({"query": query, "variables": variables});
    let response = client.http.post(url).bearer_auth(&client.token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn graphql_reads_blobs_in_batches_and_refuses_unknown_fields() {
    let (fake, client, head) = with_pull().await;
    let query = r#"query($owner: String!, $name: String!) {
        repository(owner: $owner, name: $name) {
            f0: object(expression: "HEAD_SHA:deploy.yaml") { ... on Blob { text byteSize isTruncated isBinary oid } }
            f1: object(expression: "HEAD_SHA:missing.yaml") { ... on Blob { text } }
        }
    }"#
    .replace("HEAD_SHA", &head);
    let answer = graphql(&client, &fake.graphql_url(), &query, json!({"owner": "octo-org", "name": "deploy"})).await;
    let repo = &answer["data"]["repository"];
    assert_eq!((repo["f0"]["text"].as_str(), repo["f0"]["isTruncated"].as_bool()), (Some(NEW), Some(false)));
    assert_eq!(repo["f1"], Value::Null);
    fake.set_truncate_above(4);
    let answer = graphql(&client, &fake.graphql_url(), &query, json!({"owner": "octo-org", "name": "deploy"})).await;
    let f0 = &answer["data"]["repository"]["f0"];
    assert_eq!(
        (f0["text"].as_str(), f0["isTruncated"].as_bool(), f0["byteSize"].as_u64()),
        (Some("a\nb\n"), Some(true), Some(22))
    );
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());

    let bad =
        r#"{ repository(owner: "octo-org", name: "deploy") { object(expression: "x") { ... on Blob { txt } } } }"#;
    let answer = graphql(&client, &fake.graphql_url(), bad, json!({})).await;
    assert_eq!(answer["errors"][0]["message"], "Field 'txt' doesn't exist on type 'Blob'");
    assert!(answer.get("data").is_none());
    assert_eq!(fake.problems().len(), 1);
}

#[tokio::test]
async fn graphql_minimizes_comments_and_resolves_threads() {
    let (fake, client, head) = with_pull().await;
    let review = json!({"commit_id": head, "event": "COMMENT", "comments": [
        {"path": "deploy.yaml", "line": 5, "side": "RIGHT", "body": "one"},
        {"path": "new.yaml", "line": 1, "side": "RIGHT", "body": "two"}]});
    assert_eq!(client.send("POST", &format!("/repos/{REPO}/pulls/1/reviews"), Some(review)).await.0, StatusCode::OK);
    let threads = r#"query { repository(owner: "octo-org", name: "deploy") { pullRequest(number: 1) {
        reviewThreads(first: 100) { nodes { id isResolved comments(first: 1) { nodes { id databaseId } } } } } } }"#;
    let answer = graphql(&client, &fake.graphql_url(), threads, json!({})).await;
    let nodes = answer["data"]["repository"]["pullRequest"]["reviewThreads"]["nodes"].clone();
    assert_eq!(nodes.as_array().unwrap().len(), 2, "{answer}");
    let comments = fake.review_comments(REPO, 1);
    assert_eq!(nodes[0]["comments"]["nodes"][0]["databaseId"].as_u64(), Some(comments[0].id));
    let mutation = r#"mutation($a: ID!, $b: ID!, $t: ID!) {
        m0: minimizeComment(input: {subjectId: $a, classifier: OUTDATED}) { minimizedComment { isMinimized } }
        m1: minimizeComment(input: {subjectId: $b, classifier: RESOLVED}) { clientMutationId }
        r0: resolveReviewThread(input: {threadId: $t}) { thread { isResolved } }
    }"#;
    let vars = json!({"a": comments[0].node_id, "b": comments[1].node_id, "t": nodes[0]["id"]});
    let answer = graphql(&client, &fake.graphql_url(), mutation, vars).await;
    assert_eq!(answer["data"]["m0"]["minimizedComment"]["isMinimized"], true, "{answer}");
    assert_eq!(answer["data"]["r0"]["thread"]["isResolved"], true);
    let minimized: Vec<Option<String>> = fake.review_comments(REPO, 1).into_iter().map(|c| c.minimized).collect();
    assert_eq!(minimized, [Some("OUTDATED".to_string()), Some("RESOLVED".to_string())]);
    let wrong_enum = r#"mutation { minimizeComment(input: {subjectId: "x", classifier: STALE}) { clientMutationId } }"#;
    assert!(graphql(&client, &fake.graphql_url(), wrong_enum, json!({})).await["errors"].is_array());
    assert_eq!(fake.problems().len(), 1, "{:?}", fake.problems());
}
