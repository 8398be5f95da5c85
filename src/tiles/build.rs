//! Cutting one Mapbox Vector Tile (spec 2.1) from the in-memory index.
//!
//! Geometries are clipped exactly (areas ring by ring against the box, see
//! `clip`; lines with geo's boolean operations) to the tile
//! grown by a buffer, simplified to a fraction of a pixel, oriented as the
//! spec wants (exterior rings clockwise in tile space), and quantised to the
//! 4096 extent. Dense point layers are clustered on a grid so a tile stays
//! small, and every point is either drawn or counted in a cluster.

use crate::{
    crs::Crs,
    filter::Expr,
    index::{tile_bounds, Row, Rows, Scalar, SpatialIndex},
    layers::{Feature, LayerDef, PropertyType},
};
use geo::{BooleanOps, Orient};
use mvt::{GeomEncoder, GeomType};

/// How much further than a tile's buffer a GCJ-02 or BD-09 tile looks for
/// the WGS84 features the datum shift may bring in, in Web Mercator metres
/// and in degrees (held rows are searched in the one, the store in the
/// other); both bounds are checked over China in the tests.
const SHIFT_SLACK_M: f64 = 3_000.0;
const SHIFT_SLACK_DEG: f64 = 0.03;

/// Tile coordinates run over 0..EXTENT.
pub const EXTENT: u32 = 4096;
/// Geometry kept beyond each tile edge, in tile units (so strokes and
/// labels meet across tile borders).
pub const BUFFER: f64 = 64.0;
/// Zooms below which a point layer with more than [`POINT_BUDGET`] points in
/// a tile is clustered.
pub const CLUSTER_BELOW_ZOOM: u8 = 15;
pub const POINT_BUDGET: usize = 300;
/// Past this many points in one tile, a point layer is clustered at any
/// zoom: a z16 tile of a dense industrial park held 100,000 points (4.2 MB)
/// at ten million. Each zoom deeper splits a cluster cell in four, so the
/// points come back as the map zooms in (the deepest zoom is 22).
pub const DENSE_POINT_BUDGET: usize = 5_000;
/// Cluster grid cell, in tile units: 16 cells across a tile, 32 screen
/// pixels apart as MapLibre draws 512-pixel tiles, so neighbouring cluster
/// circles and their counts stay apart (a 64-unit grid piled them up).
pub const CLUSTER_CELL: f64 = 256.0;

/// The tile z/x/y of the given layers, or `None` when it holds nothing.
///
/// With a `crs` other than WGS84 the tile is cut on that datum's grid, so
/// layers sit on AMap/Tencent (GCJ-02) or Baidu (BD-09) basemaps.
pub fn build_tile(
    index: &SpatialIndex,
    layers: &[&LayerDef],
    (z, x, y): (u8, u32, u32),
    filter: &dyn Fn(&LayerDef) -> Option<Expr>,
    crs: Crs,
) -> Option<Vec<u8>> {
    let named: Vec<(&LayerDef, &str)> = layers.iter().map(|l| (*l, l.name.as_str())).collect();
    build_named(index, &named, (z, x, y), filter, crs)
}

/// One layer's tile with its MVT layer called `name` (for basemaps).
pub fn build_tile_named(
    index: &SpatialIndex,
    layer: &LayerDef,
    name: &str,
    zxy: (u8, u32, u32),
) -> Option<Vec<u8>> {
    build_named(index, &[(layer, name)], zxy, &|_| None, Crs::Wgs84)
}

fn build_named(
    index: &SpatialIndex,
    layers: &[(&LayerDef, &str)],
    (z, x, y): (u8, u32, u32),
    filter: &dyn Fn(&LayerDef) -> Option<Expr>,
    crs: Crs,
) -> Option<Vec<u8>> {
    with_cut((z, x, y), |cut, bmin, bmax| {
        build_layers(index, layers, (z, x, y), filter, crs, cut, bmin, bmax)
    })
}

