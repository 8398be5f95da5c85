#!/usr/bin/env python3
"""Tile load test: hot and cold throughput and p99 against a running onemap.

Builds (once) a GeoPackage with 1,000,000 GENERATED points in `cameras` over
Luozhuang plus the demo, starts `onemap serve` on 127.0.0.1, and measures
over a fixed list of tiles at zooms 8-16 for three tile sets: the
1,000,000-point layer, the polygon layer (`districts`) and the composite
`onemap` tiles:

  cold: every tile of the list fetched once from a fresh server (each a
        cache miss), 4 clients at once;
  hot:  wrk over the same list once cached;
  baseline: wrk against the same build answering a fixed in-memory body
        (`--bench-fixed-body`, the target's "fixed body") of the mean tile
        size (the same bytes per answer as the hot run over the list);
        hot and baseline runs alternate (3 rounds) and medians are compared.

Only 127.0.0.1 is ever contacted; every loop is bounded in count and time.
Usage: python3 benches/tiles_load.py [--points 1000000] [--seconds 6] [--rounds 3]
"""
import argparse, concurrent.futures, json, math, os, random, re, shutil, signal
import statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "onemap")
WORK = os.path.join(tempfile.gettempdir(), "onemap-tiles-bench")


def tile_of(lon, lat, z):
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    r = math.radians(lat)
    y = int((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * n)
    return x, y


def tile_list(z_min=8, z_max=16, per_zoom=24):
    """Tiles around the district seat at each zoom, a fixed list."""
    rng = random.Random(371311)
    out = []
    for z in range(z_min, z_max + 1):
        cx, cy = tile_of(118.28, 34.95, z)
        spread = min(2 ** max(z - 10, 0), 16)
        seen = set()
        while len(seen) < min(per_zoom, (2 * spread + 1) ** 2):
            seen.add((cx + rng.randint(-spread, spread), cy + rng.randint(-spread, spread)))
        out += [(z, x, y) for x, y in sorted(seen)]
    return out


def make_db(points):
    os.makedirs(WORK, exist_ok=True)
    db = os.path.join(WORK, f"bench-{points}.gpkg")
    if os.path.exists(db):
        return db
    nd = os.path.join(WORK, "points.ndjson")
    rng = random.Random(7)
    with open(nd, "w") as f:  # GENERATED points, dense in the middle
        for i in range(points):
            lon = rng.gauss(118.27, 0.06)
            lat = rng.gauss(34.93, 0.05)
            f.write(json.dumps({"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
                                "properties": {"name": f"p{i}", "channels": i % 16}}) + "\n")
    url = f"sqlite://{db}"
    subprocess.run([BIN, "--database", url, "basemap", "--demo", "--max-zoom", "4", "-o", os.path.join(WORK, "x.mbtiles")],
                   check=True, stderr=subprocess.DEVNULL)
    t = time.time()
    subprocess.run([BIN, "--database", url, "import", "--layer", "cameras", nd], check=True)
    print(f"imported {points} points in {time.time() - t:.1f} s", file=sys.stderr)
    os.remove(nd)
    return db


def start(db, web, fixed=None):
    extra = ["--bench-fixed-body", str(fixed)] if fixed else []
    proc = subprocess.Popen([BIN, "--database", f"sqlite://{db}", "--log", "warn,onemap=info", "serve", "--bind", "127.0.0.1:0",
                             "--web-dir", web] + extra, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    for line in proc.stderr:
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if m:
            return proc, m.group(1)
        if time.time() > deadline:
            break
    proc.kill()
    raise SystemExit("the server did not start")


def get(url):
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
    return time.perf_counter() - t, len(body)


def cold(base, spec, tiles):
    urls = [f"{base}/tiles/{spec}/{z}/{x}/{y}.mvt" for z, x, y in tiles]
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(get, urls))
    wall = time.perf_counter() - t
    lat = sorted(r[0] for r in results)
    sizes = [r[1] for r in results]
    return {"rps": len(urls) / wall, "p99_ms": lat[int(0.99 * (len(lat) - 1))] * 1000, "max_kb": max(sizes) / 1024,
            "median_bytes": int(statistics.median([s for s in sizes if s] or [0])),
            "mean_bytes": int(statistics.mean(sizes or [0]))}


def wrk(urls_file, url, seconds):
    script = os.path.join(WORK, "list.lua")
    with open(script, "w") as f:
        f.write('local urls = {}\nfor line in io.lines("%s") do urls[#urls + 1] = line end\n'
                'local i = 0\nrequest = function()\n  i = i %% #urls + 1\n  return wrk.format("GET", urls[i])\nend\n' % urls_file)
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return {"rps": rps, "p99_ms": float(p99.group(1)) * scale}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3, help="alternating hot and fixed-body runs")
    args = ap.parse_args()
    if not os.path.exists(BIN):
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "onemap"], cwd=ROOT, check=True)
    db = make_db(args.points)
    web = os.path.join(WORK, "web")
    os.makedirs(web, exist_ok=True)
    tiles = tile_list()
    report = {}
    for spec in ["cameras", "districts", "onemap"]:
        proc, base = start(db, web)
        fixed_proc = None
        try:
            c = cold(base, spec, tiles)
            paths = os.path.join(WORK, f"paths-{spec}.txt")
            with open(paths, "w") as f:
                f.writelines(f"/tiles/{spec}/{z}/{x}/{y}.mvt\n" for z, x, y in tiles)
            wrk(paths, base, 2)  # every tile of the list cached
            # A second server holding the fixed body, the same bytes per
            # answer as the hot run (the mean tile size: sizes are skewed);
            # hot and fixed runs alternate, and the medians of each are
            # compared, so drift on the shared machine hits both alike.
            fixed_proc, fixed_base = start(db, web, fixed=c["mean_bytes"] or 1)
            with open(os.path.join(WORK, "paths-mem.txt"), "w") as f:
                f.write("/bench/fixed\n")
            hot_runs, fixed_runs = [], []
            for _ in range(args.rounds):
                hot_runs.append(wrk(paths, base, args.seconds))
                fixed_runs.append(wrk(os.path.join(WORK, "paths-mem.txt"), fixed_base, args.seconds))
        finally:
            for p in (proc, fixed_proc):
                if p:
                    p.send_signal(signal.SIGTERM)
                    p.wait(timeout=60)
        med = lambda runs: sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
        h, b = med(hot_runs), med(fixed_runs)
        report[spec] = {"tiles": len(tiles), "cold": c, "hot": h, "fixed_body": b,
                        "hot_rps_runs": [round(r["rps"]) for r in hot_runs],
                        "fixed_rps_runs": [round(r["rps"]) for r in fixed_runs],
                        "hot_vs_fixed": h["rps"] / b["rps"]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
