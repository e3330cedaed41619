#include "adapters/moysklad/decode.hpp"

#include "common/http.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <limits>
#include <system_error>

namespace obmen::moysklad {

using nlohmann::json;

namespace {

// ─── decimal text ───────────────────────────────────────────────────────────────────────────
// Numbers are handled as digit strings so nothing is rounded through a double after parsing:
// a float the server wrote is recovered by its shortest round-trip digits (std::to_chars), which
// are the digits it sent whenever it sent ≤ 17 significant ones.

struct digits {
  bool negative = false;
  std::string int_part;   // no sign, at least one digit
  std::string frac_part;  // may be empty
};

std::string number_text(const json& v, std::string_view what) {
  if (v.is_number_integer()) return v.is_number_unsigned() ? std::to_string(v.get<std::uint64_t>())
                                                           : std::to_string(v.get<std::int64_t>());
  if (v.is_number_float()) {
    const double d = v.get<double>();
    std::array<char, 400> buf{};
    const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), d, std::chars_format::fixed);
    if (r.ec != std::errc()) throw decode_error(std::string(what) + " is out of range");
    return std::string(buf.data(), r.ptr);
  }
  throw decode_error(std::string(what) + " is not a number");
}

digits split(std::string_view s) {
  digits d;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    d.negative = s.front() == '-';
    s.remove_prefix(1);
  }
  const auto dot = s.find('.');
  d.int_part = std::string(s.substr(0, dot));
  if (dot != std::string_view::npos) d.frac_part = std::string(s.substr(dot + 1));
  if (d.int_part.empty()) d.int_part = "0";
  return d;
}

// Moves the decimal point `shift` places left (divides by 10^shift).
void shift_left(digits& d, std::size_t shift) {
  while (d.int_part.size() <= shift) d.int_part.insert(0, 1, '0');
  d.frac_part = d.int_part.substr(d.int_part.size() - shift) + d.frac_part;
  d.int_part.erase(d.int_part.size() - shift);
}

// Rounds the magnitude half away from zero to `places` fraction digits.
void round_to(digits& d, std::size_t places) {
  if (d.frac_part.size() <= places) return;
  const bool up = d.frac_part[places] >= '5';
  d.frac_part.resize(places);
  if (!up) return;
  std::string all = d.int_part + d.frac_part;
  int i = static_cast<int>(all.size()) - 1;
  for (; i >= 0; --i) {
    if (all[static_cast<std::size_t>(i)] == '9') {
      all[static_cast<std::size_t>(i)] = '0';
    } else {
      ++all[static_cast<std::size_t>(i)];
      break;
    }
  }
  if (i < 0) all.insert(0, 1, '1');
  d.int_part = all.substr(0, all.size() - places);
  d.frac_part = all.substr(all.size() - places);
}

std::string join(digits d, std::size_t min_frac) {
  const auto nz = d.int_part.find_first_not_of('0');
  d.int_part = nz == std::string::npos ? "0" : d.int_part.substr(nz);
  while (d.frac_part.size() > min_frac && d.frac_part.back() == '0') d.frac_part.pop_back();
  while (d.frac_part.size() < min_frac) d.frac_part.push_back('0');
  const bool zero = d.int_part == "0" && d.frac_part.find_first_not_of('0') == std::string::npos;
  std::string out = (d.negative && !zero) ? "-" : "";
  out += d.int_part;
  if (!d.frac_part.empty()) out += "." + d.frac_part;
  return out;
}

// ─── JSON field access with paths ───────────────────────────────────────────────────────────

std::string path_of(std::string_view base, std::string_view key) {
  return base.empty() ? std::string(key) : std::string(base) + "." + std::string(key);
}

const json* member(const json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string opt_string(const json& obj, std::string_view key, std::string_view base = {}) {
  const json* v = member(obj, key);
  if (!v) return {};
  if (!v->is_string()) throw decode_error(path_of(base, key) + " is not a string");
  return v->get<std::string>();
}

std::string req_string(const json& obj, std::string_view key, std::string_view base = {}) {
  const json* v = member(obj, key);
  if (!v) throw decode_error(path_of(base, key) + " is missing");
  if (!v->is_string()) throw decode_error(path_of(base, key) + " is not a string");
  return v->get<std::string>();
}

bool opt_bool(const json& obj, std::string_view key, bool fallback, std::string_view base = {}) {
  const json* v = member(obj, key);
  if (!v) return fallback;
  if (!v->is_boolean()) throw decode_error(path_of(base, key) + " is not a boolean");
  return v->get<bool>();
}

const json* opt_array(const json& obj, std::string_view key, std::string_view base = {}) {
  const json* v = member(obj, key);
  if (v && !v->is_array()) throw decode_error(path_of(base, key) + " is not an array");
  return v;
}

std::string entity_id(const json& row) {
  if (const json* id = member(row, "id")) {
    if (!id->is_string()) throw decode_error("id is not a string");
    return id->get<std::string>();
  }
  const json* meta = member(row, "meta");
  if (!meta) throw decode_error("id is missing");
  const json* href = member(*meta, "href");
  if (!href || !href->is_string()) throw decode_error("id is missing");
  return id_from_href(href->get<std::string>());
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

// ─── calendar ───────────────────────────────────────────────────────────────────────────────

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, int& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int>(static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2));
}

