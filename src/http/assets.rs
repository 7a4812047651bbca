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

#[cfg(test)]
mod tests {
    use super::Static;

    /// Third-party files are served exactly as checked in: their SHA-256
    /// matches the `SHA256SUMS` beside them (CI runs this).
    #[test]
    fn vendored_files_match_their_checksums() {
        let sums = Static::get("vendor/mqtt/SHA256SUMS").expect("SHA256SUMS");
        let sums = String::from_utf8(sums.data.into_owned()).unwrap();
        let mut checked = 0;
        for line in sums.lines().filter(|l| !l.trim().is_empty()) {
            let (want, name) = line.split_once("  ").expect("sha256sum format");
            let file = Static::get(&format!("vendor/mqtt/{name}")).expect(name);
            let text = std::str::from_utf8(&file.data).expect("a text file");
            assert_eq!(crate::store::token_hash(text), want, "{name} changed");
            checked += 1;
        }
        assert!(checked > 0);
        assert!(
            Static::get("vendor/mqtt/LICENSE.md").is_some(),
            "licence beside it"
        );
    }
}
