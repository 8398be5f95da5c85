//! Property tests of the CQL2 parser over random and adversarial text: it
//! never panics, it answers `Ok` or a [`FilterError`] with a message, and an
//! accepted filter's canonical text parses back to the same expression and
//! the same text.

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;

use super::{parse_cql2, FilterError, MAX_DEPTH};
use crate::layers::{Catalog, LayerDef};

fn layers() -> &'static [Arc<LayerDef>] {
    static LAYERS: OnceLock<Vec<Arc<LayerDef>>> = OnceLock::new();
    LAYERS.get_or_init(|| {
        let catalog = Catalog::builtin().expect("the built-in catalog loads");
        ["rescue_teams", "incidents"]
            .iter()
            .map(|name| catalog.get(name).cloned().expect("a built-in layer"))
            .collect()
    })
}

/// The properties every parse must have, for each layer.
fn check(text: &str) -> Result<(), TestCaseError> {
    for layer in layers() {
        match parse_cql2(text, layer) {
            Ok(e) => {
                let canonical = e.to_string();
                let again = parse_cql2(&canonical, layer).map_err(|err| {
                    TestCaseError::fail(format!(
                        "{text:?} gave {canonical:?}, which does not parse: {err}"
                    ))
                })?;
                prop_assert_eq!(&again.to_string(), &canonical, "from {:?}", text);
                prop_assert_eq!(&again, &e, "from {:?}", text);
            }
            Err(FilterError(message)) => prop_assert!(!message.is_empty()),
        }
    }
    Ok(())
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        (0i64..60).prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f}")),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        Just("1e308".to_owned()),
        Just("-1e309".to_owned()),
        Just("1e-400".to_owned()),
        Just("9007199254740993".to_owned()),
        Just("-0".to_owned()),
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just("standby".to_owned()),
        Just("water_rescue".to_owned()),
        Just("2026-07-01T08:00:00+08:00".to_owned()),
        Just("罗庄%".to_owned()),
        Just("\u{200B}\u{FEFF}\u{1F600}'\\%_".to_owned()),
    ]
    .prop_map(|s| format!("'{}'", s.replace('\'', "''")))
}

fn position() -> impl Strategy<Value = String> {
    (
        number(),
        number(),
        prop_oneof![Just(118.3f64), -180.0..180.0f64],
    )
        .prop_map(|(a, b, x)| format!("{a} {b}, {x} 35"))
}

/// One predicate, often valid for one of the layers, sometimes not.
fn predicate() -> impl Strategy<Value = String> {
    let property = prop_oneof![
        Just("id"),
        Just("\"id\""),
        Just("name"),
        Just("headcount"),
        Just("status"),
        Just("capabilities"),
        Just("severity"),
        Just("reported_at"),
        Just("colour"),
    ];
    let op = prop_oneof![
        Just("="),
        Just("<>"),
        Just("<"),
        Just("<="),
        Just(">"),
        Just(">=")
    ];
    let value = prop_oneof![number(), string(), Just("TRUE".to_owned())];
    prop_oneof![
        (property.clone(), op, value.clone()).prop_map(|(p, o, v)| format!("{p} {o} {v}")),
        (property.clone(), string()).prop_map(|(p, s)| format!("{p} NOT LIKE {s}")),
        (
            property.clone(),
            proptest::collection::vec(value.clone(), 1..6)
        )
            .prop_map(|(p, v)| format!("{p} IN ({})", v.join(", "))),
        (property.clone(), number(), number())
            .prop_map(|(p, a, b)| format!("{p} BETWEEN {a} AND {b}")),
        property.prop_map(|p| format!("{p} IS NOT NULL")),
        Just("TRUE".to_owned()),
        Just("FALSE".to_owned()),
        (-200.0..200.0f64, -100.0..100.0f64)
            .prop_map(|(x, y)| format!("S_INTERSECTS(geometry, POINT({x} {y}))")),
        position().prop_map(|p| format!("S_INTERSECTS(geometry, LINESTRING({p}))")),
        (117.0..119.0f64, 34.0..36.0f64, 0.0..0.5f64, 0.0..0.5f64).prop_map(|(x, y, w, h)| {
            format!(
                "S_INTERSECTS(geometry, BBOX({x}, {y}, {}, {}))",
                x + w,
                y + h
            )
        }),
        Just(
            "S_INTERSECTS(POLYGON((118 35, 118.2 35, 118.2 35.2, 118 35.2, 118 35)), geometry)"
                .to_owned()
        ),
    ]
}

