"""Hostile and malformed input against the real obmend (issue 9's catalogue; the unit tiers cover
the same ground piece by piece — docs/security.md "Hostile input" lists where). Each case checks:
a clear answer naming what and where, the portal unchanged (or, for values, stored verbatim), and
the daemon still serving. The suite prints a count of the hostile inputs tried.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
import unittest
from pathlib import Path

import cml
from harness import EVENT_TIMEOUT, Harness
from onec_client import OneCClient
from test_catalog_exchange import CATALOG_TABLES, IMPORT, OFFERS, dump_catalog, sample_files

TRIED: list[str] = []


class Hostile(unittest.TestCase):
    maxDiff = None

    @classmethod
    def tearDownClass(cls):
        print(f"\nhostile inputs tried: {len(TRIED)} ({', '.join(TRIED)}); daemon kept serving after each",
              file=sys.stderr)
        if os.environ.get("OBMEN_REPORT_DIR"):  # for scripts/prove's combined report
            Path(os.environ["OBMEN_REPORT_DIR"]).mkdir(parents=True, exist_ok=True)
            Path(os.environ["OBMEN_REPORT_DIR"], "hostile.json").write_text(
                json.dumps({"tried": TRIED, "count": len(TRIED)}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    def setUp(self):
        self.h = Harness.for_test(self)
        self.h.create_database()
        self.d = self.h.start_daemon(self.h.config({"http": {"read_timeout": 2, "idle_timeout": 3, "max_connections": 20}}))
        # A known portal to compare against: the sample pair imported once.
        self.assertTrue(self.exchange(sample_files()).ok)
        self.before = dump_catalog(self.h)

    def exchange(self, files):
        with OneCClient(self.d.url(), Harness.USER, Harness.PASSWORD) as c:
            return c.exchange(files)

    def assert_serving(self):
        status, _, body = self.d.http("GET", "/healthz")
        self.assertEqual(status, 200, body)

    def assert_refused(self, name: str, files, *needles: str):
        TRIED.append(name)
        r = self.exchange(files)
        self.assertFalse(r.ok, f"{name}: accepted")
        self.assertEqual(r.failed.status, "failure", r.failed.describe())
        for n in needles:
            self.assertIn(n, r.failed.text, f"{name}: {r.failed.describe()}")
        self.assertEqual(dump_catalog(self.h), self.before, f"{name}: the portal changed")
        self.assert_serving()

    def import_text(self) -> str:
        return cml.sample_bytes(IMPORT).decode("utf-8")

    def test_xml_bombs_and_broken_files(self):
        text = self.import_text()
        head, body = text.split("<КоммерческаяИнформация", 1)
        bomb = ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
                '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>\n'
                "<КоммерческаяИнформация" + body.replace("<Наименование>", "<Наименование>&c;", 1))
        TRIED.append("entity expansion")
        r = self.exchange([("import0_1.xml", bomb.encode())])
        # Entities are never expanded: the text stays "&c;" as written (or the file is refused).
        self.assertEqual(self.h.count("SELECT count(*) FROM portal.products WHERE name LIKE '%aaaaaaaaaa%'"), 0, r.transcript())
        self.assert_serving()
        self.assertTrue(self.exchange(sample_files()).ok)  # back to the known portal
        self.before = dump_catalog(self.h)
        at = text.index("</Наименование>", text.index("<Товар>")) + len("</Наименование>")
        deep = text[:at] + "<Описание>" + "<x>" * 5000 + "</x>" * 5000 + "</Описание>" + text[at:]
        self.assert_refused("deep nesting", [("import0_1.xml", deep.encode())], "elements nested deeper than 256 levels")
        self.assert_refused("truncated file", [("import0_1.xml", text.encode()[: len(text) // 2])], "import0_1.xml:")
        cp = text.encode("utf-8")
        bad = cp.replace("Наименование>".encode(), b"\xc3\x28", 1)  # invalid UTF-8 in a UTF-8 file
        self.assert_refused("invalid UTF-8", [("import0_1.xml", bad)], "import0_1.xml")
        mixed = text.lstrip("\ufeff").replace('encoding="UTF-8"', 'encoding="windows-1251"', 1).encode("utf-8")
        self.assert_refused("mixed encodings (UTF-8 bytes declared windows-1251)", [("import0_1.xml", mixed)],
                            "import0_1.xml:2:1: not a CommerceML document: root element is")
        # A foreign namespace: elements are read by their local names (1C writes none,
        # urn:1C.ru:commerceml_2, or others by release), so the content decides — the same portal.
        TRIED.append("a foreign namespace")
        foreign = text.replace('xmlns="urn:1C.ru:commerceml_2"', 'xmlns="urn:example:not-1c"', 1)
        self.assertTrue(self.exchange([("import0_1.xml", foreign.encode())]).ok)
        self.assertEqual(dump_catalog(self.h)["products"], self.before["products"])
        self.assert_serving()

    def test_huge_values_and_sql_looking_values(self):
        head, blocks, tail = cml.split_products(self.import_text())
        first = cml.product_id(blocks[0])
        sql = "Robert'); DROP TABLE portal.products; --"
        huge = "Я" * 300_000
        block = re.sub(r"<Наименование>.*?</Наименование>", lambda _: f"<Наименование>{sql}</Наименование>", blocks[0],
                       count=1, flags=re.S)
        block = block.replace("</Товар>", f"<Описание>{huge}</Описание></Товар>") if "<Описание" not in block else \
            re.sub(r"<Описание\s*/>|<Описание>.*?</Описание>", lambda _: f"<Описание>{huge}</Описание>", block,
                   count=1, flags=re.S)
        TRIED.append("SQL-looking value")
        TRIED.append("a 300 000-character value")
        r = self.exchange([("import0_1.xml", (head + block + "".join(blocks[1:]) + tail).encode())])
        self.assertTrue(r.ok, r.transcript())
        row = self.h.query_json(f"SELECT name, length(description) AS n FROM portal.products WHERE external_id = '{first}'")[0]
        self.assertEqual(row["name"], sql, "stored verbatim")
        self.assertEqual(row["n"], 300_000)
        self.assertEqual(self.h.count("SELECT count(*) FROM portal.products WHERE source = 'onec'"),
                         len(self.before["products"]), "the table is still there, with every product")
        self.assert_serving()

    def test_wrong_or_missing_credentials(self):
        TRIED.append("wrong password")
        with OneCClient(self.d.url(), Harness.USER, "wrong") as c:
            a = c.checkauth()
        self.assertEqual(a.status, "failure")
        self.assertIn("wrong user name or password", a.text)
        TRIED.append("no credentials")
        with OneCClient(self.d.url(), None, None) as c:
            a = c.command("init")
        self.assertEqual(a.status, "failure")
        self.assertEqual(dump_catalog(self.h), self.before)
        self.assert_serving()

    def test_slow_clients_and_many_connections(self):
        # A client that sends half a request line and stalls is cut after http.read/idle timeouts;
        # connections past http.max_connections are refused; meanwhile /healthz answers.
        TRIED.append("slow client (half a request, then silence)")
        slow = socket.create_connection(("127.0.0.1", self.d.port), timeout=EVENT_TIMEOUT)
        slow.sendall(b"GET /1c_exchange?type=catalog&mode=checkauth HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        self.assert_serving()
        self.assertEqual(slow.recv(1024), b"", "the stalled connection is closed by obmend")
        self.assertLess(time.monotonic() - started, 10, "within the configured timeouts")
        slow.close()
        TRIED.append("more connections than http.max_connections")
        held = [socket.create_connection(("127.0.0.1", self.d.port), timeout=EVENT_TIMEOUT) for _ in range(30)]
        try:
            closed = 0
            for s in held[20:]:
                s.settimeout(EVENT_TIMEOUT)
                try:
                    if s.recv(1) == b"":
                        closed += 1
                except ConnectionResetError:
                    closed += 1
            self.assertGreaterEqual(closed, 1, "connections past the cap are refused")
        finally:
            for s in held:
                s.close()
        self.wait_serving()

    def wait_serving(self):
        deadline = time.monotonic() + EVENT_TIMEOUT
        while True:
            try:
                self.assert_serving()
                return
            except (AssertionError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # the held connections are being closed by the idle timeout


if __name__ == "__main__":
    unittest.main()
