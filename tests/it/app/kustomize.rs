//! Kustomize in pull requests (issue 16, the App): a change to any file of a kustomization's tree
//! renders again the overlays at the head that include it (with the real `kubectl kustomize`), and
//! findings land on the source lines that set the values; patch files are never checked on their
//! own, and remote resources are refused before anything is rendered.

use super::*;

/// A clean Deployment; `privileged: false` is line 16.
const BASE_DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: gcr.io/corp/pause:3.9
          securityContext:
            privileged: false
          resources:
            limits: {cpu: 100m, memory: 64Mi}
            requests: {cpu: 100m, memory: 64Mi}
";

const BASE_KUSTOMIZATION: &str = "resources:\n  - deployment.yaml\n";

/// A strategic-merge patch; `privileged: false` is line 11. On its own it would be a Deployment
/// without resources (a finding of its own if it were ever checked standalone).
const SECURITY_PATCH: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: app
          securityContext:
            privileged: false
";

fn overlay(namespace: &str, patch: Option<&str>) -> String {
    let mut k = format!("namespace: {namespace}\nresources:\n  - ../../base\n");
    if let Some(p) = patch {
        k.push_str(&format!("patches:\n  - path: {p}\n"));
    }
    k
}

/// (path, line, policy) of every annotation.
fn at(run: &crate::fake_github::CheckRun) -> Vec<(String, u64, String)> {
    let mut out: Vec<(String, u64, String)> = run
        .annotations
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["start_line"].as_u64().unwrap(),
                a["title"].as_str().unwrap().split(' ').next().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn comment_lines(h: &Harness, number: u64) -> Vec<(String, Option<u64>)> {
    let mut out: Vec<(String, Option<u64>)> =
        h.gh.review_comments(REPO, number).into_iter().map(|c| (c.path, c.line)).collect();
    out.sort();
    out
}

fn s(path: &str, line: u64, policy: &str) -> (String, u64, String) {
    (path.to_string(), line, policy.to_string())
}

#[tokio::test]
async fn a_pull_request_changing_only_a_patch_line_gets_its_comment_at_that_patch_line() {
    let h = Harness::new().await;
    let prod = overlay("prod", Some("security.yaml"));
    h.pull(
        90,
        &[
            ("base/deployment.yaml", BASE_DEPLOY),
            ("base/kustomization.yaml", BASE_KUSTOMIZATION),
            ("overlays/prod/kustomization.yaml", &prod),
            ("overlays/prod/security.yaml", SECURITY_PATCH),
        ],
        &[("overlays/prod/security.yaml", Some(&SECURITY_PATCH.replace("privileged: false", "privileged: true")))],
    );
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 90)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    // Only the rendered overlay's finding, at the patch line; the patch itself is not a manifest.
    assert_eq!(at(run), vec![s("overlays/prod/security.yaml", 11, "privileged-containers")], "{:#?}", run.annotations);
    assert!(run.annotations[0]["message"].as_str().unwrap().contains("overlays/prod"), "{:?}", run.annotations);
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert_eq!(comment_lines(&h, 90), vec![("overlays/prod/security.yaml".to_string(), Some(11))]);
    assert!(run.summary.as_deref().unwrap().contains("`overlays/prod`"), "{:?}", run.summary);
    h.finish().await;
}

