-- While one of onemap's own write transactions runs, it holds the one row
-- of this table; the log triggers skip rows written under it (onemap logs
-- a fuller entry itself). The row is deleted before every commit, so no
-- other connection ever sees it and every other writer's rows are logged.
CREATE TABLE onemap_own_write (
    one INTEGER PRIMARY KEY CHECK (one = 1)
);
