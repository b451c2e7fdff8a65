//! The regorus wrapper: the only file that builds `regorus::Engine`s. A program is parsed and
//! prepared once, then evaluated on pooled interpreters, with a wall-clock limit per evaluation.
//!
//! regorus's bytecode VM is 3-5x faster on these templates, but measured on gatekeeper-library it
//! disagrees with OPA where the interpreter (with `compat`'s rewrites) does not (users, hpa,
//! and undefined `data.inventory`), so guardrail does not use it yet.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value as Json;

use super::compat;
use super::PolicyError;

/// Which Rego dialect a source is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    V0,
    V1,
}

/// Per-evaluation time limit: generous for real policies, fatal for runaway ones.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(5);

/// A set of Rego modules, ready to evaluate rules on inputs.
pub struct Program {
    engine: regorus::Engine,
    /// Prepared interpreters to reuse: an evaluation takes one (or clones `engine`) and puts it
    /// back, so each worker thread ends up with its own instead of a clone per evaluation.
    pool: Mutex<Vec<regorus::Engine>>,
    /// The name used in error findings ("K8sPSPPrivilegedContainer", "policy/deny.rego").
    pub label: String,
}

impl Clone for Program {
    fn clone(&self) -> Self {
        Program { engine: self.engine.clone(), pool: Default::default(), label: self.label.clone() }
    }
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("label", &self.label).finish()
    }
}

/// A data document converted once and shared (cheaply) by every program that adds it.
#[derive(Clone)]
pub struct Data(regorus::Value);

impl Data {
    pub fn new(json: &Json) -> Self {
        Data(regorus::Value::from(json.clone()))
    }
}

/// An evaluation input converted once, for evaluating several rules on the same object.
#[derive(Clone)]
pub struct Input(regorus::Value);

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Input(..)")
    }
}

impl Input {
    pub fn new(json: &Json) -> Self {
        Input(regorus::Value::from(json.clone()))
    }

    /// `{"review": review, "parameters": parameters}` without converting either again.
    pub fn gatekeeper(review: &Input, parameters: &Input) -> Self {
        let mut map = std::collections::BTreeMap::new();
        map.insert(regorus::Value::from("review"), review.0.clone());
        map.insert(regorus::Value::from("parameters"), parameters.0.clone());
        Input(regorus::Value::from(map))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    Timeout,
    Failed(String),
}

impl Program {
    /// Parses `sources` (name, text). v0 sources get the regorus compatibility rewrites first.
    pub fn new(
        label: &str,
        sources: &[(String, String)],
        dialect: Dialect,
        time_limit: Duration,
    ) -> Result<Self, PolicyError> {
        let timer = ExecutionTimerConfig { limit: time_limit, check_interval: NonZeroU32::new(64).expect("non-zero") };
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(dialect == Dialect::V0);
        engine.set_strict_builtin_errors(false);
        engine.set_execution_timer_config(timer);
        compat::install_extensions(&mut engine)
            .map_err(|e| PolicyError::Rego { policy: label.into(), message: e.to_string() })?;
        for (name, text) in sources {
            let text = if dialect == Dialect::V0 { compat::rewrite_v0(text) } else { compat::rewrite_v1(text) };
            engine
                .add_policy(name.clone(), text)
                .map_err(|e| PolicyError::Rego { policy: label.into(), message: first_lines(&e.to_string()) })?;
        }
        let mut program = Program { engine, pool: Default::default(), label: label.into() };
        program.prepare();
        Ok(program)
    }

    /// regorus analyses modules on the first evaluation after a change; doing it once here means
    /// every clone starts prepared (measured: ~5 ms per evaluation otherwise).
    fn prepare(&mut self) {
        let _ = self.engine.eval_query("true".to_string(), false);
    }

    /// Adds a document under `data` (e.g. `{"inventory": …}`) to every later evaluation.
    pub fn add_data(&mut self, data: &Data) -> Result<(), PolicyError> {
        self.pool.lock().expect("pool").clear();
        self.engine
            .add_data(data.0.clone())
            .map_err(|e| PolicyError::Rego { policy: self.label.clone(), message: e.to_string() })?;
        self.prepare();
        Ok(())
    }

    /// Evaluates `rule` (a full path like `data.k8spsp.violation`) with `input`. Undefined is `Null`.
    pub fn eval(&self, rule: &str, input: &Json) -> Result<Json, EvalError> {
        self.eval_input(rule, &Input::new(input))
    }

    pub fn eval_input(&self, rule: &str, input: &Input) -> Result<Json, EvalError> {
        let mut engine = self.pool.lock().expect("pool").pop().unwrap_or_else(|| self.engine.clone());
        engine.set_input(input.0.clone());
        let result = engine.eval_rule(rule.to_string());
        self.pool.lock().expect("pool").push(engine);
        match result {
            Ok(value) => Ok(to_json(&value)),
            Err(e) => Err(classify(&e.to_string())),
        }
    }

    /// Evaluates a query (for `test_*` rules): true when it produced `true`.
    pub fn eval_bool(&self, query: &str, input: Option<&Json>) -> Result<bool, EvalError> {
        let mut engine = self.engine.clone();
        if let Some(input) = input {
            engine.set_input(regorus::Value::from(input.clone()));
        }
        let rule_value =
            engine.eval_rule(query.to_string()).map_err(|e| EvalError::Failed(first_lines(&e.to_string())))?;
        Ok(rule_value == regorus::Value::Bool(true))
    }
}

fn classify(message: &str) -> EvalError {
    let lower = message.to_lowercase();
    if lower.contains("time limit")
        || lower.contains("execution exceeded")
        || lower.contains("deadline")
        || lower.contains("timed out")
    {
        EvalError::Timeout
    } else {
        EvalError::Failed(first_lines(message))
    }
}

fn first_lines(s: &str) -> String {
    s.lines().take(6).collect::<Vec<_>>().join("\n")
}

fn to_json(value: &regorus::Value) -> Json {
    match value {
        regorus::Value::Undefined => Json::Null,
        other => other.to_json_str().ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Json::Null),
    }
}
