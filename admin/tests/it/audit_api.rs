//! Audit and evidence through the admin router in-process: one ledger event per admin call
//! (allowed, denied, 401/403/404/409/429, unknown routes), the event's fields (action from
//! the OpenAPI operationId, principal, request id = `x-request-id`), fail closed (a ledger
//! that refuses appends → 503 `AuditUnavailable` and an unchanged policy store), the
//! `/audit` filters, pagination and error cases, tenant scoping, and evidence export →
//! download → offline verification (tampered byte and another key refused).

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use audit::evidence::{EvidenceKey, ExportLimits, PublicKey, verify_bundle};
use audit::{AuditEvent, BundleReason, EventKind, Outcome, StoredEvent};
use common::{env_audited, env_audited_with, error_code};
use http::{Method, StatusCode};
use policy::{RateLimitConfig, RateLimits};
use serde_json::{Value, json};

/// Asserts that `r` left exactly one new event after `before` and returns it.
async fn one_event(e: &common::Env, before: i64, r: &common::Resp) -> StoredEvent {
    let after = e.head().await;
    assert_eq!(
        after,
        before + 1,
        "one event for {:?} {:?}",
        r.status,
        r.body
    );
    let ev = e
        .ledger
        .as_ref()
        .unwrap()
        .get(after)
        .await
        .unwrap()
        .unwrap();
    let rid = r
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id");
    assert_eq!(ev.request_id, rid, "event request id = response header");
    // the S3 listener's form: 16 upper-case hex digits (time-ordered, docs/AUDIT.md)
    assert!(
        rid.len() == 16 && rid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')),
        "{rid}"
    );
    assert_eq!(ev.status, r.status.as_u16());
    assert_eq!(ev.kind, EventKind::Admin);
    ev
}

