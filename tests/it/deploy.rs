//! The deployment manifests under deploy/ as a user applies them: each overlay rendered by
//! `kubectl kustomize` (kubectl is installed on the development and CI machines; the test says so and
//! stops when it is not), checked by guardrail's own built-in pack, and holding what running the App
//! needs (a volume and `Recreate` on SQLite, replicas on PostgreSQL, probes, the grace period).

use std::process::Command;

use serde_json::Value;

use crate::check::guardrail_in;

fn render(overlay: &str) -> Option<String> {
    let out = match Command::new("kubectl").args(["kustomize", &format!("deploy/overlays/{overlay}")]).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipping: kubectl is not installed ({e})");
            return None;
        }
    };
    assert!(out.status.success(), "kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap())
}

fn objects(text: &str) -> Vec<Value> {
    let mut errors = Vec::new();
    let objects = guardrail::policy::policy_objects("rendered.yaml", text, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    objects
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind} rendered"))
}

#[test]
fn rendered_overlays_pass_guardrails_own_policies_and_hold_what_the_app_needs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for overlay in ["sqlite", "postgres"] {
        let Some(text) = render(overlay) else { return };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rendered.yaml"), &text).unwrap();
        let (code, stdout, stderr) = guardrail_in(dir.path(), &["check", "rendered.yaml", "-f", "json"]);
        assert_eq!(code, 0, "{overlay}: {stdout}{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["findings"], serde_json::json!([]), "{overlay}: not even a warning");
        assert!(report["summary"]["objects"].as_u64().unwrap() >= 7);

        let objects = objects(&text);
        for kind in
            ["Namespace", "ServiceAccount", "Deployment", "Service", "Ingress", "PodDisruptionBudget", "NetworkPolicy"]
        {
            find(&objects, kind);
        }
        let deployment = find(&objects, "Deployment");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["terminationGracePeriodSeconds"], 30, "the App's shutdown takes at most 25 s");
        let container = &pod["containers"][0];
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert!(
            container["resources"]["limits"]["memory"].is_string()
                && container["resources"]["requests"]["cpu"].is_string()
        );
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
        let env = container["env"].as_array().unwrap();
        let secret_keys: Vec<&str> =
            env.iter().filter_map(|e| e["valueFrom"]["secretKeyRef"]["key"].as_str()).collect();
        let database = env.iter().find(|e| e["name"] == "GUARDRAIL_DATABASE_URL").unwrap();
        match overlay {
            "sqlite" => {
                assert_eq!(deployment["spec"]["replicas"], 1);
                assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
                assert!(database["value"].as_str().unwrap().starts_with("sqlite:///var/lib/guardrail/"));
                let claim = find(&objects, "PersistentVolumeClaim")["metadata"]["name"].as_str().unwrap().to_string();
                assert!(pod["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v["persistentVolumeClaim"]["claimName"] == claim.as_str()));
                assert_eq!(secret_keys, ["app-id", "webhook-secret"]);
            }
            _ => {
                assert!(deployment["spec"]["replicas"].as_u64().unwrap() > 1);
                assert_eq!(database["valueFrom"]["secretKeyRef"]["key"], "database-url");
                let egress = find(&objects, "NetworkPolicy")["spec"]["egress"].to_string();
                assert!(egress.contains("5432"), "{egress}");
                assert!(objects.iter().all(|o| o["kind"] != "PersistentVolumeClaim"));
            }
        }
        let key = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "credentials").unwrap();
        assert_eq!(key["secret"]["items"][0]["key"], "private-key");
        // Only the webhook is published.
        let paths = find(&objects, "Ingress")["spec"]["rules"][0]["http"]["paths"].as_array().unwrap().clone();
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0]["path"], "/webhooks/github");
    }
    // The folder as it is in the repository (kustomization files and patches included) passes too.
    let (code, stdout, _) = guardrail_in(root, &["check", "deploy/", "-f", "json"]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap()["findings"], serde_json::json!([]));
}
