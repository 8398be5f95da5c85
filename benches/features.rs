//! Benchmarks of the feature store and the OGC API items route, each beside
//! a baseline measured in the same run (the machine is noisy; ratios hold):
//!
//! - importing 100,000 points through the store (validation, GeoPackage
//!   blobs, R-tree, change log, one transaction) against raw 500-row
//!   INSERTs of the same blobs into a bare SQLite table;
//! - serving 10,000 features as streamed GeoJSON against the same server
//!   sending a static file of the same bytes.
//!
//! Run: `cargo bench --bench features`. Figures go in benches/README.md.

use std::{sync::Arc, time::Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use geozero::{CoordDimensions, ToWkb};
use onemap::{
    layers::{Catalog, Feature},
    settings::Settings,
    store::{gpkg::GpkgStore, Store},
    App,
};
use serde_json::json;

const IMPORT_N: usize = 100_000;
const PAGE_N: usize = 10_000;

fn teams(n: usize) -> Vec<Feature> {
    (0..n)
        .map(|i| {
            let x = 118.1 + (i % 1000) as f64 * 0.0003;
            let y = 34.76 + (i / 1000) as f64 * 0.0029;
            Feature::new(
                geo::point! { x: x, y: y },
                json!({"name": format!("队伍{i}"), "team_type": "volunteer", "status": "standby", "headcount": (i % 50) as i64,
                       "capabilities": ["evacuation"]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            )
        })
        .collect()
}

fn import(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let catalog = Catalog::builtin().expect("catalog");
    let layer = catalog.get("rescue_teams").expect("layer").clone();
    let features = teams(IMPORT_N);
    let mut group = c.benchmark_group("import_100k_points");
    group.sample_size(10);

    group.bench_function("baseline_raw_sqlite_inserts", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let features = features.clone();
            async move {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let url = format!(
                        "sqlite://{}?mode=rwc",
                        dir.path().join("raw.sqlite").display()
                    );
                    let pool = sqlx::SqlitePool::connect(&url).await.expect("pool");
                    sqlx::query("CREATE TABLE t (fid INTEGER PRIMARY KEY, geom BLOB, name TEXT)")
                        .execute(&pool)
                        .await
                        .expect("table");
                    let start = Instant::now();
                    let mut tx = pool.begin().await.expect("tx");
                    // The fastest plain way: 500-row INSERTs, as the store batches.
                    for chunk in features.chunks(500) {
                        let sql = format!(
                            "INSERT INTO t (geom, name) VALUES {}",
                            vec!["(?, ?)"; chunk.len()].join(", ")
                        );
                        let mut q = sqlx::query(&sql);
                        for f in chunk {
                            let blob = f
                                .geometry
                                .to_gpkg_wkb(CoordDimensions::xy(), Some(4326), vec![])
                                .expect("wkb");
                            q = q.bind(blob).bind(f.name().map(str::to_owned));
                        }
                        q.execute(&mut *tx).await.expect("insert");
                    }
                    tx.commit().await.expect("commit");
                    total += start.elapsed();
                    pool.close().await;
                }
                total
            }
        })
    });

    group.bench_function("onemap_store_insert", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (features, layer) = (features.clone(), layer.clone());
            async move {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = GpkgStore::open(&format!(
                        "sqlite://{}",
                        dir.path().join("s.gpkg").display()
                    ))
                    .await
                    .expect("store");
                    store
                        .prepare(std::slice::from_ref(&layer))
                        .await
                        .expect("prepare");
                    let start = Instant::now();
                    store
                        .insert(&layer, &features, "bench")
                        .await
                        .expect("insert");
                    total += start.elapsed();
                    store.close().await;
                }
                total
            }
        })
    });
    group.finish();
}

fn items(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let web = dir.path().join("web");
    std::fs::create_dir_all(&web).expect("web dir");
    let (base, client) = rt.block_on(async {
        let mut settings =
            Settings::for_database(format!("sqlite://{}", dir.path().join("b.gpkg").display()));
        settings.web_dir = web.clone();
        let app = App::build(settings).await.expect("server");
        let layer = app
            .state()
            .catalog
            .get("rescue_teams")
            .expect("layer")
            .clone();
        app.state()
            .store
            .insert(&layer, &teams(PAGE_N), "bench")
            .await
            .expect("insert");
        let base = format!("http://{}", app.local_addr());
        tokio::spawn(app.serve_until(std::future::pending()));
        (base, reqwest::Client::new())
    });
    let url = format!("{base}/ogc/collections/rescue_teams/items?limit={PAGE_N}");
    let body = rt.block_on(async {
        client
            .get(&url)
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body")
    });
    std::fs::write(web.join("same-size.json"), &body).expect("static copy");
    let static_url = format!("{base}/same-size.json");
    println!("page of {PAGE_N} features: {} bytes", body.len());

    let mut group = c.benchmark_group("items_10k_features");
    group.sample_size(20);
    let client = Arc::new(client);
    group.bench_function("baseline_static_file_same_size", |b| {
        b.to_async(&rt).iter(|| {
            let (client, u) = (client.clone(), static_url.clone());
            async move {
                client
                    .get(u)
                    .send()
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("body")
                    .len()
            }
        })
    });
    group.bench_function("onemap_streamed_geojson", |b| {
        b.to_async(&rt).iter(|| {
            let (client, u) = (client.clone(), url.clone());
            async move {
                client
                    .get(u)
                    .send()
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("body")
                    .len()
            }
        })
    });
    group.finish();
}

criterion_group!(benches, import, items);
criterion_main!(benches);
