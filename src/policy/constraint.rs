//! Constraints: which objects a template applies to (`spec.match`, with Gatekeeper's semantics),
//! with which parameters, and what happens on a violation (`enforcementAction`, `scoped`).

use serde_json::Value;

use crate::findings::Severity;
use crate::manifest::split_api_version;

/// guardrail evaluates as Gatekeeper's `gator` enforcement point.
pub const ENFORCEMENT_POINT: &str = "gator.gatekeeper.sh";

#[derive(Clone, Debug)]
pub struct Constraint {
    pub kind: String,
    pub name: String,
    pub parameters: Value,
    pub matcher: Match,
    /// `None`: the constraint does not act at guardrail's enforcement point.
    pub severity: Option<Severity>,
    pub action: String,
    pub file: String,
}

pub fn is_constraint(object: &Value) -> bool {
    object.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("constraints.gatekeeper.sh/"))
}

pub fn load(object: &Value, file: &str) -> Constraint {
    let spec = object.get("spec");
    let action = spec.and_then(|s| s.get("enforcementAction")).and_then(Value::as_str).unwrap_or("deny").to_string();
    let severity = match action.as_str() {
        "scoped" => scoped_severity(spec.and_then(|s| s.get("scopedEnforcementActions"))),
        other => action_severity(other),
    };
    Constraint {
        kind: object.get("kind").and_then(Value::as_str).unwrap_or("").to_string(),
        name: object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string(),
        parameters: spec.and_then(|s| s.get("parameters")).cloned().unwrap_or(Value::Object(Default::default())),
        matcher: Match::from_json(spec.and_then(|s| s.get("match"))),
        severity,
        action,
        file: file.into(),
    }
}

pub fn action_severity(action: &str) -> Option<Severity> {
    match action.to_ascii_lowercase().as_str() {
        "deny" => Some(Severity::Deny),
        "warn" => Some(Severity::Warn),
        "dryrun" => Some(Severity::Info),
        _ => Some(Severity::Deny), // unknown actions: Gatekeeper rejects them; be strict
    }
}

/// The strictest action among those whose enforcement points include gator (or `*`).
fn scoped_severity(actions: Option<&Value>) -> Option<Severity> {
    let mut best: Option<Severity> = None;
    for entry in actions.and_then(Value::as_array).into_iter().flatten() {
        let applies = entry
            .get("enforcementPoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|p| matches!(p.get("name").and_then(Value::as_str), Some(ENFORCEMENT_POINT) | Some("*")));
        if applies {
            let s = action_severity(entry.get("action").and_then(Value::as_str).unwrap_or("deny"));
            best = match (best, s) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    best
}

/// `spec.match` of a constraint.
#[derive(Clone, Debug, Default)]
pub struct Match {
    pub kinds: Vec<(Vec<String>, Vec<String>)>,
    pub scope: String,
    pub namespaces: Vec<String>,
    pub excluded_namespaces: Vec<String>,
    pub label_selector: Option<Value>,
    pub namespace_selector: Option<Value>,
    pub name: String,
    pub source: String,
}

/// What `Match::matches` needs to know about the object under review.
pub struct Target<'a> {
    pub object: &'a Value,
    /// The object's Namespace, when one was loaded (for `namespaceSelector`).
    pub namespace: Option<&'a Value>,
    /// `Original` or `Generated` (objects implied by expansion).
    pub source: &'a str,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

impl Match {
    pub fn from_json(m: Option<&Value>) -> Match {
        let Some(m) = m else { return Match::default() };
        Match {
            kinds: m
                .get("kinds")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|k| (strings(k.get("apiGroups")), strings(k.get("kinds"))))
                .collect(),
            scope: m.get("scope").and_then(Value::as_str).unwrap_or("").to_string(),
            namespaces: strings(m.get("namespaces")),
            excluded_namespaces: strings(m.get("excludedNamespaces")),
            label_selector: m.get("labelSelector").filter(|v| !v.is_null()).cloned(),
            namespace_selector: m.get("namespaceSelector").filter(|v| !v.is_null()).cloned(),
            name: m.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
            source: m.get("source").and_then(Value::as_str).unwrap_or("").to_string(),
        }
    }

    pub fn matches_kind(&self, group: &str, kind: &str) -> bool {
        self.kinds.is_empty()
            || self.kinds.iter().any(|(groups, kinds)| {
                (kinds.is_empty() || kinds.iter().any(|k| k == "*" || k == kind))
                    && (groups.is_empty() || groups.iter().any(|g| g == "*" || g == group))
            })
    }

    pub fn matches(&self, t: &Target) -> bool {
        let obj = t.object;
        let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let (group, _) = split_api_version(api);
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let is_namespace = kind == "Namespace" && group.is_empty();
        let obj_ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
        let ns_name = t.namespace.and_then(|n| n.pointer("/metadata/name")).and_then(Value::as_str);
        // The namespace the object is in, as Gatekeeper sees it (Namespaces are "in" themselves).
        let effective_ns = if is_namespace {
            Some(obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""))
        } else if let Some(n) = ns_name {
            Some(n)
        } else if !obj_ns.is_empty() {
            Some(obj_ns)
        } else {
            None
        };
        if !self.matches_kind(group, kind) {
            return false;
        }
        let has_namespace = !obj_ns.is_empty() || t.namespace.is_some();
        match self.scope.as_str() {
            // Gatekeeper: Namespaces count as cluster-scoped, objects without a namespace too.
            "Cluster" if !is_namespace && has_namespace => return false,
            "Namespaced" if is_namespace || !has_namespace => return false,
            _ => {}
        }
        if let (false, Some(ns)) = (self.namespaces.is_empty(), effective_ns) {
            if !self.namespaces.iter().any(|p| wildcard(p, ns)) {
                return false;
            }
        }
        if let Some(ns) = effective_ns {
            if self.excluded_namespaces.iter().any(|p| wildcard(p, ns)) {
                return false;
            }
        }
        if let Some(sel) = &self.label_selector {
            if !selector_matches(sel, obj.pointer("/metadata/labels")) {
                return false;
            }
        }
        if let Some(sel) = &self.namespace_selector {
            if is_namespace {
                if !selector_matches(sel, obj.pointer("/metadata/labels")) {
                    return false;
                }
            } else if has_namespace {
                // Gatekeeper needs the Namespace object; without it the selector cannot match.
                match t.namespace {
                    Some(ns) => {
                        if !selector_matches(sel, ns.pointer("/metadata/labels")) {
                            return false;
                        }
                    }
                    None => return false,
                }
            }
        }
        if !self.name.is_empty() {
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            let generate = obj.pointer("/metadata/generateName").and_then(Value::as_str).unwrap_or("");
            let generated_match = self.name.ends_with('*')
                && !generate.is_empty()
                && generate.starts_with(self.name.trim_end_matches('*'));
            if !wildcard(&self.name, name) && !generated_match {
                return false;
            }
        }
        match self.source.as_str() {
            "" | "All" => true,
            s => s == t.source,
        }
    }
}

/// Gatekeeper's namespace/name wildcards: `prefix*`, `*suffix`, or exact.
pub fn wildcard(pattern: &str, value: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        value.starts_with(prefix)
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        value.ends_with(suffix)
    } else {
        pattern == value
    }
}

