//! Who the shelters cover: every population cell goes to its nearest
//! shelter within the service radius; capacity-aware, the nearest pairs
//! are served first until a shelter is full and the rest spill to the
//! next shelter in reach or stay uncovered.

use super::{
    demand::{Demand, PointGrid},
    exclusions::Exclusion,
    standards::{Category, Figures},
};
use crate::settings::PlanningSettings;

/// An existing shelter as planning sees it.
#[derive(Debug, Clone)]
pub struct Shelter {
    pub id: i64,
    pub name: String,
    pub category: Category,
    /// Where people walk to: the point, or the centroid of the outline.
    pub point: [f64; 2],
    /// Recorded capacity (persons).
    pub recorded_capacity: Option<f64>,
    /// Effective area (m²).
    pub area_m2: Option<f64>,
    /// Why it may not be used (flood zone, hazard radius).
    pub excluded: Option<Exclusion>,
}

impl Shelter {
    /// Its capacity and where the figure comes from: recorded, or the
    /// effective area ÷ the per-person minimum of its own category.
    pub fn capacity(&self, settings: &PlanningSettings) -> (Option<f64>, Option<&'static str>) {
        if let Some(c) = self.recorded_capacity {
            return (Some(c), Some("recorded"));
        }
        let per_person = settings
            .area_per_person_m2
            .get(self.category.as_str())
            .unwrap_or(1.0);
        match self.area_m2 {
            Some(a) => (Some((a / per_person).floor()), Some("area")),
            None => (None, None),
        }
    }
}

/// A site that takes people: where it is and how many it holds (`None`:
/// unknown, so unbounded).
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub point: [f64; 2],
    pub capacity: Option<f64>,
}

/// How demand is split over sites.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// People of each demand point that reach a site.
    pub covered: Vec<f64>,
    /// People each site takes.
    pub loads: Vec<f64>,
}

impl Allocation {
    pub fn covered_total(&self) -> f64 {
        self.covered.iter().sum()
    }
}

/// Split `weights` over `sites` within `radius_m`. Without capacities,
/// each point goes wholly to its nearest site in reach (ties to the
/// lower site index). Capacity-aware, (point, site) pairs are served in
/// order of distance: each takes what the point still has and the site
/// still holds.
pub fn allocate(
    weights: &[f64],
    grid: &PointGrid,
    sites: &[Site],
    radius_m: f64,
    capacity_aware: bool,
) -> Allocation {
    let mut covered = vec![0.0; weights.len()];
    let mut loads = vec![0.0; sites.len()];
    if !capacity_aware {
        let mut best: Vec<Option<(f64, usize)>> = vec![None; weights.len()];
        for (j, s) in sites.iter().enumerate() {
            grid.within(s.point, radius_m, |i, d| {
                let b = &mut best[i as usize];
                if b.is_none_or(|(bd, bj)| d < bd || (d == bd && j < bj)) {
                    *b = Some((d, j));
                }
            });
        }
        for (i, b) in best.iter().enumerate() {
            if let Some((_, j)) = b {
                covered[i] = weights[i];
                loads[*j] += weights[i];
            }
        }
        return Allocation { covered, loads };
    }
    let mut pairs: Vec<(f64, u32, u32)> = Vec::new();
    for (j, s) in sites.iter().enumerate() {
        let j = u32::try_from(j).unwrap_or(u32::MAX);
        grid.within(s.point, radius_m, |i, d| pairs.push((d, i, j)));
    }
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut left: Vec<f64> = weights.to_vec();
    for (_, i, j) in pairs {
        let (i, j) = (i as usize, j as usize);
        let room = sites[j].capacity.map_or(f64::INFINITY, |c| c - loads[j]);
        let take = left[i].min(room);
        if take > 0.0 {
            left[i] -= take;
            loads[j] += take;
            covered[i] += take;
        }
    }
    Allocation { covered, loads }
}

