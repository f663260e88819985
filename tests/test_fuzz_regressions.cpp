// test_fuzz_regressions.cpp — replays every file of fuzz/corpus/<target>/ and
// fuzz/regressions/<target>/ through the fuzz targets (fuzz/*.cpp, linked into
// test_cpu), so the normal build keeps every input that once crashed as a test,
// even without clang/libFuzzer. The hidden case "[.fuzz-seeds]" regenerates the
// seed corpora (GPTOSS_FUZZ_SEED_DIR=fuzz/corpus).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "converter/archive_writer.h"
#include "converter/synth.h"
#include "fuzz/fuzz_targets.h"
#include "host/archive/archive.h"
#include "host/text/tokenizer.h"

namespace fs = std::filesystem;
using namespace gptoss;

namespace {

std::vector<uint8_t> read_file(const fs::path &p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path &p, std::string_view bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

} // namespace

TEST_CASE("fuzz: seed corpora and regression inputs replay clean", "[fuzz]") {
  const fs::path root = GPTOSS_FUZZ_DIR;
  for (const fuzz::Target &target : fuzz::kTargets) {
    size_t num_seeds = 0;
    for (const char *kind : {"corpus", "regressions"}) {
      const fs::path dir = root / kind / std::string(target.name);
      if (!fs::is_directory(dir))
        continue;
      for (const fs::directory_entry &e : fs::directory_iterator(dir)) {
        if (!e.is_regular_file() || e.path().filename() == "README.md")
          continue;
        // A crash here is the bug itself; a failed invariant aborts with its
        // location.
        INFO(e.path().string());
        target.run(read_file(e.path()));
        num_seeds += std::string_view(kind) == "corpus";
      }
    }
    INFO(target.name);
    CHECK(num_seeds > 0); // every target has seeds
  }
}

// The seed corpora, small and hand-picked: each valid case of its format plus a
// few edge cases.
TEST_CASE("fuzz: write the seed corpora", "[.fuzz-seeds]") {
  const char *out_env = std::getenv("GPTOSS_FUZZ_SEED_DIR");
  REQUIRE(out_env);
  const fs::path out = out_env;

  // safetensors_header: two tensors with metadata; an empty file; a scalar.
  auto st_image = [](const std::string &header, size_t data_bytes) {
    std::string img(8, '\0');
    for (int i = 0; i < 8; ++i)
      img[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return img + header + std::string(data_bytes, '\x11');
  };
  write_file(
      out / "safetensors_header/two_tensors",
      st_image(
          R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],)"
          R"("data_offsets":[0,12]},"b":{"dtype":"U8","shape":[4],"data_offsets":[12,16]}})",
          16));
  write_file(out / "safetensors_header/empty_header", st_image("{}", 0));
  write_file(
      out / "safetensors_header/scalar_f32",
      st_image(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})", 4));

  // config_json: the HF and original/ forms of the presets.
  for (const char *shape : {"20b", "120b"}) {
    const ModelConfig c = ModelConfig::preset(shape);
    write_file(out / fmt::format("config_json/hf_{}.json", shape),
               c.to_hf_json().dump(1));
    write_file(out / fmt::format("config_json/original_{}.json", shape),
               c.to_original_json().dump(1));
  }

  // archive_loader: a two-layer model with 32-wide layers (every blob still 4
  // KiB aligned).
  {
    ModelConfig c = ModelConfig::preset("tiny");
    c.num_layers = 2;
    c.num_experts = 2;
    c.experts_per_token = 1;
    c.vocab_size = 8;
    c.hidden = 32;
    c.intermediate = 32;
    c.num_heads = 2;
    c.num_kv_heads = 1;
    c.head_dim = 16;
    c.layer_sliding = default_layer_pattern(c.num_layers);
    conv::TokenizerBlob tok;
    tok.format = archive::TokenizerFormat::kTiktoken;
    const std::string ranks = "IQ== 0\nIg== 1\n";
    for (char ch : ranks)
      tok.bytes.push_back(static_cast<std::byte>(ch));
    const conv::ArchivePlan plan =
        conv::plan_archive(c, WeightFormats{}, tok.bytes.size());
    std::map<std::string, std::vector<std::byte>> data;
    for (const TensorSpec &spec : plan.tensors) {
      auto &b = data[spec.name];
      b.resize(spec.num_bytes());
      conv::synth_fill(c, /*seed=*/1, spec, 0, b);
    }
    conv::WriteOptions wo;
    wo.handle_signals = false;
    wo.force = true;
    const fs::path path = out / "archive_loader/two_layers.gptoss";
    fs::create_directories(path.parent_path());
    conv::write_archive(
        path, plan,
        [&](const TensorSpec &spec) {
          return std::vector<std::span<const std::byte>>{data.at(spec.name)};
        },
        tok, wo);
  }

  // tokenizer: mode byte 0 = encode text, 1 = decode 3-byte ids.
  const std::pair<const char *, std::string> texts[] = {
      {"english",
       "Hello, world! It's 2026; numbers 1234567 and   spaces\n\n\tend."},
      {"code", "for (int i = 0; i < n; ++i) { x[i] += y[i]; }  // comment\r\n"},
      {"cjk_emoji", "日本語のテキストと한국어 и русский текст 👩‍👩‍👧 "
                    "ﷺ"},
      {"invalid_utf8", "ok \xff\xfe bad \xe2\x82 cut \xf0\x9f\x98"},
      {"contractions", "I'M you'll WE'VE they'd 's 't \u00e9t\u00e9 ΑΒΓ"},
  };
  for (const auto &[name, text] : texts) {
    write_file(out / fmt::format("tokenizer/encode_{}", name),
               std::string(1, '\0') + text);
  }
  {
    std::string ids(1, '\1');
    for (uint32_t id : {9906u, 11u, 1917u, 0u, 199998u, 200005u, 200007u,
                        201087u, 127u, 4136u}) {
      for (int i = 0; i < 3; ++i)
        ids.push_back(static_cast<char>((id >> (8 * i)) & 0xff));
    }
    write_file(out / "tokenizer/decode_ids", ids);
  }

  // harmony_parser: 0xE0 + (id - 199998) is a special, other bytes are text
  // (fuzz/harmony_parser.cpp).
  auto sp = [](tok::TokenId id) {
    return std::string(1, static_cast<char>(0xE0 + (id - tok::kNumMergeable)));
  };
  using namespace tok;
  write_file(out / "harmony_parser/analysis_then_final",
             sp(kChannel) + "analysis" + sp(kMessage) + "The user asks 2+2." +
                 sp(kEnd) + sp(kStart) + "assistant" + sp(kChannel) + "final" +
                 sp(kMessage) + "4" + sp(kReturn));
  write_file(out / "harmony_parser/tool_call",
             sp(kChannel) + "commentary to=functions.get_weather " +
                 sp(kConstrain) + "json" + sp(kMessage) +
                 "{\"city\":\"Paris\"}" + sp(kCall));
  write_file(out / "harmony_parser/no_header",
             "plain text without a header" + sp(kEnd) + "more");
}
