#include "queue/backoff.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace obmen::queue {

std::vector<std::string> validate(const retry_policy& p) {
  std::vector<std::string> problems;
  if (p.base.count() <= 0)
    problems.push_back("retry_policy.base must be positive, got " + std::to_string(p.base.count()) + " ms");
  if (p.cap < p.base)
    problems.push_back("retry_policy.cap must be at least base (" + std::to_string(p.base.count()) + " ms), got " +
                       std::to_string(p.cap.count()) + " ms");
  if (p.max_attempts < 1)
    problems.push_back("retry_policy.max_attempts must be at least 1, got " + std::to_string(p.max_attempts));
  return problems;
}

std::chrono::milliseconds backoff_ceiling(const retry_policy& p, int attempts) {
  if (p.base.count() <= 0) return std::chrono::milliseconds{0};
  // Doubling stops at the cap, so base · 2^k is never computed past it (no overflow however
  // many attempts an item has had).
  auto ceiling = p.base;
  for (int n = 1; n < attempts && ceiling < p.cap; ++n) {
    if (ceiling > p.cap / 2) return p.cap;
    ceiling *= 2;
  }
  return std::min(ceiling, p.cap);
}

std::chrono::milliseconds backoff(const retry_policy& p, int attempts, const random_source& random) {
  const auto ceiling = backoff_ceiling(p, attempts);
  if (ceiling.count() <= 0) return std::chrono::milliseconds{0};
  double r = random();
  if (!(r >= 0.0)) r = 0.0;                           // also NaN
  if (r >= 1.0) return ceiling - std::chrono::milliseconds{1};  // also +inf
  auto delay = static_cast<std::chrono::milliseconds::rep>(std::floor(static_cast<double>(ceiling.count()) * r));
  // r just under 1 may round up to the ceiling itself in double arithmetic: keep it below.
  if (delay >= ceiling.count()) delay = ceiling.count() - 1;
  return std::chrono::milliseconds{delay};
}

random_source default_random() {
  return [] {
    thread_local std::mt19937_64 generator{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
  };
}

}  // namespace obmen::queue
