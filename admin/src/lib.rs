//! Vaultgate admin: the REST API under `/admin/v1` ([`api`], an axum router with
//! its OpenAPI document) and the `vaultgate admin …` command-line client
//! ([`cli`]), which talks to that API. Errors are [`error::ApiError`], rendered
//! as `{"error":{"code","message","request_id"}}`.

pub mod api;
pub mod audit;
pub mod cli;
pub mod console;
pub mod error;

pub use api::{AdminState, AuditState, S3Relay, router};
pub use error::ApiError;
