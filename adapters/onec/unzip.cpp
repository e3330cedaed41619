#include "adapters/onec/unzip.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <memory>
#include <set>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>

#include "adapters/onec/filename.hpp"
#include "commerceml/encoding.hpp"

namespace obmen::onec {
namespace {

// An entry must inflate past this before the ratio limit applies: small, well-compressible
// files (XML, a blank image) legitimately reach ratios in the hundreds.
constexpr std::uint64_t ratio_grace_bytes = 1ull << 20;
constexpr std::size_t read_chunk = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Entry-name decoding.

// Letters of the Russian alphabet (А..я, Ё, ё) in UTF-8 text. Counting all of U+0400..U+04FF
// would credit CP866's Є є Ї ї Ў ў (bytes F2..F7, where windows-1251 has lowercase т..ч) to the
// wrong code page.
std::size_t russian_letters(std::string_view utf8) {
  std::size_t n = 0;
  for (std::size_t i = 0; i + 1 < utf8.size(); ++i) {
    const auto lead = static_cast<unsigned char>(utf8[i]);
    const auto next = static_cast<unsigned char>(utf8[i + 1]);
    if ((lead == 0xD0 && (next == 0x81 || (next >= 0x90 && next <= 0xBF))) ||
        (lead == 0xD1 && (next == 0x91 || (next >= 0x80 && next <= 0x8F)))) {
      ++n;
      ++i;
    }
  }
  return n;
}

// A name that is neither flagged nor valid UTF-8 was written in a Windows code page. 1C writes
// the OEM code page (CP866), so that is the default. A windows-1251 name read as CP866 turns its
// uppercase letters (C0..DF) into box-drawing characters and т..я (F2..FF) into symbols, so when
// windows-1251 gives strictly more Russian letters than CP866 it is taken instead. Ties (e.g. a
// name of lowercase а..п only, which is valid Cyrillic either way) stay CP866.
std::string decode_legacy_name(std::string_view raw) {
  std::string oem = commerceml::cp866_to_utf8(raw);
  std::string ansi = commerceml::cp1251_to_utf8(raw);
  return russian_letters(ansi) > russian_letters(oem) ? ansi : oem;
}

// ---------------------------------------------------------------------------------------------

// For quoting an entry name that may not have passed check_filename: control characters, and
// every non-ASCII byte of a name that is not valid UTF-8, become \xNN.
std::string printable(std::string_view s) {
  const bool utf8 = commerceml::is_valid_utf8(s);
  std::string out;
  for (char c : s) {
    auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7F || (b >= 0x80 && !utf8)) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[b >> 4];
      out += hex[b & 0xF];
    } else {
      out += c;
    }
  }
  return out;
}

class unique_fd {
 public:
  explicit unique_fd(int fd = -1) : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    reset(std::exchange(other.fd_, -1));
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

struct archive_closer {
  void operator()(zip_t* za) const { zip_discard(za); }
};
struct file_closer {
  void operator()(zip_file_t* zf) const { zip_fclose(zf); }
};

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// "import_files/ab/x.jpg" → {"import_files/ab", "x.jpg"}
std::pair<std::string, std::string> split_parent(const std::string& rel) {
  auto slash = rel.rfind('/');
  if (slash == std::string::npos) return {{}, rel};
  return {rel.substr(0, slash), rel.substr(slash + 1)};
}

std::atomic<std::uint64_t> temp_counter{0};

class extraction {
 public:
  extraction(const std::filesystem::path& archive, const std::filesystem::path& dest,
             const config::zip_limits& limits, const unzip_progress& on_entry)
      : archive_(archive), dest_(dest), limits_(limits), on_entry_(on_entry),
        label_("archive '" + archive.filename().string() + "'") {}

  unzip_result run();
  void roll_back() noexcept;

 private:
  [[noreturn]] void fail(const std::string& what) const { throw unzip_error(label_ + ": " + what); }
  [[noreturn]] void fail(const std::string& entry, const std::string& what) const {
    throw unzip_error(label_ + ": entry '" + printable(entry) + "': " + what);
  }
  std::string libzip_error() const { return zip_error_strerror(zip_get_error(za_.get())); }

