#pragma once
// One fuzz target = one function over untrusted bytes. OBMEN_FUZZ_TARGET(name) defines
// obmen::fuzz::run_<name>(data, size); compiled with OBMEN_FUZZ_ENTRY_POINT (the libFuzzer
// binaries) it also defines LLVMFuzzerTestOneInput calling it, so one source serves both the
// fuzzer and fuzz_regression_test (regression_main.cpp), which lists the targets explicitly.
//
// A target catches exactly the exceptions its code documents for bad input. Anything else that
// escapes — another exception type, or a `finding` a target throws when an invariant breaks
// (a file name escaping the spool, two readers disagreeing) — is a crash to libFuzzer and a
// failure to the regression test; ASan/UBSan reports abort in the fuzz build.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace obmen::fuzz {

class finding : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

inline std::string_view bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Throws finding(what) unless `ok`.
inline void expect(bool ok, const std::string& what) {
  if (!ok) throw finding(what);
}

}  // namespace obmen::fuzz

#ifdef OBMEN_FUZZ_ENTRY_POINT
#define OBMEN_FUZZ_ENTRY(name)                                                        \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    obmen::fuzz::run_##name(data, size);                                               \
    return 0;                                                                          \
  }
#else
#define OBMEN_FUZZ_ENTRY(name)
#endif

#define OBMEN_FUZZ_TARGET(name)                                         \
  namespace obmen::fuzz {                                               \
  void run_##name(const std::uint8_t* data, std::size_t size);          \
  }                                                                     \
  OBMEN_FUZZ_ENTRY(name)                                                \
  void obmen::fuzz::run_##name(const std::uint8_t* data, std::size_t size)
