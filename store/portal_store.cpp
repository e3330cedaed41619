#include "store/portal_store.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <pqxx/tablewriter>

namespace obmen::store {

// ─── counts ─────────────────────────────────────────────────────────────────────────────────

entity_counts& entity_counts::operator+=(const entity_counts& o) {
  inserted += o.inserted;
  updated += o.updated;
  unchanged += o.unchanged;
  deactivated += o.deactivated;
  skipped += o.skipped;
  return *this;
}

import_counts& import_counts::operator+=(const import_counts& o) {
  for (const auto& [entity, c] : o.by_entity) by_entity[entity] += c;
  warnings.insert(warnings.end(), o.warnings.begin(), o.warnings.end());
  return *this;
}

bool import_counts::changed() const {
  for (const auto& [entity, c] : by_entity)
    if (c.inserted != 0 || c.updated != 0 || c.deactivated != 0) return true;
  return false;
}

namespace {

// The order entities are applied in, which is the order a reader expects them in the summary.
constexpr std::array<const char*, 9> entity_order = {
    "categories", "attributes", "price_types", "warehouses", "products", "images", "offers", "prices", "stock"};

template <class F>
void for_each_entity(const std::map<std::string, entity_counts>& by_entity, F f) {
  for (const char* name : entity_order)
    if (auto it = by_entity.find(name); it != by_entity.end()) f(it->first, it->second);
  for (const auto& [name, c] : by_entity) {
    bool known = false;
    for (const char* k : entity_order) known = known || name == k;
    if (!known) f(name, c);
  }
}

}  // namespace

std::string import_counts::summary() const {
  std::string out;
  for_each_entity(by_entity, [&](const std::string& name, const entity_counts& c) {
    if (!out.empty()) out += "; ";
    out += name + ":";
    std::string parts;
    auto add = [&](std::int64_t n, const char* what) {
      parts += (parts.empty() ? " " : ", ") + std::to_string(n) + " " + what;
    };
    // An entry with nothing carried comes from a deactivation pass (deactivate_unseen): say
    // how many it switched off, even when none.
    const bool carried = c.inserted != 0 || c.updated != 0 || c.unchanged != 0;
    if (carried) {
      add(c.inserted, "new");
      add(c.updated, "updated");
      add(c.unchanged, "unchanged");
    }
    if (c.deactivated != 0 || (!carried && c.skipped == 0)) add(c.deactivated, "deactivated");
    if (c.skipped != 0) add(c.skipped, "skipped");
    out += parts;
  });
  if (!warnings.empty())
    out += (out.empty() ? "" : "; ") + std::to_string(warnings.size()) +
           (warnings.size() == 1 ? " warning" : " warnings");
  if (out.empty()) out = "nothing imported";
  return out;
}

nlohmann::json import_counts::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, c] : by_entity)
    j[name] = {{"inserted", c.inserted},
               {"updated", c.updated},
               {"unchanged", c.unchanged},
               {"deactivated", c.deactivated},
               {"skipped", c.skipped}};
  j["warnings"] = warnings;
  return j;
}

// ─── staging helpers ────────────────────────────────────────────────────────────────────────

namespace {

using field = std::optional<std::string>;

// Keeps at most this many warning texts per writer; the rest are counted in one last line.
constexpr std::size_t max_warnings = 200;

field text(const std::string& s) { return s.empty() ? field{} : field{s}; }
field boolean(bool b) { return std::string(b ? "t" : "f"); }
// JSON text of j, as nlohmann's dump() writes it (keys in order, no spaces, UTF-8 as is), for
// the shapes rows carry — objects, arrays, strings — without dump()'s character-by-character
// UTF-8 state machine: the texts come from documents already checked to be UTF-8. Anything else
// (numbers, booleans, null) goes through dump().
}  // namespace

void append_json_string(std::string_view v, std::string& out) {
  out += '"';
  std::size_t from = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto b = static_cast<unsigned char>(v[i]);
    if (b >= 0x20 && b != '"' && b != '\\') continue;
    out.append(v, from, i - from);
    if (b < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", b);
      out += esc;
    } else {
      out += '\\';
      out += v[i];
    }
    from = i + 1;
  }
  out.append(v, from);
  out += '"';
}

void json_object_text::set(std::string key, std::string value) {
  items_.push_back({std::move(key), std::move(value), {}, false});
}

void json_object_text::set(std::string key, std::vector<std::string> values) {
  items_.push_back({std::move(key), {}, std::move(values), true});
}

std::string json_object_text::text() && {
  std::stable_sort(items_.begin(), items_.end(), [](const item& a, const item& b) { return a.key < b.key; });
  std::string out = "{";
  for (std::size_t i = 0; i < items_.size(); ++i) {
    if (i + 1 < items_.size() && items_[i + 1].key == items_[i].key) continue;  // set again later
    if (out.size() > 1) out += ',';
    append_json_string(items_[i].key, out);
    out += ':';
    if (!items_[i].list) {
      append_json_string(items_[i].value, out);
      continue;
    }
    out += '[';
    for (std::size_t k = 0; k < items_[i].values.size(); ++k) {
      if (k != 0) out += ',';
      append_json_string(items_[i].values[k], out);
    }
    out += ']';
  }
  out += '}';
  return out;
}

namespace {

void append_json(const nlohmann::json& j, std::string& out) {
  switch (j.type()) {
    case nlohmann::json::value_t::string:
      append_json_string(j.get_ref<const std::string&>(), out);
      return;
    case nlohmann::json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, value] : j.get_ref<const nlohmann::json::object_t&>()) {
        if (!first) out += ',';
        first = false;
        append_json_string(key, out);
        out += ':';
        append_json(value, out);
      }
      out += '}';
      return;
    }
    case nlohmann::json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& value : j) {
        if (!first) out += ',';
        first = false;
        append_json(value, out);
      }
      out += ']';
      return;
    }
    default:
      out += j.dump();
  }
}

field json_text(const nlohmann::json& j, const char* empty) {
  if (j.is_null()) return std::string(empty);
  std::string out;
  append_json(j, out);
  return out;
}

// One row in COPY's text format: fields separated by tabs, NULL as \N, and backslash, tab,
// newline and carriage return escaped. The escaping also makes the text an unambiguous encoding
// of the fields, which is what a content hash is taken over.
class copy_line {
  static bool escaped(char c) { return c == '\\' || c == '\t' || c == '\n' || c == '\r'; }

 public:
  copy_line& text(std::string_view v) {
    separate();
    // Not find_first_of: that calls memchr over the four characters for every byte of v.
    if (std::none_of(v.begin(), v.end(), escaped)) {
      s_ += v;
      return *this;
    }
    for (const char c : v) switch (c) {
        case '\\': s_ += "\\\\"; break;
        case '\t': s_ += "\\t"; break;
        case '\n': s_ += "\\n"; break;
        case '\r': s_ += "\\r"; break;
        default: s_ += c;
      }
    return *this;
  }
  copy_line& value(const field& f) { return f ? text(*f) : null(); }
  copy_line& opt(std::string_view v) { return v.empty() ? null() : text(v); }  // "" is NULL
  copy_line& number(std::int64_t n) {
    separate();
    s_ += std::to_string(n);
    return *this;
  }
  copy_line& number(const std::optional<std::int64_t>& n) { return n ? number(*n) : null(); }
  copy_line& null() {
    separate();
    s_ += "\\N";
    return *this;
  }
  const std::string& str() const { return s_; }
  copy_line& clear() {  // for the next row, keeping the buffer
    s_.clear();
    first_ = true;
    return *this;
  }

 private:
  void separate() {
    if (!first_) s_ += '\t';
    first_ = false;
  }
  std::string s_;
  bool first_ = true;
};

// COPY … FROM STDIN of lines formatted by copy_line. libpqxx 6.4's stream_to formats each tuple
// itself, field by field through to_string; tablewriter (deprecated there in favour of
// stream_to, but the only public way to send a line that is already formatted) takes it as is.
// The table name is used as given (schema-qualified names work).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
// Lines are sent 64 KiB at a time (a COPY data message need not end at a row): one libpq call
// and one copy per chunk, not per line.
class copy_in {
 public:
  copy_in(pqxx::work& tx, const std::string& table, const std::vector<std::string>& columns)
      : w_(tx, table, columns.begin(), columns.end()) {}
  void write(std::string_view line) {
    buf_ += line;
    buf_ += '\n';
    if (buf_.size() >= chunk) flush();
  }
  void write(const copy_line& line) { write(std::string_view(line.str())); }
  void complete() {
    flush();
    w_.complete();
  }

 private:
  static constexpr std::size_t chunk = std::size_t{64} << 10;
  void flush() {
    if (buf_.empty()) return;
    buf_.pop_back();  // write_raw_line adds the last newline
    w_.write_raw_line(buf_);
    buf_.clear();
  }
  pqxx::tablewriter w_;
  std::string buf_;
};
#pragma GCC diagnostic pop

// COPY rows of fields into a (staging) table.
template <std::size_t N>
void copy_rows(pqxx::work& tx, const std::string& table, const std::array<const char*, N>& columns,
               const std::vector<std::array<field, N>>& rows) {
  if (rows.empty()) return;
  copy_in c{tx, table, std::vector<std::string>(columns.begin(), columns.end())};
  for (const auto& r : rows) {
    copy_line line;
    for (const auto& f : r) line.value(f);
    c.write(line);
  }
  c.complete();
}

// COPY the lines lines(item) of each item into a staging table; returns how many there were.
template <class T, class Lines>
std::size_t copy_lines(pqxx::work& tx, const std::string& table, const std::vector<std::string>& columns,
                       const std::vector<const T*>& items, Lines lines) {
  std::vector<std::string> all;
  for (const auto* x : items)
    for (auto& line : lines(*x)) all.push_back(std::move(line));
  if (all.empty()) return 0;
  copy_in c{tx, table, columns};
  for (const auto& line : all) c.write(line);
  c.complete();
  return all.size();
}

// Content hashes (portal.products/offers.content_hash): a 64-bit hash over the fields a row
// stages (after mapping: names, codes, the price types and warehouses kept; see row_hash), after
// a version tag — change the tag when what a row stages changes meaning (or the hash itself
// changes), and every stored hash simply stops matching once. Eight bytes a step:
// h = (rotl(h, 29) ^ word) * k, each field's last partial word carrying its length, so two rows
// that differ in one word of one field never collide (each step is a bijection of h and of the
// word); otherwise 2^-64 per changed row. Tag 1 was FNV-1a, byte by byte, over the staging lines.
constexpr std::uint64_t hash_k = 0x9E3779B97F4A7C15ULL;

std::uint64_t hash_step(std::uint64_t h, std::uint64_t word) { return (std::rotl(h, 29) ^ word) * hash_k; }

std::uint64_t content_hash(std::uint64_t h, std::string_view s) {
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = hash_step(h, w);
  }
  std::uint64_t w = static_cast<std::uint64_t>(s.size() - i) << 56;
  std::memcpy(&w, s.data() + i, s.size() - i);  // little-endian: the low bytes
  return hash_step(h, w);
}

std::uint64_t hash_start() { return content_hash(0xcbf29ce484222325ULL, "obmen content 2\n"); }

std::int64_t hash_value(std::uint64_t h) { return static_cast<std::int64_t>(h); }

// A row's content hash, fed field by field — the fields its staging line would hold, in that
// order — without building the line (most rows of an import are never staged). Each field's
// length is folded in by content_hash; NULL is a word no text ends in (texts hold no NUL).
class row_hash {
 public:
  row_hash& text(std::string_view s) {
    h_ = content_hash(h_, s);
    return *this;
  }
  row_hash& opt(std::string_view s) { return s.empty() ? null() : text(s); }
  row_hash& null() {
    h_ = hash_step(h_, 0xFF00000000000000ULL);
    return *this;
  }
  row_hash& flag(bool b) { return text(b ? "t" : "f"); }
  row_hash& number(std::int64_t n) { return text(std::to_string(n)); }
  std::int64_t value() const { return hash_value(h_); }

 private:
  std::uint64_t h_ = hash_start();
};

