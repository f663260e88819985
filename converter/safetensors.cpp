// safetensors.cpp — the strict safetensors reader (mmap + validation before any use) and the
// streaming writer (header first, then each tensor filled chunk by chunk into a fixed buffer).
// The writer overlaps filling with writing on a second thread and can split a chunk's fill over
// more threads when the entries' fill functions allow it (SafetensorsWriteOptions).
#include "converter/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "host/error.h"

namespace gptoss::conv {

namespace fs = std::filesystem;

// ---- reader -------------------------------------------------------------------------------------

namespace {

constexpr std::string_view kCorruptHint =
    "the file is damaged or not a safetensors file: re-download or regenerate it";

uint64_t load_le64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint64_t>(p[i]);
  return v;
}

// A non-negative JSON integer that fits in uint64_t (floats, negatives and booleans refused).
bool json_to_u64(const nlohmann::json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    if (s < 0) return false;
    *out = static_cast<uint64_t>(s);
    return true;
  }
  return false;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  auto map = MappedFile::open(path);
  const auto bytes = map->bytes();
  return parse(std::move(map), bytes, path.string());
}

SafetensorsFile SafetensorsFile::parse(std::shared_ptr<MappedFile> keepalive,
                                       std::span<const std::byte> file_bytes,
                                       const std::string& label) {
  auto fail = [&](const std::string& what) -> Error {
    return Error(fmt::format("{}: {}", label, what), std::string(kCorruptHint));
  };
  const uint64_t file_size = file_bytes.size();
  if (file_size < 8) {
    throw fail(fmt::format("file is {} bytes, too short for the 8-byte header length", file_size));
  }
  const uint64_t header_len = load_le64(file_bytes.data());
  if (header_len > kMaxHeaderBytes) {
    throw fail(
        fmt::format("header length {} exceeds the {}-byte limit", header_len, kMaxHeaderBytes));
  }
  if (header_len > file_size - 8) {
    throw fail(fmt::format("header length {} runs past the end of the file ({} bytes): truncated",
                           header_len, file_size));
  }
  if (header_len < 2) throw fail(fmt::format("header length {} is too short", header_len));

  const char* hdr = reinterpret_cast<const char*>(file_bytes.data() + 8);
  // Duplicate top-level keys would silently shadow each other in nlohmann::json: catch them in
  // the parse callback (depth 1 = keys of the top-level object).
  std::set<std::string> seen_keys;
  std::string duplicate;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(
        hdr, hdr + header_len,
        [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
          if (event == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string()) {
            if (!seen_keys.insert(parsed.get<std::string>()).second && duplicate.empty()) {
              duplicate = parsed.get<std::string>();
            }
          }
          return true;
        });
  } catch (const nlohmann::json::exception& e) {
    throw fail(fmt::format("header is not valid JSON ({})", e.what()));
  }
  if (!header.is_object()) {
    throw fail(fmt::format("header is a JSON {}, expected an object", header.type_name()));
  }
  if (!duplicate.empty()) throw fail(fmt::format("header names '{}' twice", duplicate));

  SafetensorsFile f;
  f.map_ = std::move(keepalive);
  f.path_ = label;
  f.file_size_ = file_size;
  const uint64_t data_size = file_size - 8 - header_len;
  f.data_area_ = file_bytes.subspan(8 + header_len);

  for (const auto& item : header.items()) {
    // Not a structured binding: the lambdas below capture the name (clang < 16 cannot).
    const std::string& name = item.key();
    const nlohmann::json& info = item.value();
    if (name == "__metadata__") {
      if (!info.is_object()) throw fail("__metadata__ must be an object of strings");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) throw fail(fmt::format("__metadata__ key '{}' is not a string", k));
        f.metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& what) -> Error {
      return fail(fmt::format("tensor '{}': {}", name, what));
    };
    if (name.empty()) throw fail("a tensor has an empty name");
    if (!info.is_object()) throw bad("entry is not an object");
    const auto dt = info.find("dtype");
    const auto sh = info.find("shape");
    const auto off = info.find("data_offsets");
    if (dt == info.end() || !dt->is_string()) throw bad("missing or non-string 'dtype'");
    if (sh == info.end() || !sh->is_array()) throw bad("missing or non-array 'shape'");
    if (off == info.end() || !off->is_array() || off->size() != 2) {
      throw bad("'data_offsets' must be an array of two integers");
    }
    SafetensorsTensor t;
    t.name = name;
    const std::string dtype_str = dt->get<std::string>();
    if (!dtype_from_name(dtype_str, &t.dtype))
      throw bad(fmt::format("unknown dtype '{}'", dtype_str));
    // Element count with overflow checks: the byte span is at most the file size anyway.
    bool has_zero = false;
    for (const auto& d : *sh) {
      uint64_t v = 0;
      if (!json_to_u64(d, &v) || v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        throw bad(
            fmt::format("shape {} has an entry that is not a non-negative integer", sh->dump()));
      }
      t.shape.push_back(static_cast<int64_t>(v));
      has_zero = has_zero || v == 0;
    }
    // A zero dimension makes an empty tensor whatever the other dimensions are.
    uint64_t numel = has_zero ? 0 : 1;
    bool overflow = false;
    for (int64_t v : t.shape) {
      if (has_zero) break;
      const uint64_t u = static_cast<uint64_t>(v);
      if (numel > std::numeric_limits<uint64_t>::max() / u) {
        overflow = true;
        break;
      }
      numel *= u;
    }
    const uint64_t esize = dtype_size(t.dtype);
    if (overflow || numel > std::numeric_limits<uint64_t>::max() / esize) {
      throw bad(fmt::format("shape {} overflows a 64-bit byte count", sh->dump()));
    }
    if (!json_to_u64((*off)[0], &t.begin) || !json_to_u64((*off)[1], &t.end)) {
      throw bad(fmt::format("data_offsets {} are not non-negative integers", off->dump()));
    }
    if (t.begin > t.end) {
      throw bad(fmt::format("data_offsets {} begin after they end", off->dump()));
    }
    if (t.end > data_size) {
      throw bad(fmt::format("data_offsets {} run past the data area ({} bytes): truncated file?",
                            off->dump(), data_size));
    }
    if (t.end - t.begin != numel * esize) {
      throw bad(fmt::format("shape {} of {} needs {} bytes but data_offsets {} span {}", sh->dump(),
                            dtype_str, numel * esize, off->dump(), t.end - t.begin));
    }
    f.index_[t.name] = f.tensors_.size();
    f.tensors_.push_back(std::move(t));
  }

  // No two non-empty spans may share a byte.
  std::vector<const SafetensorsTensor*> order;
  for (const auto& t : f.tensors_) {
    if (t.end > t.begin) order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->begin < order[i - 1]->end) {
      throw fail(fmt::format("tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", order[i - 1]->name,
                             order[i - 1]->begin, order[i - 1]->end, order[i]->name,
                             order[i]->begin, order[i]->end));
    }
  }
  return f;
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const std::byte> SafetensorsFile::data(const std::string& name) const {
  const SafetensorsTensor* t = find(name);
  if (t == nullptr) {
    throw Error(fmt::format("{}: no tensor named '{}'", path_.string(), name));
  }
  return data_area_.subspan(t->begin, t->end - t->begin);
}

