//! The GitHub App end to end: a fake GitHub with a state model, signed webhooks delivered into the real
//! router over HTTP, the real queue on a SQLite file, workers drained until idle, and assertions on
//! what the fake recorded. Every story ends with `finish()`: no request GitHub would refuse or the
//! fake does not know, and no job left queued, running or failed.

mod abuse;
mod binary;
mod builtins;
pub(crate) mod durability;
mod faults;
mod harness;
mod isolation;
mod kustomize;
mod more;
mod recovery;
mod retention;
mod scale;
mod scan_isolation;
mod soak;
mod stories;
mod terraform;

pub use harness::*;
