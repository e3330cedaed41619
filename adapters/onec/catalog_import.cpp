#include "adapters/onec/catalog_import.hpp"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include <malloc.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "adapters/onec/filename.hpp"
#include "commerceml/reader.hpp"

namespace obmen::onec {

namespace {

namespace fs = std::filesystem;

// Files are hashed in pieces: an image may be large and memory stays flat.
std::string sha256_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::array<char, 64 * 1024> buf{};
  while (in) {
    in.read(buf.data(), buf.size());
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  return hex;
}

std::string mime_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::array<unsigned char, 12> h{};
  in.read(reinterpret_cast<char*>(h.data()), h.size());
  const auto n = in.gcount();
  if (n >= 3 && h[0] == 0xFF && h[1] == 0xD8 && h[2] == 0xFF) return "image/jpeg";
  if (n >= 8 && h[0] == 0x89 && h[1] == 'P' && h[2] == 'N' && h[3] == 'G') return "image/png";
  if (n >= 6 && h[0] == 'G' && h[1] == 'I' && h[2] == 'F') return "image/gif";
  if (n >= 12 && h[0] == 'R' && h[1] == 'I' && h[2] == 'F' && h[3] == 'F' && h[8] == 'W' && h[9] == 'E' && h[10] == 'B' && h[11] == 'P')
    return "image/webp";
  if (n >= 2 && h[0] == 'B' && h[1] == 'M') return "image/bmp";
  return "application/octet-stream";
}

enum class kind_rank { import = 0, offers = 1, prices = 2, rests = 3, other = 4 };

kind_rank rank_of(const std::string& name) {
  std::string base = fs::path(name).filename().string();
  std::transform(base.begin(), base.end(), base.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (base.rfind("import", 0) == 0) return kind_rank::import;
  if (base.rfind("offers", 0) == 0) return kind_rank::offers;
  if (base.rfind("prices", 0) == 0) return kind_rank::prices;
  if (base.rfind("rests", 0) == 0) return kind_rank::rests;
  return kind_rank::other;
}

// Names of the price types, warehouses and properties earlier files declared, per source.
// Bitrix-module packages declare them in one file and reference them by id from the next
// (prices*, rests*, a products file after a properties file). A declaration the mapping ignores
// leaves no portal row, so without its name a later reference would be decided by id alone:
// a property ignored by name came back keyed by its GUID, a price type ignored by name failed
// the prices file under `unmapped: fail`. Only names are kept; decisions are taken again with the
// rules in force. In memory, process-wide: obmend and obmenctl import a whole package in one
// process, in order. Bounded: cleared when full (the next package declares again).
enum class declared_kind { price_type, warehouse, property };

class declared_names {
 public:
  static declared_names& instance() {
    static declared_names names;
    return names;
  }

  void remember(const std::string& source, declared_kind kind, const std::string& id, const std::string& name) {
    std::lock_guard lock(mutex_);
    if (names_.size() >= max_entries) names_.clear();
    names_[{source, kind, id}] = name;
  }

  std::optional<std::string> find(const std::string& source, declared_kind kind, const std::string& id) const {
    std::lock_guard lock(mutex_);
    const auto it = names_.find({source, kind, id});
    if (it == names_.end()) return std::nullopt;
    return it->second;
  }

 private:
  static constexpr std::size_t max_entries = 100000;
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, declared_kind, std::string>, std::string> names_;
};

// The portal writes of one import run on a thread of their own, in order, one batch behind the
// mapping: while PostgreSQL merges batch N, the importing thread maps batch N+1 and the reader
// parses the next. Once a task is queued, the writer (and its transaction) belong to this
// thread until finish() has joined it. At most one task waits, so memory stays bounded.
class store_thread {
 public:
  using task = std::function<void(store::catalog_writer&)>;

  explicit store_thread(store::catalog_writer& writer) : writer_(writer), thread_([this] {
    pthread_setname_np(pthread_self(), "obmen-store");  // in top -H, perf, gdb
    loop();
  }) {}
  // Without finish() (the import failed elsewhere): a waiting task is dropped, the running one
  // ends, the thread is joined; the caller rolls the transaction back.
  ~store_thread() {
    {
      std::lock_guard lock(mutex_);
      pending_.reset();
      done_ = true;
    }
    ready_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  store_thread(const store_thread&) = delete;
  store_thread& operator=(const store_thread&) = delete;

  // Blocks while a task is already waiting; rethrows the failure of an earlier task. The task
  // this thread ran last is destroyed here, on the calling thread: freeing a batch's rows is
  // work the database would otherwise wait for.
  void run(task t) {
    std::optional<task> spent;
    std::unique_lock lock(mutex_);
    space_.wait(lock, [&] { return error_ || !pending_; });
    if (error_) std::rethrow_exception(error_);
    pending_ = std::move(t);
    spent.swap(spent_);
    ready_.notify_one();
    lock.unlock();
  }

  // Runs what is queued, joins the thread and rethrows the first failure.
  void finish() {
    {
      std::unique_lock lock(mutex_);
      done_ = true;
    }
    ready_.notify_one();
    thread_.join();
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop() {
    for (;;) {
      task t;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return pending_ || done_; });
        if (!pending_) return;
        t = std::move(*pending_);
        pending_.reset();
      }
      space_.notify_one();
      try {
        t(writer_);
        std::lock_guard lock(mutex_);
        spent_.emplace(std::move(t));  // an older one not collected yet is freed here instead
      } catch (...) {
        std::lock_guard lock(mutex_);
        error_ = std::current_exception();
        pending_.reset();
        space_.notify_one();
        return;
      }
    }
  }

  store::catalog_writer& writer_;
  std::mutex mutex_;
  std::condition_variable ready_, space_;
  std::optional<task> pending_;
  std::optional<task> spent_;  // run, not yet destroyed (see run())
  bool done_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the members above exist
};

// Tells the writer, on the store thread, what the rows of an entity still to come are: the
// source's whole set (a full section, which finish_* deactivates against; the writer reads the
// stored hashes in one scan) or changes only (never finished in full: no carried ids recorded).
void announce(store_thread& store, std::string entity, bool changes_only) {
  store.run([entity = std::move(entity), changes_only](store::catalog_writer& w) {
    if (changes_only)
      w.expect_changes(entity);
    else
      w.expect_whole(entity);
  });
}

// The sink that turns reader output into portal rows: mapping decisions are taken here, once
// per declaration, and remembered for the values that reference them. The rows go to the
// portal through `store` (in order, on its thread); `writer` is read here only before that.
class import_sink final : public commerceml::catalog_sink {
 public:
  import_sink(store::catalog_writer& writer, store_thread& store, const import_options& options,
              const mapping::rules& rules, std::string file_name)
      : store_(store), options_(options), rules_(rules), file_(std::move(file_name)) {
    known_attributes_ = writer.known_attributes();
    for (auto& [id, code] : writer.known_price_types()) price_types_[id] = code;
    for (auto& [id, code] : writer.known_warehouses()) warehouses_[id] = code;
  }

