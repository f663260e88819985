// bench_model.cpp — see bench_model.h.
#include "bench/bench_model.h"

#include "host/decode_options.h"
#include "host/error.h"

namespace gptoss::bench {

void open_bench_model(BenchModel& out, const std::string& model, const std::string& synthetic,
                      const std::string& attn, const std::string& lm_head) {
  out.synthetic_formats = parse_weight_formats(attn, lm_head);
  out.formats = out.synthetic_formats;
  if (model.empty()) {
    out.config = ModelConfig::preset(synthetic);
    return;
  }
  if (out.synthetic_formats != WeightFormats{}) {
    throw Error("--attn and --lm-head choose the formats of --synthetic weights; an archive's "
                "formats are fixed when it is converted");
  }
  out.file.emplace(MappedArchive::open(model));
  out.config = out.file->config();
  out.formats = out.file->formats();
}

}  // namespace gptoss::bench
