// build_info.h — what a binary knows about its own build.
#pragma once

namespace gptoss {

// The commit the binary was built from (`git describe --always --dirty`: a "-dirty" suffix means
// uncommitted changes), or "unknown" outside a git checkout. Benchmarks record it.
const char* build_commit();

}  // namespace gptoss
