//! One check run, from inputs to findings: load manifests (in parallel), expand workloads, evaluate
//! every applicable policy, locate each violation, and turn it into a `Finding`. The CLI and the
//! App both call this.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::findings::{Finding, Outcome, Severity};
use crate::locate::{self, Method};
use crate::manifest::{self, LoadOptions, Loaded, Resource};
use crate::policy::{expansion, Context, EvalError, PolicySet, Prepared};

/// Workers get a large stack: deeply nested YAML and Rego recursion must hit budgets, not the guard page.
pub const WORKER_STACK: usize = crate::manifest::yaml::PARSER_STACK;

#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    pub load: LoadOptions,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Central exemptions (annotation exemptions on resources always apply).
    pub exemptions: crate::exempt::Exemptions,
    /// Which of the files found under the paths to read (`scan_paths` only).
    pub select: FileSelect,
}

/// Which discovered files a scan reads: the CLI applies `.github/guardrail.yml`'s include and exclude
/// here, and leaves out files that hold only policies. Every file when unset.
#[derive(Clone, Default)]
pub struct FileSelect(Option<Arc<Wants>>);

/// Whether a file (by the name findings use) is read.
type Wants = dyn Fn(&str) -> bool + Send + Sync;

impl FileSelect {
    /// `wants` gets a file's name as findings report it.
    pub fn new(wants: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        FileSelect(Some(Arc::new(wants)))
    }

    pub fn wants(&self, file: &str) -> bool {
        self.0.as_ref().is_none_or(|f| f(file))
    }
}

impl std::fmt::Debug for FileSelect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "FileSelect(some)" } else { "FileSelect(all)" })
    }
}

/// Counters for benchmarks and logs.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub files: usize,
    pub resources: usize,
    pub implied: usize,
    pub evaluations: usize,
    pub violations: usize,
    pub locate_evaluations: usize,
    pub located_declared: usize,
    pub located_searched: usize,
    pub located_resource: usize,
    pub load_time: Duration,
    pub eval_time: Duration,
    pub locate_time: Duration,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Scan {
    pub outcome: Outcome,
    /// File name -> text, for rendering source lines.
    pub sources: HashMap<String, String>,
    pub stats: Stats,
    /// Exemptions used and rejected.
    pub exemptions: crate::exempt::Applied,
}

fn threads(opts: &ScanOptions) -> usize {
    if opts.threads > 0 {
        opts.threads
    } else {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }
}

/// Runs `f` over `items` on worker threads that take the next item as they finish one (objects
/// differ a lot in cost); results keep input order.
fn parallel<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (f, next) = (&f, &next);
                std::thread::Builder::new()
                    .stack_size(WORKER_STACK)
                    .spawn_scoped(s, move || {
                        crate::manifest::yaml::mark_large_stack();
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(item) = items.get(i) else { break };
                            out.push((i, f(item)));
                        }
                        out
                    })
                    .expect("spawn worker thread")
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("worker thread panicked")).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Files loaded and evaluated together: memory holds the objects of one batch, not of the run.
const FILES_PER_BATCH: usize = 256;

