"""Self-test of the fake МойСклад: every behaviour e2e tests rely on, over real HTTP (http.client + gzip).

Run: ``cd tests/fakes/moysklad && OBMEN_REFERENCE_DIR=/work/shared/reference python3 -m unittest -v test_fake_moysklad``
No sleeps: waits are conditions/events with deadlines (the fake's own injected delays are faults, not sync).
"""

from __future__ import annotations

import base64
import gzip
import http.client
import http.server
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import uuid
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_moysklad as fm  # noqa: E402

DEADLINE = 20.0
LOGIN = fm.DEFAULT_LOGIN
PASSWORD = "test-password"
MS_DATE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")


class Client:
    """Minimal МойСклад client: keep-alive connection, gzip, Basic or Bearer."""

    def __init__(self, fake: fm.FakeMoySklad, token: str | None = None, timeout: float = DEADLINE):
        self.fake = fake
        self.token = token
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def auth(self) -> str:
        if self.token:
            return f"Bearer {self.token}"
        return "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()

    def request(self, method: str, path: str, body=None, headers: dict | None = None, gzip_ok: bool = True,
                auth: bool = True):
        """→ (status, headers dict (lower-case keys), parsed JSON | raw bytes | None)."""
        if path.startswith("http"):
            parts = urllib.parse.urlsplit(path)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        elif not path.startswith("/"):
            path = f"{fm.API_PATH}/{path}"
        hdrs = {"Accept-Encoding": "gzip"} if gzip_ok else {}
        if auth:
            hdrs["Authorization"] = self.auth()
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.fake.host, self.fake.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        rh = {k.lower(): v for k, v in resp.getheaders()}
        if rh.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        if not raw:
            return resp.status, rh, None
        try:
            return resp.status, rh, json.loads(raw)
        except ValueError:
            return resp.status, rh, raw

    def ok(self, method: str, path: str, body=None, headers: dict | None = None):
        status, _, data = self.request(method, path, body, headers)
        assert status == 200, (method, path, status, data)
        return data


def control(fake: fm.FakeMoySklad, method: str, path: str, body=None):
    conn = http.client.HTTPConnection(fake.host, fake.port, timeout=DEADLINE)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, f"/__fake__/{path}", body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None
    finally:
        conn.close()


