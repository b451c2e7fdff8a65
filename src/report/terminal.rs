//! Text from manifests, policies and file names, made safe to print on a terminal. A manifest is
//! written by whoever opened the pull request: an ANSI or OSC sequence in a label value would otherwise
//! recolour the report, move the cursor over earlier lines, set the window title or plant a hyperlink,
//! and Unicode bidirectional controls would reorder what the reader sees ("Trojan Source"). Each such
//! character is shown as a visible escape instead (`\x1b`, `\u{202e}`).

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as it is. Tab and newline are layout, not control, and the
/// renderers handle them; everything else in C0, DEL, C1 and the bidirectional controls is escaped.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character written as an escape; borrowed when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// Like `escape`, for one-line contexts (a file name, a label): newlines and tabs are escaped too.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) || c == '\n' || c == '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => push_escaped(&mut out, c),
        }
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    if !is_unsafe(c) {
        out.push(c);
    } else if (c as u32) < 0x80 {
        out.push_str(&format!("\\x{:02x}", c as u32));
    } else {
        out.push_str(&format!("\\u{{{:x}}}", c as u32));
    }
}

/// Terminal cells `c` takes once escaped (a tab is expanded to `tab_width` by the caller).
pub fn cells(c: char, tab_width: usize) -> usize {
    if c == '\t' {
        tab_width
    } else if is_unsafe(c) {
        let mut s = String::new();
        push_escaped(&mut s, c);
        s.len()
    } else {
        1
    }
}
