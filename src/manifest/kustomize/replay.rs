//! Replays what kustomize does to an overlay's objects on attributed trees (see `tree`): resources
//! and bases, components, generators, strategic-merge and JSON 6902 patches (in files or inline),
//! namespace, name prefix and suffix, labels, annotations, replicas and images, in kustomize's order.
//! The values rendered by kustomize stay authoritative; the replay only says where each came from.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::graph::{kustomization_file, lexical_join, Graph, Kustomization};
use super::tree::{merge_key, At, Attr, ImageSources, Kids, Shift};
use crate::findings::Region;
use crate::manifest::node::{pointer_tokens, Node, NodeKind};
use crate::manifest::{is_cluster_scoped, region, yaml};

/// One object as the replay sees it.
#[derive(Clone, Debug)]
pub struct Obj {
    pub attr: Attr,
    /// The object's first line.
    pub head: At,
    /// Names the object had before prefixes and suffixes (patches may target any of them).
    pub names: Vec<String>,
    /// Made by a generator: kustomize appends a content hash to the name.
    pub hashed: bool,
    /// Fields an overlay set on the object as a whole (name, namespace, labels), each with the value
    /// it had before (`None`: absent): these decide whether a constraint applies at all.
    pub originals: Vec<(String, Option<Value>)>,
}

impl Obj {
    fn field(&self, a: &str, b: &str) -> &str {
        self.attr.get(a).and_then(|m| m.get(b)).and_then(Attr::as_str).unwrap_or("")
    }
    pub fn kind(&self) -> &str {
        self.attr.get("kind").and_then(Attr::as_str).unwrap_or("")
    }
    pub fn api_version(&self) -> &str {
        self.attr.get("apiVersion").and_then(Attr::as_str).unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.field("metadata", "name")
    }
    pub fn namespace(&self) -> &str {
        self.field("metadata", "namespace")
    }
    /// Remembers a field's value before an overlay first changes it.
    fn remember(&mut self, pointer: &str) {
        if self.originals.iter().all(|(p, _)| p != pointer) {
            let before = self.attr.to_json().pointer(pointer).cloned();
            self.originals.push((pointer.to_string(), before));
        }
    }

    fn called(&self, name: &str) -> bool {
        self.name() == name || self.names.iter().any(|n| n == name)
    }
}

/// The replay of one root, with every source text it read (for showing lines).
pub struct Replay<'g, 'l> {
    pub graph: &'g mut Graph<'l>,
    pub sources: HashMap<String, Arc<str>>,
    depth: usize,
}

fn seq(node: Option<&Node>) -> &[Node] {
    match node.map(|n| &n.kind) {
        Some(NodeKind::Seq(items)) => items,
        _ => &[],
    }
}

fn at(file: &Arc<str>, node: &Node) -> At {
    At { file: file.clone(), region: region(node.focus()) }
}

impl<'g, 'l> Replay<'g, 'l> {
    pub fn new(graph: &'g mut Graph<'l>) -> Self {
        Replay { graph, sources: HashMap::new(), depth: 0 }
    }

    /// The objects the kustomization in `dir` produces, attributed.
    pub fn build(&mut self, dir: &Path) -> Vec<Obj> {
        let mut objs = Vec::new();
        if self.depth > 32 {
            return objs;
        }
        self.depth += 1;
        if let Some(k) = self.graph.load(dir) {
            self.sources.insert(k.display.to_string(), k.text.clone());
            self.accumulate(&k, &mut objs);
        }
        self.depth -= 1;
        objs
    }

