// test_e2e.cpp — the CPU reference against transformers (tag [e2e]). The fixture
// (tests/fixtures/make_hf_fixture.py, run on the GPU machine) holds transformers' FP32 logits for a
// synthetic checkpoint; this test regenerates the same checkpoint with synth, converts it, runs
// the reference over the same tokens and compares position by position. Disagreements must be
// explained by a logit or router near-tie, never by loose tolerances. Without the fixture file the
// test warns "SKIPPED" and returns (the fixture only exists after the GPU run).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "converter/convert.h"
#include "converter/synth.h"
#include "host/archive/archive.h"
#include "host/reference/forward.h"
#include "tests/reference/naive_model.h"
#include "tests/temp_dir.h"

using namespace gptoss;
namespace fs = std::filesystem;

namespace {

// The fixture the CI compares against: tiny (4 layers, 8 experts, real widths) with the vocabulary
// cut to 8192 so that synth + convert + 332 reference steps fit a 2-core CI machine (0.7 GB of
// checkpoint instead of 3.2 GB; the LM head is a plain BF16 GEMV whose length does not change what
// is validated here). GPTOSS_HF_FIXTURE overrides the path.
constexpr const char* kFixtureName = "hf_tiny_v8192_seed1.json";

// ---- tolerances, each with its reason ------------------------------------------------------------
// The reference stores BF16 at five points per layer (DESIGN.md section 6); transformers in FP32 is
// the exact model up to FP32 summation order. So the two differ by the reference's BF16 storage,
// propagated through 4 layers and the KV history. Measured on the committed fixture (tiny, vocab
// 8192, 300 positions; the test prints these numbers every run): router logits within 0.040 of
// their RMS, recorded logits within 0.042 of the logit RMS (full rows 0.026), logsumexp within
// 0.0096, centered cosine >= 0.9965, mean KL 2.4e-4 (transformers' own BF16 run is at 1.2e-3).
// The bounds below are about twice that; a wrong mask, rotation, bias or expert formula moves
// logits by O(1) RMS and router choices everywhere.
struct Tolerances {
  double router_err;    // max |ref - hf| router logit, in router-logit RMS units
  double logit_err;     // max |ref - hf| over the top-k ids, in logit-RMS units
  double lse_err;       // |logsumexp difference|, in logit-RMS units
  double centered_cos;  // Pearson correlation of the top-k logits
  double mean_kl;       // mean KL(hf || ref) on the recorded support, nats
  // Two values each within e of the truth can swap order only when their gap is under 2e, so a
  // top-1 (or greedy) disagreement is explained when either model's top-1 minus top-2 margin is
  // under logit_tie = 2 logit_err, and a different expert set when the 4th-5th router gap of the
  // first layer that differs is under router_tie (logit-RMS and router-RMS units). A different
  // set moves that position's residual by O(1) (DESIGN.md section 8), so the position is reported
  // and not compared.
  double logit_tie;
  double router_tie;
  // Skipped positions must stay rare, or the explanations could hide a real bug.
  double max_tie_fraction;
};

// Against transformers in FP32, tiny (the committed CI fixture; measured: 6 of 300 positions with
// a flip, every first flip at a gap under 0.4% of the router RMS).
constexpr Tolerances kFp32{0.08, 0.08, 0.03, 0.99, 1e-3, 0.16, 0.16, 0.1};

// Against transformers in FP32, a deep model (the 20b shape: 24 layers of 32 experts; fixture
// hf_20b_seed7_fp32.json with tests/fixtures/README.md). Each layer is another chance for two router
// logits to sit within the rounding difference: measured, 120 of 140 positions have a different
// set in some layer, each first one at a gap of at most 4.4% of the router RMS (median 0.6%).
// Every such position also changes the KV entries that later positions attend to, so the 20
// positions without a flip carry the earlier flips' effects: router logits there differ by up to
// 17% of their RMS, logits by 12% of the logit RMS, mean KL 4.8e-3. For scale, transformers' own
// BF16 run against its FP32 run on this checkpoint: top-1 77%, mean KL 5.3e-2, logits up to 1.4
// RMS apart. The bounds are the measured values with some room; the flip gaps are the real check.
constexpr Tolerances kFp32Deep{0.25, 0.2, 0.05, 0.95, 1e-2, 0.16, 0.1, 1.0};

// Against transformers run in BF16 (a smoke test for when only an H100 is at hand: FP32 20b needs
// an H200): transformers then keeps its residual stream in BF16 and differs from the exact model
// more than the reference does (tiny: 21% of the logit RMS, 95% top-1, KL 1.2e-3; 20b: see above).
// Only gross errors fail it.
constexpr Tolerances kBf16{0.5, 0.5, 0.2, 0.9, 2e-2, 1.0, 0.5, 1.0};

struct Fixture {
  std::string path;
  std::string shape;
  std::string precision;  // transformers' precision, as its generator recorded it
  uint64_t seed = 0;
  int vocab = 0, layers = 0, experts = 0;
  nlohmann::json config;
  std::vector<int> tokens;
  std::vector<std::vector<int>> top_ids;        // [pos][k]
  std::vector<std::vector<double>> top_logits;  // [pos][k]
  std::vector<double> logsumexp;                // [pos]
  std::map<int, std::vector<double>> full_rows;
  std::vector<std::vector<std::vector<double>>> router_logits;  // [pos][layer][expert]
  std::vector<int> greedy;
  std::vector<double> greedy_margins;
};

Fixture load_fixture(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  const nlohmann::json j = nlohmann::json::parse(in);
  REQUIRE(j.at("format") == "gptoss-hf-fixture-v1");
  Fixture f;
  f.path = path;
  f.shape = j.at("checkpoint").at("shape").get<std::string>();
  f.precision = j.value("generator", nlohmann::json::object()).value("precision", "fp32");
  f.seed = j.at("checkpoint").at("seed").get<uint64_t>();
  f.vocab = j.at("checkpoint").value("vocab", 0);
  f.layers = j.at("checkpoint").value("layers", 0);
  f.experts = j.at("checkpoint").value("experts", 0);
  f.config = j.at("config");
  f.tokens = j.at("tokens").get<std::vector<int>>();
  f.top_ids = j.at("top_ids").get<std::vector<std::vector<int>>>();
  f.top_logits = j.at("top_logits").get<std::vector<std::vector<double>>>();
  f.logsumexp = j.at("logsumexp").get<std::vector<double>>();
  for (const auto& [k, v] : j.at("full_rows").items()) f.full_rows[std::stoi(k)] = v.get<std::vector<double>>();
  f.router_logits = j.at("router_logits").get<std::vector<std::vector<std::vector<double>>>>();
  f.greedy = j.at("greedy").at("tokens").get<std::vector<int>>();
  f.greedy_margins = j.at("greedy").at("margins").get<std::vector<double>>();
  REQUIRE(f.top_ids.size() == f.tokens.size());
  REQUIRE(f.top_logits.size() == f.tokens.size());
  REQUIRE(f.logsumexp.size() == f.tokens.size());
  REQUIRE(f.router_logits.size() == f.tokens.size());
  return f;
}

double rms_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s / double(v.size()));
}

