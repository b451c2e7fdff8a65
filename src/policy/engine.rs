//! The regorus wrapper: the only file that builds `regorus::Engine`s. A program is parsed and
//! prepared once, then evaluated with a wall-clock limit per evaluation.
//!
//! Two evaluators, one answer. Each rule is compiled once for regorus's bytecode VM (2-3x faster
//! than its interpreter on these policies), from a copy of the sources that
//! `compat::prepare_for_vm` has rid of the VM's own differences; sources it cannot make safe, and
//! rules the VM cannot compile, stay on the tree-walking interpreter, which has `compat`'s OPA
//! behaviour. The first `SAMPLED` evaluations of each rule run on both, and a difference retires
//! the VM for that rule; an error the VM raises (other than the time or memory limit) sends that evaluation
//! to the interpreter. `GUARDRAIL_REGO=interpreter` turns the VM off; `GUARDRAIL_REGO=crosscheck`
//! runs both on every evaluation and prints each difference on stderr (the interpreter answers):
//! how the equivalence is tested on gatekeeper-library, the built-in suites and benchmark corpora.

use std::cell::Cell;
use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use regorus::rvm::vm::VmError;
use regorus::rvm::RegoVM;
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::MemoryBudgetConfig;
use serde_json::Value as Json;

use super::analysis::Analysis;
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
    /// The same modules after `compat::prepare_for_vm`, for compiling bytecode; `None` when a
    /// source must stay on the interpreter.
    vm_engine: Option<regorus::Engine>,
    /// Evaluations per rule that also ran on the interpreter (the first `SAMPLED` of each).
    samples: Mutex<HashMap<String, usize>>,
    /// Bytecode per rule, compiled on first use; `None` when the VM cannot compile the rule.
    compiled: Mutex<HashMap<String, Option<Arc<regorus::rvm::program::Program>>>>,
    /// VMs with a rule's bytecode loaded, to reuse like `pool`.
    vms: Mutex<HashMap<String, Vec<RegoVM>>>,
    /// The data document the VMs see (the interpreter holds its own copy).
    data: regorus::Value,
    timer: ExecutionTimerConfig,
    /// The call graph: which rules reach one that can conflict (those stay on the interpreter).
    analysis: Arc<Analysis>,
    /// The name used in error findings ("K8sPSPPrivilegedContainer", "policy/deny.rego").
    pub label: String,
}

impl Clone for Program {
    fn clone(&self) -> Self {
        Program {
            engine: self.engine.clone(),
            vm_engine: self.vm_engine.clone(),
            samples: Mutex::new(self.samples.lock().expect("samples").clone()),
            pool: Default::default(),
            compiled: Mutex::new(self.compiled.lock().expect("compiled").clone()),
            vms: Default::default(),
            data: self.data.clone(),
            timer: self.timer,
            analysis: self.analysis.clone(),
            label: self.label.clone(),
        }
    }
}

/// Which evaluator runs (`GUARDRAIL_REGO`: `vm` (default), `interpreter`, `crosscheck`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Vm,
    Interpreter,
    Crosscheck,
}

fn mode() -> Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("GUARDRAIL_REGO").as_deref() {
        Ok("interpreter") => Mode::Interpreter,
        Ok("crosscheck") => Mode::Crosscheck,
        _ => Mode::Vm,
    })
}

/// How evaluations went, process-wide: for benchmarks and the crosscheck tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Answered by the VM.
    pub vm: usize,
    /// Sent to the interpreter after a VM error.
    pub fallbacks: usize,
    /// Evaluated by the interpreter only (VM off, or the rule does not compile).
    pub interpreter: usize,
    /// Evaluations (sampled, or all in crosscheck mode) where the VM's answer differed from the
    /// interpreter's.
    pub mismatches: usize,
}

static VM_EVALS: AtomicUsize = AtomicUsize::new(0);
static FALLBACKS: AtomicUsize = AtomicUsize::new(0);
static INTERPRETED: AtomicUsize = AtomicUsize::new(0);
static MISMATCHES: AtomicUsize = AtomicUsize::new(0);

pub fn stats() -> EngineStats {
    EngineStats {
        vm: VM_EVALS.load(Ordering::Relaxed),
        fallbacks: FALLBACKS.load(Ordering::Relaxed),
        interpreter: INTERPRETED.load(Ordering::Relaxed),
        mismatches: MISMATCHES.load(Ordering::Relaxed),
    }
}

