// test_archive.cpp — the .gptoss archive: writer/loader round trips on small in-memory models,
// rejection of corrupted, truncated and foreign files, safe writing (interrupts, injected
// failures, free space), MXFP4 scale-overflow reports, tokenizer tagging, the converter on
// synthetic checkpoints (both layouts) and the `gptoss convert` / `gptoss info` CLI.
#include <stdlib.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

#define XXH_INLINE_ALL  // header-only xxHash, to re-seal deliberately modified headers
#include <fmt/format.h>
#include <xxhash.h>

#include <nlohmann/json.hpp>

#include "converter/archive_writer.h"
#include "converter/checkpoint.h"
#include "converter/convert.h"
#include "converter/safetensors.h"
#include "converter/synth.h"
#include "host/archive/archive.h"
#include "host/archive/archive_format.h"
#include "host/data_files.h"
#include "host/error.h"
#include "host/weights_view.h"

namespace {

namespace fs = std::filesystem;
namespace ar = gptoss::archive;
using gptoss::Error;
using gptoss::MappedArchive;
using gptoss::ModelConfig;
using gptoss::TensorSpec;
using gptoss::WeightFormats;
using Bytes = std::vector<std::byte>;

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "gptoss-test-archive-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// Small widths so a whole model is a few MB: the archive code is shape-agnostic.
ModelConfig small_config() {
  ModelConfig c = ModelConfig::preset("tiny");
  c.num_layers = 2;
  c.num_experts = 4;
  c.experts_per_token = 2;
  c.vocab_size = 1024;
  c.hidden = 256;
  c.intermediate = 128;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 32;
  c.layer_sliding = gptoss::default_layer_pattern(c.num_layers);
  c.validate();
  return c;
}

uint64_t mix64(uint64_t z) {
  z ^= z >> 30;
  z *= 0xbf58476d1ce4e5b9ull;
  z ^= z >> 27;
  z *= 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

bool is_scales(const std::string& name) { return name.ends_with("scales"); }

// Every archive tensor as seeded bytes in memory; E8M0 scales stay in a sane 100..139.
struct MemModel {
  ModelConfig config;
  WeightFormats formats;
  std::map<std::string, Bytes> data;

  MemModel(const ModelConfig& c, const WeightFormats& f, uint64_t seed) : config(c), formats(f) {
    uint64_t k = seed;
    for (const TensorSpec& spec : gptoss::archive_tensors(c, f)) {
      Bytes b(spec.num_bytes());
      for (size_t i = 0; i < b.size(); ++i) {
        const uint64_t h = mix64(++k);
        b[i] = std::byte(is_scales(spec.name) ? 100 + h % 40 : h & 0xff);
      }
      data[spec.name] = std::move(b);
    }
  }
  // Each tensor served in up to three pieces, to exercise the concatenation.
  gptoss::conv::PieceSource source() const {
    return [this](const TensorSpec& spec) {
      const Bytes& b = data.at(spec.name);
      std::span<const std::byte> all(b);
      const size_t a = b.size() / 3, m = b.size() / 2;
      return std::vector<std::span<const std::byte>>{all.subspan(0, a), all.subspan(a, m - a),
                                                     all.subspan(m)};
    };
  }
};

gptoss::conv::TokenizerBlob small_tiktoken() {
  const std::string text = "IQ== 0\nIg== 1\nIw== 2\n";
  gptoss::conv::TokenizerBlob t;
  t.format = ar::TokenizerFormat::kTiktoken;
  for (char ch : text) t.bytes.push_back(std::byte(ch));
  t.source = "test";
  return t;
}

gptoss::conv::WriteResult write_model(const MemModel& m, const fs::path& out,
                                      gptoss::conv::WriteOptions options = {},
                                      const gptoss::conv::TokenizerBlob& tok = small_tiktoken()) {
  const auto plan = gptoss::conv::plan_archive(m.config, m.formats, tok.bytes.size());
  return gptoss::conv::write_archive(out, plan, m.source(), tok, options);
}

Bytes read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Bytes b(c.size());
  std::memcpy(b.data(), c.data(), c.size());
  return b;
}

void write_bytes(const fs::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(out);
}

MappedArchive parse_image(const Bytes& image) {
  auto owner = std::make_shared<Bytes>(image);
  return MappedArchive::parse(owner, std::span<const std::byte>(*owner), "image");
}

// The error parse_image() throws (test fails if it does not throw).
Error parse_error(const Bytes& image) {
  try {
    parse_image(image);
  } catch (const Error& e) {
    return e;
  }
  FAIL("the image was accepted");
  return Error("");
}

ar::Header header_of(const Bytes& image) {
  ar::Header h;
  std::memcpy(&h, image.data(), sizeof(h));
  return h;
}

ar::TensorEntry entry_of(const Bytes& image, size_t i) {
  const ar::Header h = header_of(image);
  ar::TensorEntry e;
  std::memcpy(&e, image.data() + h.dir_offset + i * sizeof(e), sizeof(e));
  return e;
}

void set_entry(Bytes& image, size_t i, const ar::TensorEntry& e) {
  const ar::Header h = header_of(image);
  std::memcpy(image.data() + h.dir_offset + i * sizeof(e), &e, sizeof(e));
}

size_t entry_index(const Bytes& image, const std::string& name) {
  const ar::Header h = header_of(image);
  for (size_t i = 0; i < h.num_tensors; ++i) {
    if (entry_of(image, i).name == name) return i;
  }
  FAIL("no entry " << name);
  return 0;
}

// Recomputes the directory and header checksums after a deliberate edit, so the structural
// checks behind them are what the test exercises.
void reseal(Bytes& image, bool directory = true) {
  ar::Header h = header_of(image);
  if (directory && h.dir_offset <= image.size() &&
      uint64_t{h.num_tensors} * ar::kEntryBytes <= image.size() - h.dir_offset) {
    h.dir_xxh64 = XXH64(image.data() + h.dir_offset, uint64_t{h.num_tensors} * ar::kEntryBytes, 0);
  }
  h.header_xxh64 = XXH64(&h, offsetof(ar::Header, header_xxh64), 0);
  std::memcpy(image.data(), &h, sizeof(h));
}

template <typename Edit>
Bytes edited(const Bytes& image, Edit edit) {
  Bytes copy = image;
  edit(copy);
  reseal(copy);
  return copy;
}

bool contains(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename());
  return out;
}

