//! Several offenders behind one message: the other containers a message names, the other items of
//! a list that each keep the violation alive on their own.

use serde_json::Value;

use super::hints::mentions;
use super::hints::mentions_any;
use super::search::{Search, Verdict};
use super::Located;
use crate::manifest::node::{pointer_push, pointer_tokens};

impl Search<'_> {
    /// The other offenders behind the target: (1) the message names several items of a list (two
    /// containers): each other item whose removal also clears it, located inside the same way;
    /// (2) the search stopped at a list none of whose items alone clears (identical messages for
    /// several volumes): every item that keeps the violation alive on its own.
    pub(super) fn others(
        &mut self,
        root: &Value,
        pointer: &str,
        missing: Option<&str>,
    ) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        if let Some(Value::Array(items)) = root.pointer(pointer) {
            if items.len() < 2 {
                return out;
            }
            let mut alive = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let only = Value::Array(vec![item.clone()]);
                if self.persists(pointer, Some(&only)) {
                    alive.push(i);
                }
            }
            // Every item that alone keeps the violation is an offender (the caller puts the first
            // in the list's place), located inside on the object with that item alone in the list.
            let tokens: Vec<String> = pointer_tokens(pointer).collect();
            for i in alive {
                let item = pointer_push(pointer, &i.to_string());
                let only = Value::Array(vec![items[i].clone()]);
                let base = self.base.edited(&tokens, Some(&only));
                let mut alone = root.clone();
                if let Some(list) = alone.pointer_mut(pointer) {
                    *list = only;
                }
                let mut inner = Search { base: &base, budget: self.budget, ..*self };
                let found = inner.descend(&alone, &pointer_push(pointer, "0"));
                self.evaluations = inner.evaluations;
                let place = match found {
                    Some(p) => format!("{item}{}", &p[pointer.len() + 2..]),
                    None => item,
                };
                out.push((place, None));
            }
            return out;
        }
        // The deepest list index on the way to the field.
        let tokens: Vec<String> = pointer_tokens(pointer).collect();
        let Some(at) = (0..tokens.len()).rev().find(|&i| {
            tokens[i].parse::<usize>().is_ok()
                && matches!(
                    root.pointer(&tokens[..i].iter().fold(String::new(), |p, t| pointer_push(&p, t))),
                    Some(Value::Array(_))
                )
        }) else {
            return out;
        };
        let list = tokens[..at].iter().fold(String::new(), |p, t| pointer_push(&p, t));
        let Some(Value::Array(items)) = root.pointer(&list) else { return out };
        if items.len() < 2 || !mentions_any(items, self.target) {
            return out;
        }
        for (j, candidate) in items.iter().enumerate() {
            if j.to_string() == tokens[at] || !mentions(candidate, self.target) {
                continue;
            }
            let item = pointer_push(&list, &j.to_string());
            if self.verdict(&item, None) == Verdict::Kept {
                continue;
            }
            let same = tokens[at + 1..].iter().fold(item.clone(), |p, t| pointer_push(&p, t));
            let place = if root.pointer(&same).is_some() { same } else { self.descend(root, &item).unwrap_or(item) };
            let lacks = missing.filter(|m| root.pointer(&Located::field_pointer(&place, Some(m))).is_none());
            out.push((place, lacks.map(str::to_string)));
        }
        out
    }
}
