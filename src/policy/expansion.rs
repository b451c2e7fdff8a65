//! ExpansionTemplates (Gatekeeper's semantics): a workload implies the objects its controller will
//! create (a Deployment implies a Pod from `spec.template`), so Pod policies cover every workload.
//! Implied objects keep a pointer prefix into the parent, so findings land in the parent's file.

use serde_json::Value;

use crate::manifest::{node, split_api_version, Implied, Origin, Resource};

#[derive(Clone, Debug)]
pub struct ExpansionTemplate {
    pub name: String,
    /// (groups, versions, kinds) triples from `applyTo`.
    pub apply_to: Vec<(Vec<String>, Vec<String>, Vec<String>)>,
    /// Dotted path of the source field, e.g. `spec.template`.
    pub template_source: String,
    pub generated: (String, String, String),
    pub enforcement_action: Option<String>,
}

pub fn is_expansion(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("ExpansionTemplate")
        && object.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("expansion.gatekeeper.sh/"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

pub fn load(object: &Value) -> Result<ExpansionTemplate, String> {
    let spec = object.get("spec").ok_or("ExpansionTemplate has no spec")?;
    let s = |p: &str| spec.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let t = ExpansionTemplate {
        name: object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string(),
        apply_to: spec
            .get("applyTo")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| (strings(a.get("groups")), strings(a.get("versions")), strings(a.get("kinds"))))
            .collect(),
        template_source: s("/templateSource"),
        generated: (s("/generatedGVK/group"), s("/generatedGVK/version"), s("/generatedGVK/kind")),
        enforcement_action: spec
            .get("enforcementAction")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .map(str::to_string),
    };
    if t.template_source.is_empty() {
        return Err(format!("ExpansionTemplate {} must specify templateSource", t.name));
    }
    if t.apply_to.is_empty() {
        return Err(format!("ExpansionTemplate {} must specify applyTo", t.name));
    }
    if t.generated.2.is_empty() {
        return Err(format!("ExpansionTemplate {} must specify generatedGVK", t.name));
    }
    Ok(t)
}

fn builtin(
    name: &str,
    groups: &[&str],
    kinds: &[&str],
    source: &str,
    generated: (&str, &str, &str),
) -> ExpansionTemplate {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    ExpansionTemplate {
        name: name.into(),
        apply_to: vec![(v(groups), v(&["*"]), v(kinds))],
        template_source: source.into(),
        generated: (generated.0.into(), generated.1.into(), generated.2.into()),
        enforcement_action: None,
    }
}

/// The defaults guardrail applies when no loaded ExpansionTemplate covers a kind.
pub fn defaults() -> Vec<ExpansionTemplate> {
    vec![
        builtin(
            "expand-workloads",
            &["apps", "extensions"],
            &["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"],
            "spec.template",
            ("", "v1", "Pod"),
        ),
        builtin("expand-workloads", &[""], &["ReplicationController"], "spec.template", ("", "v1", "Pod")),
        builtin("expand-workloads", &["batch"], &["Job"], "spec.template", ("", "v1", "Pod")),
        builtin("expand-cronjobs", &["batch"], &["CronJob"], "spec.jobTemplate", ("batch", "v1", "Job")),
    ]
}

impl ExpansionTemplate {
    pub fn applies(&self, api_version: &str, kind: &str) -> bool {
        let (group, version) = split_api_version(api_version);
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == "*" || x == v);
        self.apply_to.iter().any(|(g, v, k)| any(g, group) && any(v, version) && any(k, kind))
    }
}