  const commerceml::document_info& info() const { return info_; }
  std::size_t categories() const { return categories_; }
  std::size_t products() const { return products_; }
  std::size_t offers() const { return offers_; }
  std::vector<std::string>& warnings() { return warnings_; }

  void on_document(const commerceml::document_info& info) override {
    info_ = info;
    if (info.kind == commerceml::document_kind::documents)
      throw import_error("file '" + file_ + "' holds order documents, not a catalog: 1C sends those with type=sale");
    if (info.kind == commerceml::document_kind::unknown)
      throw import_error("file '" + file_ + "' has neither Классификатор, Каталог nor ПакетПредложений: nothing to import");
    // The first pass may have said so already (read_options::on_items_ahead); not when it was
    // made ahead of this import (import_options::checked). Saying it twice changes nothing.
    if (info.has_catalog) announce(store_, "products", info.catalog_changes_only.value_or(false));
    if (info.has_offers) announce(store_, "offers", info.offers_changes_only.value_or(false));
  }

  void on_categories(std::vector<model::category> items) override {
    categories_ += items.size();
    store_.run([items = std::move(items)](store::catalog_writer& w) { w.put_categories(items); });
    progress("categories", categories_);
  }

  void on_attribute_defs(std::vector<model::attribute_def> defs) override {
    std::vector<store::attribute_row> rows;
    for (auto& d : defs) {
      const auto dec = rules_.property(d.external_id, d.name);
      if (!declare(declared_kind::property, d.external_id, d.name, dec, skipped_attributes_, decided_attributes_))
        continue;
      store::attribute_row row{d.external_id, dec.target, d.value_type, d.options, d.active};
      known_attributes_[d.external_id] = row;
      rows.push_back(std::move(row));
    }
    store_.run([rows = std::move(rows)](store::catalog_writer& w) { w.put_attributes(rows); });
  }

