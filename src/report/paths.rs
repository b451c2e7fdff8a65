//! Paths as people and CI systems want to read them: JSON pointers as `a.b[1].c`, file names as
//! repository-relative paths with forward slashes, and as URI references for SARIF.

/// `/spec/containers/1/securityContext` -> `spec.containers[1].securityContext`. Keys that are not
/// plain words (dots and slashes are common in annotation and label keys) are written `["a.b/c"]`.
/// Numeric segments are shown as indices: a pointer alone cannot tell `[1]` from a key `"1"`.
pub fn readable_pointer(pointer: &str) -> String {
    let mut out = String::new();
    if pointer.is_empty() {
        return out;
    }
    // A pointer without the leading slash is malformed; read it as if the slash were there.
    let rest = pointer.strip_prefix('/').unwrap_or(pointer);
    for raw in rest.split('/') {
        // RFC 6901: `~1` before `~0`, so that `~01` becomes `~1` and not `/`.
        let segment = raw.replace("~1", "/").replace("~0", "~");
        if is_index(&segment) {
            out.push('[');
            out.push_str(&segment);
            out.push(']');
        } else if is_plain_key(&segment) {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        } else {
            out.push('[');
            out.push_str(&serde_json::Value::from(segment).to_string());
            out.push(']');
        }
    }
    out
}

fn is_index(segment: &str) -> bool {
    // RFC 6901 array indices have no leading zeros; `01` can only be a key.
    segment == "0"
        || (segment.starts_with(|c: char| matches!(c, '1'..='9')) && segment.bytes().all(|b| b.is_ascii_digit()))
}

/// A key that reads unambiguously after a dot. All-digit keys (`"01"`) are quoted so that they do not
/// look like indices.
fn is_plain_key(segment: &str) -> bool {
    !segment.bytes().all(|b| b.is_ascii_digit()) && segment.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// The file name as CI systems expect it: forward slashes, no leading `./`.
pub(crate) fn repo_path(file: &str) -> String {
    let mut path = file.replace('\\', "/");
    while let Some(rest) = path.strip_prefix("./") {
        path = rest.to_string();
    }
    path
}

/// A SARIF `artifactLocation.uri`: a relative reference for relative paths (resolved against the
/// repository root by GitHub), a `file://` URI for absolute ones, percent-encoded either way.
pub(crate) fn sarif_uri(file: &str) -> String {
    let path = repo_path(file);
    let bytes = path.as_bytes();
    // `C:/…`, but not `x:y.yaml`, which is a relative name with a colon in it.
    let has_drive = bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && bytes[2] == b'/';
    if has_drive {
        format!("file:///{}:{}", &path[..1], percent_encode(&path[2..]))
    } else if path.starts_with('/') {
        format!("file://{}", percent_encode(&path))
    } else {
        percent_encode(&path)
    }
}

fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        // `:` is encoded too: in a relative reference's first segment it would read as a scheme.
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `a/./b/../c` -> `a/c`, without touching the file system (the path may not exist, or be a link the
/// user meant literally).
pub(crate) fn normalize(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
