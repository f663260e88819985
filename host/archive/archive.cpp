// archive.cpp — MappedArchive: validation of a .gptoss image before any use, lookup, and the
// blob checksum pass. Every offset is checked against the mapping with overflow-safe arithmetic
// before it is dereferenced; docs/ARCHIVE.md lists the rules enforced here.
#include "host/archive/archive.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>
#define XXH_INLINE_ALL  // header-only xxHash (XXH64 streaming API)
#include <xxhash.h>

#include "host/error.h"
#include "host/mapped_file.h"
#include "host/sha256.h"

namespace gptoss {
namespace {

namespace ar = archive;

constexpr std::string_view kReconvertHint =
    "re-create the archive with this build: gptoss convert CKPT_DIR -o FILE.gptoss";
constexpr std::string_view kDamagedHint =
    "the file is damaged or incomplete (an interrupted copy?); re-run gptoss convert";

[[noreturn]] void fail(const std::string& label, const std::string& what,
                       std::string_view hint = kDamagedHint) {
  throw Error(fmt::format("{}: {}", label, what), std::string(hint));
}

// a + b <= limit without overflow.
bool fits(uint64_t offset, uint64_t size, uint64_t limit) {
  return offset <= limit && size <= limit - offset;
}

// Overflow-checked product of the dims times the element size; false on overflow.
bool checked_bytes(std::span<const int64_t> shape, size_t elem_size, uint64_t* out) {
  uint64_t n = elem_size;
  for (int64_t d : shape) {
    if (d <= 0) return false;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  *out = n;
  return true;
}

bool known_dtype(uint8_t code) { return code <= static_cast<uint8_t>(DType::kF8E5M2); }

std::string shape_str(std::span<const int64_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

}  // namespace

std::string_view expert_format_name(archive::ExpertFormat f) {
  return f == archive::ExpertFormat::kMXFP4 ? "mxfp4" : "unknown";
}

std::string_view tokenizer_format_name(archive::TokenizerFormat f) {
  switch (f) {
    case archive::TokenizerFormat::kNone:
      return "none";
    case archive::TokenizerFormat::kTiktoken:
      return "tiktoken";
    case archive::TokenizerFormat::kHfTokenizerJson:
      return "hf-tokenizer-json";
  }
  return "unknown";
}

archive::ConfigRecord to_config_record(const ModelConfig& c) {
  GPTOSS_CHECK(c.num_layers > 0 && c.num_layers <= static_cast<int>(ar::kMaxLayers),
               "num_layers {} does not fit the archive header (at most {})", c.num_layers,
               ar::kMaxLayers);
  archive::ConfigRecord r;
  std::memset(&r, 0, sizeof(r));
  r.num_layers = c.num_layers;
  r.num_experts = c.num_experts;
  r.experts_per_token = c.experts_per_token;
  r.vocab_size = c.vocab_size;
  r.hidden = c.hidden;
  r.intermediate = c.intermediate;
  r.num_heads = c.num_heads;
  r.num_kv_heads = c.num_kv_heads;
  r.head_dim = c.head_dim;
  r.sliding_window = c.sliding_window;
  r.initial_context_length = c.initial_context_length;
  r.max_context = c.max_context;
  r.rope_theta = c.rope_theta;
  r.rope_scaling_factor = c.rope_scaling_factor;
  r.rope_ntk_alpha = c.rope_ntk_alpha;
  r.rope_ntk_beta = c.rope_ntk_beta;
  r.rms_norm_eps = c.rms_norm_eps;
  r.swiglu_limit = c.swiglu_limit;
  for (int i = 0; i < c.num_layers; ++i) r.layer_sliding[i] = c.is_sliding(i) ? 1 : 0;
  return r;
}

ModelConfig from_config_record(const archive::ConfigRecord& r) {
  GPTOSS_CHECK(r.num_layers > 0 && r.num_layers <= static_cast<int32_t>(ar::kMaxLayers),
               "num_layers {} is out of range 1..{}", r.num_layers, ar::kMaxLayers);
  // The bounds of ModelConfig::validate(), checked here first so that the message names the raw
  // header value.
  constexpr int32_t kMaxDim = kMaxDimension;
  for (int32_t v : {r.hidden, r.intermediate, r.num_heads, r.num_kv_heads, r.head_dim,
                    r.sliding_window, r.initial_context_length, r.max_context}) {
    GPTOSS_CHECK(v > 0 && v <= kMaxDim, "a dimension ({}) is out of range 1..{}", v, kMaxDim);
  }
  GPTOSS_CHECK(int64_t{r.num_heads} * r.head_dim <= kMaxDim, "num_heads x head_dim exceeds {}",
               kMaxDim);
  ModelConfig c;
  c.num_layers = r.num_layers;
  c.num_experts = r.num_experts;
  c.experts_per_token = r.experts_per_token;
  c.vocab_size = r.vocab_size;
  c.hidden = r.hidden;
  c.intermediate = r.intermediate;
  c.num_heads = r.num_heads;
  c.num_kv_heads = r.num_kv_heads;
  c.head_dim = r.head_dim;
  c.sliding_window = r.sliding_window;
  c.initial_context_length = r.initial_context_length;
  c.max_context = r.max_context;
  c.rope_theta = r.rope_theta;
  c.rope_scaling_factor = r.rope_scaling_factor;
  c.rope_ntk_alpha = r.rope_ntk_alpha;
  c.rope_ntk_beta = r.rope_ntk_beta;
  c.rms_norm_eps = r.rms_norm_eps;
  c.swiglu_limit = r.swiglu_limit;
  c.layer_sliding.resize(static_cast<size_t>(r.num_layers));
  for (int i = 0; i < r.num_layers; ++i) {
    GPTOSS_CHECK(r.layer_sliding[i] <= 1, "layer {} has attention type {} (expected 0 or 1)", i,
                 r.layer_sliding[i]);
    c.layer_sliding[i] = r.layer_sliding[i];
  }
  c.validate();
  return c;
}

MappedArchive MappedArchive::open(const std::filesystem::path& path, LoadCheck check) {
  const std::string label = path.string();
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    throw Error(fmt::format("{}: no such file", label),
                "convert a checkpoint first: gptoss convert CKPT_DIR -o FILE.gptoss");
  }
  if (!std::filesystem::is_regular_file(status)) fail(label, "not a regular file", "");
  if (std::filesystem::file_size(path, ec) == 0 && !ec) fail(label, "the file is empty");
  std::shared_ptr<MappedFile> map = MappedFile::open(path);
  const std::span<const std::byte> bytes = map->bytes();
  MappedArchive a = parse(map, bytes, label, check);
  a.file_backed_ = true;
  a.path_ = path;
  return a;
}

ModelWeights MappedArchive::weights() const {
  return bind_weights(config_, lookup(), formats_);
}

std::optional<WeightsFile> MappedArchive::weights_file() const {
  if (!file_backed_) return std::nullopt;
  return WeightsFile{path_, bytes_.data(), bytes_.size()};
}

MappedArchive MappedArchive::parse(std::shared_ptr<const void> keepalive,
                                   std::span<const std::byte> bytes, const std::string& label,
                                   LoadCheck check) {
  MappedArchive a;
  a.keepalive_ = std::move(keepalive);
  a.bytes_ = bytes;
  a.label_ = label;
  const uint64_t size = bytes.size();

  // 1. Identity: the magic, then the header checksum before any field is interpreted (a flipped
  // bit in the version must read as damage, not as another format), then version and layout id.
  if (size < sizeof(ar::kMagic) || std::memcmp(bytes.data(), ar::kMagic, sizeof(ar::kMagic)) != 0) {
    fail(label, "not a gptoss archive (wrong magic bytes)",
         "convert a checkpoint with: gptoss convert CKPT_DIR -o FILE.gptoss");
  }
  if (size < sizeof(ar::Header)) {
    fail(label, fmt::format("the file is {} bytes, smaller than the {}-byte archive header", size,
                            sizeof(ar::Header)));
  }
  ar::Header& h = a.header_;
  std::memcpy(&h, bytes.data(), sizeof(h));
  const uint64_t header_sum = XXH64(bytes.data(), offsetof(ar::Header, header_xxh64), 0);
  if (header_sum != h.header_xxh64) {
    fail(label, "header checksum mismatch: the header is corrupted");
  }
  if (h.format_version != ar::kFormatVersion) {
    fail(label,
         fmt::format("archive format version {}, but this build reads version {}", h.format_version,
                     ar::kFormatVersion),
         kReconvertHint);
  }
  if (h.layout_id != ar::kLayoutId) {
    fail(label,
         fmt::format("archive tensor layout id {}, but this build's kernels need layout "
                     "id {}",
                     h.layout_id, ar::kLayoutId),
         kReconvertHint);
  }
  if (h.header_bytes != ar::kHeaderBytes || h.entry_bytes != ar::kEntryBytes) {
    fail(label, fmt::format("header size {} / entry size {} (expected {} / {})", h.header_bytes,
                            h.entry_bytes, ar::kHeaderBytes, ar::kEntryBytes));
  }

  // 2. Sections: the file size, then each section inside it, aligned, not overlapping.
  if (h.file_bytes != size) {
    fail(label, fmt::format("the file is {} bytes but its header says {}{}", size, h.file_bytes,
                            size < h.file_bytes ? " (truncated)" : " (trailing bytes)"));
  }
  struct Region {
    uint64_t begin, end;
    std::string what;
  };
  std::vector<Region> regions;
  regions.push_back({0, sizeof(ar::Header), "header"});
  auto section = [&](uint64_t offset, uint64_t num_bytes, const std::string& what) {
    if (offset % ar::kAlignment != 0) {
      fail(label,
           fmt::format("{} offset {} is not a multiple of {}", what, offset, ar::kAlignment));
    }
    if (!fits(offset, num_bytes, size)) {
      fail(label, fmt::format("{} [{}, +{}) lies outside the {}-byte file", what, offset, num_bytes,
                              size));
    }
    regions.push_back({offset, offset + num_bytes, what});
  };
  const uint64_t dir_bytes = uint64_t{h.num_tensors} * ar::kEntryBytes;
  section(h.dir_offset, dir_bytes, "tensor directory");
  const auto tok = static_cast<ar::TokenizerFormat>(h.tokenizer_format);
  if (tok != ar::TokenizerFormat::kNone && tok != ar::TokenizerFormat::kTiktoken &&
      tok != ar::TokenizerFormat::kHfTokenizerJson) {
    fail(label, fmt::format("unknown tokenizer format code {}", h.tokenizer_format));
  }
  if (tok == ar::TokenizerFormat::kNone) {
    if (h.tokenizer_offset != 0 || h.tokenizer_bytes != 0) {
      fail(label, "tokenizer section present but its format is 'none'");
    }
  } else {
    if (h.tokenizer_bytes == 0) fail(label, "empty tokenizer section");
    section(h.tokenizer_offset, h.tokenizer_bytes, "tokenizer section");
  }
  if (h.data_offset % ar::kAlignment != 0 || !fits(h.data_offset, h.data_bytes, size) ||
      h.data_offset + h.data_bytes != size) {
    fail(label, fmt::format("data section [{}, +{}) does not end the {}-byte file", h.data_offset,
                            h.data_bytes, size));
  }
  const uint64_t dir_sum = XXH64(bytes.data() + h.dir_offset, dir_bytes, 0);
  if (dir_sum != h.dir_xxh64) fail(label, "tensor directory checksum mismatch (corrupted)");

  // 3. Config and formats.
  try {
    a.config_ = from_config_record(h.config);
  } catch (const Error& e) {
    fail(label, fmt::format("invalid model config in the header: {}", e.what()));
  }
  if (h.attn_format > 1 || h.lm_head_format > 1 || h.expert_format != 0) {
    fail(label,
         fmt::format("unknown weight format codes (attention {}, lm head {}, experts {})",
                     h.attn_format, h.lm_head_format, h.expert_format),
         kReconvertHint);
  }
  a.formats_.attn = static_cast<ar::WeightFormat>(h.attn_format);
  a.formats_.lm_head = static_cast<ar::WeightFormat>(h.lm_head_format);
  a.formats_.experts = static_cast<ar::ExpertFormat>(h.expert_format);

  // 4. Directory entries.
  a.entries_.reserve(h.num_tensors);
  for (uint32_t i = 0; i < h.num_tensors; ++i) {
    ar::TensorEntry e;
    std::memcpy(&e, bytes.data() + h.dir_offset + uint64_t{i} * ar::kEntryBytes, sizeof(e));
    const size_t name_len = strnlen(e.name, ar::kNameBytes);
    if (name_len == 0 || name_len == ar::kNameBytes) {
      fail(label, fmt::format("directory entry {}: name is empty or not NUL-terminated", i));
    }
    std::string name(e.name, name_len);
    for (char c : name) {
      if (c < 0x21 || c > 0x7e) {
        fail(label, fmt::format("directory entry {}: name has a non-printable byte", i));
      }
    }
    if (!known_dtype(e.dtype)) {
      fail(label, fmt::format("tensor {}: unknown dtype code {}", name, e.dtype));
    }
    if (e.rank < 1 || e.rank > ar::kMaxRank) {
      fail(label,
           fmt::format("tensor {}: rank {} is out of range 1..{}", name, e.rank, ar::kMaxRank));
    }
    const auto dtype = static_cast<DType>(e.dtype);
    std::vector<int64_t> shape(e.shape, e.shape + e.rank);
    uint64_t expect_bytes = 0;
    if (!checked_bytes(shape, dtype_size(dtype), &expect_bytes)) {
      fail(label, fmt::format("tensor {}: invalid shape {}", name, shape_str(shape)));
    }
    if (expect_bytes != e.num_bytes) {
      fail(label, fmt::format("tensor {}: {} bytes, but {} {} needs {}", name, e.num_bytes,
                              dtype_name(dtype), shape_str(shape), expect_bytes));
    }
    if (e.offset < h.data_offset) {
      fail(label, fmt::format("tensor {}: offset {} lies before the data section ({})", name,
                              e.offset, h.data_offset));
    }
    section(e.offset, e.num_bytes, "tensor " + name);
    if (!a.index_.emplace(name, a.entries_.size()).second) {
      fail(label, fmt::format("tensor {} appears twice in the directory", name));
    }
    a.entries_.push_back({std::move(name), dtype, std::move(shape), e.offset, e.num_bytes, e.xxh64,
                          e.sample_xxh32});
  }
  std::sort(regions.begin(), regions.end(),
            [](const Region& x, const Region& y) { return x.begin < y.begin; });
  for (size_t i = 1; i < regions.size(); ++i) {
    if (regions[i].begin < regions[i - 1].end) {
      fail(label, fmt::format("{} overlaps {}", regions[i].what, regions[i - 1].what));
    }
  }

  // 5. The tensor list against what this config and these formats require.
  const std::vector<TensorSpec> expected = archive_tensors(a.config_, a.formats_);
  for (const TensorSpec& spec : expected) {
    const ArchiveTensor* t = a.find(spec.name);
    if (t == nullptr) {
      fail(label, fmt::format("tensor {} is missing", spec.name));
    }
    if (t->dtype != spec.dtype || t->shape != spec.shape) {
      fail(label, fmt::format("tensor {} is {} {}, expected {} {} for this config", spec.name,
                              dtype_name(t->dtype), shape_str(t->shape), dtype_name(spec.dtype),
                              shape_str(spec.shape)));
    }
  }
  if (a.entries_.size() != expected.size()) {
    std::vector<std::string_view> names;
    for (const auto& s : expected) names.push_back(s.name);
    std::sort(names.begin(), names.end());
    for (const auto& t : a.entries_) {
      if (!std::binary_search(names.begin(), names.end(), std::string_view(t.name))) {
        fail(label, fmt::format("unexpected tensor {} (not part of this model)", t.name));
      }
    }
  }
  if (check == LoadCheck::kQuick) a.require_quick_check();
  return a;
}

const ArchiveTensor* MappedArchive::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

std::span<const std::byte> MappedArchive::tensor(std::string_view name) const {
  const ArchiveTensor* t = find(name);
  if (t == nullptr) {
    throw Error(fmt::format("{}: no tensor named '{}'", label_, name),
                "gptoss info FILE lists the tensors");
  }
  return bytes_.subspan(t->offset, t->num_bytes);
}

TensorLookup MappedArchive::lookup() const {
  // Captures copies (the directory is small) plus the mapping's owner, so the lookup stays valid
  // when this MappedArchive is moved or destroyed.
  return [keepalive = keepalive_, bytes = bytes_, label = label_, entries = entries_,
          index = index_](const TensorSpec& spec) -> std::span<const std::byte> {
    const auto it = index.find(spec.name);
    if (it == index.end()) throw Error(fmt::format("{}: no tensor named '{}'", label, spec.name));
    const ArchiveTensor& t = entries[it->second];
    if (t.dtype != spec.dtype || t.shape != spec.shape) {
      throw Error(fmt::format("{}: tensor {} is {} {}, the caller expects {} {}", label, spec.name,
                              dtype_name(t.dtype), shape_str(t.shape), dtype_name(spec.dtype),
                              shape_str(spec.shape)));
    }
    return bytes.subspan(t.offset, t.num_bytes);
  };
}

archive::TokenizerFormat MappedArchive::tokenizer_format() const {
  return static_cast<ar::TokenizerFormat>(header_.tokenizer_format);
}

std::span<const std::byte> MappedArchive::tokenizer_blob() const {
  if (tokenizer_format() == ar::TokenizerFormat::kNone) return {};
  return bytes_.subspan(header_.tokenizer_offset, header_.tokenizer_bytes);
}

std::string MappedArchive::tokenizer_sha256_hex() const {
  if (tokenizer_format() == ar::TokenizerFormat::kNone) return {};
  Sha256::Digest d;
  std::memcpy(d.data(), header_.tokenizer_sha256, d.size());
  return Sha256::hex(d);
}

SampleHasher::SampleHasher(uint64_t num_bytes)
    : head_end_(std::min(num_bytes, ar::kSampleBytes)),
      tail_begin_(std::max(ar::kSampleBytes, num_bytes > ar::kSampleBytes
                                                 ? num_bytes - ar::kSampleBytes
                                                 : uint64_t{0})),
      end_(num_bytes),
      state_(XXH64_createState()) {
  if (state_ == nullptr) throw std::bad_alloc();
  XXH64_reset(static_cast<XXH64_state_t*>(state_), 0);
}

SampleHasher::~SampleHasher() { XXH64_freeState(static_cast<XXH64_state_t*>(state_)); }

void SampleHasher::update(uint64_t pos, const std::byte* data, uint64_t n) {
  auto* st = static_cast<XXH64_state_t*>(state_);
  const uint64_t end = pos + n;
  // The parts of [pos, end) inside the head [0, head_end_) and the tail [tail_begin_, end_).
  if (pos < head_end_) {
    XXH64_update(st, data, std::min(end, head_end_) - pos);
  }
  const uint64_t b = std::max(pos, tail_begin_), e = std::min(end, end_);
  if (b < e) XXH64_update(st, data + (b - pos), e - b);
}

uint32_t SampleHasher::digest32() const {
  return static_cast<uint32_t>(XXH64_digest(static_cast<const XXH64_state_t*>(state_)));
}

uint32_t SampleHasher::of(std::span<const std::byte> blob) {
  SampleHasher h(blob.size());
  const uint64_t n = blob.size();
  h.update(0, blob.data(), std::min(n, ar::kSampleBytes));
  if (n > h.tail_begin_) h.update(h.tail_begin_, blob.data() + h.tail_begin_, n - h.tail_begin_);
  return h.digest32();
}

bool MappedArchive::has_sampled_checksums() const {
  return (header_.flags & ar::kFlagSampledChecksums) != 0;
}

VerifyResult MappedArchive::quick_check() const {
  const auto start = std::chrono::steady_clock::now();
  VerifyResult result;
  const std::span<const std::byte> tok = tokenizer_blob();
  if (!tok.empty()) {
    if (XXH64(tok.data(), tok.size(), 0) != header_.tokenizer_xxh64) {
      result.mismatched.push_back("<tokenizer>");
    }
    result.bytes_checked += tok.size();
  }
  if (has_sampled_checksums()) {
    for (const ArchiveTensor& t : entries_) {
      const std::span<const std::byte> blob = bytes_.subspan(t.offset, t.num_bytes);
      if (SampleHasher::of(blob) != t.sample_xxh32) result.mismatched.push_back(t.name);
      result.bytes_checked += std::min(t.num_bytes, 2 * ar::kSampleBytes);
    }
  }
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void MappedArchive::require_quick_check() const {
  const VerifyResult r = quick_check();
  if (r.ok()) return;
  constexpr std::string_view kHint =
      "the file was damaged after conversion (a bad copy or download?): copy it again or re-run "
      "gptoss convert; gptoss info FILE --verify checks every byte";
  if (r.mismatched.front() == "<tokenizer>") {
    fail(label_, "the embedded tokenizer is corrupted (its checksum does not match the header)",
         kHint);
  }
  const size_t shown = std::min<size_t>(r.mismatched.size(), 5);
  fail(label_,
       fmt::format("the weights are corrupted: sampled checksum mismatch in {} tensor{} ({}{})",
                   r.mismatched.size(), r.mismatched.size() == 1 ? "" : "s",
                   fmt::join(r.mismatched.begin(), r.mismatched.begin() + shown, ", "),
                   r.mismatched.size() > shown ? ", ..." : ""),
       kHint);
}

VerifyResult MappedArchive::verify(
    const std::function<void(const VerifyProgress&)>& progress) const {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  constexpr uint64_t kChunk = 64ull << 20;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));

