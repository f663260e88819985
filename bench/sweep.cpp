// sweep.cpp — `gptoss bench sweep`: for each ISL:OSL pair and expert path, a prompt of ISL tokens
// then OSL generated tokens, timed as a user sees them (host clock around each decode step):
// TTFT (the call to the first generated token back on the host), TPOT (median and p90 over the
// output tokens), end-to-end latency and output tokens/s, each with its floor from the bandwidth
// measured in the same run. On the GPU the prompt's positions before the last run through the
// batched prefill (GpuEngine::prefill; --prefill decode: one decode step each, as the CPU backend
// always does), then the last one's decode step gives the first token; the TTFT floor is what any
// prefill must move: the weights once and the prompt's KV cache once.
#include "bench/sweep.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
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
#include "host/reference/forward.h"
#include "host/reference/memory_model.h"
#include "host/runtime/engine.h"
#include "host/synth_weights.h"
#include "host/text/tokenizer.h"
#include "host/weights_view.h"

namespace gptoss::bench {

std::vector<SweepPair> parse_sweep_pairs(std::string_view text) {
  std::vector<SweepPair> pairs;
  auto number = [&](std::string_view s, std::string_view entry, const char* what) {
    int v = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || v <= 0) {
      throw Error(fmt::format("--pairs: '{}' has {} '{}', not a positive integer", entry, what, s),
                  "write pairs as ISL:OSL, e.g. --pairs 128:128,1024:1024");
    }
    return v;
  };
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string_view entry = text.substr(start, end - start);
    const size_t colon = entry.find(':');
    if (colon == std::string_view::npos) {
      throw Error(fmt::format("--pairs: '{}' has no ':' (ISL:OSL)", entry),
                  "write pairs as ISL:OSL, e.g. --pairs 128:128,1024:1024");
    }
    pairs.push_back({number(entry.substr(0, colon), entry, "input length"),
                     number(entry.substr(colon + 1), entry, "output length")});
    start = end + 1;
  }
  return pairs;
}

namespace {

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double idx = p * double(v.size() - 1);
  const size_t lo = size_t(idx), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - double(lo));
}

// The host's streaming-read bandwidth (the CPU backend's floor): every hardware thread sums its
// share of a 1 GiB buffer, median of 5 timed passes after a warm-up.
double measure_host_read_gbs() {
  const size_t n = (size_t(1) << 30) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  std::iota(buf.begin(), buf.end(), 1);
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<double> gbs;
  volatile uint64_t sink = 0;
  for (int pass = 0; pass < 6; ++pass) {
    std::vector<uint64_t> sums(threads, 0);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        uint64_t s = 0;
        for (size_t i = n * t / threads; i < n * (t + 1) / threads; ++i) s += buf[i];
        sums[t] = s;
      });
    }
    for (std::thread& th : pool) th.join();
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (uint64_t s : sums) sink = sink + s;
    if (pass > 0) gbs.push_back(double(n * sizeof(uint64_t)) / sec / 1e9);
  }
  return percentile(gbs, 0.5);
}

struct SweepOptions {
  std::string model, synthetic, text, csv, plot, backend = "auto", pairs_text;
  std::string attn = "bf16", lm_head = "bf16";  // --synthetic: stored weight formats
  std::string prefill;  // batched or decode; empty: batched on the GPU
  uint64_t seed = 1;
  std::vector<std::string> experts = {"bf16"};
  int repeats = 3;
  bool json = false;
};

// One measured (pair, expert path): medians over the repeats and their spread.
struct SweepRow {
  SweepPair pair;
  std::string experts;
  int repeats = 0;
  double ttft_ms = 0, ttft_min_ms = 0, ttft_max_ms = 0, ttft_floor_ms = 0;
  double tpot_ms = 0, tpot_p90_ms = 0, tpot_floor_ms = 0;
  double e2e_ms = 0, e2e_min_ms = 0, e2e_max_ms = 0, e2e_floor_ms = 0;
  double out_tokens_per_s = 0;
};

constexpr const char* kCsvHeader =
    "experts,isl,osl,repeats,ttft_ms,ttft_min_ms,ttft_max_ms,ttft_floor_ms,tpot_ms,tpot_p90_ms,"
    "tpot_floor_ms,e2e_ms,e2e_min_ms,e2e_max_ms,e2e_floor_ms,out_tokens_per_s";

