//! ListObjectVersions over the index: every version and delete marker of the keys under a
//! prefix, keys in UTF-8 byte order and the versions of a key newest first (`seq` descending),
//! with delimiter grouping into common prefixes and paging by key marker and version-id marker.
//! A common prefix costs one query to seek past its run.

use audit::db::flag;
use sqlx::Row;

use super::{Index, IndexError, prefix_successor, to_u64};

/// A ListObjectVersions query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionQuery {
    pub bucket: String,
    pub prefix: String,
    /// None or empty: no grouping
    pub delimiter: Option<String>,
    /// start after this key (with `version_id_marker`: after that version of it)
    pub key_marker: Option<String>,
    pub version_id_marker: Option<String>,
    /// versions + common prefixes per page; 0 returns an empty, untruncated page
    pub max_keys: u32,
}

/// One version or delete marker in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
}

/// One page of ListObjectVersions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionPage {
    pub versions: Vec<VersionEntry>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

/// Rows read per query.
const BATCH: i64 = 1000;

impl Index {
    /// One page of ListObjectVersions. `NotFound` if the bucket does not exist.
    pub async fn list_versions(&self, q: &VersionQuery) -> Result<VersionPage, IndexError> {
        if !self.bucket_exists(&q.bucket).await? {
            return Err(IndexError::NotFound(q.bucket.clone()));
        }
        let mut page = VersionPage::default();
        let max = q.max_keys as usize;
        if max == 0 {
            return Ok(page);
        }
        let prefix = q.prefix.as_str();
        let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
        let upper = prefix_successor(prefix);
        // Where the scan starts: (key, versions of that key older than seq) or a key bound.
        let marker = q.key_marker.as_deref().filter(|k| !k.is_empty());
        let mut skip_until: Option<(String, i64)> = None; // (key, seq): skip versions of key with seq >= this
        let mut lower: (String, bool) = (prefix.to_string(), true); // (bound, inclusive)
        if let Some(km) = marker {
            match q.version_id_marker.as_deref().filter(|v| !v.is_empty()) {
                Some(vm) => {
                    let seq: Option<i64> = sqlx::query_scalar(
                        "SELECT seq FROM objects WHERE bucket = $1 AND object_key = $2 AND version_id = $3",
                    )
                    .bind(&q.bucket)
                    .bind(km)
                    .bind(vm)
                    .fetch_optional(&self.read)
                    .await?;
                    // A marker version that is gone (deleted since the previous page, as a
                    // client emptying a bucket page by page does) restarts at its key: the
                    // remaining versions of that key are listed rather than skipped.
                    if km >= prefix {
                        lower = (km.to_string(), true);
                        skip_until = seq.map(|s| (km.to_string(), s));
                    }
                }
                None => {
                    if km >= prefix {
                        lower = (km.to_string(), false);
                    }
                }
            }
        }
        let mut count = 0usize;
        let mut last: Option<(String, Option<String>)> = None;
        loop {
            let op = if lower.1 { ">=" } else { ">" };
            let sql = format!(
                "SELECT object_key, version_id, seq, CAST(is_latest AS BIGINT) AS is_latest, CAST(delete_marker AS BIGINT) AS delete_marker, size, etag, \
                        last_modified_ms FROM objects \
                 WHERE bucket = $1 AND object_key {op} $2 {} \
                 ORDER BY object_key, seq DESC LIMIT {BATCH}",
                if upper.is_some() {
                    "AND object_key < $3"
                } else {
                    ""
                }
            );
            let mut query = sqlx::query(&sql).bind(&q.bucket).bind(&lower.0);
            if let Some(up) = upper.as_deref() {
                query = query.bind(up);
            }
            let rows = query.fetch_all(&self.read).await?;
            let fetched = rows.len();
            let mut next_lower: Option<(String, bool)> = None;
            let mut last_row: Option<(String, i64)> = None;
            for row in &rows {
                let key: String = row.try_get("object_key")?;
                let seq: i64 = row.try_get("seq")?;
                last_row = Some((key.clone(), seq));
                if let Some((k, s)) = &skip_until
                    && *k == key
                    && seq >= *s
                {
                    continue;
                }
                if !key.starts_with(prefix) {
                    continue;
                }
                let grouped = delimiter.and_then(|d| {
                    key[prefix.len()..]
                        .find(d)
                        .map(|pos| key[..prefix.len() + pos + d.len()].to_string())
                });
                if let Some(cp) = grouped {
                    let already = marker.is_some_and(|m| cp.as_str() <= m);
                    if !already {
                        if count == max {
                            return Ok(finish(page, last, true));
                        }
                        page.common_prefixes.push(cp.clone());
                        count += 1;
                        last = Some((cp.clone(), None));
                    }
                    next_lower = match prefix_successor(&cp) {
                        Some(n) => Some((n, true)),
                        None => return Ok(finish(page, last, false)),
                    };
                    break;
                }
                if count == max {
                    return Ok(finish(page, last, true));
                }
                let version_id: String = row.try_get("version_id")?;
                page.versions.push(VersionEntry {
                    key: key.clone(),
                    version_id: version_id.clone(),
                    is_latest: flag(row, "is_latest")?,
                    delete_marker: flag(row, "delete_marker")?,
                    size: to_u64(row.try_get("size")?, "object size")?,
                    etag: row.try_get("etag")?,
                    last_modified_ms: row.try_get("last_modified_ms")?,
                });
                count += 1;
                last = Some((key, Some(version_id)));
            }
            match next_lower {
                Some(n) => {
                    if upper.as_deref().is_some_and(|up| n.0.as_str() >= up) {
                        return Ok(finish(page, last, false));
                    }
                    lower = n;
                    skip_until = None;
                }
                None => {
                    if fetched < BATCH as usize {
                        return Ok(finish(page, last, false));
                    }
                    // continue inside the last key: its versions older than the last row
                    let Some((k, s)) = last_row else {
                        return Ok(finish(page, last, false));
                    };
                    lower = (k.clone(), true);
                    skip_until = Some((k, s));
                }
            }
        }
    }
}

fn finish(
    mut page: VersionPage,
    last: Option<(String, Option<String>)>,
    truncated: bool,
) -> VersionPage {
    page.is_truncated = truncated;
    if truncated && let Some((k, v)) = last {
        page.next_key_marker = Some(k);
        page.next_version_id_marker = v;
    }
    page
}
