//! Rego that regorus rejects or fails on where OPA (1.20) gives an answer, found by running
//! redhat-cop/rego-policies, raspbernetes/k8s-security-policies and conftest's examples against
//! real OPA (scripts/opa-diff). Each is rewritten into Rego both engines read alike:
//! - `some x in E` where `E` is a string (or number, ...) errors in regorus, and the error drops
//!   the package's other results; OPA iterates nothing. `E` goes through `__gr_iterable(E)`, a
//!   function appended to the module that is defined for arrays, sets and objects only;
//! - a bodiless partial set rule whose head is a reference (`volumes[pod.spec.volumes[_]]`,
//!   `volumes contains input.x[_]`) errors in regorus when the reference is undefined; OPA gives
//!   the empty set. The reference moves into a body: `volumes[__grh] { __grh := pod.spec... }`;
//! - `x = s[x]` is an "unsafe var" in regorus; OPA iterates `s`: it becomes `s[x] == x`;
//! - `some x` inside a comprehension that redeclares a variable of the enclosing body is "used
//!   before definition" in regorus; OPA's `some` declares a new local: the comprehension's own
//!   variable is renamed;
//! - `some i` in a body whose `i` only comprehensions use is a "duplicated definition" in
//!   regorus; for OPA each comprehension's `i` is its own: the declaration is dropped (`true`).

use super::vm::code_only;
use super::Scan;

/// The OPA-answer rewrites, for either dialect (`v0` says which rule syntax to append).
pub fn rewrite(text: &str, v0: bool) -> String {
    // A v0 module that imports `rego.v1` is written in v1 syntax: what is appended must be too
    // (found by the rego_rewrite fuzz target: v0 helpers broke such a module's parse).
    let v0 = v0 && !imports_rego_v1(text);
    let text = drop_unused_some(text);
    let text = rename_comprehension_locals(&text);
    let text = self_keyed_unification(&text);
    let text = ref_headed_sets(&text, v0);
    some_in_iterable(&text, v0)
}

