//! POST Object forms before s3s sees them. s3s 0.14.1 parses the form, checks its signature
//! and part of its policy, but knows no `${filename}`, refuses checksum fields the policy does
//! not name, accepts malformed expirations and answers a failed condition 400
//! `InvalidPolicyDocument` where S3 answers 403 `AccessDenied`. So the pipeline reads the form
//! first ([`prepare`]): it substitutes the file's name into the `key` field, moves the
//! `x-amz-checksum-*` fields aside (restored by `op_post_object`), checks the policy as AWS
//! does ([`super::post_policy`]) and leaves a [`PostForm`] in the request's extensions. A
//! refusal is answered once the signature is known good: by `op_post_object` (audited with the
//! caller) when s3s let the form through, or by [`PostForm::settle`] in place of s3s's own
//! policy error (s3s checks the signature before the policy).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use memchr::memmem;

use super::post_policy::{self, Refusal, Submitted};
use crate::request::{OpInfo, RequestCtx};

/// Bytes of form fields accepted besides the file (s3s's own bound).
const MAX_FIELDS_BYTES: u64 = 20 * 1024 * 1024;

/// What the pre-pass learnt of a form (request extension).
#[derive(Debug, Default)]
pub(crate) struct PostForm {
    /// the policy's verdict when it refuses the form
    pub refusal: Option<Refusal>,
    /// the `x-amz-checksum-*` fields taken out of the form (lower-case names)
    pub checksums: Vec<(String, String)>,
    /// the access key id the form is signed with (SigV4 credential or SigV2 field)
    pub access_key: Option<String>,
    /// the object key, `${filename}` substituted
    pub key: Option<String>,
}

impl PostForm {
    /// The response to send for a form s3s answered with `resp`: s3s's own policy errors
    /// (raised after its signature check, so the form's key id is verified) give way to this
    /// form's refusal, recorded in `ctx` as the PutObject of the key by that caller.
    pub(crate) async fn settle(
        &self,
        resp: http::Response<s3s::Body>,
        ctx: &RequestCtx,
        bucket: &str,
        creds: &crate::auth::Credentials,
    ) -> http::Response<s3s::Body> {
        let Some(r) = &self.refusal else {
            return resp;
        };
        let status = resp.status().as_u16();
        if status != 400 && status != 403 {
            return resp;
        }
        let code = resp
            .body()
            .bytes()
            .and_then(|b| crate::audit::error_code_of(&b));
        if !matches!(
            code.as_deref(),
            Some("InvalidPolicyDocument" | "AccessDenied" | "EntityTooSmall" | "EntityTooLarge")
        ) {
            return resp;
        }
        ctx.set_op(OpInfo {
            action: Some(policy::Action::PutObject),
            op_name: Some("PostObject".into()),
            access_key: self.access_key.clone(),
            bucket: Some(bucket.to_owned()),
            key: self.key.clone(),
            ..Default::default()
        });
        if let Ok(identity) = creds.identity(self.access_key.as_deref()).await {
            ctx.set_identity(&identity);
        }
        crate::server::error_response(r.status, r.code, &r.message)
    }
}

/// One part of a form: its lower-case name, its file name, the bytes of its value and of the
/// whole part (from its delimiter to the next one).
struct Part {
    name: String,
    filename: Option<String>,
    value: Range<usize>,
    span: Range<usize>,
}

/// The `boundary` of a `multipart/form-data` content type.
fn boundary_of(headers: &http::HeaderMap) -> Option<String> {
    let ct = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let mut it = ct.split(';');
    if !it
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    it.filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty())
}

/// `name` and `filename` of a part's Content-Disposition.
fn disposition(v: &[u8]) -> Option<(String, Option<String>)> {
    let v = std::str::from_utf8(v).ok()?;
    let (mut name, mut filename) = (None, None);
    for p in v.split(';').skip(1) {
        let Some((k, val)) = p.split_once('=') else {
            continue;
        };
        let val = val.trim().trim_matches('"').to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(val),
            "filename" => filename = Some(val),
            _ => {}
        }
    }
    Some((name?.to_ascii_lowercase(), filename))
}

