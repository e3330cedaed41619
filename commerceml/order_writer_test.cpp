// Order writer tests: every supported version/encoding/layout is validated with xmllint against
// the XSD of its version (xsd/ in the reference folder) and read back through the document
// reader into the identical model. Deviations from the XSDs that 1C's real exchange needs are
// named where they are tested.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <pugixml.hpp>

#include "commerceml/document_reader.hpp"
#include "commerceml/encoding.hpp"
#include "commerceml/order_writer.hpp"
#include "tests/support/temp_dir.hpp"

using obmen::test::temp_dir;

namespace fs = std::filesystem;
using namespace obmen;
using namespace obmen::commerceml;

namespace {

fs::path xsd_path(std::string_view file) {
  const char* dir = std::getenv("OBMEN_REFERENCE_DIR");
  REQUIRE_MESSAGE(dir != nullptr, "OBMEN_REFERENCE_DIR is not set");
  const fs::path p = fs::path(dir) / "commerceml" / "xsd" / file;
  REQUIRE_MESSAGE(fs::exists(p), p.string());
  return p;
}


struct run_result {
  int status = -1;
  std::string output;
};

// `xmllint --noout --schema xsd file`: exit status and everything it printed.
run_result xmllint(const fs::path& xsd, const fs::path& file) {
  const std::string cmd = "xmllint --noout --schema '" + xsd.string() + "' '" + file.string() + "' 2>&1";
  run_result r;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE_MESSAGE(p != nullptr, cmd);
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) r.output.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// Deviation from the XSD, named: obmen writes 2.05 documents without a namespace, as 1C-Bitrix
// answers, while the 2.05 XSD's targetNamespace is "urn:1C.ru:commerceml2". Validation adds that
// namespace to a copy, so everything else is still checked against the schema.
std::string with_205_namespace(const std::string& bytes) {
  if (bytes.find("xmlns=") != std::string::npos) return bytes;
  const bool cp1251 = bytes.find("encoding=\"windows-1251\"") != std::string::npos;
  const std::string tag = cp1251 ? utf8_to_cp1251("<КоммерческаяИнформация") : "<КоммерческаяИнформация";
  std::string out = bytes;
  const auto at = out.find(tag);
  if (at != std::string::npos) out.insert(at + tag.size(), " xmlns=\"urn:1C.ru:commerceml2\"");
  return out;
}

void check_valid(const temp_dir& dir, const std::string& name, const std::string& bytes, std::string_view xsd) {
  const std::string checked = xsd.find("2.05") != std::string_view::npos ? with_205_namespace(bytes) : bytes;
  const run_result r = xmllint(xsd_path(xsd), dir.write(name, checked));
  INFO(name, " against ", xsd, ":\n", r.output, "\n", bytes);
  CHECK(r.status == 0);
}

// Every field of a document tree, one line per value, so that a mismatch shows where.
void dump(std::ostringstream& o, const model::address& a, std::string_view what) {
  o << "  " << what << " " << a.presentation;
  for (const auto& f : a.fields) o << " [" << f.name << "=" << f.value << "]";
  o << '\n';
}

void dump(std::ostringstream& o, const model::counterparty& c) {
  o << " cparty " << c.external_id << '|' << c.name << '|' << c.role << '|' << c.full_name << '|' << c.official_name
    << '|' << c.last_name << '|' << c.first_name << '|' << c.middle_name << '|' << c.inn << '|' << c.kpp << '|'
    << c.okpo << '|' << c.legal_entity << '|' << c.active << '|' << c.version << '\n';
  dump(o, c.legal_address, "legal");
  dump(o, c.postal_address, "postal");
  for (const auto& k : c.contacts) o << "  contact " << k.type << '=' << k.value << '\n';
  for (const auto& r : c.representatives) o << "  rep " << r.relation << '|' << r.external_id << '|' << r.name << '\n';
}

void dump(std::ostringstream& o, const model::document& d, int depth = 0) {
  o << std::string(static_cast<std::size_t>(depth), '>') << "doc " << d.external_id << '|' << d.number << '|' << d.date
    << '|' << d.time << '|' << d.operation << '|' << d.role << '|' << d.currency << '|' << d.rate << '|' << d.total
    << '|' << d.comment << '|' << d.version << '|' << d.deleted << '|' << d.erp_number << '|' << d.erp_date << '|'
    << d.base_document << '\n';
  for (const auto& c : d.counterparties) dump(o, c);
  for (const auto& l : d.lines) {
    o << " line " << l.offer_external_id << '|' << l.sku << '|' << l.name << '|' << l.unit << '|' << l.unit_code << '|'
      << l.price << '|' << l.quantity << '|' << l.amount << '|' << l.discount << '|' << l.item_kind << '|'
      << l.item_type << '|' << l.service;
    for (const auto& r : l.requisites) o << " [" << r.name << "=" << r.value << "]";
    o << '\n';
  }
  for (const auto& r : d.requisites) o << " req " << r.name << '=' << r.value << '\n';
  for (const auto& s : d.subordinates) dump(o, s, depth + 1);
}

std::string dump(const std::vector<model::document>& docs) {
  std::ostringstream o;
  for (const auto& d : docs) dump(o, d);
  return o.str();
}

model::document legal_entity_order() {
  model::document d;
  d.external_id = "5b0e7a52-9c1d-4f7e-8a36-1d2c3b4a5f60";
  d.number = "1001";
  d.date = "2024-03-15";
  d.time = "14:05:09";
  d.operation = "Заказ товара";
  d.role = "Продавец";
  d.currency = "RUB";
  d.rate = "1";
  d.total = "3425.00";
  d.comment = "Доставить до 18:00 — «срочно» & <аккуратно>";

  model::counterparty c;
  c.external_id = "c1a7e5d2-3b4f-4a6e-8d9c-0e1f2a3b4c5d";
  c.name = "ООО «Ромашка»";
  c.role = "Покупатель";
  c.official_name = "Общество с ограниченной ответственностью \"Ромашка\"";
  c.inn = "7701234567";
  c.kpp = "770101001";
  c.okpo = "12345678";
  c.legal_entity = true;
  c.legal_address = {"125009, Москва, ул. Тверская, д. 1",
                     {{"Почтовый индекс", "125009"}, {"Город", "Москва"}, {"Улица", "Тверская"}, {"Дом", "1"}}};
  c.postal_address = {"Москва, а/я 15", {}};
  c.contacts = {{"Почта", "zakaz@romashka.ru"}, {"Телефон рабочий", "+7 (495) 123-45-67"}};
  d.counterparties.push_back(c);

  model::order_line variant;
  variant.offer_external_id = "bd72d913-55bc-11d9-848a-00112f43529a#b02e2814-720f-11df-b436-0015e92f2802";
  variant.sku = "БТ-35";
  variant.name = "Ботинки женские (35, бежевый)";
  variant.unit = "пар";
  variant.unit_code = "715";
  variant.price = "1500.00";
  variant.quantity = "2";
  variant.amount = "2700.00";
  variant.discount = "300.00";
  variant.requisites = {{"НомерПозицииКорзины", "17"}};
  d.lines.push_back(variant);

  model::order_line plain;
  plain.offer_external_id = "cbcf493f-55bc-11d9-848a-00112f43529a";
  plain.name = "Вентилятор BINATONE 160 Вт";
  plain.unit = "шт";
  plain.unit_code = "796";
  plain.price = "250.00";
  plain.quantity = "1.5";
  plain.amount = "375.00";
  d.lines.push_back(plain);

  model::order_line delivery;
  delivery.offer_external_id = "ORDER_DELIVERY";
  delivery.name = "Доставка заказа";
  delivery.unit = "шт";
  delivery.unit_code = "796";
  delivery.price = "350.00";
  delivery.quantity = "1";
  delivery.amount = "350.00";
  delivery.item_kind = "Услуга";
  delivery.item_type = "Услуга";
  delivery.service = true;
  d.lines.push_back(delivery);

  d.requisites = {{"Метод оплаты", "Безналичный расчёт"},
                  {"Заказ оплачен", "false"},
                  {"Доставка разрешена", "false"},
                  {"Отменен", "false"},
                  {"Финальный статус", "false"},
                  {"Статус заказа", "[N] Принят"},
                  {"Статуса заказа ИД", "N"},
                  {"Дата изменения статуса", "2024-03-15 14:05:09"},
                  // € exists in windows-1251, ₽ and ✓ do not: they travel as character references.
                  {"Комментарии покупателя", "Счёт № 5 — € / ₽ ✓"}};
  return d;
}

model::document person_order() {
  model::document d;
  d.external_id = "1002";
  d.number = "1002";
  d.date = "2024-03-16";
  d.time = "09:00:00";
  d.operation = "Заказ товара";
  d.total = "990.00";

  model::counterparty c;
  c.external_id = "42#ivanov#Иванов Иван";
  c.name = "Иванов Иван Иванович";
  c.role = "Покупатель";
  c.full_name = "Иванов Иван Иванович";
  c.last_name = "Иванов";
  c.first_name = "Иван";
  c.middle_name = "Иванович";
  c.inn = "500100732259";
  c.legal_entity = false;
  c.legal_address = {"Москва, ул. Ленина, д. 5, кв. 7",
                     {{"Город", "Москва"}, {"Улица", "Ленина"}, {"Дом", "5"}, {"Квартира", "7"}}};
  c.contacts = {{"Телефон мобильный", "+7 900 000-00-00"}};
  d.counterparties.push_back(c);

  model::order_line l;
  l.offer_external_id = "7c1bded0-8a29-40c9-a4f6-f63c6a30d3e9";
  l.name = "Средство для мытья посуды \"Mama Lemon\" 2150 мл";
  l.unit = "шт";
  l.unit_code = "796";
  l.price = "495.00";
  l.quantity = "2";
  l.amount = "990.00";
  d.lines.push_back(l);

  d.requisites = {{"Статус заказа", "[N] Принят, ожидается оплата"}, {"Сайт", "[s1] Портал"}};
  return d;
}

// A payment 1C based on the legal entity's order (2.10 ПодчиненныйДокумент / 3.x Контейнер).
model::document payment_for(const model::document& order) {
  model::document p;
  p.external_id = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d";
  p.number = "ТДЦУ-000001";
  p.date = "2024-03-15";
  p.time = "15:00:00";
  p.operation = "Выплата безналичных денег";
  p.total = order.total;
  p.base_document = order.external_id;  // the reader points a subordinate at its order
  p.requisites = {{"Проведен", "true"}};
  return p;
}

std::vector<model::document> both_orders() { return {legal_entity_order(), person_order()}; }

order_write_options options(std::string version, std::string encoding = "utf-8") {
  order_write_options o;
  o.schema_version = std::move(version);
  o.encoding = std::move(encoding);
  o.generated_at = "2024-03-16T10:00:00";
  if (o.schema_version.starts_with("3")) o.layout = order_layout::container;
  return o;
}

void check_round_trip(const std::string& bytes, const std::vector<model::document>& expected,
                      std::string_view version, std::string_view encoding) {
  const documents_file f = read_documents_buffer(bytes, "written.xml");
  CHECK(f.schema_version == version);
  CHECK(f.encoding == encoding);
  CHECK(f.counterparties.empty());
  CHECK(dump(f.documents) == dump(expected));
}

pugi::xml_node root_of(pugi::xml_document& doc, const std::string& utf8) {
  REQUIRE(doc.load_buffer(utf8.data(), utf8.size()));
  return doc.document_element();
}

}  // namespace

