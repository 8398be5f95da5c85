//! Location set covering: the fewest sites beyond `keep` so that every
//! class some usable site reaches is covered.

use std::{collections::BinaryHeap, time::Instant};

use super::{
    close,
    coverage::{open_list, pool},
    exact, greedy,
    reduce::{reduce, Costs, Reduced},
    wants_exact, Instance, Options, Solution, OPTIMAL_GAP,
};

/// Greedy by the most demand points (then weight) newly covered, then
/// redundancy removal (latest pick first). Returns the open set.
fn greedy_cover(red: &Reduced, required: &[bool]) -> Vec<bool> {
    let mut open = vec![false; red.n_sites()];
    for &s in &red.keep {
        open[s as usize] = true;
    }
    let mut done = vec![false; red.n_classes()];
    let points = |c: usize| red.members.range(c).len() as f64;
    let gain = |done: &[bool], s: u32| -> (f64, f64) {
        red.fwd
            .row(s as usize)
            .iter()
            .map(|&c| c as usize)
            .filter(|&c| required[c] && !done[c])
            .fold((0.0, 0.0), |(n, w), c| (n + points(c), w + red.weight[c]))
    };
    #[derive(PartialEq)]
    struct Key((f64, f64), u32);
    impl Eq for Key {}
    impl PartialOrd for Key {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Key {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            (self.0)
                .0
                .total_cmp(&(o.0).0)
                .then((self.0).1.total_cmp(&(o.0).1))
                .then(o.1.cmp(&self.1))
        }
    }
    let mut left = required.iter().filter(|&&r| r).count();
    let mut heap: BinaryHeap<Key> = pool(red)
        .into_iter()
        .map(|s| Key(gain(&done, s), s))
        .collect();
    let mut picks = Vec::new();
    while left > 0 {
        let Some(Key(_, s)) = heap.pop() else { break };
        let fresh = Key(gain(&done, s), s);
        if (fresh.0).0 <= 0.0 {
            // Every class has a usable site, so this cannot happen while
            // classes are left; stop rather than open useless sites.
            continue;
        }
        if heap.peek().is_none_or(|next| fresh >= *next) {
            open[s as usize] = true;
            picks.push(s);
            for &c in red.fwd.row(s as usize) {
                let c = c as usize;
                if required[c] && !done[c] {
                    done[c] = true;
                    left -= 1;
                }
            }
        } else {
            heap.push(fresh);
        }
    }
    prune(red, required, &mut open, &picks);
    open
}

/// Closes each site of `order` (latest first) whose required classes all
/// have another open site.
fn prune(red: &Reduced, required: &[bool], open: &mut [bool], order: &[u32]) {
    let mut count = vec![0u32; red.n_classes()];
    for s in open_list(open) {
        for &c in red.fwd.row(s as usize) {
            count[c as usize] += 1;
        }
    }
    for &s in order.iter().rev() {
        let s = s as usize;
        if red.is_keep[s] || !open[s] {
            continue;
        }
        let row = red.fwd.row(s);
        if row
            .iter()
            .all(|&c| !required[c as usize] || count[c as usize] >= 2)
        {
            open[s] = false;
            for &c in row {
                count[c as usize] -= 1;
            }
        }
    }
}

/// A lower bound on the sites needed beyond `keep`, the larger of
/// - a packing: required classes no two of which share a site (taken
///   greedily, fewest sites first) each need their own site;
/// - ⌈required classes / the most required classes one site reaches⌉.
fn lower_bound(red: &Reduced, required: &[bool]) -> usize {
    let mut classes: Vec<usize> = (0..red.n_classes()).filter(|&c| required[c]).collect();
    if classes.is_empty() {
        return 0;
    }
    classes.sort_by_key(|&c| red.rev.range(c).len());
    let mut used = vec![false; red.n_sites()];
    let mut packed = 0;
    for c in &classes {
        let row = red.rev.row(*c);
        if row.iter().all(|&s| !used[s as usize]) {
            packed += 1;
            for &s in row {
                used[s as usize] = true;
            }
        }
    }
    let widest = (0..red.n_sites())
        .map(|s| {
            red.fwd
                .row(s)
                .iter()
                .filter(|&&c| required[c as usize])
                .count()
        })
        .max()
        .unwrap_or(0)
        .max(1);
    packed.max(classes.len().div_ceil(widest))
}

fn covers(red: &Reduced, required: &[bool], open: &[bool]) -> bool {
    (0..red.n_classes()).all(|c| !required[c] || red.rev.row(c).iter().any(|&s| open[s as usize]))
}

pub(super) fn solve(inst: &Instance, opts: &Options, deadline: Instant) -> Solution {
    let red = reduce(inst, Costs::None);
    let mut required = vec![true; red.n_classes()];
    for &s in &red.keep {
        for &c in red.fwd.row(s as usize) {
            required[c as usize] = false;
        }
    }
    let mut open = greedy_cover(&red, &required);
    let count = |o: &[bool]| o.iter().filter(|&&x| x).count();
    let kept = red.keep.len();
    let mut lb = (kept + lower_bound(&red, &required)) as f64;
    let mut method = "greedy+swap";
    let any_required = required.iter().any(|&r| r);
    if any_required
        && super::relative_gap(count(&open) as f64, lb) > OPTIMAL_GAP
        && wants_exact(opts, red.pairs())
    {
        if let Some(m) = exact::setcover(&red, &required, &open, deadline) {
            method = "milp";
            if m.bound.is_finite() {
                // Counts are whole: a fractional bound rounds up.
                lb = lb.max((m.bound - 1e-6).ceil());
            }
            if let Some(mut o) = m.open.filter(|o| covers(&red, &required, o)) {
                let order = open_list(&o);
                prune(&red, &required, &mut o, &order);
                if count(&o) < count(&open) {
                    open = o;
                }
            }
        }
    }
    let (sites, deltas) = greedy::order(&red, &open_list(&open), false);
    let gains = deltas.iter().map(|d| -d.unc).collect();
    let mut sol = super::answer(inst, &red, &sites, gains, method);
    sol.value = sol.chosen.len() as f64;
    close(&mut sol, lb, false, true);
    sol
}
