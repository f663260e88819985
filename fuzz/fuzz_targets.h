// fuzz_targets.h — the libFuzzer targets of issue #10, one function per parser
// that reads untrusted bytes. Each fuzz/<target>.cpp defines its function and,
// when built by fuzz/ with clang (-DGPTOSS_LIBFUZZER), the
// LLVMFuzzerTestOneInput that calls it; the normal build links the same
// functions into test_cpu, which replays fuzz/corpus/ and fuzz/regressions/
// (ctest "fuzz regressions ..."), so every input that once crashed stays a test
// without clang. Contract of a target: any input is fine; rejection is a
// gptoss::Error; a crash, a sanitizer report, any other exception or a broken
// invariant (std::abort via GPTOSS_FUZZ_REQUIRE) is a bug.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

namespace gptoss::fuzz {

using Input = std::span<const uint8_t>;

void safetensors_header(
    Input data); // converter/safetensors.cpp SafetensorsFile::parse
void config_json(Input data); // ModelConfig::from_json + plan_archive
void archive_loader(
    Input data);            // host/archive/archive.cpp MappedArchive::parse + verify
void tokenizer(Input data); // Tokenizer::encode / decode / StreamDecoder
void harmony_parser(Input data); // HarmonyStream over generated ids
void conversation_json(Input data); // chat's /load: conversation_from_json
void openai_request(Input data);    // serve: request bodies (host/server/openai.h)

struct Target {
  std::string_view
      name; // = the directory name under fuzz/corpus and fuzz/regressions
  void (*run)(Input);
};
inline constexpr Target kTargets[] = {
    {"safetensors_header", safetensors_header}, {"config_json", config_json},
    {"archive_loader", archive_loader},         {"tokenizer", tokenizer},
    {"harmony_parser", harmony_parser},
    {"conversation_json", conversation_json},
    {"openai_request", openai_request},
};

} // namespace gptoss::fuzz

// An invariant of a target (not input validation): abort so libFuzzer keeps the
// input.
#define GPTOSS_FUZZ_REQUIRE(cond)                                              \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "fuzz invariant failed: %s at %s:%d\n", #cond,      \
                   __FILE__, __LINE__);                                        \
      std::abort();                                                            \
    }                                                                          \
  } while (0)
