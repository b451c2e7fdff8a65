//! conftest's own builtins (`parse_config`, `parse_config_file`, `parse_combined_config_files`)
//! and the OPA builtins regorus lacks, as conftest treats them: undefined, or with
//! `--show-builtin-errors` an error. Files named by `parse_config_file` and
//! `parse_combined_config_files` are read beside the policy that names them, as conftest reads them:
//! the calls are rewritten to carry that folder.

use super::vm::code_only;

/// OPA builtins (name, arity) that regorus 0.14 does not have.
const MISSING: &[(&str, u8)] = &[
    ("net.lookup_ip_addr", 1),
    ("net.cidr_merge", 1),
    ("rego.metadata.rule", 0),
    ("rego.metadata.chain", 0),
    ("rego.parse_module", 2),
    ("crypto.x509.parse_certificates", 1),
    ("crypto.x509.parse_and_verify_certificates", 1),
    ("crypto.x509.parse_and_verify_certificates_with_options", 2),
    ("crypto.x509.parse_certificate_request", 1),
    ("crypto.x509.parse_rsa_private_key", 1),
    ("crypto.x509.parse_keypair", 2),
    ("crypto.parse_private_keys", 1),
    ("providers.aws.sign_req", 3),
    ("strings.render_template", 2),
    ("graphql.parse", 2),
    ("graphql.parse_and_verify", 2),
    ("graphql.parse_query", 1),
    ("graphql.parse_schema", 1),
    ("graphql.is_valid", 2),
    ("graphql.schema_is_valid", 1),
];

