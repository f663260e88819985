// bench_tokenizer.cpp — `gptoss tokenizer-bench` (hidden): load time of the bundled ranks and
// encode throughput (MB/s) of the tokenizer on a text file, validated against expected ids
// when given (bench/bench_tokenizer.sh runs it beside js-tiktoken on the same text).
// Also times the PCRE2 pre-tokenizer against the hand-written scanner.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench/bench_cli.h"
#include "host/error.h"
#include "host/sha256.h"
#include "host/text/tokenizer.h"

namespace gptoss::cli {
namespace {

struct BenchOptions {
  std::string text_path;
  std::string ids_path;
  int repeats = 5;
  bool json = false;
};

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}
// CPU time of the whole process (all threads): on a busy machine it tracks what the wall time
// would be on an idle one far better than the wall time does.
double process_cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error(fmt::format("cannot open '{}'", path));
  std::string s(size_t(f.tellg()), '\0');
  f.seekg(0);
  f.read(s.data(), std::streamsize(s.size()));
  return s;
}

struct Timing {
  double wall_ms, cpu_ms;  // medians
};
// Median wall and process-CPU time of `repeats` runs of f().
template <typename F>
Timing median_ms(int repeats, F&& f) {
  std::vector<double> wall, cpu;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    const double c0 = process_cpu_ms();
    f();
    cpu.push_back(process_cpu_ms() - c0);
    wall.push_back(ms_since(t0));
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

void run_bench(const BenchOptions& opt) {
  // Load time, by stage (the first load also warms the page cache; report the median).
  const std::string ranks_path = std::string(GPTOSS_DATA_DIR) + "/o200k_base.tiktoken";
  std::string ranks;
  const Timing read = median_ms(opt.repeats, [&] { ranks = read_all(ranks_path); });
  const Timing sha = median_ms(opt.repeats, [&] {
    (void)Sha256::digest(std::as_bytes(std::span<const char>(ranks.data(), ranks.size())));
  });
  const Timing parse = median_ms(opt.repeats, [&] { (void)tok::Tokenizer::from_tiktoken(ranks); });
  const Timing load = median_ms(opt.repeats, [&] { (void)tok::Tokenizer::load_default(); });
  fmt::print(
      "load_default: {:.1f} ms wall, {:.1f} ms cpu; cpu by stage: read {:.1f}, sha256 {:.1f} "
      "(beside the parse, in a thread), parse+index {:.1f}\n",
      load.wall_ms, load.cpu_ms, read.cpu_ms, sha.cpu_ms, parse.cpu_ms);

  if (opt.text_path.empty()) return;
  const auto t = tok::Tokenizer::load_default();
  const std::string text = read_all(opt.text_path);
  const double mb = double(text.size()) / 1e6;
  std::vector<tok::TokenId> ids;
  const Timing encode = median_ms(opt.repeats, [&] {
    ids.clear();
    t.encode_into(text, ids);
  });
  std::vector<std::pair<uint32_t, uint32_t>> pieces;
  const Timing split = median_ms(opt.repeats, [&] {
    pieces.clear();
    tok::detail::split_pieces(text, pieces);
  });
  const size_t num_pieces = pieces.size();
  const Timing pcre = median_ms(opt.repeats, [&] {
    pieces.clear();
    tok::detail::split_pieces_pcre2(text, pieces);
  });
  std::string validation = "not validated";
  if (!opt.ids_path.empty()) {
    std::vector<tok::TokenId> expected;
    const std::string s = read_all(opt.ids_path);
    for (size_t i = 0; i < s.size();) {
      size_t j = s.find_first_of(" ,\n", i);
      if (j == std::string::npos) j = s.size();
      if (j > i) expected.push_back(tok::TokenId(std::stoul(s.substr(i, j - i))));
      i = j + 1;
    }
    GPTOSS_CHECK(expected == ids, "tokenizer-bench: ids differ from {} ({} vs {} ids)",
                 opt.ids_path, ids.size(), expected.size());
    validation = fmt::format("ids identical to {}", opt.ids_path);
  }
  fmt::print("text: {:.2f} MB, {} pieces, {} tokens ({})\n", mb, num_pieces, ids.size(),
             validation);
  const auto rate = [mb](double ms) { return mb / ms * 1e3; };
  fmt::print("gptoss encode:        {:8.1f} MB/s wall, {:8.1f} MB/s cpu ({:.1f} ms wall)\n",
             rate(encode.wall_ms), rate(encode.cpu_ms), encode.wall_ms);
  fmt::print("  pre-tokenizer only: {:8.1f} MB/s cpu (scanner), {:8.1f} MB/s cpu (PCRE2 JIT)\n",
             rate(split.cpu_ms), rate(pcre.cpu_ms));
  if (opt.json) {
    fmt::print(
        "{{\"bench\":\"tokenizer\",\"mb\":{:.3f},\"encode_mb_s\":{:.2f},"
        "\"encode_cpu_mb_s\":{:.2f},\"scanner_cpu_mb_s\":{:.2f},"
        "\"pcre2_cpu_mb_s\":{:.2f},\"load_ms\":{:.2f}}}\n",
        mb, rate(encode.wall_ms), rate(encode.cpu_ms), rate(split.cpu_ms), rate(pcre.cpu_ms),
        load.wall_ms);
  }
}

}  // namespace

// Registered by add_tokenize_commands (host/cli/tokenize_cli.cpp); hidden from --help.
void add_tokenizer_bench_command(CLI::App& app) {
  auto opt = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("tokenizer-bench", "Tokenizer load time and encode MB/s");
  cmd->group("");
  cmd->add_option("text", opt->text_path, "a UTF-8 text file to encode");
  cmd->add_option("--ids", opt->ids_path, "expected ids of the text (validates the run)");
  cmd->add_option("--repeats", opt->repeats, "timed runs; the median is reported")
      ->check(CLI::Range(1, 1000));
  cmd->add_flag("--json", opt->json, "also print one JSON line");
  cmd->callback([opt] { run_bench(*opt); });
}

}  // namespace gptoss::cli
