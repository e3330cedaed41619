// МойСклад JSON: the body parsed as the client parses it (nlohmann, no exceptions), then every
// decoder of adapters/moysklad/decode.hpp run on it and on each element of its "rows" (list
// responses), with lookups filled from the same body; only decode_error is expected. Every
// number and string in the body also goes through the scalar codecs, which must round-trip:
// kopecks → decimal text → kopecks, MSK → UTC → MSK → UTC.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/moysklad/decode.hpp"
#include "fuzz/fuzz_target.hpp"

namespace {

using nlohmann::json;
using obmen::fuzz::expect;
namespace ms = obmen::moysklad;

template <class F>
void tolerate(F f) {
  try {
    f();
  } catch (const ms::decode_error&) {
  }
}

void check_number(const json& v) {
  std::string text;
  tolerate([&] { text = ms::kopecks_to_decimal(v); });
  tolerate([&] { ms::quantity_to_decimal(v); });
  if (!v.is_number_integer() || text.empty()) return;
  const bool fits = v.is_number_unsigned() ? v.get<std::uint64_t>() <= INT64_MAX : true;
  if (!fits) return;
  const std::int64_t k = v.get<std::int64_t>();
  std::int64_t back = 0;
  try {
    back = ms::decimal_to_kopecks(text);
  } catch (const ms::decode_error& e) {
    throw obmen::fuzz::finding(std::to_string(k) + " kopecks → '" + text + "' does not read back: " + e.what());
  }
  expect(back == k, std::to_string(k) + " kopecks → '" + text + "' → " + std::to_string(back));
}

void check_string(const std::string& s) {
  tolerate([&] { ms::decimal_to_kopecks(s); });
  tolerate([&] { ms::id_from_href(s); });
  ms::url_encode(s);
  if (const auto utc = ms::msk_to_utc(s)) {
    const auto msk = ms::utc_to_msk(*utc);
    expect(msk.has_value(), "msk_to_utc('" + s + "') = '" + *utc + "', which utc_to_msk rejects");
    expect(ms::msk_to_utc(*msk) == utc, "MSK '" + s + "' → UTC '" + *utc + "' → MSK '" + *msk + "' changes");
  }
  if (const auto msk = ms::utc_to_msk(s))
    expect(ms::msk_to_utc(*msk).has_value(), "utc_to_msk('" + s + "') = '" + *msk + "', which msk_to_utc rejects");
  if (const auto t = ms::parse_msk(s)) {
    const std::string back = ms::to_msk(*t);
    expect(ms::parse_msk(back).has_value(), "to_msk(parse_msk('" + s + "')) = '" + back + "' does not parse");
    if (s.size() >= 19 && s[16] == ':')
      expect(back == s.substr(0, 19), "to_msk(parse_msk('" + s + "')) = '" + back + "'");
  }
}

// Every number and string in the body, without recursion (the body may nest deeply).
void check_scalars(const json& body) {
  std::vector<const json*> todo{&body};
  std::size_t seen = 0;
  while (!todo.empty() && seen++ < 256) {
    const json* v = todo.back();
    todo.pop_back();
    if (v->is_number()) check_number(*v);
    else if (v->is_string()) check_string(v->get_ref<const std::string&>());
    else if (v->is_structured())
      for (const auto& child : *v) todo.push_back(&child);
  }
}

void decode_row(const json& row, const ms::lookups& l) {
  tolerate([&] { ms::decode_folder(row); });
  tolerate([&] { ms::decode_product(row, l); });
  tolerate([&] { ms::decode_variant(row, l); });
  tolerate([&] { ms::decode_price_type(row); });
  tolerate([&] { ms::decode_store(row); });
  tolerate([&] { ms::decode_counterparty(row); });
  tolerate([&] { ms::decode_customer_order(row, l); });
  tolerate([&] { ms::decode_invoice_out(row, l); });
  tolerate([&] { ms::decode_demand(row, l); });
  tolerate([&] { ms::linked_order_id(row); });
  tolerate([&] { ms::decode_sale_prices(row, l); });
  tolerate([&] { ms::decode_attribute_defs(row); });
  tolerate([&] { ms::ref_id(&row, "ref"); });
  if (const auto* sale = row.is_object() && row.contains("salePrices") ? &row["salePrices"] : nullptr)
    tolerate([&] { ms::decode_sale_prices(*sale, l); });
}

}  // namespace

OBMEN_FUZZ_TARGET(moysklad) {
  const json body = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return;
  ms::lookups l;
  const json* rows = body.is_object() && body.contains("rows") ? &body["rows"] : &body;
  tolerate([&] { ms::add_uoms(l, *rows); });
  tolerate([&] { ms::add_currencies(l, *rows); });
  tolerate([&] { ms::add_states(l, body); });
  decode_row(body, l);
  if (rows->is_array()) {
    std::vector<std::string> warnings;
    tolerate([&] {
      ms::decode_rows<ms::decoded_product>(*rows, "product", "entity/product", 1,
                                           [&](const json& r) { return ms::decode_product(r, l); }, warnings);
    });
    for (const auto& r : *rows) decode_row(r, l);
  }
  std::vector<std::string> warnings;
  tolerate([&] { ms::decode_stock_current(body, warnings); });
  tolerate([&] { ms::parse_webhook(body); });
  tolerate([&] { ms::parse_webhookstock(body); });
  ms::error_message(body);
  tolerate([&] { ms::row_label(body, "product", "entity/product", 1); });
  check_scalars(body);
}
