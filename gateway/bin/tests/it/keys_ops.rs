//! Key management end to end: `rotate`, `rewrap` and `retire` through the admin API of a gateway
//! that a client writes to and reads from the whole time (no failed request, every object
//! byte-exact afterwards and after a restart, one audit event per step), the refusals (current
//! KEK, a KEK data keys or stream headers depend on, an unknown KEK), who may call them (a viewer,
//! another tenant's superadmin, a quorum rule on `admin:RetireKey`), and the offline
//! `vaultgate keys status|rotate|rewrap|retire` on a stopped gateway's data dir.

use crate::common;
use crate::keys_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use keys_common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn rotate_rewrap_retire_online_while_a_client_writes_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_key_file(dir.path()).await;
    let admin = server.admin_addr;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    client.create_bucket().bucket("live").send().await.unwrap();
    let tok = token_for(admin, AK, SK).await;

    // a client writing and reading back the whole time
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) || i < 20 {
                let b = body(i);
                c.put_object()
                    .bucket("live")
                    .key(format!("o{i}"))
                    .body(ByteStream::from(b.clone()))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("put o{i} failed: {e:?}"));
                let back = c
                    .get_object()
                    .bucket("live")
                    .key(format!("o{}", i / 2))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("get failed: {e:?}"))
                    .body
                    .collect()
                    .await
                    .unwrap()
                    .into_bytes();
                assert_eq!(back.as_ref(), body(i / 2).as_slice());
                i += 1;
            }
            i
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let (st, s) = call(admin, &tok, "GET", "/admin/v1/kek", None).await;
    assert_eq!(st, 200, "{s}");
    assert_eq!(s["provider"]["kind"], "file");
    assert_eq!(s["provider"]["state"], "ready");
    let keks = s["keks"].as_array().unwrap();
    assert_eq!(keks.len(), 1, "{s}");
    let old = keks[0]["kek_id"].as_str().unwrap().to_owned();
    assert_eq!(keks[0]["current"], true);
    assert!(
        s["data_keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["bucket"] == "live" && k["objects"].as_u64().unwrap() > 0),
        "{s}"
    );
    assert!(!s.to_string().contains("\"hex\""), "no key material");

    let (st, r) = call(admin, &tok, "POST", "/admin/v1/kek/rotate", None).await;
    assert_eq!(st, 200, "{r}");
    let new = r["current_kek_id"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(r["rewrapped"], r["total"], "{r}");
    assert_eq!(r["failed"], json!([]));

    let (st, r) = call(admin, &tok, "POST", "/admin/v1/kek/rewrap", None).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["rewrapped"], 0, "resumable: nothing left: {r}");
    assert_eq!(r["already_current"], r["total"]);

    // refusals
    let retire = |k: &str| format!("/admin/v1/kek/{k}/retire");
    let (st, e) = call(admin, &tok, "POST", &retire(&new), Some(json!({}))).await;
    assert_eq!(st, 409, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("current KEK"),
        "{e}"
    );
    let (st, e) = call(admin, &tok, "POST", &retire(&old), Some(json!({}))).await;
    assert_eq!(st, 409, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stored streams carry a data key wrapped by KEK"),
        "{e}"
    );
    let (st, e) = call(
        admin,
        &tok,
        "POST",
        &retire("local:0000000000000000"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 404, "{e}");
    let (st, e) = call(
        admin,
        &tok,
        "POST",
        &retire(&old),
        Some(json!({"bogus": 1})),
    )
    .await;
    assert_eq!(st, 400, "{e}");

    let (st, r) = call(
        admin,
        &tok,
        "POST",
        &retire(&old),
        Some(json!({"accept_header_copies": true})),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["kek_id"], old.as_str());
    assert!(r["stream_headers"].as_u64().unwrap() > 0);

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("no failed request");
    assert!(written >= 20);

    let (_, s) = call(admin, &tok, "GET", "/admin/v1/kek", None).await;
    // the old KEK is gone from the key file; status still lists it as what stream headers carry
    let keks = s["keks"].as_array().unwrap();
    assert_eq!(keks[0]["kek_id"], new.as_str());
    assert_eq!(keks[0]["held"], true);
    assert_eq!(keks.len(), 2, "{s}");
    assert_eq!(keks[1]["kek_id"], old.as_str());
    assert_eq!(keks[1]["held"], false);
    assert_eq!(keks[1]["data_keys"], 0);
    assert!(keks[1]["stream_headers"].as_u64().unwrap() > 0);
    for (action, n) in [
        ("admin.RotateKek", 1),
        ("admin.RewrapDataKeys", 1),
        ("admin.GetKekStatus", 2),
        ("admin.RetireKek", 5),
    ] {
        assert_eq!(audit_count(admin, &tok, action).await, n, "{action}");
    }
    let key_file = std::fs::read_to_string(dir.path().join("data/master.key")).unwrap();
    let kf: Value = serde_json::from_str(&key_file).unwrap();
    assert_eq!(kf["keys"].as_array().unwrap().len(), 1);
    server.shutdown().await;

    // a restart passes the custody check and serves every object byte-exact
    let server = start_key_file(dir.path()).await;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    for i in 0..written {
        let got = client
            .get_object()
            .bucket("live")
            .key(format!("o{i}"))
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert_eq!(md5_hex(&got), md5_hex(&body(i)), "o{i}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_management_needs_a_default_tenant_superadmin_and_retire_a_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_key_file(dir.path()).await;
    let admin = server.admin_addr;
    let root = token_for(admin, AK, SK).await;
    let viewer = principal_token(admin, &root, "kviewer", "viewer", None).await;
    let manager = principal_token(admin, &root, "kmanager", "manager", None).await;
    let other = principal_token(admin, &root, "osuper", "superadmin", Some("other")).await;
    for tok in [&viewer, &manager, &other] {
        for (m, p) in [
            ("GET", "/admin/v1/kek"),
            ("POST", "/admin/v1/kek/rotate"),
            ("POST", "/admin/v1/kek/rewrap"),
        ] {
            let (st, e) = call(admin, tok, m, p, None).await;
            assert_eq!(st, 403, "{m} {p}: {e}");
        }
        let (st, _) = call(
            admin,
            tok,
            "POST",
            "/admin/v1/kek/local:0000000000000000/retire",
            Some(json!({})),
        )
        .await;
        assert_eq!(st, 403);
    }
    let (st, _) = call(admin, "not-a-token", "GET", "/admin/v1/kek", None).await;
    assert_eq!(st, 401);
    // nothing changed: one KEK
    let (_, s) = call(admin, &root, "GET", "/admin/v1/kek", None).await;
    assert_eq!(s["keks"].as_array().unwrap().len(), 1, "{s}");

    // a quorum rule on admin:RetireKey: the retirement needs an approval
    let (st, r) = call(admin, &root, "POST", "/admin/v1/kek/rotate", None).await;
    assert_eq!(st, 200, "{r}");
    let (_, s) = call(admin, &root, "GET", "/admin/v1/kek", None).await;
    let old = s["keks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == false)
        .unwrap()["kek_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, v) = call(
        admin,
        &root,
        "PUT",
        "/admin/v1/quorum/rules/retire-kek",
        Some(json!({"action": "admin:RetireKey", "approvals": 1, "approver_roles": ["superadmin"], "ttl_secs": 3600})),
    )
    .await;
    assert!(st == 200 || st == 201, "{st} {v}");
    let (st, e) = call(
        admin,
        &root,
        "POST",
        &format!("/admin/v1/kek/{old}/retire"),
        Some(json!({"accept_header_copies": true})),
    )
    .await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"]["code"], "ApprovalRequired", "{e}");
    let (_, s) = call(admin, &root, "GET", "/admin/v1/kek", None).await;
    assert_eq!(s["keks"].as_array().unwrap().len(), 2, "not retired: {s}");
    server.shutdown().await;
}

fn keys_cmd(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    vaultgate(data).arg("keys").args(args).output().unwrap()
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_keys_commands_on_a_stopped_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_key_file(dir.path()).await;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    client.create_bucket().bucket("offl").send().await.unwrap();
    for i in 0..5 {
        client
            .put_object()
            .bucket("offl")
            .key(format!("k{i}"))
            .body(ByteStream::from(body(i)))
            .send()
            .await
            .unwrap();
    }
    server.shutdown().await;

    let s = json_of(&keys_cmd(&data, &["status", "--format", "json"]));
    assert_eq!(s["provider"]["kind"], "file");
    assert_eq!(
        s["provider"]["location"],
        format!("key file {}/master.key", data.display())
    );
    let old = s["keks"][0]["kek_id"].as_str().unwrap().to_owned();
    let offl = s["data_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["bucket"] == "offl")
        .unwrap()
        .clone();
    assert_eq!(offl["objects"], 5);
    let total: u64 = (0..5).map(|i| body(i).len() as u64).sum();
    assert_eq!(offl["bytes"], total);
    // the table: human times, no key material
    let out = keys_cmd(&data, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CREATED") && text.contains("Z "), "{text}");
    assert!(text.contains(&old), "{text}");

    let r = json_of(&keys_cmd(&data, &["rotate", "--format", "json"]));
    let new = r["current_kek_id"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(r["rewrapped"], r["total"]);
    let out = keys_cmd(&data, &["rewrap"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" 0 re-wrapped"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // refused: the current KEK; a KEK stream headers carry
    let out = keys_cmd(&data, &["retire", &new]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!("vaultgate: KEK {new} is the current KEK; run `vaultgate keys rotate` first")
    );
    let out = keys_cmd(&data, &["retire", &old]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stored streams carry a data key wrapped by KEK") && err.contains(&old),
        "{err}"
    );
    let out = keys_cmd(&data, &["retire", &old, "--accept-header-copies"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = json_of(&keys_cmd(&data, &["status", "--format", "json"]));
    let held: Vec<&str> = s["keks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["held"] == true)
        .map(|k| k["kek_id"].as_str().unwrap())
        .collect();
    assert_eq!(held, vec![new.as_str()], "{s}");

    // the gateway starts (custody holds) and serves every object; the ledger has the steps
    let server = start_key_file(dir.path()).await;
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    for i in 0..5 {
        let got = client
            .get_object()
            .bucket("offl")
            .key(format!("k{i}"))
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert_eq!(got.as_ref(), body(i).as_slice());
    }
    let tok = token_for(server.admin_addr, AK, SK).await;
    assert_eq!(
        audit_count(server.admin_addr, &tok, "keys.RotateKek").await,
        1
    );
    assert_eq!(
        audit_count(server.admin_addr, &tok, "keys.RewrapDataKeys").await,
        1
    );
    assert_eq!(
        audit_count(server.admin_addr, &tok, "keys.RetireKek").await,
        3
    );
    server.shutdown().await;
}