/// The parts of a form up to and including its file (S3 ignores what follows the file);
/// None when the form is malformed.
fn parts(body: &[u8], boundary: &str) -> Option<Vec<Part>> {
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n{delim}");
    let next = memmem::Finder::new(next_delim.as_bytes());
    let mut at = memmem::find(body, delim.as_bytes())?;
    let mut out = Vec::new();
    loop {
        let start = at + delim.len();
        if body.get(start..start + 2)? != b"\r\n" {
            return None; // the closing delimiter before any file
        }
        let head_end = memmem::find(&body[start + 2..], b"\r\n\r\n")? + start + 2;
        let mut hs = [httparse::EMPTY_HEADER; 8];
        let headers = match httparse::parse_headers(&body[start + 2..head_end + 4], &mut hs) {
            Ok(httparse::Status::Complete((_, h))) => h,
            _ => return None,
        };
        let cd = headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-disposition"))?;
        let (name, filename) = disposition(cd.value)?;
        let value_start = head_end + 4;
        let value_end = next.find(&body[value_start..])? + value_start;
        let is_file = name == "file";
        out.push(Part {
            name,
            filename,
            value: value_start..value_end,
            span: at..value_end + 2,
        });
        if is_file {
            return Some(out);
        }
        at = value_end + 2;
    }
}

/// The request as s3s is to see it, with its [`PostForm`]; an answer instead when the form
/// cannot be read. Requests other than a form POST to a bucket pass untouched.
pub(crate) async fn prepare(
    req: http::Request<s3s::Body>,
    bucket: &str,
    max_file: u64,
) -> Result<http::Request<s3s::Body>, http::Response<s3s::Body>> {
    if req.method() != http::Method::POST || bucket.is_empty() {
        return Ok(req);
    }
    let Some(boundary) = boundary_of(req.headers()) else {
        return Ok(req);
    };
    let (mut head, body) = req.into_parts();
    let limit = usize::try_from(max_file.saturating_add(MAX_FIELDS_BYTES)).unwrap_or(usize::MAX);
    let body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(crate::server::error_response(
                http::StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
            ));
        }
        Err(_) => return Err(malformed()),
    };
    let Some(parts) = parts(&body, &boundary) else {
        return Err(malformed());
    };
    if let Some(refusal) = unsigned_policy(&parts) {
        return Err(refusal);
    }
    let (body, form) = rework(body, &parts, bucket);
    head.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body.len()),
    );
    head.extensions.insert(Arc::new(form));
    Ok(http::Request::from_parts(head, s3s::Body::from(body)))
}

/// 400 InvalidArgument for a form that carries a policy but no signature (S3 does not take
/// such a form for an anonymous one).
fn unsigned_policy(parts: &[Part]) -> Option<http::Response<s3s::Body>> {
    let has = |n: &str| parts.iter().any(|p| p.name == n);
    (has("policy") && !has("signature") && !has("x-amz-signature")).then(|| {
        crate::server::error_response(
            http::StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Bucket POST must contain a field named 'X-Amz-Signature'. If it is specified, \
             please check the order of the fields.",
        )
    })
}

fn malformed() -> http::Response<s3s::Body> {
    crate::server::error_response(
        http::StatusCode::BAD_REQUEST,
        "MalformedPOSTRequest",
        "The body of your POST request is not well-formed multipart/form-data.",
    )
}

