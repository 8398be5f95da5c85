//! Tile building from the in-memory index, beside a baseline measured in the
//! same run: serialising the same features of the tile to GeoJSON with
//! serde_json (the cheapest way to ship them at all).
//!
//! Run: `cargo bench --bench tiles`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use onemap::{
    crs::Crs,
    index::{tile_bounds, SpatialIndex},
    layers::{Catalog, Feature},
    store::{gpkg::GpkgStore, Store},
    tiles::{build::build_tile, tile_of},
};
use serde_json::json;

const POINTS: usize = 200_000;

fn tiles(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = Catalog::builtin().expect("catalog");
    let index: Arc<SpatialIndex> = rt.block_on(async {
        let store = GpkgStore::open(&format!("sqlite://{}", dir.path().join("t.gpkg").display()))
            .await
            .expect("store");
        store.prepare(catalog.layers()).await.expect("prepare");
        onemap::demo::load_if_empty(&store, &catalog)
            .await
            .expect("demo");
        let layer = catalog.get("cameras").expect("layer");
        let mut state = 42u64;
        let mut next = move || {
            // xorshift: GENERATED points, deterministic.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 1_000_000) as f64 / 1_000_000.0
        };
        let points: Vec<Feature> = (0..POINTS)
            .map(|i| {
                Feature::new(
                    geo::point! { x: 118.15 + 0.25 * next(), y: 34.8 + 0.22 * next() },
                    json!({"name": format!("p{i}"), "channels": 4})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .collect();
        store.insert(layer, &points, "bench").await.expect("insert");
        Arc::new(SpatialIndex::load(&store, &catalog).await.expect("index"))
    });
    let mut group = c.benchmark_group("tile");
    group.sample_size(20);
    for (name, layers, z) in [
        ("points_200k_z10", vec!["cameras"], 10u8),
        ("points_200k_z14", vec!["cameras"], 14),
        ("districts_z10", vec!["districts"], 10),
        (
            "onemap_z12",
            catalog.layers().iter().map(|l| l.name.as_str()).collect(),
            12,
        ),
    ] {
        let (x, y) = tile_of(118.28, 34.95, z);
        let defs: Vec<_> = layers
            .iter()
            .filter_map(|l| catalog.get(l))
            .map(|l| l.as_ref())
            .collect();
        group.bench_function(
            format!("{name}/baseline_geojson_of_the_same_features"),
            |b| {
                b.iter(|| {
                    let (min, max) = tile_bounds(z, x, y);
                    let mut out = Vec::new();
                    for l in &defs {
                        for e in index.query(&l.name, min, max) {
                            out.extend(
                                serde_json::to_vec(&e.feature.to_geojson()).unwrap_or_default(),
                            );
                        }
                    }
                    out.len()
                })
            },
        );
        group.bench_function(format!("{name}/onemap_mvt"), |b| {
            b.iter(|| build_tile(&index, &defs, (z, x, y), &|_| None, Crs::Wgs84).map(|t| t.len()))
        });
    }
    group.finish();
}

criterion_group!(benches, tiles);
criterion_main!(benches);