// A PostgreSQL text[] literal for a parameter: {"a","b\"c"}.
std::string text_array(const std::vector<std::string_view>& items) {
  std::string out = "{";
  for (const auto& v : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (const char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

// Rows of one batch by external id; when an id repeats, the last row wins (as a later element
// of the same file would overwrite an earlier one) but keeps the first one's place.
template <class T, class Key>
std::vector<const T*> last_wins(const std::vector<T>& rows, Key key) {
  std::unordered_map<std::string, std::size_t> at;
  std::vector<const T*> out;
  for (const auto& r : rows) {
    auto [it, fresh] = at.try_emplace(key(r), out.size());
    if (fresh)
      out.push_back(&r);
    else
      out[it->second] = &r;
  }
  return out;
}

// True for text PostgreSQL's numeric accepts and that model::normalize_decimal leaves as is.
bool is_decimal(const std::string& s) {
  const auto n = model::normalize_decimal(s);
  return n && *n == s;
}

// numeric(18,4) holds 14 digits before the point.
bool fits_price(const std::string& s) {
  const auto start = s.find_first_not_of("-0");
  if (start == std::string::npos) return true;
  const auto point = s.find('.');
  const auto int_end = point == std::string::npos ? s.size() : point;
  return int_end <= start || int_end - start <= 14;
}

// More than the 4 decimal places numeric(18,4) keeps (trailing zeros aside).
bool rounds_price(const std::string& s) {
  const auto point = s.find('.');
  if (point == std::string::npos) return false;
  const auto last = s.find_last_not_of('0');
  return last != std::string::npos && last > point + 4;
}

std::int64_t count_of(const pqxx::result& r, int column = 0) { return r[0][column].as<std::int64_t>(); }

// The staging tables live for the caller's transaction (TEMP, ON COMMIT DROP). They are created
// by group when a writer of the transaction first stages rows of that kind (a 1% offers package
// needs 7 of the 13: measured, the whole DDL cost it 7 to 37 ms); to_regclass tells whether an
// earlier writer already did.
struct staging_group {
  std::vector<std::string> tables;
  const char* ddl;
};

const std::vector<staging_group>& staging_groups() {
  static const std::vector<staging_group> groups = {
      {{"obmen_merged", "obmen_carried"}, R"sql(
CREATE TEMP TABLE obmen_merged (id bigint PRIMARY KEY, inserted boolean NOT NULL) ON COMMIT DROP;
-- What each writer carried, for finish_*(full). An id may repeat (a later batch sends it again):
-- no key, which the NOT EXISTS of the deactivation does not mind and which spares an index
-- insert per carried row.
CREATE TEMP TABLE obmen_carried (writer bigint, entity text, external_id text) ON COMMIT DROP;
)sql"},
      {{"obmen_stage_categories"}, R"sql(
CREATE TEMP TABLE obmen_stage_categories (
  external_id text, parent_external_id text, name text, description text, active boolean
) ON COMMIT DROP;
CREATE INDEX ON obmen_stage_categories (external_id);
)sql"},
      {{"obmen_stage_attributes"}, R"sql(
CREATE TEMP TABLE obmen_stage_attributes (
  external_id text, name text, value_type text, options jsonb, active boolean
) ON COMMIT DROP;
)sql"},
      {{"obmen_stage_price_types"}, R"sql(
CREATE TEMP TABLE obmen_stage_price_types (
  external_id text, code text, name text, currency text
) ON COMMIT DROP;
)sql"},
      {{"obmen_stage_warehouses"}, R"sql(
CREATE TEMP TABLE obmen_stage_warehouses (
  external_id text, code text, name text, active boolean
) ON COMMIT DROP;
)sql"},
      {{"obmen_stage_products", "obmen_stage_product_images", "obmen_image_want", "obmen_image_changes"}, R"sql(
CREATE TEMP TABLE obmen_stage_products (
  external_id text, version text, sku text, barcode text, code text, name text, full_name text,
  description text, unit text, unit_code text, manufacturer text, vat_rate text,
  category_external_id text, attributes jsonb, requisites jsonb, images_given boolean, active boolean,
  content_hash bigint
) ON COMMIT DROP;
CREATE TEMP TABLE obmen_stage_product_images (
  product_external_id text, position int, sha256 text
) ON COMMIT DROP;
CREATE INDEX ON obmen_stage_products (external_id);
CREATE INDEX ON obmen_stage_product_images (product_external_id);
CREATE TEMP TABLE obmen_image_want (
  product_id bigint, position int, sha256 text, PRIMARY KEY (product_id, position)
) ON COMMIT DROP;
CREATE TEMP TABLE obmen_image_changes (product_id bigint PRIMARY KEY) ON COMMIT DROP;
)sql"},
      {{"obmen_stage_offers", "obmen_stage_prices", "obmen_stage_stock"}, R"sql(
CREATE TEMP TABLE obmen_stage_offers (
  external_id text, product_external_id text, characteristic_id text, version text, name text,
  sku text, barcode text, characteristics jsonb, active boolean, header_only boolean,
  quantity numeric, prices_given boolean, stock_given boolean, content_hash bigint,
  offer_id bigint  -- the portal's, filled in once the offers are merged (see put_offers)
) ON COMMIT DROP;
-- price_type_id / warehouse_id: the portal's, resolved when staged (NULL: not declared).
CREATE TEMP TABLE obmen_stage_prices (
  offer_external_id text, price_type_external_id text, value numeric(18,4), currency text,
  unit text, coefficient numeric, price_type_id bigint
) ON COMMIT DROP;
CREATE TEMP TABLE obmen_stage_stock (
  offer_external_id text, warehouse_external_id text, quantity numeric, warehouse_id bigint
) ON COMMIT DROP;
CREATE INDEX ON obmen_stage_offers (external_id);
CREATE INDEX ON obmen_stage_prices (offer_external_id, price_type_id);
CREATE INDEX ON obmen_stage_stock (offer_external_id, warehouse_id);
)sql"},
  };
  return groups;
}

// Temp tables get no statistics from autovacuum, and portal rows inserted earlier in the same
// transaction are invisible to it too: without ANALYZE the planner assumes a handful of rows and
// picks nested loops that go quadratic on a 20 000-item catalog. Small batches skip it.
constexpr std::size_t analyze_above = 50;
// How long a bulk load waits for the locks it needs to drop a table's foreign keys and indexes.
constexpr const char* bulk_lock_timeout = "5s";

// The same holds for the portal tables an import fills, inside its one long transaction: a table
// that was empty (or never analyzed) when its statistics were taken looks tiny to the planner, and
// `source = $1` is guessed to match 0.5% of it, so per-batch merges turn into hash joins over the
// whole table — a 100 000-product catalog spent most of its time re-reading portal.stock. A table
// is analyzed again (inside the transaction, which sees its own rows) each time the rows this
// writer inserted into it reach its size at the previous ANALYZE: O(log n) ANALYZEs per import.
constexpr std::int64_t reanalyze_at_least = 1000;

std::atomic<std::int64_t> next_writer_id{1};

// Products and offers carry content_hash: a write that is not an import of the row as a whole
// (deactivation) makes it unknown, so the next import compares that row in full.
std::string clears_hash(const char* entity) {
  return std::string_view(entity) == "categories" ? "" : ", content_hash = NULL";
}

// After a staged merge, the rule for portal.<table>.content_hash — "set: importing a row with
// this hash now would change nothing" — is restored for the batch's rows: a row the merge wrote
// (obmen_merged: the upsert, a new image list, prices or stock of an offer) stores the hash it
// was staged with, which is NULL for header-only offers and rows with warnings; a row without
// a hash yet (stored before migration 0006, say) gets one. A row the merge left as it was keeps
// its hash: it still describes the row, and rewriting it would write to an unchanged row.
// The batch's rows are found by key first (a materialised CTE): written as one join, the filter
// on the portal table made the planner scan all of it (35 ms instead of 5 for 1 400 of 140 000
// offers).
std::string fix_hashes(const char* table, const char* stage_table) {
  return std::string("WITH y AS MATERIALIZED (SELECT t.id, t.content_hash AS stored, s.content_hash FROM ") +
         stage_table + " s JOIN portal." + table + " t ON t.source = $1 AND t.external_id = s.external_id), "
         "x AS MATERIALIZED (SELECT id, content_hash FROM y WHERE stored IS DISTINCT FROM content_hash "
         "AND (stored IS NULL OR id IN (SELECT id FROM obmen_merged))) "
         "UPDATE portal." + table + " t SET content_hash = x.content_hash FROM x WHERE t.id = x.id";
}

}  // namespace

// ─── catalog_writer ─────────────────────────────────────────────────────────────────────────

namespace {

// A Bloom filter of external ids, 2 MiB whatever the catalog's size: "no" is certain, "maybe"
// is wrong about one id in 10 000 at 400 000 ids and grows less sure beyond (a wrong "maybe"
// costs only a look-up).
class id_filter {
 public:
  // An id's key: computed where the batch is prepared, off the store thread.
  static std::uint64_t key(std::string_view id) { return std::hash<std::string_view>{}(id); }
  void add(std::uint64_t key) {
    auto [h, step] = probe(key);
    for (int i = 0; i < probes; ++i, h += step) bits_[(h % size) / 64] |= std::uint64_t{1} << (h % 64);
  }
  bool may_contain(std::uint64_t key) const {
    auto [h, step] = probe(key);
    for (int i = 0; i < probes; ++i, h += step)
      if ((bits_[(h % size) / 64] & (std::uint64_t{1} << (h % 64))) == 0) return false;
    return true;
  }

 private:
  static constexpr std::size_t size = std::size_t{1} << 24;  // bits
  static constexpr int probes = 4;
  static std::pair<std::uint64_t, std::uint64_t> probe(std::uint64_t h) { return {h, ((h >> 29) | (h << 35)) | 1}; }
  std::vector<std::uint64_t> bits_ = std::vector<std::uint64_t>(size / 64);
};

// The stored rows of one entity of a source, read in one scan when the writer is told a whole
// set is coming (catalog_writer::expect_whole): by id key (id_filter::key), each row's content
// hash, portal id, and whether this writer has carried it since. 24 bytes a row (measured, a
// 300 000-product catalog: 17 MB for its products and offers), where a look-up per batch cost
// the server 1.4 s for the 240 000 ids of an unchanged 100 000-product catalog, and the carried
// ids another 0.3 s to record and compare.
class stored_set {
 public:
  struct row {
    std::uint64_t key;
    std::int64_t hash;
    std::int64_t id;  // the portal id; bit 62: carried, bit 61: hash NULL, bit 60: look up again
  };
  static constexpr std::int64_t carried_bit = std::int64_t{1} << 62, null_bit = std::int64_t{1} << 61,
                                ask_bit = std::int64_t{1} << 60, id_mask = ask_bit - 1;

  // Reads the rows in pages (a cursor), so the scan never holds more than a page of results.
  // Returns false when two stored ids share a key (the caller looks them up one by one instead).
  bool load(pqxx::work& tx, const std::string& table, const std::string& source) {
    tx.exec_params("DECLARE obmen_stored NO SCROLL CURSOR FOR SELECT external_id, content_hash, id FROM " + table +
                       " WHERE source = $1",
                   source);
    for (;;) {
      const auto page = tx.exec("FETCH FORWARD 20000 FROM obmen_stored");
      for (const auto& r : page) {
        const auto id = r[2].as<std::int64_t>();
        if (id < 0 || id > id_mask) {
          tx.exec("CLOSE obmen_stored");
          return false;
        }
        rows_.push_back(
            {id_filter::key(std::string_view(r[0].c_str(), r[0].size())), r[1].is_null() ? 0 : r[1].as<std::int64_t>(), id | (r[1].is_null() ? null_bit : 0)});
      }
      if (page.size() < 20000) break;
    }
    tx.exec("CLOSE obmen_stored");
    rows_.shrink_to_fit();
    std::sort(rows_.begin(), rows_.end(), [](const row& a, const row& b) { return a.key < b.key; });
    for (std::size_t i = 1; i < rows_.size(); ++i)
      if (rows_[i].key == rows_[i - 1].key) return false;
    return true;
  }
  row* find(std::uint64_t key) {
    const auto it = std::lower_bound(rows_.begin(), rows_.end(), key, [](const row& r, std::uint64_t k) { return r.key < k; });
    return it != rows_.end() && it->key == key ? &*it : nullptr;
  }
  // Portal ids of the rows not carried.
  std::vector<std::int64_t> not_carried() const {
    std::vector<std::int64_t> out;
    for (const auto& r : rows_)
      if ((r.id & carried_bit) == 0) out.push_back(r.id & id_mask);
    return out;
  }

 private:
  std::vector<row> rows_;
};

}  // namespace

struct catalog_writer::impl {
  pqxx::work& tx;
  std::string source;
  std::optional<std::int64_t> session;
  std::int64_t writer_id = next_writer_id++;
  import_counts counts;
  std::size_t warnings_dropped = 0;

  std::string planner_random_page_cost;  // bulk: the session's, before the writer lowered it

  impl(pqxx::work& t, std::string s, std::optional<std::int64_t> sid, bool bulk_load)
      : tx(t), source(std::move(s)), session(sid), bulk(bulk_load) {
    // New products and offers are COPied straight into the portal tables (see put_products): a
    // concurrent writer of the same source inserting the same ids would make that fail rather
    // than wait, so writers of one source take turns. The lock is the one import_catalog_file
    // takes; advisory locks nest within a session, so writers sharing a transaction are fine.
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtext('obmen.import'), hashtext($1))", source);
    // The merges join a few thousand staged rows to tables of hundreds of thousands by their
    // keys; with the default random_page_cost (4, spinning disks) the planner hashes the whole
    // table instead of probing its index (measured, 1% package of 100 000 products: the price
    // merge 48 ms instead of 8). For its own transaction obmen assumes SSD or RAM.
    // Not for the whole-table joins that validate re-created keys (see restore_constraints).
    if (bulk) planner_random_page_cost = tx.exec1("SELECT current_setting('random_page_cost')")[0].as<std::string>();
    tx.exec("SELECT set_config('random_page_cost', '1.1', true) "
            "WHERE current_setting('random_page_cost')::float8 > 1.1");
    staging("obmen_merged");
  }

  // ── bulk load (see catalog_writer's constructor) ──
  bool bulk = false;
  std::set<std::string> bulk_checked;     // tables already looked at
  std::set<std::string> bulk_tables;      // tables loaded this way: empty, and locked by us since
  std::map<std::string, id_filter> put_ids;  // by entity: ids put into a bulk-loaded table
  std::vector<std::string> deferred;      // the statements re-creating indexes and foreign keys
  std::map<std::string, std::vector<std::string>> deferred_keys;  // by table: its primary key and unique constraints

  // For each of `tables` (names in schema portal) that holds no row at all: drops its foreign
  // keys, its plain (non-unique, constraint-less) indexes, and its primary key and unique
  // constraints that no foreign key references, for the rest of the transaction, and remembers
  // how to re-create them. COPY into a table without indexes writes no index entry (nor its WAL
  // record) row by row: measured on 560 000 stock rows, 1.05 s with the primary key and the
  // unique key, 0.19 s without, and 0.24 s more to build both afterwards. The merges and
  // look-ups need the keys: restore_keys(table) brings a table's keys back before the first of
  // them (a bulk load that takes no such path has them re-created only by close()).
  // Waits at most bulk_lock_timeout for the locks (dropping a foreign key locks the referenced
  // table too); a table it cannot lock in time is loaded the ordinary way.
  void defer_constraints(std::initializer_list<const char*> tables) {
    if (!bulk) return;
    for (const char* t : tables) {
      if (!bulk_checked.insert(t).second) continue;
      const std::string table = std::string("portal.") + t;
      if (!tx.exec1("SELECT NOT EXISTS (SELECT 1 FROM " + table + ")")[0].as<bool>()) continue;
      // kind 0: a key, 1: a plain index, 2: a foreign key (dropped first, re-created last).
      const auto defs = tx.exec_params(R"sql(
        SELECT 1 AS kind, 'DROP INDEX ' || i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
          FROM pg_index i
         WHERE i.indrelid = $1::regclass AND NOT i.indisunique AND NOT i.indisprimary
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
        UNION ALL
        SELECT CASE c.contype WHEN 'f' THEN 2 ELSE 0 END,
               'ALTER TABLE ' || c.conrelid::regclass::text || ' DROP CONSTRAINT ' || quote_ident(c.conname),
               'ALTER TABLE ' || c.conrelid::regclass::text || ' ADD CONSTRAINT ' || quote_ident(c.conname) || ' ' ||
               pg_get_constraintdef(c.oid)
          FROM pg_constraint c
         WHERE c.conrelid = $1::regclass
           AND (c.contype = 'f'
                OR (c.contype IN ('p', 'u')
                    AND NOT EXISTS (SELECT 1 FROM pg_constraint r WHERE r.contype = 'f' AND r.conindid = c.conindid)))
         ORDER BY 1 DESC, 2)sql",
                                       table);
      if (defs.empty()) continue;
      const auto previous = tx.exec1("SELECT current_setting('lock_timeout')")[0].as<std::string>();
      try {
        pqxx::subtransaction sub(tx, "obmen_bulk_load");
        sub.exec_params("SELECT set_config('lock_timeout', $1, true)", std::string(bulk_lock_timeout));
        for (const auto& d : defs) sub.exec(d[1].as<std::string>());
        sub.exec_params("SELECT set_config('lock_timeout', $1, true)", previous);
        // Another source's writer may have inserted between the look and the lock.
        if (!sub.exec1("SELECT NOT EXISTS (SELECT 1 FROM " + table + ")")[0].as<bool>()) {
          sub.abort();
          continue;
        }
        sub.commit();
      } catch (const pqxx::sql_error& e) {
        // 55P03 lock_not_available: the portal holds a lock on one of the tables; the
        // subtransaction's drops were rolled back.
        if (e.sqlstate() != "55P03") throw;
        tx.exec_params("SELECT set_config('lock_timeout', $1, true)", previous);
        continue;
      }
      for (const auto& d : defs)
        (d[0].as<int>() == 0 ? deferred_keys[t] : deferred).push_back(d[2].as<std::string>());
      bulk_tables.insert(t);
    }
  }

  // A table this writer bulk-loads held nothing when it started and nobody else could write to
  // it since: every row in it is one this writer put.
  bool bulk_loaded(const char* table) const { return bulk_tables.count(table) != 0; }

  // The first of n ids reserved from portal.<table>'s id sequence in one step, for a bulk-loaded
  // table (nobody else inserts into it); else none, and each row takes its id from the column's
  // default (a nextval per row: measured 0.2 s of server time over the 1.1 million rows of a
  // 100 000-product catalog).
  std::optional<std::int64_t> reserve_ids(const char* table, std::size_t n) {
    if (!bulk_loaded(table) || n == 0) return std::nullopt;
    const auto last = tx.exec_params1("SELECT setval(s, nextval(s) + $1 - 1) FROM pg_get_serial_sequence($2, 'id') AS s",
                                      static_cast<std::int64_t>(n), std::string("portal.") + table)[0]
                          .as<std::int64_t>();
    return last - static_cast<std::int64_t>(n) + 1;
  }

  // Runs re-creating statements with the memory to sort and join in memory, and index builds
  // with parallel workers (measured on 560 000 stock rows: an index in 124 ms instead of 212, a
  // key check in 66 ms instead of 81); the settings are the transaction's and are put back.
  // A key is validated by one join of whole tables: hashed, as the session's own costs plan it
  // (with the writer's random_page_cost it probed an index per row, 0.6 s slower here).
  void recreate(const std::vector<std::string>& statements) {
    if (statements.empty()) return;
    const auto before = tx.exec1(
        "SELECT current_setting('maintenance_work_mem'), current_setting('work_mem'), "
        "current_setting('random_page_cost')");
    tx.exec_params("SELECT set_config('maintenance_work_mem', '128MB', true), set_config('work_mem', '64MB', true), "
                   "set_config('random_page_cost', $1, true)",
                   planner_random_page_cost);
    for (const auto& create : statements) tx.exec(create);
    tx.exec_params("SELECT set_config('maintenance_work_mem', $1, true), set_config('work_mem', $2, true), "
                   "set_config('random_page_cost', $3, true)",
                   before[0].as<std::string>(), before[1].as<std::string>(), before[2].as<std::string>());
  }

  // Brings back the keys defer_constraints dropped from these tables (each built in one sort of
  // the rows put so far), before a statement that finds their rows by key or upserts into them.
  void restore_keys(std::initializer_list<const char*> tables) {
    std::vector<std::string> statements;
    for (const char* t : tables)
      if (const auto it = deferred_keys.find(t); it != deferred_keys.end()) {
        statements.insert(statements.end(), it->second.begin(), it->second.end());
        deferred_keys.erase(it);
      }
    recreate(statements);
  }

  // Re-creates what defer_constraints dropped: keys and indexes (built in one sort each), then
  // foreign keys (validated by one join each).
  void restore_constraints() {
    std::vector<std::string> statements;
    for (auto& [table, keys] : deferred_keys) statements.insert(statements.end(), keys.begin(), keys.end());
    deferred_keys.clear();
    std::stable_partition(deferred.begin(), deferred.end(),
                          [](const std::string& create) { return create.rfind("CREATE", 0) == 0; });
    statements.insert(statements.end(), deferred.begin(), deferred.end());
    deferred.clear();
    recreate(statements);
    // A table analysed early (past reanalyze_at_least rows) is not analysed again: its key
    // statistics scale with its size (PostgreSQL scales row counts by the pages it has now), and
    // autovacuum refreshes them; measured, a second ANALYZE of the four tables cost 0.2 s of a
    // 6.4 s import and changed no plan of the re-import or the 1% package.
    for (const auto& [table, g] : grown)
      if (bulk_loaded(table.c_str()) && g.since > 0 && !g.early)
        tx.exec("ANALYZE portal." + table + " (" + g.keys + ")");
    bulk_tables.clear();
  }

  // Portal ids of this source's categories, price types and warehouses by external id, read
  // when first needed and forgotten when the writer puts that entity. They are few (whatever the
  // catalog's size): the fast path resolves references with them in memory.
  using id_map = std::unordered_map<std::string, std::int64_t>;
  std::optional<id_map> category_ids, price_type_ids, warehouse_ids;

  const id_map& ids(std::optional<id_map>& cache, const char* table) {
    if (!cache) {
      cache.emplace();
      for (const auto& r : tx.exec_params(std::string("SELECT external_id, id FROM portal.") + table + " WHERE source = $1",
                                          source))
        cache->emplace(r[0].as<std::string>(), r[1].as<std::int64_t>());
    }
    return *cache;
  }

  // One statement per batch before anything is staged: records the batch's ids as carried (for
  // finish_*(full) and, in an exchange session, obmen.exchange_seen) and returns the portal's
  // content_hash of those it already holds (external id → hash, nullopt = NULL).
  using stored_hashes = std::unordered_map<std::string, std::optional<std::int64_t>>;
  // In a bulk-loaded table the only stored rows are this writer's earlier batches: the ids it
  // put are remembered in a Bloom filter, and only the ids the filter may have seen (a repeated
  // id, or a false positive) are looked up — usually none, and then there is no statement at all
  // but, in an exchange session, the one recording the ids as seen.
  // keys: id_filter::key of each id.
  stored_hashes look_up(const char* entity, const std::vector<std::string_view>& ids,
                        const std::vector<std::uint64_t>& keys) {
    if (auto* whole = preloaded(entity)) {
      // Each id of the batch is settled in memory: a stored row's hash is known (once: a row this
      // batch changes is looked up again if the id comes back), a new id is remembered in the
      // filter; only ids the filter may have seen are looked up.
      auto& filter = put_ids[entity];
      stored_hashes out;
      std::vector<std::string_view> ask;
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (auto* r = whole->find(keys[i])) {
          if ((r->id & stored_set::ask_bit) != 0) {
            ask.push_back(ids[i]);
          } else {
            out.emplace(std::string(ids[i]), (r->id & stored_set::null_bit) != 0 ? std::nullopt
                                                                                 : std::optional<std::int64_t>(r->hash));
          }
          r->id |= stored_set::carried_bit | stored_set::ask_bit;
        } else if (filter.may_contain(keys[i])) {
          ask.push_back(ids[i]);
        } else {
          filter.add(keys[i]);
        }
      }
      record_seen(entity, ids);
      if (!ask.empty())
        for (auto& [id, hash] : stored_hashes_of(entity, text_array(ask), false, false)) out[id] = hash;
      return out;
    }
    if (bulk_loaded(entity)) {
      auto& filter = put_ids[entity];
      std::vector<std::string_view> maybe;
      for (std::size_t i = 0; i < ids.size(); ++i)
        if (filter.may_contain(keys[i])) maybe.push_back(ids[i]);
      for (const auto k : keys) filter.add(k);
      record_seen(entity, ids);
      if (maybe.empty()) return {};
      restore_keys({entity});
      return stored_hashes_of(entity, text_array(maybe), false, false);
    }
    return stored_hashes_of(entity, text_array(ids), changes_only.count(entity) == 0, session.has_value());
  }

  // In an exchange session: records the ids in obmen.exchange_seen (for deactivate_unseen).
  void record_seen(const char* entity, const std::vector<std::string_view>& ids) {
    if (session)
      tx.exec_params("INSERT INTO obmen.exchange_seen (session_id, entity, external_id) "
                     "SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING",
                     *session, std::string(entity), text_array(ids));
  }

  // carry: record the ids in obmen_carried (for finish_*(full)); seen: in obmen.exchange_seen
  // (in an exchange session).
  stored_hashes stored_hashes_of(const char* entity, const std::string& ids_array, bool carry, bool seen) {
    std::string sql = !carry ? "WITH carried AS (SELECT $2::bigint, $3::text)"
                                          : "WITH carried AS (INSERT INTO obmen_carried (writer, entity, external_id) "
                                            "SELECT $2, $3, unnest($4::text[]))";
    if (seen)
      sql += ", seen AS (INSERT INTO obmen.exchange_seen (session_id, entity, external_id) "
             "SELECT $5, $3, unnest($4::text[]) ON CONFLICT DO NOTHING)";
    sql += std::string(" SELECT external_id, content_hash FROM portal.") + entity +
           " WHERE source = $1 AND external_id = ANY($4::text[])";
    const auto r = seen ? tx.exec_params(sql, source, writer_id, std::string(entity), ids_array, *session)
                           : tx.exec_params(sql, source, writer_id, std::string(entity), ids_array);
    stored_hashes out;
    out.reserve(r.size());
    for (const auto& row : r)
      out.emplace(row[0].as<std::string>(),
                  row[1].is_null() ? std::nullopt : std::optional<std::int64_t>(row[1].as<std::int64_t>()));
    return out;
  }

  void warn(std::string w) {
    if (counts.warnings.size() < max_warnings) {
      counts.warnings.push_back(std::move(w));
      return;
    }
    ++warnings_dropped;
    const auto line = "… and " + std::to_string(warnings_dropped) + " more warnings";
    if (warnings_dropped == 1)
      counts.warnings.push_back(line);
    else
      counts.warnings.back() = line;
  }

  // Creates the group of staging tables `table` belongs to, unless this transaction has it (a
  // writer sharing the transaction may have made it).
  std::set<const staging_group*> staging_ready;
  void staging(const std::string& table) {
    for (const auto& g : staging_groups()) {
      if (std::find(g.tables.begin(), g.tables.end(), table) == g.tables.end()) continue;
      if (!staging_ready.insert(&g).second) return;
      if (tx.exec_params1("SELECT to_regclass('pg_temp.' || $1) IS NULL", g.tables.front())[0].as<bool>())
        tx.exec(g.ddl);
      return;
    }
  }

  // Empties these staging tables (creating them first if need be).
  void reset(std::initializer_list<const char*> tables) {
    std::string sql = "TRUNCATE";
    bool first = true;
    for (const char* t : tables) {
      staging(t);
      sql += first ? " " : ", ";
      sql += t;
      first = false;
    }
    tx.exec(sql);
  }

  // table: a staging table, with the columns to sample when not all ("obmen_stage_offers (external_id)").
  void analyze(const char* table, std::size_t rows) {
    if (rows > analyze_above) tx.exec(std::string("ANALYZE ") + table);
  }

  struct growth {
    std::int64_t base = -1;   // rows at the last ANALYZE (pg_class.reltuples at first)
    std::int64_t since = 0;   // inserted by this writer since
    std::string keys;
    bool early = false;       // a bulk-loaded table: analysed once while it grows
  };
  std::map<std::string, growth> grown;

  // Call with the rows just inserted into portal.<table>; `keys` are the columns the merges join
  // and filter on (statistics of wide text and jsonb columns would cost most of the sampling).
  void grew(const char* table, const char* keys, std::int64_t inserted) {
    if (inserted <= 0) return;
    auto& g = grown[table];
    g.keys = keys;
    if (bulk_loaded(table)) {
      // Once early, so the planner knows the keys are unique (it probes the index for the
      // look-ups rather than scanning); a table too small for that is analysed by
      // restore_constraints().
      g.since += inserted;
      if (!g.early && g.since >= reanalyze_at_least) {
        tx.exec(std::string("ANALYZE portal.") + table + " (" + keys + ")");
        g.early = true;
      }
      return;
    }
    if (g.base < 0)
      g.base = tx.exec1(std::string("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'portal.") + table +
                        "'::regclass")[0]
                   .as<std::int64_t>();
    g.since += inserted;
    if (g.since < reanalyze_at_least || g.since < g.base) return;
    tx.exec(std::string("ANALYZE portal.") + table + " (" + keys + ")");
    g.base += g.since;
    g.since = 0;
  }

  // Remembers the batch's external ids: for finish_*(full) and, in an exchange session, for
  // deactivate_unseen().
  void carried(const char* entity, const char* stage_table) {
    tx.exec_params(std::string("INSERT INTO obmen_carried (writer, entity, external_id) SELECT $1, $2, external_id FROM ") +
                       stage_table,
                   writer_id, std::string(entity));
    if (session)
      tx.exec_params(std::string("INSERT INTO obmen.exchange_seen (session_id, entity, external_id) "
                                 "SELECT $1, $2, external_id FROM ") +
                         stage_table + " ON CONFLICT DO NOTHING",
                     *session, std::string(entity));
  }

  // Rows of this source that the batch marks deleted and the portal still shows: the merge
  // will update them, and they are reported as deactivated rather than updated.
  std::int64_t marked_deleted(const char* table, const char* stage_table, const char* extra = "") {
    return count_of(tx.exec_params(std::string("SELECT count(*) FROM ") + stage_table + " s JOIN portal." + table +
                                       " t ON t.source = $1 AND t.external_id = s.external_id "
                                       "WHERE NOT s.active AND t.active" + extra,
                                   source));
  }

  // Runs a merge that fills obmen_merged (id, inserted) and returns {inserted, updated}.
  std::pair<std::int64_t, std::int64_t> merged_counts() {
    const auto r = tx.exec(
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM obmen_merged");
    return {count_of(r, 0), count_of(r, 1)};
  }

  void record(const char* entity, std::int64_t carried_rows, std::int64_t inserted, std::int64_t updated,
              std::int64_t deactivated = 0, std::int64_t skipped = 0) {
    entity_counts c;
    c.inserted = inserted;
    c.updated = updated - deactivated;
    c.deactivated = deactivated;
    c.unchanged = carried_rows - inserted - updated;
    c.skipped = skipped;
    counts.by_entity[entity] += c;
  }

  std::int64_t deactivate_not_carried(const char* entity) {
    tx.exec("ANALYZE obmen_carried");
    return count_of(tx.exec_params(
        std::string("WITH d AS (UPDATE portal.") + entity + " t SET active = false, updated_at = now()" +
            clears_hash(entity) + " WHERE t.source = $1 AND t.active AND NOT EXISTS ("
            "SELECT 1 FROM obmen_carried c WHERE c.writer = $2 AND c.entity = $3 AND c.external_id = t.external_id) "
            "RETURNING 1) SELECT count(*) FROM d",
        source, writer_id, std::string(entity)));
  }

  void finish(const char* entity, bool full) {
    if (full && changes_only.count(entity) != 0)
      throw std::logic_error(std::string("catalog_writer: finish_") + entity + "(true) after expect_changes");
    if (!full || bulk_loaded(entity)) return;
    std::int64_t n = 0;
    if (auto* whole = preloaded(entity)) {
      const auto ids = whole->not_carried();
      if (!ids.empty()) {
        std::string array = "{";
        for (const auto id : ids) array += std::to_string(id) + ",";
        array.back() = '}';
        n = count_of(tx.exec_params(std::string("WITH d AS (UPDATE portal.") + entity +
                                        " t SET active = false, updated_at = now()" + clears_hash(entity) +
                                        " WHERE t.id = ANY($1::bigint[]) AND t.active RETURNING 1) SELECT count(*) FROM d",
                                    array));
      }
    } else {
      n = deactivate_not_carried(entity);
    }
    if (n != 0) counts.by_entity[entity].deactivated += n;
  }

  // ── whole sets and changes (see catalog_writer::expect_whole, expect_changes) ──
  std::map<std::string, stored_set> whole_sets;
  std::set<std::string> changes_only;  // no carried ids recorded: no finish_*(true) will read them

  // Reads the stored rows of `entity` now, before its first batch (the writer's thread has
  // nothing else to do while the reader parses it). Not for a table that holds no row at all:
  // its first batch loads it in bulk (see defer_constraints). Not either when two stored ids
  // share a key: then every batch looks its ids up.
  void expect_whole(const std::string& entity) {
    if (whole_sets.count(entity) != 0 || bulk_checked.count(entity) != 0) return;
    if (tx.exec1("SELECT NOT EXISTS (SELECT 1 FROM portal." + entity + ")")[0].as<bool>()) return;
    stored_set set;
    if (set.load(tx, "portal." + entity, source)) whole_sets.emplace(entity, std::move(set));
  }

  // The stored rows of `entity` read by expect_whole, or null.
  stored_set* preloaded(const char* entity) {
    const auto it = whole_sets.find(entity);
    return it == whole_sets.end() ? nullptr : &it->second;
  }

  // Whether the portal holds every row of a small entity (price types, warehouses) exactly as
  // given — external id first, then the values of `columns` as text (NULL: nullopt), then
  // `also` when engaged — so that its merge would write nothing: the file's declarations are
  // settled by one read instead of staging them (measured, 1% package: 10 ms of its 0.2 s).
  bool all_stored(const char* table, const std::string& columns, const std::vector<std::array<field, 4>>& rows,
                  const field& also = std::nullopt) {
    std::map<std::string, std::vector<field>> stored;
    for (const auto& r : tx.exec_params(std::string("SELECT external_id, ") + columns + " FROM portal." + table +
                                            " WHERE source = $1",
                                        source)) {
      std::vector<field> values;
      for (std::size_t i = 1; i < r.size(); ++i)
        values.push_back(r[static_cast<int>(i)].is_null() ? field{} : field{r[static_cast<int>(i)].as<std::string>()});
      stored.emplace(r[0].as<std::string>(), std::move(values));
    }
    for (const auto& row : rows) {
      const auto it = stored.find(*row[0]);
      if (it == stored.end()) return false;
      std::vector<field> want(row.begin() + 1, row.end());
      if (also) want.push_back(also);
      if (it->second != want) return false;
    }
    return true;
  }

  void put_categories(const std::vector<model::category>& batch);
  void put_attributes(const std::vector<attribute_row>& batch);
  void put_price_types(const std::vector<price_type_row>& batch);
  void put_warehouses(const std::vector<warehouse_row>& batch);
  bool put_image(const std::string& sha256, const std::filesystem::path& file, const std::string& mime);
  void put_products(const product_batch& batch);
  void put_offers(const offer_batch& batch);
  // unknown_*: a staged row names a price type / warehouse not declared (warned about here).
  void updated_by_address(const char* table, std::int64_t updated, std::int64_t changed);
  void warn_undeclared(const std::string& stage_table, const std::string& column, const std::string& what,
                       const std::string& row);
  void merge_prices(std::int64_t skipped_by_value, bool unknown_price_types);
  void merge_stock(std::int64_t skipped_by_value, bool unknown_warehouses);
};

