//! Integration tests of signed evidence bundles: export from a real SQLite ledger, offline
//! verification, and rejection of every kind of tampering with a clear reason.

use audit::evidence::{
    BUNDLE_FORMAT, EvidenceKey, ExportLimits, PublicKey, build_bundle, export_bundle,
    verify_bundle, verify_bundle_bytes,
};
use audit::{
    AuditEvent, AuditFilter, BundleReason, EventKind, Ledger, LedgerConfig, Outcome, open_pool,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Container {
    format: String,
    files: Vec<FileEntry>,
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    name: String,
    data: String,
}

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        time_ms: 5_000 + i as i64,
        request_id: format!("r{i}"),
        kind: EventKind::S3,
        principal: Some(if i.is_multiple_of(3) { "alice" } else { "bob" }.to_owned()),
        tenant: None,
        action: "PutObject".into(),
        bucket: Some("b".into()),
        key: Some(format!("k{i}")),
        outcome: Outcome::Success,
        status: 200,
        error_code: None,
        bytes_in: i,
        bytes_out: 0,
        key_version: Some(2),
        source: None,
        duration_us: 9,
    }
}

async fn ledger(n: u64) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let url = audit::db::test_database_url()
        .unwrap_or_else(|| format!("sqlite://{}/index.db", dir.path().display()));
    let ledger = Ledger::open(
        open_pool(&url, true).await.unwrap(),
        LedgerConfig::default(),
    )
    .await
    .unwrap();
    for i in 1..=n {
        ledger.append(event(i)).await.unwrap();
    }
    (dir, ledger)
}

fn alice() -> AuditFilter {
    AuditFilter {
        principal: Some("alice".into()),
        ..AuditFilter::default()
    }
}

fn key() -> EvidenceKey {
    EvidenceKey::from_seed(&[42u8; 32])
}

fn unpack(bytes: &[u8]) -> Container {
    serde_json::from_slice(bytes).unwrap()
}

fn repack(c: &Container) -> Vec<u8> {
    serde_json::to_vec(c).unwrap()
}

fn file<'a>(c: &'a mut Container, name: &str) -> &'a mut FileEntry {
    c.files.iter_mut().find(|f| f.name == name).unwrap()
}

fn reason(bytes: &[u8], trusted: Option<&PublicKey>) -> BundleReason {
    let err = verify_bundle_bytes(bytes, trusted).unwrap_err();
    assert!(!err.to_string().is_empty());
    err.bundle_reason()
        .unwrap_or_else(|| panic!("not a bundle rejection: {err}"))
}

#[tokio::test]
async fn bundle_verifies_offline_with_and_without_a_pinned_key() {
    let (_d, l) = ledger(20).await;
    let k = key();
    let bytes = build_bundle(&l, &k, &alice(), 99, ExportLimits::default())
        .await
        .unwrap();
    let s = verify_bundle_bytes(&bytes, Some(&k.public_key())).unwrap();
    let seqs: Vec<i64> = s.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![3, 6, 9, 12, 15, 18]);
    for e in &s.events {
        assert_eq!(Some(e), l.get(e.seq).await.unwrap().as_ref());
    }
    assert_eq!(s.manifest.event_count, 6);
    assert_eq!((s.manifest.first_seq, s.manifest.last_seq), (3, 18));
    assert_eq!(s.manifest.ledger_head.seq, 20);
    assert_eq!(s.manifest.ledger_head.hash, l.head().await.unwrap().hash);
    assert_eq!(s.manifest.filter, alice());
    assert!(s.pinned);
    assert_eq!(s.signer, k.public_key().fingerprint());
    let text = s.to_string();
    assert!(
        text.contains("evidence bundle OK: 6 events (seq 3..=18)"),
        "{text}"
    );
    assert!(
        text.contains("events.jsonl") && text.contains("chain.json"),
        "{text}"
    );

    let unpinned = verify_bundle_bytes(&bytes, None).unwrap();
    assert!(!unpinned.pinned);
    assert!(unpinned.to_string().contains("--public-key"));
    assert_eq!(
        unpack(&bytes).format,
        BUNDLE_FORMAT,
        "the container names its format"
    );
}

