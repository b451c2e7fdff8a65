//! Terraform-managed Kubernetes (issue 4): every form of `tests/fixtures/terraform/` scanned the way
//! the App scans (in-memory files), findings pinned at file:line:column.

use std::path::Path;
use std::sync::Arc;

use guardrail::findings::{Finding, Severity};
use guardrail::manifest::terraform::{self, FileMap};
use guardrail::manifest::{LoadOptions, Loaded};

use crate::support::{policies, scan};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/terraform");

/// The files of fixture folders, named by their path under `tests/fixtures/terraform/`.
fn fixture(dirs: &[&str]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in dirs {
        collect(&Path::new(FIXTURES).join(dir), dir, &mut files);
    }
    files.sort();
    files
}

fn collect(path: &Path, name: &str, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(path).unwrap() {
        let entry = entry.unwrap();
        let child = format!("{name}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            collect(&entry.path(), &child, out);
        } else {
            out.push((child, std::fs::read_to_string(entry.path()).unwrap()));
        }
    }
}

fn lines(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} {}:{}:{} {} [{}] {} {}",
                f.severity.as_str(),
                f.file,
                f.region.line,
                f.region.column,
                f.resource.as_ref().map(|r| r.name.as_str()).unwrap_or("-"),
                f.policy,
                f.pointer,
                f.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn scan_fixture(dirs: &[&str]) -> Vec<Finding> {
    let files = fixture(dirs);
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    scan(&policies(true, &[]), &refs).outcome.findings
}

fn load(dirs: &[&str]) -> Loaded {
    let mut map = FileMap::new("");
    for (name, text) in fixture(dirs) {
        map.insert(&name, Arc::from(text));
    }
    let mut out = Loaded::default();
    terraform::load(&map, &LoadOptions::default(), &mut out);
    out
}

#[test]
fn inline_manifest_findings_point_at_the_hcl_keys() {
    let findings = scan_fixture(&["inline"]);
    insta::assert_snapshot!(lines(&findings));
}

#[test]
fn file_and_templatefile_findings_point_into_the_yaml_and_the_template() {
    let findings = scan_fixture(&["files"]);
    insta::assert_snapshot!(lines(&findings));
}

#[test]
fn local_modules_take_tfvars_and_module_arguments() {
    let findings = scan_fixture(&["modules"]);
    insta::assert_snapshot!(lines(&findings));
    let loaded = load(&["modules"]);
    let image = loaded.resources[0].object.pointer("/spec/template/spec/containers/0/image").unwrap();
    assert_eq!(image, "ghcr.io/acme/shop:2.0", "terraform.tfvars overrides the default");
}

#[test]
fn typed_resources_become_the_objects_the_provider_sends() {
    let loaded = load(&["typed"]);
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    let objects: Vec<serde_json::Value> = loaded.resources.iter().map(|r| r.object.clone()).collect();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/typed/expected.json")).unwrap()).unwrap();
    let actual = serde_json::Value::Array(objects);
    assert!(actual == expected, "GOT\n{}\nEND", serde_json::to_string_pretty(&actual).unwrap());
}

#[test]
fn typed_findings_point_at_the_attribute_that_sets_the_value() {
    let findings = scan_fixture(&["typed"]);
    insta::assert_snapshot!(lines(&findings));
}

#[test]
fn pod_security_templates_fire_on_terraform_exactly_as_on_yaml() {
    let read = |name: &str| std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
    let policy_files =
        ["gk-privileged-containers.yaml", "gk-host-namespaces.yaml", "gk-capabilities.yaml", "gk-constraints.yaml"];
    let texts: Vec<(String, String)> = policy_files.iter().map(|n| (n.to_string(), read(n))).collect();
    let refs: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let set = policies(false, &refs);
    let verdicts = |files: &[(&str, &str)]| {
        let mut v: Vec<(String, String)> = scan(&set, files)
            .outcome
            .findings
            .into_iter()
            .filter(|f| f.resource.as_ref().is_some_and(|r| r.kind == "Pod"))
            .map(|f| (f.policy, f.message))
            .collect();
        v.sort();
        v
    };
    let tf = read("typed/main.tf");
    let yaml = read("typed/equivalent.yaml");
    let from_terraform = verdicts(&[("main.tf", &tf)]);
    let from_yaml = verdicts(&[("pod.yaml", &yaml)]);
    assert_eq!(from_terraform, from_yaml);
    let policies: Vec<&str> = from_yaml.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(policies, ["K8sPSPCapabilities", "K8sPSPCapabilities", "K8sPSPPrivilegedContainer"], "{from_yaml:?}");
}

