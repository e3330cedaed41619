#pragma once
// CommerceML document files 1C → site (sale/file: orders with status requisites, payments,
// shipments) and the site's own query answers read back; also counterparty files
// (КоммерческаяИнформация/Контрагенты, Bitrix module contragents___*.xml).
// Pure: reads the given file or buffer only. Whole-document parse (these files are small).
// Runs on the calling thread; blocks on file I/O.
//
// Elements are matched by local name, whatever the namespace. UTF-8 with or without BOM and
// windows-1251 (by the XML declaration) are accepted; strings in the model are UTF-8, trimmed.
// Money and quantities go through model::normalize_decimal; an empty element counts as absent,
// a value that is not a number is a parse_error at its element. Malformed XML, invalid UTF-8, an
// unsupported encoding, elements nested deeper than 256 levels or a root other than
// КоммерческаяИнформация throw parse_error with file:line:col (columns count characters).
//
// Filling the model — a document says only what the file says: role, currency and rate are
// empty when the file has no Роль / Валюта / Курс (the model's defaults are for writing).
//  * Document: Ид, Номер, Дата, Время, ХозОперация, Роль, Валюта, Курс, Сумма, Комментарий,
//    НомерВерсии, ПометкаУдаления, Номер1С, Дата1С, ОснованиеДокумента; requisites in file order,
//    one per Значение. The 2.03 requisites "Номер по 1С" / "Дата по 1С" fill erp_number / erp_date
//    when the elements are absent, and requisite ПометкаУдаления=true sets deleted (the requisites
//    stay in the list too). Subordinates (2.10 ПодчиненныеДокументы, or a Контейнер's 2nd+
//    documents after an order) get base_document = the order's Ид unless the file names one.
//    Налоги, Склады, Скидки of the document and 2.09 Оплаты are not in the model and are skipped.
//  * Line: price from ЦенаЗаЕдиницу or Цена (UT 11 + Bitrix module); unit from БазоваяЕдиница
//    (text, else @НаименованиеКраткое; @Код) or, without it, Единица{НаименованиеКраткое, Код};
//    discount = the exact sum of Скидки/Скидка/Сумма; requisites ВидНоменклатуры / ТипНоменклатуры
//    go to item_kind / item_type (default "Товар"), the rest to requisites; service when
//    ТипНоменклатуры is "Услуга" or Ид is ORDER_DELIVERY.
//  * Counterparty: legal_entity unless it lacks ОфициальноеНаименование and has a person's field
//    (ПолноеНаименование, Фамилия, Имя, Отчество, АдресРегистрации); legal_address from
//    ЮридическийАдрес or АдресРегистрации; okpo from КодПоОКПО or ОКПО; contact type from Тип or
//    КонтактВид; representatives in both forms (Представитель/Контрагент{…} and
//    Представитель{Отношение, Ид, Наименование}); active=false on ПометкаУдаления=true.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "commerceml/reader.hpp"
#include "model/order.hpp"

namespace obmen::commerceml {

struct documents_file {
  std::string schema_version, encoding;
  std::vector<model::document> documents;        // every Документ (under root, or under Контейнер; a Контейнер's 2nd+ documents become subordinates of its first when the first is an order)
  std::vector<model::counterparty> counterparties; // root-level Контрагенты/Контрагент
};

documents_file read_documents_file(const std::filesystem::path&);   // throws commerceml::parse_error (reader.hpp) with file:line:col
documents_file read_documents_buffer(std::string_view data, std::string_view file_name);

}  // namespace obmen::commerceml