// Runs the gptoss binary; returns the exit code and the combined stdout/stderr.
int run_cli(const std::string& args, std::string* output) {
  const std::string cmd = std::string(GPTOSS_BINARY) + " " + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  output->clear();
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), pipe)) output->append(buf, n);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A written small archive (shared by the corruption tests).
struct SmallArchive {
  TempDir dir;
  MemModel model{small_config(), WeightFormats{}, /*seed=*/7};
  fs::path path = dir / "small.gptoss";
  Bytes image;
  SmallArchive() {
    write_model(model, path);
    image = read_bytes(path);
  }
};

}  // namespace

// ---- format and round trip
// ------------------------------------------------------------------------

TEST_CASE("archive plan: sections and blobs are 4 KiB aligned and disjoint", "[archive]") {
  const auto plan = gptoss::conv::plan_archive(small_config(), WeightFormats{}, 21);
  CHECK(plan.dir_offset == ar::kHeaderBytes);
  CHECK(plan.tokenizer_offset % ar::kAlignment == 0);
  CHECK(plan.tokenizer_offset >= plan.dir_offset + plan.tensors.size() * ar::kEntryBytes);
  uint64_t prev_end = plan.tokenizer_offset + 21;
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    CHECK(plan.offsets[i] % ar::kAlignment == 0);
    CHECK(plan.offsets[i] >= prev_end);
    prev_end = plan.offsets[i] + plan.tensors[i].num_bytes();
  }
  CHECK(plan.file_bytes == ar::align_up(prev_end));
  // The 120b plan: the hub's tensor bytes (FACTS.md 2.1).
  const auto big = gptoss::conv::plan_archive(ModelConfig::preset("120b"), WeightFormats{}, 0);
  CHECK(big.tensors.size() == 36 * 15 + 3);  // HF has 19 per layer; canonical fuses q, k, v
  CHECK(big.tensor_bytes == 65248815744ull);
}

TEST_CASE("archive round trip: every tensor, the config, formats and tokenizer", "[archive]") {
  SmallArchive s;
  const MappedArchive a = MappedArchive::open(s.path);
  CHECK(a.config() == s.model.config);
  CHECK(a.formats() == WeightFormats{});
  CHECK(a.format_version() == ar::kFormatVersion);
  CHECK(a.layout_id() == ar::kLayoutId);
  CHECK(a.file_bytes() == fs::file_size(s.path));
  const auto specs = gptoss::canonical_tensors(s.model.config);
  REQUIRE(a.entries().size() == specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    INFO(specs[i].name);
    CHECK(a.entries()[i].name == specs[i].name);  // archive order = canonical order
    const auto bytes = a.tensor(specs[i].name);
    const Bytes& want = s.model.data.at(specs[i].name);
    REQUIRE(bytes.size() == want.size());
    CHECK(std::memcmp(bytes.data(), want.data(), want.size()) == 0);
    CHECK(reinterpret_cast<uintptr_t>(bytes.data()) % ar::kAlignment == 0);
  }
  CHECK(a.find("no.such.tensor") == nullptr);
  CHECK_THROWS_WITH(a.tensor("no.such.tensor"), Catch::Contains("no tensor named"));
  // Tokenizer section.
  CHECK(a.tokenizer_format() == ar::TokenizerFormat::kTiktoken);
  const auto tok = small_tiktoken();
  REQUIRE(a.tokenizer_blob().size() == tok.bytes.size());
  CHECK(std::memcmp(a.tokenizer_blob().data(), tok.bytes.data(), tok.bytes.size()) == 0);
  CHECK(a.tokenizer_sha256_hex().size() == 64);
  // bind_weights through lookup(), and a lookup with the wrong shape is refused.
  const gptoss::ModelWeights w = gptoss::bind_weights(a.config(), a.lookup());
  CHECK(reinterpret_cast<const std::byte*>(w.lm_head) == a.tensor("lm_head.weight").data());
  CHECK(reinterpret_cast<const std::byte*>(w.layers[1].mlp2_scales) ==
        a.tensor("layers.1.mlp2.scales").data());
  TensorSpec wrong{"layers.0.sinks", gptoss::DType::kBF16, {3}};
  CHECK_THROWS_WITH(a.lookup()(wrong), Catch::Contains("layers.0.sinks"));
  // A lookup outlives the MappedArchive it came from (it holds the mapping).
  gptoss::TensorLookup detached;
  {
    const MappedArchive temp = MappedArchive::open(s.path);
    detached = temp.lookup();
  }
  const gptoss::ModelWeights w2 = gptoss::bind_weights(s.model.config, detached);
  const Bytes& norm = s.model.data.at("norm.weight");
  CHECK(std::memcmp(w2.final_norm, norm.data(), norm.size()) == 0);
  // All checksums match.
  const auto v = a.verify();
  CHECK(v.ok());
  CHECK(v.bytes_checked == a.tokenizer_blob().size() + [&] {
    uint64_t n = 0;
    for (const auto& t : a.entries()) n += t.num_bytes;
    return n;
  }());
}

