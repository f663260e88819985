// bench_gemv.cu — achieved bandwidth of the device-op GEMVs (device_ops/gemv_bf16.cuh,
// gemv_mxfp4.cuh) on the gpt-oss shapes, against a streaming-read kernel measured in the same run.
// Each op/config is validated once against the FP64 reference (tests/reference/op_ref.h), warmed
// up, then timed as the median of GPU-event samples. Weight copies rotate through >= 256 MB so
// nothing is served from L2 (50 MB on an H100). Two modes: "single" = one launch per GEMV
// (includes the launch gap), "fused" = many independent GEMVs in one launch (the op's throughput
// inside a persistent kernel). Prints a table, then one JSON line per result.
// Usage: bench_gemv [--samples N] [--quick]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "device_ops/gemv_bf16.cuh"
#include "host/build_info.h"
#include "device_ops/gemv_mxfp4.cuh"
#include "tests/harness.cuh"
#include "tests/reference/op_ref.h"


namespace {

using namespace gptoss;
using namespace gptoss::test;
namespace dev = gptoss::dev;

constexpr int kThreads = 256;
constexpr size_t kRotateBytes = size_t(256) << 20;

// ---- kernels -------------------------------------------------------------------------------------
// Streams `words` 16-byte words of buffer blockIdx.y's copy; XOR-reduces so the loads stay.
__global__ void stream_read_kernel(uint32_t* sink, const uint4* const* bufs, size_t words) {
  const uint4* p = bufs[blockIdx.y];
  uint32_t acc = 0;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < words; i += 4 * stride) {
    const uint4 a = dev::load_stream_16B(p + i), b = dev::load_stream_16B(p + i + stride);
    const uint4 c = dev::load_stream_16B(p + i + 2 * stride), d = dev::load_stream_16B(p + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < words; i += stride) {
    const uint4 a = dev::load_stream_16B(p + i);
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;  // practically never; keeps the loads alive
}

struct Bf16Job {
  const dev::bf16* w;
  float* y;
};

template <int kRows, int kSplitK>
__global__ void bench_gemv_bf16_kernel(const Bf16Job* jobs, const dev::bf16* bias, const float* x, int k, int rows,
                                       int rows_per_cta) {
  extern __shared__ float xs[];
  __shared__ float red[dev::kMaxWarpsPerBlock * kRows];
  for (int i = int(threadIdx.x); i < k; i += int(blockDim.x)) xs[i] = x[i];
  __syncthreads();
  const Bf16Job job = jobs[blockIdx.y];
  const int r0 = int(blockIdx.x) * rows_per_cta, r1 = min(rows, r0 + rows_per_cta);
  dev::block_gemv_bf16<kRows, kSplitK, 2>(job.w, k, bias, xs, k, r0, r1, red, [&](int r, float v) { job.y[r] = v; });
}

struct Mxfp4Job {
  dev::Mxfp4Matrix w;
  const dev::bf16* bias;
  float* y;
};

template <dev::Mxfp4Activations kAct, int kSplitK>
__global__ void bench_gemv_mxfp4_kernel(const Mxfp4Job* jobs, int k, int rows_per_cta, const float* x,
                                        const uint8_t* codes, const uint8_t* act_scales) {
  extern __shared__ __align__(16) uint8_t staged[];
  __shared__ float red[dev::kMaxWarpsPerBlock * dev::kMxfp4TileRows];
  if constexpr (kAct == dev::Mxfp4Activations::kBf16) {
    dev::stage_mxfp4_activations_bf16(staged, x, k);
  } else {
    dev::stage_mxfp4_activations_fp8(staged, codes, act_scales, k);
  }
  const Mxfp4Job job = jobs[blockIdx.y];
  const int r0 = int(blockIdx.x) * rows_per_cta, r1 = min(job.w.rows, r0 + rows_per_cta);
  dev::block_gemv_mxfp4<kAct, kSplitK, 4>(job.w, job.bias, staged, r0, r1, red,
                                          [&](int r, float v) { job.y[r] = v; });
}

__global__ void quantize_kernel(uint8_t* codes, uint8_t* scales, const float* x, int k) {
  dev::block_quantize_fp8(codes, scales, x, k);
}

// ---- timing --------------------------------------------------------------------------------------
struct Timing {
  double median_us;
  double p10_us;
  double p90_us;
};

// launch(i) issues the i-th launch (rotating buffers); a sample times `reps` launches.
Timing time_launches(const std::function<void(int)>& launch, int reps, int samples) {
  for (int i = 0; i < 3; ++i) launch(i);  // warm-up
  GPTOSS_CHECK_LAUNCH();
  gpu::EventTimer timer;
  std::vector<double> us;
  int n = 0;
  for (int s = 0; s < samples; ++s) {
    timer.start();
    for (int r = 0; r < reps; ++r) launch(n++);
    timer.stop();
    const float ms = timer.elapsed_ms();
    us.push_back(1000.0 * ms / reps);
  }
  gpu::check_launch("timed kernels");
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[us.size() / 10], us[us.size() * 9 / 10]};
}

struct Device {
  std::string name;
  int sms = 0;
  int sm_clock_mhz = 0;
  int mem_clock_mhz = 0;
  size_t l2_bytes = 0;
};

struct Result {
  std::string op, config, mode;
  int rows, k, matrices;
  double bytes;
  Timing t;
  double stream_gbps;
  bool valid;
  double worst_ratio;
};

std::vector<Result> g_results;
Device g_dev;
uint32_t* g_sink = nullptr;

// Streams the same bytes with the same rotation and launch pattern as an op (per-launch GB/s).
double matched_stream_gbps(const std::vector<const uint4*>& copies, size_t bytes_per_launch_per_buf, int bufs_per_launch,
                           int samples) {
  const int groups = int(copies.size()) / bufs_per_launch;
  DeviceBuffer<const uint4*> d_ptrs(copies);
  const size_t words = bytes_per_launch_per_buf / 16;
  const int grid = g_dev.sms * 4;
  const int reps = std::max(1, std::min(groups, 50));
  const Timing t = time_launches(
      [&](int i) {
        stream_read_kernel<<<dim3(grid, bufs_per_launch), kThreads>>>(g_sink, d_ptrs.get() + (i % groups) * bufs_per_launch,
                                                                      words);
      },
      reps, samples);
  return double(bytes_per_launch_per_buf) * bufs_per_launch / (t.median_us * 1e-6) / 1e9;
}

void print_row(const Result& r) {
  const double gbps = r.bytes / (r.t.median_us * 1e-6) / 1e9;
  std::printf("%-22s %-16s %-6s %7d %5d %3d %10.2f %9.2f %8.1f %8.1f %6.1f%%  %s\n", r.op.c_str(), r.config.c_str(),
              r.mode.c_str(), r.rows, r.k, r.matrices, r.bytes / 1e6, r.t.median_us, gbps, r.stream_gbps,
              100.0 * gbps / r.stream_gbps, r.valid ? "ok" : "INVALID");
}

const char* backend_json() { return std::strcmp(gpu::backend_name(), "HIP") == 0 ? "hip" : "cuda"; }

void print_json(const Result& r) {
  const double gbps = r.bytes / (r.t.median_us * 1e-6) / 1e9;
  std::printf(
      "{\"bench\":\"gemv\",\"op\":\"%s\",\"config\":\"%s\",\"mode\":\"%s\",\"rows\":%d,\"k\":%d,\"matrices\":%d,"
      "\"bytes\":%.0f,\"median_us\":%.3f,\"p10_us\":%.3f,\"p90_us\":%.3f,\"gbps\":%.1f,\"stream_gbps\":%.1f,"
      "\"ratio\":%.4f,\"valid\":%s,\"worst_err_over_tol\":%.3g,\"device\":\"%s\",\"sms\":%d,\"sm_clock_mhz\":%d,"
      "\"mem_clock_mhz\":%d,\"backend\":\"%s\",\"git\":\"%s\"}\n",
      r.op.c_str(), r.config.c_str(), r.mode.c_str(), r.rows, r.k, r.matrices, r.bytes, r.t.median_us, r.t.p10_us,
      r.t.p90_us, gbps, r.stream_gbps, gbps / r.stream_gbps, r.valid ? "true" : "false", r.worst_ratio,
      g_dev.name.c_str(), g_dev.sms, g_dev.sm_clock_mhz, g_dev.mem_clock_mhz, backend_json(), gptoss::build_commit());
}

// ---- bf16 ops ------------------------------------------------------------------------------------
struct Bf16Op {
  const char* name;
  int rows, k;
  bool bias;
};

template <int kRows, int kSplitK>
void bench_bf16(const Bf16Op& op, int samples, Rng& rng) {
  const size_t w_elems = size_t(op.rows) * op.k;
  const double bytes = double(w_elems) * 2 + (op.bias ? op.rows * 2.0 : 0.0);
  const int copies = int(std::max<size_t>(2, (kRotateBytes + w_elems * 2 - 1) / (w_elems * 2)));
  std::vector<DeviceBuffer<uint16_t>> w_dev;
  const auto w0 = random_bf16(w_elems, rng, -1.0, 1.0);
  w_dev.emplace_back(w0);
  for (int c = 1; c < copies; ++c) {
    w_dev.emplace_back(w_elems);
    gpu::copy_on_device(w_dev.back().get(), w_dev[0].get(), w_elems * 2);
  }
  const auto bias = random_bf16(size_t(op.rows), rng, -1.0, 1.0);
  const auto x = random_bf16_floats(size_t(op.k), rng, -2.0, 2.0);
  DeviceBuffer<uint16_t> d_bias(bias);
  DeviceBuffer<float> d_x(x);
  // One output per copy so that fused launches write distinct rows.
  DeviceBuffer<float> d_y(size_t(op.rows) * copies);
  std::vector<Bf16Job> jobs;
  for (int c = 0; c < copies; ++c) {
    jobs.push_back({reinterpret_cast<const dev::bf16*>(w_dev[size_t(c)].get()), d_y.get() + size_t(c) * op.rows});
  }
  DeviceBuffer<Bf16Job> d_jobs(jobs);
  const int groups = 8 / kSplitK;
  const int pass_rows = kRows * groups;
  const int target_ctas = 4 * g_dev.sms;
  const int passes = std::max(1, (op.rows + pass_rows * target_ctas - 1) / (pass_rows * target_ctas));
  const int rows_per_cta = pass_rows * passes;
  const int grid = (op.rows + rows_per_cta - 1) / rows_per_cta;
  const size_t smem = size_t(op.k) * sizeof(float);
  const auto* bias_ptr = op.bias ? reinterpret_cast<const dev::bf16*>(d_bias.get()) : nullptr;
  auto launch = [&](int first_job, int num_jobs) {
    bench_gemv_bf16_kernel<kRows, kSplitK><<<dim3(grid, num_jobs), kThreads, smem>>>(d_jobs.get() + first_job, bias_ptr,
                                                                                      d_x.get(), op.k, op.rows, rows_per_cta);
  };
  // Validate copy 0.
  gpu::memset_device(d_y.get(), 0xff, size_t(op.rows) * 4);
  launch(0, 1);
  GPTOSS_CHECK_LAUNCH();
  std::vector<float> y(static_cast<size_t>(op.rows));
  gpu::copy_to_host(y.data(), d_y.get(), y.size() * 4);
  const auto ref = opref::gemv_bf16(w0.data(), op.rows, op.k, x.data(), op.bias ? bias.data() : nullptr);
  const auto cmp = compare(op.name, y.data(), ref.value.data(), ref.scale.data(), y.size(), tol::kGemvBf16, index_coords());
  if (!cmp.ok) std::printf("VALIDATION FAILED: %s\n", cmp.message.c_str());

  const std::string config = "rows" + std::to_string(kRows) + "_split" + std::to_string(kSplitK) + "_rpc" +
                             std::to_string(rows_per_cta);
  std::vector<const uint4*> ptrs;
  for (auto& b : w_dev) ptrs.push_back(reinterpret_cast<const uint4*>(b.get()));
  const double stream_single = matched_stream_gbps(ptrs, w_elems * 2, 1, samples);
  const Timing single = time_launches([&](int i) { launch(i % copies, 1); }, std::max(1, std::min(copies, 50)), samples);
  g_results.push_back({op.name, config, "single", op.rows, op.k, 1, bytes, single, stream_single, cmp.ok, cmp.worst_ratio});
  print_row(g_results.back());
  const Timing fused = time_launches([&](int) { launch(0, copies); }, 1, samples);
  const double stream_fused = matched_stream_gbps(ptrs, w_elems * 2, copies, samples);
  g_results.push_back({op.name, config, "fused", op.rows, op.k, copies, bytes * copies, fused, stream_fused, cmp.ok,
                       cmp.worst_ratio});
  print_row(g_results.back());
}

// ---- MXFP4 ops -----------------------------------------------------------------------------------
struct Mxfp4Op {
  const char* name;
  int rows, k;
  int experts;  // matrices per GEMV (4 = one token's experts)
};

template <dev::Mxfp4Activations kAct, int kSplitK>
void bench_mxfp4(const Mxfp4Op& op, int samples, Rng& rng) {
  const bool fp8 = kAct == dev::Mxfp4Activations::kFp8;
  const int nb = op.k / 32;
  const size_t blk_bytes = size_t(op.rows) * nb * 16, sc_bytes = size_t(op.rows) * nb;
  const double bytes_per_matrix = double(blk_bytes + sc_bytes) + op.rows * 2.0;
  const int copies = int(std::max<size_t>(size_t(2) * op.experts, (kRotateBytes + blk_bytes - 1) / blk_bytes));
  const int problems = copies / op.experts;
  const auto blocks0 = random_bytes(blk_bytes, rng);
  std::vector<uint8_t> scales0(sc_bytes);
  for (auto& s : scales0) s = uint8_t(112 + rng.below(16));
  const auto bias0 = random_bf16(size_t(op.rows), rng, -1.0, 1.0);
  std::vector<DeviceBuffer<uint8_t>> d_blocks, d_scales;
  std::vector<DeviceBuffer<uint16_t>> d_bias;
  for (int c = 0; c < copies; ++c) {
    d_blocks.emplace_back(blocks0);
    d_scales.emplace_back(scales0);
    d_bias.emplace_back(bias0);
  }
  const auto x = random_bf16_floats(size_t(op.k), rng, -2.0, 2.0);
  DeviceBuffer<float> d_x(x), d_y(size_t(op.rows) * copies);
  DeviceBuffer<uint8_t> d_codes(static_cast<size_t>(op.k)), d_act_scales(static_cast<size_t>(nb));
  std::vector<float> x_used = x;
  if (fp8) {
    quantize_kernel<<<1, kThreads>>>(d_codes.get(), d_act_scales.get(), d_x.get(), op.k);
    GPTOSS_CHECK_LAUNCH();
    const auto codes = d_codes.download(), act_scales = d_act_scales.download();
    x_used = opref::dequantize_fp8_blocks(codes.data(), act_scales.data(), op.k);
  }
  std::vector<Mxfp4Job> jobs;
  for (int c = 0; c < copies; ++c) {
    jobs.push_back({dev::Mxfp4Matrix{d_blocks[size_t(c)].get(), d_scales[size_t(c)].get(), op.rows, nb},
                    reinterpret_cast<const dev::bf16*>(d_bias[size_t(c)].get()), d_y.get() + size_t(c) * op.rows});
  }
  DeviceBuffer<Mxfp4Job> d_jobs(jobs);
  const int groups = 8 / kSplitK;
  const int pass_rows = dev::kMxfp4TileRows * groups;
  const int target_ctas = std::max(1, 4 * g_dev.sms / op.experts);
  const int passes = std::max(1, (op.rows + pass_rows * target_ctas - 1) / (pass_rows * target_ctas));
  const int rows_per_cta = pass_rows * passes;
  const int grid = (op.rows + rows_per_cta - 1) / rows_per_cta;
  const size_t smem = size_t(fp8 ? dev::staged_fp8_bytes(op.k) : dev::staged_bf16_bytes(op.k));
  auto launch = [&](int first_job, int num_jobs) {
    bench_gemv_mxfp4_kernel<kAct, kSplitK><<<dim3(grid, num_jobs), kThreads, smem>>>(
        d_jobs.get() + first_job, op.k, rows_per_cta, d_x.get(), d_codes.get(), d_act_scales.get());
  };
  gpu::memset_device(d_y.get(), 0xff, size_t(op.rows) * 4);
  launch(0, 1);
  GPTOSS_CHECK_LAUNCH();
  std::vector<float> y(static_cast<size_t>(op.rows));
  gpu::copy_to_host(y.data(), d_y.get(), y.size() * 4);
  const auto ref = opref::gemv_mxfp4(blocks0.data(), scales0.data(), op.rows, op.k, x_used.data(), bias0.data());
  const auto cmp = compare(op.name, y.data(), ref.value.data(), ref.scale.data(), y.size(),
                           fp8 ? tol::kGemvMxfp4Fp8 : tol::kGemvMxfp4Bf16, index_coords());
  if (!cmp.ok) std::printf("VALIDATION FAILED: %s\n", cmp.message.c_str());

  const std::string name = std::string(op.name) + (fp8 ? "_fp8" : "_bf16");
  const std::string config = "split" + std::to_string(kSplitK) + "_rpc" + std::to_string(rows_per_cta);
  std::vector<const uint4*> ptrs;
  for (auto& b : d_blocks) ptrs.push_back(reinterpret_cast<const uint4*>(b.get()));
  const double stream_single = matched_stream_gbps(ptrs, blk_bytes, op.experts, samples);
  const Timing single = time_launches([&](int i) { launch((i % problems) * op.experts, op.experts); },
                                      std::max(1, std::min(problems, 50)), samples);
  g_results.push_back({name, config, "single", op.rows, op.k, op.experts, bytes_per_matrix * op.experts, single,
                       stream_single, cmp.ok, cmp.worst_ratio});
  print_row(g_results.back());
  const Timing fused = time_launches([&](int) { launch(0, copies); }, 1, samples);
  const double stream_fused = matched_stream_gbps(ptrs, blk_bytes, copies, samples);
  g_results.push_back({name, config, "fused", op.rows, op.k, copies, bytes_per_matrix * copies, fused, stream_fused,
                       cmp.ok, cmp.worst_ratio});
  print_row(g_results.back());
}

}  // namespace