/// Scans files and folders on disk, streaming: a first pass keeps only the objects every
/// evaluation needs to see (Namespaces, CRDs, the inventory the policies read), then batches of
/// files are loaded, evaluated and located, and only their findings (and the text of files with
/// findings, for showing lines) are kept. Peak memory follows the batch, not the number of files.
pub fn scan_paths(paths: &[PathBuf], policies: &PolicySet, opts: &ScanOptions) -> Result<Scan, manifest::LoadError> {
    let started = Instant::now();
    let mut notes = Vec::new();
    let files = manifest::discover(paths, &mut notes)?;
    let files: Vec<_> = files.into_iter().filter(|f| opts.select.wants(&f.display)).collect();
    notes.retain(|n| opts.select.wants(&n.file));
    // Kustomizations are rendered; the files they reach are checked through them only.
    let kustomize = manifest::kustomize::plan(&files, &opts.load)?;
    let files: Vec<_> = files.into_iter().filter(|f| !kustomize.covers(f)).collect();
    let workers = threads(opts);
    // Standard input, FIFOs and devices can be read once only: they are loaded in the first pass and kept.
    let (once, files): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|f| f.path.as_os_str() == "-" || !std::fs::metadata(&f.path).is_ok_and(|m| m.is_file()));
    let mut first = Loaded::default();
    for file in &once {
        load_one(file, opts, &mut first);
    }
    let needs = ContextNeeds::of(policies);
    let context_objects: Vec<serde_json::Value> = parallel(&files, workers, |file| {
        let Ok(text) = manifest::read_file(file, &opts.load.limits) else { return Vec::new() };
        if !needs.may_hold(&text) {
            return Vec::new();
        }
        let mut out = Loaded::default();
        manifest::load_file(file, &text, &opts.load, &mut out);
        out.resources.into_iter().map(|r| r.object).filter(|o| needs.wants(o)).collect()
    })
    .into_iter()
    .flatten()
    .chain(first.resources.iter().map(|r| r.object.clone()).filter(|o| needs.wants(o)))
    .collect();
    let mut terraform = Loaded::default();
    manifest::terraform::load_paths(paths, &files, &opts.load, &mut terraform);
    let mut rendered = Loaded::default();
    if let Some(renderer) = &kustomize.renderer {
        let parts =
            parallel(&kustomize.roots, workers, |root| manifest::kustomize::render_root(root, renderer, &opts.load));
        for part in parts {
            rendered.resources.extend(part.resources);
            rendered.findings.extend(part.findings);
            rendered.sources.extend(part.sources);
        }
    }
    let context_objects: Vec<&serde_json::Value> = context_objects
        .iter()
        .chain(terraform.resources.iter().chain(&rendered.resources).map(|r| &r.object).filter(|o| needs.wants(o)))
        .collect();
    let mut scan = Scan::default();
    let ctx = match policies.context(&context_objects) {
        Ok(ctx) => ctx,
        Err(e) => {
            scan.outcome.errors.push(e.to_string());
            return Ok(scan);
        }
    };
    drop(context_objects);
    let mut run = Run { findings: notes, ..Run::default() };
    run.batch(first, policies, &ctx, opts);
    for batch in files.chunks(FILES_PER_BATCH) {
        let parts = parallel(batch, workers, |file| {
            let mut out = Loaded::default();
            load_one(file, opts, &mut out);
            out
        });
        let mut loaded = Loaded::default();
        for part in parts {
            loaded.resources.extend(part.resources);
            loaded.findings.extend(part.findings);
            loaded.sources.extend(part.sources);
        }
        run.batch(loaded, policies, &ctx, opts);
    }
    run.batch(terraform, policies, &ctx, opts);
    run.batch(rendered, policies, &ctx, opts);
    let mut scan = run.finish(opts);
    scan.stats.files = files.len() + once.len();
    scan.stats.load_time += started.elapsed().saturating_sub(scan.stats.eval_time + scan.stats.locate_time);
    Ok(scan)
}

fn load_one(file: &manifest::InputFile, opts: &ScanOptions, out: &mut Loaded) {
    match manifest::read_file(file, &opts.load.limits) {
        Ok(text) => manifest::load_file(file, &text, &opts.load, out),
        Err(finding) => out.findings.push(*finding),
    }
}

/// Which objects the evaluation context is built from (see `PolicySet::context`): Namespaces (for
/// namespace selectors), CRDs (resource names for admission policies), and the inventory kinds
/// the templates read.
struct ContextNeeds {
    all: bool,
    kinds: Vec<String>,
}

impl ContextNeeds {
    fn of(policies: &PolicySet) -> Self {
        let mut needs = ContextNeeds { all: false, kinds: vec!["Namespace".into(), "CustomResourceDefinition".into()] };
        for t in &policies.templates {
            match &t.inventory {
                crate::policy::template::InventoryUse::None => {}
                crate::policy::template::InventoryUse::All => needs.all = true,
                crate::policy::template::InventoryUse::Kinds(k) => needs.kinds.extend(k.iter().cloned()),
            }
        }
        needs
    }

    /// Whether a file's text can hold such an object (a kind written with escapes is parsed to see).
    fn may_hold(&self, text: &str) -> bool {
        self.all || text.contains('\\') || self.kinds.iter().any(|k| text.contains(k.as_str()))
    }

    fn wants(&self, object: &serde_json::Value) -> bool {
        self.all
            || object.get("kind").and_then(serde_json::Value::as_str).is_some_and(|k| self.kinds.iter().any(|w| w == k))
    }
}

/// What a scan keeps while batches go by.
#[derive(Default)]
struct Run {
    findings: Vec<Finding>,
    sources: HashMap<String, String>,
    /// Objects with an exemption annotation (exemptions are applied once, at the end).
    annotated: Vec<Resource>,
    /// conftest exceptions that applied (reported as conftest prints them).
    exceptions: Vec<crate::findings::ExceptionApplied>,
    stats: Stats,
}

