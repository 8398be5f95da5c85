//! Health, metrics, problem documents for routing errors, graceful shutdown.

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_answers_ok_while_the_store_answers() {
    let app = spawn_app(false).await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn a_store_that_cannot_be_reached_is_a_503_problem_not_a_500() {
    let app = spawn_app(true).await;
    // What a PostgreSQL restart (or a closing GeoPackage) looks like to a
    // request: the store's connections are gone.
    app.store.close().await;
    for path in ["/ogc/collections/rescue_teams/items/1", "/healthz"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 503, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_features_by_layer() {
    let app = spawn_app(true).await;
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    app.get("/no/such/page").await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    assert!(
        text.contains(
            r#"onemap_http_requests_total{method="GET",route="/healthz",status="200"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"status="404""#), "{text}");
    assert!(
        text.contains("onemap_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(r#"onemap_layer_features{layer="enterprises"} 165"#),
        "{text}"
    );
    assert!(
        text.contains(r#"onemap_layer_features{layer="seismic_stations"} 2"#),
        "{text}"
    );
}

/// The value of an unlabelled metric in the exposition text.
fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[tokio::test]
async fn metrics_show_tile_builds_and_cache_bytes() {
    let app = spawn_app(true).await;
    for _ in 0..3 {
        assert_eq!(app.get("/tiles/onemap/0/0/0.mvt").await.status(), 200);
    }
    assert_eq!(app.get("/tiles/districts/0/0/0.mvt").await.status(), 200);
    let text = app.get("/metrics").await.text().await.expect("text");
    assert_eq!(
        value(&text, "onemap_tile_builds_total"),
        2.0,
        "two keys built"
    );
    // Hits are the tile requests less the builds: 4 - 2.
    assert!(
        text.contains(
            r#"onemap_http_requests_total{method="GET",route="/tiles/{layers}/{z}/{x}/{y}",status="200"} 4"#
        ),
        "{text}"
    );
    assert_eq!(
        value(&text, "onemap_tile_build_duration_seconds_count"),
        2.0
    );
    assert_eq!(value(&text, "onemap_tile_cache_entries"), 2.0);
    assert!(value(&text, "onemap_tile_cache_bytes") > 1000.0, "{text}");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problem_documents() {
    let app = spawn_app(false).await;
    let r = app.get("/no/such/page").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], 404);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));

    let r = app
        .client
        .delete(app.url("/healthz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_web_map_is_served_at_the_root() {
    let app = spawn_app(false).await;
    let r = app.get("/").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("html").contains("onemap"));
}

#[tokio::test]
async fn the_dispatch_console_is_served_with_and_without_the_slash() {
    let app = spawn_app(false).await;
    // reqwest follows the 307 that `/dispatch` answers.
    for path in ["/dispatch", "/dispatch/"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.url().path(), "/dispatch/", "{path}");
        assert!(r.text().await.expect("html").contains("/dispatch/view.js"));
    }
}

#[tokio::test]
async fn graceful_shutdown_leaves_a_complete_single_file() {
    let app = spawn_app(true).await;
    let db = app.db_path.clone();
    let dir = app.stop().await;
    let wal = db.with_extension("gpkg-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) == 0,
        "the write-ahead log is folded back on shutdown"
    );
    assert!(std::fs::metadata(&db).expect("the GeoPackage exists").len() > 100_000);
    drop(dir);
}