// ── categories ──

void catalog_writer::impl::put_categories(const std::vector<model::category>& batch) {
  category_ids.reset();
  std::vector<std::array<field, 5>> rows;
  std::int64_t skipped = 0;
  for (const auto* c : last_wins(batch, [](const model::category& c) { return c.external_id; })) {
    if (c->external_id.empty()) {
      warn("category '" + c->name + "': no external id; skipped");
      ++skipped;
      continue;
    }
    rows.push_back({c->external_id, text(c->parent_external_id == c->external_id ? "" : c->parent_external_id),
                    c->name, text(c->description), boolean(c->active)});
  }
  if (rows.empty() && skipped == 0) return;
  reset({"obmen_stage_categories", "obmen_merged"});
  copy_rows(tx, "obmen_stage_categories", {"external_id", "parent_external_id", "name", "description", "active"}, rows);
  analyze("obmen_stage_categories", rows.size());
  carried("categories", "obmen_stage_categories");
  const auto marked = marked_deleted("categories", "obmen_stage_categories");

  // Parents already in the portal are resolved in the upsert; parents that arrive in this same
  // batch exist only after it, so a second statement links those.
  tx.exec_params(R"sql(
    WITH src AS (
      SELECT s.external_id, p.id AS parent_id, s.name, s.description, s.active
        FROM obmen_stage_categories s
        LEFT JOIN portal.categories p ON p.source = $1 AND p.external_id = s.parent_external_id),
    up AS (
      INSERT INTO portal.categories AS t (source, external_id, parent_id, name, description, active)
      SELECT $1, external_id, parent_id, name, description, active FROM src
       WHERE NOT EXISTS (SELECT 1 FROM portal.categories c WHERE c.source = $1 AND c.external_id = src.external_id
                           AND (c.parent_id, c.name, c.description, c.active)
                               IS NOT DISTINCT FROM (src.parent_id, src.name, src.description, src.active))
      ON CONFLICT (source, external_id) DO UPDATE
        SET parent_id = excluded.parent_id, name = excluded.name, description = excluded.description,
            active = excluded.active, updated_at = now()
        WHERE (t.parent_id, t.name, t.description, t.active)
              IS DISTINCT FROM (excluded.parent_id, excluded.name, excluded.description, excluded.active)
      RETURNING t.id, (t.xmax = 0) AS inserted)
    INSERT INTO obmen_merged SELECT id, inserted FROM up)sql",
                 source);
  tx.exec_params(R"sql(
    WITH fix AS (
      UPDATE portal.categories c SET parent_id = p.id, updated_at = now()
        FROM obmen_stage_categories s
        JOIN portal.categories p ON p.source = $1 AND p.external_id = s.parent_external_id
       WHERE c.source = $1 AND c.external_id = s.external_id AND c.parent_id IS DISTINCT FROM p.id
      RETURNING c.id)
    INSERT INTO obmen_merged SELECT id, false FROM fix ON CONFLICT (id) DO NOTHING)sql",
                 source);
  for (const auto& r : tx.exec_params(R"sql(
      SELECT s.external_id, s.parent_external_id FROM obmen_stage_categories s
       WHERE s.parent_external_id IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM portal.categories p WHERE p.source = $1 AND p.external_id = s.parent_external_id)
       ORDER BY 1)sql",
                                      source))
    warn("category '" + r[0].as<std::string>() + "': parent '" + r[1].as<std::string>() +
         "' is not known; placed at the root");
  const auto [ins, upd] = merged_counts();
  record("categories", static_cast<std::int64_t>(rows.size()), ins, upd, marked, skipped);
}

