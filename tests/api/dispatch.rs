//! Dispatch over HTTP on the demo: nearest teams equal a brute-force
//! great-circle ranking, assignment and reservation races have exactly the
//! right winners, resolving frees teams, events survive a reconnect, a
//! position report moves the team's tile, and bad input is a named 4xx.

use std::sync::Arc;

use onemap::{auth::Role, index::haversine_m, settings::DispatchSettings};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::{
    events::Events,
    helpers::{spawn_app, TestApp},
    tiles::{decode, tile_of},
};

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("the server answers")
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = send(app, reqwest::Method::POST, path, token, body).await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A new flood incident at a point; its id.
async fn incident_at(app: &TestApp, token: &str, lon: f64, lat: f64, caps: Value) -> i64 {
    let (status, f) = post(
        app,
        "/api/incidents",
        token,
        json!({"type": "flood", "severity": "major", "lon": lon, "lat": lat,
               "description": "堤防渗水", "required_capabilities": caps,
               "required_supplies": [{"item": "sandbags", "quantity": 500}]}),
    )
    .await;
    assert_eq!(status, 201, "{f}");
    f["id"].as_i64().expect("an id")
}

/// POST `body` to `path` `n` times at once, spread over `nodes` in turn,
/// each over a connection of its own; the statuses and bodies answered.
async fn race(
    nodes: &[Arc<TestApp>],
    n: usize,
    path: &str,
    token: &str,
    body: Value,
) -> Vec<(u16, Value)> {
    let tries: Vec<_> = (0..n)
        .map(|i| {
            let (node, path, token, body) = (
                Arc::clone(&nodes[i % nodes.len()]),
                path.to_owned(),
                token.to_owned(),
                body.clone(),
            );
            tokio::spawn(async move {
                let r = reqwest::Client::new()
                    .post(node.url(&path))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("answers");
                (
                    r.status().as_u16(),
                    r.json::<Value>().await.unwrap_or(Value::Null),
                )
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for t in tries {
        answers.push(t.await.expect("joined"));
    }
    answers
}

fn position(f: &Value) -> [f64; 2] {
    [
        f["geometry"]["coordinates"][0].as_f64().unwrap_or(f64::NAN),
        f["geometry"]["coordinates"][1].as_f64().unwrap_or(f64::NAN),
    ]
}

#[tokio::test]
async fn nearest_teams_rank_exactly_as_a_brute_force_great_circle_scan() {
    let app = spawn_app(true).await;
    let teams = app
        .get_json("/ogc/collections/rescue_teams/items?limit=1000")
        .await;
    let teams = teams["features"].as_array().cloned().unwrap_or_default();
    assert!(teams.len() >= 20, "the demo has teams");
    let settings = DispatchSettings::default();
    let eta = |d: f64, ty: &str| {
        d * settings.road_factor
            / 1000.0
            / settings
                .speed_kmh
                .get(ty)
                .copied()
                .unwrap_or(settings.default_speed_kmh)
            * 60.0
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let filters = [
        "",
        "&status=standby",
        "&capability=water_rescue",
        "&team_type=militia",
        "&capability=evacuation&status=standby",
    ];
    for round in 0..40 {
        let p = [rng.random_range(118.1..118.5), rng.random_range(34.8..35.1)];
        let filter = filters[round % filters.len()];
        let limit = rng.random_range(1..=25);
        let got = app
            .get_json(&format!(
                "/api/nearest?layer=rescue_teams&lon={}&lat={}&limit={limit}{filter}",
                p[0], p[1]
            ))
            .await;
        let got: Vec<i64> = got["results"]
            .as_array()
            .map(|r| r.iter().filter_map(|x| x["id"].as_i64()).collect())
            .unwrap_or_default();
        let keep = |t: &Value| {
            let props = &t["properties"];
            let has = |k: &str, v: &str| {
                props[k] == v
                    || props[k]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == v))
            };
            filter.split('&').filter(|s| !s.is_empty()).all(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or_default();
                has(if k == "capability" { "capabilities" } else { k }, v)
            })
        };
        let mut want: Vec<(f64, f64, i64)> = teams
            .iter()
            .filter(|t| keep(t))
            .map(|t| {
                let d = haversine_m(p, position(t));
                (
                    eta(d, t["properties"]["team_type"].as_str().unwrap_or("")),
                    d,
                    t["id"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        want.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(&b.2))
        });
        let want: Vec<i64> = want.iter().take(limit).map(|w| w.2).collect();
        assert_eq!(got, want, "round {round}: {p:?}{filter} limit {limit}");
    }
    // ETA ÷ distance is one constant per team type.
    let r = app
        .get_json("/api/nearest?layer=rescue_teams&lon=118.3&lat=35.0&limit=100")
        .await;
    for x in r["results"].as_array().into_iter().flatten() {
        let ty = x["feature"]["properties"]["team_type"]
            .as_str()
            .unwrap_or("");
        let d = x["distance_m"].as_f64().unwrap_or(0.0);
        assert!(
            (x["eta_min"].as_f64().unwrap_or(0.0) - eta(d, ty)).abs() < 0.06,
            "{x}"
        );
    }
}

#[tokio::test]
async fn of_fifty_concurrent_assignments_of_one_team_exactly_one_wins() {
    let app = Arc::new(spawn_app(true).await);
    let token = app.token(Role::Dispatcher).await;
    let incident = incident_at(&app, &token, 118.30, 34.99, json!(["water_rescue"])).await;
    let standby = app
        .get_json("/api/nearest?layer=rescue_teams&lon=118.3&lat=34.99&status=standby&limit=1")
        .await;
    let team = standby["results"][0]["id"]
        .as_i64()
        .expect("a standby team");
    let answers = race(
        &[Arc::clone(&app)],
        50,
        &format!("/api/incidents/{incident}/assignments"),
        &token,
        json!({"team_id": team}),
    )
    .await;
    let mut codes = Vec::new();
    for (code, body) in answers {
        if code == 409 {
            assert_eq!(body["team_status"], "dispatched", "{body}");
            assert_eq!(body["team_incident_id"], incident, "{body}");
        }
        codes.push(code);
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 49, "{codes:?}");
    let i = app.get_json(&format!("/api/incidents/{incident}")).await;
    assert_eq!(
        i["properties"]["assignments"].as_array().map(Vec::len),
        Some(1),
        "one assignment, not doubled"
    );
    assert_eq!(
        i["properties"]["status"], "active",
        "a dispatched team makes the incident active"
    );
}

#[tokio::test]
async fn concurrent_reservations_take_only_what_the_depot_has() {
    let app = Arc::new(spawn_app(true).await);
    let token = app.token(Role::Dispatcher).await;
    let incident = incident_at(&app, &token, 118.30, 34.99, json!([])).await;
    let depot = app.get_json("/ogc/collections/supply_depots/items/1").await;
    let stock = depot["properties"]["inventory"]
        .as_array()
        .and_then(|inv| inv.iter().find(|r| r["item"] == "assault_boats"))
        .and_then(|r| r["quantity"].as_f64())
        .expect("depot 1 stocks assault boats");
    // Ten requests whose sum exceeds the stock: q each, S / q of them fit.
    let q = (stock / 7.0).ceil().max(1.0);
    let fit = (stock / q).floor() as usize;
    assert!(fit < 10);
    let codes: Vec<u16> = race(
        &[Arc::clone(&app)],
        10,
        "/api/supplies/reservations",
        &token,
        json!({"incident_id": incident, "item": "assault_boats", "lines": [{"depot_id": 1, "quantity": q}]}),
    )
    .await
    .into_iter()
    .map(|(code, _)| code)
    .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == 201).count(),
        fit,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == 409).count(),
        10 - fit,
        "{codes:?}"
    );
    let after = app.get_json("/ogc/collections/supply_depots/items/1").await;
    let left = after["properties"]["inventory"]
        .as_array()
        .and_then(|inv| inv.iter().find(|r| r["item"] == "assault_boats"))
        .and_then(|r| r["quantity"].as_f64())
        .unwrap_or(-1.0);
    assert_eq!(left, stock - fit as f64 * q);
    assert!(left >= 0.0);
    let i = app.get_json(&format!("/api/incidents/{incident}")).await;
    let ids: std::collections::BTreeSet<String> = i["properties"]["reservations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), fit, "each reservation its own id: {ids:?}");
    // Returning one gives its stock back, once.
    let first = ids.iter().next().cloned().unwrap_or_default();
    let r = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/supplies/reservations/{first}"),
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/supplies/reservations/{first}"),
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(r.status(), 404);
    let back = app.get_json("/ogc/collections/supply_depots/items/1").await;
    let back = back["properties"]["inventory"]
        .as_array()
        .and_then(|inv| inv.iter().find(|r| r["item"] == "assault_boats"))
        .and_then(|r| r["quantity"].as_f64())
        .unwrap_or(-1.0);
    assert_eq!(back, left + q);
}

#[tokio::test]
async fn resolving_an_incident_frees_its_teams_and_says_so() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Dispatcher).await;
    let incident = incident_at(
        &app,
        &token,
        118.30,
        34.99,
        json!(["water_rescue", "levee_repair"]),
    )
    .await;
    let card = app
        .get_json(&format!("/api/incidents/{incident}/recommendation"))
        .await;
    let proposed: Vec<i64> = card["teams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_i64())
        .collect();
    assert!(!proposed.is_empty(), "{card}");
    let covered: Vec<&str> = card["teams"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| {
            t["covers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
        })
        .collect();
    for cap in ["water_rescue", "levee_repair"] {
        assert!(
            covered.contains(&cap)
                || card["uncovered"]
                    .as_array()
                    .is_some_and(|u| u.iter().any(|x| x["capability"] == cap)),
            "{card}"
        );
    }
    assert!(card["teams"][0]["reasons"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    let mut events = Events::open(&app, "", None).await;
    for team in &proposed {
        let (code, body) = post(
            &app,
            &format!("/api/incidents/{incident}/assignments"),
            &token,
            json!({"team_id": team}),
        )
        .await;
        assert_eq!(code, 201, "{body}");
    }
    // With the proposed teams on their way, nothing is missing any more.
    let after = app
        .get_json(&format!("/api/incidents/{incident}/recommendation"))
        .await;
    let uncoverable = card["uncovered"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(
        after["missing_capabilities"].as_array().map(Vec::len),
        Some(uncoverable),
        "{after}"
    );
    assert_eq!(
        after["assigned"].as_array().map(Vec::len),
        Some(proposed.len())
    );
    // Each assignment: one event with the action, the team and the incident.
    for team in &proposed {
        let e = events.next().await;
        assert_eq!(
            e.data["action"]["kind"], "assignment.create",
            "{:?}",
            e.data
        );
        assert_eq!(e.data["action"]["team_id"], *team);
        assert_eq!(e.data["action"]["incident_id"], incident);
        let layers: Vec<&str> = std::iter::once(e.data["layer"].as_str().unwrap_or(""))
            .chain(
                e.data["also"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["layer"].as_str()),
            )
            .collect();
        assert!(
            layers.contains(&"rescue_teams") && layers.contains(&"incidents"),
            "{layers:?}"
        );
    }
    let r = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/incidents/{incident}"),
        &token,
        json!({"status": "resolved"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    let mut released: Vec<i64> = body["released_teams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    released.sort_unstable();
    let mut want = proposed.clone();
    want.sort_unstable();
    assert_eq!(released, want);
    for team in &proposed {
        let t = app
            .get_json(&format!("/ogc/collections/rescue_teams/items/{team}"))
            .await;
        assert_eq!(t["properties"]["status"], "standby");
        assert!(t["properties"]
            .get("incident_id")
            .is_none_or(Value::is_null));
    }
    let e = events.next().await;
    assert_eq!(e.data["action"]["kind"], "incident.status");
    // Resolved is final.
    let r = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/incidents/{incident}"),
        &token,
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(r.status(), 409);
    let p: Value = r.json().await.expect("json");
    assert_eq!(p["current_status"], "resolved");
    // The audit trail has one entry per action, with the actor.
    let admin = app.token(Role::Admin).await;
    let audit = app
        .get_json_as(
            &format!("/api/audit?layer=incidents&feature={incident}&limit=100"),
            &admin,
        )
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"]["kind"].as_str())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "assignment.create")
            .count(),
        proposed.len(),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_client_that_drops_during_a_dispatch_gets_every_missed_event() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Dispatcher).await;
    let mut events = Events::open(&app, "", None).await;
    let incident = incident_at(&app, &token, 118.30, 34.99, json!([])).await;
    let first = events.next().await;
    assert_eq!(first.data["layer"], "incidents");
    drop(events);
    let teams = app
        .get_json("/api/nearest?layer=rescue_teams&lon=118.3&lat=34.99&status=standby&limit=3")
        .await;
    let teams: Vec<i64> = teams["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_i64())
        .collect();
    for team in &teams {
        let (code, _) = post(
            &app,
            &format!("/api/incidents/{incident}/assignments"),
            &token,
            json!({"team_id": team}),
        )
        .await;
        assert_eq!(code, 201);
    }
    let r = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/teams/{}/status", teams[0]),
        &token,
        json!({"status": "on_scene"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut events = Events::open(&app, "", Some(&first.id)).await;
    for team in &teams {
        let e = events.next().await;
        assert_eq!(
            (
                e.data["action"]["kind"].clone(),
                e.data["action"]["team_id"].clone()
            ),
            (json!("assignment.create"), json!(team))
        );
    }
    let e = events.next().await;
    assert_eq!(e.data["action"]["kind"], "team.status");
    assert_eq!(e.data["action"]["to"], "on_scene");
}

#[tokio::test]
async fn a_position_report_moves_the_team_to_its_new_tile() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Dispatcher).await;
    let team = app.get_json("/ogc/collections/rescue_teams/items/2").await;
    let name = team["properties"]["name"].clone();
    let was = position(&team);
    let to = [was[0] + 0.05, was[1] + 0.03];
    let z = 14;
    let (ox, oy) = tile_of(was[0], was[1], z);
    let (nx, ny) = tile_of(to[0], to[1], z);
    assert_ne!((ox, oy), (nx, ny));
    let names =
        |t: std::collections::BTreeMap<String, Vec<onemap::layers::Feature>>| -> Vec<Value> {
            t.get("rescue_teams")
                .into_iter()
                .flatten()
                .filter_map(|f| f.properties.get("name").cloned())
                .collect()
        };
    assert!(names(decode(&app, "rescue_teams", z, ox, oy).await).contains(&name));
    let now = chrono::Utc::now();
    let r = send(
        &app,
        reqwest::Method::PATCH,
        "/api/teams/2/position",
        &token,
        json!({"lon": to[0], "lat": to[1], "at": now.to_rfc3339()}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["applied"], true);
    assert!(names(decode(&app, "rescue_teams", z, nx, ny).await).contains(&name));
    assert!(!names(decode(&app, "rescue_teams", z, ox, oy).await).contains(&name));
    // A fix older than the last one arrives late: ignored.
    let old = now - chrono::Duration::seconds(30);
    let r = send(
        &app,
        reqwest::Method::PATCH,
        "/api/teams/2/position",
        &token,
        json!({"lon": was[0], "lat": was[1], "at": old.to_rfc3339()}),
    )
    .await;
    assert_eq!(r.json::<Value>().await.expect("json")["applied"], false);
    let t = app.get_json("/ogc/collections/rescue_teams/items/2").await;
    assert!((position(&t)[0] - to[0]).abs() < 1e-9);
    // A fix far outside the district is refused.
    let r = send(
        &app,
        reqwest::Method::PATCH,
        "/api/teams/2/position",
        &token,
        json!({"lon": 116.0, "lat": 39.9}),
    )
    .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn bad_dispatch_requests_are_named_4xx_problems_and_store_nothing() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Dispatcher).await;
    let viewer = app.token(Role::Viewer).await;
    let before = app.get_json("/api/incidents").await["features"]
        .as_array()
        .map(Vec::len);
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"type": "flood", "lon": 200.0, "lat": 35.0}),
            400,
            "lon",
        ),
        (
            json!({"type": "flood", "lon": 118.3, "lat": -95.0}),
            400,
            "lat",
        ),
        (
            json!({"type": "flood", "geometry": {"type": "LineString", "coordinates": [[118.3, 35.0], [118.4, 35.1]]}}),
            400,
            "geometry",
        ),
        (
            json!({"type": "tornado", "lon": 118.3, "lat": 35.0}),
            400,
            "type",
        ),
        (
            json!({"type": "flood", "lon": 118.3, "lat": 35.0, "required_capabilities": ["teleport"]}),
            400,
            "required_capabilities[0]",
        ),
        (
            json!({"type": "flood", "lon": 118.3, "lat": 35.0, "required_supplies": [{"item": "sandbags", "quantity": -5}]}),
            400,
            "required_supplies[0].quantity",
        ),
        (
            json!({"type": "flood", "lon": 118.3, "lat": 35.0, "required_supplies": [{"item": "sandbags", "quantity": "lots"}]}),
            400,
            "required_supplies[0].quantity",
        ),
        (
            json!({"type": "flood", "lon": 118.3, "lat": 35.0, "required_supplies": [{"item": "unobtainium", "quantity": 1}]}),
            400,
            "required_supplies[0].item",
        ),
        (
            json!({"type": "flood", "lon": "east", "lat": 35.0}),
            400,
            "lon",
        ),
        (
            json!({"type": "flood", "lon": 118.3, "lat": 35.0, "colour": "red"}),
            400,
            "colour",
        ),
    ];
    for (body, status, field) in cases {
        let r = send(
            &app,
            reqwest::Method::POST,
            "/api/incidents",
            &token,
            body.clone(),
        )
        .await;
        assert_eq!(r.status().as_u16(), status, "{body}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: Value = r.json().await.expect("json");
        assert!(
            p["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("`{field}`"))),
            "{body}: {p}"
        );
    }
    // Hostile bodies: nesting past serde's bound, megabytes of text.
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let long = "涝".repeat(1_000_000);
    for body in [
        format!(r#"{{"type": "flood", "lon": 118.3, "lat": 35.0, "description": {deep}}}"#),
        format!(r#"{{"type": "flood", "lon": 118.3, "lat": 35.0, "description": "{long}"}}"#),
        format!(
            r#"{{"type": "flood", "lon": 118.3, "lat": 35.0, "required_supplies": [{{"item": "{long}", "quantity": 1}}]}}"#
        ),
        "[]".to_owned(),
        "{".to_owned(),
    ] {
        let r = app
            .client
            .post(app.url("/api/incidents"))
            .bearer_auth(&token)
            .body(body)
            .send()
            .await
            .expect("answers");
        assert_eq!(r.status(), 400);
        let p: Value = r.json().await.expect("a problem document");
        assert!(p["detail"].as_str().is_some_and(|d| d.len() < 1_000), "{p}");
    }
    assert_eq!(
        app.get_json("/api/incidents").await["features"]
            .as_array()
            .map(Vec::len),
        before,
        "nothing stored"
    );
    let r = send(
        &app,
        reqwest::Method::POST,
        "/api/incidents",
        &viewer,
        json!({"type": "flood", "lon": 118.3, "lat": 35.0}),
    )
    .await;
    assert_eq!(r.status(), 403);
    let anonymous = app
        .client
        .post(app.url("/api/incidents"))
        .json(&json!({"type": "flood", "lon": 118.3, "lat": 35.0}))
        .send()
        .await
        .expect("answers");
    assert_eq!(anonymous.status(), 401);
    // Unknown incident or team: 404; a busy-team or transition mistake: 409.
    let (code, _) = post(
        &app,
        "/api/incidents/999999/assignments",
        &token,
        json!({"team_id": 1}),
    )
    .await;
    assert_eq!(code, 404);
    let incident = incident_at(&app, &token, 118.3, 35.0, json!([])).await;
    let (code, _) = post(
        &app,
        &format!("/api/incidents/{incident}/assignments"),
        &token,
        json!({"team_id": 999999}),
    )
    .await;
    assert_eq!(code, 404);
    let (code, p) = post(
        &app,
        &format!("/api/incidents/{incident}/assignments"),
        &token,
        json!({"team_id": "one"}),
    )
    .await;
    assert_eq!(code, 400, "{p}");
    let r = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/incidents/{incident}"),
        &token,
        json!({"status": "resolved"}),
    )
    .await;
    assert_eq!(r.status(), 409, "reported cannot jump to resolved");
    let r = send(
        &app,
        reqwest::Method::PATCH,
        "/api/teams/1/status",
        &token,
        json!({"status": "dispatched"}),
    )
    .await;
    assert_eq!(
        r.status(),
        400,
        "dispatching is an assignment, not a status report"
    );
    for path in [
        "/api/nearest?layer=rescue_teams&lon=118.3&lat=35.0&limit=0",
        "/api/nearest?layer=rescue_teams&lon=118.3&lat=35.0&limit=101",
        "/api/nearest?layer=rescue_teams&lon=118.3&lat=95.0",
        "/api/nearest?layer=rescue_teams&lon=118.3&lat=35.0&capability=teleport",
        "/api/nearest?layer=cameras&lon=118.3&lat=35.0&capability=water_rescue",
        "/api/nearest?layer=rescue_teams&lon=118.3&lat=35.0&radius_m=-1",
        "/api/nearest?layer=rescue_teams&lon=118.3",
        "/api/supplies/plan?lon=118.3&lat=35.0&item=unobtainium&quantity=5",
        "/api/supplies/plan?lon=118.3&lat=35.0&item=sandbags&quantity=-5",
    ] {
        app.assert_problem(path, 400).await;
    }
    app.assert_problem("/api/nearest?layer=no_such_layer&lon=118.3&lat=35.0", 404)
        .await;
    app.assert_problem("/api/incidents/424242", 404).await;
    let (code, _) = post(&app, "/api/supplies/reservations", &token, json!({"incident_id": incident, "item": "sandbags", "lines": [{"depot_id": 1, "quantity": 1e9}]})).await;
    assert_eq!(code, 409, "more than the depot has");
    let i = app.get_json(&format!("/api/incidents/{incident}")).await;
    assert_eq!(
        i["properties"]["reservations"],
        json!([]),
        "a refused reservation leaves no trace"
    );
}

#[tokio::test]
async fn the_supply_plan_takes_nearest_depots_first_and_names_the_shortfall() {
    let app = spawn_app(true).await;
    let items = app.get_json("/api/supplies/items").await;
    let total = items["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["item"] == "sandbags")
        .and_then(|i| i["total"].as_f64())
        .expect("sandbags");
    let plan = app
        .get_json(&format!(
            "/api/supplies/plan?lon=118.3&lat=35.0&item=sandbags&quantity={}",
            total + 1000.0
        ))
        .await;
    assert_eq!(plan["covered"], false);
    assert_eq!(plan["shortfall"].as_f64(), Some(1000.0));
    let lines = plan["lines"].as_array().cloned().unwrap_or_default();
    let distances: Vec<f64> = lines
        .iter()
        .filter_map(|l| l["distance_m"].as_f64())
        .collect();
    assert!(
        distances.windows(2).all(|w| w[0] <= w[1]),
        "nearest first: {distances:?}"
    );
    assert!(lines
        .iter()
        .all(|l| l["quantity"].as_f64() <= l["available"].as_f64()));
    let small = app
        .get_json("/api/supplies/plan?lon=118.3&lat=35.0&item=sandbags&quantity=10")
        .await;
    assert_eq!(small["covered"], true);
    assert_eq!(small["lines"].as_array().map(Vec::len), Some(1));
    let summary = app.get_json("/api/summary").await;
    assert_eq!(
        summary["supplies"]["sandbags"]["available"].as_f64(),
        Some(total)
    );
    assert!(summary["teams"]["by_status"]["standby"]
        .as_u64()
        .is_some_and(|n| n > 0));
    let hazard = app
        .get_json("/ogc/collections/hazard_sources/items/1")
        .await;
    let at = position(&hazard);
    let near = app
        .get_json(&format!("/api/hazards/near?lon={}&lat={}", at[0], at[1]))
        .await;
    assert!(
        near["results"]
            .as_array()
            .is_some_and(|r| r.iter().any(|h| h["id"] == 1)),
        "{near}"
    );
    let exposure = app.get_json("/api/hazards/1/exposure").await;
    assert!(exposure["population"].as_i64().is_some_and(|p| p >= 0));
    for layer in ["shelters", "enterprises", "cameras"] {
        let r = exposure["radius_m"].as_f64().unwrap_or(0.0);
        assert!(exposure[layer]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["distance_m"].as_f64() <= Some(r))));
    }
}

#[tokio::test]
async fn two_servers_on_one_store_let_exactly_one_assignment_win() {
    // Two servers, each with its own pool and its own writer queue, on one
    // store (a GeoPackage file, or PostgreSQL): only the store's
    // transaction can decide between them.
    let a = Arc::new(spawn_app(true).await);
    let b = Arc::new(crate::helpers::spawn_node(&a).await);
    let token = a.token(Role::Dispatcher).await;
    let incident = incident_at(&a, &token, 118.30, 34.99, json!(["water_rescue"])).await;
    let standby = a
        .get_json("/api/nearest?layer=rescue_teams&lon=118.3&lat=34.99&status=standby&limit=1")
        .await;
    let team = standby["results"][0]["id"]
        .as_i64()
        .expect("a standby team");
    // B learns of the incident from the shared change log.
    let mut seen = false;
    for _ in 0..40 {
        if b.get(&format!("/api/incidents/{incident}")).await.status() == 200 {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "server B shows server A's incident within 2 s");
    let codes: Vec<u16> = race(
        &[Arc::clone(&a), Arc::clone(&b)],
        50,
        &format!("/api/incidents/{incident}/assignments"),
        &token,
        json!({"team_id": team}),
    )
    .await
    .into_iter()
    .map(|(code, _)| code)
    .collect();
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 49, "{codes:?}");
    // Whichever server won, B shows one assignment once its feed has run.
    let mut assigned = None;
    for _ in 0..40 {
        let i = b.get_json(&format!("/api/incidents/{incident}")).await;
        assigned = i["properties"]["assignments"].as_array().map(Vec::len);
        if assigned == Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(assigned, Some(1));
}

#[tokio::test]
async fn the_demo_is_a_consistent_dispatch_state() {
    let app = spawn_app(true).await;
    let teams = app
        .get_json("/ogc/collections/rescue_teams/items?limit=1000")
        .await;
    let mut dispatched = 0;
    for t in teams["features"].as_array().into_iter().flatten() {
        let p = &t["properties"];
        if p["status"] == "dispatched" {
            dispatched += 1;
            let incident = p["incident_id"]
                .as_i64()
                .expect("a dispatched team has its incident");
            let i = app.get_json(&format!("/api/incidents/{incident}")).await;
            assert_eq!(i["properties"]["status"], "active");
            let open: Vec<i64> = i["properties"]["assignments"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["released_at"].is_null())
                .filter_map(|a| a["team_id"].as_i64())
                .collect();
            assert!(open.contains(&t["id"].as_i64().unwrap_or(0)), "{i}");
        } else {
            assert!(p["incident_id"].is_null(), "{t}");
        }
    }
    assert!(dispatched > 0, "the demo shows a dispatch under way");
}

/// The middle of a GeoJSON geometry's box.
fn box_centre(g: &Value) -> [f64; 2] {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    fn walk(v: &Value, b: &mut [f64; 4]) {
        match v.as_array() {
            Some(a) if a.len() >= 2 && a[0].is_number() => {
                let (x, y) = (a[0].as_f64().unwrap_or(0.0), a[1].as_f64().unwrap_or(0.0));
                *b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
            }
            Some(a) => a.iter().for_each(|x| walk(x, b)),
            None => {}
        }
    }
    walk(&g["coordinates"], &mut b);
    [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0]
}

#[tokio::test]
async fn hazard_exposure_equals_a_scan_of_every_layer() {
    let app = spawn_app(true).await;
    let hazards = app
        .get_json("/ogc/collections/hazard_sources/items?limit=1000")
        .await;
    let hazards = hazards["features"].as_array().cloned().unwrap_or_default();
    let cells = app
        .get_json("/ogc/collections/population_grid/items?limit=10000")
        .await;
    let cells = cells["features"].as_array().cloned().unwrap_or_default();
    let shelters = app
        .get_json("/ogc/collections/shelters/items?limit=1000")
        .await;
    let shelters = shelters["features"].as_array().cloned().unwrap_or_default();
    // The hazard with the widest radius, and a point inside it.
    let widest = hazards
        .iter()
        .max_by(|a, b| {
            let r = |h: &Value| {
                h["properties"]["evacuation_radius_m"]
                    .as_f64()
                    .unwrap_or(0.0)
            };
            r(a).total_cmp(&r(b))
        })
        .expect("hazards");
    let id = widest["id"].as_i64().unwrap_or(0);
    let centre = position(widest);
    let r = widest["properties"]["evacuation_radius_m"]
        .as_f64()
        .unwrap_or(0.0);
    let exposure = app.get_json(&format!("/api/hazards/{id}/exposure")).await;
    let people: i64 = cells
        .iter()
        .filter(|c| haversine_m(centre, box_centre(&c["geometry"])) <= r)
        .filter_map(|c| c["properties"]["population"].as_i64())
        .sum();
    assert_eq!(
        exposure["population"].as_i64(),
        Some(people),
        "{r} m around {centre:?}"
    );
    // Point shelters by their position (an area's distance is taken to
    // its label point inside it, which a box cannot reproduce).
    let is_point = |s: &Value| s["geometry"]["type"] == "Point";
    let mut want: Vec<i64> = shelters
        .iter()
        .filter(|s| is_point(s) && haversine_m(centre, position(s)) <= r)
        .filter_map(|s| s["id"].as_i64())
        .collect();
    let mut got: Vec<i64> = exposure["shelters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| is_point(&s["feature"]))
        .filter_map(|s| s["id"].as_i64())
        .collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want);
    // Near: exactly the hazards whose radius covers the point.
    let p = [centre[0] + 0.002, centre[1] + 0.001];
    let near = app
        .get_json(&format!("/api/hazards/near?lon={}&lat={}", p[0], p[1]))
        .await;
    let mut got: Vec<i64> = near["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["id"].as_i64())
        .collect();
    let mut want: Vec<i64> = hazards
        .iter()
        .filter(|h| {
            haversine_m(p, position(h))
                <= h["properties"]["evacuation_radius_m"]
                    .as_f64()
                    .unwrap_or(0.0)
        })
        .filter_map(|h| h["id"].as_i64())
        .collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    assert!(!got.is_empty());
}

#[tokio::test]
async fn concurrent_position_reports_all_land_each_as_its_own_change() {
    // Writes that meet at the store go in one transaction (group commit);
    // each must still be applied and logged on its own.
    let app = Arc::new(spawn_app(true).await);
    let token = app.token(Role::Dispatcher).await;
    let teams = app
        .get_json("/ogc/collections/rescue_teams/items?limit=1000")
        .await;
    let teams: Vec<(i64, [f64; 2])> = teams["features"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (t["id"].as_i64().unwrap_or(0), position(t)))
        .collect();
    let seq = app.get_json("/api/summary").await["seq"]
        .as_i64()
        .unwrap_or(0);
    let mut tries = Vec::new();
    for (round, (id, p)) in teams.iter().cycle().take(100).enumerate() {
        let (app, token, id) = (Arc::clone(&app), token.clone(), *id);
        let to = [p[0] + 0.0001 * (round / teams.len() + 1) as f64, p[1]];
        tries.push(tokio::spawn(async move {
            let r = reqwest::Client::new()
                .patch(app.url(&format!("/api/teams/{id}/position")))
                .bearer_auth(&token)
                .json(&json!({"lon": to[0], "lat": to[1]}))
                .send()
                .await
                .expect("answers");
            (id, r.status().as_u16(), to)
        }));
    }
    let mut last = std::collections::BTreeMap::new();
    for t in tries {
        let (id, code, to) = t.await.expect("joined");
        assert_eq!(code, 200);
        let e = last.entry(id).or_insert(to);
        if to[0] > e[0] {
            *e = to;
        }
    }
    let admin = app.token(Role::Admin).await;
    let audit = app
        .get_json_as("/api/audit?layer=rescue_teams&limit=1000", &admin)
        .await;
    let positions: Vec<&Value> = audit["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["seq"].as_i64().unwrap_or(0) > seq && e["action"]["kind"] == "team.position")
        .collect();
    // Each report that moved its team is one change of one team. (Two
    // fixes of one team may share a timestamp; the later-sent may then
    // lose to the earlier: both are the team's reported position.)
    assert!(positions.len() >= teams.len(), "{}", positions.len());
    assert!(positions
        .iter()
        .all(|e| e["ids"].as_array().map(Vec::len) == Some(1)));
    let mut seqs: Vec<i64> = positions.iter().filter_map(|e| e["seq"].as_i64()).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), positions.len(), "one seq each");
    for (id, _) in &teams {
        let t = app
            .get_json(&format!("/ogc/collections/rescue_teams/items/{id}"))
            .await;
        let moved = position(&t);
        assert!(
            moved[0]
                > teams
                    .iter()
                    .find(|x| x.0 == *id)
                    .map(|x| x.1[0])
                    .unwrap_or(0.0),
            "team {id} moved"
        );
    }
}
