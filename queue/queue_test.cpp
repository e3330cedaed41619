// Pure parts of the queue: the retry policy, the backoff schedule and its jitter, state names.
#include <doctest/doctest.h>

#include <chrono>
#include <limits>
#include <memory>
#include <vector>

#include "queue/backoff.hpp"
#include "queue/queue.hpp"

using namespace std::chrono_literals;
using obmen::queue::backoff;
using obmen::queue::backoff_ceiling;
using obmen::queue::retry_policy;

namespace {

obmen::queue::random_source fixed(double r) {
  return [r] { return r; };
}

// Hands out the given numbers in turn (and fails the test when asked for more).
obmen::queue::random_source sequence(std::vector<double> values) {
  auto next = std::make_shared<std::size_t>(0);
  return [values = std::move(values), next] {
    REQUIRE(*next < values.size());
    return values[(*next)++];
  };
}

retry_policy policy(std::chrono::milliseconds base, std::chrono::milliseconds cap, int max_attempts = 5) {
  retry_policy p;
  p.base = base;
  p.cap = cap;
  p.max_attempts = max_attempts;
  return p;
}

}  // namespace

TEST_CASE("the backoff ceiling doubles from base after each failed attempt and stops at cap") {
  const auto p = policy(100ms, 1000ms);
  CHECK(backoff_ceiling(p, 1) == 100ms);
  CHECK(backoff_ceiling(p, 2) == 200ms);
  CHECK(backoff_ceiling(p, 3) == 400ms);
  CHECK(backoff_ceiling(p, 4) == 800ms);
  CHECK(backoff_ceiling(p, 5) == 1000ms);
  CHECK(backoff_ceiling(p, 6) == 1000ms);
  CHECK(backoff_ceiling(p, 1000) == 1000ms);
  // Attempt numbers below 1 are the first attempt.
  CHECK(backoff_ceiling(p, 0) == 100ms);
  CHECK(backoff_ceiling(p, -3) == 100ms);
  // A cap that is not base · 2^k is reached exactly.
  CHECK(backoff_ceiling(policy(3ms, 10ms), 3) == 10ms);
  CHECK(backoff_ceiling(policy(3ms, 10ms), 2) == 6ms);
  // cap == base: constant.
  CHECK(backoff_ceiling(policy(250ms, 250ms), 7) == 250ms);
}

TEST_CASE("the backoff ceiling does not overflow however many attempts and however large the cap") {
  const auto huge = std::chrono::milliseconds::max();
  CHECK(backoff_ceiling(policy(1ms, huge), 62) == std::chrono::milliseconds(1LL << 61));
  CHECK(backoff_ceiling(policy(1ms, huge), 63) == std::chrono::milliseconds(1LL << 62));
  CHECK(backoff_ceiling(policy(1ms, huge), 64) == huge);
  CHECK(backoff_ceiling(policy(1ms, huge), std::numeric_limits<int>::max()) == huge);
  CHECK(backoff_ceiling(policy(1000ms, 30min), std::numeric_limits<int>::max()) == 30min);
}

TEST_CASE("full jitter: the delay is floor(ceiling · r) for the injected random number r") {
  const auto p = policy(100ms, 1000ms);
  // r = 0.5: half of each ceiling, exactly.
  std::vector<std::chrono::milliseconds> schedule;
  for (int attempt = 1; attempt <= 7; ++attempt) schedule.push_back(backoff(p, attempt, fixed(0.5)));
  CHECK(schedule == std::vector<std::chrono::milliseconds>{50ms, 100ms, 200ms, 400ms, 500ms, 500ms, 500ms});

  CHECK(backoff(p, 1, fixed(0.0)) == 0ms);
  CHECK(backoff(p, 3, fixed(0.999)) == 399ms);  // floor(399.6)
  CHECK(backoff(p, 3, fixed(0.25)) == 100ms);
  CHECK(backoff(p, 9, fixed(0.125)) == 125ms);  // capped ceiling 1000

  // One random number per call, in order.
  const auto rnd = sequence({0.25, 0.75, 0.125, 0.875});
  CHECK(backoff(p, 1, rnd) == 25ms);
  CHECK(backoff(p, 2, rnd) == 150ms);
  CHECK(backoff(p, 3, rnd) == 50ms);
  CHECK(backoff(p, 4, rnd) == 700ms);
}

