//! ValidatingAdmissionPolicy + ValidatingAdmissionPolicyBinding (`admissionregistration.k8s.io/v1`),
//! evaluated as the API server evaluates them for a CREATE of each object: the policy's
//! `matchConstraints` and the binding's `matchResources` (resource rules, exclusions, namespace and
//! object selectors, `matchPolicy`), parameters (`paramKind` + `paramRef` by name or selector, from
//! the objects in the policy paths), `matchConditions`, `variables`, `validations`,
//! `auditAnnotations`, `failurePolicy` and `validationActions`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::gatekeeper::error_message;
use super::kinds::Kinds;
use super::{compile, eval, quoted, text, Expr, Failure};
use crate::findings::Severity;
use crate::manifest::{meta_str, split_api_version};
use crate::policy::constraint::selector_matches;
use crate::policy::Hit;

const GROUP: &str = "admissionregistration.k8s.io/";

pub fn is_policy(o: &Value) -> bool {
    kind_is(o, "ValidatingAdmissionPolicy")
}

pub fn is_binding(o: &Value) -> bool {
    kind_is(o, "ValidatingAdmissionPolicyBinding")
}

fn kind_is(o: &Value, kind: &str) -> bool {
    o.get("kind").and_then(Value::as_str) == Some(kind)
        && o.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with(GROUP))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// One `resourceRules` / `excludeResourceRules` entry.
#[derive(Clone, Debug, Default)]
pub struct Rule {
    groups: Vec<String>,
    versions: Vec<String>,
    resources: Vec<String>,
    operations: Vec<String>,
    names: Vec<String>,
    scope: String,
}

/// `matchConstraints` of a policy or `matchResources` of a binding.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    namespace_selector: Option<Value>,
    object_selector: Option<Value>,
    rules: Vec<Rule>,
    exclude: Vec<Rule>,
    exact: bool,
}

/// What a request is about, as the rules see it.
pub struct Request<'a> {
    pub object: &'a Value,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    pub namespaced: bool,
    pub namespace: &'a str,
    /// The object's Namespace, when it is among the inputs.
    pub namespace_object: Option<&'a Value>,
}

fn any(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x == "*" || x == value)
}

/// API groups that serve the same resources under another name (for `matchPolicy: Equivalent`).
fn equivalent_groups(group: &str, resource: &str) -> Vec<&'static str> {
    match (group, resource) {
        ("apps" | "extensions", "deployments" | "daemonsets" | "replicasets") => vec!["apps", "extensions"],
        ("networking.k8s.io" | "extensions", "ingresses" | "networkpolicies") => {
            vec!["networking.k8s.io", "extensions"]
        }
        ("policy" | "extensions", "podsecuritypolicies") => vec!["policy", "extensions"],
        _ => Vec::new(),
    }
}

impl Rule {
    fn from_json(v: &Value) -> Rule {
        Rule {
            groups: strings(v.get("apiGroups")),
            versions: strings(v.get("apiVersions")),
            resources: strings(v.get("resources")),
            operations: strings(v.get("operations")),
            names: strings(v.get("resourceNames")),
            scope: v.get("scope").and_then(Value::as_str).unwrap_or("*").to_string(),
        }
    }

    fn matches(&self, r: &Request, exact: bool) -> bool {
        if !any(&self.operations, "CREATE") {
            return false;
        }
        // A create of the object itself: `*` and `*/*` match it, `pods/*` (subresources) does not.
        let resource_ok = self.resources.iter().any(|x| x == "*" || x == "*/*" || x == r.resource);
        if !resource_ok {
            return false;
        }
        let group_ok = any(&self.groups, r.group)
            || (!exact && equivalent_groups(r.group, r.resource).iter().any(|g| any(&self.groups, g)));
        let version_ok = any(&self.versions, r.version) || !exact;
        let scope_ok = match self.scope.as_str() {
            "Namespaced" => r.namespaced,
            "Cluster" => !r.namespaced,
            _ => true,
        };
        let name = meta_str(r.object, "name");
        group_ok && version_ok && scope_ok && (self.names.is_empty() || self.names.iter().any(|n| n == name))
    }
}

