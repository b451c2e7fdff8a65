//! Kustomize for a pull request, where the repository is not on disk: from the head commit's file
//! listing and its kustomization files, which overlays include a changed file (and so are rendered
//! again) and which files they need; then those files, written into a private temporary folder,
//! are rendered there exactly as the CLI renders a checkout, and the names findings carry are made
//! repository paths again. Nothing outside that folder is read on behalf of a manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use super::graph::{self, Field, Graph};
use super::{finding, Root, TempDir};
use crate::findings::{Finding, Region, Severity};
use crate::manifest::{yaml, LoadOptions, Loaded, Node};

/// How much of a repository one pull request may make guardrail read and render. Over any of
/// them, the overlays concerned are not rendered and say so as findings (fail closed).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Kustomization files read from the head commit to learn the graph.
    pub max_kustomizations: usize,
    /// Overlays rendered for one pull request.
    pub max_roots: usize,
    /// Files fetched for the overlays rendered, in all.
    pub max_files: usize,
    /// Bytes fetched for the overlays rendered, in all.
    pub max_bytes: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds { max_kustomizations: 500, max_roots: 20, max_files: 1000, max_bytes: 32 * 1024 * 1024 }
    }
}

/// The kustomization file of each folder that has one, from a listing of repository paths
/// (kustomize's order of preference when a folder has several). Folder `""` is the top.
pub fn kustomization_files<'a>(paths: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for path in paths {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let Some(rank) = graph::FILE_NAMES.iter().position(|n| *n == name) else { continue };
        let better = out
            .get(dir)
            .is_none_or(|held| graph::FILE_NAMES.iter().position(|n| held.ends_with(n)).is_some_and(|r| rank < r));
        if better {
            out.insert(dir.to_string(), path.to_string());
        }
    }
    out
}