#[tokio::test]
async fn changing_any_byte_of_the_bundle_fails() {
    let (_d, l) = ledger(4).await;
    let k = key();
    let pk = k.public_key();
    let filter = AuditFilter {
        from_ms: Some(5_002),
        to_ms: Some(5_004),
        ..AuditFilter::default()
    };
    let bytes = build_bundle(&l, &k, &filter, 1, ExportLimits::default())
        .await
        .unwrap();
    assert!(verify_bundle_bytes(&bytes, Some(&pk)).is_ok());
    // Every position, split over two threads (signature checks are slow in debug builds).
    let half = bytes.len() / 2;
    std::thread::scope(|scope| {
        for range in [0..half, half..bytes.len()] {
            let (bytes, pk) = (&bytes, &pk);
            scope.spawn(move || {
                for i in range {
                    let mut t = bytes.clone();
                    t[i] ^= 0x01;
                    assert!(
                        verify_bundle_bytes(&t, Some(pk)).is_err(),
                        "byte {i} ^ 0x01 went unnoticed"
                    );
                }
            });
        }
    });
    // Truncation and extension.
    assert_eq!(
        reason(&bytes[..bytes.len() - 1], Some(&pk)),
        BundleReason::Malformed
    );
    let mut longer = bytes.clone();
    longer.push(b'\n');
    assert_eq!(reason(&longer, Some(&pk)), BundleReason::Malformed);
    assert_eq!(reason(b"", Some(&pk)), BundleReason::Malformed);
}

#[tokio::test]
async fn changing_a_byte_inside_each_file_names_the_reason() {
    let (_d, l) = ledger(12).await;
    let k = key();
    let pk = k.public_key();
    let bytes = build_bundle(&l, &k, &alice(), 1, ExportLimits::default())
        .await
        .unwrap();
    for (name, expected) in [
        ("events.jsonl", BundleReason::FileHashMismatch),
        ("chain.json", BundleReason::FileHashMismatch),
        ("manifest.json", BundleReason::BadSignature),
        ("manifest.sig", BundleReason::BadSignature),
    ] {
        let original = B64.decode(&file(&mut unpack(&bytes), name).data).unwrap();
        for pos in [0, original.len() / 2, original.len() - 2] {
            let mut c = unpack(&bytes);
            let mut data = original.clone();
            // Keep the byte printable (hex stays hex-shaped, JSON stays JSON-shaped where possible).
            data[pos] = if data[pos] == b'1' { b'2' } else { b'1' };
            file(&mut c, name).data = B64.encode(&data);
            let got = reason(&repack(&c), Some(&pk));
            assert_eq!(got, expected, "{name} byte {pos}");
        }
    }
    // A file removed, or an extra file added.
    let mut c = unpack(&bytes);
    c.files.retain(|f| f.name != "chain.json");
    assert_eq!(reason(&repack(&c), Some(&pk)), BundleReason::MissingFile);
    let mut c = unpack(&bytes);
    c.files.push(FileEntry {
        name: "extra.txt".into(),
        data: B64.encode(b"hi"),
    });
    assert_eq!(reason(&repack(&c), Some(&pk)), BundleReason::MissingFile);
    // Re-encoded with different whitespace: not canonical.
    let pretty = serde_json::to_vec_pretty(&unpack(&bytes)).unwrap();
    assert_eq!(reason(&pretty, Some(&pk)), BundleReason::Malformed);
}

#[tokio::test]
async fn another_public_key_is_refused_and_re_signing_needs_the_key() {
    let (_d, l) = ledger(9).await;
    let k = key();
    let bytes = build_bundle(&l, &k, &alice(), 1, ExportLimits::default())
        .await
        .unwrap();
    let other = EvidenceKey::from_seed(&[7u8; 32]);
    let err = verify_bundle_bytes(&bytes, Some(&other.public_key())).unwrap_err();
    assert_eq!(err.bundle_reason(), Some(BundleReason::WrongKey));
    let msg = err.to_string();
    assert!(msg.contains(&k.public_key().fingerprint()), "{msg}");
    assert!(msg.contains(&other.public_key().fingerprint()), "{msg}");

    // A forger re-signs a doctored manifest with their own key and swaps the embedded key:
    // only a pinned verification catches it.
    let mut c = unpack(&bytes);
    let manifest = B64.decode(&file(&mut c, "manifest.json").data).unwrap();
    let doctored = String::from_utf8(manifest)
        .unwrap()
        .replace(&k.public_key().to_hex(), &other.public_key().to_hex());
    file(&mut c, "manifest.json").data = B64.encode(doctored.as_bytes());
    file(&mut c, "manifest.sig").data =
        B64.encode(hex::encode(other.sign(doctored.as_bytes())).as_bytes());
    let forged = repack(&c);
    assert_eq!(
        reason(&forged, Some(&k.public_key())),
        BundleReason::WrongKey
    );
    let unpinned = verify_bundle_bytes(&forged, None).unwrap();
    assert_eq!(unpinned.signer, other.public_key().fingerprint());
}

