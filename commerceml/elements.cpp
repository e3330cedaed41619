#include "commerceml/elements.hpp"

#include <cstring>
#include <utility>

namespace obmen::commerceml::detail {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// 1C writes "true"/"false"; accept the usual spellings of true and treat the rest as false.
bool truthy(std::string_view s) {
  s = trim(s);
  return s == "true" || s == "1" || s == "True" || s == "TRUE" || s == "истина" || s == "Истина";
}

// Single-valued fields take the first non-empty occurrence.
void set_text(std::string& field, pugi::xml_node n) {
  if (field.empty()) field = text_of(n);
}

model::decimal number(pugi::xml_node at, std::string_view raw, std::string_view what,
                      std::string_view file_name, const position_map& map) {
  if (auto d = model::normalize_decimal(raw)) return *std::move(d);
  fail(file_name, node_position(at, map), "invalid number '" + std::string(raw) + "' in " + std::string(what));
}

std::vector<model::attribute_value> attribute_values(pugi::xml_node list) {  // ЗначенияСвойств
  std::vector<model::attribute_value> out;
  for (pugi::xml_node v = list.first_child(); v; v = v.next_sibling()) {
    if (!is(v, "ЗначенияСвойства")) continue;
    model::attribute_value av;
    for (pugi::xml_node c = v.first_child(); c; c = c.next_sibling()) {
      if (is(c, "Ид")) set_text(av.attribute_id, c);
      else if (is(c, "Значение"))
        if (std::string s = text_of(c); !s.empty()) av.values.push_back(std::move(s));
    }
    out.push_back(std::move(av));
  }
  return out;
}

std::vector<model::characteristic> characteristics(pugi::xml_node list) {  // ХарактеристикиТовара
  std::vector<model::characteristic> out;
  for (pugi::xml_node c = list.first_child(); c; c = c.next_sibling()) {
    if (!is(c, "ХарактеристикаТовара")) continue;
    out.push_back({child_text(c, "Ид"), child_text(c, "Наименование"), child_text(c, "Значение")});
  }
  return out;
}

model::product read_product(pugi::xml_node n) {
  model::product p;
  if (trim(attribute(n, "Статус").value()) == "Удален") p.active = false;
  for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
    if (c.type() != pugi::node_element) continue;
    const std::string_view name = local_name(c);
    if (name == "Ид") set_text(p.external_id, c);
    else if (name == "НомерВерсии") set_text(p.version, c);
    else if (name == "ПометкаУдаления") { if (truthy(text_of(c))) p.active = false; }
    else if (name == "Артикул") set_text(p.sku, c);
    else if (name == "Штрихкод") set_text(p.barcode, c);
    else if (name == "Код") set_text(p.code, c);
    else if (name == "Наименование") set_text(p.name, c);
    else if (name == "ПолноеНаименование") set_text(p.full_name, c);
    else if (name == "Описание") set_text(p.description, c);
    else if (name == "БазоваяЕдиница") {
      if (p.unit.empty()) {
        p.unit = text_of(c);
        if (p.unit.empty()) p.unit = trim(attribute(c, "НаименованиеКраткое").value());
      }
      if (p.unit_code.empty()) p.unit_code = trim(attribute(c, "Код").value());
    } else if (name == "Группы") {
      for (pugi::xml_node g = c.first_child(); g; g = g.next_sibling())
        if (is(g, "Ид"))
          if (std::string id = text_of(g); !id.empty()) p.category_ids.push_back(std::move(id));
    } else if (name == "Картинка") {
      if (std::string s = text_of(c); !s.empty()) p.images.push_back(std::move(s));
    } else if (name == "Изготовитель") {
      if (p.manufacturer.empty()) p.manufacturer = child_text(c, "Наименование");
    } else if (name == "ЗначенияСвойств") {
      for (auto& v : attribute_values(c)) p.attributes.push_back(std::move(v));
    } else if (name == "СтавкиНалогов") {
      for (pugi::xml_node t = c.first_child(); t; t = t.next_sibling())
        if (is(t, "СтавкаНалога")) p.taxes.push_back({child_text(t, "Наименование"), child_text(t, "Ставка")});
    } else if (name == "ЗначенияРеквизитов") {
      for (pugi::xml_node r = c.first_child(); r; r = r.next_sibling())
        if (is(r, "ЗначениеРеквизита"))
          p.requisites.push_back({child_text(r, "Наименование"), child_text(r, "Значение")});
    } else if (name == "ХарактеристикиТовара") {
      for (auto& ch : characteristics(c)) p.characteristics.push_back(std::move(ch));
    }
  }
  if (p.full_name.empty())
    for (const auto& r : p.requisites)
      if (r.name == "Полное наименование" && !r.value.empty()) { p.full_name = r.value; break; }
  return p;
}

