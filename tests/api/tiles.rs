//! Vector tiles decoded by an independent decoder (GDAL's MVT driver):
//! every feature meeting the tile is there with its geometry and
//! properties, clipping at tile and world edges, clusters that account for
//! every point, edits that change exactly the tiles covering them, 204, 304
//! and TileJSON.

use std::collections::BTreeMap;

use geo::{Area, BooleanOps, BoundingRect};
use onemap::{
    auth::Role,
    index::{lonlat_to_mercator, tile_bounds},
    layers::Feature,
    store::Query,
    tiles::build::{BUFFER, EXTENT},
};
use serde_json::{json, Value};
use tokio::process::Command;

use crate::helpers::{spawn_app, TestApp};

/// Tile z/x/y containing a lon/lat.
pub(crate) fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let x = ((lon + 180.0) / 360.0 * n).floor() as u32;
    let lat = lat.to_radians();
    let y = ((1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor()
        as u32;
    (x, y)
}

/// Decode a tile with GDAL into features per layer (EPSG:3857 geometries).
pub(crate) async fn decode(
    app: &TestApp,
    layers: &str,
    z: u8,
    x: u32,
    y: u32,
) -> BTreeMap<String, Vec<Feature>> {
    decode_path(app, &format!("/tiles/{layers}/{z}/{x}/{y}.mvt"), (z, x, y)).await
}

/// [`decode`] of any tile path (a filtered tile, say).
pub(crate) async fn decode_path(
    app: &TestApp,
    path: &str,
    (z, x, y): (u8, u32, u32),
) -> BTreeMap<String, Vec<Feature>> {
    let r = app.get(path).await;
    if r.status() == 204 {
        return BTreeMap::new();
    }
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.mapbox-vector-tile"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let tile = dir.path().join("t.mvt");
    std::fs::write(&tile, r.bytes().await.expect("bytes")).expect("write");
    let out = dir.path().join("t.gpkg");
    let o = Command::new("ogr2ogr")
        .args([
            "-f",
            "GPKG",
            out.to_str().expect("p"),
            tile.to_str().expect("p"),
        ])
        .args([
            "-oo",
            &format!("X={x}"),
            "-oo",
            &format!("Y={y}"),
            "-oo",
            &format!("Z={z}"),
            "-oo",
            "CLIP=NO",
        ])
        .output()
        .await
        .expect("GDAL's ogr2ogr is needed for this test (apt-get install gdal-bin)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut result = BTreeMap::new();
    for layer in app.catalog.layers() {
        if let Ok(parsed) = onemap::formats::gpkg::read(layer, &out).await {
            let found: Vec<Feature> = parsed.features;
            if !found.is_empty()
                && found.iter().any(|f| {
                    f.properties.contains_key("id") || f.properties.contains_key("point_count")
                })
            {
                result.insert(layer.name.clone(), found);
            }
        }
    }
    // ogr2ogr names each table after its MVT layer; read only those present.
    result.retain(|name, _| app.catalog.get(name).is_some());
    result
}

fn buffered(z: u8, x: u32, y: u32) -> geo::Polygon<f64> {
    let (min, max) = tile_bounds(z, x, y);
    let pad = BUFFER * (max[0] - min[0]) / f64::from(EXTENT);
    geo::Rect::new(
        geo::coord! { x: min[0] - pad, y: min[1] - pad },
        geo::coord! { x: max[0] + pad, y: max[1] + pad },
    )
    .to_polygon()
}

fn project(g: &geo::Geometry<f64>) -> geo::Geometry<f64> {
    use geo::MapCoords;
    g.map_coords(|c| {
        let (x, y) = lonlat_to_mercator(c.x, c.y);
        geo::coord! { x: x, y: y }
    })
}

#[tokio::test]
async fn every_point_meeting_a_tile_is_in_it_with_geometry_and_properties() {
    let app = spawn_app(true).await;
    let z = 12;
    let (x, y) = tile_of(118.29, 34.99, z);
    let tile = decode(&app, "onemap", z, x, y).await;
    let area = buffered(z, x, y);
    let quantum = (tile_bounds(z, x, y).1[0] - tile_bounds(z, x, y).0[0]) / f64::from(EXTENT);
    let mut checked = 0;
    for name in [
        "rescue_teams",
        "enterprises",
        "hazard_sources",
        "cameras",
        "shelters",
    ] {
        let layer = app.catalog.get(name).expect("layer");
        let stored = app
            .store
            .features(layer, &Query::default())
            .await
            .expect("reads");
        use geo::Intersects;
        let expected: BTreeMap<i64, &Feature> = stored
            .iter()
            .filter(|f| area.intersects(&project(&f.geometry)))
            .map(|f| (f.id.unwrap_or_default(), f))
            .collect();
        let got = tile.get(name).cloned().unwrap_or_default();
        let got: BTreeMap<i64, Feature> = got
            .into_iter()
            .map(|f| {
                (
                    f.properties.get("id").and_then(Value::as_i64).unwrap_or(-1),
                    f,
                )
            })
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (id, f) in &expected {
            let decoded = &got[id];
            assert_eq!(
                decoded.properties.get("name"),
                f.properties.get("name"),
                "{name} {id}"
            );
            if let (geo::Geometry::Point(a), geo::Geometry::Point(b)) =
                (project(&f.geometry), &decoded.geometry)
            {
                assert!(
                    (a.x() - b.x()).abs() <= quantum && (a.y() - b.y()).abs() <= quantum,
                    "{name} {id}: {a:?} vs {b:?}"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "the district seat tile holds many features ({checked})"
    );
}

#[tokio::test]
async fn polygons_are_clipped_to_the_buffered_tile_without_losing_area() {
    let app = spawn_app(true).await;
    let z = 11;
    let (x, y) = tile_of(118.28, 34.95, z);
    let tile = decode(&app, "districts", z, x, y).await;
    let area = buffered(z, x, y);
    let b = area.bounding_rect().expect("rect");
    let decoded = tile.get("districts").expect("districts in the tile");
    let layer = app.catalog.get("districts").expect("layer");
    let stored = app
        .store
        .features(layer, &Query::default())
        .await
        .expect("reads");
    for f in decoded {
        let r = f.geometry.bounding_rect().expect("geometry");
        let slack = 2.0 * (b.width() / f64::from(EXTENT));
        assert!(
            r.min().x >= b.min().x - slack && r.max().x <= b.max().x + slack,
            "clipped in x"
        );
        assert!(
            r.min().y >= b.min().y - slack && r.max().y <= b.max().y + slack,
            "clipped in y"
        );
        let id = f.properties.get("id").and_then(Value::as_i64).expect("id");
        let original = stored.iter().find(|s| s.id == Some(id)).expect("original");
        let expected = match project(&original.geometry) {
            geo::Geometry::Polygon(p) => geo::MultiPolygon::new(vec![p]).intersection(&area),
            geo::Geometry::MultiPolygon(m) => m.intersection(&area),
            _ => panic!("districts are polygons"),
        };
        let (want, got) = (expected.unsigned_area(), f.geometry.unsigned_area());
        assert!(
            (want - got).abs() / want < 0.02,
            "district {id}: area {got} vs {want}"
        );
    }
}

/// The cameras of tile z/x/y, after checking that every one of `points`
/// in its buffered area is drawn or counted in a cluster: the features, how
/// many points the area holds, how many features are clusters.
async fn every_point_drawn_or_counted(
    app: &TestApp,
    points: &[Feature],
    z: u8,
    x: u32,
    y: u32,
) -> (Vec<Feature>, usize, usize) {
    let got = decode(app, "cameras", z, x, y)
        .await
        .get("cameras")
        .cloned()
        .unwrap_or_default();
    let area = buffered(z, x, y);
    use geo::Intersects;
    let expected = points
        .iter()
        .filter(|f| area.intersects(&project(&f.geometry)))
        .count();
    let counted: i64 = got
        .iter()
        .map(|f| {
            f.properties
                .get("point_count")
                .and_then(Value::as_i64)
                .unwrap_or(1)
        })
        .sum();
    assert_eq!(
        counted as usize, expected,
        "zoom {z}: drawn + clustered = every point"
    );
    let clusters = got
        .iter()
        .filter(|f| f.properties.contains_key("point_count"))
        .count();
    (got, expected, clusters)
}

#[tokio::test]
async fn dense_points_cluster_and_every_point_is_drawn_or_counted() {
    let app = spawn_app(false).await;
    let layer = app.catalog.get("cameras").expect("layer").clone();
    let mut points = Vec::new();
    for i in 0..3000 {
        let (dx, dy) = ((i % 60) as f64 * 0.0011, (i / 60) as f64 * 0.0009);
        points.push(Feature::new(
            geo::point! { x: 118.25 + dx, y: 34.95 + dy },
            json!({"name": format!("c{i}"), "channels": 4})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ));
    }
    app.store
        .insert(&layer, &points, "test")
        .await
        .expect("stored");
    // Written behind the server's back: a restart loads them into the index.
    let dir = app.stop().await;
    let app = crate::helpers::spawn_app_in(dir, false).await;
    for z in [4u8, 8, 10, 12, 14, 16] {
        let (x, y) = tile_of(118.28, 34.97, z);
        let (got, expected, clusters) = every_point_drawn_or_counted(&app, &points, z, x, y).await;
        // The cluster grid has this many cells a side over the buffered
        // tile (one extra each way for the buffer, one for its far edge).
        let side = (4096.0 / onemap::tiles::build::CLUSTER_CELL) as usize + 3;
        if clusters > 0 {
            assert!(
                got.len() <= side * side,
                "zoom {z}: at most one feature per grid cell ({} > {})",
                got.len(),
                side * side
            );
        } else {
            assert_eq!(
                got.len(),
                expected,
                "zoom {z}: unclustered, every point drawn"
            );
        }
        if z <= 12 {
            assert!(clusters > 0, "zoom {z}: dense points are clustered");
        }
        if z >= 15 {
            assert_eq!(
                (clusters, got.len()),
                (0, expected),
                "zoom {z} draws every point"
            );
        }
    }
}

#[tokio::test]
async fn a_tile_too_dense_to_draw_is_clustered_at_any_zoom_and_splits_deeper() {
    let app = spawn_app(true).await;
    let layer = app.catalog.get("cameras").expect("layer").clone();
    // 6,400 cameras in a square of about 250 m around the middle of one
    // z16 tile.
    let (tx, ty) = tile_of(118.4005, 35.0505, 16);
    let n = f64::from(1u32 << 16);
    let mid_lon = (f64::from(tx) + 0.5) / n * 360.0 - 180.0;
    let mid_lat = (std::f64::consts::PI * (1.0 - 2.0 * (f64::from(ty) + 0.5) / n))
        .sinh()
        .atan()
        .to_degrees();
    let (lon0, lat0) = (mid_lon - 0.0012, mid_lat - 0.0012);
    let points: Vec<Feature> = (0..6400)
        .map(|i| {
            let (dx, dy) = ((i % 80) as f64 * 0.000_03, (i / 80) as f64 * 0.000_03);
            Feature::new(
                geo::point! { x: lon0 + dx, y: lat0 + dy },
                json!({"name": format!("d{i}"), "channels": 2})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect();
    app.store
        .insert(&layer, &points, "test")
        .await
        .expect("stored");
    let dir = app.stop().await;
    let app = crate::helpers::spawn_app_in(dir, false).await;
    for z in [16u8, 17, 18, 20] {
        let (x, y) = tile_of(mid_lon, mid_lat, z);
        let path = format!("/tiles/cameras/{z}/{x}/{y}.mvt");
        let bytes = app.get(&path).await.bytes().await.expect("tile").len();
        let (got, expected, clusters) = every_point_drawn_or_counted(&app, &points, z, x, y).await;
        if expected > onemap::tiles::build::DENSE_POINT_BUDGET {
            assert!(clusters > 0, "zoom {z}: {expected} points are clustered");
        } else {
            assert_eq!(
                (clusters, got.len()),
                (0, expected),
                "zoom {z}: every point drawn"
            );
        }
        assert!(bytes < 500_000, "zoom {z}: {bytes} bytes");
        if z == 16 {
            assert!(expected > 6000, "the blob is in the z16 tile ({expected})");
        }
        if z == 20 {
            assert!(expected > 0 && clusters == 0, "deep enough, points again");
        }
    }
}

#[tokio::test]
async fn an_edit_changes_the_tiles_that_cover_it_and_only_those() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Dispatcher).await;
    let z = 14;
    let team = app.get_json("/ogc/collections/rescue_teams/items/1").await;
    let (lon, lat) = (
        team["geometry"]["coordinates"][0].as_f64().expect("lon"),
        team["geometry"]["coordinates"][1].as_f64().expect("lat"),
    );
    let (x, y) = tile_of(lon, lat, z);
    let etag = |p: String| {
        let app = &app;
        async move {
            app.get(&p)
                .await
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap_or_default().to_owned())
        }
    };
    let covering = format!("/tiles/rescue_teams/{z}/{x}/{y}.mvt");
    let other_team = app.get_json("/ogc/collections/rescue_teams/items/9").await;
    let (ox, oy) = tile_of(
        other_team["geometry"]["coordinates"][0]
            .as_f64()
            .unwrap_or(0.0),
        other_team["geometry"]["coordinates"][1]
            .as_f64()
            .unwrap_or(0.0),
        z,
    );
    assert_ne!((ox, oy), (x, y), "the two teams sit in different tiles");
    let elsewhere = format!("/tiles/rescue_teams/{z}/{ox}/{oy}.mvt");
    let (before, other_before) = (etag(covering.clone()).await, etag(elsewhere.clone()).await);
    assert!(before.is_some() && other_before.is_some());

    let r = app
        .client
        .patch(app.url("/ogc/collections/rescue_teams/items/1"))
        .bearer_auth(&token)
        .header("content-type", "application/merge-patch+json")
        .body(json!({"properties": {"status": "on_scene"}}).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    assert_ne!(
        etag(covering.clone()).await,
        before,
        "the covering tile changed at once"
    );
    let builds = || async {
        let text = app.get("/metrics").await.text().await.expect("metrics");
        text.lines()
            .find_map(|l| {
                l.strip_prefix("onemap_tile_builds_total ")?
                    .parse::<f64>()
                    .ok()
            })
            .expect("onemap_tile_builds_total")
    };
    let built = builds().await;
    assert_eq!(
        etag(elsewhere.clone()).await,
        other_before,
        "a tile elsewhere did not"
    );
    assert_eq!(
        builds().await,
        built,
        "… and was answered from the cache: the edit made only the tiles near it stale"
    );

    // A matching ETag answers 304.
    let now = etag(covering.clone()).await.expect("etag");
    let r = app
        .client
        .get(app.url(&covering))
        .header("if-none-match", &now)
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 304);
}

#[tokio::test]
async fn tile_requests_are_checked_and_empty_tiles_are_204() {
    let app = spawn_app(true).await;
    assert_eq!(
        app.get("/tiles/onemap/0/0/0.mvt").await.status(),
        200,
        "the world tile holds everything"
    );
    assert_eq!(
        app.get("/tiles/onemap/3/0/0.mvt").await.status(),
        204,
        "nothing in the Arctic"
    );
    for bad in [
        "/tiles/onemap/23/0/0.mvt",
        "/tiles/onemap/2/4/0.mvt",
        "/tiles/onemap/2/0/-1.mvt",
        "/tiles/onemap/a/0/0.mvt",
        "/tiles/onemap/1/0/0.png",
    ] {
        app.assert_problem(bad, 400).await;
    }
    assert_eq!(app.get("/tiles/volcanoes/1/0/0.mvt").await.status(), 404);
    assert_eq!(
        app.get("/tiles/onemap/1/1/0.mvt?filter=status%20%3D")
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn filtered_tiles_hold_only_matching_features() {
    let app = spawn_app(true).await;
    let z = 10;
    let (x, y) = tile_of(118.28, 34.95, z);
    let tile = decode(&app, "hazard_sources", z, x, y).await;
    let all = tile.get("hazard_sources").map(Vec::len).unwrap_or(0);
    let text = ogrinfo_tile(
        &app,
        "hazard_sources",
        (z, x, y),
        "?filter=risk_level%3D%27major%27",
        None,
    )
    .await;

    let major = text.matches("risk_level (String) = major").count();
    let features = text.matches("OGRFeature(").count();
    assert!(
        major > 0 && major == features && features < all,
        "{major} of {features} (all {all})"
    );
}

#[tokio::test]
async fn tilejson_describes_layers_fields_and_bounds() {
    let app = spawn_app(true).await;
    let tj = app.get_json("/tiles/onemap.json").await;
    assert_eq!(tj["tilejson"], "3.0.0");
    assert!(tj["tiles"][0]
        .as_str()
        .is_some_and(|t| t.ends_with("/tiles/onemap/{z}/{x}/{y}.mvt")));
    let layers = tj["vector_layers"].as_array().expect("layers");
    for layer in app.catalog.layers() {
        assert!(
            layers.iter().any(|l| l["id"] == layer.name.as_str()),
            "{}",
            layer.name
        );
    }
    let labels: Vec<&str> = layers
        .iter()
        .filter_map(|l| l["id"].as_str())
        .filter(|id| app.catalog.get(id).is_none())
        .collect();
    assert!(labels.contains(&"districts_label"), "{labels:?}");
    assert!(
        !labels.contains(&"population_grid_label"),
        "unnamed areas get no label points"
    );
    assert_eq!(
        layers.len(),
        app.catalog.layers().len() + labels.len(),
        "the catalog's layers plus label points"
    );
    let shelters = layers
        .iter()
        .find(|l| l["id"] == "shelters")
        .expect("shelters");
    assert_eq!(shelters["fields"]["capacity"], "Number");
    assert_eq!(shelters["fields"]["kind"], "String");
    let b = &tj["bounds"];
    assert!(
        b[0].as_f64().unwrap_or(0.0) > 117.0 && b[2].as_f64().unwrap_or(0.0) < 120.0,
        "{b}"
    );
    let filtered = app
        .get_json("/tiles/shelters.json?filter=capacity%20%3E%201000")
        .await;
    assert!(filtered["tiles"][0]
        .as_str()
        .is_some_and(|t| t.contains("filter=capacity")));
}

#[tokio::test]
async fn the_style_draws_every_layer_from_our_own_tiles_with_no_outside_url() {
    let app = spawn_app(true).await;
    let style = app.get_json("/styles/onemap.json").await;
    assert_eq!(style["version"], 8);
    let text = style.to_string();
    for url in text.split("http").skip(1) {
        assert!(
            url.starts_with("://127.0.0.1"),
            "only this server is referenced: http{}",
            &url[..40.min(url.len())]
        );
    }
    let tj = app.get_json("/tiles/onemap.json").await;
    let ids: Vec<&str> = tj["vector_layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["id"].as_str())
        .collect();
    let layers = style["layers"].as_array().expect("layers");
    for l in layers.iter().filter(|l| l["type"] != "background") {
        assert_eq!(l["source"], "onemap");
        assert!(
            ids.contains(&l["source-layer"].as_str().unwrap_or_default()),
            "{l}"
        );
    }
    for layer in app.catalog.layers() {
        assert!(
            layers
                .iter()
                .any(|l| l["source-layer"] == layer.name.as_str()),
            "{} is styled",
            layer.name
        );
    }
    assert!(
        text.contains("#d32f2f")
            && text.contains("#f57c00")
            && text.contains("#fbc02d")
            && text.contains("#1976d2"),
        "risk colours"
    );
    assert!(
        layers.iter().any(|l| l["id"] == "rescue_teams-cluster"),
        "clusters drawn"
    );
    // Every point layer prints its cluster counts and its names, above
    // every shape.
    let first_text = layers
        .iter()
        .position(|l| l["type"] == "symbol")
        .expect("text layers");
    assert!(layers[first_text..].iter().all(|l| l["type"] == "symbol"));
    for layer in app
        .catalog
        .layers()
        .iter()
        .filter(|l| l.geometry.contains(&onemap::layers::GeometryKind::Point))
    {
        let count = layers
            .iter()
            .find(|l| l["id"] == format!("{}-count", layer.name))
            .unwrap_or_else(|| panic!("{} counts", layer.name));
        assert!(count["layout"]["text-field"]
            .to_string()
            .contains("point_count"));
        assert!(count["filter"].to_string().contains("point_count"));
        assert!(layers
            .iter()
            .any(|l| l["id"] == format!("{}-label", layer.name)));
    }
}

/// `onemap basemap --demo` on `dir/onemap.gpkg`, written to `out` (MBTiles
/// or PMTiles by its extension).
async fn write_basemap(dir: &std::path::Path, max_zoom: u8, out: &std::path::Path) {
    let db = format!("sqlite://{}", dir.join("onemap.gpkg").display());
    let o = Command::new(env!("CARGO_BIN_EXE_onemap"))
        .args(["--database", &db, "basemap", "--demo", "--max-zoom"])
        .arg(max_zoom.to_string())
        .arg("-o")
        .arg(out)
        .output()
        .await
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[tokio::test]
async fn the_offline_basemap_is_written_served_and_styled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mbtiles = dir.path().join("tiles").join("linyi-basemap.mbtiles");
    write_basemap(dir.path(), 9, &mbtiles).await;
    let tiles_dir = dir.path().join("tiles");
    let app = crate::helpers::spawn_app_with(dir, false, |s| {
        s.tiles_dir = tiles_dir;
        s.basemap_url = Some("https://tiles.example.gov.cn/{z}/{x}/{y}.png?tk=secret".into());
    })
    .await;
    let tj = app.get_json("/tiles/basemap/linyi-basemap.json").await;
    assert_eq!(tj["tilejson"], "3.0.0");
    assert_eq!(tj["vector_layers"][0]["id"], "boundary");
    let (x, y) = tile_of(118.3, 35.0, 9);
    let r = app
        .get(&format!("/tiles/basemap/linyi-basemap/9/{x}/{y}.mvt"))
        .await;
    assert_eq!(r.status(), 200);
    let path = app.dir.path().join("b.mvt");
    std::fs::write(&path, r.bytes().await.expect("bytes")).expect("write");
    let out = Command::new("ogrinfo")
        .args([
            "-ro",
            "-so",
            path.to_str().expect("p"),
            "-oo",
            &format!("X={x}"),
            "-oo",
            &format!("Y={y}"),
            "-oo",
            "Z=9",
        ])
        .output()
        .await
        .expect("ogrinfo");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("boundary"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        app.get("/tiles/basemap/linyi-basemap/9/0/0.mvt")
            .await
            .status(),
        204
    );
    assert_eq!(
        app.get("/tiles/basemap/nowhere/9/0/0.mvt").await.status(),
        404
    );
    for bad in [
        "/tiles/basemap/linyi-basemap/25/0/0.mvt",
        "/tiles/basemap/linyi-basemap/2/4/0.mvt",
        "/tiles/basemap/linyi-basemap/2/0/x.mvt",
    ] {
        app.assert_problem(bad, 400).await;
    }

    let style = app.get_json("/styles/onemap.json").await;
    assert_eq!(style["sources"]["basemap-linyi-basemap"]["type"], "vector");
    assert_eq!(
        style["sources"]["remote-basemap"]["tiles"][0],
        "https://tiles.example.gov.cn/{z}/{x}/{y}.png?tk=secret"
    );
    let ids: Vec<&str> = style["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["id"].as_str())
        .collect();
    // Each must be there: `None < Some(_)` would let a missing one pass.
    let at = |found: Option<usize>, what: &str| {
        found.unwrap_or_else(|| panic!("the style has no {what} layer: {ids:?}"))
    };
    let (remote, base, ours) = (
        at(
            ids.iter().position(|i| *i == "remote-basemap"),
            "remote-basemap",
        ),
        at(
            ids.iter().position(|i| i.starts_with("basemap-")),
            "basemap-*",
        ),
        at(
            ids.iter().position(|i| *i == "districts-fill"),
            "districts-fill",
        ),
    );
    assert!(
        remote < base && base < ours,
        "basemaps sit under the layers: {ids:?}"
    );
}

/// A tile (`/tiles/{layers}/{z}/{x}/{y}.mvt` plus `query`) as GDAL's
/// `ogrinfo` prints it: one MVT layer, or all with `None`; empty for a 204.
pub(crate) async fn ogrinfo_tile(
    app: &TestApp,
    layers: &str,
    (z, x, y): (u8, u32, u32),
    query: &str,
    mvt_layer: Option<&str>,
) -> String {
    let r = app
        .get(&format!("/tiles/{layers}/{z}/{x}/{y}.mvt{query}"))
        .await;
    if r.status() == 204 {
        return String::new();
    }
    assert_eq!(r.status(), 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let tile = dir.path().join("t.mvt");
    std::fs::write(&tile, r.bytes().await.expect("bytes")).expect("write");
    let o = Command::new("ogrinfo")
        .args(["-ro", "-q", tile.to_str().expect("p")])
        .args(mvt_layer.map_or(vec!["-al"], |l| vec![l]))
        .args([
            "-oo",
            &format!("X={x}"),
            "-oo",
            &format!("Y={y}"),
            "-oo",
            &format!("Z={z}"),
        ])
        .output()
        .await
        .expect("GDAL's ogrinfo is needed for this test (apt-get install gdal-bin)");
    // A tile without the layer asked for is an error for ogrinfo: nothing.
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn each_named_area_is_labelled_by_one_tile_per_zoom_inside_itself() {
    let app = spawn_app(true).await;
    let districts = app.get_json("/ogc/collections/districts/items").await;
    let features = districts["features"].as_array().expect("features");
    assert!(features.len() >= 2);
    let mut bbox = [180.0f64, 90.0f64, -180.0f64, -90.0f64];
    for f in features {
        let g: geo::Geometry<f64> = geojson::Geometry::from_json_value(f["geometry"].clone())
            .ok()
            .and_then(|g| g.try_into().ok())
            .expect("geometry");
        let r = g.bounding_rect().expect("rect");
        bbox = [
            bbox[0].min(r.min().x),
            bbox[1].min(r.min().y),
            bbox[2].max(r.max().x),
            bbox[3].max(r.max().y),
        ];
    }
    for z in [7u8, 10] {
        let (x0, y0) = tile_of(bbox[0], bbox[3], z);
        let (x1, y1) = tile_of(bbox[2], bbox[1], z);
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for x in x0..=x1 {
            for y in y0..=y1 {
                let text =
                    ogrinfo_tile(&app, "districts", (z, x, y), "", Some("districts_label")).await;
                for line in text.lines() {
                    if let Some(name) = line.trim().strip_prefix("name (String) = ") {
                        *seen.entry(name.to_owned()).or_default() += 1;
                    }
                }
            }
        }
        for f in features {
            let name = f["properties"]["name"].as_str().expect("name");
            assert_eq!(
                seen.get(name),
                Some(&1),
                "z{z}: {name} labelled once: {seen:?}"
            );
        }
    }
}

#[tokio::test]
async fn glyphs_are_served_for_every_font_the_style_uses_and_bad_requests_are_problems() {
    let app = spawn_app(true).await;
    let style = app.get_json("/styles/onemap.json").await;
    let template = style["glyphs"].as_str().expect("glyphs url");
    assert!(template.starts_with(&app.url("/fonts/")), "{template}");
    let mut fonts: Vec<String> = style["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["layout"]["text-font"].as_array())
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    fonts.sort();
    fonts.dedup();
    assert!(!fonts.is_empty(), "the style prints labels");
    for font in &fonts {
        let url = template
            .replace("{fontstack}", &font.replace(' ', "%20"))
            .replace("{range}", "0-255");
        let r = reqwest::get(&url).await.expect("get");
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers()["content-type"], "application/x-protobuf");
        let etag = r.headers()["etag"].to_str().expect("etag").to_owned();
        let body = r.bytes().await.expect("bytes");
        // Field 1 (a fontstack), length-delimited, naming the font first.
        assert_eq!(body[0], 0x0a, "{font}: a glyphs message");
        assert!(
            body.windows(font.len()).any(|w| w == font.as_bytes()),
            "{font} names itself"
        );
        assert!(
            body.len() > 10_000,
            "{font}: {} bytes of SDF glyphs",
            body.len()
        );
        let again = reqwest::Client::new()
            .get(&url)
            .header("if-none-match", etag)
            .send()
            .await
            .expect("get");
        assert_eq!(again.status(), 304);
    }
    for (path, status) in [
        ("/fonts/Comic%20Sans/0-255.pbf", 404),
        ("/fonts/DejaVu%20Sans%20Book/0-256.pbf", 400),
        ("/fonts/DejaVu%20Sans%20Book/65536-65791.pbf", 400),
        ("/fonts/DejaVu%20Sans%20Book/latin.pbf", 400),
    ] {
        app.assert_problem(path, status).await;
    }
    // A stack falls back to the first font this server has.
    let r = app
        .get("/fonts/Open%20Sans%20Regular,DejaVu%20Sans%20Bold/256-511.pbf")
        .await;
    assert_eq!(r.status(), 200);
}

/// `python3 tests/support/pmtiles_ref.py …` (Protomaps' reference library).
async fn pmtiles_ref(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/pmtiles_ref.py");
    let o = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "Protomaps' pmtiles library is needed (pip install pmtiles): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn pmtiles_basemaps_are_written_and_served_like_mbtiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tiles_dir = dir.path().join("tiles");
    let mb = tiles_dir.join("linyi-mb.mbtiles");
    let pm = tiles_dir.join("linyi-pm.pmtiles");
    let reference = tiles_dir.join("linyi-ref.pmtiles");
    for out in [&mb, &pm] {
        write_basemap(dir.path(), 10, out).await;
    }
    // Our PMTiles as Protomaps' reader sees it: the same tiles as our
    // MBTiles, gzipped vector tiles, clustered, with the layer described.
    let report: Value = serde_json::from_str(
        &pmtiles_ref(&["compare", mb.to_str().expect("p"), pm.to_str().expect("p")]).await,
    )
    .expect("json");
    assert_eq!(report["identical"], true, "{report}");
    assert!(report["pmtiles_tiles"].as_u64() > Some(10), "{report}");
    assert_eq!(report["max_zoom"], 10);
    assert_eq!(report["tile_type"], 1, "MVT");
    assert_eq!(report["tile_compression"], 2, "gzip");
    assert_eq!(report["clustered"], true);
    assert_eq!(report["vector_layers"], json!(["boundary"]));
    // And an archive written by Protomaps' converter is served too.
    pmtiles_ref(&[
        "convert",
        mb.to_str().expect("p"),
        reference.to_str().expect("p"),
    ])
    .await;

    let app = crate::helpers::spawn_app_with(dir, false, |s| s.tiles_dir = tiles_dir).await;
    for name in ["linyi-pm", "linyi-ref"] {
        let tj = app.get_json(&format!("/tiles/basemap/{name}.json")).await;
        assert_eq!(tj["tilejson"], "3.0.0");
        assert_eq!(tj["maxzoom"], 10.0);
        assert_eq!(tj["vector_layers"][0]["id"], "boundary", "{name}: {tj}");
        let b = &tj["bounds"];
        assert!(
            b[0].as_f64() > Some(117.0) && b[2].as_f64() < Some(120.0),
            "{b}"
        );
    }
    let mut compared = 0;
    for z in [0u8, 6, 9, 10] {
        let (x0, y0) = tile_of(117.9, 35.3, z);
        let (x1, y1) = tile_of(118.6, 34.6, z);
        for x in x0..=x1 {
            for y in y0..=y1 {
                let mut bodies = Vec::new();
                for name in ["linyi-mb", "linyi-pm", "linyi-ref"] {
                    let r = app
                        .get(&format!("/tiles/basemap/{name}/{z}/{x}/{y}.mvt"))
                        .await;
                    let status = r.status().as_u16();
                    assert!(
                        status == 200 || status == 204,
                        "{name} {z}/{x}/{y}: {status}"
                    );
                    // reqwest inflates a gzipped answer, as a browser does.
                    bodies.push((status, r.bytes().await.expect("bytes")));
                }
                assert_eq!(bodies[0], bodies[1], "ours {z}/{x}/{y}");
                assert_eq!(bodies[0], bodies[2], "reference {z}/{x}/{y}");
                compared += usize::from(bodies[0].0 == 200);
            }
        }
    }
    assert!(compared >= 4, "{compared} tiles compared");
    let style = app.get_json("/styles/onemap.json").await;
    assert_eq!(style["sources"]["basemap-linyi-pm"]["type"], "vector");
}

#[tokio::test]
async fn a_remote_vector_basemap_is_a_tilejson_source_drawn_under_the_layers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = crate::helpers::spawn_app_with(dir, true, |s| {
        s.basemap_url = Some("http://10.20.30.40:3000/luozhuang.json".into());
        s.basemap_attribution = Some("© 罗庄区自然资源局".into());
    })
    .await;
    let style = app.get_json("/styles/onemap.json").await;
    let source = &style["sources"]["remote-basemap"];
    assert_eq!(source["type"], "vector");
    assert_eq!(source["url"], "http://10.20.30.40:3000/luozhuang.json");
    assert_eq!(source["attribution"], "© 罗庄区自然资源局");
    let ids: Vec<&str> = style["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["id"].as_str())
        .collect();
    let water = ids.iter().position(|i| *i == "remote-basemap-water");
    let place = ids.iter().position(|i| *i == "remote-basemap-place");
    let ours = ids.iter().position(|i| *i == "districts-fill");
    assert!(water.is_some() && place.is_some(), "{ids:?}");
    assert!(
        water < ours && place < ours,
        "under the one map's layers: {ids:?}"
    );
}

/// A point layer big enough for low-zoom counts: its clustered tiles come
/// from the counts, and decode (GDAL) to the clusters that visiting every
/// point gives (a filter that keeps everything takes that path), each
/// point drawn or counted once.
#[tokio::test]
async fn low_zoom_tiles_from_counts_match_visiting_every_point() {
    use rand::{Rng, SeedableRng};
    let app = spawn_app(false).await;
    let layer = app.catalog.get("cameras").expect("layer").clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(61);
    let n = onemap::index::pyramid::MIN_POINTS + 10_000;
    let points: Vec<Feature> = (0..n)
        .map(|i| {
            // Dense towns and a thin spread, as real cameras are.
            let (lon, lat) = if i % 3 == 0 {
                (rng.random_range(117.9..118.6), rng.random_range(34.7..35.3))
            } else {
                (
                    118.30 + rng.random_range(-0.03..0.03),
                    35.02 + rng.random_range(-0.02..0.02),
                )
            };
            Feature::new(
                geo::point! { x: lon, y: lat },
                json!({"name": format!("c{i}"), "channels": i % 8})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect();
    app.store
        .insert(&layer, &points, "test")
        .await
        .expect("stored");
    let dir = app.stop().await;
    let app = crate::helpers::spawn_app_in(dir, false).await;
    let summary = |fs: &[Feature]| -> Vec<(i64, i64, i64)> {
        let mut v: Vec<(i64, i64, i64)> = fs
            .iter()
            .map(|f| {
                let geo::Geometry::Point(p) = &f.geometry else {
                    panic!("clusters are points");
                };
                let count = f
                    .properties
                    .get("point_count")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                // Positions to 10 m: the two paths sum the same points in
                // another order and unit.
                (
                    count,
                    (p.x() / 10.0).round() as i64,
                    (p.y() / 10.0).round() as i64,
                )
            })
            .collect();
        v.sort_unstable();
        v
    };
    let mut compared = 0;
    for z in [5u8, 8, 10, 12] {
        let (cx, cy) = tile_of(118.30, 35.02, z);
        for (x, y) in [(cx, cy), (cx + 1, cy), (cx, cy + 1)] {
            let counted = decode(&app, "cameras", z, x, y).await;
            let counted = counted.get("cameras").cloned().unwrap_or_default();
            let area = buffered(z, x, y);
            use geo::Intersects;
            let expected = points
                .iter()
                .filter(|f| area.intersects(&project(&f.geometry)))
                .count();
            let total: i64 = summary(&counted).iter().map(|c| c.0).sum();
            assert_eq!(
                total as usize, expected,
                "z{z}/{x}/{y}: every point drawn or counted"
            );
            if expected == 0 {
                continue;
            }
            let visited = decode_path(
                &app,
                &format!("/tiles/cameras/{z}/{x}/{y}.mvt?filter=channels%20%3E%3D%200"),
                (z, x, y),
            )
            .await;
            let visited = visited.get("cameras").cloned().unwrap_or_default();
            assert_eq!(summary(&counted), summary(&visited), "z{z}/{x}/{y}");
            compared += usize::from(counted.len() > 1);
        }
    }
    assert!(compared >= 6, "{compared} clustered tiles compared");
}
