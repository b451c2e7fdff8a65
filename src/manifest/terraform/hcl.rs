//! One parsed `.tf` / `.tfvars` file: hcl-edit's syntax tree plus a line index, so that any
//! expression's byte range becomes a `Span` (1-based line, column in characters).

use std::ops::Range;
use std::sync::Arc;

use hcl_edit::structure::Body;

use crate::manifest::node::{Pos, Span};

/// Byte offset -> line/column for one text, in time independent of the line's length: the
/// characters before every 64th byte are counted once, so a column is a lookup plus at most 63
/// bytes (a 600 KB one-line file costs no more per position than a short one).
#[derive(Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
    /// Characters before byte `64 * i`.
    chars_before: Vec<u32>,
}

const STRIDE: usize = 64;

fn is_char_start(b: u8) -> bool {
    (b & 0xC0) != 0x80
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let mut chars_before = Vec::with_capacity(text.len() / STRIDE + 1);
        let mut count = 0u32;
        for chunk in text.as_bytes().chunks(STRIDE) {
            chars_before.push(count);
            count += chunk.iter().filter(|b| is_char_start(**b)).count() as u32;
        }
        chars_before.push(count);
        LineIndex { starts, chars_before }
    }

    /// Characters in `text[..byte]`.
    fn chars_to(&self, text: &str, byte: usize) -> usize {
        let block = byte / STRIDE;
        let base = self.chars_before.get(block).copied().unwrap_or(0) as usize;
        base + text.as_bytes()[block * STRIDE..byte].iter().filter(|b| is_char_start(**b)).count()
    }

    pub fn pos(&self, text: &str, byte: usize) -> Pos {
        let byte = byte.min(text.len());
        let line = self.starts.partition_point(|&s| s <= byte).saturating_sub(1);
        let start = self.starts[line];
        let column = self.chars_to(text, byte) - self.chars_to(text, start);
        Pos { line: line as u32 + 1, column: column as u32 + 1 }
    }

    pub fn span(&self, text: &str, range: Range<usize>) -> Span {
        Span::new(self.pos(text, range.start), self.pos(text, range.end))
    }
}

/// A parsed HCL file.
#[derive(Debug)]
pub struct HclFile {
    pub name: Arc<str>,
    pub text: Arc<str>,
    pub lines: LineIndex,
    pub body: Body,
}

impl HclFile {
    /// The span of a syntax node (hcl-edit keeps byte ranges for everything the parser made).
    pub fn span_of(&self, node: &impl hcl_edit::Span) -> Span {
        match node.span() {
            Some(range) => self.lines.span(&self.text, range),
            None => Span::at(1, 1),
        }
    }

    /// The source text of a syntax node, for messages (`var.image`, `data.x.y`).
    pub fn text_of(&self, node: &impl hcl_edit::Span) -> String {
        node.span().and_then(|r| self.text.get(r)).map(|s| s.trim().to_string()).unwrap_or_default()
    }
}

/// A syntax error, at the place the parser stopped.
#[derive(Debug)]
pub struct SyntaxError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Parses on a large stack: hcl-edit recurses per nesting level, and hostile input must not reach
/// the guard page.
pub fn parse(name: Arc<str>, text: Arc<str>) -> Result<HclFile, SyntaxError> {
    let parsed = crate::manifest::yaml::on_large_stack(|| {
        // hcl-edit recurses without a depth limit: refuse absurd nesting before it sees the text.
        if nesting_depth(&text) > 200 {
            return Err(SyntaxError { line: 1, column: 1, message: "nested more than 200 levels deep".into() });
        }
        hcl_edit::parser::parse_body(&text).map_err(|e| SyntaxError {
            line: e.location().line() as u32,
            column: e.location().column() as u32,
            message: e.message().to_string(),
        })
    })?;
    let lines = LineIndex::new(&text);
    Ok(HclFile { name, text, lines, body: parsed })
}

/// Deepest bracket nesting (strings and comments included: an over-estimate is harmless).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in text.bytes() {
        match b {
            b'{' | b'[' | b'(' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}
