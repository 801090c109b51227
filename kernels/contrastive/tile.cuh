// The tile machinery of the contrastive kernels (device code): operand types per
// compute mode, loads of row slabs into shared memory, a 64 x 64 tile of dot
// products (WMMA tensor cores, or exact fp32 FMAs), and the gradient products
// acc += G Y and dY += G^T X that consume a tile group of dlogits.
//
// Shared-memory arrays sit at constant offsets in one dynamic buffer (no unions of
// 16-bit types); every WMMA pointer is 32-byte aligned and every leading
// dimension a multiple of 16 bytes (static_asserts below).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>

#include "kernels/contrastive/problem.hpp"
#include "kernels/core/wmma_operand.cuh"
#include "kfuse/view.hpp"

namespace kfuse::cuda::contrastive {

using namespace nvcuda;

constexpr int kThreads = 128;   // 4 warps
constexpr int BM = 64;          // rows of a tile
constexpr int BN = 64;          // columns of a tile
constexpr int BK = 32;          // k-slab of the dot products
constexpr int kGroupTiles = 2;  // column tiles whose dlogits are batched
constexpr int TBN = BN * kGroupTiles;
constexpr int DC = 64;        // d-chunk of one accumulation step
constexpr int kLdS = BN + 4;  // fp32 tile of dot products (row stride 272 bytes)

enum class Mode { Simt, Tf32, Bf16, F16 };

// Shared-memory operand type, WMMA k-step and padding per mode. Paddings keep every
// row stride a multiple of 32 bytes and break bank conflicts.
template <Mode M>
struct Compute;
template <>
struct Compute<Mode::Simt> {
  using Stored = float;
  static constexpr int kPad = 1;  // SIMT reads columns: odd stride
  __device__ static float from_float(float v) { return v; }
  __device__ static float to_float(float v) { return v; }
};
template <>
struct Compute<Mode::Tf32> : WmmaTf32 {
  static constexpr int kPad = 8;
};
template <>
struct Compute<Mode::Bf16> : WmmaBf16 {
  static constexpr int kPad = 16;
};
template <>
struct Compute<Mode::F16> : WmmaF16 {
  static constexpr int kPad = 16;
};

// An input element as its mode's operand: 16-bit inputs keep their bits.
template <Mode M>
__device__ __forceinline__ typename Compute<M>::Stored operand(float v) {
  return Compute<M>::from_float(v);
}
template <Mode M>
__device__ __forceinline__ typename Compute<M>::Stored operand(kfuse::bf16 v) {
  if constexpr (M == Mode::Bf16) {
    __nv_bfloat16_raw raw;
    raw.x = v.bits;
    return __nv_bfloat16(raw);
  } else {
    return Compute<M>::from_float(__uint_as_float(static_cast<unsigned>(v.bits) << 16));
  }
}
template <Mode M>
__device__ __forceinline__ typename Compute<M>::Stored operand(kfuse::f16 v) {
  __half_raw raw;
  raw.x = v.bits;
  if constexpr (M == Mode::F16) {
    return __half(raw);
  } else {
    return Compute<M>::from_float(__half2float(__half(raw)));
  }
}

// Shared-memory layouts are constant offsets from the dynamic buffer's first
// 128-byte aligned address (launches add 128 bytes of slack for that alignment).
constexpr unsigned align128(unsigned v) {
  return (v + 127u) & ~127u;
}
__device__ __forceinline__ unsigned char* aligned_smem(unsigned char* raw) {
  return reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(raw) + 127u) &
                                          ~std::uintptr_t(127));
}

// ------------------------------------------------------------------ loads

// dst [rows_cap x ld] (ld >= width) = src rows [row0, row0 + rows_cap), columns
// [k0, k0 + width), as operands; zeros past `row_end` and past `d`.
template <Mode M, class In>
__device__ __forceinline__ void load_block(const In* src, std::int64_t ld_src, std::int64_t row0,
                                           std::int64_t row_end, std::int64_t k0, std::int64_t d,
                                           int rows_cap, int width,
                                           typename Compute<M>::Stored* dst, int ld) {
  using S = typename Compute<M>::Stored;
  for (int idx = threadIdx.x; idx < rows_cap * width; idx += kThreads) {
    const int r = idx / width, c = idx % width;
    const std::int64_t row = row0 + r, k = k0 + c;
    S v = Compute<M>::from_float(0.0f);
    if (row < row_end && k < d) v = operand<M>(src[row * ld_src + k]);
    dst[r * ld + c] = v;
  }
}

