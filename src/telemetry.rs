//! Logs and traces, set up once at start-up.
//!
//! Logs: JSON lines when stdout is not a terminal, readable text when it is; `RUST_LOG`
//! picks the levels. Traces: with an OTLP endpoint, spans (request → cache → store → queue)
//! are exported over OTLP/HTTP, and a W3C `traceparent` is taken from each request and
//! returned on its response; without one, none of that costs anything.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, filter};

/// Whether spans are exported (then `traceparent` is honoured and returned).
static TRACING: AtomicBool = AtomicBool::new(false);

/// Keeps the exporter alive; [`Telemetry::shutdown`] sends what is still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace exporter, if there is one.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("flushing traces failed: {e}");
        }
    }
}

/// Installs the global subscriber; with `otlp_endpoint` (e.g. `http://127.0.0.1:4318`) it
/// also exports spans to `{otlp_endpoint}/v1/traces`. Later calls install nothing.
pub fn init(otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let Some(endpoint) = otlp_endpoint else {
        // One global filter: callsites it disables cost nothing at all (a per-layer filter
        // would be asked on every span, measurably on the redirect path).
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(log_layer())
            .try_init();
        return Ok(Telemetry { provider: None });
    };
    let logs = log_layer().with_filter(filter);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(Duration::from_secs(5))
        .build()
        .context("building the OTLP exporter")?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_secs(1))
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("snip")
                .build(),
        )
        .build();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("snip"))
        // snip's own spans down to debug (cache, store, queue); others from info.
        .with_filter(
            filter::Targets::new()
                .with_target("snip", tracing::Level::DEBUG)
                .with_default(tracing::Level::INFO),
        );
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
    TRACING.store(true, Ordering::Relaxed);
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// Whether spans are exported.
pub fn tracing_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// Log lines: JSON when stdout is not a terminal, readable text when it is.
fn log_layer<S>() -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let fmt = tracing_subscriber::fmt::layer();
    if std::io::stdout().is_terminal() {
        fmt.boxed()
    } else {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed()
    }
}

/// Makes the span of a request a child of the caller's trace, from its `traceparent`.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !TRACING.load(Ordering::Relaxed) {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

/// Adds the `traceparent` of the current span to `headers`.
pub fn inject_trace(headers: &mut HeaderMap) {
    if !TRACING.load(Ordering::Relaxed) {
        return;
    }
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut HeadersMut(headers));
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
