// Document reader tests: every sample with documents or counterparties against the counts of
// samples/SOURCES.md §3 (documents, counterparties, document requisites by name), specific
// values from each, and malformed input with exact messages and positions.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "commerceml/document_reader.hpp"
#include "commerceml/encoding.hpp"

namespace fs = std::filesystem;
using namespace obmen;
using namespace obmen::commerceml;

namespace {

fs::path sample_path(std::string_view name) {
  const char* dir = std::getenv("OBMEN_REFERENCE_DIR");
  REQUIRE_MESSAGE(dir != nullptr, "OBMEN_REFERENCE_DIR is not set");
  return fs::path(dir) / "commerceml" / "samples" / name;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

using counts = std::map<std::string, int>;

struct expected_file {
  const char* name;
  const char* version;
  const char* encoding;
  std::size_t documents, counterparties;  // counterparties: in documents and at root level
  counts requisites;                       // document requisite names → documents carrying them
};

// samples/SOURCES.md §3 and stats.jsonl ("docs", "cparties", "document_requisites").
const std::vector<expected_file>& expected_files() {
  static const std::vector<expected_file> files = {
      {"carono__yii2-1c-exchange/files__xml__from.xml", "2.03", "windows-1251", 1, 1,
       {{"Метод оплаты", 1}, {"Заказ оплачен", 1}, {"Доставка разрешена", 1}, {"Отменен", 1},
        {"Финальный статус", 1}, {"Статус заказа", 1}, {"Дата изменения статуса", 1}}},
      {"carono__yii2-1c-exchange/files__xml__to.xml", "2.03", "windows-1251", 1, 1,
       {{"Дата оплаты", 1}, {"Номер платежного документа", 1}, {"Метод оплаты", 1}, {"Дата разрешения доставки", 1},
        {"Заказ оплачен", 1}, {"Доставка разрешена", 1}, {"Отменен", 1}, {"Финальный статус", 1},
        {"Статус заказа", 1}, {"Дата изменения статуса", 1}}},
      {"dobromyslov__commerceml-parser/data__bitrix-query-response-empty.xml", "2.05", "windows-1251", 0, 0, {}},
      {"dobromyslov__commerceml-parser/data__bitrix-query-response-full.xml", "2.05", "windows-1251", 2, 2,
       {{"Способ доставки", 2}, {"Метод доставки ИД", 2}, {"Метод оплаты", 2}, {"Метод оплаты ИД", 2},
        {"Заказ оплачен", 2}, {"Доставка разрешена", 2}, {"Отменен", 2}, {"Финальный статус", 2},
        {"Статус заказа", 2}, {"Статуса заказа ИД", 2}, {"Дата изменения статуса", 2},
        {"Комментарии покупателя", 1}, {"Сайт", 2}}},
      {"irpsv__commerceml/tests__assets__off-doc-1c__orders.xml", "2.03", "utf-8", 3, 1,
       {{"Метод оплаты", 1}, {"Заказ оплачен", 1}, {"Доставка разрешена", 1}, {"Отменен", 1},
        {"Финальный статус", 1}, {"Статус заказа", 3}, {"Дата изменения статуса", 1}, {"Номер по 1С", 2},
        {"Дата по 1С", 2}, {"ПометкаУдаления", 2}, {"Проведен", 2}}},
      {"ArgentCrusade__commerceml/tests__fixtures__documents-example.xml", "2.09", "utf-8", 2, 2,
       {{"Проведен", 2}, {"Номер оплаты по 1С", 2}, {"Дата оплаты по 1С", 2}, {"Номер отгрузки по 1С", 1},
        {"Дата отгрузки по 1С", 1}, {"Статуса заказа ИД", 2}}},
      {"ArgentCrusade__commerceml/tests__fixtures__contractors-example.xml", "2.09", "utf-8", 0, 4, {}},
  };
  return files;
}

documents_file read_sample(std::string_view name) { return read_documents_file(sample_path(name)); }

std::string requisite(const model::document& d, std::string_view name) {
  for (const auto& r : d.requisites)
    if (r.name == name) return r.value;
  return "<none>";
}

// The parse_error's what() for a buffer, or "" when it parsed.
std::string error_of(std::string_view data) {
  try {
    read_documents_buffer(data, "t.xml");
  } catch (const parse_error& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("every sample with documents or counterparties gives the counts of SOURCES.md §3") {
  for (const auto& f : expected_files()) {
    INFO(f.name);
    const documents_file got = read_sample(f.name);
    CHECK(got.schema_version == f.version);
    CHECK(got.encoding == f.encoding);
    CHECK(got.documents.size() == f.documents);
    std::size_t cparties = got.counterparties.size();
    counts requisites;
    for (const auto& d : got.documents) {
      cparties += d.counterparties.size();
      CHECK(d.operation == "Заказ товара");
      CHECK(d.subordinates.empty());
      for (const auto& r : d.requisites) ++requisites[r.name];
    }
    CHECK(cparties == f.counterparties);
    CHECK(requisites == f.requisites);
  }
}

TEST_CASE("Bitrix query answer (2.05, windows-1251): orders, lines, status requisites") {
  const documents_file f = read_sample("dobromyslov__commerceml-parser/data__bitrix-query-response-full.xml");
  REQUIRE(f.documents.size() == 2);
  const model::document& d = f.documents[0];
  CHECK(d.external_id == "132");
  CHECK(d.number == "132");
  CHECK(d.date == "2021-02-11");
  CHECK(d.time == "18:45:21");
  CHECK(d.role == "Продавец");
  CHECK(d.currency == "руб");
  CHECK(d.rate == "1");
  CHECK(d.total == "231.7400");
  CHECK(d.comment.empty());
  CHECK(requisite(d, "Статус заказа") == "[N] Принят, ожидается оплата");
  CHECK(requisite(d, "Статуса заказа ИД") == "N");
  CHECK(requisite(d, "Комментарии покупателя") == "Я повелитель порошочков");
  CHECK(requisite(d, "Дата изменения статуса") == "11.02.2021 18:45:21");
  REQUIRE(d.counterparties.size() == 1);
  const model::counterparty& c = d.counterparties[0];
  CHECK(c.external_id == "38#catalog_exchange#");
  CHECK(c.name.empty());
  CHECK(c.role == "Покупатель");
  CHECK_FALSE(c.legal_entity);  // ПолноеНаименование + АдресРегистрации: a person
  REQUIRE(d.lines.size() == 1);
  const model::order_line& l = d.lines[0];
  CHECK(l.offer_external_id == "910e89e5-205e-4d95-872a-0a0255c42f02");
  CHECK(l.name == "Hello Kitty toothbrush for 3~6 years old,2pcs");
  CHECK(l.unit == "шт");
  CHECK(l.unit_code == "796");
  CHECK(l.price == "231.7400");
  CHECK(l.quantity == "1.0000");
  CHECK(l.amount == "231.74");
  CHECK(l.discount.empty());
  CHECK(l.item_kind == "Товар");
  CHECK(l.item_type == "Товар");
  CHECK_FALSE(l.service);
  REQUIRE(l.requisites.size() == 3);  // ВидНоменклатуры / ТипНоменклатуры went to item_kind / item_type
  CHECK(l.requisites[0].name == "НомерПозицииКорзины");
  CHECK(l.requisites[0].value == "437");
  CHECK(l.requisites[2].name == "СвойствоКорзины#PRODUCT.XML_ID");

  const model::document& d2 = f.documents[1];
  CHECK(d2.total == "14380.5800");
  CHECK(d2.counterparties[0].external_id == "5#content-manager# Контент менджер");
  REQUIRE(d2.lines.size() == 7);
  CHECK(d2.lines[1].quantity == "2.0000");
  CHECK(d2.lines[1].amount == "3577.92");
  CHECK(d2.lines[5].name ==
        "Средство для мытья посуды \"Mama Lemon\" с ароматом лимона (закручивающаяся крышка Очень\n"
        "          Большой) 2150 мл");
  CHECK(requisite(d2, "Комментарии покупателя") == "<none>");
}

TEST_CASE("1C's 2.03 examples (windows-1251): from.xml and to.xml") {
  const documents_file from = read_sample("carono__yii2-1c-exchange/files__xml__from.xml");
  REQUIRE(from.documents.size() == 1);
  const model::document& d = from.documents[0];
  CHECK(d.number == "36");
  CHECK(d.total == "6734.47");
  CHECK(d.time == "15:19:27");
  CHECK(requisite(d, "Статус заказа") == "[N] Принят");
  const model::counterparty& c = d.counterparties.at(0);
  CHECK(c.external_id == "1#admin# admin");
  CHECK(c.full_name == "admin");
  CHECK(c.last_name == "Иванов");
  CHECK(c.first_name == "admin");
  CHECK_FALSE(c.legal_entity);
  CHECK(c.legal_address.presentation == "ггг");
  REQUIRE(c.legal_address.fields.size() == 2);
  CHECK(c.legal_address.fields[0].name == "Почтовый индекс");
  CHECK(c.legal_address.fields[0].value == "1111");
  CHECK(c.contacts.empty());
  REQUIRE(c.representatives.size() == 1);  // nested Представитель/Контрагент form
  CHECK(c.representatives[0].relation == "Контактное лицо");
  CHECK(c.representatives[0].external_id == "b342955a9185c40132d4c1df6b30af2f");
  CHECK(c.representatives[0].name == "admin");
  REQUIRE(d.lines.size() == 2);
  CHECK(d.lines[0].offer_external_id == "ORDER_DELIVERY");
  CHECK(d.lines[0].service);
  CHECK(d.lines[0].item_kind == "Услуга");
  CHECK(d.lines[0].price == "340.00");
  CHECK(d.lines[0].quantity == "1");
  CHECK(d.lines[1].name == "Телевизор &quot;JVC&quot;");  // escaped twice in the file itself
  CHECK(d.lines[1].quantity == "1.00");

  const documents_file to = read_sample("carono__yii2-1c-exchange/files__xml__to.xml");
  const model::document& t = to.documents.at(0);
  CHECK(t.number == "20");
  CHECK(t.currency == "RUB");
  CHECK(t.total == "9683.42");
  CHECK(t.counterparties.at(0).name == "Петр Петров");
  CHECK(t.lines.at(1).offer_external_id == "cbcf498f-55bc-11d9-848a-00112f43529a");
  CHECK(t.lines.at(1).price == "9335.42");
  CHECK(requisite(t, "Статус заказа") == "[F] Доставлен");
  CHECK(requisite(t, "Заказ оплачен") == "true");
  CHECK(requisite(t, "Номер платежного документа") == "ТК000000026");
}

TEST_CASE("1C documentation orders.xml: status-only documents, 1C number and date as requisites") {
  const documents_file f = read_sample("irpsv__commerceml/tests__assets__off-doc-1c__orders.xml");
  REQUIRE(f.documents.size() == 3);
  const model::document& first = f.documents[0];
  CHECK(first.counterparties.at(0).external_id == "1#admin# admin");  // trimmed
  REQUIRE(first.counterparties[0].representatives.size() == 1);     // direct Представитель form
  CHECK(first.counterparties[0].representatives[0].relation == "Контактное лицо");
  CHECK(first.counterparties[0].representatives[0].name == "admin");
  CHECK(first.lines.at(1).name == "Телевизор \"JVC\"");
  CHECK(first.lines.at(1).price == "6394.47");

  const model::document& d = f.documents[1];
  CHECK(d.number == "92");
  CHECK(d.time == "13:38:17");
  CHECK(d.erp_number == "MM92");      // from "Номер по 1С"
  CHECK(d.erp_date == "2015-08-12");  // from "Дата по 1С"
  CHECK_FALSE(d.deleted);
  CHECK(d.currency.empty());  // the file has no Валюта: nothing is made up
  CHECK(d.total.empty());
  CHECK(d.lines.empty());
  CHECK(requisite(d, "Статус заказа") == "Открыт");
  CHECK(requisite(d, "Проведен") == "true");
}

TEST_CASE("UT 11 + Bitrix module documents (2.09): 1C fields, payment and shipment requisites") {
  const documents_file f = read_sample("ArgentCrusade__commerceml/tests__fixtures__documents-example.xml");
  REQUIRE(f.documents.size() == 2);
  const model::document& d = f.documents[0];
  CHECK(d.external_id == "142");
  CHECK(d.version == "AAAAEAAAAAA=");
  CHECK_FALSE(d.deleted);
  CHECK(d.number == "142");
  CHECK(d.erp_number == "ТДЦУ-000001");
  CHECK(d.date == "2015-06-29");
  CHECK(d.erp_date == "2015-06-29");
  CHECK(d.rate == "1.0000");
  CHECK(d.total == "8186.84");
  CHECK(d.role == "Продавец");
  CHECK(d.comment == "[Номер документа на сайте: 142]");
  CHECK(requisite(d, "Проведен") == "true");
  CHECK(requisite(d, "Номер оплаты по 1С") == "ТДЦУ-000001");
  CHECK(requisite(d, "Дата оплаты по 1С") == "2015-06-29T15:39:10");
  CHECK(requisite(d, "Номер отгрузки по 1С") == "ТДЦУ-000003");
  CHECK(requisite(d, "Дата отгрузки по 1С") == "2015-06-29T17:32:27");
  CHECK(requisite(d, "Статуса заказа ИД") == "P");
  const model::counterparty& c = d.counterparties.at(0);
  CHECK(c.external_id == "4a65ecb6-8b1b-11df-be16-e0cb4ed5f70f");
  CHECK(c.version == "AAAAAQAAAG4=");
  CHECK(c.active);
  CHECK(c.legal_entity);
  CHECK(c.official_name == "Kikinda (Сербия)");
  CHECK(c.inn.empty());
  CHECK(c.postal_address.presentation == "Адрес");
  REQUIRE(c.representatives.size() == 1);
  CHECK(c.representatives[0].external_id == "5018186c-ddb3-11df-aeb7-0015e9b8c48d");
  CHECK(c.representatives[0].name == "Смирнов Олег Иванович");
  REQUIRE(d.lines.size() == 2);
  const model::order_line& l = d.lines[0];
  CHECK(l.offer_external_id == "cbcf493f-55bc-11d9-848a-00112f43529a");
  CHECK(l.price == "3338");  // Цена, not ЦенаЗаЕдиницу, in this writer
  CHECK(l.quantity == "1");
  CHECK(l.amount == "3338");
  CHECK(l.unit == "шт");  // Единица{НаименованиеКраткое, Код}
  CHECK(l.unit_code == "796");
  CHECK(l.item_kind == "Электротовары");
  CHECK(d.lines[1].offer_external_id ==
        "bd72d913-55bc-11d9-848a-00112f43529a#b02e2814-720f-11df-b436-0015e92f2802");
  CHECK(d.lines[1].unit == "пар");

  const model::document& d2 = f.documents[1];
  CHECK(d2.comment == "[Номер документа на сайте: 235]");
  CHECK(requisite(d2, "Номер отгрузки по 1С") == "<none>");
  const model::order_line& delivery = d2.lines.at(1);
  CHECK(delivery.offer_external_id == "ORDER_DELIVERY");
  CHECK(delivery.service);
  CHECK(delivery.item_type == "Услуга");
  CHECK(delivery.price == "500");
}

TEST_CASE("Bitrix module counterparties file (root Контрагенты)") {
  const documents_file f = read_sample("ArgentCrusade__commerceml/tests__fixtures__contractors-example.xml");
  CHECK(f.documents.empty());
  REQUIRE(f.counterparties.size() == 4);
  const model::counterparty& a = f.counterparties[1];
  CHECK(a.external_id == "4141d5ec-e2a6-11db-95d9-505054503030");
  CHECK(a.name == "Алтай ТОО");
  CHECK(a.official_name == "ТОО \"Алтай\"");
  CHECK(a.inn == "181310839110");
  CHECK(a.kpp.empty());
  CHECK(a.okpo.empty());
  CHECK(a.legal_entity);
  CHECK(a.version == "AAAAAQAAAAc=");
  const model::counterparty& u = f.counterparties[2];
  CHECK(u.inn == "181620360057");
  CHECK(u.legal_entity);  // ОфициальноеНаименование, even with an АдресРегистрации
  CHECK(u.legal_address.presentation == "005897, Города Республиканского значения: Алматы, Тохтарова, дом № 18");
  REQUIRE(u.legal_address.fields.size() == 5);
  CHECK(u.legal_address.fields[2].value == "Города Республиканского значения: Алматы");
  REQUIRE(u.contacts.size() == 2);
  CHECK(u.contacts[0].type == "Электронная почта");
  CHECK(u.contacts[0].value == "Uyt@komp.kz");
  CHECK(u.contacts[1].value == "+7 (3272) 25-39-39");
  REQUIRE(u.representatives.size() == 1);
  CHECK(u.representatives[0].name == "Коновалов Александр Зиновьевич");
}

TEST_CASE("namespaces, BOM, Контейнер, ПодчиненныеДокументы, deletion marks, КПП, discounts") {
  const std::string xml =
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<c:КоммерческаяИнформация xmlns:c=\"urn:1C.ru:commerceml_3\" ВерсияСхемы=\"3.1\" ДатаФормирования=\"2024-01-01T00:00:00\">"
      "<c:Контейнер>"
      "<c:Документ><c:Ид>o1</c:Ид><c:Номер>7</c:Номер><c:ХозОперация>Заказ товара</c:ХозОперация>"
      "<c:ПометкаУдаления>true</c:ПометкаУдаления>"
      "<c:Контрагенты><c:Контрагент><c:Ид>k</c:Ид><c:ОфициальноеНаименование>ООО А</c:ОфициальноеНаименование>"
      "<c:ИНН>7701234567</c:ИНН><c:КПП>770101001</c:КПП><c:ОКПО>123</c:ОКПО>"
      "<c:ПометкаУдаления>true</c:ПометкаУдаления>"
      "<c:Контакты><c:Контакт><c:КонтактВид>Почта</c:КонтактВид><c:Значение>a@b.c</c:Значение></c:Контакт></c:Контакты>"
      "</c:Контрагент></c:Контрагенты>"
      "<c:Товары><c:Товар><c:Ид>p</c:Ид><c:БазоваяЕдиница Код=\" 796 \" НаименованиеКраткое=\"шт\"/>"
      "<c:Количество> 1 234,5 </c:Количество>"
      "<c:Скидки><c:Скидка><c:Сумма>100.5</c:Сумма></c:Скидка><c:Скидка><c:Сумма>0.25</c:Сумма></c:Скидка>"
      "<c:Скидка><c:Сумма>-1</c:Сумма></c:Скидка></c:Скидки></c:Товар></c:Товары>"
      "</c:Документ>"
      "<c:Документ><c:Ид>pay</c:Ид><c:Номер>П-1</c:Номер><c:ХозОперация>Выплата безналичных денег</c:ХозОперация></c:Документ>"
      "<c:Документ><c:Ид>ship</c:Ид><c:ХозОперация>Отпуск товара</c:ХозОперация></c:Документ>"
      "</c:Контейнер>"
      "<c:Контейнер><c:Документ><c:Ид>inv</c:Ид><c:ХозОперация>Счет на оплату</c:ХозОперация></c:Документ>"
      "<c:Документ><c:Ид>inv2</c:Ид><c:ХозОперация>Счет на оплату</c:ХозОперация></c:Документ></c:Контейнер>"
      "<c:Документ><c:Ид>o2</c:Ид><c:ХозОперация>Заказ товара</c:ХозОперация>"
      "<c:ПодчиненныеДокументы><c:ПодчиненныйДокумент><c:Ид>s1</c:Ид><c:Сумма>5</c:Сумма></c:ПодчиненныйДокумент>"
      "</c:ПодчиненныеДокументы></c:Документ>"
      "</c:КоммерческаяИнформация>";
  const documents_file f = read_documents_buffer(xml, "t.xml");
  CHECK(f.schema_version == "3.1");
  CHECK(f.encoding == "utf-8");
  REQUIRE(f.documents.size() == 4);  // o1 (+2 subordinates), inv, inv2, o2 (+1)
  const model::document& o1 = f.documents[0];
  CHECK(o1.deleted);
  REQUIRE(o1.subordinates.size() == 2);
  CHECK(o1.subordinates[0].external_id == "pay");
  CHECK(o1.subordinates[0].base_document == "o1");
  CHECK(o1.subordinates[1].operation == "Отпуск товара");
  const model::counterparty& k = o1.counterparties.at(0);
  CHECK(k.inn == "7701234567");
  CHECK(k.kpp == "770101001");
  CHECK(k.okpo == "123");
  CHECK_FALSE(k.active);
  CHECK(k.contacts.at(0).type == "Почта");
  const model::order_line& l = o1.lines.at(0);
  CHECK(l.unit == "шт");
  CHECK(l.unit_code == "796");
  CHECK(l.quantity == "1234.5");
  CHECK(l.discount == "99.75");
  CHECK(f.documents[1].external_id == "inv");  // not an order: its container's documents stay separate
  CHECK(f.documents[2].external_id == "inv2");
  CHECK(f.documents[2].subordinates.empty());
  REQUIRE(f.documents[3].subordinates.size() == 1);
  CHECK(f.documents[3].subordinates[0].total == "5");
  CHECK(f.documents[3].subordinates[0].base_document == "o2");
}

TEST_CASE("malformed, truncated, foreign, badly encoded input: exact messages with positions") {
  const std::string head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<КоммерческаяИнформация ВерсияСхемы=\"2.05\">\n";
  CHECK(error_of("<html><body>Service Unavailable</body></html>") ==
        "t.xml:1:1: not a CommerceML document: root element is 'html'");
  CHECK(error_of(head + "<Документ><Ид>1</Ид>") == "t.xml:3:20: malformed XML: Start-end tags mismatch");
  CHECK(error_of(head + "<Документ><Сумма>12,3,4</Сумма></Документ></КоммерческаяИнформация>") ==
        "t.xml:3:11: invalid number '12,3,4' in Сумма");
  CHECK(error_of(head + "<Документ><Товары><Товар>\n<Количество>много</Количество></Товар></Товары></Документ>"
                        "</КоммерческаяИнформация>") == "t.xml:4:1: invalid number 'много' in Количество");
  CHECK(error_of(head + "<Документ><Ид>\xD0\x98\xFF</Ид></Документ></КоммерческаяИнформация>") ==
        "t.xml:3:16: invalid UTF-8 byte 0xFF");
  CHECK(error_of("<?xml version=\"1.0\" encoding=\"koi8-r\"?><a/>") == "t.xml:1:31: unsupported encoding 'koi8-r'");
  CHECK(error_of("") == "t.xml:1:1: malformed XML: No document element found");

  // Every cut of a real file fails with a position inside the file, never parses or crashes.
  const std::string full = slurp(sample_path("ArgentCrusade__commerceml/tests__fixtures__documents-example.xml"));
  const std::string::size_type end = full.rfind("</КоммерческаяИнформация>");
  for (std::size_t cut = 1; cut < end; cut += 97) {
    INFO("cut at ", cut);
    try {
      read_documents_buffer(std::string_view(full).substr(0, cut), "cut.xml");
      FAIL("parsed a truncated file");
    } catch (const parse_error& e) {
      CHECK(e.file() == "cut.xml");
      CHECK(e.line() >= 1);
      CHECK(e.line() <= 400);
      CHECK(e.column() >= 1);
    }
  }

  // windows-1251 positions count the same characters as the decoded text.
  const std::string cp = utf8_to_cp1251("<?xml version=\"1.0\" encoding=\"windows-1251\"?>\n<КоммерческаяИнформация>\n"
                                        "<Документ><Курс>один</Курс></Документ></КоммерческаяИнформация>");
  CHECK(error_of(cp) == "t.xml:3:11: invalid number 'один' in Курс");

  CHECK_THROWS_AS(read_documents_file(sample_path("no-such-file.xml")), fs::filesystem_error);
}
