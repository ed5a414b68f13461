//! Legacy region names in SigV4 credential scopes. s3cmd signs with its default bucket location
//! `US` (or `EU`) as the region; s3s checks such a signature and then refuses the request because
//! `US` is not a region name (`invalid credential region`). The signature covers the scope, so
//! the scope cannot simply be rewritten: for a header-signed request whose scope names a legacy
//! region, this layer checks the client's signature itself (aws-sigv4 over the headers the
//! client signed, with the secret of its access key) and, only when it matches, signs the same
//! request again for the gateway's region, which s3s then verifies as usual. Anything else
//! (another region, a presigned URL, a streaming `aws-chunked` body whose chunk signatures chain
//! from the original one, a signature that does not match) passes through unchanged and s3s
//! answers it as before.

use std::time::SystemTime;

use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use subtle::ConstantTimeEq;

use crate::auth::Credentials;

/// Region names older clients send that are not region ids.
const LEGACY: &[&str] = &["US", "EU"];

/// The parts of an `AWS4-HMAC-SHA256` Authorization header.
struct Auth<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse(value: &str) -> Option<Auth<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            cred = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            sig = Some(v);
        }
    }
    let mut scope = cred?.split('/');
    let auth = Auth {
        access_key: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        signed_headers: signed?,
        signature: sig?,
    };
    (scope.next()? == "aws4_request" && scope.next().is_none()).then_some(auth)
}

/// `x-amz-date` (`20260101T120000Z`) as a time.
fn amz_time(v: &str) -> Option<SystemTime> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(v, fmt).ok()?.assume_utc();
    Some(SystemTime::from(t))
}

/// The SigV4 signature of `req` (its signed headers only) for `region`, and the Authorization
/// value carrying it.
fn signature_for<B>(
    req: &http::Request<B>,
    auth: &Auth<'_>,
    secret: &str,
    region: &str,
    at: SystemTime,
    payload_hash: &str,
) -> Option<(String, String)> {
    let names: Vec<&str> = auth.signed_headers.split(';').collect();
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for name in &names {
        for v in req.headers().get_all(*name) {
            headers.push((name, v.to_str().ok()?));
        }
    }
    let uri = req
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Precomputed(payload_hash.to_owned()),
    )
    .ok()?;
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.signature_location = SignatureLocation::Headers;
    settings.excluded_headers = Some(Vec::new());
    let identity = aws_credential_types::Credentials::new(
        auth.access_key,
        secret,
        None,
        None,
        "vaultgate-legacy-region",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(auth.service)
        .time(at)
        .settings(settings)
        .build()
        .ok()?
        .into();
    let out = sign(signable, &params).ok()?;
    let signature = out.signature().to_owned();
    let (instructions, _) = out.into_parts();
    let authorization = instructions
        .headers()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_owned())?;
    Some((signature, authorization))
}

/// Re-signs `req` for `region` when it is signed for a legacy region name and its signature
/// checks out under the access key's secret; otherwise leaves it untouched.
pub(super) async fn map_legacy_region<B>(
    req: &mut http::Request<B>,
    creds: &Credentials,
    region: &str,
) {
    let authorization = || {
        req.headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
    };
    // every request passes here: look before copying anything
    if !authorization()
        .and_then(parse)
        .is_some_and(|a| LEGACY.contains(&a.region) && a.service == "s3")
    {
        return;
    }
    let Some(value) = authorization().map(str::to_owned) else {
        return;
    };
    let Some(auth) = parse(&value) else { return };
    if !LEGACY.contains(&auth.region) || auth.service != "s3" {
        return;
    }
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(payload_hash), Some(date)) = (header("x-amz-content-sha256"), header("x-amz-date"))
    else {
        return;
    };
    let Some(at) = amz_time(&date) else { return };
    if payload_hash.starts_with("STREAMING-") || !date.starts_with(auth.date) {
        return;
    }
    let Ok(Some(secret)) = creds.secret_for_signature(auth.access_key).await else {
        return;
    };
    let Some((given, _)) =
        signature_for(req, &auth, secret.expose(), auth.region, at, &payload_hash)
    else {
        return;
    };
    if !bool::from(given.as_bytes().ct_eq(auth.signature.as_bytes())) {
        return;
    }
    let Some((_, authorization)) =
        signature_for(req, &auth, secret.expose(), region, at, &payload_hash)
    else {
        return;
    };
    if let Ok(v) = http::HeaderValue::from_str(&authorization) {
        tracing::debug!(
            legacy_region = auth.region,
            region,
            "request signed for a legacy region name re-signed for the gateway's region"
        );
        req.headers_mut().insert(http::header::AUTHORIZATION, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_authorization_header() {
        let a = parse("AWS4-HMAC-SHA256 Credential=AK/20260101/US/s3/aws4_request,SignedHeaders=host;x-amz-date,Signature=abc").unwrap();
        assert_eq!(
            (
                a.access_key,
                a.date,
                a.region,
                a.service,
                a.signed_headers,
                a.signature
            ),
            ("AK", "20260101", "US", "s3", "host;x-amz-date", "abc")
        );
        assert!(
            parse(
                "AWS4-HMAC-SHA256 Credential=AK/20260101/US/s3/other,SignedHeaders=h,Signature=a"
            )
            .is_none()
        );
        assert!(parse("AWS AK:sig").is_none());
        assert!(amz_time("20260101T120000Z").is_some());
        assert!(amz_time("2026-01-01").is_none());
    }
}
