// main.cpp — the `gptoss` binary: CLI11 subcommands (README.md lists them). The only main():
// it turns exceptions into messages on stderr and exit codes: 0 success (also --help and
// --version), 1 an error while running (bad input file, failed step, ...), 2 a command line
// CLI11 cannot parse (unknown option, missing or malformed value), 128 + N a stop by signal N.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "bench/bench_cli.h"
#include "host/build_info.h"
#include "host/cli/cli.h"
#include "host/error.h"
#include "host/interrupt.h"

namespace {

// The option of `gptoss generate` / `bench` that applies a library error's Remedy: named after
// the library's hint ("lower the context length (--max-context)"), or alone when it has none.
struct RemedyFlag {
  const char* flag;
  const char* alone;
};
RemedyFlag remedy_flag(gptoss::Remedy remedy) {
  switch (remedy) {
    case gptoss::Remedy::kRaiseContext: return {"--max-context", "raise --max-context"};
    case gptoss::Remedy::kLowerContext: return {"--max-context", "lower --max-context"};
    case gptoss::Remedy::kCpuBackend: return {"--backend cpu", "use --backend cpu"};
    case gptoss::Remedy::kNone: break;
  }
  return {nullptr, nullptr};
}

// "run 'gptoss generate --help' for usage": the deepest subcommand the parse reached.
std::string usage_hint(const CLI::App& app) {
  std::string path = "gptoss";
  const CLI::App* a = &app;
  for (;;) {
    const std::vector<const CLI::App*> subs = a->get_subcommands([](const CLI::App* s) {
      return s->parsed();
    });
    if (subs.empty()) break;
    a = subs.front();
    path += " " + a->get_name();
  }
  return fmt::format("run '{} --help' for usage", path);
}

// Exit code of a command line that does not parse (README.md, docs/RELIABILITY.md).
constexpr int kUsageExitCode = 2;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gptoss: a batch-1 decode engine for gpt-oss-20b and gpt-oss-120b"};
  app.set_version_flag("--version",
                       fmt::format("gptoss {} (commit {})", GPTOSS_VERSION, gptoss::build_commit()));
  app.require_subcommand(1);
  app.fallthrough(false);

  // One line per subcommand (host/cli/cli.h).
  // (subcommands are added by their issues: synth, convert, info, generate, tokenize, bench)
  gptoss::cli::add_tokenize_commands(app);
  gptoss::cli::add_synth_command(app);
  gptoss::cli::add_convert_command(app);
  gptoss::cli::add_info_command(app);
  gptoss::cli::add_generate_command(app);
  gptoss::cli::add_chat_command(app);
  gptoss::cli::add_serve_command(app);
  gptoss::cli::add_bench_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive as "errors" with exit code 0: CLI11 prints them.
    if (e.get_exit_code() == 0) return app.exit(e);
    fmt::print(stderr, "error: {}\nhint: {}\n", e.what(), usage_hint(app));
    return kUsageExitCode;
  } catch (const gptoss::Interrupted& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return e.exit_code();
  } catch (const gptoss::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    // Library errors name values; the flag that changes them is the CLI's to say.
    std::string hint = e.hint();
    if (const RemedyFlag r = remedy_flag(e.remedy()); r.flag) {
      hint = hint.empty() ? std::string(r.alone) : fmt::format("{} ({})", hint, r.flag);
    }
    if (!hint.empty()) fmt::print(stderr, "hint: {}\n", hint);
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "error: out of host memory\n");
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
