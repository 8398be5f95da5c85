//! Hostile files: deeply nested WKT and WKB, zip bombs, GeoPackages whose
//! "table" is a never-ending view, rows another tool wrote that onemap
//! cannot load, and spreadsheet formulas in CSV exports. Each is sent (or
//! written) as an attacker would; the server must refuse it with a 4xx,
//! stay healthy at once, and keep its store unchanged.

use std::{
    path::Path,
    process::{Command as StdCommand, Output},
    time::{Duration, Instant},
};

use onemap::{auth::Role, store::Query};

use crate::helpers::{spawn_app, spawn_app_in, TestApp};

/// `depth` nested WKB GeometryCollections around a point, as a GeoPackage
/// geometry blob (little-endian header, SRID 4326, no envelope).
fn nested_blob(depth: usize) -> Vec<u8> {
    let mut b = vec![b'G', b'P', 0, 1];
    b.extend(4326i32.to_le_bytes());
    for _ in 0..depth {
        b.push(1);
        b.extend(7u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
    }
    b.push(1);
    b.extend(1u32.to_le_bytes());
    b.extend(118.3f64.to_le_bytes());
    b.extend(35.0f64.to_le_bytes());
    b
}

/// A CSV whose second line's `wkt` cell nests 3,000 GeometryCollections.
fn deep_wkt_csv() -> String {
    let deep = format!(
        "{}POINT(118.3 35){}",
        "GEOMETRYCOLLECTION(".repeat(3000),
        ")".repeat(3000)
    );
    format!("name,wkt\ndeep,\"{deep}\"\n")
}

/// Run SQL on a GeoPackage with Python's sqlite3, standing in for GDAL or
/// QGIS editing the file: the spec's R-tree triggers call ST_* functions,
/// which GDAL registers; here they are stubs. `?` binds the blob in
/// `blob_file` (when given).
fn edit_with_sqlite(db: &Path, sql: &str, blob_file: Option<&Path>) {
    let script = r#"
import sqlite3, sys
db, sql, blob = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db)
for f in ["ST_IsEmpty", "ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"]:
    c.create_function(f, 1, lambda g: 0)
args = (open(blob, "rb").read(),) if blob else ()
c.executescript(sql) if not args else c.execute(sql, args)
c.commit()
c.close()
"#;
    let out = StdCommand::new("python3")
        .args([
            "-c",
            script,
            db.to_str().expect("utf-8 path"),
            sql,
            blob_file
                .map(|p| p.to_str().expect("utf-8 path"))
                .unwrap_or(""),
        ])
        .output()
        .expect("python3 is needed for this test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn onemap(args: &[&str]) -> Output {
    StdCommand::new(env!("CARGO_BIN_EXE_onemap"))
        .args(args)
        .env_remove("ONEMAP_DATABASE")
        .output()
        .expect("the onemap binary runs")
}

/// Every layer's feature count and the change log's head: what "the store
/// is unchanged" compares.
async fn store_state(app: &TestApp) -> (Vec<u64>, i64) {
    let mut counts = Vec::new();
    for layer in app.catalog.layers() {
        counts.push(
            app.store
                .count(layer, &Query::default())
                .await
                .expect("count"),
        );
    }
    (counts, app.store.last_seq().await.expect("last seq"))
}

async fn upload(
    app: &TestApp,
    token: &str,
    layer: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        app.client
            .post(app.url(&format!("/api/import/{layer}")))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send(),
    )
    .await
    .expect("the import is answered, not left running")
    .expect("the server answers");
    (
        r.status().as_u16(),
        r.text().await.expect("a problem document"),
    )
}

/// A GeoPackage the server itself exported: a real file to tamper with.
async fn exported_gpkg(app: &TestApp, layer: &str) -> std::path::PathBuf {
    let bytes = app
        .get(&format!("/ogc/collections/{layer}/items?f=gpkg"))
        .await
        .bytes()
        .await
        .expect("gpkg");
    let path = app.dir.path().join(format!("{layer}-export.gpkg"));
    std::fs::write(&path, &bytes).expect("write");
    path
}

