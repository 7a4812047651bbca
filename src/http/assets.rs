//! Static files (`static/`) compiled into the binary (read from disk in
//! debug builds), served with their MIME type and cache headers.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "static/"]
struct Static;

/// `GET /static/{*path}`.
pub async fn serve(Path(path): Path<String>) -> Response {
    match Static::get(&path) {
        Some(f) => (
            [
                (header::CONTENT_TYPE, f.metadata.mimetype().to_string()),
                (header::CACHE_CONTROL, "public, max-age=300".to_string()),
            ],
            f.data.into_owned(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
