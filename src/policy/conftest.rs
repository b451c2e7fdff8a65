//! conftest-style Rego modules: `deny`, `warn`, `violation` rules (and `deny_<name>`…), with
//! `exception` rules, in v0 or v1 syntax. The input is the manifest itself, as in conftest, and so
//! are its conventions (`Options`): only package `main` runs unless namespaces are named, `--data`
//! documents are `data.*`, only a set (or array) of strings or `{"msg": ..}` objects is a result
//! (a bare `deny if true` is not), and builtins regorus lacks are undefined.

use std::time::Duration;

use serde_json::Value;

use super::engine::{Dialect, Program};
use super::PolicyError;
use crate::findings::Severity;

/// conftest's conventions, from the flags of `check` and `verify`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Options {
    /// The packages whose rules run (`--rego-namespace`, conftest's `--namespace`); `*` matches
    /// any run of characters. Default: `main`.
    pub namespaces: Vec<String>,
    /// Every package runs (`--all-namespaces`).
    pub all_namespaces: bool,
    /// A builtin that fails, or one regorus lacks, is an error rather than undefined
    /// (`--show-builtin-errors`).
    pub builtin_errors: bool,
    /// The `--data` documents, merged: `data.<key>` for each top-level key.
    pub data: Option<Value>,
}

impl Default for Options {
    fn default() -> Self {
        Options { namespaces: vec!["main".into()], all_namespaces: false, builtin_errors: false, data: None }
    }
}

impl Options {
    /// Whether the rules of `package` run.
    pub fn runs(&self, package: &str) -> bool {
        self.all_namespaces || self.namespaces.iter().any(|pattern| glob(pattern, package))
    }
}

/// `*` as any run of characters; everything else literally (conftest verify's namespace match).
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else { return false };
            (0..=tail.len()).filter(|i| tail.is_char_boundary(*i)).any(|i| glob(rest, &tail[i..]))
        }
    }
}

#[derive(Clone, Debug)]
pub struct Module {
    pub program: Program,
    /// (package, rule, severity) for every deny/warn/violation rule.
    pub rules: Vec<RuleRef>,
    /// Packages that declare `exception` rules.
    pub exception_packages: Vec<String>,
    pub files: Vec<String>,
    /// Field paths the rules read (for locating missing fields), see `locate::reads`.
    pub reads: Vec<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRef {
    pub package: String,
    pub rule: String,
    pub severity: Severity,
}

impl RuleRef {
    /// The name `exception` rules use: `deny_run_as_root` -> `run_as_root`, `deny` -> ``.
    pub fn exception_name(&self) -> &str {
        self.rule.split_once('_').map(|(_, rest)| rest).unwrap_or("")
    }

    /// The query conftest prints for an exception that applied.
    pub fn exception_query(&self) -> String {
        format!("data.{}.exception[_][_] == {:?}", self.package, self.exception_name())
    }
}

fn rule_pattern() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"(?m)^(deny|warn|violation|exception)(_[A-Za-z0-9_]+)?\s*(\[|contains\b|if\b|\{|=|:=)")
            .expect("valid regex")
    })
}

/// Loads a set of `.rego` files as one program (they may import each other). Tries Rego v1
/// first, then v0, per set.
pub fn load(files: &[(String, String)], time_limit: Duration) -> Result<Module, PolicyError> {
    load_with(files, time_limit, &Options { all_namespaces: true, ..Default::default() })
}

