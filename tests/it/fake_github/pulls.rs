//! Pull requests, their files, reviews and review comments. A review is all or nothing: one comment outside
//! the diff fails it with 422 and nothing is stored, as on GitHub.

use serde_json::{json, Value};

use super::diff::{diff_snapshots, FileDiff};
use super::server::{paginate, Reply, Req};
use super::state::{bot_json, user_json, CommentRec, Pull, State};
use super::{FakeGitHub, ReviewComment};

const MAX_COMMENT: usize = 65536;

fn head_ref(s: &State, pull: &Pull) -> String {
    let head_repo = pull.head_repo.as_deref().unwrap_or(&pull.repo);
    let branch = s.repos.get(head_repo).and_then(|r| r.branches.iter().find(|(_, sha)| **sha == pull.head_sha));
    branch.map(|(name, _)| name.clone()).unwrap_or_else(|| format!("pr-{}", pull.number))
}

pub(crate) fn pull_json(s: &State, pull: &Pull) -> Value {
    let repo = &pull.repo;
    let head_repo_name = pull.head_repo.as_deref().unwrap_or(repo);
    let side = |name: &str, sha: &str, reference: String| {
        let owner = name.split('/').next().unwrap_or_default();
        let repo_json = s.repos.get(name).map(|r| s.repo_json(r)).unwrap_or(Value::Null);
        json!({"label": format!("{owner}:{reference}"), "ref": reference, "sha": sha,
            "user": user_json(owner, 1, "Organization"), "repo": repo_json})
    };
    let base_ref = s.repos.get(repo).map(|r| r.default_branch.clone()).unwrap_or_else(|| "main".to_string());
    let url = format!("{}/repos/{repo}/pulls/{}", s.base_url, pull.number);
    let html = format!("https://github.com/{repo}/pull/{}", pull.number);
    let created = pull.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let updated = pull.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let body = json!({
        "url": url, "id": pull.id, "node_id": format!("PR_{}", pull.id), "html_url": html,
        "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"),
        "issue_url": format!("{}/repos/{repo}/issues/{}", s.base_url, pull.number),
        "commits_url": format!("{url}/commits"), "review_comments_url": format!("{url}/comments"),
        "review_comment_url": format!("{}/repos/{repo}/pulls/comments{{/number}}", s.base_url),
        "comments_url": format!("{}/repos/{repo}/issues/{}/comments", s.base_url, pull.number),
        "statuses_url": format!("{}/repos/{repo}/statuses/{}", s.base_url, pull.head_sha),
        "number": pull.number, "state": if pull.open { "open" } else { "closed" }, "locked": false,
        "title": format!("Pull request {}", pull.number), "user": user_json("octocat", 583231, "User"),
        "body": null, "labels": [], "milestone": null, "active_lock_reason": null, "draft": pull.draft,
        "created_at": created, "updated_at": updated, "closed_at": null, "merged_at": null,
        "merge_commit_sha": null, "assignee": null, "assignees": [], "requested_reviewers": [],
        "requested_teams": [],
    });
    let more = json!({
        "head": side(head_repo_name, &pull.head_sha, head_ref(s, pull)),
        "base": side(repo, &pull.base_sha, base_ref), "author_association": "CONTRIBUTOR", "auto_merge": null,
        "_links": {"self": {"href": url}, "html": {"href": html}},
        "merged": false, "mergeable": true, "mergeable_state": "clean", "comments": 0, "review_comments": 0,
        "maintainer_can_modify": false, "commits": 1, "additions": 0, "deletions": 0, "changed_files": 0,
    });
    let (Value::Object(mut body), Value::Object(more)) = (body, more) else { unreachable!("json! objects") };
    body.extend(more);
    Value::Object(body)
}

pub(crate) fn pull_diff(s: &State, pull: &Pull, head: &str) -> Vec<FileDiff> {
    let files = |sha: &str| s.commits.get(sha).map(|c| c.files.clone()).unwrap_or_default();
    diff_snapshots(s, &files(&pull.base_sha), &files(head))
}

fn find_pull<'a>(s: &'a State, req: &Req) -> Option<&'a Pull> {
    s.pulls.get(&(req.repo(), req.number("pull_number")?))
}

pub(crate) fn list(s: &mut State, req: &Req) -> Reply {
    let repo = req.repo();
    let state = req.query.get("state").map(String::as_str).unwrap_or("open");
    let mut pulls: Vec<&Pull> = s
        .pulls
        .values()
        .filter(|p| p.repo == repo)
        .filter(|p| state == "all" || (state == "open") == p.open)
        .filter(|p| req.query.get("head").is_none_or(|h| pull_json(s, p)["head"]["label"] == json!(h)))
        .collect();
    pulls.sort_by_key(|p| std::cmp::Reverse(p.number));
    let items = pulls.into_iter().map(|p| pull_json(s, p)).collect();
    paginate(s, req, items, usize::MAX)
}

