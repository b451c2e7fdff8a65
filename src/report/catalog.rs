//! What each policy of a run is: its name as findings carry it, what it denies and how to fix it
//! (the template's `description` and `guardrail.dev/remediation` annotations), its parameters and where
//! it comes from. `guardrail policies` lists it; SARIF rules are made from it.

use serde::Serialize;
use serde_json::Value;

use crate::findings::Severity;
use crate::policy::template::TemplateBody;
use crate::policy::PolicySet;

/// Whether a policy takes part in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Active,
    /// A built-in that needs the organisation's data (its registries, its node pools) and has no
    /// Constraint yet: it does nothing until one is added.
    NotConfigured,
    /// Switched off (`disable:` in `.github/guardrail.yml`).
    Disabled,
    /// A ConstraintTemplate without a Constraint of its kind: it does nothing.
    NoConstraint,
    /// A template guardrail cannot evaluate (CEL only, say).
    Unsupported,
}

#[derive(Clone, Debug, Serialize)]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConstraintInfo {
    pub name: String,
    /// `deny`, `warn`, `dryrun`, `scoped`.
    pub action: String,
    /// What its findings are at guardrail's enforcement point; `None`: it does not act there.
    pub severity: Option<Severity>,
    pub file: String,
    pub parameters: Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct PolicyInfo {
    /// The name findings carry: a built-in's folder name, a template's kind, a Rego package.
    pub name: String,
    /// `ConstraintTemplate`, `Rego module` or `guardrail` (checks of the input itself).
    #[serde(rename = "type")]
    pub kind: String,
    /// The Constraint kind a template defines.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub constraint_kind: String,
    pub builtin: bool,
    /// `built-in`, or the file it was loaded from.
    pub source: String,
    pub status: Status,
    pub description: String,
    pub remediation: String,
    pub parameters: Vec<Parameter>,
    pub constraints: Vec<ConstraintInfo>,
    /// Rule names of a Rego module (`deny`, `warn_latest_tag`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}

impl PolicyInfo {
    /// The most severe finding this policy can produce in this run.
    pub fn severity(&self) -> Severity {
        self.constraints.iter().filter_map(|c| c.severity).min().unwrap_or(Severity::Deny)
    }

    /// A page that explains the policy: the built-in reference, or the guide for policy authors.
    pub fn help_uri(&self) -> Option<String> {
        let repository = env!("CARGO_PKG_REPOSITORY");
        if repository.is_empty() {
            return None;
        }
        let page = if self.builtin {
            format!("builtin-policies.md#{}", self.name)
        } else if self.kind == "guardrail" {
            "configuration.md#findings-about-the-input".to_string()
        } else {
            "policy-authors.md#descriptions-and-remediations".to_string()
        };
        Some(format!("{repository}/blob/main/docs/{page}"))
    }
}

/// Every policy of `set`, built-ins first, then templates and Rego modules in load order. Built-ins
/// named in `disabled` are listed as such.
pub fn describe(set: &PolicySet, disabled: &[String]) -> Vec<PolicyInfo> {
    let mut out = Vec::new();
    for (i, t) in set.templates.iter().enumerate() {
        let builtin = set.builtin_of.get(&i);
        let constraints: Vec<ConstraintInfo> = set
            .constraints
            .iter()
            .filter(|c| c.kind == t.kind)
            .map(|c| ConstraintInfo {
                name: c.name.clone(),
                action: c.action.clone(),
                severity: c.severity,
                file: c.file.clone(),
                parameters: c.parameters.clone(),
            })
            .collect();
        let name = builtin.cloned().unwrap_or_else(|| t.kind.clone());
        let status = if builtin.is_some() && disabled.contains(&name) {
            Status::Disabled
        } else if matches!(t.body, TemplateBody::Unsupported(_)) {
            Status::Unsupported
        } else if constraints.is_empty() && builtin.is_some() {
            Status::NotConfigured
        } else if constraints.is_empty() {
            Status::NoConstraint
        } else {
            Status::Active
        };
        out.push(PolicyInfo {
            name,
            kind: "ConstraintTemplate".into(),
            constraint_kind: t.kind.clone(),
            builtin: builtin.is_some(),
            source: if builtin.is_some() { "built-in".into() } else { t.file.clone() },
            status,
            description: t.description.clone(),
            remediation: t.remediation.clone(),
            parameters: parameters(t.parameters_schema.as_ref()),
            constraints,
            rules: Vec::new(),
        });
    }
    out.sort_by_key(|p| !p.builtin);
    for m in &set.modules {
        let mut packages: Vec<&str> = m.rules.iter().map(|r| r.package.as_str()).collect();
        packages.dedup();
        for package in packages {
            let rules: Vec<_> = m.rules.iter().filter(|r| r.package == package).collect();
            let severity = rules.iter().map(|r| r.severity).min();
            out.push(PolicyInfo {
                name: package.to_string(),
                kind: "Rego module".into(),
                constraint_kind: String::new(),
                builtin: false,
                source: m.files.join(", "),
                status: Status::Active,
                description: String::new(),
                remediation: String::new(),
                parameters: Vec::new(),
                constraints: vec![ConstraintInfo {
                    name: String::new(),
                    action: severity.map(|s| s.as_str()).unwrap_or("deny").into(),
                    severity,
                    file: m.files.join(", "),
                    parameters: Value::Null,
                }],
                rules: rules.iter().map(|r| r.rule.clone()).collect(),
            });
        }
    }
    out
}

/// Drops the constraints of the built-ins not in `enabled` (a repository's `disable:`), keeping
/// their templates so that a Constraint of such a kind elsewhere still loads. Returns the disabled
/// built-ins' names. Shared by the CLI and the App.
pub fn disable_builtins(set: &mut PolicySet, enabled: &[String]) -> Vec<String> {
    let disabled: Vec<String> = crate::policy::builtin_names()
        .into_iter()
        .filter(|n| !enabled.iter().any(|e| e == n))
        .map(String::from)
        .collect();
    let disabled_kinds: Vec<String> = set
        .builtin_of
        .iter()
        .filter(|(_, name)| disabled.contains(name))
        .map(|(i, _)| set.templates[*i].kind.clone())
        .collect();
    set.constraints.retain(|c| !disabled_kinds.contains(&c.kind));
    // A worker that loads the set again drops the same constraints (twice disabled: both lists).
    if let Some(recipe) = &mut set.recipe {
        let recipe = std::sync::Arc::make_mut(recipe);
        let kept = match &recipe.enabled {
            Some(before) => enabled.iter().filter(|e| before.contains(e)).cloned().collect(),
            None => enabled.to_vec(),
        };
        recipe.enabled = Some(kept);
    }
    disabled
}

/// One note for the built-ins that wait for the organisation's data (`None` when none does).
/// Shared by the CLI's output and the App's check-run summary.
pub fn unconfigured_note(described: &[PolicyInfo]) -> Option<String> {
    let waiting: Vec<&PolicyInfo> = described.iter().filter(|p| p.status == Status::NotConfigured).collect();
    if waiting.is_empty() {
        return None;
    }
    let how: Vec<String> = waiting
        .iter()
        .map(|p| {
            let params: Vec<&str> = p.parameters.iter().map(|q| q.name.as_str()).collect();
            format!("{} (a {} Constraint with `{}`)", p.name, p.constraint_kind, params.join("`, `"))
        })
        .collect();
    Some(format!(
        "not configured, so not checked: {}. These built-ins need your organisation's data: add the Constraint to the policy repository or a --policy folder (see docs/builtin-policies.md)",
        how.join("; ")
    ))
}

/// Constraints that a run evaluates: each active constraint, and each rule of a Rego module.
pub fn active_count(policies: &[PolicyInfo]) -> usize {
    policies
        .iter()
        .filter(|p| p.status == Status::Active)
        .map(|p| if p.kind == "Rego module" { p.rules.len() } else { p.constraints.len() })
        .sum()
}

/// The top-level parameters of a template's `openAPIV3Schema`.
fn parameters(schema: Option<&Value>) -> Vec<Parameter> {
    let Some(properties) = schema.and_then(|s| s.get("properties")).and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, p)| Parameter {
            name: name.clone(),
            kind: match p.get("type").and_then(Value::as_str) {
                Some("array") => {
                    let item = p.pointer("/items/type").and_then(Value::as_str).unwrap_or("any");
                    format!("array of {item}")
                }
                Some(t) => t.to_string(),
                None => "any".into(),
            },
            description: p
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })
        .collect()
}

