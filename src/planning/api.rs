//! The planning routes: parse, run the plain functions on a blocking
//! thread (a solve is seconds of CPU), shape the answer.

use std::time::{Duration, Instant};

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;

use super::{
    coverage::coverage as cover,
    data,
    demand::PointGrid,
    explicit, report, scenarios,
    siting::{self, Candidate, Siting, World},
    solve::{Exact, Objective},
    standards::{Category, Figures},
    PlanningError,
};
use crate::{
    auth::Caller,
    error::AppError,
    layers::LayerGroup,
    request::{json_object as object, only_fields as only, Params},
    settings::PlanningSettings,
    AppState,
};

/// Solves that may run at once: each takes a core for up to the time
/// limit, and the map must keep answering beside them.
static SOLVES: Semaphore = Semaphore::const_new(2);
/// Uncovered cells drawn at most (largest first; the count is complete).
pub const MAX_UNCOVERED_CELLS: usize = 20_000;
/// Most ids in `keep` or `exclude`, and most points given as candidates.
pub const MAX_IDS: usize = 10_000;
/// Most new sites one run may propose.
pub const MAX_K: usize = 1_000;
const MAX_NAME_CHARS: usize = 200;

// ------------------------------------------------------------------ input

fn category(v: Option<&str>) -> Result<Category, PlanningError> {
    match v {
        None => Ok(Category::Emergency),
        Some(s) => Category::parse(s).ok_or_else(|| {
            PlanningError::invalid(
                "category",
                format!("must be emergency, fixed or central, got `{s}`"),
            )
        }),
    }
}

fn radius(settings: &PlanningSettings, v: Option<f64>) -> Result<Option<f64>, PlanningError> {
    match v {
        Some(r) if !(r > 0.0 && r <= settings.max_radius_m) => Err(PlanningError::invalid(
            "radius_m",
            format!(
                "must be > 0 and at most {} m, got {r}",
                settings.max_radius_m
            ),
        )),
        other => Ok(other),
    }
}

fn area(v: Option<f64>) -> Result<Option<f64>, PlanningError> {
    match v {
        Some(a) if !(a > 0.0 && a <= 1_000.0) => Err(PlanningError::invalid(
            "area_per_person_m2",
            format!("must be > 0 and at most 1000, got {a}"),
        )),
        other => Ok(other),
    }
}

fn opt_number(body: &Map<String, Value>, key: &str) -> Result<Option<f64>, PlanningError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| PlanningError::invalid(key, "must be a number")),
    }
}

fn opt_bool(body: &Map<String, Value>, key: &str) -> Result<bool, PlanningError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(PlanningError::invalid(key, "must be true or false")),
    }
}

fn objective(body: &Map<String, Value>) -> Result<Objective, PlanningError> {
    match body.get("objective") {
        None | Some(Value::Null) => Ok(Objective::Coverage),
        Some(Value::String(s)) => match s.as_str() {
            "coverage" | "mclp" => Ok(Objective::Coverage),
            "p_median" => Ok(Objective::PMedian),
            "set_cover" => Ok(Objective::SetCover),
            other => Err(PlanningError::invalid(
                "objective",
                format!("must be coverage, p_median or set_cover, got `{other}`"),
            )),
        },
        Some(_) => Err(PlanningError::invalid("objective", "must be a string")),
    }
}

fn exact(body: &Map<String, Value>) -> Result<Exact, PlanningError> {
    match body.get("exact") {
        None | Some(Value::Null) => Ok(Exact::Auto),
        Some(Value::String(s)) if s == "auto" => Ok(Exact::Auto),
        Some(Value::Bool(true)) => Ok(Exact::Always),
        Some(Value::Bool(false)) => Ok(Exact::Never),
        Some(_) => Err(PlanningError::invalid(
            "exact",
            "must be \"auto\", true or false",
        )),
    }
}

/// The longest a run may take: the setting, and never so long that the
/// request's own timeout cuts the answer off (2 s are left to shape it).
fn limit_s(state: &AppState) -> f64 {
    let request = state.settings.request_timeout.as_secs_f64();
    state
        .settings
        .planning
        .time_limit_s
        .min((request - 2.0).max(0.5))
}

