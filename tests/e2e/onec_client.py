"""A 1C:Enterprise site-exchange client: speaks the CommerceML HTTP protocol the way 1C does.

Protocol reference: shared/reference/commerceml/PROTOCOL.md (§2 command table, §3 chunks, §4 zip).
What 1C does, and therefore what this client does:

* every command is a query string on one URL: ``?type=catalog&mode=…``;
* ``checkauth`` carries HTTP Basic credentials; its answer gives a cookie name and value (lines 2
  and 3), ``sessid=`` (line 4) and ``timestamp=`` (line 5);
* every later request carries ``Cookie: <name>=<value>`` and ``&sessid=<value>`` (when given), and
  no Basic credentials;
* ``init`` tells ``zip=yes|no`` and ``file_limit=<bytes>``;
* each file is POSTed raw (not multipart) in pieces of at most ``file_limit`` bytes, the same
  ``filename`` repeated, to be appended in order; with ``zip=yes`` every file (XML and
  ``import_files/…`` images) goes into one archive ``v8_XXXX_1.zip`` and that is what is uploaded;
* ``import`` is called for each XML file (names inside the archive in zip mode), import files
  first, then offers, prices, rests; the identical request is repeated while the answer is
  ``progress``;
* then ``deactivate&timestamp=<from checkauth>`` and ``complete``.

1C stops at the first ``failure``; so does :meth:`OneCClient.exchange`. Every answer is recorded in
order (``client.answers``) for assertions. Standard library only.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import io
import os
import random
import re
import select
import socket
import urllib.parse
import zipfile
from typing import Callable, Iterable, Mapping, Sequence

USER_AGENT = "1C+Enterprise/8.3"
DEFAULT_MAX_IMPORT_ITERATIONS = 10000


class ExchangeFailed(Exception):
    """The server answered something other than success/progress; carries that answer."""

    def __init__(self, answer: "Answer"):
        super().__init__(f"{answer.step}: {answer.describe()}")
        self.answer = answer


class ProtocolViolation(Exception):
    """The server's answer does not follow the protocol (unparseable, HTML, endless progress…)."""


@dataclasses.dataclass
class Answer:
    step: str                 # "checkauth", "init", "file", "import", "deactivate", "complete", …
    method: str
    target: str               # path + query as sent
    http_status: int
    headers: dict             # lower-cased names → value (last wins); Set-Cookie kept as a list
    raw: bytes
    sent: int = 0             # request body bytes

    @property
    def text(self) -> str:
        data = self.raw
        if data.startswith(b"\xef\xbb\xbf"):  # 1C accepts a UTF-8 BOM before the status word
            data = data[3:]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1251", errors="replace")

    @property
    def lines(self) -> list[str]:
        # 1C tolerates CRLF; split like the DICR emulator does, but keep empty middle lines out.
        return [line for line in re.split(r"[\r\n\v]+", self.text) if line != ""] or [""]

    @property
    def status(self) -> str:
        """The protocol status word: success, progress, failure, zip=…, or whatever came first."""
        return self.lines[0].strip()

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and self.status == "success"

    @property
    def message(self) -> str:
        """Everything after the status line (the reason of a failure, the summary of a success)."""
        return "\n".join(self.lines[1:])

    def describe(self) -> str:
        body = self.text if len(self.text) < 2000 else self.text[:2000] + "…"
        return f"{self.method} {self.target} → HTTP {self.http_status}: {body!r}"


@dataclasses.dataclass
class Session:
    cookie_name: str = ""
    cookie_value: str = ""
    sessid: str | None = None
    timestamp: str | None = None
    zip: bool | None = None
    file_limit: int | None = None


def _split_url(url: str):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, got {url!r}")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    return host, port, parts.path or "/", parts.query


