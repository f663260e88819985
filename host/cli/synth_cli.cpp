// synth_cli.cpp — `gptoss synth`: writes a synthetic gpt-oss checkpoint (HF layout by default,
// or original/) from a shape and a seed, with progress (bytes, rate, ETA) on stderr.
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>

#include "converter/synth.h"
#include "host/cli/cli.h"
#include "host/error.h"

namespace gptoss::cli {

namespace {

struct SynthArgs {
  std::string shape = "tiny";
  uint64_t seed = 0;
  std::string out;
  std::string layout = "hf";
  int layers = 0;
  int experts = 0;
  int vocab = 0;
  uint64_t shard_size = 4'800'000'000ull;
  int threads = 0;
  bool quiet = false;
  bool force = false;
};

// Throttled progress line: one update per second (in place on a terminal, a line per 5 s else).
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled), tty_(::isatty(STDERR_FILENO) != 0) {}
  void update(uint64_t done, uint64_t total) {
    if (!enabled_) return;
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (done < total && since < (tty_ ? 1.0 : 5.0)) return;
    last_ = now;
    const double t = std::chrono::duration<double>(now - start_).count();
    const double rate = t > 0 ? static_cast<double>(done) / t : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
    fmt::print(stderr, "{}synth: {:.2f} / {:.2f} GB ({:.0f}%), {:.2f} GB/s, ETA {:.0f} s{}",
               tty_ ? "\r" : "", static_cast<double>(done) / 1e9, static_cast<double>(total) / 1e9,
               100.0 * static_cast<double>(done) / static_cast<double>(total ? total : 1),
               rate / 1e9, eta, tty_ ? "" : "\n");
    if (tty_ && done == total) fmt::print(stderr, "\n");
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_, tty_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_ = Clock::now();
};

void run_synth(const SynthArgs& a) {
  const ModelConfig config = conv::synth_config(a.shape, a.layers, a.experts, a.vocab);
  conv::SynthWriteOptions opt;
  opt.layout =
      a.layout == "original" ? conv::CheckpointLayout::kOriginal : conv::CheckpointLayout::kHF;
  opt.shard_bytes = a.shard_size;
  opt.threads = a.threads;
  opt.force = a.force;
  // Progress only where it helps: checkpoints that take more than a moment.
  uint64_t total = 0;
  for (const auto& t : canonical_tensors(config)) total += t.num_bytes();
  Progress progress(!a.quiet && total >= (256ull << 20));
  opt.progress = [&](uint64_t done, uint64_t all) { progress.update(done, all); };
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = conv::write_synth_checkpoint(a.out, config, a.seed, opt);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!a.quiet) {
    fmt::print(
        stderr,
        "synth: wrote {} ({} layers, {} experts, vocab {}, seed {}, {} layout): {} shard(s), "
        "{:.3f} GB of tensors in {:.1f} s ({:.2f} GB/s)\n",
        a.out, config.num_layers, config.num_experts, config.vocab_size, a.seed, a.layout,
        r.num_shards, static_cast<double>(r.tensor_bytes) / 1e9, secs,
        static_cast<double>(r.file_bytes) / 1e9 / (secs > 0 ? secs : 1));
  }
}

}  // namespace

void add_synth_command(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  CLI::App* cmd = app.add_subcommand(
      "synth", "Write a synthetic gpt-oss checkpoint (real HF format) from a shape and a seed");
  cmd->add_option("--shape", args->shape, "Model shape")
      ->check(CLI::IsMember({"tiny", "20b", "120b"}))
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed: same shape + seed = bit-identical weights")
      ->capture_default_str();
  cmd->add_option("-o,--out", args->out, "Output directory (created if needed)")->required();
  cmd->add_option("--layout", args->layout, "hf: top-level HF files; original: DIR/original/")
      ->check(CLI::IsMember({"hf", "original"}))
      ->capture_default_str();
  cmd->add_option("--layers", args->layers, "Override the number of layers")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--experts", args->experts, "Override the number of experts (top-k = min(4, N))")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--vocab", args->vocab, "Override the vocabulary size")
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--shard-size", args->shard_size, "Max tensor bytes per safetensors shard")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "Generator threads (0 = all cores)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_flag("--force", args->force, "Replace a checkpoint already in the output directory");
  cmd->add_flag("-q,--quiet", args->quiet, "No progress or summary on stderr");
  cmd->callback([args] { run_synth(*args); });
}

}  // namespace gptoss::cli
