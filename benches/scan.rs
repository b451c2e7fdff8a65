//! `cargo bench --bench scan [-- 1000 10000]`: loads N generated workloads (Deployments,
//! StatefulSets, DaemonSets, CronJobs, Pods; 1-3 containers; about a fifth with one violation)
//! and evaluates the built-in pack, plus gatekeeper-library's pod-security-policy templates and
//! `containerlimits` when GUARDRAIL_BENCH_LIBRARY points at a checkout of that repository.
//! Prints objects/s, evaluations/s, peak memory and the share of time spent locating.

use std::path::{Path, PathBuf};
use std::time::Instant;

use guardrail::policy::{LoadOptions, PolicySet};

use guardrail::scan::{scan_paths, ScanOptions};

const VIOLATIONS: [&str; 6] = ["privileged", "hostNetwork", "noLimits", "registry", "hostPath", "capability"];

fn container(i: usize, name: &str, violation: Option<&str>) -> String {
    let image = if violation == Some("registry") {
        "docker.io/library/nginx:1.27".to_string()
    } else {
        format!("registry.corp.example/team/app{}:1.{}", i % 7, i % 13)
    };
    let mut c = format!(
        "        - name: {name}\n          image: {image}\n          ports:\n            - containerPort: 8080\n"
    );
    match violation {
        Some("privileged") => c.push_str("          securityContext:\n            privileged: true\n"),
        Some("capability") => {
            c.push_str("          securityContext:\n            capabilities:\n              add: [\"SYS_ADMIN\"]\n")
        }
        _ => c.push_str(
            "          securityContext:\n            allowPrivilegeEscalation: false\n            runAsNonRoot: true\n",
        ),
    }
    if violation != Some("noLimits") {
        c.push_str("          resources:\n            limits: {cpu: 500m, memory: 256Mi}\n            requests: {cpu: 100m, memory: 128Mi}\n");
    }
    c
}

fn pod_spec(i: usize, indent: &str) -> String {
    let violation = i.is_multiple_of(5).then(|| VIOLATIONS[(i / 5) % VIOLATIONS.len()]);
    let containers = 1 + i % 3;
    let mut spec = String::new();
    if violation == Some("hostNetwork") {
        spec.push_str("      hostNetwork: true\n");
    }
    spec.push_str("      containers:\n");
    for c in 0..containers {
        let v = if c == containers - 1 { violation.filter(|v| *v != "hostNetwork" && *v != "hostPath") } else { None };
        spec.push_str(&container(i, &format!("c{c}"), v));
    }
    if violation == Some("hostPath") {
        spec.push_str("      volumes:\n        - name: host\n          hostPath:\n            path: /etc\n");
    }
    spec.lines().map(|l| format!("{indent}{l}\n")).collect()
}

fn workload(i: usize) -> String {
    let ns = format!("team-{}", i % 20);
    let meta = format!("metadata:\n  name: app-{i}\n  namespace: {ns}\n  labels:\n    app: app-{i}\n");
    match i % 5 {
        0 => format!("apiVersion: apps/v1\nkind: Deployment\n{meta}spec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: app-{i}\n  template:\n    metadata:\n      labels:\n        app: app-{i}\n    spec:\n{}", pod_spec(i, "")),
        1 => format!("apiVersion: apps/v1\nkind: StatefulSet\n{meta}spec:\n  serviceName: app-{i}\n  selector:\n    matchLabels:\n      app: app-{i}\n  template:\n    metadata:\n      labels:\n        app: app-{i}\n    spec:\n{}", pod_spec(i, "")),
        2 => format!("apiVersion: apps/v1\nkind: DaemonSet\n{meta}spec:\n  selector:\n    matchLabels:\n      app: app-{i}\n  template:\n    metadata:\n      labels:\n        app: app-{i}\n    spec:\n{}", pod_spec(i, "")),
        3 => format!("apiVersion: batch/v1\nkind: CronJob\n{meta}spec:\n  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n{}", pod_spec(i, "    ").replace("\n      ", "\n          ").replacen("      containers", "          containers", 1)),
        _ => format!("apiVersion: v1\nkind: Pod\n{meta}spec:\n{}", pod_spec(i, "").lines().map(|l| format!("{}\n", &l[4..])).collect::<String>()),
    }
}

fn library_policies(root: &Path) -> Vec<PathBuf> {
    let dir = std::env::temp_dir().join(format!("guardrail-bench-lib-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mut wanted: Vec<PathBuf> = std::fs::read_dir(root.join("library/pod-security-policy"))
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.join("template.yaml").exists()).collect())
        .unwrap_or_default();
    wanted.push(root.join("library/general/containerlimits"));
    wanted.sort();
    for (i, p) in wanted.iter().enumerate() {
        let name = p.file_name().unwrap().to_string_lossy();
        let _ = std::fs::copy(p.join("template.yaml"), dir.join(format!("{i:02}-{name}-template.yaml")));
        let samples = p.join("samples");
        if let Some(c) = std::fs::read_dir(&samples).ok().and_then(|rd| {
            let mut ds: Vec<_> =
                rd.filter_map(Result::ok).map(|e| e.path().join("constraint.yaml")).filter(|c| c.exists()).collect();
            ds.sort();
            ds.into_iter().next()
        }) {
            let _ = std::fs::copy(c, dir.join(format!("{i:02}-{name}-constraint.yaml")));
        }
    }
    println!("gatekeeper-library templates: {}", wanted.len());
    vec![dir]
}

