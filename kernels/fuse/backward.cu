// The fusion family's backwards on the GPU (kron_fuse_backward, rp_fuse_backward):
// grid-stride kernels for the entries kernels/fuse/problem.hpp defines (one thread per
// output entry, or per row for the cosine chain, whose row dot product every entry
// needs), and cuBLAS for the products with U^T and the Fourier frequencies. The
// host layer (src/fuse/api.cpp) recomputes the forward's factors with the forward's
// own kernels and sequences these.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/core/cublas_gemm.hpp"
#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/core/launch_plan.hpp"
#include "kernels/fuse/kernels.hpp"
#include "kernels/fuse/problem.hpp"

namespace kfuse::cuda {
namespace {

using detail::CosineGradProblem;
using detail::FactorGradProblem;
using detail::FourierGradProblem;
using detail::GradGemm;
using detail::KronGradProblem;

constexpr int kBlock = 256;

unsigned grid_for(std::int64_t work) {
  return static_cast<unsigned>(std::max<std::int64_t>(
      1, std::min<std::int64_t>(detail::ceil_div(work, kBlock), 65535LL * 8)));
}

__global__ void factor_grad_kernel(const FactorGradProblem p) {
  const std::int64_t total = p.n * p.l;
  for (std::int64_t t = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; t < total;
       t += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t i = t / p.l, c = t - i * p.l;
    p.out[t] = detail::factor_grad_entry(p, i, c);
  }
}

template <class W>
__global__ void cosine_grad_kernel(const CosineGradProblem p) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < p.n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    detail::cosine_grad_row<W>(p, i);
}

__global__ void fourier_grad_kernel(const FourierGradProblem p) {
  const std::int64_t total = p.n * p.r;
  for (std::int64_t t = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; t < total;
       t += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t i = t / p.r, c = t - i * p.r;
    p.grad[i * 2 * p.r + c] = detail::fourier_grad_entry(p, i, c);
  }
}

template <class W>
__global__ void kron_grad_kernel(const KronGradProblem p) {
  const std::int64_t w = p.in[p.skip].width;
  const std::int64_t total = p.n * w;
  for (std::int64_t t = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; t < total;
       t += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t i = t / w, k = t - i * w;
    static_cast<W*>(p.out)[i * p.ldo + k] = detail::kron_grad_entry<W>(p, i, k);
  }
}

}  // namespace

namespace fuse {

void launch_factor_grad(Context& ctx, const FactorGradProblem& p) {
  if (p.n == 0 || p.l == 0) return;
  KFUSE_LAUNCH(factor_grad_kernel, grid_for(p.n * p.l), kBlock, 0, ctx.stream(), p);
}

void launch_grad_gemm(Context& ctx, const GradGemm& g, Precision precision) {
  if (g.m == 0 || g.n == 0) return;
  const cublasComputeType_t compute =
      precision == Precision::Exact ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
  const GemmOperand A{g.A, CUDA_R_32F, g.lda, Op::N};
  const GemmOperand B{g.B, CUDA_R_32F, g.ldb, Op::T};
  gemm(ctx, g.m, g.n, g.k, g.alpha, A, B, 0.0f, g.C, CUDA_R_32F, g.ldc, compute);
}

template <class W>
void launch_cosine_grad(Context& ctx, const CosineGradProblem& p) {
  if (p.n == 0) return;
  KFUSE_LAUNCH(cosine_grad_kernel<W>, grid_for(p.n), kBlock, 0, ctx.stream(), p);
}

void launch_fourier_grad(Context& ctx, const FourierGradProblem& p) {
  if (p.n == 0 || p.r == 0) return;
  KFUSE_LAUNCH(fourier_grad_kernel, grid_for(p.n * p.r), kBlock, 0, ctx.stream(), p);
}

template <class W>
void launch_kron_grad(Context& ctx, const KronGradProblem& p) {
  const std::int64_t w = p.in[p.skip].width;
  if (p.n == 0 || w == 0) return;
  KFUSE_LAUNCH(kron_grad_kernel<W>, grid_for(p.n * w), kBlock, 0, ctx.stream(), p);
}

template void launch_cosine_grad<float>(Context&, const CosineGradProblem&);
template void launch_cosine_grad<double>(Context&, const CosineGradProblem&);
template void launch_kron_grad<float>(Context&, const KronGradProblem&);
template void launch_kron_grad<double>(Context&, const KronGradProblem&);

}  // namespace fuse
}  // namespace kfuse::cuda
