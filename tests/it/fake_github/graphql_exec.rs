//! Runs validated GraphQL against the fake's state: batched blob reads (`object(expression: "SHA:path")`),
//! review threads, `minimizeComment` and `resolveReviewThread`. A field the schema has but the fake does not
//! implement answers null and is recorded as a problem, so a test never passes on data the fake made up.

use axum::http::HeaderMap;
use graphql_parser::query::{self as q, Definition, OperationDefinition, Selection, SelectionSet, TypeCondition};
use serde_json::{json, Map, Value};

use super::auth;
use super::diff::is_binary;
use super::graphql::{self, Doc};
use super::server::Reply;
use super::state::State;

#[derive(Clone)]
enum Node {
    Query,
    Mutation,
    Repository(String),
    Blob { sha: String },
    Commit { repo: String, sha: String },
    Ref { repo: String, name: String },
    PullRequest { repo: String, number: u64 },
    Threads { comments: Vec<usize>, has_next: bool, end: usize },
    Thread(usize),
    Comments(Vec<usize>),
    Comment(usize),
    Actor { login: String, kind: &'static str },
    PageInfo { has_next: bool, end_cursor: Option<String> },
    Minimized { comment: usize, client: Value },
    Resolved { thread: usize, client: Value },
    RateLimit,
}

enum Out {
    Leaf(Value),
    Node(Node),
    List(Vec<Node>),
}

fn typename(node: &Node) -> &'static str {
    match node {
        Node::Query => "Query",
        Node::Mutation => "Mutation",
        Node::Repository(_) => "Repository",
        Node::Blob { .. } => "Blob",
        Node::Commit { .. } => "Commit",
        Node::Ref { .. } => "Ref",
        Node::PullRequest { .. } => "PullRequest",
        Node::Threads { .. } => "PullRequestReviewThreadConnection",
        Node::Thread(_) => "PullRequestReviewThread",
        Node::Comments(_) => "PullRequestReviewCommentConnection",
        Node::Comment(_) => "PullRequestReviewComment",
        Node::Actor { kind, .. } => kind,
        Node::PageInfo { .. } => "PageInfo",
        Node::Minimized { .. } => "MinimizeCommentPayload",
        Node::Resolved { .. } => "ResolveReviewThreadPayload",
        Node::RateLimit => "RateLimit",
    }
}

fn error(message: String, kind: &str) -> Value {
    json!({"type": kind, "message": message, "locations": [], "path": []})
}

pub(crate) fn handle(s: &mut State, headers: &HeaderMap, body: &[u8]) -> Reply {
    let installation = match auth::check_token(s, headers, None, "POST /graphql") {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            s.problem(format!("POST /graphql: body is not JSON: {e}"));
            return Reply::error(400, "Problems parsing JSON", "https://docs.github.com/graphql");
        }
    };
    let Some(query) = request["query"].as_str() else {
        s.problem("POST /graphql: no `query` string in the body");
        return Reply::ok(
            json!({"errors": [{"message": "A query attribute must be specified and must be a string."}]}),
        );
    };
    let doc: Doc = match q::parse_query::<&str>(query) {
        Ok(doc) => doc,
        Err(e) => {
            s.problem(format!("POST /graphql: parse error: {e}"));
            return Reply::ok(json!({"errors": [{"message": format!("Parse error: {e}")}]}));
        }
    };
    let mut errors = graphql::validate(&doc);
    let operations: Vec<&OperationDefinition<&str>> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Operation(op) => Some(op),
            Definition::Fragment(_) => None,
        })
        .collect();
    let wanted = request["operationName"].as_str();
    let op = operations.iter().find(|op| wanted.is_none_or(|w| op_name(op) == Some(w)));
    let Some(op) = op.filter(|_| operations.len() == 1 || wanted.is_some()) else {
        errors.push("An operation name is required when the document has several operations".to_string());
        return refuse(s, errors);
    };
    let (root, defs, set) = match op {
        OperationDefinition::Query(o) => (Node::Query, &o.variable_definitions[..], &o.selection_set),
        OperationDefinition::Mutation(o) => (Node::Mutation, &o.variable_definitions[..], &o.selection_set),
        OperationDefinition::SelectionSet(set) => (Node::Query, &[][..], set),
        OperationDefinition::Subscription(o) => (Node::Query, &o.variable_definitions[..], &o.selection_set),
    };
    let given = request["variables"].as_object().cloned().unwrap_or_default();
    let mut vars = Map::new();
    for def in defs {
        match (given.get(def.name), &def.default_value) {
            (Some(v), _) => drop(vars.insert(def.name.to_string(), v.clone())),
            (None, Some(default)) => drop(vars.insert(def.name.to_string(), literal(default, &Map::new()))),
            (None, None) if matches!(def.var_type, q::Type::NonNullType(_)) => {
                errors.push(format!("Variable ${} of type {} was provided invalid value", def.name, def.var_type))
            }
            (None, None) => {}
        }
    }
    if !errors.is_empty() {
        return refuse(s, errors);
    }
    let mut exec = Exec { s, installation, vars, doc: &doc, errors: Vec::new() };
    let data = exec.select(&root, set, &[]);
    let errors = std::mem::take(&mut exec.errors);
    let mut reply = json!({"data": data});
    if !errors.is_empty() {
        reply["errors"] = Value::Array(errors);
    }
    Reply::ok(reply)
}

