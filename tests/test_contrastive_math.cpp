// The contrastive family's shared math (kernels/contrastive/math.hpp) and
// its work plans and workspace layouts (kernels/contrastive/plan.hpp), on the CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/contrastive/math.hpp"
#include "kernels/contrastive/plan.hpp"

namespace kfuse::detail::contrastive {
namespace {

double naive_lse(const std::vector<double>& x) {
  long double s = 0;
  const double m = *std::max_element(x.begin(), x.end());
  for (double v : x)
    s += std::exp(static_cast<long double>(v - m));
  return m + static_cast<double>(std::log(s));
}

TEST(ContrastiveMath, ExpPolyIsAccurateOverItsDomain) {
  double worst = 0.0;
  for (int k = 0; k <= 2000000; ++k) {
    const double x = -708.0 + 1417.0 * double(k) / 2000000.0;
    const long double ref = std::exp(static_cast<long double>(x));
    worst = std::max(worst, double(std::fabs((exp_poly(x) - ref) / ref)));
  }
  EXPECT_LT(worst, 5e-16);  // about 2 ulp
  EXPECT_EQ(exp_poly(0.0), 1.0);
  EXPECT_NEAR(exp_poly(1.0), std::exp(1.0), 5e-16 * std::exp(1.0));
  EXPECT_EQ(exp_poly(-709.0), 0.0);  // below the normal range: flushed
  EXPECT_EQ(exp_poly(-INFINITY), 0.0);
  EXPECT_EQ(exp_poly(710.0), INFINITY);
  EXPECT_EQ(exp_poly(INFINITY), INFINITY);
  EXPECT_TRUE(std::isnan(exp_poly(NAN)));
  EXPECT_EQ(c_exp(-2.5), exp_poly(-2.5));  // the host's double exp
}

TEST(ContrastiveMath, Log1pPolyIsAccurateOnTheUnitInterval) {
  double worst = 0.0;
  for (int k = 0; k <= 2000000; ++k) {
    // Both ends resolved: u from 1e-300 up, and a uniform grid of [0, 1].
    const double u =
        k % 2 == 0 ? std::pow(10.0, -300.0 + 300.0 * double(k) / 2000000.0) : double(k) / 2000000.0;
    const long double ref = std::log1p(static_cast<long double>(u));
    worst = std::max(worst, double(std::fabs((log1p_unit_poly(u) - ref) / ref)));
  }
  EXPECT_LT(worst, 5e-16);  // about 2 ulp
  EXPECT_EQ(log1p_unit_poly(0.0), 0.0);
  EXPECT_NEAR(log1p_unit_poly(1.0), std::log(2.0), 5e-16 * std::log(2.0));
  EXPECT_TRUE(std::isnan(log1p_unit_poly(NAN)));
  EXPECT_EQ(c_log1p_unit(0.25), log1p_unit_poly(0.25));  // the host's double log1p
  EXPECT_EQ(softplus(0.0), log1p_unit_poly(1.0));
}

TEST(ContrastiveMath, LseMergeMatchesTheDirectSumInAnyGrouping) {
  std::mt19937_64 gen(1);
  std::uniform_real_distribution<double> dist(-120.0, 120.0);
  std::vector<double> x(1000);
  for (auto& v : x)
    v = dist(gen);
  const double expected = naive_lse(x);
  // One term at a time, in float and double.
  Lse<double> one = lse_empty<double>();
  Lse<float> onef = lse_empty<float>();
  for (double v : x) {
    one = lse_add(one, v);
    onef = lse_add(onef, float(v));
  }
  EXPECT_NEAR(lse_value(one), expected, 1e-12 * std::fabs(expected));
  EXPECT_NEAR(lse_value(onef), expected, 1e-5 * std::fabs(expected));
  // Blocks of 7 merged in reverse order.
  std::vector<Lse<double>> blocks;
  for (std::size_t k = 0; k < x.size(); k += 7) {
    Lse<double> b = lse_empty<double>();
    for (std::size_t q = k; q < std::min(x.size(), k + 7); ++q)
      b = lse_add(b, x[q]);
    blocks.push_back(b);
  }
  Lse<double> merged = lse_empty<double>();
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it)
    merged = lse_merge(merged, *it);
  EXPECT_NEAR(lse_value(merged), expected, 1e-12 * std::fabs(expected));
}

TEST(ContrastiveMath, LseHandlesEmptyAndMaskedTerms) {
  const Lse<float> e = lse_empty<float>();
  const Lse<float> both = lse_merge(e, e);
  EXPECT_EQ(both.m, -INFINITY);
  EXPECT_EQ(both.s, 0.0f);
  EXPECT_EQ(lse_value(both), -INFINITY);
  const Lse<float> x = lse_add(e, 3.0f);
  EXPECT_EQ(lse_merge(e, x).m, 3.0f);
  EXPECT_EQ(lse_merge(x, e).s, 1.0f);
  const Lse<float> masked = lse_add(x, -INFINITY);
  EXPECT_EQ(masked.m, 3.0f);
  EXPECT_EQ(masked.s, 1.0f);
  // Huge logits: no overflow.
  Lse<float> big = lse_empty<float>();
  for (float v : {1e30f, 1e30f, 5.0f})
    big = lse_add(big, v);
  EXPECT_FLOAT_EQ(lse_value(big), 1e30f);
  EXPECT_TRUE(std::isfinite(lse_value(big)));
}

TEST(ContrastiveMath, CrossEntropyWithSmoothing) {
  const std::vector<double> s = {1.0, -2.0, 0.5, 3.0};
  const double lse = naive_lse(s), eps = 0.2, classes = 4;
  double sum = 0, direct = lse;
  for (std::size_t j = 0; j < s.size(); ++j) {
    sum += s[j];
    const double target = (j == 2 ? 1 - eps : 0.0) + eps / classes;
    direct -= target * s[j];
  }
  EXPECT_NEAR(ce_loss(lse, s[2], sum, eps, classes), direct, 1e-14);
  // The gradient of a row sums to 0 (softmax and target both sum to 1) and matches
  // a central difference of the loss.
  double g_sum = 0;
  for (std::size_t j = 0; j < s.size(); ++j) {
    const double g = ce_grad(s[j], lse, j == 2, eps, classes);
    g_sum += g;
    auto f = [&](double h) {
      std::vector<double> t = s;
      t[j] += h;
      double total = 0;
      for (double v : t)
        total += v;
      return ce_loss(naive_lse(t), t[2], total, eps, classes);
    };
    EXPECT_NEAR(g, (f(1e-6) - f(-1e-6)) / 2e-6, 1e-8);
  }
  EXPECT_NEAR(g_sum, 0.0, 1e-15);
}

TEST(ContrastiveMath, ClipFactorsAndTheCombinedGradient) {
  // Both directions of an N x N problem: dS = (1 / 2N) (both CE gradients).
  ClipFactors f = clip_factors(0.5, 0.5, 100, 100);
  EXPECT_EQ(f.rx, 1.0);
  EXPECT_EQ(f.ry, 1.0);
  EXPECT_DOUBLE_EQ(f.coef, 0.5 / 100);
  f = clip_factors(1.0, 0.0, 30, 70);
  EXPECT_EQ(f.rx, 1.0);
  EXPECT_EQ(f.ry, 0.0);
  EXPECT_DOUBLE_EQ(f.coef, 1.0 / 30);
  // Unequal weights: the larger factor is 1, the other the ratio.
  f = clip_factors(0.5, 0.5, 20, 80);
  EXPECT_EQ(f.rx, 1.0);
  EXPECT_DOUBLE_EQ(f.ry, 0.25);
  EXPECT_DOUBLE_EQ(f.coef, 0.5 / 20);
  // clip_dlogit = rx * row gradient + ry * column gradient; a zero ratio skips its
  // (possibly undefined) log-sum-exp.
  const double s = 0.3, lr = 2.0, lc = 1.5;
  EXPECT_DOUBLE_EQ(clip_dlogit(s, lr, lc, true, 1.0, 0.25, 0.1, 20.0, 80.0),
                   ce_grad(s, lr, true, 0.1, 80.0) + 0.25 * ce_grad(s, lc, true, 0.1, 20.0));
  EXPECT_DOUBLE_EQ(clip_dlogit(s, lr, std::nan(""), false, 1.0, 0.0, 0.0, 20.0, 80.0),
                   ce_grad(s, lr, false, 0.0, 80.0));
}

TEST(ContrastiveMath, SoftplusAndSigmoidAreStable) {
  for (double x : {-1000.0, -100.0, -30.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 30.0, 100.0, 1000.0}) {
    const long double lx = x;
    const long double sp = lx > 0 ? lx + std::log1p(std::exp(-lx)) : std::log1p(std::exp(lx));
    const long double sg = 1.0L / (1.0L + std::exp(-lx));
    EXPECT_NEAR(softplus(x), double(sp), 1e-15 * std::max(1.0, double(sp))) << x;
    EXPECT_NEAR(sigmoid(x), double(sg), 1e-15) << x;
    EXPECT_NEAR(sigmoid(x) + sigmoid(-x), 1.0, 1e-15) << x;
    EXPECT_NEAR(softplus(x) - softplus(-x), x, 1e-12 * std::max(1.0, std::fabs(x))) << x;
    // float: finite everywhere, accurate to float rounding.
    const float xf = static_cast<float>(x);
    EXPECT_TRUE(std::isfinite(softplus(xf)) && std::isfinite(sigmoid(xf))) << x;
    EXPECT_NEAR(softplus(xf), float(sp), 2e-7f * std::max(1.0f, float(sp))) << x;
    EXPECT_NEAR(sigmoid(xf), float(sg), 2e-7f) << x;
  }
}

TEST(ContrastiveMath, SiglipTermAndItsDerivative) {
  for (bool pos : {true, false})
    for (double s : {-40.0, -3.0, -0.1, 0.0, 0.7, 5.0, 40.0}) {
      const double fd = (siglip_term(s + 1e-6, pos) - siglip_term(s - 1e-6, pos)) / 2e-6;
      EXPECT_NEAR(siglip_dlogit(s, pos), fd, 1e-8) << s << " " << pos;
      // softplus(-z s): a positive pair is penalised for small logits, a negative for large.
      EXPECT_DOUBLE_EQ(siglip_term(s, pos), softplus(pos ? -s : s));
    }
  EXPECT_LT(siglip_dlogit(0.0, true), 0.0);
  EXPECT_GT(siglip_dlogit(0.0, false), 0.0);
}

TEST(ContrastiveMath, PositivesByLabelMode) {
  EXPECT_TRUE(is_positive(LabelMode::Identity, 4, 4, 0, 0));
  EXPECT_FALSE(is_positive(LabelMode::Identity, 4, 5, 5, 4));
  EXPECT_TRUE(is_positive(LabelMode::Rows, 4, 7, 7, -5));
  EXPECT_FALSE(is_positive(LabelMode::Rows, 4, 7, 6, 4));
  EXPECT_TRUE(is_positive(LabelMode::Cols, 4, 7, -5, 4));
  EXPECT_FALSE(is_positive(LabelMode::Cols, 4, 7, 7, 3));
  EXPECT_FALSE(is_positive(LabelMode::Rows, 4, 7, -1, 4));  // SigLIP's "no positive"
  EXPECT_DOUBLE_EQ(logit(0.5, 10.0, -2.0), 3.0);
}

// ------------------------------------------------------------------ plans

TEST(ContrastivePlan, RectanglesCoverEveryTileOnceWithoutEmptyGroups) {
  for (std::int64_t nx : {1, 2, 63, 64, 65, 1000, 4099, 65536, 1000000})
    for (std::int64_t ny : {1, 64, 129, 4099, 65536})
      for (std::int64_t target : {1, 64, 528}) {
        const RectPlan p = plan_rectangles(nx, ny, 64, 64, target, 32);
        EXPECT_EQ(p.row_blocks, (nx + 63) / 64);
        EXPECT_EQ(p.col_tiles, (ny + 63) / 64);
        // Groups partition the blocks: the last group non-empty, none beyond.
        EXPECT_GE(p.row_groups * p.blocks_per_group, p.row_blocks);
        EXPECT_LT((p.row_groups - 1) * p.blocks_per_group, p.row_blocks);
        EXPECT_GE(p.col_groups * p.tiles_per_group, p.col_tiles);
        EXPECT_LT((p.col_groups - 1) * p.tiles_per_group, p.col_tiles);
        EXPECT_LE(p.row_groups, 32);
        EXPECT_LE(p.col_groups, 32);
        // Enough rectangles for the target where the extents allow it (removing
        // empty groups can halve each count).
        const std::int64_t possible =
            std::min<std::int64_t>(target, std::min<std::int64_t>(p.row_blocks, 32) *
                                               std::min<std::int64_t>(p.col_tiles, 32));
        EXPECT_GE(p.row_groups * p.col_groups * 4, possible) << nx << " " << ny << " " << target;
      }
}

TEST(ContrastivePlan, BackwardSplitsColumnsOnlyWhenRowsDoNotFillTheDevice) {
  // Enough row blocks: persistent blocks, no split.
  BackwardPlan p = plan_backward(65536, 65536, 1024, 64, 64, 2, 64, 264, 16);
  EXPECT_EQ(p.col_splits, 1);
  EXPECT_EQ(p.grid, 264);
  EXPECT_EQ(p.slot_count, 264);
  EXPECT_EQ(p.tiles_per_split, 1024);
  EXPECT_EQ(p.ld_slot, 1024);
  // 4096 rows = 64 blocks on a device that wants 264: columns split in ranges of
  // whole tile groups, every tile in exactly one range.
  p = plan_backward(4096, 4096, 500, 64, 64, 2, 64, 264, 16);
  EXPECT_GT(p.col_splits, 1);
  EXPECT_EQ(p.tiles_per_split % 2, 0);
  EXPECT_GE(p.col_splits * p.tiles_per_split, p.col_tiles);
  EXPECT_LT((p.col_splits - 1) * p.tiles_per_split, p.col_tiles);
  EXPECT_EQ(p.grid, p.row_blocks * p.col_splits);
  EXPECT_EQ(p.slot_count, p.grid);
  EXPECT_EQ(p.ld_slot, 512);
  // A single column tile cannot be split.
  p = plan_backward(100, 10, 7, 64, 64, 2, 64, 264, 16);
  EXPECT_EQ(p.col_splits, 1);
  EXPECT_EQ(p.grid, 2);
  for (std::int64_t ny : {1, 63, 65, 130, 1000, 4099})
    for (std::int64_t nx : {1, 64, 1000}) {
      const BackwardPlan q = plan_backward(nx, ny, 64, 64, 64, 2, 64, 264, 16);
      EXPECT_GE(q.col_splits * q.tiles_per_split, q.col_tiles);
      EXPECT_LT((q.col_splits - 1) * q.tiles_per_split, q.col_tiles);
      EXPECT_LE(q.col_splits, 16);
    }
}

TEST(ContrastivePlan, LayoutsAreAlignedAndDisjoint) {
  for (Machine m : {Machine{false, 0}, Machine{true, 132}}) {
    const ForwardLayout f = forward_layout(m, 1000, 777);
    std::vector<std::size_t> offsets = {f.row_part, f.col_part, f.pos_x,  f.pos_y, f.lse_x,
                                        f.loss_x,   f.lse_y,    f.loss_y, f.sums};
    for (std::size_t k = 0; k < offsets.size(); ++k) {
      EXPECT_EQ(offsets[k] % 256, 0u);
      if (k > 0) {
        EXPECT_GT(offsets[k], offsets[k - 1]);
      }
    }
    EXPECT_GE(f.bytes, f.sums + 4 * sizeof(double));
    const BackwardLayout b = backward_layout(m, 1000, 777, 96, m.gpu);
    EXPECT_EQ(b.dt_rows % 256, 0u);
    EXPECT_GE(b.dt_rows, b.split_sums);
    EXPECT_GE(b.bytes, b.sums + 4 * sizeof(double));
    if (m.gpu) {
      EXPECT_EQ(b.ld_dy_accum, 96);
      EXPECT_GE(b.dy_accum, b.loss_rows + 1000 * sizeof(float));
    }
  }
}

// The memory claim: a 64k x 64k step at d = 1024 on an H100-sized device needs
// under 1% of the 16 GiB its logits would take (deterministic mode).
TEST(ContrastivePlan, SixtyFourThousandPairsNeedMegabytes) {
  const Machine h100{true, 132};
  const double logits = 65536.0 * 65536.0 * 4.0;
  const double forward = double(forward_layout(h100, 65536, 65536).bytes);
  const double backward = double(backward_layout(h100, 65536, 65536, 1024, false).bytes);
  EXPECT_LT(forward + backward, 0.01 * logits);
  // Linear in N: doubling N at most doubles the forward's workspace.
  EXPECT_LE(double(forward_layout(h100, 131072, 131072).bytes), 2.0 * forward + 4096);
}

}  // namespace
}  // namespace kfuse::detail::contrastive