/// Loads a module set with conftest's conventions: only the rules of the packages `opts` names
/// run, `--data` is in `data`, conftest's builtins are there.
pub fn load_with(files: &[(String, String)], time_limit: Duration, opts: &Options) -> Result<Module, PolicyError> {
    let label = files.first().map(|(n, _)| n.clone()).unwrap_or_default();
    // `parse_config_file("x.yaml")` reads beside the policy that calls it.
    let files: Vec<(String, String)> =
        files.iter().map(|(name, text)| (name.clone(), super::compat::conftest_file_paths(name, text))).collect();
    let files = &files[..];
    let mut program = match Program::new(&label, files, Dialect::V1, time_limit) {
        Ok(p) => p,
        // Code that fails as v1 only for want of v1 keywords is v0 code: its v0 error is the one
        // that tells what is wrong (a missing `)`, not "`if` keyword is required").
        Err(v1_err) => match Program::new(&label, files, Dialect::V0, time_limit) {
            Ok(p) => p,
            Err(v0_err) => match mixed_dialects(&label, files, time_limit) {
                Some(p) => p,
                None if v1_err.to_string().contains("keyword is required") => return Err(v0_err),
                None => return Err(v1_err),
            },
        },
    };
    program.conftest_builtins(opts.builtin_errors)?;
    if let Some(data) = &opts.data {
        program.add_data(&super::engine::Data::new(data))?;
    }
    let mut rules = Vec::new();
    let mut exception_packages = Vec::new();
    for (_, text) in files {
        let Some(package) = super::template::package_of(text) else { continue };
        for cap in rule_pattern().captures_iter(text) {
            let base = &cap[1];
            let rule = format!("{}{}", base, cap.get(2).map(|m| m.as_str()).unwrap_or(""));
            let severity = match base {
                "warn" => Severity::Warn,
                "exception" => {
                    if !exception_packages.contains(&package) {
                        exception_packages.push(package.clone());
                    }
                    continue;
                }
                _ => Severity::Deny,
            };
            let r = RuleRef { package: package.clone(), rule, severity };
            if !rules.contains(&r) {
                rules.push(r);
            }
        }
    }
    rules.retain(|r| opts.runs(&r.package));
    let reads = files.iter().flat_map(|(_, text)| crate::locate::reads::field_paths(text)).collect();
    Ok(Module { program, rules, exception_packages, files: files.iter().map(|(n, _)| n.clone()).collect(), reads })
}

/// A set of v0 and v1 files (as `opa test` loads folders of both, each file in its own syntax):
/// loaded as v0, with `import rego.v1` added to the files that only parse as v1.
fn mixed_dialects(label: &str, files: &[(String, String)], time_limit: Duration) -> Option<Program> {
    let parses =
        |file: &(String, String), dialect| Program::new(label, std::slice::from_ref(file), dialect, time_limit).is_ok();
    let adapted: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            if parses(f, Dialect::V0) || !parses(f, Dialect::V1) {
                return f.clone();
            }
            let text = f.1.lines().map(|l| {
                if l.trim_start().starts_with("package ") {
                    format!("{l}\nimport rego.v1")
                } else {
                    l.to_string()
                }
            });
            (f.0.clone(), text.collect::<Vec<_>>().join("\n"))
        })
        .collect();
    Program::new(label, &adapted, Dialect::V0, time_limit).ok()
}

/// Whether an `exception` rule of the rule's package names it for `input` (conftest's
/// `data.<package>.exception[_][_] == "<name>"`).
pub fn excepted(
    module: &Module,
    rule: &RuleRef,
    input: &super::engine::Input,
) -> Result<bool, super::engine::EvalError> {
    if !module.exception_packages.contains(&rule.package) {
        return Ok(false);
    }
    let exceptions = module.program.eval_input(&format!("data.{}.exception", rule.package), input)?;
    Ok(exceptions
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .any(|name| name.as_str() == Some(rule.exception_name())))
}

/// One conftest result: the message and any structured fields that came with it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub message: String,
    pub details: Value,
}

/// Evaluates one rule on `input`, as conftest reads results: only a set or array gives any, each
/// a string or an object with a string `msg` (anything else in it is not a result); a rule that
/// an `exception` names gives none.
pub fn run_rule(
    module: &Module,
    rule: &RuleRef,
    input: &super::engine::Input,
) -> Result<Vec<Hit>, super::engine::EvalError> {
    if excepted(module, rule, input)? {
        return Ok(Vec::new());
    }
    let value = module.program.eval_input(&format!("data.{}.{}", rule.package, rule.rule), input)?;
    let Value::Array(items) = value else { return Ok(Vec::new()) };
    let mut hits = Vec::new();
    for item in items {
        match item {
            Value::String(s) => hits.push(Hit { message: s, details: Value::Null }),
            Value::Object(ref map) => match map.get("msg").and_then(Value::as_str) {
                Some(msg) => hits.push(Hit { message: msg.to_string(), details: item.clone() }),
                None => {
                    return Err(super::engine::EvalError::Failed(format!(
                        "data.{}.{}: a result object must have a string \"msg\" field, got {item}",
                        rule.package, rule.rule
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(hits)
}
