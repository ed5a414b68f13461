//! GET/HEAD object with a syntactically invalid `Range` header (`bytes=abc`, `bytes=5-2`,
//! `bytes=-`, multiple ranges): AWS S3 ignores such a header (RFC 9110) and answers 200 with the
//! whole object, while s3s would refuse to parse it. This custom s3s route (matched only for
//! those requests, after signature verification) serves them as a plain GET/HEAD.

use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use s3s::dto::{
    ChecksumMode, ETagCondition, GetObjectInput, GetObjectOutput, Timestamp, TimestampFormat,
};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::checksum::ChecksumFields;
use crate::auth::{Credentials, identify};
use crate::request::{OpInfo, RequestCtx, noted};
use crate::server::host::VirtualBucket;

/// Whether a Range header value is not a single, well-formed byte range.
pub(crate) fn is_invalid_range(v: &str) -> bool {
    let v = v.trim();
    if s3s::dto::Range::parse(v).is_err() {
        return true;
    }
    // s3s reads an empty suffix ("bytes=-") as a zero-length suffix
    v.strip_prefix("bytes=-").is_some_and(|d| d.is_empty())
}

/// The bucket and key of a request: the bucket from the Host header of a virtual-hosted-style
/// request (the pipeline's [`VirtualBucket`], read by the same parser s3s uses) and the whole
/// path as the key, else both from the path.
fn split_path(uri: &Uri, ext: &http::Extensions) -> Option<(String, String)> {
    let path = urlencoding::decode(uri.path()).ok()?;
    let rest = path.strip_prefix('/')?;
    let (bucket, key) = match ext.get::<VirtualBucket>() {
        Some(VirtualBucket(b)) => (b.as_str(), rest),
        None => rest.split_once('/')?,
    };
    if bucket.is_empty() || key.is_empty() {
        return None;
    }
    Some((bucket.to_owned(), key.to_owned()))
}

fn plain_object_query(uri: &Uri) -> bool {
    uri.query().is_none_or(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .all(|(k, _)| k.is_empty() || k.starts_with("X-Amz-") || k == "x-id")
    })
}

/// The route serving GET/HEAD object requests whose Range header must be ignored.
#[derive(Debug, Clone)]
pub struct RangeFallback {
    /// the S3 service
    pub gateway: Gateway,
    /// credential lookup for the role check
    pub creds: Credentials,
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn etag_cond(h: &HeaderMap, name: &str) -> S3Result<Option<ETagCondition>> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => ETagCondition::parse_http_header(v.as_bytes())
            .map(Some)
            .map_err(|_| s3_error!(InvalidArgument, "invalid {name} header")),
    }
}

fn date(h: &HeaderMap, name: &str) -> S3Result<Option<Timestamp>> {
    match header_str(h, name) {
        None => Ok(None),
        Some(v) => Timestamp::parse(TimestampFormat::HttpDate, v)
            .map(Some)
            .map_err(|_| s3_error!(InvalidArgument, "invalid {name} header")),
    }
}

fn put(h: &mut HeaderMap, name: &'static str, v: Option<String>) {
    if let Some(v) = v
        && let Ok(v) = HeaderValue::from_str(&v)
    {
        h.insert(name, v);
    }
}

fn http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

fn response_headers(out: &GetObjectOutput) -> HeaderMap {
    let mut h = HeaderMap::new();
    put(
        &mut h,
        "content-length",
        out.content_length.map(|n| n.to_string()),
    );
    put(&mut h, "accept-ranges", out.accept_ranges.clone());
    put(
        &mut h,
        "etag",
        out.e_tag.as_ref().map(|e| format!("\"{}\"", e.value())),
    );
    put(
        &mut h,
        "last-modified",
        out.last_modified.as_ref().and_then(http_date),
    );
    put(&mut h, "content-type", out.content_type.clone());
    put(&mut h, "content-encoding", out.content_encoding.clone());
    put(
        &mut h,
        "content-disposition",
        out.content_disposition.clone(),
    );
    put(&mut h, "content-language", out.content_language.clone());
    put(&mut h, "cache-control", out.cache_control.clone());
    put(&mut h, "expires", out.expires.as_ref().and_then(http_date));
    put(
        &mut h,
        "x-amz-server-side-encryption",
        out.server_side_encryption
            .as_ref()
            .map(|s| s.as_str().to_owned()),
    );
    put(
        &mut h,
        "x-amz-server-side-encryption-customer-algorithm",
        out.sse_customer_algorithm.clone(),
    );
    put(
        &mut h,
        "x-amz-server-side-encryption-customer-key-md5",
        out.sse_customer_key_md5.clone(),
    );
    for a in keys::checksum::Algorithm::ALL {
        put(&mut h, a.header(), out.checksum_of(a).cloned());
    }
    if let Some(m) = &out.metadata {
        for (k, v) in m {
            if let (Ok(name), Ok(val)) = (
                http::header::HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.insert(name, val);
            }
        }
    }
    h
}

#[async_trait::async_trait]
impl S3Route for RangeFallback {
    fn is_match(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        ext: &mut http::Extensions,
    ) -> bool {
        (method == Method::GET || method == Method::HEAD)
            && header_str(headers, "range").is_some_and(is_invalid_range)
            && plain_object_query(uri)
            && split_path(uri, ext).is_some()
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let ctx = RequestCtx::of(&req.extensions);
        self.decide(req).await.map_err(|e| noted(ctx.as_ref(), e))?;
        crate::server::continue_after_access(&req.extensions).await;
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let ctx = RequestCtx::of(&req.extensions);
        self.serve(req).await.map_err(|e| noted(ctx.as_ref(), e))
    }
}

