#!/usr/bin/env python3
"""Cold tiles: onemap against Martin serving the same data from PostGIS.

Uses the GeoPackage that `tiles_load.py` builds (1,000,000 GENERATED points
in `cameras` plus the Luozhuang demo), copies its layers into PostGIS with
GDAL's ogr2ogr, starts Martin on it and onemap on the GeoPackage, and
fetches the same fixed list of tiles (zooms 8-16) once from each fresh
server with 4 clients: every request is a cache miss on both sides.

Needs: PostgreSQL with PostGIS on 127.0.0.1:5432 (trust auth;
`apt-get install postgresql-15-postgis-3`), ogr2ogr (gdal-bin) and a Martin
binary (`cargo install martin --no-default-features --features postgres`,
then `--martin PATH` or MARTIN=PATH; it is never committed here).
Only 127.0.0.1 is contacted; every loop is bounded.

Usage: python3 benches/martin_compare.py [--martin PATH] [--points 1000000]
"""
import argparse, json, os, shutil, signal, socket, subprocess, sys, time
import urllib.error, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiles_load  # noqa: E402  (the shared database, tile list and server start)

PG = "host=127.0.0.1 user=postgres dbname=onemap_bench"
LAYERS = ["rescue_teams", "experts", "supply_depots", "equipment", "shelters", "seismic_stations", "cameras",
          "hazard_sources", "enterprises", "incidents", "flood_zones", "waterlogging_points", "districts",
          "population_grid"]


def psql(db, sql):
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def load_postgis(gpkg):
    psql("test", "DROP DATABASE IF EXISTS onemap_bench")
    psql("test", "CREATE DATABASE onemap_bench")
    psql("onemap_bench", "CREATE EXTENSION postgis")
    t = time.time()
    subprocess.run(["ogr2ogr", "-f", "PostgreSQL", f"PG:{PG}", gpkg, *LAYERS, "-lco", "GEOMETRY_NAME=geom",
                    "-lco", "FID=id", "-lco", "SPATIAL_INDEX=GIST", "--config", "PG_USE_COPY", "YES", "-gt", "65536"],
                   check=True)
    # What onemap's camera tiles carry (id, name, channels), so Martin's
    # tiles hold the same columns instead of every column of the table.
    psql("onemap_bench", "CREATE VIEW cameras_tile AS SELECT id, geom, name, channels FROM cameras")
    psql("onemap_bench", "VACUUM ANALYZE")
    print(f"loaded PostGIS in {time.time() - t:.1f} s", file=sys.stderr)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_martin(martin):
    port = free_port()
    proc = subprocess.Popen([martin, "--listen-addresses", f"127.0.0.1:{port}",
                             "postgres://postgres@127.0.0.1/onemap_bench"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{base}/catalog", timeout=5) as r:
                catalog = json.load(r)
            return proc, base, catalog
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("Martin did not start")


def cold(urls):
    """Each URL fetched once by curl, 4 transfers at a time over kept-alive
    connections (a C client: Python's urllib would be the bottleneck)."""
    cfg = os.path.join(tiles_load.WORK, "curl-urls.txt")
    with open(cfg, "w") as f:
        for u in urls:
            f.write(f'url = "{u}"\noutput = "/dev/null"\n')
    t = time.perf_counter()
    out = subprocess.run(["curl", "-s", "--parallel", "--parallel-max", "4", "-w",
                          "%{http_code} %{time_total} %{size_download}\n", "-K", cfg],
                         capture_output=True, text=True, timeout=900).stdout
    wall = time.perf_counter() - t
    rows = [line.split() for line in out.splitlines() if line.strip()]
    bad = [r for r in rows if r[0] not in ("200", "204")]
    if bad or len(rows) != len(urls):
        raise SystemExit(f"{len(bad)} failed of {len(rows)}/{len(urls)}: {bad[:3]}")
    lat = sorted(float(r[1]) for r in rows)
    sizes = [int(float(r[2])) for r in rows]
    return {"tiles": len(urls), "rps": round(len(urls) / wall, 1),
            "p99_ms": round(lat[int(0.99 * (len(lat) - 1))] * 1000, 1),
            "max_kb": round(max(sizes) / 1024, 1), "total_kb": round(sum(sizes) / 1024)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--martin", default=os.environ.get("MARTIN") or shutil.which("martin") or "/opt/martin/bin/martin")
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--skip-load", action="store_true", help="reuse the onemap_bench database")
    ap.add_argument("--only", default="cameras,districts,onemap", help="tile sets to compare")
    ap.add_argument("--bands", default="z8-12,z13-16,z15-16,all", help="zoom bands to compare")
    args = ap.parse_args()
    if not os.path.exists(args.martin):
        raise SystemExit(f"no Martin binary at {args.martin}")
    if not os.path.exists(tiles_load.BIN):
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "onemap"], cwd=tiles_load.ROOT, check=True)
    gpkg = tiles_load.make_db(args.points)
    if not args.skip_load:
        load_postgis(gpkg)
    web = os.path.join(tiles_load.WORK, "web")
    os.makedirs(web, exist_ok=True)
    # More tiles than the hot list: a cold run must outlast start-up noise.
    tiles = tiles_load.tile_list(per_zoom=64)
    bands = {"z8-12": [t for t in tiles if t[0] <= 12], "z13-16": [t for t in tiles if t[0] >= 13],
             # onemap clusters dense points below z15, Martin never does:
             # from z15 both send every point, the like-for-like band.
             "z15-16": [t for t in tiles if t[0] >= 15], "all": tiles}
    bands = {k: v for k, v in bands.items() if k in args.bands.split(",")}
    report = {}
    martin_layers = ",".join("cameras_tile" if l == "cameras" else l for l in LAYERS)
    for spec, martin_spec in [("cameras", "cameras_tile"), ("districts", "districts"), ("onemap", martin_layers)]:
        if spec not in args.only.split(","):
            continue
        for band, band_tiles in bands.items():
            # Fresh servers for every run: each request is a cold tile.
            proc, base = tiles_load.start(gpkg, web)
            try:
                ours = cold([f"{base}/tiles/{spec}/{z}/{x}/{y}.mvt" for z, x, y in band_tiles])
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            proc, base, _ = start_martin(args.martin)
            try:
                theirs = cold([f"{base}/{martin_spec}/{z}/{x}/{y}" for z, x, y in band_tiles])
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            report[f"{spec} {band}"] = {"onemap": ours, "martin": theirs,
                                        "onemap_vs_martin_rps": round(ours["rps"] / theirs["rps"], 2)}
            print(spec, band, json.dumps(report[f"{spec} {band}"]), file=sys.stderr)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
