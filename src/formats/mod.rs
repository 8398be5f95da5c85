//! File formats the one map reads and writes.

pub mod geojson;
