// harness.cuh — what the device-op tests and benches share: a launch check, RAII device
// buffers (through the vendor-neutral host/gpu.h), seeded random fills (seed from GPTOSS_TEST_SEED or std::random_device, reported on every
// failure), poison values that mark unwritten outputs, and compare helpers that report the first
// failing index with its coordinates. Each test file defines its own small `_test_kernel` wrappers
// around one device op. Host code; no Catch2 dependency (GPTOSS_REQUIRE_PASS needs it).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "device_ops/platform.cuh"
#include "host/gpu.h"  // device memory, launch checks (throw gpu::GpuError, a std::runtime_error)
#include "tests/tolerances.h"

// After every test launch: the launch error, then the execution error (tests synchronize).
#define GPTOSS_CHECK_LAUNCH()                                          \
  do {                                                                 \
    ::gptoss::gpu::check_launch(__FILE__ ":" GPTOSS_TEST_STR(__LINE__)); \
    ::gptoss::gpu::synchronize();                                      \
  } while (0)
#define GPTOSS_TEST_STR(x) GPTOSS_TEST_STR2(x)
#define GPTOSS_TEST_STR2(x) #x

namespace gptoss::test {

// Test-data conversions (C++17: the .cu files cannot include the C++20 host/numeric.h; the device
// conversions are checked against host/numeric.h itself through tests/reference/op_ref.h).
inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float bf16_to_float(uint16_t b) { return bits_float(uint32_t(b) << 16); }
inline uint16_t float_to_bf16(float f) {  // round to nearest even (finite inputs)
  const uint32_t u = float_bits(f);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float round_to_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

inline constexpr uint32_t kPoisonF32Bits = 0x7fbadbadu;  // a NaN no computation produces
inline constexpr uint16_t kPoisonBf16Bits = 0x7fbbu;     // likewise (device NaNs are 0x7fff)
inline constexpr uint8_t kPoisonByte = 0xa5;

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (n) ptr_ = static_cast<T*>(gpu::device_alloc(n * sizeof(T), "test buffer"));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), n_(o.n_) { o.ptr_ = nullptr, o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~DeviceBuffer() {
    gpu::device_free(ptr_);
  }
  T* get() const { return ptr_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }
  void upload(const std::vector<T>& host) {
    if (host.size() != n_) throw std::runtime_error("DeviceBuffer::upload: size mismatch");
    if (n_) gpu::copy_to_device(ptr_, host.data(), bytes());
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    if (n_) gpu::copy_to_host(host.data(), ptr_, bytes());
    return host;
  }
  void fill_bytes(uint8_t b) {
    if (n_) gpu::memset_device(ptr_, b, bytes());
  }

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

// Poisoned buffers: every element holds the poison pattern of its type.
inline DeviceBuffer<float> poisoned_f32(size_t n) {
  return DeviceBuffer<float>(std::vector<float>(n, bits_float(kPoisonF32Bits)));
}
inline DeviceBuffer<uint16_t> poisoned_bf16(size_t n) {
  return DeviceBuffer<uint16_t>(std::vector<uint16_t>(n, kPoisonBf16Bits));
}

// A fresh seed per call: GPTOSS_TEST_SEED when set (to reproduce a failure), else random_device.
inline uint64_t fresh_seed() {
  if (const char* s = std::getenv("GPTOSS_TEST_SEED")) return std::strtoull(s, nullptr, 0);
  std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}

// splitmix64: fast, good enough for test data, reproducible from the seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * double(next() >> 11) * 0x1p-53; }
  int below(int n) { return int(next() % uint64_t(n)); }

 private:
  uint64_t s_;
};

// bf16 bits of uniform values in [lo, hi).
inline std::vector<uint16_t> random_bf16(size_t n, Rng& rng, double lo, double hi) {
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = float_to_bf16(float(rng.uniform(lo, hi)));
  return v;
}
// Uniform floats rounded to bf16 (activations that are bf16 in the engine).
inline std::vector<float> random_bf16_floats(size_t n, Rng& rng, double lo, double hi) {
  std::vector<float> v(n);
  for (auto& x : v) x = round_to_bf16(float(rng.uniform(lo, hi)));
  return v;
}
inline std::vector<float> to_float(const std::vector<uint16_t>& bits) {
  std::vector<float> v(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) v[i] = bf16_to_float(bits[i]);
  return v;
}
inline std::vector<uint8_t> random_bytes(size_t n, Rng& rng) {
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = uint8_t(rng.next());
  return v;
}

struct CompareResult {
  bool ok = true;
  size_t failures = 0;
  double worst_ratio = 0.0;  // max |got - ref| / limit over the checked elements
  std::string message;
};

// got vs ref with |got - ref| <= tol.atol + tol.rtol * scale_i (scale = |ref| when nullptr).
// A NaN or poisoned `got` fails (unless ref is NaN too). coords(i) names element i.
template <class Coords>
CompareResult compare(const char* what, const float* got, const double* ref, const double* scale,
                      size_t n, const Tol& tol, Coords&& coords) {
  CompareResult r;
  std::ostringstream first;
  for (size_t i = 0; i < n; ++i) {
    const double g = got[i], e = ref[i];
    const double s = scale ? scale[i] : std::fabs(e);
    const double limit = tol.atol + tol.rtol * s;
    bool pass;
    if (std::isnan(e)) {
      pass = std::isnan(g);
    } else {
      const double err = std::fabs(g - e);
      pass = std::isfinite(g) && err <= limit;
      if (std::isfinite(g) && limit > 0) r.worst_ratio = std::max(r.worst_ratio, err / limit);
    }
    if (!pass) {
      if (r.failures == 0) {
        const bool poisoned = float_bits(got[i]) == kPoisonF32Bits;
        first.precision(9);
        first << "first failure at index " << i << " (" << coords(i) << "): got " << g
              << (poisoned ? " [poison: never written]" : "") << ", ref " << e << ", |err| "
              << std::fabs(g - e) << " > limit " << limit << " (atol " << tol.atol << " + rtol "
              << tol.rtol << " * scale " << s << ")";
      }
      ++r.failures;
    }
  }
  r.ok = r.failures == 0;
  std::ostringstream msg;
  msg << what << ": " << (r.ok ? "pass" : "FAIL") << ", " << r.failures << " of " << n
      << " outside tolerance [" << tol.reason << "], worst |err|/limit " << r.worst_ratio;
  if (!r.ok) msg << "; " << first.str();
  r.message = msg.str();
  return r;
}

inline auto index_coords() {
  return [](size_t i) { return "i=" + std::to_string(i); };
}

// Cooperative launch of a grid that must be co-resident; throws when it cannot be.
template <class... KernelArgs, class... Args>
void launch_cooperative(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem,
                        Args&&... args) {
  static_assert(sizeof...(KernelArgs) == sizeof...(Args), "one argument per kernel parameter");
  std::tuple<KernelArgs...> values(std::forward<Args>(args)...);
  void* argv[sizeof...(KernelArgs) + 1] = {};
  std::apply([&](auto&... v) {
    int i = 0;
    ((argv[i++] = static_cast<void*>(&v)), ...);
  }, values);
  if (grid.y * grid.z * block.y * block.z != 1) throw std::runtime_error("1-D launches only");
  gpu::launch_cooperative(reinterpret_cast<const void*>(kernel), int(grid.x), int(block.x), argv,
                          smem, /*stream=*/nullptr);
}

}  // namespace gptoss::test

#if defined(TWOBLUECUBES_SINGLE_INCLUDE_CATCH_HPP_INCLUDED)
// Catch2: fails the test case with the compare message (which names what, where and by how much).
#define GPTOSS_REQUIRE_PASS(result) \
  do {                              \
    const auto& gptoss_r_ = (result); \
    INFO(gptoss_r_.message);        \
    REQUIRE(gptoss_r_.ok);          \
  } while (0)
#endif
