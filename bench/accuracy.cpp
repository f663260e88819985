// accuracy.cpp — `gptoss bench accuracy` (accuracy.h): the metrics, the token sequence and the
// two teacher-forced paths, run position by position side by side (neither path's logits are
// stored: 201,088 floats per position), on the CPU reference or the GPU engine.
#include "bench/accuracy.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "bench/bench_cli.h"
#include "host/archive/archive.h"
#include "host/data_files.h"
#include "host/decode_options.h"
#include "host/error.h"
#include "host/gpu.h"
#include "host/npy.h"
#include "host/reference/forward.h"
#include "host/reference/memory_model.h"
#include "host/runtime/engine.h"
#include "host/synth_weights.h"
#include "host/text/tokenizer.h"

namespace gptoss::bench {
namespace {

std::vector<int> top_k(const float* x, int n, int k) {
  std::vector<int> idx(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) idx[size_t(i)] = i;
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
    return x[a] > x[b] || (x[a] == x[b] && a < b);
  });
  idx.resize(size_t(k));
  return idx;
}

double overlap(std::vector<int> a, std::vector<int> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::vector<int> both;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  return double(both.size()) / double(a.size());
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double idx = p * double(v.size() - 1);
  const size_t lo = size_t(idx), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - double(lo));
}

}  // namespace

PositionMetrics compare_logits(const float* base, const float* var, int vocab, int next) {
  PositionMetrics m;
  double max_b = -INFINITY, max_v = -INFINITY;
  for (int i = 0; i < vocab; ++i) {
    if (!std::isfinite(base[i]) || !std::isfinite(var[i])) {
      throw Error(fmt::format("logit {} is not finite (baseline {}, variant {})", i, base[i], var[i]));
    }
    max_b = std::max(max_b, double(base[i]));
    max_v = std::max(max_v, double(var[i]));
  }
  double zb = 0, zv = 0, dot = 0, nb = 0, nv = 0, sum_abs = 0;
  for (int i = 0; i < vocab; ++i) {
    zb += std::exp(base[i] - max_b);
    zv += std::exp(var[i] - max_v);
    dot += double(base[i]) * var[i];
    nb += double(base[i]) * base[i];
    nv += double(var[i]) * var[i];
    const double d = std::fabs(double(base[i]) - var[i]);
    m.max_abs_diff = std::max(m.max_abs_diff, d);
    sum_abs += d;
  }
  const double lzb = std::log(zb) + max_b, lzv = std::log(zv) + max_v;  // log partition functions
  double kl = 0;
  for (int i = 0; i < vocab; ++i) {
    const double lp = base[i] - lzb, lq = var[i] - lzv;
    kl += std::exp(lp) * (lp - lq);
  }
  m.kl = std::max(kl, 0.0);  // rounding can leave -1e-17 for identical rows
  m.cosine = (nb > 0 && nv > 0) ? dot / std::sqrt(nb * nv) : (nb == nv ? 1.0 : 0.0);
  m.mean_abs_diff = sum_abs / vocab;
  const int k5 = std::min(5, vocab), k10 = std::min(10, vocab);
  const std::vector<int> t10b = top_k(base, vocab, k10), t10v = top_k(var, vocab, k10);
  m.top1_equal = t10b[0] == t10v[0];
  m.top5_overlap = overlap({t10b.begin(), t10b.begin() + k5}, {t10v.begin(), t10v.begin() + k5});
  m.top10_overlap = overlap(t10b, t10v);
  if (next >= 0) {
    m.nll_base = lzb - base[next];
    m.nll_variant = lzv - var[next];
  }
  return m;
}

