#include "adapters/moysklad/gzip.hpp"

#include <zlib.h>

#include <limits>
#include <stdexcept>

namespace obmen::moysklad {

namespace {

constexpr int gzip_window_bits = 16 + MAX_WBITS;  // 16+: gzip header and trailer, not raw zlib
constexpr std::size_t chunk = 64 * 1024;

// zlib counts in uInt; feed at most this much at once so huge inputs do not overflow it.
constexpr std::size_t max_feed = std::numeric_limits<uInt>::max() / 2;

struct inflater {
  z_stream z{};
  inflater() {
    if (inflateInit2(&z, gzip_window_bits) != Z_OK) throw std::runtime_error("gunzip: zlib inflateInit2 failed");
  }
  ~inflater() { inflateEnd(&z); }
  inflater(const inflater&) = delete;
  inflater& operator=(const inflater&) = delete;
};

}  // namespace

std::string gunzip(std::string_view in, std::size_t max_output) {
  // A gzip member starts with 1f 8b; checking it here gives a clearer message than zlib's
  // "incorrect header check" (an HTML error page or plain JSON sent as gzip).
  if (in.size() < 2 || static_cast<unsigned char>(in[0]) != 0x1f || static_cast<unsigned char>(in[1]) != 0x8b)
    throw std::runtime_error("not gzip data (no 1f 8b magic)");
  inflater inf;
  std::string out;
  const auto* next = reinterpret_cast<const Bytef*>(in.data());
  std::size_t left = in.size();
  char buf[chunk];
  for (;;) {
    if (inf.z.avail_in == 0 && left > 0) {
      const std::size_t feed = left < max_feed ? left : max_feed;
      inf.z.next_in = const_cast<Bytef*>(next);
      inf.z.avail_in = static_cast<uInt>(feed);
      next += feed;
      left -= feed;
    }
    inf.z.next_out = reinterpret_cast<Bytef*>(buf);
    inf.z.avail_out = static_cast<uInt>(chunk);
    const int rc = inflate(&inf.z, Z_NO_FLUSH);
    const std::size_t produced = chunk - inf.z.avail_out;
    if (produced > max_output - out.size())
      throw std::runtime_error("gzip data inflates to more than " + std::to_string(max_output) + " bytes");
    out.append(buf, produced);
    if (rc == Z_STREAM_END) {
      if (inf.z.avail_in == 0 && left == 0) return out;
      // Another member follows (concatenated gzip is valid gzip).
      if (inflateReset(&inf.z) != Z_OK) throw std::runtime_error("gunzip: zlib inflateReset failed");
      continue;
    }
    if (rc == Z_BUF_ERROR) {
      // No progress possible: input is exhausted before the stream ended.
      if (inf.z.avail_in == 0 && left == 0) throw std::runtime_error("truncated gzip data");
      continue;
    }
    if (rc != Z_OK)
      throw std::runtime_error(std::string("corrupt gzip data (") + (inf.z.msg ? inf.z.msg : "zlib error") + ")");
    if (produced == 0 && inf.z.avail_in == 0 && left == 0) throw std::runtime_error("truncated gzip data");
  }
}

std::string gzip(std::string_view plain) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, gzip_window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("gzip: zlib deflateInit2 failed");
  std::string out;
  out.resize(deflateBound(&z, static_cast<uLong>(plain.size())) + 32);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(plain.data()));
  z.avail_in = static_cast<uInt>(plain.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("gzip: deflate did not finish");
  return out;
}

}  // namespace obmen::moysklad
