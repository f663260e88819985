// archive_writer.cpp — the archive layout plan and the streaming writer. Bytes move from the
// source mapping straight to pwrite() in chunks of kChunkBytes, hashed (XXH64) on the way; the
// source pages of each chunk are released afterwards (madvise) and the written range is flushed
// and dropped from the page cache one chunk behind (sync_file_range + posix_fadvise), so neither
// the resident set nor dirty memory grow with the model size.
#include "converter/archive_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <utility>
#define XXH_INLINE_ALL  // header-only xxHash (XXH64 streaming API)
#include <xxhash.h>

#include "host/error.h"
#include "host/interrupt.h"
#include "host/sha256.h"

namespace gptoss::conv {
namespace {

namespace fs = std::filesystem;
namespace ar = archive;

constexpr uint64_t kChunkBytes = 64ull << 20;

std::string human_bytes(uint64_t n) { return fmt::format("{:.2f} GB", n / 1e9); }
constexpr size_t kWriteBehindChunks = 1;  // chunks of dirty output in flight beyond the current

// ---- interrupts: host/interrupt.h records SIGINT/SIGTERM; the copy loop polls between chunks
// and unwinds, so the temporary file is removed by the same code path as any other error.
void check_interrupt() { StopSignals::check("the partial archive was removed"); }

// ---- the temporary file
// -------------------------------------------------------------------------- Created next to the
// destination (same filesystem, so the final rename is atomic); removed by the destructor unless
// commit() renamed it.
class TempFile {
 public:
  explicit TempFile(const fs::path& dest) {
    std::string pattern = dest.string() + ".partial-XXXXXX";
    fd_ = ::mkstemp(pattern.data());
    if (fd_ < 0) {
      throw Error(fmt::format("cannot create a temporary file next to {}: {}", dest.string(),
                              std::strerror(errno)),
                  "check that the output directory is writable");
    }
    path_ = pattern;
    // Held until the file is closed: a later conversion tells a live writer's file from one a
    // killed process left behind (remove_stale_partials).
    ::flock(fd_, LOCK_EX | LOCK_NB);
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const { return fd_; }
  const fs::path& path() const { return path_; }

  void commit(const fs::path& dest) {
    const mode_t mask = ::umask(0);
    ::umask(mask);
    ::fchmod(fd_, 0666 & ~mask);  // mkstemp creates 0600; give the file ordinary permissions
    if (::fsync(fd_) != 0) {
      throw Error(fmt::format("fsync of {} failed: {}", path_.string(), std::strerror(errno)));
    }
    ::close(fd_);
    fd_ = -1;
    check_interrupt();
    if (::rename(path_.c_str(), dest.c_str()) != 0) {
      throw Error(fmt::format("cannot rename {} to {}: {}", path_.string(), dest.string(),
                              std::strerror(errno)));
    }
    committed_ = true;
    // Make the rename itself durable.
    const fs::path dir = dest.has_parent_path() ? dest.parent_path() : fs::path(".");
    if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  int fd_ = -1;
  fs::path path_;
  bool committed_ = false;
};

// Temporary files of earlier conversions to `dest` whose writer is gone (kill -9, a crash, a
// power cut): `dest.partial-XXXXXX` files that nobody holds a lock on. They are full-size, so
// they are removed (with a warning) before the free-space check. A file another running
// conversion holds is left alone, with a warning.
void remove_stale_partials(const fs::path& dest, const WriteOptions& options) {
  const fs::path dir = dest.has_parent_path() ? dest.parent_path() : fs::path(".");
  const std::string prefix = dest.filename().string() + ".partial-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(prefix) || name.size() != prefix.size() + 6) continue;
    std::error_code ec2;
    if (!entry.is_regular_file(ec2) || entry.is_symlink(ec2)) continue;
    const int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    const uint64_t size = static_cast<uint64_t>(fs::file_size(entry.path(), ec2));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      if (options.warn) {
        options.warn(fmt::format("{} is being written by another running conversion to the same "
                                 "output; left alone",
                                 entry.path().string()));
      }
      continue;
    }
    const bool removed = ::unlink(entry.path().c_str()) == 0;
    const int err = errno;
    ::close(fd);
    if (!options.warn) continue;
    if (removed) {
      options.warn(fmt::format("removed {} ({}), the temporary file of an earlier conversion "
                               "that did not finish (killed or crashed)",
                               entry.path().string(), human_bytes(size)));
    } else {
      options.warn(fmt::format("{} ({}) is left from an earlier conversion that did not finish, "
                               "and cannot be removed: {}; delete it by hand",
                               entry.path().string(), human_bytes(size), std::strerror(err)));
    }
  }
}

// The hint for a failed write or reservation of the archive.
std::string write_error_hint(int err) {
  if (err == ENOSPC || err == EDQUOT) return "free disk space, or write to another filesystem with -o";
  if (err == EFBIG) {
    return "the archive is larger than this process may write (ulimit -f) or than the "
           "filesystem's largest file: raise the limit or write to another filesystem with -o";
  }
  return "";
}

void write_all(int fd, const void* data, uint64_t num_bytes, uint64_t offset,
               const fs::path& path) {
  const auto* p = static_cast<const std::byte*>(data);
  while (num_bytes > 0) {
    const ssize_t w =
        ::pwrite(fd, p, std::min<uint64_t>(num_bytes, 1ull << 30), static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw Error(fmt::format("writing {} failed at offset {}: {}", path.string(), offset,
                              std::strerror(err)),
                  write_error_hint(err));
    }
    p += w;
    num_bytes -= static_cast<uint64_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

// Starts writeback of each chunk as it is written and, kWriteBehindChunks chunks later, waits
// for it and drops it from the page cache: dirty memory stays bounded (a few chunks) while the
// disk always has queued work. Measured on the 20b shape with a cached source on the 2-core dev
// VM: depth 1 ran at 0.49-0.81 GB/s, depth 4 at 0.42-0.53, depth 16 at 0.33 (the disk, not the
// CPU at 30-47%, is the limit, and deeper queues only add dirty memory).
class WriteBehind {
 public:
  explicit WriteBehind(int fd) : fd_(fd) {}
  void wrote(uint64_t offset, uint64_t num_bytes) {
    ::sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(num_bytes),
                      SYNC_FILE_RANGE_WRITE);
    pending_.push_back({offset, num_bytes});
    if (pending_.size() > kWriteBehindChunks) {
      const auto [off, n] = pending_.front();
      pending_.pop_front();
      ::sync_file_range(
          fd_, static_cast<off_t>(off), static_cast<off_t>(n),
          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      ::posix_fadvise(fd_, static_cast<off_t>(off), static_cast<off_t>(n), POSIX_FADV_DONTNEED);
    }
  }

 private:
  int fd_;
  std::deque<std::pair<uint64_t, uint64_t>> pending_;
};

// Page-rounded madvise on part of a read-only file mapping. Rounding outward is harmless: a
// dropped page of a clean file mapping is simply read again if touched.
void advise_pages(const std::byte* p, uint64_t num_bytes, int advice) {
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t b = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + num_bytes + page - 1) & ~(page - 1);
  if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, advice);
}

// "layers.{i}.<suffix>" for one of the two E8M0 scale tensors.
bool is_e8m0_scales(std::string_view name) {
  for (std::string_view suffix : {tensor_names::kMlp1Scales, tensor_names::kMlp2Scales}) {
    if (name.size() > suffix.size() && name.ends_with(suffix) &&
        name[name.size() - suffix.size() - 1] == '.') {
      return true;
    }
  }
  return false;
}


}  // namespace

ArchivePlan plan_archive(const ModelConfig& config, const WeightFormats& formats,
                         uint64_t tokenizer_bytes) {
  config.validate();
  ArchivePlan p;
  p.config = config;
  p.formats = formats;
  p.tensors = archive_tensors(config, formats);
  for (const TensorSpec& t : p.tensors) {
    GPTOSS_CHECK(t.name.size() < ar::kNameBytes, "tensor name {} is longer than {} bytes", t.name,
                 ar::kNameBytes - 1);
    GPTOSS_CHECK(t.shape.size() <= static_cast<size_t>(ar::kMaxRank), "tensor {} has rank {}",
                 t.name, t.shape.size());
  }
  p.dir_offset = ar::kHeaderBytes;
  uint64_t pos = ar::align_up(p.dir_offset + p.tensors.size() * ar::kEntryBytes);
  if (tokenizer_bytes > 0) {
    p.tokenizer_offset = pos;
    p.tokenizer_bytes = tokenizer_bytes;
    pos = ar::align_up(pos + tokenizer_bytes);
  }
  p.data_offset = pos;
  for (const TensorSpec& t : p.tensors) {
    p.offsets.push_back(pos);
    p.tensor_bytes += t.num_bytes();
    pos = ar::align_up(pos + t.num_bytes());
  }
  p.file_bytes = pos;
  return p;
}

uint64_t free_bytes_at(const fs::path& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) {
    throw Error(
        fmt::format("cannot query free space of {}: {}", dir.string(), std::strerror(errno)));
  }
  return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
}

