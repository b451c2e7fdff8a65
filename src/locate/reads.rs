//! The field paths a policy's source reads (`container.securityContext.capabilities.drop`,
//! `input.spec.replicas`, `has(c.securityContext.runAsNonRoot)`), taken from its text. They name
//! the fields a violation may be about when the field is missing, so the locate search can try
//! inserting them; a path that is not a field costs an evaluation and is never reported.

use std::sync::OnceLock;

use regex::Regex;

/// Roots that are not fields of the evaluated object.
const NOT_FIELDS: &[&str] = &["parameters", "params", "data", "inventory", "oldObject", "userInfo", "request"];

/// Every chain of two or more dotted or quoted names in `source`, with the Gatekeeper prefix
/// (`input.review.object.`) and the leading variable removed; a subscript (`[_]`, `[i]`) ends a chain.
pub fn field_paths(source: &str) -> Vec<Vec<String>> {
    static CHAIN: OnceLock<Regex> = OnceLock::new();
    let chain = CHAIN.get_or_init(|| {
        Regex::new(r#"[A-Za-z_][A-Za-z0-9_]*((?:\.[A-Za-z_][A-Za-z0-9_]*|\["[^"\]]+"\])+)(\s*\()?"#)
            .expect("valid regex")
    });
    static PART: OnceLock<Regex> = OnceLock::new();
    let part = PART.get_or_init(|| Regex::new(r#"\.([A-Za-z_][A-Za-z0-9_]*)|\["([^"\]]+)"\]"#).expect("valid regex"));
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in chain.captures_iter(source) {
        let mut tokens: Vec<String> = part
            .captures_iter(&m[1])
            .filter_map(|c| c.get(1).or_else(|| c.get(2)).map(|x| x.as_str().to_string()))
            .collect();
        // `c.securityContext.all(` / `object.spec.containers.exists(`: the last name is a function.
        if m.get(2).is_some() {
            tokens.pop();
        }
        while tokens.first().is_some_and(|t| t == "review" || t == "object") {
            tokens.remove(0);
        }
        if tokens.is_empty() || tokens.first().is_some_and(|t| NOT_FIELDS.contains(&t.as_str())) {
            continue;
        }
        if !out.contains(&tokens) {
            out.push(tokens);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_of_rego_and_cel() {
        let rego = r#"violation[{"msg": msg}] {
  c := input.review.object.spec.containers[_]
  not c.securityContext.capabilities.drop
  input.parameters.labels[_]
  x := c.resources["limits"].memory
}"#;
        let got = field_paths(rego);
        assert!(got.contains(&vec!["spec".to_string(), "containers".to_string()]), "{got:?}");
        assert!(got.contains(&["securityContext", "capabilities", "drop"].map(String::from).to_vec()), "{got:?}");
        assert!(got.contains(&["resources", "limits", "memory"].map(String::from).to_vec()), "{got:?}");
        assert!(!got.iter().any(|c| c[0] == "parameters"), "{got:?}");
        let cel = "object.spec.containers.all(c, has(c.securityContext.runAsNonRoot))";
        let got = field_paths(cel);
        assert_eq!(
            got,
            vec![vec!["spec".to_string(), "containers".into()], vec!["securityContext".into(), "runAsNonRoot".into()]]
        );
    }
}
