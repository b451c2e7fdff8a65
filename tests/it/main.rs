//! One integration-test binary (linking is the slow part of a build), one module per area.

mod app;
mod cel;
mod check;
mod cli;
mod deploy;
mod docs;
mod fake_github;
mod fuzz;
mod inputs;
mod integrations;
mod kubectl;
mod manifest;
mod policy;
mod report;
mod setup;
mod support;
mod terraform;
