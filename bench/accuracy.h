// accuracy.h — `gptoss bench accuracy`: two paths of the same model (the BF16 baseline and a
// variant with FP8 attention, LM head and/or expert activations), teacher-forced over the same
// token sequence, compared position by position on their full logits (docs/ACCURACY.md). Or one
// path against logits stored by another implementation (--reference FILE.npy).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace gptoss::bench {

// One position: the next-token distributions P (baseline) and Q (variant) from two logit rows.
struct PositionMetrics {
  bool top1_equal = false;
  double top5_overlap = 0;   // |top5(P) & top5(Q)| / 5
  double top10_overlap = 0;  // |top10(P) & top10(Q)| / 10
  double kl = 0;             // KL(P || Q) in nats
  double cosine = 0;         // of the logit vectors
  double max_abs_diff = 0;   // max |logit difference|
  double mean_abs_diff = 0;
  double nll_base = 0;       // -log P(next token); 0 when there is no next token
  double nll_variant = 0;
};

// Compares two rows of `vocab` logits; `next` is the token that follows (-1: none, NLL 0).
// FP64 softmax with the maximum subtracted. Throws gptoss::Error on a non-finite logit.
PositionMetrics compare_logits(const float* base, const float* variant, int vocab, int next);

struct AccuracySummary {
  int positions = 0;
  double top1_agreement = 0, top5_overlap = 0, top10_overlap = 0;
  double kl_mean = 0, kl_p99 = 0, kl_max = 0;
  double cosine_mean = 0, cosine_min = 0;
  double max_abs_diff = 0, mean_abs_diff = 0;
  int nll_positions = 0;  // positions with a next token
  double nll_base = 0, nll_variant = 0;  // mean over nll_positions
  double ppl_base = 0, ppl_variant = 0;  // exp(mean NLL)
};
AccuracySummary summarize(const std::vector<PositionMetrics>& per_position);

// "1, 2 3\n4" -> ids (commas and/or whitespace); throws naming the bad entry, an empty list, or
// an id outside [0, vocab).
std::vector<int> parse_token_ids(std::string_view text, int vocab, const std::string& what);

}  // namespace gptoss::bench

namespace gptoss::cli {
void add_accuracy_command(CLI::App& bench);  // bench/bench_cli.cpp calls it
}  // namespace gptoss::cli
