//! Loading Kubernetes manifests: files and folders -> located resources. Problems with the input
//! (broken YAML, budgets exceeded, Helm templates) become findings here; only an unreadable path
//! given on the command line is an error.
//!
//! Namespace rule: `metadata.namespace`, else the `--namespace` default, else empty. An empty
//! namespace is treated the way Gatekeeper treats a cluster-scoped object: `namespaces` and
//! `excludedNamespaces` in a constraint's match do not apply to it.

pub mod kustomize;
pub mod node;
pub mod terraform;
pub mod yaml;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::findings::{Finding, Region, ResourceRef, Severity};
pub use node::{Node, NodeKind, Pos, Span};
use yaml::YamlLimits;

/// Policy names for findings about the input itself.
pub const YAML_POLICY: &str = "guardrail/yaml";
pub const NOTE_POLICY: &str = "guardrail/note";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: no such file or directory")]
    Missing(String),
    /// A kustomization cannot be rendered at all (no renderer installed).
    #[error("{0}")]
    Kustomize(String),
}

/// Places pointers into an object that was rendered from other files (a kustomize overlay): each
/// field at the file and line that set it.
pub trait Placer: Send + Sync + std::fmt::Debug {
    /// The file, region and the part of `pointer` that exists; `message` is the finding's (an image
    /// is placed at the `images:` line of the part the message is about).
    fn place(&self, pointer: &str, message: &str) -> (Arc<str>, Region, String);
    /// The object's first line.
    fn head(&self) -> (Arc<str>, Region);
    /// The overlay that rendered the object.
    fn overlay(&self) -> Option<&str>;
    /// Fields the rendering set on the whole object (name prefix, namespace, labels), each with its
    /// value before (`None`: absent). They can be why a constraint applies at all.
    fn originals(&self) -> &[(String, Option<Value>)] {
        &[]
    }
    /// The fields at or under `pointer` that an overlay changed, each with its value before.
    fn changed_under(&self, _pointer: &str) -> Vec<(String, Value)> {
        Vec::new()
    }
}

/// Where a Kubernetes object's text lives: a file, a document of it, and a pointer prefix inside
/// that document (`/items/3` for a `kind: List` item, `/spec/template` for a Pod implied by a
/// Deployment).
#[derive(Clone, Debug)]
pub struct Origin {
    pub file: Arc<str>,
    pub document: Arc<DocTree>,
    pub prefix: String,
}

/// A document's span tree, parsed again from the file's text the first time a finding in it
/// needs a position, then shared by every object of that document.
#[derive(Debug)]
pub struct DocTree {
    text: Option<Arc<str>>,
    source: yaml::DocSource,
    limits: YamlLimits,
    /// Built on first use; dropped by `release` when the text can build it again.
    node: std::sync::Mutex<Option<Arc<Option<Node>>>>,
    /// Set for rendered objects: positions come from their sources, not from this document.
    placer: Option<Arc<dyn Placer>>,
}

impl DocTree {
    pub fn lazy(text: Arc<str>, source: yaml::DocSource, limits: YamlLimits) -> Self {
        DocTree { text: Some(text), source, limits, node: Default::default(), placer: None }
    }

    /// A rendered object's document: `placer` says where each field came from.
    pub fn rendered(placer: Arc<dyn Placer>) -> Self {
        DocTree {
            text: None,
            source: Default::default(),
            limits: Default::default(),
            node: std::sync::Mutex::new(Some(Arc::new(None))),
            placer: Some(placer),
        }
    }

    /// A tree that is already built (objects without a file, e.g. a test suite's AdmissionReview).
    pub fn ready(node: Node) -> Self {
        DocTree {
            text: None,
            source: Default::default(),
            limits: Default::default(),
            node: std::sync::Mutex::new(Some(Arc::new(Some(node)))),
            placer: None,
        }
    }

