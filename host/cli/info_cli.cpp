// info_cli.cpp — `gptoss info FILE.gptoss [--verify] [--json]`: the header (config, formats,
// tokenizer) and the tensor table of an archive, then the quick check every load runs (tokenizer
// and sampled tensor checksums, with its cost); --verify recomputes every checksum. Exits
// non-zero on any mismatch.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "host/archive/archive.h"
#include "host/cli/cli.h"
#include "host/data_files.h"  // kO200kBaseSha256
#include "host/error.h"
#include "host/progress.h"

namespace gptoss::cli {
namespace {

struct InfoArgs {
  std::string file;
  bool verify = false;
  bool json = false;
  bool quiet = false;
};

nlohmann::json config_json(const ModelConfig& c) {
  std::vector<int> sliding;
  for (uint8_t s : c.layer_sliding) sliding.push_back(s);
  return {{"num_layers", c.num_layers},
          {"num_experts", c.num_experts},
          {"experts_per_token", c.experts_per_token},
          {"vocab_size", c.vocab_size},
          {"hidden", c.hidden},
          {"intermediate", c.intermediate},
          {"num_heads", c.num_heads},
          {"num_kv_heads", c.num_kv_heads},
          {"head_dim", c.head_dim},
          {"sliding_window", c.sliding_window},
          {"initial_context_length", c.initial_context_length},
          {"max_context", c.max_context},
          {"rope_theta", c.rope_theta},
          {"rope_scaling_factor", c.rope_scaling_factor},
          {"rope_ntk_alpha", c.rope_ntk_alpha},
          {"rope_ntk_beta", c.rope_ntk_beta},
          {"rms_norm_eps", c.rms_norm_eps},
          {"swiglu_limit", c.swiglu_limit},
          {"layer_sliding", sliding}};
}

std::string layer_pattern_text(const ModelConfig& c) {
  if (c.layer_sliding == default_layer_pattern(c.num_layers)) return "even layers";
  std::vector<int> idx;
  for (int i = 0; i < c.num_layers; ++i) {
    if (c.is_sliding(i)) idx.push_back(i);
  }
  return idx.empty() ? "no layers" : fmt::format("layers {}", fmt::join(idx, ","));
}

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string tokenizer_note(const MappedArchive& a) {
  if (a.tokenizer_format() == archive::TokenizerFormat::kTiktoken &&
      a.tokenizer_sha256_hex() == kO200kBaseSha256) {
    return " (o200k_base)";
  }
  return "";
}

void print_text(const MappedArchive& a) {
  const ModelConfig& c = a.config();
  const WeightFormats& f = a.formats();
  fmt::print("archive:   {} ({} bytes)\n", a.label(), a.file_bytes());
  fmt::print("format:    version {}, layout id {}\n", a.format_version(), a.layout_id());
  fmt::print(
      "config:    {} layers, {} experts ({} per token), vocab {}, hidden {}, "
      "intermediate {}\n",
      c.num_layers, c.num_experts, c.experts_per_token, c.vocab_size, c.hidden, c.intermediate);
  fmt::print("           attention: {} q heads / {} kv heads x {}, sliding window {} on {}\n",
             c.num_heads, c.num_kv_heads, c.head_dim, c.sliding_window, layer_pattern_text(c));
  fmt::print(
      "           rope: theta {}, yarn factor {} (beta fast {}, slow {}), initial context "
      "{}, max context {}\n",
      c.rope_theta, c.rope_scaling_factor, c.rope_ntk_beta, c.rope_ntk_alpha,
      c.initial_context_length, c.max_context);
  fmt::print("           rms eps {}, swiglu limit {}\n", c.rms_norm_eps, c.swiglu_limit);
  fmt::print("formats:   attention {}, lm head {}, experts {}\n", weight_format_name(f.attn),
             weight_format_name(f.lm_head), expert_format_name(f.experts));
  if (a.tokenizer_format() == archive::TokenizerFormat::kNone) {
    fmt::print("tokenizer: none\n");
  } else {
    fmt::print("tokenizer: {}, {} bytes, sha256 {}{}\n",
               tokenizer_format_name(a.tokenizer_format()), a.tokenizer_blob().size(),
               a.tokenizer_sha256_hex(), tokenizer_note(a));
  }
  uint64_t total = 0;
  for (const auto& t : a.entries()) total += t.num_bytes;
  fmt::print("tensors:   {} tensors, {} bytes\n", a.entries().size(), total);
  fmt::print("  {:<28} {:<8} {:<22} {:>14} {:>14}  {}\n", "name", "dtype", "shape", "offset",
             "bytes", "xxh64");
  for (const auto& t : a.entries()) {
    fmt::print("  {:<28} {:<8} {:<22} {:>14} {:>14}  {:016x}\n", t.name, dtype_name(t.dtype),
               shape_text(t.shape), t.offset, t.num_bytes, t.xxh64);
  }
}

nlohmann::json to_json(const MappedArchive& a) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : a.entries()) {
    tensors.push_back({{"name", t.name},
                       {"dtype", dtype_name(t.dtype)},
                       {"shape", t.shape},
                       {"offset", t.offset},
                       {"bytes", t.num_bytes},
                       {"xxh64", fmt::format("{:016x}", t.xxh64)}});
  }
  nlohmann::json tok = {{"format", tokenizer_format_name(a.tokenizer_format())},
                        {"bytes", a.tokenizer_blob().size()}};
  if (a.tokenizer_format() != archive::TokenizerFormat::kNone) {
    tok["sha256"] = a.tokenizer_sha256_hex();
  }
  return {{"file", a.label()},
          {"file_bytes", a.file_bytes()},
          {"format_version", a.format_version()},
          {"layout_id", a.layout_id()},
          {"config", config_json(a.config())},
          {"formats",
           {{"attn", weight_format_name(a.formats().attn)},
            {"lm_head", weight_format_name(a.formats().lm_head)},
            {"experts", expert_format_name(a.formats().experts)}}},
          {"tokenizer", tok},
          {"tensors", tensors}};
}

