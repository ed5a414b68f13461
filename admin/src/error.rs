//! The admin API's error type: an HTTP status, a stable code and a message,
//! rendered as `{"error":{"code","message","request_id"}}` (plus `approval_id`
//! when a quorum approval is needed), with `Retry-After` on 429. Internal
//! details (database, sealing) are logged, not returned. The CLI uses the same
//! type for its failures (server answers parsed back, and local errors).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

tokio::task_local! {
    /// The id of the request being served (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

/// The current request id, or `-` outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".into())
}

/// The error code of an error answer, attached to the response's extensions so the audit
/// middleware can record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode(pub String);

/// An error answer of the admin API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status
    pub status: StatusCode,
    /// stable error code, e.g. `NotFound`
    pub code: String,
    /// human-readable message
    pub message: String,
    /// seconds to wait (429)
    pub retry_after: Option<u64>,
    /// approval request to wait for (403 ApprovalRequired)
    pub approval_id: Option<String>,
}

/// The body of an error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// the error
    pub error: ErrorDetail,
}

/// Details of an error answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// stable code: InvalidRequest, Unauthorized, Forbidden, ApprovalRequired, NotFound,
    /// Conflict, Expired, IdempotencyKeyReused, ExportTooLarge, TooManyRequests, Internal,
    /// Unavailable, AuditUnavailable
    pub code: String,
    /// message
    pub message: String,
    /// request id (also in the `x-request-id` header)
    pub request_id: String,
    /// approval request id, for ApprovalRequired
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub approval_id: Option<String>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
            approval_id: None,
        }
    }
    /// 400 InvalidRequest
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }
    /// 401 Unauthorized
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }
    /// 403 Forbidden
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }
    /// 404 NotFound
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
    }
    /// 503 AuditUnavailable: the call's audit event could not be recorded, so nothing was
    /// changed (details logged).
    pub fn audit_unavailable(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(request_id = %current_request_id(), "admin audit event not recorded: {detail}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "AuditUnavailable",
            "the audit ledger cannot record this call; nothing was changed, retry later",
        )
    }
    /// 500 Internal (details logged)
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(request_id = %current_request_id(), "admin internal error: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal",
            "internal error",
        )
    }
}

impl From<policy::Error> for ApiError {
    fn from(e: policy::Error) -> ApiError {
        use policy::Error as E;
        match e {
            E::UnknownRole(_) | E::Invalid(_) => ApiError::bad_request(e.to_string()),
            E::Unauthenticated(m) => ApiError::unauthorized(m),
            E::Forbidden(m) => ApiError::forbidden(m),
            E::Denied { .. } | E::AccessDenied { .. } => ApiError::forbidden(e.to_string()),
            E::ApprovalRequired {
                ref approval_id, ..
            } => {
                let id = approval_id.clone();
                let mut a = ApiError::new(StatusCode::FORBIDDEN, "ApprovalRequired", e.to_string());
                a.approval_id = Some(id);
                a
            }
            E::RateLimited { retry_after_secs } => {
                let mut a = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    e.to_string(),
                );
                a.retry_after = Some(retry_after_secs);
                a
            }
            E::NotFound(m) => ApiError::not_found(m),
            E::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "Conflict", m),
            E::Expired(_) => ApiError::new(StatusCode::CONFLICT, "Expired", e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let rid = current_request_id();
        let body_code = self.code.clone();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                request_id: rid,
                approval_id: self.approval_id,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(ErrorCode(body_code));
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}
