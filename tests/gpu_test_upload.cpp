// gpu_test_upload.cpp — the weight upload (host/runtime/weight_upload.h) on the GPU: the engine's
// upload from an archive's map equals one from a heap image; reading the file with pread gives
// the same device bytes as copying from memory, with any thread count and chunk size; and a file
// that shrinks while loading is a clear error.
#include <catch2/catch.hpp>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "converter/convert.h"
#include "converter/synth.h"
#include "host/archive/archive.h"
#include "host/decode_options.h"
#include "host/error.h"
#include "host/gpu.h"
#include "host/runtime/engine.h"
#include "host/runtime/weight_upload.h"
#include "tests/temp_dir.h"

using namespace gptoss;

namespace {

// One layer, 4 experts, vocabulary 512, real widths (about 110 MB), converted in `dir`.
std::filesystem::path small_archive(const std::filesystem::path& dir) {
  const ModelConfig config = conv::synth_config("tiny", /*layers=*/1, /*experts=*/4, /*vocab=*/512);
  conv::SynthWriteOptions so;
  conv::write_synth_checkpoint(dir / "ckpt", config, /*seed=*/3, so);
  conv::ConvertOptions co;
  co.checkpoint = dir / "ckpt";
  co.output = dir / "small.gptoss";
  co.no_tokenizer = true;
  co.write.handle_signals = false;
  conv::convert_checkpoint(co);
  std::filesystem::remove_all(dir / "ckpt");
  return co.output;
}

}  // namespace

TEST_CASE("upload: the archive's memory map and a heap image of it give the same device bytes",
          "[upload]") {
  test::TempDir dir;
  const auto path = small_archive(dir.path);
  const MappedArchive mapped = MappedArchive::open(path);
  auto image = std::make_shared<std::vector<std::byte>>(std::filesystem::file_size(path));
  {
    FILE* f = std::fopen(path.c_str(), "rb");
    REQUIRE(f != nullptr);
    REQUIRE(std::fread(image->data(), 1, image->size(), f) == image->size());
    std::fclose(f);
  }
  const MappedArchive heap = MappedArchive::parse(image, *image, "heap image");
  DecodeOptions o;
  o.max_context = 16;
  o.quiet = true;
  uint64_t expected = 0;
  for (const TensorSpec& s : canonical_tensors(mapped.config())) expected += s.num_bytes();
  std::vector<uint64_t> a, b;
  {
    GpuEngine e(mapped.weights(), o);
    CHECK(e.upload_stats().bytes == expected);
    CHECK_FALSE(e.upload_stats().from_file);
    CHECK(e.upload_stats().gb_per_s() > 0);
    a = e.weight_hashes();
  }
  {
    GpuEngine e(heap.weights(), o);
    CHECK(e.upload_stats().bytes == expected);
    b = e.weight_hashes();
  }
  CHECK(a == b);
}

TEST_CASE("upload: any thread count and chunk size moves the same bytes; a shrinking file fails",
          "[upload]") {
  test::TempDir dir;
  const auto path = small_archive(dir.path);
  std::vector<unsigned char> host(std::filesystem::file_size(path));
  {
    FILE* f = std::fopen(path.c_str(), "rb");
    REQUIRE(f != nullptr);
    REQUIRE(std::fread(host.data(), 1, host.size(), f) == host.size());
    std::fclose(f);
  }
  // Three ranges of odd sizes and offsets, back to back on the device.
  const size_t n = host.size();
  const std::vector<std::pair<size_t, size_t>> ranges = {
      {0, 4097}, {5000, n / 3}, {n / 2, n - n / 2 - 7}};
  size_t total = 0;
  for (auto [off, len] : ranges) total += len;
  void* dev = gpu::device_alloc(total, "upload test");
  std::vector<UploadItem> items;
  {
    size_t d = 0;
    for (auto [off, len] : ranges) {
      items.push_back({reinterpret_cast<const std::byte*>(host.data()) + off, off,
                       static_cast<std::byte*>(dev) + d, len});
      d += len;
    }
  }
  const FileReader file(path, n);
  for (const bool from_file : {true, false}) {
    for (int threads : {1, 3, 8}) {
      for (size_t chunk : {size_t(1) << 16, size_t(777) * 1024, size_t(32) << 20}) {
        INFO("from file " << from_file << ", threads " << threads << ", chunk " << chunk);
        gpu::memset_device(dev, 0xcd, total);
        UploadOptions uo;
        uo.file = from_file ? &file : nullptr;
        uo.threads = threads;
        uo.chunk_bytes = chunk;
        uo.progress = false;
        const UploadStats st = upload_weights(items, uo);
        CHECK(st.bytes == total);
        std::vector<unsigned char> back(total);
        gpu::copy_to_host(back.data(), dev, total);
        size_t d = 0;
        bool same = true;
        for (auto [off, len] : ranges) {
          same &= std::memcmp(back.data() + d, host.data() + off, len) == 0;
          d += len;
        }
        CHECK(same);
      }
    }
  }
  // The file shrinks after it was opened: the upload stops with the reader's error.
  std::filesystem::resize_file(path, n / 2);
  UploadOptions uo;
  uo.file = &file;
  uo.threads = 4;
  uo.progress = false;
  CHECK_THROWS_WITH(upload_weights(items, uo), Catch::Contains("shrank or changed while loading"));
  gpu::device_free(dev);
}
