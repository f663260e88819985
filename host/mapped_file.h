// mapped_file.h — MappedFile: a read-only memory map of one file (RAII), shared through a
// shared_ptr by whatever keeps views into it alive. Used by the archive loader
// (host/archive/) and the safetensors reader (converter/).
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>

namespace gptoss {

class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace gptoss
