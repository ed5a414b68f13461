//! Key providers and the keyring: key file creation (0600) and refusal of readable files, env keys,
//! provider selection, data key creation/caching with TTL, KEK rotation + re-wrap + retire,
//! sealed blobs, and that no Debug/Display output contains key bytes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use keys::{
    CacheConfig, DataKeyMaterial, DataKeyStore, Error, Header, KeyConfig, KeyProvider, Keyring,
    LocalProvider, MemoryDataKeyStore, ObjectMeta, SealParams, Secret,
};

/// Decorator over a real provider that counts unwraps (to observe the cache).
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn KeyProvider>,
    unwraps: AtomicUsize,
}

#[async_trait]
impl KeyProvider for Counting {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn current_kek_id(&self) -> String {
        self.inner.current_kek_id()
    }
    async fn generate_data_key(
        &self,
        bucket: &str,
        kms_key: &str,
    ) -> keys::Result<(DataKeyMaterial, String, Vec<u8>)> {
        self.inner.generate_data_key(bucket, kms_key).await
    }
    async fn unwrap(
        &self,
        kek_id: &str,
        wrapped: &[u8],
        bucket: &str,
    ) -> keys::Result<DataKeyMaterial> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap(kek_id, wrapped, bucket).await
    }
    async fn rewrap(
        &self,
        kek_id: &str,
        wrapped: &[u8],
        bucket: &str,
        kms_key: &str,
    ) -> keys::Result<(String, Vec<u8>)> {
        self.inner.rewrap(kek_id, wrapped, bucket, kms_key).await
    }
    async fn health(&self) -> keys::Result<()> {
        self.inner.health().await
    }
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn key_file_is_created_0600_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = KeyConfig {
        data_dir: dir.path().join("data"),
        ..KeyConfig::default()
    };
    let p1 = keys::provider_from_config(&cfg).await.unwrap();
    assert_eq!(p1.kind(), "file");
    let path = dir.path().join("data/master.key");
    assert_eq!(mode(&path), 0o600);
    let id = p1.current_kek_id();
    assert!(id.starts_with("local:") && id.len() == 6 + 16, "{id}");
    // Reloading gives the same KEK, and it unwraps what the first instance wrapped.
    let p2 = keys::provider_from_config(&cfg).await.unwrap();
    assert_eq!(p2.current_kek_id(), id);
    let (m, kek, wrapped) = p1.generate_data_key("b1", "").await.unwrap();
    assert_eq!(p2.unwrap(&kek, &wrapped, "b1").await.unwrap(), m);
    // The wrap is bound to the bucket.
    assert!(matches!(
        p2.unwrap(&kek, &wrapped, "b2").await,
        Err(Error::Integrity(_))
    ));
    let mut bad = wrapped.clone();
    bad[20] ^= 1;
    assert!(p2.unwrap(&kek, &bad, "b1").await.is_err());
    assert!(matches!(
        p2.unwrap("local:ffffffffffffffff", &wrapped, "b1").await,
        Err(Error::KeyUnavailable(_))
    ));
}

#[tokio::test]
async fn readable_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    LocalProvider::open_or_create(&path).unwrap();
    for m in [0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
        match LocalProvider::open_or_create(&path) {
            Err(Error::Config(msg)) => assert!(msg.contains("chmod 600"), "{msg}"),
            other => panic!("mode {m:o} accepted: {other:?}"),
        }
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(LocalProvider::open_or_create(&path).is_ok());
}

#[tokio::test]
async fn malformed_key_file_is_refused_without_echoing_it() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let secret = "00112233445566778899aabbccddeeff00112233445566778899aabbccddee";
    let body =
        format!("{{\"format\":1,\"current\":1,\"keys\":[{{\"version\":1,\"hex\":\"{secret}\"}}]}}");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, body.as_bytes()).unwrap();
    let e = LocalProvider::open(&path).unwrap_err();
    assert!(matches!(e, Error::Config(_)));
    assert!(!e.to_string().contains(secret), "{e}");
    std::fs::write(&path, b"{not json").unwrap();
    assert!(matches!(LocalProvider::open(&path), Err(Error::Config(_))));
    std::fs::write(&path, br#"{"format":1,"current":2,"keys":[]}"#).unwrap();
    assert!(matches!(LocalProvider::open(&path), Err(Error::Config(_))));
}

