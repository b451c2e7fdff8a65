//! A value tree in which every node remembers which file and line set it. Kustomize's
//! transformations are replayed on these trees, so a field of the rendered object maps back to the
//! base, patch, component or kustomization line that gave it its value.

use std::sync::Arc;

use serde_json::Value;

use crate::findings::Region;
use crate::manifest::node::{Node, NodeKind};
use crate::manifest::region;

/// A source position: a file and the region a person should look at there.
#[derive(Clone, Debug, PartialEq)]
pub struct At {
    pub file: Arc<str>,
    pub region: Region,
}

/// Where an image reference came from: the base line and the `images:` entry's lines that changed it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageSources {
    pub name: Option<At>,
    pub tag: Option<At>,
    pub digest: Option<At>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kids {
    Leaf(Value),
    Map(Vec<(String, Attr)>),
    Seq(Vec<Attr>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attr {
    pub at: At,
    pub kids: Kids,
    /// Set on an image string an `images:` entry rewrote.
    pub image: Option<Box<ImageSources>>,
    /// The value a base had here before an overlay replaced it.
    pub before: Option<Box<Value>>,
}

/// Shifts positions of text that was parsed out of a block scalar (an inline patch).
#[derive(Clone, Copy, Debug, Default)]
pub struct Shift {
    pub lines: u32,
    pub columns: u32,
}

impl Attr {
    pub fn leaf(value: Value, at: At) -> Attr {
        Attr { at, kids: Kids::Leaf(value), image: None, before: None }
    }

    pub fn map(at: At) -> Attr {
        Attr { at, kids: Kids::Map(Vec::new()), image: None, before: None }
    }

    /// Every node of `node` attributed to its own position in `file`.
    pub fn from_node(node: &Node, file: &Arc<str>, shift: Shift) -> Attr {
        let mut r = region(node.focus());
        r.line += shift.lines;
        r.end_line += shift.lines;
        r.column += shift.columns;
        r.end_column += shift.columns;
        let at = At { file: file.clone(), region: r };
        let kids = match &node.kind {
            NodeKind::Map(entries) => {
                Kids::Map(entries.iter().map(|(k, v)| (k.clone(), Attr::from_node(v, file, shift))).collect())
            }
            NodeKind::Seq(items) => Kids::Seq(items.iter().map(|v| Attr::from_node(v, file, shift)).collect()),
            _ => Kids::Leaf(node.to_json()),
        };
        Attr { at, kids, image: None, before: None }
    }

    /// The same value everywhere attributed to one place (a value a transformation computed).
    pub fn from_json(value: &Value, at: &At) -> Attr {
        let kids = match value {
            Value::Object(m) => Kids::Map(m.iter().map(|(k, v)| (k.clone(), Attr::from_json(v, at))).collect()),
            Value::Array(a) => Kids::Seq(a.iter().map(|v| Attr::from_json(v, at)).collect()),
            v => Kids::Leaf(v.clone()),
        };
        Attr { at: at.clone(), kids, image: None, before: None }
    }

    pub fn to_json(&self) -> Value {
        match &self.kids {
            Kids::Leaf(v) => v.clone(),
            Kids::Map(entries) => Value::Object(entries.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Kids::Seq(items) => Value::Array(items.iter().map(Attr::to_json).collect()),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kids {
            Kids::Leaf(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Attr> {
        match &self.kids {
            Kids::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Attr> {
        match &mut self.kids {
            Kids::Map(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` in a map (turning a non-map into an empty map first).
    pub fn set(&mut self, key: &str, value: Attr) {
        if !matches!(self.kids, Kids::Map(_)) {
            self.kids = Kids::Map(Vec::new());
        }
        if let Kids::Map(entries) = &mut self.kids {
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => v.replace(value),
                None => entries.push((key.to_string(), value)),
            }
        }
    }

    /// Replaces this value, remembering the first value a scalar had (see `before`).
    pub fn replace(&mut self, mut value: Attr) {
        if matches!(value.kids, Kids::Leaf(_)) {
            value.before = self.before.take().or_else(|| match &self.kids {
                Kids::Leaf(v) => Some(Box::new(v.clone())),
                _ => None,
            });
        }
        *self = value;
    }

    pub fn remove(&mut self, key: &str) {
        if let Kids::Map(entries) = &mut self.kids {
            entries.retain(|(k, _)| k != key);
        }
    }

    /// The map at `key`, created (attributed to `at`) when missing.
    pub fn entry_map(&mut self, key: &str, at: &At) -> &mut Attr {
        if !matches!(self.get(key).map(|a| &a.kids), Some(Kids::Map(_))) {
            self.set(key, Attr::map(at.clone()));
        }
        self.get_mut(key).expect("just set")
    }

    /// Walks `tokens` through maps (and sequence indexes), mutably.
    pub fn walk_mut(&mut self, tokens: &[String]) -> Option<&mut Attr> {
        let mut node = self;
        for t in tokens {
            node = match &mut node.kids {
                Kids::Map(entries) => entries.iter_mut().find(|(k, _)| k == t).map(|(_, v)| v)?,
                Kids::Seq(items) => items.get_mut(t.parse::<usize>().ok()?)?,
                Kids::Leaf(_) => return None,
            };
        }
        Some(node)
    }
}

/// The key that identifies an element of a list that strategic merge merges by key (Kubernetes'
/// `patchMergeKey`s for the lists found in workloads); `None` for lists that are replaced whole.
pub fn merge_key(list: &str) -> Option<&'static str> {
    Some(match list {
        "containers" | "initContainers" | "ephemeralContainers" | "volumes" | "env" | "imagePullSecrets" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "resourceClaims" => "name",
        _ => return None,
    })
}

/// The key that identifies an element of any list in a rendered object, for matching it to its
/// source element after kustomize reordered the list.
pub fn identity(element: &Value) -> Option<(&'static str, &Value)> {
    ["name", "containerPort", "mountPath", "devicePath", "ip", "topologyKey", "port", "key"]
        .into_iter()
        .find_map(|k| element.get(k).filter(|v| !v.is_null()).map(|v| (k, v)))
}
