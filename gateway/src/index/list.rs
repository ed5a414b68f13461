//! ListObjects over the index: prefix ranges, delimiter grouping into common prefixes, paging.
//!
//! Keys are ordered by their UTF-8 bytes (SQLite BINARY collation; the same as Rust's `str`
//! order and as Unicode code point order). A prefix is the key range `[prefix, successor(prefix))`
//! and is served from the primary-key index. With a delimiter, a run of keys sharing a common
//! prefix is reported once; after stepping over a few rows of the run the scan seeks past it
//! (`key >= successor(cp)`) instead of reading it, so a listing costs one indexed query per
//! page plus one per long common-prefix run, whatever the number of keys under the prefixes.

use futures::TryStreamExt;
use sqlx::Row;

use super::{Index, IndexError, ListPage, ListQuery, ObjectRecordSummary, to_u64};

/// The smallest string greater than every string that starts with `prefix`, in UTF-8 byte
/// order; None if there is none (empty prefix, or only U+10FFFF characters).
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        let next = match c {
            '\u{D7FF}' => Some('\u{E000}'),
            char::MAX => None,
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Lower bound of the next scan.
enum Lower {
    Inclusive(String),
    Exclusive(String),
}

/// Rows fetched per query, at most.
const MAX_BATCH: u32 = 1000;
/// Rows of one common-prefix run stepped over before seeking past the run with a new query.
const SKIP_BEFORE_SEEK: usize = 16;

impl Index {
    /// One page of a listing. `NotFound` if the bucket does not exist.
    pub async fn list_objects(&self, q: &ListQuery) -> Result<ListPage, IndexError> {
        let page = audit::db::timed(
            audit::db::DbOp::IndexListObjects,
            self.list_objects_inner(q),
        )
        .await?;
        if page.objects.is_empty()
            && page.common_prefixes.is_empty()
            && !self.bucket_exists(&q.bucket).await?
        {
            return Err(IndexError::NotFound(q.bucket.clone()));
        }
        Ok(page)
    }

    async fn list_objects_inner(&self, q: &ListQuery) -> Result<ListPage, IndexError> {
        let mut fill = ListFill::new(
            q.max_keys,
            &q.prefix,
            q.delimiter.as_deref(),
            q.start_after.as_deref(),
        );
        if fill.max == 0 {
            return Ok(fill.page);
        }
        let upper = prefix_successor(fill.prefix);
        let mut lower = match fill.marker {
            Some(sa) if sa >= fill.prefix => Lower::Exclusive(sa.to_string()),
            _ => Lower::Inclusive(fill.prefix.to_string()),
        };
        let batch = q.max_keys.saturating_add(1).clamp(2, MAX_BATCH);
        loop {
            let read = match self
                .scan_batch(&q.bucket, &lower, upper.as_deref(), batch, &mut fill)
                .await?
            {
                Scanned::PageDone(truncated) => return Ok(fill.finish(truncated)),
                Scanned::Read(read) => read,
            };
            if !read.seek && read.fetched < batch as usize {
                return Ok(fill.finish(false));
            }
            // Continue after what we read, seeking past a run we are inside.
            lower = match (read.current_cp, read.last_key) {
                (Some(cp), _) => match prefix_successor(&cp) {
                    Some(next) => Lower::Inclusive(next),
                    None => return Ok(fill.finish(false)),
                },
                (None, Some(k)) => Lower::Exclusive(k),
                (None, None) => return Ok(fill.finish(false)),
            };
            if let Some(up) = upper.as_deref() {
                let past_end = match &lower {
                    Lower::Inclusive(l) | Lower::Exclusive(l) => l.as_str() >= up,
                };
                if past_end {
                    return Ok(fill.finish(false));
                }
            }
        }
    }

    /// Reads up to `batch` rows from `lower` (below `upper`) into the page, leaving early when
    /// the page is full or to seek past a long common-prefix run.
    async fn scan_batch(
        &self,
        bucket: &str,
        lower: &Lower,
        upper: Option<&str>,
        batch: u32,
        fill: &mut ListFill<'_>,
    ) -> Result<Scanned, IndexError> {
        let sql = scan_sql(lower, upper.is_some());
        let bound = match lower {
            Lower::Inclusive(l) | Lower::Exclusive(l) => l.as_str(),
        };
        let mut query = sqlx::query(&sql).bind(bucket).bind(bound);
        if let Some(up) = upper {
            query = query.bind(up);
        }
        // Rows are streamed, so leaving a scan early (to seek past a long run) costs
        // nothing more than the rows already read.
        let mut rows = query.bind(i64::from(batch)).fetch(&self.read);
        let mut read = BatchRead::default();
        while let Some(row) = rows.try_next().await? {
            read.fetched += 1;
            let key: String = row.try_get("object_key")?;
            if !key.starts_with(fill.prefix) {
                // Cannot happen with the range bounds; stop rather than list foreign keys.
                return Ok(Scanned::PageDone(false));
            }
            match fill.common_prefix(&key) {
                Some(cp) => {
                    if read.current_cp.as_deref() == Some(cp.as_str()) {
                        read.last_key = Some(key);
                        read.skipped += 1;
                        if read.skipped >= SKIP_BEFORE_SEEK {
                            read.seek = true; // a long run: jump past it with a new query
                            break;
                        }
                        continue;
                    }
                    if !fill.add_prefix(&cp) {
                        return Ok(Scanned::PageDone(true));
                    }
                    read.current_cp = Some(cp);
                    read.skipped = 0;
                }
                None => {
                    if !fill.add_object(&row, &key)? {
                        return Ok(Scanned::PageDone(true));
                    }
                    read.current_cp = None;
                }
            }
            read.last_key = Some(key);
        }
        Ok(Scanned::Read(read))
    }
}

/// How a batch ended: the page is done (truncated or not), or the batch was read.
enum Scanned {
    PageDone(bool),
    Read(BatchRead),
}

/// What one batch read: its rows, the common prefix whose run it is inside (emitted or
/// skipped) and how many rows of it it stepped over, the last key, and whether it left to
/// seek past that run.
#[derive(Default)]
struct BatchRead {
    fetched: usize,
    current_cp: Option<String>,
    skipped: usize,
    last_key: Option<String>,
    seek: bool,
}

/// A listing page being filled (ListObjects, ListObjectVersions): its entries, how many it
/// holds of `max`, the last one (`L`: what the next markers are made of when it is truncated),
/// and the query's prefix, delimiter and marker.
pub(super) struct PageFill<'q, P, L> {
    pub(super) page: P,
    pub(super) max: usize,
    pub(super) count: usize,
    pub(super) last: Option<L>,
    pub(super) prefix: &'q str,
    delimiter: Option<&'q str>,
    /// where an earlier page ended (start-after, key marker): common prefixes up to it were
    /// listed there
    pub(super) marker: Option<&'q str>,
}