// <Склад ИдСклада=".." КоличествоНаСкладе=".."/>, or the {Ид, Количество} child form that
// ИзмененияПакетаПредложений/…/Склады uses.
std::optional<model::stock_level> stock_from_warehouse_element(pugi::xml_node s, std::string_view file_name,
                                                               const position_map& map) {
  pugi::xml_attribute id = attribute(s, "ИдСклада");
  pugi::xml_attribute qty = attribute(s, "КоличествоНаСкладе");
  if (id || qty)
    return model::stock_level{std::string(trim(id.value())),
                              number(s, qty.value(), "Склад/@КоличествоНаСкладе", file_name, map)};
  pugi::xml_node q = child(s, "Количество");
  if (!q) return std::nullopt;
  return model::stock_level{child_text(s, "Ид"), number(q, text_of(q), "Количество", file_name, map)};
}

model::offer read_offer(pugi::xml_node n, std::string_view file_name, const position_map& map) {
  model::offer o;
  std::string characteristic_id;  // ИдХарактеристики (ИзмененияПакетаПредложений)
  if (trim(attribute(n, "Статус").value()) == "Удален") o.active = false;
  auto add_stock = [&o](model::stock_level s) {
    if (!o.stock) o.stock.emplace();
    o.stock->push_back(std::move(s));
  };
  for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling()) {
    if (c.type() != pugi::node_element) continue;
    const std::string_view name = local_name(c);
    if (name == "Ид") set_text(o.external_id, c);
    else if (name == "ИдХарактеристики") set_text(characteristic_id, c);
    else if (name == "НомерВерсии") set_text(o.version, c);
    else if (name == "ПометкаУдаления") { if (truthy(text_of(c))) o.active = false; }
    else if (name == "Наименование") set_text(o.name, c);
    else if (name == "Артикул") set_text(o.sku, c);
    else if (name == "Штрихкод") set_text(o.barcode, c);
    else if (name == "ХарактеристикиТовара") {
      for (auto& ch : characteristics(c)) o.characteristics.push_back(std::move(ch));
    } else if (name == "ЗначенияСвойств") {
      for (auto& v : attribute_values(c)) o.attributes.push_back(std::move(v));
    } else if (name == "Цены") {
      if (!o.prices) o.prices.emplace();
      for (pugi::xml_node pr = c.first_child(); pr; pr = pr.next_sibling()) {
        if (!is(pr, "Цена")) continue;
        model::price p;
        p.price_type_id = child_text(pr, "ИдТипаЦены");
        pugi::xml_node value = child(pr, "ЦенаЗаЕдиницу");
        p.value = number(value ? value : pr, text_of(value), "ЦенаЗаЕдиницу", file_name, map);
        p.currency = child_text(pr, "Валюта");
        p.unit = child_text(pr, "Единица");
        if (pugi::xml_node k = child(pr, "Коэффициент"); k && !text_of(k).empty())
          p.coefficient = number(k, text_of(k), "Коэффициент", file_name, map);
        o.prices->push_back(std::move(p));
      }
    } else if (name == "Количество") {
      if (!o.quantity) o.quantity = number(c, text_of(c), "Количество", file_name, map);
    } else if (name == "Склад") {
      if (auto s = stock_from_warehouse_element(c, file_name, map)) add_stock(*std::move(s));
    } else if (name == "Склады") {
      for (pugi::xml_node s = c.first_child(); s; s = s.next_sibling())
        if (is(s, "Склад"))
          if (auto level = stock_from_warehouse_element(s, file_name, map)) add_stock(*std::move(level));
    } else if (name == "Остатки") {
      for (pugi::xml_node r = c.first_child(); r; r = r.next_sibling()) {
        if (!is(r, "Остаток")) continue;
        if (pugi::xml_node s = child(r, "Склад")) {
          pugi::xml_node q = child(s, "Количество");
          add_stock({child_text(s, "Ид"), number(q ? q : s, text_of(q), "Количество", file_name, map)});
        } else if (pugi::xml_node q = child(r, "Количество"); q && !o.quantity) {
          o.quantity = number(q, text_of(q), "Количество", file_name, map);
        }
      }
    }
  }
  if (const auto hash = o.external_id.find('#'); hash != std::string::npos) {
    o.product_external_id = o.external_id.substr(0, hash);
    o.characteristic_id = o.external_id.substr(hash + 1);
  } else {
    o.product_external_id = o.external_id;
    if (!characteristic_id.empty()) {
      // ИзмененияПакетаПредложений names the variant separately; build the usual "product#variant"
      // id so that it keys the same offer as ПакетПредложений does.
      o.characteristic_id = characteristic_id;
      o.external_id += '#';
      o.external_id += characteristic_id;
    }
  }
  return o;
}

