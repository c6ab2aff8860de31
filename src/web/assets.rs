//! The dashboard's stylesheet and script, built into the binary. Each is served under a
//! name holding a hash of its content (`style.3f2a….css`), so browsers may keep it for a
//! year: a new release has new names.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
struct Asset {
    /// The name pages link to, with its content hash.
    path: String,
    body: &'static [u8],
    content_type: &'static str,
}

impl Asset {
    fn new(stem: &str, ext: &str, body: &'static [u8], content_type: &'static str) -> Self {
        let hash = xxhash_rust::xxh3::xxh3_64(body);
        Self {
            path: format!("{}/assets/{stem}.{hash:016x}.{ext}", super::PREFIX),
            body,
            content_type,
        }
    }
}

static CSS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "style",
        "css",
        include_bytes!("assets/style.css"),
        "text/css; charset=utf-8",
    )
});

static JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "app",
        "js",
        include_bytes!("assets/app.js"),
        "text/javascript; charset=utf-8",
    )
});

/// Where pages link the stylesheet.
pub fn css() -> &'static str {
    &CSS.path
}

/// Where pages link the script.
pub fn js() -> &'static str {
    &JS.path
}

/// `GET /app/assets/{name}`: an asset by its hashed name; any other name is 404.
pub async fn serve(Path(name): Path<String>) -> Response {
    let wanted = format!("{}/assets/{name}", super::PREFIX);
    let Some(asset) = [&*CSS, &*JS].into_iter().find(|a| a.path == wanted) else {
        return super::page::not_found();
    };
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_carry_the_content_hash() {
        assert!(super::css().starts_with("/app/assets/style."));
        assert!(super::css().ends_with(".css"));
        assert!(super::js().ends_with(".js"));
        let hash = super::css().split('.').nth(1).unwrap();
        assert_eq!(hash.len(), 16);
        assert_eq!(
            hash,
            format!(
                "{:016x}",
                xxhash_rust::xxh3::xxh3_64(include_bytes!("assets/style.css"))
            )
        );
    }
}