#[test]
fn malformed_hcl_is_an_error_at_its_line_and_the_other_files_are_still_checked() {
    let findings = scan_fixture(&["broken"]);
    insta::assert_snapshot!(lines(&findings));
    assert!(findings.iter().any(|f| f.file == "broken/main.tf" && f.severity == Severity::Deny));
    assert!(findings.iter().any(|f| f.file == "broken/good.tf" && f.policy.contains("host-namespaces")));
}

#[test]
fn paths_outside_the_repository_are_not_read_and_are_unknowns() {
    let findings = scan_fixture(&["escape"]);
    insta::assert_snapshot!(lines(&findings));
    assert_eq!(findings.iter().filter(|f| f.severity == Severity::Deny).count(), 0, "{findings:?}");
    for expression in [r#"`file("../../etc/passwd")`"#, r#"`file("/etc/hostname")`"#] {
        assert!(
            findings.iter().any(|f| f.severity == Severity::Warn && f.message.contains(expression)),
            "a warning names {expression}: {findings:?}"
        );
    }
}

#[test]
fn symbolic_links_on_disk_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("pod.yaml"), "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("pod.yaml"), dir.path().join("pod.yaml")).unwrap();
    std::fs::write(
        dir.path().join("main.tf"),
        "resource \"kubernetes_manifest\" \"x\" {\n  manifest = yamldecode(file(\"pod.yaml\"))\n}\n",
    )
    .unwrap();
    let scan =
        guardrail::scan::scan_paths(&[dir.path().to_path_buf()], &policies(true, &[]), &Default::default()).unwrap();
    let f = &scan.outcome.findings;
    assert!(f.iter().any(|f| f.severity == Severity::Deny && f.message.contains("symbolic links")), "{f:?}");
    assert_eq!(f.iter().filter(|f| f.resource.is_some()).count(), 0, "{f:?}");
}

#[test]
fn plan_files_are_read_with_positions_and_unknowns() {
    let findings = scan_fixture(&["plan"]);
    insta::assert_snapshot!(lines(&findings));
}

#[test]
fn referenced_files_tell_the_app_what_to_fetch() {
    let text = std::fs::read_to_string(format!("{FIXTURES}/files/main.tf")).unwrap();
    assert_eq!(
        terraform::referenced_files("infra/k8s/main.tf", &text),
        ["infra/k8s/api.yaml", "infra/k8s/worker.yaml.tpl"]
    );
    let text = std::fs::read_to_string(format!("{FIXTURES}/modules/main.tf")).unwrap();
    assert_eq!(terraform::referenced_files("envs/prod/main.tf", &text), ["envs/prod/app/"]);
    let text = std::fs::read_to_string(format!("{FIXTURES}/escape/main.tf")).unwrap();
    assert!(terraform::referenced_files("main.tf", &text).is_empty());
}

#[test]
fn hostile_terraform_input_gives_findings_not_panics() {
    let deep = format!("locals {{ x = {}1{} }}\n", "[".repeat(5000), "]".repeat(5000));
    let cycle = "locals {\n  a = local.b\n  b = local.a\n}\nresource \"kubernetes_manifest\" \"x\" {\n  manifest = local.a\n}\n";
    let huge = "resource \"kubernetes_manifest\" \"x\" {\n  count = 100000000\n  manifest = {}\n}\n";
    for text in [deep.as_str(), cycle, huge, "resource \"x\" {", "\u{0}\u{1}", "${", "%{ if }"] {
        let _ = scan(&policies(true, &[]), &[("main.tf", text)]);
        let _ = terraform::referenced_files("main.tf", text);
    }
}

#[test]
fn namespaced_typed_objects_default_to_the_default_namespace_and_cron_job_v1beta1_stays_v1beta1() {
    let tf = r#"resource "kubernetes_cron_job" "old" {
  metadata { name = "old" }
  spec {
    schedule = "0 3 * * *"
    job_template {
      metadata {}
      spec {
        template {
          metadata {}
          spec {
            container {
              name  = "c"
              image = "gcr.io/corp/c:1"
            }
          }
        }
      }
    }
  }
}

