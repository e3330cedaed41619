#include "mapping/mapping.hpp"

#include <algorithm>

#include "config/yaml_schema.hpp"

namespace obmen::mapping {

namespace ys = config::yaml_schema;

namespace {

// What differs between the three kinds of rules.
struct kind {
  const char* list;        // YAML key and unmapped.<key>
  const char* noun;        // for messages
  const char* target_key;  // code | attribute
  bool import_name;        // import as-is: target = name (properties) instead of the external id
  bool can_ignore = true;  // `ignore: true` allowed (not for statuses: an order status is never dropped)
  bool status_code = false;  // target is a portal status code ([a-z_]{1,32})
};

constexpr kind price_type_kind{"price_types", "price type", "code", false};
constexpr kind warehouse_kind{"warehouses", "warehouse", "code", false};
constexpr kind property_kind{"properties", "property", "attribute", true};
constexpr kind status_kind{"statuses", "order status", "status", true, false, true};

const std::vector<std::string> policy_words = {"import", "ignore", "fail"};

bool is_space_at(std::string_view s, std::size_t i, std::size_t& width) {
  const char c = s[i];
  if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
    width = 1;
    return true;
  }
  // U+00A0 NO-BREAK SPACE: 1C puts it into names more often than one would think.
  if (static_cast<unsigned char>(c) == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xA0) {
    width = 2;
    return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  std::size_t w = 0;
  while (!s.empty() && is_space_at(s, 0, w)) s.remove_prefix(w);
  // From the end: an ASCII blank is one byte, NBSP two (0xC2 0xA0).
  for (;;) {
    if (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
      s.remove_suffix(1);
    } else if (s.size() >= 2 && static_cast<unsigned char>(s[s.size() - 2]) == 0xC2 &&
               static_cast<unsigned char>(s.back()) == 0xA0) {
      s.remove_suffix(2);
    } else {
      break;
    }
  }
  return s;
}

// Trimmed and lowercased: ASCII and Cyrillic U+0400..U+042F (А-Я, Ё and the other Cyrillic
// capitals) — all that 1C names in Russian need. Other bytes are compared as they are.
std::string normalize(std::string_view name) {
  name = trim(name);
  std::string r;
  r.reserve(name.size());
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c >= 'A' && c <= 'Z') {
      r += static_cast<char>(c - 'A' + 'a');
    } else if (c == 0xD0 && i + 1 < name.size()) {
      const auto d = static_cast<unsigned char>(name[i + 1]);
      if (d >= 0x90 && d <= 0x9F) {         // А..П → а..п (D0 B0..D0 BF)
        r += static_cast<char>(0xD0);
        r += static_cast<char>(d + 0x20);
      } else if (d >= 0xA0 && d <= 0xAF) {  // Р..Я → р..я (D1 80..D1 8F)
        r += static_cast<char>(0xD1);
        r += static_cast<char>(d - 0x20);
      } else if (d >= 0x80 && d <= 0x8F) {  // Ѐ..Џ (Ё is D0 81) → ѐ..џ (D1 90..D1 9F)
        r += static_cast<char>(0xD1);
        r += static_cast<char>(d + 0x10);
      } else {
        r += static_cast<char>(c);
        r += static_cast<char>(d);
      }
      ++i;
    } else {
      r += static_cast<char>(c);
    }
  }
  return r;
}

bool is_status_code(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
}

const char* const status_code_rule = "use 1 to 32 of a-z and '_'";

bool is_code(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
}

// A non-empty (after trimming) string, trimmed; reported otherwise.
std::optional<std::string> read_word(ys::reporter& out, const YAML::Node& node, const std::string& path,
                                     const YAML::Mark& key_at) {
  auto s = ys::read_string(out, node, path, key_at);
  if (!s) return std::nullopt;
  std::string t(trim(*s));
  if (t.empty()) {
    out.report(node, path, "must not be empty");
    return std::nullopt;
  }
  return t;
}

