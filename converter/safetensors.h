// safetensors.h — strict reader (mmap) and streaming writer for the safetensors format:
// 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}} plus
// an optional "__metadata__" object, then the raw little-endian data. The reader validates
// everything before use (header length within the file and under kMaxHeaderBytes, valid JSON,
// known dtype names, shape x dtype size == byte span, spans inside the data area, no overlaps);
// every violation throws gptoss::Error naming the file and the tensor. Nothing is read outside
// the mapping on any input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "host/mapped_file.h"
#include "host/tensor_spec.h"

namespace gptoss::conv {

inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MiB, the reference library's cap

struct SafetensorsTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offset relative to the start of the data area
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws gptoss::Error on any problem.
  static SafetensorsFile open(const std::filesystem::path& path);
  // Validates an in-memory image (used by open() and by the fuzz target); `label` names it.
  static SafetensorsFile parse(std::shared_ptr<MappedFile> keepalive,
                               std::span<const std::byte> file_bytes, const std::string& label);

  const std::filesystem::path& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }  // header included
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsTensor* find(const std::string& name) const;  // nullptr if absent
  // The tensor's bytes inside the mapping; throws if absent.
  std::span<const std::byte> data(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> map_;
  std::filesystem::path path_;
  std::span<const std::byte> data_area_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  uint64_t file_size_ = 0;
};

// Streaming writer: the header is written from the declared tensors, then each tensor's bytes
// are produced in order by a callback in chunks, so a 65 GB checkpoint needs bounded memory.
struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  // Fills `out` with bytes [offset, offset + out.size()) of this tensor.
  std::function<void(uint64_t offset, std::span<std::byte> out)> fill;
};

// Writes `path` (via a temporary file renamed at the end). Returns the bytes written.
// Fill functions are called in order from one (non-calling) thread while the calling thread
// writes the previous chunk.
uint64_t write_safetensors(const std::filesystem::path& path,
                           const std::vector<SafetensorsEntry>& entries,
                           const std::map<std::string, std::string>& metadata = {},
                           const std::function<void(uint64_t bytes_done)>& progress = {});

struct SafetensorsWriteOptions {
  std::map<std::string, std::string> metadata;
  std::function<void(uint64_t bytes_done)> progress;  // data bytes written so far, this file
  size_t chunk_bytes = 32u << 20;  // the bounded buffer (two of them are live at once)
  // > 1: each chunk's fill is split over this many threads by byte range, so fill functions
  // must be pure (any byte range, any order, concurrently).
  int fill_threads = 1;
};
uint64_t write_safetensors(const std::filesystem::path& path,
                           const std::vector<SafetensorsEntry>& entries,
                           const SafetensorsWriteOptions& options);

// The header text (JSON padded with spaces to a multiple of 8) for `entries` written in order;
// `data_bytes` receives the size of the data area.
std::string safetensors_header(const std::vector<SafetensorsEntry>& entries,
                               const std::map<std::string, std::string>& metadata,
                               uint64_t* data_bytes);

}  // namespace gptoss::conv