TEST_CASE("random numbers outside [0, 1) are clamped: the delay stays in [0, ceiling)") {
  const auto p = policy(100ms, 1000ms);
  CHECK(backoff(p, 2, fixed(1.0)) == 199ms);
  CHECK(backoff(p, 2, fixed(7.5)) == 199ms);
  CHECK(backoff(p, 2, fixed(-0.5)) == 0ms);
  CHECK(backoff(p, 2, fixed(std::numeric_limits<double>::quiet_NaN())) == 0ms);
  CHECK(backoff(p, 2, fixed(std::numeric_limits<double>::infinity())) == 199ms);
  // A ceiling of 1 ms allows only 0.
  CHECK(backoff(policy(1ms, 1ms), 5, fixed(0.99)) == 0ms);
}

TEST_CASE("default_random: delays stay within [0, ceiling), spread over it, and differ between calls") {
  const auto p = policy(1000ms, 64000ms);
  const auto rnd = obmen::queue::default_random();
  for (int attempt = 1; attempt <= 8; ++attempt) {
    CAPTURE(attempt);
    const auto ceiling = backoff_ceiling(p, attempt);
    const int draws = 5000;
    double sum = 0;
    std::chrono::milliseconds lo = ceiling, hi{0};
    int outside = 0;
    for (int i = 0; i < draws; ++i) {
      const auto d = backoff(p, attempt, rnd);
      outside += d < 0ms || d >= ceiling;
      lo = std::min(lo, d);
      hi = std::max(hi, d);
      sum += static_cast<double>(d.count());
    }
    CHECK(outside == 0);
    // Uniform on [0, c): mean c/2 with a standard error of about 0.004 c for 5000 draws;
    // 0.05 c is more than ten standard errors.
    const double mean = sum / draws;
    CHECK(mean > 0.45 * static_cast<double>(ceiling.count()));
    CHECK(mean < 0.55 * static_cast<double>(ceiling.count()));
    CHECK(lo < ceiling / 10);
    CHECK(hi > ceiling * 9 / 10);
  }
}

TEST_CASE("validate names every problem of a retry policy") {
  CHECK(obmen::queue::validate(retry_policy{}).empty());
  CHECK(retry_policy{}.base == 1s);
  CHECK(retry_policy{}.cap == 30min);
  CHECK(retry_policy{}.max_attempts == 20);
  CHECK(obmen::queue::validate(policy(0ms, 10ms, 0)) ==
        std::vector<std::string>{"retry_policy.base must be positive, got 0 ms",
                                 "retry_policy.max_attempts must be at least 1, got 0"});
  CHECK(obmen::queue::validate(policy(500ms, 100ms, 3)) ==
        std::vector<std::string>{"retry_policy.cap must be at least base (500 ms), got 100 ms"});
}

TEST_CASE("state names round-trip; unknown names are refused") {
  for (auto st : obmen::queue::all_states) {
    CAPTURE(obmen::queue::to_string(st));
    CHECK(obmen::queue::parse_state(obmen::queue::to_string(st)) == st);
  }
  CHECK(obmen::queue::to_string(obmen::queue::state::in_flight) == "in_flight");
  CHECK_FALSE(obmen::queue::parse_state("inflight").has_value());
  CHECK_FALSE(obmen::queue::parse_state("").has_value());
  CHECK(obmen::queue::to_string(obmen::queue::error_class::transient) == "transient");
  CHECK(obmen::queue::to_string(obmen::queue::error_class::permanent) == "permanent");
}

TEST_CASE("an item's JSON carries every field but the claim token") {
  obmen::queue::item it;
  it.id = 7;
  it.kind = "export_order";
  it.target = "moysklad";
  it.payload = {{"order", 42}};
  it.idempotency_key = "moysklad:customerorder:42";
  it.state = obmen::queue::state::dead;
  it.attempts = 3;
  it.next_attempt_at = "2024-05-01T10:00:00.000Z";
  it.claimed_by = "host:1";
  it.claim_token = "secret";
  it.last_error_class = "permanent";
  it.last_error = "400 Bad Request";
  it.created_at = it.updated_at = "2024-05-01T09:00:00.000Z";
  const auto j = it.to_json();
  CHECK(j.dump() ==
        R"({"attempts":3,"claimed_by":"host:1","created_at":"2024-05-01T09:00:00.000Z","id":7,)"
        R"("idempotency_key":"moysklad:customerorder:42","kind":"export_order","last_error":"400 Bad Request",)"
        R"("last_error_class":"permanent","lease_until":null,"next_attempt_at":"2024-05-01T10:00:00.000Z",)"
        R"("payload":{"order":42},"state":"dead","target":"moysklad","updated_at":"2024-05-01T09:00:00.000Z"})");
}
