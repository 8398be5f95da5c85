//! The solvers against exhaustive enumeration on small random instances,
//! a hand-built case with a known optimum, validation and the time limit.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

fn opts(k: usize, exact: Exact) -> Options {
    Options {
        k,
        exact,
        exact_max_pairs: 1_000_000,
        time_limit: Duration::from_secs(20),
    }
}

fn close_to(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// A random instance: some zero weights, some demand nobody reaches,
/// integer-ish costs (ties happen), keep and exclude drawn when asked.
fn random(rng: &mut ChaCha8Rng, roles: bool) -> (Instance, usize) {
    let n = rng.random_range(12..=30);
    let m = rng.random_range(6..=10);
    let weights = (0..n)
        .map(|_| {
            if rng.random_bool(0.1) {
                0.0
            } else {
                rng.random_range(1..=20) as f64
            }
        })
        .collect();
    let p = rng.random_range(0.15..0.4);
    let reach = (0..m)
        .map(|_| {
            (0..n as u32)
                .filter(|_| rng.random_bool(p))
                .collect::<Vec<u32>>()
                .into_iter()
                .map(|i| (i, rng.random_range(0..50) as f64))
                .collect()
        })
        .collect();
    let mut inst = Instance {
        weights,
        reach,
        ..Default::default()
    };
    let k = rng.random_range(1..=4);
    if roles {
        let mut ids: Vec<usize> = (0..m).collect();
        for t in 0..m {
            ids.swap(t, rng.random_range(t..m));
        }
        let n_keep = rng.random_range(0..=k.min(2));
        let n_excl = rng.random_range(0..=2).min(m - k);
        inst.keep = ids[..n_keep].to_vec();
        inst.exclude = ids[n_keep..n_keep + n_excl].to_vec();
    }
    (inst, k)
}

/// Every k-subset of the usable candidates holding `keep`.
fn subsets(inst: &Instance, k: usize) -> Vec<Vec<usize>> {
    let free: Vec<usize> = (0..inst.reach.len())
        .filter(|j| !inst.keep.contains(j) && !inst.exclude.contains(j))
        .collect();
    let mut out = Vec::new();
    let need = k - inst.keep.len();
    let mut pick = Vec::new();
    fn rec(
        free: &[usize],
        need: usize,
        at: usize,
        pick: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if pick.len() == need {
            out.push(pick.clone());
            return;
        }
        for t in at..free.len() {
            pick.push(free[t]);
            rec(free, need, t + 1, pick, out);
            pick.pop();
        }
    }
    rec(&free, need, 0, &mut pick, &mut out);
    for s in &mut out {
        s.extend(inst.keep.iter().copied());
    }
    out
}

/// (covered weight, cost to the nearest open site).
fn serve(inst: &Instance, set: &[usize]) -> (f64, f64) {
    let mut best = vec![f64::INFINITY; inst.weights.len()];
    for &j in set {
        for &(i, c) in &inst.reach[j] {
            best[i as usize] = best[i as usize].min(c);
        }
    }
    let mut out = (0.0, 0.0);
    for (i, &b) in best.iter().enumerate() {
        if b.is_finite() {
            out.0 += inst.weights[i];
            out.1 += inst.weights[i] * b;
        }
    }
    out
}

/// Edmonds–Karp on a dense matrix: source → demand (weight) → open site
/// (unbounded) → sink (capacity). Independent of the solver's Dinic.
fn max_flow(inst: &Instance, set: &[usize]) -> f64 {
    let cap = inst.capacity.as_ref().expect("capacitated instance");
    let n = inst.weights.len();
    let size = 2 + n + set.len();
    let (s, t) = (0, 1);
    let mut r = vec![vec![0.0f64; size]; size];
    for i in 0..n {
        r[s][2 + i] = inst.weights[i];
    }
    for (k, &j) in set.iter().enumerate() {
        r[2 + n + k][t] = cap[j];
        for &(i, _) in &inst.reach[j] {
            r[2 + i as usize][2 + n + k] = f64::INFINITY;
        }
    }
    let mut total = 0.0;
    loop {
        let mut prev = vec![usize::MAX; size];
        prev[s] = s;
        let mut queue = std::collections::VecDeque::from([s]);
        while let Some(u) = queue.pop_front() {
            for v in 0..size {
                if prev[v] == usize::MAX && r[u][v] > 1e-12 {
                    prev[v] = u;
                    queue.push_back(v);
                }
            }
        }
        if prev[t] == usize::MAX {
            return total;
        }
        let mut push = f64::INFINITY;
        let mut v = t;
        while v != s {
            push = push.min(r[prev[v]][v]);
            v = prev[v];
        }
        let mut v = t;
        while v != s {
            let u = prev[v];
            r[u][v] -= push;
            r[v][u] += push;
            v = u;
        }
        total += push;
    }
}

fn check_shape(inst: &Instance, sol: &Solution, k: usize) {
    assert_eq!(sol.chosen.len(), k, "{sol:?}");
    assert_eq!(&sol.chosen[..inst.keep.len()], &inst.keep[..]);
    assert!(sol.chosen.iter().all(|j| !inst.exclude.contains(j)));
    assert_eq!(sol.gains.len(), sol.chosen.len());
    if sol.optimal {
        assert_eq!(sol.gap, 0.0);
        assert_eq!(sol.bound, sol.value);
    } else {
        assert!(close_to(sol.gap, relative_gap(sol.value, sol.bound)));
    }
}

#[test]
fn exact_coverage_equals_enumeration_and_greedy_stays_within_its_bound() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..60 {
        let (inst, k) = random(&mut rng, case % 2 == 1);
        let opt = subsets(&inst, k)
            .iter()
            .map(|s| serve(&inst, s).0)
            .fold(0.0, f64::max);
        let exact = solve(&inst, Objective::Coverage, &opts(k, Exact::Always)).expect("valid");
        check_shape(&inst, &exact, k);
        assert!(
            close_to(exact.value, opt),
            "case {case}: {} vs {opt}",
            exact.value
        );
        assert!(exact.optimal, "case {case}");
        assert!(close_to(exact.gains.iter().sum(), exact.covered));

        let heur = solve(&inst, Objective::Coverage, &opts(k, Exact::Never)).expect("valid");
        check_shape(&inst, &heur, k);
        assert_eq!(heur.method, "greedy+swap");
        assert!(heur.value <= opt + 1e-9, "case {case}");
        assert!(
            heur.value >= (1.0 - 1.0 / std::f64::consts::E) * opt - 1e-9,
            "case {case}"
        );
        assert!(
            heur.bound >= opt - 1e-9,
            "case {case}: bound {} < {opt}",
            heur.bound
        );
        let uncovered: f64 = heur
            .uncovered
            .iter()
            .map(|&i| inst.weights[i as usize])
            .sum();
        assert!(close_to(
            uncovered + heur.covered,
            inst.weights.iter().sum()
        ));
    }
}