impl Resources {
    fn from_json(v: Option<&Value>) -> Option<Resources> {
        let v = v.filter(|v| v.is_object())?;
        let rules = |k: &str| v.get(k).and_then(Value::as_array).into_iter().flatten().map(Rule::from_json).collect();
        Some(Resources {
            namespace_selector: v.get("namespaceSelector").filter(|s| !s.is_null()).cloned(),
            object_selector: v.get("objectSelector").filter(|s| !s.is_null()).cloned(),
            rules: rules("resourceRules"),
            exclude: rules("excludeResourceRules"),
            exact: v.get("matchPolicy").and_then(Value::as_str) == Some("Exact"),
        })
    }

    /// `rules_required`: a policy's `matchConstraints` matches nothing without resource rules; a
    /// binding's `matchResources` without them only narrows by its selectors.
    fn matches(&self, r: &Request, rules_required: bool) -> bool {
        let ruled =
            if self.rules.is_empty() { !rules_required } else { self.rules.iter().any(|x| x.matches(r, self.exact)) };
        if !ruled || self.exclude.iter().any(|x| x.matches(r, self.exact)) {
            return false;
        }
        if let Some(sel) = &self.object_selector {
            if !selector_matches(sel, r.object.pointer("/metadata/labels")) {
                return false;
            }
        }
        if let Some(sel) = &self.namespace_selector {
            let is_namespace = r.group.is_empty() && r.resource == "namespaces";
            let labels = if is_namespace {
                Some(with_name_label(r.object.pointer("/metadata/labels"), meta_str(r.object, "name")))
            } else if r.namespaced {
                Some(with_name_label(r.namespace_object.and_then(|n| n.pointer("/metadata/labels")), r.namespace))
            } else {
                None // other cluster-scoped objects are never skipped by a namespace selector
            };
            if let Some(labels) = labels {
                if !selector_matches(sel, Some(&labels)) {
                    return false;
                }
            }
        }
        true
    }
}

/// Namespace labels as the API server keeps them: `kubernetes.io/metadata.name` is always set.
fn with_name_label(labels: Option<&Value>, name: &str) -> Value {
    let mut map = labels.and_then(Value::as_object).cloned().unwrap_or_default();
    map.insert("kubernetes.io/metadata.name".into(), Value::String(name.to_string()));
    Value::Object(map)
}

#[derive(Clone, Debug)]
pub struct Validation {
    expression: Expr,
    message: Option<String>,
    message_expression: Option<Expr>,
    reason: String,
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub name: String,
    pub file: String,
    /// `(apiVersion, kind)` of the parameter objects.
    param_kind: Option<(String, String)>,
    matching: Option<Resources>,
    match_conditions: Vec<(String, Expr)>,
    variables: Vec<(String, Expr)>,
    validations: Vec<Validation>,
    audit_annotations: Vec<(String, Expr)>,
    /// `failurePolicy: Ignore`: an evaluation error is no finding.
    ignore_failures: bool,
    /// Some expression reads `authorizer`, which needs a cluster.
    pub uses_authorizer: bool,
}

#[derive(Clone, Debug)]
pub struct ParamRef {
    name: String,
    namespace: String,
    selector: Option<Value>,
    deny_when_missing: bool,
}

#[derive(Clone, Debug)]
pub struct Binding {
    pub name: String,
    pub file: String,
    pub policy: String,
    param_ref: Option<ParamRef>,
    matching: Option<Resources>,
    pub severity: Severity,
}

fn compiled(policy: &str, what: &str, source: Option<&Value>) -> Result<Expr, String> {
    let source = source.and_then(Value::as_str).ok_or_else(|| format!("{policy}: {what} has no expression"))?;
    compile(source).map_err(|e| format!("{policy}: {what} does not compile: {e}"))
}

