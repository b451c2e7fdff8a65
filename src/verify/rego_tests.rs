//! Rego unit tests as `opa test PATHS` runs and counts them: every `test_*` rule must be true, and
//! a test defined more than once is that many tests (OPA names the copies `test_x#01`, `test_x#02`;
//! one failing copy fails, whatever the others do). The `.rego` files under all the given paths
//! form one module set, with one exception OPA's users meet in gatekeeper-library: folders that
//! declare the same package (`seccomp` and `seccompv2`) are tested apart, as its CI runs them
//! (`opa test folder/*.rego`). So a folder's tests run on its own files plus, from the other
//! folders, the files of every package they reference (`data.lib.kubernetes`), transitively.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{CaseResult, Options, Summary};
use crate::policy::{self, template, EvalError};

/// One `.rego` file found under the paths.
pub struct RegoFile {
    path: PathBuf,
    text: String,
    package: String,
}

/// Collects every `.rego` file under `path` (hidden folders skipped), in name order.
pub fn collect(path: &Path, out: &mut Vec<RegoFile>) {
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "rego") && !out.iter().any(|f| f.path == path) {
            if let Ok(text) = std::fs::read_to_string(path) {
                let package = template::package_of(&text).unwrap_or_default();
                out.push(RegoFile { path: path.to_path_buf(), text, package });
            }
        }
        return;
    }
    let Ok(rd) = std::fs::read_dir(path) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for e in entries {
        if e.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        collect(&e, out);
    }
}

fn test_rule() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"(?m)^(test_[A-Za-z0-9_]+)(\s*(if\b|\{|:?=))").expect("valid regex"))
}

fn data_refs(text: &str) -> BTreeSet<String> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| regex::Regex::new(r"\bdata((?:\.[A-Za-z_][A-Za-z0-9_]*)+)").expect("valid regex"));
    re.captures_iter(text).map(|c| c[1][1..].to_string()).collect()
}

fn package_matches(reference: &str, package: &str) -> bool {
    !package.is_empty()
        && (reference == package
            || reference.starts_with(&format!("{package}."))
            || package.starts_with(&format!("{reference}.")))
}

fn namespace_selected(opts: &Options, package: &str) -> bool {
    opts.rego_namespaces.is_empty()
        || policy::conftest::Options { namespaces: opts.rego_namespaces.clone(), ..Default::default() }.runs(package)
}

/// Runs the tests of `files` (see the module doc) into `summary`.
pub fn run(files: &[RegoFile], opts: &Options, summary: &mut Summary) {
    let mut by_dir: BTreeMap<PathBuf, Vec<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        by_dir.entry(f.path.parent().unwrap_or(Path::new(".")).to_path_buf()).or_default().push(i);
    }
    // Folders that hold tests of a package another folder also holds tests of are tested apart.
    let mut test_dirs: BTreeMap<&str, BTreeSet<&PathBuf>> = BTreeMap::new();
    for (dir, members) in &by_dir {
        for &i in members.iter().filter(|&&i| has_tests(&files[i].text)) {
            test_dirs.entry(files[i].package.as_str()).or_default().insert(dir);
        }
    }
    let clashing: BTreeSet<&PathBuf> = test_dirs.values().filter(|d| d.len() > 1).flatten().copied().collect();
    let in_clashing = |i: usize| clashing.iter().any(|d| by_dir[*d].contains(&i));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut together: Vec<usize> = Vec::new();
    for (dir, members) in &by_dir {
        if clashing.contains(dir) {
            groups.push(members.clone());
        } else {
            together.extend(members);
        }
    }
    if !together.is_empty() {
        groups.insert(0, together);
    }
    for tested in groups {
        let mut set: BTreeSet<usize> = tested.iter().copied().collect();
        // Other folders' files of the packages the set references.
        let own: BTreeSet<&str> = tested.iter().map(|&i| files[i].package.as_str()).collect();
        loop {
            let refs: BTreeSet<String> = set.iter().flat_map(|&i| data_refs(&files[i].text)).collect();
            let more: Vec<usize> = (0..files.len())
                .filter(|i| !set.contains(i) && !own.contains(files[*i].package.as_str()))
                .filter(|i| !in_clashing(*i))
                .filter(|i| refs.iter().any(|r| package_matches(r, &files[*i].package)))
                .collect();
            if more.is_empty() {
                break;
            }
            set.extend(more);
        }
        run_set(files, &set, &tested, opts, summary);
    }
}

fn has_tests(text: &str) -> bool {
    test_rule().is_match(text)
}

/// Loads `set` as one module set (test copies renamed apart) and runs the tests of `tested`.
fn run_set(files: &[RegoFile], set: &BTreeSet<usize>, tested: &[usize], opts: &Options, summary: &mut Summary) {
    // (file, package, rule to evaluate, name to report)
    let mut tests: Vec<(usize, String, String, String)> = Vec::new();
    let mut copies: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut sources = Vec::new();
    for &i in set {
        let f = &files[i];
        let mut text = f.text.clone();
        if tested.contains(&i) && namespace_selected(opts, &f.package) {
            text = test_rule()
                .replace_all(&f.text, |cap: &regex::Captures| {
                    let name = cap[1].to_string();
                    let n = copies.entry((f.package.clone(), name.clone())).or_insert(0);
                    let (rule, shown) = if *n == 0 {
                        (name.clone(), name.clone())
                    } else {
                        (format!("{name}__gr_copy{n}"), format!("{name}#{n:02}"))
                    };
                    *n += 1;
                    tests.push((i, f.package.clone(), rule.clone(), shown));
                    format!("{rule}{}", &cap[2])
                })
                .into_owned();
        }
        sources.push((f.path.display().to_string(), text));
    }
    if tests.is_empty() {
        return;
    }
    let conftest_opts = policy::conftest::Options {
        all_namespaces: true,
        data: opts.data.clone(),
        builtin_errors: opts.builtin_errors,
        ..Default::default()
    };
    let module = match policy::conftest::load_with(&sources, policy::engine::DEFAULT_TIME_LIMIT, &conftest_opts) {
        Ok(m) => m,
        Err(e) => {
            for (i, _, _, shown) in tests {
                summary.results.push(CaseResult {
                    name: format!("{} › {shown}", files[i].path.display()),
                    error: Some(e.to_string()),
                });
            }
            return;
        }
    };
    for (i, package, rule, shown) in tests {
        let error = match module.program.eval_bool(&format!("data.{package}.{rule}"), None) {
            Ok(true) => None,
            Ok(false) => Some("test rule is false or undefined".to_string()),
            Err(EvalError::Timeout) => Some("timed out".to_string()),
            Err(EvalError::Limit(l)) => Some(format!("over a limit: {l}")),
            Err(EvalError::Failed(e)) => Some(e),
        };
        summary.results.push(CaseResult { name: format!("{} › {shown}", files[i].path.display()), error });
    }
}
