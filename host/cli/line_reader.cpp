#include "host/cli/line_reader.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#ifdef GPTOSS_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

namespace gptoss::cli {

LineReader::LineReader() : interactive_(isatty(STDIN_FILENO) != 0) {}

LineReader::~LineReader() = default;

std::optional<std::string> LineReader::read(const char* prompt) {
#ifdef GPTOSS_HAVE_LIBEDIT
  if (interactive_) {
    std::fflush(stdout);
    char* line = readline(prompt);
    if (line == nullptr) return std::nullopt;
    std::string s(line);
    std::free(line);
    if (!s.empty()) add_history(s.c_str());
    return s;
  }
#endif
  if (interactive_) {
    std::fputs(prompt, stdout);
    std::fflush(stdout);
  }
  std::string s;
  if (!std::getline(std::cin, s)) return std::nullopt;
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

}  // namespace gptoss::cli
