// convert.cpp — checkpoint -> archive: format checks, tokenizer selection (bundled o200k_base
// verified by sha256, the checkpoint's tokenizer.json, or --tokenizer), then the streaming write.
#include "converter/convert.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "converter/checkpoint.h"
#include "host/data_files.h"  // o200k_base_candidates, kO200kBaseSha256, read_file
#include "host/error.h"
#include "host/sha256.h"

namespace gptoss::conv {
namespace {

namespace fs = std::filesystem;
namespace ar = archive;

constexpr uint64_t kMaxTokenizerBytes = 1ull << 30;

std::vector<std::byte> read_tokenizer_file(const fs::path& path) {
  const std::string text = read_file(path, kMaxTokenizerBytes);
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  return std::vector<std::byte>(p, p + text.size());
}

// Every non-empty line is "<base64 token> <decimal rank>" (the tiktoken ranks format).
bool looks_like_tiktoken(std::string_view text) {
  size_t lines = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string_view::npos || sp + 1 == line.size()) return false;
    for (char c : line.substr(0, sp)) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') {
        return false;
      }
    }
    for (char c : line.substr(sp + 1)) {
      if (c < '0' || c > '9') return false;
    }
    ++lines;
  }
  return lines > 0;
}

bool looks_like_json_object(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || text[first] != '{') return false;
  return nlohmann::json::accept(text);
}

std::string sha256_hex(const std::vector<std::byte>& bytes) {
  return Sha256::hex(Sha256::digest(bytes));
}

}  // namespace

TokenizerBlob load_tokenizer_file(const fs::path& path) {
  TokenizerBlob blob;
  blob.bytes = read_tokenizer_file(path);
  blob.source = path.string();
  const std::string_view text(reinterpret_cast<const char*>(blob.bytes.data()), blob.bytes.size());
  const std::string ext = path.extension().string();
  const bool is_json = looks_like_json_object(text);
  const bool is_tiktoken = !is_json && looks_like_tiktoken(text);
  if (ext == ".json" && !is_json) {
    throw Error(
        fmt::format("tokenizer {} has a .json name but is not a JSON object", path.string()),
        "pass a Hugging Face tokenizer.json or a tiktoken ranks file");
  }
  if (ext == ".tiktoken" && !is_tiktoken) {
    throw Error(fmt::format("tokenizer {} has a .tiktoken name but its lines are not "
                            "'<base64> <rank>'",
                            path.string()),
                "pass the o200k_base.tiktoken ranks file or a Hugging Face tokenizer.json");
  }
  if (is_json) {
    blob.format = ar::TokenizerFormat::kHfTokenizerJson;
  } else if (is_tiktoken) {
    blob.format = ar::TokenizerFormat::kTiktoken;
  } else {
    throw Error(fmt::format("cannot tell the format of tokenizer {}: neither a JSON object nor "
                            "tiktoken ranks",
                            path.string()),
                "pass the o200k_base.tiktoken ranks file or a Hugging Face tokenizer.json");
  }
  return blob;
}

TokenizerBlob default_tokenizer(const fs::path& checkpoint_tokenizer_json,
                                const std::function<void(const std::string&)>& warn) {
  std::error_code ec;
  for (const fs::path& candidate : o200k_base_candidates()) {
    if (!fs::is_regular_file(candidate, ec)) continue;
    TokenizerBlob blob;
    blob.bytes = read_tokenizer_file(candidate);
    blob.source = candidate.string();
    blob.format = ar::TokenizerFormat::kTiktoken;
    const std::string sha = sha256_hex(blob.bytes);
    if (sha != kO200kBaseSha256) {
      throw Error(fmt::format("{} has sha256 {}, expected {} (o200k_base)", candidate.string(), sha,
                              kO200kBaseSha256),
                  "restore the file (git checkout data/o200k_base.tiktoken), or pass "
                  "--tokenizer PATH");
    }
    return blob;
  }
  if (!checkpoint_tokenizer_json.empty() && fs::is_regular_file(checkpoint_tokenizer_json, ec)) {
    if (warn) {
      warn(fmt::format("{} not found; embedding the checkpoint's {} instead", kO200kBaseFileName,
                       checkpoint_tokenizer_json.string()));
    }
    TokenizerBlob blob = load_tokenizer_file(checkpoint_tokenizer_json);
    return blob;
  }
  throw Error(fmt::format("no tokenizer to embed: {} was not found (looked in $GPTOSS_DATA_DIR, "
                          "the build's data directory and next to the binary) and the "
                          "checkpoint has no tokenizer.json",
                          kO200kBaseFileName),
              "pass --tokenizer PATH, or --no-tokenizer for an archive without one");
}

void check_formats_supported(const WeightFormats& formats) {
  if (formats.attn == ar::WeightFormat::kFP8) {
    throw Error(
        "--attn fp8 is not supported yet: FP8 attention weights (E4M3 + per-row scales) "
        "come with the FP8 weight path, not written yet (docs/ARCHIVE.md section 4 defines the format)",
        "convert with --attn bf16 (the default); the archive format already reserves "
        "fp8, so only the converter's quantization is missing");
  }
  if (formats.lm_head == ar::WeightFormat::kFP8) {
    throw Error(
        "--lm-head fp8 is not supported yet: the FP8 LM head (E4M3 + per-row scales) "
        "comes with the FP8 weight path, not written yet (docs/ARCHIVE.md section 4 defines the format)",
        "convert with --lm-head bf16 (the default); the archive format already reserves "
        "fp8, so only the converter's quantization is missing");
  }
}

TokenizerBlob select_tokenizer(const ConvertOptions& options,
                               const fs::path& checkpoint_tokenizer_json) {
  if (options.no_tokenizer) {
    GPTOSS_CHECK(!options.tokenizer, "--tokenizer and --no-tokenizer exclude each other");
    return {};
  }
  if (options.tokenizer) {
    TokenizerBlob blob = load_tokenizer_file(*options.tokenizer);
    if (blob.format == ar::TokenizerFormat::kTiktoken && options.write.warn) {
      if (const std::string sha = sha256_hex(blob.bytes); sha != kO200kBaseSha256) {
        options.write.warn(
            fmt::format("{} is not the o200k_base ranks file (sha256 {}); gpt-oss "
                        "uses o200k_base",
                        options.tokenizer->string(), sha));
      }
    }
    return blob;
  }
  return default_tokenizer(checkpoint_tokenizer_json, options.write.warn);
}

WriteResult convert_checkpoint(const ConvertOptions& options) {
  check_formats_supported(options.formats);
  const std::string ext = options.output.extension().string();
  if (ext == ".safetensors" || ext == ".json") {
    throw Error(fmt::format("refusing to write an archive to {} (a checkpoint file name)",
                            options.output.string()),
                "name the output FILE.gptoss");
  }
  const Checkpoint ckpt = Checkpoint::open(options.checkpoint, options.prefer_original);
  const TokenizerBlob tokenizer = select_tokenizer(options, ckpt.tokenizer_json());
  if (options.check_tokenizer && !tokenizer.bytes.empty()) {
    options.check_tokenizer(tokenizer, ckpt.config());
  }
  const ArchivePlan plan = plan_archive(ckpt.config(), options.formats, tokenizer.bytes.size());
  WriteOptions write = options.write;
  write.release_source_pages = true;  // the pieces live in the checkpoint's file mappings
  return write_archive(
      options.output, plan, [&](const TensorSpec& spec) { return ckpt.canonical_pieces(spec); },
      tokenizer, write);
}

}  // namespace gptoss::conv
