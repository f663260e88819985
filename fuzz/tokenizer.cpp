// tokenizer.cpp — fuzz target: the o200k_harmony tokenizer (bundled ranks,
// loaded once). The first byte picks a mode; the rest is the payload:
//   0: text -> encode. Invariants: ids are mergeable, decode(encode(t)) ==
//   sanitize_utf8(t), and
//      the hand-written pre-tokenizer splits exactly as the PCRE2 pattern does
//      (where both Unicode versions agree, see below).
//   1: ids (3 bytes each, little-endian, reduced modulo vocab + 16 so some are
//   out of range) ->
//      decode and the streaming decoder. Invariant: the stream's text is valid
//      UTF-8 and equals sanitize_utf8 of the decoded bytes.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz/fuzz_targets.h"
#include "host/error.h"
#include "host/text/tokenizer.h"

namespace gptoss::fuzz {

namespace {

// True when every code point of valid UTF-8 `s` is below U+0800 or U+FFFD:
// there PCRE2's tables (Unicode 14, the oracle) and the scanner's (Unicode 16)
// agree. Above, newer code points differ by design (the fuzzer found U+31C71,
// CJK Extension H of Unicode 15: a letter for the scanner, unassigned for
// PCRE2; fuzz/regressions/tokenizer/unicode15_cjk_ext_h).
bool stable_across_unicode_versions(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b < 0xE0)
      continue; // ASCII, continuation bytes and 2-byte sequences (< U+0800)
    if (s.substr(i, 3) != "\xEF\xBF\xBD")
      return false; // only U+FFFD above U+07FF
    i += 2;
  }
  return true;
}

const tok::Tokenizer &shared_tokenizer() {
  static const tok::Tokenizer t = tok::Tokenizer::load_default();
  return t;
}
} // namespace

void tokenizer(Input data) {
  if (data.empty())
    return;
  const tok::Tokenizer &t = shared_tokenizer();
  const Input payload = data.subspan(1);
  if (data[0] % 2 == 0) {
    const std::string_view text(reinterpret_cast<const char *>(payload.data()),
                                payload.size());
    const std::vector<tok::TokenId> ids = t.encode(text);
    for (tok::TokenId id : ids)
      GPTOSS_FUZZ_REQUIRE(id < t.num_mergeable());
    const std::string clean = tok::sanitize_utf8(text);
    GPTOSS_FUZZ_REQUIRE(t.decode(ids) == clean);
    if (stable_across_unicode_versions(clean)) {
      std::vector<std::pair<uint32_t, uint32_t>> mine, pcre;
      tok::detail::split_pieces(clean, mine);
      tok::detail::split_pieces_pcre2(clean, pcre);
      GPTOSS_FUZZ_REQUIRE(mine == pcre);
    }
    return;
  }
  std::vector<tok::TokenId> ids;
  for (size_t i = 0; i + 3 <= payload.size(); i += 3) {
    const uint32_t v = payload[i] | (uint32_t{payload[i + 1]} << 8) |
                       (uint32_t{payload[i + 2]} << 16);
    ids.push_back(v % (t.vocab_size() + 16));
  }
  std::string bytes;
  try {
    bytes = t.decode(ids);
  } catch (const Error &) {
    for (tok::TokenId id : ids) {
      if (id >= t.vocab_size())
        return; // the expected rejection
    }
    GPTOSS_FUZZ_REQUIRE(!"decode threw on in-range ids");
  }
  tok::StreamDecoder stream(t);
  std::string text;
  for (tok::TokenId id : ids)
    stream.push(id, text);
  stream.flush(text);
  GPTOSS_FUZZ_REQUIRE(tok::is_valid_utf8(text));
  GPTOSS_FUZZ_REQUIRE(text == tok::sanitize_utf8(bytes));
}

} // namespace gptoss::fuzz

#ifdef GPTOSS_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gptoss::fuzz::tokenizer({data, size});
  return 0;
}
#endif
