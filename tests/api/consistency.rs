//! The store, the index (tiles, metrics) and the event stream agree after
//! every write, also one the request timeout cut off, and a retried import
//! with its `Idempotency-Key` is stored once.

use std::time::Duration;

use onemap::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};

fn teams(n: usize) -> String {
    (0..n)
        .map(|i| {
            let x = 118.2 + (i % 100) as f64 * 0.001;
            let y = 34.9 + (i / 100) as f64 * 0.001;
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
                   "properties": {"name": format!("t{i}"), "team_type": "volunteer", "status": "standby"}})
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The index's count of a layer, as `/metrics` reports it (asked again
/// when the short request timeout of a test cuts the request off).
async fn indexed(app: &TestApp, layer: &str) -> u64 {
    let prefix = format!("onemap_layer_features{{layer=\"{layer}\"}} ");
    for _ in 0..50 {
        let r = app.get("/metrics").await;
        if r.status() == 200 {
            let text = r.text().await.expect("metrics");
            return text
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("no feature count of {layer} in the metrics:\n{text}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/metrics did not answer");
}

/// The store's count of a layer, read from the store itself.
async fn stored(app: &TestApp, layer: &str) -> u64 {
    let layer = app.catalog.get(layer).expect("layer");
    app.store
        .count(layer, &onemap::store::Query::default())
        .await
        .expect("count")
}

#[tokio::test]
async fn an_import_cut_by_the_timeout_still_lands_whole_and_a_retry_is_a_no_op() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, false, |s| {
        s.request_timeout = Duration::from_millis(300);
    })
    .await;
    let token = app.token(Role::Dispatcher).await;
    let body = teams(20_000);
    let import = |body: String| {
        app.client
            .post(app.url("/api/import/rescue_teams"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", "storm-night-import-1")
            .body(body)
            .send()
    };
    let first = import(body.clone()).await.expect("answers");
    assert!(
        first.status() == 408 || first.status() == 201,
        "{}",
        first.status()
    );
    if first.status() == 408 {
        assert_eq!(first.headers()["content-type"], "application/problem+json");
    }
    // Whatever the client heard, the import finishes whole, and the index
    // and the store agree on it.
    // (Up to 30 s: on a loaded 2-core CI machine the 20,000-row import
    // alone has taken over 10.)
    let mut agreed = false;
    for _ in 0..300 {
        if stored(&app, "rescue_teams").await == 20_000
            && indexed(&app, "rescue_teams").await == 20_000
        {
            agreed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        agreed,
        "store and index both hold the 20,000 imported features"
    );

    // The client retries with the same key, here to a restarted server
    // (the key lives in the store, not in a process): nothing is written
    // twice.
    let dir = app.stop().await;
    let app = crate::helpers::spawn_app_in(dir, false).await;
    let retry = app
        .client
        .post(app.url("/api/import/rescue_teams"))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .header("idempotency-key", "storm-night-import-1")
        .body(body.clone())
        .send()
        .await
        .expect("answers");
    assert_eq!(retry.status(), 200);
    let report: Value = retry.json().await.expect("json");
    assert_eq!(report["replayed"], true, "{report}");
    assert_eq!(report["imported"], 20_000, "{report}");
    assert_eq!(stored(&app, "rescue_teams").await, 20_000);
    assert_eq!(indexed(&app, "rescue_teams").await, 20_000);

    // The log holds the import once, and the event stream replays it.
    let admin = app.token(Role::Admin).await;
    let audit = app
        .get_json_as("/api/audit?layer=rescue_teams", &admin)
        .await;
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        entries.len(),
        1,
        "one change for the import: {}",
        entries.len()
    );
    assert_eq!(entries[0]["ids"].as_array().map(Vec::len), Some(20_000));
    assert_eq!(report["seq"], entries[0]["seq"]);

    // A key used on another layer is a conflict, not a silent replay.
    let r = app
        .client
        .post(app.url("/api/import/supply_depots"))
        .bearer_auth(&admin)
        .header("content-type", "application/x-ndjson")
        .header("idempotency-key", "storm-night-import-1")
        .body(
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.3, 35.0]},
                   "properties": {"name": "罗庄区物资库", "level": "district"}})
            .to_string(),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.text().await.unwrap_or_default().contains("rescue_teams"));
}

#[tokio::test]
async fn reads_in_chunks_give_each_feature_once_in_order() {
    let app = crate::helpers::spawn_app(false).await;
    let layer = app.catalog.get("rescue_teams").expect("layer").clone();
    // More than two chunks of the store's reader, with headcounts that tie.
    let features: Vec<onemap::layers::Feature> = (0..1234)
        .map(|i| {
            crate::helpers::feature(
                geo::point! { x: 118.2 + (i % 50) as f64 * 0.002, y: 34.9 + (i / 50) as f64 * 0.002 },
                json!({"name": format!("t{i}"), "team_type": "volunteer", "status": "standby",
                       "headcount": (i * 7) % 13}),
            )
        })
        .collect();
    app.insert(&layer.name, &features).await;
    let all = app
        .store
        .features(&layer, &onemap::store::Query::default())
        .await
        .expect("all");
    assert_eq!(all.len(), 1234);
    let ids = |fs: &[onemap::layers::Feature]| fs.iter().filter_map(|f| f.id).collect::<Vec<_>>();
    // By id: every feature once, in id order.
    let by_id = ids(&all);
    assert!(by_id.windows(2).all(|w| w[0] < w[1]));
    // Sorted by headcount (descending, ties by id), offset and limit across
    // chunk boundaries, with and without an exact spatial test.
    let mut expected = all.clone();
    expected.sort_by_key(|f| (-(f.properties["headcount"].as_i64().unwrap_or(0)), f.id));
    let page = app
        .get_json("/ogc/collections/rescue_teams/items?sortby=-headcount&offset=300&limit=900")
        .await;
    let got: Vec<i64> = page["features"]
        .as_array()
        .map(|fs| fs.iter().filter_map(|f| f["id"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(got, ids(&expected[300..1200]));
    let page = app
        .get_json("/ogc/collections/rescue_teams/items?bbox=118.19,34.89,118.31,35.1&offset=450&limit=700")
        .await;
    let got: Vec<i64> = page["features"]
        .as_array()
        .map(|fs| fs.iter().filter_map(|f| f["id"].as_i64()).collect())
        .unwrap_or_default();
    let inside: Vec<i64> = all
        .iter()
        .filter(|f| {
            let geo::Geometry::Point(p) = &f.geometry else {
                return false;
            };
            p.x() <= 118.31 && p.y() <= 35.1
        })
        .filter_map(|f| f.id)
        .collect();
    assert_eq!(got, inside[450..(450 + 700).min(inside.len())].to_vec());
}
