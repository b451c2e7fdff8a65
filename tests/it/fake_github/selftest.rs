//! Self-tests of the fake GitHub.
