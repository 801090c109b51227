// TensorSketch on the GPU: count sketches of both inputs (bucket lists built once
// per call, so that every bucket sums its coordinates in increasing order: no
// atomics, the same bits run to run), batched real FFTs (cuFFT), the product of
// the spectra, and the inverse FFT straight into out.
//
// Synchronisation: cuFFT plans are created and destroyed per call (cufftDestroy may
// free device memory with cudaFree, which waits for the device). tensor_sketch
// synchronises its stream explicitly before it returns, so that it keeps the
// documented behaviour (returns after its work has run) on every path, the l == 1
// one without an FFT included, whatever cuFFT does inside.
#include <cuda_runtime.h>
#include <cufft.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/core/launch_plan.hpp"
#include "kernels/fuse/kernels.hpp"
#include "kernels/fuse/math.hpp"
#include "src/core/scratch.hpp"

namespace kfuse::cuda {
namespace {

using detail::FuseOperand;
using detail::SketchProblem;

[[noreturn]] void throw_cufft(cufftResult r, const char* what, const char* file, int line) {
  const Status status = r == CUFFT_ALLOC_FAILED ? Status::OutOfMemory : Status::CudaError;
  throw Error(status, std::string(file) + ":" + std::to_string(line) + ": " + what +
                          " failed: cuFFT status " + std::to_string(static_cast<int>(r)));
}

#define KFUSE_CUFFT_TRY(call)                                                        \
  do {                                                                               \
    const cufftResult kfuse_r_ = (call);                                             \
    if (kfuse_r_ != CUFFT_SUCCESS) throw_cufft(kfuse_r_, #call, __FILE__, __LINE__); \
  } while (0)

// A cuFFT plan with a work area in the context's memory, destroyed on scope exit.
class FftPlan {
 public:
  FftPlan(Context& ctx, cufftType type, long long l, long long batch, long long idist,
          long long odist) {
    KFUSE_CUFFT_TRY(cufftCreate(&plan_));
    // A constructor that throws runs no destructor: release the plan here.
    try {
      KFUSE_CUFFT_TRY(cufftSetAutoAllocation(plan_, 0));
      long long n[1] = {l};
      long long inembed[1] = {idist}, onembed[1] = {odist};
      std::size_t work = 0;
      KFUSE_CUFFT_TRY(cufftMakePlanMany64(plan_, 1, n, inembed, 1, idist, onembed, 1, odist, type,
                                          batch, &work));
      work_ = std::make_unique<detail::Scratch>(ctx, work);
      if (work > 0) KFUSE_CUFFT_TRY(cufftSetWorkArea(plan_, work_->as<void>()));
      KFUSE_CUFFT_TRY(cufftSetStream(plan_, ctx.stream()));
    } catch (...) {
      (void)cufftDestroy(plan_);
      throw;
    }
  }
  ~FftPlan() {
    if (plan_ != 0) (void)cufftDestroy(plan_);
  }
  FftPlan(const FftPlan&) = delete;
  FftPlan& operator=(const FftPlan&) = delete;
  cufftHandle get() const { return plan_; }

 private:
  cufftHandle plan_ = 0;
  std::unique_ptr<detail::Scratch> work_;
};

// sign[k] for the input's coordinates, and the coordinates of each bucket in
// increasing order (CSR: coords[start[t]] .. coords[start[t + 1] - 1]). One thread:
// d and l are embedding sizes (thousands), and the lists must come out in a fixed
// order. cursor: l ints of scratch.
__global__ void sketch_lists_kernel(std::uint64_t seed, int input, std::int64_t d, std::int64_t l,
                                    int* start, int* cursor, int* coords, float* sign) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  for (std::int64_t t = 0; t <= l; ++t)
    start[t] = 0;
  for (std::int64_t k = 0; k < d; ++k) {
    const detail::SketchHash h = detail::sketch_hash(seed, input, k, l);
    ++start[h.bucket + 1];
    sign[k] = h.sign;
  }
  for (std::int64_t t = 0; t < l; ++t) {
    start[t + 1] += start[t];
    cursor[t] = start[t];
  }
  for (std::int64_t k = 0; k < d; ++k)
    coords[cursor[detail::sketch_hash(seed, input, k, l).bucket]++] = static_cast<int>(k);
}

// dst[i][t] = sum over the bucket's coordinates k (increasing) of sign[k] v_ik.
__global__ void count_sketch_kernel(const FuseOperand op, std::int64_t n, std::int64_t l,
                                    const int* start, const int* coords, const float* sign,
                                    float* dst) {
  const std::int64_t total = n * l;
  for (std::int64_t t = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; t < total;
       t += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t i = t / l, b = t - i * l;
    float acc = 0.0f;
    for (int e = start[b]; e < start[b + 1]; ++e) {
      const int k = coords[e];
      acc = detail::fma_rn(sign[k], detail::operand_value<float>(op, i, k), acc);
    }
    dst[t] = acc;
  }
}

// fa *= fb / l (the inverse FFT is unnormalised).
__global__ void spectrum_product_kernel(cufftComplex* fa, const cufftComplex* fb,
                                        std::int64_t count, float inv_l) {
  for (std::int64_t t = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; t < count;
       t += std::int64_t(gridDim.x) * blockDim.x) {
    const cufftComplex a = fa[t], b = fb[t];
    fa[t] = make_cuFloatComplex((a.x * b.x - a.y * b.y) * inv_l, (a.x * b.y + a.y * b.x) * inv_l);
  }
}

unsigned grid_for(std::int64_t work) {
  return static_cast<unsigned>(
      std::max<std::int64_t>(1, std::min<std::int64_t>(detail::ceil_div(work, 256), 65535LL * 8)));
}

// out[i][0] = a_i b_i when l == 1 (a one-point FFT is the identity).
__global__ void sketch_product_l1_kernel(const float* a, const float* b, std::int64_t n, float* out,
                                         std::int64_t ldo) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    out[i * ldo] = detail::mul_rn(a[i], b[i]);
}

}  // namespace

