//! Exemptions: a resource may opt out of named policies with annotations, and the policy repository
//! may list exemptions centrally. Every exemption carries an owner or at least a reason, and an expiry;
//! one without a reason, or past its date, does not apply, and the check says so.
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     guardrail.dev/exempt: "capabilities,host-network"
//!     guardrail.dev/exempt-reason: "CNI plugin needs NET_ADMIN"
//!     guardrail.dev/exempt-until: "2027-03-31"
//!     guardrail.dev/exempt-owner: "team-network"   # optional
//! ```

use chrono::NaiveDate;
use globset::Glob;
use serde::{Deserialize, Serialize};

use crate::findings::{Finding, ResourceRef, Severity, Suppressed, Suppression, SuppressionKind};
use crate::manifest::Resource;
use crate::report::checkrun::UsedExemption;

pub const EXEMPT: &str = "guardrail.dev/exempt";
pub const REASON: &str = "guardrail.dev/exempt-reason";
pub const UNTIL: &str = "guardrail.dev/exempt-until";
pub const OWNER: &str = "guardrail.dev/exempt-owner";
/// The `source` of an exemption listed by the organisation (`guardrail-org.yml`).
pub const ORGANISATION_SOURCE: &str = "policy repository";

/// An exemption listed in the policy repository (`exemptions:` in `guardrail-org.yml`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Policy (built-in name or template kind) or constraint name.
    pub policy: String,
    /// Repository glob (`acme/*`); all when absent.
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    /// Resource name glob.
    #[serde(default)]
    pub name: Option<String>,
    /// File path glob.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub reason: String,
    /// YYYY-MM-DD, the last day it applies.
    #[serde(default)]
    pub until: String,
}

/// What a check run is allowed to exempt.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Exemptions {
    pub rules: Vec<Rule>,
    /// The repository being checked (`owner/name`), matched against `Rule::repository`.
    pub repository: String,
    pub today: Option<NaiveDate>,
}

/// The result of applying exemptions to findings.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    pub used: Vec<UsedExemption>,
    /// The findings the exemptions covered, each with the exemption that covered it.
    pub suppressed: Vec<Suppressed>,
    /// Why an exemption did not apply (missing reason, expired), one line each.
    pub rejected: Vec<String>,
}

fn glob_match(pattern: &Option<String>, value: &str) -> bool {
    match pattern {
        None => true,
        Some(p) => Glob::new(p).map(|g| g.compile_matcher().is_match(value)).unwrap_or(p == value),
    }
}

fn names_policy(name: &str, f: &Finding) -> bool {
    let name = name.trim();
    !name.is_empty() && (name.eq_ignore_ascii_case(&f.policy) || (!f.constraint.is_empty() && name == f.constraint))
}

/// Why an exemption with this reason and date does not apply today, if it does not.
fn invalid(reason: &str, until: &str, today: NaiveDate) -> Option<String> {
    if reason.trim().is_empty() {
        return Some("it has no reason".into());
    }
    if until.trim().is_empty() {
        return Some("it has no expiry date".into());
    }
    match NaiveDate::parse_from_str(until.trim(), "%Y-%m-%d") {
        Err(_) => Some(format!("its expiry `{until}` is not a date (YYYY-MM-DD)")),
        Ok(date) if date < today => Some(format!("it expired on {date}")),
        Ok(_) => None,
    }
}

/// Whether an object carries an exemption annotation (a streaming scan keeps only those for `apply`).
pub fn is_annotated(object: &serde_json::Value) -> bool {
    annotation(object, EXEMPT).is_some()
}

fn annotation<'a>(object: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/annotations")?.get(key)?.as_str()
}

