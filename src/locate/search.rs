//! The search: edits of the object (a field removed, a value reset, a boolean flipped), each
//! re-evaluated with the same check, judged by what happened to the target violation.

use serde_json::Value;

use super::hints::{
    has_boolean, is_reference, is_small_scalar_collection, prioritise, resets, same_but_numbers, samples,
};
use super::SEARCH_BUDGET;
use crate::manifest::node::{pointer_push, pointer_tokens};
use crate::policy::{Check, Context, Hit, PolicySet, Prepared};

/// What an edit did to the target violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Still there (or the edit could not be evaluated, or the budget is spent).
    Kept,
    /// Gone, and nothing new appeared.
    Clean,
    /// Gone, but the edit raised a violation of its own (removing a memory limit that was too
    /// high raises "no memory limit").
    Consequence,
}

pub(super) struct Search<'a> {
    pub(super) policies: &'a PolicySet,
    pub(super) check: Check,
    pub(super) ctx: &'a Context,
    /// The object as evaluated; variants are edits of it that share everything else.
    pub(super) base: &'a Prepared,
    pub(super) target: &'a str,
    pub(super) baseline: &'a [Hit],
    pub(super) evaluations: usize,
    pub(super) budget: usize,
    pub(super) params: &'a [Value],
}

impl<'a> Search<'a> {
    pub(super) fn new(
        policies: &'a PolicySet,
        check: Check,
        ctx: &'a Context,
        base: &'a Prepared,
        hit: &'a Hit,
        baseline: &'a [Hit],
        params: &'a [Value],
    ) -> Self {
        Search {
            policies,
            check,
            ctx,
            base,
            target: &hit.message,
            baseline,
            evaluations: 0,
            budget: SEARCH_BUDGET,
            params,
        }
    }

    /// The object with the field at `pointer` removed (`with` = `None`) or replaced.
    fn variant(&self, pointer: &str, with: Option<&Value>) -> Prepared {
        let tokens: Vec<String> = pointer_tokens(pointer).collect();
        self.base.edited(&tokens, with)
    }

    pub(super) fn verdict(&mut self, pointer: &str, with: Option<&Value>) -> Verdict {
        if self.evaluations >= self.budget {
            return Verdict::Kept;
        }
        self.evaluations += 1;
        let variant = self.variant(pointer, with);
        match self.policies.run_prepared(self.check, &variant, self.ctx) {
            Ok(hits) if !hits.iter().any(|h| h.message == self.target) => {
                let new: Vec<&Hit> =
                    hits.iter().filter(|h| !self.baseline.iter().any(|b| b.message == h.message)).collect();
                if new.is_empty() {
                    Verdict::Clean
                } else if new.iter().any(|h| same_but_numbers(&h.message, self.target)) {
                    // "containers: 2" became "containers: 1": the same finding, counted again.
                    Verdict::Kept
                } else {
                    Verdict::Consequence
                }
            }
            _ => Verdict::Kept,
        }
    }

    /// True when the variant still produces the target violation (whatever else it produces).
    pub(super) fn persists(&mut self, pointer: &str, with: Option<&Value>) -> bool {
        if self.evaluations >= self.budget {
            return false;
        }
        self.evaluations += 1;
        let variant = self.variant(pointer, with);
        match self.policies.run_prepared(self.check, &variant, self.ctx) {
            Ok(hits) => hits.iter().any(|h| h.message == self.target),
            Err(_) => false,
        }
    }

    /// Searches below `pointer` in `root`; returns the deepest field whose edit clears the
    /// target (cleanly if any does, else with a consequence), or `None` when no child does.
    pub(super) fn descend(&mut self, root: &Value, pointer: &str) -> Option<String> {
        let node = root.pointer(pointer)?;
        let children: Vec<String> = match node {
            Value::Object(map) => {
                map.keys().filter(|k| !(pointer.is_empty() && (*k == "apiVersion" || *k == "kind"))).cloned().collect()
            }
            Value::Array(items) => (0..items.len()).map(|i| i.to_string()).collect(),
            _ => return None,
        };
        let (children, hinted) = prioritise(node, children, self.target);
        let mut fallback = None;
        // The message names a child (a container's name, an image, a key): try it before
        // anything else. If it does not clear, the search goes on as if this had not happened.
        let mut tried = None;
        if hinted {
            let child = &children[0];
            let child_pointer = pointer_push(pointer, child);
            let reference = (child == "kind" || child == "apiVersion") && is_reference(node, self.target);
            if child != "name" && !child_pointer.starts_with("/metadata") && !reference {
                if let Some(found) = self.try_child(root, &child_pointer, true, true, &mut fallback) {
                    return Some(found);
                }
                tried = Some(child.clone());
            }
        }
        // Group test: if removing every (non-boolean, non-name) child together leaves the
        // violation in place, no single removal will clear it either (the usual case of a missing
        // field): skip straight to the boolean flips, saving an evaluation per child. (Only
        // persistence counts here: removing everything may well raise other violations.)
        let removals = match node {
            Value::Object(map) if !pointer.is_empty() && pointer != "/metadata" && children.len() > 1 => {
                let kept: serde_json::Map<String, Value> = map
                    .iter()
                    .filter(|(k, v)| *k == "name" || v.is_boolean())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let removable = map.iter().filter(|(k, v)| *k != "name" && !v.is_boolean()).count();
                removable == 0 || !self.persists(pointer, Some(&Value::Object(kept)))
            }
            _ => true,
        };
        for child in children {
            if self.evaluations >= self.budget {
                break;
            }
            let child_pointer = pointer_push(pointer, &child);
            // Names identify objects and appear in messages: removing one makes any message
            // vanish, so it is never the cause. `metadata` is searched inside, never removed whole.
            if child == "name" || child_pointer == "/metadata/namespace" || child_pointer == "/metadata/generateName" {
                continue;
            }
            // An object reference (`scaleTargetRef`, `roleRef`, an owner reference): its kind and
            // apiVersion name the other object, as its name does, and messages quote them.
            if !pointer.is_empty() && (child == "kind" || child == "apiVersion") && is_reference(node, self.target) {
                continue;
            }
            if child_pointer == "/metadata" {
                if let Some(found) = self.descend(root, &child_pointer) {
                    return Some(found);
                }
                continue;
            }
            if tried.as_ref() == Some(&child) {
                continue;
            }
            if let Some(found) = self.try_child(root, &child_pointer, removals, false, &mut fallback) {
                return Some(found);
            }
        }
        fallback
    }