impl Run {
    fn batch(&mut self, loaded: Loaded, policies: &PolicySet, ctx: &Context, opts: &ScanOptions) {
        let before = self.findings.len();
        self.findings.extend(loaded.findings);
        self.stats.resources += loaded.resources.len();
        let started = Instant::now();
        let results = evaluate_all(&loaded.resources, policies, ctx, opts);
        let elapsed = started.elapsed();
        let mut locate_time = Duration::ZERO;
        for r in results {
            self.stats.implied += r.implied;
            self.stats.evaluations += r.evaluations;
            self.stats.violations += r.violations;
            self.stats.locate_evaluations += r.locate_evaluations;
            self.stats.located_declared += r.methods[0];
            self.stats.located_searched += r.methods[1];
            self.stats.located_resource += r.methods[2];
            locate_time += r.locate_time;
            self.findings.extend(r.findings);
            self.exceptions.extend(r.exceptions);
        }
        let locate_time = locate_time / threads(opts).max(1) as u32;
        self.stats.locate_time += locate_time;
        self.stats.eval_time += elapsed.saturating_sub(locate_time);
        let with_findings: std::collections::HashSet<&str> =
            self.findings[before..].iter().map(|f| f.file.as_str()).collect();
        for (name, text) in loaded.sources {
            if with_findings.contains(name.as_str()) {
                self.sources.insert(name, text.to_string());
            }
        }
        self.annotated.extend(loaded.resources.into_iter().filter(|r| crate::exempt::is_annotated(&r.object)));
    }

    fn finish(mut self, opts: &ScanOptions) -> Scan {
        let mut scan = Scan { sources: std::mem::take(&mut self.sources), stats: self.stats, ..Scan::default() };
        scan.outcome.findings = self.findings;
        scan.outcome.exceptions = self.exceptions;
        scan.exemptions = crate::exempt::apply(&mut scan.outcome.findings, &self.annotated, &opts.exemptions);
        scan.outcome.suppressed = std::mem::take(&mut scan.exemptions.suppressed);
        scan.outcome.sort();
        scan
    }
}

/// Evaluates objects on the workers. Implied objects are made inside the workers and dropped after
/// evaluation, so a run never holds a second copy of every workload.
fn evaluate_all(resources: &[Resource], policies: &PolicySet, ctx: &Context, opts: &ScanOptions) -> Vec<Evaluated> {
    parallel(resources, threads(opts), |resource| {
        let implied = expansion::expand(&policies.expansions, resource, 0);
        let mut out = evaluate(policies, resource, ctx);
        out.implied = implied.len();
        for child in &implied {
            out.absorb(evaluate(policies, child, ctx));
        }
        resource.origin.document.release();
        out
    })
}

/// Scans texts already in memory (the App's fetched files): `(name, text)` pairs.
pub fn scan_texts(texts: &[(String, String)], policies: &PolicySet, opts: &ScanOptions) -> Scan {
    let parts = parallel(texts, threads(opts), |(name, text)| {
        let mut out = Loaded::default();
        manifest::load_text(name, text, &opts.load, &mut out);
        out
    });
    let mut loaded = Loaded::default();
    for part in parts {
        loaded.resources.extend(part.resources);
        loaded.findings.extend(part.findings);
        loaded.sources.extend(part.sources);
    }
    manifest::terraform::load_texts(texts, &opts.load, &mut loaded);
    let mut scan = scan_loaded(loaded, policies, opts);
    scan.stats.files = texts.len();
    scan
}

/// What evaluating one object produced.
#[derive(Default)]
struct Evaluated {
    findings: Vec<Finding>,
    evaluations: usize,
    violations: usize,
    locate_evaluations: usize,
    methods: [usize; 3],
    locate_time: Duration,
    implied: usize,
    exceptions: Vec<crate::findings::ExceptionApplied>,
}

impl Evaluated {
    fn absorb(&mut self, other: Evaluated) {
        self.findings.extend(other.findings);
        self.exceptions.extend(other.exceptions);
        self.evaluations += other.evaluations;
        self.violations += other.violations;
        self.locate_evaluations += other.locate_evaluations;
        for (a, b) in self.methods.iter_mut().zip(other.methods) {
            *a += b;
        }
        self.locate_time += other.locate_time;
    }
}