unsigned days_in_month(int y, unsigned m) {
  static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return days[m - 1];
}

struct civil_time {
  int year = 0;
  unsigned month = 0, day = 0, hour = 0, minute = 0, second = 0;
  std::string fraction;  // digits after '.', as sent
  std::int64_t epoch_seconds() const {
    return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  }
  static civil_time from_epoch(std::int64_t s) {
    civil_time t;
    std::int64_t days = s / 86400, rem = s % 86400;
    if (rem < 0) {
      rem += 86400;
      --days;
    }
    civil_from_days(days, t.year, t.month, t.day);
    t.hour = static_cast<unsigned>(rem / 3600);
    t.minute = static_cast<unsigned>(rem % 3600 / 60);
    t.second = static_cast<unsigned>(rem % 60);
    return t;
  }
  bool four_digit_year() const { return year >= 0 && year <= 9999; }
  std::string format(char sep) const {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u%c%02u:%02u:%02u", year, month, day, sep, hour, minute, second);
    return std::string(buf) + (fraction.empty() ? "" : "." + fraction);
  }
};

bool read_uint(std::string_view s, std::size_t at, std::size_t n, unsigned& out) {
  if (at + n > s.size()) return false;
  unsigned v = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
  }
  out = v;
  return true;
}

// "YYYY-MM-DD<sep>HH:MM[:SS[.f…]]", returns the rest after the time.
std::optional<civil_time> parse_civil(std::string_view s, std::string_view seps, bool seconds_required,
                                      std::string_view& rest) {
  civil_time t;
  unsigned y = 0;
  if (s.size() < 16 || !read_uint(s, 0, 4, y) || s[4] != '-' || !read_uint(s, 5, 2, t.month) || s[7] != '-' ||
      !read_uint(s, 8, 2, t.day) || seps.find(s[10]) == std::string_view::npos || !read_uint(s, 11, 2, t.hour) ||
      s[13] != ':' || !read_uint(s, 14, 2, t.minute))
    return std::nullopt;
  t.year = static_cast<int>(y);
  std::size_t at = 16;
  if (at < s.size() && s[at] == ':') {
    if (!read_uint(s, at + 1, 2, t.second)) return std::nullopt;
    at += 3;
    if (at < s.size() && s[at] == '.') {
      std::size_t end = at + 1;
      while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
      if (end == at + 1 || end - at - 1 > 9) return std::nullopt;
      t.fraction = std::string(s.substr(at + 1, end - at - 1));
      at = end;
    }
  } else if (seconds_required) {
    return std::nullopt;
  }
  if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > days_in_month(t.year, t.month) || t.hour > 23 ||
      t.minute > 59 || t.second > 59)
    return std::nullopt;
  rest = s.substr(at);
  return t;
}

constexpr std::int64_t msk_offset = 3 * 3600;

std::string money(const json& obj, std::string_view key, std::string_view base = {}) {
  const json* v = member(obj, key);
  if (!v) return {};
  return kopecks_to_decimal(*v, path_of(base, key));
}

std::string ref_of(const json& obj, std::string_view key, std::string_view base = {}) {
  return ref_id(member(obj, key), path_of(base, key)).value_or("");
}

std::string currency_of(const json* currency_ref, const lookups& l, std::string_view what) {
  const auto id = ref_id(currency_ref, what);
  if (!id) return {};
  const auto it = l.currencies.find(*id);
  return it == l.currencies.end() ? std::string() : it->second;
}

std::string first_barcode(const json& row) {
  const json* barcodes = opt_array(row, "barcodes");
  if (!barcodes) return {};
  for (std::size_t i = 0; i < barcodes->size(); ++i) {
    const json& b = (*barcodes)[i];
    if (!b.is_object()) throw decode_error("barcodes[" + std::to_string(i) + "] is not an object");
    for (const auto& [kind, value] : b.items()) {
      if (!value.is_string()) throw decode_error("barcodes[" + std::to_string(i) + "]." + kind + " is not a string");
      if (!value.get<std::string>().empty()) return value.get<std::string>();
    }
  }
  return {};
}