    fn accumulate(&mut self, k: &Kustomization, objs: &mut Vec<Obj>) {
        let Some(root) = k.root.clone() else { return };
        let file = k.display.clone();
        for entry in seq(root.get("resources")).iter().chain(seq(root.get("bases"))) {
            let Some(rel) = entry.as_str() else { continue };
            let path = lexical_join(&k.dir, rel);
            if path.is_dir() {
                objs.extend(self.build(&path));
            } else {
                objs.extend(self.objects_of_file(&path));
            }
        }
        for entry in seq(root.get("components")) {
            let Some(rel) = entry.as_str() else { continue };
            let path = lexical_join(&k.dir, rel);
            if kustomization_file(&path).is_none() || self.depth > 32 {
                continue;
            }
            if let Some(c) = self.graph.load(&path) {
                self.sources.insert(c.display.to_string(), c.text.clone());
                self.depth += 1;
                self.accumulate(&c, objs);
                self.depth -= 1;
            }
        }
        for (key, kind) in [("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")] {
            for g in seq(root.get(key)) {
                objs.push(generate(&root, g, kind, &file));
            }
        }
        for entry in seq(root.get("patchesStrategicMerge")) {
            for patch in self.patch_docs(k, entry, None) {
                apply_patch(objs, &patch, None);
            }
        }
        for entry in seq(root.get("patches")) {
            let target = entry.get("target");
            for patch in self.patch_docs(k, entry, Some("patch")) {
                apply_patch(objs, &patch, target);
            }
        }
        if let Some(ns) = root.get("namespace").filter(|n| n.as_str().is_some_and(|s| !s.is_empty())) {
            let value = Value::String(ns.as_str().unwrap_or_default().into());
            for o in objs.iter_mut().filter(|o| !is_cluster_scoped(o.kind())) {
                o.remember("/metadata/namespace");
                let a = at(&file, ns);
                o.attr.entry_map("metadata", &a).set("namespace", Attr::leaf(value.clone(), a));
            }
        }
        let prefix = root.get("namePrefix").filter(|n| n.as_str().is_some_and(|s| !s.is_empty()));
        let suffix = root.get("nameSuffix").filter(|n| n.as_str().is_some_and(|s| !s.is_empty()));
        if let Some(node) = prefix.or(suffix) {
            let (p, s) = (prefix.and_then(Node::as_str).unwrap_or(""), suffix.and_then(Node::as_str).unwrap_or(""));
            for o in objs.iter_mut().filter(|o| !matches!(o.kind(), "Namespace" | "CustomResourceDefinition")) {
                let old = o.name().to_string();
                o.remember("/metadata/name");
                o.names.push(old.clone());
                let a = at(&file, node);
                o.attr.entry_map("metadata", &a).set("name", Attr::leaf(Value::String(format!("{p}{old}{s}")), a));
            }
        }
        if let Some(labels) = root.get("commonLabels") {
            add_labels(objs, &file, labels, true, true, "labels");
        }
        for entry in seq(root.get("labels")) {
            if let Some(pairs) = entry.get("pairs") {
                let flag = |k: &str| entry.get(k).is_some_and(|n| matches!(n.kind, NodeKind::Bool(true)));
                let selectors = flag("includeSelectors");
                add_labels(objs, &file, pairs, selectors, selectors || flag("includeTemplates"), "labels");
            }
        }
        if let Some(annotations) = root.get("commonAnnotations") {
            add_labels(objs, &file, annotations, false, true, "annotations");
        }
        for entry in seq(root.get("patchesJson6902")) {
            let target = entry.get("target");
            for patch in self.patch_docs(k, entry, Some("patch")) {
                apply_patch(objs, &patch, target);
            }
        }
        for entry in seq(root.get("replicas")) {
            let (Some(name), Some(count)) = (entry.get("name").and_then(Node::as_str), entry.get("count")) else {
                continue;
            };
            for o in objs.iter_mut().filter(|o| o.called(name)) {
                let a = at(&file, count);
                o.attr.entry_map("spec", &a).set("replicas", Attr::leaf(count.to_json(), a));
            }
        }
        for entry in seq(root.get("images")) {
            for o in objs.iter_mut() {
                set_images(&mut o.attr, entry, &file);
            }
        }
    }

    /// Reads a resource file into attributed objects (every document; `List` items one by one).
    fn objects_of_file(&mut self, path: &Path) -> Vec<Obj> {
        let Some((file, text)) = self.read(path) else { return Vec::new() };
        let mut out = Vec::new();
        for doc in yaml::parse_stream(&text, &self.graph.limits.yaml) {
            let Some(root) = doc.root else { continue };
            let is_list = root.get("kind").and_then(Node::as_str).is_some_and(|k| k.ends_with("List"));
            let items: Vec<&Node> = match (is_list, root.get("items")) {
                (true, Some(Node { kind: NodeKind::Seq(items), .. })) => items.iter().collect(),
                _ => vec![&root],
            };
            for node in items {
                if node.get("kind").is_none() {
                    continue;
                }
                let head =
                    At { file: file.clone(), region: Region::point(node.span.start.line, node.span.start.column) };
                out.push(Obj {
                    attr: Attr::from_node(node, &file, Shift::default()),
                    head,
                    names: Vec::new(),
                    hashed: false,
                    originals: Vec::new(),
                });
            }
        }
        out
    }

