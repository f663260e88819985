// tokenizer.cpp — o200k_harmony: loading (ranks file / tokenizer.json), the o200k pre-tokenizer
// (a hand-written scanner over generated Unicode class tables; PCRE2 kept as the test oracle),
// rank-ordered BPE (tiktoken's linear merge for short pieces, a heap for long ones), decoding
// and UTF-8 repair. All tables are immutable after loading, so encode/decode are thread-safe.
#include "host/text/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pcre2.h>
#define XXH_INLINE_ALL
#include <xxhash.h>  // XXH3_64bits: the rank-table hash

#include "host/data_files.h"  // o200k_base_candidates, kO200kBaseSha256, read_file
#include "host/error.h"
#include "host/sha256.h"

namespace gptoss::tok {
namespace {

constexpr uint32_t kNoRank = UINT32_MAX;
// Pieces up to this many bytes use tiktoken's O(n^2) linear merge (fewer cache misses);
// longer ones the O(n log n) heap. Chosen with bench_tokenizer (both give identical ids).
constexpr size_t kLinearMergeMaxBytes = 128;

// ---- character classes of the pre-tokenizer --------------------------------------------------
enum CharClass : uint8_t { kOther, kUpper, kLower, kLetterOther, kMark, kNumber, kSpace };
#include "host/text/tokenizer_unicode_data.inc"

// Decodes the code point at s[i] (valid UTF-8 guaranteed) and returns its class.
inline uint8_t class_at(const uint8_t* s, size_t i, uint32_t* len) {
  const uint32_t b = s[i];
  uint32_t cp;
  if (b < 0x80) {
    *len = 1;
    cp = b;
  } else if (b < 0xE0) {
    *len = 2;
    cp = ((b & 0x1F) << 6) | (s[i + 1] & 0x3F);
  } else if (b < 0xF0) {
    *len = 3;
    cp = ((b & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
  } else {
    *len = 4;
    cp = ((b & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) |
         (s[i + 3] & 0x3F);
  }
  return kClassBlocks[(uint32_t(kClassIndex[cp >> kClassBlockBits]) << kClassBlockBits) |
                      (cp & ((1u << kClassBlockBits) - 1))];
}

// [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and [\p{Ll}\p{Lm}\p{Lo}\p{M}] of the o200k pattern.
inline bool in_upper_set(uint8_t c) { return c == kUpper || c == kLetterOther || c == kMark; }
inline bool in_lower_set(uint8_t c) { return c == kLower || c == kLetterOther || c == kMark; }
// [^\s\p{L}\p{N}]
inline bool in_punct_set(uint8_t c) { return c == kOther || c == kMark; }

// (?i:'s|'t|'re|'ve|'m|'ll|'d)? after position e. Case folding as the regex engines do it:
// ASCII case plus U+017F LATIN SMALL LETTER LONG S, which folds to 's'.
inline size_t match_contraction(const uint8_t* s, size_t n, size_t e) {
  if (e + 1 >= n || s[e] != '\'') return e;
  const uint8_t c = s[e + 1];
  const auto is = [](uint8_t x, char lower) { return (x | 0x20) == lower; };
  if (is(c, 's') || is(c, 't') || is(c, 'm') || is(c, 'd')) return e + 2;
  if (e + 2 < n) {
    const uint8_t c2 = s[e + 2];
    if ((is(c, 'r') || is(c, 'v')) && is(c2, 'e')) return e + 3;
    if (is(c, 'l') && is(c2, 'l')) return e + 3;
    if (c == 0xC5 && c2 == 0xBF) return e + 3;  // 'ſ
  }
  return e;
}

// Alternative 1 body at j: [U]*[Lw]+ contraction?; returns the end or 0 when it cannot match.
// Greedy [U]* then backtracking to leave [Lw]+ at least one char: the result ends after the
// Lw-run following the U-run, or else right after the last Lw char inside the U-run.
inline size_t match_letters1(const uint8_t* s, size_t n, size_t j) {
  size_t k = j, last_lower_end = 0;
  uint32_t len;
  uint8_t c = 0;
  while (k < n && in_upper_set(c = class_at(s, k, &len))) {
    if (in_lower_set(c)) last_lower_end = k + len;
    k += len;
  }
  if (k < n && c == kLower) {
    k += len;
    while (k < n && in_lower_set(class_at(s, k, &len))) k += len;
    return match_contraction(s, n, k);
  }
  if (last_lower_end == 0) return 0;
  return match_contraction(s, n, last_lower_end);
}

// Alternative 2 body at j: [U]+[Lw]* contraction?
inline size_t match_letters2(const uint8_t* s, size_t n, size_t j) {
  uint32_t len;
  if (j >= n || !in_upper_set(class_at(s, j, &len))) return 0;
  size_t k = j + len;
  while (k < n && in_upper_set(class_at(s, k, &len))) k += len;
  while (k < n && in_lower_set(class_at(s, k, &len))) k += len;
  return match_contraction(s, n, k);
}

// End of the pre-tokenizer piece that starts at i (leftmost-first over the seven alternatives).
size_t piece_end(const uint8_t* s, size_t n, size_t i) {
  uint32_t len0;
  const uint8_t c0 = class_at(s, i, &len0);
  if (c0 == kUpper || c0 == kLower || c0 == kLetterOther) {
    // A letter cannot be the optional prefix: alternatives 1 then 2 without it.
    if (size_t e = match_letters1(s, n, i)) return e;
    return match_letters2(s, n, i);
  }
  if (c0 == kNumber) {  // \p{N}{1,3}
    size_t k = i + len0;
    uint32_t len;
    for (int count = 1; count < 3 && k < n && class_at(s, k, &len) == kNumber; ++count) k += len;
    return k;
  }
  const bool is_newline = s[i] == '\r' || s[i] == '\n';
  if (!is_newline) {
    // c0 may be the [^\r\n\p{L}\p{N}] prefix; alternative 1 with then without it, then 2.
    const size_t j = i + len0;
    if (size_t e = match_letters1(s, n, j)) return e;
    if (c0 == kMark) {
      if (size_t e = match_letters1(s, n, i)) return e;
    }
    if (size_t e = match_letters2(s, n, j)) return e;
    if (c0 == kMark) {
      if (size_t e = match_letters2(s, n, i)) return e;
    }
  }
  // Alternative 4: ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
  size_t q = SIZE_MAX;
  uint32_t len;
  if (in_punct_set(c0)) {
    q = i;
  } else if (s[i] == ' ' && i + 1 < n && in_punct_set(class_at(s, i + 1, &len))) {
    q = i + 1;
  }
  if (q != SIZE_MAX) {
    size_t k = q;
    while (k < n && in_punct_set(class_at(s, k, &len))) k += len;
    while (k < n && (s[k] == '\r' || s[k] == '\n' || s[k] == '/')) ++k;
    return k;
  }
  // c0 is whitespace. Alternative 5 '\s*[\r\n]+' ends after the last \r or \n of the run;
  // 6 '\s+(?!\S)' keeps the last whitespace char for the next piece unless at the end; 7 '\s+'.
  size_t w = i, last_newline_end = 0, last_start = i;
  while (w < n && class_at(s, w, &len) == kSpace) {
    if (s[w] == '\r' || s[w] == '\n') last_newline_end = w + 1;
    last_start = w;
    w += len;
  }
  if (last_newline_end != 0) return last_newline_end;
  if (w == n) return n;
  if (last_start > i) return last_start;
  return w;
}

// ---- UTF-8 ----------------------------------------------------------------------------------
// The WHATWG decoder, byte at a time: emits complete sequences, U+FFFD per maximal invalid
// subpart. State lives in the caller so that StreamDecoder can carry it across tokens.
struct Utf8State {
  char pending[4];
  int num_pending = 0;
  int num_needed = 0;
  uint8_t lower = 0x80, upper = 0xBF;
};
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

size_t utf8_feed(Utf8State& st, std::string_view bytes, std::string& out) {
  size_t num_replaced = 0;
  for (size_t i = 0; i < bytes.size();) {
    const uint8_t b = uint8_t(bytes[i]);
    if (st.num_needed == 0) {
      ++i;
      if (b < 0x80) {
        out.push_back(char(b));
        continue;
      }
      if (b >= 0xC2 && b <= 0xDF) {
        st.num_needed = 1;
      } else if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) st.lower = 0xA0;
        if (b == 0xED) st.upper = 0x9F;
        st.num_needed = 2;
      } else if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) st.lower = 0x90;
        if (b == 0xF4) st.upper = 0x8F;
        st.num_needed = 3;
      } else {
        out += kReplacement;
        ++num_replaced;
        continue;
      }
      st.pending[0] = char(b);
      st.num_pending = 1;
      continue;
    }
    if (b < st.lower || b > st.upper) {
      // The sequence so far is a maximal invalid subpart; b is looked at again as a lead byte.
      st = Utf8State{};
      out += kReplacement;
      ++num_replaced;
      continue;
    }
    ++i;
    st.lower = 0x80;
    st.upper = 0xBF;
    st.pending[st.num_pending++] = char(b);
    if (--st.num_needed == 0) {
      out.append(st.pending, size_t(st.num_pending));
      st.num_pending = 0;
    }
  }
  return num_replaced;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) {  // ASCII fast path, 8 bytes at a time
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    const uint8_t b = p[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    int needed;
    uint8_t lower = 0x80, upper = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      needed = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      needed = 2;
      if (b == 0xE0) lower = 0xA0;
      if (b == 0xED) upper = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      needed = 3;
      if (b == 0xF0) lower = 0x90;
      if (b == 0xF4) upper = 0x8F;
    } else {
      return false;
    }
    if (i + size_t(needed) >= n) return false;  // truncated sequence
    if (p[i + 1] < lower || p[i + 1] > upper) return false;
    for (int k = 2; k <= needed; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
    }
    i += size_t(needed) + 1;
  }
  return true;
}

