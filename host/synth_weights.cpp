#include "host/synth_weights.h"

#include <array>

#include "host/error.h"

namespace gptoss::conv {

namespace tn = tensor_names;

SynthTensorParams synth_tensor_params(const ModelConfig& c, const std::string& name) {
  int layer = -1;
  std::string suffix;
  if (!split_canonical_name(name, &layer, &suffix) || layer >= c.num_layers) {
    throw Error(fmt::format("synth: '{}' is not a canonical tensor of this model", name));
  }
  struct Row {
    std::string_view suffix;
    SynthKind kind;
    bool per_layer;
  };
  static constexpr std::array<Row, 18> kRows = {{
      {tn::kEmbed, SynthKind::kEmbed, false},
      {tn::kAttnNorm, SynthKind::kAttnNorm, true},
      {tn::kQkvWeight, SynthKind::kQkvWeight, true},
      {tn::kQkvBias, SynthKind::kQkvBias, true},
      {tn::kSinks, SynthKind::kSinks, true},
      {tn::kOutWeight, SynthKind::kOutWeight, true},
      {tn::kOutBias, SynthKind::kOutBias, true},
      {tn::kMlpNorm, SynthKind::kMlpNorm, true},
      {tn::kRouterWeight, SynthKind::kRouterWeight, true},
      {tn::kRouterBias, SynthKind::kRouterBias, true},
      {tn::kMlp1Blocks, SynthKind::kMlp1Blocks, true},
      {tn::kMlp1Scales, SynthKind::kMlp1Scales, true},
      {tn::kMlp1Bias, SynthKind::kMlp1Bias, true},
      {tn::kMlp2Blocks, SynthKind::kMlp2Blocks, true},
      {tn::kMlp2Scales, SynthKind::kMlp2Scales, true},
      {tn::kMlp2Bias, SynthKind::kMlp2Bias, true},
      {tn::kFinalNorm, SynthKind::kFinalNorm, false},
      {tn::kLmHead, SynthKind::kLmHead, false},
  }};
  for (const auto& r : kRows) {
    if (r.suffix != suffix || r.per_layer != (layer >= 0)) continue;
    SynthTensorParams p;
    p.layer = layer >= 0 ? static_cast<uint32_t>(layer) : 0u;
    p.kind = r.kind;
    switch (r.kind) {
      case SynthKind::kQkvWeight:
      case SynthKind::kRouterWeight:
      case SynthKind::kLmHead:
      case SynthKind::kMlp1Blocks:
      case SynthKind::kMlp1Scales:
        p.fan_in = static_cast<uint32_t>(c.hidden);
        break;
      case SynthKind::kOutWeight:
        p.fan_in = static_cast<uint32_t>(c.q_dim());
        break;
      case SynthKind::kMlp2Blocks:
      case SynthKind::kMlp2Scales:
        p.fan_in = static_cast<uint32_t>(c.intermediate);
        break;
      default:
        p.fan_in = 0;
        break;
    }
    return p;
  }
  throw Error(fmt::format("synth: '{}' is not a canonical tensor name", name));
}

namespace {

// Host fast path for block bytes: a 14-bit (two 7-bit nibble draws) -> byte table built from
// synth_fp4_nibble itself, so it is bit-identical to the device formula.
const std::array<uint8_t, 1u << 14>& block_byte_table() {
  static const auto table = [] {
    std::array<uint8_t, 1u << 14> t{};
    for (uint32_t i = 0; i < t.size(); ++i) {
      const uint32_t bits = (i & 0x7fu) | ((i >> 7) << 8);
      t[i] = static_cast<uint8_t>(synth_fp4_nibble(bits) | (synth_fp4_nibble(bits >> 8) << 4));
    }
    return t;
  }();
  return table;
}

void fill_bf16(uint64_t key, bool is_norm, int shift, uint64_t byte_offset, std::byte* out,
               size_t n) {
  uint64_t pos = byte_offset;
  size_t i = 0;
  auto put_partial = [&](size_t count) {  // byte-wise for an odd start or end
    for (size_t k = 0; k < count; ++k, ++i, ++pos) {
      const uint16_t v = synth_bf16_value(key, is_norm, shift, pos >> 1);
      out[i] = static_cast<std::byte>((pos & 1) ? (v >> 8) : (v & 0xff));
    }
  };
  if (pos & 1) put_partial(std::min<size_t>(1, n));
  const size_t pairs = (n - i) / 2;
  uint64_t elem = pos >> 1;
  for (size_t k = 0; k < pairs; ++k, ++elem) {
    const uint16_t v = synth_bf16_value(key, is_norm, shift, elem);
    out[i + 2 * k] = static_cast<std::byte>(v & 0xff);  // little-endian
    out[i + 2 * k + 1] = static_cast<std::byte>(v >> 8);
  }
  i += 2 * pairs;
  pos += 2 * pairs;
  put_partial(n - i);
}

void fill_blocks(uint64_t key, uint64_t byte_offset, std::byte* out, size_t n) {
  const auto& table = block_byte_table();
  size_t i = 0;
  uint64_t pos = byte_offset;
  auto one = [&](uint64_t h, uint32_t lane) {
    const uint32_t bits = static_cast<uint32_t>(h >> (lane * 16u));
    out[i++] = static_cast<std::byte>(table[(bits & 0x7fu) | ((bits >> 1) & 0x3f80u)]);
    ++pos;
  };
  while (i < n && (pos & 3)) one(synth_hash(key, pos >> 2), static_cast<uint32_t>(pos & 3));
  while (n - i >= 4) {
    const uint64_t h = synth_hash(key, pos >> 2);
    one(h, 0);
    one(h, 1);
    one(h, 2);
    one(h, 3);
  }
  while (i < n) one(synth_hash(key, pos >> 2), static_cast<uint32_t>(pos & 3));
}

void fill_scales(uint64_t key, uint32_t base, uint64_t byte_offset, std::byte* out, size_t n) {
  size_t i = 0;
  for (; i < n && ((byte_offset + i) & 7); ++i) {
    out[i] = static_cast<std::byte>(synth_scale_byte(key, base, byte_offset + i));
  }
  // Eight scales share one hash (synth_scale_byte): hash once per group.
  for (; n - i >= 8; i += 8) {
    const uint64_t h = synth_hash(key, (byte_offset + i) >> 3);
    for (uint32_t lane = 0; lane < 8; ++lane) {
      const uint32_t r = static_cast<uint32_t>(h >> (lane * 8u)) & 3u;
      out[i + lane] = static_cast<std::byte>(base + (r == 3u ? 1u : 0u) - (r == 0u ? 1u : 0u));
    }
  }
  for (; i < n; ++i) out[i] = static_cast<std::byte>(synth_scale_byte(key, base, byte_offset + i));
}

}  // namespace

void synth_fill(const ModelConfig& config, uint64_t seed, const TensorSpec& canonical,
                uint64_t byte_offset, std::span<std::byte> out) {
  const SynthTensorParams p = synth_tensor_params(config, canonical.name);
  const uint64_t total = canonical.num_bytes();
  GPTOSS_CHECK(byte_offset <= total && out.size() <= total - byte_offset,
               "synth: bytes [{}, {}) are outside '{}' ({} bytes)", byte_offset,
               byte_offset + out.size(), canonical.name, total);
  const bool is_u8 = p.kind == SynthKind::kMlp1Blocks || p.kind == SynthKind::kMlp1Scales ||
                     p.kind == SynthKind::kMlp2Blocks || p.kind == SynthKind::kMlp2Scales;
  GPTOSS_CHECK(canonical.dtype == (is_u8 ? DType::kU8 : DType::kBF16),
               "synth: '{}' has dtype {}, the generator makes {}", canonical.name,
               dtype_name(canonical.dtype), is_u8 ? "U8" : "BF16");
  const uint64_t key = synth_tensor_key(seed, p.layer, p.kind);
  switch (p.kind) {
    case SynthKind::kMlp1Blocks:
    case SynthKind::kMlp2Blocks:
      fill_blocks(key, byte_offset, out.data(), out.size());
      break;
    case SynthKind::kMlp1Scales:
    case SynthKind::kMlp2Scales:
      fill_scales(key, synth_scale_base(p.fan_in), byte_offset, out.data(), out.size());
      break;
    default:
      fill_bf16(key, synth_is_norm(p.kind), synth_bf16_shift(p.kind, p.fan_in), byte_offset,
                out.data(), out.size());
      break;
  }
}

}  // namespace gptoss::conv