#[tokio::test]
async fn every_admin_call_leaves_exactly_one_event_with_its_fields() {
    let counted: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let c2 = counted.clone();
    let e = env_audited_with(move |st| {
        let c = c2.clone();
        *st = st.clone().with_operation_hook(Arc::new(move |op: &str| {
            *c.lock().unwrap().entry(op.to_owned()).or_default() += 1;
        }));
    })
    .await;
    let viewer = e.user_token("vera", "viewer", "default").await;

    // (method, path, token, body, expected status, action, outcome, principal, error code)
    type Case<'a> = (
        Method,
        &'a str,
        Option<&'a str>,
        Option<Value>,
        StatusCode,
        &'a str,
        Outcome,
        Option<&'a str>,
        Option<&'a str>,
    );
    let admin = Some(e.token.as_str());
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/admin/v1/health",
            None,
            None,
            StatusCode::OK,
            "admin.Health",
            Outcome::Success,
            None,
            None,
        ),
        (
            Method::GET,
            "/admin/v1/openapi.json",
            None,
            None,
            StatusCode::OK,
            "admin.GetOpenApiDocument",
            Outcome::Success,
            None,
            None,
        ),
        (
            Method::GET,
            "/admin/v1/status",
            None,
            None,
            StatusCode::UNAUTHORIZED,
            "admin.GetStatus",
            Outcome::Denied,
            None,
            Some("Unauthorized"),
        ),
        (
            Method::GET,
            "/admin/v1/status",
            Some("garbage"),
            None,
            StatusCode::UNAUTHORIZED,
            "admin.GetStatus",
            Outcome::Denied,
            None,
            Some("Unauthorized"),
        ),
        (
            Method::GET,
            "/admin/v1/status",
            admin,
            None,
            StatusCode::OK,
            "admin.GetStatus",
            Outcome::Success,
            Some("admin"),
            None,
        ),
        (
            Method::POST,
            "/admin/v1/principals",
            admin,
            Some(json!({"name": "p1", "role": "manager"})),
            StatusCode::CREATED,
            "admin.CreatePrincipal",
            Outcome::Success,
            Some("admin"),
            None,
        ),
        (
            Method::POST,
            "/admin/v1/principals",
            admin,
            Some(json!({"name": "p1"})),
            StatusCode::CONFLICT,
            "admin.CreatePrincipal",
            Outcome::Error,
            Some("admin"),
            Some("Conflict"),
        ),
        (
            Method::POST,
            "/admin/v1/principals",
            admin,
            Some(json!({"name": 5})),
            StatusCode::BAD_REQUEST,
            "admin.CreatePrincipal",
            Outcome::Error,
            Some("admin"),
            Some("InvalidRequest"),
        ),
        (
            Method::GET,
            "/admin/v1/principals/nobody",
            admin,
            None,
            StatusCode::NOT_FOUND,
            "admin.GetPrincipal",
            Outcome::Error,
            Some("admin"),
            Some("NotFound"),
        ),
        (
            Method::POST,
            "/admin/v1/keys",
            admin,
            Some(json!({"principal": "p1"})),
            StatusCode::CREATED,
            "admin.CreateAccessKey",
            Outcome::Success,
            Some("admin"),
            None,
        ),
        (
            Method::GET,
            "/admin/v1/principals",
            Some(viewer.as_str()),
            None,
            StatusCode::FORBIDDEN,
            "admin.ListPrincipals",
            Outcome::Denied,
            Some("vera"),
            Some("Forbidden"),
        ),
        (
            Method::GET,
            "/admin/v1/audit",
            Some(viewer.as_str()),
            None,
            StatusCode::FORBIDDEN,
            "admin.ListAuditEvents",
            Outcome::Denied,
            Some("vera"),
            Some("Forbidden"),
        ),
        (
            Method::POST,
            "/admin/v1/tenants",
            admin,
            Some(json!({"name": "t1"})),
            StatusCode::CREATED,
            "admin.CreateTenant",
            Outcome::Success,
            Some("admin"),
            None,
        ),
        (
            Method::GET,
            "/admin/v1/evidence/public-key",
            Some(viewer.as_str()),
            None,
            StatusCode::OK,
            "admin.GetEvidencePublicKey",
            Outcome::Success,
            Some("vera"),
            None,
        ),
        (
            Method::GET,
            "/admin/v1/no/such/route",
            admin,
            None,
            StatusCode::NOT_FOUND,
            "admin.UnknownRoute",
            Outcome::Error,
            Some("admin"),
            Some("NotFound"),
        ),
        (
            Method::PATCH,
            "/admin/v1/principals",
            admin,
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "admin.UnknownRoute",
            Outcome::Error,
            Some("admin"),
            Some("MethodNotAllowed"),
        ),
        (
            Method::POST,
            "/admin/v1/auth/token",
            None,
            Some(json!({"access_key": e.admin_key.access_key_id, "secret_key": "wrong"})),
            StatusCode::UNAUTHORIZED,
            "admin.CreateToken",
            Outcome::Denied,
            None,
            Some("Unauthorized"),
        ),
    ];
    for (m, path, tok, body, status, action, outcome, principal, code) in cases {
        let before = e.head().await;
        let r = e.req(m.clone(), path, tok, body, &[]).await;
        assert_eq!(r.status, status, "{m} {path}: {:?}", r.body);
        let ev = one_event(&e, before, &r).await;
        assert_eq!(ev.action, action, "{m} {path}");
        assert_eq!(ev.outcome, outcome, "{m} {path}");
        assert_eq!(ev.principal.as_deref(), principal, "{m} {path}");
        assert_eq!(ev.error_code.as_deref(), code, "{m} {path}");
        if principal == Some("admin") {
            assert_eq!(ev.tenant.as_deref(), Some("default"));
        }
        if status.is_client_error() && r.status != StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(error_code(&r), code.unwrap());
        }
        assert!(ev.duration_us >= 0);
        assert!(ev.source.is_none(), "no ConnectInfo in oneshot calls");
    }
    // A successful token exchange names the principal of the key.
    let before = e.head().await;
    let r = e
        .req(
            Method::POST,
            "/admin/v1/auth/token",
            None,
            Some(json!({"access_key": e.admin_key.access_key_id, "secret_key": e.admin_key.secret.expose()})),
            &[],
        )
        .await;
    let ev = one_event(&e, before, &r).await;
    assert_eq!(
        (ev.action.as_str(), ev.principal.as_deref(), ev.outcome),
        ("admin.CreateToken", Some("admin"), Outcome::Success)
    );
    assert!(ev.bytes_in > 0 && ev.bytes_out > 0, "{ev:?}");
    // An Idempotency-Key replay is a call too: one event, nothing created twice.
    let idem = [("idempotency-key", "k-1")];
    let body = json!({"name": "p2"});
    let before = e.head().await;
    let r1 = e
        .req(
            Method::POST,
            "/admin/v1/principals",
            admin,
            Some(body.clone()),
            &idem,
        )
        .await;
    assert_eq!(r1.status, StatusCode::CREATED);
    one_event(&e, before, &r1).await;
    let r2 = e
        .req(
            Method::POST,
            "/admin/v1/principals",
            admin,
            Some(body),
            &idem,
        )
        .await;
    assert_eq!(r2.headers.get("idempotent-replayed").unwrap(), "true");
    let ev = one_event(&e, before + 1, &r2).await;
    assert_eq!(ev.action, "admin.CreatePrincipal");

    // The operation hook saw every call once, under the same names.
    let counts = counted.lock().unwrap().clone();
    assert_eq!(counts.get("CreatePrincipal"), Some(&6), "{counts:?}");
    assert_eq!(counts.get("UnknownRoute"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("Health"), Some(&1), "{counts:?}");

    // Every documented operation has a unique operationId (the audit action names).
    let doc = serde_json::to_value(admin::api::openapi()).unwrap();
    let mut ids = BTreeSet::new();
    let mut n = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op.get("operationId") {
                ids.insert(id.as_str().unwrap().to_owned());
                n += 1;
            }
        }
    }
    assert_eq!(ids.len(), n, "operationIds are unique");
    assert_eq!(n, 55, "every operation has one");
}

