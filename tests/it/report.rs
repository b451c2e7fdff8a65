//! The output formats, rendered from one small outcome: a privileged container and a disallowed image
//! (deny), a missing label spanning lines (warn, with a message full of characters that need escaping),
//! a note on a file whose source is not available (info, no resource), and two errors.

use std::collections::{HashMap, HashSet};

use guardrail::findings::{Finding, Outcome, Region, ResourceRef, Severity, Suppressed, Suppression, SuppressionKind};
use guardrail::report::{readable_pointer, render, Format, RenderOptions};
use serde_json::Value;

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
    tier: frontend
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: app
          image: registry.example.com/shop/web:1.4.2
          ports:
            - containerPort: 8080
          resources:
            limits:
              cpu: 500m
              memory: 256Mi
        - name: nginx
          image: nginx:latest
          ports:
            - containerPort: 80
          securityContext:
            runAsUser: 0
            privileged: true
";

const WARN_MESSAGE: &str = "missing label \"owner\" <&> (see: docs/labels.md, 100%)\nadd it under metadata.labels";

fn web() -> Option<ResourceRef> {
    Some(ResourceRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: "shop".into(),
        name: "web".into(),
    })
}

#[allow(clippy::too_many_arguments)]
fn finding(
    policy: &str,
    constraint: &str,
    severity: Severity,
    message: &str,
    file: &str,
    region: (u32, u32, u32, u32),
    pointer: &str,
    resource: Option<ResourceRef>,
) -> Finding {
    let (line, column, end_line, end_column) = region;
    Finding {
        policy: policy.into(),
        constraint: constraint.into(),
        severity,
        message: message.into(),
        file: file.into(),
        region: Region { line, column, end_line, end_column },
        pointer: pointer.into(),
        resource,
    }
}

fn outcome() -> Outcome {
    let file = "examples/deployment.yaml";
    let mut outcome = Outcome {
        findings: vec![
            finding(
                "privileged-containers",
                "privileged-containers",
                Severity::Deny,
                "Privileged container is not allowed: \"nginx\"",
                file,
                (34, 25, 34, 29),
                "/spec/template/spec/containers/1/securityContext/privileged",
                web(),
            ),
            finding(
                "K8sAllowedRepos",
                "prod-repos",
                Severity::Deny,
                "container \"nginx\" has an invalid image repo \"nginx:latest\"",
                file,
                (29, 18, 29, 30),
                "/spec/template/spec/containers/1/image",
                web(),
            ),
            finding(
                "K8sRequiredLabels",
                "must-have-owner",
                Severity::Warn,
                WARN_MESSAGE,
                file,
                (6, 3, 8, 19),
                "/metadata/labels",
                web(),
            ),
            finding(
                "guardrail/yaml",
                "",
                Severity::Info,
                "`yes` is a boolean in YAML 1.1",
                "./examples/legacy.yaml",
                (3, 40, 3, 43),
                "/metadata/annotations/kubernetes.io~1ingress.class",
                None,
            ),
        ],
        errors: vec![
            "policy policies/broken.rego does not load: unexpected \"<\" at 3:1".into(),
            "could not read charts/a&b.yaml: permission denied".into(),
        ],
        ..Default::default()
    };
    outcome.sort();
    outcome
}

fn exemption(kind: SuppressionKind) -> Suppression {
    Suppression {
        kind,
        reason: "the CNI needs it".into(),
        owner: "team-network".into(),
        until: "2099-01-31".into(),
        source: "annotation in examples/deployment.yaml:4".into(),
    }
}

fn sources() -> HashMap<String, String> {
    HashMap::from([("examples/deployment.yaml".to_string(), DEPLOYMENT.to_string())])
}

fn opts(color: bool) -> RenderOptions {
    RenderOptions { color, tool_version: "1.2.3", ..Default::default() }
}

fn render_plain(format: Format, outcome: &Outcome) -> String {
    render(format, outcome, &sources(), &opts(false))
}

fn find<'a>(outcome: &'a Outcome, policy: &str) -> &'a Finding {
    outcome.findings.iter().find(|f| f.policy == policy).unwrap()
}

// ---- human -------------------------------------------------------------------------------------

