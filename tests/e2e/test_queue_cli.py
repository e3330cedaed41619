"""`obmenctl queue`, black-box: list (piped, on a terminal, --json), show, retry and drop of items
of the retry queue (obmen.queue) written with psql, and the exit codes: 0 success, 1 failure,
2 usage. The queue's own semantics are tested in queue/queue_pgtest.cpp; this is the admin's view.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import unittest

from harness import EVENT_TIMEOUT, Harness, obmenctl_path

INSERT = ("INSERT INTO obmen.queue (kind, target, payload, idempotency_key, state, attempts, "
          "last_error_class, last_error, next_attempt_at) VALUES ")


class QueueCli(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.h = Harness.for_test(self)
        self.h.create_database()
        self.cfg = self.h.write_config(self.h.config(), name="ctl.yaml")
        rows = self.h.psql(
            INSERT +
            "('export_order', 'moysklad', '{\"order\": 1}', 'moysklad:customerorder:1', 'dead', 20, 'transient', "
            " '503 Service Unavailable (gave up after 20 attempts)', now()),"
            "('export_counterparty', 'moysklad', '{\"inn\": \"7701\"}', NULL, 'dead', 1, 'permanent', "
            " '400: ИНН контрагента неверен', now()),"
            "('export_order', 'onec', '{\"order\": 3}', 'onec:order:3', 'dead', 1, 'permanent', "
            " 'line 1:\tunknown\nproduct', now()),"
            "('export_order', 'moysklad', '{\"order\": 4}', NULL, 'pending', 2, 'transient', 'timeout', "
            " now() + interval '1 hour'),"
            "('export_order', 'moysklad', '{\"order\": 5}', NULL, 'done', 1, NULL, NULL, now()) "
            "RETURNING id")
        self.dead_ms, self.dead_perm, self.dead_onec, self.pending, self.done = (int(r[0]) for r in rows)

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return self.h.ctl("queue", *args, config=self.cfg)

    def ok(self, *args: str) -> subprocess.CompletedProcess:
        r = self.ctl(*args)
        self.assertEqual(r.returncode, 0, f"obmenctl queue {' '.join(args)}:\n{r.stdout}{r.stderr}")
        return r

    def state(self, item_id: int) -> str | None:
        rows = self.h.psql(f"SELECT state FROM obmen.queue WHERE id = {item_id}")
        return rows[0][0] if rows else None

    def on_terminal(self, *args: str, env: dict | None = None, raw: bool = False) -> tuple[int, str]:
        """Runs obmenctl with stdout on a pseudo-terminal; (exit code, what it printed — colour
        codes removed unless raw)."""
        master, slave = pty.openpty()
        argv = [obmenctl_path(), "--config", str(self.cfg), "queue", *args]
        env = env or {k: v for k, v in self.h.env().items() if k not in ("NO_COLOR", "TERM")}
        p = subprocess.Popen(argv, stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             env=env, cwd=str(self.h.dir))
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        code = p.wait(EVENT_TIMEOUT)
        p.stderr.close()
        out = b"".join(chunks).decode("utf-8").replace("\r\n", "\n")
        return code, out if raw else re.sub(r"\x1b\[[0-9;]*m", "", out)

    # -- list

    def test_list_piped_is_one_item_per_line_tab_separated_without_done_items(self):
        r = self.ok("list")
        self.assertEqual(r.stderr, "")
        lines = r.stdout.splitlines()
        self.assertEqual([int(line.split("\t")[0]) for line in lines],
                         [self.dead_ms, self.dead_perm, self.dead_onec, self.pending])
        for line in lines:
            self.assertEqual(len(line.split("\t")), 8, line)
        self.assertEqual(lines[1].split("\t"),
                         [str(self.dead_perm), "dead", "moysklad", "export_counterparty", "1", "-", "-",
                          "permanent: 400: ИНН контрагента неверен"])
        # Tabs and line breaks inside a message do not break the line.
        self.assertEqual(lines[2].split("\t")[7], "permanent: line 1: unknown product")
        pending = lines[3].split("\t")
        self.assertEqual(pending[1:5], ["pending", "moysklad", "export_order", "2"])
        self.assertRegex(pending[5], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_list_filters_by_state_and_target(self):
        ids = lambda r: [int(line.split("\t")[0]) for line in r.stdout.splitlines()]  # noqa: E731
        self.assertEqual(ids(self.ok("list", "--state", "dead")), [self.dead_ms, self.dead_perm, self.dead_onec])
        self.assertEqual(ids(self.ok("list", "--state", "done")), [self.done])
        self.assertEqual(ids(self.ok("list", "--state", "all")),
                         [self.dead_ms, self.dead_perm, self.dead_onec, self.pending, self.done])
        self.assertEqual(ids(self.ok("list", "--state", "pending,done")), [self.pending, self.done])
        self.assertEqual(ids(self.ok("list", "--state", "pending", "--state", "done")), [self.pending, self.done])
        self.assertEqual(ids(self.ok("list", "--target", "onec")), [self.dead_onec])
        self.assertEqual(ids(self.ok("list", "--state", "dead", "--target", "moysklad")),
                         [self.dead_ms, self.dead_perm])
        self.assertEqual(ids(self.ok("list", "--limit", "2")), [self.dead_ms, self.dead_perm])
        self.assertEqual(self.ok("list", "--target", "nowhere").stdout, "")

    def test_list_json(self):
        items = json.loads(self.ok("list", "--state", "all", "--json").stdout)
        self.assertEqual([i["id"] for i in items],
                         [self.dead_ms, self.dead_perm, self.dead_onec, self.pending, self.done])
        first = items[0]
        self.assertEqual(first["state"], "dead")
        self.assertEqual(first["payload"], {"order": 1})
        self.assertEqual(first["idempotency_key"], "moysklad:customerorder:1")
        self.assertEqual(first["attempts"], 20)
        self.assertEqual(first["last_error_class"], "transient")
        self.assertIsNone(first["lease_until"])
        self.assertNotIn("claim_token", first)
        self.assertEqual(items[1]["last_error"], "400: ИНН контрагента неверен")
        self.assertEqual(json.loads(self.ok("list", "--target", "nowhere", "--json").stdout), [])

    def test_list_on_a_terminal_is_aligned_under_a_header_with_the_depth(self):
        code, out = self.on_terminal("list")
        self.assertEqual(code, 0, out)
        lines = out.splitlines()
        header = lines[0]
        self.assertTrue(header.startswith("ID  STATE"), header)
        table = lines[1:5]
        self.assertEqual([int(line.split()[0]) for line in table],
                         [self.dead_ms, self.dead_perm, self.dead_onec, self.pending])
        # Every column starts where its heading does (counted in characters: Cyrillic included).
        for heading in ("STATE", "TARGET", "KIND", "ATTEMPTS", "NEXT ATTEMPT", "KEY", "LAST ERROR"):
            col = header.index(heading)
            for line in table:
                self.assertEqual(line[col - 2:col], "  ", f"{heading}: {line!r}")
                self.assertNotEqual(line[col], " ", f"{heading}: {line!r}")
        self.assertIn("permanent: 400: ИНН контрагента неверен", table[1])
        self.assertEqual(lines[5], "")
        self.assertEqual(lines[6], "queue: pending 1, in_flight 0, done 1, dead 3")

        # States are coloured on a terminal (dead red, pending yellow), not under NO_COLOR or piped.
        code, raw = self.on_terminal("list", raw=True)
        self.assertIn("\x1b[1;31mdead\x1b[0m", raw)
        self.assertIn("\x1b[33mpending\x1b[0m", raw)
        code, raw = self.on_terminal("list", raw=True, env=dict(self.h.env(), NO_COLOR="1"))
        self.assertNotIn("\x1b[", raw)
        self.assertNotIn("\x1b[", self.ok("list").stdout)

        code, out = self.on_terminal("list", "--target", "nowhere")
        self.assertEqual(code, 0, out)
        self.assertEqual(out, "no items\n\nqueue for nowhere: pending 0, in_flight 0, done 0, dead 0\n")

    def test_list_usage_errors_exit_2(self):
        for args in (["list", "--state", "inflight"], ["list", "--limit", "0"], ["list", "--bogus"], []):
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 2, f"{args}: {r.stdout}{r.stderr}")
            self.assertNotEqual(r.stderr, "")
        self.assertIn("inflight not in {pending,in_flight,done,dead,all}",
                      self.ctl("list", "--state", "inflight").stderr)

    def test_help(self):
        r = self.ok("--help")
        for sub in ("list", "show", "retry", "drop"):
            self.assertRegex(r.stdout, rf"\n  {sub} ")
        self.assertIn("--all-dead", self.ok("retry", "--help").stdout)

    # -- show

    def test_show(self):
        r = self.ok("show", str(self.dead_perm))
        self.assertIn("state:            dead\n", r.stdout)
        self.assertIn("last error:       permanent: 400: ИНН контрагента неверен\n", r.stdout)
        self.assertIn("idempotency key:  -\n", r.stdout)
        self.assertTrue(r.stdout.endswith('payload:\n{\n  "inn": "7701"\n}\n'), r.stdout)
        item = json.loads(self.ok("show", str(self.dead_ms), "--json").stdout)
        self.assertEqual(item["id"], self.dead_ms)
        self.assertEqual(item["kind"], "export_order")

        missing = self.ctl("show", "999999")
        self.assertEqual(missing.returncode, 1)
        self.assertEqual(missing.stderr, "obmenctl queue show: no queue item 999999\n")
        self.assertEqual(self.ctl("show", "abc").returncode, 2)
        self.assertEqual(self.ctl("show").returncode, 2)

    # -- retry

    def test_retry_one_dead_item_makes_it_pending_and_due_now(self):
        r = self.ok("retry", str(self.dead_ms))
        self.assertEqual(r.stdout, f"item {self.dead_ms}: pending, due now\n")
        row = self.h.query_json(f"SELECT state, attempts, next_attempt_at <= now() AS due FROM obmen.queue "
                                f"WHERE id = {self.dead_ms}")
        self.assertEqual(row, [{"state": "pending", "attempts": 0, "due": True}])

        again = self.ctl("retry", str(self.dead_ms))
        self.assertEqual(again.returncode, 1)
        self.assertEqual(again.stderr,
                         f"obmenctl queue retry: item {self.dead_ms} is pending; only dead items are retried\n")
        missing = self.ctl("retry", "999999")
        self.assertEqual(missing.returncode, 1)
        self.assertEqual(missing.stderr, "obmenctl queue retry: no queue item 999999\n")

    def test_retry_all_dead_of_a_target(self):
        r = self.ok("retry", "--all-dead", "--target", "moysklad")
        self.assertEqual(r.stdout.splitlines(), [f"item {self.dead_ms}: pending, due now",
                                                 f"item {self.dead_perm}: pending, due now",
                                                 "retried 2 dead item(s) of target moysklad"])
        self.assertEqual(self.state(self.dead_ms), "pending")
        self.assertEqual(self.state(self.dead_perm), "pending")
        self.assertEqual(self.state(self.dead_onec), "dead")
        r = self.ok("retry", "--all-dead")
        self.assertEqual(r.stdout.splitlines(), [f"item {self.dead_onec}: pending, due now",
                                                 "retried 1 dead item(s)"])
        self.assertEqual(self.ok("retry", "--all-dead").stdout, "no dead items\n")
        self.assertEqual(self.h.count("SELECT count(*) FROM obmen.queue WHERE state = 'dead'"), 0)

    def test_retry_of_a_dead_item_with_a_newer_pending_sibling_removes_it(self):
        newer = int(self.h.psql(INSERT + "('export_order', 'moysklad', '{\"order\": 1, \"v\": 2}', "
                                "'moysklad:customerorder:1', 'pending', 3, NULL, NULL, now() + interval '1 hour') "
                                "RETURNING id")[0][0])
        r = self.ok("retry", str(self.dead_ms))
        self.assertIn(f"item {self.dead_ms}: superseded by newer item {newer}", r.stdout)
        self.assertIsNone(self.state(self.dead_ms))
        self.assertEqual(self.h.query_json(f"SELECT attempts, next_attempt_at <= now() AS due FROM obmen.queue "
                                           f"WHERE id = {newer}"), [{"attempts": 0, "due": True}])

    def test_retry_usage_errors_exit_2(self):
        for args in (["retry"], ["retry", str(self.dead_ms), "--all-dead"], ["retry", "--target", "moysklad"],
                     ["retry", "x"]):
            r = self.ctl(*args)
            self.assertEqual(r.returncode, 2, f"{args}: {r.stdout}{r.stderr}")
        self.assertEqual(self.ctl("retry").stderr,
                         "obmenctl queue retry: give an item ID or --all-dead\nRun with --help for more information.\n")
        self.assertEqual(self.state(self.dead_ms), "dead")

    # -- drop

    def test_drop_removes_dead_and_pending_items_only(self):
        self.assertEqual(self.ok("drop", str(self.dead_perm)).stdout, f"dropped item {self.dead_perm}\n")
        self.assertEqual(self.ok("drop", str(self.pending)).stdout, f"dropped item {self.pending}\n")
        self.assertIsNone(self.state(self.dead_perm))
        self.assertIsNone(self.state(self.pending))

        done = self.ctl("drop", str(self.done))
        self.assertEqual(done.returncode, 1)
        self.assertEqual(done.stderr,
                         f"obmenctl queue drop: item {self.done} is done; only pending or dead items are dropped\n")
        self.assertEqual(self.state(self.done), "done")
        in_flight = int(self.h.psql(INSERT + "('export_order', 'moysklad', '{}', NULL, 'in_flight', 1, NULL, NULL, "
                                    "now()) RETURNING id")[0][0])
        self.assertEqual(self.ctl("drop", str(in_flight)).returncode, 1)
        self.assertEqual(self.state(in_flight), "in_flight")
        missing = self.ctl("drop", str(self.dead_perm))
        self.assertEqual(missing.returncode, 1)
        self.assertEqual(missing.stderr, f"obmenctl queue drop: no queue item {self.dead_perm}\n")
        self.assertEqual(self.ctl("drop").returncode, 2)

    # -- database

    def test_an_unmigrated_database_is_a_failure_that_says_what_to_do(self):
        h = Harness.for_test(self)
        h.create_database(migrate=False)
        cfg = h.write_config(h.config(), name="ctl.yaml")
        r = h.ctl("queue", "list", config=cfg)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("run 'obmenctl migrate'", r.stderr)


if __name__ == "__main__":
    unittest.main()
