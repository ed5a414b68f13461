//! CORS: Put/Get/DeleteBucketCors (a bucket setting, validated as S3 does: 1 to 100 rules,
//! methods among GET, PUT, POST, DELETE and HEAD, at most one `*` in an origin or an allowed
//! header, no `*` in an exposed header, IDs of at most 255 characters), the answer to a browser's
//! preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`, unauthenticated, see
//! [`preflight`]) and the `Access-Control-*` headers of the actual responses ([`response_headers`],
//! added by the S3 pipeline when the request's Origin matches a rule).
//!
//! A preflight is answered by the pipeline before s3s (a browser sends it without credentials,
//! to the same URL as the request it announces, presigned query included, so s3s would check a
//! signature made for another method). Its refusal is one answer whatever the reason (no such
//! bucket, no configuration, no rule for this origin, method and headers): 403 AccessForbidden,
//! so that a preflight tells no more than whether some rule of the bucket allows the request,
//! which CORS has to reveal anyway.

use http::{HeaderMap, HeaderValue, StatusCode};
use s3s::S3Request;
use s3s::dto::*;
use serde::{Deserialize, Serialize};

use super::Gateway;
use crate::error::{Error, Result};
use crate::index::SETTING_CORS;
use crate::request::RequestCtx;
use crate::store::Store;

/// Most rules in one configuration (S3).
pub const MAX_RULES: usize = 100;
/// Longest rule ID (S3).
pub const MAX_RULE_ID: usize = 255;
/// The methods a rule may allow (S3).
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];
/// The message of every refused preflight (S3's).
const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually because \
     the evalution of Origin, request method / Access-Control-Request-Method or \
     Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.";

/// One stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    origins: Vec<String>,
    methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    expose: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age: Option<i32>,
}

/// A bucket's stored CORS configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cors {
    rules: Vec<Rule>,
}

fn malformed(msg: &str) -> Error {
    Error::MalformedXml(msg.to_owned())
}

fn invalid_request(msg: String) -> Error {
    Error::InvalidRequest(msg)
}

/// `pattern` (at most one `*`, matching any run of characters) matches `s`; `fold` compares
/// without case (header names).
fn wildcard_match(pattern: &str, s: &str, fold: bool) -> bool {
    let (p, s) = if fold {
        (pattern.to_ascii_lowercase(), s.to_ascii_lowercase())
    } else {
        (pattern.to_owned(), s.to_owned())
    };
    match p.split_once('*') {
        None => p == s,
        Some((pre, post)) => {
            s.len() >= pre.len() + post.len() && s.starts_with(pre) && s.ends_with(post)
        }
    }
}

fn rule_of(r: CORSRule) -> Result<Rule> {
    if r.allowed_methods.is_empty() {
        return Err(malformed("a CORSRule needs at least one AllowedMethod"));
    }
    if r.allowed_origins.is_empty() {
        return Err(malformed("a CORSRule needs at least one AllowedOrigin"));
    }
    for m in &r.allowed_methods {
        if !METHODS.contains(&m.as_str()) {
            return Err(invalid_request(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
            )));
        }
    }
    for o in &r.allowed_origins {
        if o.matches('*').count() > 1 {
            return Err(invalid_request(format!(
                "AllowedOrigin \"{o}\" can not have more than one wildcard."
            )));
        }
    }
    let headers = r.allowed_headers.unwrap_or_default();
    for h in &headers {
        if h.matches('*').count() > 1 {
            return Err(invalid_request(format!(
                "AllowedHeader \"{h}\" can not have more than one wildcard."
            )));
        }
    }
    let expose = r.expose_headers.unwrap_or_default();
    for h in &expose {
        if h.contains('*') {
            return Err(invalid_request(format!(
                "ExposeHeader \"{h}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
            )));
        }
    }
    if r.id
        .as_ref()
        .is_some_and(|id| id.chars().count() > MAX_RULE_ID)
    {
        return Err(Error::InvalidArgument(format!(
            "The ID of a CORSRule is at most {MAX_RULE_ID} characters"
        )));
    }
    if r.max_age_seconds.is_some_and(|a| a < 0) {
        return Err(Error::InvalidArgument(
            "MaxAgeSeconds must not be negative".to_owned(),
        ));
    }
    Ok(Rule {
        id: r.id,
        origins: r.allowed_origins,
        methods: r.allowed_methods,
        headers,
        expose,
        max_age: r.max_age_seconds,
    })
}

