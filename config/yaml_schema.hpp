#pragma once
// Strict YAML schema checking shared by obmen.yaml (config) and mapping.yaml (mapping).
//
// A `reporter` collects every problem of one file; nothing here throws for bad input and nothing
// stops at the first problem. Each problem carries file:line:col (1-based) and the key path
// ("sources.onec.file_limit", "price_types[2].match"). A `map_reader` walks one YAML map: it
// rejects unknown keys (with "did you mean" by edit distance) and duplicate keys up front,
// reports missing required keys at the map's own position (yaml-cpp's InvalidNode has no
// position, so presence is always checked before a value is read), and reads typed values,
// assigning the output only when the value is valid — so defaults survive a bad value.
//
// Message shapes (tests and docs rely on them):
//   unknown key 'prot'; did you mean 'port'?        (reported with the parent's path)
//   duplicate key 'port'; first given at line 5     (reported with the parent's path)
//   missing required key 'password'                 (reported with the parent's path)
//   expected a map | expected a list | expected a string
//   expected an integer, got 'abc'
//   expected a boolean (true or false), got 'maybe'
//   expected a duration like 30s, 5m or 2h, got 'soon'
//   expected a size like 512KiB, 8MiB or 1GiB, got 'big'
//   expected one of import, ignore, fail, got 'skip'; did you mean 'ignore'?
//   must be between 1 and 64, got 0
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/problem.hpp"

namespace obmen::config::yaml_schema {

// Collects the problems of one file, as named by the caller (that name appears in messages).
class reporter {
 public:
  explicit reporter(std::string file) : file_(std::move(file)) {}

  const std::string& file() const { return file_; }
  // At a YAML position (0-based, as yaml-cpp gives it); an invalid mark gives line 0.
  void report(const YAML::Mark& at, std::string path, std::string message);
  void report(const YAML::Node& at, std::string path, std::string message);
  // Without a position (e.g. the file cannot be read).
  void report_file(std::string message);

  bool empty() const { return problems_.empty(); }
  std::size_t count() const { return problems_.size(); }
  // The problems in order of position in the file (stable for equal positions).
  std::vector<problem> take();

 private:
  std::string file_;
  std::vector<problem> problems_;
};

// Reads a whole file; reports "cannot read: <strerror>" (no position) and returns nullopt on error.
std::optional<std::string> read_file(reporter&, const std::filesystem::path&);
// Parses YAML text; a syntax error becomes one problem at the parser's mark.
std::optional<YAML::Node> load_text(reporter&, std::string_view yaml);

// Path building: join("sources", "onec") == "sources.onec", join("", "http") == "http",
// index("price_types", 2) == "price_types[2]".
std::string join(std::string_view parent, std::string_view key);
std::string index(std::string_view parent, std::size_t i);

// Optimal-string-alignment distance (Levenshtein plus adjacent transposition, so 'prot' → 'port'
// is 1), counted in bytes.
std::size_t edit_distance(std::string_view a, std::string_view b);
// The candidate nearest to `word` when it is within max(2, size/3) edits; nullopt otherwise.
std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates);
// "; did you mean 'x'?" or "" — ready to append to a message.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

// "'text'" for a scalar, "nothing" for null, "a map", "a list" — for "got …" parts of messages.
std::string describe(const YAML::Node&);

// Value grammar, without reporting.
// Durations: <n>ms | <n>s | <n>m | <n>h | <n>d | <n> (seconds); n a non-negative decimal integer,
// optional spaces before the unit. Returns milliseconds; nullopt on bad form or overflow.
std::optional<std::int64_t> parse_duration_ms(std::string_view);
// Sizes: <n> (bytes) | <n>B | <n>KiB/MiB/GiB/TiB (1024-based) | <n>kB/KB/MB/GB/TB (1000-based),
// optional spaces before the unit. nullopt on bad form or overflow.
std::optional<std::uint64_t> parse_size(std::string_view);
// The shortest exact spelling: 8388608 → "8MiB", 1500 → "1500B"; 90 → "90s", 3600 → "1h".
std::string format_size(std::uint64_t bytes);
std::string format_duration(std::int64_t seconds);

