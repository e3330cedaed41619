"""A 1C:Enterprise site-exchange client for the ORDER exchange (``type=sale``), speaking the
protocol the way 1C does (shared/reference/commerceml/PROTOCOL.md §2 rows G–M, §5, §6, §9).

What 1C does, and therefore what this client does:

* ``checkauth`` with HTTP Basic credentials; the answer gives the cookie name and value (lines 2
  and 3) and ``sessid=`` (line 4; no ``timestamp=`` line for type=sale);
* ``init``: with ``&version=<CML version>`` (the "new" protocol of the 1C-Bitrix module / UT 11) or
  without it (the "old" protocol of UT 10.3 / 8.2 modules). The answer is ``zip=…``,
  ``file_limit=…`` and, only for the new protocol, ``sessid=…`` and ``version=…``; the sessid of
  that answer is what 1C sends from then on;
* ``query``: the body is a CommerceML document with the site's orders (no status line);
* ``success`` once 1C has stored them (without it the site must send them again);
* ``file``: the documents file POSTed raw in pieces of at most ``file_limit`` bytes, the same
  ``filename`` repeated. New protocol: each piece answers ``success``, then
* ``import`` (new protocol only), repeated identically while ``progress``; old protocol: the
  import happens within ``mode=file`` and its answer is the outcome (``success`` + remarks);
* ``info`` (1C-Bitrix module): the site's statuses as XML.

Every request after checkauth carries ``Cookie: <name>=<value>`` and ``&sessid=``, never Basic
credentials — reused from onec_client.OneCClient (not modified). Standard library only.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from typing import Iterable, Sequence

from onec_client import Answer, ExchangeFailed, OneCClient, ProtocolViolation

__all__ = ["SaleClient", "SaleResult", "Answer", "ExchangeFailed", "ProtocolViolation",
           "xml_declared_encoding", "content_type_charset", "parse_xml", "local", "children", "child",
           "text_of", "walk"]


# ------------------------------------------------------------------------------ XML helpers

def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def namespace(tag: str) -> str | None:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else None


def children(el, name: str) -> list:
    return [c for c in el if local(c.tag) == name]


def child(el, name: str):
    for c in el:
        if local(c.tag) == name:
            return c
    return None


def text_of(el, name: str | None = None) -> str | None:
    node = el if name is None else (child(el, name) if el is not None else None)
    if node is None or node.text is None:
        return None
    return node.text.strip()


def walk(el, path: Sequence[str]) -> list:
    cur = [el]
    for name in path:
        cur = [c for e in cur for c in children(e, name)]
    return cur


def xml_declared_encoding(data: bytes) -> str | None:
    """The encoding named in the XML declaration (lower-case), None when there is none."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    m = re.match(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""", data)
    return m.group(1).decode("ascii").lower() if m else None


def content_type_charset(content_type: str | None) -> str | None:
    m = re.search(r"charset\s*=\s*\"?([A-Za-z0-9._-]+)", content_type or "", re.I)
    return m.group(1).lower() if m else None


def parse_xml(data: bytes):
    """ElementTree root of a CommerceML answer; expat takes windows-1251 through Python's codecs."""
    return ET.fromstring(data)


def requisites(doc) -> dict[str, str]:
    """Документ/ЗначенияРеквизитов/ЗначениеРеквизита as name → value."""
    out = {}
    for r in walk(doc, ["ЗначенияРеквизитов", "ЗначениеРеквизита"]):
        out[text_of(r, "Наименование") or ""] = text_of(r, "Значение") or ""
    return out


# ------------------------------------------------------------------------------------ client

@dataclasses.dataclass
class SaleResult:
    client: "SaleClient"
    query: Answer | None = None
    success: Answer | None = None
    uploads: dict = dataclasses.field(default_factory=dict)   # filename → list of file answers
    imports: dict = dataclasses.field(default_factory=dict)   # filename → final answer (import, or file for old)
    failed: Answer | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None

    def transcript(self) -> str:
        return "\n".join(a.describe() for a in self.client.answers)


class SaleClient(OneCClient):
    """One 1C node exchanging orders with the site (``type=sale``)."""

    def __init__(self, url: str, user: str | None, password: str | None, **kw):
        kw.setdefault("exchange_type", "sale")
        super().__init__(url, user, password, **kw)
        self.version_sent: str | None = None
        self.version_answered: str | None = None

    # ---------------------------------------------------------------- protocol steps

    def init(self, version: str | None = None) -> Answer:
        """``init`` with ``&version=`` (new protocol) or without (old). The sessid the new-protocol
        answer carries replaces the one from checkauth, as the 1C-Bitrix module does."""
        self.version_sent = version
        self.version_answered = None
        answer = super().init(version)
        if answer.http_status != 200 or answer.status.startswith("failure"):
            return answer
        for line in answer.lines:
            key, sep, value = line.partition("=")
            if not sep:
                continue
            if key.strip() == "sessid" and value.strip():
                self.session.sessid = value.strip()
            elif key.strip() == "version":
                self.version_answered = value.strip()
        return answer

    def query(self) -> Answer:
        return self.command("query")

    def success(self) -> Answer:
        return self.command("success")

    def info(self) -> Answer:
        return self.command("info")

    def send_documents(self, filename: str, data: bytes, *, new_protocol: bool | None = None,
                       chunk_size: int | None = None) -> tuple[list[Answer], Answer]:
        """Uploads one documents file the way 1C does and returns (file answers, final answer):
        new protocol → the last ``import`` answer; old protocol → the (last) ``file`` answer,
        which carries the import's outcome."""
        new = (self.version_sent is not None) if new_protocol is None else new_protocol
        uploads = self.upload(filename, data, chunk_size=chunk_size)
        if not new or not uploads[-1].ok:
            return uploads, uploads[-1]
        return uploads, self.import_file(filename)[-1]

    # ---------------------------------------------------------------- whole exchange

    def exchange_sale(self, documents: Iterable[tuple[str, bytes]] = (), *, version: str | None = "2.09",
                      query: bool = True, success: bool = True) -> SaleResult:
        """A sale session as 1C runs it: checkauth → init[version] → [query → success] →
        file(documents)… → [import]. Stops at the first failure (result.failed), like 1C."""
        result = SaleResult(self)
        try:
            a = self.checkauth()
            if a.http_status != 200 or a.status != "success":
                raise ExchangeFailed(a)
            a = self.init(version)
            if a.http_status != 200 or a.status.startswith("failure"):
                raise ExchangeFailed(a)
            if query:
                a = self.query()
                result.query = a
                if a.http_status != 200 or not a.raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
                    raise ExchangeFailed(a)
                if success:
                    a = self.success()
                    result.success = a
                    if not a.ok:
                        raise ExchangeFailed(a)
            for name, data in documents:
                uploads, final = self.send_documents(name, data, new_protocol=version is not None)
                result.uploads[name] = uploads
                result.imports[name] = final
                if not final.ok:
                    raise ExchangeFailed(final)
        except ExchangeFailed as e:
            result.failed = e.answer
        return result
