#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "mapping/mapping.hpp"

namespace mp = obmen::mapping;
namespace fs = std::filesystem;
using action = mp::decision::action;

namespace {

std::vector<std::string> problems_of(const mp::load_result& r) {
  std::vector<std::string> out;
  for (const auto& p : r.problems) out.push_back(p.to_string());
  return out;
}

mp::rules parse_ok(const std::string& yaml) {
  auto r = mp::parse(yaml, "mapping.yaml");
  REQUIRE(problems_of(r) == std::vector<std::string>{});
  REQUIRE(r.ok());
  return *r.value;
}

std::string only_problem(const std::string& yaml) {
  auto r = mp::parse(yaml, "mapping.yaml");
  CHECK_FALSE(r.ok());
  CHECK_FALSE(r.value.has_value());
  REQUIRE(r.problems.size() == 1);
  return r.problems.front().to_string();
}

}  // namespace

TEST_CASE("default rules import everything as-is") {
  const mp::rules r;
  auto p = r.price_type("bd72d8f9", "Розничная");
  CHECK(p.what == action::keep);
  CHECK(p.target == "bd72d8f9");
  auto w = r.warehouse("a1", "Основной склад");
  CHECK(w.what == action::keep);
  CHECK(w.target == "a1");
  auto pr = r.property("c3", "Цвет");
  CHECK(pr.what == action::keep);
  CHECK(pr.target == "Цвет");
  // The other identity when the preferred one is missing.
  CHECK(r.price_type("", "Розничная").target == "Розничная");
  CHECK(r.property("c3", "").target == "c3");
}

TEST_CASE("an empty file is the defaults") {
  auto r = parse_ok("");
  CHECK(r.price_types.empty());
  CHECK(r.unmapped_price_types == mp::policy::import);
  CHECK(r.file == "mapping.yaml");
  auto s = parse_ok("# nothing yet\nprice_types:\nwarehouses: []\n");
  CHECK(s.warehouses.empty());
}

TEST_CASE("rules are read with their lines") {
  auto r = parse_ok(R"(price_types:
  - match: { id: "bd72d8f9" }
    code: retail
  - match: { name: "  Закупочная " }
    ignore: true
warehouses:
  - match: { name: Основной склад }
    code: main
properties:
  - match: { id: p1 }
    attribute: " color "
unmapped:
  price_types: fail
  warehouses: ignore
  properties: import
)");
  REQUIRE(r.price_types.size() == 2);
  CHECK(r.price_types[0].match_id == "bd72d8f9");
  CHECK(r.price_types[0].match_name.empty());
  CHECK(r.price_types[0].target == "retail");
  CHECK_FALSE(r.price_types[0].ignore);
  CHECK(r.price_types[0].line == 2);
  CHECK(r.price_types[1].match_name == "Закупочная");
  CHECK(r.price_types[1].ignore);
  CHECK(r.price_types[1].target.empty());
  CHECK(r.price_types[1].line == 4);
  REQUIRE(r.warehouses.size() == 1);
  CHECK(r.warehouses[0].match_name == "Основной склад");
  REQUIRE(r.properties.size() == 1);
  CHECK(r.properties[0].target == "color");
  CHECK(r.unmapped_price_types == mp::policy::fail);
  CHECK(r.unmapped_warehouses == mp::policy::ignore);
  CHECK(r.unmapped_properties == mp::policy::import);
}

