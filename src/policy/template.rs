//! Gatekeeper ConstraintTemplates: Rego from `spec.targets[].rego` + `libs`, or from `code[]`
//! entries with `engine: Rego`, or CEL from `engine: K8sNativeValidation` (see `super::cel`). Each
//! template gets its own engine (library templates reuse package names). As in Gatekeeper, a
//! template with both runs its CEL unless K8s native validation is switched off.

use std::time::Duration;

use serde_json::Value;

use super::engine::{Dialect, Program};
use super::PolicyError;

pub const TARGET: &str = "admission.k8s.gatekeeper.sh";

#[derive(Clone, Debug)]
pub struct Template {
    /// `metadata.name` (lowercase kind by convention).
    pub name: String,
    /// The constraint kind it defines (`spec.crd.spec.names.kind`).
    pub kind: String,
    pub body: TemplateBody,
    /// The parameters schema, for validating constraints.
    pub parameters_schema: Option<Value>,
    pub description: String,
    pub remediation: String,
    pub file: String,
    /// Which objects the Rego reads from `data.inventory`.
    pub inventory: InventoryUse,
    /// Field paths the code reads (for locating missing fields), see `locate::reads`.
    pub reads: Vec<Vec<String>>,
}

/// What part of `data.inventory` a template reads, so a run only builds (and holds) that part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InventoryUse {
    None,
    /// Every line that reads the inventory names its kinds as string literals (`["Namespace"]`).
    Kinds(std::collections::BTreeSet<String>),
    All,
}

/// Conservative: any line with `data.inventory` but no capitalised string literal means "all".
pub fn inventory_use(sources: &[&str]) -> InventoryUse {
    let mut kinds = std::collections::BTreeSet::new();
    let mut used = false;
    for line in sources.iter().flat_map(|s| s.lines()) {
        let code = line.split('#').next().unwrap_or("");
        if !code.contains("data.inventory") {
            continue;
        }
        used = true;
        let literals: Vec<&str> = code
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|l| {
                l.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && l.chars().all(|c| c.is_ascii_alphanumeric())
            })
            .collect();
        if literals.is_empty() {
            return InventoryUse::All;
        }
        kinds.extend(literals.iter().map(|l| l.to_string()));
    }
    if used {
        InventoryUse::Kinds(kinds)
    } else {
        InventoryUse::None
    }
}

#[derive(Clone, Debug)]
pub enum TemplateBody {
    Rego {
        program: Box<Program>,
        rule: String,
    },
    /// `K8sNativeValidation` code.
    Cel(Box<super::cel::gatekeeper::Program>),
    /// Code guardrail cannot evaluate (only CEL, with K8s native validation switched off).
    Unsupported(String),
}

pub fn is_template(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("ConstraintTemplate")
        && object.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("templates.gatekeeper.sh/"))
}

/// `cel`: run `K8sNativeValidation` code where a template has it (Gatekeeper's
/// `--enable-k8s-native-validation`, on by default).
pub fn load(object: &Value, file: &str, time_limit: Duration, cel: bool) -> Result<Template, PolicyError> {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let kind = object.pointer("/spec/crd/spec/names/kind").and_then(Value::as_str).unwrap_or("").to_string();
    let bad = |message: String| PolicyError::Invalid { file: file.into(), message };
    if kind.is_empty() {
        return Err(bad(format!("ConstraintTemplate {name:?} has no spec.crd.spec.names.kind")));
    }
    let annotations = object.pointer("/metadata/annotations");
    let annotation =
        |key: &str| annotations.and_then(|a| a.get(key)).and_then(Value::as_str).unwrap_or("").trim().to_string();
    let targets = object.pointer("/spec/targets").and_then(Value::as_array).cloned().unwrap_or_default();
    let target = targets
        .iter()
        .find(|t| t.get("target").and_then(Value::as_str) == Some(TARGET))
        .ok_or_else(|| bad(format!("ConstraintTemplate {name:?} has no target {TARGET}")))?;

    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut rego = target.get("rego").and_then(Value::as_str).map(str::to_string);
    let mut libs = strings(target.get("libs"));
    let mut dialect = Dialect::V0;
    let mut engines = Vec::new();
    let mut cel_source = None;
    for code in target.get("code").and_then(Value::as_array).into_iter().flatten() {
        let engine = code.get("engine").and_then(Value::as_str).unwrap_or("");
        engines.push(engine.to_string());
        if engine == "K8sNativeValidation" {
            cel_source = code.get("source").cloned();
        }
        if engine == "Rego" {
            let source = code.get("source");
            if let Some(r) = source.and_then(|s| s.get("rego")).and_then(Value::as_str) {
                rego = Some(r.to_string());
                libs = strings(source.and_then(|s| s.get("libs")));
            }
            if source.and_then(|s| s.get("version")).and_then(Value::as_str) == Some("v1") {
                dialect = Dialect::V1;
            }
        }
    }
    let parameters_schema = object.pointer("/spec/crd/spec/validation/openAPIV3Schema").cloned();
    let description = annotation("description");
    let remediation = annotation("guardrail.dev/remediation");
    let has_rego = rego.as_deref().is_some_and(|r| !r.trim().is_empty());
    if let Some(source) = cel_source.filter(|_| cel || !has_rego) {
        let body = if cel {
            let mut program = super::cel::gatekeeper::Program::load(&source)
                .map_err(|e| bad(format!("the K8sNativeValidation code of {kind} does not load: {e}")))?;
            program.time_limit = time_limit;
            TemplateBody::Cel(Box::new(program))
        } else {
            TemplateBody::Unsupported(
                "ConstraintTemplate has only K8sNativeValidation code, and K8s native validation is switched off"
                    .into(),
            )
        };
        return Ok(Template {
            name,
            kind,
            body,
            parameters_schema,
            description,
            remediation,
            file: file.into(),
            inventory: InventoryUse::None,
            reads: crate::locate::reads::field_paths(&source.to_string()),
        });
    }
    let Some(rego) = rego.filter(|r| !r.trim().is_empty()) else {
        let what = if engines.is_empty() { "no Rego".to_string() } else { format!("only {} code", engines.join(", ")) };
        return Ok(Template {
            name,
            kind,
            body: TemplateBody::Unsupported(format!(
                "ConstraintTemplate has {what}; guardrail evaluates Rego and K8sNativeValidation"
            )),
            parameters_schema,
            description,
            remediation,
            file: file.into(),
            inventory: InventoryUse::None,
            reads: Vec::new(),
        });
    };
    let inventory =
        inventory_use(&std::iter::once(rego.as_str()).chain(libs.iter().map(String::as_str)).collect::<Vec<_>>());
    let reads = std::iter::once(rego.as_str())
        .chain(libs.iter().map(String::as_str))
        .flat_map(crate::locate::reads::field_paths)
        .collect();
    let mut sources = vec![(format!("{file}#{kind}"), rego.clone())];
    for (i, lib) in libs.into_iter().enumerate() {
        sources.push((format!("{file}#{kind}/lib{i}"), lib));
    }
    let program = Program::new(&kind, &sources, dialect, time_limit)?;
    let package = package_of(&rego).ok_or_else(|| bad(format!("the Rego of {kind} has no package")))?;
    Ok(Template {
        name,
        kind,
        body: TemplateBody::Rego { program: Box::new(program), rule: format!("data.{package}.violation") },
        parameters_schema,
        description,
        remediation,
        file: file.into(),
        inventory,
        reads,
    })
}