// The quick check's mismatches as an error (after the table, so a damaged file still shows it).
[[noreturn]] void throw_mismatches(const MappedArchive& a, const VerifyResult& r,
                                   std::string_view what) {
  const size_t shown = std::min<size_t>(r.mismatched.size(), 10);
  throw Error(fmt::format("{}: {} {} mismatch{}: {}{}", a.label(), r.mismatched.size(), what,
                          r.mismatched.size() == 1 ? "" : "es",
                          fmt::join(r.mismatched.begin(), r.mismatched.begin() + shown, ", "),
                          r.mismatched.size() > shown ? ", ..." : ""),
              "the file is corrupted; copy it again or re-run gptoss convert");
}

void run_info(const InfoArgs& args) {
  // The structure only: the checksums are reported below, after the table.
  const MappedArchive a = MappedArchive::open(args.file, LoadCheck::kStructure);
  nlohmann::json j;
  if (args.json) {
    j = to_json(a);
  } else {
    print_text(a);
  }
  // The quick check every load runs (tokenizer + sampled tensor checksums), with its cost.
  const VerifyResult quick = a.quick_check();
  if (args.json) {
    j["quick_check"] = {{"ok", quick.ok()},
                        {"sampled_checksums", a.has_sampled_checksums()},
                        {"mismatched", quick.mismatched},
                        {"bytes", quick.bytes_checked},
                        {"seconds", quick.seconds}};
  } else {
    fmt::print("quick check: {} ({} bytes read in {:.1f} ms{})\n",
               quick.ok() ? "ok" : "MISMATCH", quick.bytes_checked, quick.seconds * 1e3,
               a.has_sampled_checksums()
                   ? ": the tokenizer and the first and last 64 KiB of each tensor"
                   : ": the tokenizer only; this archive predates sampled tensor checksums");
  }
  if (!args.verify) {
    if (args.json) fmt::print("{}\n", j.dump(2));
    if (!quick.ok()) throw_mismatches(a, quick, "quick-check checksum");
    return;
  }
  ProgressLine progress("verify", !args.quiet);
  const VerifyResult r = a.verify(
      [&](const VerifyProgress& p) { progress.update(p.bytes_done, p.bytes_total, p.seconds); });
  progress.finish(r.bytes_checked, r.seconds);
  if (args.json) {
    j["verify"] = {{"ok", r.ok()},
                   {"mismatched", r.mismatched},
                   {"bytes", r.bytes_checked},
                   {"seconds", r.seconds}};
    fmt::print("{}\n", j.dump(2));
  } else if (r.ok()) {
    fmt::print("verify:    all {} checksums match ({} bytes)\n",
               a.entries().size() + (a.tokenizer_blob().empty() ? 0 : 1), r.bytes_checked);
  }
  if (!r.ok()) throw_mismatches(a, r, "checksum");
  if (!quick.ok()) throw_mismatches(a, quick, "quick-check checksum");
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand(
      "info", "Print a .gptoss archive's config, formats and tensor table; --verify checksums");
  cmd->add_option("FILE", args->file, "the archive")->required();
  cmd->add_flag("--verify", args->verify, "recompute every tensor checksum (reads the whole file)");
  cmd->add_flag("--json", args->json, "print JSON instead of text");
  cmd->add_flag("-q,--quiet", args->quiet, "no progress on stderr");
  cmd->callback([args] { run_info(*args); });
}

}  // namespace gptoss::cli
