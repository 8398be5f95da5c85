//! OGC API – Features, read side: landing, conformance, collections,
//! queryables, items with every filter, paging and datums, items by id with
//! ETags, the errors, and GDAL's OAPIF driver reading every layer.

use std::collections::BTreeSet;

use tokio::process::Command;

use onemap::{crs::Crs, filter, layers::Feature, store::Query};
use serde_json::Value;

use crate::helpers::{spawn_app, TestApp};

async fn json(app: &TestApp, path: &str) -> Value {
    let r = app.get(path).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.expect("json")
}

async fn problem(app: &TestApp, path: &str, status: u16) -> String {
    let r = app.get(path).await;
    assert_eq!(r.status(), status, "{path}");
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "{path}"
    );
    let body: Value = r.json().await.expect("problem json");
    body["detail"].as_str().unwrap_or_default().to_owned()
}

fn ids(fc: &Value) -> Vec<i64> {
    fc["features"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["id"].as_i64()).collect())
        .unwrap_or_default()
}

async fn all(app: &TestApp, layer: &str) -> Vec<Feature> {
    let layer = app.catalog.get(layer).expect("layer");
    app.store
        .features(layer, &Query::default())
        .await
        .expect("reads")
}

#[tokio::test]
async fn landing_conformance_and_collections_describe_every_layer() {
    let app = spawn_app(true).await;
    let landing = json(&app, "/ogc").await;
    let rels: BTreeSet<&str> = landing["links"]
        .as_array()
        .expect("links")
        .iter()
        .filter_map(|l| l["rel"].as_str())
        .collect();
    for rel in ["self", "conformance", "data", "service-desc"] {
        assert!(rels.contains(rel), "{rel}");
    }
    let conf = json(&app, "/ogc/conformance").await;
    let classes = conf["conformsTo"].as_array().expect("classes");
    for c in [
        "ogcapi-features-1/1.0/conf/core",
        "ogcapi-features-1/1.0/conf/geojson",
        "ogcapi-features-3/1.0/conf/filter",
        "cql2/1.0/conf/cql2-text",
    ] {
        assert!(
            classes
                .iter()
                .any(|x| x.as_str().is_some_and(|s| s.ends_with(c))),
            "{c}"
        );
    }
    let cols = json(&app, "/ogc/collections").await;
    let list = cols["collections"].as_array().expect("collections");
    assert_eq!(list.len(), app.catalog.layers().len());
    let shelters = json(&app, "/ogc/collections/shelters").await;
    assert!(shelters["title"]
        .as_str()
        .is_some_and(|t| t.contains("应急避难场所") && t.contains("shelters")));
    let bbox = &shelters["extent"]["spatial"]["bbox"][0];
    assert!(
        bbox[0]
            .as_f64()
            .is_some_and(|x| (118.0..118.5).contains(&x)),
        "{bbox}"
    );
}

#[tokio::test]
async fn queryables_are_a_json_schema_of_the_layer() {
    let app = spawn_app(false).await;
    let r = app.get("/ogc/collections/rescue_teams/queryables").await;
    assert_eq!(r.headers()["content-type"], "application/schema+json");
    let q: Value = r.json().await.expect("json");
    assert_eq!(q["properties"]["status"]["enum"][0], "standby");
    assert_eq!(q["properties"]["headcount"]["type"], "integer");
    assert_eq!(q["properties"]["geometry"]["format"], "geometry-point");
    assert_eq!(q["additionalProperties"], false);
}

#[tokio::test]
async fn items_page_through_every_feature_exactly_once() {
    let app = spawn_app(true).await;
    let first = app.get("/ogc/collections/cameras/items").await;
    assert_eq!(first.headers()["content-type"], "application/geo+json");
    let first: Value = first.json().await.expect("json");
    assert_eq!(first["numberMatched"], 165);
    assert_eq!(first["numberReturned"], 100, "the default limit is 100");

    let mut seen = Vec::new();
    let mut url = app.url("/ogc/collections/cameras/items?limit=40");
    loop {
        let page: Value = app
            .client
            .get(&url)
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        seen.extend(ids(&page));
        let next = page["links"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["rel"] == "next"))
            .and_then(|l| l["href"].as_str())
            .map(str::to_owned);
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), 165);
    assert_eq!(unique.len(), 165);

    let clipped = json(&app, "/ogc/collections/population_grid/items?limit=50000").await;
    assert_eq!(
        clipped["numberReturned"], clipped["numberMatched"],
        "a large limit is clipped, not refused"
    );
}