class HttpConnection:
    """Minimal HTTP/1.1 client on a socket, with keep-alive.

    Unlike http.client it sends a body in pieces and stops when the server answers early (a server
    that rejects an upload from its headers may close the connection before reading the body: the
    answer must still be read, not lost in a broken pipe).
    """

    SEND_PIECE = 64 * 1024

    def __init__(self, host: str, port: int, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None
        self.requests_on_socket = 0

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def _connect(self) -> None:
        self.close()
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.requests_on_socket = 0

    def request(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None):
        """Returns (status, header list, body bytes). Retries once on a stale keep-alive socket."""
        for attempt in (0, 1):
            reused = self.sock is not None and self.requests_on_socket > 0
            if self.sock is None:
                self._connect()
            try:
                return self._exchange(method, target, headers, body)
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected,
                    http.client.BadStatusLine) as e:
                self.close()
                # Only a reused socket may legitimately have been closed by the server while idle.
                if not reused or attempt == 1 or isinstance(e, http.client.BadStatusLine) and e.line:
                    raise
        raise AssertionError("unreachable")

    def _exchange(self, method, target, headers, body):
        assert self.sock is not None
        head = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for k, v in headers.items():
            head.append(f"{k}: {v}")
        if body is not None or method == "POST":
            head.append(f"Content-Length: {len(body or b'')}")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        self.requests_on_socket += 1
        early = False
        if body:
            view = memoryview(body)
            for off in range(0, len(view), self.SEND_PIECE):
                readable, _, _ = select.select([self.sock], [], [], 0)
                if readable:            # the server answered before taking the whole body
                    early = True
                    break
                try:
                    self.sock.sendall(view[off:off + self.SEND_PIECE])
                except (BrokenPipeError, ConnectionResetError):
                    early = True        # try to read the answer it sent before closing
                    break
        resp = http.client.HTTPResponse(self.sock, method=method)
        resp.begin()
        data = resp.read()
        status = resp.status
        header_list = resp.getheaders()
        if resp.will_close or early:
            self.close()
        return status, header_list, data