std::string sanitize_utf8(std::string_view s, size_t* num_replaced) {
  std::string out;
  out.reserve(s.size() + 16);
  Utf8State st;
  size_t count = utf8_feed(st, s, out);
  if (st.num_needed != 0) {
    out += kReplacement;
    ++count;
  }
  if (num_replaced) *num_replaced = count;
  return out;
}

// ---- the loaded tables ------------------------------------------------------------------------
struct Tokenizer::Data {
  // One slot of the rank table: short tokens (3..8 bytes) are stored inline, so a lookup
  // (most of them misses, during merges) touches one cache line; longer ones by 64-bit hash,
  // confirmed against the arena.
  struct Slot {
    uint64_t key;   // len <= 8: the bytes, little-endian, zero-padded; else XXH3 of the bytes
    uint32_t rank;  // kNoRank: empty slot
    uint32_t len;
  };
  static_assert(sizeof(Slot) == 16, "four slots per cache line");

  std::string arena;              // mergeable token bytes, concatenated in rank order
  std::vector<uint32_t> offsets;  // [num_mergeable + 1] into arena
  std::vector<Slot> table;        // open addressing, linear probing, load <= 0.4
  uint64_t table_mask = 0;
  std::vector<uint32_t> pair_rank;        // [65536] rank of the 2-byte token a<<8|b, or kNoRank
  std::array<uint32_t, 256> byte_rank{};  // rank of each single byte
  std::vector<std::string> specials;      // [vocab_size - num_mergeable] texts
  std::unordered_map<std::string, TokenId> special_ids;
  TokenId num_mergeable = 0;
  TokenId vocab_size = 0;

