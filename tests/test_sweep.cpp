// test_sweep.cpp — `gptoss bench sweep` (label cpu): the ISL:OSL parser, bad requests refused
// before any long work with a message naming the problem, and a real run on the CPU backend whose
// CSV and JSON carry one row per pair with consistent numbers.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/sweep.h"
#include "host/error.h"
#include "tests/cli_support.h"
#include "tests/temp_dir.h"

using namespace gptoss;
namespace fs = std::filesystem;

using test::run_gptoss;
using test::SmallArchive;

TEST_CASE("sweep: ISL:OSL pairs are parsed, bad ones named", "[sweep]") {
  const std::vector<bench::SweepPair> p = bench::parse_sweep_pairs("128:128,1024:1,7:3");
  REQUIRE(p.size() == 3);
  CHECK(p[0].isl == 128);
  CHECK(p[0].osl == 128);
  CHECK(p[1].isl == 1024);
  CHECK(p[1].osl == 1);
  CHECK(p[2].isl == 7);
  CHECK(p[2].osl == 3);
  CHECK_THROWS_WITH(bench::parse_sweep_pairs("128"), Catch::Contains("'128' has no ':'"));
  CHECK_THROWS_WITH(bench::parse_sweep_pairs("128:0"), Catch::Contains("output length '0'"));
  CHECK_THROWS_WITH(bench::parse_sweep_pairs("0:4"), Catch::Contains("input length '0'"));
  CHECK_THROWS_WITH(bench::parse_sweep_pairs("-3:4"), Catch::Contains("not a positive integer"));
  CHECK_THROWS_WITH(bench::parse_sweep_pairs("12:4x"), Catch::Contains("'4x'"));
  CHECK_THROWS_WITH(bench::parse_sweep_pairs("128:128,"), Catch::Contains("'' has no ':'"));
  CHECK_THROWS_WITH(bench::parse_sweep_pairs(""), Catch::Contains("has no ':'"));
}

