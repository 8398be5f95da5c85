//! The Luozhuang demo: its counts match the district's published 2020
//! figures, it is loaded only into an empty database, and it is idempotent.

use std::collections::{BTreeSet, HashMap};

use onemap::{demo, layers::Feature, store::Query};
use serde_json::Value;

use crate::helpers::{spawn_app, spawn_app_in, TestApp};

async fn all(app: &TestApp, layer: &str) -> Vec<Feature> {
    let layer = app.catalog.get(layer).expect("a catalog layer");
    app.store
        .features(layer, &Query::default())
        .await
        .expect("the layer reads")
}

fn text<'a>(f: &'a Feature, key: &str) -> &'a str {
    f.properties
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn count_where(fs: &[Feature], key: &str, value: &str) -> usize {
    fs.iter().filter(|f| text(f, key) == value).count()
}

#[tokio::test]
async fn demo_counts_match_the_published_figures() {
    let app = spawn_app(true).await;

    let enterprises = all(&app, "enterprises").await;
    assert_eq!(
        count_where(&enterprises, "supervision", "district_key"),
        135
    );
    assert_eq!(
        count_where(&enterprises, "industry", "chemical"),
        4,
        "general chemical plants"
    );
    let liaisons: BTreeSet<&str> = enterprises.iter().map(|f| text(f, "liaison")).collect();
    assert_eq!(liaisons.len(), 29, "liaison officers");

    let cameras = all(&app, "cameras").await;
    let camera_firms: BTreeSet<&str> = cameras.iter().map(|f| text(f, "enterprise")).collect();
    assert_eq!(camera_firms.len(), 165, "enterprises with cameras");
    let channels: i64 = cameras
        .iter()
        .map(|f| f.properties["channels"].as_i64().unwrap_or(0))
        .sum();
    assert!(channels > 800, "over 800 camera channels, got {channels}");

    let hazards = all(&app, "hazard_sources").await;
    assert_eq!(count_where(&hazards, "class", "hazchem_producer"), 4);
    for class in [
        "gas_station",
        "dust_explosion",
        "ammonia_refrigeration",
        "major_hazard",
    ] {
        assert!(count_where(&hazards, "class", class) > 0, "{class}");
    }

    assert_eq!(all(&app, "seismic_stations").await.len(), 2);

    let teams = all(&app, "rescue_teams").await;
    for kind in [
        "comprehensive_fire_rescue",
        "water_rescue",
        "mine_rescue",
        "hazchem_rescue",
        "medical",
        "militia",
        "volunteer",
    ] {
        assert!(count_where(&teams, "team_type", kind) > 0, "a {kind} team");
    }

    let depots = all(&app, "supply_depots").await;
    let items: BTreeSet<String> = depots
        .iter()
        .flat_map(|d| {
            d.properties["inventory"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|i| i["item"].as_str().map(str::to_owned))
        .collect();
    for item in [
        "masks",
        "isolation_gowns",
        "sandbags",
        "assault_boats",
        "life_jackets",
        "pumps",
        "generators",
        "tents",
    ] {
        assert!(items.contains(item), "{item} in some depot");
    }

    let shelters = all(&app, "shelters").await;
    for kind in ["park", "square", "school", "stadium", "civil_air_defense"] {
        assert!(count_where(&shelters, "kind", kind) > 0, "a {kind} shelter");
    }
    assert!(shelters
        .iter()
        .any(|s| matches!(s.geometry, geo::Geometry::Polygon(_))));
    assert!(shelters
        .iter()
        .any(|s| matches!(s.geometry, geo::Geometry::Point(_))));

    let grid = all(&app, "population_grid").await;
    let people: i64 = grid
        .iter()
        .map(|c| c.properties["population"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(people, demo::POPULATION);
    assert!(grid
        .iter()
        .all(|c| c.properties["synthetic"] == Value::Bool(true)));

    let districts = all(&app, "districts").await;
    assert_eq!(districts.len(), 12, "Linyi's 12 county-level divisions");
    let multi = districts
        .iter()
        .filter(|d| matches!(d.geometry, geo::Geometry::MultiPolygon(_)))
        .count();
    assert_eq!(multi, 2, "Lanshan and Fei are MultiPolygons");
    assert!(!all(&app, "flood_zones").await.is_empty());
}

#[tokio::test]
async fn demo_boundaries_are_converted_from_gcj02_to_wgs84() {
    let app = spawn_app(true).await;
    let districts = all(&app, "districts").await;
    let luozhuang = districts
        .iter()
        .find(|d| text(d, "adcode") == demo::LUOZHUANG)
        .expect("Luozhuang");
    assert_eq!(text(luozhuang, "name"), "罗庄区");
    // SOURCE.md: the boundary spans lon 118.100–118.432 in GCJ-02; WGS84 is
    // ≈ 0.005–0.006° further west.
    use geo::BoundingRect;
    let r = luozhuang.geometry.bounding_rect().expect("a boundary");
    assert!(
        (r.min().x - (118.100 - 0.0058)).abs() < 0.0015,
        "min lon {}",
        r.min().x
    );
    assert!(
        (r.max().x - (118.432 - 0.0058)).abs() < 0.0015,
        "max lon {}",
        r.max().x
    );
}

#[tokio::test]
async fn demo_fills_only_an_empty_database_and_loads_once() {
    let app = spawn_app(true).await;
    let before = counts(&app).await;
    let dir = app.stop().await;
    let again = spawn_app_in(dir, true).await;
    assert_eq!(
        counts(&again).await,
        before,
        "a second --demo changes nothing"
    );

    // A database holding one feature of its own is not a place for the demo.
    let own = spawn_app(false).await;
    let layer = own.catalog.get("incidents").expect("incidents").clone();
    let f = Feature::new(
        geo::point! { x: 118.3, y: 35.0 },
        serde_json::json!({"name": "x", "type": "fire", "status": "reported", "reported_at": "2026-07-01T00:00:00Z"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    own.store
        .insert(&layer, &[f], "test")
        .await
        .expect("stored");
    let dir = own.stop().await;
    let with_demo = spawn_app_in(dir, true).await;
    let c = counts(&with_demo).await;
    assert_eq!(c["incidents"], 1);
    assert_eq!(c.values().sum::<u64>(), 1);
}

async fn counts(app: &TestApp) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for layer in app.catalog.layers() {
        let n = app
            .store
            .count(layer, &Query::default())
            .await
            .expect("count");
        out.insert(layer.name.clone(), n);
    }
    out
}
