#include "adapters/moysklad/rate_limiter.hpp"

#include <algorithm>
#include <thread>
#include <vector>

namespace obmen::moysklad {

namespace {
// The server's interval header is trusted only within sane bounds (a garbled 0 or a huge value
// must not stop the limiter or turn it off).
constexpr long long max_window_ms = 60'000;
}  // namespace

rate_limiter::permit& rate_limiter::permit::operator=(permit&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = o.owner_;
    o.owner_ = nullptr;
  }
  return *this;
}

void rate_limiter::permit::release() {
  if (owner_) owner_->release_slot();
  owner_ = nullptr;
}

rate_limiter::rate_limiter(rate_limit_options options, now_fn now, sleep_fn sleep)
    : options_(options), now_(std::move(now)), sleep_(std::move(sleep)) {
  options_.budget = std::max(1, options_.budget);
  options_.max_parallel = std::clamp(options_.max_parallel, 1, 5);
  if (options_.window <= std::chrono::milliseconds::zero()) options_.window = std::chrono::milliseconds(3000);
  if (!now_) now_ = [] { return clock::now(); };
  if (!sleep_) sleep_ = [](clock::duration d) { std::this_thread::sleep_for(d); };
}

void rate_limiter::expire_locked(clock::time_point now) {
  std::erase_if(spent_, [&](const spend& s) { return s.until <= now; });
}

int rate_limiter::used_locked() const {
  int used = 0;
  for (const auto& s : spent_) used += s.units;
  return used;
}

void rate_limiter::release_slot() {
  {
    std::lock_guard lock(mutex_);
    --in_flight_;
  }
  slot_free_.notify_one();
}

rate_limiter::permit rate_limiter::acquire(int units) {
  units = std::clamp(units, 0, options_.budget);
  {
    std::unique_lock lock(mutex_);
    if (in_flight_ >= options_.max_parallel) {
      ++stats_.slot_waits;
      slot_free_.wait(lock, [&] { return in_flight_ < options_.max_parallel; });
    }
    ++in_flight_;
  }
  permit slot(this);  // gives the slot back if sleep_ throws
  std::optional<clock::time_point> wait_started;
  for (;;) {
    clock::duration wait{};
    {
      std::lock_guard lock(mutex_);
      const auto now = now_();
      expire_locked(now);
      if (blocked_until_ > now) {
        wait = blocked_until_ - now;
      } else {
        int excess = used_locked() + units - options_.budget;
        if (excess <= 0) {
          spent_.push_back({now + options_.window + options_.margin, units});
          if (wait_started) {
            ++stats_.waits;
            stats_.waited += std::chrono::duration_cast<std::chrono::milliseconds>(now - *wait_started);
          }
          return slot;
        }
        // Wait until enough spends have come back, earliest first.
        std::vector<spend> by_return = spent_;
        std::sort(by_return.begin(), by_return.end(), [](const spend& a, const spend& b) { return a.until < b.until; });
        for (const auto& s : by_return) {
          excess -= s.units;
          if (excess <= 0) {
            wait = s.until - now;
            break;
          }
        }
      }
      if (!wait_started) wait_started = now;
    }
    sleep_(wait);
  }
}

void rate_limiter::observe(const rate_limit_headers& h) {
  std::lock_guard lock(mutex_);
  const auto now = now_();
  if (h.interval_ms && *h.interval_ms > 0 && *h.interval_ms <= max_window_ms)
    options_.window = std::chrono::milliseconds(*h.interval_ms);
  expire_locked(now);
  if (!h.remaining) return;
  // Remaining is in the server's units of X-RateLimit-Limit; when that differs from our budget
  // (the server may count requests, not units), scale it to ours.
  long long server_left = *h.remaining;
  if (h.limit && *h.limit > 0 && *h.limit != options_.budget) server_left = server_left * options_.budget / *h.limit;
  server_left = std::clamp<long long>(server_left, 0, options_.budget);
  const int ours = std::max(0, options_.budget - used_locked());
  if (server_left >= ours) return;
  // The units the server counts and we do not come back when the server says its restriction
  // resets, else after one window.
  long long back_ms = 0;
  for (const auto& v : {h.reset_ms, h.retry_after_ms})
    if (v && *v > 0) back_ms = std::max(back_ms, std::min(*v, max_window_ms));
  const auto back = back_ms > 0 ? std::chrono::milliseconds(back_ms) : options_.window;
  spent_.push_back({now + back, ours - static_cast<int>(server_left)});
}

void rate_limiter::penalize(std::chrono::milliseconds duration) {
  std::lock_guard lock(mutex_);
  blocked_until_ = std::max(blocked_until_, now_() + duration);
}

int rate_limiter::available() {
  std::lock_guard lock(mutex_);
  expire_locked(now_());
  return std::max(0, options_.budget - used_locked());
}

int rate_limiter::in_flight() {
  std::lock_guard lock(mutex_);
  return in_flight_;
}

rate_limiter::stats rate_limiter::snapshot() {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::chrono::milliseconds rate_limiter::window() {
  std::lock_guard lock(mutex_);
  return options_.window;
}

}  // namespace obmen::moysklad
