"""/metrics, black-box: the real obmend runs a 1C catalog exchange of the dobromyslov sample pair
(as test_catalog_exchange.py does), then its Prometheus exposition is scraped, parsed by a small
parser of the text format 0.0.4 and checked value by value. Also: what obmend's log says about
the exchange (session ids on every line, no secret anywhere).

Metric names and meanings: docs/metrics.md.
"""

from __future__ import annotations

import re
import time
import unittest
import urllib.parse

import cml
from harness import Harness
from onec_client import OneCClient

IMPORT = cml.DOBROMYSLOV + "/data__import0_1.xml"
OFFERS = cml.DOBROMYSLOV + "/data__offers0_1.xml"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DB_PASSWORD = "db-Pa55:w@rd/секрет"     # trust auth ignores it; obmend must still never log it

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def sample_files() -> list[tuple[str, bytes]]:
    return [("import0_1.xml", cml.sample_bytes(IMPORT)), ("offers0_1.xml", cml.sample_bytes(OFFERS))]


def unescape(value: str) -> str:
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


class Exposition:
    """Parsed text format: samples[(name, frozenset(labels))] = value; types[family] = type."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple[str, frozenset], float] = {}
        self.types: dict[str, str] = {}
        self.helps: dict[str, str] = {}
        self.comments: list[str] = []
        for n, line in enumerate(text.split("\n"), 1):
            if line == "":
                continue
            if line.startswith("# HELP "):
                name, _, help_text = line[7:].partition(" ")
                assert name not in self.helps, f"line {n}: second HELP for {name}"
                self.helps[name] = help_text
                continue
            if line.startswith("# TYPE "):
                name, _, type_ = line[7:].partition(" ")
                assert type_ in ("counter", "gauge", "histogram", "summary", "untyped"), f"line {n}: {line!r}"
                assert name not in self.types, f"line {n}: second TYPE for {name}"
                self.types[name] = type_
                continue
            if line.startswith("#"):
                self.comments.append(line)
                continue
            m = SAMPLE_RE.match(line)
            assert m, f"line {n} is not `name{{labels}} value`: {line!r}"
            name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
            labels = {}
            rest = labels_text
            while rest:
                lm = LABEL_RE.match(rest)
                assert lm, f"line {n}: bad labels {labels_text!r}"
                labels[lm.group(1)] = unescape(lm.group(2))
                rest = rest[lm.end():]
            key = (name, frozenset(labels.items()))
            assert key not in self.samples, f"line {n}: duplicate series {line!r}"
            self.samples[key] = float(value)
            family = self.family_of(name)
            assert family in self.types and family in self.helps, f"line {n}: {name} without HELP/TYPE before it"

    def family_of(self, name: str) -> str:
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and self.types.get(name[: -len(suffix)]) == "histogram":
                return name[: -len(suffix)]
        return name

    def get(self, name: str, **labels) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name: str) -> list[tuple[dict, float]]:
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]


class Metrics(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.h = Harness.for_test(self)
        self.h.create_database()
        cfg = self.h.config({"database": {"password": {"env": "OBMEN_TEST_DB_PASSWORD"}}}, zip=False)
        env = self.h.env()
        env["OBMEN_TEST_DB_PASSWORD"] = DB_PASSWORD
        self.d = self.h.start_daemon(cfg, env=env)

    def scrape(self) -> Exposition:
        status, headers, body = self.d.http("GET", "/metrics")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("content-type"), CONTENT_TYPE)
        return Exposition(body.decode("utf-8"))

    def exchange(self, files):
        with OneCClient(self.d.url(), Harness.USER, Harness.PASSWORD) as c:
            return c.exchange(files, use_zip=False)

    def assert_histograms_consistent(self, m: Exposition):
        for family in [f for f, t in m.types.items() if t == "histogram"]:
            groups: dict[frozenset, list[tuple[float, float]]] = {}
            for labels, value in m.series(family + "_bucket"):
                le = labels.pop("le")
                groups.setdefault(frozenset(labels.items()), []).append((float(le), value))
            for labels, buckets in groups.items():
                buckets.sort()
                counts = [v for _, v in buckets]
                self.assertEqual(counts, sorted(counts), f"{family}{dict(labels)}: buckets not cumulative")
                self.assertEqual(buckets[-1][0], float("inf"), f"{family}{dict(labels)}: no +Inf bucket")
                self.assertEqual(buckets[-2][0], 3600.0, f"{family}: buckets should reach one hour")
                count = m.samples.get((family + "_count", labels))
                total = m.samples.get((family + "_sum", labels))
                self.assertEqual(count, buckets[-1][1], f"{family}{dict(labels)}: _count != +Inf bucket")
                self.assertIsNotNone(total, f"{family}{dict(labels)}: no _sum")
                self.assertGreaterEqual(total, 0)

    def test_exchange_and_failed_import_are_counted(self):
        before = self.scrape()
        for family in ("obmen_onec_requests_total", "obmen_imports_total", "obmen_import_failures_total",
                       "obmen_import_rows_total", "obmen_import_duration_seconds",
                       "obmen_last_successful_import_timestamp_seconds", "obmen_queue_items",
                       "obmen_queue_dead_items", "obmen_process_resident_memory_bytes", "obmen_process_open_fds",
                       "obmen_uptime_seconds", "obmen_build_info"):
            self.assertIn(family, before.types, f"{family} is not exposed before any exchange:\n{before.text}")
        self.assertEqual(before.series("obmen_imports_total"), [])

        started = int(time.time())
        r = self.exchange(sample_files())
        self.assertTrue(r.ok, r.transcript())
        finished = int(time.time()) + 1
        m = self.scrape()
        self.assert_histograms_consistent(m)

        # Every request the client made is counted once, by mode and outcome (first answer line).
        expected: dict[tuple[str, str], int] = {}
        for a in r.client.answers:
            key = (a.step, "success" if a.step == "init" else a.status)   # init answers "zip=…"
            expected[key] = expected.get(key, 0) + 1
        got = {(l["mode"], l["outcome"]): int(v) for l, v in m.series("obmen_onec_requests_total")
               if l["source"] == "onec" and l["type"] == "catalog"}
        self.assertEqual(got, expected, r.transcript())
        self.assertEqual(m.get("obmen_onec_sessions_total", source="onec", type="catalog"), 1)

        self.assertEqual(m.get("obmen_imports_total", source="onec", kind="import"), 1)
        self.assertEqual(m.get("obmen_imports_total", source="onec", kind="offers"), 1)
        self.assertEqual(m.series("obmen_import_failures_total"), [])
        self.assertEqual(m.get("obmen_import_rows_total", source="onec", entity="products", change="inserted"), 36)
        self.assertEqual(m.get("obmen_import_rows_total", source="onec", entity="offers", change="inserted"), 44)
        self.assertEqual(m.get("obmen_import_rows_total", source="onec", entity="prices", change="inserted"), 44)
        self.assertEqual(m.get("obmen_import_rows_total", source="onec", entity="stock", change="inserted"), 132)
        self.assertIsNone(m.get("obmen_import_rows_total", source="onec", entity="products", change="updated"))
        for kind in ("import", "offers"):
            self.assertEqual(m.get("obmen_import_duration_seconds_count", source="onec", kind=kind), 1)
            ts = m.get("obmen_last_successful_import_timestamp_seconds", source="onec", kind=kind)
            self.assertTrue(started <= ts <= finished, f"{kind}: last success {ts} not in [{started}, {finished}]")

        # The queue: every state reported, dead items too.
        self.assertEqual({l["state"]: v for l, v in m.series("obmen_queue_items")},
                         {"pending": 0, "in_flight": 0, "done": 0, "dead": 0})
        self.assertEqual(m.get("obmen_queue_dead_items"), 0)
        self.h.psql("INSERT INTO obmen.queue(kind, target, state) VALUES ('order', 'moysklad', 'dead'), "
                    "('order', 'moysklad', 'pending')")
        q = self.scrape()
        self.assertEqual(q.get("obmen_queue_dead_items"), 1)
        self.assertEqual(q.get("obmen_queue_items", state="dead"), 1)
        self.assertEqual(q.get("obmen_queue_items", state="pending"), 1)

        # The process.
        self.assertGreater(m.get("obmen_process_resident_memory_bytes"), 1 << 20)
        self.assertGreaterEqual(m.get("obmen_process_open_fds"), 3)
        self.assertGreaterEqual(m.get("obmen_uptime_seconds"), 0)
        [(build, one)] = m.series("obmen_build_info")
        self.assertEqual(one, 1)
        self.assertRegex(build["version"], r"^\d+\.\d+")

        # A malformed file: the import fails, counted as failed; the last success stays.
        data = cml.sample_bytes(IMPORT)
        bad = self.exchange([("import0_1.xml", data[: len(data) // 2])])
        self.assertFalse(bad.ok, bad.transcript())
        self.assertEqual(bad.failed.step, "import", bad.transcript())
        f = self.scrape()
        self.assert_histograms_consistent(f)
        self.assertEqual(f.get("obmen_imports_total", source="onec", kind="import"), 2)
        self.assertEqual(f.get("obmen_import_failures_total", source="onec", kind="import"), 1)
        self.assertIsNone(f.get("obmen_import_failures_total", source="onec", kind="offers"))
        self.assertEqual(f.get("obmen_import_duration_seconds_count", source="onec", kind="import"), 2)
        self.assertEqual(f.get("obmen_import_rows_total", source="onec", entity="products", change="inserted"), 36)
        self.assertEqual(f.get("obmen_last_successful_import_timestamp_seconds", source="onec", kind="import"),
                         m.get("obmen_last_successful_import_timestamp_seconds", source="onec", kind="import"))
        self.assertEqual(f.get("obmen_onec_requests_total", source="onec", type="catalog", mode="import",
                               outcome="failure"), 1)
        self.assertEqual(f.get("obmen_onec_sessions_total", source="onec", type="catalog"), 2)

    def test_unknown_type_and_mode_do_not_grow_labels(self):
        with OneCClient(self.d.url(), Harness.USER, Harness.PASSWORD) as c:
            c.send("x", "GET", c.target("checkauth", exchange_type="no-such-type-1", with_sessid=False))
            c.send("x", "GET", c.target("no-such-mode-2"))
        m = self.scrape()
        text = m.text
        self.assertNotIn("no-such-type-1", text)
        self.assertNotIn("no-such-mode-2", text)
        self.assertEqual(m.get("obmen_onec_requests_total", source="onec", type="other", mode="checkauth",
                               outcome="failure"), 1)
        self.assertEqual(m.get("obmen_onec_requests_total", source="onec", type="catalog", mode="other",
                               outcome="failure"), 1)

    def test_database_down_still_answers_without_queue_metrics(self):
        self.assertIsNotNone(self.scrape().get("obmen_queue_dead_items"))
        self.h.drop_database()
        m = self.scrape()
        self.assertNotIn("obmen_queue_items", m.types)
        self.assertNotIn("obmen_queue_dead_items", m.types)
        self.assertTrue(any("obmen_queue_items" in c and "database unavailable" in c for c in m.comments), m.text)
        self.assertIn("obmen_uptime_seconds", m.types)

    def test_log_names_the_session_and_never_a_secret(self):
        r = self.exchange(sample_files())
        self.assertTrue(r.ok, r.transcript())
        session_id = self.h.scalar("SELECT max(id) FROM obmen.exchange_sessions")
        log = self.d.log()
        secrets = [Harness.PASSWORD, DB_PASSWORD, urllib.parse.quote(DB_PASSWORD, safe=""),
                   urllib.parse.quote(Harness.PASSWORD, safe="")]
        for secret in secrets:
            self.assertNotIn(secret, log, f"a secret ({secret[:3]}…) is in obmend's log")
        # Lines that speak of a session (the word: the test database's name has "_session_" in it).
        lines = [line for line in log.splitlines() if re.search(r"\bsession\b", line)]
        self.assertGreaterEqual(len(lines), 6, log)   # checkauth, uploads, 2 imports, deactivate, complete
        for line in lines:
            self.assertIn(f"1c[onec] session {session_id}:", line, f"log line about the exchange without its session:\n{line}")
        for what in ("checkauth", "imported 'import0_1.xml'", "imported 'offers0_1.xml'", "deactivate", "complete"):
            self.assertTrue(any(what in line for line in lines), f"no log line with {what!r}:\n{log}")


if __name__ == "__main__":
    unittest.main()
