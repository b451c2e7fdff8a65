//! Evaluating Terraform expressions statically. Literals, variables with a default or a tfvars value,
//! locals, `each`/`count`, conditionals, `for` expressions and a set of functions are computed; what
//! cannot be known (`data.*`, resource attributes, variables without a value) becomes a marked
//! placeholder string, `${unknown: <expression>}`, never an invented value.

use std::sync::Arc;

use hcl_edit::expr::{BinaryOperator, Expression, ObjectKey, TraversalOperator, UnaryOperator};

use super::budget::{check_string, Bound, MAX_EVAL_DEPTH};
use super::hcl::HclFile;
use super::modules::ModuleCtx;
use super::provenance::Sources;
use crate::manifest::node::{Node, NodeKind, Pos, Span};

/// Marks a value guardrail cannot know; the rest of the text is the expression.
pub const UNKNOWN: &str = "${unknown: ";

/// Where the characters of a string came from (for strings read by `file()` / `templatefile()`
/// or written in a heredoc), so that YAML decoded from it points back at its source lines.
#[derive(Debug)]
pub struct TextMap {
    pub file: Arc<str>,
    /// Per line of the string, the source position of each character; `None`: the string is the
    /// file's text itself.
    pub lines: Option<Vec<Vec<Pos>>>,
}

impl TextMap {
    pub fn map(&self, pos: Pos) -> Pos {
        let Some(lines) = &self.lines else { return pos };
        let Some(line) = lines.get(pos.line.saturating_sub(1) as usize).or(lines.last()) else { return pos };
        let col = (pos.column.saturating_sub(1) as usize).min(line.len().saturating_sub(1));
        line.get(col).copied().unwrap_or(pos)
    }
}

/// A value with the spans of where it was written, in `file`.
#[derive(Clone, Debug)]
pub struct Val {
    pub node: Node,
    pub file: Arc<str>,
    pub text: Option<Arc<TextMap>>,
    /// `jsonencode` / `yamlencode` results remember the value they encode, spans and all.
    pub encoded: Option<Box<Val>>,
}

impl Val {
    pub fn new(kind: NodeKind, span: Span, file: &Arc<str>) -> Val {
        Val { node: Node::new(span, kind), file: file.clone(), text: None, encoded: None }
    }
    pub fn unknown(expression: &str, span: Span, file: &Arc<str>) -> Val {
        Val::new(NodeKind::Str(placeholder(expression)), span, file)
    }
    pub fn is_unknown(&self) -> bool {
        contains_unknown(&self.node)
    }
    pub fn as_str(&self) -> Option<String> {
        scalar_text(&self.node)
    }
    /// The node, with spans from another file replaced by `span` (a value read from elsewhere is
    /// reported where this file uses it). Parts that carry their file (a module argument's
    /// value) keep their spans: they are reported where the caller wrote them.
    pub fn adopt(self, file: &Arc<str>, span: Span) -> Node {
        if &self.file == file {
            self.node
        } else {
            respan(self.node, span)
        }
    }
}

/// The text standing for an unknown value: its expression with whitespace collapsed, cut at 80
/// characters. Only those are read, however long the expression (a heredoc in each of thousands
/// of module instances read in full was an eighth of a load's time).
pub fn placeholder(expression: &str) -> String {
    let mut collapsed = expression
        .split_whitespace()
        .enumerate()
        .flat_map(|(i, w)| (i > 0).then_some(' ').into_iter().chain(w.chars()));
    let short: String = collapsed.by_ref().take(80).collect();
    let more = if collapsed.next().is_some() { "…" } else { "" };
    format!("{UNKNOWN}{short}{more}}}")
}

pub fn contains_unknown(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Str(s) => s.contains(UNKNOWN),
        NodeKind::Seq(items) => items.iter().any(contains_unknown),
        NodeKind::Map(entries) => entries.iter().any(|(k, v)| k.contains(UNKNOWN) || contains_unknown(v)),
        _ => false,
    }
}

