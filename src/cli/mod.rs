//! The command line, apart from `serve`: the arguments of `check`, `verify`, `policies` and `setup`,
//! and what each command does. `main.rs` only parses and dispatches. A new flag goes into the `Args`
//! struct of its command (or `PolicyArgs`, shared by `check` and `policies`) and is read where the
//! command uses it.
//!
//! Conventions, as users of conftest, kube-linter, checkov and gator expect them: exit 0 clean, 1 on
//! findings that fail the run (`--fail-on`), 2 on usage and load errors or when nothing was checked.

pub mod baseline;
pub mod check;
pub mod config;
pub mod conftest;
pub mod inputs;
pub mod output;
pub mod policies;
pub mod setup;
pub mod verify;

use std::path::PathBuf;

pub use output::OutputArgs;

/// Where policies come from: shared by `check` and `policies`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct PolicyArgs {
    /// ConstraintTemplates + Constraints, ExpansionTemplates or conftest .rego files (repeatable).
    #[arg(long, short = 'p', env = "GUARDRAIL_POLICY", value_delimiter = ',', value_name = "PATH")]
    pub policy: Vec<PathBuf>,
    /// Do not load the built-in policy pack.
    #[arg(long)]
    pub no_builtin: bool,
    /// The repository's guardrail configuration (default: .github/guardrail.yml in the current folder,
    /// else at the root of the git repository around it; .gitlab/guardrail.yml where that is absent).
    #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
    pub config: Option<PathBuf>,
    /// Do not read .github/guardrail.yml (or .gitlab/guardrail.yml).
    #[arg(long)]
    pub no_config: bool,
    /// The organisation's guardrail-org.yml (required built-ins, central exemptions). Default: the one
    /// at the root of a --policy folder, as the App reads it from the policy repository.
    #[arg(long, value_name = "FILE")]
    pub org_config: Option<PathBuf>,
    /// The repository being checked (owner/name), for exemptions that name repositories. Default:
    /// GITHUB_REPOSITORY, CI_PROJECT_PATH, or the git remote `origin`.
    #[arg(long, env = "GUARDRAIL_REPOSITORY", value_name = "OWNER/NAME")]
    pub repository: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Which engine runs a template that has both CEL and Rego (gator's flag): shared by `check`,
/// `verify` and `policies`.
#[derive(clap::Args, Clone, Debug)]
pub struct EngineArgs {
    /// Run templates' K8sNativeValidation (CEL) code where they have it; `=false` runs their Rego.
    #[arg(long, env = "GUARDRAIL_ENABLE_K8S_NATIVE_VALIDATION", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable_k8s_native_validation: bool,
}

impl Default for EngineArgs {
    fn default() -> Self {
        EngineArgs { enable_k8s_native_validation: true }
    }
}

/// `guardrail check`.
#[derive(clap::Args, Clone, Debug)]
pub struct CheckArgs {
    /// Files or folders to check (YAML, JSON, Terraform; folders recursively; `-` reads standard input).
    /// ConstraintTemplates, Constraints and ExpansionTemplates among them are used as policies, as
    /// `gator test -f` does. Default: the current folder.
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub policies: PolicyArgs,
    /// Namespace for namespaced objects that do not set metadata.namespace (overrides `namespace:` of
    /// the configuration).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Report only findings that are not in this baseline file (see --write-baseline).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Record today's findings as accepted in FILE and exit 0 (unless guardrail could not check).
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
    /// No Kubernetes object in the inputs is a pass, not an error (for hooks that pass whichever files
    /// changed, e.g. pre-commit).
    #[arg(long)]
    pub allow_empty: bool,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[command(flatten)]
    pub rego: conftest::RegoArgs,
    /// Run the Rego modules once on all documents together (`[{"path", "contents"}]`), as
    /// conftest's --combine; ConstraintTemplates still check each object.
    #[arg(long)]
    pub combine: bool,
    /// Memory (MiB) the check may use; over it, the check fails with an error instead of
    /// exhausting the machine. 0: no limit.
    #[arg(long, env = "GUARDRAIL_MEMORY_LIMIT", value_name = "MIB", default_value_t = crate::isolate::DEFAULT_MEMORY_BYTES >> 20)]
    pub memory_limit: u64,
}

/// The commands a supervising parent runs in a worker process (`guardrail __worker check …`, see
/// `crate::isolate`): the same arguments, parsed again here.
pub fn run_supervised(args: &[String]) -> std::process::ExitCode {
    #[derive(clap::Parser)]
    #[command(name = "guardrail")]
    struct Supervised {
        #[command(subcommand)]
        command: SupervisedCommand,
    }
    #[derive(clap::Subcommand)]
    enum SupervisedCommand {
        Check(Box<CheckArgs>),
    }
    use clap::Parser;
    match Supervised::try_parse_from(std::iter::once("guardrail".to_string()).chain(args.iter().cloned())) {
        Ok(Supervised { command: SupervisedCommand::Check(args) }) => check::run(&args),
        Err(e) => {
            let _ = e.print();
            std::process::ExitCode::from(2)
        }
    }
}

/// `guardrail verify`.
#[derive(clap::Args, Clone, Debug)]
pub struct VerifyArgs {
    /// Suite files or folders (searched recursively). Default: the current folder.
    pub paths: Vec<PathBuf>,
    /// Print every case, not only failures.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// More suite files or folders, as conftest verify's --policy (repeatable).
    #[arg(long, short = 'p', value_name = "PATH")]
    pub policy: Vec<PathBuf>,
    #[command(flatten)]
    pub rego: conftest::RegoArgs,
    /// Memory (MiB) the process that runs the tests may use; over it, the run fails with an error
    /// instead of exhausting the machine. 0: no limit.
    #[arg(long, env = "GUARDRAIL_MEMORY_LIMIT", value_name = "MIB", default_value_t = crate::isolate::DEFAULT_MEMORY_BYTES >> 20)]
    pub memory_limit: u64,
}

/// `guardrail policies`.
#[derive(clap::Args, Clone, Debug)]
pub struct PoliciesArgs {
    #[command(flatten)]
    pub policies: PolicyArgs,
    /// human or json.
    #[arg(long, short = 'f', value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Human,
    Json,
}

/// `guardrail setup`: register the GitHub App from its manifest.
#[derive(clap::Args, Clone, Debug)]
pub struct SetupArgs {
    /// The URL GitHub sends webhooks to: https://HOST/webhooks/github.
    #[arg(long, value_name = "URL")]
    pub webhook_url: String,
    /// Register the App under this organisation (default: your personal account).
    #[arg(long, value_name = "ORG")]
    pub org: Option<String>,
    /// The App's name on GitHub (must be unique there).
    #[arg(long, default_value = "guardrail")]
    pub name: String,
    /// The App manifest to start from.
    #[arg(long, value_name = "FILE", default_value = "app.yml")]
    pub manifest: PathBuf,
    /// GitHub's web address (GitHub Enterprise Server: https://HOST).
    #[arg(long, env = "GUARDRAIL_GITHUB_URL", default_value = "https://github.com")]
    pub github_url: String,
    /// GitHub's REST API (GitHub Enterprise Server: https://HOST/api/v3).
    #[arg(long, env = "GUARDRAIL_GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: String,
    /// Where the local page listens; the browser comes back to it from GitHub.
    #[arg(long, default_value = "127.0.0.1:3456")]
    pub listen: String,
    /// Folder to write the App's credentials to (app-id, private-key, webhook-secret, guardrail.env).
    #[arg(long, value_name = "DIR", default_value = "guardrail-app")]
    pub out: PathBuf,
    /// Give up when GitHub has not sent the browser back within this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
}