impl Policy {
    pub fn load(o: &Value, file: &str) -> Result<Policy, String> {
        let name = meta_str(o, "name").to_string();
        let spec = o.get("spec").cloned().unwrap_or(Value::Null);
        let label = format!("ValidatingAdmissionPolicy {name}");
        let named = |key: &str, field: &str| -> Result<Vec<(String, Expr)>, String> {
            let mut out = Vec::new();
            for (i, v) in spec.get(key).and_then(Value::as_array).into_iter().flatten().enumerate() {
                let n = v.get(field).and_then(Value::as_str).unwrap_or("").to_string();
                let source = if key == "auditAnnotations" { v.get("valueExpression") } else { v.get("expression") };
                out.push((n, compiled(&label, &format!("{key}[{i}]"), source)?));
            }
            Ok(out)
        };
        let mut validations = Vec::new();
        for (i, v) in spec.get("validations").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let message_expression = match v.get("messageExpression").filter(|m| !m.is_null()) {
                Some(m) => Some(compiled(&label, &format!("validations[{i}].messageExpression"), Some(m))?),
                None => None,
            };
            validations.push(Validation {
                expression: compiled(&label, &format!("validations[{i}]"), v.get("expression"))?,
                message: v.get("message").and_then(Value::as_str).filter(|m| !m.trim().is_empty()).map(str::to_string),
                message_expression,
                reason: v.get("reason").and_then(Value::as_str).unwrap_or("Invalid").to_string(),
            });
        }
        let param_kind = spec.get("paramKind").filter(|p| p.is_object()).map(|p| {
            let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (s("apiVersion"), s("kind"))
        });
        let mut policy = Policy {
            file: file.to_string(),
            param_kind,
            matching: Resources::from_json(spec.get("matchConstraints")),
            match_conditions: named("matchConditions", "name")?,
            variables: named("variables", "name")?,
            validations,
            audit_annotations: named("auditAnnotations", "key")?,
            ignore_failures: spec.get("failurePolicy").and_then(Value::as_str) == Some("Ignore"),
            uses_authorizer: false,
            name,
        };
        if policy.validations.is_empty() && policy.audit_annotations.is_empty() {
            return Err(format!("{label}: has neither validations nor auditAnnotations"));
        }
        let uses_authorizer = policy.expressions().any(|e| e.reads("authorizer"));
        policy.uses_authorizer = uses_authorizer;
        Ok(policy)
    }

    fn expressions(&self) -> impl Iterator<Item = &Expr> {
        self.match_conditions
            .iter()
            .chain(&self.variables)
            .chain(&self.audit_annotations)
            .map(|(_, e)| e)
            .chain(self.validations.iter().flat_map(|v| std::iter::once(&v.expression).chain(&v.message_expression)))
    }

    pub fn has_audit_annotations(&self) -> bool {
        !self.audit_annotations.is_empty()
    }
}

impl Binding {
    pub fn load(o: &Value, file: &str) -> Result<Binding, String> {
        let name = meta_str(o, "name").to_string();
        let spec = o.get("spec").cloned().unwrap_or(Value::Null);
        let policy = spec.get("policyName").and_then(Value::as_str).unwrap_or("").to_string();
        if policy.is_empty() {
            return Err(format!("ValidatingAdmissionPolicyBinding {name}: spec.policyName is required"));
        }
        let param_ref = spec.get("paramRef").filter(|p| p.is_object()).map(|p| ParamRef {
            name: p.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
            namespace: p.get("namespace").and_then(Value::as_str).unwrap_or("").to_string(),
            selector: p.get("selector").filter(|s| !s.is_null()).cloned(),
            deny_when_missing: p.get("parameterNotFoundAction").and_then(Value::as_str) != Some("Allow"),
        });
        let actions = strings(spec.get("validationActions"));
        // The strictest action decides how a finding blocks (Deny > Warn > Audit).
        let severity = if actions.is_empty() || actions.iter().any(|a| a == "Deny") {
            Severity::Deny
        } else if actions.iter().any(|a| a == "Warn") {
            Severity::Warn
        } else {
            Severity::Info
        };
        Ok(Binding {
            name,
            file: file.to_string(),
            policy,
            param_ref,
            matching: Resources::from_json(spec.get("matchResources")),
            severity,
        })
    }
}

