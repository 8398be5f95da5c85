//! Approximate places of Luozhuang for the GENERATED part of the demo.
//!
//! The town names are the district's real subdistricts and towns; their
//! centres and the river courses below are rough GCJ-02 readings good to a
//! kilometre or two, meant only to make the generated data look like the
//! district. They are not survey data.

#[derive(Debug, Clone, Copy)]
pub struct Town {
    pub name: &'static str,
    /// Short form used in generated names.
    pub short: &'static str,
    pub lon: f64,
    pub lat: f64,
    /// Relative population share.
    pub weight: f64,
    /// Spread of the population around the centre (one standard deviation).
    pub radius_km: f64,
    pub subdistrict: bool,
}

impl Town {
    pub fn kind_suffix(&self) -> &'static str {
        if self.subdistrict {
            "街道"
        } else {
            "镇"
        }
    }
}

const fn town(
    name: &'static str,
    short: &'static str,
    lon: f64,
    lat: f64,
    weight: f64,
    radius_km: f64,
    subdistrict: bool,
) -> Town {
    Town {
        name,
        short,
        lon,
        lat,
        weight,
        radius_km,
        subdistrict,
    }
}

pub const TOWNS: &[Town] = &[
    town("罗庄", "罗庄", 118.285, 34.997, 3.0, 2.5, true),
    town("傅庄", "傅庄", 118.310, 35.030, 1.5, 2.0, true),
    town("盛庄", "盛庄", 118.330, 34.990, 1.8, 2.0, true),
    town("册山", "册山", 118.230, 35.020, 1.0, 2.0, true),
    town("罗西", "罗西", 118.220, 34.970, 1.0, 2.0, true),
    town("高都", "高都", 118.340, 34.940, 1.2, 2.0, true),
    town("沂堂", "沂堂", 118.360, 34.840, 0.8, 2.0, false),
    town("褚墩", "褚墩", 118.160, 34.880, 0.8, 2.0, false),
    town("黄山", "黄山", 118.240, 34.840, 0.7, 2.0, false),
];

pub struct River {
    pub name: &'static str,
    pub course: &'static [(f64, f64)],
    pub half_width_deg: f64,
    pub risk_level: &'static str,
    pub kind: &'static str,
}

pub const RIVERS: &[River] = &[
    River {
        name: "沂河沿岸洪泛区",
        course: &[
            (118.395, 35.06),
            (118.400, 35.00),
            (118.410, 34.95),
            (118.415, 34.90),
            (118.420, 34.85),
            (118.425, 34.75),
        ],
        half_width_deg: 0.006,
        risk_level: "high",
        kind: "river_floodplain",
    },
    River {
        name: "邳苍分洪道",
        course: &[
            (118.390, 34.93),
            (118.370, 34.88),
            (118.350, 34.82),
            (118.330, 34.75),
        ],
        half_width_deg: 0.004,
        risk_level: "major",
        kind: "flood_diversion",
    },
    River {
        name: "涑河沿线低洼区",
        course: &[
            (118.15, 35.02),
            (118.22, 35.01),
            (118.28, 35.00),
            (118.34, 34.99),
            (118.40, 34.99),
        ],
        half_width_deg: 0.002,
        risk_level: "medium",
        kind: "river_floodplain",
    },
    River {
        name: "陷泥河沿线低洼区",
        course: &[
            (118.20, 34.95),
            (118.27, 34.93),
            (118.33, 34.91),
            (118.39, 34.90),
        ],
        half_width_deg: 0.002,
        risk_level: "medium",
        kind: "low_lying",
    },
    River {
        name: "武河沿岸洪泛区",
        course: &[
            (118.12, 34.98),
            (118.14, 34.90),
            (118.17, 34.82),
            (118.19, 34.75),
        ],
        half_width_deg: 0.003,
        risk_level: "high",
        kind: "river_floodplain",
    },
];

pub const FAMILY_NAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "孙", "徐", "高", "朱", "胡", "郭", "马", "周", "吴",
    "于", "宋",
];
pub const GIVEN_NAMES: &[&str] = &[
    "建国", "志强", "海涛", "秀英", "玉兰", "立新", "春华", "振东", "晓燕", "文博", "永刚", "俊杰",
    "丽娟", "国庆", "明", "伟", "磊", "静",
];
pub const FIRM_WORDS: &[&str] = &[
    "恒信", "鲁南", "金源", "宏达", "华盛", "沂蒙", "正泰", "泰和", "瑞丰", "兴隆", "东方", "鑫达",
];

pub fn industry_suffix(industry: &str) -> &'static str {
    match industry {
        "hazchem_production" => "化学品有限公司",
        "chemical" => "化工有限公司",
        "metallurgy" => "冶金有限公司",
        "wood_processing" => "木业有限公司",
        "food_cold_storage" => "冷链食品有限公司",
        "hazchem_storage" => "化学品仓储有限公司",
        "building_ceramics" => "陶瓷有限公司",
        "building_materials" => "新型建材有限公司",
        "logistics" => "物流有限公司",
        "machinery" => "机械有限公司",
        _ => "有限公司",
    }
}

pub fn incident_label(kind: &str) -> &'static str {
    match kind {
        "waterlogging" => "道路积水",
        "flood" => "河道洪水",
        "levee_breach" => "堤防险情",
        "hazchem_leak" => "危化品泄漏",
        _ => "突发事件",
    }
}
