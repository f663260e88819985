// bench_model.h — the model a benchmark runs: `-m FILE` (an archive, its formats fixed) or
// `--synthetic SHAPE` (a preset, with the --attn / --lm-head formats of its generated weights).
#pragma once

#include <optional>
#include <string>

#include "host/archive/archive.h"
#include "host/model_config.h"
#include "host/tensor_spec.h"

namespace gptoss::bench {

struct BenchModel {
  std::optional<MappedArchive> file;  // with -m
  ModelConfig config;
  WeightFormats synthetic_formats;    // DecodeOptions::synthetic_formats (all BF16 with -m)
  WeightFormats formats;              // the stored formats either way
};

// Fills `out` (left in place: the archive stays mapped). Throws gptoss::Error when --attn or
// --lm-head ask for another format of an archive's weights, or when the archive cannot be opened.
void open_bench_model(BenchModel& out, const std::string& model, const std::string& synthetic,
                      const std::string& attn, const std::string& lm_head);

}  // namespace gptoss::bench
