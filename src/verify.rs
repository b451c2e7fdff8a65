//! `guardrail verify`: runs Gatekeeper `gator verify` suites (`kind: Suite`: tests, cases,
//! `violations: yes|no|N`, `message` regex, inventory, AdmissionReview objects, expansion) and
//! Rego `test_*` rules, and counts passes and failures.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::manifest::{self, Implied, Origin, Resource};
use crate::policy::{self, expansion, template, Check, EvalError, Hit, PolicySet};

mod rego_tests;

#[derive(Clone, Debug)]
pub struct CaseResult {
    /// `suite.yaml › test › case`, or `file.rego › test_name`.
    pub name: String,
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub results: Vec<CaseResult>,
}

impl Summary {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.error.is_none()).count()
    }
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// How suites are run (sent to a worker process as JSON, see `crate::isolate`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Options {
    /// Templates with `K8sNativeValidation` code run it (gator's `--enable-k8s-native-validation`).
    pub k8s_native_validation: bool,
    /// Rego tests: the packages whose tests run (all when empty; `*` matches any characters),
    /// and the `--data` document they see.
    pub rego_namespaces: Vec<String>,
    pub data: Option<Value>,
    /// `--show-builtin-errors`.
    pub builtin_errors: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { k8s_native_validation: true, rego_namespaces: Vec::new(), data: None, builtin_errors: false }
    }
}

/// Runs every suite and Rego test found under `paths`.
pub fn run(paths: &[PathBuf]) -> Summary {
    run_with(paths, Options::default())
}

pub fn run_with(paths: &[PathBuf], opts: Options) -> Summary {
    run_inner(paths, None, opts)
}

/// Like `run`, but no suite may read a file outside `root` (`../`, absolute paths, symlinks out):
/// for policy files that come from a pull request.
pub fn run_within(root: &Path) -> Summary {
    run_within_with(root, Options::default())
}

pub fn run_within_with(root: &Path, opts: Options) -> Summary {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    run_inner(std::slice::from_ref(&root), Some(&root), opts)
}

/// `dir/rel`, refused when it leaves `root`.
fn join(dir: &Path, rel: &str, root: Option<&Path>) -> Result<PathBuf, String> {
    let path = dir.join(rel);
    let Some(root) = root else { return Ok(path) };
    match path.canonicalize() {
        Ok(real) if real.starts_with(root) => Ok(real),
        Ok(_) => Err(format!("{rel}: the suite may only read files inside the policy repository")),
        Err(e) => Err(format!("{rel}: {e}")),
    }
}

fn run_inner(paths: &[PathBuf], root: Option<&Path>, opts: Options) -> Summary {
    let mut summary = Summary::default();
    let mut suites = Vec::new();
    let mut rego_dirs: Vec<PathBuf> = Vec::new();
    for p in paths {
        find(p, &mut suites, &mut rego_dirs, &mut summary);
    }
    for suite in suites {
        run_suite(&suite, root, &opts, &mut summary);
    }
    let mut rego = Vec::new();
    for p in paths {
        rego_tests::collect(p, &mut rego);
    }
    rego_tests::run(&rego, &opts, &mut summary);
    summary
}

fn find(path: &Path, suites: &mut Vec<PathBuf>, rego_dirs: &mut Vec<PathBuf>, summary: &mut Summary) {
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "rego") {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            if !rego_dirs.contains(&dir) {
                rego_dirs.push(dir);
            }
        } else if is_suite(path) {
            suites.push(path.to_path_buf());
        }
        return;
    }
    let Ok(rd) = std::fs::read_dir(path) else {
        summary
            .results
            .push(CaseResult { name: path.display().to_string(), error: Some("cannot read this path".into()) });
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    let mut has_rego_tests = false;
    for e in &entries {
        let name = e.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if e.is_dir() {
            find(e, suites, rego_dirs, summary);
        } else if name.ends_with(".rego") {
            has_rego_tests |= std::fs::read_to_string(e).is_ok_and(|t| t.contains("test_"));
        } else if (name.ends_with(".yaml") || name.ends_with(".yml")) && is_suite(e) {
            suites.push(e.clone());
        }
    }
    if has_rego_tests && !rego_dirs.contains(&path.to_path_buf()) {
        rego_dirs.push(path.to_path_buf());
    }
}

