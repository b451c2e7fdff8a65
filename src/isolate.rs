//! Untrusted policy evaluation where a crash is contained: a `guardrail __worker` subprocess with
//! resource limits (address space, CPU time), given one request as JSON on stdin and answering
//! JSON on stdout. An abort, a stack overflow or an allocation over the limit ends the worker,
//! not the caller: it becomes a `WorkerError::Crashed` with a message a person can act on.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use serde::{Deserialize, Serialize};

/// One piece of work for a worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Request {
    /// `verify` over `paths`; `within`: no suite may read outside the first path (pull-request files).
    Verify { paths: Vec<PathBuf>, within: bool, options: crate::verify::Options },
    /// `scan::scan_texts` of a pull request's files against the policy set `recipe` loads again.
    /// `overlays`: kustomize overlays to render and evaluate beside the texts.
    Scan {
        texts: Vec<(String, String)>,
        #[serde(default)]
        overlays: Box<crate::jobs::kustomize::Gathered>,
        recipe: Box<crate::policy::Recipe>,
        options: ScanRequestOptions,
    },
}

/// The parts of `scan::ScanOptions` a worker needs (`select` only applies to `scan_paths`).
#[derive(Debug, Serialize, Deserialize)]
pub struct ScanRequestOptions {
    pub load: crate::manifest::LoadOptions,
    pub threads: usize,
    pub exemptions: crate::exempt::Exemptions,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Response {
    Verify { results: Vec<(String, Option<String>)> },
    Scan { scan: Box<crate::scan::Scan> },
}

/// Where workers come from and what they may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolation {
    /// The guardrail binary to run as `__worker` (this one, unless tests point elsewhere).
    pub exe: PathBuf,
    /// Address-space limit per worker (bytes); 0: none.
    pub memory_bytes: u64,
    /// CPU-time limit per worker (seconds); 0: none.
    pub cpu_seconds: u64,
}

/// Default address-space limit of a worker: far above a real evaluation, far below the machine.
pub const DEFAULT_MEMORY_BYTES: u64 = 4 << 30;
/// Default CPU-time limit of a worker (seconds): many policies times the evaluation limit.
pub const DEFAULT_CPU_SECONDS: u64 = 600;

impl Default for Isolation {
    fn default() -> Self {
        Isolation {
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("guardrail")),
            memory_bytes: DEFAULT_MEMORY_BYTES,
            cpu_seconds: DEFAULT_CPU_SECONDS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("could not run guardrail's evaluation worker: {0}")]
    Spawn(String),
    /// The worker died (signal, abort, limit): the message says how.
    #[error("{0}")]
    Crashed(String),
}

impl Isolation {
    /// Runs `request` in a fresh worker and waits for its answer (blocking).
    pub fn run(&self, request: &Request) -> Result<Response, WorkerError> {
        let mut command = self.command();
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| WorkerError::Spawn(format!("{}: {e}", self.exe.display())))?;
        let body = serde_json::to_vec(request).map_err(|e| WorkerError::Spawn(e.to_string()))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let output = child.wait_with_output().map_err(|e| WorkerError::Spawn(e.to_string()))?;
        let _ = writer.join();
        // The worker's log lines are this process's.
        let _ = std::io::stderr().write_all(&output.stderr);
        if output.status.success() {
            if let Ok(response) = serde_json::from_slice(&output.stdout) {
                return Ok(response);
            }
        }
        Err(WorkerError::Crashed(crash_message(&output.status, &output.stderr, self.memory_bytes)))
    }

    /// `guardrail __worker` with the limits applied.
    fn command(&self) -> Command {
        let mut command = Command::new(&self.exe);
        command.arg("__worker");
        // Fewer malloc arenas: each reserves address space the limit would count. mimalloc (the
        // allocator regorus's memory limits need) reserves 1 GiB at a time by default: under the
        // address-space limit a second reservation fails with most of it unused (measured: an
        // allocation of 64 MiB failed at 150 MiB resident under a 2 GiB limit).
        command.env("MALLOC_ARENA_MAX", "2");
        command.env("MIMALLOC_ARENA_RESERVE", "64M");
        command.env(MEMORY_ENV, self.memory_bytes.to_string());
        limit(&mut command, self.address_space(), self.cpu_seconds);
        command
    }

    /// The address-space limit: the memory limit plus what threads reserve without using it
    /// (their large stacks), so that the limit bounds what evaluation allocates.
    fn address_space(&self) -> u64 {
        if self.memory_bytes == 0 {
            return 0;
        }
        let threads = std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1);
        self.memory_bytes + (threads + 2) * crate::scan::WORKER_STACK as u64 + (1 << 30)
    }

    /// Runs a whole CLI command (`args` after `guardrail`) in a worker that shares this process's
    /// standard streams, and returns its exit code; a crash is reported on stderr and exits 2.
    pub fn run_command(&self, args: &[std::ffi::OsString]) -> ExitCode {
        let mut command = self.command();
        command.args(args);
        let status = match command.status() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {}", WorkerError::Spawn(format!("{}: {e}", self.exe.display())));
                return ExitCode::from(2);
            }
        };
        match status.code() {
            Some(code) if !crashed_code(code) => ExitCode::from(code as u8),
            _ => {
                eprintln!("error: {}", crash_message(&status, b"", self.memory_bytes));
                ExitCode::from(2)
            }
        }
    }
}

