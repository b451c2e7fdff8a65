//! Stable fingerprints for findings, so CI systems (GitHub code scanning, GitLab Code Quality) can tell
//! a finding that persists across commits from a new one. FNV-1a 128 is small enough to write here and,
//! unlike `std`'s `DefaultHasher`, is specified: the same input gives the same hex on every run and platform.

use super::paths::repo_path;
use crate::findings::{Finding, ResourceRef};

const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

pub(crate) struct Fingerprint(u128);

impl Fingerprint {
    pub(crate) fn new() -> Self {
        Fingerprint(OFFSET_BASIS)
    }

    /// Each field is length-prefixed so that ("ab", "c") and ("a", "bc") hash differently.
    pub(crate) fn field(mut self, text: &str) -> Self {
        self.bytes(&(text.len() as u64).to_le_bytes());
        self.bytes(text.as_bytes());
        self
    }

    pub(crate) fn resource(self, resource: Option<&ResourceRef>) -> Self {
        match resource {
            // A marker distinguishes "no resource" from a resource whose fields are all empty.
            None => self.field("-"),
            Some(r) => self.field("+").field(&r.api_version).field(&r.kind).field(&r.namespace).field(&r.name),
        }
    }

    pub(crate) fn hex(&self) -> String {
        format!("{:032x}", self.0)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }
}

/// Identity of a finding without its line numbers or message, which change when unrelated lines move
/// or a policy rewords its message: policy, constraint, file, pointer and resource. The file is
/// normalised so that `./a.yaml` and `a.yaml` are the same finding.
pub(crate) fn location_identity(f: &Finding) -> Fingerprint {
    Fingerprint::new()
        .field(&f.policy)
        .field(&f.constraint)
        .field(&repo_path(&f.file))
        .field(&f.pointer)
        .resource(f.resource.as_ref())
}