TEST_CASE("archive writing is deterministic and the padding is zero", "[archive]") {
  SmallArchive s;
  const fs::path second = s.dir / "again.gptoss";
  write_model(s.model, second);
  CHECK(read_bytes(second) == s.image);
  // Bytes outside every section are zero (byte-identical archives need defined padding).
  const MappedArchive a = MappedArchive::open(s.path);
  std::vector<bool> used(s.image.size(), false);
  auto mark = [&](uint64_t off, uint64_t n) { std::fill_n(used.begin() + off, n, true); };
  mark(0, ar::kHeaderBytes);
  mark(ar::kHeaderBytes, a.entries().size() * ar::kEntryBytes);
  const ar::Header h = header_of(s.image);
  mark(h.tokenizer_offset, h.tokenizer_bytes);
  for (const auto& t : a.entries()) mark(t.offset, t.num_bytes);
  size_t nonzero = 0;
  for (size_t i = 0; i < s.image.size(); ++i) nonzero += (!used[i] && s.image[i] != std::byte{0});
  CHECK(nonzero == 0);
}

TEST_CASE("archive with fp8 formats carries per-row scale tensors", "[archive]") {
  // The writer and loader handle the FP8 formats (tests/test_fp8_weights.cpp: the converter's).
  WeightFormats f;
  f.attn = ar::WeightFormat::kFP8;
  f.lm_head = ar::WeightFormat::kFP8;
  const ModelConfig c = small_config();
  const auto specs = gptoss::archive_tensors(c, f);
  auto find = [&](const std::string& n) -> const TensorSpec* {
    for (const auto& s : specs) {
      if (s.name == n) return &s;
    }
    return nullptr;
  };
  REQUIRE(find("layers.1.qkv.weight_scale") != nullptr);
  CHECK(find("layers.1.qkv.weight_scale")->shape == std::vector<int64_t>{c.qkv_dim()});
  CHECK(find("layers.1.qkv.weight_scale")->dtype == gptoss::DType::kF32);
  CHECK(find("layers.1.qkv.weight")->dtype == gptoss::DType::kF8E4M3);
  CHECK(find("layers.0.out.weight_scale")->shape == std::vector<int64_t>{c.hidden});
  CHECK(find("lm_head.weight_scale")->shape == std::vector<int64_t>{c.vocab_size});
  CHECK(find("layers.0.router.weight")->dtype == gptoss::DType::kBF16);  // router stays BF16
  CHECK(specs.size() == gptoss::canonical_tensors(c).size() + 2 * c.num_layers + 1);

  TempDir dir;
  const MemModel m(c, f, /*seed=*/3);
  write_model(m, dir / "fp8.gptoss");
  const MappedArchive a = MappedArchive::open(dir / "fp8.gptoss");
  CHECK(a.formats() == f);
  CHECK(a.tensor("lm_head.weight_scale").size() == 4u * c.vocab_size);
  CHECK(a.verify().ok());
  // The same bytes claiming bf16 formats are refused: the tensor list no longer fits.
  Bytes image = edited(read_bytes(dir / "fp8.gptoss"), [](Bytes& b) {
    ar::Header h = header_of(b);
    h.attn_format = 0;
    std::memcpy(b.data(), &h, sizeof(h));
  });
  CHECK(contains(parse_error(image).what(), "layers.0.qkv.weight is F8_E4M3"));
}

// ---- refusing bad files
// ----------------------------------------------------------------------------

TEST_CASE("archive: wrong magic, version or layout id is refused with a re-convert hint",
          "[archive]") {
  SmallArchive s;
  {
    Bytes b = s.image;
    b[0] = std::byte{'X'};
    const Error e = parse_error(b);
    CHECK(contains(e.what(), "not a gptoss archive"));
    CHECK(contains(e.hint(), "gptoss convert"));
  }
  {
    // A safetensors file (or anything else) is not an archive either.
    const Error e = parse_error(Bytes(64, std::byte{0x20}));
    CHECK(contains(e.what(), "wrong magic"));
  }
  for (const bool version : {true, false}) {
    Bytes b = edited(s.image, [&](Bytes& img) {
      ar::Header h = header_of(img);
      (version ? h.format_version : h.layout_id) += 1;
      std::memcpy(img.data(), &h, sizeof(h));
    });
    const Error e = parse_error(b);
    CHECK(contains(e.what(), version ? "format version 2" : "layout id 2"));
    CHECK(contains(e.hint(), "gptoss convert"));
  }
}

TEST_CASE("archive: truncated files are refused", "[archive]") {
  SmallArchive s;
  const ar::Header h = header_of(s.image);
  for (uint64_t n : {s.image.size() - 1, s.image.size() - 4096, h.data_offset + 10,
                     uint64_t{ar::kHeaderBytes}}) {
    INFO("truncated to " << n);
    Bytes b(s.image.begin(), s.image.begin() + static_cast<ptrdiff_t>(n));
    CHECK(contains(parse_error(b).what(), "truncated"));
  }
  for (uint64_t n : {uint64_t{4095}, uint64_t{100}, uint64_t{8}}) {
    Bytes b(s.image.begin(), s.image.begin() + static_cast<ptrdiff_t>(n));
    CHECK(contains(parse_error(b).what(), "smaller than the 4096-byte archive header"));
  }
  CHECK(contains(parse_error(Bytes{}).what(), "wrong magic"));
  // The same through a file on disk, including an empty one.
  Bytes cut(s.image.begin(), s.image.end() - 5000);
  write_bytes(s.dir / "cut.gptoss", cut);
  CHECK_THROWS_WITH(MappedArchive::open(s.dir / "cut.gptoss"), Catch::Contains("truncated"));
  write_bytes(s.dir / "empty.gptoss", Bytes{});
  CHECK_THROWS_WITH(MappedArchive::open(s.dir / "empty.gptoss"), Catch::Contains("empty"));
  CHECK_THROWS_WITH(MappedArchive::open(s.dir / "absent.gptoss"), Catch::Contains("no such"));
}

