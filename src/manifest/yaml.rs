//! YAML read the way kubectl reads it (go-yaml v2 through sigs.k8s.io/yaml): `yes/no/on/off/y/n`
//! are booleans, `0644` is octal, `<<` merges, anchors resolve. Every node keeps its span. Budgets
//! (size, depth, nodes, alias expansion) turn hostile input into a located error, never a crash.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Budget, DuplicateKeyPolicy, MergeKeyPolicy, Options, Spanned};

use super::node::{Node, NodeKind, Span};

mod lines;
mod scalar;

use lines::LineIndex;
use scalar::{as_kubectl_reads, is_legacy_octal, tag_before};

/// Limits applied to every YAML document.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct YamlLimits {
    pub max_depth: usize,
    pub max_nodes: usize,
    pub max_alias_events: usize,
    pub max_documents: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        // Kubernetes objects nest ~15 deep and hold a few thousand nodes; these leave ample room.
        YamlLimits { max_depth: 64, max_nodes: 500_000, max_alias_events: 200_000, max_documents: 10_000 }
    }
}

/// Something to tell the user about a YAML file, at a position.
#[derive(Clone, Debug, PartialEq)]
pub struct YamlIssue {
    pub span: Span,
    pub message: String,
    /// `true` for errors (the document could not be read faithfully), `false` for warnings.
    pub error: bool,
}

/// Where a document's text is in its file, so it can be parsed again when a finding needs
/// positions (the span tree is not kept for every object: it costs as much memory as the object).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DocSource {
    pub start: usize,
    pub end: usize,
    /// 0-based line of the document's first line in the file.
    pub line_offset: u32,
}

/// Parses one document of `text` again, with the same limits; `None` if it no longer parses.
pub fn reparse(text: &str, source: DocSource, limits: &YamlLimits) -> Option<Node> {
    let slice = text.get(source.start..source.end)?;
    on_large_stack(|| parse_document(slice, source.line_offset, limits)).root
}

/// One `---`-separated document of a file.
#[derive(Debug)]
pub struct Document {
    pub source: DocSource,
    /// `None` for an empty document or one that failed to parse (see the issues).
    pub root: Option<Node>,
    pub issues: Vec<YamlIssue>,
    /// The first line of the document's own text (after any `---`).
    pub first_line: u32,
}

/// The text of one document and where it starts in the file.
struct Chunk<'a> {
    text: &'a str,
    /// 0-based line of the chunk's first line in the file.
    line_offset: u32,
}

/// Splits a stream into documents at `---` / `...` lines, so that one broken document does not
/// hide the others and each one's positions can be shifted back to file positions.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 0u32;
    let mut byte = 0;
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        let content = line.trim_end_matches(['\n', '\r']);
        let is_marker =
            |m: &str| content == m || (content.starts_with(m) && content[m.len()..].starts_with([' ', '\t']));
        if is_marker("---") || is_marker("...") {
            if byte > start_byte || line_no as u32 > start_line {
                chunks.push(Chunk { text: &text[start_byte..byte], line_offset: start_line });
            }
            // A `--- value` line starts a document whose content begins on that same line.
            if is_marker("---")
                && content.len() > 3
                && !content[3..].trim().is_empty()
                && !content[3..].trim().starts_with('#')
            {
                start_byte = byte + 3;
                start_line = line_no as u32;
                byte += line.len();
                continue;
            }
            byte += line.len();
            start_byte = byte;
            start_line = line_no as u32 + 1;
            continue;
        }
        byte += line.len();
    }
    if start_byte < text.len() {
        chunks.push(Chunk { text: &text[start_byte..], line_offset: start_line });
    }
    chunks
}

/// Stack for parsing: deep input must be stopped by the depth budget, not by the guard page.
pub const PARSER_STACK: usize = 64 * 1024 * 1024;

