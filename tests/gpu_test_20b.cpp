// gpu_test_20b.cpp — full-scale checks on a converted archive (label gpu, hidden: tag [.full]).
// They need a real-size archive that only the GPU machine has room and time for, so they are not
// part of the default run; scripts/gpu_20b_checks.sh makes the archive and runs them:
//   GPTOSS_FULL_ARCHIVE=/tmp/20b.gptoss GPTOSS_FULL_SEED=7 GPTOSS_FULL_SHAPE=20b test_gpu "[.full]"
//  - the archive written by `gptoss synth --shape S --seed N` + `gptoss convert`, uploaded, has the
//    same bytes on the device as `--synthetic S --seed N` generates there (XXH64 per tensor, also
//    against the archive's own directory), with the upload throughput measured;
//  - the megakernel against the CPU reference (run on this machine's CPUs) on the same archive:
//    greedy decoding driven by the GPU's tokens, every step compared, with the expert set of every
//    layer read from the kernel; a different token or expert set must be a near-tie.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "converter/synth.h"
#include "host/archive/archive.h"
#include "host/reference/forward.h"
#include "host/runtime/engine.h"
#include "host/tensor_spec.h"
#include "megakernel/phases.h"

namespace {

using gptoss::GpuEngine;
using gptoss::DecodeOptions;
using gptoss::MappedArchive;

// The same end-to-end tolerances as the tiny test (gpu_test_megakernel.cpp), for the same reasons:
// both sides round to BF16 at the same points but sum in different orders; with 24 layers instead
// of 4 the differences have more room to grow, which the measured numbers printed below show.
constexpr float kNearTie = 5e-2f;    // margin under this many logit-RMS units: a near-tie
constexpr float kLogitRmsErr = 5e-2f;  // RMS of the logit error, relative to the logits' RMS

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

float rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return float(std::sqrt(s / double(std::max<size_t>(v.size(), 1))));
}

}  // namespace

TEST_CASE("full scale: --synthetic equals synth + convert, uploaded", "[.full][synthetic]") {
  const std::string path = env_or("GPTOSS_FULL_ARCHIVE", "");
  if (path.empty()) FAIL("set GPTOSS_FULL_ARCHIVE to an archive made by synth + convert");
  const uint64_t seed = std::strtoull(env_or("GPTOSS_FULL_SEED", "7").c_str(), nullptr, 10);
  const MappedArchive archive = MappedArchive::open(path);
  const gptoss::ModelWeights w = archive.weights();
  const auto specs = gptoss::canonical_tensors(archive.config());
  uint64_t weight_bytes = 0;
  for (const auto& s : specs) weight_bytes += s.num_bytes();

  DecodeOptions go;
  go.max_context = 1024;
  std::vector<uint64_t> uploaded;
  {
    const auto t0 = std::chrono::steady_clock::now();
    GpuEngine up(w, go);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    WARN(fmt::format("upload of {} ({:.2f} GB of weights): {:.2f} s including KV/buffer allocation, "
                     "{:.2f} GB/s", path, weight_bytes / 1e9, s, weight_bytes / 1e9 / s));
    uploaded = up.weight_hashes();
  }
  const auto t0 = std::chrono::steady_clock::now();
  GpuEngine synthetic(archive.config(), seed, go);
  const double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN(fmt::format("--synthetic generation (seed {}): {:.2f} s", seed, gen_s));
  const std::vector<uint64_t> generated = synthetic.weight_hashes();
  REQUIRE(generated.size() == specs.size());
  REQUIRE(uploaded.size() == specs.size());
  int equal = 0, equal_dir = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    INFO(specs[i].name);
    CHECK(generated[i] == uploaded[i]);
    equal += generated[i] == uploaded[i];
    const gptoss::ArchiveTensor* t = archive.find(specs[i].name);
    REQUIRE(t != nullptr);
    CHECK(t->xxh64 == uploaded[i]);
    equal_dir += t->xxh64 == uploaded[i];
  }
  WARN(fmt::format("{} of {} tensors: device XXH64 of --synthetic == uploaded archive; {} == the "
                   "archive directory's XXH64", equal, specs.size(), equal_dir));
}

