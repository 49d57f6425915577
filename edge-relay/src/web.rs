//! The web app: files of `--web-dir`, compressed (brotli or gzip, as the
//! browser accepts; precompressed `.br` and `.gz` copies are used where they
//! exist), with caching headers chosen by name:
//!
//! - hashed assets (`app.3f9a1c2e.wasm`, `app-3f9a1c2e.js`): a year, `immutable`,
//!   since a new build gives them a new name;
//! - HTML (and `/`): a minute, so a new build reaches browsers soon;
//! - the service worker (`sw.js`, `service-worker.js`): `no-cache`, and
//!   `Service-Worker-Allowed: /` so a worker served from a subpath may
//!   control the whole site;
//! - anything else: an hour.
//!
//! A page's address has no extension: `/poll/<id>` is served from
//! `poll/<id>/index.html` where that file exists, without a redirect (a
//! service worker cannot use a redirected response for a navigation).
//! Nothing here redirects: a directory without its `index.html`, or named
//! without its trailing slash, is a 404, so no address (`//host` included)
//! sends a browser elsewhere. Addresses no file can have (an empty or
//! over-long segment) are 404s before the file system is asked, and every
//! error is the relay's JSON error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

use crate::error::ApiError;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const HTML: &str = "public, max-age=60";
const WORKER: &str = "no-cache";
const OTHER: &str = "public, max-age=3600";
/// Longest file name on the usual file systems, in bytes.
const MAX_SEGMENT: usize = 255;
/// Longest address path looked up at all; the site's are far shorter.
const MAX_PATH: usize = 1024;

/// A router serving `dir` for every path it is given.
pub(crate) fn router(dir: &Path) -> Router {
    // `name.br` / `name.gz` beside a file, where the build made them, are
    // sent instead of compressing on the fly (the layer below leaves
    // responses that already have an encoding alone).
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .precompressed_br()
        .precompressed_gzip();
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(cache_headers))
        .layer(CompressionLayer::new().br(true).gzip(true))
        .layer(middleware::from_fn_with_state(
            Arc::new(dir.to_path_buf()),
            page_addresses,
        ))
}

/// Rewrites `/a/b` to `/a/b/index.html` when that file exists.
async fn page_addresses(
    State(root): State<Arc<PathBuf>>,
    mut req: Request,
    next: Next,
) -> Response {
    if !could_be_a_file(req.uri().path()) {
        return missing(wants_html(&req));
    }
    if let Some(page) = page_file(&root, req.uri().path()) {
        let rewritten = match req.uri().query() {
            Some(query) => format!("{page}?{query}"),
            None => page,
        };
        if let Ok(uri) = rewritten.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    next.run(req).await
}

/// Whether a path could name a file of the site: no empty segment (`//`;
/// the file service would answer `//poll` with a redirect to `//poll/`, an
/// address on another host), no segment longer than a file name (the file
/// system's error would be a 500), not absurdly long.
fn could_be_a_file(path: &str) -> bool {
    path.len() <= MAX_PATH
        && !path.contains("//")
        && path.split('/').all(|segment| segment.len() <= MAX_SEGMENT)
}

/// The `index.html` path behind an extensionless page address, if the file
/// exists. Only plain names are considered: no dots, no escapes.
fn page_file(root: &Path, path: &str) -> Option<String> {
    let relative = path.strip_prefix('/')?;
    if relative.is_empty() || relative.ends_with('/') {
        return None;
    }
    let plain = |segment: &str| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !relative.split('/').all(plain) {
        return None;
    }
    root.join(relative)
        .join("index.html")
        .is_file()
        .then(|| format!("{path}/index.html"))
}

/// The 404 of a path that is neither API nor file.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such path")
}