#[test]
fn exact_capacitated_coverage_equals_enumeration_by_max_flow() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for case in 0..50 {
        let (mut inst, k) = random(&mut rng, case % 2 == 0);
        inst.capacity = Some(
            (0..inst.reach.len())
                .map(|_| rng.random_range(0..60) as f64)
                .collect(),
        );
        let opt = subsets(&inst, k)
            .iter()
            .map(|s| max_flow(&inst, s))
            .fold(0.0, f64::max);
        let cap = inst.capacity.clone().expect("set above");
        for exact in [Exact::Always, Exact::Never] {
            let sol = solve(&inst, Objective::Coverage, &opts(k, exact)).expect("valid");
            check_shape(&inst, &sol, k);
            for (t, &j) in sol.chosen.iter().enumerate() {
                assert!(
                    sol.loads[t] <= cap[j] + 1e-9,
                    "case {case}: load over capacity"
                );
            }
            assert!(close_to(sol.loads.iter().sum(), sol.covered), "case {case}");
            assert!(close_to(sol.gains.iter().sum(), sol.covered), "case {case}");
            // The reported split is a max-flow of the reported set.
            assert!(
                close_to(sol.covered, max_flow(&inst, &sol.chosen)),
                "case {case}"
            );
            assert!(sol.value <= opt + 1e-9, "case {case}");
            assert!(
                sol.bound >= opt - 1e-9,
                "case {case}: bound {} < {opt}",
                sol.bound
            );
            if exact == Exact::Always {
                assert!(
                    close_to(sol.value, opt),
                    "case {case}: {} vs {opt}",
                    sol.value
                );
                assert!(sol.optimal);
            }
        }
    }
}

