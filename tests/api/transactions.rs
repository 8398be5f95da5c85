//! Part 4 writes: roles, ETags and If-Match, merge patches, all-or-nothing
//! imports, the audit trail, and refusals as problem documents.

use onemap::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

fn team(name: &str, status: &str) -> Value {
    json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.3, 35.0]},
           "properties": {"name": name, "team_type": "volunteer", "status": status, "headcount": 12}})
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = app.client.request(method, app.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r
            .header("content-type", "application/geo+json")
            .body(b.to_string());
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.expect("the server answers")
}

async fn problem_of(r: reqwest::Response, status: u16) -> String {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.expect("json");
    body["detail"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_dispatcher_creates_replaces_patches_and_deletes_an_operational_feature() {
    let app = spawn_app(false).await;
    let token = app.token(Role::Dispatcher).await;
    let r = send(
        &app,
        reqwest::Method::POST,
        "/ogc/collections/rescue_teams/items",
        Some(&token),
        Some(team("蓝天救援队", "standby")),
        &[],
    )
    .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let etag = r.headers()["etag"].to_str().expect("etag").to_owned();
    assert!(
        location.ends_with("/ogc/collections/rescue_teams/items/1"),
        "{location}"
    );
    let path = "/ogc/collections/rescue_teams/items/1";

    let r = send(
        &app,
        reqwest::Method::PUT,
        path,
        Some(&token),
        Some(team("蓝天救援队", "dispatched")),
        &[("if-match", &etag)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let etag2 = r.headers()["etag"].to_str().expect("etag").to_owned();
    assert_ne!(etag, etag2);

    let r = app
        .client
        .patch(app.url(path))
        .bearer_auth(&token)
        .header("content-type", "application/merge-patch+json")
        .header("if-match", &etag2)
        .body(json!({"properties": {"status": "on_scene", "headcount": null}}).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["properties"]["status"], "on_scene");
    assert!(
        body["properties"].get("headcount").is_none(),
        "null removes a property"
    );
    assert_eq!(body["properties"]["name"], "蓝天救援队");

    let r = send(&app, reqwest::Method::DELETE, path, Some(&token), None, &[]).await;
    assert_eq!(r.status(), 204);
    assert_eq!(app.get(path).await.status(), 404);
}

#[tokio::test]
async fn tokens_and_roles_guard_every_write() {
    let app = spawn_app(true).await;
    let viewer = app.token(Role::Viewer).await;
    let dispatcher = app.token(Role::Dispatcher).await;
    let planner = app.token(Role::Planner).await;
    let admin = app.token(Role::Admin).await;
    let teams = "/ogc/collections/rescue_teams/items";
    let before = app.get(teams).await.json::<Value>().await.expect("json")["numberMatched"].clone();

    assert!(problem_of(
        send(
            &app,
            reqwest::Method::POST,
            teams,
            None,
            Some(team("x", "standby")),
            &[]
        )
        .await,
        401
    )
    .await
    .contains("token"));
    assert!(problem_of(
        send(
            &app,
            reqwest::Method::POST,
            teams,
            Some("om_forged"),
            Some(team("x", "standby")),
            &[]
        )
        .await,
        401
    )
    .await
    .contains("unknown"));
    assert!(problem_of(
        send(
            &app,
            reqwest::Method::POST,
            teams,
            Some(&viewer),
            Some(team("x", "standby")),
            &[]
        )
        .await,
        403
    )
    .await
    .contains("viewer"));
    assert!(problem_of(
        send(
            &app,
            reqwest::Method::POST,
            teams,
            Some(&planner),
            Some(team("x", "standby")),
            &[]
        )
        .await,
        403
    )
    .await
    .contains("dispatcher"));
    assert_eq!(
        send(
            &app,
            reqwest::Method::POST,
            teams,
            Some(&admin),
            Some(team("x", "standby")),
            &[]
        )
        .await
        .status(),
        201
    );

    let shelter = json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.3, 35.0]},
        "properties": {"name": "新建避难场所", "kind": "park", "category": "emergency", "capacity": 500}});
    let shelters = "/ogc/collections/shelters/items";
    assert_eq!(
        send(
            &app,
            reqwest::Method::POST,
            shelters,
            Some(&dispatcher),
            Some(shelter.clone()),
            &[]
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        send(
            &app,
            reqwest::Method::POST,
            shelters,
            Some(&planner),
            Some(shelter),
            &[]
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        send(
            &app,
            reqwest::Method::DELETE,
            "/ogc/collections/districts/items/1",
            Some(&planner),
            None,
            &[]
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        send(
            &app,
            reqwest::Method::DELETE,
            "/ogc/collections/rescue_teams/items/1",
            Some(&viewer),
            None,
            &[]
        )
        .await
        .status(),
        403
    );

    // Revoked tokens stop working at once.
    assert!(app
        .store
        .revoke_token(&app.store.tokens().await.expect("tokens")[1].name)
        .await
        .expect("revoked"));
    assert_eq!(
        send(
            &app,
            reqwest::Method::POST,
            teams,
            Some(&dispatcher),
            Some(team("y", "standby")),
            &[]
        )
        .await
        .status(),
        401
    );

    let after = app.get(teams).await.json::<Value>().await.expect("json")["numberMatched"].clone();
    assert_eq!(
        after.as_u64(),
        before.as_u64().map(|n| n + 1),
        "only the admin's write landed"
    );
}

#[tokio::test]
async fn concurrent_edits_with_one_etag_let_exactly_one_win() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Dispatcher).await;
    let path = "/ogc/collections/rescue_teams/items/3";
    let etag = app.get(path).await.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (client, url, token, etag) = (
            app.client.clone(),
            app.url(path),
            token.clone(),
            etag.clone(),
        );
        tasks.push(tokio::spawn(async move {
            client
                .put(url)
                .bearer_auth(token)
                .header("content-type", "application/geo+json")
                .header("if-match", etag)
                .body(team(&format!("edit {i}"), "dispatched").to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        7,
        "{statuses:?}"
    );

    // A stale ETag changes nothing.
    let now: Value = app.get(path).await.json().await.expect("json");
    let r = send(
        &app,
        reqwest::Method::PUT,
        path,
        Some(&token),
        Some(team("late", "standby")),
        &[("if-match", &etag)],
    )
    .await;
    assert_eq!(r.status(), 412);
    let again: Value = app.get(path).await.json().await.expect("json");
    assert_eq!(now, again);
}

#[tokio::test]
async fn malformed_writes_are_4xx_problems_and_store_nothing() {
    let app = spawn_app(false).await;
    let token = app.token(Role::Admin).await;
    let teams = "/ogc/collections/rescue_teams/items";
    let post = |body: &'static str, ct: &'static str| {
        app.client
            .post(app.url(teams))
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    assert!(problem_of(
        post("{not json", "application/geo+json")
            .await
            .expect("answers"),
        400
    )
    .await
    .contains("JSON"));
    assert!(problem_of(
        post(
            "{\"type\":\"Point\",\"coordinates\":[1,2]}",
            "application/geo+json"
        )
        .await
        .expect("answers"),
        400
    )
    .await
    .contains("Feature"));
    assert_eq!(
        post("{}", "text/plain").await.expect("answers").status(),
        415
    );
    let wrong_geometry = r#"{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[118,35],[118.1,35],[118.1,35.1],[118,35]]]},"properties":{"name":"t","team_type":"militia","status":"standby"}}"#;
    let detail = problem_of(
        post(wrong_geometry, "application/geo+json")
            .await
            .expect("answers"),
        422,
    )
    .await;
    assert!(detail.contains("Point"), "{detail}");
    let bad_enum = r#"{"type":"Feature","geometry":{"type":"Point","coordinates":[118,35]},"properties":{"name":"t","team_type":"militia","status":"asleep"}}"#;
    let r = post(bad_enum, "application/geo+json")
        .await
        .expect("answers");
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["errors"][0]["field"], "status");

    let huge = "x".repeat(17 * 1024 * 1024);
    let r = app
        .client
        .post(app.url(teams))
        .bearer_auth(&token)
        .header("content-type", "application/geo+json")
        .body(huge)
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    let r = send(
        &app,
        reqwest::Method::PUT,
        "/ogc/collections/rescue_teams/items/77",
        Some(&token),
        Some(team("x", "standby")),
        &[],
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = send(
        &app,
        reqwest::Method::POST,
        "/ogc/collections/volcanoes/items",
        Some(&token),
        Some(team("x", "standby")),
        &[],
    )
    .await;
    assert_eq!(r.status(), 404);
    let fc: Value = app.get(teams).await.json().await.expect("json");
    assert_eq!(fc["numberMatched"], 0, "nothing was stored");
}

#[tokio::test]
async fn an_import_with_one_bad_feature_among_ten_thousand_stores_none() {
    let app = spawn_app(false).await;
    let token = app.token(Role::Dispatcher).await;
    let mut lines = Vec::new();
    for i in 0..10_000 {
        let status = if i == 6_789 { "asleep" } else { "standby" };
        let x = 118.2 + (i % 100) as f64 * 0.001;
        let y = 34.9 + (i / 100) as f64 * 0.001;
        lines.push(
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [x, y]},
                   "properties": {"name": format!("t{i}"), "team_type": "volunteer", "status": status}})
            .to_string(),
        );
    }
    let body = lines.join("\n");
    let import = |body: String| {
        app.client
            .post(app.url("/api/import/rescue_teams"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    let r = import(body).await.expect("answers");
    assert_eq!(r.status(), 422);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["errors"][0]["line"], 6_790);
    assert_eq!(report["errors"][0]["field"], "status");
    let fc = app.get_json("/ogc/collections/rescue_teams/items").await;
    assert_eq!(fc["numberMatched"], 0, "all or nothing");

    lines[6_789] = lines[6_789].replace("asleep", "standby");
    let r = import(lines.join("\n")).await.expect("answers");
    assert_eq!(r.status(), 201);
    let fc = app
        .get_json("/ogc/collections/rescue_teams/items?limit=10000")
        .await;
    assert_eq!(fc["numberMatched"], 10_000);
    assert_eq!(fc["numberReturned"], 10_000);
}

#[tokio::test]
async fn admins_read_the_audit_trail_with_before_and_after() {
    let app = spawn_app(true).await;
    let dispatcher = app.token(Role::Dispatcher).await;
    let admin = app.token(Role::Admin).await;
    let path = "/ogc/collections/incidents/items/2";
    let r = app
        .client
        .patch(app.url(path))
        .bearer_auth(&dispatcher)
        .header("content-type", "application/merge-patch+json")
        .body(json!({"properties": {"status": "resolved"}}).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
    assert_eq!(
        send(
            &app,
            reqwest::Method::GET,
            "/api/audit",
            Some(&dispatcher),
            None,
            &[]
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        send(&app, reqwest::Method::GET, "/api/audit", None, None, &[])
            .await
            .status(),
        401
    );
    let r = send(
        &app,
        reqwest::Method::GET,
        "/api/audit?layer=incidents&feature=2",
        Some(&admin),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let audit: Value = r.json().await.expect("json");
    let e = &audit["entries"][0];
    assert_eq!(e["op"], "update");
    assert!(
        e["actor"]
            .as_str()
            .is_some_and(|a| a.contains("dispatcher")),
        "{e}"
    );
    assert_eq!(e["before"][0]["status"], "active");
    assert_eq!(e["after"][0]["status"], "resolved");
    assert!(e["at"].as_str().is_some_and(|t| t.starts_with("20")));
    assert!(problem_of(
        send(
            &app,
            reqwest::Method::GET,
            "/api/audit?since=yesterday",
            Some(&admin),
            None,
            &[]
        )
        .await,
        400
    )
    .await
    .contains("since"));
}

#[tokio::test]
async fn a_collection_of_one_feature_is_answered_as_a_collection() {
    let app = spawn_app(false).await;
    let token = app.token(Role::Dispatcher).await;
    let collection =
        json!({"type": "FeatureCollection", "features": [team("蓝天救援队", "standby")]});
    let r = send(
        &app,
        reqwest::Method::POST,
        "/ogc/collections/rescue_teams/items",
        Some(&token),
        Some(collection),
        &[],
    )
    .await;
    assert_eq!(r.status(), 201);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap_or_default()
            .ends_with("/ogc/collections/rescue_teams/items"),
        "the collection's Location, not the one feature's"
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["ids"], json!([1]), "{body}");
}

#[tokio::test]
async fn writes_cut_off_by_their_clients_leave_no_transaction_open() {
    // A client that gives up mid-write (a browser tab closed, a load
    // balancer's timeout) drops the request's future at any await: in
    // `BEGIN`, between statements, in `COMMIT`. None of it may leave a
    // pooled connection inside a transaction holding the file's write lock,
    // which wedged every later write of the server.
    let app = spawn_app(true).await;
    let token = app.token(Role::Dispatcher).await;
    let impatient = reqwest::Client::new();
    for round in 0..40u64 {
        let mut cut = Vec::new();
        for i in 0..8u64 {
            let micros = 50 + (round * 8 + i) * 37 % 3000;
            let r = impatient
                .patch(app.url(&format!(
                    "/ogc/collections/rescue_teams/items/{}",
                    1 + i % 4
                )))
                .bearer_auth(&token)
                .header("content-type", "application/merge-patch+json")
                .body(json!({"properties": {"headcount": 10 + round}}).to_string())
                .timeout(std::time::Duration::from_micros(micros))
                .send();
            cut.push(r);
        }
        // Answered or cut off: either is fine here.
        let _ = futures_util::future::join_all(cut).await;
    }
    let started = std::time::Instant::now();
    for id in 1..=4 {
        let r = app
            .client
            .patch(app.url(&format!("/ogc/collections/rescue_teams/items/{id}")))
            .bearer_auth(&token)
            .header("content-type", "application/merge-patch+json")
            .body(json!({"properties": {"headcount": 99}}).to_string())
            .send()
            .await
            .expect("answers");
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }
    let r = send(
        &app,
        reqwest::Method::POST,
        "/ogc/collections/rescue_teams/items",
        Some(&token),
        Some(team("切断之后", "standby")),
        &[],
    )
    .await;
    assert_eq!(r.status(), 201);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "writes after the cut-off ones waited {:?} for a lock",
        started.elapsed()
    );
}
