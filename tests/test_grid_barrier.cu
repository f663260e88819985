// test_grid_barrier.cu — device_ops/grid_barrier.cuh under a cooperative launch of as many CTAs as
// can be co-resident: thousands of rounds, with and without random jitter, in which every CTA writes
// its slice and then checks every other CTA's slice of the same round; the counter-wait variant; and
// the hang report of a barrier that can never complete (spin cap, non-trapping mode).
#include <catch2/catch.hpp>

#include <string>

#include "device_ops/grid_barrier.cuh"
#include "tests/harness.cuh"

namespace {

using namespace gptoss;
using namespace gptoss::test;
namespace dev = gptoss::dev;

constexpr int kThreads = 256;
constexpr int kWordsPerCta = 32;

struct Errors {
  uint32_t count;
  uint32_t round, reader, writer, word, expected, observed;
};

__device__ uint32_t pattern(uint32_t round, uint32_t cta, uint32_t word) {
  uint32_t h = round * 0x9e3779b1u ^ (cta + 1) * 0x85ebca77u ^ (word + 7) * 0xc2b2ae3du;
  h ^= h >> 15;
  h *= 0x2c1b3c6du;
  return h ^ (h >> 13);
}

__device__ void check_round(Errors* err, const uint32_t* buf, uint32_t round) {
  const uint32_t n = gridDim.x * kWordsPerCta;
  for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
    const uint32_t writer = i / kWordsPerCta, word = i % kWordsPerCta;
    const uint32_t want = pattern(round, writer, word), got = buf[i];
    if (got != want && atomicAdd(&err->count, 1u) == 0) {
      err->round = round, err->reader = blockIdx.x, err->writer = writer, err->word = word;
      err->expected = want, err->observed = got;
    }
  }
}

// Per-thread jitter before writing, so that CTAs reach the barrier with ragged timing.
__device__ void thread_jitter(uint32_t& rng, uint32_t max_ns) {
  if (max_ns == 0) return;
  rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
  dev::nanosleep(rng % max_ns);
}

// Round r writes buffer r % 2 (a CTA can be at most one round ahead of the slowest reader).
__global__ void barrier_stress_test_kernel(GridBarrierState* state, GridBarrierConfig cfg, uint32_t* data,
                                           Errors* err, int rounds) {
  dev::GridBarrier<true> barrier(state, gridDim.x, cfg);
  uint32_t rng = (blockIdx.x * blockDim.x + threadIdx.x) * 2654435761u + 1;
  for (int r = 0; r < rounds; ++r) {
    uint32_t* buf = data + (r & 1) * gridDim.x * kWordsPerCta;
    thread_jitter(rng, cfg.jitter_max_ns / 4);
    for (uint32_t w = threadIdx.x; w < kWordsPerCta; w += blockDim.x) buf[blockIdx.x * kWordsPerCta + w] = pattern(r, blockIdx.x, w);
    barrier.sync(uint32_t(r));
    check_round(err, buf, uint32_t(r));
  }
}

// The same protocol with a monotonic counter: each CTA publishes with fetch_add_release and waits
// for all arrivals of the round with wait_counter_geq.
__global__ void counter_stress_test_kernel(uint32_t* counter, GridBarrierConfig cfg, uint32_t* data, Errors* err,
                                           int rounds) {
  uint32_t rng = (blockIdx.x * blockDim.x + threadIdx.x) * 2654435761u + 1;
  for (int r = 0; r < rounds; ++r) {
    uint32_t* buf = data + (r & 1) * gridDim.x * kWordsPerCta;
    thread_jitter(rng, cfg.jitter_max_ns);
    for (uint32_t w = threadIdx.x; w < kWordsPerCta; w += blockDim.x) buf[blockIdx.x * kWordsPerCta + w] = pattern(r, blockIdx.x, w);
    __syncthreads();
    if (threadIdx.x == 0) {
      // Publishes this CTA's slice of round r; observed by every CTA's wait_counter_geq below.
      dev::fetch_add_release(counter, 1u);
      dev::wait_counter_geq<true>(counter, uint32_t(r + 1) * gridDim.x, /*phase=*/uint32_t(r),
                                       /*counter_id=*/0, cfg);
    }
    __syncthreads();
    check_round(err, buf, uint32_t(r));
  }
}

// A barrier that expects one CTA more than the grid has: every wait must hit the cap and report.
__global__ void barrier_hang_test_kernel(GridBarrierState* state, GridBarrierConfig cfg, uint32_t* returned) {
  dev::GridBarrier<false> barrier(state, gridDim.x + 1, cfg);
  const bool ok = barrier.sync(/*phase=*/77);
  if (threadIdx.x == 0) returned[blockIdx.x] = ok ? 1u : 2u;
}

__global__ void counter_hang_test_kernel(const uint32_t* counter, GridBarrierConfig cfg, uint32_t* returned) {
  if (threadIdx.x == 0) {
    const bool ok = dev::wait_counter_geq<false>(counter, 5u, /*phase=*/9, /*counter_id=*/42, cfg);
    returned[blockIdx.x] = ok ? 1u : 2u;
  }
}

int max_coresident(const void* kernel, int* blocks_per_sm) {
  *blocks_per_sm = gpu::max_active_blocks_per_sm(kernel, kThreads, 0);
  return gpu::multiprocessor_count();
}

void require_no_errors(const DeviceBuffer<Errors>& d_err, const std::string& what) {
  const Errors e = d_err.download()[0];
  INFO(what << ": " << e.count << " stale reads; first: round " << e.round << " reader CTA " << e.reader
            << " writer CTA " << e.writer << " word " << e.word << " expected 0x" << std::hex << e.expected
            << " observed 0x" << e.observed);
  REQUIRE(e.count == 0);
}

}  // namespace