#[test]
fn human_output_underlines_the_offending_field() {
    let text = render_plain(Format::Human, &outcome());
    insta::assert_snapshot!(text);

    // The carets sit exactly under `true` on line 34, whatever the snapshot says.
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("34 | ")).unwrap();
    let source = lines[at].strip_prefix("34 | ").unwrap();
    let carets = lines[at + 1].strip_prefix("   | ").unwrap();
    assert_eq!(carets.find('^'), source.find("true"));
    assert!(carets.contains("^^^^ spec.template.spec.containers[1].securityContext.privileged"));
    assert!(!carets.contains("^^^^^"));
    assert!(lines.contains(&"   = resource: Deployment shop/web"));
    assert!(text.ends_with("4 findings (2 deny, 1 warn, 1 info) in 2 files, 2 errors\n"));
}

#[test]
fn human_output_without_source_shows_the_field_as_a_note() {
    let text = render_plain(Format::Human, &outcome());
    let block: Vec<&str> = text.split("\n\n").filter(|b| b.starts_with("info[guardrail/yaml]")).collect();
    assert_eq!(
        block,
        ["info[guardrail/yaml]: `yes` is a boolean in YAML 1.1\n \
          --> ./examples/legacy.yaml:3:40\n  \
          |\n  \
          = field: metadata.annotations[\"kubernetes.io/ingress.class\"]"]
    );
}

#[test]
fn human_output_underlines_to_end_of_line_for_multiline_regions() {
    let text = render_plain(Format::Human, &outcome());
    assert!(text.contains("6 |   labels:\n  |   ^^^^^^^ metadata.labels\n"), "{text}");
}

#[test]
fn human_colors_only_when_asked() {
    let plain = render(Format::Human, &outcome(), &sources(), &opts(false));
    let colored = render(Format::Human, &outcome(), &sources(), &opts(true));
    assert!(!plain.contains('\x1b'));
    assert!(colored.contains("\x1b[1;31mdeny[privileged-containers]\x1b[0m"));
    assert!(colored.contains("\x1b[1;33mwarn[K8sRequiredLabels]\x1b[0m"));
    assert!(colored.contains("\x1b[1;36minfo[guardrail/yaml]\x1b[0m"));
    let stripped = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap().replace_all(&colored, "");
    assert_eq!(stripped, plain);
}

#[test]
fn human_underline_counts_characters_and_expands_tabs() {
    let source = "a: 1\nname:\t\"café\" # é\n";
    let sources = HashMap::from([("t.yaml".to_string(), source.to_string())]);
    let mut f = finding("p", "", Severity::Warn, "m", "t.yaml", (2, 7, 2, 13), "/name", None);
    let render_one = |f: &Finding| {
        let outcome = Outcome { findings: vec![f.clone()], errors: vec![], ..Default::default() };
        render(Format::Human, &outcome, &sources, &opts(false))
    };
    // Column 7 is the opening quote: after `name:` (5 characters) and a tab shown as 4 spaces.
    assert!(render_one(&f).contains("2 | name:    \"café\" # é\n  |          ^^^^^^ name\n"));

    // A region past the end of the line still gets one caret, right after the last character.
    f.region = Region { line: 2, column: 40, end_line: 2, end_column: 45 };
    assert!(render_one(&f).contains("  |                    ^ name\n"));
    // An empty region (end == start) also gets one caret.
    f.region = Region { line: 1, column: 4, end_line: 1, end_column: 4 };
    assert!(render_one(&f).contains("1 | a: 1\n  |    ^ name\n"));
    // A line that is not in the file: no snippet, the field becomes a note.
    f.region = Region { line: 9, column: 1, end_line: 9, end_column: 2 };
    assert!(render_one(&f).contains("= field: name"));
}

#[test]
fn human_summary_counts() {
    let none = Outcome::default();
    assert_eq!(render_plain(Format::Human, &none), "no findings\n");

    let errors_only = Outcome { findings: vec![], errors: vec!["boom\nsecond line".into()], ..Default::default() };
    assert_eq!(render_plain(Format::Human, &errors_only), "error: boom\n  second line\n\nno findings, 1 error\n");

    let one = Outcome { findings: vec![outcome().findings[0].clone()], errors: vec![], ..Default::default() };
    assert!(render_plain(Format::Human, &one).ends_with("\n1 finding (0 deny, 0 warn, 1 info) in 1 file\n"));
}

