//! Terraform modules: a directory of `.tf` files with its variables (defaults, `*.tfvars`, or the
//! arguments of the `module` block that calls it), locals, resources and local child modules.
//! Resources become instances (one per `count` index or `for_each` key) in Terraform's state
//! shape, ready for `typed::convert` or, for `kubernetes_manifest`, for use as they are.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use hcl_edit::expr::Expression;
use hcl_edit::structure::{Body, Structure};

use super::budget::{Bound, Budget, MAX_INSTANCES, MAX_MODULE_DEPTH};
use super::eval::{iterate, Scope, Val};
use super::hcl::HclFile;
use super::FileMap;
use crate::findings::{Finding, Region, Severity};
use crate::manifest::node::{Node, NodeKind, Span};

/// One evaluated resource instance.
pub struct Instance {
    pub address: String,
    pub resource_type: String,
    /// Terraform's state shape: attributes, and blocks as lists of objects.
    pub state: Node,
    pub file: Arc<str>,
    /// `kubernetes_manifest.manifest` / `kubectl_manifest.yaml_body`, evaluated with its own file's spans.
    pub manifest: Option<Val>,
}

pub struct ModuleCtx<'a> {
    pub input: &'a FileMap,
    /// The module's directory, and the root module's (Terraform's working directory), as map paths.
    pub dir: String,
    pub root_dir: String,
    pub files: Rc<[HclFile]>,
    pub vars: HashMap<String, Option<Val>>,
    /// The module calls that lead here, without instance keys (`module.a.module.b.`): where a
    /// fact holds for every instance, findings name the configuration, as Terraform's do.
    call_path: String,
    /// By name: the file it is in and its expression.
    locals: Rc<HashMap<String, (usize, Expression)>>,
    local_values: RefCell<HashMap<String, Rc<Val>>>,
    in_progress: RefCell<HashSet<String>>,
    pub findings: RefCell<Vec<Finding>>,
    pub read_files: RefCell<Vec<(String, Arc<str>)>>,
    /// Shared with every module this one calls (the bounds are for the whole root module).
    pub budget: Rc<Budget>,
    /// Module directories parsed so far in this load, shared like the budget: a module called
    /// from many places, or with many instances, is parsed once.
    parsed: Rc<RefCell<HashMap<String, Parsed>>>,
}

/// A module directory's files and locals, as parsed once.
#[derive(Clone)]
struct Parsed {
    files: Rc<[HclFile]>,
    locals: Rc<HashMap<String, (usize, Expression)>>,
}

impl Parsed {
    fn new(files: Vec<HclFile>) -> Self {
        let mut locals = HashMap::new();
        for (i, f) in files.iter().enumerate() {
            for block in f.body.get_blocks("locals") {
                for attr in block.body.attributes() {
                    locals.insert(attr.key.as_str().to_string(), (i, attr.value.clone()));
                }
            }
        }
        Parsed { files: files.into(), locals: Rc::new(locals) }
    }
}

impl<'a> ModuleCtx<'a> {
    pub fn new(input: &'a FileMap, dir: &str, root_dir: &str, files: Vec<HclFile>) -> Self {
        Self::with(input, dir, root_dir, Parsed::new(files))
    }

    fn with(input: &'a FileMap, dir: &str, root_dir: &str, parsed: Parsed) -> Self {
        ModuleCtx {
            input,
            dir: dir.into(),
            root_dir: root_dir.into(),
            files: parsed.files,
            vars: HashMap::new(),
            call_path: String::new(),
            locals: parsed.locals,
            local_values: Default::default(),
            in_progress: Default::default(),
            findings: Default::default(),
            read_files: Default::default(),
            budget: Default::default(),
            parsed: Default::default(),
        }
    }