/// A predicate `rescue_teams` accepts.
fn valid() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec!["=", "<>", "<", "<=", ">", ">="]);
    prop_oneof![
        (op.clone(), any::<i32>()).prop_map(|(o, i)| format!("id {o} {i}")),
        (op, -5i64..100).prop_map(|(o, i)| format!("{i} {o} headcount")),
        Just("status = 'standby'".to_owned()),
        Just("status NOT IN ('standby', 'returning')".to_owned()),
        string().prop_map(|s| format!("name LIKE {s}")),
        string().prop_map(|s| format!("\"leader\" = {s}")),
        Just("capabilities = 'water_rescue'".to_owned()),
        Just("leader IS NOT NULL".to_owned()),
        (0i64..50, 0i64..50).prop_map(|(a, b)| format!("headcount NOT BETWEEN {a} AND {b}")),
        Just("FALSE".to_owned()),
        (-180.0..180.0f64, -90.0..90.0f64)
            .prop_map(|(x, y)| format!("S_INTERSECTS(geometry, POINT({x} {y}))")),
        (117.0..119.0f64, 34.0..36.0f64, 1e-6..0.5f64).prop_map(|(x, y, d)| {
            format!("INTERSECTS(BBOX({x}, {y}, {}, {}), geom)", x + d, y + d)
        }),
    ]
}

/// Filters built from predicates with AND, OR, NOT and parentheses, some
/// nesting past the bound.
fn expression() -> impl Strategy<Value = String> {
    prop_oneof![4 => valid(), 1 => predicate()].prop_recursive(80, 400, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..5).prop_map(|v| v.join(" AND ")),
            proptest::collection::vec(inner.clone(), 2..5).prop_map(|v| v.join(" or ")),
            inner.clone().prop_map(|e| format!("NOT {e}")),
            inner.prop_map(|e| format!("({e})")),
        ]
    })
}

fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "(",
        ")",
        ",",
        "NOT",
        "AND",
        "OR",
        "LIKE",
        "IN",
        "IS",
        "NULL",
        "BETWEEN",
        "TRUE",
        "id",
        "headcount",
        "name",
        "status",
        "=",
        "<>",
        ">=",
        "1",
        "-2.5e3",
        "'standby'",
        "'",
        "\"",
        "S_INTERSECTS",
        "geometry",
        "POINT",
        "POLYGON",
        "BBOX",
        "118 35",
        "TIMESTAMP",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn random_unicode_never_panics(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(token(), 0..40)) {
        check(&tokens.join(" "))?;
    }

    #[test]
    fn built_filters_parse_back_to_their_canonical_text(text in expression()) {
        check(&text)?;
    }

    #[test]
    fn deep_valid_filters_parse_back_near_the_bound(
        seed in valid(),
        wrappers in proptest::collection::vec((0u8..4, valid()), 40..68),
    ) {
        let mut text = seed;
        for (kind, other) in wrappers {
            text = match kind {
                0 => format!("NOT {text}"),
                1 => format!("({text})"),
                2 => format!("({text} AND {other})"),
                _ => format!("({other} OR {text})"),
            };
        }
        check(&text)?;
    }

    #[test]
    fn deep_nesting_stops_at_the_bound(
        n in 0usize..15_000,
        kind in 0u8..4,
        inner in prop::sample::select(vec![
            "id = 1",
            "name NOT LIKE 'x%'",
            "headcount BETWEEN 1 AND 2",
            "S_INTERSECTS(geometry, POINT(118 35))",
        ]),
    ) {
        let text = match kind {
            0 => format!("{}{inner}{}", "(".repeat(n), ")".repeat(n)),
            1 => format!("{}{inner}", "NOT ".repeat(n)),
            2 => format!("{}{inner}", "NOT (".repeat(n)),
            _ => format!("{}{inner}", "(id = 1 AND ".repeat(n)),
        };
        check(&text)?;
        let levels = if kind == 2 { 2 * n } else { n };
        if levels > MAX_DEPTH && text.len() <= super::MAX_TEXT_BYTES {
            for layer in layers() {
                let err = parse_cql2(&text, layer).expect_err("past the depth bound");
                prop_assert!(
                    err.0.contains("levels"),
                    "{}", err
                );
            }
        }
    }
}
