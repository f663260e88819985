// archive_format.h — the on-disk structures of a .gptoss archive (docs/ARCHIVE.md is the spec):
// a 4 KiB header, a directory of fixed-size tensor entries, an optional tokenizer blob, then
// 4 KiB-aligned tensor blobs. POD only, little-endian, sizes and offsets pinned by static_asserts;
// shared by the converter (writer) and host/archive/archive.cpp (loader); no GPU includes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "host/tensor_spec.h"

namespace gptoss::archive {

inline constexpr char kMagic[8] = {'G', 'P', 'T', 'O', 'S', 'S', 'A', 'R'};
// Bumped when the container changes (header fields, directory entry, section order).
inline constexpr uint32_t kFormatVersion = 1;
// Bumped whenever the kernel-facing tensor layout changes (tiling, fusion, orientation): an
// archive with another layout id is refused and must be re-converted.
inline constexpr uint32_t kLayoutId = 1;
inline constexpr uint64_t kAlignment = 4096;  // every section and tensor blob starts on 4 KiB
inline constexpr uint32_t kHeaderBytes = 4096;
inline constexpr uint32_t kEntryBytes = 128;
inline constexpr uint32_t kMaxLayers = 1024;  // ModelConfig::validate()'s limit
inline constexpr size_t kNameBytes = 64;      // NUL-padded; names are at most 63 bytes
inline constexpr int kMaxRank = 4;

// Header flags. Unknown bits are ignored by readers (they were reserved and zero before), so an
// archive with a flag stays readable by older builds of the same format version.
// kFlagSampledChecksums: every directory entry's sample_xxh32 holds the low 32 bits of the XXH64
// of the blob's first and last kSampleBytes (the bytes [0, min(n, S)) then [max(S, n - S), n)),
// checked on every load: a cheap default check of the weights that `info --verify` completes.
inline constexpr uint32_t kFlagSampledChecksums = 1u << 0;
inline constexpr uint64_t kSampleBytes = 64 * 1024;

// The embedded tokenizer section: none, the raw tiktoken ranks file (o200k_base), or a
// Hugging Face tokenizer.json. The bytes are stored verbatim; the tokenizer module parses them.
enum class TokenizerFormat : uint8_t { kNone = 0, kTiktoken = 1, kHfTokenizerJson = 2 };

// The model configuration (FACTS.md section 1), every ModelConfig field.
struct ConfigRecord {
  int32_t num_layers;
  int32_t num_experts;
  int32_t experts_per_token;
  int32_t vocab_size;
  int32_t hidden;
  int32_t intermediate;
  int32_t num_heads;
  int32_t num_kv_heads;
  int32_t head_dim;
  int32_t sliding_window;
  int32_t initial_context_length;
  int32_t max_context;
  double rope_theta;
  double rope_scaling_factor;
  double rope_ntk_alpha;  // beta_slow
  double rope_ntk_beta;   // beta_fast
  float rms_norm_eps;
  float swiglu_limit;
  uint8_t layer_sliding[kMaxLayers];  // [num_layers] 1 = sliding window, 0 = full; rest zero
};
static_assert(sizeof(ConfigRecord) == 1112);
static_assert(offsetof(ConfigRecord, rope_theta) == 48);
static_assert(offsetof(ConfigRecord, rms_norm_eps) == 80);
static_assert(offsetof(ConfigRecord, layer_sliding) == 88);

struct Header {
  char magic[8];            // kMagic
  uint32_t format_version;  // kFormatVersion
  uint32_t layout_id;       // kLayoutId
  uint32_t header_bytes;    // kHeaderBytes
  uint32_t entry_bytes;     // kEntryBytes
  uint64_t file_bytes;      // the whole file; a shorter file is truncated
  uint64_t dir_offset;      // directory: num_tensors entries of entry_bytes each
  uint32_t num_tensors;
  uint32_t flags;  // kFlag* bits; 0 in archives written before the flags existed
  uint64_t dir_xxh64;         // XXH64 (seed 0) of the num_tensors * entry_bytes directory bytes
  uint64_t tokenizer_offset;  // 0 when tokenizer_format == kNone
  uint64_t tokenizer_bytes;
  uint64_t tokenizer_xxh64;
  uint8_t tokenizer_format;  // TokenizerFormat
  uint8_t attn_format;       // WeightFormat of qkv.weight and out.weight
  uint8_t lm_head_format;    // WeightFormat of lm_head.weight
  uint8_t expert_format;     // ExpertFormat
  uint32_t reserved1;
  uint8_t tokenizer_sha256[32];  // SHA-256 of the tokenizer blob (zero when none)
  uint64_t data_offset;          // first tensor blob
  uint64_t data_bytes;           // file_bytes - data_offset
  ConfigRecord config;
  uint8_t reserved2[kHeaderBytes - 1248 - 8];  // zero
  uint64_t header_xxh64;  // XXH64 (seed 0) of the header's first kHeaderBytes - 8 bytes
};
static_assert(sizeof(Header) == kHeaderBytes);
static_assert(offsetof(Header, file_bytes) == 24);
static_assert(offsetof(Header, tokenizer_format) == 80);
static_assert(offsetof(Header, tokenizer_sha256) == 88);
static_assert(offsetof(Header, data_offset) == 120);
static_assert(offsetof(Header, config) == 136);
static_assert(offsetof(Header, header_xxh64) == kHeaderBytes - 8);

struct TensorEntry {
  char name[kNameBytes];  // canonical name (host/tensor_spec.h), NUL-padded
  uint8_t dtype;          // DType enumerator value (pinned below)
  uint8_t rank;           // 1..kMaxRank
  uint16_t reserved0;
  uint32_t sample_xxh32;    // with kFlagSampledChecksums: see SampleHasher (host/archive/archive.h)
  int64_t shape[kMaxRank];  // first `rank` dims, the rest zero
  uint64_t offset;          // absolute file offset, a multiple of kAlignment
  uint64_t num_bytes;       // = product(shape) * dtype size
  uint64_t xxh64;           // XXH64 (seed 0) of the blob's num_bytes bytes
};
static_assert(sizeof(TensorEntry) == kEntryBytes);
static_assert(offsetof(TensorEntry, shape) == 72);
static_assert(offsetof(TensorEntry, offset) == 104);

// The stored dtype code is the DType enumerator value; these pins keep old archives readable.
static_assert(static_cast<uint8_t>(DType::kBF16) == 0);
static_assert(static_cast<uint8_t>(DType::kF32) == 2);
static_assert(static_cast<uint8_t>(DType::kU8) == 4);
static_assert(static_cast<uint8_t>(DType::kF8E4M3) == 13);

inline constexpr uint64_t align_up(uint64_t x) {
  return (x + kAlignment - 1) / kAlignment * kAlignment;
}

}  // namespace gptoss::archive
