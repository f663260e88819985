// bench_cli.cpp — `gptoss bench tpot`: time per output token of the megakernel at batch 1,
// against the floor measured in the same process (bytes a token must read / streaming-read
// bandwidth). Fills the KV cache by a real prefill of random tokens (the batched prefill; --prefill
// decode: one decode step per position), warms up, then times at least 100 decode steps with
// device events.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "bench/accuracy.h"
#include "bench/bench_cli.h"
#include "bench/bytes_per_token.h"
#include "bench/bench_load.h"
#include "bench/bench_prefill.h"
#include "bench/sweep.h"
#include "bench/hbm_bandwidth.h"
#include "host/archive/archive.h"
#include "host/build_info.h"
#include "host/decode_options.h"  // DecodeOptions, parse_expert_mode
#include "host/error.h"
#include "host/gpu.h"
#include "host/runtime/engine.h"
#include "host/weights_view.h"
#include "megakernel/megakernel.h"
#include "megakernel/phases.h"


namespace gptoss::cli {
namespace {

struct TpotOptions {
  std::string model;
  std::string synthetic;
  uint64_t seed = 1;
  std::vector<std::string> experts = {"bf16"};
  std::string attn = "bf16", lm_head = "bf16";  // --synthetic: stored weight formats
  std::vector<int> contexts = {1024};
  std::string prefill = "batched";  // how the KV cache is filled: batched (prefill kernels) or decode
  int num_tokens = 128;
  int warmup = 16;
  bool json = false;
  bool phase_profile = false;
  bool phase_times = false;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double idx = p * double(v.size() - 1);
  const size_t lo = size_t(idx);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - double(lo));
}

// Per-phase time of a decode step from the kernel's own timeline (MegakernelArgs::phase_times):
// the interval from one grid barrier's release (as CTA 0 sees it) to the next, i.e. the slowest
// CTA's work in that phase plus the barrier itself, summed over layers; median over the steps.
// Under each phase, when CTA 0 passed the marks inside it (megakernel.h: Mark), in us after the
// phase began (mean over the layers that reached the mark), for full-attention and
// sliding-window layers separately (nan: no such layer reached the mark).
void print_phase_times(GpuEngine& engine, int token, int pos, int ctx, const std::string& experts,
                       const TpotOptions& o) {
  const ModelConfig& c = engine.config();
  const int layers = c.num_layers;
  constexpr int kPhases = int(mk::kNumPhases);
  engine.enable_phase_times();
  // Full-attention and sliding-window layers differ (attention above all): per-layer times and
  // marks are kept per kind (0 = full, 1 = sliding).
  std::vector<std::vector<double>> per_phase(kPhases + 1);  // ms per token, + the LM head
  std::vector<std::vector<double>> per_kind[2] = {std::vector<std::vector<double>>(kPhases),
                                                  std::vector<std::vector<double>>(kPhases)};
  std::vector<std::vector<double>> per_mark[2] = {std::vector<std::vector<double>>(mk::kNumMarks),
                                                  std::vector<std::vector<double>>(mk::kNumMarks)};
  std::vector<double> totals;
  for (int i = 0; i < o.warmup + o.num_tokens; ++i) {
    engine.step(token, pos);  // same position: the cache is not extended while profiling
    if (i < o.warmup) continue;
    const std::vector<uint64_t> t = engine.read_phase_times();
    const size_t end = mk::lm_head_end_slot(layers);
    std::vector<double> sum(kPhases + 1, 0.0);
    for (int kind = 0; kind < 2; ++kind) {
      std::vector<double> kind_sum(kPhases, 0.0);
      int kind_layers = 0;
      for (int l = 0; l < layers; ++l) {
        if (int(c.is_sliding(l)) != kind) continue;
        ++kind_layers;
        for (int p = 0; p < kPhases; ++p) {
          const size_t at = mk::phase_end_slot(l, p);  // the slot before it ends the phase before
          sum[size_t(p)] += double(t[at] - t[at - 1]) * 1e-6;
          kind_sum[size_t(p)] += double(t[at] - t[at - 1]) * 1e-3;
        }
      }
      if (kind_layers == 0) continue;
      for (int p = 0; p < kPhases; ++p) per_kind[kind][size_t(p)].push_back(kind_sum[size_t(p)] / kind_layers);
      // Marks: the mean over this kind's layers where CTA 0 passed the mark in this step.
      for (int m = 0; m < mk::kNumMarks; ++m) {
        const int p = int(mk::kMarkInfo[m].phase);
        double offsets = 0;
        int n = 0;
        for (int l = 0; l < layers; ++l) {
          if (int(c.is_sliding(l)) != kind) continue;
          const size_t at = mk::phase_end_slot(l, p);
          const uint64_t tm = t[mk::mark_slot(layers, l, mk::Mark(m))];
          if (tm >= t[at - 1] && tm <= t[at]) {
            offsets += double(tm - t[at - 1]) * 1e-3;
            ++n;
          }
        }
        if (n > 0) per_mark[kind][size_t(m)].push_back(offsets / n);
      }
    }
    sum[kPhases] = double(t[end] - t[end - 1]) * 1e-6;
    for (int p = 0; p <= kPhases; ++p) per_phase[size_t(p)].push_back(sum[size_t(p)]);
    totals.push_back(double(t[end] - t[mk::kStartSlot]) * 1e-6);
  }
  fmt::print("phase times at context {}, {} experts (kernel timeline, median of {} steps): "
             "{:.4f} ms from CTA 0's start to the token\n", ctx, experts, o.num_tokens,
             percentile(totals, 0.5));
  auto median_or_nan = [](const std::vector<double>& v) { return v.empty() ? NAN : percentile(v, 0.5); };
  fmt::print("  {:<14} {:>9} {:>12} {:>14} {:>14}\n", "phase", "ms/token", "us/layer",
             "full layers us", "sliding us");
  for (int p = 0; p <= kPhases; ++p) {
    const double ms = percentile(per_phase[size_t(p)], 0.5);
    if (p == mk::kLmHeadPhase) {
      fmt::print("  {:<14} {:9.4f}\n", mk::kLmHeadName, ms);
      continue;
    }
    fmt::print("  {:<14} {:9.4f} {:12.2f} {:14.2f} {:14.2f}\n", mk::kPhaseNames[size_t(p)], ms,
               ms * 1e3 / layers, median_or_nan(per_kind[0][size_t(p)]),
               median_or_nan(per_kind[1][size_t(p)]));
    for (int m = 0; m < mk::kNumMarks; ++m) {
      if (int(mk::kMarkInfo[m].phase) != p) continue;
      if (per_mark[0][size_t(m)].empty() && per_mark[1][size_t(m)].empty()) continue;
      fmt::print("      CTA 0 done with {:<18} at {:>14.2f} {:>14.2f} us\n", mk::kMarkInfo[m].name,
                 median_or_nan(per_mark[0][size_t(m)]), median_or_nan(per_mark[1][size_t(m)]));
    }
  }
}

void run_tpot(const TpotOptions& o) {
  if (o.model.empty() == o.synthetic.empty()) {
    throw Error("bench tpot needs exactly one of -m FILE and --synthetic SHAPE");
  }
  if (o.num_tokens < 100) throw Error("-n must be at least 100 (medians over fewer are noisy)");
  std::vector<int> contexts = o.contexts;
  std::sort(contexts.begin(), contexts.end());
  if (contexts.front() < 1) throw Error("--context values must be positive");
  // --experts, parsed once: the engine switches between the paths (set_expert_mode).
  const std::vector<ExpertMode> expert_modes = parse_experts_flag(o.experts);

  std::string why;
  if (!gpu::available(&why)) {
    throw gpu::GpuError(fmt::format("bench tpot needs a GPU: {}", why));
  }
  const gpu::DeviceInfo dev = gpu::device_info();
  gpu::require_hopper(dev);

  DecodeOptions eo;
  eo.synthetic_formats = parse_weight_formats(o.attn, o.lm_head);
  if (!o.model.empty() && eo.synthetic_formats != WeightFormats{}) {
    throw Error("--attn and --lm-head choose the formats of --synthetic weights; an archive's "
                "formats are fixed when it is converted");
  }
  const int per_context = (o.warmup + o.num_tokens) * int(o.experts.size());
  eo.max_context = contexts.back() + per_context + 1;
  std::unique_ptr<GpuEngine> engine;
  std::string source;
  std::optional<MappedArchive> archive;
  if (!o.synthetic.empty()) {
    const ModelConfig config = ModelConfig::preset(o.synthetic);
    eo.max_context = std::min(eo.max_context, config.max_context);
    const auto t0 = std::chrono::steady_clock::now();
    engine = std::make_unique<GpuEngine>(config, o.seed, eo);
    fmt::print(stderr, "synthetic {} (seed {}) generated on the GPU in {:.1f} s\n", o.synthetic,
               o.seed, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    source = fmt::format("synthetic:{}:seed{}", o.synthetic, o.seed);
  } else {
    archive.emplace(MappedArchive::open(o.model));
    const ModelWeights w = archive->weights();
    eo.max_context = std::min(eo.max_context, archive->config().max_context);
    const auto t0 = std::chrono::steady_clock::now();
    engine = std::make_unique<GpuEngine>(w, eo);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const UploadStats& up = engine->upload_stats();
    fmt::print(stderr, "loaded {} in {:.1f} s (weights {:.2f} GB in {:.2f} s, {:.2f} GB/s)\n",
               o.model, s, up.bytes / 1e9, up.seconds, up.gb_per_s());
    source = o.model;
  }
  const ModelConfig& c = engine->config();

  const bench::BandwidthResult bw = bench::measure_read_bandwidth();
  fmt::print(stderr, "streaming-read bandwidth: {:.0f} GB/s (median of {} passes over {:.1f} GB)\n",
             bw.read_gbs, bw.passes, bw.bytes / 1e9);

  std::mt19937_64 rng(o.seed * 7919 + 17);
  auto random_token = [&] { return int(rng() % uint64_t(std::min(c.vocab_size, 199998))); };
  int pos = 0;
  int next = random_token();
  const WeightFormats formats = engine->formats();
  const uint64_t weight_bytes = bench::weight_bytes_per_token(c, formats);
  fmt::print(stderr, "weights: attention {}, lm head {}; {:.3f} GB read per token\n",
             weight_format_name(formats.attn), weight_format_name(formats.lm_head),
             weight_bytes / 1e9);

  fmt::print("{:>8} {:>7} {:>10} {:>10} {:>10} {:>9} {:>11} {:>9} {:>10} {:>7}\n", "context",
             "experts", "median_ms", "p10_ms", "p90_ms", "tok/s", "MB/token", "GB/s", "floor_ms",
             "ratio");
  for (int ctx : contexts) {
    // Prefill: random tokens until the cache holds ctx positions, batched or one decode step
    // each (without the LM head: nobody reads those positions' next tokens).
    const auto t0 = std::chrono::steady_clock::now();
    if (o.prefill == "batched" && pos < ctx) {
      std::vector<int> fill(size_t(ctx - pos));
      for (int& t : fill) t = random_token();
      engine->prefill(fill.data(), int(fill.size()), pos);
      pos = ctx;
    }
    while (pos < ctx) {
      engine->advance(random_token(), pos++);
      if (pos % 4096 == 0) {
        fmt::print(stderr, "\rprefill {}/{}", pos, ctx);
      }
    }
    if (ctx >= 4096) {
      fmt::print(stderr, "\rprefill {} positions in {:.1f} s\n", ctx,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    if (o.phase_profile) {
      // Each phase's cost = time with everything minus time with that phase skipped (its grid
      // barriers still run); "barriers only" skips every phase and the LM head.
      auto time_mask = [&](uint32_t mask) {
        engine->set_phase_mask(mask);
        std::vector<double> ms;
        for (int i = 0; i < o.warmup + o.num_tokens; ++i) {
          engine->step(next, pos);  // same position: the cache is not extended while profiling
          if (i >= o.warmup) ms.push_back(engine->last_kernel_ms());
        }
        engine->set_phase_mask(~0u);
        return percentile(ms, 0.5);
      };
      const double all = time_mask(~0u);
      fmt::print("phase profile at context {} (median of {} steps): all phases {:.4f} ms, barriers "
                 "only {:.4f} ms\n", ctx, o.num_tokens, all, time_mask(0u));
      for (int p = 0; p <= mk::kLmHeadPhase; ++p) {
        const double without = time_mask(~(1u << p));
        fmt::print("  {:<14} {:8.4f} ms\n", mk::step_phase_name(p), all - without);
      }
    }
    if (o.phase_times) {
      for (const ExpertMode mode : expert_modes) {
        engine->set_expert_mode(mode);
        print_phase_times(*engine, next, pos, ctx, std::string(expert_mode_name(mode)), o);
      }
    }
    for (const ExpertMode mode : expert_modes) {
      engine->set_expert_mode(mode);
      const std::string ex(expert_mode_name(mode));
      for (int i = 0; i < o.warmup; ++i) next = engine->step(next, pos++);
      std::vector<double> ms;
      const int first = pos;
      for (int i = 0; i < o.num_tokens; ++i) {
        next = engine->step(next, pos++);
        ms.push_back(engine->last_kernel_ms());
      }
      const double med = percentile(ms, 0.5), p10 = percentile(ms, 0.1), p90 = percentile(ms, 0.9);
      const uint64_t mid_context = uint64_t(first + o.num_tokens / 2) + 1;
      const uint64_t bytes = weight_bytes + bench::kv_bytes_per_token(c, mid_context);
      const double gbs = bytes / (med * 1e-3) / 1e9;
      const double floor_ms = bytes / (bw.read_gbs * 1e9) * 1e3;
      fmt::print("{:>8} {:>7} {:>10.4f} {:>10.4f} {:>10.4f} {:>9.1f} {:>11.1f} {:>9.0f} {:>10.4f} {:>7.3f}\n",
                 ctx, ex, med, p10, p90, 1e3 / med, bytes / 1e6, gbs, floor_ms, med / floor_ms);
      if (o.json) {
        const nlohmann::json j = {
            {"bench", "tpot"}, {"device", dev.name}, {"commit", gptoss::build_commit()},
            {"source", source}, {"layers", c.num_layers}, {"experts_total", c.num_experts},
            {"experts", ex}, {"attn", weight_format_name(formats.attn)},
            {"lm_head", weight_format_name(formats.lm_head)}, {"context", ctx}, {"tokens", o.num_tokens},
            {"median_ms", med}, {"p10_ms", p10}, {"p90_ms", p90}, {"tokens_per_s", 1e3 / med},
            {"bytes_per_token", bytes}, {"achieved_gbs", gbs}, {"hbm_read_gbs", bw.read_gbs},
            {"floor_ms", floor_ms}, {"ratio_to_floor", med / floor_ms},
            {"grid", engine->grid_size()}, {"syncs_per_token", c.num_layers * int(mk::kNumPhases)},
            {"load_bytes", engine->upload_stats().bytes},
            {"load_s", engine->upload_stats().seconds},
            {"load_gbs", engine->upload_stats().gb_per_s()}};
        fmt::print("{}\n", j.dump());
      }
    }
  }
}

}  // namespace

std::vector<ExpertMode> parse_experts_flag(const std::vector<std::string>& names) {
  std::vector<ExpertMode> modes;
  for (const std::string& e : names) {
    try {
      modes.push_back(parse_expert_mode(e));
    } catch (const Error& err) {
      throw Error(fmt::format("--experts: {}", err.what()), "use bf16, fp8 or bf16,fp8");
    }
  }
  return modes;
}

void add_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand(
      "bench", "benchmarks (tpot: time per output token vs the floor; sweep: TTFT/TPOT/E2E over ISL:OSL; "
      "prefill: TTFT and prefill tokens/s per prompt length; load: archive -> GPU upload rate; "
      "accuracy: BF16 vs FP8 paths)");
  bench->require_subcommand(1);
  auto opts = std::make_shared<TpotOptions>();
  CLI::App* tpot = bench->add_subcommand(
      "tpot",
      "time per output token at batch 1, with the bandwidth floor measured in the same run. Needs a "
      "GPU (a CUDA build). Defaults: --context 1024, -n 128 timed steps after --warmup 16, --experts "
      "bf16");
  tpot->add_option("-m,--model", opts->model, "archive (.gptoss) to benchmark");
  tpot->add_option("--synthetic", opts->synthetic, "generate weights on the GPU: tiny, 20b or 120b")
      ->check(CLI::IsMember({"tiny", "20b", "120b"}));
  tpot->add_option("--weights-seed,--seed", opts->seed, "seed of the synthetic weights and the prompt")
      ->capture_default_str();
  tpot->add_option("--experts", opts->experts, "expert path(s): bf16, fp8 (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  tpot->add_option("--attn", opts->attn, "with --synthetic: attention weights bf16 or fp8")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  tpot->add_option("--lm-head", opts->lm_head, "with --synthetic: LM head weights bf16 or fp8")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  tpot->add_option("--context", opts->contexts, "context length(s) to measure at (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  tpot->add_option("--prefill", opts->prefill,
                   "how the KV cache is filled: batched (prefill kernels) or decode (one decode "
                   "step per position)")
      ->check(CLI::IsMember({"batched", "decode"}))
      ->capture_default_str();
  tpot->add_option("-n,--num-tokens", opts->num_tokens, "decode steps timed per measurement (>= 100)")
      ->capture_default_str();
  tpot->add_option("--warmup", opts->warmup, "untimed decode steps before each measurement")
      ->capture_default_str();
  tpot->add_flag("--json", opts->json, "also print one JSON line per measurement");
  tpot->add_flag("--phase-profile", opts->phase_profile,
                 "also time each phase by skipping it (profiling; outputs are meaningless then)");
  tpot->add_flag("--phase-times", opts->phase_times,
                 "also print each phase's share of the step from timestamps the kernel records "
                 "after every grid barrier (barrier to barrier, so a phase includes its barrier)");
  tpot->callback([opts] { run_tpot(*opts); });
  add_sweep_command(*bench);
  add_prefill_command(*bench);
  add_accuracy_command(*bench);
  add_load_command(*bench);
}

}  // namespace gptoss::cli