double logsumexp_of(const std::vector<float>& v) {
  const double m = *std::max_element(v.begin(), v.end());
  double s = 0;
  for (float x : v) s += std::exp(double(x) - m);
  return m + std::log(s);
}

// The chosen expert set (top-k raw logits, lowest index on ties) and the k-th minus (k+1)-th gap.
std::pair<std::vector<int>, double> top_set(const std::vector<double>& logits, int k) {
  std::vector<int> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  std::vector<int> set(order.begin(), order.begin() + k);
  std::sort(set.begin(), set.end());
  const double gap = k < int(logits.size()) ? logits[order[k - 1]] - logits[order[k]] : 1e30;
  return {set, gap};
}

// Something that produces logits for a token sequence one position at a time: the reference, or
// (self-check) the naive FP64 model standing in for transformers.
struct Report {
  int positions = 0, compared = 0, top1_agree = 0, top1_explained = 0;
  int router_mismatch_explained = 0;
  std::vector<std::string> unexplained;  // position descriptions that fail the test
  std::vector<std::string> ties;         // near-tie positions (reported, not compared)
  double worst_err = 0, worst_lse = 0, min_cos = 1, sum_kl = 0, worst_full_err = 0;
  double min_full_cos = 1;
  double worst_router_err = 0;  // max |ref - hf| router logit / router RMS, before any flip
  std::vector<double> flip_gaps;  // router gap (RMS units) at each position's first flipped layer
  int greedy_agree = 0, greedy_checked = 0;
};

