// file_reader.h — FileReader: positioned reads (pread) of one file from several threads, for
// moving an archive's weights to the GPU at the speed of the page cache or the disk rather than
// faulting a memory map page by page (host/runtime/weight_upload.h). Every short or failed read is
// a gptoss::Error naming the file, the offset and what to do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace gptoss {

class FileReader {
 public:
  // Opens `path` read-only; `expected_size` (when non-zero) must match its size now.
  explicit FileReader(const std::filesystem::path& path, uint64_t expected_size = 0);
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  const std::filesystem::path& path() const { return path_; }
  uint64_t size() const { return size_; }
  // Reads exactly n bytes at `offset` into dst (retrying short reads); thread-safe. Throws when
  // the file ends early (it shrank or changed since it was opened) or the read fails.
  void read_at(void* dst, size_t n, uint64_t offset) const;
  // Asks the kernel to drop this file's clean pages from the page cache (a cold read for
  // measurements); returns false where the system refuses.
  bool drop_page_cache() const;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace gptoss
