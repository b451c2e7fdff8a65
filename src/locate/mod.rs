//! Violation -> field. In order: the policy says where (`details.path`, `details.field`, `_loc`);
//! else search: re-evaluate the same check with fields of the object removed, values reset or
//! booleans flipped, and keep the deepest field whose edit makes that violation go away (an edit
//! that also raises a consequence of itself, such as "memory limit missing" after removing the
//! memory limit, counts when no clean edit is found); then fields the policy reads that are
//! missing (inserting them makes the violation go away); then the other offenders behind the same
//! message; else the resource's first line. Every search is bounded by an evaluation budget.

pub mod reads;
pub mod sample;

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
/// Most evaluations one violation may spend on the search (the missing-field and other-offender
/// steps have budgets of their own, below).
pub const SEARCH_BUDGET: usize = 128;
/// Most evaluations spent trying to insert fields the policy reads.
pub const MISSING_BUDGET: usize = 48;
/// Most evaluations spent looking for further offenders behind the same message.
pub const OFFENDERS_BUDGET: usize = 48;

#[derive(Clone, Debug)]
pub struct Located {
    /// RFC 6901 pointer relative to the evaluated object ("" = the whole object). For a missing
    /// field, its nearest existing enclosing object.
    pub pointer: String,
    pub method: Method,
    pub evaluations: usize,
    /// A field missing below `pointer` whose absence is the violation, dotted
    /// (`capabilities.drop`): inserting it made the violation go away.
    pub missing: Option<String>,
    /// Further offenders behind the same message (another container the message names, another
    /// volume of a set), each with its own missing field, if any.
    pub others: Vec<(String, Option<String>)>,
}

impl Located {
    /// The pointer of the field itself (for a missing field, where it would go).
    pub fn field_pointer(pointer: &str, missing: Option<&str>) -> String {
        missing.into_iter().flat_map(missing_tokens).fold(pointer.to_string(), |p, t| pointer_push(&p, &t))
    }
}

/// `labels.team` / `annotations["a8r.io/owner"]`: a name with a dot in it (a label key) is quoted.
pub fn missing_path(tokens: &[String]) -> String {
    let mut out = String::new();
    for t in tokens {
        if t.contains('.') || t.contains('[') {
            out.push_str(&format!("[{}]", Value::String(t.clone())));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(t);
        }
    }
    out
}