/// The VAPs, bindings and the other objects of the policy paths (parameter candidates).
#[derive(Clone, Debug, Default)]
pub struct Set {
    pub policies: Vec<Policy>,
    pub bindings: Vec<Binding>,
    pub objects: Vec<Value>,
}

/// Which parameter object a binding is evaluated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// The policy takes no parameters.
    None,
    Object(usize),
    /// The policy takes parameters and none was found (or the binding names none).
    Missing,
}

impl Set {
    pub fn add_policy(&mut self, p: Policy) {
        self.policies.retain(|x| x.name != p.name);
        self.policies.push(p);
    }

    pub fn add_binding(&mut self, b: Binding) {
        self.bindings.retain(|x| x.name != b.name);
        self.bindings.push(b);
    }

    pub fn policy_of(&self, binding: usize) -> Option<&Policy> {
        let name = &self.bindings[binding].policy;
        self.policies.iter().find(|p| &p.name == name)
    }

    /// Whether the binding and its policy select this request.
    pub fn matches(&self, binding: usize, r: &Request) -> bool {
        let Some(policy) = self.policy_of(binding) else { return false };
        let Some(constraints) = &policy.matching else { return false };
        constraints.matches(r, true) && self.bindings[binding].matching.as_ref().is_none_or(|m| m.matches(r, false))
    }