resource "kubernetes_cluster_role_v1" "reader" {
  metadata { name = "reader" }
}
"#;
    let mut loaded = guardrail::manifest::Loaded::default();
    guardrail::manifest::terraform::load_texts(&[("main.tf".into(), tf.into())], &Default::default(), &mut loaded);
    let objects: Vec<&serde_json::Value> = loaded.resources.iter().map(|r| &r.object).collect();
    let cron = objects.iter().find(|o| o["kind"] == "CronJob").expect("a CronJob");
    assert_eq!(cron["apiVersion"], "batch/v1beta1", "the provider's kubernetes_cron_job is v1beta1");
    assert_eq!(cron["metadata"]["namespace"], "default", "the metadata schema defaults the namespace");
    assert_eq!(cron["spec"]["jobTemplate"]["spec"]["manualSelector"], false);
    assert!(cron["spec"].get("successfulJobsHistoryLimit").is_none(), "not sent at its default");
    let role = objects.iter().find(|o| o["kind"] == "ClusterRole").expect("a ClusterRole");
    assert!(role["metadata"].get("namespace").is_none(), "cluster-scoped: no namespace");
}

#[test]
fn an_unknown_value_softens_only_the_violations_that_depend_on_it() {
    let findings = scan_fixture(&["unknowns"]);
    insta::assert_snapshot!(lines(&findings));
    let privileged: Vec<&Finding> = findings.iter().filter(|f| f.policy == "privileged-containers").collect();
    // `name = var.name` does not change `privileged = true`: still a deny, at the attribute.
    assert!(
        privileged.iter().any(|f| f.severity == Severity::Deny && f.region.line == 12 && f.region.column == 9),
        "{privileged:?}"
    );
    // `privileged = var.privileged` may be true: a warning at it naming the variable, never a silent pass.
    let maybe = privileged.iter().find(|f| f.region.line == 26).expect("a finding at the unknown value");
    assert_eq!(maybe.severity, Severity::Warn);
    assert!(maybe.message.contains("`var.privileged`"), "{}", maybe.message);
}

#[test]
fn a_file_terraform_reads_is_checked_through_terraform_once_and_not_as_broken_yaml() {
    let findings = scan_fixture(&["tplyaml"]);
    insta::assert_snapshot!(lines(&findings));
    assert!(
        !findings.iter().any(|f| f.file == "tplyaml/deploy.yaml" && f.resource.is_none()),
        "no YAML error for the template's %{{ if }} lines: {findings:?}"
    );
    let privileged = |file: &str| {
        findings
            .iter()
            .filter(|f| f.file == file && f.policy == "privileged-containers")
            .map(|f| f.region.line)
            .collect::<Vec<_>>()
    };
    assert_eq!(privileged("tplyaml/deploy.yaml"), [11], "the template line, once");
    assert_eq!(privileged("tplyaml/pod.yaml"), [10], "the YAML line, once (not also as a plain file)");
}