std::string csv_line(const SweepRow& r) {
  return fmt::format("{},{},{},{},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f},"
                     "{:.4f},{:.4f},{:.3f}",
                     r.experts, r.pair.isl, r.pair.osl, r.repeats, r.ttft_ms, r.ttft_min_ms,
                     r.ttft_max_ms, r.ttft_floor_ms, r.tpot_ms, r.tpot_p90_ms, r.tpot_floor_ms,
                     r.e2e_ms, r.e2e_min_ms, r.e2e_max_ms, r.e2e_floor_ms, r.out_tokens_per_s);
}

void print_table(const std::vector<SweepRow>& rows) {
  fmt::print("{:>7} {:>6} {:>6} {:>11} {:>7} {:>10} {:>7} {:>9} {:>12} {:>7} {:>9}\n", "experts",
             "ISL", "OSL", "TTFT_ms", "ratio", "TPOT_ms", "ratio", "p90_ms", "E2E_ms", "ratio",
             "out_tok/s");
  for (const SweepRow& r : rows) {
    fmt::print("{:>7} {:>6} {:>6} {:>11.2f} {:>7.1f} {:>10.4f} {:>7.2f} {:>9.4f} {:>12.1f} {:>7.2f} {:>9.1f}\n",
               r.experts, r.pair.isl, r.pair.osl, r.ttft_ms, r.ttft_ms / r.ttft_floor_ms, r.tpot_ms,
               r.tpot_ms / r.tpot_floor_ms, r.tpot_p90_ms, r.e2e_ms, r.e2e_ms / r.e2e_floor_ms,
               r.out_tokens_per_s);
  }
}

// The plotting script (bench/plot_sweep.py): next to the sources this binary was built from, or
// bench/ under the working directory (a carried checkout).
std::string plot_script() {
  for (const std::string& p : {std::string(GPTOSS_SOURCE_DIR) + "/bench/plot_sweep.py",
                               std::string("bench/plot_sweep.py")}) {
    if (std::filesystem::exists(p)) return p;
  }
  return {};
}