// Runs `r` over the fixture's tokens and compares. Reference-side router data comes from r.
Report compare_with_fixture(ref::Reference& r, const Fixture& f, const Tolerances& tol) {
  Report rep;
  const ModelConfig& c = r.config();
  const int k = c.experts_per_token;
  for (size_t p = 0; p < f.tokens.size(); ++p) {
    const int ref_top1 = r.step(f.tokens[p]);
    const std::vector<float>& L = r.logits();
    const double rms = rms_of(L);
    ++rep.positions;
    // Expert sets per layer. A different set is legitimate only at a router near-tie; then this
    // position's residual moves by O(1) and it is reported, not compared. Until the first
    // different set, the router logits themselves are compared.
    bool router_flip = false;
    for (int l = 0; l < c.num_layers; ++l) {
      const auto& hf_router = f.router_logits[p][static_cast<size_t>(l)];
      double hf_rms = 0;
      for (double v : hf_router) hf_rms += v * v;
      hf_rms = std::sqrt(hf_rms / double(hf_router.size()));
      const auto [hf_set, hf_gap] = top_set(hf_router, k);
      std::vector<int> ref_set = r.layer(l).experts;
      std::sort(ref_set.begin(), ref_set.end());
      if (!router_flip) {
        for (size_t e = 0; e < hf_router.size(); ++e) {
          rep.worst_router_err = std::max(
              rep.worst_router_err, std::fabs(r.layer(l).router_logits[e] - hf_router[e]) / hf_rms);
        }
      }
      // Only the first layer with a different set must be a near-tie: every later layer of this
      // position reads a residual that the flip moved by O(1).
      if (ref_set != hf_set && !router_flip) {
        const double gap = std::min(hf_gap, double(r.layer(l).margins.kth_gap));
        if (gap < tol.router_tie * hf_rms) {
          ++rep.router_mismatch_explained;
          rep.flip_gaps.push_back(gap / hf_rms);
        } else {
          rep.unexplained.push_back(fmt::format(
              "position {} layer {}: experts differ with a 4th-5th gap of {:.3f} ({:.1f}% of the "
              "router RMS)", p, l, gap, 100 * gap / hf_rms));
        }
        router_flip = true;
      }
    }
    const auto& ids = f.top_ids[p];
    const auto& hf = f.top_logits[p];
    const double hf_margin = hf[0] - hf[1];
    const bool logit_tie =
        hf_margin < tol.logit_tie * rms || r.logit_margin() < tol.logit_tie * rms;
    if (ref_top1 == ids[0]) {
      ++rep.top1_agree;
    } else if (logit_tie || router_flip) {
      ++rep.top1_explained;
    } else {
      rep.unexplained.push_back(fmt::format(
          "position {}: top-1 {} (ref) vs {} (hf), margins {:.3f} / {:.3f} with logit RMS {:.3f}",
          p, ref_top1, ids[0], r.logit_margin(), hf_margin, rms));
    }
    if (router_flip) {
      rep.ties.push_back(std::to_string(p));
      continue;  // the residual legitimately differs at this position
    }
    // Errors over the recorded support.
    const double lse_ref = logsumexp_of(L);
    double err = 0, kl = 0, ma = 0, mb = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      const double a = L[static_cast<size_t>(ids[i])], b = hf[i];
      err = std::max(err, std::fabs(a - b));
      const double pb = std::exp(b - f.logsumexp[p]);
      kl += pb * ((b - f.logsumexp[p]) - (a - lse_ref));
      ma += a;
      mb += b;
    }
    ma /= double(ids.size());
    mb /= double(ids.size());
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      const double a = L[static_cast<size_t>(ids[i])] - ma, b = hf[i] - mb;
      sab += a * b;
      saa += a * a;
      sbb += b * b;
    }
    const double cos = sab / std::sqrt(saa * sbb);
    ++rep.compared;
    rep.worst_err = std::max(rep.worst_err, err / rms);
    rep.worst_lse = std::max(rep.worst_lse, std::fabs(lse_ref - f.logsumexp[p]) / rms);
    rep.min_cos = std::min(rep.min_cos, cos);
    rep.sum_kl += kl;
    if (auto it = f.full_rows.find(static_cast<int>(p)); it != f.full_rows.end()) {
      REQUIRE(it->second.size() == L.size());
      double ferr = 0, fab = 0, faa = 0, fbb = 0;
      for (size_t v = 0; v < L.size(); ++v) {
        ferr = std::max(ferr, std::fabs(L[v] - it->second[v]));
        fab += L[v] * it->second[v];
        faa += double(L[v]) * L[v];
        fbb += it->second[v] * it->second[v];
      }
      rep.worst_full_err = std::max(rep.worst_full_err, ferr / rms);
      rep.min_full_cos = std::min(rep.min_full_cos, fab / std::sqrt(faa * fbb));
    }
  }
  // Greedy continuation: feed transformers' greedy tokens (so a near-tie cannot derail the rest)
  // and check that the reference picks the same token at each step.
  int next = gptoss::ref::greedy_argmax(r.logits());
  for (size_t i = 0; i < f.greedy.size(); ++i) {
    const double rms = rms_of(r.logits());
    ++rep.greedy_checked;
    if (next == f.greedy[i]) {
      ++rep.greedy_agree;
    } else if (!(f.greedy_margins[i] < tol.logit_tie * rms ||
                 r.logit_margin() < tol.logit_tie * rms)) {
      rep.unexplained.push_back(fmt::format("greedy step {}: {} (ref) vs {} (hf), margins {:.3f} / "
                                            "{:.3f}", i, next, f.greedy[i], r.logit_margin(),
                                            f.greedy_margins[i]));
    }
    if (i + 1 < f.greedy.size()) next = r.step(f.greedy[i]);
  }
  return rep;
}

