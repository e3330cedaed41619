#include "adapters/moysklad/rate_limiter.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

using obmen::moysklad::rate_limit_headers;
using obmen::moysklad::rate_limit_options;
using obmen::moysklad::rate_limiter;
using namespace std::chrono_literals;

namespace {

// A clock that only moves when the limiter sleeps.
struct fake_clock {
  rate_limiter::clock::time_point t{std::chrono::hours(1)};
  std::vector<std::chrono::milliseconds> sleeps;
  rate_limiter::now_fn now() {
    return [this] { return t; };
  }
  rate_limiter::sleep_fn sleep() {
    return [this](rate_limiter::clock::duration d) {
      sleeps.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(d));
      t += d;
    };
  }
  long long ms_since(rate_limiter::clock::time_point start) const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t - start).count();
  }
};

}  // namespace

TEST_CASE("rate limiter: 45 units per 3 s at weight 4 is 11 requests per window") {
  fake_clock fc;
  rate_limiter rl({}, fc.now(), fc.sleep());
  const auto start = fc.t;
  std::vector<long long> sent;
  for (int i = 0; i < 34; ++i) {
    rl.acquire(4).release();
    sent.push_back(fc.ms_since(start));
  }
  // 11 at once, the 12th when the first one's units come back, and so on.
  CHECK(sent[10] == 0);
  CHECK(sent[11] == 3000);
  CHECK(sent[21] == 3000);
  CHECK(sent[22] == 6000);
  CHECK(sent[33] == 9000);
  // No 3 s window ever holds more than 11 requests.
  for (std::size_t i = 0; i < sent.size(); ++i) {
    int in_window = 0;
    for (long long t : sent) in_window += t >= sent[i] && t < sent[i] + 3000;
    CHECK(in_window <= 11);
  }
  const auto s = rl.snapshot();
  CHECK(s.waits == 3);
  CHECK(s.waited == 9000ms);
  CHECK(fc.sleeps == std::vector<std::chrono::milliseconds>{3000ms, 3000ms, 3000ms});
}

TEST_CASE("rate limiter: mixed weights, stock reports cost more, units above the budget count as the budget") {
  fake_clock fc;
  rate_limiter rl({.budget = 45, .window = 3000ms, .max_parallel = 4}, fc.now(), fc.sleep());
  const auto start = fc.t;
  rl.acquire(4 + 5).release();  // a stock report with a user token
  fc.t += 1000ms;
  for (int i = 0; i < 9; ++i) rl.acquire(4).release();  // 9 + 36 = 45
  CHECK(rl.available() == 0);
  CHECK(fc.ms_since(start) == 1000);
  rl.acquire(4).release();  // waits for the report's 9 units: 2000 ms more
  CHECK(fc.ms_since(start) == 3000);
  CHECK(rl.available() == 5);  // 45 - 36 (at 1000 ms) - 4

  fake_clock fc2;
  rate_limiter rl2({.budget = 10, .window = 1000ms, .max_parallel = 1}, fc2.now(), fc2.sleep());
  rl2.acquire(50).release();  // would never fit otherwise
  CHECK(rl2.available() == 0);
}

TEST_CASE("rate limiter: the server's Remaining wins when it is lower") {
  fake_clock fc;
  rate_limiter rl({}, fc.now(), fc.sleep());
  rl.acquire(4).release();
  CHECK(rl.available() == 41);
  // Another process of the same user spent units: the server says only 9 are left.
  rl.observe({.limit = 45, .remaining = 9, .interval_ms = 3000, .reset_ms = 0, .retry_after_ms = 0});
  CHECK(rl.available() == 9);
  rl.acquire(4).release();
  rl.acquire(4).release();
  CHECK(fc.sleeps.empty());
  rl.acquire(4).release();  // 1 left: waits until the first units come back
  CHECK(fc.sleeps == std::vector<std::chrono::milliseconds>{3000ms});

  // A higher Remaining (a stale answer of an earlier request) does not raise our estimate.
  const int before = rl.available();
  rl.observe({.limit = 45, .remaining = 45});
  CHECK(rl.available() == before);
}

TEST_CASE("rate limiter: Remaining counted in requests is scaled by Limit") {
  fake_clock fc;
  rate_limiter rl({}, fc.now(), fc.sleep());
  rl.observe({.limit = 11, .remaining = 5});  // 5 of 11 requests → 20 of 45 units
  CHECK(rl.available() == 20);
}

TEST_CASE("rate limiter: the window follows X-Lognex-Retry-TimeInterval; Remaining 0 waits for Reset") {
  fake_clock fc;
  rate_limiter rl({}, fc.now(), fc.sleep());
  rl.observe({.interval_ms = 5000});
  CHECK(rl.window() == 5000ms);
  rl.observe({.interval_ms = 0});          // nonsense is ignored
  rl.observe({.interval_ms = 3'600'000});
  CHECK(rl.window() == 5000ms);

  rl.observe({.limit = 45, .remaining = 0, .reset_ms = 1200});
  CHECK(rl.available() == 0);
  const auto start = fc.t;
  rl.acquire(4).release();
  CHECK(fc.ms_since(start) == 1200);  // the server's units come back when it says so
  rl.acquire(4).release();            // our own spend lasts the (new) 5 s window
  CHECK(fc.ms_since(start) == 1200);
  CHECK(rl.available() == 37);

  rl.observe({.remaining = 0});       // no Reset: one window
  const auto second = fc.t;
  rl.acquire(4).release();
  CHECK(fc.ms_since(second) == 5000);
}

TEST_CASE("rate limiter: penalize stops everyone for the Retry-After") {
  fake_clock fc;
  rate_limiter rl({}, fc.now(), fc.sleep());
  rl.penalize(1500ms);
  rl.penalize(200ms);  // a shorter penalty does not shorten the running one
  const auto start = fc.t;
  rl.acquire(4).release();
  CHECK(fc.ms_since(start) == 1500);
  rl.acquire(4).release();
  CHECK(fc.ms_since(start) == 1500);
  CHECK(rl.snapshot().waits == 1);
  CHECK(rl.snapshot().waited == 1500ms);
}

TEST_CASE("rate limiter: at most max_parallel in flight, never above 5") {
  CHECK(rate_limiter({.max_parallel = 9}).max_parallel() == 5);
  CHECK(rate_limiter({.max_parallel = 0}).max_parallel() == 1);

  rate_limiter rl({.budget = 1000, .window = 3000ms, .max_parallel = 2});
  auto a = rl.acquire(1);
  auto b = rl.acquire(1);
  CHECK(rl.in_flight() == 2);
  std::atomic<bool> third_done = false;
  std::thread t([&] {
    auto c = rl.acquire(1);
    third_done = true;
  });
  // The third caller is inside the slot wait once slot_waits counts it.
  while (rl.snapshot().slot_waits == 0) std::this_thread::yield();
  CHECK_FALSE(third_done.load());
  CHECK(rl.in_flight() == 2);
  a.release();
  t.join();
  CHECK(third_done.load());
  CHECK(rl.in_flight() == 1);
  b = rate_limiter::permit{};  // move-assigning releases the old slot
  CHECK(rl.in_flight() == 0);
}