#[tokio::test]
async fn a_csv_cell_of_3000_nested_collections_is_refused_over_http_and_the_cli() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Admin).await;
    let before = store_state(&app).await;
    let (status, body) = upload(
        &app,
        &token,
        "rescue_teams",
        "text/csv",
        deep_wkt_csv().into_bytes(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("line 2") && body.contains("deeper than 32"),
        "{body}"
    );
    app.healthy_at_once().await;
    assert_eq!(store_state(&app).await, before);

    let file = app.dir.path().join("deep.csv");
    std::fs::write(&file, deep_wkt_csv()).expect("write");
    let db = format!("sqlite://{}", app.dir.path().join("cli.gpkg").display());
    let o = onemap(&[
        "--database",
        &db,
        "import",
        "--layer",
        "rescue_teams",
        file.to_str().expect("path"),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a refusal, not a crash: {err}");
    assert!(
        err.contains("line 2") && err.contains("deeper than 32"),
        "{err}"
    );
}

#[tokio::test]
async fn a_geopackage_of_20000_nested_collections_is_refused_over_http_and_the_cli() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Admin).await;
    let gpkg = exported_gpkg(&app, "shelters").await;
    let blob = app.dir.path().join("nested.bin");
    std::fs::write(&blob, nested_blob(20_000)).expect("write");
    edit_with_sqlite(
        &gpkg,
        "UPDATE shelters SET geom = ? WHERE fid = (SELECT min(fid) FROM shelters)",
        Some(&blob),
    );
    let before = store_state(&app).await;
    let (status, body) = upload(
        &app,
        &token,
        "shelters",
        "application/geopackage+sqlite3",
        std::fs::read(&gpkg).expect("read"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("nests deeper than 32"), "{body}");
    app.healthy_at_once().await;
    assert_eq!(store_state(&app).await, before);

    let db = format!("sqlite://{}", app.dir.path().join("cli.gpkg").display());
    let o = onemap(&[
        "--database",
        &db,
        "import",
        "--layer",
        "shelters",
        gpkg.to_str().expect("path"),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a refusal, not a crash: {err}");
    assert!(err.contains("nests deeper than 32"), "{err}");
}

/// Two ids of `layer` in a demo server, then the server stopped: its
/// folder, for another tool to edit.
async fn stopped_demo(layer: &str) -> (tempfile::TempDir, i64, i64) {
    let app = spawn_app(true).await;
    let def = app.catalog.get(layer).expect("layer").clone();
    let ids: Vec<i64> = app
        .store
        .features(&def, &Query::default())
        .await
        .expect("features")
        .iter()
        .filter_map(|f| f.id)
        .collect();
    let (a, b) = (ids[0], ids[1]);
    (app.stop().await, a, b)
}

/// Start a server on `dir` twice (a bad row must not turn into a crash
/// loop); each time `/healthz` must name one skipped row of `layer`, fid
/// `bad` (when known), why containing `why`, and the other rows must serve.
async fn starts_and_reports(
    mut dir: tempfile::TempDir,
    layer: &str,
    bad: Option<i64>,
    why: &str,
    good: i64,
) {
    for _ in 0..2 {
        let app = spawn_app_in(dir, false).await;
        let health = app.healthy_at_once().await;
        let skipped = &health["skipped_rows"][layer];
        assert_eq!(skipped["count"], 1, "{health}");
        if let Some(bad) = bad {
            assert_eq!(skipped["rows"][0]["fid"], bad, "{health}");
        }
        assert!(
            skipped["rows"][0]["reason"]
                .as_str()
                .is_some_and(|r| r.contains(why)),
            "{health}"
        );
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        assert!(
            metrics.contains(&format!(
                r#"onemap_index_skipped_rows{{layer="{layer}"}} 1"#
            )),
            "{metrics}"
        );
        // The other rows serve as before: items by id, and tiles.
        let r = app
            .get(&format!("/ogc/collections/{layer}/items/{good}"))
            .await;
        assert_eq!(r.status(), 200);
        let r = app.get(&format!("/tiles/{layer}/0/0/0.mvt")).await;
        assert_eq!(r.status(), 200);
        dir = app.stop().await;
    }
}

#[tokio::test]
async fn a_hostile_geometry_written_into_the_servers_file_is_skipped_at_start_not_a_crash_loop() {
    let (dir, bad, good) = stopped_demo("shelters").await;
    let blob = dir.path().join("nested.bin");
    std::fs::write(&blob, nested_blob(20_000)).expect("write");
    edit_with_sqlite(
        &dir.path().join("onemap.gpkg"),
        &format!("UPDATE shelters SET geom = ? WHERE fid = {bad}"),
        Some(&blob),
    );
    starts_and_reports(dir, "shelters", Some(bad), "nests deeper than 32", good).await;
}

#[tokio::test]
async fn an_attribute_only_row_written_by_another_tool_does_not_stop_serve() {
    let (dir, good, _) = stopped_demo("rescue_teams").await;
    // A feature without geometry, as GDAL writes one.
    edit_with_sqlite(
        &dir.path().join("onemap.gpkg"),
        "INSERT INTO rescue_teams (geom, name, team_type, status) \
         VALUES (NULL, 'no place yet', 'volunteer', 'standby')",
        None,
    );
    starts_and_reports(dir, "rescue_teams", None, "NULL", good).await;
}

/// A zip of `name` holding `size` zero bytes: a few KB that inflate to MBs.
fn zip_bomb(name: &str, size: usize) -> Vec<u8> {
    use std::io::Write;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    out.start_file(
        name,
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated),
    )
    .expect("entry");
    let chunk = vec![0u8; 1 << 16];
    for _ in 0..size / chunk.len() {
        out.write_all(&chunk).expect("write");
    }
    out.finish().expect("zip").into_inner()
}

#[tokio::test]
async fn zip_bombs_are_refused_while_health_answers_at_once() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Admin).await;
    let before = store_state(&app).await;
    let bomb = zip_bomb("a.shp", 32 << 20);
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    let uploads: Vec<_> = (0..3)
        .map(|_| upload(&app, &token, "shelters", "application/zip", bomb.clone()))
        .collect();
    let due = Instant::now() + Duration::from_millis(20);
    let (answers, _) = tokio::join!(
        futures_util::future::join_all(uploads),
        app.healthy_by(due, Duration::from_secs(1))
    );
    for (status, body) in answers {
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("zip bomb"), "{body}");
    }
    assert_eq!(store_state(&app).await, before);
}