/// `package a.b` -> `a.b` (also `package a["b"]`).
pub fn package_of(rego: &str) -> Option<String> {
    rego.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("package ").map(|p| p.split('#').next().unwrap_or("").trim().to_string())
    })
}

/// A Rego error of a template's code, moved into the file the author edits: regorus counts lines
/// from the start of the embedded Rego (`ct.yaml#Kind:8:1`); the YAML file's line and column of
/// that character are what an editor and an annotation need. Other errors are returned as they are.
pub fn in_yaml(error: PolicyError, object: &Value, file: &str, text: &str) -> PolicyError {
    let PolicyError::Rego { policy, message } = error else { return error };
    let pattern = format!(r"{}#{}(/lib(\d+))?:(\d+):(\d+)", regex::escape(file), regex::escape(&policy));
    let Ok(re) = regex::Regex::new(&pattern) else { return PolicyError::Rego { policy, message } };
    let Some(cap) = re.captures(&message) else { return PolicyError::Rego { policy, message } };
    let (line, column) = (cap[3].parse::<usize>().unwrap_or(1), cap[4].parse::<usize>().unwrap_or(1));
    let sources = embedded_sources(object);
    let source = match cap.get(2) {
        Some(lib) => lib.as_str().parse::<usize>().ok().and_then(|i| sources.libs.get(i)),
        None => sources.rego.as_ref(),
    };
    let Some((start, indent)) = source.and_then(|s| block_start(text, s)) else {
        return PolicyError::Rego { policy, message };
    };
    let at = format!("{file}:{}:{}", start + line, indent + column);
    // regorus shows the code with the embedded Rego's own line numbers; the YAML file's line is
    // the one to show instead.
    let what = message.lines().find_map(|l| l.strip_prefix("error: ")).unwrap_or(&message).trim();
    let code = text.lines().nth(start + line - 1).unwrap_or("").trim();
    PolicyError::Invalid { file: at, message: format!("the Rego of {policy} does not compile: {what}, at `{code}`") }
}

struct Embedded {
    rego: Option<String>,
    libs: Vec<String>,
}

/// The Rego a template runs and its libs, as `load` picks them.
fn embedded_sources(object: &Value) -> Embedded {
    let targets = object.pointer("/spec/targets").and_then(Value::as_array).cloned().unwrap_or_default();
    let target = targets.iter().find(|t| t.get("target").and_then(Value::as_str) == Some(TARGET));
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut rego = target.and_then(|t| t.get("rego")).and_then(Value::as_str).map(str::to_string);
    let mut libs = strings(target.and_then(|t| t.get("libs")));
    for code in target.and_then(|t| t.get("code")).and_then(Value::as_array).into_iter().flatten() {
        if code.get("engine").and_then(Value::as_str) == Some("Rego") {
            let source = code.get("source");
            if let Some(r) = source.and_then(|s| s.get("rego")).and_then(Value::as_str) {
                rego = Some(r.to_string());
                libs = strings(source.and_then(|s| s.get("libs")));
            }
        }
    }
    Embedded { rego, libs }
}

/// The 0-based line before the first line of `source` inside `text` (a block scalar), so that
/// source line N is file line `start + N`, and the block's indentation.
fn block_start(text: &str, source: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let wanted: Vec<&str> = source.lines().take(4).collect();
    let first = wanted.iter().position(|l| !l.trim().is_empty())?;
    (0..lines.len()).find_map(|i| {
        let matches = wanted[first..]
            .iter()
            .enumerate()
            .all(|(k, w)| lines.get(i + k).is_some_and(|l| l.trim() == w.trim() && l.ends_with(w.trim_start())));
        if !matches {
            return None;
        }
        let indent =
            lines[i].len() - lines[i].trim_start().len() - (wanted[first].len() - wanted[first].trim_start().len());
        (i >= first).then_some((i - first, indent))
    })
}
