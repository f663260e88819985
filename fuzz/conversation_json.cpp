// conversation_json.cpp — fuzz target: a conversation file for chat's /load
// (host/text/conversation_json.h). Invariants: an accepted conversation saves
// and loads back to the same messages, and renders in the harmony format
// without error (render_conversation_text; no tokenizer needed).
#include <string_view>

#include "fuzz/fuzz_targets.h"
#include "host/error.h"
#include "host/text/conversation_json.h"
#include "host/text/harmony.h"

namespace gptoss::fuzz {

void conversation_json(Input data) {
  const std::string_view text(reinterpret_cast<const char *>(data.data()),
                              data.size());
  tok::SavedConversation c;
  try {
    c = tok::conversation_from_json(text);
  } catch (const Error &) {
    return;
  }
  const tok::SavedConversation back =
      tok::conversation_from_json(tok::conversation_to_json(c));
  GPTOSS_FUZZ_REQUIRE(back.messages.size() == c.messages.size());
  for (size_t i = 0; i < c.messages.size(); ++i) {
    GPTOSS_FUZZ_REQUIRE(back.messages[i].role == c.messages[i].role);
    GPTOSS_FUZZ_REQUIRE(back.messages[i].channel == c.messages[i].channel);
    GPTOSS_FUZZ_REQUIRE(back.messages[i].author_name ==
                        c.messages[i].author_name);
  }
  tok::Conversation conv;
  conv.developer_instructions = c.developer;
  conv.messages = c.messages;
  try {
    (void)tok::render_conversation_text(conv);
  } catch (const Error &) {
    // harmony refuses some message combinations by name: fine.
  }
}

} // namespace gptoss::fuzz

#ifdef GPTOSS_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gptoss::fuzz::conversation_json({data, size});
  return 0;
}
#endif