TEST_CASE("archive: corrupted header or directory is refused, naming the problem", "[archive]") {
  SmallArchive s;
  const size_t sinks = entry_index(s.image, "layers.0.sinks");
  const size_t qkv = entry_index(s.image, "layers.1.qkv.weight");
  auto entry_edit = [&](size_t i, auto fn) {
    return edited(s.image, [&](Bytes& b) {
      ar::TensorEntry e = entry_of(b, i);
      fn(e);
      set_entry(b, i, e);
    });
  };
  auto header_edit = [&](auto fn) {
    return edited(s.image, [&](Bytes& b) {
      ar::Header h = header_of(b);
      fn(h);
      std::memcpy(b.data(), &h, sizeof(h));
    });
  };
  SECTION("checksums of header and directory") {
    Bytes b = s.image;
    b[offsetof(ar::Header, config) + 4] ^= std::byte{1};  // num_experts, not resealed
    CHECK(contains(parse_error(b).what(), "header checksum"));
    b = s.image;
    b[header_of(b).dir_offset + 70] ^= std::byte{1};
    CHECK(contains(parse_error(b).what(), "directory checksum"));
  }
  SECTION("misaligned blob offset") {
    const Error e = parse_error(entry_edit(qkv, [](ar::TensorEntry& e) { e.offset += 16; }));
    CHECK(contains(e.what(), "tensor layers.1.qkv.weight offset"));
    CHECK(contains(e.what(), "not a multiple of 4096"));
  }
  SECTION("blob outside the file") {
    const uint64_t size = s.image.size();
    CHECK(
        contains(parse_error(entry_edit(qkv, [&](ar::TensorEntry& e) { e.offset = size; })).what(),
                 "outside"));
    // An offset near 2^64 must not wrap around the bounds check.
    CHECK(contains(
        parse_error(entry_edit(qkv, [](ar::TensorEntry& e) { e.offset = ~uint64_t{0} - 4095; }))
            .what(),
        "outside"));
  }
  SECTION("overlapping blobs") {
    const uint64_t other = entry_of(s.image, qkv - 1).offset;
    const Error e = parse_error(entry_edit(qkv, [&](ar::TensorEntry& e) { e.offset = other; }));
    CHECK(contains(e.what(), "overlaps"));
  }
  SECTION("byte size does not match dtype x shape") {
    const Error e = parse_error(entry_edit(sinks, [](ar::TensorEntry& e) { e.num_bytes += 2; }));
    CHECK(contains(e.what(), "layers.0.sinks"));
    CHECK(contains(e.what(), "needs 16"));
  }
  SECTION("shape or dtype differs from what the config requires") {
    Error e = parse_error(entry_edit(sinks, [](ar::TensorEntry& e) {
      e.shape[0] = 4;
      e.num_bytes = 8;
    }));
    CHECK(contains(e.what(), "layers.0.sinks is BF16 [4], expected BF16 [8]"));
    e = parse_error(entry_edit(
        sinks, [](ar::TensorEntry& e) { e.dtype = static_cast<uint8_t>(gptoss::DType::kF16); }));
    CHECK(contains(e.what(), "layers.0.sinks is F16"));
    e = parse_error(entry_edit(sinks, [](ar::TensorEntry& e) { e.dtype = 200; }));
    CHECK(contains(e.what(), "unknown dtype code 200"));
    e = parse_error(entry_edit(sinks, [](ar::TensorEntry& e) { e.rank = 7; }));
    CHECK(contains(e.what(), "rank 7"));
    e = parse_error(entry_edit(sinks, [](ar::TensorEntry& e) { e.shape[0] = -8; }));
    CHECK(contains(e.what(), "invalid shape"));
  }
  SECTION("missing, duplicated or badly named tensors") {
    Error e = parse_error(entry_edit(sinks, [](ar::TensorEntry& e) { e.name[13] = 'z'; }));
    CHECK(contains(e.what(), "tensor layers.0.sinks is missing"));
    const std::string prev = entry_of(s.image, sinks - 1).name;
    e = parse_error(entry_edit(sinks, [&](ar::TensorEntry& e) {
      std::memset(e.name, 0, sizeof(e.name));
      std::memcpy(e.name, prev.data(), prev.size());
    }));
    CHECK(contains(e.what(), "appears twice"));
    e = parse_error(entry_edit(sinks, [](ar::TensorEntry& e) { std::memset(e.name, 'a', 64); }));
    CHECK(contains(e.what(), "not NUL-terminated"));
    e = parse_error(entry_edit(sinks, [](ar::TensorEntry& e) { e.name[2] = '\n'; }));
    CHECK(contains(e.what(), "non-printable"));
  }
  SECTION("header sections") {
    const uint64_t size = s.image.size();
    Error e = parse_error(header_edit([](ar::Header& h) { h.num_tensors = 1u << 30; }));
    CHECK(contains(e.what(), "tensor directory"));
    e = parse_error(header_edit([&](ar::Header& h) { h.dir_offset = size; }));
    CHECK(contains(e.what(), "tensor directory"));
    e = parse_error(
        header_edit([&](ar::Header& h) { h.tokenizer_offset = entry_of(s.image, 0).offset; }));
    CHECK(contains(e.what(), "overlaps"));
    e = parse_error(header_edit([](ar::Header& h) { h.tokenizer_format = 9; }));
    CHECK(contains(e.what(), "unknown tokenizer format"));
    e = parse_error(header_edit([](ar::Header& h) { h.lm_head_format = 5; }));
    CHECK(contains(e.what(), "unknown weight format"));
    e = parse_error(header_edit([](ar::Header& h) { h.file_bytes += 4096; }));
    CHECK(contains(e.what(), "truncated"));
    e = parse_error(header_edit([](ar::Header& h) { h.data_offset += 4096; }));
    CHECK(contains(e.what(), "data section"));
  }
  SECTION("invalid config") {
    Error e = parse_error(header_edit([](ar::Header& h) { h.config.num_layers = 0; }));
    CHECK(contains(e.what(), "invalid model config"));
    e = parse_error(header_edit([](ar::Header& h) { h.config.layer_sliding[1] = 2; }));
    CHECK(contains(e.what(), "attention type 2"));
    e = parse_error(header_edit([](ar::Header& h) {
      h.config.num_heads = 1 << 20;
      h.config.head_dim = 1 << 20;
    }));
    CHECK(contains(e.what(), "num_heads x head_dim"));
    // A config change that keeps the checksum valid still has to match the tensor list.
    e = parse_error(header_edit([](ar::Header& h) { h.config.num_experts = 8; }));
    CHECK(contains(e.what(), "layers.0.router.weight is BF16 [4, 256], expected BF16 [8, 256]"));
  }
}