// One custom-field value as text (see decode_product).
std::string attribute_text(const json& v, const std::string& path) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number()) return quantity_to_decimal(v, path);
  if (v.is_object()) return opt_string(v, "name", path);
  throw decode_error(path + " is neither a string, a number, a boolean nor an object");
}

void attributes_of(const json& row, std::vector<model::attribute_value>& values,
                   std::vector<model::attribute_def>* defs) {
  const json* attrs = opt_array(row, "attributes");
  if (!attrs) return;
  for (std::size_t i = 0; i < attrs->size(); ++i) {
    const std::string path = "attributes[" + std::to_string(i) + "]";
    const json& a = (*attrs)[i];
    if (!a.is_object()) throw decode_error(path + " is not an object");
    std::string id = opt_string(a, "id", path);
    if (id.empty()) {
      const json* meta = member(a, "meta");
      if (!meta) throw decode_error(path + ".id is missing");
      id = id_from_href(req_string(*meta, "href", path + ".meta"));
    }
    if (defs) {
      model::attribute_def d;
      d.external_id = id;
      d.name = opt_string(a, "name", path);
      d.value_type = opt_string(a, "type", path);
      defs->push_back(std::move(d));
    }
    const json* v = member(a, "value");
    if (!v) continue;
    std::string text = attribute_text(*v, path + ".value");
    if (text.empty()) continue;
    values.push_back({id, {std::move(text)}});
  }
}

std::string joined_name(std::initializer_list<const std::string*> parts) {
  std::string s;
  for (const auto* p : parts)
    if (!p->empty()) s += (s.empty() ? "" : " ") + *p;
  return s;
}

// __int128 keeps order-line arithmetic exact: price (4 places) × quantity × (100 − discount %).
__extension__ typedef __int128 wide;

// Decimal text → (mantissa, scale) with at most `max_scale` fraction digits (rounded).
std::pair<wide, int> to_wide(const std::string& text, int max_scale) {
  digits d = split(text);
  round_to(d, static_cast<std::size_t>(max_scale));
  wide m = 0;
  for (char c : d.int_part + d.frac_part) {
    m = m * 10 + (c - '0');
    if (m > (static_cast<wide>(1) << 100)) throw decode_error("number '" + text + "' is too large");
  }
  return {d.negative ? -m : m, static_cast<int>(d.frac_part.size())};
}

std::string wide_text(wide m, int scale) {
  const bool neg = m < 0;
  if (neg) m = -m;
  std::string s;
  do {
    s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(m % 10)));
    m /= 10;
  } while (m != 0);
  digits d;
  d.negative = neg;
  d.int_part = s;
  shift_left(d, static_cast<std::size_t>(scale));
  return join(d, 0);
}

