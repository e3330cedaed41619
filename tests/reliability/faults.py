"""Fault injection for the reliability suites: SIGKILL of obmend, a PostgreSQL outage of the test
database, waits on the database, portal digests and the report.

Builds on the end-to-end tier (tests/e2e: harness.py, onec_client.py, sale_client.py, cml.py),
which it puts on sys.path and uses unmodified:

* :class:`FaultHarness` is a :class:`harness.Harness` that restarts obmend after SIGKILL
  (``crash_restart``), waits until the killed process's database sessions are gone, so the state
  seen afterwards is final (``wait_backends_gone``), and takes the test database away and gives
  it back (``terminate_backends``, ``block_connections``) without touching the shared cluster;
* :func:`catalog_state` / :func:`digest` describe the catalog of one source by external ids and
  values only (no surrogate ids, no timestamps), so two databases that received the same packages
  compare equal;
* :class:`Killer` kills obmend at a chosen moment from a timer thread (a random delay *before a
  kill* is the fault being injected, not a synchronisation);
* :class:`Report` collects the figures and prints them (and writes JSON to $OBMEN_REPORT_DIR).

Standard library only. No sleeps: the daemon's READY datagram, HTTP answers and database polls
with deadlines are the events.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import re
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
E2E = HERE.parent / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

import cml  # noqa: E402
from harness import EVENT_TIMEOUT, TIMEOUT_SCALE, Daemon, Harness  # noqa: E402
from onec_client import OneCClient  # noqa: E402

SOURCE = "onec"


def rounds(default: int = 100) -> int:
    """Rounds per suite: OBMEN_CRASH_ROUNDS (CTest sets a CI-sized count)."""
    return max(1, int(os.environ.get("OBMEN_CRASH_ROUNDS", str(default))))


_SEED = int(os.environ.get("OBMEN_CRASH_SEED") or random.SystemRandom().randrange(1, 2**31))


def make_rng(suite: str) -> tuple[random.Random, int]:
    """A seeded generator per suite: OBMEN_CRASH_SEED replays a run (the report prints the seed)."""
    return random.Random(f"{suite}:{_SEED}"), _SEED


# ------------------------------------------------------------------------------------ harness

class FaultHarness(Harness):
    """A Harness whose obmend may be killed and started again any number of times."""

    def __init__(self, label: str = "reliability"):
        super().__init__(label)
        self.starts = 0
        self.retired: list[Daemon] = []   # killed daemons, closed; their logs stay on disk

    def start_daemon(self, cfg: Any = None, *, wait_ready: bool = True, args: tuple[str, ...] = (),
                     env: dict | None = None) -> Daemon:
        # Named by a counter, not by len(self.daemons): killed daemons leave that list.
        path = cfg if isinstance(cfg, Path) else self.write_config(cfg)
        self.starts += 1
        d = Daemon(self, path, env or self.env(), list(args), f"obmend{self.starts}")
        self.daemons.append(d)
        if wait_ready:
            d.wait_ready()
        return d

    def kill(self, d: Daemon) -> None:
        """SIGKILL (idempotent), then closes the Daemon object; its log file is kept."""
        d.kill()
        d.close()
        if d in self.daemons:
            self.daemons.remove(d)
            self.retired.append(d)

    def crash_restart(self, d: Daemon) -> Daemon:
        """SIGKILL d if it still runs, wait until its database sessions are gone, start a new
        obmend with the same configuration and wait for READY."""
        self.kill(d)
        self.wait_backends_gone()
        return self.start_daemon(d.config_path)

    # -- the database, seen from outside

    def backend_pids(self) -> list[int]:
        """Client sessions on the test database (asked through the admin database, which stays
        reachable while the test database refuses connections)."""
        rows = self.psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{self.db_name}' "
                         f"AND backend_type = 'client backend'", url=self.admin_url)
        return [int(r[0]) for r in rows]

    def wait_backends_gone(self, pids: list[int] | None = None, timeout: float = 60.0 * TIMEOUT_SCALE) -> None:
        """Until the given sessions (default: all of the test database) have ended. After SIGKILL
        the server ends each session of the dead process when it next reads from or writes to its
        socket — a statement still running finishes first (and a COMMIT already sent still
        commits). Until they are gone the portal may still change; after, it cannot."""
        if pids is None:
            poll(lambda: not self.backend_pids(), timeout, "the killed obmend's database sessions to end")
        else:
            poll(lambda: not set(pids) & set(self.backend_pids()), timeout, "the terminated sessions to end")

    def terminate_backends(self) -> list[int]:
        """pg_terminate_backend on every session of the test database — what a PostgreSQL restart
        does to obmend's connections, without disturbing other databases on the cluster. Returns
        the pids signalled."""
        # The sessions are chosen first (a materialized CTE) and only those are signalled: in a
        # WHERE clause pg_terminate_backend could be evaluated before the datname test.
        rows = self.psql(f"WITH chosen AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE datname = '{self.db_name}' "
                         f"AND backend_type = 'client backend' AND pid <> pg_backend_pid()) "
                         f"SELECT pid, pg_terminate_backend(pid) FROM chosen", url=self.admin_url)
        return [int(r[0]) for r in rows]

    def block_connections(self, blocked: bool) -> None:
        """ALLOW_CONNECTIONS false/true on the test database (run from the admin database): while
        blocked, every new connection to it fails — the database is down as far as obmend can tell."""
        self._admin_sql(f'ALTER DATABASE "{self.db_name}" WITH ALLOW_CONNECTIONS {"false" if blocked else "true"}')

    def spool_dir(self, session_id: int) -> Path:
        return self.dir / "spool" / SOURCE / str(session_id)

    def session_id(self, cookie: str) -> int | None:
        """The exchange session a checkauth answer's cookie names (the database keeps its SHA-256)."""
        h = hashlib.sha256(cookie.encode()).hexdigest()
        rows = self.psql(f"SELECT id FROM obmen.exchange_sessions WHERE cookie_hash = '{h}'")
        return int(rows[0][0]) if rows else None

    def close(self, testcase=None, print_logs=None) -> None:
        for d in self.retired:
            try:
                d.close()
            except Exception:
                pass
        super().close(testcase, print_logs)


