-- The change log: one row per committed write, in commit order. It feeds the
-- event stream (seq is the SSE event id) and is the audit trail (who, when,
-- which layer and features, the properties before and after).
CREATE TABLE IF NOT EXISTS onemap_changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  layer TEXT NOT NULL,
  op TEXT NOT NULL,
  feature_ids TEXT NOT NULL,
  bbox_before TEXT,
  bbox_after TEXT,
  before TEXT,
  after TEXT
);
CREATE INDEX IF NOT EXISTS onemap_changes_layer ON onemap_changes (layer, seq);

-- API tokens, stored as SHA-256 digests: the token itself is shown once.
CREATE TABLE IF NOT EXISTS onemap_tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL,
  digest TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  revoked_at TEXT
);
