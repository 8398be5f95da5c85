#!/usr/bin/env python3
"""Replay of a busy storm night: CHANGES GENERATED position reports of the
demo's teams (16 writers at once), then `GET /api/replay?at=T` for a moment
T before all of them (every change undone) and for one halfway, each ROUNDS
times. Baseline in the same run: `GET /api/summary` (the same summary over
the live index, no undoing). Reuses the server helpers of dispatch_load.py.

Python 3.11 stdlib only; 127.0.0.1 only; bounded in count.
Usage: python3 benches/replay_load.py [--changes 10000] [--rounds 5] [--bin PATH]
"""
import argparse, datetime, json, os, random, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dispatch_load as kit  # noqa: E402


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timed(addr, path, rounds):
    times, doc = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        status, doc = kit.once(addr, None, "GET", path)
        times.append(time.perf_counter() - t)
        assert status == 200, (status, doc)
    return sorted(times)[len(times) // 2], doc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bin")
    args = ap.parse_args()
    if args.bin:
        kit.BIN = os.path.abspath(args.bin)
    else:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "onemap"], cwd=kit.ROOT, check=True)
    work = tempfile.mkdtemp(prefix="onemap-replay-")
    db = os.path.join(work, "replay.gpkg")
    token = subprocess.run([kit.BIN, "--database", f"sqlite://{db}", "token", "create", "--role", "dispatcher",
                            "--name", "bench"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    proc, addr = kit.start(work, db, 8)
    try:
        status, teams = kit.once(addr, None, "GET", "/ogc/collections/rescue_teams/items?limit=1000")
        ids = [f["id"] for f in teams["features"]]
        time.sleep(0.05)
        before = now()
        time.sleep(0.05)
        per = args.changes // 16
        half = {"at": None}
        failures = []

        def writer(w):
            rng = random.Random(w)
            c = kit.Client(addr, token)
            for k in range(per):
                tid = ids[(w * per + k) % len(ids)]
                p = [rng.uniform(kit.BOX[0], kit.BOX[2]), rng.uniform(kit.BOX[1], kit.BOX[3])]
                s, _ = c.send("PATCH", f"/api/teams/{tid}/position", {"lon": p[0], "lat": p[1]})
                if s != 200:
                    failures.append(s)
                if w == 0 and k == per // 2:
                    half["at"] = now()
            c.close()

        t = time.perf_counter()
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wrote = time.perf_counter() - t
        summary_s, _ = timed(addr, "/api/summary", args.rounds)
        all_s, doc_all = timed(addr, f"/api/replay?at={before}", args.rounds)
        half_s, doc_half = timed(addr, f"/api/replay?at={half['at']}", args.rounds)
        print(json.dumps({
            "changes_written": per * 16, "failures": len(failures), "write_s": round(wrote, 1),
            "replay_all_undone": doc_all["changes_undone"], "replay_all_median_ms": kit.ms(all_s),
            "replay_half_undone": doc_half["changes_undone"], "replay_half_median_ms": kit.ms(half_s),
            "unreplayable": doc_all["unreplayable"],
            "baseline_summary_median_ms": kit.ms(summary_s),
            "ratio_replay_all_over_summary": round(all_s / summary_s, 1),
        }, indent=2))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