// Классификатор/Группы: nested groups, emitted parents-first (pre-order). Iterative so that
// nesting depth never turns into call-stack depth.
void read_groups(pugi::xml_node groups, std::vector<model::category>& out) {
  struct frame {
    pugi::xml_node next;
    std::string parent;
  };
  std::vector<frame> stack{{groups.first_child(), {}}};
  while (!stack.empty()) {
    pugi::xml_node g = stack.back().next;
    if (!g) {
      stack.pop_back();
      continue;
    }
    stack.back().next = g.next_sibling();
    if (!is(g, "Группа")) continue;
    model::category c;
    c.parent_external_id = stack.back().parent;
    std::vector<pugi::xml_node> nested;
    for (pugi::xml_node f = g.first_child(); f; f = f.next_sibling()) {
      if (f.type() != pugi::node_element) continue;
      const std::string_view name = local_name(f);
      if (name == "Ид") set_text(c.external_id, f);
      else if (name == "Наименование") set_text(c.name, f);
      else if (name == "Описание") set_text(c.description, f);
      else if (name == "ПометкаУдаления") { if (truthy(text_of(f))) c.active = false; }
      else if (name == "Группы") nested.push_back(f);
    }
    const std::string id = c.external_id;
    out.push_back(std::move(c));
    for (auto it = nested.rbegin(); it != nested.rend(); ++it) stack.push_back({it->first_child(), id});
  }
}

void read_properties(pugi::xml_node props, bool for_offers, std::vector<model::attribute_def>& out) {
  for (pugi::xml_node p = props.first_child(); p; p = p.next_sibling()) {
    if (!is(p, "Свойство")) continue;
    model::attribute_def d;
    d.for_offers = for_offers;
    for (pugi::xml_node f = p.first_child(); f; f = f.next_sibling()) {
      if (f.type() != pugi::node_element) continue;
      const std::string_view name = local_name(f);
      if (name == "Ид") set_text(d.external_id, f);
      else if (name == "Наименование") set_text(d.name, f);
      else if (name == "ТипЗначений") set_text(d.value_type, f);
      else if (name == "ПометкаУдаления") { if (truthy(text_of(f))) d.active = false; }
      else if (name == "ДляПредложений") { if (truthy(text_of(f))) d.for_offers = true; }
      else if (name == "ВариантыЗначений") {
        for (pugi::xml_node v = f.first_child(); v; v = v.next_sibling()) {
          if (is(v, "Справочник")) d.options.push_back({child_text(v, "ИдЗначения"), child_text(v, "Значение")});
          else if (is(v, "Значение")) d.options.push_back({{}, text_of(v)});  // list of plain strings
        }
      }
    }
    out.push_back(std::move(d));
  }
}

}  // namespace