pub(crate) fn get(s: &mut State, req: &Req) -> Reply {
    let Some(pull) = find_pull(s, req) else { return Reply::not_found() };
    let mut body = pull_json(s, pull);
    let files = pull_diff(s, pull, &pull.head_sha);
    body["additions"] = json!(files.iter().map(|f| f.additions).sum::<u64>());
    body["deletions"] = json!(files.iter().map(|f| f.deletions).sum::<u64>());
    body["changed_files"] = json!(files.len());
    body["review_comments"] =
        json!(s.comments.iter().filter(|c| c.repo == pull.repo && c.number == pull.number).count());
    Reply::ok(body)
}

pub(crate) fn list_files(s: &mut State, req: &Req) -> Reply {
    let Some(pull) = find_pull(s, req) else { return Reply::not_found() };
    let repo = req.repo();
    let items = pull_diff(s, pull, &pull.head_sha)
        .into_iter()
        .map(|f| {
            let mut v = json!({
                "sha": f.sha, "filename": f.filename, "status": f.status, "additions": f.additions,
                "deletions": f.deletions, "changes": f.additions + f.deletions,
                "blob_url": format!("https://github.com/{repo}/blob/{}/{}", pull.head_sha, f.filename),
                "raw_url": format!("https://github.com/{repo}/raw/{}/{}", pull.head_sha, f.filename),
                "contents_url": format!("{}/repos/{repo}/contents/{}?ref={}", s.base_url, f.filename, pull.head_sha),
            });
            if let Some(patch) = f.patch {
                v["patch"] = json!(patch);
            }
            if let Some(previous) = f.previous_filename {
                v["previous_filename"] = json!(previous);
            }
            v
        })
        .collect();
    // GitHub lists at most 3000 files of a pull request.
    paginate(s, req, items, 3000)
}

/// The line a comment points at now: kept while the file is unchanged since the comment's commit, else outdated.
fn current_line(s: &State, c: &CommentRec) -> Option<u64> {
    let pull = s.pulls.get(&(c.repo.clone(), c.number))?;
    let blob = |sha: &str| s.commits.get(sha).and_then(|commit| commit.files.get(&c.comment.path).cloned());
    (c.comment.commit_id == pull.head_sha || blob(&c.comment.commit_id) == blob(&pull.head_sha))
        .then_some(c.comment.line)
        .flatten()
}

pub(crate) fn comment_json(s: &State, c: &CommentRec) -> Value {
    let k = &c.comment;
    let url = format!("{}/repos/{}/pulls/comments/{}", s.base_url, c.repo, k.id);
    let html = format!("https://github.com/{}/pull/{}#discussion_r{}", c.repo, c.number, k.id);
    let pull_url = format!("{}/repos/{}/pulls/{}", s.base_url, c.repo, c.number);
    let created = c.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let line = current_line(s, c);
    json!({
        "url": url, "pull_request_review_id": k.review_id, "id": k.id, "node_id": k.node_id,
        "diff_hunk": c.diff_hunk, "path": k.path, "commit_id": k.commit_id, "original_commit_id": k.commit_id,
        "user": bot_json(), "body": k.body, "created_at": created, "updated_at": created, "html_url": html,
        "pull_request_url": pull_url, "author_association": "NONE",
        "_links": {"self": {"href": url}, "html": {"href": html}, "pull_request": {"href": pull_url}},
        "start_line": line.and(k.start_line), "original_start_line": k.start_line,
        "start_side": k.start_line.map(|_| c.start_side.clone().unwrap_or_else(|| k.side.clone())),
        "line": line, "original_line": k.line, "side": k.side, "subject_type": "line",
        "position": line.map(|_| 1), "original_position": 1,
    })
}

pub(crate) fn list_comments(s: &mut State, req: &Req) -> Reply {
    if find_pull(s, req).is_none() {
        return Reply::not_found();
    }
    let (repo, number) = (req.repo(), req.number("pull_number").unwrap_or_default());
    let items =
        s.comments.iter().filter(|c| c.repo == repo && c.number == number).map(|c| comment_json(s, c)).collect();
    paginate(s, req, items, usize::MAX)
}

pub(crate) fn list_reviews(s: &mut State, req: &Req) -> Reply {
    if find_pull(s, req).is_none() {
        return Reply::not_found();
    }
    let (repo, number) = (req.repo(), req.number("pull_number").unwrap_or_default());
    let items = s.reviews.iter().filter(|(r, n, _)| *r == repo && *n == number).map(|(_, _, v)| v.clone()).collect();
    paginate(s, req, items, usize::MAX)
}

