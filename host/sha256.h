// sha256.h — a compact SHA-256 (FIPS 180-4) for checking bundled data files (the o200k_base
// ranks) and tagging embedded tokenizers; not a crypto library: no constant-time claims.
// Incremental: update() any number of times, then final(); digest_hex() for one-shot use.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace gptoss {

class Sha256 {
 public:
  using Digest = std::array<uint8_t, 32>;

  Sha256();
  void update(std::span<const std::byte> data);
  void update(const void* data, size_t num_bytes);
  Digest final();  // the object must not be updated afterwards

  static Digest digest(std::span<const std::byte> data);
  static std::string hex(const Digest& d);
  // Parses 64 hex digits; false on any other input.
  static bool from_hex(std::string_view text, Digest* out);

 private:
  void compress(const uint8_t* block);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace gptoss
