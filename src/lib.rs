//! guardrail: evaluate Kubernetes manifests against Gatekeeper ConstraintTemplates, built-in policies
//! and conftest modules, and report each violation at the exact field that causes it.
//!
//! Data flows one way: load manifests (`manifest`) -> evaluate policies (`policy`) -> locate each
//! violation (`locate`) -> `findings` -> render (`report`). `scan` wires these for the CLI and the App.
//!
//! Errors: modules whose callers branch on the failure return a `thiserror` type (`manifest::LoadError`,
//! `policy::PolicyError`); orchestration (`scan`, `main`) uses `anyhow` with context. Problems in the
//! *input* (broken YAML, a policy that errors on a resource) are not errors at all: they are findings.

pub mod exempt;
pub mod findings;
pub mod forge;
pub mod intake;
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
