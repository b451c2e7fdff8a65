//! Violation -> field. In order: the policy says where (`details.path`, `details.field`, `_loc`);
//! else search: re-evaluate the same check with fields of the object removed (booleans flipped)
//! and keep the smallest field whose removal makes exactly that violation go away; else the
//! resource's first line. The search is depth-first and bounded by an evaluation budget.

use serde_json::Value;

use crate::manifest::node::{path_to_pointer, pointer_push, pointer_tokens};
use crate::policy::{Check, Context, Hit, PolicySet, Prepared};

/// How a location was found (reported in benchmarks and debug logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Declared,
    Searched,
    Resource,
}

/// Most evaluations one violation may spend on the search.
pub const SEARCH_BUDGET: usize = 96;

#[derive(Clone, Debug)]
pub struct Located {
    /// RFC 6901 pointer relative to the evaluated object ("" = the whole object).
    pub pointer: String,
    pub method: Method,
    pub evaluations: usize,
}

/// The pointer a policy declared in its result, if any.
pub fn declared(hit: &Hit) -> Option<String> {
    let d = &hit.details;
    let candidates = [d.get("path"), d.get("field"), d.get("_loc"), d.get("details").and_then(|x| x.get("path"))];
    for c in candidates.into_iter().flatten() {
        let path = match c {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("path").or_else(|| o.get("field")).and_then(Value::as_str).map(str::to_string),
            Value::Array(parts) => Some(parts.iter().fold(String::new(), |p, t| match t {
                Value::String(s) => pointer_push(&p, s),
                other => pointer_push(&p, &other.to_string()),
            })),
            _ => None,
        };
        if let Some(p) =
            path.and_then(|p| if p.starts_with('/') || p.is_empty() { Some(p) } else { path_to_pointer(&p) })
        {
            return Some(p);
        }
    }
    None
}

/// `object` and `prepared` are the same object (as JSON to walk, and as evaluated).
pub fn locate(
    policies: &PolicySet,
    check: Check,
    object: &Value,
    prepared: &Prepared,
    hit: &Hit,
    all: &[Hit],
    ctx: &Context,
) -> Located {
    if let Some(pointer) = declared(hit) {
        return Located { pointer, method: Method::Declared, evaluations: 0 };
    }
    let mut search =
        Search { policies, check, ctx, base: prepared, target: &hit.message, baseline: all, evaluations: 0 };
    match search.descend(object, "") {
        Some(pointer) => Located { pointer, method: Method::Searched, evaluations: search.evaluations },
        None => Located { pointer: String::new(), method: Method::Resource, evaluations: search.evaluations },
    }
}

struct Search<'a> {
    policies: &'a PolicySet,
    check: Check,
    ctx: &'a Context,
    /// The object as evaluated; variants are edits of it that share everything else.
    base: &'a Prepared,
    target: &'a str,
    baseline: &'a [Hit],
    evaluations: usize,
}