#[tokio::test]
async fn cql2_filters_select_exactly_what_the_expression_means() {
    let app = spawn_app(true).await;
    let layer = app.catalog.get("rescue_teams").expect("layer").clone();
    let teams = all(&app, "rescue_teams").await;
    for text in [
        "status = 'standby'",
        "status <> 'standby' AND headcount >= 20",
        "headcount BETWEEN 15 AND 30 OR team_type = 'militia'",
        "NOT (status IN ('standby', 'dispatched'))",
        "name LIKE '%消防%'",
        "name NOT LIKE '罗庄区罗庄%'",
        "leader IS NULL",
        "capabilities = 'water_rescue'",
        "S_INTERSECTS(geometry, BBOX(118.25, 34.95, 118.35, 35.05))",
        "NOT S_INTERSECTS(geometry, POLYGON((118.2 34.9, 118.3 34.9, 118.3 35.0, 118.2 35.0, 118.2 34.9)))",
        "S_INTERSECTS(geometry, BBOX(118.25, 34.95, 118.35, 35.05)) OR status = 'off_duty'",
        "id > 5 AND id <= 10",
    ] {
        let expr = filter::parse_cql2(text, &layer).expect("parses");
        let expected: Vec<i64> = teams.iter().filter(|f| expr.matches(f)).filter_map(|f| f.id).collect();
        let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
        let fc = json(&app, &format!("/ogc/collections/rescue_teams/items?limit=1000&filter={encoded}")).await;
        assert_eq!(ids(&fc), expected, "{text}");
        assert_eq!(fc["numberMatched"].as_u64(), Some(expected.len() as u64), "{text}");
    }
}

#[tokio::test]
async fn spatial_filters_are_exact_not_envelopes() {
    let app = spawn_app(true).await;
    // A thin diagonal triangle: its envelope holds features the triangle does not.
    let tri = "POLYGON((118.2 34.8, 118.4 35.05, 118.4 34.8, 118.2 34.8))";
    let text = format!("S_INTERSECTS(geometry, {tri})");
    let layer = app.catalog.get("enterprises").expect("layer").clone();
    let expr = filter::parse_cql2(&text, &layer).expect("parses");
    let everything = all(&app, "enterprises").await;
    let expected: Vec<i64> = everything
        .iter()
        .filter(|f| expr.matches(f))
        .filter_map(|f| f.id)
        .collect();
    let in_envelope = json(
        &app,
        "/ogc/collections/enterprises/items?limit=1000&bbox=118.2,34.8,118.4,35.05",
    )
    .await;
    assert!(
        ids(&in_envelope).len() > expected.len(),
        "the envelope is a strict superset here"
    );
    let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let fc = json(
        &app,
        &format!("/ogc/collections/enterprises/items?limit=7&offset=3&filter={encoded}"),
    )
    .await;
    assert_eq!(
        ids(&fc),
        expected[3..10].to_vec(),
        "paging applies after the exact test"
    );
    assert_eq!(fc["numberMatched"].as_u64(), Some(expected.len() as u64));
}

