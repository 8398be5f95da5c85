//! The shelter categories and the figures of the standards that planning
//! defaults to, each with its source, so that a report can say which
//! standard a figure follows (the settings carry the figures; this names
//! where the defaults come from).

use serde_json::{json, Value};

use crate::settings::PlanningSettings;

/// A shelter category of GB 50413-2007 and GB/T 44013-2024.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// 紧急避难场所: the first minutes to hours, close to homes.
    Emergency,
    /// 固定避难场所: days to weeks.
    Fixed,
    /// 中心避难场所: a fixed shelter that also hosts command, medical and
    /// supply functions.
    Central,
}

impl Category {
    pub const ALL: [Category; 3] = [Category::Emergency, Category::Fixed, Category::Central];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "emergency" => Some(Self::Emergency),
            "fixed" => Some(Self::Fixed),
            "central" => Some(Self::Central),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Emergency => "emergency",
            Self::Fixed => "fixed",
            Self::Central => "central",
        }
    }

    /// Whether a shelter of category `shelter` serves people looking for
    /// a shelter of this category. A fixed shelter also serves as an
    /// emergency one (it is open from the first hour, only larger), and a
    /// central shelter is a fixed one: the higher grades serve the lower.
    pub fn served_by(self, shelter: Category) -> bool {
        shelter >= self
    }

    pub fn title_zh(self) -> &'static str {
        match self {
            Self::Emergency => "紧急避难场所",
            Self::Fixed => "固定避难场所",
            Self::Central => "中心避难场所",
        }
    }
}

/// Where the default service radius of a category comes from.
pub fn radius_source(c: Category) -> &'static str {
    match c {
        Category::Emergency => "GB 50413-2007 城市抗震防灾规划标准 §8.2: 500 m, about a 10-minute walk (quoted by secondary sources)",
        Category::Fixed => "GB 50413-2007 城市抗震防灾规划标准 §8.2: 2–3 km, about a 1-hour walk; default the lower end, 2 km (quoted by secondary sources)",
        Category::Central => "derived, not a code figure: one central shelter per ≤ 50 km² of built-up land (general code on disaster shelters §4.2.1, secondary source); a circle of 50 km² has a radius of ≈ 4 km",
    }
}

/// Where the default minimum effective area per person comes from.
pub fn area_source(c: Category) -> &'static str {
    match c {
        Category::Emergency => "GB 50413-2007 §8.2.8: ≥ 1 m² per person (secondary sources)",
        Category::Fixed | Category::Central => {
            "GB 50413-2007 §8.2.8: ≥ 2 m² per person for fixed shelters (secondary sources); a central shelter is a fixed one"
        }
    }
}

/// The figures a run used: the settings' (or the request's) values with
/// their sources; a value a request overrode says so.
pub struct Figures {
    pub category: Category,
    pub radius_m: f64,
    pub area_per_person_m2: f64,
    radius_overridden: bool,
    area_overridden: bool,
}

impl Figures {
    pub fn new(
        settings: &PlanningSettings,
        category: Category,
        radius_m: Option<f64>,
        area_per_person_m2: Option<f64>,
    ) -> Self {
        let c = category.as_str();
        Self {
            category,
            radius_m: radius_m
                .or_else(|| settings.radius_m.get(c))
                .unwrap_or(500.0),
            area_per_person_m2: area_per_person_m2
                .or_else(|| settings.area_per_person_m2.get(c))
                .unwrap_or(1.0),
            // A request that repeats the standard's figure still follows
            // the standard, and the report should say which.
            radius_overridden: radius_m.is_some() && radius_m != settings.radius_m.get(c),
            area_overridden: area_per_person_m2.is_some()
                && area_per_person_m2 != settings.area_per_person_m2.get(c),
        }
    }

    /// As the API and the reports show them.
    pub fn to_json(&self) -> Value {
        let source = |overridden: bool, default: &str| {
            if overridden {
                "set by the request".to_owned()
            } else {
                default.to_owned()
            }
        };
        json!({
            "radius_m": {
                "value": self.radius_m,
                "source": source(self.radius_overridden, radius_source(self.category)),
            },
            "area_per_person_m2": {
                "value": self.area_per_person_m2,
                "source": source(self.area_overridden, area_source(self.category)),
            },
            "exclusions": "flood-risk zones (行洪区, 蓄滞洪区, 山洪危险区 and others of the flood_zones layer) and each hazard source's evacuation radius: GB 51143-2015 and the draft rules for temporary shelters art. 6 exclude floodways and flash-flood zones and require safe distances from hazardous chemicals",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_grades_serve_the_lower() {
        assert!(Category::Emergency.served_by(Category::Fixed));
        assert!(Category::Emergency.served_by(Category::Central));
        assert!(Category::Fixed.served_by(Category::Central));
        assert!(!Category::Fixed.served_by(Category::Emergency));
        assert!(!Category::Central.served_by(Category::Fixed));
    }

    #[test]
    fn defaults_come_from_the_settings_with_their_source() {
        let s = PlanningSettings::default();
        let f = Figures::new(&s, Category::Fixed, None, None);
        assert_eq!((f.radius_m, f.area_per_person_m2), (2_000.0, 2.0));
        let j = f.to_json();
        assert!(j["radius_m"]["source"]
            .as_str()
            .is_some_and(|t| t.contains("GB 50413-2007")));
        let f = Figures::new(&s, Category::Emergency, Some(300.0), None);
        assert_eq!(f.radius_m, 300.0);
        assert_eq!(f.to_json()["radius_m"]["source"], "set by the request");
        let f = Figures::new(&s, Category::Emergency, Some(500.0), None);
        assert!(f.to_json()["radius_m"]["source"]
            .as_str()
            .is_some_and(|t| t.contains("GB 50413-2007")));
    }
}