  void on_price_types(std::vector<model::price_type> types) override {
    std::vector<store::price_type_row> rows;
    for (auto& t : types) {
      const auto dec = rules_.price_type(t.external_id, t.name);
      if (!declare(declared_kind::price_type, t.external_id, t.name, dec, skipped_price_types_, decided_price_types_))
        continue;
      price_types_[t.external_id] = dec.target;
      rows.push_back({t.external_id, dec.target, t.name, t.currency});
    }
    store_.run([rows = std::move(rows)](store::catalog_writer& w) { w.put_price_types(rows); });
  }

  void on_warehouses(std::vector<model::warehouse> items) override {
    std::vector<store::warehouse_row> rows;
    for (auto& w : items) {
      const auto dec = rules_.warehouse(w.external_id, w.name);
      if (!declare(declared_kind::warehouse, w.external_id, w.name, dec, skipped_warehouses_, decided_warehouses_))
        continue;
      warehouses_[w.external_id] = dec.target;
      rows.push_back({w.external_id, dec.target, w.name, w.active});
    }
    store_.run([rows = std::move(rows)](store::catalog_writer& w) { w.put_warehouses(rows); });
  }

  void on_products(std::vector<model::product> items) override {
    std::vector<store::product_row> rows;
    rows.reserve(items.size());
    for (auto& p : items) rows.push_back(product_row(p));
    // Images first seen in this batch are stored before the products that list them.
    // Checked, formatted and hashed here, while the store thread writes the previous batch.
    store_.run([batch = store::catalog_writer::prepare_products(std::move(rows)),
                images = std::exchange(new_images_, {})](store::catalog_writer& w) {
      for (const auto& i : images) w.put_image(i.sha256, i.file, i.mime);
      w.put_products(batch);
    });
    products_ += items.size();
    progress("products", products_);
  }

  void on_offers(std::vector<model::offer> items) override {
    std::vector<store::offer_row> rows;
    rows.reserve(items.size());
    for (auto& o : items) rows.push_back(offer_row(o));
    store_.run([batch = store::catalog_writer::prepare_offers(std::move(rows))](store::catalog_writer& w) {
      w.put_offers(batch);
    });
    offers_ += items.size();
    progress("offers", offers_);
  }

 private:
  // keep → true; skip → false (the reason is a warning); fail → the import stops.
  bool decide(const mapping::decision& d) {
    switch (d.what) {
      case mapping::decision::action::keep: return true;
      case mapping::decision::action::skip:
        if (reported_.insert(d.reason).second) warnings_.push_back(d.reason);
        return false;
      case mapping::decision::action::fail: throw import_error("file '" + file_ + "': " + d.reason);
    }
    return false;
  }

  void progress(const char* what, std::size_t n) {
    if (options_.progress) options_.progress(std::string(what) + ": " + std::to_string(n));
  }

  static declared_names& names() { return declared_names::instance(); }

