//! The Kubernetes CEL libraries (quantity, ip/cidr, url, regex, lists, sets, format, semver, the
//! Kubernetes string functions) come from kube-cel, which is built on an older `cel` than the one
//! guardrail evaluates with. Each library function is registered here under its name; a call
//! converts its receiver and arguments to the older crate's values, runs the same call there
//! (compiled once per shape and thread), and converts the result back. Library values (a quantity,
//! an IP) travel as opaque values that only these functions read.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use kube_cel::cel as old;
use kube_cel::KubeCelExt;

/// A value of a Kubernetes library type (quantity, IP, CIDR, URL, format, semver).
#[derive(Debug)]
pub struct Library(pub old::Value);

impl PartialEq for Library {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Library {}

impl cel::objects::Opaque for Library {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.library"
    }
}

/// Every function the bridge provides (global, member and namespaced names).
pub const FUNCTIONS: &[&str] = &[
    // quantity
    "quantity",
    "isQuantity",
    "isLessThan",
    "isGreaterThan",
    "compareTo",
    "add",
    "sub",
    "asInteger",
    "asApproximateFloat",
    "isInteger",
    "sign",
    // ip, cidr
    "ip",
    "isIP",
    "ip.isCanonical",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "cidr",
    "isCIDR",
    "containsIP",
    "containsCIDR",
    "prefixLength",
    "masked",
    // url
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    // regex
    "find",
    "findAll",
    // lists (Kubernetes') and sets (cel-go's)
    "isSorted",
    "sum",
    "min",
    "max",
    "indexOf",
    "lastIndexOf",
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
    // strings (cel-go's ext.Strings as Kubernetes configures it)
    "charAt",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "strings.quote",
    "format",
    // format
    "format.dns1123Label",
    "format.dns1123Subdomain",
    "format.dns1035Label",
    "format.dns1123LabelPrefix",
    "format.dns1123SubdomainPrefix",
    "format.dns1035LabelPrefix",
    "format.labelValue",
    "format.qualifiedName",
    "format.uri",
    "format.uuid",
    "format.byte",
    "format.date",
    "format.datetime",
    "format.named",
    "validate",
    // semver
    "semver",
    "isSemver",
    "major",
    "minor",
    "patch",
];

fn key_to_old(k: &cel::objects::Key) -> old::objects::Key {
    use cel::objects::Key;
    match k {
        Key::Int(i) => old::objects::Key::Int(*i),
        Key::Uint(u) => old::objects::Key::Uint(*u),
        Key::Bool(b) => old::objects::Key::Bool(*b),
        Key::String(s) => old::objects::Key::String(s.clone()),
    }
}

fn key_from_old(k: &old::objects::Key) -> cel::objects::Key {
    use old::objects::Key;
    match k {
        Key::Int(i) => cel::objects::Key::Int(*i),
        Key::Uint(u) => cel::objects::Key::Uint(*u),
        Key::Bool(b) => cel::objects::Key::Bool(*b),
        Key::String(s) => cel::objects::Key::String(s.clone()),
    }
}

fn to_old(v: &cel::Value) -> Result<old::Value, String> {
    use cel::Value as V;
    Ok(match v {
        V::List(l) => old::Value::List(Arc::new(l.iter().map(to_old).collect::<Result<_, _>>()?)),
        V::Map(m) => {
            let mut out = HashMap::with_capacity(m.map.len());
            for (k, v) in m.map.iter() {
                out.insert(key_to_old(k), to_old(v)?);
            }
            old::Value::Map(old::objects::Map { map: Arc::new(out) })
        }
        V::Int(i) => old::Value::Int(*i),
        V::UInt(u) => old::Value::UInt(*u),
        V::Float(f) => old::Value::Float(*f),
        V::String(s) => old::Value::String(s.clone()),
        V::Bytes(b) => old::Value::Bytes(b.clone()),
        V::Bool(b) => old::Value::Bool(*b),
        V::Null => old::Value::Null,
        V::Opaque(o) => match o.downcast_ref::<Library>() {
            Some(l) => l.0.clone(),
            None => {
                return Err(format!("a {} cannot be passed to a Kubernetes library function", o.runtime_type_name()))
            }
        },
        other => return Err(format!("a {} cannot be passed to a Kubernetes library function", other.type_of())),
    })
}