TEST_CASE("decisions: id beats name, names are trimmed and case-insensitive") {
  auto r = parse_ok(R"(price_types:
  - match: { name: "Розничная" }
    code: by_name
  - match: { id: "x1" }
    code: by_id
  - match: { name: "ОПТОВАЯ ЦЕНА Ё" }
    code: wholesale
  - match: { name: "Закупочная" }
    ignore: true
)");
  CHECK(r.price_type("x1", "Розничная").target == "by_id");  // the id rule wins although it comes later
  CHECK(r.price_type("x2", "Розничная").target == "by_name");
  CHECK(r.price_type("x2", "  розничная\t").target == "by_name");
  CHECK(r.price_type("x2", "\xC2\xA0РОЗНИЧНАЯ").target == "by_name");  // NBSP trimmed
  CHECK(r.price_type("x3", "оптовая цена ё").target == "wholesale");
  CHECK(r.price_type("x3", "Оптовая Цена Ё").target == "wholesale");
  CHECK(r.price_type("x3", "оптовая цена е").target == "x3");  // ё is not е: unmapped, imported as-is
  CHECK(r.price_type("x4", "Розничная 2").target == "x4");     // exact, not a prefix

  auto skip = r.price_type("x", "Закупочная");
  CHECK(skip.what == action::skip);
  CHECK(skip.target.empty());
  CHECK(skip.reason == "price type 'Закупочная' (id 'x') is ignored by the rule at mapping.yaml:8");
}

TEST_CASE("unmapped policies") {
  auto r = parse_ok(R"(unmapped:
  price_types: ignore
  warehouses: fail
  properties: fail
)");
  auto p = r.price_type("x", "Закупочная");
  CHECK(p.what == action::skip);
  CHECK(p.reason == "price type 'Закупочная' (id 'x') is not mapped; ignored by unmapped.price_types: ignore");
  auto w = r.warehouse("w1", "Брак");
  CHECK(w.what == action::fail);
  CHECK(w.reason == "warehouse 'Брак' (id 'w1') is not mapped and unmapped.warehouses is 'fail'; add a rule to mapping.yaml");
  auto pr = r.property("p1", "Цвет");
  CHECK(pr.what == action::fail);
  CHECK(pr.reason == "property 'Цвет' (id 'p1') is not mapped and unmapped.properties is 'fail'; add a rule to mapping.yaml");

  auto s = parse_ok("unmapped:\n  warehouses: ignore\n  properties: ignore\n  price_types: fail\n");
  CHECK(s.warehouse("w1", "Брак").reason == "warehouse 'Брак' (id 'w1') is not mapped; ignored by unmapped.warehouses: ignore");
  CHECK(s.property("p1", "Цвет").reason == "property 'Цвет' (id 'p1') is not mapped; ignored by unmapped.properties: ignore");
  CHECK(s.price_type("x", "Закупочная").reason ==
        "price type 'Закупочная' (id 'x') is not mapped and unmapped.price_types is 'fail'; add a rule to mapping.yaml");

  // A mapped object is kept whatever the policy.
  auto t = parse_ok("warehouses:\n  - match: { id: w1 }\n    code: main\nunmapped: { warehouses: fail }\n");
  CHECK(t.warehouse("w1", "Брак").what == action::keep);
  CHECK(t.warehouse("w1", "Брак").target == "main");
  CHECK(t.warehouse("w2", "Брак").what == action::fail);
}

TEST_CASE("properties: ignore rule and attribute names") {
  auto r = parse_ok(R"(properties:
  - match: { name: Цвет }
    attribute: Цвет товара
  - match: { name: служебное }
    ignore: true
)");
  CHECK(r.property("p1", "ЦВЕТ").target == "Цвет товара");
  auto d = r.property("p2", "Служебное");
  CHECK(d.what == action::skip);
  CHECK(d.reason == "property 'Служебное' (id 'p2') is ignored by the rule at mapping.yaml:4");
}

