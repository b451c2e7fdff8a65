//! Kustomize in pull requests: a change to any file of a kustomization's tree (base, patch,
//! component, generator input, the kustomization itself) renders again every overlay at the head
//! that includes it. Step "fetch" learns the graph from the head commit's listing and fetches what
//! those overlays need (bounded); step "scan" renders them in a private folder and evaluates the
//! rendered objects, each finding at its source line. Files a kustomization reaches are never
//! checked on their own. The forge is behind `forge::Contents`.

use std::collections::{BTreeMap, BTreeSet};

use crate::findings::{Finding, Region, Severity};
use crate::forge::ForgeError;
use crate::forge::{Contents, FileText};
use crate::manifest::kustomize::app::{self, Bounds, Materialized};
use crate::manifest::kustomize::{render, KUSTOMIZE_POLICY};
use crate::manifest::{LoadOptions, Loaded};
use crate::policy::PolicySet;
use crate::scan::{Scan, ScanOptions};

/// What step "fetch" found for kustomize. It travels to the evaluation worker with the texts, so
/// overlays are rendered and evaluated where an engine crash is contained.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Gathered {
    /// Overlay folders to render.
    roots: Vec<String>,
    /// The files they need, by repository path.
    files: BTreeMap<String, String>,
    /// Files some kustomization reaches: not checked as standalone manifests.
    covered: BTreeSet<String>,
    /// Overlays not rendered because of a bound, files not read.
    findings: Vec<Finding>,
    pub notes: Vec<String>,
}

impl Gathered {
    pub fn covers(&self, path: &str) -> bool {
        self.covered.contains(path)
    }

    pub fn overlays(&self) -> Vec<&str> {
        self.roots.iter().map(|r| app::display_dir(r)).collect()
    }
}

/// Documentation is taken not to feed kustomizations: for a pull request of only such files the
/// repository's listing is not read (a generator reading a `.md` file is the one change not followed).
fn may_matter(path: &str) -> bool {
    ![".md", ".markdown", ".rst", ".adoc"].iter().any(|ext| path.to_ascii_lowercase().ends_with(ext))
}

/// Step "fetch" for kustomize: `changed` are the pull request's paths (removed ones too: an
/// overlay that needed a removed file must fail to render); `wants` says whether the repository's
/// configuration selects a kustomization file.
pub async fn gather(
    head: &impl Contents,
    changed: &[String],
    wants: &(dyn Fn(&str) -> bool + Sync),
    opts: &LoadOptions,
    bounds: &Bounds,
) -> Result<Gathered, ForgeError> {
    let mut out = Gathered::default();
    if !changed.iter().any(|p| may_matter(p)) {
        return Ok(out);
    }
    let (listing, truncated) = head.listing().await?;
    let listing: BTreeMap<String, u64> = listing.into_iter().collect();
    let kfiles = app::kustomization_files(listing.keys().map(String::as_str));
    if kfiles.is_empty() {
        return Ok(out);
    }
    if truncated {
        out.notes.push(
            "The forge listed only part of this repository's files: kustomizations it did not list were not rendered."
                .into(),
        );
    }
    if kfiles.len() > bounds.max_kustomizations {
        // Fail closed: without the whole graph, no overlay can be said to be unaffected.
        let first = kfiles.values().next().expect("not empty");
        out.findings.push(Finding::about_file(
            KUSTOMIZE_POLICY,
            first,
            Region::point(1, 1),
            Severity::Deny,
            format!(
                "the repository has {} kustomizations, over guardrail's limit of {}: no overlay was rendered for this pull request",
                kfiles.len(),
                bounds.max_kustomizations
            ),
        ));
        return Ok(out);
    }
    let max_file = opts.limits.max_file_bytes;
    let wanted: Vec<String> = kfiles.values().cloned().collect();
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for (path, text) in head.files(&wanted, max_file).await? {
        if let FileText::Text(t) = text {
            texts.insert(path, t);
        }
    }
    let kustomizations: BTreeMap<String, (String, String)> = kfiles
        .iter()
        .filter_map(|(dir, file)| texts.get(file).map(|t| (dir.clone(), (file.clone(), t.clone()))))
        .collect();
    let selection = app::select(&listing, &kustomizations, changed, wants, opts, bounds);
    out.covered = selection.covered;
    out.findings.extend(selection.findings);
    if selection.roots.is_empty() {
        return Ok(out);
    }
    let missing: Vec<String> = selection.fetch.iter().filter(|p| !texts.contains_key(*p)).cloned().collect();
    for (path, text) in head.files(&missing, max_file).await? {
        match text {
            FileText::Text(t) => {
                texts.insert(path, t);
            }
            FileText::TooLarge(n) => out.findings.push(Finding::about_file(
                KUSTOMIZE_POLICY,
                &path,
                Region::point(1, 1),
                Severity::Deny,
                format!("{path} is {n} bytes, over guardrail's limit of {max_file} bytes: it was not read, so the overlays that use it cannot be rendered"),
            )),
            FileText::Binary => out.notes.push(format!("{path} is binary and was not read for kustomize.")),
            FileText::Missing => {} // rendering reports what it misses, at the entry that names it
        }
    }
    out.files = texts.into_iter().filter(|(p, _)| selection.fetch.contains(p)).collect();
    out.notes.push(format!(
        "Kustomize overlays rendered (they include files this pull request changes): {}.",
        selection.roots.iter().map(|r| format!("`{}`", app::display_dir(r))).collect::<Vec<_>>().join(", ")
    ));
    out.roots = selection.roots;
    Ok(out)
}