/// Call `f` with how tile z/x/y is cut and its buffered Web Mercator box.
fn with_cut<R>((z, x, y): (u8, u32, u32), f: impl FnOnce(&Cut, [f64; 2], [f64; 2]) -> R) -> R {
    let (min, max) = tile_bounds(z, x, y);
    let size = max[0] - min[0];
    let unit = size / f64::from(EXTENT);
    let pad = BUFFER * unit;
    let (bmin, bmax) = ([min[0] - pad, min[1] - pad], [max[0] + pad, max[1] + pad]);
    let clip_rect = geo::Rect::new(
        geo::coord! { x: bmin[0], y: bmin[1] },
        geo::coord! { x: bmax[0], y: bmax[1] },
    );
    let clip_polygon = clip_rect.to_polygon();
    let to_tile =
        |c: geo::Coord<f64>| -> (f64, f64) { ((c.x - min[0]) / unit, (max[1] - c.y) / unit) };
    let cut = Cut {
        z,
        bounds: (min, max),
        rect: clip_rect,
        clip: &clip_polygon,
        unit,
        to_tile: &to_tile,
    };
    f(&cut, bmin, bmax)
}

#[allow(clippy::too_many_arguments)]
fn build_layers(
    index: &SpatialIndex,
    layers: &[(&LayerDef, &str)],
    (z, x, y): (u8, u32, u32),
    filter: &dyn Fn(&LayerDef) -> Option<Expr>,
    crs: Crs,
    cut: &Cut,
    bmin: [f64; 2],
    bmax: [f64; 2],
) -> Option<Vec<u8>> {
    let mut tile = mvt::Tile::new(EXTENT);
    for &(layer, mvt_name) in layers {
        let condition = filter(layer);
        let keep = |e: &Row| condition.as_ref().is_none_or(|c| c.matches(e));
        if crs == Crs::Wgs84 && condition.is_none() {
            let counted = index.with_rows(&layer.name, |rows| {
                clustered_from_counts(rows?, layer, mvt_name, &mut tile, (z, x, y), cut)
            });
            if counted.is_some() {
                continue;
            }
        }
        if crs == Crs::Wgs84 {
            index.visit(&layer.name, bmin, bmax, |found| {
                let entries: Vec<Row> = found.into_iter().filter(keep).collect();
                add_layer(&mut tile, layer, mvt_name, &entries, cut);
            });
        } else {
            // BD-09 (GCJ-02's shift and Baidu's own) moves a point by up
            // to 1.8 km of Web Mercator in China (the test below): look 3 km
            // further, then place each feature on the datum's grid (as
            // rows of their own, so the same code cuts them). 1 km missed
            // Baidu's edge features.
            let slack = SHIFT_SLACK_M;
            let shifted: Vec<Feature> = index.visit(
                &layer.name,
                [bmin[0] - slack, bmin[1] - slack],
                [bmax[0] + slack, bmax[1] + slack],
                |found| {
                    found
                        .into_iter()
                        .filter(keep)
                        .map(|r| {
                            let mut f = r.feature();
                            f.geometry = crs.geometry_from_wgs84(&f.geometry);
                            f
                        })
                        .collect()
                },
            );
            let (rows, _) = Rows::load(layer, shifted);
            let entries = rows.search(&[bmin[0], bmin[1], bmax[0], bmax[1]]);
            add_layer(&mut tile, layer, mvt_name, &entries, cut);
        }
    }
    if tile.num_layers() == 0 {
        return None;
    }
    tile.to_bytes().ok()
}

/// Where a tile is cut: its zoom, Mercator bounds, the buffered tile (as a
/// box and as a polygon), metres per tile unit and the Mercator → tile-unit
/// transform.
struct Cut<'a> {
    z: u8,
    bounds: ([f64; 2], [f64; 2]),
    rect: geo::Rect<f64>,
    clip: &'a geo::Polygon<f64>,
    unit: f64,
    to_tile: &'a dyn Fn(geo::Coord<f64>) -> (f64, f64),
}

