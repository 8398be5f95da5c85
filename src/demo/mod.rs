//! The Luozhuang demo data set.
//!
//! Real: the county boundaries of Linyi (`linyi-districts.geojson`, GCJ-02,
//! see `SOURCE.md` beside it), converted to WGS84 with [`crate::crs`].
//! Everything else is GENERATED, deterministically from [`SEED`]: plausible
//! resources placed inside the real Luozhuang boundary around approximate
//! town centres, sized by the district's published 2020 figures (4
//! hazardous-chemical producers and 4 general chemical plants, 135
//! key-supervised enterprises, over 800 camera channels at 165 enterprises,
//! 29 liaison officers). Names, phone numbers and positions are invented.
//! The population grid is marked `synthetic` in every cell.

pub mod places;

use std::collections::BTreeMap;

use geo::{
    BooleanOps, BoundingRect, Buffer, Contains, Coord, LineString, MultiPolygon, Point, Polygon,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use crate::{
    crs::Crs,
    layers::{Catalog, Feature},
    store::{self, Store, StoreError},
};

use places::{Town, TOWNS};

/// The demo's fixed seed: the same data set on every machine.
pub const SEED: u64 = 371_311;
/// Luozhuang's administrative code.
pub const LUOZHUANG: &str = "371311";
/// Published 2020 figures the generator is sized to.
pub const KEY_ENTERPRISES: usize = 135;
pub const CAMERA_ENTERPRISES: usize = 165;
pub const MIN_CAMERA_CHANNELS: i64 = 801;
pub const LIAISONS: usize = 29;
pub const HAZCHEM_PRODUCERS: usize = 4;
pub const CHEMICAL_PLANTS: usize = 4;
pub const SEISMIC_STATIONS: usize = 2;
/// The synthetic population the grid sums to.
pub const POPULATION: i64 = 600_000;
/// Grid cell size in degrees (≈ 0.91 km × 1.11 km here).
const CELL_DEG: f64 = 0.01;

const DISTRICTS: &str = include_str!("linyi-districts.geojson");

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the bundled boundaries cannot be read: {0}")]
    Boundaries(String),
    #[error("layer `{0}` is missing from the catalog")]
    MissingLayer(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Load the demo into `store` when no layer holds a feature. Returns the
/// number of features written, or `None` when the store was left alone.
pub async fn load_if_empty(
    store: &dyn Store,
    catalog: &Catalog,
) -> Result<Option<usize>, DemoError> {
    if !store::is_empty(store, catalog).await? {
        return Ok(None);
    }
    let data = build()?;
    let mut written = 0;
    for (name, features) in &data {
        let layer = catalog.get(name).ok_or(DemoError::MissingLayer(name))?;
        written += store.insert(layer, features, "demo").await?.ids.len();
    }
    Ok(Some(written))
}

/// The whole demo data set, layer by layer.
pub fn build() -> Result<BTreeMap<&'static str, Vec<Feature>>, DemoError> {
    let districts = districts()?;
    let boundary = districts
        .iter()
        .find(|f| f.properties.get("adcode").and_then(Value::as_str) == Some(LUOZHUANG))
        .and_then(|f| match &f.geometry {
            geo::Geometry::Polygon(p) => Some(MultiPolygon(vec![p.clone()])),
            geo::Geometry::MultiPolygon(mp) => Some(mp.clone()),
            _ => None,
        })
        .ok_or_else(|| DemoError::Boundaries("Luozhuang (371311) is missing".into()))?;
    let mut g = Generator::new(boundary);
    let mut data = BTreeMap::new();
    data.insert("districts", districts);
    let (enterprises, cameras, hazards) = g.enterprises_and_hazards();
    data.insert("enterprises", enterprises);
    data.insert("cameras", cameras);
    data.insert("hazard_sources", hazards);
    data.insert("rescue_teams", g.rescue_teams());
    data.insert("experts", g.experts());
    data.insert("supply_depots", g.supply_depots());
    data.insert("equipment", g.equipment());
    data.insert("shelters", g.shelters());
    data.insert("seismic_stations", g.seismic_stations());
    data.insert("incidents", g.incidents());
    data.insert("flood_zones", g.flood_zones());
    data.insert("waterlogging_points", g.waterlogging_points());
    data.insert("population_grid", g.population_grid());
    link_dispatched(&mut data);
    Ok(data)
}

/// Make the demo's dispatch state consistent: each team the generator
/// marked dispatched works on one of the active incidents, which records
/// the assignment, as the dispatch API would have left them. Ids are the
/// insertion order (the demo loads only into an empty store).
fn link_dispatched(data: &mut BTreeMap<&'static str, Vec<Feature>>) {
    let active: Vec<(i64, String)> = data
        .get("incidents")
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, f)| f.properties.get("status").and_then(Value::as_str) == Some("active"))
        .map(|(i, f)| {
            let at = f
                .properties
                .get("reported_at")
                .and_then(Value::as_str)
                .unwrap_or_default();
            (i as i64 + 1, at.to_owned())
        })
        .collect();
    if active.is_empty() {
        return;
    }
    let mut links: Vec<(usize, i64, String)> = Vec::new();
    for (i, team) in data
        .get_mut("rescue_teams")
        .into_iter()
        .flatten()
        .enumerate()
    {
        if team.properties.get("status").and_then(Value::as_str) != Some("dispatched") {
            continue;
        }
        let (incident, _) = &active[links.len() % active.len()];
        team.properties
            .insert("incident_id".into(), json!(incident));
        links.push((i, *incident, team.name().unwrap_or_default().to_owned()));
    }
    let incidents = data
        .get_mut("incidents")
        .map(|v| v.as_mut_slice())
        .unwrap_or_default();
    for (team, incident, name) in links {
        let Some(f) = usize::try_from(incident - 1)
            .ok()
            .and_then(|i| incidents.get_mut(i))
        else {
            continue;
        };
        let at = active
            .iter()
            .find(|(id, _)| *id == incident)
            .and_then(|(_, at)| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|t| (t + chrono::Duration::minutes(12)).to_rfc3339())
            .unwrap_or_default();
        let records = f
            .properties
            .entry("assignments")
            .or_insert_with(|| json!([]));
        if let Value::Array(a) = records {
            a.push(json!({
                "team_id": team as i64 + 1, "team_name": name,
                "assigned_at": at, "assigned_by": "demo",
            }));
        }
    }
}

