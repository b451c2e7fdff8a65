//! guardrail: evaluate Kubernetes manifests against Gatekeeper ConstraintTemplates, built-in policies
//! and conftest modules, and report each violation at the exact field that causes it.
//!
//! Data flows one way: load manifests (`manifest`) -> evaluate policies (`policy`) -> locate each
//! violation (`locate`) -> `findings` -> render (`report`). `scan` wires these for the CLI and the App.
//!
//! Errors: modules whose callers branch on the failure return a `thiserror` type (`manifest::LoadError`,
//! `policy::PolicyError`); orchestration (`scan`, `main`) uses `anyhow` with context. Problems in the
//! *input* (broken YAML, a policy that errors on a resource) are not errors at all: they are findings.

pub mod cli;
pub mod exempt;
pub mod findings;
pub mod forge;
pub mod intake;
pub mod isolate;
pub mod jobs;
pub mod locate;
pub mod manifest;
pub mod metrics;
pub mod policy;
pub mod queue;
pub mod report;
pub mod scan;
pub mod server;
pub mod service;
pub mod settings;
pub mod verify;

/// regorus reports many ordinary "undefined" outcomes as `anyhow` errors, and `anyhow` captures a
/// backtrace for each when `RUST_BACKTRACE` is set (as CI systems often do): measured with callgrind on
/// the benchmark, 13% of all instructions. Library backtraces are switched off unless the user asked
/// for them with `RUST_LIB_BACKTRACE`; panics keep their backtraces. Call it first thing in `main`,
/// before any thread starts.
pub fn no_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}
