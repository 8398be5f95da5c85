//! `onemap copy` round trip: a GeoPackage one map, with edits, a deleted
//! feature, tokens, an idempotent import and a scenario, copied into the
//! suite's store (PostGIS in its PostGIS pass) and back into a new
//! GeoPackage is the same: features with their ids, properties and
//! geometries, the change log with its seqs and images, tokens with their
//! digests, keys and scenarios; ids continue after the deleted one; and a
//! target that holds data is refused untouched.

use std::process::Output;

use onemap::{
    auth::Role,
    store::{self, ImportSource, Query},
};
use serde_json::json;

use crate::helpers::{database_url, feature, spawn_app_with};

fn onemap(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_onemap"))
        .args(args)
        .env_remove("ONEMAP_DATABASE")
        .env_remove("DATABASE_URL")
        .output()
        .expect("onemap runs")
}

/// Everything a store holds, for comparing two.
async fn contents(
    url: &str,
    catalog: &onemap::layers::Catalog,
) -> (
    Vec<Vec<onemap::layers::Feature>>,
    Vec<store::AuditEntry>,
    store::Records,
    i64,
) {
    let s = store::open(url).await.expect("opens");
    let mut layers = Vec::new();
    for layer in catalog.layers() {
        layers.push(
            s.features(layer, &Query::default())
                .await
                .expect("features"),
        );
    }
    let log = s.log_page(0, 1_000_000).await.expect("log");
    let records = s.records().await.expect("records");
    let seq = s.last_seq().await.expect("seq");
    s.close().await;
    (layers, log, records, seq)
}

#[tokio::test]
async fn a_copy_to_the_store_and_back_to_a_geopackage_is_lossless() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = format!("sqlite://{}", dir.path().join("original.gpkg").display());
    let url = original.clone();
    let app = spawn_app_with(tempfile::tempdir().expect("tempdir"), true, move |s| {
        s.database = url;
    })
    .await;
    let token = app.token(Role::Admin).await;
    let r = app
        .client
        .patch(app.url("/ogc/collections/rescue_teams/items/2"))
        .bearer_auth(&token)
        .header("content-type", "application/merge-patch+json")
        .body(json!({"properties": {"status": "dispatched", "headcount": 31}}).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let shelters = app.catalog.get("shelters").expect("shelters").clone();
    let highest = app
        .store
        .features(&shelters, &Query::default())
        .await
        .expect("shelters")
        .iter()
        .filter_map(|f| f.id)
        .max()
        .expect("demo shelters");
    let r = app
        .client
        .delete(app.url(&format!("/ogc/collections/shelters/items/{highest}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 204);
    let (imported, _) = app
        .store
        .import(
            &shelters,
            &[feature(
                geo::Point::new(118.31, 35.02),
                json!({"name": "复制测试", "kind": "park", "category": "emergency", "capacity": 800}),
            )],
            "importer",
            Some("copy-key-1"),
            &ImportSource {
                digest: "sha256:00".into(),
                format: "geojson".into(),
                file: Some("x.geojson".into()),
            },
        )
        .await
        .expect("imported");
    // Delete the imported one too: the highest id ever is now only in the log.
    let top = imported.ids[0];
    app.store
        .delete(&shelters, top, "test", None)
        .await
        .expect("deleted")
        .expect("there");
    app.store
        .save_scenario(
            "东部补点",
            "planner",
            &json!({"k": 3, "radius_m": 1000.5}),
            &json!({"covered": 0.87, "sites": [[118.3, 35.0]]}),
        )
        .await
        .expect("a scenario");
    let revoked = app.token(Role::Viewer).await;
    let _ = revoked;
    let names: Vec<String> = app
        .store
        .tokens()
        .await
        .expect("tokens")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(app.store.revoke_token(&names[1]).await.expect("revoked"));
    let catalog = app.catalog.clone();
    app.stop().await;

    let middle_dir = tempfile::tempdir().expect("tempdir");
    let middle = database_url(&middle_dir).await;
    let back = format!("sqlite://{}", dir.path().join("back.gpkg").display());
    for (from, to) in [(&original, &middle), (&middle, &back)] {
        let o = onemap(&["copy", "--from", from, "--to", to]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(err.contains("copied"), "{err}");
    }
    if middle.starts_with("postgres") {
        // The copy laid each PostGIS table out in its spatial index's order.
        let options: sqlx::postgres::PgConnectOptions = middle.parse().expect("the URL");
        let mut conn = sqlx::ConnectOptions::connect(&options)
            .await
            .expect("a connection");
        let mut clustered: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
             WHERE i.indisclustered AND c.relnamespace = current_schema()::regnamespace",
        )
        .fetch_all(&mut conn)
        .await
        .expect("the catalog");
        clustered.sort();
        let layers: Vec<String> = catalog.layers().iter().map(|l| l.name.clone()).collect();
        let mut sorted = layers.clone();
        sorted.sort();
        assert_eq!(clustered, sorted, "every layer table clustered");
    }

    let was = contents(&original, &catalog).await;
    assert!(
        was.0.iter().map(Vec::len).sum::<usize>() > 1_000,
        "the demo's features"
    );
    assert!(was.1.len() >= 4);
    for copy in [&middle, &back] {
        let now = contents(copy, &catalog).await;
        assert_eq!(
            now.0, was.0,
            "features with their ids, properties and geometries"
        );
        assert_eq!(now.1, was.1, "the log with its seqs and images");
        assert_eq!(now.2, was.2, "tokens, keys and scenarios");
        assert_eq!(now.3, was.3, "the last seq");
    }

    // Ids and seqs continue after the copied ones, the deleted included.
    let mut next = Vec::new();
    for url in [&original, &back, &middle] {
        let s = store::open(url).await.expect("opens");
        s.prepare(catalog.layers()).await.expect("prepared");
        let w = s
            .insert(
                &shelters,
                &[feature(
                    geo::Point::new(118.32, 35.01),
                    json!({"name": "之后", "kind": "square", "category": "fixed"}),
                )],
                "test",
            )
            .await
            .expect("stored");
        next.push((w.ids[0], w.change.seq));
        // The key still answers with the first write.
        let (again, repeated) = s
            .import(
                &shelters,
                &[],
                "importer",
                Some("copy-key-1"),
                &ImportSource {
                    digest: "sha256:00".into(),
                    format: "geojson".into(),
                    file: None,
                },
            )
            .await
            .expect("answered");
        assert!(repeated);
        assert_eq!(again.ids, vec![top]);
        s.close().await;
    }
    assert!(next[0].0 > top, "{next:?}");
    assert!(next.iter().all(|n| *n == next[0]), "{next:?}");

    // A target with data is refused, and left as it was.
    let before = contents(&back, &catalog).await;
    let o = onemap(&["copy", "--from", &original, "--to", &back]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(contents(&back, &catalog).await, before);
}