// ── attributes, price types, warehouses ──

void catalog_writer::impl::put_attributes(const std::vector<attribute_row>& batch) {
  std::vector<std::array<field, 5>> rows;
  for (const auto* a : last_wins(batch, [](const attribute_row& a) { return a.external_id; })) {
    nlohmann::json options = nlohmann::json::array();
    for (const auto& o : a->options) options.push_back({{"id", o.external_id}, {"value", o.value}});
    rows.push_back({a->external_id, a->name, text(a->value_type), options.dump(), boolean(a->active)});
  }
  if (rows.empty()) return;
  reset({"obmen_stage_attributes", "obmen_merged"});
  copy_rows(tx, "obmen_stage_attributes", {"external_id", "name", "value_type", "options", "active"}, rows);
  const auto marked = marked_deleted("attributes", "obmen_stage_attributes");
  tx.exec_params(R"sql(
    WITH up AS (
      INSERT INTO portal.attributes AS t (source, external_id, name, value_type, options, active)
      SELECT $1, external_id, name, value_type, options, active FROM obmen_stage_attributes s
       WHERE NOT EXISTS (SELECT 1 FROM portal.attributes c WHERE c.source = $1 AND c.external_id = s.external_id
                           AND (c.name, c.value_type, c.options, c.active)
                               IS NOT DISTINCT FROM (s.name, s.value_type, s.options, s.active))
      ON CONFLICT (source, external_id) DO UPDATE
        SET name = excluded.name, value_type = excluded.value_type, options = excluded.options,
            active = excluded.active, updated_at = now()
        WHERE (t.name, t.value_type, t.options, t.active)
              IS DISTINCT FROM (excluded.name, excluded.value_type, excluded.options, excluded.active)
      RETURNING t.id, (t.xmax = 0) AS inserted)
    INSERT INTO obmen_merged SELECT id, inserted FROM up)sql",
                 source);
  const auto [ins, upd] = merged_counts();
  record("attributes", static_cast<std::int64_t>(rows.size()), ins, upd, marked);
}

