//! What only the PostgreSQL store has (run in the PostGIS pass alone, see
//! `POSTGIS_TESTS` in the Makefile): commits announced to every node, seqs
//! that commit in order without gaps under concurrent writers on several
//! nodes, and tables that GDAL reads as PostGIS layers.

use std::{sync::Arc, time::Duration};

use onemap::store::{self, Query};
use serde_json::json;

use crate::helpers::{feature, spawn_app, spawn_node};

#[tokio::test]
async fn a_commit_on_one_node_is_announced_to_every_other() {
    let app = spawn_app(false).await;
    let other = store::open(&app.database)
        .await
        .expect("a second node's store");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    other.listen(Arc::new(move |seq| {
        let _ = tx.send(seq);
    }));
    // The listener wakes once when it connects (it may have missed some).
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(first.ok().flatten(), Some(0));
    let layer = app.catalog.get("rescue_teams").expect("teams");
    let written = app
        .store
        .insert(
            layer,
            &[feature(
                geo::Point::new(118.3, 35.0),
                json!({"name": "通知测试", "team_type": "professional_fire", "status": "standby", "headcount": 5}),
            )],
            "test",
        )
        .await
        .expect("stored");
    let announced = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .expect("announced within a second");
    assert_eq!(announced, Some(written.change.seq));
    other.close().await;
}