pub fn scalar_text(node: &Node) -> Option<String> {
    match &node.kind {
        NodeKind::Str(s) => Some(s.clone()),
        NodeKind::Int(i) => Some(i.to_string()),
        NodeKind::UInt(u) => Some(u.to_string()),
        NodeKind::Float(f) => Some(f.to_string()),
        NodeKind::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn respan(mut node: Node, span: Span) -> Node {
    if node.file.is_some() {
        return node;
    }
    node.span = span;
    if node.key_span.is_some() {
        node.key_span = Some(span);
    }
    node.kind = match node.kind {
        NodeKind::Seq(items) => NodeKind::Seq(items.into_iter().map(|n| respan(n, span)).collect()),
        NodeKind::Map(entries) => NodeKind::Map(entries.into_iter().map(|(k, v)| (k, respan(v, span))).collect()),
        other => other,
    };
    node
}

/// Marks every part of a value that does not carry its file yet as written in `file` (a module
/// argument, marked in the caller), so the module that uses it reports it there.
pub fn mark(node: &mut Node, file: &Arc<str>) {
    if node.file.is_none() {
        node.file = Some(file.clone());
    }
    match &mut node.kind {
        NodeKind::Seq(items) => items.iter_mut().for_each(|n| mark(n, file)),
        NodeKind::Map(entries) => entries.iter_mut().for_each(|(_, n)| mark(n, file)),
        _ => {}
    }
}

/// Sets the span of the key that holds `node` in `file`, unless the node is written in another
/// file (a module argument keeps the caller's key).
pub fn set_key(node: &mut Node, file: &Arc<str>, key: Span) {
    if node.file.as_ref().is_none_or(|f| f == file) {
        node.key_span = Some(key);
    }
}

/// What an expression can see: its module, and names bound by `for`, `each`, `count`, `dynamic`
/// blocks or `templatefile` variables.
pub struct Scope<'a> {
    pub module: &'a ModuleCtx<'a>,
    pub bindings: Vec<(String, Val)>,
    /// `templatefile` templates see only their variables (and functions).
    pub template_only: bool,
}

impl<'a> Scope<'a> {
    pub fn new(module: &'a ModuleCtx<'a>) -> Self {
        Scope { module, bindings: Vec::new(), template_only: false }
    }

    pub fn with(&self, extra: Vec<(String, Val)>) -> Scope<'a> {
        let mut bindings = self.bindings.clone();
        bindings.extend(extra);
        Scope { module: self.module, bindings, template_only: self.template_only }
    }

    fn binding(&self, name: &str) -> Option<&Val> {
        self.bindings.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Evaluates within the root module's bounds: past one, the value is unknown and the bound
    /// is a deny finding here.
    pub fn eval(&self, file: &HclFile, expr: &Expression) -> Val {
        let budget = &self.module.budget;
        let depth = budget.depth.get();
        let bound = match budget.step() {
            Err(bound) => Some(bound),
            Ok(()) if depth >= MAX_EVAL_DEPTH => Some(Bound::EvalDepth),
            Ok(()) => None,
        };
        if let Some(bound) = bound {
            return self.over(file, file.span_of(expr), bound);
        }
        budget.depth.set(depth + 1);
        let value = self.eval_here(file, expr);
        budget.depth.set(depth);
        value
    }

    /// A bound was hit at `span`: reported there, and the value is unknown.
    pub fn over(&self, file: &HclFile, span: Span, bound: Bound) -> Val {
        self.module.over(&file.name, span, bound);
        Val::unknown("a value over guardrail's bounds", span, &file.name)
    }

    /// Counts `n` new elements against the bounds; `Some(unknown)` when over one.
    pub fn cells(&self, file: &HclFile, span: Span, n: usize) -> Option<Val> {
        self.module.budget.cells(n).err().map(|bound| self.over(file, span, bound))
    }

    /// A copy of a bound value, counted against the bounds.
    fn copy(&self, file: &HclFile, span: Span, val: &Val) -> Val {
        match self.module.budget.weigh(super::budget::weight(&val.node)) {
            Ok(()) => val.clone(),
            Err(bound) => self.over(file, span, bound),
        }
    }

    /// A string result, unless it is longer than the bound.
    pub fn string(&self, file: &HclFile, span: Span, s: String) -> Val {
        match check_string(&s) {
            Ok(()) => Val::new(NodeKind::Str(s), span, &file.name),
            Err(bound) => self.over(file, span, bound),
        }
    }

    /// An expression whose inputs are known but which guardrail cannot evaluate: unknown, with a
    /// warning naming it (so that nothing it decides passes silently).
    pub fn cannot(&self, file: &HclFile, expr: &impl hcl_edit::Span, why: &str) -> Val {
        let span = file.span_of(expr);
        let text = placeholder(&file.text_of(expr));
        let text = &text[UNKNOWN.len()..text.len() - 1];
        self.module.warn(
            file,
            span,
            format!("guardrail cannot evaluate `{text}` ({why}); what depends on it was not checked"),
        );
        Val::unknown(text, span, &file.name)
    }

    fn eval_here(&self, file: &HclFile, expr: &Expression) -> Val {
        let span = file.span_of(expr);
        let name = &file.name;
        match expr {
            Expression::Null(_) => Val::new(NodeKind::Null, span, name),
            Expression::Bool(b) => Val::new(NodeKind::Bool(*b.value()), span, name),
            Expression::Number(n) => {
                let kind = match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => NodeKind::Int(i),
                    (None, Some(f)) => NodeKind::Float(f),
                    _ => NodeKind::Null,
                };
                Val::new(kind, span, name)
            }
            Expression::String(s) => Val::new(NodeKind::Str(s.value().to_string()), span, name),
            Expression::Array(items) => {
                if let Some(over) = self.cells(file, span, items.len()) {
                    return over;
                }
                let nodes = items.iter().map(|e| self.eval(file, e).adopt(name, file.span_of(e))).collect();
                Val::new(NodeKind::Seq(nodes), span, name)
            }
            Expression::Object(object) => {
                if let Some(over) = self.cells(file, span, object.len()) {
                    return over;
                }
                let mut entries: Vec<(String, Node)> = Vec::new();
                for (key, value) in object.iter() {
                    let key_span = file.span_of(key);
                    let key_text = match key {
                        ObjectKey::Ident(ident) => ident.as_str().to_string(),
                        ObjectKey::Expression(e) => {
                            let k = self.eval(file, e);
                            k.as_str().unwrap_or_else(|| placeholder(&file.text_of(e)))
                        }
                    };
                    let mut node = self.eval(file, value.expr()).adopt(name, file.span_of(value.expr()));
                    set_key(&mut node, name, key_span);
                    entries.retain(|(k, _)| k != &key_text);
                    entries.push((key_text, node));
                }
                Val::new(NodeKind::Map(entries), span, name)
            }
            Expression::StringTemplate(t) => super::template::render_in(self, file, t.iter(), span),
            Expression::HeredocTemplate(h) => super::template::render_in(self, file, h.template.iter(), span),
            Expression::Parenthesis(p) => self.eval(file, p.inner()),
            Expression::Variable(v) => match self.binding(v.as_str()) {
                Some(val) => self.copy(file, span, val),
                None => Val::unknown(v.as_str(), span, name),
            },
            Expression::Conditional(c) => {
                let cond = self.eval(file, &c.cond_expr);
                // The branch taken was chosen by the condition's caller argument, if any.
                let chosen = Sources::of([&cond.node]);
                match cond.node.kind {
                    NodeKind::Bool(true) => chosen.place(self.eval(file, &c.true_expr)),
                    NodeKind::Bool(false) => chosen.place(self.eval(file, &c.false_expr)),
                    _ if cond.is_unknown() => chosen.place(Val::unknown(&file.text_of(expr), span, name)),
                    _ => self.cannot(file, &c.cond_expr, "the condition is not a bool"),
                }
            }
            Expression::FuncCall(call) => super::funcs::call(self, file, call, span),
            Expression::Traversal(t) => self.traverse(file, expr, &t.expr, &t.operators, span),
            Expression::UnaryOp(op) => {
                let v = self.eval(file, &op.expr);
                let from = Sources::of([&v.node]);
                let kind = match (op.operator.value(), &v.node.kind) {
                    (UnaryOperator::Not, NodeKind::Bool(b)) => NodeKind::Bool(!b),
                    (UnaryOperator::Neg, NodeKind::Int(i)) => NodeKind::Int(-i),
                    (UnaryOperator::Neg, NodeKind::Float(f)) => NodeKind::Float(-f),
                    _ if v.is_unknown() => return from.place(Val::unknown(&file.text_of(expr), span, name)),
                    _ => return self.cannot(file, expr, "the operand has the wrong type"),
                };
                from.place(Val::new(kind, span, name))
            }
            Expression::BinaryOp(op) => {
                let (l, r) = (self.eval(file, &op.lhs_expr), self.eval(file, &op.rhs_expr));
                let from = Sources::of([&l.node, &r.node]);
                if l.is_unknown() || r.is_unknown() {
                    return from.place(Val::unknown(&file.text_of(expr), span, name));
                }
                match binary(*op.operator.value(), &l.node, &r.node) {
                    Some(kind) => from.place(Val::new(kind, span, name)),
                    None => self.cannot(file, expr, "the operands have the wrong types"),
                }
            }
            Expression::ForExpr(f) => self.for_expr(file, expr, f, span),
        }
    }

    fn traverse(
        &self,
        file: &HclFile,
        whole: &Expression,
        root: &Expression,
        ops: &[hcl_edit::Decorated<TraversalOperator>],
        span: Span,
    ) -> Val {
        let name = &file.name;
        let unknown = || Val::unknown(&file.text_of(whole), span, name);
        let attr = |i: usize| match ops.get(i).map(|o| o.value()) {
            Some(TraversalOperator::GetAttr(a)) => Some(a.as_str().to_string()),
            _ => None,
        };
        // The root is borrowed where it lives (a binding, a variable, a cached local): only the
        // part the traversal reaches is copied.
        let local;
        let owned;
        let (value, used): (Option<&Val>, usize) = match root {
            Expression::Variable(v) if self.binding(v.as_str()).is_some() => (self.binding(v.as_str()), 0),
            Expression::Variable(_) if self.template_only => (None, 0),
            Expression::Variable(v) => match (v.as_str(), attr(0)) {
                ("var", Some(a)) => (self.module.var_ref(&a), 1),
                ("local", Some(a)) => {
                    local = self.module.local_rc(&a);
                    (local.as_deref(), 1)
                }
                ("path", Some(a)) => {
                    owned = self.module.path(&a).map(|p| Val::new(NodeKind::Str(p), span, name));
                    (owned.as_ref(), 1)
                }
                ("terraform", Some(a)) if a == "workspace" => {
                    owned = Some(Val::new(NodeKind::Str("default".into()), span, name));
                    (owned.as_ref(), 1)
                }
                _ => (None, 0),
            },
            other => {
                owned = Some(self.eval(file, other));
                (owned.as_ref(), 0)
            }
        };
        let Some(value) = value else { return unknown() };
        if used == ops.len() {
            return self.copy(file, span, value);
        }
        self.walk(file, whole, &value.node, &value.file, &ops[used..], span)
    }

    /// Applies attribute, index and splat operators to a node of `source`, copying only the result.
    fn walk(
        &self,
        file: &HclFile,
        whole: &Expression,
        mut node: &Node,
        source: &Arc<str>,
        ops: &[hcl_edit::Decorated<TraversalOperator>],
        span: Span,
    ) -> Val {
        let name = &file.name;
        for (i, op) in ops.iter().enumerate() {
            if matches!(&node.kind, NodeKind::Str(s) if s.contains(UNKNOWN)) {
                return Val::unknown(&file.text_of(whole), span, name);
            }
            let key = match op.value() {
                TraversalOperator::GetAttr(a) => a.as_str().to_string(),
                TraversalOperator::Index(e) => {
                    let k = self.eval(file, e);
                    if k.is_unknown() {
                        return Val::unknown(&file.text_of(whole), span, name);
                    }
                    match (&k.node.kind, k.as_str()) {
                        (NodeKind::Float(f), _) if f.fract() == 0.0 => (*f as i64).to_string(),
                        (_, Some(k)) => k,
                        _ => return self.cannot(file, whole, "the index is not a string or number"),
                    }
                }
                TraversalOperator::LegacyIndex(i) => i.value().to_string(),
                TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => {
                    // `list[*].attr`: the rest applied to every element; null is an empty list,
                    // any other single value a list of itself.
                    let elements: Vec<&Node> = match &node.kind {
                        NodeKind::Seq(items) => items.iter().collect(),
                        NodeKind::Null => Vec::new(),
                        _ => vec![node],
                    };
                    if let Some(over) = self.cells(file, span, elements.len()) {
                        return over;
                    }
                    let mut out = Vec::with_capacity(elements.len());
                    for element in elements {
                        let v = self.walk(file, whole, element, source, &ops[i + 1..], span);
                        out.push(v.adopt(name, span));
                    }
                    return Val::new(NodeKind::Seq(out), span, name);
                }
            };
            match node.child(&key) {
                Some(child) => node = child,
                None if contains_unknown(node) => return Val::unknown(&file.text_of(whole), span, name),
                None => {
                    return self.cannot(file, whole, &format!("the value {} \"{key}\"", super::funcs::NO_ATTRIBUTE));
                }
            }
        }
        match self.module.budget.weigh(super::budget::weight(node)) {
            Ok(()) => Val { node: node.clone(), file: source.clone(), text: None, encoded: None },
            Err(bound) => self.over(file, span, bound),
        }
    }

    fn for_expr(&self, file: &HclFile, whole: &Expression, f: &hcl_edit::expr::ForExpr, span: Span) -> Val {
        let name = &file.name;
        let collection = self.eval(file, &f.intro.collection_expr);
        let Some(items) = iterate(&collection) else {
            if collection.is_unknown() {
                return Val::unknown(&file.text_of(whole), span, name);
            }
            return self.cannot(file, &f.intro.collection_expr, "it is not a list or map");
        };
        if let Some(over) = self.cells(file, span, items.len()) {
            return over;
        }
        let key_var = f.intro.key_var.as_ref().map(|k| k.as_str().to_string());
        let value_var = f.intro.value_var.as_str().to_string();
        let mut seq = Vec::new();
        let mut map: Vec<(String, Node)> = Vec::new();
        for (key, value) in items {
            if self.module.budget.exhausted() {
                return self.over(file, span, Bound::Steps);
            }
            let mut binds = vec![(value_var.clone(), value)];
            if let Some(k) = &key_var {
                binds.push((k.clone(), key));
            }
            let inner = self.with(binds);
            if let Some(cond) = &f.cond {
                match inner.eval(file, &cond.expr).node.kind {
                    NodeKind::Bool(true) => {}
                    NodeKind::Bool(false) => continue,
                    _ => return Val::unknown(&file.text_of(whole), span, name),
                }
            }
            let v = inner.eval(file, &f.value_expr);
            let v_span = file.span_of(&f.value_expr);
            match &f.key_expr {
                Some(k) => {
                    let Some(k) = inner.eval(file, k).as_str() else {
                        return Val::unknown(&file.text_of(whole), span, name);
                    };
                    let mut node = v.adopt(name, v_span);
                    set_key(&mut node, name, file.span_of(f.key_expr.as_ref().unwrap_or(&f.value_expr)));
                    map.retain(|(existing, _)| existing != &k);
                    map.push((k, node));
                }
                None => seq.push(v.adopt(name, v_span)),
            }
        }
        let kind = if f.key_expr.is_some() { NodeKind::Map(map) } else { NodeKind::Seq(seq) };
        Val::new(kind, span, name)
    }
}

