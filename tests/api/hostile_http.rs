//! Hostile clients at the HTTP floor: connections that never finish, too
//! many connections or event streams, uploads without a token, forged
//! hosts, reads around the token guard, files outside the web map, numbers
//! outside their range. Each test sends the real request to the real
//! server, then checks that `/healthz` answers at once.

use std::time::{Duration, Instant};

use onemap::auth::Role;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

/// `/healthz` answers 200 within a second.
async fn healthy(app: &TestApp) {
    app.healthy_at_once().await;
}

fn addr(app: &TestApp) -> String {
    app.base_url.trim_start_matches("http://").to_owned()
}

/// Read until the server closes the connection or `limit` passes; the
/// bytes read and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[tokio::test]
async fn silent_and_trickling_clients_are_cut_off_at_the_header_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, false, |s| {
        s.header_timeout = Duration::from_secs(1);
    })
    .await;
    // Connected, never a byte.
    let mut silent = TcpStream::connect(addr(&app)).await.expect("connects");
    // A header line every 400 ms, never the blank line that ends them.
    let mut trickle = TcpStream::connect(addr(&app)).await.expect("connects");
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("writes");
    let trickling = async {
        for i in 0..20 {
            if trickle
                .write_all(format!("X-Slow-{i}: x\r\n").as_bytes())
                .await
                .is_err()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        false
    };
    let (cut, (_, silent_closed)) = tokio::join!(
        trickling,
        read_until_closed(&mut silent, Duration::from_secs(5))
    );
    assert!(silent_closed, "a connection that sends nothing is closed");
    assert!(cut, "a client trickling headers for 8 s is cut off");
    healthy(&app).await;
}

#[tokio::test]
async fn connections_past_the_limit_get_a_503_problem_and_the_server_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, false, |s| {
        s.max_connections = 4;
        s.header_timeout = Duration::from_secs(30);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr(&app)).await.expect("connects"));
    }
    // The server takes the held connections in order; give it the moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr(&app)).await.expect("connects");
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let (answer, closed) = read_until_closed(&mut extra, Duration::from_secs(3)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after"),
        "{answer}"
    );
    assert!(answer.contains("4 open connections"), "{answer}");
    assert!(closed, "the refused connection is closed");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    healthy(&app).await;
}

#[tokio::test]
async fn event_streams_are_capped_per_client_and_released_when_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, false, |s| {
        s.max_event_streams = 3;
        s.max_event_streams_per_client = 2;
    })
    .await;
    let open = || async { app.get("/api/events").await };
    let first = open().await;
    let second = open().await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open().await;
    assert_eq!(third.status(), 503);
    assert!(third.headers().contains_key("retry-after"));
    assert_eq!(third.headers()["content-type"], "application/problem+json");
    let detail = third.text().await.expect("body");
    assert!(detail.contains("limit of 2"), "{detail}");
    healthy(&app).await;
    // A closed stream frees its place at once (a reconnecting wall display
    // must not be locked out).
    drop(first);
    let mut reopened = false;
    for _ in 0..20 {
        let r = open().await;
        if r.status() == 200 {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened, "a place is free again after a stream closes");
}

#[tokio::test]
async fn writes_are_refused_before_their_body_is_read() {
    let app = spawn_app(false).await;
    let started = Instant::now();
    for (path, ct) in [
        ("/api/import/rescue_teams", "application/geo+json"),
        (
            "/ogc/collections/rescue_teams/items",
            "application/geo+json",
        ),
    ] {
        // Announces 200 MB, sends 10 bytes: the 401 must not wait for the rest.
        let mut s = TcpStream::connect(addr(&app)).await.expect("connects");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ct}\r\n\
             Content-Length: 200000000\r\n\r\n{{\"type\":\"F"
        );
        s.write_all(head.as_bytes()).await.expect("writes");
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .expect("answered without the body")
            .expect("reads");
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(6));
    // A token of the wrong group is also refused before the body.
    let planner = app.token(Role::Planner).await;
    let mut s = TcpStream::connect(addr(&app)).await.expect("connects");
    let head = format!(
        "POST /api/import/rescue_teams HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {planner}\r\nContent-Type: application/geo+json\r\n\
         Content-Length: 200000000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("writes");
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("answered without the body")
        .expect("reads");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 403"));
    healthy(&app).await;
}

#[tokio::test]
async fn a_request_cut_by_the_timeout_gets_a_problem_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, false, |s| {
        s.request_timeout = Duration::from_secs(1);
    })
    .await;
    let token = app.token(Role::Dispatcher).await;
    let mut s = TcpStream::connect(addr(&app)).await.expect("connects");
    let head = format!(
        "POST /ogc/collections/rescue_teams/items HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/geo+json\r\n\
         Content-Length: 1000\r\n\r\n{{\"type\":"
    );
    s.write_all(head.as_bytes()).await.expect("writes");
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(4)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"status\":408"), "{answer}");
    healthy(&app).await;
}