wide pow10(int n) {
  wide p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

// Divides with rounding half away from zero.
wide div_round(wide a, wide b) {
  const bool neg = (a < 0) != (b < 0);
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  wide q = a / b;
  if ((a % b) * 2 >= b) ++q;
  return neg ? -q : q;
}

std::vector<model::order_line> positions_of(const json& row) {
  std::vector<model::order_line> lines;
  const json* positions = member(row, "positions");
  if (!positions) return lines;
  if (!positions->is_object()) throw decode_error("positions is not an object");
  const json* rows = opt_array(*positions, "rows", "positions");
  if (!rows) return lines;  // not expanded: lines not carried
  for (std::size_t i = 0; i < rows->size(); ++i) {
    const std::string path = "positions.rows[" + std::to_string(i) + "]";
    const json& p = (*rows)[i];
    if (!p.is_object()) throw decode_error(path + " is not an object");
    model::order_line l;
    const json* assortment = member(p, "assortment");
    if (!assortment) throw decode_error(path + ".assortment is missing");
    l.offer_external_id = *ref_id(assortment, path + ".assortment");
    if (assortment->is_object()) {
      l.name = opt_string(*assortment, "name", path + ".assortment");
      l.sku = opt_string(*assortment, "article", path + ".assortment");
      const json* meta = member(*assortment, "meta");
      if (meta && opt_string(*meta, "type", path + ".assortment.meta") == "service") {
        l.service = true;
        l.item_type = "Услуга";
        l.item_kind = "Услуга";
      }
    }
    const json* q = member(p, "quantity");
    if (!q) throw decode_error(path + ".quantity is missing");
    l.quantity = quantity_to_decimal(*q, path + ".quantity");
    const json* price = member(p, "price");
    l.price = price ? kopecks_to_decimal(*price, path + ".price") : "0.00";
    std::string discount_pct = "0";
    if (const json* disc = member(p, "discount")) discount_pct = quantity_to_decimal(*disc, path + ".discount");
    // amount = price × quantity × (100 − discount) / 100, to kopecks; discount = gross − amount.
    const auto [pm, ps] = to_wide(l.price, 4);
    const auto [qm, qs] = to_wide(l.quantity, 6);
    const auto [dm, ds] = to_wide(discount_pct, 6);
    const wide gross = pm * qm;  // scale ps + qs
    const int gross_scale = ps + qs;
    const wide hundred = 100 * pow10(ds);
    const wide net = div_round(gross * (hundred - dm) * 100, hundred * pow10(gross_scale));  // kopecks
    const wide gross_kop = div_round(gross * 100, pow10(gross_scale));
    l.amount = wide_text(net, 2);
    if (dm != 0) l.discount = wide_text(gross_kop - net, 2);
    lines.push_back(std::move(l));
  }
  return lines;
}

model::document document_base(const json& row, const lookups& l, const std::string& operation) {
  model::document d;
  d.operation = operation;
  d.number = opt_string(row, "name");
  d.erp_number = d.number;
  const std::string moment = opt_string(row, "moment");
  if (!moment.empty()) {
    std::string_view rest;
    const auto t = parse_civil(moment, " ", false, rest);
    if (!t || !rest.empty()) throw decode_error("moment '" + moment + "' is not a date and time");
    const std::string text = t->format(' ');
    d.date = text.substr(0, 10);
    d.time = text.substr(11, 8);
    d.erp_date = d.date + " " + d.time;
  }
  d.total = money(row, "sum");
  d.comment = opt_string(row, "description");
  d.version = opt_string(row, "updated");
  d.deleted = member(row, "deleted") != nullptr;
  if (const json* rate = member(row, "rate")) {
    if (!rate->is_object()) throw decode_error("rate is not an object");
    const std::string cur = currency_of(member(*rate, "currency"), l, "rate.currency");
    if (!cur.empty()) d.currency = cur;
    if (const json* v = member(*rate, "value")) d.rate = quantity_to_decimal(*v, "rate.value");
  }
  if (const json* agent = member(row, "agent")) {
    model::counterparty c;
    c.external_id = *ref_id(agent, "agent");
    c.role = "Покупатель";
    d.counterparties.push_back(std::move(c));
  }
  return d;
}

model::document linked_document(const json& row, const lookups& l, const std::string& operation) {
  model::document d = document_base(row, l, operation);
  d.external_id = entity_id(row);
  if (const auto order = linked_order_id(row)) {
    const auto it = l.order_sync_ids.find(*order);
    d.base_document = it != l.order_sync_ids.end() && !it->second.empty() ? it->second : *order;
  }
  d.lines = positions_of(row);
  return d;
}

}  // namespace

// ─── scalars ────────────────────────────────────────────────────────────────────────────────

std::string kopecks_to_decimal(const json& value, std::string_view what) {
  digits d = split(number_text(value, what));
  shift_left(d, 2);
  round_to(d, 4);
  return join(d, 2);
}

std::int64_t decimal_to_kopecks(std::string_view text) {
  const auto norm = model::normalize_decimal(text);
  if (!norm) throw decode_error("'" + std::string(text) + "' is not a number");
  digits d = split(*norm);
  d.frac_part += "00";
  d.int_part += d.frac_part.substr(0, 2);
  d.frac_part.erase(0, 2);
  round_to(d, 0);
  // The magnitude as unsigned: a negative amount may reach 2^63 (INT64_MIN), a positive one 2^63 − 1.
  std::uint64_t v = 0;
  const auto nz = d.int_part.find_first_not_of('0');
  const std::string mag = nz == std::string::npos ? "0" : d.int_part.substr(nz);
  const auto r = std::from_chars(mag.data(), mag.data() + mag.size(), v);
  constexpr std::uint64_t min_magnitude = std::uint64_t{1} << 63;
  if (r.ec != std::errc() || r.ptr != mag.data() + mag.size() || v > (d.negative ? min_magnitude : min_magnitude - 1))
    throw decode_error("'" + std::string(text) + "' does not fit in kopecks");
  return d.negative ? static_cast<std::int64_t>(0 - v) : static_cast<std::int64_t>(v);
}

std::string quantity_to_decimal(const json& value, std::string_view what) {
  return join(split(number_text(value, what)), 0);
}