TEST_CASE("archive: random header and directory damage never crashes the loader", "[archive]") {
  SmallArchive s;
  const uint64_t dir_end =
      header_of(s.image).dir_offset + uint64_t{header_of(s.image).num_tensors} * ar::kEntryBytes;
  std::mt19937_64 rng(12345);
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    Bytes b = s.image;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Mostly the fields the loader interprets: the first 1248 header bytes and the directory.
      uint64_t pos = rng() % 2 ? rng() % 1248 : ar::kHeaderBytes + rng() % (dir_end - 4096);
      b[pos] ^= std::byte(1u << (rng() % 8));
    }
    reseal(b);
    try {
      const MappedArchive a = parse_image(b);
      ++accepted;  // e.g. a flipped float bit in rope_theta: still a structurally valid file
      for (const auto& t : a.entries()) REQUIRE(t.offset + t.num_bytes <= b.size());
    } catch (const Error&) {
    }
  }
  CHECK(accepted < 3000);
}

TEST_CASE("archive verify catches a flipped byte in a blob", "[archive]") {
  SmallArchive s;
  const MappedArchive clean = MappedArchive::open(s.path);
  const auto& target = *clean.find("layers.1.mlp1.blocks");
  Bytes b = s.image;
  b[target.offset + target.num_bytes / 2] ^= std::byte{0x10};
  b[header_of(b).tokenizer_offset + 1] ^= std::byte{0x01};
  write_bytes(s.dir / "flipped.gptoss", b);
  // The structure is fine; the default load's quick check would refuse the tokenizer.
  const MappedArchive a = MappedArchive::open(s.dir / "flipped.gptoss", gptoss::LoadCheck::kStructure);
  uint64_t last_done = 0;
  const auto v = a.verify([&](const gptoss::VerifyProgress& p) {
    CHECK(p.bytes_done >= last_done);
    last_done = p.bytes_done;
  });
  CHECK_FALSE(v.ok());
  CHECK(v.mismatched == std::vector<std::string>{"<tokenizer>", "layers.1.mlp1.blocks"});
  CHECK(last_done == v.bytes_checked);
}

// ---- safe writing
// ------------------------------------------------------------------------------------

TEST_CASE("archive writer: an injected failure mid-write leaves no file", "[archive]") {
  TempDir dir;
  const MemModel m(small_config(), WeightFormats{}, 1);
  gptoss::conv::WriteOptions o;
  o.fail_after_bytes = 1u << 20;
  CHECK_THROWS_WITH(write_model(m, dir / "out.gptoss", o), Catch::Contains("failing after"));
  CHECK(files_in(dir.path()).empty());  // neither the archive nor the temporary file
  // With --force over an existing file, a failed run leaves the old file as it was.
  write_bytes(dir / "out.gptoss", Bytes(100, std::byte{7}));
  o.force = true;
  CHECK_THROWS(write_model(m, dir / "out.gptoss", o));
  CHECK(files_in(dir.path()) == std::vector<fs::path>{"out.gptoss"});
  CHECK(read_bytes(dir / "out.gptoss") == Bytes(100, std::byte{7}));
}

TEST_CASE("archive writer: SIGINT stops the copy and removes the temporary file", "[archive]") {
  TempDir dir;
  const MemModel m(small_config(), WeightFormats{}, 1);
  struct sigaction before {};
  sigaction(SIGINT, nullptr, &before);
  gptoss::conv::WriteOptions o;
  bool raised = false;
  o.progress = [&](const gptoss::conv::WriteProgress& p) {
    if (!raised && p.bytes_done > p.bytes_total / 2) {
      raised = true;
      // The temporary file exists while the copy runs.
      CHECK(files_in(dir.path()).size() == 1);
      std::raise(SIGINT);  // our handler only sets a flag; the loop notices it
    }
  };
  CHECK_THROWS_WITH(write_model(m, dir / "out.gptoss", o),
                    Catch::Contains("interrupted by SIGINT"));
  CHECK(raised);
  CHECK(files_in(dir.path()).empty());
  struct sigaction after {};
  sigaction(SIGINT, nullptr, &after);
  CHECK(after.sa_handler == before.sa_handler);  // the previous handler is back
}

