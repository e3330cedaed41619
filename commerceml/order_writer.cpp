#include "commerceml/order_writer.hpp"

#include <ctime>
#include <initializer_list>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "commerceml/encoding.hpp"

namespace obmen::commerceml {
namespace {

struct schema {
  int major = 2;
  int minor = 5;  // two-digit minor: "2.1" is 2.10 (Bitrix's PARTIAL_VERSION spelling)
};

schema parse_version(std::string_view v) {
  schema s;
  const std::size_t dot = v.find('.');
  const std::string_view major = v.substr(0, dot);
  const std::string_view minor = dot == std::string_view::npos ? std::string_view{} : v.substr(dot + 1);
  const auto to_int = [](std::string_view digits, int fallback) {
    if (digits.empty()) return fallback;
    int n = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return fallback;
      n = n * 10 + (c - '0');
    }
    return n;
  };
  s.major = to_int(major, 2);
  s.minor = to_int(minor, 0);
  if (minor.size() == 1) s.minor *= 10;
  return s;
}

bool at_least(const schema& s, int major, int minor) {
  return s.major != major ? s.major > major : s.minor >= minor;
}

// The namespace 1C writes for the version. 2.05 documents carry none: that is what 1C-Bitrix
// answers (samples/dobromyslov…/bitrix-query-response-*.xml) and what 1C is known to accept,
// although the 2.05 XSD's targetNamespace is "urn:1C.ru:commerceml2" (the tests add it before
// validating, and say so). 2.03/2.04 have no schema and 1C's own examples carry no namespace.
std::string_view namespace_for(const schema& s) {
  if (s.major >= 3) return "urn:1C.ru:commerceml_3";
  if (s.major == 2 && s.minor >= 6) return "urn:1C.ru:commerceml_2";
  return {};
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool is_cp1251(const order_write_options& o) {
  const std::string e = lower_ascii(o.encoding);
  if (e == "utf-8" || e == "utf8") return false;
  if (e == "windows-1251" || e == "cp1251") return true;
  throw std::invalid_argument("unsupported order document encoding '" + o.encoding + "'");
}

// ОКЕИ codes 1C and Bitrix write in БазоваяЕдиница (@НаименованиеПолное, @МеждународноеСокращение).
struct okei_unit {
  std::string_view code, full_name, international;
};
constexpr okei_unit okei_units[] = {
    {"796", "Штука", "PCE"},         {"166", "Килограмм", "KGM"}, {"163", "Грамм", "GRM"},
    {"006", "Метр", "MTR"},          {"112", "Литр", "LTR"},      {"715", "Пара (2 шт.)", "NPR"},
    {"055", "Квадратный метр", "MTK"}, {"113", "Кубический метр", "MTQ"}, {"168", "Тонна", "TNE"},
    {"356", "Час", "HUR"},
};

const okei_unit* find_okei(std::string_view code) {
  for (const auto& u : okei_units)
    if (u.code == code) return &u;
  return nullptr;
}

using attributes = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// Indented XML text in UTF-8. With cp1251 set, characters windows-1251 cannot hold are written
// as character references so that the final conversion loses nothing.
class xml_out {
 public:
  explicit xml_out(bool cp1251) : cp1251_(cp1251) {}

  void raw(std::string_view s) { out_ += s; }
  void open(std::string_view name, attributes attrs = {}) {
    start_tag(name, attrs);
    out_ += '>';
    ++depth_;
  }
  void close(std::string_view name) {
    --depth_;
    indent();
    out_ += "</";
    out_ += name;
    out_ += '>';
  }
  void leaf(std::string_view name, std::string_view text, attributes attrs = {}) {
    start_tag(name, attrs);
    if (text.empty()) {
      out_ += "/>";
      return;
    }
    out_ += '>';
    escape(text, false, name);
    out_ += "</";
    out_ += name;
    out_ += '>';
  }
  void leaf_if(std::string_view name, std::string_view text) {
    if (!text.empty()) leaf(name, text);
  }
  std::string take() { return std::move(out_); }

 private:
  void indent() {
    out_ += '\n';
    out_.append(static_cast<std::size_t>(depth_), '\t');
  }
  void start_tag(std::string_view name, attributes attrs) {
    indent();
    out_ += '<';
    out_ += name;
    for (const auto& [key, value] : attrs) {
      out_ += ' ';
      out_ += key;
      out_ += "=\"";
      escape(value, true, name);
      out_ += '"';
    }
  }
  void escape(std::string_view s, bool attribute, std::string_view element) {
    if (find_invalid_utf8(s) != std::string_view::npos)
      throw std::invalid_argument("text of <" + std::string(element) + "> is not valid UTF-8");
    for (std::size_t i = 0; i < s.size();) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c < 0x80) {
        ++i;
        switch (c) {
          case '&': out_ += "&amp;"; break;
          case '<': out_ += "&lt;"; break;
          case '>': out_ += "&gt;"; break;
          case '"': out_ += attribute ? "&quot;" : "\""; break;
          case '\r': out_ += "&#13;"; break;
          case '\n': out_ += attribute ? "&#10;" : "\n"; break;
          case '\t': out_ += attribute ? "&#9;" : "\t"; break;
          default:
            if (c >= 0x20) out_ += static_cast<char>(c);  // other C0 controls cannot appear in XML 1.0
        }
        continue;
      }
      const std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;  // valid UTF-8, checked above
      const std::string_view seq = s.substr(i, len);
      i += len;
      if (cp1251_ && utf8_to_cp1251(seq) == "?") {
        char32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
        for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(seq[k]) & 0x3F);
        out_ += "&#" + std::to_string(static_cast<unsigned long>(cp)) + ";";
      } else {
        out_ += seq;
      }
    }
  }

  std::string out_;
  int depth_ = 0;
  bool cp1251_;
};

