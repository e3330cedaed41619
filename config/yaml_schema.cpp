#include "config/yaml_schema.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace obmen::config::yaml_schema {

void reporter::report(const YAML::Mark& at, std::string path, std::string message) {
  problem p;
  p.file = file_;
  if (!at.is_null()) {
    p.line = at.line + 1;
    p.column = at.column + 1;
  }
  p.path = std::move(path);
  p.message = std::move(message);
  problems_.push_back(std::move(p));
}

void reporter::report(const YAML::Node& at, std::string path, std::string message) {
  // A zombie node (absent key) has no mark and Mark() would throw; callers should not pass one,
  // but a problem without position is better than an exception here.
  report(at.IsDefined() ? at.Mark() : YAML::Mark::null_mark(), std::move(path), std::move(message));
}

void reporter::report_file(std::string message) {
  report(YAML::Mark::null_mark(), {}, std::move(message));
}

std::vector<problem> reporter::take() {
  // Checks run section by section (and missing keys are found after the keys that are present),
  // so the raw order is not the file order; admins read the list top to bottom.
  std::stable_sort(problems_.begin(), problems_.end(), [](const problem& a, const problem& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  return std::move(problems_);
}

std::optional<std::string> read_file(reporter& out, const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    out.report_file("cannot read: " + std::string(std::strerror(errno)));
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    out.report_file("cannot read: " + std::string(std::strerror(errno)));
    return std::nullopt;
  }
  // A directory opens fine on Linux but reading fails without setting badbit on every libstdc++.
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) {
    out.report_file("cannot read: " + std::string(std::strerror(EISDIR)));
    return std::nullopt;
  }
  return std::move(text).str();
}

std::optional<YAML::Node> load_text(reporter& out, std::string_view yaml) {
  try {
    return YAML::Load(std::string(yaml));
  } catch (const YAML::ParserException& e) {
    out.report(e.mark, {}, "invalid YAML: " + e.msg);
  } catch (const YAML::Exception& e) {
    out.report(e.mark, {}, "invalid YAML: " + e.msg);
  }
  return std::nullopt;
}

std::string join(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string r(parent);
  r += '.';
  r += key;
  return r;
}

std::string index(std::string_view parent, std::size_t i) {
  return std::string(parent) + "[" + std::to_string(i) + "]";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Full matrix: keys are short, and the transposition step needs the row before the previous.
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates) {
  const std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
  std::optional<std::string> best;
  std::size_t best_distance = limit + 1;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    // d == max length means nothing in common at all ("ab" vs "cd"): no suggestion.
    if (d < best_distance && d < std::max(word.size(), c.size())) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  if (auto c = closest(word, candidates)) return "; did you mean '" + *c + "'?";
  return {};
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
  }
}

namespace {

// Leading decimal digits as an unsigned number; `rest` gets what follows. nullopt when there
// are no digits or the number overflows.
std::optional<std::uint64_t> leading_number(std::string_view text, std::string_view& rest) {
  std::size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == 0) return std::nullopt;
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc() || ptr != text.data() + i) return std::nullopt;
  rest = text.substr(i);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  return value;
}

std::optional<std::uint64_t> multiply(std::uint64_t value, std::uint64_t factor) {
  if (factor != 0 && value > std::numeric_limits<std::uint64_t>::max() / factor) return std::nullopt;
  return value * factor;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

const std::string duration_form = "expected a duration like 30s, 5m or 2h, got ";
const std::string size_form = "expected a size like 512KiB, 8MiB or 1GiB, got ";

}  // namespace