#[tokio::test]
async fn a_base_shared_by_two_overlays_is_reported_once_for_the_overlay_that_violates() {
    let h = Harness::new().await;
    // dev patches privileged back to false; prod takes the base as it is; broken names a patch
    // that does not exist, so it cannot be rendered.
    let (dev, prod, broken) =
        (overlay("dev", Some("security.yaml")), overlay("prod", None), overlay("broken", Some("missing.yaml")));
    h.pull(
        91,
        &[
            ("base/deployment.yaml", BASE_DEPLOY),
            ("base/kustomization.yaml", BASE_KUSTOMIZATION),
            ("overlays/dev/kustomization.yaml", &dev),
            ("overlays/dev/security.yaml", SECURITY_PATCH),
            ("overlays/prod/kustomization.yaml", &prod),
            ("overlays/broken/kustomization.yaml", &broken),
            ("apps/other.yaml", CLEAN),
        ],
        &[("base/deployment.yaml", Some(&BASE_DEPLOY.replace("privileged: false", "privileged: true")))],
    );
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 91)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!(
        at(run),
        vec![
            s("base/deployment.yaml", 16, "privileged-containers"),
            s("overlays/broken/kustomization.yaml", 5, "guardrail/kustomize"),
        ],
        "{:#?}",
        run.annotations
    );
    let base_finding = run.annotations.iter().find(|a| a["path"] == "base/deployment.yaml").unwrap();
    let message = base_finding["message"].as_str().unwrap();
    assert!(message.contains("overlays/prod") && !message.contains("overlays/dev"), "{message}");
    let broken_finding = run.annotations.iter().find(|a| a["path"] == "overlays/broken/kustomization.yaml").unwrap();
    assert!(broken_finding["message"].as_str().unwrap().contains("missing.yaml"), "{broken_finding}");
    // The base line is in the diff: one comment there. The broken overlay is not in the diff.
    assert_eq!(comment_lines(&h, 91), vec![("base/deployment.yaml".to_string(), Some(16))]);
    let summary = run.summary.as_deref().unwrap();
    for overlay in ["`overlays/broken`", "`overlays/dev`", "`overlays/prod`"] {
        assert!(summary.contains(overlay), "{overlay} listed as rendered: {summary}");
    }
    // No file outside the kustomizations' trees was among those read for rendering, and no
    // temporary folder shows anywhere.
    let text = format!("{summary}\n{}\n{:?}", run.text.as_deref().unwrap_or(""), run.annotations);
    assert!(!text.contains("/tmp/") && !text.contains("guardrail-kustomize"), "{text}");
    h.finish().await;
}

#[tokio::test]
async fn a_pull_request_changing_an_unrelated_file_renders_nothing() {
    let h = Harness::new().await;
    // The prod overlay violates at the head, but this pull request does not touch its tree.
    let prod = overlay("prod", None);
    let privileged_base = BASE_DEPLOY.replace("privileged: false", "privileged: true");
    h.pull(
        92,
        &[
            ("base/deployment.yaml", &privileged_base),
            ("base/kustomization.yaml", BASE_KUSTOMIZATION),
            ("overlays/prod/kustomization.yaml", &prod),
        ],
        &[("apps/other.yaml", Some(CLEAN)), ("overlays/prod/notes.txt", Some("not used by kustomize\n"))],
    );
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 92)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert!(run.annotations.is_empty(), "{:#?}", run.annotations);
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{:?}", run.summary);
    assert!(!run.summary.as_deref().unwrap().contains("Kustomize overlays rendered"), "{:?}", run.summary);
    assert!(h.gh.review_comments(REPO, 92).is_empty());
    h.finish().await;
}

#[tokio::test]
async fn a_remote_resource_is_refused_at_its_line_and_nothing_is_rendered() {
    let h = Harness::new().await;
    let remote = "resources:\n  - ../../base\n  - https://github.com/example/manifests//deploy?ref=v1\n";
    h.pull(
        93,
        &[("base/deployment.yaml", BASE_DEPLOY), ("base/kustomization.yaml", BASE_KUSTOMIZATION)],
        &[("overlays/remote/kustomization.yaml", Some(remote))],
    );
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 93)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!(
        at(run),
        vec![s("overlays/remote/kustomization.yaml", 3, "guardrail/kustomize")],
        "{:#?}",
        run.annotations
    );
    let message = run.annotations[0]["message"].as_str().unwrap();
    assert!(message.contains("not fetched") && message.contains("was not rendered"), "{message}");
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert_eq!(comment_lines(&h, 93), vec![("overlays/remote/kustomization.yaml".to_string(), Some(3))]);
    // Nothing was asked of anyone but the (fake) GitHub API, and nothing of it beyond this repository.
    assert!(h.gh.calls().iter().all(|c| !c.path.contains("example/manifests")), "{:?}", h.gh.calls());
    h.finish().await;
}