void catalog_writer::impl::put_price_types(const std::vector<price_type_row>& batch) {
  price_type_ids.reset();
  std::vector<std::array<field, 4>> rows;
  for (const auto* p : last_wins(batch, [](const price_type_row& p) { return p.external_id; }))
    rows.push_back({p->external_id, p->code.empty() ? p->external_id : p->code, p->name, text(p->currency)});
  if (rows.empty()) return;
  if (all_stored("price_types", "code, name, currency, CASE WHEN active THEN 't' ELSE 'f' END", rows, boolean(true))) {
    record("price_types", static_cast<std::int64_t>(rows.size()), 0, 0);
    return;
  }
  reset({"obmen_stage_price_types", "obmen_merged"});
  copy_rows(tx, "obmen_stage_price_types", {"external_id", "code", "name", "currency"}, rows);
  tx.exec_params(R"sql(
    WITH up AS (
      INSERT INTO portal.price_types AS t (source, external_id, code, name, currency, active)
      SELECT $1, external_id, code, name, currency, true FROM obmen_stage_price_types s
       WHERE NOT EXISTS (SELECT 1 FROM portal.price_types c WHERE c.source = $1 AND c.external_id = s.external_id
                           AND (c.code, c.name, c.currency, c.active) IS NOT DISTINCT FROM (s.code, s.name, s.currency, true))
      ON CONFLICT (source, external_id) DO UPDATE
        SET code = excluded.code, name = excluded.name, currency = excluded.currency, active = true,
            updated_at = now()
        WHERE (t.code, t.name, t.currency, t.active)
              IS DISTINCT FROM (excluded.code, excluded.name, excluded.currency, true)
      RETURNING t.id, (t.xmax = 0) AS inserted)
    INSERT INTO obmen_merged SELECT id, inserted FROM up)sql",
                 source);
  const auto [ins, upd] = merged_counts();
  record("price_types", static_cast<std::int64_t>(rows.size()), ins, upd);
}

void catalog_writer::impl::put_warehouses(const std::vector<warehouse_row>& batch) {
  warehouse_ids.reset();
  std::vector<std::array<field, 4>> rows;
  for (const auto* w : last_wins(batch, [](const warehouse_row& w) { return w.external_id; }))
    rows.push_back({w->external_id, w->code.empty() ? w->external_id : w->code, w->name, boolean(w->active)});
  if (rows.empty()) return;
  if (all_stored("warehouses", "code, name, CASE WHEN active THEN 't' ELSE 'f' END", rows)) {
    record("warehouses", static_cast<std::int64_t>(rows.size()), 0, 0);
    return;
  }
  reset({"obmen_stage_warehouses", "obmen_merged"});
  copy_rows(tx, "obmen_stage_warehouses", {"external_id", "code", "name", "active"}, rows);
  const auto marked = marked_deleted("warehouses", "obmen_stage_warehouses");
  tx.exec_params(R"sql(
    WITH up AS (
      INSERT INTO portal.warehouses AS t (source, external_id, code, name, active)
      SELECT $1, external_id, code, name, active FROM obmen_stage_warehouses s
       WHERE NOT EXISTS (SELECT 1 FROM portal.warehouses c WHERE c.source = $1 AND c.external_id = s.external_id
                           AND (c.code, c.name, c.active) IS NOT DISTINCT FROM (s.code, s.name, s.active))
      ON CONFLICT (source, external_id) DO UPDATE
        SET code = excluded.code, name = excluded.name, active = excluded.active, updated_at = now()
        WHERE (t.code, t.name, t.active) IS DISTINCT FROM (excluded.code, excluded.name, excluded.active)
      RETURNING t.id, (t.xmax = 0) AS inserted)
    INSERT INTO obmen_merged SELECT id, inserted FROM up)sql",
                 source);
  const auto [ins, upd] = merged_counts();
  record("warehouses", static_cast<std::int64_t>(rows.size()), ins, upd, marked);
}

// ── images ──

bool catalog_writer::impl::put_image(const std::string& sha256, const std::filesystem::path& file,
                                     const std::string& mime) {
  if (sha256.size() != 64 || sha256.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw std::invalid_argument("put_image: '" + sha256 + "' is not a lowercase hex SHA-256");
  auto& c = counts.by_entity["images"];
  if (!tx.exec_params("SELECT 1 FROM portal.images WHERE sha256 = $1", sha256).empty()) {
    ++c.unchanged;
    return false;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read image " + file.string());
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw std::runtime_error("cannot read image " + file.string());
  const auto size = static_cast<std::int64_t>(bytes.size());
  const auto r = tx.exec_params(
      "INSERT INTO portal.images (sha256, content, mime, size) VALUES ($1, $2, $3, $4) "
      "ON CONFLICT (sha256) DO NOTHING RETURNING 1",
      sha256, pqxx::binarystring(bytes), mime.empty() ? std::string("application/octet-stream") : mime, size);
  if (r.empty()) {
    ++c.unchanged;
    return false;
  }
  ++c.inserted;
  return true;
}

// ── products ──

// A row as prepared for the store: its staging line(s) and, when nothing about it needs a
// warning, its content hash.
namespace {

struct prepared_product {
  const product_row* row;
  std::optional<std::int64_t> hash;
  std::string attributes, requisites;  // as JSON text
};

// obmen_stage_products, content_hash last.
std::string staging_line(const prepared_product& x) {
  const auto& p = *x.row;
  copy_line line;
  line.text(p.external_id).opt(p.version).opt(p.sku).opt(p.barcode).opt(p.code).text(p.name).opt(p.full_name)
      .opt(p.description).opt(p.unit).opt(p.unit_code).opt(p.manufacturer).opt(p.vat_rate)
      .opt(p.category_external_id).text(x.attributes).text(x.requisites).value(boolean(p.images.has_value()))
      .value(boolean(p.active)).number(x.hash);
  return line.str();
}

// obmen_stage_product_images.
std::vector<std::string> image_lines(const prepared_product& x) {
  std::vector<std::string> out;
  if (!x.row->images) return out;
  int position = 0;
  for (const auto& sha : *x.row->images) {
    copy_line image;
    image.text(x.row->external_id).number(++position).text(sha);
    out.push_back(image.str());
  }
  return out;
}

}  // namespace

struct catalog_writer::product_batch {
  std::vector<product_row> batch;
  std::vector<prepared_product> rows;  // pointing into batch
  std::vector<std::uint64_t> id_keys;  // id_filter::key of each row's id
  std::vector<std::string> warnings;
  std::int64_t skipped = 0;
};

std::shared_ptr<const catalog_writer::product_batch> catalog_writer::prepare_products(std::vector<product_row> batch) {
  auto out = std::make_shared<product_batch>();
  out->batch = std::move(batch);
  auto& rows = out->rows;
  for (const auto* p : last_wins(out->batch, [](const product_row& p) { return p.external_id; })) {
    if (p->external_id.empty()) {
      out->warnings.push_back("product '" + p->name + "': no external id; skipped");
      ++out->skipped;
      continue;
    }
    prepared_product x{p, {}, p->attributes_text ? *p->attributes_text : *json_text(p->attributes, "{}"),
                       p->requisites_text ? *p->requisites_text : *json_text(p->requisites, "{}")};
    row_hash h;
    h.text(p->external_id).opt(p->version).opt(p->sku).opt(p->barcode).opt(p->code).text(p->name)
        .opt(p->full_name).opt(p->description).opt(p->unit).opt(p->unit_code).opt(p->manufacturer)
        .opt(p->vat_rate).opt(p->category_external_id).text(x.attributes).text(x.requisites)
        .flag(p->images.has_value()).flag(p->active);
    if (p->images) {
      int position = 0;
      for (const auto& sha : *p->images) h.text("image").number(++position).text(sha);
    }
    x.hash = h.value();
    rows.push_back(std::move(x));
  }
  out->id_keys.reserve(rows.size());
  for (const auto& x : rows) out->id_keys.push_back(id_filter::key(x.row->external_id));
  return out;
}

// Each batch goes three ways. Rows whose content hash equals the stored one would change nothing:
// they are only counted (and recorded as carried). Rows the portal does not hold yet and whose
// references all resolve in memory (a fresh load) are COPied straight into portal.products. The
// rest — changed rows, rows with warnings — take the staged, set-based merge.
void catalog_writer::impl::put_products(const product_batch& prepared) {
  defer_constraints({"products", "product_images"});
  for (const auto& w : prepared.warnings) warn(w);
  const auto& rows = prepared.rows;
  const std::int64_t skipped = prepared.skipped;
  if (rows.empty() && skipped == 0) return;

  std::vector<std::string_view> batch_ids;
  batch_ids.reserve(rows.size());
  for (const auto& x : rows) batch_ids.push_back(x.row->external_id);
  const auto stored = rows.empty() ? stored_hashes{} : look_up("products", batch_ids, prepared.id_keys);
  const auto& categories = ids(category_ids, "categories");
  std::vector<const prepared_product*> fresh, staged;
  for (const auto& x : rows) {
    if (const auto it = stored.find(x.row->external_id); it != stored.end()) {
      if (!(it->second && it->second == x.hash)) staged.push_back(&x);
      continue;
    }
    const auto& c = x.row->category_external_id;
    const bool resolved = c.empty() || categories.count(c) != 0;
    // Images need the product's id for product_images: those products take the merge.
    const bool images = x.row->images && !x.row->images->empty();
    (resolved && !images ? fresh : staged).push_back(&x);
  }

  std::int64_t fresh_inserted = 0;
  if (!fresh.empty()) {
    auto id = reserve_ids("products", fresh.size());
    std::vector<std::string> columns{"source", "external_id", "sku", "name", "full_name", "description", "category_id",
                                     "unit", "unit_code", "barcode", "code", "manufacturer", "vat_rate", "attributes",
                                     "requisites", "version", "active", "content_hash"};
    if (id) columns.insert(columns.begin(), "id");
    copy_in c{tx, "portal.products", columns};
    for (const auto* x : fresh) {
      const auto& p = *x->row;
      copy_line line;
      if (id) line.number((*id)++);
      line.text(source).text(p.external_id).opt(p.sku).text(p.name).opt(p.full_name)
          .opt(p.description);
      if (p.category_external_id.empty())
        line.null();
      else
        line.number(categories.at(p.category_external_id));
      line.opt(p.unit).opt(p.unit_code).opt(p.barcode).opt(p.code)
          .opt(p.manufacturer).opt(p.vat_rate).text(x->attributes)
          .text(x->requisites).opt(p.version).value(boolean(p.active)).number(x->hash);
      c.write(line);
    }
    c.complete();
    fresh_inserted = static_cast<std::int64_t>(fresh.size());
    grew("products", "source, external_id", fresh_inserted);
  }
  if (staged.empty()) {
    record("products", static_cast<std::int64_t>(rows.size()), fresh_inserted, 0, 0, skipped);
    return;
  }

  restore_keys({"products", "product_images"});
  reset({"obmen_stage_products", "obmen_stage_product_images", "obmen_merged", "obmen_image_want",
         "obmen_image_changes"});
  copy_lines(tx, "obmen_stage_products",
             {"external_id", "version", "sku", "barcode", "code", "name", "full_name", "description", "unit",
              "unit_code", "manufacturer", "vat_rate", "category_external_id", "attributes", "requisites",
              "images_given", "active", "content_hash"},
             staged, [](const prepared_product& x) { return std::array{staging_line(x)}; });
  const auto image_rows = copy_lines(tx, "obmen_stage_product_images", {"product_external_id", "position", "sha256"},
                                     staged, [](const prepared_product& x) { return image_lines(x); });
  analyze("obmen_stage_products", staged.size());
  analyze("obmen_stage_product_images", image_rows);
  const auto marked = marked_deleted("products", "obmen_stage_products");
  // A hash is stored only for a row that resolved completely (its category known, its images
  // stored): a row that produced a warning must be compared again next time.
  tx.exec_params(R"sql(
    UPDATE obmen_stage_products s SET content_hash = NULL
     WHERE s.content_hash IS NOT NULL
       AND ((s.category_external_id IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM portal.categories c
                              WHERE c.source = $1 AND c.external_id = s.category_external_id))
            OR EXISTS (SELECT 1 FROM obmen_stage_product_images i
                        WHERE i.product_external_id = s.external_id
                          AND NOT EXISTS (SELECT 1 FROM portal.images m WHERE m.sha256 = i.sha256))))sql",
                 source);

  tx.exec_params(R"sql(
    WITH src AS (
      SELECT s.external_id, s.sku, s.name, s.full_name, s.description, c.id AS category_id, s.unit, s.unit_code,
             s.barcode, s.code, s.manufacturer, s.vat_rate, s.attributes, s.requisites, s.version, s.active,
             s.content_hash
        FROM obmen_stage_products s
        LEFT JOIN portal.categories c ON c.source = $1 AND c.external_id = s.category_external_id),
    up AS (
      INSERT INTO portal.products AS t (source, external_id, sku, name, full_name, description, category_id,
                                        unit, unit_code, barcode, code, manufacturer, vat_rate, attributes,
                                        requisites, version, active, content_hash)
      SELECT $1, external_id, sku, name, full_name, description, category_id, unit, unit_code, barcode, code,
             manufacturer, vat_rate, attributes, requisites, version, active, content_hash
        FROM src
       WHERE NOT EXISTS (
         SELECT 1 FROM portal.products c WHERE c.source = $1 AND c.external_id = src.external_id
            AND (c.sku, c.name, c.full_name, c.description, c.category_id, c.unit, c.unit_code, c.barcode, c.code,
                 c.manufacturer, c.vat_rate, c.attributes, c.requisites, c.version, c.active)
                IS NOT DISTINCT FROM
                (src.sku, src.name, src.full_name, src.description, src.category_id, src.unit, src.unit_code,
                 src.barcode, src.code, src.manufacturer, src.vat_rate, src.attributes, src.requisites,
                 src.version, src.active))
      ON CONFLICT (source, external_id) DO UPDATE
        SET sku = excluded.sku, name = excluded.name, full_name = excluded.full_name,
            description = excluded.description, category_id = excluded.category_id, unit = excluded.unit,
            unit_code = excluded.unit_code, barcode = excluded.barcode, code = excluded.code,
            manufacturer = excluded.manufacturer, vat_rate = excluded.vat_rate,
            attributes = excluded.attributes, requisites = excluded.requisites, version = excluded.version,
            active = excluded.active, content_hash = excluded.content_hash, updated_at = now()
        WHERE (t.sku, t.name, t.full_name, t.description, t.category_id, t.unit, t.unit_code, t.barcode,
               t.code, t.manufacturer, t.vat_rate, t.attributes, t.requisites, t.version, t.active)
              IS DISTINCT FROM
              (excluded.sku, excluded.name, excluded.full_name, excluded.description, excluded.category_id,
               excluded.unit, excluded.unit_code, excluded.barcode, excluded.code, excluded.manufacturer,
               excluded.vat_rate, excluded.attributes, excluded.requisites, excluded.version, excluded.active)
      RETURNING t.id, (t.xmax = 0) AS inserted)
    INSERT INTO obmen_merged SELECT id, inserted FROM up)sql",
                 source);
  for (const auto& r : tx.exec_params(R"sql(
      SELECT s.external_id, s.category_external_id FROM obmen_stage_products s
       WHERE s.category_external_id IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM portal.categories c WHERE c.source = $1 AND c.external_id = s.category_external_id)
       ORDER BY 1)sql",
                                      source))
    warn("product '" + r[0].as<std::string>() + "': category '" + r[1].as<std::string>() + "' is not known");

  if (!tx.exec("SELECT 1 FROM obmen_stage_products WHERE images_given LIMIT 1").empty()) {
    for (const auto& r : tx.exec(R"sql(
        SELECT s.product_external_id, s.sha256 FROM obmen_stage_product_images s
         WHERE NOT EXISTS (SELECT 1 FROM portal.images i WHERE i.sha256 = s.sha256)
         ORDER BY 1, s.position)sql"))
      warn("product '" + r[0].as<std::string>() + "': image " + r[1].as<std::string>() + " is not stored; skipped");
    // The list the product should have (stored images only, renumbered from 1) …
    tx.exec_params(R"sql(
      INSERT INTO obmen_image_want (product_id, position, sha256)
      SELECT p.id, row_number() OVER (PARTITION BY p.id ORDER BY s.position), s.sha256
        FROM obmen_stage_product_images s
        JOIN portal.products p ON p.source = $1 AND p.external_id = s.product_external_id
       WHERE EXISTS (SELECT 1 FROM portal.images i WHERE i.sha256 = s.sha256))sql",
                   source);
    // … the products whose current list differs …
    tx.exec_params(R"sql(
      INSERT INTO obmen_image_changes (product_id)
      SELECT p.id FROM obmen_stage_products s
        JOIN portal.products p ON p.source = $1 AND p.external_id = s.external_id
       WHERE s.images_given
         AND (SELECT array_agg(pi.sha256 ORDER BY pi.position) FROM portal.product_images pi WHERE pi.product_id = p.id)
             IS DISTINCT FROM
             (SELECT array_agg(w.sha256 ORDER BY w.position) FROM obmen_image_want w WHERE w.product_id = p.id))sql",
                   source);
    // … get the new list as a whole; a changed list is a change of the product.
    tx.exec(R"sql(
      DELETE FROM portal.product_images WHERE product_id IN (SELECT product_id FROM obmen_image_changes))sql");
    tx.exec(R"sql(
      INSERT INTO portal.product_images (product_id, position, sha256)
      SELECT w.product_id, w.position, w.sha256 FROM obmen_image_want w
       WHERE w.product_id IN (SELECT product_id FROM obmen_image_changes))sql");
    tx.exec(R"sql(
      WITH touched AS (
        UPDATE portal.products p SET updated_at = now()
         WHERE p.id IN (SELECT product_id FROM obmen_image_changes)
           AND p.id NOT IN (SELECT id FROM obmen_merged)
        RETURNING p.id)
      INSERT INTO obmen_merged SELECT id, false FROM touched)sql");
  }
  tx.exec_params(fix_hashes("products", "obmen_stage_products"), source);
  const auto [ins, upd] = merged_counts();
  record("products", static_cast<std::int64_t>(rows.size()), fresh_inserted + ins, upd, marked, skipped);
  grew("products", "source, external_id", ins);
}

