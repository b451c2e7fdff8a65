//! Which caller argument a value a module computes comes from. A module argument's value is
//! marked with the caller's file (`eval::mark`); a value the module computes from exactly one such
//! argument (`lower(var.name)`, `"${var.name}-web"`, `format(...)`, a conditional on it) is
//! reported where the caller wrote that argument, since editing it there is how the value changes.
//! A value made from several arguments, or from none, stays where the module computes it.

use std::sync::Arc;

use super::eval::Val;
use crate::manifest::node::{Node, NodeKind, Span};

/// The one caller argument seen so far, or that there were several.
#[derive(Clone, Debug, Default)]
pub enum Sources {
    #[default]
    None,
    One {
        file: Arc<str>,
        span: Span,
        key_span: Option<Span>,
    },
    Many,
}

impl Sources {
    /// The caller arguments inside `nodes` (scalars marked with a file).
    pub fn of<'n>(nodes: impl IntoIterator<Item = &'n Node>) -> Sources {
        let mut sources = Sources::None;
        for node in nodes {
            sources.add(node);
        }
        sources
    }

    pub fn add(&mut self, node: &Node) {
        if matches!(self, Sources::Many) {
            return;
        }
        match &node.kind {
            NodeKind::Seq(items) => items.iter().for_each(|n| self.add(n)),
            NodeKind::Map(entries) => entries.iter().for_each(|(_, n)| self.add(n)),
            _ => {
                let Some(file) = &node.file else { return };
                match self {
                    Sources::None => {
                        *self = Sources::One { file: file.clone(), span: node.span, key_span: node.key_span }
                    }
                    Sources::One { file: f, span, .. } if f == file && *span == node.span => {}
                    _ => *self = Sources::Many,
                }
            }
        }
    }

    /// `val` placed at its one caller argument, when it is a scalar computed here (not itself a
    /// caller's value, which already carries its place).
    pub fn place(&self, mut val: Val) -> Val {
        let scalar = !matches!(val.node.kind, NodeKind::Seq(_) | NodeKind::Map(_));
        if let (Sources::One { file, span, key_span }, true, None) = (self, scalar, &val.node.file) {
            val.node.file = Some(file.clone());
            val.node.span = *span;
            val.node.key_span = *key_span;
        }
        val
    }
}
