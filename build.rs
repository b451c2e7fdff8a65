//! Embeds the built-in policy pack (policies/<name>/{template,constraint}.yaml) into the binary,
//! so `guardrail check` works from any folder.
use std::fmt::Write;
use std::path::Path;

fn main() {
    // The manifest dir of this run, not the one baked in when the script was compiled: a target
    // dir shared by two checkouts once built an empty pack from a checkout that was gone.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("policies");
    println!("cargo:rerun-if-changed=policies");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().join("template.yaml").exists())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    // Never ship a binary without its built-in pack.
    assert!(!names.is_empty(), "no built-in policies under {}", root.display());
    let mut code = String::from("/// (name, template.yaml, constraint.yaml) of every built-in policy.\npub const BUILTIN: &[(&str, &str, &str)] = &[\n");
    for name in &names {
        let dir = root.join(name);
        println!("cargo:rerun-if-changed={}", dir.display());
        let t = dir.join("template.yaml");
        let c = dir.join("constraint.yaml");
        let c_text =
            if c.exists() { format!("include_str!({:?})", c.display().to_string()) } else { "\"\"".to_string() };
        writeln!(code, "    ({name:?}, include_str!({:?}), {c_text}),", t.display().to_string()).unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("builtin_pack.rs");
    std::fs::write(out, code).unwrap();
}
