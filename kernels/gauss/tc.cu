// Gaussian sums with the cross term on tensor cores (TF32 or BF16 operands, fp32
// accumulation), for fp32 inputs with d >= 64 when the caller allows it.
//
// The expanded form |x|^2 + |y|^2 - 2 x.y cancels for nearby points, and more so
// with TF32's 10-bit (BF16's 7-bit) mantissa. So a prepass first centres both
// point sets at the mean of (up to 1024) sample rows and scales them by sqrt(c)
// (sigma units, base 2), rounds them to the compute type, and takes each row's
// norm from the *rounded* values, so that a point's distance to itself is exactly
// the clamp at 0 rather than a rounding residue. The kernel then computes a BM x BN
// tile of dot products with WMMA, forms s = -max(0, |x|^2 + |y|^2 - 2 x.y), and
// hands it to the shared tile epilogue, FlashAttention-style: K never leaves
// shared memory.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/core/precision_switch.hpp"
#include "kernels/core/wmma_operand.cuh"
#include "kernels/gauss/kernels.hpp"
#include "kernels/gauss/tile.cuh"

namespace kfuse::cuda::gauss {
namespace {

using namespace nvcuda;

constexpr int kThreads = 128;  // 4 warps; warp w computes tile rows [16w, 16w + 16)
constexpr int BM = 64, BN = 64, BK = 32;
constexpr int TPR = kThreads / BM;
constexpr int kCentreRows = 1024;

// The operand type of each precision, and its shared-memory padding (row strides
// that are 16-byte multiples with 32-byte aligned fragments: 40 floats, 48 bf16).
template <Precision P>
struct Compute;
template <>
struct Compute<Precision::TF32> : WmmaTf32 {
  static constexpr int kPad = 8;
};
template <>
struct Compute<Precision::BF16> : WmmaBf16 {
  static constexpr int kPad = 16;
};

template <Precision P, int RC>
struct Smem {
  using S = typename Compute<P>::Stored;
  static constexpr int kLd = BK + Compute<P>::kPad;
  alignas(32) S x[BM][kLd];
  alignas(32) S y[BN][kLd];
  alignas(32) float s[BM][BN + 4];  // dot products, then terms (row stride 68: 16-byte multiple)
  float y_norm[BN];
  float w[BN];
  float v[BN * (RC > 0 ? RC : 1)];
};

// Copies a BM x BK slab of prepared rows (zeros past `rows`) with 16-byte loads.
template <Precision P>
__device__ __forceinline__ void load_slab(const typename Compute<P>::Stored* src, std::int64_t ld,
                                          std::int64_t row0, std::int64_t rows, std::int64_t k0,
                                          typename Compute<P>::Stored (*dst)[Smem<P, 0>::kLd]) {
  using S = typename Compute<P>::Stored;
  constexpr int kVec = 16 / sizeof(S);
  constexpr int kVecsPerRow = BK / kVec;
  for (int idx = threadIdx.x; idx < BM * kVecsPerRow; idx += kThreads) {
    const int r = idx / kVecsPerRow, c = (idx % kVecsPerRow) * kVec;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (row0 + r < rows) value = *reinterpret_cast<const uint4*>(src + (row0 + r) * ld + k0 + c);
    *reinterpret_cast<uint4*>(&dst[r][c]) = value;
  }
}

template <Precision P, int RC, bool STAB>
__global__ void __launch_bounds__(kThreads)
    gauss_tc_kernel(const Launch<float> L, const Prepared prep) {
  using C = Compute<P>;
  using S = typename C::Stored;
  KFUSE_DYNAMIC_SHARED(128, unsigned char, smem_raw);
  auto& sm = *reinterpret_cast<Smem<P, RC>*>(smem_raw);
  const auto& p = L.p;
  const int warp = threadIdx.x / 32;
  const int lrow = threadIdx.x / TPR, q = threadIdx.x % TPR;
  const std::int64_t i0 = static_cast<std::int64_t>(blockIdx.x) * BM;
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * RC;
  const S* xs = static_cast<const S*>(prep.x);
  const S* ys = static_cast<const S*>(prep.y);
  std::int64_t jb = 0, je = 0;
  split_range(L, BN, &jb, &je);

  const std::int64_t i = i0 + lrow;
  const float x_norm = i < p.m ? prep.x_norm[i] : 0.0f;
  RowSums<float, RC, TPR> st;
  st.init(p.stabilised);

  for (std::int64_t j0 = jb; j0 < je; j0 += BN) {
    const int cols = static_cast<int>(je - j0 < BN ? je - j0 : BN);
    wmma::fragment<wmma::accumulator, 16, 16, C::kStep, float> acc[BN / 16];
#pragma unroll
    for (int f = 0; f < BN / 16; ++f)
      wmma::fill_fragment(acc[f], 0.0f);
    for (std::int64_t k0 = 0; k0 < prep.ld; k0 += BK) {
      __syncthreads();  // the previous slab (or tile) is consumed
      load_slab<P>(xs, prep.ld, i0, p.m, k0, reinterpret_cast<S(*)[Smem<P, 0>::kLd]>(sm.x));
      load_slab<P>(ys, prep.ld, j0, je, k0, reinterpret_cast<S(*)[Smem<P, 0>::kLd]>(sm.y));
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < BK; kk += C::kStep) {
        wmma::fragment<wmma::matrix_a, 16, 16, C::kStep, typename C::Frag, wmma::row_major> a;
        wmma::load_matrix_sync(a, &sm.x[warp * 16][kk], Smem<P, RC>::kLd);
        if constexpr (P == Precision::TF32) {
#pragma unroll
          for (int t = 0; t < a.num_elements; ++t)
            a.x[t] = wmma::__float_to_tf32(a.x[t]);
        }
#pragma unroll
        for (int f = 0; f < BN / 16; ++f) {
          // B = Y^T: element (k, j) at y[j][k], i.e. column-major with ld kLd.
          wmma::fragment<wmma::matrix_b, 16, 16, C::kStep, typename C::Frag, wmma::col_major> b;
          wmma::load_matrix_sync(b, &sm.y[f * 16][kk], Smem<P, RC>::kLd);
          if constexpr (P == Precision::TF32) {
#pragma unroll
            for (int t = 0; t < b.num_elements; ++t)
              b.x[t] = wmma::__float_to_tf32(b.x[t]);
          }
          wmma::mma_sync(acc[f], a, b, acc[f]);
        }
      }
    }
#pragma unroll
    for (int f = 0; f < BN / 16; ++f)
      wmma::store_matrix_sync(&sm.s[warp * 16][f * 16], acc[f], BN + 4, wmma::mem_row_major);
    for (int jj = threadIdx.x; jj < BN; jj += kThreads)
      sm.y_norm[jj] = j0 + jj < je ? prep.y_norm[j0 + jj] : 0.0f;
    load_tile_values<float, BN, RC, STAB>(L, j0, cols, r0, sm.w, sm.v);
    __syncthreads();
    // The row's owners turn its dot products into s = -|x' - y'|^2 (clamped at 0):
    // the same lanes read these entries first in accumulate_tile.
    float* srow = sm.s[lrow];
#pragma unroll 4
    for (int c = 0; c < BN / TPR; ++c) {
      const int jj = c * TPR + q;
      srow[jj] = -fmaxf(0.0f, x_norm + sm.y_norm[jj] - 2.0f * srow[jj]);
    }
    accumulate_tile<float, BN, RC, TPR, STAB>(srow, sm.w, sm.v, q, i, j0, cols, p.skip_diagonal,
                                              st);
  }
  finish_row<float, RC, TPR>(L, i, r0, q, st);
}

// mean[k] = average of y[j][k] over the first min(n, kCentreRows) rows, in double.
__global__ void centre_kernel(const float* y, std::int64_t ldy, std::int64_t n, std::int64_t d,
                              float* mean) {
  const std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= d) return;
  const std::int64_t rows = n < kCentreRows ? n : kCentreRows;
  double sum = 0.0;
  for (std::int64_t j = 0; j < rows; ++j)
    sum += y[j * ldy + k];
  mean[k] = rows > 0 ? static_cast<float>(sum / rows) : 0.0f;
}

