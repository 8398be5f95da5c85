-- Keys of writes that must happen once (`Idempotency-Key` of an import): a
-- client that retries after a timeout or a dropped connection finds its
-- first write here, stored in the same transaction as the features.
CREATE TABLE IF NOT EXISTS onemap_idempotency (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  layer TEXT NOT NULL,
  seq INTEGER NOT NULL,
  at TEXT NOT NULL
);
