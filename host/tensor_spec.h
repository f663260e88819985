// tensor_spec.h — the single list of the tensors a gpt-oss model has, in the engine's canonical
// naming and layout (fused QKV, MXFP4 blocks/scales as on disk). The checkpoint reader checks a
// checkpoint against it, the converter writes archives in its order, the archive loader checks
// archives against it, and the CPU reference and the GPU upload look tensors up by these names.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "host/model_config.h"

namespace gptoss::archive {

// Weight format of the attention projections (qkv, out) and of the LM head.
// kFP8: E4M3 weights plus one F32 scale per output row in a "<weight>_scale" tensor
// (model/fp8_rows.h: scale = amax / 448, codes = E4M3(w / scale), saturating).
enum class WeightFormat : uint8_t { kBF16 = 0, kFP8 = 1 };
// Expert weights: MXFP4 blocks + E8M0 scales as on disk (the only format so far).
enum class ExpertFormat : uint8_t { kMXFP4 = 0 };

// Names of the FP8 per-row scale tensors: "<weight name>" + kScaleSuffix, dtype F32, shape
// [rows of the weight]. Present only when the corresponding format is kFP8.
inline constexpr std::string_view kScaleSuffix = "_scale";

}  // namespace gptoss::archive

namespace gptoss {

// The stored formats of a model's weights (an archive header's, or what --synthetic generates).
struct WeightFormats {
  archive::WeightFormat attn = archive::WeightFormat::kBF16;
  archive::WeightFormat lm_head = archive::WeightFormat::kBF16;
  archive::ExpertFormat experts = archive::ExpertFormat::kMXFP4;
  bool operator==(const WeightFormats&) const = default;
  bool any_fp8() const {
    return attn == archive::WeightFormat::kFP8 || lm_head == archive::WeightFormat::kFP8;
  }
};

std::string_view weight_format_name(archive::WeightFormat f);  // "bf16", "fp8"
bool weight_format_from_name(std::string_view name, archive::WeightFormat* out);

// Element types of stored tensors (safetensors names in dtype_name()).
enum class DType : uint8_t { kBF16, kF16, kF32, kF64, kU8, kI8, kI16, kI32, kI64, kU16, kU32, kU64,
                             kBool, kF8E4M3, kF8E5M2 };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);                 // "BF16", "U8", ...
bool dtype_from_name(std::string_view name, DType* out);  // false for unknown names

struct TensorSpec {
  std::string name;             // canonical name, e.g. "layers.3.qkv.weight"
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t num_bytes() const;
  uint64_t num_elements() const;
};

// Canonical per-layer tensor names (suffixes after "layers.{i}.").
namespace tensor_names {
inline constexpr std::string_view kEmbed = "embed.weight";           // [vocab, hidden] bf16
inline constexpr std::string_view kFinalNorm = "norm.weight";        // [hidden] bf16
inline constexpr std::string_view kLmHead = "lm_head.weight";        // [vocab, hidden] bf16
inline constexpr std::string_view kAttnNorm = "attn_norm.weight";    // [hidden] bf16
inline constexpr std::string_view kQkvWeight = "qkv.weight";         // [q+2kv, hidden] bf16 (q|k|v rows)
inline constexpr std::string_view kQkvBias = "qkv.bias";             // [q+2kv] bf16
inline constexpr std::string_view kSinks = "sinks";                  // [num_heads] bf16
inline constexpr std::string_view kOutWeight = "out.weight";         // [hidden, q] bf16
inline constexpr std::string_view kOutBias = "out.bias";             // [hidden] bf16
inline constexpr std::string_view kMlpNorm = "mlp_norm.weight";      // [hidden] bf16
inline constexpr std::string_view kRouterWeight = "router.weight";   // [E, hidden] bf16
inline constexpr std::string_view kRouterBias = "router.bias";       // [E] bf16
inline constexpr std::string_view kMlp1Blocks = "mlp1.blocks";       // [E, 2I, hidden/32, 16] u8 (gate/up interleaved rows)
inline constexpr std::string_view kMlp1Scales = "mlp1.scales";       // [E, 2I, hidden/32] u8 e8m0
inline constexpr std::string_view kMlp1Bias = "mlp1.bias";           // [E, 2I] bf16
inline constexpr std::string_view kMlp2Blocks = "mlp2.blocks";       // [E, hidden, I/32, 16] u8
inline constexpr std::string_view kMlp2Scales = "mlp2.scales";       // [E, hidden, I/32] u8 e8m0
inline constexpr std::string_view kMlp2Bias = "mlp2.bias";           // [E, hidden] bf16
}  // namespace tensor_names

