#include "host/file_reader.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "host/error.h"

namespace gptoss {

namespace {
constexpr const char* kChangedHint =
    "reconvert the archive or copy it again, and do not modify it while the engine reads it";
}  // namespace

FileReader::FileReader(const std::filesystem::path& path, uint64_t expected_size) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    throw Error(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int e = errno;
    ::close(fd_);
    throw Error(fmt::format("cannot stat {}: {}", path.string(), std::strerror(e)));
  }
  size_ = uint64_t(st.st_size);
  if (expected_size != 0 && size_ != expected_size) {
    ::close(fd_);
    throw Error(fmt::format("{} is {} bytes now but was {} when it was opened: the file changed "
                            "while loading",
                            path.string(), size_, expected_size),
                kChangedHint);
  }
}

FileReader::~FileReader() {
  if (fd_ >= 0) ::close(fd_);
}

void FileReader::read_at(void* dst, size_t n, uint64_t offset) const {
  auto* out = static_cast<std::byte*>(dst);
  size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd_, out + done, n - done, off_t(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("reading {} at offset {} failed: {}", path_.string(), offset + done,
                              std::strerror(errno)),
                  "check the disk (dmesg), then copy or reconvert the archive");
    }
    if (got == 0) {
      throw Error(fmt::format("{} ended at offset {} while {} more bytes were expected there: the "
                              "file shrank or changed while loading",
                              path_.string(), offset + done, n - done),
                  kChangedHint);
    }
    done += size_t(got);
  }
}

bool FileReader::drop_page_cache() const {
  return ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED) == 0;
}

}  // namespace gptoss