// Where to report a problem with `node`: its own mark, except for a null value (`key:` with
// nothing after it), whose mark yaml-cpp puts at the next token; `key_at` is used then.
YAML::Mark position(const YAML::Node& node, const YAML::Mark& key_at);

// Typed readers for one node. Each reports and returns nullopt when the value is unacceptable.
// `key_at` is the mark of the key naming the value (see position()).
std::optional<std::string> read_string(reporter&, const YAML::Node&, const std::string& path,
                                     const YAML::Mark& key_at = YAML::Mark::null_mark());
std::optional<std::int64_t> read_int(reporter&, const YAML::Node&, const std::string& path,
                                     std::int64_t min, std::int64_t max,
                                     const YAML::Mark& key_at = YAML::Mark::null_mark());
std::optional<bool> read_bool(reporter&, const YAML::Node&, const std::string& path,
                                     const YAML::Mark& key_at = YAML::Mark::null_mark());
// Whole seconds, sub-second values rounded up ("250ms" → 1).
std::optional<std::int64_t> read_duration_seconds(reporter&, const YAML::Node&, const std::string& path,
                                                  std::int64_t min_seconds, std::int64_t max_seconds,
                                                  const YAML::Mark& key_at = YAML::Mark::null_mark());
std::optional<std::uint64_t> read_size(reporter&, const YAML::Node&, const std::string& path,
                                       std::uint64_t min, std::uint64_t max,
                                       const YAML::Mark& key_at = YAML::Mark::null_mark());
// One of a fixed set of words (exact, case-sensitive).
std::optional<std::string> read_choice(reporter&, const YAML::Node&, const std::string& path,
                                       const std::vector<std::string>& choices,
                                       const YAML::Mark& key_at = YAML::Mark::null_mark());

// One YAML map being read. Construction checks the node: a null node (`http:` with nothing
// under it) reads as an empty map; anything else that is not a map is reported as
// "expected a map" and the reader behaves as empty. Unknown and duplicate keys are reported
// at construction. `where` is the position used for missing keys when the node is null
// (normally the mark of the key that names this map).
class map_reader {
 public:
  map_reader(reporter&, const YAML::Node& node, std::string path, std::vector<std::string> known_keys,
             const YAML::Mark& where = YAML::Mark());

  bool is_map() const { return is_map_; }   // false after "expected a map" (null counts as a map)
  const std::string& path() const { return path_; }
  std::string path(std::string_view key) const { return join(path_, key); }
  reporter& out() const { return *out_; }
  const YAML::Mark& mark() const { return mark_; }

  bool has(std::string_view key) const;
  // The value, or an undefined node (!IsDefined()) when the key is absent.
  YAML::Node get(std::string_view key) const;
  YAML::Mark key_mark(std::string_view key) const;
  // Reports "missing required key '<key>'" at this map when absent.
  bool require(std::string_view key) const;

  // Assign `out` only when the key is present and the value valid.
  void string(std::string_view key, std::string& out) const;
  void boolean(std::string_view key, bool& out) const;
  template <typename Int>
  void integer(std::string_view key, Int& out, std::int64_t min, std::int64_t max) const {
    if (auto v = has(key) ? read_int(*out_, get(key), path(key), min, max, key_mark(key)) : std::nullopt) out = static_cast<Int>(*v);
  }
  void seconds(std::string_view key, int& out, std::int64_t min_seconds, std::int64_t max_seconds) const;
  void size(std::string_view key, std::uint64_t& out, std::uint64_t min, std::uint64_t max) const;
  void choice(std::string_view key, std::string& out, const std::vector<std::string>& choices) const;

 private:
  reporter* out_;
  YAML::Node node_;
  std::string path_;
  YAML::Mark mark_;
  bool is_map_ = true;
};

}  // namespace obmen::config::yaml_schema
