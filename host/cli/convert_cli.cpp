// convert_cli.cpp — `gptoss convert CKPT_DIR -o FILE.gptoss` and its --dry-run plan
// (docs/ARCHIVE.md section 7). The work is in convert.cpp and archive_writer.cpp.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "converter/checkpoint.h"
#include "converter/convert.h"
#include "host/archive/archive.h"
#include "host/cli/arg_checks.h"
#include "host/cli/cli.h"
#include "host/decode_options.h"  // parse_weight_formats
#include "host/error.h"
#include "host/interrupt.h"
#include "host/progress.h"
#include "host/sha256.h"
#include "host/text/tokenizer.h"

namespace gptoss::cli {
namespace {

namespace fs = std::filesystem;

struct ConvertArgs {
  std::string checkpoint;
  std::string output;
  std::string attn = "bf16";
  std::string lm_head = "bf16";
  std::string tokenizer;
  bool no_tokenizer = false;
  bool original = false;
  bool strict = false;
  bool force = false;
  bool quiet = false;
  bool dry_run = false;
  std::string shape;
  int64_t test_fail_after = -1;  // < 0: off
  int64_t test_free_bytes = -1;
  int64_t test_pause_after = -1;  // < 0: off
};

std::string gb(uint64_t n) { return fmt::format("{:.2f} GB", n / 1e9); }

// The tokenizer about to be embedded against the model: a vocabulary that differs is warned
// about (text prompts would fail on ids the model does not have, or print nothing for ids the
// tokenizer does not have). Synthetic test models with small vocabularies hit this on purpose.
void check_tokenizer_vocab(const conv::TokenizerBlob& blob, const ModelConfig& config) {
  const auto format = blob.format == archive::TokenizerFormat::kTiktoken ? tok::kBlobFormatTiktoken
                                                                         : tok::kBlobFormatHfJson;
  const tok::Tokenizer t = tok::Tokenizer::from_blob(format, blob.bytes);
  const std::string mismatch = vocab_mismatch(static_cast<int>(t.vocab_size()), config.vocab_size);
  if (mismatch.empty()) return;
  const bool larger = static_cast<int>(t.vocab_size()) > config.vocab_size;
  fmt::print(stderr, "warning: {} (tokenizer from {}): {}; convert with --tokenizer FILE matching "
             "the model, or --no-tokenizer\n",
             mismatch, blob.source,
             larger ? "text prompts (generate -p) will fail on ids the model lacks (--tokens works)"
                    : "generated ids the tokenizer lacks cannot be printed as text");
}

conv::ConvertOptions to_options(const ConvertArgs& a) {
  conv::ConvertOptions o;
  o.checkpoint = a.checkpoint;
  o.output = a.output;
  o.formats = parse_weight_formats(a.attn, a.lm_head);
  if (!a.tokenizer.empty()) o.tokenizer = fs::path(a.tokenizer);
  o.no_tokenizer = a.no_tokenizer;
  o.prefer_original = a.original;
  o.write.strict = a.strict;
  o.write.force = a.force;
  o.write.warn = [](const std::string& line) { fmt::print(stderr, "warning: {}\n", line); };
  if (a.test_free_bytes >= 0) o.write.free_bytes_override = uint64_t(a.test_free_bytes);
  if (a.test_fail_after >= 0) o.write.fail_after_bytes = uint64_t(a.test_fail_after);
  o.check_tokenizer = check_tokenizer_vocab;
  return o;
}

void print_plan(const std::string& source, const conv::ArchivePlan& plan,
                const conv::TokenizerBlob& tokenizer, const fs::path& output,
                std::optional<uint64_t> free_override) {
  const ModelConfig& c = plan.config;
  fmt::print("plan for {} (dry run: nothing is written)\n", source);
  fmt::print("  config:    {} layers, {} experts ({} per token), vocab {}, hidden {}\n",
             c.num_layers, c.num_experts, c.experts_per_token, c.vocab_size, c.hidden);
  fmt::print("  formats:   attention {}, lm head {}, experts {}\n",
             weight_format_name(plan.formats.attn), weight_format_name(plan.formats.lm_head),
             expert_format_name(plan.formats.experts));
  fmt::print("  tensors:   {} tensors, {} bytes ({})\n", plan.tensors.size(), plan.tensor_bytes,
             gb(plan.tensor_bytes));
  if (tokenizer.format == archive::TokenizerFormat::kNone) {
    fmt::print("  tokenizer: none\n");
  } else {
    fmt::print("  tokenizer: {}, {} bytes, from {}\n", tokenizer_format_name(tokenizer.format),
               tokenizer.bytes.size(), tokenizer.source);
  }
  const uint64_t overhead = plan.file_bytes - plan.tensor_bytes - plan.tokenizer_bytes;
  fmt::print("  archive:   {} bytes ({}): header + directory + 4 KiB alignment = {} bytes\n",
             plan.file_bytes, gb(plan.file_bytes), overhead);
  const fs::path dir = output.empty()             ? fs::path(".")
                       : output.has_parent_path() ? output.parent_path()
                                                  : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    fmt::print("  disk:      needs {}; output directory {} does not exist\n", gb(plan.file_bytes),
               dir.string());
    return;
  }
  const uint64_t free_bytes = free_override ? *free_override : conv::free_bytes_at(dir);
  fmt::print("  disk:      needs {} in {}, {} available: {}\n", gb(plan.file_bytes), dir.string(),
             gb(free_bytes), free_bytes >= plan.file_bytes ? "enough" : "NOT ENOUGH");
}

void run_dry_run(const ConvertArgs& a) {
  const conv::ConvertOptions o = to_options(a);
  ModelConfig config;
  fs::path tokenizer_json;
  std::string source;
  if (!a.shape.empty()) {
    if (!a.checkpoint.empty()) {
      throw Error("--shape and CKPT_DIR exclude each other", "give one of them");
    }
    config = ModelConfig::preset(a.shape);
    source = fmt::format("the {} shape", a.shape);
  } else if (fs::is_regular_file(a.checkpoint)) {
    // A config.json alone: plan without weights (e.g. before downloading them).
    std::ifstream in(a.checkpoint);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      throw Error(fmt::format("{} is not valid JSON", a.checkpoint),
                  "pass a checkpoint directory or its config.json");
    }
    config = ModelConfig::from_json(j, a.checkpoint);
    source = a.checkpoint;
  } else {
    const conv::Checkpoint ckpt = conv::Checkpoint::open(a.checkpoint, a.original);
    config = ckpt.config();
    tokenizer_json = ckpt.tokenizer_json();
    source = ckpt.dir().string();
  }
  const conv::TokenizerBlob tokenizer = conv::select_tokenizer(o, tokenizer_json);
  if (!tokenizer.bytes.empty()) check_tokenizer_vocab(tokenizer, config);
  const conv::ArchivePlan plan = conv::plan_archive(config, o.formats, tokenizer.bytes.size());
  print_plan(source, plan, tokenizer, o.output, o.write.free_bytes_override);
}

