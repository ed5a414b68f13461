//! Bucket policies: the JSON documents of S3's PutBucketPolicy, checked when they are stored and
//! evaluated on every request to a bucket that has one.
//!
//! On this gateway a bucket policy can only take access away. Access is granted by roles and
//! grants (admin API, audited, quorum-gated) inside a tenant; a bucket policy adds conditions
//! under which a request is refused even so: an explicit `Deny` statement that applies to the
//! request refuses it (403 AccessDenied). `Allow` statements are kept and returned as written,
//! so that policies written for AWS can be stored unchanged, and grant nothing: no bucket becomes
//! public or readable by another tenant through a policy (docs/BUCKET-POLICY.md).
//!
//! What a document may say is checked when it is stored (400 `MalformedPolicy` naming the
//! problem), so that nothing in it is silently ignored: every condition key must be one the
//! gateway fills from the request ([`CONDITION_KEYS`]), every operator one it evaluates, every
//! resource inside the bucket, every principal a form it understands.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

/// AWS's limit on a bucket policy document (20 KB).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Condition keys the gateway fills from a request (lower case; AWS compares them without
/// case). `s3:RequestObjectTag/<key>` is matched by prefix.
pub const CONDITION_KEYS: &[&str] = &[
    "aws:securetransport",
    "aws:sourceip",
    "aws:currenttime",
    "aws:epochtime",
    "aws:useragent",
    "aws:referer",
    "aws:username",
    "aws:userid",
    "aws:principalaccount",
    "aws:principalarn",
    "aws:principaltype",
    "s3:x-amz-server-side-encryption",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:x-amz-server-side-encryption-customer-algorithm",
    "s3:x-amz-acl",
    "s3:x-amz-copy-source",
    "s3:x-amz-metadata-directive",
    "s3:x-amz-storage-class",
    "s3:x-amz-content-sha256",
    "s3:object-lock-mode",
    "s3:object-lock-retain-until-date",
    "s3:object-lock-legal-hold",
    "s3:prefix",
    "s3:delimiter",
    "s3:max-keys",
    "s3:versionid",
    "s3:signatureversion",
    "s3:authtype",
    "s3:requestobjecttagkeys",
];

/// Prefix of the per-tag condition keys of a request's `x-amz-tagging`.
pub const REQUEST_OBJECT_TAG: &str = "s3:requestobjecttag/";

/// A document that cannot be stored, with the reason (the message of 400 `MalformedPolicy`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedPolicy(pub String);

fn malformed<T>(msg: impl Into<String>) -> Result<T, MalformedPolicy> {
    Err(MalformedPolicy(msg.into()))
}

/// A parsed, checked bucket policy.
#[derive(Debug, Clone)]
pub struct BucketPolicy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
struct Statement {
    sid: Option<String>,
    deny: bool,
    principals: Vec<PrincipalSpec>,
    not_principal: bool,
    /// lower-case patterns (`s3:get*`, `*`)
    actions: Vec<String>,
    not_action: bool,
    /// patterns after `arn:aws:s3:::` (`bucket`, `bucket/prefix/*`)
    resources: Vec<String>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalSpec {
    /// `*`: everybody
    Any,
    /// an account (`arn:aws:iam::<tenant>:root` or the bare id): the principals of a tenant
    Tenant(String),
    /// `arn:aws:iam::<tenant>:user/<name>`
    User { tenant: String, name: String },
    /// a service, federated or canonical-user principal: nobody on this gateway
    Nobody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    StringEquals { ignore_case: bool },
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Ip,
    Arn,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Single,
    AnyValue,
    AllValues,
}

#[derive(Debug, Clone)]
struct Condition {
    test: Test,
    negated: bool,
    if_exists: bool,
    set: SetOp,
    key: String,
    values: Vec<String>,
}

/// One request as a bucket policy sees it.
#[derive(Debug, Clone, Default)]
pub struct PolicyRequest {
    /// principal name of the caller
    pub principal: String,
    /// the caller's tenant
    pub tenant: String,
    /// the permissions the request needs (`s3:PutObject`, `s3:GetObjectVersion`, ...): a
    /// statement that denies any of them refuses the request
    pub permissions: Vec<&'static str>,
    /// the resource after `arn:aws:s3:::` (`bucket` or `bucket/key`)
    pub resource: String,
    /// condition keys (lower case) and their values; an absent key is not in the map
    pub keys: BTreeMap<String, Vec<String>>,
}

impl PolicyRequest {
    /// Sets a condition key (its name lower-cased) to one value.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.keys
            .insert(key.to_ascii_lowercase(), vec![value.into()]);
    }
}

