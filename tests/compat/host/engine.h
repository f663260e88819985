// Transitional (issue 18), only on test_gpu's include path: tests/gpu_test_megakernel.cpp is being
// rewritten on main at the same time and still uses the names from before the split: this path,
// GpuEngineOptions (bool experts_fp8) and ref::ExpertMode / ref::ReferenceOptions. Delete
// tests/compat/ (and its line in tests/CMakeLists.txt) once it includes host/runtime/engine.h and
// passes DecodeOptions.
#pragma once

#include "host/decode_options.h"
#include "host/runtime/engine.h"

namespace gptoss {

struct GpuEngineOptions {
  int max_context = 4096;
  bool experts_fp8 = false;
  bool keep_logits = false;
  bool quiet = false;
  operator DecodeOptions() const {
    DecodeOptions o;
    o.experts = experts_fp8 ? ExpertMode::kFp8 : ExpertMode::kBf16;
    o.max_context = max_context;
    o.keep_logits = keep_logits;
    o.quiet = quiet;
    return o;
  }
};

namespace ref {
using ExpertMode = gptoss::ExpertMode;
using ReferenceOptions = gptoss::DecodeOptions;
}  // namespace ref

}  // namespace gptoss
