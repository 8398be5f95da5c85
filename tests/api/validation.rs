//! Every write is validated: each kind of bad feature is refused with an
//! error naming the feature and the field, and the store is left unchanged.

use onemap::{
    layers::Feature,
    store::{Query, StoreError},
};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

fn feature(geometry: impl Into<geo::Geometry<f64>>, props: Value) -> Feature {
    Feature::new(geometry, props.as_object().cloned().unwrap_or_default())
}

fn team(props: Value) -> Feature {
    feature(geo::point! { x: 118.3, y: 35.0 }, props)
}

fn good_team() -> Value {
    json!({"name": "罗庄区水上救援队", "team_type": "water_rescue", "status": "standby", "headcount": 20})
}

fn with(key: &str, value: Value) -> Value {
    let mut p = good_team();
    p[key] = value;
    p
}

/// Insert `[good, bad, good]` and expect a refusal naming feature #1 and
/// `field`, with nothing stored.
async fn refused(app: &TestApp, layer: &str, bad: Feature, good: Feature, field: &str) -> String {
    let layer = app.catalog.get(layer).expect("layer").clone();
    let before = app
        .store
        .count(&layer, &Query::default())
        .await
        .expect("count");
    let result = app
        .store
        .insert(&layer, &[good.clone(), bad, good], "test")
        .await;
    let Err(StoreError::Invalid(errors)) = result else {
        panic!("expected a validation refusal, got {result:?}");
    };
    assert_eq!(errors.violations.len(), 1, "{errors}");
    assert_eq!(errors.violations[0].index, 1, "{errors}");
    assert_eq!(errors.violations[0].field, field, "{errors}");
    let after = app
        .store
        .count(&layer, &Query::default())
        .await
        .expect("count");
    assert_eq!(before, after, "nothing of the batch was stored");
    errors.to_string()
}

#[tokio::test]
async fn wrong_types_unknown_values_and_missing_fields_are_refused() {
    let app = spawn_app(false).await;
    let good = team(good_team());
    let msg = refused(
        &app,
        "rescue_teams",
        team(with("headcount", json!("twenty"))),
        good.clone(),
        "headcount",
    )
    .await;
    assert!(msg.contains("integer"), "{msg}");
    let msg = refused(
        &app,
        "rescue_teams",
        team(with("status", json!("flying"))),
        good.clone(),
        "status",
    )
    .await;
    assert!(
        msg.contains("standby"),
        "the allowed values are listed: {msg}"
    );
    let mut missing = good_team();
    missing.as_object_mut().map(|o| o.remove("team_type"));
    let msg = refused(
        &app,
        "rescue_teams",
        team(missing),
        good.clone(),
        "team_type",
    )
    .await;
    assert!(msg.contains("required"), "{msg}");
    let msg = refused(
        &app,
        "rescue_teams",
        team(with("name", Value::Null)),
        good.clone(),
        "name",
    )
    .await;
    assert!(msg.contains("required"), "{msg}");
    refused(
        &app,
        "rescue_teams",
        team(with("capabilities", json!(["teleport"]))),
        good.clone(),
        "capabilities[0]",
    )
    .await;
    refused(
        &app,
        "rescue_teams",
        team(with("radio", json!("ch-7"))),
        good,
        "radio",
    )
    .await;
}

#[tokio::test]
async fn coordinates_out_of_range_or_not_finite_are_refused() {
    let app = spawn_app(false).await;
    let good = team(good_team());
    for (x, y, says) in [
        (190.0, 35.0, "longitude"),
        (118.3, -95.0, "latitude"),
        (f64::NAN, 35.0, "finite"),
        (118.3, f64::INFINITY, "finite"),
        (f64::NEG_INFINITY, 35.0, "finite"),
    ] {
        let bad = feature(geo::point! { x: x, y: y }, good_team());
        let msg = refused(&app, "rescue_teams", bad, good.clone(), "geometry").await;
        assert!(msg.contains(says), "{msg}");
    }
}

#[tokio::test]
async fn wrong_geometry_types_and_self_crossing_rings_are_refused() {
    let app = spawn_app(false).await;
    let square = geo::Polygon::new(
        geo::LineString::from(vec![
            (118.30, 35.0),
            (118.31, 35.0),
            (118.31, 35.01),
            (118.30, 35.01),
            (118.30, 35.0),
        ]),
        vec![],
    );
    let msg = refused(
        &app,
        "rescue_teams",
        feature(square.clone(), good_team()),
        team(good_team()),
        "geometry",
    )
    .await;
    assert!(msg.contains("Point"), "{msg}");

    let zone = json!({"name": "z", "risk_level": "high", "kind": "low_lying"});
    let bowtie = geo::Polygon::new(
        geo::LineString::from(vec![
            (118.30, 35.0),
            (118.31, 35.01),
            (118.31, 35.0),
            (118.30, 35.01),
            (118.30, 35.0),
        ]),
        vec![],
    );
    let msg = refused(
        &app,
        "flood_zones",
        feature(bowtie, zone.clone()),
        feature(square, zone),
        "geometry",
    )
    .await;
    assert!(msg.contains("crosses"), "{msg}");
}

#[tokio::test]
async fn a_valid_batch_is_stored_whole_and_reads_back_normalised() {
    let app = spawn_app(false).await;
    let layer = app.catalog.get("incidents").expect("incidents").clone();
    let f = feature(
        geo::point! { x: 118.3, y: 35.0 },
        json!({"name": "涑河漫堤", "type": "flood", "status": "reported",
               "reported_at": "2026-07-12T22:15:00+08:00", "description": "line one\nline \"two\" \\ three"}),
    );
    let ids = app
        .store
        .insert(&layer, &[f.clone(), f], "test")
        .await
        .expect("stored")
        .ids;
    assert_eq!(ids.len(), 2);
    let back = app
        .store
        .feature(&layer, ids[1])
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(back.properties["reported_at"], "2026-07-12T14:15:00.000Z");
    assert_eq!(
        back.properties["description"],
        "line one\nline \"two\" \\ three"
    );
    assert_eq!(
        back.geometry,
        geo::Geometry::Point(geo::point! { x: 118.3, y: 35.0 })
    );
}

#[tokio::test]
async fn empty_names_nul_characters_and_huge_texts_are_refused() {
    let app = spawn_app(false).await;
    let good = team(good_team());
    for (bad, why) in [
        (json!(""), "empty"),
        (json!("   "), "empty"),
        (json!("救援队\u{0}隐藏"), "NUL"),
        (json!("x".repeat(70_000)), "at most"),
    ] {
        let msg = refused(
            &app,
            "rescue_teams",
            team(with("name", bad)),
            good.clone(),
            "name",
        )
        .await;
        assert!(msg.contains(why), "{msg}");
    }
    // Through HTTP too: a 422 problem naming the field.
    let token = app.token(onemap::auth::Role::Dispatcher).await;
    let r = app
        .client
        .post(app.url("/ogc/collections/rescue_teams/items"))
        .bearer_auth(&token)
        .header("content-type", "application/geo+json")
        .body(
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.3, 35.0]},
                   "properties": with("name", json!("a\u{0}b"))})
            .to_string(),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(r.text().await.unwrap_or_default().contains("NUL"));
}
