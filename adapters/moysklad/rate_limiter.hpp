#pragma once
// Keeps obmen under МойСклад's request budget (API.md §8): a bucket of `budget` units per
// `window` (45 per 3000 ms) shared by every request of one user, at most `max_parallel`
// requests in flight (the server allows 5 per user; we default to 4), and a full stop after a
// 429 until X-Lognex-Retry-After has passed.
//
// The bucket is a sliding window: units a request spends come back exactly `window` after it
// was sent, so no window of that length ever holds more than `budget` units — with weight 4,
// at most 11 requests per 3 s whatever way the server counts. The server's own view
// (X-RateLimit-Remaining on every answer) wins whenever it says fewer units are left.
//
// Thread-safe. acquire() blocks the calling thread (never call it on an io_context thread).
// The clock and the sleep are injectable so tests run on a fake clock.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <vector>
#include <functional>
#include <mutex>
#include <optional>

namespace obmen::moysklad {

struct rate_limit_options {
  int budget = 45;                              // units per window
  std::chrono::milliseconds window{3000};       // X-Lognex-Retry-TimeInterval replaces it when sent
  int max_parallel = 4;                         // requests in flight; clamped to 1..5
  // Spent units come back after window + margin: the server counts a request when it arrives,
  // and its window need not start when ours does, so a little slack keeps us off its 429.
  std::chrono::milliseconds margin{0};
};

// The rate-limit headers of one answer, as numbers (absent or unparsable → nullopt).
struct rate_limit_headers {
  std::optional<long long> limit;               // X-RateLimit-Limit
  std::optional<long long> remaining;           // X-RateLimit-Remaining
  std::optional<long long> interval_ms;         // X-Lognex-Retry-TimeInterval
  std::optional<long long> reset_ms;            // X-Lognex-Reset (0: no restriction active)
  std::optional<long long> retry_after_ms;      // X-Lognex-Retry-After
};

class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;
  using now_fn = std::function<clock::time_point()>;
  using sleep_fn = std::function<void(clock::duration)>;

  struct stats {
    std::uint64_t waits = 0;                    // acquire() calls that had to wait for units or a penalty
    std::chrono::milliseconds waited{0};        // their total waiting time (by the limiter's clock)
    std::uint64_t slot_waits = 0;               // acquire() calls that waited for a free parallel slot
  };

  // Holds one of the parallel slots; gives it back when destroyed. Move-only.
  class permit {
   public:
    permit() = default;
    permit(permit&& o) noexcept : owner_(o.owner_) { o.owner_ = nullptr; }
    permit& operator=(permit&& o) noexcept;
    permit(const permit&) = delete;
    permit& operator=(const permit&) = delete;
    ~permit() { release(); }
    void release();                             // gives the slot back early; idempotent
   private:
    friend class rate_limiter;
    explicit permit(rate_limiter* owner) : owner_(owner) {}
    rate_limiter* owner_ = nullptr;
  };

  // `now`/`sleep` default to steady_clock::now and std::this_thread::sleep_for.
  explicit rate_limiter(rate_limit_options = {}, now_fn now = nullptr, sleep_fn sleep = nullptr);
  rate_limiter(const rate_limiter&) = delete;
  rate_limiter& operator=(const rate_limiter&) = delete;

  // Blocks until a parallel slot is free, no penalty is running and `units` fit in the window;
  // then spends the units and returns the slot as a permit. Units above the budget count as
  // the whole budget.
  permit acquire(int units);

  // Adapts to an answer's headers: the window length from X-Lognex-Retry-TimeInterval; when
  // X-RateLimit-Remaining (scaled from X-RateLimit-Limit to our budget) is below what we think
  // is left, the difference is booked as spent now, coming back after X-Lognex-Reset /
  // X-Lognex-Retry-After ms when the server sends them (> 0), else after one window.
  void observe(const rate_limit_headers&);

  // After a 429: nobody acquires until `duration` from now has passed.
  void penalize(std::chrono::milliseconds duration);

  // Units we believe are left in the current window (for tests and diagnostics).
  int available();
  int in_flight();
  int max_parallel() const { return options_.max_parallel; }
  stats snapshot();
  std::chrono::milliseconds window();

 private:
  struct spend {
    clock::time_point until;                    // when the units come back
    int units;
  };
  void expire_locked(clock::time_point now);
  int used_locked() const;
  void release_slot();

  rate_limit_options options_;
  now_fn now_;
  sleep_fn sleep_;
  std::mutex mutex_;
  std::condition_variable slot_free_;
  std::vector<spend> spent_;                    // at most a budget's worth: a few dozen
  clock::time_point blocked_until_{};
  int in_flight_ = 0;
  stats stats_;
};

}  // namespace obmen::moysklad
