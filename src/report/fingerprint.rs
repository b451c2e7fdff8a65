//! Stable fingerprints for findings, so CI systems (GitHub code scanning, GitLab Code Quality) can tell
//! a finding that persists across commits from a new one. FNV-1a 128 is small enough to write here and,
//! unlike `std`'s `DefaultHasher`, is specified: the same input gives the same hex on every run and platform.

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

/// Identity of a finding without its line numbers, which change when unrelated lines move: policy,
/// constraint, file, pointer and resource. `path` is the file as CI systems name it (so that
/// `./a.yaml` and `a.yaml` are the same finding).
pub(crate) fn location_identity_at(f: &Finding, path: &str) -> Fingerprint {
    Fingerprint::new().field(&f.policy).field(&f.constraint).field(path).field(&f.pointer).resource(f.resource.as_ref())
}

/// The location identity plus the message, with the line and column numbers some messages quote (a
/// YAML error's "first defined at line 12") blanked, so that the identity survives lines moving
/// but two different findings about one field stay apart.
pub(crate) fn finding_identity(f: &Finding, path: &str) -> Fingerprint {
    location_identity_at(f, path).field(&without_positions(&f.message))
}

fn without_positions(message: &str) -> std::borrow::Cow<'_, str> {
    static POSITIONS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    POSITIONS
        .get_or_init(|| {
            regex::Regex::new(r"(?i)\b(lines?|column|col)\s+\d+(\s*(-|to)\s*\d+)?|:\d+(:\d+)?\b").expect("valid regex")
        })
        .replace_all(message, "#")
}

/// One fingerprint per finding, unique within the list: the finding's identity, and for the second
/// and later findings with the same identity, their occurrence number. Stable from run to run as long
/// as the findings are in a stable order (`Outcome::sort`).
pub(crate) fn unique_fingerprints<'a>(findings: impl Iterator<Item = (&'a Finding, String)>) -> Vec<String> {
    let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    findings
        .map(|(f, path)| {
            let identity = finding_identity(f, &path);
            let n = seen.entry(identity.hex()).or_insert(0);
            *n += 1;
            if *n == 1 {
                identity.hex()
            } else {
                identity.field(&n.to_string()).hex()
            }
        })
        .collect()
}

/// The fingerprint a baseline records for each finding: its identity without line numbers (equal
/// findings share one; a baseline counts them).
pub fn baseline_fingerprints(findings: &[Finding], run: &super::RunInfo) -> Vec<String> {
    findings.iter().map(|f| finding_identity(f, &run.repo_path(&f.file)).hex()).collect()
}