/// A policy the run's catalogue does not know (a bare render): what its findings say about it.
pub fn unknown(name: &str, severity: Severity) -> PolicyInfo {
    if name.starts_with("guardrail/") {
        return guardrail_rule(name);
    }
    PolicyInfo {
        name: name.to_string(),
        kind: "policy".into(),
        constraint_kind: String::new(),
        builtin: false,
        source: String::new(),
        status: Status::Active,
        description: String::new(),
        remediation: String::new(),
        parameters: Vec::new(),
        constraints: vec![ConstraintInfo {
            name: String::new(),
            action: severity.as_str().into(),
            severity: Some(severity),
            file: String::new(),
            parameters: Value::Null,
        }],
        rules: Vec::new(),
    }
}

/// guardrail's own checks of the input, so that their findings have a rule too.
pub fn guardrail_rule(name: &str) -> PolicyInfo {
    let (description, remediation) = match name {
        "guardrail/yaml" => (
            "The file is not YAML that Kubernetes reads the way it looks: a syntax error, a duplicate key, a value whose meaning differs between YAML 1.1 and 1.2, or an input over guardrail's budgets. Such a file cannot be checked, or may not mean what it says.",
            "Fix the YAML at the position shown: remove the duplicate key, quote ambiguous values (`\"yes\"`, `\"0644\"`), or split the file.",
        ),
        "guardrail/terraform" => (
            "Terraform that guardrail could not evaluate completely: an expression whose value is only known at apply time, a file outside the checked folder, or a budget exceeded.",
            "Give the value a default or a tfvars entry, keep files the configuration reads inside the repository, or check the rendered manifests.",
        ),
        "guardrail/exemption" => (
            "An exemption annotation that does not apply: it has no reason, no expiry date, or it has expired.",
            "Set `guardrail.dev/exempt-reason` and `guardrail.dev/exempt-until` (YYYY-MM-DD, not in the past), or remove the exemption.",
        ),
        "guardrail/note" => (
            "A file guardrail did not check, and why (a Helm template, a chart's templates folder).",
            "Render templates first (`helm template … | guardrail check -`) so that the objects they make are checked.",
        ),
        "guardrail/input" => ("A file guardrail could not read or that is over its size limit.", "Split the file, or keep generated files out of the checked paths."),
        _ => ("A problem guardrail found with its input.", "Follow the message."),
    };
    PolicyInfo {
        name: name.to_string(),
        kind: "guardrail".into(),
        constraint_kind: String::new(),
        builtin: false,
        source: "guardrail".into(),
        status: Status::Active,
        description: description.into(),
        remediation: remediation.into(),
        parameters: Vec::new(),
        constraints: Vec::new(),
        rules: Vec::new(),
    }
}
