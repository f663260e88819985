#include "host/fp8_weights.h"

#include "model/fp8_rows.h"

namespace gptoss {

void quantize_rows_fp8(const bf16_bits* w, int64_t rows, int64_t cols, uint8_t* codes,
                       float* scales) {
  for (int64_t r = 0; r < rows; ++r) {
    const bf16_bits* row = w + r * cols;
    float amax = 0.0f;
    for (int64_t k = 0; k < cols; ++k) {
      const float a = fp8::bf16_abs(row[k]);
      if (a > amax) amax = a;  // NaN never wins (it is encoded as NaN below)
    }
    const float scale = fp8::row_scale(amax);
    scales[r] = scale;
    uint8_t* out = codes + r * cols;
    for (int64_t k = 0; k < cols; ++k) out[k] = fp8::quantize(fp8::bf16_value(row[k]), scale);
  }
}

}  // namespace gptoss
