-- Planning scenarios: a siting run's inputs and results under a name,
-- so planners can compare them and take a report away later.
CREATE TABLE onemap_scenarios (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL,
    inputs TEXT NOT NULL,
    results TEXT NOT NULL
);