    /// The context of a module this one calls from `dir`: the same load (budget, parsed files),
    /// no variables yet. The directory is parsed the first time only, its syntax errors reported
    /// then.
    fn child(&self, dir: &str) -> ModuleCtx<'a> {
        let cached = self.parsed.borrow().get(dir).cloned();
        let parsed = cached.unwrap_or_else(|| {
            let parsed = Parsed::new(parse_dir(self.input, dir, &mut self.findings.borrow_mut()));
            self.parsed.borrow_mut().insert(dir.to_string(), parsed.clone());
            parsed
        });
        let mut child = Self::with(self.input, dir, &self.root_dir, parsed);
        child.budget = self.budget.clone();
        child.parsed = self.parsed.clone();
        child
    }

    pub fn var_ref(&self, name: &str) -> Option<&Val> {
        self.vars.get(name).and_then(Option::as_ref)
    }

    /// A local's value, evaluated once (a cycle is unknown).
    pub fn local_rc(&self, name: &str) -> Option<Rc<Val>> {
        if let Some(v) = self.local_values.borrow().get(name) {
            return Some(v.clone());
        }
        let (file, expr) = self.locals.get(name)?;
        if !self.in_progress.borrow_mut().insert(name.to_string()) {
            return None; // a cycle: unknown
        }
        let value = Rc::new(Scope::new(self).eval(&self.files[*file], expr));
        self.in_progress.borrow_mut().remove(name);
        self.local_values.borrow_mut().insert(name.to_string(), value.clone());
        Some(value)
    }

    /// `path.module` / `path.root` / `path.cwd`, relative to the working directory as Terraform has them.
    pub fn path(&self, which: &str) -> Option<String> {
        match which {
            "module" => Some(relative(&self.root_dir, &self.dir)),
            "root" | "cwd" => Some(".".into()),
            _ => None,
        }
    }

    /// Reads a file for `file()` / `templatefile()`: relative to the working directory, inside the
    /// input root. `Err((message, true))`: the file is not in the repository (absolute, `~`,
    /// outside the root, missing), so its content is only known where Terraform runs.
    pub fn read(&self, path: &str) -> Result<(Arc<str>, Arc<str>), (String, bool)> {
        let resolved = self.input.resolve(&self.root_dir, path).map_err(|e| (e, true))?;
        let text = self.input.read(&resolved).map_err(|e| {
            let missing = e.starts_with("no such file");
            (e, missing)
        })?;
        let name: Arc<str> = Arc::from(resolved.as_str());
        self.read_files.borrow_mut().push((resolved, text.clone()));
        Ok((name, text))
    }

    pub fn error(&self, file: &HclFile, span: Span, message: String) {
        self.error_at(&file.name, span.start.line, span.start.column, message);
    }

    pub fn error_at(&self, file: &str, line: u32, column: u32, message: String) {
        self.findings.borrow_mut().push(super::finding(file, Region::point(line, column), Severity::Deny, message));
    }

    /// A value guardrail cannot evaluate: a warning naming the expression, at it.
    pub fn warn(&self, file: &HclFile, span: Span, message: String) {
        self.findings.borrow_mut().push(super::finding(&file.name, super::region(span), Severity::Warn, message));
    }

    /// A bound was hit here: a deny finding naming it (the global bounds once per load).
    pub fn over(&self, file: &str, span: Span, bound: Bound) {
        let global = matches!(bound, Bound::Steps | Bound::Cells | Bound::TotalInstances);
        if global && !self.budget.first_report(bound) {
            return;
        }
        self.findings.borrow_mut().push(super::finding(file, super::region(span), Severity::Deny, bound.describe()));
    }
}

/// The path of `to` relative to `from` (both map paths), as `path.module` spells it.
fn relative(from: &str, to: &str) -> String {
    let f: Vec<&str> = from.split('/').filter(|s| !s.is_empty()).collect();
    let t: Vec<&str> = to.split('/').filter(|s| !s.is_empty()).collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; f.len() - common];
    parts.extend(&t[common..]);
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// Parses the `.tf` files of a directory (syntax errors become findings).
pub fn parse_dir(input: &FileMap, dir: &str, findings: &mut Vec<Finding>) -> Vec<HclFile> {
    let mut files = Vec::new();
    for (path, text) in input.in_dir(dir) {
        if !path.ends_with(".tf") {
            continue;
        }
        match super::hcl::parse(Arc::from(path.as_str()), text.clone()) {
            Ok(f) => files.push(f),
            Err(e) => findings.push(super::finding(
                &path,
                Region::point(e.line, e.column),
                Severity::Deny,
                format!("Terraform file does not parse, so it was not checked: {}", e.message),
            )),
        }
    }
    files
}

