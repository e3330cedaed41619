#!/usr/bin/env python3
"""A faithful fake of the МойСклад JSON API 1.2 for obmen's end-to-end tests.

What it reproduces (see README.md beside this file and /work/shared/reference/moysklad/API.md §13):
mandatory gzip (415 with an empty body otherwise), Basic/Bearer auth with token rotation, the
45-unit / 3 s rate budget per user with weights and the 5-parallel limit (429 1049 / 1073),
collections with limit/offset/nextHref and the filter language, syncId-idempotent creates, mass
upsert / delete, document positions, short stock reports, entity and stock webhooks (1500 ms,
3 immediate retries with the same requestId, X-Lognex-WebHook-DisableByPrefix), the PUT ban
(>100 PUTs per entity per minute) and fault injection. Seed data comes from the documentation
samples in $OBMEN_REFERENCE_DIR/moysklad/samples with every href rebased onto this server.

Everything the tests need to steer it is under ``/__fake__/`` (plain JSON, no gzip, no auth, not
rate limited) and mirrored by methods of :class:`FakeMoySklad` for in-process use.

Standard library only. Run as a script: ``python3 fake_moysklad.py --port 18090 --seed``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import gzip
import http.client
import http.server
import json
import os
import queue
import random
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

API_PATH = "/api/remap/1.2"
REAL_BASES = ("https://api.moysklad.ru/api/remap/1.2", "https://online.moysklad.ru/api/remap/1.2")
MSK = timezone(timedelta(hours=3), "MSK")
ACCOUNT_ID = "84e60e93-f504-11e5-8a84-bae500000008"
EMPLOYEE_ID = "faba7f37-2e58-11e6-8a84-bae500000028"
GROUP_ID = "f97aa1fb-2e58-11e6-8a84-bae500000002"
DEFAULT_LOGIN = "admin@obmen"
DEFAULT_PASSWORD = "obmen-secret"
WEBHOOK_UA = "MoySklad webhook touch agent 2.0 (/https://www.moysklad.ru)"
JSON_CT = "application/json;charset=utf-8"
MORE_INFO = "https://dev.moysklad.ru/doc/api/remap/1.2/#error_{}"
AUTH_ERROR = "Ошибка аутентификации: Неправильный пароль или имя пользователя или ключ авторизации"
RATE_ERROR = "Превышено ограничение на количество запросов в единицу времени"
PARALLEL_ERROR = "Превышено ограничение на одновременное количество запросов"
EXTERNAL_CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"
DEFAULT_PRICE_TYPE_EXTERNAL_CODE = "cbcf493b-55bc-11d9-848a-00112f43529a"

# Entity collections held in memory (entity/<type>).
ENTITY_TYPES = ("currency", "uom", "productfolder", "product", "variant", "service", "store",
                "organization", "counterparty", "customerorder", "invoiceout", "demand",
                "webhook", "webhookstock", "employee")
DOCUMENT_POSITION_TYPES = {"customerorder": "customerorderposition", "invoiceout": "invoiceposition",
                           "demand": "demandposition"}
ASSORTMENT_TYPES = ("product", "variant", "service")
REQUIRED_FIELDS = {
    "product": ("name",), "service": ("name",), "productfolder": ("name",), "counterparty": ("name",),
    "store": ("name",), "organization": ("name",), "uom": ("name",), "currency": ("name",),
    "variant": ("product", "characteristics"),
    "customerorder": ("organization", "agent"), "invoiceout": ("organization", "agent"),
    "demand": ("organization", "agent", "store"),
    "webhook": ("url", "action", "entityType"), "webhookstock": ("url", "reportType", "stockType"),
}
# Types whose lists hide archived rows unless the filter mentions `archived`.
ARCHIVABLE = ("product", "variant", "service", "productfolder", "counterparty", "store", "organization",
              "uom", "currency")
WITH_OWNER = ("product", "service", "productfolder", "counterparty", "store", "organization",
              "customerorder", "invoiceout", "demand")
READ_ONLY_FIELDS = {"meta", "id", "accountId", "updated", "created", "pathName", "variantsCount",
                    "effectiveVat", "effectiveVatEnabled", "sum", "vatSum", "payedSum", "shippedSum",
                    "invoicedSum", "reservedSum", "positions"}
DATE_FIELDS = {"updated", "created", "moment", "deliveryPlannedMoment", "paymentPlannedMoment", "deleted"}
STOCK_TYPES = ("stock", "freeStock", "quantity", "reserve", "inTransit")
WEIGHTY_REPORTS = ("/report/stock/all", "/report/stock/bystore")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


# ----------------------------------------------------------------------------------------------
# small helpers


def default_reference_dir() -> Path:
    env = os.environ.get("OBMEN_REFERENCE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "reference"


def fmt_msk(dt: datetime, ms: bool = True) -> str:
    dt = dt.astimezone(MSK)
    text = dt.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{dt.microsecond // 1000:03d}" if ms else text


def parse_msk(text: str) -> datetime:
    """MSK date as the API writes it: ``YYYY-MM-DD HH:MM[:SS[.mmm]]``."""
    for pattern in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text.strip(), pattern).replace(tzinfo=MSK)
        except ValueError:
            continue
    raise ValueError(f"bad MSK date {text!r}")


def error_object(code: int, message: str, parameter: str | None = None) -> dict:
    err: dict[str, Any] = {"error": message, "code": code}
    if parameter:
        err["parameter"] = parameter
    err["moreInfo"] = MORE_INFO.format(code)
    return err


class ApiError(Exception):
    """An error answer of the API: HTTP status + ``{"errors":[…]}``."""

    def __init__(self, status: int, code: int, message: str, parameter: str | None = None,
                 headers: dict | None = None):
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.error = error_object(code, message, parameter)
        self.headers = headers or {}

    def body(self) -> dict:
        return {"errors": [self.error]}


def not_found(type_: str, id_: str) -> ApiError:
    return ApiError(404, 1021, f"Объект с типом '{type_}' и идентификатором '{id_}' не найден")


def required_missing(name: str) -> ApiError:
    return ApiError(412, 3000, f"Ошибка сохранения объекта: поле '{name}' не может быть пустым или отсутствовать",
                    name)


def is_uuid(text: Any) -> bool:
    try:
        uuid.UUID(str(text))
        return True
    except ValueError:
        return False


def href_parts(href: str) -> list[str]:
    """Path segments after /api/remap/1.2 of any href (host ignored, query dropped)."""
    path = urllib.parse.urlsplit(href).path
    idx = path.find(API_PATH)
    if idx >= 0:
        path = path[idx + len(API_PATH):]
    return [urllib.parse.unquote(p) for p in path.split("/") if p]


def id_from_href(href: str) -> str | None:
    parts = href_parts(href)
    return parts[-1] if parts else None


def ref_of(value: Any) -> tuple[str | None, str | None]:
    """(type, id) of a ``{"meta":{…}}`` reference."""
    if isinstance(value, dict) and isinstance(value.get("meta"), dict):
        meta = value["meta"]
        href = meta.get("href")
        if isinstance(href, str):
            parts = href_parts(href)
            if len(parts) >= 3 and parts[0] == "entity" and parts[2] == "metadata":
                return meta.get("type"), parts[-1]
            return meta.get("type") or (parts[1] if len(parts) > 1 else None), parts[-1] if parts else None
    return None, None


def ean13(number: int) -> str:
    digits = f"2{number % 10 ** 11:011d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str((10 - total % 10) % 10)


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


@dataclass
class Response:
    status: int
    body: Any = None            # JSON-able object, or bytes when raw
    headers: dict = field(default_factory=dict)
    raw: bool = False            # body is bytes (or None = empty)
    gzip: bool = True


@dataclass
class Fault:
    kind: str                    # status | delay | accept_then_timeout | malformed_json | redirect
    count: int = 1
    path: str = ""               # prefix of the path after /api/remap/1.2 ("" = any)
    method: str | None = None
    status: int = 503
    code: int | None = None
    delay_ms: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and path.startswith(self.path)

    def describe(self) -> dict:
        return {"kind": self.kind, "count": self.count, "path": self.path, "method": self.method,
                "status": self.status, "code": self.code, "delay_ms": self.delay_ms}


@dataclass
class UserLimits:
    window_start: float = 0.0
    used: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    banned: bool = False
    puts: dict = field(default_factory=dict)   # entity id -> deque of monotonic times


@dataclass
class WriteContext:
    """Who wrote, for the webhook payload and DisableByPrefix."""
    uid: str = DEFAULT_LOGIN
    disable_prefixes: tuple = ()
    source: str = "jsonapi"
    events: list = field(default_factory=list)  # (type, id, action, updatedFields|None)


class Clock:
    """The fake's MSK clock: real time + offset, or frozen; controls every `updated`."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._frozen: datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(MSK) + self._offset

    def set(self, msk: str | None = None, offset_seconds: float | None = None,
            advance_seconds: float | None = None, frozen: bool | None = None) -> datetime:
        with self._lock:
            current = self._frozen if self._frozen is not None else datetime.now(MSK) + self._offset
            if msk is not None:
                target = parse_msk(msk)
                self._offset = target - datetime.now(MSK)
                current = target
            if offset_seconds is not None:
                self._offset = timedelta(seconds=offset_seconds)
                current = datetime.now(MSK) + self._offset
            if advance_seconds is not None:
                self._offset += timedelta(seconds=advance_seconds)
                current += timedelta(seconds=advance_seconds)
            if frozen is False:
                self._frozen = None
                self._offset = current - datetime.now(MSK)
            elif frozen is True or self._frozen is not None:
                self._frozen = current
            return current

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta(0)
            self._frozen = None


# ----------------------------------------------------------------------------------------------
# the fake


