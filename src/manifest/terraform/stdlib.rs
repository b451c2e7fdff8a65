//! Terraform's pure collection, string and number functions, as Terraform defines them. Each
//! returns `Err(why)` when it cannot compute the value from known arguments (the caller turns that
//! into a warning naming the call), and every result that allocates is checked against the bounds
//! before it is built.

use super::budget::{MAX_COLLECTION, MAX_STRING};
use super::eval::{contains_unknown, scalar_text};
use crate::manifest::node::{Node, NodeKind, Span};

/// Terraform's own limit on `range()` (the 1025th number is an error).
pub const RANGE_LIMIT: usize = 1024;

pub type Out = Result<NodeKind, Failure>;

/// Why a function gave no value.
#[derive(Debug)]
pub enum Failure {
    /// Terraform itself would stop with this error (a deny finding).
    Error(String),
    /// guardrail does not compute this (a warning naming the call).
    Unsupported(&'static str),
    /// Over one of guardrail's bounds.
    Over(super::budget::Bound),
}

fn unsupported<T>(why: &'static str) -> Result<T, Failure> {
    Err(Failure::Unsupported(why))
}

fn num(node: &Node) -> Option<f64> {
    match &node.kind {
        NodeKind::Int(i) => Some(*i as f64),
        NodeKind::UInt(u) => Some(*u as f64),
        NodeKind::Float(f) => Some(*f),
        NodeKind::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn num_kind(f: f64) -> NodeKind {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        NodeKind::Int(f as i64)
    } else {
        NodeKind::Float(f)
    }
}

fn list(node: &Node) -> Option<&[Node]> {
    match &node.kind {
        NodeKind::Seq(items) => Some(items),
        _ => None,
    }
}

fn text(node: &Node) -> Option<String> {
    match &node.kind {
        NodeKind::Seq(_) | NodeKind::Map(_) | NodeKind::Null => None,
        _ => scalar_text(node),
    }
}

fn same(a: &Node, b: &Node) -> bool {
    a.to_json() == b.to_json()
        || matches!((num(a), num(b)), (Some(x), Some(y)) if x == y && !matches!(a.kind, NodeKind::Str(_)) && !matches!(b.kind, NodeKind::Str(_)))
}

fn string(s: String) -> Out {
    if s.len() > MAX_STRING {
        return Err(Failure::Over(super::budget::Bound::String));
    }
    Ok(NodeKind::Str(s))
}

fn seq(items: Vec<Node>) -> Out {
    if items.len() > MAX_COLLECTION {
        return Err(Failure::Over(super::budget::Bound::Collection));
    }
    Ok(NodeKind::Seq(items))
}

/// `flatten`: lists inside lists, to any depth, into one list.
fn flatten_into(items: &[Node], out: &mut Vec<Node>) -> Result<(), Failure> {
    for item in items {
        match &item.kind {
            NodeKind::Seq(inner) => flatten_into(inner, out)?,
            _ => {
                if out.len() >= MAX_COLLECTION {
                    return Err(Failure::Over(super::budget::Bound::Collection));
                }
                out.push(item.clone())
            }
        }
    }
    Ok(())
}

/// `range(limit)`, `range(start, limit)`, `range(start, limit, step)`.
fn range(args: &[f64], span: Span) -> Out {
    let (start, limit, step) = match args {
        [limit] => (0.0, *limit, if *limit >= 0.0 { 1.0 } else { -1.0 }),
        [start, limit] => (*start, *limit, if limit >= start { 1.0 } else { -1.0 }),
        [start, limit, step] => (*start, *limit, *step),
        _ => return Err(Failure::Error("range() takes one to three numbers".into())),
    };
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !limit.is_finite() {
        return Err(Failure::Error("range() step must not be zero".into()));
    }
    if (step > 0.0 && limit < start) || (step < 0.0 && limit > start) {
        return Err(Failure::Error("range() step points away from the limit".into()));
    }
    let count = ((limit - start) / step).ceil().max(0.0);
    if count > RANGE_LIMIT as f64 {
        return Err(Failure::Error(format!(
            "range() would generate more than {RANGE_LIMIT} numbers, which Terraform refuses"
        )));
    }
    Ok(NodeKind::Seq((0..count as usize).map(|i| Node::new(span, num_kind(start + step * i as f64))).collect()))
}

/// Functions over known values. `args` are evaluated; `Err` says why there is no value.
pub fn apply(fname: &str, args: &[Node], span: Span) -> Out {
    let arg = |i: usize| args.get(i).ok_or(Failure::Error(format!("{fname}() needs more arguments")));
    let s = |i: usize| arg(i).and_then(|n| text(n).ok_or(Failure::Error(format!("{fname}() wants a string"))));
    let n = |i: usize| arg(i).and_then(|a| num(a).ok_or(Failure::Error(format!("{fname}() wants a number"))));
    let l = |i: usize| arg(i).and_then(|a| list(a).ok_or(Failure::Error(format!("{fname}() wants a list"))));
    let node = |kind: NodeKind| Node::new(span, kind);
    Ok(match fname {
        "range" => {
            let numbers: Vec<f64> = (0..args.len()).map(n).collect::<Result<_, _>>()?;
            return range(&numbers, span);
        }
        "flatten" => {
            let mut out = Vec::new();
            flatten_into(l(0)?, &mut out)?;
            NodeKind::Seq(out)
        }
        "concat" => {
            let mut out = Vec::new();
            for i in 0..args.len() {
                out.extend(l(i)?.iter().cloned());
                if out.len() > MAX_COLLECTION {
                    return Err(Failure::Over(super::budget::Bound::Collection));
                }
            }
            NodeKind::Seq(out)
        }
        "length" => match &arg(0)?.kind {
            NodeKind::Seq(x) => NodeKind::Int(x.len() as i64),
            NodeKind::Map(x) => NodeKind::Int(x.len() as i64),
            NodeKind::Str(x) => NodeKind::Int(x.chars().count() as i64),
            _ => return Err(Failure::Error("length() wants a string, list or map".into())),
        },
        "element" => {
            let items = l(0)?;
            if items.is_empty() {
                return Err(Failure::Error("element() of an empty list".into()));
            }
            let i = n(1)?;
            if i < 0.0 {
                return Err(Failure::Error("element() index must not be negative".into()));
            }
            items[(i as usize) % items.len()].kind.clone()
        }
        "index" => {
            let v = arg(1)?;
            match l(0)?.iter().position(|x| same(x, v)) {
                Some(i) => NodeKind::Int(i as i64),
                None => return Err(Failure::Error("index(): the value is not in the list".into())),
            }
        }
        "contains" => {
            let v = arg(1)?;
            NodeKind::Bool(l(0)?.iter().any(|x| same(x, v)))
        }
        "keys" | "values" => {
            let NodeKind::Map(entries) = &arg(0)?.kind else {
                return Err(Failure::Error(format!("{fname}() wants a map")));
            };
            let mut sorted: Vec<&(String, Node)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            NodeKind::Seq(
                sorted
                    .into_iter()
                    .map(|(k, v)| if fname == "keys" { node(NodeKind::Str(k.clone())) } else { v.clone() })
                    .collect(),
            )
        }
        "distinct" => {
            let mut out: Vec<Node> = Vec::new();
            for x in l(0)? {
                if !out.iter().any(|o| same(o, x)) {
                    out.push(x.clone());
                }
            }
            NodeKind::Seq(out)
        }
        "reverse" => NodeKind::Seq(l(0)?.iter().rev().cloned().collect()),
        "slice" => {
            let items = l(0)?;
            let (a, b) = (n(1)?, n(2)?);
            if a < 0.0 || b < a || b as usize > items.len() {
                return Err(Failure::Error("slice() indexes are out of range".into()));
            }
            NodeKind::Seq(items[a as usize..b as usize].to_vec())
        }
        "compact" => NodeKind::Seq(
            l(0)?
                .iter()
                .filter(|x| !matches!(&x.kind, NodeKind::Null) && !matches!(&x.kind, NodeKind::Str(s) if s.is_empty()))
                .cloned()
                .collect(),
        ),
        "zipmap" => {
            let (ks, vs) = (l(0)?, l(1)?);
            if ks.len() != vs.len() {
                return Err(Failure::Error("zipmap() lists differ in length".into()));
            }
            let mut entries: Vec<(String, Node)> = Vec::new();
            for (k, v) in ks.iter().zip(vs) {
                let k = text(k).ok_or(Failure::Error("zipmap() keys must be strings".into()))?;
                entries.retain(|(e, _)| e != &k);
                entries.push((k, v.clone()));
            }
            NodeKind::Map(entries)
        }
        "coalescelist" => match args.iter().find(|a| list(a).is_some_and(|x| !x.is_empty())) {
            Some(a) => a.kind.clone(),
            None => return Err(Failure::Error("coalescelist(): no non-empty list".into())),
        },
        "one" => match l(0)? {
            [] => NodeKind::Null,
            [x] => x.kind.clone(),
            _ => return Err(Failure::Error("one() of a list with more than one element".into())),
        },
        "sum" => {
            let items = l(0)?;
            let mut total = 0.0;
            for x in items {
                total += num(x).ok_or(Failure::Error("sum() wants numbers".into()))?;
            }
            num_kind(total)
        }
        "alltrue" | "anytrue" => {
            let mut bools = Vec::new();
            for x in l(0)? {
                bools.push(match &x.kind {
                    NodeKind::Bool(b) => *b,
                    NodeKind::Str(s) if s == "true" || s == "false" => s == "true",
                    _ => return Err(Failure::Error(format!("{fname}() wants bools"))),
                });
            }
            NodeKind::Bool(if fname == "alltrue" { bools.iter().all(|b| *b) } else { bools.iter().any(|b| *b) })
        }
        "min" | "max" => {
            let numbers: Vec<f64> = (0..args.len()).map(n).collect::<Result<_, _>>()?;
            let pick = if fname == "min" { f64::min } else { f64::max };
            let first = *numbers.first().ok_or(Failure::Error(format!("{fname}() needs a number")))?;
            num_kind(numbers.into_iter().fold(first, pick))
        }
        "abs" => num_kind(n(0)?.abs()),
        "ceil" => num_kind(n(0)?.ceil()),
        "floor" => num_kind(n(0)?.floor()),
        "signum" => num_kind(n(0)?.signum() * if n(0)? == 0.0 { 0.0 } else { 1.0 }),
        "pow" => num_kind(n(0)?.powf(n(1)?)),
        "parseint" => {
            let base = n(1)? as u32;
            if !(2..=62).contains(&base) {
                return Err(Failure::Error("parseint() base must be 2 to 62".into()));
            }
            if base > 36 {
                return unsupported("bases above 36 are not computed");
            }
            match i64::from_str_radix(s(0)?.trim(), base) {
                Ok(v) => NodeKind::Int(v),
                Err(_) => return Err(Failure::Error("parseint(): not a number in that base".into())),
            }
        }
        "tostring" => match &arg(0)?.kind {
            NodeKind::Null => NodeKind::Null,
            NodeKind::Seq(_) | NodeKind::Map(_) => {
                return Err(Failure::Error("tostring() of a collection".into()));
            }
            other => NodeKind::Str(text(&node(other.clone())).unwrap_or_default()),
        },
        "tonumber" => match &arg(0)?.kind {
            NodeKind::Null => NodeKind::Null,
            _ => num_kind(n(0)?),
        },
        "tobool" => match &arg(0)?.kind {
            NodeKind::Null => NodeKind::Null,
            NodeKind::Bool(b) => NodeKind::Bool(*b),
            NodeKind::Str(x) if x == "true" || x == "false" => NodeKind::Bool(x == "true"),
            _ => return Err(Failure::Error("tobool() of a value that is not a bool".into())),
        },
        "toset" => return apply("distinct", args, span),
        "tolist" | "tomap" | "sensitive" | "nonsensitive" => arg(0)?.kind.clone(),
        "lower" => NodeKind::Str(s(0)?.to_lowercase()),
        "upper" => NodeKind::Str(s(0)?.to_uppercase()),
        "trimspace" => NodeKind::Str(s(0)?.trim().to_string()),
        "chomp" => NodeKind::Str(s(0)?.trim_end_matches(['\n', '\r']).to_string()),
        "strrev" => NodeKind::Str(s(0)?.chars().rev().collect()),
        "title" => {
            let mut out = String::new();
            let mut start = true;
            for c in s(0)?.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            NodeKind::Str(out)
        }
        "basename" => NodeKind::Str(s(0)?.rsplit('/').next().unwrap_or("").to_string()),
        "dirname" => NodeKind::Str(s(0)?.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_else(|| ".".into())),
        "base64encode" => {
            use base64::Engine;
            return string(base64::engine::general_purpose::STANDARD.encode(s(0)?.as_bytes()));
        }
        "base64decode" => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s(0)?.trim())
                .map_err(|_| Failure::Error("base64decode(): not base64".into()))?;
            NodeKind::Str(
                String::from_utf8(bytes)
                    .map_err(|_| Failure::Error("base64decode(): the result is not UTF-8".into()))?,
            )
        }
        "startswith" => NodeKind::Bool(s(0)?.starts_with(&s(1)?)),
        "endswith" => NodeKind::Bool(s(0)?.ends_with(&s(1)?)),
        "strcontains" => NodeKind::Bool(s(0)?.contains(&s(1)?)),
        "trimprefix" => {
            let (a, b) = (s(0)?, s(1)?);
            NodeKind::Str(a.strip_prefix(b.as_str()).unwrap_or(&a).to_string())
        }
        "trimsuffix" => {
            let (a, b) = (s(0)?, s(1)?);
            NodeKind::Str(a.strip_suffix(b.as_str()).unwrap_or(&a).to_string())
        }
        "trim" => {
            let (a, cut) = (s(0)?, s(1)?);
            NodeKind::Str(a.trim_matches(|c| cut.contains(c)).to_string())
        }
        "substr" => {
            let (x, offset, length) = (s(0)?, n(1)?, n(2)?);
            let chars: Vec<char> = x.chars().collect();
            let start = if offset < 0.0 { (chars.len() as f64 + offset).max(0.0) } else { offset } as usize;
            let start = start.min(chars.len());
            let end = if length < 0.0 { chars.len() } else { (start + length as usize).min(chars.len()) };
            NodeKind::Str(chars[start..end].iter().collect())
        }
        "split" => {
            let (sep, x) = (s(0)?, s(1)?);
            if x.is_empty() {
                NodeKind::Seq(Vec::new())
            } else if sep.is_empty() {
                return unsupported("split() with an empty separator is not computed");
            } else {
                return seq(x.split(sep.as_str()).map(|p| node(NodeKind::Str(p.to_string()))).collect());
            }
        }
        "join" => {
            let sep = s(0)?;
            let mut parts = Vec::new();
            let mut total = 0usize;
            for i in 1..args.len() {
                for x in l(i)? {
                    let part = text(x).ok_or(Failure::Error("join() wants strings".into()))?;
                    total += part.len() + sep.len();
                    if total > MAX_STRING {
                        return Err(Failure::Over(super::budget::Bound::String));
                    }
                    parts.push(part);
                }
            }
            NodeKind::Str(parts.join(&sep))
        }
        "replace" => {
            let (x, from, to) = (s(0)?, s(1)?, s(2)?);
            if from.len() > 1 && from.starts_with('/') && from.ends_with('/') {
                return unsupported("regular-expression replace() is not computed");
            }
            let hits = if from.is_empty() { x.chars().count() + 1 } else { x.matches(from.as_str()).count() };
            if x.len() + hits.saturating_mul(to.len()) > MAX_STRING {
                return Err(Failure::Over(super::budget::Bound::String));
            }
            NodeKind::Str(x.replace(from.as_str(), &to))
        }
        "indent" => {
            let (width, x) = (n(0)?, s(1)?);
            let pad = " ".repeat((width.max(0.0) as usize).min(MAX_STRING));
            let lines = x.matches('\n').count();
            if x.len() + lines.saturating_mul(pad.len()) > MAX_STRING {
                return Err(Failure::Over(super::budget::Bound::String));
            }
            NodeKind::Str(x.replace('\n', &format!("\n{pad}")))
        }
        "format" => return format(args).map(NodeKind::Str),
        _ => return unsupported("guardrail does not compute this function"),
    })
}