/// One catalog layer's MVT layer (and its label points) in the tile.
fn add_layer(tile: &mut mvt::Tile, layer: &LayerDef, mvt_name: &str, entries: &[Row], cut: &Cut) {
    if entries.is_empty() {
        return;
    }
    let mut mvt_layer = tile.create_layer(mvt_name);
    let points_only = entries.iter().all(|e| e.point().is_some());
    let dense = entries.len() > DENSE_POINT_BUDGET;
    if points_only && entries.len() > POINT_BUDGET && (cut.z < CLUSTER_BELOW_ZOOM || dense) {
        mvt_layer = clustered(mvt_layer, layer, entries, cut.to_tile);
    } else {
        for e in entries {
            let Some(geom) = encode(&e.mercator(), cut) else {
                continue;
            };
            let mut f = mvt_layer.into_feature(geom);
            f.set_id(u64::try_from(e.id()).unwrap_or_default());
            add_properties(&mut f, layer, e);
            mvt_layer = f.into_layer();
        }
    }
    if mvt_layer.num_features() > 0 {
        // A layer name is unique per tile by construction.
        let _ = tile.add_layer(mvt_layer);
    }
    if !layer.labels_areas() {
        return;
    }
    let labels = labels(
        tile.create_layer(&label_layer(mvt_name)),
        layer,
        entries,
        cut.bounds,
        cut.to_tile,
    );
    if labels.num_features() > 0 {
        let _ = tile.add_layer(labels);
    }
}

/// The properties a tile carries for styling and popups: id, name and every
/// scalar property (arrays and records stay in the API).
pub fn tile_fields(layer: &LayerDef) -> Vec<(&str, PropertyType)> {
    layer
        .properties
        .iter()
        .filter(|p| is_tile_field(p))
        .map(|p| (p.name.as_str(), p.kind))
        .collect()
}

fn is_tile_field(p: &crate::layers::PropertyDef) -> bool {
    !matches!(p.kind, PropertyType::Array | PropertyType::Records)
        && !matches!(p.name.as_str(), "phone" | "description")
}

fn add_properties(f: &mut mvt::Feature, layer: &LayerDef, e: &Row) {
    f.add_tag_sint("id", e.id());
    // Schema order is column order: each field read by its position, not
    // looked up by name per feature.
    for (column, p) in layer.properties.iter().enumerate() {
        if !is_tile_field(p) {
            continue;
        }
        let name = p.name.as_str();
        match e.scalar_at(column) {
            Some(Scalar::Text(s)) => f.add_tag_string(name, s),
            Some(Scalar::Bool(b)) => f.add_tag_bool(name, b),
            Some(Scalar::Integer(i)) => f.add_tag_sint(name, i),
            Some(Scalar::Number(n)) => f.add_tag_double(name, n),
            None => {}
        }
    }
}

/// The MVT layer holding the label points of a layer's named areas.
pub fn label_layer(layer: &str) -> String {
    format!("{layer}_label")
}

/// Label points of the areas whose label falls inside the tile proper (not
/// its buffer), so each area is labelled by exactly one tile per zoom.
fn labels(
    mut mvt_layer: mvt::Layer,
    layer: &LayerDef,
    entries: &[Row],
    (min, max): ([f64; 2], [f64; 2]),
    to_tile: &dyn Fn(geo::Coord<f64>) -> (f64, f64),
) -> mvt::Layer {
    for e in entries {
        let Some(p) = e.label() else { continue };
        if p.x() < min[0] || p.x() >= max[0] || p.y() <= min[1] || p.y() > max[1] {
            continue;
        }
        let (x, y) = to_tile(p.0);
        let Ok(geom) = GeomEncoder::new(GeomType::Point)
            .point(x, y)
            .and_then(|g| g.encode())
        else {
            continue;
        };
        let mut f = mvt_layer.into_feature(geom);
        f.set_id(u64::try_from(e.id()).unwrap_or_default());
        add_properties(&mut f, layer, e);
        mvt_layer = f.into_layer();
    }
    mvt_layer
}

/// A cluster cell's members: how many, the sum of their tile positions,
/// and (when alone) the point itself.
#[derive(Clone, Copy)]
struct Cell<'a> {
    n: u64,
    sx: f64,
    sy: f64,
    first: Option<Row<'a>>,
}

/// The buffered tile spans cluster cells -1..=16 each way (one more for a
/// point exactly on the buffer's far edge): a flat grid, not a map.
const SIDE: usize = (EXTENT as f64 / CLUSTER_CELL) as usize + 3;

fn grid_slot(t: f64) -> usize {
    ((t / CLUSTER_CELL).floor() + 1.0).clamp(0.0, (SIDE - 1) as f64) as usize
}