/// The first evaluations of each rule that the interpreter checks (see `eval_input`).
const SAMPLED: usize = 8;

/// The engine bytecode is compiled from, or `None` (with the reason logged) when a source needs
/// the interpreter.
fn vm_engine(label: &str, sources: &[(String, String)], dialect: Dialect) -> Option<regorus::Engine> {
    if mode() == Mode::Interpreter {
        return None;
    }
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(dialect == Dialect::V0);
    engine.set_strict_builtin_errors(false);
    for (name, text) in sources {
        let text = if dialect == Dialect::V0 { compat::rewrite_v0(text) } else { compat::rewrite_v1(text) };
        let prepared = compat::prepare_for_vm(&text)
            .and_then(|t| engine.add_policy(name.clone(), t).map(|_| ()).map_err(|e| first_lines(&e.to_string())));
        if let Err(why) = prepared {
            tracing::debug!(policy = %label, file = %name, why = %why, "evaluated by the interpreter");
            return None;
        }
    }
    Some(engine)
}

/// An instruction ceiling far above any real policy: runaway evaluations meet the time limit.
const MAX_VM_INSTRUCTIONS: usize = 1 << 40;

/// What one VM evaluation may allocate and keep (`compat::MAX_EVAL_BYTES`), checked by the VM
/// before each instruction against the bytes its thread holds.
const EVAL_BYTES: NonZeroU64 = match NonZeroU64::new(compat::MAX_EVAL_BYTES) {
    Some(n) => n,
    None => panic!("the evaluation memory limit is not zero"),
};

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
        Data(value_of(json))
    }
}

fn edit(value: &mut regorus::Value, tokens: &[String], with: Option<regorus::Value>) {
    let Some((token, rest)) = tokens.split_first() else { return };
    match value {
        regorus::Value::Object(map) => {
            let key = regorus::Value::from(token.as_str());
            if !rest.is_empty() {
                if let Some(child) = value.as_object_mut().ok().and_then(|m| m.get_mut(&key)) {
                    edit(child, rest, with);
                }
                return;
            }
            let mut rebuilt: std::collections::BTreeMap<regorus::Value, regorus::Value> =
                map.iter().filter(|(k, _)| **k != key).map(|(k, v)| (k.clone(), v.clone())).collect();
            if let Some(w) = with {
                rebuilt.insert(key, w);
            }
            *value = regorus::Value::from(rebuilt);
        }
        regorus::Value::Array(items) => {
            let Some(i) = token.parse::<usize>().ok().filter(|i| *i < items.len()) else { return };
            if !rest.is_empty() {
                if let Some(child) = value.as_array_mut().ok().and_then(|a| a.get_mut(i)) {
                    edit(child, rest, with);
                }
                return;
            }
            let mut rebuilt = items.to_vec();
            match with {
                Some(w) => rebuilt[i] = w,
                None => {
                    rebuilt.remove(i);
                }
            }
            *value = regorus::Value::from(rebuilt);
        }
        _ => {}
    }
}

/// A JSON value as regorus's, converted from the reference (the same conversion as
/// `regorus::Value::from(json.clone())`, without the clone).
fn value_of(json: &Json) -> regorus::Value {
    use serde::Deserialize;
    regorus::Value::deserialize(json).unwrap_or(regorus::Value::Undefined)
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
        Input(value_of(json))
    }

    /// `fields` (a small object) with `object` added under `"object"`, without converting `object` again.
    pub fn with_object(fields: &Input, object: &Input) -> Self {
        Input(with_entries(&fields.0, [(regorus::Value::from("object"), object.0.clone())]))
    }

    /// A copy with the value at `tokens` (an RFC 6901 pointer, split) removed, or replaced by
    /// `with`. Only the containers on the way are copied (shallowly); the rest is shared, which
    /// makes the many variants locating tries cheap. A path that does not exist changes nothing.
    pub fn edited(&self, tokens: &[String], with: Option<&Json>) -> Input {
        let mut value = self.0.clone();
        edit(&mut value, tokens, with.map(value_of));
        Input(value)
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
    /// A resource limit (a builtin's output size, memory): the message names it.
    Limit(String),
    Failed(String),
}