impl<'q, P: Default, L> PageFill<'q, P, L> {
    /// An empty page of at most `max_keys` entries (a delimiter that is empty groups nothing).
    pub(super) fn new(
        max_keys: u32,
        prefix: &'q str,
        delimiter: Option<&'q str>,
        marker: Option<&'q str>,
    ) -> Self {
        PageFill {
            page: P::default(),
            max: max_keys as usize,
            count: 0,
            last: None,
            prefix,
            delimiter: delimiter.filter(|d| !d.is_empty()),
            marker,
        }
    }

    /// The common prefix `key` is grouped into: up to and including the first delimiter after
    /// the prefix; None without a delimiter or when none follows.
    pub(super) fn common_prefix(&self, key: &str) -> Option<String> {
        let prefix = self.prefix;
        self.delimiter.and_then(|d| {
            key[prefix.len()..]
                .find(d)
                .map(|pos| key[..prefix.len() + pos + d.len()].to_string())
        })
    }
}

/// A ListObjects page being filled.
type ListFill<'q> = PageFill<'q, ListPage, String>;

impl ListFill<'_> {
    /// Lists the common prefix `cp` (a run that contains or precedes start_after was reported
    /// on an earlier page: skipped). False when the page is full.
    fn add_prefix(&mut self, cp: &str) -> bool {
        let already_listed = self.marker.is_some_and(|sa| cp <= sa);
        if !already_listed {
            if self.count == self.max {
                return false;
            }
            self.page.common_prefixes.push(cp.to_owned());
            self.count += 1;
            self.last = Some(cp.to_owned());
        }
        true
    }

    /// Lists the object of `row`. False when the page is full.
    fn add_object(&mut self, row: &sqlx::any::AnyRow, key: &str) -> Result<bool, IndexError> {
        if self.count == self.max {
            return Ok(false);
        }
        self.page.objects.push(ObjectRecordSummary {
            size: to_u64(row.try_get("size")?, "object size")?,
            etag: row.try_get("etag")?,
            last_modified_ms: row.try_get("last_modified_ms")?,
            key: key.to_owned(),
        });
        self.count += 1;
        self.last = Some(key.to_owned());
        Ok(true)
    }

    /// The page, truncated (with its next marker) or complete.
    fn finish(self, truncated: bool) -> ListPage {
        finish(self.page, self.count, self.max, self.last, truncated)
    }
}

fn scan_sql(lower: &Lower, bounded: bool) -> String {
    let op = match lower {
        Lower::Inclusive(_) => ">=",
        Lower::Exclusive(_) => ">",
    };
    if bounded {
        format!(
            "SELECT object_key, size, etag, last_modified_ms FROM objects \
             WHERE bucket = $1 AND is_latest = 1 AND delete_marker = 0 \
               AND object_key {op} $2 AND object_key < $3 \
             ORDER BY object_key LIMIT $4"
        )
    } else {
        format!(
            "SELECT object_key, size, etag, last_modified_ms FROM objects \
             WHERE bucket = $1 AND is_latest = 1 AND delete_marker = 0 AND object_key {op} $2 \
             ORDER BY object_key LIMIT $3"
        )
    }
}

fn finish(
    mut page: ListPage,
    count: usize,
    max: usize,
    last: Option<String>,
    truncated: bool,
) -> ListPage {
    debug_assert!(count <= max);
    page.is_truncated = truncated;
    page.next_marker = if truncated { last } else { None };
    page
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn successor_bounds_every_extension() {
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("a"), Some("b".into()));
        assert_eq!(prefix_successor("a/"), Some("a0".into()));
        assert_eq!(prefix_successor("\u{D7FF}"), Some("\u{E000}".into()));
        assert_eq!(prefix_successor("a\u{10FFFF}"), Some("b".into()));
        assert_eq!(prefix_successor("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(prefix_successor("\u{7F}"), Some("\u{80}".into()));
        for p in ["a", "a/", "é", "日本", "x\u{7F}", "\u{FFFF}"] {
            let s = prefix_successor(p).unwrap();
            for ext in ["", "\u{10FFFF}", "\u{10FFFF}\u{10FFFF}zz", "\0", "~"] {
                let k = format!("{p}{ext}");
                assert!(k.as_str() < s.as_str(), "{k:?} !< {s:?}");
                assert!(k.as_bytes() < s.as_bytes());
            }
            assert!(p < s.as_str());
        }
    }
}