/// Peak resident memory since the last reset, in MiB (Linux).
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `GUARDRAIL_BENCH_PER_POLICY=1`: evaluation time per policy on the first 300 workloads (implied
/// objects included), most expensive first: where a speed-up would pay.
fn per_policy(policies: &PolicySet) {
    use guardrail::manifest::{self, Loaded};
    use guardrail::policy::expansion;
    let mut loaded = Loaded::default();
    for i in 0..300 {
        manifest::load_text(&format!("w{i}.yaml"), &workload(i), &Default::default(), &mut loaded);
    }
    let mut resources = Vec::new();
    for r in &loaded.resources {
        resources.extend(expansion::expand(&policies.expansions, r, 0));
        resources.push(r.clone());
    }
    let objects: Vec<&serde_json::Value> = resources.iter().map(|r| &r.object).collect();
    let ctx = policies.context(&objects).expect("context");
    let mut cost: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for r in &resources {
        for (check, _) in policies.checks_for(r, &ctx) {
            let started = Instant::now();
            let _ = policies.run(check, &r.object, &ctx);
            let entry = cost.entry(policies.policy_name(check)).or_default();
            entry.0 += started.elapsed().as_secs_f64();
            entry.1 += 1;
        }
    }
    let mut rows: Vec<_> = cost.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for (name, (secs, n)) in rows {
        println!("{name:40} {n:5} evaluations {:8.1} µs each {:7.1} ms total", 1e6 * secs / n as f64, 1e3 * secs);
    }
}

fn main() {
    guardrail::no_library_backtraces();
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1000, 10_000] } else { sizes };
    let policy_paths =
        std::env::var_os("GUARDRAIL_BENCH_LIBRARY").map(|p| library_policies(Path::new(&p))).unwrap_or_default();
    let policies = PolicySet::load(&policy_paths, &LoadOptions::default()).expect("policies load");
    println!("templates: {}, constraints: {}", policies.templates.len(), policies.constraints.len());
    if std::env::var_os("GUARDRAIL_BENCH_PER_POLICY").is_some() {
        per_policy(&policies);
    }
    for n in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..n {
            std::fs::write(dir.path().join(format!("w{i:05}.yaml")), workload(i)).expect("write");
        }
        // GUARDRAIL_BENCH_KEEP=dir keeps a copy of the generated workloads for profiling.
        if let Some(keep) = std::env::var_os("GUARDRAIL_BENCH_KEEP") {
            let keep = Path::new(&keep).join(n.to_string());
            let _ = std::fs::create_dir_all(&keep);
            for i in 0..n {
                let _ = std::fs::write(keep.join(format!("w{i:05}.yaml")), workload(i));
            }
            // GUARDRAIL_BENCH_GENERATE_ONLY=1: only write them (benches/cli-memory.sh measures the CLI).
            if std::env::var_os("GUARDRAIL_BENCH_GENERATE_ONLY").is_some() {
                println!("wrote {n} workloads to {}", keep.display());
                continue;
            }
        }
        reset_peak();
        let base = peak_mib();
        let engine_before = guardrail::policy::engine::stats();
        let started = Instant::now();
        let scan = scan_paths(&[dir.path().to_path_buf()], &policies, &ScanOptions::default()).expect("scan");
        let wall = started.elapsed().as_secs_f64();
        let s = &scan.stats;
        let errors = scan
            .outcome
            .findings
            .iter()
            .filter(|f| f.message.contains("failed on this object") || f.message.contains("time limit"))
            .count();
        println!(
            "n={n}: wall {wall:.2}s | {:.0} objects/s | {} evaluations ({:.0}/s) + {} locate evaluations | {} violations (declared {}, searched {}, resource {}) | locating {:.0}% of wall | peak RSS {:.0} MiB (before scan {:.0} MiB) | policy errors {errors}",
            n as f64 / wall,
            s.evaluations,
            s.evaluations as f64 / wall,
            s.locate_evaluations,
            s.violations,
            s.located_declared,
            s.located_searched,
            s.located_resource,
            100.0 * s.locate_time.as_secs_f64() / wall,
            peak_mib(),
            base,
        );
        println!(
            "  load {:.2}s, evaluate {:.2}s, locate {:.2}s (per worker)",
            s.load_time.as_secs_f64(),
            s.eval_time.as_secs_f64(),
            s.locate_time.as_secs_f64()
        );
        let e = guardrail::policy::engine::stats();
        println!(
            "  rego: {} on the bytecode VM, {} by the interpreter ({} of them after a VM error), {} crosscheck mismatches",
            e.vm - engine_before.vm,
            e.interpreter - engine_before.interpreter,
            e.fallbacks - engine_before.fallbacks,
            e.mismatches - engine_before.mismatches
        );
    }
}
