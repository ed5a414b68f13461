//! Tagging: object tags (`x-amz-tagging` on PutObject / CopyObject / CreateMultipartUpload,
//! Put/Get/DeleteObjectTagging by version, `x-amz-tagging-count` on GET and HEAD) and bucket
//! tags (Put/Get/DeleteBucketTagging), under S3's limits: at most 10 tags on an object and 50 on
//! a bucket, keys of 1 to 128 characters, values of at most 256, no key twice, no `aws:` keys
//! (400 InvalidTag). A tag set is kept as its URL-encoded form with the keys in order.

use std::collections::BTreeMap;

use s3s::S3Request;
use s3s::dto::*;

use super::Gateway;
use crate::error::{Error, Result};
use crate::index::{SETTING_TAGGING, TAGGING_HEADER};
use crate::request::RequestCtx;

/// Most tags on one object version (S3).
pub const MAX_OBJECT_TAGS: usize = 10;
/// Most tags on one bucket (S3).
pub const MAX_BUCKET_TAGS: usize = 50;
/// Longest tag key, in characters (S3).
pub const MAX_TAG_KEY: usize = 128;
/// Longest tag value, in characters (S3).
pub const MAX_TAG_VALUE: usize = 256;

/// A validated tag set, in key order.
pub(crate) type Tags = BTreeMap<String, String>;

fn invalid_tag(msg: String) -> Error {
    Error::Client(s3s::S3Error::with_message(
        s3s::S3ErrorCode::InvalidTag,
        msg,
    ))
}

/// Checks pairs against S3's tag limits (`max` tags) and returns them in key order.
pub(crate) fn validate(pairs: Vec<(String, String)>, max: usize) -> Result<Tags> {
    if pairs.len() > max {
        return Err(invalid_tag(format!(
            "Object tags cannot be greater than {max}"
        )));
    }
    let mut tags = Tags::new();
    for (k, v) in pairs {
        let klen = k.chars().count();
        if klen == 0 || klen > MAX_TAG_KEY {
            return Err(invalid_tag(format!(
                "The TagKey you have provided is invalid (1 to {MAX_TAG_KEY} characters)"
            )));
        }
        if v.chars().count() > MAX_TAG_VALUE {
            return Err(invalid_tag(format!(
                "The TagValue you have provided is invalid (at most {MAX_TAG_VALUE} characters)"
            )));
        }
        if k.starts_with("aws:") {
            return Err(invalid_tag(
                "Your TagKey cannot be prefixed with aws:".to_owned(),
            ));
        }
        if tags.insert(k, v).is_some() {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key".to_owned(),
            ));
        }
    }
    Ok(tags)
}