void write_address(xml_out& x, std::string_view element, const model::address& a) {
  if (a.presentation.empty() && a.fields.empty()) return;
  x.open(element);
  x.leaf("Представление", a.presentation);  // required by the XSD type Адрес
  for (const auto& f : a.fields) {
    x.open("АдресноеПоле");
    x.leaf("Тип", f.name);
    x.leaf("Значение", f.value);
    x.close("АдресноеПоле");
  }
  x.close(element);
}

// XSD Контрагент: Ид?, Наименование?, (РеквизитыЮрЛица | РеквизитыФизЛица), Комментарий?, Адрес?,
// Контакты?, Представители?; the document's extension appends Роль.
void write_counterparty(xml_out& x, const model::counterparty& c, const schema& s) {
  x.open("Контрагент");
  x.leaf_if("Ид", c.external_id);
  x.leaf_if("Наименование", c.name);
  if (c.legal_entity) {
    // ОфициальноеНаименование opens the РеквизитыЮрЛица group and is required there.
    x.leaf("ОфициальноеНаименование", c.official_name.empty() ? c.name : c.official_name);
    write_address(x, "ЮридическийАдрес", c.legal_address);
    x.leaf_if("ИНН", c.inn);
    x.leaf_if("КПП", c.kpp);
    // The 2.x XSDs call it ОКПО (after ОКФС); 1C's own 2.09/3.x output writes КодПоОКПО.
    x.leaf_if(s.major >= 3 ? "КодПоОКПО" : "ОКПО", c.okpo);
  } else {
    // ПолноеНаименование opens the РеквизитыФизЛица group; Bitrix writes it even when empty.
    x.leaf("ПолноеНаименование", c.full_name.empty() ? c.name : c.full_name);
    x.leaf_if("Фамилия", c.last_name);
    x.leaf_if("Имя", c.first_name);
    x.leaf_if("Отчество", c.middle_name);
    x.leaf_if("ИНН", c.inn);
    x.leaf_if("КПП", c.kpp);
    write_address(x, "АдресРегистрации", c.legal_address);
  }
  write_address(x, "Адрес", c.postal_address);
  if (!c.contacts.empty()) {
    x.open("Контакты");
    for (const auto& k : c.contacts) {
      x.open("Контакт");
      x.leaf("Тип", k.type);
      x.leaf("Значение", k.value);
      x.close("Контакт");
    }
    x.close("Контакты");
  }
  if (!c.representatives.empty()) {
    // 1C's own site example (from.xml) and Bitrix's CSaleExport nest a Контрагент with Отношение
    // first; the XSDs want Представитель{Ид, Наименование, ПолноеНаименование…, Отношение}.
    // 1C reads what Bitrix writes, so Bitrix's form wins (a known XSD deviation).
    x.open("Представители");
    for (const auto& r : c.representatives) {
      x.open("Представитель");
      x.open("Контрагент");
      x.leaf("Отношение", r.relation.empty() ? std::string_view("Контактное лицо") : r.relation);
      x.leaf_if("Ид", r.external_id);
      x.leaf_if("Наименование", r.name);
      x.close("Контрагент");
      x.close("Представитель");
    }
    x.close("Представители");
  }
  x.leaf("Роль", c.role.empty() ? std::string_view("Покупатель") : c.role);
  x.close("Контрагент");
}

