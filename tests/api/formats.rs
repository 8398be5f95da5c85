//! Import and export in every format, over HTTP and the CLI: GeoJSON,
//! newline-delimited GeoJSON, CSV (with datums) and GeoPackage.

use std::process::Command as StdCommand;

use onemap::auth::Role;
use serde_json::Value;
use tokio::process::Command;

use crate::helpers::spawn_app;

#[tokio::test]
async fn items_download_as_csv_and_geopackage_that_gdal_reads() {
    let app = spawn_app(true).await;
    let r = app
        .get("/ogc/collections/hazard_sources/items?f=csv&class=gas_station")
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/csv"));
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap_or_default()
        .contains("hazard_sources.csv"));
    let text = r.text().await.expect("csv");
    let mut lines = text.lines();
    assert!(lines
        .next()
        .is_some_and(|h| h.starts_with("id,longitude,latitude,name")));
    assert_eq!(lines.count(), 18, "every gas station, not a page of them");

    let r = app.get("/ogc/collections/districts/items?f=gpkg").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/geopackage+sqlite3"
    );
    let bytes = r.bytes().await.expect("gpkg");
    assert_eq!(&bytes[68..72], b"GPKG");
    let path = app.dir.path().join("districts.gpkg");
    std::fs::write(&path, &bytes).expect("write");
    let out = Command::new("ogrinfo")
        .args(["-ro", "-so", path.to_str().expect("path"), "districts"])
        .output()
        .await
        .expect("GDAL's ogrinfo is needed for this test (apt-get install gdal-bin)");
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(info.contains("Feature Count: 12"), "{info}");
    assert!(info.contains("adcode: String"), "{info}");
}

#[tokio::test]
async fn csv_and_geopackage_uploads_import_all_or_nothing() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Admin).await;
    let upload = |ct: &'static str, body: Vec<u8>, layer: &'static str, crs: &'static str| {
        app.client
            .post(app.url(&format!("/api/import/{layer}?crs={crs}")))
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let csv = "name,lon,lat,kind,quantity,owner\n排涝泵车,118.30,35.00,pump,2,罗庄区水利局\n发电车,118.31,35.01,generator,1,罗庄区应急管理局\n";
    let r = upload("text/csv", csv.as_bytes().to_vec(), "equipment", "gcj02")
        .await
        .expect("answers");
    assert_eq!(r.status(), 201);
    let fc = app
        .get_json("/ogc/collections/equipment/items?name=排涝泵车&crs=gcj02")
        .await;
    let c = &fc["features"][0]["geometry"]["coordinates"];
    assert!(
        (c[0].as_f64().unwrap_or(0.0) - 118.30).abs() < 1e-9,
        "GCJ-02 in, GCJ-02 out: {c}"
    );

    let bad = "name,lon,lat,kind,quantity\nA,118.3,35.0,pump,2\nB,118.3,35.0,pump,lots\n";
    let r = upload("text/csv", bad.as_bytes().to_vec(), "equipment", "wgs84")
        .await
        .expect("answers");
    assert_eq!(r.status(), 422);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["errors"][0]["line"], 3);
    assert_eq!(report["errors"][0]["field"], "quantity");

    // A GeoPackage exported by onemap comes back in through the import.
    let gpkg = app
        .get("/ogc/collections/shelters/items?f=gpkg")
        .await
        .bytes()
        .await
        .expect("gpkg")
        .to_vec();
    let before = app.get_json("/ogc/collections/shelters/items").await;
    let r = upload("application/geopackage+sqlite3", gpkg, "shelters", "wgs84")
        .await
        .expect("answers");
    assert_eq!(r.status(), 201);
    let after = app.get_json("/ogc/collections/shelters/items").await;
    assert_eq!(
        after["numberMatched"].as_u64(),
        before["numberMatched"].as_u64().map(|n| n * 2)
    );
    let r = upload("application/pdf", vec![1, 2, 3], "shelters", "wgs84")
        .await
        .expect("answers");
    assert_eq!(r.status(), 415);
    let r = upload("application/zip", vec![1, 2, 3], "shelters", "wgs84")
        .await
        .expect("answers");
    assert_eq!(r.status(), 400, "a corrupt zip is the client's fault");
}

#[test]
fn the_cli_exports_and_imports_csv_and_geopackage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("a.gpkg").display());
    let other = format!("sqlite://{}", dir.path().join("b.gpkg").display());
    let run = |args: &[&str]| {
        let o = StdCommand::new(env!("CARGO_BIN_EXE_onemap"))
            .args(args)
            .output()
            .expect("runs");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    let src = dir.path().join("teams.csv");
    std::fs::write(
        &src,
        "name,longitude,latitude,team_type,status,capabilities\n甲队,118.3,35.0,militia,standby,levee_repair;evacuation\n乙队,118.31,35.01,volunteer,off_duty,\n",
    )
    .expect("write");
    run(&[
        "--database",
        &db,
        "import",
        "--layer",
        "rescue_teams",
        src.to_str().expect("path"),
    ]);
    let gpkg = dir.path().join("teams.gpkg");
    run(&[
        "--database",
        &db,
        "export",
        "--layer",
        "rescue_teams",
        "-o",
        gpkg.to_str().expect("path"),
    ]);
    run(&[
        "--database",
        &other,
        "import",
        "--layer",
        "rescue_teams",
        gpkg.to_str().expect("path"),
    ]);
    let csv = dir.path().join("back.csv");
    run(&[
        "--database",
        &other,
        "export",
        "--layer",
        "rescue_teams",
        "-o",
        csv.to_str().expect("path"),
    ]);
    let text = std::fs::read_to_string(&csv).expect("read");
    assert!(
        text.contains("甲队,militia") || text.contains("甲队"),
        "{text}"
    );
    assert!(
        text.contains("\"[\"\"levee_repair\"\",\"\"evacuation\"\"]\""),
        "arrays survive: {text}"
    );
    assert_eq!(text.lines().count(), 3);
}