#[test]
fn flatten_is_recursive_range_is_computed_and_an_unsupported_function_is_a_warning_naming_it() {
    let findings = scan_fixture(&["functions"]);
    insta::assert_snapshot!(lines(&findings));
    let privileged: Vec<u32> = findings
        .iter()
        .filter(|f| f.policy == "privileged-containers" && f.severity == Severity::Deny)
        .map(|f| f.region.line)
        .collect();
    assert_eq!(privileged, [13, 26], "1,000 flattened items and range(10) both evaluate to privileged = true");
    assert!(
        findings.iter().any(|f| f.severity == Severity::Warn
            && f.region.line == 39
            && f.message.contains(r#"`cidrcontains("10.0.0.0/8", "10.1.2.3")`"#)),
        "{findings:?}"
    );
}

#[test]
fn every_kubernetes_provider_resource_that_is_an_object_is_converted_and_the_rest_get_a_note() {
    let loaded = load(&["typed_more"]);
    let objects: Vec<&serde_json::Value> = loaded.resources.iter().map(|r| &r.object).collect();
    let kinds: Vec<String> = objects
        .iter()
        .map(|o| format!("{} {}", o["apiVersion"].as_str().unwrap(), o["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            "v1 Secret",
            "v1 PersistentVolumeClaim",
            "v1 PersistentVolume",
            "autoscaling/v2 HorizontalPodAutoscaler",
            "policy/v1 PodDisruptionBudget",
            "storage.k8s.io/v1 StorageClass",
            "v1 LimitRange",
            "v1 ResourceQuota",
            "admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration",
        ]
    );
    let by_kind = |kind: &str| *objects.iter().find(|o| o["kind"] == kind).unwrap();
    assert_eq!(by_kind("Secret")["data"]["password"], "aHVudGVyMg==", "the provider base64-encodes data");
    assert_eq!(by_kind("Secret")["type"], "Opaque");
    assert_eq!(by_kind("PersistentVolumeClaim")["spec"]["accessModes"][0], "ReadWriteOnce");
    assert_eq!(by_kind("PersistentVolume")["spec"]["hostPath"]["path"], "/var/data", "the source is inlined");
    assert!(by_kind("PersistentVolume")["metadata"].get("namespace").is_none());
    assert_eq!(by_kind("HorizontalPodAutoscaler")["spec"]["maxReplicas"], 50);
    assert_eq!(
        by_kind("HorizontalPodAutoscaler")["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    assert_eq!(by_kind("PodDisruptionBudget")["spec"]["minAvailable"], "50%");
    assert_eq!(by_kind("StorageClass")["provisioner"], "kubernetes.io/gce-pd");
    assert_eq!(by_kind("StorageClass")["allowVolumeExpansion"], true);
    assert_eq!(by_kind("LimitRange")["spec"]["limits"][0]["default"]["cpu"], "500m");
    assert_eq!(by_kind("ResourceQuota")["spec"]["hard"]["pods"], 10);
    let hook = &by_kind("ValidatingWebhookConfiguration")["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["clientConfig"]["url"], "https://hook.example.com/validate");
    assert_eq!(hook["rules"][0]["operations"][0], "CREATE");
    let notes: Vec<String> = loaded
        .findings
        .iter()
        .map(|f| format!("{} {}:{}:{} {}", f.severity.as_str(), f.file, f.region.line, f.region.column, f.message))
        .collect();
    assert_eq!(
        notes,
        ["info typed_more/main.tf:117:1 kubernetes_labels.extra: guardrail does not convert kubernetes_labels resources to Kubernetes objects, so no policy checked it"]
    );
}

/// The API versions the provider sends, as its `provider.go` registers the resources (checked
/// against hashicorp/terraform-provider-kubernetes): the un-suffixed names of a few resources are
/// older API versions than their `_v1` forms.
#[test]
fn typed_resources_get_the_api_version_the_provider_sends() {
    let tf = r#"
resource "kubernetes_ingress" "old" {
  metadata { name = "old" }
  spec {
    backend {
      service_name = "web"
      service_port = 80
    }
  }
}
resource "kubernetes_ingress_v1" "new" {
  metadata { name = "new" }
  spec {
    default_backend {
      service {
        name = "web"
        port { number = 80 }
      }
    }
  }
}
resource "kubernetes_pod_disruption_budget" "old" {
  metadata { name = "old" }
  spec { max_unavailable = 1 }
}
resource "kubernetes_pod_disruption_budget_v1" "new" {
  metadata { name = "new" }
  spec { max_unavailable = 1 }
}
"#;
    let mut map = FileMap::new("");
    map.insert("main.tf", Arc::from(tf));
    let mut out = Loaded::default();
    terraform::load(&map, &LoadOptions::default(), &mut out);
    let versions: Vec<(String, String, String)> = out
        .resources
        .iter()
        .map(|r| {
            let s = |p: &str| r.object.pointer(p).and_then(|v| v.as_str()).unwrap_or("").to_string();
            (s("/apiVersion"), s("/kind"), s("/metadata/name"))
        })
        .collect();
    let expected = [
        ("extensions/v1beta1", "Ingress", "old"),
        ("networking.k8s.io/v1", "Ingress", "new"),
        ("policy/v1beta1", "PodDisruptionBudget", "old"),
        ("policy/v1", "PodDisruptionBudget", "new"),
    ]
    .map(|(a, k, n)| (a.to_string(), k.to_string(), n.to_string()));
    assert_eq!(versions, expected);
    let old = &out.resources[0].object;
    assert_eq!(old.pointer("/spec/backend/serviceName").and_then(|v| v.as_str()), Some("web"), "{old}");
}

/// A value passed in through a module call is reported in the caller's file, at the argument
/// (nested calls: at the first caller that wrote it); a value the module writes itself stays in
/// the module; an unknown argument's "may be a violation" warning is at the argument too. Each
/// location is proven by editing the line it names to `false`: exactly the finding there goes,
/// and nothing else changes.
#[test]
fn a_value_passed_in_through_a_module_call_is_reported_in_the_callers_file() {
    let files = fixture(&["module-args"]);
    let before = run_builtin(&files);
    insta::assert_snapshot!(before.join("\n"));
    let privileged: Vec<String> = before
        .iter()
        .filter(|l| l.contains("[privileged-containers]"))
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let expected = [
        ("module-args/main.tf", 4, "true", "deny module-args/main.tf:4:3 web"),
        ("module-args/main.tf", 9, "true", "deny module-args/main.tf:9:3 inner"),
        ("module-args/modules/wrapper/main.tf", 13, "true", "deny module-args/modules/wrapper/main.tf:13:3 own"),
        ("module-args/main.tf", 10, "true", "deny module-args/main.tf:10:18 object"),
        ("module-args/main.tf", 18, "var.unknown", "warn module-args/main.tf:18:3 maybe"),
    ];
    let mut sorted: Vec<&str> = expected.iter().map(|e| e.3).collect();
    sorted.sort();
    let mut got: Vec<&str> = privileged.iter().map(String::as_str).collect();
    got.sort();
    assert_eq!(got, sorted);
    for (file, line, value, finding) in expected {
        only_this_goes(&files, &before, (file, line, value, "false"), finding);
    }
}

/// A value the module computes from one argument of its caller (`lower(var.x)`, `"${var.x}-sfx"`,
/// `format(...)`, `coalesce(...)`, a comparison, a conditional on it) is reported at that
/// argument, in the caller's file; one made from two arguments stays where the module computes
/// it. Each place is proven by editing the caller's argument to a compliant value: exactly the
/// finding there goes, nothing else changes.
#[test]
fn a_value_a_module_computes_from_one_argument_is_reported_at_the_argument() {
    let files = fixture(&["module-transforms"]);
    let before = run_builtin(&files);
    insta::assert_snapshot!(before.join("\n"));
    let main = "module-transforms/main.tf";
    let edits = [
        (4, "\"DOCKER.IO/library\"", "\"REGISTRY.CORP.EXAMPLE\"", "[allowed-registries]", "lower() in a template"),
        (5, "\"sys_admin\"", "\"chown\"", "[capabilities]", "upper() in a template"),
        (6, "\"RAW\"", "\"BIND_SERVICE\"", "[capabilities]", "format()"),
        (7, "8000", "-80", "[host-network]", "arithmetic"),
        (8, "\"host\"", "\"container\"", "[host-namespaces]", "a comparison"),
        (9, "\"HOST\"", "\"private\"", "[host-namespaces]", "coalesce() and lower() in a comparison"),
        (10, "true", "false", "[privileged-containers]", "a conditional"),
    ];
    for (line, from, to, policy, how) in edits {
        let at = format!("{main}:{line}:3 ");
        let here: Vec<&String> = before.iter().filter(|l| l.contains(&at)).collect();
        assert_eq!(here.len(), 1, "{how}: one finding at {at}: {before:#?}");
        assert!(here[0].contains(policy), "{how}: {}", here[0]);
        only_this_goes(&files, &before, (main, line, from, to), &format!("deny {at}"));
    }
    // The debug image is made from two arguments: it stays at the module's line.
    let image = before.iter().find(|l| l.contains("[allowed-registries]") && l.contains("docker.io/tools"));
    assert!(image.is_some_and(|l| l.contains("module-transforms/modules/app/main.tf:53:7 ")), "{before:#?}");
}

/// The builtin pack's findings on `files`, one line each.
fn run_builtin(files: &[(String, String)]) -> Vec<String> {
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let findings = scan(&policies(true, &[]), &refs).outcome.findings;
    lines(&findings).lines().map(str::to_string).collect()
}

/// After replacing `from` by `to` on `line` of `file`, exactly one finding of `before` is gone,
/// the one that starts with `finding`, and none is new.
fn only_this_goes(
    files: &[(String, String)],
    before: &[String],
    (file, line, from, to): (&str, usize, &str, &str),
    finding: &str,
) {
    let edited: Vec<(String, String)> = files
        .iter()
        .map(|(name, text)| {
            if name != file {
                return (name.clone(), text.clone());
            }
            let text = text
                .lines()
                .enumerate()
                .map(|(i, l)| if i + 1 == line { l.replace(from, to) } else { l.to_string() })
                .collect::<Vec<_>>()
                .join("\n");
            (name.clone(), text + "\n")
        })
        .collect();
    assert_ne!(edited, files, "{file}:{line} holds `{from}`");
    let after = run_builtin(&edited);
    let gone: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
    let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(new.is_empty(), "editing {file}:{line} raised {new:?}");
    assert_eq!(gone.len(), 1, "editing {file}:{line} removed {gone:?}");
    assert!(gone[0].starts_with(finding), "editing {file}:{line} removed {gone:?}, not {finding}");
}
