//! Terraform function calls: `file`, `templatefile`, `yamldecode`, `jsondecode`, `jsonencode`,
//! `yamlencode`, `merge`, `lookup`, `try`/`can` here, the pure functions in `stdlib`. A call whose
//! arguments are known but which guardrail does not compute is an unknown value with a warning
//! naming it; a call Terraform itself would reject is a deny finding.

use std::sync::Arc;

use hcl_edit::expr::FuncCall;

use super::budget::{check_string, Bound, MAX_TEMPLATE_DEPTH};
use super::eval::{Scope, TextMap, Val};
use super::hcl::HclFile;
use super::provenance::Sources;
use super::stdlib::Failure;
use crate::findings::Severity;
use crate::manifest::node::{Node, NodeKind, Span};

pub fn call(scope: &Scope<'_>, file: &HclFile, call: &FuncCall, span: Span) -> Val {
    if !call.name.namespace.is_empty() {
        return scope.cannot(file, call, "provider functions are not evaluated");
    }
    let fname = call.name.name.as_str();
    let exprs: Vec<&hcl_edit::expr::Expression> = call.args.iter().collect();
    if matches!(fname, "try" | "can") {
        return try_or_can(scope, file, call, &exprs, span);
    }
    let args: Vec<Val> = exprs.iter().map(|e| scope.eval(file, e)).collect();
    let from = Sources::of(args.iter().map(|a| &a.node));
    from.place(apply(scope, file, call, &exprs, args, span))
}