/// The ARN of a principal in policies and in `aws:PrincipalArn`.
pub fn principal_arn(tenant: &str, principal: &str) -> String {
    format!("arn:aws:iam::{tenant}:user/{principal}")
}

impl BucketPolicy {
    /// Parses and checks the document stored for `bucket`.
    pub fn parse(json: &str, bucket: &str) -> Result<BucketPolicy, MalformedPolicy> {
        if json.len() > MAX_POLICY_BYTES {
            return malformed("Policy exceeds the maximum allowed document size (20 KB).");
        }
        let doc: Value = match serde_json::from_str(json) {
            Ok(v) => v,
            Err(_) => return malformed("Policies must be valid JSON."),
        };
        let Value::Object(doc) = doc else {
            return malformed("Policies must be a JSON object.");
        };
        for k in doc.keys() {
            if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
                return malformed(format!("Unknown field {k}"));
            }
        }
        match doc.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(_) => return malformed("The policy Version must be 2012-10-17 or 2008-10-17."),
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(a)) if !a.is_empty() => a.iter().collect::<Vec<_>>(),
            Some(o @ Value::Object(_)) => vec![o],
            _ => return malformed("Missing required field Statement"),
        };
        let statements = statements
            .into_iter()
            .map(|s| Statement::parse(s, bucket))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BucketPolicy { statements })
    }

    /// The `Sid` (or `""`) of the first Deny statement that applies to `req`; `None`: the policy
    /// refuses nothing of it.
    pub fn denial(&self, req: &PolicyRequest) -> Option<&str> {
        self.statements
            .iter()
            .find(|s| s.deny && s.applies(req))
            .map(|s| s.sid.as_deref().unwrap_or(""))
    }

    /// Whether the document would make the bucket public on AWS: an Allow statement for every
    /// principal (`*`) without a condition that pins the caller's address or account. Used to
    /// honour `BlockPublicPolicy`; on this gateway no policy makes anything public.
    pub fn grants_public_access(&self) -> bool {
        const PINNING: &[&str] = &[
            "aws:sourceip",
            "aws:principalaccount",
            "aws:principalarn",
            "aws:userid",
            "aws:username",
        ];
        self.statements.iter().any(|s| {
            !s.deny
                && (s.not_principal || s.principals.contains(&PrincipalSpec::Any))
                && !s.conditions.iter().any(|c| {
                    !c.negated && c.test != Test::Null && PINNING.contains(&c.key.as_str())
                })
        })
    }
}

/// A JSON string or array of strings (`Action`, `Resource`, principal lists).
fn strings(v: &Value, field: &str) -> Result<Vec<String>, MalformedPolicy> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                _ => malformed(format!("{field} must be a string or a list of strings")),
            })
            .collect(),
        _ => malformed(format!("{field} must be a string or a list of strings")),
    }
}

/// Exactly one of `a` / `b` in a statement: its value and whether it was `b` (the negated form).
fn one_of<'v>(
    s: &'v serde_json::Map<String, Value>,
    a: &str,
    b: &str,
) -> Result<(&'v Value, bool), MalformedPolicy> {
    match (s.get(a), s.get(b)) {
        (Some(v), None) => Ok((v, false)),
        (None, Some(v)) => Ok((v, true)),
        (None, None) => malformed(format!("Missing required field {a}")),
        (Some(_), Some(_)) => malformed(format!("A statement cannot have both {a} and {b}")),
    }
}

fn no_variables(s: &str) -> Result<(), MalformedPolicy> {
    if s.contains("${") {
        return malformed(format!(
            "Policy variables (${{...}}) are not supported by this gateway: {s}"
        ));
    }
    Ok(())
}