AccuracySummary summarize(const std::vector<PositionMetrics>& v) {
  AccuracySummary s;
  s.positions = int(v.size());
  if (v.empty()) return s;
  std::vector<double> kls;
  s.cosine_min = 1.0;
  for (size_t i = 0; i < v.size(); ++i) {
    const PositionMetrics& m = v[i];
    s.top1_agreement += m.top1_equal;
    s.top5_overlap += m.top5_overlap;
    s.top10_overlap += m.top10_overlap;
    kls.push_back(m.kl);
    s.kl_mean += m.kl;
    s.cosine_mean += m.cosine;
    s.cosine_min = std::min(s.cosine_min, m.cosine);
    s.max_abs_diff = std::max(s.max_abs_diff, m.max_abs_diff);
    s.mean_abs_diff += m.mean_abs_diff;
  }
  const double n = double(v.size());
  s.top1_agreement /= n, s.top5_overlap /= n, s.top10_overlap /= n, s.kl_mean /= n;
  s.cosine_mean /= n, s.mean_abs_diff /= n;
  s.kl_p99 = percentile(kls, 0.99);
  s.kl_max = *std::max_element(kls.begin(), kls.end());
  // Every position but the last has a next token in the sequence.
  s.nll_positions = int(v.size()) - 1;
  for (int i = 0; i < s.nll_positions; ++i) {
    s.nll_base += v[size_t(i)].nll_base;
    s.nll_variant += v[size_t(i)].nll_variant;
  }
  if (s.nll_positions > 0) {
    s.nll_base /= s.nll_positions;
    s.nll_variant /= s.nll_positions;
  }
  s.ppl_base = std::exp(s.nll_base);
  s.ppl_variant = std::exp(s.nll_variant);
  return s;
}

std::vector<int> parse_token_ids(std::string_view text, int vocab, const std::string& what) {
  std::vector<int> ids;
  size_t i = 0;
  while (i < text.size()) {
    const char ch = text[i];
    if (ch == ',' || ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && std::string_view(", \n\r\t").find(text[j]) == std::string_view::npos) ++j;
    const std::string item(text.substr(i, j - i));
    long long v = -1;
    size_t used = 0;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      used = 0;
    }
    if (used != item.size() || v < 0) {
      throw Error(fmt::format("{}: '{}' is not a token id", what, item),
                  "give non-negative integers separated by commas or whitespace");
    }
    if (v >= vocab) {
      throw Error(fmt::format("{}: token id {} is beyond the model's vocabulary ({} ids)", what, v, vocab),
                  "use ids below the vocabulary size");
    }
    ids.push_back(int(v));
    i = j;
  }
  if (ids.empty()) throw Error(fmt::format("{} holds no token ids", what));
  return ids;
}

namespace {

struct AccuracyOptions {
  std::string model, synthetic, vs_attn, vs_lm_head, vs_experts, text, tokens_file, reference;
  std::string backend = "auto";
  uint64_t seed = 1;
  int positions = 0;  // 0: the whole sequence
  bool json = false;
};

constexpr std::string_view kDefaultText = "accuracy_text.txt";

// One teacher-forced path: runs `token` at `pos` and exposes the logits of that step.
struct Path {
  std::string name;
  std::unique_ptr<ref::MemoryModel> memory;
  std::unique_ptr<ModelWeights> view;  // what cpu reads
  std::unique_ptr<ref::Reference> cpu;
  std::unique_ptr<GpuEngine> gpu;
  std::vector<float> gpu_logits;
  std::vector<double> step_ms;
  void step(int token, int pos) {
    const auto t0 = std::chrono::steady_clock::now();
    if (cpu) {
      cpu->step(token);
      step_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    } else {
      gpu->step(token, pos);
      step_ms.push_back(gpu->last_kernel_ms());
      gpu_logits = gpu->logits();
    }
  }
  const float* logits() const { return cpu ? cpu->logits().data() : gpu_logits.data(); }
};

std::vector<int> load_sequence(const AccuracyOptions& o, const ModelConfig& c,
                               const std::optional<MappedArchive>& archive) {
  if (!o.tokens_file.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(o.tokens_file, ec)) {
      throw Error(fmt::format("--tokens-file {}: no such file", o.tokens_file));
    }
    return parse_token_ids(read_file(o.tokens_file), c.vocab_size, "--tokens-file " + o.tokens_file);
  }
  std::string path = o.text;
  if (path.empty()) {
    for (const auto& p : data_file_candidates(kDefaultText)) {
      std::error_code ec;
      if (std::filesystem::is_regular_file(p, ec)) {
        path = p.string();
        break;
      }
    }
    if (path.empty()) {
      throw Error(fmt::format("the bundled text data/{} was not found", kDefaultText),
                  "pass --text FILE or --tokens-file FILE, or set GPTOSS_DATA_DIR");
    }
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(fmt::format("--text {}: no such file", path));
  const std::string text = read_file(path);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw Error(fmt::format("--text {} is empty", path), "give a file with some text");
  }
  const tok::Tokenizer tokenizer =
      archive && archive->tokenizer_format() != archive::TokenizerFormat::kNone
          ? tok::Tokenizer::from_blob(archive->tokenizer_format() == archive::TokenizerFormat::kTiktoken
                                          ? tok::kBlobFormatTiktoken
                                          : tok::kBlobFormatHfJson,
                                      archive->tokenizer_blob())
          : tok::Tokenizer::load_default();
  std::vector<int> ids;
  for (tok::TokenId id : tokenizer.encode(text)) {
    if (int(id) >= c.vocab_size) {
      throw Error(fmt::format("--text {}: token id {} is beyond the model's vocabulary ({} ids)", path,
                              id, c.vocab_size),
                  "use a model whose vocabulary covers its tokenizer, or --tokens-file");
    }
    ids.push_back(int(id));
  }
  return ids;
}

