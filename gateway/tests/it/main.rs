//! The gateway's integration tests, one binary (a module per former test file): one link instead of
//! forty, several GB less disk and minutes less linking on a 2-core CI machine.
//! `cargo test -p gateway --test it s3_objects::` runs one family.

mod common;
mod index_support;
mod ops_support;

mod attack_s3;
mod audit_events;
mod authz_matrix;
mod bucket_controls;
mod bucket_encryption;
mod bucket_policy;
mod conditional_delete;
mod conditional_writes;
mod cors;
mod deploy_config;
mod expect_continue;
mod index_group_commit;
mod index_instances;
mod index_migration;
mod inline_objects;
mod lease;
mod lifecycle;
mod object_attributes;
mod object_lock;
mod ops_import_hub;
mod ops_migrate;
mod ops_reindex;
mod policy_wiring;
mod post_object;
mod s3_auth_ops;
mod s3_multipart;
mod s3_objects;
mod s3_small_items;
mod settings_instances;
mod sse;
mod start_guard;
mod storage_gc;
mod storage_index;
mod tagging;
mod two_gateways;
mod versioning;
mod virtual_host;