#[tokio::test]
async fn env_key_takes_precedence_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = KeyConfig {
        data_dir: dir.path().to_path_buf(),
        master_key_hex: Some(Secret::new(VECTOR_KEY_HEX)),
        kms_url: Some("aws-kms://alias/x?region=us-east-1".into()),
        ..KeyConfig::default()
    };
    let p = keys::provider_from_config(&cfg).await.unwrap();
    assert_eq!(p.kind(), "env");
    assert!(
        !dir.path().join("master.key").exists(),
        "no key file when an env key is given"
    );
    // Same key → same fingerprint id on every start.
    assert_eq!(
        p.current_kek_id(),
        keys::provider::local_kek_id(&DataKeyMaterial::from_hex(VECTOR_KEY_HEX).unwrap())
    );
    assert!(matches!(p.rotate_kek().await, Err(Error::Config(_))));
    for bad in [
        "abc",
        "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "",
    ] {
        let cfg = KeyConfig {
            master_key_hex: Some(Secret::new(bad)),
            ..KeyConfig::default()
        };
        assert!(matches!(
            keys::provider_from_config(&cfg).await,
            Err(Error::Config(_))
        ));
    }
    let cfg = KeyConfig {
        kms_url: Some("kms://nope".into()),
        ..KeyConfig::default()
    };
    assert!(matches!(
        keys::provider_from_config(&cfg).await,
        Err(Error::Config(_))
    ));
    let cfg = KeyConfig {
        kms_url: Some("aws-kms://k?region=us-east-1".into()),
        kms_access_key: Some("AK".into()),
        ..KeyConfig::default()
    };
    assert!(matches!(
        keys::provider_from_config(&cfg).await,
        Err(Error::Config(_))
    ));
}

#[test]
fn kms_url_parsing() {
    use keys::kms::KmsUrl;
    let u = KmsUrl::parse(
        "aws-kms://alias/vaultgate?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A5001",
    )
    .unwrap();
    assert_eq!(u.key_id, "alias/vaultgate");
    assert_eq!(u.region.as_deref(), Some("eu-west-1"));
    assert_eq!(u.endpoint.as_deref(), Some("http://127.0.0.1:5001"));
    let u =
        KmsUrl::parse("aws-kms://arn:aws:kms:us-east-1:111122223333:key/abcd?endpoint=http://h:1")
            .unwrap();
    assert_eq!(u.key_id, "arn:aws:kms:us-east-1:111122223333:key/abcd");
    assert_eq!(u.endpoint.as_deref(), Some("http://h:1"));
    assert!(KmsUrl::parse("aws-kms://").is_err());
    assert!(KmsUrl::parse("aws-kms://k?colour=red").is_err());
    assert!(KmsUrl::parse("s3://k").is_err());
}

async fn file_keyring(
    dir: &std::path::Path,
    cache: CacheConfig,
) -> (Keyring, Arc<MemoryDataKeyStore>) {
    let provider: Arc<dyn KeyProvider> =
        Arc::new(LocalProvider::open_or_create(&dir.join("master.key")).unwrap());
    let store = Arc::new(MemoryDataKeyStore::new());
    (Keyring::new(provider, store.clone(), cache), store)
}

