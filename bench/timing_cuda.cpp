// Timing with CUDA events and an L2 flush, and the device's peak rates.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "bench.hpp"

namespace kfuse::bench {

std::string cpu_model();
int cpu_threads();
std::vector<double> time_cpu_ms(const std::function<void(int)>& body, int warmup, int runs);

namespace {
void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}
}  // namespace

BackendInfo describe(const Context& ctx) {
  BackendInfo info;
  if (ctx.backend() != Backend::Cuda) {
    info.backend = "cpu";
    info.device = cpu_model();
    info.threads = cpu_threads();
    return info;
  }
  info.backend = "cuda";
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, ctx.device()), "cudaGetDeviceProperties");
  info.device = prop.name;
  info.sm_count = prop.multiProcessorCount;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.l2_bytes = prop.l2CacheSize;
  int clock_khz = 0;
  check(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, ctx.device()),
        "cudaDeviceGetAttribute(ClockRate)");
  info.clock_hz = clock_khz * 1e3;
  int driver = 0;
  check(cudaDriverGetVersion(&driver), "cudaDriverGetVersion");
  info.driver = std::to_string(driver / 1000) + "." + std::to_string((driver % 1000) / 10);
  return info;
}

std::vector<double> time_ms(Context& ctx, const std::function<void(int)>& body, int warmup,
                            int runs) {
  if (ctx.backend() != Backend::Cuda) return time_cpu_ms(body, warmup, runs);
  cudaStream_t stream = ctx.stream();
  int l2 = 0;
  check(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, ctx.device()), "L2 size");
  void* flush = nullptr;
  const std::size_t flush_bytes = 2 * static_cast<std::size_t>(l2 > 0 ? l2 : (64 << 20));
  check(cudaMalloc(&flush, flush_bytes), "cudaMalloc(flush)");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  std::vector<double> ms;
  try {
    for (int i = 0; i < warmup; ++i)
      body(i);
    for (int i = 0; i < runs; ++i) {
      check(cudaMemsetAsync(flush, i & 0xff, flush_bytes, stream), "L2 flush");
      check(cudaEventRecord(start, stream), "cudaEventRecord");
      body(warmup + i);
      check(cudaEventRecord(stop, stream), "cudaEventRecord");
      check(cudaEventSynchronize(stop), "cudaEventSynchronize");
      float t = 0;
      check(cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
      ms.push_back(t);
    }
  } catch (...) {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaFree(flush);
    throw;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(flush);
  return ms;
}

double peak_exp2_per_s(const BackendInfo& info) {
  // MUFU.EX2: 16 results per clock per SM on sm_80 and sm_90.
  return info.backend == "cuda" ? 16.0 * info.sm_count * info.clock_hz : 0;
}

double peak_flop_per_s(const BackendInfo& info, Precision precision) {
  if (info.backend != "cuda") return 0;
  // Dense flops per clock per SM: FP32 FFMA 128 lanes x 2. Tensor cores, from the
  // A100 / H100 whitepapers' dense rates over SMs x boost clock: sm_80 TF32 1024,
  // BF16 2048; sm_90 TF32 2048, BF16 4096.
  double per_sm = 256;
  const bool hopper = info.cc_major >= 9;
  if (precision == Precision::TF32) per_sm = hopper ? 2048 : 1024;
  if (precision == Precision::BF16) per_sm = hopper ? 4096 : 2048;
  return per_sm * info.sm_count * info.clock_hz;
}

}  // namespace kfuse::bench
