#include "host/data_files.h"

#include <cstdlib>
#include <fstream>

#include "host/error.h"

namespace gptoss {

namespace fs = std::filesystem;

fs::path executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

std::vector<fs::path> data_file_candidates(std::string_view name) {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("GPTOSS_DATA_DIR"); env != nullptr && *env != '\0') {
    out.push_back(fs::path(env) / name);
  }
  if (const fs::path exe = executable_dir(); !exe.empty()) {
    out.push_back(exe / name);
    out.push_back(exe / "data" / name);
    out.push_back(exe.parent_path() / "data" / name);
    out.push_back(exe.parent_path() / "share" / "gptoss" / name);
  }
#ifdef GPTOSS_DATA_DIR
  out.push_back(fs::path(GPTOSS_DATA_DIR) / name);
#endif
  return out;
}

std::vector<fs::path> o200k_base_candidates() { return data_file_candidates(kO200kBaseFileName); }

std::string read_file(const fs::path& path, uint64_t max_bytes) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) {
    throw Error(fmt::format("cannot read {}: {}", path.string(), ec.message()),
                "check the path and its permissions");
  }
  if (size > max_bytes) {
    throw Error(fmt::format("{} is {} bytes; at most {} are expected here", path.string(), size,
                            max_bytes));
  }
  std::string bytes(size, '\0');
  std::ifstream in(path, std::ios::binary);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    throw Error(fmt::format("cannot read {}", path.string()), "check the file's permissions");
  }
  return bytes;
}

}  // namespace gptoss
