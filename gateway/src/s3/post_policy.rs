//! The policy document of a POST Object form, checked as AWS checks it (s3s checks part of it
//! and answers its own codes; see docs/S3-COMPATIBILITY.md): the strict ISO 8601 `expiration`
//! (400 `InvalidPolicyDocument` otherwise, 403 `AccessDenied` once past), every condition
//! (`eq`, `starts-with` with the empty prefix matching anything, the `{"field": "value"}`
//! shorthand, `content-length-range` → 400 `EntityTooSmall` / `EntityTooLarge`), a failed one
//! → 403 `AccessDenied` "Invalid according to Policy: Policy Condition failed: ...", and every
//! form field covered by a condition except the exempt ones (signature, `file`, `policy`,
//! `x-ignore-*`, checksums) → 403 `AccessDenied` "Extra input fields". Field names are
//! compared case-insensitively; `$bucket` is the bucket the form is posted to and `$key` the
//! key after `${filename}` substitution.

use serde_json::Value;

/// A refusal of a form, as the S3 error it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: http::StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn invalid(message: impl Into<String>) -> Refusal {
        Refusal {
            status: http::StatusCode::BAD_REQUEST,
            code: "InvalidPolicyDocument",
            message: format!("Invalid Policy: {}", message.into()),
        }
    }

    fn denied(message: impl Into<String>) -> Refusal {
        Refusal {
            status: http::StatusCode::FORBIDDEN,
            code: "AccessDenied",
            message: format!("Invalid according to Policy: {}", message.into()),
        }
    }

    fn size(code: &'static str, message: &str) -> Refusal {
        Refusal {
            status: http::StatusCode::BAD_REQUEST,
            code,
            message: message.to_owned(),
        }
    }
}

/// What the policy is checked against: the form's fields (lower-case names, before the file),
/// the bucket of the URL, the key after substitution and the file's size.
pub(crate) struct Submitted<'a> {
    pub fields: &'a [(String, String)],
    pub bucket: &'a str,
    pub key: Option<&'a str>,
    pub file_size: u64,
}

impl Submitted<'_> {
    /// The value a condition on `name` (lower case, without `$`) sees.
    fn value(&self, name: &str) -> Option<&str> {
        match name {
            "bucket" => Some(self.bucket),
            "key" => self.key,
            _ => self
                .fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
        }
    }
}

/// One condition of the document.
#[derive(Debug)]
enum Condition {
    Eq(String, String),
    StartsWith(String, String),
    Length(u64, u64),
}

/// Fields a form may carry without a condition naming them.
pub(crate) fn exempt(name: &str) -> bool {
    matches!(
        name,
        "x-amz-signature" | "signature" | "awsaccesskeyid" | "file" | "policy" | "submit"
    ) || name.starts_with("x-ignore-")
        || name.starts_with("x-amz-checksum-")
}

/// Checks the base64 policy document `b64` of a form at `now_ms`.
pub(crate) fn check(b64: &str, form: &Submitted<'_>, now_ms: i64) -> Result<(), Refusal> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim().as_bytes())
        .map_err(|_| Refusal::invalid("Invalid Base64 Encoding."))?;
    let doc: Value = serde_json::from_slice(&raw).map_err(|_| Refusal::invalid("Invalid JSON."))?;
    let expiration = doc
        .get("expiration")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::invalid("Policy missing expiration."))?;
    if expiration_ms(expiration)? <= now_ms {
        return Err(Refusal::denied("Policy expired."));
    }
    let raw_conditions = doc
        .get("conditions")
        .and_then(Value::as_array)
        .ok_or_else(|| Refusal::invalid("Policy missing conditions."))?;
    let mut conditions = Vec::with_capacity(raw_conditions.len());
    for c in raw_conditions {
        conditions.push((parse_condition(c)?, c));
    }
    for (c, raw) in &conditions {
        holds(c, raw, form)?;
    }
    for (name, _) in form.fields {
        let covered = conditions.iter().any(|(c, _)| match c {
            Condition::Eq(f, _) | Condition::StartsWith(f, _) => f == name,
            Condition::Length(..) => false,
        });
        if !covered && !exempt(name) {
            return Err(Refusal::denied(format!("Extra input fields: {name}")));
        }
    }
    Ok(())
}

/// Unix milliseconds of a strict ISO 8601 UTC `expiration` (`2026-12-05T12:00:00.000Z`).
fn expiration_ms(s: &str) -> Result<i64, Refusal> {
    let bad = || Refusal::invalid(format!("Invalid 'expiration' value: '{s}'"));
    if s.len() < 20 || s.as_bytes().get(10) != Some(&b'T') || !s.ends_with('Z') {
        return Err(bad());
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())
}

fn field_name(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    Some(s.strip_prefix('$').unwrap_or(s).to_ascii_lowercase())
}

