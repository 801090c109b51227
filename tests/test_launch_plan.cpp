// The host-side launch arithmetic of the row-blocked kernels (splits of the sample
// across blocks), checked on the CPU since the kernels themselves may not run here.
#include <gtest/gtest.h>

#include "kernels/core/launch_plan.hpp"

namespace kfuse::detail {
namespace {

// Every sample tile belongs to exactly one non-empty split.
void expect_partition(const SplitPlan& plan, std::int64_t n, std::int64_t tile) {
  const std::int64_t tiles = ceil_div(n, tile);
  if (tiles == 0) {
    EXPECT_EQ(plan.splits, 1);
    return;
  }
  EXPECT_GE(plan.splits * plan.tiles_per_split, tiles);
  EXPECT_LT((plan.splits - 1) * plan.tiles_per_split, tiles);
}

TEST(LaunchPlan, SplitsOnlyWhenRowsLeaveTheGpuIdle) {
  SplitLimits limits;
  limits.target_blocks = 8 * 132;
  // 100k rows in blocks of 512: 196 blocks, under the target: split the sample.
  SplitPlan p = plan_splits(100000, 100000, 1, 512, 1, 128, 100000 * 3 * 4, limits);
  EXPECT_EQ(p.row_blocks, 196);
  EXPECT_EQ(p.col_chunks, 1);
  EXPECT_EQ(p.splits, 6);
  expect_partition(p, 100000, 128);
  // Enough row blocks already: one split covering every tile.
  p = plan_splits(1000000, 5000, 1, 64, 4, 64, 1000000 * 3 * 4, limits);
  EXPECT_EQ(p.splits, 1);
  EXPECT_EQ(p.tiles_per_split, ceil_div(5000, 64));
}

TEST(LaunchPlan, PartitionAtEveryEdge) {
  SplitLimits limits;
  limits.target_blocks = 1056;
  for (std::int64_t m : {1, 63, 64, 65, 1000}) {
    for (std::int64_t n : {0, 1, 63, 64, 65, 129, 4097, 100000}) {
      for (std::int64_t r : {0, 1, 3, 33, 64}) {
        const SplitPlan p = plan_splits(m, n, r, 64, r == 0 ? 0 : 32, 64, m * (r + 2) * 4, limits);
        EXPECT_EQ(p.row_blocks, ceil_div(m, 64));
        EXPECT_EQ(p.col_chunks, r == 0 ? 1 : ceil_div(r, 32));
        EXPECT_GE(p.splits, 1);
        EXPECT_LE(p.splits, limits.max_splits);
        expect_partition(p, n, 64);
      }
    }
  }
}

// No query rows: no row blocks and one split (and no division by the zero blocks).
TEST(LaunchPlan, NoQueryRows) {
  SplitLimits limits;
  limits.target_blocks = 1056;
  for (std::int64_t n : {0, 1, 65, 100000}) {
    const SplitPlan p = plan_splits(0, n, 3, 64, 32, 64, 0, limits);
    EXPECT_EQ(p.row_blocks, 0);
    EXPECT_EQ(p.splits, 1);
    expect_partition(p, n, 64);
  }
}

TEST(LaunchPlan, PartialMemoryIsBounded) {
  SplitLimits limits;
  limits.target_blocks = 1 << 20;
  limits.max_partial_bytes = 10 << 20;
  const std::size_t per_split = 4 << 20;  // 4 MiB of partials per split: at most 2 splits
  const SplitPlan p = plan_splits(1000, 1 << 20, 1000, 64, 32, 64, per_split, limits);
  EXPECT_EQ(p.splits, 2);
  expect_partition(p, 1 << 20, 64);
}

}  // namespace
}  // namespace kfuse::detail
