//! Where regorus reads Rego differently from OPA, and the rewrites that make Gatekeeper's policies
//! behave as they do under OPA:
//! - v0 chained rule bodies `head { A } { B }` (OPA: two definitions; regorus: `else`) are split
//!   into separate rules with the same head;
//! - a line starting with `(` continues the previous line in regorus (a call); OPA starts a new
//!   expression, so a `;` is inserted;
//! - `not f(x.y)` with `x.y` undefined is true in regorus; OPA hoists the reference out of the
//!   negation, so the body fails: references in such calls are bound on the line before;
//! - `sprintf` with too few arguments errors in regorus; OPA prints `%!v(MISSING)`: an extension
//!   named `sprintf` implements Go's formatting;
//! - Rego regorus rejects or fails on where OPA answers (`some x in "string"`, reference heads,
//!   `x = s[x]`, comprehensions redeclaring a variable): see `opa`.
//!
//! The bytecode VM reads some Rego differently again: `vm` prepares the copy it compiles.

mod conftest;
mod limits;
mod nesting;
mod opa;
mod vm;

pub use conftest::{combine, combined_entries, conftest_file_paths, install_conftest_builtins};
pub use limits::{install_limits, memory_limit, LIMIT_MARK, MAX_EVAL_BYTES, MAX_STRING_BYTES};
pub use nesting::{check_source, MAX_FIRST_NESTING, MAX_NESTING};
pub use vm::prepare_for_vm;

/// A byte-level scan of Rego that knows strings, raw strings and comments.
struct Scan<'a> {
    src: &'a [u8],
}

impl Scan<'_> {
    /// Index just past a string/raw string/comment starting at `i`, or `None` if `i` is code.
    fn skip_non_code(&self, i: usize) -> Option<usize> {
        let src = self.src;
        match src[i] {
            b'"' => {
                let mut j = i + 1;
                while j < src.len() && src[j] != b'"' && src[j] != b'\n' {
                    j += if src[j] == b'\\' { 2 } else { 1 };
                }
                Some((j + 1).min(src.len()))
            }
            b'`' => {
                let mut j = i + 1;
                while j < src.len() && src[j] != b'`' {
                    j += 1;
                }
                Some((j + 1).min(src.len()))
            }
            b'#' => {
                let mut j = i;
                while j < src.len() && src[j] != b'\n' {
                    j += 1;
                }
                Some(j)
            }
            _ => None,
        }
    }
}

/// Applies the v0 rewrites. Text that needs none comes back unchanged.
pub fn rewrite_v0(text: &str) -> String {
    opa::rewrite(&hoist_negated_call_refs(&split_chained_bodies(&insert_paren_separators(text))), true)
}

/// Rewrites that apply to both dialects.
pub fn rewrite_v1(text: &str) -> String {
    opa::rewrite(&hoist_negated_call_refs(text), false)
}

/// `not f(a, x.y)` -> `__gr0 := x.y` + `not f(a, __gr0)`, as OPA's compiler does, so that an
/// undefined reference makes the body fail instead of making the negation true.
fn hoist_negated_call_refs(text: &str) -> String {
    static NOT_CALL: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = NOT_CALL.get_or_init(|| {
        regex::Regex::new(r"^(\s*)not\s+([A-Za-z_][A-Za-z0-9_.]*)\((.*)\)\s*(#.*)?$").expect("valid regex")
    });
    let mut out = String::with_capacity(text.len());
    let mut counter = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let Some(cap) = re.captures(body) else {
            out.push_str(line);
            continue;
        };
        let Some(args) = split_args(&cap[3]) else {
            out.push_str(line);
            continue;
        };
        let indent = &cap[1];
        let mut new_args = Vec::new();
        let mut hoisted = Vec::new();
        for arg in args {
            let a = arg.trim();
            if is_reference(a) {
                let var = format!("__gr{counter}");
                counter += 1;
                hoisted.push(format!("{indent}{var} := {a}\n"));
                new_args.push(var);
            } else {
                new_args.push(a.to_string());
            }
        }
        if hoisted.is_empty() {
            out.push_str(line);
            continue;
        }
        hoisted.iter().for_each(|h| out.push_str(h));
        out.push_str(&format!("{indent}not {}({}){}", &cap[2], new_args.join(", "), ending));
    }
    out
}

/// `split_args` for other parts of `policy` (the call-graph analysis).
pub(crate) fn split_call_args(args: &str) -> Option<Vec<String>> {
    split_args(args)
}

/// Splits call arguments at top-level commas; `None` when brackets or strings do not balance.
fn split_args(args: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    let mut in_string = false;
    let mut prev = ' ';
    for c in args.chars() {
        if in_string {
            current.push(c);
            if c == '"' && prev != '\\' {
                in_string = false;
            }
            prev = c;
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current));
                prev = c;
                continue;
            }
            _ => {}
        }
        if depth < 0 {
            return None;
        }
        current.push(c);
        prev = c;
    }
    if depth != 0 || in_string {
        return None;
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    Some(out)
}

