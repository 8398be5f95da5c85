//! `/items` answered from the in-memory index: the filter (bbox, property
//! tests, CQL2) is evaluated on the index's rows, `numberMatched` is the
//! count of rows that pass, and only the page's features are read from the
//! store, by id. A bbox query of 100 items out of a million points reads
//! 100 rows of the GeoPackage instead of counting through its R-tree and
//! then reading and re-checking every candidate.
//!
//! The index follows the store through the change feed: this server's
//! writes are in it before their response goes out; another program's
//! (QGIS) within the feed's poll.

use crate::{
    filter::{Expr, Literal, ID},
    index::{lonlat_to_mercator, SpatialIndex},
    store::Query,
};

/// What the index found for one `/items` request.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Every row the filter matches.
    pub matched: u64,
    /// The ids of the requested page, in the requested order.
    pub ids: Vec<i64>,
    pub descending: bool,
}

impl Page {
    /// The store query that reads the page's features, in order.
    pub fn query(&self) -> Query {
        Query {
            filter: Some(if self.ids.is_empty() {
                Expr::Const(false)
            } else {
                Expr::In {
                    property: ID.into(),
                    values: self.ids.iter().map(|i| Literal::Integer(*i)).collect(),
                }
            }),
            sort: if self.descending {
                vec![crate::store::SortKey {
                    property: ID.into(),
                    descending: true,
                }]
            } else {
                Vec::new()
            },
            limit: None,
            offset: 0,
        }
    }
}

/// The WGS84 box every feature a filter can match lies in, when the filter
/// says (a bbox, or an intersection test, at its top or in every branch).
fn bounds(e: &Expr) -> Option<[f64; 4]> {
    match e {
        Expr::Intersects(shape) => shape
            .bounding_rect()
            .map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]),
        Expr::And(parts) => parts.iter().filter_map(bounds).reduce(|a, b| {
            [
                a[0].max(b[0]),
                a[1].max(b[1]),
                a[2].min(b[2]),
                a[3].min(b[3]),
            ]
        }),
        // Every branch must be bounded, or the union is not.
        Expr::Or(parts) => {
            let boxes: Option<Vec<[f64; 4]>> = parts.iter().map(bounds).collect();
            boxes?.into_iter().reduce(|a, b| {
                [
                    a[0].min(b[0]),
                    a[1].min(b[1]),
                    a[2].max(b[2]),
                    a[3].max(b[3]),
                ]
            })
        }
        _ => None,
    }
}

/// The most ids one request keeps for its page (offset + limit).
const MAX_KEPT: usize = 100_000;

/// The `k` first ids in the page's order, kept in a heap whose top is the
/// last of them (the one a better id replaces).
enum Best {
    Ascending(usize, std::collections::BinaryHeap<i64>),
    Descending(usize, std::collections::BinaryHeap<std::cmp::Reverse<i64>>),
}

fn keep_best<T: Ord>(k: usize, heap: &mut std::collections::BinaryHeap<T>, key: T) {
    if heap.len() < k {
        heap.push(key);
    } else if heap.peek().is_some_and(|top| key < *top) {
        heap.pop();
        heap.push(key);
    }
}

impl Best {
    fn new(k: usize, descending: bool) -> Self {
        let room = k.min(4096) + 1;
        if descending {
            Best::Descending(k, std::collections::BinaryHeap::with_capacity(room))
        } else {
            Best::Ascending(k, std::collections::BinaryHeap::with_capacity(room))
        }
    }

    fn offer(&mut self, id: i64) {
        match self {
            Best::Ascending(k, h) => keep_best(*k, h, id),
            Best::Descending(k, h) => keep_best(*k, h, std::cmp::Reverse(id)),
        }
    }

    /// The kept ids, in the page's order.
    fn into_sorted(self) -> Vec<i64> {
        match self {
            Best::Ascending(_, h) => h.into_sorted_vec(),
            Best::Descending(_, h) => h.into_sorted_vec().into_iter().map(|r| r.0).collect(),
        }
    }
}

/// Web Mercator is undefined at the poles; the index holds nothing there.
const MAX_LAT: f64 = 85.051_128_779_806_59;