fn time_limit(limit: f64, body: &Map<String, Value>) -> Result<Duration, PlanningError> {
    let secs = match opt_number(body, "time_limit_s")? {
        None => limit,
        Some(t) if t > 0.0 && t <= limit => t,
        Some(t) => {
            return Err(PlanningError::invalid(
                "time_limit_s",
                format!("must be > 0 and at most {limit} s, got {t}"),
            ))
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

fn k_of(body: &Map<String, Value>, required: bool) -> Result<usize, PlanningError> {
    match body.get("k") {
        None | Some(Value::Null) if !required => Ok(0),
        None | Some(Value::Null) => Err(PlanningError::invalid("k", "is required")),
        Some(v) => v
            .as_i64()
            .filter(|k| (1..=MAX_K as i64).contains(k))
            .map(|k| k as usize)
            .ok_or_else(|| {
                PlanningError::invalid(
                    "k",
                    format!("must be an integer from 1 to {MAX_K}, got {v}"),
                )
            }),
    }
}

fn ids(body: &Map<String, Value>, key: &str) -> Result<Vec<Value>, PlanningError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) if a.len() <= MAX_IDS => a
            .iter()
            .map(|v| match v {
                Value::Number(_) => Ok(v.clone()),
                Value::String(s) if s.chars().count() <= MAX_NAME_CHARS => Ok(v.clone()),
                _ => Err(PlanningError::invalid(
                    key,
                    "must list candidate ids (numbers or strings)",
                )),
            })
            .collect(),
        Some(_) => Err(PlanningError::invalid(
            key,
            format!("must be an array of at most {MAX_IDS} ids"),
        )),
    }
}

fn lonlat(lon: Option<f64>, lat: Option<f64>, field: &str) -> Result<[f64; 2], PlanningError> {
    match (lon, lat) {
        (Some(x), Some(y)) if (-180.0..=180.0).contains(&x) && (-90.0..=90.0).contains(&y) => {
            Ok([x, y])
        }
        _ => Err(PlanningError::invalid(
            field,
            "needs lon in [-180, 180] and lat in [-90, 90]",
        )),
    }
}

/// Where the candidates come from.
enum Source {
    Layer(String),
    Grid,
    Points(Vec<Candidate>),
}

