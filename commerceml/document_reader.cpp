#include "commerceml/document_reader.hpp"

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>
#include <utility>

#include <pugixml.hpp>

#include "commerceml/elements.hpp"
#include "commerceml/encoding.hpp"
#include "commerceml/prolog.hpp"
#include "commerceml/text_pos.hpp"

namespace obmen::commerceml {
namespace {

using detail::attribute;
using detail::child;
using detail::child_text;
using detail::is;
using detail::local_name;
using detail::text_of;

std::string attribute_text(pugi::xml_node n, std::string_view local) {
  std::string_view v = attribute(n, local).value();
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return std::string(v);
}

bool truthy(std::string_view s) {
  return s == "true" || s == "1" || s == "True" || s == "TRUE" || s == "истина" || s == "Истина";
}

// Sum of two canonical decimals (model::normalize_decimal output), exact.
model::decimal add_decimal(std::string_view a, std::string_view b) {
  struct parts {
    bool negative;
    std::string int_part, frac_part;
  };
  const auto split = [](std::string_view v) {
    parts p{false, {}, {}};
    if (!v.empty() && v.front() == '-') { p.negative = true; v.remove_prefix(1); }
    const std::size_t dot = v.find('.');
    p.int_part = std::string(v.substr(0, dot));
    if (dot != std::string_view::npos) p.frac_part = std::string(v.substr(dot + 1));
    return p;
  };
  parts x = split(a), y = split(b);
  const std::size_t frac = std::max(x.frac_part.size(), y.frac_part.size());
  const std::size_t whole = std::max(x.int_part.size(), y.int_part.size());
  const auto digits = [&](const parts& p) {
    return std::string(whole - p.int_part.size(), '0') + p.int_part + p.frac_part +
           std::string(frac - p.frac_part.size(), '0');
  };
  std::string dx = digits(x), dy = digits(y);  // same length, most significant first
  bool negative = x.negative;
  std::string sum(dx.size() + 1, '0');
  if (x.negative == y.negative) {
    int carry = 0;
    for (std::size_t i = dx.size(); i-- > 0;) {
      const int d = (dx[i] - '0') + (dy[i] - '0') + carry;
      sum[i + 1] = static_cast<char>('0' + d % 10);
      carry = d / 10;
    }
    sum[0] = static_cast<char>('0' + carry);
  } else {
    if (dx < dy) { std::swap(dx, dy); negative = y.negative; }
    int borrow = 0;
    for (std::size_t i = dx.size(); i-- > 0;) {
      int d = (dx[i] - '0') - (dy[i] - '0') - borrow;
      borrow = d < 0;
      if (d < 0) d += 10;
      sum[i + 1] = static_cast<char>('0' + d);
    }
  }
  std::string int_part = sum.substr(0, sum.size() - frac);
  const std::string frac_part = sum.substr(sum.size() - frac);
  const std::size_t first = int_part.find_first_not_of('0');
  int_part = first == std::string::npos ? "0" : int_part.substr(first);
  std::string out = int_part;
  if (frac > 0) out += "." + frac_part;
  if (negative && out.find_first_not_of("0.") != std::string::npos) out.insert(0, "-");
  return out;
}

class document_parser {
 public:
  document_parser(std::string_view file_name, detail::position_map map)
      : file_name_(file_name), map_(std::move(map)) {}