  std::string_view bytes_of(uint32_t rank) const {
    return {arena.data() + offsets[rank], offsets[rank + 1] - offsets[rank]};
  }

  static uint64_t slot_key(const uint8_t* p, size_t len) {
    if (len > 8) return XXH3_64bits(p, len);
    uint64_t k = 0;
    std::memcpy(&k, p, len);
    return k;
  }
  // splitmix64's finalizer: spreads the inline keys (mostly ASCII) over the table.
  static uint64_t slot_hash(uint64_t key, size_t len) {
    uint64_t h = key + uint64_t(len) * 0x9E3779B97F4A7C15ull;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    return h ^ (h >> 31);
  }

  uint32_t lookup(const uint8_t* p, size_t len) const {
    if (len == 1) return byte_rank[p[0]];
    if (len == 2) return pair_rank[(uint32_t(p[0]) << 8) | p[1]];
    const uint64_t key = slot_key(p, len);
    for (uint64_t idx = slot_hash(key, len) & table_mask;; idx = (idx + 1) & table_mask) {
      const Slot& slot = table[idx];
      if (slot.rank == kNoRank) return kNoRank;
      if (slot.key == key && slot.len == len &&
          (len <= 8 || std::memcmp(arena.data() + offsets[slot.rank], p, len) == 0)) {
        return slot.rank;
      }
    }
  }

  // Builds the rank table, pair and byte tables from arena/offsets; checks uniqueness.
  void build_index() {
    size_t capacity = 1;
    while (capacity < size_t(num_mergeable) * 5 / 2) capacity <<= 1;
    table.assign(capacity, Slot{0, kNoRank, 0});
    table_mask = capacity - 1;
    pair_rank.assign(65536, kNoRank);
    byte_rank.fill(kNoRank);
    for (uint32_t rank = 0; rank < num_mergeable; ++rank) {
      const std::string_view b = bytes_of(rank);
      const auto* p = reinterpret_cast<const uint8_t*>(b.data());
      GPTOSS_CHECK(!b.empty(), "tokenizer: token {} is empty", rank);
      if (b.size() == 1) {
        GPTOSS_CHECK(byte_rank[p[0]] == kNoRank, "tokenizer: byte {:#04x} has two ranks", p[0]);
        byte_rank[p[0]] = rank;
        continue;
      }
      if (b.size() == 2) {
        uint32_t& slot = pair_rank[(uint32_t(p[0]) << 8) | p[1]];
        GPTOSS_CHECK(slot == kNoRank, "tokenizer: token {} appears twice", rank);
        slot = rank;
        continue;
      }
      const uint64_t key = slot_key(p, b.size());
      uint64_t idx = slot_hash(key, b.size()) & table_mask;
      for (; table[idx].rank != kNoRank; idx = (idx + 1) & table_mask) {
        const Slot& other = table[idx];
        if (other.key == key && other.len == b.size() && bytes_of(other.rank) == b) {
          throw Error(
              fmt::format("tokenizer: ranks {} and {} have the same bytes", other.rank, rank),
              "the tokenizer file is corrupt; use the bundled o200k_base.tiktoken");
        }
      }
      table[idx] = Slot{key, rank, uint32_t(b.size())};
    }
    for (int b = 0; b < 256; ++b) {
      if (byte_rank[b] == kNoRank) {
        throw Error(fmt::format("tokenizer: byte {:#04x} has no rank, so not every text can be "
                                "encoded",
                                b),
                    "a byte-level BPE vocabulary must contain all 256 single bytes");
      }
    }
  }

  void set_specials(std::vector<std::string> texts) {
    specials = std::move(texts);
    vocab_size = num_mergeable + TokenId(specials.size());
    special_ids.clear();
    for (size_t k = 0; k < specials.size(); ++k)
      special_ids.emplace(specials[k], num_mergeable + k);
  }
};

std::string default_special_name(TokenId id) {
  switch (id) {
    case kStartOfText: return "<|startoftext|>";
    case kEndOfText: return "<|endoftext|>";
    case kReturn: return "<|return|>";
    case kConstrain: return "<|constrain|>";
    case kChannel: return "<|channel|>";
    case kStart: return "<|start|>";
    case kEnd: return "<|end|>";
    case kMessage: return "<|message|>";
    case kCall: return "<|call|>";
    // harmony's own table names this <|reserved_200018|>; the HF tokenizer keeps o200k_base's
    // name. Either way the model never sees it.
    case kEndOfPrompt: return "<|endofprompt|>";
    default: return fmt::format("<|reserved_{}|>", id);
  }
}

namespace {

std::vector<std::string> default_specials() {
  std::vector<std::string> out;
  out.reserve(kVocabSize - kNumMergeable);
  for (TokenId id = kNumMergeable; id < kVocabSize; ++id) out.push_back(default_special_name(id));
  return out;
}

constexpr std::array<int8_t, 256> make_base64_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) t[uint8_t(alphabet[i])] = int8_t(i);
  return t;
}
constexpr auto kBase64 = make_base64_table();

