//! A string that a constraint's regular expression accepts (`^[a-zA-Z]+.agilebank.demo$` ->
//! `a.agilebank.demo`), so the locate search can reset a label value or insert a missing label with
//! a value the policy allows. Only the common subset is written out; anything else gives `None`,
//! and every sample is checked against the real expression before it is used.

use regex::Regex;

/// A sample the expression matches, if one can be written out. Strings that are not regular
/// expressions (no metacharacter) give `None`: they are tried as values on their own.
pub fn matching(pattern: &str) -> Option<String> {
    if pattern.len() > 256 || !pattern.chars().any(|c| "^$[]()*+?{}|\\".contains(c)) {
        return None;
    }
    let compiled = Regex::new(pattern).ok()?;
    let chars: Vec<char> = pattern.chars().collect();
    let mut at = 0;
    let out = alternatives(&chars, &mut at)?;
    (at == chars.len() && compiled.is_match(&out)).then_some(out)
}

/// The first branch of `a|b|c` (up to a closing `)` or the end).
fn alternatives(p: &[char], at: &mut usize) -> Option<String> {
    let first = sequence(p, at)?;
    while *at < p.len() && p[*at] == '|' {
        *at += 1;
        sequence(p, at)?;
    }
    Some(first)
}

fn sequence(p: &[char], at: &mut usize) -> Option<String> {
    let mut out = String::new();
    while *at < p.len() && p[*at] != '|' && p[*at] != ')' {
        let piece = atom(p, at)?;
        let times = quantifier(p, at)?;
        out.push_str(&piece.repeat(times));
    }
    Some(out)
}

/// One atom as text ("" for an anchor).
fn atom(p: &[char], at: &mut usize) -> Option<String> {
    let c = p[*at];
    *at += 1;
    Some(match c {
        '^' | '$' => String::new(),
        // Any character: a dot reads as the author meant it (`a.agilebank.demo`).
        '.' => ".".into(),
        '\\' => {
            let e = *p.get(*at)?;
            *at += 1;
            match e {
                'd' => "0".into(),
                'w' => "a".into(),
                's' => " ".into(),
                'b' | 'B' | 'A' | 'z' => String::new(),
                c if c.is_ascii_alphanumeric() => return None,
                c => c.to_string(),
            }
        }
        '[' => class(p, at)?.to_string(),
        '(' => {
            // `(?:` and `(?i)` groups: the flags are skipped.
            if p.get(*at) == Some(&'?') {
                while *at < p.len() && p[*at] != ':' && p[*at] != ')' {
                    *at += 1;
                }
                if p.get(*at) == Some(&')') {
                    *at += 1;
                    return Some(String::new());
                }
                *at += 1;
            }
            let inner = alternatives(p, at)?;
            if p.get(*at) != Some(&')') {
                return None;
            }
            *at += 1;
            inner
        }
        '*' | '+' | '?' | '{' | ')' | '|' => return None,
        c => c.to_string(),
    })
}

/// The first character a class accepts (`[a-z0-9-]` -> `a`); negated classes give `None`.
fn class(p: &[char], at: &mut usize) -> Option<char> {
    if p.get(*at) == Some(&'^') {
        return None;
    }
    let mut first = None;
    let mut i = *at;
    while i < p.len() {
        let c = p[i];
        if c == ']' && i > *at {
            *at = i + 1;
            return first;
        }
        let c = if c == '\\' {
            i += 1;
            match p.get(i)? {
                'd' => '0',
                'w' => 'a',
                c if c.is_ascii_alphanumeric() => return None,
                c => *c,
            }
        } else {
            c
        };
        first.get_or_insert(c);
        i += 1;
    }
    None
}

/// How many times to repeat the atom before it: the least its quantifier allows (one for `+`).
fn quantifier(p: &[char], at: &mut usize) -> Option<usize> {
    let times = match p.get(*at) {
        Some('*') | Some('?') => 0,
        Some('+') => 1,
        Some('{') => {
            let end = p[*at..].iter().position(|c| *c == '}')? + *at;
            let inside: String = p[*at + 1..end].iter().collect();
            let n = inside.split(',').next()?.trim().parse::<usize>().ok()?;
            *at = end;
            n.min(64)
        }
        _ => return Some(1),
    };
    *at += 1;
    // A lazy or possessive mark after the quantifier.
    if matches!(p.get(*at), Some('?') | Some('+')) {
        *at += 1;
    }
    Some(times)
}

#[cfg(test)]
mod tests {
    use super::matching;

    #[test]
    fn samples_match_their_expressions() {
        for p in [
            "^[a-zA-Z]+.agilebank.demo$",
            r"^team-[a-z0-9]{3,8}$",
            r"^(dev|prod)-\d+$",
            r"^[\w.-]+@corp\.example$",
            r"(?i)^owner-[0-9]*x?$",
            r"^v\d+\.\d+\.\d+$",
        ] {
            let s = matching(p).unwrap_or_else(|| panic!("{p}"));
            assert!(regex::Regex::new(p).unwrap().is_match(&s), "{p} -> {s}");
        }
        assert_eq!(matching("^[a-zA-Z]+.agilebank.demo$").as_deref(), Some("a.agilebank.demo"));
        // Not an expression, or one whose sample is not written out.
        assert_eq!(matching("owner"), None);
        assert_eq!(matching("^[^a-z]+$"), None);
    }
}
