-- GeoPackage Req 119: a user attributes table has an INTEGER PRIMARY KEY
-- (GDAL's validate_gpkg.py refused the TEXT key of 0002). The layer name
-- stays unique; the rows are carried over.

CREATE TABLE onemap_layers_rebuilt (
  fid INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  title_zh TEXT NOT NULL,
  title_en TEXT NOT NULL,
  edit_group TEXT NOT NULL,
  geometry_types TEXT NOT NULL,
  properties TEXT NOT NULL
);

INSERT INTO onemap_layers_rebuilt (name, title_zh, title_en, edit_group, geometry_types, properties)
SELECT name, title_zh, title_en, edit_group, geometry_types, properties FROM onemap_layers;

DROP TABLE onemap_layers;

ALTER TABLE onemap_layers_rebuilt RENAME TO onemap_layers;
