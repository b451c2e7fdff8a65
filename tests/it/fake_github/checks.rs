//! Check runs with GitHub's limits beyond what the OpenAPI schema says: `conclusion` with `completed`,
//! columns only on one-line annotations, annotation paths that exist in the head commit. Annotations append.

use serde_json::{json, Value};

use super::server::{paginate, Reply, Req};
use super::state::{user_json, CheckRunRec, State};
use super::{CheckRun, FakeGitHub};

const MAX_OUTPUT: usize = 65535;

pub(crate) fn check_run_json(s: &State, rec: &CheckRunRec) -> Value {
    let run = &rec.run;
    let url = format!("{}/repos/{}/check-runs/{}", s.base_url, rec.repo, run.id);
    let pull_requests: Vec<Value> = s
        .pulls
        .values()
        .filter(|p| p.open && p.repo == rec.repo && p.head_sha == run.head_sha)
        .map(|p| {
            json!({"url": format!("{}/repos/{}/pulls/{}", s.base_url, p.repo, p.number), "id": p.id,
                "number": p.number, "head": {"ref": format!("pr-{}", p.number), "sha": p.head_sha, "repo": {"id": 1, "url": "", "name": ""}},
                "base": {"ref": "main", "sha": p.base_sha, "repo": {"id": 1, "url": "", "name": ""}}})
        })
        .collect();
    json!({
        "id": run.id, "node_id": format!("CR_{}", run.id), "head_sha": run.head_sha, "external_id": run.external_id,
        "url": url, "html_url": format!("https://github.com/{}/runs/{}", rec.repo, run.id),
        "details_url": run.details_url, "status": run.status, "conclusion": run.conclusion,
        "started_at": rec.started_at, "completed_at": rec.completed_at, "name": run.name,
        "output": {"title": run.title, "summary": run.summary, "text": run.text,
            "annotations_count": run.annotations.len(), "annotations_url": format!("{url}/annotations")},
        "check_suite": {"id": rec.suite_id},
        "app": {"id": FakeGitHub::APP_ID, "slug": FakeGitHub::APP_SLUG, "node_id": "A_guardrail", "name": "guardrail",
            "owner": user_json("octo-org", 1, "Organization"), "description": "", "external_url": "",
            "html_url": "https://github.com/apps/guardrail", "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z", "permissions": {}, "events": []},
        "pull_requests": pull_requests,
    })
}

/// The checks GitHub makes on a create or update body (after the schema), in its words.
fn check_body(s: &State, repo: &str, head_sha: &str, body: &Value, had_conclusion: bool) -> Result<(), String> {
    let completed = body["status"] == json!("completed") || body.get("completed_at").is_some_and(|v| !v.is_null());
    if completed && body["conclusion"].is_null() && !had_conclusion {
        return Err("\"conclusion\" is required when \"status\" is \"completed\".".to_string());
    }
    let output = &body["output"];
    for key in ["summary", "text"] {
        let len = output[key].as_str().map(|t| t.chars().count()).unwrap_or_default();
        if len > MAX_OUTPUT {
            return Err(format!("output.{key} is too long ({len} characters; at most {MAX_OUTPUT})."));
        }
    }
    let annotations = output["annotations"].as_array().map(Vec::as_slice).unwrap_or_default();
    if annotations.len() > 50 {
        return Err(format!("No more than 50 items are allowed; {} were supplied.", annotations.len()));
    }
    let files = s.commit_in(repo, head_sha).map(|c| c.files.clone()).unwrap_or_default();
    for (i, a) in annotations.iter().enumerate() {
        let has_columns = a.get("start_column").is_some() || a.get("end_column").is_some();
        if has_columns && a["start_line"] != a["end_line"] {
            return Err(format!(
                "annotations[{i}]: start_column and end_column are only allowed when start_line equals end_line."
            ));
        }
        let path = a["path"].as_str().unwrap_or_default();
        if !files.contains_key(path) {
            return Err(format!("annotations[{i}]: path `{path}` is not a file in the head commit {head_sha}."));
        }
    }
    let actions = body["actions"].as_array().map(Vec::as_slice).unwrap_or_default();
    if actions.len() > 3 {
        return Err(format!("No more than 3 items are allowed; {} were supplied.", actions.len()));
    }
    for (i, action) in actions.iter().enumerate() {
        for (key, max) in [("label", 20), ("description", 40), ("identifier", 20)] {
            if action[key].as_str().is_some_and(|t| t.chars().count() > max) {
                return Err(format!("actions[{i}].{key} is too long (at most {max} characters)."));
            }
        }
    }
    Ok(())
}

