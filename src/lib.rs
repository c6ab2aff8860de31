//! snip: a self-hosted URL-shortening service.
//!
//! A request enters at `http` (router, handlers, error mapping), which calls the use cases
//! in `app`. They apply the rules of `domain` and persist through the ports in `store`,
//! whose adapters (`store/sqlite/`, …) hold all SQL. `cache` (L1 an in-process table,
//! L2 Redis) sits in front of the store for redirects, `ratelimit` guards every route, and
//! `clicks` counts redirects off the hot path; `metrics` reads what every part counted
//! for `/metrics`; `server` wires it all together from a `config::Config`.

#![warn(clippy::unwrap_used)]

pub mod app;
pub mod cache;
pub mod clicks;
pub mod clock;
pub mod compat;
pub mod config;
pub mod domain;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod net;
pub mod outgoing;
pub mod qr;
pub mod ratelimit;
pub mod redis_conn;
pub mod resilience;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod transfer;
pub mod web;

pub use config::Config;
pub use server::App;

/// How the property tests of parsers that read client input run: 100,000 cases each, so
/// that `cargo test` in CI tries each parser with that many hostile strings.
/// `SNIP_PROPERTY_CASES` lowers it while editing.
#[cfg(test)]
pub(crate) fn client_input_cases() -> proptest::test_runner::Config {
    let cases = std::env::var("SNIP_PROPERTY_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..Default::default()
    }
}
