//! Supplies: which depots can send how much of an item, and reservations
//! that take stock in one transaction, never below zero.

use std::{
    collections::BTreeMap,
    ops::ControlFlow,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    Json,
};
use serde_json::{json, Value};

use super::{
    feature_json,
    incidents::{commit, incident, records_mut, OPEN},
    input,
    nearest::round1,
    now, text,
    travel::Travel,
    DispatchError, Dispatcher, DEPOTS, INCIDENTS,
};
use crate::{error::AppError, index::SpatialIndex, layers::Feature, store::Edit, AppState};

/// An item the district stocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub name: Option<String>,
    pub unit: Option<String>,
    /// In the depots now (reserved stock has left them).
    pub available: f64,
}

/// Quantity of `item` in a depot's inventory.
pub fn stock(depot: &Feature, item: &str) -> f64 {
    depot
        .properties
        .get("inventory")
        .and_then(Value::as_array)
        .and_then(|inv| {
            inv.iter()
                .find(|r| r.get("item").and_then(Value::as_str) == Some(item))
        })
        .and_then(|r| r.get("quantity").and_then(Value::as_f64))
        .unwrap_or(0.0)
}

/// Every item any depot records, with its stock in all.
pub fn catalog(state: &AppState) -> BTreeMap<String, Item> {
    state.index.each(DEPOTS, |all| {
        let mut items = BTreeMap::new();
        for e in all {
            add_stock(&mut items, &e.feature());
        }
        items
    })
}

/// Count a depot's inventory into `items`.
pub fn add_stock(items: &mut BTreeMap<String, Item>, depot: &Feature) {
    let inventory = depot.properties.get("inventory").and_then(Value::as_array);
    for r in inventory.into_iter().flatten() {
        let Some(item) = r.get("item").and_then(Value::as_str) else {
            continue;
        };
        let entry = items.entry(item.to_owned()).or_insert(Item {
            name: None,
            unit: None,
            available: 0.0,
        });
        entry.available += r.get("quantity").and_then(Value::as_f64).unwrap_or(0.0);
        let field = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
        entry.name = entry.name.take().or_else(|| field("name"));
        entry.unit = entry.unit.take().or_else(|| field("unit"));
    }
}

pub fn known_item(
    known: &BTreeMap<String, Item>,
    field: &str,
    item: &str,
) -> Result<(), DispatchError> {
    // Not echoed whole: a megabyte of item name makes a megabyte of error.
    if item.chars().count() > 64 {
        return Err(DispatchError::invalid(
            field,
            "is longer than any item code (64 characters)",
        ));
    }
    if known.contains_key(item) {
        Ok(())
    } else {
        Err(DispatchError::invalid(
            field,
            format!(
                "names no item any depot stocks (`{item}`; items: {})",
                known.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ))
    }
}

/// `GET /api/supplies/items`
pub async fn items(State(state): State<AppState>) -> Json<Value> {
    let items: Vec<Value> = catalog(&state)
        .into_iter()
        .map(|(item, i)| json!({ "item": item, "name": i.name, "unit": i.unit, "total": i.available }))
        .collect();
    Json(json!({ "items": items }))
}

/// One depot's part of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub depot_id: i64,
    pub name: Option<String>,
    pub quantity: f64,
    pub available: f64,
    pub distance_m: f64,
    pub eta_min: f64,
}

/// Nearest depots first, each giving what it has until `quantity` is met;
/// the shortfall is what the whole district lacks.
pub fn plan_for(
    index: &SpatialIndex,
    travel: &Travel<'_>,
    p: [f64; 2],
    item: &str,
    quantity: f64,
) -> (Vec<Line>, f64) {
    let mut lines = Vec::new();
    let mut left = quantity;
    index.nearest(DEPOTS, p, f64::INFINITY, |e, d| {
        if left <= 0.0 {
            return ControlFlow::Break(());
        }
        let available = stock(&e.feature(), item);
        if available > 0.0 {
            let take = available.min(left);
            left -= take;
            lines.push(Line {
                depot_id: e.id(),
                name: e.name().map(str::to_owned),
                quantity: take,
                available,
                distance_m: d,
                eta_min: travel.eta_min(d, None),
            });
        }
        ControlFlow::Continue(())
    });
    (lines, left.max(0.0))
}

