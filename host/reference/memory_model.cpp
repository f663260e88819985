#include "host/reference/memory_model.h"

#include <cmath>
#include <cstring>

#include "host/error.h"
#include "host/fp8_weights.h"
#include "host/numeric.h"

namespace gptoss::ref {

MemoryModel::MemoryModel(const ModelConfig& config, const TensorFiller& fill,
                         const WeightFormats& formats) {
  config.validate();
  auto add = [&](const std::string& name, size_t n) {
    auto buf = std::make_unique<std::byte[]>(n);  // operator new: aligned for any element type
    std::byte* p = buf.get();
    sizes_[name] = n;
    data_[name] = std::move(buf);
    return p;
  };
  for (const TensorSpec& spec : archive_tensors(config, formats)) {
    std::string source;
    if (!fp8_quantized_from(spec, &source)) {
      fill(spec, std::span<std::byte>(add(spec.name, spec.num_bytes()), spec.num_bytes()));
      continue;
    }
    if (spec.dtype != DType::kF8E4M3) continue;  // the scales: written with their weight
    // The canonical BF16 tensor, quantized row by row into the codes and "<name>_scale".
    const TensorSpec canonical{spec.name, DType::kBF16, spec.shape};
    std::vector<bf16_bits> bf16(canonical.num_elements());
    fill(canonical, std::as_writable_bytes(std::span(bf16)));
    const int64_t rows = spec.shape.at(0), cols = spec.shape.at(1);
    auto* codes = reinterpret_cast<uint8_t*>(add(spec.name, spec.num_bytes()));
    auto* scales = reinterpret_cast<float*>(
        add(spec.name + std::string(archive::kScaleSuffix), size_t(rows) * sizeof(float)));
    quantize_rows_fp8(bf16.data(), rows, cols, codes, scales);
  }
  weights_ = bind_weights(
      config, [this](const TensorSpec& spec) { return std::span<const std::byte>(tensor(spec.name)); },
      formats);
}

std::span<std::byte> MemoryModel::tensor(std::string_view name) {
  auto it = data_.find(name);
  if (it == data_.end()) throw Error(fmt::format("in-memory model has no tensor '{}'", name));
  return {it->second.get(), sizes_.find(name)->second};
}

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hash_name(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (char ch : s) h = (h ^ static_cast<uint8_t>(ch)) * 0x100000001b3ull;
  return h;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

TensorFiller random_filler(uint64_t seed) {
  return [seed](const TensorSpec& spec, std::span<std::byte> out) {
    const uint64_t key = splitmix64(seed ^ hash_name(spec.name));
    auto uniform = [&](uint64_t i) {  // U(-1, 1)
      return static_cast<float>(static_cast<double>(splitmix64(key + i) >> 11) * 0x1.0p-52 - 1.0);
    };
    const std::string_view name = spec.name;
    const uint64_t n = spec.num_elements();
    if (spec.dtype == DType::kU8) {
      auto* p = reinterpret_cast<uint8_t*>(out.data());
      if (ends_with(name, "blocks")) {
        for (uint64_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(splitmix64(key + i));
      } else {
        // Scale so that a row of K uniform fp4 values (rms 2.93) times an rms-1 input gives ~1.
        const double k = static_cast<double>(spec.shape[spec.shape.size() - 1]) * 32.0;
        const int base = 127 - static_cast<int>(std::lround(std::log2(2.93 * std::sqrt(k))));
        for (uint64_t i = 0; i < n; ++i) {
          p[i] = static_cast<uint8_t>(base - 1 + static_cast<int>(splitmix64(key + i) % 3));
        }
      }
      return;
    }
    GPTOSS_CHECK(spec.dtype == DType::kBF16, "random_filler: unexpected dtype for {}", spec.name);
    auto* p = reinterpret_cast<bf16_bits*>(out.data());
    float scale = 1.0f, offset = 0.0f;
    if (ends_with(name, "norm.weight")) {
      scale = 0.1f;
      offset = 1.0f;
    } else if (ends_with(name, "bias")) {
      scale = 0.1f;
    } else if (ends_with(name, "sinks") || name == tensor_names::kEmbed) {
      scale = 1.0f;
    } else {
      scale = static_cast<float>(std::sqrt(3.0 / static_cast<double>(spec.shape.back())));
    }
    for (uint64_t i = 0; i < n; ++i) p[i] = float_to_bf16(offset + scale * uniform(i));
  };
}

}  // namespace gptoss::ref