/// Whether the request comes from a browser navigating (it asks for HTML).
fn wants_html(req: &Request) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// A missing file of the site: a short page for a browser that navigated
/// to it (a mistyped or outdated poll address), the JSON error otherwise.
fn missing(html: bool) -> Response {
    if !html {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such path").into_response();
    }
    let page = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
        <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
        <title>Page not found</title></head><body><main><h1>Page not found</h1>\
        <p>There is no page at this address. The poll may have another address, \
        or this relay may not hold it yet.</p><p><a href=\"/\">All polls</a></p>\
        </main></body></html>";
    let mut response = (StatusCode::NOT_FOUND, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn cache_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let html = wants_html(&req);
    let mut response = next.run(req).await;
    // The file service redirects a directory named without its slash; the
    // site's pages are reached without one (see `page_addresses`), so such
    // a directory has no page.
    if response.status() == StatusCode::NOT_FOUND || response.status().is_redirection() {
        return missing(html);
    }
    if response.status().is_server_error() {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the file could not be read",
        )
        .into_response();
    }
    if !response.status().is_success() {
        return response;
    }

    let name = path.rsplit('/').next().unwrap_or("");
    let (policy, worker) = match kind(name) {
        Kind::Worker => (WORKER, true),
        Kind::Hashed => (IMMUTABLE, false),
        Kind::Html => (HTML, false),
        Kind::Other => (OTHER, false),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    // The body depends on Accept-Encoding (precompressed copies included),
    // so shared caches must key on it.
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if worker {
        headers.insert("service-worker-allowed", HeaderValue::from_static("/"));
    }
    response
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Worker,
    Hashed,
    Html,
    Other,
}

fn kind(name: &str) -> Kind {
    if name == "sw.js" || name == "service-worker.js" {
        return Kind::Worker;
    }
    if name.is_empty() || name.ends_with(".html") {
        return Kind::Html;
    }
    if is_hashed(name) {
        return Kind::Hashed;
    }
    Kind::Other
}

/// `stem.<hash>.ext` or `stem-<hash>.ext`, the hash 8 or more hex digits.
fn is_hashed(name: &str) -> bool {
    let Some((rest, _ext)) = name.rsplit_once('.') else {
        return false;
    };
    let hash = rest.rsplit(['.', '-']).next().unwrap_or("");
    hash.len() >= 8 && hash.len() < rest.len() && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_addresses_map_to_index_files_that_exist() {
        let root = std::env::temp_dir().join(format!("votemesh-web-{}", std::process::id()));
        std::fs::create_dir_all(root.join("poll/abc")).unwrap();
        std::fs::write(root.join("poll/abc/index.html"), "<p>").unwrap();
        assert_eq!(
            page_file(&root, "/poll/abc").as_deref(),
            Some("/poll/abc/index.html")
        );
        assert_eq!(page_file(&root, "/poll/abd"), None);
        assert_eq!(page_file(&root, "/poll/abc/"), None);
        assert_eq!(page_file(&root, "/poll/../poll/abc"), None);
        assert_eq!(page_file(&root, "/poll/abc%2e"), None);
        assert_eq!(page_file(&root, "/"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn paths_no_file_can_have_are_told_apart() {
        assert!(could_be_a_file("/poll/abc"));
        assert!(could_be_a_file("/poll/abc/"));
        assert!(could_be_a_file("/"));
        assert!(!could_be_a_file("//poll"));
        assert!(!could_be_a_file("/poll//abc"));
        assert!(could_be_a_file(&format!("/{}", "a".repeat(255))));
        assert!(!could_be_a_file(&format!("/{}", "a".repeat(256))));
        assert!(!could_be_a_file(&"/a".repeat(600)));
    }

    #[test]
    fn names_are_sorted_into_caching_kinds() {
        assert_eq!(kind("app.3f9a1c2e.js"), Kind::Hashed);
        assert_eq!(kind("client-0123456789abcdef_bg.wasm"), Kind::Other);
        assert_eq!(kind("client-0123456789abcdef.wasm"), Kind::Hashed);
        assert_eq!(kind("index.html"), Kind::Html);
        assert_eq!(kind(""), Kind::Html);
        assert_eq!(kind("sw.js"), Kind::Worker);
        assert_eq!(kind("deadbeef.js"), Kind::Other);
        assert_eq!(kind("style.css"), Kind::Other);
    }
}
