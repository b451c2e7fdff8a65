//! Kustomize overlays: find the kustomizations under the inputs, render each root with the real
//! kustomize (isolated, see `render`), and attribute every rendered field to the line of the base,
//! patch, component or kustomization that set it (see `replay` and `place`). Files reached through a
//! kustomization are checked as part of it, never on their own.

pub mod app;
pub mod graph;
pub mod place;
pub mod render;
pub mod replay;
pub mod tree;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::findings::{Finding, Region, Severity};
use crate::manifest::{display_path, push_resource, yaml, DocTree, InputFile, LoadError, LoadOptions, Loaded, Origin};
use graph::{Graph, Reach};
pub use render::{RenderOptions, Renderer};
use tree::At;

/// Policy name of findings about a kustomization itself (refused entries, render failures).
pub const KUSTOMIZE_POLICY: &str = "guardrail/kustomize";

/// The kustomizations to render, and the files they cover.
#[derive(Debug, Default)]
pub struct Plan {
    /// Root kustomization folders (not reached through another kustomization among the inputs).
    pub roots: Vec<Root>,
    /// Canonical paths of every file a kustomization reaches: not loaded on their own.
    pub covered: BTreeSet<PathBuf>,
    pub renderer: Option<Renderer>,
}

#[derive(Debug)]
pub struct Root {
    pub dir: PathBuf,
    /// The kustomization file, as findings name it.
    pub display: String,
    pub boundary: PathBuf,
    pub reach: Reach,
    /// Files are named relative to this folder when set (see `Graph::shown_from`).
    pub shown_from: Option<PathBuf>,
}

impl Plan {
    pub fn covers(&self, file: &InputFile) -> bool {
        file.path.canonicalize().is_ok_and(|p| self.covered.contains(&p))
    }

    /// The overlays rendered, by folder (for reports).
    pub fn overlays(&self) -> Vec<String> {
        self.roots.iter().map(|r| graph::shown(r.shown_from.as_deref(), &r.dir)).collect()
    }
}

/// The repository a kustomization belongs to: the nearest folder with `.git`, else the working
/// folder if the kustomization is under it, else the kustomization's own folder.
fn boundary(dir: &Path) -> PathBuf {
    let real = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    if let Some(repo) = real.ancestors().find(|a| a.join(".git").exists()) {
        return repo.to_path_buf();
    }
    match std::env::current_dir().and_then(|c| c.canonicalize()) {
        Ok(cwd) if real.starts_with(&cwd) => cwd,
        _ => real,
    }
}

/// Finds the kustomizations among `files` (as `discover` listed them) and what they reach. An
/// error only when there is something to render and no renderer.
pub fn plan(files: &[InputFile], opts: &LoadOptions) -> Result<Plan, LoadError> {
    let mut candidates: Vec<PathBuf> = files
        .iter()
        .filter(|f| graph::FILE_NAMES.iter().any(|n| f.path.file_name().is_some_and(|x| x == *n)))
        .filter_map(|f| {
            f.path.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() })
        })
        .collect();
    candidates.dedup();
    let mut plan = Plan::default();
    let mut reached: Vec<(PathBuf, Root)> = Vec::new();
    for dir in candidates {
        let Some(file) = graph::kustomization_file(&dir) else { continue };
        let boundary = boundary(&dir);
        let mut graph = Graph::new(boundary.clone(), &opts.limits);
        let reach = graph.reach(&dir);
        plan.covered.extend(reach.files.iter().cloned());
        let Ok(real) = dir.canonicalize() else { continue };
        reached.push((real, Root { dir, display: display_path(&file), boundary, reach, shown_from: None }));
    }
    let is_reached_by_other =
        |real: &PathBuf| reached.iter().any(|(other, root)| other != real && root.reach.dirs.contains(real));
    // A component only means something inside a kustomization: never rendered on its own.
    let is_component = |root: &Root| {
        Graph::new(root.boundary.clone(), &opts.limits)
            .load(&root.dir)
            .is_some_and(|k| k.get("kind").and_then(crate::manifest::Node::as_str) == Some("Component"))
    };
    let roots: Vec<bool> =
        reached.iter().map(|(real, root)| !is_reached_by_other(real) && !is_component(root)).collect();
    plan.roots = reached.into_iter().zip(roots).filter(|(_, root)| *root).map(|((_, r), _)| r).collect();
    if !plan.roots.is_empty() {
        plan.renderer = render::find_renderer(&opts.kustomize);
        if plan.renderer.is_none() {
            return Err(LoadError::Kustomize(format!(
                "{} needs rendering, but neither `kustomize` nor `kubectl` was found on PATH; install one of them \
                 (kubectl includes kustomize as `kubectl kustomize`)",
                plan.roots[0].display
            )));
        }
    }
    Ok(plan)
}

