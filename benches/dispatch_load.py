#!/usr/bin/env python3
"""Dispatch load test: team positions fanned out to SSE clients, and the
assignment race, each beside a baseline measured in the same run.

Builds the release binary, starts `onemap serve --demo` on a temporary
GeoPackage on 127.0.0.1, inserts TEAMS GENERATED standby rescue teams
(`POST /ogc/collections/rescue_teams/items`, dispatcher token), opens CLIENTS
SSE streams on `/api/events` (raw sockets in a second process, one selector;
each records when every `event: change` arrived, by seq), then:

  quiet:     QUIET_SECONDS s of positions (as below) before any stream is
      open: the server's CPU per write without the fan-out;
  positions: each team sends one `PATCH /api/teams/{id}/position` a second
      (`at` timestamps) for SECONDS s, teams staggered over the second; a
      team waits for its answer before its next fix, and nothing is sent
      after SECONDS s, so a server that cannot keep up shows as a lower
      achieved rate (offered: TEAMS a second);
  baseline:  the same schedule of plain `PATCH /ogc/collections/rescue_teams/
      items/{id}` merge patches (`{"properties":{"headcount":N}}`).

For both: every change must reach every client (each client saw every seq
of the phase); delivery latency (the PATCH's send → the event's receipt at a
client, over every client and event), the PATCH answer latency, p50/p99,
and the server's CPU per request (/proc/PID/stat).

  race:     ROUNDS rounds of RACERS concurrent `POST /api/incidents/{id}/
      assignments` of one standby team over RACERS fresh connections (a new
      incident and team each round): exactly one 201 and RACERS-1 409s;
  baseline: RACERS concurrent `GET /api/nearest` over fresh connections,
      rounds alternating with the race rounds.

Python 3.11 stdlib only. Only 127.0.0.1 is contacted; every loop is bounded
in count and time. Prints a JSON report.
Usage: python3 benches/dispatch_load.py [--seconds 60] [--teams 200]
       [--quiet-seconds 15] [--clients 100] [--rounds 20] [--racers 50]
       [--bin PATH (skip the build)]
"""
import argparse, datetime, http.client, json, multiprocessing, os, pickle, random, re
import selectors, shutil, signal, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "onemap")
# Inside the demo's districts (positions far outside are refused).
BOX = (118.15, 34.82, 118.45, 35.12)


def cpu_s(pid):
    """CPU seconds (user + system) a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def ms(x):
    return round(x * 1000, 2)


# --- server -----------------------------------------------------------------

def start(work, db, clients):
    log = open(os.path.join(work, "server.log"), "w")
    proc = subprocess.Popen(
        [BIN, "--database", f"sqlite://{db}", "--log", "warn,onemap=info", "serve", "--demo", "--bind", "127.0.0.1:0",
         "--web-dir", work, "--max-event-streams-per-client", str(clients + 8)],
        stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: see {log.name}")
        with open(log.name) as f:
            m = re.search(r"listening on http://(127\.0\.0\.1):(\d+)", f.read())
        if m:
            return proc, (m.group(1), int(m.group(2)))
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, addr, token=None, timeout=30):
        self.conn = http.client.HTTPConnection(*addr, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def connect(self):
        self.conn.connect()

    def send(self, method, path, body=None, ctype="application/json"):
        h = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = ctype
        self.conn.request(method, path, body=data, headers=h)
        r = self.conn.getresponse()
        raw = r.read()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw.decode(errors="replace")
        return r.status, doc

    def close(self):
        self.conn.close()


def once(addr, token, method, path, body=None, ctype="application/json"):
    """One request on a connection of its own (a kept one may have idled out)."""
    c = Client(addr, token)
    try:
        return c.send(method, path, body, ctype)
    finally:
        c.close()


# --- SSE clients (a second process) ----------------------------------------

def sse_process(addr, n, ready, stop, out_path, keep_data):
    """Open `n` streams; per stream, seq → receipt time (monotonic) of every
    `event: change`. Stream 0 also keeps each event's data."""
    sel = selectors.DefaultSelector()
    streams = []
    req = (f"GET /api/events?layers=rescue_teams HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\n"
           "Accept: text/event-stream\r\n\r\n").encode()
    for i in range(n):
        s = socket.create_connection(addr, timeout=10)
        s.sendall(req)
        st = {"i": i, "sock": s, "raw": b"", "buf": b"", "head": False, "chunked": False,
              "need": None, "seen": {}, "data": {} if (keep_data and i == 0) else None, "closed": False}
        streams.append(st)
    for st in streams:  # headers first, blocking: each must answer 200
        while b"\r\n\r\n" not in st["raw"]:
            got = st["sock"].recv(65536)
            if not got:
                raise SystemExit(f"stream {st['i']} closed before its headers")
            st["raw"] += got
        head, st["raw"] = st["raw"].split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"stream {st['i']}: {head[:200]!r}")
        st["chunked"] = b"transfer-encoding: chunked" in head.lower()
        st["sock"].setblocking(False)
        sel.register(st["sock"], selectors.EVENT_READ, st)
        feed(st, time.monotonic())
    ready.set()
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.2):
            st = key.data
            try:
                got = st["sock"].recv(262144)
            except BlockingIOError:
                continue
            t = time.monotonic()
            if not got:
                sel.unregister(st["sock"])
                st["closed"] = True
                continue
            st["raw"] += got
            feed(st, t)
    result = [{"seen": st["seen"], "data": st["data"], "closed": st["closed"]} for st in streams]
    with open(out_path, "wb") as f:
        pickle.dump(result, f)
    for st in streams:
        st["sock"].close()