// Decodes standard base64 `s` to out (room for s.size() * 3 / 4 bytes); returns the number of
// bytes written, or SIZE_MAX if `s` is malformed.
size_t base64_decode(std::string_view s, char* out) {
  if (s.empty() || s.size() % 4 != 0) return SIZE_MAX;
  const size_t pad = s.back() != '=' ? 0 : s[s.size() - 2] == '=' ? 2 : 1;
  char* o = out;
  for (size_t i = 0; i < s.size(); i += 4) {
    const bool last = i + 4 == s.size();
    int32_t d[4];
    for (size_t k = 0; k < 4; ++k) {
      d[k] = (last && k >= 4 - pad) ? 0 : kBase64[uint8_t(s[i + k])];
    }
    if ((d[0] | d[1] | d[2] | d[3]) < 0) return SIZE_MAX;
    const uint32_t v =
        uint32_t(d[0]) << 18 | uint32_t(d[1]) << 12 | uint32_t(d[2]) << 6 | uint32_t(d[3]);
    *o++ = char(v >> 16);
    if (!last || pad < 2) *o++ = char((v >> 8) & 0xFF);
    if (!last || pad < 1) *o++ = char(v & 0xFF);
  }
  return size_t(o - out);
}

// GPT-2's byte-to-unicode map, inverted: code point -> byte (-1: not a byte's symbol).
std::array<int16_t, 324> make_unicode_to_byte() {
  std::array<int16_t, 324> inv{};
  inv.fill(-1);
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    inv[printable ? b : 256 + extra++] = int16_t(b);
  }
  return inv;
}

// The o200k pattern as tokenizer.json / tiktoken spell it (checked on HF load).
constexpr std::string_view kO200kPattern =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

}  // namespace

// ---- construction -----------------------------------------------------------------------------
Tokenizer::Tokenizer(std::shared_ptr<const Data> data)
    : data_(std::move(data)),
      num_mergeable_(data_->num_mergeable),
      vocab_size_(data_->vocab_size) {}

Tokenizer Tokenizer::from_tiktoken(std::string_view file) {
  auto data = std::make_shared<Data>();
  // Decoded straight into the arena in file order; the published file is in rank order, so
  // the permutation below is needed only for other files.
  std::string& arena = data->arena;
  arena.resize(file.size());  // decoded bytes are fewer than the base64 characters
  size_t used = 0;
  std::vector<std::array<uint32_t, 3>> entries;  // rank, offset in arena, length
  entries.reserve(kNumMergeable);
  bool in_rank_order = true;
  size_t line_no = 0;
  for (size_t pos = 0; pos < file.size();) {
    const char* nl =
        static_cast<const char*>(std::memchr(file.data() + pos, '\n', file.size() - pos));
    const size_t eol = nl ? size_t(nl - file.data()) : file.size();
    std::string_view line = file.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    const auto bad_line = [&](std::string_view what) {
      return Error(fmt::format("tokenizer ranks file, line {}: {}", line_no, what),
                   "expected '<base64 bytes> <rank>' per line (a .tiktoken file)");
    };
    if (space == std::string_view::npos) throw bad_line("no space between token and rank");
    const size_t len = base64_decode(line.substr(0, space), arena.data() + used);
    if (len == SIZE_MAX) throw bad_line("malformed base64");
    uint64_t rank = 0;
    const std::string_view digits = line.substr(space + 1);
    if (digits.empty() || digits.size() > 9) throw bad_line("malformed rank");
    for (char ch : digits) {
      if (ch < '0' || ch > '9') throw bad_line("malformed rank");
      rank = rank * 10 + uint64_t(ch - '0');
    }
    in_rank_order = in_rank_order && rank == entries.size();
    entries.push_back({uint32_t(rank), uint32_t(used), uint32_t(len)});
    used += len;
  }
  arena.resize(used);
  GPTOSS_CHECK(!entries.empty(), "tokenizer ranks file is empty");
  const size_t n = entries.size();
  data->num_mergeable = TokenId(n);
  data->offsets.resize(n + 1);
  if (in_rank_order) {
    for (size_t rank = 0; rank < n; ++rank) data->offsets[rank] = entries[rank][1];
  } else {
    std::vector<uint32_t> where(n, UINT32_MAX);
    for (size_t k = 0; k < n; ++k) {
      const uint32_t rank = entries[k][0];
      if (rank >= n || where[rank] != UINT32_MAX) {
        throw Error(fmt::format("tokenizer ranks file: rank {} is {}", rank,
                                rank >= n ? "beyond the number of tokens" : "given twice"),
                    "the ranks must be 0..N-1, each once (a .tiktoken file)");
      }
      where[rank] = uint32_t(k);
    }
    std::string placed;
    placed.reserve(used);
    for (size_t rank = 0; rank < n; ++rank) {
      const auto& e = entries[where[rank]];
      data->offsets[rank] = uint32_t(placed.size());
      placed.append(arena, e[1], e[2]);
    }
    arena.swap(placed);
  }
  data->offsets[n] = uint32_t(arena.size());
  if (n != kNumMergeable) {
    throw Error(
        fmt::format("tokenizer ranks file has {} tokens, o200k_base has {}", n, kNumMergeable),
        "gpt-oss uses o200k_base.tiktoken (sha256 " + std::string(kO200kBaseSha256) + ")");
  }
  data->build_index();
  data->set_specials(default_specials());
  return Tokenizer(std::move(data));
}