fn finding(file: &str, region: Region, severity: Severity, message: String) -> Finding {
    Finding::about_file(KUSTOMIZE_POLICY, file, region, severity, message)
}

/// A fresh folder under the system's temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "guardrail-kustomize-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Renders one root and loads its objects, each placed at its sources.
pub fn render_root(root: &Root, renderer: &Renderer, opts: &LoadOptions) -> Loaded {
    let mut out = Loaded::default();
    let overlay = graph::shown(root.shown_from.as_deref(), &root.dir);
    let refused = !root.reach.refusals.is_empty() || !root.reach.helm.is_empty();
    for r in &root.reach.refusals {
        out.findings.push(finding(
            &r.file,
            r.region,
            Severity::Deny,
            format!("{} (overlay {overlay} was not rendered)", r.message),
        ));
    }
    for r in &root.reach.helm {
        let mut f = finding(&r.file, r.region, Severity::Info, r.message.clone());
        f.policy = crate::manifest::NOTE_POLICY.into();
        out.findings.push(f);
    }
    let mut graph = Graph::new(root.boundary.clone(), &opts.limits);
    graph.shown_from = root.shown_from.clone();
    let mut replay = replay::Replay::new(&mut graph);
    let objs = replay.build(&root.dir);
    out.sources.extend(replay.sources.iter().map(|(k, v)| (k.clone(), v.clone())));
    if refused {
        return out;
    }
    let rendered = match render_in_copy(root, renderer, &opts.kustomize) {
        Ok(text) => text,
        Err(message) => {
            out.findings.push(finding(
                &root.display,
                Region::point(1, 1),
                Severity::Deny,
                format!("kustomize could not render overlay {overlay}: {message}"),
            ));
            return out;
        }
    };
    let fallback = At { file: Arc::from(root.display.as_str()), region: Region::point(1, 1) };
    let mut used = vec![false; objs.len()];
    for doc in yaml::parse_stream(&rendered, &opts.limits.yaml) {
        let Some(node) = doc.root else { continue };
        let object = node.to_json();
        if object.get("kind").and_then(Value::as_str).is_none() {
            continue;
        }
        // Policy documents (a policy repository's own kustomization) are policies, not objects.
        if object.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.contains(".gatekeeper.sh/")) {
            continue;
        }
        let matched = find_source(&objs, &used, &object);
        if let Some(i) = matched {
            used[i] = true;
        }
        let obj = matched.map(|i| &objs[i]);
        let placer = place::RenderedPlace::new(obj, object.clone(), fallback.clone(), overlay.clone());
        let file = placer.head.file.clone();
        let origin = Origin { file, document: Arc::new(DocTree::rendered(Arc::new(placer))), prefix: String::new() };
        push_resource(&mut out, object, origin, opts);
    }
    out
}

fn render_in_copy(root: &Root, renderer: &Renderer, opts: &RenderOptions) -> Result<String, String> {
    let tmp = TempDir::new().map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    let files: Vec<PathBuf> = root.reach.files.iter().cloned().collect();
    let tree = tmp.0.join("tree");
    render::copy_tree(&root.boundary, &files, &tree).map_err(|e| format!("cannot copy the kustomization: {e}"))?;
    let real = root.dir.canonicalize().map_err(|e| e.to_string())?;
    let rel =
        real.strip_prefix(&root.boundary).map_err(|_| "the kustomization is outside the repository".to_string())?;
    let dir = tree.join(rel);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let home = tmp.0.join("home");
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    render::run(renderer, &dir, &home, opts)
}

/// The replayed object a rendered object came from: same kind, name and namespace; else same kind
/// and name; else a generated object whose name kustomize suffixed with a hash.
fn find_source(objs: &[replay::Obj], used: &[bool], object: &Value) -> Option<usize> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = crate::manifest::meta_str(object, "name");
    let ns = crate::manifest::meta_str(object, "namespace");
    let free = |i: &usize| !used[*i];
    let idx = 0..objs.len();
    idx.clone()
        .filter(free)
        .find(|&i| objs[i].kind() == kind && objs[i].name() == name && objs[i].namespace() == ns)
        .or_else(|| idx.clone().filter(free).find(|&i| objs[i].kind() == kind && objs[i].name() == name))
        .or_else(|| {
            idx.clone().filter(free).find(|&i| {
                let o = &objs[i];
                o.kind() == kind
                    && o.hashed
                    && name.strip_prefix(o.name()).and_then(|r| r.strip_prefix('-')).is_some_and(|h| h.len() == 10)
            })
        })
}
