//! Gatekeeper's `K8sNativeValidation` engine: a template's CEL `source` (variables in order,
//! validations, match conditions) run as Gatekeeper's k8scel driver runs it: `params` is the
//! Constraint, `variables.params` its `spec.parameters`, `variables.anyObject` the object (the old
//! object on DELETE), and an expression that fails is a violation (Gatekeeper's failure policy
//! for CEL is Fail).

use serde_json::{json, Value};

use super::{compile, eval, quoted, text, Expr, Failure};
use crate::policy::Hit;

/// Names Gatekeeper reserves for its own variables and match conditions.
const RESERVED_PREFIX: &str = "gatekeeper_internal_";

#[derive(Clone, Debug)]
pub struct Validation {
    pub expression: Expr,
    pub message: Option<String>,
    pub message_expression: Option<Expr>,
}

/// The CEL code of a template, compiled.
#[derive(Clone, Debug)]
pub struct Program {
    /// How long one evaluation may take (measured; see `super::Clock`).
    pub time_limit: std::time::Duration,
    pub match_conditions: Vec<(String, Expr)>,
    pub variables: Vec<(String, Expr)>,
    pub validations: Vec<Validation>,
}

fn compiled(what: &str, source: Option<&Value>) -> Result<Expr, String> {
    let source = source.and_then(Value::as_str).ok_or_else(|| format!("{what} has no expression"))?;
    compile(source).map_err(|e| format!("{what} does not compile: {e}"))
}