#[tokio::test]
async fn gbk_shapefiles_import_from_a_path_and_as_a_zip_upload() {
    let app = spawn_app(false).await;
    let dir = app.dir.path().to_owned();
    let src = dir.join("depots.geojson");
    std::fs::write(
        &src,
        r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","geometry":{"type":"Point","coordinates":[118.30,35.00]},
           "properties":{"name":"罗庄区应急物资储备库","level":"district","manager":"王建国"}},
          {"type":"Feature","geometry":{"type":"Point","coordinates":[118.21,34.88]},
           "properties":{"name":"褚墩镇应急物资储备点","level":"town","manager":"李秀英"}}]}"#,
    )
    .expect("write");
    let shp = dir.join("depots.shp");
    let out = Command::new("ogr2ogr")
        .args([
            "-f",
            "ESRI Shapefile",
            "-lco",
            "ENCODING=GBK",
            shp.to_str().expect("path"),
            src.to_str().expect("path"),
        ])
        .output()
        .await
        .expect("GDAL's ogr2ogr is needed for this test (apt-get install gdal-bin)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("depots.cpg"))
            .unwrap_or_default()
            .trim(),
        "GBK"
    );

    let layer = app.catalog.get("supply_depots").expect("layer").clone();
    let parsed = onemap::formats::read_file(
        &layer,
        onemap::formats::Format::Shapefile,
        &shp,
        onemap::crs::Crs::Wgs84,
    )
    .await
    .expect("reads");
    assert_eq!(
        parsed.features[0].name(),
        Some("罗庄区应急物资储备库"),
        "GBK decoded"
    );

    let zip = dir.join("depots.zip");
    let mut args = vec![
        "-m".to_owned(),
        "zipfile".to_owned(),
        "-c".to_owned(),
        zip.display().to_string(),
    ];
    for ext in ["shp", "shx", "dbf", "cpg", "prj"] {
        let p = dir.join(format!("depots.{ext}"));
        if p.exists() {
            args.push(p.display().to_string());
        }
    }
    let out = Command::new("python3")
        .args(&args)
        .output()
        .await
        .expect("python3 zips");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = app.token(Role::Dispatcher).await;
    let r = app
        .client
        .post(app.url("/api/import/supply_depots"))
        .bearer_auth(&token)
        .header("content-type", "application/zip")
        .body(std::fs::read(&zip).expect("zip"))
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let fc = app
        .get_json("/ogc/collections/supply_depots/items?level=town")
        .await;
    assert_eq!(fc["features"][0]["properties"]["manager"], "李秀英");
}

/// A census-style CSV whose columns are not the layer's: refused with one
/// problem per distinct column (not one line per row), then taken in with
/// `map` and `drop_unknown`, the mapped text read as the property's type.
#[tokio::test]
async fn an_import_with_foreign_columns_is_summarised_then_mapped() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Admin).await;
    let rows: String = (0..300)
        .map(|i| format!("泵车{i},118.3,35.0,pump,{},罗庄区水利局,{i}\n", i % 7))
        .collect();
    let csv = format!("名称,lon,lat,kind,数量,owner,编号\n{rows}");
    let post = |query: &str| {
        app.client
            .post(app.url(&format!("/api/import/equipment{query}")))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(csv.clone())
            .send()
    };
    let r = post("").await.expect("answers");
    assert_eq!(r.status(), 422);
    let report: Value = r.json().await.expect("json");
    let problems = report["problems"].as_array().cloned().unwrap_or_default();
    let fields: Vec<(&str, u64)> = problems
        .iter()
        .map(|p| {
            (
                p["field"].as_str().unwrap_or(""),
                p["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [("名称", 300), ("数量", 300), ("编号", 300), ("name", 300)],
        "{report}"
    );
    assert_eq!(report["total"], 1200);
    assert_eq!(problems[0]["lines"], serde_json::json!([2, 3, 4, 5, 6]));
    let detail = report["detail"].as_str().unwrap_or_default();
    assert_eq!(detail.matches("; ").count(), 3, "{detail}");

    // A map to a property the layer lacks is a 400 naming it; so is a bad flag.
    let r = post("?map=名称=名字").await.expect("answers");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("`名字` is not a property"),
        "{body}"
    );
    let r = post("?drop_unknown=maybe").await.expect("answers");
    assert_eq!(r.status(), 400);

    let r = post("?map=名称=name&map=数量=quantity&drop_unknown=true")
        .await
        .expect("answers");
    assert_eq!(r.status(), 201);
    let done: Value = r.json().await.expect("json");
    assert_eq!(done["imported"], 300);
    assert_eq!(done["columns"]["renamed"]["名称"], 300);
    assert_eq!(done["columns"]["dropped"]["编号"], 300);
    let fc = app
        .get_json("/ogc/collections/equipment/items?name=泵车12")
        .await;
    let props = &fc["features"][0]["properties"];
    assert_eq!(props["quantity"], 5, "text read as an integer: {props}");
    assert!(props.get("编号").is_none(), "{props}");
}