void print_summary(const AccuracySummary& s, const std::string& base, const std::string& var,
                   double ms_base, double ms_var, bool gpu) {
  fmt::print("{} positions, baseline: {}, variant: {}\n", s.positions, base, var);
  fmt::print("  {:<28} {:>12}\n", "top-1 agreement", fmt::format("{:.4f}", s.top1_agreement));
  fmt::print("  {:<28} {:>12.4f}\n", "top-5 overlap", s.top5_overlap);
  fmt::print("  {:<28} {:>12.4f}\n", "top-10 overlap", s.top10_overlap);
  fmt::print("  {:<28} {:>12.3e}\n", "KL(base||variant) mean", s.kl_mean);
  fmt::print("  {:<28} {:>12.3e}\n", "KL p99", s.kl_p99);
  fmt::print("  {:<28} {:>12.3e}\n", "KL max", s.kl_max);
  fmt::print("  {:<28} {:>12.6f}\n", "logit cosine mean", s.cosine_mean);
  fmt::print("  {:<28} {:>12.6f}\n", "logit cosine min", s.cosine_min);
  fmt::print("  {:<28} {:>12.4f}\n", "max |logit diff|", s.max_abs_diff);
  fmt::print("  {:<28} {:>12.4f}\n", "mean |logit diff|", s.mean_abs_diff);
  fmt::print("  {:<28} {:>12.4f} {:>12.4f}\n", "NLL (nats/token) base, var", s.nll_base, s.nll_variant);
  fmt::print("  {:<28} {:>12.3f} {:>12.3f}\n", "perplexity base, variant", s.ppl_base, s.ppl_variant);
  if (ms_base > 0 || ms_var > 0) {
    fmt::print("  {:<28} {:>12.4f} {:>12.4f}\n", gpu ? "TPOT ms (kernel) base, var" : "step ms (CPU) base, var",
               ms_base, ms_var);
  }
}