impl RangeFallback {
    /// The access check: GetObject (HeadObject) on the path's object, as the s3s one decides it
    /// (roles, grants, tenant, then the bucket's policy: an odd Range header is no way around a
    /// Deny).
    async fn decide(&self, req: &S3Request<Body>) -> S3Result<()> {
        let action = if req.method == Method::HEAD {
            policy::Action::HeadObject
        } else {
            policy::Action::GetObject
        };
        let path = split_path(&req.uri, &req.extensions);
        let identity = identify(
            &self.creds,
            RequestCtx::of(&req.extensions).as_ref(),
            OpInfo {
                action: Some(action),
                access_key: req.credentials.as_ref().map(|c| c.access_key.clone()),
                bucket: path.as_ref().map(|(b, _)| b.clone()),
                key: path.as_ref().map(|(_, k)| k.clone()),
                ..OpInfo::default()
            },
        )
        .await?;
        let Some((bucket, key)) = path else {
            return Err(s3_error!(InvalidRequest));
        };
        self.creds
            .authorize(&identity, action, Some(&bucket), Some(&key))
            .await?;
        let head = super::bucket_policy::RequestHead {
            op: if req.method == Method::HEAD {
                "HeadObject"
            } else {
                "GetObject"
            },
            headers: &req.headers,
            query: req.uri.query(),
            peer: RequestCtx::of(&req.extensions).and_then(|c| c.peer()),
        };
        self.gateway
            .bucket_policies
            .enforce_request(&identity, &bucket, Some(&key), &head)
            .await
    }

    /// GET or HEAD as if the Range header were absent.
    async fn serve(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let Some((bucket, key)) = split_path(&req.uri, &req.extensions) else {
            return Err(s3_error!(InvalidRequest));
        };
        let h = &req.headers;
        let checksum_mode =
            header_str(h, "x-amz-checksum-mode").map(|v| ChecksumMode::from(v.to_owned()));
        let input = GetObjectInput::builder()
            .bucket(bucket)
            .key(key)
            .if_match(etag_cond(h, "if-match")?)
            .if_none_match(etag_cond(h, "if-none-match")?)
            .if_modified_since(date(h, "if-modified-since")?)
            .if_unmodified_since(date(h, "if-unmodified-since")?)
            .checksum_mode(checksum_mode)
            // SSE-C: the object's key travels with the request as on a plain GET
            .sse_customer_algorithm(
                header_str(h, "x-amz-server-side-encryption-customer-algorithm").map(str::to_owned),
            )
            .sse_customer_key(
                header_str(h, "x-amz-server-side-encryption-customer-key").map(str::to_owned),
            )
            .sse_customer_key_md5(
                header_str(h, "x-amz-server-side-encryption-customer-key-md5").map(str::to_owned),
            )
            .build()
            .map_err(|e| s3_error!(InvalidRequest, "{e}"))?;
        let head = req.method == Method::HEAD;
        let out = self
            .gateway
            .op_get_object(req.map_input(|_| input))
            .await
            .map_err(s3s::S3Error::from)?;
        let headers = response_headers(&out);
        let body = match out.body {
            Some(b) if !head => Body::from(b),
            _ => Body::empty(),
        };
        let mut resp = S3Response::with_headers(body, headers);
        resp.status = Some(StatusCode::OK);
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_ranges_are_recognised() {
        for bad in [
            "bytes=-",
            "bytes=5-2",
            "bytes=abc",
            "bytes=1-0",
            "bytes=0-1,3-4",
            "items=0-1",
            "",
        ] {
            assert!(is_invalid_range(bad), "{bad}");
        }
        for good in [
            "bytes=0-0",
            "bytes=5-",
            "bytes=-10",
            "bytes=-0",
            "bytes=100-200",
        ] {
            assert!(!is_invalid_range(good), "{good}");
        }
    }

    #[test]
    fn only_plain_object_requests_match() {
        let u: Uri = "/b/k?X-Amz-Signature=ab&X-Amz-Date=1".parse().unwrap();
        assert!(plain_object_query(&u));
        let u: Uri = "/b/k?partNumber=1".parse().unwrap();
        assert!(!plain_object_query(&u));
        let none = http::Extensions::new();
        let u: Uri = "/b/dir/a%20b".parse().unwrap();
        assert_eq!(split_path(&u, &none), Some(("b".into(), "dir/a b".into())));
        let u: Uri = "/b".parse().unwrap();
        assert_eq!(split_path(&u, &none), None);
        // virtual-hosted style: the bucket is the Host's, the whole path the key
        let mut vh = http::Extensions::new();
        vh.insert(VirtualBucket("vb".into()));
        let u: Uri = "/b/dir/a%20b".parse().unwrap();
        assert_eq!(split_path(&u, &vh), Some(("vb".into(), "b/dir/a b".into())));
        let u: Uri = "/k".parse().unwrap();
        assert_eq!(split_path(&u, &vh), Some(("vb".into(), "k".into())));
        let u: Uri = "/".parse().unwrap();
        assert_eq!(split_path(&u, &vh), None);
    }
}
