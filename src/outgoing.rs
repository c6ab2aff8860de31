//! Requests snip sends to other servers: reading a YOURLS or Shlink API during an import,
//! and the container health check. HTTPS goes through rustls with the ring provider and the
//! system's root certificates.

use anyhow::Context;
use serde_json::Value;

/// Seconds a request may take.
const TIMEOUT_SECS: u64 = 60;
/// The largest answer read (a page of links is far smaller).
const MAX_ANSWER_BYTES: usize = 64 << 20;

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// An HTTP client for the source's API: HTTPS through rustls (the ring provider, the
/// system's root certificates) or plain HTTP.
#[derive(Clone)]
pub struct Client(
    hyper_util::client::legacy::Client<Connector, http_body_util::Empty<axum::body::Bytes>>,
);

impl Client {
    /// A new client.
    pub fn new() -> anyhow::Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .context("reading the system's root certificates")?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https),
        ))
    }

    /// `GET url` with `headers`: the status and the JSON answer.
    pub async fn get_json(
        &self,
        url: &url::Url,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = hyper::Request::get(url.as_str()).header(
            "user-agent",
            concat!("snip-import/", env!("CARGO_PKG_VERSION")),
        );
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(http_body_util::Empty::new())?;
        let limit = std::time::Duration::from_secs(TIMEOUT_SECS);
        let read = async {
            let res = self.0.request(req).await?;
            let status = res.status().as_u16();
            let body = http_body_util::Limited::new(res.into_body(), MAX_ANSWER_BYTES);
            let bytes = http_body_util::BodyExt::collect(body)
                .await
                .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
                .to_bytes();
            let json = serde_json::from_slice(&bytes)
                .with_context(|| format!("the answer ({status}) is not JSON"))?;
            anyhow::Ok((status, json))
        };
        tokio::time::timeout(limit, read)
            .await
            .with_context(|| format!("no answer within {TIMEOUT_SECS} s"))?
    }

    /// `GET url`: the status alone (the body is read and dropped).
    pub async fn get_status(&self, url: &str) -> anyhow::Result<u16> {
        let req = hyper::Request::get(url)
            .header("user-agent", concat!("snip/", env!("CARGO_PKG_VERSION")))
            .body(http_body_util::Empty::new())?;
        let limit = std::time::Duration::from_secs(TIMEOUT_SECS);
        let res = tokio::time::timeout(limit, self.0.request(req))
            .await
            .with_context(|| format!("no answer within {TIMEOUT_SECS} s"))??;
        Ok(res.status().as_u16())
    }
}
