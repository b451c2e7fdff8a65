//! Exact locations (issue 11): value errors whose removal raises another violation, several
//! offenders behind one message, missing fields named at their enclosing object, spans from key to
//! end of value, removed workload API versions, and policy errors in the file the author edits.
//! Every expected place is proven by the edit that fixes it: that finding goes away, no other.

use guardrail::findings::{Finding, Severity};
use guardrail::policy::{LoadOptions, PolicySet};

use crate::support::{policies, scan};

const POLICIES: &str = include_str!("../fixtures/locations/policies.yaml");
const MANIFESTS: &str = include_str!("../fixtures/locations/manifests.yaml");
const CONFTEST: &str = include_str!("../fixtures/locations/conftest.rego");
const REMOVED: &str = include_str!("../fixtures/locations/removed.yaml");

fn located(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| {
            format!(
                "{}:{}:{}-{}:{} {} {} | {}",
                f.file,
                f.region.line,
                f.region.column,
                f.region.end_line,
                f.region.end_column,
                f.policy,
                f.pointer,
                f.message
            )
        })
        .collect()
}

fn check(set: &PolicySet, text: &str) -> Vec<Finding> {
    scan(set, &[("m.yaml", text)]).outcome.findings
}

/// `text` with line `line` (1-based) replaced by `with` (several lines allowed, or none).
fn edit(text: &str, line: usize, with: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    if with.is_empty() {
        lines.remove(line - 1);
    } else {
        lines[line - 1] = with;
    }
    lines.join("\n") + "\n"
}

/// After `edited`, the finding at `line` is gone and every other finding is still there, at its
/// place (moved by `shift` lines below the edit when the edit added lines); an edit may raise a
/// consequence of its own, listed in `raised`.
fn proves(set: &PolicySet, before: &[Finding], edited: &str, line: u32, shift: u32, raised: &[&str]) {
    let after = check(set, edited);
    let gone: Vec<_> = before.iter().filter(|f| !after.iter().any(|a| a.message == f.message)).collect();
    assert!(!gone.is_empty(), "nothing went away: {:#?}", located(&after));
    assert!(gone.iter().all(|f| f.region.line == line), "line {line}: went away {:#?}", gone);
    let new: Vec<_> = after.iter().filter(|a| !before.iter().any(|f| f.message == a.message)).collect();
    for n in &new {
        assert!(raised.iter().any(|r| n.message.contains(r)), "line {line}: raised {:#?}", located(&after));
    }
    for f in before.iter().filter(|f| f.region.line != line) {
        let moved = if f.region.line > line { f.region.line + shift } else { f.region.line };
        let kept = after
            .iter()
            .any(|a| a.message == f.message && (a.region.line, a.region.column) == (moved, f.region.column));
        assert!(kept, "line {line}: {f:#?} moved or vanished: {:#?}", located(&after));
    }
}

