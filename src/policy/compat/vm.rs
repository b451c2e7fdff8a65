//! The bytecode VM's differences from regorus's interpreter (which `rewrite_v0`/`rewrite_v1`
//! already align with OPA), found by running both on gatekeeper-library and the built-in pack
//! (`GUARDRAIL_REGO=crosscheck`), and the rewrites that remove them from the copy the VM compiles.

use super::{split_args, Scan};

/// The bytecode VM's own differences (measured against its interpreter, which `rewrite_v0`/`v1`
/// already align with OPA), rewritten away or refused. `Err` says why a source must stay on the
/// interpreter. Applied after `rewrite_v0`/`rewrite_v1`, to the copy the VM compiles only:
/// - a function defined without a body (`accept("RunAsAny", _)`) never matches: it gets `= true`;
/// - `x := <undefined>` succeeds (skipping an `else`, or passing when `x` is not used again): a
///   `x == x` after it fails as OPA's assignment does;
/// - a builtin error inside a rule is swallowed as undefined, so `sprintf` must not be able to
///   fail: only literal formats with literal argument arrays and `%v`/`%s` verbs (which print any
///   value) are accepted; verbs beyond the arguments become Go's `%!v(MISSING)` in the format.
pub fn prepare_for_vm(text: &str) -> Result<String, String> {
    super::limits::refuse_uncapped(&String::from_utf8_lossy(&code_only(text)))?;
    let text = sprintf_for_vm(text)?;
    let text = bodiless_functions_true(&text);
    Ok(guard_assignments(&text))
}

/// Code bytes of `text` (same length): comments blanked to spaces, strings and raw strings
/// (quotes and newlines included) to `'`, a byte Rego code never contains, so that a string
/// still reads as an operand and never as whitespace, a bracket or a line end.
pub(super) fn code_only(text: &str) -> Vec<u8> {
    let src = text.as_bytes();
    let scan = Scan { src };
    let mut out = src.to_vec();
    let mut i = 0;
    while i < src.len() {
        match scan.skip_non_code(i) {
            Some(j) => {
                let fill = if src[i] == b'#' { b' ' } else { b'\'' };
                out[i..j].iter_mut().for_each(|b| *b = fill);
                i = j;
            }
            None => i += 1,
        }
    }
    out
}

