use std::time::Instant;
fn main() {
    let root = std::env::args().nth(1).unwrap();
    let pod: serde_json::Value = serde_json::json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"n"},
      "spec":{"containers":[{"name":"a","image":"nginx","securityContext":{"privileged":true}},{"name":"b","image":"x","resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]}});
    for dir in std::fs::read_dir(&root).unwrap() {
        let p = dir.unwrap().path();
        let t = p.join("template.yaml");
        if !t.exists() { continue; }
        let text = std::fs::read_to_string(&t).unwrap();
        let mut errs = vec![];
        let objs = guardrail::policy::policy_objects("t", &text, &mut errs);
        let obj = &objs[0];
        let rego = obj.pointer("/spec/targets/0/rego").and_then(|v| v.as_str()).unwrap_or("").to_string();
        if rego.is_empty() { continue; }
        let libs: Vec<String> = obj.pointer("/spec/targets/0/libs").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default();
        let pkg = guardrail::policy::template::package_of(&rego).unwrap();
        let rule = format!("data.{pkg}.violation");
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(true);
        engine.set_strict_builtin_errors(false);
        engine.add_policy("t.rego".into(), guardrail::policy::compat::rewrite_v0(&rego)).unwrap();
        for (i, l) in libs.iter().enumerate() { engine.add_policy(format!("l{i}.rego"), guardrail::policy::compat::rewrite_v0(l)).unwrap(); }
        if std::env::var_os("INV").is_some() {
            let objs: Vec<serde_json::Value> = (0..10000).map(|i| { let mut o = pod.clone(); o["metadata"]["name"] = serde_json::json!(format!("p{i}")); o }).collect();
            let refs: Vec<&serde_json::Value> = objs.iter().collect();
            engine.add_data(regorus::Value::from(serde_json::json!({"inventory": guardrail::policy::inventory(&refs)}))).unwrap();
        }
        if std::env::var_os("TIMER").is_some() {
            engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig { limit: std::time::Duration::from_secs(5), check_interval: std::num::NonZeroU32::new(64).unwrap() });
        }
        let params = std::fs::read_to_string(p.join("constraint.yaml")).ok().and_then(|t| { let mut e = vec![]; guardrail::policy::policy_objects("c", &t, &mut e).into_iter().next() }).and_then(|c| c.pointer("/spec/parameters").cloned()).unwrap_or(serde_json::json!({}));
        let input = regorus::Value::from(serde_json::json!({"review": guardrail::policy::review_of(&pod), "parameters": params}));
        // interpreter
        engine.set_input(input.clone());
        let r1 = engine.eval_rule(rule.clone());
        let s = Instant::now();
        for _ in 0..2000 { engine.set_input(input.clone()); let _ = engine.eval_rule(rule.clone()); }
        let interp = s.elapsed().as_micros() as f64 / 2000.0;
        // rvm
        let vm_res = (|| -> anyhow::Result<(f64, regorus::Value)> {
            let cp = engine.compile_with_entrypoint(&rule.as_str().into())?;
            let prog = regorus::languages::rego::compiler::Compiler::compile_from_policy(&cp, &[rule.as_str()]).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut vm = regorus::rvm::RegoVM::new();
            vm.load_program(prog);
            vm.set_input(input.clone());
            let out = vm.execute().map_err(|e| anyhow::anyhow!("{e}"))?;
            let s = Instant::now();
            for _ in 0..2000 { vm.set_input(input.clone()); let _ = vm.execute(); }
            Ok((s.elapsed().as_micros() as f64 / 2000.0, out))
        })();
        match vm_res {
            Ok((t, out)) => println!("{:30} interp {:7.1}us  rvm {:7.1}us same={}", p.file_name().unwrap().to_string_lossy(), interp, t, r1.as_ref().map(|v| v == &out).unwrap_or(false)),
            Err(e) => println!("{:30} interp {:7.1}us  rvm ERR {}", p.file_name().unwrap().to_string_lossy(), interp, e.to_string().lines().next().unwrap_or("")),
        }
    }
}