  std::string entry_name(zip_uint64_t index);
  void check_entry_type(zip_uint64_t index, const std::string& name);
  unique_fd open_dir(const std::string& rel, const std::string& entry);
  int open_existing_dir(const std::string& rel) const noexcept;
  void make_directory(const std::string& rel, const std::string& entry) { open_dir(rel, entry); }
  void extract_file(zip_uint64_t index, const std::string& rel);
  void copy_data(zip_file_t* zf, int out, const std::string& rel, std::uint64_t compressed);
  void sync_directories();

  const std::filesystem::path& archive_;
  const std::filesystem::path& dest_;
  const config::zip_limits& limits_;
  const unzip_progress& on_entry_;
  std::string label_;

  std::unique_ptr<zip_t, archive_closer> za_;
  unique_fd dest_fd_;
  unzip_result result_;
  std::vector<std::string> created_dirs_;    // relative, in creation order
  std::vector<std::string> created_files_;   // relative, final names
  std::string pending_temp_;                 // relative path of the temp being written, if any
  std::set<std::string> touched_dirs_;       // relative; fsynced at the end ("" = dest)
};

unzip_result extraction::run() {
  std::error_code ec;
  std::filesystem::create_directories(dest_, ec);
  if (ec) fail("cannot create '" + dest_.string() + "': " + ec.message());
  // dest itself is the caller's (configured) spool directory and may be reached through a
  // symlink; everything below it is opened relative to this descriptor without following links.
  dest_fd_.reset(::open(dest_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dest_fd_) fail("cannot open '" + dest_.string() + "': " + errno_text(errno));

  int zip_err = 0;
  za_.reset(zip_open(archive_.c_str(), ZIP_RDONLY, &zip_err));
  if (!za_) {
    zip_error_t error;
    zip_error_init_with_code(&error, zip_err);
    std::string message = zip_error_strerror(&error);
    zip_error_fini(&error);
    fail("cannot open: " + message);
  }

  zip_int64_t entries = zip_get_num_entries(za_.get(), 0);
  if (entries < 0) fail("cannot read the directory: " + libzip_error());
  const auto count = static_cast<std::uint64_t>(entries);
  if (count > limits_.max_entries)
    fail(std::to_string(count) + " entries, more than max_entries = " +
         std::to_string(limits_.max_entries));

  std::unordered_set<std::string> seen;
  for (zip_uint64_t i = 0; i < count; ++i) {
    std::string name = entry_name(i);
    check_entry_type(i, name);

    const bool is_dir = !name.empty() && name.back() == '/';
    const std::string path = is_dir ? name.substr(0, name.size() - 1) : name;
    name_check check = check_filename(path);
    if (!check.ok()) fail(name, check.error);
    if (!is_dir && !seen.insert(check.relative).second) fail(name, "appears twice in the archive");

    if (on_entry_) on_entry_(name, static_cast<std::size_t>(i), static_cast<std::size_t>(count));
    if (is_dir)
      make_directory(check.relative, name);
    else
      extract_file(i, check.relative);
  }
  sync_directories();
  return std::move(result_);
}

std::string extraction::entry_name(zip_uint64_t index) {
  const char* raw_ptr = zip_get_name(za_.get(), index, ZIP_FL_ENC_RAW);
  if (!raw_ptr) fail("entry #" + std::to_string(index) + ": cannot read its name: " + libzip_error());
  std::string raw = raw_ptr;
  bool ascii = true;
  for (char c : raw) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) return raw;
  // libzip exposes general-purpose bit 11 only through its name conversions: ENC_STRICT returns
  // the raw bytes only when the entry is flagged UTF-8 (libzip verified them when opening),
  // ENC_GUESS only when they are valid UTF-8; otherwise both convert from CP437 and differ.
  for (zip_flags_t mode : {ZIP_FL_ENC_STRICT, ZIP_FL_ENC_GUESS}) {
    const char* converted = zip_get_name(za_.get(), index, mode);
    if (!converted)
      fail("entry #" + std::to_string(index) + ": cannot read its name: " + libzip_error());
    if (raw == converted) return raw;
  }
  return decode_legacy_name(raw);
}

void extraction::check_entry_type(zip_uint64_t index, const std::string& name) {
  zip_uint8_t opsys = 0;
  zip_uint32_t attributes = 0;
  if (zip_file_get_external_attributes(za_.get(), index, 0, &opsys, &attributes) != 0)
    fail(name, "cannot read its attributes: " + libzip_error());
  if (opsys == ZIP_OPSYS_UNIX) {
    const auto type = (attributes >> 16) & S_IFMT;
    if (type == S_IFLNK) fail(name, "symbolic links are not allowed");
    if (type != 0 && type != S_IFREG && type != S_IFDIR)
      fail(name, "only regular files and directories are allowed");
    if (type == S_IFDIR && (name.empty() || name.back() != '/'))
      fail(name, "directory entry without a trailing '/'");
  }
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(za_.get(), index, 0, &st) != 0) fail(name, "cannot stat: " + libzip_error());
  if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
    fail(name, "encrypted entries are not supported");
}

