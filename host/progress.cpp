#include "host/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace gptoss {
namespace {

std::string duration_text(double s) {
  if (s < 0 || s > 1e7) return "?";
  const auto t = static_cast<long>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  if (s < 10) return fmt::format("{:.1f}s", s);
  return fmt::format("{}s", t);
}

}  // namespace

ProgressLine::ProgressLine(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled), tty_(::isatty(STDERR_FILENO) != 0) {}

void ProgressLine::update(uint64_t done, uint64_t total, double seconds) {
  if (!enabled_) return;
  // A terminal redraws 5 times a second; a log gets a line every 5 seconds.
  const double interval = tty_ ? 0.2 : 5.0;
  if (seconds - last_print_ < interval && done < total) return;
  last_print_ = seconds;
  const double rate = seconds > 0 ? done / seconds : 0.0;
  const double left = rate > 0 ? (total - done) / rate : -1.0;
  const std::string line = fmt::format(
      "{}: {:.2f} / {:.2f} GB ({:.1f}%), {:.2f} GB/s, {} left", label_, done / 1e9, total / 1e9,
      total > 0 ? 100.0 * done / total : 100.0, rate / 1e9, duration_text(left));
  if (tty_) {
    fmt::print(stderr, "\r{}\033[K", line);
    drawn_ = true;
  } else {
    fmt::print(stderr, "{}\n", line);
  }
  std::fflush(stderr);
}

void ProgressLine::finish(uint64_t done, double seconds) {
  if (!enabled_) return;
  if (drawn_) fmt::print(stderr, "\r\033[K");
  fmt::print(stderr, "{}: {:.2f} GB in {} ({:.2f} GB/s)\n", label_, done / 1e9,
             duration_text(seconds), seconds > 0 ? done / seconds / 1e9 : 0.0);
}

}  // namespace gptoss
