#pragma once
// gzip for МойСклад response bodies (the API answers only gzip-compressed requests: API.md §3).
// Pure functions over memory; thread-safe; no I/O.
#include <cstddef>
#include <string>
#include <string_view>

namespace obmen::moysklad {

// Inflates a gzip stream (RFC 1952; several concatenated members are accepted) into at most
// `max_output` bytes. Throws std::runtime_error naming the problem: "not gzip data",
// "truncated gzip data", "corrupt gzip data (…)", or "gzip data inflates to more than N bytes".
std::string gunzip(std::string_view compressed, std::size_t max_output);

// Compresses `plain` into one gzip member (tests and fake servers use it).
std::string gzip(std::string_view plain);

}  // namespace obmen::moysklad