void write_requisite(xml_out& x, std::string_view name, std::string_view value) {
  x.open("ЗначениеРеквизита");
  x.leaf("Наименование", name);
  x.leaf("Значение", value);
  x.close("ЗначениеРеквизита");
}

// XSD Товар (base): Ид?, Штрихкод?, Артикул?, Наименование, БазоваяЕдиница, …, ЗначенияРеквизитов?;
// the document's extension then appends ИдКаталога?, ИдКлассификатора?, ЦенаЗаЕдиницу?,
// Количество?, Сумма?, Единица?, …, Налоги?, Скидки?. Bitrix writes ЗначенияРеквизитов after Сумма;
// 1C's own documentation example (off-doc-1c orders.xml) puts it before ЦенаЗаЕдиницу, as here.
void write_line(xml_out& x, const model::order_line& l) {
  x.open("Товар");
  x.leaf("Ид", l.offer_external_id);
  x.leaf_if("Артикул", l.sku);
  x.leaf("Наименование", l.name);
  const okei_unit* u = find_okei(l.unit_code);
  if (!l.unit_code.empty() && u)
    x.leaf("БазоваяЕдиница", l.unit,
           {{"Код", l.unit_code}, {"НаименованиеПолное", u->full_name}, {"МеждународноеСокращение", u->international}});
  else if (!l.unit_code.empty())
    x.leaf("БазоваяЕдиница", l.unit, {{"Код", l.unit_code}});
  else
    x.leaf("БазоваяЕдиница", l.unit);
  // A service keeps 1C's word for it even when the caller left the defaults.
  const std::string_view kind = l.service && l.item_kind == "Товар" ? "Услуга" : std::string_view(l.item_kind);
  const std::string_view type = l.service && l.item_type == "Товар" ? "Услуга" : std::string_view(l.item_type);
  x.open("ЗначенияРеквизитов");
  write_requisite(x, "ВидНоменклатуры", kind);
  write_requisite(x, "ТипНоменклатуры", type);
  for (const auto& r : l.requisites)
    if (r.name != "ВидНоменклатуры" && r.name != "ТипНоменклатуры") write_requisite(x, r.name, r.value);
  x.close("ЗначенияРеквизитов");
  x.leaf_if("ЦенаЗаЕдиницу", l.price);
  x.leaf_if("Количество", l.quantity);
  x.leaf_if("Сумма", l.amount);
  if (!l.discount.empty()) {
    x.open("Скидки");
    x.open("Скидка");
    x.leaf("Наименование", "Скидка");
    x.leaf("Сумма", l.discount);
    x.leaf("УчтеноВСумме", "true");  // Сумма is after the discount, as Bitrix writes it
    x.close("Скидка");
    x.close("Скидки");
  }
  x.close("Товар");
}

