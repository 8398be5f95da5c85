//! Several `onemap serve` nodes on one store (PostgreSQL in a city; on a
//! GeoPackage the same holds between servers on one machine): an edit on
//! one node reaches the others' items, tiles and event streams within a
//! second; races between nodes have exactly the right winners; an event
//! stream resumes on another node without loss or repeats; a killed node
//! loses no committed write.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use onemap::auth::Role;
use serde_json::{json, Value};

use crate::{
    events::Events,
    helpers::{spawn_app, spawn_node, TestApp},
    tiles::{decode, tile_of},
};

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let r = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/merge-patch+json")
        .body(body.to_string())
        .send()
        .await
        .expect("the server answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Poll `check` until it holds, at most `within`; how long it took.
async fn within<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < within {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn an_edit_on_one_node_shows_in_the_others_items_tiles_and_events_within_a_second() {
    let a = spawn_app(true).await;
    let b = spawn_node(&a).await;
    let token = a.token(Role::Dispatcher).await;
    let team = b.get_json("/ogc/collections/rescue_teams/items/3").await;
    let name = team["properties"]["name"].clone();
    let was = [
        team["geometry"]["coordinates"][0].as_f64().unwrap_or(0.0),
        team["geometry"]["coordinates"][1].as_f64().unwrap_or(0.0),
    ];
    let to = [was[0] + 0.06, was[1] - 0.04];
    let z = 14;
    let (nx, ny) = tile_of(to[0], to[1], z);
    assert_ne!(tile_of(was[0], was[1], z), (nx, ny));
    // B's tile of the new place is cached before the edit: the edit must
    // reach B's tile cache, not only its index.
    let names =
        |t: std::collections::BTreeMap<String, Vec<onemap::layers::Feature>>| -> Vec<Value> {
            t.get("rescue_teams")
                .into_iter()
                .flatten()
                .filter_map(|f| f.properties.get("name").cloned())
                .collect()
        };
    assert!(!names(decode(&b, "rescue_teams", z, nx, ny).await).contains(&name));
    let mut events = Events::open(&b, "?layers=rescue_teams", None).await;

    let (status, body) = send(
        &a,
        reqwest::Method::PATCH,
        "/ogc/collections/rescue_teams/items/3",
        &token,
        json!({"geometry": {"type": "Point", "coordinates": to}, "properties": {"status": "dispatched"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let edited = Instant::now();

    let event = events.next().await;
    assert_eq!(event.data["ids"], json!([3]), "{:?}", event.data);
    assert_eq!(event.data["layer"], "rescue_teams");
    assert!(
        edited.elapsed() < Duration::from_secs(1),
        "B's stream had A's change after {:?}",
        edited.elapsed()
    );
    let shown = within(Duration::from_secs(1), || async {
        let f = b.get_json("/ogc/collections/rescue_teams/items/3").await;
        f["properties"]["status"] == "dispatched"
    })
    .await;
    assert!(shown.is_some(), "B's item shows A's edit within a second");
    let listed = b
        .get_json("/ogc/collections/rescue_teams/items?status=dispatched&limit=1000")
        .await;
    assert!(
        listed["features"]
            .as_array()
            .is_some_and(|fs| fs.iter().any(|f| f["id"] == 3)),
        "B's filtered items list it"
    );
    let moved = within(Duration::from_secs(1), || async {
        names(decode(&b, "rescue_teams", z, nx, ny).await).contains(&name)
    })
    .await;
    assert!(moved.is_some(), "B's tile of the new place shows the team");
    // The event id is the store's sequence: the same on both nodes.
    assert_eq!(
        event.id.parse::<i64>().ok(),
        Some(a.store.last_seq().await.expect("seq")),
        "the event id is the change's seq in the shared log"
    );
}

#[tokio::test]
async fn an_event_stream_moved_to_another_node_misses_nothing_and_repeats_nothing() {
    let a = spawn_app(true).await;
    let b = spawn_node(&a).await;
    let token = a.token(Role::Dispatcher).await;
    let status = |id: i64, s: &'static str| {
        (
            format!("/ogc/collections/rescue_teams/items/{id}"),
            json!({"properties": {"status": s}}),
        )
    };
    let mut on_a = Events::open(&a, "?layers=rescue_teams", None).await;
    let (path, body) = status(1, "dispatched");
    assert_eq!(
        send(&a, reqwest::Method::PATCH, &path, &token, body)
            .await
            .0,
        200
    );
    let first = on_a.next().await;
    assert_eq!(first.data["ids"], json!([1]));
    // The client loses node A; meanwhile both nodes take writes.
    drop(on_a);
    let mut expected = Vec::new();
    for (i, node) in [&a, &b, &a, &b, &b].into_iter().enumerate() {
        let id = i64::try_from(i).unwrap_or(0) + 2;
        let (path, body) = status(id, "on_scene");
        let (code, _) = send(node, reqwest::Method::PATCH, &path, &token, body).await;
        assert_eq!(code, 200);
        expected.push(json!([id]));
    }
    // … and reconnects to node B with the last id it saw.
    let mut on_b = Events::open(&b, "?layers=rescue_teams", Some(&first.id)).await;
    let mut got = Vec::new();
    let mut last = first.id.parse::<i64>().unwrap_or(0);
    for _ in 0..expected.len() {
        let e = on_b.next().await;
        let id = e.id.parse::<i64>().unwrap_or(0);
        assert!(id > last, "ids increase: {id} after {last}");
        last = id;
        got.push(e.data["ids"].clone());
    }
    assert_eq!(got, expected, "every missed change, in commit order, once");
    assert!(
        tokio::time::timeout(Duration::from_millis(600), on_b.next())
            .await
            .is_err(),
        "nothing repeats"
    );
}

#[tokio::test]
async fn a_reservation_race_across_nodes_never_overdraws_a_depot() {
    let a = Arc::new(spawn_app(true).await);
    let b = Arc::new(spawn_node(&a).await);
    let token = a.token(Role::Dispatcher).await;
    let (code, incident) = send(
        &a,
        reqwest::Method::POST,
        "/api/incidents",
        &token,
        json!({"type": "flood", "severity": "major", "lon": 118.3, "lat": 34.99,
               "description": "内涝", "required_capabilities": [], "required_supplies": []}),
    )
    .await;
    assert_eq!(code, 201, "{incident}");
    let incident = incident["id"].as_i64().expect("an id");
    let stock_of = |f: &Value| {
        f["properties"]["inventory"]
            .as_array()
            .and_then(|inv| inv.iter().find(|r| r["item"] == "sandbags"))
            .and_then(|r| r["quantity"].as_f64())
            .unwrap_or(-1.0)
    };
    let stock = stock_of(&a.get_json("/ogc/collections/supply_depots/items/1").await);
    assert!(stock > 0.0);
    // Twelve requests, each of a fifth of the stock: five fit.
    let q = (stock / 5.0).floor().max(1.0);
    let fit = (stock / q).floor() as usize;
    assert!(fit < 12);
    // B knows the incident before the race.
    let seen = within(Duration::from_secs(2), || async {
        b.get(&format!("/api/incidents/{incident}")).await.status() == 200
    })
    .await;
    assert!(seen.is_some());
    let tries: Vec<_> = (0..12)
        .map(|i| {
            let node = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let token = token.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(node.url("/api/supplies/reservations"))
                    .bearer_auth(&token)
                    .json(&json!({"incident_id": incident, "item": "sandbags",
                                  "lines": [{"depot_id": 1, "quantity": q}]}))
                    .send()
                    .await
                    .expect("answers")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tries {
        codes.push(t.await.expect("joined"));
    }
    assert_eq!(
        codes.iter().filter(|c| **c == 201).count(),
        fit,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == 409).count(),
        12 - fit,
        "{codes:?}"
    );
    let left = stock - fit as f64 * q;
    for node in [&a, &b] {
        let ok = within(Duration::from_secs(1), || async {
            stock_of(
                &node
                    .get_json("/ogc/collections/supply_depots/items/1")
                    .await,
            ) == left
        })
        .await;
        assert!(ok.is_some(), "both nodes show {left} left");
    }
    assert!(left >= 0.0);
}

/// `onemap serve` as a process of its own on `database`, on a free port.
async fn serve_process(database: &str) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_onemap"))
        .args(["--database", database, "serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tiles-dir")
        .arg(dir.path())
        .arg("--web-dir")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/web"))
        .env("ONEMAP_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("onemap starts");
    let base = format!("http://127.0.0.1:{port}");
    let up = within(Duration::from_secs(30), || async {
        reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(up.is_some(), "the node answers /healthz");
    std::mem::forget(dir);
    (child, base)
}

#[tokio::test]
async fn killing_a_node_loses_no_committed_write() {
    let survivor = spawn_app(true).await;
    let token = survivor.token(Role::Planner).await;
    let (mut doomed, base) = serve_process(&survivor.database).await;
    // Writes stream into the doomed node until it is killed mid-stream.
    let client = reqwest::Client::new();
    let writer = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..10_000 {
                let r = client
                    .post(format!("{base}/ogc/collections/shelters/items"))
                    .bearer_auth(&token)
                    .json(&json!({"type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [118.3 + f64::from(i) * 1e-5, 35.05]},
                        "properties": {"name": format!("节点测试{i}"), "kind": "park", "category": "emergency", "capacity": 100}}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        let id = r
                            .headers()
                            .get("location")
                            .and_then(|l| l.to_str().ok())
                            .and_then(|l| l.rsplit('/').next())
                            .and_then(|id| id.parse::<i64>().ok());
                        acknowledged.push(id.expect("a created item's Location"));
                    }
                    Ok(r) => panic!("unexpected {}", r.status()),
                    Err(_) => break,
                }
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    doomed.start_kill().expect("SIGKILL");
    let _ = doomed.wait().await;
    let acknowledged = writer.await.expect("the writer ends");
    assert!(
        acknowledged.len() > 5,
        "writes were acknowledged before the kill"
    );
    // Every acknowledged write is on the surviving node, from the store.
    for id in &acknowledged {
        let ok = within(Duration::from_secs(2), || async {
            survivor
                .get(&format!("/ogc/collections/shelters/items/{id}"))
                .await
                .status()
                == 200
        })
        .await;
        assert!(ok.is_some(), "shelter {id} was acknowledged, so it is kept");
    }
    // … and its change log has each of them exactly once.
    let changes = survivor
        .store
        .changes_since(0, 100_000)
        .await
        .expect("the log");
    let mut logged: Vec<i64> = changes
        .iter()
        .filter(|c| c.layer == "shelters" && c.op == onemap::store::Op::Create)
        .flat_map(|c| c.ids.clone())
        .collect();
    logged.sort_unstable();
    let before = logged.len();
    logged.dedup();
    assert_eq!(before, logged.len(), "no change logged twice");
    assert!(acknowledged
        .iter()
        .all(|id| logged.binary_search(id).is_ok()));
    // The survivor still writes.
    let (code, _) = send(
        &survivor,
        reqwest::Method::PATCH,
        &format!("/ogc/collections/shelters/items/{}", acknowledged[0]),
        &token,
        json!({"properties": {"capacity": 120}}),
    )
    .await;
    assert_eq!(code, 200);
}