#[tokio::test]
async fn simple_filters_sorting_datetime_and_bbox_work_together() {
    let app = spawn_app(true).await;
    let fc = json(
        &app,
        "/ogc/collections/rescue_teams/items?status=standby&sortby=-headcount",
    )
    .await;
    let heads: Vec<i64> = fc["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter_map(|f| f["properties"]["headcount"].as_i64())
        .collect();
    assert!(!heads.is_empty());
    assert!(heads.windows(2).all(|w| w[0] >= w[1]), "{heads:?}");
    assert!(fc["features"]
        .as_array()
        .expect("f")
        .iter()
        .all(|f| f["properties"]["status"] == "standby"));

    let fc = json(
        &app,
        "/ogc/collections/incidents/items?datetime=2026-07-12T22:00:00%2B08:00/..",
    )
    .await;
    assert_eq!(
        fc["numberMatched"], 2,
        "two incidents reported after 22:00 on 12 July"
    );
    let fc = json(
        &app,
        "/ogc/collections/incidents/items?datetime=../2026-07-11",
    )
    .await;
    assert_eq!(fc["numberMatched"], 1);

    let fc = json(
        &app,
        "/ogc/collections/hazard_sources/items?bbox=118.25,34.95,118.35,35.05&limit=1000",
    )
    .await;
    for f in fc["features"].as_array().expect("features") {
        let c = &f["geometry"]["coordinates"];
        let (x, y) = (c[0].as_f64().unwrap_or(0.0), c[1].as_f64().unwrap_or(0.0));
        assert!(
            (118.25..=118.35).contains(&x) && (34.95..=35.05).contains(&y),
            "{c}"
        );
    }
    let fc = json(
        &app,
        "/ogc/collections/rescue_teams/items?capabilities=diving",
    )
    .await;
    assert!(fc["numberMatched"].as_u64().unwrap_or(0) >= 1);
}

#[tokio::test]
async fn crs_gcj02_and_bd09_shift_coordinates_for_chinese_basemaps() {
    let app = spawn_app(true).await;
    let wgs = json(&app, "/ogc/collections/seismic_stations/items/1").await;
    let (x, y) = (
        wgs["geometry"]["coordinates"][0].as_f64().expect("x"),
        wgs["geometry"]["coordinates"][1].as_f64().expect("y"),
    );
    for (name, crs) in [("gcj02", Crs::Gcj02), ("bd09", Crs::Bd09)] {
        let shifted = json(
            &app,
            &format!("/ogc/collections/seismic_stations/items/1?crs={name}"),
        )
        .await;
        let want = crs.from_wgs84(x, y);
        let c = &shifted["geometry"]["coordinates"];
        assert!(
            (c[0].as_f64().unwrap_or(0.0) - want.0).abs() < 1e-9,
            "{name}"
        );
        assert!(
            (c[1].as_f64().unwrap_or(0.0) - want.1).abs() < 1e-9,
            "{name}"
        );
        let page = json(
            &app,
            &format!("/ogc/collections/seismic_stations/items?crs={name}"),
        )
        .await;
        assert_eq!(page["features"][0]["geometry"], shifted["geometry"]);
    }
}

#[tokio::test]
async fn an_item_has_an_etag_and_answers_304_when_unchanged() {
    let app = spawn_app(true).await;
    let r = app.get("/ogc/collections/shelters/items/3").await;
    assert_eq!(r.status(), 200);
    let tag = r.headers()["etag"].to_str().expect("etag").to_owned();
    assert!(tag.starts_with('"') && tag.len() > 10);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["id"], 3);
    assert_eq!(body["type"], "Feature");
    let r = app
        .client
        .get(app.url("/ogc/collections/shelters/items/3"))
        .header("if-none-match", &tag)
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 304);
    let other = app.get("/ogc/collections/shelters/items/4").await;
    assert_ne!(other.headers()["etag"].to_str().ok(), Some(tag.as_str()));
}

#[tokio::test]
async fn bad_requests_are_4xx_problems_that_say_what_is_wrong() {
    let app = spawn_app(true).await;
    assert!(problem(&app, "/ogc/collections/volcanoes/items", 404)
        .await
        .contains("volcanoes"));
    assert!(problem(&app, "/ogc/collections/shelters/items/999999", 404)
        .await
        .contains("999999"));
    assert!(problem(&app, "/ogc/collections/shelters/items/abc", 404)
        .await
        .contains("abc"));
    assert!(
        problem(&app, "/ogc/collections/shelters/items?bbox=1,2,3", 400)
            .await
            .contains("bbox")
    );
    assert!(
        problem(&app, "/ogc/collections/shelters/items?bbox=a,b,c,d", 400)
            .await
            .contains("bbox")
    );
    assert!(
        problem(&app, "/ogc/collections/shelters/items?limit=ten", 400)
            .await
            .contains("limit")
    );
    assert!(
        problem(&app, "/ogc/collections/shelters/items?limit=0", 400)
            .await
            .contains("limit")
    );
    assert!(
        problem(&app, "/ogc/collections/shelters/items?colour=red", 400)
            .await
            .contains("colour")
    );
    assert!(
        problem(&app, "/ogc/collections/shelters/items?status=flying", 400)
            .await
            .contains("flying")
    );
    assert!(problem(
        &app,
        "/ogc/collections/shelters/items?filter=capacity%20%3E",
        400
    )
    .await
    .contains("filter"));
    assert!(problem(
        &app,
        "/ogc/collections/shelters/items?filter-lang=cql2-json&filter=x",
        400
    )
    .await
    .contains("cql2"));
    assert!(
        problem(&app, "/ogc/collections/shelters/items?crs=utm50", 400)
            .await
            .contains("crs")
    );
    assert!(
        problem(&app, "/ogc/collections/shelters/items/1?limit=1", 400)
            .await
            .contains("limit")
    );
}

