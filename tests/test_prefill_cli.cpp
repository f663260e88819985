// test_prefill_cli.cpp — the batched prefill's command-line surface (label cpu): `--prefill` on
// generate and bench sweep refused with the CPU backend, `bench prefill`'s --isl parser and its
// refusals (before any GPU work), and the floor/FLOP arithmetic it prints. The kernels themselves
// are tested on the GPU (tests/gpu_test_prefill.cpp).
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "bench/bench_prefill.h"
#include "bench/bytes_per_token.h"
#include "host/error.h"
#include "host/model_config.h"
#include "tests/cli_support.h"
#include "tests/temp_dir.h"

using namespace gptoss;
using test::run_gptoss;

TEST_CASE("bench prefill: --isl lists are parsed, bad entries named", "[prefill_cli]") {
  CHECK(bench::parse_isl_list("128,1024,8192") == std::vector<int>{128, 1024, 8192});
  CHECK(bench::parse_isl_list("1") == std::vector<int>{1});
  CHECK_THROWS_WITH(bench::parse_isl_list(""), Catch::Contains("'' is not a positive integer"));
  CHECK_THROWS_WITH(bench::parse_isl_list("128,"), Catch::Contains("'' is not a positive integer"));
  CHECK_THROWS_WITH(bench::parse_isl_list("0"), Catch::Contains("'0' is not a positive integer"));
  CHECK_THROWS_WITH(bench::parse_isl_list("-4"), Catch::Contains("'-4'"));
  CHECK_THROWS_WITH(bench::parse_isl_list("12x"), Catch::Contains("'12x'"));
  CHECK_THROWS_WITH(bench::parse_isl_list("1k"), Catch::Contains("'1k'"));
}

TEST_CASE("bench prefill: the floor and FLOP counts", "[prefill_cli]") {
  const ModelConfig c = ModelConfig::preset("20b");
  // One position: no prefill chunk, only the last position's decode step.
  CHECK(bench::prefill_floor_bytes(c, {}, 1, 1024) == bench::weight_bytes_per_token(c));
  // Every further chunk reads the layer weights once more.
  const uint64_t one = bench::prefill_floor_bytes(c, {}, 1025, 1024);
  const uint64_t two = bench::prefill_floor_bytes(c, {}, 1026, 1024);
  const uint64_t kv_per_pos = uint64_t(c.num_layers) * 2 * c.num_kv_heads * c.head_dim * 2;
  CHECK(two - one > 10 * kv_per_pos);  // a whole extra read of the layer weights
  CHECK(bench::prefill_floor_bytes(c, {}, 1024, 1024) + kv_per_pos == one);
  // FLOPs grow faster than linearly (attention over every earlier key on full layers).
  const double f1 = bench::prefill_flops(c, 1024), f8 = bench::prefill_flops(c, 8192);
  CHECK(f1 > 2.0 * 1024 * 1e9);  // > 1e9 multiply-adds per token (about 3e9 for 20b)
  CHECK(f8 > 8.0 * f1);
}

TEST_CASE("prefill option: refused where it cannot apply, bad values named", "[prefill_cli]") {
  test::TempDir dir;
  std::string out, err;
  CHECK(run_gptoss("generate --synthetic tiny --backend cpu --prefill batched --tokens 1,2,3 -n 1",
                   dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("--prefill batched needs the CUDA backend"));
  CHECK(run_gptoss("generate --synthetic tiny --backend cpu --prefill sometimes --tokens 1,2 -n 1",
                   dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("--prefill"));
  CHECK(run_gptoss("bench sweep --synthetic tiny --backend cpu --prefill batched --pairs 4:2",
                   dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("--prefill batched needs the CUDA backend"));
  // --prefill decode is the per-token path the CPU backend always takes: accepted.
  CHECK(run_gptoss("generate --synthetic tiny --backend cpu --prefill decode --tokens 1,2,3 -n 2",
                   dir.path, &out, &err) == 0);
  CHECK(run_gptoss("generate --help", dir.path, &out, &err) == 0);
  CHECK_THAT(out, Catch::Contains("--prefill"));
}

TEST_CASE("bench prefill: bad requests are refused before any GPU work", "[prefill_cli]") {
  test::TempDir dir;
  std::string out, err;
  CHECK(run_gptoss("bench prefill --synthetic tiny --isl 128,x", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("--isl: 'x' is not a positive integer"));
  CHECK(run_gptoss("bench prefill --isl 128", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("exactly one of -m FILE and --synthetic SHAPE"));
  CHECK(run_gptoss("bench prefill --synthetic tiny --isl 200000", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("beyond the model's context of 131072"));
  CHECK(run_gptoss("bench prefill --synthetic tiny --prefill sideways", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("unknown path 'sideways'"));
  CHECK(run_gptoss("bench prefill --synthetic tiny --repeats 0", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("--repeats 0"));
  CHECK(run_gptoss("bench prefill --synthetic tiny --experts fp4", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("--experts"));
  CHECK(run_gptoss("bench --help", dir.path, &out, &err) == 0);
  CHECK_THAT(out, Catch::Contains("prefill"));
}
