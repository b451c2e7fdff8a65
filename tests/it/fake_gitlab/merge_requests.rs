//! The fake GitLab's merge request routes: the merge request, its versions and diffs, discussions with
//! positions validated as GitLab validates them, and notes. A note line GitLab would run as a quick
//! action is recorded as a problem.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::server::{paginate, Reply};
use super::state::{diff_lines, line_code, Discussion, Note, State};

fn mr_json(s: &State, pid: u64, iid: u64) -> Value {
    let m = s.mr(pid, iid).expect("checked");
    let v = m.head();
    json!({
        "id": m.id, "iid": m.iid, "project_id": m.project_id, "title": m.title, "state": m.state, "draft": m.draft,
        "work_in_progress": m.draft, "sha": v.head, "source_project_id": m.source_project_id,
        "target_project_id": m.project_id, "source_branch": m.source_branch, "target_branch": m.target_branch,
        "diff_refs": {"base_sha": v.base, "head_sha": v.head, "start_sha": v.start},
        "web_url": format!("https://gitlab.example/{}/-/merge_requests/{}", s.projects[&pid].path, iid),
        // One second per version; the API gives milliseconds, hooks whole seconds (as GitLab does).
        "updated_at": format!("2026-12-03T10:00:{:02}.250Z", m.versions.len()),
    })
}

fn note_json(n: &Note) -> Value {
    json!({
        "id": n.id, "type": if n.position.is_some() { json!("DiffNote") } else { Value::Null }, "body": n.body,
        "author": {"id": n.author_id, "username": if n.author_id == 7 { "guardrail-bot" } else { "someone" }},
        "system": n.system, "resolvable": n.resolvable, "resolved": n.resolved, "position": n.position,
        "noteable_type": "MergeRequest",
    })
}

fn discussion_json(d: &Discussion) -> Value {
    json!({"id": d.id, "individual_note": d.individual_note, "notes": d.notes.iter().map(note_json).collect::<Vec<_>>()})
}

pub(super) fn mr_route(
    s: &mut State,
    method: &str,
    pid: u64,
    iid: u64,
    rest: &[&str],
    q: &HashMap<String, String>,
    body: &Value,
) -> Reply {
    match (method, rest) {
        ("GET", []) => Reply::json(200, mr_json(s, pid, iid)),
        ("GET", ["versions"]) => {
            let m = s.mr(pid, iid).expect("checked");
            let items: Vec<Value> = m
                .versions
                .iter()
                .rev()
                .map(|v| {
                    json!({
                        "id": v.id, "head_commit_sha": v.head, "base_commit_sha": v.base, "start_commit_sha": v.start,
                        "state": "collected", "real_size": v.diffs.len().to_string(), "merge_request_id": m.id,
                    })
                })
                .collect();
            paginate(s, q, items, 20)
        }
        ("GET", ["diffs"]) => {
            let m = s.mr(pid, iid).expect("checked");
            let items: Vec<Value> = m.head().diffs.iter().map(|d| json!({
                "old_path": d.old_path, "new_path": d.new_path, "a_mode": "100644", "b_mode": "100644",
                "diff": d.diff, "new_file": d.new_file, "renamed_file": d.renamed_file, "deleted_file": d.deleted_file,
                "generated_file": false, "collapsed": d.collapsed, "too_large": d.too_large,
            })).collect();
            paginate(s, q, items, 20)
        }
        ("GET", ["discussions"]) => {
            let items: Vec<Value> =
                s.discussions.iter().filter(|d| d.project_id == pid && d.iid == iid).map(discussion_json).collect();
            paginate(s, q, items, 20)
        }
        ("GET", ["notes"]) => {
            let mut notes: Vec<Note> = s
                .discussions
                .iter()
                .filter(|d| d.project_id == pid && d.iid == iid)
                .flat_map(|d| d.notes.clone())
                .collect();
            notes.sort_by_key(|n| n.id);
            if q.get("sort").map(String::as_str) != Some("asc") {
                notes.reverse();
            }
            let items: Vec<Value> = notes.iter().map(note_json).collect();
            paginate(s, q, items, 20)
        }
        ("POST", ["notes"]) => {
            let Some(text) = body.get("body").and_then(Value::as_str).filter(|b| !b.trim().is_empty()) else {
                return Reply::missing("body");
            };
            quick_actions(s, text);
            let note = Note {
                id: s.next_id(),
                body: text.to_string(),
                author_id: s.bot_id,
                system: false,
                resolvable: false,
                resolved: false,
                position: None,
            };
            let v = note_json(&note);
            let id = format!("{:040x}", s.next_id());
            s.discussions.push(Discussion { id, project_id: pid, iid, individual_note: true, notes: vec![note] });
            Reply::json(201, v)
        }
        ("PUT", ["notes", note_id]) => {
            let Some(text) = body.get("body").and_then(Value::as_str).filter(|b| !b.trim().is_empty()) else {
                return Reply::missing("body");
            };
            let bot = s.bot_id;
            let id: u64 = note_id.parse().unwrap_or(0);
            let Some(note) = s
                .discussions
                .iter_mut()
                .filter(|d| d.project_id == pid && d.iid == iid)
                .flat_map(|d| d.notes.iter_mut())
                .find(|n| n.id == id)
            else {
                return Reply::not_found("Note");
            };
            if note.author_id != bot {
                return Reply::message(403, "403 Forbidden");
            }
            note.body = text.to_string();
            Reply::json(200, note_json(note))
        }
        ("POST", ["discussions"]) => create_discussion(s, pid, iid, body),
        ("PUT", ["discussions", id]) => {
            let resolved =
                q.get("resolved").map(|v| v == "true").or_else(|| body.get("resolved").and_then(Value::as_bool));
            let Some(resolved) = resolved else { return Reply::missing("resolved") };
            let Some(d) = s.discussions.iter_mut().find(|d| d.project_id == pid && d.iid == iid && d.id == *id) else {
                return Reply::not_found("Discussion");
            };
            if !d.notes.iter().any(|n| n.resolvable) {
                return Reply::bad("Discussion is not resolvable");
            }
            for n in d.notes.iter_mut().filter(|n| n.resolvable) {
                n.resolved = resolved;
            }
            Reply::json(200, discussion_json(d))
        }
        _ => Reply::message(404, "404 Route Not Found"),
    }
}

