//! Differential test: guardrail reads odd YAML (tests/fixtures/yaml-odd) exactly as kubectl does.
//! `kubectl label --local -f FILE probe=1 -o json` prints the objects as kubectl read them; a file kubectl
//! refuses must be a blocking finding in guardrail, never a silent pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use guardrail::findings::Severity;
use guardrail::manifest::{load_text, LoadOptions, Loaded};
use serde_json::Value;

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/yaml-odd");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The objects kubectl read, without the probe label; `Err` with kubectl's message if it refused the file.
fn kubectl_read(kubectl: &str, file: &Path) -> Result<Vec<Value>, String> {
    let out = Command::new(kubectl)
        .args(["label", "--local", "-f"])
        .arg(file)
        .args(["probe=1", "-o", "json"])
        .output()
        .expect("run kubectl");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    // One JSON document per object read (a `kind: List` stays one object with its items).
    let mut objects: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("kubectl prints JSON");
    for object in &mut objects {
        let labels = object["metadata"]["labels"].as_object_mut().expect("labels set by kubectl");
        assert_eq!(labels.remove("probe"), Some(Value::from("1")));
        if labels.is_empty() {
            object["metadata"].as_object_mut().unwrap().remove("labels");
        }
    }
    Ok(objects)
}

/// JSON equality where numbers compare by value (kubectl prints `1` for YAML's `!!float 1`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y || (x - y).abs() <= x.abs() * 1e-15)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn kubectl() -> Option<String> {
    let found = Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success());
    found.then(|| "kubectl".to_string())
}

#[test]
fn odd_yaml_reads_exactly_as_kubectl_reads_it() {
    let Some(kubectl) = kubectl() else {
        eprintln!("SKIPPED odd_yaml_reads_exactly_as_kubectl_reads_it: kubectl is not installed");
        return;
    };
    let files = corpus();
    assert!(files.len() >= 12, "the corpus is there");
    let mut differences = Vec::new();
    let mut refused = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut loaded = Loaded::default();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        load_text(&name, &text, &LoadOptions::default(), &mut loaded);
        match kubectl_read(&kubectl, file) {
            Ok(theirs) => {
                let ours: Vec<&Value> = loaded.resources.iter().map(|r| &r.object).collect();
                if ours.len() != theirs.len() {
                    differences.push(format!(
                        "{name}: guardrail read {} object(s), kubectl {}",
                        ours.len(),
                        theirs.len()
                    ));
                    continue;
                }
                for (o, t) in ours.iter().zip(&theirs) {
                    if !same(o, t) {
                        differences.push(format!("{name}:\n  guardrail: {o}\n  kubectl:   {t}"));
                    }
                }
            }
            Err(message) => {
                refused += 1;
                let blocked = loaded.findings.iter().any(|f| f.severity == Severity::Deny && f.file == name);
                if !blocked {
                    differences.push(format!(
                        "{name}: kubectl refuses it ({}) but guardrail has no blocking finding",
                        message.trim()
                    ));
                }
            }
        }
    }
    assert!(refused >= 3, "the corpus has files kubectl refuses");
    assert!(differences.is_empty(), "guardrail and kubectl differ:\n{}", differences.join("\n"));
}
