//! Vaultgate gateway library: S3 front end (s3s), object layer, storage backends, metadata index,
//! configuration and the in-process server used by the `vaultgate` binary and the tests.

pub mod admin_http;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod config;
pub mod error;
pub mod index;
pub mod lease;
pub mod lock;
pub mod metrics;
pub mod ops;
pub mod probe;
pub mod request;
pub mod s3;
pub mod server;
pub mod store;

pub use error::{Error, Result};
