#include "adapters/moysklad/gzip.hpp"

#include <doctest/doctest.h>

#include <random>
#include <stdexcept>
#include <string>

using obmen::moysklad::gunzip;
using obmen::moysklad::gzip;

namespace {

std::string gunzip_error(std::string_view data, std::size_t limit) {
  try {
    gunzip(data, limit);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("gzip: round trip, empty and large") {
  CHECK(gunzip(gzip(""), 10).empty());
  const std::string json = R"({"rows":[{"name":"Товар"}]})";
  CHECK(gunzip(gzip(json), 1000) == json);

  // Bigger than one 64 KiB inflate chunk, and not trivially compressible.
  std::mt19937 rng(42);
  std::string big;
  for (int i = 0; i < 300000; ++i) big += static_cast<char>('a' + rng() % 16);
  CHECK(gunzip(gzip(big), big.size()) == big);
}

TEST_CASE("gzip: concatenated members are one stream") {
  CHECK(gunzip(gzip("abc") + gzip("def"), 100) == "abcdef");
}

TEST_CASE("gzip: the limit is exact") {
  const std::string body(1000, 'x');
  CHECK(gunzip(gzip(body), 1000) == body);
  CHECK(gunzip_error(gzip(body), 999) == "gzip data inflates to more than 999 bytes");
  // A bomb: 50 MB of zeros compresses to ~50 KB; the limit stops it early.
  CHECK(gunzip_error(gzip(std::string(50'000'000, '\0')), 1 << 20) == "gzip data inflates to more than 1048576 bytes");
}

TEST_CASE("gzip: not gzip, truncated, corrupt") {
  CHECK(gunzip_error(R"({"rows":[]})", 100) == "not gzip data (no 1f 8b magic)");
  CHECK(gunzip_error("", 100) == "not gzip data (no 1f 8b magic)");
  const std::string z = gzip(std::string(5000, 'y') + "tail");
  CHECK(gunzip_error(z.substr(0, z.size() / 2), 100000) == "truncated gzip data");
  CHECK(gunzip_error(z.substr(0, z.size() - 4), 100000) == "truncated gzip data");  // trailer cut
  std::string bad = z;
  bad[bad.size() - 6] ^= 0x55;  // CRC32 of the trailer no longer matches
  CHECK(gunzip_error(bad, 100000) == "corrupt gzip data (incorrect data check)");
}
