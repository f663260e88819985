#include "host/tensor_spec.h"

#include <array>
#include <charconv>

#include <fmt/format.h>

namespace gptoss {
namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  size_t size;
};

constexpr std::array<DTypeInfo, 15> kDTypes = {{
    {DType::kBF16, "BF16", 2}, {DType::kF16, "F16", 2},   {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},   {DType::kU8, "U8", 1},     {DType::kI8, "I8", 1},
    {DType::kI16, "I16", 2},   {DType::kI32, "I32", 4},   {DType::kI64, "I64", 8},
    {DType::kU16, "U16", 2},   {DType::kU32, "U32", 4},   {DType::kU64, "U64", 8},
    {DType::kBool, "BOOL", 1}, {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kF8E5M2, "F8_E5M2", 1},
}};

}  // namespace

size_t dtype_size(DType t) { return kDTypes[static_cast<size_t>(t)].size; }
std::string_view dtype_name(DType t) { return kDTypes[static_cast<size_t>(t)].name; }

bool dtype_from_name(std::string_view name, DType* out) {
  for (const auto& d : kDTypes) {
    if (d.name == name) {
      *out = d.type;
      return true;
    }
  }
  return false;
}

uint64_t TensorSpec::num_elements() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

uint64_t TensorSpec::num_bytes() const { return num_elements() * dtype_size(dtype); }

std::string layer_tensor_name(int layer, std::string_view suffix) {
  return fmt::format("layers.{}.{}", layer, suffix);
}

bool split_canonical_name(const std::string& name, int* layer, std::string* suffix) {
  constexpr std::string_view kPrefix = "layers.";
  if (name.rfind(kPrefix, 0) != 0) {
    *layer = -1;
    *suffix = name;
    return true;
  }
  const char* first = name.data() + kPrefix.size();
  const char* last = name.data() + name.size();
  int value = -1;
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || ptr == first || ptr == last || *ptr != '.' || value < 0) return false;
  *layer = value;
  *suffix = std::string(ptr + 1, last);
  return true;
}

std::vector<TensorSpec> canonical_tensors(const ModelConfig& c) {
  namespace tn = tensor_names;
  const int64_t H = c.hidden, V = c.vocab_size, E = c.num_experts, I = c.intermediate;
  std::vector<TensorSpec> out;
  out.push_back({std::string(tn::kEmbed), DType::kBF16, {V, H}});
  for (int l = 0; l < c.num_layers; ++l) {
    auto add = [&](std::string_view suffix, DType t, std::vector<int64_t> shape) {
      out.push_back({layer_tensor_name(l, suffix), t, std::move(shape)});
    };
    add(tn::kAttnNorm, DType::kBF16, {H});
    add(tn::kQkvWeight, DType::kBF16, {c.qkv_dim(), H});
    add(tn::kQkvBias, DType::kBF16, {c.qkv_dim()});
    add(tn::kSinks, DType::kBF16, {c.num_heads});
    add(tn::kOutWeight, DType::kBF16, {H, c.q_dim()});
    add(tn::kOutBias, DType::kBF16, {H});
    add(tn::kMlpNorm, DType::kBF16, {H});
    add(tn::kRouterWeight, DType::kBF16, {E, H});
    add(tn::kRouterBias, DType::kBF16, {E});
    add(tn::kMlp1Blocks, DType::kU8, {E, 2 * I, H / 32, 16});
    add(tn::kMlp1Scales, DType::kU8, {E, 2 * I, H / 32});
    add(tn::kMlp1Bias, DType::kBF16, {E, 2 * I});
    add(tn::kMlp2Blocks, DType::kU8, {E, H, I / 32, 16});
    add(tn::kMlp2Scales, DType::kU8, {E, H, I / 32});
    add(tn::kMlp2Bias, DType::kBF16, {E, H});
  }
  out.push_back({std::string(tn::kFinalNorm), DType::kBF16, {H}});
  out.push_back({std::string(tn::kLmHead), DType::kBF16, {V, H}});
  return out;
}

}  // namespace gptoss