/// The names of a `missing_path`.
fn missing_tokens(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('[') {
            let mut stream = serde_json::Deserializer::from_str(quoted).into_iter::<String>();
            match stream.next() {
                Some(Ok(name)) => {
                    out.push(name);
                    rest = quoted[stream.byte_offset()..].strip_prefix(']').unwrap_or("");
                }
                _ => {
                    out.push(quoted.to_string());
                    break;
                }
            }
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end > 0 {
                out.push(rest[..end].to_string());
            }
            rest = &rest[end..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    out
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
        // A declared field the object lacks is a missing field: at its nearest existing parent.
        // A policy may also name the missing field below the path it declares.
        let mut tokens: Vec<String> = pointer_tokens(&pointer).collect();
        if let Some(more) = declared_missing(hit, &tokens, object.pointer(&pointer)) {
            tokens.extend(more.split('.').map(str::to_string));
        }
        let exists = (0..=tokens.len())
            .rev()
            .find(|&n| object.pointer(&tokens[..n].iter().fold(String::new(), |p, t| pointer_push(&p, t))).is_some())
            .unwrap_or(0);
        let pointer = tokens[..exists].iter().fold(String::new(), |p, t| pointer_push(&p, t));
        let missing = (exists < tokens.len()).then(|| missing_path(&tokens[exists..]));
        let mut located = Located { pointer, method: Method::Declared, evaluations: 0, missing, others: Vec::new() };
        // The policy declared the nearest object that exists (the container, its
        // `securityContext`) without naming what it lacks: the fields it reads, inserted, name it.
        if located.missing.is_none() && matches!(object.pointer(&located.pointer), Some(Value::Object(_))) {
            let params = parameters(policies, check);
            let mut search = Search::new(policies, check, ctx, prepared, hit, all, &params);
            search.budget = MISSING_BUDGET;
            if let Some((existing, missing)) = search.missing(object, &located.pointer, reads_of(policies, check)) {
                (located.pointer, located.missing) = (existing, Some(missing));
            }
            located.evaluations = search.evaluations;
        }
        return located;
    }
    let params = parameters(policies, check);
    let mut search = Search::new(policies, check, ctx, prepared, hit, all, &params);
    // A message about the API version itself (a deprecated or alpha version): its field.
    let api = object.get("apiVersion").and_then(Value::as_str).filter(|a| a.contains('/'));
    let mut found = search.descend(object, "");
    if found.is_none() && api.is_some_and(|a| has_word(&hit.message, a)) {
        found = Some("/apiVersion".to_string());
    }
    let method = if found.is_some() { Method::Searched } else { Method::Resource };
    let pointer = found.unwrap_or_default();
    search.budget = search.evaluations + MISSING_BUDGET;
    let (pointer, missing) = match search.missing(object, &pointer, reads_of(policies, check)) {
        Some((existing, missing)) => (existing, Some(missing)),
        None => (pointer, None),
    };
    search.budget = search.evaluations + OFFENDERS_BUDGET;
    let mut others = search.others(object, &pointer, missing.as_deref());
    let mut pointer = pointer;
    if matches!(object.pointer(&pointer), Some(Value::Array(_))) && !others.is_empty() {
        pointer = others.remove(0).0;
    }
    Located { pointer, method, evaluations: search.evaluations, missing, others }
}

/// The policy names the missing field itself (`details.missing: resources.limits.cpu`) next to a
/// path that exists (the container's `resources`): the part of it below that path.
fn declared_missing(hit: &Hit, tokens: &[String], node: Option<&Value>) -> Option<String> {
    let missing = hit.details.get("missing").and_then(Value::as_str)?;
    let parts: Vec<&str> = missing.split('.').filter(|p| !p.is_empty()).collect();
    let below = (0..parts.len())
        .rev()
        .find(|&k| k == 0 || tokens.ends_with(&parts[..k].iter().map(|p| p.to_string()).collect::<Vec<_>>()))?;
    let rest = &parts[below..];
    // Only when it really is missing below the declared object.
    let mut at = node?;
    for (i, p) in rest.iter().enumerate() {
        match at.get(*p) {
            Some(next) if i + 1 < rest.len() => at = next,
            Some(_) => return None,
            None => return Some(rest.join(".")),
        }
    }
    None
}

fn reads_of(policies: &PolicySet, check: Check) -> &[Vec<String>] {
    match check {
        Check::Constraint { template, .. } => &policies.templates[template].reads,
        Check::Rule { module, .. } => &policies.modules[module].reads,
        Check::Vap { .. } => &[],
    }
}

/// Scalars of the constraint's parameters: values a field may be reset to (an allowed value).
fn parameters(policies: &PolicySet, check: Check) -> Vec<Value> {
    fn collect(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(m) => m.values().for_each(|x| collect(x, out)),
            Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            Value::Null => {}
            other if out.len() < 16 && !out.contains(other) => out.push(other.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Check::Constraint { constraint, .. } = check {
        collect(&policies.constraints[constraint].parameters, &mut out);
    }
    out
}

/// What an edit did to the target violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Still there (or the edit could not be evaluated, or the budget is spent).
    Kept,
    /// Gone, and nothing new appeared.
    Clean,
    /// Gone, but the edit raised a violation of its own (removing a memory limit that was too
    /// high raises "no memory limit").
    Consequence,
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
    budget: usize,
    params: &'a [Value],
}

impl<'a> Search<'a> {
    fn new(
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

    fn verdict(&mut self, pointer: &str, with: Option<&Value>) -> Verdict {
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
    fn persists(&mut self, pointer: &str, with: Option<&Value>) -> bool {
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

    /// When the violation is about an object (or the whole resource) rather than one of its
    /// fields, tries inserting the fields the policy reads that the object lacks; the first
    /// insertion that makes the violation go away names the missing field.
    /// Returns the nearest existing enclosing object and the missing path below it.
    /// An insertion that also raises a violation of its own (a value of the wrong type makes the
    /// policy fail another way) counts only when no insertion clears cleanly.
    fn missing(&mut self, root: &Value, pointer: &str, reads: &[Vec<String>]) -> Option<(String, String)> {
        let Some(Value::Object(_)) = root.pointer(pointer) else { return None };
        let mut fallback = None;
        let mut candidates = missing_candidates(root, pointer, reads, self.params);
        // A path the message spells out ("in securityContext.capabilities.drop") first.
        candidates.sort_by_key(|(depth, path)| !self.target.contains(&path[*depth..].join(".")));
        for (depth, path) in &candidates {
            let (depth, path) = (*depth, path.clone());
            let existing = path[..depth].iter().fold(pointer.to_string(), |p, t| pointer_push(&p, t));
            let Some(Value::Object(map)) = root.pointer(&existing) else { continue };
            // A map the policy reads by the constraint's keys (`labels[key]`): only a map fits
            // there (a string in its place can make the policy fail quietly rather than pass).
            let keyed = candidates.iter().any(|(_, p)| {
                p.len() == path.len() + 1
                    && p.starts_with(&path)
                    && self.params.iter().any(|v| v.as_str() == p.last().map(String::as_str))
            });
            let keyed_leaf = self.params.iter().any(|v| v.as_str() == path.last().map(String::as_str));
            let leaves = if keyed {
                vec![Value::Object(Default::default())]
            } else {
                leaf_values(path.last().map(String::as_str).unwrap_or(""), self.params)
            };
            for leaf in leaves {
                if self.evaluations >= self.budget {
                    return fallback;
                }
                let built = path[depth + 1..].iter().rev().fold(leaf, |v, t| {
                    let mut m = serde_json::Map::new();
                    m.insert(t.clone(), v);
                    Value::Object(m)
                });
                let mut with = map.clone();
                with.insert(path[depth].clone(), built);
                match self.verdict(&existing, Some(&Value::Object(with))) {
                    Verdict::Clean => return Some((existing, missing_path(&path[depth..]))),
                    // One of several keys the constraint requires: inserting it changes the
                    // message ("a, b" -> "b") and names only a part of what is missing.
                    Verdict::Consequence if !keyed_leaf => {
                        fallback.get_or_insert_with(|| (existing.clone(), missing_path(&path[depth..])));
                    }
                    Verdict::Consequence => {}
                    Verdict::Kept => {}
                }
            }
        }
        fallback
    }

    /// The other offenders behind the target: (1) the message names several items of a list (two
    /// containers): each other item whose removal also clears it, located inside the same way;
    /// (2) the search stopped at a list none of whose items alone clears (identical messages for
    /// several volumes): every item that keeps the violation alive on its own.
    fn others(&mut self, root: &Value, pointer: &str, missing: Option<&str>) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        if let Some(Value::Array(items)) = root.pointer(pointer) {
            if items.len() < 2 {
                return out;
            }
            let mut alive = Vec::new();
            for i in 0..items.len() {
                let only = Value::Array(vec![items[i].clone()]);
                if self.persists(pointer, Some(&only)) {
                    alive.push(i);
                }
            }
            // Every item that alone keeps the violation is an offender (the caller puts the first
            // in the list's place), located inside on the object with that item alone in the list.
            let tokens: Vec<String> = pointer_tokens(pointer).collect();
            for i in alive {
                let item = pointer_push(pointer, &i.to_string());
                let only = Value::Array(vec![items[i].clone()]);
                let base = self.base.edited(&tokens, Some(&only));
                let mut alone = root.clone();
                if let Some(list) = alone.pointer_mut(pointer) {
                    *list = only;
                }
                let mut inner = Search { base: &base, budget: self.budget, ..*self };
                let found = inner.descend(&alone, &pointer_push(pointer, "0"));
                self.evaluations = inner.evaluations;
                let place = match found {
                    Some(p) => format!("{item}{}", &p[pointer.len() + 2..]),
                    None => item,
                };
                out.push((place, None));
            }
            return out;
        }
        // The deepest list index on the way to the field.
        let tokens: Vec<String> = pointer_tokens(pointer).collect();
        let Some(at) = (0..tokens.len()).rev().find(|&i| {
            tokens[i].parse::<usize>().is_ok()
                && matches!(
                    root.pointer(&tokens[..i].iter().fold(String::new(), |p, t| pointer_push(&p, t))),
                    Some(Value::Array(_))
                )
        }) else {
            return out;
        };
        let list = tokens[..at].iter().fold(String::new(), |p, t| pointer_push(&p, t));
        let Some(Value::Array(items)) = root.pointer(&list) else { return out };
        if items.len() < 2 || !mentions_any(items, self.target) {
            return out;
        }
        for j in 0..items.len() {
            if j.to_string() == tokens[at] || !mentions(&items[j], self.target) {
                continue;
            }
            let item = pointer_push(&list, &j.to_string());
            if self.verdict(&item, None) == Verdict::Kept {
                continue;
            }
            let same = tokens[at + 1..].iter().fold(item.clone(), |p, t| pointer_push(&p, t));
            let place = if root.pointer(&same).is_some() { same } else { self.descend(root, &item).unwrap_or(item) };
            let lacks = missing.filter(|m| root.pointer(&Located::field_pointer(&place, Some(m))).is_none());
            out.push((place, lacks.map(str::to_string)));
        }
        out
    }
}

/// Paths the policy reads that `pointer`'s object lacks, each with how many of its leading
/// names exist: deepest existing part first, so `securityContext.capabilities.drop` is tried
/// under an existing `securityContext` before `capabilities.drop` at the container itself.
fn missing_candidates(
    root: &Value,
    pointer: &str,
    reads: &[Vec<String>],
    params: &[Value],
) -> Vec<(usize, Vec<String>)> {
    let Some(node) = root.pointer(pointer) else { return Vec::new() };
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    // A map the policy reads by a key from its parameters (`labels[key]`): the parameters' strings
    // are the keys it may lack.
    let keys: Vec<&str> = params
        .iter()
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() < 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c)))
        .collect();
    // The map may be missing too (a Namespace without `labels`), and the policy may read it
    // through a variable (`variables.anyObject.metadata.labels`): every tail of the chain whose
    // parent is an object here.
    let mut chains: Vec<Vec<String>> = reads.to_vec();
    for chain in reads {
        for start in 0..chain.len() {
            let tail = &chain[start..];
            let parent = tail[..tail.len() - 1].iter().try_fold(node, |at, t| at.get(t));
            let lacks: Vec<&&str> = match (parent, parent.and_then(|p| p.get(&tail[tail.len() - 1]))) {
                (Some(_), Some(Value::Object(map))) => keys.iter().filter(|k| !map.contains_key(**k)).collect(),
                (Some(Value::Object(_)), None) => keys.iter().collect(),
                _ => continue,
            };
            for key in lacks.into_iter().take(4) {
                let longer: Vec<String> = tail.iter().cloned().chain(std::iter::once(key.to_string())).collect();
                if !chains.contains(&longer) {
                    chains.push(longer);
                }
            }
        }
    }
    for chain in &chains {
        for start in 0..chain.len() {
            let path = &chain[start..];
            let mut at = node;
            let mut depth = 0;
            while depth < path.len() {
                match at.get(&path[depth]) {
                    Some(next) => {
                        at = next;
                        depth += 1;
                    }
                    None => break,
                }
            }
            let fits = depth < path.len() && matches!(at, Value::Object(_));
            if fits && !out.iter().any(|(_, p)| p == path) {
                out.push((depth, path.to_vec()));
            }
        }
    }
    // Deepest existing part first, then the shortest missing part, then the policy's order.
    out.sort_by_key(|(depth, path)| (std::cmp::Reverse(*depth), path.len() - depth));
    out
}

/// Values to try for a missing field, by its name; then strings the constraint's regular
/// expressions accept (a required label whose value must match one).
fn leaf_values(name: &str, params: &[Value]) -> Vec<Value> {
    use serde_json::json;
    match name {
        "drop" => vec![json!(["ALL"])],
        "add" => vec![json!([])],
        "cpu" => vec![json!("100m")],
        "memory" | "ephemeral-storage" => vec![json!("64Mi")],
        "limits" | "requests" => vec![json!({"cpu": "100m", "memory": "64Mi"})],
        _ => {
            let mut out = vec![json!(true), json!(false), json!("guardrail"), json!({}), json!(1)];
            out.extend(samples(params));
            out
        }
    }
}

/// A matching string for each of the parameters that is a regular expression.
fn samples(params: &[Value]) -> Vec<Value> {
    params.iter().filter_map(Value::as_str).filter_map(sample::matching).map(Value::String).take(3).collect()
}

/// Other values of the same type for a scalar: for strings and quantities, values that change
/// the message; the constraint's own parameter values (an allowed value) first.
fn resets(value: &Value, params: &[Value]) -> Vec<Value> {
    use serde_json::json;
    let mut out: Vec<Value> = if value.is_string() { samples(params) } else { Vec::new() };
    out.extend(
        params
            .iter()
            .filter(|p| std::mem::discriminant(*p) == std::mem::discriminant(value) && *p != value)
            .take(3)
            .cloned(),
    );
    match value {
        Value::Number(_) => out.extend([json!(1), json!(0)]),
        Value::String(_) => out.extend([json!("1"), json!("guardrail")]),
        _ => {}
    }
    out.retain(|v| v != value);
    out.truncate(5);
    out
}

/// The two messages differ only in their digits.
fn same_but_numbers(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.chars().filter(|c| !c.is_ascii_digit()).collect::<String>();
    a != b && strip(a) == strip(b)
}

/// An object that names another object the message quotes: a `name` with a `kind` or an
/// `apiVersion` beside it.
fn is_reference(node: &Value, message: &str) -> bool {
    node.get("name").is_some_and(|n| mentions(n, message))
        && (node.get("kind").is_some() || node.get("apiVersion").is_some())
}

/// A list or map of at most eight scalars (`values: [a, b]`, `drop: [NET_RAW]`, `labels`): cheap to
/// search item by item when no removal of the whole clears.
fn is_small_scalar_collection(v: &Value) -> bool {
    let scalar = |i: &Value| !i.is_object() && !i.is_array();
    match v {
        Value::Array(items) => !items.is_empty() && items.len() <= 8 && items.iter().all(scalar),
        Value::Object(map) => !map.is_empty() && map.len() <= 8 && map.values().all(scalar),
        _ => false,
    }
}

fn has_boolean(v: &Value, depth: usize) -> bool {
    match v {
        Value::Bool(_) => true,
        Value::Object(m) if depth > 0 => m.values().any(|x| has_boolean(x, depth - 1)),
        Value::Array(a) if depth > 0 => a.iter().any(|x| has_boolean(x, depth - 1)),
        _ => false,
    }
}

fn mentions_any(items: &[Value], message: &str) -> bool {
    items.iter().filter(|i| mentions(i, message)).count() > 1
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_paths_quote_names_with_dots() {
        let tokens: Vec<String> = ["labels", "app.kubernetes.io/owner", "x"].map(String::from).to_vec();
        let path = missing_path(&tokens);
        assert_eq!(path, r#"labels["app.kubernetes.io/owner"].x"#);
        assert_eq!(missing_tokens(&path), tokens);
        assert_eq!(missing_tokens("capabilities.drop"), ["capabilities", "drop"]);
        assert_eq!(Located::field_pointer("/metadata", Some(&path)), "/metadata/labels/app.kubernetes.io~1owner/x");
    }
}
