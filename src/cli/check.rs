//! `guardrail check`: one run in named steps (configuration, inputs, policies, scan, baseline,
//! reports), each short. Whatever stops a run early is an error said on standard error and in every
//! report (a SARIF log with `executionSuccessful: false`, say), and the exit code is 2: a run that
//! checked nothing (no objects, no policies) never passes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::config::{self as cli_config, Loaded};
use super::inputs::{self, PathPolicies};
use super::output::{self, Destination, Plan};
use super::{baseline, CheckArgs};
use crate::exempt::Exemptions;
use crate::findings::{Outcome, SuppressionKind};
use crate::jobs::config::{self, FileFilter};
use crate::manifest::{self, LoadOptions};
use crate::policy::{self, PolicySet};
use crate::report::catalog;
use crate::report::{self, terminal, Checked, Format, RenderOptions, RunInfo};
use crate::scan::{self, FileSelect, ScanOptions};

/// Why a run stopped before it could check anything.
struct Fatal(Vec<String>);

impl From<String> for Fatal {
    fn from(e: String) -> Self {
        Fatal(vec![e])
    }
}

/// The state of one run, filled in step by step.
struct Run<'a> {
    args: &'a CheckArgs,
    info: RunInfo,
    outcome: Outcome,
    sources: HashMap<String, String>,
    config: Loaded,
}

pub fn run(args: &CheckArgs) -> ExitCode {
    let plan = match Plan::new(&args.output) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut run = Run {
        args,
        info: RunInfo {
            quiet: args.output.quiet,
            fail_on: args.output.fail_on.least(),
            cwd: std::env::current_dir().unwrap_or_default(),
            ..Default::default()
        },
        outcome: Outcome::default(),
        sources: HashMap::new(),
        config: Loaded::default(),
    };
    if let Err(Fatal(errors)) = run.steps() {
        run.outcome.errors.extend(errors);
    }
    run.report(&plan)
}

