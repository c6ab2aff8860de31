//! Counts the SQL statements sqlx runs in this process, from its own per-statement log
//! events (target `sqlx::query`), so nothing in the store is instrumented for tests. The
//! counter is process-global: a test binary that uses it holds one test.

use std::sync::atomic::{AtomicUsize, Ordering};

use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

struct CountStatements;

/// Reads the `summary` field of a statement event (its first words of SQL).
#[derive(Default)]
struct Summary(String);

impl tracing::field::Visit for Summary {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.0 = value.to_owned();
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut summary = Summary::default();
        event.record(&mut summary);
        // A connection the pool opens runs its own PRAGMAs: pool overhead, not the query's.
        // `SELECT 1` is the health check's ping, which runs in the background every second.
        let text = summary.0.trim_start_matches('"').to_ascii_uppercase();
        if !text.starts_with("PRAGMA") && text.trim_end_matches('"') != "SELECT 1" {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
            if std::env::var_os("SNIP_SHOW_STATEMENTS").is_some() {
                eprintln!("statement: {}", summary.0);
            }
        }
    }
}

pub async fn statements_of<F: std::future::Future>(f: F) -> (usize, F::Output) {
    let before = STATEMENTS.load(Ordering::SeqCst);
    let out = f.await;
    (STATEMENTS.load(Ordering::SeqCst) - before, out)
}

/// Starts counting (once per process).
pub fn install() {
    let subscriber = Registry::default().with(
        CountStatements.with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("sqlx::query", tracing::Level::TRACE),
        ),
    );
    tracing::subscriber::set_global_default(subscriber).unwrap();
}
