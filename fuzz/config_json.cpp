// config_json.cpp — fuzz target: a checkpoint's config.json text through the
// converter's path (nlohmann parse, ModelConfig::from_json, plan_archive).
// Invariants: an accepted config survives both JSON forms and the archive's
// ConfigRecord unchanged, and its plan is consistent.
#include <string_view>

#include <nlohmann/json.hpp>

#include "converter/archive_writer.h"
#include "fuzz/fuzz_targets.h"
#include "host/archive/archive.h"
#include "host/error.h"
#include "host/model_config.h"

namespace gptoss::fuzz {

void config_json(Input data) {
  const std::string_view text(reinterpret_cast<const char *>(data.data()),
                              data.size());
  const nlohmann::json j =
      nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return;
  ModelConfig c;
  try {
    c = ModelConfig::from_json(j, "config.json");
  } catch (const Error &) {
    return;
  }
  GPTOSS_FUZZ_REQUIRE(ModelConfig::from_json(c.to_hf_json(), "hf") == c);
  GPTOSS_FUZZ_REQUIRE(from_config_record(to_config_record(c)) == c);
  const ModelConfig orig =
      ModelConfig::from_json(c.to_original_json(), "original");
  GPTOSS_FUZZ_REQUIRE(orig.hidden == c.hidden &&
                      orig.num_layers == c.num_layers);
  try {
    const conv::ArchivePlan plan =
        conv::plan_archive(c, WeightFormats{}, /*tokenizer_bytes=*/0);
    GPTOSS_FUZZ_REQUIRE(plan.offsets.size() == plan.tensors.size());
    GPTOSS_FUZZ_REQUIRE(plan.file_bytes >= plan.tensor_bytes);
    uint64_t prev_end = plan.data_offset;
    for (size_t i = 0; i < plan.tensors.size(); ++i) {
      GPTOSS_FUZZ_REQUIRE(plan.offsets[i] % archive::kAlignment == 0 &&
                          plan.offsets[i] >= prev_end);
      prev_end = plan.offsets[i] + plan.tensors[i].num_bytes();
    }
    GPTOSS_FUZZ_REQUIRE(prev_end <= plan.file_bytes);
  } catch (const Error &) {
  }
}

} // namespace gptoss::fuzz

#ifdef GPTOSS_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gptoss::fuzz::config_json({data, size});
  return 0;
}
#endif