/// A note line that GitLab would run as a quick action is a bug in the bot: recorded as a problem.
fn quick_actions(s: &mut State, body: &str) {
    let mut fenced = false;
    for line in body.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if !fenced && line.starts_with('/') && line[1..].chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            s.problems.push(format!("note line would run as a quick action: {line}"));
        }
    }
}

const INVALID_LINE: &str = "Note {:line_code=>[\"can't be blank\", \"must be a valid line code\"]}";

fn create_discussion(s: &mut State, pid: u64, iid: u64, body: &Value) -> Reply {
    let Some(text) = body.get("body").and_then(Value::as_str).filter(|b| !b.trim().is_empty()) else {
        return Reply::missing("body");
    };
    let Some(pos) = body.get("position").filter(|p| !p.is_null()) else {
        quick_actions(s, text);
        let note = Note {
            id: s.next_id(),
            body: text.to_string(),
            author_id: s.bot_id,
            system: false,
            resolvable: true,
            resolved: false,
            position: None,
        };
        let d = Discussion {
            id: format!("{:040x}", s.next_id()),
            project_id: pid,
            iid,
            individual_note: false,
            notes: vec![note],
        };
        let v = discussion_json(&d);
        s.discussions.push(d);
        return Reply::json(201, v);
    };
    let str_of = |k: &str| pos.get(k).and_then(Value::as_str);
    for k in ["base_sha", "start_sha", "head_sha", "position_type"] {
        if str_of(k).is_none() {
            return Reply::missing(&format!("position[{k}]"));
        }
    }
    if str_of("position_type") != Some("text") {
        return Reply::bad("Note {:position=>[\"only text positions are supported here\"]}");
    }
    let num = |v: Option<&Value>| -> Result<Option<u32>, ()> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(|n| Some(n as u32)).ok_or(()),
            Some(_) => Err(()),
        }
    };
    let (Ok(new_line), Ok(old_line)) = (num(pos.get("new_line")), num(pos.get("old_line"))) else {
        return Reply::bad("Note {:position=>[\"must be a valid json schema\"]}");
    };
    let m = s.mr(pid, iid).expect("checked");
    let Some(version) = m.versions.iter().find(|v| {
        Some(v.head.as_str()) == str_of("head_sha")
            && Some(v.base.as_str()) == str_of("base_sha")
            && Some(v.start.as_str()) == str_of("start_sha")
    }) else {
        return Reply::bad(INVALID_LINE);
    };
    let (Some(new_path), Some(old_path)) = (str_of("new_path"), str_of("old_path")) else {
        return Reply::bad(INVALID_LINE);
    };
    let Some(file) = version.diffs.iter().find(|d| d.new_path == new_path && d.old_path == old_path) else {
        return Reply::bad(INVALID_LINE);
    };
    let lines = diff_lines(&file.diff);
    let matches = |kind: char, o: u32, n: u32, old_line: Option<u32>, new_line: Option<u32>| match kind {
        '+' => old_line.is_none() && new_line == Some(n),
        '-' => new_line.is_none() && old_line == Some(o),
        _ => old_line == Some(o) && new_line == Some(n),
    };
    let Some(at) = lines.iter().position(|(k, o, n)| matches(*k, *o, *n, old_line, new_line)) else {
        return Reply::bad(INVALID_LINE);
    };
    if let Some(range) = pos.get("line_range").filter(|r| !r.is_null()) {
        let end_of = |which: &str| -> Option<usize> {
            let e = range.get(which)?;
            let code = e.get("line_code")?.as_str()?;
            let kind = e.get("type")?.as_str()?;
            let i = lines.iter().position(|(_, o, n)| line_code(new_path, *o, *n) == code)?;
            let expected = if lines[i].0 == '-' { "old" } else { "new" };
            (kind == expected).then_some(i)
        };
        let (Some(start), Some(end)) = (end_of("start"), end_of("end")) else { return Reply::bad(INVALID_LINE) };
        if end != at || start > end {
            return Reply::bad(INVALID_LINE);
        }
    }
    quick_actions(s, text);
    let mut stored = pos.clone();
    stored["line_code"] = json!(line_code(new_path, lines[at].1, lines[at].2));
    let note = Note {
        id: s.next_id(),
        body: text.to_string(),
        author_id: s.bot_id,
        system: false,
        resolvable: true,
        resolved: false,
        position: Some(stored),
    };
    let d = Discussion {
        id: format!("{:040x}", s.next_id()),
        project_id: pid,
        iid,
        individual_note: false,
        notes: vec![note],
    };
    let v = discussion_json(&d);
    s.discussions.push(d);
    Reply::json(201, v)
}
