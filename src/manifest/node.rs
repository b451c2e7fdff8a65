//! A YAML/HCL value tree in which every node remembers where it came from, so that a JSON Pointer
//! into a resource maps back to `file:line:column`. Evaluation sees the same tree as plain JSON.

use std::sync::Arc;

use serde_json::{Map, Value};

/// A 1-based line/column position (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// A source range; `end` is exclusive (just past the last character).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    pub fn new(start: Pos, end: Pos) -> Self {
        Span { start, end }
    }
    pub fn at(line: u32, column: u32) -> Self {
        Span { start: Pos { line, column }, end: Pos { line, column: column + 1 } }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    /// Integers above i64::MAX.
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in source order; keys are unique (duplicates are reported while loading).
    Map(Vec<(String, Node)>),
}

/// One value with its source span, and the span of the mapping key that holds it (if any).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub span: Span,
    pub key_span: Option<Span>,
    pub kind: NodeKind,
    /// The file the spans are in when it is not the document's own: a Terraform module
    /// argument's value is written in the calling module's file.
    pub file: Option<Arc<str>>,
}

impl Node {
    pub fn new(span: Span, kind: NodeKind) -> Self {
        Node { span, key_span: None, kind, file: None }
    }

    /// The file of `focus()`'s span, when it is not the document's own.
    pub fn focus_file(&self) -> Option<&Arc<str>> {
        match (&self.kind, self.key_span, &self.file) {
            (_, _, Some(file)) => Some(file),
            (NodeKind::Map(entries), None, None) => entries.first().and_then(|(_, v)| v.focus_file()),
            _ => None,
        }
    }

    /// Builds a span-less tree from JSON (for objects that have no source, e.g. AdmissionReview
    /// `oldObject`s or test inventories): every node points at `span`.
    pub fn from_json(value: &Value, span: Span) -> Node {
        let kind = match value {
            Value::Null => NodeKind::Null,
            Value::Bool(b) => NodeKind::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => NodeKind::Int(i),
                (None, Some(u)) => NodeKind::UInt(u),
                _ => NodeKind::Float(n.as_f64().unwrap_or(0.0)),
            },
            Value::String(s) => NodeKind::Str(s.clone()),
            Value::Array(items) => NodeKind::Seq(items.iter().map(|v| Node::from_json(v, span)).collect()),
            Value::Object(map) => {
                NodeKind::Map(map.iter().map(|(k, v)| (k.clone(), Node::from_json(v, span))).collect())
            }
        };
        Node::new(span, kind)
    }

    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::UInt(u) => Value::from(*u),
            NodeKind::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    map.insert(k.clone(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    pub fn child(&self, token: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|(k, _)| k == token).map(|(_, v)| v),
            NodeKind::Seq(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.child(key)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Follows an RFC 6901 pointer as far as it exists. Returns the deepest node reached and how
    /// many tokens were consumed, so a pointer to a missing field lands on its nearest parent.
    pub fn walk<'a>(&'a self, pointer: &str) -> (&'a Node, usize) {
        let mut node = self;
        let mut depth = 0;
        for token in pointer_tokens(pointer) {
            match node.child(&token) {
                Some(next) => {
                    node = next;
                    depth += 1;
                }
                None => break,
            }
        }
        (node, depth)
    }

    /// The range a person should look at for this node: a field from its key to the end of its
    /// value (`privileged: true`, `resources: {cpu: 1}`); a block mapping or sequence held by a
    /// key, the key alone (the value starts on another line); a sequence item, its own text.
    pub fn focus(&self) -> Span {
        match (&self.kind, self.key_span) {
            (NodeKind::Map(_) | NodeKind::Seq(_), Some(key)) if self.span.start.line != key.start.line => key,
            (_, Some(key)) if key.start <= self.span.start && self.flow_end() > key.end => {
                Span::new(key.start, self.flow_end())
            }
            (_, Some(key)) => key,
            (NodeKind::Map(entries), None) => entries.first().map(|(_, v)| v.focus()).unwrap_or(self.span),
            _ => self.span,
        }
    }

    /// Just past the end of a value written on one line: a scalar's own end; a flow mapping or
    /// sequence ends after its last entry and the closing bracket (written without a space
    /// before it, as formatters write them).
    fn flow_end(&self) -> Pos {
        let last = match &self.kind {
            NodeKind::Map(entries) => entries.last().map(|(_, v)| v.flow_end()),
            NodeKind::Seq(items) => items.last().map(Node::flow_end),
            _ => None,
        };
        match last {
            Some(end) if end.line == self.span.start.line => {
                Pos { line: end.line, column: end.column + 1 }.max(self.span.end)
            }
            _ => self.span.end,
        }
    }

    /// Number of nodes in the tree (for budgets and for bounding the locate search).
    pub fn count(&self) -> usize {
        1 + match &self.kind {
            NodeKind::Seq(items) => items.iter().map(Node::count).sum(),
            NodeKind::Map(entries) => entries.iter().map(|(_, v)| v.count()).sum(),
            _ => 0,
        }
    }
}

/// Splits an RFC 6901 pointer into unescaped tokens (`/a~1b/0` -> `a/b`, `0`).
pub fn pointer_tokens(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~"))
}

/// Appends one token to a pointer, escaping it.
pub fn pointer_push(pointer: &str, token: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + token.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// `/spec/containers/1/securityContext` -> `spec.containers[1].securityContext`; keys that are not
/// plain identifiers are bracketed: `metadata.annotations["sidecar.istio.io/inject"]`.
pub fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer_tokens(pointer) {
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{token}]"));
        } else if !token.is_empty() && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        } else {
            out.push_str(&format!("[{}]", serde_json::to_string(&token).unwrap_or_default()));
        }
    }
    out
}