// XSD Документ (and ПодчиненныйДокумент, the same sequence without its own subordinates): Ид,
// Номер, Дата, ХозОперация, Роль, Валюта, Курс, Сумма, Контрагенты, Время?, СрокПлатежа?,
// Комментарий?, Налоги?, Скидки?, ДопРасходы?, Склады?, Товары?, ЗначенияРеквизитов?,
// Подписанты?, ПодчиненныеДокументы? (2.10).
void write_document(xml_out& x, std::string_view element, const model::document& d, const schema& s,
                    bool nest_subordinates) {
  x.open(element);
  x.leaf("Ид", d.external_id);
  // НомерВерсии, ПометкаУдаления, Номер1С, Дата1С are not in any XSD; the Bitrix module and UT 11
  // write them in these places (documents-example.xml). Only written when set.
  x.leaf_if("НомерВерсии", d.version);
  if (d.deleted) x.leaf("ПометкаУдаления", "true");
  x.leaf("Номер", d.number);
  x.leaf_if("Номер1С", d.erp_number);
  x.leaf("Дата", d.date);
  x.leaf_if("Дата1С", d.erp_date);
  x.leaf("ХозОперация", d.operation.empty() ? std::string_view("Заказ товара") : d.operation);
  // Required in Документ, optional in ПодчиненныйДокумент; an empty value could not be valid anyway.
  x.leaf_if("Роль", d.role);
  x.leaf_if("Валюта", d.currency);
  x.leaf_if("Курс", d.rate);
  x.leaf_if("Сумма", d.total);
  if (!d.counterparties.empty()) {
    x.open("Контрагенты");
    for (const auto& c : d.counterparties) write_counterparty(x, c, s);
    x.close("Контрагенты");
  }
  x.leaf_if("Время", d.time);
  x.leaf_if("Комментарий", d.comment);
  if (!d.lines.empty()) {
    x.open("Товары");
    for (const auto& l : d.lines) write_line(x, l);
    x.close("Товары");
  }
  if (!d.requisites.empty()) {
    x.open("ЗначенияРеквизитов");
    for (const auto& r : d.requisites) write_requisite(x, r.name, r.value);
    x.close("ЗначенияРеквизитов");
  }
  if (nest_subordinates && !d.subordinates.empty()) {
    x.open("ПодчиненныеДокументы");
    for (const auto& sub : d.subordinates) write_document(x, "ПодчиненныйДокумент", sub, s, false);
    x.close("ПодчиненныеДокументы");
  }
  x.close(element);
}

std::string now_local() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return buf;
}

}  // namespace

std::string write_orders(const std::vector<model::document>& orders, const order_write_options& options) {
  const bool cp1251 = is_cp1251(options);
  const schema s = parse_version(options.schema_version);
  const bool container = options.layout == order_layout::container || s.major >= 3;
  const std::string generated_at = options.generated_at.empty() ? now_local() : options.generated_at;

  xml_out x(cp1251);
  x.raw(cp1251 ? "<?xml version=\"1.0\" encoding=\"windows-1251\"?>" : "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
  const std::string_view ns = namespace_for(s);
  if (ns.empty())
    x.open("КоммерческаяИнформация", {{"ВерсияСхемы", options.schema_version}, {"ДатаФормирования", generated_at}});
  else
    x.open("КоммерческаяИнформация",
           {{"xmlns", ns}, {"ВерсияСхемы", options.schema_version}, {"ДатаФормирования", generated_at}});
  for (const auto& order : orders) {
    if (container) {
      // 3.x: the order, then the documents based on it, in one Контейнер (FORMAT.md §6.4).
      x.open("Контейнер");
      write_document(x, "Документ", order, s, false);
      for (const auto& sub : order.subordinates) write_document(x, "Документ", sub, s, false);
      x.close("Контейнер");
    } else {
      write_document(x, "Документ", order, s, at_least(s, 2, 10));
    }
  }
  x.close("КоммерческаяИнформация");
  x.raw("\n");
  std::string out = x.take();
  return cp1251 ? utf8_to_cp1251(out) : out;
}

std::string content_type_for(const order_write_options& options) {
  return is_cp1251(options) ? "application/xml; charset=windows-1251" : "application/xml; charset=utf-8";
}

}  // namespace obmen::commerceml
