// fp8_weights.h — FP8 (E4M3 + one FP32 scale per row) weights on the host: the row quantizer
// (model/fp8_rows.h is the rule). Shared by the converter and the in-memory models (CPU
// --synthetic, tests); the CPU reference's dot product is ref::dense_row_dot (reference/ops.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "host/numeric.h"

namespace gptoss {

// Quantizes a row-major BF16 matrix [rows, cols]: codes [rows * cols], scales [rows].
// Rows are independent (the result does not depend on how callers split them).
void quantize_rows_fp8(const bf16_bits* w, int64_t rows, int64_t cols, uint8_t* codes,
                       float* scales);

}  // namespace gptoss
