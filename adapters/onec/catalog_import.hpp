#pragma once
// Imports one CommerceML catalog file (import*, offers*, prices*, rests*) into the portal:
// reader → mapping → portal store, in ONE transaction, so the portal shows either the whole
// file or nothing of it. The same path serves the 1C exchange endpoint and `obmenctl import`.
// Blocking: runs on a worker thread with that thread's connection.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "commerceml/reader.hpp"
#include "mapping/mapping.hpp"
#include "store/portal_store.hpp"

namespace obmen::onec {

// A file that cannot be imported as asked: not a catalog file, an unmapped value under the
// `fail` policy, …  what() is one sentence for 1C's log and the CLI, naming the file.
class import_error : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct import_options {
  std::string source;                               // portal rows' `source`
  std::optional<std::int64_t> exchange_session_id;  // for `deactivate`; nullopt from the CLI
  const mapping::rules* rules = nullptr;            // nullptr = defaults (import everything as-is)
  std::filesystem::path files_root;                 // where Картинка paths are resolved (the spool dir)
  // Most products / offers per store batch; the reader also cuts a batch at 8 MiB of XML. Three
  // batches are in flight (read, prepared, written), so this bounds memory. Measured on 100 000
  // products: 1 000, 2 500, 5 000 and 10 000 import equally fast; peak RSS 51, 117, 170, 259 MB.
  std::size_t batch_size = 2500;
  // Called from the importing thread now and then with a short state ("products: 12000").
  std::function<void(const std::string&)> progress;
  // Runs inside the import's transaction just before commit (records the result with the data).
  std::function<void(pqxx::work&, const store::import_counts&)> before_commit;
  // The reader's first pass over the file, made ahead of time (see prefetch); nullopt: made here.
  std::optional<commerceml::document_info> checked;
  // The file to be imported next, if any: a thread checks that one (the first pass,
  // commerceml::check_catalog_file) while this file is imported, and leaves the result in
  // *prefetched — nullopt when the check failed (importing that file
  // then reports why). Pass it as `checked` when importing that file.
  std::filesystem::path prefetch;
  std::future<std::optional<commerceml::document_info>>* prefetched = nullptr;
};

// Throws commerceml::parse_error (file:line:col), import_error, or pqxx errors; on any throw
// the transaction is rolled back and the portal is unchanged.
store::import_counts import_catalog_file(pqxx::connection& db, const std::filesystem::path& file,
                                         const import_options& options);

// A run of files imported one after another (obmenctl import, resync jobs): each file's reader
// has the next file checked while it is imported (import_options::prefetch).
class import_chain {
 public:
  // Before importing a file: its check made during the previous import goes to o.checked, and
  // the check of `next` (nullptr: this is the last file) is asked for.
  void prepare(import_options& o, const std::filesystem::path* next);

 private:
  std::future<std::optional<commerceml::document_info>> next_checked_;
};

// Orders CommerceML file names the way 1C means them to be applied: import* before offers*
// before prices* and rests*, others last; stable within a kind.
std::vector<std::string> order_for_import(std::vector<std::string> names);

}  // namespace obmen::onec
