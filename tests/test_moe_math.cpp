// The mixture-of-experts math shared by the CPU path and the kernels
// (kernels/moe/math.hpp), against plain double arithmetic and brute force.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/moe/math.hpp"
#include "support/moe_reference.hpp"

namespace kfuse::detail {
namespace {

TEST(MoeMath, TopkKeyOrdersLikeTheFloats) {
  std::mt19937 gen(1);
  std::vector<float> values = {0.0f,
                               -0.0f,
                               1.0f,
                               -1.0f,
                               INFINITY,
                               -INFINITY,
                               std::numeric_limits<float>::min(),
                               -std::numeric_limits<float>::min(),
                               std::numeric_limits<float>::denorm_min(),
                               std::numeric_limits<float>::max(),
                               -std::numeric_limits<float>::max()};
  std::uniform_real_distribution<float> dist(-1e3f, 1e3f);
  for (int i = 0; i < 200; ++i)
    values.push_back(dist(gen));
  for (float a : values)
    for (float b : values) {
      EXPECT_EQ(a < b, topk_key(a) < topk_key(b)) << a << " " << b;
      EXPECT_EQ(a == b, topk_key(a) == topk_key(b)) << a << " " << b;  // -0 == +0
    }
  // NaN (of either sign) ranks just below -inf, and 0 stays free for "taken".
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_LT(topk_key(nan), topk_key(-INFINITY));
  EXPECT_EQ(topk_key(-nan), topk_key(nan));
  EXPECT_GT(topk_key(nan), 0u);
  EXPECT_GT(topk_pack(topk_key(nan), 0x7ffffffe), kTopkTaken);
}

TEST(MoeMath, PackedKeysPreferLargerValuesThenLowerIndices) {
  const std::uint32_t one = topk_key(1.0f), two = topk_key(2.0f);
  EXPECT_GT(topk_pack(two, 9), topk_pack(one, 0));
  EXPECT_GT(topk_pack(one, 3), topk_pack(one, 4));
  for (std::int32_t idx : {0, 1, 7, 511, 8191, 0x7fffffff})
    EXPECT_EQ(topk_index(topk_pack(one, idx)), idx);
}

// Insertion keeps the k best of a stream, by (value desc, index asc), ties included.
TEST(MoeMath, TopkInsertMatchesAStableSort) {
  std::mt19937 gen(2);
  for (int trial = 0; trial < 300; ++trial) {
    const int E = 1 + static_cast<int>(gen() % 600);
    const int k = 1 + static_cast<int>(gen() % std::min(E, 20));
    std::uniform_int_distribution<int> small(0, trial % 3 == 0 ? 3 : 1000);  // many ties
    std::vector<float> v(E);
    for (auto& x : v)
      x = static_cast<float>(small(gen)) * 0.25f;
    if (trial % 5 == 0) v[gen() % E] = std::numeric_limits<float>::quiet_NaN();
    std::vector<std::uint64_t> list(k);
    int count = 0;
    for (int e = 0; e < E; ++e)
      count = topk_insert(list.data(), k, count, topk_pack(topk_key(v[e]), e));
    ASSERT_EQ(count, k);
    std::vector<double> ref(v.begin(), v.end());
    const auto routed = test::ref_router(ref, 1, E, k, RouterMode::TopKSoftmax, false);
    for (int j = 0; j < k; ++j)
      EXPECT_EQ(topk_index(list[j]), routed.ids[j]) << "trial " << trial << " j " << j;
  }
}

TEST(MoeMath, RouterGatesMatchDoubleSoftmax) {
  std::mt19937 gen(3);
  std::uniform_real_distribution<double> dist(-6.0, 6.0);
  for (int trial = 0; trial < 100; ++trial) {
    const int E = 1 + trial % 40, k = 1 + trial % E;
    std::vector<double> logits(E);
    for (auto& x : logits)
      x = static_cast<float>(dist(gen));
    for (RouterMode mode : {RouterMode::SoftmaxTopK, RouterMode::TopKSoftmax})
      for (bool renorm : {false, true}) {
        const auto ref = test::ref_router(logits, 1, E, k, mode, renorm);
        std::vector<float> v(k), g(k);
        for (int j = 0; j < k; ++j)
          v[j] = static_cast<float>(logits[ref.ids[j]]);
        float sum_all = 0.0f;
        for (int e = 0; e < E; ++e)
          sum_all += expf(static_cast<float>(logits[e]) - v[0]);
        router_gates(mode, renorm, v.data(), k, sum_all, g.data());
        for (int j = 0; j < k; ++j)
          EXPECT_NEAR(g[j], ref.gates[j], 1e-6 * (1 + ref.gates[j]));
      }
  }
}

TEST(MoeMath, SwigluAndItsDerivatives) {
  for (double x = -30.0; x <= 30.0; x += 0.37) {
    const float xf = static_cast<float>(x);
    const double xd = xf;
    EXPECT_NEAR(moe_silu(xf), test::ref_silu(xd), 1e-6 * (1 + std::fabs(xd)));
    EXPECT_NEAR(moe_silu_grad(xf), test::ref_silu_grad(xd), 1e-6);
    const double h = 1e-5;
    const double fd = (test::ref_silu(xd + h) - test::ref_silu(xd - h)) / (2 * h);
    EXPECT_NEAR(test::ref_silu_grad(xd), fd, 1e-8);
    const float h3 = 0.7f, da = -1.3f;
    EXPECT_NEAR(swiglu(xf, h3), test::ref_silu(xd) * h3, 1e-6 * (1 + std::fabs(xd)));
    float dh1 = 0, dh3 = 0;
    swiglu_backward(xf, h3, da, &dh1, &dh3);
    EXPECT_NEAR(dh1, da * h3 * test::ref_silu_grad(xd), 1e-5);
    EXPECT_NEAR(dh3, da * test::ref_silu(xd), 1e-5 * (1 + std::fabs(xd)));
  }
  // Saturation: no NaN at large magnitudes.
  EXPECT_EQ(moe_silu(-200.0f), 0.0f);
  EXPECT_EQ(moe_silu(200.0f), 200.0f);
  EXPECT_EQ(moe_silu_grad(-200.0f), 0.0f);
  EXPECT_EQ(moe_silu_grad(200.0f), 1.0f);
}

TEST(MoeMath, CapacityAndPadding) {
  EXPECT_EQ(kept_rows(10, 0), 10);
  EXPECT_EQ(kept_rows(10, 4), 4);
  EXPECT_EQ(kept_rows(3, 4), 3);
  EXPECT_EQ(padded_rows(0, 0, 8), 0);
  EXPECT_EQ(padded_rows(1, 0, 8), 8);
  EXPECT_EQ(padded_rows(8, 0, 8), 8);
  EXPECT_EQ(padded_rows(9, 0, 8), 16);
  EXPECT_EQ(padded_rows(100, 20, 16), 32);
  EXPECT_EQ(padded_rows(5, 0, 1), 5);
}

// The rows bound holds for random ids and is reached by some.
TEST(MoeMath, PlanRowsBoundIsAnUpperBoundAndTight) {
  std::mt19937 gen(4);
  for (int trial = 0; trial < 400; ++trial) {
    const std::int64_t T = gen() % 40, E = 1 + gen() % 12, k = 1 + gen() % E;
    const std::int64_t pads[] = {1, 2, 8, 16};
    const std::int64_t pad = pads[gen() % 4], cap = gen() % 3 == 0 ? gen() % 9 : 0;
    std::vector<std::int32_t> ids(T * k);
    const std::int64_t spread = 1 + gen() % E;  // few experts: tall groups
    for (auto& id : ids)
      id = static_cast<std::int32_t>(gen() % spread);
    const auto p = test::ref_plan(ids, T, k, E, pad, cap);
    EXPECT_LE(p.offsets[E], plan_rows_bound(T, k, E, pad, cap));
  }
  // Tight: every slot to its own expert (E >= T k), each padded to pad_to.
  const auto own = [](std::int64_t T, std::int64_t k) {
    std::vector<std::int32_t> ids(T * k);
    for (std::int64_t s = 0; s < T * k; ++s)
      ids[s] = static_cast<std::int32_t>(s);
    return ids;
  };
  EXPECT_EQ(test::ref_plan(own(3, 2), 3, 2, 8, 8, 0).offsets[8], plan_rows_bound(3, 2, 8, 8, 0));
  // Tight with capacity: all slots to every expert's capacity.
  std::vector<std::int32_t> ids(30);
  for (int s = 0; s < 30; ++s)
    ids[s] = s % 3;
  EXPECT_EQ(test::ref_plan(ids, 30, 1, 3, 4, 5).offsets[3], plan_rows_bound(30, 1, 3, 4, 5));
  EXPECT_EQ(plan_rows_bound(0, 2, 4, 16, 0), 0);
}

TEST(MoeMath, SlotHelpers) {
  EXPECT_EQ(slot_token(0, 3), 0);
  EXPECT_EQ(slot_token(5, 3), 1);
  EXPECT_EQ(slot_gate_offset(5, 3, 10), 12);  // token 1, choice 2
  // 64-bit: slot indices near 2^31 with a long gate row.
  EXPECT_EQ(slot_gate_offset(std::int64_t(0x7fffffff), 8, 1 << 20),
            (std::int64_t(0x7fffffff) / 8) * (1 << 20) + 7);
}

// The tile schedule: tiles never exceed the host bound, and the binary search
// finds the owning expert, skipping empty ones.
TEST(MoeMath, TileScheduleFindsEveryTilesExpert) {
  std::mt19937 gen(5);
  for (int trial = 0; trial < 300; ++trial) {
    const int E = 1 + static_cast<int>(gen() % 20);
    const std::int64_t tile = std::int64_t(1) << (gen() % 8);
    std::vector<std::int64_t> counts(E);
    std::int64_t rows = 0;
    for (auto& c : counts) {
      c = gen() % 3 == 0 ? 0 : gen() % 300;
      rows += c;
    }
    std::vector<std::int32_t> start(E + 1, 0);
    for (int e = 0; e < E; ++e)
      start[e + 1] = start[e] + static_cast<std::int32_t>(moe_ceil_div(counts[e], tile));
    EXPECT_LE(start[E], tile_bound(rows, E, tile));
    for (std::int64_t t = 0; t < start[E]; ++t) {
      int owner = 0;
      while (!(t >= start[owner] && t < start[owner + 1]))
        ++owner;
      EXPECT_EQ(find_tile_expert(start.data(), E, t), owner);
    }
  }
}

TEST(MoeMath, RowShapeCoversTheRowAndFillsTheBlock) {
  for (std::int64_t vectors : {1, 31, 32, 33, 64, 100, 255, 256, 896, 100000}) {
    const RowShape s = row_shape(vectors);
    EXPECT_EQ(s.threads_per_row * s.rows_per_block, 256);
    EXPECT_GE(s.threads_per_row, 32);
    EXPECT_TRUE(s.threads_per_row >= vectors || s.threads_per_row == 256);
    EXPECT_TRUE(s.threads_per_row == 32 || s.threads_per_row / 2 < vectors);
  }
}

}  // namespace
}  // namespace kfuse::detail