TEST_CASE("2.05 flat UTF-8: valid against the 2.05 XSD, reads back to the same orders") {
  temp_dir dir;
  const auto orders = both_orders();
  const std::string xml = write_orders(orders, options("2.05"));
  CHECK(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<КоммерческаяИнформация "
                        "ВерсияСхемы=\"2.05\" ДатаФормирования=\"2024-03-16T10:00:00\">"));
  check_valid(dir, "orders-2.05.xml", xml, "commerceml_2.05__webasyst.xsd");
  check_round_trip(xml, orders, "2.05", "utf-8");

  // Bitrix-like layout: a newline and tabs per element; text escaped.
  CHECK(xml.find("\n\t<Документ>\n\t\t<Ид>5b0e7a52-9c1d-4f7e-8a36-1d2c3b4a5f60</Ид>") != std::string::npos);
  CHECK(xml.find("<Комментарий>Доставить до 18:00 — «срочно» &amp; &lt;аккуратно&gt;</Комментарий>") !=
        std::string::npos);
  CHECK(xml.find("<БазоваяЕдиница Код=\"796\" НаименованиеПолное=\"Штука\" МеждународноеСокращение=\"PCE\">шт"
                 "</БазоваяЕдиница>") != std::string::npos);
  CHECK(xml.find("<ОКПО>12345678</ОКПО>") != std::string::npos);
  CHECK(content_type_for(options("2.05")) == "application/xml; charset=utf-8");

  // Element order inside Товар follows the XSD: ЗначенияРеквизитов (base type) before ЦенаЗаЕдиницу
  // and Скидки (the document's extension).
  pugi::xml_document doc;
  const pugi::xml_node root = root_of(doc, xml);
  std::vector<std::string> names;
  for (pugi::xml_node c : root.child("Документ").child("Товары").child("Товар").children()) names.push_back(c.name());
  CHECK(names == std::vector<std::string>{"Ид", "Артикул", "Наименование", "БазоваяЕдиница", "ЗначенияРеквизитов",
                                          "ЦенаЗаЕдиницу", "Количество", "Сумма", "Скидки"});
  names.clear();
  for (pugi::xml_node c : root.child("Документ").children()) names.push_back(c.name());
  CHECK(names == std::vector<std::string>{"Ид", "Номер", "Дата", "ХозОперация", "Роль", "Валюта", "Курс", "Сумма",
                                          "Контрагенты", "Время", "Комментарий", "Товары", "ЗначенияРеквизитов"});
  const pugi::xml_node delivery = root.child("Документ").child("Товары").find_child([](pugi::xml_node n) {
    return std::string_view(n.child_value("Ид")) == "ORDER_DELIVERY";
  });
  REQUIRE(delivery);
  CHECK(std::string_view(delivery.child("ЗначенияРеквизитов").last_child().child_value("Значение")) == "Услуга");
}

