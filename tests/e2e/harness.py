"""Black-box harness: a throw-away database, a config directory and the real obmend.

Each test gets a :class:`Harness` (``Harness.for_test(self)``) that

* creates a uniquely named database from ``OBMEN_TEST_DATABASE_URL`` (an admin DSN that may
  CREATE DATABASE) and drops it at the end (``WITH (FORCE)``);
* writes ``obmen.yaml`` into a temporary directory (the spool lives there too);
* runs ``obmenctl --config … migrate``;
* starts ``obmend`` with ``NOTIFY_SOCKET`` bound to a datagram socket the harness reads: the
  READY / RELOADING / STOPPING datagrams are the synchronisation events (never sleeps), the port
  comes from ``X_OBMEN_LISTEN=127.0.0.1:<port>`` in the READY datagram;
* captures the daemon's output in a log file, printed when the test failed;
* offers ``psql(query)`` / ``query_json(query)`` on the test database.

Binaries come from ``OBMEND`` and ``OBMENCTL`` (CTest sets them); when unset, the usual build
directories of the source tree are tried. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Callable

SOURCE_DIR = Path(__file__).resolve().parents[2]
# Every wait has a deadline; slow machines or sanitizer builds may scale them.
TIMEOUT_SCALE = float(os.environ.get("OBMEN_E2E_TIMEOUT_SCALE", "1"))
START_TIMEOUT = 30.0 * TIMEOUT_SCALE
EVENT_TIMEOUT = 30.0 * TIMEOUT_SCALE
EXIT_TIMEOUT = 30.0 * TIMEOUT_SCALE


def reference_dir() -> Path:
    return Path(os.environ.get("OBMEN_REFERENCE_DIR", str(SOURCE_DIR.parent / "shared" / "reference")))


def samples_dir() -> Path:
    return reference_dir() / "commerceml" / "samples"


def _find_binary(env: str, *relative: str) -> str:
    value = os.environ.get(env)
    if value:
        return value
    for build in ("build-e2e", "build"):
        candidate = SOURCE_DIR / build / Path(*relative)
        if candidate.exists():
            return str(candidate)
    raise RuntimeError(f"{env} is not set and {Path(*relative)} was not found under {SOURCE_DIR}/build*; "
                       f"build obmen and set {env}")


def obmend_path() -> str:
    return _find_binary("OBMEND", "daemon", "obmend")


def obmenctl_path() -> str:
    return _find_binary("OBMENCTL", "ctl", "obmenctl")


def admin_database_url() -> str:
    # Same rule as the pg tier (tests/support/test_database.cpp).
    url = os.environ.get("OBMEN_TEST_DATABASE_URL") or os.environ.get("OBMEN_DATABASE_URL")
    if not url:
        raise RuntimeError("e2e tests need a PostgreSQL admin DSN that may CREATE DATABASE: set "
                           "OBMEN_TEST_DATABASE_URL, e.g. postgresql://obmen@127.0.0.1:55432/obmen")
    return url


def with_database(url: str, name: str) -> str:
    """The same DSN pointing at another database (URI form only)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise RuntimeError(f"OBMEN_TEST_DATABASE_URL must be a postgresql:// URI, got {url!r}")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


# ------------------------------------------------------------------------------------------ YAML

