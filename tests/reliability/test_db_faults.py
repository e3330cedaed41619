"""Database faults, black-box: the test database's connections cut (pg_terminate_backend, what a
PostgreSQL restart does to obmend) or the database made unreachable (ALLOW_CONNECTIONS false +
terminate) in the middle of 1C exchanges and of a resync job. Only the test database is touched:
other tests share the cluster.

* ImportUnderConnectionLoss — per round a changed catalog package (faults.package), cleanly through
  a twin obmend first for the expected states; then 1C sends it to the obmend under test and every
  connection obmend holds is terminated at a random point (a random delay, after a random
  acknowledged chunk, while a file is imported, before deactivate). Every answer 1C gets must be
  a clear protocol answer (HTTP 200 and success / progress / failure with a reason — not an HTTP
  500, not a dropped connection: *unclear_answers*); the portal after the faulted attempt is a
  state before or after a whole file (*half_applied*); 1C retries as it does (from checkauth)
  and the portal ends as the twin's (*lost*; a doubled row shows in the digest as well).
* DatabaseOutage — the database is unreachable while an import runs: /healthz answers 503 with
  the reason on every call while it is, and 200 again after; 1C gets clear failures meanwhile;
  once it is back the retried exchange completes and the portal is the twin's.
* ResyncUnderConnectionLoss — a catalog resync (obmenctl resync) re-applies the last package
  over a portal whose prices and names were damaged; the connections are cut while the job runs.
  The job must end (done or failed with a reason, never left running), the portal be a state
  before or after a whole file, and a second resync restore the package's state exactly.

There is no queue drain in obmend yet (the МойСклад adapter that will drain obmen.queue is a
skeleton), so no queue fault is injected; docs/reliability.md says so.

Rounds: OBMEN_DB_FAULT_ROUNDS, else OBMEN_CRASH_ROUNDS (default 100; CTest runs fewer); seed
OBMEN_CRASH_SEED. The report is printed at the end and written to
$OBMEN_REPORT_DIR/reliability_db_faults.json when set.
"""

from __future__ import annotations

import os
import threading
import time
import unittest

from faults import (CONNECTION_ERRORS, FaultHarness, Report, catalog_state, chunk_count, digest, filename_of, healthz,
                    make_rng, package, poll, rounds, run_package, state_diff, tail)

from harness import Harness  # noqa: E402  (tests/e2e, put on sys.path by faults)
from onec_client import Answer, OneCClient  # noqa: E402

REPORT = Report("db_faults")
CONFIG = {"file_limit": "16KiB", "zip": True}
# 1C runs the exchange again at its next schedule. After the connections were cut, each of
# obmend's pooled connections (database.pool_size = 4, import workers 1) fails the first task it
# gets — common/worker_pool.cpp notices a dead connection only by using it — so up to five
# exchanges in a row may fail (clearly) before one completes: reported as retries_until_success.
MAX_RETRIES = 8
RECOVERY_TIMEOUT = 60.0


def tearDownModule():
    REPORT.emit()


def fault_rounds(default: int = 100) -> int:
    value = os.environ.get("OBMEN_DB_FAULT_ROUNDS")
    return max(1, int(value)) if value else rounds(default)


def clear(a: Answer) -> bool:
    """A protocol answer 1C can act on: HTTP 200 with success / progress / a failure that gives
    its reason, or init's zip=… lines."""
    if a.http_status != 200:
        return False
    if a.status == "failure":
        return bool(a.message.strip())
    return a.status in ("success", "progress") or a.status.startswith("zip=")


class FaultTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.h = FaultHarness.for_test(self)
        self.twin = FaultHarness.for_test(self)
        self.h.create_database()
        self.twin.create_database()
        self.d = self.h.start_daemon(self.h.config(**CONFIG))
        self.twin_d = self.twin.start_daemon(self.twin.config(**CONFIG))
        self.rng, self.seed = make_rng(type(self).__name__)
        REPORT.set("seed", self.seed)

    def expected(self, v: int, use_zip: bool):
        files = package(v)
        states, timing = run_package(self.twin_d, self.twin, files, None if use_zip else False)
        self.assertTrue(states, f"twin exchange failed:\n{timing.get('failed')}")
        return files, states, timing

    def attempt(self, files, use_zip, hook=None) -> tuple[bool, list[Answer], str]:
        """One exchange as 1C runs it: (completed, answers, how it ended)."""
        c = OneCClient(self.d.url(), Harness.USER, Harness.PASSWORD, on_answer=hook, timeout=60)
        try:
            r = c.exchange(files, use_zip=None if use_zip else False)
            how = "completed" if r.ok else f"stopped at {r.failed.describe()}"
            return r.ok, c.answers, how
        except CONNECTION_ERRORS as e:
            return False, c.answers, f"connection lost ({type(e).__name__}: {e})"
        finally:
            c.close()

    def count_answers(self, answers: list[Answer], how: str, where: str) -> None:
        for a in answers:
            REPORT.add("answers_checked")
            if a.status == "failure" and a.http_status == 200:
                REPORT.add("clear_failures")
            if not clear(a):
                REPORT.violation("unclear_answers", f"{where}: {a.describe()[:400]}\n{tail(self.d.log_path, 1500)}")
        if how.startswith("connection lost"):
            REPORT.violation("unclear_answers", f"{where}: {how}\n{tail(self.d.log_path, 1500)}")

    def retry_until_done(self, files, use_zip, where: str) -> int:
        """1C's next exchanges until one completes; returns how many it took."""
        for n in range(1, MAX_RETRIES + 1):
            ok, answers, how = self.attempt(files, use_zip)
            self.count_answers(answers, how, f"{where}, retry {n}")
            if ok:
                REPORT.tally("retries_until_success", str(n))
                return n
        REPORT.violation("lost", f"{where}: no retry completed in {MAX_RETRIES}: {how}\n{self.d.log_excerpt(4000)}")
        return 0

    def check_between(self, states, where: str) -> None:
        got = catalog_state(self.h)
        allowed = {}
        for step, s in states:
            allowed.setdefault(digest(s), step)
        if digest(got) in allowed:
            REPORT.tally("states_after_fault", allowed[digest(got)])
            return
        nearest = min(states, key=lambda s: len(set(s[1].items()) ^ set(got.items())))
        REPORT.violation("half_applied", f"{where}: the portal is none of the states before/after a whole file; "
                                         f"nearest '{nearest[0]}':\n{state_diff(got, nearest[1])}")

    def check_final(self, states, where: str) -> bool:
        got = catalog_state(self.h)
        if digest(got) != digest(states[-1][1]):
            REPORT.violation("lost", f"{where}: the portal is not the package's final state:\n"
                                     f"{state_diff(got, states[-1][1])}\n{self.d.log_excerpt(4000)}")
            return False
        return True


class ImportUnderConnectionLoss(FaultTestCase):

    def test_exchanges_survive_terminated_connections(self):
        n = fault_rounds()
        REPORT.set("import_rounds", n)
        rng = self.rng
        for rnd in range(1, n + 1):
            use_zip = rng.random() < 0.5
            files, states, timing = self.expected(rnd, use_zip)
            kind = rng.choice(["delay", "after_chunk", "during_import", "before_deactivate"])
            REPORT.tally("import_fault_points", kind)
            target_file = rng.choice([name for name, _ in files])
            chunk_target = rng.randint(1, chunk_count(files, use_zip))
            fired = threading.Event()
            timers: list[threading.Timer] = []
            cut: list[int] = []

            def fault(why: str) -> None:
                if not fired.is_set():
                    fired.set()
                    cut.extend(self.h.terminate_backends())
                    REPORT.add("connections_terminated", len(cut))

            def arm(delay: float) -> None:
                if not timers and not fired.is_set():
                    t = threading.Timer(delay, fault, args=(f"after {delay * 1000:.0f} ms",))
                    t.daemon = True
                    timers.append(t)
                    t.start()

            chunks = [0]

            def hook(a: Answer) -> None:
                if a.step == "file" and a.ok:
                    chunks[0] += 1
                    if kind == "after_chunk" and chunks[0] == chunk_target:
                        fault("after a chunk")
                if a.step == "import" and filename_of(a.target) == target_file:
                    if kind == "during_import" and a.status == "progress":
                        arm(rng.uniform(0, timing["import"].get(target_file, 0.2)))
                if kind == "before_deactivate" and a.step == "import" and a.ok and filename_of(a.target) == files[-1][0]:
                    fault("before deactivate")

            if kind == "delay":
                arm(rng.uniform(0, timing["total"]))
            ok, answers, how = self.attempt(files, use_zip, hook)
            for t in timers:
                t.cancel()
                t.join()
            if not fired.is_set():
                fault("after the exchange")       # the connections are cut anyway: the retry meets it
            where = f"round {rnd} (seed {self.seed}, {'zip' if use_zip else 'plain'}, fault {kind}, client: {how})"
            self.count_answers(answers, how, where)
            REPORT.add("faulted_exchanges_completed" if ok else "faulted_exchanges_failed")
            # Whatever the server still finishes of the broken transactions, it cannot commit them.
            self.h.wait_backends_gone(cut)
            self.check_between(states, where)
            if not ok and not self.retry_until_done(files, use_zip, where):
                break
            if not self.check_final(states, where):
                break
            REPORT.add("import_faults_survived")
        self.assertEqual(REPORT.figures.get("import_faults_survived", 0), n, "\n".join(REPORT.violations))
        self.assertFalse(REPORT.figures.get("unclear_answers"), "\n".join(REPORT.violations))
        self.assertEqual(REPORT.figures["lost"] + REPORT.figures["half_applied"], 0, "\n".join(REPORT.violations))


