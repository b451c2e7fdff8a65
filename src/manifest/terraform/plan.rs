//! `terraform show -json` plans (`*.tfplan.json`): the `change.after` of every Kubernetes resource
//! that will exist after the apply. The plan is read as YAML (JSON is YAML), so each value keeps
//! its line in the plan file; values the plan marks in `after_unknown` become placeholders.

use std::sync::Arc;

use super::eval::placeholder;
use super::{finding, is_kubernetes_type, push_node, typed};
use crate::findings::{Region, Severity};
use crate::manifest::node::{Node, NodeKind};
use crate::manifest::{LoadOptions, Loaded};

pub fn load(display: &str, text: &str, opts: &LoadOptions, out: &mut Loaded) {
    out.sources.push((display.to_string(), Arc::from(text)));
    let docs = crate::manifest::yaml::parse_stream(text, &opts.limits.yaml);
    let Some(root) = docs.into_iter().next().and_then(|d| d.root) else {
        out.findings.push(finding(display, Region::point(1, 1), Severity::Deny, "plan file is not valid JSON".into()));
        return;
    };
    let Some(NodeKind::Seq(changes)) = root.get("resource_changes").map(|n| &n.kind) else { return };
    let file: Arc<str> = Arc::from(display);
    for change in changes {
        let text = |k: &str| change.get(k).and_then(Node::as_str).unwrap_or("").to_string();
        let (resource_type, address) = (text("type"), text("address"));
        if !is_kubernetes_type(&resource_type) || text("mode") == "data" {
            continue;
        }
        let Some(after) = change.get("change").and_then(|c| c.get("after")) else { continue };
        if matches!(after.kind, NodeKind::Null) {
            continue; // deleted
        }
        let mut after = after.clone();
        if let Some(unknown) = change.get("change").and_then(|c| c.get("after_unknown")) {
            mark_unknown(&mut after, unknown, &address);
        }
        let object = match resource_type.as_str() {
            "kubernetes_manifest" => after.get("manifest").cloned().map(strip_nulls),
            "kubectl_manifest" => None,
            _ => typed::convert(&resource_type, &after),
        };
        match object {
            Some(node) if matches!(node.kind, NodeKind::Map(_)) => push_node(node, file.clone(), opts, out),
            _ => {}
        }
    }
}

/// Puts `${unknown: <address>.<path>}` where `after_unknown` says a value is only known at apply.
fn mark_unknown(after: &mut Node, unknown: &Node, path: &str) {
    match (&mut after.kind, &unknown.kind) {
        (NodeKind::Map(entries), NodeKind::Map(flags)) => {
            for (key, flag) in flags {
                let child_path = format!("{path}.{key}");
                match entries.iter_mut().find(|(k, _)| k == key) {
                    Some((_, child)) => mark_unknown(child, flag, &child_path),
                    None if matches!(flag.kind, NodeKind::Bool(true)) => {
                        let mut node = Node::new(after.span, NodeKind::Str(placeholder(&child_path)));
                        node.key_span = after.key_span;
                        entries.push((key.clone(), node));
                    }
                    None => {}
                }
            }
        }
        (NodeKind::Seq(items), NodeKind::Seq(flags)) => {
            for (i, (item, flag)) in items.iter_mut().zip(flags).enumerate() {
                mark_unknown(item, flag, &format!("{path}[{i}]"));
            }
        }
        (_, NodeKind::Bool(true)) => after.kind = NodeKind::Str(placeholder(path)),
        _ => {}
    }
}

/// `kubernetes_manifest` objects in a plan list every schema attribute, unset ones as `null`.
fn strip_nulls(mut node: Node) -> Node {
    node.kind = match node.kind {
        NodeKind::Map(entries) => NodeKind::Map(
            entries
                .into_iter()
                .filter(|(_, v)| !matches!(v.kind, NodeKind::Null))
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        NodeKind::Seq(items) => NodeKind::Seq(items.into_iter().map(strip_nulls).collect()),
        other => other,
    };
    node
}
