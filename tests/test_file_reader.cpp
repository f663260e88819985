// test_file_reader.cpp — FileReader (host/file_reader.h), the positioned reads behind the weight
// upload, and `gptoss bench load`'s refusals (label cpu). The upload itself is tested on the GPU
// (tests/gpu_test_upload.cpp).
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "host/error.h"
#include "host/file_reader.h"
#include "tests/cli_support.h"
#include "tests/temp_dir.h"

using gptoss::Error;
using gptoss::FileReader;

namespace {

std::vector<unsigned char> random_file(const std::filesystem::path& p, size_t n, uint32_t seed) {
  std::vector<unsigned char> bytes(n);
  std::mt19937 rng(seed);
  for (auto& b : bytes) b = static_cast<unsigned char>(rng());
  FILE* f = std::fopen(p.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(std::fwrite(bytes.data(), 1, n, f) == n);
  std::fclose(f);
  return bytes;
}

}  // namespace

TEST_CASE("FileReader reads exact ranges, from several threads at once", "[file_reader]") {
  gptoss::test::TempDir dir;
  const auto path = dir.path / "data.bin";
  const size_t n = (3u << 20) + 123;  // not a multiple of a page
  const auto bytes = random_file(path, n, 11);
  const FileReader r(path, n);
  CHECK(r.size() == n);
  std::vector<std::thread> pool;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937 rng(uint32_t(100 + t));
      int good = 1;
      for (int i = 0; i < 50; ++i) {
        const size_t off = rng() % n, len = std::min<size_t>(n - off, 1 + rng() % 200000);
        std::vector<unsigned char> buf(len, 0xee);
        r.read_at(buf.data(), len, off);
        good &= std::equal(buf.begin(), buf.end(), bytes.begin() + long(off));
      }
      ok[size_t(t)] = good;
    });
  }
  for (auto& th : pool) th.join();
  CHECK(ok == std::vector<int>(4, 1));
}

TEST_CASE("FileReader: a file that shrank or changed size is a clear error", "[file_reader]") {
  gptoss::test::TempDir dir;
  const auto path = dir.path / "data.bin";
  random_file(path, 1 << 16, 5);
  // Opened with the size the caller saw earlier (the archive's mapping): a mismatch is refused.
  try {
    FileReader r(path, 1 << 17);
    FAIL("a size mismatch was accepted");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("changed while loading"));
    CHECK_THAT(e.hint(), Catch::Contains("reconvert"));
  }
  // Shrinks after opening: the read that runs past the new end names the offset.
  FileReader r(path, 1 << 16);
  std::filesystem::resize_file(path, 1000);
  std::vector<unsigned char> buf(4096);
  try {
    r.read_at(buf.data(), buf.size(), 512);
    FAIL("a short read was accepted");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("ended at offset 1000"));
    CHECK_THAT(e.what(), Catch::Contains("3608 more bytes"));
  }
  CHECK_THROWS_WITH(FileReader(dir.path / "missing.bin"), Catch::Contains("cannot open"));
}

TEST_CASE("bench load: bad requests are refused with a message", "[file_reader][cli]") {
  gptoss::test::TempDir dir;
  std::string out, err;
  // No model: CLI11 names the missing option.
  CHECK(gptoss::test::run_gptoss("bench load", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("--model"));
  // A file that does not exist.
  CHECK(gptoss::test::run_gptoss("bench load -m " + (dir.path / "none.gptoss").string(), dir.path,
                                 &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("no such file") || Catch::Contains("needs a GPU"));
}
