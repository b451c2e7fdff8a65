//! Terraform-managed Kubernetes: the objects that `kubernetes_manifest`, `kubectl_manifest` and the
//! typed `kubernetes_*` resources would create, with every value located at the `.tf`, YAML or
//! template line that sets it. The loader works on a `FileMap` (path -> text, under a root): the
//! App fills it from the repository at the head commit, the CLI from the folders it was given;
//! `file()`, `templatefile()` and module sources resolve inside that root only.
//!
//! Locations: a value written in a `.tf` file points there; a manifest read with
//! `yamldecode(file(…))` or `yamldecode(templatefile(…))` points into the YAML file or the
//! template (the resource's file is then that file); a module argument's value points where the
//! caller wrote it, in the caller's file (`eval::mark`); a value from another file (a variable's
//! default, a tfvars value) points at the expression that uses it.

pub mod budget;
pub mod eval;
mod funcs;
pub mod hcl;
pub mod modules;
pub mod plan;
mod provenance;
mod stdlib;
mod template;
pub mod typed;
mod typed_tables;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::{DocTree, InputFile, LoadOptions, Loaded, Origin};
use crate::findings::{Finding, Region, Severity};
use crate::manifest::node::{Node, NodeKind, Span};
use eval::{Val, UNKNOWN};

/// Policy name for findings about Terraform input (syntax errors, refused paths, unknown counts).
pub const TERRAFORM_POLICY: &str = "guardrail/terraform";

/// Files the Terraform loader reads as configuration (`*.tfplan.json` plans are read on their own).
pub fn is_terraform_name(name: &str) -> bool {
    name.ends_with(".tf") || name.ends_with(".tfvars")
}

pub fn is_plan_name(name: &str) -> bool {
    name.ends_with(".tfplan.json")
}

pub fn is_kubernetes_type(resource_type: &str) -> bool {
    resource_type == "kubernetes_manifest"
        || resource_type == "kubectl_manifest"
        || typed_tables::kind_of(resource_type).is_some()
}

/// A `kubernetes_*` resource of the provider that guardrail does not turn into an object (an
/// info note says so at its block). Resources that edit part of another object or are not
/// objects at all are left out.
pub fn is_unconverted_kubernetes_type(resource_type: &str) -> bool {
    resource_type.starts_with("kubernetes_") && !is_kubernetes_type(resource_type)
}

pub(crate) fn finding(file: &str, region: Region, severity: Severity, message: String) -> Finding {
    Finding::about_file(TERRAFORM_POLICY, file, region, severity, message)
}

pub(crate) fn region(span: Span) -> Region {
    super::region(span)
}

/// The files Terraform may read: repository paths -> text, under `root` (`""`: the whole map).
/// With `disk`, a path that is not in the map is read from disk (the CLI), still under the root
/// and never through a symbolic link.
#[derive(Clone, Debug, Default)]
pub struct FileMap {
    root: String,
    files: BTreeMap<String, Arc<str>>,
    disk: Option<u64>,
}

impl FileMap {
    pub fn new(root: &str) -> Self {
        FileMap { root: root.trim_end_matches('/').to_string(), ..Default::default() }
    }

    pub fn insert(&mut self, path: &str, text: Arc<str>) {
        self.files.insert(path.to_string(), text);
    }

    /// `base/path` without `.`/`..`, refused when absolute or outside the root.
    pub fn resolve(&self, base: &str, path: &str) -> Result<String, String> {
        let absolute_base = base.starts_with('/');
        if path.starts_with('/') || path.starts_with('\\') || path.starts_with('~') || path.get(1..2) == Some(":") {
            return Err("absolute paths are not read: only files inside the repository are".into());
        }
        let mut parts: Vec<&str> = Vec::new();
        for part in base.split('/').chain(path.split(['/', '\\'])) {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err("the path leads outside the repository; it was not read".into());
                    }
                }
                p => parts.push(p),
            }
        }
        let joined = format!("{}{}", if absolute_base { "/" } else { "" }, parts.join("/"));
        let root = &self.root;
        if root.is_empty() || root == "." || joined == *root || joined.starts_with(&format!("{root}/")) {
            Ok(joined)
        } else {
            Err(format!("the path leads outside {root}; it was not read"))
        }
    }

    pub fn read(&self, path: &str) -> Result<Arc<str>, String> {
        if let Some(text) = self.files.get(path) {
            return Ok(text.clone());
        }
        let Some(max) = self.disk else { return Err("no such file in the repository".into()) };
        // Every component from the root down must be a plain directory or file, not a link.
        let mut current = PathBuf::new();
        for part in path.split('/') {
            current.push(if part.is_empty() { "/" } else { part });
            let Ok(meta) = std::fs::symlink_metadata(&current) else { return Err("no such file".into()) };
            if meta.file_type().is_symlink() && path_within_root(&current, &self.root) {
                return Err("symbolic links are not followed".into());
            }
        }
        let meta = std::fs::metadata(&current).map_err(|e| e.to_string())?;
        if !meta.is_file() || meta.len() > max {
            return Err(format!("not a regular file under {max} bytes"));
        }
        std::fs::read_to_string(&current).map(Arc::from).map_err(|e| e.to_string())
    }

    /// Files directly in `dir`, in name order.
    pub fn in_dir(&self, dir: &str) -> Vec<(String, Arc<str>)> {
        self.files.iter().filter(|(p, _)| parent(p) == dir).map(|(p, t)| (p.clone(), t.clone())).collect()
    }
}