/// Coverage of the demand by the existing shelters of a category.
pub struct Coverage {
    pub total: f64,
    pub covered: f64,
    /// Per demand point.
    pub allocation: Allocation,
    /// Per shelter (of the list given): its load, 0 when it does not
    /// serve this category or is excluded.
    pub loads: Vec<f64>,
    /// Per shelter: whether it took part.
    pub used: Vec<bool>,
    /// Per shelter: its capacity and the figure's source.
    pub capacities: Vec<(Option<f64>, Option<&'static str>)>,
}

/// The shelters that serve `figures.category` (the higher grades serve
/// the lower), excluded ones left out unless `include_excluded`.
pub fn coverage(
    settings: &PlanningSettings,
    demand: &Demand,
    grid: &PointGrid,
    shelters: &[Shelter],
    figures: &Figures,
    capacity_aware: bool,
    include_excluded: bool,
) -> Coverage {
    let capacities: Vec<_> = shelters.iter().map(|s| s.capacity(settings)).collect();
    let used: Vec<bool> = shelters
        .iter()
        .map(|s| {
            figures.category.served_by(s.category) && (include_excluded || s.excluded.is_none())
        })
        .collect();
    let sites: Vec<Site> = shelters
        .iter()
        .zip(&capacities)
        .zip(&used)
        .filter(|(_, u)| **u)
        .map(|((s, c), _)| Site {
            point: s.point,
            capacity: c.0,
        })
        .collect();
    let allocation = allocate(
        &demand.weights,
        grid,
        &sites,
        figures.radius_m,
        capacity_aware,
    );
    let mut loads = vec![0.0; shelters.len()];
    let mut next = allocation.loads.iter();
    for (l, u) in loads.iter_mut().zip(&used) {
        if *u {
            *l = next.next().copied().unwrap_or(0.0);
        }
    }
    Coverage {
        total: demand.total(),
        covered: allocation.covered_total(),
        allocation,
        loads,
        used,
        capacities,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::haversine_m;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_case(rng: &mut ChaCha8Rng) -> (Vec<[f64; 2]>, Vec<f64>, Vec<Site>) {
        let n = rng.random_range(5..60);
        let m = rng.random_range(1..8);
        let at = |rng: &mut ChaCha8Rng| {
            [
                118.25 + rng.random::<f64>() * 0.05,
                34.98 + rng.random::<f64>() * 0.05,
            ]
        };
        let points: Vec<[f64; 2]> = (0..n).map(|_| at(rng)).collect();
        let weights: Vec<f64> = (0..n).map(|_| rng.random_range(0..500) as f64).collect();
        let sites = (0..m)
            .map(|_| Site {
                point: at(rng),
                capacity: Some(rng.random_range(0..3_000) as f64),
            })
            .collect();
        (points, weights, sites)
    }

    #[test]
    fn coverage_matches_a_brute_force_nearest_assignment() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..200 {
            let (points, weights, sites) = random_case(&mut rng);
            let radius = rng.random_range(200.0..3_000.0);
            let grid = PointGrid::new(&points, radius);
            let a = allocate(&weights, &grid, &sites, radius, false);
            let mut loads = vec![0.0; sites.len()];
            let mut covered = 0.0;
            for (i, p) in points.iter().enumerate() {
                let best = sites
                    .iter()
                    .enumerate()
                    .map(|(j, s)| (haversine_m(*p, s.point), j))
                    .filter(|(d, _)| *d <= radius)
                    .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                if let Some((_, j)) = best {
                    loads[j] += weights[i];
                    covered += weights[i];
                    assert_eq!(a.covered[i], weights[i]);
                } else {
                    assert_eq!(a.covered[i], 0.0);
                }
            }
            assert_eq!(a.loads, loads);
            assert_eq!(a.covered_total(), covered);
            let total: f64 = weights.iter().sum();
            let uncovered: f64 = weights.iter().zip(&a.covered).map(|(w, c)| w - c).sum();
            assert_eq!(covered + uncovered, total);
        }
    }

    #[test]
    fn capacity_aware_loads_sum_to_the_covered_and_stay_within_capacity() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for _ in 0..200 {
            let (points, weights, sites) = random_case(&mut rng);
            let radius = rng.random_range(200.0..3_000.0);
            let grid = PointGrid::new(&points, radius);
            let a = allocate(&weights, &grid, &sites, radius, true);
            let loads: f64 = a.loads.iter().sum();
            assert!((loads - a.covered_total()).abs() < 1e-6);
            for (l, s) in a.loads.iter().zip(&sites) {
                assert!(*l <= s.capacity.unwrap_or(f64::INFINITY) + 1e-9);
            }
            for (i, c) in a.covered.iter().enumerate() {
                assert!(*c <= weights[i] + 1e-9);
                // Nobody is left out while a site in reach has room.
                if *c < weights[i] {
                    for (j, s) in sites.iter().enumerate() {
                        if haversine_m(points[i], s.point) <= radius {
                            assert!(
                                a.loads[j] >= s.capacity.unwrap_or(f64::INFINITY) - 1e-9,
                                "site {j} in reach has room"
                            );
                        }
                    }
                }
            }
            // Never more than without capacities.
            let free = allocate(&weights, &grid, &sites, radius, false);
            assert!(a.covered_total() <= free.covered_total() + 1e-9);
        }
    }

    #[test]
    fn a_full_shelter_spills_to_the_next_in_reach() {
        // Three cells next to shelter A (holds 100), shelter B 400 m away.
        let points = vec![[118.3, 35.0], [118.3001, 35.0], [118.3002, 35.0]];
        let weights = vec![60.0, 60.0, 60.0];
        let sites = vec![
            Site {
                point: [118.3, 35.0],
                capacity: Some(100.0),
            },
            Site {
                point: [118.3045, 35.0],
                capacity: Some(1_000.0),
            },
        ];
        let grid = PointGrid::new(&points, 500.0);
        let a = allocate(&weights, &grid, &sites, 500.0, true);
        assert_eq!(a.loads, vec![100.0, 80.0]);
        assert_eq!(a.covered_total(), 180.0);
        let a = allocate(&weights, &grid, &sites, 500.0, false);
        assert_eq!(a.loads, vec![180.0, 0.0]);
    }
}