TEST_CASE("grid barrier: every CTA sees every other CTA's writes, with and without jitter",
          "[device_ops][grid_barrier]") {
  int per_sm = 0;
  const int sms = max_coresident(reinterpret_cast<const void*>(barrier_stress_test_kernel), &per_sm);
  REQUIRE(per_sm >= 1);
  for (int ctas_per_sm : {1, per_sm}) {
    for (uint32_t jitter : {0u, 2000u}) {
      const int grid = sms * ctas_per_sm;
      const int rounds = jitter ? 3000 : 10000;
      DeviceBuffer<GridBarrierState> d_state(1);
      d_state.fill_bytes(0);
      DeviceBuffer<uint32_t> d_data(size_t(2) * grid * kWordsPerCta);
      d_data.fill_bytes(0);
      DeviceBuffer<Errors> d_err(1);
      d_err.fill_bytes(0);
      DeviceBuffer<HangReport> d_report(1);
      d_report.fill_bytes(0);
      GridBarrierConfig cfg;
      cfg.spin_cap = 1u << 30;  // a hang traps with a report instead of hanging the test run
      cfg.jitter_max_ns = jitter;
      cfg.report = d_report.get();
      launch_cooperative(barrier_stress_test_kernel, dim3(grid), dim3(kThreads), 0, d_state.get(), cfg, d_data.get(),
                         d_err.get(), rounds);
      GPTOSS_CHECK_LAUNCH();
      const std::string what = std::to_string(grid) + " CTAs, jitter " + std::to_string(jitter) + " ns, " +
                               std::to_string(rounds) + " rounds";
      require_no_errors(d_err, what);
      const GridBarrierState st = d_state.download()[0];
      INFO(what);
      REQUIRE(st.generation == uint32_t(rounds));
      REQUIRE(st.arrived == 0u);
      REQUIRE(d_report.download()[0].hung == 0u);
    }
  }
}

TEST_CASE("counter waits publish and acquire like the barrier", "[device_ops][grid_barrier]") {
  int per_sm = 0;
  const int sms = max_coresident(reinterpret_cast<const void*>(counter_stress_test_kernel), &per_sm);
  for (uint32_t jitter : {0u, 1000u}) {
    const int grid = sms * per_sm, rounds = 2000;
    DeviceBuffer<uint32_t> d_counter(1);
    d_counter.fill_bytes(0);
    DeviceBuffer<uint32_t> d_data(size_t(2) * grid * kWordsPerCta);
    d_data.fill_bytes(0);
    DeviceBuffer<Errors> d_err(1);
    d_err.fill_bytes(0);
    GridBarrierConfig cfg;
    cfg.spin_cap = 1u << 30;
    cfg.jitter_max_ns = jitter;
    launch_cooperative(counter_stress_test_kernel, dim3(grid), dim3(kThreads), 0, d_counter.get(), cfg, d_data.get(),
                       d_err.get(), rounds);
    GPTOSS_CHECK_LAUNCH();
    require_no_errors(d_err, std::to_string(grid) + " CTAs counter waits, jitter " + std::to_string(jitter));
    REQUIRE(d_counter.download()[0] == uint32_t(rounds * grid));
  }
}

TEST_CASE("a wait that cannot complete writes a hang report", "[device_ops][grid_barrier]") {
  int per_sm = 0;
  const int sms = max_coresident(reinterpret_cast<const void*>(barrier_hang_test_kernel), &per_sm);
  const int grid = sms;
  DeviceBuffer<HangReport> d_report(1);
  DeviceBuffer<uint32_t> d_returned(static_cast<size_t>(grid));
  GridBarrierConfig cfg;
  cfg.spin_cap = 20000;
  cfg.report = d_report.get();

  SECTION("grid barrier") {
    DeviceBuffer<GridBarrierState> d_state(1);
    d_state.fill_bytes(0);
    d_report.fill_bytes(0);
    d_returned.fill_bytes(0);
    launch_cooperative(barrier_hang_test_kernel, dim3(grid), dim3(kThreads), 0, d_state.get(), cfg, d_returned.get());
    GPTOSS_CHECK_LAUNCH();
    const HangReport r = d_report.download()[0];
    for (uint32_t v : d_returned.download()) REQUIRE(v == 2u);  // every CTA gave up
    REQUIRE(r.hung == 1u);
    REQUIRE(r.phase == 77u);
    REQUIRE(r.counter == 0u);  // the generation waited on
    REQUIRE(r.expected == 1u);
    REQUIRE(r.observed == 0u);
    REQUIRE(r.arrived >= 1u);
    REQUIRE(r.arrived <= uint32_t(grid));
    REQUIRE(r.block < uint32_t(grid));
    REQUIRE(r.sm < uint32_t(sms));
  }
  SECTION("counter wait") {
    DeviceBuffer<uint32_t> d_counter(std::vector<uint32_t>{3u});
    d_report.fill_bytes(0);
    d_returned.fill_bytes(0);
    counter_hang_test_kernel<<<grid, kThreads>>>(d_counter.get(), cfg, d_returned.get());
    GPTOSS_CHECK_LAUNCH();
    const HangReport r = d_report.download()[0];
    for (uint32_t v : d_returned.download()) REQUIRE(v == 2u);
    REQUIRE(r.hung == 1u);
    REQUIRE(r.phase == 9u);
    REQUIRE(r.counter == 42u);
    REQUIRE(r.expected == 5u);
    REQUIRE(r.observed == 3u);
  }
}