TEST_CASE("2.05 windows-1251: the bytes and the declaration say windows-1251, same text as UTF-8") {
  temp_dir dir;
  const auto orders = both_orders();
  const std::string utf8 = write_orders(orders, options("2.05"));
  const std::string cp = write_orders(orders, options("2.05", "windows-1251"));
  CHECK(cp.starts_with("<?xml version=\"1.0\" encoding=\"windows-1251\"?>\n"));
  CHECK_FALSE(is_valid_utf8(cp));  // Cyrillic is single bytes now
  CHECK(cp.find(utf8_to_cp1251("ООО «Ромашка»")) != std::string::npos);
  // Decoding the bytes gives the UTF-8 document, except the declaration and the characters
  // windows-1251 lacks, which are character references.
  std::string decoded = cp1251_to_utf8(cp);
  CHECK(decoded.find("Счёт № 5 — € / &#8381; &#10003;") != std::string::npos);
  std::string expected = utf8;
  expected.replace(expected.find("UTF-8"), 5, "windows-1251");
  expected.replace(expected.find("₽ ✓"), std::string("₽ ✓").size(), "&#8381; &#10003;");
  CHECK(decoded == expected);
  CHECK(content_type_for(options("2.05", "windows-1251")) == "application/xml; charset=windows-1251");
  CHECK(content_type_for(options("2.05", "CP1251")) == "application/xml; charset=windows-1251");

  check_valid(dir, "orders-2.05-cp1251.xml", cp, "commerceml_2.05__webasyst.xsd");
  check_round_trip(cp, orders, "2.05", "windows-1251");
}

