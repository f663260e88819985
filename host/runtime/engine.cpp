#include "host/runtime/engine.h"

#ifndef GPTOSS_GPU_OFF

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include <fmt/core.h>

#include "host/error.h"
#include "host/gpu.h"
#include "host/runtime/megakernel_launch.h"
#include "host/runtime/weight_upload.h"
#include "host/runtime/synth_gpu.h"
#include "megakernel/megakernel.h"
#include "megakernel/phases.h"
#include "prefill/prefill.h"

namespace gptoss {
namespace {

constexpr size_t kAlign = 256;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

uint64_t gpu_kv_cache_bytes(const ModelConfig& c, int max_context) {
  uint64_t total = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    const int cap = c.is_sliding(l) ? std::min(c.sliding_window, max_context) : max_context;
    total += 2ull * uint64_t(c.num_kv_heads) * uint64_t(cap) * uint64_t(c.head_dim) * 2ull;
  }
  return total;
}

class EventPair {
 public:
  gpu::EventTimer timer;
};

GpuEngine::GpuEngine(const ModelWeights& w, const DecodeOptions& options)
    : config_(w.config), opts_(options) {
  init(&w, 0);
}

GpuEngine::GpuEngine(const ModelConfig& config, uint64_t synthetic_seed,
                     const DecodeOptions& options)
    : config_(config), opts_(options) {
  init(nullptr, synthetic_seed);
}

void GpuEngine::init(const ModelWeights* host_weights, uint64_t synthetic_seed) {
  const ModelConfig& c = config_;
  opts_.max_context = resolve_max_context(c, opts_.max_context);
  std::string why;
  if (!gpu::available(&why)) {
    throw gpu::GpuError(fmt::format("no usable GPU: {}", why), "use the CPU backend",
                        Remedy::kCpuBackend);
  }
  const gpu::DeviceInfo dev = gpu::device_info();
  gpu::require_hopper(dev);
  grid_ = megakernel_grid_size();

  formats_ = host_weights ? host_weights->formats : opts_.synthetic_formats;
  // Plan every allocation first, so a too-small GPU is reported before anything is uploaded.
  const std::vector<TensorSpec> specs = archive_tensors(c, formats_);
  uint64_t weight_bytes = 0;
  for (const TensorSpec& s : specs) weight_bytes += align_up(s.num_bytes());
  // At most 16 splits per KV head (the megakernel merges them in shared memory).
  const int max_splits = std::clamp(grid_ / c.num_kv_heads, 1, mk::kMaxAttentionSplits);
  const uint64_t rope_bytes = uint64_t(opts_.max_context) * c.head_dim * sizeof(float);
  const uint64_t kv_bytes = gpu_kv_cache_bytes(c, opts_.max_context);
  const uint64_t act_bytes = 64ull << 20;  // activations, partials, logits: generous bound
  const uint64_t logits_bytes = uint64_t(c.vocab_size) * sizeof(float);
  const uint64_t need = weight_bytes + rope_bytes + kv_bytes + act_bytes + logits_bytes;
  const uint64_t reserve = 512ull << 20;  // CUDA context, kernel images, fragmentation
  if (need + reserve > dev.free_bytes) {
    const uint64_t fixed = weight_bytes + act_bytes + logits_bytes + reserve;
    std::string fit = "none: the weights alone do not fit";
    if (fixed < dev.free_bytes) {
      const uint64_t per_pos = gpu_kv_cache_bytes(c, 2) - gpu_kv_cache_bytes(c, 1) +
                               uint64_t(c.head_dim) * sizeof(float);
      fit = fmt::format("about {}", (dev.free_bytes - fixed) / std::max<uint64_t>(per_pos, 1));
    }
    throw gpu::GpuError(
        fmt::format("not enough GPU memory: weights {:.2f} GiB + KV cache {:.2f} GiB (context {}) "
                    "+ buffers {:.2f} GiB > {:.2f} GiB free on {}",
                    weight_bytes / 1073741824.0, kv_bytes / 1073741824.0, opts_.max_context,
                    (rope_bytes + act_bytes + logits_bytes) / 1073741824.0,
                    dev.free_bytes / 1073741824.0, dev.name),
        fmt::format("lower the context length (largest that would fit: {})", fit),
        Remedy::kLowerContext);
  }

  auto alloc = [&](size_t bytes, const char* what) {
    void* p = gpu::device_alloc(bytes, what);
    allocations_.push_back(p);
    return p;
  };

  // Weights: one allocation, each tensor 256-byte aligned; copied through pinned staging
  // buffers from the host view, or generated in place (--synthetic).
  auto* weights = static_cast<std::byte*>(alloc(weight_bytes, "model weights"));
  std::vector<const void*> dev_ptr(specs.size());
  {
    size_t offset = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
      dev_ptr[i] = weights + offset;
      offset += align_up(specs[i].num_bytes());
    }
  }
  if (!host_weights) {
    std::vector<void*> dst(dev_ptr.size());
    for (size_t i = 0; i < dst.size(); ++i) dst[i] = const_cast<void*>(dev_ptr[i]);
    synth_fill_device_all(dst, c, synthetic_seed, formats_);
    gpu::synchronize();
  } else {
    const ModelWeights& w = *host_weights;
    std::vector<const void*> host;
    host.reserve(specs.size());
    // archive_tensors() order: the tensor table's (visit_layer_tensors, host/tensor_spec.h).
    host.push_back(w.embed);
    for (const LayerWeights& L : w.layers) {
      visit_layer_tensors(L, formats_.attn, [&](LayerTensor, const void* p) { host.push_back(p); });
    }
    host.push_back(w.final_norm);
    host.push_back(w.lm_head);
    if (formats_.lm_head == archive::WeightFormat::kFP8) host.push_back(w.lm_head_scale);
    GPTOSS_CHECK(host.size() == specs.size(), "internal: {} weight pointers for {} tensors",
                 host.size(), specs.size());
    // From the weights' memory map (for an archive: measured faster than pread of the file both
    // warm and cold on the H200, docs/PERF.md 2026-12-04 session 5).
    std::vector<UploadItem> items(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      items[i].src = static_cast<const std::byte*>(host[i]);
      items[i].dst = const_cast<void*>(dev_ptr[i]);
      items[i].bytes = specs[i].num_bytes();
    }
    UploadOptions upload;
    upload.progress = !opts_.quiet;
    upload_stats_ = upload_weights(items, upload);
  }
  weight_ptrs_ = dev_ptr;

