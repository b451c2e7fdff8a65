//! What `guardrail check PATHS` reads, before the scan: which files the repository's configuration
//! includes, and which documents under PATHS are policies rather than objects to check. Gatekeeper's
//! ConstraintTemplates, Constraints and ExpansionTemplates (and gator's test Suites) given among PATHS
//! are used as policies, as `gator test -f` takes them, and never checked as objects themselves.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::manifest::{self, Limits};
use crate::policy::{self, constraint, expansion, template};
use crate::scan::FileSelect;

/// API groups of policy documents.
const POLICY_GROUPS: [&str; 4] =
    ["templates.gatekeeper.sh/", "constraints.gatekeeper.sh/", "expansion.gatekeeper.sh/", "test.gatekeeper.sh/"];

/// Whether a document is policy material (a template, a constraint, an expansion template, a suite):
/// loaded as a policy, never checked as an object.
pub fn is_policy_document(object: &Value) -> bool {
    template::is_template(object)
        || constraint::is_constraint(object)
        || expansion::is_expansion(object)
        || object.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("test.gatekeeper.sh/"))
}

/// Whether a finding's resource is a policy document (by its `apiVersion`).
pub fn is_policy_api_version(api_version: &str) -> bool {
    POLICY_GROUPS.iter().any(|g| api_version.starts_with(g))
}

/// Policies found among the inputs.
#[derive(Debug, Default)]
pub struct PathPolicies {
    /// Files with policy documents: loaded as policies.
    pub files: Vec<PathBuf>,
    /// Of those, the files with nothing else in them (by the name findings use): the scan skips them.
    pub only_policies: BTreeSet<String>,
    /// Files that hold objects and policy documents: findings on the policy documents are dropped.
    pub mixed: BTreeSet<String>,
    /// Policy documents in `mixed` files, which the scan counts as objects.
    pub mixed_documents: usize,
}

/// Reads the files under `paths` that `select` wants and mention a Gatekeeper API group. Files under
/// one of `policy_paths` are loaded as policies already, so they are not loaded twice. Standard input
/// is not looked at (it can be read once only).
pub fn find(paths: &[PathBuf], select: &FileSelect, policy_paths: &[PathBuf], limits: &Limits) -> PathPolicies {
    let mut out = PathPolicies::default();
    let mut notes = Vec::new();
    let Ok(files) = manifest::discover(paths, &mut notes) else { return out };
    let loaded_already: Vec<PathBuf> = policy_paths.iter().filter_map(|p| p.canonicalize().ok()).collect();
    for file in files {
        let yaml = [".yaml", ".yml", ".json"].iter().any(|e| file.display.ends_with(e));
        // Standard input, FIFOs and devices can be read once only: the scan reads them.
        let regular = std::fs::metadata(&file.path).is_ok_and(|m| m.is_file());
        if file.display == "-" || !regular || !yaml || !select.wants(&file.display) {
            continue;
        }
        let loaded = file.path.canonicalize().is_ok_and(|real| loaded_already.iter().any(|p| real.starts_with(p)));
        let Ok(text) = manifest::read_file(&file, limits) else { continue };
        if !text.contains(".gatekeeper.sh/") {
            continue;
        }
        let mut errors = Vec::new();
        let objects = policy::policy_objects(&file.display, &text, &mut errors);
        let policies = objects.iter().filter(|o| is_policy_document(o)).count();
        if policies == 0 {
            continue;
        }
        let others = objects.iter().filter(|o| !is_policy_document(o) && is_object(o)).count();
        if !loaded {
            out.files.push(file.path.clone());
        }
        if others == 0 && errors.is_empty() {
            out.only_policies.insert(file.display.clone());
        } else {
            out.mixed.insert(file.display.clone());
            out.mixed_documents += policies;
        }
    }
    out
}

fn is_object(v: &Value) -> bool {
    let s = |k| v.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    s("apiVersion") && s("kind")
}