  // A declaration (property, price type, warehouse) of this file: remembered by name for the
  // later files of a split package that only reference it, and decided by the mapping once.
  // False when the mapping skips it (the reason is a warning); a `fail` decision throws.
  bool declare(declared_kind kind, const std::string& id, const std::string& name, const mapping::decision& dec,
               std::set<std::string>& skipped, std::set<std::string>& decided) {
    names().remember(options_.source, kind, id, name);
    if (!decide(dec)) {
      skipped.insert(id);
      return false;
    }
    decided.insert(id);
    return true;
  }

  // A price type or warehouse an offer references by id but this file did not declare: decided
  // once per file, by the name an earlier file declared it with when known (so a rule by name
  // holds), else kept when the portal knows it, else by the id alone.
  bool keep_reference(declared_kind kind, const std::string& id, const std::map<std::string, std::string>& known,
                      std::set<std::string>& decided, std::set<std::string>& skipped) {
    if (skipped.count(id)) return false;
    if (decided.count(id)) return true;
    const auto name = names().find(options_.source, kind, id);
    if (name || !known.count(id)) {
      const auto dec = kind == declared_kind::price_type ? rules_.price_type(id, name.value_or(""))
                                                         : rules_.warehouse(id, name.value_or(""));
      if (!decide(dec)) {
        skipped.insert(id);
        return false;
      }
    }
    decided.insert(id);
    return true;
  }

  std::string attributes_json(std::vector<model::attribute_value>& values) {
    store::json_object_text out;
    for (const auto& v : values) {
      if (skipped_attributes_.count(v.attribute_id)) continue;
      const store::attribute_row* def = nullptr;
      if (auto it = known_attributes_.find(v.attribute_id); it != known_attributes_.end()) def = &it->second;
      std::string name;
      if (!decided_attributes_.count(v.attribute_id)) {
        // Not declared in this file. Declared by an earlier one: the rules decide by its name (an
        // ignored property must not come back under its id). Known to the portal only: kept.
        // Never declared: the mapping decides by id alone.
        const auto declared = names().find(options_.source, declared_kind::property, v.attribute_id);
        if (declared || !def) {
          const auto dec = rules_.property(v.attribute_id, declared.value_or(""));
          if (!decide(dec)) {
            skipped_attributes_.insert(v.attribute_id);
            continue;
          }
          if (!def) {
            store::attribute_row row;
            row.external_id = v.attribute_id;
            row.name = dec.target;
            def = &(known_attributes_[v.attribute_id] = std::move(row));
          }
        }
        decided_attributes_.insert(v.attribute_id);
      }
      name = def->name;
      std::vector<std::string> resolved;
      for (auto& raw : v.values) {
        std::string text = std::move(raw);
        if (def)
          for (const auto& opt : def->options)
            if (opt.external_id == text) {
              text = opt.value;
              break;
            }
        if (!text.empty()) resolved.push_back(std::move(text));
      }
      if (resolved.empty()) continue;
      if (resolved.size() == 1)
        out.set(std::move(name), std::move(resolved.front()));
      else
        out.set(std::move(name), std::move(resolved));
    }
    return std::move(out).text();
  }

  // Takes p's strings over.
  store::product_row product_row(model::product& p) {
    auto attributes = attributes_json(p.attributes);
    auto hashes = images(p);
    store::product_row r = store::product_row_of(std::move(p));
    r.attributes_text = std::move(attributes);
    r.images = std::move(hashes);
    return r;
  }