TEST_CASE("validation messages") {
  CHECK(only_problem("price_types:\n  - match: { id: a, name: b }\n    code: x\n") ==
        "mapping.yaml:2:12: price_types[0].match: needs exactly one of 'id' or 'name', got both");
  CHECK(only_problem("price_types:\n  - match: {}\n    code: x\n") ==
        "mapping.yaml:2:12: price_types[0].match: needs exactly one of 'id' or 'name'");
  CHECK(only_problem("price_types:\n  - code: x\n") == "mapping.yaml:2:5: price_types[0]: missing required key 'match'");
  CHECK(only_problem("price_types:\n  - match: { id: a }\n") ==
        "mapping.yaml:2:5: price_types[0]: missing required key 'code' (or 'ignore: true')");
  CHECK(only_problem("properties:\n  - match: { id: a }\n    ignore: false\n") ==
        "mapping.yaml:2:5: properties[0]: missing required key 'attribute' (or 'ignore: true')");
  CHECK(only_problem("warehouses:\n  - match: { id: a }\n    code: x\n    ignore: true\n") ==
        "mapping.yaml:3:5: warehouses[0]: 'code' and 'ignore: true' exclude each other; keep one");
  CHECK(only_problem("warehouses:\n  - match: { id: a }\n    code: основной\n") ==
        "mapping.yaml:3:11: warehouses[0].code: invalid code 'основной': use 1 to 64 of A-Z, a-z, 0-9, '_', '.' and '-'");
  CHECK(only_problem("warehouses:\n  - match: { id: a }\n    code: " + std::string(65, 'a') + "\n")
            .find("invalid code") != std::string::npos);
  CHECK(only_problem("warehouses:\n  - match: { id: a }\n    attribute: x\n    code: y\n") ==
        "mapping.yaml:3:5: warehouses[0]: unknown key 'attribute'");
  CHECK(only_problem("warehouses:\n  - match: { nme: a }\n    code: y\n") ==
        "mapping.yaml:2:14: warehouses[0].match: unknown key 'nme'; did you mean 'name'?");
  CHECK(only_problem("warehouses:\n  - match: { name: '  ' }\n    code: y\n") ==
        "mapping.yaml:2:20: warehouses[0].match.name: must not be empty");
  CHECK(only_problem("warehouses:\n  - match: { id: a }\n    ignore: yes\n") ==
        "mapping.yaml:3:13: warehouses[0].ignore: expected a boolean (true or false), got 'yes'");
  CHECK(only_problem("warehouses: main\n") == "mapping.yaml:1:13: warehouses: expected a list");
  CHECK(only_problem("warehouses:\n  - main\n") == "mapping.yaml:2:5: warehouses[0]: expected a map");
  CHECK(only_problem("unmapped:\n  price_types: skip\n") ==
        "mapping.yaml:2:16: unmapped.price_types: expected one of import, ignore, fail, got 'skip'");
  CHECK(only_problem("unmapped:\n  price_types: ignor\n") ==
        "mapping.yaml:2:16: unmapped.price_types: expected one of import, ignore, fail, got 'ignor'; did you mean "
        "'ignore'?");
  CHECK(only_problem("unmaped:\n  price_types: fail\n") == "mapping.yaml:1:1: unknown key 'unmaped'; did you mean 'unmapped'?");
  CHECK(only_problem("price_types:\n  - match: [a\n") == "mapping.yaml:3:1: invalid YAML: end of sequence flow not found");
}

TEST_CASE("all problems at once, in file order") {
  auto r = mp::parse(R"(warehouses:
  - match: { id: a }
    cod: y
  - match: { name: Склад }
    code: ok
properties:
  - match: { name: Цвет }
    atribute: color
)",
                     "mapping.yaml");
  CHECK_FALSE(r.ok());
  CHECK(problems_of(r) == std::vector<std::string>{
                              "mapping.yaml:2:5: warehouses[0]: missing required key 'code' (or 'ignore: true')",
                              "mapping.yaml:3:5: warehouses[0]: unknown key 'cod'; did you mean 'code'?",
                              "mapping.yaml:7:5: properties[0]: missing required key 'attribute' (or 'ignore: true')",
                              "mapping.yaml:8:5: properties[0]: unknown key 'atribute'; did you mean 'attribute'?",
                          });
}

