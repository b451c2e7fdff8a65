//! conftest's flags for `.rego` modules, shared by `check` and `verify` (named apart from
//! conftest's where guardrail's own flags already use the name: `--namespace` is the Kubernetes
//! namespace, so conftest's `--namespace` is `--rego-namespace`), and `--combine`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::findings::{Finding, Region, Severity};
use crate::policy::{self, conftest, engine::Input, EvalError};

/// Which conftest modules run, and what they see.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RegoArgs {
    /// Run the rules of this Rego package (conftest's --namespace; repeatable; `*` matches any
    /// characters). Default: main.
    #[arg(long, value_name = "NS")]
    pub rego_namespace: Vec<String>,
    /// Run the rules of every Rego package.
    #[arg(long)]
    pub all_namespaces: bool,
    /// A YAML or JSON file (or a folder of them) whose top-level keys the Rego modules read as
    /// `data.<key>`, or a .rego file added to the modules (repeatable).
    #[arg(long, short = 'd', value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// A builtin that fails (or one guardrail lacks, such as net.lookup_ip_addr) is an error
    /// instead of undefined.
    #[arg(long)]
    pub show_builtin_errors: bool,
}

impl RegoArgs {
    /// The `.rego` files among `--data` paths: conftest loads them as modules of the set.
    pub fn data_modules(&self) -> Vec<PathBuf> {
        self.data.iter().filter(|p| p.extension().is_some_and(|e| e == "rego")).cloned().collect()
    }

    /// The conventions these flags ask for, with the `--data` documents read and merged.
    pub fn options(&self) -> Result<conftest::Options, String> {
        let mut options = conftest::Options {
            all_namespaces: self.all_namespaces,
            builtin_errors: self.show_builtin_errors,
            ..Default::default()
        };
        if !self.rego_namespace.is_empty() {
            options.namespaces = self.rego_namespace.clone();
        }
        if !self.data.is_empty() {
            let mut data = Value::Object(Default::default());
            for path in self.data.iter().filter(|p| p.extension().is_none_or(|e| e != "rego")) {
                read_data(path, &mut data)?;
            }
            options.data = Some(data);
        }
        Ok(options)
    }
}

/// Merges the data files under `path` into `into` (objects merge key by key).
fn read_data(path: &Path, into: &mut Value) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("--data {}: {e}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("--data {}: {e}", path.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        entries.sort();
        for p in entries {
            let name = p.to_string_lossy();
            if p.is_dir() || [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e)) {
                read_data(&p, into)?;
            }
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("--data {}: {e}", path.display()))?;
    let docs: Vec<Value> = if path.extension().is_some_and(|e| e == "json") {
        vec![serde_json::from_str(&text).map_err(|e| format!("--data {}: {e}", path.display()))?]
    } else {
        let mut errors = Vec::new();
        let docs = policy::policy_objects(&path.display().to_string(), &text, &mut errors);
        if let Some(e) = errors.first() {
            return Err(format!("--data {e}"));
        }
        docs
    };
    for doc in docs {
        match doc {
            Value::Object(_) => merge(into, doc),
            Value::Null => {}
            _ => {
                return Err(format!(
                    "--data {}: the document must be an object (its keys become data.<key>)",
                    path.display()
                ))
            }
        }
    }
    Ok(())
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The YAML and JSON texts under `paths` (bounded reads; files over the limit are left out here and
/// reported by the scan), for `--combine`.
pub fn combined_sources(paths: &[std::path::PathBuf], limits: &crate::manifest::Limits) -> HashMap<String, String> {
    let mut notes = Vec::new();
    let Ok(files) = crate::manifest::discover(paths, &mut notes) else { return HashMap::new() };
    files
        .iter()
        .filter_map(|file| crate::manifest::read_file(file, limits).ok().map(|text| (file.display.clone(), text)))
        .collect()
}

/// conftest's `--combine`: every conftest rule runs once, on all the documents of the YAML and
/// JSON files read (`[{"path", "contents"}]`, ordered by path); its findings are about the file
/// `Combined`, as conftest names it.
pub fn run_combined(modules: &[conftest::Module], sources: &HashMap<String, String>) -> Vec<Finding> {
    let mut entries = Vec::new();
    for (file, text) in sources {
        let is_json = file.ends_with(".json");
        if !(is_json || file.ends_with(".yaml") || file.ends_with(".yml") || file == "-") {
            continue;
        }
        let docs: Vec<Value> = if is_json {
            serde_json::from_str(text).into_iter().collect()
        } else {
            policy::policy_objects(file, text, &mut Vec::new())
        };
        for doc in docs {
            entries.push((file.clone(), doc));
        }
    }
    let input = Input::new(&policy::compat::combine(entries));
    let mut findings = Vec::new();
    for module in modules {
        for rule in &module.rules {
            let (severity, messages) = match conftest::run_rule(module, rule, &input) {
                Ok(hits) => (rule.severity, hits.into_iter().map(|h| h.message).collect::<Vec<_>>()),
                Err(EvalError::Timeout) => (
                    Severity::Deny,
                    vec![format!("policy {} did not finish within its time limit on the combined input", rule.package)],
                ),
                Err(EvalError::Limit(limit)) => (
                    Severity::Deny,
                    vec![format!("policy {} went over a limit on the combined input ({limit})", rule.package)],
                ),
                Err(EvalError::Failed(e)) => {
                    (Severity::Deny, vec![format!("policy {} failed on the combined input: {e}", rule.package)])
                }
            };
            for message in messages {
                findings.push(Finding {
                    policy: rule.package.clone(),
                    constraint: String::new(),
                    severity,
                    message,
                    file: "Combined".into(),
                    region: Region::point(1, 1),
                    pointer: String::new(),
                    resource: None,
                });
            }
        }
    }
    findings
}