  // Картинка paths → content hashes. A missing or unsafe file is a warning, never a failed
  // import (one bad image must not cost the whole catalog). A product that names images none
  // of which arrived keeps what it had; a full catalog without Картинка clears the list.
  std::optional<std::vector<std::string>> images(const model::product& p) {
    if (p.images.empty()) {
      if (info_.catalog_changes_only.value_or(false)) return std::nullopt;
      return std::vector<std::string>{};
    }
    std::vector<std::string> hashes;
    for (const auto& path : p.images) {
      const auto checked = check_filename(path);
      if (!checked.ok()) {
        warn("product '" + p.external_id + "': image skipped: " + checked.error);
        continue;
      }
      const fs::path file = options_.files_root / checked.relative;
      std::error_code ec;
      if (options_.files_root.empty() || !fs::is_regular_file(file, ec)) {
        warn("product '" + p.external_id + "': image '" + path + "' was not uploaded; kept the product's current images");
        continue;
      }
      std::string hash;
      if (auto it = image_hashes_.find(checked.relative); it != image_hashes_.end()) {
        hash = it->second;
      } else {
        hash = sha256_file(file);
        new_images_.push_back({hash, file, mime_of(file)});
        image_hashes_[checked.relative] = hash;
      }
      if (std::find(hashes.begin(), hashes.end(), hash) == hashes.end()) hashes.push_back(hash);
    }
    if (hashes.empty()) return std::nullopt;
    return hashes;
  }

  // Takes o's strings over.
  store::offer_row offer_row(model::offer& o) {
    store::offer_row r;
    r.header_only = o.name.empty();
    r.external_id = std::move(o.external_id);
    r.product_external_id = std::move(o.product_external_id);
    r.characteristic_id = std::move(o.characteristic_id);
    r.version = std::move(o.version);
    r.name = std::move(o.name);
    r.sku = std::move(o.sku);
    r.barcode = std::move(o.barcode);
    r.active = o.active;
    // [{"name":…,"value":…}, …] as the row's nlohmann::json would give it.
    std::string characteristics = "[";
    for (const auto& c : o.characteristics) {
      if (characteristics.size() > 1) characteristics += ',';
      characteristics += "{\"name\":";
      store::append_json_string(c.name, characteristics);
      characteristics += ",\"value\":";
      store::append_json_string(c.value, characteristics);
      characteristics += '}';
    }
    r.characteristics_text = characteristics + ']';
    if (o.prices) {
      r.prices.emplace();
      for (auto& p : *o.prices) {
        if (!keep_reference(declared_kind::price_type, p.price_type_id, price_types_, decided_price_types_,
                            skipped_price_types_))
          continue;
        r.prices->push_back({std::move(p.price_type_id), std::move(p.value), std::move(p.currency), std::move(p.unit),
                             std::move(p.coefficient)});
      }
    }
    if (o.stock) {
      r.stock.emplace();
      for (auto& s : *o.stock) {
        if (!keep_reference(declared_kind::warehouse, s.warehouse_id, warehouses_, decided_warehouses_,
                            skipped_warehouses_))
          continue;
        r.stock->push_back({std::move(s.warehouse_id), std::move(s.quantity)});
      }
    }
    r.quantity = std::move(o.quantity);
    return r;
  }

  void warn(std::string w) {
    if (warnings_.size() < 1000 && reported_.insert(w).second) warnings_.push_back(std::move(w));
  }

  struct image_file {
    std::string sha256;
    fs::path file;
    std::string mime;
  };

  store_thread& store_;
  const import_options& options_;
  const mapping::rules& rules_;
  std::string file_;
  commerceml::document_info info_;
  std::map<std::string, store::attribute_row> known_attributes_;
  std::map<std::string, std::string> price_types_, warehouses_;
  std::set<std::string> skipped_attributes_, skipped_price_types_, skipped_warehouses_;
  // Kept by a decision taken in this file (declared here, or referenced and decided once).
  std::set<std::string> decided_attributes_, decided_price_types_, decided_warehouses_;
  std::map<std::string, std::string> image_hashes_;
  std::vector<image_file> new_images_;  // hashed, not yet handed to the store
  std::set<std::string> reported_;
  std::vector<std::string> warnings_;
  std::size_t categories_ = 0, products_ = 0, offers_ = 0;
};

// The reader runs on its own thread, one file ahead of the database: while the importing thread
// merges a batch, the next one is parsed. What the reader produces goes through this queue in
// order; it holds at most `capacity` batches, so memory stays bounded whatever the file size.
// The importing thread keeps the transaction, the mapping decisions and every sink call: only
// parsing moves.
class reader_queue {
 public:
  using message = std::variant<commerceml::document_info, std::vector<model::category>,
                               std::vector<model::attribute_def>, std::vector<model::price_type>,
                               std::vector<model::warehouse>, std::vector<model::product>, std::vector<model::offer>>;
  struct cancelled {};  // thrown on the reader thread once the importing thread gave up