fn empty_grid<'a>() -> Vec<Cell<'a>> {
    vec![
        Cell {
            n: 0,
            sx: 0.0,
            sy: 0.0,
            first: None,
        };
        SIDE * SIDE
    ]
}

/// Grid clustering: a cell with one point keeps the point itself; a cell
/// with more becomes one point at their mean, with `point_count`.
fn clustered<'a>(
    mvt_layer: mvt::Layer,
    layer: &LayerDef,
    entries: &[Row<'a>],
    to_tile: &dyn Fn(geo::Coord<f64>) -> (f64, f64),
) -> mvt::Layer {
    let mut cells = empty_grid();
    for e in entries {
        if let Some([x, y]) = e.point() {
            let (tx, ty) = to_tile(geo::coord! { x: x, y: y });
            let c = &mut cells[grid_slot(tx) * SIDE + grid_slot(ty)];
            c.n += 1;
            c.sx += tx;
            c.sy += ty;
            c.first.get_or_insert(*e);
        }
    }
    emit_clusters(mvt_layer, layer, cells)
}

/// The clustered layer of a big point layer from its low-zoom counts: the
/// 66 × 66 count cells of the buffered tile (each 64 units, the buffer's
/// width) summed into the cluster grid, the points themselves read only
/// for cells that hold one. `None` when the counts cannot answer (the
/// zoom is too high, the layer too small or not all points) or the tile
/// holds few enough points to draw each.
fn clustered_from_counts(
    rows: &Rows,
    layer: &LayerDef,
    mvt_name: &str,
    tile: &mut mvt::Tile,
    (z, x, y): (u8, u32, u32),
    cut: &Cut,
) -> Option<()> {
    use crate::index::pyramid::{MAX_ZOOM, PER_TILE};
    if z > MAX_ZOOM || z >= CLUSTER_BELOW_ZOOM {
        return None;
    }
    let counts = rows.pyramid()?;
    let per = i64::from(PER_TILE);
    let (fx0, fy0) = (i64::from(x) * per, i64::from(y) * per);
    let (min, max) = cut.bounds;
    let fine = f64::from(EXTENT) / f64::from(PER_TILE);
    let mut cells = empty_grid();
    let mut total = 0u64;
    for dx in -1..=per {
        for dy in -1..=per {
            let c = counts.cell(z, fx0 + dx, fy0 + dy);
            if c.n == 0 {
                continue;
            }
            total += c.n;
            let n = c.n as f64;
            // Sums of tile positions from the sums of Mercator positions.
            let sx = (c.sx as f64 / 100.0 - n * min[0]) / cut.unit;
            let sy = (n * max[1] - c.sy as f64 / 100.0) / cut.unit;
            // The count cell's middle decides its cluster cell.
            let (mx, my) = ((dx as f64 + 0.5) * fine, (dy as f64 + 0.5) * fine);
            let g = &mut cells[grid_slot(mx) * SIDE + grid_slot(my)];
            g.n += c.n;
            g.sx += sx;
            g.sy += sy;
        }
    }
    if total <= POINT_BUDGET as u64 {
        return None;
    }
    // A cell of one point draws the point: find it where the sums put it.
    for g in cells.iter_mut().filter(|g| g.n == 1) {
        let (px, py) = (min[0] + g.sx * cut.unit, max[1] - g.sy * cut.unit);
        let slack = 0.05;
        g.first = rows
            .search(&[px - slack, py - slack, px + slack, py + slack])
            .into_iter()
            .find(|r| r.point().is_some());
    }
    let layer_out = emit_clusters(tile.create_layer(mvt_name), layer, cells);
    if layer_out.num_features() > 0 {
        let _ = tile.add_layer(layer_out);
    }
    Some(())
}