TEST_CASE("duplicate matches name both lines") {
  CHECK(only_problem(R"(price_types:
  - match: { name: "Розничная" }
    code: retail
  - match: { id: x }
    code: other
  - match: { name: " РОЗНИЧНАЯ" }
    ignore: true
)") == "mapping.yaml:6:20: price_types[2].match.name: name 'РОЗНИЧНАЯ' at line 6 is already matched by the rule at "
       "line 2");
  CHECK(only_problem("warehouses:\n  - match: { id: w1 }\n    code: a\n  - match: { id: w1 }\n    code: b\n") ==
        "mapping.yaml:4:18: warehouses[1].match.id: id 'w1' at line 4 is already matched by the rule at line 2");
  // The same name in different lists, or an id equal to a name, is no conflict.
  parse_ok("price_types:\n  - match: { name: A }\n    code: a\nwarehouses:\n  - match: { name: A }\n    code: a\n"
           "properties:\n  - match: { id: A }\n    attribute: a\n  - match: { name: A }\n    attribute: b\n");
}

TEST_CASE("load: unreadable file and the example") {
  auto missing = mp::load("/nonexistent/mapping.yaml");
  CHECK_FALSE(missing.ok());
  REQUIRE(missing.problems.size() == 1);
  CHECK(missing.problems[0].to_string() == "/nonexistent/mapping.yaml: cannot read: No such file or directory");

  const char* source_dir = std::getenv("OBMEN_SOURCE_DIR");
  REQUIRE(source_dir != nullptr);
  const fs::path file = fs::path(source_dir) / "config/examples/mapping.yaml";
  auto r = mp::load(file);
  REQUIRE(problems_of(r) == std::vector<std::string>{});
  REQUIRE(r.ok());
  CHECK(r.value->file == file);
  CHECK(r.value->price_type("bd72d8f9-55bc-11d9-848a-00112f43529a", "Розничная").target == "retail");
  CHECK(r.value->price_type("?", "оптовая").target == "wholesale");
  auto purchase = r.value->price_type("p", "Закупочная");
  CHECK(purchase.what == action::skip);
  CHECK(purchase.reason == "price type 'Закупочная' (id 'p') is ignored by the rule at " + file.string() + ":15");
  CHECK(r.value->warehouse("w", "Основной склад").target == "main");
  CHECK(r.value->property("c", "Цвет").target == "color");
  CHECK(r.value->property("d", "Материал").target == "Материал");
}

TEST_CASE("the example config points at the example mapping") {
  ::unsetenv("CREDENTIALS_DIRECTORY");
  const char* source_dir = std::getenv("OBMEN_SOURCE_DIR");
  REQUIRE(source_dir != nullptr);
  auto c = obmen::config::load(fs::path(source_dir) / "config/examples/obmen.yaml");
  REQUIRE(c.ok());
  REQUIRE(c.cfg->onec.size() == 1);
  CHECK(mp::load(c.cfg->onec[0].mapping).ok());
}

TEST_CASE("statuses: defaults keep the raw status and derive paid, shipped, cancelled") {
  const mp::rules r;
  CHECK(r.statuses.empty());
  CHECK(r.derived_statuses.paid == "paid");
  CHECK(r.derived_statuses.shipped == "shipped");
  CHECK(r.derived_statuses.cancelled == "cancelled");
  auto d = r.status("", "  Отгружен ");
  CHECK(d.what == action::keep);
  CHECK(d.target == "Отгружен");
  CHECK(d.reason == "order status 'Отгружен' is not mapped; kept as is");
  auto by_id = r.status("F", "");
  CHECK(by_id.what == action::keep);
  CHECK(by_id.target == "F");
  CHECK(by_id.reason == "order status 'F' is not mapped; kept as is");
  auto both = r.status("F", "Выполнен");
  CHECK(both.target == "Выполнен");
  CHECK(both.reason == "order status 'Выполнен' (id 'F') is not mapped; kept as is");
  auto none = r.status("", " ");
  CHECK(none.what == action::keep);
  CHECK(none.target.empty());
  CHECK(none.reason.empty());
}