void run_sweep(const SweepOptions& o) {
  // Everything that can be wrong with the request is reported before any long work.
  if (o.model.empty() == o.synthetic.empty()) {
    throw Error("bench sweep needs exactly one of -m FILE and --synthetic SHAPE");
  }
  const std::vector<SweepPair> pairs = parse_sweep_pairs(o.pairs_text);
  if (o.repeats < 1) throw Error(fmt::format("--repeats {}: at least 1", o.repeats));
  const std::vector<ExpertMode> modes = cli::parse_experts_flag(o.experts);
  BenchModel m;
  open_bench_model(m, o.model, o.synthetic, o.attn, o.lm_head);
  const std::optional<MappedArchive>& file = m.file;
  const ModelConfig& config = m.config;
  const WeightFormats synth_formats = m.synthetic_formats, formats = m.formats;
  int max_tokens = 0;
  for (const SweepPair& p : pairs) max_tokens = std::max(max_tokens, p.isl + p.osl);
  if (max_tokens > config.max_context) {
    throw Error(fmt::format("--pairs: ISL + OSL reaches {} tokens, beyond the model's context of {}",
                            max_tokens, config.max_context));
  }
  std::string why;
  std::string backend = o.backend;
  if (backend == "auto") backend = gpu::available(&why) ? "cuda" : "cpu";
  if (backend == "cuda" && !gpu::available(&why)) {
    throw gpu::GpuError(fmt::format("bench sweep --backend cuda needs a GPU: {}", why),
                        "use --backend cpu");
  }
  if (o.prefill == "batched" && backend == "cpu") {
    throw Error("--prefill batched needs the CUDA backend (the CPU reference runs prompt positions "
                "one at a time)",
                "drop --prefill, or use --backend cuda");
  }
  const bool batched = backend == "cuda" && o.prefill != "decode";
  std::string script, python;
  if (!o.plot.empty()) {
    if (o.csv.empty()) throw Error("--plot needs --csv (the plot is drawn from the CSV)");
    script = plot_script();
    if (script.empty()) throw Error("--plot: bench/plot_sweep.py not found", "run from the source tree");
    // The first python3 on PATH, else the system's (Debian's python3-matplotlib installs there).
    for (const char* candidate : {"python3", "/usr/bin/python3"}) {
      const std::string probe = fmt::format("{} -c 'import matplotlib' >/dev/null 2>&1", candidate);
      if (std::system(probe.c_str()) == 0) {
        python = candidate;
        break;
      }
    }
    if (python.empty()) throw Error("--plot needs python3 with matplotlib", "install python3-matplotlib (Debian)");
    const bool existed = std::filesystem::exists(o.plot);
    if (!std::ofstream(o.plot, std::ios::app)) {
      throw Error(fmt::format("cannot write --plot {}", o.plot), "check the folder exists and is writable");
    }
    if (!existed) std::filesystem::remove(o.plot);
  }
  std::ofstream csv;
  if (!o.csv.empty()) {
    csv.open(o.csv);
    if (!csv) throw Error(fmt::format("cannot write --csv {}", o.csv), "check the folder exists and is writable");
    csv << kCsvHeader << "\n" << std::flush;
  }
  std::vector<int> text_ids;
  if (!o.text.empty()) {
    std::ifstream in(o.text, std::ios::binary);
    if (!in) throw Error(fmt::format("cannot read --text {}", o.text));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The archive's own tokenizer when it embeds one, else the bundled o200k_harmony.
    const tok::Tokenizer tokenizer = [&] {
      if (file && file->tokenizer_format() != archive::TokenizerFormat::kNone) {
        return tok::Tokenizer::from_blob(
            file->tokenizer_format() == archive::TokenizerFormat::kTiktoken ? tok::kBlobFormatTiktoken
                                                                           : tok::kBlobFormatHfJson,
            file->tokenizer_blob());
      }
      return tok::Tokenizer::load_default();
    }();
    for (tok::TokenId id : tokenizer.encode(text)) {
      if (int(id) >= config.vocab_size) {
        throw Error(fmt::format("--text {}: token id {} is outside the model's vocabulary ({} ids)",
                                o.text, id, config.vocab_size),
                    "use a model whose vocabulary matches its tokenizer, or random prompts (no --text)");
      }
      text_ids.push_back(int(id));
    }
    if (text_ids.empty()) throw Error(fmt::format("--text {} holds no tokens", o.text));
  }

  // The backend: one decode step runs `token` at `pos` and returns the greedy next token.
  DecodeOptions decode;
  decode.max_context = max_tokens;
  decode.quiet = true;
  decode.synthetic_formats = synth_formats;
  std::unique_ptr<ref::MemoryModel> memory;
  std::unique_ptr<ref::Reference> cpu;
  std::unique_ptr<GpuEngine> engine;
  std::function<int(int, int)> step;
  std::function<void(int, int)> advance;  // a prompt position without the LM head
  std::function<void(ExpertMode)> set_mode;
  double read_gbs = 0;
  std::string device;
  if (backend == "cpu") {
    ModelWeights weights;
    if (file) {
      weights = file->weights();
    } else {
      memory = std::make_unique<ref::MemoryModel>(
          config,
          [&](const TensorSpec& spec, std::span<std::byte> out) {
            conv::synth_fill(config, o.seed, spec, 0, out);
          },
          synth_formats);
      weights = memory->weights();
    }
    auto make = [&, weights](ExpertMode m) {
      DecodeOptions d = decode;
      d.experts = m;
      cpu = std::make_unique<ref::Reference>(weights, d);
    };
    set_mode = make;
    step = [&](int token, int pos) {
      if (pos == 0) cpu->reset();
      return cpu->step(token);
    };
    advance = [&](int token, int pos) {
      if (pos == 0) cpu->reset();
      cpu->advance(token);
    };
    read_gbs = measure_host_read_gbs();
    device = fmt::format("cpu ({} threads)", std::max(1u, std::thread::hardware_concurrency()));
  } else {
    engine = file ? std::make_unique<GpuEngine>(file->weights(), decode)
                     : std::make_unique<GpuEngine>(config, o.seed, decode);
    set_mode = [&](ExpertMode m) { engine->set_expert_mode(m); };
    step = [&](int token, int pos) { return engine->step(token, pos); };
    advance = [&](int token, int pos) { engine->advance(token, pos); };
    read_gbs = measure_read_bandwidth().read_gbs;
    device = gpu::device_info().name;
  }
  fmt::print(stderr, "bench sweep on {}: streaming-read bandwidth {:.0f} GB/s\n", device, read_gbs);

  const uint64_t weights = weight_bytes_per_token(config, formats);
  // KV cache bytes one position writes (every layer's k and v, BF16).
  const uint64_t kv_per_pos = uint64_t(config.num_layers) * 2 * config.num_kv_heads * config.head_dim * 2;
  auto floor_ms = [&](uint64_t bytes) { return double(bytes) / (read_gbs * 1e9) * 1e3; };
  std::mt19937_64 rng(o.seed * 7919 + 29);
  auto prompt_of = [&](int isl) {
    std::vector<int> ids(static_cast<size_t>(isl));
    for (int i = 0; i < isl; ++i) {
      ids[size_t(i)] = text_ids.empty() ? int(rng() % uint64_t(std::min(config.vocab_size, 199998)))
                                        : text_ids[size_t(i) % text_ids.size()];
    }
    return ids;
  };

  StopSignals signals;
  std::vector<SweepRow> rows;
  const auto t_start = std::chrono::steady_clock::now();
  double total_steps = 0, done_steps = 0;
  for (const SweepPair& p : pairs) total_steps += double(p.isl + p.osl) * o.repeats * double(modes.size());
  size_t index = 0;
  try {
    for (const ExpertMode mode : modes) {
      set_mode(mode);
      for (const SweepPair& p : pairs) {
        ++index;
        std::vector<double> ttft, e2e, tpot_all;
        for (int r = 0; r < o.repeats; ++r) {
          const double elapsed =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
          const double eta = done_steps > 0 ? elapsed / done_steps * (total_steps - done_steps) : 0;
          fmt::print(stderr, "\rsweep: pair {}/{} ({}:{}, {}), repeat {}/{}, {:.0f} s elapsed, ETA {:.0f} s   ",
                     index, pairs.size() * modes.size(), p.isl, p.osl, expert_mode_name(mode), r + 1,
                     o.repeats, elapsed, eta);
          const std::vector<int> prompt = prompt_of(p.isl);
          const auto t0 = std::chrono::steady_clock::now();
          int next = 0;
          // Prompt positions before the last need no logits: they skip the LM head.
          if (batched) {
            engine->prefill(prompt.data(), p.isl - 1, 0);
          } else {
            for (int pos = 0; pos + 1 < p.isl; ++pos) {
              advance(prompt[size_t(pos)], pos);
              StopSignals::check("bench sweep");
            }
          }
          next = step(prompt[size_t(p.isl - 1)], p.isl - 1);
          StopSignals::check("bench sweep");
          auto last = std::chrono::steady_clock::now();
          const double first = std::chrono::duration<double, std::milli>(last - t0).count();
          std::vector<double> tpot;
          for (int i = 1; i < p.osl; ++i) {
            next = step(next, p.isl + i - 1);
            const auto now = std::chrono::steady_clock::now();
            tpot.push_back(std::chrono::duration<double, std::milli>(now - last).count());
            last = now;
            StopSignals::check("bench sweep");
          }
          ttft.push_back(first);
          e2e.push_back(std::chrono::duration<double, std::milli>(last - t0).count());
          tpot_all.insert(tpot_all.end(), tpot.begin(), tpot.end());
          done_steps += p.isl + p.osl;
        }
        SweepRow row;
        row.pair = p;
        row.experts = std::string(expert_mode_name(mode));
        row.repeats = o.repeats;
        row.ttft_ms = percentile(ttft, 0.5);
        row.ttft_min_ms = *std::min_element(ttft.begin(), ttft.end());
        row.ttft_max_ms = *std::max_element(ttft.begin(), ttft.end());
        row.e2e_ms = percentile(e2e, 0.5);
        row.e2e_min_ms = *std::min_element(e2e.begin(), e2e.end());
        row.e2e_max_ms = *std::max_element(e2e.begin(), e2e.end());
        row.tpot_ms = tpot_all.empty() ? 0 : percentile(tpot_all, 0.5);
        row.tpot_p90_ms = tpot_all.empty() ? 0 : percentile(tpot_all, 0.9);
        row.ttft_floor_ms = floor_ms(weights + uint64_t(p.isl) * kv_per_pos);
        // TPOT floor at the middle of the generated span; E2E = TTFT floor + the output steps'.
        row.tpot_floor_ms = floor_ms(weights + kv_bytes_per_token(config, uint64_t(p.isl + p.osl / 2)));
        row.e2e_floor_ms = row.ttft_floor_ms + double(p.osl - 1) * row.tpot_floor_ms;
        row.out_tokens_per_s = p.osl / (row.e2e_ms * 1e-3);
        rows.push_back(row);
        if (csv.is_open()) csv << csv_line(row) << "\n" << std::flush;
        if (o.json) {
          const nlohmann::json j = {
              {"bench", "sweep"}, {"device", device}, {"commit", build_commit()},
              {"source", o.model.empty() ? "synthetic:" + o.synthetic : o.model},
              {"backend", backend}, {"experts", row.experts}, {"isl", p.isl}, {"osl", p.osl},
              {"repeats", o.repeats}, {"ttft_ms", row.ttft_ms}, {"ttft_min_ms", row.ttft_min_ms},
              {"ttft_max_ms", row.ttft_max_ms}, {"ttft_floor_ms", row.ttft_floor_ms},
              {"tpot_ms", row.tpot_ms}, {"tpot_p90_ms", row.tpot_p90_ms},
              {"tpot_floor_ms", row.tpot_floor_ms}, {"e2e_ms", row.e2e_ms},
              {"e2e_min_ms", row.e2e_min_ms}, {"e2e_max_ms", row.e2e_max_ms},
              {"e2e_floor_ms", row.e2e_floor_ms}, {"out_tokens_per_s", row.out_tokens_per_s},
              {"read_gbs", read_gbs},
              {"prefill", batched ? "batched" : "per-token decode steps"}};
          fmt::print(stderr, "\r");
          fmt::print("{}\n", j.dump());
        }
      }
    }
  } catch (const Interrupted&) {
    fmt::print(stderr, "\n");
    if (!rows.empty()) print_table(rows);
    throw;
  }
  fmt::print(stderr, "\r{:80}\r", "");
  print_table(rows);
  if (!o.plot.empty()) {
    csv.close();
    const std::string cmd = fmt::format("{} '{}' '{}' '{}'", python, script, o.csv, o.plot);
    if (std::system(cmd.c_str()) != 0) throw Error(fmt::format("plotting failed: {}", cmd));
    fmt::print(stderr, "plot written to {}\n", o.plot);
  }
}

}  // namespace
}  // namespace gptoss::bench

