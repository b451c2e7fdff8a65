//! Findings are data, not errors: every output format (human, JSON, SARIF, check-run annotations…)
//! is rendered from the same `Finding` values, which carry the policy, the severity, the message and
//! the exact place in a file.

use serde::{Deserialize, Serialize};

/// How much a finding matters. `Deny` fails the check (exit code 1, check-run `failure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A violation of a `deny` constraint, or input guardrail could not check (broken YAML, a policy error).
    Deny,
    /// A `warn` constraint, or something suspicious that does not block (ambiguous YAML 1.1 scalars).
    Warn,
    /// `dryrun` constraints and notes (a skipped Helm template): shown, never blocking.
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Deny => "deny",
            Severity::Warn => "warn",
            Severity::Info => "info",
        }
    }
}

/// A 1-based position range in a source file. `end_*` is inclusive of the last character's column + 1
/// convention used by editors: `end_column` points just past the last character.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Region {
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
}

impl Region {
    pub fn point(line: u32, column: u32) -> Self {
        Region { line, column, end_line: line, end_column: column + 1 }
    }
}

/// The Kubernetes object a finding is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceRef {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceRef {
    /// `Deployment default/web`, `Namespace prod`: how people name an object in a sentence.
    pub fn display(&self) -> String {
        match (self.namespace.is_empty(), self.name.is_empty()) {
            (_, true) => self.kind.clone(),
            (true, false) => format!("{} {}", self.kind, self.name),
            (false, false) => format!("{} {}/{}", self.kind, self.namespace, self.name),
        }
    }
}

/// One thing guardrail has to say about one place in one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The ConstraintTemplate kind, built-in policy name, conftest module package, or a `guardrail/…`
    /// name for findings about the input itself (`guardrail/yaml`, `guardrail/policy-error`).
    pub policy: String,
    /// The Constraint's `metadata.name`; empty for conftest modules and input findings.
    pub constraint: String,
    pub severity: Severity,
    pub message: String,
    /// The file as given on the command line (or the repository path in the App).
    pub file: String,
    #[serde(flatten)]
    pub region: Region,
    /// RFC 6901 pointer into the resource (the parent resource for expanded objects); empty when
    /// the finding is about the file rather than a field.
    pub pointer: String,
    /// `None` for findings about a file that holds no resource (a YAML syntax error, say).
    pub resource: Option<ResourceRef>,
}

impl Finding {
    /// A finding about a place in a file rather than a field of an object (`guardrail/…` policies:
    /// the input itself could not be read, rendered or evaluated).
    pub fn about_file(policy: &str, file: &str, region: Region, severity: Severity, message: String) -> Finding {
        Finding {
            policy: policy.into(),
            constraint: String::new(),
            severity,
            message,
            file: file.into(),
            region,
            pointer: String::new(),
            resource: None,
        }
    }
}

/// Where the decision not to count a finding was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuppressionKind {
    /// `guardrail.dev/exempt` annotations on the resource itself.
    Annotation,
    /// An exemption of the organisation (`guardrail-org.yml`, read from the policy repository).
    Organisation,
    /// A finding accepted in a baseline file (`--baseline`).
    Baseline,
}

/// Why a finding does not count: the exemption or baseline entry that covers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub kind: SuppressionKind,
    pub reason: String,
    pub owner: String,
    /// YYYY-MM-DD, the last day the exemption applies; empty for a baseline.
    pub until: String,
    /// `annotation in deploy.yaml:12`, `policy repository`, `baseline .guardrail-baseline.json`.
    pub source: String,
}

/// A finding that an exemption or a baseline covers: reported as such (SARIF `suppressions`, JSON
/// `suppressed`), never counted as a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    #[serde(flatten)]
    pub finding: Finding,
    pub suppression: Suppression,
}

/// What one `check` produced: the findings, and errors that stopped guardrail from checking at all
/// (an unreadable path, a policy file that does not load). Errors make the exit code 2.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Findings that count: every one of them fails or warns.
    pub findings: Vec<Finding>,
    pub errors: Vec<String>,
    /// Findings an exemption or the baseline covers; they never count as failures.
    pub suppressed: Vec<Suppressed>,
    /// conftest `exception` rules that applied (conftest prints them as `EXCP`).
    pub exceptions: Vec<ExceptionApplied>,
}

/// A conftest `exception` rule that excused an object from a rule: the rule did not run on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionApplied {
    /// The module's package (`main`).
    pub policy: String,
    /// The rule excused (`deny_run_as_root`).
    pub rule: String,
    /// The query that matched, as conftest prints it: `data.main.exception[_][_] == "run_as_root"`.
    pub query: String,
    pub file: String,
    pub resource: Option<ResourceRef>,
}

impl Outcome {
    pub fn has_deny(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Deny)
    }

    /// Stable order: by file, then position, then policy, so outputs and snapshots do not flicker.
    pub fn sort(&mut self) {
        self.findings.sort_by(|a, b| {
            (&a.file, a.region, &a.policy, &a.constraint, &a.message).cmp(&(
                &b.file,
                b.region,
                &b.policy,
                &b.constraint,
                &b.message,
            ))
        });
        self.findings.dedup();
        self.suppressed.sort_by(|a, b| {
            let (a, b) = (&a.finding, &b.finding);
            (&a.file, a.region, &a.policy, &a.message).cmp(&(&b.file, b.region, &b.policy, &b.message))
        });
    }

    /// Findings at `severity` or more severe.
    pub fn at_least(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity <= severity)
    }
}
