//! The bounds of one Terraform load: instances in total (across every module call), evaluation
//! steps, collection cells and string bytes, and how deep evaluation, templates and modules nest.
//! An author controls the configuration, so every bound is a deny finding at the place it was
//! hit, naming the bound; past it, values are unknown and nothing more is expanded.

use std::cell::{Cell, RefCell};

/// Most instances one `count` / `for_each` makes.
pub const MAX_INSTANCES: usize = 1000;
/// Most resource and module instances of one root module, all levels together.
pub const MAX_TOTAL_INSTANCES: usize = 5_000;
/// How deep modules may call modules.
pub const MAX_MODULE_DEPTH: usize = 8;
/// Expressions evaluated for one root module.
pub const MAX_STEPS: usize = 2_000_000;
/// List elements and map entries built for one root module.
pub const MAX_CELLS: usize = 1_000_000;
/// Characters in one computed string.
pub const MAX_STRING: usize = 4 * 1024 * 1024;
/// Elements in one computed list or map.
pub const MAX_COLLECTION: usize = 100_000;
/// Nested evaluation (a local that uses a local that uses a local…).
pub const MAX_EVAL_DEPTH: usize = 400;
/// `templatefile()` calls inside `templatefile()` calls.
pub const MAX_TEMPLATE_DEPTH: usize = 8;

/// Which bound was hit; each is reported once per load, where it was first hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    TotalInstances,
    Steps,
    Cells,
    String,
    Collection,
    EvalDepth,
    TemplateDepth,
}

impl Bound {
    pub fn describe(self) -> String {
        match self {
            Bound::TotalInstances => format!(
                "more than {MAX_TOTAL_INSTANCES} resource and module instances in total (guardrail's bound on instances); the rest were not checked"
            ),
            Bound::Steps => format!(
                "evaluating this configuration takes more than {MAX_STEPS} steps (guardrail's evaluation bound); the rest was not evaluated"
            ),
            Bound::Cells => format!(
                "this configuration builds more than {MAX_CELLS} list elements and map entries (guardrail's collection bound); the rest was not evaluated"
            ),
            Bound::String => {
                format!("this string would be longer than {MAX_STRING} characters (guardrail's string bound); it was not built")
            }
            Bound::Collection => format!(
                "this collection would have more than {MAX_COLLECTION} elements (guardrail's collection bound); it was not built"
            ),
            Bound::EvalDepth => format!(
                "evaluation nests more than {MAX_EVAL_DEPTH} levels deep here (guardrail's nesting bound); the value was not evaluated"
            ),
            Bound::TemplateDepth => format!(
                "templatefile() nests more than {MAX_TEMPLATE_DEPTH} levels deep here (guardrail's template recursion bound); it was not rendered"
            ),
        }
    }
}

/// Shared by every module context of one root module.
#[derive(Debug, Default)]
pub struct Budget {
    instances: Cell<usize>,
    steps: Cell<usize>,
    cells: Cell<usize>,
    pub depth: Cell<usize>,
    pub templates: Cell<usize>,
    /// Set once the step or cell bound is hit: evaluation stops everywhere.
    exhausted: Cell<bool>,
    reported: RefCell<Vec<Bound>>,
}

impl Budget {
    pub fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    /// One more expression; false once the step bound is passed.
    pub fn step(&self) -> Result<(), Bound> {
        if self.exhausted.get() {
            return Err(Bound::Steps);
        }
        let n = self.steps.get() + 1;
        self.steps.set(n);
        if n > MAX_STEPS {
            self.exhausted.set(true);
            return Err(Bound::Steps);
        }
        Ok(())
    }

    /// `n` more list elements / map entries.
    pub fn cells(&self, n: usize) -> Result<(), Bound> {
        if n > MAX_COLLECTION {
            return Err(Bound::Collection);
        }
        let total = self.cells.get() + n;
        self.cells.set(total);
        if total > MAX_CELLS {
            self.exhausted.set(true);
            return Err(Bound::Cells);
        }
        Ok(())
    }

    /// A copy of a value of `weight` (see `weight`): counted like new cells, without the
    /// per-collection bound.
    pub fn weigh(&self, weight: usize) -> Result<(), Bound> {
        let total = self.cells.get().saturating_add(weight);
        self.cells.set(total);
        if total > MAX_CELLS {
            self.exhausted.set(true);
            return Err(Bound::Cells);
        }
        Ok(())
    }

    /// `n` more instances (resources or module calls); false past the total bound.
    pub fn instances(&self, n: usize) -> Result<(), Bound> {
        let total = self.instances.get() + n;
        if total > MAX_TOTAL_INSTANCES {
            self.instances.set(MAX_TOTAL_INSTANCES);
            return Err(Bound::TotalInstances);
        }
        self.instances.set(total);
        Ok(())
    }

    /// Instances still allowed.
    pub fn instances_left(&self) -> usize {
        MAX_TOTAL_INSTANCES - self.instances.get()
    }

    /// True the first time a bound is reported (each bound gets one finding per load).
    pub fn first_report(&self, bound: Bound) -> bool {
        let mut reported = self.reported.borrow_mut();
        if reported.contains(&bound) {
            return false;
        }
        reported.push(bound);
        true
    }
}

pub fn check_string(s: &str) -> Result<(), Bound> {
    if s.len() > MAX_STRING {
        Err(Bound::String)
    } else {
        Ok(())
    }
}

/// What a copy of `node` costs: one cell per node, and one per 64 bytes of string.
pub fn weight(node: &crate::manifest::node::Node) -> usize {
    use crate::manifest::node::NodeKind;
    let mut total = 0usize;
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        total += 1;
        match &n.kind {
            NodeKind::Str(s) => total += s.len() / 64,
            NodeKind::Seq(items) => stack.extend(items),
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    total += k.len() / 64;
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    total
}
