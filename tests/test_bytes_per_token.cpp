#include <catch2/catch.hpp>

#include "bench/bytes_per_token.h"

using gptoss::ModelConfig;

TEST_CASE("bytes per token match FACTS.md section 5", "[bench]") {
  CHECK(gptoss::bench::weight_bytes_per_token(ModelConfig::preset("20b")) == 3708089088ull);
  CHECK(gptoss::bench::weight_bytes_per_token(ModelConfig::preset("120b")) == 5002907904ull);
  // FACTS 3.2: 20b 28.3 MB at 1K, 808 MB at 32K; 120b 1.21 GB at 32K.
  CHECK(gptoss::bench::kv_bytes_per_token(ModelConfig::preset("20b"), 1024) == 12ull * 128 * 2048 + 12ull * 1024 * 2048);
  CHECK(gptoss::bench::kv_bytes_per_token(ModelConfig::preset("120b"), 32768) == 18ull * 128 * 2048 + 18ull * 32768 * 2048);
}

TEST_CASE("bytes per token count FP8 attention and LM-head weights at one byte plus row scales",
          "[bench]") {
  using gptoss::archive::WeightFormat;
  gptoss::WeightFormats attn, lm, both;
  attn.attn = both.attn = WeightFormat::kFP8;
  lm.lm_head = both.lm_head = WeightFormat::kFP8;
  // Per layer the attention weights are (5120 + 2880) rows of 2880 and 4096 values: FP8 saves
  // 26,542,080 bytes minus 4 * 8000 bytes of scales; the LM head 201,088 x 2880 saves 579,133,440
  // minus 4 * 201,088. (The figures: 20b 3.71 -> 2.49 GB, 120b 5.0 -> 3.47 GB.)
  const ModelConfig m20 = ModelConfig::preset("20b"), m120 = ModelConfig::preset("120b");
  const uint64_t attn_saved = 26542080ull - 32000ull, lm_saved = 579133440ull - 804352ull;
  CHECK(gptoss::bench::weight_bytes_per_token(m20, attn) == 3708089088ull - 24 * attn_saved);
  CHECK(gptoss::bench::weight_bytes_per_token(m20, lm) == 3708089088ull - lm_saved);
  CHECK(gptoss::bench::weight_bytes_per_token(m20, both) == 2493518080ull);
  CHECK(gptoss::bench::weight_bytes_per_token(m120, both) == 3470215936ull);
}