/// `GET /api/supplies/plan?lon=&lat=&item=&quantity=`
pub async fn plan(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AppError> {
    let q = input::Params::parse(raw.as_deref(), &["lon", "lat", "crs", "item", "quantity"])?;
    let p = input::point(&q)?;
    let item = q
        .get("item")
        .ok_or_else(|| DispatchError::invalid("item", "is required"))?;
    known_item(&catalog(&state), "item", item)?;
    let quantity = input::quantity("quantity", &json!(q.required_number("quantity")?))?;
    let travel = Travel::new(&state.settings.dispatch);
    let (lines, shortfall) = plan_for(&state.index, &travel, p, item, quantity);
    Ok(Json(json!({
        "item": item,
        "quantity": quantity,
        "lines": lines.iter().map(|l| json!({
            "depot_id": l.depot_id, "name": l.name, "quantity": l.quantity,
            "available": l.available, "distance_m": round1(l.distance_m), "eta_min": round1(l.eta_min),
        })).collect::<Vec<_>>(),
        "covered": shortfall <= 0.0,
        "shortfall": shortfall,
    })))
}

/// Take `q` of `item` from a depot's inventory, refusing to go below zero.
pub fn take(depot: &mut Feature, item: &str, q: f64) -> Result<(), DispatchError> {
    let id = depot.id.unwrap_or_default();
    let inventory = records_mut(depot, "inventory");
    let record = inventory
        .iter_mut()
        .find(|r| r.get("item").and_then(Value::as_str) == Some(item));
    let available = record
        .as_ref()
        .and_then(|r| r.get("quantity").and_then(Value::as_f64))
        .unwrap_or(0.0);
    if available < q {
        return Err(DispatchError::conflict(
            format!("depot {id} has {available} of `{item}`, not {q}: nothing was reserved"),
            json!({ "depot_id": id, "item": item, "available": available, "requested": q }),
        ));
    }
    if let Some(Value::Object(r)) = record {
        r.insert("quantity".into(), json!(available - q));
    }
    Ok(())
}

/// Give `q` of `item` back to a depot.
pub fn give_back(depot: &mut Feature, item: &str, q: f64) {
    let inventory = records_mut(depot, "inventory");
    match inventory
        .iter_mut()
        .find(|r| r.get("item").and_then(Value::as_str) == Some(item))
    {
        Some(Value::Object(r)) => {
            let had = r.get("quantity").and_then(Value::as_f64).unwrap_or(0.0);
            r.insert("quantity".into(), json!(had + q));
        }
        _ => inventory.push(json!({ "item": item, "quantity": q })),
    }
}

/// `POST /api/supplies/reservations` `{"incident_id", "item", "lines": [{"depot_id", "quantity"}]}`
pub async fn reserve(
    State(state): State<AppState>,
    who: Dispatcher,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let body = input::object(&body)?;
    input::only(&body, &["incident_id", "item", "lines"])?;
    let incident_id = input::id(
        "incident_id",
        body.get("incident_id").unwrap_or(&Value::Null),
    )?;
    let item = input::opt_text(&body, "item")?
        .ok_or_else(|| DispatchError::invalid("item", "is required"))?;
    known_item(&catalog(&state), "item", &item)?;
    let lines = body.get("lines").and_then(Value::as_array).ok_or_else(|| {
        DispatchError::invalid("lines", "is required: an array of {depot_id, quantity}")
    })?;
    if lines.is_empty() || lines.len() > input::MAX_LIST {
        return Err(DispatchError::invalid(
            "lines",
            format!("must hold 1 to {} lines", input::MAX_LIST),
        )
        .into());
    }
    // One take per depot, however the lines repeat it.
    let mut by_depot: BTreeMap<i64, f64> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let at = format!("lines[{i}]");
        let obj = l
            .as_object()
            .ok_or_else(|| DispatchError::invalid(&at, "must be an object"))?;
        let depot = input::id(
            &format!("{at}.depot_id"),
            obj.get("depot_id").unwrap_or(&Value::Null),
        )?;
        let q = input::quantity(
            &format!("{at}.quantity"),
            obj.get("quantity").unwrap_or(&Value::Null),
        )?;
        if state.index.get(DEPOTS, depot).is_none() {
            return Err(DispatchError::NotFound {
                what: format!("supply depot {depot}"),
            }
            .into());
        }
        *by_depot.entry(depot).or_default() += q;
    }
    incident(&state, incident_id)?;
    let incidents = super::layer_def(&state, INCIDENTS)?;
    let depots = super::layer_def(&state, DEPOTS)?;
    let at = now();
    let reservation = Arc::new(Mutex::new(String::new()));
    let mut edits = Vec::new();
    {
        let (item, at, by_depot, reservation) = (
            item.clone(),
            at.clone(),
            by_depot.clone(),
            Arc::clone(&reservation),
        );
        let names: BTreeMap<i64, Option<String>> = by_depot
            .keys()
            .map(|d| {
                (
                    *d,
                    state
                        .index
                        .row(DEPOTS, *d, |e| e.and_then(|e| e.name().map(str::to_owned))),
                )
            })
            .collect();
        edits.push(Edit::new(&incidents, incident_id, move |f| {
            let status = text(f, "status").unwrap_or("").to_owned();
            if !OPEN.contains(&status.as_str()) {
                return Err(DispatchError::conflict(
                    format!("incident {incident_id} is {status}: it takes no more supplies"),
                    json!({ "current_status": status }),
                )
                .refusal());
            }
            let records = records_mut(f, "reservations");
            // Numbered within the incident, under the write lock of the
            // transaction: no two reservations get one id.
            let n = 1 + records
                .iter()
                .filter_map(|r| r.get("id").and_then(Value::as_str))
                .filter_map(|id| id.rsplit('.').next().and_then(|n| n.parse::<u64>().ok()))
                .max()
                .unwrap_or(0);
            let id = format!("{incident_id}.{n}");
            for (depot, q) in &by_depot {
                records.push(json!({
                    "id": id, "item": item, "depot_id": depot,
                    "depot_name": names.get(depot).cloned().flatten(),
                    "quantity": q, "reserved_at": at,
                }));
            }
            *reservation.lock().unwrap_or_else(|e| e.into_inner()) = id;
            Ok(())
        }));
    }
    for (depot, q) in &by_depot {
        let (item, q) = (item.clone(), *q);
        edits.push(Edit::new(&depots, *depot, move |f| {
            take(f, &item, q).map_err(DispatchError::refusal)
        }));
    }
    let action = json!({ "kind": "reservation.create", "incident_id": incident_id, "item": item });
    commit(&state, edits, &who.actor(), action).await?;
    let id = reservation
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "incident_id": incident_id,
            "item": item,
            "reserved_at": at,
            "lines": by_depot.iter().map(|(d, q)| json!({ "depot_id": d, "quantity": q })).collect::<Vec<_>>(),
            "incident": feature_json(&*incident(&state, incident_id)?),
        })),
    ))
}

