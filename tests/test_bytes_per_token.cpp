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
