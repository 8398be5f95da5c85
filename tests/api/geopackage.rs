//! The store's file is a real OGC GeoPackage: GDAL opens it and lists every
//! layer with its attributes and feature count; the header and the R-tree
//! index are as the spec requires.

use std::process::Command;

use onemap::store::Query;

use crate::helpers::spawn_app;

/// GDAL's `ogrinfo`, or a loud failure: `.ci/run` installs gdal-bin, and a
/// check that cannot run must not pass.
fn ogrinfo(args: &[&str]) -> String {
    let out = Command::new("ogrinfo")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("GDAL's ogrinfo is needed for this test (apt-get install gdal-bin): {e}")
        });
    assert!(
        out.status.success(),
        "ogrinfo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn gdal_lists_every_layer_with_its_attributes_and_count() {
    let app = spawn_app(true).await;
    let path = app.db_path.to_str().expect("utf-8 path").to_owned();
    for layer in app.catalog.layers() {
        let expected = app
            .store
            .count(layer, &Query::default())
            .await
            .expect("count");
        let out = ogrinfo(&["-ro", "-so", &path, &layer.name]);
        assert!(
            out.contains(&format!("Feature Count: {expected}")),
            "{}: expected {expected} features in\n{out}",
            layer.name
        );
        for p in &layer.properties {
            assert!(
                out.lines().any(|l| l.starts_with(&format!("{}: ", p.name))),
                "{}.{} is listed by GDAL:\n{out}",
                layer.name,
                p.name
            );
        }
        assert!(
            out.contains("EPSG\",4326") || out.contains("WGS 84"),
            "{out}"
        );
    }
    let summary = ogrinfo(&["-ro", "-q", &path]);
    assert!(
        !summary.contains("_sqlx_migrations"),
        "bookkeeping stays hidden:\n{summary}"
    );
}

#[tokio::test]
async fn gdal_reads_geometries_and_typed_values() {
    let app = spawn_app(true).await;
    let path = app.db_path.to_str().expect("utf-8 path").to_owned();
    let out = ogrinfo(&["-ro", "-so", &path, "shelters"]);
    assert!(out.contains("capacity: Integer"), "{out}");
    assert!(out.contains("effective_area_m2: Real"), "{out}");
    assert!(
        out.contains("kind: String") && out.contains("domain name=shelters_kind"),
        "{out}"
    );
    let out = ogrinfo(&["-ro", "-so", &path, "supply_depots"]);
    assert!(out.contains("inventory: String(JSON)"), "{out}");
    let out = ogrinfo(&["-ro", "-so", &path, "population_grid"]);
    assert!(out.contains("synthetic: Integer(Boolean)"), "{out}");
    let out = ogrinfo(&["-ro", "-so", &path, "incidents"]);
    assert!(out.contains("reported_at: DateTime"), "{out}");

    // A spatial filter goes through the R-tree: the Luozhuang district seat
    // area holds some enterprises but not all of them.
    let out = ogrinfo(&[
        "-ro",
        "-so",
        "-spat",
        "118.25",
        "34.97",
        "118.32",
        "35.02",
        &path,
        "enterprises",
    ]);
    let n: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("Feature Count: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a feature count");
    assert!(n > 0 && n < 165, "{n} enterprises near the seat");

    let out = ogrinfo(&[
        "-ro",
        "-q",
        &path,
        "districts",
        "-where",
        "adcode = '371311'",
    ]);
    assert!(out.contains("罗庄区"), "{out}");
    assert!(out.contains("POLYGON ((118."), "{out}");
}

#[tokio::test]
async fn the_header_and_spatial_index_follow_the_spec() {
    let app = spawn_app(true).await;
    let bytes = std::fs::read(&app.db_path).expect("the file");
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    assert_eq!(&bytes[..16], b"SQLite format 3\0");
    assert_eq!(be(68), 0x4750_4B47, "application_id is 'GPKG'");
    assert_eq!(be(60), 10300, "user_version is 1.3.0");

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", app.db_path.display()))
        .await
        .expect("opens read-only");
    for layer in app.catalog.layers() {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{}\"", layer.name))
            .fetch_one(&pool)
            .await
            .expect("count");
        let indexed: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"rtree_{}_geom\"",
            layer.name
        ))
        .fetch_one(&pool)
        .await
        .expect("rtree count");
        assert_eq!(rows, indexed, "{} is fully indexed", layer.name);
        let triggers: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? ORDER BY name",
        )
        .bind(&layer.name)
        .fetch_all(&pool)
        .await
        .expect("triggers");
        let rtree = triggers.iter().filter(|t| t.starts_with("rtree_")).count();
        let log = triggers
            .iter()
            .filter(|t| t.starts_with("onemap_log_"))
            .count();
        assert_eq!(
            (rtree, log, triggers.len()),
            (6, 3, 9),
            "{} keeps the six R-tree triggers for other editors and the three that log their writes: {triggers:?}",
            layer.name
        );
        let ext: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM gpkg_extensions WHERE table_name = ? AND extension_name = 'gpkg_rtree_index'",
        )
        .bind(&layer.name)
        .fetch_one(&pool)
        .await
        .expect("extension row");
        assert_eq!(ext, 1);
    }
}