    pub fn node(&self) -> Arc<Option<Node>> {
        let mut slot = self.node.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| {
            Arc::new(self.text.as_deref().and_then(|t| yaml::reparse(t, self.source, &self.limits)))
        })
        .clone()
    }

    /// Drops the tree once the findings of the document's objects have their positions (a later
    /// position parses the text again): a scan then holds the trees of the documents in flight,
    /// not of every document.
    pub fn release(&self) {
        if self.text.is_some() {
            *self.node.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

impl Origin {
    /// The file, region and found pointer for a pointer into the object (see `locate`); for a
    /// rendered object, the source that set the field. `message` is the finding's.
    pub fn place(&self, pointer: &str, message: &str) -> (Arc<str>, Region, String) {
        match &self.document.placer {
            Some(p) => p.place(&format!("{}{}", self.prefix, pointer), message),
            None => self.locate_in_file(pointer),
        }
    }

    /// The file and first line of the object (see `head`).
    pub fn place_head(&self) -> (Arc<str>, Region) {
        match &self.document.placer {
            Some(p) if self.prefix.is_empty() => p.head(),
            Some(p) => {
                let (file, region, _) = p.place(&self.prefix, "");
                (file, region)
            }
            None => (self.file.clone(), self.head()),
        }
    }

    /// For a rendered object (not a part of one), the fields its rendering set on it as a whole,
    /// with their values before (see `Placer::originals`).
    pub fn originals(&self) -> &[(String, Option<Value>)] {
        match &self.document.placer {
            Some(p) if self.prefix.is_empty() => p.originals(),
            _ => &[],
        }
    }

    /// The fields at or under `pointer` (into the object) that an overlay changed, with their values
    /// before, as pointers into the object.
    pub fn changed_under(&self, pointer: &str) -> Vec<(String, Value)> {
        let Some(p) = &self.document.placer else { return Vec::new() };
        p.changed_under(&format!("{}{}", self.prefix, pointer))
            .into_iter()
            .filter_map(|(full, before)| full.strip_prefix(&self.prefix).map(|rel| (rel.to_string(), before)))
            .collect()
    }

    /// The overlay that rendered the object, if it was rendered.
    pub fn overlay(&self) -> Option<&str> {
        self.document.placer.as_deref().and_then(|p| p.overlay())
    }

    /// The region for a pointer into the object: the field itself if it exists, else its nearest
    /// existing parent. Returns the region and the document pointer actually found.
    pub fn locate(&self, pointer: &str) -> (Region, String) {
        let (_, region, found) = self.locate_in_file(pointer);
        (region, found)
    }

    /// `locate`, with the file the field is written in: the object's, or for a value written
    /// elsewhere (a Terraform module argument) that file.
    pub fn locate_in_file(&self, pointer: &str) -> (Arc<str>, Region, String) {
        let full = format!("{}{}", self.prefix, pointer);
        let tree = self.document.node();
        let Some(root) = tree.as_ref() else { return (self.file.clone(), Region::point(1, 1), String::new()) };
        let (node, depth) = root.walk(&full);
        let found: String =
            node::pointer_tokens(&full).take(depth).fold(String::new(), |p, t| node::pointer_push(&p, &t));
        let file = node.focus_file().cloned().unwrap_or_else(|| self.file.clone());
        (file, region(node.focus()), found)
    }

    /// The object's first field (its `apiVersion`/`kind` usually): in block YAML where the object
    /// starts; in JSON or a flow mapping the first key, not the `{` before it, so that a finding
    /// about the whole object is at the same field whatever the style.
    pub fn head(&self) -> Region {
        let tree = self.document.node();
        let Some(root) = tree.as_ref() else { return Region::point(1, 1) };
        let (node, _) = root.walk(&self.prefix);
        let start = match &node.kind {
            NodeKind::Map(entries) => {
                entries.first().and_then(|(_, v)| v.key_span).map_or(node.span.start, |k| k.start)
            }
            _ => node.span.start,
        };
        Region { line: start.line, column: start.column, end_line: start.line, end_column: start.column + 1 }
    }
}

pub fn region(span: Span) -> Region {
    Region { line: span.start.line, column: span.start.column, end_line: span.end.line, end_column: span.end.column }
}

/// One Kubernetes object ready for evaluation.
#[derive(Clone, Debug)]
pub struct Resource {
    pub object: Value,
    /// The object as the user wrote it (for an implied Pod, the Deployment that implies it).
    pub reported: ResourceRef,
    pub origin: Origin,
    /// Set for objects produced by expansion: the ExpansionTemplate's name and its enforcement override.
    pub implied_by: Option<Implied>,
}

#[derive(Clone, Debug)]
pub struct Implied {
    pub template: String,
    pub enforcement_action: Option<String>,
}

impl Resource {
    pub fn api_version(&self) -> &str {
        self.object.get("apiVersion").and_then(Value::as_str).unwrap_or("")
    }
    pub fn kind(&self) -> &str {
        self.object.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    pub fn name(&self) -> &str {
        meta_str(&self.object, "name")
    }
    pub fn namespace(&self) -> &str {
        meta_str(&self.object, "namespace")
    }
    /// `(group, version)` from `apiVersion` (`apps/v1` -> `("apps", "v1")`, `v1` -> `("", "v1")`).
    pub fn group_version(&self) -> (&str, &str) {
        split_api_version(self.api_version())
    }
}

pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

pub fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or("")
}

pub fn resource_ref(object: &Value) -> ResourceRef {
    ResourceRef {
        api_version: object.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string(),
        kind: object.get("kind").and_then(Value::as_str).unwrap_or("").to_string(),
        namespace: meta_str(object, "namespace").to_string(),
        name: meta_str(object, "name").to_string(),
    }
}

/// Options for loading.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LoadOptions {
    /// Namespace for namespaced objects that do not set one.
    pub default_namespace: Option<String>,
    pub limits: Limits,
    /// Where kustomize is and how it may run.
    pub kustomize: kustomize::RenderOptions,
}

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub yaml: YamlLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_file_bytes: 8 * 1024 * 1024, yaml: YamlLimits::default() }
    }
}

