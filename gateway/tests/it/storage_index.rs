//! Integration tests of the metadata index (gateway::index) on real SQLite files in temp dirs:
//! buckets, objects (atomic overwrite, concurrent writers and readers), listing semantics against
//! a reference model, multipart lifecycle, the gc queue, access keys and corrupt rows.

use crate::index_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use index_support::object;

use gateway::index::{
    AccessKeyRecord, Index, IndexError, ListPage, ListQuery, PartRecord, UploadRecord,
};

async fn fresh() -> (tempfile::TempDir, Index) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = audit::db::test_database_url_for(&dir.path().display().to_string())
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("index.db").display()));
    let index = Index::open(&url).await.expect("open index");
    (dir, index)
}

fn upload(bucket: &str, key: &str, upload_id: &str) -> UploadRecord {
    UploadRecord {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
        object_id_hex: "ffeeddccbbaa99887766554433221100".into(),
        initiated_ms: 1_700_000_000_000,
        headers: BTreeMap::from([("content-type".into(), "application/octet-stream".into())]),
        user_metadata: BTreeMap::from([("k".into(), "v".into())]),
        checksum_algorithm: Some("crc32".into()),
        checksum_type: None,
        owner: "alice".into(),
    }
}

fn part(bucket: &str, upload_id: &str, n: u32, id: &str) -> PartRecord {
    PartRecord {
        bucket: bucket.into(),
        upload_id: upload_id.into(),
        part_number: n,
        backend_id: id.into(),
        header: vec![9, 9, n as u8],
        size: 5 * 1024 * 1024 + u64::from(n),
        md5_hex: format!("{n:032x}"),
        checksums: BTreeMap::from([("crc32".into(), format!("part{n}"))]),
        last_modified_ms: 1_700_000_000_000 + i64::from(n),
    }
}

#[tokio::test]
async fn open_creates_a_wal_database_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub-dir-free.db");
    let url = format!("sqlite://{}", path.display());
    let index = Index::open(&url).await.unwrap();
    index.ping().await.unwrap();
    index.create_bucket("b", "o").await.unwrap();
    assert!(path.exists());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(
            &mut <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    // the durability contract (index module doc) holds on every pooled connection of the Any
    // driver: synchronous=FULL (2), foreign keys on, 30 s busy timeout
    for pool in [index.write_pool(), index.read_pool()] {
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(pool)
            .await
            .unwrap();
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(pool)
            .await
            .unwrap();
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!((sync, fk, busy), (2, 1, 30_000));
    }
    // the pools as /metrics shows them
    let m = index.pool_metrics();
    for line in [
        "vaultgate_db_pool_max_connections{dialect=\"sqlite\",pool=\"write\"} 1",
        "vaultgate_db_pool_max_connections{dialect=\"sqlite\",pool=\"read\"} 4",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing in {m}");
    }
    assert!(
        m.contains(
            "vaultgate_db_pool_connections{dialect=\"sqlite\",pool=\"read\",state=\"idle\"}"
        ),
        "{m}"
    );
    index.close().await;
    // Another crate's migration in the same database (policy does this) does not upset ours.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (30000000000001, 'foreign', TRUE, X'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    // Reopening runs the (already applied) migrations again without harm and keeps the data.
    let index = Index::open(&url).await.unwrap();
    assert_eq!(index.get_bucket("b").await.unwrap().unwrap().owner, "o");

    assert!(matches!(
        Index::open("mysql://x/y").await,
        Err(IndexError::Database(_))
    ));
    let mem = Index::open("sqlite::memory:").await.unwrap();
    mem.create_bucket("m", "o").await.unwrap();
    assert_eq!(mem.list_buckets().await.unwrap().len(), 1);
}

#[tokio::test]
async fn buckets_lifecycle() {
    let (_d, ix) = fresh().await;
    assert_eq!(ix.get_bucket("a").await.unwrap(), None);
    ix.create_bucket("zeta", "bob").await.unwrap();
    ix.create_bucket("alpha", "alice").await.unwrap();
    assert!(
        matches!(ix.create_bucket("alpha", "bob").await, Err(IndexError::AlreadyExists(n)) if n == "alpha")
    );
    let names: Vec<_> = ix
        .list_buckets()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["alpha", "zeta"]);
    let b = ix.get_bucket("alpha").await.unwrap().unwrap();
    assert_eq!(b.owner, "alice");
    assert!(b.created_ms > 1_600_000_000_000);

    assert!(matches!(
        ix.delete_bucket("nope").await,
        Err(IndexError::NotFound(_))
    ));
    ix.put_object(&object("alpha", "k", "e", &["aaaa0001"]))
        .await
        .unwrap();
    assert!(matches!(
        ix.delete_bucket("alpha").await,
        Err(IndexError::NotEmpty(_))
    ));
    ix.delete_object("alpha", "k").await.unwrap();
    // an upload in progress is aborted with the bucket (as S3 does), not a reason to refuse
    ix.create_upload(&upload("alpha", "k", "u1")).await.unwrap();
    assert_eq!(
        ix.delete_bucket("alpha").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(ix.get_upload("alpha", "u1").await.unwrap(), None);
    assert_eq!(ix.get_bucket("alpha").await.unwrap(), None);
    assert!(matches!(
        ix.delete_bucket("alpha").await,
        Err(IndexError::NotFound(_))
    ));
}

