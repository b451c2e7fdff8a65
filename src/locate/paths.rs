//! Missing-field paths as findings name them (`capabilities.drop`, `labels["app.kubernetes.io/owner"]`)
//! and back to their names, so that a finding's message and its pointer say the same thing.

use serde_json::Value;

/// `labels.team` / `annotations["a8r.io/owner"]`: a name with a dot in it (a label key) is quoted.
pub fn missing_path(tokens: &[String]) -> String {
    let mut out = String::new();
    for t in tokens {
        if t.contains('.') || t.contains('[') {
            out.push_str(&format!("[{}]", Value::String(t.clone())));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(t);
        }
    }
    out
}

/// The names of a `missing_path`.
pub(super) fn missing_tokens(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('[') {
            let mut stream = serde_json::Deserializer::from_str(quoted).into_iter::<String>();
            match stream.next() {
                Some(Ok(name)) => {
                    out.push(name);
                    rest = quoted[stream.byte_offset()..].strip_prefix(']').unwrap_or("");
                }
                _ => {
                    out.push(quoted.to_string());
                    break;
                }
            }
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end > 0 {
                out.push(rest[..end].to_string());
            }
            rest = &rest[end..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locate::Located;

    #[test]
    fn missing_paths_quote_names_with_dots() {
        let tokens: Vec<String> = ["labels", "app.kubernetes.io/owner", "x"].map(String::from).to_vec();
        let path = missing_path(&tokens);
        assert_eq!(path, r#"labels["app.kubernetes.io/owner"].x"#);
        assert_eq!(missing_tokens(&path), tokens);
        assert_eq!(missing_tokens("capabilities.drop"), ["capabilities", "drop"]);
        assert_eq!(Located::field_pointer("/metadata", Some(&path)), "/metadata/labels/app.kubernetes.io~1owner/x");
    }
}
