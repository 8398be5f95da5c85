//! The `onemap` binary: --help, migrate, import (all or nothing, with a
//! report naming line and field) and export, with GCJ-02/BD-09 round trips.

use std::process::{Command, Output};

use serde_json::Value;

fn onemap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onemap"))
        .args(args)
        .env_remove("ONEMAP_DATABASE")
        .output()
        .expect("the onemap binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_every_command_and_setting() {
    let o = onemap(&["--help"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for word in [
        "serve",
        "migrate",
        "import",
        "export",
        "--database",
        "--config",
    ] {
        assert!(text.contains(word), "{word} in\n{text}");
    }
    let o = onemap(&["serve", "--help"]);
    let text = String::from_utf8_lossy(&o.stdout);
    for word in ["--bind", "--demo", "ONEMAP_BIND", "--cors-origins"] {
        assert!(text.contains(word), "{word} in\n{text}");
    }
}

#[test]
fn import_is_all_or_nothing_and_names_the_bad_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("t.gpkg").display());
    let file = dir.path().join("points.ndjson");
    let line = |status: &str| {
        format!(
            r#"{{"type":"Feature","geometry":{{"type":"Point","coordinates":[118.3,35.0]}},"properties":{{"name":"a","status":"{status}","team_type":"militia"}}}}"#
        )
    };
    std::fs::write(
        &file,
        format!(
            "{}\n{}\n{}\n",
            line("standby"),
            line("asleep"),
            line("standby")
        ),
    )
    .expect("write");
    let o = onemap(&[
        "--database",
        &db,
        "import",
        "--layer",
        "rescue_teams",
        file.to_str().expect("path"),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("line 2") && err.contains("status"), "{err}");

    let out = dir.path().join("out.geojson");
    let o = onemap(&[
        "--database",
        &db,
        "export",
        "--layer",
        "rescue_teams",
        "-o",
        out.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let fc: Value = serde_json::from_slice(&std::fs::read(&out).expect("read")).expect("json");
    assert_eq!(
        fc["features"].as_array().map(Vec::len),
        Some(0),
        "nothing was stored"
    );

    let unclosed = dir.path().join("zone.geojson");
    std::fs::write(
        &unclosed,
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"z","risk_level":"low"},
           "geometry":{"type":"Polygon","coordinates":[[[118.3,35.0],[118.31,35.0],[118.31,35.01],[118.3,35.01]]]}}]}"#,
    )
    .expect("write");
    let o = onemap(&[
        "--database",
        &db,
        "import",
        "--layer",
        "flood_zones",
        unclosed.to_str().expect("path"),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not closed"), "{}", stderr(&o));
}

#[test]
fn import_maps_and_drops_columns_and_summarises_a_refusal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("t.gpkg").display());
    let file = dir.path().join("teams.csv");
    let rows: String = (0..50)
        .map(|i| format!("队{i},118.3,35.0,standby,militia,{i}\n"))
        .collect();
    std::fs::write(&file, format!("队名,lon,lat,status,team_type,电话\n{rows}")).expect("write");
    let path = file.to_str().expect("path");
    let base = ["--database", &db, "import", "--layer", "rescue_teams"];
    let o = onemap(&[&base[..], &[path]].concat());
    assert!(!o.status.success());
    let err = stderr(&o);
    // Three distinct problems (two foreign columns, the missing name),
    // each once with its count: not 150 lines.
    assert_eq!(err.matches("50 features").count(), 3, "{err}");
    assert!(err.contains("line 2, line 3"), "{err}");
    assert!(err.len() < 2_000, "a summary, not a list: {err}");

    let o = onemap(&[&base[..], &["--map", "队名=name", "--drop-unknown", path]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("dropped column `电话` (50 features)"), "{err}");
    assert!(err.contains("imported 50 features"), "{err}");

    let o = onemap(&[&base[..], &["--map", "队名=nickname", path]].concat());
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("`nickname` is not a property"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn gcj02_and_bd09_files_round_trip_through_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("t.gpkg").display());
    let (x, y) = (118.284786, 34.996741);
    let file = dir.path().join("in.geojson");
    std::fs::write(
        &file,
        format!(
            r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","properties":{{"name":"罗庄区政府","station_type":"other"}},
               "geometry":{{"type":"Point","coordinates":[{x},{y}]}}}}]}}"#
        ),
    )
    .expect("write");
    let o = onemap(&[
        "--database",
        &db,
        "import",
        "--layer",
        "seismic_stations",
        "--crs",
        "gcj02",
        file.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let export = |crs: &str| -> (f64, f64) {
        let out = dir.path().join(format!("out-{crs}.geojson"));
        let o = onemap(&[
            "--database",
            &db,
            "export",
            "--layer",
            "seismic_stations",
            "--crs",
            crs,
            "-o",
            out.to_str().expect("path"),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let fc: Value = serde_json::from_slice(&std::fs::read(&out).expect("read")).expect("json");
        let c = &fc["features"][0]["geometry"]["coordinates"];
        (c[0].as_f64().expect("lon"), c[1].as_f64().expect("lat"))
    };
    let gcj = export("gcj02");
    assert!(
        (gcj.0 - x).abs() < 1e-9 && (gcj.1 - y).abs() < 1e-9,
        "GCJ-02 out equals GCJ-02 in: {gcj:?}"
    );
    let wgs = export("wgs84");
    assert!(
        (wgs.0 - 118.279171).abs() < 1e-6 && (wgs.1 - 34.997384).abs() < 1e-6,
        "stored as WGS84: {wgs:?}"
    );
    let bd = export("bd09");
    let back = onemap::crs::Crs::Bd09.to_wgs84(bd.0, bd.1);
    assert!(
        (back.0 - wgs.0).abs() < 1e-9 && (back.1 - wgs.1).abs() < 1e-9,
        "BD-09 out returns to WGS84: {back:?}"
    );
}

#[test]
fn migrate_creates_a_geopackage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new.gpkg");
    let o = onemap(&[
        "--database",
        &format!("sqlite://{}", path.display()),
        "migrate",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&path).expect("created");
    assert_eq!(&bytes[68..72], b"GPKG");
}

/// A FeatureCollection of `n` rescue teams; the team numbered `bad` (if
/// any) has a status the layer does not allow.
fn teams_file(path: &std::path::Path, n: usize, bad: Option<usize>) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    write!(
        out,
        r#"{{"type":"FeatureCollection","name":"teams","features":["#
    )
    .expect("write");
    for i in 0..n {
        let status = if Some(i) == bad { "asleep" } else { "standby" };
        let sep = if i == 0 { "" } else { "," };
        write!(
            out,
            r#"{sep}{{"type":"Feature","geometry":{{"type":"Point","coordinates":[{},{}]}},"properties":{{"name":"队{i}","status":"{status}","team_type":"militia","headcount":{}}}}}"#,
            118.0 + (i % 1000) as f64 * 0.0005,
            34.8 + (i / 1000) as f64 * 0.0005,
            i % 90
        )
        .expect("write");
    }
    writeln!(out, "]}}").expect("write");
}

async fn teams_stored(db: &str) -> (u64, Vec<onemap::store::Change>) {
    let store = onemap::store::open(db).await.expect("the store opens");
    let catalog = onemap::layers::Catalog::builtin().expect("catalog");
    let layer = catalog.get("rescue_teams").expect("teams");
    let n = store
        .count(layer, &onemap::store::Query::default())
        .await
        .expect("a count");
    let changes = store.changes_since(0, 100).await.expect("the log");
    store.close().await;
    (n, changes)
}

#[tokio::test]
async fn a_streamed_import_spans_batches_as_one_change_and_a_killed_one_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("t.gpkg").display());
    let file = dir.path().join("teams.geojson");
    let path = file.to_str().expect("path");
    let base = ["--database", &db, "import", "--layer", "rescue_teams"];
    // Three batches; the one bad team is in the last.
    let n = 2 * onemap::formats::stream::BATCH + 5_000;
    teams_file(&file, n, Some(n - 2));
    let o = onemap(&[&base[..], &[path]].concat());
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!("#{}", n - 2)) && err.contains("status"),
        "{err}"
    );
    assert_eq!(
        teams_stored(&db).await.0,
        0,
        "nothing of the earlier batches stayed"
    );

    teams_file(&file, n, None);
    let o = onemap(&[&base[..], &[path]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("imported {n} features")),
        "{}",
        stderr(&o)
    );
    let (count, changes) = teams_stored(&db).await;
    assert_eq!(count, n as u64);
    let imports: Vec<&onemap::store::Change> = changes.iter().filter(|c| c.is_import()).collect();
    assert_eq!(imports.len(), 1, "one summary change");
    let action = imports[0].action.as_ref().expect("a summary");
    assert_eq!(action["count"], n);
    let bytes = std::fs::read(&file).expect("the file");
    assert_eq!(action["digest"], onemap::formats::digest(&bytes).as_str());
    assert_eq!(action["file"], "teams.geojson");

    // Killed in the middle of its transaction: the store is as it was.
    let big = dir.path().join("big.geojson");
    teams_file(&big, 400_000, None);
    let wal = dir.path().join("t.gpkg-wal");
    let wal_before = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_onemap"))
        .args([&base[..], &[big.to_str().expect("path")]].concat())
        .env_remove("ONEMAP_DATABASE")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the import starts");
    let started = std::time::Instant::now();
    // Wait until it has written a good part of its transaction.
    while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) < wal_before + (8 << 20) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the import never wrote"
        );
        assert!(
            child.try_wait().expect("waits").is_none(),
            "the import ended before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("killed");
    child.wait().expect("reaped");
    let (after, changes_after) = teams_stored(&db).await;
    assert_eq!(after, n as u64, "the killed import left no row");
    assert_eq!(changes_after.len(), changes.len(), "and no change");
}