/// A Kubernetes `LabelSelector` (`matchLabels` + `matchExpressions`) against a labels map.
pub fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if label(k) != v.as_str() {
                return false;
            }
        }
    }
    for expr in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
        let values = strings(expr.get("values"));
        let current = label(key);
        let ok = match expr.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => current.is_some_and(|c| values.iter().any(|v| v == c)),
            "NotIn" => current.is_none_or(|c| !values.iter().any(|v| v == c)),
            "Exists" => current.is_some(),
            "DoesNotExist" => current.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// "constraint x is of kind K8sRequiredLabel, but no ConstraintTemplate defines that kind; did you
/// mean K8sRequiredLabels?", at the constraint's `kind:` line when `text` (its file) is known.
pub fn without_template(c: &Constraint, kinds: &[&str], text: Option<&str>) -> super::PolicyError {
    let mut message =
        format!("constraint {} is of kind {}, but no ConstraintTemplate defines that kind", c.name, c.kind);
    let close = kinds
        .iter()
        .map(|k| (distance(&k.to_lowercase(), &c.kind.to_lowercase()), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min();
    if let Some((_, kind)) = close {
        message.push_str(&format!("; did you mean {kind}?"));
    }
    let file = match text.and_then(|t| kind_line(t, &c.kind, &c.name)) {
        Some((line, column)) => format!("{}:{line}:{column}", c.file),
        None => c.file.clone(),
    };
    super::PolicyError::Invalid { file, message }
}

/// Line and column of `kind: <kind>` in the YAML document of `text` whose name is `name`.
fn kind_line(text: &str, kind: &str, name: &str) -> Option<(usize, usize)> {
    let mut doc_kind: Option<(usize, usize)> = None;
    let mut named = false;
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            if let (Some(at), true) = (doc_kind, named) {
                return Some(at);
            }
            (doc_kind, named) = (None, false);
            continue;
        }
        let trimmed = line.trim_start();
        let value = |key: &str| {
            trimmed.strip_prefix(key).map(|v| v.split('#').next().unwrap_or("").trim().trim_matches(['"', '\'']))
        };
        if value("kind:") == Some(kind) && line.len() == trimmed.len() {
            doc_kind = Some((i + 1, 1));
            found.get_or_insert((i + 1, 1));
        }
        if value("name:") == Some(name) {
            named = true;
        }
    }
    match (doc_kind, named) {
        (Some(at), true) => Some(at),
        _ => found,
    }
}

/// Levenshtein distance (kinds are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns, "labels": {"app": "web"}}})
    }

    #[test]
    fn excluded_namespaces_take_wildcards() {
        let m = Match::from_json(Some(&json!({"excludedNamespaces": ["kube-*", "*-system"]})));
        let t = |o: &Value| m.matches(&Target { object: o, namespace: None, source: "Original" });
        assert!(!t(&pod("kube-public")));
        assert!(!t(&pod("gatekeeper-system")));
        assert!(t(&pod("shop")));
    }

    #[test]
    fn kinds_and_label_selectors() {
        let m = Match::from_json(Some(&json!({
            "kinds": [{"apiGroups": [""], "kinds": ["Pod"]}],
            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}
        })));
        let t = |o: &Value| m.matches(&Target { object: o, namespace: None, source: "Original" });
        assert!(t(&pod("a")));
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"labels": {"app": "web"}}});
        assert!(!t(&dep));
    }

    #[test]
    fn scoped_enforcement_uses_gator_point() {
        let c = load(
            &json!({"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"enforcementAction": "scoped", "scopedEnforcementActions": [
                {"action": "warn", "enforcementPoints": [{"name": "gator.gatekeeper.sh"}]},
                {"action": "deny", "enforcementPoints": [{"name": "validation.gatekeeper.sh"}]}]}}),
            "f",
        );
        assert_eq!(c.severity, Some(Severity::Warn));
    }
}