/// `format`: `%s`, `%d`, `%v`, `%%` (and `%q`); a width or precision is not computed.
fn format(args: &[Node]) -> Result<String, Failure> {
    let spec = args.first().and_then(text).ok_or(Failure::Error("format() wants a format string".into()))?;
    let mut rest = args[1..].iter();
    let mut out = String::new();
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb @ ('s' | 'd' | 'v' | 'q')) => {
                let v = rest.next().ok_or(Failure::Error("format(): too few arguments".into()))?;
                let t = text(v).ok_or(Failure::Unsupported("format() of a collection is not computed"))?;
                if verb == 'q' {
                    out.push_str(&serde_json::to_string(&t).unwrap_or_default());
                } else {
                    out.push_str(&t);
                }
            }
            _ => return unsupported("format() verbs other than %s, %d, %v and %q are not computed"),
        }
        if out.len() > MAX_STRING {
            return Err(Failure::Over(super::budget::Bound::String));
        }
    }
    Ok(out)
}

/// Whether a function's result can be computed although some arguments hold unknown values
/// inside them (a list with an unknown element still has a length).
pub fn tolerates_unknown_parts(fname: &str) -> bool {
    matches!(
        fname,
        "length"
            | "concat"
            | "flatten"
            | "element"
            | "keys"
            | "reverse"
            | "slice"
            | "zipmap"
            | "one"
            | "tolist"
            | "tomap"
            | "sensitive"
            | "nonsensitive"
            | "coalescelist"
    )
}

/// An argument that is itself unknown (not a collection with unknown parts).
pub fn opaque(node: &Node) -> bool {
    matches!(&node.kind, NodeKind::Str(s) if s.contains(super::eval::UNKNOWN))
}

pub fn has_unknown(node: &Node) -> bool {
    contains_unknown(node)
}