#[tokio::test]
async fn rate_limited_admin_calls_are_recorded_as_denied() {
    let e = env_audited_with(|st| {
        st.limits = Arc::new(RateLimits::new(RateLimitConfig {
            s3_reads_per_min: 0,
            s3_writes_per_min: 0,
            admin_per_min: 2,
        }));
    })
    .await;
    let mut last = None;
    for _ in 0..5 {
        let before = e.head().await;
        let r = e.get("/admin/v1/status").await;
        let ev = one_event(&e, before, &r).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            last = Some(ev);
        }
    }
    let ev = last.expect("a 429 within 5 calls at 2/min");
    assert_eq!(ev.outcome, Outcome::Denied);
    assert_eq!(ev.error_code.as_deref(), Some("TooManyRequests"));
    assert_eq!(ev.principal.as_deref(), Some("admin"));
}

#[tokio::test]
async fn a_ledger_that_cannot_record_fails_changes_closed_and_changes_nothing() {
    let e = env_audited().await;
    let ledger = e.ledger.clone().unwrap();
    let principals_before = e.state.store.list_principals(None).await.unwrap();
    let keys_before = e.state.store.list_access_keys(None).await.unwrap();
    let tenants_before = e.state.store.list_tenants().await.unwrap();
    let head = e.head().await;
    let dialect = audit::db::Dialect::of(ledger.pool());
    for sql in audit::db::test_refuse_inserts(dialect, "audit_events", "no_audit", true) {
        sqlx::query(&sql).execute(ledger.pool()).await.unwrap();
    }
    let changes = [
        (
            "/admin/v1/principals",
            json!({"name": "mallory", "role": "superadmin"}),
        ),
        ("/admin/v1/keys", json!({"principal": "admin"})),
        ("/admin/v1/tenants", json!({"name": "t9"})),
        (
            "/admin/v1/roles",
            json!({"name": "R", "actions": ["GetObject"]}),
        ),
        (
            "/admin/v1/grants",
            json!({"principal": "admin", "role": "viewer", "bucket": "b"}),
        ),
    ];
    for (path, body) in changes {
        let r = e.post(path, body).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {:?}",
            r.body
        );
        assert_eq!(error_code(&r), "AuditUnavailable");
    }
    let r = e
        .post(
            &format!("/admin/v1/keys/{}/revoke", e.admin_key.access_key_id),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    // Reads fail closed too under the default read policy.
    let r = e.get("/admin/v1/status").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&r), "AuditUnavailable");

    // Nothing changed, nothing was recorded, the failures were counted.
    assert_eq!(
        e.state.store.list_principals(None).await.unwrap(),
        principals_before
    );
    assert_eq!(
        e.state.store.list_access_keys(None).await.unwrap(),
        keys_before
    );
    assert_eq!(e.state.store.list_tenants().await.unwrap(), tenants_before);
    assert!(e.state.store.list_roles().await.unwrap().is_empty());
    assert!(e.state.store.list_grants(None).await.unwrap().is_empty());
    assert_eq!(e.head().await, head);
    assert!(ledger.stats().snapshot().failures >= 7);

    // Once the ledger records again, the same call works and is recorded.
    for sql in audit::db::test_refuse_inserts(dialect, "audit_events", "no_audit", false) {
        sqlx::query(&sql).execute(ledger.pool()).await.unwrap();
    }
    let r = e.post("/admin/v1/tenants", json!({"name": "t9"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let ev = one_event(&e, head, &r).await;
    assert_eq!(ev.action, "admin.CreateTenant");
    assert!(ledger.verify(None).await.unwrap().is_ok());
}

/// Appends `n` S3 events with varied fields, one second apart from `t0`.
async fn seed(e: &common::Env, t0: i64, n: usize) {
    let ledger = e.ledger.as_ref().unwrap();
    for i in 0..n {
        let outcome = [Outcome::Success, Outcome::Denied, Outcome::Error][i % 3];
        ledger
            .append(AuditEvent {
                time_ms: t0 + (i as i64) * 1000,
                request_id: format!("s3-{i}"),
                kind: EventKind::S3,
                principal: Some(["alice", "bob"][i % 2].into()),
                tenant: Some(["default", "t1"][i % 2].into()),
                action: ["PutObject", "GetObject", "DeleteObject"][i % 3].into(),
                bucket: Some(["b1", "b2"][(i / 2) % 2].into()),
                key: Some(format!("{}/obj-{i}", ["photos", "docs"][i % 2])),
                outcome,
                status: [200, 403, 500][i % 3],
                error_code: None,
                bytes_in: i as u64,
                bytes_out: 0,
                key_version: Some(1),
                source: Some("10.0.0.1".into()),
                duration_us: 5,
            })
            .await
            .unwrap();
    }
}

/// Every event on every page of `query` (limit `page`), in the order served.
async fn walk(e: &common::Env, query: &str, page: u32) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = match &cursor {
            Some(c) => format!("/admin/v1/audit?{query}{sep}limit={page}&cursor={c}"),
            None => format!("/admin/v1/audit?{query}{sep}limit={page}"),
        };
        let r = e.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
        let items: Vec<StoredEvent> = serde_json::from_value(r.body["items"].clone()).unwrap();
        assert!(items.len() <= page as usize);
        out.extend(items);
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

fn seqs(v: &[StoredEvent]) -> Vec<i64> {
    v.iter().map(|e| e.seq).collect()
}

#[tokio::test]
async fn audit_filters_narrow_pagination_walks_everything_once_and_bad_values_are_400() {
    let e = env_audited().await;
    let t0 = 1_700_000_000_000i64;
    seed(&e, t0, 30).await;
    let all = walk(&e, "kind=s3", 1000).await;
    assert_eq!(all.len(), 30);
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let expect = |pred: &dyn Fn(&StoredEvent) -> bool| -> Vec<i64> {
        all.iter().filter(|e| pred(e)).map(|e| e.seq).collect()
    };
    let rfc = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let cases: Vec<(String, Vec<i64>)> = vec![
        (
            format!("kind=s3&from={}", t0 + 10_000),
            expect(&|e| e.time_ms >= t0 + 10_000),
        ),
        (
            format!("kind=s3&to={}", t0 + 10_000),
            expect(&|e| e.time_ms < t0 + 10_000),
        ),
        (
            format!("kind=s3&from={}&to={}", rfc(t0 + 5_000), rfc(t0 + 12_000)),
            expect(&|e| e.time_ms >= t0 + 5_000 && e.time_ms < t0 + 12_000),
        ),
        (
            "kind=s3&principal=alice".into(),
            expect(&|e| e.principal.as_deref() == Some("alice")),
        ),
        (
            "tenant=t1".into(),
            expect(&|e| e.tenant.as_deref() == Some("t1")),
        ),
        (
            "action=DeleteObject".into(),
            expect(&|e| e.action == "DeleteObject"),
        ),
        (
            "bucket=b2".into(),
            expect(&|e| e.bucket.as_deref() == Some("b2")),
        ),
        (
            "prefix=docs/".into(),
            expect(&|e| e.key.as_deref().is_some_and(|k| k.starts_with("docs/"))),
        ),
        (
            "kind=s3&outcome=denied".into(),
            expect(&|e| e.outcome == Outcome::Denied),
        ),
        (
            "bucket=b1&principal=bob&outcome=success".into(),
            expect(&|e| {
                e.bucket.as_deref() == Some("b1")
                    && e.principal.as_deref() == Some("bob")
                    && e.outcome == Outcome::Success
            }),
        ),
        ("principal=nobody".into(), vec![]),
    ];
    for (q, want) in cases {
        let got = walk(&e, &q, 1000).await;
        assert!(want.len() < 30, "{q} narrows");
        assert_eq!(seqs(&got), want, "{q}");
    }
    // kind=admin holds only admin events (the login and the queries above).
    let admin_events = walk(&e, "kind=admin", 1000).await;
    assert!(!admin_events.is_empty());
    assert!(
        admin_events
            .iter()
            .all(|x| x.kind == EventKind::Admin && x.action.starts_with("admin."))
    );

    // Pagination: every page size walks every event exactly once, newest first.
    for page in [1, 7, 30, 31] {
        let got = walk(&e, "kind=s3", page).await;
        assert_eq!(seqs(&got), seqs(&all), "page size {page}");
    }

    // One event by seq; absent → 404; not a positive integer → 400.
    let one = &all[3];
    let r = e.get(&format!("/admin/v1/audit/{}", one.seq)).await;
    assert_eq!(r.status, StatusCode::OK);
    let got: StoredEvent = serde_json::from_value(r.body).unwrap();
    assert_eq!(&got, one);
    let r = e.get("/admin/v1/audit/999999").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&r), "NotFound");
    for bad in ["abc", "0", "-3"] {
        let r = e.get(&format!("/admin/v1/audit/{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("seq")
        );
    }

    // Bad filter values name their parameter.
    for (q, param) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("outcome=maybe", "outcome"),
        ("kind=ftp", "kind"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=abc", "cursor"),
        ("princpal=alice", "princpal"),
    ] {
        let r = e.get(&format!("/admin/v1/audit?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {:?}", r.body);
        assert_eq!(error_code(&r), "InvalidRequest");
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(param), "{q}: {msg}");
    }
    // An empty window (to not after from) is well formed and holds no event.
    let r = e.get("/admin/v1/audit?from=2000&to=1000").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["items"], json!([]));
}