fn imports_rego_v1(text: &str) -> bool {
    static IMPORT: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = IMPORT.get_or_init(|| regex::Regex::new(r"(?m)^[ \t]*import[ \t]+rego\.v1\b").expect("valid regex"));
    re.is_match(&String::from_utf8_lossy(&code_only(text)))
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Byte offsets of `word` in `code` as a whole word (not after `.`: not a field name).
fn word_positions(code: &[u8], word: &str) -> Vec<usize> {
    let w = word.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + w.len() <= code.len() {
        if &code[i..i + w.len()] == w
            && (i == 0 || !(is_ident_byte(code[i - 1]) || code[i - 1] == b'.'))
            && code.get(i + w.len()).is_none_or(|b| !is_ident_byte(*b))
        {
            out.push(i);
            i += w.len();
        } else {
            i += 1;
        }
    }
    out
}

/// The identifier starting at `i` (after spaces), and the offset just past it.
fn ident_at(code: &[u8], mut i: usize) -> Option<(String, usize)> {
    while i < code.len() && (code[i] == b' ' || code[i] == b'\t') {
        i += 1;
    }
    let start = i;
    while i < code.len() && is_ident_byte(code[i]) {
        i += 1;
    }
    (i > start && !code[start].is_ascii_digit()).then(|| (String::from_utf8_lossy(&code[start..i]).into_owned(), i))
}

/// Where the bracket opened at `open` closes (`None` if it does not).
fn matching(code: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, &b) in code.iter().enumerate().skip(open) {
        match b {
            b'[' | b'{' | b'(' => depth += 1,
            b']' | b'}' | b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Comprehensions: `(open, bar, close)` for every `[..|..]`, `{..|..}` whose `|` is at its top level.
fn comprehensions(code: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for (open, &b) in code.iter().enumerate() {
        if b != b'[' && b != b'{' {
            continue;
        }
        let Some(close) = matching(code, open) else { continue };
        let mut depth = 0i32;
        for (i, &c) in code.iter().enumerate().take(close).skip(open + 1) {
            match c {
                b'[' | b'{' | b'(' => depth += 1,
                b']' | b'}' | b')' => depth -= 1,
                b'|' if depth == 0 => {
                    out.push((open, i, close));
                    break;
                }
                _ => {}
            }
        }
    }
    out
}

/// `some a, b` (no `in`) outside comprehensions whose variables the enclosing block uses only
/// inside comprehensions, or not at all: replaced by `true`.
fn drop_unused_some(text: &str) -> String {
    let code = code_only(text);
    let comps = comprehensions(&code);
    let in_comp = |p: usize| comps.iter().any(|(o, _, c)| p > *o && p < *c);
    let mut drops = Vec::new();
    for at in word_positions(&code, "some") {
        if in_comp(at) {
            continue;
        }
        let vars = some_vars(&code, at);
        // the statement's end: after the last variable
        let mut end = at + "some".len();
        let mut k = end;
        while let Some((name, next)) = ident_at(&code, k) {
            if name == "in" {
                end = usize::MAX;
                break;
            }
            end = next;
            k = next;
            while k < code.len() && (code[k] == b' ' || code[k] == b'\t') {
                k += 1;
            }
            if code.get(k) != Some(&b',') {
                break;
            }
            k += 1;
        }
        if end == usize::MAX || vars.is_empty() {
            continue;
        }
        // the enclosing block: the innermost `{` before `at` still open at `at`
        let mut depth = 0i32;
        let mut open = None;
        for i in (0..at).rev() {
            match code[i] {
                b'}' | b']' | b')' => depth += 1,
                b'{' | b'[' | b'(' if depth > 0 => depth -= 1,
                b'{' => {
                    open = Some(i);
                    break;
                }
                b'[' | b'(' => break,
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let Some(close) = matching(&code, open) else { continue };
        let used_outside = vars.iter().any(|v| {
            word_positions(&code[open..close], v)
                .into_iter()
                .map(|p| open + p)
                .any(|p| (p < at || p >= end) && !in_comp(p))
        });
        let used_inside =
            vars.iter().any(|v| word_positions(&code[open..close], v).into_iter().any(|p| in_comp(open + p)));
        if !used_outside && used_inside {
            drops.push((at, end));
        }
    }
    if drops.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, end) in drops {
        // A `some` inside an earlier one's span (`some some x`): that drop covers it already (found
        // by the rego_rewrite fuzz target: the overlapping slice panicked).
        if at < last {
            continue;
        }
        out.push_str(&text[last..at]);
        out.push_str("true");
        last = end;
    }
    out.push_str(&text[last..]);
    out
}

/// `(offset, var)` of each `var :=` at the top level of the comprehension body `(bar, close)`.
fn assignments(code: &[u8], bar: usize, close: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut i = bar + 1;
    while i < close {
        match code[i] {
            b'[' | b'{' | b'(' => depth += 1,
            b']' | b'}' | b')' => depth -= 1,
            b':' if depth == 0 && code.get(i + 1) == Some(&b'=') => {
                let mut j = i;
                while j > bar + 1 && (code[j - 1] == b' ' || code[j - 1] == b'\t') {
                    j -= 1;
                }
                let end = j;
                while j > bar + 1 && is_ident_byte(code[j - 1]) {
                    j -= 1;
                }
                let before = code[..j].iter().rev().find(|b| !b.is_ascii_whitespace());
                if end > j && !matches!(before, Some(b'.' | b']')) {
                    out.push((j, String::from_utf8_lossy(&code[j..end]).into_owned()));
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Variables a `some` at `at` declares: `some a, b in`, `some a, b`.
fn some_vars(code: &[u8], at: usize) -> Vec<String> {
    let mut vars = Vec::new();
    let mut i = at + "some".len();
    while let Some((name, end)) = ident_at(code, i) {
        if name == "in" {
            break;
        }
        if name != "_" {
            vars.push(name);
        }
        i = end;
        while i < code.len() && (code[i] == b' ' || code[i] == b'\t') {
            i += 1;
        }
        if code.get(i) != Some(&b',') {
            break;
        }
        i += 1;
    }
    vars
}

fn rename_comprehension_locals(text: &str) -> String {
    let code = code_only(text);
    let comps = comprehensions(&code);
    if comps.is_empty() {
        return text.to_string();
    }
    // identifier position -> new name; inner comprehensions come later and win.
    let mut renames: std::collections::BTreeMap<usize, (usize, String)> = Default::default();
    let mut ordered = comps.clone();
    ordered.sort_by_key(|(open, _, close)| (*open, std::cmp::Reverse(*close)));
    let mut counter = 0;
    for (open, bar, close) in ordered {
        let declared: Vec<String> = word_positions(&code[..close], "some")
            .into_iter()
            .filter(|p| *p > bar)
            // a `some` of this comprehension, not of one nested in it
            .filter(|p| !comps.iter().any(|(o, b, c)| *o > open && *c < close && p > b && p < c))
            .flat_map(|p| some_vars(&code, p))
            .collect();
        for var in declared {
            let new = format!("__grc{counter}_{var}");
            counter += 1;
            for p in word_positions(&code[open..close], &var) {
                renames.insert(open + p, (var.len(), new.clone()));
            }
        }
        // `v := e` in the body declares a new `v` from there on (and in the term); uses before it
        // are the enclosing body's `v`, as OPA reads them in order.
        for (at, var) in assignments(&code, bar, close) {
            if var == "_" || !word_positions(&code[open..at], &var).iter().any(|p| open + p > bar) {
                continue; // no earlier use in this body: regorus already reads it as OPA does
            }
            let new = format!("__grc{counter}_{var}");
            counter += 1;
            for p in word_positions(&code[open..close], &var) {
                let p = open + p;
                if p < bar || p >= at {
                    renames.insert(p, (var.len(), new.clone()));
                }
            }
        }
    }
    if renames.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 32);
    let mut last = 0;
    for (pos, (len, name)) in renames {
        out.push_str(&text[last..pos]);
        out.push_str(&name);
        last = pos + len;
    }
    out.push_str(&text[last..]);
    out
}

/// `x = s[x]` -> `s[x] == x` (a whole expression on its own line, inside a rule's body: at the
/// top level `p = s[p]` is a rule, found by the rego_rewrite fuzz target).
fn self_keyed_unification(text: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([A-Za-z_][A-Za-z0-9_.]*)\[\s*([A-Za-z_][A-Za-z0-9_]*)\s*\]\s*(#.*)?$")
            .expect("valid regex")
    });
    let code = code_only(text);
    let (mut out, mut at, mut depth) = (String::with_capacity(text.len()), 0usize, 0i64);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let in_body = depth > 0;
        for b in &code[at..at + line.len()] {
            depth += i64::from(*b == b'{') - i64::from(*b == b'}');
        }
        at += line.len();
        match re.captures(body) {
            Some(cap) if in_body && cap[2] == cap[4] => {
                out.push_str(&format!("{}{}[{}] == {}", &cap[1], &cap[3], &cap[2], &cap[2]));
                out.push_str(&line[body.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// A reference (something to evaluate), not a variable or a literal.
fn is_ref_term(term: &str) -> bool {
    let first = term.chars().next().unwrap_or(' ');
    (first.is_ascii_alphabetic() || first == '_') && (term.contains('.') || term.contains('['))
}

/// `name[REF]` / `name contains REF` with no body -> the reference evaluated in a body.
fn ref_headed_sets(text: &str, v0: bool) -> String {
    static V0: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    static V1: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let v0_re =
        V0.get_or_init(|| regex::Regex::new(r"^([A-Za-z_][A-Za-z0-9_]*)\[(.+)\]\s*(#.*)?$").expect("valid regex"));
    let v1_re = V1.get_or_init(|| {
        regex::Regex::new(r"^([A-Za-z_][A-Za-z0-9_]*)\s+contains\s+(\S.*?)\s*(#.*)?$").expect("valid regex")
    });
    let mut out = String::with_capacity(text.len());
    let mut counter = 0;
    let code = code_only(text);
    let mut depth = 0i32;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let at_top = depth == 0;
        for &b in &code[offset..offset + line.len()] {
            match b {
                b'[' | b'{' | b'(' => depth += 1,
                b']' | b'}' | b')' => depth -= 1,
                _ => {}
            }
        }
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let cap = if !at_top {
            None
        } else if v0 {
            v0_re.captures(body)
        } else {
            v1_re.captures(body)
        };
        // A body on the next line (`p contains x.y` then `if { … }`) makes it no body-less head
        // (found by the rego_rewrite fuzz target).
        let next = code[offset..].iter().position(|b| !b.is_ascii_whitespace()).map_or(code.len(), |i| offset + i);
        let body_follows = code.get(next) == Some(&b'{') || is_keyword_at(&code, next.min(code.len()), b"if");
        let rewritten = cap.filter(|_| !body_follows).and_then(|cap| {
            let term = cap[2].trim();
            let code = code_only(term);
            let balanced = split_balanced(&code);
            (is_ref_term(term) && balanced && !term.contains(" if") && !term.ends_with('{')).then(|| {
                let var = format!("__grh{counter}");
                counter += 1;
                if v0 {
                    format!("{}[{var}] {{ {var} := {term} }}", &cap[1])
                } else {
                    format!("{} contains {var} if {{ {var} := {term} }}", &cap[1])
                }
            })
        });
        match rewritten {
            Some(r) => {
                out.push_str(&r);
                out.push_str(&line[body.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Whether brackets balance and no `{`/`=`/`:` appears at the top level (a plain term).
fn split_balanced(code: &[u8]) -> bool {
    let mut depth = 0i32;
    for &b in code {
        match b {
            b'[' | b'(' => depth += 1,
            b']' | b')' => depth -= 1,
            b'{' | b'}' | b'=' | b':' | b'|' | b' ' if depth == 0 => return false,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// `some x in E` -> `some x in __gr_iterable(E)`, with `__gr_iterable` appended to the module.
fn some_in_iterable(text: &str, v0: bool) -> String {
    let code = code_only(text);
    let raw_strings = multiline_raw_strings(text);
    let mut spans = Vec::new();
    for at in word_positions(&code, "some") {
        let mut i = at + "some".len();
        let mut found_in = None;
        let mut names = 0;
        while let Some((name, end)) = ident_at(&code, i) {
            // `some in, x` declares `in` where it is a name (v0); `some in` with nothing before
            // `in` is no `some … in` (found by the rego_rewrite fuzz target).
            if name == "in" && names > 0 {
                found_in = Some(end);
                break;
            }
            names += 1;
            i = end;
            while i < code.len() && (code[i] == b' ' || code[i] == b'\t' || code[i] == b',') {
                i += 1;
            }
        }
        let Some(mut start) = found_in else { continue };
        while start < code.len() && (code[start] == b' ' || code[start] == b'\t') {
            start += 1;
        }
        let mut depth = 0i32;
        let mut end = start;
        // A new literal follows on the line where the collection ends (see below): the call's `)`
        // would put it on the line of a token, so a `;` keeps it apart.
        let mut separate = false;
        while end < code.len() {
            if depth == 0 {
                if let Ok(k) = raw_strings.binary_search_by_key(&end, |r| r.0) {
                    let after = raw_strings[k].1;
                    end = after;
                    if !goes_on_after_multiline_token(&code, after) {
                        separate = true;
                        break;
                    }
                    continue;
                }
            }
            match code[end] {
                // A `{` right after a complete operand is no part of it: a body follows (`m if some c
                // in x {…}`, which regorus reads as a second body; found by the rego_rewrite fuzz target).
                b'{' if depth == 0 && ends_an_operand(&code[start..end]) => break,
                b'[' | b'{' | b'(' => depth += 1,
                b']' | b'}' | b')' if depth == 0 => break,
                b']' | b'}' | b')' => depth -= 1,
                // A line that ends in a binary operator goes on on the next (found by the
                // rego_rewrite fuzz target: `"abc" -` then `c` on the next line).
                // So does one whose next line starts with one (regorus reads `"b" - c` then
                // `in c` as one expression; found by the rego_rewrite fuzz target).
                // A collection does not start with one (`some in` then `in` in v0, where `in` is a
                // name: found by the rego_rewrite fuzz target).
                b'\n'
                    if depth == 0
                        && (ends_in_operator(&code[start..end])
                            || (code[start..end].iter().any(|b| !b.is_ascii_whitespace())
                                && starts_with_operator(&code[end..]))) => {}
                // `|` is set union here: a comprehension's `|` comes before its `some`.
                b'\n' | b';' if depth == 0 => break,
                // After a complete operand and a space, a name other than `in` starts what comes
                // next (`m if some c in t m if …`: regorus reads a second rule on the line; found by
                // the rego_rewrite fuzz target).
                b'a'..=b'z' | b'A'..=b'Z' | b'_'
                    if depth == 0
                        && end > start
                        && code[end - 1].is_ascii_whitespace()
                        && !is_keyword_at(&code, end, b"in")
                        && ends_an_operand(&code[start..end]) =>
                {
                    break
                }
                // `with` modifies the whole literal, not the collection (`some c in x with input as y`).
                b'w' if depth == 0 && is_keyword_at(&code, end, b"with") => break,
                _ => {}
            }
            end += 1;
        }
        while end > start && code[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        if end > start {
            spans.push((start, end, separate));
        }
    }
    if spans.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 200);
    let mut last = 0;
    for (start, end, separate) in spans {
        // A `some … in` inside an earlier one's collection (or inside an unterminated string, which
        // runs to the end): the outer rewrite covers its text already (found by the rego_rewrite
        // fuzz target: the overlapping slice panicked).
        if start < last {
            continue;
        }
        out.push_str(&text[last..start]);
        // `in-x`: `in` and the collection with nothing between them (found by the rego_rewrite
        // fuzz target: `in__gr_iterable(` read as one name).
        if out.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            out.push(' ');
        }
        out.push_str("__gr_iterable(");
        out.push_str(&text[start..end]);
        out.push(')');
        if separate {
            out.push(';');
        }
        last = end;
    }
    out.push_str(&text[last..]);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    let if_kw = if v0 { "" } else { " if" };
    for test in ["is_array", "is_set", "is_object"] {
        out.push_str(&format!("\n__gr_iterable(c) = c{if_kw} {{ {test}(c) }}"));
    }
    out.push('\n');
    out
}

/// Whether the keyword `word` starts at `at` (not a field such as `x.with`, nor part of a name).
fn is_keyword_at(code: &[u8], at: usize, word: &[u8]) -> bool {
    code[at..].starts_with(word)
        && !code.get(at + word.len()).is_some_and(|b| is_ident_byte(*b))
        && !at.checked_sub(1).and_then(|i| code.get(i)).is_some_and(|b| is_ident_byte(*b) || *b == b'.')
}

/// Whether the code ends (white space aside) in a complete operand: a name, a number, a string or a
/// closing bracket, after which no `{` can go on with the expression.
fn ends_an_operand(code: &[u8]) -> bool {
    code.iter()
        .rev()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| is_ident_byte(*b) || matches!(b, b'\'' | b')' | b']' | b'}'))
        && !ends_in_operator(code)
}

/// The raw strings that span lines, as (start, end after the closing backtick), in order.
fn multiline_raw_strings(text: &str) -> Vec<(usize, usize)> {
    let src = text.as_bytes();
    let scan = Scan { src };
    let mut spans = Vec::new();
    let mut i = 0;
    while i < src.len() {
        match scan.skip_non_code(i) {
            Some(j) => {
                if src[i] == b'`' && src[i..j].contains(&b'\n') {
                    spans.push((i, j));
                }
                i = j;
            }
            None => i += 1,
        }
    }
    spans
}

/// Whether an expression goes on after a token that spans lines. regorus places a token at the line
/// it starts on, so whatever follows on its last line is on a new line, a new literal, unless it is
/// a binary operator (or `in`) or `with` (found by the rego_rewrite fuzz target: a raw string over three
/// lines, then `"c"------i`, a literal of its own).
fn goes_on_after_multiline_token(code: &[u8], after: usize) -> bool {
    let next = code[after..].iter().position(|b| *b != b' ' && *b != b'\t').map_or(code.len(), |i| after + i);
    match code.get(next) {
        // The line break decides, as after any token; what closes or separates ends the collection
        // where the loop ends it.
        None | Some(b'\n' | b']' | b'}' | b')' | b';' | b',') => true,
        Some(b'w') if is_keyword_at(code, next, b"with") => true,
        // A string is no ref: an attached `[0]` is a new literal too.
        Some(_) => starts_with_operator(&code[next..]),
    }
}

/// Whether the code ends (white space aside) in a binary operator or the keyword `in`, so that
/// the expression goes on after the line break.
fn ends_in_operator(code: &[u8]) -> bool {
    // Blank lines between the operator and the rest do not end the expression either.
    let end = code.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    let code = &code[..end];
    // `x.in` and `min` are names, not the keyword (found by the rego_rewrite fuzz target: `… - c`
    // then a line `in` then `imc`).
    let keyword_in = end >= 2 && is_keyword_at(code, end - 2, b"in");
    keyword_in
        || matches!(code.last(), Some(b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|' | b'=' | b'<' | b'>' | b'!'))
}

/// Whether the next code (line breaks and blank lines aside) starts with a binary operator or the
/// keyword `in`, which regorus reads as going on with the expression before.
fn starts_with_operator(code: &[u8]) -> bool {
    let Some(at) = code.iter().position(|b| !b.is_ascii_whitespace()) else { return false };
    let rest = &code[at..];
    matches!(rest[0], b'+' | b'-' | b'*' | b'/' | b'%' | b'&' | b'|' | b'=' | b'<' | b'>' | b'!' | b':')
        || is_keyword_at(rest, 0, b"in")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn some_in_goes_through_iterable() {
        let src = "package x\np contains c if {\n\tsome c in input.name\n\tq := [y | some y in input.list]\n}\n";
        let out = rewrite(src, false);
        assert!(out.contains("some c in __gr_iterable(input.name)\n"), "{out}");
        assert!(out.contains("in __gr_iterable(input.list)]"), "{out}");
        assert!(out.contains("__gr_iterable(c) = c if { is_set(c) }"), "{out}");
        assert!(rewrite("package x\np { some i; input.a[i] }\n", true).ends_with("input.a[i] }\n"));
        let continued = rewrite("package x\np contains c if { some c in input.a -\n  input.b }\n", false);
        assert!(continued.contains("some c in __gr_iterable(input.a -\n  input.b) }"), "{continued}");
        let blank = rewrite("package x\np contains c if { some c in input.a -\n\n\n  input.b }\n", false);
        assert!(blank.contains("some c in __gr_iterable(input.a -\n\n\n  input.b) }"), "{blank}");
        let next_line = rewrite("package x\np contains c if { some c in input.a\n  in input.b\n  c == 1 }\n", false);
        assert!(next_line.contains("some c in __gr_iterable(input.a\n  in input.b)\n  c == 1 }"), "{next_line}");
        let glued = rewrite("package x\np contains c if { some c in-x }\n", false);
        assert!(glued.contains("some c in __gr_iterable(-x) }"), "{glued}");
    }

    #[test]
    fn ref_heads_move_into_bodies() {
        assert_eq!(
            rewrite("package x\nvolumes[pod.spec.volumes[_]]\n", true),
            "package x\nvolumes[__grh0] { __grh0 := pod.spec.volumes[_] }\n"
        );
        assert_eq!(
            rewrite("package x\nvolumes contains input.spec.volumes[_] # all\n", false),
            "package x\nvolumes contains __grh0 if { __grh0 := input.spec.volumes[_] }\n"
        );
        let untouched = "package x\nnames[n] { n := 1 }\nnames contains \"a\"\ndeny[msg] {\ncs[c.name]\n}\n";
        assert_eq!(rewrite(untouched, true), untouched);
    }

    #[test]
    fn some_only_comprehensions_use_is_dropped() {
        let src = "p {\n\tsome i\n\ta := [x | x := in[i]]\n\tb := {y | some i; y := in[i]}\n}\n";
        let out = drop_unused_some(src);
        assert!(out.starts_with("p {\n\ttrue\n"), "{out}");
        let used = "p {\n\tsome i\n\tin[i] == 1\n\ta := [x | x := in[i]]\n}\n";
        assert_eq!(drop_unused_some(used), used);
    }

    #[test]
    fn self_keyed_unification_iterates() {
        let body = |line: &str| format!("p {{\n{line}\n}}\n");
        assert_eq!(
            rewrite(&body("  container = containers[container]"), true),
            body("  containers[container] == container")
        );
        assert_eq!(rewrite(&body("  x = ys[y]"), true), body("  x = ys[y]"));
        // At the top level it is a rule whose value is `s[p]`.
        assert_eq!(rewrite("p = s[p]\n", true), "p = s[p]\n");
    }

    #[test]
    fn comprehension_locals_are_renamed() {
        let src = "  some c in cs\n  n := [c | some c in ds; c.x]\n  m := {k: v | some k, v in o}\n";
        let out = rename_comprehension_locals(src);
        assert!(out.contains("[__grc0_c | some __grc0_c in ds; __grc0_c.x]"), "{out}");
        assert!(out.starts_with("  some c in cs\n"), "{out}");
        assert!(out.contains("{__grc1_k: __grc2_v | some __grc1_k, __grc2_v in o}"), "{out}");
        let plain = "  n := [c.name | c := cs[_]]\n";
        assert_eq!(rename_comprehension_locals(plain), plain);
        // conftest's examples/combine: the first `name` is the enclosing one, the rest are new.
        let src = "  o := [name | some i; in[i].n == name; name := in[i].m]\n";
        let out = rename_comprehension_locals(src);
        assert!(
            out.contains("[__grc1_name | some __grc0_i; in[__grc0_i].n == name; __grc1_name := in[__grc0_i].m]"),
            "{out}"
        );
    }
}