// The per-layer tensors in canonical order: the one tensor table. canonical_tensors() (what the
// converter and the archive loader check), bind_weights() (the weights view), the GPU upload order
// and the kernel's per-layer pointers (mk::LayerArgs) all come from it.
enum class LayerTensor : uint8_t {
  kAttnNorm, kQkvWeight, kQkvBias, kSinks, kOutWeight, kOutBias, kMlpNorm, kRouterWeight,
  kRouterBias, kMlp1Blocks, kMlp1Scales, kMlp1Bias, kMlp2Blocks, kMlp2Scales, kMlp2Bias, kCount
};
inline constexpr size_t kNumLayerTensors = static_cast<size_t>(LayerTensor::kCount);

// Suffix (after "layers.{i}.") and element type of each LayerTensor; shapes: layer_tensor_spec().
struct LayerTensorInfo {
  std::string_view suffix;
  DType dtype;
};
inline constexpr std::array<LayerTensorInfo, kNumLayerTensors> kLayerTensors = {{
    {tensor_names::kAttnNorm, DType::kBF16},     {tensor_names::kQkvWeight, DType::kBF16},
    {tensor_names::kQkvBias, DType::kBF16},      {tensor_names::kSinks, DType::kBF16},
    {tensor_names::kOutWeight, DType::kBF16},    {tensor_names::kOutBias, DType::kBF16},
    {tensor_names::kMlpNorm, DType::kBF16},      {tensor_names::kRouterWeight, DType::kBF16},
    {tensor_names::kRouterBias, DType::kBF16},   {tensor_names::kMlp1Blocks, DType::kU8},
    {tensor_names::kMlp1Scales, DType::kU8},     {tensor_names::kMlp1Bias, DType::kBF16},
    {tensor_names::kMlp2Blocks, DType::kU8},     {tensor_names::kMlp2Scales, DType::kU8},
    {tensor_names::kMlp2Bias, DType::kBF16},
}};

// Calls f(LayerTensor, field) for every per-layer weight pointer of `layer`, in archive order
// (archive_tensors(config, formats) below): with FP8 attention the per-row scale fields
// (qkv_scale, out_scale) follow their weights and are reported with the weight's LayerTensor.
// `layer` is any struct whose pointer fields are named after the tensors: LayerWeights (host
// view, weights_view.h) and mk::LayerArgs (the kernel's, megakernel/kernel_args.h). The one place
// where tensors meet struct fields.
template <class Layer, class F>
void visit_layer_tensors(Layer& layer, archive::WeightFormat attn, F&& f) {
  const bool fp8 = attn == archive::WeightFormat::kFP8;
  f(LayerTensor::kAttnNorm, layer.attn_norm);
  f(LayerTensor::kQkvWeight, layer.qkv_weight);
  if (fp8) f(LayerTensor::kQkvWeight, layer.qkv_scale);
  f(LayerTensor::kQkvBias, layer.qkv_bias);
  f(LayerTensor::kSinks, layer.sinks);
  f(LayerTensor::kOutWeight, layer.out_weight);
  if (fp8) f(LayerTensor::kOutWeight, layer.out_scale);
  f(LayerTensor::kOutBias, layer.out_bias);
  f(LayerTensor::kMlpNorm, layer.mlp_norm);
  f(LayerTensor::kRouterWeight, layer.router_weight);
  f(LayerTensor::kRouterBias, layer.router_bias);
  f(LayerTensor::kMlp1Blocks, layer.mlp1_blocks);
  f(LayerTensor::kMlp1Scales, layer.mlp1_scales);
  f(LayerTensor::kMlp1Bias, layer.mlp1_bias);
  f(LayerTensor::kMlp2Blocks, layer.mlp2_blocks);
  f(LayerTensor::kMlp2Scales, layer.mlp2_scales);
  f(LayerTensor::kMlp2Bias, layer.mlp2_bias);
}

std::string layer_tensor_name(int layer, std::string_view suffix);  // "layers.{layer}.{suffix}"
// "layers.3.qkv.weight" -> layer 3, suffix "qkv.weight"; global tensors give layer -1.
// False when the name has no valid layer number.
bool split_canonical_name(const std::string& name, int* layer, std::string* suffix);

// Name, dtype and shape of one per-layer tensor.
TensorSpec layer_tensor_spec(const ModelConfig& config, int layer, LayerTensor tensor);

// Every tensor of the model in canonical order: embed, then per layer kLayerTensors in order,
// then final norm and lm_head.
std::vector<TensorSpec> canonical_tensors(const ModelConfig& config);

// The tensors a model with these formats holds, in archive order: canonical_tensors(config)
// with, for each FP8 weight, dtype F8_E4M3 and a "<name>_scale" F32 [rows] tensor right after it.
// The one list of (config, formats): the converter writes it, the archive loader checks it,
// bind_weights() binds it, the GPU upload and --synthetic generate it.
std::vector<TensorSpec> archive_tensors(const ModelConfig& config, const WeightFormats& formats);

// For an FP8 archive tensor (the E4M3 weight or its "_scale"): the canonical BF16 tensor it is
// quantized from (model/fp8_rows.h). False for every other tensor (stored as in the checkpoint).
bool fp8_quantized_from(const TensorSpec& archive_tensor, std::string* canonical_name);

}  // namespace gptoss
