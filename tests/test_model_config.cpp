#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "host/error.h"
#include "host/model_config.h"
#include "host/tensor_spec.h"

using gptoss::ModelConfig;

TEST_CASE("presets have the published shapes", "[config]") {
  const auto c20 = ModelConfig::preset("20b");
  CHECK(c20.num_layers == 24);
  CHECK(c20.num_experts == 32);
  CHECK(c20.qkv_dim() == 5120);
  CHECK(c20.mlp1_dim() == 5760);
  CHECK(c20.is_sliding(0));
  CHECK_FALSE(c20.is_sliding(1));
  const auto c120 = ModelConfig::preset("120b");
  CHECK(c120.num_layers == 36);
  CHECK(c120.num_experts == 128);
  CHECK_THROWS_AS(ModelConfig::preset("70b"), gptoss::Error);
}

TEST_CASE("canonical tensor bytes match the hub totals", "[config]") {
  // FACTS.md section 2: summing all tensors gives the hub's total_size exactly.
  for (auto [shape, total] : {std::pair{"20b", 13761264768ull}, std::pair{"120b", 65248815744ull}}) {
    uint64_t sum = 0;
    for (const auto& t : gptoss::canonical_tensors(ModelConfig::preset(shape))) sum += t.num_bytes();
    CHECK(sum == total);
  }
}

TEST_CASE("config round-trips through HF and original JSON", "[config]") {
  const auto c = ModelConfig::preset("20b");
  CHECK(ModelConfig::from_json(c.to_hf_json(), "hf") == c);
  auto orig = ModelConfig::from_json(c.to_original_json(), "original");
  CHECK(orig == c);
}

TEST_CASE("bad configs are named", "[config]") {
  auto j = ModelConfig::preset("tiny").to_hf_json();
  j.erase("hidden_size");
  CHECK_THROWS_WITH(ModelConfig::from_json(j, "x/config.json"),
                    Catch::Contains("x/config.json") && Catch::Contains("hidden_size"));
  j = ModelConfig::preset("tiny").to_hf_json();
  j["layer_types"][1] = "banana";
  CHECK_THROWS_WITH(ModelConfig::from_json(j, "c"), Catch::Contains("layer_types[1]"));
  j = ModelConfig::preset("tiny").to_hf_json();
  j["hidden_size"] = "wide";
  CHECK_THROWS_WITH(ModelConfig::from_json(j, "c"), Catch::Contains("wrong type"));
  j = ModelConfig::preset("tiny").to_hf_json();
  j["hidden_size"] = 2881;
  CHECK_THROWS_WITH(ModelConfig::from_json(j, "c"), Catch::Contains("multiple of 32"));
}

// Found by the config_json fuzz target (fuzz/regressions/config_json): numbers a config.json can
// hold but a ModelConfig cannot were converted with undefined behaviour or silently wrapped.
TEST_CASE("config.json numbers out of range are refused by name", "[config]") {
  const auto base = ModelConfig::preset("tiny").to_hf_json();
  auto refused = [&](const char* key, const nlohmann::json& value, const char* why) {
    auto j = base;
    j[key] = value;
    INFO(key << " = " << value.dump());
    CHECK_THROWS_WITH(ModelConfig::from_json(j, "c"), Catch::Contains(key) && Catch::Contains(why));
  };
  refused("hidden_size", 1e30, "out of range");
  refused("hidden_size", 4294967328ull, "out of range");  // 2^32 + 32 wrapped to 32 before
  refused("hidden_size", -1e30, "out of range");
  refused("num_hidden_layers", 2.5, "whole number");
  refused("rms_norm_eps", 1e300, "out of range");  // infinite as a float
  refused("num_attention_heads", 1 << 30, "exceeds");  // accepted before, refused by archives
  auto j = base;
  j["num_hidden_layers"] = 4.0;  // a whole float is fine
  CHECK(ModelConfig::from_json(j, "c").num_layers == 4);
  // Without max_position_embeddings the default initial_context_length x factor must fit.
  j = base;
  j.erase("max_position_embeddings");
  j["rope_scaling"]["factor"] = 1e300;
  CHECK_THROWS_WITH(ModelConfig::from_json(j, "c"), Catch::Contains("max_position_embeddings"));
  j["rope_scaling"]["factor"] = 32.0;
  CHECK(ModelConfig::from_json(j, "c").max_context == 4096 * 32);
}