#[tokio::test]
async fn data_keys_are_created_once_per_bucket_and_cached_with_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, store) = file_keyring(dir.path(), CacheConfig::default()).await;
    let k1 = ring.sealing_key("b1").await.unwrap();
    let k1b = ring.sealing_key("b1").await.unwrap();
    let k2 = ring.sealing_key("b2").await.unwrap();
    assert_eq!(k1.data_key_id(), k1b.data_key_id());
    assert_ne!(k1.data_key_id(), k2.data_key_id());
    assert_eq!(k1.key_version(), 1);
    assert_eq!(store.list().await.unwrap().len(), 2);

    // A second keyring over the same store with a short TTL and a counting provider.
    let base: Arc<dyn KeyProvider> =
        Arc::new(LocalProvider::open(&dir.path().join("master.key")).unwrap());
    let counting = Arc::new(Counting {
        inner: base,
        unwraps: AtomicUsize::new(0),
    });
    let ring2 = Keyring::new(
        counting.clone(),
        store.clone(),
        CacheConfig {
            ttl: Duration::from_millis(300),
            max_entries: 100,
        },
    );
    let plain = data(1000, 1);
    let (sealed, _) = seal_all(
        &k1,
        SealParams::object("b1", [1; 16], ObjectMeta::default()),
        &plain,
        100,
    )
    .await;
    let h = Header::decode(&sealed).unwrap();
    for _ in 0..5 {
        let k = ring2.opening_key("b1", &h).await.unwrap();
        assert_eq!(
            keys::open_sealed_bytes(&k, &sealed).unwrap().plaintext,
            plain
        );
    }
    assert_eq!(
        counting.unwraps.load(Ordering::SeqCst),
        1,
        "cached after the first unwrap"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    ring2.opening_key("b1", &h).await.unwrap();
    assert_eq!(
        counting.unwraps.load(Ordering::SeqCst),
        2,
        "TTL expired: unwrapped again"
    );
    // Concurrent first use of a bucket's current key coalesces into one unwrap.
    let ring3 = Keyring::new(counting.clone(), store.clone(), CacheConfig::default());
    let before = counting.unwraps.load(Ordering::SeqCst);
    let futs = (0..8).map(|_| ring3.sealing_key("b2"));
    for k in futures::future::join_all(futs).await {
        assert_eq!(k.unwrap().data_key_id(), k2.data_key_id());
    }
    assert_eq!(counting.unwraps.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn header_fallback_when_store_lost_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _store) = file_keyring(dir.path(), CacheConfig::default()).await;
    let k = ring.sealing_key("b1").await.unwrap();
    let (sealed, _) = seal_all(
        &k,
        SealParams::object("b1", [1; 16], ObjectMeta::default()),
        b"abc",
        1,
    )
    .await;
    let h = Header::decode(&sealed).unwrap();
    // Index lost: new empty store, same KEK file → the header's wrapped copy opens it.
    let (ring2, store2) = file_keyring(dir.path(), CacheConfig::default()).await;
    let k2 = ring2.opening_key("b1", &h).await.unwrap();
    assert_eq!(
        keys::open_sealed_bytes(&k2, &sealed).unwrap().plaintext,
        b"abc"
    );
    store2.insert(&h.wrapped_data_key()).await.unwrap();
    assert_eq!(
        ring2
            .key_by_id(&h.data_key_id())
            .await
            .unwrap()
            .data_key_id(),
        h.data_key_id()
    );
    // A different KEK cannot open it.
    let other = tempfile::tempdir().unwrap();
    let (ring3, _) = file_keyring(other.path(), CacheConfig::default()).await;
    assert!(matches!(
        ring3.opening_key("b1", &h).await,
        Err(Error::KeyUnavailable(_))
    ));
    assert!(matches!(
        ring3.key_by_id(&keys::DataKeyId([9; 16])).await,
        Err(Error::KeyUnavailable(_))
    ));
}

#[tokio::test]
async fn kek_rotation_rewraps_without_touching_objects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let (ring, store) = file_keyring(dir.path(), CacheConfig::default()).await;
    let k = ring.sealing_key("b1").await.unwrap();
    let blob = ring
        .seal_blob("access-key:AKID", b"secret-value")
        .await
        .unwrap();
    let (sealed, _) = seal_all(
        &k,
        SealParams::object("b1", [1; 16], ObjectMeta::default()),
        &data(5000, 2),
        999,
    )
    .await;
    let sealed_copy = sealed.clone();
    let old_kek = ring.provider().current_kek_id();

    let new_kek = ring.provider().rotate_kek().await.unwrap();
    assert_ne!(new_kek, old_kek);
    assert_eq!(mode(&path), 0o600);
    let report = ring.rewrap_all().await.unwrap();
    assert_eq!(
        (report.total, report.rewrapped, report.already_current),
        (2, 2, 0)
    );
    assert!(report.failed.is_empty());
    for rec in store.list().await.unwrap() {
        assert_eq!(rec.kek_id, new_kek);
    }
    // Resumable / idempotent.
    let again = ring.rewrap_all().await.unwrap();
    assert_eq!((again.rewrapped, again.already_current), (0, 2));

    // Retire the old KEK: objects still open (data keys now wrapped by the new KEK), bytes unchanged.
    ring.provider().retire_kek(&old_kek).await.unwrap();
    assert!(matches!(
        ring.provider().retire_kek(&new_kek).await,
        Err(Error::Config(_))
    ));
    let reloaded: Arc<dyn KeyProvider> = Arc::new(LocalProvider::open(&path).unwrap());
    assert_eq!(reloaded.current_kek_id(), new_kek);
    let ring2 = Keyring::new(reloaded, store.clone(), CacheConfig::default());
    let h = Header::decode(&sealed).unwrap();
    let k2 = ring2.opening_key("b1", &h).await.unwrap();
    assert_eq!(
        keys::open_sealed_bytes(&k2, &sealed).unwrap().plaintext,
        data(5000, 2)
    );
    assert_eq!(sealed, sealed_copy);
    assert_eq!(
        &ring2.open_blob("access-key:AKID", &blob).await.unwrap()[..],
        b"secret-value"
    );
    // New objects' headers carry the new wrapping.
    let k3 = ring2.sealing_key("b1").await.unwrap();
    assert_eq!(k3.kek_id(), new_kek);
}

