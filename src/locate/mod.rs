//! Violation -> field. In order: the policy says where (`details.path`, `details.field`, `_loc`);
//! else search: re-evaluate the same check with fields of the object removed, values reset or
//! booleans flipped, and keep the deepest field whose edit makes that violation go away (an edit
//! that also raises a consequence of itself, such as "memory limit missing" after removing the
//! memory limit, counts when no clean edit is found); then fields the policy reads that are
//! missing (inserting them makes the violation go away); then the other offenders behind the same
//! message; else the resource's first line. Every search is bounded by an evaluation budget.
//! `search` edits and judges, `missing` inserts, `offenders` finds the others behind a message,
//! `hints` orders the children and picks the values to try.

mod hints;
mod missing;
mod offenders;
mod paths;
pub mod reads;
pub mod sample;
mod search;

use serde_json::Value;

use crate::manifest::node::{path_to_pointer, pointer_push, pointer_tokens};
use crate::policy::{Check, Context, Hit, PolicySet, Prepared};

use hints::has_word;
pub use paths::missing_path;
use paths::missing_tokens;
use search::Search;

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
    let below = (0..=parts.len())
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