namespace fuse {

void launch_tensor_sketch(Context& ctx, const SketchProblem& p) {
  if (p.n == 0) return;
  cudaStream_t stream = ctx.stream();
  const std::int64_t l = p.l, n = p.n, spectrum = l / 2 + 1;
  detail::Scratch sketches(ctx, static_cast<std::size_t>(2 * n * l) * sizeof(float));
  float* real = sketches.as<float>();
  std::unique_ptr<detail::Scratch> lists[2];
  for (int s = 0; s < 2; ++s) {
    const std::int64_t d = p.in[s].width;
    lists[s] = std::make_unique<detail::Scratch>(
        ctx, static_cast<std::size_t>(2 * l + 1 + d) * sizeof(int) +
                 static_cast<std::size_t>(d) * sizeof(float));
    int* start = lists[s]->as<int>();
    int* cursor = start + l + 1;
    int* coords = cursor + l;
    float* sign = reinterpret_cast<float*>(coords + d);
    KFUSE_LAUNCH(sketch_lists_kernel, 1, 1, 0, stream, p.seed, s, d, l, start, cursor, coords,
                 sign);
    KFUSE_LAUNCH(count_sketch_kernel, grid_for(n * l), 256, 0, stream, p.in[s], n, l, start, coords,
                 sign, real + s * n * l);
  }
  if (l == 1) {
    KFUSE_LAUNCH(sketch_product_l1_kernel, grid_for(n), 256, 0, stream, real, real + n, n, p.out,
                 p.ldo);
    KFUSE_CUDA_TRY(cudaStreamSynchronize(stream));  // the documented synchronisation
    return;
  }
  detail::Scratch spectra(ctx, static_cast<std::size_t>(2 * n * spectrum) * sizeof(cufftComplex));
  auto* freq = spectra.as<cufftComplex>();
  FftPlan forward(ctx, CUFFT_R2C, l, 2 * n, l, spectrum);
  KFUSE_CUFFT_TRY(cufftExecR2C(forward.get(), real, freq));
  KFUSE_LAUNCH(spectrum_product_kernel, grid_for(n * spectrum), 256, 0, stream, freq,
               freq + n * spectrum, n * spectrum, 1.0f / static_cast<float>(l));
  FftPlan inverse(ctx, CUFFT_C2R, l, n, spectrum, p.ldo);
  KFUSE_CUFFT_TRY(cufftExecC2R(inverse.get(), freq, p.out));
  KFUSE_CUDA_TRY(cudaStreamSynchronize(stream));  // the documented synchronisation
}

}  // namespace fuse
}  // namespace kfuse::cuda
