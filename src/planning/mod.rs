//! Shelter planning: who is covered by the shelters today, who is not,
//! and where the next shelters should go, by the Chinese standards and
//! away from the hazards.
//!
//! Plain functions over plain data do the work — [`demand`] (population
//! points and a radius grid), [`coverage`] (who goes to which shelter),
//! [`exclusions`] (flood zones, hazard radii), [`siting`] (the map's
//! question as a solver instance), [`solve`] (the solvers), [`explicit`]
//! (an instance the planner brings), [`scenarios`] and [`report`]; the
//! handlers in [`api`] only parse and shape.

pub mod api;
pub mod coverage;
pub mod data;
pub mod demand;
pub mod exclusions;
pub mod explicit;
pub mod report;
pub mod scenarios;
pub mod siting;
pub mod solve;
pub mod standards;

use axum::{
    routing::{get, post},
    Router,
};

use crate::{error::AppError, store::StoreError, AppState};

/// The layers planning reads whole (demand, shelters, exclusions): a node
/// always holds them, whatever their size.
pub fn held_layers(settings: &crate::settings::PlanningSettings) -> Vec<String> {
    vec![
        settings.population_layer.clone(),
        settings.shelters_layer.clone(),
        data::FLOOD_ZONES.to_owned(),
        data::HAZARDS.to_owned(),
    ]
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/planning/coverage", get(api::coverage))
        .route("/api/planning/siting", post(api::siting))
        .route(
            "/api/planning/scenarios",
            post(api::save_scenario).get(api::list_scenarios),
        )
        .route("/api/planning/scenarios/{id}", get(api::show_scenario))
        .route(
            "/api/planning/scenarios/{id}/compare",
            get(api::compare_scenarios),
        )
        .route("/api/planning/scenarios/{id}/report", get(api::report))
        .route(
            "/api/planning/scenarios/{id}/sites.geojson",
            get(api::sites_geojson),
        )
}

/// Why a planning request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlanningError {
    /// A field of the request is wrong (400), named in the message.
    #[error("`{field}` {detail}")]
    Invalid { field: String, detail: String },
    #[error("{what} not found")]
    NotFound { what: String },
    /// Every solver slot is taken (503): planning runs are seconds of
    /// CPU each and must not starve the map.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PlanningError {
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            detail: detail.into(),
        }
    }
}

impl From<crate::request::FieldError> for PlanningError {
    fn from(e: crate::request::FieldError) -> Self {
        Self::Invalid {
            field: e.field,
            detail: e.detail,
        }
    }
}

impl From<solve::SolveError> for PlanningError {
    fn from(e: solve::SolveError) -> Self {
        match e {
            solve::SolveError::Invalid { field, detail } => Self::invalid(field, detail),
        }
    }
}

impl From<PlanningError> for AppError {
    fn from(e: PlanningError) -> Self {
        match e {
            e @ PlanningError::Invalid { .. } => AppError::BadRequest(e.to_string()),
            PlanningError::NotFound { what } => AppError::NotFound { what },
            PlanningError::Busy(what) => AppError::Unavailable(what),
            PlanningError::Store(s) => s.into(),
        }
    }
}
