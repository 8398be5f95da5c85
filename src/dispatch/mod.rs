//! Flood and disaster dispatch: incidents and their lifecycle, the teams
//! that can go and how long they need, race-free assignments, supplies
//! from the nearest depots, the hazards around, and the summary the wall
//! display is built on.
//!
//! Incidents are features of `incidents`, teams of `rescue_teams`, depots
//! of `supply_depots`: dispatch reads them from the index and writes them
//! through [`Store::edit`](crate::store::Store::edit), whose transaction
//! decides every race (a team still standby, stock still enough), so the
//! answer is the same with one node or many on one database.

pub mod hazards;
pub mod incidents;
pub mod input;
pub mod nearest;
pub mod recommend;
pub mod summary;
pub mod supplies;
pub mod teams;
pub mod travel;

use axum::{
    routing::{delete, get, patch, post},
    Router,
};
use serde_json::{Map, Value};

use crate::{error::AppError, store::StoreError, AppState};

pub const INCIDENTS: &str = "incidents";
pub const TEAMS: &str = "rescue_teams";
pub const DEPOTS: &str = "supply_depots";
pub const HAZARDS: &str = "hazard_sources";
/// The layers dispatch reads whole (lists, stock, summaries, the district
/// outline): a node always holds them, whatever their size, so no answer
/// is computed over a layer it cannot see.
pub const HELD: &[&str] = &[INCIDENTS, TEAMS, DEPOTS, HAZARDS, "districts"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/incidents",
            post(incidents::create).get(incidents::list),
        )
        .route(
            "/api/incidents/{id}",
            get(incidents::show).patch(incidents::set_status),
        )
        .route("/api/incidents/{id}/recommendation", get(recommend::show))
        .route("/api/incidents/{id}/assignments", post(incidents::assign))
        .route(
            "/api/incidents/{id}/assignments/{team_id}",
            delete(incidents::recall),
        )
        .route("/api/teams/{id}/status", patch(teams::set_status))
        .route("/api/teams/{id}/position", patch(teams::set_position))
        .route("/api/nearest", get(nearest::find))
        .route("/api/supplies/items", get(supplies::items))
        .route("/api/supplies/plan", get(supplies::plan))
        .route("/api/supplies/reservations", post(supplies::reserve))
        .route("/api/supplies/reservations/{id}", delete(supplies::release))
        .route("/api/hazards/near", get(hazards::near))
        .route("/api/hazards/{id}/exposure", get(hazards::exposure))
        .route("/api/summary", get(summary::show))
}

/// Why a dispatch request was refused.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("{what} not found")]
    NotFound { what: String },
    /// A field of the request is wrong (400), named in the message.
    #[error("`{field}` {detail}")]
    Invalid { field: String, detail: String },
    /// The state of the one map does not allow it (409): a busy team, a
    /// wrong status transition, stock taken meanwhile. `extra` names the
    /// state found (`team_status`, `current_status`, …).
    #[error("{detail}")]
    Conflict {
        detail: String,
        extra: Map<String, Value>,
    },
    /// Another writer changed what this action was computed from; the
    /// handler recomputes and retries.
    #[error("changed meanwhile")]
    Stale,
    #[error(transparent)]
    Store(StoreError),
}

impl From<crate::request::FieldError> for DispatchError {
    fn from(e: crate::request::FieldError) -> Self {
        Self::Invalid {
            field: e.field,
            detail: e.detail,
        }
    }
}

impl DispatchError {
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn conflict(detail: impl Into<String>, extra: Value) -> Self {
        Self::Conflict {
            detail: detail.into(),
            extra: match extra {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        }
    }

    /// As a refusal an [`Edit`](crate::store::Edit) hands to the store.
    pub fn refusal(self) -> crate::store::Refusal {
        Box::new(self)
    }
}

impl From<StoreError> for DispatchError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused { reason, .. } => match reason.downcast::<DispatchError>() {
                Ok(d) => *d,
                Err(other) => DispatchError::Store(StoreError::Interrupted {
                    context: format!("an edit refused for an unknown reason ({other})"),
                }),
            },
            StoreError::NotFound { layer, id } => DispatchError::NotFound {
                what: format!("{} {id}", what_of(&layer)),
            },
            other => DispatchError::Store(other),
        }
    }
}

impl From<DispatchError> for AppError {
    fn from(e: DispatchError) -> Self {
        match e {
            DispatchError::NotFound { what } => AppError::NotFound { what },
            e @ DispatchError::Invalid { .. } => AppError::BadRequest(e.to_string()),
            DispatchError::Conflict { detail, extra } => AppError::ConflictWith { detail, extra },
            DispatchError::Stale => AppError::ConflictWith {
                detail: "the one map changed while this was being done; try again".into(),
                extra: Map::new(),
            },
            DispatchError::Store(s) => s.into(),
        }
    }
}

/// A layer of the catalog that dispatch needs (an operator's catalog
/// always has the built-in ones; 404 rather than a panic if not).
pub fn layer_def(
    state: &AppState,
    name: &str,
) -> Result<std::sync::Arc<crate::layers::LayerDef>, DispatchError> {
    state
        .catalog
        .get(name)
        .cloned()
        .ok_or_else(|| DispatchError::NotFound {
            what: format!("layer `{name}`"),
        })
}

/// Run a walk of the index on a blocking thread. A walk is short when
/// matches are near, but a filter nothing matches (a capability no team
/// has) visits every feature of the layer: a second at a million teams,
/// which must not hold an async worker and with it every other request.
pub async fn off_workers<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DispatchError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        DispatchError::Store(crate::store::StoreError::Interrupted {
            context: format!("a search of the index ({e})"),
        })
    })
}

/// What a layer's features are called in messages.
pub fn what_of(layer: &str) -> &str {
    match layer {
        INCIDENTS => "incident",
        TEAMS => "team",
        DEPOTS => "supply depot",
        HAZARDS => "hazard source",
        other => other,
    }
}

/// The time now as the store writes date-times (RFC 3339 UTC, ms).
pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A feature as the API answers it (RFC 7946).
pub fn feature_json(f: &crate::layers::Feature) -> Value {
    serde_json::to_value(f.to_geojson()).unwrap_or(Value::Null)
}

/// The string property `key` of a feature.
pub fn text<'a>(f: &'a crate::layers::Feature, key: &str) -> Option<&'a str> {
    f.properties.get(key).and_then(Value::as_str)
}

/// The strings of an array property.
pub fn strings<'a>(f: &'a crate::layers::Feature, key: &str) -> Vec<&'a str> {
    f.properties
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A caller allowed to dispatch (a `dispatcher` or `admin` token), decided
/// from the headers alone, before the body is read.
pub struct Dispatcher(pub crate::auth::Caller);

impl Dispatcher {
    pub fn actor(&self) -> String {
        self.0.actor()
    }
}

impl axum::extract::FromRequestParts<AppState> for Dispatcher {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = crate::auth::Caller::from_request_parts(parts, state).await?;
        caller.require_editor(crate::layers::LayerGroup::Operational, "dispatch")?;
        Ok(Self(caller))
    }
}