fn path_within_root(path: &std::path::Path, root: &str) -> bool {
    let p = path.to_string_lossy();
    root.is_empty() || root == "." || p.len() > root.len() && p.starts_with(root)
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Loads every Terraform root module in the map (directories with `.tf` files that no other
/// directory of the map calls as a local module).
///
/// `out` may already hold what the plain loaders made of the same files: a file that Terraform
/// reads (`file()`, `templatefile()`) is checked through Terraform, and on its own only when it
/// is a valid manifest that Terraform did not already check, so nothing is reported twice and a
/// template's `%{ if }` lines are not "broken YAML".
pub fn load(map: &FileMap, opts: &LoadOptions, out: &mut Loaded) {
    let (part, read) = crate::manifest::yaml::on_large_stack(|| {
        let mut part = Loaded::default();
        let read = load_here(map, opts, &mut part);
        (part, read)
    });
    let checked: BTreeSet<&str> = part.resources.iter().map(|r| &*r.origin.file).collect();
    let broken: BTreeSet<String> = out
        .findings
        .iter()
        .filter(|f| read.contains(&f.file) && f.severity == Severity::Deny && f.resource.is_none())
        .map(|f| f.file.clone())
        .collect();
    out.findings.retain(|f| !(read.contains(&f.file) && f.resource.is_none()));
    out.resources.retain(|r| {
        let file = &*r.origin.file;
        !(read.contains(file) && (checked.contains(file) || broken.contains(file)))
    });
    let mut seen = BTreeSet::new();
    for f in part.findings {
        let key = (f.file.clone(), f.region.line, f.region.column, f.severity, f.message.clone());
        if seen.insert(key) {
            out.findings.push(f);
        }
    }
    out.resources.extend(part.resources);
    out.sources.extend(part.sources);
}

/// Returns the files that Terraform read with `file()` / `templatefile()`.
fn load_here(map: &FileMap, opts: &LoadOptions, out: &mut Loaded) -> BTreeSet<String> {
    let mut read = BTreeSet::new();
    let dirs: BTreeSet<String> =
        map.files.keys().filter(|p| p.ends_with(".tf")).map(|p| parent(p).to_string()).collect();
    let mut called = BTreeSet::new();
    for dir in &dirs {
        let ctx = modules::ModuleCtx::new(map, dir, dir, modules::parse_dir(map, dir, &mut Vec::new()));
        called.extend(modules::local_calls(&ctx).into_iter().map(|(d, _, _)| d).filter(|d| d != dir));
    }
    for (path, text) in &map.files {
        if is_terraform_name(path) {
            out.sources.push((path.clone(), text.clone()));
        }
    }
    for dir in dirs.iter().filter(|d| !called.contains(*d)) {
        let files = modules::parse_dir(map, dir, &mut out.findings);
        let mut ctx = modules::ModuleCtx::new(map, dir, dir, files);
        ctx.vars = modules::root_vars(&ctx, &mut out.findings);
        let mut instances = Vec::new();
        modules::instances(&ctx, "", 0, &mut instances);
        let mut not_static = BTreeMap::new();
        for instance in instances {
            push_instance(instance, opts, out, &mut not_static);
        }
        for (index, more) in not_static.into_values() {
            if more > 0 {
                let f: &mut Finding = &mut out.findings[index];
                f.message = f.message.replacen(": ", &format!(" (and {more} more instances of it): "), 1);
            }
        }
        out.findings.extend(ctx.findings.take());
        // Each file once, however many module instances read it.
        for (path, text) in ctx.read_files.take() {
            if read.insert(path.clone()) {
                out.sources.push((path, text));
            }
        }
    }
    read
}

/// Per manifest written once but not known statically (file, line, column, deny), the finding's
/// index and how many more instances had it at that severity: a module called thousands of times
/// gives one finding, not thousands.
type NotStatic = BTreeMap<(Arc<str>, u32, u32, bool), (usize, usize)>;

fn push_instance(instance: modules::Instance, opts: &LoadOptions, out: &mut Loaded, not_static: &mut NotStatic) {
    let (node, file) = match instance.manifest {
        Some(manifest) => {
            if let NodeKind::Str(s) = &manifest.node.kind {
                let severity = if s.contains(UNKNOWN) { Severity::Warn } else { Severity::Deny };
                let span = manifest.node.span;
                let key = (instance.file.clone(), span.start.line, span.start.column, severity == Severity::Deny);
                if let Some((_, more)) = not_static.get_mut(&key) {
                    *more += 1;
                    return;
                }
                not_static.insert(key, (out.findings.len(), 0));
                out.findings.push(finding(
                    &instance.file,
                    region(manifest.node.span),
                    severity,
                    format!("{}: the manifest is not known statically ({s}); it was not checked", instance.address),
                ));
                return;
            }
            (manifest.node, manifest.file)
        }
        None => match typed::convert(&instance.resource_type, &instance.state) {
            Some(node) => (node, instance.file),
            None => return,
        },
    };
    if !matches!(node.kind, NodeKind::Map(_)) {
        return;
    }
    push_node(node, file, opts, out);
}

/// Adds one located object (from HCL, YAML or a plan) as a resource.
pub(crate) fn push_node(node: Node, file: Arc<str>, opts: &LoadOptions, out: &mut Loaded) {
    let object = node.to_json();
    let origin = Origin { file, document: Arc::new(DocTree::ready(node)), prefix: String::new() };
    super::push_resource(out, object, origin, opts);
}

/// Loads the Terraform files among in-memory texts (the App's fetched files), rooted at the
/// repository root. Other texts (YAML) are in the map too, for `file()`.
pub fn load_texts(texts: &[(String, String)], opts: &LoadOptions, out: &mut Loaded) {
    if !texts.iter().any(|(name, _)| name.ends_with(".tf")) {
        return;
    }
    let mut map = FileMap::new("");
    for (name, text) in texts {
        map.insert(name, Arc::from(text.as_str()));
    }
    load(&map, opts, out);
}

/// Loads the Terraform files among discovered files on disk: one map per command-line path (a
/// folder is its own root; a single file's root is its folder), other files read on demand.
pub fn load_paths(paths: &[PathBuf], files: &[InputFile], opts: &LoadOptions, out: &mut Loaded) {
    for path in paths {
        let display = super::display_path(path).trim_end_matches('/').to_string();
        let is_dir = path.is_dir();
        let root = if is_dir { display.clone() } else { parent(&display).to_string() };
        let root = if root == "." { String::new() } else { root };
        let mine: Vec<&InputFile> = files
            .iter()
            .filter(|f| is_terraform_name(&f.display))
            .filter(|f| {
                if is_dir {
                    root.is_empty() || f.display.starts_with(&format!("{root}/"))
                } else {
                    f.display == display
                }
            })
            .collect();
        if !mine.iter().any(|f| f.display.ends_with(".tf")) {
            continue;
        }
        let mut map = FileMap::new(&root);
        map.disk = Some(opts.limits.max_file_bytes);
        for file in mine {
            match super::read_file(file, &opts.limits) {
                Ok(text) => map.insert(&file.display, Arc::from(text)),
                Err(finding) => out.findings.push(*finding),
            }
        }
        if !is_dir {
            // A single .tf file still sees its module's other files.
            for file in files.iter().filter(|f| parent(&f.display) == root && is_terraform_name(&f.display)) {
                if let Ok(text) = super::read_file(file, &opts.limits) {
                    map.insert(&file.display, Arc::from(text));
                }
            }
        }
        load(&map, opts, out);
    }
}

/// The repository paths a `.tf` file at `path` reads: `file()` / `templatefile()` arguments that
/// are known statically, and local module directories (ending in `/`). The App fetches these
/// with the changed `.tf` files (and every `.tf`/`.tfvars` of their directories).
pub fn referenced_files(path: &str, text: &str) -> Vec<String> {
    crate::manifest::yaml::on_large_stack(|| referenced_here(path, text))
}

fn referenced_here(path: &str, text: &str) -> Vec<String> {
    let dir = parent(path).to_string();
    let Ok(file) = hcl::parse(Arc::from(path), Arc::from(text)) else { return Vec::new() };
    let map = FileMap::new("");
    let ctx = modules::ModuleCtx::new(&map, &dir, &dir, Vec::new());
    let scope = eval::Scope::new(&ctx);
    let mut found = BTreeSet::new();
    let mut visitor = Refs { calls: Vec::new() };
    hcl_edit::visit::visit_body(&mut visitor, &file.body);
    for call in visitor.calls {
        if let Some(arg) = call.args.iter().next() {
            let v: Val = scope.eval(&file, arg);
            if let Some(p) = v.as_str().filter(|_| !v.is_unknown()) {
                if let Ok(resolved) = map.resolve(&dir, &p) {
                    found.insert(resolved);
                }
            }
        }
    }
    for (module_dir, _, _) in modules::local_calls(&modules::ModuleCtx::new(&map, &dir, &dir, vec![file])) {
        found.insert(format!("{module_dir}/"));
    }
    found.into_iter().collect()
}

struct Refs {
    calls: Vec<hcl_edit::expr::FuncCall>,
}

impl hcl_edit::visit::Visit for Refs {
    fn visit_func_call(&mut self, node: &hcl_edit::expr::FuncCall) {
        if matches!(node.name.name.as_str(), "file" | "templatefile") {
            self.calls.push(node.clone());
        }
        hcl_edit::visit::visit_func_call(self, node);
    }
}

/// The unknown Terraform expression a violation depends on: the located field's value, or a
/// placeholder quoted in the message.
pub fn unknown_dependency(object: &Value, pointer: &str, message: &str) -> Option<String> {
    let from_field = (!pointer.is_empty()).then(|| object.pointer(pointer)).flatten().and_then(Value::as_str);
    [message, from_field.unwrap_or("")].into_iter().find_map(expression_in)
}

/// The expression of the first placeholder in `text`.
fn expression_in(text: &str) -> Option<String> {
    let start = text.find(UNKNOWN)? + UNKNOWN.len();
    let rest = &text[start..];
    Some(rest[..rest.find('}').unwrap_or(rest.len())].to_string())
}

/// Values tried in place of an unknown: a boolean either way, a number at zero (`runAsUser: 0`),
/// an empty string and a string no allow-list holds.
fn probes() -> Vec<Value> {
    use serde_json::json;
    vec![json!(false), json!(true), json!(0), json!(""), json!("guardrail-probe")]
}

/// JSON pointers of the string values that hold a placeholder.
fn unknown_pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.contains(UNKNOWN) => out.push(at),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                unknown_pointers(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                unknown_pointers(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        _ => {}
    }
}

/// `object` with the placeholders at `pointers` replaced by `probe` (inside a longer string,
/// by the probe's text).
fn probed(object: &Value, pointers: &[String], probe: &Value) -> Value {
    let mut copy = object.clone();
    for pointer in pointers {
        if let Some(slot) = copy.pointer_mut(pointer) {
            let Some(text) = slot.as_str() else { continue };
            let whole = text.starts_with(UNKNOWN)
                && expression_in(text).is_some_and(|e| text.len() == UNKNOWN.len() + e.len() + 1);
            *slot = if whole {
                probe.clone()
            } else {
                let replacement = match probe {
                    Value::String(s) => s.clone(),
                    Value::Null | Value::Object(_) | Value::Array(_) => String::new(),
                    other => other.to_string(),
                };
                Value::String(replace_placeholders(text, &replacement))
            };
        }
    }
    copy
}

fn replace_placeholders(text: &str, replacement: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(UNKNOWN) {
        out.push_str(&rest[..start]);
        out.push_str(replacement);
        let after = &rest[start + UNKNOWN.len()..];
        rest = after.find('}').map(|end| &after[end + 1..]).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Most unknowns tried one at a time to name the one a verdict depends on.
const MAX_PROBED_ONE_BY_ONE: usize = 8;

/// One policy's verdicts on an object with values guardrail could not know (`${unknown: …}`),
/// with each probe value in place of all of them at once: what decides whether a violation
/// depends on an unknown, and whether a pass does. Made once per policy and object.
pub struct Probes {
    pointers: Vec<String>,
    /// The policy's messages per probe (`None`: it failed on that probe).
    results: Vec<(Value, Option<Vec<String>>)>,
}

/// A policy that passes an object with unknown values but reports a violation for some value of
/// one of them: a warning at that value.
pub struct MayViolate {
    pub pointer: String,
    pub message: String,
}

impl Probes {
    /// `None` when the object holds no unknown value. `run(object)` evaluates the policy.
    pub fn run(object: &Value, run: &dyn Fn(&Value) -> Option<Vec<String>>) -> Option<Probes> {
        let mut pointers = Vec::new();
        unknown_pointers(object, String::new(), &mut pointers);
        if pointers.is_empty() {
            return None;
        }
        let results = probes()
            .into_iter()
            .map(|p| {
                let verdict = run(&probed(object, &pointers, &p));
                (p, verdict)
            })
            .collect();
        Some(Probes { pointers, results })
    }

    /// The unknown (named by its expression) whose probe alone changes the count of violations
    /// the way `changed` says; the first one when none does alone.
    fn name(
        &self,
        object: &Value,
        probe: &Value,
        run: &dyn Fn(&Value) -> Option<Vec<String>>,
        changed: &dyn Fn(usize) -> bool,
    ) -> (String, String) {
        let pointer = if self.pointers.len() == 1 {
            &self.pointers[0]
        } else {
            self.pointers
                .iter()
                .take(MAX_PROBED_ONE_BY_ONE)
                .find(|p| run(&probed(object, std::slice::from_ref(*p), probe)).is_some_and(|v| changed(v.len())))
                .unwrap_or(&self.pointers[0])
        };
        let expression = object.pointer(pointer).and_then(Value::as_str).and_then(expression_in).unwrap_or_default();
        (pointer.clone(), expression)
    }

    /// A violation is a warning only when it depends on an unknown: when, for some probe value,
    /// the policy reports fewer violations. One that stays for every probe stays a deny.
    pub fn soften(
        &self,
        object: &Value,
        original: usize,
        located: &str,
        severity: &mut Severity,
        message: &mut String,
        run: &dyn Fn(&Value) -> Option<Vec<String>>,
    ) {
        let fewer = |n: usize| n < original;
        let Some((probe, _)) = self.results.iter().find(|(_, r)| r.as_ref().is_some_and(|v| fewer(v.len()))) else {
            return;
        };
        // The located field's own unknown names it without more evaluations.
        let expression = match object.pointer(located).and_then(Value::as_str).and_then(expression_in) {
            Some(e) if !located.is_empty() => e,
            _ => self.name(object, probe, run, &fewer).1,
        };
        if *severity == Severity::Deny {
            *severity = Severity::Warn;
        }
        message.push_str(&format!(
            " (this depends on `{expression}`, which is not known before Terraform runs; check the value it will have)"
        ));
    }

    /// A pass that turns into a violation for some probe value: "not known", never a silent pass.
    pub fn may_violate(
        &self,
        object: &Value,
        original: usize,
        run: &dyn Fn(&Value) -> Option<Vec<String>>,
    ) -> Option<MayViolate> {
        let more = |n: usize| n > original;
        let (probe, found) =
            self.results.iter().find_map(|(p, r)| r.as_ref().filter(|v| more(v.len())).map(|v| (p, v)))?;
        let (pointer, expression) = self.name(object, probe, run, &more);
        let example = found.last().cloned().unwrap_or_default();
        Some(MayViolate {
            message: format!(
                "this may be a violation: `{expression}` is not known before Terraform runs, and with the value {probe} the policy reports: {example}"
            ),
            pointer,
        })
    }
}

/// A violation that rests on a value guardrail could not know is a warning, not a verdict.
/// (Without a policy to re-run; `Probes::soften` decides by trying values.)
pub fn soften_unknown(object: &Value, pointer: &str, severity: &mut Severity, message: &mut String) {
    if let Some(expression) = unknown_dependency(object, pointer, message) {
        if *severity == Severity::Deny {
            *severity = Severity::Warn;
        }
        message.push_str(&format!(
            " (this depends on `{expression}`, which is not known before Terraform runs; check the value it will have)"
        ));
    }
}
