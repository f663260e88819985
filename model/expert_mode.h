// expert_mode.h — ExpertMode: how the expert GEMVs see their input (the post-attention RMSNorm
// output, BF16). One enum from the command line (--experts) through the CPU reference and the GPU
// engine; MegakernelArgs::experts_fp8 is its kernel-side encoding. Plain C++17.
#pragma once

#include <cstdint>
#include <string_view>

namespace gptoss {

enum class ExpertMode : uint8_t {
  kBf16,  // MXFP4 weights dequantized exactly, activations BF16
  kFp8,   // activations quantized to E4M3 + one E8M0 scale per 32 (/work/notes/fp8.md)
};

inline constexpr std::string_view expert_mode_name(ExpertMode m) {
  return m == ExpertMode::kFp8 ? "fp8" : "bf16";
}

// "bf16" | "fp8"; false for anything else.
inline constexpr bool expert_mode_from_name(std::string_view name, ExpertMode* out) {
  if (name == "bf16") *out = ExpertMode::kBf16;
  else if (name == "fp8") *out = ExpertMode::kFp8;
  else return false;
  return true;
}

}  // namespace gptoss