/// Root-module variable values: defaults, then `terraform.tfvars`, then `*.auto.tfvars` (in name
/// order); other `*.tfvars` files count only where they all agree (they are per-environment).
pub fn root_vars(ctx: &ModuleCtx<'_>, findings: &mut Vec<Finding>) -> HashMap<String, Option<Val>> {
    let mut vars = declared_defaults(ctx);
    let mut layered: Vec<BTreeMap<String, Val>> = Vec::new();
    let mut optional: Vec<BTreeMap<String, Val>> = Vec::new();
    for (path, text) in ctx.input.in_dir(&ctx.dir) {
        if !path.ends_with(".tfvars") {
            continue;
        }
        let file = match super::hcl::parse(Arc::from(path.as_str()), text.clone()) {
            Ok(f) => f,
            Err(e) => {
                findings.push(super::finding(
                    &path,
                    Region::point(e.line, e.column),
                    Severity::Deny,
                    format!("variables file does not parse: {}", e.message),
                ));
                continue;
            }
        };
        let scope = Scope::new(ctx);
        let values: BTreeMap<String, Val> =
            file.body.attributes().map(|a| (a.key.as_str().to_string(), scope.eval(&file, &a.value))).collect();
        let name = path.rsplit('/').next().unwrap_or("");
        if name == "terraform.tfvars" || name.ends_with(".auto.tfvars") {
            layered.push(values);
        } else {
            optional.push(values);
        }
    }
    for values in layered {
        for (k, v) in values {
            vars.insert(k, Some(v));
        }
    }
    let names: HashSet<String> = optional.iter().flat_map(|m| m.keys().cloned()).collect();
    for name in names {
        let set: Vec<&Val> = optional.iter().filter_map(|m| m.get(&name)).collect();
        let agree = set.len() == optional.len() && set.windows(2).all(|w| w[0].node.to_json() == w[1].node.to_json());
        if agree {
            vars.insert(name, Some(set[0].clone()));
        } else if vars.get(&name).is_some_and(Option::is_some) && set.len() < optional.len() {
            // Some environments keep the default: it is not the only value.
            vars.insert(name, None);
        } else if !agree {
            vars.insert(name, None);
        }
    }
    vars
}

/// `variable` blocks: name -> default (None when there is none).
pub fn declared_defaults(ctx: &ModuleCtx<'_>) -> HashMap<String, Option<Val>> {
    let scope = Scope::new(ctx);
    let mut vars = HashMap::new();
    for f in ctx.files.iter() {
        for block in f.body.get_blocks("variable") {
            let Some(name) = block.labels.first().map(|l| l.as_str().to_string()) else { continue };
            let default = block.body.get_attribute("default").map(|a| scope.eval(f, &a.value));
            let default = default.filter(|d| !matches!(d.node.kind, NodeKind::Null));
            vars.insert(name, default);
        }
    }
    vars
}

/// `module` blocks with a local source: (directory, block, file index).
pub fn local_calls(ctx: &ModuleCtx<'_>) -> Vec<(String, usize, String)> {
    let mut calls = Vec::new();
    for (i, f) in ctx.files.iter().enumerate() {
        for block in f.body.get_blocks("module") {
            let Some(source) = block.body.get_attribute("source").and_then(|a| a.value.as_str()) else { continue };
            if !(source.starts_with("./") || source.starts_with("../")) {
                continue;
            }
            let name = block.labels.first().map(|l| l.as_str().to_string()).unwrap_or_default();
            match ctx.input.resolve(&ctx.dir, source) {
                Ok(dir) => calls.push((dir, i, name)),
                Err(message) => {
                    let span = block.body.get_attribute("source").map(|a| f.span_of(&a.value)).unwrap_or_default();
                    ctx.error(f, span, format!("module \"{name}\" source \"{source}\": {message}"));
                }
            }
        }
    }
    calls
}

