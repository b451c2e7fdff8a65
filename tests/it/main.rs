//! One integration-test binary (linking is the slow part of a build), one module per area.

mod app;
mod cel;
mod check;
mod cli;
mod deploy;
mod docs;
mod fake_github;
mod fake_gitlab;
mod fuzz;
mod gitlab;
mod gitlab_app;
mod gitlab_intake;
mod hostile_policy;
mod inputs;
mod integrations;
mod kubectl;
mod kustomize;
mod locations;
mod manifest;
mod opa_compat;
mod policy;
mod report;
mod setup;
mod support;
mod terraform;
mod terraform_bounds;
