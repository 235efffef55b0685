//! The domain core of promptvault: what a prompt, a version, a label and a link are, and the rules
//! that govern them (names, labels, version numbering, the semver bump, the change checksum,
//! rendering and diffing).
//!
//! This crate does no I/O: no database, no HTTP, no files, no clock reads except where a caller
//! passes time in. Storage and the server call into it; it never calls out.

pub mod access;
pub mod audit;
pub mod compliance;
pub mod contract;
pub mod crypto;
pub mod deploy;
pub mod diff;
pub mod error;
pub mod hash;
pub mod ident;
pub mod lifecycle;
pub mod model;
pub mod render;
pub mod retire;
pub mod runs;
pub mod secret;
pub mod template;
pub mod testcase;
pub mod version;
pub mod workflow;
