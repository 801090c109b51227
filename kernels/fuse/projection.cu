// Projections of the fusion family on the GPU (rp_fuse, cross_modal_rp, rff_fuse):
//
// Exact (the default, and every Fourier projection): a tiled SIMT kernel. A block
// owns BM rows x BN columns of the output; for each input it runs the fma chains of
// its 4 x 8 outputs over the input's width in increasing order (the CPU path's
// arithmetic, kernels/fuse/math.hpp), then folds the factor into the running product in
// registers: the Hadamard product costs no memory traffic, and the result has the
// CPU's bits. U is read from workspace, drawn once per call by
// fuse_random_matrix (an on-the-fly draw would repeat Philox for every row block:
// ~40 integer operations per U entry per 64 rows, against 64 FMAs).
//
// TF32 / BF16 (Product only): per block of rows, each mapped input is packed
// (fp32 or bf16), one cuBLAS GEMM per input writes its factor (the first straight
// into out), and an elementwise pass multiplies the factors in place. Rows are
// blocked so that a block's factors stay in L2 for that pass. Not bitwise
// reproducible (cuBLAS picks its own summation order).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>

#include "kernels/core/cublas_gemm.hpp"
#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/core/launch_plan.hpp"
#include "kernels/fuse/kernels.hpp"
#include "kernels/fuse/tile.cuh"
#include "src/core/scratch.hpp"

namespace kfuse::cuda {
namespace {

using detail::FuseOperand;
using detail::ProjectionKind;
using detail::ProjectionProblem;
using namespace fuse;

// ------------------------------------------------------------------ exact

// The problem and its weights, drawn row-major ([width_j x l]) into workspace.
struct ProjectionLaunch {
  ProjectionProblem p;
  const float* w[detail::kFuseMaxOperands] = {};
};

__global__ void __launch_bounds__(kThreads) projection_kernel(const ProjectionLaunch L, bool vec) {
  const ProjectionProblem& p = L.p;
  KFUSE_SHARED_ALIGNED(16, float, sa, [BK][BM + kPad]);
  KFUSE_SHARED_ALIGNED(16, float, sb, [BK][BN + kPad]);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.x) * BM;
  const std::int64_t col0 = static_cast<std::int64_t>(blockIdx.y) * BN;
  const bool fourier = p.kind == ProjectionKind::Fourier;
  float acc[TM][TN], prod[TM][TN];
  fill(acc, 0.0f);
  fill(prod, 0.0f);
  for (int j = 0; j < p.count; ++j) {
    if (!fourier) fill(acc, 0.0f);
    if (!fourier && p.factor_row[j] != nullptr) {
#pragma unroll
      for (int b = 0; b < TN; ++b) {
        const std::int64_t c = col0 + tile_col(tx, b);
        const float f = c < p.l ? p.factor_row[j][c] : 0.0f;
#pragma unroll
        for (int a = 0; a < TM; ++a)
          acc[a][b] = f;
      }
    } else {
      const std::int64_t width = p.in[j].width;
      for (std::int64_t k0 = 0; k0 < width; k0 += BK) {
        __syncthreads();  // the previous slab is consumed
        load_operand_slab<BM>(p.in[j], row0, p.n, k0, sa);
        load_matrix_slab(L.w[j], p.l, width, p.l, k0, col0, sb);
        __syncthreads();
        slab_chain<detail::PairKernel::Dot>(sa, sb, ty, tx, acc);
      }
    }
    if (!fourier) {
#pragma unroll
      for (int a = 0; a < TM; ++a)
#pragma unroll
        for (int b = 0; b < TN; ++b)
          prod[a][b] = detail::projection_combine(p, j, acc[a][b], prod[a][b]);
    }
  }
#pragma unroll
  for (int a = 0; a < TM; ++a) {
    const std::int64_t i = row0 + ty * 4 + a;
    if (i >= p.n) continue;
    float* row = p.out + i * p.ldo;
#pragma unroll
    for (int g = 0; g < 2; ++g) {
      const std::int64_t c = col0 + g * 64 + tx * 4;
      float v[4], s[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (fourier) {
          float sn, cs;
          detail::sincos_rn(acc[a][g * 4 + e], &sn, &cs);
          v[e] = detail::mul_rn(cs, p.amplitude);
          s[e] = detail::mul_rn(sn, p.amplitude);
        } else {
          v[e] = detail::mul_rn(prod[a][g * 4 + e], p.final_scale);
          s[e] = 0.0f;
        }
      }
      if (vec && c + 3 < p.l) {
        *reinterpret_cast<float4*>(row + c) = make_float4(v[0], v[1], v[2], v[3]);
        if (fourier)
          *reinterpret_cast<float4*>(row + p.l + c) = make_float4(s[0], s[1], s[2], s[3]);
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (c + e < p.l) {
            row[c + e] = v[e];
            if (fourier) row[p.l + c + e] = s[e];
          }
      }
    }
  }
}

// Draws the weights the projection reads (factor rows need none) into `store`.
void draw_weights(Context& ctx, const ProjectionProblem& p,
                  std::unique_ptr<detail::Scratch> (&store)[detail::kFuseMaxOperands],
                  const float* (&w)[detail::kFuseMaxOperands]) {
  for (int j = 0; j < p.count; ++j) {
    if (p.factor_row[j] != nullptr) continue;
    store[j] = std::make_unique<detail::Scratch>(
        ctx, static_cast<std::size_t>(p.weight[j].rows * p.weight[j].cols) * sizeof(float));
    launch_random_matrix(ctx, p.weight[j], store[j]->as<float>());
    w[j] = store[j]->as<float>();
  }
}

void launch_exact(Context& ctx, const ProjectionProblem& p) {
  const std::int64_t row_blocks = detail::ceil_div(p.n, BM);
  const std::int64_t col_blocks = detail::ceil_div(p.l, BN);
  if (row_blocks > 0x7fffffff || col_blocks > 65535)
    throw Error(Status::Unsupported, "rp_fuse / rff_fuse: output too large for one launch grid");
  const bool vec = reinterpret_cast<std::uintptr_t>(p.out) % 16 == 0 && p.ldo % 4 == 0 &&
                   (p.kind == ProjectionKind::Product || p.l % 4 == 0);
  ProjectionLaunch L;
  L.p = p;
  std::unique_ptr<detail::Scratch> store[detail::kFuseMaxOperands];
  draw_weights(ctx, p, store, L.w);
  const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(col_blocks));
  KFUSE_LAUNCH(projection_kernel, grid, kThreads, 0, ctx.stream(), L, vec);
}

