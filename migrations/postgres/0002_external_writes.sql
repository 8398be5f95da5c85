-- Writes by other programs (QGIS, ogr2ogr, psql, a script) to a layer
-- table are logged by its triggers, in the writer's own transaction, so
-- every node brings its index, tiles and event stream up to date from the
-- log as it does for onemap's own writes. onemap's connections carry
-- `onemap.writer = onemap` (a startup option) and log their writes
-- themselves, with the actor and the properties before and after.
--
-- One entry per statement (an ogr2ogr batch is one), with its features'
-- ids and the WGS84 boxes of the rows before and after, from the
-- statement's transition tables. Like onemap's own writes, it takes the
-- next seq from onemap_log_head, whose row lock then orders the commits:
-- an open transaction that wrote a layer holds back other writers until
-- it commits or rolls back (QGIS commits on Save; set
-- idle_in_transaction_session_timeout for interactive sessions).
CREATE FUNCTION onemap_log_external() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  ids jsonb;
  box_before jsonb;
  box_after jsonb;
  op text;
  s bigint;
BEGIN
  IF current_setting('onemap.writer', true) = 'onemap' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    op := 'create';
    SELECT jsonb_agg(fid ORDER BY fid) INTO ids FROM new_rows;
    SELECT onemap_box(ST_Extent(geom)) INTO box_after FROM new_rows;
  ELSIF TG_OP = 'UPDATE' THEN
    op := 'update';
    SELECT jsonb_agg(fid ORDER BY fid) INTO ids
      FROM (SELECT fid FROM old_rows UNION SELECT fid FROM new_rows) f;
    SELECT onemap_box(ST_Extent(geom)) INTO box_before FROM old_rows;
    SELECT onemap_box(ST_Extent(geom)) INTO box_after FROM new_rows;
  ELSE
    op := 'delete';
    SELECT jsonb_agg(fid ORDER BY fid) INTO ids FROM old_rows;
    SELECT onemap_box(ST_Extent(geom)) INTO box_before FROM old_rows;
  END IF;
  IF ids IS NULL THEN
    RETURN NULL;  -- the statement wrote no row
  END IF;
  UPDATE onemap_log_head SET seq = seq + 1 WHERE one = 1 RETURNING seq INTO s;
  INSERT INTO onemap_changes (seq, at, actor, layer, op, feature_ids, bbox_before, bbox_after)
  VALUES (s, onemap_now(),
          'another program (' || current_user
            || coalesce(', ' || nullif(current_setting('application_name', true), ''), '') || ')',
          TG_TABLE_NAME, op, ids, box_before, box_after);
  PERFORM pg_notify('onemap_changes', s::text);
  RETURN NULL;
END
$$;

-- [west, south, east, north] of a box, NULL for none.
CREATE FUNCTION onemap_box(b box2d) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN b IS NULL THEN NULL
    ELSE jsonb_build_array(ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)) END
$$;
