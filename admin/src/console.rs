//! The web console at `/console/`: the single-page app built from `console/` (repository root)
//! and committed as `console/dist/` (esbuild's minified bundle and style sheet, and the minified
//! `index.html`; `docs/CONSOLE.md`), compiled into the binary with `include_bytes!` (no file
//! beside the binary, no CDN, no font: it works on an offline network). Every answer carries a
//! strict Content-Security-Policy (only this origin's script, style and connections; no inline
//! script or style; no framing), `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer`; the HTML is `no-store`. Paths under `/console/` that are not
//! assets (`/console/approvals`, `/console/buckets/photos`, …) answer the app's `index.html` (the
//! app routes on the client side); an unknown asset (`/console/assets/x.js`, or any path whose
//! last segment has an extension) is 404. The console talks only to `/admin/v1/…` on the same
//! origin (`docs/CONSOLE.md`).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Where the console is served.
pub const CONSOLE_PATH: &str = "/console/";

/// The Content-Security-Policy of every console answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

const INDEX_HTML: &[u8] = include_bytes!("../../console/dist/index.html");
const APP_JS: &[u8] = include_bytes!("../../console/dist/assets/app.js");
const APP_CSS: &[u8] = include_bytes!("../../console/dist/assets/app.css");

/// The console's assets: path under `/console/`, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("assets/app.js", "text/javascript; charset=utf-8", APP_JS),
    ("assets/app.css", "text/css; charset=utf-8", APP_CSS),
];

/// The console's routes (`/console`, `/console/`, `/console/{*path}`), to merge into the admin
/// listener's router. They are public (the page holds no data; every call it makes carries the
/// signed-in principal's bearer token) and not audited (static files, no principal).
pub fn router() -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent(CONSOLE_PATH) }),
        )
        .route("/console/", get(|| async { page(None) }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>| async move { page(Some(&path)) }),
        )
}

fn page(path: Option<&str>) -> Response {
    let Some(path) = path else {
        return answer(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML, true);
    };
    if let Some((_, ctype, bytes)) = ASSETS.iter().find(|(p, _, _)| *p == path) {
        return answer(StatusCode::OK, ctype, bytes, false);
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if path.starts_with("assets/") || last.contains('.') {
        return answer(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            b"not found\n",
            true,
        );
    }
    answer(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML, true)
}

fn answer(status: StatusCode, ctype: &str, body: &'static [u8], no_store: bool) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    let set = |h: &mut http::HeaderMap, k: HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(h, header::CONTENT_TYPE, ctype);
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        h,
        header::CACHE_CONTROL,
        if no_store { "no-store" } else { "no-cache" },
    );
    resp
}
