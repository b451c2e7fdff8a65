//! Which files the Terraform in a pull request needs. A `.tf` file is evaluated with its whole
//! directory (variables, tfvars), the modules it calls and the modules that call it, and the YAML
//! and templates it reads through `file()` / `templatefile()`; and a change to such a YAML file or
//! template re-checks the Terraform that reads it. All of it is read at the head commit.

use std::collections::{BTreeMap, BTreeSet};

use crate::forge::{Contents, FileText, ForgeError};
use crate::manifest::terraform::{is_plan_name, is_terraform_name, referenced_files};

use super::config::FileFilter;

/// `.tf` files read to find who references a changed file; beyond this only the changed files'
/// directories are considered (and the check run says so).
pub const MAX_TF_FILES: usize = 500;

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn may_matter(path: &str) -> bool {
    is_terraform_name(path)
        || is_plan_name(path)
        || [".tpl", ".tftpl", ".yaml", ".yml", ".json"].iter().any(|ext| path.ends_with(ext))
}

/// The Terraform side of a pull request: extra `(path, text)` pairs to scan beside the changed
/// manifests, and notes for the check run.
pub async fn gather(
    contents: &impl Contents,
    changed: &[String],
    filter: &FileFilter,
    max_bytes: u64,
) -> Result<(Vec<(String, String)>, Vec<String>), ForgeError> {
    let mut notes = Vec::new();
    if !changed.iter().any(|p| may_matter(p)) {
        return Ok((Vec::new(), notes));
    }
    // The listing the kustomize step reads too (read once).
    let tree: Vec<String> = contents.tree().await?;
    let tf_all: Vec<String> = tree.iter().filter(|p| p.ends_with(".tf") && filter.matches(p)).cloned().collect();
    let plans: Vec<String> = changed.iter().filter(|p| is_plan_name(p) && filter.matches(p)).cloned().collect();
    if tf_all.is_empty() && plans.is_empty() {
        return Ok((Vec::new(), notes));
    }
    let changed_dirs: BTreeSet<&str> = changed.iter().filter(|p| is_terraform_name(p)).map(|p| dir_of(p)).collect();
    let to_read: Vec<String> = if tf_all.len() <= MAX_TF_FILES {
        tf_all.clone()
    } else {
        notes.push(format!(
            "The repository has {} Terraform files; guardrail read those in the changed directories only, so a change to a YAML file or template used by other Terraform was not followed.",
            tf_all.len()
        ));
        tf_all.iter().filter(|p| changed_dirs.contains(dir_of(p))).cloned().collect()
    };
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for (path, text) in contents.files(&to_read, max_bytes).await? {
        if let FileText::Text(t) = text {
            texts.insert(path, t);
        }
    }
    let refs: BTreeMap<&str, Vec<String>> = texts.iter().map(|(p, t)| (p.as_str(), referenced_files(p, t))).collect();

    // Directories to evaluate: where Terraform changed, or reads a changed file; then the modules
    // that call those (they pass the variables), until nothing changes.
    let changed_set: BTreeSet<&str> = changed.iter().map(String::as_str).collect();
    let mut affected: BTreeSet<String> = changed_dirs.iter().map(|d| d.to_string()).collect();
    for (tf, files) in &refs {
        if files.iter().any(|f| changed_set.contains(f.as_str())) {
            affected.insert(dir_of(tf).to_string());
        }
    }
    loop {
        let before = affected.len();
        for (tf, files) in &refs {
            if files.iter().any(|f| f.strip_suffix('/').is_some_and(|m| affected.contains(m))) {
                affected.insert(dir_of(tf).to_string());
            }
        }
        if affected.len() == before {
            break;
        }
    }
    // ...and every module those call, with all of their files.
    let mut dirs = affected.clone();
    loop {
        let before = dirs.len();
        let called: Vec<String> = refs
            .iter()
            .filter(|(tf, _)| dirs.contains(dir_of(tf)))
            .flat_map(|(_, files)| files.iter().filter_map(|f| f.strip_suffix('/').map(str::to_string)))
            .collect();
        dirs.extend(called);
        if dirs.len() == before {
            break;
        }
    }
    let mut needed: BTreeSet<String> =
        tree.iter().filter(|p| is_terraform_name(p) && dirs.contains(dir_of(p))).cloned().collect();
    for (tf, files) in &refs {
        if dirs.contains(dir_of(tf)) {
            needed.extend(files.iter().filter(|f| !f.ends_with('/')).cloned());
        }
    }
    needed.extend(plans);
    let missing: Vec<String> = needed.iter().filter(|p| !texts.contains_key(*p)).cloned().collect();
    if !missing.is_empty() {
        for (path, text) in contents.files(&missing, max_bytes).await? {
            match text {
                FileText::Text(t) => {
                    texts.insert(path, t);
                }
                FileText::TooLarge(n) => notes.push(format!("{path} is {n} bytes, over guardrail's limit: not read.")),
                FileText::Missing => {} // the loader reports a reference to a missing file where it is made
                FileText::Binary => notes.push(format!("{path} is binary and was not read.")),
            }
        }
    }
    Ok((texts.into_iter().filter(|(p, _)| needed.contains(p)).collect(), notes))
}
