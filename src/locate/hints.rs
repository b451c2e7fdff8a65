//! What the message and the values suggest to the search: which child to try first (the one the
//! message names), which other values a field may take, when two messages are the same finding.

use serde_json::Value;

use super::sample;

/// A matching string for each of the parameters that is a regular expression.
pub(super) fn samples(params: &[Value]) -> Vec<Value> {
    params.iter().filter_map(Value::as_str).filter_map(sample::matching).map(Value::String).take(3).collect()
}

/// Other values of the same type for a scalar: for strings and quantities, values that change
/// the message; the constraint's own parameter values (an allowed value) first.
pub(super) fn resets(value: &Value, params: &[Value]) -> Vec<Value> {
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
pub(super) fn same_but_numbers(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.chars().filter(|c| !c.is_ascii_digit()).collect::<String>();
    a != b && strip(a) == strip(b)
}

/// An object that names another object the message quotes: a `name` with a `kind` or an
/// `apiVersion` beside it.
pub(super) fn is_reference(node: &Value, message: &str) -> bool {
    node.get("name").is_some_and(|n| mentions(n, message))
        && (node.get("kind").is_some() || node.get("apiVersion").is_some())
}

/// A list or map of at most eight scalars (`values: [a, b]`, `drop: [NET_RAW]`, `labels`): cheap to
/// search item by item when no removal of the whole clears.
pub(super) fn is_small_scalar_collection(v: &Value) -> bool {
    let scalar = |i: &Value| !i.is_object() && !i.is_array();
    match v {
        Value::Array(items) => !items.is_empty() && items.len() <= 8 && items.iter().all(scalar),
        Value::Object(map) => !map.is_empty() && map.len() <= 8 && map.values().all(scalar),
        _ => false,
    }
}

pub(super) fn has_boolean(v: &Value, depth: usize) -> bool {
    match v {
        Value::Bool(_) => true,
        Value::Object(m) if depth > 0 => m.values().any(|x| has_boolean(x, depth - 1)),
        Value::Array(a) if depth > 0 => a.iter().any(|x| has_boolean(x, depth - 1)),
        _ => false,
    }
}

pub(super) fn mentions_any(items: &[Value], message: &str) -> bool {
    items.iter().filter(|i| mentions(i, message)).count() > 1
}

/// Tries first the children whose text the message mentions (a container's name, a value), then
/// `spec` before `metadata`, so typical searches take a handful of evaluations. The flag says
/// whether the first child is mentioned by the message.
pub(super) fn prioritise(node: &Value, mut children: Vec<String>, message: &str) -> (Vec<String>, bool) {
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
pub(super) fn mentions(v: &Value, message: &str) -> bool {
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
pub(super) fn has_word(text: &str, word: &str) -> bool {
    let inside = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(inside) && !text[i + word.len()..].chars().next().is_some_and(inside)
    })
}