// ── offers, prices, stock ──

namespace {

struct prepared_offer {
  const offer_row* row;
  std::vector<const price_row*> prices;             // the valid ones, as staged
  std::vector<const stock_row*> stock;
  std::optional<std::int64_t> hash;                 // nullopt: header-only, no name, or a warning
  std::string characteristics;                      // as JSON text
  bool quantity_valid = false;                      // row->quantity is carried and a number
};

// obmen_stage_offers, content_hash last (NULL unless keep_hash).
std::string staging_line(const prepared_offer& x, bool keep_hash) {
  const auto& o = *x.row;
  copy_line line;
  line.text(o.external_id).opt(o.product_external_id).opt(o.characteristic_id).opt(o.version).text(o.name)
      .opt(o.sku).opt(o.barcode).text(x.characteristics).value(boolean(o.active)).value(boolean(o.header_only));
  if (x.quantity_valid)
    line.text(*o.quantity);
  else
    line.null();
  line.value(boolean(o.prices.has_value())).value(boolean(o.stock.has_value()))
      .number(keep_hash ? x.hash : std::nullopt);
  return line.str();
}

using id_map = std::unordered_map<std::string, std::int64_t>;

std::optional<std::int64_t> id_in(const id_map& ids, const std::string& external_id) {
  const auto it = ids.find(external_id);
  return it == ids.end() ? std::nullopt : std::optional<std::int64_t>(it->second);
}

// obmen_stage_prices, with the price type's portal id.
std::vector<std::string> price_lines(const prepared_offer& x, const id_map& price_types) {
  std::vector<std::string> out;
  for (const auto* p : x.prices) {
    copy_line price;
    price.text(x.row->external_id).text(p->price_type_external_id).text(p->value).opt(p->currency).opt(p->unit)
        .opt(p->coefficient).number(id_in(price_types, p->price_type_external_id));
    out.push_back(price.str());
  }
  return out;
}

// obmen_stage_stock, with the warehouse's portal id.
std::vector<std::string> stock_lines(const prepared_offer& x, const id_map& warehouses) {
  std::vector<std::string> out;
  for (const auto* st : x.stock) {
    copy_line stock;
    stock.text(x.row->external_id).text(st->warehouse_external_id).text(st->quantity)
        .number(id_in(warehouses, st->warehouse_external_id));
    out.push_back(stock.str());
  }
  return out;
}

}  // namespace

struct catalog_writer::offer_batch {
  std::vector<offer_row> batch;
  std::vector<prepared_offer> rows;  // pointing into batch
  std::vector<std::uint64_t> id_keys;  // id_filter::key of each row's id
  std::string products_array;          // the rows' distinct product ids as a text[] literal ("" = none)
  std::vector<std::string> warnings;
  std::int64_t skipped = 0, prices_bad = 0, stock_bad = 0;
  bool any_prices = false, any_stock = false;
};

std::shared_ptr<const catalog_writer::offer_batch> catalog_writer::prepare_offers(std::vector<offer_row> batch) {
  auto out = std::make_shared<offer_batch>();
  out->batch = std::move(batch);
  auto& rows = out->rows;
  for (const auto* o : last_wins(out->batch, [](const offer_row& o) { return o.external_id; })) {
    if (o->external_id.empty()) {
      out->warnings.push_back("offer '" + o->name + "': no external id; skipped");
      ++out->skipped;
      continue;
    }
    // Only a complete offer with its own name and nothing to warn about gets a hash: header-only
    // offers change only part of a row, a nameless one takes its product's name, and a warning
    // must be given again next time.
    bool hashable = !o->header_only && !o->name.empty();
    prepared_offer x{o, {}, {}, {},
                     o->characteristics_text ? *o->characteristics_text : *json_text(o->characteristics, "[]"), false};
    if (o->quantity) {
      if (is_decimal(*o->quantity)) {
        x.quantity_valid = true;
      } else {
        out->warnings.push_back("offer '" + o->external_id + "': quantity '" + *o->quantity +
                                "' is not a number; left as it was");
        hashable = false;
      }
    }
    row_hash h;
    h.text(o->external_id).opt(o->product_external_id).opt(o->characteristic_id).opt(o->version).text(o->name)
        .opt(o->sku).opt(o->barcode).text(x.characteristics).flag(o->active).flag(o->header_only);
    if (x.quantity_valid)
      h.text(*o->quantity);
    else
      h.null();
    h.flag(o->prices.has_value()).flag(o->stock.has_value());
    if (o->prices) {
      out->any_prices = true;
      for (const auto* p : last_wins(*o->prices, [](const price_row& p) { return p.price_type_external_id; })) {
        if (!is_decimal(p->value) || !fits_price(p->value) || (!p->coefficient.empty() && !is_decimal(p->coefficient))) {
          out->warnings.push_back("offer '" + o->external_id + "': price '" + p->value + "' (coefficient '" +
                                  p->coefficient + "') for price type '" + p->price_type_external_id +
                                  "' is not a valid amount; price skipped");
          ++out->prices_bad;
          hashable = false;
          continue;
        }
        if (rounds_price(p->value)) {
          out->warnings.push_back("offer '" + o->external_id + "': price '" + p->value + "' for price type '" +
                                  p->price_type_external_id + "' has more than 4 decimal places; stored rounded");
          hashable = false;
        }
        h.text("price").text(p->price_type_external_id).text(p->value).opt(p->currency).opt(p->unit)
            .opt(p->coefficient);
        x.prices.push_back(p);
      }
    }
    if (o->stock) {
      out->any_stock = true;
      for (const auto* st : last_wins(*o->stock, [](const stock_row& s) { return s.warehouse_external_id; })) {
        if (!is_decimal(st->quantity)) {
          out->warnings.push_back("offer '" + o->external_id + "': quantity '" + st->quantity + "' at warehouse '" +
                                  st->warehouse_external_id + "' is not a number; stock skipped");
          ++out->stock_bad;
          hashable = false;
          continue;
        }
        h.text("stock").text(st->warehouse_external_id).text(st->quantity);
        x.stock.push_back(st);
      }
    }
    if (hashable) x.hash = h.value();
    rows.push_back(std::move(x));
  }
  out->id_keys.reserve(rows.size());
  std::vector<std::string_view> products;
  for (const auto& x : rows) {
    out->id_keys.push_back(id_filter::key(x.row->external_id));
    if (!x.row->product_external_id.empty()) products.push_back(x.row->product_external_id);
  }
  std::sort(products.begin(), products.end());
  products.erase(std::unique(products.begin(), products.end()), products.end());
  if (!products.empty()) out->products_array = text_array(products);
  return out;
}