/// The body s3s is to read (key substituted, checksum fields out) and the [`PostForm`].
fn rework(body: Bytes, parts: &[Part], bucket: &str) -> (Bytes, PostForm) {
    let text = |r: &Range<usize>| String::from_utf8_lossy(&body[r.clone()]).into_owned();
    let filename = parts
        .iter()
        .find(|p| p.name == "file")
        .and_then(|p| p.filename.clone());
    let fields: Vec<(String, String)> = parts
        .iter()
        .filter(|p| p.name != "file")
        .map(|p| (p.name.clone(), text(&p.value)))
        .collect();
    let raw_key = fields
        .iter()
        .find(|(n, _)| n == "key")
        .map(|(_, v)| v.clone());
    let key = match (&raw_key, &filename) {
        (Some(k), Some(f)) => Some(k.replace("${filename}", f)),
        (k, _) => k.clone(),
    };
    let file_size = parts
        .iter()
        .find(|p| p.name == "file")
        .map_or(0, |p| (p.value.end - p.value.start) as u64);
    let refusal = fields
        .iter()
        .find(|(n, _)| n == "policy")
        .and_then(|(_, b64)| {
            let submitted = Submitted {
                fields: &fields,
                bucket,
                key: key.as_deref(),
                file_size,
            };
            post_policy::check(b64, &submitted, policy::now_ms()).err()
        });
    let checksums: Vec<(String, String)> = fields
        .iter()
        .filter(|(n, _)| n.starts_with("x-amz-checksum-"))
        .cloned()
        .collect();
    let access_key = fields
        .iter()
        .find(|(n, _)| n == "x-amz-credential" || n == "awsaccesskeyid")
        .and_then(|(_, v)| v.split('/').next())
        .map(str::to_owned);
    let form = PostForm {
        refusal,
        checksums,
        access_key,
        key: key.clone(),
    };
    if key == raw_key && form.checksums.is_empty() {
        return (body, form);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut copied = 0;
    for p in parts {
        out.extend_from_slice(&body[copied..p.span.start]);
        copied = p.span.end;
        if p.name.starts_with("x-amz-checksum-") {
            continue;
        }
        match (&key, p.name.as_str()) {
            (Some(k), "key") => {
                out.extend_from_slice(&body[p.span.start..p.value.start]);
                out.extend_from_slice(k.as_bytes());
                out.extend_from_slice(&body[p.value.end..p.span.end]);
            }
            _ => out.extend_from_slice(&body[p.span.clone()]),
        }
    }
    out.extend_from_slice(&body[copied..]);
    (Bytes::from(out), form)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)], file: (&str, &[u8])) -> Vec<u8> {
        let mut b = Vec::new();
        for (k, v) in fields {
            b.extend_from_slice(
                format!("--XyZ\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                    .as_bytes(),
            );
        }
        b.extend_from_slice(
            format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
                 Content-Type: text/plain\r\n\r\n",
                file.0
            )
            .as_bytes(),
        );
        b.extend_from_slice(file.1);
        b.extend_from_slice(b"\r\n--XyZ--\r\n");
        b
    }

    #[test]
    fn substitutes_filename_and_moves_checksums() {
        let body = form(
            &[
                ("Key", "up/${filename}"),
                ("x-amz-checksum-crc32", "AAAAAA=="),
            ],
            ("a.txt", b"hello\r\nworld"),
        );
        let ps = parts(&body, "XyZ").unwrap();
        assert_eq!(ps.len(), 3);
        let (out, f) = rework(Bytes::from(body), &ps, "b1");
        assert_eq!(
            f.checksums,
            vec![("x-amz-checksum-crc32".into(), "AAAAAA==".into())]
        );
        assert!(f.refusal.is_none());
        let again = parts(&out, "XyZ").unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(&out[again[0].value.clone()], b"up/a.txt");
        assert_eq!(&out[again[1].value.clone()], b"hello\r\nworld");
    }

    #[test]
    fn malformed_forms_are_none() {
        assert!(parts(b"garbage", "XyZ").is_none());
        assert!(parts(b"--XyZ--\r\n", "XyZ").is_none());
        let cut = b"--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk";
        assert!(parts(cut, "XyZ").is_none());
    }
}