/// All objects implied by `resource`, recursively (a CronJob implies a Job, which implies a Pod).
pub fn expand(templates: &[ExpansionTemplate], resource: &Resource, depth: usize) -> Vec<Resource> {
    if depth >= 5 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let api = resource.api_version().to_string();
    let kind = resource.kind().to_string();
    for template in templates.iter().filter(|t| t.applies(&api, &kind)) {
        let Some(pointer) = node::path_to_pointer(&template.template_source) else { continue };
        let Some(Value::Object(source)) = resource.object.pointer(&pointer) else { continue };
        let mut child = source.clone();
        let (g, v, k) = &template.generated;
        let api_version = if g.is_empty() { v.clone() } else { format!("{g}/{v}") };
        child.insert("apiVersion".into(), Value::String(api_version));
        child.insert("kind".into(), Value::String(k.clone()));
        let meta = child.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            let ns = resource.namespace();
            if !ns.is_empty() {
                meta.insert("namespace".into(), Value::String(ns.to_string()));
            }
            let mock = format!("{}-{}", resource.name(), k).to_lowercase();
            meta.insert("name".into(), Value::String(mock));
            let owner = serde_json::json!({"apiVersion": api, "kind": kind, "name": resource.name()});
            let refs = meta.entry("ownerReferences").or_insert_with(|| Value::Array(Vec::new()));
            if let Some(refs) = refs.as_array_mut() {
                refs.push(owner);
            }
        }
        let implied = Resource {
            object: Value::Object(child),
            reported: resource.reported.clone(),
            origin: Origin {
                file: resource.origin.file.clone(),
                document: resource.origin.document.clone(),
                prefix: format!("{}{}", resource.origin.prefix, pointer),
            },
            implied_by: Some(Implied {
                template: template.name.clone(),
                enforcement_action: template
                    .enforcement_action
                    .clone()
                    .or_else(|| resource.implied_by.as_ref().and_then(|i| i.enforcement_action.clone())),
            }),
        };
        out.extend(expand(templates, &implied, depth + 1));
        out.push(implied);
    }
    out
}

/// API versions Kubernetes no longer serves: (apiVersion, kinds, the release that removed them).
const REMOVED: &[(&str, &[&str], &str)] = &[
    ("extensions/v1beta1", &["Deployment", "DaemonSet", "ReplicaSet", "NetworkPolicy", "PodSecurityPolicy"], "1.16"),
    ("extensions/v1beta1", &["Ingress"], "1.22"),
    ("apps/v1beta1", &["Deployment", "StatefulSet", "ControllerRevision"], "1.16"),
    ("apps/v1beta2", &["Deployment", "DaemonSet", "ReplicaSet", "StatefulSet", "ControllerRevision"], "1.16"),
    ("networking.k8s.io/v1beta1", &["Ingress", "IngressClass"], "1.22"),
    ("batch/v1beta1", &["CronJob"], "1.25"),
    ("policy/v1beta1", &["PodDisruptionBudget", "PodSecurityPolicy"], "1.25"),
    ("autoscaling/v2beta1", &["HorizontalPodAutoscaler"], "1.25"),
    ("autoscaling/v2beta2", &["HorizontalPodAutoscaler"], "1.26"),
    ("rbac.authorization.k8s.io/v1beta1", &["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"], "1.22"),
    ("apiextensions.k8s.io/v1beta1", &["CustomResourceDefinition"], "1.22"),
    (
        "admissionregistration.k8s.io/v1beta1",
        &["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"],
        "1.22",
    ),
];

/// "extensions/v1beta1 DaemonSet was removed in Kubernetes 1.16 ..." for an object of a removed
/// API version (its workloads are still expanded, so Pod policies apply to them).
pub fn removed_api(api_version: &str, kind: &str) -> Option<String> {
    let (_, _, release) = REMOVED.iter().find(|(a, kinds, _)| *a == api_version && kinds.contains(&kind))?;
    let (group, _) = split_api_version(api_version);
    let now = match (api_version, kind) {
        (_, "Ingress" | "IngressClass") | ("extensions/v1beta1", "NetworkPolicy") => "networking.k8s.io/v1".to_string(),
        (_, "PodSecurityPolicy") => "nothing (Pod Security Admission replaces it)".into(),
        (_, "HorizontalPodAutoscaler") => "autoscaling/v2".into(),
        _ if group == "extensions" => "apps/v1".into(),
        _ => format!("{group}/v1"),
    };
    Some(format!("{api_version} {kind} was removed in Kubernetes {release}; use {now}"))
}
