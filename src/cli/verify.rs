//! `guardrail verify`: gator suites and Rego tests, one line per failure (every case with `-v`), then
//! `N passed, N failed`. Case names and errors come from the suites, so they are escaped for the terminal.

use std::path::PathBuf;
use std::process::ExitCode;

use super::VerifyArgs;
use crate::report::terminal::{escape, escape_line};

pub fn run(args: &VerifyArgs) -> ExitCode {
    let mut paths = args.paths.clone();
    paths.extend(args.policy.iter().cloned());
    paths.extend(args.rego.data_modules());
    if paths.is_empty() {
        paths.push(PathBuf::from("."));
    }
    let rego = match args.rego.options() {
        Ok(rego) => rego,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let options = crate::verify::Options {
        k8s_native_validation: args.engine.enable_k8s_native_validation,
        rego_namespaces: args.rego.rego_namespace.clone(),
        data: rego.data,
        builtin_errors: rego.builtin_errors,
    };
    // In a worker process: a policy that crashes the engine fails the run, with a message.
    let isolation = crate::isolate::Isolation { memory_bytes: args.memory_limit << 20, ..Default::default() };
    let summary = crate::isolate::verify(&isolation, crate::isolate::Request::Verify { paths, within: false, options });
    for r in &summary.results {
        match &r.error {
            Some(e) => println!("FAIL {}\n     {}", escape_line(&r.name), escape(e).replace('\n', "\n     ")),
            None if args.verbose => println!("ok   {}", escape_line(&r.name)),
            None => {}
        }
    }
    println!("{} passed, {} failed", summary.passed(), summary.failed());
    if summary.results.is_empty() && args.rego.rego_namespace.is_empty() {
        eprintln!("error: no suites or Rego tests found");
        return ExitCode::from(2);
    }
    if summary.failed() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