WriteResult write_archive(const fs::path& out, const ArchivePlan& plan, const PieceSource& source,
                          const TokenizerBlob& tokenizer, const WriteOptions& options) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  GPTOSS_CHECK(tokenizer.bytes.size() == plan.tokenizer_bytes,
               "internal: the plan has a {}-byte tokenizer, the blob is {} bytes",
               plan.tokenizer_bytes, tokenizer.bytes.size());
  GPTOSS_CHECK((tokenizer.format == ar::TokenizerFormat::kNone) == tokenizer.bytes.empty(),
               "internal: tokenizer format and bytes disagree");

  // Destination checks, all before anything is created.
  if (out.empty()) throw Error("no output file given", "use -o FILE.gptoss");
  const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error(fmt::format("output directory {} does not exist", dir.string()),
                "create it first, or choose another -o");
  }
  if (fs::exists(out, ec)) {
    if (fs::is_directory(out, ec)) {
      throw Error(fmt::format("output {} is a directory", out.string()),
                  "give a file name, e.g. -o model.gptoss");
    }
    if (!options.force) {
      throw Error(fmt::format("output {} already exists", out.string()),
                  "pass --force to replace it, or choose another -o");
    }
  }
  remove_stale_partials(out, options);
  const uint64_t free_bytes =
      options.free_bytes_override ? *options.free_bytes_override : free_bytes_at(dir);
  if (free_bytes < plan.file_bytes) {
    throw Error(fmt::format("not enough free space in {}: the archive needs {} ({} bytes), {} "
                            "({} bytes) are available",
                            dir.string(), human_bytes(plan.file_bytes), plan.file_bytes,
                            human_bytes(free_bytes), free_bytes),
                "free disk space, or write the archive to another filesystem with -o");
  }

  StopSignals signals(options.handle_signals);
  TempFile tmp(out);
  const int fd = tmp.fd();
  // Reserve the space now: running out later is then impossible, and the unwritten padding
  // reads as zeros. Filesystems without fallocate fall back to a sparse file (also zeros).
  if (::fallocate(fd, 0, 0, static_cast<off_t>(plan.file_bytes)) != 0 && errno != EOPNOTSUPP &&
      errno != ENOSYS) {
    const int err = errno;
    throw Error(fmt::format("cannot reserve {} bytes for {}: {}", plan.file_bytes,
                            tmp.path().string(), std::strerror(err)),
                write_error_hint(err));
  }

  WriteResult result;
  result.file_bytes = plan.file_bytes;
  const uint64_t total = plan.tensor_bytes + plan.tokenizer_bytes;
  uint64_t done = 0;
  WriteBehind write_behind(fd);
  auto after_chunk = [&](uint64_t n) {
    done += n;
    if (options.progress) {
      options.progress({done, total, std::chrono::duration<double>(Clock::now() - start).count()});
    }
    if (options.fail_after_bytes && done >= *options.fail_after_bytes) {
      throw Error(fmt::format("test hook: failing after {} bytes", done));
    }
    check_interrupt();
  };

  // The tokenizer section (the header's magic is written last: until then the file has none).
  ar::Header h;
  std::memset(&h, 0, sizeof(h));
  if (!tokenizer.bytes.empty()) {
    write_all(fd, tokenizer.bytes.data(), tokenizer.bytes.size(), plan.tokenizer_offset,
              tmp.path());
    h.tokenizer_offset = plan.tokenizer_offset;
    h.tokenizer_bytes = plan.tokenizer_bytes;
    h.tokenizer_xxh64 = XXH64(tokenizer.bytes.data(), tokenizer.bytes.size(), 0);
    const Sha256::Digest sha = Sha256::digest(tokenizer.bytes);
    std::memcpy(h.tokenizer_sha256, sha.data(), sha.size());
    after_chunk(tokenizer.bytes.size());
  }

  // Tensor blobs.
  std::vector<ar::TensorEntry> dir_entries(plan.tensors.size());
  XXH64_state_t state;
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const TensorSpec& spec = plan.tensors[i];
    const std::vector<std::span<const std::byte>> pieces = source(spec);
    uint64_t piece_bytes = 0;
    for (const auto& piece : pieces) piece_bytes += piece.size();
    GPTOSS_CHECK(piece_bytes == spec.num_bytes(),
                 "tensor {}: the source has {} bytes, the archive needs {}", spec.name, piece_bytes,
                 spec.num_bytes());
    const bool count_scales = is_e8m0_scales(spec.name);
    // Quantized tensors live in heap memory owned by the source: never madvise those pages.
    std::string quantized_from;
    const bool release = options.release_source_pages && !fp8_quantized_from(spec, &quantized_from);
    uint64_t overflow = 0;
    uint64_t offset = plan.offsets[i];
    XXH64_reset(&state, 0);
    SampleHasher sample(spec.num_bytes());
    for (const auto& piece : pieces) {
      if (release) {
        advise_pages(piece.data(), piece.size(), MADV_SEQUENTIAL);
      }
      for (uint64_t pos = 0; pos < piece.size();) {
        const uint64_t n = std::min<uint64_t>(kChunkBytes, piece.size() - pos);
        const std::byte* p = piece.data() + pos;
        if (release && pos + n < piece.size()) {
          // Start reading the next chunk while this one is hashed and written.
          advise_pages(p + n, std::min<uint64_t>(kChunkBytes, piece.size() - pos - n),
                       MADV_WILLNEED);
        }
        XXH64_update(&state, p, n);
        sample.update(offset - plan.offsets[i], p, n);
        if (count_scales) {
          const auto* u = reinterpret_cast<const uint8_t*>(p);
          overflow +=
              static_cast<uint64_t>(std::count_if(u, u + n, [](uint8_t s) { return s >= 253; }));
        }
        write_all(fd, p, n, offset, tmp.path());
        write_behind.wrote(offset, n);
        if (release) advise_pages(p, n, MADV_DONTNEED);
        offset += n;
        pos += n;
        after_chunk(n);
      }
    }
    if (overflow > 0) {
      const std::string what = fmt::format(
          "{}: {} E8M0 scale bytes in 253..255 (dequantized values can overflow BF16; 255 is "
          "NaN)",
          spec.name, overflow);
      if (options.strict) {
        throw Error(what,
                    "this checkpoint has out-of-range MXFP4 scales; drop --strict to "
                    "convert anyway (the values are stored unchanged)");
      }
      if (options.warn) options.warn(what);
      result.scale_overflows.push_back({spec.name, overflow});
    }

    ar::TensorEntry& e = dir_entries[i];
    std::memset(&e, 0, sizeof(e));
    std::memcpy(e.name, spec.name.data(), spec.name.size());
    e.dtype = static_cast<uint8_t>(spec.dtype);
    e.rank = static_cast<uint8_t>(spec.shape.size());
    for (size_t d = 0; d < spec.shape.size(); ++d) e.shape[d] = spec.shape[d];
    e.offset = plan.offsets[i];
    e.num_bytes = spec.num_bytes();
    e.xxh64 = XXH64_digest(&state);
    e.sample_xxh32 = sample.digest32();
  }

  // Directory, then the header with the magic: the file only becomes an archive here.
  const uint64_t dir_bytes = dir_entries.size() * sizeof(ar::TensorEntry);
  write_all(fd, dir_entries.data(), dir_bytes, plan.dir_offset, tmp.path());
  std::memcpy(h.magic, ar::kMagic, sizeof(h.magic));
  h.format_version = ar::kFormatVersion;
  h.layout_id = ar::kLayoutId;
  h.header_bytes = ar::kHeaderBytes;
  h.entry_bytes = ar::kEntryBytes;
  h.file_bytes = plan.file_bytes;
  h.dir_offset = plan.dir_offset;
  h.num_tensors = static_cast<uint32_t>(dir_entries.size());
  h.flags = ar::kFlagSampledChecksums;
  h.dir_xxh64 = XXH64(dir_entries.data(), dir_bytes, 0);
  h.tokenizer_format = static_cast<uint8_t>(tokenizer.format);
  h.attn_format = static_cast<uint8_t>(plan.formats.attn);
  h.lm_head_format = static_cast<uint8_t>(plan.formats.lm_head);
  h.expert_format = static_cast<uint8_t>(plan.formats.experts);
  h.data_offset = plan.data_offset;
  h.data_bytes = plan.file_bytes - plan.data_offset;
  h.config = to_config_record(plan.config);
  h.header_xxh64 = XXH64(&h, offsetof(ar::Header, header_xxh64), 0);
  check_interrupt();
  if (::ftruncate(fd, static_cast<off_t>(plan.file_bytes)) != 0) {
    throw Error(fmt::format("cannot size {}: {}", tmp.path().string(), std::strerror(errno)));
  }
  write_all(fd, &h, sizeof(h), 0, tmp.path());
  tmp.commit(out);

  result.bytes_copied = done;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace gptoss::conv
