// sweep.h — `gptoss bench sweep`: time to first token, time per output token and end-to-end latency
// over prompt/output length pairs (ISL:OSL), each beside its floor measured in the same run.
#pragma once

#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace gptoss::bench {

// One prompt length (input sequence length) and one number of generated tokens.
struct SweepPair {
  int isl = 0;
  int osl = 0;
};

// "128:128,1024:128" -> pairs. Throws gptoss::Error naming the bad entry (missing colon, not a
// positive integer, empty list).
std::vector<SweepPair> parse_sweep_pairs(std::string_view text);

}  // namespace gptoss::bench

namespace gptoss::cli {

// Adds `sweep` to the `bench` subcommand (bench/bench_cli.cpp calls it).
void add_sweep_command(CLI::App& bench);

}  // namespace gptoss::cli
