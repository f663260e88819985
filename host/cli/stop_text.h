// stop_text.h — `--stop TEXT` (repeatable): generation stops when the generated text contains one
// of the strings. Text that could be the start of a stop string is held back until the next
// token decides, so what is printed never includes any part of the stop string.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gptoss::cli {

class StopText {
 public:
  explicit StopText(std::vector<std::string> stops = {}) : stops_(std::move(stops)) {}

  // Adds generated text (valid UTF-8); returns the part now safe to print. After a match,
  // matched() is true and the returned text ends just before the stop string.
  std::string push(std::string_view text) {
    pending_ += text;
    size_t first = std::string::npos;
    for (const std::string& s : stops_) {
      if (s.empty()) continue;
      const size_t at = pending_.find(s);
      if (at < first) first = at;
    }
    if (first != std::string::npos) {
      matched_ = true;
      std::string out = pending_.substr(0, first);
      pending_.clear();
      return out;
    }
    // Hold back the longest suffix that is a proper prefix of a stop string (it starts where
    // the stop string's first character would, so on a UTF-8 character boundary).
    size_t hold = 0;
    for (const std::string& s : stops_) {
      for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); k > hold; --k) {
        if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
      }
    }
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
  }
  // The text held back, at the end of generation without a match.
  std::string flush() { return std::exchange(pending_, {}); }
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool matched_ = false;
};

}  // namespace gptoss::cli