fn source(body: &Map<String, Value>, capacity: Option<f64>) -> Result<Source, PlanningError> {
    match body.get("candidates") {
        None | Some(Value::Null) => Ok(Source::Grid),
        Some(Value::String(s)) if s == "grid" => Ok(Source::Grid),
        Some(Value::String(s)) => Ok(Source::Layer(s.clone())),
        Some(Value::Array(points)) if points.len() <= MAX_IDS => points
            .iter()
            .enumerate()
            .map(|(n, p)| {
                let field = format!("candidates[{n}]");
                match p {
                    Value::Array(xy) if xy.len() == 2 => Ok(Candidate {
                        id: json!(n + 1),
                        name: None,
                        point: lonlat(xy[0].as_f64(), xy[1].as_f64(), &field)?,
                        capacity,
                    }),
                    Value::Object(o) => {
                        let id = match o.get("id") {
                            None | Some(Value::Null) => json!(n + 1),
                            Some(v @ Value::Number(_)) => v.clone(),
                            Some(v @ Value::String(s)) if s.chars().count() <= MAX_NAME_CHARS => {
                                v.clone()
                            }
                            Some(_) => {
                                return Err(PlanningError::invalid(
                                    &format!("{field}.id"),
                                    "must be a number or a short string",
                                ))
                            }
                        };
                        let cap = match o.get("capacity") {
                            None | Some(Value::Null) => capacity,
                            Some(v) => Some(
                                v.as_f64()
                                    .filter(|c| c.is_finite() && *c >= 0.0)
                                    .ok_or_else(|| {
                                        PlanningError::invalid(
                                            &format!("{field}.capacity"),
                                            "must be a number ≥ 0",
                                        )
                                    })?,
                            ),
                        };
                        Ok(Candidate {
                            id,
                            name: o
                                .get("name")
                                .and_then(Value::as_str)
                                .map(|s| s.chars().take(MAX_NAME_CHARS).collect()),
                            point: lonlat(
                                o.get("lon").and_then(Value::as_f64),
                                o.get("lat").and_then(Value::as_f64),
                                &field,
                            )?,
                            capacity: cap,
                        })
                    }
                    _ => Err(PlanningError::invalid(
                        &field,
                        "must be [lon, lat] or {\"id\", \"lon\", \"lat\"}",
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|c| {
                let mut seen = std::collections::HashSet::new();
                match c.iter().find(|c| !seen.insert(c.id.to_string())) {
                    Some(dup) => Err(PlanningError::invalid(
                        "candidates",
                        format!("lists id {} twice", dup.id),
                    )),
                    None => Ok(Source::Points(c)),
                }
            }),
        Some(_) => Err(PlanningError::invalid(
            "candidates",
            format!("must be \"grid\", a layer name or an array of at most {MAX_IDS} points"),
        )),
    }
}

/// A geographic siting request, parsed.
struct Request {
    siting: Siting,
    source: Source,
    capacity: Option<f64>,
    /// The request as it will be stored with a scenario.
    echo: Value,
}

const SITING_FIELDS: &[&str] = &[
    "k",
    "radius_m",
    "category",
    "candidates",
    "keep",
    "exclude",
    "capacity_aware",
    "capacity",
    "exact",
    "objective",
    "time_limit_s",
    "include_excluded",
    "area_per_person_m2",
];

fn siting_request(
    settings: &PlanningSettings,
    limit: f64,
    body: &Map<String, Value>,
) -> Result<Request, PlanningError> {
    only(body, SITING_FIELDS)?;
    let objective = objective(body)?;
    let k = k_of(body, objective != Objective::SetCover)?;
    let category = category(match body.get("category") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(PlanningError::invalid("category", "must be a string")),
    })?;
    let radius = radius(settings, opt_number(body, "radius_m")?)?;
    let area = area(opt_number(body, "area_per_person_m2")?)?;
    let capacity = match opt_number(body, "capacity")? {
        Some(c) if c.is_nan() || c <= 0.0 => {
            return Err(PlanningError::invalid("capacity", "must be > 0"))
        }
        other => other,
    };
    let figures = Figures::new(settings, category, radius, area);
    let siting = Siting {
        k,
        keep: ids(body, "keep")?,
        exclude: ids(body, "exclude")?,
        capacity_aware: opt_bool(body, "capacity_aware")?,
        objective,
        exact: exact(body)?,
        time_limit: time_limit(limit, body)?,
        include_excluded: opt_bool(body, "include_excluded")?,
        figures,
    };
    let source = source(body, capacity)?;
    let mut echo = Value::Object(body.clone());
    echo["category"] = json!(category.as_str());
    echo["radius_m"] = json!(siting.figures.radius_m);
    echo["area_per_person_m2"] = json!(siting.figures.area_per_person_m2);
    echo["objective"] = json!(match objective {
        Objective::Coverage => "coverage",
        Objective::PMedian => "p_median",
        Objective::SetCover => "set_cover",
    });
    if echo.get("candidates").is_none_or(Value::is_null) {
        echo["candidates"] = json!("grid");
    }
    Ok(Request {
        siting,
        source,
        capacity,
        echo,
    })
}

// ------------------------------------------------------------ the world

fn world(state: &AppState) -> World {
    let p = &state.settings.planning;
    let exclusions = data::exclusions(&state.index);
    World {
        demand: data::demand(&state.index, &p.population_layer),
        shelters: data::shelters(&state.index, &p.shelters_layer, &exclusions),
        exclusions,
    }
}

fn candidates(
    state: &AppState,
    world: &World,
    r: &Request,
) -> Result<Vec<Candidate>, PlanningError> {
    Ok(match &r.source {
        Source::Points(c) => c.clone(),
        // Refused before a name is looked up for each of a million cells.
        Source::Grid if world.demand.ids.len() > siting::MAX_CANDIDATES => {
            return Err(PlanningError::invalid(
                "candidates",
                format!(
                    "\"grid\" gives {} candidates (one per populated cell); at most {}: name a layer or points instead",
                    world.demand.ids.len(),
                    siting::MAX_CANDIDATES
                ),
            ))
        }
        Source::Grid => world
            .demand
            .ids
            .iter()
            .zip(&world.demand.points)
            .map(|(id, p)| Candidate {
                id: json!(id),
                name: state
                    .index
                    .row(&state.settings.planning.population_layer, *id, |r| {
                        r.and_then(|r| r.name().map(str::to_owned))
                    }),
                point: *p,
                capacity: r.capacity,
            })
            .collect(),
        Source::Layer(name) => {
            if state.catalog.get(name).is_none() {
                return Err(PlanningError::invalid(
                    "candidates",
                    format!("`{name}` is neither \"grid\" nor a layer of the catalog"),
                ));
            }
            if state.index.in_store(name) {
                return Err(PlanningError::invalid(
                    "candidates",
                    format!("layer `{name}` is too big to hold in memory (it is served from the database); candidates come from a held layer"),
                ));
            }
            let per_person = r.siting.figures.area_per_person_m2;
            let mut out: Vec<Candidate> = state.index.each(name, |it| {
                it.take(siting::MAX_CANDIDATES + 1)
                    .filter_map(|e| {
                        let n = |k: &str| e.number(k).filter(|v| v.is_finite() && *v >= 0.0);
                        Some(Candidate {
                            id: json!(e.id()),
                            name: e.name().map(str::to_owned),
                            point: data::point_of(&e)?,
                            capacity: n("capacity")
                                .or_else(|| {
                                    n("effective_area_m2").map(|a| (a / per_person).floor())
                                })
                                .or(r.capacity),
                        })
                    })
                    .collect()
            });
            out.sort_unstable_by_key(|c| c.id.as_i64());
            out
        }
    })
}

/// Run `work` on a blocking thread, holding one of the solver slots.
async fn solving<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PlanningError> + Send + 'static,
) -> Result<T, PlanningError> {
    let _slot = SOLVES.try_acquire().map_err(|_| {
        PlanningError::Busy(
            "every planning slot is busy with another run; try again in a few seconds".into(),
        )
    })?;
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        PlanningError::Store(crate::store::StoreError::Interrupted {
            context: format!("a planning run ({e})"),
        })
    })?
}