namespace gptoss::cli {

void add_sweep_command(CLI::App& bench) {
  auto o = std::make_shared<bench::SweepOptions>();
  o->pairs_text = "128:128,1024:128,1024:1024,8192:1024,32768:256";
  CLI::App* cmd = bench.add_subcommand(
      "sweep", "TTFT, TPOT and end-to-end latency over prompt/output lengths, beside their floors");
  cmd->add_option("-m,--model", o->model, "archive (.gptoss) to benchmark");
  cmd->add_option("--synthetic", o->synthetic, "synthetic weights of this shape: tiny, 20b or 120b")
      ->check(CLI::IsMember({"tiny", "20b", "120b"}));
  cmd->add_option("--weights-seed,--seed", o->seed, "seed of the synthetic weights and the random prompts");
  cmd->add_option("--pairs", o->pairs_text, "ISL:OSL pairs, comma-separated")->capture_default_str();
  cmd->add_option("--experts", o->experts, "expert path(s): bf16, fp8 (comma-separated)")->delimiter(',');
  cmd->add_option("--attn", o->attn, "with --synthetic: attention weights bf16 or fp8")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  cmd->add_option("--lm-head", o->lm_head, "with --synthetic: LM head weights bf16 or fp8")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  cmd->add_option("--backend", o->backend, "auto (the GPU when usable), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_option("--prefill", o->prefill,
                  "prompt positions on the GPU: batched (the prefill kernels, the default) or decode "
                  "(one decode step each, for comparison)")
      ->check(CLI::IsMember({"batched", "decode"}));
  cmd->add_option("--repeats", o->repeats, "runs of each pair (median and spread reported)")
      ->capture_default_str();
  cmd->add_option("--text", o->text, "prompt text file, tokenized and repeated or cut to each ISL "
                                     "(default: random token ids)");
  cmd->add_option("--csv", o->csv, "write one row per pair and expert path (with a header row)");
  cmd->add_flag("--json", o->json, "also print one JSON object per pair");
  cmd->add_option("--plot", o->plot, "draw TTFT vs ISL and TPOT vs context into this PNG "
                                     "(needs --csv and python3-matplotlib)");
  cmd->callback([o] { bench::run_sweep(*o); });
}

}  // namespace gptoss::cli