#[test]
fn pointers_read_as_dotted_paths() {
    let cases = [
        ("", ""),
        ("/spec/containers/1/securityContext", "spec.containers[1].securityContext"),
        ("/0/name", "[0].name"),
        ("/metadata/annotations/kubernetes.io~1ingress.class", "metadata.annotations[\"kubernetes.io/ingress.class\"]"),
        ("/metadata/labels/app.kubernetes.io~1name", "metadata.labels[\"app.kubernetes.io/name\"]"),
        ("/a~0b", "[\"a~b\"]"),
        ("/~01", "[\"~1\"]"),
        ("/data/01", "data[\"01\"]"),
        ("/data/with space", "data[\"with space\"]"),
        ("/data/a\"b", "data[\"a\\\"b\"]"),
        ("/data/", "data[\"\"]"),
        ("/x-y_z/10", "x-y_z[10]"),
    ];
    for (pointer, expected) in cases {
        assert_eq!(readable_pointer(pointer), expected, "pointer {pointer:?}");
    }
}

// ---- json --------------------------------------------------------------------------------------

#[test]
fn json_output_is_flat_and_complete() {
    let outcome = outcome();
    let text = render_plain(Format::Json, &outcome);
    insta::assert_snapshot!(text);

    let doc: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["findings", "suppressed", "exceptions", "errors", "notes", "summary"]);
    assert_eq!(doc["summary"]["deny"], 2);
    assert_eq!(doc["summary"]["errors"], 2);
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(findings.len(), outcome.findings.len());
    for (value, f) in findings.iter().zip(&outcome.findings) {
        let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "policy",
                "constraint",
                "severity",
                "message",
                "file",
                "line",
                "column",
                "end_line",
                "end_column",
                "pointer",
                "resource"
            ]
        );
        assert_eq!(value["policy"], f.policy.as_str());
        assert_eq!(value["message"], f.message.as_str());
        assert_eq!(value["severity"], f.severity.as_str());
        assert_eq!(value["line"], f.region.line);
        assert_eq!(value["end_column"], f.region.end_column);
        assert_eq!(value["file"], f.file.as_str());
    }
    let privileged = findings.iter().find(|v| v["policy"] == "privileged-containers").unwrap();
    assert_eq!(
        privileged["resource"],
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web"})
    );
    let yaml = findings.iter().find(|v| v["policy"] == "guardrail/yaml").unwrap();
    assert!(yaml["resource"].is_null());
    assert_eq!(doc["errors"], serde_json::json!(outcome.errors));
}

// ---- sarif -------------------------------------------------------------------------------------

