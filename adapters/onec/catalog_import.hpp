#pragma once
// Imports one CommerceML catalog file (import*, offers*, prices*, rests*) into the portal:
// reader → mapping → portal store, in ONE transaction, so the portal shows either the whole
// file or nothing of it. The same path serves the 1C exchange endpoint and `obmenctl import`.
// Blocking: runs on a worker thread with that thread's connection.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
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

// A CommerceML file being read on a thread of its own (see import_options::prefetch).
class file_reader;

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
  // The file to be imported next, if any: its reader starts when this import starts, on a
  // thread of its own — the first pass over it, then its first batches, held in a bounded queue
  // — and is left in *next_reader; pass it as `reader` when importing that file. A parse error
  // waits in the queue and is thrown by that import, as if it had read the file itself.
  std::filesystem::path prefetch;
  std::shared_ptr<file_reader>* next_reader = nullptr;
  // This file's reader, started by the previous import (see prefetch); null: started here.
  std::shared_ptr<file_reader> reader;
};

// Throws commerceml::parse_error (file:line:col), import_error, or pqxx errors; on any throw
// the transaction is rolled back and the portal is unchanged.
store::import_counts import_catalog_file(pqxx::connection& db, const std::filesystem::path& file,
                                         const import_options& options);

// A run of files imported one after another (obmenctl import, resync jobs): each file's import
// starts the next file's reader (import_options::prefetch), so the files follow each other
// without a pause for the next one's first pass and first batch.
class import_chain {
 public:
  // Before importing a file: the reader the previous import started for it goes to o.reader,
  // and one for `next` (nullptr: this is the last file) is asked for.
  void prepare(import_options& o, const std::filesystem::path* next);

 private:
  std::shared_ptr<file_reader> next_reader_;
};

// Orders CommerceML file names the way 1C means them to be applied: import* before offers*
// before prices* and rests*, others last; stable within a kind.
std::vector<std::string> order_for_import(std::vector<std::string> names);

}  // namespace obmen::onec
