// How the contrastive family splits its work and lays out its workspace (internal,
// host side, pure arithmetic: unit-tested on the CPU).
//
// Forward: the Na x Nb pairs are cut into G x H rectangles (G groups of row blocks
// times H groups of column tiles). Each rectangle keeps partial log-sum-exp states
// for its rows ([H][Na] in all) and for its columns ([G][Nb]); a merge then folds
// them in a fixed order. One pass over the logits gives both directions'
// statistics, deterministically, in O((G + H)(Na + Nb)) memory.
//
// Backward: a pass owns blocks of rows and walks all columns (twice: once over A's
// rows for dA, once over B's rows for dB). On a GPU, when the row blocks alone
// would not fill the device, the columns are split into ranges whose partial
// gradients are merged in a fixed order; each block accumulates into an fp32
// `slot` of block_rows x ld_slot floats in the workspace.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/core/launch_plan.hpp"

namespace kfuse::detail::contrastive {

// Floats of one partial state: running maximum, scaled sum of exponentials, sum
// of logits (for label smoothing; SigLIP keeps its loss sum there).
constexpr int kStateFloats = 3;

struct RectPlan {
  std::int64_t block_rows = 1, tile_cols = 1;
  std::int64_t row_blocks = 0, col_tiles = 0;
  std::int64_t row_groups = 1, col_groups = 1;  // G, H
  std::int64_t blocks_per_group = 1;            // row blocks of a row group
  std::int64_t tiles_per_group = 1;             // column tiles of a column group
};

// G x H >= target rectangles where the extents allow, G, H <= max_groups, shaped to
// keep the partial states (G ny + H nx) small; no empty group.
inline RectPlan plan_rectangles(std::int64_t nx, std::int64_t ny, std::int64_t block_rows,
                                std::int64_t tile_cols, std::int64_t target,
                                std::int64_t max_groups) {
  RectPlan p;
  p.block_rows = block_rows;
  p.tile_cols = tile_cols;
  p.row_blocks = ceil_div(nx, block_rows);
  p.col_tiles = ceil_div(ny, tile_cols);
  if (p.row_blocks == 0 || p.col_tiles == 0) return p;
  const std::int64_t g_max = std::min(p.row_blocks, max_groups);
  const std::int64_t h_max = std::min(p.col_tiles, max_groups);
  // G / H ~ nx / ny minimises G ny + H nx at G H = target.
  const double g0 = std::sqrt(double(target) * double(nx) / double(ny));
  std::int64_t g = std::clamp<std::int64_t>(std::llround(g0), 1, g_max);
  const std::int64_t h = std::clamp<std::int64_t>(ceil_div(target, g), 1, h_max);
  g = std::clamp<std::int64_t>(std::max(g, ceil_div(target, h)), 1, g_max);
  p.blocks_per_group = ceil_div(p.row_blocks, g);
  p.row_groups = ceil_div(p.row_blocks, p.blocks_per_group);
  p.tiles_per_group = ceil_div(p.col_tiles, h);
  p.col_groups = ceil_div(p.col_tiles, p.tiles_per_group);
  return p;
}

struct BackwardPlan {
  std::int64_t block_rows = 1, tile_cols = 1;
  std::int64_t row_blocks = 0, col_tiles = 0;
  std::int64_t col_splits = 1;       // column ranges merged afterwards (1: no merge)
  std::int64_t tiles_per_split = 0;  // a multiple of group_tiles unless one split
  std::int64_t grid = 0;             // blocks launched: persistent when col_splits == 1
  std::int64_t slot_count = 0;       // fp32 accumulators of block_rows x ld_slot
  std::int64_t ld_slot = 0;          // d rounded up to the chunk width
};

// group_tiles: column tiles whose gradient products are batched; chunk: the width
// of a slice of d that one accumulation step covers; target: blocks wanted in
// flight; max_splits: bound on the column splits.
inline BackwardPlan plan_backward(std::int64_t nx, std::int64_t ny, std::int64_t d,
                                  std::int64_t block_rows, std::int64_t tile_cols,
                                  std::int64_t group_tiles, std::int64_t chunk, std::int64_t target,
                                  std::int64_t max_splits) {
  BackwardPlan p;
  p.block_rows = block_rows;
  p.tile_cols = tile_cols;
  p.row_blocks = ceil_div(nx, block_rows);
  p.col_tiles = ceil_div(ny, tile_cols);
  p.ld_slot = ceil_div(d, chunk) * chunk;
  p.tiles_per_split = p.col_tiles;
  if (p.row_blocks == 0 || p.col_tiles == 0) return p;
  if (p.row_blocks < target) {
    const std::int64_t want =
        std::min({ceil_div(target, p.row_blocks), ceil_div(p.col_tiles, group_tiles), max_splits});
    if (want > 1) {
      p.tiles_per_split = ceil_div(ceil_div(p.col_tiles, want), group_tiles) * group_tiles;
      p.col_splits = ceil_div(p.col_tiles, p.tiles_per_split);
    }
  }
  if (p.col_splits == 1) p.tiles_per_split = p.col_tiles;
  const std::int64_t items = p.row_blocks * p.col_splits;
  p.grid = p.col_splits == 1 ? std::min(p.row_blocks, target) : items;
  p.slot_count = p.grid;
  return p;
}

// The shape of the backend a call runs on.
struct Machine {
  bool gpu = false;
  int sms = 0;  // streaming multiprocessors (GPU)
};

// Tile geometry of each backend.
struct Geometry {
  std::int64_t block_rows, tile_cols;  // a tile of logits
  std::int64_t group_tiles, chunk;     // backward batching (GPU)
  std::int64_t forward_target, forward_max_groups;
  std::int64_t backward_target, backward_max_splits;
  std::size_t partial_bytes;  // bytes of one float of a partial state
};

inline Geometry geometry(const Machine& m) {
  if (m.gpu) {
    const std::int64_t sms = std::max(1, m.sms);
    return {64, 64, 2, 64, 4 * sms, 32, 2 * sms, 16, 4};
  }
  // The CPU plan must not depend on the thread count (results would): fixed targets.
  return {16, 64, 1, 1, 64, 8, 1, 1, 8};
}

// Offsets into one workspace, each aligned to 256 bytes.
class Carve {
 public:
  template <class T>
  std::size_t take(std::int64_t count) {
    const std::size_t offset = (end_ + 255) / 256 * 256;
    end_ = offset + static_cast<std::size_t>(count < 0 ? 0 : count) * sizeof(T);
    return offset;
  }
  std::size_t bytes() const { return end_; }