    fn read(&mut self, path: &Path) -> Option<(Arc<str>, Arc<str>)> {
        let display = self.graph.display(path);
        if let Some(text) = self.sources.get(&display) {
            return Some((Arc::from(display.as_str()), text.clone()));
        }
        let input = crate::manifest::InputFile { display: display.clone(), path: path.to_path_buf() };
        let text: Arc<str> = Arc::from(crate::manifest::read_file(&input, self.graph.limits).ok()?);
        self.sources.insert(display.clone(), text.clone());
        Some((Arc::from(display.as_str()), text))
    }

    /// The documents of a patch entry: a file (`path:` or a plain string) or inline text (`patch:`,
    /// or a multi-line string), each attributed to its own lines.
    fn patch_docs(&mut self, k: &Kustomization, entry: &Node, inline_key: Option<&str>) -> Vec<Attr> {
        let (file, text, node_shift) = if let Some(inline) = inline_key.and_then(|key| entry.get(key)) {
            (
                k.display.clone(),
                Arc::from(inline.as_str().unwrap_or_default()),
                Some((inline, block_shift(&k.text, inline))),
            )
        } else {
            let rel = match entry.get("path").or(Some(entry)).and_then(Node::as_str) {
                Some(rel) => rel,
                None => return Vec::new(),
            };
            if rel.contains('\n') {
                (k.display.clone(), Arc::from(rel), Some((entry, block_shift(&k.text, entry))))
            } else {
                match self.read(&lexical_join(&k.dir, rel)) {
                    Some((file, text)) => (file, text, None),
                    None => return Vec::new(),
                }
            }
        };
        // A value at the very end of a block scalar (`|-`) needs its line ended to get its span.
        let text = if text.ends_with('\n') { text.to_string() } else { format!("{text}\n") };
        let mut out = Vec::new();
        for doc in yaml::parse_stream(&text, &self.graph.limits.yaml) {
            let Some(root) = doc.root else { continue };
            out.push(match node_shift {
                None => Attr::from_node(&root, &file, Shift::default()),
                Some((_, Some(shift))) => Attr::from_node(&root, &file, shift),
                // Inline text that is not a block scalar: everything at the entry.
                Some((node, None)) => Attr::from_json(&root.to_json(), &at(&file, node)),
            });
        }
        out
    }
}

/// Positions of a block scalar's content (`patch: |` then indented lines) in the enclosing file:
/// the indicator is on the key's line (or, for a list item, the nearest line above the text).
fn block_shift(text: &str, node: &Node) -> Option<Shift> {
    let lines: Vec<&str> = text.lines().collect();
    let from = node.key_span.map_or(node.span.start.line, |k| k.start.line) as usize;
    let indicator = regex::Regex::new(r"(^|[:\-]\s)\s*[|>][0-9+-]*\s*(#.*)?$").ok()?;
    let line = (1..=from.min(lines.len())).rev().find(|l| indicator.is_match(lines[l - 1]))?;
    let indent = lines.iter().skip(line).find(|l| !l.trim().is_empty())?.chars().take_while(|c| *c == ' ').count();
    Some(Shift { lines: line as u32, columns: indent as u32 })
}

/// A ConfigMap or Secret from a generator entry; every key attributed to its literal or file line.
fn generate(root: &Node, g: &Node, kind: &str, file: &Arc<str>) -> Obj {
    let name_node = g.get("name").unwrap_or(g);
    let head = at(file, name_node);
    let name = name_node.as_str().unwrap_or("").to_string();
    let mut attr = Attr::map(head.clone());
    attr.set("apiVersion", Attr::leaf(Value::String("v1".into()), head.clone()));
    attr.set("kind", Attr::leaf(Value::String(kind.into()), head.clone()));
    let meta = attr.entry_map("metadata", &head);
    meta.set("name", Attr::leaf(Value::String(name.clone()), head.clone()));
    if let Some(ns) = g.get("namespace") {
        meta.set("namespace", Attr::leaf(ns.to_json(), at(file, ns)));
    }
    let data = attr.entry_map("data", &head);
    for lit in seq(g.get("literals")) {
        if let Some((k, v)) = lit.as_str().and_then(|s| s.split_once('=')) {
            data.set(k.trim(), Attr::leaf(Value::String(v.into()), at(file, lit)));
        }
    }
    for f in seq(g.get("files")) {
        if let Some(s) = f.as_str() {
            let key = s.split_once('=').map_or_else(|| s.rsplit('/').next().unwrap_or(s), |(k, _)| k);
            data.set(key.trim(), Attr::leaf(Value::String(String::new()), at(file, f)));
        }
    }
    let no_hash = |n: Option<&Node>| {
        n.and_then(|o| o.get("disableNameSuffixHash")).is_some_and(|b| matches!(b.kind, NodeKind::Bool(true)))
    };
    let hashed = !(no_hash(g.get("options")) || no_hash(root.get("generatorOptions")));
    Obj { attr, head, names: Vec::new(), hashed, originals: Vec::new() }
}