#[test]
fn every_class_lands_on_its_field() {
    let set = policies(false, &[("p.yaml", POLICIES), ("c.rego", CONFTEST)]);
    let got = check(&set, MANIFESTS);
    insta::assert_snapshot!(located(&got).join("\n"));
    let at = |line: u32| got.iter().filter(|f| f.region.line == line).count();
    // Value errors whose removal raises "missing": the value's own line.
    assert_eq!(at(6), 1, "owner: Platform-Team");
    assert_eq!(at(8), 1, "replicas: 5");
    proves(&set, &got, &edit(MANIFESTS, 6, "    owner: platform"), 6, 0, &[]);
    proves(&set, &got, &edit(MANIFESTS, 8, "  replicas: 2"), 8, 0, &[]);
    // Removing them instead raises the missing-field violation: still the same place.
    proves(&set, &got, &edit(MANIFESTS, 8, "  # replicas: 5"), 8, 0, &["replicas must be set"]);
    // An explicit `allowPrivilegeEscalation: true`, where absence is also a violation.
    proves(&set, &got, &edit(MANIFESTS, 32, "        allowPrivilegeEscalation: false"), 32, 0, &[]);
    // One message, two containers: a finding at each `privileged: true`; fixing one changes the
    // message, so both findings are replaced by one at the other container.
    let two: Vec<_> = got.iter().filter(|f| f.message.starts_with("privileged containers")).collect();
    assert_eq!(two.iter().map(|f| (f.region.line, f.region.column)).collect::<Vec<_>>(), [(31, 9), (38, 9)]);
    let fixed = check(&set, &edit(MANIFESTS, 31, "        privileged: false"));
    let left: Vec<_> = fixed.iter().filter(|f| f.message.starts_with("privileged containers")).collect();
    assert_eq!(
        left.iter().map(|f| (f.region.line, f.message.as_str())).collect::<Vec<_>>(),
        [(38, "privileged containers: beta")]
    );
    // The same message for two hostPath volumes: one finding at each volume's `hostPath`.
    let host: Vec<_> = got.iter().filter(|f| f.message.starts_with("hostPath")).map(|f| f.region.line).collect();
    assert_eq!(host, [42, 46]);
    // Missing fields: at the nearest existing enclosing object, naming what is missing.
    let drop = got.iter().find(|f| f.message.contains("<beta> must drop")).expect("beta lacks drop");
    assert_eq!((drop.region.line, drop.region.column), (37, 7));
    assert!(drop.message.ends_with("(missing: capabilities.drop)"), "{}", drop.message);
    assert_eq!(drop.pointer, "/spec/containers/1/securityContext/capabilities/drop");
    // The conftest `not input.x.y` rule: at the pod spec that lacks the securityContext.
    let conftest = got.iter().find(|f| f.message.starts_with("pods must run as non-root")).expect("conftest");
    assert_eq!((conftest.region.line, conftest.region.column), (14, 5), "{conftest:?}");
    assert!(conftest.message.ends_with("(missing: securityContext.runAsNonRoot)"), "{}", conftest.message);
    proves(&set, &got, &edit(MANIFESTS, 14, "    spec:\n      securityContext: {runAsNonRoot: true}"), 14, 1, &[]);
}

#[test]
fn spans_run_from_the_key_to_the_end_of_the_value() {
    let set = policies(false, &[("p.yaml", POLICIES)]);
    let got = check(&set, MANIFESTS);
    let owner = got.iter().find(|f| f.message.starts_with("owner label")).expect("owner");
    // `    owner: Platform-Team`: columns 5 to 24, the end just past the value.
    assert_eq!((owner.region.line, owner.region.column, owner.region.end_line, owner.region.end_column), (6, 5, 6, 25));
    // A flow mapping entry: `hostPath: {path: /var/log}` whole.
    let flow = got.iter().find(|f| f.message.starts_with("hostPath") && f.region.line == 42).expect("flow");
    assert_eq!((flow.region.column, flow.region.end_column), (7, 33));
    // A block mapping: the key alone.
    let block = got.iter().find(|f| f.message.starts_with("hostPath") && f.region.line == 46).expect("block");
    assert_eq!((block.region.column, block.region.end_line, block.region.end_column), (7, 46, 15));
}

#[test]
fn removed_workload_versions_are_expanded_and_reported() {
    let set = policies(false, &[("p.yaml", POLICIES)]);
    let got = check(&set, REMOVED);
    insta::assert_snapshot!(located(&got).join("\n"));
    let removed = got.iter().find(|f| f.policy == "guardrail/removed-api").expect("removed API finding");
    assert_eq!((removed.region.line, removed.region.column, removed.severity), (1, 1, Severity::Deny));
    assert!(removed.message.starts_with("extensions/v1beta1 DaemonSet was removed in Kubernetes 1.16"));
    let privileged = got.iter().find(|f| f.message.contains("privileged containers: agent")).expect("expanded");
    assert_eq!(privileged.region.line, 14);
    for version in ["apps/v1beta1", "apps/v1beta2"] {
        let text = REMOVED.replace("extensions/v1beta1", version).replace("DaemonSet", "StatefulSet");
        let got = check(&set, &text);
        assert!(
            got.iter().any(|f| f.message.contains("privileged containers: agent") && f.region.line == 14),
            "{version}"
        );
        assert!(got.iter().any(|f| f.message.starts_with(&format!("{version} StatefulSet was removed"))), "{version}");
    }
    // apps/v1 is not removed.
    let current = check(&set, &REMOVED.replace("extensions/v1beta1", "apps/v1"));
    assert!(!current.iter().any(|f| f.policy == "guardrail/removed-api"), "{current:?}");
}

