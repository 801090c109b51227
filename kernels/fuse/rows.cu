// Row-wise kernels of the fusion family: cosine row scales, the random matrices
// (U, random Fourier frequencies), and the exact Kronecker writer.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/core/launch_plan.hpp"
#include "kernels/fuse/kernels.hpp"
#include "kernels/fuse/math.hpp"

namespace kfuse::cuda {
namespace {

using detail::FuseOperand;
using detail::KronProblem;

constexpr int kBlock = 256;

unsigned blocks_for(std::int64_t work, std::int64_t cap = 65535LL * 16) {
  return static_cast<unsigned>(
      std::max<std::int64_t>(1, std::min(detail::ceil_div(work, kBlock), cap)));
}

template <class W>
__global__ void inv_norms_kernel(const FuseOperand op, std::int64_t n, W* out) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x)
    out[i] = detail::row_inv_norm<W>(op, i);
}

// One thread per quad of four consecutive columns: one Philox block.
__global__ void random_matrix_kernel(const detail::RandomMatrix r, float* out, bool vec) {
  const std::int64_t quads = (r.cols + 3) / 4;
  const std::int64_t total = r.rows * quads;
  for (std::int64_t t = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; t < total;
       t += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t row = t / quads, q = t - row * quads;
    float v[4];
    detail::random_quad(r.seed, r.stream, static_cast<std::uint64_t>(row),
                        static_cast<std::uint64_t>(q), r.distribution, v);
    float* dst = out + row * r.ld + 4 * q;
    if (vec && 4 * q + 3 < r.cols) {
      *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
      for (int e = 0; e < 4 && 4 * q + e < r.cols; ++e)
        dst[e] = v[e];
    }
  }
}

// ------------------------------------------------------------------ kron_fuse

// Elements of a fused row per block: large against the staged inputs (a few
// thousand values), small enough that a row of 393216 (512 x 768) spreads over
// 12 blocks.
constexpr std::int64_t kKronChunk = 32768;
// Above this the mapped rows are not staged in shared memory (read on the fly).
constexpr std::size_t kKronMaxStagedBytes = 96 * 1024;

template <class W>
struct Store4;
template <>
struct Store4<float> {
  __device__ static void at(float* dst, const float (&v)[4]) {
    *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
  }
};
template <>
struct Store4<double> {
  __device__ static void at(double* dst, const double (&v)[4]) {
    reinterpret_cast<double2*>(dst)[0] = make_double2(v[0], v[1]);
    reinterpret_cast<double2*>(dst)[1] = make_double2(v[2], v[3]);
  }
};