namespace {

// Collects what from_hf_json needs in one SAX pass: no DOM, and the merges list (most of the
// file) is lexed but not stored. Containers are tracked by the key they sit under.
class HfJsonSax final : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::string model_type;
  bool has_model = false, has_vocab = false;
  std::vector<std::pair<std::string, int64_t>> vocab;  // key, id (-1: not an unsigned integer)
  std::vector<std::pair<int64_t, std::string>> added;  // id (-1: missing), content
  std::vector<std::string> patterns;                   // pre_tokenizer Split regexes
  std::string error;

  bool null() override { return value(-1); }
  bool boolean(bool) override { return value(-1); }
  bool number_integer(number_integer_t v) override { return value(v < 0 ? -1 : v); }
  bool number_unsigned(number_unsigned_t v) override {
    return value(v > uint64_t(INT64_MAX) ? -1 : int64_t(v));
  }
  bool number_float(number_float_t, const string_t&) override { return value(-1); }
  bool binary(binary_t&) override { return value(-1); }
  bool string(string_t& s) override {
    if (in(2, "model") && key_ == "type") model_type = s;
    if (in_vocab()) vocab.emplace_back(key_, -1);
    if (in_added_entry() && key_ == "content") added.back().second = s;
    if (path_.size() >= 2 && path_[1] == "pre_tokenizer" && key_ == "Regex") patterns.push_back(s);
    return true;
  }
  bool key(string_t& k) override {
    key_.swap(k);
    return true;
  }
  bool start_object(std::size_t) override {
    path_.push_back(std::move(key_));
    key_.clear();
    if (in(2, "model")) has_model = true;
    if (in_vocab()) has_vocab = true;
    if (in_added_entry()) added.emplace_back(-1, std::string());
    return true;
  }
  bool end_object() override { return end(); }
  bool start_array(std::size_t) override {
    path_.push_back(std::move(key_));
    key_.clear();
    return true;
  }
  bool end_array() override { return end(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error = e.what();
    return false;
  }

 private:
  bool in(size_t depth, const char* section) const {
    return path_.size() == depth && path_[1] == section;
  }
  bool in_vocab() const { return path_.size() == 3 && path_[1] == "model" && path_[2] == "vocab"; }
  bool in_added_entry() const { return path_.size() == 3 && path_[1] == "added_tokens"; }
  bool value(int64_t v) {
    if (in_vocab()) vocab.emplace_back(key_, v);
    if (in_added_entry() && key_ == "id") added.back().first = v;
    return true;
  }
  bool end() {
    path_.pop_back();
    key_.clear();
    return true;
  }
  std::vector<std::string> path_;  // the key each open container sits under ("" in arrays)
  std::string key_;
};

}  // namespace

Tokenizer Tokenizer::from_hf_json(std::string_view json_text) {
  HfJsonSax sax;
  if (!nlohmann::json::sax_parse(json_text.begin(), json_text.end(), &sax)) {
    throw Error(fmt::format("tokenizer.json is not valid JSON: {}", sax.error),
                "pass an HF tokenizer.json, or the bundled o200k_base.tiktoken");
  }
  const auto fail = [](std::string what) {
    return Error("tokenizer.json: " + what,
                 "gpt-oss needs the o200k_harmony tokenizer (HF byte-level BPE); without a "
                 "tokenizer.json the bundled o200k_base.tiktoken is used");
  };
  if (!sax.has_model) throw fail("no \"model\" object");
  if (!sax.model_type.empty() && sax.model_type != "BPE") {
    throw fail("model.type is \"" + sax.model_type + "\", expected \"BPE\"");
  }
  if (!sax.has_vocab) throw fail("no model.vocab object");

  std::unordered_map<uint64_t, std::string> added;  // id -> content
  for (auto& [id, content] : sax.added) {
    if (id < 0 || content.empty()) throw fail("malformed added_tokens entry '" + content + "'");
    added[uint64_t(id)] = std::move(content);
  }
  static const auto kUnicodeToByte = make_unicode_to_byte();
  std::vector<std::pair<uint64_t, std::string>> tokens;  // id, bytes
  tokens.reserve(sax.vocab.size());
  for (const auto& [key, value] : sax.vocab) {
    if (value < 0) throw fail("vocab value of '" + key + "' is not an id");
    const uint64_t id = uint64_t(value);
    if (added.count(id)) continue;  // a special listed in the vocab too
    std::string bytes;
    for (size_t i = 0; i < key.size();) {
      const auto b = uint8_t(key[i]);
      uint32_t cp, len;
      if (b < 0x80) {
        cp = b, len = 1;
      } else if (b < 0xE0) {
        cp = ((b & 0x1Fu) << 6) | (uint8_t(key[i + 1]) & 0x3Fu), len = 2;
      } else {
        cp = 0xFFFF, len = 3;  // beyond the byte map anyway
      }
      if (cp >= kUnicodeToByte.size() || kUnicodeToByte[cp] < 0) {
        throw fail("vocab entry '" + key + "' is not in the byte-level (GPT-2) alphabet");
      }
      bytes.push_back(char(kUnicodeToByte[cp]));
      i += len;
    }
    tokens.emplace_back(id, std::move(bytes));
  }
  std::sort(tokens.begin(), tokens.end());
  const size_t n = tokens.size();
  for (size_t k = 0; k < n; ++k) {
    if (tokens[k].first != k) {
      throw fail(
          fmt::format("vocab ids are not 0..{} (id {} at position {})", n - 1, tokens[k].first, k));
    }
  }
  if (n != kNumMergeable) {
    throw fail(
        fmt::format("vocab has {} byte-level tokens, o200k_harmony has {}", n, kNumMergeable));
  }
  auto data = std::make_shared<Data>();
  data->num_mergeable = TokenId(n);
  data->offsets.resize(n + 1);
  for (size_t k = 0; k < n; ++k) {
    data->offsets[k] = uint32_t(data->arena.size());
    data->arena += tokens[k].second;
  }
  data->offsets[n] = uint32_t(data->arena.size());
  data->build_index();

  std::vector<std::string> specials = default_specials();
  for (const auto& [id, content] : added) {
    if (id < kNumMergeable || id >= kVocabSize) {
      throw fail(
          fmt::format("added token {} has id {}, outside o200k_harmony's special range "
                      "{}..{}",
                      content, id, kNumMergeable, kVocabSize - 1));
    }
    specials[id - kNumMergeable] = content;
  }
  for (TokenId id : {kReturn, kConstrain, kChannel, kStart, kEnd, kMessage, kCall}) {
    if (specials[id - kNumMergeable] != default_special_name(id)) {
      throw fail(fmt::format("id {} is {}, harmony needs {}", id, specials[id - kNumMergeable],
                             default_special_name(id)));
    }
  }
  data->set_specials(std::move(specials));

  for (const auto& p : sax.patterns) {
    if (p != kO200kPattern) {
      fmt::print(stderr,
                 "warning: tokenizer.json pre-tokenizer pattern differs from o200k's; the o200k "
                 "pattern is used\n");
      break;
    }
  }
  return Tokenizer(std::move(data));
}

