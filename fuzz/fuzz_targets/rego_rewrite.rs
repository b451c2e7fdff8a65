//! The Rego compatibility rewriter (`policy::compat`): whatever regorus parses, it still parses
//! after the rewrite of its dialect, and the VM preparation never panics.
#![no_main]

use guardrail::policy::compat::{check_source, insert_paren_separators, prepare_for_vm, rewrite_v0, rewrite_v1};
use libfuzzer_sys::fuzz_target;

fn parses(text: &str, v0: bool) -> Result<(), String> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(v0);
    engine.add_policy("p.rego".into(), text.into()).map(|_| ()).map_err(|e| e.to_string())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // guardrail refuses these before regorus parses them (a NUL ends the file for regorus; its
    // parser is exponential in nesting).
    if check_source("p.rego", text).is_err() {
        return;
    }
    for v0 in [true, false] {
        let rewritten = if v0 { rewrite_v0(text) } else { rewrite_v1(text) };
        let _ = prepare_for_vm(&rewritten);
        // A v0 module that parses only because regorus reads a line starting with `(` as a call on
        // the line before is one OPA rejects: the rewrite makes regorus reject it too.
        let as_opa_reads = if v0 { insert_paren_separators(text) } else { text.to_string() };
        if parses(&as_opa_reads, v0).is_ok() {
            if let Err(e) = parses(&rewritten, v0) {
                panic!("the rewrite broke a module that parsed (v0: {v0}):\n{text}\n---\n{rewritten}\n---\n{e}");
            }
        }
    }
});
