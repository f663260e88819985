#include "bench/bench_load.h"

#include <fmt/core.h>
#include <sys/mman.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "host/archive/archive.h"
#include "host/build_info.h"
#include "host/error.h"
#include "host/file_reader.h"
#include "host/gpu.h"
#include "host/mapped_file.h"
#include "host/runtime/weight_upload.h"

namespace gptoss::cli {

namespace {

struct LoadOptions {
  std::string model;
  int threads = 0;
  int repeats = 3;
  std::vector<std::string> methods = {"pread", "map"};
  bool cold = false;
  bool json = false;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// The link's ceiling: one synchronous copy from pinned host memory, median of `repeats`.
double pinned_copy_gbs(int repeats) {
  constexpr size_t kBytes = size_t(1) << 30;
  void* host = gpu::pinned_alloc(kBytes);
  void* dev = nullptr;
  try {
    dev = gpu::device_alloc(kBytes, "pinned-copy buffer");
  } catch (...) {
    gpu::pinned_free(host);
    throw;
  }
  std::memset(host, 0x5a, kBytes);
  std::vector<double> gbs;
  gpu::copy_to_device(dev, host, kBytes);  // warm-up
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    gpu::copy_to_device(dev, host, kBytes);
    gbs.push_back(kBytes / seconds_since(t0) / 1e9);
  }
  gpu::device_free(dev);
  gpu::pinned_free(host);
  return median(gbs);
}

// The file's ceiling: the items' bytes read with `threads` threads (32 MB preads into plain
// memory), as the upload reads them.
double file_read_gbs(const FileReader& file, const std::vector<UploadItem>& items, int threads) {
  constexpr size_t kChunk = size_t(32) << 20;
  struct Piece {
    uint64_t offset;
    size_t len;
  };
  std::vector<Piece> pieces;
  uint64_t total = 0;
  for (const UploadItem& it : items) {
    for (size_t o = 0; o < it.bytes; o += kChunk)
      pieces.push_back({it.file_offset + o, std::min(kChunk, it.bytes - o)});
    total += it.bytes;
  }
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex m;
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      try {
        std::unique_ptr<std::byte[]> buf(new std::byte[kChunk]);
        for (size_t i = next++; i < pieces.size(); i = next++)
          file.read_at(buf.get(), pieces[i].len, pieces[i].offset);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        if (!error) error = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
  return total / seconds_since(t0) / 1e9;
}

// Fraction of the file's pages in the page cache (mincore over its mapping); -1 if unknown.
double resident_fraction(const WeightsFile& f) {
  const long page = ::sysconf(_SC_PAGESIZE);
  const uintptr_t begin = reinterpret_cast<uintptr_t>(f.base) & ~uintptr_t(page - 1);
  const size_t len = size_t(reinterpret_cast<uintptr_t>(f.base) + f.size - begin);
  std::vector<unsigned char> vec((len + size_t(page) - 1) / size_t(page));
  if (::mincore(reinterpret_cast<void*>(begin), len, vec.data()) != 0) return -1.0;
  size_t in = 0;
  for (unsigned char v : vec) in += v & 1u;
  return vec.empty() ? 0.0 : double(in) / double(vec.size());
}

void run_load(const LoadOptions& o) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each figure as soon as it is measured
  if (o.repeats < 1) throw Error("--repeats must be at least 1", "use --repeats 3 (the default)");
  std::string why;
  if (!gpu::available(&why)) {
    throw Error(fmt::format("bench load needs a GPU: {}", why), "run it on a machine with a GPU");
  }
  const MappedArchive archive = MappedArchive::open(o.model);
  const std::optional<WeightsFile> wf = archive.weights_file();
  GPTOSS_CHECK(wf.has_value(), "internal: an opened archive has no file");
  const FileReader file(wf->path, wf->size);
  // Every tensor of the archive, packed into one device allocation.
  std::vector<UploadItem> items;
  uint64_t total = 0;
  for (const ArchiveTensor& t : archive.entries()) {
    items.push_back({wf->base + t.offset, t.offset, nullptr, size_t(t.num_bytes)});
    total += t.num_bytes;
  }
  std::byte* dev = static_cast<std::byte*>(gpu::device_alloc(total, "archive weights"));
  {
    uint64_t off = 0;
    for (UploadItem& it : items) {
      it.dst = dev + off;
      off += it.bytes;
    }
  }
  const int hw = int(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = o.threads > 0 ? o.threads : std::min(hw, 8);
  std::vector<std::pair<std::string, UploadOptions>> methods;
  for (const std::string& m : o.methods) {
    UploadOptions up;
    up.threads = threads;
    up.progress = false;
    if (m == "pread") {
      up.file = &file;
    } else if (m != "map") {
      throw Error(fmt::format("--methods: unknown method '{}'", m), "use pread, map or pread,map");
    }
    methods.emplace_back(m, up);
  }
  const gpu::DeviceInfo device = gpu::device_info();
  fmt::print(stderr, "{}: {:.2f} GB of tensors, {} reader threads, {} on {}\n", o.model,
             total / 1e9, threads, gpu::backend_name(), device.name);

  nlohmann::json j = {{"bench", "load"},
                      {"device", device.name},
                      {"commit", build_commit()},
                      {"model", o.model},
                      {"bytes", total},
                      {"threads", threads}};
  const double link = pinned_copy_gbs(o.repeats);
  fmt::print("pinned host->device copy            {:8.2f} GB/s  (the link, median of {} x 1 GiB)\n",
             link, o.repeats);
  j["pinned_copy_gbs"] = link;
  try {
    if (o.cold) {
      double resident = 0;
      auto cold_start = [&] {
        if (!file.drop_page_cache()) {
          throw Error("the system refused to drop the file's pages (posix_fadvise)",
                      "measure warm only (without --cold)");
        }
        resident = std::max(resident, resident_fraction(*wf));
      };
      std::vector<double> read;
      for (int r = 0; r < o.repeats; ++r) {
        cold_start();
        read.push_back(file_read_gbs(file, items, threads));
      }
      const double rd = median(read);
      fmt::print("file read, cold                     {:8.2f} GB/s  (page cache dropped first)\n",
                 rd);
      j["cold_read_gbs"] = rd;
      for (const auto& [name, up] : methods) {
        std::vector<double> load;
        for (int r = 0; r < o.repeats; ++r) {
          cold_start();
          if (up.file) {
            load.push_back(upload_weights(items, up).gb_per_s());
          } else {
            // A fresh map of the file, unmapped afterwards: pages mapped by this process could
            // not be dropped for the next repetition.
            const std::shared_ptr<MappedFile> map = MappedFile::open(wf->path);
            std::vector<UploadItem> mapped = items;
            for (UploadItem& it : mapped) it.src = map->bytes().data() + it.file_offset;
            load.push_back(upload_weights(mapped, up).gb_per_s());
          }
        }
        const double ld = median(load);
        fmt::print("upload, cold, {:<12}          {:8.2f} GB/s  ({:.2f}x the cold read's time)\n",
                   name, ld, rd / ld);
        j["cold_upload_gbs_" + name] = ld;
      }
      fmt::print("  (at most {:.1f}% of the file's pages were still cached after a drop)\n",
                 100 * resident);
      j["cold_resident_max"] = resident;
    }
    file_read_gbs(file, items, threads);  // warms the page cache (when it has room)
    std::vector<double> read;
    for (int r = 0; r < o.repeats; ++r) read.push_back(file_read_gbs(file, items, threads));
    const double rd = median(read), resident = resident_fraction(*wf);
    fmt::print(
        "file read, warm                     {:8.2f} GB/s  ({:.0f}% of the file in the page "
        "cache)\n",
        rd, 100 * resident);
    j["warm_read_gbs"] = rd;
    j["warm_resident"] = resident;
    for (const auto& [name, up] : methods) {
      std::vector<double> load;
      for (int r = 0; r < o.repeats; ++r) load.push_back(upload_weights(items, up).gb_per_s());
      const double ld = median(load);
      fmt::print("upload, warm, {:<12}          {:8.2f} GB/s  ({:.0f}% of the pinned copy)\n", name,
                 ld, 100 * ld / link);
      j["warm_upload_gbs_" + name] = ld;
    }
  } catch (...) {
    gpu::device_free(dev);
    throw;
  }
  gpu::device_free(dev);
  if (o.json) fmt::print("{}\n", j.dump());
}

}  // namespace

void add_load_command(CLI::App& bench) {
  auto opts = std::make_shared<LoadOptions>();
  CLI::App* load = bench.add_subcommand(
      "load",
      "archive -> GPU upload rate, beside a pinned host->device copy and a plain read of the "
      "same file measured in the same run");
  load->add_option("-m,--model", opts->model, "archive (.gptoss) to load")->required();
  load->add_option("--threads", opts->threads,
                   "reader threads (default: hardware threads, at most 8)")
      ->check(CLI::Range(1, 64));
  load->add_option("--repeats", opts->repeats, "measurements per figure (median)");
  load->add_option("--methods", opts->methods,
                   "upload methods to time (comma-separated): pread (the file read into pinned "
                   "buffers), map (the file's memory map copied into pinned buffers)")
      ->delimiter(',');
  load->add_flag(
      "--cold", opts->cold,
      "also measure with the file's pages dropped from the page cache first (posix_fadvise)");
  load->add_flag("--json", opts->json, "also print one JSON object");
  load->callback([opts] { run_load(*opts); });
}

}  // namespace gptoss::cli
