"""Resync jobs and the admin status surface, black-box: the real obmend (its runner LISTENs on
obmen_jobs), obmenctl resync / status / jobs, a client that behaves like 1C.

What is checked (docs/operations.md): a job enqueued with `obmenctl resync` is picked up within a
second through NOTIFY (the runner's fallback timer is 30 s); `--wait` shows progress and exits with
the job's outcome (0 done, 1 failed with the reason); a dry run after a mapping change reports what
would change and leaves the portal as it was, the real run applies it; an orders resync makes 1C's
next sale/query send orders it had acknowledged; `status --json` shows the last exchange;
`jobs cancel`; schedules enqueue once per slot.

Catalog: dobromyslov/commerceml-parser data/import0_1.xml + data/offers0_1.xml. No sleeps: READY
datagrams, obmenctl's exit (`--wait` follows the job's NOTIFYs) and psql are the events.
"""

from __future__ import annotations

import json
import re
import unittest

import cml
from harness import Harness
from onec_client import OneCClient
from sale_client import SaleClient, parse_xml, text_of, walk

SOURCE = "onec"
IMPORT = cml.DOBROMYSLOV + "/data__import0_1.xml"
OFFERS = cml.DOBROMYSLOV + "/data__offers0_1.xml"
CATALOG_TABLES = ("categories", "attributes", "products", "offers", "price_types", "prices", "warehouses", "stock")

MAPPING_BEFORE = "unmapped:\n  properties: import\n"
MAPPING_AFTER = """\
properties:
  - match: { name: "Код ОЗОН" }
    attribute: ozon_code
unmapped:
  properties: import
"""


class JobsTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.h = Harness.for_test(self)
        self.h.create_database()
        self.mapping = self.h.dir / "mapping.yaml"
        self.mapping.write_text(MAPPING_BEFORE, encoding="utf-8")
        self.d = None

    def config(self, **overrides):
        return self.h.config(overrides or None, mapping=str(self.mapping))

    def start(self, **overrides):
        self.d = self.h.start_daemon(self.config(**overrides))
        return self.d

    def ctl(self, *args):
        path = self.d.config_path if self.d else self.h.write_config(self.config())
        return self.h.ctl(*args, config=path)

    def resync(self, entity: str, *args: str, expect: int | None = 0):
        r = self.ctl("resync", "--source", SOURCE, "--entity", entity, *args)
        if expect is not None:
            self.assertEqual(r.returncode, expect, f"obmenctl resync {entity} {args}:\n{r.stdout}{r.stderr}"
                             + (self.d.log_excerpt(8000) if self.d else ""))
        m = re.search(r"^job (\d+) queued: resync of (\w+) from (\w+)", r.stdout, re.M)
        self.assertIsNotNone(m, f"no 'job N queued' line:\n{r.stdout}{r.stderr}")
        return int(m.group(1)), r

    def job(self, job_id: int) -> dict:
        rows = self.h.query_json(f"SELECT id, state, error, result, progress, requested_by, schedule, worker, "
                                 f"extract(epoch from started_at - created_at) AS pickup_seconds "
                                 f"FROM obmen.jobs WHERE id = {job_id}")
        self.assertEqual(len(rows), 1)
        return rows[0]

    def exchange(self, files=None):
        files = files or [("import0_1.xml", cml.sample_bytes(IMPORT)), ("offers0_1.xml", cml.sample_bytes(OFFERS))]
        with OneCClient(self.d.url(), Harness.USER, Harness.PASSWORD) as c:
            r = c.exchange(files)
        self.assertTrue(r.ok, f"exchange failed:\n{r.transcript()}\n{self.d.log_excerpt()}")
        return r

    def dump(self) -> dict:
        return {t: self.h.query_json(f"SELECT * FROM portal.{t} ORDER BY 1") for t in CATALOG_TABLES}


