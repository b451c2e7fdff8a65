//! `serve` evaluates every pull request in a worker process (issue 9 §2): a policy of the policy
//! repository that crashes the engine on one pull request's objects ends that worker only. Its
//! check run says what happened; a normal pull request in flight at the same time is checked as
//! usual, and the service goes on taking jobs afterwards. A policy that grows its memory step by
//! step does not get as far as a crash: the evaluation's memory limit stops it, and the object
//! gets a finding naming the limit.

use super::*;

const POLICIES: &str = "acme/policies";

/// The bomb of `isolation.rs`, bound to ConfigMaps only: a pull request without one never meets it.
const BOMB_ON_CONFIGMAPS: &str = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sBomb\nmetadata:\n  name: bomb\nspec:\n  match:\n    kinds:\n      - apiGroups: [\"\"]\n        kinds: [ConfigMap]\n";

const CONFIGMAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  a: b\n";

/// The policy repository holds the bomb, bound to ConfigMaps.
fn bomb_on_configmaps(h: &Harness) {
    h.gh.add_repo(POLICIES, INSTALLATION);
    let root = h.gh.branch_head(POLICIES, "main");
    let policies = h.gh.commit(
        POLICIES,
        Some(&root),
        &[("bomb/template.yaml", Some(super::isolation::BOMB)), ("bomb/constraint.yaml", Some(BOMB_ON_CONFIGMAPS))],
    );
    h.gh.set_branch(POLICIES, "main", &policies);
}

/// A template that doubles a string forty times on the object it checks (2^40 bytes at the end),
/// and its constraint for ConfigMaps.
const DOUBLING: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sdoubling
spec:
  crd:
    spec:
      names:
        kind: K8sDoubling
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sdoubling
        double(s) = concat("", [s, s])
        violation[{"msg": m}] {
          s10 := double(double(double(double(double(double(double(double(double(double(input.review.object.metadata.name))))))))))
          s20 := double(double(double(double(double(double(double(double(double(double(s10))))))))))
          s30 := double(double(double(double(double(double(double(double(double(double(s20))))))))))
          s40 := double(double(double(double(double(double(double(double(double(double(s30))))))))))
          m := sprintf("%v", [count(s40)])
        }
"#;

const DOUBLING_CONSTRAINT: &str = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sDoubling\nmetadata:\n  name: doubling\nspec:\n  match:\n    kinds:\n      - apiGroups: [\"\"]\n        kinds: [ConfigMap]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_over_the_memory_limit_denies_its_object_and_the_rest_is_checked() {
    let h = Harness::with_args(&["--policy-repo", POLICIES, "--memory-limit", "1024"]).await;
    h.gh.add_repo(POLICIES, INSTALLATION);
    let root = h.gh.branch_head(POLICIES, "main");
    let policies = h.gh.commit(
        POLICIES,
        Some(&root),
        &[("doubling/template.yaml", Some(DOUBLING)), ("doubling/constraint.yaml", Some(DOUBLING_CONSTRAINT))],
    );
    h.gh.set_branch(POLICIES, "main", &policies);
    let (_, head) =
        h.pull(13, &[], &[("config/settings.yaml", Some(CONFIGMAP)), ("deploy/web.yaml", Some(PRIVILEGED))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 13)).await;
    h.drain().await;

    let run = h.gh.check_runs(REPO).into_iter().find(|r| r.head_sha == head).expect("the run");
    assert_eq!(run.status, "completed");
    assert_eq!(run.conclusion.as_deref(), Some("failure"), "{}", text_of(&run));
    assert!(!text_of(&run).contains("crashed"), "{}", text_of(&run));
    let on = |path: &str| -> Vec<String> {
        run.annotations
            .iter()
            .filter(|a| a["path"] == path)
            .map(|a| format!("{}: {}", a["title"].as_str().unwrap(), a["message"].as_str().unwrap()))
            .collect()
    };
    let settings = on("config/settings.yaml");
    assert!(
        settings.iter().any(|a| a.contains("went over a limit on this object")
            && a.contains("more than 128 MiB of memory, the limit of one evaluation")),
        "{settings:#?}"
    );
    let web = on("deploy/web.yaml");
    assert!(web.iter().any(|a| a.starts_with("privileged-containers (privileged-containers)")), "{web:#?}");
    h.finish().await;
}

/// The service lives on after a worker crashed: pull request `number` with a clean file passes.
async fn the_next_pull_request_passes(h: &Harness, number: u64) {
    let root = h.gh.branch_head(REPO, "main");
    let next = h.gh.commit(REPO, Some(&root), &[("deploy/clean.yaml", Some(CLEAN))]);
    h.gh.open_pull(REPO, number, &root, &next, None);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, number)).await;
    h.drain().await;
    let clean = h.gh.check_runs(REPO).into_iter().find(|r| r.head_sha == next).expect("the next run");
    assert_eq!(clean.conclusion.as_deref(), Some("success"), "{}", text_of(&clean));
    h.finish().await;
}

