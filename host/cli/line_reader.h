// line_reader.h — the chat's input lines: with editing and history through libedit when stdin is
// a terminal and the build found libedit (GPTOSS_HAVE_LIBEDIT), else plain lines from stdin (a
// pipe, a file). Ctrl-D (end of input) returns nullopt.
#pragma once

#include <optional>
#include <string>

namespace gptoss::cli {

class LineReader {
 public:
  LineReader();
  ~LineReader();
  bool interactive() const { return interactive_; }
  // The next line without its newline; nullopt at the end of input. `prompt` is shown only when
  // interactive.
  std::optional<std::string> read(const char* prompt);

 private:
  bool interactive_ = false;
};

}  // namespace gptoss::cli