/// Parses an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded) into an object's tag set.
pub(crate) fn parse_header(h: &str) -> Result<Tags> {
    let pairs = url::form_urlencoded::parse(h.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    validate(pairs, MAX_OBJECT_TAGS)
}

/// The `tagging` field of a browser form upload (a `<Tagging>` XML document, as S3 takes it
/// there) as the URL-encoded header value PutObject takes; MalformedXML / InvalidTag.
pub(crate) fn form_field_to_header(xml: &str) -> Result<String> {
    use s3s::xml::Deserialize;
    let mut d = s3s::xml::Deserializer::new(xml.as_bytes());
    let t = Tagging::deserialize(&mut d)
        .map_err(|_| Error::MalformedXml("the tagging field is not a Tagging document".into()))?;
    Ok(encode(&validate(pairs_of(t.tag_set), MAX_OBJECT_TAGS)?))
}

/// The URL-encoded form of a tag set (empty for none).
pub(crate) fn encode(tags: &Tags) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in tags {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The tag set kept in a version's headers.
pub(crate) fn of_headers(headers: &BTreeMap<String, String>) -> Tags {
    headers
        .get(TAGGING_HEADER)
        .map(|h| {
            url::form_urlencoded::parse(h.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// `x-amz-tagging-count` of a version (None without tags).
pub(crate) fn count_of(headers: &BTreeMap<String, String>) -> Option<i32> {
    let n = of_headers(headers).len();
    (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX))
}

/// Puts the tags of an `x-amz-tagging` request header (validated) into a new version's headers.
pub(crate) fn stash_header(headers: &mut BTreeMap<String, String>, h: Option<&str>) -> Result<()> {
    if let Some(h) = h {
        let tags = parse_header(h)?;
        if !tags.is_empty() {
            headers.insert(TAGGING_HEADER.to_owned(), encode(&tags));
        }
    }
    Ok(())
}

fn tag_set(tags: &Tags) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

fn pairs_of(set: TagSet) -> Vec<(String, String)> {
    set.into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect()
}

/// A tag set as the bucket setting stores it (JSON map).
fn bucket_tags_json(tags: &Tags) -> Result<String> {
    serde_json::to_string(tags).map_err(|e| Error::Internal(format!("bucket tags: {e}")))
}

impl Gateway {
    pub(super) async fn op_put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> Result<PutObjectTaggingOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        let tags = validate(pairs_of(i.tagging.tag_set), MAX_OBJECT_TAGS)?;
        let rec = self
            .require_version(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        self.store
            .set_tags(
                &i.bucket,
                &i.key,
                &rec.version_id,
                &encode(&tags),
                audit.as_ref(),
            )
            .await?;
        Ok(PutObjectTaggingOutput {
            version_id: super::versioning::reported_version(&rec),
        })
    }

    pub(super) async fn op_get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> Result<GetObjectTaggingOutput> {
        let i = req.input;
        let rec = self
            .require_version(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        Ok(GetObjectTaggingOutput {
            tag_set: tag_set(&of_headers(&rec.headers)),
            version_id: super::versioning::reported_version(&rec),
        })
    }

    pub(super) async fn op_delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> Result<DeleteObjectTaggingOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        let rec = self
            .require_version(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        self.store
            .set_tags(&i.bucket, &i.key, &rec.version_id, "", audit.as_ref())
            .await?;
        Ok(DeleteObjectTaggingOutput {
            version_id: super::versioning::reported_version(&rec),
        })
    }

    pub(super) async fn op_put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> Result<PutBucketTaggingOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        let tags = validate(pairs_of(i.tagging.tag_set), MAX_BUCKET_TAGS)?;
        let value = bucket_tags_json(&tags)?;
        self.store
            .set_bucket_setting(&i.bucket, SETTING_TAGGING, Some(&value), audit.as_ref())
            .await?;
        Ok(PutBucketTaggingOutput::default())
    }

    pub(super) async fn op_get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> Result<GetBucketTaggingOutput> {
        let bucket = req.input.bucket;
        let Some(value) = self.store.bucket_setting(&bucket, SETTING_TAGGING).await? else {
            return Err(Error::Client(s3s::s3_error!(
                NoSuchTagSet,
                "The TagSet does not exist"
            )));
        };
        let tags: Tags = serde_json::from_str(&value)
            .map_err(|e| Error::Integrity(format!("stored bucket tags of {bucket}: {e}")))?;
        Ok(GetBucketTaggingOutput {
            tag_set: tag_set(&tags),
        })
    }

    pub(super) async fn op_delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> Result<DeleteBucketTaggingOutput> {
        let audit = RequestCtx::of(&req.extensions);
        self.store
            .set_bucket_setting(&req.input.bucket, SETTING_TAGGING, None, audit.as_ref())
            .await?;
        Ok(DeleteBucketTaggingOutput::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_sorted_and_limits() {
        let t = parse_header("foo=bar&bar").unwrap();
        assert_eq!(encode(&t), "bar=&foo=bar");
        assert_eq!(of_headers(&[(TAGGING_HEADER.into(), encode(&t))].into()), t);
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(parse_header(&eleven.join("&")).is_err());
        assert!(parse_header(&eleven[..10].join("&")).is_ok());
        assert!(parse_header("a=1&a=2").is_err());
        assert!(parse_header(&format!("{}=v", "k".repeat(129))).is_err());
        assert!(parse_header(&format!("{}=v", "k".repeat(128))).is_ok());
        assert!(parse_header(&format!("k={}", "v".repeat(257))).is_err());
        assert!(parse_header("aws:x=1").is_err());
        assert!(parse_header("=v").is_err());
        // a form upload's XML field
        assert_eq!(
            form_field_to_header(
                "<Tagging><TagSet><Tag><Key>0</Key><Value>a b</Value></Tag></TagSet></Tagging>"
            )
            .unwrap(),
            "0=a+b"
        );
        assert!(form_field_to_header("k=v").is_err());
        // encoded characters survive
        let t = parse_header("a%26b=c%3Dd+e").unwrap();
        assert_eq!(t.get("a&b").map(String::as_str), Some("c=d e"));
        assert_eq!(parse_header(&encode(&t)).unwrap(), t);
    }
}
