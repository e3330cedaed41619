"""Operations, black-box: `obmenctl import` by hand, spool retention, the exchange history tables
and durability of acknowledged chunks across a crash of obmend.

Sample: dobromyslov/commerceml-parser data/import0_1.xml + data/offers0_1.xml (UT 11, CML 2.07):
1 group, 12 properties, 36 products; 1 price type, 3 warehouses, 44 offers (8 of them name
products import0_1.xml does not carry), 44 prices, 132 stock figures (SOURCES.md §3).
"""

from __future__ import annotations

import json
import re
import time
import unittest
import zipfile
from pathlib import Path

import cml
from harness import EVENT_TIMEOUT, Harness
from onec_client import OneCClient

IMPORT = cml.DOBROMYSLOV + "/data__import0_1.xml"
OFFERS = cml.DOBROMYSLOV + "/data__offers0_1.xml"
CATALOG_TABLES = ("categories", "attributes", "products", "images", "product_images", "offers",
                  "price_types", "prices", "warehouses", "stock")
CHANGE_WORDS = ("new", "updated", "deactivated")
FIRST_IMPORT = {"categories": 1, "attributes": 12, "products": 36}
FIRST_OFFERS = {"price_types": 1, "warehouses": 3, "offers": 44, "prices": 44, "stock": 132}


def table_counts(h: Harness) -> dict[str, int]:
    return {t: h.count(f"portal.{t}") for t in CATALOG_TABLES}


def all_rows(h: Harness) -> dict[str, list]:
    """Every row of every catalog table with its xmin: equal before and after means untouched."""
    return {t: h.query_json(f"SELECT xmin::text AS xmin, * FROM portal.{t} ORDER BY 2, 3") for t in CATALOG_TABLES}


def entity_numbers(summary: str, entity: str) -> dict[str, int]:
    """"products: 36 new, 0 updated, 0 unchanged" → {"new": 36, "updated": 0, "unchanged": 0}."""
    m = re.search(rf"\b{entity}: ([^;()]*)", summary)
    if not m:
        return {}
    return {w: int(n) for n, w in re.findall(r"(\d+) ([a-z]+)", m.group(1))}


