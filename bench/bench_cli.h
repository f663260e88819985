// bench_cli.h — the bench subcommands bench/ adds to the `gptoss` CLI (host/cli/main.cpp and
// host/cli/tokenize_cli.cpp call them). Declared here, not in host/cli/cli.h, so that bench/ sits
// below host/cli/ and includes nothing from it.
#pragma once

namespace CLI {
class App;
}

namespace gptoss::cli {

void add_bench_command(CLI::App& app);            // bench/bench_cli.cpp: `bench tpot`
void add_tokenizer_bench_command(CLI::App& app);  // bench/bench_tokenizer.cpp (hidden)

}  // namespace gptoss::cli
