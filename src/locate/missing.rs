//! Missing fields: the fields a policy reads that the object lacks, inserted one at a time; the
//! first insertion that makes the violation go away names what is missing.

use serde_json::Value;

use super::hints::samples;
use super::paths::missing_path;
use super::search::{Search, Verdict};
use crate::manifest::node::pointer_push;

/// Most evaluations spent inserting several required keys together, once each was found alone.
const ALL_KEYS_BUDGET: usize = 4;

impl Search<'_> {
    /// When the violation is about an object (or the whole resource) rather than one of its
    /// fields, tries inserting the fields the policy reads that the object lacks; the first
    /// insertion that makes the violation go away names the missing field.
    /// Returns the nearest existing enclosing object and the missing path below it.
    /// An insertion that also raises a violation of its own (a value of the wrong type makes the
    /// policy fail another way) counts only when no insertion clears cleanly.
    pub(super) fn missing(&mut self, root: &Value, pointer: &str, reads: &[Vec<String>]) -> Option<(String, String)> {
        let Some(Value::Object(_)) = root.pointer(pointer) else { return None };
        let mut fallback = None;
        // Keys the constraint requires of a map, each of which changed the message when inserted
        // alone ("a, b" -> "b"): tried together below.
        let mut partial: Vec<(usize, Vec<String>)> = Vec::new();
        let mut candidates = missing_candidates(root, pointer, reads, self.params);
        // A path the message spells out ("in securityContext.capabilities.drop") first; a single
        // name at the resource's top level (a label key the message lists) is no such hint.
        candidates.sort_by_key(|(depth, path)| {
            let spelled = &path[*depth..];
            let top = pointer.is_empty() && *depth == 0 && spelled.len() == 1;
            top || !self.target.contains(&spelled.join("."))
        });
        for (depth, path) in &candidates {
            let (depth, path) = (*depth, path.clone());
            let existing = path[..depth].iter().fold(pointer.to_string(), |p, t| pointer_push(&p, t));
            let Some(Value::Object(map)) = root.pointer(&existing) else { continue };
            // A map the policy reads by the constraint's keys (`labels[key]`): only a map fits
            // there (a string in its place can make the policy fail quietly rather than pass).
            let keyed = candidates.iter().any(|(_, p)| {
                p.len() == path.len() + 1
                    && p.starts_with(&path)
                    && self.params.iter().any(|v| v.as_str() == p.last().map(String::as_str))
            });
            let keyed_leaf = self.params.iter().any(|v| v.as_str() == path.last().map(String::as_str));
            let leaves = if keyed {
                vec![Value::Object(Default::default())]
            } else {
                leaf_values(path.last().map(String::as_str).unwrap_or(""), self.params)
            };
            for leaf in leaves {
                if self.evaluations >= self.budget {
                    break;
                }
                let built = path[depth + 1..].iter().rev().fold(leaf, |v, t| {
                    let mut m = serde_json::Map::new();
                    m.insert(t.clone(), v);
                    Value::Object(m)
                });
                let mut with = map.clone();
                with.insert(path[depth].clone(), built);
                match self.verdict(&existing, Some(&Value::Object(with))) {
                    Verdict::Clean => return Some((existing, missing_path(&path[depth..]))),
                    // One of several keys the constraint requires: inserting it changes the
                    // message ("a, b" -> "b") and names only a part of what is missing.
                    Verdict::Consequence if !keyed_leaf => {
                        fallback.get_or_insert_with(|| (existing.clone(), missing_path(&path[depth..])));
                    }
                    Verdict::Consequence => {
                        if !partial.contains(&(depth, path.clone())) {
                            partial.push((depth, path.clone()));
                        }
                    }
                    Verdict::Kept => {}
                }
            }
        }
        if fallback.is_none() {
            if let Some((depth, path)) = partial.first() {
                // A few evaluations of its own: the keys were found, only their sum is left.
                self.budget = self.budget.max(self.evaluations) + ALL_KEYS_BUDGET;
                return self.all_keys(root, pointer, *depth, &path[..path.len() - 1], &partial);
            }
        }
        fallback
    }

    /// Several keys the constraint requires are missing from one map (`annotations` without
    /// `a8r.io/owner` and `a8r.io/runbook`): all of them inserted at once. Names the map when it
    /// is missing itself, else the first key.
    fn all_keys(
        &mut self,
        root: &Value,
        pointer: &str,
        depth: usize,
        parent: &[String],
        partial: &[(usize, Vec<String>)],
    ) -> Option<(String, String)> {
        let keys: Vec<&String> = partial
            .iter()
            .filter(|(d, p)| *d == depth && p.len() == parent.len() + 1 && p.starts_with(parent))
            .filter_map(|(_, p)| p.last())
            .collect();
        // `depth` names of the map's path exist: the map is missing (below `existing`) or is there.
        let existing = parent[..depth].iter().fold(pointer.to_string(), |p, t| pointer_push(&p, t));
        let Some(Value::Object(map)) = root.pointer(&existing) else { return None };
        let named = if depth < parent.len() {
            missing_path(&parent[depth..])
        } else {
            missing_path(&[keys.first()?.to_string()])
        };
        let mut values = vec![Value::String("guardrail".into())];
        values.extend(samples(self.params));
        let mut fallback = None;
        for value in values {
            let filled: serde_json::Map<String, Value> = keys.iter().map(|k| (k.to_string(), value.clone())).collect();
            let mut with = map.clone();
            match parent.get(depth) {
                Some(first) => {
                    let built = parent[depth + 1..].iter().rev().fold(Value::Object(filled), |v, t| {
                        let mut m = serde_json::Map::new();
                        m.insert(t.clone(), v);
                        Value::Object(m)
                    });
                    with.insert(first.clone(), built);
                }
                None => with.extend(filled),
            }
            match self.verdict(&existing, Some(&Value::Object(with))) {
                Verdict::Clean => return Some((existing, named)),
                Verdict::Consequence => {
                    fallback.get_or_insert_with(|| (existing.clone(), named.clone()));
                }
                Verdict::Kept => {}
            }
        }
        fallback
    }
}

