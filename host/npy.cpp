#include "host/npy.h"

#include <cstring>
#include <string>

#include <fmt/format.h>

#include "host/data_files.h"
#include "host/error.h"

namespace gptoss {
namespace {

constexpr size_t kHeaderBytes = 128;  // magic + version + length + dict, padded (a multiple of 64)

std::string header(int64_t rows, int64_t cols) {
  std::string dict =
      fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", rows, cols);
  const size_t used = 10 + dict.size() + 1;
  GPTOSS_CHECK(used <= kHeaderBytes, "npy header too long");
  dict.append(kHeaderBytes - used, ' ');
  dict.push_back('\n');
  std::string h("\x93NUMPY\x01\x00", 8);
  const uint16_t len = uint16_t(dict.size());
  h.push_back(char(len & 0xff));
  h.push_back(char(len >> 8));
  return h + dict;
}

[[noreturn]] void bad(const std::filesystem::path& p, const std::string& what) {
  throw Error(fmt::format("{}: {}", p.string(), what),
              "expected a 2-D float32 (<f4) C-order .npy array [positions, vocab], e.g. from "
              "gptoss generate --logits-out FILE.npy or numpy.save(FILE, logits.astype('<f4'))");
}

}  // namespace

void write_npy_f32(const std::filesystem::path& path, const float* data, int64_t rows, int64_t cols) {
  NpyRowWriter w(path, cols);
  for (int64_t r = 0; r < rows; ++r) w.append(data + r * cols);
  w.close();
}

NpyRowWriter::NpyRowWriter(const std::filesystem::path& path, int64_t cols) : path_(path), cols_(cols) {
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_) throw Error(fmt::format("cannot write {}", path.string()), "check the folder exists and is writable");
  const std::string h = header(0, cols);
  std::fwrite(h.data(), 1, h.size(), f_);
}

NpyRowWriter::~NpyRowWriter() {
  try {
    close();
  } catch (...) {
  }
}

void NpyRowWriter::append(const float* row) {
  if (std::fwrite(row, sizeof(float), size_t(cols_), f_) != size_t(cols_)) {
    throw Error(fmt::format("writing {} failed", path_.string()), "free disk space");
  }
  ++rows_;
}

void NpyRowWriter::close() {
  if (!f_) return;
  const std::string h = header(rows_, cols_);
  std::fseek(f_, 0, SEEK_SET);
  std::fwrite(h.data(), 1, h.size(), f_);
  const bool ok = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok) throw Error(fmt::format("writing {} failed", path_.string()), "free disk space");
}

NpyMatrix read_npy_f32(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) bad(path, "no such file");
  const std::string bytes = read_file(path, 64ull << 30);
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) bad(path, "not a .npy file");
  const int major = uint8_t(bytes[6]);
  size_t len = 0, start = 0;
  if (major == 1) {
    len = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) bad(path, "truncated header");
    std::memcpy(&len, bytes.data() + 8, 4);
    start = 12;
  } else {
    bad(path, fmt::format("unknown .npy version {}", major));
  }
  if (bytes.size() < start + len) bad(path, "truncated header");
  const std::string dict = bytes.substr(start, len);
  if (dict.find("'descr': '<f4'") == std::string::npos) bad(path, "the dtype is not float32 '<f4'");
  if (dict.find("'fortran_order': False") == std::string::npos) bad(path, "Fortran order is not supported");
  const size_t sp = dict.find("'shape': (");
  if (sp == std::string::npos) bad(path, "no shape in the header");
  const size_t close = dict.find(')', sp);
  const std::string dims = dict.substr(sp + 10, close - sp - 10);
  std::vector<int64_t> shape;
  size_t pos = 0;
  while (pos < dims.size()) {
    while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
    if (pos >= dims.size()) break;
    size_t used = 0;
    try {
      shape.push_back(std::stoll(dims.substr(pos), &used));
    } catch (...) {
      bad(path, fmt::format("unreadable shape ({})", dims));
    }
    pos += used;
  }
  NpyMatrix m;
  if (shape.size() == 1) {
    m.rows = 1, m.cols = shape[0];
  } else if (shape.size() == 2) {
    m.rows = shape[0], m.cols = shape[1];
  } else {
    bad(path, fmt::format("{}-D array; expected 2-D [positions, vocab]", shape.size()));
  }
  const uint64_t n = uint64_t(m.rows) * uint64_t(m.cols);
  if (bytes.size() - start - len != n * 4) {
    bad(path, fmt::format("shape ({}, {}) needs {} data bytes, the file has {}", m.rows, m.cols, n * 4,
                          bytes.size() - start - len));
  }
  m.data.resize(n);
  std::memcpy(m.data.data(), bytes.data() + start + len, n * 4);
  return m;
}

}  // namespace gptoss
