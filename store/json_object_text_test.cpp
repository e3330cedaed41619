// json_object_text: pure code, no database.
#include "store/portal_store.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using obmen::store::json_object_text;

TEST_CASE("json_object_text: the text the same assignments to a nlohmann object give, written without one") {
  json_object_text t;
  nlohmann::json j = nlohmann::json::object();
  const auto set = [&](const std::string& key, const std::string& value) {
    t.set(key, value);
    j[key] = value;
  };
  set("Цвет", "красный");
  set("Вес, кг", "0.5");
  t.set("Размер", std::vector<std::string>{"S", "M"});
  j["Размер"] = std::vector<std::string>{"S", "M"};
  set("Цвет", "синий");  // set again: the last value wins, in the key's place
  set("quote\"back\\slash", "tab\there\nnew line \x01");
  set("", "");
  const auto text = std::move(t).text();
  CHECK(nlohmann::json::parse(text) == j);
  // Keys in byte order (as std::map orders them), one each, control characters as \u00XX.
  CHECK(text == "{\"\":\"\",\"quote\\\"back\\\\slash\":\"tab\\u0009here\\u000anew line \\u0001\","
                "\"Вес, кг\":\"0.5\",\"Размер\":[\"S\",\"M\"],\"Цвет\":\"синий\"}");
}

TEST_CASE("json_object_text: no pairs is an empty object") {
  json_object_text t;
  CHECK(t.empty());
  CHECK(std::move(t).text() == "{}");
}