#[tokio::test]
async fn parsing_a_large_upload_leaves_health_answering_at_once() {
    let app = spawn_app(false).await;
    let token = app.token(Role::Admin).await;
    // Long enough to parse that a parser on the async worker stalls
    // everything behind it; the last row is bad, so nothing is stored.
    let mut csv = String::from("name,lon,lat,team_type,status,headcount\n");
    for i in 0..200_000 {
        csv.push_str(&format!(
            "team {i},118.3,35.0,volunteer,standby,{}\n",
            i % 50
        ));
    }
    csv.push_str("last,118.3,35.0,volunteer,standby,many\n");
    let started = Instant::now();
    let parse = upload(&app, &token, "rescue_teams", "text/csv", csv.into_bytes());
    let due = started + Duration::from_millis(100);
    let (answer, _) = tokio::join!(parse, app.healthy_by(due, Duration::from_millis(500)));
    let import_took = started.elapsed();
    eprintln!("the import took {import_took:?}");
    assert_eq!(answer.0, 422, "{}", answer.1);
    assert_eq!(
        store_state(&app).await,
        (vec![0; app.catalog.layers().len()], 0)
    );
}

/// A GeoPackage whose registered feature table `shelters` is a recursive
/// view that never ends (and, with `registry_view`, whose gpkg_contents is
/// one too).
fn recursive_view_gpkg(path: &Path, registry_view: bool) {
    let never_ends = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)";
    let contents = if registry_view {
        format!(
            "CREATE VIEW gpkg_contents AS {never_ends} SELECT 'shelters' AS table_name, 'features' AS data_type FROM c;"
        )
    } else {
        "CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT NOT NULL); \
         INSERT INTO gpkg_contents VALUES ('shelters', 'features');"
            .to_owned()
    };
    edit_with_sqlite(
        path,
        &format!(
            "PRAGMA application_id = 1196444487; {contents} \
             CREATE TABLE gpkg_geometry_columns (table_name TEXT, column_name TEXT); \
             INSERT INTO gpkg_geometry_columns VALUES ('shelters', 'geom'); \
             CREATE VIEW shelters AS {never_ends} SELECT x AS fid, NULL AS geom, printf('%.*c', 1000, 'x') AS name FROM c;"
        ),
        None,
    );
}

#[tokio::test]
async fn a_geopackage_whose_table_is_a_recursive_view_is_refused_quickly() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Admin).await;
    let before = store_state(&app).await;
    for registry_view in [false, true] {
        let path = app.dir.path().join(format!("view-{registry_view}.gpkg"));
        recursive_view_gpkg(&path, registry_view);
        let started = Instant::now();
        let (answer, _) = tokio::join!(
            upload(
                &app,
                &token,
                "shelters",
                "application/geopackage+sqlite3",
                std::fs::read(&path).expect("read"),
            ),
            app.healthy_at_once()
        );
        assert_eq!(answer.0, 400, "{}", answer.1);
        assert!(answer.1.contains("not a plain table"), "{}", answer.1);
        assert!(started.elapsed() < Duration::from_secs(2));
        app.healthy_at_once().await;
    }
    assert_eq!(store_state(&app).await, before);
}

#[tokio::test]
async fn csv_exports_neutralise_formulas_over_http_and_the_cli() {
    let app = spawn_app(false).await;
    let token = app.token(Role::Admin).await;
    let body = r#"{"type":"Feature","geometry":{"type":"Point","coordinates":[118.3,35.0]},
        "properties":{"name":"=HYPERLINK(\"http://evil.example\",\"open\")","team_type":"volunteer","status":"standby","headcount":12}}"#;
    let r = app
        .client
        .post(app.url("/ogc/collections/rescue_teams/items"))
        .bearer_auth(&token)
        .header("content-type", "application/geo+json")
        .body(body)
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 201);
    let text = app
        .get("/ogc/collections/rescue_teams/items?f=csv")
        .await
        .text()
        .await
        .expect("csv");
    let row = text.lines().nth(1).expect("a row");
    assert!(
        row.contains(r#""'=HYPERLINK(""http://evil.example"",""open"")""#),
        "{row}"
    );
    assert!(row.contains(",12"), "numbers stay numbers: {row}");

    let db = app.database.clone();
    let dir = app.stop().await;
    let out = dir.path().join("teams.csv");
    let o = onemap(&[
        "--database",
        &db,
        "export",
        "--layer",
        "rescue_teams",
        "--format",
        "csv",
        "-o",
        out.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).expect("csv");
    assert!(text.contains("'=HYPERLINK"), "{text}");
}