def feed(st, t):
    """Move the body bytes (de-chunked) to the SSE buffer, then take every
    complete event block."""
    if st["chunked"]:
        raw = st["raw"]
        pos = 0
        while True:
            if st["need"] is None:
                end = raw.find(b"\r\n", pos)
                if end < 0:
                    break
                st["need"] = int(raw[pos:end].split(b";")[0], 16) + 2  # payload + CRLF
                pos = end + 2
            if len(raw) - pos < st["need"]:
                break
            st["buf"] += raw[pos:pos + st["need"] - 2]
            pos += st["need"]
            st["need"] = None
        st["raw"] = raw[pos:]
    else:
        st["buf"] += st["raw"]
        st["raw"] = b""
    buf = st["buf"]
    start = 0
    while True:
        end = buf.find(b"\n\n", start)
        if end < 0:
            break
        block = buf[start:end]
        start = end + 2
        if b"event: change" not in block:
            continue  # keep-alive comments, resets
        i = block.find(b"id: ")
        if i < 0 or (i > 0 and block[i - 1] != 10):
            continue
        j = block.find(b"\n", i)
        seq = int(block[i + 4:j if j >= 0 else len(block)])
        st["seen"][seq] = t
        if st["data"] is not None:
            d = block.find(b"data: ")
            st["data"][seq] = block[d + 6:block.find(b"\n", d) if block.find(b"\n", d) >= 0 else len(block)]
    st["buf"] = buf[start:]


# --- phases -----------------------------------------------------------------

def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def schedule(addr, token, ids, seconds, make_request):
    """Each team its own connection, one request a second for `seconds` s,
    teams staggered over the second; a team waits for its answer before its
    next request, and none is sent after the `seconds` (so a server that
    cannot keep up shows as a lower rate). Per request: (team, k, sent,
    answered, status, body)."""
    out = [[] for _ in ids]
    t0 = time.monotonic() + 1.0
    deadline = t0 + seconds

    def team(slot, tid):
        c = Client(addr, token)
        offset = slot / len(ids)
        for k in range(seconds):
            wait = t0 + k + offset - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if time.monotonic() >= deadline:
                break  # a server that cannot keep up gets fewer requests, not more time
            method, path, body, ctype = make_request(tid, k)
            sent = time.monotonic()
            status, doc = c.send(method, path, body, ctype)
            out[slot].append((tid, k, sent, time.monotonic(), status, doc))
        c.close()

    threads = [threading.Thread(target=team, args=(s, t)) for s, t in enumerate(ids)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=seconds + 120)
    return [r for rs in out for r in rs], time.monotonic() - t0


def concurrently(addr, token, n, method, path, body):
    """`n` requests at once over `n` fresh connections (connected before the
    start): (status, body, seconds) each."""
    conns = [Client(addr, token) for _ in range(n)]
    for c in conns:
        c.connect()
    barrier = threading.Barrier(n)
    out = [None] * n

    def one(i):
        barrier.wait()
        t = time.monotonic()
        status, doc = conns[i].send(method, path, body)
        out[i] = (status, doc, time.monotonic() - t)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    for c in conns:
        c.close()
    return out


