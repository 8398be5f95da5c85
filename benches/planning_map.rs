//! Planning end to end on a GENERATED district, as the API runs it minus
//! the HTTP and the index read: 1,000,000 population cells (a jittered
//! 100 m grid over 100 km × 100 km at Linyi's latitude), 60 existing
//! shelters, 10,000 candidate sites, k = 20 — coverage of today's
//! shelters, then siting (the radius grid, the instance of the uncovered
//! people, the solver, the after figures). Prints wall time and the
//! process's peak RSS (VmHWM) after each case.
//!
//! Run: `cargo bench --bench planning_map`.

use std::time::{Duration, Instant};

use onemap::{
    planning::{
        coverage::{coverage, Shelter},
        demand::{Demand, PointGrid},
        exclusions::Exclusions,
        siting::{site, Candidate, Siting, World},
        solve::{Exact, Objective},
        standards::{Category, Figures},
    },
    settings::PlanningSettings,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const SIDE: usize = 1_000;
const CELL_DEG_LAT: f64 = 100.0 / 111_320.0;
const CELL_DEG_LON: f64 = 100.0 / (111_320.0 * 0.819); // cos 35°

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn world(rng: &mut ChaCha8Rng) -> World {
    let mut demand = Demand::new();
    for gy in 0..SIDE {
        for gx in 0..SIDE {
            let lon = 118.0 + (gx as f64 + rng.random::<f64>()) * CELL_DEG_LON;
            let lat = 34.6 + (gy as f64 + rng.random::<f64>()) * CELL_DEG_LAT;
            let w = if rng.random_bool(0.2) {
                0.0
            } else {
                rng.random_range(1.0..40.0f64).round()
            };
            demand.push((gy * SIDE + gx) as i64 + 1, [lon, lat], w, None);
        }
    }
    let shelters = (0..60)
        .map(|i| Shelter {
            id: i + 1,
            name: format!("S{i}"),
            category: Category::Fixed,
            point: at(rng),
            recorded_capacity: Some(20_000.0),
            area_m2: None,
            excluded: None,
        })
        .collect();
    World {
        demand,
        shelters,
        exclusions: Exclusions::default(),
    }
}

fn at(rng: &mut ChaCha8Rng) -> [f64; 2] {
    [
        118.0 + rng.random::<f64>() * SIDE as f64 * CELL_DEG_LON,
        34.6 + rng.random::<f64>() * SIDE as f64 * CELL_DEG_LAT,
    ]
}

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let settings = PlanningSettings::default();
    let started = Instant::now();
    let world = world(&mut rng);
    println!(
        "generated {} cells, {} people in {:.2} s; peak RSS {:.0} MB",
        world.demand.len(),
        world.demand.total(),
        started.elapsed().as_secs_f64(),
        peak_rss_mb()
    );
    let candidates: Vec<Candidate> = (0..10_000)
        .map(|i| Candidate {
            id: json!(i + 1),
            name: None,
            point: at(&mut rng),
            capacity: Some(5_000.0),
        })
        .collect();
    println!(
        "| case | coverage | siting | covered before → after | optimal / gap | method | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (category, radius, capacity_aware) in [
        (Category::Emergency, 500.0, false),
        (Category::Fixed, 2_000.0, false),
        (Category::Fixed, 2_000.0, true),
    ] {
        let figures = Figures::new(&settings, category, Some(radius), None);
        let t = Instant::now();
        let grid = PointGrid::new(&world.demand.points, radius);
        let c = coverage(
            &settings,
            &world.demand,
            &grid,
            &world.shelters,
            &figures,
            capacity_aware,
            false,
        );
        let cov = t.elapsed();
        drop(grid);
        let q = Siting {
            k: 20,
            figures,
            keep: Vec::new(),
            exclude: Vec::new(),
            capacity_aware,
            objective: Objective::Coverage,
            exact: Exact::Auto,
            time_limit: Duration::from_secs(10),
            include_excluded: false,
        };
        let t = Instant::now();
        let a = site(&settings, &world, &q, candidates.clone()).expect("a siting answer");
        let run = t.elapsed();
        println!(
            "| {} {radius} m{} | {:.2} s | {:.2} s | {:.0} → {:.0} | {} / {:.4} | {} | {:.0} MB |",
            category.as_str(),
            if capacity_aware {
                ", capacity-aware"
            } else {
                ""
            },
            cov.as_secs_f64(),
            run.as_secs_f64(),
            c.covered,
            a.after.covered,
            a.solution.optimal,
            a.solution.gap,
            a.solution.method,
            peak_rss_mb()
        );
    }
}
