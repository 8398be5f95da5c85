//! A scenario as a planner takes it away: Markdown for the leaders'
//! briefing, CSV for a spreadsheet (UTF-8 with a byte-order mark, which
//! Excel needs to read Chinese), GeoJSON for a GIS.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::store::ScenarioRecord;

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "—".into(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// Markdown cells must not break the table.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn sites(r: &ScenarioRecord) -> &[Value] {
    r.results["siting"]["sites"]["features"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

pub fn markdown(r: &ScenarioRecord) -> String {
    let s = &r.results["siting"];
    let i = &r.inputs;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# 应急避难场所选址方案 / Shelter siting scenario: {}\n",
        cell(&r.name)
    );
    let _ = writeln!(
        md,
        "Scenario {} by {}, {}. One map at change {}.\n",
        r.id,
        cell(&r.actor),
        r.created_at,
        num(&i["map_seq"])
    );
    let _ = writeln!(md, "## Question\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    for (label, v) in [
        ("Category 类别", &i["category"]),
        ("New sites k 新增场所数", &i["k"]),
        ("Service radius 服务半径 (m)", &i["radius_m"]),
        ("Candidates 候选场址", &i["candidates"]),
        ("Capacity-aware 考虑容量", &i["capacity_aware"]),
        ("Objective 目标", &i["objective"]),
    ] {
        let shown = if v.is_array() {
            format!("{} points", v.as_array().map_or(0, Vec::len))
        } else {
            text(v)
        };
        let _ = writeln!(md, "| {label} | {} |", cell(&shown));
    }
    let _ = writeln!(md, "\n## Population covered 覆盖人口\n");
    let _ = writeln!(md, "| | total 总人口 | covered 已覆盖 | uncovered 未覆盖 | ratio 覆盖率 |\n|---|---|---|---|---|");
    for (label, t) in [("before 现状", &s["before"]), ("after 方案", &s["after"])] {
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {:.1} % |",
            num(&t["total_population"]),
            num(&t["covered_population"]),
            num(&t["uncovered_population"]),
            t["coverage_ratio"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    let proof = if s["optimal"].as_bool() == Some(true) {
        format!("proven optimal ({}) 已证明最优", text(&s["method"]))
    } else {
        format!(
            "not proven optimal ({}): at most {:.2} % below the best possible 未证明最优，差距上限 {:.2} %",
            text(&s["method"]),
            s["gap"].as_f64().unwrap_or(0.0) * 100.0,
            s["gap"].as_f64().unwrap_or(0.0) * 100.0
        )
    };
    let _ = writeln!(md, "\nAnswer: {proof}.\n");
    let _ = writeln!(md, "## Proposed sites 建议场址\n");
    let _ = writeln!(md, "| rank 序号 | candidate 候选 | name 名称 | lon | lat | newly covered 新增覆盖 | capacity 容量 | load 承载 |\n|---|---|---|---|---|---|---|---|");
    for f in sites(r) {
        let p = &f["properties"];
        let c = &f["geometry"]["coordinates"];
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            num(&p["rank"]),
            cell(&text(&p["candidate"])),
            cell(&text(&p["name"])),
            text(&c[0]),
            text(&c[1]),
            num(&p["marginal_gain"]),
            num(&p["capacity"]),
            num(&p["load"])
        );
    }
    if let Some(towns) = r.results["by_town"].as_array() {
        let _ = writeln!(md, "\n## By town 分乡镇（街道）\n");
        let _ = writeln!(md, "| town 乡镇 | total 总人口 | covered before 现状覆盖 | covered after 方案覆盖 |\n|---|---|---|---|");
        for t in towns {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                cell(&text(&t["town"])),
                num(&t["total_population"]),
                num(&t["covered_before"]),
                num(&t["covered_after"])
            );
        }
    }
    if let Some(cats) = r.results["by_category"].as_array() {
        let _ = writeln!(md, "\n## By shelter category 分类别\n");
        let _ = writeln!(md, "| category 类别 | radius 半径 (m) | covered before 现状 | covered after 方案 |\n|---|---|---|---|");
        for c in cats {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                text(&c["category"]),
                num(&c["radius_m"]),
                num(&c["covered_before"]),
                num(&c["covered_after"])
            );
        }
    }
    let ruled = s["ruled_out"].as_array().map_or(0, Vec::len);
    let _ = writeln!(md, "\n## Ruled out 排除的候选\n\n{ruled} candidates were ruled out (flood-risk zones, hazard evacuation radii, or excluded by the planner).");
    let _ = writeln!(md, "\n## Standards used 依据标准\n");
    let st = &s["standards"];
    let _ = writeln!(
        md,
        "- Service radius {} m: {}",
        num(&st["radius_m"]["value"]),
        text(&st["radius_m"]["source"])
    );
    let _ = writeln!(
        md,
        "- Effective area per person {} m²: {}",
        num(&st["area_per_person_m2"]["value"]),
        text(&st["area_per_person_m2"]["source"])
    );
    let _ = writeln!(md, "- Exclusions: {}", text(&st["exclusions"]));
    let _ = writeln!(md, "\nDistances are great-circle metres from population-cell centroids. Population figures are those of the population layer (the demo's grid is synthetic and labelled so).");
    md
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One row per proposed site, the scenario's figures repeated on each so
/// that the sheet stands alone.
pub fn csv(r: &ScenarioRecord) -> String {
    let s = &r.results["siting"];
    let st = &s["standards"];
    let mut out = String::from("\u{feff}");
    out.push_str("scenario,rank,candidate,name,lon,lat,marginal_gain,capacity,load,category,radius_m,radius_source,area_per_person_m2,area_source,covered_before,covered_after,total_population,optimal,gap\n");
    for f in sites(r) {
        let p = &f["properties"];
        let c = &f["geometry"]["coordinates"];
        let row = [
            r.name.clone(),
            text(&p["rank"]),
            text(&p["candidate"]),
            text(&p["name"]).replace('—', ""),
            text(&c[0]),
            text(&c[1]),
            text(&p["marginal_gain"]),
            text(&p["capacity"]).replace('—', ""),
            text(&p["load"]),
            text(&r.inputs["category"]),
            text(&st["radius_m"]["value"]),
            text(&st["radius_m"]["source"]),
            text(&st["area_per_person_m2"]["value"]),
            text(&st["area_per_person_m2"]["source"]),
            text(&s["before"]["covered_population"]),
            text(&s["after"]["covered_population"]),
            text(&s["before"]["total_population"]),
            text(&s["optimal"]),
            text(&s["gap"]),
        ];
        out.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

/// The proposed sites, with the scenario named on the collection.
pub fn geojson(r: &ScenarioRecord) -> Value {
    json!({
        "type": "FeatureCollection",
        "name": r.name,
        "scenario": r.id,
        "features": sites(r),
    })
}