/// A plain reference with a dot (`params.ranges`, `input.review.object.spec`), without calls,
/// wildcards or operators: the kind OPA binds before a negated call.
fn is_reference(arg: &str) -> bool {
    let first = arg.chars().next().unwrap_or(' ');
    if arg.contains('[') {
        // `data.inventory.namespace[o.metadata.namespace]`: indices that are references or
        // literals, never `_` (which would iterate)
        let mut depth = 0i32;
        for c in arg.chars() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return false;
            }
        }
        let inner = arg.replace(['[', ']'], ".");
        return (first.is_ascii_alphabetic() || first == '_')
            && depth == 0
            && !arg.contains("[_]")
            && inner.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '"' | '-' | '/'));
    }
    (first.is_ascii_alphabetic() || first == '_')
        && arg.contains('.')
        && arg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !arg.split('.').any(|part| part == "_" || part.is_empty())
}

/// OPA's reading of a line that starts with `(`: a new expression, so a `;` ends the line before
/// (regorus would call what the line before ends with). Public for the rewriter's fuzz target, whose
/// invariant starts from this reading: a module that only parses as a call across lines is not OPA's.
pub fn insert_paren_separators(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut prev_code_end: Option<char> = None;
    let mut depth = 0i32;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('(') && depth > 0 {
            if let Some(c) = prev_code_end {
                if c.is_alphanumeric() || matches!(c, '_' | ')' | ']' | '"' | '`') {
                    // Terminate the previous expression where OPA would (at the newline).
                    let trimmed_out = out.trim_end_matches(['\n', '\r', ' ', '\t']).len();
                    let tail = out[trimmed_out..].to_string();
                    out.truncate(trimmed_out);
                    out.push(';');
                    out.push_str(&tail);
                }
            }
        }
        out.push_str(line);
        let code = strip_comment(line);
        depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
        if let Some(c) = code.trim_end().chars().last() {
            prev_code_end = Some(c);
        }
    }
    out
}

fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let scan = Scan { src: bytes };
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'#' {
            return &line[..i];
        }
        match scan.skip_non_code(i) {
            Some(j) => i = j,
            None => i += 1,
        }
    }
    line
}