/// Adds `pairs` to metadata (and to selectors and pod templates, as kustomize's label transformer does).
fn add_labels(objs: &mut [Obj], file: &Arc<str>, pairs: &Node, selectors: bool, templates: bool, field: &str) {
    let NodeKind::Map(entries) = &pairs.kind else { return };
    let holder = at(file, pairs);
    for o in objs.iter_mut() {
        let kind = o.kind().to_string();
        let mut targets: Vec<Vec<&str>> = vec![vec!["metadata"]];
        let workload = matches!(kind.as_str(), "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job");
        if templates && (workload || kind == "ReplicationController") {
            targets.push(vec!["spec", "template", "metadata"]);
        }
        if templates && kind == "CronJob" {
            targets.push(vec!["spec", "jobTemplate", "spec", "template", "metadata"]);
        }
        let mut selector_maps: Vec<Vec<&str>> = Vec::new();
        if selectors && field == "labels" {
            if workload && kind != "Job" {
                selector_maps.push(vec!["spec", "selector", "matchLabels"]);
            }
            if kind == "Service" || kind == "ReplicationController" {
                selector_maps.push(vec!["spec", "selector"]);
            }
        }
        for (k, _) in entries {
            o.remember(&crate::manifest::node::pointer_push(&format!("/metadata/{field}"), k));
        }
        for path in targets.iter().map(|p| (p, true)).chain(selector_maps.iter().map(|p| (p, false))) {
            let (path, meta) = path;
            let mut node = &mut o.attr;
            for key in path.iter() {
                node = node.entry_map(key, &holder);
            }
            if meta {
                node = node.entry_map(field, &holder);
            }
            for (k, v) in entries {
                node.set(k, Attr::leaf(v.to_json(), at(file, v)));
            }
        }
    }
}

/// Applies one patch document (strategic merge if a map, JSON 6902 operations if a list).
fn apply_patch(objs: &mut [Obj], patch: &Attr, target: Option<&Node>) {
    let json = patch.to_json();
    for o in objs.iter_mut() {
        let hit = match target {
            Some(t) => selects(t, o),
            None => {
                let kind = json.get("kind").and_then(Value::as_str).unwrap_or("");
                let name = json.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
                let ns = json.pointer("/metadata/namespace").and_then(Value::as_str);
                kind == o.kind() && o.called(name) && ns.is_none_or(|n| n == o.namespace())
            }
        };
        if !hit {
            continue;
        }
        match &patch.kids {
            Kids::Seq(ops) => ops.iter().for_each(|op| json6902(&mut o.attr, op)),
            Kids::Map(_) => merge(&mut o.attr, patch),
            Kids::Leaf(_) => {}
        }
    }
}

/// Whether a patch `target:` selects an object (name, kind, namespace are anchored regexes).
fn selects(t: &Node, o: &Obj) -> bool {
    let matches = |key: &str, value: &str| match t.get(key).and_then(Node::as_str) {
        None => true,
        Some(p) => regex::Regex::new(&format!("^(?:{p})$")).map_or(p == value, |r| r.is_match(value)),
    };
    let (group, version) = crate::manifest::split_api_version(o.api_version());
    let name_ok = match t.get("name").and_then(Node::as_str) {
        None => true,
        Some(_) => matches("name", o.name()) || o.names.iter().any(|n| matches("name", n)),
    };
    let labels = o.attr.get("metadata").and_then(|m| m.get("labels")).map(Attr::to_json).unwrap_or(Value::Null);
    let annotations =
        o.attr.get("metadata").and_then(|m| m.get("annotations")).map(Attr::to_json).unwrap_or(Value::Null);
    name_ok
        && matches("kind", o.kind())
        && matches("namespace", o.namespace())
        && matches("group", group)
        && matches("version", version)
        && selector_ok(t.get("labelSelector").and_then(Node::as_str), &labels)
        && selector_ok(t.get("annotationSelector").and_then(Node::as_str), &annotations)
}

