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
//!
//! Only the first element is read twice (`[[[[x]]]]` doubles per level, `[1, [1, [1, x]]]` does
//! not), and a parse that fails pays far more per attempt: the fuzz target found lines of under
//! 1 KB of unclosed brackets, each in the first element of the one before, that took 3-5 s (8.5 s
//! to parse one in a debug build), and with 8 such levels still 1.6-2 s. So a second bound counts
//! only brackets opened in the first element of every bracket around them (`MAX_FIRST_NESTING`),
//! and a third the characters read again because of it (`MAX_REREADS`: a character inside k such
//! brackets is read 2^k times). Measured on gatekeeper-library and the built-in pack: policies
//! reach 2 such levels and 1,277 re-reads; test files 5 levels and 33,713 re-reads, but for one
//! (uniqueserviceselector's data literal, 11 levels).

/// Deepest nesting of `[` and `{` accepted.
pub const MAX_NESTING: usize = 13;

/// Deepest nesting accepted of brackets each opened in the first element of the one around it.
pub const MAX_FIRST_NESTING: usize = 6;

/// Most characters the parser may read again because they sit in first elements.
pub const MAX_REREADS: u64 = 250_000;

/// Which bound a text crosses.
#[derive(Debug, PartialEq)]
pub enum Over {
    Nesting,
    FirstNesting,
    Rereads,
}

/// The 1-based line and column where the text crosses one of the bounds above, and which,
/// skipping comments and strings (quoted and raw); their characters count as re-read.
pub fn too_deep(text: &str) -> Option<(usize, usize, Over)> {
    let (mut line, mut col) = (1usize, 0usize);
    // One entry per open bracket: whether what follows is still its first element (and is read
    // twice). A rule's body (`{` at the top after a name, `]`, `)`, a value or `}`) and a call's
    // or group's `(` are read once; they are entries so that their commas stay theirs.
    let mut open: Vec<(bool, char)> = Vec::new();
    let (mut depth, mut first, mut rereads) = (0usize, 0usize, 0u64);
    let mut prev = ' ';
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
        if state != In::Comment && !c.is_whitespace() {
            rereads += (1u64 << first) - 1;
            if rereads > MAX_REREADS {
                return Some((line, col, Over::Rereads));
            }
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
            In::Code => {
                match c {
                    '#' => state = In::Comment,
                    '"' => state = In::Quoted,
                    '`' => state = In::Raw,
                    '[' | '{' | '(' => {
                        let body = c == '{'
                            && open.is_empty()
                            && (prev.is_alphanumeric() || matches!(prev, '_' | ']' | ')' | '"' | '`' | '}'));
                        let twice = c != '(' && !body;
                        open.push((twice, c));
                        first += usize::from(twice);
                        depth += usize::from(c != '(');
                        if depth > MAX_NESTING {
                            return Some((line, col, Over::Nesting));
                        }
                        if first > MAX_FIRST_NESTING {
                            return Some((line, col, Over::FirstNesting));
                        }
                    }
                    ']' | '}' | ')' => {
                        if let Some((twice, opener)) = open.pop() {
                            first -= usize::from(twice);
                            depth -= usize::from(opener != '(');
                        }
                    }
                    ',' | '|' => {
                        if let Some((twice @ true, _)) = open.last_mut() {
                            *twice = false;
                            first -= 1;
                        }
                    }
                    _ => {}
                }
                if !c.is_whitespace() {
                    prev = c;
                }
            }
        }
    }
    None
}

/// A NUL character, a huge exponent or `too_deep`, as the error regorus would give (`--> name:line:col`), so that
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
    let Some((line, column, over)) = too_deep(text) else { return Ok(()) };
    let what = match over {
        Over::Nesting => format!("brackets nested more than {MAX_NESTING} deep"),
        Over::FirstNesting => format!(
            "brackets nested more than {MAX_FIRST_NESTING} deep each in the first element of the one around it"
        ),
        Over::Rereads => format!(
            "more than {MAX_REREADS} characters that the parser reads again (each bracket it sits in the first element of doubles a character's reads)"
        ),
    };
    Err(format!(
        "--> {name}:{line}:{column}\nerror: {what} (guardrail's limit: the Rego parser's time grows exponentially with nesting)"
    ))
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
        // Each bracket after a comma: read once, so only the nesting bound applies.
        let deep = format!("x := {}1{}", "[1, ".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert_eq!(too_deep(&deep), None);
        let deeper = format!("p {{\n  x := {}1\n}}", "[1, ".repeat(MAX_NESTING));
        // The rule's `{` is level 1, so the last `[` (after `  x := `, 7 columns) crosses the bound.
        assert_eq!(too_deep(&deeper), Some((2, 8 + 4 * (MAX_NESTING - 1), Over::Nesting)));
        let hidden = format!("# {}\nx := \"{}\\\"[\"\ny := `{}`", "[".repeat(40), "{".repeat(40), "[".repeat(40));
        assert_eq!(too_deep(&hidden), None);
    }

    #[test]
    fn only_first_elements_count_as_read_twice() {
        let first = |n: usize| format!("x := {}1{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(too_deep(&first(MAX_FIRST_NESTING)), None);
        assert_eq!(too_deep(&first(MAX_FIRST_NESTING + 1)), Some((1, 6 + MAX_FIRST_NESTING, Over::FirstNesting)));
        // Objects: the first key and value; a comma or a comprehension's `|` ends the first element.
        let objects =
            format!("x := {}1{}", "{\"a\": ".repeat(MAX_FIRST_NESTING + 1), "}".repeat(MAX_FIRST_NESTING + 1));
        assert!(matches!(too_deep(&objects), Some((1, _, Over::FirstNesting))));
        let comprehensions = format!("x := {}1{}", "[y | y := [".repeat(6), "]]".repeat(6));
        assert_eq!(too_deep(&comprehensions), None);
        // A call's commas are its own: what follows is still the bracket's first element.
        let in_call = format!("x := {}f(1, 2){}", "[".repeat(MAX_FIRST_NESTING + 1), "]".repeat(MAX_FIRST_NESTING + 1));
        assert!(matches!(too_deep(&in_call), Some((1, _, Over::FirstNesting))));
        // A rule body is read once: `p { [[…]] }` and `f(x) { … }` do not spend a level.
        let body = format!("p {{ x := {}1{} }}", "[".repeat(MAX_FIRST_NESTING), "]".repeat(MAX_FIRST_NESTING));
        assert_eq!(too_deep(&body), None);
        // Unclosed brackets (what the fuzz target found) count the same.
        assert!(matches!(
            too_deep(&format!("r contains m if {{ {}", "[".repeat(12))),
            Some((1, _, Over::FirstNesting))
        ));
    }

    #[test]
    fn characters_in_first_elements_count_their_rereads() {
        // 2^6 - 1 = 63 re-reads per character: a long first element six levels down is refused
        // where the count crosses the bound, the same text after commas is not.
        let long = "a + ".repeat(20_000);
        let first = format!("x := {}{long}1{}", "[".repeat(6), "]".repeat(6));
        assert!(matches!(too_deep(&first), Some((1, _, Over::Rereads))));
        let last = format!("x := {}{long}1{}", "[1, ".repeat(6), "]".repeat(6));
        assert_eq!(too_deep(&last), None);
    }
}