std::optional<std::string> msk_to_utc(std::string_view msk) {
  std::string_view rest;
  auto t = parse_civil(msk, " ", false, rest);
  if (!t || !rest.empty()) return std::nullopt;
  civil_time u = civil_time::from_epoch(t->epoch_seconds() - msk_offset);
  if (!u.four_digit_year()) return std::nullopt;  // "0000-01-01 00:00" is in year −1 UTC
  u.fraction = t->fraction;
  return u.format('T') + "Z";
}

std::optional<std::string> utc_to_msk(std::string_view utc) {
  std::string_view rest;
  auto t = parse_civil(utc, "T ", true, rest);
  if (!t || !(rest == "Z" || rest == "+00:00" || rest == "+00")) return std::nullopt;
  civil_time m = civil_time::from_epoch(t->epoch_seconds() + msk_offset);
  if (!m.four_digit_year()) return std::nullopt;  // "9999-12-31T23:00:00Z" is in year 10000 MSK
  m.fraction = t->fraction;
  return m.format(' ');
}

std::string to_msk(std::chrono::system_clock::time_point t) {
  const auto s = std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
  return civil_time::from_epoch(static_cast<std::int64_t>(s) + msk_offset).format(' ');
}

std::optional<std::chrono::system_clock::time_point> parse_msk(std::string_view msk) {
  std::string_view rest;
  auto t = parse_civil(msk, " ", false, rest);
  if (!t || !rest.empty()) return std::nullopt;
  // system_clock counts nanoseconds in 64 bits: years 1678..2262 only.
  using clock = std::chrono::system_clock;
  const std::int64_t s = t->epoch_seconds() - msk_offset;
  if (s <= std::chrono::floor<std::chrono::seconds>(clock::time_point::min()).time_since_epoch().count() ||
      s >= std::chrono::floor<std::chrono::seconds>(clock::time_point::max()).time_since_epoch().count())
    return std::nullopt;
  return clock::time_point(std::chrono::seconds(s));
}

std::string id_from_href(std::string_view href) {
  std::string_view path = href;
  if (const auto q = path.find_first_of("?#"); q != std::string_view::npos) path = path.substr(0, q);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  const auto slash = path.rfind('/');
  const std::string_view last = slash == std::string_view::npos ? path : path.substr(slash + 1);
  if (!is_uuid(last)) throw decode_error("href '" + std::string(href) + "' has no id");
  return std::string(last);
}

std::optional<std::string> ref_id(const json* ref, std::string_view what) {
  if (!ref) return std::nullopt;
  if (!ref->is_object()) throw decode_error(std::string(what) + " is not an object");
  if (const json* id = member(*ref, "id"); id && id->is_string()) return id->get<std::string>();
  const json* meta = member(*ref, "meta");
  if (!meta || !meta->is_object()) throw decode_error(std::string(what) + ".meta is missing");
  const json* href = member(*meta, "href");
  if (!href) throw decode_error(std::string(what) + ".meta.href is missing");
  if (!href->is_string()) throw decode_error(std::string(what) + ".meta.href is not a string");
  return id_from_href(href->get<std::string>());
}

std::string url_encode(std::string_view s) { return http::percent_encode(s); }

std::string error_message(const json& body) {
  const json* errors = member(body, "errors");
  if (!errors || !errors->is_array()) return {};
  std::string out;
  for (const auto& e : *errors) {
    if (!e.is_object()) continue;
    std::string one;
    if (const json* code = member(e, "code"); code && code->is_number_integer())
      one = std::to_string(code->get<std::int64_t>());
    if (const json* text = member(e, "error"); text && text->is_string())
      one += (one.empty() ? "" : " ") + text->get<std::string>();
    if (const json* p = member(e, "parameter"); p && p->is_string())
      one += " (parameter '" + p->get<std::string>() + "')";
    if (one.empty()) continue;
    out += (out.empty() ? "" : "; ") + one;
  }
  std::replace(out.begin(), out.end(), '\n', ' ');
  std::replace(out.begin(), out.end(), '\r', ' ');
  return out;
}

// ─── lookups ────────────────────────────────────────────────────────────────────────────────

void add_uoms(lookups& l, const json& rows) {
  if (!rows.is_array()) throw decode_error("entity/uom: rows is not an array");
  for (const auto& r : rows) {
    if (!r.is_object()) continue;
    try {
      l.uoms[entity_id(r)] = {opt_string(r, "name"), opt_string(r, "code")};
    } catch (const decode_error&) {
      // A malformed uom leaves products' unit empty; nothing else depends on it.
    }
  }
}