  auto& a = args_;
  a.num_layers = c.num_layers;
  a.hidden = c.hidden;
  a.num_heads = c.num_heads;
  a.num_kv_heads = c.num_kv_heads;
  a.head_dim = c.head_dim;
  a.num_experts = c.num_experts;
  a.experts_per_token = c.experts_per_token;
  a.intermediate = c.intermediate;
  a.vocab_size = c.vocab_size;
  a.sliding_window = c.sliding_window;
  a.max_context = opts_.max_context;
  a.rms_norm_eps = c.rms_norm_eps;
  a.swiglu_limit = c.swiglu_limit;
  a.max_splits = max_splits;
  check_megakernel(a, grid_);

  size_t idx = 0;
  a.embed = static_cast<const uint16_t*>(dev_ptr[idx++]);
  layers_host_.resize(size_t(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    mk::LayerArgs& L = layers_host_[size_t(l)];
    L = mk::LayerArgs{};  // the scale fields stay null for bf16 attention
    visit_layer_tensors(L, formats_.attn, [&](LayerTensor, auto& field) {  // the canonical order, as uploaded
      field = static_cast<std::remove_reference_t<decltype(field)>>(dev_ptr[idx++]);
    });
    L.sliding = c.is_sliding(l) ? 1 : 0;
    L.kv_capacity = L.sliding ? std::min(c.sliding_window, opts_.max_context) : opts_.max_context;
    const size_t kv = size_t(c.num_kv_heads) * L.kv_capacity * c.head_dim * sizeof(uint16_t);
    L.k_cache = static_cast<uint16_t*>(alloc(kv, "KV cache"));
    L.v_cache = static_cast<uint16_t*>(alloc(kv, "KV cache"));
  }
  a.final_norm = static_cast<const uint16_t*>(dev_ptr[idx++]);
  a.lm_head = dev_ptr[idx++];
  a.lm_head_scale = formats_.lm_head == archive::WeightFormat::kFP8
                        ? static_cast<const float*>(dev_ptr[idx++])
                        : nullptr;
  GPTOSS_CHECK(idx == dev_ptr.size(), "internal: {} of {} weight pointers bound", idx, dev_ptr.size());
  auto* layers_dev = static_cast<mk::LayerArgs*>(alloc(sizeof(mk::LayerArgs) * c.num_layers, "layer table"));
  gpu::copy_to_device(layers_dev, layers_host_.data(), sizeof(mk::LayerArgs) * c.num_layers);
  a.layers = layers_dev;

  // RoPE table: the YaRN rows the CPU reference uses too (model/rope_yarn.h).
  {
    const std::vector<float> table = yarn_rope_table(yarn_params(c), opts_.max_context);
    auto* t = static_cast<float*>(alloc(table.size() * sizeof(float), "RoPE table"));
    gpu::copy_to_device(t, table.data(), table.size() * sizeof(float));
    a.rope_table = t;
  }

  a.x = static_cast<float*>(alloc(sizeof(float) * c.hidden, "activations"));
  a.qkv = static_cast<uint16_t*>(alloc(2 * size_t(c.qkv_dim()), "activations"));
  a.attn_partial = static_cast<float*>(
      alloc(sizeof(float) * size_t(c.num_kv_heads) * max_splits * 8 * (c.head_dim + 2), "activations"));
  a.attn_out = static_cast<uint16_t*>(alloc(2 * size_t(c.q_dim()), "activations"));
  a.router_logits = static_cast<float*>(alloc(sizeof(float) * c.num_experts, "activations"));
  a.swiglu_out = static_cast<uint16_t*>(
      alloc(2 * size_t(c.experts_per_token) * c.intermediate, "activations"));
  a.expert_ids = static_cast<int32_t*>(alloc(sizeof(int32_t) * c.experts_per_token, "activations"));
  a.expert_weights = static_cast<float*>(alloc(sizeof(float) * c.experts_per_token, "activations"));
  a.cta_best_val = static_cast<float*>(alloc(sizeof(float) * grid_, "activations"));
  a.cta_best_idx = static_cast<int32_t*>(alloc(sizeof(int32_t) * grid_, "activations"));
  auto* io = static_cast<int32_t*>(alloc(sizeof(int32_t) * 2, "token io"));
  a.token_in = io;
  a.token_out = io + 1;
  a.logits = opts_.keep_logits
                 ? static_cast<float*>(alloc(sizeof(float) * size_t(c.vocab_size), "logits"))
                 : nullptr;
  a.barrier = static_cast<GridBarrierState*>(alloc(sizeof(GridBarrierState), "sync state"));
  // A barrier that waits past the spin cap writes where it hung into mapped host memory (which
  // the trap that follows cannot make unreadable) and traps: a clear error, never a silent hang.
  {
    void* report_dev = nullptr;
    hang_report_ = static_cast<HangReport*>(gpu::mapped_alloc(sizeof(HangReport), &report_dev));
    a.barrier_cfg = GridBarrierConfig{};
    a.barrier_cfg.spin_cap = kBarrierSpinCap;
    a.barrier_cfg.report = static_cast<HangReport*>(report_dev);
  }
  a.counters = static_cast<uint32_t*>(alloc(sizeof(uint32_t) * (c.num_kv_heads + 1), "sync state"));
  a.control = static_cast<mk::ControlBlock*>(alloc(sizeof(mk::ControlBlock), "control block"));
  gpu::memset_device(a.barrier, 0, sizeof(GridBarrierState));
  gpu::memset_device(a.counters, 0, sizeof(uint32_t) * (c.num_kv_heads + 1));
  gpu::memset_device(a.control, 0, sizeof(mk::ControlBlock));
  a.experts_fp8 = opts_.experts == ExpertMode::kFp8 ? 1 : 0;
  a.stop_layer = -1;
  a.stop_phase = -1;
  a.start_layer = 0;
  a.phase_mask = ~0u;
}

GpuEngine::~GpuEngine() {
  gpu::device_free(prefill_scratch_);
  for (void* p : allocations_) gpu::device_free(p);
  gpu::pinned_free(hang_report_);
}

void GpuEngine::set_barrier_spin_cap(uint32_t polls) { args_.barrier_cfg.spin_cap = polls; }

void GpuEngine::throw_if_hung() const {
  if (hang_report_ == nullptr || hang_report_->hung == 0) return;
  const HangReport r = *hang_report_;
  const int layer = int(r.phase / mk::kNumPhases), phase = int(r.phase % mk::kNumPhases);
  throw Error(fmt::format("the megakernel hung: CTA {} (SM {}) waited {:.1f} ms at the grid barrier "
                          "after phase {} of layer {} ({} of {} CTAs had arrived; barrier "
                          "generation {}, still {})",
                          r.block, r.sm, r.waited_us / 1e3, mk::phase_name(mk::Phase(phase)), layer,
                          r.arrived, grid_, r.expected, r.observed),
              "the GPU's state is lost: restart the process; if it happens again, report the "
              "command line and this message");
}

void GpuEngine::launch(int token, int pos) {
  if (pos < 0 || pos >= opts_.max_context) {
    throw Error(fmt::format("position {} is outside the context of {} tokens", pos,
                            opts_.max_context),
                "raise the context length", Remedy::kRaiseContext);
  }
  if (token < 0 || token >= config_.vocab_size) {
    throw Error(fmt::format("token id {} is outside the vocabulary (0..{})", token,
                            config_.vocab_size - 1));
  }
  const int32_t t = token;
  gpu::copy_to_device(const_cast<int32_t*>(args_.token_in), &t, sizeof(t));
  args_.pos = pos;
  if (!events_) events_ = std::make_unique<EventPair>();
  events_->timer.start();
  try {
    launch_megakernel(args_, grid_, nullptr);
    events_->timer.stop();
    gpu::synchronize();
  } catch (const gpu::GpuError&) {
    throw_if_hung();
    throw;
  }
  last_kernel_ms_ = events_->timer.elapsed_ms();
  check_control();
}

void GpuEngine::check_control() {
  mk::ControlBlock cb{};
  gpu::copy_to_host(&cb, args_.control, sizeof(cb));
  if (cb.error != uint32_t(mk::KernelError::kNone)) {
    if (cb.error == uint32_t(mk::KernelError::kBadToken)) {
      throw Error(fmt::format("the megakernel rejected token id {} (outside the vocabulary)", cb.value));
    }
    throw Error(fmt::format("the megakernel reported error {} (value {})", cb.error, cb.value));
  }
}

int GpuEngine::step(int token, int pos) {
  args_.stop_layer = -1;
  args_.stop_phase = -1;
  args_.start_layer = 0;
  launch(token, pos);
  int32_t next = -1;
  gpu::copy_to_host(&next, args_.token_out, sizeof(next));
  if (args_.phase_mask != ~0u) return 0;  // profiling run: the output is meaningless
  if (next < 0 || next >= config_.vocab_size) {
    throw Error(fmt::format("the megakernel produced no valid token at position {} (got {}): "
                            "the logits are NaN", pos, next),
                "the weights may be corrupt: run `gptoss info --verify` on the archive");
  }
  return next;
}

void GpuEngine::advance(int token, int pos) {
  args_.stop_layer = -1;
  args_.stop_phase = -1;
  args_.start_layer = 0;
  const uint32_t mask = args_.phase_mask;
  args_.phase_mask = mask & ~(1u << mk::kLmHeadPhase);
  try {
    launch(token, pos);
  } catch (...) {
    args_.phase_mask = mask;
    throw;
  }
  args_.phase_mask = mask;
}

template <typename T>
static std::vector<T> read_buffer(const T* p, size_t n) {
  std::vector<T> out(n);
  gpu::copy_to_host(out.data(), p, n * sizeof(T));
  return out;
}

static prefill::PrefillDims prefill_dims(const ModelConfig& c) {
  prefill::PrefillDims d{};
  d.num_layers = c.num_layers;
  d.hidden = c.hidden;
  d.num_heads = c.num_heads;
  d.num_kv_heads = c.num_kv_heads;
  d.head_dim = c.head_dim;
  d.num_experts = c.num_experts;
  d.experts_per_token = c.experts_per_token;
  d.intermediate = c.intermediate;
  d.sliding_window = c.sliding_window;
  d.rms_norm_eps = c.rms_norm_eps;
  d.swiglu_limit = c.swiglu_limit;
  return d;
}

void GpuEngine::set_prefill_chunk_tokens(int tokens) {
  GPTOSS_CHECK(tokens >= 1, "prefill chunk of {} tokens", tokens);
  if (tokens == prefill_chunk_) return;
  gpu::device_free(prefill_scratch_);
  prefill_scratch_ = nullptr;
  prefill_chunk_ = tokens;
}

void GpuEngine::prefill(const int* tokens, int count, int first_pos) {
  if (count <= 0) return;
  if (first_pos < 0 || int64_t(first_pos) + count > opts_.max_context) {
    throw Error(fmt::format("positions {} to {} are outside the context of {} tokens", first_pos,
                            int64_t(first_pos) + count - 1, opts_.max_context),
                "raise the context length", Remedy::kRaiseContext);
  }
  for (int i = 0; i < count; ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size) {
      throw Error(fmt::format("token id {} is outside the vocabulary (0..{})", tokens[i],
                              config_.vocab_size - 1));
    }
  }
  const prefill::PrefillDims d = prefill_dims(config_);
  if (const std::string why = prefill::prefill_shape_problem(d); !why.empty()) {
    throw Error(fmt::format("the batched prefill does not support this model: {}", why),
                "use --prefill decode");
  }
  const uint64_t bytes = prefill::prefill_scratch_bytes(d, prefill_chunk_);
  if (!prefill_scratch_) {
    const gpu::DeviceInfo dev = gpu::device_info();
    const uint64_t reserve = 256ull << 20;  // kernel images, fragmentation
    if (bytes + reserve > dev.free_bytes) {
      throw gpu::GpuError(
          fmt::format("not enough GPU memory for the batched prefill's buffers: {:.2f} GiB (chunks "
                      "of {} tokens) > {:.2f} GiB free",
                      bytes / 1073741824.0, prefill_chunk_, dev.free_bytes / 1073741824.0),
          "use --prefill decode (the per-token path), or lower the context length",
          Remedy::kLowerContext);
    }
    prefill_scratch_ = gpu::device_alloc(bytes, "prefill buffers");
  }
  const prefill::PrefillScratch scratch =
      prefill::carve_prefill_scratch(prefill_scratch_, d, prefill_chunk_);
  const prefill::PrefillModel model{layers_host_.data(), args_.embed, args_.rope_table,
                                    args_.experts_fp8};
  if (!events_) events_ = std::make_unique<EventPair>();
  std::vector<int32_t> chunk_tokens;
  events_->timer.start();
  for (int done = 0; done < count; done += prefill_chunk_) {
    const int n = std::min(prefill_chunk_, count - done);
    chunk_tokens.assign(tokens + done, tokens + done + n);
    // Synchronous copy: the previous chunk's kernels, which read scratch.tokens, are done first.
    gpu::copy_to_device(scratch.tokens, chunk_tokens.data(), sizeof(int32_t) * size_t(n));
    prefill::prefill_chunk(d, model, scratch, n, first_pos + done);
  }
  events_->timer.stop();
  gpu::synchronize();
  last_prefill_ms_ = events_->timer.elapsed_ms();
}