// The same three ways as products (see put_products). An offer's hash covers its prices and
// stock as staged, so an unchanged offer skips those too; new offers get their ids from the
// sequence up front, so their prices and stock are COPied straight into the portal as well.
void catalog_writer::impl::put_offers(const offer_batch& prepared) {
  defer_constraints({"offers", "prices", "stock"});
  for (const auto& w : prepared.warnings) warn(w);
  const auto& rows = prepared.rows;
  const std::int64_t skipped = prepared.skipped, prices_bad = prepared.prices_bad, stock_bad = prepared.stock_bad;
  const bool any_prices = prepared.any_prices, any_stock = prepared.any_stock;
  if (rows.empty() && skipped == 0) return;

  std::vector<std::string_view> batch_ids;
  batch_ids.reserve(rows.size());
  for (const auto& x : rows) batch_ids.push_back(x.row->external_id);
  const auto stored = rows.empty() ? stored_hashes{} : look_up("offers", batch_ids, prepared.id_keys);

  // Unchanged offers are done; new ones with a hash may take the fast path if their product,
  // price types and warehouses are known — their product ids are read in one more statement.
  entity_counts fast_offers, fast_prices, fast_stock;
  std::vector<const prepared_offer*> candidates, staged;
  for (const auto& x : rows) {
    if (const auto it = stored.find(x.row->external_id); it != stored.end()) {
      if (x.hash && it->second == x.hash) {
        ++fast_offers.unchanged;
        fast_prices.unchanged += static_cast<std::int64_t>(x.prices.size());
        fast_stock.unchanged += static_cast<std::int64_t>(x.stock.size());
      } else {
        staged.push_back(&x);
      }
      continue;
    }
    (x.hash ? candidates : staged).push_back(&x);
  }
  std::vector<const prepared_offer*> fresh;
  std::unordered_map<std::string, std::int64_t> product_ids;
  if (!candidates.empty()) {
    // All new: the products of the whole batch, as prepared; else just the candidates'.
    std::string some_products;
    const std::string* products = &prepared.products_array;
    if (candidates.size() != rows.size()) {
      std::vector<std::string_view> some;
      for (const auto* x : candidates)
        if (!x->row->product_external_id.empty()) some.push_back(x->row->product_external_id);
      if (!some.empty()) some_products = text_array(some);
      products = &some_products;
    }
    if (!products->empty()) {
      restore_keys({"products"});
      for (const auto& r : tx.exec_params(
               "SELECT external_id, id FROM portal.products WHERE source = $1 AND external_id = ANY($2::text[])",
               source, *products))
        product_ids.emplace(r[0].as<std::string>(), r[1].as<std::int64_t>());
    }
    const auto& price_types = ids(price_type_ids, "price_types");
    const auto& warehouses = ids(warehouse_ids, "warehouses");
    for (const auto* x : candidates) {
      bool resolved = x->row->product_external_id.empty() || product_ids.count(x->row->product_external_id) != 0;
      for (const auto* p : x->prices) resolved = resolved && price_types.count(p->price_type_external_id) != 0;
      for (const auto* st : x->stock) resolved = resolved && warehouses.count(st->warehouse_external_id) != 0;
      (resolved ? fresh : staged).push_back(x);
    }
  }

  if (!fresh.empty()) {
    const auto& price_types = ids(price_type_ids, "price_types");
    const auto& warehouses = ids(warehouse_ids, "warehouses");
    std::vector<std::int64_t> offer_ids;
    offer_ids.reserve(fresh.size());
    if (const auto first = reserve_ids("offers", fresh.size())) {
      for (std::size_t i = 0; i < fresh.size(); ++i) offer_ids.push_back(*first + static_cast<std::int64_t>(i));
    } else {
      for (const auto& r : tx.exec_params("SELECT nextval(pg_get_serial_sequence('portal.offers', 'id')) "
                                          "FROM generate_series(1, $1)",
                                          static_cast<std::int64_t>(fresh.size())))
        offer_ids.push_back(r[0].as<std::int64_t>());
    }
    {
      copy_in c{tx, "portal.offers",
                {"id", "source", "external_id", "product_id", "product_external_id", "characteristic_id", "name", "sku",
                 "barcode", "characteristics", "quantity", "version", "active", "content_hash"}};
      copy_line line;
      for (std::size_t i = 0; i < fresh.size(); ++i) {
        const auto& o = *fresh[i]->row;
        line.clear().number(offer_ids[i]).text(source).text(o.external_id);
        if (o.product_external_id.empty())
          line.null();
        else
          line.number(product_ids.at(o.product_external_id));
        line.opt(o.product_external_id).opt(o.characteristic_id).text(o.name).opt(o.sku).opt(o.barcode)
            .text(fresh[i]->characteristics);
        if (o.quantity)
          line.text(*o.quantity);
        else
          line.null();
        line.opt(o.version).value(boolean(o.active)).number(fresh[i]->hash);
        c.write(line);
      }
      c.complete();
    }
    fast_offers.inserted = static_cast<std::int64_t>(fresh.size());
    std::size_t price_rows = 0, stock_rows = 0;
    for (const auto* x : fresh) {
      price_rows += x->prices.size();
      stock_rows += x->stock.size();
    }
    if (price_rows != 0) {
      auto id = reserve_ids("prices", price_rows);
      std::vector<std::string> columns{"offer_id", "price_type_id", "value", "currency", "unit", "coefficient"};
      if (id) columns.insert(columns.begin(), "id");
      copy_in c{tx, "portal.prices", columns};
      copy_line line;
      for (std::size_t i = 0; i < fresh.size(); ++i)
        for (const auto* p : fresh[i]->prices) {
          line.clear();
          if (id) line.number((*id)++);
          line.number(offer_ids[i]).number(price_types.at(p->price_type_external_id)).text(p->value)
              .opt(p->currency).opt(p->unit).text(p->coefficient.empty() ? "1" : p->coefficient);
          c.write(line);
        }
      c.complete();
    }
    if (stock_rows != 0) {
      auto id = reserve_ids("stock", stock_rows);
      std::vector<std::string> columns{"offer_id", "warehouse_id", "quantity"};
      if (id) columns.insert(columns.begin(), "id");
      copy_in c{tx, "portal.stock", columns};
      copy_line line;
      for (std::size_t i = 0; i < fresh.size(); ++i)
        for (const auto* st : fresh[i]->stock) {
          line.clear();
          if (id) line.number((*id)++);
          line.number(offer_ids[i]).number(warehouses.at(st->warehouse_external_id)).text(st->quantity);
          c.write(line);
        }
      c.complete();
    }
    fast_prices.inserted = static_cast<std::int64_t>(price_rows);
    fast_stock.inserted = static_cast<std::int64_t>(stock_rows);
    grew("offers", "source, external_id, product_id", fast_offers.inserted);
    grew("prices", "offer_id, price_type_id", fast_prices.inserted);
    grew("stock", "offer_id, warehouse_id", fast_stock.inserted);
  }
  // The merge below adds its own counts; an entity the batch carried is listed even when all zero.
  counts.by_entity["offers"] += fast_offers;
  if (any_prices) counts.by_entity["prices"] += fast_prices;
  if (any_stock) counts.by_entity["stock"] += fast_stock;
  if (staged.empty()) {
    if (skipped != 0) counts.by_entity["offers"].skipped += skipped;
    return;
  }

  bool staged_prices = false, staged_stock = false;
  for (const auto* x : staged) {
    staged_prices = staged_prices || x->row->prices.has_value();
    staged_stock = staged_stock || x->row->stock.has_value();
  }
  restore_keys({"products", "offers", "prices", "stock"});
  reset({"obmen_stage_offers", "obmen_stage_prices", "obmen_stage_stock", "obmen_merged"});
  // Price types and warehouses are resolved here, in memory. A hash is stored only for an offer
  // that resolved completely (its product, price types and warehouses known): one that produced
  // a warning is compared again next time.
  const auto& price_types = ids(price_type_ids, "price_types");
  const auto& warehouses = ids(warehouse_ids, "warehouses");
  bool unknown_price_types = false, unknown_warehouses = false;
  const auto references_known = [&](const prepared_offer& x) {
    bool known = true;
    for (const auto* p : x.prices)
      if (price_types.count(p->price_type_external_id) == 0) {
        unknown_price_types = true;
        known = false;
      }
    for (const auto* st : x.stock)
      if (warehouses.count(st->warehouse_external_id) == 0) {
        unknown_warehouses = true;
        known = false;
      }
    return known;
  };
  copy_lines(tx, "obmen_stage_offers",
             {"external_id", "product_external_id", "characteristic_id", "version", "name", "sku", "barcode",
              "characteristics", "active", "header_only", "quantity", "prices_given", "stock_given", "content_hash"},
             staged, [&](const prepared_offer& x) { return std::array{staging_line(x, references_known(x))}; });
  const auto price_rows = copy_lines(
      tx, "obmen_stage_prices",
      {"offer_external_id", "price_type_external_id", "value", "currency", "unit", "coefficient", "price_type_id"},
      staged, [&](const prepared_offer& x) { return price_lines(x, price_types); });
  const auto stock_rows =
      copy_lines(tx, "obmen_stage_stock", {"offer_external_id", "warehouse_external_id", "quantity", "warehouse_id"},
                 staged, [&](const prepared_offer& x) { return stock_lines(x, warehouses); });
  analyze("obmen_stage_offers (external_id, product_external_id)", staged.size());
  analyze("obmen_stage_prices (offer_external_id, price_type_id)", price_rows);
  analyze("obmen_stage_stock (offer_external_id, warehouse_id)", stock_rows);
  const auto marked = marked_deleted("offers", "obmen_stage_offers", " AND NOT s.header_only");
  // Complete offers: everything they carry is written. A quantity the element did not carry is
  // kept. Each finds its stored row once, by key, and is updated by row address or inserted (as
  // prices are, see merge_prices); the staged offer learns its portal id in the same statement.
  const auto offers_merged = tx.exec_params(R"sql(
    WITH src AS MATERIALIZED (
      SELECT s.external_id, p.id AS product_id, s.product_external_id, s.characteristic_id,
             coalesce(nullif(s.name, ''), p.name, s.external_id) AS name, s.sku, s.barcode, s.characteristics,
             s.quantity, s.version, s.active,
             -- an offer whose product is not known gets no hash: compared in full next time
             CASE WHEN s.product_external_id IS NOT NULL AND p.id IS NULL THEN NULL ELSE s.content_hash END AS content_hash,
             t.ctid AS tid, t.id AS offer_id,
             (t.product_id, t.product_external_id, t.characteristic_id, t.name, t.sku, t.barcode,
              t.characteristics, t.quantity, t.version, t.active)
               IS DISTINCT FROM
             (p.id, s.product_external_id, s.characteristic_id, coalesce(nullif(s.name, ''), p.name, s.external_id),
              s.sku, s.barcode, s.characteristics, coalesce(s.quantity, t.quantity), s.version, s.active) AS changed
        FROM obmen_stage_offers s
        LEFT JOIN portal.products p ON p.source = $1 AND p.external_id = s.product_external_id
        LEFT JOIN portal.offers t ON t.source = $1 AND t.external_id = s.external_id
       WHERE NOT s.header_only),
    upd AS (
      UPDATE portal.offers t
         SET product_id = src.product_id, product_external_id = src.product_external_id,
             characteristic_id = src.characteristic_id, name = src.name, sku = src.sku, barcode = src.barcode,
             characteristics = src.characteristics, quantity = coalesce(src.quantity, t.quantity),
             version = src.version, active = src.active, content_hash = src.content_hash, updated_at = now()
        FROM src
       WHERE t.ctid = src.tid AND src.changed
      RETURNING t.id),
    ins AS (
      INSERT INTO portal.offers (source, external_id, product_id, product_external_id, characteristic_id,
                                 name, sku, barcode, characteristics, quantity, version, active, content_hash)
      SELECT $1, external_id, product_id, product_external_id, characteristic_id, name, sku, barcode,
             characteristics, quantity, version, active, content_hash
        FROM src WHERE tid IS NULL
      RETURNING id, external_id),
    ids AS (
      UPDATE obmen_stage_offers s SET offer_id = x.id
        FROM (SELECT external_id, offer_id AS id FROM src WHERE offer_id IS NOT NULL
              UNION ALL SELECT external_id, id FROM ins) x
       WHERE s.external_id = x.external_id),
    merged AS (INSERT INTO obmen_merged SELECT id, false FROM upd UNION ALL SELECT id, true FROM ins)
    SELECT 0 AS row_kind, NULL AS external_id, NULL AS product_external_id, (SELECT count(*) FROM upd) AS updated,
           (SELECT count(*) FROM src WHERE changed AND tid IS NOT NULL) AS changed
    UNION ALL
    SELECT 1, external_id, product_external_id, NULL, NULL FROM src
     WHERE product_external_id IS NOT NULL AND product_id IS NULL
    ORDER BY 1, 2)sql",
                                            source);
  updated_by_address("offers", count_of(offers_merged, 3), count_of(offers_merged, 4));
  // Rows after the first: offers whose product is not known — a warning, and no hash to store.
  std::vector<std::string_view> no_product;
  for (std::size_t i = 1; i < offers_merged.size(); ++i) {
    const auto& r = offers_merged[static_cast<int>(i)];
    warn("offer '" + r[1].as<std::string>() + "': product '" + r[2].as<std::string>() + "' is not known");
    no_product.emplace_back(r[1].c_str(), r[1].size());
  }
  if (!no_product.empty())
    tx.exec_params("UPDATE obmen_stage_offers SET content_hash = NULL WHERE external_id = ANY($1::text[])",
                   text_array(no_product));

  // Header-only offers (split prices/rests files) carry no descriptive data: an existing offer
  // keeps its name, sku, barcode, characteristics, version and active flag; only the total
  // quantity and a missing product link are filled in.
  tx.exec_params(R"sql(
    WITH src AS (
      SELECT s.external_id, s.quantity, p.id AS product_id
        FROM obmen_stage_offers s
        LEFT JOIN portal.products p ON p.source = $1 AND p.external_id = s.product_external_id
       WHERE s.header_only),
    upd AS (
      UPDATE portal.offers t
         SET quantity = coalesce(src.quantity, t.quantity), product_id = coalesce(t.product_id, src.product_id),
             updated_at = now()
        FROM src
       WHERE t.source = $1 AND t.external_id = src.external_id
         AND (t.quantity, t.product_id)
             IS DISTINCT FROM (coalesce(src.quantity, t.quantity), coalesce(t.product_id, src.product_id))
      RETURNING t.id)
    INSERT INTO obmen_merged SELECT id, false FROM upd)sql",
                 source);
  // A header-only offer the portal does not know yet is created when its product is known.
  tx.exec_params(R"sql(
    WITH ins AS (
      INSERT INTO portal.offers (source, external_id, product_id, product_external_id, characteristic_id, name,
                                 sku, barcode, characteristics, quantity, version, active)
      SELECT $1, s.external_id, p.id, s.product_external_id, s.characteristic_id, coalesce(nullif(s.name, ''), p.name),
             s.sku, s.barcode, s.characteristics, s.quantity, s.version, s.active
        FROM obmen_stage_offers s
        JOIN portal.products p ON p.source = $1 AND p.external_id = s.product_external_id
       WHERE s.header_only
         AND NOT EXISTS (SELECT 1 FROM portal.offers o WHERE o.source = $1 AND o.external_id = s.external_id)
      ON CONFLICT (source, external_id) DO NOTHING
      RETURNING id)
    INSERT INTO obmen_merged SELECT id, true FROM ins)sql",
                 source);
  std::int64_t unknown = 0;
  for (const auto& r : tx.exec_params(R"sql(
      SELECT s.external_id FROM obmen_stage_offers s
       WHERE s.header_only
         AND NOT EXISTS (SELECT 1 FROM portal.offers o WHERE o.source = $1 AND o.external_id = s.external_id)
       ORDER BY 1)sql",
                                      source)) {
    warn("offer '" + r[0].as<std::string>() + "': unknown offer and product; prices/stock skipped");
    ++unknown;
  }
  const auto [ins, upd] = merged_counts();
  record("offers", static_cast<std::int64_t>(staged.size()) - unknown, ins, upd, marked, skipped + unknown);
  grew("offers", "source, external_id, product_id", ins);

  // Prices and stock find their offers through the staged ones: each offer resolved once here,
  // not once per price or stock row in every statement below.
  // (Complete offers learnt theirs when merged.)
  if (staged_prices || staged_stock)
    tx.exec_params("UPDATE obmen_stage_offers s SET offer_id = o.id FROM portal.offers o "
                   "WHERE s.offer_id IS NULL AND o.source = $1 AND o.external_id = s.external_id",
                   source);
  if (staged_prices) merge_prices(prices_bad, unknown_price_types);
  if (staged_stock) merge_stock(stock_bad, unknown_warehouses);
  tx.exec_params(fix_hashes("offers", "obmen_stage_offers"), source);
}