Tokenizer Tokenizer::from_blob(std::string_view format, std::span<const std::byte> blob) {
  const std::string_view text(reinterpret_cast<const char*>(blob.data()), blob.size());
  if (format == kBlobFormatTiktoken) return from_tiktoken(text);
  if (format == kBlobFormatHfJson) return from_hf_json(text);
  throw Error(fmt::format("unknown embedded tokenizer format '{}'", format),
              fmt::format("known formats: {}, {}; re-run the converter", kBlobFormatTiktoken,
                          kBlobFormatHfJson));
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  const std::string text = read_file(path);
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') return from_hf_json(text);
  return from_tiktoken(text);
}

Tokenizer Tokenizer::load_default() {
  const std::vector<std::filesystem::path> candidates = o200k_base_candidates();
  for (const std::filesystem::path& candidate : candidates) {
    const std::string path = candidate.string();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) continue;
    const std::string text = read_file(path);
    const auto sha256_hex = [&text] {
      return Sha256::hex(
          Sha256::digest(std::as_bytes(std::span<const char>(text.data(), text.size()))));
    };
    // The hash runs beside the parse (about half of the load time each).
    std::future<std::string> digest;
    try {
      digest = std::async(std::launch::async, sha256_hex);
    } catch (const std::system_error&) {
      digest = std::async(std::launch::deferred, sha256_hex);
    }
    std::optional<Tokenizer> tokenizer;
    std::exception_ptr parse_error;
    try {
      tokenizer = from_tiktoken(text);
    } catch (...) {
      parse_error = std::current_exception();
    }
    if (const std::string d = digest.get(); d != kO200kBaseSha256) {
      throw Error(fmt::format("'{}' has sha256 {}, expected {}", path, d, kO200kBaseSha256),
                  "the bundled ranks file is damaged; restore data/o200k_base.tiktoken from git");
    }
    if (parse_error) std::rethrow_exception(parse_error);
    return std::move(*tokenizer);
  }
  std::string searched;
  for (const auto& c : candidates) searched += "\n  " + c.parent_path().string();
  throw Error(fmt::format("cannot find {}; searched:{}", kO200kBaseFileName, searched),
              "set GPTOSS_DATA_DIR to the folder holding o200k_base.tiktoken (data/ in the "
              "source tree)");
}

// ---- encode ----------------------------------------------------------------------------------
namespace {

struct MergeScratch {
  std::vector<std::pair<uint32_t, uint32_t>> parts;  // (start, rank of pair starting here)
  std::vector<uint32_t> next, prev, cur_rank;
  std::vector<uint64_t> heap;  // rank << 32 | start, min-heap
};

// tiktoken's byte_pair_merge: repeatedly merge the lowest-ranked adjacent pair (leftmost on
// ties), rescanning linearly. Best for the short pieces that make up almost all text.
void merge_linear(const Tokenizer::Data& d, const uint8_t* p, size_t n, MergeScratch& s,
                  std::vector<TokenId>& out) {
  auto& parts = s.parts;
  parts.clear();
  for (size_t i = 0; i + 1 < n; ++i) parts.emplace_back(uint32_t(i), d.lookup(p + i, 2));
  parts.emplace_back(uint32_t(n - 1), kNoRank);
  parts.emplace_back(uint32_t(n), kNoRank);
  const auto rank_after_merge = [&](size_t i) {
    if (i + 3 < parts.size()) {
      return d.lookup(p + parts[i].first, parts[i + 3].first - parts[i].first);
    }
    return kNoRank;
  };
  while (parts.size() > 2) {
    uint32_t min_rank = kNoRank;
    size_t min_i = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      if (parts[i].second < min_rank) {
        min_rank = parts[i].second;
        min_i = i;
      }
    }
    if (min_rank == kNoRank) break;
    if (min_i > 0) parts[min_i - 1].second = rank_after_merge(min_i - 1);
    parts[min_i].second = rank_after_merge(min_i);
    parts.erase(parts.begin() + ptrdiff_t(min_i) + 1);
  }
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    out.push_back(d.lookup(p + parts[i].first, parts[i + 1].first - parts[i].first));
  }
}