/// Paths the policy reads that `pointer`'s object lacks, each with how many of its leading
/// names exist: deepest existing part first, so `securityContext.capabilities.drop` is tried
/// under an existing `securityContext` before `capabilities.drop` at the container itself.
fn missing_candidates(
    root: &Value,
    pointer: &str,
    reads: &[Vec<String>],
    params: &[Value],
) -> Vec<(usize, Vec<String>)> {
    let Some(node) = root.pointer(pointer) else { return Vec::new() };
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    // A map the policy reads by a key from its parameters (`labels[key]`): the parameters' strings
    // are the keys it may lack.
    let keys: Vec<&str> = params
        .iter()
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() < 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c)))
        .collect();
    // The map may be missing too (a Namespace without `labels`), and the policy may read it
    // through a variable (`variables.anyObject.metadata.labels`): every tail of the chain whose
    // parent is an object here.
    let mut chains: Vec<Vec<String>> = reads.to_vec();
    for chain in reads {
        for start in 0..chain.len() {
            let tail = &chain[start..];
            let parent = tail[..tail.len() - 1].iter().try_fold(node, |at, t| at.get(t));
            let lacks: Vec<&&str> = match (parent, parent.and_then(|p| p.get(&tail[tail.len() - 1]))) {
                (Some(_), Some(Value::Object(map))) => keys.iter().filter(|k| !map.contains_key(**k)).collect(),
                (Some(Value::Object(_)), None) => keys.iter().collect(),
                _ => continue,
            };
            for key in lacks.into_iter().take(4) {
                let longer: Vec<String> = tail.iter().cloned().chain(std::iter::once(key.to_string())).collect();
                if !chains.contains(&longer) {
                    chains.push(longer);
                }
            }
        }
    }
    for chain in &chains {
        for start in 0..chain.len() {
            let path = &chain[start..];
            let mut at = node;
            let mut depth = 0;
            while depth < path.len() {
                match at.get(&path[depth]) {
                    Some(next) => {
                        at = next;
                        depth += 1;
                    }
                    None => break,
                }
            }
            let fits = depth < path.len() && matches!(at, Value::Object(_));
            if fits && !out.iter().any(|(_, p)| p == path) {
                out.push((depth, path.to_vec()));
            }
        }
    }
    // Deepest existing part first, then the shortest missing part, then the policy's order.
    out.sort_by_key(|(depth, path)| (std::cmp::Reverse(*depth), path.len() - depth));
    out
}

/// Values to try for a missing field, by its name; then strings the constraint's regular
/// expressions accept (a required label whose value must match one).
fn leaf_values(name: &str, params: &[Value]) -> Vec<Value> {
    use serde_json::json;
    match name {
        "drop" => vec![json!(["ALL"])],
        "add" => vec![json!([])],
        "cpu" => vec![json!("100m")],
        "memory" | "ephemeral-storage" => vec![json!("64Mi")],
        "limits" | "requests" => vec![json!({"cpu": "100m", "memory": "64Mi"})],
        _ => {
            let mut out = vec![json!(true), json!(false), json!("guardrail"), json!({}), json!(1)];
            // An annotation or label (a key with a domain or a path) holds strings: `"false"` is
            // what `kubernetes.io/ingress.allow-http` must be, not `false`.
            if name.contains(['/', '.']) {
                out.extend([json!("false"), json!("true")]);
            }
            out.extend(samples(params));
            out
        }
    }
}
