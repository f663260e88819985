// test_chat.cpp — `gptoss chat` and what it stands on (tag [chat]): Session::extend reuses the KV
// cache and re-runs exactly what a diverged conversation needs (checked against a fresh run past
// the sliding window), the /save-/load JSON round trip and its refusals, and the binary driven
// through a pipe and through a pseudo-terminal (Ctrl-C mid-answer, Ctrl-D) on the tiny shape.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "host/archive/archive.h"
#include "host/cli/session.h"
#include "host/error.h"
#include "host/reference/forward.h"
#include "host/text/conversation_json.h"
#include "tests/cli_support.h"

using namespace gptoss;
using test::run_gptoss;
using test::SmallArchive;
using test::TempDir;

namespace {

std::vector<int> random_ids(std::mt19937_64& g, int n, int vocab) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(int(g() % uint64_t(vocab)));
  return v;
}

// `steps` greedy tokens after `prompt` on a fresh reference.
std::vector<int> fresh_greedy(const ModelWeights& w, const std::vector<int>& prompt, int steps) {
  ref::Reference r(w, {ExpertMode::kBf16, 0, 4096});
  int next = 0;
  for (int t : prompt) next = r.step(t);
  std::vector<int> out{next};
  for (int i = 1; i < steps; ++i) out.push_back(next = r.step(next));
  return out;
}

}  // namespace

TEST_CASE("Session::extend reuses the cache and re-runs what a divergence needs", "[chat]") {
  SmallArchive a;  // one layer, sliding (window 128)
  std::mt19937_64 g{std::random_device{}()};
  cli::ModelOptions m;
  m.model = a.path.string();
  m.backend = "cpu";
  cli::Session session(m, {}, 1);
  session.start();
  const MappedArchive archive = MappedArchive::open(a.path);
  const ModelWeights w = bind_weights(archive.config(), archive.lookup());
  REQUIRE(archive.config().is_sliding(0));
  auto continue_greedy = [&](int next, int steps) {
    std::vector<int> out{next};
    for (int i = 1; i < steps; ++i) {
      next = session.step(next, int(session.cached().size()));
      session.append_cached(out.back());
      out.push_back(next);
    }
    return out;
  };
  // A first conversation past the window, then one that shares only its first 150 tokens.
  const std::vector<int> first = random_ids(g, 200, 512);
  cli::Session::ExtendInfo info;
  int next = session.extend(first, &info);
  CHECK(info.reused == 0);
  CHECK(info.run == 200);
  CHECK_FALSE(info.diverged);
  const std::vector<int> first_out = continue_greedy(next, 8);
  CHECK(first_out == fresh_greedy(w, first, 8));

  std::vector<int> second(first.begin(), first.begin() + 150);
  for (int t : random_ids(g, 20, 512)) second.push_back(t);
  second[150] = (first[150] + 1) % 512;  // differs right after the shared prefix
  next = session.extend(second, &info);
  CHECK(info.diverged);
  CHECK(info.reused == 150 + 1 - 128);  // the window before position 150 is re-run
  CHECK(info.run == 170 - info.reused);
  CHECK(continue_greedy(next, 8) == fresh_greedy(w, second, 8));

  // Appending only runs the new tokens.
  std::vector<int> third = session.cached();
  for (int t : random_ids(g, 5, 512)) third.push_back(t);
  next = session.extend(third, &info);
  CHECK_FALSE(info.diverged);
  CHECK(info.run == 5);
  CHECK(continue_greedy(next, 4) == fresh_greedy(w, third, 4));

  // A short divergence early in the cache: nothing overwritten (old end - 1 - 128 < restart).
  std::vector<int> short1 = random_ids(g, 40, 512), short2 = short1;
  short2[30] = (short2[30] + 7) % 512;
  session.clear_cache();
  session.extend(short1, &info);
  CHECK(info.run == 40);
  next = session.extend(short2, &info);
  CHECK(info.diverged);
  CHECK(info.reused == 30);
  CHECK(continue_greedy(next, 6) == fresh_greedy(w, short2, 6));
  // More than the context is refused.
  CHECK_THROWS_WITH(session.extend(random_ids(g, 4097, 512)),
                    Catch::Contains("4097 tokens, more than the context of 4096"));
}