TEST_CASE("2.08 and 2.10 flat: valid against their XSDs, namespace urn:1C.ru:commerceml_2") {
  temp_dir dir;
  const auto orders = both_orders();
  const std::string v208 = write_orders(orders, options("2.08"));
  CHECK(v208.find("xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.08\"") != std::string::npos);
  check_valid(dir, "orders-2.08.xml", v208, "commerceml_2.08__gillbeits.xsd");
  check_round_trip(v208, orders, "2.08", "utf-8");

  const std::string v210 = write_orders(orders, options("2.10"));
  check_valid(dir, "orders-2.10.xml", v210, "commerceml_2.10__carono.xsd");
  check_round_trip(v210, orders, "2.10", "utf-8");
}

TEST_CASE("2.10 flat: subordinate documents as ПодчиненныеДокументы, valid; dropped before 2.10") {
  temp_dir dir;
  auto orders = both_orders();
  orders[0].subordinates.push_back(payment_for(orders[0]));
  const std::string v210 = write_orders(orders, options("2.10"));
  CHECK(v210.find("<ПодчиненныеДокументы>\n\t\t\t<ПодчиненныйДокумент>\n\t\t\t\t<Ид>a0b1c2d3") != std::string::npos);
  check_valid(dir, "orders-2.10-sub.xml", v210, "commerceml_2.10__carono.xsd");
  check_round_trip(v210, orders, "2.10", "utf-8");

  // "2.1" is Bitrix's spelling of 2.10.
  CHECK(write_orders(orders, options("2.1")).find("<ПодчиненныеДокументы>") != std::string::npos);

  const std::string v208 = write_orders(orders, options("2.08"));
  CHECK(v208.find("Подчиненн") == std::string::npos);
  check_valid(dir, "orders-2.08-sub.xml", v208, "commerceml_2.08__gillbeits.xsd");
}