impl Statement {
    fn parse(v: &Value, bucket: &str) -> Result<Statement, MalformedPolicy> {
        let Value::Object(s) = v else {
            return malformed("Each statement must be a JSON object.");
        };
        for k in s.keys() {
            if !matches!(
                k.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return malformed(format!("Unknown field {k}"));
            }
        }
        let sid = match s.get("Sid") {
            None => None,
            Some(Value::String(x)) => Some(x.clone()),
            Some(_) => return malformed("Sid must be a string"),
        };
        let deny = match s.get("Effect") {
            Some(Value::String(e)) if e == "Allow" => false,
            Some(Value::String(e)) if e == "Deny" => true,
            Some(_) => return malformed("Invalid effect: must be Allow or Deny"),
            None => return malformed("Missing required field Effect"),
        };
        let (p, not_principal) = one_of(s, "Principal", "NotPrincipal")?;
        let principals = parse_principals(p)?;
        let (a, not_action) = one_of(s, "Action", "NotAction")?;
        let actions = strings(a, "Action")?
            .into_iter()
            .map(|a| parse_action(&a))
            .collect::<Result<Vec<_>, _>>()?;
        let (r, not_resource) = one_of(s, "Resource", "NotResource")?;
        let resources = strings(r, "Resource")?
            .into_iter()
            .map(|r| parse_resource(&r, bucket))
            .collect::<Result<Vec<_>, _>>()?;
        let conditions = match s.get("Condition") {
            None => Vec::new(),
            Some(c) => parse_conditions(c)?,
        };
        Ok(Statement {
            sid,
            deny,
            principals,
            not_principal,
            actions,
            not_action,
            resources,
            not_resource,
            conditions,
        })
    }

    fn applies(&self, req: &PolicyRequest) -> bool {
        let who = self
            .principals
            .iter()
            .any(|p| p.matches(&req.tenant, &req.principal));
        if who == self.not_principal {
            return false;
        }
        let what = req.permissions.iter().any(|perm| {
            let listed = self.actions.iter().any(|a| wildcard(a, perm, true));
            listed != self.not_action
        });
        if !what {
            return false;
        }
        let listed = self
            .resources
            .iter()
            .any(|r| wildcard(r, &req.resource, false));
        if listed == self.not_resource {
            return false;
        }
        self.conditions.iter().all(|c| c.holds(&req.keys))
    }
}

impl PrincipalSpec {
    fn matches(&self, tenant: &str, principal: &str) -> bool {
        match self {
            PrincipalSpec::Any => true,
            PrincipalSpec::Tenant(t) => t == tenant,
            PrincipalSpec::User { tenant: t, name } => t == tenant && name == principal,
            PrincipalSpec::Nobody => false,
        }
    }
}

fn parse_principals(v: &Value) -> Result<Vec<PrincipalSpec>, MalformedPolicy> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![PrincipalSpec::Any]),
        Value::Object(m) if !m.is_empty() => {
            let mut out = Vec::new();
            for (kind, ids) in m {
                let ids = strings(ids, "Principal")?;
                match kind.as_str() {
                    "AWS" => {
                        for id in ids {
                            out.push(parse_aws_principal(&id)?);
                        }
                    }
                    "Service" | "Federated" | "CanonicalUser" => out.push(PrincipalSpec::Nobody),
                    _ => return malformed("Invalid principal in policy"),
                }
            }
            Ok(out)
        }
        _ => malformed("Invalid principal in policy"),
    }
}

fn parse_aws_principal(id: &str) -> Result<PrincipalSpec, MalformedPolicy> {
    if id == "*" {
        return Ok(PrincipalSpec::Any);
    }
    let Some(rest) = id.strip_prefix("arn:aws:iam::") else {
        if !id.is_empty() && !id.contains([':', '/', '*', '?']) {
            return Ok(PrincipalSpec::Tenant(id.to_owned()));
        }
        return malformed("Invalid principal in policy");
    };
    let Some((tenant, what)) = rest.split_once(':') else {
        return malformed("Invalid principal in policy");
    };
    if tenant.is_empty() || tenant.contains(['*', '?']) {
        return malformed("Invalid principal in policy");
    }
    if what == "root" {
        return Ok(PrincipalSpec::Tenant(tenant.to_owned()));
    }
    match what.strip_prefix("user/") {
        Some(name) if !name.is_empty() && !name.contains(['*', '?']) => Ok(PrincipalSpec::User {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
        }),
        _ => malformed(format!(
            "Invalid principal in policy: {id} (this gateway knows accounts (tenants) and users)"
        )),
    }
}

fn parse_action(a: &str) -> Result<String, MalformedPolicy> {
    let lower = a.to_ascii_lowercase();
    if lower == "*" {
        return Ok(lower);
    }
    match lower.strip_prefix("s3:") {
        Some(name)
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?') =>
        {
            Ok(lower)
        }
        _ => malformed(format!("Policy has invalid action: {a}")),
    }
}

