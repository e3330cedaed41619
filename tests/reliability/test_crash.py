"""Crash safety, black-box: obmend killed with SIGKILL at random points of 1C exchanges.

Catalog imports (CatalogUnderSigkill). Each round, a 1C client uploads a package — the
dobromyslov import0_1.xml + offers0_1.xml sample, changed per round (product and offer names,
prices, stock; every third round one product left out, so deactivate changes something too),
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
import http.client
import re
import shutil
import time
import unittest
from collections import defaultdict

import faults
from faults import (EVENT_TIMEOUT, SOURCE, FaultHarness, Killed, Killer, Report, catalog_state, digest,
                    make_rng, rounds, state_diff)

import cml  # noqa: E402  (tests/e2e, put on sys.path by faults)
from harness import Harness  # noqa: E402
from onec_client import OneCClient  # noqa: E402
from sale_client import SaleClient  # noqa: E402
from test_sale_exchange import documents_file, order_document, parse_orders, q  # noqa: E402

IMPORT = cml.DOBROMYSLOV + "/data__import0_1.xml"
OFFERS = cml.DOBROMYSLOV + "/data__offers0_1.xml"
REPORT = Report("crash")
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


def tearDownModule():
    REPORT.emit()


# ------------------------------------------------------------------------------ catalog packages

PRODUCT_OPEN = re.compile(r"<Товар(?=[\s>])")
OFFER_OPEN = "<Предложение>"
NAME = re.compile(r"<Наименование>([^<]*)</Наименование>")


def _rename_first(block: str, suffix: str) -> str:
    return NAME.sub(lambda m: f"<Наименование>{m.group(1)}{suffix}</Наименование>", block, count=1)


def package(v: int) -> list[tuple[str, bytes]]:
    """Package number v: the sample pair with names, prices and stock changed by v, so every
    package leaves a portal different from the one before; every third one lacks a product."""
    suffix = f" · r{v}"
    head, blocks, tail = cml.split_products(cml.sample_bytes(IMPORT).decode("utf-8-sig"))
    blocks = [_rename_first(b, suffix) for b in blocks]
    if v % 3 == 0:
        blocks = blocks[:-1]
    imp = head + "".join(blocks) + tail

    offers = cml.sample_bytes(OFFERS).decode("utf-8-sig")
    parts = offers.split(OFFER_OPEN)
    parts = [parts[0]] + [_rename_first(p, suffix) for p in parts[1:]]
    offers = OFFER_OPEN.join(parts)
    offers = re.sub(r"<ЦенаЗаЕдиницу>([\d.,]+)</ЦенаЗаЕдиницу>",
                    lambda m: f"<ЦенаЗаЕдиницу>{cml.dec(m.group(1)) + v}</ЦенаЗаЕдиницу>", offers)
    offers = re.sub(r'КоличествоНаСкладе="([\d.,]+)"',
                    lambda m: f'КоличествоНаСкладе="{cml.dec(m.group(1)) + v}"', offers)
    offers = re.sub(r"<Количество>([\d.,]+)</Количество>",
                    lambda m: f"<Количество>{cml.dec(m.group(1)) + 3 * v}</Количество>", offers)
    bom = "\ufeff"
    return [("import0_1.xml", (bom + imp).encode("utf-8")), ("offers0_1.xml", (bom + offers).encode("utf-8"))]


class RecordingClient(OneCClient):
    """OneCClient that keeps the body of the request being answered (pending_body), so the
    on_answer hook knows the bytes of each acknowledged chunk."""

    pending_body: bytes | None = None

    def send(self, step, method, target, *, body=None, **kw):
        self.pending_body = body
        return super().send(step, method, target, body=body, **kw)


def filename_of(target: str) -> str:
    import urllib.parse
    return urllib.parse.parse_qs(urllib.parse.urlsplit(target).query).get("filename", [""])[0]


class CatalogUnderSigkill(unittest.TestCase):
    maxDiff = None
    CONFIG = {"file_limit": "16KiB", "zip": True}

    def start(self, h: FaultHarness):
        h.create_database()
        return h.start_daemon(h.config(**self.CONFIG))

    def twin_run(self, twin, files, use_zip) -> tuple[list[tuple[str, dict]], dict]:
        """The package through the twin, cleanly: [(step, state)] from before the package to after
        deactivate, and timings (whole exchange, each file's import)."""
        states = [("before", catalog_state(twin))]
        timing = {"import_started": {}, "import": {}}

        def hook(a):
            if a.step == "import":
                name = filename_of(a.target)
                timing["import_started"].setdefault(name, time.monotonic())
                if a.status != "progress":
                    timing["import"][name] = time.monotonic() - timing["import_started"][name]
                    states.append((f"after {name}", catalog_state(twin)))
            elif a.step == "deactivate" and a.ok:
                states.append(("after deactivate", catalog_state(twin)))

        started = time.monotonic()
        with OneCClient(self.twin_d.url(), Harness.USER, Harness.PASSWORD, on_answer=hook) as c:
            r = c.exchange(files, use_zip=use_zip)
        self.assertTrue(r.ok, f"twin exchange failed:\n{r.transcript()}\n{self.twin_d.log_excerpt(6000)}")
        timing["total"] = time.monotonic() - started
        return states, timing

    def test_catalog_imports_survive_sigkill(self):
        n = rounds()
        rng, seed = make_rng("catalog")
        REPORT.set("seed", seed)
        h = FaultHarness.for_test(self)
        twin = FaultHarness.for_test(self)
        d = self.start(h)
        self.twin_d = self.start(twin)
        kinds = defaultdict(int)
        kills = 0
        for rnd in range(1, n + 1):
            files = package(rnd)
            use_zip = rng.random() < 0.5
            states, timing = self.twin_run(twin, files, None if use_zip else False)
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
            outcome = "completed"
            try:
                r = client.exchange(files, use_zip=None if use_zip else False)
                if not r.ok:
                    outcome = f"failed: {r.failed.describe()}"
            except Killed:
                outcome = "killed by the hook"
            except CONNECTION_ERRORS as e:
                outcome = f"connection lost: {type(e).__name__}"
            finally:
                client.close()
            killer.finish()
            kinds[kind] += 1
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
                REPORT.add("catalog_state_after_kill: " + allowed[digest(after_kill)])

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
        REPORT.set("catalog_kill_points", dict(sorted(kinds.items())))
        REPORT.set("catalog_rounds", n)
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


def cml_pack(files, use_zip: bool) -> bytes:
    """What the client uploads in total: the archive (for the chunk count only), or the files."""
    from onec_client import pack_zip
    return pack_zip(files) if use_zip else b"".join(data for _, data in files)


def tail(path, n: int = 3000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return f"--- {path.name} (end) ---\n{text[-n:]}"


if __name__ == "__main__":
    unittest.main()