bool is(pugi::xml_node n, std::string_view local) {
  return n.type() == pugi::node_element && local_name(n) == local;
}

// First child element with the given local name.
pugi::xml_node child(pugi::xml_node n, std::string_view local) {
  for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling())
    if (is(c, local)) return c;
  return {};
}

std::string child_text(pugi::xml_node n, std::string_view local) { return text_of(child(n, local)); }

// Attribute by local name (1C writes them unprefixed; tolerate a prefix anyway).
pugi::xml_attribute attribute(pugi::xml_node n, std::string_view local) {
  for (pugi::xml_attribute a = n.first_attribute(); a; a = a.next_attribute())
    if (local_name(a.name()) == local) return a;
  return {};
}

void fail(std::string_view file_name, text_pos at, std::string message) {
  throw parse_error(std::string(file_name), at.line, at.column, std::move(message));
}

text_pos node_position(pugi::xml_node node, const position_map& map) {
  const std::ptrdiff_t name_offset = node.offset_debug();  // offset of the element's name
  return map(name_offset > 0 ? static_cast<std::size_t>(name_offset - 1) : 0);
}

std::string_view local_name(std::string_view qualified) {
  // Most names have no prefix: one forward memchr says so (rfind walks back byte by byte).
  if (std::memchr(qualified.data(), ':', qualified.size()) == nullptr) return qualified;
  const std::size_t colon = qualified.rfind(':');
  return colon == std::string_view::npos ? qualified : qualified.substr(colon + 1);
}

std::string text_of(pugi::xml_node n) {
  std::string out;
  for (pugi::xml_node c = n.first_child(); c; c = c.next_sibling())
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) out += c.value();
  return std::string(trim(out));
}

section_kind section_of(std::string_view local) {
  if (local == "Классификатор") return section_kind::classifier;
  if (local == "Каталог") return section_kind::catalog;
  if (local == "ПакетПредложений") return section_kind::offers;
  if (local == "ИзмененияПакетаПредложений") return section_kind::offers_changes;
  if (local == "Документ" || local == "Контейнер") return section_kind::documents;
  return section_kind::other;
}

std::string_view list_name(section_kind k) {
  switch (k) {
    case section_kind::catalog: return "Товары";
    case section_kind::offers:
    case section_kind::offers_changes: return "Предложения";
    default: return {};
  }
}

std::string_view item_name(section_kind k) {
  switch (k) {
    case section_kind::catalog: return "Товар";
    case section_kind::offers:
    case section_kind::offers_changes: return "Предложение";
    default: return {};
  }
}

void note_root(document_info& info, pugi::xml_node root) {
  info.schema_version = trim(attribute(root, "ВерсияСхемы").value());
  const std::string_view qname = root.name();
  const std::size_t colon = qname.find(':');
  const std::string xmlns_attr =
      colon == std::string_view::npos ? std::string("xmlns") : "xmlns:" + std::string(qname.substr(0, colon));
  info.xmlns = root.attribute(xmlns_attr.c_str()).value();
}

std::optional<bool> changes_flag(pugi::xml_node section) {
  if (pugi::xml_attribute a = attribute(section, "СодержитТолькоИзменения")) return truthy(a.value());
  if (pugi::xml_node c = child(section, "СодержитТолькоИзменения")) return truthy(text_of(c));
  return std::nullopt;
}

