//! `cargo bench --bench inputs`: load time of hostile file shapes at the 8 MiB limit, each of which
//! once took minutes (a 200k-key ConfigMap: 64 s; a one-line 8 MB JSON array: 135 s). Every shape
//! must load in well under a second; the tests check only the results (tests/it/inputs.rs).

use std::time::Instant;

use guardrail::manifest::{load_text, LoadOptions, Loaded};

const LIMIT: usize = 8 * 1024 * 1024 - 200;

fn header(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n")
}

fn shapes() -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    let mut keys = header("keys");
    let mut i = 0;
    while keys.len() < LIMIT {
        keys.push_str(&format!("  k{i}: v\n"));
        i += 1;
    }
    out.push(("configmap, many keys (block)", "keys.yaml".into(), keys));
    let mut dups = header("dups");
    while dups.len() < LIMIT {
        dups.push_str("  same: v\n");
    }
    out.push(("configmap, one key repeated", "dups.yaml".into(), dups));
    let mut array = String::from(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"spec":{"items":["#);
    while array.len() < LIMIT {
        array.push_str("1,");
    }
    array.push_str("1]}}");
    out.push(("one-line JSON array of numbers", "array.json".into(), array));
    let mut wide = String::from(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"w"},"data":{"#);
    let mut i = 0;
    while wide.len() < LIMIT {
        wide.push_str(&format!(r#""ключ{i}":"é","#));
        i += 1;
    }
    wide.push_str(r#""z":"z"}}"#);
    out.push(("one-line JSON object, non-ASCII", "wide.json".into(), wide));
    let mut flow = header("flow").replace("data:\n", "data: {");
    let mut i = 0;
    while flow.len() < LIMIT {
        flow.push_str(&format!("k{i}: v, "));
        i += 1;
    }
    flow.push_str("z: z}\n");
    out.push(("one-line YAML flow mapping", "flow.yaml".into(), flow));
    let mut docs = String::new();
    let mut i = 0;
    while docs.len() < LIMIT && i < 10_000 {
        docs.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\ndata:\n  a: \"{}\"\n",
            "x".repeat(700)
        ));
        i += 1;
    }
    out.push(("10k documents", "docs.yaml".into(), docs));
    let mut block = header("block");
    block.push_str("  script: |\n");
    while block.len() < LIMIT {
        block.push_str("    echo a line of a very long embedded script\n");
    }
    out.push(("one long block scalar", "block.yaml".into(), block));
    let mut string = header("string");
    string.push_str("  s: \"");
    string.push_str(&"ü".repeat((LIMIT - string.len()) / 2));
    string.push_str("\"\n");
    out.push(("one 8 MiB quoted string", "string.yaml".into(), string));
    out
}

fn main() {
    guardrail::no_library_backtraces();
    for (name, file, text) in shapes() {
        let started = Instant::now();
        let mut loaded = Loaded::default();
        load_text(&file, &text, &LoadOptions::default(), &mut loaded);
        let load = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let located = loaded.resources.last().map(|r| r.origin.locate("/data/z").0.line).unwrap_or(0);
        let locate = started.elapsed().as_secs_f64();
        println!(
            "{name:34} {:5.1} MiB: load {load:6.3}s, first locate {locate:6.3}s | {} object(s), {} finding(s), line {located}",
            text.len() as f64 / 1048576.0,
            loaded.resources.len(),
            loaded.findings.len()
        );
    }
}
