#pragma once
// Plain HTTP request/response values passed between the listener (daemon/http_server, the
// only code that includes Beast) and the routes adapters provide. Keeping Beast out of the
// adapters keeps compile times sane and lets routes be tested without sockets.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/net.hpp"

namespace obmen::http {

struct request {
  std::string method;                  // "GET", "POST", …
  std::string target;                  // as received: path + "?" + query
  std::string path;                    // percent-decoded path
  std::multimap<std::string, std::string> query;  // percent-decoded parameters
  std::map<std::string, std::string> headers;     // lower-case names
  std::string remote;                  // "ip:port"
  std::string body;                    // empty for uploads streamed to disk

  std::string param(const std::string& name) const;  // first value or ""
  bool has_param(const std::string& name) const;
  std::string header(const std::string& lower_name) const;
};

struct response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;                  // close the connection after sending
};

// Where an upload's body goes: appended to `file` starting at `offset` (anything after it is
// cut first), at most `limit` bytes; more → the upload fails with `too_large_answer`.
struct upload_target {
  std::filesystem::path file;
  std::uint64_t offset = 0;
  std::uint64_t limit = 0;
  std::string too_large_answer;
  std::function<void()> release;       // called once when the upload is over, whatever happened
};

// What a route decides after seeing an upload's headers: stream the body to a target, or
// answer at once (the body is then not read and the connection is closed).
struct upload_decision {
  std::optional<upload_target> target;
  response answer;
};

class route {
 public:
  virtual ~route() = default;
  // True when the request (headers only) carries a body that must go to disk.
  virtual bool is_upload(const request&) const { return false; }
  virtual net::awaitable<upload_decision> prepare_upload(request) { co_return upload_decision{}; }
  // After the body went to disk: `error` empty on success, else why it failed; `bytes` written.
  virtual net::awaitable<response> finish_upload(request, upload_target, std::string /*error*/, std::uint64_t /*bytes*/) {
    co_return response{};
  }
  virtual net::awaitable<response> handle(request) = 0;
};

std::string percent_decode(std::string_view, bool plus_as_space);

// %XX-encodes every byte but the unreserved ones (A-Z a-z 0-9 - . _ ~) and those in `also_plain`;
// keep_escapes leaves an existing valid %XX as it is (so an already encoded URL is not encoded
// twice). A query value: percent_encode(v). A whole URL path+query: percent_encode(u,
// "!$&'()*+,;=:@/?", true).
std::string percent_encode(std::string_view, std::string_view also_plain = {}, bool keep_escapes = false);

}  // namespace obmen::http
