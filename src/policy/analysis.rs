//! What OPA's compiler knows about a set of Rego modules and regorus does not check: which rules
//! call which (a cycle is refused at load time, as OPA refuses recursion, instead of overflowing
//! the stack at evaluation), and which rules can raise a conflict error (a complete rule or a
//! function with two values), which the bytecode VM silently swallows.
//!
//! The call graph is read from the parsed modules' rule spans: every identifier chain in a rule's
//! bodies and value that names a rule of the same package (or one under `data.`, directly or
//! through an import) is an edge. Function arguments and variables assigned in the body are not.

use std::collections::{BTreeMap, BTreeSet};

use regorus::unstable::{Expr, Literal, Module, Ref, Rule, RuleBody, RuleHead};

/// The call graph and the rules that can conflict, by full path (`data.pkg.rule`).
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    calls: BTreeMap<String, BTreeSet<String>>,
    /// Rule path -> why it can raise a conflict error.
    conflicting: BTreeMap<String, String>,
}

/// One definition of a rule, reduced to what the analysis needs.
struct Definition {
    path: String,
    kind: Kind,
    /// `(value text, body texts)` per body; `value` is `true` for a rule without one.
    bodies: Vec<(String, String, bool)>,
    /// Argument names (functions) and the head's key expression text.
    args: Vec<String>,
    /// A function's parameters by position (their text), for comparing definitions.
    params: Vec<String>,
    head_text: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// A partial set (`deny[msg]`, `deny contains msg`): never conflicts.
    Set,
    /// A complete rule, a partial object rule or a function: one value per key/input.
    Single,
}

impl Analysis {
    pub fn of(modules: &[Ref<Module>]) -> Analysis {
        let mut defs = Vec::new();
        let mut imports: Vec<BTreeMap<String, String>> = Vec::new();
        let mut packages = Vec::new();
        for (m, module) in modules.iter().enumerate() {
            let package = format!("data.{}", module.package.refr.span().text().trim());
            let mut aliases = BTreeMap::new();
            for import in &module.imports {
                let path = import.refr.span().text().trim().to_string();
                let alias = match &import.r#as {
                    Some(a) => a.text().to_string(),
                    None => path.rsplit('.').next().unwrap_or_default().to_string(),
                };
                if path.starts_with("data.") {
                    aliases.insert(alias, path);
                }
            }
            imports.push(aliases);
            packages.push(package.clone());
            for rule in &module.policy {
                if let Some(def) = definition(&package, rule) {
                    defs.push((m, def));
                }
            }
        }
        let rules: BTreeSet<String> = defs.iter().map(|(_, d)| d.path.clone()).collect();
        let mut analysis = Analysis::default();
        let mut by_path: BTreeMap<&str, Vec<&Definition>> = BTreeMap::new();
        for (m, def) in &defs {
            let edges = analysis.calls.entry(def.path.clone()).or_default();
            let mut locals: BTreeSet<String> = def.args.iter().cloned().collect();
            for (_, body, _) in &def.bodies {
                locals.extend(assigned(body));
            }
            let texts =
                def.bodies.iter().flat_map(|(v, b, _)| [v.as_str(), b.as_str()]).chain([def.head_text.as_str()]);
            for text in texts {
                for chain in chains(text) {
                    let first = chain.split('.').next().unwrap_or_default();
                    let target = if first == "data" {
                        chain.clone()
                    } else if let Some(path) = imports[*m].get(first) {
                        format!("{path}{}", &chain[first.len()..])
                    } else if !locals.contains(first) {
                        format!("{}.{chain}", packages[*m])
                    } else {
                        continue;
                    };
                    // `data.pkg.rule.field` names `data.pkg.rule`; `data.pkg` names all of its rules.
                    for rule in &rules {
                        if target == *rule
                            || target.strip_prefix(rule.as_str()).is_some_and(|r| r.starts_with('.'))
                            || rule.strip_prefix(target.as_str()).is_some_and(|r| r.starts_with('.'))
                        {
                            edges.insert(rule.clone());
                        }
                    }
                }
            }
            by_path.entry(&def.path).or_default().push(def);
        }
        for (path, defs) in &by_path {
            let package = path.rsplit_once('.').map(|(p, _)| p).unwrap_or_default();
            let helper = |name: &str| by_path.get(format!("{package}.{name}").as_str()).map(Vec::as_slice);
            if let Some(why) = can_conflict(defs, &helper) {
                analysis.conflicting.insert(path.to_string(), why);
            }
        }
        analysis
    }

    /// A cycle in the call graph, as the rule paths around it (the first repeated at the end).
    pub fn cycle(&self) -> Option<Vec<String>> {
        // Iterative DFS with colours: 1 = on the path, 2 = done.
        let mut colour: BTreeMap<&str, u8> = BTreeMap::new();
        for start in self.calls.keys() {
            if colour.contains_key(start.as_str()) {
                continue;
            }
            let mut path: Vec<(&str, Vec<&str>)> = vec![(start, self.next(start))];
            colour.insert(start, 1);
            while let Some((node, pending)) = path.last_mut() {
                let node = *node;
                match pending.pop() {
                    Some(n) => match colour.get(n) {
                        Some(1) => {
                            let from = path.iter().position(|(p, _)| *p == n).unwrap_or(0);
                            let mut cycle: Vec<String> = path[from..].iter().map(|(p, _)| p.to_string()).collect();
                            cycle.push(n.to_string());
                            return Some(cycle);
                        }
                        Some(_) => {}
                        None => {
                            colour.insert(n, 1);
                            path.push((n, self.next(n)));
                        }
                    },
                    None => {
                        colour.insert(node, 2);
                        path.pop();
                    }
                }
            }
        }
        None
    }

    fn next(&self, node: &str) -> Vec<&str> {
        self.calls.get(node).map(|s| s.iter().map(String::as_str).collect()).unwrap_or_default()
    }

    /// A rule reachable from `entry` (itself included) that can raise a conflict error, with why.
    pub fn conflict_reachable(&self, entry: &str) -> Option<(&str, &str)> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![entry];
        while let Some(node) = stack.pop() {
            if !seen.insert(node) {
                continue;
            }
            if let Some((path, why)) = self.conflicting.get_key_value(node) {
                return Some((path, why));
            }
            stack.extend(self.next(node));
        }
        None
    }
}

