//! The location solvers on GENERATED instances:
//!
//! (a) 1,000,000 demand points (a jittered 100 m grid over 100 km ×
//!     100 km) × 10,000 random candidates, k = 20, heuristic only, reach
//!     within 500 m and within 2 km, costs = distances: time and peak RSS
//!     (VmHWM);
//! (b) the exact MILP's time against instance size (k = 10);
//! (c) the heuristic's value against the proven optimum where both run.
//!
//! The figures are one-shot wall times printed as a table (a solve of (a)
//! takes seconds: criterion's sampling would take minutes); criterion then
//! times the smallest exact and heuristic solves for a median.
//!
//! Run: `cargo bench --bench planning`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use onemap::planning::solve::{solve, Exact, Instance, Objective, Options, Solution};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Grid cell, metres.
const CELL: f64 = 100.0;

/// Demand on a jittered grid of `side × side` cells of `CELL` metres, and
/// `n_cand` uniform candidates over the same square; reach within
/// `radius` metres, cost = distance.
fn instance(side: usize, n_cand: usize, radius: f64, seed: u64) -> Instance {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let extent = side as f64 * CELL;
    let mut xy = Vec::with_capacity(side * side);
    let mut weights = Vec::with_capacity(side * side);
    for gy in 0..side {
        for gx in 0..side {
            xy.push((
                (gx as f64 + rng.random_range(0.0..1.0)) * CELL,
                (gy as f64 + rng.random_range(0.0..1.0)) * CELL,
            ));
            // Population per cell: mostly small, a few dense blocks.
            let w = if rng.random_bool(0.2) {
                0.0
            } else {
                rng.random_range(1.0..40.0)
            };
            weights.push(w);
        }
    }
    let r2 = radius * radius;
    let span = (radius / CELL).ceil() as i64 + 1;
    let reach = (0..n_cand)
        .map(|_| {
            let (cx, cy) = (rng.random_range(0.0..extent), rng.random_range(0.0..extent));
            let (gx, gy) = ((cx / CELL) as i64, (cy / CELL) as i64);
            let mut list = Vec::new();
            for y in (gy - span).max(0)..=(gy + span).min(side as i64 - 1) {
                for x in (gx - span).max(0)..=(gx + span).min(side as i64 - 1) {
                    let i = y as usize * side + x as usize;
                    let (dx, dy) = (xy[i].0 - cx, xy[i].1 - cy);
                    let d2 = dx * dx + dy * dy;
                    if d2 <= r2 {
                        list.push((i as u32, d2.sqrt()));
                    }
                }
            }
            list
        })
        .collect();
    Instance {
        weights,
        reach,
        ..Default::default()
    }
}

/// Peak resident set of this process so far, MB (VmHWM).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn options(k: usize, exact: Exact, secs: u64) -> Options {
    Options {
        k,
        exact,
        exact_max_pairs: usize::MAX,
        time_limit: Duration::from_secs(secs),
    }
}

fn timed(inst: &Instance, objective: Objective, o: &Options) -> (Solution, Duration) {
    let t = Instant::now();
    let sol = solve(inst, objective, o).expect("generated instances are valid");
    (sol, t.elapsed())
}

fn pairs(inst: &Instance) -> usize {
    inst.reach.iter().map(Vec::len).sum()
}

fn large() {
    eprintln!("\n(a) 1,000,000 demand × 10,000 candidates, k = 20, heuristic (greedy + swaps)");
    eprintln!("| reach | objective | pairs | time | covered | value | bound | gap | peak RSS |");
    eprintln!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for radius in [500.0, 2000.0] {
        let t = Instant::now();
        let inst = instance(1000, 10_000, radius, 1);
        let built = t.elapsed();
        let rss_inst = peak_rss_mb();
        for objective in [Objective::Coverage, Objective::PMedian] {
            let (sol, took) = timed(&inst, objective, &options(20, Exact::Never, 60));
            eprintln!(
                "| {radius} m | {objective:?} | {} | {:.2} s | {:.0} | {:.0} | {:.0} | {:.4} | {:.0} MB |",
                pairs(&inst),
                took.as_secs_f64(),
                sol.covered,
                sol.value,
                sol.bound,
                sol.gap,
                peak_rss_mb()
            );
        }
        eprintln!(
            "  (instance built in {:.1} s; peak RSS after building it: {rss_inst:.0} MB)",
            built.as_secs_f64()
        );
    }
}

/// A side × side grid with `n_cand` candidates over it, reach 1 km.
fn medium(n_demand: usize, n_cand: usize, seed: u64) -> Instance {
    let side = (n_demand as f64).sqrt().round() as usize;
    instance(side, n_cand, 1000.0, seed)
}

fn exact_scaling() {
    eprintln!("\n(b), (c) exact MILP against greedy + swaps, k = 10, reach 1 km, 100 m grid");
    eprintln!("| demand × candidates | objective | pairs | MILP time | optimal | MILP value | greedy time | greedy value | greedy gap to optimum | greedy's own bound gap |");
    eprintln!("|---|---|---:|---:|---|---:|---:|---:|---:|---:|");
    for (n, m) in [(500, 50), (1000, 100), (2000, 200), (4000, 400)] {
        let inst = medium(n, m, 7);
        for objective in [Objective::Coverage, Objective::PMedian, Objective::SetCover] {
            let (e, te) = timed(&inst, objective, &options(10, Exact::Always, 60));
            let (g, tg) = timed(&inst, objective, &options(10, Exact::Never, 60));
            eprintln!(
                "| {} × {m} | {objective:?} | {} | {:.3} s | {} | {:.1} | {:.3} s | {:.1} | {:.3}% | {:.3}% |",
                inst.weights.len(),
                pairs(&inst),
                te.as_secs_f64(),
                e.optimal,
                e.value,
                tg.as_secs_f64(),
                g.value,
                100.0 * (g.value - e.value).abs() / e.value.abs().max(1e-9),
                100.0 * g.gap,
            );
        }
    }
}

fn planning(c: &mut Criterion) {
    large();
    exact_scaling();
    let inst = medium(2000, 200, 7);
    let mut group = c.benchmark_group("planning");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("coverage_exact_2000x200_k10", |b| {
        b.iter(|| solve(&inst, Objective::Coverage, &options(10, Exact::Always, 60)))
    });
    group.bench_function("coverage_greedy_2000x200_k10", |b| {
        b.iter(|| solve(&inst, Objective::Coverage, &options(10, Exact::Never, 60)))
    });
    group.finish();
}

criterion_group!(benches, planning);
criterion_main!(benches);