// ------------------------------------------------------------------ the tile of dot products

// Shared memory of the dot-product tile: two k-slabs and the fp32 result.
template <Mode M>
struct DotSmem {
  using S = typename Compute<M>::Stored;
  static constexpr int kLdK = BK + Compute<M>::kPad;
  static_assert(M == Mode::Simt || (kLdK * sizeof(S)) % 32 == 0, "WMMA rows: 32-byte multiples");
  static constexpr unsigned kSlabBytes = BM * kLdK * sizeof(S);  // BN == BM
  static constexpr unsigned kResultBytes = BM * kLdS * sizeof(float);
  S* xs;     // [BM][kLdK]
  S* ys;     // [BN][kLdK]
  float* s;  // [BM][kLdS]
};

// s[r][c] = x_(i0 + r) . y_(j0 + c) for the BM x BN tile (rows past nx and columns
// past y_end give 0). Called by every thread; ends with the tile in s and a barrier.
template <Mode M, class In>
__device__ void dot_tile(const DotSmem<M>& sm, const In* x, std::int64_t ldx, std::int64_t nx,
                         std::int64_t i0, const In* y, std::int64_t ldy, std::int64_t y_end,
                         std::int64_t j0, std::int64_t d) {
  constexpr int kLdK = DotSmem<M>::kLdK;
  if constexpr (M == Mode::Simt) {
    // Each thread: 4 rows (ty) x 8 columns (tx + 8 c) in registers.
    const int ty = threadIdx.x / 8, tx = threadIdx.x % 8;
    float acc[4][8] = {};
    for (std::int64_t k0 = 0; k0 < d; k0 += BK) {
      __syncthreads();  // the previous slab (or tile) is consumed
      load_block<M>(x, ldx, i0, nx, k0, d, BM, BK, sm.xs, kLdK);
      load_block<M>(y, ldy, j0, y_end, k0, d, BN, BK, sm.ys, kLdK);
      __syncthreads();
#pragma unroll 4
      for (int k = 0; k < BK; ++k) {
        float a[4], b[8];
#pragma unroll
        for (int r = 0; r < 4; ++r)
          a[r] = sm.xs[(ty * 4 + r) * kLdK + k];
#pragma unroll
        for (int c = 0; c < 8; ++c)
          b[c] = sm.ys[(tx + 8 * c) * kLdK + k];
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int c = 0; c < 8; ++c)
            acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
      }
    }
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 8; ++c)
        sm.s[(ty * 4 + r) * kLdS + tx + 8 * c] = acc[r][c];
  } else {
    using C = Compute<M>;
    using F = typename C::Frag;
    const int warp = threadIdx.x / 32;
    wmma::fragment<wmma::accumulator, 16, 16, C::kStep, float> acc[BN / 16];
#pragma unroll
    for (int f = 0; f < BN / 16; ++f)
      wmma::fill_fragment(acc[f], 0.0f);
    for (std::int64_t k0 = 0; k0 < d; k0 += BK) {
      __syncthreads();
      load_block<M>(x, ldx, i0, nx, k0, d, BM, BK, sm.xs, kLdK);
      load_block<M>(y, ldy, j0, y_end, k0, d, BN, BK, sm.ys, kLdK);
      __syncthreads();
#pragma unroll
      for (int kk = 0; kk < BK; kk += C::kStep) {
        wmma::fragment<wmma::matrix_a, 16, 16, C::kStep, F, wmma::row_major> a;
        wmma::load_matrix_sync(a, sm.xs + warp * 16 * kLdK + kk, kLdK);
#pragma unroll
        for (int f = 0; f < BN / 16; ++f) {
          // Y^T: element (k, j) at ys[j][k], column-major with ld kLdK.
          wmma::fragment<wmma::matrix_b, 16, 16, C::kStep, F, wmma::col_major> b;
          wmma::load_matrix_sync(b, sm.ys + f * 16 * kLdK + kk, kLdK);
          wmma::mma_sync(acc[f], a, b, acc[f]);
        }
      }
    }
#pragma unroll
    for (int f = 0; f < BN / 16; ++f)
      wmma::store_matrix_sync(sm.s + warp * 16 * kLdS + f * 16, acc[f], kLdS, wmma::mem_row_major);
  }
  __syncthreads();
}

