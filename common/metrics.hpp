#pragma once
// A small Prometheus metrics registry: counters, gauges and histograms with labels, rendered
// in the text exposition format 0.0.4 (HELP and TYPE lines, label values escaped).
//
// Thread-safe: one mutex guards every family, so the io_context thread and the import pool may
// record at the same time; recording is a map lookup and an add under that lock (cheap next to
// the work measured). Families are declared once (`counter`, `gauge`, `histogram`; declaring the
// same name again with the same type is a no-op); recording into an undeclared family or one of
// another type throws std::logic_error (a bug, not a runtime condition).
//
// default_registry() holds what obmend accumulates (exchanges, imports); values measured at
// scrape time (queue depth, process) go into a registry built per scrape and rendered after it.
// Metric names: docs/metrics.md.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace obmen::metrics {

// Label name → value, in the order they are rendered. Keep label values bounded (no ids).
using labels = std::vector<std::pair<std::string, std::string>>;

// Seconds, for import durations: 100 ms … 1 h.
const std::vector<double>& duration_buckets();

class registry {
 public:
  registry() = default;
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  void counter(const std::string& name, std::string help);
  void gauge(const std::string& name, std::string help);
  // `buckets`: upper bounds in increasing order; +Inf is implied.
  void histogram(const std::string& name, std::string help, std::vector<double> buckets);

  void add(const std::string& name, const labels& l, double by = 1);   // counters; by >= 0
  void set(const std::string& name, const labels& l, double value);    // gauges
  void observe(const std::string& name, const labels& l, double value);  // histograms

  // Every family in name order: "# HELP", "# TYPE", then one line per series. A declared family
  // without series renders HELP and TYPE only.
  std::string render() const;

 private:
  enum class kind { counter, gauge, histogram };
  struct series {
    double value = 0;                        // counter/gauge
    std::vector<std::uint64_t> bucket_counts;  // histogram, not cumulative; last = +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  struct family {
    kind type;
    std::string help;
    std::vector<double> buckets;
    std::map<labels, series> values;
  };
  void declare(const std::string& name, kind type, std::string help, std::vector<double> buckets);
  series& at(const std::string& name, kind type, const labels& l);

  mutable std::mutex mutex_;
  std::map<std::string, family> families_;
};

registry& default_registry();

// `\` → `\\`, `"` → `\"`, newline → `\n` (label values); HELP text escapes `\` and newline only.
std::string escape_label_value(std::string_view);
std::string escape_help(std::string_view);
// Integral values (below 2^53) as integers; others in the shortest exact form; "+Inf", "-Inf", "NaN".
std::string format_value(double);

}  // namespace obmen::metrics
