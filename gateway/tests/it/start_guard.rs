//! Start-up refuses to serve an empty index over a backend full of ciphertext (a lost index or a
//! wrong VAULTGATE_DATABASE_URL) instead of sweeping every object away as an orphan.

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use common::*;

#[tokio::test]
async fn empty_index_over_populated_backend_refuses_to_start_and_keeps_data() {
    let g = start().await;
    g.client
        .create_bucket()
        .bucket("guard")
        .send()
        .await
        .unwrap();
    for i in 0..3 {
        g.client
            .put_object()
            .bucket("guard")
            .key(format!("k{i}"))
            .body(ByteStream::from(data(1000, i)))
            .send()
            .await
            .unwrap();
    }
    let data_dir = g.data_dir();
    let TestGateway { server, dir, .. } = g;
    // the shutdown writes back the small objects committed inline
    server.shutdown().await;
    let root = data_dir.join("objects");
    let committed = |root: &std::path::Path| {
        files_under(root)
            .into_iter()
            .filter(|p| {
                p.strip_prefix(root)
                    .map(|r| !r.starts_with(".tmp"))
                    .unwrap_or(false)
            })
            .count()
    };
    let before = committed(&root);
    assert!(before >= 3);

    // Same backend, a fresh index elsewhere.
    let mut cfg = config(dir.path());
    cfg.database_url = Some(format!(
        "sqlite://{}",
        dir.path().join("other.db").display()
    ));
    let err = match gateway::server::start(cfg, common::admin_api).await {
        Ok(_) => panic!("started over a foreign backend"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("reindex"), "message points at reindex: {err}");
    assert_eq!(committed(&root), before, "no object was deleted");

    // The right index still serves everything.
    let g2 = gateway::server::start(config(dir.path()), common::admin_api)
        .await
        .expect("restarts");
    let client = client_for(&format!("http://{}", g2.s3_addr), AK, SK);
    for i in 0..3 {
        let got = client
            .get_object()
            .bucket("guard")
            .key(format!("k{i}"))
            .send()
            .await
            .unwrap();
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(body.as_ref(), data(1000, i).as_slice());
    }
    g2.shutdown().await;
}
