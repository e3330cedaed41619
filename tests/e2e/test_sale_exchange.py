"""1C order exchange (type=sale), black-box: the real obmend, a client that behaves like 1C
(sale_client.py), the portal's orders written with psql as the portal writes them.

Protocol: shared/reference/commerceml/PROTOCOL.md §2 rows G–M, §5 (query answer, encoding,
idempotency: delivered only after `success`), §6 (documents from 1C, old and new protocol), §9
(version handshake); document structure FORMAT.md §6. Portal contract: store/migrations (orders,
order_items, order_status_history + NOTIFY portal_order_status, documents), store/orders_store.hpp,
docs/mapping.md (statuses, derived_statuses), docs/configuration.md (orders_schema_version,
unknown_orders, timezone, orders_per_query, encoding).

Catalog: dobromyslov/commerceml-parser data/import0_1.xml + data/offers0_1.xml imported with
`obmenctl import` before each test, so portal.offers has rows for order_items to reference.
No sleeps: the daemon's READY datagram, the HTTP answers and psql's output are the events.
"""

from __future__ import annotations

import decimal
import re
import shutil
import subprocess
import threading
import time
import unittest
import uuid

import cml
from harness import EVENT_TIMEOUT, Harness, reference_dir
from onec_client import OneCClient
from sale_client import (SaleClient, child, children, content_type_charset, local, namespace, parse_xml,
                         requisites, text_of, walk, xml_declared_encoding)

SOURCE = "onec"
IMPORT = cml.DOBROMYSLOV + "/data__import0_1.xml"
OFFERS = cml.DOBROMYSLOV + "/data__offers0_1.xml"
CARONO_TO = "carono__yii2-1c-exchange/files__xml__to.xml"
IRPSV_ORDERS = "irpsv__commerceml/tests__assets__off-doc-1c__orders.xml"
XSD = {
    "2.05": "commerceml_2.05__webasyst.xsd",
    "2.08": "commerceml_2.08__gillbeits.xsd",
    "2.09": "commerceml_2.09__carono.xsd",
    "2.10": "commerceml_2.10__carono.xsd",
}
NS2 = "urn:1C.ru:commerceml_2"
NS3 = "urn:1C.ru:commerceml_3"

MAPPING = """\
statuses:
  - match: { name: "Закрыт" }
    status: completed
  - match: { name: "Собран" }
    status: assembled
derived_statuses:
  paid: paid
  shipped: shipped
  cancelled: cancelled
"""

ORDER_TABLES = ("orders", "order_items", "order_status_history", "documents", "counterparties")


def q(s) -> str:
    """SQL literal."""
    if s is None:
        return "NULL"
    return "'" + str(s).replace("'", "''") + "'"


def dec(v) -> decimal.Decimal | None:
    if v is None:
        return None
    return decimal.Decimal(str(v).replace(",", ".").replace(" ", "")).normalize()


def xesc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# ----------------------------------------------------------------------- NOTIFY listener (psql)

