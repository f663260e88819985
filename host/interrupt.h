// interrupt.h — Ctrl-C for the long-running commands (convert, generate). While
// a StopSignals guard lives, SIGINT and SIGTERM only record the signal; the
// work loop polls check() between chunks or tokens and unwinds through its
// normal error path, so temporary files are removed and the output written so
// far is completed. main() turns Interrupted into exit code 128 + signal.
#pragma once

#include <csignal>
#include <string>
#include <string_view>

#include "host/error.h"

namespace gptoss {

class Interrupted : public Error {
public:
  Interrupted(int signal, std::string message)
      : Error(std::move(message)), signal_(signal) {}
  int signal() const { return signal_; }
  int exit_code() const {
    return 128 + signal_;
  } // the shell's convention (130 for SIGINT)

private:
  int signal_;
};

// "SIGINT", "SIGTERM" or "signal N".
std::string signal_name(int signal);

// Installs the recording handler for SIGINT and SIGTERM (when enabled); the
// destructor restores the previous handlers. Guards do not nest.
class StopSignals {
public:
  explicit StopSignals(bool enabled = true);
  ~StopSignals();
  StopSignals(const StopSignals &) = delete;
  StopSignals &operator=(const StopSignals &) = delete;

  // The recorded signal, or 0.
  static int pending();
  // Throws Interrupted("interrupted by SIGINT; <what>") when a signal was
  // recorded.
  static void check(std::string_view what);

private:
  bool enabled_;
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

} // namespace gptoss