/// The page `query` asks for, from the index; `None` when the index cannot
/// order it as the store would (a sort on a property).
pub fn page(index: &SpatialIndex, layer: &str, query: &Query) -> Option<Page> {
    // A layer the store serves is paged and counted by the store.
    if index.in_store(layer) {
        return None;
    }
    let descending = match query.sort.as_slice() {
        [] => false,
        [k] if k.property == ID => k.descending,
        _ => return None,
    };
    let skip = usize::try_from(query.offset).unwrap_or(usize::MAX);
    let take = query
        .limit
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    // Only the first `skip + take` ids in order are kept while every match
    // is counted: a page of a ten-million-row layer holds 100 ids, not ten
    // million. A deeper page is the store's to seek.
    let wanted = skip.saturating_add(take);
    if wanted > MAX_KEPT {
        return None;
    }
    let mut best = Best::new(wanted, descending);
    let mut matched = 0u64;
    let mut visit = |r: &crate::index::Row| {
        if query.filter.as_ref().is_none_or(|f| f.matches(r)) {
            matched += 1;
            best.offer(r.id());
        }
    };
    match query.filter.as_ref().and_then(bounds) {
        Some(b) if b[0] > b[2] || b[1] > b[3] => {}
        Some(b) => {
            let (x0, y0) = lonlat_to_mercator(b[0], b[1].clamp(-MAX_LAT, MAX_LAT));
            let (x1, y1) = lonlat_to_mercator(b[2], b[3].clamp(-MAX_LAT, MAX_LAT));
            index.visit(layer, [x0, y0], [x1, y1], |rows| {
                rows.iter().for_each(&mut visit)
            });
        }
        None => index.each(layer, |rows| rows.for_each(|r| visit(&r))),
    }
    let mut ids = best.into_sorted();
    if skip >= ids.len() {
        ids.clear();
    } else {
        ids.drain(..skip);
    }
    Some(Page {
        matched,
        ids,
        descending,
    })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    use super::*;
    use crate::{
        filter::parse_cql2,
        layers::{Catalog, Feature},
        store::SortKey,
    };

    /// The index's pages against the GeoPackage's own answers to the same
    /// queries (the path every `/items` took before).
    #[tokio::test]
    async fn pages_from_the_index_match_the_store() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("t.gpkg").display());
        let store = crate::store::open(&url).await.expect("a store");
        let catalog = Catalog::builtin().expect("catalog");
        let layer = catalog.get("shelters").expect("shelters").clone();
        store.prepare(catalog.layers()).await.expect("prepared");
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let kinds = ["park", "square", "school"];
        let features: Vec<Feature> = (0..3000)
            .map(|i| {
                let p =
                    geo::Point::new(rng.random_range(117.9..118.5), rng.random_range(34.8..35.2));
                let mut props = json!({
                    "name": format!("场所{i}"), "kind": kinds[i % 3], "category": "emergency",
                });
                if rng.random_bool(0.7) {
                    props["capacity"] = json!(rng.random_range(0..4000));
                }
                Feature::new(p, props.as_object().cloned().unwrap_or_default())
            })
            .collect();
        store
            .insert(&layer, &features, "test")
            .await
            .expect("inserted");
        let index = SpatialIndex::load(store.as_ref(), &catalog)
            .await
            .expect("index");
        let filters: Vec<Option<Expr>> = vec![
            None,
            Some(parse_cql2("capacity >= 2000 AND kind = 'park'", &layer).expect("cql2")),
            Some(parse_cql2("capacity IS NULL OR kind <> 'school'", &layer).expect("cql2")),
        ];
        for round in 0..40 {
            let (x, y) = (rng.random_range(117.8..118.5), rng.random_range(34.7..35.2));
            let b = [
                x,
                y,
                x + rng.random_range(0.0..0.3),
                y + rng.random_range(0.0..0.3),
            ];
            let mut filter = filters[round % filters.len()].clone();
            if round % 4 != 3 {
                let bbox = Query::bbox(b).filter.expect("a bbox");
                filter = Some(match filter {
                    Some(f) => Expr::all(vec![bbox, f]),
                    None => bbox,
                });
            }
            let query = Query {
                filter,
                sort: if round % 5 == 0 {
                    vec![SortKey {
                        property: ID.into(),
                        descending: true,
                    }]
                } else {
                    Vec::new()
                },
                limit: Some([1, 10, 100][round % 3]),
                offset: [0, 0, 7, 200][round % 4],
            };
            let page = page(&index, &layer.name, &query).expect("the index answers");
            assert_eq!(
                page.matched,
                store.count(&layer, &query).await.expect("a count"),
                "round {round}"
            );
            let expected: Vec<i64> = store
                .features(&layer, &query)
                .await
                .expect("features")
                .iter()
                .filter_map(|f| f.id)
                .collect();
            assert_eq!(page.ids, expected, "round {round}");
            let read: Vec<i64> = store
                .features(&layer, &page.query())
                .await
                .expect("the page")
                .iter()
                .filter_map(|f| f.id)
                .collect();
            assert_eq!(read, expected, "round {round}: the page read back in order");
        }
        // A sort on a property is left to the store.
        let by_capacity = Query {
            sort: vec![SortKey {
                property: "capacity".into(),
                descending: false,
            }],
            ..Query::default()
        };
        assert!(page(&index, &layer.name, &by_capacity).is_none());
        // So is a page past the ids one request keeps.
        let deep = Query {
            offset: MAX_KEPT as u64,
            limit: Some(10),
            ..Query::default()
        };
        assert!(page(&index, &layer.name, &deep).is_none());
    }
}
