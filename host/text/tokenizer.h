// tokenizer.h — o200k_harmony, the gpt-oss tokenizer: byte-level BPE with tiktoken semantics
// (FACTS.md section 4.1). Text -> ids never yields special tokens (the harmony renderer inserts
// them); ids -> bytes decodes everything, specials as their text. Thread-safe after loading;
// copies share the loaded tables. Invalid UTF-8 input is replaced by U+FFFD (maximal subparts,
// as Python's errors='replace') before encoding; the caller can ask how many were replaced.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gptoss::tok {

using TokenId = uint32_t;

// o200k_harmony layout: ranks 0..199997 are mergeable byte sequences, the rest are specials.
inline constexpr TokenId kNumMergeable = 199998;
inline constexpr TokenId kVocabSize = 201088;
inline constexpr TokenId kStartOfText = 199998;
inline constexpr TokenId kEndOfText = 199999;
inline constexpr TokenId kReturn = 200002;     // stop: final answer done
inline constexpr TokenId kConstrain = 200003;  // tool-call data type marker
inline constexpr TokenId kChannel = 200005;
inline constexpr TokenId kStart = 200006;
inline constexpr TokenId kEnd = 200007;  // ends a message; NOT a stop token
inline constexpr TokenId kMessage = 200008;
inline constexpr TokenId kCall = 200012;  // stop: tool call
inline constexpr TokenId kEndOfPrompt = 200018;

// Format tags of a tokenizer blob embedded in an archive.
inline constexpr std::string_view kBlobFormatTiktoken = "tiktoken";
inline constexpr std::string_view kBlobFormatHfJson = "hf-tokenizer-json";

// The name of special id `id` in the built-in o200k_harmony table (<|start|>, <|reserved_200000|>,
// ...). Precondition: kNumMergeable <= id < kVocabSize.
std::string default_special_name(TokenId id);

class Tokenizer {
 public:
  // The bundled o200k_base ranks + built-in specials: the first of o200k_base_candidates()
  // (host/data_files.h) that exists; checks its sha256.
  static Tokenizer load_default();
  // A .tiktoken ranks file or an HF tokenizer.json (chosen by content).
  static Tokenizer from_file(const std::string& path);
  // An archive's embedded tokenizer: format kBlobFormatTiktoken or kBlobFormatHfJson.
  static Tokenizer from_blob(std::string_view format, std::span<const std::byte> blob);
  // Ranks file bytes ("<base64 token> <rank>" per line) + the built-in o200k_harmony specials.
  static Tokenizer from_tiktoken(std::string_view ranks_file);
  // HF tokenizer.json: model.vocab (GPT-2 byte-to-unicode strings) gives the ranks, added_tokens
  // the specials; the merges list is implied by the ranks (tiktoken semantics) and not read.
  static Tokenizer from_hf_json(std::string_view json_text);

  // Ordinary text -> ids (no specials). If `num_replaced` is given it receives the number of
  // invalid UTF-8 sequences that were replaced by U+FFFD.
  std::vector<TokenId> encode(std::string_view text, size_t* num_replaced = nullptr) const;
  void encode_into(std::string_view text, std::vector<TokenId>& out,
                   size_t* num_replaced = nullptr) const;
  // Ids -> bytes; specials as their text. Throws gptoss::Error on an out-of-range id. The result
  // is the exact byte string (it may be invalid UTF-8 when cut mid-character).
  std::string decode(std::span<const TokenId> ids) const;
  // The bytes of one id (a special's text for specials). Throws on an out-of-range id.
  std::string_view token_bytes(TokenId id) const;

  bool is_special(TokenId id) const { return id >= num_mergeable_ && id < vocab_size_; }
  std::optional<TokenId> special_id(std::string_view text) const;  // "<|start|>" -> 200006
  // The id of an exact byte sequence, if it is one mergeable token.
  std::optional<TokenId> rank_of(std::string_view bytes) const;
  TokenId vocab_size() const { return vocab_size_; }
  TokenId num_mergeable() const { return num_mergeable_; }
  // Throws gptoss::Error naming `id` (with a hint) unless id < vocab_size().
  void check_id(TokenId id) const;
  // The ranks in .tiktoken form (what an archive should embed: compact and fast to load).
  std::string to_tiktoken() const;

  struct Data;  // the loaded tables (tokenizer.cpp)
  const Data& data() const { return *data_; }

 private:
  explicit Tokenizer(std::shared_ptr<const Data> data);
  std::shared_ptr<const Data> data_;
  TokenId num_mergeable_ = 0;
  TokenId vocab_size_ = 0;
};

// ---- UTF-8
// ---------------------------------------------------------------------------------------
bool is_valid_utf8(std::string_view s);
// Replaces each maximal invalid subpart by U+FFFD (the Unicode/WHATWG/Python 'replace' rule).
std::string sanitize_utf8(std::string_view s, size_t* num_replaced = nullptr);

// Incremental ids -> text for streaming output. The bytes of a token that end inside a UTF-8
// sequence are held until the sequence completes; invalid bytes become U+FFFD (never dropped);
// flush() at the end turns a held incomplete sequence into U+FFFD. Output is always valid UTF-8.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool render_specials = true)
      : tokenizer_(tokenizer), render_specials_(render_specials) {}
  // Appends the newly completed text to `out`; returns the number of bytes appended.
  size_t push(TokenId id, std::string& out);
  std::string push(TokenId id);
  // Appends raw bytes (e.g. a special's text or bytes from elsewhere) to the stream.
  size_t push_bytes(std::string_view bytes, std::string& out);
  size_t flush(std::string& out);
  std::string flush();
  bool has_pending() const { return num_needed_ != 0; }

 private:
  Tokenizer tokenizer_;
  bool render_specials_;
  // WHATWG decoder state: bytes of the current sequence seen so far and still needed.
  char pending_[4] = {};
  int num_pending_ = 0;
  int num_needed_ = 0;
  uint8_t lower_ = 0x80, upper_ = 0xBF;
};

namespace detail {
// Splits valid UTF-8 text into pre-tokenizer pieces (FACTS.md 4.1 regex), appending
// [begin, end) byte offsets. The hand-written scanner used by encode().
void split_pieces(std::string_view text, std::vector<std::pair<uint32_t, uint32_t>>& out);
// The same split done by PCRE2 (JIT) with the o200k pattern: the test oracle and bench baseline.
void split_pieces_pcre2(std::string_view text, std::vector<std::pair<uint32_t, uint32_t>>& out);
// BPE of one piece with a chosen merge algorithm (the tests check both give the same ids):
// 0 = automatic, 1 = linear scan (tiktoken's), 2 = heap + linked list (O(n log n)).
void bpe_piece(const Tokenizer& tokenizer, std::string_view piece, std::vector<TokenId>& out,
               int algorithm);
// Unicode version of the character-class table driving the scanner.
const char* unicode_version();
}  // namespace detail

}  // namespace gptoss::tok
