"""Samples obmend from a separate process (so the load generators' GIL never delays a sample):
``GET /healthz`` every ``--interval`` seconds on a keep-alive connection (latency from the
request's first byte to the answer's last, in ms) and the daemon's ``VmRSS`` from
/proc/<pid>/status at the same ticks. Runs until its stdin closes, then writes one JSON object to
``--out``: {"healthz_ms": [...], "healthz_errors": [...], "rss_kib": [...], "ticks": n}.

    python3 sampler.py --port P --pid PID --interval 0.02 --out samples.json   (stdin: a pipe)

The interval is a sampling rate, not synchronisation. Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time


def vm_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    stop = threading.Event()

    def watch_stdin():
        sys.stdin.buffer.read()   # returns at EOF: the parent closed the pipe
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    latencies: list[float] = []
    errors: list[str] = []
    rss: list[int] = []
    conn: http.client.HTTPConnection | None = None
    ticks = 0
    next_at = time.monotonic()
    while not stop.is_set():
        ticks += 1
        r = vm_rss_kib(args.pid)
        if r is not None:
            rss.append(r)
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=args.timeout)
                conn.connect()
            t0 = time.perf_counter()
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            body = resp.read()
            dt = (time.perf_counter() - t0) * 1000.0
            latencies.append(dt)
            if resp.status != 200:
                errors.append(f"HTTP {resp.status}: {body[:200]!r}")
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            errors.append(f"{type(e).__name__}: {e}")
            if conn is not None:
                conn.close()
            conn = None
        next_at += args.interval
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)        # the sampling rate
        else:
            next_at = time.monotonic()
    with open(args.out + ".tmp", "w", encoding="utf-8") as f:
        json.dump({"healthz_ms": latencies, "healthz_errors": errors[:100], "healthz_error_count": len(errors),
                   "rss_kib": rss, "ticks": ticks}, f)
    os.replace(args.out + ".tmp", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
