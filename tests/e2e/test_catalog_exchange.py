"""1C catalog exchange, black-box: the real obmend, a client that behaves like 1C, the portal
checked row by row against what the sample files say.

Sample: dobromyslov/commerceml-parser data/import0_1.xml + data/offers0_1.xml (UT 11 classic full
exchange, CommerceML 2.07, UTF-8 with BOM). Per SOURCES.md §3 and the XML itself: 1 group,
12 properties, 36 products (one with Статус="Удален" → inactive); 1 price type, 3 warehouses,
44 offers with ids equal to product ids — 36 match a product of import0_1.xml, 8 name products
that file does not carry (stored with product_id NULL and product_external_id kept) —, 44 prices,
132 per-warehouse stock figures (`Склад @ИдСклада @КоличествоНаСкладе`).
"""

from __future__ import annotations

import decimal
import io
import os
import re
import subprocess
import sys
import unittest
import uuid
import zipfile
from pathlib import Path

import cml
from harness import Harness
from onec_client import OneCClient, pack_zip

IMPORT = cml.DOBROMYSLOV + "/data__import0_1.xml"
OFFERS = cml.DOBROMYSLOV + "/data__offers0_1.xml"
SOURCE = "onec"
CATALOG_TABLES = ("categories", "attributes", "products", "images", "product_images", "offers",
                  "price_types", "prices", "warehouses", "stock")


def sample_files() -> list[tuple[str, bytes]]:
    return [("import0_1.xml", cml.sample_bytes(IMPORT)), ("offers0_1.xml", cml.sample_bytes(OFFERS))]


def dump_catalog(h: Harness) -> dict:
    """Every row of every catalog table, ids and timestamps included: an import that changes
    nothing must leave this identical (updated_at moves only on real change)."""
    return {t: h.query_json(f"SELECT * FROM portal.{t} ORDER BY 1, 2") for t in CATALOG_TABLES}


def counts_in(summary: str) -> list[tuple[int, str]]:
    """(number, word) pairs of an import summary: "products 0 new 0 updated 36 unchanged" →
    [(0, 'new'), (0, 'updated'), (36, 'unchanged')]. Accepts "new: 3" and "new=3" too."""
    pairs = [(int(n), w.lower()) for n, w in re.findall(r"(\d+)\s+([A-Za-z_]+)", summary)]
    pairs += [(int(n), w.lower()) for w, n in re.findall(r"([A-Za-z_]+)\s*[:=]\s*(\d+)", summary)]
    return pairs


CHANGE_WORDS = {"new", "inserted", "insert", "updated", "update", "changed", "deactivated", "created"}


def dec(v) -> decimal.Decimal | None:
    return None if v is None else decimal.Decimal(str(v)).normalize()