/// Everything read from the inputs.
#[derive(Debug, Default)]
pub struct Loaded {
    pub resources: Vec<Resource>,
    pub findings: Vec<Finding>,
    /// File name -> text, for showing source lines.
    pub sources: Vec<(String, Arc<str>)>,
}

/// A file to read: the name to report and where it is.
#[derive(Clone, Debug)]
pub struct InputFile {
    pub display: String,
    pub path: PathBuf,
}

/// Expands command-line paths into manifest files (folders recursively, in a stable order).
/// Hidden folders are skipped; a Helm chart's `templates/` is skipped with a note.
pub fn discover(paths: &[PathBuf], notes: &mut Vec<Finding>) -> Result<Vec<InputFile>, LoadError> {
    let mut files = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            files.push(InputFile { display: "-".into(), path: path.clone() });
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|_| LoadError::Missing(path.display().to_string()))?;
        if meta.is_dir() {
            walk(path, &mut files, notes)?;
        } else {
            files.push(InputFile { display: display_path(path), path: path.clone() });
        }
    }
    Ok(files)
}

pub(crate) fn display_path(path: &Path) -> String {
    let s = path.to_string_lossy().replace('\\', "/");
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

fn is_manifest_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json") || terraform::is_terraform_name(name)
}

fn walk(dir: &Path, files: &mut Vec<InputFile>, notes: &mut Vec<Finding>) -> Result<(), LoadError> {
    let io = |e| LoadError::Io { path: dir.display().to_string(), source: e };
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    let is_chart = entries.iter().any(|e| e.file_name() == "Chart.yaml");
    for entry in entries {
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        let Ok(mut file_type) = entry.file_type() else { continue };
        if name.starts_with('.') {
            continue;
        }
        if file_type.is_symlink() {
            // A link to a manifest is read (within the size limit); a linked folder is not walked (loops).
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() || !meta.is_dir() => file_type = meta.file_type(),
                _ => {
                    if is_manifest_name(&name) || std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                        notes.push(note(
                            &display_path(&path),
                            1,
                            "a symbolic link that is a folder or leads nowhere; not followed, not checked".into(),
                        ));
                    }
                    continue;
                }
            }
        }
        if file_type.is_dir() {
            // A chart's `templates/` is walked too: each file there is a Helm template (skipped with a
            // note) only if it really holds template actions; plain manifests in it are checked.
            walk(&path, files, notes)?;
        } else if !is_manifest_name(&name) || (is_chart && name == "Chart.yaml") {
            continue;
        } else if file_type.is_file() {
            files.push(InputFile { display: display_path(&path), path });
        } else {
            notes.push(note(
                &display_path(&path),
                1,
                "not a regular file (a FIFO, socket or device); not read, not checked".into(),
            ));
        }
    }
    Ok(())
}

fn note(file: &str, line: u32, message: String) -> Finding {
    Finding {
        policy: NOTE_POLICY.into(),
        constraint: String::new(),
        severity: Severity::Info,
        message,
        file: file.into(),
        region: Region::point(line, 1),
        pointer: String::new(),
        resource: None,
    }
}

fn yaml_finding(file: &str, issue: &yaml::YamlIssue) -> Finding {
    Finding {
        policy: YAML_POLICY.into(),
        constraint: String::new(),
        severity: if issue.error { Severity::Deny } else { Severity::Warn },
        message: issue.message.clone(),
        file: file.into(),
        region: region(issue.span),
        pointer: String::new(),
        resource: None,
    }
}