// ------------------------------------------------------------------ TF32 / BF16

__device__ __forceinline__ void store_as(float* dst, float v) {
  *dst = v;
}
__device__ __forceinline__ void store_as(__nv_bfloat16* dst, float v) {
  *dst = __float2bfloat16_rn(v);
}

// dst [rows x width] (dense) = the mapped rows [i0, i0 + rows) of op, in Out.
template <class Out>
__global__ void pack_operand_kernel(const FuseOperand op, std::int64_t i0, std::int64_t rows,
                                    Out* dst) {
  const std::int64_t total = rows * op.width;
  for (std::int64_t t = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; t < total;
       t += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = t / op.width, k = t - r * op.width;
    store_as(dst + t, detail::operand_value<float>(op, i0 + r, k));
  }
}

__global__ void to_bf16_kernel(const float* src, std::int64_t count, __nv_bfloat16* dst) {
  for (std::int64_t t = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; t < count;
       t += std::int64_t(gridDim.x) * blockDim.x)
    dst[t] = __float2bfloat16_rn(src[t]);
}

// out[i][c] (holding factor 0) = product of the factors, i < rows; factor j >= 1
// of a GEMM at part + (slot_j) * rows * l, or a broadcast factor row.
struct HadamardArgs {
  ProjectionProblem p;
  std::int64_t i0 = 0, rows = 0;
  const float* part = nullptr;
  int slot[detail::kFuseMaxOperands] = {};
  bool first_is_row = false;
};

__global__ void hadamard_kernel(const HadamardArgs h) {
  const ProjectionProblem& p = h.p;
  const std::int64_t total = h.rows * p.l;
  for (std::int64_t t = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; t < total;
       t += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = t / p.l, c = t - r * p.l;
    float* dst = p.out + (h.i0 + r) * p.ldo + c;
    float prod = 0.0f;
    for (int j = 0; j < p.count; ++j) {
      float f;
      if (p.factor_row[j] != nullptr)
        f = p.factor_row[j][c];
      else if (j == 0)
        f = *dst;
      else
        f = h.part[(static_cast<std::int64_t>(h.slot[j]) * h.rows + r) * p.l + c];
      prod = detail::projection_combine(p, j, f, prod);
    }
    *dst = detail::mul_rn(prod, p.final_scale);
  }
}

unsigned grid_for(std::int64_t work) {
  return static_cast<unsigned>(
      std::max<std::int64_t>(1, std::min<std::int64_t>(detail::ceil_div(work, 256), 65535LL * 8)));
}