// ------------------------------------------------------------------ gradient products

// Shared memory of a gradient pass: the group's dlogits G [BM][TBN] (operands), a
// d-chunk of the group's Y rows [TBN][DC] and, for the atomic dY, of X [BM][DC].
template <Mode M>
struct GradSmem {
  using S = typename Compute<M>::Stored;
  static constexpr int kLdG = TBN + Compute<M>::kPad;
  static constexpr int kLdC = DC + Compute<M>::kPad;
  static_assert(M == Mode::Simt || ((kLdG * sizeof(S)) % 32 == 0 && (kLdC * sizeof(S)) % 32 == 0),
                "WMMA rows: 32-byte multiples");
  static constexpr unsigned kGBytes = BM * kLdG * sizeof(S);
  static constexpr unsigned kYcBytes = TBN * kLdC * sizeof(S);
  static constexpr unsigned kXcBytes = BM * kLdC * sizeof(S);
  S* g;   // [BM][kLdG]
  S* yc;  // [TBN][kLdC]
  S* xc;  // [BM][kLdC]
};

// slot[r][c0 + c] (+)= sum_j g[r][j] yc[j][c] for the BM x DC chunk, fp32 accumulation
// in the slot (global, row stride ld_slot). first: the slot holds nothing yet.
template <Mode M>
__device__ void accumulate_chunk(const GradSmem<M>& sm, float* slot, std::int64_t ld_slot, int c0,
                                 bool first) {
  constexpr int kLdG = GradSmem<M>::kLdG, kLdC = GradSmem<M>::kLdC;
  if constexpr (M == Mode::Simt) {
    const int ty = threadIdx.x / 8, tx = threadIdx.x % 8;
    float acc[4][8];
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 8; ++c)
        acc[r][c] = first ? 0.0f : slot[(ty * 4 + r) * ld_slot + c0 + tx + 8 * c];
#pragma unroll 4
    for (int j = 0; j < TBN; ++j) {
      float a[4], b[8];
#pragma unroll
      for (int r = 0; r < 4; ++r)
        a[r] = sm.g[(ty * 4 + r) * kLdG + j];
#pragma unroll
      for (int c = 0; c < 8; ++c)
        b[c] = sm.yc[j * kLdC + tx + 8 * c];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 8; ++c)
          acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
    }
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 8; ++c)
        slot[(ty * 4 + r) * ld_slot + c0 + tx + 8 * c] = acc[r][c];
  } else {
    using C = Compute<M>;
    using F = typename C::Frag;
    const int warp = threadIdx.x / 32;
    float* base = slot + static_cast<std::int64_t>(warp) * 16 * ld_slot + c0;
    wmma::fragment<wmma::accumulator, 16, 16, C::kStep, float> acc[DC / 16];
#pragma unroll
    for (int f = 0; f < DC / 16; ++f) {
      if (first)
        wmma::fill_fragment(acc[f], 0.0f);
      else
        wmma::load_matrix_sync(acc[f], base + f * 16, static_cast<unsigned>(ld_slot),
                               wmma::mem_row_major);
    }
#pragma unroll 2
    for (int kk = 0; kk < TBN; kk += C::kStep) {
      wmma::fragment<wmma::matrix_a, 16, 16, C::kStep, F, wmma::row_major> a;
      wmma::load_matrix_sync(a, sm.g + warp * 16 * kLdG + kk, kLdG);
#pragma unroll
      for (int f = 0; f < DC / 16; ++f) {
        wmma::fragment<wmma::matrix_b, 16, 16, C::kStep, F, wmma::row_major> b;
        wmma::load_matrix_sync(b, sm.yc + kk * kLdC + f * 16, kLdC);
        wmma::mma_sync(acc[f], a, b, acc[f]);
      }
    }
#pragma unroll
    for (int f = 0; f < DC / 16; ++f)
      wmma::store_matrix_sync(base + f * 16, acc[f], static_cast<unsigned>(ld_slot),
                              wmma::mem_row_major);
  }
}

