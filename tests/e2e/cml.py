"""What a CommerceML file says, read independently of obmen (ElementTree, local names), so tests
can compare the portal row by row with the sample; plus fixture builders derived from samples."""

from __future__ import annotations

import decimal
import hashlib
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from harness import samples_dir

DOBROMYSLOV = "dobromyslov__commerceml-parser"


def sample(name: str) -> Path:
    return samples_dir() / name


def sample_bytes(name: str) -> bytes:
    return sample(name).read_bytes()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el, name):
    return [c for c in el if _local(c.tag) == name]


def _child(el, name):
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _text(el, name):
    c = _child(el, name) if el is not None else None
    if c is None or c.text is None:
        return None
    return c.text.strip()


def _walk(el, path: list[str]):
    """Elements at a path of local names below el."""
    cur = [el]
    for name in path:
        cur = [c for e in cur for c in _children(e, name)]
    return cur


def dec(s: str | None) -> decimal.Decimal | None:
    """Decimal of a 1C number ("1 234,50" → 1234.50), normalised so 100 == 100.0000."""
    if s is None:
        return None
    s = s.replace("\u00a0", "").replace(" ", "").replace(",", ".")
    return decimal.Decimal(s).normalize()


@dataclass
class Catalog:
    categories: dict = field(default_factory=dict)    # id → name
    attributes: dict = field(default_factory=dict)    # id → name
    products: dict = field(default_factory=dict)      # id → {sku, name, barcode, category, images}
    full_catalog: bool | None = None


@dataclass
class Offers:
    price_types: dict = field(default_factory=dict)   # id → (name, currency)
    warehouses: dict = field(default_factory=dict)    # id → name
    offers: dict = field(default_factory=dict)        # id → {name, sku, product}
    prices: set = field(default_factory=set)          # (offer id, price type id, value)
    stock: set = field(default_factory=set)           # (offer id, warehouse id, quantity)


def read_import(data: bytes) -> Catalog:
    root = ET.fromstring(data)
    cat = Catalog()
    for clf in _children(root, "Классификатор"):
        def groups(el):
            for g in _children(el, "Группа"):
                cat.categories[_text(g, "Ид")] = _text(g, "Наименование")
                for sub in _children(g, "Группы"):
                    groups(sub)
        for gs in _children(clf, "Группы"):
            groups(gs)
        for p in _walk(clf, ["Свойства", "Свойство"]):
            cat.attributes[_text(p, "Ид")] = _text(p, "Наименование")
    for catalog in _children(root, "Каталог"):
        cat.full_catalog = catalog.get("СодержитТолькоИзменения") == "false"
        for t in _walk(catalog, ["Товары", "Товар"]):
            groups = _walk(t, ["Группы", "Ид"])
            cat.products[_text(t, "Ид")] = {
                "sku": _text(t, "Артикул"),
                "name": _text(t, "Наименование"),
                "barcode": _text(t, "Штрихкод"),
                "category": groups[0].text.strip() if groups else None,
                "images": [c.text.strip() for c in _children(t, "Картинка") if c.text and c.text.strip()],
                "active": t.get("Статус") != "Удален" and _text(t, "ПометкаУдаления") != "true",
            }
    return cat


def read_offers(data: bytes) -> Offers:
    root = ET.fromstring(data)
    out = Offers()
    for pkg in _children(root, "ПакетПредложений"):
        for pt in _walk(pkg, ["ТипыЦен", "ТипЦены"]):
            out.price_types[_text(pt, "Ид")] = (_text(pt, "Наименование"), _text(pt, "Валюта"))
        for w in _walk(pkg, ["Склады", "Склад"]):
            out.warehouses[_text(w, "Ид")] = _text(w, "Наименование")
        for o in _walk(pkg, ["Предложения", "Предложение"]):
            oid = _text(o, "Ид")
            out.offers[oid] = {"name": _text(o, "Наименование"), "sku": _text(o, "Артикул"),
                               "product": oid.split("#", 1)[0],
                               "quantity": dec(_text(o, "Количество"))}
            for p in _walk(o, ["Цены", "Цена"]):
                out.prices.add((oid, _text(p, "ИдТипаЦены"), dec(_text(p, "ЦенаЗаЕдиницу"))))
            for s in _children(o, "Склад"):
                if s.get("ИдСклада") is not None:
                    out.stock.add((oid, s.get("ИдСклада"), dec(s.get("КоличествоНаСкладе"))))
    return out


# ------------------------------------------------------------------------------------- fixtures

PRODUCT_RE = re.compile(r"(?s)(\s*<Товар(?:\s[^>]*)?>.*?</Товар>)")


def split_products(text: str) -> tuple[str, list[str], str]:
    """(head up to <Товары>, product blocks, tail from </Товары>) of an import.xml text."""
    start = text.index("<Товары>") + len("<Товары>")
    end = text.index("</Товары>")
    blocks = PRODUCT_RE.findall(text[start:end])
    return text[:start], blocks, text[end:]


def product_id(block: str) -> str:
    return re.search(r"<Ид>([^<]+)</Ид>", block).group(1).strip()


def with_images(block: str, images: list[str]) -> str:
    """Adds <Картинка> elements after <Описание> (where UT 11 writes them), else before </Товар>."""
    pictures = "".join(f"\n\t\t\t\t<Картинка>{name}</Картинка>" for name in images)
    m = re.search(r"<Описание\s*/>|<Описание>.*?</Описание>", block, flags=re.S)
    if m:
        return block[:m.end()] + pictures + block[m.end():]
    idx = block.rindex("</Товар>")
    return block[:idx] + pictures.lstrip("\n") + "\n\t\t\t" + block[idx:]


def fake_jpeg(seed: str, size: int = 3000) -> bytes:
    """Bytes that start and end like a JPEG (SOI/APP0 … EOI); content derived from seed."""
    body = b""
    counter = 0
    while len(body) < size:
        body += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + body[:size] + b"\xff\xd9")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