TEST_CASE("3.1: every order in its own Контейнер with the documents based on it") {
  // Deviation: no XSD exists for CommerceML 3.x (xsd/SOURCES.md), so the structure is checked
  // instead: namespace urn:1C.ru:commerceml_3, Контейнер per order holding the order first and
  // then its subordinates as sibling Документ elements (FORMAT.md §6.4, 1C-Bitrix module 3.1),
  // and 1C's КодПоОКПО instead of the 2.x XSDs' ОКПО.
  auto orders = both_orders();
  orders[0].subordinates.push_back(payment_for(orders[0]));
  const std::string xml = write_orders(orders, options("3.1"));
  pugi::xml_document doc;
  const pugi::xml_node root = root_of(doc, xml);
  CHECK(std::string_view(root.name()) == "КоммерческаяИнформация");
  CHECK(std::string_view(root.attribute("xmlns").value()) == "urn:1C.ru:commerceml_3");
  CHECK(std::string_view(root.attribute("ВерсияСхемы").value()) == "3.1");
  std::vector<std::string> shape;
  for (pugi::xml_node c : root.children()) {
    std::string s = c.name();
    for (pugi::xml_node d : c.children()) s += std::string(" ") + d.name() + "=" + d.child_value("Номер");
    shape.push_back(s);
  }
  CHECK(shape == std::vector<std::string>{"Контейнер Документ=1001 Документ=ТДЦУ-000001", "Контейнер Документ=1002"});
  CHECK(xml.find("<КодПоОКПО>12345678</КодПоОКПО>") != std::string::npos);
  check_round_trip(xml, orders, "3.1", "utf-8");

  // The layout can also be asked for explicitly on a 2.x version.
  order_write_options o = options("2.10");
  o.layout = order_layout::container;
  CHECK(write_orders(orders, o).find("<Контейнер>") != std::string::npos);
}

TEST_CASE("no orders: a header-only document, as Bitrix answers") {
  temp_dir dir;
  const std::string xml = write_orders({}, options("2.05", "windows-1251"));
  CHECK(xml ==
        "<?xml version=\"1.0\" encoding=\"windows-1251\"?>\n" +
            utf8_to_cp1251("<КоммерческаяИнформация ВерсияСхемы=\"2.05\" "
                           "ДатаФормирования=\"2024-03-16T10:00:00\">\n</КоммерческаяИнформация>\n"));
  check_valid(dir, "empty-2.05.xml", xml, "commerceml_2.05__webasyst.xsd");
  const documents_file f = read_documents_buffer(xml, "empty.xml");
  CHECK(f.documents.empty());
  CHECK(f.schema_version == "2.05");

  const std::string v210 = write_orders({}, options("2.10"));
  check_valid(dir, "empty-2.10.xml", v210, "commerceml_2.10__carono.xsd");
  CHECK(write_orders({}, options("3.1")).find("Контейнер") == std::string::npos);
}

TEST_CASE("representatives: Bitrix's nested form, a named deviation from the XSDs") {
  // Deviation: 1C's own site example (from.xml, 2.03) and Bitrix's CSaleExport write
  // Представитель/Контрагент{Отношение, Ид, Наименование}; the 2.05–2.10 XSDs want
  // Представитель{Ид, Наименование, ПолноеНаименование…, Отношение}. 1C reads what Bitrix writes,
  // so obmen writes Bitrix's form; xmllint rejects exactly that element and nothing else.
  temp_dir dir;
  auto orders = both_orders();
  orders[1].counterparties[0].representatives.push_back({"Контактное лицо", "b342955a9185c40132d4c1df6b30af2f", "Иванов И."});
  const std::string xml = write_orders(orders, options("2.10"));
  CHECK(xml.find("<Представители>\n\t\t\t\t\t<Представитель>\n\t\t\t\t\t\t<Контрагент>\n\t\t\t\t\t\t\t<Отношение>"
                 "Контактное лицо</Отношение>\n\t\t\t\t\t\t\t<Ид>b342955a9185c40132d4c1df6b30af2f</Ид>\n"
                 "\t\t\t\t\t\t\t<Наименование>Иванов И.</Наименование>") != std::string::npos);
  const run_result r = xmllint(xsd_path("commerceml_2.10__carono.xsd"), dir.write("rep.xml", xml));
  CHECK(r.status != 0);
  // The one error is at the Контрагент nested in Представитель (the line after <Представитель>).
  const std::size_t rep = xml.find("<Представитель>");
  const auto rep_line = std::count(xml.begin(), xml.begin() + static_cast<std::ptrdiff_t>(rep), '\n') + 1;
  std::istringstream lines(r.output);
  int errors = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("fails to validate") != std::string::npos || line.empty()) continue;
    ++errors;
    INFO(line);
    CHECK(line.find(":" + std::to_string(rep_line + 1) + ": element Контрагент: Schemas validity error : Element "
                    "'{urn:1C.ru:commerceml_2}Контрагент': This element is not expected.") != std::string::npos);
  }
  CHECK(errors == 1);
  check_round_trip(xml, orders, "2.10", "utf-8");
}

