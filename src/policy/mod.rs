//! Policies: Gatekeeper ConstraintTemplates + Constraints (used unchanged), ExpansionTemplates,
//! the built-in pack, conftest modules, and ValidatingAdmissionPolicies with their bindings. This
//! is the only module that talks to regorus (through `engine`) and to CEL (through `cel`); the rest
//! of guardrail sees `PolicySet`, `Check` and `Hit`.

pub mod analysis;
pub mod cel;
pub mod compat;
pub mod conftest;
pub mod constraint;
pub mod engine;
pub mod expansion;
pub mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::findings::Severity;
use crate::manifest::{self, split_api_version, Resource};
pub use conftest::Hit;
use constraint::Constraint;
pub use engine::EvalError;
use expansion::ExpansionTemplate;
use template::{Template, TemplateBody};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin_pack.rs"));
}

/// Names of the built-in policies (folder names under `policies/`).
pub fn builtin_names() -> Vec<&'static str> {
    builtin::BUILTIN.iter().map(|(n, _, _)| *n).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("policy {policy} does not compile: {message}")]
    Rego { policy: String, message: String },
}

/// Everything guardrail evaluates.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    pub templates: Vec<Template>,
    pub constraints: Vec<Constraint>,
    pub expansions: Vec<ExpansionTemplate>,
    pub modules: Vec<conftest::Module>,
    /// Which built-in policy a template came from (template index -> folder name).
    pub builtin_of: BTreeMap<usize, String>,
    /// ValidatingAdmissionPolicies, their bindings, and the objects their parameters come from.
    pub vaps: cel::vap::Set,
    /// How the set was made from sources (`None` when built by hand): what a worker process needs
    /// to make the same set again (`isolate::Request::Scan`).
    pub recipe: Option<std::sync::Arc<Recipe>>,
}

/// The sources and options a set was loaded from, and the built-ins whose constraints stay.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Recipe {
    pub groups: Vec<Vec<(String, String)>>,
    pub options: LoadOptions,
    /// `report::catalog::disable_builtins` left only these built-ins' constraints; all when `None`.
    pub enabled: Option<Vec<String>>,
}

impl Recipe {
    /// The same set, loaded again (in a worker process).
    pub fn load(&self) -> Result<PolicySet, Vec<PolicyError>> {
        let mut set = PolicySet::from_sources(&self.groups, &self.options)?;
        if let Some(enabled) = &self.enabled {
            crate::report::catalog::disable_builtins(&mut set, enabled);
        }
        Ok(set)
    }
}

/// Options for loading policies.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LoadOptions {
    pub builtin: bool,
    /// Only these built-ins (all when empty).
    pub only_builtin: Vec<String>,
    pub time_limit: Duration,
    /// Run a template's `K8sNativeValidation` code where it has one (Gatekeeper's default); off,
    /// its Rego runs (`--enable-k8s-native-validation=false`).
    pub k8s_native_validation: bool,
    /// conftest's conventions for `.rego` modules (namespaces, data, builtin errors).
    pub conftest: conftest::Options,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            builtin: true,
            only_builtin: Vec::new(),
            time_limit: engine::DEFAULT_TIME_LIMIT,
            k8s_native_validation: true,
            conftest: conftest::Options::default(),
        }
    }
}

/// One policy applied to one object: a template with a constraint, or a conftest rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Constraint {
        template: usize,
        constraint: usize,
    },
    Rule {
        module: usize,
        rule: usize,
    },
    /// A ValidatingAdmissionPolicyBinding with one of its parameter objects; `audit` runs the
    /// policy's audit annotations instead of its validations.
    Vap {
        binding: usize,
        param: cel::vap::Param,
        audit: bool,
    },
}