fn sprintf_for_vm(text: &str) -> Result<String, String> {
    let code = code_only(text);
    let code_str = String::from_utf8_lossy(&code).into_owned();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(pos) = code_str[from..].find("sprintf(").map(|p| p + from) {
        from = pos + "sprintf(".len();
        let whole_word = pos == 0 || !matches!(code[pos - 1], b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.');
        if !whole_word {
            continue;
        }
        let bytes = text.as_bytes();
        let scan = Scan { src: bytes };
        let mut i = from;
        let skip_ws = |mut i: usize| {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            i
        };
        i = skip_ws(i);
        let fmt_start = i;
        let fmt_end = match bytes.get(i) {
            Some(b'"') | Some(b'`') => scan.skip_non_code(i).unwrap_or(bytes.len()),
            _ => return Err("sprintf with a computed format".into()),
        };
        i = skip_ws(fmt_end);
        if bytes.get(i) != Some(&b',') {
            return Err("sprintf with a computed format".into());
        }
        i = skip_ws(i + 1);
        if bytes.get(i) != Some(&b'[') {
            return Err("sprintf with computed arguments".into());
        }
        let arr_start = i;
        let mut depth = 0i32;
        let mut j = i;
        while j < bytes.len() {
            if let Some(k) = scan.skip_non_code(j) {
                j = k;
                continue;
            }
            match bytes[j] {
                b'[' | b'(' | b'{' => depth += 1,
                b']' | b')' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        let inner = text.get(arr_start + 1..j).ok_or("unbalanced sprintf arguments")?;
        let mut after = skip_ws(j + 1);
        if bytes.get(after) == Some(&b',') {
            after = skip_ws(after + 1); // a trailing comma before `)`
        }
        if bytes.get(after) != Some(&b')') {
            return Err("sprintf with computed arguments".into());
        }
        let args = split_args(inner).ok_or("unbalanced sprintf arguments")?.len();
        let literal = &text[fmt_start..fmt_end];
        let (verbs, rewritten) = vm_format(literal, args)?;
        if verbs < args {
            return Err("sprintf with more arguments than verbs".into());
        }
        out.push_str(&text[last..fmt_start]);
        out.push_str(&rewritten);
        last = fmt_end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// Counts the verbs of a format literal (quotes included) and replaces those past `args` with
/// Go's missing-argument text. Only `%v` and `%s`, without flags, width or precision.
fn vm_format(literal: &str, args: usize) -> Result<(usize, String), String> {
    let mut out = String::with_capacity(literal.len());
    let mut verbs = 0;
    let mut chars = literal.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push_str("%%"),
            Some(v @ ('v' | 's')) => {
                verbs += 1;
                if verbs > args {
                    out.push_str(&format!("%%!{v}(MISSING)"));
                } else {
                    out.push('%');
                    out.push(v);
                }
            }
            other => {
                return Err(format!(
                    "sprintf verb %{} (the VM prints only %v and %s as OPA does)",
                    other.map(String::from).unwrap_or_default()
                ))
            }
        }
    }
    Ok((verbs, out))
}

/// `f("a", _)` at the top level (a function that is true when its arguments match) -> `f("a", _) = true`.
fn bodiless_functions_true(text: &str) -> String {
    static HEAD: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = HEAD.get_or_init(|| regex::Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*\(.*\)$").expect("valid regex"));
    let code = code_only(text);
    let mut out = String::with_capacity(text.len() + 16);
    let mut depth = 0i32;
    let mut offset = 0;
    let mut prev_end: Option<u8> = None;
    for line in text.split_inclusive('\n') {
        let code_line = String::from_utf8_lossy(&code[offset..offset + line.len()]).into_owned();
        offset += line.len();
        let stmt = code_line.trim();
        let continues = matches!(prev_end, Some(b'=' | b',' | b'(' | b'[' | b'{' | b'|' | b'+' | b'-' | b'*' | b'&'));
        if depth == 0
            && !continues
            && re.is_match(stmt)
            && split_args(&stmt[stmt.find('(').unwrap_or(0) + 1..stmt.len() - 1]).is_some()
        {
            let body = line.trim_end_matches(['\n', '\r']);
            let code_end = code_line.trim_end().len();
            out.push_str(&body[..code_end]);
            out.push_str(" = true");
            out.push_str(&line[code_end..]);
        } else {
            out.push_str(line);
        }
        for b in code_line.bytes() {
            match b {
                b'{' | b'[' | b'(' => depth += 1,
                b'}' | b']' | b')' => depth -= 1,
                _ => {}
            }
        }
        if let Some(b) = stmt.bytes().last() {
            prev_end = Some(b);
        }
    }
    out
}

/// `x := e` inside a body -> `x := e; x == x`: the VM lets an assignment of an undefined value
/// succeed (the body then "succeeds" with nothing, which skips an `else` and passes when `x` is
/// never used again); the comparison fails on undefined as OPA's assignment does (and costs a
/// pointer comparison: a value equals itself without being walked). `_ = x` would read better,
/// but the VM's compiler refuses it for a function's output variable.
fn guard_assignments(text: &str) -> String {
    static ASSIGN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = ASSIGN.get_or_init(|| regex::Regex::new(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]*:=").expect("valid regex"));
    let code = code_only(text);
    let code_str = String::from_utf8_lossy(&code).into_owned();
    let mut depth_at = Vec::with_capacity(code.len());
    let mut depth = 0i32;
    for b in &code {
        depth_at.push(depth);
        match b {
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => depth -= 1,
            _ => {}
        }
    }
    let mut inserts: Vec<(usize, String)> = Vec::new();
    for cap in re.captures_iter(&code_str) {
        let name = cap.get(1).expect("group");
        let at = name.start();
        let glued = at > 0 && matches!(code[at - 1], b'.' | b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_');
        if glued || name.as_str() == "_" || depth_at[at] == 0 {
            continue;
        }
        // The statement ends at a newline or `;` at its own depth, or where its bracket closes.
        let mut d = 0i32;
        let mut end = code.len();
        for (j, b) in code.iter().enumerate().skip(cap.get(0).expect("match").end()) {
            match b {
                b'{' | b'[' | b'(' => d += 1,
                b'}' | b']' | b')' if d == 0 => {
                    end = j;
                    break;
                }
                b'}' | b']' | b')' => d -= 1,
                b'\n' | b';' if d == 0 => {
                    end = j;
                    break;
                }
                _ => {}
            }
        }
        // After the last code character (a trailing comment stays after the guard).
        let mut k = end;
        while k > 0 && code[k - 1].is_ascii_whitespace() {
            k -= 1;
        }
        inserts.push((k, format!("; {0} == {0}", name.as_str())));
    }
    inserts.sort_by_key(|(at, _)| *at);
    let mut out = text.to_string();
    for (at, guard) in inserts.into_iter().rev() {
        out.insert_str(at, &guard);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rewrites() {
        let src = "package x\n\naccept(\"RunAsAny\", _)\nok(a) {\n  a == 1\n}\n";
        let out = prepare_for_vm(src).unwrap();
        assert!(out.contains("accept(\"RunAsAny\", _) = true\n"), "{out}");
        assert!(out.contains("ok(a) {\n  a == 1\n}"), "{out}");
        let src = "package x\np[m] {\n  x := input.a # why\n  s := \"\"\n  ys := [y | y := input.b[_]]\n  m := sprintf(\"%v %v\", [ys])\n}\n";
        let out = prepare_for_vm(src).unwrap();
        assert!(out.contains("x := input.a; x == x # why\n  s := \"\"; s == s\n"), "{out}");
        assert!(out.contains("ys := [y | y := input.b[_]; y == y]; ys == ys\n"), "{out}");
        assert!(out.contains("m := sprintf(\"%v %%!v(MISSING)\", [ys]); m == m\n"), "{out}");
        assert!(prepare_for_vm("package x\np { sprintf(\"%d\", [1]) }\n").is_err());
        assert!(prepare_for_vm("package x\np { f := \"%v\"; sprintf(f, [1]) }\n").is_err());
        let untouched = "package x\nimport future.keywords.in\ndefault allow := false\nf(x) = y {\n  y = x\n}\n";
        assert_eq!(prepare_for_vm(untouched).unwrap(), untouched);
    }
}