  explicit reader_queue(std::size_t capacity) : capacity_(capacity) {}

  // Reader thread: blocks while the queue is full.
  void push(message m) {
    std::unique_lock lock(mutex_);
    space_.wait(lock, [&] { return cancelled_ || items_.size() < capacity_; });
    if (cancelled_) throw cancelled{};
    items_.push_back(std::move(m));
    ready_.notify_one();
  }
  // Reader thread: no more messages; `error` (a parse error, say) is rethrown by pop() once the
  // messages before it were taken.
  void close(std::exception_ptr error) {
    std::lock_guard lock(mutex_);
    closed_ = true;
    error_ = std::move(error);
    ready_.notify_one();
  }
  // Importing thread: the next message, nullopt at the end.
  std::optional<message> pop() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) {
      if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
      return std::nullopt;
    }
    message m = std::move(items_.front());
    items_.pop_front();
    space_.notify_one();
    return m;
  }
  // Importing thread: stop the reader (it throws `cancelled` at its next push).
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    items_.clear();
    space_.notify_one();
  }

 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable space_, ready_;
  std::deque<message> items_;
  bool closed_ = false, cancelled_ = false;
  std::exception_ptr error_;
};

class queueing_sink final : public commerceml::catalog_sink {
 public:
  explicit queueing_sink(reader_queue& q) : q_(q) {}
  void on_document(const commerceml::document_info& i) override { q_.push(i); }
  void on_categories(std::vector<model::category> v) override { q_.push(std::move(v)); }
  void on_attribute_defs(std::vector<model::attribute_def> v) override { q_.push(std::move(v)); }
  void on_price_types(std::vector<model::price_type> v) override { q_.push(std::move(v)); }
  void on_warehouses(std::vector<model::warehouse> v) override { q_.push(std::move(v)); }
  void on_products(std::vector<model::product> v) override { q_.push(std::move(v)); }
  void on_offers(std::vector<model::offer> v) override { q_.push(std::move(v)); }

 private:
  reader_queue& q_;
};

// Reads `file` on a reader thread and delivers everything to `sink` on the calling thread, in
// the reader's order; exceptions from either side propagate to the caller, and the reader
// thread is always joined before this returns.
void read_ahead(const fs::path& file, commerceml::catalog_sink& sink, const commerceml::read_options& ropts,
                const import_options& options) {
  // The next file's first pass starts now, on a thread of its own: it takes the core this
  // file's first pass (or its writes, at the end) leave idle. Measured, re-import of a
  // 100 000-product package: started after this file was read, it left a 0.17 s gap between
  // the files.
  if (!options.prefetch.empty() && options.prefetched) {
    auto check_options = ropts;
    check_options.checked = nullptr;
    check_options.on_items_ahead = nullptr;  // that file's import asks for its own
    *options.prefetched = std::async(std::launch::async, [next = options.prefetch, check_options] {
      pthread_setname_np(pthread_self(), "obmen-check");
      try {
        return std::optional(commerceml::check_catalog_file(next, check_options));
      } catch (...) {
        return std::optional<commerceml::document_info>();
      }
    });
  }
  reader_queue queue(1);
  std::thread reader([&] {
    pthread_setname_np(pthread_self(), "obmen-reader");
    std::exception_ptr error;
    try {
      queueing_sink forward(queue);
      commerceml::read_catalog_file(file, forward, ropts);
    } catch (const reader_queue::cancelled&) {
    } catch (...) {
      error = std::current_exception();
    }
    queue.close(error);
  });
  struct join_reader {
    reader_queue& queue;
    std::thread& reader;
    ~join_reader() {
      queue.cancel();
      reader.join();
    }
  } joiner{queue, reader};
  while (auto m = queue.pop()) {
    std::visit(
        [&](auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, commerceml::document_info>) sink.on_document(v);
          else if constexpr (std::is_same_v<T, std::vector<model::category>>) sink.on_categories(std::move(v));
          else if constexpr (std::is_same_v<T, std::vector<model::attribute_def>>) sink.on_attribute_defs(std::move(v));
          else if constexpr (std::is_same_v<T, std::vector<model::price_type>>) sink.on_price_types(std::move(v));
          else if constexpr (std::is_same_v<T, std::vector<model::warehouse>>) sink.on_warehouses(std::move(v));
          else if constexpr (std::is_same_v<T, std::vector<model::product>>) sink.on_products(std::move(v));
          else sink.on_offers(std::move(v));
        },
        *m);
  }
}

}  // namespace