int GpuEngine::kv_capacity(int layer) const { return layers_host_.at(size_t(layer)).kv_capacity; }

std::vector<uint16_t> GpuEngine::read_kv_cache(int layer, bool value) const {
  const mk::LayerArgs& L = layers_host_.at(size_t(layer));
  return read_buffer<uint16_t>(value ? L.v_cache : L.k_cache,
                               size_t(config_.num_kv_heads) * L.kv_capacity * config_.head_dim);
}

void GpuEngine::poison_kv_cache() {
  for (const mk::LayerArgs& L : layers_host_) {
    const size_t bytes = size_t(config_.num_kv_heads) * L.kv_capacity * config_.head_dim * sizeof(uint16_t);
    gpu::memset_device(L.k_cache, 0xff, bytes);
    gpu::memset_device(L.v_cache, 0xff, bytes);
  }
}

void GpuEngine::run_partial(int token, int pos, int stop_layer, int stop_phase, int start_layer,
                            const std::vector<float>* x_in) {
  if (start_layer > 0) {
    GPTOSS_CHECK(x_in && int(x_in->size()) == config_.hidden, "run_partial: x_in of hidden size needed");
    gpu::copy_to_device(args_.x, x_in->data(), sizeof(float) * x_in->size());
  }
  args_.stop_layer = stop_layer;
  args_.stop_phase = stop_phase;
  args_.start_layer = start_layer;
  launch(token, pos);
  args_.stop_layer = args_.stop_phase = -1;
  args_.start_layer = 0;
}

