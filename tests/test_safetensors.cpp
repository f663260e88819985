// test_safetensors.cpp — the safetensors reader's validation (every malformed-input class of the
// issue, plus a deterministic mutation fuzz that must never crash or read outside the image) and
// the streaming writer's round trip.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "converter/safetensors.h"
#include "host/error.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using gptoss::DType;
using gptoss::conv::SafetensorsEntry;
using gptoss::conv::SafetensorsFile;
using gptoss::test::TempDir;

namespace {

// An in-memory image: 8-byte little-endian header length, header text, `data_bytes` data bytes.
std::vector<std::byte> image(const std::string& header, size_t data_bytes,
                             uint64_t header_len_override = ~0ull) {
  const uint64_t n = header_len_override == ~0ull ? header.size() : header_len_override;
  std::vector<std::byte> out(8 + header.size() + data_bytes, std::byte{0});
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, header.data(), header.size());
  for (size_t i = 0; i < data_bytes; ++i) out[8 + header.size() + i] = static_cast<std::byte>(i);
  return out;
}

SafetensorsFile parse(const std::vector<std::byte>& bytes) {
  return SafetensorsFile::parse(nullptr, bytes, "test.safetensors");
}

// The message of the gptoss::Error that parse() throws (fails the test if none).
std::string parse_error(const std::vector<std::byte>& bytes) {
  try {
    parse(bytes);
  } catch (const gptoss::Error& e) {
    CHECK_FALSE(e.hint().empty());
    return e.what();
  }
  FAIL("parse() accepted a malformed image");
  return {};
}

using Catch::Matchers::Contains;

}  // namespace

TEST_CASE("safetensors: a well-formed image parses", "[safetensors]") {
  const std::string h =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
      R"("b":{"dtype":"U8","shape":[4],"data_offsets":[12,16]},)"
      R"("e":{"dtype":"F32","shape":[0,5],"data_offsets":[16,16]}})";
  const auto bytes = image(h, 16);
  const auto f = parse(bytes);
  REQUIRE(f.tensors().size() == 3);
  REQUIRE(f.find("a") != nullptr);
  CHECK(f.find("a")->dtype == DType::kBF16);
  CHECK(f.find("a")->shape == std::vector<int64_t>{2, 3});
  CHECK(f.find("zzz") == nullptr);
  CHECK(f.metadata().at("format") == "pt");
  const auto b = f.data("b");
  REQUIRE(b.size() == 4);
  CHECK(static_cast<int>(b[0]) == 12);
  CHECK(f.data("e").empty());
  CHECK_THROWS_AS(f.data("zzz"), gptoss::Error);
  // Every dtype the issue names is known.
  for (const char* dt : {"BF16", "F16", "F32", "U8", "I8", "I32", "I64"}) {
    const std::string one = std::string(R"({"t":{"dtype":")") + dt +
                            R"(","shape":[1],"data_offsets":[0,)" +
                            std::to_string(gptoss::dtype_size([&] {
                              DType t{};
                              REQUIRE(gptoss::dtype_from_name(dt, &t));
                              return t;
                            }())) +
                            "]}}";
    CHECK_NOTHROW(parse(image(one, 8)));
  }
}

