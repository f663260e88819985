// bench_prefill.cpp — `gptoss bench prefill` (bench_prefill.h). Per prompt length and path, a
// random prompt (new each repeat) runs on a fresh cache from position 0: batched = one
// GpuEngine::prefill of positions [0, isl - 1) then step() of the last; decode = advance() per
// position then step(). Host clock around each part (the engine synchronizes before returning).
// Reported beside the floor: the achieved TFLOP/s (prefill_flops / TTFT) and GB/s (the floor's
// bytes / TTFT, i.e. the bandwidth the run would have needed had it moved only those bytes).
#include "bench/bench_prefill.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "bench/bench_cli.h"  // parse_experts_flag
#include "bench/bench_model.h"
#include "bench/bytes_per_token.h"
#include "bench/hbm_bandwidth.h"
#include "host/archive/archive.h"
#include "host/build_info.h"
#include "host/decode_options.h"
#include "host/error.h"
#include "host/gpu.h"
#include "host/interrupt.h"
#include "host/runtime/engine.h"

namespace gptoss::bench {

std::vector<int> parse_isl_list(std::string_view text) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string_view entry = text.substr(start, end - start);
    int v = 0;
    const auto [ptr, ec] = std::from_chars(entry.data(), entry.data() + entry.size(), v);
    if (entry.empty() || ec != std::errc() || ptr != entry.data() + entry.size() || v <= 0) {
      throw Error(fmt::format("--isl: '{}' is not a positive integer", entry),
                  "give prompt lengths separated by commas, e.g. --isl 128,1024,8192");
    }
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

double prefill_flops(const ModelConfig& c, int isl) {
  const double hidden = c.hidden, per_token_gemm =
      hidden * c.qkv_dim() + double(c.q_dim()) * hidden + hidden * c.num_experts +
      double(c.experts_per_token) * (hidden * c.mlp1_dim() + double(c.intermediate) * hidden);
  double keys = 0;  // sum over positions and layers of the keys each query attends to
  for (int l = 0; l < c.num_layers; ++l) {
    for (int p = 0; p < isl; ++p) keys += c.is_sliding(l) ? std::min(p + 1, c.sliding_window) : p + 1;
  }
  // Scores and values: 2 FLOPs per multiply-add, q . k and p * v per head and key.
  return 2.0 * per_token_gemm * c.num_layers * isl + 2.0 * 2.0 * c.num_heads * c.head_dim * keys;
}

uint64_t prefill_floor_bytes(const ModelConfig& c, const WeightFormats& formats, int isl, int chunk) {
  uint64_t layer_bytes = 0;
  for (const TensorSpec& s : archive_tensors(c, formats)) {
    if (s.name.rfind("layers.", 0) == 0) layer_bytes += s.num_bytes();
  }
  const uint64_t positions = uint64_t(std::max(isl - 1, 0));
  const uint64_t chunks = (positions + uint64_t(chunk) - 1) / uint64_t(chunk);
  const uint64_t kv_per_pos = uint64_t(c.num_layers) * 2 * c.num_kv_heads * c.head_dim * 2;
  return chunks * layer_bytes + positions * kv_per_pos + weight_bytes_per_token(c, formats);
}

namespace {

struct PrefillOptions {
  std::string model, synthetic, isl_text = "128,1024,8192";
  std::string attn = "bf16", lm_head = "bf16";
  std::vector<std::string> paths = {"batched"};
  std::vector<std::string> experts = {"bf16"};
  uint64_t seed = 1;
  int repeats = 3;
  int chunk = GpuEngine::kPrefillChunk;
  bool json = false;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void run_prefill_bench(const PrefillOptions& o) {
  // Everything that can be wrong with the request is reported before any long work.
  if (o.model.empty() == o.synthetic.empty()) {
    throw Error("bench prefill needs exactly one of -m FILE and --synthetic SHAPE");
  }
  const std::vector<int> isls = parse_isl_list(o.isl_text);
  if (o.repeats < 1) throw Error(fmt::format("--repeats {}: at least 1", o.repeats));
  if (o.chunk < 1) throw Error(fmt::format("--chunk {}: at least 1 token", o.chunk));
  const std::vector<ExpertMode> modes = cli::parse_experts_flag(o.experts);
  for (const std::string& p : o.paths) {
    if (p != "batched" && p != "decode") {
      throw Error(fmt::format("--prefill: unknown path '{}'", p), "use batched, decode or batched,decode");
    }
  }
  BenchModel m;
  open_bench_model(m, o.model, o.synthetic, o.attn, o.lm_head);
  const std::optional<MappedArchive>& file = m.file;
  const ModelConfig& config = m.config;
  const WeightFormats synth_formats = m.synthetic_formats;
  const int max_isl = *std::max_element(isls.begin(), isls.end());
  if (max_isl > config.max_context) {
    throw Error(fmt::format("--isl {} is beyond the model's context of {}", max_isl, config.max_context));
  }
  std::string why;
  if (!gpu::available(&why)) {
    throw gpu::GpuError(fmt::format("bench prefill needs a GPU: {}", why),
                        "the CPU reference has no batched prefill; bench sweep --backend cpu times "
                        "its per-token prompt");
  }
  const gpu::DeviceInfo dev = gpu::device_info();
  gpu::require_hopper(dev);

  DecodeOptions d;
  d.max_context = max_isl;
  d.quiet = true;
  d.synthetic_formats = synth_formats;
  const auto t_load = std::chrono::steady_clock::now();
  std::unique_ptr<GpuEngine> engine = file ? std::make_unique<GpuEngine>(file->weights(), d)
                                           : std::make_unique<GpuEngine>(config, o.seed, d);
  engine->set_prefill_chunk_tokens(o.chunk);
  fmt::print(stderr, "{} ready in {:.1f} s\n",
             file ? o.model : fmt::format("synthetic {} (seed {})", o.synthetic, o.seed),
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count());
  const BandwidthResult bw = measure_read_bandwidth();
  fmt::print(stderr, "bench prefill on {}: streaming-read bandwidth {:.0f} GB/s\n", dev.name, bw.read_gbs);
  const WeightFormats formats = engine->formats();

  std::mt19937_64 rng(o.seed * 7919 + 23);
  auto prompt_of = [&](int isl) {
    std::vector<int> ids(static_cast<size_t>(isl));
    for (int& t : ids) t = int(rng() % uint64_t(std::min(config.vocab_size, 199998)));
    return ids;
  };
  fmt::print("{:>7} {:>8} {:>7} {:>10} {:>12} {:>12} {:>9} {:>8} {:>10} {:>7}\n", "experts", "path",
             "isl", "ttft_ms", "prefill_ms", "prefill_tok/s", "TFLOP/s", "GB/s", "floor_ms", "ratio");
  const StopSignals signals;
  for (ExpertMode mode : modes) {
    engine->set_expert_mode(mode);
    for (const std::string& path : o.paths) {
      for (int isl : isls) {
        std::vector<double> ttft, prefill;
        // One untimed run first: the scratch allocation, kernel loading and clocks.
        for (int r = -1; r < o.repeats; ++r) {
          const std::vector<int> prompt = prompt_of(isl);
          const auto t0 = std::chrono::steady_clock::now();
          if (path == "batched") {
            engine->prefill(prompt.data(), isl - 1, 0);
          } else {
            for (int p = 0; p + 1 < isl; ++p) {
              engine->advance(prompt[size_t(p)], p);
              StopSignals::check("bench prefill");
            }
          }
          const auto t1 = std::chrono::steady_clock::now();
          engine->step(prompt[size_t(isl - 1)], isl - 1);
          const auto t2 = std::chrono::steady_clock::now();
          StopSignals::check("bench prefill");
          if (r < 0) continue;
          prefill.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
          ttft.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
        }
        const double ttft_ms = median(ttft), prefill_ms = median(prefill);
        const double tok_s = prefill_ms > 0 ? (isl - 1) / (prefill_ms * 1e-3) : 0.0;
        const double tflops = prefill_flops(config, isl) / (ttft_ms * 1e-3) / 1e12;
        const uint64_t floor_bytes = prefill_floor_bytes(config, formats, isl, engine->prefill_chunk_tokens());
        const double floor_ms = double(floor_bytes) / (bw.read_gbs * 1e9) * 1e3;
        const double gbs = double(floor_bytes) / (ttft_ms * 1e-3) / 1e9;  // the floor's bytes per second
        fmt::print("{:>7} {:>8} {:>7} {:>10.2f} {:>12.2f} {:>12.0f} {:>9.1f} {:>8.0f} {:>10.2f} {:>7.2f}\n",
                   expert_mode_name(mode), path, isl, ttft_ms, prefill_ms, tok_s, tflops, gbs,
                   floor_ms, ttft_ms / floor_ms);
        if (o.json) {
          const nlohmann::json j = {
              {"bench", "prefill"}, {"device", dev.name}, {"commit", build_commit()},
              {"source", o.model.empty() ? "synthetic:" + o.synthetic : o.model},
              {"experts", expert_mode_name(mode)}, {"path", path}, {"isl", isl},
              {"repeats", o.repeats}, {"chunk", engine->prefill_chunk_tokens()},
              {"ttft_ms", ttft_ms}, {"ttft_min_ms", *std::min_element(ttft.begin(), ttft.end())},
              {"ttft_max_ms", *std::max_element(ttft.begin(), ttft.end())},
              {"prefill_ms", prefill_ms}, {"prefill_tokens_per_s", tok_s}, {"tflops", tflops},
              {"gbs", gbs},
              {"floor_ms", floor_ms}, {"floor_bytes", floor_bytes}, {"read_gbs", bw.read_gbs}};
          fmt::print("{}\n", j.dump());
        }
        std::fflush(stdout);
      }
    }
  }
}

}  // namespace
}  // namespace gptoss::bench

namespace gptoss::cli {

void add_prefill_command(CLI::App& bench) {
  auto o = std::make_shared<bench::PrefillOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "prefill",
      "TTFT (prompt + first token) and prefill tokens/s per prompt length, batched and/or per-token "
      "decode, beside the floor (every layer weight once per chunk, at the bandwidth measured in "
      "the same run). Needs a GPU");
  cmd->add_option("-m,--model", o->model, "archive (.gptoss) to benchmark");
  cmd->add_option("--synthetic", o->synthetic, "synthetic weights generated on the GPU: tiny, 20b or 120b")
      ->check(CLI::IsMember({"tiny", "20b", "120b"}));
  cmd->add_option("--weights-seed,--seed", o->seed, "seed of the synthetic weights and the random prompts")
      ->capture_default_str();
  cmd->add_option("--isl", o->isl_text, "prompt lengths, comma-separated")->capture_default_str();
  cmd->add_option("--prefill", o->paths, "path(s): batched, decode (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--experts", o->experts, "expert path(s): bf16, fp8 (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--attn", o->attn, "with --synthetic: attention weights bf16 or fp8")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  cmd->add_option("--lm-head", o->lm_head, "with --synthetic: LM head weights bf16 or fp8")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  cmd->add_option("--chunk", o->chunk, "batched prefill chunk in tokens")->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "timed runs per length (median reported)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "also print one JSON line per measurement");
  cmd->callback([o] { bench::run_prefill_bench(*o); });
}

}  // namespace gptoss::cli
