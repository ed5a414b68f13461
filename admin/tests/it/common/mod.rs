//! Shared set-up for the admin tests: an in-memory policy store with the
//! bootstrap SuperAdmin, an HS256 authority, and the router.

use std::sync::Arc;

use admin::{AdminState, router};
use audit::evidence::EvidenceKey;
use audit::{Ledger, LedgerConfig};
use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use policy::store::NewAccessKey;
use policy::{AesGcmSealer, JwtAuthority, PolicyStore, RateLimitConfig, RateLimits};
use serde_json::Value;
use tower::ServiceExt;

pub const SECRET: &[u8] = b"admin-test-secret-admin-test-secret-0123";

pub struct Env {
    pub router: Router,
    pub state: AdminState,
    pub admin_key: NewAccessKey,
    pub token: String,
    /// the audit ledger (audited environments)
    pub ledger: Option<Ledger>,
    /// holds the database file and evidence directory of audited environments
    pub dir: Option<tempfile::TempDir>,
}

pub async fn env_with(limits: RateLimitConfig) -> Env {
    let store = PolicyStore::in_memory(Arc::new(AesGcmSealer::random().unwrap()))
        .await
        .unwrap();
    env_from(store, limits).await
}

/// An environment over a given store (e.g. one with the access cache, as the gateway serves).
pub async fn env_from(store: PolicyStore, limits: RateLimitConfig) -> Env {
    let admin_key = store.bootstrap(None).await.unwrap().unwrap();
    let jwt = Arc::new(JwtAuthority::new(Some(SECRET), None, 300).unwrap());
    let state = AdminState::new(store, jwt, Arc::new(RateLimits::new(limits)));
    let router = router(state.clone());
    let mut e = Env {
        router,
        state,
        admin_key,
        token: String::new(),
        ledger: None,
        dir: None,
    };
    let (ak, sk) = (
        e.admin_key.access_key_id.clone(),
        e.admin_key.secret.expose().to_owned(),
    );
    e.token = e.login(&ak, &sk).await;
    e
}

/// An audited environment: policy store and audit ledger in one SQLite file (as the gateway
/// keeps them), a fixed evidence key, bundles under `<tmp>/evidence`. `tune` may change the
/// state (export limits) before the router is built.
pub async fn env_audited_with(tune: impl FnOnce(&mut AdminState)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = audit::db::test_database_url()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("index.db").display()));
    let pool = audit::open_pool(&url, true).await.unwrap();
    let store = PolicyStore::new(pool.clone(), Arc::new(AesGcmSealer::random().unwrap()))
        .await
        .unwrap();
    let ledger = Ledger::open(pool, LedgerConfig::default()).await.unwrap();
    let admin_key = store.bootstrap(None).await.unwrap().unwrap();
    let jwt = Arc::new(JwtAuthority::new(Some(SECRET), None, 300).unwrap());
    let limits = RateLimits::new(RateLimitConfig {
        s3_reads_per_min: 0,
        s3_writes_per_min: 0,
        admin_per_min: 100_000,
    });
    let mut state = AdminState::new(store, jwt, Arc::new(limits)).with_audit(
        ledger.clone(),
        Arc::new(EvidenceKey::from_seed(&[7u8; 32])),
        dir.path().join("evidence"),
    );
    tune(&mut state);
    let router = router(state.clone());
    let mut e = Env {
        router,
        state,
        admin_key,
        token: String::new(),
        ledger: Some(ledger),
        dir: Some(dir),
    };
    let (ak, sk) = (
        e.admin_key.access_key_id.clone(),
        e.admin_key.secret.expose().to_owned(),
    );
    e.token = e.login(&ak, &sk).await;
    e
}

pub async fn env_audited() -> Env {
    env_audited_with(|_| {}).await
}

pub async fn env() -> Env {
    env_with(RateLimitConfig {
        s3_reads_per_min: 0,
        s3_writes_per_min: 0,
        admin_per_min: 100_000,
    })
    .await
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Env {
    pub async fn req(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Resp {
        self.req_inner(None, method, path, token, body, extra).await
    }

    /// A request from a source address (axum `ConnectInfo`, as the gateway's listener sets it).
    pub async fn req_from(
        &self,
        ip: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
        self.req_inner(Some(addr), method, path, token, body, &[])
            .await
    }

    async fn req_inner(
        &self,
        from: Option<std::net::SocketAddr>,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(a) = from {
            b = b.extension(axum::extract::ConnectInfo(a));
        }
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&v).unwrap()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.req(Method::GET, path, Some(&self.token), None, &[])
            .await
    }

    /// The ledger's last sequence number (audited environments).
    pub async fn head(&self) -> i64 {
        self.ledger.as_ref().unwrap().head().await.unwrap().seq
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.req(Method::POST, path, Some(&self.token), Some(body), &[])
            .await
    }

    pub async fn login(&self, ak: &str, sk: &str) -> String {
        let r = self
            .req(
                Method::POST,
                "/admin/v1/auth/token",
                None,
                Some(serde_json::json!({"access_key": ak, "secret_key": sk})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert!(r.body["expires_in"].as_u64().unwrap() > 0);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// Creates a principal with a key and returns its token.
    pub async fn user_token(&self, name: &str, role: &str, tenant: &str) -> String {
        let r = self
            .post(
                "/admin/v1/principals",
                serde_json::json!({"name": name, "role": role, "tenant": tenant}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let k = self
            .post("/admin/v1/keys", serde_json::json!({"principal": name}))
            .await;
        assert_eq!(k.status, StatusCode::CREATED, "{:?}", k.body);
        let t = self
            .login(
                k.body["access_key_id"].as_str().unwrap(),
                k.body["secret_key"].as_str().unwrap(),
            )
            .await;
        // quorum approvers must exist (with their role) strictly before the requests they
        // approve are opened; keep the millisecond clocks of the two apart
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        t
    }
}

/// Asserts the error JSON shape and returns the code.
pub fn error_code(r: &Resp) -> String {
    let e = &r.body["error"];
    assert!(e["message"].is_string(), "{:?}", r.body);
    let rid = e["request_id"].as_str().expect("request_id");
    assert_eq!(
        r.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some(rid),
        "request id in body and header"
    );
    e["code"].as_str().unwrap().to_owned()
}