/// Merge and encode the cluster cells.
fn emit_clusters(mut mvt_layer: mvt::Layer, layer: &LayerDef, cells: Vec<Cell>) -> mvt::Layer {
    // Points that straddle a cell corner would pile up overlapping
    // circles: a cluster whose centre lies within a cell's width of a
    // larger one joins it (largest first, so the big ones stay put), and
    // the circles left stand a cell apart.
    let mut occupied: Vec<Cell> = cells.into_iter().filter(|c| c.n > 0).collect();
    occupied.sort_by_key(|c| std::cmp::Reverse(c.n));
    let mut merged: Vec<Cell> = Vec::with_capacity(occupied.len());
    let near = CLUSTER_CELL.powi(2);
    for c in occupied {
        let (cx, cy) = (c.sx / c.n as f64, c.sy / c.n as f64);
        let into = merged.iter_mut().find(|m| {
            let (mx, my) = (m.sx / m.n as f64, m.sy / m.n as f64);
            (mx - cx).powi(2) + (my - cy).powi(2) < near
        });
        match into {
            Some(m) => {
                m.n += c.n;
                m.sx += c.sx;
                m.sy += c.sy;
            }
            None => merged.push(c),
        }
    }
    for c in &merged {
        let n = c.n as f64;
        let Ok(geom) = GeomEncoder::new(GeomType::Point)
            .point(c.sx / n, c.sy / n)
            .and_then(|g| g.encode())
        else {
            continue;
        };
        let mut f = mvt_layer.into_feature(geom);
        match (c.n, c.first) {
            (1, Some(e)) => {
                f.set_id(u64::try_from(e.id()).unwrap_or_default());
                add_properties(&mut f, layer, &e);
            }
            _ => {
                f.add_tag_bool("cluster", true);
                f.add_tag_uint("point_count", c.n);
            }
        }
        mvt_layer = f.into_layer();
    }
    mvt_layer
}

/// Clip, simplify, orient and encode one geometry; `None` when nothing of
/// it is left in the buffered tile.
fn encode(g: &geo::Geometry<f64>, cut: &Cut) -> Option<mvt::GeomData> {
    use geo::Intersects;
    let (clip, unit, to_tile) = (cut.clip, cut.unit, cut.to_tile);
    match g {
        geo::Geometry::Point(p) => {
            if !clip.intersects(p) {
                return None;
            }
            let (x, y) = to_tile(p.0);
            GeomEncoder::new(GeomType::Point)
                .point(x, y)
                .ok()?
                .encode()
                .ok()
        }
        geo::Geometry::MultiPoint(mp) => {
            let mut enc = GeomEncoder::new(GeomType::Point);
            let mut any = false;
            for p in mp.iter().filter(|p| clip.intersects(*p)) {
                let (x, y) = to_tile(p.0);
                enc.add_point(x, y).ok()?;
                any = true;
            }
            any.then(|| enc.encode().ok()).flatten()
        }
        geo::Geometry::LineString(_) | geo::Geometry::MultiLineString(_) => {
            let lines = match g {
                geo::Geometry::LineString(l) => geo::MultiLineString::new(vec![l.clone()]),
                geo::Geometry::MultiLineString(m) => m.clone(),
                _ => return None,
            };
            let clipped = if inside(&lines, &cut.rect) {
                super::simplify::lines(&lines, unit / 2.0)
            } else {
                super::simplify::lines(&clip.clip(&lines, false), unit / 2.0)
            };
            let mut enc = GeomEncoder::new(GeomType::Linestring);
            let mut any = false;
            for line in clipped.iter().filter(|l| l.0.len() >= 2) {
                for c in line.coords() {
                    let (x, y) = to_tile(*c);
                    enc.add_point(x, y).ok()?;
                }
                enc.complete_geom().ok()?;
                any = true;
            }
            any.then(|| enc.encode().ok()).flatten()
        }
        geo::Geometry::Polygon(_) | geo::Geometry::MultiPolygon(_) => {
            let polys = match g {
                geo::Geometry::Polygon(p) => geo::MultiPolygon::new(vec![p.clone()]),
                geo::Geometry::MultiPolygon(m) => m.clone(),
                _ => return None,
            };
            // Exact clip to the buffered tile, then generalise to half a pixel.
            // (An area wholly inside the buffered tile needs no clipping.)
            let clipped = if inside(&polys, &cut.rect) {
                super::simplify::polygons(&polys, unit / 2.0)
            } else {
                super::simplify::polygons(
                    &super::clip::clip_polygons(&polys, &cut.rect)?,
                    unit / 2.0,
                )
            };
            // Exterior rings counter-clockwise in Mercator (y up) are
            // clockwise in tile space (y down), as MVT 2.1 §4.3.4.4 wants.
            let oriented = clipped.orient(geo::orient::Direction::Default);
            let mut enc = GeomEncoder::new(GeomType::Polygon);
            let mut any = false;
            for poly in oriented.iter() {
                if !ring(&mut enc, poly.exterior(), to_tile)? {
                    continue;
                }
                any = true;
                for hole in poly.interiors() {
                    ring(&mut enc, hole, to_tile)?;
                }
            }
            any.then(|| enc.encode().ok()).flatten()
        }
        _ => None,
    }
}

