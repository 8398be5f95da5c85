//! The reduced instance every solver works on: usable candidates only,
//! demand of weight 0 or out of every usable candidate's reach dropped, and
//! demand points with the same reach merged into one weighted class. On
//! a jittered grid most neighbouring points share their reach, so the MILP
//! and the swap passes see several times fewer rows.

use std::collections::HashMap;

use super::Instance;

/// What a class keeps of its members' costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Costs {
    /// No costs (plain coverage and set cover: every cost reads 0).
    None,
    /// Points merge on the same reach; a class's cost to a site is its
    /// members' weighted mean (capacitated coverage assigns nearest-first).
    Mean,
    /// Points merge only when reach and costs are identical (p-median:
    /// the merged class must cost exactly what its members cost).
    Exact,
}

/// Compressed rows: `start[r]..start[r + 1]` indexes row `r` in `index`
/// (and in `cost` when costs are kept).
#[derive(Debug, Clone, Default)]
pub(super) struct Csr {
    pub start: Vec<usize>,
    pub index: Vec<u32>,
    pub cost: Vec<f64>,
}

impl Csr {
    pub fn range(&self, r: usize) -> std::ops::Range<usize> {
        self.start[r]..self.start[r + 1]
    }

    pub fn row(&self, r: usize) -> &[u32] {
        &self.index[self.range(r)]
    }

    /// The cost at position `p`; 0 when costs are not kept.
    pub fn cost_at(&self, p: usize) -> f64 {
        self.cost.get(p).copied().unwrap_or(0.0)
    }