#[test]
fn exact_pmedian_equals_lexicographic_enumeration() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for case in 0..50 {
        let (inst, k) = random(&mut rng, case % 2 == 1);
        let opt = subsets(&inst, k).iter().map(|s| serve(&inst, s)).fold(
            (0.0, f64::INFINITY),
            |best, v| {
                if v.0 > best.0 + 1e-9 || (v.0 > best.0 - 1e-9 && v.1 < best.1) {
                    v
                } else {
                    best
                }
            },
        );
        let exact = solve(&inst, Objective::PMedian, &opts(k, Exact::Always)).expect("valid");
        check_shape(&inst, &exact, k);
        assert!(
            close_to(exact.covered, opt.0),
            "case {case}: {} vs {}",
            exact.covered,
            opt.0
        );
        assert!(
            close_to(exact.value, opt.1),
            "case {case}: {} vs {}",
            exact.value,
            opt.1
        );
        assert!(exact.optimal, "case {case}: {exact:?} {inst:?} k {k}");

        let heur = solve(&inst, Objective::PMedian, &opts(k, Exact::Never)).expect("valid");
        check_shape(&inst, &heur, k);
        assert!(heur.covered <= opt.0 + 1e-9);
        if close_to(heur.covered, opt.0) {
            assert!(heur.value >= opt.1 - 1e-9, "case {case}");
        }
        assert!(
            heur.bound <= opt.1 + 1e-9,
            "case {case}: bound {} > {}",
            heur.bound,
            opt.1
        );
        assert!(close_to(heur.value, serve(&inst, &heur.chosen).1));
    }
}

#[test]
fn exact_set_cover_equals_the_smallest_covering_subset() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for case in 0..50 {
        let (inst, _) = random(&mut rng, case % 2 == 0);
        let usable: Vec<usize> = (0..inst.reach.len())
            .filter(|j| !inst.exclude.contains(j))
            .collect();
        let target = serve(&inst, &usable).0;
        let opt = (inst.keep.len()..=usable.len())
            .find(|&k| {
                subsets(&inst, k)
                    .iter()
                    .any(|s| close_to(serve(&inst, s).0, target))
            })
            .expect("all usable sites cover");
        for exact in [Exact::Always, Exact::Never] {
            let sol = solve(&inst, Objective::SetCover, &opts(0, exact)).expect("valid");
            check_shape(&inst, &sol, sol.chosen.len());
            assert!(close_to(sol.covered, target), "case {case}");
            assert!(sol.value >= opt as f64);
            assert!(
                sol.bound <= opt as f64 + 1e-9,
                "case {case}: bound {} > {opt}",
                sol.bound
            );
            if exact == Exact::Always {
                assert_eq!(sol.value, opt as f64, "case {case}");
                assert!(sol.optimal);
            }
            let unreached = (0..inst.weights.len() as u32)
                .filter(|&i| inst.weights[i as usize] > 0.0)
                .filter(|&i| {
                    !usable
                        .iter()
                        .any(|&j| inst.reach[j].iter().any(|p| p.0 == i))
                })
                .collect::<Vec<_>>();
            assert_eq!(sol.uncovered, unreached);
        }
    }
}

/// Five points on a line; the middle site reaches the two inner points
/// and a light one beside them, the end sites two points each. Greedy
/// takes the middle first (5) and ends at 7; the optimum is both ends, 8.
fn line() -> Instance {
    // Points at x = 0, 1, 2, 3 (weight 2) and 1.5 (weight 1).
    Instance {
        weights: vec![2.0, 2.0, 2.0, 2.0, 1.0],
        reach: vec![
            vec![(0, 0.5), (1, 0.5)],
            vec![(1, 0.5), (2, 0.5), (4, 0.0)],
            vec![(2, 0.5), (3, 0.5)],
        ],
        ..Default::default()
    }
}

#[test]
fn greedy_misses_the_line_optimum_that_swaps_and_the_milp_find() {
    let inst = line();
    let mut greedy_only = opts(2, Exact::Never);
    greedy_only.time_limit = Duration::ZERO;
    let g = solve(&inst, Objective::Coverage, &greedy_only).expect("valid");
    assert_eq!(g.value, 7.0);
    assert_eq!(g.chosen, vec![1, 0]);
    assert_eq!(g.gains, vec![5.0, 2.0]);
    assert!(!g.optimal);
    assert!(g.bound >= 8.0);

    let s = solve(&inst, Objective::Coverage, &opts(2, Exact::Never)).expect("valid");
    assert_eq!(s.value, 8.0);

    let e = solve(&inst, Objective::Coverage, &opts(2, Exact::Always)).expect("valid");
    assert_eq!(e.value, 8.0);
    assert!(e.optimal);
    assert_eq!(e.method, "milp");
    assert_eq!(e.chosen, vec![0, 2]);
    assert_eq!(e.uncovered, vec![4]);
}

