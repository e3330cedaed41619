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
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
E2E = HERE.parent / "e2e"
if str(E2E) not in sys.path:
    sys.path.insert(0, str(E2E))

from harness import EVENT_TIMEOUT, START_TIMEOUT, TIMEOUT_SCALE, Daemon, Harness  # noqa: E402

SOURCE = "onec"


def rounds(default: int = 100) -> int:
    """Rounds per suite: OBMEN_CRASH_ROUNDS (CTest sets a CI-sized count)."""
    return max(1, int(os.environ.get("OBMEN_CRASH_ROUNDS", str(default))))


def make_rng(suite: str) -> tuple[random.Random, int]:
    """A seeded generator: OBMEN_CRASH_SEED replays a run (the report prints the seed used)."""
    seed = int(os.environ.get("OBMEN_CRASH_SEED") or random.SystemRandom().randrange(1, 2**31))
    return random.Random(f"{suite}:{seed}"), seed


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

    def backends(self) -> int:
        """Client sessions on the test database other than this query's own."""
        return self.count(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{self.db_name}' "
                          f"AND pid <> pg_backend_pid() AND backend_type = 'client backend'")

    def wait_backends_gone(self, timeout: float = 60.0 * TIMEOUT_SCALE) -> None:
        """After SIGKILL the server ends each session of the dead process when it next reads from
        or writes to its socket — a statement still running finishes first (and a COMMIT already
        sent still commits). Until they are gone the portal may still change; after, it cannot."""
        poll(lambda: self.backends() == 0, timeout, "the killed obmend's database sessions to end")

    def terminate_backends(self) -> int:
        """pg_terminate_backend on every other session of the test database — what a PostgreSQL
        restart does to obmend's connections, without disturbing other databases on the cluster."""
        rows = self.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.db_name}' "
                         f"AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        return len(rows)

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
    return {f"{r['kind']}|{r['k1']}|{r['k2']}": r["v"] for r in rows}


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


# -------------------------------------------------------------------------------------- killer

class Killed(Exception):
    """Raised from a client's on_answer hook after it killed obmend: the exchange stops there."""


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
        lines = [f"", f"==== reliability report: {self.suite} ===="]
        for k, v in self.figures.items():
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