class DatabaseOutage(FaultTestCase):

    def test_healthz_tells_the_truth_and_exchanges_resume(self):
        n = max(1, fault_rounds() // 10)
        REPORT.set("outage_rounds", n)
        for rnd in range(1, n + 1):
            use_zip = self.rng.random() < 0.5
            files, states, timing = self.expected(1000 + rnd, use_zip)
            status, body = healthz(self.d)
            self.assertEqual((status, body.get("database")), (200, "ok"), f"healthz before the outage: {body}")
            down = threading.Event()

            def hook(a: Answer) -> None:
                # The outage begins as soon as the first file's import is under way.
                if a.step == "import" and a.status == "progress" and not down.is_set():
                    down.set()
                    self.h.block_connections(True)
                    REPORT.add("connections_terminated", len(self.h.terminate_backends()))

            ok, answers, how = self.attempt(files, use_zip, hook)
            where = f"outage {rnd} (seed {self.seed}, client: {how})"
            self.assertTrue(down.is_set(), f"{where}: the import never reported progress")
            try:
                self.count_answers(answers, how, where)
                self.assertFalse(ok, f"{where}: the exchange completed although the database was down")
                # /healthz tells the truth: 503 with a reason once the connections are gone, on every call.
                poll(lambda: healthz(self.d)[0] == 503, RECOVERY_TIMEOUT, "/healthz to report the database down")
                for _ in range(5):
                    status, body = healthz(self.d)
                    REPORT.add("healthz_checked_while_down")
                    if status != 503 or body.get("status") != "unavailable" or body.get("database") == "ok":
                        REPORT.violation("healthz_lied", f"{where}: /healthz while the database is down: {status} {body}")
                # 1C meanwhile: clear failures.
                ok2, answers2, how2 = self.attempt(files, use_zip)
                self.assertFalse(ok2, f"{where}: an exchange completed while the database was down")
                self.count_answers(answers2, how2, f"{where}, exchange during the outage")
            finally:
                self.h.block_connections(False)
            poll(lambda: healthz(self.d)[0] == 200, RECOVERY_TIMEOUT, "/healthz to report the database back")
            status, body = healthz(self.d)
            if status != 200 or body.get("database") != "ok":
                REPORT.violation("healthz_lied", f"{where}: /healthz after the outage: {status} {body}")
            self.check_between(states, where)
            if not self.retry_until_done(files, use_zip, where) or not self.check_final(states, where):
                break
            REPORT.add("outages_survived")
        self.assertEqual(REPORT.figures.get("outages_survived", 0), n, "\n".join(REPORT.violations))
        self.assertFalse(REPORT.figures.get("healthz_lied"), "\n".join(REPORT.violations))
        self.assertFalse(REPORT.figures.get("unclear_answers"), "\n".join(REPORT.violations))


class ResyncUnderConnectionLoss(FaultTestCase):

    def damage(self) -> None:
        """What the resync repairs: prices and product names changed behind obmen's back — the way
        schema.md allows (whoever changes an imported row clears its content_hash, when the schema
        has one)."""
        hashed = self.h.count("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'portal' "
                              "AND table_name = 'offers' AND column_name = 'content_hash'")
        forget = ", content_hash = NULL" if hashed else ""
        self.h.psql("BEGIN; UPDATE portal.prices SET value = value + 1000 WHERE offer_id IN "
                    "(SELECT id FROM portal.offers WHERE source = 'onec'); "
                    f"UPDATE portal.products SET name = name || ' (damaged)'{forget} WHERE source = 'onec'; "
                    + (f"UPDATE portal.offers SET content_hash = NULL WHERE source = 'onec'; " if hashed else "")
                    + "COMMIT;")

    def resync(self) -> int:
        r = self.h.ctl("resync", "--source", "onec", "--entity", "catalog", config=self.d.config_path)
        self.assertEqual(r.returncode, 0, f"obmenctl resync: {r.stdout}{r.stderr}")
        return int(self.h.scalar("SELECT max(id) FROM obmen.jobs"))

    def job_state(self, job: int) -> tuple[str, str]:
        row = self.h.psql(f"SELECT state, coalesce(error, '') FROM obmen.jobs WHERE id = {job}")[0]
        return row[0], row[1]

    def wait_job(self, job: int) -> tuple[str, str]:
        """Until the job ends. A job whose control connection was cut is settled by the runner's
        next wake-up (its listener reconnects at once and wakes it)."""
        poll(lambda: self.job_state(job)[0] in ("done", "failed", "cancelled"), RECOVERY_TIMEOUT * 2,
             f"job {job} to end")
        return self.job_state(job)

    def test_resync_survives_terminated_connections(self):
        n = max(1, fault_rounds() // 5)
        REPORT.set("resync_rounds", n)
        files, states, _ = self.expected(1, False)
        ok, answers, how = self.attempt(files, False)
        self.assertTrue(ok, how)
        final = states[-1][1]
        self.damage()
        damaged = catalog_state(self.h)
        # What a resync may leave: damaged, import re-applied, both files re-applied (=final).
        started = time.monotonic()
        job = self.resync()
        state, error = self.wait_job(job)
        self.assertEqual(state, "done", error)
        duration = time.monotonic() - started
        self.assertEqual(digest(catalog_state(self.h)), digest(final), "a clean resync restores the package")
        for rnd in range(1, n + 1):
            self.damage()
            damaged = catalog_state(self.h)
            job = self.resync()
            poll(lambda: self.job_state(job)[0] != "queued", RECOVERY_TIMEOUT, f"job {job} to start")
            # The fault: a random moment of the run (the job may have finished already).
            deadline = time.monotonic() + self.rng.uniform(0, duration)
            while time.monotonic() < deadline and self.job_state(job)[0] == "running":
                pass
            cut = self.h.terminate_backends()
            REPORT.add("connections_terminated", len(cut))
            self.h.wait_backends_gone(cut)
            state, error = self.wait_job(job)
            REPORT.tally("resync_jobs_after_fault", state)
            where = f"resync {rnd} (seed {self.seed}, job {job} {state}: {error[:200]})"
            if state == "failed" and not error.strip():
                REPORT.violation("unclear_answers", f"{where}: failed without a reason")
            got = catalog_state(self.h)
            after_import = None  # the import file alone re-applied: names repaired, prices not yet
            allowed = {digest(damaged): "damaged", digest(final): "restored"}
            if digest(got) not in allowed:
                after_import = {k: (final[k] if k.startswith("product|") else v) for k, v in damaged.items()}
                allowed[digest(after_import)] = "import re-applied"
            if digest(got) in allowed:
                REPORT.tally("states_after_fault", allowed[digest(got)])
            else:
                REPORT.violation("half_applied", f"{where}: the portal is neither damaged, nor repaired by whole "
                                                 f"files:\n{state_diff(got, final)}\n{self.d.log_excerpt(4000)}")
            if state != "done":
                # Requested again, as an admin would; the runner's data connection may be a stale
                # one that fails once more (see MAX_RETRIES).
                for attempt in range(1, 4):
                    state2, error2 = self.wait_job(self.resync())
                    if state2 == "done":
                        REPORT.tally("resync_requests_until_done", str(attempt))
                        break
                else:
                    REPORT.violation("lost", f"{where}: three resyncs after the fault ended {state2}: {error2}")
                    break
            if not self.check_final(states, where):
                break
            REPORT.add("resync_faults_survived")
        self.assertEqual(REPORT.figures.get("resync_faults_survived", 0), n, "\n".join(REPORT.violations))
        self.assertEqual(REPORT.figures["lost"] + REPORT.figures["half_applied"], 0, "\n".join(REPORT.violations))


if __name__ == "__main__":
    unittest.main()