/// `file:line:column` at the start of `error`.
fn position(error: &str, file: &str) -> (usize, usize) {
    let rest = error.strip_prefix(file).unwrap_or_else(|| panic!("{error} does not start with {file}"));
    let mut parts = rest.split(':');
    let line = parts.next().and_then(|p| p.parse().ok()).expect("line");
    let column = parts.next().and_then(|p| p.parse().ok()).expect("column");
    (line, column)
}

fn load_errors(files: &[(&str, &str)]) -> Vec<String> {
    let groups = vec![files.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect::<Vec<_>>()];
    match PolicySet::from_sources(&groups, &LoadOptions { builtin: false, ..Default::default() }) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn rego_errors_point_into_the_template_file() {
    // Line 17 of the YAML file is line 5 of the embedded Rego; the `(` at column 15 is not closed.
    let broken = POLICIES
        .split("---")
        .nth(1)
        .expect("second template")
        .trim_start_matches('\n')
        .replace("          r > input.parameters.max", "          r > max(input.parameters.max");
    let errors = load_errors(&[("ct.yaml", &broken)]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    // The parser notices the missing `)` at the next line's `msg`: the YAML file's line and
    // column of that character.
    let (line, column) = position(&errors[0], "ct.yaml:");
    let text = broken.lines().nth(line - 1).expect("line in the file");
    assert!(text[column - 1..].starts_with("msg := sprintf("), "{line}:{column} is {text:?}: {errors:?}");
    assert!(errors[0].contains("expecting `)`"), "{errors:?}");
    assert!(!errors[0].contains("ct.yaml#"), "{errors:?}");
    assert!(!errors[0].contains("`if` keyword is required"), "a v0 template gets a v0 message: {errors:?}");
}

#[test]
fn a_constraint_without_template_is_reported_at_its_kind_with_a_suggestion() {
    let constraint =
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: LocReplica\nmetadata:\n  name: r\nspec: {}\n";
    let template = POLICIES.split("---").nth(1).expect("second template");
    let errors = load_errors(&[("t.yaml", template), ("c.yaml", &format!("# constraints\n---\n{constraint}"))]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("c.yaml:4:1: "), "{errors:?}");
    assert!(errors[0].ends_with("did you mean LocReplicas?"), "{errors:?}");
}

#[test]
fn a_v0_conftest_module_with_a_syntax_error_gets_the_v0_message() {
    let broken = "package main\n\ndeny[msg] {\n  startswith(input.kind, \"Dep\"\n  msg := \"no\"\n}\n";
    let errors = load_errors(&[("policy/bad.rego", broken)]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(!errors[0].contains("keyword is required"), "{errors:?}");
    assert!(errors[0].contains("bad.rego:"), "{errors:?}");
}

const HELDOUT_POLICIES: &str = include_str!("../fixtures/locations/heldout-policies.yaml");
const HELDOUT: &str = include_str!("../fixtures/locations/heldout.yaml");

fn at<'a>(findings: &'a [Finding], starts: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.message.starts_with(starts))
        .unwrap_or_else(|| panic!("{starts}: {:#?}", located(findings)))
}

#[test]
fn values_whose_absence_is_as_wrong_land_on_the_value() {
    let set = policies(false, &[("p.yaml", HELDOUT_POLICIES)]);
    let got = check(&set, HELDOUT);
    insta::assert_snapshot!(located(&got).join("\n"));
    // `object.get(spec, "maxUnavailable", 1)`: without `spec` the budget is wrong too, so only an
    // emptied `spec` shows the value is inside it.
    let budget = at(&got, "budget web blocks");
    assert_eq!((budget.region.line, budget.region.column, budget.pointer.as_str()), (8, 3, "/spec/maxUnavailable"));
    proves(&set, &got, &edit(HELDOUT, 8, "  maxUnavailable: 1"), 8, 0, &[]);
    proves(&set, &got, &edit(HELDOUT, 8, "  # maxUnavailable: 0"), 8, 0, &[]);
    // A range the replicas must fall in, and the message does not name the field: the constraint's
    // own bounds as values.
    let scale = at(&got, "the scale of db");
    assert_eq!((scale.region.line, scale.region.column), (16, 3), "{scale:?}");
    proves(&set, &got, &edit(HELDOUT, 16, "  replicas: 3"), 16, 0, &[]);
}

#[test]
fn a_reference_the_message_quotes_lands_on_the_reference() {
    let set = policies(false, &[("p.yaml", HELDOUT_POLICIES)]);
    let got = check(&set, HELDOUT);
    // The message quotes the role's kind and name: changing either changes the message, but the
    // offender is the reference.
    let binding = at(&got, "ops grants ClusterRole/cluster-admin");
    assert_eq!((binding.region.line, binding.region.column, binding.pointer.as_str()), (27, 1, "/roleRef"));
    proves(&set, &got, &edit(HELDOUT, 30, "  name: view"), 27, 0, &[]);
}

#[test]
fn one_wrong_item_of_a_list_that_must_not_be_empty() {
    let set = policies(false, &[("p.yaml", HELDOUT_POLICIES)]);
    let got = check(&set, HELDOUT);
    // `supplementalGroups: [1000, 0]`: the `0`, not the list (an empty list is wrong too).
    let groups = at(&got, "supplemental groups must be set");
    assert_eq!(
        (groups.region.line, groups.region.column, groups.pointer.as_str()),
        (39, 32, "/spec/securityContext/supplementalGroups/1")
    );
    proves(&set, &got, &edit(HELDOUT, 39, "    supplementalGroups: [1000]"), 39, 0, &[]);
    // Emptying the list keeps the violation: the list itself is not the offender.
    let empty = check(&set, &edit(HELDOUT, 39, "    supplementalGroups: []"));
    assert!(empty.iter().any(|f| f.message.starts_with("supplemental groups must be set")), "{:#?}", located(&empty));
}

#[test]
fn a_missing_label_map_is_named_at_metadata_with_a_value_the_pattern_accepts() {
    let set = policies(false, &[("p.yaml", HELDOUT_POLICIES)]);
    let got = check(&set, HELDOUT);
    for message in ["labels required: team", "label value does not match its pattern"] {
        let payments = |f: &&Finding| f.resource.as_ref().is_some_and(|r| r.name == "payments");
        let f = got.iter().filter(payments).find(|f| f.message.starts_with(message)).expect(message);
        assert_eq!((f.region.line, f.region.column), (46, 1), "{f:?}");
        assert!(f.message.ends_with("(missing: labels.team)"), "{}", f.message);
        assert_eq!(f.pointer, "/metadata/labels/team");
    }
    // Inserting the label with a value its pattern accepts clears both, and nothing else.
    let fixed = edit(HELDOUT, 46, "metadata:\n  labels: {team: team-payments}");
    let after = check(&set, &fixed);
    assert!(!after.iter().any(|f| f.resource.as_ref().is_some_and(|r| r.name == "payments")), "{:#?}", located(&after));
    assert_eq!(after.len(), got.len() - 2, "{:#?}", located(&after));
}

#[test]
fn sarif_links_the_offenders_behind_one_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir(d.join("policy")).unwrap();
    std::fs::write(d.join("policy/p.yaml"), POLICIES).unwrap();
    std::fs::write(d.join("m.yaml"), MANIFESTS).unwrap();
    let args = ["check", "--no-builtin", "--no-config", "--policy", "policy", "m.yaml", "-f", "sarif=out.sarif"];
    let (code, _, stderr) = crate::check::guardrail_in(d, &args);
    assert_eq!(code, 1, "{stderr}");
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out.sarif")).unwrap()).unwrap();
    crate::report::validate_sarif(&sarif);
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let line = |l: &serde_json::Value| l["physicalLocation"]["region"]["startLine"].as_u64().unwrap();
    // "privileged containers: alpha, beta": a result at each container's `privileged`, each
    // pointing at the other.
    let mut pairs: Vec<(u64, Vec<u64>)> = results
        .iter()
        .filter(|r| r["message"]["text"] == "privileged containers: alpha, beta")
        .map(|r| {
            let related = r["relatedLocations"].as_array().map(|a| a.iter().map(line).collect()).unwrap_or_default();
            (line(&r["locations"][0]), related)
        })
        .collect();
    pairs.sort();
    assert_eq!(pairs, [(31, vec![38]), (38, vec![31])]);
    // A finding alone behind its message has none.
    let alone = results.iter().find(|r| r["message"]["text"].as_str().unwrap().starts_with("owner label")).unwrap();
    assert!(alone.get("relatedLocations").is_none(), "{alone}");
}