void run_convert(const ConvertArgs& a) {
  if (a.dry_run) return run_dry_run(a);
  if (!a.shape.empty()) {
    throw Error("--shape only plans (--dry-run); a conversion reads a checkpoint",
                "gptoss convert CKPT_DIR -o FILE.gptoss, or add --dry-run");
  }
  if (a.checkpoint.empty()) {
    throw Error("no checkpoint directory given", "gptoss convert CKPT_DIR -o FILE.gptoss");
  }
  if (a.output.empty()) throw Error("no output file given", "add -o FILE.gptoss");
  conv::ConvertOptions o = to_options(a);
  ProgressLine progress("convert", !a.quiet);
  bool paused = false;
  o.write.progress = [&](const conv::WriteProgress& p) {
    progress.update(p.bytes_done, p.bytes_total, p.seconds);
    // Test hook: hold the conversion mid-write (the temporary file exists) until a signal comes,
    // so a test can interrupt it from outside at a known point.
    if (a.test_pause_after >= 0 && !paused && p.bytes_done >= uint64_t(a.test_pause_after)) {
      paused = true;
      fmt::print(stderr, "test: paused after {} bytes\n", p.bytes_done);
      std::fflush(stderr);
      for (int i = 0; i < 6000 && StopSignals::pending() == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  };
  const conv::WriteResult r = conv::convert_checkpoint(o);
  progress.finish(r.bytes_copied, r.seconds);
  uint64_t overflow = 0;
  for (const auto& s : r.scale_overflows) overflow += s.count;
  if (!a.quiet) {
    fmt::print(
        stderr, "wrote {} ({} bytes){}\n", a.output, r.file_bytes,
        overflow ? fmt::format(", {} MXFP4 scale bytes in 253..255 (see warnings)", overflow) : "");
  }
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto args = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a gpt-oss checkpoint (HF or original/ layout) into one .gptoss archive");
  cmd->add_option("CKPT_DIR", args->checkpoint,
                  "checkpoint directory (for --dry-run also a config.json)");
  cmd->add_option("-o,--out", args->output, "the archive to write (FILE.gptoss)");
  cmd->add_option("--attn", args->attn, "attention (qkv, out) weight format: bf16 | fp8 (E4M3, one scale per row)")
      ->capture_default_str();
  cmd->add_option("--lm-head", args->lm_head,
                  "LM head weight format: bf16 | fp8 (E4M3, one scale per row)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer,
                  "tokenizer file to embed (o200k_base.tiktoken or tokenizer.json; default: the "
                  "bundled o200k_base ranks)");
  cmd->add_flag("--no-tokenizer", args->no_tokenizer, "embed no tokenizer");
  cmd->add_flag("--original", args->original,
                "read the original/ layout even when the HF files are present");
  cmd->add_flag("--strict", args->strict,
                "treat MXFP4 scale bytes 253-255 (BF16 overflow on dequantization) as errors");
  cmd->add_flag("--force", args->force, "replace an existing output file");
  cmd->add_flag("-q,--quiet", args->quiet, "no progress or summary on stderr");
  cmd->add_flag("--dry-run", args->dry_run,
                "print the plan (tensors, sizes, disk space) without writing anything");
  cmd->add_option("--shape", args->shape, "with --dry-run: plan a preset shape (tiny|20b|120b)");
  // Test hooks (hidden): inject a failure after N bytes; pretend N bytes are free; wait for a
  // signal after N bytes.
  cmd->add_option("--test-fail-after", args->test_fail_after)->group("");
  cmd->add_option("--test-free-bytes", args->test_free_bytes)->group("");
  cmd->add_option("--test-pause-after", args->test_pause_after)->group("");
  cmd->callback([args] { run_convert(*args); });
}

}  // namespace gptoss::cli