void check_report(const Report& rep, const Tolerances& tol) {
  const double mean_kl = rep.compared ? rep.sum_kl / rep.compared : 0;
  const std::string summary = fmt::format(
      "{} positions: top-1 agree {} (+{} explained by near-ties), compared {} (near-ties skipped: "
      "{}), worst router-logit err {:.4f} RMS, worst recorded-logit err {:.4f} RMS, worst lse err {:.4f} RMS, min centered cosine "
      "{:.5f}, mean KL {:.2e}, full rows: worst err {:.4f} RMS, min cosine {:.6f}; router "
      "flips at near-ties (first layer per position) {}; greedy {}/{} agree",
      rep.positions, rep.top1_agree, rep.top1_explained, rep.compared, rep.ties.size(),
      rep.worst_router_err, rep.worst_err, rep.worst_lse, rep.min_cos, mean_kl, rep.worst_full_err, rep.min_full_cos,
      rep.router_mismatch_explained, rep.greedy_agree, rep.greedy_checked);
  WARN(summary);  // always shown: the numbers are the point of this test
  if (!rep.ties.empty()) {
    std::string list;
    for (const auto& t : rep.ties) list += " " + t;
    WARN("positions with a router flip at a near-tie (explained, not compared):" + list);
    std::vector<double> g = rep.flip_gaps;
    std::sort(g.begin(), g.end());
    if (!g.empty()) {
      WARN(fmt::format("4th-5th router gap at the first flipped layer, in router-RMS units: median "
                       "{:.4f}, 90th percentile {:.4f}, max {:.4f}", g[g.size() / 2],
                       g[g.size() * 9 / 10], g.back()));
    }
  }
  for (const auto& u : rep.unexplained) {
    INFO(u);
    CHECK(false);
  }
  CHECK(rep.compared > 0);
  CHECK(double(rep.ties.size()) <= tol.max_tie_fraction * rep.positions);
  CHECK(rep.worst_err <= tol.logit_err);
  CHECK(rep.worst_lse <= tol.lse_err);
  CHECK(rep.worst_router_err <= tol.router_err);
  CHECK(rep.min_cos >= tol.centered_cos);
  CHECK(mean_kl <= tol.mean_kl);
  CHECK(rep.worst_full_err <= tol.logit_err);
}