fn selector_ok(selector: Option<&str>, map: &Value) -> bool {
    let Some(selector) = selector else { return true };
    selector.split(',').map(str::trim).filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            map.get(k.trim()).and_then(Value::as_str) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once('=') {
            map.get(k.trim_end_matches('=').trim()).and_then(Value::as_str) == Some(v.trim_start_matches('=').trim())
        } else if let Some(k) = term.strip_prefix('!') {
            map.get(k.trim()).is_none()
        } else {
            map.get(term).is_some()
        }
    })
}

fn directive(a: &Attr) -> Option<&str> {
    a.get("$patch").and_then(Attr::as_str)
}

/// A patch value without its `$` directives.
fn clean(a: &Attr) -> Attr {
    let mut a = a.clone();
    match &mut a.kids {
        Kids::Map(entries) => {
            entries.retain(|(k, _)| !k.starts_with('$'));
            for (_, v) in entries.iter_mut() {
                *v = clean(v);
            }
        }
        Kids::Seq(items) => {
            items.retain(|i| directive(i) != Some("delete"));
            for i in items.iter_mut() {
                *i = clean(i);
            }
        }
        Kids::Leaf(_) => {}
    }
    a
}

/// Strategic merge: maps merge, lists with a merge key merge element by element, the rest replaces.
fn merge(target: &mut Attr, patch: &Attr) {
    let Kids::Map(entries) = &patch.kids else {
        *target = clean(patch);
        return;
    };
    for (k, pv) in entries {
        if k.starts_with('$') {
            continue;
        }
        if matches!(pv.kids, Kids::Leaf(Value::Null)) {
            target.remove(k);
            continue;
        }
        let Some(tv) = target.get_mut(k) else {
            if directive(pv) != Some("delete") {
                target.set(k, clean(pv));
            }
            continue;
        };
        match (&mut tv.kids, &pv.kids) {
            (Kids::Map(_), Kids::Map(_)) => match directive(pv) {
                Some("delete") => target.remove(k),
                Some("replace") => tv.replace(clean(pv)),
                _ => merge(tv, pv),
            },
            (Kids::Seq(items), Kids::Seq(patch_items)) if merge_key(k).is_some() => {
                let key = merge_key(k).unwrap_or("name");
                for pe in patch_items {
                    let id = pe.get(key).map(Attr::to_json);
                    let found = id
                        .as_ref()
                        .and_then(|id| items.iter().position(|te| te.get(key).map(Attr::to_json).as_ref() == Some(id)));
                    match (found, directive(pe)) {
                        (Some(i), Some("delete")) => {
                            items.remove(i);
                        }
                        (Some(i), Some("replace")) => items[i] = clean(pe),
                        (Some(i), _) => merge(&mut items[i], pe),
                        (None, Some("delete")) => {}
                        (None, _) => items.push(clean(pe)),
                    }
                }
            }
            _ => tv.replace(clean(pv)),
        }
    }
}

/// One JSON 6902 operation; `value:` keeps the patch's own positions.
fn json6902(target: &mut Attr, op: &Attr) {
    let (Some(kind), Some(path)) = (op.get("op").and_then(Attr::as_str), op.get("path").and_then(Attr::as_str)) else {
        return;
    };
    let tokens: Vec<String> = pointer_tokens(path).collect();
    let Some((last, parents)) = tokens.split_last() else { return };
    let value = match kind {
        "add" | "replace" => op.get("value").cloned(),
        "copy" | "move" => {
            let from: Vec<String> =
                op.get("from").and_then(Attr::as_str).map(|f| pointer_tokens(f).collect()).unwrap_or_default();
            let v = target.walk_mut(&from).map(|a| a.clone());
            if kind == "move" {
                remove_at(target, &from);
            }
            v
        }
        "remove" => {
            remove_at(target, &tokens);
            return;
        }
        _ => return,
    };
    let Some(value) = value else { return };
    let Some(parent) = target.walk_mut(parents) else { return };
    match &mut parent.kids {
        Kids::Seq(items) => {
            if last == "-" {
                items.push(value);
            } else if let Ok(i) = last.parse::<usize>() {
                if kind == "replace" && i < items.len() {
                    items[i].replace(value);
                } else if i <= items.len() {
                    items.insert(i, value);
                }
            }
        }
        _ => parent.set(last, value),
    }
}