TEST_CASE("safetensors: malformed images are rejected with a named error", "[safetensors]") {
  const std::string ok_tensor = R"("t":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]})";
  SECTION("truncated file (shorter than the length field)") {
    std::vector<std::byte> tiny(5, std::byte{0});
    CHECK_THAT(parse_error(tiny), Contains("test.safetensors") && Contains("too short"));
    CHECK_THAT(parse_error({}), Contains("too short"));
  }
  SECTION("truncated header") {
    auto b = image("{" + ok_tensor + "}", 8, /*header_len_override=*/4096);
    CHECK_THAT(parse_error(b), Contains("runs past the end"));
  }
  SECTION("huge header length") {
    auto b = image("{}", 0, /*header_len_override=*/1ull << 40);
    CHECK_THAT(parse_error(b), Contains("exceeds"));
    auto c = image("{}", 0, /*header_len_override=*/~0ull - 1);
    CHECK_THAT(parse_error(c), Contains("exceeds"));
  }
  SECTION("bad JSON") {
    CHECK_THAT(parse_error(image(R"({"t":{"dtype":"BF16",)", 8)), Contains("not valid JSON"));
    CHECK_THAT(parse_error(image("\xff\xfe garbage", 8)), Contains("not valid JSON"));
  }
  SECTION("non-object JSON") {
    CHECK_THAT(parse_error(image("[1,2,3]", 0)), Contains("expected an object"));
    CHECK_THAT(parse_error(image("42      ", 0)), Contains("expected an object"));
    CHECK_THAT(parse_error(image(R"({"t":[1,2]})", 0)), Contains("'t'"));
  }
  SECTION("unknown dtype") {
    auto b = image(R"({"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,2]}})", 2);
    CHECK_THAT(parse_error(b), Contains("'w'") && Contains("unknown dtype 'Q4_K'"));
  }
  SECTION("shape x dtype size differs from the byte span") {
    auto b = image(R"({"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,10]}})", 10);
    CHECK_THAT(parse_error(b), Contains("'w'") && Contains("needs 12 bytes"));
  }
  SECTION("negative, fractional or overflowing shape") {
    CHECK_THAT(parse_error(image(R"({"w":{"dtype":"U8","shape":[-1,4],"data_offsets":[0,4]}})", 4)),
               Contains("'w'") && Contains("non-negative integer"));
    CHECK_THAT(parse_error(image(R"({"w":{"dtype":"U8","shape":[2.5],"data_offsets":[0,2]}})", 4)),
               Contains("non-negative integer"));
    CHECK_THAT(parse_error(image(R"({"w":{"dtype":"U8","shape":["4"],"data_offsets":[0,4]}})", 4)),
               Contains("non-negative integer"));
    CHECK_THAT(
        parse_error(image(
            R"({"w":{"dtype":"BF16","shape":[4611686018427387904,4611686018427387904],)"
            R"("data_offsets":[0,0]}})",
            0)),
        Contains("overflows"));
    // 2^62 elements of F64 overflow the byte count even though the element count fits.
    CHECK_THAT(
        parse_error(image(
            R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0)),
        Contains("overflows"));
    CHECK_THAT(
        parse_error(image(
            R"({"w":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,0]}})", 0)),
        Contains("non-negative integer"));
    // A zero dimension after an overflowing prefix is a valid empty tensor.
    CHECK_NOTHROW(parse(image(
        R"({"w":{"dtype":"U8","shape":[4611686018427387904,8,0],"data_offsets":[0,0]}})", 0)));
  }
  SECTION("span outside the file") {
    auto b = image(R"({"w":{"dtype":"U8","shape":[100],"data_offsets":[0,100]}})", 50);
    CHECK_THAT(parse_error(b), Contains("'w'") && Contains("past the data area"));
    auto c =
        image(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}})", 0);
    CHECK_THAT(parse_error(c), Contains("'w'"));
  }
  SECTION("overlapping spans") {
    auto b = image(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                   R"("b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})",
                   12);
    CHECK_THAT(parse_error(b), Contains("'a'") && Contains("'b'") && Contains("overlap"));
    auto same = image(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                      R"("b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                      4);
    CHECK_THAT(parse_error(same), Contains("overlap"));
  }
  SECTION("begin > end") {
    auto b = image(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", 8);
    CHECK_THAT(parse_error(b), Contains("'w'") && Contains("begin after they end"));
  }
  SECTION("data_offsets and fields of the wrong form") {
    CHECK_THAT(parse_error(image(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0]}})", 4)),
               Contains("two integers"));
    CHECK_THAT(parse_error(image(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,-4]}})", 4)),
               Contains("not non-negative"));
    CHECK_THAT(parse_error(image(R"({"w":{"shape":[4],"data_offsets":[0,4]}})", 4)),
               Contains("dtype"));
    CHECK_THAT(parse_error(image(R"({"w":{"dtype":"U8","shape":4,"data_offsets":[0,4]}})", 4)),
               Contains("shape"));
    CHECK_THAT(parse_error(image(R"({"__metadata__":{"k":1}})", 0)), Contains("__metadata__"));
    CHECK_THAT(parse_error(image(R"({"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}})", 0)),
               Contains("empty name"));
  }
  SECTION("duplicate tensor names") {
    auto b = image(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                   R"("w":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                   8);
    CHECK_THAT(parse_error(b), Contains("'w' twice"));
  }
}

