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
        });
    };
    let inventory =
        inventory_use(&std::iter::once(rego.as_str()).chain(libs.iter().map(String::as_str)).collect::<Vec<_>>());
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
    })
}

/// `package a.b` -> `a.b` (also `package a["b"]`).
pub fn package_of(rego: &str) -> Option<String> {
    rego.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("package ").map(|p| p.split('#').next().unwrap_or("").trim().to_string())
    })
}
