#pragma once
// CommerceML order documents site → 1C: the answer to sale/query (PROTOCOL.md §5, FORMAT.md §6).
// Pure: builds the bytes in memory; no I/O. Runs on the calling thread.
//
// Element order follows the XSD sequence of complexTypes Документ, Контрагент and Товар (2.05
// and 2.08/2.10 agree on the subset written here). The namespace matches the version: none is
// written by 1C-Bitrix for 2.05, but the 2.05 XSD's targetNamespace is "urn:1C.ru:commerceml2",
// 2.06+ use "urn:1C.ru:commerceml_2", 3.x "urn:1C.ru:commerceml_3". Empty optional fields are
// not written. Output is indented with newlines and tabs like Bitrix's answer.
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
// ПодчиненныеДокументы/ПодчиненныйДокумент when schema_version is 2.10 or later and dropped
// otherwise (no earlier 2.x version can carry them). Characters without a windows-1251 form
// become '?' in windows-1251 output. Throws std::invalid_argument for an encoding other than
// "utf-8" / "windows-1251" (case-insensitive).
std::string write_orders(const std::vector<model::document>& orders, const order_write_options&);
std::string content_type_for(const order_write_options&);  // "application/xml; charset=utf-8" / "...windows-1251"

}  // namespace obmen::commerceml