    /// Edits one child: removal (then the search goes on inside it), value resets for a scalar
    /// whose removal raised a consequence, a flip for a boolean. A clean result is returned; an
    /// edit with a consequence is kept in `fallback` for when no sibling clears cleanly.
    /// `hinted`: the message names this child (its key or its value).
    fn try_child(
        &mut self,
        root: &Value,
        child_pointer: &str,
        removals: bool,
        hinted: bool,
        fallback: &mut Option<String>,
    ) -> Option<String> {
        let value = root.pointer(child_pointer)?;
        let container = matches!(value, Value::Object(_) | Value::Array(_));
        if !removals && container {
            // No removal clears here, but a boolean below may be the field whose value is wrong
            // (an explicit `allowPrivilegeEscalation: true` where absence is wrong too), or one
            // item of a short list of values may be the wrong one (`values: [a, b]` where `b` is
            // not allowed and no values at all is not allowed either).
            return if has_boolean(value, 4) || is_small_scalar_collection(value) {
                self.descend(root, child_pointer)
            } else {
                None
            };
        }
        let removed = if removals || value.is_boolean() { self.verdict(child_pointer, None) } else { Verdict::Kept };
        match removed {
            Verdict::Clean if container => {
                return Some(self.descend(root, child_pointer).unwrap_or_else(|| child_pointer.to_string()))
            }
            Verdict::Clean => return Some(child_pointer.to_string()),
            Verdict::Consequence if container => {
                if let Some(found) = self.descend(root, child_pointer) {
                    return Some(found);
                }
            }
            Verdict::Consequence => {
                for other in resets(value, self.params) {
                    if self.verdict(child_pointer, Some(&other)) == Verdict::Clean {
                        return Some(child_pointer.to_string());
                    }
                }
            }
            Verdict::Kept => match value {
                Value::Bool(b) => match self.verdict(child_pointer, Some(&Value::Bool(!b))) {
                    Verdict::Clean => return Some(child_pointer.to_string()),
                    Verdict::Consequence => {}
                    Verdict::Kept => return None,
                },
                // Absence is as wrong as this value (`object.get(spec, "maxUnavailable", 1)` reads
                // a missing `spec` as wrong too): an empty object or list of the same shape tells
                // whether the wrong value is inside.
                Value::Object(_) | Value::Array(_) => {
                    let empty =
                        if value.is_object() { Value::Object(Default::default()) } else { Value::Array(vec![]) };
                    let emptied = self.verdict(child_pointer, Some(&empty));
                    if emptied != Verdict::Kept || is_small_scalar_collection(value) {
                        if let Some(found) = self.descend(root, child_pointer) {
                            return Some(found);
                        }
                    }
                    match emptied {
                        Verdict::Clean => return Some(child_pointer.to_string()),
                        Verdict::Consequence => {}
                        Verdict::Kept => return None,
                    }
                }
                // A value whose absence is as wrong as the value itself (`replicas: 100` where the
                // rule also fails without replicas, `memory: ""`): another value of its type. The
                // constraint's own values for numbers; for a field the message names, any.
                _ => {
                    let resets = match value {
                        _ if hinted => resets(value, self.params),
                        Value::Number(_) => {
                            resets(value, self.params).into_iter().filter(|r| self.params.contains(r)).collect()
                        }
                        // A label value a pattern of the constraint rejects: a value it accepts.
                        Value::String(_) => samples(self.params),
                        _ => Vec::new(),
                    };
                    for other in resets {
                        match self.verdict(child_pointer, Some(&other)) {
                            Verdict::Clean => return Some(child_pointer.to_string()),
                            Verdict::Consequence => {
                                fallback.get_or_insert_with(|| child_pointer.to_string());
                            }
                            Verdict::Kept => {}
                        }
                    }
                    return None;
                }
            },
        }
        fallback.get_or_insert_with(|| child_pointer.to_string());
        None
    }
}
