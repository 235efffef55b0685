//! TEMPORARY STUB (not committed).
pub use crate::postgres::PgStore as SqliteStore;
