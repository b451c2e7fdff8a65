//! Terraform loading and evaluation: a root module (and, after a NUL byte, a local module
//! `./m` it may call) ends in resources or findings, never a panic, a stall or unbounded memory.
#![no_main]

use std::sync::Arc;

use guardrail::manifest::terraform::{load, FileMap};
use guardrail::manifest::{LoadOptions, Loaded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let mut map = FileMap::new("");
    map.insert("main.tf", Arc::from(parts.next().unwrap_or("")));
    if let Some(module) = parts.next() {
        map.insert("m/main.tf", Arc::from(module));
    }
    if let Some(other) = parts.next() {
        // A file the module may read with file()/templatefile()/yamldecode().
        map.insert("t.yaml", Arc::from(other));
    }
    let mut out = Loaded::default();
    load(&map, &LoadOptions::default(), &mut out);
    for r in &out.resources {
        let _ = r.origin.head();
        let _ = r.origin.locate("/spec/template/spec/containers/0/securityContext/privileged");
    }
});