// The same merge order with a min-heap of (rank, start) and a linked list of parts:
// O(n log n) for long pieces (a run of 10,000 equal characters is one piece).
void merge_heap(const Tokenizer::Data& d, const uint8_t* p, size_t n, MergeScratch& s,
                std::vector<TokenId>& out) {
  s.next.resize(n + 1);
  s.prev.resize(n + 1);
  s.cur_rank.resize(n + 1);
  auto& heap = s.heap;
  heap.clear();
  const auto push = [&](uint32_t rank, uint32_t start) {
    heap.push_back((uint64_t(rank) << 32) | start);
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (uint32_t i = 0; i < n; ++i) {
    s.next[i] = i + 1;
    s.prev[i] = i - 1;  // wraps for i = 0; never read there
    s.cur_rank[i] = (i + 1 < n) ? d.lookup(p + i, 2) : kNoRank;
    if (s.cur_rank[i] != kNoRank) push(s.cur_rank[i], i);
  }
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const uint64_t top = heap.back();
    heap.pop_back();
    const uint32_t rank = uint32_t(top >> 32), i = uint32_t(top);
    if (s.cur_rank[i] != rank) continue;  // stale: the part died or its pair changed
    const uint32_t j = s.next[i], k = s.next[j];
    s.next[i] = k;
    if (k < n) s.prev[k] = i;
    s.cur_rank[j] = kNoRank;
    s.cur_rank[i] = (k < n) ? d.lookup(p + i, s.next[k] - i) : kNoRank;
    if (s.cur_rank[i] != kNoRank) push(s.cur_rank[i], i);
    if (i > 0) {
      const uint32_t h = s.prev[i];
      s.cur_rank[h] = d.lookup(p + h, k - h);
      if (s.cur_rank[h] != kNoRank) push(s.cur_rank[h], h);
    }
  }
  for (uint32_t i = 0; i < n; i = s.next[i]) out.push_back(d.lookup(p + i, s.next[i] - i));
}

inline void encode_piece(const Tokenizer::Data& d, const uint8_t* p, size_t n, MergeScratch& s,
                         std::vector<TokenId>& out, int algorithm = 0) {
  if (algorithm == 0) {
    const uint32_t whole = d.lookup(p, n);
    if (whole != kNoRank) {
      out.push_back(whole);
      return;
    }
    algorithm = n <= kLinearMergeMaxBytes ? 1 : 2;
  }
  if (n == 1) {
    out.push_back(d.byte_rank[p[0]]);
  } else if (algorithm == 1) {
    merge_linear(d, p, n, s, out);
  } else {
    merge_heap(d, p, n, s, out);
  }
}

}  // namespace

void Tokenizer::encode_into(std::string_view text, std::vector<TokenId>& out,
                            size_t* num_replaced) const {
  std::string repaired;
  size_t replaced = 0;
  if (!is_valid_utf8(text)) {
    repaired = sanitize_utf8(text, &replaced);
    text = repaired;
  }
  if (num_replaced) *num_replaced = replaced;
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  out.reserve(out.size() + n / 4 + 1);
  MergeScratch scratch;
  const Data& d = *data_;
  for (size_t i = 0; i < n;) {
    const size_t e = piece_end(s, n, i);
    encode_piece(d, s + i, e - i, scratch, out);
    i = e;
  }
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, size_t* num_replaced) const {
  std::vector<TokenId> out;
  encode_into(text, out, num_replaced);
  return out;
}

// ---- decode ----------------------------------------------------------------------------------
void Tokenizer::check_id(TokenId id) const {
  if (id >= vocab_size_) {
    throw Error(fmt::format("token id {} is out of range (the vocabulary has {} ids: 0..{})", id,
                            vocab_size_, vocab_size_ - 1),
                "ids come from `gptoss tokenize`; o200k_harmony ids are below 201088");
  }
}

std::string_view Tokenizer::token_bytes(TokenId id) const {
  check_id(id);
  if (id < num_mergeable_) return data_->bytes_of(id);
  return data_->specials[id - num_mergeable_];
}

std::string Tokenizer::decode(std::span<const TokenId> ids) const {
  std::string out;
  out.reserve(ids.size() * 4);
  for (TokenId id : ids) out += token_bytes(id);
  return out;
}

std::optional<TokenId> Tokenizer::special_id(std::string_view text) const {
  const auto it = data_->special_ids.find(std::string(text));
  if (it == data_->special_ids.end()) return std::nullopt;
  return it->second;
}

