#pragma once
// Mapping rules (YAML, edited by admins, reloaded on SIGHUP): how a source's price types,
// warehouses and properties become portal price-type codes, warehouse codes and product
// attribute names, and what happens to anything no rule mentions. Pure: no I/O after loading.
//
// File format (docs/mapping.md has the full reference):
//   price_types:
//     - match: { id: "bd72d8f9-..." }    # or { name: "Розничная" }; id wins over name
//       code: retail
//     - match: { name: "Закупочная" }
//       ignore: true                     # prices of this type are not imported
//   warehouses:
//     - match: { name: "Основной склад" }
//       code: main
//     - match: { id: "..." }
//       ignore: true                     # stock of this warehouse is not imported
//   properties:
//     - match: { name: "Цвет" }
//       attribute: color
//     - match: { name: "Служебное" }
//       ignore: true
//   unmapped:                            # policy per kind: import | ignore | fail (default import)
//     price_types: import                # import: code = the source's external id
//     warehouses: import                 # import: code = the source's external id
//     properties: import                 # import: attribute name = the property's name
//   statuses:                            # order status in the ERP → portal status code
//     - match: { name: "Отгружен" }      # "Статус заказа" (name) or { id: "F" } ("Статуса заказа ИД")
//       status: shipped                  # 1 to 32 of a-z and '_'; statuses cannot be ignored
//   derived_statuses:                    # applied when the ERP reports a fact but no mapped status
//     paid: paid                         # a payment date arrived (default "paid")
//     shipped: shipped                   # a shipment date arrived (default "shipped")
//     cancelled: cancelled               # Отменен / ПометкаУдаления (default "cancelled")
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/problem.hpp"

namespace obmen::mapping {

enum class policy { import, ignore, fail };

struct rule {
  std::string match_id;                // exactly one of match_id / match_name is non-empty
  std::string match_name;
  std::string target;                  // code or attribute name; empty when ignore
  bool ignore = false;
  int line = 0;                        // where the rule is, for messages
};

// What to do with one source object.
struct decision {
  enum class action { keep, skip, fail } what = action::keep;
  std::string target;                  // code / attribute name when keep
  std::string reason;                  // for skip and fail: a sentence naming the object and the rule or policy
};

class rules {
 public:
  rules() = default;                   // no rules, every policy = import

  decision price_type(std::string_view external_id, std::string_view name) const;
  decision warehouse(std::string_view external_id, std::string_view name) const;
  decision property(std::string_view external_id, std::string_view name) const;
  // An order status from the ERP (its id, e.g. "F", and/or its name, e.g. "Отгружен"). Never
  // skip or fail: a matched rule keeps its status code; an unmapped status is kept as is (target =
  // the trimmed name, or the id when there is no name) with the reason
  // "order status 'Отгружен' (id 'F') is not mapped; kept as is" for the log. Both empty: keep
  // with an empty target (no status reported).
  decision status(std::string_view id, std::string_view name) const;

  std::vector<rule> price_types, warehouses, properties;
  std::vector<rule> statuses;          // target = portal status code; never ignore
  struct derived_targets {             // portal status codes for facts the ERP reports
    std::string paid = "paid";
    std::string shipped = "shipped";
    std::string cancelled = "cancelled";
    bool operator==(const derived_targets&) const = default;
  } derived_statuses;
  policy unmapped_price_types = policy::import;
  policy unmapped_warehouses = policy::import;
  policy unmapped_properties = policy::import;
  std::filesystem::path file;          // empty for the defaults
};

struct load_result {
  std::optional<rules> value;
  std::vector<config::problem> problems;
  bool ok() const { return value.has_value() && problems.empty(); }
};

load_result load(const std::filesystem::path& file);
load_result parse(std::string_view yaml, const std::filesystem::path& file_name);

}  // namespace obmen::mapping
