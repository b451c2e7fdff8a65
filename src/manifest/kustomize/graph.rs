//! The kustomization graph on disk: which folders are kustomizations, which files each one reaches
//! (bases, components, patches, generator inputs), and the entries guardrail refuses before
//! rendering (remote resources, absolute paths, paths that leave the repository).

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::findings::Region;
use crate::manifest::node::Node;
use crate::manifest::{display_path, region, yaml, Limits};

/// File names kustomize accepts for a kustomization, in its order of preference.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The kustomization file of a folder, if it has one.
pub fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    FILE_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// A problem with one entry of a kustomization, reported at that entry.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub file: Arc<str>,
    pub region: Region,
    pub message: String,
}

/// One parsed kustomization (or component).
#[derive(Debug)]
pub struct Kustomization {
    /// The folder as the user named it (joined lexically), for display.
    pub dir: PathBuf,
    pub display: Arc<str>,
    pub text: Arc<str>,
    pub root: Option<Node>,
}

impl Kustomization {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.root.as_ref()?.get(key)
    }
}

/// What one root kustomization reaches.
#[derive(Debug, Default)]
pub struct Reach {
    /// Canonical paths of every file it reads (kustomizations included).
    pub files: BTreeSet<PathBuf>,
    /// Canonical folders of every kustomization and component it reaches (itself included).
    pub dirs: BTreeSet<PathBuf>,
    pub refusals: Vec<Refusal>,
    /// `helmCharts` entries, which are not rendered.
    pub helm: Vec<Refusal>,
}