/// Evaluates a module: its resources, then the local modules it calls. Every instance (a
/// resource's or a module call's) counts against the root module's total.
pub fn instances(ctx: &ModuleCtx<'_>, prefix: &str, depth: usize, out: &mut Vec<Instance>) {
    let scope = Scope::new(ctx);
    for f in ctx.files.iter() {
        for block in f.body.get_blocks("resource") {
            let labels: Vec<&str> = block.labels.iter().map(|l| l.as_str()).collect();
            let [rtype, rname] = labels.as_slice() else { continue };
            if !super::is_kubernetes_type(rtype) {
                if super::is_unconverted_kubernetes_type(rtype) {
                    ctx.findings.borrow_mut().push(super::finding(
                        &f.name,
                        super::region(f.span_of(&block.ident)),
                        Severity::Info,
                        format!(
                            "{}{rtype}.{rname}: guardrail does not convert {rtype} resources to Kubernetes objects, so no policy checked it",
                            ctx.call_path
                        ),
                    ));
                }
                continue;
            }
            let address = format!("{prefix}{rtype}.{rname}");
            for (suffix, binds) in expand(&scope, f, &block.body, &address, f.span_of(&block.ident)) {
                let inner = scope.with(binds);
                let state = state(&inner, f, &block.body, f.span_of(block), f.span_of(&block.ident));
                let manifest = match *rtype {
                    "kubernetes_manifest" => block.body.get_attribute("manifest").map(|a| inner.eval(f, &a.value)),
                    "kubectl_manifest" => block.body.get_attribute("yaml_body").map(|a| {
                        let v = inner.eval(f, &a.value);
                        super::funcs::decode_yaml(&inner, f, v, f.span_of(&a.value))
                    }),
                    _ => None,
                };
                if manifest.is_none() && super::typed_tables::kind_of(rtype).is_none() {
                    continue;
                }
                out.push(Instance {
                    address: format!("{address}{suffix}"),
                    resource_type: rtype.to_string(),
                    state,
                    file: f.name.clone(),
                    manifest,
                });
            }
        }
    }
    for (dir, file_index, name) in local_calls(ctx) {
        let f = &ctx.files[file_index];
        let Some(block) = f.body.get_blocks("module").find(|b| b.labels.first().map(|l| l.as_str()) == Some(&name))
        else {
            continue;
        };
        if depth >= MAX_MODULE_DEPTH {
            ctx.error(
                f,
                f.span_of(&block.ident),
                format!(
                    "module \"{name}\": modules call modules more than {MAX_MODULE_DEPTH} levels deep here (guardrail's module recursion bound); it was not checked"
                ),
            );
            continue;
        }
        // Parsed (and its syntax errors reported) even when no instance is made.
        drop(ctx.child(&dir));
        // What the instances found, each once: a module called thousands of times (by itself,
        // with `count`) finds the same things in each instance.
        let mut merged = HashSet::new();
        for (suffix, binds) in expand(&scope, f, &block.body, &format!("module.{name}"), f.span_of(&block.ident)) {
            let inner = scope.with(binds);
            let mut child = ctx.child(&dir);
            child.call_path = format!("{}module.{name}.", ctx.call_path);
            let mut vars = declared_defaults(&child);
            for attr in block.body.attributes() {
                let key = attr.key.as_str();
                if matches!(key, "source" | "version" | "providers" | "count" | "for_each" | "depends_on") {
                    continue;
                }
                // The value is reported where the caller wrote it (see `eval::mark`).
                let mut node = inner.eval(f, &attr.value).adopt(&f.name, f.span_of(&attr.value));
                super::eval::set_key(&mut node, &f.name, f.span_of(&attr.key));
                super::eval::mark(&mut node, &f.name);
                vars.insert(key.to_string(), Some(Val { node, file: f.name.clone(), text: None, encoded: None }));
            }
            child.vars = vars;
            instances(&child, &format!("{prefix}module.{name}{suffix}."), depth + 1, out);
            let found = child.findings.take().into_iter().filter(|f| {
                merged.insert((f.file.clone(), f.region.line, f.region.column, f.severity, f.message.clone()))
            });
            ctx.findings.borrow_mut().extend(found);
            ctx.read_files.borrow_mut().extend(child.read_files.take());
            if ctx.budget.exhausted() {
                break;
            }
        }
    }
}