TEST_CASE("conversation JSON: round trip and refusals", "[chat]") {
  tok::SavedConversation c;
  c.developer = "Be brief.";
  c.messages.push_back({tok::Role::kUser, "hi \xc3\xa9 \"quoted\"\n"});
  c.messages.push_back({tok::Role::kAssistant, "thinking", "", "analysis"});
  c.messages.push_back({tok::Role::kAssistant, "hello", "", "final"});
  c.messages.push_back({tok::Role::kTool, "{}", "functions.f", "commentary"});
  const tok::SavedConversation back = tok::conversation_from_json(tok::conversation_to_json(c));
  CHECK(back.developer == c.developer);
  REQUIRE(back.messages.size() == c.messages.size());
  for (size_t i = 0; i < c.messages.size(); ++i) {
    CHECK(back.messages[i].role == c.messages[i].role);
    CHECK(back.messages[i].content == c.messages[i].content);
    CHECK(back.messages[i].channel == c.messages[i].channel);
    CHECK(back.messages[i].author_name == c.messages[i].author_name);
  }
  // A bare array of messages.
  CHECK(tok::conversation_from_json(R"([{"role":"user","content":"x"}])").messages.size() == 1);
  const std::pair<const char*, const char*> bad[] = {
      {"{", "not valid JSON"},
      {"{}", "no \"messages\""},
      {R"({"messages": 3})", "not an array"},
      {R"([3])", "message 0 is not an object"},
      {R"([{"role":"robot","content":"x"}])", "unknown role \"robot\""},
      {R"([{"role":"system","content":"x"}])", "top-level \"developer\""},
      {R"([{"role":"user"}])", "\"content\" is missing"},
      {R"([{"role":"user","content":"x","channel":5}])", "\"channel\" is not a string"},
      {R"([{"role":"tool","content":"x"}])", "needs \"name\""},
      {R"({"format":"other","messages":[]})", "unknown format"},
  };
  for (const auto& [text, message] : bad) {
    INFO(text);
    CHECK_THROWS_WITH(tok::conversation_from_json(text), Catch::Contains(message));
  }
}

TEST_CASE("chat through a pipe: turns, commands, context full, exit 0", "[chat][tiny]") {
  TempDir dir;
  std::string out, err;
  const std::string save = (dir.path / "conv.json").string();
  const std::string script = "hello\n/stats\n/save " + save + "\nsecond\n/bogus\n/load " + save +
                             "\n/reset\n/exit\nnot read\n";
  {
    std::ofstream(dir.path / "in.txt") << script;
  }
  const std::string chat = "chat --synthetic tiny --backend cpu --threads 2 -n 3 --seed 5 ";
  REQUIRE(run_gptoss(chat + "< " + (dir.path / "in.txt").string(), dir.path, &out, &err) == 0);
  INFO("stderr: " << err);
  CHECK_THAT(err, Catch::Contains("temperature 1, seed 5"));
  CHECK_THAT(err, Catch::Contains("no harmony structure"));
  CHECK_THAT(err, Catch::Contains("TTFT") && Catch::Contains("reused from the cache"));
  CHECK_THAT(err, Catch::Contains("(saved 2 messages to"));
  CHECK_THAT(err, Catch::Contains("re-read"));  // the raw reply reads back as a final message
  CHECK_THAT(err, Catch::Contains("unknown command /bogus"));
  CHECK_THAT(err, Catch::Contains("(loaded 2 messages"));
  CHECK_THAT(err, Catch::Contains("(conversation cleared)"));
  const tok::SavedConversation saved = tok::conversation_from_json([&] {
    std::ifstream in(save);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }());
  REQUIRE(saved.messages.size() == 2);
  CHECK(saved.messages[0].content == "hello");
  CHECK(saved.messages[1].channel == "final");
  CHECK(out.rfind(saved.messages[1].content + "\n", 0) == 0);  // the first reply, on stdout

  // A context that fills up: the answer is cut with a message, the next turn is refused.
  {
    std::ofstream(dir.path / "in2.txt") << "hello\nhello again\n";
  }
  REQUIRE(run_gptoss(chat + "--max-context 58 < " + (dir.path / "in2.txt").string(), dir.path,
                     &out, &err) == 0);
  CHECK_THAT(err, Catch::Contains("the context is full (58 positions"));
  CHECK_THAT(err, Catch::Contains("the context is full: this turn needs"));
  CHECK_THAT(err, Catch::Contains("/reset starts over"));
  // Bad options are refused before any weights are made.
  CHECK(run_gptoss("chat --synthetic tiny --backend cpu --top-p 2 < /dev/null", dir.path, &out,
                   &err) == 1);
  CHECK_THAT(err, Catch::Contains("--top-p 2: must be in (0, 1]"));
}