    /// Builds the transpose of `self` (rows become columns), keeping costs.
    fn transpose(&self, n_cols: usize) -> Csr {
        let mut count = vec![0usize; n_cols + 1];
        for &c in &self.index {
            count[c as usize + 1] += 1;
        }
        for r in 0..n_cols {
            count[r + 1] += count[r];
        }
        let mut fill = count.clone();
        let mut index = vec![0u32; self.index.len()];
        let mut cost = vec![
            0.0;
            if self.cost.is_empty() {
                0
            } else {
                self.index.len()
            }
        ];
        for r in 0..self.start.len().saturating_sub(1) {
            for p in self.range(r) {
                let c = self.index[p] as usize;
                index[fill[c]] = r as u32;
                if !cost.is_empty() {
                    cost[fill[c]] = self.cost[p];
                }
                fill[c] += 1;
            }
        }
        Csr {
            start: count,
            index,
            cost,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Reduced {
    /// Per site: the original candidate index.
    pub site: Vec<usize>,
    /// Reduced indices of the kept sites, in the caller's order.
    pub keep: Vec<u32>,
    pub is_keep: Vec<bool>,
    /// Per class: the summed weight of its members.
    pub weight: Vec<f64>,
    /// Per class: its original demand points (`cost` unused).
    pub members: Csr,
    /// Per site: the classes it reaches, with costs.
    pub fwd: Csr,
    /// Per class: the sites reaching it, with costs.
    pub rev: Csr,
    /// Per site: its capacity, when the instance has capacities.
    pub cap: Option<Vec<f64>>,
    /// Demand points of positive weight no usable candidate reaches.
    pub unreached: Vec<u32>,
}

impl Reduced {
    pub fn n_sites(&self) -> usize {
        self.site.len()
    }

    pub fn n_classes(&self) -> usize {
        self.weight.len()
    }

    pub fn pairs(&self) -> usize {
        self.fwd.index.len()
    }

    pub fn total_weight(&self) -> f64 {
        self.weight.iter().sum()
    }
}

pub(super) fn reduce(inst: &Instance, costs: Costs) -> Reduced {
    let n_cand = inst.reach.len();
    let n_demand = inst.weights.len();
    let mut excluded = vec![false; n_cand];
    for &j in &inst.exclude {
        excluded[j] = true;
    }
    let site: Vec<usize> = (0..n_cand).filter(|&j| !excluded[j]).collect();
    let mut site_index = vec![u32::MAX; n_cand];
    for (s, &j) in site.iter().enumerate() {
        site_index[j] = s as u32;
    }

    // Per demand point: the usable sites reaching it, ascending (sites are
    // visited in order), with costs when kept.
    let live = |i: u32| inst.weights[i as usize] > 0.0;
    let mut start = vec![0usize; n_demand + 1];
    for &j in &site {
        for &(i, _) in &inst.reach[j] {
            if live(i) {
                start[i as usize + 1] += 1;
            }
        }
    }
    for i in 0..n_demand {
        start[i + 1] += start[i];
    }
    let pairs = start[n_demand];
    let mut fill = start.clone();
    let mut dsite = vec![0u32; pairs];
    let mut dcost = vec![0.0f64; if costs == Costs::None { 0 } else { pairs }];
    for (s, &j) in site.iter().enumerate() {
        for &(i, c) in &inst.reach[j] {
            if live(i) {
                let p = &mut fill[i as usize];
                dsite[*p] = s as u32;
                if let Some(slot) = dcost.get_mut(*p) {
                    *slot = c;
                }
                *p += 1;
            }
        }
    }
    drop(fill);

    // Group points by their key (sites, and cost bits for exact costs).
    let bits: Vec<u64> = if costs == Costs::Exact {
        dcost.iter().map(|c| c.to_bits()).collect()
    } else {
        Vec::new()
    };
    let key = |i: usize| -> (&[u32], &[u64]) {
        let r = start[i]..start[i + 1];
        let b = if bits.is_empty() {
            &bits[..]
        } else {
            &bits[r.clone()]
        };
        (&dsite[r], b)
    };
    let mut class_of = vec![u32::MAX; n_demand];
    let mut reps: Vec<usize> = Vec::new();
    let mut unreached = Vec::new();
    {
        let mut map: HashMap<(&[u32], &[u64]), u32> = HashMap::new();
        for i in 0..n_demand {
            if inst.weights[i] <= 0.0 {
                continue;
            }
            if start[i] == start[i + 1] {
                unreached.push(i as u32);
                continue;
            }
            let next = reps.len() as u32;
            let c = *map.entry(key(i)).or_insert(next);
            if c == next {
                reps.push(i);
            }
            class_of[i] = c;
        }
    }
    drop(bits);

    let n_class = reps.len();
    let mut weight = vec![0.0; n_class];
    let mut mstart = vec![0usize; n_class + 1];
    for (&c, &w) in class_of.iter().zip(&inst.weights) {
        if c != u32::MAX {
            weight[c as usize] += w;
            mstart[c as usize + 1] += 1;
        }
    }
    for c in 0..n_class {
        mstart[c + 1] += mstart[c];
    }
    let mut mfill = mstart.clone();
    let mut members = vec![0u32; mstart[n_class]];
    for (i, &c) in class_of.iter().enumerate() {
        if c != u32::MAX {
            members[mfill[c as usize]] = i as u32;
            mfill[c as usize] += 1;
        }
    }
    drop(mfill);

    // A class's reach is its representative's; mean costs sum the
    // members' weighted costs position by position (same site list).
    let mut rstart = vec![0usize; n_class + 1];
    for (c, &i) in reps.iter().enumerate() {
        rstart[c + 1] = rstart[c] + (start[i + 1] - start[i]);
    }
    let mut rindex = Vec::with_capacity(rstart[n_class]);
    for &i in &reps {
        rindex.extend_from_slice(&dsite[start[i]..start[i + 1]]);
    }
    let rcost = match costs {
        Costs::None => Vec::new(),
        Costs::Exact => {
            let mut v = Vec::with_capacity(rstart[n_class]);
            for &i in &reps {
                v.extend_from_slice(&dcost[start[i]..start[i + 1]]);
            }
            v
        }
        Costs::Mean => {
            let mut v = vec![0.0; rstart[n_class]];
            for i in 0..n_demand {
                let c = class_of[i];
                if c == u32::MAX {
                    continue;
                }
                let c = c as usize;
                let w = inst.weights[i] / weight[c];
                for (k, p) in (start[i]..start[i + 1]).enumerate() {
                    v[rstart[c] + k] += w * dcost[p];
                }
            }
            v
        }
    };
    drop((dsite, dcost, class_of));
    let rev = Csr {
        start: rstart,
        index: rindex,
        cost: rcost,
    };
    let fwd = rev.transpose(site.len());

    let mut is_keep = vec![false; site.len()];
    let keep: Vec<u32> = inst.keep.iter().map(|&j| site_index[j]).collect();
    for &s in &keep {
        is_keep[s as usize] = true;
    }
    let cap = inst
        .capacity
        .as_ref()
        .map(|cap| site.iter().map(|&j| cap[j]).collect());
    Reduced {
        site,
        keep,
        is_keep,
        weight,
        members: Csr {
            start: mstart,
            index: members,
            cost: Vec::new(),
        },
        fwd,
        rev,
        cap,
        unreached,
    }
}
