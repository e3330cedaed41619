#pragma once
// CommerceML order documents site → 1C: the answer to sale/query (PROTOCOL.md §5, FORMAT.md §6).
// Pure: builds the bytes in memory; no I/O. Runs on the calling thread.
//
// Element order follows the XSD sequence of complexTypes Документ, Контрагент and Товар (2.05
// and 2.08/2.10 agree on the subset written here): Ид, Номер, Дата, ХозОперация, Роль, Валюта,
// Курс, Сумма, Контрагенты, Время, Комментарий, Товары, ЗначенияРеквизитов[, ПодчиненныеДокументы];
// a Товар is Ид, Артикул, Наименование, БазоваяЕдиница, ЗначенияРеквизитов{ВидНоменклатуры,
// ТипНоменклатуры, line requisites…}, ЦенаЗаЕдиницу, Количество, Сумма, Скидки. The namespace
// matches the version's XSD: 2.05 "urn:1C.ru:commerceml2" (sic; Bitrix writes none), 2.06–2.x
// "urn:1C.ru:commerceml_2", 3.x "urn:1C.ru:commerceml_3", none before 2.05. Empty optional fields
// are not written. Output is indented with newlines and tabs like Bitrix's answer.
//
// Known deviations from the XSDs, kept because 1C's real exchange does it this way:
//  * Представители/Представитель/Контрагент{Отношение, Ид, Наименование} (Bitrix, 1C's from.xml);
//  * НомерВерсии, ПометкаУдаления, Номер1С, Дата1С when set (UT 11 / Bitrix module positions);
//  * 3.x: КодПоОКПО instead of the 2.x XSDs' ОКПО, and Контейнер (no 3.x XSD exists).
// Model fields with no place in the XSDs are not written: a legal entity's full_name, a person's
// okpo, counterparty active/version, document base_document. Defaults filled in on output: an
// empty operation is "Заказ товара", an empty counterparty role "Покупатель", an empty
// ОфициальноеНаименование / ПолноеНаименование (required by the XSD) takes the name; a service
// line whose item_kind / item_type are still "Товар" is written as "Услуга".
// Text must be valid UTF-8 (else std::invalid_argument naming the element); C0 control characters
// other than tab / newline / CR are dropped (XML 1.0 cannot carry them).
#include <string>
#include <vector>

#include "model/order.hpp"

namespace obmen::commerceml {

enum class order_layout { flat, container };  // 2.x: Документ directly under КоммерческаяИнформация; 3.x: each Документ inside <Контейнер>

struct order_write_options {
  std::string schema_version = "2.05";        // written to @ВерсияСхемы ("2.05", "2.08", "2.10", "3.1")
  order_layout layout = order_layout::flat;   // container when schema_version starts with "3"
  std::string encoding = "utf-8";             // or "windows-1251": the bytes AND the declaration match
  std::string generated_at;                   // @ДатаФормирования "YYYY-MM-DDThh:mm:ss"
};

// A complete КоммерческаяИнформация document with the given orders (may be none: header-only
// document as in bitrix-query-response-empty.xml). Returns bytes in the requested encoding.
// With order_layout::container each order is one Контейнер holding the order and then its
// subordinates as sibling Документ elements; with flat layout, subordinates are written as
// ПодчиненныеДокументы/ПодчиненныйДокумент when schema_version is 2.10 or later ("2.1" counts
// as 2.10) and dropped otherwise (no earlier 2.x version can carry them). A schema_version
// starting with "3" always uses the container layout. Characters without a windows-1251 form are
// written as character references (&#8381;) in windows-1251 output, so no text is lost. An empty
// generated_at writes the current local time. Throws std::invalid_argument for an encoding other
// than "utf-8" / "windows-1251" (also "utf8" / "cp1251", case-insensitive).
std::string write_orders(const std::vector<model::document>& orders, const order_write_options&);
std::string content_type_for(const order_write_options&);  // "application/xml; charset=utf-8" / "...windows-1251"

}  // namespace obmen::commerceml