TEST_CASE("fields beyond the XSDs (1C → site style) are written when set and read back") {
  // НомерВерсии, ПометкаУдаления, Номер1С, Дата1С exist in no XSD; UT 11 and the Bitrix module
  // write them (documents-example.xml). They are written only when set, so the validated cases
  // above never carry them.
  auto orders = both_orders();
  orders[0].version = "AAAAEAAAAAA=";
  orders[0].deleted = true;
  orders[0].erp_number = "ТДЦУ-000001";
  orders[0].erp_date = "2024-03-15";
  const std::string xml = write_orders(orders, options("2.10"));
  CHECK(xml.find("<Ид>5b0e7a52-9c1d-4f7e-8a36-1d2c3b4a5f60</Ид>\n\t\t<НомерВерсии>AAAAEAAAAAA=</НомерВерсии>\n\t\t"
                 "<ПометкаУдаления>true</ПометкаУдаления>\n\t\t<Номер>1001</Номер>\n\t\t<Номер1С>ТДЦУ-000001</Номер1С>\n\t\t"
                 "<Дата>2024-03-15</Дата>\n\t\t<Дата1С>2024-03-15</Дата1С>") != std::string::npos);
  check_round_trip(xml, orders, "2.10", "utf-8");
}

TEST_CASE("defaults, bad encodings and bad text") {
  model::document d = person_order();
  d.operation.clear();
  d.counterparties[0].role.clear();
  d.lines[0].service = true;  // a service with the default kind/type is written as Услуга
  const std::string xml = write_orders({d}, options("2.05"));
  CHECK(xml.find("<ХозОперация>Заказ товара</ХозОперация>") != std::string::npos);
  CHECK(xml.find("<Роль>Покупатель</Роль>") != std::string::npos);
  CHECK(xml.find("<Наименование>ТипНоменклатуры</Наименование>\n\t\t\t\t\t\t<Значение>Услуга</Значение>") !=
        std::string::npos);

  CHECK_THROWS_AS(write_orders({}, options("2.05", "koi8-r")), std::invalid_argument);
  CHECK_THROWS_AS(content_type_for(options("2.05", "utf-16")), std::invalid_argument);
  d.comment = "bad \xFF byte";
  CHECK_THROWS_WITH_AS(write_orders({d}, options("2.05")), "text of <Комментарий> is not valid UTF-8",
                       std::invalid_argument);

  // Control characters XML 1.0 cannot carry are dropped; quotes are escaped in attributes.
  d = person_order();
  d.comment = "a\x01z\r\n";
  d.lines[0].unit_code = "7\"6";
  const std::string esc = write_orders({d}, options("2.05"));
  CHECK(esc.find("<Комментарий>az&#13;\n</Комментарий>") != std::string::npos);
  CHECK(esc.find("<БазоваяЕдиница Код=\"7&quot;6\">шт</БазоваяЕдиница>") != std::string::npos);

  // Without generated_at the current time is written.
  order_write_options o = options("2.05");
  o.generated_at.clear();
  const std::string now = write_orders({}, o);
  const std::size_t at = now.find("ДатаФормирования=\"");
  REQUIRE(at != std::string::npos);
  const std::string stamp = now.substr(at + std::string("ДатаФормирования=\"").size(), 19);
  CHECK(stamp.size() == 19);
  CHECK(stamp[4] == '-');
  CHECK(stamp[10] == 'T');
}
