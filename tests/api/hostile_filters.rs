//! Hostile `filter`, `bbox` and `datetime` parameters on items and tiles:
//! refused with a 400 naming the bound, never a crash or a 500, and the
//! server answers health at once afterwards.

use onemap::filter::{MAX_DEPTH, MAX_POSITIONS, MAX_TERMS};
use serde_json::Value;

use crate::helpers::{spawn_app, TestApp};

/// Percent-encode a query value, leaving the characters a query may hold
/// as they are (as curl and browsers send them): a large polygon then fits
/// the 64 KiB a URI may have.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'(' | b')' | b',' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn items(text: &str) -> String {
    format!(
        "/ogc/collections/rescue_teams/items?limit=10000&filter={}",
        encode(text)
    )
}

fn tile(text: &str) -> String {
    format!("/tiles/rescue_teams/0/0/0.mvt?filter={}", encode(text))
}

/// GET `path`, assert a 400 problem and return its detail.
async fn refused(app: &TestApp, path: &str) -> String {
    let r = app.get(path).await;
    let status = r.status();
    let content_type = r.headers()["content-type"].clone();
    let body: Value = r.json().await.expect("a problem document");
    assert_eq!(status, 400, "{body}");
    assert_eq!(content_type, "application/problem+json");
    body["detail"].as_str().unwrap_or_default().to_owned()
}

async fn ids(app: &TestApp, path: &str) -> Vec<i64> {
    let r = app.get(path).await;
    assert_eq!(r.status(), 200, "{}", &path[..path.len().min(200)]);
    let fc: Value = r.json().await.expect("json");
    fc["features"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f["id"].as_i64()).collect())
        .unwrap_or_default()
}

async fn health_answers_at_once(app: &TestApp) {
    app.healthy_at_once().await;
}

fn parens(n: usize, inner: &str) -> String {
    format!("{}{inner}{}", "(".repeat(n), ")".repeat(n))
}

fn nots(n: usize, inner: &str) -> String {
    format!("{}{inner}", "NOT ".repeat(n))
}

/// `(id=1 OR (id=2 AND (id=3 OR …)))`: `levels` groups, alternating so
/// none flattens away.
fn alternating(levels: usize) -> String {
    let mut text = format!("id = {levels}");
    for i in (1..levels).rev() {
        let op = if i % 2 == 1 { "OR" } else { "AND" };
        text = format!("(id = {i} {op} {text})");
    }
    format!("({text})")
}

#[tokio::test]
async fn deep_filters_are_refused_naming_the_bound_and_the_server_lives() {
    let app = spawn_app(true).await;
    let hostile = [parens(3_000, "id = 1"), nots(12_000, "id = 1")];
    for text in &hostile {
        for path in [items(text), tile(text)] {
            let detail = refused(&app, &path).await;
            assert!(detail.contains(&format!("{MAX_DEPTH} levels")), "{detail}");
        }
    }
    health_answers_at_once(&app).await;
}

#[tokio::test]
async fn filters_at_the_depth_bound_work_and_one_more_level_is_refused() {
    let app = spawn_app(true).await;
    assert_eq!(ids(&app, &items(&parens(MAX_DEPTH, "id = 1"))).await, [1]);
    // An even number of NOTs cancels out.
    assert_eq!(ids(&app, &items(&nots(MAX_DEPTH, "id = 1"))).await, [1]);
    // Every level alternates AND and OR: only id 1 passes the outer OR
    // (id 2 fails the AND below it as no feature has two ids).
    assert_eq!(ids(&app, &items(&alternating(MAX_DEPTH))).await, [1]);
    for ok in [
        parens(MAX_DEPTH, "id = 1"),
        nots(MAX_DEPTH, "id = 1"),
        alternating(MAX_DEPTH),
    ] {
        assert_eq!(app.get(&tile(&ok)).await.status(), 200, "{ok}");
    }
    for deep in [
        parens(MAX_DEPTH + 1, "id = 1"),
        nots(MAX_DEPTH + 1, "id = 1"),
        alternating(MAX_DEPTH + 1),
        // NOT LIKE makes a level of its own.
        nots(MAX_DEPTH, "name NOT LIKE 'x%'"),
    ] {
        for path in [items(&deep), tile(&deep)] {
            let detail = refused(&app, &path).await;
            assert!(detail.contains(&format!("{MAX_DEPTH} levels")), "{detail}");
        }
    }
    health_answers_at_once(&app).await;
}