/// Step "scan" for kustomize (blocking: it runs the renderer): renders the gathered overlays in a
/// private folder, evaluates what they rendered, and adds it to `scanned`.
/// Step "scan" with overlays: the texts, then the overlays rendered and evaluated beside them (what a
/// scanner runs, in process or in a worker).
pub fn scan_with_overlays(texts: &[(String, String)], overlays: Gathered, set: &PolicySet, opts: &ScanOptions) -> Scan {
    let mut scanned = crate::scan::scan_texts(texts, set, opts);
    add_rendered(&mut scanned, overlays, set, opts);
    scanned
}

fn add_rendered(scanned: &mut Scan, gathered: Gathered, set: &PolicySet, opts: &ScanOptions) {
    let mut loaded = Loaded::default();
    loaded.findings.extend(gathered.findings);
    if !gathered.roots.is_empty() {
        render_all(&gathered.roots, &gathered.files, opts, &mut loaded);
    }
    if loaded.findings.is_empty() && loaded.resources.is_empty() {
        return;
    }
    let rendered = crate::scan::scan_loaded(loaded, set, opts);
    scanned.outcome.findings.extend(rendered.outcome.findings);
    scanned.outcome.errors.extend(rendered.outcome.errors);
    scanned.outcome.suppressed.extend(rendered.outcome.suppressed);
    scanned.outcome.exceptions.extend(rendered.outcome.exceptions);
    scanned.outcome.sort();
    scanned.sources.extend(rendered.sources);
    scanned.stats.resources += rendered.stats.resources;
    scanned.exemptions.used.extend(rendered.exemptions.used);
    scanned.exemptions.rejected.extend(rendered.exemptions.rejected);
}

/// Rendering time for all the overlays of one pull request (each is also bounded on its own, by
/// `RenderOptions::timeout`); overlays not started within it are findings, not silently skipped.
pub const RENDER_BUDGET: std::time::Duration = std::time::Duration::from_secs(180);

fn render_all(roots: &[String], files: &BTreeMap<String, String>, opts: &ScanOptions, out: &mut Loaded) {
    let fail = |out: &mut Loaded, roots: &[String], message: String| {
        for root in roots {
            let file = files.keys().find(|f| app::kustomization_files([f.as_str()]).contains_key(root.as_str()));
            out.findings.push(Finding::about_file(
                KUSTOMIZE_POLICY,
                file.map_or(root.as_str(), String::as_str),
                Region::point(1, 1),
                Severity::Deny,
                format!("overlay {} was not rendered: {message}", app::display_dir(root)),
            ));
        }
    };
    let Some(renderer) = render::find_renderer(&opts.load.kustomize) else {
        fail(
            out,
            roots,
            "this guardrail server has neither `kustomize` nor `kubectl`; its operators must install one".into(),
        );
        return;
    };
    let materialized = match Materialized::write(files) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "could not write the kustomization files for rendering");
            fail(out, roots, "guardrail could not prepare the files for rendering (its logs say why)".into());
            return;
        }
    };
    let started = std::time::Instant::now();
    for (i, root) in roots.iter().enumerate() {
        if started.elapsed() > RENDER_BUDGET {
            let message = format!(
                "rendering this pull request's overlays took over {} s (guardrail's limit)",
                RENDER_BUDGET.as_secs()
            );
            fail(out, &roots[i..], message);
            break;
        }
        let part = materialized.render(root, &renderer, &opts.load);
        out.resources.extend(part.resources);
        out.findings.extend(part.findings);
        out.sources.extend(part.sources);
    }
}
