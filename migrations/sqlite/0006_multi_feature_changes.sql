-- A dispatch action writes several features of several layers in one
-- transaction (a team and its incident; depots and the incident they
-- supply). It is logged as one change: `layer`/`feature_ids`/`before`/
-- `after` hold its first layer, `also` the others ([{layer, ids,
-- bbox_before, bbox_after, before, after}]), and `action` what the
-- dispatcher did ({"kind": "assignment.create", "incident_id": …}).
ALTER TABLE onemap_changes ADD COLUMN also TEXT;
ALTER TABLE onemap_changes ADD COLUMN action TEXT;
