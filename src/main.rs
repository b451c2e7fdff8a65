//! The `guardrail` command: wiring only. `check` scans manifests, `verify` runs policy tests,
//! `policies` lists them, `serve` runs the GitHub App, `setup` registers it; the commands other than
//! `serve` live in `guardrail::cli`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use guardrail::cli;

#[derive(Parser)]
#[command(name = "guardrail", version, about = "Gatekeeper policies on pull requests: findings at the exact field")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check Kubernetes manifests against the built-in pack and your policies.
    Check(Box<cli::CheckArgs>),
    /// Run the GitHub App: receive webhooks, check pull requests, post check runs and review comments.
    Serve(Box<guardrail::settings::ServeArgs>),
    /// Run gator `suite.yaml` tests and Rego `test_*` rules.
    Verify(cli::VerifyArgs),
    /// List every policy `check` would use: what it denies, its parameters, where it comes from.
    Policies(Box<cli::PoliciesArgs>),
    /// Register the GitHub App on GitHub (manifest flow) and write its credentials for `serve`.
    Setup(Box<cli::SetupArgs>),
    /// Print a completion script for a shell (e.g. `guardrail completions bash > /etc/bash_completion.d/guardrail`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Internal: one evaluation request from stdin, in a contained process (`guardrail::isolate`).
    #[command(name = "__worker", hide = true)]
    Worker {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    guardrail::no_library_backtraces();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("GUARDRAIL_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal; log collectors get plain text.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
        .init();
    match Cli::parse().command {
        // In a worker process: a policy that crashes the engine is an error, not a crash.
        Command::Check(args) => {
            guardrail::isolate::Isolation { memory_bytes: args.memory_limit << 20, ..Default::default() }
                .run_command(&std::env::args_os().skip(1).collect::<Vec<_>>())
        }
        Command::Verify(args) => cli::verify::run(&args),
        Command::Policies(args) => cli::policies::run(&args),
        Command::Setup(args) => cli::setup::run(&args),
        Command::Serve(args) => serve(&args),
        Command::Worker { args } => guardrail::isolate::worker_main(&args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "guardrail", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
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