def poll(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """Re-evaluates pred (each evaluation is a database or HTTP round trip) until it holds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def healthz(d: Daemon, timeout: float = 10.0) -> tuple[int, dict]:
    status, _, body = d.http("GET", "/healthz", timeout=timeout)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"raw": body.decode("utf-8", "replace")}


# ------------------------------------------------------------------------------- catalog state

def catalog_state(h: Harness, source: str = SOURCE) -> dict:
    """Products, offers, prices and stock of one source by external ids and values: what a
    package changes, without ids or timestamps (equal across databases fed the same packages)."""
    s = f"'{source}'"
    rows = h.query_json(f"""
      SELECT 'product' AS kind, p.external_id AS k1, '' AS k2,
             json_build_array(p.name, p.sku, p.active, c.external_id)::text AS v
        FROM portal.products p LEFT JOIN portal.categories c ON c.id = p.category_id WHERE p.source = {s}
      UNION ALL
      SELECT 'offer', o.external_id, '', json_build_array(o.name, o.sku, o.quantity::text, o.active,
             o.product_external_id, p.external_id)::text
        FROM portal.offers o LEFT JOIN portal.products p ON p.id = o.product_id WHERE o.source = {s}
      UNION ALL
      SELECT 'price', o.external_id, t.external_id, json_build_array(pr.value::text, pr.active)::text
        FROM portal.prices pr JOIN portal.offers o ON o.id = pr.offer_id
        JOIN portal.price_types t ON t.id = pr.price_type_id WHERE o.source = {s}
      UNION ALL
      SELECT 'stock', o.external_id, w.external_id, json_build_array(st.quantity::text)::text
        FROM portal.stock st JOIN portal.offers o ON o.id = st.offer_id
        JOIN portal.warehouses w ON w.id = st.warehouse_id WHERE o.source = {s}""")
    state: dict = {}
    for r in rows:
        key = f"{r['kind']}|{r['k1']}|{r['k2']}"
        n = 1
        while key in state:           # a doubled row must not hide behind its twin
            n += 1
            key = f"{r['kind']}|{r['k1']}|{r['k2']}|dup{n}"
        state[key] = r["v"]
    return state


def digest(state: dict) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def state_diff(got: dict, want: dict, limit: int = 6) -> str:
    """A short description of how two catalog states differ."""
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    out = [f"{len(missing)} rows missing, {len(extra)} extra, {len(changed)} different"]
    out += [f"  missing {k}: {want[k]}" for k in missing[:limit]]
    out += [f"  extra   {k}: {got[k]}" for k in extra[:limit]]
    out += [f"  changed {k}: {got[k]} (expected {want[k]})" for k in changed[:limit]]
    return "\n".join(out)


# ----------------------------------------------------------------------------- catalog packages

IMPORT = cml.DOBROMYSLOV + "/data__import0_1.xml"
OFFERS = cml.DOBROMYSLOV + "/data__offers0_1.xml"

OFFER_OPEN = "<Предложение>"
NAME = re.compile(r"<Наименование>([^<]*)</Наименование>")


def _rename_first(block: str, suffix: str) -> str:
    return NAME.sub(lambda m: f"<Наименование>{m.group(1)}{suffix}</Наименование>", block, count=1)


def package(v: int) -> list[tuple[str, bytes]]:
    """Package number v: the sample pair with names, prices and stock changed by v, so every
    package leaves a portal different from the one before; every third one lacks a product (the
    full catalog, СодержитТолькоИзменения=false, marks it inactive; the next package brings it back)."""
    suffix = f" · r{v}"
    head, blocks, rest = cml.split_products(cml.sample_bytes(IMPORT).decode("utf-8-sig"))
    blocks = [_rename_first(b, suffix) for b in blocks]
    if v % 3 == 0:
        blocks = blocks[:-1]
    imp = head + "".join(blocks) + rest

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
    return urllib.parse.parse_qs(urllib.parse.urlsplit(target).query).get("filename", [""])[0]


def chunk_count(files, use_zip: bool, file_limit: int = 16 * 1024) -> int:
    """How many file requests 1C makes for the package: the archive's pieces, or each file's."""
    from onec_client import pack_zip
    sizes = [len(pack_zip(files))] if use_zip else [len(data) for _, data in files]
    return sum(max(1, -(-n // file_limit)) for n in sizes)


def run_package(d: Daemon, h: Harness, files, use_zip) -> tuple[list[tuple[str, dict]], dict]:
    """The package through obmend d on h's database, cleanly, the way 1C sends it: the states
    [(step, catalog_state)] from before the package to after deactivate, and timings (the whole
    exchange, each file's import). States are [] when the exchange failed (timing has "failed")."""
    states = [("before", catalog_state(h))]
    timing: dict = {"import_started": {}, "import": {}}

    def hook(a):
        if a.step == "import":
            name = filename_of(a.target)
            timing["import_started"].setdefault(name, time.monotonic())
            if a.status != "progress":
                timing["import"][name] = time.monotonic() - timing["import_started"][name]
                states.append((f"after {name}", catalog_state(h)))
        elif a.step == "deactivate" and a.ok:
            states.append(("after deactivate", catalog_state(h)))

    started = time.monotonic()
    with OneCClient(d.url(), Harness.USER, Harness.PASSWORD, on_answer=hook) as c:
        r = c.exchange(files, use_zip=use_zip)
    timing["total"] = time.monotonic() - started
    if not r.ok:
        timing["failed"] = f"{r.transcript()}\n{d.log_excerpt(6000)}"
        return [], timing
    return states, timing


def tail(path: Path, n: int = 3000) -> str:
    """The end of a (killed) daemon's log file, for violation messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return f"--- {path.name} (end) ---\n{text[-n:]}"


# -------------------------------------------------------------------------------------- killer

class Killed(Exception):
    """Raised from a client's on_answer hook after it killed obmend: the exchange stops there."""


CONNECTION_ERRORS = (OSError, http.client.HTTPException)


def run_exchange(client, run: Callable[[Any], Any]) -> str:
    """Runs ``run(client)`` (an exchange returning a result with ``ok`` / ``failed``), closes the
    client and says how it ended: "completed", "failed: <answer>", "killed by the hook" or
    "connection lost: <error>" (obmend died under it)."""
    try:
        r = run(client)
        return "completed" if r.ok else f"failed: {r.failed.describe()}"
    except Killed:
        return "killed by the hook"
    except CONNECTION_ERRORS as e:
        return f"connection lost: {type(e).__name__}"
    finally:
        client.close()


class Killer:
    """Kills one obmend once: now (``kill_now``) or after a delay from a timer thread (``arm``).
    ``fired`` tells whether it happened; ``finish()`` kills now if the timer had not fired yet
    (the exchange ended first) and joins the timer."""

    def __init__(self, d: Daemon):
        self.d = d
        self.lock = threading.Lock()
        self.fired = False
        self.fired_at: str | None = None   # what the client had last seen when the kill happened
        self.last_step = "start"
        self.timer: threading.Timer | None = None

    def note(self, step: str) -> None:
        with self.lock:
            self.last_step = step

    def kill_now(self, why: str) -> None:
        with self.lock:
            if self.fired:
                return
            self.fired = True
            self.fired_at = f"{why} (client's last answer: {self.last_step})"
            if self.d.proc.poll() is None:
                self.d.proc.kill()

    def arm(self, delay: float, why: str) -> None:
        if self.timer is not None or self.fired:
            return
        self.timer = threading.Timer(delay, self.kill_now, args=(f"{why} after {delay * 1000:.0f} ms",))
        self.timer.daemon = True
        self.timer.start()

    def finish(self, why: str = "after the exchange ended") -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer.join()
        self.kill_now(why)
        self.d.proc.wait(EVENT_TIMEOUT)


# -------------------------------------------------------------------------------------- report

class Report:
    """Figures of one suite. ``emit()`` prints them and writes
    $OBMEN_REPORT_DIR/reliability_<suite>.json when that variable is set."""

    HEADLINE = ("lost", "doubled", "half_applied")

    def __init__(self, suite: str):
        self.suite = suite
        self.figures: dict[str, Any] = {k: 0 for k in self.HEADLINE}
        self.violations: list[str] = []
        self.started = time.monotonic()

    def add(self, key: str, n: int = 1) -> None:
        self.figures[key] = self.figures.get(key, 0) + n

    def tally(self, key: str, item: str) -> None:
        """Counts item in the figure key, a dict (kill points, states seen …)."""
        d = self.figures.setdefault(key, {})
        d[item] = d.get(item, 0) + 1

    def set(self, key: str, value: Any) -> None:
        self.figures[key] = value

    def violation(self, kind: str, text: str) -> None:
        """kind: one of lost, doubled, half_applied (or another counted figure)."""
        self.add(kind)
        self.violations.append(f"[{kind}] {text}")

    def ok(self) -> bool:
        return all(self.figures.get(k, 0) == 0 for k in self.HEADLINE) and not self.violations

    def emit(self) -> dict:
        self.figures["seconds"] = round(time.monotonic() - self.started, 1)
        data = {"suite": self.suite, "figures": self.figures, "violations": self.violations[:50],
                "ok": self.ok()}
        width = max(len(k) for k in self.figures)
        lines = ["", f"==== reliability report: {self.suite} ===="]
        keys = [k for k in self.figures if k not in self.HEADLINE] + list(self.HEADLINE)
        for k in keys:
            v = self.figures[k]
            if isinstance(v, dict):
                v = ", ".join(f"{a} {b}" for a, b in sorted(v.items()))
            lines.append(f"  {k:<{width}}  {v}")
        lines.append(f"  {'result':<{width}}  {'PASS' if self.ok() else 'FAIL'}")
        for v in self.violations[:20]:
            lines.append(f"  ! {v}")
        print("\n".join(lines), flush=True)
        out = os.environ.get("OBMEN_REPORT_DIR")
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / f"reliability_{self.suite}.json").write_text(
                json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return data
