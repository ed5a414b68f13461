//! GetObjectAttributes: what S3 reports of an object without its body (ETag, size, storage
//! class, stored checksums, the parts of a multipart object with their own checksums and
//! `PartNumberMarker` / `MaxParts` paging), for the current version or a `versionId`, SSE-C objects only with their
//! key (as HEAD). Authorised as `s3:GetObject` (AWS asks for `s3:GetObject` and
//! `s3:GetObjectAttributes`; Vaultgate's roles grant them together), `s3:GetObjectVersion` too
//! for a `versionId`. S3 sends the ETag of this answer without quotes, which s3s cannot
//! serialize: the answer carries [`UnquotedEtag`] and the pipeline calls [`unquote_etag`].

use s3s::S3Request;
use s3s::dto::*;

use super::checksum::{checksum_type_of, with_checksums};
use super::versioning::reported_version;
use super::{Gateway, ts};
use crate::error::{Error, Result};
use crate::index::ObjectRecord;

/// Parts listed per answer when the request names no `x-amz-max-parts` (S3's default).
const DEFAULT_MAX_PARTS: i32 = 1000;

/// The attributes a request asks for (`x-amz-object-attributes`, a comma-separated list,
/// possibly repeated).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Wanted {
    etag: bool,
    checksum: bool,
    parts: bool,
    storage_class: bool,
    size: bool,
}

/// Parses `x-amz-object-attributes`: an unknown name is 400 InvalidArgument, as S3 answers.
fn wanted(list: &[ObjectAttributes]) -> Result<Wanted> {
    let mut w = Wanted::default();
    let names = list
        .iter()
        .flat_map(|a| a.as_str().split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty());
    for name in names {
        match name {
            ObjectAttributes::ETAG => w.etag = true,
            ObjectAttributes::CHECKSUM => w.checksum = true,
            ObjectAttributes::OBJECT_PARTS => w.parts = true,
            ObjectAttributes::STORAGE_CLASS => w.storage_class = true,
            ObjectAttributes::OBJECT_SIZE => w.size = true,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "Invalid attribute name specified: {other}"
                )));
            }
        }
    }
    if w == Wanted::default() {
        return Err(Error::InvalidArgument(
            "x-amz-object-attributes names no attribute".into(),
        ));
    }
    Ok(w)
}

/// The parts of a multipart object from `marker` on (part numbers count the object's parts in
/// order, 1..=TotalPartsCount, as `GET ?partNumber` does), at most `max_parts` of them.
fn parts_page(
    rec: &ObjectRecord,
    marker: Option<i32>,
    max_parts: Option<i32>,
) -> Result<GetObjectAttributesParts> {
    let max = max_parts.unwrap_or(DEFAULT_MAX_PARTS);
    if max < 0 {
        return Err(Error::InvalidArgument(
            "x-amz-max-parts must be a non-negative integer".into(),
        ));
    }
    let start = marker.unwrap_or(0);
    if start < 0 {
        return Err(Error::InvalidArgument(
            "x-amz-part-number-marker must be a non-negative integer".into(),
        ));
    }
    let numbered = rec
        .streams
        .iter()
        .enumerate()
        .filter_map(|(i, s)| i32::try_from(i + 1).ok().map(|n| (n, s)))
        .filter(|(n, _)| *n > start);
    let mut parts = Vec::new();
    let mut truncated = false;
    for (n, s) in numbered {
        if parts.len() >= usize::try_from(max).unwrap_or(0) {
            truncated = true;
            break;
        }
        parts.push(with_checksums(
            &s.checksums,
            ObjectPart {
                part_number: Some(n),
                size: Some(i64::try_from(s.plaintext_len).unwrap_or(i64::MAX)),
                ..Default::default()
            },
        ));
    }
    let next = parts.last().and_then(|p| p.part_number);
    Ok(GetObjectAttributesParts {
        is_truncated: Some(truncated),
        max_parts: Some(max),
        next_part_number_marker: next,
        part_number_marker: Some(start),
        parts: Some(parts),
        total_parts_count: i32::try_from(rec.streams.len()).ok(),
    })
}

/// The object's stored checksums, with their type.
fn checksum_of(rec: &ObjectRecord) -> Option<Checksum> {
    let kind = checksum_type_of(rec)?;
    Some(with_checksums(
        &rec.checksums,
        Checksum {
            checksum_type: Some(kind),
            ..Default::default()
        },
    ))
}

