// Deterministic reductions: one block, a fixed assignment of elements to threads
// and a fixed tree, so the same input gives the same bits every run.
#include <cuda_runtime.h>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/core/reduce_launch.hpp"
#include "kfuse/context.hpp"

namespace kfuse::cuda {
namespace {

constexpr int kThreads = 512;

template <class T>
__global__ void __launch_bounds__(kThreads)
    sum_to_f64_kernel(const T* x, std::int64_t n, std::int64_t stride, double* out) {
  KFUSE_SHARED(double, partial, [kThreads]);
  double s = 0.0;
  for (std::int64_t k = threadIdx.x; k < n; k += kThreads)
    s += static_cast<double>(x[k * stride]);
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = partial[0];
}

struct Coefficients {
  double c[4];
};

template <class T>
__global__ void combine_f64_kernel(const double* terms, Coefficients coeff, int count, T* out) {
  double total = 0.0;
  for (int k = 0; k < count; ++k)
    total += coeff.c[k] * terms[k];
  out[0] = static_cast<T>(total);
}

}  // namespace

template <class T>
void sum_to_f64(Context& ctx, const T* x, std::int64_t n, std::int64_t stride, double* out) {
  detail::DeviceGuard guard(ctx.device());
  KFUSE_LAUNCH(sum_to_f64_kernel<T>, 1, kThreads, 0, ctx.stream(), x, n, stride, out);
}

template <class T>
void combine_f64(Context& ctx, const double* terms, const double* coeff, int count, T* out) {
  if (count < 0 || count > 4) throw Error(Status::Internal, "combine_f64: count must be <= 4");
  detail::DeviceGuard guard(ctx.device());
  Coefficients c{};
  for (int k = 0; k < count; ++k)
    c.c[k] = coeff[k];
  KFUSE_LAUNCH(combine_f64_kernel<T>, 1, 1, 0, ctx.stream(), terms, c, count, out);
}

template void sum_to_f64<float>(Context&, const float*, std::int64_t, std::int64_t, double*);
template void sum_to_f64<double>(Context&, const double*, std::int64_t, std::int64_t, double*);
template void combine_f64<float>(Context&, const double*, const double*, int, float*);
template void combine_f64<double>(Context&, const double*, const double*, int, double*);

}  // namespace kfuse::cuda
