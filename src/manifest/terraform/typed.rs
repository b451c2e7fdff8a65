//! Typed `kubernetes_*` resources -> the Kubernetes object the provider sends. The input is the
//! resource in Terraform's state shape (attributes as values, every block as a list of objects:
//! what the HCL evaluator builds and what a plan file holds); every output node keeps the span of
//! the attribute or block it came from, and defaults take the span of the block that implies them.

use super::typed_tables::{self as t, Role};
use crate::manifest::node::{Node, NodeKind};

/// `None` when the resource type is not one guardrail converts.
pub fn convert(resource_type: &str, state: &Node) -> Option<Node> {
    let (api_version, kind) = t::kind_of(resource_type)?;
    let span = state.span;
    let mut entries = vec![
        ("apiVersion".to_string(), Node::new(span, NodeKind::Str(api_version.into()))),
        ("kind".to_string(), Node::new(span, NodeKind::Str(kind.into()))),
    ];
    let NodeKind::Map(top) = &state.kind else { return None };
    // Top-level fields of kinds without a spec (StorageClass, PriorityClass, webhook
    // configurations, Secret `type`, EndpointSlice…), converted like a block's fields.
    let mut rest: Vec<(String, Node)> = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "metadata" => {
                let role = if t::cluster_scoped(kind) { Role::Other } else { Role::ObjectMetadata };
                if let Some(m) = block(kind, value, "metadata", "", role) {
                    entries.push(("metadata".into(), m));
                }
            }
            "spec" => {
                let role = t::child_role(kind, Role::Other, "", "spec");
                if let Some(s) = block(kind, value, "spec", "", role) {
                    entries.push(("spec".into(), s));
                }
            }
            // ConfigMap data, RBAC rules and subjects, role_ref, aggregation_rule sit at the top.
            "data" | "binary_data" | "immutable" | "automount_service_account_token" => {
                if let Some(v) = scalar_or_verbatim(key, value) {
                    entries.push((t::camel(key), v));
                }
            }
            "rule" | "subject" | "role_ref" | "aggregation_rule" | "image_pull_secret" | "secret" => {
                let name = if key == "image_pull_secret" {
                    "imagePullSecrets".to_string()
                } else if key == "secret" {
                    "secrets".to_string()
                } else {
                    t::repeated(key, "").map(str::to_string).unwrap_or_else(|| t::camel(key))
                };
                let list = key != "role_ref" && key != "aggregation_rule";
                if let Some(v) = blocks(kind, value, key, "", Role::Other, list) {
                    entries.push((name, v));
                }
            }
            _ => rest.push((key.clone(), value.clone())),
        }
    }
    if !rest.is_empty() {
        if let Some(Node { kind: NodeKind::Map(fields), .. }) =
            block(kind, &Node::new(span, NodeKind::Map(rest)), "", "", Role::Other)
        {
            entries.extend(fields);
        }
    }
    if kind == "Secret" {
        encode_secret_data(&mut entries);
    }
    Some(Node::new(span, NodeKind::Map(entries)))
}

/// The provider base64-encodes a Secret's `data` values (Terraform holds them in plain text).
fn encode_secret_data(entries: &mut [(String, Node)]) {
    use base64::Engine;
    let Some((_, data)) = entries.iter_mut().find(|(k, _)| k == "data") else { return };
    let NodeKind::Map(values) = &mut data.kind else { return };
    for (_, value) in values {
        if let NodeKind::Str(s) = &value.kind {
            if !s.contains(super::eval::UNKNOWN) {
                value.kind = NodeKind::Str(base64::engine::general_purpose::STANDARD.encode(s.as_bytes()));
            }
        }
    }
}

