// test_faults.cpp — faults during generate and convert, through the binary in a
// child process (tag [faults]; docs/RELIABILITY.md lists them): a decode step
// that fails like a GPU kernel fault or out-of-memory prints nothing of that
// step and ends with a clear message; SIGINT during generate completes the
// output and exits with 130; SIGINT during convert and a disk that fills up
// (RLIMIT_FSIZE with SIGXFSZ ignored, so writes fail with EFBIG) leave neither
// an archive nor a temporary file behind.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "converter/convert.h"
#include "converter/synth.h"
#include "host/archive/archive.h"
#include "host/reference/forward.h"
#include "tests/temp_dir.h"

using namespace gptoss;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path &p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The binary in a child process, stdout/stderr to files in `dir`.
class Child {
public:
  struct Options {
    std::optional<rlim_t> file_size_limit; // RLIMIT_FSIZE, with SIGXFSZ ignored
  };
  Child(const std::vector<std::string> &args, const fs::path &dir,
        const Options &opt = {}) {
    // Fresh log files per child, created before the fork: never a previous
    // child's output.
    static int counter = 0;
    const int n = counter++;
    out_ = dir / fmt::format("child{}.stdout", n);
    err_ = dir / fmt::format("child{}.stderr", n);
    std::ofstream(out_).close();
    std::ofstream(err_).close();
    std::vector<std::string> argv_s = {GPTOSS_BINARY};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      const int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      if (opt.file_size_limit) {
        ::signal(SIGXFSZ,
                 SIG_IGN); // kept across exec: writes fail with EFBIG instead
        const rlimit lim{*opt.file_size_limit, *opt.file_size_limit};
        ::setrlimit(RLIMIT_FSIZE, &lim);
      }
      std::vector<char *> argv;
      for (std::string &s : argv_s)
        argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0 && status_ < 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // Waits (up to `seconds`) until `pred(stdout, stderr)` holds; false on
  // timeout or exit.
  template <typename Pred>
  bool wait_for_output(Pred pred, double seconds = 120) {
    const auto end = std::chrono::steady_clock::now() +
                     std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (pred(slurp(out_), slurp(err_)))
        return true;
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        status_ = st;
        return pred(slurp(out_), slurp(err_));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // The exit code (128 + signal when killed by one).
  int wait() {
    if (status_ < 0)
      ::waitpid(pid_, &status_, 0);
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }

private:
  fs::path out_, err_;
  pid_t pid_ = -1;
  int status_ = -1;
};

// A checkpoint with 32-wide layers (a few hundred KB): convert and generate run
// in moments.
ModelConfig mini_config() {
  ModelConfig c = ModelConfig::preset("tiny");
  c.num_layers = 2;
  c.num_experts = 4;
  c.experts_per_token = 2;
  c.vocab_size = 512;
  c.hidden = 64;
  c.intermediate = 64;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.layer_sliding = default_layer_pattern(c.num_layers);
  c.validate();
  return c;
}

struct MiniCheckpoint {
  test::TempDir dir;
  fs::path ckpt = dir.path / "ckpt";
  fs::path archive = dir.path / "mini.gptoss";
  MiniCheckpoint() {
    conv::write_synth_checkpoint(ckpt, mini_config(), /*seed=*/5, {});
  }
  void convert() const {
    conv::ConvertOptions co;
    co.checkpoint = ckpt;
    co.output = archive;
    co.no_tokenizer = true;
    co.write.handle_signals = false;
    conv::convert_checkpoint(co);
  }
  // Files in the output directory other than the checkpoint and the child's
  // logs.
  std::vector<std::string> leftovers() const {
    std::vector<std::string> names;
    for (const auto &e : fs::directory_iterator(dir.path)) {
      const std::string n = e.path().filename().string();
      if (n != "ckpt" && !n.starts_with("child"))
        names.push_back(n);
    }
    return names;
  }
};

// The reference's greedy ids after prompt 1,2,3 (the expected stdout of
// generate --tokens).
std::vector<int> reference_ids(const fs::path &archive, int n) {
  const MappedArchive a = MappedArchive::open(archive);
  const ModelWeights w = bind_weights(a.config(), a.lookup());
  ref::Reference r(w, {gptoss::ExpertMode::kBf16, 1, n + 4});
  int next = 0;
  for (int t : {1, 2, 3})
    next = r.step(t);
  std::vector<int> ids = {next};
  while (int(ids.size()) < n)
    ids.push_back(next = r.step(next));
  return ids;
}

std::string join(const std::vector<int> &ids, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i)
    s += fmt::format("{}{}", i ? "," : "", ids[i]);
  return s;
}

} // namespace

