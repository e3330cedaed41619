#include "common/metrics.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace obmen::metrics {

const std::vector<double>& duration_buckets() {
  static const std::vector<double> b = {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
  return b;
}

std::string escape_label_value(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escape_help(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integers (counts, unix timestamps) in full, not as 1.7e+09.
  if (std::fabs(v) < 9007199254740992.0 && v == std::trunc(v)) return std::to_string(static_cast<std::int64_t>(v));
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void registry::declare(const std::string& name, kind type, std::string help, std::vector<double> buckets) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = families_.try_emplace(name);
  if (!inserted) {
    if (it->second.type != type) throw std::logic_error("metric " + name + " declared twice with different types");
    return;
  }
  it->second.type = type;
  it->second.help = std::move(help);
  it->second.buckets = std::move(buckets);
}

void registry::counter(const std::string& name, std::string help) { declare(name, kind::counter, std::move(help), {}); }
void registry::gauge(const std::string& name, std::string help) { declare(name, kind::gauge, std::move(help), {}); }
void registry::histogram(const std::string& name, std::string help, std::vector<double> buckets) {
  declare(name, kind::histogram, std::move(help), std::move(buckets));
}

// Caller holds mutex_.
registry::series& registry::at(const std::string& name, kind type, const labels& l) {
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type != type)
    throw std::logic_error("metric " + name + " is not declared with this type");
  auto& s = it->second.values[l];
  if (type == kind::histogram && s.bucket_counts.empty()) s.bucket_counts.assign(it->second.buckets.size() + 1, 0);
  return s;
}

void registry::add(const std::string& name, const labels& l, double by) {
  if (by < 0) throw std::logic_error("counter " + name + " cannot decrease");
  std::lock_guard lock(mutex_);
  at(name, kind::counter, l).value += by;
}

void registry::set(const std::string& name, const labels& l, double value) {
  std::lock_guard lock(mutex_);
  at(name, kind::gauge, l).value = value;
}

void registry::observe(const std::string& name, const labels& l, double value) {
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  auto& s = at(name, kind::histogram, l);
  const auto& bounds = it->second.buckets;
  std::size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  ++s.bucket_counts[i];
  s.sum += value;
  ++s.count;
}

namespace {

// `{a="x",b="y"}` with an extra label appended (histogram `le`); "" without any label.
std::string label_text(const labels& l, const std::string& extra_name = {}, const std::string& extra_value = {}) {
  if (l.empty() && extra_name.empty()) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : l) {
    if (!first) out += ',';
    first = false;
    out += k + "=\"" + escape_label_value(v) + "\"";
  }
  if (!extra_name.empty()) out += std::string(first ? "" : ",") + extra_name + "=\"" + escape_label_value(extra_value) + "\"";
  return out + "}";
}

}  // namespace

std::string registry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, f] : families_) {
    const char* type = f.type == kind::counter ? "counter" : f.type == kind::gauge ? "gauge" : "histogram";
    out += "# HELP " + name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + name + " " + type + "\n";
    for (const auto& [l, s] : f.values) {
      if (f.type != kind::histogram) {
        out += name + label_text(l) + " " + format_value(s.value) + "\n";
        continue;
      }
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < s.bucket_counts.size(); ++i) {
        cumulative += s.bucket_counts[i];
        const std::string le = i < f.buckets.size() ? format_value(f.buckets[i]) : "+Inf";
        out += name + "_bucket" + label_text(l, "le", le) + " " + std::to_string(cumulative) + "\n";
      }
      out += name + "_sum" + label_text(l) + " " + format_value(s.sum) + "\n";
      out += name + "_count" + label_text(l) + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

registry& default_registry() {
  static registry r;
  return r;
}

}  // namespace obmen::metrics
