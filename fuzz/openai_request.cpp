// openai_request.cpp — fuzz target: a request body of `gptoss serve` (host/server/openai.h), parsed
// as a chat completion, a completion and a Responses API request. Contract: a refusal is an
// ApiError with a 4xx status and a message; an accepted request has max_tokens >= 1, valid
// sampling parameters, and (chat, responses) a conversation that renders in the harmony format or
// is refused by the renderer with a gptoss::Error.
#include <string_view>

#include "fuzz/fuzz_targets.h"
#include "host/error.h"
#include "host/sampling/sampler.h"
#include "host/server/openai.h"
#include "host/text/harmony.h"

namespace gptoss::fuzz {

void openai_request(Input data) {
  const std::string_view body(reinterpret_cast<const char *>(data.data()), data.size());
  using Parse = server::Job (*)(std::string_view, const server::Defaults &);
  for (Parse parse : {&server::parse_chat_request, &server::parse_completion_request,
                      &server::parse_responses_request}) {
    server::Job job;
    try {
      job = parse(body, server::Defaults{});
    } catch (const server::ApiError &e) {
      GPTOSS_FUZZ_REQUIRE(e.status >= 400 && e.status < 500);
      GPTOSS_FUZZ_REQUIRE(std::string_view(e.what()).size() > 0);
      continue;
    }
    GPTOSS_FUZZ_REQUIRE(job.max_tokens >= 1);
    sampling::validate(job.sampling);  // throws (a bug) when a bad value got through
    if (job.endpoint == server::Endpoint::kCompletions) {
      GPTOSS_FUZZ_REQUIRE(!job.prompt.empty() || !job.prompt_ids.empty());
      continue;
    }
    try {
      (void)tok::render_conversation_text(job.conversation);
    } catch (const Error &) {
      // harmony refuses some message combinations by name: fine.
    }
  }
}

} // namespace gptoss::fuzz

#ifdef GPTOSS_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gptoss::fuzz::openai_request({data, size});
  return 0;
}
#endif