fn is_suite(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "kind: Suite") && t.contains("test.gatekeeper.sh"))
}

fn read_objects(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut errors = Vec::new();
    let objects = policy::policy_objects(&path.display().to_string(), &text, &mut errors);
    if let Some(e) = errors.first() {
        return Err(e.to_string());
    }
    Ok(objects)
}

fn run_suite(path: &Path, root: Option<&Path>, opts: &Options, summary: &mut Summary) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let suite = match read_objects(path).map(|mut o| o.pop()) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            summary.results.push(CaseResult { name: path.display().to_string(), error: Some(e) });
            return;
        }
    };
    if suite.get("skip").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let display = path.display().to_string();
    for test in suite.get("tests").and_then(Value::as_array).into_iter().flatten() {
        let test_name = test.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        if test.get("skip").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let prepared = prepare_test(dir, test, root, opts);
        for case in test.get("cases").and_then(Value::as_array).into_iter().flatten() {
            if case.get("skip").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let case_name = case.get("name").and_then(Value::as_str).unwrap_or("");
            let name = format!("{display} › {test_name} › {case_name}");
            let error = match &prepared {
                Ok(set) => run_case(dir, set, case, root).err(),
                Err(e) => Some(e.clone()),
            };
            summary.results.push(CaseResult { name, error });
        }
    }
}

/// A policy set holding just the test's template, constraint and expansion templates.
fn prepare_test(dir: &Path, test: &Value, root: Option<&Path>, options: &Options) -> Result<PolicySet, String> {
    let field = |k: &str| test.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let opts = policy::LoadOptions {
        builtin: false,
        k8s_native_validation: options.k8s_native_validation,
        ..Default::default()
    };
    let mut set = PolicySet::default();
    let mut errors = Vec::new();
    let template_path = join(dir, field("template").ok_or("test has no template")?, root)?;
    let text = std::fs::read_to_string(&template_path).map_err(|e| format!("{}: {e}", template_path.display()))?;
    set.add_yaml(&template_path.display().to_string(), &text, &opts, &mut errors);
    let constraint_path = join(dir, field("constraint").ok_or("test has no constraint")?, root)?;
    let text = std::fs::read_to_string(&constraint_path).map_err(|e| format!("{}: {e}", constraint_path.display()))?;
    set.add_yaml(&constraint_path.display().to_string(), &text, &opts, &mut errors);
    if let Some(exp) = field("expansion") {
        let p = join(dir, exp, root)?;
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        set.add_yaml(&p.display().to_string(), &text, &opts, &mut errors);
    }
    if let Some(e) = errors.first() {
        return Err(e.to_string());
    }
    if set.templates.is_empty() {
        return Err(format!("{} holds no ConstraintTemplate", template_path.display()));
    }
    if let template::TemplateBody::Unsupported(why) = &set.templates[0].body {
        return Err(why.clone());
    }
    let kind = &set.templates[0].kind;
    if !set.constraints.iter().any(|c| &c.kind == kind) {
        return Err(format!("{} holds no constraint of kind {kind}", constraint_path.display()));
    }
    Ok(set)
}

fn run_case(dir: &Path, set: &PolicySet, case: &Value, root: Option<&Path>) -> Result<(), String> {
    let object_path = join(dir, case.get("object").and_then(Value::as_str).ok_or("case has no object")?, root)?;
    let mut objects = read_objects(&object_path)?;
    if objects.len() != 1 {
        return Err(format!("{} defines {} objects, want 1", object_path.display(), objects.len()));
    }
    let object = objects.remove(0);
    let mut inventory = Vec::new();
    for inv in case.get("inventory").and_then(Value::as_array).into_iter().flatten() {
        let p = join(dir, inv.as_str().unwrap_or(""), root)?;
        inventory.extend(read_objects(&p)?);
    }
    let refs: Vec<&Value> = inventory.iter().collect();
    let ctx = set.context(&refs).map_err(|e| e.to_string())?;
    let hits = review(set, &object, &ctx)?;
    for assertion in case.get("assertions").and_then(Value::as_array).into_iter().flatten() {
        check_assertion(assertion, &hits)?;
    }
    Ok(())
}