fn parse_resource(r: &str, bucket: &str) -> Result<String, MalformedPolicy> {
    no_variables(r)?;
    let Some(rest) = r.strip_prefix("arn:aws:s3:::") else {
        return malformed(format!("Policy has invalid resource: {r}"));
    };
    let bucket_part = rest.split('/').next().unwrap_or(rest);
    if bucket_part.is_empty() || !wildcard(bucket_part, bucket, false) {
        return malformed(format!(
            "Policy has invalid resource: {r} (a bucket policy names its own bucket)"
        ));
    }
    Ok(rest.to_owned())
}

fn parse_conditions(v: &Value) -> Result<Vec<Condition>, MalformedPolicy> {
    let Value::Object(ops) = v else {
        return malformed("Condition must be a JSON object");
    };
    let mut out = Vec::new();
    for (op, block) in ops {
        let (test, negated, if_exists, set) = parse_operator(op)?;
        let Value::Object(block) = block else {
            return malformed(format!(
                "The block of condition operator {op} must be an object"
            ));
        };
        for (key, values) in block {
            let key = key.to_ascii_lowercase();
            let known = CONDITION_KEYS.contains(&key.as_str())
                || key
                    .strip_prefix(REQUEST_OBJECT_TAG)
                    .is_some_and(|t| !t.is_empty());
            if !known {
                return malformed(format!(
                    "Policy has an invalid condition key: {key} (keys this gateway evaluates: docs/BUCKET-POLICY.md)"
                ));
            }
            let values = condition_values(values, op)?;
            for v in &values {
                no_variables(v)?;
                check_value(test, v, op)?;
            }
            out.push(Condition {
                test,
                negated,
                if_exists,
                set,
                key,
                values,
            });
        }
    }
    Ok(out)
}

fn condition_values(v: &Value, op: &str) -> Result<Vec<String>, MalformedPolicy> {
    let one = |x: &Value| match x {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => malformed(format!("Invalid value in condition operator {op}")),
    };
    match v {
        Value::Array(a) if !a.is_empty() => a.iter().map(one).collect(),
        Value::Array(_) => malformed(format!("Empty value list in condition operator {op}")),
        x => Ok(vec![one(x)?]),
    }
}

/// Values the operator cannot compare are refused when stored, not at request time.
fn check_value(test: Test, v: &str, op: &str) -> Result<(), MalformedPolicy> {
    let ok = match test {
        Test::Numeric(_) => v.parse::<f64>().is_ok(),
        Test::Date(_) => parse_date(v).is_some(),
        Test::Bool | Test::Null => {
            v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
        }
        Test::Ip => parse_cidr(v).is_some(),
        _ => true,
    };
    if !ok {
        return malformed(format!("Invalid value {v:?} for condition operator {op}"));
    }
    Ok(())
}

fn parse_operator(op: &str) -> Result<(Test, bool, bool, SetOp), MalformedPolicy> {
    let (set, rest) = if let Some(r) = op.strip_prefix("ForAnyValue:") {
        (SetOp::AnyValue, r)
    } else if let Some(r) = op.strip_prefix("ForAllValues:") {
        (SetOp::AllValues, r)
    } else {
        (SetOp::Single, op)
    };
    let (name, if_exists) = match rest.strip_suffix("IfExists") {
        Some(n) if n != "Null" => (n, true),
        _ => (rest, false),
    };
    let (test, negated) = match name {
        "StringEquals" => (Test::StringEquals { ignore_case: false }, false),
        "StringNotEquals" => (Test::StringEquals { ignore_case: false }, true),
        "StringEqualsIgnoreCase" => (Test::StringEquals { ignore_case: true }, false),
        "StringNotEqualsIgnoreCase" => (Test::StringEquals { ignore_case: true }, true),
        "StringLike" => (Test::StringLike, false),
        "StringNotLike" => (Test::StringLike, true),
        "NumericEquals" => (Test::Numeric(Cmp::Eq), false),
        "NumericNotEquals" => (Test::Numeric(Cmp::Eq), true),
        "NumericLessThan" => (Test::Numeric(Cmp::Lt), false),
        "NumericLessThanEquals" => (Test::Numeric(Cmp::Le), false),
        "NumericGreaterThan" => (Test::Numeric(Cmp::Gt), false),
        "NumericGreaterThanEquals" => (Test::Numeric(Cmp::Ge), false),
        "DateEquals" => (Test::Date(Cmp::Eq), false),
        "DateNotEquals" => (Test::Date(Cmp::Eq), true),
        "DateLessThan" => (Test::Date(Cmp::Lt), false),
        "DateLessThanEquals" => (Test::Date(Cmp::Le), false),
        "DateGreaterThan" => (Test::Date(Cmp::Gt), false),
        "DateGreaterThanEquals" => (Test::Date(Cmp::Ge), false),
        "Bool" => (Test::Bool, false),
        "IpAddress" => (Test::Ip, false),
        "NotIpAddress" => (Test::Ip, true),
        "ArnEquals" | "ArnLike" => (Test::Arn, false),
        "ArnNotEquals" | "ArnNotLike" => (Test::Arn, true),
        "Null" if set == SetOp::Single => (Test::Null, false),
        _ => {
            return malformed(format!(
                "Invalid condition operator: {op} (operators this gateway evaluates: docs/BUCKET-POLICY.md)"
            ));
        }
    };
    Ok((test, negated, if_exists, set))
}

