//! The `guardrail` command: wiring only. `check` scans manifests, `verify` runs policy tests.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use guardrail::manifest::LoadOptions;
use guardrail::policy::{self, PolicySet};
use guardrail::report::{self, Format, RenderOptions};
use guardrail::scan::{self, ScanOptions};

#[derive(Parser)]
#[command(name = "guardrail", version, about = "Gatekeeper policies on pull requests: findings at the exact field")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check Kubernetes manifests against the built-in pack and your policies.
    Check {
        /// Files or folders to check (YAML; folders recursively). Default: the current folder.
        paths: Vec<PathBuf>,
        /// ConstraintTemplates + Constraints, ExpansionTemplates or conftest .rego files (repeatable).
        #[arg(long, short = 'p', env = "GUARDRAIL_POLICY", value_delimiter = ',')]
        policy: Vec<PathBuf>,
        /// Do not load the built-in policy pack.
        #[arg(long)]
        no_builtin: bool,
        /// Namespace for namespaced objects that do not set metadata.namespace.
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        #[arg(long, short = 'f', value_enum, default_value = "human")]
        format: Format,
        /// Color in human output: auto, always, never.
        #[arg(long, default_value = "auto")]
        color: String,
        /// Worker threads (default: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Run the GitHub App: receive webhooks, check pull requests, post check runs and review comments.
    Serve(Box<guardrail::settings::ServeArgs>),
    /// Run gator `suite.yaml` tests and Rego `test_*` rules.
    Verify {
        /// Suite files or folders (searched recursively). Default: the current folder.
        paths: Vec<PathBuf>,
        /// Print every case, not only failures.
        #[arg(long, short = 'v')]
        verbose: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
}

/// Which engine runs a template that has both CEL and Rego (gator's flag).
#[derive(clap::Args)]
struct EngineArgs {
    /// Run templates' K8sNativeValidation (CEL) code where they have it; `=false` runs their Rego.
    #[arg(long, env = "GUARDRAIL_ENABLE_K8S_NATIVE_VALIDATION", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    enable_k8s_native_validation: bool,
}

fn main() -> ExitCode {
    guardrail::no_library_backtraces();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("GUARDRAIL_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Check { paths, policy, no_builtin, namespace, format, color, threads, engine } => {
            check(paths, policy, no_builtin, namespace, format, &color, threads, engine.enable_k8s_native_validation)
        }
        Command::Verify { paths, verbose, engine } => verify(paths, verbose, engine.enable_k8s_native_validation),
        Command::Serve(args) => serve(&args),
    }
}

/// Ctrl-C, or SIGTERM (what Kubernetes sends): stop taking work, finish the jobs in hand.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down: finishing the jobs in hand");
}

fn serve(args: &guardrail::settings::ServeArgs) -> ExitCode {
    let settings = match guardrail::settings::Settings::from_args(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("guardrail serve: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("guardrail serve: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        use guardrail::service::Service;
        let service = Service::build(&settings, Default::default(), Default::default()).await?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("GUARDRAIL_LISTEN: cannot listen on {}: {e}", settings.listen))?;
        tracing::info!(listen = %settings.listen, "guardrail serving");
        service.serve(listener, shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guardrail serve: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check(
    paths: Vec<PathBuf>,
    policy_paths: Vec<PathBuf>,
    no_builtin: bool,
    namespace: Option<String>,
    format: Format,
    color: &str,
    threads: usize,
    k8s_native_validation: bool,
) -> ExitCode {
    let paths = if paths.is_empty() { vec![PathBuf::from(".")] } else { paths };
    let opts = policy::LoadOptions { builtin: !no_builtin, k8s_native_validation, ..Default::default() };
    let policies = match PolicySet::load(&policy_paths, &opts) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let scan_opts = ScanOptions {
        load: LoadOptions { default_namespace: namespace, ..Default::default() },
        threads,
        ..Default::default()
    };
    let scan = match scan::scan_paths(&paths, &policies, &scan_opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let color = match color {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let render = RenderOptions { color, tool_version: env!("CARGO_PKG_VERSION") };
    print!("{}", report::render(format, &scan.outcome, &scan.sources, &render));
    tracing::info!(?scan.stats, "scan finished");
    if !scan.outcome.errors.is_empty() {
        ExitCode::from(2)
    } else if scan.outcome.has_deny() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn verify(paths: Vec<PathBuf>, verbose: bool, k8s_native_validation: bool) -> ExitCode {
    let paths = if paths.is_empty() { vec![PathBuf::from(".")] } else { paths };
    let summary = guardrail::verify::run_with(&paths, guardrail::verify::Options { k8s_native_validation });
    for r in &summary.results {
        match &r.error {
            Some(e) => println!("FAIL {}\n     {}", r.name, e.replace('\n', "\n     ")),
            None if verbose => println!("ok   {}", r.name),
            None => {}
        }
    }
    println!("{} passed, {} failed", summary.passed(), summary.failed());
    if summary.results.is_empty() {
        eprintln!("error: no suites or Rego tests found");
        return ExitCode::from(2);
    }
    if summary.failed() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