pub fn scan_loaded(loaded: Loaded, policies: &PolicySet, opts: &ScanOptions) -> Scan {
    let objects: Vec<&serde_json::Value> = loaded.resources.iter().map(|r| &r.object).collect();
    let ctx = match policies.context(&objects) {
        Ok(ctx) => ctx,
        Err(e) => {
            let mut scan = Scan::default();
            scan.outcome.findings = loaded.findings;
            scan.outcome.errors.push(e.to_string());
            return scan;
        }
    };
    drop(objects);
    let sources: HashMap<String, String> =
        loaded.sources.iter().map(|(k, v): &(String, Arc<str>)| (k.clone(), v.to_string())).collect();
    let mut run = Run::default();
    run.batch(loaded, policies, &ctx, opts);
    let mut scan = run.finish(opts);
    // In memory already (the App's fetched files): every text stays available for review comments.
    scan.sources = sources;
    scan
}

fn evaluate(policies: &PolicySet, resource: &Resource, ctx: &Context) -> Evaluated {
    let mut out = Evaluated::default();
    if let Some(message) = expansion::removed_api(resource.api_version(), resource.kind()) {
        let (region, pointer) = resource.origin.locate("/apiVersion");
        out.findings.push(Finding {
            policy: "guardrail/removed-api".into(),
            constraint: String::new(),
            severity: Severity::Deny,
            message,
            file: resource.origin.file.to_string(),
            region,
            pointer,
            resource: Some(resource.reported.clone()),
        });
    }
    let checks = policies.checks_for(resource, ctx);
    if checks.is_empty() {
        return out;
    }
    let prepared = Prepared::new(&resource.object);
    for (check, severity) in checks {
        out.evaluations += 1;
        let policy = policies.policy_name(check);
        let constraint = policies.constraint_name(check);
        let prefix = resource.implied_by.as_ref().map(|i| format!("[Implied by {}] ", i.template)).unwrap_or_default();
        if let Some((rule, query)) = policies.exception_applied(check, &prepared) {
            out.exceptions.push(crate::findings::ExceptionApplied {
                policy: policy.clone(),
                rule,
                query,
                file: resource.origin.file.to_string(),
                resource: Some(resource.reported.clone()),
            });
        }
        let suffix = resource.origin.overlay().map(|o| format!(" (rendered by overlay {o})")).unwrap_or_default();
        // One time budget for the evaluation and the locating of this policy on this object; a
        // policy that ran out of time once is not run again in this run.
        let _budget = crate::policy::engine::Budget::start();
        let result =
            if ctx.timed_out(&policy) { Err(EvalError::Timeout) } else { policies.run_prepared(check, &prepared, ctx) };
        if matches!(result, Err(EvalError::Timeout)) {
            ctx.give_up(&policy);
        }
        match result {
            Ok(hits) => {
                // Terraform objects with values only known at apply time: the policy is run
                // again with probe values in their place (once per policy and object).
                let run = |probe: &serde_json::Value| {
                    let run = policies.run_prepared(check, &Prepared::new(probe), ctx).ok()?;
                    Some(run.into_iter().map(|h| h.message).collect::<Vec<_>>())
                };
                let probes = manifest::terraform::Probes::run(&resource.object, &run);
                if let Some(may) = probes.as_ref().and_then(|p| p.may_violate(&resource.object, hits.len(), &run)) {
                    let (file, region, pointer) = resource.origin.place(&may.pointer, "");
                    out.findings.push(Finding {
                        policy: policy.clone(),
                        constraint: constraint.clone(),
                        severity: Severity::Warn,
                        message: format!("{prefix}{}", may.message),
                        file: file.to_string(),
                        region,
                        pointer,
                        resource: Some(resource.reported.clone()),
                    });
                }
                for hit in &hits {
                    out.violations += 1;
                    let started = Instant::now();
                    let located = locate::locate(policies, check, &resource.object, &prepared, hit, &hits, ctx);
                    out.locate_time += started.elapsed();
                    out.locate_evaluations += located.evaluations;
                    out.methods[match located.method {
                        Method::Declared => 0,
                        Method::Searched => 1,
                        Method::Resource => 2,
                    }] += 1;
                    let places = std::iter::once((located.pointer.clone(), located.missing.clone()))
                        .chain(located.others.iter().cloned());
                    for (at, missing) in places {
                        let field = locate::Located::field_pointer(&at, missing.as_deref());
                        // A rendered object (kustomize): the field the overlay changed that caused it.
                        let at = if missing.is_none() {
                            rendered_cause(policies, check, &prepared, ctx, hit, &hits, resource, &at)
                        } else {
                            at
                        };
                        let (file, region, pointer) = if at.is_empty() {
                            let (file, region) = resource.origin.place_head();
                            (file, region, resource.origin.prefix.clone())
                        } else {
                            resource.origin.place(&at, &hit.message)
                        };
                        // A missing field: reported at its enclosing object, pointing where it would
                        // go, and named from the nearest object the file has (an implied Pod's
                        // metadata may exist only in the expansion).
                        let (pointer, missing) = match missing {
                            Some(_) => {
                                let full = format!("{}{field}", resource.origin.prefix);
                                let named = manifest::node::pointer_tokens(&full[pointer.len().min(full.len())..])
                                    .collect::<Vec<_>>()
                                    .join(".");
                                (full, Some(named))
                            }
                            None => (pointer, None),
                        };
                        let (mut severity, mut message) = (severity, format!("{prefix}{}", hit.message));
                        if let Some(missing) = &missing {
                            message.push_str(&format!(" (missing: {missing})"));
                        }
                        message.push_str(&suffix);
                        if let Some(probes) = &probes {
                            probes.soften(&resource.object, hits.len(), &at, &mut severity, &mut message, &run);
                        }
                        out.findings.push(Finding {
                            policy: policy.clone(),
                            constraint: constraint.clone(),
                            severity,
                            message,
                            file: file.to_string(),
                            region,
                            pointer,
                            resource: Some(resource.reported.clone()),
                        });
                    }
                }
            }
            Err(err) => {
                let message = match err {
                    EvalError::Timeout => format!("{prefix}policy {policy} did not finish within its time limit on this object; the object was not checked by it"),
                    EvalError::Limit(limit) => format!("{prefix}policy {policy} went over a limit on this object ({limit}); the object was not checked by it"),
                    EvalError::Failed(e) => format!("{prefix}policy {policy} failed on this object, so the object was not checked by it: {e}"),
                };
                let (file, region) = resource.origin.place_head();
                out.findings.push(Finding {
                    policy: policy.clone(),
                    constraint: constraint.clone(),
                    severity: Severity::Deny,
                    message: format!("{message}{suffix}"),
                    file: file.to_string(),
                    region,
                    pointer: resource.origin.prefix.clone(),
                    resource: Some(resource.reported.clone()),
                });
            }
        }
    }
    out
}