/// `base` joined with the relative `rel` as repository paths; `None` when it leaves the repository
/// or is absolute.
pub fn join(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for c in Path::new(rel).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// One kustomization as the graph needs it.
struct Entry {
    component: bool,
    /// Kustomization folders it names (resources, components).
    dirs: Vec<String>,
    /// Files it names (resources, patches, generator inputs, its own file).
    files: Vec<String>,
}

/// What to render for a pull request.
#[derive(Debug, Default)]
pub struct Selection {
    /// Folders of the overlays to render (not reached through another kustomization, not components).
    pub roots: Vec<String>,
    /// Repository paths to fetch for them (those the listing has).
    pub fetch: BTreeSet<String>,
    /// Every file some kustomization reaches: checked through it, never on its own.
    pub covered: BTreeSet<String>,
    /// Overlays that were not rendered because of a bound.
    pub findings: Vec<Finding>,
}

/// Which overlays include a changed path. `listing`: every file of the head commit with its size;
/// `kustomizations`: folder -> (file, text) as `kustomization_files` found them; `wants`: whether
/// the repository's configuration selects a kustomization file.
pub fn select(
    listing: &BTreeMap<String, u64>,
    kustomizations: &BTreeMap<String, (String, String)>,
    changed: &[String],
    wants: &dyn Fn(&str) -> bool,
    opts: &LoadOptions,
    bounds: &Bounds,
) -> Selection {
    let nodes: BTreeMap<&str, Entry> =
        kustomizations.iter().map(|(dir, (file, text))| (dir.as_str(), parse(dir, file, text, opts))).collect();
    let closure = |start: &str| -> (BTreeSet<String>, BTreeSet<String>) {
        let (mut dirs, mut files) = (BTreeSet::new(), BTreeSet::new());
        let mut todo = vec![start.to_string()];
        while let Some(dir) = todo.pop() {
            if !dirs.insert(dir.clone()) {
                continue;
            }
            let Some(node) = nodes.get(dir.as_str()) else { continue };
            files.extend(node.files.iter().cloned());
            todo.extend(node.dirs.iter().filter(|d| nodes.contains_key(d.as_str())).cloned());
        }
        (dirs, files)
    };
    let reaches: BTreeMap<&str, (BTreeSet<String>, BTreeSet<String>)> =
        nodes.keys().map(|dir| (*dir, closure(dir))).collect();
    let reached_by_other = |dir: &str| reaches.iter().any(|(other, (dirs, _))| *other != dir && dirs.contains(dir));
    let wanted = |dir: &str| kustomizations.get(dir).is_some_and(|(file, _)| wants(file));
    let changed: BTreeSet<&str> = changed.iter().map(String::as_str).collect();
    let mut sel = Selection::default();
    for (dir, (_, files)) in &reaches {
        if wanted(dir) {
            sel.covered.extend(files.iter().filter(|f| listing.contains_key(*f)).cloned());
        }
    }
    let affected: Vec<&str> = reaches
        .iter()
        .filter(|(dir, (_, files))| {
            wanted(dir)
                && !nodes[**dir].component
                && !reached_by_other(dir)
                && files.iter().any(|f| changed.contains(f.as_str()))
        })
        .map(|(dir, _)| *dir)
        .collect();
    let (mut count, mut bytes) = (0usize, 0u64);
    for dir in affected {
        let file = &kustomizations[dir].0;
        let needs: Vec<&String> = reaches[dir].1.iter().filter(|f| listing.contains_key(*f)).collect();
        let new: Vec<&&String> = needs.iter().filter(|f| !sel.fetch.contains(**f)).collect();
        let more_bytes: u64 = new.iter().map(|f| listing[**f]).sum();
        let over = if sel.roots.len() >= bounds.max_roots {
            Some(format!("more than {} overlays include files this pull request changes", bounds.max_roots))
        } else if count + new.len() > bounds.max_files {
            Some(format!("the overlays of this pull request need more than {} files", bounds.max_files))
        } else if bytes + more_bytes > bounds.max_bytes {
            Some(format!("the overlays of this pull request need more than {} bytes", bounds.max_bytes))
        } else {
            None
        };
        if let Some(why) = over {
            sel.findings.push(finding(
                file,
                Region::point(1, 1),
                Severity::Deny,
                format!("overlay {} was not rendered: {why} (guardrail's limit)", display_dir(dir)),
            ));
            continue;
        }
        count += new.len();
        bytes += more_bytes;
        sel.fetch.extend(needs.into_iter().cloned());
        sel.roots.push(dir.to_string());
    }
    sel
}

/// A folder as reports name it (`.` for the top of the repository).
pub fn display_dir(dir: &str) -> &str {
    if dir.is_empty() {
        "."
    } else {
        dir
    }
}

fn parse(dir: &str, file: &str, text: &str, opts: &LoadOptions) -> Entry {
    let mut node = Entry { component: false, dirs: Vec::new(), files: vec![file.to_string()] };
    let root: Option<Node> = yaml::parse_stream(text, &opts.limits.yaml).into_iter().find_map(|d| d.root);
    let Some(root) = root else { return node };
    node.component = root.get("kind").and_then(Node::as_str) == Some("Component");
    for (field, entry) in graph::references(&root) {
        let Some(value) = entry.as_str() else { continue };
        let value = match field {
            Field::Generated => value.split_once('=').map_or(value, |(_, p)| p),
            _ => value,
        }
        .trim();
        if value.contains('\n') || (matches!(field, Field::Resource | Field::Component) && graph::is_remote(value)) {
            continue; // inline, or refused when the overlay is rendered
        }
        let Some(target) = join(dir, value) else { continue };
        if matches!(field, Field::Resource | Field::Component) {
            node.dirs.push(target.clone());
        }
        node.files.push(target);
    }
    node
}

/// The files of the overlays to render, written under a fresh private folder.
pub struct Materialized {
    tmp: TempDir,
    root: PathBuf,
}

impl Materialized {
    /// Writes `files` (repository path -> text) under a new temporary folder. Paths that are not
    /// plain relative paths are refused (GitHub never lists such, but this folder is a boundary).
    pub fn write(files: &BTreeMap<String, String>) -> std::io::Result<Materialized> {
        let tmp = TempDir::new()?;
        let root = tmp.0.join("repo");
        std::fs::create_dir(&root)?;
        let root = root.canonicalize()?;
        for (path, text) in files {
            let plain = !path.is_empty() && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)));
            if !plain {
                return Err(std::io::Error::other(format!("refused path {path:?}")));
            }
            let target = root.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // `create_new`: a file is written once, never through something already there.
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&target)?;
            std::io::Write::write_all(&mut file, text.as_bytes())?;
        }
        Ok(Materialized { tmp, root })
    }

    /// Renders the overlay in folder `dir` (a repository path) and loads its objects, every file
    /// named by its repository path.
    pub fn render(&self, dir: &str, renderer: &super::Renderer, opts: &LoadOptions) -> Loaded {
        let path = if dir.is_empty() { self.root.clone() } else { self.root.join(dir) };
        let Some(file) = graph::kustomization_file(&path) else { return Loaded::default() };
        let mut graph = Graph::new(self.root.clone(), &opts.limits);
        graph.shown_from = Some(self.root.clone());
        let reach = graph.reach(&path);
        let root = Root {
            display: graph.display(&file),
            dir: path,
            boundary: self.root.clone(),
            reach,
            shown_from: Some(self.root.clone()),
        };
        super::render_root(&root, renderer, opts)
    }

    /// The private folder (removed when this is dropped).
    pub fn folder(&self) -> &Path {
        &self.tmp.0
    }
}
