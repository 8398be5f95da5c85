//! The dispatcher's question, "the 5 nearest standby water-rescue teams",
//! among 1,000,000 GENERATED teams, beside a baseline measured in the same
//! run: a scan of the same features that keeps every team passing the same
//! filters, computes its haversine distance and ETA, and keeps the best 5.
//!
//! Before timing, both are run on the same query points and must give the
//! same ids; the per-query p50/p99 of each is printed too (criterion's
//! figure is a mean over a cycle of query points).
//!
//! Run: `cargo bench --bench dispatch`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{criterion_group, criterion_main, Criterion};
use onemap::{
    dispatch::{
        nearest::{nearest, Filters},
        text,
        travel::Travel,
    },
    index::{haversine_m, SpatialIndex},
    layers::{Catalog, Feature, LayerDef},
    settings::DispatchSettings,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const TEAMS: usize = 1_000_000;
const LIMIT: usize = 5;
/// Query points cycled through by the timed loops.
const QUERIES: usize = 1_000;
/// Query points checked against the scan (and timed one by one).
const CHECKED: usize = 40;
const LAYER: &str = "rescue_teams";

fn values(layer: &LayerDef, prop: &str) -> Vec<String> {
    layer
        .property(prop)
        .and_then(|p| p.values.clone())
        .unwrap_or_default()
}

/// GENERATED teams over the Linyi district: a random type and status, each
/// catalog capability with probability 0.2.
fn teams(layer: &LayerDef, rng: &mut ChaCha8Rng) -> Vec<Feature> {
    let (types, caps, statuses) = (
        values(layer, "team_type"),
        values(layer, "capabilities"),
        values(layer, "status"),
    );
    (0..TEAMS)
        .map(|i| {
            let c: Vec<&String> = caps.iter().filter(|_| rng.random_bool(0.2)).collect();
            let mut f = Feature::new(
                geo::Point::new(rng.random_range(117.8..118.7), rng.random_range(34.6..35.4)),
                json!({
                    "name": format!("队{i}"),
                    "team_type": types[rng.random_range(0..types.len())],
                    "capabilities": c,
                    "status": statuses[rng.random_range(0..statuses.len())],
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            );
            f.id = Some(i as i64 + 1);
            f
        })
        .collect()
}

/// The baseline: every feature, the same filters, haversine + ETA, the best
/// `LIMIT` kept in a small sorted buffer (ranked as the walk ranks: ETA,
/// then distance, then id).
fn scan(
    all: &[Arc<Feature>],
    travel: &Travel<'_>,
    p: [f64; 2],
    keep: impl Fn(&Feature) -> bool,
) -> Vec<i64> {
    let mut best: Vec<(f64, f64, i64)> = Vec::with_capacity(LIMIT + 1);
    for f in all {
        if !keep(f) {
            continue;
        }
        let geo::Geometry::Point(q) = f.geometry else {
            continue;
        };
        let d = haversine_m(p, [q.x(), q.y()]);
        let r = (
            travel.eta_min(d, text(f, "team_type")),
            d,
            f.id.unwrap_or(0),
        );
        if best.len() == LIMIT && best.last().is_some_and(|w| *w <= r) {
            continue;
        }
        let at = best.partition_point(|b| *b <= r);
        best.insert(at, r);
        best.truncate(LIMIT);
    }
    best.into_iter().map(|(_, _, id)| id).collect()
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn dispatch(c: &mut Criterion) {
    let catalog = Catalog::builtin().expect("catalog");
    let layer = Arc::clone(catalog.get(LAYER).expect("rescue_teams"));
    let mut rng = ChaCha8Rng::seed_from_u64(20261201);
    let index = SpatialIndex::from_features(&layer, teams(&layer, &mut rng));
    assert_eq!(index.len(LAYER), TEAMS);
    // The scan reads the very features the index holds.
    let all: Vec<Arc<Feature>> =
        index.each(LAYER, |it| it.map(|e| Arc::new(e.feature())).collect());
    let settings = DispatchSettings::default();
    let travel = Travel::new(&settings);
    let filters = Filters {
        capability: Some("water_rescue".into()),
        status: Some("standby".into()),
        ..Filters::default()
    };
    let keep = |f: &Feature| filters.keep(&layer, f);
    let walk = |p: [f64; 2]| -> Vec<i64> {
        nearest(&index, &travel, LAYER, p, LIMIT, f64::INFINITY, keep)
            .iter()
            .map(|f| f.id)
            .collect()
    };
    let points: Vec<[f64; 2]> = (0..QUERIES)
        .map(|_| [rng.random_range(117.8..118.7), rng.random_range(34.6..35.4)])
        .collect();

    // Once, outside the timing: the same ids, and each one's own time.
    let (mut walk_times, mut scan_times) = (Vec::new(), Vec::new());
    for p in &points[..CHECKED] {
        let t = Instant::now();
        let w = walk(*p);
        walk_times.push(t.elapsed());
        let t = Instant::now();
        let s = scan(&all, &travel, *p, keep);
        scan_times.push(t.elapsed());
        assert_eq!(w.len(), LIMIT, "{p:?}");
        assert_eq!(w, s, "walk and scan disagree at {p:?}");
    }
    for p in &points[CHECKED..] {
        let t = Instant::now();
        std::hint::black_box(walk(*p));
        walk_times.push(t.elapsed());
    }
    walk_times.sort();
    scan_times.sort();
    eprintln!(
        "same ids from walk and scan at {CHECKED} points; per query: walk p50 {:?} p99 {:?} \
         ({QUERIES} points), scan p50 {:?} p99 {:?} ({CHECKED} points)",
        percentile(&walk_times, 0.5),
        percentile(&walk_times, 0.99),
        percentile(&scan_times, 0.5),
        percentile(&scan_times, 0.99),
    );

    let mut group = c.benchmark_group("nearest_5_standby_water_rescue_of_1m");
    let mut i = 0;
    group.bench_function("onemap_walk", |b| {
        b.iter(|| {
            i = (i + 1) % QUERIES;
            walk(points[i])
        })
    });
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    let mut i = 0;
    group.bench_function("baseline_scan_of_every_team", |b| {
        b.iter(|| {
            i = (i + 1) % QUERIES;
            scan(&all, &travel, points[i], keep)
        })
    });
    // Where the scan's time goes: the same scan with no filter (the 5
    // nearest teams of any kind), so haversine + ETA for every feature.
    let mut i = 0;
    group.bench_function("scan_of_every_team_without_filters", |b| {
        b.iter(|| {
            i = (i + 1) % QUERIES;
            scan(&all, &travel, points[i], |_| true)
        })
    });
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