  model::document document(pugi::xml_node n) const {
    model::document d;
    // The model's defaults are for writing; a document read back says only what the file says.
    d.role.clear();
    d.currency.clear();
    d.rate.clear();
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      const std::string_view name = local_name(c);
      if (name == "Ид") d.external_id = text_of(c);
      else if (name == "Номер") d.number = text_of(c);
      else if (name == "Дата") d.date = text_of(c);
      else if (name == "Время") d.time = text_of(c);
      else if (name == "ХозОперация") d.operation = text_of(c);
      else if (name == "Роль") d.role = text_of(c);
      else if (name == "Валюта") d.currency = text_of(c);
      else if (name == "Курс") d.rate = number(c, "Курс");
      else if (name == "Сумма") d.total = number(c, "Сумма");
      else if (name == "Комментарий") d.comment = text_of(c);
      else if (name == "НомерВерсии") d.version = text_of(c);
      else if (name == "ПометкаУдаления") d.deleted = truthy(text_of(c));
      else if (name == "Номер1С") d.erp_number = text_of(c);
      else if (name == "Дата1С") d.erp_date = text_of(c);
      else if (name == "ОснованиеДокумента") {
        d.base_document = text_of(c);
        if (d.base_document.empty()) d.base_document = child_text(c, "Ид");
        if (d.base_document.empty()) d.base_document = child_text(c, "Номер");
      } else if (name == "Контрагенты") {
        for (pugi::xml_node k = c.first_child(); k; k = k.next_sibling())
          if (is(k, "Контрагент")) d.counterparties.push_back(counterparty(k));
      } else if (name == "Товары") {
        for (pugi::xml_node t = c.first_child(); t; t = t.next_sibling())
          if (is(t, "Товар")) d.lines.push_back(line(t));
      } else if (name == "ЗначенияРеквизитов") {
        requisites(c, d.requisites);
      } else if (name == "ПодчиненныеДокументы") {
        for (pugi::xml_node s = c.first_child(); s; s = s.next_sibling())
          if (is(s, "ПодчиненныйДокумент")) d.subordinates.push_back(document(s));
      }
    }
    // 2.03 / off-doc style: the 1C number, date and deletion mark travel as requisites.
    for (const auto& r : d.requisites) {
      if (r.name == "Номер по 1С" && d.erp_number.empty()) d.erp_number = r.value;
      else if (r.name == "Дата по 1С" && d.erp_date.empty()) d.erp_date = r.value;
      else if (r.name == "ПометкаУдаления" && truthy(r.value)) d.deleted = true;
    }
    for (auto& s : d.subordinates) adopt(d, s);
    return d;
  }

  model::counterparty counterparty(pugi::xml_node n) const {
    model::counterparty c;
    bool official = false, personal = false;
    for (pugi::xml_node e = n.first_child(); e; e = e.next_sibling()) {
      if (e.type() != pugi::node_element) continue;
      const std::string_view name = local_name(e);
      if (name == "Ид") c.external_id = text_of(e);
      else if (name == "Наименование") c.name = text_of(e);
      else if (name == "Роль") c.role = text_of(e);
      else if (name == "ОфициальноеНаименование") { c.official_name = text_of(e); official = true; }
      else if (name == "ПолноеНаименование") { c.full_name = text_of(e); personal = true; }
      else if (name == "Фамилия") { c.last_name = text_of(e); personal = true; }
      else if (name == "Имя") { c.first_name = text_of(e); personal = true; }
      else if (name == "Отчество") { c.middle_name = text_of(e); personal = true; }
      else if (name == "ИНН") c.inn = text_of(e);
      else if (name == "КПП") c.kpp = text_of(e);
      else if (name == "КодПоОКПО" || name == "ОКПО") c.okpo = text_of(e);
      else if (name == "ЮридическийАдрес") c.legal_address = address(e);
      else if (name == "АдресРегистрации") { c.legal_address = address(e); personal = true; }
      else if (name == "Адрес") c.postal_address = address(e);
      else if (name == "Контакты") {
        for (pugi::xml_node k = e.first_child(); k; k = k.next_sibling()) {
          if (!is(k, "Контакт")) continue;
          model::contact ct;
          ct.type = child_text(k, "Тип");
          if (ct.type.empty()) ct.type = child_text(k, "КонтактВид");
          ct.value = child_text(k, "Значение");
          c.contacts.push_back(std::move(ct));
        }
      } else if (name == "Представители") {
        for (pugi::xml_node p = e.first_child(); p; p = p.next_sibling()) {
          if (!is(p, "Представитель")) continue;
          // Bitrix / 1C's site example nest a Контрагент; UT 11 writes the fields directly.
          const pugi::xml_node inner = child(p, "Контрагент");
          const pugi::xml_node src = inner ? inner : p;
          c.representatives.push_back({child_text(src, "Отношение"), child_text(src, "Ид"), child_text(src, "Наименование")});
        }
      } else if (name == "ПометкаУдаления") {
        if (truthy(text_of(e))) c.active = false;
      } else if (name == "НомерВерсии") {
        c.version = text_of(e);
      }
    }
    // ОфициальноеНаименование marks a legal entity (contragents files give legal entities an
    // АдресРегистрации too); otherwise the person's fields decide.
    c.legal_entity = official || !personal;
    return c;
  }

