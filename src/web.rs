//! The web map's static files, served from the `web/` folder.
//!
//! Only what the pages need is served: the pages' own files and, of the npm
//! packages, MapLibre's `dist` folder. The rest of `node_modules` (the
//! browser-test tool among it), the test folder and npm's manifests are
//! not, and no path may lead out of the folder, through `..` or a symlink.

use std::path::{Component, Path, PathBuf};

use axum::{
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use tower_http::services::ServeDir;

use crate::{error::AppError, AppState};

/// The only part of `node_modules` the pages load.
const VENDOR: &[&str] = &["node_modules/maplibre-gl/dist/"];
/// Files and folders of `web/` that are the project's, not the pages'.
const PRIVATE: &[&str] = &["node_modules", "tests", "package.json", "package-lock.json"];

/// Everything no other route claims is a file of the web map; `/` is its
/// `index.html`.
pub fn router(web_dir: &Path) -> Router<AppState> {
    let root = WebRoot(web_dir.to_owned());
    Router::new().fallback_service(
        Router::new()
            .fallback_service(ServeDir::new(web_dir).append_index_html_on_directories(true))
            .layer(middleware::from_fn_with_state(root, only_public)),
    )
}

#[derive(Clone)]
struct WebRoot(PathBuf);

async fn only_public(State(root): State<WebRoot>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let root = root.0.clone();
    let allowed = tokio::task::spawn_blocking(move || is_public(&root, &path))
        .await
        .unwrap_or(false);
    if !allowed {
        return AppError::NotFound {
            what: "a file at this path".into(),
        }
        .into_response();
    }
    next.run(request).await
}

/// Whether the URL path names a file the pages may load: decoded, without
/// `..`, not private, and (symlinks resolved) still inside the web folder.
/// A path that does not exist is let through for ServeDir to answer 404.
fn is_public(root: &Path, url_path: &str) -> bool {
    let Ok(decoded) = percent_decode(url_path.trim_start_matches('/')) else {
        return false;
    };
    let relative = Path::new(&decoded);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return false;
    }
    let text = decoded.replace('\\', "/");
    let first = text.split('/').next().unwrap_or_default();
    let vendor = VENDOR.iter().any(|v| text.starts_with(v));
    if !vendor && (PRIVATE.contains(&first) || first.starts_with('.')) {
        return false;
    }
    let (Ok(root), target) = (root.canonicalize(), root.join(relative)) else {
        return false;
    };
    match target.canonicalize() {
        Ok(real) => real.starts_with(&root),
        Err(_) => !target.exists() && target.symlink_metadata().is_err(),
    }
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes: Vec<u8> = percent_bytes(s.as_bytes())?;
    String::from_utf8(bytes).map_err(|_| ())
}

fn percent_bytes(s: &[u8]) -> Result<Vec<u8>, ()> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            let text = std::str::from_utf8(hex).map_err(|_| ())?;
            out.push(u8::from_str_radix(text, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pages_files_are_public() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(root.join("index.html"), "<html>").expect("write");
        std::fs::write(root.join("package.json"), "{}").expect("write");
        std::fs::create_dir_all(root.join("node_modules/maplibre-gl/dist")).expect("mkdir");
        std::fs::create_dir_all(root.join("node_modules/playwright-core")).expect("mkdir");
        std::fs::write(
            root.join("node_modules/maplibre-gl/dist/maplibre-gl.js"),
            "x",
        )
        .expect("write");
        std::fs::write(root.join("node_modules/playwright-core/index.js"), "x").expect("write");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), "s").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("link"))
            .expect("symlink");

        assert!(is_public(root, "/"));
        assert!(is_public(root, "/index.html"));
        assert!(is_public(
            root,
            "/node_modules/maplibre-gl/dist/maplibre-gl.js"
        ));
        assert!(is_public(root, "/missing.js"), "ServeDir answers the 404");
        assert!(!is_public(root, "/node_modules/playwright-core/index.js"));
        assert!(!is_public(root, "/package.json"));
        assert!(!is_public(root, "/link"), "a symlink out of the folder");
        assert!(!is_public(root, "/%2e%2e/secret"));
        assert!(!is_public(
            root,
            "/node_modules/maplibre-gl/dist/../../playwright-core/index.js"
        ));
        assert!(!is_public(root, "/bad%zz"));
    }
}
