// test_accuracy.cpp — `gptoss bench accuracy` and `generate --logits-out`: the metrics on rows
// with known answers, the .npy reader/writer, the bad inputs of the issue (missing or empty text,
// a sequence shorter than -n, ids beyond the vocabulary, --reference of the wrong shape), and
// runs on a small archive on the CPU: FP8 attention + LM head against BF16, and the BF16 path
// against its own logits stored by generate --logits-out (identical: KL 0, top-1 1).
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "bench/accuracy.h"
#include "host/error.h"
#include "host/npy.h"
#include "tests/cli_support.h"

namespace fs = std::filesystem;
using gptoss::bench::compare_logits;
using gptoss::test::run_gptoss;

TEST_CASE("accuracy metrics on rows with known answers", "[accuracy]") {
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> a(1000);
  for (float& x : a) x = normal(rng);
  const auto same = compare_logits(a.data(), a.data(), 1000, 7);
  CHECK(same.top1_equal);
  CHECK(same.top5_overlap == 1.0);
  CHECK(same.top10_overlap == 1.0);
  CHECK(same.kl == Approx(0.0).margin(1e-12));
  CHECK(same.cosine == Approx(1.0));
  CHECK(same.max_abs_diff == 0.0);
  CHECK(same.nll_base == same.nll_variant);
  // A constant shift changes no probability: KL 0, but |diff| = the shift.
  std::vector<float> b = a;
  for (float& x : b) x += 2.0f;
  const auto shifted = compare_logits(a.data(), b.data(), 1000, 7);
  CHECK(shifted.kl == Approx(0.0).margin(1e-9));
  CHECK(shifted.max_abs_diff == Approx(2.0).epsilon(1e-5));
  CHECK(shifted.nll_variant == Approx(shifted.nll_base).epsilon(1e-6));  // a + 2 rounds in float
  // Two tokens: P = softmax(0, 0) = (1/2, 1/2), Q = softmax(0, ln 3) = (1/4, 3/4):
  // KL = 1/2 ln 2 + 1/2 ln(2/3); NLL of token 1: ln 2 and ln(4/3).
  const float p[2] = {0.0f, 0.0f}, q[2] = {0.0f, float(std::log(3.0))};
  const auto two = compare_logits(p, q, 2, 1);
  CHECK(two.kl == Approx(0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0)).epsilon(1e-6));
  CHECK(two.nll_base == Approx(std::log(2.0)));
  CHECK(two.nll_variant == Approx(std::log(4.0 / 3.0)).epsilon(1e-6));
  CHECK_FALSE(two.top1_equal);  // P ties at 0 and 1 (the lower index wins: 0); Q's best is 1
  const float p2[2] = {0.0f, 1.0f};
  CHECK(compare_logits(p2, q, 2, 1).top1_equal);
  // A NaN is refused.
  std::vector<float> bad = a;
  bad[3] = NAN;
  CHECK_THROWS_WITH(compare_logits(a.data(), bad.data(), 1000, 1), Catch::Contains("not finite"));
  // Summary: mean, p99 and max of KL; NLL over positions with a next token.
  std::vector<gptoss::bench::PositionMetrics> v(100);
  for (int i = 0; i < 100; ++i) {
    v[size_t(i)].kl = i;
    v[size_t(i)].top1_equal = i % 4 != 0;
    v[size_t(i)].nll_base = 1.0;
    v[size_t(i)].nll_variant = 2.0;
    v[size_t(i)].cosine = 1.0;
  }
  const auto s = gptoss::bench::summarize(v);
  CHECK(s.top1_agreement == 0.75);
  CHECK(s.kl_mean == Approx(49.5));
  CHECK(s.kl_max == 99.0);
  CHECK(s.kl_p99 == Approx(98.01));
  CHECK(s.nll_positions == 99);
  CHECK(s.ppl_variant == Approx(std::exp(2.0)));
}

