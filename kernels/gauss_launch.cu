// The CUDA path of the Gaussian family: picks the kernel variant for the shape
// and precision, splits the sample across blocks when the query rows alone would
// not fill the GPU, and merges the splits deterministically. Everything is
// enqueued on the context's stream; nothing waits for the device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "../src/scratch.hpp"
#include "common/cuda_check.hpp"
#include "gauss_kernels.hpp"
#include "gauss_launch.hpp"

namespace kfuse::cuda {
namespace {

using gauss::Launch;
using gauss::Shape;

enum class Variant { SmallD, Tiled, TensorCore };

// Blocks wanted in flight: several per SM so that the tail of the grid is short.
constexpr int kBlocksPerSmTarget = 8;
constexpr int kMaxSplits = 64;
constexpr std::size_t kMaxPartialBytes = std::size_t(512) << 20;
// Beyond this c, sqrt(c)-scaled inputs could overflow fp32 in the tensor-core
// prepass; such tiny bandwidths take the exact path.
constexpr double kTensorCoreMaxCoefficient = 1e18;

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

template <class T>
Variant choose(const detail::GaussSum<T>& p, Precision precision, double c) {
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
void gauss_sum(Context& ctx, const detail::GaussSum<T>& p, const detail::GaussEpilogue<T>& e,
               Precision precision) {
  if (p.m == 0) return;
  detail::DeviceGuard guard(ctx.device());
  cudaStream_t stream = ctx.stream();

  Launch<T> L;
  L.p = p;
  L.e = e;
  L.c = detail::gauss_log2_coefficient<T>(p.sigma);
  const Variant variant = choose(p, precision, static_cast<double>(L.c));

  Shape shape;
  if constexpr (std::is_same_v<T, float>) {
    if (variant == Variant::SmallD) shape = gauss::small_d_shape(p.d, p.r);
    if (variant == Variant::TensorCore) shape = gauss::tc_shape(p.r, precision);
  }
  if (variant == Variant::Tiled) shape = gauss::tiled_shape<T>(p.r);

  const std::int64_t row_blocks = ceil_div(p.m, shape.rows_per_block);
  const std::int64_t r_chunks = shape.r_chunk > 0 ? ceil_div(p.r, shape.r_chunk) : 1;
  const std::int64_t tiles = ceil_div(p.n, shape.tile_cols);
  int sms = 0;
  KFUSE_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, ctx.device()));
  const std::int64_t target = std::int64_t(kBlocksPerSmTarget) * sms;
  std::int64_t splits = 1;
  if (row_blocks * r_chunks < target && tiles > 1) {
    splits = std::min<std::int64_t>({ceil_div(target, row_blocks * r_chunks), tiles, kMaxSplits});
    const std::size_t per_split = static_cast<std::size_t>(p.m * (p.r + 2)) * sizeof(T);
    splits = std::max<std::int64_t>(
        1, std::min<std::int64_t>(splits, static_cast<std::int64_t>(kMaxPartialBytes / per_split)));
  }
  L.tiles_per_split = splits > 1 ? ceil_div(tiles, splits) : tiles;
  if (splits > 1) splits = ceil_div(tiles, L.tiles_per_split);
  L.splits = static_cast<int>(splits);
  if (r_chunks > 65535 || splits > 65535 || row_blocks > 0x7fffffff)
    throw Error(Status::Unsupported, "gauss: problem too large for one launch grid");
  const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(r_chunks),
                  static_cast<unsigned>(splits));

  // Scratch lives until the end of this function: stream-ordered release keeps it
  // valid for the kernels enqueued here.
  detail::Scratch partials(ctx, splits > 1 ? static_cast<std::size_t>(splits * p.m * (p.r + 2)) *
                                                 sizeof(T)
                                           : 0);
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
    gauss::combine_splits_kernel<T>
        <<<static_cast<unsigned>(ceil_div(threads, kBlock)), kBlock, 0, stream>>>(L);
    KFUSE_CUDA_CHECK_LAUNCH(combine_splits_kernel);
  }
}

template void gauss_sum<float>(Context&, const detail::GaussSum<float>&,
                               const detail::GaussEpilogue<float>&, Precision);
template void gauss_sum<double>(Context&, const detail::GaussSum<double>&,
                                const detail::GaussEpilogue<double>&, Precision);

}  // namespace kfuse::cuda
