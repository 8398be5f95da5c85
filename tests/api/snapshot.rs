//! The index snapshot beside the GeoPackage: a restart reads it instead of
//! every row, picks up what was written while the server was down (by
//! onemap or another program), and refuses a snapshot of another history
//! or a damaged one, reading the rows instead.

use serde_json::{json, Value};

use crate::helpers::{feature, spawn_app, spawn_app_in, TestApp};

/// Ids and names of `layer`'s items, and the tile the index cuts.
async fn seen(app: &TestApp, layer: &str) -> (Vec<(i64, String)>, Vec<u8>) {
    let page = app
        .get_json(&format!("/ogc/collections/{layer}/items?limit=10000"))
        .await;
    let items = page["features"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    (
                        f["id"].as_i64().unwrap_or_default(),
                        f["properties"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let tile = app
        .get(&format!("/tiles/{layer}/12/3394/1628.mvt"))
        .await
        .bytes()
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    (items, tile)
}

fn origin(health: &Value) -> (&str, i64) {
    (
        health["index"]["source"].as_str().unwrap_or_default(),
        health["index"]["seq"].as_i64().unwrap_or(-1),
    )
}

fn teams(n: usize, prefix: &str) -> Vec<onemap::layers::Feature> {
    (0..n)
        .map(|i| {
            feature(
                geo::point! { x: 118.25 + (i % 40) as f64 * 0.002, y: 35.0 + (i / 40) as f64 * 0.002 },
                json!({"name": format!("{prefix}{i}"), "team_type": "militia", "status": "standby",
                       "headcount": i % 30, "capabilities": ["flood_pumping"]}),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_restart_reads_the_snapshot_and_then_what_changed_while_down() {
    let app = spawn_app(false).await;
    assert_eq!(origin(&app.get_json("/healthz").await).0, "store");
    app.insert("rescue_teams", &teams(500, "甲")).await;
    // Written through the store, not the server: the feed applies it.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let before = seen(&app, "rescue_teams").await;
    assert_eq!(before.0.len(), 500);
    let snapshot = app.db_path.with_extension("gpkg.index");
    let dir = app.stop().await;
    assert!(snapshot.exists(), "the stop wrote {}", snapshot.display());

    // Restarted: the same answers, from the snapshot.
    let app = spawn_app_in(dir, false).await;
    let health = app.get_json("/healthz").await;
    assert_eq!(origin(&health).0, "snapshot", "{health}");
    assert_eq!(seen(&app, "rescue_teams").await, before);

    // Written while the server is down, by another connection: the log
    // carries it, and the next start applies it on top of the snapshot.
    let dir = app.stop().await;
    let catalog = onemap::layers::Catalog::builtin().expect("catalog");
    let layer = catalog.get("rescue_teams").expect("teams");
    let reopened = onemap::store::open(&format!(
        "sqlite://{}",
        dir.path().join("onemap.gpkg").display()
    ))
    .await
    .expect("reopened");
    reopened
        .insert(layer, &teams(40, "乙"), "qgis")
        .await
        .expect("written while the server is down");
    let first_removed = before.0[0].0;
    reopened
        .delete(layer, first_removed, "qgis", None)
        .await
        .expect("deleted while down");
    reopened.close().await;
    let app = spawn_app_in(dir, false).await;
    let health = app.get_json("/healthz").await;
    assert_eq!(origin(&health).0, "snapshot", "{health}");
    let after = seen(&app, "rescue_teams").await;
    assert_eq!(
        after.0.len(),
        500 + 40 - 1,
        "the changes since the snapshot are applied"
    );
    assert!(after.0.iter().all(|(id, _)| *id != first_removed));
    assert_eq!(
        after.0.iter().filter(|(_, n)| n.starts_with('乙')).count(),
        40
    );
    app.stop().await;
}

#[tokio::test]
async fn a_snapshot_of_another_history_or_damaged_is_refused_and_rebuilt() {
    let app = spawn_app(false).await;
    app.insert("rescue_teams", &teams(300, "甲")).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let snapshot = app.db_path.with_extension("gpkg.index");
    let db = app.db_path.clone();
    let dir = app.stop().await;
    let kept = std::fs::read(&snapshot).expect("a snapshot");

    // The GeoPackage replaced by another one (the snapshot stays): the
    // other file's log does not have the snapshot's change.
    std::fs::remove_file(&db).expect("removed");
    for extra in ["gpkg-wal", "gpkg-shm"] {
        let _ = std::fs::remove_file(db.with_extension(extra));
    }
    let app = spawn_app_in(dir, false).await;
    let health = app.get_json("/healthz").await;
    assert_eq!(origin(&health).0, "store", "{health}");
    assert!(
        health["index"]["snapshot_refused"]
            .as_str()
            .is_some_and(|r| r.contains("history")),
        "{health}"
    );
    assert_eq!(
        seen(&app, "rescue_teams").await.0.len(),
        0,
        "nothing of the old file"
    );
    let dir = app.stop().await;

    // A damaged snapshot of the right history: refused by its checksum.
    let app = spawn_app_in(dir, false).await;
    app.insert("rescue_teams", &teams(30, "丙")).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let dir = app.stop().await;
    let mut bytes = std::fs::read(&snapshot).expect("a snapshot");
    assert_ne!(bytes, kept);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&snapshot, &bytes).expect("damaged");
    let app = spawn_app_in(dir, false).await;
    let health = app.get_json("/healthz").await;
    assert_eq!(origin(&health).0, "store", "{health}");
    assert!(
        health["index"]["snapshot_refused"]
            .as_str()
            .is_some_and(|r| r.contains("damaged")),
        "{health}"
    );
    assert_eq!(seen(&app, "rescue_teams").await.0.len(), 30);
    app.stop().await;
}
