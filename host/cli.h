// cli.h — the `gptoss` subcommands. Each lives in its own source file and adds itself to the
// CLI11 app through one add_*_command function; main() only calls them in order. To add a
// subcommand: write add_foo_command(CLI::App&) in its module and add one line to host/main.cpp.
// A subcommand's callback reports problems by throwing gptoss::Error (main prints it).
#pragma once

namespace CLI {
class App;
}

namespace gptoss::cli {

void add_synth_command(CLI::App& app);       // converter/synth_cli.cpp
void add_convert_command(CLI::App& app);     // converter/convert_cli.cpp
void add_info_command(CLI::App& app);        // host/archive_cli.cpp
void add_generate_command(CLI::App& app);    // host/generate_cli.cpp
void add_tokenize_commands(CLI::App& app);   // host/tokenizer_cli.cpp (tokenize, detokenize)
void add_bench_command(CLI::App& app);       // bench/bench_cli.cpp

}  // namespace gptoss::cli