/// The real county boundaries, GCJ-02 in the file, WGS84 here.
fn districts() -> Result<Vec<Feature>, DemoError> {
    let parsed = crate::formats::geojson::parse("districts", DISTRICTS, Crs::Gcj02)
        .map_err(|e| DemoError::Boundaries(e.to_string()))?;
    Ok(parsed
        .features
        .into_iter()
        .map(|mut f| {
            // `cp` is ECharts' label point, not part of the data model.
            f.properties
                .retain(|k, _| matches!(k.as_str(), "name" | "adcode" | "name_en"));
            f
        })
        .collect())
}

fn props(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

struct Generator {
    rng: ChaCha8Rng,
    boundary: MultiPolygon<f64>,
    bbox: geo::Rect<f64>,
    towns: Vec<(Town, Point<f64>)>,
    phone_serial: u32,
}

impl Generator {
    fn new(boundary: MultiPolygon<f64>) -> Self {
        let bbox = boundary.bounding_rect().unwrap_or_else(|| {
            geo::Rect::new(
                Coord { x: 118.1, y: 34.76 },
                Coord {
                    x: 118.43,
                    y: 35.05,
                },
            )
        });
        let mut g = Self {
            rng: ChaCha8Rng::seed_from_u64(SEED),
            boundary,
            bbox,
            towns: Vec::new(),
            phone_serial: 0,
        };
        // The approximate centres are GCJ-02 readings; bring them to WGS84
        // and make sure each lies inside the real boundary.
        g.towns = TOWNS
            .iter()
            .map(|t| {
                let (x, y) = Crs::Gcj02.to_wgs84(t.lon, t.lat);
                let p = g.pull_inside(Point::new(x, y));
                (*t, p)
            })
            .collect();
        g
    }

    fn inside(&self, p: Point<f64>) -> bool {
        self.boundary.contains(&p)
    }

    /// Move a point toward the district's middle until it is inside.
    fn pull_inside(&self, p: Point<f64>) -> Point<f64> {
        let c = self.bbox.center();
        let mut q = p;
        for step in 1..=50 {
            if self.inside(q) {
                return q;
            }
            let t = f64::from(step) / 50.0;
            q = Point::new(p.x() + (c.x - p.x()) * t, p.y() + (c.y - p.y()) * t);
        }
        q
    }

    fn gaussian(&mut self) -> f64 {
        // Box–Muller; `1 - u` keeps the logarithm finite.
        let u: f64 = 1.0 - self.rng.random::<f64>();
        let v: f64 = self.rng.random::<f64>();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// A point near `centre`, `spread_km` one standard deviation, inside
    /// the boundary.
    fn near(&mut self, centre: Point<f64>, spread_km: f64) -> Point<f64> {
        for _ in 0..200 {
            let dx = self.gaussian() * spread_km / 91.0;
            let dy = self.gaussian() * spread_km / 111.0;
            let p = Point::new(centre.x() + dx, centre.y() + dy);
            if self.inside(p) {
                return round_point(p);
            }
        }
        round_point(centre)
    }

    /// A point near a town picked by weight (population share).
    fn near_town(&mut self, spread_km: f64) -> (Town, Point<f64>) {
        let total: f64 = self.towns.iter().map(|(t, _)| t.weight).sum();
        let mut pick = self.rng.random::<f64>() * total;
        let mut chosen = self.towns[0];
        for t in &self.towns {
            if pick < t.0.weight {
                chosen = *t;
                break;
            }
            pick -= t.0.weight;
        }
        let p = self.near(chosen.1, spread_km);
        (chosen.0, p)
    }

    fn town(&self, i: usize) -> (Town, Point<f64>) {
        self.towns[i % self.towns.len()]
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    /// An invented Linyi (0539) landline.
    fn phone(&mut self) -> String {
        self.phone_serial += 1;
        format!("0539-8{:06}", 100_000 + self.phone_serial * 37 % 900_000)
    }

    fn person(&mut self) -> String {
        let family = self.pick(places::FAMILY_NAMES);
        let given = self.pick(places::GIVEN_NAMES);
        format!("{family}{given}")
    }

    fn enterprises_and_hazards(&mut self) -> (Vec<Feature>, Vec<Feature>, Vec<Feature>) {
        let liaisons: Vec<String> = (0..LIAISONS).map(|_| self.person()).collect();
        let mut enterprises = Vec::new();
        let mut cameras = Vec::new();
        let mut hazards = Vec::new();
        // Industries of the 165 enterprises under video supervision: the 8
        // chemical plants first, then Luozhuang's building-materials,
        // metallurgy, wood and food industries.
        let mut plan: Vec<(&str, Option<&str>)> = Vec::new();
        plan.extend(std::iter::repeat_n(
            ("hazchem_production", Some("hazchem_producer")),
            HAZCHEM_PRODUCERS,
        ));
        plan.extend(std::iter::repeat_n(
            ("chemical", Some("major_hazard")),
            CHEMICAL_PLANTS,
        ));
        plan.extend(std::iter::repeat_n(("metallurgy", Some("metallurgy")), 12));
        plan.extend(std::iter::repeat_n(
            ("wood_processing", Some("dust_explosion")),
            14,
        ));
        plan.extend(std::iter::repeat_n(
            ("food_cold_storage", Some("ammonia_refrigeration")),
            8,
        ));
        plan.extend(std::iter::repeat_n(
            ("hazchem_storage", Some("hazchem_storage")),
            3,
        ));
        while plan.len() < CAMERA_ENTERPRISES {
            let industry = self.pick(&[
                "building_ceramics",
                "building_materials",
                "logistics",
                "machinery",
                "textiles",
            ]);
            plan.push((industry, None));
        }
        let mut channels_total = 0;
        for (i, (industry, hazard)) in plan.iter().enumerate() {
            let (town, p) = self.near_town(2.5);
            let supervision = if i < KEY_ENTERPRISES {
                "district_key"
            } else {
                "town"
            };
            let risk = match hazard {
                Some("hazchem_producer") => "major",
                Some(_) => self.pick(&["high", "medium", "medium", "low"]),
                None => self.pick(&["medium", "low", "low"]),
            };
            let name = format!(
                "{}{}{}",
                town.short,
                self.pick(places::FIRM_WORDS),
                places::industry_suffix(industry)
            );
            let name = format!("{name}（{:03}）", i + 1);
            enterprises.push(Feature::new(
                p,
                props(json!({
                    "name": name,
                    "industry": industry,
                    "supervision": supervision,
                    "risk_level": risk,
                    "liaison": liaisons[i % LIAISONS],
                })),
            ));
            let channels = self.rng.random_range(3..=8);
            channels_total += channels;
            cameras.push(Feature::new(
                self.near(p, 0.05),
                props(json!({ "name": format!("{name}监控点"), "channels": channels, "enterprise": name })),
            ));
            if let Some(class) = hazard {
                let radius = match *class {
                    "hazchem_producer" => 1000.0,
                    "major_hazard" | "hazchem_storage" => 800.0,
                    "ammonia_refrigeration" => 500.0,
                    _ => 300.0,
                };
                hazards.push(Feature::new(
                    self.near(p, 0.05),
                    props(json!({
                        "name": format!("{name}危险源"),
                        "class": class,
                        "risk_level": risk,
                        "evaluation": self.pick(&["good", "good", "fair", "poor"]),
                        "evacuation_radius_m": radius,
                        "enterprise": name,
                    })),
                ));
            }
        }
        // Top up the few cameras needed for the published "over 800 channels".
        let mut i = 0;
        while channels_total < MIN_CAMERA_CHANNELS {
            if let Some(Value::Number(n)) = cameras[i].properties.get("channels").cloned() {
                cameras[i]
                    .properties
                    .insert("channels".into(), json!(n.as_i64().unwrap_or(0) + 1));
                channels_total += 1;
            }
            i = (i + 1) % cameras.len();
        }
        // Gas stations stand along the roads, not among the supervised plants.
        for n in 0..18 {
            let (town, p) = self.near_town(3.0);
            let brand = self.pick(&["中国石化", "中国石油", "中化石油", "山东高速能源"]);
            hazards.push(Feature::new(
                p,
                props(json!({
                    "name": format!("{brand}{}加油站（{:02}）", town.short, n + 1),
                    "class": "gas_station",
                    "risk_level": self.pick(&["medium", "low"]),
                    "evaluation": self.pick(&["good", "fair"]),
                    "evacuation_radius_m": 100.0,
                    "enterprise": format!("{brand}{}加油站", town.short),
                })),
            ));
        }
        (enterprises, cameras, hazards)
    }

    fn rescue_teams(&mut self) -> Vec<Feature> {
        let plan: &[TeamPlan] = &[
            (
                "comprehensive_fire_rescue",
                "消防救援站",
                &[
                    "firefighting",
                    "collapse_search",
                    "water_rescue",
                    "hazmat",
                    "rope_rescue",
                ],
                (25, 45),
            ),
            (
                "comprehensive_fire_rescue",
                "消防救援站",
                &["firefighting", "collapse_search", "rope_rescue"],
                (20, 35),
            ),
            (
                "comprehensive_fire_rescue",
                "消防救援站",
                &["firefighting", "water_rescue", "flood_pumping"],
                (20, 35),
            ),
            (
                "professional_fire",
                "企业专职消防队",
                &["firefighting", "hazmat"],
                (12, 20),
            ),
            (
                "professional_fire",
                "企业专职消防队",
                &["firefighting"],
                (10, 18),
            ),
            (
                "water_rescue",
                "水上救援队",
                &["water_rescue", "diving", "evacuation"],
                (15, 30),
            ),
            (
                "water_rescue",
                "防汛抢险队",
                &["water_rescue", "flood_pumping", "levee_repair"],
                (30, 60),
            ),
            (
                "mine_rescue",
                "矿山救护队",
                &["mine_rescue", "collapse_search", "rope_rescue"],
                (15, 25),
            ),
            (
                "hazchem_rescue",
                "危化品应急救援队",
                &["hazmat", "firefighting"],
                (15, 25),
            ),
            (
                "medical",
                "紧急医学救援队",
                &["medical", "evacuation"],
                (10, 20),
            ),
            ("medical", "120急救分站", &["medical"], (8, 15)),
            ("medical", "卫生应急队", &["medical"], (8, 15)),
            ("power_repair", "电力抢修队", &["power_supply"], (15, 30)),
            ("communications", "通信保障队", &["communications"], (8, 15)),
            (
                "militia",
                "民兵应急排",
                &["flood_pumping", "levee_repair", "evacuation", "logistics"],
                (30, 50),
            ),
            (
                "militia",
                "民兵应急排",
                &["flood_pumping", "levee_repair", "evacuation"],
                (30, 50),
            ),
            (
                "militia",
                "民兵应急排",
                &["levee_repair", "evacuation"],
                (30, 50),
            ),
            (
                "militia",
                "民兵应急排",
                &["levee_repair", "logistics"],
                (30, 50),
            ),
            (
                "volunteer",
                "蓝天救援队",
                &["water_rescue", "collapse_search", "rope_rescue"],
                (20, 40),
            ),
            (
                "volunteer",
                "志愿者救援队",
                &["evacuation", "logistics"],
                (20, 60),
            ),
            (
                "volunteer",
                "红十字救援队",
                &["medical", "logistics"],
                (15, 30),
            ),
        ];
        let statuses = [
            "standby",
            "standby",
            "standby",
            "standby",
            "dispatched",
            "off_duty",
        ];
        plan.iter()
            .enumerate()
            .map(|(i, (kind, label, caps, (lo, hi)))| {
                let (town, centre) = self.town(i);
                let p = self.near(centre, 1.0);
                let status = statuses[self.rng.random_range(0..statuses.len())];
                Feature::new(
                    p,
                    props(json!({
                        "name": format!("罗庄区{}{label}", town.short),
                        "team_type": kind,
                        "capabilities": caps,
                        "headcount": self.rng.random_range(*lo..=*hi),
                        "leader": self.person(),
                        "phone": self.phone(),
                        "status": status,
                    })),
                )
            })
            .collect()
    }

    fn experts(&mut self) -> Vec<Feature> {
        let fields: &[(&[&str], &str)] = &[
            (&["hazchem", "process_safety"], "临沂市化工安全协会"),
            (&["flood_control", "hydrology"], "罗庄区水利局"),
            (&["geology", "landslide"], "山东省地矿局第七地质大队"),
            (&["medical", "trauma"], "罗庄区人民医院"),
            (&["structural_engineering"], "临沂大学土木工程学院"),
            (&["firefighting"], "临沂市消防救援支队"),
            (&["seismology"], "临沂市地震监测中心"),
            (&["power_grid"], "国网临沂供电公司"),
            (&["mine_safety"], "临沂矿业集团"),
            (&["meteorology"], "临沂市气象局"),
            (
                &["dust_explosion", "process_safety"],
                "山东省安全生产科学研究院",
            ),
            (&["public_health"], "罗庄区疾病预防控制中心"),
        ];
        (0..24)
            .map(|i| {
                let (specialties, org) = fields[i % fields.len()];
                let (_, centre) = self.town(i);
                let p = self.near(centre, 1.5);
                Feature::new(
                    p,
                    props(json!({
                        "name": self.person(),
                        "specialties": specialties,
                        "organization": org,
                        "phone": self.phone(),
                        "availability": self.pick(&["available", "available", "busy", "unavailable"]),
                    })),
                )
            })
            .collect()
    }

    fn supply_depots(&mut self) -> Vec<Feature> {
        let stock: &[(&str, &str, &str, f64)] = &[
            ("masks", "医用口罩", "只", 20_000.0),
            ("isolation_gowns", "隔离衣", "件", 2_000.0),
            ("sandbags", "编织袋（沙袋）", "条", 50_000.0),
            ("assault_boats", "冲锋舟", "艘", 6.0),
            ("life_jackets", "救生衣", "件", 800.0),
            ("pumps", "排涝泵", "台", 12.0),
            ("generators", "发电机", "台", 8.0),
            ("tents", "救灾帐篷", "顶", 300.0),
            ("quilts", "棉被", "床", 1_500.0),
            ("emergency_lights", "应急照明灯", "套", 60.0),
        ];
        let mut out = Vec::new();
        let levels: Vec<(&str, f64, String, Point<f64>)> = {
            let mut v = vec![
                (
                    "municipal",
                    2.0,
                    "临沂市应急物资储备库（罗庄库）".to_owned(),
                    self.town(0).1,
                ),
                (
                    "district",
                    1.0,
                    "罗庄区应急物资储备库".to_owned(),
                    self.town(1).1,
                ),
            ];
            for i in 0..self.towns.len() {
                let (town, c) = self.town(i);
                v.push((
                    "town",
                    0.1,
                    format!("{}{}应急物资储备点", town.name, town.kind_suffix()),
                    c,
                ));
            }
            v
        };
        for (level, scale, name, centre) in levels {
            let p = self.near(centre, 0.8);
            let inventory: Vec<Value> = stock
                .iter()
                .filter(|(item, ..)| {
                    level != "town" || !matches!(*item, "assault_boats" | "generators")
                })
                .map(|(item, label, unit, base)| {
                    let jitter = 0.7 + self.rng.random::<f64>() * 0.6;
                    let quantity = (base * scale * jitter).round().max(1.0);
                    json!({ "item": item, "name": label, "unit": unit, "quantity": quantity })
                })
                .collect();
            out.push(Feature::new(
                p,
                props(json!({
                    "name": name,
                    "level": level,
                    "inventory": inventory,
                    "manager": self.person(),
                    "phone": self.phone(),
                })),
            ));
        }
        out
    }

    fn equipment(&mut self) -> Vec<Feature> {
        let kinds: &[(&str, &str, (i64, i64))] = &[
            ("pump", "大流量排涝车", (1, 3)),
            ("pump", "移动排涝泵", (2, 8)),
            ("generator", "应急发电车", (1, 2)),
            ("boat", "冲锋舟", (2, 6)),
            ("excavator", "挖掘机", (1, 4)),
            ("lighting", "移动照明灯塔", (2, 6)),
            ("drone", "无人机", (1, 4)),
            ("rescue_vehicle", "抢险救援车", (1, 3)),
            ("hazmat_vehicle", "危化品洗消车", (1, 2)),
            ("communications", "卫星通信车", (1, 1)),
        ];
        let owners = [
            "罗庄区应急管理局",
            "罗庄区水利局",
            "罗庄区消防救援大队",
            "罗庄区城市管理局",
            "罗庄区住建局",
        ];
        (0..40)
            .map(|i| {
                let (kind, label, (lo, hi)) = kinds[i % kinds.len()];
                let (_, centre) = self.town(i);
                let p = self.near(centre, 1.0);
                Feature::new(
                    p,
                    props(json!({
                        "name": format!("{label}（{:02}）", i + 1),
                        "kind": kind,
                        "quantity": self.rng.random_range(lo..=hi),
                        "owner": owners[i % owners.len()],
                    })),
                )
            })
            .collect()
    }

    /// Capacity from effective area by the per-person minimum of GB
    /// 50413-2007 §8.2.8: 1 m² (emergency), 2 m² (fixed and central).
    fn shelters(&mut self) -> Vec<Feature> {
        let plan: &[(&str, &str, &str, (f64, f64))] = &[
            ("park", "公园", "emergency", (3_000.0, 15_000.0)),
            ("square", "广场", "emergency", (2_000.0, 10_000.0)),
            ("school", "学校操场", "emergency", (3_000.0, 12_000.0)),
            ("school", "中学", "fixed", (15_000.0, 40_000.0)),
            ("stadium", "体育场", "fixed", (20_000.0, 60_000.0)),
            (
                "civil_air_defense",
                "人防工程",
                "emergency",
                (1_500.0, 5_000.0),
            ),
            ("park", "湿地公园", "fixed", (30_000.0, 80_000.0)),
        ];
        let mut out = Vec::new();
        for i in 0..30 {
            let (kind, label, category, (lo, hi)) = plan[i % plan.len()];
            let (town, centre) = self.town(i);
            let p = self.near(centre, 1.2);
            let area = (lo + (hi - lo) * self.rng.random::<f64>()).round();
            let per_person = if category == "emergency" { 1.0 } else { 2.0 };
            let capacity = (area / per_person).floor() as i64;
            // Larger sites are drawn as their outline, small ones as points.
            let geometry: geo::Geometry<f64> = if area >= 20_000.0 {
                square_around(p, area.sqrt() * 1.3).into()
            } else {
                p.into()
            };
            out.push(Feature::new(
                geometry,
                props(json!({
                    "name": format!("{}{label}避难场所（{:02}）", town.short, i + 1),
                    "kind": kind,
                    "category": category,
                    "capacity": capacity,
                    "effective_area_m2": area,
                    "occupancy": 0,
                    "status": "standby",
                })),
            ));
        }
        // The one central shelter: the district sports centre.
        let (_, centre) = self.town(0);
        let p = self.near(centre, 0.5);
        out.push(Feature::new(
            square_around(p, 700.0),
            props(json!({
                "name": "罗庄区体育中心中心避难场所",
                "kind": "stadium",
                "category": "central",
                "capacity": 60_000,
                "effective_area_m2": 120_000.0,
                "occupancy": 0,
                "status": "standby",
            })),
        ));
        out
    }

    fn seismic_stations(&mut self) -> Vec<Feature> {
        let (_, a) = self.town(0);
        let (_, b) = self.town(7);
        let pa = self.near(a, 1.0);
        let pb = self.near(b, 1.0);
        vec![
            Feature::new(
                pa,
                props(
                    json!({"name": "罗庄地震台", "station_type": "seismometer", "status": "online"}),
                ),
            ),
            Feature::new(
                pb,
                props(
                    json!({"name": "褚墩强震动观测站", "station_type": "strong_motion", "status": "online"}),
                ),
            ),
        ]
    }

    fn incidents(&mut self) -> Vec<Feature> {
        let plan = [
            (
                "waterlogging",
                "general",
                "active",
                "2026-07-12T21:40:00+08:00",
                "下穿立交积水约 60 cm，车辆无法通行",
            ),
            (
                "flood",
                "large",
                "active",
                "2026-07-12T22:15:00+08:00",
                "河道水位超警戒 0.4 m，沿岸村庄需转移",
            ),
            (
                "levee_breach",
                "major",
                "reported",
                "2026-07-12T23:05:00+08:00",
                "堤防出现管涌险情",
            ),
            (
                "hazchem_leak",
                "general",
                "resolved",
                "2026-07-10T09:20:00+08:00",
                "储罐阀门泄漏，已关阀堵漏",
            ),
        ];
        plan.iter()
            .enumerate()
            .map(|(i, (kind, severity, status, at, description))| {
                let (town, centre) = self.town(i * 2);
                let p = self.near(centre, 1.5);
                Feature::new(
                    p,
                    props(json!({
                        "name": format!("{}{}", town.name, places::incident_label(kind)),
                        "type": kind,
                        "severity": severity,
                        "status": status,
                        "reported_at": at,
                        "description": description,
                    })),
                )
            })
            .collect()
    }

    /// Bands along approximate river courses, clipped to the boundary.
    fn flood_zones(&mut self) -> Vec<Feature> {
        let mut out = Vec::new();
        for river in places::RIVERS {
            let line: LineString<f64> = river
                .course
                .iter()
                .map(|&(x, y)| {
                    let (x, y) = Crs::Gcj02.to_wgs84(x, y);
                    Coord { x, y }
                })
                .collect();
            let band = line.buffer(river.half_width_deg);
            let clipped = band.intersection(&self.boundary);
            if clipped.0.is_empty() {
                continue;
            }
            let geometry = simplify_parts(clipped);
            out.push(Feature::new(
                geometry,
                props(json!({ "name": river.name, "risk_level": river.risk_level, "kind": river.kind })),
            ));
        }
        out
    }

    fn waterlogging_points(&mut self) -> Vec<Feature> {
        (0..15)
            .map(|i| {
                let (town, centre) = self.town(i % 4);
                let p = self.near(centre, 1.2);
                let depth = 20.0 + (self.rng.random::<f64>() * 60.0).round();
                let risk = if depth > 60.0 {
                    "high"
                } else if depth > 40.0 {
                    "medium"
                } else {
                    "low"
                };
                let spot = self.pick(&["下穿立交", "低洼路段", "老旧小区", "铁路桥洞", "农贸市场"]);
                Feature::new(
                    p,
                    props(json!({
                        "name": format!("{}{spot}易涝点（{:02}）", town.short, i + 1),
                        "risk_level": risk,
                        "max_depth_cm": depth,
                    })),
                )
            })
            .collect()
    }

    /// Square cells whose centre lies in Luozhuang; densities fall off from
    /// each town centre; totals sum to exactly [`POPULATION`].
    fn population_grid(&mut self) -> Vec<Feature> {
        let (min, max) = (self.bbox.min(), self.bbox.max());
        let cols = ((max.x - min.x) / CELL_DEG).ceil() as i64;
        let rows = ((max.y - min.y) / CELL_DEG).ceil() as i64;
        let mut cells = Vec::new();
        for r in 0..rows {
            for c in 0..cols {
                let x0 = min.x + c as f64 * CELL_DEG;
                let y0 = min.y + r as f64 * CELL_DEG;
                let centre = Point::new(x0 + CELL_DEG / 2.0, y0 + CELL_DEG / 2.0);
                if !self.inside(centre) {
                    continue;
                }
                let mut density = 0.15 + 0.1 * self.rng.random::<f64>();
                for (town, tc) in &self.towns {
                    let dx = (centre.x() - tc.x()) * 91.0;
                    let dy = (centre.y() - tc.y()) * 111.0;
                    let d2 = dx * dx + dy * dy;
                    density += town.weight * (-d2 / (2.0 * town.radius_km * town.radius_km)).exp();
                }
                cells.push((r, c, x0, y0, density));
            }
        }
        let total: f64 = cells.iter().map(|c| c.4).sum();
        // Largest-remainder rounding keeps the sum exact.
        let mut shares: Vec<(usize, i64, f64)> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let exact = c.4 / total * POPULATION as f64;
                (i, exact.floor() as i64, exact - exact.floor())
            })
            .collect();
        let short = POPULATION - shares.iter().map(|s| s.1).sum::<i64>();
        let mut order: Vec<usize> = (0..shares.len()).collect();
        order.sort_by(|&a, &b| shares[b].2.total_cmp(&shares[a].2));
        for &i in order.iter().take(usize::try_from(short).unwrap_or(0)) {
            shares[i].1 += 1;
        }
        shares
            .iter()
            .map(|&(i, people, _)| {
                let (r, c, x0, y0, _) = cells[i];
                let cell = geo::Rect::new(Coord { x: x0, y: y0 }, Coord { x: x0 + CELL_DEG, y: y0 + CELL_DEG });
                // The town whose centre is nearest: what the per-town
                // figures of a planning scenario group by.
                let centre = (x0 + CELL_DEG / 2.0, y0 + CELL_DEG / 2.0);
                let town = self
                    .towns
                    .iter()
                    .min_by(|a, b| {
                        let d = |p: &Point<f64>| (p.x() - centre.0).powi(2) * 0.67 + (p.y() - centre.1).powi(2);
                        d(&a.1).total_cmp(&d(&b.1))
                    })
                    .map(|t| t.0.name);
                Feature::new(
                    cell.to_polygon(),
                    props(json!({ "name": format!("R{r:02}C{c:02}"), "population": people, "synthetic": true, "town": town })),
                )
            })
            .collect()
    }
}

/// Team type, name suffix, capabilities, headcount range.
type TeamPlan = (
    &'static str,
    &'static str,
    &'static [&'static str],
    (i64, i64),
);