/// A block (a list of one object in the state shape, or an object) -> a Kubernetes object.
fn block(kind: &str, value: &Node, name: &str, _parent: &str, role: Role) -> Option<Node> {
    let inner = match &value.kind {
        NodeKind::Seq(items) => items.first()?,
        NodeKind::Map(_) => value,
        _ => return None,
    };
    let NodeKind::Map(fields) = &inner.kind else { return None };
    let mut out: Vec<(String, Node)> = Vec::new();
    for (key, child) in fields {
        if t::COMPUTED.contains(&key.as_str()) || is_empty(child) {
            continue;
        }
        let is_block_list =
            matches!(&child.kind, NodeKind::Seq(items) if items.iter().all(|i| matches!(i.kind, NodeKind::Map(_))));
        // Attribute maps (labels, annotations, limits, selectors) stay as written: their keys are data.
        let converted = if is_block_list {
            let role = t::child_role(kind, role, name, key);
            match t::repeated(key, name) {
                Some(list_name) => blocks(kind, child, key, name, role, true).map(|n| (list_name.to_string(), n)),
                None => block(kind, child, key, name, role).map(|n| (t::camel(key), n)),
            }
        } else {
            scalar_or_verbatim(key, child).map(|n| (t::camel(key), n))
        };
        let Some((k8s_key, mut node)) = converted else { continue };
        // A PersistentVolume's source block is inlined in its spec (`spec.hostPath`, `spec.nfs`).
        if key == "persistent_volume_source" {
            if let NodeKind::Map(fields) = node.kind {
                for (k, v) in fields {
                    out.retain(|(e, _)| e != &k);
                    out.push((k, v));
                }
            }
            continue;
        }
        if matches!(node.kind, NodeKind::Bool(false)) && t::PLAIN_BOOLS.contains(&k8s_key.as_str()) {
            continue;
        }
        if node.key_span.is_none() {
            node.key_span = child.key_span;
        }
        out.retain(|(k, _)| k != &k8s_key);
        out.push((k8s_key, node));
    }
    let anchor = value.key_span.or(inner.key_span).unwrap_or(inner.span);
    for (field, default) in t::defaults(role) {
        if out.iter().any(|(k, _)| k == field) {
            continue;
        }
        let kind = match default {
            t::Fallback::Bool(b) => NodeKind::Bool(*b),
            t::Fallback::Int(i) => NodeKind::Int(*i),
            t::Fallback::Str(s) => NodeKind::Str((*s).to_string()),
        };
        let mut node = Node::new(anchor, kind);
        node.key_span = Some(anchor);
        out.push((field.to_string(), node));
    }
    let mut node = Node::new(inner.span, NodeKind::Map(out));
    node.key_span = value.key_span.or(inner.key_span);
    Some(node)
}

/// Repeated blocks -> a list of objects (or, for `list == false`, the first one).
fn blocks(kind: &str, value: &Node, name: &str, parent: &str, role: Role, list: bool) -> Option<Node> {
    let NodeKind::Seq(items) = &value.kind else { return block(kind, value, name, parent, role) };
    if !list {
        return block(kind, value, name, parent, role);
    }
    let converted: Vec<Node> = items.iter().filter_map(|item| block(kind, item, name, parent, role)).collect();
    if converted.is_empty() {
        return None;
    }
    let mut node = Node::new(value.span, NodeKind::Seq(converted));
    node.key_span = value.key_span;
    Some(node)
}

fn is_empty(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Null => true,
        NodeKind::Str(s) => s.is_empty(),
        NodeKind::Seq(items) => items.is_empty(),
        NodeKind::Map(entries) => entries.is_empty(),
        _ => false,
    }
}

/// An attribute value, with the provider's string -> number conversions.
fn scalar_or_verbatim(key: &str, value: &Node) -> Option<Node> {
    if is_empty(value) {
        return None;
    }
    let mut node = value.clone();
    if let NodeKind::Str(s) = &value.kind {
        let s = s.trim();
        if t::INT_STRINGS.contains(&key) || t::INT_OR_STRING.contains(&key) {
            if let Ok(i) = s.parse::<i64>() {
                node.kind = NodeKind::Int(i);
            }
        } else if t::OCTAL_STRINGS.contains(&key) {
            if let Ok(i) = i64::from_str_radix(s, 8) {
                node.kind = NodeKind::Int(i);
            }
        }
    }
    Some(node)
}
