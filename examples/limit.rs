//! The ceiling for any redirect service on this machine: a minimal hyper server that
//! answers every request with the same `301` and does nothing else. The benchmark suite
//! measures snip against it, in the same run (`bench/redirect.sh`).
//!
//! ```sh
//! cargo run --release --example limit -- 127.0.0.1:9000
//! ```

use std::convert::Infallible;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        // As snip's own loop does: each response leaves in one segment, at once.
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                let response = Response::builder()
                    .status(StatusCode::MOVED_PERMANENTLY)
                    .header(header::LOCATION, "https://example.com/")
                    .header(header::CACHE_CONTROL, "public, max-age=3600")
                    .body(Empty::<Bytes>::new())
                    .expect("a fixed response is valid");
                Ok::<_, Infallible>(response)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