TEST_CASE("accuracy: token id lists and .npy files", "[accuracy]") {
  CHECK(gptoss::bench::parse_token_ids("1, 2 3\n4", 10, "x") == std::vector<int>{1, 2, 3, 4});
  CHECK_THROWS_WITH(gptoss::bench::parse_token_ids("1,x", 10, "ids"), Catch::Contains("'x' is not a token id"));
  CHECK_THROWS_WITH(gptoss::bench::parse_token_ids("1,10", 10, "ids"),
                    Catch::Contains("token id 10 is beyond the model's vocabulary (10 ids)"));
  CHECK_THROWS_WITH(gptoss::bench::parse_token_ids(" \n", 10, "ids"), Catch::Contains("holds no token ids"));
  gptoss::test::TempDir dir;
  std::vector<float> m(3 * 5);
  for (size_t i = 0; i < m.size(); ++i) m[i] = float(i) * 0.5f - 2.0f;
  gptoss::write_npy_f32(dir.path / "m.npy", m.data(), 3, 5);
  const gptoss::NpyMatrix r = gptoss::read_npy_f32(dir.path / "m.npy");
  CHECK(r.rows == 3);
  CHECK(r.cols == 5);
  CHECK(r.data == m);
  std::ofstream(dir.path / "junk.npy") << "hello";
  CHECK_THROWS_WITH(gptoss::read_npy_f32(dir.path / "junk.npy"), Catch::Contains("not a .npy file"));
  CHECK_THROWS_WITH(gptoss::read_npy_f32(dir.path / "absent.npy"), Catch::Contains("no such file"));
  // Truncated data.
  {
    std::ifstream in(dir.path / "m.npy", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes.resize(bytes.size() - 4);
    std::ofstream(dir.path / "short.npy", std::ios::binary) << bytes;
  }
  CHECK_THROWS_WITH(gptoss::read_npy_f32(dir.path / "short.npy"), Catch::Contains("needs 60 data bytes"));
}

TEST_CASE("bench accuracy and generate --logits-out on a small archive (CPU)", "[accuracy][cli]") {
  const gptoss::test::SmallArchive ar;  // 1 layer, 4 experts, vocab 512
  gptoss::test::TempDir dir;
  std::string out, err;
  const std::string m = ar.path.string();
  std::ofstream(dir.path / "ids.txt") << "1 7 42 300 5 9 511 100\n";
  const std::string ids = (dir.path / "ids.txt").string();

  // FP8 attention + LM head against BF16: close but not identical, JSON with every metric.
  REQUIRE(run_gptoss(fmt::format("bench accuracy -m {} --vs-attn fp8 --vs-lm-head fp8 --tokens-file {} "
                                 "--backend cpu --json", m, ids),
                     dir.path, &out, &err) == 0);
  INFO(out << err);
  CHECK(err.find("position 8/8") != std::string::npos);  // progress
  const auto j = nlohmann::json::parse(out.substr(out.rfind("\n{") + 1));
  CHECK(j["positions"] == 8);
  CHECK(j["kl_mean"].get<double>() > 0.0);
  CHECK(j["kl_mean"].get<double>() < 0.05);
  CHECK(j["cosine_min"].get<double>() > 0.99);
  CHECK(j["top10_overlap"].get<double>() > 0.5);
  CHECK(out.find("top-1 agreement") != std::string::npos);

  // The BF16 path against its own logits from generate --logits-out: identical.
  REQUIRE(run_gptoss(fmt::format("generate -m {} --tokens 1,7,42,300,5,9,511,100 -n 1 --backend cpu "
                                 "--logits-out {}", m, (dir.path / "l.npy").string()),
                     dir.path, &out, &err) == 0);
  const gptoss::NpyMatrix l = gptoss::read_npy_f32(dir.path / "l.npy");
  CHECK(l.rows == 8);
  CHECK(l.cols == 512);
  REQUIRE(run_gptoss(fmt::format("bench accuracy -m {} --reference {} --tokens-file {} --backend cpu --json",
                                 m, (dir.path / "l.npy").string(), ids),
                     dir.path, &out, &err) == 0);
  const auto r = nlohmann::json::parse(out.substr(out.rfind("\n{") + 1));
  CHECK(r["kl_max"].get<double>() == 0.0);
  CHECK(r["top1_agreement"].get<double>() == 1.0);
  CHECK(r["max_abs_diff"].get<double>() == 0.0);

  // Bad input: each refused with a message naming the problem.
  auto refused = [&](const std::string& args, const std::string& message) {
    INFO(args);
    CHECK(run_gptoss("bench accuracy -m " + m + " --backend cpu " + args, dir.path, &out, &err) != 0);
    INFO(err);
    CHECK(err.find(message) != std::string::npos);
  };
  refused("--vs-attn fp8 --text /nonexistent/t.txt", "no such file");
  std::ofstream(dir.path / "empty.txt") << "  \n";
  refused("--vs-attn fp8 --text " + (dir.path / "empty.txt").string(), "is empty");
  refused("--vs-attn fp8 --tokens-file " + ids + " -n 9", "the sequence has 8 tokens, fewer than -n 9");
  std::ofstream(dir.path / "big.txt") << "1 2 512\n";
  refused("--vs-attn fp8 --tokens-file " + (dir.path / "big.txt").string(),
          "token id 512 is beyond the model's vocabulary (512 ids)");
  // The bundled text's o200k ids do not fit a 512-id vocabulary.
  refused("--vs-attn fp8 -n 4", "beyond the model's vocabulary");
  std::vector<float> wrong(8 * 300, 0.0f);
  gptoss::write_npy_f32(dir.path / "wrong.npy", wrong.data(), 8, 300);
  refused("--reference " + (dir.path / "wrong.npy").string() + " --tokens-file " + ids,
          "rows of 300 logits, but the model's vocabulary has 512 ids");
  refused("--reference " + (dir.path / "l.npy").string() + " --tokens-file " + ids + " -n 9",
          "fewer than -n 9");
  refused("--tokens-file " + ids, "nothing to compare");
}