#[test]
fn a_label_value_its_pattern_rejects_lands_on_the_label() {
    let set = policies(false, &[("p.yaml", HELDOUT_POLICIES)]);
    let got = check(&set, HELDOUT);
    // Without the label the same message stays (the expression needs the label *and* a match), so
    // no removal clears it: only a value the pattern accepts does.
    let ledger: Vec<_> = got.iter().filter(|f| f.resource.as_ref().is_some_and(|r| r.name == "ledger")).collect();
    assert_eq!(ledger.len(), 1, "{:#?}", located(&got));
    assert_eq!(
        (ledger[0].region.line, ledger[0].region.column, ledger[0].pointer.as_str()),
        (54, 5, "/metadata/labels/team")
    );
    proves(&set, &got, &edit(HELDOUT, 54, "    team: team-ledger"), 54, 0, &[]);
    // Removed, it is missing from the `labels:` map that is left.
    let removed = check(&set, &edit(HELDOUT, 54, "    # team: Ledger"));
    assert!(
        removed
            .iter()
            .any(|f| f.message == "label value does not match its pattern (missing: team)" && f.region.line == 53),
        "{:#?}",
        located(&removed)
    );
}

const EMPTY_REQUEST: &str = include_str!("../../policies/resource-limits/samples/disallowed_init_requests_only.yaml");
const EMPTY_POLICIES: &str =
    include_str!("../../policies/vpa-min-allowed/samples/disallowed_empty_container_policies.yaml");