class Resync(JobsTestCase):

    def test_notify_picks_a_job_up_within_a_second(self):
        self.start()
        # The runner's fallback timer fires every 30 s: only NOTIFY can be this quick. Two jobs,
        # so at least the second one is certainly not caught by the runner's first poll.
        for _ in range(2):
            job_id, r = self.resync("orders", "--wait")
            j = self.job(job_id)
            self.assertEqual(j["state"], "done", j)
            self.assertLess(j["pickup_seconds"], 1.0, f"job {job_id} waited {j['pickup_seconds']:.3f} s for a runner")
            self.assertRegex(j["worker"], r":\d+$")
        self.assertIn("jobs: runner started", self.d.log())

    def test_wait_shows_progress_and_exits_with_the_jobs_outcome(self):
        self.start()
        # Nothing exchanged yet: a catalog resync has nothing to re-apply → failed, exit 1, the reason.
        job_id, r = self.resync("catalog", "--wait", expect=1)
        self.assertIn(f"job {job_id} failed: nothing to resync for catalog", r.stderr)
        self.assertEqual(self.job(job_id)["state"], "failed")

        self.exchange()
        job_id, r = self.resync("catalog", "--wait")
        out = r.stdout
        self.assertIn(f"job {job_id}: running on ", out)
        self.assertRegex(out, rf"job {job_id}: \d+% catalog", "piped output: one line per progress change")
        self.assertIn(f"job {job_id}: 100% finished", out)
        self.assertRegex(out, rf"job {job_id} done in [\d.]+ s\n")
        self.assertRegex(out, r"catalog: categories: 0 new, 0 updated, 1 unchanged; .*products: 0 new, 0 updated, 36 unchanged",
                         "re-applying the same files with the same mapping changes nothing")
        self.assertIn("  import0_1.xml: ", out)
        self.assertIn("  offers0_1.xml: ", out)
        j = self.job(job_id)
        self.assertEqual(j["progress"]["percent"], 100)
        self.assertFalse(j["result"]["catalog"]["changed"])
        self.assertEqual(j["result"]["catalog"]["files"][0]["file"], "import0_1.xml")

        # jobs show / list name it; an unknown entity is a usage error.
        r = self.ctl("jobs", "show", str(job_id), "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["state"], "done")
        r = self.ctl("jobs", "list", "--state", "failed", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([x["entity"] for x in json.loads(r.stdout)], ["catalog"])
        r = self.ctl("jobs", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rf"\n\s*{job_id}\s+done\s+onec\s+catalog")
        r = self.ctl("resync", "--entity", "products")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        r = self.ctl("resync", "--source", "nope", "--entity", "orders")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        for sub in (("resync",), ("status",), ("jobs", "list"), ("jobs", "show"), ("jobs", "cancel")):
            r = self.ctl(*sub, "--help")
            self.assertEqual(r.returncode, 0, f"{sub} --help: {r.stderr}")
            self.assertIn("Usage", r.stdout)

    def test_dry_run_after_a_mapping_change_then_the_real_run(self):
        self.start()
        self.exchange()
        attr_sql = "SELECT count(*) FROM portal.products WHERE attributes ? 'ozon_code'"
        self.assertEqual(self.h.count(attr_sql), 0)
        before = self.dump()

        self.mapping.write_text(MAPPING_AFTER, encoding="utf-8")
        self.d.reload()
        job_id, r = self.resync("catalog", "--dry-run", "--wait")
        self.assertIn("(dry run: nothing was changed; this is what would change)", r.stdout)
        result = self.job(job_id)["result"]["catalog"]
        changed = result["counts"]["products"]["updated"]
        self.assertGreater(changed, 0, f"the new attribute name changes products: {r.stdout}")
        self.assertTrue(result["changed"])
        self.assertIn(f"products: 0 new, {changed} updated", r.stdout)
        self.assertEqual(self.dump(), before, "a dry run leaves the portal as it was")

        job_id, r = self.resync("catalog", "--wait")
        self.assertEqual(self.job(job_id)["result"]["catalog"]["counts"]["products"]["updated"], changed)
        self.assertEqual(self.h.count(attr_sql), changed, "the real run applies the new mapping")
        self.assertNotEqual(self.dump(), before)

        # stock and prices re-apply only the offers file; `all` applies each file once.
        job_id, r = self.resync("all", "--dry-run", "--wait")
        res = self.job(job_id)["result"]
        self.assertEqual([f["file"] for f in res["catalog"]["files"]], ["import0_1.xml", "offers0_1.xml"])
        self.assertEqual(res["prices"]["files"], [])
        self.assertEqual(res["prices"]["already_applied"], ["offers0_1.xml"])
        self.assertFalse(res["catalog"]["changed"], r.stdout)
        self.assertEqual(res["orders"]["requeued"], 0)

    def test_orders_resync_makes_1c_receive_acknowledged_orders_again(self):
        self.start()
        cp = self.h.psql("INSERT INTO portal.counterparties (name, inn, kpp) VALUES ('ООО Ромашка', '7701234567', "
                         "'770101001') RETURNING id")[0][0]
        guid = self.h.psql(f"INSERT INTO portal.orders (number, counterparty_id, total, status) VALUES "
                           f"('П-1', {cp}, 10, 'new') RETURNING guid")[0][0]
        self.h.psql(f"INSERT INTO portal.orders (number, counterparty_id, total, status, cancelled) VALUES "
                    f"('П-2', {cp}, 10, 'cancelled', true)")

        def query() -> set[str]:
            c = SaleClient(self.d.url(), Harness.USER, Harness.PASSWORD)
            self.addCleanup(c.close)
            r = c.exchange_sale(version="2.09")
            self.assertTrue(r.ok, r.transcript())
            root = parse_xml(r.query.raw)
            return {text_of(d, "Ид") for d in walk(root, ["Документ"])}

        self.assertIn(guid, query())
        self.assertEqual(query(), set(), "acknowledged: not sent again")

        job_id, r = self.resync("orders", "--dry-run", "--wait")
        self.assertIn("orders: 1 would be sent again on 1C's next query", r.stdout)
        self.assertEqual(query(), set(), "a dry run changes nothing")

        job_id, r = self.resync("orders", "--wait")
        self.assertIn("orders: 1 sent again on 1C's next query", r.stdout)
        self.assertEqual(query(), {guid}, "the open order again, the cancelled one not")
        r = self.ctl("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        orders = json.loads(r.stdout)["sources"][SOURCE]["last_exchange"]["orders"]
        self.assertIsNotNone(orders)
        self.assertEqual(orders["acknowledged_orders"], 1, "the last sale/success acknowledged the order")
        self.assertEqual(query(), set())

    def test_status_shows_the_last_exchange(self):
        self.start()
        r = self.ctl("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)["sources"][SOURCE]
        self.assertIsNone(s["last_exchange"]["catalog"])
        self.exchange()
        self.h.psql("INSERT INTO obmen.queue (kind, target, state) VALUES ('export_order', 'onec', 'dead'), "
                    "('export_order', 'onec', 'pending')")
        self.resync("stock", "--wait")
        r = self.ctl("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)["sources"][SOURCE]
        last = s["last_exchange"]
        self.assertEqual(last["catalog"]["file"], "import0_1.xml")
        self.assertEqual(last["offers"]["file"], "offers0_1.xml")
        self.assertEqual(last["catalog"]["session"], last["offers"]["session"])
        self.assertGreaterEqual(last["catalog"]["age_seconds"], 0)
        self.assertLess(last["catalog"]["age_seconds"], 600)
        self.assertEqual(s["jobs"], {"running": [], "queued": 0})
        self.assertEqual(s["queue"], {"by_state": {"dead": 1, "pending": 1}, "dead": 1})
        self.assertEqual(s["errors"], {"files": [], "jobs": []})
        r = self.ctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"catalog\s+import0_1\.xml, session \d+, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+ s ago\)")
        self.assertRegex(r.stdout, r"queue\s+dead 1, pending 1")


class Control(JobsTestCase):

    def test_cancel_a_queued_job(self):
        # No obmend yet: the job stays queued.
        job_id, r = self.resync("orders")
        self.assertEqual(self.job(job_id)["state"], "queued")
        r = self.ctl("jobs", "cancel", str(job_id))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"job {job_id} cancelled", r.stdout)
        j = self.job(job_id)
        self.assertEqual(j["state"], "cancelled")
        self.assertRegex(j["error"], r"^cancelled by ")
        r = self.ctl("jobs", "cancel", str(job_id))
        self.assertEqual(r.returncode, 1)
        self.assertIn("has already ended (cancelled)", r.stderr)
        r = self.ctl("jobs", "cancel", "99999")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no job 99999", r.stderr)
        r = self.ctl("jobs", "show", str(job_id))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"job {job_id}: cancelled", r.stdout)
        # A daemon started now never runs it; the next job runs.
        self.start()
        later, r = self.resync("orders", "--wait")
        self.assertEqual(self.job(job_id)["state"], "cancelled")
        self.assertIsNone(self.h.scalar(f"SELECT started_at FROM obmen.jobs WHERE id = {job_id}"))

    def test_schedule_enqueues_its_job_once_per_slot(self):
        # The harness's YAML emitter writes no list of maps: the section is appended as text.
        path = self.h.write_config(self.config())
        path.write_text(path.read_text(encoding="utf-8") +
                        "schedules:\n  - { source: onec, entity: orders, every: 1h }\n", encoding="utf-8")
        self.d = self.h.start_daemon(path)
        # The schedule never ran: due at start. Jobs run oldest first, one at a time, so once a job
        # enqueued after the first poll is done, the scheduled one is done too.
        self.resync("orders", "--wait")
        self.resync("orders", "--wait")
        rows = self.h.query_json("SELECT state, requested_by, schedule FROM obmen.jobs WHERE schedule IS NOT NULL")
        self.assertEqual(rows, [{"state": "done", "requested_by": "schedule", "schedule": "onec/orders/full"}])
        # Another daemon on the same database finds the slot taken (the job below is claimed in
        # the same poll that looked at the schedule: the first daemon is gone).
        stopping, code = self.d.terminate()
        self.assertEqual(code, 0)
        self.d = self.h.start_daemon(path)
        self.resync("orders", "--wait")
        self.assertEqual(self.h.count("SELECT count(*) FROM obmen.jobs WHERE schedule IS NOT NULL"), 1)
        self.assertEqual(self.h.count("SELECT count(*) FROM obmen.bookmarks WHERE entity = 'schedule:orders:full'"), 1)


if __name__ == "__main__":
    unittest.main()
