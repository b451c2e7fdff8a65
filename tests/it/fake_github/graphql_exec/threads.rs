//! Pull requests, review threads (one per review comment: replies are not modelled) and the two mutations
//! guardrail uses to tidy its old comments: `minimizeComment` and `resolveReviewThread`.

use serde_json::{json, Map, Value};

use super::{Exec, Node, Out};

/// GitHub refuses connections without `first`/`last`, and pages above 100.
fn page_size(args: &Map<String, Value>, connection: &str) -> Result<usize, String> {
    match args.get("first").or(args.get("last")).and_then(Value::as_u64) {
        None => Err(format!(
            "You must provide a `first` or `last` value to properly paginate the `{connection}` connection."
        )),
        Some(n) if n > 100 => Err(format!(
            "Requesting {n} records on the `{connection}` connection exceeds the `first` limit of 100 records."
        )),
        Some(n) => Ok(n as usize),
    }
}

fn cursor(index: usize) -> String {
    format!("Y3Vyc29yOnYyOpH{index}")
}

fn after(args: &Map<String, Value>) -> usize {
    args.get("after")
        .and_then(Value::as_str)
        .and_then(|c| c.strip_prefix("Y3Vyc29yOnYyOpH"))
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(0, |n| n + 1)
}

impl Exec<'_, '_, '_> {
    fn refuse(&mut self, message: String) -> Out {
        self.s.problem(format!("POST /graphql: {message}"));
        self.errors.push(json!({"type": "INVALID_ARGUMENT", "message": message}));
        Out::Leaf(Value::Null)
    }

    pub(super) fn pull_field(&mut self, repo: String, number: u64, field: &str, args: &Map<String, Value>) -> Out {
        let s = &*self.s;
        let pull = &s.pulls[&(repo.clone(), number)];
        let leaf = |v: Value| Out::Leaf(v);
        match field {
            "number" => leaf(json!(number)),
            "id" => leaf(json!(format!("PR_{}", pull.id))),
            "databaseId" => leaf(json!(pull.id)),
            "headRefOid" => leaf(json!(pull.head_sha)),
            "baseRefOid" => leaf(json!(pull.base_sha)),
            "isDraft" => leaf(json!(pull.draft)),
            "state" => leaf(json!(if pull.open { "OPEN" } else { "CLOSED" })),
            "url" => leaf(json!(format!("https://github.com/{repo}/pull/{number}"))),
            "reviewThreads" => {
                let size = match page_size(args, "reviewThreads") {
                    Ok(n) => n,
                    Err(e) => return self.refuse(e),
                };
                let all: Vec<usize> = s
                    .comments
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.repo == repo && c.number == number)
                    .map(|(i, _)| i)
                    .collect();
                let start = after(args).min(all.len());
                let end = (start + size).min(all.len());
                Out::Node(Node::Threads { comments: all[start..end].to_vec(), has_next: end < all.len(), end })
            }
            _ => self.unimplemented(&Node::PullRequest { repo, number }, field),
        }
    }

    pub(super) fn thread_field(&mut self, node: &Node, field: &str, args: &Map<String, Value>, path: &[Value]) -> Out {
        let leaf = |v: Value| Out::Leaf(v);
        match (node, field) {
            (Node::Threads { comments, .. }, "nodes") => Out::List(comments.iter().map(|i| Node::Thread(*i)).collect()),
            (Node::Threads { comments, .. }, "totalCount") => leaf(json!(comments.len())),
            (Node::Threads { comments, has_next, end }, "pageInfo") => Out::Node(Node::PageInfo {
                has_next: *has_next,
                end_cursor: (!comments.is_empty()).then(|| cursor(end - 1)),
            }),
            (Node::PageInfo { has_next, .. }, "hasNextPage") => leaf(json!(has_next)),
            (Node::PageInfo { end_cursor, .. }, "endCursor") => leaf(json!(end_cursor)),
            (Node::PageInfo { .. }, "hasPreviousPage") => leaf(json!(false)),
            (Node::PageInfo { .. }, "startCursor") => leaf(Value::Null),
            (Node::Thread(i), _) => {
                let c = &self.s.comments[*i];
                match field {
                    "id" => leaf(json!(c.thread_id)),
                    "isResolved" => leaf(json!(c.resolved)),
                    "isOutdated" => leaf(json!(false)),
                    "isCollapsed" => leaf(json!(c.resolved)),
                    "path" => leaf(json!(c.comment.path)),
                    "line" | "originalLine" => leaf(json!(c.comment.line)),
                    "startLine" | "originalStartLine" => leaf(json!(c.comment.start_line)),
                    "diffSide" => leaf(json!(c.comment.side)),
                    "comments" => match super::threads::page_size(args, "comments") {
                        Ok(_) => Out::Node(Node::Comments(vec![*i])),
                        Err(e) => self.refuse(e),
                    },
                    _ => self.unimplemented(node, field),
                }
            }
            (Node::Comments(items), "nodes") => Out::List(items.iter().map(|i| Node::Comment(*i)).collect()),
            (Node::Comments(items), "totalCount") => leaf(json!(items.len())),
            (Node::Comments(_), "pageInfo") => Out::Node(Node::PageInfo { has_next: false, end_cursor: None }),
            (Node::Comment(i), _) => {
                let c = &self.s.comments[*i];
                match field {
                    "id" => leaf(json!(c.comment.node_id)),
                    "databaseId" | "fullDatabaseId" => leaf(json!(c.comment.id)),
                    "body" => leaf(json!(c.comment.body)),
                    "path" => leaf(json!(c.comment.path)),
                    "line" | "originalLine" => leaf(json!(c.comment.line)),
                    "isMinimized" => leaf(json!(c.comment.minimized.is_some())),
                    "minimizedReason" => leaf(json!(c.comment.minimized.as_ref().map(|m| m.to_lowercase()))),
                    "viewerCanMinimize" => leaf(json!(true)),
                    "url" => leaf(json!(format!(
                        "https://github.com/{}/pull/{}#discussion_r{}",
                        c.repo, c.number, c.comment.id
                    ))),
                    "author" => Out::Node(Node::Actor { login: c.comment.user_login.clone(), kind: "Bot" }),
                    _ => self.unimplemented(node, field),
                }
            }
            (Node::Actor { login, .. }, "login") => leaf(json!(login)),
            (Node::Actor { login, .. }, "url") => leaf(json!(format!("https://github.com/{login}"))),
            (Node::Mutation, "minimizeComment" | "unminimizeComment") => {
                let input = args.get("input").cloned().unwrap_or_default();
                let subject = input["subjectId"].as_str().unwrap_or_default();
                let Some(i) = self.s.comments.iter().position(|c| c.comment.node_id == subject) else {
                    return self
                        .not_found(format!("Could not resolve to a node with the global id of '{subject}'"), path);
                };
                let classifier = input["classifier"].as_str().map(str::to_string);
                self.s.comments[i].comment.minimized = if field == "minimizeComment" { classifier } else { None };
                Out::Node(Node::Minimized { comment: i, client: input["clientMutationId"].clone() })
            }
            (Node::Mutation, "resolveReviewThread" | "unresolveReviewThread") => {
                let input = args.get("input").cloned().unwrap_or_default();
                let thread = input["threadId"].as_str().unwrap_or_default();
                let Some(i) = self.s.comments.iter().position(|c| c.thread_id == thread) else {
                    return self
                        .not_found(format!("Could not resolve to a node with the global id of '{thread}'"), path);
                };
                self.s.comments[i].resolved = field == "resolveReviewThread";
                Out::Node(Node::Resolved { thread: i, client: input["clientMutationId"].clone() })
            }
            (Node::Minimized { comment, .. }, "minimizedComment" | "unminimizedComment") => {
                Out::Node(Node::Comment(*comment))
            }
            (Node::Resolved { thread, .. }, "thread") => Out::Node(Node::Thread(*thread)),
            (Node::Minimized { client, .. } | Node::Resolved { client, .. }, "clientMutationId") => {
                leaf(client.clone())
            }
            _ => self.unimplemented(node, field),
        }
    }
}
