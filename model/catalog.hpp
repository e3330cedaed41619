#pragma once
// The canonical catalog model: plain structs that every inbound adapter produces (CommerceML
// from 1C, JSON from МойСклад) and the mapping + portal store consume. No wire-format details
// and no portal codes live here: identifiers are the source's own external ids.
//
// Money and quantities are exact decimal text ("1234.50", "-3", "0.125"): '.' separator, no
// thousands separators, optional leading '-'. Readers normalise to this form (see
// model::normalize_decimal) and reject anything else, so no value is ever rounded through a double.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace obmen::model {

using decimal = std::string;

// Returns the canonical decimal text of s ("1 234,50" → "1234.50", "+7" → "7", " 3.0 " → "3.0"),
// or nullopt when s is not a number. Accepts ',' as the decimal separator and spaces / NBSP as
// thousands separators, as 1C writes them in some configurations.
std::optional<decimal> normalize_decimal(std::string_view s);

struct category {                      // Классификатор/Группы/Группа (nested), МойСклад productfolder
  std::string external_id;
  std::string parent_external_id;      // empty for a root group
  std::string name;
  std::string description;
  bool active = true;                  // false when ПометкаУдаления=true
};

struct attribute_option {              // ВариантыЗначений/Справочник
  std::string external_id;             // ИдЗначения
  std::string value;                   // Значение
};

struct attribute_def {                 // Классификатор/Свойства/Свойство
  std::string external_id;
  std::string name;
  std::string value_type;              // Строка | Число | Время | Справочник (as sent; may be empty)
  std::vector<attribute_option> options;
  bool for_offers = false;             // declared in ПакетПредложений/Классификатор or ДляПредложений
  bool active = true;
};

struct attribute_value {               // ЗначенияСвойств/ЗначенияСвойства
  std::string attribute_id;            // → attribute_def::external_id
  std::vector<std::string> values;     // raw Значение texts; for Справочник these are option ids
};

struct characteristic {                // ХарактеристикиТовара/ХарактеристикаТовара
  std::string external_id;             // may be empty
  std::string name;
  std::string value;
};

struct requisite {                     // ЗначенияРеквизитов/ЗначениеРеквизита
  std::string name;
  std::string value;
};

struct tax_rate {                      // СтавкиНалогов/СтавкаНалога
  std::string name;                    // "НДС"
  std::string rate;                    // "20", "Без налога", "10/110" — as sent
};

struct product {                       // Каталог/Товары/Товар
  std::string external_id;
  std::string version;                 // НомерВерсии, may be empty
  bool active = true;                  // false on ПометкаУдаления=true or Статус="Удален"
  std::string sku;                     // Артикул
  std::string barcode;                 // Штрихкод
  std::string code;                    // Код
  std::string name;
  std::string full_name;               // ПолноеНаименование or requisite "Полное наименование"
  std::string description;
  std::string unit;                    // БазоваяЕдиница text or @НаименованиеКраткое ("шт")
  std::string unit_code;               // БазоваяЕдиница/@Код, trimmed ("796")
  std::vector<std::string> category_ids;  // Группы/Ид*
  std::vector<std::string> images;     // Картинка* in document order, paths as sent
  std::string manufacturer;            // Изготовитель/Наименование
  std::vector<attribute_value> attributes;
  std::vector<tax_rate> taxes;
  std::vector<requisite> requisites;
  std::vector<characteristic> characteristics;
};

struct price_type {                    // ТипыЦен/ТипЦены
  std::string external_id;
  std::string name;
  std::string currency;                // Валюта, may be empty
};

struct warehouse {                     // Склады/Склад
  std::string external_id;
  std::string name;
  bool active = true;
};

struct price {                         // Цены/Цена
  std::string price_type_id;           // ИдТипаЦены → price_type::external_id
  decimal value;                       // ЦенаЗаЕдиницу
  std::string currency;                // Валюта ("RUB", "руб", …) as sent
  std::string unit;                    // Единица, may be empty
  decimal coefficient;                 // Коэффициент, empty = 1
};

struct stock_level {                   // Склад@ИдСклада@КоличествоНаСкладе or Остатки/Остаток/Склад
  std::string warehouse_id;
  decimal quantity;
};

struct offer {                         // ПакетПредложений/Предложения/Предложение
  std::string external_id;             // as sent: "product", "product#characteristic" or an offer id
  std::string product_external_id;     // left of the first '#', or the whole id
  std::string characteristic_id;       // right of the first '#', empty for none
  std::string version;
  bool active = true;
  std::string name;
  std::string sku;
  std::string barcode;
  std::vector<characteristic> characteristics;
  std::vector<attribute_value> attributes;
  // nullopt = this offer element carried no such data (split files): leave what the portal has.
  std::optional<std::vector<price>> prices;
  std::optional<decimal> quantity;     // Количество (total)
  std::optional<std::vector<stock_level>> stock;
};

}  // namespace obmen::model
