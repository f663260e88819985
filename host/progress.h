// progress.h — a progress line on stderr for long byte-streaming jobs (convert, info --verify):
// bytes done of total, rate, time left. Redrawn in place on a terminal; on a pipe or log file
// one line every few seconds instead. Not thread-safe: one job, one caller thread.
#pragma once

#include <cstdint>
#include <string>

namespace gptoss {

class ProgressLine {
 public:
  ProgressLine(std::string label, bool enabled);
  void update(uint64_t bytes_done, uint64_t bytes_total, double seconds);
  // Prints the final line (done, average rate, elapsed).
  void finish(uint64_t bytes_done, double seconds);

 private:
  std::string label_;
  bool enabled_;
  bool tty_;
  double last_print_ = -1e9;
  bool drawn_ = false;
};

}  // namespace gptoss
