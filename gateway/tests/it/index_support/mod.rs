//! Record builders shared by the index test binaries (`storage_index`, `index_group_commit`).

use std::collections::BTreeMap;

use gateway::index::{ObjectRecord, StreamRecord};

/// A stream record with a recognisable header and MD5 derived from `part` and `len`.
pub fn stream(id: &str, part: u32, len: u64) -> StreamRecord {
    StreamRecord {
        backend_id: id.to_string(),
        part_number: part,
        header: vec![0, 1, 2, 0xff, 0, b'h', part as u8],
        plaintext_len: len,
        md5_hex: format!("{:032x}", u128::from(part) * 7 + len as u128),
        // a part's checksum, so that every round trip through the index covers the column
        checksums: std::collections::BTreeMap::from([(
            "crc32c".to_owned(),
            format!("part{part}=="),
        )]),
        inline: None,
    }
}

/// An object whose streams are `ids` (parts 1, 2, …), with headers, metadata and a checksum.
pub fn object(bucket: &str, key: &str, etag: &str, ids: &[&str]) -> ObjectRecord {
    let streams: Vec<StreamRecord> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| stream(id, i as u32 + 1, 100 + i as u64))
        .collect();
    ObjectRecord {
        bucket: bucket.into(),
        key: key.into(),
        version_id: gateway::index::NULL_VERSION.into(),
        is_latest: true,
        delete_marker: false,
        lock: Default::default(),
        size: streams.iter().map(|s| s.plaintext_len).sum(),
        etag: etag.into(),
        last_modified_ms: 1_700_000_000_123,
        headers: BTreeMap::from([("content-type".into(), "text/plain; charset=utf-8".into())]),
        user_metadata: BTreeMap::from([
            ("mtime".into(), "1700000000.5".into()),
            ("note".into(), "ünï \"q\"".into()),
        ]),
        checksums: BTreeMap::from([("crc32c".into(), "AAAAAA==".into())]),
        data_key_id: "00112233445566778899aabbccddeeff".into(),
        key_version: 3,
        streams,
        manifest_id: None,
    }
}