impl Cors {
    /// The configuration a PutBucketCors carries, validated.
    pub(crate) fn from_request(cfg: CORSConfiguration) -> Result<Cors> {
        if cfg.cors_rules.is_empty() {
            return Err(malformed("a CORSConfiguration needs at least one CORSRule"));
        }
        if cfg.cors_rules.len() > MAX_RULES {
            return Err(malformed(&format!(
                "a CORSConfiguration has at most {MAX_RULES} rules"
            )));
        }
        let rules = cfg
            .cors_rules
            .into_iter()
            .map(rule_of)
            .collect::<Result<_>>()?;
        Ok(Cors { rules })
    }

    fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(format!("cors to json: {e}")))
    }

    fn from_json(bucket: &str, json: &str) -> Result<Cors> {
        serde_json::from_str(json)
            .map_err(|e| Error::Internal(format!("stored CORS configuration of {bucket}: {e}")))
    }

    /// The first rule allowing `origin` to send `method` with the (lower-case) `headers`.
    fn matching(&self, origin: &str, method: &str, headers: &[String]) -> Option<&Rule> {
        self.rules.iter().find(|r| {
            r.origins.iter().any(|o| wildcard_match(o, origin, false))
                && r.methods.iter().any(|m| m == method)
                && headers
                    .iter()
                    .all(|h| r.headers.iter().any(|a| wildcard_match(a, h, true)))
        })
    }
}

fn rule_out(r: &Rule) -> CORSRule {
    CORSRule {
        id: r.id.clone(),
        allowed_origins: r.origins.clone(),
        allowed_methods: r.methods.clone(),
        allowed_headers: (!r.headers.is_empty()).then(|| r.headers.clone()),
        expose_headers: (!r.expose.is_empty()).then(|| r.expose.clone()),
        max_age_seconds: r.max_age,
    }
}

/// The bucket's CORS configuration (None without one, or when the bucket does not exist).
async fn stored(store: &Store, bucket: &str) -> Option<Cors> {
    match store.bucket_setting(bucket, SETTING_CORS).await {
        Ok(Some(json)) => match Cors::from_json(bucket, &json) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(%bucket, error = %e, "CORS configuration unreadable");
                None
            }
        },
        Ok(None) | Err(Error::NoSuchBucket(_)) => None,
        Err(e) => {
            tracing::warn!(%bucket, error = %e, "CORS configuration unreadable");
            None
        }
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn put(h: &mut HeaderMap, name: &'static str, v: &str) {
    if let Ok(v) = HeaderValue::from_str(v) {
        h.insert(name, v);
    }
}

/// The `Access-Control-*` headers a matching rule grants `origin`.
fn grant(h: &mut HeaderMap, rule: &Rule, origin: &str) {
    let any = rule.origins.iter().any(|o| o == "*");
    put(
        h,
        "access-control-allow-origin",
        if any { "*" } else { origin },
    );
    put(h, "access-control-allow-methods", &rule.methods.join(", "));
    if !any {
        put(h, "access-control-allow-credentials", "true");
    }
    if !rule.expose.is_empty() {
        put(h, "access-control-expose-headers", &rule.expose.join(", "));
    }
    if let Some(age) = rule.max_age {
        put(h, "access-control-max-age", &age.to_string());
    }
}

