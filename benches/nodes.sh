#!/usr/bin/env bash
# nodes.sh — onemap on PostgreSQL + PostGIS against onemap on its GeoPackage, on the shared kit's
# GENERATED 1M-point data: tiles and items of one node on each store, two PostGIS nodes against
# one, and the 1M layer served by PostGIS itself (a node with --index-max-features below it).
# Same tools as the kit: its run.sh/tileload for tiles (the 600 z16 tiles of tiles_hi.txt,
# "ent16"), wrk + paths.lua for items (random 0.01° boxes, limit=100), alternating per round;
# every server is restarted each round so "cold" is cold.
#
#   ONEMAP_BIN=target/release/onemap bash benches/nodes.sh [--rounds 2] [-d 10]
# Needs: the kit's $BENCH_HOME/onemap-n1m.gpkg (gen_data.py + load_onemap.sh), PostgreSQL with
# PostGIS on 127.0.0.1:5432 (trust auth). Writes only under $BENCH_HOME and database onemap_bench_nodes.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KIT="$(cd "$HERE/../../shared/bench" && pwd)"
WORK="${BENCH_HOME:-/tmp/onemap-bench}"
BIN="$(realpath "${ONEMAP_BIN:-target/release/onemap}")"
ROUNDS=2 DUR=10
while (($#)); do case "$1" in --rounds) ROUNDS="$2"; shift 2 ;; -d) DUR="$2"; shift 2 ;; *) echo "unknown $1" >&2; exit 2 ;; esac; done
SRC="$WORK/onemap-n1m.gpkg"
[ -f "$SRC" ] || { echo "no $SRC: run the kit's gen_data.py and load_onemap.sh first" >&2; exit 1; }
OUT="$WORK/results/nodes-$(date -u +%Y%m%dT%H%M%SZ)"; mkdir -p "$OUT"
DB=onemap_bench_nodes
PG="postgres://postgres@127.0.0.1:5432/$DB"
CFG=(--config "$KIT/onemap.toml")
STARTED=()
stop_all() { for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done; STARTED=(); }
trap stop_all EXIT

python3 - "$OUT" <<'PY'
import random, sys
r = random.Random(7); out = sys.argv[1]
with open(out + "/bboxes.txt", "w") as f:
    for _ in range(500):
        x, y = r.uniform(118.22, 118.43), r.uniform(34.87, 35.08)
        f.write("%.4f,%.4f,%.4f,%.4f\n" % (x, y, x + 0.01, y + 0.01))
PY
grep '^16/' "$KIT/tiles_hi.txt" >"$OUT/ent16.txt"

echo "== the GeoPackage copied into PostgreSQL (onemap copy)"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "CREATE EXTENSION postgis"
cp "$SRC" "$OUT/g.gpkg"; [ -f "$SRC.index" ] && cp "$SRC.index" "$OUT/g.gpkg.index"
/usr/bin/time -f "copy: %e s, peak RSS %M KB" "$BIN" "${CFG[@]}" --log error copy --from "sqlite://$OUT/g.gpkg" --to "$PG" 2>&1 | tail -2 | tee "$OUT/copy.txt"
psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "VACUUM ANALYZE"

serve() { # port database [extra args]
  local port="$1" db="$2"; shift 2
  "$BIN" "${CFG[@]}" --database "$db" --log warn serve --bind "127.0.0.1:$port" --tiles-dir "$OUT" "$@" >>"$OUT/server-$port.log" 2>&1 &
  STARTED+=($!)
}
up() { for port in "$@"; do for _ in $(seq 1 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done; done; }
items() { # label port conns
  local r; r=$(wrk -t1 -c"$3" -d"${DUR}s" --timeout 30s -s "$KIT/paths.lua" "http://127.0.0.1:$2" -- "$OUT/bboxes.txt" '/ogc/collections/bench_enterprises/items?limit=100&bbox=%s' 2>&1)
  echo "$1 $(echo "$r" | awk '/Requests\/sec/{print $2}') req/s, non-2xx: $(echo "$r" | awk '/Non-2xx/{print $NF}')"
}
tiles() { # label port mode
  bash "$KIT/run.sh" --mode "$3" -d "$DUR" --tiles "$OUT/ent16.txt" --out "$OUT" --tag "$r" \
    "http://127.0.0.1:$2/tiles/bench_enterprises/{z}/{x}/{y}.mvt" "$1" 2>/dev/null | tail -1
}

# G: GeoPackage; A, B: PostGIS (the layer held in memory); D: PostGIS serving the 1M layer itself.
exec > >(tee "$OUT/results.txt") 2>&1
for r in $(seq 1 "$ROUNDS"); do
  serve 39501 "sqlite://$OUT/g.gpkg"; serve 39502 "$PG"; serve 39503 "$PG"; serve 39504 "$PG" --index-max-features 100000
  up 39501 39502 39503 39504
  tiles "r$r gpkg-node ent16-cold" 39501 cold
  tiles "r$r pg-node ent16-cold" 39502 cold
  tiles "r$r pg-served ent16-cold" 39504 cold
  tiles "r$r gpkg-node ent16-hot" 39501 hot
  tiles "r$r pg-node ent16-hot" 39502 hot
  items "r$r gpkg-node bbox100" 39501 16
  items "r$r pg-node bbox100" 39502 16
  items "r$r pg-served bbox100" 39504 16
  # Two nodes, 8 connections each, at once: their sum against one node's 16.
  items "r$r pg-two-nodes-A bbox100" 39502 8 >"$OUT/two-a.txt" &
  pa=$!
  items "r$r pg-two-nodes-B bbox100" 39503 8 >"$OUT/two-b.txt"
  wait "$pa" || true
  cat "$OUT/two-a.txt" "$OUT/two-b.txt"
  stop_all
done
echo "results in $OUT"