/// Exit codes that mean a crash rather than an answer: Rust's panic exit (101) and 134 (abort
/// reported by a shell wrapper).
fn crashed_code(code: i32) -> bool {
    code == 101 || code == 134
}

fn crash_message(status: &std::process::ExitStatus, stderr: &[u8], memory_bytes: u64) -> String {
    let how = {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            match status.signal() {
                Some(6) => "it aborted (SIGABRT)".to_string(),
                Some(9) => "it was killed (SIGKILL, e.g. over its CPU-time limit)".to_string(),
                Some(11) => "it crashed (SIGSEGV)".to_string(),
                Some(24) => "it went over its CPU-time limit (SIGXCPU)".to_string(),
                Some(s) => format!("it was ended by signal {s}"),
                None => format!("it exited with {status}"),
            }
        }
        #[cfg(not(unix))]
        {
            format!("it exited with {status}")
        }
    };
    let text = String::from_utf8_lossy(stderr);
    let cause = text
        .lines()
        .rev()
        .find(|l| {
            l.contains("overflowed its stack")
                || l.contains("memory allocation")
                || l.contains("panicked")
                || l.contains("fatal")
        })
        .map(|l| format!(": {}", crate::report::terminal::escape_line(l.trim())))
        .unwrap_or_default();
    let hint = if text.contains("memory allocation") {
        format!(" (the worker may use {} MiB)", memory_bytes >> 20)
    } else {
        String::new()
    };
    format!("guardrail's policy engine crashed while evaluating these policies, so they were not checked: {how}{cause}{hint}")
}

/// Resource limits applied in the child before it runs guardrail.
fn limit(command: &mut Command, memory_bytes: u64, cpu_seconds: u64) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if memory_bytes > 0 {
                    let l = libc::rlimit { rlim_cur: memory_bytes as _, rlim_max: memory_bytes as _ };
                    libc::setrlimit(libc::RLIMIT_AS, &l);
                }
                if cpu_seconds > 0 {
                    let l = libc::rlimit { rlim_cur: cpu_seconds as _, rlim_max: (cpu_seconds + 5) as _ };
                    libc::setrlimit(libc::RLIMIT_CPU, &l);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (command, memory_bytes, cpu_seconds);
}

/// Tells a worker its memory limit (bytes), for `limit_interpreter_memory`.
const MEMORY_ENV: &str = "GUARDRAIL_WORKER_MEMORY";

/// The interpreter's memory limit in a worker. The bytecode VM has a budget per evaluation; the
/// interpreter only checks regorus's process-wide count of allocated bytes, between statements.
/// A quarter of the worker's memory: a structure that doubles at every step (`array.concat`,
/// `strings.replace_n`, `json.marshal` chains) is stopped, as a limit finding on its object, before
/// its next doubling could reach the worker's address-space limit and end the worker.
fn limit_interpreter_memory() {
    let bytes = std::env::var(MEMORY_ENV).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    if bytes > 0 {
        regorus::set_global_memory_limit(Some(bytes / 4));
    }
}

