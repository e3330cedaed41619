// fuzz_regression_test: every fuzz target over its committed inputs, without libFuzzer.
//   fuzz_regression_test <fuzz dir> [target…]
// Replays <fuzz dir>/corpus/<target>/* (the seeds) and <fuzz dir>/regressions/<target>/* (every
// crasher ever found, minimised) through the target's function. An exception escaping a target
// is a failure (the targets catch what their code documents); a crash ends the test, which CTest
// reports. A target with no committed input at all fails too: it would test nothing.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include <cxxabi.h>

namespace obmen::fuzz {
void run_catalog(const std::uint8_t*, std::size_t);
void run_documents(const std::uint8_t*, std::size_t);
void run_exchange(const std::uint8_t*, std::size_t);
void run_unzip(const std::uint8_t*, std::size_t);
void run_yaml(const std::uint8_t*, std::size_t);
void run_moysklad(const std::uint8_t*, std::size_t);
}  // namespace obmen::fuzz

namespace fs = std::filesystem;

namespace {

struct target {
  const char* name;
  void (*run)(const std::uint8_t*, std::size_t);
};

// The same list as OBMEN_FUZZ_TARGETS in fuzz/CMakeLists.txt.
constexpr target targets[] = {
    {"catalog", obmen::fuzz::run_catalog}, {"documents", obmen::fuzz::run_documents},
    {"exchange", obmen::fuzz::run_exchange}, {"unzip", obmen::fuzz::run_unzip},
    {"yaml", obmen::fuzz::run_yaml},       {"moysklad", obmen::fuzz::run_moysklad},
};

std::vector<fs::path> inputs(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string current_exception_type() {
  const std::type_info* t = abi::__cxa_current_exception_type();
  if (!t) return "unknown";
  int status = 0;
  char* name = abi::__cxa_demangle(t->name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name ? name : t->name();
  std::free(name);
  return out;
}

// Runs one input; prints and returns false when something escaped.
bool replay(const target& t, const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    t.run(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAIL %s %s: %s: %s\n", t.name, file.c_str(), current_exception_type().c_str(), e.what());
  } catch (...) {
    std::fprintf(stderr, "FAIL %s %s: %s\n", t.name, file.c_str(), current_exception_type().c_str());
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: fuzz_regression_test <fuzz dir> [target…]\n");
    return 2;
  }
  const fs::path root = argv[1];
  const std::vector<std::string_view> only(argv + 2, argv + argc);
  int failures = 0;
  for (const auto& t : targets) {
    if (!only.empty() && std::find(only.begin(), only.end(), t.name) == only.end()) continue;
    std::size_t seeds = 0, regressions = 0;
    for (const auto& f : inputs(root / "corpus" / t.name)) failures += !replay(t, f), ++seeds;
    for (const auto& f : inputs(root / "regressions" / t.name)) failures += !replay(t, f), ++regressions;
    if (seeds + regressions == 0) {
      std::fprintf(stderr, "FAIL %s: no input in %s/{corpus,regressions}/%s\n", t.name, root.c_str(), t.name);
      ++failures;
    }
    std::printf("%-10s %4zu seeds, %4zu regressions\n", t.name, seeds, regressions);
  }
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
