// tensor_spec.h — the single list of the tensors a gpt-oss model has, in the engine's canonical
// naming and layout (fused QKV, MXFP4 blocks/scales as on disk). The checkpoint reader checks a
// checkpoint against it, the converter writes archives in its order, the archive loader checks
// archives against it, and the CPU reference and the GPU upload look tensors up by these names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "host/model_config.h"

namespace gptoss {

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

std::string layer_tensor_name(int layer, std::string_view suffix);  // "layers.{layer}.{suffix}"
// "layers.3.qkv.weight" -> layer 3, suffix "qkv.weight"; global tensors give layer -1.
// False when the name has no valid layer number.
bool split_canonical_name(const std::string& name, int* layer, std::string* suffix);

// Every tensor of the model in canonical order: embed, then per layer the suffixes above in
// declaration order, then final norm and lm_head.
std::vector<TensorSpec> canonical_tensors(const ModelConfig& config);

}  // namespace gptoss
