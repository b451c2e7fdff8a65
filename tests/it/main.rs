//! One integration-test binary (linking is the slow part of a build), one module per area.

mod app;
mod cel;
mod check;
mod cli;
mod deploy;
mod docs;
mod fake_github;
mod fuzz;
mod integrations;
mod locations;
mod manifest;
mod policy;
mod report;
mod setup;
mod support;
mod terraform;