void note_section(document_info& info, section_kind kind, std::optional<bool> flag) {
  auto set = [](std::optional<bool>& field, bool value) {
    if (!field) field = value;
  };
  switch (kind) {
    case section_kind::classifier:
      info.has_classifier = true;
      set(info.classifier_changes_only, flag.value_or(false));
      break;
    case section_kind::catalog:
      info.has_catalog = true;
      set(info.catalog_changes_only, flag.value_or(false));
      break;
    case section_kind::offers:
      info.has_offers = true;
      set(info.offers_changes_only, flag.value_or(false));
      break;
    case section_kind::offers_changes:  // by definition a delta
      info.has_offers = true;
      set(info.offers_changes_only, true);
      break;
    case section_kind::documents:
      if (info.kind == document_kind::unknown) info.kind = document_kind::documents;
      break;
    case section_kind::other: break;
  }
}

void finish_info(document_info& info) {
  // UT 11 offers0_1.xml opens with a header-only top-level Классификатор; it is still an offers
  // file. Hence: a catalog makes an import, then offers win over a lone classifier.
  if (info.has_catalog) info.kind = document_kind::import;
  else if (info.has_offers) info.kind = document_kind::offers;
  else if (info.has_classifier) info.kind = document_kind::import;
}

section_processor::section_processor(catalog_sink& sink, std::size_t batch_size, std::string_view file_name)
    : sink_(sink), batch_size_(batch_size == 0 ? 1 : batch_size), file_name_(file_name) {}

void section_processor::begin(section_kind kind) { kind_ = kind; }

void section_processor::declaration(pugi::xml_node c, const position_map& map) {
  if (c.type() != pugi::node_element) return;
  const bool in_offers = kind_ == section_kind::offers || kind_ == section_kind::offers_changes;
  const std::string_view name = local_name(c);
  if (name == "Группы") read_groups(c, categories_);
  else if (name == "Свойства") read_properties(c, in_offers, attribute_defs_);
  else if (name == "ТипыЦен") {
    for (pugi::xml_node t = c.first_child(); t; t = t.next_sibling())
      if (is(t, "ТипЦены"))
        price_types_.push_back({child_text(t, "Ид"), child_text(t, "Наименование"), child_text(t, "Валюта")});
  } else if (name == "Склады") {
    for (pugi::xml_node s = c.first_child(); s; s = s.next_sibling()) {
      if (!is(s, "Склад")) continue;
      model::warehouse w{child_text(s, "Ид"), child_text(s, "Наименование")};
      if (truthy(child_text(s, "ПометкаУдаления"))) w.active = false;
      warehouses_.push_back(std::move(w));
    }
  } else if (name == "Классификатор" && in_offers) {  // offer properties, price types, warehouses
    for (pugi::xml_node f = c.first_child(); f; f = f.next_sibling()) declaration(f, map);
  }
}

void section_processor::flush_declarations() {
  if (!categories_.empty()) sink_.on_categories(std::exchange(categories_, {}));
  if (!attribute_defs_.empty()) sink_.on_attribute_defs(std::exchange(attribute_defs_, {}));
  if (!price_types_.empty()) sink_.on_price_types(std::exchange(price_types_, {}));
  if (!warehouses_.empty()) sink_.on_warehouses(std::exchange(warehouses_, {}));
}

void section_processor::item(pugi::xml_node n, const position_map& map) {
  if (kind_ == section_kind::catalog) {
    products_.push_back(read_product(n));
    if (products_.size() >= batch_size_) sink_.on_products(std::exchange(products_, {}));
  } else {
    offers_.push_back(read_offer(n, file_name_, map));
    if (offers_.size() >= batch_size_) sink_.on_offers(std::exchange(offers_, {}));
  }
}

void section_processor::flush_items() {
  if (!products_.empty()) sink_.on_products(std::exchange(products_, {}));
  if (!offers_.empty()) sink_.on_offers(std::exchange(offers_, {}));
}

}  // namespace obmen::commerceml::detail