/// Whether a shape's bounding box lies within the box.
fn inside(
    shape: &impl geo::BoundingRect<f64, Output = Option<geo::Rect<f64>>>,
    clip: &geo::Rect<f64>,
) -> bool {
    shape.bounding_rect().is_some_and(|s| {
        s.min().x >= clip.min().x
            && s.min().y >= clip.min().y
            && s.max().x <= clip.max().x
            && s.max().y <= clip.max().y
    })
}

/// Add one ring (without its closing position: MVT closes it). `Some(false)`
/// when the ring collapses below three distinct tile positions.
fn ring(
    enc: &mut GeomEncoder<f64>,
    ring: &geo::LineString<f64>,
    to_tile: &dyn Fn(geo::Coord<f64>) -> (f64, f64),
) -> Option<bool> {
    let mut pts: Vec<(i64, i64)> = Vec::with_capacity(ring.0.len());
    for c in &ring.0 {
        let (x, y) = to_tile(*c);
        let q = (x.round() as i64, y.round() as i64);
        if pts.last() != Some(&q) {
            pts.push(q);
        }
    }
    if pts.len() > 1 && pts.first() == pts.last() {
        pts.pop();
    }
    if pts.len() < 3 {
        return Some(false);
    }
    for (x, y) in pts {
        enc.add_point(x as f64, y as f64).ok()?;
    }
    enc.complete_geom().ok()?;
    Some(true)
}

/// The cluster grid of tile z/x/y as a store that cuts tiles itself sums
/// it (see [`crate::store::TileGrid`]): the same cells as [`clustered`].
///
/// With a `crs` other than WGS84 the tile is on that datum's grid while
/// the store holds WGS84: the grid is moved by the datum shift at the
/// tile's centre, so each stored point is summed where the datum places
/// it. The shift varies by metres across a tile a cluster cell is
/// kilometres wide on (clusters are cut below z15), so a cell differs
/// from the held layer's only for a point within metres of its edge.
pub fn store_grid(z: u8, x: u32, y: u32, crs: Crs) -> crate::store::TileGrid {
    let (min, max) = tile_bounds(z, x, y);
    let unit = (max[0] - min[0]) / f64::from(EXTENT);
    let pad = BUFFER * unit;
    let [dx, dy] = if crs == Crs::Wgs84 {
        [0.0, 0.0]
    } else {
        let centre = [(min[0] + max[0]) / 2.0, (min[1] + max[1]) / 2.0];
        let (lon, lat) = crate::index::mercator_to_lonlat(centre[0], centre[1]);
        let (wlon, wlat) = crs.to_wgs84(lon, lat);
        let (wx, wy) = crate::index::lonlat_to_mercator(wlon, wlat);
        [centre[0] - wx, centre[1] - wy]
    };
    crate::store::TileGrid {
        lonlat: wgs84_box_of(min, max, pad, crs),
        min_x: min[0] - dx,
        max_y: max[1] - dy,
        unit,
        cell: CLUSTER_CELL,
        side: i32::try_from(SIDE).unwrap_or(i32::MAX),
    }
}

/// The WGS84 box of the stored features that can reach the buffered tile
/// `min`..`max` (Web Mercator) of datum `crs`: the datums differ by under
/// 0.02° in China (none outside it); 0.03° is looked further.
fn wgs84_box_of(min: [f64; 2], max: [f64; 2], pad: f64, crs: Crs) -> [f64; 4] {
    let (w, s) = crate::index::mercator_to_lonlat(min[0] - pad, min[1] - pad);
    let (e, n) = crate::index::mercator_to_lonlat(max[0] + pad, max[1] + pad);
    let slack = if crs == Crs::Wgs84 {
        0.0
    } else {
        SHIFT_SLACK_DEG
    };
    [
        (w - slack).max(-180.0),
        (s - slack).max(-90.0),
        (e + slack).min(180.0),
        (n + slack).min(90.0),
    ]
}

