// cli_support.h — what the tests that drive the `gptoss` binary share: running it with stdout and
// stderr captured, and a small converted archive (one layer, 4 experts, vocabulary 512, real widths:
// about 110 MB; a few decode steps a second on the CPU reference). Needs GPTOSS_BINARY (test_cpu).
#pragma once

#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "converter/convert.h"
#include "converter/synth.h"
#include "host/model_config.h"
#include "tests/temp_dir.h"

namespace gptoss::test {

// Runs the binary with `args` in a shell; stdout and stderr go to separate strings (through files
// in `dir`). Returns the exit code (-1 when it did not exit normally).
inline int run_gptoss(const std::string& args, const std::filesystem::path& dir, std::string* out,
                      std::string* err) {
  const std::filesystem::path out_file = dir / "stdout.txt", err_file = dir / "stderr.txt";
  const std::string cmd = fmt::format("{} {} > {} 2> {}", GPTOSS_BINARY, args, out_file.string(),
                                      err_file.string());
  const int status = std::system(cmd.c_str());
  auto slurp = [](const std::filesystem::path& p) {
    std::string s;
    if (FILE* f = std::fopen(p.c_str(), "rb")) {
      char buf[4096];
      while (size_t n = std::fread(buf, 1, sizeof buf, f)) s.append(buf, n);
      std::fclose(f);
    }
    return s;
  };
  *out = slurp(out_file);
  *err = slurp(err_file);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A synthetic checkpoint of that shape, converted to `path` (without a tokenizer) in a temporary
// directory that goes with the object.
struct SmallArchive {
  TempDir dir;
  ModelConfig config = conv::synth_config("tiny", /*layers=*/1, /*experts=*/4, /*vocab=*/512);
  std::filesystem::path path = dir.path / "small.gptoss";
  explicit SmallArchive(uint64_t seed = 3) {
    conv::SynthWriteOptions so;
    conv::write_synth_checkpoint(dir.path / "ckpt", config, seed, so);
    conv::ConvertOptions co;
    co.checkpoint = dir.path / "ckpt";
    co.output = path;
    co.no_tokenizer = true;
    co.write.handle_signals = false;
    conv::convert_checkpoint(co);
    std::filesystem::remove_all(dir.path / "ckpt");
  }
};

}  // namespace gptoss::test
