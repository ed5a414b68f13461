//! placeholder
pub mod backend;
pub mod index;