TEST_CASE("sweep: bad requests are refused before any work, naming the problem", "[sweep]") {
  test::TempDir dir;
  std::string out, err, all_err;
  const std::string base = "bench sweep --synthetic 20b --backend cpu ";
  CHECK(run_gptoss(base + "--pairs 128", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("'128' has no ':'"));
  all_err += err;
  CHECK(run_gptoss(base + "--pairs 130000:2000", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("beyond the model's context of 131072"));
  CHECK(run_gptoss(base + "--pairs 8:8 --repeats 0", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("--repeats 0"));
  CHECK(run_gptoss(base + "--pairs 8:8 --csv " + (dir.path / "no" / "such" / "x.csv").string(),
                   dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("cannot write --csv"));
  CHECK(run_gptoss(base + "--pairs 8:8 --plot " + (dir.path / "x.png").string(), dir.path, &out,
                   &err) != 0);
  CHECK_THAT(err, Catch::Contains("--plot needs --csv"));
  CHECK(run_gptoss(base + "--pairs 8:8 --experts fp4", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("--experts"));
  CHECK(run_gptoss("bench sweep --pairs 8:8", dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("exactly one of -m FILE and --synthetic SHAPE"));
  all_err += err;
  CHECK(run_gptoss(base + "--pairs 8:8 --text " + (dir.path / "missing.txt").string(), dir.path,
                   &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("cannot read --text"));
  all_err += err;
  // None of these got as far as measuring bandwidth (which comes after the 20b weights).
  CHECK_THAT(all_err, !Catch::Contains("streaming-read bandwidth"));
}

TEST_CASE("sweep: a CPU run writes one consistent row per pair (table, CSV, JSON)", "[sweep]") {
  SmallArchive a(/*seed=*/5);
  const fs::path csv = a.dir.path / "sweep.csv";
  std::string out, err;
  const int rc = run_gptoss("bench sweep -m " + a.path.string() +
                                " --backend cpu --pairs 3:4,5:1 --repeats 2 --json --csv " +
                                csv.string(),
                            a.dir.path, &out, &err);
  INFO("stderr: " << err << "\nstdout: " << out);
  REQUIRE(rc == 0);
  CHECK_THAT(err, Catch::Contains("streaming-read bandwidth") && Catch::Contains("pair 2/2"));
  CHECK_THAT(out, Catch::Contains("TTFT_ms") && Catch::Contains("out_tok/s"));

  std::ifstream in(csv);
  std::string header, line;
  std::getline(in, header);
  CHECK(header.rfind("experts,isl,osl,repeats,ttft_ms,", 0) == 0);
  std::vector<std::string> rows;
  while (std::getline(in, line)) rows.push_back(line);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].rfind("bf16,3,4,2,", 0) == 0);
  CHECK(rows[1].rfind("bf16,5,1,2,", 0) == 0);

  std::istringstream lines(out);
  int json_rows = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] != '{') continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    ++json_rows;
    const double ttft = j["ttft_ms"], e2e = j["e2e_ms"], tpot = j["tpot_ms"];
    INFO(line);
    CHECK(j["bench"] == "sweep");
    CHECK(j["backend"] == "cpu");
    CHECK(ttft > 0);
    CHECK(e2e >= ttft);
    CHECK(j["ttft_min_ms"].get<double>() <= ttft);
    CHECK(j["ttft_max_ms"].get<double>() >= ttft);
    CHECK(j["ttft_floor_ms"].get<double>() > 0);
    CHECK(j["e2e_floor_ms"].get<double>() >= j["ttft_floor_ms"].get<double>());
    if (j["osl"] == 1) {
      CHECK(tpot == 0);  // one output token: it is the first, no TPOT samples
    } else {
      CHECK(tpot > 0);
      CHECK(j["tpot_p90_ms"].get<double>() >= tpot);
    }
  }
  CHECK(json_rows == 2);
}

TEST_CASE("sweep: --text prompts come from the tokenizer, within the model's vocabulary", "[sweep]") {
  test::TempDir dir;
  const fs::path text = dir.path / "prompt.txt", empty = dir.path / "empty.txt";
  std::ofstream(text) << "The quick brown fox jumps over the lazy dog. ";
  std::ofstream(empty) << "";
  std::string out, err;
  // The small archive's vocabulary (512 ids) is far below o200k's: refused, naming the id.
  SmallArchive a(/*seed=*/5);
  CHECK(run_gptoss("bench sweep -m " + a.path.string() + " --backend cpu --pairs 4:2 --text " +
                       text.string(),
                   dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("is outside the model's vocabulary (512 ids)"));
  // Text whose o200k ids are all below 512 ("!", "#", "%", "&" are ids 0, 2, 4, 5): measured.
  const fs::path low = dir.path / "low.txt", csv = dir.path / "low.csv";
  std::ofstream(low) << "!#%&!#%&";
  REQUIRE(run_gptoss("bench sweep -m " + a.path.string() + " --backend cpu --pairs 6:2 --repeats 1 "
                         "--text " + low.string() + " --csv " + csv.string(),
                     dir.path, &out, &err) == 0);
  std::ifstream rows(csv);
  std::string header, row;
  std::getline(rows, header);
  std::getline(rows, row);
  CHECK(row.rfind("bf16,6,2,1,", 0) == 0);
  CHECK(run_gptoss("bench sweep --synthetic 20b --backend cpu --pairs 4:2 --text " + empty.string(),
                   dir.path, &out, &err) != 0);
  CHECK_THAT(err, Catch::Contains("holds no tokens"));
}

TEST_CASE("sweep: Ctrl-C prints the pairs measured so far and exits 130", "[sweep]") {
  SmallArchive a(/*seed=*/5);
  const fs::path csv = a.dir.path / "sweep.csv", out_file = a.dir.path / "out.txt",
                 err_file = a.dir.path / "err.txt";
  const std::string cmd = fmt::format(
      "exec {} bench sweep -m {} --backend cpu --pairs 3:2,100000:20000 --repeats 1 --csv {} > {} 2> {}",
      GPTOSS_BINARY, a.path.string(), csv.string(), out_file.string(), err_file.string());
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until the first pair's row is in the CSV (header + 1 line), then interrupt the long one.
  auto csv_lines = [&] {
    std::ifstream in(csv);
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (csv_lines() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(csv_lines() == 2);
  kill(pid, SIGINT);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  std::ifstream out_in(out_file), err_in(err_file);
  std::stringstream out, err;
  out << out_in.rdbuf();
  err << err_in.rdbuf();
  INFO("stdout: " << out.str() << "\nstderr: " << err.str());
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  CHECK_THAT(out.str(), Catch::Contains("TTFT_ms") && Catch::Contains("      3      2"));
  CHECK_THAT(err.str(), Catch::Contains("SIGINT"));
}
