#include "commerceml/sliced_reader.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <pugixml.hpp>

#include "commerceml/elements.hpp"
#include "commerceml/encoding.hpp"
#include "commerceml/prolog.hpp"
#include "commerceml/text_pos.hpp"

namespace obmen::commerceml::detail {
namespace {

constexpr std::size_t npos = std::string::npos;
// A batch is parsed early once its text passes this size, whatever batch_size says.
constexpr std::size_t batch_byte_cap = std::size_t{8} << 20;
// Text captured only to word error messages (see fill()).
constexpr std::size_t scratch_limit = std::size_t{4} << 20;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// The bytes a start tag's scan acts on: white space and '/' end the name; quotes, '>' and '<'.
constexpr auto in_start_tag_syntax = [] {
  std::array<bool, 256> t{};
  for (const unsigned char c : {' ', '\t', '\r', '\n', '/', '>', '"', '\'', '<'}) t[c] = true;
  return t;
}();

// pugixml's idea of a character that can start a tag name.
bool is_name_start(char c) {
  const auto b = static_cast<unsigned char>(c);
  return b >= 0x80 || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b == '_' || b == ':';
}

// Expected length of a UTF-8 sequence from its lead byte; 0 when it cannot start one.
std::size_t utf8_length(unsigned char lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// The start of a multi-byte sequence cut by the chunk boundary.
bool is_cut_sequence(std::string_view tail) {
  const std::size_t len = utf8_length(static_cast<unsigned char>(tail[0]));
  if (len == 0 || tail.size() >= len) return false;
  for (std::size_t i = 1; i < tail.size(); ++i)
    if ((static_cast<unsigned char>(tail[i]) & 0xC0) != 0x80) return false;
  return true;
}

// The names of the open elements, one after another in one buffer: pushing and popping
// allocate nothing once the deepest path has been seen.
class name_stack {
 public:
  bool empty() const { return ends_.empty(); }
  std::size_t size() const { return ends_.size(); }
  void push(std::string_view name) {
    names_.append(name);
    ends_.push_back(names_.size());
  }
  std::string_view back() const {
    const std::size_t from = ends_.size() > 1 ? ends_[ends_.size() - 2] : 0;
    return std::string_view(names_).substr(from, ends_.back() - from);
  }
  void pop() {
    ends_.pop_back();
    names_.resize(ends_.empty() ? 0 : ends_.back());
  }

 private:
  std::string names_;
  std::vector<std::size_t> ends_;
};

// Thrown by a pass 1 that skips lists when what it skips is not plainly a run of items.
struct skip_refused {};

class scanner {
 public:
  // Pass 1 gives `info` (validate, collect document_info); pass 2 gives `proc` (convert).
  // skip_lists (pass 1 only): see skip_list().
  scanner(byte_source& source, std::string_view file_name, const read_options& options, document_info* info,
          section_processor* proc, bool skip_lists = false)
      : skip_lists_(skip_lists),
        source_(source),
        file_(file_name),
        chunk_(std::max<std::size_t>(options.chunk_size, 1)),
        batch_size_(std::max<std::size_t>(options.batch_size, 1)),
        info_(info),
        proc_(proc),
        items_ahead_(info ? &options.on_items_ahead : nullptr) {}

  void run();
  const prolog& encoding() const { return prolog_; }

 private:
  // ---- input: chunks → UTF-8 window ----
  std::size_t end() const { return base_ + window_.size(); }
  char at(std::size_t abs) const { return window_[abs - base_]; }
  std::string_view view(std::size_t from, std::size_t to) const {
    return std::string_view(window_).substr(from - base_, to - from);
  }
  bool fill();
  void decode(std::string_view raw);        // appends raw to the window as UTF-8, or fails
  void decode_bytes(std::string_view raw);
  bool ensure(std::size_t abs) {
    while (end() < abs)
      if (!fill()) return false;
    return true;
  }
  std::size_t find(std::string_view needle, std::size_t from);
  std::size_t find_lt(std::size_t from);
  std::size_t find_char(char c, std::size_t from);  // like find() for one character
  text_pos pos_at(std::size_t abs);

  // ---- capture: the text that will be handed to pugixml ----
  void start_capture(patched_text& dest, std::size_t abs) {
    dest.append({}, pos_at(abs));
    cap_ = &dest;
    cap_from_ = abs;
  }
  void stop_capture(std::size_t abs) {
    if (cap_) cap_->extend(view(cap_from_, abs));
    cap_ = nullptr;
  }
  // Resets `t` to copies of the start tags of root (1), section (2) and list (3).
  void wrap(patched_text& t, int levels) const;
  std::string closing_tags(int levels) const;

  // ---- markup ----
  std::size_t scan_markup(std::size_t lt);  // returns the position after the token
  std::size_t skip_list(std::size_t from);
  void on_start(std::string_view qname, std::size_t lt, std::size_t gt_end, bool empty);
  void on_end(std::string_view qname, std::size_t lt, std::size_t gt_end);
  void end_fragment(std::size_t gt_end);
  void flush_skeleton(std::size_t cut);
  void parse_batch(std::size_t cut);
  void enter_root_level(std::size_t abs);

  // ---- errors ----
  [[noreturn]] void fail_at_eof();
  [[noreturn]] void fail_syntax(std::size_t token_begin, std::size_t region_end, const char* message);
  // Lets pugixml judge the captured text up to region_end, so that messages and positions are
  // the ones the whole-document parse gives; returns when pugixml finds nothing wrong.
  void fail_like_pugixml(std::size_t region_end, bool at_eof);
  [[noreturn]] void fail_parse(const pugi::xml_parse_result& r, const patched_text& t) {
    fail(file_, t.position_of(static_cast<std::size_t>(r.offset)), std::string("malformed XML: ") + r.description());
  }

  bool skip_lists_;
  bool skipping_ = false;  // a list just started that skip_list() is to jump over
  byte_source& source_;
  std::string file_;
  std::size_t chunk_;
  std::size_t batch_size_;
  document_info* info_;
  section_processor* proc_;
  const std::function<void(bool, bool)>* items_ahead_;  // pass 1: read_options::on_items_ahead
  prolog prolog_;

  std::string head_;  // the first bytes, read to detect the encoding, fed like later chunks
  std::size_t head_pos_ = 0;
  std::string raw_;
  std::string pending_;  // a UTF-8 sequence cut by the chunk boundary
  bool eof_ = false;
  std::string window_;
  std::size_t base_ = 0;   // absolute offset (in the decoded text) of window_[0]
  std::size_t token_ = 0;  // start of the token being scanned; nothing before it is needed
  std::size_t tracked_ = 0;  // the position tracker has counted lines and columns up to here
  text_pos tracked_pos_, tracked_prev_;

  patched_text* cap_ = nullptr;
  std::size_t cap_from_ = 0;
  patched_text scratch_;   // text between the pieces (for error messages only)
  patched_text skeleton_;  // the current section without its list
  patched_text batch_;     // wrapped Товар / Предложение fragments

  name_stack stack_;  // qualified names of the open elements
  bool root_done_ = false;
  std::string root_qname_, root_tag_, section_qname_, section_tag_, list_qname_, list_tag_;
  text_pos root_pos_, section_pos_, list_pos_;
  section_kind section_ = section_kind::other;
  bool section_sliced_ = false;  // a section whose content we capture
  std::optional<bool> section_flag_;
  bool in_list_ = false;
  bool in_fragment_ = false;
  std::size_t batch_count_ = 0;
};

bool scanner::fill() {
  if (eof_) return false;
  // Drop what has been consumed; the capture takes its text first and the position tracker
  // walks over it, so both stay exact.
  if (cap_) {
    cap_->extend(view(cap_from_, token_));
    cap_from_ = token_;
    // Text kept only for error messages must not grow without bound (a huge Документ, or
    // megabytes of whitespace between elements): past the limit, errors there get our own words.
    if (cap_ == &scratch_ && scratch_.size() > scratch_limit) {
      scratch_.truncate(0);
      cap_ = nullptr;
    }
  }
  // Keep the last consumed byte countable: an error at the end of the file points there.
  const std::size_t keep = token_ > base_ ? token_ - 1 : token_;
  pos_at(keep);
  const std::size_t consumed = keep - base_;
  if (consumed > 0 && (consumed >= (std::size_t{1} << 16) || consumed * 2 >= window_.size())) {
    window_.erase(0, consumed);
    base_ = keep;
  }
  if (head_pos_ < head_.size()) {
    const std::size_t n = std::min(chunk_, head_.size() - head_pos_);
    decode(std::string_view(head_).substr(head_pos_, n));
    head_pos_ += n;
    return true;
  }
  raw_.resize(chunk_);
  const std::size_t n = source_.read(raw_.data(), chunk_);
  if (n == 0) {
    eof_ = true;
    if (!pending_.empty()) decode({});  // reports the cut sequence
    return false;
  }
  decode(std::string_view(raw_).substr(0, n));
  return true;
}

void scanner::decode(std::string_view raw) {
  const std::size_t from = end();
  decode_bytes(raw);
  // XML has no U+0000, and pugixml would take one for the end of the text: the whole-document
  // reader rejects it the same way (prolog.cpp, utf8_document).
  const char* fresh = window_.data() + (from - base_);
  if (const void* nul = std::memchr(fresh, '\0', end() - from))
    fail(file_, pos_at(from + static_cast<std::size_t>(static_cast<const char*>(nul) - fresh)),
         "invalid character U+0000");
}

void scanner::decode_bytes(std::string_view raw) {
  if (prolog_.cp1251) {
    window_ += cp1251_to_utf8(raw);
    return;
  }
  if (!info_) {  // pass 2: pass 1 has validated these very bytes
    window_.append(raw);
    return;
  }
  std::string joined;
  if (!pending_.empty()) {
    joined = std::exchange(pending_, {});
    joined.append(raw);
    raw = joined;
  }
  const std::size_t bad = find_invalid_utf8(raw);
  if (bad == npos) {
    window_.append(raw);
    return;
  }
  window_.append(raw.substr(0, bad));
  if (!eof_ && is_cut_sequence(raw.substr(bad))) {
    pending_.assign(raw.substr(bad));
    return;
  }
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(raw[bad]));
  fail(file_, pos_at(end()), std::string("invalid UTF-8 byte ") + hex);
}

std::size_t scanner::find(std::string_view needle, std::size_t from) {
  for (;;) {
    const std::size_t i = std::string_view(window_).find(needle, from - base_);
    if (i != npos) return base_ + i;
    if (end() >= needle.size()) from = std::max(from, end() - (needle.size() - 1));
    if (!fill()) return npos;
  }
}

std::size_t scanner::find_char(char c, std::size_t from) {
  for (;;) {
    if (from < end()) {
      const void* p = std::memchr(window_.data() + (from - base_), c, end() - from);
      if (p) return base_ + static_cast<std::size_t>(static_cast<const char*>(p) - window_.data());
      from = end();
    }
    if (!fill()) return npos;
  }
}

std::size_t scanner::find_lt(std::size_t from) {
  for (;;) {
    if (from < end()) {
      const void* p = std::memchr(window_.data() + (from - base_), '<', end() - from);
      if (p) return base_ + static_cast<std::size_t>(static_cast<const char*>(p) - window_.data());
    }
    from = end();
    token_ = from;  // the text before is consumed (and captured)
    if (!fill()) return npos;
  }
}

text_pos scanner::pos_at(std::size_t abs) {
  if (abs > tracked_) {
    tracked_prev_ = advance(tracked_pos_, view(tracked_, abs - 1));
    tracked_pos_ = advance(tracked_prev_, view(abs - 1, abs));
    tracked_ = abs;
  } else if (abs + 1 == tracked_) {
    return tracked_prev_;  // the last byte: where pugixml points for "unexpected end"
  }
  return tracked_pos_;
}

void scanner::wrap(patched_text& t, int levels) const {
  t.truncate(0);
  t.append(root_tag_, root_pos_);
  if (levels >= 2) t.append(section_tag_, section_pos_);
  if (levels >= 3) t.append(list_tag_, list_pos_);
}

std::string scanner::closing_tags(int levels) const {
  std::string s;
  if (levels >= 3) s += "</" + list_qname_ + ">";
  if (levels >= 2) s += "</" + section_qname_ + ">";
  s += "</" + root_qname_ + ">";
  return s;
}

void scanner::run() {
  head_.resize(prolog_head_size);
  std::size_t got = 0;
  while (got < head_.size()) {
    const std::size_t n = source_.read(head_.data() + got, head_.size() - got);
    if (n == 0) break;
    got += n;
  }
  head_.resize(got);
  prolog_ = detect_prolog(head_, file_);
  head_pos_ = prolog_.bom ? 3 : 0;

  scratch_.truncate(0);
  start_capture(scratch_, 0);  // the prolog
  std::size_t pos = 0;
  // To the end of the input even after the root: the whole file must decode, and whatever
  // follows the root must be as well-formed as pugixml wants it.
  for (;;) {
    const std::size_t lt = find_lt(pos);
    if (lt == npos) {
      if (root_done_ && stack_.empty()) return;
      fail_at_eof();
    }
    token_ = lt;
    pos = scan_markup(lt);
    token_ = pos;
    if (skipping_) {
      skipping_ = false;
      pos = skip_list(pos);
    }
  }
}

// Pass 1 has nothing to learn inside a Товары / Предложения list — pass 2 scans and parses every
// item — but used to walk every tag of it. With skip_lists it jumps from the list's start tag to
// the first "</list-name" instead, looking only at each '<' on the way. Anything that could make
// that jump land wrong — a comment, CDATA or DOCTYPE ("<!"), a start tag with the list's name —
// or the end of the input (a truncated file) throws skip_refused, and read_sliced runs pass 1
// again without skipping, for the exact verdict. Returns the position of that end tag's '<'.
std::size_t scanner::skip_list(std::size_t from) {
  const std::string close = "</" + list_qname_, open = "<" + list_qname_;
  stop_capture(from);  // the capture is for error messages; a refusal starts over anyway
  for (std::size_t lt = from; (lt = find_char('<', lt)) != npos; ++lt) {
    token_ = lt;  // what precedes is done with: the window may drop it
    if (!ensure(lt + close.size())) throw skip_refused{};
    const std::string_view at_lt = view(lt, lt + close.size());
    if (at_lt.starts_with(close)) return lt;
    if (at_lt[1] == '!' || at_lt.starts_with(open)) throw skip_refused{};
  }
  throw skip_refused{};
}

std::size_t scanner::scan_markup(std::size_t lt) {
  if (!ensure(lt + 2)) fail_at_eof();
  const char c = at(lt + 1);
  if (c == '/') {
    const std::size_t gt = find_char('>', lt + 2);
    if (gt == npos) fail_at_eof();
    std::string_view name = view(lt + 2, gt);
    while (!name.empty() && is_space(name.back())) name.remove_suffix(1);
    // A name equal to the open element's has no white space in it (a start tag's name ends at
    // the first): only a mismatch needs the closer look.
    if ((stack_.empty() || stack_.back() != name) &&
        (name.empty() || std::any_of(name.begin(), name.end(), is_space)))
      fail_syntax(lt, gt + 1, "Error parsing end element tag");
    on_end(name, lt, gt + 1);
    return gt + 1;
  }
  if (c == '?') {
    const std::size_t close = find("?>", lt + 2);
    if (close == npos) fail_at_eof();
    // Like pugixml with parse_default (which skips declarations and PIs unparsed): the target
    // must start with a name character, so "<??>" or "<? x?>" is malformed.
    if (close == lt + 2 || !is_name_start(at(lt + 2)))
      fail_syntax(lt, close + 2, "Error parsing document declaration/processing instruction");
    return close + 2;
  }
  if (c == '!') {
    ensure(lt + 9);
    const std::string_view head = view(lt, std::min(end(), lt + 9));
    if (head.starts_with("<!--")) {
      const std::size_t close = find("-->", lt + 4);
      if (close == npos) fail_at_eof();
      return close + 3;
    }
    if (head.starts_with("<![CDATA[")) {
      const std::size_t close = find("]]>", lt + 9);
      if (close == npos) fail_at_eof();
      return close + 3;
    }
    if (head.starts_with("<!DOCTYPE")) {
      // Skip the internal subset, brackets and quotes included. Entities declared there are
      // never expanded (pugixml does not expand them either).
      int depth = 0;
      char quote = 0;
      for (std::size_t i = lt + 9;; ++i) {
        if (!ensure(i + 1)) fail_at_eof();
        const char ch = at(i);
        if (quote) {
          if (ch == quote) quote = 0;
        } else if (ch == '"' || ch == '\'') {
          quote = ch;
        } else if (ch == '[') {
          ++depth;
        } else if (ch == ']') {
          --depth;
        } else if (ch == '>' && depth <= 0) {
          return i + 1;
        }
      }
    }
    if (head.size() < 9 && eof_) fail_at_eof();
    fail_syntax(lt, lt + 2, "Could not determine tag type");
  }
  if (!is_name_start(c)) fail_syntax(lt, lt + 2, "Could not determine tag type");
  // Start tag: the name, then attributes up to a '>' outside quotes.
  // Byte by byte over what the window holds, refilling only at its end (the hot loop of the
  // scan: every start tag of the file passes through it).
  std::size_t i = lt + 1;
  std::size_t name_end = npos;
  char quote = 0;
  for (bool closed = false; !closed;) {
    if (!ensure(i + 1)) fail_at_eof();
    const char* const w = window_.data();
    const std::size_t stop = window_.size();
    std::size_t k = i - base_;
    for (; k < stop; ++k) {
      const char ch = w[k];
      if (!in_start_tag_syntax[static_cast<unsigned char>(ch)]) continue;  // changes nothing below
      if (name_end == npos && (is_space(ch) || ch == '/' || ch == '>')) name_end = base_ + k;
      if (quote) {
        if (ch == quote) quote = 0;
      } else if (ch == '"' || ch == '\'') {
        quote = ch;
      } else if (ch == '>') {
        closed = true;
        break;
      } else if (ch == '<') {
        fail_syntax(lt, base_ + k + 1, "Error parsing start element tag");
      }
    }
    i = base_ + k;
  }
  const bool empty = at(i - 1) == '/' && i - 1 >= name_end;
  // A view into the window: nothing on_start does refills it.
  on_start(view(lt + 1, name_end), lt, i + 1, empty);
  return i + 1;
}

void scanner::on_start(std::string_view qname, std::size_t lt, std::size_t gt_end, bool empty) {
  const std::size_t depth = stack_.size();
  if (depth + 1 > max_element_depth)
    fail(file_, pos_at(lt), "elements nested deeper than " + std::to_string(max_element_depth) + " levels");
  if (root_done_) {  // after the root: balance only (pugixml tolerates more elements there)
    if (!empty) stack_.push(qname);
    return;
  }
  const std::string_view local = local_name(qname);
  if (depth == 0) {
    if (local != "КоммерческаяИнформация")
      fail(file_, pos_at(lt), "not a CommerceML document: root element is '" + std::string(local) + "'");
    root_qname_ = qname;
    root_tag_ = view(lt, gt_end);
    root_pos_ = pos_at(lt);
    if (info_) {
      patched_text t;
      t.append(root_tag_, root_pos_);
      if (!empty) t.append_synthetic("</" + root_qname_ + ">", root_pos_);
      pugi::xml_document doc;
      const auto r = doc.load_buffer(t.str().data(), t.size(), pugi::parse_default, pugi::encoding_utf8);
      if (!r) fail_parse(r, t);
      note_root(*info_, doc.document_element());
    }
    stop_capture(lt);
    if (empty) {
      root_done_ = true;
      scratch_.truncate(0);
      start_capture(scratch_, gt_end);  // the epilog
      return;
    }
    stack_.push(qname);
    enter_root_level(gt_end);
    return;
  }
  if (depth == 1) {
    stop_capture(lt);
    section_ = section_of(local);
    section_sliced_ = section_ != section_kind::documents && section_ != section_kind::other;
    if (!section_sliced_) {
      // Documents and anything unknown: not ours to parse; only the tag balance is checked.
      // Their text is kept (up to scratch_limit) just to word errors the way pugixml does.
      if (info_) note_section(*info_, section_, std::nullopt);
      if (empty) {
        enter_root_level(gt_end);
      } else {
        stack_.push(qname);
        wrap(scratch_, 1);
        start_capture(scratch_, lt);
      }
      return;
    }
    section_qname_ = qname;
    section_tag_ = view(lt, gt_end);
    section_pos_ = pos_at(lt);
    section_flag_.reset();
    if (proc_) proc_->begin(section_);
    if (empty) {
      // <Каталог СодержитТолькоИзменения="true"/>: the flag is all there is.
      patched_text t;
      t.append(section_tag_, section_pos_);
      pugi::xml_document doc;
      const auto r = doc.load_buffer(t.str().data(), t.size(), pugi::parse_default, pugi::encoding_utf8);
      if (!r) fail_parse(r, t);
      if (info_) note_section(*info_, section_, changes_flag(doc.document_element()));
      enter_root_level(gt_end);
      return;
    }
    stack_.push(qname);
    wrap(skeleton_, 2);
    start_capture(skeleton_, gt_end);
    return;
  }
  if (depth == 2 && section_sliced_ && has_items(section_) && local == list_name(section_)) {
    stop_capture(lt);
    flush_skeleton(lt);
    if (items_ahead_ && *items_ahead_)
      (*items_ahead_)(section_ != section_kind::catalog,
                      section_ == section_kind::offers_changes || section_flag_.value_or(false));
    list_qname_ = qname;
    list_tag_ = view(lt, gt_end);
    list_pos_ = pos_at(lt);
    if (empty) {
      start_capture(skeleton_, gt_end);
      return;
    }
    stack_.push(qname);
    in_list_ = true;
    wrap(batch_, 3);
    batch_count_ = 0;
    wrap(scratch_, 3);
    start_capture(scratch_, gt_end);
    skipping_ = skip_lists_ && !proc_;
    return;
  }
  if (depth == 3 && in_list_ && local == item_name(section_)) {
    stop_capture(lt);
    start_capture(batch_, lt);
    if (empty) {
      end_fragment(gt_end);
      return;
    }
    stack_.push(qname);
    in_fragment_ = true;
    return;
  }
  if (!empty) stack_.push(qname);
}

void scanner::on_end(std::string_view qname, std::size_t lt, std::size_t gt_end) {
  if (stack_.empty() || stack_.back() != qname) {
    fail_like_pugixml(gt_end, false);
    fail(file_, pos_at(lt + 2), "malformed XML: Start-end tags mismatch");
  }
  stack_.pop();
  const std::size_t depth = stack_.size();
  if (root_done_) return;
  if (depth == 3 && in_fragment_) {
    in_fragment_ = false;
    end_fragment(gt_end);
  } else if (depth == 2 && in_list_) {
    stop_capture(lt);
    in_list_ = false;
    parse_batch(lt);
    if (proc_) proc_->flush_items();
    start_capture(skeleton_, gt_end);
  } else if (depth == 1) {
    if (section_sliced_) {
      stop_capture(lt);
      flush_skeleton(lt);
      if (info_) note_section(*info_, section_, section_flag_);
    }
    enter_root_level(gt_end);
  } else if (depth == 0) {
    stop_capture(lt);
    root_done_ = true;
    scratch_.truncate(0);
    start_capture(scratch_, gt_end);  // the epilog
  }
}

void scanner::end_fragment(std::size_t gt_end) {
  stop_capture(gt_end);
  ++batch_count_;
  if (!proc_) {  // pass 1 checks the structure only; the text is parsed in pass 2
    wrap(batch_, 3);
    batch_count_ = 0;
  } else if (batch_count_ >= batch_size_ || batch_.size() >= batch_byte_cap) {
    parse_batch(gt_end);
  }
  wrap(scratch_, 3);
  start_capture(scratch_, gt_end);
}

void scanner::flush_skeleton(std::size_t cut) {
  skeleton_.append_synthetic(closing_tags(2), pos_at(cut));
  pugi::xml_document doc;
  const auto r = doc.load_buffer(skeleton_.str().data(), skeleton_.size(), pugi::parse_default,
                                 pugi::encoding_utf8);
  if (!r) fail_parse(r, skeleton_);
  pugi::xml_node section = doc.document_element().first_child();
  while (section && section.type() != pugi::node_element) section = section.next_sibling();
  if (info_) {
    if (auto flag = changes_flag(section); flag && !section_flag_) section_flag_ = flag;
  }
  if (proc_) {
    const position_map map = [this](std::size_t off) { return skeleton_.position_of(off); };
    for (pugi::xml_node c = section.first_child(); c; c = c.next_sibling()) proc_->declaration(c, map);
    proc_->flush_declarations();
  }
  wrap(skeleton_, 2);
}

void scanner::parse_batch(std::size_t cut) {
  if (batch_count_ == 0 || !proc_) return;
  batch_.append_synthetic(closing_tags(3), pos_at(cut));
  pugi::xml_document doc;
  const auto r = doc.load_buffer(batch_.str().data(), batch_.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!r) fail_parse(r, batch_);
  const position_map map = [this](std::size_t off) { return batch_.position_of(off); };
  pugi::xml_node section = doc.document_element().first_child();
  while (section && section.type() != pugi::node_element) section = section.next_sibling();
  pugi::xml_node list = section.first_child();
  while (list && list.type() != pugi::node_element) list = list.next_sibling();
  for (pugi::xml_node item = list.first_child(); item; item = item.next_sibling())
    if (item.type() == pugi::node_element) proc_->item(item, map);
  wrap(batch_, 3);
  batch_count_ = 0;
}

void scanner::enter_root_level(std::size_t abs) {
  wrap(scratch_, 1);
  start_capture(scratch_, abs);
}

void scanner::fail_like_pugixml(std::size_t region_end, bool at_eof) {
  if (!cap_) return;
  patched_text t = *cap_;
  t.extend(view(cap_from_, region_end));
  pugi::xml_document doc;
  const auto r = doc.load_buffer(t.str().data(), t.size(), pugi::parse_default, pugi::encoding_utf8);
  if (r) return;
  const auto offset = static_cast<std::size_t>(r.offset);
  if (at_eof && offset + 1 >= t.size()) {
    // pugixml points at the last byte (or just past it) of what it was given; when the
    // capture holds only the wrappers, that is not the file's last byte.
    const std::size_t at = offset >= t.size() || end() == 0 ? end() : end() - 1;
    fail(file_, pos_at(at), std::string("malformed XML: ") + r.description());
  }
  fail_parse(r, t);
}

void scanner::fail_at_eof() {
  fail_like_pugixml(end(), true);
  // Inside a part we do not capture (a Документ): pugixml's words for an unclosed document.
  if (stack_.empty()) fail(file_, pos_at(end()), "malformed XML: No document element found");
  fail(file_, pos_at(end() > 0 ? end() - 1 : 0), "malformed XML: Start-end tags mismatch");
}

void scanner::fail_syntax(std::size_t token_begin, std::size_t region_end, const char* message) {
  ensure(region_end);
  fail_like_pugixml(std::min(region_end, end()), false);
  fail(file_, pos_at(token_begin), std::string("malformed XML: ") + message);
}

}  // namespace

document_info check_sliced(byte_source& source, std::string_view file_name, const read_options& options) {
  document_info info;
  const auto pass1 = [&](bool skip_lists) {
    info = {};
    info.file_name = file_name;
    scanner scan(source, file_name, options, &info, nullptr, skip_lists);
    scan.run();
    info.encoding = scan.encoding().encoding;
    info.bom = scan.encoding().bom;
  };
  // Fast first (skipping the lists); when that refuses or finds anything wrong, the full pass 1
  // decides, with the messages and positions it always gave.
  try {
    pass1(true);
  } catch (const skip_refused&) {
    source.rewind();
    pass1(false);
  } catch (const parse_error&) {
    source.rewind();
    pass1(false);
  }
  finish_info(info);
  return info;
}

void read_sliced(byte_source& source, std::string_view file_name, catalog_sink& sink, const read_options& options) {
  if (options.checked) {
    sink.on_document(*options.checked);
  } else {
    sink.on_document(check_sliced(source, file_name, options));
    source.rewind();
  }
  section_processor proc(sink, options.batch_size, file_name);
  scanner pass2(source, file_name, options, nullptr, &proc);
  pass2.run();
}

}  // namespace obmen::commerceml::detail
