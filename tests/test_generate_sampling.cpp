// test_generate_sampling.cpp — `gptoss generate`'s sampling and prompt options through the binary
// (tag [generate-sampling]) on the small archive of cli_support.h: the same --seed gives the same
// ids and another seed others, --temp 0 is the greedy output, bad values are refused by name,
// -f FILE and -p - read the same prompt as -p, --json is one parseable object, --stop cuts the
// text before the stop string; and the --seed/--weights-seed rule (resolve_seeds) in process.
#include <cstdio>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "host/cli/session.h"
#include "host/cli/stop_text.h"
#include "host/error.h"
#include "tests/cli_support.h"

using namespace gptoss;
using test::run_gptoss;
using test::SmallArchive;

TEST_CASE("generate: sampling is reproducible per seed, --temp 0 is greedy", "[generate-sampling]") {
  SmallArchive a;
  std::string out1, out2, out3, greedy, err;
  const std::string base = "generate -m " + a.path.string() + " --backend cpu --tokens 1,2,3 -n 12 ";
  REQUIRE(run_gptoss(base + "--temp 3 --seed 11", a.dir.path, &out1, &err) == 0);
  INFO("stderr: " << err);
  CHECK_THAT(err, Catch::Contains("temperature 3, seed 11"));
  REQUIRE(run_gptoss(base + "--temp 3 --seed 11", a.dir.path, &out2, &err) == 0);
  CHECK(out1 == out2);
  REQUIRE(run_gptoss(base + "--temp 3 --seed 12", a.dir.path, &out3, &err) == 0);
  CHECK(out3 != out1);  // 12 draws at temperature 3 over 512 tokens: equal by chance ~never
  REQUIRE(run_gptoss(base, a.dir.path, &greedy, &err) == 0);
  CHECK_THAT(err, Catch::Contains("greedy"));
  REQUIRE(run_gptoss(base + "--temp 0 --top-k 3 --top-p 0.5 --seed 9", a.dir.path, &out1, &err) == 0);
  CHECK(out1 == greedy);
  // top-k 1 keeps only the most likely token: greedy whatever the temperature.
  REQUIRE(run_gptoss(base + "--temp 5 --top-k 1 --seed 4", a.dir.path, &out1, &err) == 0);
  CHECK(out1 == greedy);
}