// ---- writer -------------------------------------------------------------------------------------

namespace {

// Owns a file descriptor; removes the temporary file unless committed.
class TempFile {
 public:
  explicit TempFile(fs::path final_path) : final_(std::move(final_path)) {
    tmp_ = final_;
    tmp_ += fmt::format(".tmp{}", static_cast<long>(::getpid()));
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw Error(fmt::format("cannot create '{}': {}", tmp_.string(), std::strerror(errno)),
                  "check that the output directory exists and is writable");
    }
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) {
      std::error_code ec;
      fs::remove(tmp_, ec);
    }
  }
  void write_all(const std::byte* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
      if (w < 0) {
        if (errno == EINTR) continue;
        throw Error(
            fmt::format("writing '{}' failed: {}", final_.string(), std::strerror(errno)),
            errno == ENOSPC ? "the disk is full: free space or pick another directory" : "");
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  void commit() {
    if (::close(fd_) != 0) {
      fd_ = -1;
      throw Error(fmt::format("closing '{}' failed: {}", final_.string(), std::strerror(errno)));
    }
    fd_ = -1;
    std::error_code ec;
    fs::rename(tmp_, final_, ec);
    if (ec) {
      throw Error(fmt::format("cannot rename '{}' to '{}': {}", tmp_.string(), final_.string(),
                              ec.message()));
    }
    committed_ = true;
  }

 private:
  fs::path final_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// One chunk of the output: a run of (entry, offset, length) pieces packed into a buffer.
struct Chunk {
  std::vector<std::byte> buf;
  size_t used = 0;
  bool last = false;
  std::exception_ptr error;
};

}  // namespace

std::string safetensors_header(const std::vector<SafetensorsEntry>& entries,
                               const std::map<std::string, std::string>& metadata,
                               uint64_t* data_bytes) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& e : entries) {
    GPTOSS_CHECK(!e.name.empty() && e.name != "__metadata__", "invalid tensor name '{}'", e.name);
    GPTOSS_CHECK(!header.contains(e.name), "tensor '{}' is written twice", e.name);
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      GPTOSS_CHECK(d >= 0, "tensor '{}' has a negative dimension", e.name);
      numel *= static_cast<uint64_t>(d);
    }
    const uint64_t n = numel * dtype_size(e.dtype);
    header[e.name] = {
        {"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  // The reference library pads the header with spaces to a multiple of 8 so that the data area
  // is 8-byte aligned in the file.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (data_bytes != nullptr) *data_bytes = offset;
  return text;
}

uint64_t write_safetensors(const fs::path& path, const std::vector<SafetensorsEntry>& entries,
                           const std::map<std::string, std::string>& metadata,
                           const std::function<void(uint64_t bytes_done)>& progress) {
  SafetensorsWriteOptions options;
  options.metadata = metadata;
  options.progress = progress;
  return write_safetensors(path, entries, options);
}

uint64_t write_safetensors(const fs::path& path, const std::vector<SafetensorsEntry>& entries,
                           const SafetensorsWriteOptions& options) {
  uint64_t data_bytes = 0;
  const std::string header = safetensors_header(entries, options.metadata, &data_bytes);
  TempFile file(path);
  std::byte len_bytes[8];
  for (int i = 0; i < 8; ++i)
    len_bytes[i] = static_cast<std::byte>((header.size() >> (8 * i)) & 0xff);
  file.write_all(len_bytes, 8);
  file.write_all(reinterpret_cast<const std::byte*>(header.data()), header.size());

  const size_t chunk_bytes = std::max<size_t>(options.chunk_bytes, 4096);
  const int fill_threads = std::max(1, options.fill_threads);

  // Fills one chunk starting at (entry_idx, entry_off); advances the cursor. Pieces are split over
  // `fill_threads` workers by byte range (fill functions are pure in that mode).
  size_t entry_idx = 0;
  uint64_t entry_off = 0;
  auto fill_chunk = [&](Chunk& c) {
    struct Piece {
      const SafetensorsEntry* e;
      uint64_t off;
      std::byte* dst;
      size_t n;
    };
    std::vector<Piece> pieces;
    c.used = 0;
    while (entry_idx < entries.size() && c.used < chunk_bytes) {
      const auto& e = entries[entry_idx];
      uint64_t numel = 1;
      for (int64_t d : e.shape) numel *= static_cast<uint64_t>(d);
      const uint64_t total = numel * dtype_size(e.dtype);
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>(total - entry_off, chunk_bytes - c.used));
      if (n > 0) {
        GPTOSS_CHECK(static_cast<bool>(e.fill), "tensor '{}' has no fill function", e.name);
        pieces.push_back({&e, entry_off, c.buf.data() + c.used, n});
      }
      c.used += n;
      entry_off += n;
      if (entry_off == total) {
        ++entry_idx;
        entry_off = 0;
      }
    }
    c.last = entry_idx == entries.size();
    if (fill_threads == 1 || c.used < (size_t{1} << 20)) {
      for (const auto& p : pieces) p.e->fill(p.off, {p.dst, p.n});
      return;
    }
    // Split every piece into fill_threads contiguous slices, one worker per slice index.
    std::vector<std::thread> workers;
    std::vector<std::exception_ptr> errors(static_cast<size_t>(fill_threads));
    for (int w = 0; w < fill_threads; ++w) {
      workers.emplace_back([&, w] {
        try {
          for (const auto& p : pieces) {
            const size_t lo = p.n * static_cast<size_t>(w) / static_cast<size_t>(fill_threads);
            const size_t hi = p.n * static_cast<size_t>(w + 1) / static_cast<size_t>(fill_threads);
            if (hi > lo) p.e->fill(p.off + lo, {p.dst + lo, hi - lo});
          }
        } catch (...) {
          errors[static_cast<size_t>(w)] = std::current_exception();
        }
      });
    }
    for (auto& t : workers) t.join();
    for (auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
  };

  if (data_bytes == 0) {
    file.commit();
    return 8 + header.size();
  }

  // Two buffers: a producer thread fills one while this thread writes the other.
  Chunk chunks[2];
  for (auto& c : chunks)
    c.buf.resize(static_cast<size_t>(std::min<uint64_t>(chunk_bytes, data_bytes)));
  std::mutex mu;
  std::condition_variable cv;
  bool ready[2] = {false, false};
  bool abort = false;
  std::thread producer([&] {
    for (int i = 0;; i ^= 1) {
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return !ready[i] || abort; });
        if (abort) return;
      }
      Chunk& c = chunks[i];
      try {
        fill_chunk(c);
      } catch (...) {
        c.error = std::current_exception();
        c.last = true;
      }
      {
        std::lock_guard lock(mu);
        ready[i] = true;
      }
      cv.notify_all();
      if (c.last) return;
    }
  });

  uint64_t written = 0;
  try {
    for (int i = 0;; i ^= 1) {
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return ready[i]; });
      }
      Chunk& c = chunks[i];
      if (c.error) std::rethrow_exception(c.error);
      file.write_all(c.buf.data(), c.used);
      written += c.used;
      if (options.progress) options.progress(written);
      const bool last = c.last;
      {
        std::lock_guard lock(mu);
        ready[i] = false;
      }
      cv.notify_all();
      if (last) break;
    }
  } catch (...) {
    {
      std::lock_guard lock(mu);
      abort = true;
    }
    cv.notify_all();
    producer.join();
    throw;
  }
  producer.join();
  GPTOSS_CHECK(written == data_bytes, "{}: wrote {} data bytes, expected {}", path.string(),
               written, data_bytes);
  file.commit();
  return 8 + header.size() + written;
}

}  // namespace gptoss::conv