fn round_point(p: Point<f64>) -> Point<f64> {
    // 1e-6° ≈ 0.1 m: as precise as any survey of these sites.
    Point::new((p.x() * 1e6).round() / 1e6, (p.y() * 1e6).round() / 1e6)
}

fn square_around(p: Point<f64>, side_m: f64) -> Polygon<f64> {
    let hx = side_m / 2.0 / 91_000.0;
    let hy = side_m / 2.0 / 111_000.0;
    geo::Rect::new(
        Coord {
            x: p.x() - hx,
            y: p.y() - hy,
        },
        Coord {
            x: p.x() + hx,
            y: p.y() + hy,
        },
    )
    .to_polygon()
}

fn simplify_parts(mp: MultiPolygon<f64>) -> geo::Geometry<f64> {
    if mp.0.len() == 1 {
        mp.0.into_iter()
            .next()
            .map(geo::Geometry::Polygon)
            .unwrap_or_else(|| geo::Geometry::MultiPolygon(MultiPolygon(vec![])))
    } else {
        geo::Geometry::MultiPolygon(mp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_the_same_on_every_build() {
        let a = build().expect("demo builds");
        let b = build().expect("demo builds");
        assert_eq!(a, b);
    }

    #[test]
    fn every_generated_point_lies_in_luozhuang() {
        let data = build().expect("demo builds");
        let boundary = data["districts"]
            .iter()
            .find(|f| f.properties["adcode"] == LUOZHUANG)
            .map(|f| f.geometry.clone())
            .expect("Luozhuang");
        for (layer, features) in &data {
            if *layer == "districts" {
                continue;
            }
            for f in features {
                if let geo::Geometry::Point(p) = f.geometry {
                    assert!(boundary.contains(&p), "{layer}: {:?} at {p:?}", f.name());
                }
            }
        }
    }
}