class ExchangeTestCase(unittest.TestCase):
    maxDiff = None

    def exchange(self, d, files, *, expect_ok=True, **kw):
        with OneCClient(d.url(), Harness.USER, Harness.PASSWORD) as c:
            r = c.exchange(files, **kw)
        if expect_ok:
            self.assertTrue(r.ok, f"exchange failed:\n{r.transcript()}\n{d.log_excerpt()}")
        return r

    def assert_failure(self, answer, d, *, what=""):
        self.assertEqual(answer.http_status, 200, f"{what}: protocol answers are HTTP 200: {answer.describe()}")
        self.assertEqual(answer.status, "failure", f"{what}: {answer.describe()}\n{d.log_excerpt(6000)}")
        self.assertTrue(answer.message.strip(), f"{what}: failure without a reason: {answer.describe()}")

    # ------------------------------------------------------------------------------- portal

    def assert_portal_matches(self, h, catalog: cml.Catalog, offers: cml.Offers):
        q = h.psql
        self.assertEqual(
            {r[0]: (r[1], r[2]) for r in q(f"SELECT external_id, name, active FROM portal.categories "
                                           f"WHERE source = '{SOURCE}'")},
            {k: (v, "t") for k, v in catalog.categories.items()}, "categories")
        self.assertEqual(
            {r[0]: r[1] for r in q(f"SELECT external_id, name FROM portal.attributes WHERE source = '{SOURCE}'")},
            catalog.attributes, "attributes (properties)")
        self.assertEqual(
            {r[0]: r[1:] for r in q(
                "SELECT p.external_id, p.sku, p.name, p.barcode, c.external_id, p.active "
                "FROM portal.products p LEFT JOIN portal.categories c ON c.id = p.category_id "
                f"WHERE p.source = '{SOURCE}'")},
            {k: (v["sku"], v["name"], v["barcode"], v["category"], "t" if v["active"] else "f")
             for k, v in catalog.products.items()},
            "products (external_id → sku, name, barcode, category, active)")
        self.assertEqual(
            {r[0]: (r[1], r[2]) for r in q(f"SELECT external_id, name, currency FROM portal.price_types "
                                           f"WHERE source = '{SOURCE}'")},
            offers.price_types, "price types")
        self.assertEqual(
            {r[0]: r[1] for r in q(f"SELECT external_id, name FROM portal.warehouses WHERE source = '{SOURCE}'")},
            offers.warehouses, "warehouses")
        rows = q("SELECT o.external_id, o.name, o.sku, o.product_external_id, p.external_id, o.quantity::text "
                 "FROM portal.offers o LEFT JOIN portal.products p ON p.id = o.product_id "
                 f"WHERE o.source = '{SOURCE}'")
        self.assertEqual(
            {r[0]: (r[1], r[2], r[3], r[4], dec(r[5])) for r in rows},
            {k: (v["name"], v["sku"], v["product"], v["product"] if v["product"] in catalog.products else None,
                 v["quantity"]) for k, v in offers.offers.items()},
            "offers (external_id → name, sku, product_external_id, linked product, quantity)")
        prices = q("SELECT o.external_id, t.external_id, p.value::text FROM portal.prices p "
                   "JOIN portal.offers o ON o.id = p.offer_id JOIN portal.price_types t ON t.id = p.price_type_id "
                   f"WHERE o.source = '{SOURCE}'")
        self.assertEqual(len(prices), len(offers.prices), "one price row per offer and price type")
        self.assertEqual({(a, b, dec(v)) for a, b, v in prices}, offers.prices, "prices")
        stock = q("SELECT o.external_id, w.external_id, s.quantity::text FROM portal.stock s "
                  "JOIN portal.offers o ON o.id = s.offer_id JOIN portal.warehouses w ON w.id = s.warehouse_id "
                  f"WHERE o.source = '{SOURCE}'")
        self.assertEqual(len(stock), len(offers.stock), "one stock row per offer and warehouse")
        self.assertEqual({(a, b, dec(v)) for a, b, v in stock}, offers.stock, "stock")