#[tokio::test]
async fn data_key_versions() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _) = file_keyring(dir.path(), CacheConfig::default()).await;
    let v1 = ring.sealing_key("b1").await.unwrap();
    let (old, _) = seal_all(
        &v1,
        SealParams::object("b1", [1; 16], ObjectMeta::default()),
        b"old",
        1,
    )
    .await;
    let v2 = ring.rotate_data_key("b1").await.unwrap();
    assert_eq!(v2.key_version(), 2);
    assert_eq!(
        ring.sealing_key("b1").await.unwrap().data_key_id(),
        v2.data_key_id()
    );
    ring.clear_cache();
    assert_eq!(
        ring.sealing_key("b1").await.unwrap().data_key_id(),
        v2.data_key_id()
    );
    let h = Header::decode(&old).unwrap();
    let k = ring.opening_key("b1", &h).await.unwrap();
    assert_eq!(k.key_version(), 1);
    assert_eq!(keys::open_sealed_bytes(&k, &old).unwrap().plaintext, b"old");
}

#[tokio::test]
async fn sealed_blobs_bind_context() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _) = file_keyring(dir.path(), CacheConfig::default()).await;
    let b = ring.seal_blob("ctx-a", b"s3cr3t").await.unwrap();
    assert_eq!(&ring.open_blob("ctx-a", &b).await.unwrap()[..], b"s3cr3t");
    assert!(matches!(
        ring.open_blob("ctx-b", &b).await,
        Err(Error::Integrity(_))
    ));
    let mut t = b.clone();
    let last = t.len() - 1;
    t[last] ^= 1;
    assert!(matches!(
        ring.open_blob("ctx-a", &t).await,
        Err(Error::Integrity(_))
    ));
    assert!(matches!(
        ring.open_blob("ctx-a", &b[..30]).await,
        Err(Error::Format(_))
    ));
    assert!(!b.windows(6).any(|w| w == b"s3cr3t"));
}

#[tokio::test]
async fn no_key_bytes_in_debug_or_display() {
    let dir = tempfile::tempdir().unwrap();
    let material = DataKeyMaterial::from_hex(VECTOR_KEY_HEX).unwrap();
    let raw = hex::decode(VECTOR_KEY_HEX).unwrap();
    let needles = [
        VECTOR_KEY_HEX.to_string(),
        format!("{:?}", raw),
        "0, 1, 2, 3, 4, 5".to_string(),
    ];
    let cfg = KeyConfig {
        data_dir: dir.path().to_path_buf(),
        master_key_hex: Some(Secret::new(VECTOR_KEY_HEX)),
        previous_master_key_hex: None,
        kms_url: None,
        kms_access_key: Some("AKIDEXAMPLE".into()),
        kms_secret_key: Some(Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")),
    };
    let provider = keys::provider_from_config(&cfg).await.unwrap();
    let ring = Keyring::new(
        provider.clone(),
        Arc::new(MemoryDataKeyStore::new()),
        CacheConfig::default(),
    );
    let sk = ring.sealing_key("b1").await.unwrap();
    let (sealed, sum) = seal_all(
        &sk,
        SealParams::object("b1", [1; 16], ObjectMeta::default()),
        b"x",
        1,
    )
    .await;
    let file_provider = LocalProvider::open_or_create(&dir.path().join("master.key")).unwrap();
    let file_hex = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
    let file_key = file_hex.split("\"hex\": \"").nth(1).unwrap()[..64].to_string();
    let outputs = [
        format!("{material:?} {material}"),
        format!("{cfg:?}"),
        format!("{provider:?}"),
        format!("{file_provider:?}"),
        format!("{ring:?}"),
        format!("{sk:?}"),
        format!("{:?}", keys::HubKey::from_hex(VECTOR_KEY_HEX).unwrap()),
        format!("{:?} {}", Secret::new("hunter2"), Secret::new("hunter2")),
        format!("{:?}", Header::decode(&sealed).unwrap()),
        format!("{sum:?}"),
        format!("{:?}", keys::open_sealed_bytes(&sk, &sealed).unwrap()),
    ];
    for o in &outputs {
        for n in &needles {
            assert!(!o.contains(n.as_str()), "key bytes in {o}");
        }
        assert!(!o.contains(&file_key), "file key in {o}");
        assert!(
            !o.contains("hunter2") && !o.contains("bPxRfiCYEXAMPLEKEY"),
            "secret in {o}"
        );
    }
    assert!(outputs[0].contains("[redacted]"));
    assert!(outputs[1].contains("[redacted]"));
}