impl Search<'_> {
    /// True when `variant` no longer produces the target violation and produces nothing new.
    /// The object with the field at `pointer` removed (`with` = `None`) or replaced.
    fn variant(&self, pointer: &str, with: Option<&Value>) -> Prepared {
        let tokens: Vec<String> = pointer_tokens(pointer).collect();
        self.base.edited(&tokens, with)
    }

    fn clears(&mut self, variant: &Prepared) -> bool {
        if self.evaluations >= SEARCH_BUDGET {
            return false;
        }
        self.evaluations += 1;
        match self.policies.run_prepared(self.check, variant, self.ctx) {
            Ok(hits) => {
                !hits.iter().any(|h| h.message == self.target)
                    && hits.iter().all(|h| self.baseline.iter().any(|b| b.message == h.message))
            }
            Err(_) => false,
        }
    }

    /// True when `variant` still produces the target violation (whatever else it produces).
    fn persists(&mut self, variant: &Prepared) -> bool {
        if self.evaluations >= SEARCH_BUDGET {
            return false;
        }
        self.evaluations += 1;
        match self.policies.run_prepared(self.check, variant, self.ctx) {
            Ok(hits) => hits.iter().any(|h| h.message == self.target),
            Err(_) => false,
        }
    }

    /// Searches below `pointer` in `root`; returns the deepest field whose removal clears the
    /// target, or `None` when no child does.
    fn descend(&mut self, root: &Value, pointer: &str) -> Option<String> {
        let node = root.pointer(pointer)?;
        let children: Vec<String> = match node {
            Value::Object(map) => {
                map.keys().filter(|k| !(pointer.is_empty() && (*k == "apiVersion" || *k == "kind"))).cloned().collect()
            }
            Value::Array(items) => (0..items.len()).map(|i| i.to_string()).collect(),
            _ => return None,
        };
        let (children, hinted) = prioritise(node, children, self.target);
        // The message names a child (a container's name, an image, a key): try removing it before
        // anything else. If that clears the violation, the group test below is not needed; if it
        // does not, the search goes on as if this had not happened (the group test would have
        // ruled that child out, or the loop tries it first anyway).
        let mut tried = None;
        if hinted {
            let child = &children[0];
            let child_pointer = pointer_push(pointer, child);
            let skip = child == "name" || child_pointer.starts_with("/metadata");
            if !skip && !matches!(root.pointer(&child_pointer), Some(Value::Bool(_))) {
                // Follow the hint down first: whatever it finds was confirmed by its own removal,
                // and its ancestors' removals would clear too, so they need no evaluation of
                // their own. Only when nothing below clears is the child itself tried.
                if matches!(root.pointer(&child_pointer), Some(Value::Object(_) | Value::Array(_))) {
                    if let Some(found) = self.descend(root, &child_pointer) {
                        return Some(found);
                    }
                }
                let variant = self.variant(&child_pointer, None);
                if self.clears(&variant) {
                    return Some(child_pointer);
                }
                tried = Some(child.clone());
            }
        }
        // Group test: if removing every (non-boolean, non-name) child together leaves the
        // violation in place, no single removal will clear it either (the usual case of a missing
        // field): skip straight to the boolean flips, saving an evaluation per child. (Only
        // persistence counts here: removing everything may well raise other violations.)
        let group_clears = match node {
            Value::Object(map) if !pointer.is_empty() && pointer != "/metadata" && children.len() > 1 => {
                let kept: serde_json::Map<String, Value> = map
                    .iter()
                    .filter(|(k, v)| *k == "name" || v.is_boolean())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let variant = self.variant(pointer, Some(&Value::Object(kept)));
                let removable = map.iter().filter(|(k, v)| *k != "name" && !v.is_boolean()).count();
                removable == 0 || !self.persists(&variant)
            }
            _ => true,
        };
        for child in children {
            if self.evaluations >= SEARCH_BUDGET {
                return None;
            }
            let child_pointer = pointer_push(pointer, &child);
            // Names identify objects and appear in messages: removing one makes any message
            // vanish, so it is never the cause. `metadata` is searched inside, never removed whole.
            if child == "name" || child_pointer == "/metadata/namespace" || child_pointer == "/metadata/generateName" {
                continue;
            }
            if child_pointer == "/metadata" {
                if let Some(found) = self.descend(root, &child_pointer) {
                    return Some(found);
                }
                continue;
            }
            let is_bool = matches!(root.pointer(&child_pointer), Some(Value::Bool(_)));
            if (group_clears || is_bool) && tried.as_ref() != Some(&child) {
                let variant = self.variant(&child_pointer, None);
                if self.clears(&variant) {
                    return Some(self.descend(root, &child_pointer).unwrap_or(child_pointer));
                }
            }
            if let Some(Value::Bool(b)) = root.pointer(&child_pointer) {
                let flipped = self.variant(&child_pointer, Some(&Value::Bool(!b)));
                if self.clears(&flipped) {
                    return Some(child_pointer);
                }
            }
        }
        None
    }
}

/// Tries first the children whose text the message mentions (a container's name, a value), then
/// `spec` before `metadata`, so typical searches take a handful of evaluations. The flag says
/// whether the first child is mentioned by the message.
fn prioritise(node: &Value, mut children: Vec<String>, message: &str) -> (Vec<String>, bool) {
    let score = |child: &String| -> i32 {
        let value = match node {
            Value::Object(map) => map.get(child),
            Value::Array(items) => child.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        let mut s = 0;
        if message.contains(child.as_str()) && child.len() > 2 {
            s += 2;
        }
        if let Some(v) = value {
            if mentions(v, message) {
                s += 3;
            }
        }
        match child.as_str() {
            "spec" => s += 1,
            "status" | "metadata" => s -= 2,
            _ => {}
        }
        -s
    };
    children.sort_by_key(score);
    let hinted = children.first().is_some_and(|c| score(c) <= -2);
    (children, hinted)
}

/// Whether a short string value inside `v` (a name, an image) appears in the message.
fn mentions(v: &Value, message: &str) -> bool {
    match v {
        // Short values ("c2") only as a whole word, so that "c2" is not found inside "abc2".
        Value::String(s) if s.len() >= 3 => message.contains(s.as_str()),
        Value::String(s) => s.len() == 2 && has_word(message, s),
        Value::Object(map) => ["name", "image"].iter().any(|k| map.get(*k).is_some_and(|x| mentions(x, message))),
        // A list of containers is mentioned when one of its containers is.
        Value::Array(items) => items.iter().any(|x| matches!(x, Value::Object(_)) && mentions(x, message)),
        _ => false,
    }
}

/// `word` in `text` with no letter, digit, `-` or `_` right before or after it.
fn has_word(text: &str, word: &str) -> bool {
    let inside = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(inside) && !text[i + word.len()..].chars().next().is_some_and(inside)
    })
}