/// Parses the dotted paths that policies return in `details.path` (`spec.containers[1].image`,
/// `metadata.annotations["a/b"]`, `.spec.x`) or an RFC 6901 pointer, into a pointer.
pub fn path_to_pointer(path: &str) -> Option<String> {
    let path = path.trim();
    if path.is_empty() {
        return None;
    }
    if path.starts_with('/') {
        return Some(path.to_string());
    }
    let mut pointer = String::new();
    let mut chars = path.trim_start_matches('$').chars().peekable();
    let mut current = String::new();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !current.is_empty() {
                    pointer = pointer_push(&pointer, &current);
                    current.clear();
                }
            }
            '[' => {
                if !current.is_empty() {
                    pointer = pointer_push(&pointer, &current);
                    current.clear();
                }
                let mut inner = String::new();
                let quote = match chars.peek() {
                    Some('"') | Some('\'') => chars.next(),
                    _ => None,
                };
                let mut escaped = false;
                for c in chars.by_ref() {
                    if quote.is_some() && escaped {
                        inner.push(c);
                        escaped = false;
                        continue;
                    }
                    match (quote, c) {
                        (Some(_), '\\') => escaped = true,
                        (Some(q), c) if c == q => {}
                        (_, ']') => break,
                        (_, c) => inner.push(c),
                    }
                }
                pointer = pointer_push(&pointer, &inner);
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        pointer = pointer_push(&pointer, &current);
    }
    Some(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_pointers_round_trip() {
        let p = path_to_pointer("spec.containers[1].securityContext.privileged").unwrap();
        assert_eq!(p, "/spec/containers/1/securityContext/privileged");
        assert_eq!(pointer_to_path(&p), "spec.containers[1].securityContext.privileged");
        let p = path_to_pointer(r#"metadata.annotations["sidecar.istio.io/inject"]"#).unwrap();
        assert_eq!(p, "/metadata/annotations/sidecar.istio.io~1inject");
        assert_eq!(pointer_to_path(&p), r#"metadata.annotations["sidecar.istio.io/inject"]"#);
        assert_eq!(path_to_pointer("/a/b").unwrap(), "/a/b");
        assert_eq!(path_to_pointer(".spec.x").unwrap(), "/spec/x");
    }
}
