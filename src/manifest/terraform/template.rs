//! Terraform's template language (`${ … }`, `%{ if }`, `%{ for }`, `~` strip markers), for quoted
//! strings, heredocs and `templatefile()`. The rendered text keeps, for every character, the
//! position in the template it came from: literal text maps one-to-one, an interpolated value
//! maps to its `${`, so YAML decoded from the result points at template lines.

use std::sync::Arc;

use hcl_edit::template::{Directive, Element, Template};
use hcl_edit::Span as _;

use super::budget::{Bound, MAX_STRING};
use super::eval::{iterate, placeholder, scalar_text, Scope, TextMap, Val};
use super::hcl::{HclFile, LineIndex};
use super::provenance::Sources;
use crate::manifest::node::{NodeKind, Pos, Span};

/// Parses a template file (its text is the template, as `templatefile()` reads it).
pub fn parse_file(name: Arc<str>, text: Arc<str>) -> Result<(HclFile, Template), super::hcl::SyntaxError> {
    let template = crate::manifest::yaml::on_large_stack(|| hcl_edit::parser::parse_template(&text)).map_err(|e| {
        super::hcl::SyntaxError {
            line: e.location().line() as u32,
            column: e.location().column() as u32,
            message: e.message().to_string(),
        }
    })?;
    let lines = LineIndex::new(&text);
    Ok((HclFile { name, text, lines, body: Default::default() }, template))
}

/// Renders template elements written in `file`; `span` is the whole template's.
pub fn render_in<'e>(
    scope: &Scope<'_>,
    file: &HclFile,
    elements: impl Iterator<Item = &'e Element>,
    span: Span,
) -> Val {
    let elements: Vec<&Element> = elements.collect();
    // A plain `"${expr}"` is the expression's own value (a list, a map, a number…), as in Terraform.
    if let [Element::Interpolation(i)] = elements.as_slice() {
        return scope.eval(file, &i.expr);
    }
    let mut r = Renderer {
        scope,
        file,
        out: String::new(),
        lines: vec![Vec::new()],
        strip_next: false,
        sources: Sources::None,
    };
    match r.elements(&elements) {
        Ok(()) => {}
        Err(Stop::Over(bound)) => return scope.over(file, span, bound),
        Err(Stop::Unknown) => {
            let whole = file.text.get(span_range(file, &elements)).unwrap_or("template").to_string();
            return r.sources.place(Val::unknown(&whole, span, &file.name));
        }
    }
    let mut val = Val::new(NodeKind::Str(r.out), span, &file.name);
    val.text = Some(Arc::new(TextMap { file: file.name.clone(), lines: Some(r.lines) }));
    r.sources.place(val)
}

fn span_range(_file: &HclFile, elements: &[&Element]) -> std::ops::Range<usize> {
    let start = elements.first().and_then(|e| e.span()).map(|r| r.start).unwrap_or(0);
    let end = elements.last().and_then(|e| e.span()).map(|r| r.end).unwrap_or(start);
    start..end
}

/// Why rendering stopped: a condition or collection in the template is unknown (the whole text
/// is), or the text would pass a bound.
enum Stop {
    Unknown,
    Over(Bound),
}

struct Renderer<'s, 'f> {
    scope: &'s Scope<'s>,
    file: &'f HclFile,
    out: String,
    lines: Vec<Vec<Pos>>,
    strip_next: bool,
    /// The caller arguments interpolated so far (see `provenance`).
    sources: Sources,
}

impl Renderer<'_, '_> {
    fn push(&mut self, c: char, pos: Pos) {
        self.out.push(c);
        self.lines.last_mut().expect("one line").push(pos);
        if c == '\n' {
            self.lines.push(Vec::new());
        }
    }

    fn strip_before(&mut self, strip: bool) {
        if !strip {
            return;
        }
        while self.out.ends_with(char::is_whitespace) {
            let c = self.out.pop();
            if c == Some('\n') {
                self.lines.pop();
            }
            self.lines.last_mut().expect("one line").pop();
        }
    }

    fn elements(&mut self, elements: &[&Element]) -> Result<(), Stop> {
        for element in elements {
            self.element(element)?;
        }
        Ok(())
    }

    fn template(&mut self, template: &Template) -> Result<(), Stop> {
        let elements: Vec<&Element> = template.iter().collect();
        self.elements(&elements)
    }

