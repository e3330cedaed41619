"""Crash safety, black-box: obmend killed with SIGKILL at random points of 1C exchanges.

Catalog imports (CatalogUnderSigkill). Each round, a 1C client uploads a package — the
dobromyslov import0_1.xml + offers0_1.xml sample, changed per round (product and offer names,
prices, stock; every third round one product left out, which the full catalog marks inactive),
zipped or plain, in chunks of 16 KiB — and obmend is killed at a random point: after a random
delay, right after a random acknowledged chunk, while a file is being imported (unzip included),
between files, after deactivate. The same package goes first, cleanly, through a twin obmend on a
second database; the twin's states before the package and after each step are the only states the
killed one may show. After each kill:

* every chunk the client saw acknowledged is in the spool (the database's byte count of the file
  is at least what was acknowledged, the file on disk holds exactly the bytes sent up to that
  count) — otherwise *lost*;
* the portal (catalog_state of the source) equals one of the twin's states — otherwise
  *half_applied*;
* obmend is started again and 1C retries the exchange from checkauth; the portal must then equal
  the twin's final state — otherwise *lost*.

Order exchanges (OrdersUnderSigkill). Each round the portal inserts orders (one transaction
each, as docs/orders.md says) and edits some (a new version: Комментарий names it), 1C runs
checkauth → init → query → success → file (documents with the next status of some acknowledged
orders) → import, and obmend is killed at a random point (query in flight, after the query
answer, success in flight, after success, after a documents chunk, import in flight, after the
import, a random delay); a portal order may also be inserted between query and success. 1C then
retries the whole session. Checked: every order's latest version reaches 1C in an answered query
and is acknowledged (*lost* otherwise); no version appears in a query answer after a session
acknowledged it (*doubled*); each status 1C sent is in order_status_history exactly once
(*doubled* / *lost*).

Rounds: OBMEN_CRASH_ROUNDS (default 100; CTest runs 20), seed: OBMEN_CRASH_SEED. The report is
printed at the end and written to $OBMEN_REPORT_DIR/reliability_crash.json when set.
"""

from __future__ import annotations

import decimal
import shutil
import time
import unittest
from collections import defaultdict

from faults import (IMPORT, OFFERS, SOURCE, FaultHarness, Killed, Killer, RecordingClient, Report, catalog_state,
                    digest, filename_of, make_rng, package, rounds, run_exchange, run_package, state_diff, tail)

import cml  # noqa: E402  (tests/e2e, put on sys.path by faults)
from harness import Harness  # noqa: E402
from onec_client import OneCClient  # noqa: E402
from sale_client import SaleClient  # noqa: E402
from test_sale_exchange import documents_file, order_document, parse_orders, q  # noqa: E402

REPORT = Report("crash")


def tearDownModule():
    REPORT.emit()


