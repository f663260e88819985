// error.h — the project's exception type and invariant checks (host code only).
// Library code throws gptoss::Error; only main() turns exceptions into exit codes.
// A user-facing error may carry a hint: one line telling the user what to do about it. Library
// errors name values, never command-line flags; a Remedy tells the CLI (host/cli/main.cpp) which
// flag to add to the hint.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace gptoss {

// What the user can change to get past an error, for the front end to name its own option.
enum class Remedy : uint8_t {
  kNone,
  kRaiseContext,  // a larger KV capacity (max_context)
  kLowerContext,  // a smaller KV capacity: less GPU memory
  kCpuBackend,    // run on the CPU reference instead of the GPU
};

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, std::string hint = {}, Remedy remedy = Remedy::kNone)
      : std::runtime_error(std::move(message)), hint_(std::move(hint)), remedy_(remedy) {}
  const std::string& hint() const { return hint_; }
  Remedy remedy() const { return remedy_; }

 private:
  std::string hint_;
  Remedy remedy_;
};

}  // namespace gptoss

// GPTOSS_CHECK(cond, "fmt {}", args...): throws gptoss::Error with the formatted message.
#define GPTOSS_CHECK(cond, ...)                                \
  do {                                                         \
    if (!(cond)) throw ::gptoss::Error(fmt::format(__VA_ARGS__)); \
  } while (0)
