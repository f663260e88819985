// conversation_json.h — a harmony conversation as JSON (chat's /save and /load):
//   {"format": "gptoss-chat-1", "developer": "...", "messages": [
//     {"role": "user", "content": "hi"},
//     {"role": "assistant", "channel": "final", "content": "hello"}, ...]}
// Loading also takes a bare array of messages. Roles: user, assistant, tool (system and developer
// are the conversation's settings, not messages); tool messages need "name". Untrusted input:
// every problem is a gptoss::Error naming the message and field (fuzz/conversation_json.cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "host/text/harmony.h"

namespace gptoss::tok {

struct SavedConversation {
  std::string developer;  // developer instructions ("" when none)
  std::vector<Message> messages;
};

std::string conversation_to_json(const SavedConversation& conversation);
SavedConversation conversation_from_json(std::string_view text);

}  // namespace gptoss::tok
