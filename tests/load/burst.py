"""Sends МойСклад-style webhook deliveries to obmend at a fixed rate from one process (asyncio,
keep-alive connections, raw HTTP/1.1), open loop: delivery i is due at start + i / rate whatever
the answers do. Each delivery has a fresh requestId, except every ``--repeat-every``-th, which
repeats an earlier one of this process with the same body (МойСклад retrying). Writes one JSON
object to ``--out``: answer latencies (ms, write of the request → end of the answer), statuses,
request ids sent, repeats, how late the sends were against the schedule, errors.

    python3 burst.py --port P --path /hooks/moysklad --rate 250 --seconds 10 --bodies bodies.json \
                     --start-at EPOCH --tag 0 --out result.json

``bodies.json`` is a list of JSON bodies; delivery i carries bodies[i % len]. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid


async def main_async(args) -> dict:
    bodies = [json.dumps(b).encode() for b in json.load(open(args.bodies, encoding="utf-8"))]
    total = int(args.rate * args.seconds)
    queue: asyncio.Queue = asyncio.Queue()
    latencies: list[float] = []
    lateness: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    sent_ids: list[str] = []
    repeats: list[str] = []

    async def scheduler():
        loop_start = time.monotonic() + max(0.0, args.start_at - time.time())
        history: list[tuple[str, bytes]] = []
        for i in range(total):
            due = loop_start + i / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)   # the send schedule
            if args.repeat_every and i % args.repeat_every == args.repeat_every - 1 and len(history) > 10:
                rid, body = history[-10]
                repeats.append(rid)
            else:
                rid, body = f"{args.tag}-{uuid.uuid4()}", bodies[i % len(bodies)]
                history.append((rid, body))
                sent_ids.append(rid)
            await queue.put((due, rid, body))
        for _ in range(args.conns):
            await queue.put(None)

    async def worker():
        reader = writer = None
        while True:
            job = await queue.get()
            if job is None:
                break
            due, rid, body = job
            for attempt in (0, 1):
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
                    head = (f"POST {args.path}?requestId={rid} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
                            f"User-Agent: MoySklad webhook touch agent 2.0 (/https://www.moysklad.ru)\r\n"
                            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                    t0 = time.monotonic()
                    lateness.append((t0 - due) * 1000.0)
                    writer.write(head + body)
                    await writer.drain()
                    status_line = await asyncio.wait_for(reader.readline(), args.timeout)
                    if not status_line:
                        raise ConnectionError("connection closed before the answer")
                    length, close = 0, False
                    while True:
                        line = await reader.readline()
                        if line in (b"\r\n", b""):
                            break
                        k, _, v = line.decode("latin-1").partition(":")
                        if k.strip().lower() == "content-length":
                            length = int(v.strip())
                        elif k.strip().lower() == "connection" and v.strip().lower() == "close":
                            close = True
                    if length:
                        await reader.readexactly(length)
                    latencies.append((time.monotonic() - t0) * 1000.0)
                    status = status_line.split()[1].decode()
                    statuses[status] = statuses.get(status, 0) + 1
                    if close:
                        writer.close()
                        reader = writer = None
                    break
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError) as e:
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    if attempt == 1:
                        errors.append(f"{rid}: {type(e).__name__}: {e}")
        if writer is not None:
            writer.close()

    started = time.time()
    await asyncio.gather(scheduler(), *(worker() for _ in range(args.conns)))
    return {"latencies_ms": latencies, "lateness_ms": lateness, "statuses": statuses, "errors": errors,
            "ids": sent_ids, "repeats": repeats, "seconds": time.time() - max(started, args.start_at)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--bodies", required=True)
    ap.add_argument("--start-at", type=float, default=0.0)
    ap.add_argument("--tag", default="0")
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--repeat-every", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    result = asyncio.run(main_async(args))
    with open(args.out + ".tmp", "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(args.out + ".tmp", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
