//! The store contract of `Store::edit`, called directly: all or nothing
//! across layers, refusals handed back, unchanged edits write nothing, and
//! one logged change with the other layers and the action.

use std::sync::Arc;

use onemap::store::{Edit, StoreError};
use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[derive(Debug, thiserror::Error)]
#[error("no")]
struct No;

#[tokio::test]
async fn an_edit_of_two_layers_is_one_change_and_a_refusal_writes_nothing() {
    let app = spawn_app(true).await;
    let teams = Arc::clone(app.catalog.get("rescue_teams").expect("teams"));
    let incidents = Arc::clone(app.catalog.get("incidents").expect("incidents"));
    let seq = app.store.last_seq().await.expect("seq");
    let written = app
        .store
        .edit(
            vec![
                Edit::new(&teams, 1, |f| {
                    f.properties.insert("headcount".into(), json!(77));
                    Ok(())
                }),
                Edit::new(&incidents, 1, |f| {
                    f.properties.insert("description".into(), json!("改"));
                    Ok(())
                }),
            ],
            "tester",
            Some(json!({"kind": "test"})),
        )
        .await
        .expect("written")
        .expect("something changed");
    let c = &written.change;
    assert_eq!((c.layer.as_str(), c.ids.clone()), ("rescue_teams", vec![1]));
    assert_eq!(c.also.len(), 1);
    assert_eq!(
        (c.also[0].layer.as_str(), c.also[0].ids.clone()),
        ("incidents", vec![1])
    );
    assert_eq!(c.action, Some(json!({"kind": "test"})));
    assert_eq!(
        app.store.last_seq().await.expect("seq"),
        seq + 1,
        "one change"
    );

    // A refusal by the second edit: the first is not written either.
    let r = app
        .store
        .edit(
            vec![
                Edit::new(&teams, 1, |f| {
                    f.properties.insert("headcount".into(), json!(1));
                    Ok(())
                }),
                Edit::new(&incidents, 1, |_| Err(Box::new(No))),
            ],
            "tester",
            None,
        )
        .await;
    match r {
        Err(StoreError::Refused { layer, id, reason }) => {
            assert_eq!((layer.as_str(), id), ("incidents", 1));
            assert!(
                reason.downcast::<No>().is_ok(),
                "the caller's own error comes back"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let team = app
        .store
        .feature(&teams, 1)
        .await
        .expect("read")
        .expect("team 1");
    assert_eq!(
        team.properties["headcount"], 77,
        "nothing of a refused edit is written"
    );
    // An invalid result and a missing feature: refused, nothing written.
    let r = app
        .store
        .edit(
            vec![Edit::new(&teams, 1, |f| {
                f.properties.insert("status".into(), json!("napping"));
                Ok(())
            })],
            "tester",
            None,
        )
        .await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    let r = app
        .store
        .edit(vec![Edit::new(&teams, 999_999, |_| Ok(()))], "tester", None)
        .await;
    assert!(
        matches!(r, Err(StoreError::NotFound { id: 999_999, .. })),
        "{r:?}"
    );
    // Nothing changed: nothing logged.
    let r = app
        .store
        .edit(vec![Edit::new(&teams, 1, |_| Ok(()))], "tester", None)
        .await;
    assert!(matches!(r, Ok(None)), "{r:?}");
    assert_eq!(app.store.last_seq().await.expect("seq"), seq + 1);
    // The audit trail keeps both layers' images.
    let audit = app
        .store
        .audit(&onemap::store::AuditQuery {
            layer: Some("incidents".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("audit");
    let e = &audit[0];
    assert_eq!(e.change.seq, seq + 1);
    assert_eq!(
        e.change.also[0]
            .after
            .as_ref()
            .and_then(|a| a[0].get("description").cloned()),
        Some(Value::from("改"))
    );
}
