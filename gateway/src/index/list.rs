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
        let page = self.list_objects_inner(q).await?;
        if page.objects.is_empty()
            && page.common_prefixes.is_empty()
            && !self.bucket_exists(&q.bucket).await?
        {
            return Err(IndexError::NotFound(q.bucket.clone()));
        }
        Ok(page)
    }

    async fn list_objects_inner(&self, q: &ListQuery) -> Result<ListPage, IndexError> {
        let mut page = ListPage::default();
        let max = q.max_keys as usize;
        if max == 0 {
            return Ok(page);
        }
        let prefix = q.prefix.as_str();
        let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
        let start_after = q.start_after.as_deref();
        let upper = prefix_successor(prefix);
        let mut lower = match start_after {
            Some(sa) if sa >= prefix => Lower::Exclusive(sa.to_string()),
            _ => Lower::Inclusive(prefix.to_string()),
        };
        let batch = q.max_keys.saturating_add(1).clamp(2, MAX_BATCH);
        let mut count = 0usize;
        let mut last_emitted: Option<String> = None;

        loop {
            let sql = scan_sql(&lower, upper.is_some());
            let bound = match &lower {
                Lower::Inclusive(l) | Lower::Exclusive(l) => l.as_str(),
            };
            let mut query = sqlx::query(&sql).bind(&q.bucket).bind(bound);
            if let Some(up) = upper.as_deref() {
                query = query.bind(up);
            }
            // Rows are streamed, so leaving a scan early (to seek past a long run) costs
            // nothing more than the rows already read.
            let mut rows = query.bind(i64::from(batch)).fetch(&self.read);
            let mut fetched = 0usize;
            // The common prefix whose run we are inside (emitted or skipped) and how many
            // rows of it we have stepped over so far.
            let mut current_cp: Option<String> = None;
            let mut skipped = 0usize;
            let mut last_key: Option<String> = None;
            let mut seek = false;
            while let Some(row) = rows.try_next().await? {
                fetched += 1;
                let key: String = row.try_get("object_key")?;
                if !key.starts_with(prefix) {
                    // Cannot happen with the range bounds; stop rather than list foreign keys.
                    return Ok(finish(page, count, max, last_emitted, false));
                }
                let grouped = delimiter.and_then(|d| {
                    key[prefix.len()..]
                        .find(d)
                        .map(|pos| key[..prefix.len() + pos + d.len()].to_string())
                });
                match grouped {
                    Some(cp) => {
                        if current_cp.as_deref() == Some(cp.as_str()) {
                            last_key = Some(key);
                            skipped += 1;
                            if skipped >= SKIP_BEFORE_SEEK {
                                seek = true; // a long run: jump past it with a new query
                                break;
                            }
                            continue;
                        }
                        // A run that contains or precedes start_after was reported on an
                        // earlier page: skip it.
                        let already_listed = start_after.is_some_and(|sa| cp.as_str() <= sa);
                        if !already_listed {
                            if count == max {
                                return Ok(finish(page, count, max, last_emitted, true));
                            }
                            page.common_prefixes.push(cp.clone());
                            count += 1;
                            last_emitted = Some(cp.clone());
                        }
                        current_cp = Some(cp);
                        skipped = 0;
                    }
                    None => {
                        if count == max {
                            return Ok(finish(page, count, max, last_emitted, true));
                        }
                        page.objects.push(ObjectRecordSummary {
                            size: to_u64(row.try_get("size")?, "object size")?,
                            etag: row.try_get("etag")?,
                            last_modified_ms: row.try_get("last_modified_ms")?,
                            key: key.clone(),
                        });
                        count += 1;
                        last_emitted = Some(key.clone());
                        current_cp = None;
                    }
                }
                last_key = Some(key);
            }
            drop(rows);
            if !seek && fetched < batch as usize {
                return Ok(finish(page, count, max, last_emitted, false));
            }
            // Continue after what we read, seeking past a run we are inside.
            lower = match (current_cp, last_key) {
                (Some(cp), _) => match prefix_successor(&cp) {
                    Some(next) => Lower::Inclusive(next),
                    None => return Ok(finish(page, count, max, last_emitted, false)),
                },
                (None, Some(k)) => Lower::Exclusive(k),
                (None, None) => return Ok(finish(page, count, max, last_emitted, false)),
            };
            if let Some(up) = upper.as_deref() {
                let past_end = match &lower {
                    Lower::Inclusive(l) | Lower::Exclusive(l) => l.as_str() >= up,
                };
                if past_end {
                    return Ok(finish(page, count, max, last_emitted, false));
                }
            }
        }
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