TEST_CASE("full scale: megakernel greedy decoding against the CPU reference", "[.full][e2e]") {
  const std::string path = env_or("GPTOSS_FULL_ARCHIVE", "");
  if (path.empty()) FAIL("set GPTOSS_FULL_ARCHIVE to an archive made by synth + convert");
  const int steps = std::atoi(env_or("GPTOSS_FULL_STEPS", "48").c_str());
  const MappedArchive archive = MappedArchive::open(path);
  const gptoss::ModelWeights w = archive.weights();
  const gptoss::ModelConfig& c = archive.config();
  const int prompt_len = 8;
  DecodeOptions ro;
  ro.max_context = prompt_len + steps + 1;
  gptoss::ref::Reference ref(w, ro);
  DecodeOptions go;
  go.max_context = 1024;
  go.keep_logits = true;
  go.quiet = true;
  GpuEngine gpu(w, go);

  // A fixed prompt of ordinary ids, then greedy with the GPU's tokens fed to both sides, so one
  // near-tie does not derail the comparison of every later step.
  std::vector<int> tokens;
  uint64_t s = 20261123;
  for (int i = 0; i < prompt_len; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    tokens.push_back(int((s >> 33) % 199998));
  }
  // Per position: the GPU's expert set of every layer (the kernel stopped after experts_up of
  // layer l, on its own KV history) against the reference's. Until the first layer whose sets
  // differ, the router logits are compared; a different set must be a router near-tie of the
  // reference, and it moves the rest of that position by O(1), so logits are compared only at
  // positions where every layer chose the same experts.
  int agree = 0, ties = 0, same_sets = 0;
  float worst_rms_err = 0, worst_max_err = 0, worst_router_err = 0;
  double ref_s = 0, gpu_s = 0;
  std::vector<int> generated;
  std::string flips;
  int token = tokens[0];
  for (int pos = 0; pos < prompt_len + steps; ++pos) {
    std::vector<std::vector<int>> gpu_sets(size_t(c.num_layers));
    std::vector<std::vector<float>> gpu_router(size_t(c.num_layers));
    for (int l = 0; l < c.num_layers; ++l) {
      gpu.run_partial(token, pos, l, int(gptoss::mk::Phase::kExpertsUp));
      std::vector<int32_t> e = gpu.read_experts();
      gpu_sets[size_t(l)].assign(e.begin(), e.end());
      std::sort(gpu_sets[size_t(l)].begin(), gpu_sets[size_t(l)].end());
      gpu_router[size_t(l)] = gpu.read_router_logits();
    }
    auto t0 = std::chrono::steady_clock::now();
    const int next_gpu = gpu.step(token, pos);
    auto t1 = std::chrono::steady_clock::now();
    const int next_ref = ref.step(token);
    auto t2 = std::chrono::steady_clock::now();
    gpu_s += std::chrono::duration<double>(t1 - t0).count();
    ref_s += std::chrono::duration<double>(t2 - t1).count();

    int first_flip = -1;
    for (int l = 0; l < c.num_layers && first_flip < 0; ++l) {
      const gptoss::ref::LayerBuffers& b = ref.layer(l);
      const float router_rms = rms(b.router_logits);
      REQUIRE(gpu_router[size_t(l)].size() == b.router_logits.size());
      for (size_t e = 0; e < b.router_logits.size(); ++e) {
        worst_router_err = std::max(
            worst_router_err, std::fabs(gpu_router[size_t(l)][e] - b.router_logits[e]) / router_rms);
      }
      std::vector<int> ref_set = b.experts;
      std::sort(ref_set.begin(), ref_set.end());
      if (ref_set != gpu_sets[size_t(l)]) {
        first_flip = l;
        const float gap = b.margins.kth_gap / router_rms;
        flips += fmt::format(" {}@L{}:gap{:.3f}", pos, l, gap);
        INFO(fmt::format("position {} layer {}: different experts, reference 4th-5th gap {:.4f} "
                         "of the router RMS", pos, l, gap));
        CHECK(gap < 2 * kNearTie);
      }
    }
    const std::vector<float> g = gpu.logits();
    const std::vector<float>& r = ref.logits();
    REQUIRE(g.size() == r.size());
    const float r_rms = rms(r);
    if (first_flip < 0) {
      ++same_sets;
      double se = 0;
      float me = 0;
      for (size_t i = 0; i < r.size(); ++i) {
        const float d = std::fabs(g[i] - r[i]);
        se += double(d) * d;
        me = std::max(me, d);
      }
      worst_rms_err = std::max(worst_rms_err, float(std::sqrt(se / double(r.size()))) / r_rms);
      worst_max_err = std::max(worst_max_err, me / r_rms);
    }
    if (next_gpu == next_ref) {
      ++agree;
    } else {
      ++ties;
      INFO(fmt::format("position {}: gpu {} vs reference {}, reference margin {:.4f} (logit RMS "
                       "{:.3f}), first layer with different experts: {}", pos, next_gpu, next_ref,
                       ref.logit_margin(), r_rms, first_flip));
      CHECK((ref.logit_margin() < kNearTie * r_rms || first_flip >= 0));
    }
    if (pos + 1 < prompt_len) {
      token = tokens[size_t(pos + 1)];
    } else {
      generated.push_back(next_gpu);
      token = next_gpu;
    }
  }
  const int total = prompt_len + steps;
  std::string ids;
  for (int t : generated) ids += fmt::format("{} ", t);
  WARN(fmt::format("{} ({} layers): {} positions, next token identical at {}, different at {}; "
                   "every layer's expert set identical at {} positions (first differing layer, "
                   "position@layer:reference gap in router RMS units:{}); router logits before "
                   "any difference within {:.4f} of their RMS; logits at the identical-set "
                   "positions: worst RMS error {:.4f}, worst max error {:.4f} of the logit RMS; "
                   "GPU {:.2f} ms/step (host clock, incl. logits copy), CPU reference {:.3f} "
                   "s/step = {:.2f} tokens/s; GPU tokens: {}",
                   path, c.num_layers, total, agree, ties, same_sets, flips.empty() ? " none" : flips,
                   worst_router_err, worst_rms_err, worst_max_err, 1e3 * gpu_s / total,
                   ref_s / total, total / ref_s, ids));
  // With 24 layers of 32 experts, some layer of most positions has a 4th-5th router gap within
  // the rounding differences (measured: 23 of 40 positions, every gap under 3.1% of the router
  // RMS); the logits must still be compared somewhere.
  CHECK(same_sets > 0);
  CHECK(worst_rms_err <= kLogitRmsErr);
}
