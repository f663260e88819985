#include "host/interrupt.h"

#include <atomic>

#include <fmt/format.h>

namespace gptoss {
namespace {

std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free,
              "written from a signal handler");

extern "C" void record_stop_signal(int sig) {
  g_stop_signal.store(sig, std::memory_order_relaxed);
}

} // namespace

std::string signal_name(int signal) {
  if (signal == SIGINT)
    return "SIGINT";
  if (signal == SIGTERM)
    return "SIGTERM";
  return fmt::format("signal {}", signal);
}

StopSignals::StopSignals(bool enabled) : enabled_(enabled) {
  g_stop_signal.store(0);
  if (!enabled_)
    return;
  struct sigaction sa {};
  sa.sa_handler = record_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

StopSignals::~StopSignals() {
  if (!enabled_)
    return;
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

int StopSignals::pending() {
  return g_stop_signal.load(std::memory_order_relaxed);
}

void StopSignals::check(std::string_view what) {
  if (const int sig = pending(); sig != 0) {
    throw Interrupted(
        sig, fmt::format("interrupted by {}; {}", signal_name(sig), what));
  }
}

} // namespace gptoss