/// The (key, value) pairs of a list or map; `None` when the collection is not known.
pub fn iterate(collection: &Val) -> Option<Vec<(Val, Val)>> {
    let file = &collection.file;
    let sub = |node: &Node| Val { node: node.clone(), file: file.clone(), text: None, encoded: None };
    match &collection.node.kind {
        NodeKind::Seq(items) if !items.iter().any(|i| matches!(&i.kind, NodeKind::Str(s) if s.contains(UNKNOWN))) => {
            Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (Val::new(NodeKind::Int(i as i64), n.span, file), sub(n)))
                    .collect(),
            )
        }
        NodeKind::Map(entries) if !entries.iter().any(|(k, _)| k.contains(UNKNOWN)) => Some(
            entries
                .iter()
                .map(|(k, n)| (Val::new(NodeKind::Str(k.clone()), n.key_span.unwrap_or(n.span), file), sub(n)))
                .collect(),
        ),
        _ => None,
    }
}

fn number(node: &Node) -> Option<f64> {
    match &node.kind {
        NodeKind::Int(i) => Some(*i as f64),
        NodeKind::UInt(u) => Some(*u as f64),
        NodeKind::Float(f) => Some(*f),
        NodeKind::Str(s) => s.parse().ok(),
        _ => None,
    }
}