 private:
  model::decimal number(pugi::xml_node at, std::string_view what) const {
    const std::string raw = text_of(at);
    if (raw.empty()) return {};
    if (auto d = model::normalize_decimal(raw)) return *std::move(d);
    detail::fail(file_name_, detail::node_position(at, map_),
                 "invalid number '" + raw + "' in " + std::string(what));
  }

  static model::address address(pugi::xml_node n) {
    model::address a;
    a.presentation = child_text(n, "Представление");
    for (pugi::xml_node f = n.first_child(); f; f = f.next_sibling())
      if (is(f, "АдресноеПоле")) a.fields.push_back({child_text(f, "Тип"), child_text(f, "Значение")});
    return a;
  }

  // ЗначениеРеквизита{Наименование, Значение+}: one requisite per Значение (the XSD allows several).
  static void requisites(pugi::xml_node list, std::vector<model::requisite>& out) {
    for (pugi::xml_node r = list.first_child(); r; r = r.next_sibling()) {
      if (!is(r, "ЗначениеРеквизита")) continue;
      const std::string name = child_text(r, "Наименование");
      bool any = false;
      for (pugi::xml_node v = r.first_child(); v; v = v.next_sibling())
        if (is(v, "Значение")) {
          out.push_back({name, text_of(v)});
          any = true;
        }
      if (!any) out.push_back({name, {}});
    }
  }

  model::order_line line(pugi::xml_node n) const {
    model::order_line l;
    bool base_unit = false;
    std::vector<model::decimal> discounts;
    for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      const std::string_view name = local_name(c);
      if (name == "Ид") l.offer_external_id = text_of(c);
      else if (name == "Артикул") l.sku = text_of(c);
      else if (name == "Наименование") l.name = text_of(c);
      else if (name == "БазоваяЕдиница") {
        base_unit = true;
        l.unit = text_of(c);
        if (l.unit.empty()) l.unit = attribute_text(c, "НаименованиеКраткое");
        l.unit_code = attribute_text(c, "Код");
      } else if (name == "Единица" && !base_unit) {
        // UT 11 + Bitrix module: Единица{Ид, НаименованиеКраткое, Код, НаименованиеПолное};
        // the XSD's Единица is a bare unit code.
        if (child(c, "Код") || child(c, "НаименованиеКраткое")) {
          l.unit = child_text(c, "НаименованиеКраткое");
          l.unit_code = child_text(c, "Код");
        } else if (l.unit_code.empty()) {
          l.unit_code = text_of(c);
        }
      } else if (name == "ЦенаЗаЕдиницу" || (name == "Цена" && l.price.empty())) {
        l.price = number(c, name);
      } else if (name == "Количество") l.quantity = number(c, name);
      else if (name == "Сумма") l.amount = number(c, name);
      else if (name == "Скидки") {
        for (pugi::xml_node s = c.first_child(); s; s = s.next_sibling())
          if (is(s, "Скидка"))
            if (pugi::xml_node sum = child(s, "Сумма"))
              if (auto d = number(sum, "Скидка/Сумма"); !d.empty()) discounts.push_back(std::move(d));
      } else if (name == "ЗначенияРеквизитов") {
        std::vector<model::requisite> all;
        requisites(c, all);
        for (auto& r : all) {
          if (r.name == "ВидНоменклатуры") l.item_kind = std::move(r.value);
          else if (r.name == "ТипНоменклатуры") l.item_type = std::move(r.value);
          else l.requisites.push_back(std::move(r));
        }
      }
    }
    for (const auto& d : discounts) l.discount = l.discount.empty() ? d : add_decimal(l.discount, d);
    l.service = l.item_type == "Услуга" || l.offer_external_id == "ORDER_DELIVERY";
    return l;
  }