impl Condition {
    /// AWS's rules: the values of one key are alternatives (a negated operator holds when none
    /// matches); a key absent from the request fails a positive operator and passes a negated
    /// one, passes any `…IfExists`, and is what `Null: true` asks for.
    fn holds(&self, keys: &BTreeMap<String, Vec<String>>) -> bool {
        let found = keys.get(&self.key).filter(|v| !v.is_empty());
        if self.test == Test::Null {
            let absent = found.is_none();
            return self
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case("true") == absent);
        }
        let Some(found) = found else {
            return self.if_exists
                || match self.set {
                    SetOp::AllValues => true,
                    SetOp::AnyValue => false,
                    SetOp::Single => self.negated,
                };
        };
        let matches = |v: &String| self.values.iter().any(|p| self.test.matches(v, p));
        match (self.set, self.negated) {
            (SetOp::Single, false) | (SetOp::AnyValue, false) => found.iter().any(matches),
            (SetOp::Single, true) => !found.iter().any(matches),
            (SetOp::AnyValue, true) => found.iter().any(|v| !matches(v)),
            (SetOp::AllValues, false) => found.iter().all(matches),
            (SetOp::AllValues, true) => found.iter().all(|v| !matches(v)),
        }
    }
}

impl Test {
    /// Whether the request's `value` matches the policy's `pattern` (the positive sense).
    fn matches(self, value: &str, pattern: &str) -> bool {
        match self {
            Test::StringEquals { ignore_case: false } => value == pattern,
            Test::StringEquals { ignore_case: true } => value.eq_ignore_ascii_case(pattern),
            Test::StringLike | Test::Arn => wildcard(pattern, value, false),
            Test::Numeric(cmp) => match (value.parse::<f64>(), pattern.parse::<f64>()) {
                (Ok(a), Ok(b)) => compare(cmp, a.partial_cmp(&b)),
                _ => false,
            },
            Test::Date(cmp) => match (parse_date(value), parse_date(pattern)) {
                (Some(a), Some(b)) => compare(cmp, Some(a.cmp(&b))),
                _ => false,
            },
            Test::Bool => value.eq_ignore_ascii_case(pattern),
            Test::Ip => match (value.parse::<IpAddr>(), parse_cidr(pattern)) {
                (Ok(ip), Some(net)) => net.contains(&ip),
                _ => false,
            },
            Test::Null => false,
        }
    }
}

fn compare(cmp: Cmp, o: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::*;
    matches!(
        (cmp, o),
        (Cmp::Eq, Some(Equal))
            | (Cmp::Lt, Some(Less))
            | (Cmp::Le, Some(Less | Equal))
            | (Cmp::Gt, Some(Greater))
            | (Cmp::Ge, Some(Greater | Equal))
    )
}

