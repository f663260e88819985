// archive_writer.h — plans and writes a .gptoss archive (docs/ARCHIVE.md) from any source of
// canonical tensor bytes (a checkpoint, an in-memory test model). Streams in bounded memory:
// bytes go straight from the source mapping to the file in chunks, consumed pages are released.
// Safe writing: a temporary file in the destination directory, renamed only when complete.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "host/archive/archive.h"
#include "host/archive/archive_format.h"
#include "host/model_config.h"
#include "host/tensor_spec.h"

namespace gptoss::conv {

struct TokenizerBlob {
  archive::TokenizerFormat format = archive::TokenizerFormat::kNone;
  std::vector<std::byte> bytes;
  std::string source;  // where it came from, for messages only (never stored in the archive)
};

// Where everything goes. The writer and --dry-run both use it, so the plan is the file.
struct ArchivePlan {
  ModelConfig config;
  WeightFormats formats;
  std::vector<TensorSpec> tensors;  // archive_tensors(config, formats), archive order
  std::vector<uint64_t> offsets;    // [tensors] absolute file offsets
  uint64_t dir_offset = 0;
  uint64_t tokenizer_offset = 0;  // 0 when there is no tokenizer
  uint64_t tokenizer_bytes = 0;
  uint64_t data_offset = 0;
  uint64_t tensor_bytes = 0;  // sum of tensor sizes (no padding)
  uint64_t file_bytes = 0;
};
ArchivePlan plan_archive(const ModelConfig& config, const WeightFormats& formats,
                         uint64_t tokenizer_bytes);

// The pieces (in order) whose concatenation is the bytes of `spec` (Checkpoint::canonical_pieces).
using PieceSource = std::function<std::vector<std::span<const std::byte>>(const TensorSpec&)>;

struct WriteProgress {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  double seconds = 0;
};

struct ScaleOverflow {
  std::string tensor;
  uint64_t count = 0;  // E8M0 scale bytes in 253..255 (overflow BF16 on dequantization, or NaN)
};

struct WriteOptions {
  bool strict = false;  // scale bytes 253..255 are an error instead of a warning
  bool force = false;   // replace an existing destination file
  // madvise(MADV_DONTNEED) source pages once copied: only for file mappings (on heap memory it
  // would discard the data).
  bool release_source_pages = false;
  bool handle_signals = true;  // SIGINT/SIGTERM stop the copy and remove the temporary file
  std::function<void(const WriteProgress&)> progress;  // after every chunk
  std::function<void(const std::string&)> warn;        // one line per warning
  // Test hooks: pretend the destination has this many free bytes; fail after this many bytes.
  std::optional<uint64_t> free_bytes_override;
  std::optional<uint64_t> fail_after_bytes;
};

struct WriteResult {
  uint64_t file_bytes = 0;
  uint64_t bytes_copied = 0;  // tensor + tokenizer bytes
  double seconds = 0;
  std::vector<ScaleOverflow> scale_overflows;
};

// Free bytes for an unprivileged user on the filesystem holding `dir` (statvfs).
uint64_t free_bytes_at(const std::filesystem::path& dir);

// Writes the archive described by `plan` to `out`; throws gptoss::Error (leaving no file behind)
// on any problem, on an interrupt, or when the destination lacks space (checked before writing).
WriteResult write_archive(const std::filesystem::path& out, const ArchivePlan& plan,
                          const PieceSource& source, const TokenizerBlob& tokenizer,
                          const WriteOptions& options);

}  // namespace gptoss::conv