/// The answer for `rec` limited to what `w` asks for.
fn answer(
    rec: &ObjectRecord,
    w: Wanted,
    input: &GetObjectAttributesInput,
) -> Result<GetObjectAttributesOutput> {
    let parts = if w.parts && rec.manifest_id.is_some() {
        Some(parts_page(rec, input.part_number_marker, input.max_parts)?)
    } else {
        None
    };
    Ok(GetObjectAttributesOutput {
        checksum: w.checksum.then(|| checksum_of(rec)).flatten(),
        e_tag: w.etag.then(|| super::etag(&rec.etag)),
        last_modified: Some(ts(rec.last_modified_ms)),
        object_parts: parts,
        object_size: w.size.then(|| i64::try_from(rec.size).unwrap_or(i64::MAX)),
        storage_class: w
            .storage_class
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        version_id: reported_version(rec),
        ..Default::default()
    })
}

/// Marks a GetObjectAttributes answer whose XML ETag must lose its quotes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnquotedEtag;

/// S3 sends `<ETag>` of GetObjectAttributes without quotes (unlike every other answer); s3s
/// always quotes it. Rewrites the (small, buffered) XML body of an answer marked
/// [`UnquotedEtag`]; any other response passes untouched.
pub(crate) fn unquote_etag(mut resp: http::Response<s3s::Body>) -> http::Response<s3s::Body> {
    if resp.extensions().get::<UnquotedEtag>().is_none() {
        return resp;
    }
    let Some(body) = resp.body().bytes() else {
        return resp;
    };
    let Ok(xml) = std::str::from_utf8(&body) else {
        return resp;
    };
    let fixed = xml
        .replacen("<ETag>\"", "<ETag>", 1)
        .replacen("\"</ETag>", "</ETag>", 1);
    resp.headers_mut().remove(http::header::CONTENT_LENGTH);
    *resp.body_mut() = s3s::Body::from(fixed);
    resp
}