  // A subordinate refers to its order unless the file names another base.
  static void adopt(const model::document& order, model::document& sub) {
    if (sub.base_document.empty()) sub.base_document = order.external_id;
  }

 public:
  static void attach(model::document& order, model::document sub) {
    adopt(order, sub);
    order.subordinates.push_back(std::move(sub));
  }

 private:
  std::string file_name_;
  detail::position_map map_;
};

// The first element nested deeper than max_element_depth, in document order.
struct depth_probe : pugi::xml_tree_walker {
  pugi::xml_node too_deep;
  bool for_each(pugi::xml_node& n) override {
    if (n.type() == pugi::node_element && static_cast<std::size_t>(depth()) + 1 > detail::max_element_depth) {
      too_deep = n;
      return false;
    }
    return true;
  }
};

}  // namespace

documents_file read_documents_buffer(std::string_view data, std::string_view file_name) {
  using namespace detail;
  const prolog pro = detect_prolog(data.substr(0, prolog_head_size), file_name);
  const std::string_view body = data.substr(pro.bom ? 3 : 0);

  std::string text = utf8_document(body, pro, file_name);

  const position_map map = [&text](std::size_t offset) {
    return advance({}, std::string_view(text).substr(0, std::min(offset, text.size())));
  };
  pugi::xml_document doc;
  const pugi::xml_parse_result result =
      doc.load_buffer(text.data(), text.size(), pugi::parse_default, pugi::encoding_utf8);
  const pugi::xml_node root = doc.document_element();
  const auto root_tag_complete = [&] {
    if (result) return true;
    const std::size_t from = static_cast<std::size_t>(root.offset_debug());
    const std::size_t to = static_cast<std::size_t>(result.offset);
    return to > from && text.find('>', from) < to;
  };
  if (root && local_name(root) != "КоммерческаяИнформация" && root_tag_complete())
    fail(file_name, node_position(root, map),
         "not a CommerceML document: root element is '" + std::string(local_name(root)) + "'");
  if (!result)
    fail(file_name, map(static_cast<std::size_t>(result.offset)), std::string("malformed XML: ") + result.description());
  if (!root) fail(file_name, map(text.size()), "no root element");
  depth_probe probe;
  doc.traverse(probe);
  if (probe.too_deep)
    fail(file_name, node_position(probe.too_deep, map),
         "elements nested deeper than " + std::to_string(max_element_depth) + " levels");

  documents_file out;
  out.schema_version = attribute_text(root, "ВерсияСхемы");
  out.encoding = pro.encoding;
  const document_parser parser(file_name, map);
  for (pugi::xml_node s = root.first_child(); s; s = s.next_sibling()) {
    if (s.type() != pugi::node_element) continue;
    const std::string_view name = local_name(s);
    if (name == "Документ") {
      out.documents.push_back(parser.document(s));
    } else if (name == "Контейнер") {
      std::vector<model::document> docs;
      for (pugi::xml_node d = s.first_child(); d; d = d.next_sibling())
        if (is(d, "Документ")) docs.push_back(parser.document(d));
      if (!docs.empty() && docs.front().operation == "Заказ товара") {
        for (std::size_t i = 1; i < docs.size(); ++i) document_parser::attach(docs.front(), std::move(docs[i]));
        out.documents.push_back(std::move(docs.front()));
      } else {
        for (auto& d : docs) out.documents.push_back(std::move(d));
      }
    } else if (name == "Контрагенты") {
      for (pugi::xml_node k = s.first_child(); k; k = k.next_sibling())
        if (is(k, "Контрагент")) out.counterparties.push_back(parser.counterparty(k));
    }
  }
  return out;
}

documents_file read_documents_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw std::filesystem::filesystem_error("cannot open", file, std::error_code(errno, std::generic_category()));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad())
    throw std::filesystem::filesystem_error("cannot read", file, std::error_code(errno, std::generic_category()));
  return read_documents_buffer(s.str(), file.string());
}

}  // namespace obmen::commerceml