    /// The parameter objects a binding evaluates with, for an object in `namespace`.
    pub fn params(&self, binding: usize, namespace: &str) -> Vec<Param> {
        let Some(policy) = self.policy_of(binding) else { return Vec::new() };
        let Some((api_version, kind)) = &policy.param_kind else { return vec![Param::None] };
        let Some(r) = &self.bindings[binding].param_ref else { return vec![Param::Missing] };
        let found: Vec<Param> = self
            .objects
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                o.get("apiVersion").and_then(Value::as_str) == Some(api_version.as_str())
                    && o.get("kind").and_then(Value::as_str) == Some(kind.as_str())
            })
            .filter(|(_, o)| {
                let ns = meta_str(o, "namespace");
                // A namespaced parameter comes from paramRef.namespace, else the request's namespace.
                let wanted = if r.namespace.is_empty() { namespace } else { r.namespace.as_str() };
                ns.is_empty() || ns == wanted
            })
            .filter(|(_, o)| match (&r.selector, r.name.is_empty()) {
                (_, false) => meta_str(o, "name") == r.name,
                (Some(sel), true) => selector_matches(sel, o.pointer("/metadata/labels")),
                (None, true) => false,
            })
            .map(|(i, _)| Param::Object(i))
            .collect();
        if found.is_empty() {
            if r.deny_when_missing {
                vec![Param::Missing]
            } else {
                Vec::new()
            }
        } else {
            found
        }
    }

    /// Evaluates one binding with one parameter on one object: violations, or (with `audit`) the
    /// audit annotations.
    /// `variant`: an edited copy made while locating (see `super::Input::is_variant`).
    pub fn run(
        &self,
        binding: usize,
        param: Param,
        audit: bool,
        object: &cel::Value,
        req: &Request,
        variant: bool,
    ) -> Vec<Hit> {
        let Some(policy) = self.policy_of(binding) else { return Vec::new() };
        let b = &self.bindings[binding];
        if policy.uses_authorizer {
            return if audit {
                Vec::new()
            } else {
                vec![hit(format!(
                    "ValidatingAdmissionPolicy {} is not evaluable: it reads `authorizer`, which needs the cluster's authorization; check this object against the cluster",
                    policy.name
                ))]
            };
        }
        let params = match param {
            Param::None => cel::Value::Null,
            Param::Object(i) => super::value(&self.objects[i]),
            Param::Missing => {
                return if audit {
                    Vec::new()
                } else if b.param_ref.is_none() {
                    vec![hit(format!(
                        "failed to configure binding: ValidatingAdmissionPolicyBinding {} has no paramRef, but policy {} takes parameters (paramKind)",
                        b.name, policy.name
                    ))]
                } else {
                    vec![hit("failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction".into())]
                };
            }
        };
        let (kind_group, kind_version) = (req.group, req.version);
        let kind = req.object.get("kind").and_then(Value::as_str).unwrap_or("");
        let gvk = json!({"group": kind_group, "version": kind_version, "kind": kind});
        let gvr = json!({"group": req.group, "version": req.version, "resource": req.resource});
        let request = super::value(&json!({
            "uid": "", "kind": gvk, "resource": gvr, "subResource": "", "requestKind": gvk, "requestResource": gvr,
            "requestSubResource": "", "name": meta_str(req.object, "name"), "namespace": req.namespace, "operation": "CREATE",
            "userInfo": {"username": "", "groups": []}, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }));
        let namespace_object = match (req.namespaced, req.namespace_object) {
            (true, Some(ns)) => super::value(ns),
            _ => cel::Value::Null,
        };
        let mut vars: Vec<(String, cel::Value)> = Vec::new();
        let mut vars_value = bind(&vars);
        let null = cel::Value::Null;
        let run = |expr: &Expr, vars: &cel::Value| {
            eval(
                expr,
                &[
                    ("object", object),
                    ("oldObject", &null),
                    ("request", &request),
                    ("params", &params),
                    ("namespaceObject", &namespace_object),
                    ("variables", vars),
                ],
            )
        };
        let failed_hit = |text: String, failure: &Failure| -> Option<Hit> {
            match failure {
                Failure::Error(_) if policy.ignore_failures || variant => None,
                _ => Some(hit(text)),
            }
        };
        for (name, expr) in &policy.match_conditions {
            match run(expr, &vars_value) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => return Vec::new(),
                Ok(other) => {
                    let f = Failure::Error(format!("returned {}, not a bool", text(&other)));
                    return failed_hit(format!("match condition {name:?} failed: {f}"), &f).into_iter().collect();
                }
                Err(f) => return failed_hit(format!("match condition {name:?} failed: {f}"), &f).into_iter().collect(),
            }
        }
        let mut failed = Vec::new();
        for (name, expr) in &policy.variables {
            match run(expr, &vars_value) {
                Ok(v) => {
                    vars.push((name.clone(), v));
                    vars_value = bind(&vars);
                }
                Err(f) => failed.push((name.clone(), f)),
            }
        }
        let mut hits = Vec::new();
        if audit {
            for (key, expr) in &policy.audit_annotations {
                match run(expr, &vars_value) {
                    Ok(cel::Value::Null) => {}
                    Ok(v) => hits.push(hit(format!("audit annotation {}/{key}: {}", policy.name, text(&v)))),
                    Err(f) => hits.extend(failed_hit(
                        format!("audit annotation {key}: {}", error_message(expr, &f, &failed)),
                        &f,
                    )),
                }
            }
            return hits;
        }
        for v in &policy.validations {
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
                    hits.push(Hit { message, details: json!({"reason": v.reason}) });
                }
                Ok(other) => {
                    let f =
                        Failure::Error(format!("validation expression must evaluate to a bool, got {}", text(&other)));
                    hits.extend(failed_hit(
                        format!("expression '{}' resulted in error: {f}", quoted(&v.expression)),
                        &f,
                    ));
                }
                Err(f) => hits.extend(failed_hit(error_message(&v.expression, &f, &failed), &f)),
            }
        }
        hits
    }
}

fn bind(vars: &[(String, cel::Value)]) -> cel::Value {
    let map: HashMap<cel::objects::Key, cel::Value> =
        vars.iter().map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), v.clone())).collect();
    cel::Value::from(map)
}

fn hit(message: String) -> Hit {
    Hit { message, details: Value::Null }
}

/// The request fields of an object: its group, version, resource name and scope.
pub fn request_of<'a>(
    object: &'a Value,
    kinds: &Kinds,
    namespace_object: Option<&'a Value>,
) -> (String, String, String, bool) {
    let (group, version) = split_api_version(object.get("apiVersion").and_then(Value::as_str).unwrap_or(""));
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let has_namespace = !meta_str(object, "namespace").is_empty() || namespace_object.is_some();
    let (resource, namespaced) = kinds.resource(group, kind, has_namespace);
    (group.to_string(), version.to_string(), resource, namespaced)
}
