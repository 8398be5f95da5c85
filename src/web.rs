//! The web map's static files, served from the `web/` folder.

use std::path::Path;

use axum::Router;
use tower_http::services::ServeDir;

use crate::AppState;

/// Everything no other route claims is a file of the web map; `/` is its
/// `index.html`.
pub fn router(web_dir: &Path) -> Router<AppState> {
    Router::new().fallback_service(ServeDir::new(web_dir).append_index_html_on_directories(true))
}
