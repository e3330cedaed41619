#include "commerceml/reader.hpp"

#include <cerrno>
#include <cstdio>
#include <memory>
#include <system_error>

#include "commerceml/sliced_reader.hpp"

namespace obmen::commerceml {
namespace {

class memory_source final : public detail::byte_source {
 public:
  explicit memory_source(std::string_view data) : data_(data) {}
  std::size_t read(char* out, std::size_t n) override {
    n = std::min(n, data_.size() - pos_);
    data_.copy(out, n, pos_);
    pos_ += n;
    return n;
  }
  void rewind() override { pos_ = 0; }

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

class file_source final : public detail::byte_source {
 public:
  explicit file_source(const std::filesystem::path& path) : path_(path), file_(std::fopen(path.c_str(), "rb")) {
    if (!file_) fail("cannot open");
  }
  std::size_t read(char* out, std::size_t n) override {
    const std::size_t got = std::fread(out, 1, n, file_.get());
    if (got == 0 && std::ferror(file_.get())) fail("cannot read");
    return got;
  }
  void rewind() override {
    if (std::fseek(file_.get(), 0, SEEK_SET) != 0) fail("cannot rewind");
  }

 private:
  struct closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  [[noreturn]] void fail(const char* what) const {
    throw std::filesystem::filesystem_error(what, path_, std::error_code(errno, std::generic_category()));
  }
  std::filesystem::path path_;
  std::unique_ptr<std::FILE, closer> file_;
};

}  // namespace

parse_error::parse_error(std::string file, int line, int column, std::string message)
    : std::runtime_error(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message),
      file_(std::move(file)),
      line_(line),
      column_(column),
      message_(std::move(message)) {}

void read_catalog_file(const std::filesystem::path& file, catalog_sink& sink, const read_options& options) {
  file_source source(file);
  detail::read_sliced(source, file.string(), sink, options);
}

document_info check_catalog_file(const std::filesystem::path& file, const read_options& options) {
  file_source source(file);
  return detail::check_sliced(source, file.string(), options);
}

void read_catalog_buffer(std::string_view data, std::string_view file_name, catalog_sink& sink,
                         const read_options& options) {
  memory_source source(data);
  detail::read_sliced(source, file_name, sink, options);
}

}  // namespace obmen::commerceml
