// archive.h — MappedArchive: a .gptoss archive mapped read-only (RAII) and validated before use
// (magic, header checksum, version, layout id, directory checksum, bounds, alignment, overlaps,
// sizes, and the tensor list against archive_tensors(config, formats)); lookup by canonical name.
// Every load also runs the quick check (the tokenizer blob's checksum and each tensor's sampled
// checksum, a few MB); the full blob checksums are checked on request (verify()). Nothing is read
// outside the mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "host/archive/archive_format.h"
#include "host/model_config.h"
#include "host/tensor_spec.h"
#include "host/weights_view.h"

namespace gptoss {

class MappedFile;

std::string_view expert_format_name(archive::ExpertFormat f);        // "mxfp4"
std::string_view tokenizer_format_name(archive::TokenizerFormat f);  // "none", "tiktoken", ...

// Conversions between ModelConfig and its fixed-size on-disk record.
archive::ConfigRecord to_config_record(const ModelConfig& config);
ModelConfig from_config_record(const archive::ConfigRecord& record);

struct ArchiveTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // absolute file offset
  uint64_t num_bytes = 0;
  uint64_t xxh64 = 0;
  uint32_t sample_xxh32 = 0;  // meaningful when the archive has sampled checksums
};

// The sampled checksum of one blob (archive_format.h, kFlagSampledChecksums), fed in order with
// the blob's bytes or any part of them: only the first and last kSampleBytes count.
class SampleHasher {
 public:
  explicit SampleHasher(uint64_t num_bytes);
  ~SampleHasher();
  SampleHasher(const SampleHasher&) = delete;
  SampleHasher& operator=(const SampleHasher&) = delete;
  // `data` holds the blob's bytes [pos, pos + n); calls come with increasing pos.
  void update(uint64_t pos, const std::byte* data, uint64_t n);
  uint32_t digest32() const;
  // The whole computation over a blob in memory (reads at most 2 x kSampleBytes).
  static uint32_t of(std::span<const std::byte> blob);

 private:
  uint64_t head_end_, tail_begin_, end_;
  void* state_;  // XXH64_state_t
};

// How much MappedArchive::open / parse check beyond the structure: kQuick (the default) also
// checks the tokenizer blob's checksum and every tensor's sampled checksum, and refuses the file
// on a mismatch; kStructure stops after the structure (info, which reports damage itself).
enum class LoadCheck { kStructure, kQuick };

struct VerifyProgress {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  double seconds = 0;
};

struct VerifyResult {
  std::vector<std::string> mismatched;  // tensor names (and "<tokenizer>") whose XXH64 differ
  uint64_t bytes_checked = 0;
  double seconds = 0;
  bool ok() const { return mismatched.empty(); }
};

// The file an archive's mapping shows: its path, where the mapping starts, its size.
struct WeightsFile {
  std::filesystem::path path;
  const std::byte* base = nullptr;
  uint64_t size = 0;
};

class MappedArchive {
 public:
  // Maps and validates `path`; throws gptoss::Error naming the problem (with a hint).
  static MappedArchive open(const std::filesystem::path& path,
                            LoadCheck check = LoadCheck::kQuick);
  // Validates an in-memory image; `label` names it in messages. `keepalive` owns the bytes.
  static MappedArchive parse(std::shared_ptr<const void> keepalive,
                             std::span<const std::byte> file_bytes, const std::string& label,
                             LoadCheck check = LoadCheck::kQuick);

  const std::string& label() const { return label_; }
  const ModelConfig& config() const { return config_; }
  const WeightFormats& formats() const { return formats_; }
  uint32_t format_version() const { return header_.format_version; }
  uint32_t layout_id() const { return header_.layout_id; }
  uint64_t file_bytes() const { return bytes_.size(); }

  const std::vector<ArchiveTensor>& entries() const { return entries_; }
  const ArchiveTensor* find(std::string_view name) const;  // nullptr if absent
  // The tensor's bytes inside the mapping; throws gptoss::Error if absent.
  std::span<const std::byte> tensor(std::string_view name) const;
  // The archive file behind the mapping (`bench load` reads it); empty for in-memory images.
  std::optional<WeightsFile> weights_file() const;
  // bind_weights(config(), lookup(), formats()): what the engines take.
  ModelWeights weights() const;
  // For bind_weights(): checks dtype and shape against the requested spec. The returned
  // function keeps the mapping alive by itself (it may outlive or survive moving this object).
  TensorLookup lookup() const;

  archive::TokenizerFormat tokenizer_format() const;
  std::span<const std::byte> tokenizer_blob() const;  // empty when none
  std::string tokenizer_sha256_hex() const;           // empty when none

  // Whether the directory carries sampled checksums (archives converted before they existed
  // do not; their quick check covers the tokenizer only).
  bool has_sampled_checksums() const;
  // The quick check: the tokenizer blob's XXH64 and each tensor's sampled checksum. Reads the
  // tokenizer and 2 x 64 KiB per tensor (mismatched names as in verify()).
  VerifyResult quick_check() const;
  // Throws gptoss::Error naming what quick_check() found, if anything.
  void require_quick_check() const;

  // Recomputes every blob checksum (and the tokenizer's); pages are released as it goes.
  VerifyResult verify(const std::function<void(const VerifyProgress&)>& progress = {}) const;

 private:
  MappedArchive() = default;
  std::shared_ptr<const void> keepalive_;
  bool file_backed_ = false;  // pages may be dropped with madvise (never for heap images)
  std::filesystem::path path_;  // the file, when file-backed
  std::span<const std::byte> bytes_;
  std::string label_;
  archive::Header header_{};
  ModelConfig config_;
  WeightFormats formats_;
  std::vector<ArchiveTensor> entries_;
  std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace gptoss
