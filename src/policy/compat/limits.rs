//! Caps on the builtins that allocate in proportion to their arguments' values rather than their
//! sizes (`numbers.range(0, 2e9)`, a `concat` that doubles a string forty times): over a cap, the
//! evaluation fails with an error that names the limit, which becomes a deny finding (Gatekeeper
//! fails closed). The caps sit far above anything a policy needs.
//!
//! They are interpreter extensions (which take precedence over regorus's builtins); the bytecode
//! VM cannot call extensions, so sources that call `numbers.range*` stay on the interpreter
//! (`refuse_uncapped`), and `sprintf` reaches the VM only with `%v`/`%s` verbs (see `vm`).
//! Everything else the VM allocates (a `concat`, `array.concat` or `json.marshal` chain that
//! doubles, a comprehension over a product) counts against `MAX_EVAL_BYTES`, which the VM checks
//! before every instruction (`engine`).

use regorus::Value;

/// Marks an error as a resource limit (`EvalError::Limit`); the limit's description follows it.
pub const LIMIT_MARK: &str = "guardrail limit: ";

/// Most items `numbers.range`/`numbers.range_step` may produce.
pub const MAX_RANGE_ITEMS: u64 = 1_000_000;
/// Longest string `concat` and `sprintf` may produce (bytes).
pub const MAX_STRING_BYTES: usize = 16 << 20;
/// Memory one evaluation on the bytecode VM may hold beyond what it started with (its input and
/// data are already there): real policies use a few MiB at most. A string that doubles per step
/// is caught within one doubling of it, so one evaluation peaks below three times this.
pub const MAX_EVAL_BYTES: u64 = 128 << 20;

/// The finding's text for an evaluation that went over `MAX_EVAL_BYTES`.
pub fn memory_limit(budget: u64) -> String {
    format!("the evaluation would hold more than {} MiB of memory, the limit of one evaluation", budget >> 20)
}

fn limit(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{LIMIT_MARK}{what}")
}

/// Registers the capped builtins.
pub fn install_limits(engine: &mut regorus::Engine) -> anyhow::Result<()> {
    engine.add_extension("numbers.range".into(), 2, Box::new(|args: Vec<Value>| range("numbers.range", &args, 1)))?;
    engine.add_extension(
        "numbers.range_step".into(),
        3,
        Box::new(|args: Vec<Value>| {
            let step =
                integer(&args[2]).ok_or_else(|| anyhow::anyhow!("numbers.range_step: step must be an integer"))?;
            if step <= 0 {
                anyhow::bail!("numbers.range_step: step must be a positive number above zero");
            }
            range("numbers.range_step", &args, step)
        }),
    )?;
    engine.add_extension("concat".into(), 2, Box::new(|args: Vec<Value>| concat(&args)))
}

/// Sources the VM must not compile because they call a builtin the VM cannot cap.
/// `numbers.range(0, count(x))` (or between small literals) is bounded by its input and stays on
/// the VM; any other `numbers.range*` call needs the interpreter's cap.
pub fn refuse_uncapped(code: &str) -> Result<(), String> {
    static BOUNDED: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let bounded = BOUNDED.get_or_init(|| {
        regex::Regex::new(r"numbers\.range\(\s*-?[0-9]{1,4}\s*,\s*(?:count\([^()]*\)|-?[0-9]{1,4})\s*\)")
            .expect("valid regex")
    });
    let rest = bounded.replace_all(code, "");
    if rest.contains("numbers.range") {
        return Err("numbers.range with bounds it cannot size (capped on the interpreter only)".into());
    }
    Ok(())
}

fn integer(v: &Value) -> Option<i64> {
    let f: f64 = v.to_json_str().ok()?.parse().ok()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// `numbers.range(a, b)` (`step` 1) and `numbers.range_step(a, b, step)`, as regorus computes
/// them (non-integer bounds: undefined), at most `MAX_RANGE_ITEMS` items.
fn range(name: &str, args: &[Value], step: i64) -> anyhow::Result<Value> {
    for a in &args[..2] {
        if !matches!(a, Value::Number(_)) {
            anyhow::bail!("{name}: operands must be numbers");
        }
    }
    let (Some(from), Some(to)) = (integer(&args[0]), integer(&args[1])) else { return Ok(Value::Undefined) };
    let items = (to.abs_diff(from) / step as u64) + 1;
    if items > MAX_RANGE_ITEMS {
        return Err(limit(&format!("{name} would make {items} numbers, over the limit of {MAX_RANGE_ITEMS}")));
    }
    let step = if to >= from { step } else { -step };
    let values: Vec<Value> = (0..items as i64).map(|i| Value::from(from + i * step)).collect();
    Ok(Value::from(values))
}

fn concat(args: &[Value]) -> anyhow::Result<Value> {
    let Value::String(delimiter) = &args[0] else { anyhow::bail!("concat: operand 1 must be a string") };
    let items: Vec<&Value> = match &args[1] {
        Value::Array(a) => a.iter().collect(),
        Value::Set(s) => s.iter().collect(),
        _ => anyhow::bail!("concat: operand 2 must be an array or a set of strings"),
    };
    let mut strings = Vec::with_capacity(items.len());
    let mut total = delimiter.len().saturating_mul(items.len().saturating_sub(1));
    for item in items {
        let Value::String(s) = item else { anyhow::bail!("concat: operand 2 must hold strings only") };
        total = total.saturating_add(s.len());
        strings.push(s.as_ref());
    }
    if total > MAX_STRING_BYTES {
        return Err(limit(&format!(
            "concat would make a string of {total} bytes, over the limit of {MAX_STRING_BYTES}"
        )));
    }
    Ok(Value::String(strings.join(delimiter.as_ref()).into()))
}

/// `sprintf`'s output over the string limit.
pub fn sprintf_too_long(len: usize) -> anyhow::Error {
    limit(&format!("sprintf would make a string of over {len} bytes, over the limit of {MAX_STRING_BYTES}"))
}
