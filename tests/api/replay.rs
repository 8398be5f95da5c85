//! Replay: the one map at a past moment, rebuilt from the change log,
//! equals what the API showed at that moment; moments the log cannot
//! know are 400 problems.

use std::{collections::BTreeMap, time::Duration};

use onemap::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// Features of a layer as the API shows them now, by id.
async fn layer_now(app: &TestApp, layer: &str) -> BTreeMap<i64, Value> {
    let items = app
        .get_json(&format!("/ogc/collections/{layer}/items?limit=10000"))
        .await;
    by_id(&items)
}

fn replayed(r: &Value, layer: &str) -> BTreeMap<i64, Value> {
    by_id(&r["layers"][layer])
}

/// A FeatureCollection's features by id: geometry and properties.
fn by_id(collection: &Value) -> BTreeMap<i64, Value> {
    collection["features"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["id"].as_i64().unwrap_or(0),
                json!({"geometry": f["geometry"], "properties": f["properties"]}),
            )
        })
        .collect()
}

type Moment = (String, BTreeMap<&'static str, BTreeMap<i64, Value>>, Value);

/// What the API shows now of `layers`, and the moment (strictly between
/// the writes before and after it).
async fn snap(app: &TestApp, layers: &[&'static str]) -> Moment {
    tokio::time::sleep(Duration::from_millis(15)).await;
    let mut s = BTreeMap::new();
    for l in layers {
        s.insert(*l, layer_now(app, l).await);
    }
    let summary = app.get_json("/api/summary").await;
    let at = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    tokio::time::sleep(Duration::from_millis(15)).await;
    (at, s, summary)
}

async fn call(app: &TestApp, token: &str, m: reqwest::Method, path: String, body: Value) -> Value {
    let r = app
        .client
        .request(m, app.url(&path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("answers");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json::<Value>().await.unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_replayed_moment_equals_what_the_map_showed_then() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Dispatcher).await;
    let layers = ["rescue_teams", "incidents", "supply_depots"];
    let mut moments: Vec<Moment> = Vec::new();
    moments.push(snap(&app, &layers).await);
    let incident = call(&app, &token, reqwest::Method::POST, "/api/incidents".into(),
        json!({"type": "flood", "severity": "large", "lon": 118.3, "lat": 35.0, "required_capabilities": ["water_rescue"]})).await;
    let id = incident["id"].as_i64().expect("id");
    moments.push(snap(&app, &layers).await);
    let card = app
        .get_json(&format!("/api/incidents/{id}/recommendation"))
        .await;
    let team = card["teams"][0]["id"].as_i64().expect("a team");
    call(
        &app,
        &token,
        reqwest::Method::POST,
        format!("/api/incidents/{id}/assignments"),
        json!({"team_id": team}),
    )
    .await;
    moments.push(snap(&app, &layers).await);
    for k in 0..3 {
        call(
            &app,
            &token,
            reqwest::Method::PATCH,
            format!("/api/teams/{team}/position"),
            json!({"lon": 118.31 + 0.01 * f64::from(k), "lat": 35.01}),
        )
        .await;
    }
    moments.push(snap(&app, &layers).await);
    call(
        &app,
        &token,
        reqwest::Method::POST,
        "/api/supplies/reservations".into(),
        json!({"incident_id": id, "item": "sandbags", "lines": [{"depot_id": 1, "quantity": 40}]}),
    )
    .await;
    moments.push(snap(&app, &layers).await);
    call(
        &app,
        &token,
        reqwest::Method::PATCH,
        format!("/api/incidents/{id}"),
        json!({"status": "resolved"}),
    )
    .await;
    moments.push(snap(&app, &layers).await);

    for (at, expected, summary) in &moments {
        let r = app
            .get_json(&format!("/api/replay?at={at}&layers={}", layers.join(",")))
            .await;
        assert_eq!(r["unreplayable"], 0, "{at}");
        for l in layers {
            assert_eq!(&replayed(&r, l), &expected[l], "{l} at {at}");
        }
        assert_eq!(r["summary"]["teams"], summary["teams"], "teams at {at}");
        assert_eq!(
            r["summary"]["incidents"], summary["incidents"],
            "incidents at {at}"
        );
        assert_eq!(
            r["summary"]["supplies"], summary["supplies"],
            "supplies at {at}"
        );
    }
    // Moments the log cannot know.
    app.assert_problem("/api/replay?at=2000-01-01T00:00:00Z", 400)
        .await;
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339()
        .replace('+', "%2B");
    app.assert_problem(&format!("/api/replay?at={future}"), 400)
        .await;
    app.assert_problem("/api/replay?at=yesterday", 400).await;
    app.assert_problem("/api/replay", 400).await;
    app.assert_problem(&format!("/api/replay?at={}&layers=nope", moments[0].0), 404)
        .await;
}
