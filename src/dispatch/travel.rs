//! The travel-time model: great-circle distance × a road factor ÷ a speed
//! per team type, all from the settings (`[dispatch]`). Deliberately
//! simple and stated: a dispatcher can check any ETA by hand, and within
//! one team type ETA ranks exactly as distance does.

use crate::settings::DispatchSettings;

#[derive(Debug, Clone)]
pub struct Travel<'a> {
    settings: &'a DispatchSettings,
}

impl<'a> Travel<'a> {
    pub fn new(settings: &'a DispatchSettings) -> Self {
        Self { settings }
    }

    /// km/h of a team type (the default for unknown types and for
    /// features that are not teams: supply trucks, experts' cars).
    pub fn speed_kmh(&self, team_type: Option<&str>) -> f64 {
        team_type
            .and_then(|t| self.settings.speed_kmh.get(t).copied())
            .unwrap_or(self.settings.default_speed_kmh)
    }

    /// Minutes to cover `distance_m` of great-circle distance.
    pub fn eta_min(&self, distance_m: f64, team_type: Option<&str>) -> f64 {
        distance_m * self.settings.road_factor / 1000.0 / self.speed_kmh(team_type) * 60.0
    }

    /// The least ETA any feature at `distance_m` or further can have: what
    /// lets a nearest walk in distance order stop early and still rank by
    /// ETA exactly.
    pub fn least_eta_min(&self, distance_m: f64) -> f64 {
        let fastest = self
            .settings
            .speed_kmh
            .values()
            .copied()
            .fold(self.settings.default_speed_kmh, f64::max);
        distance_m * self.settings.road_factor / 1000.0 / fastest * 60.0
    }

    pub fn max_eta_min(&self) -> f64 {
        self.settings.max_eta_min
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_is_distance_times_road_factor_over_speed() {
        let s = DispatchSettings::default();
        let t = Travel::new(&s);
        // 10 km × 1.3 at 35 km/h = 22.29 min.
        let eta = t.eta_min(10_000.0, Some("water_rescue"));
        assert!((eta - 13.0 / 35.0 * 60.0).abs() < 1e-9, "{eta}");
        // Constant ratio within a type; unknown type at the default speed.
        let r1 = t.eta_min(1_000.0, Some("medical")) / 1_000.0;
        let r2 = t.eta_min(7_777.0, Some("medical")) / 7_777.0;
        assert!((r1 - r2).abs() < 1e-12);
        assert_eq!(t.speed_kmh(Some("no_such_type")), s.default_speed_kmh);
        // The bound never exceeds a real ETA.
        for ty in s.speed_kmh.keys() {
            assert!(t.least_eta_min(5_000.0) <= t.eta_min(5_000.0, Some(ty)));
        }
    }
}
