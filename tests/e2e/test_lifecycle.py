"""Daemon lifecycle, black-box: the real obmend under a fake systemd (NOTIFY_SOCKET).

READY only after listening and the schema check (with X_OBMEN_LISTEN telling the port), /healthz,
SIGHUP → RELOADING then READY (a broken config is reported and the old one kept), SIGTERM →
STOPPING and exit 0, refusal to run on an unmigrated database, and `obmenctl check` reporting every
problem of a config with file:line:col.
"""

import json
import re
import signal
import unittest

from harness import Harness
from onec_client import OneCClient


class Lifecycle(unittest.TestCase):
    def setUp(self):
        self.h = Harness.for_test(self)

    def start(self, **kw):
        self.h.create_database()
        return self.h.start_daemon(self.h.config(**kw))

    def healthz(self, d):
        status, headers, body = d.http("GET", "/healthz")
        return status, headers, body

    def assert_healthy(self, d):
        status, headers, body = self.healthz(d)
        self.assertEqual(status, 200, f"/healthz: {body!r}\n{d.log_excerpt()}")
        self.assertIn("json", headers.get("content-type", ""), headers)
        doc = json.loads(body)
        self.assertEqual(doc.get("status"), "ok", doc)
        return doc

    def init_answer(self, d):
        with OneCClient(d.url(), self.h.USER, self.h.password) as c:
            a = c.checkauth()
            self.assertEqual(a.status, "success", a.describe() + "\n" + d.log_excerpt())
            a = c.init()
            self.assertEqual(a.http_status, 200, a.describe())
            return a, c.session

    # ------------------------------------------------------------------------------------ start

    def test_ready_notification_and_healthz(self):
        d = self.start()
        ready = d.ready
        self.assertTrue(ready.get("STATUS"), f"READY should carry a STATUS=: {ready!r}")
        listen = ready.get("X_OBMEN_LISTEN")
        self.assertRegex(listen, r"^127\.0\.0\.1:[1-9][0-9]*$")
        # Nothing before READY claims to be stopping or reloading.
        self.assertFalse([m for m in d.notify.messages[:ready.index]
                          if m.get("STOPPING") or m.get("RELOADING")], d.notify.messages)
        self.assert_healthy(d)
        # Not found is a plain 404, not a crash.
        status, _, _ = d.http("GET", "/no-such-path")
        self.assertEqual(status, 404)
        self.assert_healthy(d)

    def test_healthz_503_when_database_is_gone(self):
        d = self.start()
        self.assert_healthy(d)
        self.h.drop_database()  # WITH (FORCE): terminates obmend's connections
        status, headers, body = self.healthz(d)
        self.assertEqual(status, 503, f"/healthz after the database was dropped: {body!r}\n{d.log_excerpt()}")
        # The daemon itself stays up: it reports, it does not crash.
        self.assertIsNone(d.proc.poll(), d.log_excerpt())

    # ----------------------------------------------------------------------------------- reload

    def test_sighup_with_broken_config_keeps_old_config(self):
        d = self.start(file_limit="64KiB")
        good = d.config_path.read_text(encoding="utf-8")
        # An unknown key (with a typo worth a "did you mean") and a value out of range.
        broken = good.replace("file_limit: \"64KiB\"", "file_limt: \"128KiB\"").replace("keep_days: 7",
                                                                                          "keep_days: -5")
        self.assertNotEqual(broken, good)
        d.config_path.write_text(broken, encoding="utf-8")
        reloading, ready = d.reload()
        status = ready.get("STATUS") or ""
        self.assertIn("reload failed", status.lower(), f"STATUS after a failed reload: {ready!r}")
        log = d.log()
        self.assertRegex(log.lower(), r"reload failed", d.log_excerpt())
        # …and why: the file, the position and key path of each problem.
        self.assertRegex(log, r"obmen\.yaml:\d+:\d+: sources\.onec(\.file_limt)?: .*file_limt", d.log_excerpt())
        self.assertRegex(log, r"obmen\.yaml:\d+:\d+: spool\.keep_days: ", d.log_excerpt())
        self.assertRegex(log, r"obmen\.yaml:\d+:\d+", d.log_excerpt())
        self.assertIsNone(d.proc.poll(), d.log_excerpt())
        self.assert_healthy(d)
        # The old configuration is still in force.
        answer, session = self.init_answer(d)
        self.assertEqual(session.file_limit, 64 * 1024, answer.describe())

    def test_sighup_with_valid_changed_config_applies_it(self):
        d = self.start(file_limit="64KiB", zip=True)
        answer, session = self.init_answer(d)
        self.assertEqual((session.zip, session.file_limit), (True, 64 * 1024), answer.describe())
        d.config_path.write_text(
            d.config_path.read_text(encoding="utf-8")
            .replace("file_limit: \"64KiB\"", "file_limit: \"128KiB\"")
            .replace("zip: true", "zip: false"), encoding="utf-8")
        reloading, ready = d.reload()
        self.assertNotIn("reload failed", (ready.get("STATUS") or "").lower(), ready)
        self.assert_healthy(d)
        answer, session = self.init_answer(d)
        self.assertEqual((session.zip, session.file_limit), (False, 128 * 1024),
                         answer.describe() + "\n" + d.log_excerpt())
        # A second reload of the same file is harmless.
        d.reload()
        self.assert_healthy(d)

    # ------------------------------------------------------------------------------------- stop

    def test_sigterm_sends_stopping_and_exits_0(self):
        d = self.start()
        self.assert_healthy(d)
        stopping, code = d.terminate()
        self.assertIsNotNone(stopping, f"no STOPPING=1 before exit: {d.notify.messages!r}\n{d.log_excerpt()}")
        self.assertEqual(code, 0, d.log_excerpt())

    def test_sigterm_while_an_exchange_session_is_open(self):
        d = self.start()
        with OneCClient(d.url(), self.h.USER, self.h.password) as c:
            self.assertEqual(c.checkauth().status, "success")
            c.init()
            self.assertTrue(c.upload("import0_1.xml", b"<?xml version=\"1.0\"?>\n<partial")[0].ok)
        stopping, code = d.terminate()
        self.assertIsNotNone(stopping, d.log_excerpt())
        self.assertEqual(code, 0, d.log_excerpt())

    # ----------------------------------------------------------------------- refusing to start

    def test_refuses_unmigrated_database(self):
        self.h.create_database(migrate=False)
        d = self.h.start_daemon(self.h.config(), wait_ready=False)
        code = d.wait_exit()
        self.assertNotEqual(code, 0, d.log_excerpt())
        self.assertFalse([m for m in d.notify.messages if m.get("READY") == "1"],
                         f"READY sent although the schema is missing: {d.notify.messages!r}")
        self.assertIn("obmenctl migrate", d.log(), d.log_excerpt())

    def test_refuses_config_with_problems(self):
        self.h.create_database()
        d = self.h.start_daemon(self.h.config(file_limit="lots"), wait_ready=False)
        code = d.wait_exit()
        self.assertNotEqual(code, 0, d.log_excerpt())
        self.assertIn("sources.onec.file_limit", d.log(), d.log_excerpt())

    # ---------------------------------------------------------------------------- obmenctl check

    def test_check_reports_every_problem_with_position(self):
        self.h.create_database(migrate=False)
        text = (
            "database:\n"                                   # 1
            f"  url: {self.h.database_url}\n"               # 2
            "htpp:\n"                                       # 3  unknown key, did you mean http
            "  port: 8080\n"                                # 4
            "spool:\n"                                      # 5
            "  dir: spool\n"                                # 6
            "  keep_days: -3\n"                             # 7  out of range
            "sources:\n"                                    # 8
            "  onec:\n"                                     # 9
            "    type: onec\n"                              # 10
            "    username: site\n"                          # 11
            "    password: { env: OBMEN_ONEC_PASSWORD }\n"  # 12
            "    file_limit: lots\n"                        # 13 not a size
        )
        path = self.h.write_config(text, name="broken.yaml")
        r = self.h.ctl("check", config=path)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        problems = {}
        for line in out.splitlines():
            # file:line:col: key.path: message — an unknown key at the top level has no parent path.
            m = re.match(r"^(?P<file>.*broken\.yaml):(?P<line>\d+):(?P<col>\d+): "
                         r"(?:(?P<path>[A-Za-z0-9_.\-]+): )?(?P<msg>.+)$", line)
            if m:
                problems[int(m["line"])] = m
        self.assertEqual(sorted(problems), [3, 7, 13], f"expected problems on lines 3, 7 and 13:\n{out}")
        self.assertIn("htpp", (problems[3]["path"] or "") + problems[3]["msg"], out)
        self.assertIn("http", problems[3]["msg"], f"no 'did you mean http':\n{out}")
        self.assertEqual(problems[7]["path"], "spool.keep_days", out)
        self.assertEqual(problems[13]["path"], "sources.onec.file_limit", out)
        for m in problems.values():
            self.assertGreaterEqual(int(m["col"]), 1, out)

    def test_check_accepts_a_valid_config(self):
        self.h.create_database(migrate=False)
        path = self.h.write_config(self.h.config())
        r = self.h.ctl("check", config=path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