ModelConfig fixture_config(const Fixture& f) {
  const ModelConfig c = conv::synth_config(f.shape, f.layers, f.experts, f.vocab);
  const ModelConfig from_fixture = ModelConfig::from_json(f.config, f.path + " config");
  INFO("the fixture's config.json must be what synth writes for its shape and overrides");
  REQUIRE(from_fixture == c);
  return c;
}

// synth -> HF files -> convert -> archive, exactly as a user would (the transformers side read the
// same HF files).
fs::path regenerate_archive(const Fixture& f, const ModelConfig& c, const fs::path& dir) {
  conv::SynthWriteOptions so;
  conv::write_synth_checkpoint(dir / "ckpt", c, f.seed, so);
  conv::ConvertOptions co;
  co.checkpoint = dir / "ckpt";
  co.output = dir / "model.gptoss";
  co.no_tokenizer = true;
  co.write.handle_signals = false;
  conv::convert_checkpoint(co);
  fs::remove_all(dir / "ckpt");
  return co.output;
}

std::string fixture_path() {
  if (const char* env = std::getenv("GPTOSS_HF_FIXTURE")) return env;
  return (fs::path(GPTOSS_TEST_FIXTURES) / kFixtureName).string();
}

}  // namespace

TEST_CASE("CPU reference matches transformers FP32 on a synthetic checkpoint", "[e2e]") {
  const std::string path = fixture_path();
  if (!fs::exists(path)) {
    WARN("SKIPPED: transformers fixture " << path << " not found; it is made on the GPU machine "
         "by tests/fixtures/make_hf_fixture.py (see its header for the two commands)");
    return;
  }
  const Fixture f = load_fixture(path);
  const ModelConfig c = fixture_config(f);
  test::TempDir tmp;
  const fs::path archive_path = regenerate_archive(f, c, tmp.path);
  const MappedArchive archive = MappedArchive::open(archive_path);
  const ModelWeights w = bind_weights(archive.config(), archive.lookup());
  ref::Reference r(w, {gptoss::ExpertMode::kBf16, 0,
                       static_cast<int>(f.tokens.size() + f.greedy.size())});
  check_report(compare_with_fixture(r, f, kFp32), kFp32);
}

// Not run by default: a fixture made on the GPU machine for a full-size checkpoint (the 20b-shaped
// check of tests/fixtures/README.md, made by scripts/gpu_20b_checks.sh) against an archive already
// converted from that checkpoint: GPTOSS_HF_FIXTURE=fixture.json GPTOSS_HF_ARCHIVE=model.gptoss.
// The tolerances follow the precision transformers ran in and the depth (kFp32, kFp32Deep, kBf16).
TEST_CASE("CPU reference matches transformers on a given archive", "[.e2e_archive]") {
  const char* fixture = std::getenv("GPTOSS_HF_FIXTURE");
  const char* archive_env = std::getenv("GPTOSS_HF_ARCHIVE");
  if (!fixture || !archive_env) FAIL("set GPTOSS_HF_FIXTURE and GPTOSS_HF_ARCHIVE");
  const Fixture f = load_fixture(fixture);
  const ModelConfig c = fixture_config(f);
  const MappedArchive archive = MappedArchive::open(archive_env);
  REQUIRE(archive.config() == c);
  const ModelWeights w = bind_weights(archive.config(), archive.lookup());
  ref::Reference r(w, {gptoss::ExpertMode::kBf16, 0,
                       static_cast<int>(f.tokens.size() + f.greedy.size())});
  const bool bf16 = f.precision.rfind("bf16", 0) == 0;
  const bool deep = c.num_layers > 4;
  const Tolerances& tol = bf16 ? kBf16 : deep ? kFp32Deep : kFp32;
  WARN("transformers precision: " << f.precision << " (tolerances: "
                                  << (bf16 ? "kBf16" : deep ? "kFp32Deep" : "kFp32") << ")");
  const auto t0 = std::chrono::steady_clock::now();
  const Report rep = compare_with_fixture(r, f, tol);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double steps = double(f.tokens.size() + f.greedy.size());
  WARN(fmt::format("CPU reference: {:.0f} steps in {:.1f} s = {:.3f} tokens/s", steps, s, steps / s));
  check_report(rep, tol);
}