impl Gateway {
    pub(super) async fn op_get_object_attributes(
        &self,
        req: &S3Request<GetObjectAttributesInput>,
    ) -> Result<GetObjectAttributesOutput> {
        let i = &req.input;
        let w = wanted(&i.object_attributes)?;
        let rec = self
            .select_version(
                req.credentials.as_ref(),
                &i.bucket,
                &i.key,
                i.version_id.as_deref(),
                [
                    i.sse_customer_algorithm.as_deref(),
                    i.sse_customer_key.as_deref(),
                    i.sse_customer_key_md5.as_deref(),
                ],
            )
            .await?;
        let mut out = answer(&rec, w, i)?;
        if out.version_id.is_none() {
            out.version_id = self.null_version_reported(&i.bucket).await;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::StreamRecord;

    fn names(v: &[&'static str]) -> Vec<ObjectAttributes> {
        v.iter().map(|s| ObjectAttributes::from_static(s)).collect()
    }

    fn multipart(sizes: &[u64]) -> ObjectRecord {
        ObjectRecord {
            bucket: "b".into(),
            key: "k".into(),
            version_id: crate::index::NULL_VERSION.into(),
            is_latest: true,
            delete_marker: false,
            lock: Default::default(),
            size: sizes.iter().sum(),
            etag: "abc-3".into(),
            last_modified_ms: 0,
            headers: Default::default(),
            user_metadata: Default::default(),
            checksums: Default::default(),
            data_key_id: String::new(),
            key_version: 1,
            streams: sizes
                .iter()
                .enumerate()
                .map(|(i, n)| StreamRecord {
                    backend_id: format!("s{i}"),
                    part_number: u32::try_from(i * 2 + 1).unwrap(),
                    header: Vec::new(),
                    plaintext_len: *n,
                    md5_hex: String::new(),
                    checksums: [("sha256".to_owned(), format!("part{i}="))].into(),
                    inline: None,
                })
                .collect(),
            manifest_id: Some("m".into()),
        }
    }

    #[test]
    fn attribute_names_are_checked_and_comma_lists_split() {
        let w = wanted(&names(&["ETag,ObjectSize", "StorageClass"])).unwrap();
        assert!(w.etag && w.size && w.storage_class && !w.checksum && !w.parts);
        for bad in [&["ETag,Colour"][..], &["etag"], &[" , "]] {
            match wanted(&names(bad)) {
                Err(Error::InvalidArgument(m)) => assert!(!m.is_empty()),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn parts_are_paged_by_marker_and_max_parts() {
        let rec = multipart(&[5, 5, 5, 5, 5, 3]);
        let listed = |p: &GetObjectAttributesParts| -> Vec<(i32, i64)> {
            p.parts
                .iter()
                .flatten()
                .map(|x| (x.part_number.unwrap(), x.size.unwrap()))
                .collect()
        };
        let p = parts_page(&rec, Some(3), Some(1)).unwrap();
        assert_eq!(listed(&p), vec![(4, 5)]);
        assert_eq!(p.is_truncated, Some(true));
        assert_eq!(p.next_part_number_marker, Some(4));
        assert_eq!(p.part_number_marker, Some(3));
        assert_eq!(p.max_parts, Some(1));
        assert_eq!(p.total_parts_count, Some(6));

        let p = parts_page(&rec, Some(4), Some(10)).unwrap();
        assert_eq!(listed(&p), vec![(5, 5), (6, 3)]);
        assert_eq!(p.is_truncated, Some(false));

        let p = parts_page(&rec, None, None).unwrap();
        assert_eq!(p.parts.as_ref().map(Vec::len), Some(6));
        assert_eq!(p.max_parts, Some(DEFAULT_MAX_PARTS));
        assert_eq!(p.part_number_marker, Some(0));

        let p = parts_page(&rec, Some(6), None).unwrap();
        assert_eq!(p.parts.as_ref().map(Vec::len), Some(0));
        assert_eq!(p.is_truncated, Some(false));
        assert_eq!(p.next_part_number_marker, None);

        assert!(matches!(
            parts_page(&rec, None, Some(-1)),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            parts_page(&rec, Some(-2), None),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn only_what_is_asked_is_answered() {
        let mut rec = multipart(&[7, 2]);
        rec.checksums.insert("sha256".into(), "AAAA-2".into());
        let input = GetObjectAttributesInput::builder()
            .bucket("b".into())
            .key("k".into())
            .object_attributes(names(&["ObjectSize"]))
            .build()
            .unwrap();
        let w = wanted(&input.object_attributes).unwrap();
        let out = answer(&rec, w, &input).unwrap();
        assert_eq!(out.object_size, Some(9));
        assert!(out.e_tag.is_none() && out.object_parts.is_none() && out.checksum.is_none());
        assert!(out.storage_class.is_none());

        let all = wanted(&names(&["ETag,Checksum,ObjectParts,StorageClass"])).unwrap();
        let out = answer(&rec, all, &input).unwrap();
        assert_eq!(out.e_tag.as_ref().map(ETag::value), Some("abc-3"));
        let ck = out.checksum.unwrap();
        assert_eq!(ck.checksum_sha256.as_deref(), Some("AAAA-2"));
        assert_eq!(
            ck.checksum_type.as_ref().map(ChecksumType::as_str),
            Some(ChecksumType::COMPOSITE)
        );
        let parts = out.object_parts.unwrap();
        assert_eq!(parts.total_parts_count, Some(2));
        let part_sums: Vec<_> = parts
            .parts
            .iter()
            .flatten()
            .map(|p| p.checksum_sha256.as_deref())
            .collect();
        assert_eq!(part_sums, [Some("part0="), Some("part1=")]);
        // a FULL_OBJECT multipart checksum (a CRC of the whole, no part count)
        rec.checksums = [("crc32".to_owned(), "AAAAAA==".to_owned())].into();
        let ck = answer(&rec, all, &input).unwrap().checksum.unwrap();
        assert_eq!(
            ck.checksum_type.as_ref().map(ChecksumType::as_str),
            Some(ChecksumType::FULL_OBJECT)
        );
        assert_eq!(
            out.storage_class.as_ref().map(StorageClass::as_str),
            Some("STANDARD")
        );
    }

    #[test]
    fn the_marked_answer_loses_the_quotes_of_its_etag() {
        let xml = "<?xml version=\"1.0\"?><GetObjectAttributesResponse><ETag>\"abc\"</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>";
        let mut resp = http::Response::new(s3s::Body::from(xml.to_owned()));
        let same = unquote_etag(resp);
        assert_eq!(same.body().bytes().unwrap(), xml.as_bytes());
        resp = same;
        resp.extensions_mut().insert(UnquotedEtag);
        let fixed = unquote_etag(resp);
        let body = fixed.body().bytes().unwrap();
        let body = std::str::from_utf8(&body).unwrap();
        assert!(
            body.contains("<ETag>abc</ETag><ObjectSize>3</ObjectSize>"),
            "{body}"
        );
    }
}
