//! Change events over SSE: live delivery filtered by layer, exact replay
//! after a reconnect with Last-Event-ID, and `reset` beyond the window.

use std::time::Duration;

use futures_util::StreamExt;
use onemap::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

/// One SSE connection, read event by event.
pub(crate) struct Events {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

#[derive(Debug)]
pub(crate) struct Received {
    pub id: String,
    pub kind: String,
    pub data: Value,
}

impl Events {
    pub async fn open(app: &TestApp, query: &str, last_event_id: Option<&str>) -> Events {
        let mut r = app.client.get(app.url(&format!("/api/events{query}")));
        if let Some(id) = last_event_id {
            r = r.header("last-event-id", id);
        }
        let r = r.send().await.expect("the server answers");
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream"));
        Events {
            body: Box::pin(r.bytes_stream()),
            buffer: String::new(),
        }
    }

    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let field = |name: &str| {
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix(&format!("{name}:")))
                            .map(|v| v.trim().to_owned())
                    };
                    if let Some(data) = field("data") {
                        return Received {
                            id: field("id").unwrap_or_default(),
                            kind: field("event").unwrap_or_default(),
                            data: serde_json::from_str(&data).unwrap_or(Value::Null),
                        };
                    }
                    continue;
                }
                let chunk = self
                    .body
                    .next()
                    .await
                    .expect("the stream stays open")
                    .expect("a chunk");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event within 5 s")
    }

    /// Nothing more arrives for a moment.
    async fn quiet(&mut self) -> bool {
        tokio::time::timeout(Duration::from_millis(400), self.next())
            .await
            .is_err()
    }
}

async fn patch_status(app: &TestApp, token: &str, layer: &str, id: i64, status: &str) {
    let r = app
        .client
        .patch(app.url(&format!("/ogc/collections/{layer}/items/{id}")))
        .bearer_auth(token)
        .header("content-type", "application/merge-patch+json")
        .body(json!({"properties": {"status": status}}).to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_client_that_reconnects_gets_each_missed_event_once_in_order() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Dispatcher).await;
    let mut events = Events::open(&app, "?layers=rescue_teams", None).await;
    patch_status(&app, &token, "rescue_teams", 1, "dispatched").await;
    let first = events.next().await;
    assert_eq!(first.kind, "change");
    assert_eq!(first.data["layer"], "rescue_teams");
    assert_eq!(first.data["op"], "update");
    assert_eq!(first.data["ids"], json!([1]));
    assert!(first.data["bbox_after"].is_array());
    drop(events);

    patch_status(&app, &token, "rescue_teams", 2, "dispatched").await;
    patch_status(&app, &token, "incidents", 1, "resolved").await;
    patch_status(&app, &token, "rescue_teams", 3, "on_scene").await;

    let mut events = Events::open(&app, "?layers=rescue_teams", Some(&first.id)).await;
    let a = events.next().await;
    let b = events.next().await;
    assert_eq!(
        (a.data["ids"].clone(), b.data["ids"].clone()),
        (json!([2]), json!([3]))
    );
    assert!(a.id.parse::<i64>().unwrap_or(0) < b.id.parse::<i64>().unwrap_or(0));
    assert!(
        events.quiet().await,
        "the incidents change is filtered out and nothing repeats"
    );
    patch_status(&app, &token, "rescue_teams", 4, "returning").await;
    assert_eq!(
        events.next().await.data["ids"],
        json!([4]),
        "then live again"
    );
}

#[tokio::test]
async fn many_clients_see_the_same_events() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Dispatcher).await;
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(Events::open(&app, "", None).await);
    }
    for id in 1..=3 {
        patch_status(&app, &token, "rescue_teams", id, "dispatched").await;
    }
    for c in &mut clients {
        let ids: Vec<Value> = vec![
            c.next().await.data["ids"].clone(),
            c.next().await.data["ids"].clone(),
            c.next().await.data["ids"].clone(),
        ];
        assert_eq!(ids, vec![json!([1]), json!([2]), json!([3])]);
    }
}

