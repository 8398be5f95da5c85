//! Shelter planning over HTTP: coverage equals a brute-force count on a
//! hand-built district, exclusions and keep/exclude are honoured, the
//! solvers answer explicit instances with known optima, scenarios are
//! kept, compared and reported, and bad input is a 400 naming the field.

use onemap::{auth::Role, index::haversine_m};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = app.client.post(app.url(path)).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.expect("the server answers");
    let status = r.status().as_u16();
    if status >= 400 {
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{path} {body}"
        );
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A square cell of `side` degrees with its south-west corner at (x, y).
fn cell(x: f64, y: f64, side: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]]})
}

async fn add(app: &TestApp, token: &str, layer: &str, geometry: Value, properties: Value) -> i64 {
    let (status, body) = post(
        app,
        &format!("/ogc/collections/{layer}/items"),
        Some(token),
        json!({"type": "Feature", "geometry": geometry, "properties": properties}),
    )
    .await;
    assert_eq!(status, 201, "{layer}: {body}");
    body["id"].as_i64().expect("an id")
}

const SIDE: f64 = 0.001;
/// Cells: a row of 10 west of the shelter, one far east cluster of 5, one
/// cluster of 3 under a flood zone; people per cell vary.
struct District {
    cells: Vec<(i64, [f64; 2], f64)>,
    shelter: i64,
    flooded_shelter: i64,
    zone: i64,
    hazard: i64,
}

async fn district(app: &TestApp) -> District {
    let admin = app.token(Role::Admin).await;
    let mut cells = Vec::new();
    let place = |x: f64, y: f64, people: f64| (x, y, people);
    let mut layout = Vec::new();
    for i in 0..10 {
        layout.push(place(
            118.300 + i as f64 * SIDE,
            35.000,
            50.0 + 10.0 * i as f64,
        ));
    }
    for i in 0..5 {
        layout.push(place(118.400 + i as f64 * SIDE, 35.000, 200.0));
    }
    for i in 0..3 {
        layout.push(place(118.350 + i as f64 * SIDE, 35.050, 80.0));
    }
    for (n, (x, y, people)) in layout.into_iter().enumerate() {
        let id = add(
            app,
            &admin,
            "population_grid",
            cell(x, y, SIDE),
            json!({"name": format!("C{n}"), "population": people as i64, "synthetic": true,
                   "town": if x < 118.39 { "罗庄街道" } else { "傅庄街道" }}),
        )
        .await;
        cells.push((id, [x + SIDE / 2.0, y + SIDE / 2.0], people));
    }
    let shelter = add(
        app,
        &admin,
        "shelters",
        json!({"type": "Point", "coordinates": [118.3045, 35.0005]}),
        json!({"name": "西园广场", "kind": "square", "category": "emergency", "capacity": 300, "effective_area_m2": 400.0}),
    )
    .await;
    let zone = add(
        app,
        &admin,
        "flood_zones",
        cell(118.349, 35.049, 0.005),
        json!({"name": "沂河滩地", "risk_level": "high", "kind": "river_floodplain"}),
    )
    .await;
    let flooded_shelter = add(
        app,
        &admin,
        "shelters",
        json!({"type": "Point", "coordinates": [118.351, 35.0505]}),
        json!({"name": "滩地公园", "kind": "park", "category": "fixed", "capacity": 5000}),
    )
    .await;
    let hazard = add(
        app,
        &admin,
        "hazard_sources",
        json!({"type": "Point", "coordinates": [118.410, 35.0005]}),
        json!({"name": "液氨储罐", "class": "ammonia_refrigeration", "risk_level": "high", "evacuation_radius_m": 900.0}),
    )
    .await;
    District {
        cells,
        shelter,
        flooded_shelter,
        zone,
        hazard,
    }
}

fn shelter(coverage: &Value, id: i64) -> &Value {
    coverage["shelters"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id))
        .expect("the shelter is listed")
}

