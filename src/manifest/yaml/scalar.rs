//! Scalars as go-yaml v2 (kubectl) resolves them from their source text: `yes`/`on` are booleans,
//! `0644` is octal, `1_000` an integer, a local tag keeps the text.

use super::Raw;

/// A scalar as go-yaml v2 (kubectl) resolves it, from its source text. serde-saphyr resolves YAML
/// 1.2 with 1.1 extensions and differs at the edges (`yEs`, `0X10`, `1__0`, local tags).
pub(super) fn as_kubectl_reads(value: Raw, src: &str, tag: Option<&str>) -> Raw {
    if matches!(value, Raw::Seq(_) | Raw::Map(_)) || src.is_empty() || src.contains('\n') {
        return value;
    }
    match tag {
        // A local tag (`!custom 5`): go-yaml v2 keeps the text.
        Some(t) if !t.starts_with("!!") && !t.starts_with("!<") => {
            return match value {
                Raw::Str(s) => Raw::Str(s),
                _ => Raw::Str(src.to_string()),
            }
        }
        Some(_) => return value,
        None => {}
    }
    if src.starts_with(['"', '\'', '!', '|', '>', '*', '&', '[', '{']) {
        return value;
    }
    resolve_plain(src)
}

/// The tag written before a scalar (`!!str 123`, `!custom 5`), if any: serde-saphyr's span covers
/// the scalar's text only. An anchor between them (`!!str &a 1`) is passed over.
pub(super) fn tag_before<'t>(loc: &serde_saphyr::Location, text: &'t str) -> Option<&'t str> {
    let offset = loc.span().byte_offset()? as usize;
    let mut before = text.get(..offset)?;
    for _ in 0..2 {
        let trimmed = before.trim_end_matches([' ', '\t', '\n', '\r']);
        if trimmed.len() == before.len() && !before.is_empty() {
            return None; // the scalar follows its indicator directly (`[1`, `-1`): no tag
        }
        let start = trimmed.rfind([' ', '\t', '\n', '\r', '[', '{', ',']).map_or(0, |i| i + 1);
        let token = &trimmed[start..];
        if token.starts_with('!') {
            return Some(token);
        }
        if !token.starts_with('&') {
            return None;
        }
        before = &trimmed[..start];
    }
    None
}

/// go-yaml v2's `resolve` for a plain scalar (no timestamps: sigs.k8s.io/yaml keeps them strings).
pub(super) fn resolve_plain(src: &str) -> Raw {
    match src {
        "~" | "null" | "Null" | "NULL" => return Raw::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => return Raw::Bool(true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Raw::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Raw::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Raw::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Raw::Float(f64::NAN),
        _ => {}
    }
    let first = src.as_bytes()[0];
    if first == b'.' {
        return match src.parse::<f64>() {
            Ok(f) if src[1..].bytes().all(|b| b.is_ascii_digit() || matches!(b, b'e' | b'E' | b'+' | b'-')) => {
                Raw::Float(f)
            }
            _ => Raw::Str(src.to_string()),
        };
    }
    if !(first.is_ascii_digit() || first == b'+' || first == b'-') {
        return Raw::Str(src.to_string());
    }
    let plain = src.replace('_', "");
    if let Some(i) = go_parse_int(&plain) {
        return Raw::Int(i);
    }
    if let Some(u) = go_parse_uint(&plain) {
        return Raw::UInt(u);
    }
    if is_yaml_style_float(&plain) {
        if let Ok(f) = plain.parse::<f64>() {
            return Raw::Float(f);
        }
    }
    Raw::Str(src.to_string())
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, then `0x`/`0o`/`0b` (any case) or a leading `0` for octal.
pub(super) fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = go_parse_uint(digits)? as i128;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// Go's `strconv.ParseUint(s, 0, 64)` (no sign).
pub(super) fn go_parse_uint(s: &str) -> Option<u64> {
    let lower = s.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &s[2..]),
        Some("0o") => (8, &s[2..]),
        Some("0b") => (2, &s[2..]),
        _ if s.len() > 1 && s.starts_with('0') => (8, &s[1..]),
        _ => (10, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// go-yaml v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
pub(super) fn is_yaml_style_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)))
}

pub(super) fn is_legacy_octal(src: &str) -> bool {
    let digits = src.trim_start_matches(['+', '-']);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
}
