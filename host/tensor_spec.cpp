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

TensorSpec layer_tensor_spec(const ModelConfig& c, int layer, LayerTensor tensor) {
  const int64_t H = c.hidden, E = c.num_experts, I = c.intermediate;
  std::vector<int64_t> shape;
  switch (tensor) {
    case LayerTensor::kAttnNorm: shape = {H}; break;
    case LayerTensor::kQkvWeight: shape = {c.qkv_dim(), H}; break;
    case LayerTensor::kQkvBias: shape = {c.qkv_dim()}; break;
    case LayerTensor::kSinks: shape = {c.num_heads}; break;
    case LayerTensor::kOutWeight: shape = {H, c.q_dim()}; break;
    case LayerTensor::kOutBias: shape = {H}; break;
    case LayerTensor::kMlpNorm: shape = {H}; break;
    case LayerTensor::kRouterWeight: shape = {E, H}; break;
    case LayerTensor::kRouterBias: shape = {E}; break;
    case LayerTensor::kMlp1Blocks: shape = {E, 2 * I, H / 32, 16}; break;
    case LayerTensor::kMlp1Scales: shape = {E, 2 * I, H / 32}; break;
    case LayerTensor::kMlp1Bias: shape = {E, 2 * I}; break;
    case LayerTensor::kMlp2Blocks: shape = {E, H, I / 32, 16}; break;
    case LayerTensor::kMlp2Scales: shape = {E, H, I / 32}; break;
    case LayerTensor::kMlp2Bias: shape = {E, H}; break;
    case LayerTensor::kCount: break;
  }
  const LayerTensorInfo& info = kLayerTensors[static_cast<size_t>(tensor)];
  return {layer_tensor_name(layer, info.suffix), info.dtype, std::move(shape)};
}

std::vector<TensorSpec> canonical_tensors(const ModelConfig& c) {
  namespace tn = tensor_names;
  const int64_t H = c.hidden, V = c.vocab_size;
  std::vector<TensorSpec> out;
  out.reserve(3 + size_t(c.num_layers) * kNumLayerTensors);
  out.push_back({std::string(tn::kEmbed), DType::kBF16, {V, H}});
  for (int l = 0; l < c.num_layers; ++l) {
    for (size_t t = 0; t < kNumLayerTensors; ++t) {
      out.push_back(layer_tensor_spec(c, l, static_cast<LayerTensor>(t)));
    }
  }
  out.push_back({std::string(tn::kFinalNorm), DType::kBF16, {H}});
  out.push_back({std::string(tn::kLmHead), DType::kBF16, {V, H}});
  return out;
}

std::string_view weight_format_name(archive::WeightFormat f) {
  switch (f) {
    case archive::WeightFormat::kBF16:
      return "bf16";
    case archive::WeightFormat::kFP8:
      return "fp8";
  }
  return "unknown";
}

bool weight_format_from_name(std::string_view name, archive::WeightFormat* out) {
  if (name == "bf16")
    *out = archive::WeightFormat::kBF16;
  else if (name == "fp8")
    *out = archive::WeightFormat::kFP8;
  else
    return false;
  return true;
}

std::vector<TensorSpec> archive_tensors(const ModelConfig& config, const WeightFormats& formats) {
  namespace tn = tensor_names;
  std::vector<TensorSpec> out;
  for (TensorSpec& spec : canonical_tensors(config)) {
    const std::string_view n = spec.name;
    auto layer_suffix = [&](std::string_view suffix) {
      return n.starts_with("layers.") && n.size() > suffix.size() && n.ends_with(suffix) &&
             n[n.size() - suffix.size() - 1] == '.';
    };
    const bool is_attn = layer_suffix(tn::kQkvWeight) || layer_suffix(tn::kOutWeight);
    const bool fp8 = (is_attn && formats.attn == archive::WeightFormat::kFP8) ||
                     (n == tn::kLmHead && formats.lm_head == archive::WeightFormat::kFP8);
    if (!fp8) {
      out.push_back(std::move(spec));
      continue;
    }
    const int64_t rows = spec.shape.at(0);
    TensorSpec scale{spec.name + std::string(archive::kScaleSuffix), DType::kF32, {rows}};
    spec.dtype = DType::kF8E4M3;
    out.push_back(std::move(spec));
    out.push_back(std::move(scale));
  }
  return out;
}

bool fp8_quantized_from(const TensorSpec& t, std::string* canonical_name) {
  std::string_view n = t.name;
  if (t.dtype == DType::kF8E4M3) {
    *canonical_name = std::string(n);
    return true;
  }
  if (t.dtype == DType::kF32 && n.ends_with(archive::kScaleSuffix)) {
    n.remove_suffix(archive::kScaleSuffix.size());
    *canonical_name = std::string(n);
    return true;
  }
  return false;
}

}  // namespace gptoss