fn apply(rec: &mut CheckRunRec, body: &Value) {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let run = &mut rec.run;
    if let Some(name) = text(&body["name"]) {
        run.name = name;
    }
    for (key, slot) in [("details_url", &mut run.details_url), ("external_id", &mut run.external_id)] {
        if body.get(key).is_some() {
            *slot = text(&body[key]);
        }
    }
    if let Some(status) = text(&body["status"]) {
        run.status = status;
    }
    if let Some(conclusion) = text(&body["conclusion"]) {
        run.conclusion = Some(conclusion);
        run.status = "completed".to_string();
    }
    if body.get("started_at").is_some() {
        rec.started_at = text(&body["started_at"]);
    }
    if body.get("completed_at").is_some() {
        rec.completed_at = text(&body["completed_at"]);
    }
    if run.status == "completed" && rec.completed_at.is_none() {
        rec.completed_at = Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    let output = &body["output"];
    for (key, slot) in [("title", &mut run.title), ("summary", &mut run.summary), ("text", &mut run.text)] {
        if output.get(key).is_some() {
            *slot = text(&output[key]);
        }
    }
    run.annotations.extend(output["annotations"].as_array().cloned().unwrap_or_default());
    if let Some(actions) = body["actions"].as_array() {
        run.actions = actions.clone();
    }
    run.writes += 1;
}

fn refuse(s: &mut State, req: &Req, why: String) -> Reply {
    s.problem(format!("{}: check run refused: {why}", req.path));
    Reply::invalid(&[why], req.docs)
}

pub(crate) fn create(s: &mut State, req: &Req) -> Reply {
    let repo = req.repo();
    let head_sha = req.body["head_sha"].as_str().unwrap_or_default().to_string();
    if s.commit_in(&repo, &head_sha).is_none() {
        s.problem(format!("{}: check run for unknown commit {head_sha}", req.path));
        return Reply::error(422, &format!("No commit found for SHA: {head_sha}"), req.docs);
    }
    if let Err(why) = check_body(s, &repo, &head_sha, &req.body, false) {
        return refuse(s, req, why);
    }
    let id = s.next_id();
    let suite_id = s.next_id();
    let mut rec = CheckRunRec {
        repo,
        run: CheckRun {
            id,
            name: String::new(),
            head_sha,
            status: "queued".to_string(),
            conclusion: None,
            title: None,
            summary: None,
            text: None,
            annotations: Vec::new(),
            actions: Vec::new(),
            details_url: None,
            external_id: None,
            writes: 0,
        },
        suite_id,
        started_at: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        completed_at: None,
    };
    apply(&mut rec, &req.body);
    let body = check_run_json(s, &rec);
    s.check_runs.push(rec);
    Reply::new(201, body)
}

fn find(s: &State, req: &Req) -> Option<usize> {
    let (repo, id) = (req.repo(), req.number("check_run_id")?);
    s.check_runs.iter().position(|c| c.repo == repo && c.run.id == id)
}

pub(crate) fn update(s: &mut State, req: &Req) -> Reply {
    let Some(i) = find(s, req) else { return Reply::not_found() };
    let (repo, head_sha) = (s.check_runs[i].repo.clone(), s.check_runs[i].run.head_sha.clone());
    let had_conclusion = s.check_runs[i].run.conclusion.is_some();
    if let Err(why) = check_body(s, &repo, &head_sha, &req.body, had_conclusion) {
        return refuse(s, req, why);
    }
    apply(&mut s.check_runs[i], &req.body);
    Reply::ok(check_run_json(s, &s.check_runs[i]))
}

pub(crate) fn get(s: &mut State, req: &Req) -> Reply {
    match find(s, req) {
        Some(i) => Reply::ok(check_run_json(s, &s.check_runs[i])),
        None => Reply::not_found(),
    }
}

pub(crate) fn list_annotations(s: &mut State, req: &Req) -> Reply {
    let Some(i) = find(s, req) else { return Reply::not_found() };
    let rec = &s.check_runs[i];
    let items = rec
        .run
        .annotations
        .iter()
        .map(|a| {
            let mut a = a.clone();
            for key in ["start_column", "end_column", "title", "raw_details"] {
                a.as_object_mut().map(|o| o.entry(key).or_insert(Value::Null));
            }
            a["blob_href"] = json!(format!(
                "https://github.com/{}/blob/{}/{}",
                rec.repo,
                rec.run.head_sha,
                a["path"].as_str().unwrap_or_default()
            ));
            a
        })
        .collect();
    paginate(s, req, items, usize::MAX)
}

pub(crate) fn list_for_ref(s: &mut State, req: &Req) -> Reply {
    let repo = req.repo();
    let Some(sha) = s.resolve(&repo, req.param("ref")).map(|c| c.sha.clone()) else {
        return Reply::error(422, &format!("No commit found for SHA: {}", req.param("ref")), req.docs);
    };
    let name = req.query.get("check_name");
    let status = req.query.get("status");
    let runs: Vec<Value> = s
        .check_runs
        .iter()
        .rev()
        .filter(|c| c.repo == repo && c.run.head_sha == sha)
        .filter(|c| name.is_none_or(|n| *n == c.run.name) && status.is_none_or(|st| *st == c.run.status))
        .map(|c| check_run_json(s, c))
        .collect();
    let total = runs.len();
    let mut reply = paginate(s, req, runs, usize::MAX);
    reply.body = json!({"total_count": total, "check_runs": reply.body});
    reply
}
