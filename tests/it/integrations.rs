//! The files that install and integrate guardrail (the GitHub Action, the GitLab CI template, the
//! pre-commit hooks, the Dockerfile, the license), read as their tools read them, and the guardrail
//! commands they run, run for real: a typo in a flag there would fail every user's pipeline.

use std::path::Path;

use serde_json::Value;

use crate::check::{guardrail_in, repo};
use crate::report::validate_sarif;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(file: &str) -> Value {
    let text = std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A pull request's worth of manifests: one privileged Pod, one clean.
fn project() -> tempfile::TempDir {
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: shop}\nspec:\n  containers:\n    - name: c\n      image: nginx\n      securityContext: {privileged: true}\n      resources: {limits: {cpu: 1, memory: 1Gi}}\n";
    let good = bad.replace("name: bad", "name: good").replace("privileged: true", "privileged: false");
    repo(&[
        ("deploy/bad.yaml", bad),
        ("deploy/good.yaml", &good),
        ("docs/compose.yaml", "services: {web: {image: nginx}}\n"),
    ])
}

#[test]
fn the_github_action_runs_check_and_uploads_sarif() {
    let action = yaml("action.yml");
    assert_eq!(action["runs"]["using"], "composite");
    let steps = action["runs"]["steps"].as_array().unwrap();
    let upload = steps
        .iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("github/codeql-action/upload-sarif@")))
        .unwrap();
    assert_eq!(upload["with"]["sarif_file"], "${{ inputs.sarif-file }}");
    assert!(upload["if"].as_str().unwrap().contains("always()"), "SARIF is uploaded when findings fail the check too");
    for input in ["paths", "policy", "config", "org-config", "baseline", "fail-on", "sarif-file"] {
        assert!(action["inputs"].get(input).is_some(), "{input}");
    }
    // The arguments the script builds from its defaults, run for real.
    let script = steps[0]["run"].as_str().unwrap();
    assert!(script.contains("--format github --format \"sarif=$GR_SARIF\""));
    let dir = project();
    let (code, stdout, stderr) = guardrail_in(
        dir.path(),
        &["check", "deploy", "--fail-on", "deny", "--format", "github", "--format", "sarif=guardrail.sarif"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("::error file=deploy/bad.yaml,line=")), "{stdout}");
    let sarif: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("guardrail.sarif")).unwrap()).unwrap();
    validate_sarif(&sarif);
}

#[test]
fn the_gitlab_template_reports_code_quality_and_junit_in_merge_requests() {
    let ci = yaml("guardrail.gitlab-ci.yml");
    let job = &ci[".guardrail"];
    assert_eq!(job["artifacts"]["reports"]["codequality"], "gl-code-quality-report.json");
    assert_eq!(job["artifacts"]["reports"]["junit"], "guardrail-junit.xml");
    assert_eq!(job["artifacts"]["when"], "always", "reports are kept when findings fail the job");
    assert_eq!(ci["guardrail"]["extends"], ".guardrail");
    assert!(ci["guardrail"]["rules"][0]["if"].as_str().unwrap().contains("merge_request_event"));
    // The script with the template's default variables.
    let script = job["script"][0].as_str().unwrap();
    let expanded = script
        .replace("$GUARDRAIL_PATHS", "deploy")
        .replace(" $GUARDRAIL_ARGS", "")
        .replace("\"$GUARDRAIL_FAIL_ON\"", "deny");
    let argv: Vec<&str> = expanded.split_whitespace().skip(1).collect();
    assert_eq!(argv[0], "check");
    let dir = project();
    let (code, _, stderr) = guardrail_in(dir.path(), &argv);
    assert_eq!(code, 1, "{stderr}");
    let quality: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("gl-code-quality-report.json")).unwrap())
            .unwrap();
    let issue = &quality[0];
    assert_eq!(issue["severity"], "critical");
    assert_eq!(issue["location"]["path"], "deploy/bad.yaml");
    assert!(issue["location"]["positions"]["begin"]["line"].as_u64().unwrap() > 1);
    for field in ["description", "check_name", "fingerprint"] {
        assert!(issue[field].as_str().is_some_and(|s| !s.is_empty()), "{field}");
    }
    let junit = std::fs::read_to_string(dir.path().join("guardrail-junit.xml")).unwrap();
    assert!(junit.contains("<failure message=\"deploy/bad.yaml:"), "{junit}");
}

#[test]
fn the_pre_commit_hooks_run_on_whichever_files_changed() {
    let hooks = yaml(".pre-commit-hooks.yaml");
    let hooks = hooks.as_array().unwrap();
    let ids: Vec<&str> = hooks.iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["guardrail", "guardrail-docker"]);
    assert_eq!(hooks[0]["language"], "rust");
    assert_eq!(hooks[1]["language"], "docker_image");
    let entry: Vec<&str> = hooks[0]["entry"].as_str().unwrap().split_whitespace().skip(1).collect();
    let dir = project();
    // pre-commit appends the changed files; a commit that touches no manifest passes.
    let run = |files: &[&str]| {
        let mut argv = entry.clone();
        argv.extend(files);
        guardrail_in(dir.path(), &argv)
    };
    assert_eq!(run(&["docs/compose.yaml"]).0, 0);
    assert_eq!(run(&["deploy/good.yaml"]), (0, String::new(), String::new()));
    let (code, stdout, _) = run(&["deploy/good.yaml", "deploy/bad.yaml"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("deny[privileged-containers]"), "{stdout}");
}

#[test]
fn the_image_is_small_non_root_and_built_in_cached_layers() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 3, "build, kubectl, runtime");
    assert!(stages[2].contains("distroless") && stages[2].contains("nonroot"), "{stages:?}");
    let user = dockerfile.lines().rev().find(|l| l.starts_with("USER ")).unwrap();
    assert!(!user.contains(" 0") && !user.contains("root"), "{user}");
    // Dependencies are built from Cargo.toml and Cargo.lock alone, before the sources are copied.
    let manifests = dockerfile.find("COPY Cargo.toml Cargo.lock").unwrap();
    let sources = dockerfile.find("COPY src src").unwrap();
    let first_build = dockerfile.find("cargo build --release --locked").unwrap();
    assert!(manifests < first_build && first_build < sources);
    assert!(dockerfile.contains("sha256sum --check"), "kubectl is verified");
    // Everything the build copies is in the context; nothing else is.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for copied in ["Cargo.toml", "Cargo.lock", "build.rs", "src/", "policies/", "templates/"] {
        assert!(ignore.contains(&format!("!{copied}")), "{copied}");
        assert!(root().join(copied.trim_end_matches('/')).exists());
    }
    assert!(ignore.lines().next().is_some_and(|l| l.starts_with('#')) && ignore.contains("\n*\n"));
}

#[test]
fn the_license_is_the_one_cargo_toml_names() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("license = \"Apache-2.0\""));
    let license = std::fs::read_to_string(root().join("LICENSE")).unwrap();
    assert!(license.trim_start().starts_with("Apache License\n                        Version 2.0, January 2004"));
    assert!(license.contains("END OF TERMS AND CONDITIONS"));
}
