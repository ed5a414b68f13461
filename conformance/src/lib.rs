//! Vaultgate conformance: the backend conformance suite ([`backend`]), run by this crate's tests
//! against every storage backend; real-client tests (aws cli, rclone, boto3) live beside it.

pub mod backend;