#[test]
fn sarif_output_follows_2_1_0() {
    let outcome = outcome();
    let text = render_plain(Format::Sarif, &outcome);
    insta::assert_snapshot!(text);

    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["version"], "2.1.0");
    assert!(doc["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &doc["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "guardrail");
    assert_eq!(driver["version"], "1.2.3");
    let rule_ids: Vec<&str> = driver["rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(rule_ids, ["K8sAllowedRepos", "K8sRequiredLabels", "guardrail/yaml", "privileged-containers"]);

    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for (result, f) in results.iter().zip(&outcome.findings) {
        assert_eq!(result["ruleId"], f.policy.as_str());
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rule_ids[index], f.policy);
        assert_eq!(result["message"]["text"], f.message.as_str());
        let region = &result["locations"][0]["physicalLocation"]["region"];
        assert_eq!(region["startLine"], f.region.line);
        assert_eq!(region["startColumn"], f.region.column);
        assert_eq!(region["endLine"], f.region.end_line);
        assert_eq!(region["endColumn"], f.region.end_column);
        assert_eq!(result["properties"]["pointer"], f.pointer.as_str());
        assert_eq!(result["properties"]["constraint"], f.constraint.as_str());
        let level = result["level"].as_str().unwrap();
        let expected = match f.severity {
            Severity::Deny => "error",
            Severity::Warn => "warning",
            Severity::Info => "note",
        };
        assert_eq!(level, expected);
    }
    let uris: Vec<&str> = results
        .iter()
        .map(|r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        ["examples/legacy.yaml", "examples/deployment.yaml", "examples/deployment.yaml", "examples/deployment.yaml"]
    );
    assert!(results[0]["properties"].get("resource").is_none());
    assert_eq!(results[3]["properties"]["resource"]["kind"], "Deployment");

    let invocation = &run["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false);
    let notes: Vec<&str> = invocation["toolExecutionNotifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["message"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(notes, outcome.errors.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn sarif_clean_run_succeeds_with_no_results() {
    let doc: Value = serde_json::from_str(&render_plain(Format::Sarif, &Outcome::default())).unwrap();
    let run = &doc["runs"][0];
    assert_eq!(run["results"], serde_json::json!([]));
    assert_eq!(run["tool"]["driver"]["rules"], serde_json::json!([]));
    assert_eq!(run["invocations"][0]["executionSuccessful"], true);
    assert!(run["invocations"][0].get("toolExecutionNotifications").is_none());
}

fn sarif_fingerprints(outcome: &Outcome) -> Vec<String> {
    let doc: Value = serde_json::from_str(&render_plain(Format::Sarif, outcome)).unwrap();
    doc["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["partialFingerprints"]["guardrail/v2"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sarif_fingerprints_ignore_lines_but_not_identity() {
    let fingerprint =
        |f: &Finding| sarif_fingerprints(&Outcome { findings: vec![f.clone()], ..Default::default() }).remove(0);
    let base = outcome().findings[3].clone();
    assert_eq!(base.policy, "privileged-containers");
    let original = fingerprint(&base);
    assert_eq!(original.len(), 32);

    let mut moved = base.clone();
    moved.region = Region { line: 40, column: 25, end_line: 40, end_column: 29 };
    moved.file = "./examples/deployment.yaml".into();
    assert_eq!(fingerprint(&moved), original, "lines and a ./ prefix must not matter");

    let mut other_field = base.clone();
    other_field.pointer = "/spec/template/spec/containers/0/securityContext/privileged".into();
    let mut other_resource = base.clone();
    other_resource.resource.as_mut().unwrap().name = "api".into();
    let mut other_policy = base.clone();
    other_policy.policy = "other".into();
    let mut other_message = base.clone();
    other_message.message = "another violation of the same field".into();
    let all: HashSet<String> =
        [&base, &other_field, &other_resource, &other_policy, &other_message].into_iter().map(fingerprint).collect();
    assert_eq!(all.len(), 5);
}

#[test]
fn sarif_fingerprints_are_unique_in_a_log() {
    // Two findings on one line (two messages about one container), and the same finding twice.
    let base = outcome().findings[3].clone();
    let mut second = base.clone();
    second.message = "container \"nginx\" runs as root".into();
    let twins = Outcome { findings: vec![base.clone(), second, base.clone(), base], ..Default::default() };
    let prints = sarif_fingerprints(&twins);
    assert_eq!(prints.len(), 4);
    assert_eq!(prints.iter().collect::<HashSet<_>>().len(), 4, "{prints:?}");
    // Stable from run to run.
    assert_eq!(sarif_fingerprints(&twins), prints);
    // A whole outcome, exempted findings included.
    let mut outcome = outcome();
    let f = outcome.findings[3].clone();
    outcome.suppressed.push(Suppressed { finding: f, suppression: exemption(SuppressionKind::Organisation) });
    let prints = sarif_fingerprints(&outcome);
    assert_eq!(prints.iter().collect::<HashSet<_>>().len(), 5);
}

#[test]
fn sarif_exempted_findings_carry_suppressions() {
    let mut outcome = outcome();
    let privileged = outcome.findings.remove(3);
    let image = outcome.findings.remove(2);
    outcome.suppressed.push(Suppressed { finding: privileged, suppression: exemption(SuppressionKind::Annotation) });
    outcome.suppressed.push(Suppressed { finding: image, suppression: exemption(SuppressionKind::Organisation) });
    let doc: Value = serde_json::from_str(&render_plain(Format::Sarif, &outcome)).unwrap();
    let results = doc["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "exempted findings stay in the log");
    let suppressed: Vec<&Value> = results.iter().filter(|r| r.get("suppressions").is_some()).collect();
    assert_eq!(suppressed.len(), 2);
    for r in &suppressed {
        let s = &r["suppressions"][0];
        assert_eq!(s["status"], "accepted");
        assert_eq!(s["justification"], "the CNI needs it (until 2099-01-31)");
        assert_eq!(s["properties"]["owner"], "team-network");
    }
    // An annotation is written in the file itself; the organisation's list is kept elsewhere.
    let kind = |policy: &str| {
        suppressed.iter().find(|r| r["ruleId"] == policy).unwrap()["suppressions"][0]["kind"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(kind("privileged-containers"), "inSource");
    assert_eq!(kind("K8sAllowedRepos"), "external");
    validate_sarif(&doc);
}

#[test]
fn sarif_uris_are_relative_forward_slashed_and_encoded() {
    let uri = |file: &str| {
        let f = finding("p", "", Severity::Deny, "m", file, (1, 1, 1, 2), "", None);
        let outcome = Outcome { findings: vec![f], errors: vec![], ..Default::default() };
        let doc: Value = serde_json::from_str(&render_plain(Format::Sarif, &outcome)).unwrap();
        doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(uri("charts\\web\\values.yaml"), "charts/web/values.yaml");
    assert_eq!(uri("./a/./b.yaml"), "a/./b.yaml");
    assert_eq!(uri("dir with space/a#b%.yaml"), "dir%20with%20space/a%23b%25.yaml");
    assert_eq!(uri("x:y.yaml"), "x%3Ay.yaml");
    assert_eq!(uri("/abs/x.yaml"), "file:///abs/x.yaml");
    assert_eq!(uri("C:\\repo\\x.yaml"), "file:///C:/repo/x.yaml");
    assert_eq!(uri("ünï.yaml"), "%C3%BCn%C3%AF.yaml");
}

// ---- junit -------------------------------------------------------------------------------------

/// Enough of an XML parser to catch what string building gets wrong: unbalanced or unclosed tags,
/// raw `<`, `&` or `"` where they must be escaped, and characters XML 1.0 forbids.
fn assert_well_formed_xml(xml: &str) {
    let body = xml.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n").expect("XML declaration");
    let tag = regex::Regex::new(r#"^<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[A-Za-z-]+="[^"<]*")*)\s*(/?)>"#).unwrap();
    let entity = regex::Regex::new(r"^&(amp|lt|gt|quot|apos|#[0-9]+);").unwrap();
    let attribute = regex::Regex::new(r#"="([^"]*)""#).unwrap();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let caps = tag.captures(rest).unwrap_or_else(|| panic!("malformed tag at {rest:.60?}"));
            let name = caps[2].to_string();
            for value in attribute.captures_iter(&caps[3]) {
                check_entities(&value[1], &entity);
            }
            if &caps[1] == "/" {
                assert_eq!(stack.pop().as_deref(), Some(name.as_str()), "unbalanced </{name}>");
            } else if &caps[4] != "/" {
                stack.push(name);
            }
            rest = &rest[caps[0].len()..];
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            check_entities(&rest[..end], &entity);
            rest = &rest[end..];
        }
        if stack.is_empty() {
            assert_eq!(rest.trim(), "", "content after the root element");
            break;
        }
    }
    assert!(stack.is_empty(), "unclosed tags: {stack:?}");
}

fn check_entities(text: &str, entity: &regex::Regex) {
    for (i, c) in text.char_indices() {
        assert!(c != '<' && c != '>', "raw {c:?} in {text:?}");
        assert!(!c.is_control() || matches!(c, '\t' | '\n'), "control character {c:?} in {text:?}");
        if c == '&' {
            assert!(entity.is_match(&text[i..]), "raw & in {text:?}");
        }
    }
}

fn attr<'a>(xml: &'a str, element: &str, name: &str) -> Vec<&'a str> {
    let re = regex::Regex::new(&format!(r#"<{element}\b[^>]*?\s{name}="([^"]*)""#)).unwrap();
    re.captures_iter(xml).map(|c| c.get(1).unwrap().as_str()).collect()
}

#[test]
fn junit_output_is_well_formed_and_counts_failures() {
    let text = render_plain(Format::Junit, &outcome());
    insta::assert_snapshot!(text);
    assert_well_formed_xml(&text);

    // Totals on the root; one suite per file, and one for the run's errors.
    assert_eq!(attr(&text, "testsuites", "tests"), ["6"]);
    assert_eq!(attr(&text, "testsuites", "failures"), ["2"]);
    assert_eq!(attr(&text, "testsuites", "errors"), ["2"]);
    let deployment = "examples/deployment.yaml";
    assert_eq!(attr(&text, "testsuite", "name"), [deployment, "examples/legacy.yaml", "guardrail"]);
    assert_eq!(attr(&text, "testsuite", "tests"), ["3", "1", "2"]);
    assert_eq!(attr(&text, "testsuite", "failures"), ["2", "0", "0"]);
    assert_eq!(text.matches("<testcase ").count(), 6);
    assert_eq!(attr(&text, "failure", "type"), ["deny", "deny"]);
    assert_eq!(text.matches("<system-out>").count(), 2, "warn and info are passing cases with output");
    // Names carry the field, not the line; the place is in `file`, `line` and the failure message.
    let names = attr(&text, "testcase", "name");
    assert!(
        names.contains(
            &"privileged-containers Deployment shop/web spec.template.spec.containers[1].securityContext.privileged"
        ),
        "{names:?}"
    );
    assert_eq!(
        attr(&text, "testcase", "classname"),
        [deployment, deployment, deployment, "examples/legacy.yaml", "guardrail", "guardrail"]
    );
    assert_eq!(attr(&text, "testcase", "file"), [deployment, deployment, deployment, "examples/legacy.yaml"]);
    assert_eq!(attr(&text, "testcase", "line"), ["6", "29", "34", "3"]);
    let messages = attr(&text, "failure", "message");
    assert!(
        messages.contains(&"examples/deployment.yaml:34:25: Privileged container is not allowed: &quot;nginx&quot;"),
        "{messages:?}"
    );
    // The snippet is in the failure body, escaped.
    assert!(text.contains("34 |             privileged: true"));
    assert!(text.contains("missing label &quot;owner&quot; &lt;&amp;&gt; (see: docs/labels.md, 100%)"));
    assert!(text.contains("could not read charts/a&amp;b.yaml"));
}

#[test]
fn junit_escapes_hostile_text() {
    let message = "it's \"<b>\" & \u{1b}[31mred\u{7}\r\nnext";
    let f = finding("p<1>", "c", Severity::Deny, message, "a&b.yaml", (1, 1, 1, 2), "/a", web());
    let text = render_plain(Format::Junit, &Outcome { findings: vec![f], errors: vec![], ..Default::default() });
    assert_well_formed_xml(&text);
    // The attribute holds the place and the first line only; the body holds everything, with control
    // characters shown as escapes (the diagnostic is made for terminals).
    assert_eq!(
        attr(&text, "failure", "message"),
        ["a&amp;b.yaml:1:1: it&apos;s &quot;&lt;b&gt;&quot; &amp; \u{fffd}[31mred\u{fffd}"]
    );
    assert_eq!(attr(&text, "testcase", "classname"), ["a&amp;b.yaml"]);
    assert_eq!(attr(&text, "testcase", "name"), ["p&lt;1&gt; Deployment shop/web a"]);
    assert!(text.contains("it&apos;s &quot;&lt;b&gt;&quot; &amp; \\x1b[31mred\\x07\\x0d\n  next"), "{text}");
}

#[test]
fn junit_clean_run_is_one_passing_test() {
    let text = render_plain(Format::Junit, &Outcome::default());
    assert_well_formed_xml(&text);
    assert_eq!(attr(&text, "testcase", "name"), ["guardrail"]);
    assert_eq!(attr(&text, "testsuite", "tests"), ["1"]);
    assert_eq!(attr(&text, "testsuites", "failures"), ["0"]);
    assert!(!text.contains("<failure") && !text.contains("<error"));
}

#[test]
fn junit_names_repeated_cases_apart() {
    let mut outcome = outcome();
    let mut twin = find(&outcome, "privileged-containers").clone();
    twin.region = Region { line: 20, column: 11, end_line: 20, end_column: 15 };
    outcome.findings.push(twin);
    let text = render_plain(Format::Junit, &outcome);
    let names = attr(&text, "testcase", "name");
    let name = "privileged-containers Deployment shop/web spec.template.spec.containers[1].securityContext.privileged";
    assert!(names.contains(&name));
    assert!(names.contains(&format!("{name} (2)").as_str()), "{names:?}");
}

#[test]
fn junit_shows_exempted_findings_as_skipped() {
    let mut outcome = outcome();
    let f = outcome.findings.remove(3);
    outcome.suppressed.push(Suppressed { finding: f, suppression: exemption(SuppressionKind::Annotation) });
    let text = render_plain(Format::Junit, &outcome);
    assert_well_formed_xml(&text);
    assert_eq!(attr(&text, "testsuites", "failures"), ["1"]);
    assert_eq!(attr(&text, "testsuites", "skipped"), ["1"]);
    assert_eq!(
        attr(&text, "skipped", "message"),
        ["exempted (annotation in examples/deployment.yaml:4): the CNI needs it"]
    );
}

// ---- github ------------------------------------------------------------------------------------

fn unescape_github(text: &str) -> String {
    text.replace("%0D", "\r").replace("%0A", "\n").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")
}

#[test]
fn github_commands_annotate_each_finding() {
    let outcome = outcome();
    let text = render_plain(Format::Github, &outcome);
    insta::assert_snapshot!(text);

    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), outcome.findings.len() + outcome.errors.len() + 1, "one line per command: {text}");
    assert!(lines[0].starts_with("::notice file=examples/legacy.yaml,line=3,col=40,endLine=3,endColumn=43,"));
    assert!(lines[3].starts_with(
        "::error file=examples/deployment.yaml,line=34,col=25,endLine=34,endColumn=29,title=privileged-containers%3A Deployment shop/web::"
    ));
    // Columns are not allowed on an annotation spanning lines.
    assert_eq!(
        lines[1],
        "::warning file=examples/deployment.yaml,line=6,endLine=8,title=K8sRequiredLabels%3A Deployment shop/web::\
         missing label \"owner\" <&> (see: docs/labels.md, 100%25)%0Aadd it under metadata.labels%0Afield: metadata.labels"
    );
    assert_eq!(lines[4], "::error::policy policies/broken.rego does not load: unexpected \"<\" at 3:1");
    assert_eq!(lines[6], "4 findings (2 deny, 1 warn, 1 info) in 2 files, 2 errors");

    for (line, f) in lines.iter().zip(&outcome.findings) {
        let command = match f.severity {
            Severity::Deny => "error",
            Severity::Warn => "warning",
            Severity::Info => "notice",
        };
        let (head, message) = line.strip_prefix(&format!("::{command} ")).unwrap().split_once("::").unwrap();
        let props: HashMap<&str, String> = head
            .split(',')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k, unescape_github(v))
            })
            .collect();
        assert_eq!(props["file"], f.file.trim_start_matches("./"));
        assert_eq!(props["line"], f.region.line.to_string());
        assert!(unescape_github(message).starts_with(&f.message), "{message:?}");
    }
}

#[test]
fn github_escapes_properties_and_data() {
    let mut f =
        finding("a,b:c%d", "", Severity::Deny, "50% done\r\nnext: a,b", "dir,x/a:b.yaml", (0, 0, 0, 0), "", None);
    let render_one = |f: &Finding| {
        render_plain(Format::Github, &Outcome { findings: vec![f.clone()], errors: vec![], ..Default::default() })
    };
    assert_eq!(
        render_one(&f).lines().next().unwrap(),
        "::error file=dir%2Cx/a%3Ab.yaml,title=a%2Cb%3Ac%25d::50%25 done%0D%0Anext: a,b"
    );
    f.region = Region { line: 2, column: 0, end_line: 2, end_column: 0 };
    assert!(render_one(&f).starts_with("::error file=dir%2Cx/a%3Ab.yaml,line=2,endLine=2,title="));
}

// ---- gitlab ------------------------------------------------------------------------------------

fn gitlab_issues(outcome: &Outcome) -> Vec<Value> {
    serde_json::from_str::<Value>(&render_plain(Format::Gitlab, outcome)).unwrap().as_array().unwrap().clone()
}

#[test]
fn gitlab_code_quality_report() {
    let outcome = outcome();
    let text = render_plain(Format::Gitlab, &outcome);
    insta::assert_snapshot!(text);

    let issues = gitlab_issues(&outcome);
    assert_eq!(issues.len(), outcome.findings.len() + outcome.errors.len());
    for (issue, f) in issues.iter().zip(&outcome.findings) {
        assert_eq!(issue["check_name"], f.policy.as_str());
        assert_eq!(issue["description"], f.message.as_str());
        // GitLab's scale: a deny blocks the change (critical); a deny about input guardrail could not
        // check at all is a blocker.
        let expected = match f.severity {
            Severity::Deny if f.policy.starts_with("guardrail/") => "blocker",
            Severity::Deny => "critical",
            Severity::Warn => "minor",
            Severity::Info => "info",
        };
        assert_eq!(issue["severity"], expected);
        assert!(!issue["location"]["path"].as_str().unwrap().starts_with("./"));
        assert_eq!(issue["location"]["positions"]["begin"]["line"], f.region.line);
        assert_eq!(issue["location"]["positions"]["begin"]["column"], f.region.column);
        assert_eq!(issue["location"]["positions"]["end"]["line"], f.region.end_line);
    }
    for issue in &issues[outcome.findings.len()..] {
        assert_eq!(issue["severity"], "blocker");
        assert_eq!(issue["location"]["lines"]["begin"], 1);
    }
    let fingerprints: HashSet<&str> = issues.iter().map(|i| i["fingerprint"].as_str().unwrap()).collect();
    assert_eq!(fingerprints.len(), issues.len());
}

#[test]
fn gitlab_fingerprints_are_stable_and_unique() {
    let outcome = outcome();
    let by_message = |outcome: &Outcome| -> HashMap<String, String> {
        gitlab_issues(outcome)
            .iter()
            .map(|i| (i["description"].as_str().unwrap().to_string(), i["fingerprint"].as_str().unwrap().to_string()))
            .collect()
    };
    // The same finding has the same fingerprint whatever else is reported and wherever its line moves.
    let mut shifted = outcome.clone();
    shifted.findings.reverse();
    shifted.findings.retain(|f| f.severity != Severity::Info);
    for f in &mut shifted.findings {
        f.region.line += 3;
        f.region.end_line += 3;
    }
    let all = by_message(&outcome);
    for (message, fingerprint) in by_message(&shifted) {
        assert_eq!(all[&message], fingerprint, "{message}");
    }

    // Pinned so that a change of hash (or of platform) shows up: FNV-1a 128 over length-prefixed
    // policy, constraint, file, pointer, "+", apiVersion, kind, namespace, name, message.
    assert_eq!(all["Privileged container is not allowed: \"nginx\""], "53846a79bea42adcb49de6c1bee75132");

    // Two findings identical but for the line (a YAML error repeated in one file) stay distinct.
    let twin =
        |line| finding("guardrail/yaml", "", Severity::Deny, "duplicate key", "a.yaml", (line, 1, line, 2), "", None);
    let dup = Outcome { findings: vec![twin(1), twin(5)], errors: vec![], ..Default::default() };
    let first = gitlab_issues(&dup);
    assert_ne!(first[0]["fingerprint"], first[1]["fingerprint"]);
    assert_eq!(first, gitlab_issues(&dup));
}

// ---- SARIF schema ------------------------------------------------------------------------------

/// Fails the test with every error when `doc` is not valid against the SARIF 2.1.0 schema (vendored
/// in tests/fixtures/sarif).
pub fn validate_sarif(doc: &Value) {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(include_str!("../fixtures/sarif/sarif-schema-2.1.0.json"))
            .expect("the schema is JSON");
        jsonschema::options().should_validate_formats(true).build(&schema).expect("the SARIF schema compiles")
    });
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "SARIF log is not valid 2.1.0: {errors:#?}");
}

