// The CUDA path of the Gaussian family: picks the kernel variant for the shape
// and precision, splits the sample across blocks when the query rows alone would
// not fill the GPU, and merges the splits deterministically. Everything is
// enqueued on the context's stream; nothing waits for the device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "kernels/core/cuda_check.hpp"
#include "kernels/core/device.cuh"
#include "kernels/core/launch_plan.hpp"
#include "kernels/gauss/kernels.hpp"
#include "kernels/gauss/launch.hpp"
#include "src/core/scratch.hpp"

namespace kfuse::cuda {
namespace {

using gauss::Launch;
using gauss::Shape;

enum class Variant { SmallD, Tiled, TensorCore };

// Blocks wanted in flight: several per SM so that the tail of the grid is short.
constexpr int kBlocksPerSmTarget = 8;
// Beyond this c, sqrt(c)-scaled inputs could overflow fp32 in the tensor-core
// prepass; such tiny bandwidths take the exact path.
constexpr double kTensorCoreMaxCoefficient = 1e18;

// A sigma far from 1 scales the differences before squaring (kernels/gauss/math.hpp):
// only the tiled kernel does that, so the others keep their inner loops.
template <class T>
Variant choose(const detail::GaussProblem<T>& p, Precision precision, double c, bool scaled) {
  if (scaled) return Variant::Tiled;
  if constexpr (std::is_same_v<T, float>) {
    if (p.d <= gauss::kSmallDMax) return Variant::SmallD;
    if (precision != Precision::Exact && p.d >= gauss::kTensorCoreMinD &&
        c < kTensorCoreMaxCoefficient)
      return Variant::TensorCore;
  }
  return Variant::Tiled;
}

}  // namespace

template <class T>
void gauss_sum(Context& ctx, const detail::GaussProblem<T>& p, const detail::GaussEpilogue<T>& e,
               Precision precision) {
  if (p.m == 0) return;
  detail::DeviceGuard guard(ctx.device());
  cudaStream_t stream = ctx.stream();

  Launch<T> L;
  L.p = p;
  L.e = e;
  L.c = detail::gauss_log2_coefficient<T>(p.sigma);
  L.q = static_cast<T>(detail::gauss_distance_scale<T>(p.sigma));
  const Variant variant = choose(p, precision, static_cast<double>(L.c), L.q != T(1));

  Shape shape;
  if constexpr (std::is_same_v<T, float>) {
    if (variant == Variant::SmallD) shape = gauss::small_d_shape(p.d, p.r);
    if (variant == Variant::TensorCore) shape = gauss::tc_shape(p.r, precision);
  }
  if (variant == Variant::Tiled) shape = gauss::tiled_shape<T>(p.r);

  int sms = 0;
  KFUSE_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, ctx.device()));
  detail::SplitLimits limits;
  limits.target_blocks = std::int64_t(kBlocksPerSmTarget) * sms;
  const detail::SplitPlan plan =
      detail::plan_splits(p.m, p.n, p.r, shape.rows_per_block, shape.r_chunk, shape.tile_cols,
                          static_cast<std::size_t>(p.m * (p.r + 2)) * sizeof(T), limits);
  const std::int64_t splits = plan.splits;
  L.splits = static_cast<int>(splits);
  L.tiles_per_split = plan.tiles_per_split;
  if (plan.col_chunks > 65535 || splits > 65535 || plan.row_blocks > 0x7fffffff)
    throw Error(Status::Unsupported, "gauss: problem too large for one launch grid");
  const dim3 grid(static_cast<unsigned>(plan.row_blocks), static_cast<unsigned>(plan.col_chunks),
                  static_cast<unsigned>(splits));

  // Scratch lives until the end of this function: stream-ordered release keeps it
  // valid for the kernels enqueued here.
  detail::Scratch partials(
      ctx, splits > 1 ? static_cast<std::size_t>(splits * p.m * (p.r + 2)) * sizeof(T) : 0);
  if (splits > 1) {
    L.part_acc = partials.as<T>();
    L.part_den = L.part_acc + splits * p.m * p.r;
    L.part_max = L.part_den + splits * p.m;
  }

  if constexpr (std::is_same_v<T, float>) {
    if (variant == Variant::SmallD) gauss::launch_small_d(L, shape, grid, stream);
    if (variant == Variant::TensorCore) {
      detail::Scratch prepared(ctx, gauss::tc_prepared_bytes(p.m, p.n, p.d, precision));
      const gauss::Prepared prep = gauss::prepare_tc(L, precision, prepared.as<void>(), stream);
      gauss::launch_tc(L, prep, precision, shape, grid, stream);
    }
  }
  if (variant == Variant::Tiled) gauss::launch_tiled(L, shape, grid, stream);

  if (splits > 1) {
    const std::int64_t threads =
        p.m * (detail::gauss_epilogue_is_row(e.kind) ? 1 : std::max<std::int64_t>(p.r, 1));
    constexpr int kBlock = 256;
    KFUSE_LAUNCH(gauss::combine_splits_kernel<T>,
                 static_cast<unsigned>(detail::ceil_div(threads, kBlock)), kBlock, 0, stream, L);
  }
}

template void gauss_sum<float>(Context&, const detail::GaussProblem<float>&,
                               const detail::GaussEpilogue<float>&, Precision);
template void gauss_sum<double>(Context&, const detail::GaussProblem<double>&,
                                const detail::GaussEpilogue<double>&, Precision);

}  // namespace kfuse::cuda