/// A call of `fname` on evaluated arguments.
fn apply(
    scope: &Scope<'_>,
    file: &HclFile,
    call: &FuncCall,
    exprs: &[&hcl_edit::expr::Expression],
    args: Vec<Val>,
    span: Span,
) -> Val {
    let name = &file.name;
    let whole = || Val::unknown(&call_text(file, call), span, name);
    let fname = call.name.name.as_str();
    let arg_span = |i: usize| exprs.get(i).map(|e| file.span_of(*e)).unwrap_or(span);
    let str_arg = |i: usize| args.get(i).filter(|v| !v.is_unknown()).and_then(Val::as_str);
    match fname {
        "file" | "templatefile" => {
            let Some(path) = str_arg(0) else { return whole() };
            let text = match scope.module.read(&path) {
                Ok(t) => t,
                Err((message, true)) => {
                    // Not in the repository (or only where Terraform runs): an unknown, as
                    // values known only at apply time are.
                    scope.module.warn(
                        file,
                        span,
                        format!(
                            "`{}` reads a file that is not in the repository ({message}), so its content is not known to guardrail; what uses it was not checked",
                            call_text(file, call)
                        ),
                    );
                    return whole();
                }
                Err((message, false)) => {
                    scope.module.error(file, arg_span(0), format!("{fname}(\"{path}\"): {message}"));
                    return whole();
                }
            };
            if fname == "file" {
                let mut v = Val::new(NodeKind::Str(text.1.to_string()), span, name);
                v.text = Some(Arc::new(TextMap { file: text.0, lines: None }));
                return v;
            }
            let vars = match args.get(1).map(|v| (&v.node.kind, &v.file)) {
                // The variables keep the file their values were written in.
                Some((NodeKind::Map(entries), source)) => entries
                    .iter()
                    .map(|(k, n)| (k.clone(), Val { node: n.clone(), file: source.clone(), text: None, encoded: None }))
                    .collect(),
                None => Vec::new(),
                Some(_) if args[1].is_unknown() => return whole(),
                Some(_) => return scope.cannot(file, call, "the variables are not a map"),
            };
            let budget = &scope.module.budget;
            let depth = budget.templates.get();
            if depth >= MAX_TEMPLATE_DEPTH {
                return scope.over(file, span, Bound::TemplateDepth);
            }
            let (tfile, template) = match super::template::parse_file(text.0.clone(), text.1.clone()) {
                Ok(t) => t,
                Err(e) => {
                    scope.module.error_at(&text.0, e.line, e.column, format!("template does not parse: {}", e.message));
                    return whole();
                }
            };
            budget.templates.set(depth + 1);
            let inner = Scope { module: scope.module, bindings: vars, template_only: true };
            let whole_span = tfile.lines.span(&tfile.text, 0..tfile.text.len());
            let mut v = super::template::render_in(&inner, &tfile, template.iter(), whole_span);
            budget.templates.set(depth);
            // The rendered string is used here (unless it comes from one caller argument); its
            // characters still map into the template.
            if v.node.file.is_none() {
                v.node.span = span;
            }
            v.file = name.clone();
            v
        }
        "yamldecode" | "jsondecode" => {
            let Some(arg) = args.into_iter().next() else { return whole() };
            if let Some(inner) = arg.encoded {
                return *inner;
            }
            if arg.is_unknown() {
                return whole();
            }
            let Some(text) = arg.as_str() else { return scope.cannot(file, call, "the argument is not a string") };
            decode(scope, file, &text, arg.text, span, fname).unwrap_or_else(whole)
        }
        "jsonencode" | "yamlencode" => {
            let Some(arg) = args.into_iter().next() else { return whole() };
            let json = arg.node.to_json();
            let text = if fname == "jsonencode" {
                serde_json::to_string(&json).unwrap_or_default()
            } else {
                serde_saphyr::to_string(&json).unwrap_or_default()
            };
            if let Err(bound) = check_string(&text) {
                return scope.over(file, span, bound);
            }
            let mut v = Val::new(NodeKind::Str(text), span, name);
            v.encoded = Some(Box::new(arg));
            v
        }
        "merge" => {
            let mut entries: Vec<(String, Node)> = Vec::new();
            for (i, arg) in args.into_iter().enumerate() {
                match arg.node.kind.clone() {
                    NodeKind::Map(_) => {
                        let node = arg.adopt(name, arg_span(i));
                        if let NodeKind::Map(es) = node.kind {
                            for (k, v) in es {
                                entries.retain(|(e, _)| e != &k);
                                entries.push((k, v));
                            }
                        }
                    }
                    NodeKind::Null => {}
                    _ if arg.is_unknown() => return whole(),
                    _ => return scope.cannot(file, call, "an argument is not a map"),
                }
            }
            if let Some(over) = scope.cells(file, span, entries.len()) {
                return over;
            }
            Val::new(NodeKind::Map(entries), span, name)
        }
        "lookup" => match (args.first(), str_arg(1)) {
            (Some(map), Some(key)) if !super::stdlib::opaque(&map.node) => match map.node.child(&key) {
                Some(n) => Val { node: n.clone(), file: map.file.clone(), text: None, encoded: None },
                None => match args.get(2) {
                    Some(default) => default.clone(),
                    None if map.is_unknown() => whole(),
                    None => scope.cannot(file, call, "the key is not in the map and there is no default"),
                },
            },
            _ => whole(),
        },
        "coalesce" => {
            for arg in &args {
                if arg.is_unknown() {
                    return whole();
                }
                if !matches!(&arg.node.kind, NodeKind::Null) && arg.as_str().as_deref() != Some("") {
                    return arg.clone();
                }
            }
            scope.cannot(file, call, "every argument is null or empty")
        }
        "timestamp" | "uuid" | "plantimestamp" | "bcrypt" | "uuidv5" => {
            scope.cannot(file, call, "its value is only known when Terraform runs")
        }
        _ => {
            let tolerant = super::stdlib::tolerates_unknown_parts(fname);
            let blocked = args.iter().any(|a| {
                if tolerant {
                    super::stdlib::opaque(&a.node)
                } else {
                    super::stdlib::has_unknown(&a.node)
                }
            });
            if blocked {
                return whole();
            }
            let nodes: Vec<Node> = args.into_iter().enumerate().map(|(i, a)| a.adopt(name, arg_span(i))).collect();
            match super::stdlib::apply(fname, &nodes, span) {
                Ok(kind) => {
                    let size = match &kind {
                        NodeKind::Seq(x) => x.len(),
                        NodeKind::Map(x) => x.len(),
                        _ => 0,
                    };
                    if let Some(over) = scope.cells(file, span, size) {
                        return over;
                    }
                    Val::new(kind, span, name)
                }
                Err(Failure::Over(bound)) => scope.over(file, span, bound),
                Err(Failure::Error(message)) => {
                    scope.module.error(
                        file,
                        span,
                        format!(
                            "`{}`: {message}; Terraform would stop here, so nothing that uses it was checked",
                            call_text(file, call)
                        ),
                    );
                    whole()
                }
                Err(Failure::Unsupported(why)) => scope.cannot(file, call, why),
            }
        }
    }
}