def deliveries(requests, streams, want_kind):
    """Match each applied request to its event (per team, in order: a team's
    requests are sequential and each commits before its answer), then check
    every stream saw every seq, and gather the delivery latencies."""
    data = streams[0]["data"]
    by_team = {}
    for seq in sorted(data):
        d = json.loads(data[seq])
        action = d.get("action") or {}
        if action.get("kind", "edit") != want_kind:
            continue
        by_team.setdefault(d["ids"][0], []).append(seq)
    sent = {}
    for tid, k, t_send, _, status, doc in sorted(requests, key=lambda r: (r[0], r[1])):
        if status == 200 and (want_kind != "team.position" or doc.get("applied")):
            sent.setdefault(tid, []).append(t_send)
    seq_sent = {}
    for tid, times in sent.items():
        seqs = by_team.get(tid, [])
        for seq, t in zip(seqs, times):
            seq_sent[seq] = t
    applied = sum(len(v) for v in sent.values())
    matched = sum(min(len(by_team.get(t, [])), len(v)) for t, v in sent.items())
    all_seqs = set(seq_sent)
    lat = []
    missing = 0
    for st in streams:
        seen = st["seen"]
        missing += sum(1 for s in all_seqs if s not in seen)
        lat.extend(seen[s] - t for s, t in seq_sent.items() if s in seen)
    seqs = sorted(all_seqs)
    return {
        "applied_requests": applied,
        "events_matched_to_requests": matched,
        "seq_range": [seqs[0], seqs[-1]] if seqs else None,
        "clients": len(streams),
        "deliveries_expected": len(all_seqs) * len(streams),
        "deliveries_missing": missing,
        "every_event_to_every_client": missing == 0 and matched == applied,
        "delivery_p50_ms": ms(pct(lat, 0.5)),
        "delivery_p99_ms": ms(pct(lat, 0.99)),
        "delivery_max_ms": ms(max(lat)) if lat else None,
    }


