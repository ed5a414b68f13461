//! The admin crate's integration tests, one binary with a module per former test file.
//! `cargo test -p admin --test it console::` runs one family.

mod common;

mod api;
mod attack_admin;
mod audit_api;
mod cli;
mod console;