// dy[j0 + j][c0 + c] += scale * sum_r g[r][j] xc[r][c] over the group's TBN columns
// (j < cols) and the chunk's valid columns (c0 + c < d), with fp32 atomics (the
// deterministic = false mode). scratch: 4 x 256 floats of shared memory.
template <Mode M>
__device__ void scatter_dy_chunk(const GradSmem<M>& sm, float* dy, std::int64_t ld_dy,
                                 std::int64_t j0, int cols, int c0, std::int64_t d, float scale,
                                 float* scratch) {
  constexpr int kLdG = GradSmem<M>::kLdG, kLdC = GradSmem<M>::kLdC;
  if constexpr (M == Mode::Simt) {
    // Each thread: 8 columns j (ty * 8 + r) x 8 chunk columns (tx + 8 c).
    const int ty = threadIdx.x / 8, tx = threadIdx.x % 8;
    float acc[8][8] = {};
#pragma unroll 2
    for (int r = 0; r < BM; ++r) {
      float a[8], b[8];
#pragma unroll
      for (int q = 0; q < 8; ++q)
        a[q] = sm.g[r * kLdG + ty * 8 + q];
#pragma unroll
      for (int c = 0; c < 8; ++c)
        b[c] = sm.xc[r * kLdC + tx + 8 * c];
#pragma unroll
      for (int q = 0; q < 8; ++q)
#pragma unroll
        for (int c = 0; c < 8; ++c)
          acc[q][c] = fmaf(a[q], b[c], acc[q][c]);
    }
#pragma unroll
    for (int q = 0; q < 8; ++q)
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const int j = ty * 8 + q, k = c0 + tx + 8 * c;
        if (j < cols && k < d) atomicAdd(dy + (j0 + j) * ld_dy + k, scale * acc[q][c]);
      }
  } else {
    using C = Compute<M>;
    using F = typename C::Frag;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float* mine = scratch + warp * 256;
    // Warp w: rows j of [32 w, 32 w + 32) of the TBN x DC product, 2 x 4 fragments.
#pragma unroll 1
    for (int h = 0; h < 2; ++h) {
      const int jf = warp * 32 + h * 16;
      wmma::fragment<wmma::accumulator, 16, 16, C::kStep, float> acc[DC / 16];
#pragma unroll
      for (int f = 0; f < DC / 16; ++f)
        wmma::fill_fragment(acc[f], 0.0f);
#pragma unroll 2
      for (int kk = 0; kk < BM; kk += C::kStep) {
        // G^T: element (j, r) at g[r][j], column-major with ld kLdG.
        wmma::fragment<wmma::matrix_a, 16, 16, C::kStep, F, wmma::col_major> a;
        wmma::load_matrix_sync(a, sm.g + kk * kLdG + jf, kLdG);
#pragma unroll
        for (int f = 0; f < DC / 16; ++f) {
          wmma::fragment<wmma::matrix_b, 16, 16, C::kStep, F, wmma::row_major> b;
          wmma::load_matrix_sync(b, sm.xc + kk * kLdC + f * 16, kLdC);
          wmma::mma_sync(acc[f], a, b, acc[f]);
        }
      }
#pragma unroll
      for (int f = 0; f < DC / 16; ++f) {
        wmma::store_matrix_sync(mine, acc[f], 16, wmma::mem_row_major);
        __syncwarp();
        for (int e = lane; e < 256; e += 32) {
          const int j = jf + e / 16, k = c0 + f * 16 + e % 16;
          if (j < cols && k < d) atomicAdd(dy + (j0 + j) * ld_dy + k, scale * mine[e]);
        }
        __syncwarp();
      }
    }
  }
}

}  // namespace kfuse::cuda::contrastive