#[tokio::test]
async fn coverage_equals_a_brute_force_count_and_names_the_excluded() {
    let app = spawn_app(false).await;
    let d = district(&app).await;
    let total: f64 = d.cells.iter().map(|c| c.2).sum();
    for radius in [200.0, 500.0, 1_500.0] {
        let c = app
            .get_json(&format!(
                "/api/planning/coverage?category=emergency&radius_m={radius}"
            ))
            .await;
        // Brute force: the one usable shelter (the flooded one is out).
        let at = [118.3045, 35.0005];
        let covered: f64 = d
            .cells
            .iter()
            .filter(|c| haversine_m(c.1, at) <= radius)
            .map(|c| c.2)
            .sum();
        assert_eq!(c["total_population"].as_f64(), Some(total), "{c}");
        assert_eq!(
            c["covered_population"].as_f64(),
            Some(covered),
            "radius {radius}"
        );
        assert_eq!(
            c["covered_population"].as_f64().unwrap_or(-1.0)
                + c["uncovered_population"].as_f64().unwrap_or(-1.0),
            total
        );
        let s = shelter(&c, d.shelter);
        assert_eq!(s["load"].as_f64(), Some(covered));
        assert_eq!(s["capacity"].as_f64(), Some(300.0));
        assert_eq!(s["capacity_source"], "recorded");
        assert_eq!(s["over_capacity"], json!(covered > 300.0));
        let uncovered: Vec<i64> = c["uncovered"]["features"]
            .as_array()
            .expect("uncovered cells")
            .iter()
            .filter_map(|f| f["properties"]["id"].as_i64())
            .collect();
        let mut expected: Vec<i64> = d
            .cells
            .iter()
            .filter(|c| haversine_m(c.1, at) > radius)
            .map(|c| c.0)
            .collect();
        let mut got = uncovered.clone();
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected, "radius {radius}");
    }
    let c = app
        .get_json("/api/planning/coverage?category=emergency&radius_m=2000")
        .await;
    let flooded = shelter(&c, d.flooded_shelter);
    assert_eq!(flooded["excluded"]["reason"], "flood_zone", "{flooded}");
    assert_eq!(flooded["excluded"]["zone"], d.zone);
    assert_eq!(flooded["serves"], false);
    assert_eq!(flooded["load"].as_f64(), Some(0.0));
    // Counted when asked to, and then the flooded cells are covered.
    let with = app
        .get_json("/api/planning/coverage?category=emergency&radius_m=2000&include_excluded=true")
        .await;
    assert!(with["covered_population"].as_f64() > c["covered_population"].as_f64());
    // Effective area per person against the standard (1 m² emergency).
    let s = shelter(&c, d.shelter);
    let load = s["load"].as_f64().unwrap_or(0.0);
    assert_eq!(
        s["area_per_person_m2"].as_f64(),
        Some(((400.0 / load) * 100.0f64).round() / 100.0)
    );
    assert_eq!(s["meets_standard"], json!(400.0 / load >= 1.0));
    assert!(c["standards"]["radius_m"]["source"].is_string());
    let zones = c["exclusion_zones"]["features"].as_array().expect("zones");
    assert!(zones
        .iter()
        .any(|z| z["properties"]["reason"] == "flood_zone"));
    assert!(zones
        .iter()
        .any(|z| z["properties"]["reason"] == "hazard" && z["properties"]["id"] == d.hazard));
}

#[tokio::test]
async fn capacity_aware_coverage_fills_the_shelter_and_no_further() {
    let app = spawn_app(false).await;
    let d = district(&app).await;
    let c = app
        .get_json("/api/planning/coverage?category=emergency&radius_m=1500&capacity_aware=true")
        .await;
    let s = shelter(&c, d.shelter);
    assert_eq!(s["load"].as_f64(), Some(300.0), "{s}");
    assert_eq!(s["over_capacity"], false);
    assert_eq!(c["covered_population"].as_f64(), Some(300.0));
    // Nearest first: the cells next to the shelter are covered, the far end
    // of the row is not.
    let uncovered: Vec<i64> = c["uncovered"]["features"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["properties"]["id"].as_i64())
        .collect();
    assert!(
        uncovered.contains(&d.cells[0].0),
        "the farthest cell of the row is left"
    );
    assert!(
        !uncovered.contains(&d.cells[4].0),
        "the cell at the shelter is covered"
    );
}

