//! The versioning migration (issue 15) on an index written before it: a database with only the
//! initial schema and rows in it is opened by the current `Index::open`; every object becomes the
//! `null` version of its key, stays readable, listed and deletable, and its streams stay
//! referenced (nothing becomes garbage), without per-part checksums (a later migration's
//! NULL column).

use gateway::index::{Index, ListQuery, NULL_VERSION};

#[tokio::test]
async fn objects_written_before_versioning_become_null_versions() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("index.db").display()
    );
    // the schema as it was: only the initial migration
    let old = dir.path().join("old-migrations");
    std::fs::create_dir(&old).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join("sqlite");
    std::fs::copy(
        src.join("20261122000001_initial.sql"),
        old.join("20261122000001_initial.sql"),
    )
    .unwrap();
    {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        for q in [
            "INSERT INTO buckets (name, owner, created_ms) VALUES ('old', 'admin', 1)",
            "INSERT INTO objects (bucket, object_key, size, etag, last_modified_ms, headers, \
             user_metadata, checksums, data_key_id, key_version, manifest_id) VALUES \
             ('old', 'a', 3, 'etag-a', 10, '{}', '{}', '{}', 'dk', 1, NULL), \
             ('old', 'b', 7, 'etag-b-2', 20, '{\"content-type\":\"text/plain\"}', '{}', '{}', 'dk', 1, 'man-b')",
            "INSERT INTO object_streams (bucket, object_key, seq, part_number, backend_id, header, \
             plaintext_len, md5_hex) VALUES ('old', 'a', 0, 0, 'blob-a', x'01', 3, 'm'), \
             ('old', 'b', 0, 1, 'blob-b1', x'02', 4, 'm1'), ('old', 'b', 1, 2, 'blob-b2', x'03', 3, 'm2')",
        ] {
            sqlx::query(q).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }

    let ix = Index::open(&url).await.expect("the new migration applies");
    let a = ix
        .get_object("old", "a")
        .await
        .unwrap()
        .expect("a is there");
    assert_eq!(
        (a.version_id.as_str(), a.is_latest, a.delete_marker, a.size),
        (NULL_VERSION, true, false, 3)
    );
    assert_eq!(a.streams.len(), 1);
    assert_eq!(a.streams[0].backend_id, "blob-a");
    // streams written before per-part checksums were kept have none (NULL), not an error
    assert!(a.streams[0].checksums.is_empty());
    let b = ix
        .get_version("old", "b", Some(NULL_VERSION))
        .await
        .unwrap()
        .expect("b by its null version id");
    assert_eq!(b.manifest_id.as_deref(), Some("man-b"));
    assert_eq!(
        b.streams
            .iter()
            .map(|s| s.backend_id.as_str())
            .collect::<Vec<_>>(),
        ["blob-b1", "blob-b2"]
    );
    assert_eq!(b.headers["content-type"], "text/plain");
    let page = ix
        .list_objects(&ListQuery {
            bucket: "old".into(),
            max_keys: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.objects
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    let mut referenced = ix.referenced_backend_ids().await.unwrap();
    referenced.sort();
    assert_eq!(referenced, ["blob-a", "blob-b1", "blob-b2", "man-b"]);
    // and it deletes like any null version: its streams and manifest become garbage
    let mut garbage = ix.delete_object("old", "b").await.unwrap().unwrap();
    garbage.sort();
    assert_eq!(garbage, ["blob-b1", "blob-b2", "man-b"]);
    assert!(ix.get_object("old", "b").await.unwrap().is_none());
    ix.close().await;
}