class CatalogUnderSigkill(unittest.TestCase):
    maxDiff = None
    CONFIG = {"file_limit": "16KiB", "zip": True}

    def start(self, h: FaultHarness):
        h.create_database()
        return h.start_daemon(h.config(**self.CONFIG))

    def test_catalog_imports_survive_sigkill(self):
        n = rounds()
        rng, seed = make_rng("catalog")
        REPORT.set("seed", seed)
        REPORT.set("catalog_rounds", n)
        h = FaultHarness.for_test(self)
        twin = FaultHarness.for_test(self)
        d = self.start(h)
        self.twin_d = self.start(twin)
        kills = 0
        for rnd in range(1, n + 1):
            files = package(rnd)
            use_zip = rng.random() < 0.5
            states, timing = run_package(self.twin_d, twin, files, None if use_zip else False)
            self.assertTrue(states, f"twin exchange failed: {timing}")
            before = catalog_state(h)
            self.assertEqual(digest(before), digest(states[0][1]),
                             f"round {rnd}: the portal before the package differs from the twin's:\n"
                             f"{state_diff(before, states[0][1])}")

            # -- the exchange that gets killed
            kind = rng.choice(["delay", "after_chunk", "during_import", "after_file", "after_deactivate"])
            killer = Killer(d)
            acked: dict[str, bytearray] = defaultdict(bytearray)
            chunk_target = None
            import_file = rng.choice([name for name, _ in files])
            if kind == "delay":
                killer.arm(rng.uniform(0, timing["total"]), "random delay")

            def hook(a):
                killer.note(f"{a.step} {filename_of(a.target)} → {a.status}")
                c = client  # assigned below, before the first request
                if a.step == "file" and a.ok:
                    acked[filename_of(a.target)] += c.pending_body or b""
                    if kind == "after_chunk" and sum(len(v) for v in acked.values()) >= chunk_target:
                        killer.kill_now(f"after chunk {len(c.answers)}")
                        raise Killed()
                if a.step == "import" and filename_of(a.target) == import_file:
                    if kind == "during_import" and a.status == "progress":
                        killer.arm(rng.uniform(0, timing["import"].get(import_file, 0.2)), f"during import of {import_file}")
                    if kind == "after_file" and a.ok:
                        killer.kill_now(f"after import of {import_file}")
                        raise Killed()
                if a.step == "deactivate" and a.ok and kind == "after_deactivate":
                    killer.kill_now("after deactivate")
                    raise Killed()

            client = RecordingClient(d.url(), Harness.USER, Harness.PASSWORD, on_answer=hook)
            total = len(cml_pack(files, use_zip))
            chunk_target = rng.randint(1, max(1, total))
            outcome = run_exchange(client, lambda c: c.exchange(files, use_zip=None if use_zip else False))
            killer.finish()
            REPORT.tally("catalog_kill_points", kind)
            where = f"round {rnd} (seed {seed}, {'zip' if use_zip else 'plain'}, kill {kind}: {killer.fired_at}; " \
                    f"client: {outcome})"
            killed_log, cfg_path = d.log_path, d.config_path
            h.kill(d)
            h.wait_backends_gone()
            kills += 1

            # -- nothing acknowledged is lost
            sid = h.session_id(client.session.cookie_value) if client.session.cookie_value else None
            for name, data in acked.items():
                if not data:
                    continue
                REPORT.add("catalog_acked_chunks_checked")
                self.check_durable(h, sid, name, bytes(data), where, killed_log)

            # -- never half a file
            after_kill = catalog_state(h)
            allowed: dict[str, str] = {}
            for step, s in states:
                allowed.setdefault(digest(s), step)
            if digest(after_kill) not in allowed:
                nearest = min(states, key=lambda s: len(set(s[1].items()) ^ set(after_kill.items())))
                REPORT.violation("half_applied", f"{where}: the portal after the kill is none of the states "
                                                 f"before/after a whole file; nearest '{nearest[0]}':\n"
                                                 f"{state_diff(after_kill, nearest[1])}\n{tail(killed_log)}")
            else:
                REPORT.tally("catalog_states_after_kill", allowed[digest(after_kill)])

            # -- restart; 1C retries the exchange and it completes
            d = h.start_daemon(cfg_path)
            retry_ok = False
            for attempt in range(3):
                with OneCClient(d.url(), Harness.USER, Harness.PASSWORD) as c:
                    r = c.exchange(files, use_zip=None if use_zip else False)
                if r.ok:
                    retry_ok = True
                    break
                REPORT.add("catalog_retry_failures")
                REPORT.violations.append(f"[retry] {where}: retry {attempt + 1} failed: {r.failed.describe()}")
            final = catalog_state(h)
            if not retry_ok or digest(final) != digest(states[-1][1]):
                REPORT.violation("lost", f"{where}: after the retry the portal is not the package's final state "
                                         f"(retry ok: {retry_ok}):\n{state_diff(final, states[-1][1])}\n"
                                         f"{d.log_excerpt(4000)}")
                break
            REPORT.add("catalog_kills_survived")
            REPORT.add("catalog_packages_checked")
        self.assertEqual(REPORT.figures["lost"] + REPORT.figures["half_applied"], 0, "\n".join(REPORT.violations))
        self.assertEqual(REPORT.figures.get("catalog_kills_survived", 0), n, "\n".join(REPORT.violations))

    def check_durable(self, h, sid, name, data: bytes, where: str, killed_log) -> None:
        if sid is None:
            REPORT.violation("lost", f"{where}: {len(data)} bytes of {name} acknowledged, but no session found")
            return
        rows = h.psql(f"SELECT bytes, status FROM obmen.exchange_files WHERE session_id = {sid} AND filename = {q(name)}")
        if not rows:
            REPORT.violation("lost", f"{where}: {len(data)} bytes of {name} acknowledged in session {sid}, "
                                     f"no obmen.exchange_files row\n{tail(killed_log)}")
            return
        recorded = int(rows[0][0])
        path = h.spool_dir(sid) / name
        on_disk = path.read_bytes() if path.exists() else b""
        if recorded < len(data):
            REPORT.violation("lost", f"{where}: {len(data)} bytes of {name} acknowledged, the database records "
                                     f"{recorded} ({rows[0][1]})\n{tail(killed_log)}")
        elif len(on_disk) < len(data) or on_disk[:len(data)] != data:
            REPORT.violation("lost", f"{where}: {len(data)} bytes of {name} acknowledged, the spool file {path} "
                                     f"holds {len(on_disk)} bytes that differ\n{tail(killed_log)}")
        elif len(on_disk) < recorded:
            REPORT.violation("lost", f"{where}: the database records {recorded} bytes of {name}, the spool file "
                                     f"holds {len(on_disk)}\n{tail(killed_log)}")