/// The size budget in words, for findings that name it.
fn size_limit(limit: u64) -> String {
    if limit.is_multiple_of(1024 * 1024) {
        format!("the {} MiB file size limit ({limit} bytes)", limit / (1024 * 1024))
    } else {
        format!("the file size limit of {limit} bytes")
    }
}

/// Reads one file (or standard input, `-`) within the size budget: at most `max_file_bytes + 1`
/// bytes are ever read, whatever the metadata says, so `/dev/zero`, a FIFO or an endless pipe stop
/// at the limit. A file that cannot be checked is a deny finding at its first line, not an error:
/// the rest of the run goes on.
pub fn read_file(file: &InputFile, limits: &Limits) -> Result<String, Box<Finding>> {
    let unreadable = |message: String| {
        let mut f = note(&file.display, 1, message);
        f.policy = YAML_POLICY.into();
        f.severity = Severity::Deny;
        Box::new(f)
    };
    let limit = limits.max_file_bytes;
    let stdin = file.path.as_os_str() == "-";
    let what = if stdin { "standard input" } else { "file" };
    let over = || unreadable(format!("{what} is over {}; it was not checked", size_limit(limit)));
    let mut bytes = Vec::new();
    let read = if stdin {
        // `helm template … | guardrail check -`
        std::io::stdin().lock().take(limit + 1).read_to_end(&mut bytes)
    } else {
        let meta = std::fs::metadata(&file.path).map_err(|e| unreadable(format!("cannot read file: {e}")))?;
        if meta.is_file() && meta.len() > limit {
            return Err(over());
        }
        std::fs::File::open(&file.path).and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| unreadable(format!("cannot read {what}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(over());
    }
    String::from_utf8(bytes).map_err(|e| {
        unreadable(format!("{what} is not UTF-8 text (byte {}): it was not checked", e.utf8_error().valid_up_to()))
    })
}

/// Whether a file on disk sits in a Helm chart: beside a `Chart.yaml`, or under a `templates/`
/// folder whose parent has one.
pub fn in_chart_on_disk(path: &Path) -> bool {
    let Some(dir) = path.parent() else { return false };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    if dir.join("Chart.yaml").is_file() {
        return true;
    }
    dir.ancestors()
        .filter(|a| a.file_name().is_some_and(|n| n == "templates"))
        .any(|t| t.parent().is_some_and(|chart| chart.join("Chart.yaml").is_file()))
}

/// Without the file system (the App's fetched files), a chart is known by its layout: a file under
/// a `templates/` folder, or beside a `Chart.yaml` among the same texts.
pub fn in_chart_by_name(display: &str, names: &[&str]) -> bool {
    let dir = display.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let beside = |d: &str| {
        names.iter().any(|n| *n == if d.is_empty() { "Chart.yaml".to_string() } else { format!("{d}/Chart.yaml") })
    };
    beside(dir) || dir.split('/').any(|c| c == "templates")
}

/// Loads one file read from disk (see `read_file`), knowing whether it sits in a Helm chart.
pub fn load_file(file: &InputFile, text: &str, opts: &LoadOptions, out: &mut Loaded) {
    load_text_in(&file.display, text, in_chart_on_disk(&file.path), opts, out)
}

/// Parses the text of one file into resources and findings. The parser runs on a thread with a
/// large stack (see `yaml::on_large_stack`): deeply nested input is stopped by the depth budget.
/// A file counts as a Helm template only under a chart's `templates/` (see `in_chart_by_name`).
pub fn load_text(display: &str, text: &str, opts: &LoadOptions, out: &mut Loaded) {
    load_text_in(display, text, in_chart_by_name(display, &[]), opts, out)
}

/// `load_text` for a file whose place in a Helm chart (`in_chart`) is known.
pub fn load_text_in(display: &str, text: &str, in_chart: bool, opts: &LoadOptions, out: &mut Loaded) {
    // Terraform configuration is read a module at a time (`terraform::load_texts` / `load_paths`).
    if terraform::is_terraform_name(display) || display.ends_with(".tpl") || display.ends_with(".tftpl") {
        return;
    }
    let file: Arc<str> = Arc::from(display);
    let shared_text: Arc<str> = Arc::from(text);
    out.sources.push((display.to_string(), shared_text.clone()));
    if text.len() as u64 > opts.limits.max_file_bytes {
        let mut f = note(
            display,
            1,
            format!(
                "file is {} bytes, over {}; it was not checked",
                text.len(),
                size_limit(opts.limits.max_file_bytes)
            ),
        );
        f.policy = YAML_POLICY.into();
        f.severity = Severity::Deny;
        out.findings.push(f);
        return;
    }
    if terraform::is_plan_name(display) {
        out.sources.pop();
        terraform::plan::load(display, text, opts, out);
        return;
    }
    if in_chart && has_template_actions(text) {
        out.findings.push(note(
            display,
            first_action_line(text),
            "a Helm template ({{ … }} in a chart): render it first (helm template … | guardrail check -)".into(),
        ));
        return;
    }
    for doc in yaml::parse_stream(text, &opts.limits.yaml) {
        let Some(root) = doc.root else {
            out.findings.extend(doc.issues.iter().map(|i| yaml_finding(display, i)));
            continue;
        };
        let json = root.to_json();
        drop(root);
        let document = Arc::new(DocTree::lazy(shared_text.clone(), doc.source, opts.limits.yaml));
        if !is_kubernetes_object(&json) {
            // Not a Kubernetes object (a values file, a CI config…): skipped silently, but broken YAML
            // in it still counts if it would have been a manifest.
            continue;
        }
        out.findings.extend(doc.issues.iter().map(|i| yaml_finding(display, i)));
        let list_items = json
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| k.ends_with("List"))
            .and(json.get("items"))
            .and_then(Value::as_array);
        match list_items {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    if is_kubernetes_object(item) {
                        push_resource(
                            out,
                            item.clone(),
                            Origin { file: file.clone(), document: document.clone(), prefix: format!("/items/{i}") },
                            opts,
                        );
                    }
                }
            }
            None => push_resource(out, json, Origin { file: file.clone(), document, prefix: String::new() }, opts),
        }
    }
}

