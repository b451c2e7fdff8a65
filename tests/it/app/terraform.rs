//! Terraform in pull requests: the App fetches what the Terraform needs at the head commit, and a
//! change to a YAML file that Terraform reads re-checks that Terraform.

use super::*;

const MAIN_TF: &str = r#"resource "kubernetes_manifest" "web" {
  manifest = yamldecode(file("${path.module}/web.yaml"))
}

resource "kubernetes_pod_v1" "debug" {
  metadata {
    name      = "debug"
    namespace = "shop"
  }
  spec {
    host_pid = var.host_pid
    container {
      name  = "debug"
      image = "gcr.io/corp/debug:1"
      resources {
        limits   = { cpu = "100m", memory = "64Mi" }
        requests = { cpu = "100m", memory = "64Mi" }
      }
    }
  }
}
"#;

const VARIABLES_TF: &str = "variable \"host_pid\" {\n  default = true\n}\n";

fn at(run: &crate::fake_github::CheckRun) -> Vec<(String, u64, String)> {
    run.annotations
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap().to_string(),
                a["start_line"].as_u64().unwrap(),
                a["title"].as_str().unwrap().split(' ').next().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn terraform_in_a_pull_request_is_checked_with_its_module_and_the_yaml_it_reads() {
    let h = Harness::new().await;
    // The base has the YAML the Terraform reads; the pull request adds the Terraform.
    let (_, head) = h.pull(
        70,
        &[("infra/web.yaml", CLEAN), ("infra/variables.tf", VARIABLES_TF)],
        &[("infra/main.tf", Some(MAIN_TF))],
    );
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 70)).await;
    h.drain().await;
    let run = &h.gh.check_runs(REPO)[0];
    // host_pid comes from the default in variables.tf (not changed): reported where main.tf uses it.
    assert_eq!(
        at(run),
        vec![("infra/main.tf".to_string(), 11, "host-namespaces".to_string())],
        "{:?}",
        run.annotations
    );
    let comments = h.gh.review_comments(REPO, 70);
    assert_eq!(
        comments.iter().map(|c| (c.path.as_str(), c.line)).collect::<Vec<_>>(),
        vec![("infra/main.tf", Some(11))]
    );

    // A later pull request changes only the YAML that main.tf reads: the Terraform is checked again
    // and the finding lands on the YAML line, which is in the diff.
    let base = h.gh.commit(REPO, Some(&head), &[]);
    h.gh.set_branch(REPO, "main", &base);
    let head2 = h.gh.commit(REPO, Some(&base), &[("infra/web.yaml", Some(PRIVILEGED))]);
    h.gh.open_pull(REPO, 71, &base, &head2, None);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 71)).await;
    h.drain().await;
    let run = h.gh.check_runs(REPO).into_iter().find(|r| r.head_sha == head2).unwrap();
    let found = at(&run);
    assert!(found.contains(&("infra/web.yaml".to_string(), 22, "privileged-containers".to_string())), "{found:?}");
    assert!(found.contains(&("infra/main.tf".to_string(), 11, "host-namespaces".to_string())), "{found:?}");
    let lines: Vec<(String, Option<u64>)> =
        h.gh.review_comments(REPO, 71).into_iter().map(|c| (c.path, c.line)).collect();
    assert!(lines.contains(&("infra/web.yaml".to_string(), Some(22))), "{lines:?}");
    assert!(!lines.iter().any(|(p, _)| p == "infra/main.tf"), "main.tf is not in this diff: {lines:?}");
    h.finish().await;
}

#[tokio::test]
async fn a_pull_request_without_terraform_does_not_read_the_tree() {
    let h = Harness::new().await;
    h.pull(72, &[], &[("docs/readme.md", Some("hello\n"))]);
    h.deliver("pull_request", &h.gh.pull_request("opened", REPO, 72)).await;
    h.drain().await;
    assert!(!h.gh.calls().iter().any(|c| c.kind == "git/get-tree"), "no tree read for a docs change");
    assert_eq!(h.gh.check_runs(REPO)[0].conclusion.as_deref(), Some("success"));
    h.finish().await;
}
