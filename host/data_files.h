// data_files.h — the data the binary ships with (data/ in the source tree) and reading files whole.
// One candidate list and one checksum for the o200k_base ranks: the tokenizer (host/text/) loads
// them, the converter (converter/) embeds them in archives, `info` recognises them by sha256.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace gptoss {

// The bundled ranks file (data/o200k_base.tiktoken) and its published sha256 (FACTS.md 4.1).
inline constexpr std::string_view kO200kBaseFileName = "o200k_base.tiktoken";
inline constexpr std::string_view kO200kBaseSha256 =
    "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d";

// The folder of the running executable (/proc/self/exe); empty when unknown.
std::filesystem::path executable_dir();

// Where the bundled o200k_base.tiktoken is looked for, in order: $GPTOSS_DATA_DIR, next to the
// binary (and its data/, ../data/ and ../share/gptoss/), then the source tree's data/ (the
// compile-time GPTOSS_DATA_DIR). The first existing file wins.
std::vector<std::filesystem::path> o200k_base_candidates();
// The same places for any bundled file (e.g. data/accuracy_text.txt).
std::vector<std::filesystem::path> data_file_candidates(std::string_view name);

// The whole file; throws gptoss::Error naming the path if it cannot be read or is larger than
// max_bytes.
std::string read_file(const std::filesystem::path& path, uint64_t max_bytes = 1ull << 30);

}  // namespace gptoss
