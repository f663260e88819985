// cli.h — the `gptoss` subcommands. Each lives in its own source file and adds itself to the
// CLI11 app through one add_*_command function; main() only calls them in order. To add a
// subcommand: write add_foo_command(CLI::App&) in its module and add one line to
// host/cli/main.cpp. The bench subcommands are declared by bench/bench_cli.h (bench/ sits below
// host/cli/ and includes nothing from it).
// A subcommand's callback reports problems by throwing gptoss::Error (main prints it).
#pragma once

namespace CLI {
class App;
}

namespace gptoss::cli {

void add_synth_command(CLI::App& app);       // host/cli/synth_cli.cpp
void add_convert_command(CLI::App& app);     // host/cli/convert_cli.cpp
void add_info_command(CLI::App& app);        // host/cli/info_cli.cpp
void add_generate_command(CLI::App& app);    // host/cli/generate_cli.cpp
void add_chat_command(CLI::App& app);        // host/cli/chat_cli.cpp
void add_serve_command(CLI::App& app);       // host/cli/serve_cli.cpp
void add_tokenize_commands(CLI::App& app);   // host/cli/tokenize_cli.cpp (tokenize, detokenize)

}  // namespace gptoss::cli