void add_currencies(lookups& l, const json& rows) {
  if (!rows.is_array()) throw decode_error("entity/currency: rows is not an array");
  for (const auto& r : rows) {
    if (!r.is_object()) continue;
    try {
      std::string code = opt_string(r, "isoCode");
      if (code.empty()) code = opt_string(r, "code");
      if (code.empty()) code = opt_string(r, "name");
      l.currencies[entity_id(r)] = code;
    } catch (const decode_error&) {
    }
  }
}

void add_states(lookups& l, const json& metadata) {
  if (!metadata.is_object()) throw decode_error("entity/customerorder/metadata is not an object");
  const json* states = opt_array(metadata, "states");
  if (!states) return;
  for (std::size_t i = 0; i < states->size(); ++i) {
    const json& s = (*states)[i];
    const std::string path = "states[" + std::to_string(i) + "]";
    if (!s.is_object()) throw decode_error(path + " is not an object");
    std::string id = opt_string(s, "id", path);
    if (id.empty()) id = entity_id(s);
    l.states[id] = opt_string(s, "name", path);
  }
}

// ─── entities ───────────────────────────────────────────────────────────────────────────────

model::category decode_folder(const json& row) {
  model::category c;
  c.external_id = entity_id(row);
  c.name = req_string(row, "name");
  c.description = opt_string(row, "description");
  c.parent_external_id = ref_of(row, "productFolder");
  c.active = !opt_bool(row, "archived", false);
  return c;
}

std::vector<model::price> decode_sale_prices(const json& sale_prices, const lookups& l, std::string_view path) {
  std::vector<model::price> out;
  if (!sale_prices.is_array()) throw decode_error(std::string(path) + " is not an array");
  for (std::size_t i = 0; i < sale_prices.size(); ++i) {
    const std::string p = std::string(path) + "[" + std::to_string(i) + "]";
    const json& sp = sale_prices[i];
    if (!sp.is_object()) throw decode_error(p + " is not an object");
    const json* value = member(sp, "value");
    if (!value) throw decode_error(p + ".value is missing");
    model::price price;
    price.value = kopecks_to_decimal(*value, p + ".value");
    const auto type = ref_id(member(sp, "priceType"), p + ".priceType");
    if (!type) throw decode_error(p + ".priceType is missing");
    price.price_type_id = *type;
    price.currency = currency_of(member(sp, "currency"), l, p + ".currency");
    if (price.value.find_first_not_of("0.") == std::string::npos) continue;  // 0 = not set
    out.push_back(std::move(price));
  }
  return out;
}

decoded_product decode_product(const json& row, const lookups& l) {
  decoded_product out;
  model::product& p = out.product;
  p.external_id = entity_id(row);
  p.name = req_string(row, "name");
  p.version = opt_string(row, "updated");
  p.active = !opt_bool(row, "archived", false);
  p.sku = opt_string(row, "article");
  p.code = opt_string(row, "code");
  p.description = opt_string(row, "description");
  p.barcode = first_barcode(row);
  if (const auto uom_id = ref_id(member(row, "uom"), "uom")) {
    if (const auto it = l.uoms.find(*uom_id); it != l.uoms.end()) {
      p.unit = it->second.name;
      p.unit_code = it->second.code;
    }
  }
  if (auto folder = ref_of(row, "productFolder"); !folder.empty()) p.category_ids.push_back(std::move(folder));
  const bool vat_on = opt_bool(row, "effectiveVatEnabled", opt_bool(row, "vatEnabled", true));
  const json* vat = member(row, "effectiveVat");
  if (!vat) vat = member(row, "vat");
  if (!vat_on) p.taxes.push_back({"НДС", "Без налога"});
  else if (vat) p.taxes.push_back({"НДС", quantity_to_decimal(*vat, member(row, "effectiveVat") ? "effectiveVat" : "vat")});
  attributes_of(row, p.attributes, &out.attribute_defs);

  std::vector<model::price> prices;
  if (const json* sp = member(row, "salePrices")) prices = decode_sale_prices(*sp, l);
  std::int64_t variants = 0;
  if (const json* vc = member(row, "variantsCount")) {
    if (!vc->is_number_integer()) throw decode_error("variantsCount is not an integer");
    variants = vc->get<std::int64_t>();
  }
  if (variants == 0) {
    model::offer o;
    o.external_id = p.external_id;
    o.product_external_id = p.external_id;
    o.name = p.name;
    o.sku = p.sku;
    o.barcode = p.barcode;
    o.version = p.version;
    o.active = p.active;
    o.prices = std::move(prices);
    out.base_offer = std::move(o);
  }
  return out;
}

