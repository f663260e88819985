// test_hardening.cpp — issue 22's cases, through the binary (tag [hardening]; docs/RELIABILITY.md
// lists them): the checks every load runs (header checksum first, tokenizer checksum, sampled
// tensor checksums), stale temporary files of a killed convert, prompt and argument checks,
// exit code 2 for command lines that do not parse, synth's --force rule, a tokenizer whose
// vocabulary differs from the model's, and documents referenced from the docs and help text.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "converter/synth.h"
#include "host/archive/archive.h"
#include "host/archive/archive_format.h"
#include "tests/cli_support.h"
#include "tests/temp_dir.h"

using namespace gptoss;
namespace fs = std::filesystem;
namespace ar = gptoss::archive;
using Bytes = std::vector<std::byte>;
using test::run_gptoss;

namespace {

Bytes read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string s{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  Bytes b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

void write_bytes(const fs::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(out);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// 64-wide layers, 2 layers, 4 experts; vocabulary 2048 by default, so embed.weight and
// lm_head.weight are 256 KiB (four sample windows): convert and generate run in moments.
ModelConfig mini_config(int vocab = 2048) {
  ModelConfig c = ModelConfig::preset("tiny");
  c.num_layers = 2;
  c.num_experts = 4;
  c.experts_per_token = 2;
  c.vocab_size = vocab;
  c.hidden = 64;
  c.intermediate = 64;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.layer_sliding = default_layer_pattern(c.num_layers);
  c.validate();
  return c;
}

// A mini checkpoint converted through the command line with the default (bundled) tokenizer.
struct Mini {
  test::TempDir dir;
  fs::path ckpt = dir.path / "ckpt";
  fs::path archive = dir.path / "mini.gptoss";
  std::string convert_err;
  explicit Mini(int vocab = 2048) {
    conv::write_synth_checkpoint(ckpt, mini_config(vocab), /*seed=*/11, {});
    std::string out;
    REQUIRE(run_gptoss(fmt::format("convert {} -o {} -q", ckpt.string(), archive.string()),
                       dir.path, &out, &convert_err) == 0);
  }
  // `generate` on `file`: 2 ids from a 2-token prompt on the CPU.
  int generate(const fs::path& file, std::string* err) const {
    std::string out;
    return run_gptoss(
        fmt::format("generate -m {} --backend cpu --tokens 1,2 -n 2", file.string()), dir.path,
        &out, err);
  }
};

ar::Header header_of(const Bytes& b) {
  ar::Header h;
  std::memcpy(&h, b.data(), sizeof(h));
  return h;
}

// Rewrites the directory and header checksums after a deliberate edit of either.
void reseal(Bytes& b) {
  ar::Header h = header_of(b);
  h.dir_xxh64 = XXH64(b.data() + h.dir_offset, uint64_t{h.num_tensors} * ar::kEntryBytes, 0);
  h.header_xxh64 = XXH64(&h, offsetof(ar::Header, header_xxh64), 0);
  std::memcpy(b.data(), &h, sizeof(h));
}

// A child `gptoss` process (argv, no shell), stdout and stderr to files in `dir`.
struct Spawned {
  pid_t pid = -1;
  fs::path err;
  Spawned(const std::vector<std::string>& args, const fs::path& dir) {
    err = dir / "spawned.stderr";
    std::ofstream(err).close();
    std::vector<std::string> argv_s = {GPTOSS_BINARY};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int n = ::open("/dev/null", O_WRONLY);
      ::dup2(n, 1);
      ::dup2(e, 2);
      std::vector<char*> argv;
      for (std::string& s : argv_s) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  bool wait_for_stderr(const std::string& what, double seconds = 120) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (slurp(err).find(what) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  int kill_and_wait(int sig) {
    ::kill(pid, sig);
    int st = 0;
    ::waitpid(pid, &st, 0);
    pid = -1;
    return WIFSIGNALED(st) ? WTERMSIG(st) : -1;
  }
  ~Spawned() {
    if (pid > 0) kill_and_wait(SIGKILL);
  }
};

std::vector<std::string> partial_files(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.find(".partial-") != std::string::npos) names.push_back(n);
  }
  return names;
}

}  // namespace

// ---- the checks of every load ------------------------------------------------------------

TEST_CASE("sampled checksum: streaming in any pieces equals the head+tail XXH64", "[hardening]") {
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t S = ar::kSampleBytes;
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, S - 1, S, S + 1, 2 * S - 1, 2 * S, 2 * S + 1,
                     3 * S + 12345, 1 + rng() % (5 * S)}) {
    INFO("blob of " << n << " bytes");
    Bytes blob(n);
    for (auto& x : blob) x = std::byte(rng());
    // Independent reference: the bytes [0, min(n, S)) then [max(S, n - S), n), concatenated.
    Bytes cat(blob.begin(), blob.begin() + static_cast<ptrdiff_t>(std::min(n, S)));
    const uint64_t tail = std::max(S, n > S ? n - S : 0);
    if (tail < n) cat.insert(cat.end(), blob.begin() + static_cast<ptrdiff_t>(tail), blob.end());
    const auto want = static_cast<uint32_t>(XXH64(cat.data(), cat.size(), 0));
    CHECK(SampleHasher::of(blob) == want);
    SampleHasher h(n);
    for (uint64_t pos = 0; pos < n;) {
      const uint64_t k = std::min<uint64_t>(n - pos, 1 + rng() % (S / 3));
      h.update(pos, blob.data() + pos, k);
      pos += k;
    }
    CHECK(h.digest32() == want);
  }
}