/// The diff text GitHub shows above a comment: its hunk, up to the commented line.
fn diff_hunk(file: &FileDiff, side: &str, line: u64) -> String {
    let Some(patch) = &file.patch else { return String::new() };
    let mut out: Vec<&str> = Vec::new();
    let (mut old, mut new) = (0u64, 0u64);
    for text in patch.lines() {
        if let Some(header) = text.strip_prefix("@@ -") {
            out.clear();
            let mut numbers = header.split([' ', ',', '+']).filter_map(|n| n.parse::<u64>().ok());
            old = numbers.next().unwrap_or(1);
            new = text
                .split('+')
                .nth(1)
                .and_then(|t| t.split([',', ' ']).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            out.push(text);
            continue;
        }
        out.push(text);
        let (is_old, is_new) = match text.chars().next() {
            Some('-') => (true, false),
            Some('+') => (false, true),
            Some('\\') => (false, false),
            _ => (true, true),
        };
        let hit = if side == "LEFT" { is_old && old == line } else { is_new && new == line };
        if hit {
            return out.join("\n");
        }
        old += u64::from(is_old);
        new += u64::from(is_new);
    }
    out.join("\n")
}

pub(crate) fn create_review(s: &mut State, req: &Req) -> Reply {
    let Some(pull) = find_pull(s, req) else { return Reply::not_found() };
    let (repo, number) = (pull.repo.clone(), pull.number);
    let body = &req.body;
    let commit_id = body["commit_id"].as_str().unwrap_or(&pull.head_sha).to_string();
    if s.commit_in(&repo, &commit_id).is_none() {
        s.problem(format!("POST {}: review on unknown commit {commit_id}", req.path));
        return Reply::unprocessable(&format!("No commit found for SHA: {commit_id}"), req.docs);
    }
    let files = pull_diff(s, pull, &commit_id);
    let mut staged = Vec::new();
    for (i, comment) in body["comments"].as_array().into_iter().flatten().enumerate() {
        let path = comment["path"].as_str().unwrap_or_default();
        let text = comment["body"].as_str().unwrap_or_default();
        let side = comment["side"].as_str().unwrap_or("RIGHT").to_string();
        let start_side = comment["start_side"].as_str().map(str::to_string);
        let (line, start_line) = (comment["line"].as_u64(), comment["start_line"].as_u64());
        let fail = |s: &mut State, why: &str| {
            s.problem(format!("POST {}: review refused, comment {i} ({path}:{line:?}): {why}", req.path));
            Err(Reply::unprocessable(why, req.docs))
        };
        let check: Result<(), Reply> = (|| {
            if text.chars().count() > MAX_COMMENT {
                return fail(s, &format!("Body is too long (maximum is {MAX_COMMENT} characters)"));
            }
            if side != "LEFT" && side != "RIGHT" {
                return fail(s, "Side must be LEFT or RIGHT");
            }
            let Some(file) = files.iter().find(|f| f.filename == path) else {
                return fail(s, "Path could not be resolved");
            };
            let Some(line) = line else {
                return fail(s, "Line could not be resolved (the fake needs `line`; `position` is deprecated)");
            };
            let Some(hunk) = file.hunk_of(&side, line) else {
                return fail(s, "Pull request review thread line must be part of the diff");
            };
            if let Some(start) = start_line {
                let start_side = start_side.as_deref().unwrap_or(&side);
                if start >= line && start_side == side {
                    return fail(s, "Pull request review thread start line must precede the end line");
                }
                match file.hunk_of(start_side, start) {
                    Some(h) if h == hunk => {}
                    Some(_) => {
                        return fail(s, "Pull request review thread start and end lines must be in the same hunk")
                    }
                    None => return fail(s, "Pull request review thread start line must be part of the diff"),
                }
            }
            Ok(())
        })();
        if let Err(reply) = check {
            return reply;
        }
        let file = files.iter().find(|f| f.filename == path).expect("checked above");
        let hunk = diff_hunk(file, &side, line.unwrap_or_default());
        staged.push((path.to_string(), line, start_line, side, start_side, text.to_string(), hunk));
    }
    let review_id = s.next_id();
    let state = match body["event"].as_str() {
        Some("APPROVE") => "APPROVED",
        Some("REQUEST_CHANGES") => "CHANGES_REQUESTED",
        Some("COMMENT") => "COMMENTED",
        _ => "PENDING",
    };
    let html = format!("https://github.com/{repo}/pull/{number}#pullrequestreview-{review_id}");
    let pull_url = format!("{}/repos/{repo}/pulls/{number}", s.base_url);
    let review = json!({
        "id": review_id, "node_id": format!("PRR_{review_id}"), "user": bot_json(),
        "body": body["body"].as_str().unwrap_or_default(), "state": state, "html_url": html,
        "pull_request_url": pull_url, "commit_id": commit_id, "author_association": "NONE",
        "submitted_at": (state != "PENDING").then(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
    });
    for (path, line, start_line, side, start_side, text, hunk) in staged {
        let id = s.next_id();
        let comment = ReviewComment {
            id,
            node_id: format!("PRRC_{id}"),
            path,
            line,
            start_line,
            side,
            body: text,
            commit_id: commit_id.clone(),
            review_id: Some(review_id),
            user_login: format!("{}[bot]", FakeGitHub::APP_SLUG),
            minimized: None,
        };
        s.comments.push(CommentRec {
            repo: repo.clone(),
            number,
            comment,
            start_side,
            thread_id: format!("PRRT_{id}"),
            resolved: false,
            diff_hunk: hunk,
            created_at: chrono::Utc::now(),
        });
    }
    s.reviews.push((repo, number, review.clone()));
    Reply::ok(review)
}
