//! What only the PostgreSQL store has (run in the PostGIS pass alone, see
//! `POSTGIS_TESTS` in the Makefile): commits announced to every node, seqs
//! that commit in order without gaps under concurrent writers on several
//! nodes, and tables that GDAL reads as PostGIS layers.

use std::{sync::Arc, time::Duration};

use onemap::store::{self, Query};
use serde_json::json;

use crate::helpers::{feature, spawn_app, spawn_node};

#[tokio::test]
async fn a_commit_on_one_node_is_announced_to_every_other() {
    let app = spawn_app(false).await;
    let other = store::open(&app.database)
        .await
        .expect("a second node's store");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    other.listen(Arc::new(move |seq| {
        let _ = tx.send(seq);
    }));
    // The listener wakes once when it connects (it may have missed some).
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(first.ok().flatten(), Some(0));
    let layer = app.catalog.get("rescue_teams").expect("teams");
    let written = app
        .store
        .insert(
            layer,
            &[feature(
                geo::Point::new(118.3, 35.0),
                json!({"name": "通知测试", "team_type": "professional_fire", "status": "standby", "headcount": 5}),
            )],
            "test",
        )
        .await
        .expect("stored");
    let announced = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .expect("announced within a second");
    assert_eq!(announced, Some(written.change.seq));
    other.close().await;
}

#[tokio::test]
async fn seqs_commit_in_order_without_gaps_across_nodes() {
    let a = Arc::new(spawn_app(false).await);
    let b = Arc::new(spawn_node(&a).await);
    let layer = Arc::new(a.catalog.get("rescue_teams").expect("teams").clone());
    let writers: Vec<_> = (0..40)
        .map(|i| {
            let node = Arc::clone(if i % 2 == 0 { &a } else { &b });
            let layer = Arc::clone(&layer);
            tokio::spawn(async move {
                let f = feature(
                    geo::Point::new(118.3 + f64::from(i) * 1e-3, 35.0),
                    json!({"name": format!("队{i}"), "team_type": "professional_fire", "status": "standby", "headcount": 5}),
                );
                node.store
                    .insert(&layer, &[f], "test")
                    .await
                    .expect("stored")
                    .change
                    .seq
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for w in writers {
        seqs.push(w.await.expect("joined"));
    }
    seqs.sort_unstable();
    let log: Vec<i64> = a
        .store
        .changes_since(0, 1_000)
        .await
        .expect("the log")
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(log, (1..=40).collect::<Vec<i64>>(), "gap-free from 1");
    assert_eq!(seqs, log, "each write got its own seq");
    // Both nodes' indexes hold all forty.
    for node in [&a, &b] {
        let mut n = 0;
        for _ in 0..50 {
            n = node
                .get_json("/ogc/collections/rescue_teams/items?limit=1")
                .await["numberMatched"]
                .as_u64()
                .unwrap_or(0);
            if n == 40 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(n, 40);
    }
    assert_eq!(
        a.store
            .count(&layer, &Query::default())
            .await
            .expect("count"),
        40
    );
}

#[tokio::test]
async fn gdal_reads_the_layers_as_postgis_tables() {
    let app = spawn_app(true).await;
    // The test's schema is the first of the URL's search_path.
    let schema = app
        .database
        .split("search_path%3D")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("a schema")
        .to_owned();
    let url = crate::helpers::postgres_url();
    let dbname = url.rsplit('/').next().unwrap_or_default().to_owned();
    let out = tokio::process::Command::new("ogrinfo")
        .args(["-ro", "-so", "-nomd"])
        .arg(format!(
            "PG:host=127.0.0.1 port=5432 user=postgres dbname={dbname} active_schema={schema}"
        ))
        .arg("rescue_teams")
        .output()
        .await
        .expect("ogrinfo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Geometry: Point"), "{text}");
    let count = app
        .store
        .count(
            app.catalog.get("rescue_teams").expect("teams"),
            &Query::default(),
        )
        .await
        .expect("count");
    assert!(
        text.contains(&format!("Feature Count: {count}")),
        "{count}: {text}"
    );
    assert!(
        text.contains("EPSG\",4326") || text.contains("EPSG:4326") || text.contains("WGS 84"),
        "{text}"
    );
    assert!(text.contains("headcount: Integer64"), "{text}");
}