impl Program {
    /// From a `code[]` entry's `source` (`engine: K8sNativeValidation`).
    pub fn load(source: &Value) -> Result<Program, String> {
        let mut program = Program {
            time_limit: crate::policy::engine::DEFAULT_TIME_LIMIT,
            match_conditions: Vec::new(),
            variables: Vec::new(),
            validations: Vec::new(),
        };
        for (i, m) in source.get("matchConditions").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let name = m.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            if name.starts_with(RESERVED_PREFIX) {
                return Err(format!("match condition {name:?} uses the reserved prefix {RESERVED_PREFIX}"));
            }
            program.match_conditions.push((name, compiled(&format!("matchConditions[{i}]"), m.get("expression"))?));
        }
        for (i, v) in source.get("variables").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let name = v.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            if name.is_empty() || name.starts_with(RESERVED_PREFIX) || name == "params" || name == "anyObject" {
                return Err(format!("variables[{i}] has a name Gatekeeper reserves or none: {name:?}"));
            }
            program.variables.push((name, compiled(&format!("variables[{i}]"), v.get("expression"))?));
        }
        for (i, v) in source.get("validations").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let message_expression = match v.get("messageExpression") {
                Some(m) if !m.is_null() => Some(compiled(&format!("validations[{i}].messageExpression"), Some(m))?),
                _ => None,
            };
            program.validations.push(Validation {
                expression: compiled(&format!("validations[{i}]"), v.get("expression"))?,
                message: v.get("message").and_then(Value::as_str).filter(|m| !m.trim().is_empty()).map(str::to_string),
                message_expression,
            });
        }
        if program.validations.is_empty() {
            return Err("the K8sNativeValidation code has no validations".into());
        }
        Ok(program)
    }

    /// Violations of one constraint on one request. `request` is the admission request as
    /// Gatekeeper sees it (object, oldObject, kind, operation, …); `constraint` the Constraint object.
    /// `variant`: an edited copy made while locating (see `super::Input::is_variant`).
    pub fn run(&self, object: &cel::Value, request: &Value, constraint: &Value, variant: bool) -> Vec<Hit> {
        let old_object = request.get("oldObject").map(super::value).unwrap_or(cel::Value::Null);
        let any_object = if matches!(object, cel::Value::Null) { old_object.clone() } else { object.clone() };
        let parameters = constraint.pointer("/spec/parameters").cloned().unwrap_or(Value::Null);
        let namespace = request.get("namespace").and_then(Value::as_str).unwrap_or("");
        let is_namespace = request.pointer("/kind/kind").and_then(Value::as_str) == Some("Namespace")
            && request.pointer("/kind/group").and_then(Value::as_str).unwrap_or("").is_empty();
        // Gatekeeper passes a Namespace that carries only its name.
        let namespace_object = if namespace.is_empty() || is_namespace {
            cel::Value::Null
        } else {
            super::value(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        };
        let request_value = super::value(&strip_objects(request));
        let params = super::value(constraint);
        let mut variables: Vec<(String, cel::Value)> =
            vec![("params".into(), super::value(&parameters)), ("anyObject".into(), any_object)];
        let mut failed: Vec<(String, Failure)> = Vec::new();
        let bind = |vars: &[(String, cel::Value)]| -> cel::Value {
            let map: std::collections::HashMap<cel::objects::Key, cel::Value> = vars
                .iter()
                .map(|(k, v)| (cel::objects::Key::String(std::sync::Arc::new(k.clone())), v.clone()))
                .collect();
            cel::Value::from(map)
        };
        let mut vars_value = bind(&variables);
        let run = |expr: &Expr, vars: &cel::Value| {
            eval(
                expr,
                &[
                    ("object", object),
                    ("oldObject", &old_object),
                    ("request", &request_value),
                    ("params", &params),
                    ("namespaceObject", &namespace_object),
                    ("variables", vars),
                ],
            )
        };
        for (name, expr) in &self.match_conditions {
            match run(expr, &vars_value) {
                Ok(cel::Value::Bool(false)) => return Vec::new(),
                Ok(cel::Value::Bool(true)) => {}
                Ok(other) => {
                    return vec![hit(format!("match condition {name:?} returned {other:?}, not a bool"))];
                }
                Err(Failure::Error(_)) if variant => return Vec::new(),
                Err(e) => return vec![hit(format!("match condition {name:?} failed: {e}"))],
            }
        }
        for (name, expr) in &self.variables {
            match run(expr, &vars_value) {
                Ok(v) => {
                    variables.push((name.clone(), v));
                    vars_value = bind(&variables);
                }
                Err(e) => failed.push((name.clone(), e)),
            }
        }
        let mut hits = Vec::new();
        for v in &self.validations {
            match run(&v.expression, &vars_value) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => {
                    let message = v
                        .message_expression
                        .as_ref()
                        .and_then(|m| match run(m, &vars_value) {
                            Ok(cel::Value::String(s)) if !s.trim().is_empty() => Some(s.to_string()),
                            _ => None,
                        })
                        .or_else(|| v.message.clone())
                        .unwrap_or_else(|| format!("failed expression: {}", v.expression.source.trim()));
                    hits.push(hit(message));
                }
                Ok(other) => hits.push(hit(format!(
                    "expression '{}' resulted in error: validation expression must evaluate to a bool, got {}",
                    quoted(&v.expression),
                    text(&other)
                ))),
                Err(Failure::Error(_)) if variant => {}
                Err(e) => hits.push(hit(error_message(&v.expression, &e, &failed))),
            }
        }
        hits
    }
}

/// The admission request without its objects (they are bound as `object` and `oldObject`).
fn strip_objects(request: &Value) -> Value {
    let mut r = request.clone();
    if let Some(map) = r.as_object_mut() {
        map.remove("object");
        map.remove("oldObject");
    }
    r
}

fn hit(message: String) -> Hit {
    Hit { message, details: Value::Null }
}

/// What the API server says about an expression that failed, naming a variable that failed first.
pub fn error_message(expr: &Expr, failure: &Failure, failed: &[(String, Failure)]) -> String {
    let cause = failed
        .iter()
        .find(|(name, _)| expr.source.contains(&format!("variables.{name}")))
        .map(|(name, f)| format!("variable {name:?}: {f}"))
        .unwrap_or_else(|| failure.to_string());
    match failure {
        Failure::NotSupported(_) => format!("expression '{}' is {cause}", quoted(expr)),
        Failure::Error(_) => format!("expression '{}' resulted in error: {cause}", quoted(expr)),
    }
}
