// How a row-blocked kernel over a long sample is laid out on the GPU: blocks of
// query rows (grid.x), chunks of output columns (grid.y), and, when those alone
// would leave SMs idle, contiguous ranges of sample tiles (grid.z) whose partial
// sums are merged afterwards. Pure arithmetic, unit-tested on the CPU.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace kfuse::detail {

struct SplitPlan {
  std::int64_t row_blocks = 0;
  std::int64_t col_chunks = 1;
  std::int64_t splits = 1;
  std::int64_t tiles_per_split = 0;  // split s covers tiles [s * tiles_per_split, ...)
};

struct SplitLimits {
  std::int64_t target_blocks = 1;  // e.g. 8 per SM
  std::int64_t max_splits = 64;
  std::size_t max_partial_bytes = std::size_t(512) << 20;
};

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) {
  return (a + b - 1) / b;
}

// m query rows in blocks of rows_per_block; r output columns in chunks of r_chunk
// (0: no columns); n sample rows in tiles of tile_rows. A split's partials take
// partial_bytes_per_split.
inline SplitPlan plan_splits(std::int64_t m, std::int64_t n, std::int64_t r,
                             std::int64_t rows_per_block, std::int64_t r_chunk,
                             std::int64_t tile_rows, std::size_t partial_bytes_per_split,
                             const SplitLimits& limits) {
  SplitPlan plan;
  plan.row_blocks = ceil_div(m, rows_per_block);
  plan.col_chunks = r_chunk > 0 ? std::max<std::int64_t>(1, ceil_div(r, r_chunk)) : 1;
  const std::int64_t tiles = ceil_div(n, tile_rows);
  const std::int64_t base = plan.row_blocks * plan.col_chunks;
  std::int64_t splits = 1;
  // base == 0 (no query rows): nothing to spread, and no division by it below.
  if (base > 0 && base < limits.target_blocks && tiles > 1) {
    splits = std::min({ceil_div(limits.target_blocks, base), tiles, limits.max_splits});
    if (partial_bytes_per_split > 0)
      splits = std::min<std::int64_t>(
          splits, std::max<std::int64_t>(1, static_cast<std::int64_t>(limits.max_partial_bytes /
                                                                      partial_bytes_per_split)));
  }
  plan.tiles_per_split = splits > 1 ? ceil_div(tiles, splits) : tiles;
  // No empty split: recount with the rounded-up tiles per split.
  plan.splits = splits > 1 ? ceil_div(tiles, plan.tiles_per_split) : 1;
  return plan;
}

}  // namespace kfuse::detail
