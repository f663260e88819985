// temp_dir.h — a unique temporary directory for a test, removed with everything in it at scope
// exit (tests never leave files behind).
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace gptoss::test {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("gptoss_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace gptoss::test