/// `try(a, b, …)`: the first argument that evaluates without an error; `can(x)`: whether it
/// does. An error Terraform would catch (a missing attribute, a function error) is dropped with
/// its finding; a value guardrail cannot compute, or one only known at apply time, makes the
/// result unknown (Terraform might take that argument).
fn try_or_can(
    scope: &Scope<'_>,
    file: &HclFile,
    call: &FuncCall,
    exprs: &[&hcl_edit::expr::Expression],
    span: Span,
) -> Val {
    let name = &file.name;
    let whole = || Val::unknown(&call_text(file, call), span, name);
    let is_can = call.name.name.as_str() == "can";
    for expr in exprs {
        let mark = scope.module.findings.borrow().len();
        let v = scope.eval(file, expr);
        let new: Vec<(Severity, String)> =
            scope.module.findings.borrow()[mark..].iter().map(|f| (f.severity, f.message.clone())).collect();
        let caught = |(severity, message): &(Severity, String)| {
            message.contains(TERRAFORM_ERROR) || (*severity == Severity::Warn && message.contains(NO_ATTRIBUTE))
        };
        if new.is_empty() {
            if v.is_unknown() {
                return whole();
            }
            return if is_can { Val::new(NodeKind::Bool(true), span, name) } else { v };
        }
        if !new.iter().all(caught) {
            return whole();
        }
        scope.module.findings.borrow_mut().truncate(mark);
        if is_can {
            return Val::new(NodeKind::Bool(false), span, name);
        }
    }
    if is_can {
        whole()
    } else {
        scope.cannot(file, call, "no argument evaluates without an error")
    }
}

/// Message parts that mark errors Terraform's `try` catches.
pub const TERRAFORM_ERROR: &str = "Terraform would stop here";
pub const NO_ATTRIBUTE: &str = "has no attribute or element";

/// `kubectl_manifest.yaml_body`: the YAML text decoded, as `yamldecode` would.
pub fn decode_yaml(scope: &Scope<'_>, file: &HclFile, v: Val, span: Span) -> Val {
    if let Some(inner) = v.encoded {
        return *inner;
    }
    match v.as_str() {
        Some(text) if !v.is_unknown() => decode(scope, file, &text, v.text, span, "yaml_body")
            .unwrap_or_else(|| Val::unknown("yaml_body", span, &file.name)),
        _ => v,
    }
}

fn call_text(file: &HclFile, call: &FuncCall) -> String {
    let text = file.text_of(call);
    if text.is_empty() {
        format!("{}(…)", call.name.name.as_str())
    } else {
        text
    }
}

/// `yamldecode` / `jsondecode`: the text is parsed as YAML (JSON is YAML), and its positions are
/// mapped back through the string's text map, if it has one (else to the call).
fn decode(
    scope: &Scope<'_>,
    file: &HclFile,
    text: &str,
    map: Option<Arc<TextMap>>,
    span: Span,
    fname: &str,
) -> Option<Val> {
    let limits = crate::manifest::yaml::YamlLimits::default();
    let docs = crate::manifest::yaml::parse_stream(text, &limits);
    let (target, to_pos): (Arc<str>, Box<dyn Fn(Span) -> Span>) = match &map {
        Some(m) => {
            let m = m.clone();
            (m.file.clone(), Box::new(move |s: Span| Span::new(m.map(s.start), m.map(s.end))))
        }
        None => (file.name.clone(), Box::new(move |_| span)),
    };
    if docs.len() > 1 {
        let first = docs.get(1).map(|d| to_pos(Span::at(d.first_line, 1))).unwrap_or(span);
        scope.module.error_at(
            &target,
            first.start.line,
            1,
            format!("{fname} reads one document; this text has several"),
        );
        return None;
    }
    let doc = docs.into_iter().next()?;
    if let Some(issue) = doc.issues.iter().find(|i| i.error) {
        let at = to_pos(issue.span);
        scope.module.error_at(&target, at.start.line, at.start.column, format!("{fname}: {}", issue.message));
        return None;
    }
    let root = doc.root?;
    let node = map_spans(root, &to_pos);
    Some(Val { node, file: target, text: None, encoded: None })
}

fn map_spans(mut node: Node, f: &dyn Fn(Span) -> Span) -> Node {
    node.span = f(node.span);
    node.key_span = node.key_span.map(f);
    node.kind = match node.kind {
        NodeKind::Seq(items) => NodeKind::Seq(items.into_iter().map(|n| map_spans(n, f)).collect()),
        NodeKind::Map(entries) => NodeKind::Map(entries.into_iter().map(|(k, v)| (k, map_spans(v, f))).collect()),
        other => other,
    };
    node
}
