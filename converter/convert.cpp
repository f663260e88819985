// convert.cpp — checkpoint -> archive: format checks, tokenizer selection (bundled o200k_base
// verified by sha256, the checkpoint's tokenizer.json, or --tokenizer), then the streaming write.
#include "converter/convert.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <fstream>
#include <nlohmann/json.hpp>

#include "converter/checkpoint.h"
#include "host/data_files.h"  // o200k_base_candidates, kO200kBaseSha256, read_file
#include "host/error.h"
#include "host/fp8_weights.h"
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

PieceSource fp8_quantizing_source(const PieceSource& canonical) {
  // The last quantized weight: the writer asks for a weight, then for its scales, and is done
  // with both before it asks for the next tensor, so one cached tensor is enough.
  struct Cache {
    std::string name;
    std::vector<bf16_bits> bf16;
    std::vector<uint8_t> codes;
    std::vector<float> scales;
  };
  auto cache = std::make_shared<Cache>();
  return [canonical, cache](const TensorSpec& spec) -> std::vector<std::span<const std::byte>> {
    std::string name;
    if (!fp8_quantized_from(spec, &name)) return canonical(spec);
    if (cache->name != name) {
      GPTOSS_CHECK(spec.dtype == DType::kF8E4M3,
                   "internal: the scales {} were asked for before their weight", spec.name);
      const TensorSpec weight{name, DType::kBF16, spec.shape};
      const int64_t rows = spec.shape.at(0), cols = spec.shape.at(1);
      cache->name.clear();
      cache->bf16.resize(weight.num_elements());
      auto* dst = reinterpret_cast<std::byte*>(cache->bf16.data());
      for (const auto& piece : canonical(weight)) {
        GPTOSS_CHECK(dst + piece.size() <= reinterpret_cast<std::byte*>(cache->bf16.data() +
                                                                        cache->bf16.size()),
                     "tensor {}: the source has more bytes than its shape", name);
        std::memcpy(dst, piece.data(), piece.size());
        dst += piece.size();
      }
      GPTOSS_CHECK(dst == reinterpret_cast<std::byte*>(cache->bf16.data() + cache->bf16.size()),
                   "tensor {}: the source has fewer bytes than its shape", name);
      cache->codes.resize(size_t(rows * cols));
      cache->scales.resize(size_t(rows));
      quantize_rows_fp8(cache->bf16.data(), rows, cols, cache->codes.data(), cache->scales.data());
      cache->bf16 = {};
      cache->name = name;
    }
    if (spec.dtype == DType::kF8E4M3) return {std::as_bytes(std::span(cache->codes))};
    return {std::as_bytes(std::span(cache->scales))};
  };
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
  const PieceSource source = fp8_quantizing_source(
      [&](const TensorSpec& spec) { return ckpt.canonical_pieces(spec); });
  return write_archive(options.output, plan, source, tokenizer, write);
}

}  // namespace gptoss::conv