class OneCClient:
    """One 1C exchange node talking to one site URL (``http://host:port/1c_exchange``)."""

    def __init__(self, url: str, user: str | None, password: str | None, *, exchange_type: str = "catalog",
                 user_agent: str = USER_AGENT, timeout: float = 120.0, keep_alive: bool = True,
                 max_import_iterations: int = DEFAULT_MAX_IMPORT_ITERATIONS,
                 on_answer: Callable[[Answer], None] | None = None):
        self.url = url
        self.host, self.port, self.path, self.base_query = _split_url(url)
        self.user, self.password = user, password
        self.exchange_type = exchange_type
        self.user_agent = user_agent
        self.keep_alive = keep_alive
        self.max_import_iterations = max_import_iterations
        self.on_answer = on_answer
        self.session = Session()
        self.answers: list[Answer] = []
        self.conn = HttpConnection(self.host, self.port, timeout)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- low level

    def target(self, mode: str | None, params: Sequence[tuple[str, str]] = (), *,
               exchange_type: str | None = None, with_sessid: bool = True) -> str:
        query: list[tuple[str, str]] = []
        if self.base_query:
            query.extend(urllib.parse.parse_qsl(self.base_query, keep_blank_values=True))
        query.append(("type", exchange_type if exchange_type is not None else self.exchange_type))
        if mode is not None:
            query.append(("mode", mode))
        query.extend(params)
        if with_sessid and self.session.sessid:
            query.append(("sessid", self.session.sessid))
        # 1C escapes the file name as a URL component; '/' in import_files/… stays readable.
        return self.path + "?" + urllib.parse.urlencode(query, safe="/", quote_via=urllib.parse.quote)

    def send(self, step: str, method: str, target: str, *, body: bytes | None = None,
             basic_auth: bool = False, cookie: bool = True, extra_headers: Mapping[str, str] | None = None,
             auth_user: str | None = None, auth_password: str | None = None) -> Answer:
        """Sends one request exactly as given and records the answer. No status checking."""
        headers = {"User-Agent": self.user_agent, "Accept": "*/*"}
        if not self.keep_alive:
            headers["Connection"] = "close"
        if basic_auth:
            user = self.user if auth_user is None else auth_user
            password = self.password if auth_password is None else auth_password
            token = base64.b64encode(f"{user or ''}:{password or ''}".encode("utf-8")).decode("ascii")
            headers["Authorization"] = "Basic " + token
        if cookie and self.session.cookie_name:
            headers["Cookie"] = f"{self.session.cookie_name}={self.session.cookie_value}"
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        if extra_headers:
            headers.update(extra_headers)
        status, header_list, data = self.conn.request(method, target, headers, body)
        hdrs: dict = {}
        for k, v in header_list:
            k = k.lower()
            if k == "set-cookie":
                hdrs.setdefault(k, []).append(v)
            else:
                hdrs[k] = v
        answer = Answer(step, method, target, status, hdrs, data, len(body) if body is not None else 0)
        self.answers.append(answer)
        if self.on_answer:
            self.on_answer(answer)
        return answer

    def command(self, mode: str, params: Sequence[tuple[str, str]] = ()) -> Answer:
        """GET ?type=…&mode=<mode>&…&sessid=… with the session cookie."""
        return self.send(mode, "GET", self.target(mode, params))

    # ---------------------------------------------------------------- protocol steps

    def checkauth(self) -> Answer:
        self.session = Session()
        answer = self.send("checkauth", "GET", self.target("checkauth", with_sessid=False), basic_auth=True,
                           cookie=False)
        if answer.status != "success":
            return answer
        lines = answer.lines
        if len(lines) < 3:
            raise ProtocolViolation(f"checkauth success needs at least 3 lines: {answer.describe()}")
        self.session.cookie_name = lines[1].strip()
        self.session.cookie_value = lines[2].strip()
        for line in lines[3:]:
            key, sep, value = line.partition("=")
            if not sep:
                continue
            if key.strip() == "sessid":
                self.session.sessid = value.strip()
            elif key.strip() == "timestamp":
                self.session.timestamp = value.strip()
        return answer

    def init(self, version: str | None = None) -> Answer:
        params = [("version", version)] if version else []
        answer = self.command("init", params)
        if answer.http_status != 200 or answer.status.startswith("failure"):
            return answer
        values = {}
        for line in answer.lines:
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
        if "zip" not in values or "file_limit" not in values:
            raise ProtocolViolation(f"init must answer zip= and file_limit=: {answer.describe()}")
        if values["zip"] not in ("yes", "no"):
            raise ProtocolViolation(f"init: zip must be yes or no: {answer.describe()}")
        self.session.zip = values["zip"] == "yes"
        try:
            self.session.file_limit = int(values["file_limit"])
        except ValueError:
            raise ProtocolViolation(f"init: file_limit is not a number: {answer.describe()}") from None
        if self.session.file_limit <= 0:
            raise ProtocolViolation(f"init: file_limit must be positive: {answer.describe()}")
        return answer

    def upload(self, filename: str, data: bytes, *, chunk_size: int | None = None) -> list[Answer]:
        """POSTs data in chunks of file_limit bytes (or chunk_size); stops at the first non-success."""
        size = chunk_size or self.session.file_limit
        if not size:
            raise ValueError("upload before init: file_limit unknown (pass chunk_size)")
        answers = []
        target = self.target("file", [("filename", filename)])
        pieces = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        for piece in pieces:
            answer = self.send("file", "POST", target, body=piece)
            answers.append(answer)
            if not answer.ok:
                break
        return answers

    def import_file(self, filename: str, *, max_iterations: int | None = None) -> list[Answer]:
        """GET mode=import, repeated identically while the answer is progress. Last answer is final."""
        limit = max_iterations or self.max_import_iterations
        target = self.target("import", [("filename", filename)])
        answers = []
        for _ in range(limit):
            answer = self.send("import", "GET", target)
            answers.append(answer)
            if answer.http_status != 200 or answer.status != "progress":
                return answers
        raise ProtocolViolation(f"import {filename}: still 'progress' after {limit} requests: "
                                f"{answers[-1].describe()}")

    def deactivate(self) -> Answer:
        params = [("timestamp", self.session.timestamp)] if self.session.timestamp else []
        return self.command("deactivate", params)

    def complete(self) -> Answer:
        return self.command("complete")

    # ---------------------------------------------------------------- whole exchange

    def exchange(self, files: Mapping[str, bytes] | Iterable[tuple[str, bytes]], *, use_zip: bool | None = None,
                 zip_name: str | None = None, deactivate: bool = True, complete: bool = True) -> "ExchangeResult":
        """A full catalog exchange the way 1C runs it. ``files``: archive name → bytes, where names
        are like ``import0_1.xml``, ``offers0_1.xml``, ``import_files/ab/abcd.jpg``.

        use_zip: None = zip when the server says zip=yes (1C with compression allowed), False = never,
        True = insist (raises when the server said zip=no). Never raises on a failure answer: the
        result says where it stopped.
        """
        items = list(files.items()) if isinstance(files, Mapping) else list(files)
        result = ExchangeResult(self)
        try:
            self._run(items, use_zip, zip_name, deactivate, complete, result)
        except ExchangeFailed as e:
            result.failed = e.answer
        return result

    def _run(self, items, use_zip, zip_name, deactivate, complete, result: "ExchangeResult") -> None:
        def check(answer: Answer, *, allowed=("success",)) -> Answer:
            if answer.http_status != 200 or answer.status not in allowed:
                raise ExchangeFailed(answer)
            return answer

        check(self.checkauth())
        answer = self.init()
        if answer.status.startswith("failure") or answer.http_status != 200:
            raise ExchangeFailed(answer)
        zipped = self.session.zip if use_zip is None else use_zip
        if use_zip and not self.session.zip:
            raise ProtocolViolation("zip requested but the server answered zip=no")
        xml_names = import_order([name for name, _ in items if name.lower().endswith(".xml")])
        if zipped:
            name = zip_name or make_zip_name()
            result.zip_name = name
            for a in self.upload(name, pack_zip(items)):
                check(a)
        else:
            # 1C sends each XML file followed by the images it references; order of uploads
            # does not matter to a correct server, imports come after all uploads.
            for name, data in items:
                for a in self.upload(name, data):
                    check(a)
        for name in xml_names:
            answers = self.import_file(name)
            result.imports[name] = answers[-1]
            check(answers[-1])
        if deactivate:
            result.deactivate = check(self.deactivate())
        if complete:
            result.complete = check(self.complete())