/// The worker side (`guardrail __worker`): one request from stdin, its answer on stdout.
/// With `args` (`check …`), runs that CLI command here (its parent supervises).
pub fn worker_main(args: &[String]) -> ExitCode {
    limit_interpreter_memory();
    if !args.is_empty() {
        return crate::cli::run_supervised(args);
    }
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return ExitCode::from(2);
    }
    let request: Request = match serde_json::from_slice(&input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("guardrail __worker: malformed request: {e}");
            return ExitCode::from(2);
        }
    };
    let response = match request {
        Request::Verify { paths, within, options: opts } => {
            let summary = match (within, paths.first()) {
                (true, Some(root)) => crate::verify::run_within_with(root, opts),
                _ => crate::verify::run_with(&paths, opts),
            };
            Response::Verify { results: summary.results.into_iter().map(|r| (r.name, r.error)).collect() }
        }
        Request::Scan { texts, overlays, recipe, options } => {
            let opts = crate::scan::ScanOptions {
                load: options.load,
                threads: options.threads,
                exemptions: options.exemptions,
                ..Default::default()
            };
            let scan = match recipe.load() {
                Ok(set) => crate::jobs::kustomize::scan_with_overlays(&texts, *overlays, &set, &opts),
                // The parent loaded the same sources: failing here is ours, not the author's.
                Err(errors) => {
                    let mut scan = crate::scan::Scan::default();
                    let why = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
                    scan.outcome.errors.push(format!("the evaluation worker could not load the policies: {why}"));
                    scan
                }
            };
            Response::Scan { scan: Box::new(scan) }
        }
    };
    let mut out = std::io::stdout().lock();
    if serde_json::to_writer(&mut out, &response).is_err() || out.flush().is_err() {
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

/// `scan::scan_texts` in a worker. A crash (or a set made by hand, which a worker cannot load
/// again) becomes an error of the scan that says so: the check fails closed, and the process that
/// asked goes on with its other jobs.
pub fn scan(
    isolation: &Isolation,
    texts: Vec<(String, String)>,
    overlays: crate::jobs::kustomize::Gathered,
    set: &crate::policy::PolicySet,
    opts: &crate::scan::ScanOptions,
) -> crate::scan::Scan {
    let files = texts.len();
    let failed = |why: String| {
        let mut scan = crate::scan::Scan::default();
        scan.outcome.errors.push(why);
        scan.stats.files = files;
        scan
    };
    let Some(recipe) = &set.recipe else {
        return failed("guardrail could not evaluate: the policy set has no sources to load in a worker".into());
    };
    let request = Request::Scan {
        texts,
        overlays: Box::new(overlays),
        recipe: Box::new((**recipe).clone()),
        options: ScanRequestOptions {
            load: opts.load.clone(),
            threads: opts.threads,
            exemptions: opts.exemptions.clone(),
        },
    };
    match isolation.run(&request) {
        Ok(Response::Scan { scan }) => *scan,
        Ok(other) => failed(format!("the evaluation worker answered something else: {other:?}")),
        Err(e) => {
            tracing::error!(error = %e, "evaluation worker failed");
            failed(e.to_string())
        }
    }
}

/// `verify` in a worker: a crash becomes one failing result that says so.
pub fn verify(isolation: &Isolation, request: Request) -> crate::verify::Summary {
    let results = match isolation.run(&request) {
        Ok(Response::Verify { results }) => results,
        Ok(Response::Scan { .. }) => vec![("policy tests".to_string(), Some("the worker answered a scan".to_string()))],
        Err(e) => vec![("policy tests".to_string(), Some(e.to_string()))],
    };
    crate::verify::Summary {
        results: results.into_iter().map(|(name, error)| crate::verify::CaseResult { name, error }).collect(),
    }
}
