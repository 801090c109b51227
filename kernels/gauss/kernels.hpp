// The Gaussian kernels' launch interface (internal, host side): each kernel
// variant says how it cuts the problem, and launches on a prepared Launch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/gauss/device.cuh"
#include "kfuse/precision.hpp"

namespace kfuse::cuda::gauss {

// How a variant cuts the problem: query rows per block (grid.x), output columns
// per block (grid.y), sample rows per tile (the unit of a split along grid.z), and
// the dynamic shared memory a block needs.
struct Shape {
  int rows_per_block = 0;
  int r_chunk = 0;  // 0: the problem has no output columns (R == 0)
  int tile_cols = 0;
  int threads = 0;
  std::size_t smem_bytes = 0;
};

// fp32, d <= 32: one thread per query row (a few rows each), FFMA distances, the
// hardware exp2.
constexpr std::int64_t kSmallDMax = 32;
Shape small_d_shape(std::int64_t d, std::int64_t r);
void launch_small_d(const Launch<float>& L, const Shape& shape, dim3 grid, cudaStream_t stream);

// Any d, fp32 or fp64: block tiles of exact pairwise distances (direct form,
// x - y before squaring), then the shared tile epilogue.
template <class T>
Shape tiled_shape(std::int64_t r);
template <class T>
void launch_tiled(const Launch<T>& L, const Shape& shape, dim3 grid, cudaStream_t stream);

// fp32 inputs, d >= 64, TF32 or BF16 allowed: prepared (centred, scaled, rounded)
// inputs, the cross term on tensor cores (WMMA), then the shared tile epilogue.
constexpr std::int64_t kTensorCoreMinD = 64;
struct Prepared {
  const void* x = nullptr;        // [m][ld] in the compute type (float rounded to tf32, or bf16)
  const void* y = nullptr;        // [n][ld]
  std::int64_t ld = 0;            // d rounded up to the k-step
  const float* x_norm = nullptr;  // |x'_i|^2 of the rounded rows
  const float* y_norm = nullptr;
};
Shape tc_shape(std::int64_t r, Precision precision);
std::size_t tc_prepared_bytes(std::int64_t m, std::int64_t n, std::int64_t d, Precision precision);
// Fills `workspace` (tc_prepared_bytes) from L.p: centre at a mean of sample rows,
// scale by sqrt(c), round to the compute type, row norms. Returns the views.
Prepared prepare_tc(const Launch<float>& L, Precision precision, void* workspace,
                    cudaStream_t stream);
void launch_tc(const Launch<float>& L, const Prepared& prep, Precision precision,
               const Shape& shape, dim3 grid, cudaStream_t stream);

}  // namespace kfuse::cuda::gauss