#[tokio::test]
async fn siting_keeps_out_of_flood_zones_and_hazard_radii_and_honours_keep_and_exclude() {
    let app = spawn_app(false).await;
    let d = district(&app).await;
    // The best spot for the east cluster lies inside the hazard's radius;
    // the flooded spot covers the flooded cluster; two plain ones.
    let candidates = json!([
        {"id": "hazard-side", "lon": 118.4025, "lat": 35.0005},
        {"id": "flooded", "lon": 118.351, "lat": 35.0505},
        {"id": "east-ok", "lon": 118.3995, "lat": 35.0005},
        {"id": "north-ok", "lon": 118.3515, "lat": 35.0575},
    ]);
    let (status, a) = post(
        &app,
        "/api/planning/siting",
        None,
        json!({"k": 1, "radius_m": 500, "category": "emergency", "candidates": candidates}),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    let ruled: Vec<(String, String)> = a["ruled_out"]
        .as_array()
        .expect("ruled out")
        .iter()
        .map(|r| {
            (
                r["candidate"].as_str().unwrap_or("").to_owned(),
                r["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(
        ruled.contains(&("flooded".into(), "flood_zone".into())),
        "{ruled:?}"
    );
    assert!(
        ruled.contains(&("hazard-side".into(), "hazard".into())),
        "{ruled:?}"
    );
    let sites = a["sites"]["features"].as_array().expect("sites");
    assert_eq!(sites.len(), 1);
    assert_eq!(sites[0]["properties"]["candidate"], "east-ok", "{a}");
    assert_eq!(
        a["optimal"], true,
        "a small instance is proven optimal: {a}"
    );
    let gain = sites[0]["properties"]["marginal_gain"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(gain > 0.0);
    let before = a["before"]["covered_population"].as_f64().unwrap_or(0.0);
    assert_eq!(
        a["after"]["covered_population"].as_f64(),
        Some(before + gain)
    );
    // The east cluster (5 × 200) is what east-ok covers at 500 m.
    let expected: f64 = d
        .cells
        .iter()
        .filter(|c| haversine_m(c.1, [118.3995, 35.0005]) <= 500.0)
        .map(|c| c.2)
        .sum();
    assert_eq!(gain, expected);

    // Excluding it leaves north-ok; keeping north-ok with k = 2 keeps it.
    let (_, a) = post(
        &app,
        "/api/planning/siting",
        None,
        json!({"k": 1, "radius_m": 500, "candidates": candidates, "exclude": ["east-ok"]}),
    )
    .await;
    assert_eq!(
        a["sites"]["features"][0]["properties"]["candidate"], "north-ok",
        "{a}"
    );
    assert!(a["ruled_out"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["candidate"] == "east-ok" && r["reason"] == "excluded"));
    let (_, a) = post(
        &app,
        "/api/planning/siting",
        None,
        json!({"k": 2, "radius_m": 500, "candidates": candidates, "keep": ["north-ok"]}),
    )
    .await;
    let chosen: Vec<&str> = a["sites"]["features"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["properties"]["candidate"].as_str())
        .collect();
    assert_eq!(
        chosen,
        vec!["north-ok", "east-ok"],
        "keep first, then by gain: {a}"
    );
    // Keeping a ruled-out candidate is refused, naming `keep`.
    let (status, p) = post(
        &app,
        "/api/planning/siting",
        None,
        json!({"k": 1, "candidates": candidates, "keep": ["flooded"]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        p["detail"].as_str().is_some_and(|d| d.contains("keep")),
        "{p}"
    );
}

#[tokio::test]
async fn siting_on_the_grid_is_proven_optimal_and_never_picks_an_excluded_cell() {
    let app = spawn_app(false).await;
    let d = district(&app).await;
    let (status, a) = post(
        &app,
        "/api/planning/siting",
        None,
        json!({"k": 2, "radius_m": 300, "candidates": "grid"}),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["optimal"], true, "{a}");
    let sites = a["sites"]["features"].as_array().expect("sites");
    assert_eq!(sites.len(), 2);
    let flooded: Vec<i64> = d.cells[15..].iter().map(|c| c.0).collect();
    for s in sites {
        let id = s["properties"]["candidate"].as_i64().expect("a cell id");
        assert!(!flooded.contains(&id), "cell {id} lies in the flood zone");
    }
    for r in a["ruled_out"].as_array().into_iter().flatten() {
        assert!(
            r["reason"] == "flood_zone" || r["reason"] == "hazard",
            "{r}"
        );
    }
    assert!(a["ruled_out"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["reason"] == "flood_zone"));
    // Brute force over every pair of usable cells gives the same gain.
    let usable: Vec<&(i64, [f64; 2], f64)> = d
        .cells
        .iter()
        .filter(|c| !flooded.contains(&c.0) && haversine_m(c.1, [118.410, 35.0005]) > 900.0)
        .collect();
    let before: Vec<bool> = d
        .cells
        .iter()
        .map(|c| haversine_m(c.1, [118.3045, 35.0005]) <= 300.0)
        .collect();
    let mut best = 0.0f64;
    for i in 0..usable.len() {
        for j in i + 1..usable.len() {
            let gain: f64 = d
                .cells
                .iter()
                .zip(&before)
                .filter(|(c, b)| {
                    !**b && (haversine_m(c.1, usable[i].1) <= 300.0
                        || haversine_m(c.1, usable[j].1) <= 300.0)
                })
                .map(|(c, _)| c.2)
                .sum();
            best = best.max(gain);
        }
    }
    let got = a["newly_covered_population"].as_f64().unwrap_or(-1.0);
    assert!(
        (got - best).abs() < 1e-6,
        "solver {got}, enumeration {best}"
    );
}

#[tokio::test]
async fn explicit_instances_have_their_known_optima() {
    let app = spawn_app(false).await;
    // Greedy takes the middle site (covers 6) and then can add only 2 more;
    // the optimum takes both ends (4 + 4 = 8).
    let demand: Vec<Value> = (0..8)
        .map(|i| json!({"id": format!("d{i}"), "weight": 1}))
        .collect();
    let mut costs = Vec::new();
    for i in 0..4 {
        costs.push(json!({"demand": format!("d{i}"), "candidate": "west", "cost": 1}));
    }
    for i in 4..8 {
        costs.push(json!({"demand": format!("d{i}"), "candidate": "east", "cost": 1}));
    }
    for i in 1..7 {
        costs.push(json!({"demand": format!("d{i}"), "candidate": "middle", "cost": 1}));
    }
    let body = json!({"k": 2, "demand": demand, "candidates": [{"id": "west"}, {"id": "middle"}, {"id": "east"}], "costs": costs});
    let (status, a) = post(&app, "/api/planning/siting", None, body.clone()).await;
    assert_eq!(status, 200, "{a}");
    let mut chosen: Vec<String> = a["chosen"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    chosen.sort();
    assert_eq!(chosen, vec!["east", "west"], "{a}");
    assert_eq!(a["covered_weight"].as_f64(), Some(8.0));
    assert_eq!(a["optimal"], true);
    assert_eq!(a["uncovered"], json!([]));

    // Set cover: both ends cover everyone; keeping the middle needs both
    // ends still (d0 and d7), three sites.
    let mut sc = body.clone();
    sc["objective"] = json!("set_cover");
    sc.as_object_mut().map(|o| o.remove("k"));
    let (_, a) = post(&app, "/api/planning/siting", None, sc.clone()).await;
    assert_eq!(a["chosen"].as_array().map(Vec::len), Some(2), "{a}");
    sc["keep"] = json!(["middle"]);
    let (_, a) = post(&app, "/api/planning/siting", None, sc).await;
    assert_eq!(a["chosen"].as_array().map(Vec::len), Some(3), "{a}");
    assert_eq!(a["chosen"][0], "middle");

    // p-median: two demand points, three sites; with k = 1 the middle one
    // (3 + 3) beats either end (0 + 10).
    let pm = json!({"k": 1, "objective": "p_median",
        "demand": [{"id": 1, "weight": 1}, {"id": 2, "weight": 1}],
        "candidates": [{"id": "a"}, {"id": "m"}, {"id": "b"}],
        "costs": [
            {"demand": 1, "candidate": "a", "cost": 0}, {"demand": 2, "candidate": "a", "cost": 10},
            {"demand": 1, "candidate": "m", "cost": 3}, {"demand": 2, "candidate": "m", "cost": 3},
            {"demand": 1, "candidate": "b", "cost": 10}, {"demand": 2, "candidate": "b", "cost": 0}]});
    let (status, a) = post(&app, "/api/planning/siting", None, pm).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["chosen"], json!(["m"]), "{a}");
    assert_eq!(a["cost"].as_f64(), Some(6.0));
    assert_eq!(a["optimal"], true);
}

#[tokio::test]
async fn bad_planning_input_is_a_400_naming_the_field() {
    let app = spawn_app(false).await;
    // An empty grid first.
    let (status, p) = post(&app, "/api/planning/siting", None, json!({"k": 1})).await;
    assert_eq!(status, 400, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("population")),
        "{p}"
    );
    let r = app.get("/api/planning/coverage").await;
    assert_eq!(r.status(), 400);
    let _d = district(&app).await;
    let points = json!([[118.30, 35.0], [118.31, 35.0]]);
    for (body, field) in [
        (json!({"k": 0, "candidates": points}), "k"),
        (json!({"k": 3, "candidates": points}), "k"),
        (json!({"k": "2", "candidates": points}), "k"),
        (
            json!({"k": 1, "radius_m": 0, "candidates": points}),
            "radius_m",
        ),
        (
            json!({"k": 1, "radius_m": 60000, "candidates": points}),
            "radius_m",
        ),
        (
            json!({"k": 1, "category": "hotel", "candidates": points}),
            "category",
        ),
        (json!({"k": 1, "candidates": "no_such_layer"}), "candidates"),
        (json!({"k": 1, "candidates": [[200, 35]]}), "candidates[0]"),
        (json!({"k": 1, "candidates": points, "keep": [9]}), "keep"),
        (
            json!({"k": 1, "candidates": points, "colour": "red"}),
            "colour",
        ),
        (
            json!({"k": 1, "candidates": points, "capacity_aware": true}),
            "capacity",
        ),
        (
            json!({"k": 1, "candidates": points, "objective": "fastest"}),
            "objective",
        ),
        (
            json!({"k": 1, "demand": [{"id": 1, "weight": 1}], "candidates": [{"id": "a"}],
                "costs": [{"demand": 2, "candidate": "a", "cost": 1}]}),
            "costs[0].demand",
        ),
        (
            json!({"k": 1, "demand": [{"id": 1, "weight": 1}], "candidates": [{"id": "a"}],
                "costs": [{"demand": 1, "candidate": "z", "cost": 1}]}),
            "costs[0].candidate",
        ),
        (
            json!({"k": 1, "demand": [{"id": 1, "weight": 1}], "candidates": [{"id": "a"}],
                "costs": [{"demand": 1, "candidate": "a", "cost": -1}]}),
            "costs[0].cost",
        ),
        (
            json!({"k": 1, "demand": [{"id": 1, "weight": -5}], "candidates": [{"id": "a"}], "costs": []}),
            "demand[0].weight",
        ),
    ] {
        let (status, p) = post(&app, "/api/planning/siting", None, body.clone()).await;
        assert_eq!(status, 400, "{body}: {p}");
        let detail = p["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(&format!("`{field}`")), "{body}: {detail}");
    }
    for (query, field) in [
        ("category=hotel", "category"),
        ("radius_m=-1", "radius_m"),
        ("radius_m=50001", "radius_m"),
        ("capacity_aware=maybe", "capacity_aware"),
        ("zoom=3", "zoom"),
    ] {
        let r = app.get(&format!("/api/planning/coverage?{query}")).await;
        assert_eq!(r.status(), 400, "{query}");
        let p: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            p["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("`{field}`"))),
            "{query}: {p}"
        );
    }
}

#[tokio::test]
async fn scenarios_are_kept_compared_and_reported() {
    let app = spawn_app(false).await;
    let _d = district(&app).await;
    let planner = app.token(Role::Planner).await;
    let siting = json!({"k": 1, "radius_m": 500, "candidates": "grid"});
    let (status, _) = post(
        &app,
        "/api/planning/scenarios",
        None,
        json!({"name": "x", "siting": siting}),
    )
    .await;
    assert_eq!(status, 401, "saving needs a planner");
    let viewer = app.token(Role::Viewer).await;
    let (status, _) = post(
        &app,
        "/api/planning/scenarios",
        Some(&viewer),
        json!({"name": "x", "siting": siting}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, a) = post(
        &app,
        "/api/planning/scenarios",
        Some(&planner),
        json!({"name": "一处新场所", "siting": siting}),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    let (status, b) = post(
        &app,
        "/api/planning/scenarios",
        Some(&planner),
        // Grid cells cannot reach the flooded cluster (its own cells are
        // ruled out); a site just north of the zone can.
        json!({"name": "三处新场所", "siting": {"k": 3, "radius_m": 500, "candidates": [
            {"id": "east", "lon": 118.3995, "lat": 35.0005},
            {"id": "north", "lon": 118.3515, "lat": 35.0545},
            {"id": "west", "lon": 118.2950, "lat": 35.0005}]}}),
    )
    .await;
    assert_eq!(status, 201, "{b}");
    let (ida, idb) = (a["id"].as_i64().expect("id"), b["id"].as_i64().expect("id"));
    let shown = app
        .get_json(&format!("/api/planning/scenarios/{ida}"))
        .await;
    assert_eq!(shown["name"], "一处新场所");
    assert_eq!(shown["results"], a["results"]);
    let list = app.get_json("/api/planning/scenarios").await;
    assert_eq!(list["scenarios"][0]["id"], idb, "newest first");

    let cmp = app
        .get_json(&format!("/api/planning/scenarios/{ida}/compare?with={idb}"))
        .await;
    let covered = |s: &Value| {
        s["results"]["coverage_after"]["covered_population"]
            .as_f64()
            .unwrap_or(0.0)
    };
    assert_eq!(
        cmp["difference"].as_f64(),
        Some(((covered(&b) - covered(&a)) * 100.0).round() / 100.0)
    );
    assert!(covered(&b) > covered(&a));
    let towns: Vec<&str> = cmp["by_town"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["town"].as_str())
        .collect();
    assert_eq!(towns, vec!["傅庄街道", "罗庄街道"]);
    let town_sum: f64 = cmp["by_town"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["b_covered_after"].as_f64())
        .sum();
    assert!((town_sum - covered(&b)).abs() < 0.01, "{cmp}");
    assert_eq!(cmp["by_category"].as_array().map(Vec::len), Some(3));

    let r = app
        .get(&format!("/api/planning/scenarios/{idb}/report?f=md"))
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap_or("")
        .contains("attachment"));
    let md = r.text().await.expect("text");
    assert!(md.contains("三处新场所"));
    assert!(md.contains("GB 50413-2007"), "the standards are named");
    for site in b["results"]["siting"]["sites"]["features"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = site["properties"]["candidate"].as_str().map_or_else(
            || site["properties"]["candidate"].to_string(),
            str::to_owned,
        );
        assert!(md.contains(&format!("| {id} |")), "site {id} in the report");
    }
    let csv = app
        .get(&format!("/api/planning/scenarios/{idb}/report?f=csv"))
        .await
        .text()
        .await
        .expect("csv");
    assert!(csv.starts_with('\u{feff}'));
    assert_eq!(csv.lines().count(), 1 + 3, "a header and one row per site");
    let gj = app
        .get_json(&format!("/api/planning/scenarios/{idb}/sites.geojson"))
        .await;
    assert_eq!(gj["features"].as_array().map(Vec::len), Some(3));
    app.assert_problem("/api/planning/scenarios/999", 404).await;
    app.assert_problem("/api/planning/scenarios/abc", 400).await;
    app.assert_problem(&format!("/api/planning/scenarios/{ida}/report?f=pdf"), 400)
        .await;
}

#[tokio::test]
async fn the_demo_district_has_coverage_and_sites() {
    let app = spawn_app(true).await;
    let c = app.get_json("/api/planning/coverage").await;
    let total = c["total_population"].as_f64().expect("total");
    assert!(total > 100_000.0, "{total}");
    let (cov, unc) = (
        c["covered_population"].as_f64().unwrap_or(0.0),
        c["uncovered_population"].as_f64().unwrap_or(0.0),
    );
    assert!((cov + unc - total).abs() < 0.01);
    assert!(cov > 0.0 && unc > 0.0, "the demo has both: {cov} {unc}");
    let (status, a) = post(
        &app,
        "/api/planning/siting",
        None,
        json!({"k": 5, "candidates": "grid"}),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["sites"]["features"].as_array().map(Vec::len), Some(5));
    assert!(a["after"]["covered_population"].as_f64() > a["before"]["covered_population"].as_f64());
}

/// "grid" candidates from a grid of more cells than a siting may weigh are
/// refused up front with the count, not after building 50,001 candidates.
#[tokio::test]
async fn grid_candidates_beyond_the_cap_are_refused_naming_the_field() {
    let app = spawn_app(false).await;
    let admin = app.token(Role::Admin).await;
    let n = onemap::planning::siting::MAX_CANDIDATES + 1;
    let side = 0.0005;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let (x, y) = (118.0 + (i % 300) as f64 * side, 34.9 + (i / 300) as f64 * side);
            json!({"type": "Feature", "geometry": cell(x, y, side), "properties": {"name": format!("c{i}"), "population": 1, "synthetic": true}})
                .to_string()
        })
        .collect();
    let r = app
        .client
        .post(app.url("/api/import/population_grid"))
        .bearer_auth(&admin)
        .header("content-type", "application/x-ndjson")
        .body(lines.join("\n"))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        r.status(),
        201,
        "{}",
        r.text()
            .await
            .unwrap_or_default()
            .chars()
            .take(600)
            .collect::<String>()
    );
    let (status, p) = post(
        &app,
        "/api/planning/siting",
        None,
        json!({"k": 1, "candidates": "grid"}),
    )
    .await;
    assert_eq!(status, 400, "{p}");
    let detail = p["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("`candidates`") && detail.contains(&format!("{n} candidates")),
        "{p}"
    );
}