TEST_CASE("archive writer: not enough free space is reported before writing", "[archive]") {
  TempDir dir;
  const MemModel m(small_config(), WeightFormats{}, 1);
  const auto plan = gptoss::conv::plan_archive(m.config, m.formats, small_tiktoken().bytes.size());
  gptoss::conv::WriteOptions o;
  o.free_bytes_override = plan.file_bytes - 1;
  bool progressed = false;
  o.progress = [&](const gptoss::conv::WriteProgress&) { progressed = true; };
  try {
    write_model(m, dir / "out.gptoss", o);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(contains(e.what(), "not enough free space"));
    CHECK(contains(e.what(), std::to_string(plan.file_bytes)));
    CHECK(contains(e.hint(), "-o"));
  }
  CHECK_FALSE(progressed);
  CHECK(files_in(dir.path()).empty());
  o.free_bytes_override = plan.file_bytes;  // exactly enough
  o.progress = {};
  CHECK_NOTHROW(write_model(m, dir / "out.gptoss", o));
}

TEST_CASE("archive writer: existing outputs need --force; bad destinations are named",
          "[archive]") {
  TempDir dir;
  const MemModel m(small_config(), WeightFormats{}, 1);
  write_model(m, dir / "a.gptoss");
  try {
    write_model(m, dir / "a.gptoss");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(contains(e.what(), "already exists"));
    CHECK(contains(e.hint(), "--force"));
  }
  gptoss::conv::WriteOptions o;
  o.force = true;
  CHECK_NOTHROW(write_model(m, dir / "a.gptoss", o));
  CHECK_THROWS_WITH(write_model(m, dir / "missing" / "a.gptoss"),
                    Catch::Contains("does not exist"));
  CHECK_THROWS_WITH(write_model(m, dir.path(), o), Catch::Contains("is a directory"));
  CHECK(MappedArchive::open(dir / "a.gptoss").verify().ok());
}

TEST_CASE("archive writer: MXFP4 scale bytes 253-255 are counted per tensor", "[archive]") {
  TempDir dir;
  MemModel m(small_config(), WeightFormats{}, 1);
  auto& s0 = m.data.at("layers.0.mlp1.scales");
  s0[0] = std::byte{253};
  s0[5] = std::byte{255};
  s0[9] = std::byte{252};  // the largest safe value
  m.data.at("layers.1.mlp2.scales").back() = std::byte{254};
  std::vector<std::string> warnings;
  gptoss::conv::WriteOptions o;
  o.warn = [&](const std::string& w) { warnings.push_back(w); };
  const auto r = write_model(m, dir / "warn.gptoss", o);
  REQUIRE(r.scale_overflows.size() == 2);
  CHECK(r.scale_overflows[0].tensor == "layers.0.mlp1.scales");
  CHECK(r.scale_overflows[0].count == 2);
  CHECK(r.scale_overflows[1].tensor == "layers.1.mlp2.scales");
  CHECK(r.scale_overflows[1].count == 1);
  REQUIRE(warnings.size() == 2);
  CHECK(contains(warnings[0], "layers.0.mlp1.scales: 2 E8M0 scale bytes in 253..255"));
  // The values are stored unchanged.
  CHECK(MappedArchive::open(dir / "warn.gptoss").tensor("layers.0.mlp1.scales")[5] ==
        std::byte{255});
  // --strict: an error naming the tensor, and no file.
  o.strict = true;
  CHECK_THROWS_WITH(write_model(m, dir / "strict.gptoss", o),
                    Catch::Contains("layers.0.mlp1.scales: 2 E8M0 scale bytes"));
  CHECK_FALSE(fs::exists(dir / "strict.gptoss"));
  CHECK(files_in(dir.path()).size() == 1);
}

// ---- converter options and tokenizer
// -----------------------------------------------------------------

TEST_CASE("convert: tokenizer files are tagged by content and extension", "[archive]") {
  TempDir dir;
  const auto tiktoken =
      gptoss::conv::load_tokenizer_file(fs::path(GPTOSS_DATA_DIR) / "o200k_base.tiktoken");
  CHECK(tiktoken.format == ar::TokenizerFormat::kTiktoken);
  CHECK(tiktoken.bytes.size() == fs::file_size(fs::path(GPTOSS_DATA_DIR) / "o200k_base.tiktoken"));
  auto write_text = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return dir / name;
  };
  CHECK(gptoss::conv::load_tokenizer_file(write_text("tokenizer.json", "{\"model\": {}}")).format ==
        ar::TokenizerFormat::kHfTokenizerJson);
  CHECK(gptoss::conv::load_tokenizer_file(write_text("tok", "  {\"a\": 1}\n")).format ==
        ar::TokenizerFormat::kHfTokenizerJson);
  CHECK(gptoss::conv::load_tokenizer_file(write_text("ranks.txt", "IQ== 0\r\nIg== 1\n")).format ==
        ar::TokenizerFormat::kTiktoken);
  CHECK_THROWS_WITH(gptoss::conv::load_tokenizer_file(write_text("bad.json", "IQ== 0\n")),
                    Catch::Contains("not a JSON object"));
  CHECK_THROWS_WITH(gptoss::conv::load_tokenizer_file(write_text("bad.tiktoken", "{}")),
                    Catch::Contains("are not '<base64> <rank>'"));
  CHECK_THROWS_WITH(gptoss::conv::load_tokenizer_file(write_text("junk", "hello world\n")),
                    Catch::Contains("cannot tell the format"));
  CHECK_THROWS_WITH(gptoss::conv::load_tokenizer_file(dir / "absent.json"),
                    Catch::Contains("cannot read"));
  // The default is the bundled o200k_base, sha256-checked.
  const auto def = gptoss::conv::default_tokenizer({}, {});
  CHECK(def.format == ar::TokenizerFormat::kTiktoken);
  CHECK(def.bytes == tiktoken.bytes);
}