// Rows per block: the block's factors (count x rows x l floats) within ~24 MiB of
// L2, and at least 256 rows for the GEMMs' efficiency.
std::int64_t fast_rows(const ProjectionProblem& p) {
  const std::int64_t budget = (std::int64_t(24) << 20) / (4 * p.count * p.l);
  return std::min(p.n, std::max<std::int64_t>(256, budget / 64 * 64));
}

void launch_fast(Context& ctx, const ProjectionProblem& p, Precision precision) {
  cudaStream_t stream = ctx.stream();
  const bool bf16 = precision == Precision::BF16;
  const std::size_t elem = bf16 ? sizeof(__nv_bfloat16) : sizeof(float);
  const cudaDataType_t type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t compute = bf16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
  const std::int64_t R = fast_rows(p);

  // Weights in the compute type (fp32 weights are used as they are for TF32).
  std::unique_ptr<detail::Scratch> store[detail::kFuseMaxOperands];
  const float* drawn[detail::kFuseMaxOperands] = {};
  draw_weights(ctx, p, store, drawn);
  std::int64_t weight_elems = 0, max_width = 0;
  int gemms = 0;
  for (int j = 0; j < p.count; ++j)
    if (p.factor_row[j] == nullptr) {
      weight_elems += p.in[j].width * p.l;
      max_width = std::max(max_width, p.in[j].width);
      ++gemms;
    }
  detail::Scratch weights(ctx, bf16 ? static_cast<std::size_t>(weight_elems) * elem : 0);
  const void* w[detail::kFuseMaxOperands] = {};
  {
    std::int64_t off = 0;
    for (int j = 0; j < p.count; ++j) {
      if (p.factor_row[j] != nullptr) continue;
      if (bf16) {
        auto* dst = weights.as<__nv_bfloat16>() + off;
        const std::int64_t count = p.in[j].width * p.l;
        KFUSE_LAUNCH(to_bf16_kernel, grid_for(count), 256, 0, stream, drawn[j], count, dst);
        w[j] = dst;
        off += count;
      } else {
        w[j] = drawn[j];
      }
    }
  }
  const bool first_gemm_into_out = p.factor_row[0] == nullptr;
  detail::Scratch packed(ctx, static_cast<std::size_t>(R * max_width) * elem);
  detail::Scratch part(
      ctx, static_cast<std::size_t>(std::max(gemms - (first_gemm_into_out ? 1 : 0), 0)) *
               static_cast<std::size_t>(R * p.l) * sizeof(float));
  HadamardArgs h;
  h.p = p;
  h.part = part.as<float>();
  for (std::int64_t i0 = 0; i0 < p.n; i0 += R) {
    const std::int64_t rows = std::min(R, p.n - i0);
    int slot = 0;
    for (int j = 0; j < p.count; ++j) {
      if (p.factor_row[j] != nullptr) continue;
      const FuseOperand& op = p.in[j];
      if (bf16) {
        KFUSE_LAUNCH(pack_operand_kernel<__nv_bfloat16>, grid_for(rows * op.width), 256, 0, stream,
                     op, i0, rows, packed.as<__nv_bfloat16>());
      } else {
        KFUSE_LAUNCH(pack_operand_kernel<float>, grid_for(rows * op.width), 256, 0, stream, op, i0,
                     rows, packed.as<float>());
      }
      float* dst;
      std::int64_t ldc;
      if (j == 0) {
        dst = p.out + i0 * p.ldo;
        ldc = p.ldo;
      } else {
        h.slot[j] = slot;
        dst = part.as<float>() + static_cast<std::int64_t>(slot++) * R * p.l;
        ldc = p.l;
      }
      GemmOperand A{packed.as<void>(), type, op.width, Op::N};
      GemmOperand B{w[j], type, p.l, Op::N};
      gemm(ctx, rows, p.l, op.width, 1.0f, A, B, 0.0f, dst, CUDA_R_32F, ldc, compute);
    }
    h.i0 = i0;
    h.rows = rows;
    KFUSE_LAUNCH(hadamard_kernel, grid_for(rows * p.l), 256, 0, stream, h);
  }
}

}  // namespace

namespace fuse {

void launch_projection(Context& ctx, const ProjectionProblem& p, Precision precision) {
  if (p.n == 0 || p.l == 0) return;
  if (precision != Precision::Exact && p.kind == ProjectionKind::Product)
    return launch_fast(ctx, p, precision);
  launch_exact(ctx, p);
}

}  // namespace fuse
}  // namespace kfuse::cuda