#[tokio::test]
async fn a_gap_beyond_the_replay_window_gets_a_reset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, true, |s| s.events_replay = 2).await;
    let token = app.token(Role::Dispatcher).await;
    let mut events = Events::open(&app, "", None).await;
    patch_status(&app, &token, "rescue_teams", 1, "dispatched").await;
    let first = events.next().await;
    drop(events);
    for id in 2..=5 {
        patch_status(&app, &token, "rescue_teams", id, "dispatched").await;
    }
    let mut events = Events::open(&app, "", Some(&first.id)).await;
    let reset = events.next().await;
    assert_eq!(reset.kind, "reset");
    patch_status(&app, &token, "rescue_teams", 6, "dispatched").await;
    assert_eq!(events.next().await.data["ids"], json!([6]));
}

#[tokio::test]
async fn the_stream_names_its_heartbeat_period_and_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, false, |s| {
        s.events_heartbeat = Duration::from_secs(1);
    })
    .await;
    let r = app.get("/api/events").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-heartbeat-seconds"], "1");
    // With no change at all, comment lines (`:`) arrive once a second.
    let mut body = Box::pin(r.bytes_stream());
    let started = std::time::Instant::now();
    let mut text = String::new();
    while text.matches(":\n").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(3), body.next())
            .await
            .expect("a heartbeat within 3 s")
            .expect("the stream stays open")
            .expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(3500),
        "two heartbeats after {took:?}: {text:?}"
    );
    assert_eq!(
        spawn_app(false).await.get("/api/events").await.headers()["x-heartbeat-seconds"],
        "15",
        "the default period"
    );
}

/// A bulk import is one summary change (count, file digest, no after-image
/// of every feature) and one layer-scoped `reset` event, live and replayed.
#[tokio::test]
async fn an_import_is_one_summary_change_and_one_reset_for_its_layer() {
    let app = spawn_app(true).await;
    let token = app.token(Role::Admin).await;
    let mut live = Events::open(&app, "", None).await;
    let lines: Vec<String> = (0..2_000)
        .map(|i| {
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.2 + f64::from(i) * 1e-5, 35.0]},
                   "properties": {"name": format!("队{i}"), "team_type": "volunteer", "status": "standby"}})
            .to_string()
        })
        .collect();
    let body = lines.join("\n");
    let r = app
        .client
        .post(app.url("/api/import/rescue_teams"))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(body.clone())
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 201);
    let done: Value = r.json().await.expect("json");

    let event = live.next().await;
    assert_eq!(event.kind, "reset", "{event:?}");
    assert_eq!(event.id, done["seq"].to_string());
    assert_eq!(event.data["layers"], json!(["rescue_teams"]));
    assert_eq!(event.data["count"], 2_000);
    assert!(event.data.get("ids").is_none(), "no list of ids: {event:?}");

    // Replayed from the log after a reconnect: the same one event.
    let before: i64 = done["seq"].as_i64().unwrap_or(0) - 1;
    let mut replay = Events::open(&app, "", Some(&before.to_string())).await;
    let again = replay.next().await;
    assert_eq!(
        (again.kind.as_str(), again.id.as_str()),
        ("reset", event.id.as_str())
    );

    // The log keeps the summary with the file's digest, not the features.
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let audit = app
        .get_json_as("/api/audit?layer=rescue_teams&limit=1", &token)
        .await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"]["kind"], "import", "{entry}");
    assert_eq!(entry["action"]["count"], 2_000);
    assert_eq!(entry["action"]["format"], "geojson");
    assert_eq!(entry["action"]["digest"], format!("sha256:{digest}"));
    assert!(entry["after"].is_null(), "no after-image: {entry}");
    assert_eq!(entry["ids"].as_array().map(Vec::len), Some(2_000));
}
