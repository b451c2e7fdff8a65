//! Requests checked against GitHub's OpenAPI description (the vendored subset): every request must name an
//! operation (method + path template), and every JSON body must match that operation's `requestBody` schema.
//! A small validator for the keywords GitHub's description uses; `format` and `pattern` are not checked.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

const SUBSET: &str = include_str!("../../fixtures/github/openapi-subset.json");

pub(crate) struct Operation {
    pub method: String,
    pub template: String,
    pub id: String,
    pub docs: String,
    body: Option<Value>,
    body_required: bool,
}

pub(crate) struct Spec {
    root: Value,
    operations: Vec<Operation>,
}

pub(crate) fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let root: Value = serde_json::from_str(SUBSET).expect("the vendored OpenAPI subset is JSON");
        let mut operations = Vec::new();
        for (template, item) in root["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if method == "parameters" {
                    continue;
                }
                let body = &op["requestBody"];
                operations.push(Operation {
                    method: method.to_uppercase(),
                    template: template.clone(),
                    id: op["operationId"].as_str().unwrap_or("unknown").to_string(),
                    docs: op["externalDocs"]["url"].as_str().unwrap_or("https://docs.github.com/rest").to_string(),
                    body: body.get("content").map(|c| c["application/json"]["schema"].clone()),
                    body_required: body["required"].as_bool().unwrap_or(false),
                });
            }
        }
        Spec { root, operations }
    })
}

impl Spec {
    /// The operation for a request, with its path parameters (percent-decoded).
    pub fn find(&self, method: &str, path: &str) -> Option<(&Operation, HashMap<String, String>)> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let mut best: Option<(&Operation, HashMap<String, String>, usize)> = None;
        for op in self.operations.iter().filter(|op| op.method == method) {
            if let Some((params, literals)) = match_template(&op.template, &segments) {
                if best.as_ref().is_none_or(|(_, _, l)| literals > *l) {
                    best = Some((op, params, literals));
                }
            }
        }
        best.map(|(op, params, _)| (op, params))
    }

    pub fn has_path(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.operations.iter().any(|op| match_template(&op.template, &segments).is_some())
    }

    /// Errors in GitHub's words, empty when the body is valid.
    pub fn validate_body(&self, op: &Operation, body: Option<&Value>) -> Vec<String> {
        let mut errors = Vec::new();
        match (&op.body, body) {
            (Some(schema), Some(body)) => self.validate(schema, body, "", &mut errors),
            (Some(_), None) if op.body_required => errors.push("A request body is required.".to_string()),
            (None, Some(_)) => errors.push(format!("{} {} takes no request body.", op.method, op.template)),
            _ => {}
        }
        errors
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.trim_start_matches('#');
                self.resolve(self.root.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {reference}")))
            }
            None => schema,
        }
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let place = if at.is_empty() { "the body".to_string() } else { format!("`{at}`") };
        if value.is_null() && schema["nullable"] == Value::Bool(true) {
            return;
        }
        for sub in schema["allOf"].as_array().into_iter().flatten() {
            self.validate(sub, value, at, errors);
        }
        for (keyword, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            if let Some(options) = schema[keyword].as_array() {
                let passing = options.iter().filter(|o| self.passes(o, value)).count();
                if passing == 0 || (exactly_one && passing > 1) {
                    errors.push(format!("{place} does not match {} of the schemas in `{keyword}`.", {
                        if exactly_one && passing > 1 {
                            "exactly one"
                        } else {
                            "any"
                        }
                    }));
                }
            }
        }
        if let Some(allowed) = schema["enum"].as_array() {
            if !allowed.contains(value) {
                errors.push(format!("{place}: {value} is not a member of {}.", Value::Array(allowed.clone())));
                return;
            }
        }
        if let Some(kind) = schema["type"].as_str() {
            if !has_type(kind, value) {
                errors.push(format!("{place}: {value} is not of type {kind}."));
                return;
            }
        }
        match value {
            Value::String(text) => {
                let chars = text.chars().count();
                if let Some(max) = schema["maxLength"].as_u64() {
                    if chars as u64 > max {
                        errors.push(format!("{place} is too long ({chars} characters; at most {max} are allowed)."));
                    }
                }
                if let Some(min) = schema["minLength"].as_u64() {
                    if (chars as u64) < min {
                        errors.push(format!("{place} is too short ({chars} characters; at least {min})."));
                    }
                }
            }
            Value::Array(items) => {
                if let Some(max) = schema["maxItems"].as_u64() {
                    if items.len() as u64 > max {
                        errors.push(format!("No more than {max} items are allowed; {} were supplied.", items.len()));
                    }
                }
                if let Some(min) = schema["minItems"].as_u64() {
                    if (items.len() as u64) < min {
                        errors.push(format!("At least {min} items are required; {} were supplied.", items.len()));
                    }
                }
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.validate(item_schema, item, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            Value::Object(fields) => {
                for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                    if !fields.contains_key(name) {
                        errors.push(format!("`{}` is a required property of {place}.", join(at, name)));
                    }
                }
                let properties = schema["properties"].as_object();
                for (name, field) in fields {
                    match properties.and_then(|p| p.get(name)) {
                        Some(field_schema) => self.validate(field_schema, field, &join(at, name), errors),
                        None => match schema.get("additionalProperties") {
                            Some(Value::Bool(false)) => {
                                errors.push(format!("`{}` is not a permitted key of {place}.", join(at, name)))
                            }
                            Some(extra @ Value::Object(_)) => self.validate(extra, field, &join(at, name), errors),
                            _ => {}
                        },
                    }
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or_default();
                if schema["minimum"].as_f64().is_some_and(|min| x < min) {
                    errors.push(format!("{place} must be at least {}.", schema["minimum"]));
                }
                if schema["maximum"].as_f64().is_some_and(|max| x > max) {
                    errors.push(format!("{place} must be at most {}.", schema["maximum"]));
                }
            }
            _ => {}
        }
    }

    fn passes(&self, schema: &Value, value: &Value) -> bool {
        let mut errors = Vec::new();
        self.validate(schema, value, "", &mut errors);
        errors.is_empty()
    }
}

fn join(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

fn has_type(kind: &str, value: &Value) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        "null" => value.is_null(),
        _ => true,
    }
}

/// Parameters: `{name}` takes one segment, except a final `{path}` (contents API), which takes the rest.
/// Returns the parameters and how many literal segments matched (more literals = more specific).
fn match_template(template: &str, segments: &[&str]) -> Option<(HashMap<String, String>, usize)> {
    let parts: Vec<&str> = template.split('/').collect();
    let mut params = HashMap::new();
    let mut literals = 0;
    for (i, part) in parts.iter().enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if name == "path" && i == parts.len() - 1 {
                let rest = segments.get(i..).filter(|r| !r.is_empty())?;
                params.insert(name.to_string(), decode(&rest.join("/"), false));
                return Some((params, literals));
            }
            let segment = segments.get(i).filter(|s| !s.is_empty())?;
            params.insert(name.to_string(), decode(segment, false));
        } else {
            if segments.get(i) != Some(part) {
                return None;
            }
            literals += 1;
        }
    }
    (segments.len() == parts.len()).then_some((params, literals))
}

/// Percent-decoding; `+` is a space only in query strings.
pub(crate) fn decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=2` -> map (the last value wins, as Rails does).
pub(crate) fn query_map(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k, true), decode(v, true))
        })
        .collect()
}