#[tokio::test]
async fn a_forged_host_is_refused_and_links_use_only_known_hosts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, true, |s| {
        s.allowed_hosts = vec!["onemap.luozhuang.example".into()];
    })
    .await;
    for path in ["/ogc", "/tiles/onemap.json", "/styles/onemap.json"] {
        let r = app
            .client
            .get(app.url(path))
            .header("host", "evil.example")
            .send()
            .await
            .expect("answers");
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let text = r.text().await.expect("body");
        assert!(text.contains("evil.example"), "{text}");
    }
    let landing: serde_json::Value = app
        .client
        .get(app.url("/ogc"))
        .header("host", "onemap.luozhuang.example")
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let href = landing["links"][0]["href"].as_str().unwrap_or_default();
    assert!(
        href.starts_with("http://onemap.luozhuang.example/"),
        "{href}"
    );
    healthy(&app).await;

    // With a public URL, links never follow the Host header.
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, false, |s| {
        s.public_url = Some("https://onemap.example.gov.cn".into());
    })
    .await;
    let landing: serde_json::Value = app
        .client
        .get(app.url("/ogc"))
        .header("host", "evil.example")
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let body = landing.to_string();
    assert!(!body.contains("evil.example"), "{body}");
    assert!(body.contains("https://onemap.example.gov.cn/ogc"), "{body}");
}

#[tokio::test]
async fn with_reads_requiring_a_token_every_data_path_needs_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, true, |s| {
        s.read_requires_token = true;
        s.metrics = onemap::settings::MetricsAccess::Token;
    })
    .await;
    let paths = [
        "/ogc/api",
        "/ogc/collections/shelters/queryables",
        "/styles/onemap.json",
        "/fonts/DejaVu%20Sans%20Book/0-255.pbf",
        "/tiles/onemap.json",
        "/tiles/shelters/12/3393/1622.mvt",
        "/api/events",
        "/metrics",
    ];
    for path in paths {
        let r = app.get(path).await;
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    let viewer = app.token(Role::Viewer).await;
    for path in paths.iter().filter(|p| **p != "/api/events") {
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth(&viewer)
            .send()
            .await
            .expect("answers");
        assert!(
            r.status().is_success(),
            "{path} with a token: {}",
            r.status()
        );
    }
    // The probe and the page that asks for a token stay open.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/").await.status(), 200);

    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, false, |s| {
        s.metrics = onemap::settings::MetricsAccess::Off;
    })
    .await;
    app.assert_problem("/metrics", 404).await;
}