thread_local! {
    /// When the budget of the current (policy, object) evaluation started (see `Budget`).
    static BUDGET_START: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// One time budget for everything done with one policy on one object on this thread: the sampled
/// evaluation on both evaluators and every evaluation while locating share the policy's limit,
/// so a limit of 5 s means 5 s. Evaluations outside a budget get the whole limit each.
pub struct Budget {
    previous: Option<Instant>,
}

impl Budget {
    pub fn start() -> Budget {
        Budget { previous: BUDGET_START.with(|b| b.replace(Some(Instant::now()))) }
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        BUDGET_START.with(|b| b.set(self.previous));
    }
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
        compat::install_limits(&mut engine)
            .map_err(|e| PolicyError::Rego { policy: label.into(), message: e.to_string() })?;
        for (name, text) in sources {
            compat::check_source(name, text).map_err(|message| PolicyError::Rego { policy: label.into(), message })?;
            let text = if dialect == Dialect::V0 { compat::rewrite_v0(text) } else { compat::rewrite_v1(text) };
            engine
                .add_policy(name.clone(), text)
                .map_err(|e| PolicyError::Rego { policy: label.into(), message: first_lines(&e.to_string()) })?;
        }
        let analysis = Analysis::of(engine.get_modules());
        if let Some(cycle) = analysis.cycle() {
            return Err(PolicyError::Rego {
                policy: label.into(),
                message: format!(
                    "recursion: {} (a rule or function that calls itself, directly or through others, is refused, as OPA refuses it)",
                    cycle.join(" -> ")
                ),
            });
        }
        let vm_engine = vm_engine(label, sources, dialect);
        let mut program = Program {
            engine,
            vm_engine,
            samples: Default::default(),
            pool: Default::default(),
            compiled: Default::default(),
            vms: Default::default(),
            data: regorus::Value::new_object(),
            timer,
            analysis: Arc::new(analysis),
            label: label.into(),
        };
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
        self.vms.lock().expect("vms").clear();
        self.compiled.lock().expect("compiled").clear();
        self.engine
            .add_data(data.0.clone())
            .map_err(|e| PolicyError::Rego { policy: self.label.clone(), message: e.to_string() })?;
        self.data = merge(&self.data, &data.0);
        self.prepare();
        Ok(())
    }

    /// conftest's builtins, and the OPA builtins regorus lacks (undefined, or errors with
    /// `errors`: conftest's `--show-builtin-errors`, under which every failing builtin is an error
    /// and evaluation stays on the interpreter, which reports them). For conftest modules only.
    pub fn conftest_builtins(&mut self, errors: bool) -> Result<(), PolicyError> {
        compat::install_conftest_builtins(&mut self.engine, errors)
            .map_err(|e| PolicyError::Rego { policy: self.label.clone(), message: e.to_string() })?;
        if errors {
            self.engine.set_strict_builtin_errors(true);
            self.vm_engine = None;
        }
        self.pool.lock().expect("pool").clear();
        self.vms.lock().expect("vms").clear();
        self.compiled.lock().expect("compiled").clear();
        self.prepare();
        Ok(())
    }

    /// The rule's bytecode, compiled on first use (`None`: the VM cannot run it).
    fn bytecode(&self, rule: &str) -> Option<Arc<regorus::rvm::program::Program>> {
        let mut compiled = self.compiled.lock().expect("compiled");
        if let Some(p) = compiled.get(rule) {
            return p.clone();
        }
        if let Some((conflicting, why)) = self.analysis.conflict_reachable(rule) {
            // The VM answers "undefined" where OPA raises the conflict error.
            tracing::debug!(policy = %self.label, rule, conflicting, why, "rule can conflict; using the interpreter");
            compiled.insert(rule.to_string(), None);
            return None;
        }
        let mut engine = self.vm_engine.clone()?;
        let program = engine
            .compile_with_entrypoint(&rule.into())
            .and_then(|policy| {
                regorus::languages::rego::compiler::Compiler::compile_from_policy(&policy, &[rule])
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })
            .inspect_err(|e| {
                tracing::debug!(policy = %self.label, rule, error = %first_lines(&e.to_string()),
                    "the bytecode VM cannot compile this rule; using the interpreter");
            })
            .ok();
        compiled.insert(rule.to_string(), program.clone());
        program
    }

    /// Whether `rule` is past its first `SAMPLED` evaluations (which the interpreter checks);
    /// otherwise this one is counted as one of them.
    fn sampled(&self, rule: &str) -> bool {
        let mut samples = self.samples.lock().expect("samples");
        match samples.get_mut(rule) {
            Some(n) if *n >= SAMPLED => true,
            Some(n) => {
                *n += 1;
                false
            }
            None => {
                samples.insert(rule.to_string(), 1);
                false
            }
        }
    }

    /// The time left for one evaluation: the policy's limit, or what is left of the current
    /// `Budget`. `None` when nothing is left.
    fn remaining(&self) -> Option<ExecutionTimerConfig> {
        let limit = match BUDGET_START.with(Cell::get) {
            Some(start) => self.timer.limit.checked_sub(start.elapsed())?,
            None => self.timer.limit,
        };
        (!limit.is_zero()).then_some(ExecutionTimerConfig { limit, ..self.timer })
    }

    /// Evaluates on the VM: `None` when it cannot answer (no bytecode, or any error but a time or
    /// memory limit).
    fn eval_vm(&self, rule: &str, input: &Input) -> Option<Result<regorus::Value, EvalError>> {
        let Some(timer) = self.remaining() else { return Some(Err(EvalError::Timeout)) };
        let pooled = {
            let mut vms = self.vms.lock().expect("vms");
            vms.get_mut(rule).and_then(Vec::pop)
        };
        let mut vm = match pooled {
            Some(vm) => vm,
            None => {
                let program = self.bytecode(rule)?;
                let mut vm = RegoVM::new();
                vm.load_program(program);
                vm.set_data(self.data.clone()).ok()?;
                vm.set_strict_builtin_errors(false);
                vm.set_max_instructions(MAX_VM_INSTRUCTIONS);
                vm.set_execution_timer_config(Some(self.timer));
                vm.set_memory_budget_config(Some(MemoryBudgetConfig { limit: EVAL_BYTES }));
                vm
            }
        };
        vm.set_execution_timer_config(Some(timer));
        vm.set_input(input.0.clone());
        let result = vm.execute();
        // A VM that failed may still hold what it built (a bomb's strings) in its registers.
        if result.is_ok() {
            let mut vms = self.vms.lock().expect("vms");
            match vms.get_mut(rule) {
                Some(pool) => pool.push(vm),
                None => {
                    vms.insert(rule.to_string(), vec![vm]);
                }
            }
        }
        match result {
            Ok(value) => Some(Ok(value)),
            // Over the budget: the interpreter (which has no budget) must not run it again.
            Err(VmError::MemoryBudgetExceeded { budget, .. }) => {
                Some(Err(EvalError::Limit(compat::memory_limit(budget))))
            }
            Err(e) => match classify(&e.to_string()) {
                limit @ (EvalError::Timeout | EvalError::Limit(_)) => Some(Err(limit)),
                EvalError::Failed(_) => {
                    tracing::trace!(policy = %self.label, error = %e, "VM error; evaluating with the interpreter");
                    FALLBACKS.fetch_add(1, Ordering::Relaxed);
                    None
                }
            },
        }
    }

    fn eval_interpreter(&self, rule: &str, input: &Input) -> Result<regorus::Value, EvalError> {
        INTERPRETED.fetch_add(1, Ordering::Relaxed);
        let timer = self.remaining().ok_or(EvalError::Timeout)?;
        let mut engine = self.pool.lock().expect("pool").pop().unwrap_or_else(|| self.engine.clone());
        engine.set_execution_timer_config(timer);
        engine.set_input(input.0.clone());
        let result = engine.eval_rule(rule.to_string());
        self.pool.lock().expect("pool").push(engine);
        result.map_err(|e| classify(&e.to_string()))
    }

    /// Evaluates `rule` (a full path like `data.k8spsp.violation`) with `input`. Undefined is `Null`.
    pub fn eval(&self, rule: &str, input: &Json) -> Result<Json, EvalError> {
        self.eval_input(rule, &Input::new(input))
    }

    pub fn eval_input(&self, rule: &str, input: &Input) -> Result<Json, EvalError> {
        let value = match mode() {
            Mode::Interpreter => self.eval_interpreter(rule, input),
            Mode::Vm => match self.eval_vm(rule, input) {
                Some(answer) if self.sampled(rule) => {
                    VM_EVALS.fetch_add(1, Ordering::Relaxed);
                    answer
                }
                // Out of time or memory on the VM: the interpreter would not finish in what is
                // left either, and has no memory budget.
                Some(Err(e @ (EvalError::Timeout | EvalError::Limit(_)))) => Err(e),
                Some(answer) => {
                    // One of the first evaluations of this rule: the interpreter answers too,
                    // and a difference retires the VM for the rule.
                    let reference = self.eval_interpreter(rule, input);
                    if differ(&answer, &reference) {
                        MISMATCHES.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(policy = %self.label, rule, "the bytecode VM disagreed with the interpreter; this rule stays on the interpreter");
                        self.compiled.lock().expect("compiled").insert(rule.to_string(), None);
                        self.vms.lock().expect("vms").remove(rule);
                    }
                    reference
                }
                None => self.eval_interpreter(rule, input),
            },
            Mode::Crosscheck => {
                let reference = self.eval_interpreter(rule, input);
                if let Some(vm) = self.eval_vm(rule, input) {
                    VM_EVALS.fetch_add(1, Ordering::Relaxed);
                    if differ(&vm, &reference) {
                        MISMATCHES.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "guardrail crosscheck: {} {rule}: VM {:?} but interpreter {:?} on input {}",
                            self.label,
                            vm.as_ref().map(to_json),
                            reference.as_ref().map(to_json),
                            to_json(&input.0)
                        );
                    }
                }
                reference
            }
        };
        value.map(|v| to_json(&v))
    }

    /// Evaluates a query (for `test_*` rules): true when it produced `true`.
    pub fn eval_bool(&self, query: &str, input: Option<&Json>) -> Result<bool, EvalError> {
        let mut engine = self.engine.clone();
        if let Some(input) = input {
            engine.set_input(value_of(input));
        }
        let rule_value =
            engine.eval_rule(query.to_string()).map_err(|e| EvalError::Failed(first_lines(&e.to_string())))?;
        Ok(rule_value == regorus::Value::Bool(true))
    }
}

