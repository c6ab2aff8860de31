//! The query explorer at `GET /graphql`: GraphiQL, served from files inside the binary
//! (nothing from a CDN), so it works offline. The third-party files are stored
//! gzip-compressed and sent as they are to clients that accept gzip (every browser).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::http::error::ApiError;

/// Where the explorer's files are served.
pub const ASSETS: &str = "/graphql/assets";

/// One file: its name (with a hash of its content, so it may be cached for ever), type,
/// body and whether the body is gzip-compressed.
struct Asset {
    name: String,
    content_type: &'static str,
    body: &'static [u8],
    gzip: bool,
}

const JS: &str = "text/javascript; charset=utf-8";

/// The files, in the order the page loads them (the stylesheet first).
static FILES: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    let file = |stem: &str, ext: &str, content_type, body: &'static [u8], gzip| Asset {
        name: format!("{stem}.{:016x}.{ext}", xxhash_rust::xxh3::xxh3_64(body)),
        content_type,
        body,
        gzip,
    };
    vec![
        file(
            "graphiql",
            "css",
            "text/css; charset=utf-8",
            include_bytes!("explorer/graphiql.min.css.gz"),
            true,
        ),
        file(
            "react",
            "js",
            JS,
            include_bytes!("explorer/react.production.min.js.gz"),
            true,
        ),
        file(
            "react-dom",
            "js",
            JS,
            include_bytes!("explorer/react-dom.production.min.js.gz"),
            true,
        ),
        file(
            "graphiql",
            "js",
            JS,
            include_bytes!("explorer/graphiql.min.js.gz"),
            true,
        ),
        file(
            "explorer",
            "js",
            JS,
            include_bytes!("explorer/explorer.js"),
            false,
        ),
    ]
});

/// The page's `Content-Security-Policy`: scripts and styles from snip only (GraphiQL sets
/// inline styles), requests to snip only, never framed.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'none'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The explorer's page.
pub fn page() -> Response {
    let files = &*FILES;
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>snip: GraphQL explorer</title>\n\
         <link rel=\"stylesheet\" href=\"{ASSETS}/{}\">\n\
         <style>body {{ margin: 0; height: 100vh; }} #graphiql {{ height: 100vh; }}</style>\n\
         </head>\n<body>\n<div id=\"graphiql\">Loading the explorer…</div>\n",
        files[0].name
    );
    for script in &files[1..] {
        html.push_str(&format!(
            "<script src=\"{ASSETS}/{}\"></script>\n",
            script.name
        ));
    }
    html.push_str("</body>\n</html>\n");
    let mut res = Html(html).into_response();
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    res
}

/// `GET /graphql/assets/{name}`: one of the explorer's files.
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(file) = FILES.iter().find(|f| f.name == name) else {
        return ApiError::not_found().into_response();
    };
    let accepts_gzip = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    if file.gzip && !accepts_gzip {
        return ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "",
            "this file is served gzip-compressed only (Accept-Encoding: gzip)",
        )
        .into_response();
    }
    let mut res = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(file.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        file.body,
    )
        .into_response();
    if file.gzip {
        let h = res.headers_mut();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    res
}
