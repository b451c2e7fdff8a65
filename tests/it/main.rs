//! One integration-test binary (linking is the slow part of a build), one module per area.

mod app;
mod cel;
mod cli;
mod fake_github;
mod fuzz;
mod manifest;
mod policy;
mod report;
mod support;
mod terraform;
