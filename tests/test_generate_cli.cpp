// test_generate_cli.cpp — `gptoss generate --backend cpu` end to end through the binary (tag
// [generate]): on a small synth + convert archive its ids equal an in-process Reference run, and
// bad input (ids, context, vocabulary, backend) is refused with a clear message, never a crash.
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "converter/convert.h"
#include "converter/synth.h"
#include "host/archive/archive.h"
#include "host/reference/forward.h"
#include "tests/cli_support.h"
#include "tests/temp_dir.h"

using namespace gptoss;
namespace fs = std::filesystem;

using test::run_gptoss;
using test::SmallArchive;

TEST_CASE("generate --backend cpu prints the reference's greedy ids", "[generate]") {
  SmallArchive a;
  std::string out, err;
  const std::string model = "-m " + a.path.string();
  REQUIRE(run_gptoss("generate " + model + " --backend cpu --tokens 1,2,3 -n 6", a.dir.path, &out,
                     &err) == 0);
  INFO("stderr: " << err);
  CHECK_THAT(err, Catch::Contains("decode: 5 tokens") && Catch::Contains("tokens/s"));

  const MappedArchive archive = MappedArchive::open(a.path);
  const ModelWeights w = bind_weights(archive.config(), archive.lookup());
  for (auto mode : {gptoss::ExpertMode::kBf16, gptoss::ExpertMode::kFp8}) {
    ref::Reference r(w, {mode, 1, 64});
    int next = 0;
    for (int t : {1, 2, 3}) next = r.step(t);
    std::string want = std::to_string(next);
    for (int i = 0; i < 5; ++i) {
      next = r.step(next);
      want += "," + std::to_string(next);
    }
    if (mode == gptoss::ExpertMode::kFp8) {
      REQUIRE(run_gptoss("generate " + model + " --backend cpu --experts fp8 --tokens 1,2,3 -n 6",
                         a.dir.path, &out, &err) == 0);
    }
    CHECK(out == want + "\n");
  }
  // The thread count does not change the result.
  std::string out1;
  REQUIRE(run_gptoss("generate " + model + " --backend cpu --threads 1 --experts fp8 --tokens "
                     "1,2,3 -n 6", a.dir.path, &out1, &err) == 0);
  CHECK(out1 == out);
  // Without a GPU backend, auto falls back to the CPU with a note.
  if (run_gptoss("generate " + model + " --tokens 5 -n 2", a.dir.path, &out, &err) == 0) {
    CHECK((err.find("using the CPU reference") != std::string::npos ||
           err.find("backend cuda") != std::string::npos));
  }
}

TEST_CASE("generate refuses bad input with a clear message", "[generate]") {
  SmallArchive a;
  std::string out, err;
  const std::string base = "generate -m " + a.path.string() + " --backend cpu ";
  CHECK(run_gptoss(base + "--tokens 1,x,3", a.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("'x' is not a token id") && Catch::Contains("hint:"));
  CHECK(run_gptoss(base + "--tokens 1,,3", a.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("is not a token id"));
  CHECK(run_gptoss(base + "--tokens 1,2,3,4 --max-context 3", a.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("4 tokens") && Catch::Contains("--max-context 3"));
  CHECK(run_gptoss(base + "--tokens 512", a.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("outside the model's vocabulary (512 ids)"));
  CHECK(run_gptoss(base + "-n 4", a.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("--tokens"));
  CHECK(run_gptoss("generate --backend cpu --tokens 1", a.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("-m FILE"));
  CHECK(run_gptoss("generate -m " + (a.dir.path / "missing.gptoss").string() + " --tokens 1",
                   a.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("missing.gptoss"));
  // The context fills up: the prompt fits, generation stops at the limit with a note.
  CHECK(run_gptoss(base + "--tokens 1,2 --max-context 4 -n 10", a.dir.path, &out, &err) == 0);
  CHECK(std::count(out.begin(), out.end(), ',') == 2);  // 3 ids: positions 2 and 3, then full
  CHECK_THAT(err, Catch::Contains("context limit"));
#ifdef GPTOSS_GPU_OFF
  CHECK(run_gptoss(base.substr(0, base.find("--backend")) + "--backend cuda --tokens 1",
                   a.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("without GPU support"));
#endif
}