class Receiver:
    """A webhook receiver: records requests; `script` decides each answer (status, or 'block')."""

    def __init__(self):
        self.requests: "queue.Queue[dict]" = queue.Queue()
        self.script: list = []
        self.unblock = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.put({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                action = receiver.script.pop(0) if receiver.script else 200
                if action == "block":
                    receiver.unblock.wait(DEADLINE)
                    action = 200
                try:
                    self.send_response(action)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def drain(self) -> list[dict]:
        out = []
        while True:
            try:
                out.append(self.requests.get_nowait())
            except queue.Empty:
                return out

    def stop(self):
        self.unblock.set()
        self.server.shutdown()
        self.server.server_close()


class FakeTestCase(unittest.TestCase):
    fake: fm.FakeMoySklad
    rate_limited = False  # most suites switch the 45-unit budget off; TransportAndAuth/RateLimits keep it

    @classmethod
    def setUpClass(cls):
        cls.fake = fm.FakeMoySklad(password=PASSWORD).start()

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.fake.reset()
        if not self.rate_limited:
            self.fake.configure_ratelimit(enabled=False)
        self.client = Client(self.fake)
        self.addCleanup(self.client.close)

    def new_client(self, **kw) -> Client:
        c = Client(self.fake, **kw)
        self.addCleanup(c.close)
        return c

    def first(self, type_: str) -> dict:
        return self.client.ok("GET", f"entity/{type_}?limit=1")["rows"][0]


class TransportAndAuth(FakeTestCase):
    rate_limited = True
    def test_415_without_gzip_empty_body(self):
        for headers in ({}, {"Accept-Encoding": "br"}, {"Accept-Encoding": "deflate, identity"}):
            status, rh, body = self.client.request("GET", "entity/product", gzip_ok=False, headers=headers)
            self.assertEqual(status, 415)
            self.assertIsNone(body)
            self.assertEqual(rh.get("content-length"), "0")
        status, _, _ = self.client.request("POST", "security/token", gzip_ok=False)
        self.assertEqual(status, 415)

    def test_gzip_json_and_rate_headers_on_every_response(self):
        status, rh, body = self.client.request("GET", "entity/product")
        self.assertEqual(status, 200)
        self.assertEqual(rh["content-encoding"], "gzip")
        self.assertEqual(rh["content-type"], "application/json;charset=utf-8")
        self.assertEqual(rh["vary"], "Accept-Encoding")
        self.assertEqual(rh["x-ratelimit-limit"], "45")
        self.assertEqual(rh["x-ratelimit-remaining"], "41")
        self.assertEqual(rh["x-lognex-retry-timeinterval"], "3000")
        self.assertEqual(rh["x-lognex-reset"], "0")
        self.assertEqual(rh["x-lognex-retry-after"], "0")
        self.assertIn("keep-alive", rh.get("connection", "keep-alive"))
        sock = self.client.conn.sock
        self.client.ok("GET", "entity/store")
        self.assertIs(self.client.conn.sock, sock, "keep-alive connection was not reused")

    def test_token_issue_revokes_older_tokens(self):
        _, _, first = self.client.request("POST", "security/token")
        _, _, second = self.client.request("POST", "security/token")
        self.assertRegex(first["access_token"], r"^[0-9a-f]{40}$")
        self.assertNotEqual(first["access_token"], second["access_token"])
        old, new = self.new_client(token=first["access_token"]), self.new_client(token=second["access_token"])
        status, rh, body = old.request("GET", "entity/product")
        self.assertEqual(status, 401)
        self.assertEqual(rh["x-lognex-auth"], "1056")
        self.assertEqual(body["errors"][0]["code"], 1056)
        self.assertEqual(body["errors"][0]["error"], fm.AUTH_ERROR)
        self.assertEqual(new.request("GET", "entity/product")[0], 200)

    def test_bad_credentials_and_preset_token(self):
        bad = self.new_client(token="nope")
        self.assertEqual(bad.request("GET", "entity/product")[0], 401)
        self.assertEqual(self.client.request("GET", "entity/product", headers={
            "Authorization": "Basic " + base64.b64encode(f"{LOGIN}:wrong".encode()).decode()})[0], 401)
        self.assertEqual(self.client.request("GET", "entity/product", auth=False)[0], 401)
        # Bearer is not accepted for issuing tokens
        self.assertEqual(self.new_client(token="x").request("POST", "security/token")[0], 401)
        self.assertEqual(control(self.fake, "POST", "tokens", {"token": "preset-token-1"})[0], 200)
        self.assertEqual(self.new_client(token="preset-token-1").request("GET", "entity/product")[0], 200)

    def test_control_api_needs_no_gzip_or_auth(self):
        status, state = control(self.fake, "GET", "state")
        self.assertEqual(status, 200)
        self.assertEqual(state["base_url"], self.fake.base_url)
        self.assertGreaterEqual(state["counts"]["product"], 4)
        self.assertEqual(control(self.fake, "GET", "nonsense")[0], 404)


class RateLimits(FakeTestCase):
    rate_limited = True
    def test_budget_45_per_3s_weight_4(self):
        remaining = []
        for _ in range(11):
            status, rh, _ = self.client.request("GET", "entity/uom")
            self.assertEqual(status, 200)
            remaining.append(int(rh["x-ratelimit-remaining"]))
        self.assertEqual(remaining, [41 - 4 * i for i in range(11)])
        status, rh, body = self.client.request("GET", "entity/uom")
        self.assertEqual(status, 429)
        self.assertEqual(body["errors"][0]["code"], 1049)
        self.assertEqual(rh["x-ratelimit-remaining"], "1")
        self.assertGreater(int(rh["x-lognex-retry-after"]), 0)
        self.assertGreater(int(rh["x-lognex-reset"]), 0)
        self.assertEqual(rh["x-lognex-retry-timeinterval"], "3000")
        state = self.fake.state()
        self.assertEqual(state["served_429"], 1)
        self.assertEqual(state["served_429_by_code"]["1049"], 1)
        self.assertIn(["GET", f"{fm.API_PATH}/entity/uom", 429], state["requests"])
        logged = self.fake.requests()[-1]
        self.assertEqual((logged["method"], logged["path"], logged["status"], logged["user"]),
                         ("GET", f"{fm.API_PATH}/entity/uom", 429, LOGIN))

    def test_stock_reports_weigh_5_and_limits_are_configurable(self):
        for _ in range(9):
            self.assertEqual(self.client.request("GET", "report/stock/all")[0], 200)
        self.assertEqual(self.client.request("GET", "report/stock/all")[0], 429)
        control(self.fake, "POST", "ratelimit", {"enabled": False})
        for _ in range(20):
            self.assertEqual(self.client.request("GET", "report/stock/bystore")[0], 200)
        control(self.fake, "POST", "ratelimit", {"enabled": True, "weight": 1, "budget": 3})
        statuses = [self.client.request("GET", "entity/uom")[0] for _ in range(4)]
        self.assertEqual(statuses, [200, 200, 200, 429])
        _, rh, _ = self.client.request("GET", "report/stock/all/current")  # short report: normal weight
        self.assertEqual(rh["x-ratelimit-limit"], "3")

    def test_sixth_parallel_request_gets_1073(self):
        self.fake.add_fault("delay", count=5, path="/entity/store", delay_ms=15000)
        results: "queue.Queue[int]" = queue.Queue()

        def slow():
            c = Client(self.fake)
            try:
                results.put(c.request("GET", "entity/store")[0])
            finally:
                c.close()

        threads = [threading.Thread(target=slow) for _ in range(5)]
        for t in threads:
            t.start()
        self.assertTrue(self.fake.wait_in_flight(5, timeout=DEADLINE))
        status, rh, body = self.client.request("GET", "entity/uom")
        self.assertEqual(status, 429)
        self.assertEqual(body["errors"][0]["code"], 1073)
        self.assertEqual(rh["x-lognex-auth"], "429005")
        self.assertNotIn("x-lognex-retry-after", rh)
        self.fake.release_delays()
        for t in threads:
            t.join(DEADLINE)
        self.assertEqual(sorted(results.get_nowait() for _ in range(5)), [200] * 5)
        state = self.fake.state()
        self.assertEqual(state["max_concurrency"][LOGIN], 6)
        self.assertEqual(state["served_429_by_code"]["1073"], 1)
        self.assertEqual(state["in_flight"][LOGIN], 0)

    def test_more_than_100_puts_to_one_entity_per_minute_ban(self):
        control(self.fake, "POST", "ratelimit", {"enabled": False})
        product = self.first("product")
        for i in range(100):
            self.client.ok("PUT", f"entity/product/{product['id']}", {"description": f"v{i}"})
        status, _, _ = self.client.request("PUT", f"entity/product/{product['id']}", {"description": "x"})
        self.assertEqual(status, 429)
        state = self.fake.state()
        self.assertTrue(state["banned"][LOGIN])
        self.assertEqual(state["served_429_by_code"]["ban"], 1)


class Collections(FakeTestCase):
    def test_seeded_entities_have_faithful_shapes(self):
        everything = []
        for type_ in ("productfolder", "product", "variant", "uom", "store", "organization", "counterparty",
                      "customerorder", "invoiceout", "demand", "webhook", "webhookstock", "currency"):
            page = self.client.ok("GET", f"entity/{type_}")
            everything.append(page)
            self.assertEqual(page["meta"]["href"], f"{self.fake.base_url}/entity/{type_}")
            self.assertEqual(page["meta"]["type"], type_)
            self.assertEqual(page["meta"]["limit"], 1000)
            self.assertIn("employee", page["context"])
            self.assertGreaterEqual(page["meta"]["size"], 1, type_)
            for row in page["rows"]:
                meta = row["meta"]
                self.assertEqual(meta["href"], f"{self.fake.base_url}/entity/{type_}/{row['id']}")
                self.assertEqual(meta["metadataHref"], f"{self.fake.base_url}/entity/{type_}/metadata")
                self.assertEqual((meta["type"], meta["mediaType"]), (type_, "application/json"))
                self.assertEqual(row["accountId"], fm.ACCOUNT_ID)
                uuid.UUID(row["id"])
                if type_ not in ("webhook", "webhookstock"):
                    self.assertRegex(row["updated"], MS_DATE)
                    self.assertTrue(row["externalCode"])
        text = json.dumps(everything, ensure_ascii=False)
        self.assertNotIn("api.moysklad.ru", text)
        self.assertNotIn("null", text)
        uoms = {u["name"]: u for u in everything[3]["rows"]}
        self.assertEqual(uoms["шт"]["code"], "796")
        product = everything[1]["rows"][0]
        self.assertEqual(len(product["salePrices"]), 3)
        sp = product["salePrices"][0]
        self.assertEqual(set(sp["priceType"]), {"meta", "id", "name", "externalCode"})
        self.assertEqual(sp["priceType"]["externalCode"], fm.DEFAULT_PRICE_TYPE_EXTERNAL_CODE)
        self.assertIn("currency", sp)
        self.assertIsInstance(sp["value"], (int, float))

    def test_companysettings_pricetypes_states(self):
        pts = self.client.ok("GET", "context/companysettings/pricetype")
        self.assertIsInstance(pts, list)
        self.assertEqual([p["name"] for p in pts], ["Цена продажи", "Цена для друзей", "Цена для конкурентов"])
        self.assertEqual(self.client.ok("GET", "context/companysettings/pricetype/default")["id"], pts[0]["id"])
        settings = self.client.ok("GET", "context/companysettings")
        self.assertEqual(settings["currency"]["isoCode"], "RUB")
        self.assertEqual(len(settings["priceTypes"]), 3)
        states = self.client.ok("GET", "entity/customerorder/metadata")["states"]
        self.assertIn("Отгружен", [s["name"] for s in states])
        self.assertTrue(states[0]["meta"]["href"].startswith(f"{self.fake.base_url}/entity/customerorder/metadata/states/"))

    def test_paging_next_and_previous_href(self):
        control(self.fake, "POST", "ratelimit", {"enabled": False})
        size = self.client.ok("GET", "entity/customerorder")["meta"]["size"]
        self.assertGreaterEqual(size, 5)
        page = self.client.ok("GET", "entity/customerorder?limit=2")
        self.assertEqual(len(page["rows"]), 2)
        self.assertNotIn("previousHref", page["meta"])
        seen = [r["id"] for r in page["rows"]]
        while "nextHref" in page["meta"]:
            self.assertTrue(page["meta"]["nextHref"].startswith(self.fake.base_url + "/entity/customerorder?"))
            page = self.client.ok("GET", page["meta"]["nextHref"])
            self.assertIn("previousHref", page["meta"])
            seen += [r["id"] for r in page["rows"]]
        self.assertEqual(len(seen), size)
        self.assertEqual(len(set(seen)), size)
        exact = self.client.ok("GET", f"entity/customerorder?limit={size}")
        self.assertNotIn("nextHref", exact["meta"])
        for bad in ("limit=1001", "limit=0", "limit=x", "offset=-1"):
            status, _, body = self.client.request("GET", f"entity/product?{bad}")
            self.assertEqual(status, 400, bad)
            self.assertEqual(body["errors"][0]["code"], 1040)

    def test_filters(self):
        control(self.fake, "POST", "ratelimit", {"enabled": False})
        control(self.fake, "POST", "clock", {"msk": "2026-12-01 10:00:00", "frozen": True})
        a = self.client.ok("POST", "entity/product", {"name": "Альфа", "externalCode": "ext-a"})
        self.assertEqual(a["updated"], "2026-12-01 10:00:00.000")
        control(self.fake, "POST", "clock", {"advance_seconds": 120})
        sync_id = str(uuid.uuid4())
        b = self.client.ok("POST", "entity/product", {"name": "Бета", "syncId": sync_id, "archived": False})
        self.assertEqual(b["updated"], "2026-12-01 10:02:00.000")

        def ids(path_filter: str, type_: str = "product") -> list[str]:
            q = urllib.parse.quote(path_filter, safe="")
            return [r["id"] for r in self.client.ok("GET", f"entity/{type_}?filter={q}")["rows"]]

        self.assertEqual(ids("updated>=2026-12-01 10:01:00"), [b["id"]])
        self.assertEqual(ids("updated>=2026-12-01 10:00"), [a["id"], b["id"]])
        self.assertEqual(ids("updated>=2026-12-01 10:00:00.000;updated<=2026-12-01 10:00:59.999"), [a["id"]])
        self.assertEqual(ids(f"id={a['id']}"), [a["id"]])
        self.assertEqual(ids(f"id={a['id']};id={b['id']}"), [a["id"], b["id"]])  # same-field = is OR
        self.assertEqual(ids("externalCode=ext-a"), [a["id"]])
        self.assertEqual(ids(f"syncId={sync_id}"), [b["id"]])
        self.assertEqual(ids("name~льф"), [a["id"]])
        self.assertEqual(ids("name~=Бе"), [b["id"]])
        self.assertEqual(ids("name=~та"), [b["id"]])
        self.assertNotIn(a["id"], ids("name!=Альфа"))
        # + and %20 both decode to spaces, like the real server
        rows = self.client.ok("GET", "entity/product?filter=updated%3E%3D2026-12-01+10%3A01%3A00")["rows"]
        self.assertEqual([r["id"] for r in rows], [b["id"]])
        # archived rows are hidden unless the filter asks for them
        self.client.ok("PUT", f"entity/product/{a['id']}", {"archived": True})
        self.assertNotIn(a["id"], ids("updated>=2026-12-01 10:00"))
        self.assertIn(a["id"], ids("archived=true;archived=false"))
        cp = self.client.ok("POST", "entity/counterparty", {"name": "ООО Тест", "inn": "7701234567"})
        self.assertEqual(ids("inn=7701234567", "counterparty"), [cp["id"]])
        variant = self.first("variant")
        product_id = fm.id_from_href(variant["product"]["meta"]["href"])
        self.assertIn(variant["id"], ids(f"productid={product_id}", "variant"))
        self.assertEqual(ids(f"productid={uuid.uuid4()}", "variant"), [])
        status, _, body = self.client.request("GET", "entity/product?filter=" +
                                              urllib.parse.quote("updated>=01.12.2026"))
        self.assertEqual((status, body["errors"][0]["code"]), (412, 1035))
        self.assertEqual(self.fake.requests()[-1]["user"], LOGIN)

    def test_expand_only_up_to_limit_100(self):
        order = self.client.ok("GET", "entity/customerorder?limit=100&expand=state,agent")["rows"][0]
        self.assertIn("name", order["agent"])
        self.assertIn("stateType", order["state"])
        order = self.client.ok("GET", "entity/customerorder?limit=101&expand=state,agent")["rows"][0]
        self.assertEqual(set(order["agent"]), {"meta"})
        single = self.client.ok("GET", f"entity/customerorder/{order['id']}?expand=positions.assortment")
        self.assertIn("rows", single["positions"])


class Writes(FakeTestCase):
    def test_create_generates_fields_and_sync_id_is_idempotent(self):
        sync_id = str(uuid.uuid4())
        body = {"name": "Груша", "syncId": sync_id,
                "salePrices": [{"value": 12345.0, "priceType": {"meta": self.fake.meta("pricetype",
                                                                    self.fake.price_types[1]["id"])}}]}
        before = self.fake.counts()["product"]
        first = self.client.ok("POST", "entity/product", body)
        again = self.client.ok("POST", "entity/product", dict(body, name="Груша 2"))
        self.assertEqual(first["id"], again["id"])
        self.assertEqual(again["name"], "Груша")
        self.assertEqual(self.fake.counts()["product"], before + 1)
        self.assertRegex(first["externalCode"], r"^[A-Za-z0-9-]{22}$")
        self.assertEqual(self.client.ok("GET", f"entity/product/syncid/{sync_id}")["id"], first["id"])
        prices = {p["priceType"]["name"]: p["value"] for p in first["salePrices"]}
        self.assertEqual(prices, {"Цена продажи": 0.0, "Цена для друзей": 12345.0, "Цена для конкурентов": 0.0})
        status, _, body = self.client.request("PUT", f"entity/product/{first['id']}", {"syncId": str(uuid.uuid4())})
        self.assertEqual((status, body["errors"][0]["code"]), (400, 1047))
        status, _, body = self.client.request("POST", "entity/product", {"description": "no name"})
        self.assertEqual(status, 412)
        self.assertEqual((body["errors"][0]["code"], body["errors"][0]["parameter"]), (3000, "name"))
        self.assertEqual(self.client.request("GET", f"entity/product/{uuid.uuid4()}")[0], 404)
        self.assertEqual(self.client.request("DELETE", f"entity/product/{first['id']}")[0], 200)
        self.assertEqual(self.client.request("GET", f"entity/product/{first['id']}")[0], 404)

    def test_mass_upsert_batch_and_delete(self):
        existing = self.first("counterparty")
        items = [{"name": "ООО Новый"}, {"inn": "1234567890"},
                 {"meta": existing["meta"], "name": "Переименован"}]
        for path in ("entity/counterparty", "entity/counterparty/batch"):
            out = self.client.ok("POST", path, items)
            self.assertEqual(len(out), 3)
            self.assertEqual(out[0]["name"], "ООО Новый")
            self.assertEqual(out[1]["errors"][0]["code"], 3000)
            self.assertEqual(out[2]["id"], existing["id"])
            self.assertEqual(out[2]["name"], "Переименован")
        status, _, _ = self.client.request("POST", "entity/counterparty", [{"name": f"x{i}"} for i in range(1001)])
        self.assertEqual(status, 413)
        created = self.client.ok("POST", "entity/product", [{"name": "Удалить 1"}, {"name": "Удалить 2"}])
        gone = self.client.ok("POST", "entity/product/delete", [{"meta": c["meta"]} for c in created])
        self.assertEqual(gone[0], {"info": f"Сущность 'product' с UUID: {created[0]['id']} успешно удалена"})
        self.assertEqual(self.client.request("GET", f"entity/product/{created[1]['id']}")[0], 404)

    def test_customerorder_requires_org_and_agent_and_keeps_positions(self):
        org, agent = self.first("organization"), self.first("counterparty")
        products = self.client.ok("GET", "entity/product")["rows"]
        status, _, body = self.client.request("POST", "entity/customerorder", {"organization": {"meta": org["meta"]}})
        self.assertEqual((status, body["errors"][0]["code"], body["errors"][0]["parameter"]), (412, 3000, "agent"))
        positions = [{"assortment": {"meta": products[0]["meta"]}, "quantity": 2, "price": 10050.0},
                     {"assortment": {"meta": products[1]["meta"]}, "quantity": 1, "price": 5000}]
        order = self.client.ok("POST", "entity/customerorder", {
            "organization": {"meta": org["meta"]}, "agent": {"meta": agent["meta"]}, "positions": positions,
            "syncId": str(uuid.uuid4())})
        self.assertEqual(order["sum"], 25100.0)
        self.assertEqual(order["positions"]["meta"]["size"], 2)
        self.assertEqual(order["positions"]["meta"]["type"], "customerorderposition")
        listed = self.client.ok("GET", f"entity/customerorder/{order['id']}/positions")
        self.assertEqual([r["quantity"] for r in listed["rows"]], [2, 1])
        self.assertEqual(listed["rows"][0]["assortment"]["meta"]["href"], products[0]["meta"]["href"])
        # positions in a PUT are the full set
        keep = dict(listed["rows"][1], quantity=3)
        updated = self.client.ok("PUT", f"entity/customerorder/{order['id']}", {"positions": [keep]})
        self.assertEqual(updated["sum"], 15000.0)
        rows = self.client.ok("GET", f"entity/customerorder/{order['id']}/positions")["rows"]
        self.assertEqual([(r["id"], r["quantity"]) for r in rows], [(keep["id"], 3)])
        bogus = {"meta": dict(products[0]["meta"], href=f"{self.fake.base_url}/entity/product/{uuid.uuid4()}")}
        status, _, body = self.client.request("POST", "entity/customerorder", {
            "organization": {"meta": org["meta"]}, "agent": {"meta": agent["meta"]},
            "positions": [{"assortment": bogus, "quantity": 1, "price": 1}]})
        self.assertEqual((status, body["errors"][0]["code"]), (412, 1021))
        states = self.client.ok("GET", "entity/customerorder/metadata")["states"]
        shipped = next(s for s in states if s["name"] == "Отгружен")
        changed = self.client.ok("PUT", f"entity/customerorder/{order['id']}", {"state": {"meta": shipped["meta"]}})
        self.assertEqual(fm.id_from_href(changed["state"]["meta"]["href"]), shipped["id"])
        template = self.client.ok("PUT", "entity/invoiceout/new", {"customerOrder": {"meta": order["meta"]}})
        self.assertEqual(template["agent"]["meta"]["href"], agent["meta"]["href"])
        self.assertEqual(len(template["positions"]["rows"]), 1)


class Stock(FakeTestCase):
    def test_current_reports_are_plain_arrays(self):
        product = self.client.ok("POST", "entity/product", {"name": "Склад-тест"})
        stores = self.client.ok("GET", "entity/store")["rows"]
        # a day well after the seed time (seeded stock rows carry the real "now")
        day = (datetime.now(fm.MSK) + timedelta(days=30)).strftime("%Y-%m-%d")
        before = (datetime.now(fm.MSK) + timedelta(days=29)).strftime("%Y-%m-%d")
        control(self.fake, "POST", "clock", {"msk": f"{day} 12:00:00"})
        control(self.fake, "POST", "stock", [
            {"assortmentId": product["id"], "storeId": stores[0]["id"], "stock": 7, "reserve": 2},
            {"assortmentId": product["id"], "storeId": stores[1]["id"], "stock": 3}])
        rows = self.client.ok("GET", "report/stock/all/current")
        self.assertIsInstance(rows, list)
        self.assertIn({"assortmentId": product["id"], "stock": 10.0}, rows)
        free = self.client.ok("GET", "report/stock/all/current?stockType=freeStock")
        self.assertIn({"assortmentId": product["id"], "freeStock": 8.0}, free)
        by_store = self.client.ok("GET", "report/stock/bystore/current")
        self.assertIn({"assortmentId": product["id"], "storeId": stores[1]["id"], "stock": 3.0}, by_store)
        # zero lines only with include=zeroLines; changedSince returns changed items, zeros included
        zero = self.client.ok("POST", "entity/product", {"name": "Пусто"})
        self.assertNotIn(zero["id"], [r["assortmentId"] for r in self.client.ok("GET", "report/stock/all/current")])
        self.assertIn({"assortmentId": zero["id"], "stock": 0.0},
                      self.client.ok("GET", "report/stock/all/current?include=zeroLines"))
        control(self.fake, "POST", "clock", {"msk": f"{day} 12:10:00"})
        control(self.fake, "POST", "stock", {"assortmentId": product["id"], "storeId": stores[1]["id"], "stock": 0})
        since = urllib.parse.quote(f"{day} 12:05:00")
        changed = self.client.ok("GET", f"report/stock/all/current?changedSince={since}")
        self.assertEqual(changed, [{"assortmentId": product["id"], "stock": 7.0}])
        changed = self.client.ok("GET", f"report/stock/bystore/current?changedSince={since}")
        self.assertEqual(changed, [{"assortmentId": product["id"], "storeId": stores[1]["id"], "stock": 0.0}])
        too_old = urllib.parse.quote(f"{before} 12:09:00")
        status, _, body = self.client.request("GET", f"report/stock/all/current?changedSince={too_old}")
        self.assertEqual(status, 400)
        self.assertIn("errors", body)
        filtered = self.client.ok("GET", "report/stock/bystore/current?filter=" +
                                  urllib.parse.quote(f"assortmentId={product['id']};storeId={stores[0]['id']}"))
        self.assertEqual(filtered, [{"assortmentId": product["id"], "storeId": stores[0]["id"], "stock": 7.0}])

    def test_paged_stock_reports(self):
        page = self.client.ok("GET", "report/stock/bystore?limit=2")
        self.assertEqual(page["meta"]["type"], "stockbystore")
        self.assertIn("nextHref", page["meta"])
        row = page["rows"][0]
        self.assertIn("?expand=", row["meta"]["href"])
        self.assertEqual(len(row["stockByStore"]), self.fake.counts()["store"])
        self.assertEqual(set(row["stockByStore"][0]), {"meta", "name", "stock", "reserve", "inTransit"})
        page = self.client.ok("GET", "report/stock/all")
        self.assertEqual(page["meta"]["type"], "stock")
        self.assertEqual({"meta", "stock", "reserve", "inTransit", "quantity", "name", "price", "salePrice"} -
                         set(page["rows"][0]), set())


class Webhooks(FakeTestCase):
    def setUp(self):
        super().setUp()
        self.receiver = Receiver()
        self.addCleanup(self.receiver.stop)

    def hook(self, entity_type: str, action: str, **extra) -> dict:
        return self.client.ok("POST", "entity/webhook", {"url": self.receiver.url, "action": action,
                                                         "entityType": entity_type, **extra})

    def flush(self) -> dict:
        status, out = control(self.fake, "POST", "webhooks/flush", {"timeout": DEADLINE})
        self.assertEqual(status, 200)
        self.assertTrue(out["flushed"])
        return out

    def test_entity_webhook_delivery_and_uniqueness(self):
        hook = self.hook("product", "UPDATE", diffType="FIELDS")
        self.assertEqual((hook["method"], hook["enabled"], hook["diffType"]), ("POST", True, "FIELDS"))
        status, _, body = self.client.request("POST", "entity/webhook", {
            "url": self.receiver.url, "action": "UPDATE", "entityType": "product"})
        self.assertEqual((status, body["errors"][0]["code"]), (412, 3006))
        self.hook("product", "CREATE")
        product = self.first("product")
        status, _ = control(self.fake, "POST", "entity/product", {"id": product["id"], "name": "Из интерфейса"})
        self.assertEqual(status, 200)
        self.flush()
        got = self.receiver.drain()
        self.assertEqual(len(got), 1)
        req = got[0]
        self.assertTrue(req["path"].startswith("/hook?requestId="))
        self.assertEqual(req["headers"]["User-Agent"], fm.WEBHOOK_UA)
        body = req["body"]
        self.assertEqual(body["auditContext"]["meta"]["type"], "audit")
        self.assertTrue(body["auditContext"]["meta"]["href"].startswith(self.fake.base_url + "/audit/"))
        self.assertEqual(body["auditContext"]["uid"], LOGIN)
        self.assertRegex(body["auditContext"]["moment"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        self.assertEqual(body["events"], [{"meta": {"type": "product", "href": product["meta"]["href"]},
                                           "updatedFields": ["name"], "action": "UPDATE",
                                           "accountId": fm.ACCOUNT_ID}])
        deliveries = control(self.fake, "GET", "webhooks/deliveries")[1]["deliveries"]
        self.assertEqual([(d["status"], d["ok"], d["attempt"]) for d in deliveries], [(200, True, 1)])
        self.assertEqual(req["path"], "/hook?requestId=" + deliveries[0]["requestId"])
        self.assertIsInstance(deliveries[0]["latency_ms"], int)
        # API writes fire too
        self.client.ok("POST", "entity/product", {"name": "Через API"})
        self.flush()
        self.assertEqual([r["body"]["events"][0]["action"] for r in self.receiver.drain()], ["CREATE"])

    def test_disable_by_prefix_suppresses_echo(self):
        self.hook("counterparty", "CREATE")
        prefix = self.receiver.url.rsplit("/", 1)[0]
        self.client.ok("POST", "entity/counterparty", {"name": "Эхо"},
                       headers={"X-Lognex-WebHook-DisableByPrefix": prefix})
        self.client.ok("POST", "entity/counterparty", {"name": "Не эхо"},
                       headers={"X-Lognex-WebHook-DisableByPrefix": "http://127.0.0.2:1"})
        out = self.flush()
        self.assertEqual(len(self.receiver.drain()), 1)
        self.assertEqual(len(out["suppressed"]), 1)
        self.assertEqual(out["suppressed"][0]["prefix"], prefix)
        # the seeded sample webhooks (demand CREATE → www.example.com) are never contacted
        demand = {"organization": {"meta": self.first("organization")["meta"]},
                  "agent": {"meta": self.first("counterparty")["meta"]}, "store": {"meta": self.first("store")["meta"]}}
        self.client.ok("POST", "entity/demand", demand)
        out = self.flush()
        self.assertEqual(len(out["deliveries"]), 1)
        self.assertEqual([u["url"] for u in out["undeliverable"]], ["http://www.example.com"])

    def test_failed_or_slow_answers_are_retried_three_times_with_same_request_id(self):
        self.hook("customerorder", "UPDATE")
        order = self.first("customerorder")
        self.receiver.script = [500, 503, 200]
        self.fake.set_order_state(order["id"], "Отгружен")
        self.flush()
        got = self.receiver.drain()
        self.assertEqual(len(got), 3)
        self.assertEqual(len({r["path"] for r in got}), 1)
        control(self.fake, "POST", "webhooks/config", {"webhook_timeout_ms": 200})
        self.receiver.script = ["block"] * 4
        self.fake.set_order_state(order["id"], "Доставлен")
        self.flush()
        self.receiver.unblock.set()
        deliveries = [d for d in self.fake.webhook_deliveries()["deliveries"] if d["ok"] is False]
        timeouts = [d for d in deliveries if d["error"] == "timeout"]
        self.assertEqual([d["attempt"] for d in timeouts], [1, 2, 3, 4])
        self.assertEqual(len({d["requestId"] for d in timeouts}), 1)
        got = [self.receiver.requests.get(timeout=DEADLINE) for _ in range(4)]
        self.assertEqual(len({r["path"] for r in got}), 1)

    def test_stock_webhook_report_url(self):
        self.client.ok("POST", "entity/webhookstock", {"url": self.receiver.url, "enabled": True,
                                                       "reportType": "all", "stockType": "stock"})
        control(self.fake, "POST", "clock", {"msk": "2026-12-01 15:00:00", "frozen": True})
        variant = self.first("variant")
        store = self.first("store")
        control(self.fake, "POST", "stock", {"assortmentId": variant["id"], "storeId": store["id"], "stock": 42})
        control(self.fake, "POST", "stockwebhook", {})
        self.flush()
        got = self.receiver.drain()
        self.assertEqual(len(got), 1)
        body = got[0]["body"]
        self.assertEqual(body["reportUrl"],
                         f"{self.fake.base_url}/report/stock/all/current?changedSince=2026-12-01 15:00:00")
        self.assertEqual((body["accountId"], body["stockType"], body["reportType"]), (fm.ACCOUNT_ID, "stock", "all"))
        url, _, since = body["reportUrl"].partition("?changedSince=")
        rows = self.client.ok("GET", f"{url}?changedSince={urllib.parse.quote(since)}")
        total = sum(r["stock"] for r in rows if r["assortmentId"] == variant["id"])
        self.assertGreaterEqual(total, 42.0)


class Faults(FakeTestCase):
    def test_status_faults_for_next_n_matching_requests(self):
        control(self.fake, "POST", "faults", {"kind": "status", "status": 503, "count": 2, "path": "/entity/product",
                                              "method": "GET"})
        self.assertEqual(self.client.request("GET", "entity/store")[0], 200)
        self.assertEqual(self.client.request("POST", "entity/product", {"name": "ok"})[0], 200)
        status, _, body = self.client.request("GET", "entity/product")
        self.assertEqual((status, body["errors"][0]["code"]), (503, 1074))
        self.assertEqual(self.client.request("GET", "entity/product?limit=5")[0], 503)
        self.assertEqual(self.client.request("GET", "entity/product")[0], 200)
        control(self.fake, "POST", "faults", [{"kind": "status", "status": s} for s in (500, 502, 504)])
        self.assertEqual([self.client.request("GET", "entity/uom")[0] for _ in range(4)], [500, 502, 504, 200])

    def test_accept_then_timeout_and_retry_with_same_sync_id(self):
        org, agent = self.first("organization"), self.first("counterparty")
        before = self.fake.counts()["customerorder"]
        control(self.fake, "POST", "faults", {"kind": "accept_then_timeout", "path": "/entity/customerorder",
                                              "delay_ms": 5000})
        body = {"organization": {"meta": org["meta"]}, "agent": {"meta": agent["meta"]}, "syncId": str(uuid.uuid4())}
        impatient = self.new_client(timeout=0.5)
        with self.assertRaises((socket.timeout, TimeoutError)):
            impatient.request("POST", "entity/customerorder", body)
        impatient.close()
        self.fake.release_delays()
        self.assertEqual(self.fake.counts()["customerorder"], before + 1)
        again = self.client.ok("POST", "entity/customerorder", body)
        self.assertEqual(self.client.ok("GET", f"entity/customerorder/syncid/{body['syncId']}")["id"], again["id"])
        self.assertEqual(self.fake.counts()["customerorder"], before + 1)

    def test_slow_malformed_and_redirect(self):
        control(self.fake, "POST", "faults", {"kind": "malformed_json", "path": "/entity/store"})
        status, rh, body = self.client.request("GET", "entity/store")
        self.assertEqual((status, rh["content-encoding"]), (200, "gzip"))
        self.assertIsInstance(body, bytes)
        self.assertIsInstance(self.client.ok("GET", "entity/store"), dict)
        control(self.fake, "POST", "faults", {"kind": "redirect", "path": "/entity/uom"})
        status, rh, _ = self.client.request("GET", "entity/uom?limit=1")
        self.assertEqual(status, 308)
        self.assertEqual(rh["location"], f"{self.fake.base_url}/entity/uom?limit=1")
        self.assertEqual(self.client.request("GET", rh["location"])[0], 200)
        control(self.fake, "POST", "faults", {"kind": "delay", "delay_ms": 300, "path": "/entity/currency"})
        started = time.monotonic()
        self.assertEqual(self.client.request("GET", "entity/currency")[0], 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.29)


class GeneratorAndRuntime(FakeTestCase):
    def test_generate_10000_products_and_page_through_them(self):
        started = time.monotonic()
        status, out = control(self.fake, "POST", "generate", {"products": 10000})
        self.assertEqual(status, 200)
        self.assertLess(time.monotonic() - started, 15)
        self.assertEqual(out["variants"], 4000)
        control(self.fake, "POST", "ratelimit", {"enabled": False})
        page = self.client.ok("GET", "entity/product")
        total = page["meta"]["size"]
        self.assertGreaterEqual(total, 10000)
        pages = 1
        count = len(page["rows"])
        while "nextHref" in page["meta"]:
            page = self.client.ok("GET", page["meta"]["nextHref"])
            pages += 1
            count += len(page["rows"])
        self.assertEqual((count, pages), (total, (total + 999) // 1000))
        generated = [r for r in self.client.ok("GET", "entity/product?limit=100&offset=20")["rows"]]
        self.assertTrue(all(len(r["salePrices"]) == 3 for r in generated))
        self.assertTrue(all(r["pathName"].startswith("Каталог") for r in generated))
        stock = self.client.ok("GET", "report/stock/bystore/current")
        self.assertGreater(len({r["storeId"] for r in stock}), 1)
        self.assertEqual(self.client.ok("GET", "entity/variant?limit=1")["meta"]["size"],
                         4000 + 3)  # + the seeded variants

    def test_python_api_without_http(self):
        fake = fm.FakeMoySklad(port=0, reference_dir=fm.default_reference_dir())
        try:
            self.assertTrue(fake.base_url.startswith("http://127.0.0.1:"))
            self.assertTrue(fake.base_url.endswith(fm.API_PATH))
            product = fake.create("product", {"name": "Direct"})
            fake.update("product", product["id"], {"article": "A-1"})
            self.assertEqual(fake.get_entity("product", product["id"])["article"], "A-1")
            fake.set_clock(msk="2026-12-01 09:00:00", frozen=True)
            self.assertEqual(fake.ui_write("product", {"id": product["id"], "code": "C"})["updated"],
                             "2026-12-01 09:00:00.000")
            self.assertEqual(fake.state()["counts"]["product"], 5)
        finally:
            fake.stop()

    def test_script_prints_base_url(self):
        proc = subprocess.Popen([sys.executable, str(Path(fm.__file__)), "--port", "0", "--seed", "--token", "t1"],
                                stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        try:
            line = proc.stdout.readline().strip()
            self.assertRegex(line, r"^http://127\.0\.0\.1:\d+/api/remap/1\.2$")
            parts = urllib.parse.urlsplit(line)
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
            conn.request("GET", f"{fm.API_PATH}/entity/product",
                         headers={"Accept-Encoding": "gzip", "Authorization": "Bearer t1"})
            resp = conn.getresponse()
            data = json.loads(gzip.decompress(resp.read()))
            conn.close()
            self.assertEqual(resp.status, 200)
            self.assertEqual(data["meta"]["size"], 4)
        finally:
            proc.terminate()
            proc.wait(DEADLINE)
            proc.stdout.close()


if __name__ == "__main__":
    unittest.main()