TEST_CASE("chat in a terminal: Ctrl-C stops the answer, Ctrl-D exits 0", "[chat][tiny]") {
  int fd = -1;
  const pid_t pid = forkpty(&fd, nullptr, nullptr, nullptr);
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl(GPTOSS_BINARY, GPTOSS_BINARY, "chat", "--synthetic", "tiny", "--backend", "cpu",
          "--threads", "2", "-n", "100000", (char*)nullptr);
    _exit(127);
  }
  std::string seen;
  // Reads the terminal until `what` appears (true) or `seconds` pass (false).
  auto wait_for = [&](const std::string& what, double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (seen.find(what) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, int(left)) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) return seen.find(what) != std::string::npos;
      seen.append(buf, size_t(n));
    }
    return true;
  };
  auto send = [&](const std::string& s) { REQUIRE(write(fd, s.data(), s.size()) == ssize_t(s.size())); };
  REQUIRE(wait_for("Ctrl-D exits", 120));
  REQUIRE(wait_for("> ", 10));
  // The prompt takes ~15 s on 2 idle cores, then the answer runs until stopped (-n 100000). A
  // Ctrl-C that lands during the prompt (a loaded machine) stops the turn too but proves less:
  // then the next turn (which reuses the cache) waits twice as long, until one is stopped with
  // more than one token generated.
  int generated = 0;
  for (double wait_s = 30; wait_s < 250 && generated <= 1; wait_s *= 2) {
    seen.clear();
    send("hello\r");
    wait_for("never printed", wait_s);
    send("\x03");
    INFO("terminal: " << seen);
    REQUIRE(wait_for("(stopped; the partial answer stays in the conversation)", 60));
    REQUIRE(wait_for("> ", 10));
    send("/stats\r");
    REQUIRE(wait_for("tokens generated", 10));
    std::smatch m;
    REQUIRE(std::regex_search(seen, m, std::regex("(\\d+) tokens generated")));
    generated = std::stoi(m[1].str());
  }
  CHECK(generated > 1);  // the Ctrl-C came mid-answer
  send("\x04");  // Ctrl-D at the prompt
  int status = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (waitpid(pid, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() < end) {
    wait_for("never printed", 0.2);
  }
  if (waitpid(pid, &status, WNOHANG) == 0) kill(pid, SIGKILL);
  close(fd);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("generate prints a reply without harmony structure as raw text", "[chat][tiny]") {
  TempDir dir;
  std::string out, err;
  REQUIRE(run_gptoss("generate --synthetic tiny --backend cpu --threads 2 -p hi -n 3 --json",
                     dir.path, &out, &err) == 0);
  INFO("stderr: " << err);
  CHECK_THAT(err, Catch::Contains("note: the reply has no harmony structure"));
  const auto j = nlohmann::json::parse(out);
  CHECK(j["harmony"] == false);
  CHECK(!j["text"]["raw"].get<std::string>().empty());
  CHECK(j["generated_ids"].size() == 3);
}
