//! Where CEL plugs into `PolicySet`: which bindings apply to an object (one check per parameter
//! object), running one, and the request and Constraint objects CEL code reads.

use serde_json::{json, Value};

use super::vap::{request_of, Param, Request};
use crate::findings::Severity;
use crate::manifest::{meta_str, split_api_version, Resource};
use crate::policy::{constraint, Check, Context, EvalError, Hit, PolicySet, Prepared};

impl PolicySet {
    /// The ValidatingAdmissionPolicyBindings that select `resource`, one check per parameter object,
    /// plus one for audit annotations where the policy has them.
    pub(crate) fn vap_checks(&self, resource: &Resource, ns: Option<&Value>, ctx: &Context) -> Vec<(Check, Severity)> {
        let mut out = Vec::new();
        if self.vaps.bindings.is_empty() {
            return out;
        }
        let object = &resource.object;
        let (group, version, plural, namespaced) = request_of(object, &ctx.kinds, ns);
        let namespace = if namespaced { meta_str(object, "namespace") } else { "" };
        let r = Request {
            object,
            group: &group,
            version: &version,
            resource: &plural,
            namespaced,
            namespace,
            namespace_object: ns,
        };
        let implied_action = resource.implied_by.as_ref().and_then(|i| i.enforcement_action.as_deref());
        for (bi, binding) in self.vaps.bindings.iter().enumerate() {
            if !self.vaps.matches(bi, &r) {
                continue;
            }
            let Some(policy) = self.vaps.policy_of(bi) else { continue };
            let mut severity = binding.severity;
            if let Some(action) = implied_action {
                severity = constraint::action_severity(action).unwrap_or(severity);
            }
            if policy.uses_authorizer {
                // Reported once, as a warning: guardrail cannot decide it.
                out.push((Check::Vap { binding: bi, param: Param::None, audit: false }, Severity::Warn));
                continue;
            }
            for param in self.vaps.params(bi, namespace) {
                out.push((Check::Vap { binding: bi, param, audit: false }, severity));
                if policy.has_audit_annotations() {
                    out.push((Check::Vap { binding: bi, param, audit: true }, Severity::Info));
                }
            }
        }
        out
    }

    pub(crate) fn run_vap(
        &self,
        binding: usize,
        param: Param,
        audit: bool,
        object: &Prepared,
        ctx: &Context,
    ) -> Result<Vec<Hit>, EvalError> {
        let json = object.cel.json();
        let ns_name = meta_str(&json, "namespace");
        let ns = ctx.namespaces.get(ns_name);
        let (group, version, plural, namespaced) = request_of(&json, &ctx.kinds, ns);
        let r = Request {
            object: &json,
            group: &group,
            version: &version,
            resource: &plural,
            namespaced,
            namespace: if namespaced { ns_name } else { "" },
            namespace_object: ns,
        };
        let clock = super::Clock::start(crate::policy::engine::DEFAULT_TIME_LIMIT);
        let hits = self.vaps.run(binding, param, audit, object.cel.cel(), &r, object.cel.is_variant());
        if clock.over() {
            return Err(EvalError::Timeout);
        }
        Ok(hits)
    }

    /// The Constraint as Gatekeeper's CEL code sees it in `params`.
    pub(crate) fn constraint_object(&self, constraint: usize) -> Value {
        let c = &self.constraints[constraint];
        json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": c.kind,
            "metadata": {"name": c.name},
            "spec": {"enforcementAction": c.action, "parameters": c.parameters},
        })
    }
}

/// The admission request Gatekeeper builds for an object checked outside a cluster (a CREATE).
pub fn request(object: &Value) -> Value {
    let (group, version) = split_api_version(object.get("apiVersion").and_then(Value::as_str).unwrap_or(""));
    json!({
        "kind": {"group": group, "version": version, "kind": object.get("kind").and_then(Value::as_str).unwrap_or("")},
        "name": meta_str(object, "name"),
        "namespace": meta_str(object, "namespace"),
        "operation": "CREATE",
        "object": object,
        "oldObject": null,
    })
}
