//! Note bodies. GitLab runs a line that starts with `/` as a quick action (`/close`, `/merge`,
//! `/approve`...) when a note is created, even through the API and even for a bot: a policy message that
//! quotes a path such as `/etc/passwd` at the start of a line must not close the merge request. Such
//! lines get a Markdown escape (`\/`), which renders as the same `/`. Fenced code is left alone: GitLab
//! does not run quick actions inside it, and an escape there would show.
//!
//! Hidden markers (`<!-- guardrail:... -->`) let the bot find its own notes again on later runs and
//! before any retry of a write.

/// A hidden marker in a note body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Marker(pub String);

impl Marker {
    /// The marker of the one summary note of a merge request.
    pub fn summary() -> Marker {
        Marker("guardrail:summary".into())
    }

    /// The marker of a finding's discussion, by the finding's stable fingerprint.
    pub fn finding(fingerprint: &str) -> Marker {
        Marker(format!("guardrail:finding:{fingerprint}"))
    }

    /// The HTML comment to put in a body (invisible once rendered).
    pub fn comment(&self) -> String {
        format!("<!-- {} -->", self.0)
    }

    pub fn is_in(&self, body: &str) -> bool {
        body.contains(&self.comment())
    }
}

/// The first marker with `prefix` in `body` (e.g. `guardrail:finding:`), without the prefix.
pub fn find_marker<'a>(body: &'a str, prefix: &str) -> Option<&'a str> {
    let open = format!("<!-- {prefix}");
    let start = body.find(&open)? + open.len();
    let rest = &body[start..];
    let end = rest.find(" -->")?;
    Some(&rest[..end])
}

/// Escapes every line that GitLab could run as a quick action.
pub fn escape_quick_actions(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 8);
    let mut fence: Option<String> = None;
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        let trimmed = &line[indent..];
        if indent < 4 {
            let marker: String = trimmed.chars().take_while(|c| *c == '`' || *c == '~').collect();
            if marker.len() >= 3 && marker.chars().all(|c| c == marker.chars().next().unwrap_or('`')) {
                match &fence {
                    None => fence = Some(marker),
                    Some(open) if marker.starts_with(open.as_str()) && trimmed.trim_end() == marker => fence = None,
                    Some(_) => {}
                }
                out.push_str(line);
                continue;
            }
        }
        if fence.is_none() && indent < 4 && trimmed.starts_with('/') {
            out.push_str(&line[..indent]);
            out.push('\\');
            out.push_str(trimmed);
        } else {
            out.push_str(line);
        }
    }
    out
}
