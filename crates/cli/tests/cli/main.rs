//! Black-box tests of the `prompt` binary: local mode on a temporary data directory, remote mode
//! against a `prompt serve` child process, and (when `PROMPTVAULT_TEST_POSTGRES_URL` is set)
//! PostgreSQL.

mod access;
mod bundle;
mod check;
mod errors;
mod parity;
mod postgres;
mod retire;
mod reviews;
mod serve;
mod support;
mod test;
mod workflow;
