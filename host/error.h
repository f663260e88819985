// error.h — the project's exception type and invariant checks (host code only).
// Library code throws gptoss::Error; only main() turns exceptions into exit codes.
// A user-facing error may carry a hint: one line telling the user what to do about it.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace gptoss {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, std::string hint = {})
      : std::runtime_error(std::move(message)), hint_(std::move(hint)) {}
  const std::string& hint() const { return hint_; }

 private:
  std::string hint_;
};

}  // namespace gptoss

// GPTOSS_CHECK(cond, "fmt {}", args...): throws gptoss::Error with the formatted message.
#define GPTOSS_CHECK(cond, ...)                                \
  do {                                                         \
    if (!(cond)) throw ::gptoss::Error(fmt::format(__VA_ARGS__)); \
  } while (0)