fn classify(message: &str) -> EvalError {
    let lower = message.to_lowercase();
    if let Some(at) = message.find(compat::LIMIT_MARK) {
        let limit = message[at + compat::LIMIT_MARK.len()..].lines().next().unwrap_or_default();
        EvalError::Limit(limit.trim().to_string())
    } else if lower.contains("exceeded memory") {
        // regorus's memory limits ("execution exceeded memory limit (usage=U bytes, limit=L bytes)"),
        // the interpreter's in a worker (see `isolate`).
        let limit =
            message.split("limit=").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse::<u64>().ok());
        EvalError::Limit(match limit {
            Some(bytes) => format!(
                "the evaluation would make the policy engine hold more than {} MiB of memory, its limit",
                bytes >> 20
            ),
            None => first_lines(message).lines().next().unwrap_or_default().to_string(),
        })
    } else if lower.contains("time limit")
        || lower.contains("execution exceeded")
        || lower.contains("deadline")
        || lower.contains("timed out")
    {
        EvalError::Timeout
    } else {
        EvalError::Failed(first_lines(message))
    }
}

/// Whether two answers differ in meaning. A time limit reached by one evaluator only is not a
/// difference (the VM is faster and may finish where the interpreter does not).
fn differ(a: &Result<regorus::Value, EvalError>, b: &Result<regorus::Value, EvalError>) -> bool {
    let timed_out = |r: &Result<regorus::Value, EvalError>| matches!(r, Err(EvalError::Timeout));
    !timed_out(a) && !timed_out(b) && normalize(a) != normalize(b)
}