  struct Item {
    std::string name;
    uint64_t offset, num_bytes, xxh64;
  };
  std::vector<Item> items;
  if (tokenizer_format() != ar::TokenizerFormat::kNone) {
    items.push_back({"<tokenizer>", header_.tokenizer_offset, header_.tokenizer_bytes,
                     header_.tokenizer_xxh64});
  }
  for (const auto& t : entries_) items.push_back({t.name, t.offset, t.num_bytes, t.xxh64});
  std::sort(items.begin(), items.end(),
            [](const Item& x, const Item& y) { return x.offset < y.offset; });
  uint64_t total = 0;
  for (const auto& it : items) total += it.num_bytes;

  VerifyResult result;
  XXH64_state_t state;
  for (const Item& it : items) {
    XXH64_reset(&state, 0);
    for (uint64_t done = 0; done < it.num_bytes;) {
      const uint64_t n = std::min(kChunk, it.num_bytes - done);
      const std::byte* p = bytes_.data() + it.offset + done;
      if (file_backed_ && done + n < it.num_bytes) {
        // Start reading the next chunk while this one is hashed.
        const uintptr_t nb = reinterpret_cast<uintptr_t>(p + n) & ~(page - 1);
        const uint64_t next = std::min(kChunk, it.num_bytes - done - n);
        const uintptr_t ne = reinterpret_cast<uintptr_t>(p + n + next);
        madvise(reinterpret_cast<void*>(nb), ne - nb, MADV_WILLNEED);
      }
      XXH64_update(&state, p, n);
      done += n;
      result.bytes_checked += n;
      if (file_backed_) {
        // Checked pages are dropped from this process (they stay in the page cache), so the
        // pass over a 65 GB file keeps a small resident set.
        const uintptr_t b = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
        const uintptr_t e = reinterpret_cast<uintptr_t>(p + n) & ~(page - 1);
        if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
      }
      if (progress) {
        progress({result.bytes_checked, total,
                  std::chrono::duration<double>(Clock::now() - start).count()});
      }
    }
    if (XXH64_digest(&state) != it.xxh64) result.mismatched.push_back(it.name);
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace gptoss