/// `DELETE /api/supplies/reservations/{id}`: the stock goes back.
pub async fn release(
    State(state): State<AppState>,
    who: Dispatcher,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let not_found = || DispatchError::NotFound {
        what: format!("reservation `{id}`"),
    };
    let incident_id = id
        .split_once('.')
        .and_then(|(i, _)| i.parse::<i64>().ok())
        .ok_or_else(not_found)?;
    let current = incident(&state, incident_id).map_err(|_| not_found())?;
    let open = |r: &Value| {
        r.get("id").and_then(Value::as_str) == Some(id.as_str())
            && r.get("released_at").is_none_or(Value::is_null)
    };
    let lines: Vec<(i64, String, f64)> = current
        .properties
        .get("reservations")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .filter(|r| open(r))
                .filter_map(|r| {
                    Some((
                        r.get("depot_id")?.as_i64()?,
                        r.get("item")?.as_str()?.to_owned(),
                        r.get("quantity")?.as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    if lines.is_empty() {
        return Err(not_found().into());
    }
    let incidents = super::layer_def(&state, INCIDENTS).map_err(|_| not_found())?;
    let depots = super::layer_def(&state, DEPOTS)?;
    let at = now();
    let mut edits = Vec::new();
    {
        let id = id.clone();
        edits.push(Edit::new(&incidents, incident_id, move |f| {
            let mut released = 0;
            for r in records_mut(f, "reservations") {
                let this = r.get("id").and_then(Value::as_str) == Some(id.as_str())
                    && r.get("released_at").is_none_or(Value::is_null);
                if let (true, Some(o)) = (this, r.as_object_mut()) {
                    o.insert("released_at".into(), json!(at));
                    released += 1;
                }
            }
            // Returned by someone else meanwhile: give nothing back twice.
            if released == 0 {
                return Err(DispatchError::NotFound {
                    what: format!("reservation `{id}`"),
                }
                .refusal());
            }
            Ok(())
        }));
    }
    for (depot, item, q) in lines.clone() {
        edits.push(Edit::new(&depots, depot, move |f| {
            give_back(f, &item, q);
            Ok(())
        }));
    }
    let action =
        json!({ "kind": "reservation.delete", "incident_id": incident_id, "reservation_id": id });
    commit(&state, edits, &who.actor(), action).await?;
    Ok(Json(json!({
        "id": id,
        "incident_id": incident_id,
        "returned": lines.iter().map(|(d, item, q)| json!({ "depot_id": d, "item": item, "quantity": q })).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depot(q: f64) -> Feature {
        let mut f = Feature::new(
            geo::Point::new(118.3, 35.0),
            json!({"inventory": [{"item": "sandbags", "quantity": q}, {"item": "pumps", "quantity": 2}]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        f.id = Some(4);
        f
    }

    #[test]
    fn stock_never_goes_below_zero_and_comes_back_whole() {
        let mut d = depot(500.0);
        take(&mut d, "sandbags", 300.0).expect("fits");
        assert_eq!(stock(&d, "sandbags"), 200.0);
        let e = take(&mut d, "sandbags", 201.0).expect_err("does not fit");
        assert!(matches!(e, DispatchError::Conflict { extra, .. } if extra["available"] == 200.0));
        assert_eq!(
            stock(&d, "sandbags"),
            200.0,
            "a refused take changes nothing"
        );
        assert!(
            take(&mut d, "tents", 1.0).is_err(),
            "an item the depot lacks"
        );
        give_back(&mut d, "sandbags", 300.0);
        give_back(&mut d, "tents", 5.0);
        assert_eq!(
            (
                stock(&d, "sandbags"),
                stock(&d, "tents"),
                stock(&d, "pumps")
            ),
            (500.0, 5.0, 2.0)
        );
    }
}