// A row found by key and updated by its address (the merges of offers, prices and stock) is
// skipped when something outside obmen updated it in between, which the portal contract rules
// out (docs/schema.md, "Who writes what"): the import fails rather than lose the change, and the
// next one applies it.
void catalog_writer::impl::updated_by_address(const char* table, std::int64_t updated, std::int64_t changed) {
  if (updated != changed)
    throw std::runtime_error("portal." + std::string(table) + ": " + std::to_string(changed - updated) +
                             " changed rows were updated by another writer during the import; nothing was "
                             "stored, import the package again");
}

// A warning for each staged row of a merged offer whose <column>_id is NULL: its <column>_external_id
// names a price type / warehouse the source did not declare.
void catalog_writer::impl::warn_undeclared(const std::string& stage_table, const std::string& column,
                                           const std::string& what, const std::string& row) {
  for (const auto& r : tx.exec("SELECT s.offer_external_id, s." + column + "_external_id FROM " + stage_table +
                               " s WHERE s." + column + "_id IS NULL AND EXISTS (SELECT 1 FROM obmen_stage_offers so "
                               "WHERE so.external_id = s.offer_external_id AND so.offer_id IS NOT NULL) ORDER BY 1, 2"))
    warn("offer '" + r[0].as<std::string>() + "': " + what + " '" + r[1].as<std::string>() +
         "' is not declared; " + row + " skipped");
}

void catalog_writer::impl::merge_prices(std::int64_t skipped_by_value, bool unknown_price_types) {
  if (unknown_price_types) warn_undeclared("obmen_stage_prices", "price_type", "price type", "price");
  // Each staged price finds its stored row once, by key; a changed one is updated by its row
  // address and a new one inserted. An upsert looked each key up three times and locked the row
  // before updating it (measured, 1% package of 100 000 products: 4 200 prices in 38 ms as an
  // upsert, 17 ms so). The row addresses stay valid within the statement: the source's import
  // lock (see the constructor) keeps every other writer of these rows out.
  const auto r = tx.exec(R"sql(
    WITH src AS MATERIALIZED (
      SELECT so.offer_id, s.price_type_id, s.value, s.currency, s.unit, coalesce(s.coefficient, 1) AS coefficient,
             t.ctid AS tid,
             (t.value, t.currency, t.unit, t.coefficient, t.active)
               IS DISTINCT FROM (s.value, s.currency, s.unit, coalesce(s.coefficient, 1), true) AS changed
        FROM obmen_stage_prices s
        JOIN obmen_stage_offers so ON so.external_id = s.offer_external_id AND so.offer_id IS NOT NULL
        LEFT JOIN portal.prices t ON t.offer_id = so.offer_id AND t.price_type_id = s.price_type_id
       WHERE s.price_type_id IS NOT NULL),
    upd AS (
      UPDATE portal.prices t
         SET value = src.value, currency = src.currency, unit = src.unit, coefficient = src.coefficient,
             active = true, updated_at = now()
        FROM src
       WHERE t.ctid = src.tid AND src.changed
      RETURNING t.offer_id),
    ins AS (
      INSERT INTO portal.prices (offer_id, price_type_id, value, currency, unit, coefficient, active)
      SELECT offer_id, price_type_id, value, currency, unit, coefficient, true FROM src WHERE tid IS NULL
      RETURNING offer_id),
    touched AS (INSERT INTO obmen_merged SELECT offer_id, false FROM upd UNION SELECT offer_id, false FROM ins
                ON CONFLICT DO NOTHING)
    SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM obmen_stage_prices), (SELECT count(*) FROM ins),
           (SELECT count(*) FROM upd), (SELECT count(*) FROM src WHERE changed AND tid IS NOT NULL))sql");
  const auto applied = count_of(r, 0), staged = count_of(r, 1), ins = count_of(r, 2), upd = count_of(r, 3);
  updated_by_address("prices", upd, count_of(r, 4));
  // An offer that carried prices has exactly those: a price type it no longer lists is switched off.
  const auto deactivated = count_of(tx.exec(R"sql(
    WITH d AS (
      UPDATE portal.prices p SET active = false, updated_at = now()
        FROM obmen_stage_offers so
       WHERE so.prices_given AND p.offer_id = so.offer_id AND p.active
         AND NOT EXISTS (SELECT 1 FROM obmen_stage_prices sp
                          WHERE sp.offer_external_id = so.external_id AND sp.price_type_id = p.price_type_id)
      RETURNING p.offer_id),
    touched AS (INSERT INTO obmen_merged SELECT DISTINCT offer_id, false FROM d ON CONFLICT DO NOTHING)
    SELECT count(*) FROM d)sql"));
  entity_counts c;
  c.inserted = ins;
  c.updated = upd;
  c.unchanged = applied - ins - upd;
  c.deactivated = deactivated;
  c.skipped = staged - applied + skipped_by_value;
  counts.by_entity["prices"] += c;
  grew("prices", "offer_id, price_type_id", ins);
}

void catalog_writer::impl::merge_stock(std::int64_t skipped_by_value, bool unknown_warehouses) {
  if (unknown_warehouses) warn_undeclared("obmen_stage_stock", "warehouse", "warehouse", "stock");
  // Found once by key, then updated by row address or inserted, as prices are (see merge_prices).
  const auto r = tx.exec(R"sql(
    WITH src AS MATERIALIZED (
      SELECT so.offer_id, s.warehouse_id, s.quantity, t.ctid AS tid, t.quantity IS DISTINCT FROM s.quantity AS changed
        FROM obmen_stage_stock s
        JOIN obmen_stage_offers so ON so.external_id = s.offer_external_id AND so.offer_id IS NOT NULL
        LEFT JOIN portal.stock t ON t.offer_id = so.offer_id AND t.warehouse_id = s.warehouse_id
       WHERE s.warehouse_id IS NOT NULL),
    upd AS (
      UPDATE portal.stock t SET quantity = src.quantity, updated_at = now()
        FROM src
       WHERE t.ctid = src.tid AND src.changed
      RETURNING t.offer_id),
    ins AS (
      INSERT INTO portal.stock (offer_id, warehouse_id, quantity)
      SELECT offer_id, warehouse_id, quantity FROM src WHERE tid IS NULL
      RETURNING offer_id),
    touched AS (INSERT INTO obmen_merged SELECT offer_id, false FROM upd UNION SELECT offer_id, false FROM ins
                ON CONFLICT DO NOTHING)
    SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM obmen_stage_stock), (SELECT count(*) FROM ins),
           (SELECT count(*) FROM upd), (SELECT count(*) FROM src WHERE changed AND tid IS NOT NULL))sql");
  const auto applied = count_of(r, 0), staged = count_of(r, 1), ins = count_of(r, 2), upd = count_of(r, 3);
  updated_by_address("stock", upd, count_of(r, 4));
  // An offer that carried stock has exactly that: any other warehouse holds none of it now.
  const auto zeroed = count_of(tx.exec(R"sql(
    WITH z AS (
      UPDATE portal.stock st SET quantity = 0, updated_at = now()
        FROM obmen_stage_offers so
       WHERE so.stock_given AND st.offer_id = so.offer_id AND st.quantity <> 0
         AND NOT EXISTS (SELECT 1 FROM obmen_stage_stock ss
                          WHERE ss.offer_external_id = so.external_id AND ss.warehouse_id = st.warehouse_id)
      RETURNING st.offer_id),
    touched AS (INSERT INTO obmen_merged SELECT DISTINCT offer_id, false FROM z ON CONFLICT DO NOTHING)
    SELECT count(*) FROM z)sql"));
  entity_counts c;
  c.inserted = ins;
  c.updated = upd + zeroed;
  c.unchanged = applied - ins - upd;
  c.skipped = staged - applied + skipped_by_value;
  counts.by_entity["stock"] += c;
  grew("stock", "offer_id, warehouse_id", ins);
}

// ── public face ──

catalog_writer::catalog_writer(pqxx::work& tx, std::string source, std::optional<std::int64_t> exchange_session_id,
                               bool bulk_load)
    : impl_(std::make_unique<impl>(tx, std::move(source), exchange_session_id, bulk_load)) {}
catalog_writer::~catalog_writer() = default;
void catalog_writer::close() { impl_->restore_constraints(); }
catalog_writer::catalog_writer(catalog_writer&&) noexcept = default;
catalog_writer& catalog_writer::operator=(catalog_writer&&) noexcept = default;

void catalog_writer::put_categories(const std::vector<model::category>& b) { impl_->put_categories(b); }
void catalog_writer::put_attributes(const std::vector<attribute_row>& b) { impl_->put_attributes(b); }
void catalog_writer::put_price_types(const std::vector<price_type_row>& b) { impl_->put_price_types(b); }
void catalog_writer::put_warehouses(const std::vector<warehouse_row>& b) { impl_->put_warehouses(b); }
bool catalog_writer::put_image(const std::string& sha256, const std::filesystem::path& file, const std::string& mime) {
  return impl_->put_image(sha256, file, mime);
}
void catalog_writer::put_products(const std::vector<product_row>& b) { impl_->put_products(*prepare_products(b)); }
void catalog_writer::put_offers(const std::vector<offer_row>& b) { impl_->put_offers(*prepare_offers(b)); }
void catalog_writer::put_products(const std::shared_ptr<const product_batch>& b) { impl_->put_products(*b); }
void catalog_writer::put_offers(const std::shared_ptr<const offer_batch>& b) { impl_->put_offers(*b); }

void catalog_writer::expect_whole(const std::string& entity) {
  if (entity == "products" || entity == "offers") impl_->expect_whole(entity);
}
void catalog_writer::expect_changes(const std::string& entity) {
  if (entity == "products" || entity == "offers") impl_->changes_only.insert(entity);
}
void catalog_writer::finish_categories(bool full) { impl_->finish("categories", full); }
void catalog_writer::finish_products(bool full) { impl_->finish("products", full); }
void catalog_writer::finish_offers(bool full) { impl_->finish("offers", full); }

std::map<std::string, attribute_row> catalog_writer::known_attributes() {
  std::map<std::string, attribute_row> out;
  for (const auto& r : impl_->tx.exec_params(
           "SELECT external_id, name, coalesce(value_type, ''), options::text, active FROM portal.attributes "
           "WHERE source = $1",
           impl_->source)) {
    attribute_row a;
    a.external_id = r[0].as<std::string>();
    a.name = r[1].as<std::string>();
    a.value_type = r[2].as<std::string>();
    for (const auto& o : nlohmann::json::parse(r[3].as<std::string>()))
      a.options.push_back({o.value("id", ""), o.value("value", "")});
    a.active = r[4].as<bool>();
    out.emplace(a.external_id, std::move(a));
  }
  return out;
}

std::map<std::string, std::string> catalog_writer::known_price_types() {
  std::map<std::string, std::string> out;
  for (const auto& r : impl_->tx.exec_params("SELECT external_id, code FROM portal.price_types WHERE source = $1",
                                             impl_->source))
    out.emplace(r[0].as<std::string>(), r[1].as<std::string>());
  return out;
}

std::map<std::string, std::string> catalog_writer::known_warehouses() {
  std::map<std::string, std::string> out;
  for (const auto& r : impl_->tx.exec_params("SELECT external_id, code FROM portal.warehouses WHERE source = $1",
                                             impl_->source))
    out.emplace(r[0].as<std::string>(), r[1].as<std::string>());
  return out;
}

const import_counts& catalog_writer::counts() const { return impl_->counts; }

// ─── deactivate_unseen ──────────────────────────────────────────────────────────────────────

import_counts deactivate_unseen(pqxx::work& tx, const std::string& source, std::int64_t exchange_session_id) {
  import_counts out;
  for (const char* entity : {"categories", "products", "offers"}) {
    // A session that carried none of an entity (an offers-only exchange, say) says nothing about
    // which of them still exist: deactivating them all would empty the portal's catalog.
    if (tx.exec_params("SELECT 1 FROM obmen.exchange_seen WHERE session_id = $1 AND entity = $2 LIMIT 1",
                       exchange_session_id, std::string(entity))
            .empty()) {
      out.warnings.push_back(std::string(entity) + ": exchange session " + std::to_string(exchange_session_id) +
                             " carried none; left as they are");
      continue;
    }
    const auto n = count_of(tx.exec_params(
        std::string("WITH d AS (UPDATE portal.") + entity + " t SET active = false, updated_at = now()" +
            clears_hash(entity) + " WHERE t.source = $1 AND t.active AND NOT EXISTS ("
            "SELECT 1 FROM obmen.exchange_seen s WHERE s.session_id = $2 AND s.entity = $3 "
            "AND s.external_id = t.external_id) RETURNING 1) SELECT count(*) FROM d",
        source, exchange_session_id, std::string(entity)));
    out.by_entity[entity].deactivated += n;
  }
  return out;
}

product_row product_row_of(const model::product& p) {
  model::product copy = p;
  return product_row_of(std::move(copy));
}

product_row product_row_of(model::product&& p) {
  product_row r;
  r.external_id = std::move(p.external_id);
  r.version = std::move(p.version);
  r.sku = std::move(p.sku);
  r.barcode = std::move(p.barcode);
  r.code = std::move(p.code);
  r.name = std::move(p.name);
  r.full_name = std::move(p.full_name);
  r.description = std::move(p.description);
  r.unit = std::move(p.unit);
  r.unit_code = std::move(p.unit_code);
  r.manufacturer = std::move(p.manufacturer);
  r.active = p.active;
  for (const auto& t : p.taxes)
    if (r.vat_rate.empty() || t.name == "НДС") r.vat_rate = t.rate;
  if (!p.category_ids.empty()) r.category_external_id = std::move(p.category_ids.front());
  json_object_text requisites;
  for (auto& q : p.requisites) requisites.set(std::move(q.name), std::move(q.value));
  r.requisites_text = std::move(requisites).text();
  return r;
}

}  // namespace obmen::store
