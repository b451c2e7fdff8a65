//! The documentation stays true: every flag and setting the binary has is in the configuration
//! reference, every built-in has its section, the guides cover what users ask, and every link between
//! the pages (and every `helpUri` guardrail writes into SARIF) points at a page and heading that exist.

use std::collections::BTreeSet;
use std::path::Path;

use crate::check::guardrail_in;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(file: &str) -> String {
    std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    markdown
        .lines()
        .filter(|l| {
            if l.starts_with("```") {
                in_code = !in_code;
            }
            !in_code && l.starts_with('#')
        })
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_flag_and_setting_is_in_the_configuration_reference() {
    let reference = read("docs/configuration.md");
    let dir = std::env::temp_dir();
    let mut missing = Vec::new();
    for command in ["check", "policies", "verify", "setup", "serve", "completions"] {
        let (_, help, _) = guardrail_in(&dir, &[command, "--help"]);
        for flag in help.split_whitespace().filter(|w| w.starts_with("--") && w.len() > 2) {
            // `--flag[=<VALUE>]` (optional value) names the flag before the bracket.
            let flag = flag.split(['[', '=']).next().unwrap_or(flag);
            let flag = flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
            if flag != "--help" && !reference.contains(&format!("`{flag}")) && !reference.contains(&format!(" {flag} "))
            {
                missing.push(format!("{command} {flag}"));
            }
        }
        for var in
            help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("GUARDRAIL_"))
        {
            if !reference.contains(var) {
                missing.push(format!("{command} {var}"));
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "document these in docs/configuration.md: {missing:?}");
    // And each key of both configuration files.
    for key in ["include", "exclude", "namespace", "disable", "drafts", "review_comments", "required", "exemptions"] {
        assert!(reference.contains(&format!("`{key}`")), "{key}");
    }
}

#[test]
fn every_builtin_has_its_section_with_its_parameters() {
    let page = read("docs/builtin-policies.md");
    let headings = anchors(&page);
    for entry in std::fs::read_dir(root().join("policies")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(headings.contains(&name), "docs/builtin-policies.md has no section {name}");
        let template = read(&format!("policies/{name}/template.yaml"));
        let doc: serde_json::Value = serde_saphyr::from_str(&template).unwrap();
        let properties =
            doc.pointer("/spec/crd/spec/validation/openAPIV3Schema/properties").and_then(|p| p.as_object());
        for parameter in properties.into_iter().flat_map(|p| p.keys()) {
            assert!(page.contains(&format!("`{parameter}`")), "{name}: parameter {parameter} is not documented");
        }
    }
}

#[test]
fn the_guides_cover_what_users_ask() {
    let operating = anchors(&read("docs/operating.md"));
    for topic in [
        "install-the-cli",
        "register-the-app",
        "deploy-on-kubernetes",
        "configure",
        "scale-to-postgresql",
        "upgrade",
        "metrics-and-alerts",
        "troubleshooting",
    ] {
        assert!(operating.contains(topic), "docs/operating.md: {topic}");
    }
    let authors = read("docs/policy-authors.md");
    for topic in [
        "ConstraintTemplate",
        "Constraint",
        "ExpansionTemplate",
        "details.path",
        "guardrail.dev/remediation",
        "description",
        "guardrail.dev/exempt",
        "guardrail verify",
        "suite",
    ] {
        assert!(authors.contains(topic), "docs/policy-authors.md: {topic}");
    }
    let readme = read("README.md");
    for page in
        ["docs/operating.md", "docs/policy-authors.md", "docs/configuration.md", "cargo install --locked --path ."]
    {
        assert!(readme.contains(page), "README.md: {page}");
    }
}

#[test]
fn links_between_pages_and_sarif_help_uris_resolve() {
    let mut broken = Vec::new();
    let pages = [
        "README.md",
        "docs/operating.md",
        "docs/policy-authors.md",
        "docs/configuration.md",
        "docs/builtin-policies.md",
    ];
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    for page in pages {
        let text = read(page);
        let base = Path::new(page).parent().unwrap();
        for cap in link.captures_iter(&text) {
            let target = &cap[1];
            if target.starts_with("http") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() { page.to_string() } else { base.join(file).to_string_lossy().to_string() };
            let Ok(linked) = std::fs::read_to_string(root().join(&path)) else {
                broken.push(format!("{page}: {target}"));
                continue;
            };
            if !anchor.is_empty() && !anchors(&linked).contains(anchor) {
                broken.push(format!("{page}: {target} (no such heading)"));
            }
        }
    }
    // What SARIF rules link to.
    let dir = crate::check::repo(&[("k8s/pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: nginx, securityContext: {privileged: true}}]\n")]);
    let (_, sarif, _) = guardrail_in(dir.path(), &["check", "k8s", "-f", "sarif"]);
    let sarif: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    let prefix = "https://github.com/acme/guardrail/blob/main/";
    for rule in sarif["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap() {
        let uri = rule["helpUri"].as_str().unwrap();
        let (file, anchor) = uri.strip_prefix(prefix).unwrap().split_once('#').unwrap();
        if !anchors(&read(file)).contains(anchor) {
            broken.push(format!("helpUri {uri}"));
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}