void run_accuracy(const AccuracyOptions& o) {
  if (o.model.empty() == o.synthetic.empty()) {
    throw Error("bench accuracy needs exactly one of -m FILE and --synthetic SHAPE");
  }
  if (!o.text.empty() && !o.tokens_file.empty()) throw Error("--text and --tokens-file exclude each other");
  if (o.positions < 0) throw Error(fmt::format("-n {}: must be positive", o.positions));
  const bool has_vs = !o.vs_attn.empty() || !o.vs_lm_head.empty() || !o.vs_experts.empty();
  if (!has_vs && o.reference.empty()) {
    throw Error("nothing to compare", "give --vs-attn fp8, --vs-lm-head fp8, --vs-experts fp8 or --reference FILE");
  }
  const WeightFormats var_formats = parse_weight_formats(o.vs_attn.empty() ? "bf16" : o.vs_attn,
                                                         o.vs_lm_head.empty() ? "bf16" : o.vs_lm_head);
  const ExpertMode var_experts = parse_expert_mode(o.vs_experts.empty() ? "bf16" : o.vs_experts);

  std::optional<MappedArchive> archive;
  ModelConfig config;
  if (!o.model.empty()) {
    archive.emplace(MappedArchive::open(o.model));
    config = archive->config();
    if (archive->formats() != WeightFormats{} && has_vs) {
      throw Error(fmt::format("{}: the baseline is BF16 everywhere, but this archive has attention {} and "
                              "LM head {}", o.model, weight_format_name(archive->formats().attn),
                              weight_format_name(archive->formats().lm_head)),
                  "compare from a BF16 archive (gptoss convert without --attn/--lm-head); the "
                  "variant's FP8 weights are quantized from it in memory");
    }
  } else {
    config = ModelConfig::preset(o.synthetic);
  }
  std::vector<int> seq = load_sequence(o, config, archive);
  const int n = o.positions > 0 ? o.positions : int(seq.size());
  if (int(seq.size()) < n) {
    throw Error(fmt::format("the sequence has {} tokens, fewer than -n {}", seq.size(), n),
                "lower -n or give a longer --text / --tokens-file");
  }
  if (n > config.max_context) {
    throw Error(fmt::format("-n {} is beyond the model's context of {} positions", n, config.max_context));
  }
  std::optional<NpyMatrix> reference;
  if (!o.reference.empty()) {
    reference = read_npy_f32(o.reference);
    if (reference->cols != config.vocab_size) {
      throw Error(fmt::format("--reference {}: rows of {} logits, but the model's vocabulary has {} ids "
                              "(another model?)", o.reference, reference->cols, config.vocab_size));
    }
    if (reference->rows < n) {
      throw Error(fmt::format("--reference {}: {} positions of logits, fewer than the {} compared",
                              o.reference, reference->rows, n),
                  "lower -n to the file's positions, or store logits for the whole sequence");
    }
  }

  std::string backend = o.backend, why;
  if (backend == "auto") backend = gpu::available(&why) ? "cuda" : "cpu";
  DecodeOptions decode;
  decode.max_context = n;
  decode.keep_logits = true;
  decode.quiet = true;

  // The canonical tensors of the model (for quantizing the variant in memory).
  auto fill = [&](const TensorSpec& spec, std::span<std::byte> out) {
    if (archive) {
      const auto b = archive->tensor(spec.name);
      std::memcpy(out.data(), b.data(), out.size());
    } else {
      conv::synth_fill(config, o.seed, spec, 0, out);
    }
  };
  auto make_path = [&](const std::string& name, const WeightFormats& formats, ExpertMode experts) {
    auto p = std::make_unique<Path>();
    p->name = name;
    DecodeOptions d = decode;
    d.experts = experts;
    d.synthetic_formats = formats;
    const bool from_archive = archive && formats == archive->formats();
    if (!from_archive && (backend == "cpu" || archive)) {
      p->memory = std::make_unique<ref::MemoryModel>(config, fill, formats);
    }
    if (backend == "cpu") {
      // The reference keeps a reference to its weights view: the path owns it.
      p->view = std::make_unique<ModelWeights>(from_archive ? archive->weights() : p->memory->weights());
      p->cpu = std::make_unique<ref::Reference>(*p->view, d);
    } else if (p->memory) {
      p->gpu = std::make_unique<GpuEngine>(p->memory->weights(), d);
      p->memory.reset();  // uploaded
    } else if (archive) {
      p->gpu = std::make_unique<GpuEngine>(archive->weights(), d);
    } else {
      p->gpu = std::make_unique<GpuEngine>(config, o.seed, d);
    }
    return p;
  };
  auto label = [](const WeightFormats& f, ExpertMode e) {
    return fmt::format("attention {}, lm head {}, experts {}", weight_format_name(f.attn),
                       weight_format_name(f.lm_head), expert_mode_name(e));
  };
  const std::string base_label = reference ? fmt::format("--reference {}", o.reference)
                                           : label(WeightFormats{}, ExpertMode::kBf16);
  const std::string var_label = label(var_formats, var_experts);
  fmt::print(stderr, "bench accuracy: {} positions on {}, {} vs {}\n", n, backend, base_label, var_label);
  std::unique_ptr<Path> base = reference ? nullptr : make_path("baseline", WeightFormats{}, ExpertMode::kBf16);
  std::unique_ptr<Path> var = make_path("variant", var_formats, var_experts);

  std::vector<PositionMetrics> per_pos;
  const auto t0 = std::chrono::steady_clock::now();
  for (int pos = 0; pos < n; ++pos) {
    const int token = seq[size_t(pos)];
    if (base) base->step(token, pos);
    var->step(token, pos);
    const float* b = base ? base->logits() : reference->data.data() + size_t(pos) * size_t(config.vocab_size);
    const int next = pos + 1 < int(seq.size()) && pos + 1 < n ? seq[size_t(pos) + 1] : -1;
    per_pos.push_back(compare_logits(b, var->logits(), config.vocab_size, next));
    if ((pos + 1) % 16 == 0 || pos + 1 == n) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      fmt::print(stderr, "\rposition {}/{} ({:.1f} s)", pos + 1, n, s);
      if (pos + 1 == n) fmt::print(stderr, "\n");
    }
  }
  const AccuracySummary s = summarize(per_pos);
  auto median = [](const Path* p) { return p ? percentile(p->step_ms, 0.5) : 0.0; };
  print_summary(s, base_label, var_label, median(base.get()), median(var.get()), backend != "cpu");
  if (o.json) {
    const nlohmann::json j = {
        {"bench", "accuracy"}, {"backend", backend},
        {"source", o.model.empty() ? fmt::format("synthetic:{}:seed{}", o.synthetic, o.seed) : o.model},
        {"baseline", base_label}, {"variant", var_label}, {"positions", s.positions},
        {"top1_agreement", s.top1_agreement}, {"top5_overlap", s.top5_overlap},
        {"top10_overlap", s.top10_overlap}, {"kl_mean", s.kl_mean}, {"kl_p99", s.kl_p99},
        {"kl_max", s.kl_max}, {"cosine_mean", s.cosine_mean}, {"cosine_min", s.cosine_min},
        {"max_abs_diff", s.max_abs_diff}, {"mean_abs_diff", s.mean_abs_diff},
        {"nll_base", s.nll_base}, {"nll_variant", s.nll_variant}, {"ppl_base", s.ppl_base},
        {"ppl_variant", s.ppl_variant}, {"step_ms_base", median(base.get())},
        {"step_ms_variant", median(var.get())}};
    fmt::print("{}\n", j.dump());
  }
}

}  // namespace
}  // namespace gptoss::bench

