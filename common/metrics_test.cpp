#include <doctest/doctest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.hpp"

namespace m = obmen::metrics;

TEST_CASE("counters and gauges render with HELP, TYPE and escaped labels") {
  m::registry r;
  r.counter("obmen_things_total", "Things done.\nSecond line \\ backslash");
  r.gauge("obmen_level", "A level.");
  r.add("obmen_things_total", {{"source", "onec"}, {"outcome", "success"}});
  r.add("obmen_things_total", {{"source", "onec"}, {"outcome", "success"}}, 2);
  r.add("obmen_things_total", {{"source", "a\"b\\c\nd"}, {"outcome", "failure"}});
  r.set("obmen_level", {}, 1.5);
  r.set("obmen_level", {}, -3);
  CHECK(r.render() ==
        "# HELP obmen_level A level.\n"
        "# TYPE obmen_level gauge\n"
        "obmen_level -3\n"
        "# HELP obmen_things_total Things done.\\nSecond line \\\\ backslash\n"
        "# TYPE obmen_things_total counter\n"
        "obmen_things_total{source=\"a\\\"b\\\\c\\nd\",outcome=\"failure\"} 1\n"
        "obmen_things_total{source=\"onec\",outcome=\"success\"} 3\n");
}

TEST_CASE("a declared family without series renders HELP and TYPE only") {
  m::registry r;
  r.counter("obmen_x_total", "X.");
  CHECK(r.render() == "# HELP obmen_x_total X.\n# TYPE obmen_x_total counter\n");
}

TEST_CASE("histograms render cumulative buckets, +Inf, sum and count") {
  m::registry r;
  r.histogram("obmen_d_seconds", "D.", {0.5, 1, 60});
  r.observe("obmen_d_seconds", {{"kind", "import"}}, 0.25);
  r.observe("obmen_d_seconds", {{"kind", "import"}}, 1);      // on a bound: counted in it (le)
  r.observe("obmen_d_seconds", {{"kind", "import"}}, 3600);
  CHECK(r.render() ==
        "# HELP obmen_d_seconds D.\n"
        "# TYPE obmen_d_seconds histogram\n"
        "obmen_d_seconds_bucket{kind=\"import\",le=\"0.5\"} 1\n"
        "obmen_d_seconds_bucket{kind=\"import\",le=\"1\"} 2\n"
        "obmen_d_seconds_bucket{kind=\"import\",le=\"60\"} 2\n"
        "obmen_d_seconds_bucket{kind=\"import\",le=\"+Inf\"} 3\n"
        "obmen_d_seconds_sum{kind=\"import\"} 3601.25\n"
        "obmen_d_seconds_count{kind=\"import\"} 3\n");
}

TEST_CASE("duration buckets go up to one hour") {
  CHECK(m::duration_buckets().back() == 3600);
  CHECK(std::is_sorted(m::duration_buckets().begin(), m::duration_buckets().end()));
}

TEST_CASE("misuse is a logic error") {
  m::registry r;
  r.counter("obmen_c_total", "C.");
  CHECK_NOTHROW(r.counter("obmen_c_total", "C."));
  CHECK_THROWS_AS(r.gauge("obmen_c_total", "C."), std::logic_error);
  CHECK_THROWS_AS(r.set("obmen_c_total", {}, 1), std::logic_error);
  CHECK_THROWS_AS(r.add("obmen_nope_total", {}), std::logic_error);
  CHECK_THROWS_AS(r.add("obmen_c_total", {}, -1), std::logic_error);
}

TEST_CASE("values: integers plain, fractions shortest, infinities and NaN spelled out") {
  CHECK(m::format_value(36) == "36");
  CHECK(m::format_value(0.1) == "0.1");
  CHECK(m::format_value(1.7e9) == "1700000000");
  CHECK(m::format_value(1.0 / 0.0) == "+Inf");
  CHECK(m::format_value(-1.0 / 0.0) == "-Inf");
  CHECK(m::format_value(0.0 / 0.0) == "NaN");
}

TEST_CASE("concurrent adds are all counted") {
  m::registry r;
  r.counter("obmen_n_total", "N.");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&r] {
      for (int i = 0; i < 10000; ++i) r.add("obmen_n_total", {{"t", "x"}});
    });
  for (auto& t : threads) t.join();
  CHECK(r.render().find("obmen_n_total{t=\"x\"} 40000\n") != std::string::npos);
}