/// Whether `text` ends in the word `word` (not in a longer name or a field such as `x.contains`).
fn ends_with_word(text: &str, word: &str) -> bool {
    text.strip_suffix(word)
        .is_some_and(|before| !before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
}

fn split_chained_bodies(text: &str) -> String {
    let src = text.as_bytes();
    let scan = Scan { src };
    let mut out = String::with_capacity(text.len());
    let mut depth = 0i32;
    let mut stmt_start: Option<usize> = None;
    let mut head: Option<String> = None;
    let mut last = 0;
    let mut i = 0;
    while i < src.len() {
        if let Some(j) = scan.skip_non_code(i) {
            i = j;
            continue;
        }
        let c = src[i];
        if depth == 0 && stmt_start.is_none() && !c.is_ascii_whitespace() {
            stmt_start = Some(i);
            head = None;
        }
        match c {
            b'{' | b'[' | b'(' => {
                if depth == 0 && c == b'{' && head.is_none() {
                    let start = stmt_start.unwrap_or(i);
                    let candidate = text[start..i].trim_end();
                    // A rule head starts with a name. A "head" that starts otherwise (`:= x`, `(f)x`)
                    // goes on from the line before, where regorus reads it so; after an operator
                    // (`= 1312000 / { true }`) a `{` is an operand, not a body (both found by the
                    // rego_rewrite fuzz target). So is one after `contains` (`deny contains {x} { … }`:
                    // a set as the key, then the body; found by the fuzz target too).
                    let is_value = candidate.ends_with(['=', '/', '*', '+', '-', '%', '&', '|', ',', '(', ':'])
                        || ends_with_word(candidate, "contains")
                        || !candidate.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
                    if !is_value && !candidate.starts_with("package") && !candidate.starts_with("import") {
                        head = Some(candidate.to_string());
                    }
                }
                depth += 1;
            }
            b'}' | b']' | b')' => {
                depth -= 1;
                if depth == 0 && c == b'}' {
                    // Look past whitespace and comments for a chained `{`.
                    let mut k = i + 1;
                    loop {
                        while k < src.len() && src[k].is_ascii_whitespace() {
                            k += 1;
                        }
                        if k < src.len() && src[k] == b'#' {
                            k = scan.skip_non_code(k).unwrap_or(src.len());
                            continue;
                        }
                        break;
                    }
                    match (&head, src.get(k)) {
                        (Some(h), Some(b'{')) => {
                            out.push_str(&text[last..=i]);
                            out.push('\n');
                            out.push_str(h);
                            out.push(' ');
                            last = k;
                            i = k;
                            continue; // the `{` is processed next, with the same head
                        }
                        (_, Some(_)) if text[k..].starts_with("else") => {}
                        _ => {
                            stmt_start = None;
                            head = None;
                        }
                    }
                }
            }
            // A statement without braces (`package`, `import`, `x := 1`) ends at its line.
            b'\n' if depth == 0 && head.is_none() => stmt_start = None,
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    out
}

/// Registers the extensions that stand in for regorus builtins whose behaviour differs from OPA.
pub fn install_extensions(engine: &mut regorus::Engine) -> anyhow::Result<()> {
    engine.add_extension(
        "sprintf".to_string(),
        2,
        Box::new(|args: Vec<regorus::Value>| {
            let format = args.first().and_then(|v| v.as_string().ok()).map(|s| s.to_string()).unwrap_or_default();
            let values = match args.get(1) {
                Some(regorus::Value::Array(a)) => a.iter().cloned().collect::<Vec<_>>(),
                _ => anyhow::bail!("sprintf: second argument must be an array"),
            };
            let out = go_sprintf(&format, &values);
            if out.len() > MAX_STRING_BYTES {
                return Err(limits::sprintf_too_long(out.len()));
            }
            Ok(regorus::Value::from(out))
        }),
    )
}

/// Go's `fmt.Sprintf` for the verbs Rego policies use, with OPA's conversions (strings and
/// numbers as themselves, everything else in Rego syntax).
pub fn go_sprintf(format: &str, args: &[regorus::Value]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if matches!(f, '-' | '+' | '#' | ' ' | '0') {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        // Go's `parsenum`: a number past 1e6 is "crazy long", and the rest of the format is taken.
        let Some(width) = go_parsenum(&mut chars) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let Some(p) = go_parsenum(&mut chars) else {
                out.push_str("%!(NOVERB)");
                break;
            };
            precision = Some(p);
        }
        if out.len() > MAX_STRING_BYTES {
            break; // the caller refuses the result
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let text = format_verb(verb, arg, precision);
        let len = text.chars().count();
        if len < width {
            let pad: String =
                std::iter::repeat_n(if flags.contains('0') && !flags.contains('-') { '0' } else { ' ' }, width - len)
                    .collect();
            if flags.contains('-') {
                out.push_str(&text);
                out.push_str(&pad);
            } else {
                out.push_str(&pad);
                out.push_str(&text);
            }
        } else {
            out.push_str(&text);
        }
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> =
            args[next..].iter().map(|a| format!("{}={}", go_type(a), rego_repr(a, true))).collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// Go's `parsenum`: the digits at the front (0 when none); `None` when the number grows past
/// 1e6 before its last digit, after consuming the rest of the format as Go does.
fn go_parsenum(chars: &mut std::iter::Peekable<std::str::Chars>) -> Option<usize> {
    let mut n = 0usize;
    while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
        if n > 1_000_000 {
            chars.for_each(drop);
            return None;
        }
        n = n * 10 + (d as usize - '0' as usize);
        chars.next();
    }
    Some(n)
}

/// `{:.*}` (or `{:.*e}`) for any precision: Rust's formatter refuses precisions past `u16::MAX`,
/// and an f64's exact expansion ends within 1100 digits, so the rest are zeros.
fn fixed(f: f64, precision: usize, exponent: bool) -> String {
    const EXACT: usize = 1100;
    let p = precision.min(EXACT);
    let mut text = if exponent { format!("{:.*e}", p, f) } else { format!("{:.*}", p, f) };
    if precision > EXACT {
        let at = if exponent { text.find('e').unwrap_or(text.len()) } else { text.len() };
        text.insert_str(at, &"0".repeat(precision - EXACT));
    }
    text
}

fn go_type(v: &regorus::Value) -> &'static str {
    match v {
        regorus::Value::String(_) => "string",
        // OPA hands Go an int64 for an integer and a float64 otherwise.
        regorus::Value::Number(_) if number_f64(v).fract() == 0.0 => "int64",
        regorus::Value::Number(_) => "float64",
        _ => "ast.Value",
    }
}

fn format_verb(verb: char, arg: &regorus::Value, precision: Option<usize>) -> String {
    match (verb, arg) {
        ('v' | 's', regorus::Value::String(s)) => match precision {
            Some(p) if verb == 's' => s.chars().take(p).collect(),
            _ => s.to_string(),
        },
        ('q', regorus::Value::String(s)) => serde_json::to_string(&**s).unwrap_or_default(),
        ('d', regorus::Value::String(s)) => format!("%!d(string={s})"),
        ('d', regorus::Value::Number(_)) => {
            let f = number_f64(arg);
            if f.fract() == 0.0 {
                format!("{}", f as i64)
            } else {
                format!("%!d(float64={})", rego_repr(arg, true))
            }
        }
        ('f' | 'F' | 'e' | 'g', regorus::Value::Number(_)) => {
            let f = number_f64(arg);
            match (verb, precision) {
                ('e', p) => fixed(f, p.unwrap_or(6), true),
                ('g', _) => rego_repr(arg, true),
                (_, p) => fixed(f, p.unwrap_or(6), false),
            }
        }
        ('x', regorus::Value::String(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
        ('x', regorus::Value::Number(_)) => format!("{:x}", number_f64(arg) as i64),
        ('t', regorus::Value::Bool(b)) => b.to_string(),
        _ => rego_repr(arg, true),
    }
}

fn number_f64(v: &regorus::Value) -> f64 {
    v.to_json_str().ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0)
}

/// A value as OPA prints terms: strings quoted inside composites, `{"a": 1}`, `["x", "y"]`.
pub fn rego_repr(v: &regorus::Value, top: bool) -> String {
    match v {
        regorus::Value::String(s) if top => s.to_string(),
        regorus::Value::String(s) => serde_json::to_string(&**s).unwrap_or_default(),
        regorus::Value::Null => "null".into(),
        regorus::Value::Undefined => "undefined".into(),
        regorus::Value::Bool(b) => b.to_string(),
        regorus::Value::Number(_) => v.to_json_str().unwrap_or_default(),
        regorus::Value::Array(items) => {
            format!("[{}]", items.iter().map(|i| rego_repr(i, false)).collect::<Vec<_>>().join(", "))
        }
        regorus::Value::Set(items) => {
            if items.is_empty() {
                "set()".into()
            } else {
                format!("{{{}}}", items.iter().map(|i| rego_repr(i, false)).collect::<Vec<_>>().join(", "))
            }
        }
        regorus::Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", rego_repr(k, false), rego_repr(v, false)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chained_bodies_become_separate_rules() {
        let src = "package x\n\nok(a) {\n  a == 1\n} {\n  a == 2\n}\n\nviolation[{\"msg\": m}] { m := \"x\" } {\n m := \"y\" }\n";
        let out = rewrite_v0(src);
        assert!(out.contains("}\nok(a) {\n  a == 2"), "{out}");
        assert!(out.contains("}\nviolation[{\"msg\": m}] {\n m := \"y\""), "{out}");
    }

    #[test]
    fn a_line_that_starts_with_an_assignment_is_not_a_head_to_repeat() {
        let src = "package x\nf(a)\n := 1 {\n  a\n} {\n  true\n}\n";
        assert!(!rewrite_v0(src).contains("\n:= 1"), "{}", rewrite_v0(src));
    }

    #[test]
    fn a_brace_after_an_operator_is_an_operand_not_a_chained_body() {
        let src = "package x\nf(a) = 1 / { true } { a }\n";
        assert_eq!(rewrite_v0(src), src);
    }

    #[test]
    fn else_chains_are_left_alone() {
        let src = "package x\nf(a) = 1 { a } else = 2 { true }\n";
        assert_eq!(rewrite_v0(src), src);
    }

    #[test]
    fn leading_paren_starts_new_expression() {
        let src = "package x\np {\n  x := input.a\n  (x > 1)\n}\n";
        let out = rewrite_v0(src);
        assert!(out.contains("x := input.a;\n  (x > 1)"), "{out}");
    }

    #[test]
    fn negated_calls_bind_references_first() {
        let src = "  not accept(rule, v, params.ranges)\n";
        assert_eq!(rewrite_v1(src), "  __gr0 := params.ranges\n  not accept(rule, v, __gr0)\n");
        let indexed = "  not f(d, data.inv.ns[o.metadata.namespace])\n";
        assert_eq!(rewrite_v1(indexed), "  __gr0 := data.inv.ns[o.metadata.namespace]\n  not f(d, __gr0)\n");
        let untouched = "  not accept(rule, x[_])\n  not f(\"a.b\")\n";
        assert_eq!(rewrite_v1(untouched), untouched);
    }

    #[test]
    fn sprintf_matches_go() {
        let args = vec![regorus::Value::from("a"), regorus::Value::from(3i64)];
        assert_eq!(go_sprintf("%v-%d-%v", &args), "a-3-%!v(MISSING)");
        assert_eq!(go_sprintf("(%d)", &args[..1]), "(%!d(string=a))");
        assert_eq!(go_sprintf("%q %%", &args[..1]), "\"a\" %");
        let obj = regorus::Value::from_json_str(r#"{"privileged": true, "x": ["a", 1]}"#).unwrap();
        assert_eq!(go_sprintf("%v", &[obj]), r#"{"privileged": true, "x": ["a", 1]}"#);
    }
}