#[tokio::test]
async fn the_most_terms_allowed_answer_the_right_features_and_more_are_refused() {
    let app = spawn_app(true).await;
    let layer = app.catalog.get("rescue_teams").expect("layer");
    let all: Vec<i64> = app
        .store
        .features(layer, &onemap::store::Query::default())
        .await
        .expect("reads")
        .iter()
        .filter_map(|f| f.id)
        .collect();
    assert!(all.len() > 3, "the demo has teams");
    // Every term names an id; only the even ones exist among the first few.
    let ors = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!(
                    "id = {}",
                    if i < 4 {
                        2 * i as i64
                    } else {
                        1_000_000 + i as i64
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    let expected: Vec<i64> = all
        .iter()
        .copied()
        .filter(|id| [2, 4, 6].contains(id))
        .collect();
    assert_eq!(ids(&app, &items(&ors(MAX_TERMS))).await, expected);
    assert_eq!(app.get(&tile(&ors(MAX_TERMS))).await.status(), 200);
    // All of the AND terms hold for id 3 alone.
    let ands = |n: usize| -> String {
        (0..n)
            .map(|i| format!("id <> {}", 1_000_000 + i))
            .chain(["id = 3".to_owned()])
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    assert_eq!(ids(&app, &items(&ands(MAX_TERMS - 1))).await, [3]);
    let in_list = format!(
        "id IN ({})",
        (1..=MAX_TERMS)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(ids(&app, &items(&in_list)).await, all);

    for text in [
        ors(MAX_TERMS + 1),
        ands(1_100),
        format!("{in_list} OR id = 0"),
    ] {
        for path in [items(&text), tile(&text)] {
            let detail = refused(&app, &path).await;
            assert!(detail.contains(&format!("{MAX_TERMS} terms")), "{detail}");
        }
    }
    health_answers_at_once(&app).await;
}

#[tokio::test]
async fn filter_geometries_are_validated_like_writes() {
    let app = spawn_app(true).await;
    for (geometry, named) in [
        ("POINT(200 100)", "longitude 200"),
        ("POINT(118 100)", "latitude 100"),
        ("POINT(1e308 1e308)", "longitude"),
        ("POINT(1e999 35)", "finite"),
        ("POINT(NaN 35)", "number"),
        ("POINT(inf 35)", "number"),
        // A bow-tie: its two long edges cross.
        (
            "POLYGON((118 35, 118.2 35.2, 118.2 35, 118 35.2, 118 35))",
            "crosses",
        ),
        // Zero area: all corners on one line (exactly, then up to rounding).
        (
            "POLYGON((118 35, 118.5 35.5, 119 36, 118 35))",
            "folds back",
        ),
        (
            "POLYGON((118 35, 118.1 35.1, 118.2 35.2, 118 35))",
            "no area",
        ),
        ("POLYGON((118 35, 118.1 35.1, 118 35))", "4 positions"),
        (
            "POLYGON((118 35, 118.1 35, 118.1 35.1, 118 35.1))",
            "closed",
        ),
        ("LINESTRING(118 35, 118 35)", "two distinct"),
        ("BBOX(118.4, 35, 118.2, 35.2)", "minimum corner"),
        ("BBOX(118, 35, 190, 35.2)", "longitude 190"),
        ("BBOX(118, 35, 118, 35.2)", "no area"),
    ] {
        let text = format!("S_INTERSECTS(geometry, {geometry})");
        for path in [items(&text), tile(&text)] {
            let detail = refused(&app, &path).await;
            assert!(detail.contains(named), "{geometry}: {detail}");
        }
    }
    for bbox in [
        "118,35,200,36",
        "118,36,119,35",
        "118,-91,119,35",
        "1,2,3,nan",
    ] {
        refused(
            &app,
            &format!("/ogc/collections/rescue_teams/items?bbox={bbox}"),
        )
        .await;
    }
    health_answers_at_once(&app).await;
}

/// `S_INTERSECTS` with a ring of `n` positions (the last repeating the
/// first) around the demo, three decimals each as a client would round.
fn circle(n: usize) -> String {
    let corners = n - 1;
    let mut ring: Vec<String> = (0..corners)
        .map(|i| {
            let a = std::f64::consts::TAU * i as f64 / corners as f64;
            format!("{:.3} {:.3}", 118.3 + 0.6 * a.cos(), 35.0 + 0.45 * a.sin())
        })
        .collect();
    ring.push(ring[0].clone());
    format!("S_INTERSECTS(geometry, POLYGON(({})))", ring.join(","))
}

#[tokio::test]
async fn a_large_filter_polygon_is_exact_and_past_the_position_bound_is_refused() {
    let app = spawn_app(true).await;
    // 4,000 positions: about as many as a 64 KiB URI carries.
    let text = circle(4_000);
    assert!(items(&text).len() < 65_000, "{}", items(&text).len());
    for name in ["rescue_teams", "districts", "flood_zones"] {
        let layer = app.catalog.get(name).expect("layer");
        let expr = onemap::filter::parse_cql2(&text, layer).expect("parses");
        let everything = app
            .store
            .features(layer, &onemap::store::Query::default())
            .await
            .expect("reads");
        let inside = |f: &&onemap::layers::Feature| {
            use geo::Relate;
            match &expr {
                onemap::filter::Expr::Intersects(s) => {
                    s.geometry().relate(&f.geometry).is_intersects()
                }
                other => panic!("{other:?}"),
            }
        };
        let expected: Vec<i64> = everything
            .iter()
            .filter(inside)
            .filter_map(|f| f.id)
            .collect();
        assert!(!expected.is_empty(), "{name}");
        let path = format!(
            "/ogc/collections/{name}/items?limit=10000&filter={}",
            encode(&text)
        );
        assert_eq!(ids(&app, &path).await, expected, "{name}");
    }
    assert_eq!(app.get(&tile(&text)).await.status(), 200);

    // Only a line back and forth between two short corners fits the bound
    // in a URI; it lies far from the demo.
    let zigzag = |n: usize| {
        let line: Vec<&str> = (0..n)
            .map(|i| if i % 2 == 0 { "0 0" } else { "1 1" })
            .collect();
        format!("S_INTERSECTS(geometry, LINESTRING({}))", line.join(","))
    };
    let path = |n: usize| {
        format!(
            "/ogc/collections/districts/items?filter={}",
            encode(&zigzag(n))
        )
    };
    assert_eq!(ids(&app, &path(MAX_POSITIONS)).await, Vec::<i64>::new());
    let detail = refused(&app, &path(MAX_POSITIONS + 1)).await;
    assert!(
        detail.contains(&format!("{MAX_POSITIONS} positions")),
        "{detail}"
    );
    let detail = refused(&app, &tile(&zigzag(MAX_POSITIONS + 1))).await;
    assert!(
        detail.contains(&format!("{MAX_POSITIONS} positions")),
        "{detail}"
    );
    health_answers_at_once(&app).await;
}

#[tokio::test]
async fn an_inverted_datetime_interval_is_refused() {
    let app = spawn_app(true).await;
    let base = "/ogc/collections/incidents/items?datetime=";
    let detail = refused(
        &app,
        &format!("{base}2026-07-12T00:00:00Z/2026-07-01T00:00:00Z"),
    )
    .await;
    assert!(detail.contains("after it ends"), "{detail}");
    for ok in [
        "2026-07-01T00:00:00Z/2026-07-12T00:00:00Z",
        "2026-07-01T00:00:00Z/2026-07-01T00:00:00Z",
        "../2026-07-12T00:00:00Z",
        "2026-07-01T00:00:00Z/..",
    ] {
        assert_eq!(app.get(&format!("{base}{ok}")).await.status(), 200, "{ok}");
    }
}
