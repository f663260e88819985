// npy.h — 2-D little-endian float32 arrays in NumPy's .npy format (version 1.0, C order): what
// `generate --logits-out` writes (one row of logits per decode step) and `bench accuracy
// --reference` reads, so that users' own tools (numpy.load) read and write the same files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <vector>

namespace gptoss {

struct NpyMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> data;  // rows * cols, row-major
};

// Writes rows x cols floats; throws gptoss::Error naming the path on failure.
void write_npy_f32(const std::filesystem::path& path, const float* data, int64_t rows, int64_t cols);

// Appends rows to a .npy file as they come (the header is rewritten with the final row count by
// close(); a file of a run that stopped early holds the rows written so far once closed).
class NpyRowWriter {
 public:
  NpyRowWriter(const std::filesystem::path& path, int64_t cols);
  ~NpyRowWriter();
  NpyRowWriter(const NpyRowWriter&) = delete;
  NpyRowWriter& operator=(const NpyRowWriter&) = delete;
  void append(const float* row);
  void close();
  int64_t rows() const { return rows_; }

 private:
  std::filesystem::path path_;
  std::FILE* f_ = nullptr;
  int64_t cols_, rows_ = 0;
};

// Reads a 2-D (or 1-D: one row) '<f4' C-order .npy; throws gptoss::Error naming the path and the
// problem (not .npy, another dtype, Fortran order, truncated).
NpyMatrix read_npy_f32(const std::filesystem::path& path);

}  // namespace gptoss
