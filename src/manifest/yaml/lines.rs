//! Positions in a YAML document: serde-saphyr's byte offsets (or its YAML line and column, where a
//! span has no offset) turned into the 1-based lines and character columns findings point at.

use crate::manifest::node::{Pos, Span};

/// Maps serde-saphyr locations (relative to a document chunk) to file positions. Columns count
/// characters: a prefix count per 64-byte block keeps each lookup constant, so a one-line 8 MiB
/// document costs no more than a many-line one.
pub(super) struct LineIndex {
    line_starts: Vec<usize>,
    line_offset: u32,
    /// Characters before each 64-byte block (empty when the text is ASCII: bytes are characters).
    block_chars: Vec<u32>,
}

const BLOCK: usize = 64;

impl LineIndex {
    pub(super) fn new(text: &str, line_offset: u32) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let mut block_chars = Vec::new();
        if !text.is_ascii() {
            let mut count = 0u32;
            for block in text.as_bytes().chunks(BLOCK) {
                block_chars.push(count);
                count += block.iter().filter(|b| (**b as i8) >= -0x40).count() as u32;
            }
        }
        LineIndex { line_starts, line_offset, block_chars }
    }

    /// Characters in `text[..byte]`.
    pub(super) fn chars_before(&self, text: &str, byte: usize) -> usize {
        if self.block_chars.is_empty() {
            return byte;
        }
        let block = byte / BLOCK;
        let Some(&before) = self.block_chars.get(block) else {
            return text.chars().count();
        };
        let rest = &text.as_bytes()[block * BLOCK..byte];
        before as usize + rest.iter().filter(|b| (**b as i8) >= -0x40).count()
    }

    pub(super) fn pos_of_byte(&self, text: &str, byte: usize) -> Pos {
        let byte = byte.min(text.len());
        let line = match self.line_starts.binary_search(&byte) {
            Ok(l) => l,
            Err(l) => l - 1,
        };
        let start = self.line_starts[line];
        let column = self.chars_before(text, byte) - self.chars_before(text, start);
        Pos { line: line as u32 + 1 + self.line_offset, column: column as u32 + 1 }
    }

    pub(super) fn span_of(&self, loc: &serde_saphyr::Location, text: &str) -> Span {
        let span = loc.span();
        match (span.byte_offset(), span.byte_len()) {
            (Some(offset), Some(len)) => {
                let start = self.pos_of_byte(text, offset as usize);
                let mut end = self.pos_of_byte(text, (offset + len) as usize);
                if end <= start {
                    end = Pos { line: start.line, column: start.column + 1 };
                }
                Span { start, end }
            }
            _ => {
                // serde-saphyr counts lines as YAML does (a lone `\r` breaks a line too); findings
                // count `\n` as editors and forges do, and must not point past the file's last line.
                let byte = yaml_line_column_byte(text, loc.line().max(1) as usize, loc.column().max(1) as usize);
                let start = self.pos_of_byte(text, byte);
                Span { start, end: Pos { line: start.line, column: start.column + 1 } }
            }
        }
    }

    pub(super) fn slice<'t>(&self, loc: &serde_saphyr::Location, text: &'t str) -> Option<&'t str> {
        let span = loc.span();
        let offset = span.byte_offset()? as usize;
        let len = span.byte_len()? as usize;
        text.get(offset..offset + len)
    }
}

/// The byte at a 1-based YAML line and column (`\r\n`, `\r` and `\n` break lines; columns count
/// characters), or the end of the text when it has no such place.
pub(super) fn yaml_line_column_byte(text: &str, line: usize, column: usize) -> usize {
    let mut chars = text.char_indices().peekable();
    let mut current = 1;
    while current < line {
        match chars.next() {
            None => return text.len(),
            Some((_, '\n')) => current += 1,
            Some((_, '\r')) => {
                chars.next_if(|(_, c)| *c == '\n');
                current += 1;
            }
            Some(_) => {}
        }
    }
    let mut byte = chars.peek().map_or(text.len(), |(i, _)| *i);
    for (i, c) in chars.take(column - 1) {
        if c == '\n' || c == '\r' {
            break;
        }
        byte = i + c.len_utf8();
    }
    byte
}