fn op_name<'a>(op: &OperationDefinition<'a, &'a str>) -> Option<&'a str> {
    match op {
        OperationDefinition::Query(o) => o.name,
        OperationDefinition::Mutation(o) => o.name,
        OperationDefinition::Subscription(o) => o.name,
        OperationDefinition::SelectionSet(_) => None,
    }
}

fn refuse(s: &mut State, errors: Vec<String>) -> Reply {
    s.problem(format!("POST /graphql: refused by GitHub's schema: {}", errors.join("; ")));
    let errors: Vec<Value> =
        errors.into_iter().map(|m| json!({"message": m, "extensions": {"code": "undefinedField"}})).collect();
    Reply::ok(json!({"errors": errors}))
}

fn literal<'a>(value: &q::Value<'a, &'a str>, vars: &Map<String, Value>) -> Value {
    match value {
        q::Value::Variable(name) => vars.get(*name).cloned().unwrap_or(Value::Null),
        q::Value::Int(n) => json!(n.as_i64()),
        q::Value::Float(f) => json!(f),
        q::Value::String(text) => json!(text),
        q::Value::Boolean(b) => json!(b),
        q::Value::Null => Value::Null,
        q::Value::Enum(e) => json!(e),
        q::Value::List(items) => Value::Array(items.iter().map(|i| literal(i, vars)).collect()),
        q::Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.to_string(), literal(v, vars))).collect())
        }
    }
}

struct Exec<'s, 'd, 'a> {
    s: &'s mut State,
    installation: u64,
    vars: Map<String, Value>,
    doc: &'d Doc<'a>,
    errors: Vec<Value>,
}

impl<'a> Exec<'_, '_, 'a> {
    fn select(&mut self, node: &Node, set: &SelectionSet<'a, &'a str>, path: &[Value]) -> Value {
        let mut out = Map::new();
        self.select_into(node, set, path, &mut out);
        Value::Object(out)
    }