store::import_counts import_catalog_file(pqxx::connection& db, const fs::path& file, const import_options& options) {
  static const mapping::rules defaults;
  const mapping::rules& rules = options.rules ? *options.rules : defaults;
  const std::string name = file.filename().string();

  pqxx::work tx(db);
  // One import per source at a time: two packages of one source must not interleave their
  // merges (and deadlock); other sources proceed.
  tx.exec_params("select pg_advisory_xact_lock(hashtext('obmen.import'), hashtext($1))", options.source);
  store::catalog_writer writer(tx, options.source, options.exchange_session_id, /*bulk_load=*/true);
  store_thread store(writer);
  import_sink sink(writer, store, options, rules, name);
  commerceml::read_options ropts;
  ropts.batch_size = options.batch_size;
  if (options.checked) ropts.checked = &*options.checked;
  // The stored-hash scan of a whole file starts as soon as the first pass sees the file is one,
  // and runs while that pass reads the rest (measured, re-import of 100 000 products: it held the
  // pipeline 0.1 s at the start). On the reader thread, before on_document: the importing
  // thread has handed the store nothing yet.
  ropts.on_items_ahead = [&store](bool offers, bool changes_only) {
    announce(store, offers ? "offers" : "products", changes_only);
  };
  read_ahead(file, sink, ropts, options);
  store.finish();

  // A full section deactivates what it did not carry — but only when it carried something of
  // that kind: an offers file's Классификатор (offer properties only) or a classifier-only
  // import file must not retire the whole catalog.
  const auto& info = sink.info();
  writer.finish_categories(info.has_classifier && sink.categories() > 0 && !info.classifier_changes_only.value_or(false));
  writer.finish_products(info.has_catalog && sink.products() > 0 && !info.catalog_changes_only.value_or(false));
  writer.finish_offers(info.has_offers && sink.offers() > 0 && !info.offers_changes_only.value_or(false));
  writer.close();

  store::import_counts counts = writer.counts();
  for (auto& w : sink.warnings()) counts.warnings.push_back(std::move(w));
  if (options.before_commit) options.before_commit(tx, counts);
  tx.commit();
  // The reader, mapping and store threads each allocated a few batches in malloc arenas of
  // their own; glibc keeps freed arena memory, so without this a package's next file would add
  // its peak to this one's (measured: 158 MB for import.xml and 141 MB for offers.xml alone,
  // 225 MB for both in one process).
  malloc_trim(0);
  return counts;
}

void import_chain::prepare(import_options& o, const fs::path* next) {
  if (next_checked_.valid()) o.checked = next_checked_.get();
  if (!next) return;
  o.prefetch = *next;
  o.prefetched = &next_checked_;
}

std::vector<std::string> order_for_import(std::vector<std::string> names) {
  std::stable_sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return static_cast<int>(rank_of(a)) < static_cast<int>(rank_of(b));
  });
  return names;
}

}  // namespace obmen::onec