std::optional<std::int64_t> parse_duration_ms(std::string_view text) {
  text = trim(text);
  std::string_view unit;
  auto n = leading_number(text, unit);
  if (!n) return std::nullopt;
  std::uint64_t factor = 0;
  if (unit.empty() || unit == "s") factor = 1000;
  else if (unit == "ms") factor = 1;
  else if (unit == "m") factor = 60 * 1000;
  else if (unit == "h") factor = 3600 * 1000;
  else if (unit == "d") factor = 86400 * 1000;
  else return std::nullopt;
  auto ms = multiply(*n, factor);
  if (!ms || *ms > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
  return static_cast<std::int64_t>(*ms);
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  text = trim(text);
  std::string_view unit;
  auto n = leading_number(text, unit);
  if (!n) return std::nullopt;
  struct unit_factor { std::string_view name; std::uint64_t factor; };
  static constexpr unit_factor units[] = {
      {"", 1}, {"B", 1},
      {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"TiB", 1ull << 40},
      {"kB", 1000}, {"KB", 1000}, {"MB", 1000'000}, {"GB", 1000'000'000}, {"TB", 1000'000'000'000},
  };
  for (const auto& u : units)
    if (unit == u.name) return multiply(*n, u.factor);
  return std::nullopt;
}

std::string format_size(std::uint64_t bytes) {
  static constexpr std::pair<std::uint64_t, const char*> units[] = {
      {1ull << 40, "TiB"}, {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
  for (const auto& [factor, name] : units)
    if (bytes != 0 && bytes % factor == 0) return std::to_string(bytes / factor) + name;
  return std::to_string(bytes) + "B";
}

std::string format_duration(std::int64_t seconds) {
  static constexpr std::pair<std::int64_t, const char*> units[] = {{86400, "d"}, {3600, "h"}, {60, "m"}};
  for (const auto& [factor, name] : units)
    if (seconds != 0 && seconds % factor == 0) return std::to_string(seconds / factor) + name;
  return std::to_string(seconds) + "s";
}

YAML::Mark position(const YAML::Node& node, const YAML::Mark& key_at) {
  if (!node.IsDefined()) return key_at;
  return node.IsNull() && !key_at.is_null() ? key_at : node.Mark();
}

std::optional<std::string> read_string(reporter& out, const YAML::Node& node, const std::string& path,
                                       const YAML::Mark& key_at) {
  if (!node.IsScalar()) {
    out.report(position(node, key_at), path, "expected a string");
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<std::int64_t> read_int(reporter& out, const YAML::Node& node, const std::string& path,
                                     std::int64_t min, std::int64_t max, const YAML::Mark& key_at) {
  const std::string bad = "expected an integer, got " + describe(node);
  if (!node.IsScalar()) {
    out.report(position(node, key_at), path, bad);
    return std::nullopt;
  }
  std::string_view text = trim(node.Scalar());
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  const bool negative = !text.empty() && text.front() == '-';
  const std::string_view digits = negative ? text.substr(1) : text;
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    out.report(position(node, key_at), path, bad);
    return std::nullopt;
  }
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < min || value > max) {
    // Overflow lands here too: such a number is certainly out of range.
    out.report(position(node, key_at), path,
               "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + std::string(text));
    return std::nullopt;
  }
  return value;
}

std::optional<bool> read_bool(reporter& out, const YAML::Node& node, const std::string& path,
                              const YAML::Mark& key_at) {
  if (node.IsScalar()) {
    // YAML 1.2 core schema only: yes/no/on/off are YAML 1.1 surprises ("Norway problem").
    const std::string& s = node.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  out.report(position(node, key_at), path, "expected a boolean (true or false), got " + describe(node));
  return std::nullopt;
}

std::optional<std::int64_t> read_duration_seconds(reporter& out, const YAML::Node& node, const std::string& path,
                                                  std::int64_t min_seconds, std::int64_t max_seconds,
                                                  const YAML::Mark& key_at) {
  const auto ms = node.IsScalar() ? parse_duration_ms(node.Scalar()) : std::nullopt;
  if (!ms) {
    out.report(position(node, key_at), path, duration_form + describe(node));
    return std::nullopt;
  }
  const std::int64_t seconds = *ms / 1000 + (*ms % 1000 != 0 ? 1 : 0);
  if (seconds < min_seconds || seconds > max_seconds) {
    out.report(position(node, key_at), path,
               "must be between " + format_duration(min_seconds) + " and " + format_duration(max_seconds) +
                   ", got " + std::string(trim(node.Scalar())));
    return std::nullopt;
  }
  return seconds;
}

std::optional<std::uint64_t> read_size(reporter& out, const YAML::Node& node, const std::string& path,
                                       std::uint64_t min, std::uint64_t max, const YAML::Mark& key_at) {
  const auto bytes = node.IsScalar() ? parse_size(node.Scalar()) : std::nullopt;
  if (!bytes) {
    out.report(position(node, key_at), path, size_form + describe(node));
    return std::nullopt;
  }
  if (*bytes < min || *bytes > max) {
    out.report(position(node, key_at), path,
               "must be between " + format_size(min) + " and " + format_size(max) + ", got " +
                   std::string(trim(node.Scalar())));
    return std::nullopt;
  }
  return bytes;
}

std::optional<std::string> read_choice(reporter& out, const YAML::Node& node, const std::string& path,
                                       const std::vector<std::string>& choices, const YAML::Mark& key_at) {
  if (node.IsScalar() && std::find(choices.begin(), choices.end(), node.Scalar()) != choices.end())
    return node.Scalar();
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  std::string message = "expected one of " + list + ", got " + describe(node);
  if (node.IsScalar()) message += did_you_mean(node.Scalar(), choices);
  out.report(position(node, key_at), path, std::move(message));
  return std::nullopt;
}

map_reader::map_reader(reporter& out, const YAML::Node& node, std::string path, std::vector<std::string> known_keys,
                       const YAML::Mark& where)
    : out_(&out), node_(node), path_(std::move(path)), mark_(where) {
  if (node.IsNull()) return;  // `section:` with nothing under it: all defaults
  if (!node.IsMap()) {
    is_map_ = false;
    out.report(node, path_, "expected a map");
    return;
  }
  mark_ = node.Mark();
  std::vector<std::pair<std::string, int>> seen;  // key, 1-based line
  for (auto it = node.begin(); it != node.end(); ++it) {
    // By value: it->first lives in a proxy that dies with the full expression (ASan caught it).
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      out.report(key, path_, "keys must be plain words, got " + describe(key));
      continue;
    }
    const std::string& name = key.Scalar();
    if (std::find(known_keys.begin(), known_keys.end(), name) == known_keys.end()) {
      out.report(key, path_, "unknown key '" + name + "'" + did_you_mean(name, known_keys));
      continue;
    }
    auto first = std::find_if(seen.begin(), seen.end(), [&](const auto& s) { return s.first == name; });
    if (first != seen.end()) {
      // yaml-cpp keeps both entries and lookups see only the first: never silently ignore one.
      out.report(key, path_, "duplicate key '" + name + "'; first given at line " + std::to_string(first->second));
      continue;
    }
    seen.emplace_back(name, key.Mark().line + 1);
  }
}

YAML::Node map_reader::get(std::string_view key) const {
  if (is_map_ && node_.IsMap()) {
    for (auto it = node_.begin(); it != node_.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

YAML::Mark map_reader::key_mark(std::string_view key) const {
  if (is_map_ && node_.IsMap()) {
    for (auto it = node_.begin(); it != node_.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->first.Mark();
  }
  return mark_;
}

bool map_reader::has(std::string_view key) const { return get(key).IsDefined(); }

bool map_reader::require(std::string_view key) const {
  if (has(key)) return true;
  // A map that is not a map was already reported; one problem per mistake.
  if (is_map_) out_->report(mark_, path_, "missing required key '" + std::string(key) + "'");
  return false;
}

void map_reader::string(std::string_view key, std::string& out) const {
  if (!has(key)) return;
  if (auto v = read_string(*out_, get(key), path(key), key_mark(key))) out = std::move(*v);
}

void map_reader::boolean(std::string_view key, bool& out) const {
  if (!has(key)) return;
  if (auto v = read_bool(*out_, get(key), path(key), key_mark(key))) out = *v;
}

void map_reader::seconds(std::string_view key, int& out, std::int64_t min_seconds, std::int64_t max_seconds) const {
  if (!has(key)) return;
  if (auto v = read_duration_seconds(*out_, get(key), path(key), min_seconds, max_seconds, key_mark(key))) out = static_cast<int>(*v);
}

void map_reader::size(std::string_view key, std::uint64_t& out, std::uint64_t min, std::uint64_t max) const {
  if (!has(key)) return;
  if (auto v = read_size(*out_, get(key), path(key), min, max, key_mark(key))) out = *v;
}

void map_reader::choice(std::string_view key, std::string& out, const std::vector<std::string>& choices) const {
  if (!has(key)) return;
  if (auto v = read_choice(*out_, get(key), path(key), choices, key_mark(key))) out = std::move(*v);
}

}  // namespace obmen::config::yaml_schema