def answers(requests, offered, wall):
    lat = [r[3] - r[2] for r in requests]
    bad = [r[4] for r in requests if r[4] != 200]
    return {"requests": len(requests), "offered_per_s": offered, "achieved_per_s": round(len(requests) / wall, 1),
            "non_200": len(bad), "answer_p50_ms": ms(pct(lat, 0.5)),
            "answer_p99_ms": ms(pct(lat, 0.99)), "answer_max_ms": ms(max(lat)) if lat else None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--teams", type=int, default=200)
    ap.add_argument("--quiet-seconds", type=int, default=15, help="positions before any stream opens")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--racers", type=int, default=50)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--bin", help="a built onemap binary to run instead of building the release one")
    args = ap.parse_args()
    started = time.monotonic()
    global BIN
    if args.bin:
        BIN = os.path.abspath(args.bin)
    else:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "onemap"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="onemap-dispatch-load-")
    db = os.path.join(work, "load.gpkg")
    token = subprocess.run([BIN, "--database", f"sqlite://{db}", "token", "create", "--role", "dispatcher",
                            "--name", "bench"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    proc, addr = start(work, db, args.clients)
    sse = None
    report = {"args": vars(args)}
    try:
        rng = random.Random(20261201)
        types = ["comprehensive_fire_rescue", "professional_fire", "water_rescue", "militia", "volunteer", "medical"]
        caps = ["water_rescue", "flood_pumping", "evacuation", "diving", "levee_repair", "medical"]
        where = {}
        features = []
        for i in range(args.teams):
            p = [rng.uniform(BOX[0], BOX[2]), rng.uniform(BOX[1], BOX[3])]
            features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": p},
                             "properties": {"name": f"压测队{i}", "team_type": rng.choice(types), "status": "standby",
                                            "headcount": 10, "capabilities": [c for c in caps if rng.random() < 0.3]}})
        status, doc = once(addr, token, "POST", "/ogc/collections/rescue_teams/items",
                            {"type": "FeatureCollection", "features": features}, "application/geo+json")
        assert status == 201, (status, doc)
        ids = doc["ids"]
        for tid, f in zip(ids, features):
            where[tid] = list(f["geometry"]["coordinates"])

        def position(tid, k):
            p = where[tid]
            p[0] = min(max(p[0] + rng.uniform(-0.002, 0.002), BOX[0]), BOX[2])
            p[1] = min(max(p[1] + rng.uniform(-0.002, 0.002), BOX[1]), BOX[3])
            return "PATCH", f"/api/teams/{tid}/position", {"lon": p[0], "lat": p[1], "at": now_rfc3339()}, "application/json"

        def headcount(tid, k):
            return ("PATCH", f"/ogc/collections/rescue_teams/items/{tid}", {"properties": {"headcount": 11 + k}},
                    "application/merge-patch+json")

        # Positions with no stream open: what the fan-out adds, in CPU.
        cpu = cpu_s(proc.pid)
        quiet_reqs, quiet_wall = schedule(addr, token, ids, args.quiet_seconds, position)
        quiet = {**answers(quiet_reqs, len(ids), quiet_wall),
                 "server_cpu_ms_per_request": round((cpu_s(proc.pid) - cpu) * 1000 / max(len(quiet_reqs), 1), 3)}
        report["positions_without_streams"] = quiet

        ready, stop = multiprocessing.Event(), multiprocessing.Event()
        sse_out = os.path.join(work, "sse.pickle")
        sse = multiprocessing.Process(target=sse_process, args=(addr, args.clients, ready, stop, sse_out, True))
        sse.start()
        if not ready.wait(60):
            raise SystemExit("the SSE clients did not connect")

        cpu, sse_cpu = cpu_s(proc.pid), cpu_s(sse.pid)
        pos_reqs, pos_wall = schedule(addr, token, ids, args.seconds, position)
        time.sleep(3)  # drain
        pos_cpu = cpu_s(proc.pid) - cpu
        cpu = cpu_s(proc.pid)
        edit_reqs, edit_wall = schedule(addr, token, ids, args.seconds, headcount)
        time.sleep(5)
        edit_cpu = cpu_s(proc.pid) - cpu
        sse_cpu = cpu_s(sse.pid) - sse_cpu
        stop.set()
        sse.join(timeout=120)
        with open(sse_out, "rb") as f:
            streams = pickle.load(f)
        report["sse_streams_closed_early"] = sum(1 for s in streams if s["closed"])
        pos = {**answers(pos_reqs, len(ids), pos_wall), **deliveries(pos_reqs, streams, "team.position"),
               "server_cpu_ms_per_request": round(pos_cpu * 1000 / max(len(pos_reqs), 1), 3)}
        edit = {**answers(edit_reqs, len(ids), edit_wall), **deliveries(edit_reqs, streams, "edit"),
                "server_cpu_ms_per_request": round(edit_cpu * 1000 / max(len(edit_reqs), 1), 3)}
        report["sse_reader_process_cpu_s"] = round(sse_cpu, 1)
        report["positions"] = pos
        report["baseline_merge_patch"] = edit
        report["ratio_answer_p99_position_over_merge_patch"] = round(pos["answer_p99_ms"] / edit["answer_p99_ms"], 2)
        report["ratio_delivery_p99_position_over_merge_patch"] = round(pos["delivery_p99_ms"] / edit["delivery_p99_ms"], 2)
        del streams

        race_lat, near_lat, winners, doubled = [], [], [], 0
        for r in range(args.rounds):
            tid = ids[r]
            p = where[tid]
            status, inc = once(addr, token, "POST", "/api/incidents",
                                     {"type": "flood", "severity": "major", "lon": p[0] + 0.01, "lat": p[1] + 0.01,
                                      "required_capabilities": ["water_rescue"]})
            assert status == 201, (status, inc)
            got = concurrently(addr, token, args.racers, "POST", f"/api/incidents/{inc['id']}/assignments", {"team_id": tid})
            codes = [g[0] for g in got]
            winners.append(codes.count(201))
            assert codes.count(201) + codes.count(409) == len(codes), codes
            race_lat += [g[2] for g in got]
            _, i = once(addr, token, "GET", f"/api/incidents/{inc['id']}")
            doubled += len(i["properties"].get("assignments") or []) != 1
            got = concurrently(addr, token, args.racers, "GET",
                               f"/api/nearest?layer=rescue_teams&lon={p[0]}&lat={p[1]}&limit=5"
                               "&capability=water_rescue&status=standby", None)
            assert all(g[0] == 200 for g in got), [g[0] for g in got]
            near_lat += [g[2] for g in got]
        report["race"] = {
            "rounds": args.rounds, "racers": args.racers,
            "exactly_one_winner_every_round": all(w == 1 for w in winners) and doubled == 0,
            "winners_per_round": winners,
            "answer_p50_ms": ms(pct(race_lat, 0.5)), "answer_p99_ms": ms(pct(race_lat, 0.99)),
        }
        report["baseline_concurrent_nearest"] = {"answer_p50_ms": ms(pct(near_lat, 0.5)),
                                                 "answer_p99_ms": ms(pct(near_lat, 0.99))}
        report["ratio_race_p99_over_nearest_p99"] = round(pct(race_lat, 0.99) / pct(near_lat, 0.99), 2)
    finally:
        if sse is not None and sse.is_alive():
            sse.terminate()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report["runtime_s"] = round(time.monotonic() - started)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
