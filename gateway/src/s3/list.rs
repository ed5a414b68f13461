//! ListObjects (v1) and ListObjectsV2: prefix, delimiter, max-keys, marker / continuation token /
//! start-after, encoding-type=url. Sizes are plaintext sizes and ETags the same as on HEAD/GET.

use base64::Engine;
use s3s::S3Request;
use s3s::dto::*;

use super::{Gateway, etag, ts};
use crate::error::{Error, Result};
use crate::index::{ListPage, ListQuery};

fn max_keys(v: Option<i32>) -> Result<u32> {
    match v {
        None => Ok(1000),
        Some(n) if n < 0 => Err(Error::InvalidArgument(
            "max-keys must be a non-negative integer".into(),
        )),
        Some(n) => Ok(u32::try_from(n).unwrap_or(1000).min(1000)),
    }
}

fn url_encoding(e: Option<&EncodingType>) -> Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str().eq_ignore_ascii_case(EncodingType::URL) => Ok(true),
        Some(e) => Err(Error::InvalidArgument(format!(
            "invalid encoding-type {:?}",
            e.as_str()
        ))),
    }
}

/// S3-style URL encoding (keeps unreserved characters and '/').
fn enc(s: &str, on: bool) -> String {
    if on {
        urlencoding::encode(s).replace("%2F", "/")
    } else {
        s.to_owned()
    }
}

fn encode_token(marker: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(marker.as_bytes())
}

fn decode_token(token: &str) -> Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            Error::InvalidArgument("The continuation token provided is incorrect".into())
        })
}

impl Gateway {
    async fn page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<String>,
        max: u32,
    ) -> Result<ListPage> {
        self.require_bucket(bucket).await?;
        if max == 0 {
            return Ok(ListPage {
                objects: Vec::new(),
                common_prefixes: Vec::new(),
                is_truncated: false,
                next_marker: None,
            });
        }
        let q = ListQuery {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            delimiter: delimiter.filter(|d| !d.is_empty()).map(str::to_owned),
            start_after: after.filter(|s| !s.is_empty()),
            max_keys: max,
        };
        Ok(self.store.list_objects(&q).await?)
    }

    fn contents(page: &ListPage, url: bool) -> (Vec<Object>, Vec<CommonPrefix>) {
        let objects = page
            .objects
            .iter()
            .map(|o| Object {
                key: Some(enc(&o.key, url)),
                size: i64::try_from(o.size).ok(),
                e_tag: Some(etag(&o.etag)),
                last_modified: Some(ts(o.last_modified_ms)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect();
        let prefixes = page
            .common_prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(p, url)),
            })
            .collect();
        (objects, prefixes)
    }

    pub(super) async fn op_list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> Result<ListObjectsOutput> {
        let input = req.input;
        let url = url_encoding(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let page = self
            .page(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                input.marker.clone(),
                max,
            )
            .await?;
        let (objects, prefixes) = Self::contents(&page, url);
        Ok(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(&prefix, url)),
            // always present (empty without one), as S3 answers
            marker: Some(
                input
                    .marker
                    .as_deref()
                    .map_or_else(String::new, |m| enc(m, url)),
            ),
            // an empty delimiter is no delimiter, and is not echoed
            delimiter: input
                .delimiter
                .as_deref()
                .filter(|d| !d.is_empty())
                .map(|d| enc(d, url)),
            max_keys: i32::try_from(max).ok(),
            is_truncated: Some(page.is_truncated),
            next_marker: if page.is_truncated {
                page.next_marker.as_deref().map(|m| enc(m, url))
            } else {
                None
            },
            contents: Some(objects),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        })
    }

    pub(super) async fn op_list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> Result<ListObjectsV2Output> {
        let input = req.input;
        let url = url_encoding(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = match input.continuation_token.as_deref() {
            Some(t) => Some(decode_token(t)?),
            None => input.start_after.clone(),
        };
        let page = self
            .page(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                after,
                max,
            )
            .await?;
        let (objects, prefixes) = Self::contents(&page, url);
        let key_count = i32::try_from(objects.len() + prefixes.len()).unwrap_or(i32::MAX);
        let owner = input.fetch_owner.unwrap_or(false).then(|| {
            let id = req
                .credentials
                .as_ref()
                .map(|c| c.access_key.clone())
                .unwrap_or_default();
            Owner {
                display_name: Some(id.clone()),
                id: Some(id),
            }
        });
        let objects = match owner {
            Some(o) => objects
                .into_iter()
                .map(|mut x| {
                    x.owner = Some(o.clone());
                    x
                })
                .collect(),
            None => objects,
        };
        Ok(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(&prefix, url)),
            delimiter: input
                .delimiter
                .as_deref()
                .filter(|d| !d.is_empty())
                .map(|d| enc(d, url)),
            max_keys: i32::try_from(max).ok(),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            next_continuation_token: if page.is_truncated {
                page.next_marker.as_deref().map(encode_token)
            } else {
                None
            },
            start_after: input.start_after.as_deref().map(|s| enc(s, url)),
            is_truncated: Some(page.is_truncated),
            contents: Some(objects),
            common_prefixes: Some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        for m in ["a", "dir/sub/", "ünï cödé/x y", ""] {
            assert_eq!(decode_token(&encode_token(m)).unwrap(), m);
        }
        assert!(decode_token("!!!").is_err());
    }

    #[test]
    fn url_encoding_keeps_slashes() {
        assert_eq!(enc("a b/c+d", true), "a%20b/c%2Bd");
        assert_eq!(enc("a b/c+d", false), "a b/c+d");
    }

    #[test]
    fn max_keys_bounds() {
        assert_eq!(max_keys(None).unwrap(), 1000);
        assert_eq!(max_keys(Some(5000)).unwrap(), 1000);
        assert_eq!(max_keys(Some(0)).unwrap(), 0);
        assert!(max_keys(Some(-1)).is_err());
    }
}