// ---- the converter on synthetic checkpoints
// ------------------------------------------------------------

namespace {

// A synthetic checkpoint written in both layouts (HF top level + original/) with the same weights.
struct SynthCheckpoint {
  TempDir dir;
  ModelConfig config;
  uint64_t seed;
  explicit SynthCheckpoint(const ModelConfig& c, bool both_layouts = true, uint64_t s = 5)
      : config(c), seed(s) {
    for (auto layout :
         {gptoss::conv::CheckpointLayout::kHF, gptoss::conv::CheckpointLayout::kOriginal}) {
      if (!both_layouts && layout == gptoss::conv::CheckpointLayout::kOriginal) break;
      gptoss::conv::SynthWriteOptions o;
      o.layout = layout;
      o.shard_bytes = 2'000'000;  // several shards, cut through layers
      o.threads = 1;
      gptoss::conv::write_synth_checkpoint(dir.path(), config, seed, o);
    }
  }
};

gptoss::conv::ConvertOptions convert_options(const fs::path& ckpt, const fs::path& out) {
  gptoss::conv::ConvertOptions o;
  o.checkpoint = ckpt;
  o.output = out;
  return o;
}

}  // namespace

TEST_CASE("convert: synthetic checkpoint round trip, both layouts byte-identical", "[archive]") {
  const SynthCheckpoint ck(small_config());
  TempDir out;
  auto hf = convert_options(ck.dir.path(), out / "hf.gptoss");
  gptoss::conv::convert_checkpoint(hf);
  auto orig = convert_options(ck.dir.path(), out / "orig.gptoss");
  orig.prefer_original = true;
  gptoss::conv::convert_checkpoint(orig);
  // Also from the original/ directory itself.
  gptoss::conv::convert_checkpoint(convert_options(ck.dir / "original", out / "orig2.gptoss"));

  const Bytes hf_bytes = read_bytes(out / "hf.gptoss");
  CHECK(hf_bytes == read_bytes(out / "orig.gptoss"));
  CHECK(hf_bytes == read_bytes(out / "orig2.gptoss"));

  const MappedArchive a = MappedArchive::open(out / "hf.gptoss");
  CHECK(a.config() == ck.config);
  CHECK(a.tokenizer_format() == ar::TokenizerFormat::kTiktoken);
  CHECK(a.tokenizer_sha256_hex() == gptoss::kO200kBaseSha256);
  CHECK(a.verify().ok());
  for (bool original : {false, true}) {
    const auto ckpt = gptoss::conv::Checkpoint::open(ck.dir.path(), original);
    REQUIRE(ckpt.layout() == (original ? gptoss::conv::CheckpointLayout::kOriginal
                                       : gptoss::conv::CheckpointLayout::kHF));
    for (const TensorSpec& spec : gptoss::canonical_tensors(ck.config)) {
      INFO(spec.name << (original ? " (original/)" : " (HF)"));
      const auto got = a.tensor(spec.name);
      // Against the checkpoint's pieces after re-layout...
      Bytes want;
      for (const auto& piece : ckpt.canonical_pieces(spec)) {
        want.insert(want.end(), piece.begin(), piece.end());
      }
      REQUIRE(got.size() == want.size());
      CHECK(std::memcmp(got.data(), want.data(), want.size()) == 0);
      // ...and against the generator itself (independent of the checkpoint reader).
      if (!original) {
        Bytes gen(spec.num_bytes());
        gptoss::conv::synth_fill(ck.config, ck.seed, spec, 0, gen);
        CHECK(std::memcmp(got.data(), gen.data(), gen.size()) == 0);
      }
    }
  }
  // The fused qkv equals the HF q_proj | k_proj | v_proj rows read straight from the shards.
  const auto ckpt = gptoss::conv::Checkpoint::open(ck.dir.path());
  const auto qkv = a.tensor("layers.1.qkv.weight");
  uint64_t off = 0;
  for (const char* part : {"q_proj", "k_proj", "v_proj"}) {
    const std::string name = fmt::format("model.layers.1.self_attn.{}.weight", part);
    const auto* shard = ckpt.shard_of(name);
    REQUIRE(shard != nullptr);
    const auto raw = shard->data(name);
    CHECK(std::memcmp(qkv.data() + off, raw.data(), raw.size()) == 0);
    off += raw.size();
  }
  CHECK(off == qkv.size());
}

TEST_CASE("convert: an interrupted conversion leaves no archive and no temporary file",
          "[archive]") {
  const SynthCheckpoint ck(small_config());
  TempDir out;
  auto o = convert_options(ck.dir.path(), out / "x.gptoss");
  o.write.fail_after_bytes = 3'000'000;
  CHECK_THROWS_WITH(gptoss::conv::convert_checkpoint(o), Catch::Contains("failing after"));
  CHECK(files_in(out.path()).empty());
  // The input is untouched: the checkpoint still converts to a valid archive.
  o.write.fail_after_bytes.reset();
  gptoss::conv::convert_checkpoint(o);
  CHECK(MappedArchive::open(out / "x.gptoss").verify().ok());
}