class FakeMoySklad:
    """In-memory МойСклад. ``start()`` serves HTTP on 127.0.0.1:<port> (0 = any free port)."""

    def __init__(self, port: int = 0, reference_dir: str | Path | None = None, host: str = "127.0.0.1",
                 login: str = DEFAULT_LOGIN, password: str = DEFAULT_PASSWORD, seed: bool = True,
                 rng_seed: int = 20261201) -> None:
        self.reference_dir = Path(reference_dir) if reference_dir else default_reference_dir()
        self.samples_dir = self.reference_dir / "moysklad" / "samples"
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self.clock = Clock()
        self._rng_seed = rng_seed
        self.users = {login: password}
        self.login = login
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fake = self
        self.host, self.port = self._httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.base_url = self.url + API_PATH
        self._serve_thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._jobs: queue.Queue = queue.Queue()
        self._pending = 0
        self._stopping = threading.Event()
        self._release = threading.Event()
        self.webhook_timeout_ms = 1500
        self.webhook_retries = 3
        self.webhook_workers = 4
        self.allowed_webhook_hosts: set[str] = set(LOOPBACK_HOSTS)
        self._reset_state()
        if seed:
            self.seed()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> "FakeMoySklad":
        if self._serve_thread is None:
            self._serve_thread = threading.Thread(target=self._httpd.serve_forever, name="fake-moysklad",
                                                  kwargs={"poll_interval": 0.1}, daemon=True)
            self._serve_thread.start()
            for i in range(self.webhook_workers):
                worker = threading.Thread(target=self._webhook_worker, name=f"fake-moysklad-webhook-{i}",
                                          daemon=True)
                worker.start()
                self._workers.append(worker)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._release.set()
        if self._serve_thread is not None:
            self._httpd.shutdown()
            self._serve_thread.join(timeout=10)
        self._httpd.server_close()
        for _ in self._workers:
            self._jobs.put(None)
        for worker in self._workers:
            worker.join(timeout=10)
        self._workers = []
        self._serve_thread = None

    def __enter__(self) -> "FakeMoySklad":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- state ----------------------------------------------------------------------------------

    def _reset_state(self) -> None:
        with self._lock:
            self._rng = random.Random(self._rng_seed)
            self.entities: dict[str, dict[str, dict]] = {t: {} for t in ENTITY_TYPES}
            self.positions: dict[tuple[str, str], list[dict]] = {}
            self.sync_index: dict[tuple[str, str], str] = {}
            self.states: dict[str, list[dict]] = {t: [] for t in DOCUMENT_POSITION_TYPES}
            self.price_types: list[dict] = []
            self.characteristics: list[dict] = []
            self.company_settings: dict = {}
            self.stock: dict[tuple[str, str], dict] = {}
            self._stock_dirty_since: datetime | None = None
            self.tokens: dict[str, str] = {}
            self.limits: dict[str, UserLimits] = {}
            self.served_429: dict[str, int] = {"1049": 0, "1073": 0, "ban": 0}
            self.request_log: list[dict] = []
            self.deliveries: list[dict] = []
            self.suppressed: list[dict] = []
            self.undeliverable: list[dict] = []
            self.faults: list[Fault] = []
            self.doc_numbers: dict[str, int] = {}
            self.ratelimit = {"enabled": True, "budget": 45, "window_ms": 3000, "weight": 4,
                              "report_weight": 5, "parallel": 5, "parallel_enabled": True,
                              "put_ban_threshold": 100}
            self._release = threading.Event()

    def reset(self, seed: bool = True) -> dict:
        """Back to the initial state (clock, tokens, limits, faults, logs); reseed unless seed=False."""
        self.flush_webhooks(timeout=10)
        self._release.set()
        self.clock.reset()
        self._reset_state()
        if seed:
            self.seed()
        return self.state()

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _new_external_code(self) -> str:
        return "".join(self._rng.choice(EXTERNAL_CODE_ALPHABET) for _ in range(22))

    def _now(self) -> str:
        return fmt_msk(self.clock.now())

    # ---- meta builders ------------------------------------------------------------------------

    def meta(self, type_: str, id_: str | None = None, metadata: bool = True) -> dict:
        if type_ == "pricetype":
            return {"href": f"{self.base_url}/context/companysettings/pricetype/{id_}", "type": "pricetype",
                    "mediaType": "application/json"}
        if type_ == "state":
            raise ValueError("use state_meta")
        href = f"{self.base_url}/entity/{type_}" + (f"/{id_}" if id_ else "")
        m = {"href": href}
        if metadata:
            m["metadataHref"] = f"{self.base_url}/entity/{type_}/metadata"
        m.update({"type": type_, "mediaType": "application/json"})
        return m

    def ref(self, type_: str, id_: str) -> dict:
        return {"meta": self.meta(type_, id_)}

    def state_meta(self, doc_type: str, state_id: str) -> dict:
        return {"href": f"{self.base_url}/entity/{doc_type}/metadata/states/{state_id}", "type": "state",
                "mediaType": "application/json"}

    def _context(self) -> dict:
        return {"employee": {"meta": {"href": f"{self.base_url}/context/employee",
                                      "metadataHref": f"{self.base_url}/entity/employee/metadata",
                                      "type": "employee", "mediaType": "application/json"}}}

    def _rebase(self, value: Any) -> Any:
        """Sample → fake: hrefs onto our base, one accountId, `updated` with milliseconds."""
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k == "accountId":
                    out[k] = ACCOUNT_ID
                elif k in ("updated", "created") and isinstance(v, str) and re.fullmatch(
                        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", v):
                    out[k] = v + ".000"
                else:
                    out[k] = self._rebase(v)
            return out
        if isinstance(value, list):
            return [self._rebase(v) for v in value]
        if isinstance(value, str):
            for real in REAL_BASES:
                if value.startswith(real):
                    return self.base_url + value[len(real):]
        return value

    # ---- seeding ----------------------------------------------------------------------------

    def _sample(self, name: str) -> Any:
        with open(self.samples_dir / name, encoding="utf-8") as fh:
            return self._rebase(json.load(fh))

    def _sample_rows(self, *names: str) -> list[dict]:
        rows: list[dict] = []
        seen: set[str] = set()
        for name in names:
            data = self._sample(name)
            items = data["rows"] if isinstance(data, dict) and "rows" in data else (
                data if isinstance(data, list) else [data])
            for row in items:
                if isinstance(row, dict) and row.get("id") and row["id"] not in seen:
                    seen.add(row["id"])
                    rows.append(row)
        return rows

    def seed(self) -> dict:
        """Load the documentation samples, made referentially consistent (see README)."""
        with self._lock:
            self._seed_locked()
        return self.counts()

    def _seed_locked(self) -> None:
        settings = self._sample("companysettings_get_response.json")
        currency = dict(settings["currency"])
        currency["accountId"] = ACCOUNT_ID
        currency["updated"] = "2016-05-27 10:00:00.000"
        currency["externalCode"] = currency.get("code", "643")
        self.entities["currency"][currency["id"]] = currency
        # Price types: the default «Цена продажи» plus the two of companysettings (3 in all).
        default_pt = self._sample("pricetype_default_response.json")
        self.price_types = [default_pt] + [pt for pt in settings["priceTypes"] if pt["name"] != default_pt["name"]]
        settings["priceTypes"] = self.price_types
        self.company_settings = settings
        for uom_id, name, code, desc in (
                ("19f1edc0-fc42-4001-94cb-c9ec9c62ec10", "шт", "796", "Штука"),
                ("c6b91d63-2c83-11e6-8a84-bae5000000a1", "упак", "778", "Упаковка"),
                ("c6bc9273-2c83-11e6-8a84-bae5000000a3", "кг", "166", "Килограмм")):
            self.entities["uom"][uom_id] = {
                "meta": self.meta("uom", uom_id), "id": uom_id, "accountId": ACCOUNT_ID,
                "updated": "2016-05-27 10:00:00.000", "name": name, "description": desc, "code": code,
                "externalCode": code}
        states = self._sample("customerorder_metadata_states_response.json")["states"]
        self.states["customerorder"] = states
        for doc in ("invoiceout", "demand"):
            self.states[doc] = []
        self.characteristics = [dict(c, meta={"href": f"{self.base_url}/entity/variant/metadata/characteristics/"
                                                      f"{c['id']}", "type": "attributemetadata",
                                              "mediaType": "application/json"})
                                for c in self._sample("variant_metadata_characteristics_response.json")
                                ["characteristics"]]
        plan = (
            ("productfolder", ("productfolder_list_response.json",)),
            ("store", ("store_list_response.json",)),
            ("organization", ("organization_list_response.json",)),
            ("counterparty", ("counterparty_list_response.json", "counterparty_get_response.json")),
            ("product", ("product_list_response.json", "product_get_with_ms_timestamp_response.json")),
            ("variant", ("variant_list_response.json", "variant_get_response.json",
                         "variant_create_response.json")),
            ("customerorder", ("customerorder_list_response.json", "customerorder_create_with_positions_response.json",
                               "customerorder_create_min_response.json",
                               "paging_customerorder_offset_limit_response.json")),
            ("invoiceout", ("invoiceout_list_response.json",)),
            ("demand", ("demand_list_response.json",)),
            ("webhook", ("webhook_list_response.json",)),
            ("webhookstock", ("webhookstock_list_response.json",)),
        )
        # The one employee every seeded entity's owner points at (the samples' account admin).
        self.entities["employee"][EMPLOYEE_ID] = {
            "meta": self.meta("employee", EMPLOYEE_ID), "id": EMPLOYEE_ID, "accountId": ACCOUNT_ID,
            "name": "Администратор", "fullName": "Администратор Аккаунта", "uid": DEFAULT_LOGIN,
            "externalCode": self._new_external_code(), "updated": fmt_msk(self.clock.now())}
        for type_, files in plan:
            for row in self._sample_rows(*files):
                row["meta"] = self.meta(type_, row["id"])
                if type_ not in ("webhook", "webhookstock"):
                    row.setdefault("externalCode", self._new_external_code())
                self.entities[type_][row["id"]] = row
        for type_, files in plan:
            for id_, row in list(self.entities[type_].items()):
                self.entities[type_][id_] = self._repair(type_, row)
        # Order positions: the positions-list sample belongs to the first seeded order.
        first_order = next(iter(self.entities["customerorder"]))
        for doc_type, docs in ((t, self.entities[t]) for t in DOCUMENT_POSITION_TYPES):
            for doc_id in docs:
                self.positions[(doc_type, doc_id)] = []
        rows = self._sample_rows("customerorder_positions_list_response.json")
        self.positions[("customerorder", first_order)] = [
            self._make_position("customerorder", first_order, self._repair("customerorderposition", r), None)
            for r in rows]
        for doc_type in DOCUMENT_POSITION_TYPES:
            for doc_id, doc in self.entities[doc_type].items():
                self._recalc_document(doc_type, doc)
                if doc.get("syncId"):
                    self.sync_index[(doc_type, doc["syncId"])] = doc_id
        for type_ in ("product", "variant", "counterparty"):
            for id_, row in self.entities[type_].items():
                if row.get("syncId"):
                    self.sync_index[(type_, row["syncId"])] = id_
        self._recount_variants()
        # Stock: every seeded product without variants and every variant, in the first two stores.
        stores = list(self.entities["store"])[:2]
        seeded_at = self.clock.now()
        n = 0
        for type_ in ("product", "variant"):
            for id_, row in self.entities[type_].items():
                if type_ == "product" and row.get("variantsCount"):
                    continue
                n += 1
                for k, store_id in enumerate(stores):
                    self.stock[(id_, store_id)] = {"stock": float(n * 10 + k), "reserve": 0.0,
                                                   "inTransit": 0.0, "changed": seeded_at}

    def _repair(self, type_: str, row: dict) -> dict:
        """Re-point references the doc samples leave dangling to existing seeded objects."""
        first = {t: next(iter(self.entities[t]), None) for t in ENTITY_TYPES}
        default_currency = first["currency"]
        by_name = {pt["name"]: pt for pt in self.price_types}

        def fix(key: str, value: Any) -> Any:
            if isinstance(value, list):
                return [fix(key, v) for v in value]
            if not isinstance(value, dict):
                return value
            if key == "priceType":
                return copy.deepcopy(by_name.get(value.get("name"), self.price_types[0]))
            meta = value.get("meta")
            if isinstance(meta, dict) and isinstance(meta.get("href"), str):
                rtype, rid = ref_of(value)
                parts = href_parts(meta["href"])
                if rtype == "state" and len(parts) >= 2:
                    doc = parts[1]
                    ids = [s["id"] for s in self.states.get(doc, [])]
                    if rid not in ids and ids:
                        rid = ids[0]
                    out = dict(value, meta=self.state_meta(doc, rid)) if ids else None
                    return out
                if rtype in self.entities and parts and parts[0] == "entity" and key not in ("meta",):
                    if rid not in self.entities[rtype]:
                        rid = default_currency if rtype == "currency" else (
                            "19f1edc0-fc42-4001-94cb-c9ec9c62ec10" if rtype == "uom" else first[rtype])
                    if rid is None:
                        return None
                    rest = {k: v for k, v in value.items() if k != "meta"}
                    new_meta = self.meta(rtype, rid)
                    if "uuidHref" in meta:
                        new_meta["uuidHref"] = meta["uuidHref"]
                    return {"meta": new_meta, **{k: fix(k, v) for k, v in rest.items()}}
            return {k: (v if k == "meta" else fix(k, v)) for k, v in value.items()}

        out = {k: (v if k == "meta" else fix(k, v)) for k, v in row.items()}
        out = drop_nulls(out)
        if type_ == "variant":
            product = self.entities["product"].get(ref_of(out.get("product"))[1])
            names: dict[str, dict] = {}
            chars = []
            for ch in out.get("characteristics", []):
                known = next((c for c in self.characteristics if c["name"] == ch.get("name")), None)
                if known is None:
                    known = {"id": self._new_id(), "name": ch.get("name"), "type": "string", "required": False}
                    known["meta"] = {"href": f"{self.base_url}/entity/variant/metadata/characteristics/{known['id']}",
                                     "type": "attributemetadata", "mediaType": "application/json"}
                    self.characteristics.append(known)
                if known["name"] in names:
                    continue
                names[known["name"]] = known
                chars.append({"meta": known["meta"], "id": known["id"], "name": known["name"],
                              "value": ch.get("value", "")})
            out["characteristics"] = chars
            if product:
                out["name"] = f"{product['name']} ({', '.join(c['value'] for c in chars)})"
        if type_ in ("product", "variant", "service"):
            self._fill_prices(out)
        if type_ in ("webhook", "webhookstock") and "method" not in out and type_ == "webhook":
            out["method"] = "POST"
        return out

    def _recount_variants(self) -> None:
        counts: dict[str, int] = {}
        for v in self.entities["variant"].values():
            pid = ref_of(v.get("product"))[1]
            counts[pid] = counts.get(pid, 0) + 1
        for pid, p in list(self.entities["product"].items()):
            if p.get("variantsCount", 0) != counts.get(pid, 0):
                self.entities["product"][pid] = dict(p, variantsCount=counts.get(pid, 0))

    # ---- lookups ------------------------------------------------------------------------------

    def counts(self) -> dict:
        with self._lock:
            out = {t: len(v) for t, v in self.entities.items()}
            out["customerorderposition"] = sum(len(p) for (t, _), p in self.positions.items() if t == "customerorder")
            out["stock_rows"] = len(self.stock)
            out["pricetype"] = len(self.price_types)
            return out

    def get_entity(self, type_: str, id_: str) -> dict | None:
        with self._lock:
            ent = self.entities.get(type_, {}).get(id_)
            return self._present(type_, ent, with_rows=True) if ent else None

    def find_state(self, doc_type: str, name_or_id: str) -> dict | None:
        with self._lock:
            return next((s for s in self.states.get(doc_type, []) if name_or_id in (s["name"], s["id"])), None)

    def _resolve(self, value: dict) -> dict | None:
        """Full object behind a ``{"meta":…}`` reference (entities, states, price types)."""
        meta = value.get("meta") if isinstance(value, dict) else None
        if not isinstance(meta, dict) or not isinstance(meta.get("href"), str):
            return None
        parts = href_parts(meta["href"])
        if len(parts) >= 5 and parts[0] == "entity" and parts[2] == "metadata" and parts[3] == "states":
            return next((s for s in self.states.get(parts[1], []) if s["id"] == parts[4]), None)
        if len(parts) >= 4 and parts[:3] == ["context", "companysettings", "pricetype"]:
            return next((p for p in self.price_types if p["id"] == parts[3]), None)
        if len(parts) == 3 and parts[0] == "entity" and parts[1] in self.entities:
            return self.entities[parts[1]].get(parts[2])
        if len(parts) == 3 and parts[0] == "entity" and parts[1] == "assortment":
            for t in ASSORTMENT_TYPES:
                if parts[2] in self.entities[t]:
                    return self.entities[t][parts[2]]
        return None

    def _present(self, type_: str, ent: dict, expand: list[str] | None = None, with_rows: bool = False) -> dict:
        out = dict(ent)
        if type_ in DOCUMENT_POSITION_TYPES:
            rows = self.positions.get((type_, ent["id"]), [])
            arr = {"meta": {"href": f"{self.base_url}/entity/{type_}/{ent['id']}/positions",
                            "metadataHref": f"{self.base_url}/entity/{type_}/metadata",
                            "type": DOCUMENT_POSITION_TYPES[type_], "mediaType": "application/json",
                            "size": len(rows), "limit": 1000, "offset": 0}}
            want_rows = with_rows or any(p.split(".")[0] == "positions" for p in (expand or []))
            if want_rows:
                arr["rows"] = [dict(r) for r in rows]
            out["positions"] = arr
        if expand:
            self._expand(out, expand, 0)
        return out

    def _expand(self, obj: dict, paths: list[str], depth: int) -> None:
        if depth >= 3:
            return
        for path in paths:
            head, _, rest = path.partition(".")
            value = obj.get(head)
            if head == "positions" and isinstance(value, dict) and "rows" in value:
                if rest:
                    for row in value["rows"]:
                        self._expand(row, [rest], depth + 1)
                continue
            targets = value if isinstance(value, list) else [value]
            new_values = []
            for item in targets:
                full = self._resolve(item) if isinstance(item, dict) else None
                if full is not None:
                    item = dict(full)
                    if rest:
                        self._expand(item, [rest], depth + 1)
                new_values.append(item)
            if value is not None:
                obj[head] = new_values if isinstance(value, list) else new_values[0]

    # ---- writes --------------------------------------------------------------------------------

    def _check_ref(self, key: str, value: Any, owner_type: str) -> dict:
        """Validate and canonicalise a reference field of a write."""
        if not isinstance(value, dict) or not isinstance(value.get("meta"), dict):
            raise ApiError(400, 2016, f"Ошибка формата: значение поля '{key}' не соответствует типу объект", key)
        meta = value["meta"]
        if not isinstance(meta.get("href"), str):
            raise ApiError(400, 2010, f"Ошибка формата: поле 'href' в meta поля '{key}' отсутствует", key)
        if not meta.get("type"):
            raise ApiError(400, 2011, f"Ошибка формата: поле 'type' в meta поля '{key}' отсутствует", key)
        parts = href_parts(meta["href"])
        rtype = meta["type"]
        if rtype == "state":
            if len(parts) < 5 or parts[1] != owner_type or not any(
                    s["id"] == parts[-1] for s in self.states.get(owner_type, [])):
                raise ApiError(412, 11002, "Статус не принадлежит данному типу документа", key)
            return {"meta": self.state_meta(owner_type, parts[-1])}
        if rtype == "pricetype":
            pt = next((p for p in self.price_types if p["id"] == parts[-1]), None)
            if pt is None:
                raise not_found("pricetype", parts[-1])
            return copy.deepcopy(pt)
        if rtype in self.entities:
            rid = parts[-1] if parts else ""
            if len(parts) < 3 or parts[0] != "entity" or rid not in self.entities[rtype]:
                raise ApiError(412, 1021, f"Объект с типом '{rtype}' и идентификатором '{rid}' не найден", key)
            extra = {k: v for k, v in value.items() if k != "meta"}
            return {"meta": self.meta(rtype, rid), **extra}
        rebased = self._rebase(value)
        return rebased

    def _fill_prices(self, ent: dict, given: list | None = None) -> None:
        currency_id = next(iter(self.entities["currency"]), None)
        currency = {"meta": self.meta("currency", currency_id)} if currency_id else None
        current = {sp["priceType"]["id"]: sp for sp in ent.get("salePrices", []) if "priceType" in sp}
        for sp in given or []:
            current[sp["priceType"]["id"]] = sp
        prices = []
        for pt in self.price_types:
            sp = dict(current.get(pt["id"], {"value": 0.0}))
            sp["priceType"] = copy.deepcopy(pt)
            if currency and "currency" not in sp:
                sp["currency"] = currency
            prices.append({"value": sp.get("value", 0.0), **{k: v for k, v in sp.items() if k != "value"}})
        ent["salePrices"] = prices
        for key in ("buyPrice", "minPrice"):
            if isinstance(ent.get(key), dict) and currency and "currency" not in ent[key]:
                ent[key] = dict(ent[key], currency=currency)

    def _norm_sale_prices(self, value: Any) -> list:
        if not isinstance(value, list):
            raise ApiError(400, 2016, "Ошибка формата: значение поля 'salePrices' не соответствует типу массив",
                           "salePrices")
        out = []
        for sp in value:
            if not isinstance(sp, dict) or "priceType" not in sp:
                raise required_missing("priceType")
            pt = sp["priceType"]
            if isinstance(pt, dict) and "meta" not in pt and "id" in pt:
                pt = {"meta": self.meta("pricetype", pt["id"])}
            item = {"value": sp.get("value", 0.0), "priceType": self._check_ref("priceType", pt, "")}
            if "currency" in sp:
                item["currency"] = self._check_ref("currency", sp["currency"], "")
            out.append(item)
        return out

    def _norm_characteristics(self, value: Any) -> list:
        if not isinstance(value, list) or not value:
            raise required_missing("characteristics")
        out = []
        for ch in value:
            if not isinstance(ch, dict):
                raise ApiError(400, 2016, "Ошибка формата: характеристика должна быть объектом", "characteristics")
            cid = ch.get("id") or (id_from_href(ch["meta"]["href"]) if isinstance(ch.get("meta"), dict) else None)
            known = next((c for c in self.characteristics if c["id"] == cid or (cid is None and c["name"] == ch.get("name"))),
                         None)
            if known is None:
                if cid is None and ch.get("name"):
                    known = self._add_characteristic(ch["name"])
                else:
                    raise ApiError(412, 1032, f"Ошибка фильтрации: характеристика '{cid}' не существует",
                                   "characteristics")
            out.append({"meta": known["meta"], "id": known["id"], "name": known["name"], "value": str(ch.get("value", ""))})
        return out

    def _add_characteristic(self, name: str) -> dict:
        cid = self._new_id()
        known = {"meta": {"href": f"{self.base_url}/entity/variant/metadata/characteristics/{cid}",
                          "type": "attributemetadata", "mediaType": "application/json"},
                 "id": cid, "name": name, "type": "string", "required": False}
        self.characteristics.append(known)
        return known

    def _apply_fields(self, type_: str, ent: dict, body: dict, creating: bool) -> list[str]:
        changed: list[str] = []
        for key, value in body.items():
            if key in READ_ONLY_FIELDS:
                continue
            if key == "syncId":
                if not creating and value != ent.get("syncId"):
                    raise ApiError(400, 1047, "Вы не можете обновить поле syncId в запросе на обновление сущности",
                                   "syncId")
                if creating and value is not None and not is_uuid(value):
                    raise ApiError(400, 1052, "Неверный формат UUID", "syncId")
            if value is None:
                if key in ent:
                    del ent[key]
                    changed.append(key)
                continue
            if key == "salePrices":
                value = self._norm_sale_prices(value)
            elif key == "characteristics" and type_ == "variant":
                value = self._norm_characteristics(value)
            elif isinstance(value, dict) and "meta" in value:
                value = self._check_ref(key, value, type_)
            elif isinstance(value, list) and value and all(isinstance(v, dict) and "meta" in v for v in value) \
                    and key not in ("attributes",):
                value = [self._check_ref(key, v, type_) for v in value]
            else:
                value = drop_nulls(self._rebase(value))
            if ent.get(key) != value:
                changed.append(key)
            ent[key] = value
        return changed

    def _validate_required(self, type_: str, body: dict) -> None:
        for name in REQUIRED_FIELDS.get(type_, ()):
            value = body.get(name)
            if value is None or value == "" or value == []:
                raise required_missing(name)

    def _validate_webhook(self, type_: str, ent: dict, exclude_id: str | None) -> None:
        if type_ == "webhook":
            if ent.get("action") not in ("CREATE", "UPDATE", "DELETE", "PROCESSED"):
                raise ApiError(400, 2016, "Ошибка формата: недопустимое значение поля 'action'", "action")
            if ent.get("entityType") in ("webhook", "discount", "notes"):
                raise ApiError(412, 2016, "Недопустимый тип сущности для вебхука", "entityType")
            if len(ent.get("url", "")) > 255:
                raise ApiError(412, 3003, "Поле 'url' не может быть длиннее 255 символов", "url")
            for other in self.entities["webhook"].values():
                if other["id"] != exclude_id and all(other.get(k) == ent.get(k) for k in ("entityType", "action", "url")):
                    raise ApiError(412, 3006, "Ошибка сохранения объекта: нарушение уникальности значений полей "
                                              "'entityType', 'action', 'url'", "url")
        if type_ == "webhookstock":
            if ent.get("reportType") not in ("all", "bystore"):
                raise ApiError(400, 2016, "Ошибка формата: недопустимое значение поля 'reportType'", "reportType")
            if ent.get("stockType") != "stock":
                raise ApiError(400, 2016, "Ошибка формата: недопустимое значение поля 'stockType'", "stockType")

    def _finish_entity(self, type_: str, ent: dict) -> None:
        """Derived fields after a write."""
        if type_ == "productfolder":
            parent = self.entities["productfolder"].get(ref_of(ent.get("productFolder"))[1] or "")
            ent["pathName"] = (f"{parent['pathName']}/{parent['name']}" if parent and parent.get("pathName")
                               else (parent["name"] if parent else ""))
        if type_ in ("product", "service"):
            folder = self.entities["productfolder"].get(ref_of(ent.get("productFolder"))[1] or "")
            ent["pathName"] = (f"{folder['pathName']}/{folder['name']}" if folder and folder.get("pathName")
                               else (folder["name"] if folder else ""))
        if type_ == "variant":
            product = self.entities["product"].get(ref_of(ent.get("product"))[1] or "")
            if product:
                ent["name"] = f"{product['name']} ({', '.join(c['value'] for c in ent.get('characteristics', []))})"
        if type_ in ("product", "variant", "service"):
            self._fill_prices(ent)

    def _doc_defaults(self, type_: str, ent: dict) -> None:
        self.doc_numbers[type_] = self.doc_numbers.get(type_, len(self.entities[type_])) + 1
        ent.setdefault("name", f"{self.doc_numbers[type_]:05d}")
        ent.setdefault("moment", self._now())
        ent.setdefault("applicable", True)
        ent.setdefault("vatEnabled", True)
        ent.setdefault("vatIncluded", True)
        ent.setdefault("printed", False)
        ent.setdefault("published", False)
        currency_id = next(iter(self.entities["currency"]), None)
        if currency_id:
            ent.setdefault("rate", {"currency": self.ref("currency", currency_id)})

    def _recalc_document(self, type_: str, ent: dict) -> None:
        rows = self.positions.get((type_, ent["id"]), [])
        total = 0.0
        vat_total = 0.0
        for r in rows:
            line = float(r.get("price", 0)) * float(r.get("quantity", 0)) * (1 - float(r.get("discount", 0)) / 100)
            total += line
            vat = float(r.get("vat", 0))
            if ent.get("vatEnabled") and vat:
                vat_total += line * vat / (100 + vat) if ent.get("vatIncluded", True) else line * vat / 100
        if rows or "sum" not in ent:
            ent["sum"] = round(total, 2)
            if ent.get("vatEnabled"):
                ent["vatSum"] = round(vat_total, 2)
        ent.setdefault("payedSum", 0.0)
        ent.setdefault("shippedSum", 0.0)
        if type_ == "customerorder":
            ent.setdefault("invoicedSum", 0.0)
            ent.setdefault("reservedSum", 0.0)

    def _make_position(self, doc_type: str, doc_id: str, item: dict, existing: dict | None) -> dict:
        if not isinstance(item, dict):
            raise ApiError(400, 2016, "Ошибка формата: позиция должна быть объектом", "positions")
        pos = dict(existing) if existing else {}
        pid = pos.get("id") or self._new_id()
        pos["meta"] = {"href": f"{self.base_url}/entity/{doc_type}/{doc_id}/positions/{pid}",
                       "type": DOCUMENT_POSITION_TYPES[doc_type], "mediaType": "application/json"}
        pos["id"] = pid
        pos["accountId"] = ACCOUNT_ID
        if "assortment" in item or not existing:
            assortment = item.get("assortment")
            if assortment is None:
                raise required_missing("assortment")
            atype, aid = ref_of(assortment)
            if atype not in ASSORTMENT_TYPES + ("bundle",) or aid not in self.entities.get(atype, {}):
                raise ApiError(412, 1021, f"Объект с типом '{atype}' и идентификатором '{aid}' не найден",
                               "assortment")
            meta = self.meta(atype, aid)
            if isinstance(assortment.get("meta"), dict) and "uuidHref" in assortment["meta"]:
                meta["uuidHref"] = assortment["meta"]["uuidHref"]
            pos["assortment"] = {"meta": meta}
        for key, default in (("quantity", 1.0), ("price", 0.0), ("discount", 0), ("vat", 0), ("vatEnabled", False)):
            if key in item and item[key] is not None:
                pos[key] = item[key]
            else:
                pos.setdefault(key, default)
        for key in ("reserve", "pack", "shipped", "things", "overhead", "cost", "gtd", "country"):
            if key in item and item[key] is not None:
                pos[key] = item[key]
        if doc_type == "customerorder":
            pos.setdefault("reserve", 0)
            pos.setdefault("shipped", 0)
        return pos

    def _set_positions(self, doc_type: str, doc_id: str, items: Any, replace: bool) -> None:
        if not isinstance(items, list):
            if isinstance(items, dict) and isinstance(items.get("rows"), list):
                items = items["rows"]
            else:
                raise ApiError(400, 2016, "Ошибка формата: значение поля 'positions' не соответствует типу массив",
                               "positions")
        if len(items) > 1000:
            raise ApiError(413, 2007, "Превышено максимальное количество позиций в запросе (1000)", "positions")
        old = {p["id"]: p for p in self.positions.get((doc_type, doc_id), [])}
        new_rows = []
        for item in items:
            pid = item.get("id") if isinstance(item, dict) else None
            if pid is None and isinstance(item, dict) and isinstance(item.get("meta"), dict):
                pid = id_from_href(item["meta"].get("href", ""))
            new_rows.append(self._make_position(doc_type, doc_id, item, old.get(pid)))
        if replace:
            self.positions[(doc_type, doc_id)] = new_rows
        else:
            self.positions[(doc_type, doc_id)] = list(old.values()) + new_rows

    def _create_locked(self, type_: str, body: Any, ctx: WriteContext) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, 2016, "Ошибка формата: элемент должен быть объектом")
        sync_id = body.get("syncId")
        if sync_id is not None:
            existing_id = self.sync_index.get((type_, str(sync_id)))
            if existing_id and existing_id in self.entities[type_]:
                return self.entities[type_][existing_id]
        self._validate_required(type_, body)
        new_id = self._new_id()
        ent: dict[str, Any] = {"meta": self.meta(type_, new_id), "id": new_id, "accountId": ACCOUNT_ID}
        if type_ in WITH_OWNER:
            ent["owner"] = {"meta": self.meta("employee", EMPLOYEE_ID)}
            ent["shared"] = False
            ent["group"] = {"meta": self.meta("group", GROUP_ID)}
        now = self._now()
        ent["updated"] = now
        if type_ in ("counterparty", "organization") or type_ in DOCUMENT_POSITION_TYPES:
            ent["created"] = now
        self._apply_fields(type_, ent, body, creating=True)
        if type_ not in ("webhook", "webhookstock"):
            ent.setdefault("externalCode", self._new_external_code())
        if type_ in ARCHIVABLE and type_ not in ("uom", "currency"):
            ent.setdefault("archived", False)
        if type_ == "counterparty":
            ent.setdefault("companyType", "legal")
        if type_ in ("product",):
            ent.setdefault("variantsCount", 0)
            ent.setdefault("barcodes", [{"ean13": ean13(self._rng.getrandbits(36))}])
            ent.setdefault("paymentItemType", "GOOD")
        if type_ == "webhook":
            ent.setdefault("method", "POST")
            ent.setdefault("enabled", True)
            if ent.get("action") == "UPDATE":
                ent.setdefault("diffType", "NONE")
            elif "diffType" in ent:
                del ent["diffType"]
        if type_ == "webhookstock":
            ent.setdefault("enabled", True)
        self._validate_webhook(type_, ent, None)
        if type_ in DOCUMENT_POSITION_TYPES:
            self._doc_defaults(type_, ent)
            self.positions[(type_, new_id)] = []
            if "positions" in body:
                self._set_positions(type_, new_id, body["positions"], replace=True)
            self._recalc_document(type_, ent)
        self._finish_entity(type_, ent)
        self.entities[type_][new_id] = ent
        if sync_id is not None:
            self.sync_index[(type_, str(sync_id))] = new_id
        if type_ == "variant":
            self._recount_variants()
        ctx.events.append((type_, new_id, "CREATE", None))
        return ent

    def _update_locked(self, type_: str, id_: str, body: Any, ctx: WriteContext) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, 2016, "Ошибка формата: тело запроса должно быть объектом")
        old = self.entities[type_].get(id_)
        if old is None:
            raise not_found(type_, id_)
        ent = dict(old)
        changed = self._apply_fields(type_, ent, body, creating=False)
        if type_ in ("webhook",) and ent.get("action") != "UPDATE":
            ent.pop("diffType", None)
        self._validate_webhook(type_, ent, id_)
        if type_ in DOCUMENT_POSITION_TYPES and "positions" in body:
            before = self.positions.get((type_, id_), [])
            self._set_positions(type_, id_, body["positions"], replace=True)
            if self.positions[(type_, id_)] != before:
                changed.append("positions")
            self._recalc_document(type_, ent)
        self._finish_entity(type_, ent)
        ent["updated"] = self._now()
        self.entities[type_][id_] = ent
        if type_ == "variant":
            self._recount_variants()
        if type_ == "product" and ("name" in changed):
            for vid, v in list(self.entities["variant"].items()):
                if ref_of(v.get("product"))[1] == id_:
                    nv = dict(v)
                    self._finish_entity("variant", nv)
                    self.entities["variant"][vid] = nv
        ctx.events.append((type_, id_, "UPDATE", changed))
        return ent

    def _delete_locked(self, type_: str, id_: str, ctx: WriteContext) -> None:
        ent = self.entities[type_].get(id_)
        if ent is None:
            raise not_found(type_, id_)
        if type_ == "product" and any(ref_of(v.get("product"))[1] == id_ for v in self.entities["variant"].values()):
            raise ApiError(409, 1028, "Объект уже используется и не может быть удален")
        del self.entities[type_][id_]
        if ent.get("syncId"):
            self.sync_index.pop((type_, ent["syncId"]), None)
        self.positions.pop((type_, id_), None)
        if type_ in ASSORTMENT_TYPES:
            now = self.clock.now()
            for key, row in self.stock.items():
                if key[0] == id_:
                    self.stock[key] = {"stock": 0.0, "reserve": 0.0, "inTransit": 0.0, "changed": now}
                    self._mark_stock_dirty(now)
        if type_ == "variant":
            self._recount_variants()
        ctx.events.append((type_, id_, "DELETE", None))

    def _upsert_element_locked(self, type_: str, item: Any, ctx: WriteContext) -> dict:
        if isinstance(item, dict) and isinstance(item.get("meta"), dict) and item["meta"].get("href"):
            return self._update_locked(type_, id_from_href(item["meta"]["href"]), item, ctx)
        return self._create_locked(type_, item, ctx)

    # ---- public write API (used by HTTP handlers and by tests directly) --------------------------

    def _write(self, fn: Callable[[WriteContext], Any], ctx: WriteContext | None = None) -> Any:
        ctx = ctx or WriteContext(source="app")
        with self._lock:
            result = fn(ctx)
        self._emit_events(ctx)
        return result

    def create(self, type_: str, body: dict, ctx: WriteContext | None = None) -> dict:
        return self._write(lambda c: self._present(type_, self._create_locked(type_, body, c)), ctx)

    def update(self, type_: str, id_: str, body: dict, ctx: WriteContext | None = None) -> dict:
        return self._write(lambda c: self._present(type_, self._update_locked(type_, id_, body, c)), ctx)

    def delete(self, type_: str, id_: str, ctx: WriteContext | None = None) -> None:
        self._write(lambda c: self._delete_locked(type_, id_, c), ctx)

    def ui_write(self, type_: str, body: dict) -> dict:
        """Create or update as a user in the UI would: no DisableByPrefix, webhooks fire."""
        if type_ not in self.entities:
            raise ApiError(404, 1005, f"Неизвестный тип: {type_}")
        id_ = body.get("id") or (id_from_href(body["meta"]["href"]) if isinstance(body.get("meta"), dict) else None)
        with self._lock:
            exists = id_ in self.entities[type_] if id_ else False
        body = {k: v for k, v in body.items() if k not in ("id",)}
        if exists:
            return self.update(type_, id_, body, WriteContext(source="app"))
        return self.create(type_, body, WriteContext(source="app"))

    def set_order_state(self, order_id: str, name: str, doc_type: str = "customerorder") -> dict:
        state = self.find_state(doc_type, name)
        if state is None:
            raise ApiError(404, 1021, f"Статус '{name}' не найден")
        return self.update(doc_type, order_id, {"state": {"meta": dict(state["meta"])}}, WriteContext(source="app"))

    def add_token(self, token: str, login: str | None = None) -> dict:
        with self._lock:
            self.tokens[token] = login or self.login
        return {"token": token, "login": login or self.login}

    def set_user(self, login: str, password: str) -> dict:
        with self._lock:
            self.users[login] = password
        return {"login": login}

    def configure_ratelimit(self, **cfg: Any) -> dict:
        with self._lock:
            unknown = set(cfg) - set(self.ratelimit)
            if unknown:
                raise ApiError(400, 1040, f"unknown ratelimit keys {sorted(unknown)}")
            self.ratelimit.update(cfg)
            if cfg.get("reset_window", True):
                for lim in self.limits.values():
                    lim.window_start = 0.0
                    lim.used = 0
            return dict(self.ratelimit)

    def set_clock(self, **kwargs: Any) -> dict:
        now = self.clock.set(**kwargs)
        return {"msk": fmt_msk(now)}

    # ---- stock ----------------------------------------------------------------------------------

    def _mark_stock_dirty(self, when: datetime) -> None:
        if self._stock_dirty_since is None or when < self._stock_dirty_since:
            self._stock_dirty_since = when

    def set_stock(self, assortment_id: str, store_id: str, stock: float | None = None,
                  reserve: float | None = None, in_transit: float | None = None) -> dict:
        with self._lock:
            if not any(assortment_id in self.entities[t] for t in ASSORTMENT_TYPES):
                raise ApiError(404, 1021, f"Товар или модификация '{assortment_id}' не найдены")
            if store_id not in self.entities["store"]:
                raise not_found("store", store_id)
            now = self.clock.now()
            row = dict(self.stock.get((assortment_id, store_id), {"stock": 0.0, "reserve": 0.0, "inTransit": 0.0}))
            for key, value in (("stock", stock), ("reserve", reserve), ("inTransit", in_transit)):
                if value is not None:
                    row[key] = float(value)
            row["changed"] = now
            self.stock[(assortment_id, store_id)] = row
            self._mark_stock_dirty(now)
            return {"assortmentId": assortment_id, "storeId": store_id, "stock": row["stock"],
                    "reserve": row["reserve"], "inTransit": row["inTransit"], "changed": fmt_msk(now)}

    @staticmethod
    def _stock_value(row: dict, stock_type: str) -> float:
        if stock_type == "freeStock":
            return row["stock"] - row["reserve"]
        if stock_type == "quantity":
            return row["stock"] - row["reserve"] + row["inTransit"]
        return row[stock_type]

    # ---- webhooks --------------------------------------------------------------------------------

    def _emit_events(self, ctx: WriteContext) -> None:
        if not ctx.events:
            return
        with self._lock:
            hooks = [h for h in self.entities["webhook"].values() if h.get("enabled", True)]
            audit_id = self._new_id()
            moment = fmt_msk(self.clock.now(), ms=False)
            per_hook: dict[str, list] = {}
            for type_, id_, action, changed in ctx.events:
                for hook in hooks:
                    if hook.get("entityType") != type_ or hook.get("action") != action:
                        continue
                    event = {"meta": {"type": type_, "href": f"{self.base_url}/entity/{type_}/{id_}"}}
                    if action == "UPDATE" and hook.get("diffType") == "FIELDS" and changed is not None:
                        event["updatedFields"] = list(changed)
                    event["action"] = action
                    event["accountId"] = ACCOUNT_ID
                    url = hook["url"]
                    prefix = next((p for p in ctx.disable_prefixes if p and url.startswith(p)), None)
                    if prefix is not None:
                        self.suppressed.append({"url": url, "prefix": prefix, "webhookId": hook["id"],
                                                "entityType": type_, "action": action, "href": event["meta"]["href"]})
                        continue
                    per_hook.setdefault(hook["id"], [hook, []])[1].append(event)
            for hook, events in per_hook.values():
                body = {"auditContext": {"meta": {"type": "audit", "href": f"{self.base_url}/audit/{audit_id}"},
                                         "moment": moment, "uid": ctx.uid},
                        "events": events}
                self._enqueue({"kind": "entity", "url": hook["url"], "webhookId": hook["id"], "body": body})

    def post_stock_webhook(self, changed_since: str | None = None, report_type: str | None = None) -> dict:
        """What МойСклад does every 1–5 min when stock changed: POST the reportUrl to webhookstock URLs."""
        with self._lock:
            if changed_since is None:
                since = self._stock_dirty_since or self.clock.now()
                changed_since = fmt_msk(since, ms=False)
            self._stock_dirty_since = None
            sent = []
            for hook in self.entities["webhookstock"].values():
                if not hook.get("enabled", True) or (report_type and hook.get("reportType") != report_type):
                    continue
                rt = hook.get("reportType", "all")
                body = {"accountId": ACCOUNT_ID, "stockType": hook.get("stockType", "stock"), "reportType": rt,
                        "reportUrl": f"{self.base_url}/report/stock/{rt}/current?changedSince={changed_since}"}
                self._enqueue({"kind": "stock", "url": hook["url"], "webhookId": hook["id"], "body": body})
                sent.append({"url": hook["url"], "body": body})
        return {"changedSince": changed_since, "sent": sent}

    def _enqueue(self, job: dict) -> None:
        job["requestId"] = str(uuid.uuid4())
        self._pending += 1
        self._jobs.put(job)

    def _webhook_worker(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._deliver(job)
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    def _deliver(self, job: dict) -> None:
        sep = "&" if "?" in job["url"] else "?"
        target = f"{job['url']}{sep}requestId={job['requestId']}"
        parts = urllib.parse.urlsplit(target)
        payload = json.dumps(job["body"], ensure_ascii=False).encode("utf-8")
        base_record = {"requestId": job["requestId"], "url": job["url"], "kind": job["kind"],
                       "webhookId": job["webhookId"], "body": job["body"]}
        if parts.hostname not in self.allowed_webhook_hosts:
            with self._lock:
                self.undeliverable.append(dict(base_record, error="host is not local (allowed_webhook_hosts)"))
            return
        timeout = self.webhook_timeout_ms / 1000.0
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        for attempt in range(1, self.webhook_retries + 2):
            if self._stopping.is_set():
                return
            started = time.monotonic()
            status = None
            error = None
            try:
                if parts.scheme == "https":
                    conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                        parts.hostname, parts.port or 443, timeout=timeout,
                        context=ssl._create_unverified_context())
                else:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
                try:
                    conn.request("POST", path, body=payload,
                                 headers={"User-Agent": WEBHOOK_UA, "Content-Type": "application/json",
                                          "Content-Length": str(len(payload))})
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                finally:
                    conn.close()
            except (socket.timeout, TimeoutError):
                error = "timeout"
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
            latency = int((time.monotonic() - started) * 1000)
            ok = status is not None and 200 <= status < 300 and latency <= self.webhook_timeout_ms
            if status is not None and not ok and error is None:
                error = "slow answer" if 200 <= status < 300 else f"HTTP {status}"
            with self._lock:
                self.deliveries.append(dict(base_record, attempt=attempt, status=status, latency_ms=latency, ok=ok,
                                            error=error))
            if ok:
                return

    def flush_webhooks(self, timeout: float = 30.0) -> bool:
        """Wait until every queued webhook delivery (with its retries) finished; False on deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0 or not self._workers:
                    return self._pending == 0
                self._cond.wait(left)
        return True

    def webhook_deliveries(self) -> dict:
        with self._lock:
            return {"deliveries": [dict(d) for d in self.deliveries], "suppressed": [dict(s) for s in self.suppressed],
                    "undeliverable": [dict(u) for u in self.undeliverable], "pending": self._pending}

    # ---- faults ---------------------------------------------------------------------------------

    def add_fault(self, kind: str, count: int = 1, path: str = "", method: str | None = None, status: int = 503,
                  code: int | None = None, delay_ms: int = 0) -> dict:
        if kind not in ("status", "delay", "accept_then_timeout", "malformed_json", "redirect"):
            raise ApiError(400, 1040, f"unknown fault kind {kind!r}")
        if path.startswith(API_PATH):
            path = path[len(API_PATH):]
        if kind == "accept_then_timeout":
            method = method or "POST"
        if kind == "malformed_json":
            method = method or "GET"
        fault = Fault(kind=kind, count=int(count), path=path, method=method.upper() if method else None,
                      status=int(status), code=code, delay_ms=int(delay_ms))
        with self._lock:
            self.faults.append(fault)
        return fault.describe()

    def clear_faults(self) -> None:
        with self._lock:
            self.faults = []
        self.release_delays()

    def release_delays(self) -> None:
        """Cut every injected delay short (the slow responses answer now)."""
        with self._lock:
            old = self._release
            self._release = threading.Event()
        old.set()

    def _take_fault(self, kinds: tuple, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.kind in kinds and fault.matches(method, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _fault_wait(self, delay_ms: int) -> None:
        with self._lock:
            release = self._release
        release.wait(delay_ms / 1000.0)

    # ---- limits ---------------------------------------------------------------------------------

    def _limits(self, login: str) -> UserLimits:
        lim = self.limits.get(login)
        if lim is None:
            lim = self.limits[login] = UserLimits()
        return lim

    def in_flight(self, login: str | None = None) -> int:
        with self._lock:
            return self._limits(login or self.login).in_flight

    def wait_in_flight(self, count: int, login: str | None = None, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._limits(login or self.login).in_flight < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _rate_headers(self, login: str | None) -> dict:
        cfg = self.ratelimit
        remaining = cfg["budget"]
        if login and cfg["enabled"]:
            lim = self._limits(login)
            if time.monotonic() - lim.window_start < cfg["window_ms"] / 1000.0:
                remaining = max(0, cfg["budget"] - lim.used)
        return {"X-RateLimit-Limit": str(cfg["budget"]), "X-RateLimit-Remaining": str(remaining),
                "X-Lognex-Retry-TimeInterval": str(cfg["window_ms"]), "X-Lognex-Reset": "0",
                "X-Lognex-Retry-After": "0"}

    def _rate_take(self, login: str, weight: int) -> Response | None:
        cfg = self.ratelimit
        with self._lock:
            if not cfg["enabled"]:
                return None
            lim = self._limits(login)
            now = time.monotonic()
            window = cfg["window_ms"] / 1000.0
            if now - lim.window_start >= window:
                lim.window_start = now
                lim.used = 0
            if lim.used + weight > cfg["budget"]:
                reset_ms = max(1, int((lim.window_start + window - now) * 1000))
                self.served_429["1049"] += 1
                headers = self._rate_headers(login)
                headers.update({"X-Lognex-Reset": str(reset_ms), "X-Lognex-Retry-After": str(reset_ms),
                                "X-Lognex-Auth": "429002"})
                return Response(429, {"errors": [error_object(1049, RATE_ERROR)]}, headers)
            lim.used += weight
        return None

    def _count_put(self, login: str, entity_id: str) -> Response | None:
        with self._lock:
            lim = self._limits(login)
            times = lim.puts.setdefault(entity_id, deque())
            now = time.monotonic()
            while times and now - times[0] > 60.0:
                times.popleft()
            times.append(now)
            if len(times) > self.ratelimit["put_ban_threshold"]:
                lim.banned = True
                self.served_429["ban"] += 1
                return Response(429, {"errors": [error_object(1049, RATE_ERROR + ": слишком много запросов PUT "
                                                                               "к одной сущности, API заблокирован")]})
        return None

    # ---- observation ------------------------------------------------------------------------------

    def state(self) -> dict:
        with self._lock:
            return {
                "base_url": self.base_url,
                "clock": fmt_msk(self.clock.now()),
                "counts": self.counts(),
                "served_429": sum(self.served_429.values()),
                "served_429_by_code": dict(self.served_429),
                "max_concurrency": {u: lim.max_in_flight for u, lim in self.limits.items()},
                "in_flight": {u: lim.in_flight for u, lim in self.limits.items()},
                "banned": {u: lim.banned for u, lim in self.limits.items()},
                "ratelimit": dict(self.ratelimit),
                "tokens": len(self.tokens),
                "faults": [f.describe() for f in self.faults],
                "requests_total": len(self.request_log),
                "requests": [[r["method"], r["path"], r["status"]] for r in self.request_log[-2000:]],
                "webhook_deliveries": len(self.deliveries),
                "webhook_suppressed": len(self.suppressed),
                "webhook_pending": self._pending,
            }

    def requests(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self.request_log]

    def all_entities(self, type_: str) -> list[dict]:
        with self._lock:
            if type_ == "pricetype":
                return copy.deepcopy(self.price_types)
            if type_ == "state":
                return copy.deepcopy(self.states)
            if type_ == "stock":
                return [{"assortmentId": a, "storeId": s, "stock": r["stock"], "reserve": r["reserve"],
                         "inTransit": r["inTransit"], "changed": fmt_msk(r["changed"])}
                        for (a, s), r in self.stock.items()]
            if type_ not in self.entities:
                raise ApiError(404, 1005, f"Неизвестный тип: {type_}")
            return [self._present(type_, e, with_rows=True) for e in self.entities[type_].values()]

    # ---- generator ---------------------------------------------------------------------------------

    def generate(self, products: int = 1000, variants_every: int = 5, variants_per_product: int = 2,
                 folders: int | None = None, stores: int = 2) -> dict:
        """N products in folders with 3 price types, every k-th with variants, stock in `stores` stores."""
        with self._lock:
            now = self._now()
            changed = self.clock.now()
            currency_id = next(iter(self.entities["currency"]))
            currency = {"meta": self.meta("currency", currency_id)}
            uom = {"meta": self.meta("uom", "19f1edc0-fc42-4001-94cb-c9ec9c62ec10")}
            store_ids = list(self.entities["store"])
            while len(store_ids) < stores:
                st = self._create_locked("store", {"name": f"Склад {len(store_ids) + 1}"}, WriteContext())
                store_ids.append(st["id"])
            store_ids = store_ids[:stores]
            size = next((c for c in self.characteristics if c["name"] == "Размер"), None) or \
                self._add_characteristic("Размер")
            n_folders = folders if folders is not None else max(1, min(50, products // 200))
            root_id = self._new_id()
            self.entities["productfolder"][root_id] = {
                "meta": self.meta("productfolder", root_id), "id": root_id, "accountId": ACCOUNT_ID,
                "updated": now, "name": "Каталог", "externalCode": self._new_external_code(), "archived": False,
                "pathName": "", "useParentVat": True}
            folder_refs = []
            for f in range(n_folders):
                fid = self._new_id()
                self.entities["productfolder"][fid] = {
                    "meta": self.meta("productfolder", fid), "id": fid, "accountId": ACCOUNT_ID, "updated": now,
                    "name": f"Группа {f + 1:03d}", "code": f"GRP{f + 1:03d}",
                    "externalCode": self._new_external_code(), "archived": False, "pathName": "Каталог",
                    "productFolder": {"meta": self.meta("productfolder", root_id)}, "useParentVat": True}
                folder_refs.append((fid, f"Группа {f + 1:03d}"))
            start = len(self.entities["product"])
            n_variants = 0
            sizes = ("S", "M", "L", "XL", "XXL")
            for i in range(1, products + 1):
                pid = self._new_id()
                num = start + i
                fid, fname = folder_refs[(i - 1) % len(folder_refs)]
                base_price = float(10000 + (num * 137) % 900000)
                prices = [base_price, round(base_price * 0.9, 2), round(base_price * 0.8, 2)]
                product = {
                    "meta": self.meta("product", pid), "id": pid, "accountId": ACCOUNT_ID,
                    "owner": {"meta": self.meta("employee", EMPLOYEE_ID)}, "shared": False,
                    "group": {"meta": self.meta("group", GROUP_ID)}, "updated": now,
                    "name": f"Товар {num:06d}", "code": f"G{num:06d}", "externalCode": self._new_external_code(),
                    "archived": False, "pathName": f"Каталог/{fname}", "useParentVat": True,
                    "productFolder": {"meta": self.meta("productfolder", fid)}, "uom": uom,
                    "salePrices": [{"value": v, "currency": currency, "priceType": copy.deepcopy(pt)}
                                   for v, pt in zip(prices, self.price_types)],
                    "buyPrice": {"value": round(base_price * 0.6, 2), "currency": currency},
                    "article": f"ART-{num:06d}", "weight": 0, "volume": 0, "variantsCount": 0,
                    "barcodes": [{"ean13": ean13(num)}], "paymentItemType": "GOOD", "trackingType": "NOT_TRACKED"}
                with_variants = variants_every > 0 and i % variants_every == 0
                if with_variants:
                    product["variantsCount"] = variants_per_product
                    for k in range(variants_per_product):
                        vid = self._new_id()
                        value = sizes[k % len(sizes)]
                        self.entities["variant"][vid] = {
                            "meta": self.meta("variant", vid), "id": vid, "accountId": ACCOUNT_ID, "updated": now,
                            "name": f"{product['name']} ({value})", "code": f"G{num:06d}-{value}",
                            "externalCode": self._new_external_code(), "archived": False,
                            "characteristics": [{"meta": size["meta"], "id": size["id"], "name": size["name"],
                                                 "value": value}],
                            "salePrices": [{"value": v + 100 * k, "currency": currency, "priceType": copy.deepcopy(pt)}
                                           for v, pt in zip(prices, self.price_types)],
                            "buyPrice": {"value": round(base_price * 0.6, 2), "currency": currency},
                            "barcodes": [{"ean13": ean13(num * 10 + k + 1)}],
                            "product": {"meta": self.meta("product", pid)}}
                        n_variants += 1
                        for s, store_id in enumerate(store_ids):
                            self.stock[(vid, store_id)] = {"stock": float((num + k + s * 3) % 17), "reserve": 0.0,
                                                           "inTransit": 0.0, "changed": changed}
                else:
                    for s, store_id in enumerate(store_ids):
                        self.stock[(pid, store_id)] = {"stock": float((num * (s + 1)) % 23), "reserve": 0.0,
                                                       "inTransit": 0.0, "changed": changed}
                self.entities["product"][pid] = product
            return {"products": products, "variants": n_variants, "folders": n_folders + 1,
                    "stores": store_ids, "counts": self.counts()}

    # ---- HTTP: the API ------------------------------------------------------------------------------

    def handle_api(self, method: str, raw_path: str, headers: Any, body: bytes) -> Response:
        parts = urllib.parse.urlsplit(raw_path)
        path = parts.path
        sub = path[len(API_PATH):] if path.startswith(API_PATH) else path
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        login = None
        try:
            resp, login = self._handle_api_inner(method, sub, parts.query, query, headers, body)
        except ApiError as err:
            resp = Response(err.status, err.body(), dict(err.headers))
        with self._lock:
            parallel_429 = resp.headers.get("X-Lognex-Auth") == "429005"
            for k, v in self._rate_headers(login).items():
                if not (parallel_429 and k == "X-Lognex-Retry-After"):
                    resp.headers.setdefault(k, v)
            self.request_log.append({"method": method, "path": path, "query": parts.query, "status": resp.status,
                                     "user": login})
        return resp

    def _authenticate(self, header: str | None, basic_only: bool) -> str | None:
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                login, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            with self._lock:
                return login if login in self.users and self.users[login] == password else None
        if scheme == "bearer" and not basic_only:
            with self._lock:
                return self.tokens.get(value.strip())
        return None

    def _handle_api_inner(self, method: str, sub: str, raw_query: str, query: list, headers: Any,
                          body: bytes) -> tuple[Response, str | None]:
        accept = (headers.get("Accept-Encoding") or "").lower()
        if "gzip" not in [t.split(";")[0].strip() for t in accept.split(",")]:
            return Response(415, None, raw=True, gzip=False), None
        token_request = sub.rstrip("/") == "/security/token"
        login = self._authenticate(headers.get("Authorization"), basic_only=token_request)
        if login is None:
            return Response(401, {"errors": [error_object(1056, AUTH_ERROR)]},
                            {"X-Lognex-Auth": "1056", "X-Lognex-Auth-Message": AUTH_ERROR}), None
        with self._cond:
            lim = self._limits(login)
            lim.in_flight += 1
            lim.max_in_flight = max(lim.max_in_flight, lim.in_flight)
            self._cond.notify_all()
            over = self.ratelimit["parallel_enabled"] and lim.in_flight > self.ratelimit["parallel"]
        try:
            if over:
                with self._lock:
                    self.served_429["1073"] += 1
                headers_429 = self._rate_headers(login)
                headers_429.pop("X-Lognex-Retry-After", None)
                headers_429["X-Lognex-Auth"] = "429005"
                return Response(429, {"errors": [error_object(1073, PARALLEL_ERROR)]}, headers_429), login
            try:
                return self._handle_authenticated(method, sub, raw_query, query, headers, body, login), login
            except ApiError as err:
                return Response(err.status, err.body(), dict(err.headers)), login
        finally:
            with self._cond:
                self._limits(login).in_flight -= 1
                self._cond.notify_all()

    def _handle_authenticated(self, method: str, sub: str, raw_query: str, query: list, headers: Any,
                              body: bytes, login: str) -> Response:
        fault = self._take_fault(("status", "redirect", "delay"), method, sub)
        if fault is not None:
            if fault.kind == "status":
                code = fault.code or {500: 1000, 502: 1074, 503: 1074, 504: 1095}.get(fault.status, 1074)
                text = ("Превышен таймаут обращения к сервису, повторите попытку позднее" if fault.status == 504
                        else "Сервис временно недоступен, повторите попытку позднее")
                return Response(fault.status, {"errors": [error_object(code, text)]})
            if fault.kind == "redirect":
                location = f"{self.base_url}{sub}" + (f"?{raw_query}" if raw_query else "")
                return Response(308, None, {"Location": location}, raw=True, gzip=False)
            self._fault_wait(fault.delay_ms)
        weight = self.ratelimit["report_weight"] if sub.rstrip("/") in WEIGHTY_REPORTS else self.ratelimit["weight"]
        limited = self._rate_take(login, weight)
        if limited is not None:
            return limited
        payload: Any = None
        if body:
            try:
                payload = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ApiError(400, 2001, f"Ошибка формата: тело запроса не является корректным JSON: {exc}")
        prefixes: list[str] = []
        for value in headers.get_all("X-Lognex-WebHook-DisableByPrefix") or []:
            prefixes.extend(p.strip() for p in value.split(",") if p.strip())
        ctx = WriteContext(uid=login, disable_prefixes=tuple(prefixes), source="jsonapi")
        post = self._take_fault(("accept_then_timeout", "malformed_json"), method, sub)
        resp = self._route(method, sub, query, payload, ctx, login)
        self._emit_events(ctx)
        if post is not None:
            if post.kind == "malformed_json" and resp.status == 200:
                text = json.dumps(resp.body, ensure_ascii=False)
                resp = Response(200, text[: max(1, len(text) // 2)].encode("utf-8") + b'",,', resp.headers,
                                raw=True)
            elif post.kind == "accept_then_timeout":
                self._fault_wait(post.delay_ms)
        return resp

    def _route(self, method: str, sub: str, query: list, payload: Any, ctx: WriteContext, login: str) -> Response:
        seg = [urllib.parse.unquote(s) for s in sub.split("/") if s]
        q = {}
        for k, v in query:
            q.setdefault(k, v)
        if seg == ["security", "token"]:
            if method != "POST":
                raise ApiError(405, 1039, f"Операция {method} не поддерживается для данного ресурса")
            token = binascii.hexlify(self._rng.getrandbits(160).to_bytes(20, "big")).decode()
            with self._lock:
                for t in [t for t, u in self.tokens.items() if u == login]:
                    del self.tokens[t]
                self.tokens[token] = login
            return Response(200, {"access_token": token})
        if not seg:
            raise ApiError(404, 1002, f"Неопознанный путь: {API_PATH}{sub}")
        if seg[0] == "context":
            return self._route_context(method, seg, payload)
        if seg[0] == "report" and len(seg) >= 3 and seg[1] == "stock":
            if method != "GET":
                raise ApiError(405, 1039, f"Операция {method} не поддерживается для данного ресурса")
            return self._route_stock(seg[2:], query, q)
        if seg[0] == "entity" and len(seg) >= 2:
            return self._route_entity(method, seg[1:], query, q, payload, ctx, login)
        raise ApiError(404, 1002, f"Неопознанный путь: {API_PATH}{sub}")

    def _route_context(self, method: str, seg: list, payload: Any) -> Response:
        if seg == ["context", "employee"] and method == "GET":
            return Response(200, {"meta": {"href": f"{self.base_url}/context/employee",
                                           "metadataHref": f"{self.base_url}/entity/employee/metadata",
                                           "type": "employee", "mediaType": "application/json"},
                                  "id": EMPLOYEE_ID, "accountId": ACCOUNT_ID, "name": "Администратор",
                                  "uid": self.login, "updated": self._now(), "archived": False})
        if seg == ["context", "companysettings"] and method == "GET":
            with self._lock:
                settings = dict(self.company_settings, priceTypes=copy.deepcopy(self.price_types))
            return Response(200, settings)
        if seg[:3] == ["context", "companysettings", "pricetype"]:
            with self._lock:
                if len(seg) == 3 and method == "GET":
                    return Response(200, copy.deepcopy(self.price_types))
                if len(seg) == 3 and method == "POST":
                    return Response(200, self._replace_price_types(payload))
                if len(seg) == 4 and method == "GET":
                    if seg[3] == "default":
                        return Response(200, copy.deepcopy(self.price_types[0]))
                    pt = next((p for p in self.price_types if p["id"] == seg[3]), None)
                    if pt is None:
                        raise not_found("pricetype", seg[3])
                    return Response(200, copy.deepcopy(pt))
        raise ApiError(404, 1002, f"Неопознанный путь: {API_PATH}/{'/'.join(seg)}")

    def _replace_price_types(self, payload: Any) -> list:
        if not isinstance(payload, list):
            raise ApiError(400, 2016, "Ошибка формата: ожидается массив типов цен")
        new = []
        for item in payload:
            if not isinstance(item, dict) or not item.get("name"):
                raise required_missing("name")
            pid = id_from_href(item["meta"]["href"]) if isinstance(item.get("meta"), dict) else None
            old = next((p for p in self.price_types if p["id"] == pid), None)
            if pid and old is None:
                raise not_found("pricetype", pid)
            pid = pid or self._new_id()
            new.append({"meta": self.meta("pricetype", pid), "id": pid, "name": item["name"],
                        "externalCode": item.get("externalCode") or (old or {}).get("externalCode")
                        or str(uuid.UUID(int=self._rng.getrandbits(128), version=4))})
        self.price_types = new
        return copy.deepcopy(new)

    # ---- collections ------------------------------------------------------------------------------

    def _paging(self, q: dict) -> tuple[int, int]:
        try:
            limit = int(q.get("limit", "1000"))
            offset = int(q.get("offset", "0"))
        except ValueError:
            raise ApiError(400, 1040, "Неверно заданы параметры запроса: limit и offset должны быть числами")
        if limit < 1 or limit > 1000:
            raise ApiError(400, 1040, "Неверно заданы параметры запроса: параметр 'limit' должен быть от 1 до 1000",
                           "limit")
        if offset < 0:
            raise ApiError(400, 1040, "Неверно заданы параметры запроса: параметр 'offset' не может быть "
                                      "отрицательным", "offset")
        return limit, offset

    def _page(self, rows: list, query: list, q: dict, href: str, meta_extra: dict,
              with_context: bool = True) -> dict:
        limit, offset = self._paging(q)
        size = len(rows)
        others = [(k, v) for k, v in query if k not in ("limit", "offset")]

        def link(off: int) -> str:
            qs = urllib.parse.urlencode(others + [("limit", str(limit)), ("offset", str(off))],
                                        quote_via=urllib.parse.quote)
            return f"{href}?{qs}"

        meta = {"href": href, **meta_extra, "mediaType": "application/json", "size": size, "limit": limit,
                "offset": offset}
        if offset + limit < size:
            meta["nextHref"] = link(offset + limit)
        if offset > 0:
            meta["previousHref"] = link(max(0, offset - limit))
        out = {"context": self._context()} if with_context else {}
        out["meta"] = meta
        out["rows"] = rows[offset:offset + limit]
        return out

    def _filter(self, type_: str, rows: list[dict], text: str) -> list[dict]:
        conds = parse_filter(text) if text else []
        fields = {c[0] for c in conds}
        if type_ in ARCHIVABLE and "archived" not in fields:
            rows = [r for r in rows if not r.get("archived")]
        if not conds:
            return rows
        eq_groups: dict[str, list[str]] = {}
        others = []
        for fld, op, value in conds:
            if op == "=":
                eq_groups.setdefault(fld, []).append(value)
            else:
                others.append((fld, op, value))
        for fld in eq_groups:
            if any(f == fld and op in (">", "<", ">=", "<=") for f, op, _ in others):
                raise ApiError(412, 1034, f"Ошибка фильтрации: поле '{fld}' нельзя указывать одновременно с "
                                          f"операторами '=' и сравнения", fld)
        for fld, _, value in conds:
            if fld in DATE_FIELDS and value:
                try:
                    parse_msk(value)
                except ValueError:
                    raise ApiError(412, 1035, "Ошибка фильтрации: неверный формат даты параметра фильтрации", fld)

        def keep(row: dict) -> bool:
            for fld, values in eq_groups.items():
                if not any(self._match(type_, row, fld, "=", v) for v in values):
                    return False
            return all(self._match(type_, row, fld, op, v) for fld, op, v in others)

        return [r for r in rows if keep(r)]

    def _field(self, type_: str, row: dict, fld: str) -> Any:
        if fld == "productid" and type_ == "variant":
            return ref_of(row.get("product"))[1]
        if fld == "isDeleted":
            return False
        head, _, rest = fld.partition(".")
        value = row.get(head)
        if rest:
            full = self._resolve(value) if isinstance(value, dict) else None
            return self._field(type_, full, rest) if full else None
        return value

    def _match(self, type_: str, row: dict, fld: str, op: str, want: str) -> bool:
        value = self._field(type_, row, fld)
        if isinstance(value, dict) and "meta" in value:
            got = ref_of(value)[1]
            want_id = id_from_href(want) if "/" in want else want
            return (got == want_id) if op == "=" else (got != want_id) if op == "!=" else False
        if want == "" and op in ("=", "!="):
            empty = value in (None, "", [])
            return empty if op == "=" else not empty
        if value is None:
            return op == "!="
        if fld in DATE_FIELDS:
            left, right = parse_msk(str(value)), parse_msk(want)
        elif isinstance(value, bool):
            left, right = value, want.lower() == "true"
            if op not in ("=", "!="):
                raise ApiError(412, 1034, f"Ошибка фильтрации: оператор '{op}' не применим к полю '{fld}'", fld)
        elif isinstance(value, (int, float)):
            try:
                left, right = float(value), float(want)
            except ValueError:
                raise ApiError(412, 1014, f"Неверное значение '{want}' параметра фильтрации '{fld}'", fld)
        elif isinstance(value, list):
            items = [str(v).lower() for v in value]
            if op == "=":
                return want.lower() in items
            if op == "!=":
                return want.lower() not in items
            return any(_string_op(i, op, want.lower()) for i in items)
        else:
            left, right = str(value), want
            if op in ("~", "~=", "=~"):
                return _string_op(left.lower(), op, right.lower())
        return {"=": left == right, "!=": left != right, ">": left > right, "<": left < right,
                ">=": left >= right, "<=": left <= right}.get(op, False)

    def _order(self, rows: list[dict], text: str) -> list[dict]:
        for part in reversed([p for p in text.split(";") if p]):
            fld, _, direction = part.partition(",")
            rows = sorted(rows, key=lambda r: (r.get(fld) is not None, str(r.get(fld, ""))
                                               if not isinstance(r.get(fld), (int, float)) else r.get(fld)),
                          reverse=direction.strip().lower() == "desc")
        return rows

    def _search(self, rows: list[dict], text: str) -> list[dict]:
        needle = text.lower()
        keys = ("name", "code", "article", "externalCode", "legalTitle", "email", "phone", "inn", "description")
        return [r for r in rows if any(needle in str(r.get(k, "")).lower() for k in keys)]

    def _list_entities(self, type_: str, query: list, q: dict) -> Response:
        with self._lock:
            rows = list(self.entities[type_].values())
            rows = self._filter(type_, rows, q.get("filter", ""))
            if q.get("search"):
                rows = self._search(rows, q["search"])
            if q.get("order"):
                rows = self._order(rows, q["order"])
            page = self._page(rows, query, q, f"{self.base_url}/entity/{type_}",
                              {"metadataHref": f"{self.base_url}/entity/{type_}/metadata", "type": type_})
            limit = page["meta"]["limit"]
            expand = [e for e in q.get("expand", "").split(",") if e] if limit <= 100 else []
            page["rows"] = [self._present(type_, r, expand) for r in page["rows"]]
        return Response(200, page)

    # ---- entity routes ----------------------------------------------------------------------------

    def _route_entity(self, method: str, seg: list, query: list, q: dict, payload: Any, ctx: WriteContext,
                      login: str) -> Response:
        type_ = seg[0]
        if type_ not in self.entities:
            if type_ == "assortment" and method == "GET" and len(seg) == 1:
                return self._list_assortment(query, q)
            raise ApiError(412, 1005, f"Неизвестный тип: {type_}")
        expand_all = [e for e in q.get("expand", "").split(",") if e]
        if len(seg) == 1:
            if method == "GET":
                return self._list_entities(type_, query, q)
            if method == "POST":
                if isinstance(payload, list):
                    return self._mass_upsert(type_, payload, ctx)
                if payload is None:
                    raise ApiError(400, 1027, "Запрос не содержит объектов")
                with self._lock:
                    ent = self._create_locked(type_, payload, ctx)
                    return Response(200, self._present(type_, ent, expand_all))
            raise ApiError(405, 1039, f"Операция {method} не поддерживается для данного ресурса")
        second = seg[1]
        if len(seg) == 2 and second == "batch" and method == "POST":
            return self._mass_upsert(type_, payload, ctx)
        if len(seg) == 2 and second == "delete" and method == "POST":
            return self._mass_delete(type_, payload, ctx)
        if second == "metadata":
            return self._route_metadata(type_, method, seg, payload)
        if second == "syncid" and len(seg) == 3:
            with self._lock:
                id_ = self.sync_index.get((type_, seg[2]))
                if id_ is None or id_ not in self.entities[type_]:
                    raise ApiError(404, 1021, f"Объект с типом '{type_}' и syncId '{seg[2]}' не найден")
                if method == "GET":
                    return Response(200, self._present(type_, self.entities[type_][id_], expand_all))
                if method == "DELETE":
                    self._delete_locked(type_, id_, ctx)
                    return Response(200, None, raw=True)
                if method == "PUT":
                    return Response(200, self._present(type_, self._update_locked(type_, id_, payload, ctx)))
            raise ApiError(405, 1039, f"Операция {method} не поддерживается для данного ресурса")
        if second == "new" and len(seg) == 2 and method == "PUT":
            return Response(200, self._template(type_, payload or {}))
        id_ = second
        if len(seg) == 2:
            if method == "GET":
                with self._lock:
                    ent = self.entities[type_].get(id_)
                    if ent is None:
                        raise not_found(type_, id_)
                    return Response(200, self._present(type_, ent, expand_all))
            if method == "PUT":
                banned = self._count_put(login, id_)
                if banned is not None:
                    return banned
                with self._lock:
                    ent = self._update_locked(type_, id_, payload, ctx)
                    return Response(200, self._present(type_, ent, expand_all))
            if method == "DELETE":
                with self._lock:
                    self._delete_locked(type_, id_, ctx)
                return Response(200, None, raw=True)
            if method == "POST":
                raise ApiError(400, 1006, "Создание объектов с указанным идентификатором запрещено")
            raise ApiError(405, 1039, f"Операция {method} не поддерживается для данного ресурса")
        if seg[2] == "positions" and type_ in DOCUMENT_POSITION_TYPES:
            return self._route_positions(type_, id_, method, seg[3:], query, q, payload, ctx)
        raise ApiError(404, 1002, f"Неопознанный путь: {API_PATH}/entity/{'/'.join(seg)}")

    def _mass(self, payload: Any, element: Callable[[Any], dict]) -> Response:
        """Array operations: ≤ 1000 elements, each answered in order or replaced by {"errors":[…]}."""
        if not isinstance(payload, list):
            raise ApiError(400, 2016, "Ошибка формата: ожидается массив")
        if len(payload) > 1000:
            raise ApiError(413, 2007, "Превышено максимальное количество элементов в массиве (1000)")
        out = []
        with self._lock:
            for item in payload:
                try:
                    out.append(element(item))
                except ApiError as err:
                    out.append(err.body())
        return Response(200, out)

    def _mass_upsert(self, type_: str, payload: Any, ctx: WriteContext) -> Response:
        return self._mass(payload, lambda item: self._present(type_, self._upsert_element_locked(type_, item, ctx)))

    def _mass_delete(self, type_: str, payload: Any, ctx: WriteContext) -> Response:
        def delete_one(item: Any) -> dict:
            rid = ref_of(item)[1]
            if rid is None:
                raise ApiError(400, 2010, "Ошибка формата: поле 'meta.href' отсутствует", "meta")
            self._delete_locked(type_, rid, ctx)
            return {"info": f"Сущность '{type_}' с UUID: {rid} успешно удалена"}

        return self._mass(payload, delete_one)

    def _route_metadata(self, type_: str, method: str, seg: list, payload: Any) -> Response:
        base = {"meta": {"href": f"{self.base_url}/entity/{type_}/metadata", "mediaType": "application/json"}}
        with self._lock:
            if type_ in DOCUMENT_POSITION_TYPES:
                states = copy.deepcopy(self.states.get(type_, []))
                if len(seg) == 2 and method == "GET":
                    return Response(200, dict(base, attributes=[], states=states, createShared=False))
                if len(seg) == 3 and seg[2] == "states" and method == "GET":
                    return Response(200, states)
                if len(seg) == 4 and seg[2] == "states" and method == "GET":
                    state = next((s for s in states if s["id"] == seg[3]), None)
                    if state is None:
                        raise not_found("state", seg[3])
                    return Response(200, state)
            if type_ == "variant":
                chars = [{k: v for k, v in c.items()} for c in self.characteristics]
                if len(seg) == 2 and method == "GET":
                    return Response(200, dict(base, characteristics=chars))
                if len(seg) == 3 and seg[2] == "characteristics":
                    if method == "GET":
                        return Response(200, chars)
                    if method == "POST":
                        if not isinstance(payload, dict) or not payload.get("name"):
                            raise required_missing("name")
                        return Response(200, dict(self._add_characteristic(payload["name"])))
            if len(seg) == 2 and method == "GET":
                return Response(200, dict(base, attributes=[], createShared=False))
            if len(seg) == 3 and seg[2] == "attributes" and method == "GET":
                # Custom-field definitions: none in the seed (a list envelope, as the real API answers).
                href = f"{self.base_url}/entity/{type_}/metadata/attributes"
                return Response(200, {"meta": {"href": href, "type": "attributemetadata", "mediaType": "application/json",
                                               "size": 0, "limit": 1000, "offset": 0}, "rows": []})
        raise ApiError(404, 1002, f"Неопознанный путь: {API_PATH}/entity/{'/'.join(seg)}")

    def _route_positions(self, type_: str, doc_id: str, method: str, rest: list, query: list, q: dict,
                         payload: Any, ctx: WriteContext) -> Response:
        with self._lock:
            doc = self.entities[type_].get(doc_id)
            if doc is None:
                raise not_found(type_, doc_id)
            rows = self.positions.setdefault((type_, doc_id), [])
            href = f"{self.base_url}/entity/{type_}/{doc_id}/positions"
            if not rest:
                if method == "GET":
                    page = self._page(list(rows), query, q, href,
                                      {"metadataHref": f"{self.base_url}/entity/{type_}/metadata",
                                       "type": DOCUMENT_POSITION_TYPES[type_]})
                    limit = page["meta"]["limit"]
                    expand = [e for e in q.get("expand", "").split(",") if e] if limit <= 100 else []
                    if expand:
                        page["rows"] = [self._expanded(r, expand) for r in page["rows"]]
                    return Response(200, page)
                if method == "POST":
                    items = payload if isinstance(payload, list) else [payload]
                    before = len(rows)
                    self._set_positions(type_, doc_id, items, replace=False)
                    created = self.positions[(type_, doc_id)][before:]
                    self._touch_document(type_, doc_id, ctx)
                    return Response(200, created if isinstance(payload, list) else created[0])
            if rest == ["delete"] and method == "POST":
                ids = {ref_of(i)[1] for i in payload or []}
                self.positions[(type_, doc_id)] = [r for r in rows if r["id"] not in ids]
                self._touch_document(type_, doc_id, ctx)
                return Response(200, None, raw=True)
            if len(rest) == 1:
                pos = next((r for r in rows if r["id"] == rest[0]), None)
                if pos is None:
                    raise not_found(DOCUMENT_POSITION_TYPES[type_], rest[0])
                if method == "GET":
                    return Response(200, pos)
                if method == "PUT":
                    new = self._make_position(type_, doc_id, payload or {}, pos)
                    self.positions[(type_, doc_id)] = [new if r["id"] == pos["id"] else r for r in rows]
                    self._touch_document(type_, doc_id, ctx)
                    return Response(200, new)
                if method == "DELETE":
                    self.positions[(type_, doc_id)] = [r for r in rows if r["id"] != pos["id"]]
                    self._touch_document(type_, doc_id, ctx)
                    return Response(200, None, raw=True)
        raise ApiError(405, 1039, f"Операция {method} не поддерживается для данного ресурса")

    def _expanded(self, obj: dict, expand: list[str]) -> dict:
        out = dict(obj)
        self._expand(out, expand, 0)
        return out

    def _touch_document(self, type_: str, doc_id: str, ctx: WriteContext) -> None:
        doc = dict(self.entities[type_][doc_id])
        self._recalc_document(type_, doc)
        doc["updated"] = self._now()
        self.entities[type_][doc_id] = doc
        ctx.events.append((type_, doc_id, "UPDATE", ["positions"]))

    def _template(self, type_: str, payload: dict) -> dict:
        """PUT /entity/<doc>/new: an unsaved document pre-filled from a base document."""
        if type_ not in DOCUMENT_POSITION_TYPES:
            raise ApiError(412, 1029, f"Шаблоны для типа '{type_}' не поддерживаются")
        with self._lock:
            out: dict[str, Any] = {}
            for key in ("customerOrder", "invoiceOut"):
                base = payload.get(key)
                if base is None:
                    continue
                btype, bid = ref_of(base)
                src = self.entities.get(btype or "", {}).get(bid or "")
                if src is None:
                    raise not_found(btype or key.lower(), bid or "")
                for k in ("organization", "agent", "store", "rate", "vatEnabled", "vatIncluded", "contract",
                          "project", "salesChannel", "organizationAccount", "agentAccount"):
                    if k in src:
                        out[k] = copy.deepcopy(src[k])
                out[key] = {"meta": self.meta(btype, bid)}
                rows = [{k: v for k, v in r.items() if k not in ("meta", "id", "accountId", "reserve", "shipped")}
                        for r in self.positions.get((btype, bid), [])]
                out["positions"] = {"meta": {"href": f"{self.base_url}/entity/{type_}/new/positions",
                                             "type": DOCUMENT_POSITION_TYPES[type_],
                                             "mediaType": "application/json", "size": len(rows), "limit": 1000,
                                             "offset": 0}, "rows": rows}
                out["sum"] = src.get("sum", 0)
            out.setdefault("applicable", True)
            out["moment"] = self._now()
            return out

    def _list_assortment(self, query: list, q: dict) -> Response:
        with self._lock:
            rows = []
            for t in ("product", "service", "variant"):
                rows.extend(r for r in self.entities[t].values() if not r.get("archived"))
            rows = self._filter("assortment", rows, q.get("filter", ""))
            page = self._page(rows, query, q, f"{self.base_url}/entity/assortment",
                              {"metadataHref": f"{self.base_url}/entity/assortment/metadata", "type": "assortment"})
        return Response(200, page)

    # ---- stock reports ----------------------------------------------------------------------------

    def _route_stock(self, rest: list, query: list, q: dict) -> Response:
        if rest in (["all", "current"], ["bystore", "current"]):
            return Response(200, self._stock_current(rest[0], q))
        if rest in (["all"], ["bystore"]):
            return Response(200, self._stock_report(rest[0], query, q))
        raise ApiError(404, 1002, f"Неопознанный путь: {API_PATH}/report/stock/{'/'.join(rest)}")

    def _stock_current(self, report: str, q: dict) -> list:
        stock_type = q.get("stockType", "stock")
        if stock_type not in STOCK_TYPES:
            raise ApiError(400, 1041, f"Неверное значение '{stock_type}' параметра 'stockType', допустимые "
                                      f"значения: '{', '.join(STOCK_TYPES)}'", "stockType")
        zero_lines = "zeroLines" in q.get("include", "").split(",")
        since = None
        if "changedSince" in q:
            try:
                since = datetime.strptime(q["changedSince"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=MSK)
            except ValueError:
                raise ApiError(400, 1035, "Неверный формат даты параметра 'changedSince', ожидается "
                                          "yyyy-MM-dd HH:mm:ss", "changedSince")
            now = self.clock.now()
            if since < now - timedelta(hours=24):
                raise ApiError(400, 1040, "Неверно заданы параметры запроса: значение параметра 'changedSince' не "
                                          "может быть раньше, чем 24 часа назад", "changedSince")
        only_assortment: set[str] | None = None
        only_store: set[str] | None = None
        if q.get("filter"):
            for fld, op, value in parse_filter(q["filter"]):
                ids = {v.strip() for v in value.split(",") if v.strip()}
                if fld == "assortmentId" and op == "=":
                    only_assortment = (only_assortment or set()) | ids
                elif fld == "storeId" and op == "=":
                    only_store = (only_store or set()) | ids
                else:
                    raise ApiError(412, 1034, f"Ошибка фильтрации: неизвестное поле '{fld}'", fld)
        with self._lock:
            items = [(a, s, r) for (a, s), r in self.stock.items()
                     if (only_assortment is None or a in only_assortment) and (only_store is None or s in only_store)]
            if report == "bystore":
                out = []
                for a, s, r in items:
                    value = self._stock_value(r, stock_type)
                    if since is not None:
                        if r["changed"] < since:
                            continue
                    elif value == 0 and not zero_lines:
                        continue
                    out.append({"assortmentId": a, "storeId": s, stock_type: value})
                return out
            totals: dict[str, float] = {}
            changed: dict[str, datetime] = {}
            for a, s, r in items:
                totals[a] = totals.get(a, 0.0) + self._stock_value(r, stock_type)
                changed[a] = max(changed.get(a, r["changed"]), r["changed"])
            if zero_lines and since is None:
                for t in ("product", "variant"):
                    for id_, ent in self.entities[t].items():
                        if (t == "product" and ent.get("variantsCount")) or (
                                only_assortment is not None and id_ not in only_assortment):
                            continue
                        totals.setdefault(id_, 0.0)
            out = []
            for a, value in totals.items():
                if since is not None:
                    if changed.get(a) is None or changed[a] < since:
                        continue
                elif value == 0 and not zero_lines:
                    continue
                out.append({"assortmentId": a, stock_type: value})
            return out

    def _stock_report(self, report: str, query: list, q: dict) -> dict:
        with self._lock:
            stores = [s for s in self.entities["store"].values()]
            store_filter: set[str] | None = None
            if q.get("filter"):
                for fld, op, value in parse_filter(q["filter"]):
                    if fld == "store" and op == "=":
                        store_filter = (store_filter or set()) | {id_from_href(value)}
            if store_filter is not None:
                stores = [s for s in stores if s["id"] in store_filter]
            store_ids = [s["id"] for s in stores]
            per: dict[str, dict[str, dict]] = {}
            for (a, s), r in self.stock.items():
                if s in store_ids:
                    per.setdefault(a, {})[s] = r
            rows = []
            for t in ("product", "variant"):
                for id_, ent in self.entities[t].items():
                    data = per.get(id_)
                    if not data or all(r["stock"] == 0 and r["reserve"] == 0 and r["inTransit"] == 0
                                       for r in data.values()):
                        continue
                    meta = self.meta(t, id_)
                    meta["href"] += "?expand=supplier" if t == "product" else "?expand=product.supplier"
                    if report == "bystore":
                        rows.append({"meta": meta, "stockByStore": [
                            {"meta": self.meta("store", s["id"]), "name": s["name"],
                             "stock": data.get(s["id"], {}).get("stock", 0.0),
                             "reserve": data.get(s["id"], {}).get("reserve", 0.0),
                             "inTransit": data.get(s["id"], {}).get("inTransit", 0.0)} for s in stores]})
                        continue
                    stock = sum(r["stock"] for r in data.values())
                    reserve = sum(r["reserve"] for r in data.values())
                    in_transit = sum(r["inTransit"] for r in data.values())
                    product = ent if t == "product" else self.entities["product"].get(ref_of(ent.get("product"))[1], {})
                    row = {"meta": meta, "stock": stock, "inTransit": in_transit, "reserve": reserve,
                           "quantity": stock - reserve + in_transit, "name": ent.get("name", ""),
                           "code": ent.get("code", ""), "price": float(ent.get("buyPrice", {}).get("value", 0.0)),
                           "salePrice": float((ent.get("salePrices") or [{"value": 0.0}])[0]["value"])}
                    if ent.get("article"):
                        row["article"] = ent["article"]
                    uom = self.entities["uom"].get(ref_of(product.get("uom"))[1] or "")
                    if uom:
                        row["uom"] = {"meta": self.meta("uom", uom["id"]), "name": uom["name"]}
                    folder = self.entities["productfolder"].get(ref_of(product.get("productFolder"))[1] or "")
                    if folder:
                        row["folder"] = {"meta": self.meta("productfolder", folder["id"]), "name": folder["name"],
                                         "pathName": folder.get("pathName", "")}
                    row["externalCode"] = ent.get("externalCode", "")
                    row["stockDays"] = 0.0
                    rows.append(row)
            return self._page(rows, query, q, f"{self.base_url}/report/stock/{report}",
                              {"type": "stock" if report == "all" else "stockbystore"})

    # ---- HTTP: the control API ------------------------------------------------------------------------

    def handle_control(self, method: str, raw_path: str, body: bytes) -> Response:
        parts = urllib.parse.urlsplit(raw_path)
        seg = [urllib.parse.unquote(s) for s in parts.path.split("/") if s][1:]
        try:
            payload = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return Response(400, {"error": f"bad JSON: {exc}"}, gzip=False)
        try:
            result = self._control(method, seg, payload)
            return Response(200, result, gzip=False)
        except ApiError as err:
            return Response(err.status, err.body(), gzip=False)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return Response(400, {"error": f"{type(exc).__name__}: {exc}"}, gzip=False)

    def _control(self, method: str, seg: list, p: Any) -> Any:
        key = (method, seg[0] if seg else "")
        if key == ("GET", "state"):
            return self.state()
        if key == ("GET", "requests"):
            return self.requests()
        if key == ("POST", "reset"):
            return self.reset(seed=p.get("seed", True))
        if key == ("POST", "seed"):
            return self.seed()
        if key == ("POST", "generate"):
            return self.generate(**p)
        if key == ("POST", "tokens"):
            return self.add_token(p["token"], p.get("login"))
        if key == ("POST", "users"):
            return self.set_user(p["login"], p["password"])
        if key == ("POST", "entity") and len(seg) == 2:
            return self.ui_write(seg[1], p)
        if key == ("DELETE", "entity") and len(seg) == 3:
            self.delete(seg[1], seg[2], WriteContext(source="app"))
            return {"deleted": seg[2]}
        if key == ("POST", "customerorder") and len(seg) == 3 and seg[2] == "state":
            return self.set_order_state(seg[1], p["name"])
        if key == ("POST", "stock"):
            items = p if isinstance(p, list) else [p]
            return [self.set_stock(i["assortmentId"], i["storeId"], i.get("stock"), i.get("reserve"),
                                   i.get("inTransit")) for i in items]
        if key == ("POST", "stockwebhook"):
            return self.post_stock_webhook(p.get("changedSince"), p.get("reportType"))
        if key == ("POST", "faults"):
            if isinstance(p, dict) and p.get("clear"):
                self.clear_faults()
                return {"faults": []}
            items = p if isinstance(p, list) else [p]
            return {"faults": [self.add_fault(**i) for i in items]}
        if key == ("DELETE", "faults"):
            self.clear_faults()
            return {"faults": []}
        if key == ("POST", "release"):
            self.release_delays()
            return {"released": True}
        if key == ("GET", "entities") and len(seg) == 2:
            return self.all_entities(seg[1])
        if key == ("GET", "webhooks") and seg[1:] == ["deliveries"]:
            return self.webhook_deliveries()
        if key == ("POST", "webhooks") and seg[1:] == ["flush"]:
            ok = self.flush_webhooks(float(p.get("timeout", 30)))
            return {"flushed": ok, **self.webhook_deliveries()}
        if key == ("POST", "webhooks") and seg[1:] == ["config"]:
            for name in ("webhook_timeout_ms", "webhook_retries"):
                if name in p:
                    setattr(self, name, int(p[name]))
            if "allowed_hosts" in p:
                self.allowed_webhook_hosts = set(LOOPBACK_HOSTS) | set(p["allowed_hosts"])
            return {"webhook_timeout_ms": self.webhook_timeout_ms, "webhook_retries": self.webhook_retries,
                    "allowed_hosts": sorted(self.allowed_webhook_hosts)}
        if key == ("POST", "clock"):
            return self.set_clock(**p)
        if key == ("GET", "clock"):
            return {"msk": fmt_msk(self.clock.now())}
        if key == ("POST", "ratelimit"):
            return self.configure_ratelimit(**p)
        raise ApiError(404, 1002, f"unknown control call {method} /__fake__/{'/'.join(seg)}")


def _string_op(value: str, op: str, want: str) -> bool:
    if op == "~":
        return want in value
    if op == "~=":
        return value.startswith(want)
    if op == "=~":
        return value.endswith(want)
    return {"=": value == want, "!=": value != want, ">": value > want, "<": value < want,
            ">=": value >= want, "<=": value <= want}[op]


FILTER_OPS = (">=", "<=", "!=", "~=", "=~", "=", ">", "<", "~")


def parse_filter(text: str) -> list[tuple[str, str, str]]:
    """``a=1;b>=2020-01-01 00:00;c~x\\;y`` → [(field, op, value)] (already URL-decoded text)."""
    parts: list[str] = []
    current = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] == ";":
            current.append(";")
            i += 2
            continue
        if ch == ";":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    out = []
    for part in parts:
        if not part.strip():
            continue
        m = re.search(r"[=<>!~]", part)
        if not m or m.start() == 0:
            raise ApiError(412, 1034, f"Ошибка фильтрации: неверное условие '{part}'", "filter")
        field_name = part[:m.start()].strip()
        rest = part[m.start():]
        op = next((o for o in FILTER_OPS if rest.startswith(o)), None)
        if op is None:
            raise ApiError(412, 1034, f"Ошибка фильтрации: неизвестный оператор в '{part}'", "filter")
        out.append((field_name, op, rest[len(op):]))
    return out


# ----------------------------------------------------------------------------------------------
# HTTP plumbing


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    fake: FakeMoySklad


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections are closed after this
    server_version = "fake-moysklad/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if os.environ.get("FAKE_MOYSKLAD_VERBOSE"):
            super().log_message(format, *args)

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method: str) -> None:
        body = self._read_body()
        fake = self.server.fake
        if self.path.startswith("/__fake__"):
            resp = fake.handle_control(method, self.path, body)
        else:
            resp = fake.handle_api(method, self.path, self.headers, body)
        self._send(resp)

    def _send(self, resp: Response) -> None:
        if resp.raw:
            data = resp.body or b""
            is_json = bool(data)
        else:
            data = json.dumps(resp.body, ensure_ascii=False).encode("utf-8")
            is_json = True
        headers = dict(resp.headers)
        if is_json:
            headers["Content-Type"] = JSON_CT
        if resp.gzip:
            headers["Vary"] = "Accept-Encoding"
            if data:
                data = gzip.compress(data, compresslevel=5)
                headers["Content-Encoding"] = "gzip"
        try:
            self.send_response(resp.status)
            for k, v in headers.items():
                # Header values travel as raw UTF-8 bytes (e.g. X-Lognex-Auth-Message in Russian).
                self.send_header(k, str(v).encode("utf-8").decode("latin-1"))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake МойСклад JSON API 1.2 server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reference-dir", default=None)
    parser.add_argument("--seed", action="store_true", help="load the documentation samples (default: empty)")
    parser.add_argument("--generate", type=int, default=0, help="also generate N products")
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--token", action="append", default=[], help="preset a Bearer token (repeatable)")
    args = parser.parse_args(argv)
    fake = FakeMoySklad(port=args.port, host=args.host, reference_dir=args.reference_dir, password=args.password,
                        seed=args.seed)
    for token in args.token:
        fake.add_token(token)
    if args.generate:
        fake.generate(products=args.generate)
    fake.start()
    print(fake.base_url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