std::vector<float> GpuEngine::logits() const {
  GPTOSS_CHECK(args_.logits, "GpuEngine: logits were not kept (keep_logits = false)");
  std::vector<float> out(size_t(config_.vocab_size));
  gpu::copy_to_host(out.data(), args_.logits, out.size() * sizeof(float));
  return out;
}


std::vector<float> GpuEngine::read_x() const { return read_buffer(args_.x, size_t(config_.hidden)); }
std::vector<uint16_t> GpuEngine::read_qkv() const {
  return read_buffer<uint16_t>(args_.qkv, size_t(config_.qkv_dim()));
}
std::vector<uint16_t> GpuEngine::read_attn() const {
  return read_buffer<uint16_t>(args_.attn_out, size_t(config_.q_dim()));
}
std::vector<float> GpuEngine::read_router_logits() const {
  return read_buffer(args_.router_logits, size_t(config_.num_experts));
}
std::vector<uint16_t> GpuEngine::read_swiglu() const {
  return read_buffer<uint16_t>(args_.swiglu_out, size_t(config_.experts_per_token) * config_.intermediate);
}
std::vector<int32_t> GpuEngine::read_experts() const {
  return read_buffer<int32_t>(args_.expert_ids, size_t(config_.experts_per_token));
}
void GpuEngine::set_expert_mode(ExpertMode mode) {
  opts_.experts = mode;
  args_.experts_fp8 = mode == ExpertMode::kFp8 ? 1 : 0;
}
void GpuEngine::set_phase_mask(uint32_t mask) { args_.phase_mask = mask; }
void GpuEngine::enable_phase_times() {
  if (args_.phase_times) return;
  const size_t n = mk::phase_times_count(config_.num_layers);
  void* p = gpu::device_alloc(n * sizeof(uint64_t), "phase timeline");
  allocations_.push_back(p);
  gpu::memset_device(p, 0, n * sizeof(uint64_t));
  args_.phase_times = static_cast<uint64_t*>(p);
}
std::vector<uint64_t> GpuEngine::read_phase_times() const {
  if (!args_.phase_times) return {};
  return read_buffer<uint64_t>(args_.phase_times, mk::phase_times_count(config_.num_layers));
}
std::vector<uint16_t> GpuEngine::read_kv(int layer, int pos, bool value) const {
  const mk::LayerArgs& L = layers_host_.at(size_t(layer));
  const int slot = L.sliding ? pos % L.kv_capacity : pos;
  std::vector<uint16_t> out(size_t(config_.num_kv_heads) * config_.head_dim);
  for (int g = 0; g < config_.num_kv_heads; ++g) {
    const uint16_t* src = (value ? L.v_cache : L.k_cache) + (size_t(g) * L.kv_capacity + slot) * config_.head_dim;
    gpu::copy_to_host(out.data() + size_t(g) * config_.head_dim, src, sizeof(uint16_t) * config_.head_dim);
  }
  return out;
}