TEST_CASE("every load refuses a corrupted tokenizer, sampled weights or header", "[hardening]") {
  Mini m;
  std::string err;
  REQUIRE(m.generate(m.archive, &err) == 0);
  const Bytes clean = read_bytes(m.archive);
  const MappedArchive a = MappedArchive::open(m.archive);
  REQUIRE(a.has_sampled_checksums());
  const fs::path bad = m.dir.path / "bad.gptoss";
  auto flipped = [&](uint64_t offset) {
    Bytes b = clean;
    b[offset] ^= std::byte{0x20};
    write_bytes(bad, b);
  };

  // One byte of the embedded tokenizer (a rank): refused, where before it tokenized differently.
  flipped(header_of(clean).tokenizer_offset + a.tokenizer_blob().size() / 2);
  CHECK(m.generate(bad, &err) == 1);
  CHECK_THAT(err, Catch::Contains("embedded tokenizer is corrupted") &&
                      Catch::Contains("hint:") && Catch::Contains("--verify"));

  // Bytes inside the first or the last 64 KiB of a tensor: the sampled checksum names it.
  const ArchiveTensor& embed = *a.find("embed.weight");
  REQUIRE(embed.num_bytes == 4 * ar::kSampleBytes);
  for (uint64_t at : {uint64_t{0}, ar::kSampleBytes - 1, embed.num_bytes - ar::kSampleBytes,
                      embed.num_bytes - 1}) {
    INFO("byte " << at << " of embed.weight");
    flipped(embed.offset + at);
    CHECK(m.generate(bad, &err) == 1);
    CHECK_THAT(err, Catch::Contains("sampled checksum mismatch in 1 tensor (embed.weight)"));
  }
  // Between the windows the quick check cannot see; info --verify does.
  flipped(embed.offset + ar::kSampleBytes);
  CHECK(m.generate(bad, &err) == 0);
  std::string out;
  CHECK(run_gptoss("info -q --verify " + bad.string(), m.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("1 checksum mismatch: embed.weight"));

  // A flipped bit in the version field is corruption, not another format version.
  flipped(offsetof(ar::Header, format_version));
  CHECK(m.generate(bad, &err) == 1);
  CHECK_THAT(err, Catch::Contains("header checksum mismatch"));
  CHECK_THAT(err, !Catch::Contains("format version"));
  // So is a flipped byte of the config record (it lies inside the header checksum).
  flipped(offsetof(ar::Header, config) + 12);
  CHECK(m.generate(bad, &err) == 1);
  CHECK_THAT(err, Catch::Contains("header checksum mismatch"));

  // An archive from before the sampled checksums (flags 0, zero fields) still loads; info says
  // that its quick check covers the tokenizer only.
  Bytes old = clean;
  ar::Header h = header_of(old);
  h.flags = 0;
  std::memcpy(old.data(), &h, sizeof(h));
  for (uint32_t i = 0; i < h.num_tensors; ++i) {
    std::byte* e = old.data() + h.dir_offset + uint64_t{i} * ar::kEntryBytes;
    std::memset(e + offsetof(ar::TensorEntry, sample_xxh32), 0, 4);
  }
  reseal(old);
  write_bytes(bad, old);
  CHECK(m.generate(bad, &err) == 0);
  CHECK(run_gptoss("info " + bad.string(), m.dir.path, &out, &err) == 0);
  CHECK_THAT(out, Catch::Contains("quick check: ok") &&
                      Catch::Contains("predates sampled tensor checksums"));
  // The current archive: info reports the check and its cost.
  CHECK(run_gptoss("info --json " + m.archive.string(), m.dir.path, &out, &err) == 0);
  CHECK_THAT(out, Catch::Contains("\"quick_check\"") && Catch::Contains("\"sampled_checksums\": true"));
}

// ---- convert -------------------------------------------------------------------------------

TEST_CASE("convert removes the temporary file a killed conversion left", "[hardening]") {
  Mini m;
  const fs::path out = m.dir.path / "again.gptoss";
  {
    Spawned c({"convert", m.ckpt.string(), "-o", out.string(), "--no-tokenizer",
               "--test-pause-after", "1"},
              m.dir.path);
    REQUIRE(c.wait_for_stderr("test: paused"));
    CHECK(c.kill_and_wait(SIGKILL) == SIGKILL);  // no cleanup can run
  }
  REQUIRE(partial_files(m.dir.path).size() == 1);
  const std::string stale = partial_files(m.dir.path).front();
  std::string text, err;
  REQUIRE(run_gptoss(fmt::format("convert {} -o {} --no-tokenizer -q", m.ckpt.string(),
                                 out.string()),
                     m.dir.path, &text, &err) == 0);
  CHECK_THAT(err, Catch::Contains("warning: removed") && Catch::Contains(stale) &&
                      Catch::Contains("did not finish"));
  CHECK(partial_files(m.dir.path).empty());
  CHECK(MappedArchive::open(out).verify().ok());

  // A temporary file a live conversion holds (its lock) is left alone, with a warning.
  const fs::path live = m.dir.path / "third.gptoss.partial-AbC123";
  std::ofstream(live).close();
  const int fd = ::open(live.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
  REQUIRE(run_gptoss(fmt::format("convert {} -o {} --no-tokenizer -q", m.ckpt.string(),
                                 (m.dir.path / "third.gptoss").string()),
                     m.dir.path, &text, &err) == 0);
  CHECK_THAT(err, Catch::Contains("being written by another running conversion"));
  CHECK(fs::exists(live));
  ::close(fd);
  // Other outputs' temporary files are never touched.
  CHECK(partial_files(m.dir.path) == std::vector<std::string>{live.filename().string()});
}

TEST_CASE("a tokenizer whose vocabulary differs from the model's: convert warns, generate names it",
          "[hardening]") {
  Mini m;  // vocabulary 2048, the bundled o200k tokenizer (201088 ids)
  CHECK_THAT(m.convert_err,
             Catch::Contains("warning: the tokenizer has 201088 token ids but the model's "
                             "vocabulary is 2048") &&
                 Catch::Contains("--no-tokenizer"));
  std::string out, err;
  CHECK(run_gptoss(fmt::format("convert --dry-run {}", m.ckpt.string()), m.dir.path, &out,
                   &err) == 0);
  CHECK_THAT(err, Catch::Contains("201088 token ids"));
  CHECK(run_gptoss("generate --backend cpu -n 1 -p hello -m " + m.archive.string(), m.dir.path,
                   &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("the tokenizer has 201088 token ids but the model's vocabulary "
                                  "is 2048") &&
                      Catch::Contains("--tokens with ids below 2048"));
  // Without a tokenizer no warning.
  CHECK(run_gptoss(fmt::format("convert {} -o {} -q --no-tokenizer", m.ckpt.string(),
                               (m.dir.path / "nt.gptoss").string()),
                   m.dir.path, &out, &err) == 0);
  CHECK(err.empty());
}

// ---- generate's prompt and arguments -------------------------------------------------------

TEST_CASE("generate: empty prompt, bad threads or reasoning, invalid UTF-8", "[hardening]") {
  Mini m;
  const std::string base = "generate --backend cpu -m " + m.archive.string() + " ";
  std::string out, err;
  CHECK(run_gptoss(base + "-p ''", m.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("error: -p/--prompt is empty"));
  CHECK_THAT(err, !Catch::Contains("exactly one of"));
  CHECK(run_gptoss(base + "--tokens ''", m.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("--tokens is empty"));
  CHECK(run_gptoss(base + "--tokens 1 --threads -1", m.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("--threads -1: must be >= 0"));
  CHECK(run_gptoss(base + "--tokens 1 --reasoning extreme", m.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("unknown reasoning effort 'extreme'") &&
                      Catch::Contains("low, medium or high"));
  CHECK(run_gptoss(base + "--tokens 1 -n 1 --reasoning high --date 2025-01-01", m.dir.path, &out,
                   &err) == 0);
  CHECK_THAT(err, Catch::Contains("warning: --reasoning applies to text prompts (-p) only") &&
                      Catch::Contains("warning: --date applies"));
  // Invalid UTF-8 (0xff, 0xfe: two maximal invalid subparts) is warned about before the model
  // runs; this archive's tokenizer then fails on its vocabulary, which is named.
  CHECK(run_gptoss(base + "-n 1 -p \"$(printf 'a\\377\\376b')\"", m.dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("warning: the prompt (-p) is not valid UTF-8: 2 invalid byte "
                                  "sequences replaced by U+FFFD"));
  // Valid UTF-8 gets no warning.
  CHECK(run_gptoss(base + "-n 1 -p \"$(printf 'caf\\303\\251')\"", m.dir.path, &out, &err) == 1);
  CHECK_THAT(err, !Catch::Contains("UTF-8"));
}

TEST_CASE("generate -p with invalid UTF-8 warns and still generates", "[hardening]") {
  // The model's vocabulary is o200k_harmony's (201088 ids, 51 MB of embedding and LM head at
  // width 64): the bundled tokenizer matches it, so convert does not warn and -p runs.
  Mini m(201088);
  CHECK_THAT(m.convert_err, !Catch::Contains("warning"));
  std::string out, err;
  const std::string base = "generate --backend cpu -n 2 -m " + m.archive.string() + " ";
  REQUIRE(run_gptoss(base + "--raw -p \"$(printf 'x\\200y')\"", m.dir.path, &out, &err) == 0);
  CHECK_THAT(err, Catch::Contains("warning: the prompt (-p) is not valid UTF-8: 1 invalid byte "
                                  "sequence replaced by U+FFFD"));
  REQUIRE(run_gptoss(base + "-p hello --developer \"$(printf '\\355\\240\\200')\"", m.dir.path,
                     &out, &err) == 0);
  CHECK_THAT(err, Catch::Contains("warning: --developer is not valid UTF-8"));
  CHECK_THAT(err, !Catch::Contains("the prompt (-p) is not valid"));
}

// ---- exit codes ----------------------------------------------------------------------------

TEST_CASE("a command line that does not parse exits 2 with error: and a usage hint",
          "[hardening]") {
  test::TempDir dir;
  std::string out, err;
  struct Case {
    const char* args;
    const char* hint;  // the --help the hint names
  };
  for (const Case& c : {Case{"", "gptoss --help"}, Case{"frobnicate", "gptoss --help"},
                        Case{"generate --bogus", "gptoss generate --help"},
                        Case{"generate -n abc --tokens 1", "gptoss generate --help"},
                        Case{"generate --backend gpu --tokens 1", "gptoss generate --help"},
                        Case{"synth --shape tiny", "gptoss synth --help"},
                        Case{"info", "gptoss info --help"},
                        Case{"bench tpot --context x", "gptoss bench tpot --help"}}) {
    INFO("gptoss " << c.args);
    CHECK(run_gptoss(c.args, dir.path, &out, &err) == 2);
    CHECK(err.starts_with("error: "));
    CHECK_THAT(err, Catch::Contains(fmt::format("hint: run '{}' for usage", c.hint)));
  }
  CHECK(run_gptoss("--help", dir.path, &out, &err) == 0);
  CHECK(run_gptoss("--version", dir.path, &out, &err) == 0);
  CHECK(run_gptoss("generate --help", dir.path, &out, &err) == 0);
  // bench tpot's help states its defaults and that it needs a GPU.
  CHECK(run_gptoss("bench tpot --help", dir.path, &out, &err) == 0);
  CHECK_THAT(out, Catch::Contains("Needs a GPU") && Catch::Contains("--context 1024") &&
                      Catch::Contains("-n 128") && Catch::Contains("--warmup 16"));
}

// ---- synth ----------------------------------------------------------------------------------

TEST_CASE("synth -o into an existing checkpoint needs --force, as convert does", "[hardening]") {
  test::TempDir dir;
  const fs::path ck = dir.path / "ck";
  const std::string args =
      fmt::format("synth --shape tiny --layers 1 --experts 2 --vocab 64 -q -o {}", ck.string());
  std::string out, err;
  REQUIRE(run_gptoss(args, dir.path, &out, &err) == 0);
  fs::path shard;
  for (const auto& e : fs::directory_iterator(ck)) {
    if (e.path().extension() == ".safetensors") shard = e.path();
  }
  REQUIRE(!shard.empty());
  const Bytes before = read_bytes(shard);
  REQUIRE(before.size() > 1000);
  CHECK(run_gptoss(args + " --seed 9", dir.path, &out, &err) == 1);
  CHECK_THAT(err, Catch::Contains("already holds a checkpoint") && Catch::Contains("--force"));
  CHECK(read_bytes(shard) == before);  // untouched
  CHECK(run_gptoss(args + " --seed 9 --force", dir.path, &out, &err) == 0);
  CHECK(read_bytes(shard) != before);
  // An empty existing directory is fine.
  fs::create_directories(dir.path / "empty");
  CHECK(run_gptoss(fmt::format("synth --shape tiny --layers 1 --experts 2 --vocab 64 -q -o {}",
                               (dir.path / "empty").string()),
                   dir.path, &out, &err) == 0);
}

// ---- documents --------------------------------------------------------------------------------

TEST_CASE("every document the docs and help text point to is in the repository", "[hardening]") {
  const fs::path root = GPTOSS_SOURCE_DIR;
  // Texts a user reads: README, docs/*.md, every subcommand's --help, and the string literals of
  // the sources (messages and hints).
  std::vector<std::pair<std::string, std::string>> texts;  // (where, text)
  texts.emplace_back("README.md", slurp(root / "README.md"));
  for (const auto& e : fs::directory_iterator(root / "docs")) {
    if (e.path().extension() == ".md") texts.emplace_back(e.path().string(), slurp(e.path()));
  }
  test::TempDir dir;
  for (const char* cmd : {"", "synth", "convert", "info", "generate", "tokenize", "detokenize",
                          "bench", "bench tpot", "bench sweep", "bench load"}) {
    std::string out, err;
    REQUIRE(run_gptoss(fmt::format("{} --help", cmd), dir.path, &out, &err) == 0);
    texts.emplace_back(fmt::format("gptoss {} --help", cmd), out);
  }
  const std::regex literal(R"re("(?:[^"\\\n]|\\.)*")re");
  for (const char* sub : {"host", "converter", "bench"}) {
    for (const auto& e : fs::recursive_directory_iterator(root / sub)) {
      const std::string ext = e.path().extension().string();
      if (ext != ".cpp" && ext != ".h" && ext != ".cu" && ext != ".cuh") continue;
      const std::string src = slurp(e.path());
      std::string lits;
      for (std::sregex_iterator it(src.begin(), src.end(), literal), end; it != end; ++it) {
        lits += it->str() + "\n";
      }
      texts.emplace_back(e.path().string() + " (string literals)", lits);
    }
  }
  // Any name.md, with or without a directory: it must exist at that path, or under docs/ when
  // named bare (the docs refer to each other by bare name).
  const std::regex md(R"re(((?:\.\./)*[A-Za-z0-9_./-]*[A-Za-z0-9_-]+\.md)\b)re");
  size_t checked = 0;
  for (const auto& [where, text] : texts) {
    for (std::sregex_iterator it(text.begin(), text.end(), md), end; it != end; ++it) {
      const std::string ref = (*it)[1].str();
      INFO(where << " refers to " << ref);
      const bool found = (fs::exists(root / ref) && !ref.starts_with("../")) ||
                         fs::exists(root / "docs" / ref) ||
                         fs::exists(root / "docs" / fs::path(ref).filename());
      CHECK(found);
      ++checked;
    }
  }
  CHECK(checked > 20);  // the scan sees the references (README alone names a dozen)
}