#[tokio::test]
async fn strings_in_filters_are_data_never_sql() {
    let app = spawn_app(true).await;
    for text in [
        "name = 'x'' OR ''1''=''1'",
        "name LIKE '%''; DROP TABLE rescue_teams; --'",
        "name IN ('a', 'b'') OR 1=1 --')",
    ] {
        let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
        let fc = json(
            &app,
            &format!("/ogc/collections/rescue_teams/items?filter={encoded}"),
        )
        .await;
        assert_eq!(fc["numberMatched"], 0, "{text}");
    }
    assert_eq!(
        json(&app, "/ogc/collections/rescue_teams/items").await["numberMatched"],
        21
    );
}

#[tokio::test]
async fn gdal_reads_every_layer_through_oapif_with_the_right_counts() {
    let app = spawn_app(true).await;
    let source = format!("OAPIF:{}/ogc", app.base_url);
    for layer in app.catalog.layers() {
        let expected = app
            .store
            .count(layer, &Query::default())
            .await
            .expect("count");
        // tokio's Command: a blocking wait would stall the server under test,
        // which runs on this same runtime.
        let out = Command::new("ogrinfo")
            .args(["-ro", "-so", &source, &layer.name])
            .output()
            .await
            .expect("GDAL's ogrinfo is needed for this test (apt-get install gdal-bin)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("Feature Count: {expected}")),
            "{}: {text}",
            layer.name
        );
    }
    // GDAL pages through the items itself and reads the features.
    let out = Command::new("ogrinfo")
        .args([
            "-ro",
            "-q",
            &source,
            "hazard_sources",
            "-where",
            "class = 'hazchem_producer'",
        ])
        .output()
        .await
        .expect("ogrinfo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("OGRFeature(hazard_sources)").count(),
        4,
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_collection() {
    let app = spawn_app(false).await;
    let r = app.get("/ogc/api").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("application/vnd.oai.openapi+json"));
    let doc: Value = r.json().await.expect("json");
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/ogc",
        "/ogc/conformance",
        "/ogc/api",
        "/ogc/collections",
        "/api/layers",
        "/api/events",
        "/api/audit",
        "/api/import/{layer}",
        "/healthz",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p}");
    }
    for layer in app.catalog.layers() {
        let items = &paths[&format!("/ogc/collections/{}/items", layer.name)];
        assert!(
            items["get"].is_object() && items["post"].is_object(),
            "{}",
            layer.name
        );
        let item = &paths[&format!("/ogc/collections/{}/items/{{id}}", layer.name)];
        for m in ["get", "put", "patch", "delete"] {
            assert!(item[m].is_object(), "{} {m}", layer.name);
        }
        let schema =
            &doc["components"]["schemas"][&layer.name]["properties"]["properties"]["properties"];
        for p in &layer.properties {
            assert!(schema.get(&p.name).is_some(), "{}.{}", layer.name, p.name);
        }
    }
    // Every $ref points at a schema that exists.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap_or_default();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
}

#[tokio::test]
async fn reads_can_be_made_to_require_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = crate::helpers::spawn_app_with(dir, true, |s| s.read_requires_token = true).await;
    for path in [
        "/ogc/collections",
        "/ogc/collections/shelters",
        "/ogc/collections/shelters/items",
        "/ogc/collections/shelters/items/1",
        "/api/layers",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 401, "{path}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    let viewer = app.token(onemap::auth::Role::Viewer).await;
    let r = app
        .client
        .get(app.url("/ogc/collections/shelters/items"))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "health stays open for probes"
    );
}