/// All violations of all constraints for one object under review, as gator reports them.
fn review(set: &PolicySet, object: &Value, ctx: &policy::Context) -> Result<Vec<String>, String> {
    let is_admission = object.get("kind").and_then(Value::as_str) == Some("AdmissionReview")
        && object.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("admission.k8s.io/"));
    let mut messages = Vec::new();
    let fail = |e: EvalError| match e {
        EvalError::Timeout => "evaluation timed out".to_string(),
        EvalError::Limit(l) => format!("over a limit: {l}"),
        EvalError::Failed(m) => m,
    };
    if is_admission {
        let mut request = object.get("request").cloned().ok_or("AdmissionReview has no request")?;
        let reviewed = match request.get("object").filter(|o| !o.is_null()) {
            Some(o) => o.clone(),
            None => request
                .get("oldObject")
                .filter(|o| !o.is_null())
                .cloned()
                .ok_or("AdmissionRequest has no object or oldObject")?,
        };
        if request.get("object").is_none_or(Value::is_null) {
            request["object"] = reviewed.clone();
        }
        let resource = bare_resource(reviewed, None);
        for (check, _) in set.checks_for(&resource, ctx) {
            if let Check::Constraint { template, constraint } = check {
                let hits = set.run_review(template, constraint, &request, ctx).map_err(fail)?;
                messages.extend(hits.into_iter().map(|h: Hit| h.message));
            }
        }
        return Ok(messages);
    }
    let resource = bare_resource(object.clone(), None);
    let mut all = vec![];
    all.extend(expansion::expand(&set.expansions, &resource, 0));
    all.insert(0, resource);
    for r in &all {
        let prefix = r.implied_by.as_ref().map(|i| format!("[Implied by {}] ", i.template)).unwrap_or_default();
        for (check, _) in set.checks_for(r, ctx) {
            let hits = set.run(check, &r.object, ctx).map_err(fail)?;
            messages.extend(hits.into_iter().map(|h| format!("{prefix}{}", h.message)));
        }
    }
    Ok(messages)
}

fn bare_resource(object: Value, implied_by: Option<Implied>) -> Resource {
    let node = manifest::Node::from_json(&object, manifest::Span::at(1, 1));
    Resource {
        reported: manifest::resource_ref(&object),
        object,
        origin: Origin {
            file: "".into(),
            document: std::sync::Arc::new(manifest::DocTree::ready(node)),
            prefix: String::new(),
        },
        implied_by,
    }
}

fn check_assertion(assertion: &Value, messages: &[String]) -> Result<(), String> {
    let pattern = assertion.get("message").and_then(Value::as_str);
    let matching = match pattern {
        Some(p) => {
            let re = regex::Regex::new(p).map_err(|e| format!("invalid message regex {p:?}: {e}"))?;
            messages.iter().filter(|m| re.is_match(m)).count()
        }
        None => messages.len(),
    };
    let about = pattern.map(|p| format!(" containing {p:?}")).unwrap_or_default();
    let want = assertion.get("violations").cloned().unwrap_or(Value::String("yes".into()));
    let ok = match &want {
        Value::Bool(true) => matching > 0,
        Value::Bool(false) => matching == 0,
        Value::String(s) if s == "yes" => matching > 0,
        Value::String(s) if s == "no" => matching == 0,
        Value::Number(n) => n.as_u64() == Some(matching as u64),
        other => return Err(format!("assertion violations must be yes, no or a number, not {other}")),
    };
    if ok {
        Ok(())
    } else {
        let want_text = match &want {
            Value::Bool(true) => "at least 1".to_string(),
            Value::Bool(false) => "none".to_string(),
            Value::String(s) if s == "yes" => "at least 1".to_string(),
            Value::String(_) => "none".to_string(),
            n => format!("exactly {n}"),
        };
        Err(format!("got {matching} violations{about} but want {want_text}: got messages {messages:?}"))
    }
}
