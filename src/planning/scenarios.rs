//! Scenarios: a siting run kept under a name with the figures planners
//! compare (per town, per shelter category) and report.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    coverage::{coverage, Shelter},
    demand::PointGrid,
    siting::{Answer, Siting, World},
    standards::{Category, Figures},
};
use crate::{settings::PlanningSettings, store::ScenarioRecord};

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// People covered before and after, per town of the population grid.
pub fn by_town(world: &World, answer: &Answer) -> Vec<Value> {
    let d = &world.demand;
    let mut towns: BTreeMap<&str, [f64; 3]> = BTreeMap::new();
    for i in 0..d.len() {
        let name = d.towns.get(d.town[i] as usize).map_or("", String::as_str);
        let t = towns.entry(name).or_insert([0.0; 3]);
        t[0] += d.weights[i];
        t[1] += answer.covered_before.get(i).copied().unwrap_or(0.0);
        t[2] += answer.covered_after.get(i).copied().unwrap_or(0.0);
    }
    towns
        .into_iter()
        .map(|(town, [total, before, after])| {
            json!({
                "town": if town.is_empty() { Value::Null } else { json!(town) },
                "total_population": round(total),
                "covered_before": round(before),
                "covered_after": round(after),
            })
        })
        .collect()
}

/// People covered before and after for each shelter category, at the
/// category's standard radius (the run's own radius for its category):
/// a new site of the run's category also serves the lower categories.
pub fn by_category(
    settings: &PlanningSettings,
    world: &World,
    q: &Siting,
    answer: &Answer,
) -> Vec<Value> {
    let added: Vec<Shelter> = answer
        .sites
        .iter()
        .map(|s| Shelter {
            id: -1,
            name: String::new(),
            category: q.figures.category,
            point: s.candidate.point,
            recorded_capacity: s.candidate.capacity.filter(|_| q.capacity_aware),
            area_m2: None,
            excluded: None,
        })
        .collect();
    let mut all = world.shelters.clone();
    all.extend(added);
    Category::ALL
        .iter()
        .map(|&c| {
            let figures = if c == q.figures.category {
                Figures::new(
                    settings,
                    c,
                    Some(q.figures.radius_m),
                    Some(q.figures.area_per_person_m2),
                )
            } else {
                Figures::new(settings, c, None, None)
            };
            let grid = PointGrid::new(&world.demand.points, figures.radius_m);
            let run = |shelters: &[Shelter]| {
                coverage(
                    settings,
                    &world.demand,
                    &grid,
                    shelters,
                    &figures,
                    q.capacity_aware,
                    q.include_excluded,
                )
            };
            let before = run(&world.shelters);
            let after = run(&all);
            json!({
                "category": c.as_str(),
                "radius_m": figures.radius_m,
                "total_population": round(before.total),
                "covered_before": round(before.covered),
                "covered_after": round(after.covered),
            })
        })
        .collect()
}

/// Two scenarios side by side: per town and per category, the people
/// each covers after its sites, and the difference (`with` − this).
pub fn compare(a: &ScenarioRecord, b: &ScenarioRecord) -> Value {
    let rows = |key: &str, field: &str| -> Vec<Value> {
        let index = |r: &ScenarioRecord| -> BTreeMap<String, Value> {
            r.results[key]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|row| {
                            let name = match &row[field] {
                                Value::String(s) => s.clone(),
                                Value::Null => String::new(),
                                other => other.to_string(),
                            };
                            (name, row.clone())
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (ia, ib) = (index(a), index(b));
        let mut names: Vec<&String> = ia.keys().chain(ib.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let (ra, rb) = (ia.get(name), ib.get(name));
                let num = |r: Option<&Value>, f: &str| r.and_then(|r| r[f].as_f64()).unwrap_or(0.0);
                json!({
                    field: if name.is_empty() { Value::Null } else { json!(name) },
                    "total_population": num(ra.or(rb), "total_population"),
                    "covered_before": num(ra.or(rb), "covered_before"),
                    "a_covered_after": num(ra, "covered_after"),
                    "b_covered_after": num(rb, "covered_after"),
                    "difference": round(num(rb, "covered_after") - num(ra, "covered_after")),
                })
            })
            .collect()
    };
    let total = |r: &ScenarioRecord| {
        r.results["coverage_after"]["covered_population"]
            .as_f64()
            .unwrap_or(0.0)
    };
    json!({
        "a": { "id": a.id, "name": a.name, "covered_after": total(a) },
        "b": { "id": b.id, "name": b.name, "covered_after": total(b) },
        "difference": round(total(b) - total(a)),
        "by_town": rows("by_town", "town"),
        "by_category": rows("by_category", "category"),
    })
}