int main(int argc, char** argv) {
  int samples = 30;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--samples") && i + 1 < argc) {
      samples = std::max(3, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: bench_gemv [--samples N] [--quick]\nhint: no other options\n");
      return 2;
    }
  }
  try {
    const gpu::DeviceInfo info = gpu::device_info();
    g_dev = {info.name, info.num_sms, info.clock_mhz, info.memory_clock_mhz, info.l2_bytes};
    DeviceBuffer<uint32_t> sink(1);
    g_sink = sink.get();
    std::printf("device %s, %d SMs, L2 %.0f MB, sm clock %d MHz, mem clock %d MHz, git %s\n", g_dev.name.c_str(), g_dev.sms,
                g_dev.l2_bytes / 1e6, g_dev.sm_clock_mhz, g_dev.mem_clock_mhz, gptoss::build_commit());

    // Peak streaming read over 1 GB buffers (two, alternating).
    {
      const size_t bytes = size_t(1) << 30;
      DeviceBuffer<uint8_t> a(bytes), b(bytes);
      a.fill_bytes(1);
      b.fill_bytes(2);
      const double gbps = matched_stream_gbps({reinterpret_cast<const uint4*>(a.get()), reinterpret_cast<const uint4*>(b.get())},
                                              bytes, 1, samples);
      std::printf("stream read 1 GiB: %.1f GB/s\n", gbps);
      std::printf("{\"bench\":\"gemv\",\"op\":\"stream_read_1GiB\",\"gbps\":%.1f,\"device\":\"%s\",\"backend\":\"%s\",\"git\":\"%s\"}\n",
                  gbps, g_dev.name.c_str(), backend_json(), gptoss::build_commit());
    }
    std::printf("%-22s %-16s %-6s %7s %5s %3s %10s %9s %8s %8s %7s\n", "op", "config", "mode", "rows", "K", "mat", "MB",
                "us", "GB/s", "stream", "ratio");
    Rng rng(12345);
    const Bf16Op qkv{"qkv_bf16", 5120, 2880, true}, oproj{"o_proj_bf16", 2880, 4096, true},
        lm{"lm_head_bf16", 201088, 2880, false}, router{"router128_bf16", 128, 2880, true};
    bench_bf16<2, 1>(qkv, samples, rng);
    bench_bf16<2, 4>(qkv, samples, rng);
    bench_bf16<2, 1>(oproj, samples, rng);
    bench_bf16<2, 4>(oproj, samples, rng);
    bench_bf16<4, 1>(lm, std::min(samples, 10), rng);
    if (!quick) {
      bench_bf16<1, 8>(router, samples, rng);
      bench_bf16<4, 2>(qkv, samples, rng);
    }
    const Mxfp4Op mlp1{"mlp1_1expert", 5760, 2880, 1}, mlp2{"mlp2_1expert", 2880, 2880, 1},
        mlp1x4{"mlp1_4experts", 5760, 2880, 4}, mlp2x4{"mlp2_4experts", 2880, 2880, 4};
    for (const Mxfp4Op& op : {mlp1, mlp2, mlp1x4, mlp2x4}) {
      bench_mxfp4<dev::Mxfp4Activations::kBf16, 8>(op, samples, rng);
      bench_mxfp4<dev::Mxfp4Activations::kFp8, 8>(op, samples, rng);
      if (!quick) {
        bench_mxfp4<dev::Mxfp4Activations::kBf16, 2>(op, samples, rng);
        bench_mxfp4<dev::Mxfp4Activations::kFp8, 2>(op, samples, rng);
      }
    }
    std::printf("\n");
    for (const Result& r : g_results) print_json(r);
    const bool all_valid = std::all_of(g_results.begin(), g_results.end(), [](const Result& r) { return r.valid; });
    return all_valid ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gemv: %s\n", e.what());
    return 1;
  }
}