std::vector<uint64_t> GpuEngine::weight_hashes() const {
  const std::vector<TensorSpec> specs = archive_tensors(config_, formats_);
  std::vector<uint64_t> out(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) out[i] = device_xxh64(weight_ptrs_[i], specs[i].num_bytes());
  return out;
}

void GpuEngine::write_kv(int layer, int pos, const uint16_t* k, const uint16_t* v) {
  const mk::LayerArgs& L = layers_host_.at(size_t(layer));
  const int slot = L.sliding ? pos % L.kv_capacity : pos;
  for (int g = 0; g < config_.num_kv_heads; ++g) {
    const size_t off = (size_t(g) * L.kv_capacity + slot) * config_.head_dim;
    gpu::copy_to_device(L.k_cache + off, k + size_t(g) * config_.head_dim, sizeof(uint16_t) * config_.head_dim);
    gpu::copy_to_device(L.v_cache + off, v + size_t(g) * config_.head_dim, sizeof(uint16_t) * config_.head_dim);
  }
}

}  // namespace gptoss

#else  // GPTOSS_GPU_OFF

#include "host/gpu.h"

namespace gptoss {
uint64_t gpu_kv_cache_bytes(const ModelConfig&, int) { return 0; }
GpuEngine::GpuEngine(const ModelWeights& w, const DecodeOptions& o) : config_(w.config), opts_(o) {
  throw gpu::GpuError("this gptoss was built without GPU support (-DGPTOSS_GPU=OFF)",
                      "rebuild with -DGPTOSS_GPU=CUDA, or use the CPU backend",
                      Remedy::kCpuBackend);
}
GpuEngine::GpuEngine(const ModelConfig& c, uint64_t, const DecodeOptions& o) : config_(c), opts_(o) {
  throw gpu::GpuError("this gptoss was built without GPU support (-DGPTOSS_GPU=OFF)",
                      "rebuild with -DGPTOSS_GPU=CUDA, or use the CPU backend",
                      Remedy::kCpuBackend);
}
class EventPair {};
GpuEngine::~GpuEngine() = default;
std::vector<uint64_t> GpuEngine::weight_hashes() const { return {}; }
void GpuEngine::init(const ModelWeights*, uint64_t) {}
int GpuEngine::step(int, int) { return -1; }
void GpuEngine::advance(int, int) {}
std::vector<float> GpuEngine::logits() const { return {}; }
void GpuEngine::run_partial(int, int, int, int, int, const std::vector<float>*) {}
std::vector<float> GpuEngine::read_x() const { return {}; }
std::vector<uint16_t> GpuEngine::read_qkv() const { return {}; }
std::vector<uint16_t> GpuEngine::read_attn() const { return {}; }
std::vector<float> GpuEngine::read_router_logits() const { return {}; }
std::vector<uint16_t> GpuEngine::read_swiglu() const { return {}; }
std::vector<int32_t> GpuEngine::read_experts() const { return {}; }
void GpuEngine::set_expert_mode(ExpertMode) {}
void GpuEngine::set_phase_mask(uint32_t) {}
void GpuEngine::set_barrier_spin_cap(uint32_t) {}
void GpuEngine::enable_phase_times() {}
std::vector<uint64_t> GpuEngine::read_phase_times() const { return {}; }
std::vector<uint16_t> GpuEngine::read_kv(int, int, bool) const { return {}; }
void GpuEngine::write_kv(int, int, const uint16_t*, const uint16_t*) {}
void GpuEngine::launch(int, int) {}
void GpuEngine::prefill(const int*, int, int) {}
void GpuEngine::set_prefill_chunk_tokens(int) {}
std::vector<uint16_t> GpuEngine::read_kv_cache(int, bool) const { return {}; }
int GpuEngine::kv_capacity(int) const { return 0; }
void GpuEngine::poison_kv_cache() {}
void GpuEngine::check_control() {}
}  // namespace gptoss

#endif  // GPTOSS_GPU_OFF