const NO_POLICY: &str = include_str!("../../policies/vpa-min-allowed/samples/disallowed_no_resource_policy.yaml");

#[test]
fn a_declared_field_that_is_there_but_empty_is_the_place_not_a_missing_field() {
    let set = policies(true, &[]);
    // `memory: ""`: the policy declares the field and names it as what is missing; it is there.
    let got = check(&set, EMPTY_REQUEST);
    let memory = at(&got, "Init container \"setup\" has no memory request");
    assert_eq!(
        (memory.region.line, memory.region.column, memory.pointer.as_str()),
        (13, 11, "/spec/initContainers/0/resources/requests/memory"),
        "{memory:?}"
    );
    assert!(!memory.message.contains("(missing"), "{}", memory.message);
    proves(&set, &got, &edit(EMPTY_REQUEST, 13, "          memory: 64Mi"), 13, 0, &[]);
    // `containerPolicies: []`: the empty list itself.
    let got = check(&set, EMPTY_POLICIES);
    let empty = at(&got, "VerticalPodAutoscaler \"web\" has no spec.resourcePolicy.containerPolicies");
    assert_eq!((empty.region.line, empty.region.column), (12, 5), "{empty:?}");
    assert!(!empty.message.contains("(missing"), "{}", empty.message);
    let one = "    containerPolicies: [{containerName: \"*\", minAllowed: {cpu: 100m, memory: 64Mi}}]";
    proves(&set, &got, &edit(EMPTY_POLICIES, 12, one), 12, 0, &[]);
    // No `resourcePolicy` at all: at `spec:`, naming what it lacks.
    let got = check(&set, NO_POLICY);
    let none = at(&got, "VerticalPodAutoscaler \"web\" has no spec.resourcePolicy.containerPolicies");
    assert_eq!((none.region.line, none.region.column), (6, 1), "{none:?}");
    assert!(none.message.ends_with("(missing: resourcePolicy.containerPolicies)"), "{}", none.message);
    let inserted = "spec:\n  resourcePolicy:\n".to_string() + one;
    proves(&set, &got, &edit(NO_POLICY, 6, &inserted), 6, 2, &[]);
}

const KEYS_POLICIES: &str = include_str!("../fixtures/locations/keys-policies.yaml");
const KEYS: &str = include_str!("../fixtures/locations/keys.yaml");

