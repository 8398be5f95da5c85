#!/usr/bin/env python3
"""Edit on one node, visible on another: two `onemap serve` nodes on the
PostgreSQL database benches/nodes.sh filled (GENERATED kit data, 1M points),
EDITS sequential PATCHes of random features on node A; after each answer,
node B is read until its item shows the value, its z18 tile's ETag changed,
and its event stream (`/api/events`) delivered the change. Reports send →
visible on B (p50/p99/max) for each, and the PATCH answer time.

Python 3.11 stdlib only; loopback only; every loop bounded.
Usage: python3 benches/nodes_visible.py [--bin target/release/onemap] [--edits 300]
"""
import argparse, http.client, json, math, os, random, re, socket, subprocess, sys
import tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
KIT = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "bench"))
LAYER = "bench_enterprises"
DB = "postgres://postgres@127.0.0.1:5432/onemap_bench_nodes"


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] if xs else float("nan")


def tile_of(lon, lat, z):
    n = 2 ** z
    r = math.radians(lat)
    return int((lon + 180) / 360 * n), int((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * n)


def req(c, method, path, body=None, token=None):
    h = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/merge-patch+json"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    return r.status, r.headers, r.read()


def start(binary, cfg, port, work):
    log = open(os.path.join(work, f"node-{port}.log"), "w")
    p = subprocess.Popen([binary, *cfg, "--log", "warn", "serve", "--bind", f"127.0.0.1:{port}",
                          "--tiles-dir", work], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            if req(c, "GET", "/healthz")[0] == 200:
                return p
        except OSError:
            pass
        time.sleep(0.2)
    p.kill()
    sys.exit(f"node {port} did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "onemap"))
    ap.add_argument("--edits", type=int, default=300)
    a = ap.parse_args()
    cfg = ["--config", os.path.join(KIT, "onemap.toml"), "--database", DB]
    work = tempfile.mkdtemp(prefix="onemap-nodes-")
    token = subprocess.run([a.bin, *cfg, "token", "create", "--role", "dispatcher", "--name", f"bench-{os.getpid()}"],
                           capture_output=True, text=True, check=True).stdout.strip().split()[-1]
    pa, pb = 39511, 39512
    procs = [start(a.bin, cfg, pa, work), start(a.bin, cfg, pb, work)]
    try:
        events = {}  # feature id -> arrival time of the last event naming it on B
        lock = threading.Lock()
        stop = threading.Event()

        def listen():
            s = socket.create_connection(("127.0.0.1", pb))
            s.sendall(f"GET /api/events?layers={LAYER} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            s.settimeout(1)
            buf = b""
            while not stop.is_set():
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                buf += chunk
                for m in re.finditer(rb"data: (\{.*?\})\n", buf):
                    try:
                        d = json.loads(m.group(1))
                    except ValueError:
                        continue
                    with lock:
                        for i in d.get("ids", []):
                            events[i] = time.perf_counter()
                buf = buf[buf.rfind(b"\n") + 1:]

        threading.Thread(target=listen, daemon=True).start()
        time.sleep(0.5)
        rng = random.Random(11)
        ca = http.client.HTTPConnection("127.0.0.1", pa, timeout=30)
        cb = http.client.HTTPConnection("127.0.0.1", pb, timeout=30)
        ids = []
        while len(ids) < a.edits:
            x, y = rng.uniform(118.22, 118.43), rng.uniform(34.87, 35.08)
            _, _, raw = req(cb, "GET", f"/ogc/collections/{LAYER}/items?limit=50&bbox={x},{y},{x+0.01},{y+0.01}")
            ids += [(f["id"], f["geometry"]["coordinates"]) for f in json.loads(raw)["features"]]
        ids = ids[: a.edits]
        answer, in_items, in_tiles, in_events = [], [], [], []
        # Values no earlier run wrote: an edit that writes the value already
        # stored changes nothing, and nothing would become visible.
        fresh = random.Random(time.time_ns())
        base = fresh.randrange(10**6, 10**9)
        for n, (fid, (lon, lat)) in enumerate(ids):
            tx, ty = tile_of(lon, lat, 18)
            tile = f"/tiles/{LAYER}/18/{tx}/{ty}.mvt"
            etag = req(cb, "GET", tile)[1].get("ETag")
            value = base + n
            t0 = time.perf_counter()
            st, _, _ = req(ca, "PATCH", f"/ogc/collections/{LAYER}/items/{fid}",
                           {"properties": {"employees": value}}, token)
            answer.append(time.perf_counter() - t0)
            if st != 200:
                sys.exit(f"PATCH answered {st}")
            seen_item = seen_tile = seen_event = None
            while None in (seen_item, seen_tile, seen_event) and time.perf_counter() - t0 < 5:
                if seen_item is None:
                    _, _, raw = req(cb, "GET", f"/ogc/collections/{LAYER}/items/{fid}")
                    if json.loads(raw)["properties"].get("employees") == value:
                        seen_item = time.perf_counter() - t0
                if seen_tile is None and req(cb, "GET", tile)[1].get("ETag") != etag:
                    seen_tile = time.perf_counter() - t0
                with lock:
                    if seen_event is None and events.get(fid, 0) > t0:
                        seen_event = events[fid] - t0
            in_items.append(seen_item if seen_item is not None else float("inf"))
            in_tiles.append(seen_tile if seen_tile is not None else float("inf"))
            in_events.append(seen_event if seen_event is not None else float("inf"))
        stop.set()
        ms = lambda xs: {"p50_ms": round(pct(xs, .5) * 1000, 2), "p99_ms": round(pct(xs, .99) * 1000, 2),
                         "max_ms": round(max(xs) * 1000, 2)}
        print(json.dumps({"data": "GENERATED kit layer, 1,000,000 points, on PostgreSQL", "edits": len(ids),
                          "patch_answer_on_A": ms(answer), "visible_on_B": {"items": ms(in_items),
                          "tiles": ms(in_tiles), "events": ms(in_events)}}, indent=2))
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)


if __name__ == "__main__":
    main()
