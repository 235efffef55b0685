//! Black-box tests of the HTTP API: a real server on 127.0.0.1:0 over a real database (a fresh
//! SQLite file, and a fresh PostgreSQL schema when `PROMPTVAULT_TEST_POSTGRES_URL` is set),
//! driven with a real HTTP client. One test binary, one link step.

mod access_basics;
mod access_matrix;
mod audit;
mod auth;
mod bad_input;
mod bundle;
mod compliance;
mod concurrency;
mod governance;
mod helpers;
mod labels;
mod lifecycle;
mod logs;
mod metrics;
mod openapi;
mod prompts;
mod resolve;
mod retire;
mod reviews;
mod runs;
mod shared_cache;
mod testcases;
