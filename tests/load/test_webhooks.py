"""Webhook burst (issue 9 item 5), black-box: the real obmend with a МойСклад source
(webhooks on, poll_interval 0) against the fake МойСклад (tests/fakes/moysklad), and deliveries
POSTed straight to obmend's webhook route by burst.py processes — 1 000 a second for 10 s (CI) or
60 s (long), each a distinct requestId naming a product that exists in the fake, plus 2 % repeats
of earlier requestIds (МойСклад retrying). Measured: each answer's latency (p50/p99/max; every
answer must be 200 and p99 < 100 ms), /healthz and obmend's RSS (sampler.py), and after the burst
the drain: every delivery applied (queue target '<source>/in' all done) and exactly one queue item
per distinct requestId (obmen.webhook_events), i.e. every event applied once.

Synchronisation: `obmenctl resync --wait`, the burst processes' exit, database polls with
deadlines. Prints a report (loadlib.Report).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import loadlib
from loadlib import HERE, Report, Sampler, rss_summary, size

from fake_moysklad import FakeMoySklad
from harness import Harness, reference_dir
from test_moysklad import free_port

SOURCE = "ms"
TOKEN = "load0token000000000000000000000000000001"
HOOK_PATH = "/hooks/moysklad"
PROCESSES = 4
P99_MS = 100.0


class WebhookBurst(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.fake = FakeMoySklad(reference_dir=reference_dir()).start()
        self.addCleanup(self.fake.stop)
        self.fake.add_token(TOKEN)
        # What a request costs МойСклад's budget of 45 units / 3 s: 4 with a user token (the long
        # run), 1 with a solution token (CI, so that the drain fits its time budget).
        self.weight = size("webhook_auth_weight")
        self.fake.configure_ratelimit(weight=self.weight)
        self.fake.generate(products=max(100, size("webhook_products")), variants_every=0)
        self.h = Harness.for_test(self)
        self.h.create_database()
        self.port = free_port()
        source = {"type": "moysklad", "base_url": self.fake.base_url + "/", "token": {"env": "OBMEN_MS_TOKEN"},
                  "poll_interval": 0, "request_timeout": 10, "auth_weight": self.weight,
                  "webhooks": {"url": f"http://127.0.0.1:{self.port}{HOOK_PATH}"}}
        cfg = self.h.config({"http": {"port": self.port}, "log": {"level": "info"}, "sources": {SOURCE: source}})
        self.cfg_path = self.h.write_config(cfg)
        self.env = dict(self.h.env(), OBMEN_MS_TOKEN=TOKEN)
        self.d = self.h.start_daemon(self.cfg_path, env=self.env)
        r = self.h.ctl("resync", "--source", SOURCE, "--entity", "catalog", "--full", "--wait", config=self.cfg_path,
                       env=self.env, timeout=300)
        self.assertEqual(r.returncode, 0, f"resync: {r.stdout}{r.stderr}\n{self.d.log_excerpt(5000)}")

    def scalar(self, sql: str) -> int:
        return int(self.h.scalar(sql) or 0)

    def test_a_burst_of_webhooks_is_answered_fast_and_applied_once(self):
        rate, seconds, n_products = size("webhook_rate"), size("webhook_seconds"), size("webhook_products")
        report = Report("load_webhooks", f"webhook burst, {rate}/s for {seconds} s")
        products = [p for p in self.fake.all_entities("product") if not p.get("archived")][:n_products]
        self.assertEqual(len(products), n_products, "the fake has enough products")
        bodies = [{"auditContext": {"meta": {"type": "audit", "href": f"{self.fake.base_url}/audit/load"},
                                    "moment": "2026-12-06 10:00:00", "uid": "admin@obmen"},
                   "events": [{"meta": {"type": "product", "href": p["meta"]["href"]}, "action": "UPDATE",
                               "accountId": p["accountId"]}]} for p in products]
        work = Path(tempfile.mkdtemp(prefix="obmen-load-burst-"))
        (work / "bodies.json").write_text(json.dumps(bodies), encoding="utf-8")
        requests_before = self.fake.state()["requests_total"]

        sampler = Sampler(self.d.port, self.d.proc.pid)
        self.addCleanup(sampler.close)
        start_at = time.time() + 1.0
        procs = [subprocess.Popen([sys.executable, str(HERE / "burst.py"), "--port", str(self.port), "--path", HOOK_PATH,
                                   "--rate", str(rate / PROCESSES), "--seconds", str(seconds),
                                   "--bodies", str(work / "bodies.json"), "--start-at", str(start_at), "--tag", str(k),
                                   "--out", str(work / f"burst{k}.json")]) for k in range(PROCESSES)]
        for p in procs:
            self.assertEqual(p.wait(seconds * 5 + 120), 0, "a burst process failed")
        burst_end = time.monotonic()
        results = [json.loads((work / f"burst{k}.json").read_text(encoding="utf-8")) for k in range(PROCESSES)]
        latencies = [x for r in results for x in r["latencies_ms"]]
        lateness = [x for r in results for x in r["lateness_ms"]]
        statuses: dict[str, int] = {}
        for r in results:
            for k, v in r["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        errors = [e for r in results for e in r["errors"]]
        ids = {i for r in results for i in r["ids"]}
        repeats = sum(len(r["repeats"]) for r in results)
        sent = sum(statuses.values()) + len(errors)

        # The drain: every delivery of the source's inbound queue done (polled with a deadline).
        drain_deadline = time.monotonic() + float(loadlib.os.environ.get("OBMEN_LOAD_DRAIN_TIMEOUT",
                                                                          "900" if loadlib.long_run() else "120"))
        target = f"{SOURCE}/in"
        left = None
        while time.monotonic() < drain_deadline:
            left = self.scalar(f"SELECT count(*) FROM obmen.queue WHERE target = '{target}' AND state <> 'done'")
            if left == 0:
                break
            time.sleep(0.2)   # polling the database with a deadline
        drain_seconds = time.monotonic() - burst_end
        samples = sampler.stop()
        fake_state = self.fake.state()

        queued = self.scalar(f"SELECT count(*) FROM obmen.queue WHERE target = '{target}'")
        done = self.scalar(f"SELECT count(*) FROM obmen.queue WHERE target = '{target}' AND state = 'done'")
        dead = self.scalar(f"SELECT count(*) FROM obmen.queue WHERE target = '{target}' AND state = 'dead'")
        retried = self.scalar(f"SELECT count(*) FROM obmen.queue WHERE target = '{target}' AND attempts > 1")
        events = self.scalar(f"SELECT count(*) FROM obmen.webhook_events WHERE source = '{SOURCE}'")
        linked = self.scalar(f"SELECT count(DISTINCT queue_item_id) FROM obmen.webhook_events WHERE source = '{SOURCE}'")
        deliveries = self.scalar(f"SELECT sum(deliveries) FROM obmen.webhook_events WHERE source = '{SOURCE}'")
        repeated_rows = self.scalar(f"SELECT count(*) FROM obmen.webhook_events WHERE source = '{SOURCE}' AND deliveries > 1")
        fetches = fake_state["requests_total"] - requests_before

        report.add("token", self.weight, f"{'solution' if self.weight == 1 else 'user'} token: {self.weight} unit(s) a request, "
                                         f"45 units / 3 s")
        report.add("sent", sent, f"{sent} deliveries by {PROCESSES} processes ({len(ids)} distinct requestIds, "
                                 f"{repeats} repeats), {n_products} products named")
        report.add("answers", statuses, ", ".join(f"HTTP {k}: {v}" for k, v in sorted(statuses.items())) +
                   (f", {len(errors)} without an answer" if errors else ""))
        s = report.latency("webhook_answer", latencies)
        report.latency("send_lateness", lateness)
        hz = report.latency("healthz", samples["healthz_ms"])
        rss = rss_summary(report, "rss", samples["rss_kib"])
        report.add("events_stored", events, f"{events} webhook_events rows, {linked} queue items linked, "
                                            f"{deliveries} deliveries counted, {repeated_rows} rows seen more than once")
        report.add("applied", done, f"{done} of {queued} queue items done, {dead} dead, {retried} retried "
                                    f"({'drained' if left == 0 else f'{left} NOT drained'} {drain_seconds:.1f} s after the burst)")
        report.add("drain_rate", round(done / drain_seconds, 1) if drain_seconds else None,
                   f"{done / max(drain_seconds, 0.001):.1f} deliveries/s applied after the burst; "
                   f"{fetches} requests to МойСклад, {fake_state['served_429']} answered 429")
        report.print()

        self.assertEqual(errors, [], errors[:5])
        self.assertEqual(set(statuses), {"200"}, f"every delivery answered 200: {statuses}")
        self.assertLess(s["p99_ms"], P99_MS, "webhook answers p99 under 100 ms")
        self.assertEqual(events, len(ids), "one webhook_events row per distinct requestId")
        self.assertEqual(queued, len(ids), "exactly one queue item per distinct requestId")
        self.assertEqual(linked, len(ids))
        self.assertEqual(deliveries, sent, "every delivery counted (repeats as deliveries of their row)")
        self.assertEqual(left, 0, f"the queue drained within the deadline ({left} left)\n{self.d.log_excerpt(4000)}")
        self.assertEqual((done, dead), (len(ids), 0), "every event applied once")
        self.assertEqual(samples["healthz_error_count"], 0)
        self.assertLess(rss["peak_mib"], 256.0)


if __name__ == "__main__":
    unittest.main()