class Listener:
    """`psql` in a subprocess that LISTENs on a channel. psql prints a notification when it next
    talks to the server, so wait() sends marker queries and reads psql's output until the
    notification shows up or the deadline passes (each round trip waits on output: no sleeps)."""

    NOTE = re.compile(r'^Asynchronous notification "([^"]+)" with payload "([^"]*)" received')

    def __init__(self, url: str, channel: str):
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-d", url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.counter = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self._send(f"LISTEN {channel};")
        self.sync()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append("\0EOF")
            self.cond.notify_all()

    def _send(self, text: str):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def sync(self, timeout: float = EVENT_TIMEOUT):
        self.counter += 1
        marker = f"sync-{self.counter}-{uuid.uuid4().hex[:6]}"
        self._send(f"SELECT '{marker}';")
        deadline = time.monotonic() + timeout
        with self.cond:
            while marker not in self.lines:
                if "\0EOF" in self.lines:
                    raise AssertionError(f"psql listener exited: {self.lines!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"psql listener did not answer: {self.lines!r}")
                self.cond.wait(left)

    def notifications(self) -> list[tuple[str, str]]:
        with self.cond:
            return [(m.group(1), m.group(2)) for m in map(self.NOTE.match, self.lines) if m]

    def wait(self, payload: str, *, count: int = 1, timeout: float = 10.0) -> list[tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while True:
            got = [n for n in self.notifications() if n[1] == payload]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            self.sync()

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(5)
        self.proc.stdout.close()


# --------------------------------------------------------------------- 1C documents file builder

def counterparty_xml(cp: dict, *, onec_id: str | None = None) -> str:
    return (f"<Контрагенты><Контрагент><Ид>{xesc(onec_id or cp['guid'])}</Ид>"
            f"<Наименование>{xesc(cp['name'])}</Наименование>"
            f"<ОфициальноеНаименование>{xesc(cp['legal_name'])}</ОфициальноеНаименование>"
            f"<Роль>Покупатель</Роль><ИНН>{cp['inn']}</ИНН>" + (f"<КПП>{cp['kpp']}</КПП>" if cp.get("kpp") else "") +
            f"</Контрагент></Контрагенты>")


def lines_xml(lines: list[dict]) -> str:
    out = ["<Товары>"]
    for ln in lines:
        out.append(f"<Товар><Ид>{xesc(ln['offer'])}</Ид><Наименование>{xesc(ln['name'])}</Наименование>"
                   f"<БазоваяЕдиница Код=\"796\" НаименованиеПолное=\"Штука\">шт</БазоваяЕдиница>"
                   f"<ЦенаЗаЕдиницу>{ln['price']}</ЦенаЗаЕдиницу><Количество>{ln['quantity']}</Количество>"
                   f"<Сумма>{ln['amount']}</Сумма>"
                   f"<ЗначенияРеквизитов><ЗначениеРеквизита><Наименование>ВидНоменклатуры</Наименование>"
                   f"<Значение>Товар</Значение></ЗначениеРеквизита><ЗначениеРеквизита>"
                   f"<Наименование>ТипНоменклатуры</Наименование><Значение>Товар</Значение></ЗначениеРеквизита>"
                   f"</ЗначенияРеквизитов></Товар>")
    out.append("</Товары>")
    return "".join(out)


def requisites_xml(pairs) -> str:
    return "<ЗначенияРеквизитов>" + "".join(
        f"<ЗначениеРеквизита><Наименование>{xesc(k)}</Наименование><Значение>{xesc(v)}</Значение>"
        f"</ЗначениеРеквизита>" for k, v in pairs) + "</ЗначенияРеквизитов>"


def order_document(o: dict, *, requisite_pairs=(), onec_cp_id: str | None = None, erp_number: str | None = None,
                   erp_date: str | None = None, subordinates: str = "", ident: str | None = None,
                   number: str | None = None) -> str:
    """A "Заказ товара" document as UT 11 + the 1C-Bitrix module sends it back (like
    ArgentCrusade documents-example.xml), referring to the portal order `o`."""
    parts = [f"<Документ><Ид>{xesc(ident or o['guid'])}</Ид>",
             f"<ПометкаУдаления>false</ПометкаУдаления><Номер>{xesc(number or o['number'])}</Номер>"]
    if erp_number:
        parts.append(f"<Номер1С>{xesc(erp_number)}</Номер1С>")
    parts.append(f"<Дата>{o.get('date', '2024-03-04')}</Дата>")
    if erp_date:
        parts.append(f"<Дата1С>{erp_date}</Дата1С>")
    parts.append("<Время>12:00:00</Время><ХозОперация>Заказ товара</ХозОперация>")
    parts.append(counterparty_xml(o["counterparty"], onec_id=onec_cp_id))
    parts.append(f"<Валюта>RUB</Валюта><Курс>1</Курс><Сумма>{o['total']}</Сумма><Роль>Продавец</Роль>")
    parts.append(f"<Комментарий>[Номер документа на сайте: {xesc(o['number'])}]</Комментарий>")
    parts.append(lines_xml(o["lines"]))
    parts.append(requisites_xml(requisite_pairs))
    parts.append(subordinates)
    parts.append("</Документ>")
    return "".join(parts)


def invoice_document(o: dict, ident: str, number: str, *, tag: str = "Документ", onec_cp_id: str | None = None) -> str:
    return (f"<{tag}><Ид>{xesc(ident)}</Ид><Номер>{xesc(number)}</Номер><Дата>2024-03-05</Дата>"
            f"<ХозОперация>Счет на оплату</ХозОперация><Роль>Продавец</Роль><Валюта>RUB</Валюта><Курс>1</Курс>"
            f"<Сумма>{o['total']}</Сумма>{counterparty_xml(o['counterparty'], onec_id=onec_cp_id)}</{tag}>")


def documents_file(groups, *, version: str = "2.09", encoding: str = "utf-8", container: bool = False) -> bytes:
    """КоммерческаяИнформация with the given Документ strings; with container=True each group
    (a list of documents) is one Контейнер (CML 3.1)."""
    ns = NS3 if version.startswith("3") else NS2
    body = []
    for g in groups:
        docs = g if isinstance(g, (list, tuple)) else [g]
        body.append("<Контейнер>" + "".join(docs) + "</Контейнер>" if container else "".join(docs))
    text = (f'<?xml version="1.0" encoding="{"windows-1251" if encoding == "windows-1251" else "UTF-8"}"?>\n'
            f'<КоммерческаяИнформация xmlns="{ns}" ВерсияСхемы="{version}" ДатаФормирования="2024-03-06T18:00:00">\n'
            + "\n".join(body) + "\n</КоммерческаяИнформация>\n")
    return text.encode("cp1251" if encoding == "windows-1251" else "utf-8")


STATUS_REQUISITES = [
    ("Проведен", "true"),
    ("Номер по 1С", "ТДЦУ-000123"),
    ("Дата по 1С", "2024-03-04"),
    ("Номер оплаты по 1С", "ТДЦУ-000201"),
    ("Дата оплаты по 1С", "2024-03-05T10:15:00"),
    ("Номер отгрузки по 1С", "ТДЦУ-000301"),
    ("Дата отгрузки по 1С", "2024-03-06T16:30:00"),
    ("Статус заказа", "Закрыт"),
]


# ------------------------------------------------------------------------------------- queries

def parse_orders(raw: bytes) -> dict:
    """guid → what the query answer says about that order."""
    root = parse_xml(raw)
    out = {}
    docs = children(root, "Документ") + walk(root, ["Контейнер", "Документ"])
    for d in docs:
        if text_of(d, "ХозОперация") not in (None, "Заказ товара"):
            continue
        buyers = [c for c in walk(d, ["Контрагенты", "Контрагент"]) if text_of(c, "Роль") in (None, "Покупатель")]
        cp = buyers[0] if buyers else None

        def deep(el, name):
            if el is None:
                return None
            for n in el.iter():
                if local(n.tag) == name and n.text:
                    return n.text.strip()
            return None

        out[text_of(d, "Ид")] = {
            "number": text_of(d, "Номер"),
            "total": dec(text_of(d, "Сумма")),
            "currency": text_of(d, "Валюта"),
            "comment": text_of(d, "Комментарий"),
            "inn": deep(cp, "ИНН"), "kpp": deep(cp, "КПП"),
            "cp_name": text_of(cp, "Наименование") if cp is not None else None,
            "lines": [(text_of(t, "Ид"), dec(text_of(t, "Количество")), dec(text_of(t, "ЦенаЗаЕдиницу")))
                      for t in walk(d, ["Товары", "Товар"]) if text_of(t, "Ид") != "ORDER_DELIVERY"],
            "requisites": requisites(d),
        }
    return out


def count_documents(raw: bytes) -> int:
    root = parse_xml(raw)
    return len([e for e in root.iter() if local(e.tag) == "Документ"])


# ------------------------------------------------------------------------------------ test base

class SaleTestCase(unittest.TestCase):
    maxDiff = None
    CONFIG: dict = {}

    def setUp(self):
        self.h = Harness.for_test(self)
        self.h.create_database()
        self.mapping = self.h.dir / "mapping.yaml"
        self.mapping.write_text(MAPPING, encoding="utf-8")
        self.import_catalog()
        self.d = None

    # -- portal

    def import_catalog(self):
        files = []
        for src, name in ((IMPORT, "import0_1.xml"), (OFFERS, "offers0_1.xml")):
            path = self.h.dir / name
            shutil.copyfile(cml.sample(src), path)
            files.append(str(path))
        cfg = self.h.write_config(self.h.config(), name="ctl.yaml")
        r = self.h.ctl("import", "--source", SOURCE, *files, config=cfg)
        self.assertEqual(r.returncode, 0, f"obmenctl import failed:\n{r.stdout}{r.stderr}")
        self.offers = self.h.psql(f"SELECT id, external_id, name FROM portal.offers WHERE source = '{SOURCE}' "
                                  f"AND product_id IS NOT NULL ORDER BY external_id")
        self.assertGreaterEqual(len(self.offers), 3, "the catalog sample should give offers")

    def counterparty(self, name='ООО «Ромашка»', inn="7701234567", kpp="770101001",
                     legal_name='Общество с ограниченной ответственностью «Ромашка»') -> dict:
        row = self.h.psql(f"INSERT INTO portal.counterparties (name, legal_name, inn, kpp) VALUES "
                          f"({q(name)}, {q(legal_name)}, {q(inn)}, {q(kpp)}) RETURNING id, guid")
        return {"id": int(row[0][0]), "guid": row[0][1], "name": name, "legal_name": legal_name, "inn": inn, "kpp": kpp}

    def order(self, number: str, cp: dict | None = None, *, lines=((0, "2", "100.50"), (1, "1.5", "1999.99")),
              comment: str | None = "Позвонить до доставки — после 10:00") -> dict:
        """One portal order, inserted in ONE transaction as the portal does (counterparty first
        when not given): orders row with status 'new', then its lines."""
        line_rows = []
        for idx, qty, price in lines:
            oid, ext, name = self.offers[idx]
            amount = (decimal.Decimal(qty) * decimal.Decimal(price)).quantize(decimal.Decimal("0.01"))
            line_rows.append({"offer_id": oid, "offer": ext, "name": name, "quantity": qty, "price": price,
                              "amount": str(amount)})
        total = sum(decimal.Decimal(x["amount"]) for x in line_rows)
        if cp is None:
            cp = self.counterparty()
        values = ", ".join(f"((SELECT id FROM o), {x['offer_id']}, {q(x['name'])}, {x['quantity']}, {x['price']}, "
                           f"{x['amount']})" for x in line_rows)
        sql = (f"BEGIN; WITH o AS (INSERT INTO portal.orders (number, counterparty_id, total, currency, status, comment) "
               f"VALUES ({q(number)}, {cp['id']}, {total}, 'RUB', 'new', {q(comment)}) RETURNING id) "
               f"INSERT INTO portal.order_items (order_id, offer_id, name, quantity, price, amount) VALUES {values}; "
               f"COMMIT;")
        self.h.psql(sql)
        row = self.h.psql(f"SELECT id, guid, to_char(created_at AT TIME ZONE 'Europe/Moscow', 'YYYY-MM-DD') "
                          f"FROM portal.orders WHERE number = {q(number)}")
        return {"id": int(row[0][0]), "guid": row[0][1], "date": row[0][2], "number": number, "total": str(total),
                "counterparty": cp, "lines": line_rows, "comment": comment}

    def dump(self) -> dict:
        return {t: self.h.query_json(f"SELECT * FROM portal.{t} ORDER BY id") for t in ORDER_TABLES}

    def order_row(self, order_id: int) -> dict:
        return self.h.query_json(
            "SELECT status, erp_number, cancelled, exported_at IS NOT NULL AS exported, changed_at, updated_at, "
            "to_char(paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') AS paid_utc, "
            "to_char(shipped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') AS shipped_utc, "
            "to_char(erp_date AT TIME ZONE 'Europe/Moscow', 'YYYY-MM-DD') AS erp_day "
            f"FROM portal.orders WHERE id = {order_id}")[0]

    def history(self, order_id: int) -> list[tuple]:
        return self.h.psql(f"SELECT status, origin FROM portal.order_status_history WHERE order_id = {order_id} ORDER BY id")

    # -- daemon and clients

    def start(self, **onec):
        cfg = dict({"zip": False, "file_limit": "64KiB", "mapping": str(self.mapping),
                    "orders_schema_version": "2.09", "unknown_orders": "report", "timezone": "Europe/Moscow"},
                   **self.CONFIG)
        cfg.update(onec)
        self.d = self.h.start_daemon(self.h.config(**cfg))
        return self.d

    def reconfigure(self, **onec):
        text = self.h.write_config(self.h.config(**dict({"zip": False, "file_limit": "64KiB",
                                                           "mapping": str(self.mapping),
                                                           "timezone": "Europe/Moscow"}, **onec)))
        self.assertEqual(text, self.d.config_path)
        self.d.reload()

    def client(self) -> SaleClient:
        c = SaleClient(self.d.url(), Harness.USER, Harness.PASSWORD)
        self.addCleanup(c.close)
        return c

    def session(self, version: str | None = "2.09") -> SaleClient:
        c = self.client()
        a = c.checkauth()
        self.assertEqual(a.status, "success", a.describe())
        a = c.init(version)
        self.assertEqual(a.http_status, 200, a.describe())
        self.assertFalse(a.status.startswith("failure"), a.describe())
        return c

    def query(self, c: SaleClient, *, charset: str = "utf-8"):
        a = c.query()
        self.assertEqual(a.http_status, 200, a.describe())
        ctype = a.headers.get("content-type", "")
        self.assertTrue(ctype.lower().startswith("application/xml"), f"Content-Type {ctype!r}: {a.describe()}")
        self.assertEqual(content_type_charset(ctype), charset, f"Content-Type {ctype!r}")
        self.assertEqual(xml_declared_encoding(a.raw), charset, f"XML declaration: {a.raw[:120]!r}")
        self.assertFalse(a.raw.lstrip(b"\xef\xbb\xbf").startswith((b"success", b"failure")),
                         "query answers the document itself, no status line")
        root = parse_xml(a.raw)
        self.assertEqual(local(root.tag), "КоммерческаяИнформация", a.describe())
        return a, parse_orders(a.raw)

    def expect_orders(self, got: dict, orders: list[dict]):
        self.assertEqual(set(got), {o["guid"] for o in orders}, "the query answer's Документ Ид set")
        for o in orders:
            g = got[o["guid"]]
            cp = o["counterparty"]
            self.assertEqual(g["number"], o["number"], "Номер")
            self.assertEqual(g["total"], dec(o["total"]), "Сумма")
            self.assertEqual((g["inn"], g["kpp"]), (cp["inn"], cp["kpp"]), "Контрагент ИНН/КПП")
            self.assertEqual(g["lines"], [(x["offer"], dec(x["quantity"]), dec(x["price"])) for x in o["lines"]],
                             "Товары/Товар (Ид, Количество, ЦенаЗаЕдиницу) in order_items.id order")

    def assert_failure(self, a, what: str):
        self.assertEqual(a.http_status, 200, f"{what}: protocol answers are HTTP 200: {a.describe()}")
        self.assertEqual(a.status, "failure", f"{what}: {a.describe()}")
        self.assertTrue(a.message.strip(), f"{what}: failure without a reason: {a.describe()}")

    def send_new(self, c: SaleClient, name: str, data: bytes):
        uploads, final = c.send_documents(name, data, new_protocol=True)
        self.assertTrue(all(u.ok and u.lines == ["success"] for u in uploads),
                        "new protocol: each file piece answers exactly success\n" +
                        "\n".join(u.describe() for u in uploads) + "\n" + self.d.log_excerpt(6000))
        return uploads, final


# ------------------------------------------------------------------------------ 1. orders out

class OrdersOut(SaleTestCase):

    def test_handshake_answers(self):
        self.start()
        c = self.client()
        a = c.checkauth()
        self.assertEqual(a.http_status, 200)
        self.assertRegex(a.text, r"\Asuccess\n[^\n]+\n[^\n]+\nsessid=[^\n]+\n\Z",
                         "sale checkauth: exactly 4 lines (no timestamp line)")
        a = c.init("2.09")
        self.assertRegex(a.text, r"\Azip=no\nfile_limit=65536\nsessid=[^\n]+\nversion=2\.09\n?\Z", a.describe())
        self.assertEqual(c.version_answered, "2.09")
        # The sessid of the init answer is accepted on the next requests (1C sends it from now on).
        a = c.query()
        self.assertEqual(a.http_status, 200, a.describe())
        self.assertEqual(local(parse_xml(a.raw).tag), "КоммерческаяИнформация")
        c2 = self.client()
        c2.checkauth()
        a = c2.init()
        self.assertRegex(a.text, r"\Azip=no\nfile_limit=65536\n?\Z", "old protocol init: exactly two lines")
        a = c2.info()
        self.assertEqual(a.http_status, 200, a.describe())
        self.assertEqual(content_type_charset(a.headers.get("content-type")), "utf-8", a.headers)
        root = parse_xml(a.raw)
        ids = [text_of(e, "Ид") for e in walk(root, ["Статусы", "Элемент"])]
        self.assertIn("new", ids, a.text)
        self.assertIn("completed", ids, "info lists the statuses the mapping maps to")
        self.assertIn("assembled", ids, "info lists the statuses the mapping maps to")

    def test_query_exports_new_orders_then_success_acknowledges(self):
        self.start()
        cp = self.counterparty()
        o1 = self.order("П-1001", cp)
        o2 = self.order("П-1002", self.counterparty(name="ИП Иванов", inn="500100732259", kpp=None, legal_name="ИП Иванов И. И."),
                        lines=((2, "3", "15.00"),))
        # An order that came from the ERP (source set) is not the portal's to send.
        self.h.psql("INSERT INTO portal.orders (number, source, external_id, total) VALUES ('ERP-1', 'onec', 'erp-1', 5)")
        for o in (o1, o2):
            self.assertEqual(self.order_row(o["id"])["exported"], False)
        c = self.session("2.09")
        a, got = self.query(c)
        self.expect_orders(got, [o1, o2])
        self.assertEqual(got[o1["guid"]]["comment"], o1["comment"])
        self.assertEqual(count_documents(a.raw), 2, a.text)
        # Delivered only after success.
        self.assertEqual(self.order_row(o1["id"])["exported"], False, "exported_at set before success")
        a = c.success()
        self.assertEqual(a.text, "success\n", a.describe())
        for o in (o1, o2):
            self.assertEqual(self.order_row(o["id"])["exported"], True, "exported_at after success")
        c2 = self.session("2.09")
        a, got = self.query(c2)
        self.assertEqual(got, {}, f"a second session's query after success must be empty: {a.text}")
        self.assertEqual(count_documents(a.raw), 0)
        self.assertEqual(c2.success().text, "success\n", "success with nothing pending is harmless")

    def test_query_without_success_sends_the_same_orders_again(self):
        self.start()
        o1 = self.order("П-2001")
        c = self.session()
        _, first = self.query(c)
        self.expect_orders(first, [o1])
        # 1C failed to store them: no success. Another session's success must not acknowledge them.
        other = self.session()
        self.assertEqual(other.success().text, "success\n")
        c2 = self.session()
        _, again = self.query(c2)
        self.assertEqual(again, first, "orders not acknowledged by success are sent again, unchanged")
        self.assertEqual(self.order_row(o1["id"])["exported"], False)
        self.assertEqual(c2.success().text, "success\n")
        _, after = self.query(self.session())
        self.assertEqual(after, {})

    def test_order_edited_after_success_is_exported_again(self):
        self.start()
        o1 = self.order("П-3001")
        o2 = self.order("П-3002")
        c = self.session()
        self.expect_orders(self.query(c)[1], [o1, o2])
        self.assertTrue(c.success().ok)
        self.h.psql(f"UPDATE portal.orders SET changed_at = now(), comment = 'Доставить в пятницу' WHERE id = {o1['id']}")
        c = self.session()
        _, got = self.query(c)
        self.expect_orders(got, [o1])
        self.assertEqual(got[o1["guid"]]["comment"], "Доставить в пятницу")
        self.assertTrue(c.success().ok)
        self.assertEqual(self.query(self.session())[1], {})

    def test_orders_per_query_limits_one_answer(self):
        self.start(orders_per_query=2)
        orders = [self.order(f"П-40{i}") for i in range(3)]
        c = self.session()
        _, got = self.query(c)
        self.assertEqual(len(got), 2, "orders_per_query: 2")
        self.assertTrue(c.success().ok)
        c = self.session()
        _, rest = self.query(c)
        self.assertEqual(len(rest), 1)
        self.assertEqual(set(got) | set(rest), {o["guid"] for o in orders})

    def test_answer_validates_against_the_xsd_of_its_version(self):
        self.start(orders_schema_version="2.05")
        o1 = self.order("П-5001")
        for version in ("2.05", "2.08", "2.09", "2.10"):
            with self.subTest(version=version):
                self.reconfigure(orders_schema_version=version)
                c = self.session(version)
                self.assertEqual(c.version_answered, version, c.answers[-1].describe())
                a, got = self.query(c)
                self.expect_orders(got, [o1])
                root = parse_xml(a.raw)
                self.assertEqual(root.get("ВерсияСхемы"), version)
                xsd = reference_dir() / "commerceml" / "xsd" / XSD[version]
                target = re.search(r'targetNamespace="([^"]+)"', xsd.read_text(encoding="utf-8-sig")).group(1)
                ns = namespace(root.tag)
                data = a.raw
                if ns is None and version == "2.05":
                    # Deviation, named: 1C-Bitrix writes 2.05 answers without a namespace
                    # (samples/dobromyslov__commerceml-parser/data__bitrix-query-response-full.xml) and so
                    # does obmen, while the 2.05 XSD's targetNamespace is urn:1C.ru:commerceml2. The
                    # structure is validated on a copy with that namespace added to the root.
                    data = re.sub("<КоммерческаяИнформация".encode(),
                                  f'<КоммерческаяИнформация xmlns="{target}"'.encode(), data, count=1)
                else:
                    self.assertEqual(ns, target, f"namespace of a {version} answer")
                path = self.h.dir / f"query-{version}.xml"
                path.write_bytes(data)
                r = subprocess.run(["xmllint", "--noout", "--schema", str(xsd), str(path)],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, f"xmllint against {xsd.name}:\n{r.stderr}\n{a.text}")


# ------------------------------------------------------------------------------ 2. statuses in

class StatusesIn(SaleTestCase):

    def test_status_payment_shipment_numbers_applied_once_and_notified(self):
        # 1 KiB file_limit: the documents file travels in several pieces, as 1C splits it.
        self.start(file_limit="1KiB")
        cp = self.counterparty()
        o = self.order("П-6001", cp)
        listener = Listener(self.h.database_url, "portal_order_status")
        self.addCleanup(listener.close)
        onec_cp = str(uuid.uuid4())
        data = documents_file([order_document(o, requisite_pairs=STATUS_REQUISITES, onec_cp_id=onec_cp,
                                              erp_number="ТДЦУ-000123", erp_date="2024-03-04")])
        self.assertGreater(len(data), 1024)
        # The typical sale session: checkauth → init(version) → query → success → file → import.
        c = self.session("2.09")
        self.expect_orders(self.query(c)[1], [o])
        self.assertTrue(c.success().ok)
        name = f"documents___{uuid.uuid4()}.xml"
        uploads, final = self.send_new(c, name, data)
        self.assertEqual(len(uploads), -(-len(data) // 1024), "pieces of at most file_limit bytes")
        self.assertEqual(final.status, "success", final.describe() + "\n" + self.d.log_excerpt(6000))
        row = self.order_row(o["id"])
        self.assertEqual(row["status"], "completed", "'Статус заказа' Закрыт mapped by the mapping file")
        self.assertEqual(row["erp_number"], "ТДЦУ-000123")
        self.assertEqual(row["erp_day"], "2024-03-04")
        self.assertEqual(row["paid_utc"], "2024-03-05T07:15:00", "Дата оплаты по 1С, read in Europe/Moscow")
        self.assertEqual(row["shipped_utc"], "2024-03-06T13:30:00", "Дата отгрузки по 1С, read in Europe/Moscow")
        hist = self.history(o["id"])
        self.assertTrue(hist, "a status change appends order_status_history")
        self.assertEqual(hist[-1], ("completed", SOURCE), hist)
        self.assertTrue(all(origin == SOURCE for _, origin in hist), hist)
        got = listener.wait(str(o["id"]))
        self.assertTrue(got, f"NOTIFY portal_order_status '{o['id']}' not received: {listener.lines!r}")
        self.assertEqual(got[0][0], "portal_order_status")
        # The counterparty 1C sent (its own Ид, same ИНН/КПП) is the portal's, adopted — no duplicate.
        self.assertEqual(self.h.count("portal.counterparties"), 1, self.h.psql("SELECT * FROM portal.counterparties"))
        self.assertEqual(self.h.psql(f"SELECT source, external_id FROM portal.counterparties WHERE id = {cp['id']}"),
                         [(SOURCE, onec_cp)])
        # obmen's write-back is not an edit by the customer: nothing to export back.
        self.assertEqual(self.query(self.session())[1], {}, "an order changed by 1C is not sent back to 1C")
        # The same file again (1C re-sends unchanged documents): nothing changes.
        before = self.dump()
        notes_before = len(listener.notifications())
        c = self.session("2.09")
        _, final = self.send_new(c, name, data)
        self.assertEqual(final.status, "success", final.describe())
        self.assertEqual(self.dump(), before, "a repeated identical documents file must change nothing")
        listener.sync()
        self.assertEqual(len(listener.notifications()), notes_before, "no NOTIFY for a document that changes nothing")

    def test_payment_alone_derives_paid(self):
        self.start()
        o = self.order("П-6101")
        data = documents_file([order_document(o, requisite_pairs=[("Номер оплаты по 1С", "ТДЦУ-000202"),
                                                                  ("Дата оплаты по 1С", "2024-03-05T10:15:00")])])
        _, final = self.send_new(self.session(), "documents___paid.xml", data)
        self.assertEqual(final.status, "success", final.describe())
        row = self.order_row(o["id"])
        self.assertEqual((row["status"], row["paid_utc"], row["shipped_utc"]), ("paid", "2024-03-05T07:15:00", None),
                         "derived_statuses.paid for a payment without a status")
        self.assertEqual(self.history(o["id"])[-1], ("paid", SOURCE))

    def check_invoice(self, o, invoice_id, number):
        rows = self.h.query_json(f"SELECT kind, number, order_id, counterparty_id, amount, source FROM portal.documents "
                                 f"WHERE external_id = {q(invoice_id)}")
        self.assertEqual(len(rows), 1, f"one portal.documents row for the invoice: {self.dump()['documents']}")
        r = rows[0]
        self.assertEqual((r["kind"], r["number"], r["order_id"], r["counterparty_id"], r["source"]),
                         ("invoice", number, o["id"], o["counterparty"]["id"], SOURCE))
        self.assertEqual(dec(r["amount"]), dec(o["total"]))

    def test_invoice_as_subordinate_document_2_10(self):
        self.start(orders_schema_version="2.10")
        o = self.order("П-6201")
        inv = str(uuid.uuid4())
        sub = "<ПодчиненныеДокументы>" + invoice_document(o, inv, "СЧ-0042", tag="ПодчиненныйДокумент") + \
              "</ПодчиненныеДокументы>"
        data = documents_file([order_document(o, requisite_pairs=[("Статус заказа", "Собран")], subordinates=sub)],
                              version="2.10")
        _, final = self.send_new(self.session("2.10"), "documents___inv.xml", data)
        self.assertEqual(final.status, "success", final.describe() + self.d.log_excerpt(6000))
        self.check_invoice(o, inv, "СЧ-0042")
        self.assertEqual(self.order_row(o["id"])["status"], "assembled")

    def test_invoice_in_a_container_3_1(self):
        self.start(orders_schema_version="3.1")
        o = self.order("П-6301")
        inv = str(uuid.uuid4())
        data = documents_file([[order_document(o, requisite_pairs=[("Статус заказа", "Собран")]),
                                invoice_document(o, inv, "СЧ-0043")]], version="3.1", container=True)
        _, final = self.send_new(self.session("3.1"), "documents___inv31.xml", data)
        self.assertEqual(final.status, "success", final.describe() + self.d.log_excerpt(6000))
        self.check_invoice(o, inv, "СЧ-0043")
        self.assertEqual(self.order_row(o["id"])["status"], "assembled")


# ------------------------------------------------------------------------------ 3. old protocol

class OldProtocol(SaleTestCase):

    def test_documents_imported_within_mode_file(self):
        self.start()
        o = self.order("П-7001")
        c = self.session(None)
        self.assertEqual(c.answers[-1].text.rstrip("\n").split("\n"), ["zip=no", "file_limit=65536"])
        self.expect_orders(self.query(c)[1], [o])
        self.assertTrue(c.success().ok)
        data = documents_file([order_document(o, requisite_pairs=STATUS_REQUISITES)])
        uploads, final = c.send_documents("orders-1.xml", data, new_protocol=False)
        self.assertEqual(len(uploads), 1)
        self.assertEqual(final.status, "success", final.describe() + self.d.log_excerpt(6000))
        self.assertGreaterEqual(len(final.lines), 2, f"old protocol: the file answer carries the counts: {final.text!r}")
        self.assertRegex(final.message, r"\d", f"counts expected after success: {final.text!r}")
        row = self.order_row(o["id"])
        self.assertEqual((row["status"], row["erp_number"], row["paid_utc"], row["shipped_utc"]),
                         ("completed", "ТДЦУ-000123", "2024-03-05T07:15:00", "2024-03-06T13:30:00"))
        self.assertEqual(self.history(o["id"])[-1], ("completed", SOURCE))


    def test_documents_split_into_pieces_imported_once_whole(self):
        # 1C splits every upload into pieces of file_limit bytes, old protocol included: the
        # import waits for the piece that completes the document.
        self.start(file_limit="1KiB")
        o = self.order("П-7002")
        c = self.session(None)
        self.expect_orders(self.query(c)[1], [o])
        self.assertTrue(c.success().ok)
        data = documents_file([order_document(o, requisite_pairs=STATUS_REQUISITES)])
        self.assertGreater(len(data), 1024)
        uploads, final = c.send_documents("orders-2.xml", data, new_protocol=False)
        self.assertEqual(len(uploads), -(-len(data) // 1024))
        for a in uploads[:-1]:
            self.assertEqual(a.text, "success\n", a.describe())
        self.assertEqual(final.status, "success", final.describe() + self.d.log_excerpt(6000))
        row = self.order_row(o["id"])
        self.assertEqual((row["status"], row["erp_number"]), ("completed", "ТДЦУ-000123"))
        self.assertEqual(self.history(o["id"])[-1], ("completed", SOURCE))


# ------------------------------------------------------------------------- 4. windows-1251

class Windows1251(SaleTestCase):
    CONFIG = {"encoding": "windows-1251"}

    def test_query_answer_in_windows_1251(self):
        self.start()
        cp = self.counterparty(name="ООО «Ёлочка»")
        o = self.order("П-8001", cp, comment="Позвонить до доставки — после 10:00")
        c = self.session()
        a, got = self.query(c, charset="windows-1251")
        self.expect_orders(got, [o])
        self.assertEqual(got[o["guid"]]["cp_name"], "ООО «Ёлочка»")
        self.assertEqual(got[o["guid"]]["comment"], o["comment"])
        self.assertIn("ООО «Ёлочка»".encode("cp1251"), a.raw, "the bytes are windows-1251")
        self.assertNotIn("Ёлочка".encode("utf-8"), a.raw)
        i = c.info()
        self.assertEqual(content_type_charset(i.headers.get("content-type")), "windows-1251")
        self.assertEqual(xml_declared_encoding(i.raw), "windows-1251")
        parse_xml(i.raw)

    def test_documents_file_in_windows_1251(self):
        self.start()
        o = self.order("П-8101")
        data = documents_file([order_document(o, requisite_pairs=STATUS_REQUISITES)], encoding="windows-1251")
        self.assertIn("Закрыт".encode("cp1251"), data)
        _, final = self.send_new(self.session(), "documents___1251.xml", data)
        self.assertEqual(final.status, "success", final.describe() + self.d.log_excerpt(6000))
        row = self.order_row(o["id"])
        self.assertEqual((row["status"], row["erp_number"]), ("completed", "ТДЦУ-000123"),
                         "Cyrillic status name and number decoded from windows-1251")


# ------------------------------------------------------------------------------- 5. 3.1 layout

class Layout31(SaleTestCase):

    def test_each_document_in_a_container(self):
        self.start(orders_schema_version="3.1")
        orders = [self.order("П-9001"), self.order("П-9002")]
        c = self.session("3.1")
        self.assertEqual(c.version_answered, "3.1")
        a, got = self.query(c)
        # No public XSD for CommerceML 3.x (xsd/SOURCES.md): structure is asserted instead.
        root = parse_xml(a.raw)
        self.assertEqual(root.get("ВерсияСхемы"), "3.1")
        self.assertEqual(children(root, "Документ"), [], "3.1: no Документ directly under the root")
        containers = children(root, "Контейнер")
        self.assertEqual(len(containers), 2, a.text)
        self.assertEqual(sorted(text_of(children(k, "Документ")[0], "Ид") for k in containers),
                         sorted(o["guid"] for o in orders))
        self.expect_orders(got, orders)


# ---------------------------------------------------------------------------------- 6. hostile

class Hostile(SaleTestCase):

    def unknown_order(self):
        cp = self.counterparty()
        ghost = {"guid": str(uuid.uuid4()), "number": "НЕТ-999", "total": "201.00", "counterparty": cp,
                 "lines": [{"offer": self.offers[0][1], "name": self.offers[0][2], "quantity": "2", "price": "100.50",
                            "amount": "201.00"}]}
        return ghost, documents_file([order_document(ghost, requisite_pairs=[("Статус заказа", "Закрыт")],
                                                     onec_cp_id=str(uuid.uuid4()))])

    def test_unknown_order_reported(self):
        self.start(unknown_orders="report")
        self.order("П-10001")
        ghost, data = self.unknown_order()
        before = self.dump()
        _, final = self.send_new(self.session(), "documents___ghost.xml", data)
        self.assertEqual(final.status, "success", final.describe())
        self.assertTrue(ghost["number"] in final.message or ghost["guid"] in final.message,
                        f"the remark should name the unknown order: {final.text!r}")
        after = self.dump()
        for t in ("orders", "order_items", "order_status_history", "documents"):
            self.assertEqual(after[t], before[t], f"portal.{t} written for an unknown order with unknown_orders: report")

    def test_unknown_order_created(self):
        self.start(unknown_orders="create")
        ghost, data = self.unknown_order()
        _, final = self.send_new(self.session(), "documents___ghost.xml", data)
        self.assertEqual(final.status, "success", final.describe() + self.d.log_excerpt(6000))
        rows = self.h.query_json(f"SELECT id, source, external_id, number, total, status, counterparty_id FROM portal.orders "
                                 f"WHERE number = {q(ghost['number'])}")
        self.assertEqual(len(rows), 1, final.describe())
        r = rows[0]
        self.assertEqual((r["source"], r["external_id"], r["status"]), (SOURCE, ghost["guid"], "completed"))
        self.assertEqual(dec(r["total"]), dec("201.00"))
        self.assertEqual(r["counterparty_id"], ghost["counterparty"]["id"], "matched by ИНН/КПП")
        items = self.h.psql(f"SELECT o.external_id, i.quantity FROM portal.order_items i "
                            f"LEFT JOIN portal.offers o ON o.id = i.offer_id WHERE i.order_id = {r['id']}")
        self.assertEqual([(a, dec(b)) for a, b in items], [(self.offers[0][1], dec("2"))])
        # An order 1C created is not the portal's to send back.
        self.assertEqual(self.query(self.session())[1], {})

    def test_malformed_documents_file_names_line_and_column(self):
        self.start()
        o = self.order("П-10101")
        good = documents_file([order_document(o, requisite_pairs=STATUS_REQUISITES)]).decode("utf-8")
        bad = good.replace("</Номер>", "</Номерр>", 1).encode("utf-8")
        line = bad[: bad.index("</Номерр>".encode())].count(b"\n") + 1
        before = self.dump()
        c = self.session()
        _, final = self.send_new(c, "documents___bad.xml", bad)
        self.assert_failure(final, "import of a malformed documents file")
        m = re.search(r"(?i)line\s*(\d+)\D{0,20}col(?:umn)?\s*(\d+)", final.message) or \
            re.search(r":(\d+):(\d+)", final.message)
        self.assertIsNotNone(m, f"failure should name line and column: {final.text!r}")
        self.assertEqual(int(m.group(1)), line, final.text)
        self.assertEqual(self.dump(), before, "portal changed by a malformed file")
        # Old protocol: the failure is the answer to mode=file.
        c = self.session(None)
        _, final = c.send_documents("orders-bad.xml", bad, new_protocol=False)
        self.assert_failure(final, "old-protocol upload of a malformed documents file")
        self.assertEqual(self.dump(), before)

    def test_requests_without_a_session(self):
        self.start()
        o = self.order("П-10201")
        c = self.client()
        c.user = c.password = None
        for mode in ("init", "query", "success", "info"):
            a = c.command(mode)
            self.assert_failure(a, f"{mode} without cookie or credentials")
        a = c.send("import", "GET", c.target("import", [("filename", "x.xml")]))
        self.assert_failure(a, "import without a session")
        a = c.send("file", "POST", c.target("file", [("filename", "x.xml")]),
                   body=documents_file([order_document(o, requisite_pairs=STATUS_REQUISITES)]))
        self.assert_failure(a, "file without a session")
        c.session.cookie_name, c.session.cookie_value = "obmen_session", "0" * 64
        for mode in ("query", "success"):
            self.assert_failure(c.command(mode), f"{mode} with a forged cookie")
        self.assertEqual(self.order_row(o["id"])["status"], "new")
        self.assertEqual(self.order_row(o["id"])["exported"], False)
        # The order is still there for a real session.
        self.expect_orders(self.query(self.session())[1], [o])

    def test_sale_request_with_a_catalog_session_cookie(self):
        self.start()
        o = self.order("П-10301")
        cat = OneCClient(self.d.url(), Harness.USER, Harness.PASSWORD)
        self.addCleanup(cat.close)
        self.assertEqual(cat.checkauth().status, "success")
        c = self.client()
        c.session = cat.session
        for mode in ("init", "query", "success"):
            self.assert_failure(c.command(mode), f"type=sale&mode={mode} with a catalog session")
        a = c.send("file", "POST", c.target("file", [("filename", "d.xml")]),
                   body=documents_file([order_document(o, requisite_pairs=STATUS_REQUISITES)]))
        self.assert_failure(a, "type=sale&mode=file with a catalog session")
        self.assertEqual(self.order_row(o["id"])["status"], "new")
        # And the other way round.
        s = self.session()
        cat.session = s.session
        self.assert_failure(cat.command("init"), "type=catalog&mode=init with a sale session")


# ------------------------------------------------------------------------------ 7. real samples

def sample_counts(data: bytes) -> tuple[dict, int]:
    """Orders (Номер → (Ид, Сумма, items)) and lines in a real 1C documents file, read with
    ElementTree: lines = Товар that are goods (not ORDER_DELIVERY, not a service)."""
    root = parse_xml(data)
    orders = {}
    for d in children(root, "Документ"):
        if text_of(d, "ХозОперация") != "Заказ товара":
            continue
        goods = [t for t in walk(d, ["Товары", "Товар"])
                 if text_of(t, "Ид") != "ORDER_DELIVERY"
                 and requisites(t).get("ТипНоменклатуры") != "Услуга"]
        orders[text_of(d, "Номер")] = (text_of(d, "Ид"), dec(text_of(d, "Сумма")), len(goods))
    return orders, sum(v[2] for v in orders.values())


class RealSamples(SaleTestCase):

    def test_carono_and_irpsv_orders_are_created(self):
        self.start(unknown_orders="create")
        files = [("to.xml", cml.sample_bytes(CARONO_TO)), ("orders.xml", cml.sample_bytes(IRPSV_ORDERS))]
        expected = {}
        for _, data in files:
            orders, _ = sample_counts(data)
            expected.update(orders)
        # Guard: 1 order with 1 goods line (to.xml), 3 orders with 1 goods line (orders.xml).
        self.assertEqual(len(expected), 4)
        self.assertEqual(sum(v[2] for v in expected.values()), 2)
        for name, data in files:
            _, final = self.send_new(self.session(), name, data)
            self.assertEqual(final.status, "success", f"{name}: {final.describe()}\n{self.d.log_excerpt(6000)}")
        rows = self.h.query_json("SELECT o.number, o.external_id, o.total, o.source, "
                                 "(SELECT count(*) FROM portal.order_items i WHERE i.order_id = o.id) AS items "
                                 "FROM portal.orders o ORDER BY o.number")
        self.assertEqual({r["number"]: (r["external_id"], dec(r["total"]) if r["total"] is not None else None, r["items"])
                          for r in rows},
                         {k: (v[0], v[1] if v[1] is not None else dec(0), v[2]) for k, v in expected.items()},
                         "orders created from the samples (Номер → Ид, Сумма, goods lines)")
        self.assertTrue(all(r["source"] == SOURCE for r in rows))
        self.assertEqual(self.h.scalar("SELECT erp_number FROM portal.orders WHERE number = '92'"), "MM92")
        before = self.dump()
        for name, data in files:
            _, final = self.send_new(self.session(), name, data)
            self.assertEqual(final.status, "success", final.describe())
        self.assertEqual(self.dump(), before, "the same sample files again create nothing")


if __name__ == "__main__":
    unittest.main()