// Opens (creating when missing) the directory `rel` below dest, one component at a time with
// O_NOFOLLOW, so a symlink planted anywhere in the tree is never traversed.
unique_fd extraction::open_dir(const std::string& rel, const std::string& entry) {
  unique_fd dir(::openat(dest_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) fail(entry, "cannot open the destination: " + errno_text(errno));
  std::string walked;
  std::size_t start = 0;
  while (start < rel.size()) {
    auto end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    const std::string component = rel.substr(start, end - start);
    const std::string parent = walked;
    walked += (walked.empty() ? "" : "/") + component;
    constexpr int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int fd = ::openat(dir.get(), component.c_str(), flags);
    if (fd < 0 && errno == ENOENT) {
      if (::mkdirat(dir.get(), component.c_str(), 0755) == 0) {
        created_dirs_.push_back(walked);
        touched_dirs_.insert(parent);
      } else if (errno != EEXIST) {
        fail(entry, "cannot create directory '" + walked + "': " + errno_text(errno));
      }
      fd = ::openat(dir.get(), component.c_str(), flags);
    }
    if (fd < 0) {
      const int err = errno;
      struct stat sb {};
      if (::fstatat(dir.get(), component.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
        fail(entry, "'" + walked + "' in the destination is a symbolic link");
      if (err == ENOTDIR) fail(entry, "'" + walked + "' in the destination is not a directory");
      fail(entry, "cannot open directory '" + walked + "': " + errno_text(err));
    }
    dir.reset(fd);
    start = end + 1;
  }
  return dir;
}

// The same walk without creating anything and without throwing; -1 when it fails.
int extraction::open_existing_dir(const std::string& rel) const noexcept {
  unique_fd dir(::openat(dest_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::size_t start = 0;
  while (dir && start < rel.size()) {
    auto end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    const std::string component = rel.substr(start, end - start);
    dir.reset(::openat(dir.get(), component.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    start = end + 1;
  }
  return dir.release();
}

void extraction::extract_file(zip_uint64_t index, const std::string& rel) {
  const auto split = split_parent(rel);
  const std::string& parent = split.first;
  const std::string& leaf = split.second;
  unique_fd dir = open_dir(parent, rel);

  // Refuse early (before inflating anything) and again right before the rename.
  auto check_target = [&] {
    struct stat sb {};
    if (::fstatat(dir.get(), leaf.c_str(), &sb, AT_SYMLINK_NOFOLLOW) != 0) return;
    if (S_ISLNK(sb.st_mode)) fail(rel, "refusing to replace the symbolic link '" + rel + "'");
    if (S_ISDIR(sb.st_mode)) fail(rel, "'" + rel + "' in the destination is a directory");
    if (!S_ISREG(sb.st_mode)) fail(rel, "'" + rel + "' in the destination is not a regular file");
  };
  check_target();

  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(za_.get(), index, 0, &st) != 0) fail(rel, "cannot stat: " + libzip_error());
  // The compressed size bounds what libzip reads for this entry, so it is a real quantity; the
  // uncompressed size is only a claim and is not used.
  const std::uint64_t compressed = (st.valid & ZIP_STAT_COMP_SIZE) ? st.comp_size : 0;

  std::unique_ptr<zip_file_t, file_closer> zf(zip_fopen_index(za_.get(), index, 0));
  if (!zf) fail(rel, "cannot open: " + libzip_error());

  const std::string temp = ".obmen-unzip." + std::to_string(::getpid()) + "." +
                           std::to_string(temp_counter.fetch_add(1));
  unique_fd out(::openat(dir.get(), temp.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out) fail(rel, "cannot create a temporary file: " + errno_text(errno));
  pending_temp_ = parent.empty() ? temp : parent + "/" + temp;

  copy_data(zf.get(), out.get(), rel, compressed);
  zf.reset();
  if (::fsync(out.get()) != 0) fail(rel, "fsync failed: " + errno_text(errno));
  if (::close(out.release()) != 0) fail(rel, "close failed: " + errno_text(errno));

  check_target();
  if (::renameat(dir.get(), temp.c_str(), dir.get(), leaf.c_str()) != 0)
    fail(rel, "cannot rename into place: " + errno_text(errno));
  pending_temp_.clear();
  created_files_.push_back(rel);
  touched_dirs_.insert(parent);
  result_.files.push_back(rel);
}

void extraction::copy_data(zip_file_t* zf, int out, const std::string& rel, std::uint64_t compressed) {
  std::vector<char> buffer(read_chunk);
  std::uint64_t inflated = 0;
  for (;;) {
    const zip_int64_t n = zip_fread(zf, buffer.data(), buffer.size());
    if (n < 0) fail(rel, "cannot read: " + std::string(zip_error_strerror(zip_file_get_error(zf))));
    if (n == 0) break;
    const auto got = static_cast<std::uint64_t>(n);
    inflated += got;
    result_.total_bytes += got;
    if (inflated > limits_.max_entry_bytes)
      fail(rel, "inflates to more than max_entry_bytes = " + std::to_string(limits_.max_entry_bytes));
    if (result_.total_bytes > limits_.max_total_bytes)
      fail(rel, "the archive inflates to more than max_total_bytes = " +
                    std::to_string(limits_.max_total_bytes));
    if (inflated > ratio_grace_bytes) {
      // inflated / compressed > max_ratio, without the overflow of max_ratio * compressed.
      const std::uint64_t denominator = compressed == 0 ? 1 : compressed;
      const std::uint64_t quotient = inflated / denominator;
      if (quotient > limits_.max_ratio || (quotient == limits_.max_ratio && inflated % denominator != 0))
        fail(rel, "compression ratio exceeds max_ratio = " + std::to_string(limits_.max_ratio));
    }
    const char* p = buffer.data();
    std::size_t left = static_cast<std::size_t>(n);
    while (left > 0) {
      const ssize_t w = ::write(out, p, left);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail(rel, "cannot write: " + errno_text(errno));
      }
      p += w;
      left -= static_cast<std::size_t>(w);
    }
  }
}

void extraction::sync_directories() {
  for (const auto& rel : touched_dirs_) {
    unique_fd dir(open_existing_dir(rel));
    if (!dir) fail("cannot open '" + rel + "' to fsync it: " + errno_text(errno));
    if (::fsync(dir.get()) != 0) fail("fsync of '" + rel + "' failed: " + errno_text(errno));
  }
}

void extraction::roll_back() noexcept {
  if (!dest_fd_) return;
  auto remove = [this](const std::string& rel, int flags) {
    const auto split = split_parent(rel);
    unique_fd dir(open_existing_dir(split.first));
    if (dir) ::unlinkat(dir.get(), split.second.c_str(), flags);
  };
  if (!pending_temp_.empty()) remove(pending_temp_, 0);
  for (auto it = created_files_.rbegin(); it != created_files_.rend(); ++it) remove(*it, 0);
  // Children were created after their parents; a directory that still holds files not made by
  // this call is not empty and stays.
  for (auto it = created_dirs_.rbegin(); it != created_dirs_.rend(); ++it) remove(*it, AT_REMOVEDIR);
}

}  // namespace

bool looks_like_zip(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  char magic[4] = {};
  if (!in.read(magic, sizeof magic)) return false;
  const std::string_view m(magic, sizeof magic);
  return m == std::string_view("PK\x03\x04", 4) || m == std::string_view("PK\x05\x06", 4);
}

unzip_result unzip_archive(const std::filesystem::path& archive, const std::filesystem::path& dest,
                           const config::zip_limits& limits, const unzip_progress& on_entry) {
  extraction job(archive, dest, limits, on_entry);
  try {
    return job.run();
  } catch (...) {
    job.roll_back();
    throw;
  }
}

}  // namespace obmen::onec