// One warp per row: out = round((src - mean) * scale), zero-padded to ld; norm of
// the rounded row (in a fixed shuffle order).
template <Precision P>
__global__ void prepare_rows_kernel(const float* src, std::int64_t ld_src, std::int64_t rows,
                                    std::int64_t d, const float* mean, float scale,
                                    typename Compute<P>::Stored* out, std::int64_t ld,
                                    float* norm) {
  using C = Compute<P>;
  const std::int64_t row = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float sum = 0.0f;
  for (std::int64_t k = lane; k < ld; k += 32) {
    const float v = k < d ? (src[row * ld_src + k] - mean[k]) * scale : 0.0f;
    const auto r = C::from_float(v);
    out[row * ld + k] = r;
    const float back = C::to_float(r);
    sum = fmaf(back, back, sum);
  }
#pragma unroll
  for (int o = 16; o > 0; o /= 2)
    sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) norm[row] = sum;
}

std::int64_t padded_ld(std::int64_t d) {
  return (d + BK - 1) / BK * BK;
}

int chunk_cols(std::int64_t r) {
  return r == 0 ? 0 : (r <= 4 ? 4 : 32);
}

template <Precision P>
std::size_t smem_bytes(int rc) {
  return rc == 0 ? sizeof(Smem<P, 0>) : (rc == 4 ? sizeof(Smem<P, 4>) : sizeof(Smem<P, 32>));
}