/// An overlay that takes a component (whose patch sets `privileged`) and generates a ConfigMap from
/// a file.
fn with_component_and_generator() -> Vec<(&'static str, String)> {
    vec![
        ("base/deployment.yaml", BASE_DEPLOY.to_string()),
        ("base/kustomization.yaml", BASE_KUSTOMIZATION.to_string()),
        (
            "components/hardening/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n  - path: security.yaml\n"
                .to_string(),
        ),
        ("components/hardening/security.yaml", SECURITY_PATCH.to_string()),
        (
            "overlays/prod/kustomization.yaml",
            "namespace: prod\nresources:\n  - ../../base\ncomponents:\n  - ../../components/hardening\nconfigMapGenerator:\n  - name: settings\n    files:\n      - settings.properties\n"
                .to_string(),
        ),
        ("overlays/prod/settings.properties", "mode=safe\n".to_string()),
    ]
}

#[tokio::test]
async fn a_change_to_a_component_patch_renders_the_overlay_that_takes_it() {
    let h = Harness::new().await;
    let base = with_component_and_generator();
    let base: Vec<(&str, &str)> = base.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let patched = SECURITY_PATCH.replace("privileged: false", "privileged: true");
    h.pull(94, &base, &[("components/hardening/security.yaml", Some(&patched))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 94)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!(
        at(run),
        vec![s("components/hardening/security.yaml", 11, "privileged-containers")],
        "{:#?}",
        run.annotations
    );
    assert_eq!(comment_lines(&h, 94), vec![("components/hardening/security.yaml".to_string(), Some(11))]);
    let summary = run.summary.as_deref().unwrap();
    assert!(summary.contains("`overlays/prod`") && !summary.contains("`components/hardening`"), "{summary}");
    h.finish().await;
}

#[tokio::test]
async fn a_change_to_a_generator_input_renders_the_overlay_that_reads_it() {
    let h = Harness::new().await;
    let base = with_component_and_generator();
    let base: Vec<(&str, &str)> = base.iter().map(|(p, t)| (*p, t.as_str())).collect();
    h.pull(95, &base, &[("overlays/prod/settings.properties", Some("mode=fast\n"))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 95)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    // Rendered (and clean: the component keeps privileged off).
    assert!(run.annotations.is_empty(), "{:#?}", run.annotations);
    assert_eq!(run.conclusion.as_deref(), Some("success"));
    assert!(run.summary.as_deref().unwrap().contains("`overlays/prod`"), "{:?}", run.summary);
    h.finish().await;
}

#[tokio::test]
async fn removing_a_file_an_overlay_needs_is_a_finding_at_the_overlay() {
    let h = Harness::new().await;
    let prod = overlay("prod", Some("security.yaml"));
    h.pull(
        96,
        &[
            ("base/deployment.yaml", BASE_DEPLOY),
            ("base/kustomization.yaml", BASE_KUSTOMIZATION),
            ("overlays/prod/kustomization.yaml", &prod),
            ("overlays/prod/security.yaml", SECURITY_PATCH),
        ],
        &[("overlays/prod/security.yaml", None)],
    );
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 96)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    assert_eq!(
        at(run),
        vec![s("overlays/prod/kustomization.yaml", 5, "guardrail/kustomize")],
        "{:#?}",
        run.annotations
    );
    assert!(run.annotations[0]["message"].as_str().unwrap().contains("security.yaml"), "{:?}", run.annotations);
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    h.finish().await;
}

#[tokio::test]
async fn overlays_beyond_the_limit_are_not_rendered_and_say_so() {
    let h = Harness::new().await;
    let limit = guardrail::manifest::kustomize::app::Bounds::default().max_roots;
    let overlays: Vec<(String, String)> = (0..=limit)
        .map(|i| (format!("overlays/o{i:02}/kustomization.yaml"), overlay(&format!("ns{i}"), None)))
        .collect();
    let mut base: Vec<(&str, &str)> =
        vec![("base/deployment.yaml", BASE_DEPLOY), ("base/kustomization.yaml", BASE_KUSTOMIZATION)];
    base.extend(overlays.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    let privileged = BASE_DEPLOY.replace("privileged: false", "privileged: true");
    h.pull(97, &base, &[("base/deployment.yaml", Some(&privileged))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 97)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    let found = at(run);
    // Every overlay within the limit finds the base line; the one over it is a finding of its own.
    let at_base = found.iter().filter(|f| *f == &s("base/deployment.yaml", 16, "privileged-containers")).count();
    assert_eq!(at_base, limit, "{found:?}");
    let last = format!("overlays/o{limit:02}/kustomization.yaml");
    assert!(found.contains(&s(&last, 1, "guardrail/kustomize")), "{found:?}");
    assert_eq!(found.len(), limit + 1, "{found:?}");
    h.finish().await;
}

#[test]
fn the_graph_from_a_listing_renders_overlays_never_bases_or_components_and_reads_only_their_files() {
    use guardrail::manifest::kustomize::app::{join, kustomization_files, select, Bounds};
    use std::collections::BTreeMap;
    assert_eq!(join("overlays/prod", "../../base").as_deref(), Some("base"));
    assert_eq!(join("overlays", "../../outside"), None, "leaves the repository");
    assert_eq!(join("overlays", "/etc"), None, "absolute");
    let texts: BTreeMap<&str, String> = [
        ("base/deployment.yaml", BASE_DEPLOY.to_string()),
        ("base/kustomization.yaml", BASE_KUSTOMIZATION.to_string()),
        ("base/Kustomization", "resources: [elsewhere.yaml]\n".to_string()),
        ("components/c/kustomization.yaml", "kind: Component\npatches:\n  - path: p.yaml\n".to_string()),
        ("components/c/p.yaml", SECURITY_PATCH.to_string()),
        ("overlays/dev/kustomization.yaml", format!("{}components:\n  - ../../components/c\n", overlay("dev", None))),
        ("overlays/prod/kustomization.yaml", overlay("prod", Some("security.yaml"))),
        ("overlays/prod/security.yaml", SECURITY_PATCH.to_string()),
        ("apps/other.yaml", CLEAN.to_string()),
    ]
    .into_iter()
    .collect();
    let listing: BTreeMap<String, u64> = texts.iter().map(|(p, t)| (p.to_string(), t.len() as u64)).collect();
    let kfiles = kustomization_files(listing.keys().map(String::as_str));
    assert_eq!(kfiles["base"], "base/kustomization.yaml", "kustomize's order of preference");
    let kustomizations: BTreeMap<String, (String, String)> =
        kfiles.iter().map(|(d, f)| (d.clone(), (f.clone(), texts[f.as_str()].clone()))).collect();
    let opts = guardrail::manifest::LoadOptions::default();
    let pick = |changed: &[&str]| {
        let changed: Vec<String> = changed.iter().map(|c| c.to_string()).collect();
        select(&listing, &kustomizations, &changed, &|_| true, &opts, &Bounds::default())
    };
    let base = pick(&["base/deployment.yaml"]);
    assert_eq!(base.roots, vec!["overlays/dev", "overlays/prod"]);
    assert!(!base.fetch.contains("apps/other.yaml") && base.fetch.contains("components/c/p.yaml"), "{:?}", base.fetch);
    assert!(base.covered.contains("overlays/prod/security.yaml") && !base.covered.contains("apps/other.yaml"));
    assert_eq!(pick(&["components/c/p.yaml"]).roots, vec!["overlays/dev"], "the overlay that takes the component");
    assert_eq!(pick(&["overlays/prod/security.yaml"]).roots, vec!["overlays/prod"]);
    assert!(pick(&["apps/other.yaml", "README.md"]).roots.is_empty());
    let excluded = select(
        &listing,
        &kustomizations,
        &["base/deployment.yaml".to_string()],
        &|f| !f.starts_with("overlays/dev/"),
        &opts,
        &Bounds::default(),
    );
    assert_eq!(excluded.roots, vec!["overlays/prod"], "the configuration's exclude applies to kustomizations");
}