@dataclasses.dataclass
class ExchangeResult:
    client: OneCClient
    zip_name: str | None = None
    imports: dict = dataclasses.field(default_factory=dict)   # xml name → final import answer
    deactivate: Answer | None = None
    complete: Answer | None = None
    failed: Answer | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None

    @property
    def answers(self) -> list[Answer]:
        return self.client.answers

    def of_step(self, step: str) -> list[Answer]:
        return [a for a in self.client.answers if a.step == step]

    def transcript(self) -> str:
        return "\n".join(a.describe() for a in self.client.answers)


def import_order(names: Iterable[str]) -> list[str]:
    """The order 1C imports files in: import*, offers*, prices*, rests*, then the rest (stable)."""
    rank = {"import": 0, "offers": 1, "prices": 2, "rests": 3}

    def key(name: str):
        base = os.path.basename(name).lower()
        for prefix, r in rank.items():
            if base.startswith(prefix):
                return r
        return len(rank)

    return sorted(names, key=key)


def make_zip_name() -> str:
    """Like 1C's archive names: v8_6079_14.zip, v8_3B8F_3e.zip."""
    return f"v8_{random.randrange(0x10000):04X}_1.zip"


def pack_zip(items: Iterable[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in items:
            z.writestr(name, data)
    return buf.getvalue()


def read_files(paths: Iterable[str]) -> list[tuple[str, bytes]]:
    """Local paths → archive names like 1C's: the file name, or import_files/… kept as a sub-path."""
    out = []
    for path in paths:
        norm = path.replace(os.sep, "/")
        idx = norm.find("import_files/")
        name = norm[idx:] if idx >= 0 else os.path.basename(norm)
        with open(path, "rb") as f:
            out.append((name, f.read()))
    return out