#[tokio::test]
async fn onemaps_own_writes_leave_the_schema_alone_keep_the_rtree_and_log_once() {
    let app = spawn_app(true).await;
    let layer = std::sync::Arc::clone(app.catalog.get("shelters").expect("layer"));
    let url = format!("sqlite://{}", app.db_path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("opens");
    // A fresh connection each time: a pooled one may still hold the read
    // snapshot of its last statement.
    let schema_version = || async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("opens");
        sqlx::query_scalar::<_, i64>("PRAGMA schema_version")
            .fetch_one(&mut c)
            .await
            .expect("schema version")
    };
    let counts = || async {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM shelters")
            .fetch_one(&pool)
            .await
            .expect("rows");
        let indexed: i64 = sqlx::query_scalar("SELECT count(*) FROM rtree_shelters_geom")
            .fetch_one(&pool)
            .await
            .expect("indexed");
        (rows, indexed)
    };
    let version = schema_version().await;
    let seq = app.store.last_seq().await.expect("seq");
    let mut f = app
        .store
        .features(&layer, &onemap::store::Query::default())
        .await
        .expect("features")
        .remove(0);
    f.id = None;
    f.geometry = geo::Geometry::Point(geo::point! { x: 118.123, y: 35.321 });
    let id = app
        .store
        .insert(&layer, std::slice::from_ref(&f), "tester")
        .await
        .expect("inserted")
        .ids[0];
    f.geometry = geo::Geometry::Point(geo::point! { x: 118.456, y: 35.654 });
    app.store
        .replace(&layer, id, &f, onemap::store::Op::Replace, "tester", None)
        .await
        .expect("replaced")
        .expect("found");
    // The file's own triggers moved the feature in the R-tree.
    let (minx, miny): (f64, f64) =
        sqlx::query_as("SELECT minx, miny FROM rtree_shelters_geom WHERE id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("indexed");
    assert!(
        (minx - 118.456).abs() < 1e-4 && (miny - 35.654).abs() < 1e-4,
        "{minx} {miny}"
    );
    let (rows, indexed) = counts().await;
    assert_eq!(rows, indexed);
    app.store
        .delete(&layer, id, "tester", None)
        .await
        .expect("deleted")
        .expect("found");
    assert_eq!(
        counts().await,
        (rows - 1, indexed - 1),
        "unindexed with its row"
    );
    assert_eq!(
        app.store.last_seq().await.expect("seq"),
        seq + 3,
        "each write logged once, by onemap, not again by the log triggers"
    );
    let actors: Vec<String> =
        sqlx::query_scalar("SELECT actor FROM onemap_changes WHERE seq > ? ORDER BY seq")
            .bind(seq)
            .fetch_all(&pool)
            .await
            .expect("log");
    assert_eq!(actors, ["tester", "tester", "tester"]);
    assert_eq!(schema_version().await, version, "no DDL in a write");
    // gpkg_contents' extent grew to both places the feature has been.
    let (min_x, max_y): (f64, f64) = {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("opens");
        sqlx::query_as("SELECT min_x, max_y FROM gpkg_contents WHERE table_name = 'shelters'")
            .fetch_one(&mut c)
            .await
            .expect("extent")
    };
    assert!(min_x <= 118.123 && max_y >= 35.654, "{min_x} {max_y}");
    let marks: i64 = sqlx::query_scalar("SELECT count(*) FROM onemap_own_write")
        .fetch_one(&pool)
        .await
        .expect("marks");
    assert_eq!(marks, 0, "the own-write mark is never committed");

    // A file whose log triggers predate the mark gets them replaced.
    pool.close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.expect("opens");
    sqlx::raw_sql(
        "DROP TRIGGER onemap_log_shelters_delete; \
         CREATE TRIGGER onemap_log_shelters_delete AFTER DELETE ON shelters BEGIN \
         INSERT INTO onemap_changes (at, actor, layer, op, feature_ids) VALUES \
         ('2026-01-01T00:00:00Z', 'old', 'shelters', 'delete', '[' || OLD.fid || ']'); END",
    )
    .execute(&pool)
    .await
    .expect("an old trigger");
    let again = onemap::store::gpkg::GpkgStore::open(&url)
        .await
        .expect("reopens");
    onemap::store::Store::prepare(&again, app.catalog.layers())
        .await
        .expect("prepares");
    let sql: String = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE name = 'onemap_log_shelters_delete'",
    )
    .fetch_one(&pool)
    .await
    .expect("trigger");
    assert!(sql.contains("onemap_own_write"), "{sql}");
}