TEST_CASE("gptoss convert and info through the command line", "[archive][cli]") {
  // Real widths (hidden 2880), 2 layers, 4 experts, vocab 1024: about 230 MB.
  const SynthCheckpoint ck(gptoss::conv::synth_config("tiny", 2, 4, 1024),
                           /*both_layouts=*/false);
  TempDir out;
  const std::string file = (out / "m.gptoss").string();
  std::string text;
  REQUIRE(run_cli(fmt::format("convert {} -o {}", ck.dir.path().string(), file), &text) == 0);
  CHECK(contains(text, "convert:"));  // progress / summary on stderr
  REQUIRE(run_cli(fmt::format("info {}", file), &text) == 0);
  CHECK(contains(text, "2 layers, 4 experts"));
  CHECK(contains(text, "layers.1.mlp2.scales"));
  CHECK(contains(text, "(o200k_base)"));
  REQUIRE(run_cli(fmt::format("info {} --verify --json -q", file), &text) == 0);
  const auto j = nlohmann::json::parse(text);
  CHECK(j["verify"]["ok"] == true);
  CHECK(j["tensors"].size() == gptoss::canonical_tensors(ck.config).size());
  CHECK(j["config"]["num_layers"] == 2);

  // A flipped byte in the first 64 KiB of a tensor: info still prints the table, and the quick
  // check (sampled checksums) names the tensor; --verify does too.
  Bytes b = read_bytes(file);
  const MappedArchive a = MappedArchive::open(file);
  b[a.find("layers.0.qkv.weight")->offset + 12345] ^= std::byte{4};
  write_bytes(out / "bad.gptoss", b);
  const std::string bad = (out / "bad.gptoss").string();
  CHECK(run_cli(fmt::format("info {} -q", bad), &text) == 1);
  CHECK(contains(text, "layers.1.mlp2.scales"));  // the table
  CHECK(contains(text, "1 quick-check checksum mismatch: layers.0.qkv.weight"));
  CHECK(run_cli(fmt::format("info {} --verify -q", bad), &text) != 0);
  CHECK(contains(text, "1 checksum mismatch: layers.0.qkv.weight"));
  // A flip in the middle of a large tensor escapes the sampled check (it reads 128 KiB per
  // tensor); --verify is the full check.
  b = read_bytes(file);
  const auto* blocks = a.find("layers.1.mlp1.blocks");
  REQUIRE(blocks->num_bytes > 4 * ar::kSampleBytes);
  b[blocks->offset + blocks->num_bytes / 2] ^= std::byte{1};
  write_bytes(out / "bad.gptoss", b);
  CHECK(run_cli(fmt::format("info {} -q", bad), &text) == 0);
  CHECK(contains(text, "quick check: ok"));
  CHECK(run_cli(fmt::format("info {} --verify -q", bad), &text) != 0);
  CHECK(contains(text, "1 checksum mismatch: layers.1.mlp1.blocks"));

  // Refusals with a message and a non-zero exit.
  CHECK(run_cli(fmt::format("convert {} -o {}", ck.dir.path().string(), file), &text) != 0);
  CHECK(contains(text, "already exists"));
  CHECK(run_cli(fmt::format("convert {} -o {} --attn fp4", ck.dir.path().string(),
                            (out / "f.gptoss").string()),
                &text) != 0);
  CHECK(contains(text, "--attn fp4: unknown format"));
  // FP8 attention and LM head: the header and info say so, the scales are listed.
  REQUIRE(run_cli(fmt::format("convert {} -o {} --attn fp8 --lm-head fp8", ck.dir.path().string(),
                              (out / "f8.gptoss").string()),
                  &text) == 0);
  REQUIRE(run_cli(fmt::format("info {}", (out / "f8.gptoss").string()), &text) == 0);
  CHECK(contains(text, "attention fp8, lm head fp8"));
  CHECK(contains(text, "layers.1.out.weight_scale"));
  CHECK(contains(text, "F8_E4M3"));
  REQUIRE(run_cli(fmt::format("info {} --verify --json -q", (out / "f8.gptoss").string()), &text) == 0);
  const auto j8 = nlohmann::json::parse(text);
  CHECK(j8["verify"]["ok"] == true);
  CHECK(j8["formats"]["attn"] == "fp8");
  CHECK(j8["formats"]["lm_head"] == "fp8");
  CHECK(j8["tensors"].size() == gptoss::canonical_tensors(ck.config).size() + 2 * 2 + 1);
  fs::remove(out / "f8.gptoss");
  CHECK(run_cli(fmt::format("convert {} -o {} --test-free-bytes 1000", ck.dir.path().string(),
                            (out / "f.gptoss").string()),
                &text) != 0);
  CHECK(contains(text, "not enough free space"));
  CHECK(run_cli(fmt::format("convert {} -o {} --test-fail-after 5000000", ck.dir.path().string(),
                            (out / "f.gptoss").string()),
                &text) != 0);
  CHECK(files_in(out.path()).size() == 2);  // m.gptoss, bad.gptoss: nothing left behind
  CHECK(run_cli(fmt::format("info {}", (out / "absent.gptoss").string()), &text) != 0);
  CHECK(contains(text, "hint:"));

  // The dry-run plan, from a shape alone and from the checkpoint.
  REQUIRE(run_cli("convert --dry-run --shape 120b", &text) == 0);
  CHECK(contains(text, "543 tensors, 65248815744 bytes"));
  REQUIRE(run_cli(fmt::format("convert --dry-run {} -o {}", ck.dir.path().string(),
                              (out / "p.gptoss").string()),
                  &text) == 0);
  CHECK(contains(text, fmt::format("archive:   {} bytes", fs::file_size(file))));
  CHECK_FALSE(fs::exists(out / "p.gptoss"));
}