/// Undefined and an empty set are the same answer for a partial set rule.
fn normalize(result: &Result<regorus::Value, EvalError>) -> Result<Json, EvalError> {
    match result {
        Ok(v) => Ok(match to_json(v) {
            Json::Array(a) if a.is_empty() => Json::Null,
            other => other,
        }),
        Err(e) => Err(e.clone()),
    }
}

/// `base` with the top-level keys of `extra` (the shape `Engine::add_data` gives for disjoint keys).
fn merge(base: &regorus::Value, extra: &regorus::Value) -> regorus::Value {
    let regorus::Value::Object(e) = extra else { return extra.clone() };
    with_entries(base, e.iter().map(|(k, v)| (k.clone(), v.clone())))
}

/// The entries of the object `base` (none if it is not one) with `extra` added or replacing.
fn with_entries(
    base: &regorus::Value,
    extra: impl IntoIterator<Item = (regorus::Value, regorus::Value)>,
) -> regorus::Value {
    let mut map = std::collections::BTreeMap::new();
    if let regorus::Value::Object(b) = base {
        map.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    map.extend(extra);
    regorus::Value::from(map)
}

fn first_lines(s: &str) -> String {
    s.lines().take(6).collect::<Vec<_>>().join("\n")
}

fn to_json(value: &regorus::Value) -> Json {
    match value {
        regorus::Value::Undefined => Json::Null,
        other => serde_json::to_value(other).unwrap_or(Json::Null),
    }
}