/// Template actions (`{{`) outside YAML comments: `# {{ .Values.x }}` in a plain manifest is a comment.
fn has_template_actions(text: &str) -> bool {
    text.contains("{{") && text.lines().any(|l| outside_comment(l).contains("{{"))
}

fn first_action_line(text: &str) -> u32 {
    text.lines().position(|l| outside_comment(l).contains("{{")).map_or(1, |i| i as u32 + 1)
}

/// The part of a line before its YAML comment (`#` at the start or after a blank, outside quotes).
fn outside_comment(line: &str) -> &str {
    let (mut single, mut double, mut escaped) = (false, false, false);
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if double => escaped = true,
            '"' if !single => double = !double,
            '\'' if !double => single = !single,
            '#' if !single && !double && previous.is_whitespace() => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

fn is_kubernetes_object(v: &Value) -> bool {
    let s = |k| v.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    s("apiVersion") && s("kind")
}

/// Kinds that are build inputs, not cluster objects.
fn is_tooling_kind(object: &Value) -> bool {
    let api = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    api.starts_with("kustomize.config.k8s.io/") || api.starts_with("config.kubernetes.io/")
}

pub(crate) fn push_resource(out: &mut Loaded, mut object: Value, origin: Origin, opts: &LoadOptions) {
    if is_tooling_kind(&object) {
        return;
    }
    if let Some(ns) = &opts.default_namespace {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        if meta_str(&object, "namespace").is_empty() && !is_cluster_scoped(kind) {
            if let Some(meta) =
                object.as_object_mut().map(|o| o.entry("metadata").or_insert_with(|| Value::Object(Default::default())))
            {
                if let Some(m) = meta.as_object_mut() {
                    m.insert("namespace".into(), Value::String(ns.clone()));
                }
            }
        }
    }
    let reported = resource_ref(&object);
    out.resources.push(Resource { object, reported, origin, implied_by: None });
}

/// Well-known cluster-scoped kinds: they never take the default namespace.
pub fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "Node"
            | "PersistentVolume"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "StorageClass"
            | "CustomResourceDefinition"
            | "PriorityClass"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
            | "APIService"
            | "RuntimeClass"
            | "IngressClass"
            | "CSIDriver"
            | "VolumeSnapshotClass"
            | "ConstraintTemplate"
            | "ClusterIssuer"
            | "PodSecurityPolicy"
    )
}

/// Loads files and folders (sequentially; see `scan` for the parallel driver).
pub fn load_paths(paths: &[PathBuf], opts: &LoadOptions) -> Result<Loaded, LoadError> {
    let mut out = Loaded::default();
    let files = discover(paths, &mut out.findings)?;
    for file in &files {
        match read_file(file, &opts.limits) {
            Ok(text) => load_file(file, &text, opts, &mut out),
            Err(finding) => out.findings.push(*finding),
        }
    }
    terraform::load_paths(paths, &files, opts, &mut out);
    Ok(out)
}
