// archive_loader.cpp — fuzz target: a .gptoss image through
// MappedArchive::parse, verify() and bind_weights(). The header and directory
// checksums are recomputed over the mutated bytes before parsing (unit tests
// cover checksum mismatches), so mutations reach the checks behind them.
// Invariant: every accepted tensor and the tokenizer blob lie inside the image.
#include <cstring>
#include <memory>
#include <vector>

#define XXH_INLINE_ALL // header-only xxHash
#include <xxhash.h>

#include "fuzz/fuzz_targets.h"
#include "host/archive/archive.h"
#include "host/archive/archive_format.h"
#include "host/error.h"
#include "host/weights_view.h"

namespace gptoss::fuzz {

void archive_loader(Input data) {
  namespace ar = archive;
  // Exactly the input's size, so ASan sees any read past the end.
  auto image = std::make_shared<std::vector<std::byte>>(data.size());
  if (!data.empty())
    std::memcpy(image->data(), data.data(), data.size());
  std::vector<std::byte> &b = *image;
  if (b.size() >= sizeof(ar::Header)) {
    ar::Header h;
    std::memcpy(&h, b.data(), sizeof(h));
    const uint64_t dir_bytes = uint64_t{h.num_tensors} * ar::kEntryBytes;
    if (h.dir_offset <= b.size() && dir_bytes <= b.size() - h.dir_offset) {
      h.dir_xxh64 = XXH64(b.data() + h.dir_offset, dir_bytes, 0);
    }
    h.header_xxh64 = XXH64(&h, offsetof(ar::Header, header_xxh64), 0);
    std::memcpy(b.data(), &h, sizeof(h));
  }
  const std::span<const std::byte> bytes(b);
  auto inside = [&](std::span<const std::byte> s) {
    return s.empty() || (s.data() >= bytes.data() &&
                         s.data() + s.size() <= bytes.data() + bytes.size());
  };
  try {
    const MappedArchive a =
        MappedArchive::parse(image, bytes, "fuzz.gptoss", LoadCheck::kStructure);
    (void)a.quick_check();
    for (const ArchiveTensor &t : a.entries()) {
      const std::span<const std::byte> s = a.tensor(t.name);
      GPTOSS_FUZZ_REQUIRE(s.size() == t.num_bytes && inside(s));
    }
    GPTOSS_FUZZ_REQUIRE(inside(a.tokenizer_blob()));
    (void)a.verify();
    const ModelWeights w = bind_weights(a.config(), a.lookup());
    GPTOSS_FUZZ_REQUIRE(static_cast<int>(w.layers.size()) ==
                        a.config().num_layers);
  } catch (const Error &) {
  }
}

} // namespace gptoss::fuzz

#ifdef GPTOSS_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gptoss::fuzz::archive_loader({data, size});
  return 0;
}
#endif