TEST_CASE("statuses: rules by name and id, derived targets") {
  auto r = parse_ok(R"(statuses:
  - match: { name: "Отгружен" }
    status: shipped
  - match: { id: "F" }
    status: completed
  - match: { name: "Ожидает оплаты" }
    status: awaiting_payment
derived_statuses:
  paid: payment_received
  cancelled: cancelled_by_erp
)");
  REQUIRE(r.statuses.size() == 3);
  CHECK(r.statuses[0].match_name == "Отгружен");
  CHECK(r.statuses[0].target == "shipped");
  CHECK(r.statuses[0].line == 2);
  CHECK(r.statuses[1].match_id == "F");
  CHECK(r.derived_statuses.paid == "payment_received");
  CHECK(r.derived_statuses.shipped == "shipped");  // not given: the default
  CHECK(r.derived_statuses.cancelled == "cancelled_by_erp");

  auto s = r.status("", "ОТГРУЖЕН");
  CHECK(s.what == action::keep);
  CHECK(s.target == "shipped");
  CHECK(s.reason.empty());
  CHECK(r.status("F", "Отгружен").target == "completed");  // the id rule wins
  CHECK(r.status("N", "ожидает  оплаты").target == "ожидает  оплаты");  // inner spaces count: unmapped
  CHECK(r.status("N", "ожидает оплаты").target == "awaiting_payment");
  CHECK(r.status("N", "Принят").reason == "order status 'Принят' (id 'N') is not mapped; kept as is");
}

TEST_CASE("statuses: validation messages") {
  CHECK(only_problem("statuses:\n  - match: { name: Отгружен }\n") ==
        "mapping.yaml:2:5: statuses[0]: missing required key 'status'");
  // An order status is never dropped: there is no `ignore` for statuses.
  CHECK(problems_of(mp::parse("statuses:\n  - match: { name: Отгружен }\n    ignore: true\n", "mapping.yaml")) ==
        std::vector<std::string>{"mapping.yaml:2:5: statuses[0]: missing required key 'status'",
                                 "mapping.yaml:3:5: statuses[0]: unknown key 'ignore'"});
  CHECK(only_problem("statuses:\n  - match: { name: Отгружен }\n    status: Shipped\n") ==
        "mapping.yaml:3:13: statuses[0].status: invalid status code 'Shipped': use 1 to 32 of a-z and '_'");
  CHECK(only_problem("statuses:\n  - match: { name: Отгружен }\n    status: " + std::string(33, 'a') + "\n")
            .find("invalid status code") != std::string::npos);
  parse_ok("statuses:\n  - match: { name: Отгружен }\n    status: " + std::string(32, 'a') + "\n");
  CHECK(only_problem("statuses:\n  - match: { id: F }\n    status: completed\n  - match: { id: F }\n    status: done\n") ==
        "mapping.yaml:4:18: statuses[1].match.id: id 'F' at line 4 is already matched by the rule at line 2");
  CHECK(only_problem("statuses:\n  - match: { nam: X }\n    status: x\n") ==
        "mapping.yaml:2:14: statuses[0].match: unknown key 'nam'; did you mean 'name'?");
  CHECK(problems_of(mp::parse("statuses:\n  - match: { name: X }\n    staus: x\n", "mapping.yaml")) ==
        std::vector<std::string>{"mapping.yaml:2:5: statuses[0]: missing required key 'status'",
                                 "mapping.yaml:3:5: statuses[0]: unknown key 'staus'; did you mean 'status'?"});
  CHECK(only_problem("derived_statuses:\n  paid: Оплачен\n") ==
        "mapping.yaml:2:9: derived_statuses.paid: invalid status code 'Оплачен': use 1 to 32 of a-z and '_'");
  CHECK(only_problem("derived_statuses:\n  payd: paid\n") ==
        "mapping.yaml:2:3: derived_statuses: unknown key 'payd'; did you mean 'paid'?");
  CHECK(only_problem("derived_statuses:\n  shipped: ''\n") == "mapping.yaml:2:12: derived_statuses.shipped: must not be empty");
  CHECK(only_problem("derived_statuses: paid\n") == "mapping.yaml:1:19: derived_statuses: expected a map");
  CHECK(only_problem("statusses: []\n") == "mapping.yaml:1:1: unknown key 'statusses'; did you mean 'statuses'?");
}