# ------------------------------------------------------------------------------------ orders

ORDERS_MAPPING = """\
statuses:
  - match: { name: "Собран" }
    status: assembled
  - match: { name: "Закрыт" }
    status: completed
"""
# The statuses 1C sends back for an order, in this order, one step per round at most.
STATUS_STEPS = (("Собран", "assembled"), ("Закрыт", "completed"))
UTC_US = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'"


class OrdersUnderSigkill(unittest.TestCase):
    """See the module docstring. Bookkeeping, all keyed by (order guid, version tag) — the tag is
    the order's Комментарий, which the portal changes with every edit:

    * versions[guid]: [(tag, changed_at)] in the order the portal made them;
    * answers: [(session id, {(guid, tag)})] of every query answer the client received;
    * client_acked / db_acked: the first session that acknowledged a version, as the client saw it
      (success answered) and as obmen.order_exports shows it (observed after every session)."""

    maxDiff = None
    CONFIG = {"zip": False, "file_limit": "2KiB", "orders_schema_version": "2.09", "unknown_orders": "report",
              "timezone": "Europe/Moscow", "orders_per_query": 4}

    def setUp(self):
        self.h = FaultHarness.for_test(self)
        self.h.create_database()
        mapping = self.h.dir / "mapping.yaml"
        mapping.write_text(ORDERS_MAPPING, encoding="utf-8")
        self.cfg = self.h.config(mapping=str(mapping), **self.CONFIG)
        files = []
        for src, name in ((IMPORT, "import0_1.xml"), (OFFERS, "offers0_1.xml")):
            path = self.h.dir / name
            shutil.copyfile(cml.sample(src), path)
            files.append(str(path))
        r = self.h.ctl("import", "--source", SOURCE, *files, config=self.h.write_config(self.cfg, name="ctl.yaml"))
        self.assertEqual(r.returncode, 0, f"obmenctl import failed:\n{r.stdout}{r.stderr}")
        self.offers = self.h.psql(f"SELECT id, external_id, name FROM portal.offers WHERE source = '{SOURCE}' "
                                  f"AND product_id IS NOT NULL ORDER BY external_id")
        self.counterparties = []
        for i, (name, inn, kpp) in enumerate((("ООО «Ромашка»", "7701234567", "770101001"),
                                              ("ИП Иванов", "500100732259", None),
                                              ("ООО «Лютик»", "7702345678", "770201001"))):
            legal = name if kpp else "ИП Иванов И. И."
            row = self.h.psql(f"INSERT INTO portal.counterparties (name, legal_name, inn, kpp) VALUES "
                              f"({q(name)}, {q(legal)}, {q(inn)}, {q(kpp)}) RETURNING id, guid")
            self.counterparties.append({"id": int(row[0][0]), "guid": row[0][1], "name": name, "legal_name": legal,
                                        "inn": inn, "kpp": kpp})
        self.orders: dict[str, dict] = {}
        self.versions: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.answers: list[tuple[int, set]] = []
        self.client_acked: dict[tuple[str, str], int] = {}
        self.db_acked: dict[tuple[str, str], int] = {}
        self.expected_history: dict[str, list[str]] = defaultdict(list)
        self.timing = {"query": 0.05, "success": 0.02, "import": 0.1, "total": 0.4}

    # -- the portal

    def insert_order(self, rng) -> dict:
        number = f"П-{len(self.orders) + 1:05d}"
        cp = rng.choice(self.counterparties)
        lines = []
        for idx in rng.sample(range(len(self.offers)), rng.randint(1, 3)):
            oid, ext, name = self.offers[idx]
            qty = decimal.Decimal(rng.randint(1, 20))
            price = decimal.Decimal(rng.randint(100, 99999)) / 100
            lines.append({"offer_id": oid, "offer": ext, "name": name, "quantity": str(qty), "price": str(price),
                          "amount": str((qty * price).quantize(decimal.Decimal("0.01")))})
        total = sum(decimal.Decimal(x["amount"]) for x in lines)
        tag = f"{number} v1"
        values = ", ".join(f"((SELECT id FROM o), {x['offer_id']}, {q(x['name'])}, {x['quantity']}, {x['price']}, "
                           f"{x['amount']})" for x in lines)
        # One transaction, order and lines (docs/orders.md "Creating an order").
        row = self.h.psql(
            f"WITH o AS (INSERT INTO portal.orders (number, counterparty_id, total, currency, status, comment) "
            f"VALUES ({q(number)}, {cp['id']}, {total}, 'RUB', 'new', {q(tag)}) RETURNING id, guid, created_at, changed_at), "
            f"i AS (INSERT INTO portal.order_items (order_id, offer_id, name, quantity, price, amount) VALUES {values}) "
            f"SELECT id, guid, to_char(created_at AT TIME ZONE 'Europe/Moscow', 'YYYY-MM-DD'), "
            f"to_char(changed_at AT TIME ZONE 'UTC', {UTC_US}) FROM o")
        o = {"id": int(row[0][0]), "guid": row[0][1], "date": row[0][2], "number": number, "total": str(total),
             "counterparty": cp, "lines": lines, "edits": 1, "step": 0}
        self.orders[o["guid"]] = o
        self.versions[o["guid"]].append((tag, row[0][3]))
        return o

    def edit_order(self, o: dict) -> None:
        o["edits"] += 1
        tag = f"{o['number']} v{o['edits']}"
        row = self.h.psql(f"UPDATE portal.orders SET comment = {q(tag)} WHERE id = {o['id']} "
                          f"RETURNING to_char(changed_at AT TIME ZONE 'UTC', {UTC_US})")
        self.versions[o["guid"]].append((tag, row[0][0]))

    def observe_acks(self) -> None:
        """Which versions obmen.order_exports counts as acknowledged, and by which session."""
        by_id = {o["id"]: o for o in self.orders.values()}
        for oid, acked_at, sid in self.h.psql(
                f"SELECT order_id, to_char(acknowledged_changed_at AT TIME ZONE 'UTC', {UTC_US}), "
                f"acknowledged_session_id FROM obmen.order_exports WHERE source = '{SOURCE}' "
                f"AND acknowledged_changed_at IS NOT NULL"):
            o = by_id.get(int(oid))
            if o is None:
                continue
            for tag, changed_at in self.versions[o["guid"]]:
                if changed_at <= acked_at:
                    self.db_acked.setdefault((o["guid"], tag), int(sid))

    def acked(self, o: dict) -> bool:
        return any((o["guid"], tag) in self.db_acked for tag, _ in self.versions[o["guid"]])

    # -- 1C

    def session(self, d, docs, hook=None):
        """One sale session as 1C runs it; returns (client, outcome). Records what it received."""
        c = SaleClient(d.url(), Harness.USER, Harness.PASSWORD, on_answer=hook)
        outcome = run_exchange(c, lambda c: c.exchange_sale([docs] if docs else [], version="2.09"))
        sid = self.h.session_id(c.session.cookie_value) if c.session.cookie_value else None
        got: set = set()
        for a in c.answers:
            if a.step == "query" and a.http_status == 200 and a.raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
                got = {(guid, v["comment"]) for guid, v in parse_orders(a.raw).items()}
                self.answers.append((sid, got))
                REPORT.add("orders_exports_received", len(got))
            if a.step == "success" and a.ok:
                for key in got:
                    self.client_acked.setdefault(key, sid)
        return c, outcome

    def documents(self, rng, rnd: int):
        """The documents file of this round: the next status of up to two acknowledged orders."""
        candidates = [o for o in self.orders.values() if o["step"] < len(STATUS_STEPS) and self.acked(o)]
        chosen = rng.sample(candidates, min(len(candidates), rng.randint(0, 2)))
        if not chosen:
            return None
        docs = []
        for o in chosen:
            name, status = STATUS_STEPS[o["step"]]
            o["step"] += 1
            self.expected_history[o["guid"]].append(status)
            docs.append(order_document(o, requisite_pairs=[("Проведен", "true"), ("Статус заказа", name)]))
        return (f"documents_{rnd}.xml", documents_file(docs))

    def test_order_exchanges_survive_sigkill(self):
        n = rounds()
        rng, seed = make_rng("orders")
        REPORT.set("seed", seed)
        REPORT.set("orders_rounds", n)
        d = self.h.start_daemon(self.cfg)
        for rnd in range(1, n + 1):
            for _ in range(rng.randint(1, 2)):
                self.insert_order(rng)
            if rng.random() < 0.3:
                self.edit_order(rng.choice(list(self.orders.values())))
            docs = self.documents(rng, rnd)
            kind = rng.choice(["delay", "query_inflight", "after_query", "success_inflight", "after_success",
                               "after_chunk", "import_inflight", "after_import"])
            insert_between = rng.random() < 0.3
            killer = Killer(d)
            chunks = [0]
            chunk_target = rng.randint(1, 3)
            if kind == "delay":
                killer.arm(rng.uniform(0, self.timing["total"]), "random delay")

            def hook(a):
                killer.note(f"{a.step} → {a.status[:40]}")
                if a.step == "init" and kind == "query_inflight":
                    killer.arm(rng.uniform(0, self.timing["query"]), "query in flight")
                if a.step == "query":
                    if insert_between:
                        self.insert_order(rng)          # a portal order between query and success
                    if kind == "after_query":
                        killer.kill_now("after the query answer")
                        raise Killed()
                    if kind == "success_inflight":
                        killer.arm(rng.uniform(0, self.timing["success"]), "success in flight")
                if a.step == "success" and kind == "after_success":
                    killer.kill_now("after the success answer")
                    raise Killed()
                if a.step == "file" and a.ok:
                    chunks[0] += 1
                    if kind == "after_chunk" and chunks[0] == chunk_target:
                        killer.kill_now(f"after documents chunk {chunks[0]}")
                        raise Killed()
                if a.step == "import":
                    if kind == "import_inflight" and a.status == "progress":
                        killer.arm(rng.uniform(0, self.timing["import"]), "import in flight")
                    if kind == "after_import" and a.status != "progress":
                        killer.kill_now("after the import answer")
                        raise Killed()

            _, outcome = self.session(d, docs, hook)
            killer.finish()
            REPORT.tally("orders_kill_points", kind)
            where = f"round {rnd} (seed {seed}, kill {kind}: {killer.fired_at}; client: {outcome})"
            cfg_path, killed_log = d.config_path, d.log_path
            self.h.kill(d)
            self.h.wait_backends_gone()
            self.observe_acks()
            d = self.h.start_daemon(cfg_path)

            # 1C retries the whole session: same documents file.
            marks = {}
            retry_ok = False
            for attempt in range(3):
                marks.clear()
                c, outcome = self.session(d, docs, lambda a: marks.setdefault(a.step, time.monotonic()))
                self.observe_acks()
                if outcome == "completed":
                    retry_ok = True
                    break
                REPORT.add("orders_retry_failures")
                REPORT.violations.append(f"[retry] {where}: retry {attempt + 1}: {outcome}\n{tail(d.log_path)}")
            if not retry_ok:
                REPORT.violation("lost", f"{where}: the retried session never completed\n{tail(killed_log)}")
                break
            if "query" in marks and "init" in marks:
                self.timing["query"] = marks["query"] - marks["init"]
            if "success" in marks and "query" in marks:
                self.timing["success"] = marks["success"] - marks["query"]
            if "import" in marks and "file" in marks:
                self.timing["import"] = max(0.02, time.monotonic() - marks["import"])
            if "checkauth" in marks:
                self.timing["total"] = time.monotonic() - marks["checkauth"]
            REPORT.add("orders_kills_survived")

        # Drain: sessions until a query answers nothing (1C's next scheduled exchanges).
        for _ in range(len(self.orders) // self.CONFIG["orders_per_query"] + 3):
            _, outcome = self.session(d, None)
            self.observe_acks()
            self.assertEqual(outcome, "completed", outcome)
            if not self.answers[-1][1]:
                break
        self.check_orders()
        self.assertEqual(REPORT.figures["lost"] + REPORT.figures["doubled"], 0, "\n".join(REPORT.violations))
        self.assertEqual(REPORT.figures.get("orders_kills_survived", 0), n, "\n".join(REPORT.violations))

    def check_orders(self) -> None:
        received = {key for _, got in self.answers for key in got}
        for guid, o in self.orders.items():
            REPORT.add("orders_checked")
            latest = self.versions[guid][-1][0]
            if (guid, latest) not in received:
                REPORT.violation("lost", f"order {o['number']}: its latest version '{latest}' never reached 1C")
            if (guid, latest) not in self.db_acked:
                REPORT.violation("lost", f"order {o['number']}: its latest version '{latest}' was never acknowledged")
        REPORT.set("order_versions_acknowledged", len(self.db_acked))
        first_ack = dict(self.db_acked)
        for key, sid in self.client_acked.items():
            first_ack[key] = min(sid, first_ack.get(key, sid))
            if key not in self.db_acked:
                REPORT.violation("lost", f"{key}: 1C got success in session {sid}, order_exports shows no acknowledgement")
        for sid, got in self.answers:
            for key in got:
                if key in first_ack and sid is not None and sid > first_ack[key]:
                    REPORT.violation("doubled", f"{key}: exported again in session {sid} after session "
                                                f"{first_ack[key]} acknowledged it")
        # Statuses from 1C: each exactly once, in order.
        rows = self.h.psql(f"SELECT o.guid, h.status FROM portal.order_status_history h JOIN portal.orders o "
                           f"ON o.id = h.order_id WHERE h.origin = '{SOURCE}' ORDER BY h.id")
        history = defaultdict(list)
        for guid, status in rows:
            history[guid].append(status)
        for guid in set(history) | set(self.expected_history):
            got, want = history.get(guid, []), self.expected_history.get(guid, [])
            REPORT.add("order_statuses_checked", len(want))
            if got != want:
                kind = "doubled" if len(got) > len(want) else "lost"
                REPORT.violation(kind, f"order {self.orders[guid]['number']}: status history from 1C {got}, "
                                       f"1C sent {want}")
        current = dict(self.h.psql("SELECT guid, status FROM portal.orders WHERE source IS NULL"))
        for guid, want in self.expected_history.items():
            if want and current.get(guid) != want[-1]:
                REPORT.violation("lost", f"order {self.orders[guid]['number']}: status {current.get(guid)}, "
                                         f"1C last sent {want[-1]}")


def cml_pack(files, use_zip: bool) -> bytes:
    """What the client uploads in total: the archive (for the chunk count only), or the files."""
    from onec_client import pack_zip
    return pack_zip(files) if use_zip else b"".join(data for _, data in files)


if __name__ == "__main__":
    unittest.main()