model::offer decode_variant(const json& row, const lookups& l) {
  model::offer o;
  o.external_id = entity_id(row);
  o.characteristic_id = o.external_id;
  const auto product = ref_id(member(row, "product"), "product");
  if (!product) throw decode_error("product is missing");
  o.product_external_id = *product;
  o.name = req_string(row, "name");
  o.sku = opt_string(row, "article");
  o.barcode = first_barcode(row);
  o.version = opt_string(row, "updated");
  o.active = !opt_bool(row, "archived", false);
  if (const json* chars = opt_array(row, "characteristics")) {
    for (std::size_t i = 0; i < chars->size(); ++i) {
      const std::string path = "characteristics[" + std::to_string(i) + "]";
      const json& c = (*chars)[i];
      if (!c.is_object()) throw decode_error(path + " is not an object");
      model::characteristic ch;
      ch.external_id = opt_string(c, "id", path);
      ch.name = opt_string(c, "name", path);
      if (const json* v = member(c, "value")) ch.value = attribute_text(*v, path + ".value");
      o.characteristics.push_back(std::move(ch));
    }
  }
  o.prices = member(row, "salePrices") ? decode_sale_prices(*member(row, "salePrices"), l)
                                       : std::vector<model::price>{};
  attributes_of(row, o.attributes, nullptr);
  return o;
}

model::price_type decode_price_type(const json& row) {
  model::price_type t;
  t.external_id = entity_id(row);
  t.name = req_string(row, "name");
  return t;
}

model::warehouse decode_store(const json& row) {
  model::warehouse w;
  w.external_id = entity_id(row);
  w.name = req_string(row, "name");
  w.active = !opt_bool(row, "archived", false);
  return w;
}

std::vector<model::attribute_def> decode_attribute_defs(const json& metadata) {
  std::vector<model::attribute_def> out;
  if (!metadata.is_object()) throw decode_error("metadata is not an object");
  // entity/<type>/metadata/attributes is a collection ({meta, rows}); entity/<type>/metadata has
  // "attributes" either as an array or as a collection reference without rows (then: none here).
  const json* attrs = member(metadata, "rows");
  std::string base = "rows";
  if (!attrs) {
    attrs = member(metadata, "attributes");
    base = "attributes";
    if (attrs && attrs->is_object()) {
      attrs = member(*attrs, "rows");
      base = "attributes.rows";
    }
  }
  if (!attrs) return out;
  if (!attrs->is_array()) throw decode_error(base + " is not an array");
  for (std::size_t i = 0; i < attrs->size(); ++i) {
    const std::string path = base + "[" + std::to_string(i) + "]";
    const json& a = (*attrs)[i];
    if (!a.is_object()) throw decode_error(path + " is not an object");
    model::attribute_def d;
    d.external_id = opt_string(a, "id", path);
    if (d.external_id.empty()) {
      const json* meta = member(a, "meta");
      if (!meta) throw decode_error(path + ".id is missing");
      d.external_id = id_from_href(req_string(*meta, "href", path + ".meta"));
    }
    d.name = req_string(a, "name", path);
    d.value_type = opt_string(a, "type", path);
    out.push_back(std::move(d));
  }
  return out;
}

model::counterparty decode_counterparty(const json& row) {
  model::counterparty c;
  c.external_id = entity_id(row);
  c.name = req_string(row, "name");
  c.role = "Покупатель";
  const std::string type = opt_string(row, "companyType");
  c.legal_entity = type.empty() || type.rfind("legal", 0) == 0;
  c.inn = opt_string(row, "inn");
  c.kpp = opt_string(row, "kpp");
  c.okpo = opt_string(row, "okpo");
  c.last_name = opt_string(row, "legalLastName");
  c.first_name = opt_string(row, "legalFirstName");
  c.middle_name = opt_string(row, "legalMiddleName");
  if (c.legal_entity) {
    c.official_name = opt_string(row, "legalTitle");
    c.full_name = c.official_name;
  } else {
    c.full_name = joined_name({&c.last_name, &c.first_name, &c.middle_name});
    if (c.full_name.empty()) c.full_name = opt_string(row, "legalTitle");
  }
  c.legal_address.presentation = opt_string(row, "legalAddress");
  c.postal_address.presentation = opt_string(row, "actualAddress");
  if (auto email = opt_string(row, "email"); !email.empty()) c.contacts.push_back({"Почта", std::move(email)});
  if (auto phone = opt_string(row, "phone"); !phone.empty()) c.contacts.push_back({"ТелефонРабочий", std::move(phone)});
  c.active = !opt_bool(row, "archived", false);
  c.version = opt_string(row, "updated");
  if (const auto pt = ref_id(member(row, "priceType"), "priceType")) c.price_type_id = *pt;
  if (const auto owner = ref_id(member(row, "owner"), "owner")) c.manager_id = *owner;
  if (const json* o = member(row, "owner"); o && o->is_object()) c.manager = opt_string(*o, "name");
  return c;
}