/// The answer to a preflight `OPTIONS` on `bucket` (None: the service root): 200 with the
/// granting rule's headers, 400 BadRequest without `Origin` or `Access-Control-Request-Method`,
/// else 403 AccessForbidden.
pub(crate) async fn preflight(
    store: &Store,
    bucket: Option<&str>,
    h: &HeaderMap,
) -> http::Response<s3s::Body> {
    use crate::server::error_response;
    let Some(origin) = header(h, "origin").filter(|o| !o.is_empty()) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        );
    };
    let Some(method) = header(h, "access-control-request-method").filter(|m| !m.is_empty()) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid Access-Control-Request-Method header.",
        );
    };
    let requested: Vec<String> = header(h, "access-control-request-headers")
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let cors = match bucket {
        Some(b) => stored(store, b).await,
        None => None,
    };
    let Some(rule) = cors
        .as_ref()
        .and_then(|c| c.matching(origin, method, &requested))
    else {
        return error_response(StatusCode::FORBIDDEN, "AccessForbidden", NOT_ALLOWED);
    };
    let mut resp = http::Response::new(s3s::Body::empty());
    let hs = resp.headers_mut();
    grant(hs, rule, origin);
    if !requested.is_empty() {
        put(hs, "access-control-allow-headers", &requested.join(", "));
    }
    put(
        hs,
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
    put(hs, "content-length", "0");
    resp
}

/// The `Access-Control-*` headers (and `Vary: Origin`) of an actual response to a request
/// from `origin` on `bucket` whose method (or, as RGW reads it, its
/// `Access-Control-Request-Method`) a rule allows; nothing when no rule matches. Error
/// responses get them too, so that the page can read the error.
pub(crate) async fn response_headers(
    store: &Store,
    bucket: &str,
    origin: &str,
    method: &str,
) -> Option<HeaderMap> {
    if bucket.is_empty() || origin.is_empty() {
        return None;
    }
    let cors = stored(store, bucket).await?;
    let rule = cors.matching(origin, method, &[])?;
    let mut out = HeaderMap::new();
    grant(&mut out, rule, origin);
    out.insert(http::header::VARY, HeaderValue::from_static("Origin"));
    Some(out)
}