std::optional<TokenId> Tokenizer::rank_of(std::string_view bytes) const {
  if (bytes.empty()) return std::nullopt;
  const uint32_t r = data_->lookup(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (r == kNoRank) return std::nullopt;
  return r;
}

std::string Tokenizer::to_tiktoken() const {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve(data_->arena.size() * 2 + num_mergeable_ * 8);
  for (TokenId rank = 0; rank < num_mergeable_; ++rank) {
    const std::string_view b = data_->bytes_of(rank);
    for (size_t i = 0; i < b.size(); i += 3) {
      const size_t m = std::min<size_t>(3, b.size() - i);
      uint32_t v = uint32_t(uint8_t(b[i])) << 16;
      if (m > 1) v |= uint32_t(uint8_t(b[i + 1])) << 8;
      if (m > 2) v |= uint8_t(b[i + 2]);
      out.push_back(kAlphabet[(v >> 18) & 63]);
      out.push_back(kAlphabet[(v >> 12) & 63]);
      out.push_back(m > 1 ? kAlphabet[(v >> 6) & 63] : '=');
      out.push_back(m > 2 ? kAlphabet[v & 63] : '=');
    }
    out += fmt::format(" {}\n", rank);
  }
  return out;
}

// ---- streaming decode --------------------------------------------------------------------------
size_t StreamDecoder::push_bytes(std::string_view bytes, std::string& out) {
  const size_t before = out.size();
  Utf8State st;
  std::memcpy(st.pending, pending_, 4);
  st.num_pending = num_pending_;
  st.num_needed = num_needed_;
  st.lower = lower_;
  st.upper = upper_;
  utf8_feed(st, bytes, out);
  std::memcpy(pending_, st.pending, 4);
  num_pending_ = st.num_pending;
  num_needed_ = st.num_needed;
  lower_ = st.lower;
  upper_ = st.upper;
  return out.size() - before;
}

size_t StreamDecoder::push(TokenId id, std::string& out) {
  if (tokenizer_.is_special(id)) {
    size_t appended = flush(out);
    if (render_specials_) {
      const std::string_view text = tokenizer_.token_bytes(id);
      out += text;
      appended += text.size();
    }
    return appended;
  }
  return push_bytes(tokenizer_.token_bytes(id), out);
}

std::string StreamDecoder::push(TokenId id) {
  std::string out;
  push(id, out);
  return out;
}

size_t StreamDecoder::flush(std::string& out) {
  if (num_needed_ == 0) return 0;
  out += kReplacement;
  num_pending_ = num_needed_ = 0;
  lower_ = 0x80;
  upper_ = 0xBF;
  return kReplacement.size();
}

std::string StreamDecoder::flush() {
  std::string out;
  flush(out);
  return out;
}

// ---- detail: test and bench hooks ---------------------------------------------------------------
namespace detail {

void split_pieces(std::string_view text, std::vector<std::pair<uint32_t, uint32_t>>& out) {
  GPTOSS_CHECK(is_valid_utf8(text), "split_pieces needs valid UTF-8");
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  for (size_t i = 0; i < text.size();) {
    const size_t e = piece_end(s, text.size(), i);
    out.emplace_back(uint32_t(i), uint32_t(e));
    i = e;
  }
}

namespace {
// The o200k pattern for PCRE2. \s is spelled out as Unicode White_Space (what the Rust regex
// crate and so tiktoken use): PCRE2's own \s lacks U+0085.
constexpr const char* kWs =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}"
    "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

struct Pcre2Pattern {
  pcre2_code* code = nullptr;
  Pcre2Pattern() {
    const std::string ws = kWs;
    const std::string pattern =
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
        "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
        "|\\p{N}{1,3}"
        "| ?[^" +
        ws +
        "\\p{L}\\p{N}]+[\\r\\n/]*"
        "|[" +
        ws +
        "]*[\\r\\n]+"
        "|[" +
        ws + "]+(?![^" + ws +
        "])"
        "|[" +
        ws + "]+";
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                         PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      throw Error(fmt::format("PCRE2 cannot compile the o200k pattern at {}: {}", err_offset,
                              reinterpret_cast<const char*>(msg)));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if it fails
  }
  ~Pcre2Pattern() { pcre2_code_free(code); }
};
}  // namespace

void split_pieces_pcre2(std::string_view text, std::vector<std::pair<uint32_t, uint32_t>>& out) {
  GPTOSS_CHECK(is_valid_utf8(text), "split_pieces_pcre2 needs valid UTF-8");
  static const Pcre2Pattern pattern;
  // Long runs backtrack deeply: give the JIT up to 8 MiB of stack instead of its 32 KiB.
  const std::unique_ptr<pcre2_jit_stack, decltype(&pcre2_jit_stack_free)> stack(
      pcre2_jit_stack_create(32 << 10, 8 << 20, nullptr), &pcre2_jit_stack_free);
  const std::unique_ptr<pcre2_match_context, decltype(&pcre2_match_context_free)> context(
      pcre2_match_context_create(nullptr), &pcre2_match_context_free);
  const std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(pattern.code, nullptr), &pcre2_match_data_free);
  GPTOSS_CHECK(stack && context && md, "PCRE2: out of memory");
  pcre2_jit_stack_assign(context.get(), nullptr, stack.get());
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  for (size_t pos = 0; pos < text.size();) {
    // Validated above, so PCRE2's own UTF check is skipped.
    const int rc = pcre2_match(pattern.code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK,
                               md.get(), context.get());
    GPTOSS_CHECK(rc > 0, "PCRE2 match failed at byte {} (code {}): every character should match",
                 pos, rc);
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    GPTOSS_CHECK(ov[0] == pos && ov[1] > ov[0], "PCRE2 skipped or returned an empty piece at {}",
                 pos);
    out.emplace_back(uint32_t(ov[0]), uint32_t(ov[1]));
    pos = ov[1];
  }
}

void bpe_piece(const Tokenizer& tokenizer, std::string_view piece, std::vector<TokenId>& out,
               int algorithm) {
  if (piece.empty()) return;
  MergeScratch scratch;
  encode_piece(tokenizer.data(), reinterpret_cast<const uint8_t*>(piece.data()), piece.size(),
               scratch, out, algorithm);
}

const char* unicode_version() { return kUnicodeVersion; }

}  // namespace detail
}  // namespace gptoss::tok
