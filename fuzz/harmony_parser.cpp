// harmony_parser.cpp — fuzz target: HarmonyStream over generated ids. The input
// is read as a little token language so that headers and channels are reachable
// by mutation:
//   0xE0..0xFF: the special id 199998 + (byte - 0xE0) (<|startoftext|> ..
//   <|reserved_200029|>); 0xDF b0 b1 b2: a raw id (24-bit little-endian, modulo
//   vocab + 16: some are out of range); other bytes: text, encoded with the
//   tokenizer when a special or a raw id ends the run.
// Invariants: every delta and every message's content is valid UTF-8, and once
// a stop token was seen the stream stays done.
#include <string>
#include <vector>

#include "fuzz/fuzz_targets.h"
#include "host/error.h"
#include "host/text/harmony.h"
#include "host/text/tokenizer.h"

namespace gptoss::fuzz {

namespace {
const tok::Tokenizer &shared_tokenizer() {
  static const tok::Tokenizer t = tok::Tokenizer::load_default();
  return t;
}
} // namespace

void harmony_parser(Input data) {
  const tok::Tokenizer &t = shared_tokenizer();
  std::vector<tok::TokenId> ids;
  std::string text;
  auto flush_text = [&] {
    if (text.empty())
      return;
    t.encode_into(text, ids);
    text.clear();
  };
  for (size_t i = 0; i < data.size(); ++i) {
    const uint8_t b = data[i];
    if (b >= 0xE0) {
      flush_text();
      ids.push_back(tok::kNumMergeable + (b - 0xE0));
    } else if (b == 0xDF && i + 3 < data.size()) {
      flush_text();
      const uint32_t v = data[i + 1] | (uint32_t{data[i + 2]} << 8) |
                         (uint32_t{data[i + 3]} << 16);
      ids.push_back(v % (t.vocab_size() + 16));
      i += 3;
    } else {
      text.push_back(static_cast<char>(b));
    }
  }
  flush_text();

  tok::HarmonyStream stream(t);
  bool was_done = false;
  for (tok::TokenId id : ids) {
    try {
      const tok::HarmonyDelta d = stream.push(id);
      GPTOSS_FUZZ_REQUIRE(tok::is_valid_utf8(d.text));
      GPTOSS_FUZZ_REQUIRE(!was_done || d.done);
      was_done = d.done;
    } catch (const Error &) {
      GPTOSS_FUZZ_REQUIRE(id >= t.vocab_size()); // the only rejection
    }
  }
  stream.finish();
  for (const tok::ParsedMessage &m : stream.messages()) {
    GPTOSS_FUZZ_REQUIRE(tok::is_valid_utf8(m.content));
  }
}

} // namespace gptoss::fuzz

#ifdef GPTOSS_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gptoss::fuzz::harmony_parser({data, size});
  return 0;
}
#endif