impl PolicySet {
    /// Loads the built-in pack (unless disabled) and every policy file under `paths`.
    pub fn load(paths: &[PathBuf], opts: &LoadOptions) -> Result<PolicySet, Vec<PolicyError>> {
        let mut errors = Vec::new();
        let mut groups = Vec::new();
        for path in paths {
            let mut files = Vec::new();
            if let Err(e) = collect_policy_files(path, &mut files) {
                errors.push(e);
                continue;
            }
            let mut group = Vec::new();
            for file in files {
                let display = file.to_string_lossy().replace('\\', "/");
                match std::fs::read_to_string(&file) {
                    Ok(text) => group.push((display, text)),
                    Err(e) => errors.push(PolicyError::Io { path: display, message: e.to_string() }),
                }
            }
            groups.push(group);
        }
        match Self::from_sources(&groups, opts) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// Loads the built-in pack (unless disabled) and policy files already in memory, as `(name, text)`
    /// groups: the `.rego` files of one group form one conftest module set (one `--policy` folder, or
    /// the policy repository). Files other than `.yaml`, `.yml` and `.rego` are ignored.
    pub fn from_sources(groups: &[Vec<(String, String)>], opts: &LoadOptions) -> Result<PolicySet, Vec<PolicyError>> {
        let mut set = PolicySet::default();
        let mut errors = Vec::new();
        if opts.builtin {
            for (name, template_text, constraint_text) in builtin::BUILTIN {
                if !opts.only_builtin.is_empty() && !opts.only_builtin.iter().any(|n| n == name) {
                    continue;
                }
                let file = format!("builtin:{name}");
                let before = set.templates.len();
                set.add_yaml(&format!("{file}/template.yaml"), template_text, opts, &mut errors);
                if set.templates.len() > before {
                    set.builtin_of.insert(before, name.to_string());
                }
                set.add_yaml(&format!("{file}/constraint.yaml"), constraint_text, opts, &mut errors);
            }
        }
        // Every `.rego` file forms one module set, as conftest loads several `--policy` paths.
        let mut rego = Vec::new();
        for group in groups {
            for (name, text) in group {
                if name.ends_with(".rego") {
                    rego.push((name.clone(), text.clone()));
                } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                    set.add_yaml(name, text, opts, &mut errors);
                }
            }
        }
        if !rego.is_empty() {
            match conftest::load_with(&rego, opts.time_limit, &opts.conftest) {
                Ok(m) => set.modules.push(m),
                Err(e) => errors.push(e),
            }
        }
        // Built-in expansions for kinds no loaded ExpansionTemplate covers.
        for d in expansion::defaults() {
            let covered = set.expansions.iter().any(|t| {
                d.apply_to.iter().any(|(g, _, k)| {
                    g.iter().any(|g| {
                        k.iter().any(|k| t.applies(&if g.is_empty() { "v1".into() } else { format!("{g}/v1") }, k))
                    })
                })
            });
            if !covered {
                set.expansions.push(d);
            }
        }
        for b in &set.vaps.bindings {
            if !set.vaps.policies.iter().any(|p| p.name == b.policy) {
                errors.push(PolicyError::Invalid {
                    file: b.file.clone(),
                    message: format!(
                        "ValidatingAdmissionPolicyBinding {} binds policy {}, but no ValidatingAdmissionPolicy has that name",
                        b.name, b.policy
                    ),
                });
            }
        }
        let kinds: Vec<&str> = set.templates.iter().map(|t| t.kind.as_str()).collect();
        for c in &set.constraints {
            if !set.templates.iter().any(|t| t.kind == c.kind) {
                let text = groups.iter().flatten().find(|(n, _)| *n == c.file).map(|(_, t)| t.as_str());
                errors.push(constraint::without_template(c, &kinds, text));
            }
        }
        if errors.is_empty() {
            set.recipe =
                Some(std::sync::Arc::new(Recipe { groups: groups.to_vec(), options: opts.clone(), enabled: None }));
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// Adds the policy objects of one YAML text (templates, constraints, expansion templates).
    pub fn add_yaml(&mut self, file: &str, text: &str, opts: &LoadOptions, errors: &mut Vec<PolicyError>) {
        for object in policy_objects(file, text, errors) {
            if template::is_template(&object) {
                match template::load(&object, file, opts.time_limit, opts.k8s_native_validation) {
                    Ok(t) => match self.templates.iter().position(|x| x.kind == t.kind) {
                        // A second definition of a kind replaces the first only when it says so:
                        // otherwise a policy could switch a built-in (or another policy) off.
                        Some(i) if overrides(&object) => {
                            self.builtin_of.remove(&i);
                            self.templates[i] = t;
                        }
                        Some(i) => errors.push(PolicyError::Invalid {
                            file: file.into(),
                            message: format!(
                                "ConstraintTemplate kind {} is defined twice: in {} and in {}. Rename one, or annotate the one that should win with {OVERRIDE_ANNOTATION}: \"true\" (see docs/policy-authors.md)",
                                t.kind, self.templates[i].file, file
                            ),
                        }),
                        None => self.templates.push(t),
                    },
                    Err(e) => errors.push(template::in_yaml(e, &object, file, text)),
                }
            } else if constraint::is_constraint(&object) {
                let c = constraint::load(&object, file);
                self.constraints.retain(|x| !(x.kind == c.kind && x.name == c.name));
                self.constraints.push(c);
            } else if expansion::is_expansion(&object) {
                match expansion::load(&object) {
                    Ok(t) => self.expansions.push(t),
                    Err(message) => errors.push(PolicyError::Invalid { file: file.into(), message }),
                }
            } else if cel::vap::is_policy(&object) {
                match cel::vap::Policy::load(&object, file) {
                    Ok(p) => self.vaps.add_policy(p),
                    Err(message) => errors.push(PolicyError::Invalid { file: file.into(), message }),
                }
            } else if cel::vap::is_binding(&object) {
                match cel::vap::Binding::load(&object, file) {
                    Ok(b) => self.vaps.add_binding(b),
                    Err(message) => errors.push(PolicyError::Invalid { file: file.into(), message }),
                }
            } else if object.get("kind").is_some() {
                self.vaps.objects.push(object); // a parameter object, perhaps
            }
        }
    }

    pub fn template_for(&self, kind: &str) -> Option<usize> {
        self.templates.iter().position(|t| t.kind == kind)
    }

    /// The policy name findings carry: built-in folder name, else the template's kind.
    pub fn policy_name(&self, check: Check) -> String {
        match check {
            Check::Constraint { template, .. } => {
                self.builtin_of.get(&template).cloned().unwrap_or_else(|| self.templates[template].kind.clone())
            }
            Check::Rule { module, rule } => {
                let r = &self.modules[module].rules[rule];
                r.package.clone()
            }
            Check::Vap { binding, .. } => self.vaps.bindings[binding].policy.clone(),
        }
    }

    /// For a conftest rule that an `exception` rule excuses on this object: the rule's name and the
    /// query conftest prints for it.
    pub fn exception_applied(&self, check: Check, object: &Prepared) -> Option<(String, String)> {
        let Check::Rule { module, rule } = check else { return None };
        let (m, r) = (&self.modules[module], &self.modules[module].rules[rule]);
        conftest::excepted(m, r, &object.raw).ok().filter(|e| *e).map(|_| (r.rule.clone(), r.exception_query()))
    }

    /// The constraint name findings carry: the Constraint's, or the binding's; none for conftest.
    pub fn constraint_name(&self, check: Check) -> String {
        match check {
            Check::Constraint { constraint, .. } => self.constraints[constraint].name.clone(),
            Check::Rule { .. } => String::new(),
            Check::Vap { binding, .. } => self.vaps.bindings[binding].name.clone(),
        }
    }

    /// Every check that applies to `resource`, with its severity.
    pub fn checks_for(&self, resource: &Resource, ctx: &Context) -> Vec<(Check, Severity)> {
        let mut out = Vec::new();
        let ns = ctx.namespaces.get(resource.namespace());
        let source = if resource.implied_by.is_some() { "Generated" } else { "Original" };
        let target = constraint::Target { object: &resource.object, namespace: ns, source };
        for (ci, c) in self.constraints.iter().enumerate() {
            let Some(mut severity) = c.severity else { continue };
            let template = match ctx.template_of.get(ci) {
                Some(t) => *t,
                None => self.template_for(&c.kind),
            };
            let Some(ti) = template else { continue };
            if !c.matcher.matches(&target) {
                continue;
            }
            if let Some(action) = resource.implied_by.as_ref().and_then(|i| i.enforcement_action.as_deref()) {
                severity = constraint::action_severity(action).unwrap_or(severity);
            }
            out.push((Check::Constraint { template: ti, constraint: ci }, severity));
        }
        out.extend(self.vap_checks(resource, ns, ctx));
        if resource.implied_by.is_none() {
            for (mi, m) in self.modules.iter().enumerate() {
                for (ri, r) in m.rules.iter().enumerate() {
                    out.push((Check::Rule { module: mi, rule: ri }, r.severity));
                }
            }
        }
        out
    }

    /// Runs one check on an object (the real one, or a variant while locating).
    pub fn run(&self, check: Check, object: &Value, ctx: &Context) -> Result<Vec<Hit>, EvalError> {
        self.run_prepared(check, &Prepared::new(object), ctx)
    }

    /// Runs one check on an object converted once for all the checks that apply to it.
    pub fn run_prepared(&self, check: Check, object: &Prepared, ctx: &Context) -> Result<Vec<Hit>, EvalError> {
        match check {
            Check::Constraint { template, constraint } => {
                let t = &self.templates[template];
                match &t.body {
                    TemplateBody::Rego { program, rule } => {
                        let parameters = match ctx.parameters.get(constraint) {
                            Some(p) => p.clone(),
                            None => engine::Input::new(&self.constraints[constraint].parameters),
                        };
                        let input = engine::Input::gatekeeper(&object.review, &parameters);
                        let program = ctx.programs.get(&template).unwrap_or(program);
                        Ok(violations(program.eval_input(rule, &input)?))
                    }
                    TemplateBody::Cel(program) => {
                        let json = object.cel.json();
                        let request = cel::checks::request(&json);
                        let clock = cel::Clock::start(program.time_limit);
                        let hits = program.run(
                            object.cel.cel(),
                            &request,
                            &self.constraint_object(constraint),
                            object.cel.is_variant(),
                        );
                        if clock.over() {
                            return Err(EvalError::Timeout);
                        }
                        Ok(hits)
                    }
                    TemplateBody::Unsupported(why) => Err(EvalError::Failed(why.clone())),
                }
            }
            Check::Rule { module, rule } => {
                let m = &self.modules[module];
                conftest::run_rule(m, &m.rules[rule], &object.raw)
            }
            Check::Vap { binding, param, audit } => self.run_vap(binding, param, audit, object, ctx),
        }
    }

    /// Runs a Gatekeeper check on a full review (an AdmissionReview request from a test suite).
    pub fn run_review(
        &self,
        template: usize,
        constraint: usize,
        review: &Value,
        ctx: &Context,
    ) -> Result<Vec<Hit>, EvalError> {
        let t = &self.templates[template];
        let c = &self.constraints[constraint];
        match &t.body {
            TemplateBody::Rego { program, rule } => {
                let input = json!({"review": review, "parameters": c.parameters});
                let program = ctx.programs.get(&template).unwrap_or(program);
                Ok(violations(program.eval(rule, &input)?))
            }
            TemplateBody::Cel(program) => {
                let object = review.get("object").map(cel::value).unwrap_or(::cel::Value::Null);
                Ok(program.run(&object, review, &self.constraint_object(constraint), false))
            }
            TemplateBody::Unsupported(why) => Err(EvalError::Failed(why.clone())),
        }
    }

    /// A context whose programs see `data.inventory` built from `objects`, as gator builds it.
    /// Only templates that read the inventory get it, holding only the kinds they name.
    pub fn context(&self, objects: &[&Value]) -> Result<Context, PolicyError> {
        let mut all = false;
        let mut kinds = std::collections::BTreeSet::new();
        for t in &self.templates {
            match &t.inventory {
                template::InventoryUse::None => {}
                template::InventoryUse::All => all = true,
                template::InventoryUse::Kinds(k) => kinds.extend(k.iter().cloned()),
            }
        }
        let mut programs = BTreeMap::new();
        if all || !kinds.is_empty() {
            let wanted: Vec<&Value> = objects
                .iter()
                .copied()
                .filter(|o| all || o.get("kind").and_then(Value::as_str).is_some_and(|k| kinds.contains(k)))
                .collect();
            let inventory = engine::Data::new(&json!({ "inventory": inventory(&wanted) }));
            for (i, t) in self.templates.iter().enumerate() {
                if let (TemplateBody::Rego { program, .. }, false) =
                    (&t.body, t.inventory == template::InventoryUse::None)
                {
                    let mut p = (**program).clone();
                    p.add_data(&inventory)?;
                    programs.insert(i, p);
                }
            }
        }
        let namespaces = objects
            .iter()
            .filter(|o| {
                o.get("kind").and_then(Value::as_str) == Some("Namespace")
                    && o.get("apiVersion").and_then(Value::as_str) == Some("v1")
            })
            .map(|o| (manifest::meta_str(o, "name").to_string(), (*o).clone()))
            .collect();
        let parameters = self.constraints.iter().map(|c| engine::Input::new(&c.parameters)).collect();
        let template_of = self.constraints.iter().map(|c| self.template_for(&c.kind)).collect();
        let kinds = cel::kinds::Kinds::new(objects);
        Ok(Context { programs, namespaces, parameters, template_of, kinds, timed_out: Default::default() })
    }
}

/// An object converted for evaluation: as Gatekeeper's review, and as itself (conftest's input).
pub struct Prepared {
    /// The review without its object (kind, name, namespace, operation).
    fields: engine::Input,
    review: engine::Input,
    raw: engine::Input,
    /// The object for CEL, converted on first use.
    cel: cel::Input,
}

impl Prepared {
    /// The object is converted once; the review shares it.
    pub fn new(object: &Value) -> Self {
        let raw = engine::Input::new(object);
        let fields = engine::Input::new(&review_fields(object));
        Prepared { review: engine::Input::with_object(&fields, &raw), fields, raw, cel: cel::Input::new(object) }
    }

    /// The same object with the field at `tokens` removed (or replaced by `with`), sharing all
    /// the rest. The review's name, namespace and kind stay those of the original object.
    pub fn edited(&self, tokens: &[String], with: Option<&Value>) -> Self {
        let raw = self.raw.edited(tokens, with);
        let cel = self.cel.edited(tokens, with);
        Prepared { review: engine::Input::with_object(&self.fields, &raw), fields: self.fields.clone(), raw, cel }
    }
}

/// What evaluation needs beyond the policies: programs that carry this run's inventory, and the
/// Namespace objects by name (for `namespaceSelector`).
#[derive(Clone, Debug, Default)]
pub struct Context {
    programs: BTreeMap<usize, engine::Program>,
    pub namespaces: BTreeMap<String, Value>,
    /// Constraint parameters, converted once (by constraint index).
    parameters: Vec<engine::Input>,
    /// The template of each constraint (by constraint index), looked up once per run.
    template_of: Vec<Option<usize>>,
    /// Resource names of kinds, the inputs' CRDs included (for ValidatingAdmissionPolicies).
    kinds: cel::kinds::Kinds,
    /// Policies that ran out of time in this run: not run again on further objects.
    timed_out: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Context {
    /// Whether `policy` already ran out of time in this run.
    pub fn timed_out(&self, policy: &str) -> bool {
        self.timed_out.lock().expect("timed_out").contains(policy)
    }

    /// Records that `policy` ran out of time: further objects get the error without a run.
    pub fn give_up(&self, policy: &str) {
        self.timed_out.lock().expect("timed_out").insert(policy.to_string());
    }
}

/// The annotation on a ConstraintTemplate that lets it replace an earlier template of the same
/// kind (a built-in, or one from another policy folder).
pub const OVERRIDE_ANNOTATION: &str = "guardrail.dev/override";

fn overrides(object: &Value) -> bool {
    object.pointer("/metadata/annotations").and_then(|a| a.get(OVERRIDE_ANNOTATION)).and_then(Value::as_str)
        == Some("true")
}

/// The input Gatekeeper builds for audit and gator: `operation` stays empty.
pub fn gatekeeper_input(object: &Value, parameters: &Value) -> Value {
    json!({ "review": review_of(object), "parameters": parameters })
}

pub fn review_of(object: &Value) -> Value {
    let mut review = review_fields(object);
    review["object"] = object.clone();
    review
}

/// The review without its `object`.
fn review_fields(object: &Value) -> Value {
    let api = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let (group, version) = split_api_version(api);
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    json!({
        "kind": {"group": group, "version": version, "kind": kind},
        "name": manifest::meta_str(object, "name"),
        "namespace": manifest::meta_str(object, "namespace"),
        "operation": "",
    })
}

/// `violation[{"msg", "details"}]` results.
fn violations(value: Value) -> Vec<Hit> {
    let items = match value {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    items
        .into_iter()
        .map(|v| Hit {
            message: v
                .get("msg")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| v.get("msg").map(|m| m.to_string()).unwrap_or_default()),
            details: v.get("details").cloned().unwrap_or(Value::Null),
        })
        .collect()
}

/// `data.inventory` as gator builds it: `cluster[apiVersion][kind][name]` and
/// `namespace[ns][apiVersion][kind][name]`.
pub fn inventory(objects: &[&Value]) -> Value {
    let mut cluster = serde_json::Map::new();
    let mut namespaced = serde_json::Map::new();
    for o in objects {
        let api = o.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string();
        let kind = o.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
        let name = manifest::meta_str(o, "name").to_string();
        let ns = manifest::meta_str(o, "namespace").to_string();
        let root = if ns.is_empty() {
            &mut cluster
        } else {
            namespaced.entry(ns).or_insert_with(|| json!({})).as_object_mut().expect("object")
        };
        let by_kind = root.entry(api).or_insert_with(|| json!({})).as_object_mut().expect("object");
        let by_name = by_kind.entry(kind).or_insert_with(|| json!({})).as_object_mut().expect("object");
        by_name.insert(name, (*o).clone());
    }
    json!({"cluster": cluster, "namespace": namespaced})
}

/// Reads the policy objects from a YAML text (multi-document, `List`s included).
pub fn policy_objects(file: &str, text: &str, errors: &mut Vec<PolicyError>) -> Vec<Value> {
    let mut out = Vec::new();
    for doc in manifest::yaml::parse_stream(text, &Default::default()) {
        if let Some(issue) = doc.issues.iter().find(|i| i.error) {
            errors.push(PolicyError::Invalid {
                file: format!("{file}:{}", issue.span.start.line),
                message: issue.message.clone(),
            });
            continue;
        }
        if let Some(root) = doc.root {
            let v = root.to_json();
            match v.get("items").and_then(Value::as_array) {
                Some(items) if v.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List")) => {
                    out.extend(items.iter().cloned())
                }
                _ => out.push(v),
            }
        }
    }
    out
}

fn collect_policy_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), PolicyError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| PolicyError::Io { path: path.display().to_string(), message: e.to_string() })?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| PolicyError::Io { path: path.display().to_string(), message: e.to_string() })?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            collect_policy_files(&p, out)?;
        } else if name.ends_with(".rego") || name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(p);
        }
    }
    Ok(())
}
