//! `guardrail policies`: every policy a `check` with the same options would know, what it denies, its
//! parameters, its constraints and where it comes from; `--format json` for scripts.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::{config as cli_config, ListFormat, PoliciesArgs};
use crate::jobs::config;
use crate::policy::{self, PolicySet};
use crate::report::catalog::{self, PolicyInfo, Status};
use crate::report::terminal::{escape, escape_line};

pub fn run(args: &PoliciesArgs) -> ExitCode {
    match list(args) {
        Ok(policies) => {
            let text = match args.format {
                ListFormat::Json => {
                    let mut t = serde_json::to_string_pretty(&serde_json::json!({ "policies": policies }))
                        .expect("policies serialize");
                    t.push('\n');
                    t
                }
                ListFormat::Human => human(&policies),
            };
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors {
                eprintln!("error: {}", escape(&e));
            }
            ExitCode::from(2)
        }
    }
}

/// The policies of the built-in pack and `--policy`, with the configuration's `disable` applied.
pub fn list(args: &PoliciesArgs) -> Result<Vec<PolicyInfo>, Vec<String>> {
    let loaded = cli_config::load(&args.policies).map_err(|e| vec![e])?;
    let opts = policy::LoadOptions {
        builtin: !args.policies.no_builtin,
        k8s_native_validation: args.policies.engine.enable_k8s_native_validation,
        ..Default::default()
    };
    let mut set = PolicySet::load(&args.policies.policy, &opts)
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let (enabled, _) = config::builtin_selection(&loaded.repo, &loaded.org);
    let disabled: Vec<String> =
        policy::builtin_names().into_iter().filter(|n| !enabled.iter().any(|e| e == n)).map(String::from).collect();
    let kinds: Vec<String> = set
        .builtin_of
        .iter()
        .filter(|(_, n)| disabled.contains(n))
        .map(|(i, _)| set.templates[*i].kind.clone())
        .collect();
    set.constraints.retain(|c| !kinds.contains(&c.kind));
    Ok(catalog::describe(&set, &disabled))
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Active => "active",
        Status::NotConfigured => "not configured (needs your organisation's data)",
        Status::Disabled => "disabled by the configuration",
        Status::NoConstraint => "no Constraint (does nothing)",
        Status::Unsupported => "cannot be evaluated",
    }
}

fn human(policies: &[PolicyInfo]) -> String {
    let mut out = String::new();
    for p in policies {
        let _ = writeln!(out, "{}  [{}]", escape_line(&p.name), status(p.status));
        let mut source = p.source.clone();
        if !p.constraint_kind.is_empty() {
            source = format!("{} ({} {})", source, p.kind, p.constraint_kind);
        } else if p.kind == "Rego module" {
            source = format!("{} (Rego module: {})", source, p.rules.join(", "));
        }
        let _ = writeln!(out, "  source: {}", escape_line(&source));
        if !p.description.is_empty() {
            let _ = writeln!(out, "  denies: {}", escape(&p.description));
        }
        if !p.remediation.is_empty() {
            let _ = writeln!(out, "  fix:    {}", escape(&p.remediation));
        }
        for param in &p.parameters {
            let _ = writeln!(
                out,
                "  parameter {} ({}): {}",
                escape_line(&param.name),
                escape_line(&param.kind),
                escape(&param.description)
            );
        }
        for c in p.constraints.iter().filter(|c| !c.name.is_empty()) {
            let params = if c.parameters.as_object().is_some_and(|o| !o.is_empty()) {
                format!(" {}", c.parameters)
            } else {
                String::new()
            };
            let _ = writeln!(out, "  constraint {} ({}){}", escape_line(&c.name), c.action, escape_line(&params));
        }
        out.push('\n');
    }
    let active = policies.iter().filter(|p| p.status == Status::Active).count();
    let _ = writeln!(out, "{} policies, {active} active", policies.len());
    out
}