void read_rules(ys::reporter& out, const ys::map_reader& root, const kind& k, std::vector<rule>& rules) {
  if (!root.has(k.list)) return;
  const YAML::Node list = root.get(k.list);
  if (list.IsNull()) return;
  if (!list.IsSequence()) {
    out.report(list, k.list, "expected a list");
    return;
  }
  struct seen_match { std::string key; bool by_id; int line; };
  std::vector<seen_match> seen;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node item = list[i];
    const std::string path = ys::index(k.list, i);
    if (!item.IsMap()) {
      out.report(item, path, "expected a map");
      continue;
    }
    ys::map_reader m(out, item, path,
                     k.can_ignore ? std::vector<std::string>{"match", k.target_key, "ignore"}
                                  : std::vector<std::string>{"match", k.target_key});
    rule r;
    r.line = m.mark().line + 1;
    bool ok = true;

    if (m.require("match")) {
      const YAML::Node match_node = m.get("match");
      ys::map_reader match(out, match_node, m.path("match"), {"id", "name"}, m.key_mark("match"));
      if (!match.is_map()) {
        ok = false;
      } else if (!match.has("id") && !match.has("name") && match_node.IsMap() && match_node.size() > 0) {
        ok = false;  // only unknown keys, each reported already ("did you mean 'name'?")
      } else if (match.has("id") == match.has("name")) {
        out.report(match_node.IsNull() ? m.key_mark("match") : match_node.Mark(), match.path(),
                   std::string("needs exactly one of 'id' or 'name'") + (match.has("id") ? ", got both" : ""));
        ok = false;
      } else {
        const bool by_id = match.has("id");
        const char* key = by_id ? "id" : "name";
        if (auto v = read_word(out, match.get(key), match.path(key), match.key_mark(key))) {
          (by_id ? r.match_id : r.match_name) = *v;
          const std::string compare = by_id ? *v : normalize(*v);
          auto first = std::find_if(seen.begin(), seen.end(),
                                    [&](const seen_match& s) { return s.by_id == by_id && s.key == compare; });
          const int line = match.get(key).Mark().line + 1;
          if (first != seen.end()) {
            out.report(match.get(key), match.path(key),
                       std::string(key) + " '" + *v + "' at line " + std::to_string(line) +
                           " is already matched by the rule at line " + std::to_string(first->line));
            ok = false;
          } else {
            seen.push_back({compare, by_id, line});
          }
        } else {
          ok = false;
        }
      }
    } else {
      ok = false;
    }

    const std::size_t before_ignore = out.count();
    if (k.can_ignore) m.boolean("ignore", r.ignore);
    const bool ignore_valid = out.count() == before_ignore;
    const bool has_target = m.has(k.target_key);
    if (r.ignore && has_target) {
      out.report(m.key_mark(k.target_key), path,
                 std::string("'") + k.target_key + "' and 'ignore: true' exclude each other; keep one");
      ok = false;
    } else if (!r.ignore && !has_target) {
      // An `ignore` that is present but not a boolean was reported already.
      if (ignore_valid)
        out.report(m.mark(), path,
                   std::string("missing required key '") + k.target_key + "'" + (k.can_ignore ? " (or 'ignore: true')" : ""));
      ok = false;
    } else if (has_target) {
      const YAML::Node target = m.get(k.target_key);
      if (auto v = read_word(out, target, m.path(k.target_key), m.key_mark(k.target_key))) {
        if (k.status_code && !is_status_code(*v)) {
          out.report(target, m.path(k.target_key), "invalid status code '" + *v + "': " + status_code_rule);
          ok = false;
        } else if (!k.status_code && !k.import_name && !is_code(*v)) {
          out.report(target, m.path(k.target_key),
                     "invalid code '" + *v + "': use 1 to 64 of A-Z, a-z, 0-9, '_', '.' and '-'");
          ok = false;
        } else {
          r.target = *v;
        }
      } else {
        ok = false;
      }
    }
    if (ok) rules.push_back(std::move(r));
  }
}

void read_unmapped(ys::reporter& out, const ys::map_reader& root, rules& result) {
  if (!root.has("unmapped")) return;
  ys::map_reader m(out, root.get("unmapped"), "unmapped", {"price_types", "warehouses", "properties"},
                   root.key_mark("unmapped"));
  auto read = [&](const char* key, policy& p) {
    std::string word;
    m.choice(key, word, policy_words);
    if (word == "import") p = policy::import;
    else if (word == "ignore") p = policy::ignore;
    else if (word == "fail") p = policy::fail;
  };
  read("price_types", result.unmapped_price_types);
  read("warehouses", result.unmapped_warehouses);
  read("properties", result.unmapped_properties);
}

void read_derived_statuses(ys::reporter& out, const ys::map_reader& root, rules& result) {
  if (!root.has("derived_statuses")) return;
  ys::map_reader m(out, root.get("derived_statuses"), "derived_statuses", {"paid", "shipped", "cancelled"},
                   root.key_mark("derived_statuses"));
  auto read = [&](const char* key, std::string& target) {
    if (!m.has(key)) return;
    const YAML::Node node = m.get(key);
    auto v = read_word(out, node, m.path(key), m.key_mark(key));
    if (!v) return;
    if (!is_status_code(*v)) {
      out.report(node, m.path(key), "invalid status code '" + *v + "': " + status_code_rule);
      return;
    }
    target = *v;
  };
  read("paid", result.derived_statuses.paid);
  read("shipped", result.derived_statuses.shipped);
  read("cancelled", result.derived_statuses.cancelled);
}

