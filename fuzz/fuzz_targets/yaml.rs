//! YAML loading with spans: whatever the bytes, loading ends in resources or findings, never a
//! panic, and every finding and every resource's head points inside the file.
#![no_main]

use guardrail::manifest::{load_text, LoadOptions, Loaded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut out = Loaded::default();
    load_text("f.yaml", &text, &LoadOptions::default(), &mut out);
    let lines = text.split('\n').count() as u32 + 1;
    for f in &out.findings {
        assert!(f.region.line >= 1 && f.region.line <= lines, "finding outside the file: {f:?}");
    }
    for r in &out.resources {
        let head = r.origin.head();
        assert!(head.line <= lines, "resource head outside the file: {head:?}");
        // Locating a field (what every violation does) must not panic either.
        let (region, _) = r.origin.locate("/spec/containers/0/securityContext/privileged");
        assert!(region.line <= lines, "located outside the file: {region:?}");
    }
});
