//! The markdown templates of `templates/`, compiled into the binary so a deployment is one file.

use minijinja::Environment;
use serde_json::{json, Value};

use super::paths::readable_pointer;
use crate::findings::Finding;

pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(false);
    for (name, text) in [
        ("comment.md", include_str!("../../templates/comment.md.j2")),
        ("summary.md", include_str!("../../templates/summary.md.j2")),
        ("text.md", include_str!("../../templates/text.md.j2")),
    ] {
        env.add_template(name, text).expect("the bundled templates parse");
    }
    env
}

/// What every template may say about one finding.
pub fn finding_context(f: &Finding) -> Value {
    json!({
        "line": f.region.line,
        "severity": f.severity.as_str(),
        "policy": f.policy,
        "constraint": f.constraint,
        "message": f.message,
        "field": readable_pointer(&f.pointer),
        "resource": f.resource.as_ref().map(|r| r.display()).unwrap_or_default(),
    })
}