#[tokio::test]
async fn a_signed_bundle_with_a_broken_chain_is_refused() {
    let (_d, l) = ledger(9).await;
    let k = key();
    let bytes = build_bundle(&l, &k, &alice(), 1, ExportLimits::default())
        .await
        .unwrap();
    // Simulate a faulty (but key-holding) exporter: drop one link from chain.json and re-sign
    // a manifest with correct file hashes.
    let mut c = unpack(&bytes);
    let chain = B64.decode(&file(&mut c, "chain.json").data).unwrap();
    let mut chain: serde_json::Value = serde_json::from_slice(&chain).unwrap();
    chain["links"].as_array_mut().unwrap().remove(1);
    let chain = serde_json::to_vec(&chain).unwrap();
    let manifest = B64.decode(&file(&mut c, "manifest.json").data).unwrap();
    let mut m: audit::evidence::Manifest = serde_json::from_slice(&manifest).unwrap();
    for f in &mut m.files {
        if f.name == "chain.json" {
            f.size = chain.len() as u64;
            f.sha256 = audit::sha256_hex(&chain);
        }
    }
    let manifest = serde_json::to_vec(&m).unwrap();
    file(&mut c, "chain.json").data = B64.encode(&chain);
    file(&mut c, "manifest.json").data = B64.encode(&manifest);
    file(&mut c, "manifest.sig").data = B64.encode(hex::encode(k.sign(&manifest)).as_bytes());
    let err = verify_bundle_bytes(&repack(&c), Some(&k.public_key())).unwrap_err();
    assert_eq!(
        err.bundle_reason(),
        Some(BundleReason::ChainBroken),
        "{err}"
    );
}

#[tokio::test]
async fn bundle_after_retention_carries_the_checkpoint() {
    let (_d, l) = ledger(15).await;
    let k = key();
    l.prune_before(&k, 5_006, 10_000).await.unwrap(); // prunes 1..=5
    let bytes = build_bundle(&l, &k, &AuditFilter::default(), 1, ExportLimits::default())
        .await
        .unwrap();
    let s = verify_bundle_bytes(&bytes, Some(&k.public_key())).unwrap();
    assert_eq!((s.manifest.first_seq, s.manifest.last_seq), (6, 15));
    let mut c = unpack(&bytes);
    let chain: serde_json::Value =
        serde_json::from_slice(&B64.decode(&file(&mut c, "chain.json").data).unwrap()).unwrap();
    assert_eq!(chain["checkpoint"]["seq"], 5);
    assert_eq!(chain["anchor"]["seq"], 5);
}

#[tokio::test]
async fn export_refuses_empty_oversized_and_tampered_selections() {
    let (_d, l) = ledger(10).await;
    let k = key();
    let none = AuditFilter {
        principal: Some("nobody".into()),
        ..AuditFilter::default()
    };
    let err = build_bundle(&l, &k, &none, 1, ExportLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.bundle_reason(), Some(BundleReason::Build));
    let small = ExportLimits {
        max_events: 3,
        max_links: 100,
    };
    let err = build_bundle(&l, &k, &AuditFilter::default(), 1, small)
        .await
        .unwrap_err();
    assert_eq!(err.bundle_reason(), Some(BundleReason::Build));
    let few_links = ExportLimits {
        max_events: 100,
        max_links: 5,
    };
    let err = build_bundle(&l, &k, &alice(), 1, few_links)
        .await
        .unwrap_err();
    assert_eq!(err.bundle_reason(), Some(BundleReason::Build));

    sqlx::query("UPDATE audit_events SET key_version = 9 WHERE seq = 4")
        .execute(l.pool())
        .await
        .unwrap();
    let err = build_bundle(&l, &k, &AuditFilter::default(), 1, ExportLimits::default())
        .await
        .unwrap_err();
    assert_eq!(err.bundle_reason(), Some(BundleReason::Build));
    assert!(err.to_string().contains("does not verify"), "{err}");
}

#[tokio::test]
async fn export_writes_a_file_that_verifies_from_disk() {
    let (d, l) = ledger(6).await;
    let (k, created) = EvidenceKey::load_or_generate(d.path()).unwrap();
    assert!(created);
    let path = d.path().join("bundle.json");
    let s = export_bundle(&l, &k, &alice(), 1, ExportLimits::default(), &path)
        .await
        .unwrap();
    assert_eq!(s.manifest.event_count, 2);
    let pub_file = d.path().join("evidence.pub");
    std::fs::write(&pub_file, format!("{}\n", k.public_key())).unwrap();
    let pk = PublicKey::from_arg(pub_file.to_str().unwrap()).unwrap();
    let again = verify_bundle(&path, Some(&pk)).unwrap();
    assert_eq!(again.events, s.events);
    let pk2 = PublicKey::from_arg(&k.public_key().to_hex()).unwrap();
    assert_eq!(pk, pk2);
    assert!(verify_bundle(&d.path().join("missing.json"), None).is_err());
}