#[tokio::test]
async fn only_the_web_maps_own_files_are_served() {
    let app = spawn_app(false).await;
    assert_eq!(app.get("/").await.status(), 200);
    assert_eq!(app.get("/app.js").await.status(), 200);
    let maplibre = app
        .get("/node_modules/maplibre-gl/dist/maplibre-gl.mjs")
        .await;
    assert_eq!(
        maplibre.status(),
        200,
        "MapLibre's dist is served (run `npm ci` in web/ first)"
    );
    for path in [
        "/node_modules/playwright-core/package.json",
        "/node_modules/maplibre-gl/package.json",
        "/package.json",
        "/package-lock.json",
        "/tests/map.test.mjs",
        "/node_modules/maplibre-gl/dist/../package.json",
        "/%2e%2e/Cargo.toml",
        "/.gitignore",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    healthy(&app).await;
}

#[tokio::test]
async fn numbers_outside_their_range_are_refused_not_wrapped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_with(dir, true, |s| s.events_replay = 5).await;
    for id in ["-9223372036854775808", "-1", "99999999999999999999", "1e3"] {
        let r = app
            .client
            .get(app.url("/api/events"))
            .header("last-event-id", id)
            .send()
            .await
            .expect("answers");
        assert_eq!(r.status(), 400, "Last-Event-ID {id}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    app.assert_problem(
        "/ogc/collections/shelters/items?limit=10000&offset=18446744073709541616",
        400,
    )
    .await;
    // The largest offset a database can take: an empty page, and no `next`
    // link wrapped around to the first page.
    let page = app
        .get_json("/ogc/collections/shelters/items?limit=10000&offset=9223372036854775807")
        .await;
    assert_eq!(page["features"].as_array().map(Vec::len), Some(0));
    let links = page["links"].as_array().cloned().unwrap_or_default();
    assert!(!links.iter().any(|l| l["rel"] == "next"), "{links:?}");
    healthy(&app).await;
}

#[tokio::test]
async fn slow_readers_of_long_pages_hold_no_pooled_connection() {
    let app = spawn_app(false).await;
    let layer = app.catalog.get("incidents").expect("layer").clone();
    let text = "堤防渗水，需要沙袋和抽水泵。".repeat(150);
    let features: Vec<onemap::layers::Feature> = (0..8000)
        .map(|i| {
            crate::helpers::feature(
                geo::point! { x: 118.2 + (i % 100) as f64 * 0.001, y: 34.9 + (i / 100) as f64 * 0.001 },
                serde_json::json!({"name": format!("险情{i}"), "type": "flood", "status": "reported",
                    "reported_at": "2026-07-12T22:00:00Z", "description": text}),
            )
        })
        .collect();
    app.insert(&layer.name, &features).await;
    // Twelve clients ask for 8,000 long features each (50 MB a page) and
    // never read: more than the store has pooled connections.
    // Without gzip: compressed, the repetitive pages would fit in the
    // sockets' buffers and nothing would stall.
    let plain = reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("a client");
    let mut stalled = Vec::new();
    for _ in 0..12 {
        let r = plain
            .get(app.url("/ogc/collections/incidents/items?limit=10000"))
            .send()
            .await
            .expect("answers");
        assert_eq!(r.status(), 200);
        stalled.push(r);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    healthy(&app).await;
    // Reads and writes still go through while they stall.
    let one = tokio::time::timeout(
        Duration::from_secs(2),
        app.get("/ogc/collections/incidents/items/1"),
    )
    .await
    .expect("a read answers while slow readers stall");
    assert_eq!(one.status(), 200);
    let token = app.token(Role::Dispatcher).await;
    let write = tokio::time::timeout(
        Duration::from_secs(5),
        app.client
            .post(app.url("/ogc/collections/incidents/items"))
            .bearer_auth(&token)
            .header("content-type", "application/geo+json")
            .body(
                r#"{"type":"Feature","geometry":{"type":"Point","coordinates":[118.3,35.0]},
                   "properties":{"name":"新险情","type":"flood","status":"reported","reported_at":"2026-07-12T23:00:00Z"}}"#,
            )
            .send(),
    )
    .await
    .expect("a write answers while slow readers stall")
    .expect("answers");
    assert_eq!(write.status(), 201);
    // And a page read whole is whole: every feature once. It is read in
    // chunks, so the write committed meanwhile may be in it (at its end,
    // by id), as with any cursor that does not hold a snapshot.
    let mut first = stalled.remove(0);
    let mut body = Vec::new();
    while let Some(chunk) = first.chunk().await.expect("reads") {
        body.extend_from_slice(&chunk);
    }
    let page: serde_json::Value = serde_json::from_slice(&body).expect("a whole JSON page");
    let ids: Vec<i64> = page["features"]
        .as_array()
        .map(|fs| fs.iter().filter_map(|f| f["id"].as_i64()).collect())
        .unwrap_or_default();
    let unique: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no feature twice");
    assert!(
        (1..=8000).all(|id| unique.contains(&id)),
        "every stored feature"
    );
    assert!(ids.len() == 8000 || ids.len() == 8001, "{}", ids.len());
}

#[tokio::test]
async fn a_star_of_8000_vertices_is_stored_and_tiled_while_health_answers() {
    let app = spawn_app(false).await;
    let token = app.token(Role::Planner).await;
    let ring: Vec<[f64; 2]> = (0..=8_000)
        .map(|i| {
            let a = (i % 8_000) as f64 * std::f64::consts::PI / 4_000.0;
            let r = if i % 2 == 0 { 0.05 } else { 0.02 };
            [118.3 + r * a.cos(), 35.0 + r * a.sin()]
        })
        .collect();
    let body = serde_json::json!({
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"name": "星形风险区", "risk_level": "high"},
    });
    let post = app
        .client
        .post(app.url("/ogc/collections/flood_zones/items"))
        .bearer_auth(&token)
        .header("content-type", "application/geo+json")
        .body(body.to_string())
        .send();
    // While it is checked and stored, health answers at once (its ring
    // check is CPU work, done off the async workers).
    let during = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        healthy(&app).await;
    };
    let (r, ()) = tokio::join!(post, during);
    let r = r.expect("answers");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    // Its tile is cut without exhausting a worker's stack (geo's recursive
    // simplification aborted the process here), and health still answers.
    let tile = app.get("/tiles/flood_zones/10/848/405.mvt").await;
    assert!(tile.status().is_success(), "{}", tile.status());
    healthy(&app).await;
}
