//! ListObjectVersions over the index: every version and delete marker of the keys under a
//! prefix, keys in UTF-8 byte order and the versions of a key newest first (`seq` descending),
//! with delimiter grouping into common prefixes and paging by key marker and version-id marker.
//! A common prefix costs one query to seek past its run.

use audit::db::flag;
use sqlx::Row;

use super::list::PageFill;
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
        let mut fill = VersionFill::new(
            q.max_keys,
            &q.prefix,
            q.delimiter.as_deref(),
            q.key_marker.as_deref().filter(|k| !k.is_empty()),
        );
        if fill.max == 0 {
            return Ok(fill.page);
        }
        let upper = prefix_successor(fill.prefix);
        let mut cursor = self.version_cursor(q).await?;
        loop {
            let rows = self
                .version_rows(&q.bucket, &cursor, upper.as_deref())
                .await?;
            let mut next_lower: Option<(String, bool)> = None;
            let mut last_row: Option<(String, i64)> = None;
            for row in &rows {
                let key: String = row.try_get("object_key")?;
                let seq: i64 = row.try_get("seq")?;
                last_row = Some((key.clone(), seq));
                if cursor.skips(&key, seq) || !key.starts_with(fill.prefix) {
                    continue;
                }
                match fill.take(row, key)? {
                    Taken::Entry => {}
                    Taken::Full => return Ok(fill.finish(true)),
                    Taken::Group(cp) => {
                        next_lower = match prefix_successor(&cp) {
                            Some(n) => Some((n, true)),
                            None => return Ok(fill.finish(false)),
                        };
                        break;
                    }
                }
            }
            if !cursor.advance(next_lower, rows.len(), last_row, upper.as_deref()) {
                return Ok(fill.finish(false));
            }
        }
    }

    /// Where the scan starts: after the key marker, or at the version-id marker's version of
    /// it (skipping that version and the newer ones), else at the prefix.
    async fn version_cursor(&self, q: &VersionQuery) -> Result<VersionCursor, IndexError> {
        let prefix = q.prefix.as_str();
        let mut cursor = VersionCursor {
            lower: (prefix.to_string(), true),
            skip_until: None,
        };
        let Some(km) = q.key_marker.as_deref().filter(|k| !k.is_empty()) else {
            return Ok(cursor);
        };
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
                    cursor.lower = (km.to_string(), true);
                    cursor.skip_until = seq.map(|s| (km.to_string(), s));
                }
            }
            None => {
                if km >= prefix {
                    cursor.lower = (km.to_string(), false);
                }
            }
        }
        Ok(cursor)
    }

    /// The next [`BATCH`] rows from the cursor's lower bound, below `upper`: keys in order,
    /// the versions of a key newest first.
    async fn version_rows(
        &self,
        bucket: &str,
        cursor: &VersionCursor,
        upper: Option<&str>,
    ) -> Result<Vec<sqlx::any::AnyRow>, IndexError> {
        let op = if cursor.lower.1 { ">=" } else { ">" };
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
        let mut query = sqlx::query(&sql).bind(bucket).bind(&cursor.lower.0);
        if let Some(up) = upper {
            query = query.bind(up);
        }
        Ok(query.fetch_all(&self.read).await?)
    }
}

/// Where the version scan stands: the lower bound of the next query (bound, inclusive) and the
/// versions of one key to skip (those with `seq` >= this: listed already).
struct VersionCursor {
    lower: (String, bool),
    skip_until: Option<(String, i64)>,
}

impl VersionCursor {
    /// Whether the version (`key`, `seq`) was listed before the cursor.
    fn skips(&self, key: &str, seq: i64) -> bool {
        self.skip_until
            .as_ref()
            .is_some_and(|(k, s)| k == key && seq >= *s)
    }

    /// Moves past a batch of `fetched` rows: past the common prefix it ended on (`next_lower`),
    /// else inside the last key read (its versions older than the last row). False when the
    /// scan is over (the batch was the last, or the next bound is past `upper`).
    fn advance(
        &mut self,
        next_lower: Option<(String, bool)>,
        fetched: usize,
        last_row: Option<(String, i64)>,
        upper: Option<&str>,
    ) -> bool {
        match next_lower {
            Some(n) => {
                if upper.is_some_and(|up| n.0.as_str() >= up) {
                    return false;
                }
                self.lower = n;
                self.skip_until = None;
            }
            None => {
                if fetched < BATCH as usize {
                    return false;
                }
                let Some((k, s)) = last_row else {
                    return false;
                };
                self.lower = (k.clone(), true);
                self.skip_until = Some((k, s));
            }
        }
        true
    }
}

/// What a row did to the page.
enum Taken {
    /// listed as a version or delete marker
    Entry,
    /// belongs to this common prefix (listed now or before): the scan seeks past its run
    Group(String),
    /// the page is full: the listing is truncated before this row
    Full,
}

/// A ListObjectVersions page being filled.
type VersionFill<'q> = PageFill<'q, VersionPage, (String, Option<String>)>;

impl VersionFill<'_> {
    /// Adds the row of `key` (under the prefix): its common prefix (once, and not one listed
    /// on an earlier page) or the version itself.
    fn take(&mut self, row: &sqlx::any::AnyRow, key: String) -> Result<Taken, IndexError> {
        if let Some(cp) = self.common_prefix(&key) {
            let already = self.marker.is_some_and(|m| cp.as_str() <= m);
            if !already {
                if self.count == self.max {
                    return Ok(Taken::Full);
                }
                self.page.common_prefixes.push(cp.clone());
                self.count += 1;
                self.last = Some((cp.clone(), None));
            }
            return Ok(Taken::Group(cp));
        }
        if self.count == self.max {
            return Ok(Taken::Full);
        }
        let version_id: String = row.try_get("version_id")?;
        self.page.versions.push(VersionEntry {
            key: key.clone(),
            version_id: version_id.clone(),
            is_latest: flag(row, "is_latest")?,
            delete_marker: flag(row, "delete_marker")?,
            size: to_u64(row.try_get("size")?, "object size")?,
            etag: row.try_get("etag")?,
            last_modified_ms: row.try_get("last_modified_ms")?,
        });
        self.count += 1;
        self.last = Some((key, Some(version_id)));
        Ok(Taken::Entry)
    }

    /// The page, truncated (with its next markers) or complete.
    fn finish(self, truncated: bool) -> VersionPage {
        finish(self.page, self.last, truncated)
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