model::document decode_customer_order(const json& row, const lookups& l) {
  model::document d = document_base(row, l, "Заказ товара");
  const std::string id = entity_id(row);
  const std::string sync = opt_string(row, "syncId");
  d.external_id = sync.empty() ? id : sync;
  if (const auto state = ref_id(member(row, "state"), "state")) {
    const auto it = l.states.find(*state);
    if (it != l.states.end() && !it->second.empty()) d.requisites.push_back({"Статус заказа", it->second});
    d.requisites.push_back({"Статуса заказа ИД", *state});
  }
  d.lines = positions_of(row);
  return d;
}

model::document decode_invoice_out(const json& row, const lookups& l) {
  return linked_document(row, l, "Счет на оплату");
}

model::document decode_demand(const json& row, const lookups& l) { return linked_document(row, l, "Отпуск товара"); }

std::optional<std::string> linked_order_id(const json& row) {
  return ref_id(member(row, "customerOrder"), "customerOrder");
}

std::vector<stock_current_row> decode_stock_current(const json& body, std::vector<std::string>& warnings) {
  if (!body.is_array()) throw decode_error("stock report: the answer is not an array");
  std::vector<stock_current_row> out;
  out.reserve(body.size());
  std::size_t n = 0;
  for (const auto& r : body) {
    ++n;
    try {
      if (!r.is_object()) throw decode_error("not an object");
      stock_current_row s;
      s.assortment_id = req_string(r, "assortmentId");
      s.store_id = opt_string(r, "storeId");
      const json* value = nullptr;
      std::string key;
      for (const auto& [k, v] : r.items())
        if (k != "assortmentId" && k != "storeId") {
          key = k;
          value = &v;
          break;
        }
      if (!value) throw decode_error("no stock value");
      if (value->is_null()) throw decode_error(key + " is null (still recalculating)");
      s.quantity = quantity_to_decimal(*value, key);
      out.push_back(std::move(s));
    } catch (const decode_error& e) {
      std::string id;
      if (r.is_object())
        if (const json* a = member(r, "assortmentId"); a && a->is_string()) id = " '" + a->get<std::string>() + "'";
      warnings.push_back("stock row " + std::to_string(n) + id + ": " + e.what() + "; skipped");
    }
  }
  return out;
}

// ─── webhooks ───────────────────────────────────────────────────────────────────────────────

std::vector<event> parse_webhook(const json& body) {
  if (!body.is_object()) throw decode_error("webhook body is not a JSON object");
  const json* events = member(body, "events");
  if (!events) throw decode_error("events is missing");
  if (!events->is_array()) throw decode_error("events is not an array");
  std::vector<event> out;
  for (std::size_t i = 0; i < events->size(); ++i) {
    const std::string path = "events[" + std::to_string(i) + "]";
    const json& e = (*events)[i];
    if (!e.is_object()) throw decode_error(path + " is not an object");
    const json* meta = member(e, "meta");
    if (!meta) throw decode_error(path + ".meta is missing");
    if (!meta->is_object()) throw decode_error(path + ".meta is not an object");
    event ev;
    ev.type = req_string(*meta, "type", path + ".meta");
    ev.href = req_string(*meta, "href", path + ".meta");
    try {
      ev.id = id_from_href(ev.href);
    } catch (const decode_error& x) {
      throw decode_error(path + ".meta.href: " + x.what());
    }
    ev.action = req_string(e, "action", path);
    if (const json* f = opt_array(e, "updatedFields", path))
      for (std::size_t k = 0; k < f->size(); ++k) {
        if (!(*f)[k].is_string())
          throw decode_error(path + ".updatedFields[" + std::to_string(k) + "] is not a string");
        ev.updated_fields.push_back((*f)[k].get<std::string>());
      }
    out.push_back(std::move(ev));
  }
  return out;
}

std::string parse_webhookstock(const json& body) {
  if (!body.is_object()) throw decode_error("webhookstock body is not a JSON object");
  std::string url = req_string(body, "reportUrl");
  if (url.empty()) throw decode_error("reportUrl is empty");
  return url;
}

std::string row_label(const json& row, std::string_view kind, std::string_view where, std::size_t n) {
  std::string id;
  if (const json* v = member(row, "id"); v && v->is_string()) id = " '" + v->get<std::string>() + "'";
  return std::string(kind) + id + " (" + std::string(where) + " row " + std::to_string(n) + "): ";
}

}  // namespace obmen::moysklad