class FullExchange(ExchangeTestCase):
    """The classic UT 11 exchange of the sample pair, plain and zipped, then once more."""

    def setUp(self):
        self.h = Harness.for_test(self)
        self.h.create_database()
        self.catalog = cml.read_import(cml.sample_bytes(IMPORT))
        self.offers = cml.read_offers(cml.sample_bytes(OFFERS))

    def test_sample_counts_are_what_sources_md_says(self):
        # Guards the expectations below: if the sample changed, say so instead of a confusing diff.
        self.assertEqual((len(self.catalog.categories), len(self.catalog.attributes), len(self.catalog.products)),
                         (1, 12, 36))
        self.assertEqual((len(self.offers.price_types), len(self.offers.warehouses), len(self.offers.offers),
                          len(self.offers.prices), len(self.offers.stock)), (1, 3, 44, 44, 132))
        orphans = [k for k, v in self.offers.offers.items() if v["product"] not in self.catalog.products]
        self.assertEqual(len(orphans), 8)

    def run_full(self, *, zip_mode: bool, file_limit: str, limit_bytes: int):
        d = self.h.start_daemon(self.h.config(zip=zip_mode, file_limit=file_limit))
        files = sample_files()
        r = self.exchange(d, files, use_zip=None)
        c = r.client
        self.assertEqual((c.session.zip, c.session.file_limit), (zip_mode, limit_bytes))
        auth = r.of_step("checkauth")[0]
        self.assertEqual(auth.lines[1], c.session.cookie_name)
        self.assertTrue(c.session.cookie_value and c.session.sessid and c.session.timestamp, auth.describe())
        self.assertRegex(c.session.timestamp, r"^\d{10,}$")
        posts = r.of_step("file")
        self.assertTrue(all(a.ok for a in posts), r.transcript())
        self.assertTrue(all(a.sent <= limit_bytes for a in posts))
        if zip_mode:
            self.assertRegex(r.zip_name, r"^v8_[0-9A-F]{4}_1\.zip$")
            self.assertTrue(all("filename=" + r.zip_name in a.target for a in posts), r.transcript())
            self.assertGreaterEqual(len(posts), 2, "the archive should need several chunks")
        else:
            imp = [a for a in posts if "filename=import0_1.xml" in a.target]
            self.assertEqual(len(imp), -(-len(files[0][1]) // limit_bytes), r.transcript())
            self.assertGreaterEqual(len(imp), 2)
        self.assertEqual(list(r.imports), ["import0_1.xml", "offers0_1.xml"])
        for name, answer in r.imports.items():
            self.assertEqual(answer.status, "success", answer.describe())
        self.assertEqual(r.deactivate.status, "success")
        self.assertEqual(r.complete.status, "success")
        self.assert_portal_matches(self.h, self.catalog, self.offers)
        return d, r

    def assert_repeat_changes_nothing(self, d, zip_mode):
        before = dump_catalog(self.h)
        r = self.exchange(d, sample_files(), use_zip=None)
        for name, answer in r.imports.items():
            pairs = counts_in(answer.message)
            changed = [(n, w) for n, w in pairs if w in CHANGE_WORDS and n != 0]
            self.assertEqual(changed, [], f"repeated import of {name} reports changes: {answer.message!r}")
            self.assertTrue(any(w == "unchanged" and n > 0 for n, w in pairs),
                            f"summary of {name} does not say what stayed unchanged: {answer.message!r}")
        after = dump_catalog(self.h)
        for t in CATALOG_TABLES:
            self.assertEqual(after[t], before[t], f"portal.{t} changed by a repeated identical exchange")

    def test_plain_exchange_in_chunks_then_repeat_changes_nothing(self):
        d, r = self.run_full(zip_mode=False, file_limit="64KiB", limit_bytes=64 * 1024)
        first = r.imports["import0_1.xml"].message
        self.assertTrue(any(w in CHANGE_WORDS and n > 0 for n, w in counts_in(first)),
                        f"first import summary should count new rows: {first!r}")
        self.assert_repeat_changes_nothing(d, False)

    def test_zip_exchange_in_chunks_then_repeat_changes_nothing(self):
        # The archive of both files is ~10 KB: a 4 KiB file_limit makes it travel in pieces.
        d, r = self.run_full(zip_mode=True, file_limit="4KiB", limit_bytes=4 * 1024)
        self.assert_repeat_changes_nothing(d, True)

    def test_plain_then_zip_give_the_same_portal(self):
        d = self.h.start_daemon(self.h.config(zip=False, file_limit="64KiB"))
        self.exchange(d, sample_files())
        before = dump_catalog(self.h)
        d.config_path.write_text(d.config_path.read_text(encoding="utf-8").replace("zip: false", "zip: true"),
                                 encoding="utf-8")
        d.reload()
        r = self.exchange(d, sample_files())
        self.assertTrue(r.zip_name, r.transcript())
        self.assertEqual(dump_catalog(self.h), before)

    def test_onec_exchange_script(self):
        """scripts/onec-exchange, used by the README demo: exit 0 on success, 1 on failure."""
        d = self.h.start_daemon(self.h.config(zip=True, file_limit="4KiB"))
        script = str(Path(__file__).resolve().parents[2] / "scripts" / "onec-exchange")
        # Files named as in 1C's exchange folder (webdata/import0_1.xml, offers0_1.xml).
        paths = []
        for name, data in sample_files():
            path = self.h.dir / "webdata" / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            paths.append(str(path))
        argv = [sys.executable, script, "--url", d.url(), "--user", Harness.USER,
                "--password-env", "OBMEN_ONEC_PASSWORD", "--zip", *reversed(paths)]
        r = subprocess.run(argv, env=self.h.env(), capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + d.log_excerpt(6000))
        self.assertRegex(r.stdout, r"(?m)^file +POST .*filename=v8_[0-9A-F]{4}_1\.zip")
        self.assertRegex(r.stdout, r"(?m)^import +GET .*filename=offers0_1\.xml")
        self.assert_portal_matches(self.h, self.catalog, self.offers)
        env = dict(self.h.env(), OBMEN_ONEC_PASSWORD="wrong")
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("failure", r.stdout)

    def test_full_package_without_a_product_deactivates_it(self):
        d = self.h.start_daemon(self.h.config(zip=False))
        self.exchange(d, sample_files())
        text = cml.sample_bytes(IMPORT).decode("utf-8-sig")
        head, blocks, tail = cml.split_products(text)
        gone = cml.product_id(blocks[0])
        self.exchange(d, [("import0_1.xml", (head + "".join(blocks[1:]) + tail).encode("utf-8"))])
        self.assertEqual(self.h.psql(f"SELECT active FROM portal.products WHERE source = '{SOURCE}' "
                                     f"AND external_id = '{gone}'"), [("f",)])
        self.assertEqual(self.h.count(f"SELECT count(*) FROM portal.products WHERE external_id = '{gone}'"), 1,
                         "nothing is hard-deleted by an import")
        self.assertEqual(self.h.count(f"SELECT count(*) FROM portal.products WHERE source = '{SOURCE}' AND active"),
                         len([p for p in self.catalog.products.values() if p["active"]]) - 1)


class Images(ExchangeTestCase):
    """import_files/… pictures: stored once per content, linked in order."""

    def setUp(self):
        self.h = Harness.for_test(self)
        self.h.create_database()

    def fixture(self):
        text = cml.sample_bytes(IMPORT).decode("utf-8-sig")
        head, blocks, tail = cml.split_products(text)
        shared, own = "import_files/5e/5edfbda4-shared.jpg", "import_files/bd/bd8c4e15-own.jpg"
        a, b, c = blocks[0], blocks[1], blocks[2]
        xml = head + cml.with_images(a, [shared]) + cml.with_images(b, [shared]) + \
            cml.with_images(c, [own, shared]) + tail
        images = {shared: cml.fake_jpeg("shared"), own: cml.fake_jpeg("own", 5000)}
        ids = [cml.product_id(x) for x in (a, b, c)]
        return xml.encode("utf-8"), images, ids

    def check(self, zip_mode: bool):
        d = self.h.start_daemon(self.h.config(zip=zip_mode, file_limit="4KiB"))
        xml, images, (a, b, c) = self.fixture()
        files = [("import0_1.xml", xml)] + list(images.items())
        r = self.exchange(d, files)
        if not zip_mode:
            self.assertTrue([x for x in r.of_step("file") if "import_files/" in x.target], r.transcript())
        shared = cml.sha256_hex(images["import_files/5e/5edfbda4-shared.jpg"])
        own = cml.sha256_hex(images["import_files/bd/bd8c4e15-own.jpg"])
        rows = self.h.psql("SELECT sha256, size, mime, length(content) FROM portal.images ORDER BY sha256")
        self.assertEqual(sorted(rows), sorted([
            (shared, str(len(images["import_files/5e/5edfbda4-shared.jpg"]))) + ("image/jpeg",) +
            (str(len(images["import_files/5e/5edfbda4-shared.jpg"])),),
            (own, str(len(images["import_files/bd/bd8c4e15-own.jpg"]))) + ("image/jpeg",) +
            (str(len(images["import_files/bd/bd8c4e15-own.jpg"])),),
        ]), "each distinct image stored once")
        # The stored bytes are the uploaded bytes.
        self.assertEqual(self.h.scalar(f"SELECT encode(sha256(content), 'hex') FROM portal.images "
                                       f"WHERE sha256 = '{shared}'"), shared)
        links = self.h.psql("SELECT p.external_id, pi.position, pi.sha256 FROM portal.product_images pi "
                            "JOIN portal.products p ON p.id = pi.product_id ORDER BY 1, 2")
        self.assertEqual(sorted(links), sorted([(a, "1", shared), (b, "1", shared), (c, "1", own), (c, "2", shared)]))
        # Again: nothing new.
        before = dump_catalog(self.h)
        self.exchange(d, files)
        self.assertEqual(dump_catalog(self.h), before)

    def test_shared_image_stored_once_plain(self):
        self.check(zip_mode=False)

    def test_shared_image_stored_once_zip(self):
        self.check(zip_mode=True)


class HostileInputs(ExchangeTestCase):
    """Each hostile request gets `failure\\n<reason>` and leaves the portal exactly as it was.

    One daemon and one baseline exchange for the whole class; every payload that could reach the
    portal carries *changed* product names, so any partial acceptance shows in the dump."""

    MAX_FILE = 1024 * 1024

    @classmethod
    def setUpClass(cls):
        cls.h = Harness.for_class(cls)
        cls.h.create_database()
        cls.d = cls.h.start_daemon(cls.h.config(zip=True, file_limit="64KiB", max_file_size="1MiB"))
        with OneCClient(cls.d.url(), Harness.USER, Harness.PASSWORD) as c:
            r = c.exchange(sample_files(), use_zip=False)
        if not r.ok:
            raise AssertionError(f"baseline exchange failed:\n{r.transcript()}\n{cls.d.log_excerpt()}")
        cls.baseline = dump_catalog(cls.h)
        text = cml.sample_bytes(IMPORT).decode("utf-8-sig")
        cls.changed_import = text.replace("Портативный коврик", "ИЗМЕНЁННЫЙ коврик").encode("utf-8")
        assert cls.changed_import != text.encode("utf-8")

    def assert_portal_unchanged(self):
        after = dump_catalog(self.h)
        for t in CATALOG_TABLES:
            self.assertEqual(after[t], self.baseline[t], f"portal.{t} changed\n{self.d.log_excerpt(6000)}")

    def assert_no_file_named(self, token: str):
        found = [os.path.join(root, f) for root, _, files in os.walk(self.h.dir) for f in files if token in f]
        found += [os.path.join("/tmp", f) for f in os.listdir("/tmp") if token in f]
        self.assertEqual(found, [], "a hostile file name escaped the spool")

    def session(self) -> OneCClient:
        c = OneCClient(self.d.url(), Harness.USER, Harness.PASSWORD)
        self.addCleanup(c.close)
        self.assertEqual(c.checkauth().status, "success", c.answers[-1].describe())
        self.assertEqual(c.init().http_status, 200)
        return c

    def spool_bytes(self) -> int:
        return sum(os.path.getsize(os.path.join(root, f))
                   for root, _, files in os.walk(self.h.dir / "spool") for f in files
                   if not os.path.islink(os.path.join(root, f)))

    # -- file names

    def test_parent_directory_filename(self):
        c = self.session()
        for name in ("../../etc/passwd", "../../obmen-escape-parent.xml", "import_files/../../../x.xml"):
            with self.subTest(name=name):
                a = c.upload(name, b"root:x:0:0:root:/root:/bin/bash\n")[0]
                self.assert_failure(a, self.d, what=name)
        self.assertFalse((self.h.dir / "etc").exists())
        self.assert_no_file_named("obmen-escape-parent")
        self.assert_portal_unchanged()

    def test_absolute_filename(self):
        c = self.session()
        token = "obmen-escape-abs-" + uuid.uuid4().hex[:8]
        target = str(self.h.dir / (token + ".xml"))
        a = c.upload(target, self.changed_import[:1000])[0]
        self.assert_failure(a, self.d, what="absolute file name")
        self.assertFalse(os.path.exists(target))
        self.assert_no_file_named(token)
        self.assert_portal_unchanged()

    def test_backslash_filename(self):
        c = self.session()
        token = "obmen-escape-bs-" + uuid.uuid4().hex[:8]
        a = c.upload("..\\..\\" + token + ".xml", b"<x/>")[0]
        self.assert_failure(a, self.d, what="backslash file name")
        self.assert_no_file_named(token)
        self.assert_portal_unchanged()

    # -- archives

    def test_zip_with_parent_directory_entry(self):
        token = "obmen-escape-zip-" + uuid.uuid4().hex[:8]
        archive = pack_zip([("import0_1.xml", self.changed_import),
                            (f"../../{token}.xml", b"<evil/>"),
                            ("offers0_1.xml", cml.sample_bytes(OFFERS))])
        c = self.session()
        uploads = c.upload("v8_0BAD_1.zip", archive)
        if uploads[-1].ok:
            # 1C then imports the names inside the archive.
            final = c.import_file("import0_1.xml")[-1]
        else:
            final = uploads[-1]     # refusing the archive on upload is fine too
        self.assert_failure(final, self.d, what="import from a zip with a ../ entry")
        self.assert_no_file_named(token)
        self.assert_portal_unchanged()

    def test_zip_bomb(self):
        # 300 MiB of whitespace inside an otherwise valid, *changed* import0_1.xml: a server that
        # unpacked it would import changed names; one that checks the ratio refuses the archive.
        text = self.changed_import.decode("utf-8")
        cut = text.index(">", text.index("<КоммерческаяИнформация")) + 1
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
            with z.open("import0_1.xml", "w") as f:
                f.write(text[:cut].encode("utf-8"))
                spaces = b" " * (1 << 20)
                for _ in range(300):
                    f.write(spaces)
                f.write(text[cut:].encode("utf-8"))
        archive = buf.getvalue()
        self.assertLess(len(archive), self.MAX_FILE, "the bomb must pass the upload limit to test unzipping")
        c = self.session()
        uploads = c.upload("v8_B0B0_1.zip", archive)
        final = c.import_file("import0_1.xml")[-1] if uploads[-1].ok else uploads[-1]
        self.assert_failure(final, self.d, what="import of a zip bomb")
        self.assertLess(self.spool_bytes(), 64 << 20, "the bomb was unpacked into the spool")
        self.assert_portal_unchanged()

    # -- sizes

    def test_upload_beyond_max_file_size(self):
        c = self.session()
        data = (self.changed_import * 8)[: self.MAX_FILE + 128 * 1024]
        answers = c.upload("import0_1.xml", data)
        last = answers[-1]
        self.assert_failure(last, self.d, what="chunk beyond max_file_size")
        self.assertTrue(all(a.ok for a in answers[:-1]), [a.describe() for a in answers])
        self.assertGreaterEqual(sum(a.sent for a in answers), self.MAX_FILE,
                                "refused before the limit was reached")
        # And the file is not importable in a half state.
        final = c.import_file("import0_1.xml")[-1]
        self.assertNotEqual(final.status, "success", final.describe())
        self.assert_portal_unchanged()

    def test_single_request_larger_than_file_limit(self):
        c = self.session()
        a = c.upload("import0_1.xml", self.changed_import[: 64 * 1024 + 1], chunk_size=10 ** 9)[0]
        self.assert_failure(a, self.d, what="body larger than file_limit")
        self.assert_portal_unchanged()

    def test_far_too_large_body_still_gets_an_answer(self):
        # A 1C whose file_limit setting is stale sends big bodies. The server refuses from the
        # headers; it must still let the client read "failure\n…" (drain or half-close before
        # closing) instead of resetting the connection under it.
        c = self.session()
        a = c.upload("import0_1.xml", (self.changed_import * 16)[: 2 << 20], chunk_size=10 ** 9)[0]
        self.assert_failure(a, self.d, what="2 MiB body with file_limit=64KiB")
        self.assertIn("file_limit", a.message)
        self.assert_portal_unchanged()

    # -- broken XML

    def test_truncated_import_reports_line_and_column(self):
        data = self.changed_import[: len(self.changed_import) // 2]
        with OneCClient(self.d.url(), Harness.USER, Harness.PASSWORD) as c:
            r = c.exchange([("import0_1.xml", data)], use_zip=False)
        self.assertFalse(r.ok, r.transcript())
        failed = r.failed
        self.assertEqual(failed.step, "import", r.transcript())
        self.assert_failure(failed, self.d, what="import of a truncated file")
        msg = failed.message
        m = re.search(r"(?i)line\s*(\d+)\D{0,20}col(?:umn)?\s*(\d+)", msg) or re.search(r":(\d+):(\d+)", msg)
        self.assertIsNotNone(m, f"failure should name line and column: {msg!r}")
        lines = data.count(b"\n") + 1
        self.assertTrue(lines - 2 <= int(m.group(1)) <= lines + 1,
                        f"the file ends on line {lines}, the failure says line {m.group(1)}: {msg!r}")
        self.assert_portal_unchanged()

    # -- authentication and session

    def test_wrong_password(self):
        c = OneCClient(self.d.url(), Harness.USER, "not-the-password")
        self.addCleanup(c.close)
        a = c.checkauth()
        self.assert_failure(a, self.d, what="checkauth with a wrong password")
        self.assertNotIn("set-cookie", a.headers, "no session for a wrong password")
        a = c.send("checkauth", "GET", c.target("checkauth"), basic_auth=True,
                   auth_user="nobody", auth_password=Harness.PASSWORD)
        self.assert_failure(a, self.d, what="checkauth with an unknown user")
        # 1C would stop here; a client that goes on gets nowhere.
        r = c.exchange(sample_files())
        self.assertEqual(r.failed.step, "checkauth")
        self.assert_portal_unchanged()

    def test_failed_logins_are_rate_limited(self):
        # Ten wrong passwords for one user from one address within a minute; the eleventh
        # attempt is refused without a password check, even with the right password. Another
        # user name (the real one, used by the other tests) is not affected.
        c = OneCClient(self.d.url(), "intruder", "guess")
        self.addCleanup(c.close)
        for i in range(10):
            a = c.checkauth()
            self.assert_failure(a, self.d, what=f"wrong password #{i + 1}")
            self.assertIn("wrong user name or password", a.text)
        a = c.checkauth()
        self.assert_failure(a, self.d, what="the eleventh attempt")
        self.assertRegex(a.text, r"too many failed logins for user 'intruder' from 127\.0\.0\.1; try again in \d+ s")
        ok = OneCClient(self.d.url(), Harness.USER, Harness.PASSWORD)
        self.addCleanup(ok.close)
        self.assertEqual(ok.checkauth().status, "success")
        self.assert_portal_unchanged()

    def test_requests_without_a_session(self):
        c = OneCClient(self.d.url(), None, None)
        self.addCleanup(c.close)
        a = c.command("init")
        self.assert_failure(a, self.d, what="init without cookie or auth")
        a = c.send("file", "POST", c.target("file", [("filename", "import0_1.xml")]), body=self.changed_import[:5000])
        self.assert_failure(a, self.d, what="file without cookie or auth")
        a = c.send("import", "GET", c.target("import", [("filename", "import0_1.xml")]))
        self.assert_failure(a, self.d, what="import without cookie or auth")
        for mode in ("deactivate", "complete"):
            self.assert_failure(c.command(mode), self.d, what=f"{mode} without cookie or auth")
        # A forged cookie is no session either.
        c.session.cookie_name, c.session.cookie_value = "obmen_session", "0" * 64
        self.assert_failure(c.command("init"), self.d, what="init with a forged cookie")
        self.assert_failure(c.send("file", "POST", c.target("file", [("filename", "import0_1.xml")]),
                                   body=b"<x/>"), self.d, what="file with a forged cookie")
        self.assert_portal_unchanged()

    # -- unknown commands

    def test_unknown_type_and_mode(self):
        c = self.session()
        a = c.send("checkauth", "GET", c.target("checkauth", exchange_type="nonsense", with_sessid=False),
                   basic_auth=True)
        self.assertEqual(a.http_status, 200, a.describe())
        self.assertEqual(a.lines, ["failure", "Unknown command type."], a.describe())
        a = c.send("init", "GET", c.target("init", exchange_type="nonsense"))
        self.assertEqual(a.lines, ["failure", "Unknown command type."], a.describe())
        a = c.command("frobnicate")
        self.assert_failure(a, self.d, what="unknown mode")
        a = c.send("none", "GET", c.target(None))
        self.assert_failure(a, self.d, what="no mode")
        # The session still works after those.
        self.assertEqual(c.command("complete").status, "success", c.answers[-1].describe())
        self.assert_portal_unchanged()


if __name__ == "__main__":
    unittest.main()


class BehindAProxy(ExchangeTestCase):
    """http.trusted_proxies: the failed-login limit counts the client nginx names in
    X-Forwarded-For, not nginx itself; a client talking to obmend directly cannot pick an address
    by sending the header."""

    def setUp(self):
        self.h = Harness.for_test(self)
        self.h.create_database()

    def failed_logins(self, d, xff: str, n: int):
        c = OneCClient(d.url(), "intruder", "guess")
        self.addCleanup(c.close)
        answers = []
        for _ in range(n):
            answers.append(c.send("checkauth", "GET", c.target("checkauth", with_sessid=False), basic_auth=True,
                                  cookie=False, extra_headers={"X-Forwarded-For": xff}))
        return answers

    def test_the_limit_follows_the_forwarded_client(self):
        d = self.h.start_daemon(self.h.config({"http": {"trusted_proxies": ["127.0.0.1"]}}))
        answers = self.failed_logins(d, "198.51.100.7, 203.0.113.5", 11)
        self.assertRegex(answers[-1].text, r"too many failed logins for user 'intruder' from 203\.0\.113\.5; ")
        # Another client behind the same proxy is not locked out by the first one's failures.
        other = self.failed_logins(d, "203.0.113.6", 1)[0]
        self.assertIn("wrong user name or password", other.text)
        self.assertIn("203.0.113.5", d.log())

    def test_an_untrusted_peer_cannot_choose_its_address(self):
        d = self.h.start_daemon(self.h.config())
        answers = [self.failed_logins(d, f"203.0.113.{i}", 1)[0] for i in range(11)]
        self.assertRegex(answers[-1].text, r"too many failed logins for user 'intruder' from 127\.0\.0\.1; ")
