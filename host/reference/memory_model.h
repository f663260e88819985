// memory_model.h — a model whose tensors (canonical, or FP8-quantized from them) live in host memory: the weights source for
// reference tests and benchmarks that do not go through a file. A filler writes each canonical
// tensor's bytes; random_filler() gives small, well-scaled random weights for tests (not the
// `gptoss synth` generator, whose output is the one that must match the GPU's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "host/model_config.h"
#include "host/tensor_spec.h"
#include "host/weights_view.h"

namespace gptoss::ref {

using TensorFiller = std::function<void(const TensorSpec& spec, std::span<std::byte> out)>;

class MemoryModel {
 public:
  // `fill` writes canonical (BF16) tensors; with FP8 formats the FP8 weights are quantized from
  // them (host/fp8_weights.h), so the model holds archive_tensors(config, formats) as an archive
  // converted with the same formats would.
  MemoryModel(const ModelConfig& config, const TensorFiller& fill, const WeightFormats& formats = {});
  MemoryModel(const MemoryModel&) = delete;
  MemoryModel& operator=(const MemoryModel&) = delete;

  const ModelWeights& weights() const { return weights_; }
  const ModelConfig& config() const { return weights_.config; }
  // The bytes of one archive tensor (canonical name, or "<weight>_scale"), writable (tests poke single weights). Throws if absent.
  std::span<std::byte> tensor(std::string_view canonical_name);

 private:
  std::map<std::string, std::unique_ptr<std::byte[]>, std::less<>> data_;
  std::map<std::string, size_t, std::less<>> sizes_;
  ModelWeights weights_;
};

// Seeded random weights with activations of order 1 through a layer: BF16 matrices ~ U(-a, a)
// with a = sqrt(3 / fan_in), gains near 1, small biases, sinks ~ U(-1, 1), MXFP4 nibbles uniform
// with scale bytes 119..121. Deterministic in (seed, tensor name, element index).
TensorFiller random_filler(uint64_t seed);

}  // namespace gptoss::ref
