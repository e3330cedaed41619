#pragma once
// Retry policy and backoff of the queue: pure functions, no I/O, no clock.
//
// After the n-th failed attempt (n = 1, 2, …) an item waits
//   backoff(n) = r · min(cap, base · 2^(n-1)),   r uniform in [0, 1)   ("full jitter")
// so instances that failed together against a recovering upstream spread out instead of
// retrying in step. The random source is injected: tests pass a fixed one; the queue uses
// default_random() (one generator per thread).
#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace obmen::queue {

struct retry_policy {
  std::chrono::milliseconds base{1000};                // ceiling after the first failure
  std::chrono::milliseconds cap{30 * 60 * 1000};       // the ceiling never exceeds this (30 min)
  int max_attempts = 20;                               // the item is dead after this many failed attempts
};

// Every problem of the policy, each a sentence naming the field ("retry_policy.base must be
// positive, got 0 ms"); empty when the policy is usable.
std::vector<std::string> validate(const retry_policy&);

// min(cap, base · 2^(attempts-1)), exactly, without overflow; attempts < 1 counts as 1.
std::chrono::milliseconds backoff_ceiling(const retry_policy&, int attempts);

// A uniform number in [0, 1). Values outside are clamped (1 and above behave as just under 1).
using random_source = std::function<double()>;

// floor(ceiling · r) with r = random(): a delay in [0, ceiling) (0 when the ceiling is 0).
std::chrono::milliseconds backoff(const retry_policy&, int attempts, const random_source& random);

// A random_source backed by a per-thread std::mt19937_64 seeded from std::random_device;
// safe to call from any thread.
random_source default_random();

}  // namespace obmen::queue