fn definition(package: &str, rule: &Ref<Rule>) -> Option<Definition> {
    let Rule::Spec { head, bodies, .. } = rule.as_ref() else { return None };
    let (refr, kind, args, head_value, head_text) = match head {
        RuleHead::Set { refr, key, .. } => {
            (refr, Kind::Set, Vec::new(), None, key.as_ref().map(|k| k.span().text().to_string()).unwrap_or_default())
        }
        RuleHead::Compr { refr, assign, .. } => {
            // `p contains x` parses as a set in v1; `p[x] { }` without a value is a set too (v0).
            let text = refr.span().text();
            let kind = if assign.is_none() && text.contains('[') { Kind::Set } else { Kind::Single };
            (refr, kind, Vec::new(), assign.as_ref().map(|a| a.value.span().text().to_string()), text.to_string())
        }
        RuleHead::Func { refr, args, assign, .. } => (
            refr,
            Kind::Single,
            args.iter().flat_map(|a| identifiers(a.span().text())).collect(),
            assign.as_ref().map(|a| a.value.span().text().to_string()),
            String::new(),
        ),
    };
    let name: String = refr.span().text().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    let head_text = match refr.span().text().find('[') {
        Some(i) => refr.span().text()[i..].to_string(),
        None if kind == Kind::Set => head_text,
        None => String::new(),
    };
    let default_value = head_value.unwrap_or_else(|| "true".into());
    let bodies = if bodies.is_empty() {
        vec![(default_value, String::new(), false)]
    } else {
        bodies.iter().map(|b| body_parts(b, &default_value)).collect()
    };
    let params = match head {
        // Literals as JSON (a string's span may leave its quotes out), the rest as written.
        RuleHead::Func { args, .. } => args
            .iter()
            .map(|a| match a.as_ref() {
                Expr::String { value, .. }
                | Expr::RawString { value, .. }
                | Expr::Number { value, .. }
                | Expr::Bool { value, .. } => value.to_json_str().unwrap_or_default(),
                _ => a.span().text().trim().to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(Definition { path: format!("{package}.{name}"), kind, bodies, args, params, head_text })
}

fn body_parts(body: &RuleBody, head_value: &str) -> (String, String, bool) {
    let value = body.assign.as_ref().map(|a| a.value.span().text().to_string()).unwrap_or_else(|| head_value.into());
    let mut text = String::new();
    let mut iterates = false;
    for stmt in &body.query.stmts {
        text.push_str(stmt.span.text());
        text.push('\n');
        iterates |= matches!(stmt.literal, Literal::SomeIn { .. } | Literal::SomeVars { .. });
    }
    (value, text, iterates)
}

/// Why a rule's definitions can produce two values for one input, if they can.
fn can_conflict<'a>(defs: &[&Definition], helper: &dyn Fn(&str) -> Option<&'a [&'a Definition]>) -> Option<String> {
    if defs.iter().any(|d| d.kind == Kind::Set) {
        return None;
    }
    // `else` bodies are alternatives: only independent definitions (and their first bodies) count.
    let values: Vec<&str> = defs.iter().filter_map(|d| d.bodies.first()).map(|(v, _, _)| v.trim()).collect();
    let constant = |v: &str| serde_json::from_str::<serde_json::Value>(v).is_ok();
    let all_same_constant = values.iter().all(|v| constant(v) && *v == values[0]);
    if all_same_constant {
        return None;
    }
    if defs.len() > 1 && !pairwise_exclusive(defs, helper) {
        return Some("it has definitions with different values".into());
    }
    for def in defs {
        let locals: BTreeSet<String> = def.args.iter().cloned().collect();
        for (value, body, some) in &def.bodies {
            if !constant(value.trim()) && (*some || iterates(body, &locals) || iterates(&def.head_text, &locals)) {
                return Some("a body that iterates gives its value".into());
            }
        }
    }
    None
}

/// Definitions that cannot hold together, the shapes helpers that split by case are written in:
/// for each pair, one has a statement and the other its negation: `S` / `not S`, `a <= b` /
/// `a > b`, or `not h(x)` where the other holds every statement of the helper `h`'s body.
fn pairwise_exclusive<'a>(defs: &[&Definition], helper: &dyn Fn(&str) -> Option<&'a [&'a Definition]>) -> bool {
    // Parameters renamed by position: `f(s, i, _)` and `f(s, _, g)` compare as one function.
    let positional = |d: &Definition| -> String {
        let mut text = d.bodies.first().map_or(String::new(), |b| b.1.clone());
        for (i, p) in d.params.iter().enumerate() {
            if p != "_" && p.chars().all(|c| c.is_alphanumeric() || c == '_') {
                text = replace_word(&text, p, &format!("__arg{i}"));
            }
        }
        text
    };
    let sets: Vec<BTreeSet<String>> = defs.iter().map(|d| statements(&positional(d))).collect();
    // `f("E") = …` and `f("P") = …`: different literal arguments never match the same call.
    let literal = |p: &str| serde_json::from_str::<serde_json::Value>(p).ok();
    let other_literals = |x: &Definition, y: &Definition| {
        x.params.iter().zip(&y.params).any(|(p, q)| matches!((literal(p), literal(q)), (Some(a), Some(b)) if a != b))
    };
    for (i, a) in sets.iter().enumerate() {
        for (j, b) in sets.iter().enumerate().skip(i + 1) {
            if !other_literals(defs[i], defs[j]) && !negates(a, b, helper) && !negates(b, a, helper) {
                return false;
            }
        }
    }
    true
}

/// A body's statements, normalised: spaces collapsed, `is_T(object.get(x, "k", null))` read as
/// `is_T(x.k)` (the same truth).
fn statements(body: &str) -> BTreeSet<String> {
    static GET: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let get = GET.get_or_init(|| {
        regex::Regex::new(
            r#"^(not )?(is_[a-z]+)\(object\.get\(([A-Za-z_][A-Za-z0-9_.]*), "([A-Za-z_][A-Za-z0-9_]*)", null\)\)$"#,
        )
        .expect("valid regex")
    });
    let lines: Vec<String> = body
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .map(|l| get.replace(&l, "${1}${2}(${3}.${4})").into_owned())
        .collect();
    // `p := x.y` then `is_string(p)` also reads as `is_string(x.y)`.
    let mut out: BTreeSet<String> = lines.iter().cloned().collect();
    for line in &lines {
        let Some((var, value)) = line.split_once(" := ") else { continue };
        let simple = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.');
        if simple(var) && simple(value) {
            out.extend(lines.iter().filter(|l| *l != line).map(|l| replace_word(l, var, value)));
        }
    }
    out
}

fn replace_word(text: &str, word: &str, with: &str) -> String {
    let re = regex::Regex::new(&format!(r"\b{}\b", regex::escape(word))).expect("valid regex");
    re.replace_all(text, regex::NoExpand(with)).into_owned()
}

/// One end of an interval: the number, and whether it is included.
type Bound = (f64, bool);

/// `x op n` with a number `n`: the numbers `x` may be, as an interval (low, high, inclusive each).
fn interval(statement: &str) -> Option<(&str, Bound, Bound)> {
    for op in [" <= ", " >= ", " == ", " < ", " > "] {
        let Some((l, r)) = statement.split_once(op) else { continue };
        let (Ok(n), false) = (r.parse::<f64>(), l.contains(' ')) else { return None };
        let inf = f64::INFINITY;
        return Some(match op {
            " <= " => (l, (-inf, false), (n, true)),
            " >= " => (l, (n, true), (inf, false)),
            " == " => (l, (n, true), (n, true)),
            " < " => (l, (-inf, false), (n, false)),
            _ => (l, (n, false), (inf, false)),
        });
    }
    None
}

/// Whether two intervals on the same variable share no number.
fn disjoint(a: &str, b: &str) -> bool {
    let (Some((x, alo, ahi)), Some((y, blo, bhi))) = (interval(a), interval(b)) else { return false };
    let below = |hi: (f64, bool), lo: (f64, bool)| hi.0 < lo.0 || (hi.0 == lo.0 && !(hi.1 && lo.1));
    x == y && (below(ahi, blo) || below(bhi, alo))
}

/// `is_string(x)` and `is_number(x)`: one value has one type.
fn other_types(a: &str, b: &str) -> bool {
    let split = |s: &str| -> Option<(String, String)> {
        let rest = s.strip_prefix("is_")?;
        let (ty, arg) = rest.split_once('(')?;
        matches!(ty, "string" | "number" | "boolean" | "array" | "object" | "set" | "null")
            .then(|| (ty.to_string(), arg.to_string()))
    };
    matches!((split(a), split(b)), (Some((t1, a1)), Some((t2, a2))) if t1 != t2 && a1 == a2)
}

/// Whether a statement of `x` contradicts `y`.
fn negates<'a>(
    x: &BTreeSet<String>,
    y: &BTreeSet<String>,
    helper: &dyn Fn(&str) -> Option<&'a [&'a Definition]>,
) -> bool {
    const OPPOSITE: [(&str, &str); 6] =
        [(" <= ", " > "), (" > ", " <= "), (" < ", " >= "), (" >= ", " < "), (" == ", " != "), (" != ", " == ")];
    x.iter().any(|s| {
        if let Some(rest) = s.strip_prefix("not ") {
            return y.contains(rest) || helper_holds(rest, y, helper);
        }
        if y.iter().any(|t| disjoint(s, t) || other_types(s, t)) {
            return true;
        }
        OPPOSITE.iter().any(|(op, opposite)| match s.split_once(op) {
            Some((l, r)) if !l.contains(' ') && !r.contains(' ') => y.contains(&format!("{l}{opposite}{r}")),
            _ => false,
        })
    })
}

/// Whether `call` (`h` or `h(a, b)`) names a helper with one body, every statement of which
/// (its parameters replaced by the arguments) is in `y`.
fn helper_holds<'a>(call: &str, y: &BTreeSet<String>, helper: &dyn Fn(&str) -> Option<&'a [&'a Definition]>) -> bool {
    let (name, args) = match call.split_once('(') {
        Some((n, rest)) => match rest.strip_suffix(')').and_then(super::compat::split_call_args) {
            Some(a) => (n, a),
            None => return false,
        },
        None => (call, Vec::new()),
    };
    let Some([def]) = helper(name) else { return false };
    let ([(_, body, _)], true) = (def.bodies.as_slice(), def.args.len() == args.len()) else { return false };
    let mut text = body.clone();
    for (param, arg) in def.args.iter().zip(&args) {
        text = replace_word(&text, param, arg.trim());
    }
    let needed = statements(&text);
    !needed.is_empty() && needed.is_subset(y)
}

/// Whether a body can bind its variables more than once: `x[_]`, or an index by a variable the
/// body does not assign and the rule does not take as an argument.
fn iterates(body: &str, args: &BTreeSet<String>) -> bool {
    let code = without_comprehensions(&code_only(body));
    let assigned = assigned(body);
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(open) = code[i..].find('[').map(|p| p + i) {
        i = open + 1;
        if open == 0 || !(bytes[open - 1].is_ascii_alphanumeric() || matches!(bytes[open - 1], b'_' | b']' | b')')) {
            continue; // an array literal, not an index
        }
        let Some(close) = code[open..].find(']').map(|p| p + open) else { break };
        let index = code[open + 1..close].trim();
        let var = index.chars().all(|c| c.is_alphanumeric() || c == '_')
            && index.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
        if var && (index == "_" || (!args.contains(index) && !assigned.contains(index))) {
            return true;
        }
    }
    false
}

/// `code` with comprehensions (`[x | …]`, `{x | …}`, `{k: v | …}`) blanked: what they
/// iterate stays inside them.
fn without_comprehensions(code: &str) -> String {
    let mut bytes = code.as_bytes().to_vec();
    let mut stack: Vec<(usize, bool)> = Vec::new(); // (open index, saw a top-level `|`)
    let mut spans = Vec::new();
    for (i, &b) in code.as_bytes().iter().enumerate() {
        match b {
            b'[' | b'{' | b'(' => stack.push((i, false)),
            b'|' => {
                if let Some(top) = stack.last_mut() {
                    top.1 = true;
                }
            }
            b']' | b'}' | b')' => {
                if let Some((open, bar)) = stack.pop() {
                    if bar && code.as_bytes()[open] != b'(' {
                        spans.push((open, i));
                    }
                }
            }
            _ => {}
        }
    }
    for (open, close) in spans {
        bytes[open + 1..close].iter_mut().for_each(|b| *b = b' ');
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// Names assigned in a body (`x := …`, `some x`), which are locals, not rules.
fn assigned(body: &str) -> BTreeSet<String> {
    static ASSIGN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = ASSIGN.get_or_init(|| {
        regex::Regex::new(r"(?:^|[^A-Za-z0-9_.])([A-Za-z_][A-Za-z0-9_]*)\s*:=|\bsome\s+([A-Za-z_][A-Za-z0-9_, ]*)")
            .expect("valid regex")
    });
    let code = code_only(body);
    let mut out = BTreeSet::new();
    for cap in re.captures_iter(&code) {
        if let Some(n) = cap.get(1) {
            out.insert(n.as_str().to_string());
        }
        if let Some(list) = cap.get(2) {
            out.extend(list.as_str().split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
        }
    }
    out
}

fn identifiers(text: &str) -> Vec<String> {
    chains(text).into_iter().filter(|c| !c.contains('.')).collect()
}

/// Identifier chains (`a`, `data.lib.f`, `x.y`) in the code of `text`, strings and comments left out.
fn chains(text: &str) -> Vec<String> {
    static CHAIN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = CHAIN.get_or_init(|| {
        regex::Regex::new(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*").expect("valid regex")
    });
    let code = code_only(text);
    let bytes = code.as_bytes();
    re.find_iter(&code)
        .filter(|m| m.start() == 0 || !matches!(bytes[m.start() - 1], b'.' | b'0'..=b'9'))
        .map(|m| m.as_str().to_string())
        .collect()
}

/// `text` with strings and comments blanked (same length), so only code is searched.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push(' ');
                while let Some(d) = chars.next() {
                    out.push(' ');
                    if d == '\\' {
                        chars.next();
                        out.push(' ');
                    } else if d == '"' {
                        break;
                    }
                }
            }
            '`' => {
                out.push(' ');
                for d in chars.by_ref() {
                    out.push(if d == '\n' { '\n' } else { ' ' });
                    if d == '`' {
                        break;
                    }
                }
            }
            '#' => {
                out.push(' ');
                while let Some(&d) = chars.peek() {
                    if d == '\n' {
                        break;
                    }
                    chars.next();
                    out.push(' ');
                }
            }
            c if c.is_ascii() => out.push(c),
            _ => out.push(' '),
        }
    }
    out
}