#[test]
fn sarif_logs_are_valid_against_the_2_1_0_schema() {
    // The full outcome with errors, exemptions, notes and policy descriptions; a clean run.
    let mut outcome = outcome();
    let f = outcome.findings.remove(3);
    outcome.suppressed.push(Suppressed { finding: f, suppression: exemption(SuppressionKind::Baseline) });
    let mut opts = opts(false);
    opts.run.notes.push("allowed-registries is not configured".into());
    opts.run.root = Some("/work/repo".into());
    opts.run.cwd = "/work/repo/services".into();
    let set = guardrail::policy::PolicySet::load(&[], &Default::default()).unwrap();
    opts.run.policies = guardrail::report::catalog::describe(&set, &[]);
    for outcome in [outcome, Outcome::default()] {
        let doc: Value = serde_json::from_str(&render(Format::Sarif, &outcome, &sources(), &opts)).unwrap();
        validate_sarif(&doc);
    }
    // The validator is not a rubber stamp.
    let mut broken: Value = serde_json::from_str(&render_plain(Format::Sarif, &Outcome::default())).unwrap();
    broken["runs"][0]["results"] = serde_json::json!([{ "level": "fatal", "message": {} }]);
    let errors = std::panic::catch_unwind(|| validate_sarif(&broken));
    assert!(errors.is_err());
}

#[test]
fn gitlab_blocks_on_input_that_was_not_checked() {
    let unreadable =
        finding("guardrail/yaml", "", Severity::Deny, "duplicate key `image`", "a.yaml", (3, 1, 3, 6), "", None);
    let timed_out = finding(
        "capabilities",
        "capabilities",
        Severity::Deny,
        "policy capabilities did not finish within its time limit on this object; the object was not checked by it",
        "a.yaml",
        (1, 1, 1, 2),
        "",
        web(),
    );
    let outcome = Outcome { findings: vec![unreadable, timed_out], ..Default::default() };
    let severities: Vec<String> =
        gitlab_issues(&outcome).iter().map(|i| i["severity"].as_str().unwrap().to_string()).collect();
    assert_eq!(severities, ["blocker", "blocker"]);
}