fn from_old(v: &old::Value) -> cel::Value {
    use old::Value as V;
    match v {
        V::List(l) => cel::Value::List(Arc::new(l.iter().map(from_old).collect())),
        V::Map(m) => {
            let map: HashMap<cel::objects::Key, cel::Value> =
                m.map.iter().map(|(k, v)| (key_from_old(k), from_old(v))).collect();
            cel::Value::from(map)
        }
        V::Int(i) => cel::Value::Int(*i),
        V::UInt(u) => cel::Value::UInt(*u),
        V::Float(f) => cel::Value::Float(*f),
        V::String(s) => cel::Value::String(s.clone()),
        V::Bytes(b) => cel::Value::Bytes(b.clone()),
        V::Bool(b) => cel::Value::Bool(*b),
        V::Null => cel::Value::Null,
        V::Opaque(o) => match o.downcast_ref::<old::objects::OptionalValue>() {
            Some(opt) => cel::Value::Opaque(Arc::new(match opt.value() {
                Some(x) => cel::objects::OptionalValue::of(from_old(x)),
                None => cel::objects::OptionalValue::none(),
            })),
            None => cel::Value::Opaque(Arc::new(Library(v.clone()))),
        },
        other => cel::Value::Opaque(Arc::new(Library(other.clone()))),
    }
}

/// A compiled call: (function name, number of arguments, called on a receiver).
type CallKey = (&'static str, usize, bool);

thread_local! {
    /// kube-cel's functions, registered once per thread (registration allocates every function).
    static ROOT: old::Context<'static> = old::Context::default().with_all();
    /// `r.name(a0, …)` / `name(a0, …)` compiled once per (name, arguments, receiver).
    static CALLS: RefCell<HashMap<CallKey, Arc<old::Program>>> = Default::default();
}

/// Runs the library function `name` on a receiver (member call) and arguments.
fn call(name: &'static str, this: Option<&cel::Value>, args: &[cel::Value]) -> Result<cel::Value, cel::ExecutionError> {
    let fail = |m: String| cel::ExecutionError::function_error(name, m);
    let program = CALLS.with(|calls| {
        let mut calls = calls.borrow_mut();
        if let Some(p) = calls.get(&(name, args.len(), this.is_some())) {
            return Ok(p.clone());
        }
        let list = (0..args.len()).map(|i| format!("a{i}")).collect::<Vec<_>>().join(", ");
        let source = if this.is_some() { format!("r.{name}({list})") } else { format!("{name}({list})") };
        let program = Arc::new(old::Program::compile(&source).map_err(|e| fail(e.to_string()))?);
        calls.insert((name, args.len(), this.is_some()), program.clone());
        Ok(program)
    })?;
    ROOT.with(|root| {
        let mut scope = root.new_inner_scope();
        if let Some(t) = this {
            scope.add_variable_from_value("r", to_old(t).map_err(fail)?);
        }
        for (i, a) in args.iter().enumerate() {
            scope.add_variable_from_value(format!("a{i}"), to_old(a).map_err(fail)?);
        }
        let out = program.execute(&scope).map_err(|e| fail(e.to_string()))?;
        Ok(from_old(&out))
    })
}

/// Registers every library function on a root context.
pub fn install(ctx: &mut cel::Context) {
    for name in FUNCTIONS {
        let name: &'static str = name;
        let handler = move |ftx: &cel::FunctionContext,
                            cel::extractors::Arguments(args): cel::extractors::Arguments|
              -> Result<cel::Value, cel::ExecutionError> {
            let this = match &ftx.this {
                Some(t) => Some(cel::Value::try_from(t.as_ref())?),
                None => None,
            };
            call(name, this.as_ref(), args.as_slice())
        };
        if let Err(e) = ctx.add_function(name, handler) {
            // Only a name the language itself declares can conflict; it then keeps its own meaning.
            tracing::debug!(function = name, error = %e, "CEL library function not bridged");
        }
    }
}