impl Gateway {
    pub(super) async fn op_put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> Result<PutBucketCorsOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        self.require_bucket(&i.bucket).await?;
        let cors = Cors::from_request(i.cors_configuration)?;
        self.store
            .set_bucket_setting(
                &i.bucket,
                SETTING_CORS,
                Some(&cors.to_json()?),
                audit.as_ref(),
            )
            .await?;
        tracing::info!(bucket = %i.bucket, rules = cors.rules.len(), "CORS configuration set");
        Ok(PutBucketCorsOutput::default())
    }

    pub(super) async fn op_get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> Result<GetBucketCorsOutput> {
        let bucket = req.input.bucket;
        let Some(json) = self.store.bucket_setting(&bucket, SETTING_CORS).await? else {
            return Err(Error::Client(s3s::s3_error!(
                NoSuchCORSConfiguration,
                "The CORS configuration does not exist"
            )));
        };
        let cors = Cors::from_json(&bucket, &json)?;
        Ok(GetBucketCorsOutput {
            cors_rules: Some(cors.rules.iter().map(rule_out).collect()),
        })
    }

    pub(super) async fn op_delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> Result<DeleteBucketCorsOutput> {
        let audit = RequestCtx::of(&req.extensions);
        self.store
            .set_bucket_setting(&req.input.bucket, SETTING_CORS, None, audit.as_ref())
            .await?;
        Ok(DeleteBucketCorsOutput::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str]) -> CORSRule {
        CORSRule {
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            allowed_methods: methods.iter().map(|s| (*s).to_owned()).collect(),
            allowed_headers: None,
            expose_headers: None,
            id: None,
            max_age_seconds: None,
        }
    }

    fn cfg(rules: Vec<CORSRule>) -> CORSConfiguration {
        CORSConfiguration { cors_rules: rules }
    }

    fn code(e: Error) -> String {
        s3s::S3Error::from(e).code().as_str().to_owned()
    }

    #[test]
    fn configurations_are_validated_as_s3_does() {
        let ok = Cors::from_request(cfg(vec![rule(&["*.example"], &["GET", "PUT"])])).unwrap();
        assert_eq!(ok.rules.len(), 1);
        assert_eq!(
            code(Cors::from_request(cfg(vec![])).unwrap_err()),
            "MalformedXML"
        );
        let many = (0..=MAX_RULES).map(|_| rule(&["a"], &["GET"])).collect();
        assert_eq!(
            code(Cors::from_request(cfg(many)).unwrap_err()),
            "MalformedXML"
        );
        let hundred = (0..MAX_RULES).map(|_| rule(&["a"], &["GET"])).collect();
        assert!(Cors::from_request(cfg(hundred)).is_ok());
        for bad in [
            rule(&["a"], &["PATCH"]),
            rule(&["a"], &["get"]),
            rule(&["*a*"], &["GET"]),
            CORSRule {
                allowed_headers: Some(vec!["x-*-*".into()]),
                ..rule(&["a"], &["GET"])
            },
            CORSRule {
                expose_headers: Some(vec!["x-*".into()]),
                ..rule(&["a"], &["GET"])
            },
        ] {
            assert_eq!(
                code(Cors::from_request(cfg(vec![bad.clone()])).unwrap_err()),
                "InvalidRequest",
                "{bad:?}"
            );
        }
        assert_eq!(
            code(Cors::from_request(cfg(vec![rule(&[], &["GET"])])).unwrap_err()),
            "MalformedXML"
        );
        let long_id = CORSRule {
            id: Some("i".repeat(256)),
            ..rule(&["a"], &["GET"])
        };
        assert_eq!(
            code(Cors::from_request(cfg(vec![long_id])).unwrap_err()),
            "InvalidArgument"
        );
    }

    #[test]
    fn rules_match_origin_method_and_headers() {
        let c = Cors::from_request(cfg(vec![
            rule(&["*suffix"], &["GET"]),
            rule(&["start*end"], &["GET"]),
            rule(&["prefix*"], &["GET"]),
            rule(&["*.put"], &["PUT"]),
            CORSRule {
                allowed_headers: Some(vec!["x-amz-*".into(), "Content-Type".into()]),
                ..rule(&["https://app.example"], &["PUT", "POST"])
            },
        ]))
        .unwrap();
        let m = |o: &str, me: &str, h: &[&str]| {
            let h: Vec<String> = h.iter().map(|s| (*s).to_owned()).collect();
            c.matching(o, me, &h).is_some()
        };
        // the s3-tests cases (test_cors_origin_response)
        assert!(m("foo.suffix", "GET", &[]));
        assert!(!m("foo.bar", "GET", &[]));
        assert!(!m("foo.suffix.get", "GET", &[]));
        assert!(m("startend", "GET", &[]));
        assert!(m("start12end", "GET", &[]));
        assert!(!m("0start12end", "GET", &[]));
        assert!(m("prefix.suffix", "GET", &[]));
        assert!(!m("bla.prefix", "GET", &[]));
        assert!(!m("foo.put", "GET", &[]));
        assert!(m("foo.put", "PUT", &[]));
        // headers: each requested one allowed, case-insensitively
        assert!(m(
            "https://app.example",
            "PUT",
            &["x-amz-meta-a", "content-type"]
        ));
        assert!(!m("https://app.example", "PUT", &["authorization"]));
        assert!(!m("foo.suffix", "GET", &["x-amz-meta-header2"]));
        // origins are compared as given
        assert!(!m("HTTPS://APP.EXAMPLE", "PUT", &[]));
    }

    #[test]
    fn stored_form_round_trips() {
        let c = Cors::from_request(cfg(vec![CORSRule {
            id: Some("r1".into()),
            allowed_headers: Some(vec!["*".into()]),
            expose_headers: Some(vec!["ETag".into()]),
            max_age_seconds: Some(600),
            ..rule(&["https://a.example"], &["GET", "HEAD"])
        }]))
        .unwrap();
        let back = Cors::from_json("b", &c.to_json().unwrap()).unwrap();
        assert_eq!(back, c);
        let out = rule_out(&back.rules[0]);
        assert_eq!(out.expose_headers, Some(vec!["ETag".to_owned()]));
        assert_eq!(out.max_age_seconds, Some(600));
    }
}
