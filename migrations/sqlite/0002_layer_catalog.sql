-- The layer catalog as a GeoPackage attributes table: GIS users see each
-- layer's Chinese and English title, who edits it and its typed schema.
-- Registering one attributes table also tells GDAL (LIST_ALL_TABLES=AUTO)
-- to list only registered tables, keeping bookkeeping tables out of sight.

CREATE TABLE IF NOT EXISTS onemap_layers (
  name TEXT NOT NULL PRIMARY KEY,
  title_zh TEXT NOT NULL,
  title_en TEXT NOT NULL,
  edit_group TEXT NOT NULL,
  geometry_types TEXT NOT NULL,
  properties TEXT NOT NULL
);

INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description)
VALUES ('onemap_layers', 'attributes', '图层目录 Layer catalog',
        'onemap layer catalog: titles, edit group and property schema of every layer');

INSERT OR IGNORE INTO gpkg_data_columns (table_name, column_name, name, title, mime_type)
VALUES ('onemap_layers', 'properties', 'properties', '属性结构', 'application/json');