#[tokio::test]
async fn features_appended_by_gdal_are_indexed_and_read_back() {
    let app = spawn_app(true).await;
    let path = app.db_path.to_str().expect("utf-8 path").to_owned();
    let new = app.dir.path().join("new-team.geojson");
    std::fs::write(
        &new,
        r#"{"type":"FeatureCollection","features":[{"type":"Feature",
            "properties":{"name":"QGIS 录入的救援队","team_type":"volunteer","status":"standby","headcount":12},
            "geometry":{"type":"Point","coordinates":[118.31,35.01]}}]}"#,
    )
    .expect("write");
    let out = Command::new("ogr2ogr")
        .args([
            "-update",
            "-append",
            &path,
            new.to_str().expect("path"),
            "-nln",
            "rescue_teams",
        ])
        .output()
        .expect("GDAL's ogr2ogr is needed for this test (apt-get install gdal-bin)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let layer = app.catalog.get("rescue_teams").expect("layer");
    let near = Query::bbox([118.309, 35.009, 118.311, 35.011]);
    let found = app.store.features(layer, &near).await.expect("bbox query");
    let team = found
        .iter()
        .find(|f| f.name() == Some("QGIS 录入的救援队"))
        .expect("GDAL's R-tree triggers indexed the new feature");
    assert_eq!(
        team.geometry,
        geo::Geometry::Point(geo::point! { x: 118.31, y: 35.01 })
    );
    assert_eq!(team.properties["headcount"], 12);

    // The server learns of it from the change log that the layer's triggers
    // filled in GDAL's transaction: the tile there draws it, the metrics
    // count it, and the event stream announces it.
    let z = 16u8;
    let n = f64::from(1u32 << z);
    let x = ((118.31 + 180.0) / 360.0 * n) as u32;
    let lat = 35.01f64.to_radians();
    let y = ((1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n) as u32;
    let mut drawn = false;
    for _ in 0..50 {
        let r = app
            .get(&format!("/tiles/rescue_teams/{z}/{x}/{y}.mvt"))
            .await;
        if r.status() == 200 {
            let body = r.bytes().await.expect("tile");
            if body
                .windows("QGIS 录入的救援队".len())
                .any(|w| w == "QGIS 录入的救援队".as_bytes())
            {
                drawn = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(drawn, "the tile draws the feature GDAL appended");
    let audit_token = app.token(onemap::auth::Role::Admin).await;
    let audit = app
        .get_json_as("/api/audit?layer=rescue_teams&limit=1", &audit_token)
        .await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["op"], "create", "{audit}");
    assert_eq!(entry["ids"], serde_json::json!([team.id]), "{audit}");
    assert!(
        entry["actor"]
            .as_str()
            .unwrap_or_default()
            .contains("another program"),
        "{audit}"
    );
    // And replayed from the log to a client that was one event behind.
    let seq = entry["seq"].as_i64().expect("seq");
    let mut events = app
        .client
        .get(app.url("/api/events?layers=rescue_teams"))
        .header("last-event-id", (seq - 1).to_string())
        .send()
        .await
        .expect("answers")
        .bytes_stream();
    use futures_util::StreamExt;
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), events.next())
            .await
            .expect("an event within 5 s")
            .expect("a chunk")
            .expect("bytes");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(&format!("id: {seq}")), "{text}");
    assert!(text.contains("another program"), "{text}");
}