#[tokio::test]
async fn seqs_commit_in_order_without_gaps_across_nodes() {
    let a = Arc::new(spawn_app(false).await);
    let b = Arc::new(spawn_node(&a).await);
    let layer = Arc::new(a.catalog.get("rescue_teams").expect("teams").clone());
    let writers: Vec<_> = (0..40)
        .map(|i| {
            let node = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let layer = Arc::clone(&layer);
            tokio::spawn(async move {
                let f = feature(
                    geo::Point::new(118.3 + f64::from(i) * 1e-3, 35.0),
                    json!({"name": format!("队{i}"), "team_type": "professional_fire", "status": "standby", "headcount": 5}),
                );
                node.store
                    .insert(&layer, &[f], "test")
                    .await
                    .expect("stored")
                    .change
                    .seq
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for w in writers {
        seqs.push(w.await.expect("joined"));
    }
    seqs.sort_unstable();
    let log: Vec<i64> = a
        .store
        .changes_since(0, 1_000)
        .await
        .expect("the log")
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(log, (1..=40).collect::<Vec<i64>>(), "gap-free from 1");
    assert_eq!(seqs, log, "each write got its own seq");
    // Both nodes' indexes hold all forty.
    for node in [&a, &b] {
        let mut n = 0;
        for _ in 0..50 {
            n = node
                .get_json("/ogc/collections/rescue_teams/items?limit=1")
                .await["numberMatched"]
                .as_u64()
                .unwrap_or(0);
            if n == 40 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(n, 40);
    }
    assert_eq!(
        a.store
            .count(&layer, &Query::default())
            .await
            .expect("count"),
        40
    );
}

#[tokio::test]
async fn gdal_reads_the_layers_as_postgis_tables() {
    let app = spawn_app(true).await;
    // The test's schema is the first of the URL's search_path.
    let schema = app
        .database
        .split("search_path%3D")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("a schema")
        .to_owned();
    let url = crate::helpers::postgres_url();
    let dbname = url.rsplit('/').next().unwrap_or_default().to_owned();
    let out = tokio::process::Command::new("ogrinfo")
        .args(["-ro", "-so", "-nomd"])
        .arg(format!(
            "PG:host=127.0.0.1 port=5432 user=postgres dbname={dbname} active_schema={schema}"
        ))
        .arg("rescue_teams")
        .output()
        .await
        .expect("ogrinfo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Geometry: Point"), "{text}");
    let count = app
        .store
        .count(
            app.catalog.get("rescue_teams").expect("teams"),
            &Query::default(),
        )
        .await
        .expect("count");
    assert!(
        text.contains(&format!("Feature Count: {count}")),
        "{count}: {text}"
    );
    assert!(
        text.contains("EPSG\",4326") || text.contains("EPSG:4326") || text.contains("WGS 84"),
        "{text}"
    );
    assert!(text.contains("headcount: Integer64"), "{text}");

    // GDAL writing to the table, as another program: the server sees it.
    let out = tokio::process::Command::new("ogrinfo")
        .arg(format!(
            "PG:host=127.0.0.1 port=5432 user=postgres dbname={dbname} active_schema={schema}"
        ))
        .args([
            "-sql",
            "UPDATE rescue_teams SET headcount = 977 WHERE fid = 1",
        ])
        .output()
        .await
        .expect("ogrinfo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = false;
    for _ in 0..50 {
        let f = app.get_json("/ogc/collections/rescue_teams/items/1").await;
        if f["properties"]["headcount"] == 977 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "GDAL's edit shows within a second");
}

/// The points of a tile drawn as themselves, by id with their properties.
type Drawn = Vec<(i64, serde_json::Map<String, serde_json::Value>)>;

/// A layer's features in a decoded tile: the drawn ones, how many points
/// its clusters count, and how many clusters.
fn drawn(
    tile: &std::collections::BTreeMap<String, Vec<onemap::layers::Feature>>,
    layer: &str,
) -> (Drawn, u64, usize) {
    let (mut points, mut counted, mut clusters) = (Vec::new(), 0, 0);
    for f in tile.get(layer).into_iter().flatten() {
        if f.properties.get("cluster").is_some() {
            clusters += 1;
            counted += f.properties["point_count"].as_u64().unwrap_or(0);
        } else {
            let id = f.properties["id"].as_i64().unwrap_or(-1);
            points.push((id, f.properties.clone()));
        }
    }
    points.sort_by_key(|p| p.0);
    (points, counted, clusters)
}

#[tokio::test]
async fn a_layer_too_big_to_hold_is_served_by_postgis_as_if_it_were_held() {
    // Node A holds nothing (every layer is "too big"), node B everything,
    // on the same database: their tiles and items must agree.
    let (held, in_db) = held_and_in_store(Vec::new()).await;
    let points: Vec<String> = held
        .catalog
        .layers()
        .iter()
        .filter(|l| l.geometry == [onemap::layers::GeometryKind::Point])
        .map(|l| l.name.clone())
        .collect();
    assert!(points.len() >= 4, "{points:?}");
    // Enough points in one place to cluster (generated: 1,500 enterprises
    // in a 5 km square). Enterprises, not teams: the layers dispatch and
    // planning read whole are held whatever their size.
    let enterprises = held.catalog.get("enterprises").expect("enterprises");
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(13);
    let extra: Vec<onemap::layers::Feature> = (0..1_500)
        .map(|i| {
            use rand::Rng;
            let (dx, dy): (f64, f64) = (rng.random(), rng.random());
            feature(
                geo::Point::new(118.28 + dx * 0.05, 35.02 + dy * 0.05),
                json!({"name": format!("生成企业{i}"), "industry": "化工", "risk_level": (["low", "medium", "high"][i % 3]), "supervision": "town"}),
            )
        })
        .collect();
    // One on a box's edge, one a hair outside it (PostGIS' index boxes are
    // float4, rounded outward: only the coordinates can tell them apart).
    let mut extra = extra;
    for (lon, name) in [(118.3, "边上企业"), (118.3 + 1e-9, "边外企业")] {
        extra.push(feature(
            geo::Point::new(lon, 35.05),
            json!({"name": name, "industry": "化工"}),
        ));
    }
    insert_on_both(&held, &in_db, enterprises, &extra).await;
    let mut compared = 0;
    let mut clustered = 0;
    for z in [9u8, 11, 13, 15, 17] {
        let (x, y) = crate::tiles::tile_of(118.30, 35.03, z);
        let a = crate::tiles::decode(&in_db, "onemap", z, x, y).await;
        let b = crate::tiles::decode(&held, "onemap", z, x, y).await;
        for layer in &points {
            let (pa, ca, ka) = drawn(&a, layer);
            let (pb, cb, kb) = drawn(&b, layer);
            assert_eq!(
                pa, pb,
                "{layer} at {z}/{x}/{y}: the same points, properties and all"
            );
            assert_eq!(
                (ca, ka),
                (cb, kb),
                "{layer} at {z}/{x}/{y}: the same clusters"
            );
            compared += pa.len();
            clustered += ka;
        }
    }
    assert!(
        compared > 50 && clustered > 5,
        "{compared} points, {clustered} clusters compared"
    );

    // Items and filters from SQL, the same as from the index.
    for q in [
        "/ogc/collections/enterprises/items?limit=7&offset=3",
        "/ogc/collections/enterprises/items?risk_level=high&limit=50",
        "/ogc/collections/enterprises/items?bbox=118.2,34.95,118.35,35.1&limit=1000",
        "/ogc/collections/enterprises/items?bbox=118.25,35.0,118.3,35.1&limit=10&offset=20",
        "/ogc/collections/enterprises/items?bbox=118.3,35.04,118.4,35.06&limit=1000&risk_level=high",
        "/ogc/collections/enterprises/items?bbox=118.2999,35.0499,118.3,35.0501",
        "/ogc/collections/enterprises/items?filter=risk_level%20%3D%20%27medium%27%20AND%20S_INTERSECTS(geometry,BBOX(118.2,34.9,118.4,35.1))",
    ] {
        let (a, b) = (in_db.get_json(q).await, held.get_json(q).await);
        assert_eq!(a["numberMatched"], b["numberMatched"], "{q}");
        assert_eq!(a["features"], b["features"], "{q}");
        if q.contains("118.2999") {
            let names: Vec<&str> = a["features"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["properties"]["name"].as_str())
                .collect();
            assert_eq!(names, ["边上企业"], "the edge is in, a hair past it out");
        }
    }

    // An edit moves the tiles of a layer the store serves, too.
    let token = held.token(onemap::auth::Role::Dispatcher).await;
    let z = 14;
    let to = [118.345, 35.071];
    let (nx, ny) = crate::tiles::tile_of(to[0], to[1], z);
    let before = drawn(
        &crate::tiles::decode(&in_db, "enterprises", z, nx, ny).await,
        "enterprises",
    )
    .0;
    assert!(!before.iter().any(|(id, _)| *id == 5));
    let r = held
        .client
        .patch(held.url("/ogc/collections/enterprises/items/5"))
        .bearer_auth(&token)
        .header("content-type", "application/merge-patch+json")
        .body(serde_json::json!({"geometry": {"type": "Point", "coordinates": to}}).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let mut shown = false;
    for _ in 0..50 {
        let now = drawn(
            &crate::tiles::decode(&in_db, "enterprises", z, nx, ny).await,
            "enterprises",
        )
        .0;
        if now.iter().any(|(id, _)| *id == 5) {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        shown,
        "the edit shows in the database-cut tile within a second"
    );
}

#[tokio::test]
async fn dispatch_sees_a_layer_too_big_to_hold_as_if_it_were_held() {
    // Node A holds every layer, node B only those dispatch and planning
    // read whole (the limit is 0), on the same database: what a dispatcher
    // asks of a layer B leaves in the database must come out the same.
    let (held, in_db) = held_and_in_store(Vec::new()).await;
    // Generated: 600 enterprises spread over 40 km around the hazard with
    // the widest evacuation radius, so some fall inside it and the rings
    // of the database walk are crossed several times.
    let hazards = held
        .get_json("/ogc/collections/hazard_sources/items?limit=1000")
        .await;
    let widest = hazards["features"]
        .as_array()
        .into_iter()
        .flatten()
        .max_by(|a, b| {
            let r = |h: &serde_json::Value| {
                h["properties"]["evacuation_radius_m"]
                    .as_f64()
                    .unwrap_or(0.0)
            };
            r(a).total_cmp(&r(b))
        })
        .cloned()
        .expect("the demo has hazard sources");
    let hazard = widest["id"].as_i64().expect("an id");
    let at = [
        widest["geometry"]["coordinates"][0].as_f64().expect("lon"),
        widest["geometry"]["coordinates"][1].as_f64().expect("lat"),
    ];
    let enterprises = held.catalog.get("enterprises").expect("enterprises");
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(29);
    let extra: Vec<onemap::layers::Feature> = (0..600)
        .map(|i| {
            use rand::Rng;
            // Denser near the hazard: distance grows with the square.
            let (u, a): (f64, f64) = (rng.random(), rng.random::<f64>() * std::f64::consts::TAU);
            let d = u * u * 0.4;
            feature(
                geo::Point::new(at[0] + d * a.cos(), at[1] + d * a.sin()),
                json!({"name": format!("生成企业{i}"), "industry": "化工", "risk_level": (["low", "high"][i % 2])}),
            )
        })
        .collect();
    insert_on_both(&held, &in_db, enterprises, &extra).await;

    let exposure = format!("/api/hazards/{hazard}/exposure");
    let (a, b) = (
        in_db.get_json(&exposure).await,
        held.get_json(&exposure).await,
    );
    let exposed = a["enterprises"].as_array().map_or(0, Vec::len);
    assert!(exposed >= 5, "{exposed} enterprises exposed: {a}");
    assert_eq!(a, b, "the exposure from the database equals the held one");

    for q in [
        format!(
            "/api/nearest?layer=enterprises&lon={}&lat={}&limit=25",
            at[0], at[1]
        ),
        // Past the first ring (2 km) and the second.
        format!(
            "/api/nearest?layer=enterprises&lon={}&lat={}&limit=100&radius_m=30000",
            at[0] + 0.1,
            at[1]
        ),
        // Nothing but the far ones pass: the walk goes out ring by ring.
        format!(
            "/api/nearest?layer=cameras&lon={}&lat={}&limit=3",
            at[0] + 2.0,
            at[1] + 2.0
        ),
        format!(
            "/api/nearest?layer=rescue_teams&lon={}&lat={}&limit=5",
            at[0], at[1]
        ),
    ] {
        let (a, b) = (in_db.get_json(&q).await, held.get_json(&q).await);
        assert!(
            a["results"].as_array().is_some_and(|r| !r.is_empty()),
            "{q}: {a}"
        );
        assert_eq!(a, b, "{q}");
    }

    // The summary counts every layer, wherever it lives.
    let (mut a, mut b) = (
        in_db.get_json("/api/summary").await,
        held.get_json("/api/summary").await,
    );
    for s in [&mut a, &mut b] {
        if let Some(o) = s.as_object_mut() {
            o.remove("as_of");
            o.remove("seq");
        }
    }
    assert_eq!(a, b, "the summaries agree");
    // The database's count is kept until a change, then taken again.
    let before = a["layers"]["enterprises"].as_u64().expect("a count");
    held.store
        .insert(
            enterprises,
            &[feature(
                geo::Point::new(at[0], at[1]),
                json!({"name": "又一企业", "industry": "化工"}),
            )],
            "test",
        )
        .await
        .expect("stored");
    let mut counted = None;
    for _ in 0..50 {
        counted = in_db.get_json("/api/summary").await["layers"]["enterprises"].as_u64();
        if counted == Some(before + 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counted, Some(before + 1), "the new count within a second");
    let metrics = in_db.get("/metrics").await.text().await.unwrap_or_default();
    assert!(
        metrics.contains(&format!("layer=\"enterprises\"}} {}", before + 1)),
        "{metrics}"
    );

    // A replay draws held layers only: by default it leaves the database's
    // out, and says so when one is named.
    let now = chrono::Utc::now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .replace('+', "%2B");
    let r = in_db.get_json(&format!("/api/replay?at={now}")).await;
    assert!(r["layers"].get("incidents").is_some(), "{r}");
    assert!(r["layers"].get("enterprises").is_none(), "{r}");
    in_db
        .assert_problem(&format!("/api/replay?at={now}&layers=enterprises"), 400)
        .await;

    // Planning reads held layers only, and says so.
    let r = in_db
        .client
        .post(in_db.url("/api/planning/siting"))
        .json(&json!({"k": 1, "radius_m": 500, "candidates": "enterprises"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap_or(""),
        "application/problem+json"
    );
    let body = r.text().await.unwrap_or_default();
    assert!(body.contains("enterprises"), "{body}");
}

#[tokio::test]
async fn database_served_areas_and_shifted_datums_are_cut_as_if_held() {
    // An operator's own area layer (named, so labelled) and the demo's
    // point layers, left in the database on node B, held on node A: their
    // tiles, on WGS84 and on AMap's GCJ-02, must be the same.
    let reservoirs: onemap::layers::LayerDef = toml::from_str(
        r#"
name = "reservoirs"
title_zh = "水库"
title_en = "Reservoirs"
geometry = ["Polygon"]
group = "planning"
properties = [{ name = "storage_m3", type = "number", minimum = 0 }]
"#,
    )
    .expect("a layer declaration");
    let (held, in_db) = held_and_in_store(vec![reservoirs]).await;
    // Generated: 40 reservoirs, irregular hexagons 300–900 m across.
    let def = held.catalog.get("reservoirs").expect("declared");
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(31);
    let shapes: Vec<onemap::layers::Feature> = (0..40)
        .map(|i| {
            use rand::Rng;
            let c = [
                118.25 + rng.random::<f64>() * 0.12,
                34.98 + rng.random::<f64>() * 0.1,
            ];
            let ring: Vec<(f64, f64)> = (0..6)
                .map(|k| {
                    let a = f64::from(k) * std::f64::consts::TAU / 6.0;
                    let r = 0.0015 + rng.random::<f64>() * 0.003;
                    (c[0] + r * a.cos(), c[1] + r * a.sin())
                })
                .collect();
            feature(
                geo::Polygon::new(geo::LineString::from(ring), vec![]),
                json!({"name": format!("生成水库{i}"), "storage_m3": 1000 * i}),
            )
        })
        .collect();
    insert_on_both(&held, &in_db, def, &shapes).await;

    let mut areas = 0;
    let mut labels = 0;
    for (z, crs) in [
        (11u8, ""),
        (13, ""),
        (15, ""),
        (11, "?crs=gcj02"),
        (14, "?crs=gcj02"),
        (13, "?crs=bd09"),
    ] {
        let (x, y) = crate::tiles::tile_of(118.31, 35.03, z);
        let path = format!("/tiles/onemap/{z}/{x}/{y}.mvt{crs}");
        let a = crate::tiles::decode_path(&in_db, &path, (z, x, y)).await;
        let b = crate::tiles::decode_path(&held, &path, (z, x, y)).await;
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{path}: the same layers"
        );
        for (layer, features) in &b {
            let norm = |fs: &[onemap::layers::Feature]| {
                let mut v: Vec<String> = fs
                    .iter()
                    .map(|f| {
                        format!(
                            "{:?} {}",
                            f.geometry,
                            serde_json::Value::Object(f.properties.clone())
                        )
                    })
                    .collect();
                v.sort();
                v
            };
            assert_eq!(norm(&a[layer]), norm(features), "{path}: {layer}");
        }
        areas += b.get("reservoirs").map_or(0, Vec::len);
        // The label points, as GDAL reads them.
        let q = if crs.is_empty() { "" } else { crs };
        let label_lines = |text: String| {
            let mut v: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("name (String) = ") || l.starts_with("POINT"))
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        let la = label_lines(
            crate::tiles::ogrinfo_tile(
                &in_db,
                "reservoirs",
                (z, x, y),
                q,
                Some("reservoirs_label"),
            )
            .await,
        );
        let lb = label_lines(
            crate::tiles::ogrinfo_tile(&held, "reservoirs", (z, x, y), q, Some("reservoirs_label"))
                .await,
        );
        assert_eq!(la, lb, "{path}: the same labels");
        labels += lb.iter().filter(|l| l.starts_with("name")).count();
    }
    assert!(
        areas > 10 && labels > 10,
        "{areas} areas, {labels} labels compared"
    );
}

#[tokio::test]
async fn another_programs_writes_to_the_tables_are_logged_and_reach_every_node() {
    // QGIS or ogr2ogr edits the PostGIS tables directly: each statement is
    // logged by the tables' triggers, so a node holding the layer and one
    // leaving it in the database both show it, and the event stream
    // announces it; onemap's own writes are not logged twice.
    let (held, in_db) = held_and_in_store(Vec::new()).await;
    let before = held.store.last_seq().await.expect("a seq");
    // Another program: a plain connection, without onemap's startup option.
    let options: sqlx::postgres::PgConnectOptions =
        held.database.parse().expect("the test database URL");
    let mut other = sqlx::ConnectOptions::connect(&options.application_name("QGIS"))
        .await
        .expect("a connection");
    let inserted: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO enterprises (geom, name, industry) VALUES \
         (ST_SetSRID(ST_MakePoint(118.31, 35.05), 4326), '外部新增一', '化工'), \
         (ST_SetSRID(ST_MakePoint(118.32, 35.06), 4326), '外部新增二', '化工') RETURNING fid",
    )
    .fetch_all(&mut other)
    .await
    .expect("inserted");
    sqlx::query("UPDATE enterprises SET name = '外部改名' WHERE fid = $1")
        .bind(inserted[0])
        .execute(&mut other)
        .await
        .expect("updated");
    sqlx::query("DELETE FROM enterprises WHERE fid = $1")
        .bind(inserted[1])
        .execute(&mut other)
        .await
        .expect("deleted");
    // A statement that writes nothing logs nothing.
    sqlx::query("UPDATE enterprises SET name = 'x' WHERE fid = -1")
        .execute(&mut other)
        .await
        .expect("updated none");

    let changes = held
        .store
        .changes_since(before, 100)
        .await
        .expect("the log");
    let seen: Vec<(String, &str, Vec<i64>, bool, bool)> = changes
        .iter()
        .map(|c| {
            (
                c.actor.clone(),
                c.op.as_str(),
                c.ids.clone(),
                c.bbox_before.is_some(),
                c.bbox_after.is_some(),
            )
        })
        .collect();
    let actor = "another program (postgres, QGIS)".to_owned();
    assert_eq!(
        seen,
        [
            (actor.clone(), "create", inserted.clone(), false, true),
            (actor.clone(), "update", vec![inserted[0]], true, true),
            (actor, "delete", vec![inserted[1]], true, false),
        ],
        "one entry per statement, with ids and boxes"
    );
    let (kept, gone) = (
        format!("/ogc/collections/enterprises/items/{}", inserted[0]),
        format!("/ogc/collections/enterprises/items/{}", inserted[1]),
    );
    for node in [&held, &in_db] {
        let mut shown = false;
        for _ in 0..50 {
            let f = node.get(&kept).await;
            if f.status() == 200 {
                let f: serde_json::Value = f.json().await.expect("json");
                if f["properties"]["name"] == "外部改名" && node.get(&gone).await.status() == 404
                {
                    shown = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            shown,
            "{}: the external edit shows within a second",
            node.base_url
        );
    }
    // The node holding the layer has it in its tiles too (items may answer
    // from the database before the node's index has caught up: wait).
    let z = 16;
    let (x, y) = crate::tiles::tile_of(118.31, 35.05, z);
    let mut drawn = false;
    for _ in 0..50 {
        let tile = crate::tiles::decode(&held, "enterprises", z, x, y).await;
        if tile
            .get("enterprises")
            .into_iter()
            .flatten()
            .any(|f| f.properties["name"] == "外部改名")
        {
            drawn = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(drawn, "the external edit is drawn within a second");

    // onemap's own write: one entry, by its actor, not a second one.
    let head = held.store.last_seq().await.expect("a seq");
    let token = held.token(onemap::auth::Role::Dispatcher).await;
    let r = held
        .client
        .patch(held.url(&kept))
        .bearer_auth(&token)
        .header("content-type", "application/merge-patch+json")
        .body(json!({"properties": {"industry": "仓储"}}).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let own = held.store.changes_since(head, 100).await.expect("the log");
    assert_eq!(own.len(), 1, "{own:?}");
    assert!(!own[0].actor.starts_with("another program"), "{own:?}");
}

/// Node A holding every layer (with the demo, and the `extra` layers
/// declared), node B on the same database leaving every layer it may in
/// the database (its limit is 0).
async fn held_and_in_store(
    extra: Vec<onemap::layers::LayerDef>,
) -> (crate::helpers::TestApp, crate::helpers::TestApp) {
    let layers = extra.clone();
    let held = crate::helpers::spawn_app_with(tempfile::tempdir().expect("tempdir"), true, |s| {
        s.layers = layers;
    })
    .await;
    let database = held.database.clone();
    let in_db = crate::helpers::spawn_app_with(tempfile::tempdir().expect("tempdir"), false, |s| {
        s.database = database;
        s.layers = extra;
        s.index_max_features = 0;
    })
    .await;
    (held, in_db)
}

/// Store `features` in `layer` and wait until both nodes count the same.
async fn insert_on_both(
    held: &crate::helpers::TestApp,
    in_db: &crate::helpers::TestApp,
    layer: &onemap::layers::LayerDef,
    features: &[onemap::layers::Feature],
) {
    held.store
        .insert(layer, features, "test")
        .await
        .expect("stored");
    let count = format!("/ogc/collections/{}/items?limit=1", layer.name);
    for _ in 0..100 {
        if held.get_json(&count).await["numberMatched"]
            == in_db.get_json(&count).await["numberMatched"]
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_search_of_a_database_layer_too_dense_to_walk_is_refused_not_run() {
    // Generated: 200,001 enterprises within 300 m, written by another
    // program. A node leaving the layer in the database refuses to read
    // more than a ring's limit for one nearest search: a clear 400.
    let app = crate::helpers::spawn_app_with(tempfile::tempdir().expect("tempdir"), true, |s| {
        s.index_max_features = 0;
    })
    .await;
    let options: sqlx::postgres::PgConnectOptions = app.database.parse().expect("the URL");
    let mut other = sqlx::ConnectOptions::connect(&options)
        .await
        .expect("a connection");
    sqlx::query(
        "INSERT INTO enterprises (geom, name) SELECT \
         ST_SetSRID(ST_MakePoint(118.40 + (i % 500) * 0.000005, 35.10 + (i / 500) * 0.000005), 4326), \
         '生成企业' || i FROM generate_series(0, $1) i",
    )
    .bind(i64::try_from(onemap::index::STORE_RING_LIMIT).unwrap_or(0))
    .execute(&mut other)
    .await
    .expect("inserted");
    let path = "/api/nearest?layer=enterprises&lon=118.401&lat=35.101&limit=5";
    let r = app.get(path).await;
    assert_eq!(r.status(), 400, "{path}");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body = r.text().await.unwrap_or_default();
    assert!(
        body.contains("enterprises") && body.contains("narrow"),
        "{body}"
    );
    // Elsewhere the same layer is searched as ever.
    let far = app
        .get_json("/api/nearest?layer=enterprises&lon=118.30&lat=35.00&limit=3&radius_m=1500")
        .await;
    assert!(far["results"].is_array(), "{far}");
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200, "the server is unharmed");
}