/// `base` joined with `rel` without touching the disk (`a/b` + `../c` = `a/c`).
pub fn lexical_join(base: &Path, rel: &str) -> PathBuf {
    let mut out = base.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let last = out.components().next_back();
                if matches!(last, Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// `path` named relative to `from` when it is under it (`.` for `from` itself), else as given.
pub fn shown(from: Option<&Path>, path: &Path) -> String {
    match from.and_then(|f| path.strip_prefix(f).ok()) {
        Some(rel) if rel.as_os_str().is_empty() => ".".into(),
        Some(rel) => display_path(rel),
        None => display_path(path),
    }
}

/// Whether a `resources:`/`components:` entry names something kustomize would fetch.
pub fn is_remote(entry: &str) -> bool {
    let e = entry.trim();
    e.contains("://")
        || e.starts_with("git@")
        || e.starts_with("git::")
        || e.contains("?ref=")
        || e.contains("?version=")
        || e.contains("?timeout=")
        || e.contains("?submodules=")
        || e.contains(".git/")
        || e.ends_with(".git")
        || e.contains("//")
        || ["github.com/", "gitlab.com/", "bitbucket.org/", "dev.azure.com/"].iter().any(|h| e.starts_with(h))
}

/// Reads kustomizations and follows their references, within `boundary` (the repository).
pub struct Graph<'a> {
    pub boundary: PathBuf,
    pub limits: &'a Limits,
    pub parsed: HashMap<PathBuf, Arc<Kustomization>>,
    /// Files are named relative to this folder when set (the App's copy of a repository, whose
    /// temporary location must not show), else as the paths were given.
    pub shown_from: Option<PathBuf>,
}

impl<'a> Graph<'a> {
    pub fn new(boundary: PathBuf, limits: &'a Limits) -> Self {
        Graph { boundary, limits, parsed: HashMap::new(), shown_from: None }
    }

    /// The name findings give `path`.
    pub fn display(&self, path: &Path) -> String {
        shown(self.shown_from.as_deref(), path)
    }

    /// Parses the kustomization in `dir` (displayed as `dir`), once.
    pub fn load(&mut self, dir: &Path) -> Option<Arc<Kustomization>> {
        let file = kustomization_file(dir)?;
        let canonical = dir.canonicalize().ok()?;
        if let Some(k) = self.parsed.get(&canonical) {
            return Some(k.clone());
        }
        let text = crate::manifest::read_file(
            &crate::manifest::InputFile { display: self.display(&file), path: file.clone() },
            self.limits,
        )
        .unwrap_or_default();
        let root = yaml::parse_stream(&text, &self.limits.yaml).into_iter().find_map(|d| d.root);
        let k = Arc::new(Kustomization {
            dir: dir.to_path_buf(),
            display: Arc::from(self.display(&file)),
            text: Arc::from(text),
            root,
        });
        self.parsed.insert(canonical, k.clone());
        Some(k)
    }

    /// Everything the kustomization in `dir` reaches, with the entries refused on the way.
    pub fn reach(&mut self, dir: &Path) -> Reach {
        let mut reach = Reach::default();
        self.visit(dir, &mut reach);
        reach
    }

    fn visit(&mut self, dir: &Path, reach: &mut Reach) {
        let Ok(canonical) = dir.canonicalize() else { return };
        if !reach.dirs.insert(canonical.clone()) {
            return;
        }
        let Some(k) = self.load(dir) else { return };
        if let Some(file) = kustomization_file(dir).and_then(|f| f.canonicalize().ok()) {
            reach.files.insert(file);
        }
        let Some(root) = &k.root else { return };
        if let Some(charts) = root.get("helmCharts").or_else(|| root.get("helmChartInflationGenerator")) {
            reach.helm.push(Refusal {
                file: k.display.clone(),
                region: region(charts.focus()),
                message: "helmCharts are not rendered (no helm here); this kustomization was not checked".into(),
            });
        }
        for (field, entry) in references(root) {
            let Some(value) = entry.as_str() else { continue };
            let refuse = |message: String| Refusal { file: k.display.clone(), region: region(entry.span), message };
            let path_part = match field {
                Field::Generated => value.split_once('=').map_or(value, |(_, p)| p),
                _ => value,
            }
            .trim();
            if path_part.contains('\n') {
                continue; // an inline patch
            }
            if matches!(field, Field::Resource | Field::Component) && is_remote(path_part) {
                reach.refusals.push(refuse(format!(
                    "remote {} `{path_part}` is not fetched: guardrail renders only what is in the repository; vendor it into the repository",
                    if field == Field::Component { "component" } else { "resource" }
                )));
                continue;
            }
            if Path::new(path_part).is_absolute() {
                reach.refusals.push(refuse(format!(
                    "absolute path `{path_part}` is not rendered: use a path relative to the kustomization"
                )));
                continue;
            }
            let target = lexical_join(&k.dir, path_part);
            let Ok(real) = target.canonicalize() else {
                let looks_remote = Path::new(path_part)
                    .components()
                    .next()
                    .is_some_and(|c| matches!(c, Component::Normal(s) if s.to_string_lossy().contains('.')))
                    && matches!(field, Field::Resource | Field::Component);
                reach.refusals.push(refuse(if looks_remote {
                    format!("remote resource `{path_part}` is not fetched: guardrail renders only what is in the repository; vendor it into the repository")
                } else {
                    format!("`{path_part}` does not exist")
                }));
                continue;
            };
            if !real.starts_with(&self.boundary) {
                reach.refusals.push(refuse(format!(
                    "`{path_part}` is outside the repository ({}); it is not read",
                    self.display(&self.boundary)
                )));
                continue;
            }
            if real.is_dir() {
                if kustomization_file(&target).is_some() {
                    self.visit(&target, reach);
                } else if matches!(field, Field::Resource | Field::Component) {
                    reach.refusals.push(refuse(format!("folder `{path_part}` has no kustomization.yaml")));
                }
            } else {
                reach.files.insert(real);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Resource,
    Component,
    /// A file read by a patch, a configuration or a generator plugin.
    File,
    /// A generator input, possibly `key=path`.
    Generated,
}

/// Every path-valued entry of a kustomization, with what kind of entry it is.
pub fn references(root: &Node) -> Vec<(Field, &Node)> {
    let mut out = Vec::new();
    let seq = |key: &str| -> Vec<&Node> {
        match root.get(key).map(|n| &n.kind) {
            Some(crate::manifest::NodeKind::Seq(items)) => items.iter().collect(),
            _ => Vec::new(),
        }
    };
    for key in ["resources", "bases"] {
        out.extend(seq(key).into_iter().map(|n| (Field::Resource, n)));
    }
    out.extend(seq("components").into_iter().map(|n| (Field::Component, n)));
    for key in ["patchesStrategicMerge", "crds", "configurations", "transformers", "generators", "validators"] {
        out.extend(seq(key).into_iter().map(|n| (Field::File, n)));
    }
    for key in ["patches", "patchesJson6902", "replacements"] {
        out.extend(seq(key).into_iter().filter_map(|n| n.get("path")).map(|n| (Field::File, n)));
    }
    if let Some(p) = root.get("openapi").and_then(|o| o.get("path")) {
        out.push((Field::File, p));
    }
    for key in ["configMapGenerator", "secretGenerator"] {
        for g in seq(key) {
            for list in ["files", "envs"] {
                if let Some(crate::manifest::NodeKind::Seq(items)) = g.get(list).map(|n| &n.kind) {
                    out.extend(items.iter().map(|n| (Field::Generated, n)));
                }
            }
            if let Some(env) = g.get("env") {
                out.push((Field::Generated, env));
            }
        }
    }
    out
}