#[tokio::test]
async fn a_write_waits_for_another_program_holding_the_file_instead_of_failing() {
    use sqlx::Connection;
    let app = spawn_app(true).await;
    let token = app.token(onemap::auth::Role::Dispatcher).await;
    // Another program (QGIS, GDAL, a script) in the middle of its own write.
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", app.db_path.display()))
        .await
        .expect("a second connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("the other program takes the write lock");
    sqlx::query(
        "UPDATE gpkg_contents SET description = 'edited elsewhere' WHERE table_name = 'incidents'",
    )
    .execute(&mut other)
    .await
    .expect("its write");
    let (client, url) = (
        app.client.clone(),
        app.url("/ogc/collections/incidents/items"),
    );
    let post = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/geo+json")
            .body(
                serde_json::json!({ "type": "Feature", "geometry": { "type": "Point", "coordinates": [118.3, 35.0] },
                    "properties": { "name": "while QGIS saves", "type": "flood", "status": "reported",
                                    "reported_at": "2026-07-20T02:00:00Z" } })
                .to_string(),
            )
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    });
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    sqlx::query("COMMIT")
        .execute(&mut other)
        .await
        .expect("the other program commits");
    assert_eq!(post.await.expect("task"), 201, "the write waited its turn");
    let found = app
        .get_json("/ogc/collections/incidents/items?name=while%20QGIS%20saves")
        .await;
    assert_eq!(found["numberReturned"], 1);
}

/// GDAL's own GeoPackage validator (`validate_gpkg.py`, from python3-gdal,
/// run by Debian's Python, which has the `osgeo` bindings); `.ci/run`
/// installs it, and a check that cannot run must not pass.
fn validate_gpkg(path: &std::path::Path) {
    let script = [
        "/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py",
        "/usr/share/doc/python3-gdal/examples/validate_gpkg.py",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or_else(|| {
        panic!("GDAL's validate_gpkg.py is needed for this test (apt-get install python3-gdal)")
    });
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run Debian's python3 for validate_gpkg.py: {e}"));
    assert!(
        out.status.success(),
        "GDAL's validator refuses {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn gdals_validator_accepts_the_file_as_written_and_after_edits() {
    let app = spawn_app(true).await;
    validate_gpkg(&app.db_path);
    // After a write through the API and a token (every table onemap
    // registers, its bookkeeping included).
    let token = app.token(onemap::auth::Role::Dispatcher).await;
    let r = app
        .client
        .post(app.url("/ogc/collections/incidents/items"))
        .bearer_auth(&token)
        .header("content-type", "application/geo+json")
        .body(
            r#"{"type":"Feature","properties":{"name":"堤防渗水","type":"flood","severity":"major","status":"reported","reported_at":"2026-07-12T03:00:00Z"},
                "geometry":{"type":"Point","coordinates":[118.3,35.0]}}"#,
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let dir = app.stop().await;
    validate_gpkg(&dir.path().join("onemap.gpkg"));
}

#[tokio::test]
async fn statuses_of_an_older_release_are_renamed_when_the_file_is_opened() {
    let app = crate::helpers::spawn_app(true).await;
    let path = app.db_path.display().to_string();
    let dir = app.stop().await;
    // The file as the release before the incident lifecycle left it,
    // edited with GDAL (whose SQLite has the triggers' functions).
    ogrinfo(&[
        &path,
        "-sql",
        "UPDATE incidents SET status = CASE fid WHEN 1 THEN 'responding' WHEN 2 THEN 'confirmed' ELSE 'closed' END",
    ]);
    let app = crate::helpers::spawn_app_in(dir, false).await;
    let incidents = app.get_json("/ogc/collections/incidents/items").await;
    let statuses: Vec<(i64, String)> = incidents["features"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["id"].as_i64().unwrap_or(0),
                f["properties"]["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(statuses.len() >= 3);
    for (id, status) in statuses {
        let want = match id {
            1 | 2 => "active",
            _ => "resolved",
        };
        assert_eq!(status, want, "incident {id}");
    }
    // The file is still a valid GeoPackage with its triggers in place.
    let out = ogrinfo(&["-ro", "-so", &path, "incidents"]);
    assert!(out.contains("Feature Count"), "{out}");
    let token = app.token(onemap::auth::Role::Dispatcher).await;
    let r = app
        .client
        .patch(app.url("/api/incidents/1"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"status": "resolved"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200, "a renamed incident follows the lifecycle");
}