// Not run by default. Builds a fixture from the naive FP64 model (the exact model, like
// transformers in FP32) for the same checkpoint and runs the same comparison: it checks the
// comparison code itself and calibrates the tolerances above without a GPU. Slow (~1 s per
// position). GPTOSS_SELFCHECK_POSITIONS (default 300) and GPTOSS_SELFCHECK_OUT (write the fixture
// JSON there) adjust it.
TEST_CASE("e2e comparison self-check against the naive FP64 model", "[.e2e_selfcheck]") {
  int positions = 300;
  if (const char* env = std::getenv("GPTOSS_SELFCHECK_POSITIONS")) positions = std::atoi(env);
  const int greedy_steps = 8, top_k = 64;
  Fixture f;
  f.path = "naive-fp64";
  f.shape = "tiny";
  f.seed = 1;
  f.vocab = 8192;
  const ModelConfig c = conv::synth_config(f.shape, 0, 0, f.vocab);
  f.config = c.to_hf_json();
  test::TempDir tmp;
  const fs::path archive_path = regenerate_archive(f, c, tmp.path);
  const MappedArchive archive = MappedArchive::open(archive_path);
  const ModelWeights w = bind_weights(archive.config(), archive.lookup());
  uint64_t s = 1234;
  for (int i = 0; i < positions; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    f.tokens.push_back(static_cast<int>((s >> 33) % static_cast<uint64_t>(c.vocab_size)));
  }
  naive::NaiveModel exact(w, /*round_bf16=*/false, /*fp8=*/false);
  auto record = [&](const std::vector<double>& logits, int p, bool full) {
    std::vector<int> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                      [&](int a, int b) { return logits[a] > logits[b]; });
    order.resize(top_k);
    std::vector<double> vals;
    for (int id : order) vals.push_back(logits[static_cast<size_t>(id)]);
    f.top_ids.push_back(order);
    f.top_logits.push_back(vals);
    const double m = vals[0];
    double z = 0;
    for (double v : logits) z += std::exp(v - m);
    f.logsumexp.push_back(m + std::log(z));
    if (full) f.full_rows[p] = logits;
  };
  std::vector<double> logits;
  for (int p = 0; p < positions; ++p) {
    logits = exact.step(f.tokens[static_cast<size_t>(p)]);
    record(logits, p, p == 0 || p == 127 || p == 128 || p == positions - 1);
    std::vector<std::vector<double>> router;
    for (int l = 0; l < c.num_layers; ++l) router.push_back(exact.layer_out(l).router_logits);
    f.router_logits.push_back(router);
  }
  for (int i = 0; i < greedy_steps; ++i) {
    const int next = static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    std::vector<double> sorted = logits;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
    f.greedy.push_back(next);
    f.greedy_margins.push_back(sorted[0] - sorted[1]);
    if (i + 1 < greedy_steps) logits = exact.step(next);
  }
  if (const char* out = std::getenv("GPTOSS_SELFCHECK_OUT")) {
    nlohmann::json j;
    j["format"] = "gptoss-hf-fixture-v1";
    j["generator"] = {{"script", "test_e2e [.e2e_selfcheck] (naive FP64 model)"}};
    j["checkpoint"] = {{"shape", f.shape}, {"seed", f.seed}, {"vocab", f.vocab}, {"layers", 0},
                       {"experts", 0}};
    j["config"] = f.config;
    j["token_seed"] = 1234;
    j["tokens"] = f.tokens;
    j["top_k"] = top_k;
    j["top_ids"] = f.top_ids;
    j["top_logits"] = f.top_logits;
    j["logsumexp"] = f.logsumexp;
    for (const auto& [p, row] : f.full_rows) j["full_rows"][std::to_string(p)] = row;
    j["router_logits"] = f.router_logits;
    j["greedy"] = {{"tokens", f.greedy}, {"margins", f.greedy_margins}};
    std::ofstream(out) << j.dump();
  }
  ref::Reference r(w, {gptoss::ExpertMode::kBf16, 0, positions + greedy_steps});
  check_report(compare_with_fixture(r, f, kFp32), kFp32);
}