// Row i of the fused matrix, chunk blockIdx.x: each thread writes four consecutive
// columns with 16-byte stores (when rows are 16-byte aligned), decoding its column
// into one index per input once and then stepping. One pass: out is written once
// and never read.
template <class W>
__global__ void __launch_bounds__(kBlock) kron_kernel(const KronProblem p, bool vec, bool staged) {
  KFUSE_DYNAMIC_SHARED(16, unsigned char, smem_raw);
  W* sv = reinterpret_cast<W*>(smem_raw);
  constexpr int kMax = detail::kFuseMaxOperands;
  const int m = p.count;
  std::int64_t offset[kMax];
  std::uint32_t width[kMax];
  std::int64_t total = 0;
#pragma unroll
  for (int j = 0; j < kMax; ++j) {
    offset[j] = total;
    width[j] = j < m ? static_cast<std::uint32_t>(p.in[j].width) : 1u;
    total += j < m ? p.in[j].width : 0;
  }
  const FuseOperand& tail = p.in[m - 1];
  const std::int64_t tail_offset = total - tail.width;
  const std::uint32_t last = static_cast<std::uint32_t>(tail.width);
  const std::int64_t c0 = blockIdx.x * kKronChunk;
  const std::int64_t c1 = std::min(c0 + kKronChunk, p.width);
  W* out = static_cast<W*>(p.out);
  for (std::int64_t i = blockIdx.y; i < p.n; i += gridDim.y) {
    if (staged) {
      __syncthreads();  // the previous row's values are consumed
#pragma unroll
      for (int j = 0; j < kMax; ++j)
        if (j < m)
          for (std::int64_t k = threadIdx.x; k < p.in[j].width; k += blockDim.x)
            sv[offset[j] + k] = detail::operand_value<W>(p.in[j], i, k);
      __syncthreads();
    }
    // The product of the leading inputs' values for prefix index q (inputs 0 .. m-2),
    // rounded left to right.
    auto prefix_of = [&](std::uint32_t q) -> W {
      std::uint32_t idx[kMax];
#pragma unroll
      for (int j = kMax - 2; j >= 0; --j) {
        idx[j] = j < m - 1 ? q % width[j] : 0u;
        q = j < m - 1 ? q / width[j] : q;
      }
      W prefix = staged ? sv[idx[0]] : detail::operand_value<W>(p.in[0], i, idx[0]);
#pragma unroll
      for (int j = 1; j < kMax - 1; ++j)
        if (j < m - 1)
          prefix = detail::mul_rn(prefix, staged ? sv[offset[j] + idx[j]]
                                                 : detail::operand_value<W>(p.in[j], i, idx[j]));
      return prefix;
    };
    W* row = out + i * p.ldo;
    for (std::int64_t c = c0 + 4 * threadIdx.x; c < c1; c += 4 * std::int64_t(blockDim.x)) {
      // Column c = q * last + r (c < 2^31: 32-bit arithmetic).
      const std::uint32_t cc = static_cast<std::uint32_t>(c);
      std::uint32_t q = cc / last;
      std::uint32_t r = cc - q * last;
      W prefix = prefix_of(q);
      W v[4] = {};
      const int count = static_cast<int>(std::min<std::int64_t>(4, c1 - c));
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (e < count) {
          v[e] = detail::mul_rn(
              prefix, staged ? sv[tail_offset + r] : detail::operand_value<W>(tail, i, r));
          if (++r == last && e + 1 < count) {
            r = 0;
            prefix = prefix_of(++q);
          }
        }
      }
      if (vec && count == 4) {
        Store4<W>::at(row + c, v);
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (e < count) row[c + e] = v[e];
      }
    }
  }
}

}  // namespace

namespace fuse {

template <class W>
void launch_inv_norms(Context& ctx, const FuseOperand& op, std::int64_t n, W* out) {
  if (n == 0) return;
  KFUSE_LAUNCH(inv_norms_kernel<W>, blocks_for(n), kBlock, 0, ctx.stream(), op, n, out);
}

void launch_random_matrix(Context& ctx, const detail::RandomMatrix& r, float* out) {
  if (r.rows == 0 || r.cols == 0) return;
  const bool vec = r.ld % 4 == 0 && reinterpret_cast<std::uintptr_t>(out) % 16 == 0;
  KFUSE_LAUNCH(random_matrix_kernel, blocks_for(r.rows * ((r.cols + 3) / 4)), kBlock, 0,
               ctx.stream(), r, out, vec);
}

template <class W>
void launch_kron(Context& ctx, const KronProblem& p) {
  if (p.n == 0) return;
  std::int64_t total = 0;
  for (int j = 0; j < p.count; ++j)
    total += p.in[j].width;
  const std::size_t bytes = static_cast<std::size_t>(total) * sizeof(W);
  const bool staged = bytes <= kKronMaxStagedBytes;
  const bool vec = reinterpret_cast<std::uintptr_t>(p.out) % 16 == 0 &&
                   (p.ldo * static_cast<std::int64_t>(sizeof(W))) % 16 == 0;
  const std::size_t smem = staged ? bytes : 0;
  if (smem > 48 * 1024)
    KFUSE_CUDA_TRY(cudaFuncSetAttribute(kron_kernel<W>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>(detail::ceil_div(p.width, kKronChunk)),
                  static_cast<unsigned>(std::min<std::int64_t>(p.n, 65535)));
  KFUSE_LAUNCH(kron_kernel<W>, grid, kBlock, smem, ctx.stream(), p, vec, staged);
}

template void launch_inv_norms<float>(Context&, const FuseOperand&, std::int64_t, float*);
template void launch_inv_norms<double>(Context&, const FuseOperand&, std::int64_t, double*);
template void launch_kron<float>(Context&, const KronProblem&);
template void launch_kron<double>(Context&, const KronProblem&);

}  // namespace fuse
}  // namespace kfuse::cuda