/// For a rendered object, the field an overlay changed that made the violation: under the located
/// field, the one whose value from before the overlay takes the violation away; for a finding about
/// the whole object, the name prefix, namespace or label without which the policy applies less.
/// Otherwise the located pointer as it is.
#[allow(clippy::too_many_arguments)]
fn rendered_cause(
    policies: &PolicySet,
    check: crate::policy::Check,
    prepared: &Prepared,
    ctx: &Context,
    hit: &crate::policy::Hit,
    hits: &[crate::policy::Hit],
    resource: &Resource,
    located: &str,
) -> String {
    let fewer = |pointer: &str, with: Option<&serde_json::Value>, or_gone: bool| {
        let tokens: Vec<String> = manifest::node::pointer_tokens(pointer).collect();
        let variant = prepared.edited(&tokens, with);
        policies.run_prepared(check, &variant, ctx).is_ok_and(|h| {
            h.len() < hits.len() || (or_gone && h.len() <= hits.len() && h.iter().all(|x| x.message != hit.message))
        })
    };
    if !located.is_empty() {
        let changes = resource.origin.changed_under(located);
        if changes.iter().any(|(p, _)| p == located) {
            return located.to_string();
        }
        return changes
            .into_iter()
            .find(|(p, before)| fewer(p, Some(before), false))
            .map_or(located.to_string(), |(p, _)| p);
    }
    let originals = resource.origin.originals();
    // Labels first: their change alters the message; a name change alters every message.
    let order = |p: &str| {
        if p.starts_with("/metadata/labels") {
            0
        } else if p == "/metadata/namespace" {
            1
        } else {
            2
        }
    };
    let mut ordered: Vec<_> = originals.iter().collect();
    ordered.sort_by_key(|(p, _)| order(p));
    for (p, before) in ordered {
        if fewer(p, before.as_ref(), order(p) < 2) {
            return p.clone();
        }
        // A label whose value is wrong (a pattern): removing it is a violation too, a plain value is not.
        let value = prepared_value(resource, p);
        if order(p) == 0 && value.is_some() {
            let plain: String =
                value.unwrap_or_default().to_lowercase().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            for v in [plain, "a".to_string()].into_iter().filter(|v| !v.is_empty()) {
                if fewer(p, Some(&serde_json::Value::String(v)), true) {
                    return p.clone();
                }
            }
        }
    }
    String::new()
}

fn prepared_value(resource: &Resource, pointer: &str) -> Option<String> {
    resource.object.pointer(pointer).and_then(serde_json::Value::as_str).map(str::to_string)
}
