//! conftest-style Rego modules: `deny`, `warn`, `violation` rules (and `deny_<name>`…), with
//! `exception` rules, in v0 or v1 syntax. The input is the manifest itself, as in conftest.

use std::time::Duration;

use serde_json::Value;

use super::engine::{Dialect, Program};
use super::PolicyError;
use crate::findings::Severity;

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
    let label = files.first().map(|(n, _)| n.clone()).unwrap_or_default();
    let program = match Program::new(&label, files, Dialect::V1, time_limit) {
        Ok(p) => p,
        // Code that fails as v1 only for want of v1 keywords is v0 code: its v0 error is the one
        // that tells what is wrong (a missing `)`, not "`if` keyword is required").
        Err(v1_err) => Program::new(&label, files, Dialect::V0, time_limit).map_err(|v0_err| {
            let v1_only = |e: &PolicyError| e.to_string().contains("keyword is required");
            if v1_only(&v1_err) {
                v0_err
            } else {
                v1_err
            }
        })?,
    };
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
    let reads = files.iter().flat_map(|(_, text)| crate::locate::reads::field_paths(text)).collect();
    Ok(Module { program, rules, exception_packages, files: files.iter().map(|(n, _)| n.clone()).collect(), reads })
}

/// One conftest result: the message and any structured fields that came with it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub message: String,
    pub details: Value,
}

/// Evaluates one rule on `input`. Results may be strings or objects with `msg`.
pub fn run_rule(
    module: &Module,
    rule: &RuleRef,
    input: &super::engine::Input,
) -> Result<Vec<Hit>, super::engine::EvalError> {
    if module.exception_packages.contains(&rule.package) {
        let exceptions = module.program.eval_input(&format!("data.{}.exception", rule.package), input)?;
        let excepted = exceptions
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|e| e.as_array().cloned().unwrap_or_else(|| vec![e.clone()]))
            .any(|name| name.as_str() == Some(rule.exception_name()));
        if excepted {
            return Ok(Vec::new());
        }
    }
    let value = module.program.eval_input(&format!("data.{}.{}", rule.package, rule.rule), input)?;
    let items: Vec<Value> = match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        Value::Bool(false) => Vec::new(),
        Value::Bool(true) => vec![Value::String(format!("{} is true", rule.rule))],
        other => vec![other],
    };
    Ok(items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Hit { message: s, details: Value::Null },
            Value::Object(ref map) => Hit {
                message: map.get("msg").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| item.to_string()),
                details: item.clone(),
            },
            other => Hit { message: other.to_string(), details: Value::Null },
        })
        .collect())
}
