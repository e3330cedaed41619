"""A big CommerceML 2.07 catalog, generated (standard library only): import.xml with nested groups,
2 properties and N products, offers.xml with 2 price types, 2 warehouses and one offer per product.
``variant`` makes a second package of the same products with other names and prices, so the
portal tells which package was applied last. Deterministic: same N and variant → same bytes.
(bench/generate_catalog.cpp makes bigger, richer ones; this one needs no build.)"""

from __future__ import annotations

import uuid

NS = 'xmlns="urn:1C.ru:commerceml_2" xmlns:xs="http://www.w3.org/2001/XMLSchema" ' \
     'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ВерсияСхемы="2.07" ДатаФормирования="2026-12-01T10:00:00"'
CATALOG = "0b000000-0000-4000-8000-000000000001"
PRICE_TYPES = [("0b000000-0000-4000-8000-0000000000a1", "Розничная"), ("0b000000-0000-4000-8000-0000000000a2", "Оптовая")]
WAREHOUSES = [("0b000000-0000-4000-8000-0000000000b1", "Основной склад"), ("0b000000-0000-4000-8000-0000000000b2", "Склад №2")]
PROPS = [("0b000000-0000-4000-8000-0000000000c1", "Бренд"), ("0b000000-0000-4000-8000-0000000000c2", "Цвет")]
TOP_GROUPS, SUB_GROUPS = 10, 10


def uid(kind: int, i: int) -> str:
    return str(uuid.UUID(int=(kind << 96) | (0x4000 << 64) | (0x8000 << 48) | i))


def group_id(top: int, sub: int | None = None) -> str:
    return uid(0x0c, top * 1000 + (sub + 1 if sub is not None else 0))


def product_name(i: int, variant: str) -> str:
    return f"Товар №{i} «нагрузка»" + (f" ({variant})" if variant else "")


def price(i: int, k: int, variant: str) -> str:
    base = 100 + (i % 997) + k * 10
    if variant:
        base *= 2
    return f"{base}.50"


def quantity(i: int, w: int, variant: str) -> int:
    return (i * 7 + w * 3 + (5 if variant else 0)) % 50


def import_xml(n: int, variant: str = "") -> bytes:
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<КоммерческаяИнформация {NS}>\n<Классификатор>'
           f"<Ид>{CATALOG}</Ид><Наименование>Классификатор (нагрузка)</Наименование><Группы>"]
    for t in range(TOP_GROUPS):
        out.append(f"<Группа><Ид>{group_id(t)}</Ид><Наименование>Раздел {t}</Наименование><Группы>")
        for s in range(SUB_GROUPS):
            out.append(f"<Группа><Ид>{group_id(t, s)}</Ид><Наименование>Подраздел {t}.{s}</Наименование></Группа>")
        out.append("</Группы></Группа>")
    out.append("</Группы><Свойства>")
    for pid, name in PROPS:
        out.append(f"<Свойство><Ид>{pid}</Ид><Наименование>{name}</Наименование><ТипЗначений>Строка</ТипЗначений></Свойство>")
    out.append(f'</Свойства></Классификатор>\n<Каталог СодержитТолькоИзменения="false"><Ид>{CATALOG}</Ид>'
               f"<ИдКлассификатора>{CATALOG}</ИдКлассификатора><Наименование>Каталог (нагрузка)</Наименование><Товары>\n")
    for i in range(n):
        g = group_id(i % TOP_GROUPS, (i // TOP_GROUPS) % SUB_GROUPS)
        out.append(f"<Товар><Ид>{uid(0x0d, i)}</Ид><Артикул>LD-{i:07d}</Артикул><Наименование>{product_name(i, variant)}"
                   f'</Наименование><БазоваяЕдиница Код="796" НаименованиеПолное="Штука">шт</БазоваяЕдиница>'
                   f"<Группы><Ид>{g}</Ид></Группы><Описание>Описание товара {i}</Описание><ЗначенияСвойств>"
                   f"<ЗначенияСвойства><Ид>{PROPS[0][0]}</Ид><Значение>Бренд {i % 37}</Значение></ЗначенияСвойства>"
                   f"<ЗначенияСвойства><Ид>{PROPS[1][0]}</Ид><Значение>Цвет {i % 11}</Значение></ЗначенияСвойства>"
                   f"</ЗначенияСвойств></Товар>\n")
    out.append("</Товары></Каталог>\n</КоммерческаяИнформация>\n")
    return "".join(out).encode("utf-8")


def offers_xml(n: int, variant: str = "") -> bytes:
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<КоммерческаяИнформация {NS}>\n'
           f'<ПакетПредложений СодержитТолькоИзменения="false"><Ид>{CATALOG}#</Ид>'
           f"<Наименование>Пакет предложений (нагрузка)</Наименование><ИдКаталога>{CATALOG}</ИдКаталога>"
           f"<ИдКлассификатора>{CATALOG}</ИдКлассификатора><ТипыЦен>"]
    for pid, name in PRICE_TYPES:
        out.append(f"<ТипЦены><Ид>{pid}</Ид><Наименование>{name}</Наименование><Валюта>RUB</Валюта></ТипЦены>")
    out.append("</ТипыЦен><Склады>")
    for wid, name in WAREHOUSES:
        out.append(f"<Склад><Ид>{wid}</Ид><Наименование>{name}</Наименование></Склад>")
    out.append("</Склады><Предложения>\n")
    for i in range(n):
        prices = "".join(f"<Цена><Представление>{price(i, k, variant)} RUB за шт</Представление><ИдТипаЦены>{pid}</ИдТипаЦены>"
                         f"<ЦенаЗаЕдиницу>{price(i, k, variant)}</ЦенаЗаЕдиницу><Валюта>RUB</Валюта><Единица>шт</Единица>"
                         f"<Коэффициент>1</Коэффициент></Цена>" for k, (pid, _) in enumerate(PRICE_TYPES))
        stock = "".join(f'<Склад ИдСклада="{wid}" КоличествоНаСкладе="{quantity(i, w, variant)}"/>'
                        for w, (wid, _) in enumerate(WAREHOUSES))
        total = sum(quantity(i, w, variant) for w in range(len(WAREHOUSES)))
        out.append(f"<Предложение><Ид>{uid(0x0d, i)}</Ид><Артикул>LD-{i:07d}</Артикул>"
                   f"<Наименование>{product_name(i, variant)}</Наименование>"
                   f'<БазоваяЕдиница Код="796" НаименованиеПолное="Штука">шт</БазоваяЕдиница>'
                   f"<Цены>{prices}</Цены><Количество>{total}</Количество>{stock}</Предложение>\n")
    out.append("</Предложения></ПакетПредложений>\n</КоммерческаяИнформация>\n")
    return "".join(out).encode("utf-8")


def package(n: int, variant: str = "") -> list[tuple[str, bytes]]:
    """The files as 1C names them in an exchange."""
    return [("import0_1.xml", import_xml(n, variant)), ("offers0_1.xml", offers_xml(n, variant))]