 private:
  std::size_t end_ = 0;
};

// The forward's workspace: partial states, positives, per-row results that the
// caller does not keep, and the sums of the mean.
struct ForwardLayout {
  RectPlan plan;
  std::size_t row_part = 0, col_part = 0, pos_x = 0, pos_y = 0;
  std::size_t lse_x = 0, loss_x = 0, lse_y = 0, loss_y = 0, sums = 0;
  std::size_t bytes = 0;
};

inline ForwardLayout forward_layout(const Machine& m, std::int64_t nx, std::int64_t ny) {
  const Geometry g = geometry(m);
  ForwardLayout l;
  l.plan =
      plan_rectangles(nx, ny, g.block_rows, g.tile_cols, g.forward_target, g.forward_max_groups);
  Carve c;
  l.row_part = c.take<unsigned char>(static_cast<std::int64_t>(g.partial_bytes) * kStateFloats *
                                     l.plan.col_groups * nx);
  l.col_part = c.take<unsigned char>(static_cast<std::int64_t>(g.partial_bytes) * kStateFloats *
                                     l.plan.row_groups * ny);
  l.pos_x = c.take<float>(nx);
  l.pos_y = c.take<float>(ny);
  l.lse_x = c.take<float>(nx);
  l.loss_x = c.take<float>(nx);
  l.lse_y = c.take<float>(ny);
  l.loss_y = c.take<float>(ny);
  l.sums = c.take<double>(4);
  l.bytes = c.bytes();
  return l;
}

// One gradient pass's workspace. n_other: the columns of the pass.
struct BackwardLayout {
  BackwardPlan plan;
  std::size_t slots = 0, split_sums = 0, dt_rows = 0, db_rows = 0, loss_rows = 0;
  std::size_t dy_accum = 0, sums = 0;
  std::int64_t ld_dy_accum = 0;
  std::size_t bytes = 0;
};

inline BackwardLayout backward_layout(const Machine& m, std::int64_t nx, std::int64_t ny,
                                      std::int64_t d, bool dy_accumulate) {
  const Geometry g = geometry(m);
  BackwardLayout l;
  Carve c;
  if (m.gpu) {
    l.plan = plan_backward(nx, ny, d, g.block_rows, g.tile_cols, g.group_tiles, g.chunk,
                           g.backward_target, g.backward_max_splits);
    l.slots = c.take<float>(l.plan.slot_count * l.plan.block_rows * l.plan.ld_slot);
    l.split_sums = c.take<double>(l.plan.col_splits > 1 ? 3 * l.plan.col_splits * nx : 0);
  }
  l.dt_rows = c.take<double>(nx);
  l.db_rows = c.take<double>(nx);
  l.loss_rows = c.take<float>(nx);
  if (dy_accumulate) {
    l.ld_dy_accum = ceil_div(d, 4) * 4;
    l.dy_accum = c.take<float>(ny * l.ld_dy_accum);
  }
  l.sums = c.take<double>(4);
  l.bytes = c.bytes();
  return l;
}

}  // namespace kfuse::detail::contrastive