fn remove_at(target: &mut Attr, tokens: &[String]) {
    let Some((last, parents)) = tokens.split_last() else { return };
    let Some(parent) = target.walk_mut(parents) else { return };
    match &mut parent.kids {
        Kids::Seq(items) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < items.len() {
                    items.remove(i);
                }
            }
        }
        _ => parent.remove(last),
    }
}

/// Splits an image reference into its name and the rest (`:tag`, `@digest`).
pub fn split_image(image: &str) -> (&str, &str) {
    if let Some(i) = image.find('@') {
        let (name, _) = image.split_at(i);
        return match name.rfind(':').filter(|c| !name[*c..].contains('/')) {
            Some(c) => (&image[..c], &image[c..]),
            None => (name, &image[i..]),
        };
    }
    match image.rfind(':').filter(|c| !image[*c..].contains('/')) {
        Some(c) => (&image[..c], &image[c..]),
        None => (image, ""),
    }
}

/// Applies an `images:` entry to every container image in the object that it names.
fn set_images(attr: &mut Attr, entry: &Node, file: &Arc<str>) {
    let Some(name) = entry.get("name").and_then(Node::as_str) else { return };
    match &mut attr.kids {
        Kids::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                if matches!(k.as_str(), "containers" | "initContainers" | "ephemeralContainers") {
                    if let Kids::Seq(items) = &mut v.kids {
                        for c in items.iter_mut() {
                            if let Some(image) = c.get_mut("image") {
                                rewrite_image(image, name, entry, file);
                            }
                        }
                    }
                } else {
                    set_images(v, entry, file);
                }
            }
        }
        Kids::Seq(items) => items.iter_mut().for_each(|i| set_images(i, entry, file)),
        Kids::Leaf(_) => {}
    }
}

fn rewrite_image(image: &mut Attr, name: &str, entry: &Node, file: &Arc<str>) {
    let Some(current) = image.as_str().map(str::to_string) else { return };
    let (old_name, rest) = split_image(&current);
    if old_name != name {
        return;
    }
    let get = |k: &str| {
        entry.get(k).filter(|n| {
            n.as_str().is_some_and(|s| !s.is_empty()) || matches!(n.kind, NodeKind::Int(_) | NodeKind::Float(_))
        })
    };
    let (new_name, new_tag, digest) = (get("newName"), get("newTag"), get("digest"));
    let text = |n: &Node| n.as_str().map(str::to_string).unwrap_or_else(|| n.to_json().to_string());
    let name_part = new_name.map(text).unwrap_or_else(|| old_name.to_string());
    let rest = match (digest, new_tag) {
        (Some(d), _) => format!("@{}", text(d)),
        (None, Some(t)) => format!(":{}", text(t)),
        (None, None) => rest.to_string(),
    };
    let mut sources = image.image.take().map(|b| *b).unwrap_or_default();
    if let Some(n) = new_name {
        sources.name = Some(at(file, n));
    }
    if let Some(t) = new_tag {
        sources.tag = Some(at(file, t));
        sources.digest = None;
    }
    if let Some(d) = digest {
        sources.digest = Some(at(file, d));
        sources.tag = None;
    }
    if image.before.is_none() {
        image.before = Some(Box::new(Value::String(current.clone())));
    }
    image.kids = Kids::Leaf(Value::String(format!("{name_part}{rest}")));
    image.image = Some(Box::new(sources));
}

/// The source of an image value for a finding: the `images:` line that made the part the message
/// complains about (repository or tag), else the line the image was written on.
pub fn pick_image(base: &At, sources: &ImageSources, message: &str) -> At {
    // Only the message's own words count, not the image, names or lists it quotes.
    let mut m = String::new();
    let mut depth = 0i32;
    let mut quoted = false;
    for c in message.to_lowercase().chars() {
        match c {
            '"' => quoted = !quoted,
            '<' | '[' | '(' | '{' => depth += 1,
            '>' | ']' | ')' | '}' => depth -= 1,
            c if depth <= 0 && !quoted => m.push(c),
            _ => {}
        }
    }
    let repo = m.contains("repo") || m.contains("registr");
    let tag = m.contains("tag");
    let digest = m.contains("digest");
    let chosen = if repo && !tag {
        sources.name.clone()
    } else if digest {
        sources.digest.clone().or_else(|| sources.tag.clone())
    } else if tag {
        sources.tag.clone().or_else(|| sources.digest.clone())
    } else {
        sources.tag.clone().or_else(|| sources.digest.clone()).or_else(|| sources.name.clone())
    };
    chosen.unwrap_or_else(|| base.clone())
}