thread_local! {
    static ON_LARGE_STACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` on a thread with `PARSER_STACK` bytes of stack, unless this thread already has one.
pub fn on_large_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if ON_LARGE_STACK.with(|c| c.get()) {
        return f();
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(PARSER_STACK)
            .spawn_scoped(s, || {
                mark_large_stack();
                f()
            })
            .expect("spawn parser thread")
            .join()
            .expect("parser thread panicked")
    })
}

/// Declares that the current thread was spawned with at least `PARSER_STACK` bytes of stack.
pub fn mark_large_stack() {
    ON_LARGE_STACK.with(|c| c.set(true));
}

/// Parses every document of a YAML stream.
pub fn parse_stream(text: &str, limits: &YamlLimits) -> Vec<Document> {
    on_large_stack(|| parse_stream_here(text, limits))
}

fn parse_stream_here(text: &str, limits: &YamlLimits) -> Vec<Document> {
    let chunks = split_documents(text);
    let base = text.as_ptr() as usize;
    let mut docs = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        if i >= limits.max_documents {
            docs.push(Document {
                root: None,
                issues: vec![YamlIssue {
                    span: Span::at(chunk.line_offset + 1, 1),
                    message: format!(
                        "more than {} documents in one file; the rest were not read",
                        limits.max_documents
                    ),
                    error: true,
                }],
                first_line: chunk.line_offset + 1,
                source: DocSource::default(),
            });
            break;
        }
        if chunk.text.trim().is_empty()
            || chunk.text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        let start = chunk.text.as_ptr() as usize - base;
        let mut doc = parse_document(chunk.text, chunk.line_offset, limits);
        doc.source = DocSource { start, end: start + chunk.text.len(), line_offset: chunk.line_offset };
        docs.push(doc);
    }
    docs
}

fn options(limits: &YamlLimits) -> Options {
    let mut budget = Budget::default();
    budget.max_depth = limits.max_depth;
    budget.max_nodes = limits.max_nodes;
    budget.max_documents = 2;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    // `<<` is resolved here (see `merge_into`), in go-yaml v2's order, not serde-saphyr's.
    options.merge_keys = MergeKeyPolicy::AsOrdinary;
    options.legacy_octal_numbers = true;
    options.strict_booleans = false;
    options.with_snippet = false;
    options.alias_limits.max_total_replayed_events = limits.max_alias_events;
    options
}

fn parse_document(text: &str, line_offset: u32, limits: &YamlLimits) -> Document {
    let index = LineIndex::new(text, line_offset);
    let first_line = text
        .lines()
        .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|p| p as u32 + line_offset + 1)
        .unwrap_or(line_offset + 1);
    let parsed: Result<Option<Spanned<Raw>>, serde_saphyr::Error> =
        serde_saphyr::from_str_with_options(text, options(limits));
    match parsed {
        Ok(Some(raw)) => {
            let mut issues = Vec::new();
            let root = convert(raw, &index, text, &mut issues);
            Document { root: Some(root), issues, first_line, source: DocSource::default() }
        }
        Ok(None) => Document { root: None, issues: Vec::new(), first_line, source: DocSource::default() },
        Err(err) => {
            let span = err.location().map(|loc| index.span_of(&loc, text)).unwrap_or_else(|| Span::at(first_line, 1));
            let message = describe_error(&err);
            Document {
                root: None,
                issues: vec![YamlIssue { span, message, error: true }],
                first_line,
                source: DocSource::default(),
            }
        }
    }
}

/// serde-saphyr's messages, trimmed of their location suffix (we report the location ourselves).
fn describe_error(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let text = text.lines().next().unwrap_or("").trim().to_string();
    let text = match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    format!("YAML could not be read: {text}")
}

/// What serde-saphyr hands us: values in source order, duplicates included.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Raw::Int(i),
            Err(_) => Raw::UInt(v),
        })
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Float(v as f64))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        Ok(Raw::Float(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Raw>>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

const YAML12_BOOLS: [&str; 6] = ["true", "True", "TRUE", "false", "False", "FALSE"];

/// Turns the raw tree into located nodes, reporting duplicate keys and scalars whose meaning
/// depends on the YAML version.
fn convert(raw: Spanned<Raw>, index: &LineIndex, text: &str, issues: &mut Vec<YamlIssue>) -> Node {
    convert_at(raw, index, text, issues, None)
}

/// Where an alias is used: the key that holds it (for an item of a list, the alias itself) and
/// the alias.
#[derive(Clone, Copy)]
struct Site {
    key: Span,
    alias: Span,
}

/// The alias a node was repeated from, if it was (serde-saphyr replays the anchor's events: the
/// node is referenced at the alias and defined at the anchor).
fn alias_of(raw: &Spanned<Raw>, index: &LineIndex, text: &str) -> Option<Span> {
    let (r, d) = (&raw.referenced, &raw.defined);
    (r.line() != d.line() || r.column() != d.column()).then(|| index.span_of(r, text))
}

/// `site`: the node is part of what an alias repeats. It is reported at the alias (its key), not at
/// the anchor: the anchor's text is every copy's, and editing it there changes them all, while
/// the alias is what brings this copy in. Issues about the text stay at the anchor (once).
fn convert_at(
    raw: Spanned<Raw>,
    index: &LineIndex,
    text: &str,
    issues: &mut Vec<YamlIssue>,
    site: Option<Site>,
) -> Node {
    let loc = raw.defined;
    let span = index.span_of(&loc, text);
    let placed = site.map_or(span, |s| s.alias);
    let value = match index.slice(&loc, text) {
        Some(src) => as_kubectl_reads(raw.value, src, tag_before(&loc, text)),
        None => raw.value,
    };
    let kind = match value {
        Raw::Null => NodeKind::Null,
        Raw::Bool(b) => {
            if let Some(src) = index.slice(&loc, text) {
                if !YAML12_BOOLS.contains(&src) && !src.starts_with(['"', '\'', '!']) {
                    issues.push(YamlIssue {
                        span,
                        message: format!(
                            "`{src}` is the boolean {b} for kubectl (YAML 1.1) but the string \"{src}\" under YAML 1.2; \
                             kustomize reads it as a string. Write `{b}` or quote it"
                        ),
                        error: false,
                    });
                }
            }
            NodeKind::Bool(b)
        }
        // go-yaml v2 as kubectl 1.32 ships it reads `0o644` (and `0O644`) as 420 too, like YAML 1.2.
        Raw::Int(i) => match index.slice(&loc, text) {
            Some(src) if is_legacy_octal(src) => {
                issues.push(YamlIssue {
                    span,
                    message: format!(
                        "`{src}` is the octal number {i} for kubectl (YAML 1.1) but the decimal {} under YAML 1.2; \
                         kustomize may read it differently. Write `0o{}` only if every tool reads YAML 1.2, or use the decimal {i}",
                        src.trim_start_matches(['+', '-']).trim_start_matches('0'),
                        src.trim_start_matches(['+', '-']).trim_start_matches('0')
                    ),
                    error: false,
                });
                NodeKind::Int(i)
            }
            _ => NodeKind::Int(i),
        },
        Raw::UInt(u) => NodeKind::UInt(u),
        Raw::Float(f) => {
            if !f.is_finite() {
                issues.push(YamlIssue {
                    span,
                    message: format!(
                        "`{f}` cannot be a Kubernetes value: kubectl refuses the file (JSON has no infinity or NaN)"
                    ),
                    error: true,
                });
            }
            NodeKind::Float(f)
        }
        Raw::Str(s) => NodeKind::Str(s),
        Raw::Seq(items) => NodeKind::Seq(
            items
                .into_iter()
                .map(|i| {
                    let at = site.or_else(|| alias_of(&i, index, text).map(|alias| Site { key: alias, alias }));
                    convert_at(i, index, text, issues, at)
                })
                .collect(),
        ),
        Raw::Map(entries) => {
            let mut map = MapBuilder::default();
            for (key, value) in entries {
                let key_span = index.span_of(&key.defined, text);
                let placed_key = site.map_or(key_span, |s| s.key);
                let at = site.or_else(|| alias_of(&value, index, text).map(|alias| Site { key: placed_key, alias }));
                if is_merge_key(&key, index, text) {
                    let merged = convert_at(value, index, text, issues, at);
                    map.merge(merged, key_span, issues);
                    continue;
                }
                let key_value = match index.slice(&key.defined, text) {
                    Some(src) => as_kubectl_reads(key.value, src, tag_before(&key.defined, text)),
                    None => key.value,
                };
                let key_text = match key_value {
                    Raw::Str(s) => s,
                    Raw::Bool(b) => b.to_string(),
                    Raw::Int(i) => i.to_string(),
                    Raw::UInt(u) => u.to_string(),
                    Raw::Float(f) => f.to_string(),
                    Raw::Null | Raw::Seq(_) | Raw::Map(_) => {
                        issues.push(YamlIssue {
                            span: key_span,
                            message: "a mapping key that is null, a mapping or a sequence cannot be a Kubernetes field; kubectl refuses the file"
                                .into(),
                            error: true,
                        });
                        continue;
                    }
                };
                let mut node = convert_at(value, index, text, issues, at);
                node.key_span = Some(placed_key);
                map.set_explicit(key_text, node, key_span, issues);
            }
            NodeKind::Map(map.entries)
        }
    };
    Node::new(placed, kind)
}

/// `<<` written plain (or tagged `!!merge`) is a merge key; a quoted `"<<"` is an ordinary key, as in go-yaml v2.
fn is_merge_key(key: &Spanned<Raw>, index: &LineIndex, text: &str) -> bool {
    if !matches!(&key.value, Raw::Str(s) if s == "<<") {
        return false;
    }
    match index.slice(&key.defined, text) {
        Some(src) => src == "<<" || src.starts_with("!!merge") || src.starts_with("!<tag:yaml.org,2002:merge>"),
        None => true,
    }
}

/// A mapping built in document order the way go-yaml v2 decodes one: every key, explicit or
/// merged, overwrites what an earlier entry set, so `privileged: false` followed by
/// `<<: {privileged: true}` reads `true`; in a list of merges the earlier mapping wins.
#[derive(Default)]
struct MapBuilder {
    entries: Vec<(String, Node)>,
    slots: std::collections::HashMap<String, usize>,
    /// Where each key was first written explicitly in this mapping (for duplicate reports).
    explicit: std::collections::HashMap<String, Span>,
}

impl MapBuilder {
    fn set(&mut self, key: String, node: Node) {
        match self.slots.get(&key) {
            Some(&i) => self.entries[i].1 = node,
            None => {
                self.slots.insert(key.clone(), self.entries.len());
                self.entries.push((key, node));
            }
        }
    }

    fn set_explicit(&mut self, key: String, node: Node, key_span: Span, issues: &mut Vec<YamlIssue>) {
        match self.explicit.get(&key) {
            Some(first) => issues.push(YamlIssue {
                span: key_span,
                message: format!(
                    "duplicate key `{key}` (first at line {}): the cluster and other tools may keep different copies",
                    first.start.line
                ),
                error: true,
            }),
            None => {
                self.explicit.insert(key.clone(), key_span);
            }
        }
        self.set(key, node); // last wins, as kubectl and the API server's JSON decoding do
    }

    fn merge(&mut self, merged: Node, key_span: Span, issues: &mut Vec<YamlIssue>) {
        let refuse = |span: Span, issues: &mut Vec<YamlIssue>| {
            issues.push(YamlIssue {
                span,
                message: "a merge key (`<<`) takes a mapping or a list of mappings; kubectl refuses the file".into(),
                error: true,
            })
        };
        match merged.kind {
            NodeKind::Map(entries) => entries.into_iter().for_each(|(k, v)| self.set(k, v)),
            NodeKind::Seq(items) => {
                // go-yaml v2 applies the list from the end: the first mapping listed wins.
                for item in items.into_iter().rev() {
                    match item.kind {
                        NodeKind::Map(entries) => entries.into_iter().for_each(|(k, v)| self.set(k, v)),
                        _ => refuse(item.span, issues),
                    }
                }
            }
            _ => refuse(key_span, issues),
        }
    }
}
