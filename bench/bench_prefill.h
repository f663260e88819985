// bench_prefill.h — `gptoss bench prefill`: TTFT (the prompt's positions before the last plus the
// last one's decode step, which gives the first token) and prefill tokens/s per prompt length, for
// the batched prefill and/or the per-token decode path, beside a floor from the HBM bandwidth
// measured in the same run.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "host/model_config.h"
#include "host/tensor_spec.h"

namespace CLI {
class App;
}

namespace gptoss::bench {

// "128,1024,8192" -> {128, 1024, 8192}; throws gptoss::Error naming the bad entry (empty, not a
// positive integer).
std::vector<int> parse_isl_list(std::string_view text);

// Matrix FLOPs of running prompt positions [0, isl) through every layer (projections, router, the
// four experts' two GEMMs, attention scores and values over each position's keys): what the
// achieved TFLOP/s divides.
double prefill_flops(const ModelConfig& c, int isl);

// The floor's bytes: every layer weight once per chunk of `chunk` tokens (a chunk of hundreds of
// tokens touches every expert), the prompt's KV cache written once, and the last position's
// decode step (its weights, LM head included).
uint64_t prefill_floor_bytes(const ModelConfig& c, const WeightFormats& formats, int isl, int chunk);

}  // namespace gptoss::bench

namespace gptoss::cli {

void add_prefill_command(CLI::App& bench);

}  // namespace gptoss::cli