namespace gptoss::cli {

void add_accuracy_command(CLI::App& bench) {
  auto o = std::make_shared<bench::AccuracyOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "accuracy", "teacher-forced comparison of the BF16 path with FP8 attention / LM head / experts "
                  "(or with stored logits) over a token sequence");
  cmd->add_option("-m,--model", o->model, "a BF16 archive (.gptoss)");
  cmd->add_option("--synthetic", o->synthetic, "synthetic weights: tiny, 20b or 120b")
      ->check(CLI::IsMember({"tiny", "20b", "120b"}));
  cmd->add_option("--seed", o->seed, "seed of the synthetic weights")->capture_default_str();
  cmd->add_option("--vs-attn", o->vs_attn, "variant: attention weights fp8")->check(CLI::IsMember({"bf16", "fp8"}));
  cmd->add_option("--vs-lm-head", o->vs_lm_head, "variant: LM head weights fp8")->check(CLI::IsMember({"bf16", "fp8"}));
  cmd->add_option("--vs-experts", o->vs_experts, "variant: expert activations fp8")->check(CLI::IsMember({"bf16", "fp8"}));
  cmd->add_option("--text", o->text, "text file to tokenize (default: the bundled data/accuracy_text.txt)");
  cmd->add_option("--tokens-file", o->tokens_file, "token ids (commas or whitespace) instead of text");
  cmd->add_option("-n", o->positions, "positions compared (default: the whole sequence)");
  cmd->add_option("--backend", o->backend, "auto (the GPU when usable), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--reference", o->reference,
                  "logits [positions, vocab] float32 .npy from another implementation: compared "
                  "with this engine's path (the --vs variant, else BF16)");
  cmd->add_flag("--json", o->json, "also print one JSON object");
  cmd->callback([o] { bench::run_accuracy(*o); });
}

}  // namespace gptoss::cli