#[tokio::test]
async fn object_round_trip_and_missing_cases() {
    let (_d, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    let mut rec = object(
        "b",
        "dir/ключ 🙂",
        "abc-3",
        &["aaaa0001", "aaaa0002", "aaaa0003"],
    );
    rec.manifest_id = Some("aaaa00ff".into());
    rec.size = u64::from(u32::MAX) * 4; // > 4 GiB survives
    assert_eq!(ix.put_object(&rec).await.unwrap(), Vec::<String>::new());
    assert_eq!(
        ix.get_object("b", &rec.key).await.unwrap(),
        Some(rec.clone())
    );
    assert_eq!(ix.get_object("b", "dir/other").await.unwrap(), None);
    assert_eq!(ix.get_object("nobucket", &rec.key).await.unwrap(), None);
    assert!(
        matches!(ix.put_object(&object("nobucket", "k", "e", &["aaaa0009"])).await, Err(IndexError::NotFound(b)) if b == "nobucket")
    );
    assert_eq!(ix.delete_object("b", "missing").await.unwrap(), None);

    let mut too_big = object("b", "huge", "e", &["aaaa0010"]);
    too_big.size = u64::MAX;
    assert!(matches!(
        ix.put_object(&too_big).await,
        Err(IndexError::Corrupt(_))
    ));
    assert_eq!(ix.get_object("b", "huge").await.unwrap(), None);

    let mut garbage = ix.delete_object("b", &rec.key).await.unwrap().unwrap();
    garbage.sort();
    assert_eq!(garbage, ["aaaa0001", "aaaa0002", "aaaa0003", "aaaa00ff"]);
    assert_eq!(ix.get_object("b", &rec.key).await.unwrap(), None);
    let mut pending = ix.gc_pending(100).await.unwrap();
    pending.sort();
    assert_eq!(pending, garbage);
}

/// Objects of many streams (a multipart upload of up to 10,000 parts): the stream rows are
/// inserted 512 per statement, and on SQLite together with the row in one script up to 16 streams;
/// each count around those limits round-trips whole and in order, and replacing or deleting one
/// queues every stream.
#[tokio::test]
async fn objects_of_many_streams_round_trip_in_order() {
    let (_d, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    let mut all_ids = Vec::new();
    for (n, count) in [2usize, 16, 17, 511, 512, 513, 1025, 10_000]
        .into_iter()
        .enumerate()
    {
        let ids: Vec<String> = (0..count).map(|i| format!("{n:02x}{i:06x}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let key = format!("parts/{count}");
        let rec = object("b", &key, &format!("e-{count}"), &refs);
        assert_eq!(ix.put_object(&rec).await.unwrap(), Vec::<String>::new());
        let back = ix.get_object("b", &key).await.unwrap().unwrap();
        assert_eq!(back.streams.len(), count);
        assert_eq!(back, rec);
        all_ids.extend(ids);
    }
    // one key replaced: all its streams become garbage, the others stay
    let small = object("b", "parts/513", "e-small", &["ff000001"]);
    let replaced = ix.put_object(&small).await.unwrap();
    assert_eq!(replaced.len(), 513);
    assert_eq!(ix.get_object("b", "parts/513").await.unwrap(), Some(small));
    let gone = ix.delete_object("b", "parts/10000").await.unwrap().unwrap();
    assert_eq!(gone.len(), 10_000);
    assert!(ix.is_referenced(&all_ids[0]).await.unwrap());
}

#[tokio::test]
async fn overwrite_is_atomic_and_queues_only_unreferenced_ids() {
    let (_d, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    ix.put_object(&object("b", "k", "v1", &["aaaa0001", "aaaa0002"]))
        .await
        .unwrap();
    // The new version reuses one stream (e.g. a metadata-only replace): it must not become garbage.
    let v2 = object("b", "k", "v2", &["aaaa0002", "aaaa0003"]);
    assert_eq!(ix.put_object(&v2).await.unwrap(), ["aaaa0001"]);
    assert_eq!(ix.get_object("b", "k").await.unwrap(), Some(v2));
    assert_eq!(ix.gc_pending(10).await.unwrap(), ["aaaa0001"]);
    assert!(
        ix.is_referenced("aaaa0001").await.unwrap(),
        "queued ids count as referenced"
    );
    assert!(ix.is_referenced("aaaa0002").await.unwrap());
    assert!(!ix.is_referenced("aaaa0009").await.unwrap());
    ix.gc_done(&["aaaa0001".to_string()]).await.unwrap();
    assert!(ix.gc_pending(10).await.unwrap().is_empty());
    assert!(!ix.is_referenced("aaaa0001").await.unwrap());
    ix.gc_done(&[]).await.unwrap();
}

/// Readers racing an overwriting writer always see one complete version: stream count, ETag and
/// every stream's backend id belong to the same write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_mix_of_versions() {
    let (_d, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    let version = |v: usize| {
        let ids: Vec<String> = (0..(v % 5) + 1)
            .map(|s| format!("{v:04x}{s:04x}"))
            .collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        object("b", "hot", &format!("v{v}"), &refs)
    };
    ix.put_object(&version(0)).await.unwrap();
    let writer = {
        let ix = ix.clone();
        tokio::spawn(async move {
            for v in 1..150 {
                ix.put_object(&version(v)).await.unwrap();
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..4 {
        let ix = ix.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            for _ in 0..300 {
                let rec = ix
                    .get_object("b", "hot")
                    .await
                    .unwrap()
                    .expect("object always visible");
                let v: usize = rec.etag[1..].parse().unwrap();
                assert_eq!(rec, version(v), "mixed record");
                seen.insert(v);
            }
            seen.len()
        }));
    }
    writer.await.unwrap();
    for r in readers {
        assert!(r.await.unwrap() >= 1);
    }
    assert_eq!(
        ix.get_object("b", "hot").await.unwrap().unwrap().etag,
        "v149"
    );
}

/// 16 tasks writing at once (puts, overwrites, deletes, parts): no SQLITE_BUSY, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_writers_do_not_get_busy_errors() {
    let (_d, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    ix.create_upload(&upload("b", "mp", "up")).await.unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let ix = ix.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u32 {
                let id = format!("{t:04x}{i:04x}");
                ix.put_object(&object("b", &format!("t{t}/k{i}"), "e", &[&id]))
                    .await?;
                ix.put_object(&object(
                    "b",
                    "shared",
                    &format!("{t}-{i}"),
                    &[&format!("{id}-s")],
                ))
                .await?;
                ix.put_part(&part("b", "up", t * 100 + i + 1, &format!("{id}-p")))
                    .await?;
                if i % 5 == 0 {
                    ix.delete_object("b", &format!("t{t}/k{i}")).await?;
                }
                // Reads interleave with the writes.
                ix.get_object("b", "shared").await?;
            }
            Ok::<_, IndexError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("no writer may fail");
    }
    let elapsed = started.elapsed();
    let page = ix
        .list_objects(&ListQuery {
            bucket: "b".into(),
            max_keys: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 16 * 20 + 1);
    assert_eq!(ix.list_parts("b", "up", 0, 1000).await.unwrap().len(), 400);
    // Every overwritten "shared" version except the visible one is queued as garbage.
    assert_eq!(
        ix.gc_pending(10_000).await.unwrap().len(),
        16 * 25 - 1 + 16 * 5
    );
    eprintln!("16 writers x 100 write transactions: {elapsed:?}");
}

// ---------- listing ----------

/// The reference model: every entry (key or common prefix) the listing must produce, in order.
fn model(
    keys: &BTreeSet<String>,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<&str>,
) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    for k in keys.iter().filter(|k| k.starts_with(prefix)) {
        let entry = match delimiter
            .filter(|d| !d.is_empty())
            .and_then(|d| k[prefix.len()..].find(d).map(|p| (d, p)))
        {
            Some((d, p)) => (true, k[..prefix.len() + p + d.len()].to_string()),
            None => (false, k.clone()),
        };
        if start_after.is_some_and(|sa| entry.1.as_str() <= sa) {
            continue;
        }
        if out.last() != Some(&entry) {
            out.push(entry);
        }
    }
    out
}

fn entries(page: &ListPage) -> Vec<(bool, String)> {
    let mut v: Vec<(bool, String)> = page
        .objects
        .iter()
        .map(|o| (false, o.key.clone()))
        .collect();
    v.extend(page.common_prefixes.iter().map(|p| (true, p.clone())));
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v
}

async fn check_listing(
    ix: &Index,
    keys: &BTreeSet<String>,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<&str>,
    max: u32,
) {
    let want = model(keys, prefix, delimiter, start_after);
    let q = ListQuery {
        bucket: "b".into(),
        prefix: prefix.into(),
        delimiter: delimiter.map(Into::into),
        start_after: start_after.map(Into::into),
        max_keys: max,
    };
    let ctx =
        format!("prefix={prefix:?} delimiter={delimiter:?} start_after={start_after:?} max={max}");
    let page = ix.list_objects(&q).await.unwrap();
    let got = entries(&page);
    let expect_first: Vec<_> = want.iter().take(max as usize).cloned().collect();
    assert_eq!(got, expect_first, "first page, {ctx}");
    let truncated = want.len() > max as usize && max > 0;
    assert_eq!(page.is_truncated, truncated, "is_truncated, {ctx}");
    assert_eq!(
        page.next_marker,
        if truncated {
            expect_first.last().map(|e| e.1.clone())
        } else {
            None
        },
        "next_marker, {ctx}"
    );
    if max == 0 {
        return;
    }
    // Paging with next_marker as start_after walks exactly the model's entries.
    let mut all = got;
    let mut marker = page.next_marker.clone();
    let mut pages = 1;
    while let Some(m) = marker {
        let p = ix
            .list_objects(&ListQuery {
                start_after: Some(m),
                ..q.clone()
            })
            .await
            .unwrap();
        assert!(
            !entries(&p).is_empty() || !p.is_truncated,
            "empty truncated page, {ctx}"
        );
        all.extend(entries(&p));
        marker = p.next_marker.clone();
        pages += 1;
        assert!(pages < 10_000, "paging does not end, {ctx}");
    }
    assert_eq!(all, want, "all pages, {ctx}");
}

async fn index_with_keys(keys: &BTreeSet<String>) -> (tempfile::TempDir, Index) {
    let (d, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    ix.create_bucket("other", "o").await.unwrap();
    for (i, k) in keys.iter().enumerate() {
        ix.put_object(&object("b", k, "e", &[&format!("{i:08x}")]))
            .await
            .unwrap();
    }
    // Keys in another bucket never leak into listings of "b".
    ix.put_object(&object("other", "a/zzz", "e", &["ffff0001"]))
        .await
        .unwrap();
    (d, ix)
}

#[tokio::test]
async fn listing_matches_the_reference_model() {
    let keys: BTreeSet<String> = [
        "a",
        "a/",
        "a/b",
        "a/b/c",
        "a/b/d",
        "a/c",
        "a//x",
        "a0",
        "ab",
        "b",
        "b/1",
        "b/2/3",
        "c/",
        "d.txt",
        "dir/sub/x",
        "dir/sub/y",
        "dir/z",
        "é/1",
        "é",
        "z",
        "日本/語",
        "日本語",
        "x\u{FFFF}/a",
        "x\u{10000}/b",
        "x\u{7F}",
        "x\u{80}",
        "~",
        "with space/k",
        "a-b/c",
        "a.b/c",
        "a%2Fb",
        "\u{1F600}/smile",
        "nul\u{0}/x",
        "nul\u{0}y",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    // PostgreSQL TEXT cannot hold U+0000 (S3 refuses such keys on PUT anyway, auth::check_new_key):
    // the NUL cases run on SQLite only
    let pg = std::env::var("VAULTGATE_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty());
    let nul_ok = |s: &str| !(pg && s.contains('\0'));
    let mut keys = keys;
    keys.retain(|k| nul_ok(k));
    let (_d, ix) = index_with_keys(&keys).await;
    let prefixes = [
        "",
        "a",
        "a/",
        "a/b",
        "b/",
        "dir/",
        "é",
        "x",
        "日本",
        "zzz",
        "nul\u{0}",
        "\u{10FFFF}",
    ];
    let delimiters = [
        None,
        Some("/"),
        Some(""),
        Some("b"),
        Some("/s"),
        Some("語"),
        Some("\u{0}"),
    ];
    let starts = [
        None,
        Some(""),
        Some("a"),
        Some("a/"),
        Some("a/b"),
        Some("b/1"),
        Some("dir/sub/"),
        Some("é"),
        Some("zz"),
        Some("\u{10FFFF}"),
    ];
    for prefix in prefixes.into_iter().filter(|p| nul_ok(p)) {
        for delimiter in delimiters.into_iter().filter(|d| d.is_none_or(nul_ok)) {
            for sa in starts {
                for max in [0, 1, 2, 3, 1000] {
                    check_listing(&ix, &keys, prefix, delimiter, sa, max).await;
                }
            }
        }
    }
}

#[tokio::test]
async fn listing_explicit_cases() {
    let keys: BTreeSet<String> = [
        "photos/2024/a.jpg",
        "photos/2024/b.jpg",
        "photos/2025/c.jpg",
        "photos/index.html",
        "readme",
        "é/x",
        "z/y",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let (_d, ix) = index_with_keys(&keys).await;
    let q = |prefix: &str, delim: Option<&str>, sa: Option<&str>, max: u32| ListQuery {
        bucket: "b".into(),
        prefix: prefix.into(),
        delimiter: delim.map(Into::into),
        start_after: sa.map(Into::into),
        max_keys: max,
    };
    let p = ix
        .list_objects(&q("", Some("/"), None, 1000))
        .await
        .unwrap();
    assert_eq!(
        p.common_prefixes,
        ["photos/", "z/", "é/"],
        "UTF-8 byte order puts z before é"
    );
    assert_eq!(
        p.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["readme"]
    );
    assert_eq!(p.objects[0].size, 100);
    assert_eq!(p.objects[0].etag, "e");
    assert!(!p.is_truncated);

    let p = ix
        .list_objects(&q("photos/", Some("/"), None, 2))
        .await
        .unwrap();
    assert_eq!(p.common_prefixes, ["photos/2024/", "photos/2025/"]);
    assert!(p.objects.is_empty());
    assert!(p.is_truncated);
    assert_eq!(p.next_marker.as_deref(), Some("photos/2025/"));
    let p = ix
        .list_objects(&q("photos/", Some("/"), Some("photos/2025/"), 2))
        .await
        .unwrap();
    assert_eq!(
        p.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["photos/index.html"]
    );
    assert!(p.common_prefixes.is_empty());
    assert!(!p.is_truncated);
    assert_eq!(p.next_marker, None);

    // start_after inside a group skips the group (it was listed on the page before).
    let p = ix
        .list_objects(&q("photos/", Some("/"), Some("photos/2024/a.jpg"), 10))
        .await
        .unwrap();
    assert_eq!(p.common_prefixes, ["photos/2025/"]);

    // Listing a bucket that does not exist is NotFound; an empty bucket is an empty page.
    assert!(matches!(ix.list_objects(&q("", None, None, 10)).await, Ok(p) if p.objects.len() == 7));
    let mut missing = q("", None, None, 10);
    missing.bucket = "nope".into();
    assert!(matches!(
        ix.list_objects(&missing).await,
        Err(IndexError::NotFound(_))
    ));
    ix.create_bucket("empty", "o").await.unwrap();
    missing.bucket = "empty".into();
    assert_eq!(
        ix.list_objects(&missing).await.unwrap(),
        ListPage::default()
    );
}

/// 12,000 keys: a delimiter listing seeks past each big group instead of scanning it.
#[tokio::test]
async fn listing_ten_thousand_keys_is_fast() {
    let (dir, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    // Bulk-load through one transaction of raw inserts (the API would pay one fsync per object).
    let url = audit::db::test_database_url_for(&dir.path().display().to_string())
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("index.db").display()));
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    let mut keys = BTreeSet::new();
    for i in 0..12_000u32 {
        let key = format!("group{:02}/item{:05}", i % 30, i);
        sqlx::query(
            "INSERT INTO objects (bucket, object_key, size, etag, last_modified_ms, headers, user_metadata, checksums, data_key_id, key_version) \
             VALUES ('b', $1, $2, 'e', 0, '{}', '{}', '{}', 'k', 1)",
        )
        .bind(&key)
        .bind(i64::from(i))
        .execute(&mut *tx)
        .await
        .unwrap();
        keys.insert(key);
    }
    for top in ["top1", "top2"] {
        sqlx::query("INSERT INTO objects (bucket, object_key, size, etag, last_modified_ms, headers, user_metadata, checksums, data_key_id, key_version) VALUES ('b', $1, 1, 'e', 0, '{}', '{}', '{}', 'k', 1)")
            .bind(top)
            .execute(&mut *tx)
            .await
            .unwrap();
        keys.insert(top.to_string());
    }
    tx.commit().await.unwrap();

    let started = Instant::now();
    let p = ix
        .list_objects(&ListQuery {
            bucket: "b".into(),
            delimiter: Some("/".into()),
            max_keys: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let grouped = started.elapsed();
    assert_eq!(p.common_prefixes.len(), 30);
    assert_eq!(p.objects.len(), 2);
    assert!(!p.is_truncated);

    let started = Instant::now();
    let mut marker = None;
    let mut total = 0;
    loop {
        let p = ix
            .list_objects(&ListQuery {
                bucket: "b".into(),
                start_after: marker,
                max_keys: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        total += p.objects.len();
        marker = p.next_marker;
        if !p.is_truncated {
            break;
        }
    }
    let flat = started.elapsed();
    assert_eq!(total, 12_002);
    check_listing(
        &ix,
        &keys,
        "group07/",
        Some("/"),
        Some("group07/item00100"),
        7,
    )
    .await;
    check_listing(&ix, &keys, "", Some("/"), Some("group07/"), 5).await;
    eprintln!("12,002 keys: delimiter listing {grouped:?}, 13 flat pages {flat:?}");
    assert!(
        grouped.as_millis() < 2000,
        "delimiter listing took {grouped:?}"
    );
}

// ---------- multipart ----------

#[tokio::test]
async fn multipart_lifecycle() {
    let (_d, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    assert!(matches!(
        ix.create_upload(&upload("nope", "k", "u0")).await,
        Err(IndexError::NotFound(_))
    ));
    let up = upload("b", "big/file", "u1");
    ix.create_upload(&up).await.unwrap();
    assert!(matches!(
        ix.create_upload(&up).await,
        Err(IndexError::AlreadyExists(_))
    ));
    assert_eq!(ix.get_upload("b", "u1").await.unwrap(), Some(up.clone()));
    assert_eq!(ix.get_upload("other", "u1").await.unwrap(), None);
    assert!(matches!(
        ix.put_part(&part("b", "nope", 1, "bbbb0001")).await,
        Err(IndexError::NoSuchUpload(_))
    ));
    assert!(matches!(
        ix.list_parts("b", "nope", 0, 10).await,
        Err(IndexError::NoSuchUpload(_))
    ));
    assert!(ix.list_parts("b", "u1", 0, 10).await.unwrap().is_empty());

    for n in 1..=3 {
        assert_eq!(
            ix.put_part(&part("b", "u1", n, &format!("bbbb000{n}")))
                .await
                .unwrap(),
            None
        );
    }
    // Re-uploading part 2 replaces it and hands back the old backend id (queued for gc).
    assert_eq!(
        ix.put_part(&part("b", "u1", 2, "bbbb0022"))
            .await
            .unwrap()
            .as_deref(),
        Some("bbbb0002")
    );
    assert_eq!(ix.gc_pending(10).await.unwrap(), ["bbbb0002"]);
    ix.gc_done(&["bbbb0002".into()]).await.unwrap();
    let parts = ix.list_parts("b", "u1", 0, 10).await.unwrap();
    assert_eq!(
        parts
            .iter()
            .map(|p| p.backend_id.as_str())
            .collect::<Vec<_>>(),
        ["bbbb0001", "bbbb0022", "bbbb0003"]
    );
    assert_eq!(parts[1], part("b", "u1", 2, "bbbb0022"));
    let page: Vec<u32> = ix
        .list_parts("b", "u1", 1, 1)
        .await
        .unwrap()
        .iter()
        .map(|p| p.part_number)
        .collect();
    assert_eq!(page, [2]);
    assert!(ix.is_referenced("bbbb0003").await.unwrap());

    // The object it replaces.
    ix.put_object(&object("b", "big/file", "old", &["cccc0001"]))
        .await
        .unwrap();

    // Completing for another key is refused and changes nothing.
    let wrong = object("b", "other/key", "x-2", &["bbbb0001", "bbbb0003"]);
    assert!(matches!(
        ix.complete_upload("b", "u1", &wrong).await,
        Err(IndexError::NoSuchUpload(_))
    ));
    assert!(ix.get_upload("b", "u1").await.unwrap().is_some());

    // Complete with parts 1 and 3: part 2 and the old object's stream become garbage.
    let mut done = object("b", "big/file", "abcdef-2", &["bbbb0001", "bbbb0003"]);
    done.manifest_id = Some("dddd0001".into());
    let mut garbage = ix.complete_upload("b", "u1", &done).await.unwrap();
    garbage.sort();
    assert_eq!(garbage, ["bbbb0022", "cccc0001"]);
    let mut pending = ix.gc_pending(10).await.unwrap();
    pending.sort();
    assert_eq!(pending, garbage);
    assert_eq!(ix.get_object("b", "big/file").await.unwrap(), Some(done));
    assert_eq!(ix.get_upload("b", "u1").await.unwrap(), None);
    assert!(ix.is_referenced("bbbb0001").await.unwrap());
    assert!(ix.is_referenced("dddd0001").await.unwrap());
    assert!(matches!(
        ix.complete_upload("b", "u1", &object("b", "big/file", "e", &[]))
            .await,
        Err(IndexError::NoSuchUpload(_))
    ));
    assert!(matches!(
        ix.put_part(&part("b", "u1", 4, "bbbb0004")).await,
        Err(IndexError::NoSuchUpload(_))
    ));
    assert!(matches!(
        ix.abort_upload("b", "u1").await,
        Err(IndexError::NoSuchUpload(_))
    ));

    // Abort returns (and queues) every part.
    ix.create_upload(&upload("b", "k2", "u2")).await.unwrap();
    ix.put_part(&part("b", "u2", 1, "eeee0001")).await.unwrap();
    ix.put_part(&part("b", "u2", 7, "eeee0007")).await.unwrap();
    assert!(matches!(
        ix.abort_upload("other", "u2").await,
        Err(IndexError::NoSuchUpload(_))
    ));
    assert_eq!(
        ix.abort_upload("b", "u2").await.unwrap(),
        ["eeee0001", "eeee0007"]
    );
    assert!(ix.is_referenced("eeee0001").await.unwrap(), "queued");
    assert_eq!(ix.get_upload("b", "u2").await.unwrap(), None);
}

#[tokio::test]
async fn list_uploads_orders_and_pages() {
    let (_d, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    ix.create_bucket("c", "o").await.unwrap();
    for (key, id) in [
        ("a/1", "u3"),
        ("a/1", "u1"),
        ("a/2", "u2"),
        ("b", "u4"),
        ("a/1", "u5"),
    ] {
        ix.create_upload(&upload("b", key, id)).await.unwrap();
    }
    ix.create_upload(&upload("c", "a/1", "u9")).await.unwrap();
    let ids = |v: Vec<UploadRecord>| {
        v.into_iter()
            .map(|u| format!("{}:{}", u.key, u.upload_id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(ix.list_uploads("b", "", None, None, 100).await.unwrap()),
        ["a/1:u1", "a/1:u3", "a/1:u5", "a/2:u2", "b:u4"]
    );
    assert_eq!(
        ids(ix.list_uploads("b", "a/", None, None, 2).await.unwrap()),
        ["a/1:u1", "a/1:u3"]
    );
    assert_eq!(
        ids(ix
            .list_uploads("b", "a/", Some("a/1"), Some("u3"), 10)
            .await
            .unwrap()),
        ["a/1:u5", "a/2:u2"]
    );
    assert_eq!(
        ids(ix
            .list_uploads("b", "", Some("a/1"), None, 10)
            .await
            .unwrap()),
        ["a/2:u2", "b:u4"]
    );
    assert_eq!(
        ids(ix.list_uploads("b", "zz", None, None, 10).await.unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(ix.list_uploads("c", "", None, None, 10).await.unwrap()),
        ["a/1:u9"]
    );
}

// ---------- credentials, corruption ----------

#[tokio::test]
async fn access_keys_upsert_count_and_redact() {
    let (_d, ix) = fresh().await;
    assert_eq!(ix.count_access_keys().await.unwrap(), 0);
    let mut rec = AccessKeyRecord {
        access_key_id: "AKIAEXAMPLE".into(),
        sealed_secret: vec![1, 2, 3, 0, 255],
        principal: "alice".into(),
        role: "Manager".into(),
        created_ms: 5,
        disabled: false,
    };
    ix.put_access_key(&rec).await.unwrap();
    assert_eq!(
        ix.get_access_key("AKIAEXAMPLE").await.unwrap(),
        Some(rec.clone())
    );
    rec.disabled = true;
    ix.put_access_key(&rec).await.unwrap();
    assert_eq!(
        ix.get_access_key("AKIAEXAMPLE").await.unwrap(),
        Some(rec.clone())
    );
    assert_eq!(ix.count_access_keys().await.unwrap(), 1);
    assert_eq!(ix.get_access_key("AKIAOTHER").await.unwrap(), None);
    let shown = format!("{rec:?}");
    assert!(
        shown.contains("[redacted]") && !shown.contains("255"),
        "{shown}"
    );
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    let (dir, ix) = fresh().await;
    ix.create_bucket("b", "o").await.unwrap();
    ix.put_object(&object("b", "k1", "e", &["aaaa0001"]))
        .await
        .unwrap();
    ix.put_object(&object("b", "k2", "e", &["aaaa0002"]))
        .await
        .unwrap();
    let url = audit::db::test_database_url_for(&dir.path().display().to_string())
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("index.db").display()));
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("UPDATE objects SET headers = 'not json' WHERE object_key = 'k1'")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE objects SET size = -5 WHERE object_key = 'k2'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        ix.get_object("b", "k1").await,
        Err(IndexError::Corrupt(_))
    ));
    assert!(matches!(
        ix.get_object("b", "k2").await,
        Err(IndexError::Corrupt(_))
    ));
    assert!(matches!(
        ix.list_objects(&ListQuery {
            bucket: "b".into(),
            max_keys: 10,
            ..Default::default()
        })
        .await,
        Err(IndexError::Corrupt(_))
    ));
}

// ---------- data keys (keys::DataKeyStore) ----------

fn wrapped(id: u8, bucket: &str, version: u32) -> keys::WrappedDataKey {
    keys::WrappedDataKey {
        id: keys::DataKeyId([id; 16]),
        bucket: bucket.into(),
        kms_key: String::new(),
        version,
        kek_id: "local:abc".into(),
        wrapped: vec![id, 0, 255, version as u8],
        created_ms: 1_700_000_000_000 + i64::from(version),
    }
}

fn same_key(a: &keys::WrappedDataKey, b: &keys::WrappedDataKey) -> bool {
    a.id.0 == b.id.0
        && a.bucket == b.bucket
        && a.version == b.version
        && a.kek_id == b.kek_id
        && a.wrapped == b.wrapped
        && a.created_ms == b.created_ms
}

#[tokio::test]
async fn index_is_a_data_key_store() {
    use keys::DataKeyStore;
    let (_d, ix) = fresh().await;
    assert!(ix.current("b", "").await.unwrap().is_none());
    assert!(ix.get(&keys::DataKeyId([1; 16])).await.unwrap().is_none());
    for k in [wrapped(1, "b", 1), wrapped(2, "b", 2), wrapped(3, "c", 1)] {
        ix.insert(&k).await.unwrap();
    }
    assert!(same_key(
        &ix.current("b", "").await.unwrap().unwrap(),
        &wrapped(2, "b", 2)
    ));
    assert!(same_key(
        &ix.get(&keys::DataKeyId([1; 16])).await.unwrap().unwrap(),
        &wrapped(1, "b", 1)
    ));
    // The same id, or the same bucket version, cannot be inserted twice.
    assert!(ix.insert(&wrapped(1, "x", 9)).await.is_err());
    assert!(ix.insert(&wrapped(9, "b", 2)).await.is_err());
    // Rotation re-wraps in place.
    ix.update_wrapping(&keys::DataKeyId([1; 16]), "local:new", &[7, 7])
        .await
        .unwrap();
    let k = ix.get(&keys::DataKeyId([1; 16])).await.unwrap().unwrap();
    assert_eq!(
        (k.kek_id.as_str(), k.wrapped.as_slice()),
        ("local:new", &[7u8, 7][..])
    );
    assert!(matches!(
        ix.update_wrapping(&keys::DataKeyId([8; 16]), "k", &[1])
            .await,
        Err(keys::Error::KeyUnavailable(_))
    ));
    let all = ix.list().await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!((all[0].bucket.as_str(), all[0].version), ("b", 1));
    assert_eq!((all[2].bucket.as_str(), all[2].version), ("c", 1));
}

fn under_kms(mut k: keys::WrappedDataKey, kms_key: &str) -> keys::WrappedDataKey {
    k.kms_key = kms_key.into();
    k.kek_id = format!("aws-kms:{kms_key}");
    k
}

/// Data keys bound to a KMS key (SSE-KMS): one version sequence per (bucket, KMS key), the
/// first key of a sequence created once even when two instances race (`insert_first`).
#[tokio::test]
async fn data_keys_are_scoped_by_kms_key() {
    use keys::DataKeyStore;
    let (_d, ix) = fresh().await;
    let k1 = "arn:aws:kms:us-east-1:1:key/one";
    let k2 = "arn:aws:kms:us-east-1:1:key/two";
    ix.insert(&wrapped(1, "b", 1)).await.unwrap();
    // version 1 of the same bucket under two other KMS keys: distinct sequences
    let first = ix
        .insert_first(&under_kms(wrapped(2, "b", 1), k1))
        .await
        .unwrap();
    assert!(same_key(&first, &under_kms(wrapped(2, "b", 1), k1)));
    ix.insert(&under_kms(wrapped(3, "b", 1), k2)).await.unwrap();
    ix.insert(&under_kms(wrapped(4, "b", 2), k2)).await.unwrap();
    // another instance creating K1's version 1 meanwhile gets the stored one, not its own
    let raced = ix
        .insert_first(&under_kms(wrapped(5, "b", 1), k1))
        .await
        .unwrap();
    assert_eq!(raced.id.0, [2; 16]);
    assert!(ix.get(&keys::DataKeyId([5; 16])).await.unwrap().is_none());
    // a duplicate (bucket, KMS key, version) is refused by a plain insert
    assert!(ix.insert(&under_kms(wrapped(6, "b", 2), k2)).await.is_err());
    let cur = |k: &'static str| {
        let ix = ix.clone();
        async move { ix.current("b", k).await.unwrap().unwrap() }
    };
    assert_eq!(cur("").await.id.0, [1; 16]);
    assert_eq!(cur(k1).await.id.0, [2; 16]);
    let c2 = cur(k2).await;
    assert_eq!((c2.id.0, c2.version, c2.kms_key.as_str()), ([4; 16], 2, k2));
    assert!(ix.current("b", "arn:other").await.unwrap().is_none());
    assert!(ix.current("c", k1).await.unwrap().is_none());
    let listed: Vec<(String, u32)> = ix
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kms_key, k.version))
        .collect();
    assert_eq!(
        listed,
        vec![
            (String::new(), 1),
            (k1.to_owned(), 1),
            (k2.to_owned(), 1),
            (k2.to_owned(), 2)
        ]
    );
    // the admin summary: the current key of each sequence, the provider's own key first
    let summary: Vec<(String, String, u32, u32, String, i64)> = ix
        .data_key_summary()
        .await
        .unwrap()
        .into_iter()
        .map(|k| {
            (
                k.bucket,
                k.kms_key,
                k.version,
                k.versions,
                k.kek_id,
                k.created_ms,
            )
        })
        .collect();
    let row = |kms: &str, version: u32, versions: u32, kek: String| {
        let created = 1_700_000_000_000 + i64::from(version);
        (
            "b".to_owned(),
            kms.to_owned(),
            version,
            versions,
            kek,
            created,
        )
    };
    assert_eq!(
        summary,
        vec![
            row("", 1, 1, "local:abc".into()),
            row(k1, 1, 1, format!("aws-kms:{k1}")),
            row(k2, 2, 2, format!("aws-kms:{k2}")),
        ]
    );
}

#[tokio::test]
async fn keyring_persists_bucket_keys_in_the_index() {
    let (dir, ix) = fresh().await;
    let provider: std::sync::Arc<dyn keys::KeyProvider> =
        std::sync::Arc::new(keys::LocalProvider::from_hex(&"2b".repeat(32)).unwrap());
    let store: std::sync::Arc<dyn keys::DataKeyStore> = std::sync::Arc::new(ix.clone());
    let ring = keys::Keyring::new(provider.clone(), store, keys::CacheConfig::default());
    let key = ring.sealing_key("photos").await.unwrap();
    assert_eq!(key.key_version(), 1);
    ix.close().await;

    // A fresh index and keyring (a restart) find the same bucket key instead of making a new one.
    let url = audit::db::test_database_url_for(&dir.path().display().to_string())
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("index.db").display()));
    let ix = Index::open(&url).await.unwrap();
    let stored = keys::DataKeyStore::current(&ix, "photos", "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.id.0, key.data_key_id().0);
    let ring = keys::Keyring::new(
        provider,
        std::sync::Arc::new(ix),
        keys::CacheConfig::default(),
    );
    assert_eq!(
        ring.sealing_key("photos").await.unwrap().data_key_id().0,
        key.data_key_id().0
    );
}