def to_yaml(value: Any, indent: int = 0) -> str:
    """A small block-style YAML emitter for config dicts: strings double-quoted (JSON escapes are
    valid YAML), ints and bools bare. Good enough for obmen.yaml; not a general YAML writer."""
    pad = "  " * indent
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if isinstance(v, dict) and v:
                out.append(f"{pad}{k}:\n{to_yaml(v, indent + 1)}")
            elif isinstance(v, list) and v:
                out.append(f"{pad}{k}:\n{to_yaml(v, indent + 1)}")
            else:
                out.append(f"{pad}{k}: {_scalar(v)}")
        return "\n".join(out) + ("\n" if indent == 0 else "")
    if isinstance(value, list):
        return "\n".join(f"{pad}- {_scalar(v)}" for v in value)
    return pad + _scalar(value)


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, dict):
        return "{}" if not v else "{ " + ", ".join(f"{k}: {_scalar(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if v is None:
        return "null"
    return json.dumps(str(v), ensure_ascii=False)


def deep_merge(base: dict, override: dict) -> dict:
    """override's keys replace base's; a value None deletes the key; nested dicts merge."""
    out = dict(base)
    for k, v in override.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# ------------------------------------------------------------------------------- sd_notify socket

class Notification:
    """One sd_notify datagram: ``fields`` maps KEY → value (last wins), ``raw`` is the text."""

    def __init__(self, raw: str, index: int):
        self.raw, self.index = raw, index
        self.fields: dict[str, str] = {}
        for line in raw.split("\n"):
            key, sep, value = line.partition("=")
            if sep:
                self.fields[key] = value

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.fields.get(key, default)

    def __repr__(self) -> str:
        return f"Notification#{self.index}({self.raw!r})"


class NotifySocket:
    """A bound AF_UNIX datagram socket (what systemd gives a Type=notify service), read by a thread.
    ``wait(pred)`` blocks on a condition variable until a matching datagram arrives, the watched
    process exits, or the deadline passes."""

    def __init__(self, path: str):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages: list[Notification] = []
        self.cond = threading.Condition()
        self.process_exited = False
        self._closing = False
        self._flushed = b""
        self._thread = threading.Thread(target=self._read, name="notify-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            with self.cond:
                if self._closing:
                    break
                if data.startswith(b"X_HARNESS_FLUSH="):
                    self._flushed = data
                    self.cond.notify_all()
                    continue
                self.messages.append(Notification(data.decode("utf-8", errors="replace"), len(self.messages)))
                self.cond.notify_all()

    def flush(self, timeout: float = EVENT_TIMEOUT) -> None:
        """Returns once every datagram sent before this call has been read: a marker datagram of
        our own is queued behind them (a unix datagram socket keeps order) and waited for."""
        token = f"X_HARNESS_FLUSH={time.monotonic_ns()}".encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(token, self.path)
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._flushed != token:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("notify socket reader is stuck")
                self.cond.wait(left)

    def mark_exited(self) -> None:
        with self.cond:
            self.process_exited = True
            self.cond.notify_all()

    def wait(self, pred: Callable[[Notification], bool], *, after: int = 0, timeout: float = EVENT_TIMEOUT,
             stop_on_exit: bool = True) -> Notification | None:
        """First message with index ≥ after matching pred; None on timeout or process exit."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages[after:]:
                    if pred(m):
                        return m
                if stop_on_exit and self.process_exited:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self) -> None:
        with self.cond:
            self._closing = True
        try:   # wake the reader with a datagram of our own
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(b"", self.path)
        except OSError:
            pass
        self._thread.join(5)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


# ----------------------------------------------------------------------------------------- daemon

class DaemonError(AssertionError):
    pass


class Daemon:
    """A running obmend. Use Harness.start_daemon()."""

    def __init__(self, harness: "Harness", config_path: Path, env: dict[str, str], args: list[str], name: str):
        self.harness = harness
        self.config_path = config_path
        self.name = name
        self.log_path = harness.dir / f"{name}.log"
        self.notify = NotifySocket(str(harness.dir / f"{name}.notify"))
        env = dict(env)
        env["NOTIFY_SOCKET"] = self.notify.path
        self._log_file = open(self.log_path, "wb")
        self.argv = [obmend_path(), "--config", str(config_path), *args]
        self.proc = subprocess.Popen(self.argv, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=str(harness.dir))
        self._waiter = threading.Thread(target=self._wait_exit, name="obmend-waiter", daemon=True)
        self._waiter.start()
        self.ready: Notification | None = None
        self.port: int | None = None

    def _wait_exit(self) -> None:
        self.proc.wait()
        self.notify.flush()      # whatever it sent before exiting is in messages now
        self.notify.mark_exited()

    # -- events

    def wait_event(self, key: str, value: str = "1", *, after: int = 0, timeout: float = EVENT_TIMEOUT) -> Notification:
        msg = self.notify.wait(lambda m: m.get(key) == value, after=after, timeout=timeout)
        if msg is None:
            why = f"exited with code {self.proc.returncode}" if self.proc.poll() is not None else \
                f"no {key}={value} within {timeout:.0f}s"
            raise DaemonError(f"obmend {why}; notifications: {self.notify.messages!r}\n{self.log_excerpt()}")
        return msg

    def mark(self) -> int:
        """Index to pass as ``after=`` to wait for notifications sent from now on."""
        with self.notify.cond:
            return len(self.notify.messages)

    def wait_ready(self, *, after: int = 0, timeout: float = START_TIMEOUT) -> Notification:
        msg = self.wait_event("READY", after=after, timeout=timeout)
        listen = msg.get("X_OBMEN_LISTEN")
        if listen:
            host, _, port = listen.rpartition(":")
            self.port = int(port)
        if self.port is None:
            raise DaemonError(f"READY without X_OBMEN_LISTEN=<host>:<port>: {msg!r}\n{self.log_excerpt()}")
        self.ready = msg
        return msg

    # -- addresses

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/1c_exchange") -> str:
        return self.base_url + path

    def http(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
             timeout: float = EVENT_TIMEOUT) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    # -- signals and exit

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def reload(self, *, timeout: float = EVENT_TIMEOUT) -> tuple[Notification, Notification]:
        """SIGHUP; returns the (RELOADING, READY) datagrams that followed it."""
        mark = self.mark()
        self.signal(signal.SIGHUP)
        reloading = self.wait_event("RELOADING", after=mark, timeout=timeout)
        ready = self.wait_event("READY", after=reloading.index + 1, timeout=timeout)
        listen = ready.get("X_OBMEN_LISTEN")
        if listen:
            self.port = int(listen.rpartition(":")[2])
        return reloading, ready

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        """Exit code; afterwards notify.messages holds every datagram the process sent."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DaemonError(f"obmend did not exit within {timeout:.0f}s\n{self.log_excerpt()}") from None
        self._waiter.join(EVENT_TIMEOUT)
        return code

    def terminate(self, timeout: float = EXIT_TIMEOUT) -> tuple[Notification | None, int]:
        """SIGTERM; returns (STOPPING datagram or None, exit code)."""
        mark = self.mark()
        self.signal(signal.SIGTERM)
        code = self.wait_exit(timeout)
        stopping = self.notify.wait(lambda m: m.get("STOPPING") == "1", after=mark, timeout=0, stop_on_exit=False)
        return stopping, code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(EXIT_TIMEOUT)

    def close(self) -> None:
        self.kill()
        self._waiter.join(5)
        self.notify.close()
        self._log_file.close()

    # -- log

    def log(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_excerpt(self, max_chars: int = 20000) -> str:
        text = self.log()
        if len(text) > max_chars:
            text = "…" + text[-max_chars:]
        return f"--- {self.name} log ({self.log_path}) ---\n{text}--- end of {self.name} log ---"


# ---------------------------------------------------------------------------------------- harness

class Harness:
    """Per-test resources. Create with Harness.for_test(testcase) so cleanup is registered."""

    PASSWORD = "s3cret-Пароль"
    USER = "site"

    def __init__(self, label: str = "e2e"):
        self.label = re.sub(r"[^a-z0-9]+", "_", label.lower())[-30:].strip("_") or "e2e"
        self.dir = Path(tempfile.mkdtemp(prefix="obmen-e2e-"))
        self.admin_url = admin_database_url()
        self.db_name: str | None = None
        self.daemons: list[Daemon] = []
        self.password = self.PASSWORD
        self._closed = False

    @classmethod
    def for_test(cls, testcase: unittest.TestCase) -> "Harness":
        h = cls(testcase.id().rsplit(".", 1)[-1])
        testcase.addCleanup(h.close, testcase)
        return h

    @classmethod
    def for_class(cls, testclass: type) -> "Harness":
        """One harness shared by a TestCase class (setUpClass); logs are printed only when
        OBMEN_E2E_VERBOSE is set — tests of such classes put log excerpts in their messages."""
        h = cls(testclass.__name__)
        testclass.addClassCleanup(h.close, None, bool(os.environ.get("OBMEN_E2E_VERBOSE")))
        return h

    # -- database

    def create_database(self, *, migrate: bool = True) -> str:
        name = f"obmen_e2e_{self.label}_{uuid.uuid4().hex[:8]}"[:63]
        self._admin_sql(f'CREATE DATABASE "{name}"')
        self.db_name = name
        if migrate:
            self.migrate()
        return name

    @property
    def database_url(self) -> str:
        if self.db_name is None:
            raise RuntimeError("create_database() first")
        return with_database(self.admin_url, self.db_name)

    def drop_database(self) -> None:
        if self.db_name:
            self._admin_sql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def _admin_sql(self, sql: str) -> None:
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.admin_url, "-c", sql],
                           capture_output=True, text=True, timeout=EVENT_TIMEOUT)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {r.stderr}")

    def psql(self, query: str, *, url: str | None = None) -> list[tuple]:
        """Rows as tuples of strings (None for NULL)."""
        sep, rsep, null = "\x1f", "\x1e", "\x7fNULL\x7f"
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", sep, "-R", rsep, "-P", f"null={null}",
                            "-v", "ON_ERROR_STOP=1", "-d", url or self.database_url, "-c", query],
                           capture_output=True, text=True, timeout=EVENT_TIMEOUT)
        if r.returncode != 0:
            raise AssertionError(f"psql failed: {query}\n{r.stderr}")
        out = r.stdout
        if out.endswith("\n"):
            out = out[:-1]
        if out == "":
            return []
        return [tuple(None if f == null else f for f in rec.split(sep)) for rec in out.split(rsep)]

    def scalar(self, query: str) -> str | None:
        rows = self.psql(query)
        if len(rows) != 1 or len(rows[0]) != 1:
            raise AssertionError(f"expected one value from {query!r}, got {rows!r}")
        return rows[0][0]

    def count(self, query_or_table: str) -> int:
        q = query_or_table if " " in query_or_table.strip() else f"SELECT count(*) FROM {query_or_table}"
        return int(self.scalar(q))

    def query_json(self, query: str) -> list[dict]:
        """Rows as dicts with JSON-typed values (numerics as numbers, jsonb as objects)."""
        text = self.scalar(f"SELECT coalesce(json_agg(t), '[]'::json) FROM ({query}) t")
        return json.loads(text)

    # -- config and CLI

    def default_config(self) -> dict:
        return {
            "database": {"url": self.database_url if self.db_name else "postgresql://127.0.0.1/none"},
            "http": {"address": "127.0.0.1", "port": 0},
            "spool": {"dir": str(self.dir / "spool"), "keep_days": 7},
            "log": {"level": "debug"},
            "sources": {
                "onec": {
                    "type": "onec",
                    "path": "/1c_exchange",
                    "username": self.USER,
                    "password": {"env": "OBMEN_ONEC_PASSWORD"},
                    "zip": True,
                    "file_limit": "64KiB",
                },
            },
        }

    def config(self, overrides: dict | None = None, **onec: Any) -> dict:
        """The default config with nested overrides and keyword overrides of sources.onec."""
        cfg = self.default_config()
        if overrides:
            cfg = deep_merge(cfg, overrides)
        if onec:
            cfg = deep_merge(cfg, {"sources": {"onec": onec}})
        return cfg

    def write_config(self, cfg: dict | str | None = None, name: str = "obmen.yaml") -> Path:
        path = self.dir / name
        text = cfg if isinstance(cfg, str) else to_yaml(cfg if cfg is not None else self.config())
        path.write_text(text, encoding="utf-8")
        return path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("OBMEN_DATABASE_URL", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                            "LISTEN_FDS", "LISTEN_PID", "CREDENTIALS_DIRECTORY")}
        env["OBMEN_ONEC_PASSWORD"] = self.password
        return env

    def ctl(self, *args: str, config: Path | None = None, env: dict | None = None,
            timeout: float = 120 * TIMEOUT_SCALE) -> subprocess.CompletedProcess:
        argv = [obmenctl_path()]
        if config is not None:
            argv += ["--config", str(config)]
        argv += list(args)
        return subprocess.run(argv, capture_output=True, text=True, env=env or self.env(), timeout=timeout,
                              cwd=str(self.dir))

    def migrate(self) -> None:
        cfg = self.write_config(self.config(), name="migrate.yaml")
        r = self.ctl("migrate", config=cfg)
        if r.returncode != 0:
            raise AssertionError(f"obmenctl migrate failed ({r.returncode}):\n{r.stdout}{r.stderr}")

    # -- daemon

    def start_daemon(self, cfg: dict | str | Path | None = None, *, wait_ready: bool = True,
                     args: tuple[str, ...] = (), env: dict | None = None) -> Daemon:
        path = cfg if isinstance(cfg, Path) else self.write_config(cfg)
        name = f"obmend{len(self.daemons) + 1}"
        d = Daemon(self, path, env or self.env(), list(args), name)
        self.daemons.append(d)
        if wait_ready:
            d.wait_ready()
        return d

    # -- cleanup

    def close(self, testcase: unittest.TestCase | None = None, print_logs: bool | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        failed = _test_failed(testcase) if print_logs is None else print_logs
        try:
            for d in self.daemons:
                try:
                    d.close()
                    if failed:
                        sys.stderr.write("\n" + d.log_excerpt() + "\n")
                except Exception as e:  # keep cleaning up
                    print(f"harness: closing {d.name}: {e}", file=sys.stderr)
        finally:
            try:
                self.drop_database()
            finally:
                if os.environ.get("OBMEN_E2E_KEEP"):
                    print(f"harness: kept {self.dir}", file=sys.stderr)
                else:
                    shutil.rmtree(self.dir, ignore_errors=True)


def _test_failed(testcase: unittest.TestCase | None) -> bool:
    """Whether the running test has failed so far (cleanups run after the test body). Reads the
    result object unittest passes around; when that is not reachable, says True (more log)."""
    if testcase is None:
        return True
    result = getattr(getattr(testcase, "_outcome", None), "result", None)
    if result is None or not hasattr(result, "errors"):
        return True
    return any(t is testcase or getattr(t, "test_case", None) is testcase
               for t, _ in list(result.errors) + list(result.failures))