fn text_of(run: &crate::fake_github::CheckRun) -> String {
    format!("{}\n{}", run.summary.as_deref().unwrap_or_default(), run.text.as_deref().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_crash_on_one_pull_request_fails_that_check_alone() {
    let h = Harness::with_args(&["--policy-repo", POLICIES, "--workers", "2", "--memory-limit", "512"]).await;
    bomb_on_configmaps(&h);
    h.pull(8, &[], &[("config/settings.yaml", Some(CONFIGMAP))]);
    let root = h.gh.branch_head(REPO, "main");
    let head = h.gh.commit(REPO, Some(&root), &[("deploy/web.yaml", Some(PRIVILEGED))]);
    h.gh.open_pull(REPO, 9, &root, &head, None);
    // Both in flight at once: two workers of the service take one each, at the same time.
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 8)).await;
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 9)).await;
    let ran = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        tokio::join!(run_worker(&h.service, 0), run_worker(&h.service, 1))
    })
    .await
    .expect("the queue drains");
    assert_eq!(ran.0 + ran.1, 2, "{ran:?}");

    let runs = h.gh.check_runs(REPO);
    let crashed =
        runs.iter().find(|r| text_of(r).contains("policy engine crashed")).expect("a run says the engine crashed");
    assert_eq!(crashed.status, "completed");
    assert_eq!(crashed.conclusion.as_deref(), Some("failure"), "fails closed: {}", text_of(crashed));

    let normal = runs.iter().find(|r| r.head_sha == head).expect("the normal pull request's run");
    assert_eq!(normal.status, "completed");
    assert_eq!(normal.conclusion.as_deref(), Some("failure"));
    assert!(!text_of(normal).contains("crashed"), "{}", text_of(normal));
    let titles: Vec<&str> = normal.annotations.iter().map(|a| a["title"].as_str().unwrap()).collect();
    assert!(titles.contains(&"privileged-containers (privileged-containers)"), "{titles:?}");

    // The service lives on: the next pull request is checked (and passes).
    the_next_pull_request_passes(&h, 10).await;
}

/// Objects that only exist after kustomize renders an overlay are evaluated in the worker too: the
/// same bomb, met by a ConfigMap a base contributes to the overlay the pull request adds, ends that
/// check (failing closed) and not the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_crash_on_a_rendered_overlay_fails_that_check_alone() {
    let h = Harness::with_args(&["--policy-repo", POLICIES, "--memory-limit", "512"]).await;
    bomb_on_configmaps(&h);
    let (_, head) = h.pull(
        11,
        &[("base/settings.yaml", CONFIGMAP), ("base/kustomization.yaml", "resources:\n- settings.yaml\n")],
        &[("overlays/prod/kustomization.yaml", Some("resources:\n- ../../base\nnamePrefix: prod-\n"))],
    );
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 11)).await;
    h.drain().await;
    let run = h.gh.check_runs(REPO).into_iter().find(|r| r.head_sha == head).expect("the overlay's run");
    assert_eq!(run.status, "completed");
    assert_eq!(run.conclusion.as_deref(), Some("failure"), "{}", text_of(&run));
    assert!(text_of(&run).contains("policy engine crashed"), "{}", text_of(&run));

    the_next_pull_request_passes(&h, 12).await;
}