fn num_kind(f: f64) -> NodeKind {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        NodeKind::Int(f as i64)
    } else {
        NodeKind::Float(f)
    }
}

fn binary(op: BinaryOperator, l: &Node, r: &Node) -> Option<NodeKind> {
    use BinaryOperator::*;
    let bools = || match (&l.kind, &r.kind) {
        (NodeKind::Bool(a), NodeKind::Bool(b)) => Some((*a, *b)),
        _ => None,
    };
    Some(match op {
        Eq => NodeKind::Bool(l.to_json() == r.to_json() || scalar_eq(l, r)),
        NotEq => NodeKind::Bool(!(l.to_json() == r.to_json() || scalar_eq(l, r))),
        And => bools().map(|(a, b)| NodeKind::Bool(a && b))?,
        Or => bools().map(|(a, b)| NodeKind::Bool(a || b))?,
        Plus => num_kind(number(l)? + number(r)?),
        Minus => num_kind(number(l)? - number(r)?),
        Mul => num_kind(number(l)? * number(r)?),
        Div => num_kind(number(l)? / number(r)?),
        Mod => num_kind(number(l)? % number(r)?),
        Less => NodeKind::Bool(number(l)? < number(r)?),
        LessEq => NodeKind::Bool(number(l)? <= number(r)?),
        Greater => NodeKind::Bool(number(l)? > number(r)?),
        GreaterEq => NodeKind::Bool(number(l)? >= number(r)?),
    })
}

/// Terraform converts between numbers and strings when comparing `"1" == 1`? No: it does not; but
/// numbers of different representation (1 and 1.0) are equal.
fn scalar_eq(l: &Node, r: &Node) -> bool {
    matches!((&l.kind, &r.kind), (NodeKind::Int(_) | NodeKind::Float(_), NodeKind::Int(_) | NodeKind::Float(_)))
        && number(l) == number(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placeholder_collapses_whitespace_and_cuts_at_80_characters() {
        assert_eq!(placeholder("  var.a\n  +\tvar.b "), "${unknown: var.a + var.b}");
        let eighty = "é".repeat(80);
        assert_eq!(placeholder(&eighty), format!("${{unknown: {eighty}}}"));
        assert_eq!(placeholder(&format!("{eighty} x")), format!("${{unknown: {eighty}…}}"));
        assert_eq!(placeholder(&format!("{eighty}y")), format!("${{unknown: {eighty}…}}"));
    }
}