// --------------------------------------------------------------- routes

/// `GET /api/planning/coverage?category=&radius_m=&capacity_aware=`
pub async fn coverage(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AppError> {
    let settings = state.settings.planning.clone();
    let q = Params::parse(
        raw.as_deref(),
        &[
            "category",
            "radius_m",
            "capacity_aware",
            "include_excluded",
            "area_per_person_m2",
        ],
    )?;
    let figures = Figures::new(
        &settings,
        category(q.get("category"))?,
        radius(&settings, q.number("radius_m")?)?,
        area(q.number("area_per_person_m2")?)?,
    );
    let (capacity_aware, include_excluded) =
        (q.flag("capacity_aware")?, q.flag("include_excluded")?);
    let answer = solving(move || {
        let world = world(&state);
        if world.demand.is_empty() {
            return Err(PlanningError::invalid(
                "population",
                format!(
                    "the population layer `{}` has no cells",
                    settings.population_layer
                ),
            ));
        }
        Ok(coverage_json(
            &state,
            &settings,
            &world,
            &figures,
            capacity_aware,
            include_excluded,
        ))
    })
    .await?;
    Ok(Json(answer))
}

fn coverage_json(
    state: &AppState,
    settings: &PlanningSettings,
    world: &World,
    figures: &Figures,
    capacity_aware: bool,
    include_excluded: bool,
) -> Value {
    let grid = PointGrid::new(&world.demand.points, figures.radius_m);
    let c = cover(
        settings,
        &world.demand,
        &grid,
        &world.shelters,
        figures,
        capacity_aware,
        include_excluded,
    );
    let r2 = |v: f64| (v * 100.0).round() / 100.0;
    let shelters: Vec<Value> = world
        .shelters
        .iter()
        .enumerate()
        .map(|(j, s)| {
            let (capacity, source) = c.capacities[j];
            let load = c.loads[j];
            let minimum = settings.area_per_person_m2.get(s.category.as_str());
            let per_person = s.area_m2.filter(|_| load > 0.0).map(|a| a / load);
            json!({
                "id": s.id, "name": s.name, "category": s.category.as_str(),
                "lon": s.point[0], "lat": s.point[1],
                "serves": c.used[j],
                "load": r2(load),
                "capacity": capacity, "capacity_source": source,
                "over_capacity": capacity.is_some_and(|cap| load > cap),
                "load_ratio": capacity.filter(|cap| *cap > 0.0).map(|cap| r2(load / cap)),
                "effective_area_m2": s.area_m2,
                "area_per_person_m2": per_person.map(r2),
                "minimum_area_per_person_m2": minimum,
                "meets_standard": per_person.zip(minimum).map(|(p, m)| p >= m),
                "excluded": s.excluded.as_ref().map(|e| e.to_json()),
            })
        })
        .collect();
    // The uncovered cells, most people first, drawn from their stored
    // geometry.
    let d = &world.demand;
    let mut open: Vec<(usize, f64)> = (0..d.len())
        .map(|i| (i, d.weights[i] - c.allocation.covered[i]))
        .filter(|(_, u)| *u > 1e-9)
        .collect();
    let uncovered_cells = open.len();
    open.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let layer = &settings.population_layer;
    let features: Vec<Value> = open
        .iter()
        .take(MAX_UNCOVERED_CELLS)
        .filter_map(|&(i, u)| {
            state.index.row(layer, d.ids[i], |e| {
                let e = e?;
                Some(json!({
                    "type": "Feature", "id": d.ids[i],
                    "geometry": geojson::Geometry::new(geojson::Value::from(&*e.geometry())),
                    "properties": { "id": d.ids[i], "name": e.name(), "population": d.weights[i], "uncovered": r2(u) },
                }))
            })
        })
        .collect();
    let totals = siting::Totals {
        total: c.total,
        covered: c.covered,
    };
    let mut out = json!({
        "category": figures.category.as_str(),
        "radius_m": figures.radius_m,
        "capacity_aware": capacity_aware,
        "include_excluded": include_excluded,
        "standards": figures.to_json(),
        "shelters": shelters,
        "uncovered_cells": uncovered_cells,
        "uncovered_truncated": uncovered_cells > MAX_UNCOVERED_CELLS,
        "uncovered": { "type": "FeatureCollection", "features": features },
        "exclusion_zones": world.exclusions.to_geojson(),
    });
    if let (Value::Object(o), Value::Object(t)) = (&mut out, totals.to_json()) {
        o.extend(t);
    }
    out
}

/// `POST /api/planning/siting`: k new sites on the map, or the solvers on
/// an explicit instance (`demand`, `candidates`, `costs`).
pub async fn siting(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, AppError> {
    let body = object(&body)?;
    let settings = state.settings.planning.clone();
    if body.contains_key("demand") || body.contains_key("costs") {
        only(
            &body,
            &[
                "k",
                "radius",
                "demand",
                "candidates",
                "costs",
                "keep",
                "exclude",
                "objective",
                "exact",
                "time_limit_s",
            ],
        )?;
        let objective = objective(&body)?;
        let k = k_of(&body, objective != Objective::SetCover)?;
        let options = super::solve::Options {
            k,
            exact: exact(&body)?,
            exact_max_pairs: settings.exact_max_pairs,
            time_limit: time_limit(limit_s(&state), &body)?,
        };
        let answer = solving(move || {
            let started = Instant::now();
            let ex = explicit::parse(&body)?;
            let s = super::solve::solve(&ex.instance, objective, &options)?;
            Ok(ex.to_json(objective, &s, started.elapsed().as_millis() as u64))
        })
        .await?;
        return Ok(Json(answer));
    }
    let request = siting_request(&settings, limit_s(&state), &body)?;
    let answer = solving(move || {
        let world = world(&state);
        let candidates = candidates(&state, &world, &request)?;
        let a = siting::site(&settings, &world, &request.siting, candidates)?;
        Ok(a.to_json(&request.siting.figures))
    })
    .await?;
    Ok(Json(answer))
}

/// `POST /api/planning/scenarios` `{"name", "siting": {…}}`: run and keep.
pub async fn save_scenario(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Json<Value>), AppError> {
    caller.require_editor(LayerGroup::Planning, "planning scenarios")?;
    let body = object(&body)?;
    only(&body, &["name", "siting"])?;
    let name = match body.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.chars().count() <= MAX_NAME_CHARS => n.to_owned(),
        _ => {
            return Err(PlanningError::invalid(
                "name",
                format!("must be a text of 1 to {MAX_NAME_CHARS} characters"),
            )
            .into())
        }
    };
    let siting_body = match body.get("siting") {
        Some(Value::Object(o)) => o.clone(),
        _ => {
            return Err(
                PlanningError::invalid("siting", "must be the object of a siting request").into(),
            )
        }
    };
    let settings = state.settings.planning.clone();
    let request = siting_request(&settings, limit_s(&state), &siting_body)?;
    let seq = state.store.last_seq().await?;
    let worker = state.clone();
    let (inputs, results) = solving(move || {
        let state = worker;
        let world = world(&state);
        let candidates = candidates(&state, &world, &request)?;
        let a = siting::site(&settings, &world, &request.siting, candidates)?;
        let mut inputs = request.echo.clone();
        inputs["map_seq"] = json!(seq);
        let results = json!({
            "siting": a.to_json(&request.siting.figures),
            "coverage_before": a.before.to_json(),
            "coverage_after": a.after.to_json(),
            "by_town": scenarios::by_town(&world, &a),
            "by_category": scenarios::by_category(&settings, &world, &request.siting, &a),
        });
        Ok((inputs, results))
    })
    .await?;
    let saved = state
        .store
        .save_scenario(&name, &caller.actor(), &inputs, &results)
        .await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/planning/scenarios/{}", saved.id)) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::CREATED, headers, Json(scenario_json(&saved))))
}

fn scenario_json(r: &crate::store::ScenarioRecord) -> Value {
    json!({
        "id": r.id, "name": r.name, "actor": r.actor, "created_at": r.created_at,
        "inputs": r.inputs, "results": r.results,
        "links": [
            { "rel": "self", "href": format!("/api/planning/scenarios/{}", r.id) },
            { "rel": "report", "type": "text/markdown", "href": format!("/api/planning/scenarios/{}/report?f=md", r.id) },
            { "rel": "report", "type": "text/csv", "href": format!("/api/planning/scenarios/{}/report?f=csv", r.id) },
            { "rel": "sites", "type": "application/geo+json", "href": format!("/api/planning/scenarios/{}/sites.geojson", r.id) },
        ],
    })
}

fn scenario_id(raw: &str) -> Result<i64, PlanningError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        PlanningError::invalid(
            "id",
            format!(
                "must be a positive integer, got `{}`",
                raw.chars().take(40).collect::<String>()
            ),
        )
    })
}