std::string describe_object(const kind& k, std::string_view external_id, std::string_view name) {
  // A reference by id alone (a later file of a split package) has no name to show.
  if (name.empty()) return std::string(k.noun) + " with id '" + std::string(external_id) + "'";
  std::string s = std::string(k.noun) + " '" + std::string(name) + "'";
  if (!external_id.empty()) s += " (id '" + std::string(external_id) + "')";
  return s;
}

std::string where(const std::filesystem::path& file, int line) {
  if (file.empty()) return "line " + std::to_string(line);
  return file.string() + ":" + std::to_string(line);
}

const rule* find_rule(const std::vector<rule>& rules, std::string_view external_id, std::string_view name) {
  const rule* found = nullptr;
  // An id rule beats a name rule whatever their order: ids survive renames in 1C.
  const std::string_view id = trim(external_id);
  if (!id.empty()) {
    for (const auto& r : rules)
      if (!r.match_id.empty() && r.match_id == id) {
        found = &r;
        break;
      }
  }
  if (!found) {
    const std::string wanted = normalize(name);
    if (!wanted.empty()) {
      for (const auto& r : rules)
        if (!r.match_name.empty() && normalize(r.match_name) == wanted) {
          found = &r;
          break;
        }
    }
  }
  return found;
}

decision decide(const std::vector<rule>& rules, policy unmapped, const std::filesystem::path& file, const kind& k,
                std::string_view external_id, std::string_view name) {
  const std::string_view id = trim(external_id);
  const rule* found = find_rule(rules, external_id, name);
  decision d;
  if (found) {
    if (found->ignore) {
      d.what = decision::action::skip;
      d.reason = describe_object(k, external_id, name) + " is ignored by the rule at " + where(file, found->line);
    } else {
      d.target = found->target;
    }
    return d;
  }
  switch (unmapped) {
    case policy::import: {
      // As-is: the id for codes (stable, unique), the name for attributes (what people read).
      // When the preferred one is empty the other is the only identity there is.
      const std::string_view first = k.import_name ? trim(name) : id;
      const std::string_view second = k.import_name ? id : trim(name);
      d.target = std::string(first.empty() ? second : first);
      break;
    }
    case policy::ignore:
      d.what = decision::action::skip;
      d.reason = describe_object(k, external_id, name) + " is not mapped; ignored by unmapped." + k.list + ": ignore";
      break;
    case policy::fail:
      d.what = decision::action::fail;
      d.reason = describe_object(k, external_id, name) + " is not mapped and unmapped." + k.list +
                 " is 'fail'; add a rule to " + (file.empty() ? std::string("the mapping file") : file.string());
      break;
  }
  return d;
}

}  // namespace

decision rules::price_type(std::string_view external_id, std::string_view name) const {
  return decide(price_types, unmapped_price_types, file, price_type_kind, external_id, name);
}

decision rules::warehouse(std::string_view external_id, std::string_view name) const {
  return decide(warehouses, unmapped_warehouses, file, warehouse_kind, external_id, name);
}

decision rules::property(std::string_view external_id, std::string_view name) const {
  return decide(properties, unmapped_properties, file, property_kind, external_id, name);
}

decision rules::status(std::string_view id, std::string_view name) const {
  // The import policy with the name first; statuses have no ignore rules and no unmapped policy.
  decision d = decide(statuses, policy::import, file, status_kind, id, name);
  if (!find_rule(statuses, id, name) && !d.target.empty()) {
    const std::string_view n = trim(name);
    const std::string_view i = trim(id);
    d.reason = std::string(status_kind.noun) + " '" + std::string(n.empty() ? i : n) + "'" +
               (!n.empty() && !i.empty() ? " (id '" + std::string(i) + "')" : std::string()) +
               " is not mapped; kept as is";
  }
  return d;
}

load_result parse(std::string_view yaml, const std::filesystem::path& file_name) {
  ys::reporter out(file_name.string());
  load_result result;
  auto root_node = ys::load_text(out, yaml);
  if (root_node) {
    ys::map_reader root(out, *root_node, "", {"price_types", "warehouses", "properties", "unmapped", "statuses", "derived_statuses"});
    rules r;
    r.file = file_name;
    if (root.is_map()) {
      read_rules(out, root, price_type_kind, r.price_types);
      read_rules(out, root, warehouse_kind, r.warehouses);
      read_rules(out, root, property_kind, r.properties);
      read_rules(out, root, status_kind, r.statuses);
      read_derived_statuses(out, root, r);
      read_unmapped(out, root, r);
    }
    if (out.empty()) result.value = std::move(r);
  }
  result.problems = out.take();
  return result;
}

load_result load(const std::filesystem::path& file) {
  ys::reporter out(file.string());
  auto text = ys::read_file(out, file);
  if (!text) {
    load_result result;
    result.problems = out.take();
    return result;
  }
  return parse(*text, file);
}

}  // namespace obmen::mapping
