//! CEL, as Kubernetes and Gatekeeper evaluate it: Gatekeeper templates with `K8sNativeValidation`
//! code (`gatekeeper`), ValidatingAdmissionPolicies with their bindings and parameters (`vap`),
//! and the expression engine both share (here): the `cel` crate's language with optional types,
//! and the Kubernetes libraries through `bridge`. Every expression is compiled once, when its
//! policy loads; evaluation runs on the scan's worker threads (large stacks), after the parser
//! has bounded each expression's nesting.

pub mod bridge;
pub mod checks;
pub mod gatekeeper;
pub mod kinds;
pub mod vap;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest expression guardrail compiles (Kubernetes limits the whole policy object instead).
pub const MAX_EXPRESSION_BYTES: usize = 64 * 1024;
/// Deepest nesting the parser accepts; evaluation recurses no deeper than the tree it built.
const MAX_NESTING: u16 = 64;

/// One compiled expression and its text.
#[derive(Clone)]
pub struct Expr {
    pub source: String,
    program: Arc<cel::Program>,
    /// Variables the expression reads (`object`, `variables`, `authorizer`, …).
    reads: Vec<String>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

impl Expr {
    pub fn reads(&self, variable: &str) -> bool {
        self.reads.iter().any(|r| r == variable)
    }
}

fn env() -> &'static Arc<cel::Env> {
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib()))
}

thread_local! {
    /// The language and the Kubernetes libraries, set up once per thread; each evaluation binds its
    /// variables in a scope of its own.
    static ROOT: cel::Context<'static, 'static> = {
        let mut ctx = cel::Context::with_env(env().clone());
        bridge::install(&mut ctx);
        ctx
    };
}

/// Compiles an expression (parse errors are the policy's, reported when it loads).
pub fn compile(source: &str) -> Result<Expr, String> {
    if source.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "the expression is {} bytes long, more than guardrail compiles ({MAX_EXPRESSION_BYTES})",
            source.len()
        ));
    }
    let parsed =
        env().parser().max_recursion_depth(MAX_NESTING).parse(source).map_err(|e| first_lines(&e.to_string()))?;
    let reads = parsed.references().variables().iter().map(|v| v.to_string()).collect();
    let program = env().compile(source).map_err(|e| first_lines(&e.to_string()))?;
    drop(parsed);
    Ok(Expr { source: source.to_string(), program: Arc::new(program), reads })
}

/// Why an expression produced no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// An evaluation error, as the API server would have it (the policy's failure policy decides).
    Error(String),
    /// The expression calls something guardrail's CEL does not provide: never a silent pass.
    NotSupported(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Error(e) => f.write_str(e),
            Failure::NotSupported(e) => write!(f, "not supported by guardrail's CEL: {e}"),
        }
    }
}

/// Names an expression may read as variables; any other undeclared name is a function or
/// variable guardrail lacks.
const ACTIVATION: &[&str] = &["object", "oldObject", "request", "params", "namespaceObject", "variables", "authorizer"];

/// Evaluates `expr` with the variables bound.
pub fn eval(expr: &Expr, bindings: &[(&str, &cel::Value)]) -> Result<cel::Value, Failure> {
    ROOT.with(|root| {
        let mut scope = root.new_inner_scope();
        for (name, value) in bindings {
            scope.add_variable_from_value(*name, (*value).clone());
        }
        expr.program.execute(&scope).map_err(|e| match e {
            cel::ExecutionError::UndeclaredReference(name) if !ACTIVATION.contains(&name.as_str()) => {
                Failure::NotSupported(format!("`{name}` in `{}`", short(&expr.source)))
            }
            other => Failure::Error(other.to_string()),
        })
    })
}

/// A JSON value as a CEL value (numbers stay ints where they are integers).
pub fn value(json: &Value) -> cel::Value {
    cel::to_value(json).unwrap_or(cel::Value::Null)
}

/// A CEL string result, or how the value reads.
pub fn text(value: &cel::Value) -> String {
    match value {
        cel::Value::String(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

/// The object under evaluation, converted to CEL on first use; an edited copy (while locating)
/// shares the original until then.
pub struct Input {
    base: Arc<Value>,
    edit: Option<(Vec<String>, Option<Value>)>,
    converted: OnceLock<cel::Value>,
}

impl Input {
    pub fn new(object: &Value) -> Self {
        Input { base: Arc::new(object.clone()), edit: None, converted: OnceLock::new() }
    }

    pub fn edited(&self, tokens: &[String], with: Option<&Value>) -> Self {
        Input { base: self.base.clone(), edit: Some((tokens.to_vec(), with.cloned())), converted: OnceLock::new() }
    }

    /// The object as JSON (edited, when this is a variant).
    pub fn json(&self) -> Value {
        let mut object = (*self.base).clone();
        if let Some((tokens, with)) = &self.edit {
            edit_json(&mut object, tokens, with.clone());
        }
        object
    }

    /// Whether this is an edited copy made while locating: there an expression that fails because
    /// a field was removed shows that the field matters, so it counts as no violation (the API
    /// server would report the error, but the search needs to know the violation went away).
    pub fn is_variant(&self) -> bool {
        self.edit.is_some()
    }

    pub fn cel(&self) -> &cel::Value {
        self.converted.get_or_init(|| match &self.edit {
            None => value(&self.base),
            Some(_) => value(&self.json()),
        })
    }
}

/// Evaluation time, measured: CEL cannot be interrupted, so a policy that took longer than its limit
/// on an object is reported as timed out (its expressions were bounded when they compiled).
pub struct Clock {
    started: Instant,
    limit: Duration,
}

impl Clock {
    pub fn start(limit: Duration) -> Self {
        Clock { started: Instant::now(), limit }
    }
    pub fn over(&self) -> bool {
        self.started.elapsed() > self.limit
    }
}

fn short(source: &str) -> String {
    let one_line = source.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 120 {
        format!("{}…", one_line.chars().take(120).collect::<String>())
    } else {
        one_line
    }
}

fn first_lines(s: &str) -> String {
    s.lines().take(6).collect::<Vec<_>>().join("\n")
}

/// The expression text as messages quote it.
pub fn quoted(expr: &Expr) -> String {
    short(&expr.source)
}

/// Removes the value at `tokens` (or replaces it with `with`); a path that does not exist changes nothing.
fn edit_json(value: &mut Value, tokens: &[String], with: Option<Value>) {
    let Some((token, rest)) = tokens.split_first() else { return };
    match value {
        Value::Object(map) if rest.is_empty() => match with {
            Some(w) => {
                map.insert(token.clone(), w);
            }
            None => {
                map.shift_remove(token);
            }
        },
        Value::Object(map) => {
            if let Some(child) = map.get_mut(token) {
                edit_json(child, rest, with);
            }
        }
        Value::Array(items) => {
            let Some(i) = token.parse::<usize>().ok().filter(|i| *i < items.len()) else { return };
            match (rest.is_empty(), with) {
                (true, Some(w)) => items[i] = w,
                (true, None) => {
                    items.remove(i);
                }
                (false, with) => edit_json(&mut items[i], rest, with),
            }
        }
        _ => {}
    }
}
