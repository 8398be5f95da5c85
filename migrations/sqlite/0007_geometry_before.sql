-- The geometries a change replaced or deleted (a JSON array of GeoJSON
-- geometries, one per id), beside their properties in `before`: with
-- both, any past moment of the one map can be replayed from the log
-- (a team's positions, not only its status).
ALTER TABLE onemap_changes ADD COLUMN geometry_before TEXT;