#[tokio::test]
async fn only_superadmins_read_the_ledger_and_tenant_admins_see_their_tenant() {
    let e = env_audited().await;
    seed(&e, 1_700_000_000_000, 10).await;
    let viewer = e.user_token("v", "viewer", "default").await;
    let manager = e.user_token("m", "manager", "default").await;
    for t in [&viewer, &manager] {
        for (m, p) in [
            (Method::GET, "/admin/v1/audit"),
            (Method::GET, "/admin/v1/audit/1"),
            (Method::POST, "/admin/v1/evidence/export"),
            (
                Method::GET,
                "/admin/v1/evidence/00000000000000000000000000000000",
            ),
        ] {
            let body = (m == Method::POST).then(|| json!({}));
            let r = e.req(m, p, Some(t), body, &[]).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{p}");
            assert_eq!(error_code(&r), "Forbidden");
        }
    }
    let r = e.post("/admin/v1/tenants", json!({"name": "t1"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let t1admin = e.user_token("t1admin", "superadmin", "t1").await;
    let r = e
        .req(
            Method::GET,
            "/admin/v1/audit?limit=1000",
            Some(&t1admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let items: Vec<StoredEvent> = serde_json::from_value(r.body["items"].clone()).unwrap();
    assert!(!items.is_empty());
    assert!(
        items.iter().all(|x| x.tenant.as_deref() == Some("t1")),
        "{items:?}"
    );
    let r = e
        .req(
            Method::GET,
            "/admin/v1/audit?tenant=default",
            Some(&t1admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("tenant")
    );
    // seq 1 is the default tenant's (the first login): invisible → 404.
    let r = e
        .req(Method::GET, "/admin/v1/audit/1", Some(&t1admin), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn evidence_export_download_and_offline_verification() {
    let e = env_audited().await;
    seed(&e, 1_700_000_000_000, 20).await;
    let dir = e.dir.as_ref().unwrap().path().to_owned();

    // The public key endpoint.
    let r = e.get("/admin/v1/evidence/public-key").await;
    assert_eq!(r.status, StatusCode::OK);
    let pk = PublicKey::parse(r.body["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(pk, EvidenceKey::from_seed(&[7u8; 32]).public_key());
    assert_eq!(r.body["fingerprint"], pk.fingerprint());

    // Export (audited, idempotent), download, verify.
    let before = e.head().await;
    let idem = [("idempotency-key", "export-1")];
    let filter = json!({"kind": "s3", "bucket": "b1", "from": 1_700_000_000_000i64, "to": "2100-01-01T00:00:00Z"});
    let r = e
        .req(
            Method::POST,
            "/admin/v1/evidence/export",
            Some(&e.token),
            Some(filter.clone()),
            &idem,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let ev = one_event(&e, before, &r).await;
    assert_eq!(
        (ev.action.as_str(), ev.outcome),
        ("admin.ExportEvidence", Outcome::Success)
    );
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["events"], 10);
    assert_eq!(r.body["download"], format!("/admin/v1/evidence/{id}"));
    let replay = e
        .req(
            Method::POST,
            "/admin/v1/evidence/export",
            Some(&e.token),
            Some(filter),
            &idem,
        )
        .await;
    assert_eq!(
        replay.body["id"],
        id.as_str(),
        "replayed, not exported twice"
    );
    let bundles = std::fs::read_dir(dir.join("evidence"))
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".meta.json")
        })
        .count();
    assert_eq!(bundles, 1);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("evidence")), 0o700);
        assert_eq!(
            mode(&dir.join("evidence").join(format!("{id}.json"))),
            0o600
        );
    }

    let resp = e.router.clone();
    let bytes = download(resp, &e.token, &format!("/admin/v1/evidence/{id}")).await;
    assert_eq!(bytes.0, StatusCode::OK);
    let bytes = bytes.1;
    assert_eq!(
        audit::sha256_hex(&bytes),
        r.body["sha256"].as_str().unwrap()
    );
    let file = dir.join("bundle.json");
    std::fs::write(&file, &bytes).unwrap();
    let summary = verify_bundle(&file, Some(&pk)).unwrap();
    assert!(summary.pinned);
    assert_eq!(summary.events.len(), 10);
    assert!(
        summary
            .events
            .iter()
            .all(|x| x.bucket.as_deref() == Some("b1") && x.kind == EventKind::S3)
    );
    let stored: Vec<StoredEvent> = walk(&e, "kind=s3&bucket=b1", 1000)
        .await
        .into_iter()
        .rev()
        .collect();
    assert_eq!(
        summary.events, stored,
        "the bundle holds exactly the selected events"
    );

    // One flipped byte → refused with a reason; another key → WrongKey.
    for pos in [bytes.len() / 2, 40, bytes.len() - 3] {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x01;
        std::fs::write(&file, &bad).unwrap();
        let err = verify_bundle(&file, Some(&pk)).unwrap_err();
        assert!(err.bundle_reason().is_some(), "byte {pos}: {err}");
    }
    std::fs::write(&file, &bytes).unwrap();
    let other = EvidenceKey::from_seed(&[8u8; 32]).public_key();
    let err = verify_bundle(&file, Some(&other)).unwrap_err();
    assert_eq!(err.bundle_reason(), Some(BundleReason::WrongKey));

    // Bad ids: traversal and malformed → 400; unknown → 404.
    for bad in [
        "..%2F..%2Findex.db",
        "..%2Findex.db",
        "ABCDEF00000000000000000000000000",
        "x",
    ] {
        let (status, body) = download(
            e.router.clone(),
            &e.token,
            &format!("/admin/v1/evidence/{bad}"),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (status, _) = download(
        e.router.clone(),
        &e.token,
        "/admin/v1/evidence/0123456789abcdef0123456789abcdef",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Empty selection → 404 (nothing to export: a schema-valid request, so not a 400).
    let r = e
        .post("/admin/v1/evidence/export", json!({"principal": "nobody"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no events")
    );
    // Bad filter → 400 naming it; unknown field → 400.
    for (body, needle) in [
        (json!({"outcome": "great"}), "outcome"),
        (json!({"from": "soon"}), "from"),
        (json!({"bukket": "b1"}), "bukket"),
    ] {
        let r = e.post("/admin/v1/evidence/export", body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{:?}",
            r.body
        );
    }
}

async fn download(router: axum::Router, token: &str, path: &str) -> (StatusCode, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let req = http::Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

#[tokio::test]
async fn exports_past_the_limits_are_413() {
    let e = env_audited_with(|st| {
        if let Some(a) = st.audit.as_mut() {
            a.export_limits = ExportLimits {
                max_events: 5,
                max_links: 8,
            };
        }
    })
    .await;
    let t0 = 1_700_000_000_000;
    seed(&e, t0, 20).await;
    // 20 s3 events > 5
    let r = e
        .post("/admin/v1/evidence/export", json!({"kind": "s3"}))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
    assert_eq!(error_code(&r), "ExportTooLarge");
    // 4 events (alice's PutObject: i % 6 == 0) spanning 19 links > 8
    let r = e
        .post(
            "/admin/v1/evidence/export",
            json!({"kind": "s3", "action": "PutObject", "principal": "alice"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chain links")
    );
    // within the limits: fine
    let r = e
        .post(
            "/admin/v1/evidence/export",
            json!({"kind": "s3", "from": t0 + 2000, "to": t0 + 5000}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["events"], 3);
}

#[tokio::test]
async fn a_change_refused_after_its_event_leaves_a_second_event_with_the_same_request_id() {
    let e = env_audited().await;
    let r = e
        .post(
            "/admin/v1/principals",
            json!({"name": "x", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = e
        .req(
            Method::PUT,
            "/admin/v1/quorum/rules/roles",
            Some(&e.token),
            Some(json!({"action": "admin:ChangeRole", "approvals": 1, "approver_roles": ["superadmin"], "ttl_secs": 600})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let before = e.head().await;
    let r = e
        .req(
            Method::PUT,
            "/admin/v1/principals/x/role",
            Some(&e.token),
            Some(json!({"role": "superadmin"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&r), "ApprovalRequired");
    let rid = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(e.head().await, before + 2);
    let ledger = e.ledger.as_ref().unwrap();
    let first = ledger.get(before + 1).await.unwrap().unwrap();
    let second = ledger.get(before + 2).await.unwrap().unwrap();
    assert_eq!(
        (first.request_id.as_str(), first.outcome, first.status),
        (rid, Outcome::Success, 200)
    );
    assert_eq!(
        (second.request_id.as_str(), second.outcome, second.status),
        (rid, Outcome::Denied, 403)
    );
    assert_eq!(second.error_code.as_deref(), Some("ApprovalRequired"));
    assert_eq!(second.action, "admin.SetPrincipalRole");
    // the role did not change
    let p = e.state.store.get_principal("x").await.unwrap().unwrap();
    assert_eq!(p.role, "viewer");
}

#[tokio::test]
async fn an_abandoned_call_still_leaves_its_event() {
    use tower::ServiceExt;
    let e = env_audited().await;
    let before = e.head().await;
    // A body that never completes: the handler waits for it until the caller gives up.
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/admin/v1/principals")
        .header("authorization", format!("Bearer {}", e.token))
        .header("content-type", "application/json")
        .body(axum::body::Body::new(Pending))
        .unwrap();
    let call = e.router.clone().oneshot(req);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), call)
            .await
            .is_err(),
        "the call is still waiting for its body"
    );
    for _ in 0..100 {
        if e.head().await > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(e.head().await, before + 1);
    let ev = e
        .ledger
        .as_ref()
        .unwrap()
        .get(before + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.action, "admin.CreatePrincipal");
    assert_eq!((ev.status, ev.outcome), (499, Outcome::Error));
    assert_eq!(ev.error_code.as_deref(), Some("ClientClosedRequest"));
    assert_eq!(ev.principal.as_deref(), Some("admin"));
    assert!(e.state.store.get_principal("x").await.unwrap().is_none());
}

/// A request body that never yields anything.
struct Pending;

impl hyper::body::Body for Pending {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn an_export_over_a_tampered_ledger_is_refused() {
    let e = env_audited().await;
    seed(&e, 1_700_000_000_000, 6).await;
    let target = walk(&e, "kind=s3&bucket=b1", 1000).await;
    let victim = target.last().unwrap().seq;
    sqlx::query("UPDATE audit_events SET principal = 'eve' WHERE seq = $1")
        .bind(victim)
        .execute(e.ledger.as_ref().unwrap().pool())
        .await
        .unwrap();
    let r = e
        .post(
            "/admin/v1/evidence/export",
            json!({"kind": "s3", "bucket": "b1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{:?}", r.body);
    assert_eq!(error_code(&r), "LedgerUnverifiable");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("vaultgate audit verify")
    );
    assert!(
        !e.dir.as_ref().unwrap().path().join("evidence").exists(),
        "no bundle written"
    );
}