TEST_CASE("generate refuses bad sampling values by name", "[generate-sampling]") {
  SmallArchive a;
  std::string out, err;
  const std::string base = "generate -m " + a.path.string() + " --backend cpu --tokens 1,2 -n 2 ";
  const std::pair<const char*, const char*> cases[] = {
      {"--temp -1", "--temp -1: the temperature must be a finite number >= 0"},
      {"--temp nan", "--temp nan"},
      {"--top-k -2", "--top-k -2: must be >= 0"},
      {"--top-p 1.5", "--top-p 1.5: must be in (0, 1]"},
      {"--top-p 0", "--top-p 0: must be in (0, 1]"},
      {"--top-p nan", "--top-p nan"},
      {"--min-p -0.5", "--min-p -0.5: must be in [0, 1]"},
      {"--min-p 2", "--min-p 2: must be in [0, 1]"},
  };
  for (const auto& [flag, message] : cases) {
    INFO(flag);
    CHECK(run_gptoss(base + flag, a.dir.path, &out, &err) == 1);
    CHECK_THAT(err, Catch::Contains(message) && Catch::Contains("hint:"));
    CHECK(out.empty());
  }
  CHECK(run_gptoss(base + "--stop x", a.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("--stop needs a text prompt"));
  CHECK(run_gptoss(base + "-f /nonexistent/prompt.txt", a.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("exactly one of --tokens"));
  CHECK(run_gptoss("generate -m " + a.path.string() + " --backend cpu -f /nonexistent/p.txt",
                   a.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("-f /nonexistent/p.txt: cannot open the file"));
}

TEST_CASE("generate: -f, -p - and -p read one prompt, --json, --stop", "[generate-sampling]") {
  SmallArchive a;
  std::string out, err, want;
  // "a" is one o200k token (id 64), inside the small archive's 512-token vocabulary.
  const std::string base = "generate -m " + a.path.string() + " --backend cpu --raw -n 10 ";
  REQUIRE(run_gptoss(base + "-p a", a.dir.path, &want, &err) == 0);
  INFO("stderr: " << err);
  {
    std::ofstream(a.dir.path / "prompt.txt") << "a";
  }
  REQUIRE(run_gptoss(base + "-f " + (a.dir.path / "prompt.txt").string(), a.dir.path, &out, &err) == 0);
  CHECK(out == want);
  REQUIRE(run_gptoss(base + "-p - < " + (a.dir.path / "prompt.txt").string(), a.dir.path, &out,
                     &err) == 0);
  CHECK(out == want);

  // --json: one object on stdout, nothing else.
  REQUIRE(run_gptoss(base + "-p a --json", a.dir.path, &out, &err) == 0);
  const nlohmann::json j = nlohmann::json::parse(out);
  CHECK(j["prompt_ids"] == nlohmann::json::array({64}));
  CHECK(j["generated_ids"].size() == 10);
  CHECK(j["finish_reason"] == "length");
  CHECK(j["text"][""].get<std::string>() + "\n" == want);
  CHECK(j["decode"]["tokens"] == 9);
  CHECK(j["prefill"]["tokens"] == 1);
  CHECK(j["prefill"]["path"] == "decode");  // the CPU backend runs prompt positions one at a time
  CHECK(j["sampling"] == "greedy");
  REQUIRE(run_gptoss("generate -m " + a.path.string() + " --backend cpu --tokens 1,2 -n 3 --json",
                     a.dir.path, &out, &err) == 0);
  CHECK(nlohmann::json::parse(out)["generated_ids"].size() == 3);

  // --stop: a piece from the middle of the greedy text; the output ends just before it.
  const std::string text = want.substr(0, want.size() - 1);
  REQUIRE(text.size() >= 4);
  const std::string stop = text.substr(text.size() / 2, 2);
  if (stop.find_first_of("'\"\\$` \n") == std::string::npos) {
    REQUIRE(run_gptoss(base + "-p a --json --stop '" + stop + "'", a.dir.path, &out, &err) == 0);
    const nlohmann::json s = nlohmann::json::parse(out);
    CHECK(s["finish_reason"] == "stop_text");
    CHECK(s["text"][""] == text.substr(0, text.find(stop)));
  }
}

TEST_CASE("stop text is held back until it cannot start a stop string", "[generate-sampling]") {
  cli::StopText s({"END", "xy"});
  CHECK(s.push("abcE") == "abc");
  CHECK(s.push("N") == "");
  CHECK(s.push("Q") == "ENQ");
  CHECK(s.push("12x") == "12");
  CHECK(s.push("y tail") == "");
  CHECK(s.matched());
  cli::StopText t({"stop"});
  CHECK(t.push("st") == "");
  CHECK(t.flush() == "st");
  CHECK_FALSE(t.matched());
  cli::StopText none;
  CHECK(none.push("anything") == "anything");
}

TEST_CASE("resolve_seeds: --seed seeds the weights only where unambiguous", "[generate-sampling]") {
  sampling::SamplingParams p;
  cli::ModelOptions m;
  cli::SamplingOptions s;
  m.synthetic = "tiny";
  s.seed = 7;
  CHECK(cli::resolve_seeds(m, s, &p) == 7);  // greedy: the old meaning, with a note
  CHECK(p.seed == 0);
  s.temperature = 1.0f;
  CHECK(cli::resolve_seeds(m, s, &p) == 1);  // sampling: --seed is the sampler's
  CHECK(p.seed == 7);
  s.temperature = 0.0f;
  m.weights_seed = 3;
  CHECK(cli::resolve_seeds(m, s, &p) == 3);  // --weights-seed given: --seed is the sampler's
  CHECK(p.seed == 7);
  m.weights_seed.reset();
  m.synthetic.clear();
  m.model = "x.gptoss";
  CHECK(cli::resolve_seeds(m, s, &p) == 1);  // an archive: no weights seed at all
  CHECK(p.seed == 7);
  s.top_p = 2.0f;
  CHECK_THROWS_AS(cli::resolve_seeds(m, s, &p), Error);
}