/// `parse_config_file(p)` -> `__gr_parse_config_file("<folder of file>", p)`, and the same for
/// `parse_combined_config_files`.
pub fn conftest_file_paths(file: &str, text: &str) -> String {
    let calls = ["parse_config_file(", "parse_combined_config_files("];
    if !calls.iter().any(|c| text.contains(c)) {
        return text.to_string();
    }
    let dir = std::path::Path::new(file).parent().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = if dir.is_empty() { ".".to_string() } else { dir };
    let quoted = serde_json::to_string(&dir).unwrap_or_else(|_| "\".\"".into());
    let code = code_only(text);
    let mut out = String::with_capacity(text.len() + 64);
    let mut i = 0;
    while i < text.len() {
        let hit = calls.iter().find(|c| {
            code[i..].starts_with(c.as_bytes())
                && (i == 0 || !(code[i - 1].is_ascii_alphanumeric() || code[i - 1] == b'_' || code[i - 1] == b'.'))
        });
        match hit {
            Some(c) => {
                out.push_str("__gr_");
                out.push_str(c);
                out.push_str(&quoted);
                out.push_str(", ");
                i += c.len();
            }
            None => {
                let ch = text[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// Parses a configuration as conftest's parsers do for YAML and JSON: a stream of several YAML
/// documents is an array of them.
fn parse(parser: &str, text: &str) -> anyhow::Result<serde_json::Value> {
    match parser {
        "json" => Ok(serde_json::from_str(text)?),
        "yaml" | "yml" => {
            let docs: Vec<serde_json::Value> = crate::manifest::yaml::parse_stream(text, &Default::default())
                .into_iter()
                .filter_map(|d| match d.issues.iter().find(|i| i.error) {
                    Some(issue) => Some(Err(anyhow::anyhow!("unmarshal yaml: {}", issue.message))),
                    None => d.root.map(|r| Ok(r.to_json())),
                })
                .collect::<anyhow::Result<_>>()?;
            Ok(match docs.len() {
                0 => serde_json::Value::Null,
                1 => docs.into_iter().next().expect("one"),
                _ => serde_json::Value::Array(docs),
            })
        }
        other => anyhow::bail!("parser {other:?} is not supported by guardrail (yaml and json are)"),
    }
}

fn parser_of(path: &str) -> &str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("json") => "json",
        _ => "yaml",
    }
}

fn read(dir: &str, path: &str) -> anyhow::Result<(String, serde_json::Value)> {
    let full = std::path::Path::new(dir).join(path);
    let full = full.to_string_lossy().into_owned();
    let text = std::fs::read_to_string(&full).map_err(|e| anyhow::anyhow!("read config file {full}: {e}"))?;
    let value = parse(parser_of(&full), &text)?;
    Ok((full, value))
}

fn string_arg(args: &[regorus::Value], i: usize) -> anyhow::Result<String> {
    match args.get(i) {
        Some(regorus::Value::String(s)) => Ok(s.to_string()),
        other => anyhow::bail!("argument {} must be a string, got {other:?}", i + 1),
    }
}

fn to_value(json: serde_json::Value) -> regorus::Value {
    regorus::Value::from(json)
}

/// Registers conftest's builtins and the OPA builtins regorus lacks. With `errors`, a missing
/// builtin is an error (conftest's `--show-builtin-errors`); without, it is undefined.
pub fn install_conftest_builtins(engine: &mut regorus::Engine, errors: bool) -> anyhow::Result<()> {
    engine.add_extension(
        "parse_config".into(),
        2,
        Box::new(|args: Vec<regorus::Value>| {
            let parser = string_arg(&args, 0)?;
            let text = string_arg(&args, 1)?;
            Ok(to_value(parse(&parser, &text)?))
        }),
    )?;
    engine.add_extension(
        "__gr_parse_config_file".into(),
        2,
        Box::new(|args: Vec<regorus::Value>| {
            let (_, value) = read(&string_arg(&args, 0)?, &string_arg(&args, 1)?)?;
            Ok(to_value(value))
        }),
    )?;
    engine.add_extension(
        "__gr_parse_combined_config_files".into(),
        2,
        Box::new(|args: Vec<regorus::Value>| {
            let dir = string_arg(&args, 0)?;
            let paths = match args.get(1) {
                Some(regorus::Value::Array(a)) => a.iter().cloned().collect::<Vec<_>>(),
                other => anyhow::bail!("parse_combined_config_files: paths must be an array, got {other:?}"),
            };
            let mut entries = Vec::new();
            for p in paths {
                let p = p.as_string().map(|s| s.to_string()).map_err(|_| anyhow::anyhow!("paths must be strings"))?;
                let (path, value) = read(&dir, &p)?;
                entries.extend(combined_entries(&path, value));
            }
            Ok(to_value(combine(entries)))
        }),
    )?;
    for (name, arity) in MISSING {
        let name = name.to_string();
        let message = format!("built-in error: {name} is not available in guardrail");
        engine.add_extension(
            name,
            *arity,
            Box::new(move |_args: Vec<regorus::Value>| {
                if errors {
                    anyhow::bail!("{message}")
                }
                Ok(regorus::Value::Undefined)
            }),
        )?;
    }
    Ok(())
}

/// One file's entries of a combined input: `{"path", "contents"}` per document.
pub fn combined_entries(path: &str, value: serde_json::Value) -> Vec<(String, serde_json::Value)> {
    match value {
        serde_json::Value::Array(docs) => docs.into_iter().map(|d| (path.to_string(), d)).collect(),
        other => vec![(path.to_string(), other)],
    }
}

/// conftest's `--combine` input: every document as `{"path", "contents"}`, ordered by path.
pub fn combine(mut entries: Vec<(String, serde_json::Value)>) -> serde_json::Value {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    serde_json::Value::Array(
        entries.into_iter().map(|(path, contents)| serde_json::json!({"path": path, "contents": contents})).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_builtins_carry_the_policy_folder() {
        let src = "x := parse_config_file(\"a.yaml\")\n# parse_config_file(\"b\")\ny := parse_combined_config_files([\"c\"])\n";
        let out = conftest_file_paths("policy/sub/p.rego", src);
        assert!(out.contains("__gr_parse_config_file(\"policy/sub\", \"a.yaml\")"), "{out}");
        assert!(out.contains("# parse_config_file(\"b\")"), "{out}");
        assert!(out.contains("__gr_parse_combined_config_files(\"policy/sub\", [\"c\"])"), "{out}");
    }

    #[test]
    fn combined_input_is_ordered_by_path() {
        let entries = vec![
            ("b.yaml".to_string(), serde_json::json!({"k": 2})),
            ("a.yaml".to_string(), serde_json::json!({"k": 1})),
        ];
        assert_eq!(combine(entries)[0]["path"], "a.yaml");
    }
}