/// A date of a condition: RFC 3339 (`2026-12-05T10:00:00Z`) or seconds since the epoch; as
/// nanoseconds since the epoch.
fn parse_date(v: &str) -> Option<i128> {
    if let Ok(secs) = v.parse::<i64>() {
        return Some(i128::from(secs) * 1_000_000_000);
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

/// An address or a network in CIDR notation.
fn parse_cidr(v: &str) -> Option<ipnet::IpNet> {
    v.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| v.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

/// `*` (any run) and `?` (any one character) matching of `text` against `pattern`.
fn wildcard(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(perm: &'static str, resource: &str) -> PolicyRequest {
        PolicyRequest {
            principal: "alice".into(),
            tenant: "acme".into(),
            permissions: vec![perm],
            resource: resource.into(),
            keys: BTreeMap::new(),
        }
    }

    fn deny(action: &str, resource: &str, condition: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"s1","Effect":"Deny","Principal":"*","Action":"{action}","Resource":"{resource}"{condition}}}]}}"#
        )
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("b/*", "b/x/y", false));
        assert!(wildcard("b/a?c", "b/abc", false));
        assert!(!wildcard("b/a?c", "b/ac", false));
        assert!(wildcard("*", "", false));
        assert!(wildcard("s3:get*", "s3:getobject", true));
        assert!(wildcard("s3:Get*", "s3:getObject", true));
        assert!(!wildcard("b", "b/x", false));
        assert!(wildcard(
            "http://www.example.com/*",
            "http://www.example.com/",
            false
        ));
        assert!(!wildcard(
            "http://www.example.com/*",
            "http://example.com",
            false
        ));
        assert!(wildcard("a*b*c", "aXXbYYc", false));
        assert!(!wildcard("a*b*c", "aXXbYY", false));
    }

    #[test]
    fn deny_without_encryption_header() {
        let p = BucketPolicy::parse(
            &deny(
                "s3:PutObject",
                "arn:aws:s3:::b/*",
                r#","Condition":{"Null":{"s3:x-amz-server-side-encryption":"true"}}"#,
            ),
            "b",
        )
        .unwrap();
        let mut r = req("s3:PutObject", "b/k");
        assert_eq!(p.denial(&r), Some("s1"));
        r.set("s3:x-amz-server-side-encryption", "AES256");
        assert_eq!(p.denial(&r), None);
        // another permission or the bucket itself: not this statement
        assert_eq!(p.denial(&req("s3:GetObject", "b/k")), None);
        assert_eq!(p.denial(&req("s3:PutObject", "b")), None);
    }

    #[test]
    fn negated_operators_and_absent_keys() {
        let p = BucketPolicy::parse(
            &deny(
                "s3:PutObject",
                "arn:aws:s3:::b/*",
                r#","Condition":{"StringNotEquals":{"s3:x-amz-server-side-encryption":"AES256"}}"#,
            ),
            "b",
        )
        .unwrap();
        let mut r = req("s3:PutObject", "b/k");
        // absent: a negated operator holds (AWS), so the statement denies
        assert!(p.denial(&r).is_some());
        r.set("s3:x-amz-server-side-encryption", "AES192");
        assert!(p.denial(&r).is_some());
        r.set("s3:x-amz-server-side-encryption", "AES256");
        assert!(p.denial(&r).is_none());
        let if_exists = BucketPolicy::parse(
            &deny(
                "s3:PutObject",
                "arn:aws:s3:::b/*",
                r#","Condition":{"StringNotEqualsIfExists":{"s3:x-amz-server-side-encryption":"AES256"}}"#,
            ),
            "b",
        )
        .unwrap();
        let mut r = req("s3:PutObject", "b/k");
        assert!(if_exists.denial(&r).is_some(), "IfExists holds when absent");
        r.set("s3:x-amz-server-side-encryption", "AES256");
        assert!(if_exists.denial(&r).is_none());
    }

    #[test]
    fn principals_actions_resources() {
        let p = BucketPolicy::parse(
            r#"{"Statement":[{"Effect":"Deny","Principal":{"AWS":["arn:aws:iam::acme:user/bob"]},"Action":["s3:Get*","s3:ListBucket"],"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/secret/*"]}]}"#,
            "b",
        )
        .unwrap();
        let mut r = req("s3:GetObject", "b/secret/x");
        assert!(p.denial(&r).is_none(), "alice is not bob");
        r.principal = "bob".into();
        assert_eq!(p.denial(&r), Some(""));
        r.tenant = "other".into();
        assert!(p.denial(&r).is_none(), "bob of another tenant");
        let mut r = req("s3:GetObject", "b/public/x");
        r.principal = "bob".into();
        assert!(p.denial(&r).is_none());
        let mut r = req("s3:ListBucket", "b");
        r.principal = "bob".into();
        assert!(p.denial(&r).is_some());
        let tenant = BucketPolicy::parse(
            r#"{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::acme:root"},"NotAction":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
            "b",
        )
        .unwrap();
        assert!(tenant.denial(&req("s3:PutObject", "b/k")).is_none());
        let mut r = req("s3:PutObject", "b/k");
        r.tenant = "other".into();
        assert!(tenant.denial(&r).is_some());
        r.permissions = vec!["s3:GetObject"];
        assert!(tenant.denial(&r).is_none());
    }

    #[test]
    fn addresses_dates_numbers() {
        let p = BucketPolicy::parse(
            &deny(
                "s3:*",
                "arn:aws:s3:::b/*",
                r#","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.1.7"]}}"#,
            ),
            "b",
        )
        .unwrap();
        let mut r = req("s3:GetObject", "b/k");
        r.set("aws:sourceip", "10.1.2.3");
        assert!(p.denial(&r).is_none());
        r.set("aws:sourceip", "192.168.1.7");
        assert!(p.denial(&r).is_none());
        r.set("aws:sourceip", "192.168.1.8");
        assert!(p.denial(&r).is_some());
        let late = BucketPolicy::parse(
            &deny(
                "s3:GetObject",
                "arn:aws:s3:::b/*",
                r#","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},"NumericGreaterThan":{"s3:max-keys":"10"}}"#,
            ),
            "b",
        )
        .unwrap();
        let mut r = req("s3:GetObject", "b/k");
        r.set("aws:currenttime", "2031-05-01T00:00:00Z");
        r.set("s3:max-keys", "11");
        assert!(late.denial(&r).is_some());
        r.set("s3:max-keys", "10");
        assert!(late.denial(&r).is_none(), "both operators must hold");
    }

    #[test]
    fn tag_sets() {
        let p = BucketPolicy::parse(
            &deny(
                "s3:PutObject",
                "arn:aws:s3:::b/*",
                r#","Condition":{"ForAnyValue:StringNotEquals":{"s3:RequestObjectTagKeys":["team","env"]}}"#,
            ),
            "b",
        )
        .unwrap();
        let mut r = req("s3:PutObject", "b/k");
        r.keys
            .insert("s3:requestobjecttagkeys".into(), vec!["team".into()]);
        assert!(p.denial(&r).is_none());
        r.keys.insert(
            "s3:requestobjecttagkeys".into(),
            vec!["team".into(), "cost".into()],
        );
        assert!(p.denial(&r).is_some());
    }

    #[test]
    fn public_documents() {
        let public = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        assert!(
            BucketPolicy::parse(public, "b")
                .unwrap()
                .grants_public_access()
        );
        let account = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::s3tenant1:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        assert!(
            !BucketPolicy::parse(account, "b")
                .unwrap()
                .grants_public_access()
        );
        let pinned = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;
        assert!(
            !BucketPolicy::parse(pinned, "b")
                .unwrap()
                .grants_public_access()
        );
        let denying = deny("s3:*", "arn:aws:s3:::b/*", "");
        assert!(
            !BucketPolicy::parse(&denying, "b")
                .unwrap()
                .grants_public_access()
        );
    }

    #[test]
    fn malformed_documents_are_refused_with_a_reason() {
        let bad = [
            ("not json", "valid JSON"),
            ("[]", "JSON object"),
            (r#"{"Statement":[]}"#, "Statement"),
            (r#"{"Version":"2013-01-01","Statement":[]}"#, "Version"),
            (
                r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
                "effect",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
                "Principal",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"iam:PassRole","Resource":"arn:aws:s3:::b/*"}]}"#,
                "invalid action",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#,
                "invalid resource",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringEquals":{"aws:SourceVpc":"vpc-1"}}}]}"#,
                "condition key",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringSortOf":{"s3:prefix":"a"}}}]}"#,
                "condition operator",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"not-an-ip"}}}]}"#,
                "Invalid value",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}]}"#,
                "variables",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::acme:role/r"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
                "principal",
            ),
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","NotAction":"s3:PutObject","Resource":"arn:aws:s3:::b/*"}]}"#,
                "both",
            ),
        ];
        for (doc, why) in bad {
            let e = BucketPolicy::parse(doc, "b").unwrap_err();
            assert!(e.0.contains(why), "{doc}: {e}");
        }
        let big = format!("{{\"Id\":\"{}\"}}", "x".repeat(MAX_POLICY_BYTES));
        assert!(
            BucketPolicy::parse(&big, "b")
                .unwrap_err()
                .0
                .contains("size")
        );
    }
}
