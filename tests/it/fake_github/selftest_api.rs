//! Self-tests of the fake GitHub's API.