TEST_CASE("safetensors: mutated images never crash the reader", "[safetensors]") {
  const std::string h =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
      R"("b":{"dtype":"U8","shape":[4],"data_offsets":[12,16]}})";
  const auto good = image(h, 16);
  std::mt19937_64 rng(20240601);
  int accepted = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    auto b = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0:
          b[rng() % b.size()] = static_cast<std::byte>(rng());
          break;  // flip a byte
        case 1:
          b.resize(rng() % (b.size() + 1));
          break;  // truncate
        case 2:
          b[rng() % 8] = static_cast<std::byte>(rng());
          break;  // length field
        default:
          b.insert(b.begin() + static_cast<long>(rng() % (b.size() + 1)),
                   static_cast<std::byte>("0123456789,:[]{}\""[rng() % 17]));  // splice
      }
      if (b.empty()) break;
    }
    try {
      const auto f = SafetensorsFile::parse(nullptr, b, "fuzz");
      ++accepted;
      // Whatever was accepted lies inside the image.
      for (const auto& t : f.tensors()) {
        const auto d = f.data(t.name);
        CHECK(d.data() >= b.data());
        CHECK(d.data() + d.size() <= b.data() + b.size());
      }
    } catch (const gptoss::Error&) {
    }
  }
  INFO("accepted " << accepted << " of 4000 mutants");
  CHECK(accepted < 4000);
}

TEST_CASE("safetensors: the streaming writer round-trips through the reader", "[safetensors]") {
  TempDir dir;
  const fs::path p = dir.path / "rt.safetensors";
  std::vector<SafetensorsEntry> entries;
  // Patterned fills (value = f(tensor, offset)) so any misplaced chunk shows.
  auto fill_of = [](uint8_t tag) {
    return [tag](uint64_t off, std::span<std::byte> out) {
      for (size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<std::byte>(((off + i) * 31 + tag) & 0xff);
      }
    };
  };
  entries.push_back({"x.weight", DType::kBF16, {300, 77}, fill_of(1)});
  entries.push_back({"empty", DType::kF32, {0}, fill_of(2)});
  entries.push_back({"y.blocks", DType::kU8, {5000, 3}, fill_of(3)});
  entries.push_back({"z", DType::kI64, {7}, fill_of(4)});
  gptoss::conv::SafetensorsWriteOptions opt;
  opt.metadata = {{"format", "pt"}};
  opt.chunk_bytes = 4096;  // many chunks, tensors cut across chunk edges
  opt.fill_threads = GENERATE(1, 3);
  uint64_t last_progress = 0;
  opt.progress = [&](uint64_t done) {
    CHECK(done > last_progress);
    last_progress = done;
  };
  const uint64_t written = gptoss::conv::write_safetensors(p, entries, opt);
  CHECK(written == fs::file_size(p));
  CHECK(last_progress == 300 * 77 * 2 + 5000 * 3 + 7 * 8);
  CHECK(!fs::exists(dir.path / ("rt.safetensors.tmp" + std::to_string(::getpid()))));

  const auto f = SafetensorsFile::open(p);
  CHECK(f.file_size() == written);
  CHECK(f.metadata().at("format") == "pt");
  REQUIRE(f.tensors().size() == 4);
  for (uint8_t tag = 1; tag <= 4; ++tag) {
    const auto& e = entries[tag - 1];
    const auto* t = f.find(e.name);
    REQUIRE(t != nullptr);
    CHECK(t->dtype == e.dtype);
    CHECK(t->shape == e.shape);
    const auto d = f.data(e.name);
    std::vector<std::byte> want(d.size());
    fill_of(tag)(0, want);
    CHECK(std::equal(d.begin(), d.end(), want.begin(), want.end()));
  }
  // The data area starts 8-byte aligned (header padded with spaces), as the reference writes it.
  std::ifstream in(p, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  CHECK(n % 8 == 0);
}

TEST_CASE("safetensors: files damaged on disk name the file", "[safetensors]") {
  TempDir dir;
  const fs::path p = dir.path / "cut.safetensors";
  std::vector<SafetensorsEntry> entries = {
      {"w", DType::kU8, {1000}, [](uint64_t, std::span<std::byte> out) {
         std::fill(out.begin(), out.end(), std::byte{7});
       }}};
  gptoss::conv::write_safetensors(p, entries);
  CHECK_NOTHROW(SafetensorsFile::open(p));
  fs::resize_file(p, fs::file_size(p) - 10);
  try {
    SafetensorsFile::open(p);
    FAIL("truncated file accepted");
  } catch (const gptoss::Error& e) {
    CHECK_THAT(std::string(e.what()), Contains("cut.safetensors") && Contains("'w'"));
  }
  fs::resize_file(p, 0);
  CHECK_THROWS_WITH(SafetensorsFile::open(p), Contains("cut.safetensors") && Contains("too short"));
  CHECK_THROWS_WITH(SafetensorsFile::open(dir.path / "missing.safetensors"),
                    Contains("missing.safetensors"));
  CHECK_THROWS_AS(SafetensorsFile::open(dir.path), gptoss::Error);
}