/// Applies exemptions to `findings` in place: exempted findings move to `suppressed` (with the exemption)
/// and the exemptions are listed in `used`; an
/// invalid annotation exemption becomes a warning at the annotation. `resources` are the objects as
/// the user wrote them (annotations live there, not on implied Pods).
pub fn apply(findings: &mut Vec<Finding>, resources: &[Resource], exemptions: &Exemptions) -> Applied {
    let today = exemptions.today.unwrap_or_else(|| chrono::Local::now().date_naive());
    let mut applied = Applied::default();
    let mut warnings = Vec::new();
    let mut annotated: Vec<Annotated> = Vec::new();
    for r in resources.iter().filter(|r| r.implied_by.is_none()) {
        let Some(list) = annotation(&r.object, EXEMPT) else { continue };
        let policies: Vec<String> = list.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
        let reason = annotation(&r.object, REASON).unwrap_or("").to_string();
        let until = annotation(&r.object, UNTIL).unwrap_or("").to_string();
        let owner = annotation(&r.object, OWNER).unwrap_or("").to_string();
        let problem = invalid(&reason, &until, today);
        let (file, region, pointer) = r.origin.place("/metadata/annotations/guardrail.dev~1exempt", "");
        if let Some(problem) = &problem {
            let message = format!(
                "exemption from {} does not apply because {problem}: set {REASON} and {UNTIL} (YYYY-MM-DD, not in the past)",
                policies.join(", ")
            );
            applied.rejected.push(format!("{} in {file}: {message}", r.reported.display()));
            warnings.push(Finding {
                policy: "guardrail/exemption".into(),
                constraint: String::new(),
                severity: Severity::Warn,
                message,
                file: file.to_string(),
                region,
                pointer,
                resource: Some(r.reported.clone()),
            });
        }
        annotated.push(Annotated {
            file: file.to_string(),
            overlay: r.origin.overlay().map(|o| format!("(rendered by overlay {o})")),
            resource: &r.reported,
            policies,
            valid: problem.is_none(),
            reason,
            owner,
            until,
            source: format!("annotation in {file}:{}", region.line),
        });
    }
    for rule in &exemptions.rules {
        if let Some(problem) = invalid(&rule.reason, &rule.until, today) {
            if glob_match(&rule.repository, &exemptions.repository) {
                applied.rejected.push(format!(
                    "policy repository exemption from {}: does not apply because {problem}",
                    rule.policy
                ));
            }
        }
    }
    let mut kept = Vec::with_capacity(findings.len());
    for f in findings.drain(..) {
        match covering(&f, &annotated, exemptions, today) {
            Some(suppression) => {
                record(&mut applied.used, &f, &suppression);
                applied.suppressed.push(Suppressed { finding: f, suppression });
            }
            None => kept.push(f),
        }
    }
    *findings = kept;
    findings.extend(warnings);
    applied
}

/// The exemption that covers `f`, if one does: the resource's own annotation first, then the
/// organisation's rules.
fn covering(f: &Finding, annotated: &[Annotated], exemptions: &Exemptions, today: NaiveDate) -> Option<Suppression> {
    let resource = f.resource.as_ref()?;
    if f.policy.starts_with("guardrail/") {
        return None; // findings about the input itself cannot be exempted
    }
    for a in annotated {
        // A rendered object's findings sit in several files (base, patches): its overlay identifies it.
        let same_object = match &a.overlay {
            Some(overlay) => f.message.ends_with(overlay.as_str()),
            None => a.file == f.file,
        };
        if a.valid && same_object && a.resource == resource && a.policies.iter().any(|p| names_policy(p, f)) {
            return Some(Suppression {
                kind: SuppressionKind::Annotation,
                reason: a.reason.clone(),
                owner: a.owner.clone(),
                until: a.until.clone(),
                source: a.source.clone(),
            });
        }
    }
    exemptions
        .rules
        .iter()
        .find(|rule| {
            invalid(&rule.reason, &rule.until, today).is_none()
                && names_policy(&rule.policy, f)
                && glob_match(&rule.repository, &exemptions.repository)
                && glob_match(&rule.namespace, &resource.namespace)
                && rule.kind.as_deref().is_none_or(|k| k == resource.kind)
                && glob_match(&rule.name, &resource.name)
                && glob_match(&rule.path, &f.file)
        })
        .map(|rule| Suppression {
            kind: SuppressionKind::Organisation,
            reason: rule.reason.clone(),
            owner: rule.owner.clone(),
            until: rule.until.clone(),
            source: ORGANISATION_SOURCE.into(),
        })
}

/// An exemption written on a resource.
struct Annotated<'a> {
    file: String,
    /// For a rendered object, the end of its findings' messages (`(rendered by overlay X)`).
    overlay: Option<String>,
    resource: &'a ResourceRef,
    policies: Vec<String>,
    valid: bool,
    reason: String,
    owner: String,
    until: String,
    source: String,
}

fn record(used: &mut Vec<UsedExemption>, f: &Finding, s: &Suppression) {
    let entry = UsedExemption {
        policy: f.policy.clone(),
        resource: f.resource.as_ref().map(|r| r.display()).unwrap_or_default(),
        reason: s.reason.clone(),
        owner: s.owner.clone(),
        until: s.until.clone(),
        source: s.source.clone(),
    };
    if !used.contains(&entry) {
        used.push(entry);
    }
}
