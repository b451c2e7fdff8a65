//! Placing a pointer into a rendered object at its source: walk the rendered value and the replayed
//! tree side by side, matching list elements by their key (kustomize reorders merged lists), and
//! take the deepest attributed node.

use std::sync::Arc;

use serde_json::Value;

use super::replay::{pick_image, Obj};
use super::tree::{identity, At, Attr, Kids};
use crate::findings::Region;
use crate::manifest::node::{pointer_push, pointer_tokens};
use crate::manifest::Placer;

#[derive(Debug)]
pub struct RenderedPlace {
    /// The replayed object, if one matched the rendered object.
    pub attr: Option<Attr>,
    pub rendered: Value,
    pub head: At,
    /// The overlay (its folder) that rendered the object.
    pub overlay: String,
    pub originals: Vec<(String, Option<Value>)>,
}

impl RenderedPlace {
    pub fn new(obj: Option<&Obj>, rendered: Value, fallback: At, overlay: String) -> Self {
        RenderedPlace {
            attr: obj.map(|o| o.attr.clone()),
            head: obj.map(|o| o.head.clone()).unwrap_or(fallback),
            rendered,
            overlay,
            originals: obj.map(|o| o.originals.clone()).unwrap_or_default(),
        }
    }
}

fn element<'a>(items: &'a [Attr], rendered: &[Value], index: usize) -> Option<&'a Attr> {
    let value = rendered.get(index)?;
    if let Some((key, id)) = identity(value) {
        return items.iter().find(|a| a.get(key).map(Attr::to_json).as_ref() == Some(id));
    }
    if !value.is_object() && !value.is_array() {
        if let Some(a) = items.iter().find(|a| matches!(&a.kids, Kids::Leaf(v) if v == value)) {
            return Some(a);
        }
    }
    // Same length: kustomize kept the list as it was.
    (items.len() == rendered.len()).then(|| items.get(index)).flatten()
}

impl Placer for RenderedPlace {
    fn place(&self, pointer: &str, message: &str) -> (Arc<str>, Region, String) {
        let mut value = &self.rendered;
        let mut attr = self.attr.as_ref();
        let mut best: Option<&Attr> = attr;
        let mut found = String::new();
        for token in pointer_tokens(pointer) {
            let next = match value {
                Value::Object(m) => m.get(&token),
                Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            let Some(next) = next else { break };
            attr = match (attr.map(|a| &a.kids), value) {
                (Some(Kids::Map(_)), _) => attr.and_then(|a| a.get(&token)),
                (Some(Kids::Seq(items)), Value::Array(rendered)) => {
                    token.parse::<usize>().ok().and_then(|i| element(items, rendered, i))
                }
                _ => None,
            };
            if attr.is_some() {
                best = attr;
            }
            found = pointer_push(&found, &token);
            value = next;
        }
        let at = match best {
            None => self.head.clone(),
            Some(a) => match &a.image {
                Some(sources) => pick_image(&a.at, sources, message),
                None => a.at.clone(),
            },
        };
        (at.file, at.region, found)
    }

    fn head(&self) -> (Arc<str>, Region) {
        (self.head.file.clone(), self.head.region)
    }

    fn overlay(&self) -> Option<&str> {
        Some(&self.overlay)
    }

    fn originals(&self) -> &[(String, Option<Value>)] {
        &self.originals
    }

    fn changed_under(&self, pointer: &str) -> Vec<(String, Value)> {
        let mut value = &self.rendered;
        let Some(mut attr) = self.attr.as_ref() else { return Vec::new() };
        for token in pointer_tokens(pointer) {
            let (next_value, next_attr) = match (value, &attr.kids) {
                (Value::Object(m), Kids::Map(_)) => (m.get(&token), attr.get(&token)),
                (Value::Array(items), Kids::Seq(attrs)) => {
                    let i = token.parse::<usize>().ok();
                    (i.and_then(|i| items.get(i)), i.and_then(|i| element(attrs, items, i)))
                }
                _ => (None, None),
            };
            match (next_value, next_attr) {
                (Some(v), Some(a)) => (value, attr) = (v, a),
                _ => return Vec::new(),
            }
        }
        let mut out = Vec::new();
        collect_changes(value, attr, pointer.to_string(), &mut out);
        out
    }
}

/// Every field under `value` that an overlay changed, with the value it had before.
fn collect_changes(value: &Value, attr: &Attr, pointer: String, out: &mut Vec<(String, Value)>) {
    if let Some(before) = &attr.before {
        out.push((pointer.clone(), (**before).clone()));
    }
    match (value, &attr.kids) {
        (Value::Object(m), Kids::Map(_)) => {
            for (k, v) in m {
                if let Some(a) = attr.get(k) {
                    collect_changes(v, a, pointer_push(&pointer, k), out);
                }
            }
        }
        (Value::Array(items), Kids::Seq(attrs)) => {
            for (i, v) in items.iter().enumerate() {
                if let Some(a) = element(attrs, items, i) {
                    collect_changes(v, a, pointer_push(&pointer, &i.to_string()), out);
                }
            }
        }
        _ => {}
    }
}
