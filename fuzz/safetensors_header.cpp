// safetensors_header.cpp — fuzz target: a whole safetensors image (8-byte
// length, JSON header, data) through SafetensorsFile::parse. Invariant: every
// accepted tensor's span lies inside the image and has the size its dtype and
// shape imply.
#include <cstring>
#include <vector>

#include "converter/safetensors.h"
#include "fuzz/fuzz_targets.h"
#include "host/error.h"

namespace gptoss::fuzz {

void safetensors_header(Input data) {
  // A copy of exactly the input's size, so ASan sees any read past the end.
  std::vector<std::byte> image(data.size());
  if (!data.empty())
    std::memcpy(image.data(), data.data(), data.size());
  try {
    const conv::SafetensorsFile f =
        conv::SafetensorsFile::parse(nullptr, image, "fuzz");
    for (const conv::SafetensorsTensor &t : f.tensors()) {
      const std::span<const std::byte> d = f.data(t.name);
      GPTOSS_FUZZ_REQUIRE(d.size() == t.end - t.begin);
      GPTOSS_FUZZ_REQUIRE(d.empty() ||
                          (d.data() >= image.data() &&
                           d.data() + d.size() <= image.data() + image.size()));
      uint64_t elems = 1;
      for (int64_t dim : t.shape)
        elems *= uint64_t(dim);
      GPTOSS_FUZZ_REQUIRE(elems * dtype_size(t.dtype) == d.size());
      volatile std::byte sink{};
      if (!d.empty())
        sink = d.back();
      (void)sink;
    }
  } catch (const Error &) {
  }
}

} // namespace gptoss::fuzz

#ifdef GPTOSS_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gptoss::fuzz::safetensors_header({data, size});
  return 0;
}
#endif
