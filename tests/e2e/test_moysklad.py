"""МойСклад end to end: the real obmend against the fake МойСклад (tests/fakes/moysklad), over
real HTTP with gzip, paging and the rate limit.

What is checked (docs/moysklad.md): a full sync lands exactly the account's catalog, prices, stock
and counterparties in the portal; an incremental sync asks only for what changed and applies only
that; a 10 000-product account syncs with no 429 surfacing as a failure and never more than 5
requests in flight; a portal order reaches МойСклад exactly once even when the first POST times out
after the server accepted it; a state change comes back through a webhook within a second; a wrong
token, a dead API and malformed JSON each fail the sync with a clear error and leave the portal as
it was. Synchronisation: `obmenctl resync --wait` (the job's end), database polls with deadlines,
the fake's own delivery log — never sleeps.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import unittest
import urllib.parse
from pathlib import Path

from harness import EVENT_TIMEOUT, TIMEOUT_SCALE, Harness, admin_database_url, reference_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes" / "moysklad"))
from fake_moysklad import FakeMoySklad  # noqa: E402

SOURCE = "ms"
TOKEN = "e2e0token0000000000000000000000000000001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MoySkladBase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.fake = FakeMoySklad(reference_dir=reference_dir()).start()
        self.addCleanup(self.fake.stop)
        self.fake.add_token(TOKEN)
        self.h = Harness.for_test(self)
        self.h.create_database()
        self.mapping = self.h.dir / "ms-mapping.yaml"
        self.mapping.write_text(
            "statuses:\n"
            "  - match: { name: \"Новый\" }\n    status: new\n"
            "  - match: { name: \"Отгружен\" }\n    status: shipped\n"
            "  - match: { name: \"Отменен\" }\n    status: cancelled\n", encoding="utf-8")

    def source(self, **overrides) -> dict:
        s = {"type": "moysklad", "base_url": self.fake.base_url + "/", "token": {"env": "OBMEN_MS_TOKEN"},
             "mapping": str(self.mapping), "poll_interval": 0, "orders_poll_interval": 1, "request_timeout": 5}
        s.update(overrides)
        return s

    def env(self, token: str = TOKEN) -> dict:
        return dict(self.h.env(), OBMEN_MS_TOKEN=token)

    def start(self, *, port: int = 0, token: str = TOKEN, **overrides):
        cfg = self.h.config({"http": {"port": port}, "sources": {SOURCE: self.source(**overrides)}})
        self.cfg_path = self.h.write_config(cfg)
        self.daemon = self.h.start_daemon(self.cfg_path, env=self.env(token))
        return self.daemon

    def resync(self, entity: str = "all", mode: str = "--full", expect: int = 0):
        r = self.h.ctl("resync", "--source", SOURCE, "--entity", entity, mode, "--wait", config=self.cfg_path,
                       env=self.env())
        self.assertEqual(r.returncode, expect, f"obmenctl resync {entity} {mode}:\n{r.stdout}{r.stderr}"
                         f"\n--- obmend log ---\n{self.daemon.log_excerpt()}")
        return r

    def count(self, table: str, where: str = "") -> int:
        return self.h.count(f"SELECT count(*) FROM {table} WHERE source = '{SOURCE}'" + (f" AND {where}" if where else ""))

    def wait_for(self, what: str, pred, timeout: float = EVENT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}\n--- obmend log ---\n{self.daemon.log_excerpt()}")
            time.sleep(0.05)  # polling the database with a deadline, not synchronising on time

    def portal_digest(self) -> list:
        return self.h.psql(
            "SELECT 'p', external_id, name, coalesce(sku,''), active::text FROM portal.products WHERE source = 'ms' "
            "UNION ALL SELECT 'o', external_id, name, coalesce(quantity::text,''), active::text FROM portal.offers WHERE source = 'ms' "
            "UNION ALL SELECT 'c', external_id, name, '', active::text FROM portal.categories WHERE source = 'ms' "
            "ORDER BY 1, 2")

    def fake_catalog(self) -> dict:
        products = [p for p in self.fake.all_entities("product") if not p.get("archived")]
        variants = [v for v in self.fake.all_entities("variant") if not v.get("archived")]
        folders = [f for f in self.fake.all_entities("productfolder") if not f.get("archived")]
        with_variants = {v["product"]["meta"]["href"].rsplit("/", 1)[1] for v in variants}
        return {"products": len(products), "folders": len(folders), "variants": len(variants),
                "offers": len([p for p in products if p["id"] not in with_variants and not p.get("variantsCount")]) + len(variants),
                "stores": len(self.fake.all_entities("store")),
                "counterparties": len(self.fake.all_entities("counterparty"))}


class FullAndIncremental(MoySkladBase):
    def test_full_sync_lands_the_account_and_a_second_changes_nothing(self):
        self.start()
        want = self.fake_catalog()
        self.resync("all")
        self.assertEqual(self.count("portal.products", "active"), want["products"])
        self.assertEqual(self.count("portal.offers", "active"), want["offers"])
        self.assertEqual(self.count("portal.categories", "active"), want["folders"])
        self.assertEqual(self.count("portal.warehouses"), want["stores"])
        self.assertEqual(self.count("portal.counterparties"), want["counterparties"])
        # Money arrives in kopecks and is stored in roubles, exactly.
        variants_of = {v["product"]["meta"]["href"].rsplit("/", 1)[1] for v in self.fake.all_entities("variant")}
        product = next(p for p in self.fake.all_entities("product")
                       if p["id"] not in variants_of and any(sp.get("value") for sp in p.get("salePrices", [])))
        sale = next(sp for sp in product["salePrices"] if sp.get("value"))
        stored = self.h.scalar(
            "SELECT pr.value::text FROM portal.prices pr JOIN portal.offers o ON o.id = pr.offer_id "
            "JOIN portal.price_types t ON t.id = pr.price_type_id "
            f"WHERE o.source = 'ms' AND o.external_id = '{product['id']}' AND t.external_id = '{sale['priceType']['id']}' LIMIT 1")
        self.assertIsNotNone(stored, "the product's sale price is in the portal")
        self.assertEqual(float(stored), sale["value"] / 100)
        # Counterparties carry the customer's price type and manager (owner → the employee's name).
        with_type = [c for c in self.fake.all_entities("counterparty") if c.get("priceType")]
        self.assertTrue(with_type, "the seed has a counterparty with a price type")
        row = self.h.query_json("SELECT t.external_id AS price_type, c.manager FROM portal.counterparties c "
                                "LEFT JOIN portal.price_types t ON t.id = c.price_type_id "
                                f"WHERE c.source = 'ms' AND c.external_id = '{with_type[0]['id']}'")[0]
        self.assertEqual(row["price_type"], with_type[0]["priceType"]["meta"]["href"].rsplit("/", 1)[1])
        self.assertEqual(row["manager"], "Администратор Аккаунта")
        before = self.portal_digest()
        r = self.resync("all")
        self.assertEqual(self.portal_digest(), before)
        status = json.loads(self.h.ctl("status", "--json", config=self.cfg_path, env=self.env()).stdout)["sources"][SOURCE]
        self.assertEqual(status["type"], "moysklad")
        for entity in ("catalog", "stock", "counterparties", "orders"):
            self.assertIsNotNone(status["sync"][entity], f"{entity} has a bookmark after a full sync")
        self.assertEqual(status["errors"], {"files": [], "jobs": []})
        # Every line of the adapter names its source; the token never appears in the log.
        self.assertRegex(self.daemon.log(), r"moysklad\[ms\]: GET http://127\.0\.0\.1:\d+/api/remap/1\.2/entity/product")
        self.assertNotIn(TOKEN, self.daemon.log())
        text = self.h.ctl("status", config=self.cfg_path, env=self.env()).stdout
        self.assertRegex(text, r"(?m)^ms \(МойСклад, http://127\.0\.0\.1:\d+/api/remap/1\.2/\)$")
        self.assertRegex(text, r"(?m)^  catalog +synced up to \d{4}-\d\d-\d\d \d\d:\d\d:\d\d MSK, ")
        self.assertRegex(text, r"(?m)^  webhooks +off \(polling only\)$")

    def test_incremental_asks_for_changes_only_and_applies_them(self):
        self.start()
        self.resync("catalog")
        product = self.fake.all_entities("product")[0]
        self.fake.set_clock(offset_seconds=120)
        self.fake.ui_write("product", {"id": product["id"], "name": "Переименован в МойСклад"})
        mark = len(self.fake.requests())
        self.resync("catalog", "--incremental")
        asked = [r for r in self.fake.requests()[mark:] if r["path"].endswith("/entity/product")]
        self.assertTrue(asked, f"the incremental sync asked for products: {[r['path'] for r in self.fake.requests()[mark:]]}")
        self.assertTrue(all("updated>=" in urllib.parse.unquote(r["query"]) for r in asked),
                        f"every product request is filtered by updated: {asked}")
        self.assertEqual(self.h.scalar(f"SELECT name FROM portal.products WHERE source = 'ms' AND external_id = '{product['id']}'"),
                         "Переименован в МойСклад")
        self.assertEqual(self.count("portal.products", "active"), self.fake_catalog()["products"])


class BigAccount(MoySkladBase):
    def test_ten_thousand_products_sync_without_a_429_surfacing(self):
        self.fake.generate(products=10000)
        self.start()
        want = self.fake_catalog()
        self.resync("catalog")
        self.assertEqual(self.count("portal.products", "active"), want["products"])
        self.assertEqual(self.count("portal.offers", "active"), want["offers"])
        state = self.fake.state()
        self.assertLessEqual(max(state["max_concurrency"].values()), 5, "never more than 5 requests in flight")
        self.assertFalse(any(state["banned"].values()), "no ban")
        self.assertEqual(state["served_429"], 0, "the client kept under the budget: not a single 429")
        print(f"\n10 000 products: {want['offers']} offers, {state['requests_total']} requests, "
              f"429s served {state['served_429']}", file=sys.stderr)


class Orders(MoySkladBase):
    def portal_order(self, number: str) -> dict:
        offer = self.h.query_json("SELECT id, name FROM portal.offers WHERE source = 'ms' AND active ORDER BY id LIMIT 2")
        cp = self.h.psql("INSERT INTO portal.counterparties (name, legal_name, inn, kpp) VALUES "
                         "('ООО Покупатель', 'ООО «Покупатель»', '7701234567', '770101001') RETURNING id, guid")[0]
        values = ", ".join(f"((SELECT id FROM o), {o['id']}, '{o['name']}', 2, 150.50, 301)" for o in offer)
        self.h.psql(f"BEGIN; WITH o AS (INSERT INTO portal.orders (number, counterparty_id, total, currency, status) "
                    f"VALUES ('{number}', {cp[0]}, {301 * len(offer)}, 'RUB', 'new') RETURNING id) "
                    f"INSERT INTO portal.order_items (order_id, offer_id, name, quantity, price, amount) VALUES {values}; COMMIT;")
        row = self.h.query_json(f"SELECT id, guid FROM portal.orders WHERE number = '{number}'")[0]
        return {"id": row["id"], "guid": row["guid"], "lines": len(offer)}

    def orders_in_fake(self, guid: str) -> list:
        return [o for o in self.fake.all_entities("customerorder") if o.get("syncId") == guid]

    def test_an_order_arrives_exactly_once_even_when_the_first_post_times_out(self):
        self.start(request_timeout=1)
        self.resync("catalog")
        # The first POST is accepted by МойСклад but answered after obmend gave up.
        self.fake.add_fault("accept_then_timeout", path="/entity/customerorder", method="POST", delay_ms=3000)
        order = self.portal_order("П-1001")
        self.wait_for("the order to be acknowledged",
                      lambda: self.h.scalar(f"SELECT exported_at IS NOT NULL FROM portal.orders WHERE id = {order['id']}") == "t",
                      timeout=60 * TIMEOUT_SCALE)
        created = self.orders_in_fake(order["guid"])
        self.assertEqual(len(created), 1, "exactly one customerorder with the order's syncId")
        self.assertEqual(created[0]["name"], "П-1001")
        self.assertEqual(len(created[0]["positions"]["rows"] if "rows" in created[0]["positions"] else created[0]["positions"]),
                         order["lines"])
        # obmend gave up on the first POST (the fake logs it only once its delayed answer is out).
        self.assertRegex(self.daemon.log(), r"order П-1001: POST \S+/entity/customerorder: read timed out")
        # Cancelling on the portal updates the same order (one PUT of its state).
        self.h.psql(f"UPDATE portal.orders SET cancelled = true, status = 'cancelled' WHERE id = {order['id']}")
        self.wait_for("the cancellation to reach МойСклад",
                      lambda: (self.orders_in_fake(order["guid"]) or [{}])[0].get("state", {}).get("name") == "Отменен"
                      or self.fake.find_state("customerorder", "Отменен")["meta"]["href"] ==
                      (self.orders_in_fake(order["guid"]) or [{}])[0].get("state", {}).get("meta", {}).get("href"),
                      timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(len(self.orders_in_fake(order["guid"])), 1)
        # The buyer was created in МойСклад once (syncId = its portal guid) and adopted by the portal.
        buyer = self.h.query_json("SELECT c.guid::text AS guid, c.source, c.external_id FROM portal.orders o "
                                  f"JOIN portal.counterparties c ON c.id = o.counterparty_id WHERE o.id = {order['id']}")[0]
        made = [c for c in self.fake.all_entities("counterparty") if c.get("syncId") == buyer["guid"]]
        self.assertEqual(len(made), 1)
        self.assertEqual((buyer["source"], buyer["external_id"]), (SOURCE, made[0]["id"]))

    def test_orders_survive_database_connections_cut_during_delivery(self):
        # What a PostgreSQL restart does to obmend: every connection of the test database is
        # terminated, three times while the queue drains. obmend reconnects and goes on; every
        # order reaches МойСклад exactly once (syncId) and is acknowledged; nothing is dead.
        self.start(request_timeout=5)
        self.resync("catalog")
        self.fake.add_fault("delay", count=1000, path="/entity/customerorder", method="POST", delay_ms=200)
        orders = [self.portal_order(f"П-3{i:03d}") for i in range(9)]
        admin = admin_database_url()
        cuts = 0

        def acknowledged() -> int:
            return self.h.count("SELECT count(*) FROM portal.orders WHERE exported_at IS NOT NULL")

        deadline = time.monotonic() + 180 * TIMEOUT_SCALE
        while acknowledged() < len(orders):
            self.assertLess(time.monotonic(), deadline, f"orders not delivered; cuts {cuts}\n{self.daemon.log_excerpt()}")
            if cuts < 3 and acknowledged() >= cuts * 3 and self.fake.all_entities("customerorder"):
                self.h.psql(f"WITH chosen AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE datname = "
                            f"'{self.h.db_name}' AND backend_type = 'client backend' AND pid <> pg_backend_pid()) "
                            f"SELECT pg_terminate_backend(pid) FROM chosen", url=admin)
                cuts += 1
            time.sleep(0.05)  # polling the database with a deadline
        self.assertEqual(cuts, 3)
        for o in orders:
            self.assertEqual(len(self.orders_in_fake(o["guid"])), 1, f"order {o['guid']} exactly once")
        self.assertEqual(self.h.count("SELECT count(*) FROM obmen.queue WHERE state = 'dead'"), 0)
        status, _, body = self.daemon.http("GET", "/healthz")
        self.assertEqual(status, 200, body)

    def test_a_new_portal_counterparty_is_created_once_and_adopted(self):
        self.start()
        row = self.h.psql("INSERT INTO portal.counterparties (name, inn) VALUES ('ИП Сидоров', '366312345678') "
                          "RETURNING guid")[0]
        guid = row[0]
        self.wait_for("the counterparty to be adopted",
                      lambda: self.h.scalar(f"SELECT source FROM portal.counterparties WHERE guid = '{guid}'") == SOURCE)
        made = [c for c in self.fake.all_entities("counterparty") if c.get("syncId") == guid]
        self.assertEqual(len(made), 1)
        self.assertEqual(made[0]["companyType"], "entrepreneur")
        # A full counterparty sync updates that row instead of adding a second one.
        self.resync("counterparties")
        self.assertEqual(self.count("portal.counterparties"), len(self.fake.all_entities("counterparty")))
        self.assertEqual(self.h.count(f"SELECT count(*) FROM portal.counterparties WHERE inn = '366312345678'"), 1,
                         self.h.query_json("SELECT id, source, external_id, name, guid FROM portal.counterparties WHERE inn = '366312345678'"))

    def test_a_state_change_comes_back_through_a_webhook_within_a_second(self):
        port = free_port()
        hook = f"http://127.0.0.1:{port}/hooks/moysklad"
        self.start(port=port, webhooks={"url": hook})
        self.resync("all")
        order = self.portal_order("П-2002")
        self.wait_for("the order to be acknowledged",
                      lambda: self.h.scalar(f"SELECT exported_at IS NOT NULL FROM portal.orders WHERE id = {order['id']}") == "t")
        ms_order = self.orders_in_fake(order["guid"])[0]
        registered = [w for w in self.fake.all_entities("webhook") if w.get("url") == hook]
        self.assertTrue(any(w["entityType"] == "customerorder" and w["action"] == "UPDATE" for w in registered),
                        f"obmend registered its webhooks: {registered}")
        started = time.monotonic()
        self.fake.set_order_state(ms_order["id"], "Отгружен")
        self.wait_for("the shipped status in the portal",
                      lambda: self.h.scalar(f"SELECT status FROM portal.orders WHERE id = {order['id']}") == "shipped")
        elapsed = time.monotonic() - started
        print(f"\nstate change → portal via webhook: {elapsed * 1000:.0f} ms", file=sys.stderr)
        self.assertLess(elapsed, 1.0 * TIMEOUT_SCALE)
        deliveries = self.fake.webhook_deliveries()["deliveries"]
        self.assertTrue(all(d.get("status") in (200, 204) for d in deliveries), deliveries)
        # Our own writes (the order POST) carried DisableByPrefix: no echo came back.
        self.assertTrue(self.fake.webhook_deliveries()["suppressed"], "obmend's writes suppressed their webhooks")


class Webhooks(MoySkladBase):
    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.hook = f"http://127.0.0.1:{self.port}/hooks/moysklad"
        self.start(port=self.port, webhooks={"url": self.hook})
        self.resync("all")

    def test_the_stock_webhook_pulls_the_changed_stock(self):
        offer = self.h.query_json("SELECT o.external_id FROM portal.offers o WHERE o.source = 'ms' AND o.active "
                                  "ORDER BY o.id LIMIT 1")[0]["external_id"]
        store = self.fake.all_entities("store")[0]["id"]
        self.fake.set_clock(offset_seconds=60)
        self.fake.set_stock(offer, store, stock=321)
        self.fake.post_stock_webhook()
        self.assertTrue(self.fake.flush_webhooks())
        self.wait_for("the new stock level",
                      lambda: self.h.scalar("SELECT s.quantity::text FROM portal.stock s JOIN portal.offers o ON o.id = s.offer_id "
                                            "JOIN portal.warehouses w ON w.id = s.warehouse_id "
                                            f"WHERE o.source = 'ms' AND o.external_id = '{offer}' AND w.external_id = '{store}'")
                      in ("321", "321.0", "321.0000"))
        deliveries = self.fake.webhook_deliveries()["deliveries"]
        self.assertTrue(deliveries)
        self.assertTrue(all(d["latency_ms"] < 1500 for d in deliveries), "every delivery answered within 1500 ms")

    def post(self, request_id: str | None, body: bytes):
        path = "/hooks/moysklad" + (f"?requestId={request_id}" if request_id else "")
        return self.daemon.http("POST", path, body=body, headers={"Content-Type": "application/json"})

    def test_a_repeated_delivery_is_queued_once_and_bad_ones_are_refused(self):
        product = self.fake.all_entities("product")[0]
        body = json.dumps({"auditContext": {"meta": {"type": "audit", "href": f"{self.fake.base_url}/audit/x"},
                                            "moment": "2026-12-06 10:00:00", "uid": "admin@obmen"},
                           "events": [{"meta": {"type": "product", "href": product["meta"]["href"]},
                                       "action": "UPDATE", "accountId": product["accountId"]}]}).encode()
        for _ in range(4):  # МойСклад retries with the same requestId
            self.assertEqual(self.post("5f0e1c2a-0000-4000-8000-000000000001", body)[0], 200)
        self.assertEqual(self.h.psql("SELECT deliveries, queue_item_id IS NOT NULL FROM obmen.webhook_events "
                                     "WHERE request_id = '5f0e1c2a-0000-4000-8000-000000000001'"), [("4", "t")])
        self.assertEqual(self.h.count("SELECT count(*) FROM obmen.queue WHERE target = 'ms/in'"), 1)
        self.wait_for("the event to be applied",
                      lambda: self.h.scalar("SELECT state FROM obmen.queue WHERE target = 'ms/in'") == "done")
        self.assertEqual(self.post(None, body)[0], 400)
        self.assertEqual(self.post("r2", b"{not json")[0], 400)
        self.assertEqual(self.post("r3", b'{"events": 5}')[0], 400)
        self.assertEqual(self.h.count("SELECT count(*) FROM obmen.webhook_events"), 1, "refused deliveries are not stored")
        metrics = self.daemon.http("GET", "/metrics")[2].decode()
        self.assertIn('obmen_moysklad_webhooks_total{source="ms",outcome="duplicate"} 3', metrics)
        self.assertIn('obmen_moysklad_webhooks_total{source="ms",outcome="rejected"} 3', metrics)


class Failures(MoySkladBase):
    def assert_fails_unchanged(self, needle: str):
        before = self.portal_digest()
        r = self.resync("catalog", expect=1)
        self.assertIn(needle, r.stdout + r.stderr)
        self.assertEqual(self.portal_digest(), before, "the portal is unchanged")

    def test_wrong_token(self):
        self.start(token="not-a-valid-token")
        self.assert_fails_unchanged("401")

    def test_dead_api(self):
        self.start(base_url=f"http://127.0.0.1:{free_port()}/api/remap/1.2/")
        self.assert_fails_unchanged("127.0.0.1")

    def test_malformed_json(self):
        self.start()
        self.resync("catalog")
        self.fake.add_fault("malformed_json", path="/entity/product", method="GET")
        self.assert_fails_unchanged("entity/product")


if __name__ == "__main__":
    unittest.main()