#[test]
fn several_required_keys_of_a_missing_map_are_named_at_its_parent() {
    let set = policies(false, &[("p.yaml", KEYS_POLICIES)]);
    let got = check(&set, KEYS);
    // Each key alone only changes the message ("owner, runbook" -> "runbook"): together they
    // clear it, and the map they go in is what is missing.
    let both = at(&got, "annotations required: example.com/owner, example.com/runbook");
    assert_eq!((both.region.line, both.region.column, both.pointer.as_str()), (3, 1, "/metadata/annotations"));
    assert!(both.message.ends_with("(missing: annotations)"), "{}", both.message);
    let fixed = "metadata:\n  annotations: {example.com/owner: ops, example.com/runbook: \"https://runbook\"}";
    proves(&set, &got, &edit(KEYS, 3, fixed), 3, 1, &[]);
    // An annotation whose value must be the string "false": inserting it names it.
    let plain = at(&got, "ingress shop must set allow-plain-http");
    assert_eq!((plain.region.line, plain.region.column), (12, 1), "{plain:?}");
    assert!(plain.message.ends_with("(missing: annotations.example.com/allow-plain-http)"), "{}", plain.message);
    let fixed = "metadata:\n  annotations: {example.com/allow-plain-http: \"false\"}";
    proves(&set, &got, &edit(KEYS, 12, fixed), 12, 1, &[]);
}

/// The same privileged container written in every YAML style (and as JSON): the finding is at the
/// `privileged` key, wherever the style puts it, and editing that line clears it.
#[test]
fn every_yaml_style_lands_on_the_same_field() {
    let set = policies(false, &[("p.yaml", POLICIES)]);
    let block = include_str!("../fixtures/locations/styles/block.yaml");
    let styles = [
        ("block.yaml", block.to_string(), (12, 9)),
        ("crlf.yaml", block.replace('\n', "\r\n"), (12, 9)),
        ("json.json", include_str!("../fixtures/locations/styles/json.json").to_string(), (12, 11)),
        ("flow.yaml", include_str!("../fixtures/locations/styles/flow.yaml").to_string(), (3, 84)),
        ("quoted.yaml", include_str!("../fixtures/locations/styles/quoted.yaml").to_string(), (13, 7)),
        ("multidoc.yaml", include_str!("../fixtures/locations/styles/multidoc.yaml").to_string(), (24, 9)),
    ];
    for (name, text, at) in styles {
        let privileged = |text: &str| -> Vec<(u32, u32)> {
            let got = scan(&set, &[(name, text)]).outcome.findings;
            got.iter()
                .filter(|f| f.message.starts_with("privileged containers"))
                .map(|f| (f.region.line, f.region.column))
                .collect()
        };
        assert_eq!(privileged(&text), [at], "{name}");
        // The line with the key, set to false (`!!bool "true"` too): the finding goes.
        let line = text.split('\n').nth(at.0 as usize - 1).expect("line");
        let fixed = line.replacen("\"true\"", "\"false\"", 1).replacen("privileged\": true", "privileged\": false", 1);
        let fixed = fixed.replacen("privileged: true", "privileged: false", 1);
        assert_ne!(fixed, line, "{name}");
        let edited: Vec<&str> = text
            .split('\n')
            .enumerate()
            .map(|(i, l)| if i + 1 == at.0 as usize { fixed.as_str() } else { l })
            .collect();
        assert_eq!(privileged(&edited.join("\n")), [], "{name}");
    }
}

/// What an alias repeats is reported where the alias brings it in: the anchor's own copy at the
/// anchor, an aliased `securityContext` at its key, a merged one at the `<<`. Each is proven by
/// editing that line, which clears that container alone.
#[test]
fn an_aliased_field_lands_on_the_alias_that_brings_it_in() {
    let set = policies(false, &[("p.yaml", POLICIES)]);
    let text = include_str!("../fixtures/locations/styles/anchors.yaml");
    let privileged = |text: &str| -> Vec<(u32, u32, String)> {
        let got = check(&set, text);
        got.iter()
            .filter(|f| f.message.starts_with("privileged containers"))
            .map(|f| (f.region.line, f.region.column, f.message.clone()))
            .collect()
    };
    let all = "privileged containers: alpha, beta, gamma".to_string();
    assert_eq!(privileged(text), [(12, 9, all.clone()), (17, 7, all.clone()), (21, 9, all)]);
    let beta_fixed = edit(text, 17, "      securityContext: {privileged: false}");
    let left = "privileged containers: alpha, gamma".to_string();
    assert_eq!(privileged(&beta_fixed), [(12, 9, left.clone()), (21, 9, left)]);
    let gamma_fixed = edit(text, 21, "");
    let left = "privileged containers: alpha, beta".to_string();
    assert_eq!(privileged(&gamma_fixed), [(12, 9, left.clone()), (17, 7, left)]);
}