/// `count` / `for_each` -> one (address suffix, bindings) per instance. More than
/// `MAX_INSTANCES` is a deny finding at the block, more than the root module's total allows one
/// at the argument where the total was passed; the instances within the bounds are still checked.
fn expand(
    scope: &Scope<'_>,
    f: &HclFile,
    body: &Body,
    address: &str,
    block_span: Span,
) -> Vec<(String, Vec<(String, Val)>)> {
    let budget = &scope.module.budget;
    // How many of `n` instances may be made; the bound hit is reported at `span`.
    let allow = |n: usize, span: Span, what: &str| -> usize {
        let mut allowed = n;
        if n > MAX_INSTANCES {
            // At the block: it is the block whose instances are cut.
            scope.module.error(
                f,
                block_span,
                format!(
                    "{address}: {what} makes {n} instances, more than guardrail's bound of {MAX_INSTANCES} per resource; only the first {MAX_INSTANCES} were checked"
                ),
            );
            allowed = MAX_INSTANCES;
        }
        let left = budget.instances_left();
        if allowed > left {
            scope.module.over(&f.name, span, Bound::TotalInstances);
            allowed = left;
        }
        let _ = budget.instances(allowed);
        allowed
    };
    if let Some(count) = body.get_attribute("count") {
        let v = scope.eval(f, &count.value);
        let n = match v.node.kind {
            NodeKind::Int(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
            NodeKind::Float(x) if x >= 0.0 && x.fract() == 0.0 => x.min(usize::MAX as f64) as usize,
            _ => {
                scope.module.findings.borrow_mut().push(super::finding(
                    &f.name,
                    super::region(f.span_of(&count.value)),
                    Severity::Warn,
                    format!(
                        "{address}: count is not known statically ({}); the resource was not checked",
                        f.text_of(&count.value)
                    ),
                ));
                return Vec::new();
            }
        };
        let n = allow(n, f.span_of(count), "count");
        return (0..n)
            .map(|i| {
                let count_obj = Val::new(
                    NodeKind::Map(vec![("index".into(), Node::new(v.node.span, NodeKind::Int(i as i64)))]),
                    v.node.span,
                    &v.file,
                );
                (format!("[{i}]"), vec![("count".to_string(), count_obj)])
            })
            .collect();
    }
    if let Some(for_each) = body.get_attribute("for_each") {
        let v = scope.eval(f, &for_each.value);
        let Some(items) = iterate(&v).filter(|_| !v.is_unknown() || matches!(v.node.kind, NodeKind::Map(_))) else {
            scope.module.findings.borrow_mut().push(super::finding(
                &f.name,
                super::region(f.span_of(&for_each.value)),
                Severity::Warn,
                format!(
                    "{address}: for_each is not known statically ({}); the resource was not checked",
                    f.text_of(&for_each.value)
                ),
            ));
            return Vec::new();
        };
        let is_set = matches!(v.node.kind, NodeKind::Seq(_));
        let n = allow(items.len(), f.span_of(for_each), "for_each");
        return items
            .into_iter()
            .take(n)
            .map(|(k, val)| {
                // A set's elements are its keys.
                let key = if is_set { val.clone() } else { k };
                let key_text = key.as_str().unwrap_or_default();
                let each = Val::new(
                    NodeKind::Map(vec![("key".into(), key.node.clone()), ("value".into(), val.node.clone())]),
                    key.node.span,
                    &val.file,
                );
                (
                    format!("[{}]", serde_json::to_string(&key_text).unwrap_or_default()),
                    vec![("each".to_string(), each)],
                )
            })
            .collect();
    }
    if allow(1, block_span, "the block") == 0 {
        return Vec::new();
    }
    vec![(String::new(), Vec::new())]
}

/// A block body in Terraform's state shape: attributes as values, blocks (and `dynamic` blocks)
/// as lists of objects. Meta-arguments are left out.
pub fn state(scope: &Scope<'_>, f: &HclFile, body: &Body, span: Span, key_span: Span) -> Node {
    let mut entries: Vec<(String, Node)> = Vec::new();
    let push_block = |entries: &mut Vec<(String, Node)>, name: &str, node: Node, key: Span| match entries
        .iter_mut()
        .find(|(k, _)| k == name)
    {
        Some((_, Node { kind: NodeKind::Seq(items), .. })) => items.push(node),
        _ => {
            let mut seq = Node::new(node.span, NodeKind::Seq(vec![node]));
            seq.key_span = Some(key);
            entries.push((name.to_string(), seq));
        }
    };
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                let key = attr.key.as_str();
                if matches!(key, "count" | "for_each" | "depends_on" | "provider") {
                    continue;
                }
                let value_span = f.span_of(&attr.value);
                let mut node = scope.eval(f, &attr.value).adopt(&f.name, value_span);
                super::eval::set_key(&mut node, &f.name, f.span_of(&attr.key));
                entries.retain(|(k, _)| k != key);
                entries.push((key.to_string(), node));
            }
            Structure::Block(block) => {
                let ident = block.ident.as_str();
                if matches!(ident, "lifecycle" | "timeouts" | "provisioner" | "connection") {
                    continue;
                }
                let key = f.span_of(&block.ident);
                if ident == "dynamic" {
                    let Some(name) = block.labels.first().map(|l| l.as_str().to_string()) else { continue };
                    let iterator = block
                        .body
                        .get_attribute("iterator")
                        .and_then(|a| a.value.as_variable().map(|v| v.as_str().to_string()))
                        .unwrap_or_else(|| name.clone());
                    let Some(content) = block.body.get_blocks("content").next() else { continue };
                    let collection = block.body.get_attribute("for_each").map(|a| scope.eval(f, &a.value));
                    let Some(collection) = collection else { continue };
                    let Some(items) = iterate(&collection) else {
                        scope.module.warn(
                            f,
                            f.span_of(block),
                            format!(
                                "dynamic \"{name}\": for_each is not known statically ({}); these blocks were not checked",
                                placeholder_text(&collection)
                            ),
                        );
                        continue;
                    };
                    // The elements keep the file they were written in (a module argument's is the caller's).
                    let source = collection.file.clone();
                    for (k, v) in items {
                        let each = Val::new(
                            NodeKind::Map(vec![("key".into(), k.node), ("value".into(), v.node)]),
                            f.span_of(block),
                            &source,
                        );
                        let inner = scope.with(vec![(iterator.clone(), each)]);
                        let node = state(&inner, f, &content.body, f.span_of(content), key);
                        push_block(&mut entries, &name, node, key);
                    }
                    continue;
                }
                let node = state(scope, f, &block.body, f.span_of(block), key);
                push_block(&mut entries, ident, node, key);
            }
        }
    }
    let mut node = Node::new(span, NodeKind::Map(entries));
    node.key_span = Some(key_span);
    node
}

/// The expression an unknown value stands for (or the value's text).
fn placeholder_text(v: &Val) -> String {
    let text = v.as_str().unwrap_or_default();
    match text.find(super::eval::UNKNOWN) {
        Some(start) => {
            let rest = &text[start + super::eval::UNKNOWN.len()..];
            rest[..rest.find('}').unwrap_or(rest.len())].to_string()
        }
        None => "not a list or map".into(),
    }
}