async fn load(state: &AppState, raw: &str) -> Result<crate::store::ScenarioRecord, PlanningError> {
    let id = scenario_id(raw)?;
    state
        .store
        .scenario(id)
        .await?
        .ok_or_else(|| PlanningError::NotFound {
            what: format!("scenario {id}"),
        })
}

/// `GET /api/planning/scenarios`: newest first.
pub async fn list_scenarios(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AppError> {
    let q = Params::parse(raw.as_deref(), &["limit"])?;
    let limit = match q.number("limit")? {
        None => 100,
        Some(l) if (1.0..=1_000.0).contains(&l) => l as u64,
        Some(l) => {
            return Err(
                PlanningError::invalid("limit", format!("must be from 1 to 1000, got {l}")).into(),
            )
        }
    };
    let list = state.store.scenarios(limit).await?;
    Ok(Json(json!({
        "scenarios": list.iter().map(|r| json!({ "id": r.id, "name": r.name, "actor": r.actor, "created_at": r.created_at })).collect::<Vec<_>>(),
    })))
}

/// `GET /api/planning/scenarios/{id}`
pub async fn show_scenario(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(scenario_json(&load(&state, &id).await?)))
}

/// `GET /api/planning/scenarios/{id}/compare?with={other}`
pub async fn compare_scenarios(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, AppError> {
    let q = Params::parse(raw.as_deref(), &["with"])?;
    let other = q
        .get("with")
        .ok_or_else(|| PlanningError::invalid("with", "is required"))?
        .to_owned();
    let a = load(&state, &id).await?;
    let b = load(&state, &other).await?;
    Ok(Json(scenarios::compare(&a, &b)))
}

fn download(
    body: impl Into<axum::body::Body>,
    content_type: &'static str,
    filename: String,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    (headers, body.into()).into_response()
}

/// `GET /api/planning/scenarios/{id}/report?f=md|csv`
pub async fn report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let q = Params::parse(raw.as_deref(), &["f"])?;
    let r = load(&state, &id).await?;
    Ok(match q.get("f").unwrap_or("md") {
        "md" | "markdown" => download(
            report::markdown(&r),
            "text/markdown; charset=utf-8",
            format!("scenario-{}.md", r.id),
        ),
        "csv" => download(
            report::csv(&r),
            "text/csv; charset=utf-8",
            format!("scenario-{}.csv", r.id),
        ),
        other => {
            return Err(PlanningError::invalid(
                "f",
                format!(
                    "must be md or csv, got `{}`",
                    other.chars().take(20).collect::<String>()
                ),
            )
            .into())
        }
    })
}

/// `GET /api/planning/scenarios/{id}/sites.geojson`
pub async fn sites_geojson(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let r = load(&state, &id).await?;
    Ok(download(
        report::geojson(&r).to_string(),
        "application/geo+json",
        format!("scenario-{}-sites.geojson", r.id),
    ))
}