fn length_bound(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_condition(c: &Value) -> Result<Condition, Refusal> {
    let bad = || Refusal::invalid(format!("Invalid Policy condition: {c}"));
    if let Some(map) = c.as_object() {
        let mut it = map.iter();
        return match (it.next(), it.next()) {
            (Some((k, Value::String(v))), None) => Ok(Condition::Eq(
                k.strip_prefix('$').unwrap_or(k).to_ascii_lowercase(),
                v.clone(),
            )),
            _ => Err(bad()),
        };
    }
    let items = c.as_array().filter(|a| a.len() == 3).ok_or_else(bad)?;
    let op = items[0].as_str().ok_or_else(bad)?.to_ascii_lowercase();
    match op.as_str() {
        "eq" | "starts-with" => {
            let field = field_name(&items[1]).ok_or_else(bad)?;
            let value = items[2].as_str().ok_or_else(bad)?.to_owned();
            Ok(if op == "eq" {
                Condition::Eq(field, value)
            } else {
                Condition::StartsWith(field, value)
            })
        }
        "content-length-range" => {
            let min = length_bound(&items[1]).ok_or_else(bad)?;
            let max = length_bound(&items[2]).ok_or_else(bad)?;
            (min <= max)
                .then_some(Condition::Length(min, max))
                .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

/// Whether `form` meets one condition (`raw` is the condition as written, for the message).
fn holds(c: &Condition, raw: &Value, form: &Submitted<'_>) -> Result<(), Refusal> {
    let failed = || Refusal::denied(format!("Policy Condition failed: {raw}"));
    match c {
        Condition::Eq(field, want) => {
            if form.value(field) != Some(want.as_str()) {
                return Err(failed());
            }
        }
        Condition::StartsWith(field, prefix) => {
            let got = form.value(field).unwrap_or("");
            // a Content-Type may list several values: each must match
            let ok = if field == "content-type" {
                got.split(',')
                    .all(|v| v.trim_start().starts_with(prefix.as_str()))
            } else {
                got.starts_with(prefix.as_str())
            };
            if !ok {
                return Err(failed());
            }
        }
        Condition::Length(min, max) => {
            if form.file_size > *max {
                return Err(Refusal::size(
                    "EntityTooLarge",
                    "Your proposed upload exceeds the maximum allowed size",
                ));
            }
            if form.file_size < *min {
                return Err(Refusal::size(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(doc: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(doc)
    }

    fn run(doc: &str, fields: &[(&str, &str)], size: u64) -> Result<(), Refusal> {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let key = fields
            .iter()
            .find(|(k, _)| k == "key")
            .map(|(_, v)| v.as_str());
        let form = Submitted {
            fields: &fields,
            bucket: "b1",
            key,
            file_size: size,
        };
        check(&b64(doc), &form, 1_700_000_000_000)
    }

    const FUTURE: &str = "2099-01-01T00:00:00Z";

    #[test]
    fn accepts_covered_fields_and_empty_prefix() {
        let doc = format!(
            r#"{{"expiration":"{FUTURE}","conditions":[{{"bucket":"b1"}},["starts-with","$Key","foo"],["starts-with","$x-amz-meta-a",""],["content-length-range",0,10]]}}"#
        );
        let f = [
            ("key", "foo.txt"),
            ("x-amz-meta-a", "anything"),
            ("policy", "p"),
        ];
        assert_eq!(run(&doc, &f, 3), Ok(()));
    }

    #[test]
    fn refusals_have_s3_codes() {
        let doc = format!(
            r#"{{"expiration":"{FUTURE}","conditions":[["eq","$key","a"],["content-length-range",2,4]]}}"#
        );
        let code = |f: &[(&str, &str)], n| run(&doc, f, n).map_err(|r| r.code);
        assert_eq!(code(&[("key", "b")], 3), Err("AccessDenied"));
        assert_eq!(code(&[("key", "a")], 1), Err("EntityTooSmall"));
        assert_eq!(code(&[("key", "a")], 5), Err("EntityTooLarge"));
        assert_eq!(code(&[("key", "a"), ("acl", "x")], 3), Err("AccessDenied"));
        assert_eq!(code(&[("key", "a"), ("x-ignore-z", "x")], 3), Ok(()));
        let old = r#"{"expiration":"2001-01-01T00:00:00Z","conditions":[]}"#;
        assert_eq!(run(old, &[], 0).map_err(|r| r.code), Err("AccessDenied"));
        let bad_date = r#"{"expiration":"2099-01-01 00:00:00+00:00","conditions":[]}"#;
        let r = run(bad_date, &[], 0).unwrap_err();
        assert_eq!((r.status.as_u16(), r.code), (400, "InvalidPolicyDocument"));
        let bad_op = format!(r#"{{"expiration":"{FUTURE}","conditions":[["like","$key","a"]]}}"#);
        assert_eq!(
            run(&bad_op, &[], 0).map_err(|r| r.code),
            Err("InvalidPolicyDocument")
        );
    }
}
