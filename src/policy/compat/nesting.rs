//! What guardrail checks of a Rego text before regorus sees it.
//!
//! No NUL character: regorus's lexer reads one as the end of the file, so whatever follows it
//! would be dropped without a word (OPA rejects the file). Found by the `rego_rewrite` fuzz target.
//!
//! A bound on bracket nesting: regorus's parser reads what follows a `[` or `{` once as a
//! comprehension's term and, when no `|` follows, again as a collection, so its time doubles with
//! each level (found by the `rego_rewrite` fuzz target: a 2.8 KB policy stalled a worker). Measured
//! in the fuzz build, one parse of `x := {"a": {"a": … 1}}`: 16 levels 2.7 s, 13 levels 0.3 s, 12
//! levels 0.15 s. Real policies nest 13 at most (across gatekeeper-library and the built-in pack, in
//! a test file), so a policy deeper than that is refused at the bracket that crosses the bound.

/// Deepest nesting of `[` and `{` accepted.
pub const MAX_NESTING: usize = 13;

/// The 1-based line and column of the first bracket nested deeper than `MAX_NESTING`, skipping
/// comments and strings (quoted and raw).
pub fn too_deep(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut col) = (0usize, 1usize, 0usize);
    let mut chars = text.chars();
    // What the scanner is inside of.
    #[derive(PartialEq)]
    enum In {
        Code,
        Comment,
        Quoted,
        Raw,
    }
    let mut state = In::Code;
    while let Some(c) = chars.next() {
        col += 1;
        if c == '\n' {
            (line, col) = (line + 1, 0);
            if state == In::Comment {
                state = In::Code;
            }
            continue;
        }
        match state {
            In::Comment => {}
            In::Quoted => match c {
                // An escape: the next character is part of the string, whatever it is.
                '\\' => col += usize::from(chars.next().is_some()),
                '"' => state = In::Code,
                _ => {}
            },
            In::Raw => {
                if c == '`' {
                    state = In::Code;
                }
            }
            In::Code => match c {
                '#' => state = In::Comment,
                '"' => state = In::Quoted,
                '`' => state = In::Raw,
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Some((line, col));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    None
}

/// A NUL character or `too_deep`, as the error regorus would give (`--> name:line:col`), so that
/// a template's error is moved into its YAML file like any other.
pub fn check_source(name: &str, text: &str) -> Result<(), String> {
    let at = |byte: usize| {
        let before = &text[..byte];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("--> {name}:{line}:{column}")
    };
    if let Some(byte) = text.find('\0') {
        return Err(format!(
            "{}\nerror: a NUL character (the Rego parser would read it as the end of the file and ignore the rest)",
            at(byte)
        ));
    }
    if let Some(byte) = huge_exponent(text) {
        return Err(format!(
            "{}\nerror: a number with an exponent beyond {MAX_EXPONENT} (guardrail's limit: the Rego parser's time grows with the exponent, 0e11111111 takes seconds)",
            at(byte)
        ));
    }
    match too_deep(text) {
        None => Ok(()),
        Some((line, column)) => Err(format!(
            "--> {name}:{line}:{column}\nerror: brackets nested more than {MAX_NESTING} deep (guardrail's limit: the Rego parser's time grows exponentially with nesting)"
        )),
    }
}

/// Largest exponent a number literal may have: regorus's parser works out the number's digits, so
/// its time grows with the exponent (found by the `rego_rewrite` fuzz target: `0e11111111` took
/// 20 s). A float64 ends at e308.
pub const MAX_EXPONENT: u64 = 400;

/// The byte offset of the first number literal in code (not in a comment or a string) whose
/// exponent is beyond `MAX_EXPONENT`.
fn huge_exponent(text: &str) -> Option<usize> {
    let code = super::vm::code_only(text);
    let mut i = 0;
    while i < code.len() {
        let starts_number =
            code[i].is_ascii_digit() && (i == 0 || !(code[i - 1].is_ascii_alphanumeric() || code[i - 1] == b'_'));
        if !starts_number {
            i += 1;
            continue;
        }
        let start = i;
        while i < code.len() && (code[i].is_ascii_digit() || code[i] == b'.') {
            i += 1;
        }
        if i < code.len() && matches!(code[i], b'e' | b'E') {
            let mut j = i + 1;
            if j < code.len() && matches!(code[j], b'+' | b'-') {
                j += 1;
            }
            let digits = code[j..].iter().take_while(|b| b.is_ascii_digit()).count();
            let exponent =
                code[j..j + digits].iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')));
            if digits > 0 && exponent.is_none_or(|e| e > MAX_EXPONENT) {
                return Some(start);
            }
            i = j + digits;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_with_a_huge_exponent_is_refused_where_it_starts() {
        let err = check_source("p.rego", "package p\nx := [1, 0e11111111]\n").unwrap_err();
        assert!(err.starts_with("--> p.rego:2:10\n") && err.contains("exponent"), "{err}");
        assert!(check_source("p.rego", "package p\nx := 1.5e-99999999999999999999999\n").is_err());
        for fine in
            ["x := 1e308", "x := 2.5E-7", "x := \"0e11111111\"", "# 0e11111111", "e11111111 := 1", "x := a1e99999"]
        {
            assert!(check_source("p.rego", &format!("package p\n{fine}\n")).is_ok(), "{fine}");
        }
    }

    #[test]
    fn a_nul_character_is_refused_where_it_is() {
        let err = check_source("p.rego", "package p\n\ndeny[m] {\0 m := 1 }\n").unwrap_err();
        assert!(err.starts_with("--> p.rego:3:10\n"), "{err}");
        assert!(check_source("p.rego", "package p\n# \\0 is fine in a comment's text\n").is_ok());
    }

    #[test]
    fn counts_code_brackets_only() {
        let deep = format!("x := {}1{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert_eq!(too_deep(&deep), None);
        let deeper = format!("p {{\n  x := {}1\n}}", "[".repeat(MAX_NESTING));
        // The rule's `{` is level 1, so the last `[` (after `  x := `, 7 columns) crosses the bound.
        assert_eq!(too_deep(&deeper), Some((2, 7 + MAX_NESTING)));
        let hidden = format!("# {}\nx := \"{}\\\"[\"\ny := `{}`", "[".repeat(40), "{".repeat(40), "[".repeat(40));
        assert_eq!(too_deep(&hidden), None);
    }
}
