//! The Terraform functions that Kubernetes configurations use to build manifests: `file`,
//! `templatefile`, `yamldecode`, `jsondecode`, `jsonencode`, `yamlencode`, `merge`, and the small
//! string and collection helpers around them. Anything else is an unknown value.

use std::sync::Arc;

use hcl_edit::expr::FuncCall;

use super::eval::{contains_unknown, placeholder, scalar_text, Scope, TextMap, Val};
use super::hcl::HclFile;
use crate::manifest::node::{Node, NodeKind, Span};

pub fn call(scope: &Scope<'_>, file: &HclFile, call: &FuncCall, span: Span) -> Val {
    let name = &file.name;
    let whole = || Val::unknown(&call_text(file, call), span, name);
    if !call.name.namespace.is_empty() {
        return whole();
    }
    let exprs: Vec<&hcl_edit::expr::Expression> = call.args.iter().collect();
    let args: Vec<Val> = exprs.iter().map(|e| scope.eval(file, e)).collect();
    let arg_span = |i: usize| exprs.get(i).map(|e| file.span_of(*e)).unwrap_or(span);
    let str_arg = |i: usize| args.get(i).filter(|v| !v.is_unknown()).and_then(Val::as_str);
    let fname = call.name.name.as_str();
    match fname {
        "file" | "templatefile" => {
            let Some(path) = str_arg(0) else { return whole() };
            let text = match scope.module.read(&path) {
                Ok(t) => t,
                Err(message) => {
                    scope.module.error(file, arg_span(0), format!("{fname}(\"{path}\"): {message}"));
                    return whole();
                }
            };
            if fname == "file" {
                let mut v = Val::new(NodeKind::Str(text.1.to_string()), span, name);
                v.text = Some(Arc::new(TextMap { file: text.0, lines: None }));
                return v;
            }
            let vars = match args.get(1).map(|v| &v.node.kind) {
                Some(NodeKind::Map(entries)) => entries
                    .iter()
                    .map(|(k, n)| (k.clone(), Val { node: n.clone(), file: name.clone(), text: None, encoded: None }))
                    .collect(),
                None => Vec::new(),
                _ => return whole(),
            };
            let (tfile, template) = match super::template::parse_file(text.0.clone(), text.1.clone()) {
                Ok(t) => t,
                Err(e) => {
                    scope.module.error_at(&text.0, e.line, e.column, format!("template does not parse: {}", e.message));
                    return whole();
                }
            };
            let inner = Scope { module: scope.module, bindings: vars, template_only: true };
            let whole_span = tfile.lines.span(&tfile.text, 0..tfile.text.len());
            let mut v = super::template::render_in(&inner, &tfile, template.iter(), whole_span);
            // The rendered string is used here; its characters still map into the template.
            v.node.span = span;
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
            let Some(text) = arg.as_str() else { return whole() };
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
                    _ => return whole(),
                }
            }
            Val::new(NodeKind::Map(entries), span, name)
        }
        "concat" | "flatten" => {
            let mut items = Vec::new();
            for (i, arg) in args.into_iter().enumerate() {
                match arg.adopt(name, arg_span(i)).kind {
                    NodeKind::Seq(xs) if fname == "flatten" => {
                        for x in xs {
                            match x.kind {
                                NodeKind::Seq(inner) => items.extend(inner),
                                _ => items.push(x),
                            }
                        }
                    }
                    NodeKind::Seq(xs) => items.extend(xs),
                    _ => return whole(),
                }
            }
            Val::new(NodeKind::Seq(items), span, name)
        }
        "lookup" => match (args.first(), str_arg(1)) {
            (Some(map), Some(key)) if !map.is_unknown() || map.node.child(&key).is_some() => {
                match map.node.child(&key) {
                    Some(n) => Val { node: n.clone(), file: map.file.clone(), text: None, encoded: None },
                    None => args.get(2).cloned().unwrap_or_else(whole),
                }
            }
            _ => whole(),
        },
        "tostring" | "tonumber" | "tobool" | "tolist" | "toset" | "tomap" | "sensitive" | "nonsensitive" => {
            args.into_iter().next().unwrap_or_else(whole)
        }
        "coalesce" | "try" => {
            args.into_iter().find(|a| !a.is_unknown() && !matches!(a.node.kind, NodeKind::Null)).unwrap_or_else(whole)
        }
        "lower" | "upper" | "trimspace" | "title" | "base64encode" | "basename" | "dirname" => {
            let Some(s) = str_arg(0) else { return whole() };
            let out = match fname {
                "lower" => s.to_lowercase(),
                "upper" => s.to_uppercase(),
                "trimspace" => s.trim().to_string(),
                "base64encode" => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
                }
                "basename" => s.rsplit('/').next().unwrap_or("").to_string(),
                "dirname" => s.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_else(|| ".".into()),
                _ => s,
            };
            Val::new(NodeKind::Str(out), span, name)
        }
        "replace" => match (str_arg(0), str_arg(1), str_arg(2)) {
            (Some(s), Some(a), Some(b)) if !(a.starts_with('/') && a.ends_with('/') && a.len() > 1) => {
                Val::new(NodeKind::Str(s.replace(&a, &b)), span, name)
            }
            _ => whole(),
        },
        "join" => match (str_arg(0), args.get(1).map(|v| &v.node.kind)) {
            (Some(sep), Some(NodeKind::Seq(items))) if !contains_unknown(&args[1].node) => {
                let parts: Option<Vec<String>> = items.iter().map(scalar_text).collect();
                parts.map(|p| Val::new(NodeKind::Str(p.join(&sep)), span, name)).unwrap_or_else(whole)
            }
            _ => whole(),
        },
        "format" => format(&args).map(|s| Val::new(NodeKind::Str(s), span, name)).unwrap_or_else(whole),
        "length" => match args.first().filter(|a| !a.is_unknown()).map(|a| &a.node.kind) {
            Some(NodeKind::Seq(x)) => Val::new(NodeKind::Int(x.len() as i64), span, name),
            Some(NodeKind::Map(x)) => Val::new(NodeKind::Int(x.len() as i64), span, name),
            Some(NodeKind::Str(s)) => Val::new(NodeKind::Int(s.chars().count() as i64), span, name),
            _ => whole(),
        },
        _ => whole(),
    }
}

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

fn format(args: &[Val]) -> Option<String> {
    let spec = args.first().filter(|a| !a.is_unknown())?.as_str()?;
    let mut rest = args[1..].iter();
    let mut out = String::new();
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '%' => out.push('%'),
            's' | 'd' | 'v' => {
                let v = rest.next()?;
                if v.is_unknown() {
                    out.push_str(&placeholder("format argument"));
                } else {
                    out.push_str(&scalar_text(&v.node)?);
                }
            }
            _ => return None,
        }
    }
    Some(out)
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