def wait_for(predicate, what: str, timeout: float = EVENT_TIMEOUT):
    """Polls a database condition until it holds or the deadline passes (a poll, not a sleep used
    as synchronisation: it returns as soon as the condition is true)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


class CtlImport(unittest.TestCase):
    """`obmenctl import FILE…`: the same pipeline as the endpoint, from disk."""

    maxDiff = None

    def setUp(self):
        self.h = Harness.for_test(self)
        self.h.create_database()
        self.cfg = self.h.write_config(self.h.config(), name="ctl.yaml")
        self.files = self.h.dir / "files"
        self.files.mkdir()
        self.import_xml = self.files / "import0_1.xml"
        self.offers_xml = self.files / "offers0_1.xml"
        self.import_xml.write_bytes(cml.sample_bytes(IMPORT))
        self.offers_xml.write_bytes(cml.sample_bytes(OFFERS))

    def ctl_import(self, *args: str):
        return self.h.ctl("import", *args, config=self.cfg)

    def assert_ok(self, r):
        self.assertEqual(r.returncode, 0, f"obmenctl import failed:\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")

    def summary_lines(self, stdout: str) -> list[tuple[str, str]]:
        """(file, summary) per line "<file>: <summary> (<seconds> s)"; warning lines skipped."""
        out = []
        for line in stdout.splitlines():
            m = re.match(r"^(\S+\.xml): (.*) \(\d+\.\d+ s\)$", line)
            if m:
                out.append((m.group(1), m.group(2)))
        return out

    def assert_portal_is_the_sample(self):
        self.assertEqual(table_counts(self.h), {"categories": 1, "attributes": 12, "products": 36, "images": 0,
                                                "product_images": 0, "offers": 44, "price_types": 1, "prices": 44,
                                                "warehouses": 3, "stock": 132})
        # Imported in the right order: every offer whose product the catalog carries is linked.
        self.assertEqual(self.h.count("SELECT count(*) FROM portal.offers WHERE product_id IS NULL"), 8)

    def assert_first_summaries(self, lines, import_name: str, offers_name: str):
        self.assertEqual([Path(f).name for f, _ in lines], [import_name, offers_name], lines)
        imp, off = lines[0][1], lines[1][1]
        for entity, n in FIRST_IMPORT.items():
            self.assertEqual(entity_numbers(imp, entity).get("new"), n, f"{entity} in {imp!r}")
        for entity, n in FIRST_OFFERS.items():
            self.assertEqual(entity_numbers(off, entity).get("new"), n, f"{entity} in {off!r}")

    def assert_nothing_changed(self, lines):
        self.assertEqual(len(lines), 2, lines)
        for name, summary in lines:
            for entity in FIRST_IMPORT if "import" in Path(name).name else FIRST_OFFERS:
                numbers = entity_numbers(summary, entity)
                self.assertTrue(numbers.get("unchanged"), f"{entity} of {name}: {summary!r}")
                for w in CHANGE_WORDS:
                    self.assertEqual(numbers.get(w, 0), 0, f"{entity} of {name}: {summary!r}")

    def test_files_in_the_wrong_order_are_imported_in_the_right_one(self):
        r = self.ctl_import(str(self.offers_xml), str(self.import_xml))
        self.assert_ok(r)
        lines = self.summary_lines(r.stdout)
        self.assert_first_summaries(lines, "import0_1.xml", "offers0_1.xml")
        self.assertEqual(lines[0][0], str(self.import_xml))
        self.assert_portal_is_the_sample()

        before = all_rows(self.h)
        again = self.ctl_import(str(self.offers_xml), str(self.import_xml))
        self.assert_ok(again)
        self.assert_nothing_changed(self.summary_lines(again.stdout))
        self.assertEqual(all_rows(self.h), before, "a repeated import rewrote rows")

        js = self.ctl_import("--json", str(self.offers_xml), str(self.import_xml))
        self.assert_ok(js)
        doc = json.loads(js.stdout)
        self.assertEqual(list(doc), [str(self.import_xml), str(self.offers_xml)], "files in import order")
        imp, off = doc[str(self.import_xml)], doc[str(self.offers_xml)]
        for entity, n in FIRST_IMPORT.items():
            self.assertEqual(imp[entity], {"inserted": 0, "updated": 0, "unchanged": n, "deactivated": 0,
                                           "skipped": 0}, entity)
        for entity, n in FIRST_OFFERS.items():
            self.assertEqual(off[entity], {"inserted": 0, "updated": 0, "unchanged": n, "deactivated": 0,
                                           "skipped": 0}, entity)
        self.assertEqual(imp["warnings"], [])
        self.assertIsInstance(imp["seconds"], (int, float))
        self.assertEqual(all_rows(self.h), before)

    def test_zip_of_both_files_works_the_same(self):
        archive = self.files / "v8_1A2B_1.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("offers0_1.xml", cml.sample_bytes(OFFERS))   # the wrong order inside, too
            z.writestr("import0_1.xml", cml.sample_bytes(IMPORT))
        r = self.ctl_import(str(archive))
        self.assert_ok(r)
        lines = self.summary_lines(r.stdout)
        self.assert_first_summaries(lines, "import0_1.xml", "offers0_1.xml")
        self.assertTrue(all(f.startswith("v8_1A2B_1.zip/") for f, _ in lines), lines)
        self.assert_portal_is_the_sample()

        before = all_rows(self.h)
        again = self.ctl_import(str(archive))
        self.assert_ok(again)
        self.assert_nothing_changed(self.summary_lines(again.stdout))
        self.assertEqual(all_rows(self.h), before)

    def test_truncated_file_fails_with_position_and_changes_nothing(self):
        self.assert_ok(self.ctl_import(str(self.import_xml), str(self.offers_xml)))
        before = all_rows(self.h)
        data = cml.sample_bytes(IMPORT)
        broken = self.files / "broken" / "import0_1.xml"
        broken.parent.mkdir()
        broken.write_bytes(data[:len(data) // 2])
        r = self.ctl_import(str(broken))
        self.assertEqual(r.returncode, 1, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        self.assertRegex(r.stderr, re.escape(str(broken)) + r":\d+:\d+: ")
        self.assertEqual(all_rows(self.h), before, "a failed import changed the portal")

        # The first file fails: the ones after it are not imported either.
        r = self.ctl_import(str(self.offers_xml), str(broken))
        self.assertEqual(r.returncode, 1)
        self.assertNotIn("offers0_1.xml:", r.stdout)
        self.assertEqual(all_rows(self.h), before)

    def test_nonexistent_file(self):
        missing = self.files / "no-such-import.xml"
        r = self.ctl_import(str(self.import_xml), str(missing))
        self.assertEqual(r.returncode, 1, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        self.assertIn(str(missing), r.stderr)
        self.assertEqual(table_counts(self.h)["products"], 0, "nothing is imported when a named file is missing")


class ExchangeOperations(unittest.TestCase):
    """What obmend leaves behind an exchange: spool folders, history rows; and what survives a crash."""

    maxDiff = None

    def setUp(self):
        self.h = Harness.for_test(self)
        self.h.create_database()
        self.import_data = cml.sample_bytes(IMPORT)
        self.offers_data = cml.sample_bytes(OFFERS)

    def client(self, d) -> OneCClient:
        c = OneCClient(d.url(), Harness.USER, Harness.PASSWORD)
        self.addCleanup(c.close)
        return c

    def spool(self, session_id: int | str) -> Path:
        return self.h.dir / "spool" / "onec" / str(session_id)

    def session_ids(self) -> list[int]:
        return [int(r[0]) for r in self.h.psql("SELECT id FROM obmen.exchange_sessions ORDER BY id")]

    def full_exchange(self, d, **kw):
        c = self.client(d)
        r = c.exchange([("import0_1.xml", self.import_data), ("offers0_1.xml", self.offers_data)], **kw)
        self.assertTrue(r.ok, f"exchange failed:\n{r.transcript()}\n{d.log_excerpt()}")
        return r

    # --------------------------------------------------------------------------- spool retention

    def test_spool_of_finished_sessions_is_removed_after_keep_days(self):
        d = self.h.start_daemon(self.h.config({"spool": {"keep_days": 7}}))
        self.full_exchange(d, use_zip=False)
        [done] = self.session_ids()
        folder = self.spool(done)
        self.assertEqual(self.h.scalar(f"SELECT spool_dir FROM obmen.exchange_sessions WHERE id = {done}"),
                         str(folder))
        self.assertEqual((folder / "import0_1.xml").read_bytes(), self.import_data)
        self.assertEqual((folder / "offers0_1.xml").read_bytes(), self.offers_data)

        # A second session left open: checkauth, init, one file, no import or complete.
        c = self.client(d)
        self.assertTrue(c.checkauth().ok)
        self.assertEqual(c.init().http_status, 200)
        self.assertTrue(all(a.ok for a in c.upload("import0_1.xml", self.import_data)))
        open_id = max(self.session_ids())
        self.assertNotEqual(open_id, done)
        self.assertTrue((self.spool(open_id) / "import0_1.xml").is_file())

        stopping, code = d.terminate()
        self.assertEqual(code, 0, d.log_excerpt())
        self.assertTrue(folder.is_dir(), "keep_days 7: a session finished just now keeps its folder")

        d3 = self.h.start_daemon(self.h.config({"spool": {"keep_days": 0}}))
        removed_at = wait_for(
            lambda: self.h.scalar(f"SELECT spool_removed_at FROM obmen.exchange_sessions WHERE id = {done}"),
            f"spool_removed_at of session {done}")
        self.assertTrue(removed_at)
        self.assertFalse(folder.exists(), f"{folder} still exists\n{d3.log_excerpt()}")
        self.assertEqual(self.h.scalar(f"SELECT status FROM obmen.exchange_sessions WHERE id = {done}"), "complete")
        # The open session keeps its folder and may go on.
        self.assertIsNone(self.h.scalar(f"SELECT spool_removed_at FROM obmen.exchange_sessions WHERE id = {open_id}"))
        self.assertEqual((self.spool(open_id) / "import0_1.xml").read_bytes(), self.import_data)
        self.assertEqual(self.h.scalar(f"SELECT status FROM obmen.exchange_sessions WHERE id = {open_id}"), "open")

    # --------------------------------------------------------------------------- history

    def test_exchange_history_records_session_files_and_requests(self):
        limit = 16 * 1024
        d = self.h.start_daemon(self.h.config(zip=False, file_limit="16KiB"))
        r = self.full_exchange(d, use_zip=False)
        [sid] = self.session_ids()

        [(status, finished, bytes_received, counts_text, error)] = self.h.psql(
            "SELECT status, finished_at IS NOT NULL, bytes_received, counts::text, error "
            f"FROM obmen.exchange_sessions WHERE id = {sid}")
        self.assertEqual((status, finished, error), ("complete", "t", None))
        self.assertEqual(int(bytes_received), len(self.import_data) + len(self.offers_data))
        counts = json.loads(counts_text)
        self.assertEqual(counts["import0_1.xml"]["products"]["inserted"], 36, counts)
        self.assertEqual(counts["import0_1.xml"]["categories"]["inserted"], 1, counts)
        self.assertEqual(counts["offers0_1.xml"]["offers"]["inserted"], 44, counts)
        self.assertEqual(counts["offers0_1.xml"]["prices"]["inserted"], 44, counts)
        self.assertEqual(counts["offers0_1.xml"]["stock"]["inserted"], 132, counts)

        files = {row["filename"]: row for row in self.h.query_json(
            "SELECT filename, bytes, chunks, status, counts, error, import_started_at IS NOT NULL AS started, "
            f"import_finished_at IS NOT NULL AS finished FROM obmen.exchange_files WHERE session_id = {sid}")}
        self.assertEqual(set(files), {"import0_1.xml", "offers0_1.xml"})
        for name, data in (("import0_1.xml", self.import_data), ("offers0_1.xml", self.offers_data)):
            f = files[name]
            chunks = -(-len(data) // limit)
            self.assertGreater(chunks, 1)
            self.assertEqual((f["bytes"], f["chunks"], f["status"], f["error"], f["started"], f["finished"]),
                             (len(data), chunks, "imported", None, True, True), name)
            self.assertEqual(f["counts"], counts[name], name)

        requests = self.h.psql("SELECT mode, filename, method, answer FROM obmen.exchange_requests "
                               f"WHERE session_id = {sid} ORDER BY id")
        self.assertEqual(len(requests), len(r.answers),
                         "one row per request:\n" + "\n".join(map(str, requests)) + "\n" + r.transcript())
        self.assertEqual([q[0] for q in requests], [a.step for a in r.answers])
        self.assertEqual([q[3].split("\n")[0] for q in requests], [a.status for a in r.answers])
        uploads = [q for q in requests if q[0] == "file"]
        self.assertEqual([q[1] for q in uploads],
                         ["import0_1.xml"] * -(-len(self.import_data) // limit) +
                         ["offers0_1.xml"] * -(-len(self.offers_data) // limit))
        self.assertTrue(all(q[2] == "POST" for q in uploads), uploads)
        # No request is logged without its session.
        self.assertEqual(self.h.count("SELECT count(*) FROM obmen.exchange_requests WHERE session_id IS NULL"), 0)

    def test_upload_requests_record_their_body_size(self):
        d = self.h.start_daemon(self.h.config(zip=False, file_limit="16KiB"))
        c = self.client(d)
        self.assertTrue(c.checkauth().ok)
        self.assertEqual(c.init().http_status, 200)
        answers = c.upload("offers0_1.xml", self.offers_data)
        self.assertTrue(all(a.ok for a in answers))
        sizes = [int(r[0]) for r in self.h.psql(
            "SELECT bytes FROM obmen.exchange_requests WHERE mode = 'file' ORDER BY id")]
        self.assertEqual(sizes, [a.sent for a in answers])

    # --------------------------------------------------------------------------- durability

    def test_acknowledged_chunk_survives_sigkill(self):
        limit = 64 * 1024
        cfg = self.h.write_config(self.h.config(zip=False, file_limit="64KiB"))
        d1 = self.h.start_daemon(cfg)
        c1 = self.client(d1)
        self.assertTrue(c1.checkauth().ok)
        self.assertEqual(c1.init().http_status, 200)
        self.assertEqual(c1.session.file_limit, limit)
        first = c1.upload("import0_1.xml", self.import_data[:limit])
        self.assertEqual([a.status for a in first], ["success"], c1.answers[-1].describe())
        d1.kill()   # SIGKILL right after the acknowledgement: nothing more is flushed
        self.assertEqual(d1.proc.returncode, -9)

        d2 = self.h.start_daemon(cfg)
        c2 = self.client(d2)
        c2.session = c1.session          # the same cookie and sessid, as 1C would keep them
        rest = c2.upload("import0_1.xml", self.import_data[limit:])
        self.assertTrue(all(a.ok for a in rest), "\n".join(a.describe() for a in rest) + d2.log_excerpt())
        for a in c2.upload("offers0_1.xml", self.offers_data):
            self.assertTrue(a.ok, a.describe())
        [sid] = self.session_ids()
        self.assertEqual((self.spool(sid) / "import0_1.xml").read_bytes(), self.import_data,
                         "the spooled file is not exactly the uploaded one")

        for name, entity, n in (("import0_1.xml", "products", 36), ("offers0_1.xml", "offers", 44)):
            answers = c2.import_file(name)
            self.assertEqual(answers[-1].status, "success", answers[-1].describe() + "\n" + d2.log_excerpt())
            self.assertEqual(entity_numbers(answers[-1].message, entity).get("new"), n, answers[-1].message)
        self.assertTrue(c2.complete().ok)

        self.assertEqual(table_counts(self.h), {"categories": 1, "attributes": 12, "products": 36, "images": 0,
                                                "product_images": 0, "offers": 44, "price_types": 1, "prices": 44,
                                                "warehouses": 3, "stock": 132})
        [(size, chunks, status)] = self.h.psql(
            f"SELECT bytes, chunks, status FROM obmen.exchange_files WHERE session_id = {sid} "
            "AND filename = 'import0_1.xml'")
        self.assertEqual((int(size), int(chunks), status),
                         (len(self.import_data), -(-len(self.import_data) // limit), "imported"))
        self.assertEqual(int(self.h.scalar(f"SELECT bytes_received FROM obmen.exchange_sessions WHERE id = {sid}")),
                         len(self.import_data) + len(self.offers_data))


if __name__ == "__main__":
    unittest.main()
