// convert.h — `gptoss convert`: a gpt-oss checkpoint (HF or original/ layout) -> one .gptoss
// archive, plus the tokenizer to embed and the --dry-run plan. The output depends only on the
// weights, the formats and the tokenizer bytes (never on the source layout or paths), so both
// checkpoint layouts of the same weights give byte-identical archives.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "converter/archive_writer.h"
#include "host/archive/archive.h"

namespace gptoss::conv {

// Reads a tokenizer file and tags it: "tiktoken" (lines of "<base64> <rank>") or
// "hf-tokenizer-json" (a JSON object), from the extension (.tiktoken / .json) checked against
// the content, or from the content alone. Throws gptoss::Error naming the file otherwise.
TokenizerBlob load_tokenizer_file(const std::filesystem::path& path);

// The default tokenizer: the bundled o200k_base ranks (sha256-verified; a mismatch is an error),
// else the checkpoint's tokenizer.json (`checkpoint_tokenizer_json`, may be empty), else an
// error with a hint. `warn` receives a line when falling back.
TokenizerBlob default_tokenizer(const std::filesystem::path& checkpoint_tokenizer_json,
                                const std::function<void(const std::string&)>& warn);

// The archive tensors' bytes from a source of canonical (checkpoint) tensors: FP8 weights and
// their "_scale" tensors (fp8_quantized_from) are quantized from the canonical BF16 weight
// (host/fp8_weights.h) into memory owned by the returned source, valid until it is asked for
// another FP8 weight; every other tensor is passed through. The writer asks in archive order.
PieceSource fp8_quantizing_source(const PieceSource& canonical);

struct ConvertOptions {
  std::filesystem::path checkpoint;  // the checkpoint directory (HF top level or original/)
  std::filesystem::path output;
  WeightFormats formats;
  std::optional<std::filesystem::path> tokenizer;  // overrides the default tokenizer
  bool no_tokenizer = false;                       // embed no tokenizer section
  bool prefer_original = false;                    // read original/ even when HF files exist
  WriteOptions write;
  // Called with the selected tokenizer and the checkpoint's config before anything is written
  // (the CLI parses the tokenizer there and warns when its vocabulary differs from the model's;
  // the converter itself does not parse tokenizers). May throw to refuse.
  std::function<void(const TokenizerBlob&, const ModelConfig&)> check_tokenizer;
};

// Validates the checkpoint, picks the tokenizer, plans and writes the archive.
WriteResult convert_checkpoint(const ConvertOptions& options);

// The tokenizer the options select (shared by convert and --dry-run).
TokenizerBlob select_tokenizer(const ConvertOptions& options,
                               const std::filesystem::path& checkpoint_tokenizer_json);

}  // namespace gptoss::conv