template <Precision P, int RC>
void launch_rc(const Launch<float>& L, const Prepared& prep, const Shape& shape, dim3 grid,
               cudaStream_t stream) {
  auto kernel = L.p.stabilised ? gauss_tc_kernel<P, RC, true> : gauss_tc_kernel<P, RC, false>;
  KFUSE_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(shape.smem_bytes)));
  KFUSE_LAUNCH(kernel, grid, kThreads, shape.smem_bytes, stream, L, prep);
}

template <Precision P>
void launch_precision(const Launch<float>& L, const Prepared& prep, const Shape& shape, dim3 grid,
                      cudaStream_t stream) {
  switch (shape.r_chunk) {
    case 0:
      return launch_rc<P, 0>(L, prep, shape, grid, stream);
    case 4:
      return launch_rc<P, 4>(L, prep, shape, grid, stream);
    default:
      return launch_rc<P, 32>(L, prep, shape, grid, stream);
  }
}

template <Precision P>
Prepared prepare(const Launch<float>& L, void* workspace, cudaStream_t stream) {
  using S = typename Compute<P>::Stored;
  const auto& p = L.p;
  const std::int64_t ld = padded_ld(p.d);
  auto* base = static_cast<unsigned char*>(workspace);
  S* xs = reinterpret_cast<S*>(base);
  S* ys = xs + p.m * ld;
  float* x_norm = reinterpret_cast<float*>(ys + p.n * ld);
  float* y_norm = x_norm + p.m;
  float* mean = y_norm + p.n;
  const float scale = static_cast<float>(std::sqrt(static_cast<double>(L.c)));
  KFUSE_LAUNCH(centre_kernel, static_cast<unsigned>((p.d + 127) / 128), 128, 0, stream, p.y, p.ldy,
               p.n, p.d, mean);
  constexpr int kRowsPerBlock = 8;  // 8 warps
  if (p.m > 0) {
    KFUSE_LAUNCH(prepare_rows_kernel<P>,
                 static_cast<unsigned>((p.m + kRowsPerBlock - 1) / kRowsPerBlock),
                 32 * kRowsPerBlock, 0, stream, p.x, p.ldx, p.m, p.d, mean, scale, xs, ld, x_norm);
  }
  if (p.n > 0) {
    KFUSE_LAUNCH(prepare_rows_kernel<P>,
                 static_cast<unsigned>((p.n + kRowsPerBlock - 1) / kRowsPerBlock),
                 32 * kRowsPerBlock, 0, stream, p.y, p.ldy, p.n, p.d, mean, scale, ys, ld, y_norm);
  }
  Prepared prep;
  prep.x = xs;
  prep.y = ys;
  prep.ld = ld;
  prep.x_norm = x_norm;
  prep.y_norm = y_norm;
  return prep;
}

// The tensor-core precisions this file implements (the launcher sends Exact elsewhere).
template <class Body>
void visit_tc_precision(Precision precision, Body&& body) {
  if (!kfuse::detail::visit_precision<Precision::TF32, Precision::BF16>(precision, body))
    throw Error(Status::Internal, "gauss_tc: a precision without tensor-core kernels");
}

}  // namespace

Shape tc_shape(std::int64_t r, Precision precision) {
  Shape s;
  s.rows_per_block = BM;
  s.r_chunk = chunk_cols(r);
  s.tile_cols = BN;
  s.threads = kThreads;
  visit_tc_precision(precision,
                     [&](auto P) { s.smem_bytes = smem_bytes<decltype(P)::value>(s.r_chunk); });
  return s;
}

std::size_t tc_prepared_bytes(std::int64_t m, std::int64_t n, std::int64_t d, Precision precision) {
  std::size_t elem = 0;
  visit_tc_precision(precision,
                     [&](auto P) { elem = sizeof(typename Compute<decltype(P)::value>::Stored); });
  return static_cast<std::size_t>((m + n) * padded_ld(d)) * elem +
         static_cast<std::size_t>(m + n + d) * sizeof(float);
}

Prepared prepare_tc(const Launch<float>& L, Precision precision, void* workspace,
                    cudaStream_t stream) {
  Prepared prep;
  visit_tc_precision(precision,
                     [&](auto P) { prep = prepare<decltype(P)::value>(L, workspace, stream); });
  return prep;
}

void launch_tc(const Launch<float>& L, const Prepared& prep, Precision precision,
               const Shape& shape, dim3 grid, cudaStream_t stream) {
  visit_tc_precision(precision, [&](auto P) {
    launch_precision<decltype(P)::value>(L, prep, shape, grid, stream);
  });
}

}  // namespace kfuse::cuda::gauss