impl Run<'_> {
    fn steps(&mut self) -> Result<(), Fatal> {
        self.configuration()?;
        let paths = if self.args.paths.is_empty() { vec![PathBuf::from(".")] } else { self.args.paths.clone() };
        for path in &paths {
            if path.as_os_str() != "-" && std::fs::symlink_metadata(path).is_err() {
                return Err(format!("{}: no such file or directory", path.display()).into());
            }
        }
        let select = self.file_filter()?;
        let limits = manifest::Limits::default();
        let found = inputs::find(&paths, &select, &self.args.policies.policy, &limits);
        let mut policies = self.policies(&found)?;
        let combined = if self.args.combine { std::mem::take(&mut policies.modules) } else { Vec::new() };
        self.scan(&paths, &policies, select, &found)?;
        if self.args.combine {
            // The scan streams and keeps only texts with findings: the combined input reads them all again.
            let mut sources = super::conftest::combined_sources(&paths, &limits);
            for (file, text) in &self.sources {
                sources.entry(file.clone()).or_insert_with(|| text.clone());
            }
            let findings = super::conftest::run_combined(&combined, &sources);
            self.outcome.findings.extend(findings);
        }
        self.baseline()
    }

    /// `.github/guardrail.yml` and `guardrail-org.yml`, as the App reads them.
    fn configuration(&mut self) -> Result<(), Fatal> {
        self.config = cli_config::load(&self.args.policies)?;
        self.info.root = self.config.root.clone();
        self.info.cwd = self.config.cwd.clone();
        Ok(())
    }

    /// The configuration's include and exclude, on paths relative to the repository root.
    fn file_filter(&self) -> Result<FileSelect, Fatal> {
        let repo = &self.config.repo;
        if repo.include.is_empty() && repo.exclude.is_empty() {
            return Ok(FileSelect::default());
        }
        let filter = Arc::new(FileFilter::new(repo)?);
        let info = self.info.clone();
        Ok(FileSelect::new(move |file| file == "-" || filter.matches(&info.repo_path(file))))
    }

    /// The built-in pack (less what the configuration disables), `--policy` paths and the policy
    /// documents among PATHS. Something must be left to evaluate.
    fn policies(&mut self, found: &PathPolicies) -> Result<PolicySet, Fatal> {
        let args = &self.args.policies;
        for path in &args.policy {
            if std::fs::symlink_metadata(path).is_err() {
                return Err(format!("--policy {}: no such file or directory", path.display()).into());
            }
            if !holds_policy(path) {
                return Err(format!(
                    "--policy {} holds no policy: no ConstraintTemplate, Constraint or ExpansionTemplate (.yaml, .yml) and no Rego module (.rego)",
                    path.display()
                )
                .into());
            }
        }
        let mut paths = args.policy.clone();
        paths.extend(found.files.iter().cloned());
        paths.extend(self.args.rego.data_modules());
        let opts = policy::LoadOptions {
            builtin: !args.no_builtin,
            k8s_native_validation: args.engine.enable_k8s_native_validation,
            conftest: self.args.rego.options()?,
            ..Default::default()
        };
        let mut set =
            PolicySet::load(&paths, &opts).map_err(|errors| Fatal(errors.iter().map(|e| e.to_string()).collect()))?;

        let (enabled, refused) = config::builtin_selection(&self.config.repo, &self.config.org);
        let disabled = catalog::disable_builtins(&mut set, &enabled);
        if !refused.is_empty() {
            self.info.notes.push(format!(
                "{} cannot disable {}: the organisation requires {}",
                config::REPO_CONFIG,
                refused.join(", "),
                if refused.len() == 1 { "it" } else { "them" }
            ));
        }
        let described = catalog::describe(&set, &disabled);
        self.unconfigured_note(&described);
        let active = catalog::active_count(&described);
        self.info.policies = described;
        if active == 0 && set.modules.is_empty() {
            return Err(self.no_policies(&set).into());
        }
        if set.modules.iter().all(|m| m.rules.is_empty()) && !set.modules.is_empty() && active == 0 {
            // conftest passes when the namespaces asked for hold no rules
            self.info.notes.push("no Rego rules in the packages selected (--rego-namespace, default main)".into());
        }
        Ok(set)
    }

    /// One note for the built-ins that wait for the organisation's data.
    fn unconfigured_note(&mut self, described: &[report::PolicyInfo]) {
        self.info.notes.extend(catalog::unconfigured_note(described));
    }

    fn no_policies(&self, set: &PolicySet) -> String {
        let args = &self.args.policies;
        let evaluable =
            set.templates.iter().filter(|t| !matches!(t.body, policy::template::TemplateBody::Unsupported(_)));
        let kinds: Vec<&str> = evaluable.map(|t| t.kind.as_str()).collect();
        if args.no_builtin && args.policy.is_empty() && kinds.is_empty() {
            return "no policies to check against: --no-builtin was given without --policy, and PATHS hold no ConstraintTemplate".into();
        }
        if !kinds.is_empty() && set.constraints.is_empty() && set.modules.is_empty() {
            return format!(
                "no policies to check against: {} ConstraintTemplate(s) ({}) but no Constraint of their kind; a template checks nothing until a Constraint uses it",
                kinds.len(),
                kinds.join(", ")
            );
        }
        format!(
            "no policies to check against: every policy is disabled or waits for configuration (see `guardrail policies`{})",
            match &self.config.repo_file {
                Some(f) => format!(" and {}", f.display()),
                None => String::new(),
            }
        )
    }

    fn scan(
        &mut self,
        paths: &[PathBuf],
        policies: &PolicySet,
        select: FileSelect,
        found: &PathPolicies,
    ) -> Result<(), Fatal> {
        let only_policies = found.only_policies.clone();
        let wanted = FileSelect::new(move |file| !only_policies.contains(file) && select.wants(file));
        let opts = ScanOptions {
            load: LoadOptions {
                default_namespace: self.args.namespace.clone().or_else(|| self.config.repo.namespace.clone()),
                ..Default::default()
            },
            threads: self.args.threads,
            exemptions: Exemptions {
                rules: self.config.org.exemptions.clone(),
                repository: self.config.repository.clone(),
                today: None,
            },
            select: wanted,
        };
        let scanned = scan::scan_paths(paths, policies, &opts).map_err(|e| e.to_string())?;
        tracing::info!(?scanned.stats, "scan finished");
        let mut outcome = scanned.outcome;
        // Policy documents in files that also hold objects were read as objects too.
        let about_policy = |f: &crate::findings::Finding| {
            found.mixed.contains(&f.file)
                && f.resource.as_ref().is_some_and(|r| inputs::is_policy_api_version(&r.api_version))
        };
        outcome.findings.retain(|f| !about_policy(f));
        outcome.suppressed.retain(|s| !about_policy(&s.finding));
        if let Some(org_file) = &self.config.org_file {
            for s in &mut outcome.suppressed {
                if s.suppression.kind == SuppressionKind::Organisation {
                    s.suppression.source = org_file.display().to_string();
                }
            }
        }
        let objects = scanned.stats.resources.saturating_sub(found.mixed_documents);
        let checked =
            Checked { files: scanned.stats.files, objects, policies: catalog::active_count(&self.info.policies) };
        self.info.checked = Some(checked);
        // An overlay guardrail refused to render is reported as such, not as an empty input.
        let refused = outcome.findings.iter().any(|f| f.policy == crate::manifest::kustomize::KUSTOMIZE_POLICY);
        if checked.objects == 0 && !self.args.allow_empty && !refused {
            outcome.errors.push(self.nothing_checked(checked.files));
        }
        self.outcome = outcome;
        self.sources = scanned.sources;
        Ok(())
    }

    fn nothing_checked(&self, files: usize) -> String {
        let filtered = match &self.config.repo_file {
            Some(f) if !self.config.repo.include.is_empty() || !self.config.repo.exclude.is_empty() => {
                format!(" (after the include and exclude of {})", f.display())
            }
            _ => String::new(),
        };
        if files == 0 {
            format!("no Kubernetes objects were checked: no manifest files (.yaml, .yml, .json, .tf) in the given paths{filtered}")
        } else {
            format!(
                "no Kubernetes objects were checked: the {files} file(s) read{filtered} hold none (a manifest has apiVersion and kind; Helm templates must be rendered first)"
            )
        }
    }

    /// `--baseline`: only new findings count. `--write-baseline`: today's findings are accepted.
    fn baseline(&mut self) -> Result<(), Fatal> {
        if let Some(file) = &self.args.write_baseline {
            if self.outcome.errors.is_empty() {
                baseline::write(file, &baseline::of(&self.outcome, &self.info))?;
                self.info.notes.push(format!(
                    "wrote {} finding(s) to the baseline {}",
                    self.outcome.findings.len(),
                    file.display()
                ));
            }
        }
        if let Some(file) = &self.args.baseline {
            let accepted = baseline::read(file)?;
            baseline::apply(&mut self.outcome, &accepted, file, &self.info);
        }
        Ok(())
    }

    /// Every report, errors on standard error, and the exit code.
    fn report(mut self, plan: &Plan) -> ExitCode {
        self.outcome.sort();
        for error in &self.outcome.errors {
            eprintln!("error: {}", terminal::escape(error));
        }
        // A file that was not checked is never silent, whatever the output format.
        for skipped in self.outcome.findings.iter().filter(|f| f.policy == crate::manifest::NOTE_POLICY) {
            eprintln!(
                "warning: {} not checked: {}",
                terminal::escape(&skipped.file),
                terminal::escape(&skipped.message)
            );
        }
        let mut write_errors = Vec::new();
        for (format, destination) in &plan.reports {
            let stdout = *destination == Destination::Stdout;
            let mut info = self.info.clone();
            info.errors_elsewhere = stdout && format.is_for_terminal();
            if !stdout {
                info.quiet = false;
            }
            let opts = RenderOptions {
                color: plan.color && stdout && *format == Format::Human,
                tool_version: env!("CARGO_PKG_VERSION"),
                run: info,
            };
            let text = report::render(*format, &self.outcome, &self.sources, &opts);
            if let Err(e) = output::write(destination, &text) {
                write_errors.push(e);
            }
        }
        for e in &write_errors {
            eprintln!("error: {e}");
        }
        if !self.outcome.errors.is_empty() || !write_errors.is_empty() {
            ExitCode::from(2)
        } else if self.args.write_baseline.is_some() {
            ExitCode::SUCCESS
        } else if self.outcome.findings.iter().any(|f| self.info.fails(f.severity)) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Whether a `--policy` path holds a policy: a Rego module, or a YAML document that is a
/// ConstraintTemplate, a Constraint or an ExpansionTemplate.
fn holds_policy(path: &std::path::Path) -> bool {
    let mut stack = vec![path.to_path_buf()];
    let limits = manifest::Limits::default();
    while let Some(p) = stack.pop() {
        let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if p.is_dir() {
            if p != path && name.starts_with('.') {
                continue;
            }
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.filter_map(Result::ok).map(|e| e.path()));
            }
        } else if name.ends_with(".rego") {
            return true;
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            let file = manifest::InputFile { display: p.display().to_string(), path: p.clone() };
            let Ok(text) = manifest::read_file(&file, &limits) else { continue };
            let mut errors = Vec::new();
            let objects = policy::policy_objects(&file.display, &text, &mut errors);
            if !errors.is_empty()
                || objects.iter().any(|o| {
                    (inputs::is_policy_document(o) && !o["apiVersion"].as_str().unwrap_or("").starts_with("test."))
                        || policy::cel::vap::is_policy(o)
                        || policy::cel::vap::is_binding(o)
                })
            {
                // A file that does not parse counts: loading it reports the error.
                return true;
            }
        }
    }
    false
}