#[test]
fn keep_and_exclude_are_honoured() {
    let inst = Instance {
        keep: vec![1],
        exclude: vec![0],
        ..line()
    };
    for exact in [Exact::Always, Exact::Never] {
        let sol = solve(&inst, Objective::Coverage, &opts(2, exact)).expect("valid");
        assert_eq!(sol.chosen, vec![1, 2]);
        assert_eq!(sol.value, 7.0);
        assert!(sol.optimal);
        let pm = solve(&inst, Objective::PMedian, &opts(2, exact)).expect("valid");
        assert_eq!(pm.chosen, vec![1, 2]);
        let sc = solve(&inst, Objective::SetCover, &opts(0, exact)).expect("valid");
        assert_eq!(sc.chosen, vec![1, 2]);
        assert_eq!(sc.uncovered, vec![0]);
    }
}

#[test]
fn bad_input_names_the_field() {
    let field = |inst: &Instance, obj: Objective, o: &Options| match solve(inst, obj, o) {
        Err(SolveError::Invalid { field, .. }) => field,
        Ok(_) => "accepted",
    };
    let ok = line();
    let o = opts(2, Exact::Never);
    assert_eq!(field(&ok, Objective::Coverage, &opts(0, Exact::Never)), "k");
    assert_eq!(field(&ok, Objective::Coverage, &opts(4, Exact::Never)), "k");
    assert_eq!(
        field(&ok, Objective::SetCover, &opts(0, Exact::Never)),
        "accepted"
    );
    let excl = Instance {
        exclude: vec![0, 1],
        ..line()
    };
    assert_eq!(field(&excl, Objective::PMedian, &o), "k");

    let mut bad = line();
    bad.reach[0].push((9, 1.0));
    assert_eq!(field(&bad, Objective::Coverage, &o), "reach");
    let mut bad = line();
    bad.reach[0].push((0, 1.0));
    assert_eq!(field(&bad, Objective::Coverage, &o), "reach");
    let mut bad = line();
    bad.reach[2][0].1 = -1.0;
    assert_eq!(field(&bad, Objective::Coverage, &o), "reach");
    let mut bad = line();
    bad.reach[2][0].1 = f64::NAN;
    assert_eq!(field(&bad, Objective::SetCover, &o), "reach");
    let mut bad = line();
    bad.weights[3] = -2.0;
    assert_eq!(field(&bad, Objective::Coverage, &o), "weights");
    let mut bad = line();
    bad.weights[3] = f64::INFINITY;
    assert_eq!(field(&bad, Objective::PMedian, &o), "weights");
    let bad = Instance {
        capacity: Some(vec![1.0, 2.0]),
        ..line()
    };
    assert_eq!(field(&bad, Objective::Coverage, &o), "capacity");
    let bad = Instance {
        capacity: Some(vec![1.0, -2.0, 1.0]),
        ..line()
    };
    assert_eq!(field(&bad, Objective::Coverage, &o), "capacity");
    let bad = Instance {
        keep: vec![0],
        exclude: vec![0],
        ..line()
    };
    assert_eq!(field(&bad, Objective::Coverage, &o), "keep");
    let bad = Instance {
        keep: vec![0, 1, 2],
        ..line()
    };
    assert_eq!(field(&bad, Objective::Coverage, &o), "keep");
    let bad = Instance {
        keep: vec![5],
        ..line()
    };
    assert_eq!(field(&bad, Objective::Coverage, &o), "keep");
    let bad = Instance {
        exclude: vec![7],
        ..line()
    };
    assert_eq!(field(&bad, Objective::Coverage, &o), "exclude");
}

#[test]
fn a_tiny_time_limit_returns_promptly_with_a_consistent_gap() {
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let (n, m) = (4000, 400);
    let inst = Instance {
        weights: (0..n).map(|_| rng.random_range(1..100) as f64).collect(),
        reach: (0..m)
            .map(|_| {
                (0..n as u32)
                    .filter(|_| rng.random_bool(0.03))
                    .collect::<Vec<u32>>()
                    .into_iter()
                    .map(|i| (i, rng.random_range(0.0..2000.0)))
                    .collect()
            })
            .collect(),
        ..Default::default()
    };
    for objective in [Objective::Coverage, Objective::PMedian, Objective::SetCover] {
        let mut o = opts(15, Exact::Always);
        o.time_limit = Duration::from_millis(300);
        let start = Instant::now();
        let sol = solve(&inst, objective, &o).expect("valid");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{objective:?} took {:?}",
            start.elapsed()
        );
        if sol.optimal {
            assert_eq!(sol.gap, 0.0);
            assert_eq!(sol.bound, sol.value);
        } else {
            assert!(close_to(sol.gap, relative_gap(sol.value, sol.bound)));
            match objective {
                Objective::Coverage => assert!(sol.bound >= sol.value),
                _ => assert!(sol.bound <= sol.value),
            }
        }
    }
}