TEST_CASE(
    "generate: a failed decode step prints nothing of that step and says so",
    "[faults]") {
  MiniCheckpoint m;
  m.convert();
  const std::vector<int> want = reference_ids(m.archive, 8);
  for (const char *kind : {"kernel", "oom"}) {
    // Positions 0..2 are the prompt; position 5 computes the 4th generated
    // token.
    Child c({"generate", "-m", m.archive.string(), "--backend", "cpu",
             "--tokens", "1,2,3", "-n", "8", "--test-fault",
             fmt::format("{}:5", kind)},
            m.dir.path);
    CHECK(c.wait() == 1);
    INFO(c.err());
    CHECK(c.out() ==
          join(want, 3) + "\n"); // exactly the tokens before the failed step
    CHECK_THAT(
        c.err(),
        Catch::Contains("decoding stopped at position 5") &&
            Catch::Contains("the 3 tokens printed before it are complete") &&
            Catch::Contains("hint:"));
    CHECK_THAT(c.err(), Catch::Contains(std::string(kind) == "oom"
                                            ? "out of memory"
                                            : "illegal memory access"));
  }
  // A fault during the prompt: no output at all.
  Child c({"generate", "-m", m.archive.string(), "--backend", "cpu", "--tokens",
           "1,2,3", "-n", "8", "--test-fault", "kernel:1"},
          m.dir.path);
  CHECK(c.wait() == 1);
  CHECK(c.out().empty());
  CHECK_THAT(c.err(),
             Catch::Contains("position 1") && Catch::Contains("the 0 tokens"));
  // A real hang (a grid barrier giving up) needs the kernel: refused on the CPU before any work;
  // the GPU side is tests/gpu_test_megakernel.cpp ("[hang]").
  Child h({"generate", "-m", m.archive.string(), "--backend", "cpu", "--tokens",
           "1,2,3", "-n", "8", "--test-fault", "hang:1"},
          m.dir.path);
  CHECK(h.wait() == 1);
  CHECK(h.out().empty());
  CHECK_THAT(h.err(), Catch::Contains("--test-fault hang needs the CUDA backend"));
  Child bad({"generate", "-m", m.archive.string(), "--backend", "cpu", "--tokens",
             "1,2,3", "-n", "8", "--test-fault", "hang"},
            m.dir.path);
  CHECK(bad.wait() == 1);
  CHECK_THAT(bad.err(), Catch::Contains("expected kernel:POS, oom:POS or hang:POS"));
}

TEST_CASE(
    "generate: SIGINT stops between tokens, completes the output, exits 130",
    "[faults]") {
  MiniCheckpoint m;
  m.convert();
  Child c({"generate", "-m", m.archive.string(), "--backend", "cpu",
           "--threads", "1", "--tokens", "1,2,3", "-n", "100000",
           "--max-context", "131072"},
          m.dir.path);
  // Interrupt once a few tokens are out.
  REQUIRE(c.wait_for_output([](const std::string &out, const std::string &) {
    return std::count(out.begin(), out.end(), ',') >= 3;
  }));
  c.signal(SIGINT);
  CHECK(c.wait() == 130);
  const std::string out = c.out();
  INFO(c.err());
  CHECK_THAT(c.err(), Catch::Contains("interrupted by SIGINT after"));
  REQUIRE(!out.empty());
  CHECK(out.back() == '\n'); // the output was completed
  // Every printed id is the reference's.
  const size_t n = size_t(std::count(out.begin(), out.end(), ',')) + 1;
  CHECK(out == join(reference_ids(m.archive, int(n)), n) + "\n");
}

TEST_CASE("convert: SIGINT mid-write leaves no archive and no temporary file",
          "[faults]") {
  MiniCheckpoint m;
  for (int sig : {SIGINT, SIGTERM}) {
    Child c({"convert", m.ckpt.string(), "-o", m.archive.string(),
             "--no-tokenizer", "--test-pause-after", "1"},
            m.dir.path);
    REQUIRE(c.wait_for_output([](const std::string &, const std::string &err) {
      return err.find("test: paused") != std::string::npos;
    }));
    // The temporary file exists at this point.
    CHECK(m.leftovers().size() == 1);
    c.signal(sig);
    CHECK(c.wait() == 128 + sig);
    CHECK_THAT(c.err(), Catch::Contains("the partial archive was removed"));
    CHECK(m.leftovers().empty());
  }
}

TEST_CASE(
    "convert: a disk that fills up (EFBIG) is reported and nothing survives",
    "[faults]") {
  MiniCheckpoint m;
  Child c(
      {"convert", m.ckpt.string(), "-o", m.archive.string(), "--no-tokenizer"},
      m.dir.path, {.file_size_limit = 16 * 1024});
  CHECK(c.wait() == 1);
  INFO(c.err());
  CHECK_THAT(c.err(),
             Catch::Contains("File too large") && Catch::Contains("ulimit -f"));
  CHECK(m.leftovers().empty());
  // With room, the same conversion succeeds.
  Child ok({"convert", m.ckpt.string(), "-o", m.archive.string(),
            "--no-tokenizer", "-q"},
           m.dir.path);
  CHECK(ok.wait() == 0);
  CHECK(fs::exists(m.archive));
}