/// The WGS84 box a store reads for one layer of tile z/x/y of datum `crs`.
pub fn store_box(z: u8, x: u32, y: u32, crs: Crs) -> [f64; 4] {
    let (min, max) = tile_bounds(z, x, y);
    let pad = BUFFER * (max[0] - min[0]) / f64::from(EXTENT);
    wgs84_box_of(min, max, pad, crs)
}

/// One layer's tile cut from features a store read (the WGS84 features of
/// [`store_box`]), exactly as a held layer's: placed on the datum `crs`,
/// clipped, simplified, labelled and clustered by the same code.
pub fn build_from_features(
    layer: &LayerDef,
    mut features: Vec<Feature>,
    (z, x, y): (u8, u32, u32),
    crs: Crs,
) -> Option<Vec<u8>> {
    if crs != Crs::Wgs84 {
        for f in &mut features {
            f.geometry = crs.geometry_from_wgs84(&f.geometry);
        }
    }
    let (rows, _) = Rows::load(layer, features);
    with_cut((z, x, y), |cut, bmin, bmax| {
        let mut tile = mvt::Tile::new(EXTENT);
        let entries = rows.search(&[bmin[0], bmin[1], bmax[0], bmax[1]]);
        add_layer(&mut tile, layer, &layer.name, &entries, cut);
        if tile.num_layers() == 0 {
            return None;
        }
        tile.to_bytes().ok()
    })
}

/// Whether `n` points meeting tile z (all points) are drawn as clusters,
/// as [`add_layer`] decides for a layer held in memory.
pub fn clusters_at(z: u8, n: u64) -> bool {
    n > POINT_BUDGET as u64 && (z < CLUSTER_BELOW_ZOOM || n > DENSE_POINT_BUDGET as u64)
}

/// A tile of one clustered point layer from a store's grid sums, merged
/// and encoded as for a layer held in memory; `singles` holds the features
/// of the cells with one point, drawn as themselves.
pub fn clustered_from_grid(
    layer: &LayerDef,
    cells: &[crate::store::GridCell],
    singles: &Rows,
) -> Option<Vec<u8>> {
    let mut grid = empty_grid();
    for c in cells {
        let (Ok(gx), Ok(gy)) = (usize::try_from(c.gx), usize::try_from(c.gy)) else {
            continue;
        };
        let Some(g) = grid.get_mut(gx * SIDE + gy) else {
            continue;
        };
        g.n = c.n;
        g.sx = c.sx;
        g.sy = c.sy;
        if c.n == 1 {
            g.first = singles.get(c.one);
        }
    }
    let mut tile = mvt::Tile::new(EXTENT);
    let out = emit_clusters(tile.create_layer(&layer.name), layer, grid);
    if out.num_features() == 0 {
        return None;
    }
    tile.add_layer(out).ok()?;
    tile.to_bytes().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shift_slack_covers_every_datum_shift_in_china() {
        let (mut most_m, mut most_deg) = (0f64, 0f64);
        for crs in [Crs::Gcj02, Crs::Bd09] {
            for i in 0..=124 {
                for j in 0..=71 {
                    let (lon, lat) = (73.0 + f64::from(i) * 0.5, 18.0 + f64::from(j) * 0.5);
                    let (slon, slat) = crs.from_wgs84(lon, lat);
                    most_deg = most_deg.max((slon - lon).abs()).max((slat - lat).abs());
                    let (x0, y0) = crate::index::lonlat_to_mercator(lon, lat);
                    let (x1, y1) = crate::index::lonlat_to_mercator(slon, slat);
                    most_m = most_m.max((x1 - x0).abs()).max((y1 - y0).abs());
                }
            }
        }
        assert!(most_m > 500.0, "the shift is real: {most_m} m");
        assert!(most_m < SHIFT_SLACK_M, "{most_m} m");
        assert!(most_deg < SHIFT_SLACK_DEG, "{most_deg}°");
    }
}