    fn select_into(
        &mut self,
        node: &Node,
        set: &SelectionSet<'a, &'a str>,
        path: &[Value],
        out: &mut Map<String, Value>,
    ) {
        let doc = self.doc;
        for item in &set.items {
            match item {
                Selection::Field(f) => {
                    let key = f.alias.unwrap_or(f.name).to_string();
                    let mut here = path.to_vec();
                    here.push(json!(key));
                    let value = if f.name == "__typename" {
                        json!(typename(node))
                    } else {
                        let args: Map<String, Value> =
                            f.arguments.iter().map(|(k, v)| (k.to_string(), literal(v, &self.vars))).collect();
                        match self.resolve(node, f.name, &args, &here) {
                            Out::Leaf(v) => v,
                            Out::Node(n) => self.select(&n, &f.selection_set, &here),
                            Out::List(nodes) => Value::Array(
                                nodes
                                    .iter()
                                    .enumerate()
                                    .map(|(i, n)| {
                                        let mut at = here.clone();
                                        at.push(json!(i));
                                        self.select(n, &f.selection_set, &at)
                                    })
                                    .collect(),
                            ),
                        }
                    };
                    out.insert(key, value);
                }
                Selection::InlineFragment(frag) => {
                    let fits = match &frag.type_condition {
                        Some(TypeCondition::On(cond)) => graphql::schema().fits(typename(node), cond),
                        None => true,
                    };
                    if fits {
                        self.select_into(node, &frag.selection_set, path, out);
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let found = doc.definitions.iter().find_map(|d| match d {
                        Definition::Fragment(f) if f.name == spread.fragment_name => Some(f),
                        _ => None,
                    });
                    if let Some(f) = found {
                        let TypeCondition::On(cond) = &f.type_condition;
                        if graphql::schema().fits(typename(node), cond) {
                            self.select_into(node, &f.selection_set, path, out);
                        }
                    }
                }
            }
        }
    }

    fn not_found(&mut self, message: String, path: &[Value]) -> Out {
        let mut e = error(message, "NOT_FOUND");
        e["path"] = json!(path);
        self.errors.push(e);
        Out::Leaf(Value::Null)
    }

    fn resolve(&mut self, node: &Node, field: &str, args: &Map<String, Value>, path: &[Value]) -> Out {
        let s = &mut *self.s;
        let arg = |name: &str| args.get(name).cloned().unwrap_or(Value::Null);
        let leaf = |v: Value| Out::Leaf(v);
        match (node, field) {
            (Node::Query, "repository") => {
                let name = format!(
                    "{}/{}",
                    arg("owner").as_str().unwrap_or_default(),
                    arg("name").as_str().unwrap_or_default()
                );
                match s.repos.get(&name) {
                    Some(r) if r.installation_id == self.installation => Out::Node(Node::Repository(name)),
                    _ => self.not_found(format!("Could not resolve to a Repository with the name '{name}'."), path),
                }
            }
            (Node::Query, "rateLimit") => Out::Node(Node::RateLimit),
            (Node::RateLimit, "limit") => leaf(json!(5000)),
            (Node::RateLimit, "remaining") => leaf(json!(4999)),
            (Node::RateLimit, "used") | (Node::RateLimit, "cost") => leaf(json!(1)),
            (Node::RateLimit, "nodeCount") => leaf(json!(1)),
            (Node::RateLimit, "resetAt") => {
                leaf(json!((chrono::Utc::now() + chrono::Duration::hours(1))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            }
            (Node::Repository(r), "name") => leaf(json!(r.split('/').nth(1))),
            (Node::Repository(r), "nameWithOwner") => leaf(json!(r)),
            (Node::Repository(r), "id") => leaf(json!(format!("R_{}", s.repos[r].id))),
            (Node::Repository(r), "databaseId") => leaf(json!(s.repos[r].id)),
            (Node::Repository(_), "isPrivate") => leaf(json!(false)),
            (Node::Repository(r), "url") => leaf(json!(format!("https://github.com/{r}"))),
            (Node::Repository(r), "owner") => Out::Node(Node::Actor {
                login: r.split('/').next().unwrap_or_default().to_string(),
                kind: "Organization",
            }),
            (Node::Repository(r), "defaultBranchRef") => {
                Out::Node(Node::Ref { repo: r.clone(), name: s.repos[r].default_branch.clone() })
            }
            (Node::Repository(r), "object") => {
                let expression = arg("expression").as_str().or(arg("oid").as_str()).unwrap_or_default().to_string();
                let (rev, file) = match expression.split_once(':') {
                    Some((rev, file)) => (rev.to_string(), Some(file.to_string())),
                    None => (expression.clone(), None),
                };
                let Some(commit) = s.resolve(r, &rev) else { return leaf(Value::Null) };
                match file {
                    None => Out::Node(Node::Commit { repo: r.clone(), sha: commit.sha.clone() }),
                    Some(file) => match commit.files.get(&file) {
                        Some(blob) => Out::Node(Node::Blob { sha: blob.clone() }),
                        None => leaf(Value::Null), // GitHub: null for a missing path (trees are not modelled)
                    },
                }
            }
            (Node::Repository(r), "pullRequest") => {
                let number = arg("number").as_u64().unwrap_or_default();
                if s.pulls.contains_key(&(r.clone(), number)) {
                    Out::Node(Node::PullRequest { repo: r.clone(), number })
                } else {
                    self.not_found(format!("Could not resolve to a PullRequest with the number of {number}."), path)
                }
            }
            (Node::Blob { sha }, _) => {
                let bytes = s.blob(sha).unwrap_or_default();
                let binary = is_binary(&bytes);
                let truncated = !binary && bytes.len() > s.truncate_above;
                match field {
                    "text" if binary => leaf(Value::Null),
                    "text" => {
                        let mut end = bytes.len().min(s.truncate_above);
                        while end < bytes.len() && std::str::from_utf8(&bytes[..end]).is_err() {
                            end -= 1;
                        }
                        leaf(json!(String::from_utf8_lossy(&bytes[..end])))
                    }
                    "byteSize" => leaf(json!(bytes.len())),
                    "isTruncated" => leaf(json!(truncated)),
                    "isBinary" => leaf(json!(binary)),
                    "oid" => leaf(json!(sha)),
                    "abbreviatedOid" => leaf(json!(&sha[..7])),
                    "id" => leaf(json!(format!("B_{sha}"))),
                    _ => self.unimplemented(node, field),
                }
            }
            (Node::Commit { sha, .. }, "oid") => leaf(json!(sha)),
            (Node::Commit { sha, .. }, "id") => leaf(json!(format!("C_{sha}"))),
            (Node::Commit { sha, .. }, "abbreviatedOid") => leaf(json!(&sha[..7])),
            (Node::Commit { .. }, "message") => leaf(json!("fake commit")),
            (Node::Ref { name, .. }, "name") => leaf(json!(name)),
            (Node::Ref { .. }, "prefix") => leaf(json!("refs/heads/")),
            (Node::Ref { repo, name }, "target") => {
                let sha = s.repos[repo].branches.get(name).cloned().unwrap_or_default();
                Out::Node(Node::Commit { repo: repo.clone(), sha })
            }
            (Node::PullRequest { repo, number }, _) => self.pull_field(repo.clone(), *number, field, args),
            _ => self.thread_field(node, field, args, path),
        }
    }

    fn unimplemented(&mut self, node: &Node, field: &str) -> Out {
        self.s.problem(format!("POST /graphql: the fake does not implement {}.{field}", typename(node)));
        Out::Leaf(Value::Null)
    }
}

mod threads;
