// weight_upload.h — the weights to GPU memory through two pinned staging buffers: while one is
// filled (by several threads, each copying a slice from the weights' memory map, or reading it
// from the archive file with pread), the other is in flight to the device on its own stream.
// Measured on the H200 (docs/PERF.md, `gptoss bench load`): 16-20 GB/s from the page cache, about
// a third of the pinned link; from a cold disk both sources run at the disk's read rate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "host/file_reader.h"

namespace gptoss {

// One tensor: `bytes` from host memory at `src` or, when the upload reads a file, from the file at
// `file_offset`; to device memory at `dst`.
struct UploadItem {
  const std::byte* src = nullptr;
  uint64_t file_offset = 0;
  void* dst = nullptr;
  size_t bytes = 0;
};

struct UploadOptions {
  const FileReader* file = nullptr;  // read the items from this file with pread (else memcpy src)
  int threads = 0;                   // threads filling a buffer; 0: min(hardware threads, 8)
  size_t chunk_bytes = 64u << 20;    // each of the two staging buffers
  bool progress = true;              // a progress line on stderr (for 1 GB or more)
};

struct UploadStats {
  uint64_t bytes = 0;
  double seconds = 0;
  int threads = 0;
  bool from_file = false;
  double gb_per_s() const { return seconds > 0 ? bytes / seconds / 1e9 : 0.0; }
};

// Copies every item; returns when all bytes are on the device. Throws gptoss::Error (a read that
// fails or finds the file shorter) or gpu::GpuError; pinned buffers and streams are released
// either way.
UploadStats upload_weights(const std::vector<UploadItem>& items, const UploadOptions& options);

}  // namespace gptoss