    fn element(&mut self, element: &Element) -> Result<(), Stop> {
        match element {
            Element::Literal(lit) => {
                let range = lit.span().unwrap_or(0..0);
                let text: &str = lit.value();
                let text = if std::mem::take(&mut self.strip_next) { text.trim_start() } else { text };
                let skipped = lit.value().len() - text.len();
                let positions = align(self.file, range.start..range.end, lit.value());
                if self.out.len() + text.len() > MAX_STRING {
                    return Err(Stop::Over(Bound::String));
                }
                for (c, pos) in text.chars().zip(positions.into_iter().skip(lit.value()[..skipped].chars().count())) {
                    self.push(c, pos);
                }
            }
            Element::Interpolation(i) => {
                self.strip_before(i.strip.strip_start());
                let pos = self.file.span_of(element).start;
                let value = self.scope.eval(self.file, &i.expr);
                self.sources.add(&value.node);
                let text = match &value.node.kind {
                    NodeKind::Null => String::new(),
                    // A long unknown text is named by its expression instead, so that unknowns
                    // built from unknowns do not grow (a doubling chain past the string bound).
                    NodeKind::Str(s) if s.contains(super::eval::UNKNOWN) && s.len() > 200 => {
                        placeholder(&self.file.text_of(&i.expr))
                    }
                    _ => scalar_text(&value.node).unwrap_or_else(|| placeholder(&self.file.text_of(&i.expr))),
                };
                if self.out.len() + text.len() > MAX_STRING {
                    return Err(Stop::Over(Bound::String));
                }
                for c in text.chars() {
                    self.push(c, pos);
                }
                self.strip_next = i.strip.strip_end();
            }
            Element::Directive(d) => match d.as_ref() {
                Directive::If(d) => {
                    self.strip_before(d.if_expr.strip.strip_start());
                    self.strip_next = d.if_expr.strip.strip_end();
                    let cond = self.scope.eval(self.file, &d.if_expr.cond_expr);
                    self.sources.add(&cond.node);
                    match cond.node.kind {
                        NodeKind::Bool(true) => self.template(&d.if_expr.template)?,
                        NodeKind::Bool(false) => {
                            if let Some(e) = &d.else_expr {
                                self.strip_before(e.strip.strip_start());
                                self.strip_next = e.strip.strip_end();
                                self.template(&e.template)?;
                            }
                        }
                        _ => return Err(Stop::Unknown),
                    }
                    self.strip_before(d.endif_expr.strip.strip_start());
                    self.strip_next = d.endif_expr.strip.strip_end();
                }
                Directive::For(d) => {
                    let f = &d.for_expr;
                    self.strip_before(f.strip.strip_start());
                    let collection = self.scope.eval(self.file, &f.collection_expr);
                    self.sources.add(&collection.node);
                    let items = iterate(&collection).ok_or(Stop::Unknown)?;
                    if let Some(bound) = self.scope.module.budget.cells(items.len()).err() {
                        return Err(Stop::Over(bound));
                    }
                    for (key, value) in items {
                        if self.scope.module.budget.exhausted() {
                            return Err(Stop::Over(Bound::Steps));
                        }
                        self.strip_next = f.strip.strip_end();
                        let mut binds = vec![(f.value_var.as_str().to_string(), value)];
                        if let Some(k) = &f.key_var {
                            binds.push((k.as_str().to_string(), key));
                        }
                        let inner = self.scope.with(binds);
                        let mut r = Renderer {
                            scope: &inner,
                            file: self.file,
                            out: std::mem::take(&mut self.out),
                            lines: std::mem::take(&mut self.lines),
                            strip_next: self.strip_next,
                            sources: std::mem::take(&mut self.sources),
                        };
                        let result = r.template(&f.template);
                        r.strip_before(d.endfor_expr.strip.strip_start());
                        self.out = r.out;
                        self.lines = r.lines;
                        self.sources = r.sources;
                        result?;
                    }
                    self.strip_next = d.endfor_expr.strip.strip_end();
                }
            },
        }
        Ok(())
    }
}

/// Source positions for the characters of a literal whose text may differ from its source
/// (escapes decoded, heredoc indentation removed): each character is matched to the next equal
/// character of the source range, or to the current position when there is none.
fn align(file: &HclFile, range: std::ops::Range<usize>, literal: &str) -> Vec<Pos> {
    let source = file.text.get(range.clone()).unwrap_or("");
    let start = file.lines.pos(&file.text, range.start);
    let mut chars: Vec<(char, Pos)> = Vec::with_capacity(source.len());
    let mut pos = start;
    for c in source.chars() {
        chars.push((c, pos));
        if c == '\n' {
            pos = Pos { line: pos.line + 1, column: 1 };
        } else {
            pos.column += 1;
        }
    }
    let mut cursor = 0;
    let mut out = Vec::with_capacity(literal.len());
    for c in literal.chars() {
        // Look a short way ahead only: escapes and indentation are short.
        let found = chars[cursor.min(chars.len())..].iter().take(256).position(|(s, _)| *s == c);
        match found {
            Some(offset) => {
                out.push(chars[cursor + offset].1);
                cursor += offset + 1;
            }
            None => out.push(chars.get(cursor).map(|(_, p)| *p).unwrap_or(pos)),
        }
    }
    out
}
