// The per-pair and per-row math shared by the CPU path and the kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/gauss/math.hpp"
#include "kernels/gauss/problem.hpp"

namespace kfuse::detail {
namespace {

TEST(GaussMath, Exp2PolyIsAccurateOverItsDomain) {
  double worst = 0.0;
  for (int k = 0; k <= 1260000; ++k) {
    const float x = -126.0f * float(k) / 1260000.0f;
    const double rel = std::fabs(double(exp2_poly(x)) / std::exp2(double(x)) - 1.0);
    worst = std::max(worst, rel);
  }
  EXPECT_LT(worst, 3e-7);  // a few float ulps
  EXPECT_EQ(exp2_poly(0.0f), 1.0f);
  EXPECT_EQ(exp2_poly(-1.0f), 0.5f);
  EXPECT_EQ(exp2_poly(-126.5f), 0.0f);
  EXPECT_EQ(exp2_poly(-std::numeric_limits<float>::infinity()), 0.0f);
}

TEST(GaussMath, Log2CoefficientGivesTheKernelInBase2) {
  for (double sigma : {1e-3, 0.5, 1.0, 7.0, 1e4}) {
    const double c = gauss_log2_coefficient<double>(sigma);
    const double dist2 = 0.37 * sigma * sigma;
    EXPECT_NEAR(std::exp2(-dist2 * c), std::exp(-dist2 / (2 * sigma * sigma)), 1e-15);
  }
  // Far from 1, sigma is measured in a power of two q: K = exp2(-c' |(x - y) q|^2)
  // with c' moderate, where c alone would under- or overflow fp32 (sigma = 1e+-30).
  for (double sigma : {1e-30, 1e30}) {
    const double q = gauss_distance_scale<float>(sigma);
    EXPECT_NE(q, 1.0);
    EXPECT_EQ(std::exp2(std::round(std::log2(q))), q);  // a power of two
    const float c = gauss_log2_coefficient<float>(sigma);
    EXPECT_GT(c, 0.7f);
    EXPECT_LT(c, 3.0f);
    const float diff = static_cast<float>(2 * sigma) * static_cast<float>(q);  // |x - y| = 2 sigma
    EXPECT_NEAR(std::exp2(-c * diff * diff), std::exp(-2.0), 1e-6);
  }
  EXPECT_EQ(gauss_distance_scale<float>(1.0), 1.0);
  EXPECT_EQ(gauss_distance_scale<double>(0x1p32), 1.0);
  // Beyond W's own range q is clamped and c' with it: identical points still get
  // K = 1, all others K = 0, and c' > 0 (c' * inf is never 0 * inf).
  const float c = gauss_log2_coefficient<float>(1e-300);
  EXPECT_EQ(c, std::numeric_limits<float>::max());
  const float q = static_cast<float>(gauss_distance_scale<float>(1e-300));
  EXPECT_EQ(std::exp2(-0.0f * c), 1.0f);
  EXPECT_EQ(std::exp2(-(1e-45f * q) * (1e-45f * q) * c), 0.0f);
  EXPECT_EQ(gauss_log2_coefficient<float>(1e300), std::numeric_limits<float>::min());
}

TEST(GaussMath, ZeroWeightsVanishOnceARealTermSetsTheMaximum) {
  // A row whose first term has weight 0 and whose second has weight 1 at distance
  // 10 (s = -10): the online merge must end with den = 1 * 2^(-10 - m) and m = -10.
  // And a zero weight never wins against a real term however far (s = -1e40 in fp64).
  for (double s_far : {-10.0, -1e40}) {
    double m = running_max_init<double>(), den = 0.0;
    for (double s : {log2_weight(0.0) - 0.0, log2_weight(1.0) + s_far}) {
      const double new_m = std::max(m, s);
      den = den * rescale_factor(m, new_m) + std::exp2(s - new_m);
      m = new_m;
    }
    EXPECT_EQ(m, s_far);
    EXPECT_EQ(den, 1.0);
  }
  EXPECT_EQ(log2_weight(0.0f), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(log2_weight(8.0), 3.0);
  EXPECT_EQ(running_max_init<float>(), -std::numeric_limits<float>::max());
}

// NaN, +-inf and huge arguments never reach the integer conversion (UBSan checks
// that in CI): NaN gives NaN, x > 0 gives 1 (callers pass x <= 0).
TEST(GaussMath, Exp2PolyIsSafeForEveryArgument) {
  EXPECT_TRUE(std::isnan(exp2_poly(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(exp2_poly(-std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(exp2_poly(-std::numeric_limits<float>::max()), 0.0f);
  EXPECT_EQ(exp2_poly(std::numeric_limits<float>::infinity()), 1.0f);
  EXPECT_EQ(exp2_poly(3e38f), 1.0f);
}

// Squared distances beyond the working type's range still order correctly.
TEST(GaussMath, WideDistancesOrderBeyondTheRange) {
  const float x[2] = {1e30f, -1e30f}, y0[2] = {0.0f, 0.0f}, y1[2] = {1e30f, 0.0f};
  const WideDist2<float> a = wide_dist2<float>(x, y0, 2), b = wide_dist2<float>(x, y1, 2);
  EXPECT_TRUE(wide_less(b, a));  // |x - y1|^2 = 1e60 < 2e60
  EXPECT_FALSE(wide_less(a, b));
  EXPECT_TRUE(wide_equal(a, wide_dist2<float>(x, y0, 2)));
  EXPECT_TRUE(wide_less(wide_dist2<float>(x, x, 2), b));         // identical points first
  const float huge[2] = {3e38f, 0.0f}, neg[2] = {-3e38f, 0.0f};  // the difference overflows
  EXPECT_TRUE(wide_less(a, wide_dist2<float>(huge, neg, 2)));
}

// MeanShift with den == 0 (every term underflowed): the weighted mean of the
// nearest points of positive weight, ties averaged by weight.
TEST(GaussMath, MeanShiftWithEveryTermUnderflowedTakesTheNearestPoints) {
  const std::vector<float> x = {1e30f, 0.0f};
  // Two tied points (weights 1 and 3), a nearer one of weight 0, a farther one.
  const std::vector<float> y = {5e29f, 1e29f, 5e29f, -1e29f, 7.5e29f, 0.0f, -1e30f, 0.0f};
  const std::vector<float> w = {1.0f, 3.0f, 0.0f, 5.0f};
  std::vector<float> out(2, -1.0f);
  GaussEpilogue<float> e;
  e.kind = GaussEpilogueKind::MeanShift;
  e.out = out.data();
  e.ldo = 2;
  e.x = x.data();
  e.ldx = 2;
  e.y = y.data();
  e.ldy = 2;
  e.n = 4;
  e.d = 2;
  e.w = w.data();
  for (std::int64_t r = 0; r < 2; ++r)
    gauss_epilogue_element<float, double>(e, 0, r, 0.0, 0.0);
  EXPECT_EQ(out[0], 5e29f);
  EXPECT_EQ(out[1], static_cast<float>((1.0 * double(1e29f) - 3.0 * double(1e29f)) / 4.0));
  e.w = nullptr;  // all ones: the weight-0 point is the nearest
  gauss_epilogue_element<float, double>(e, 0, 0, 0.0, 0.0);
  EXPECT_EQ(out[0], 7.5e29f);
}

TEST(GaussMath, Epilogues) {
  std::vector<double> out(6, 1.0), x = {1, 2, 3, 4, 5, 6}, u = {2, 3};
  GaussEpilogue<double> e;
  e.out = out.data();
  e.ldo = 3;
  e.kind = GaussEpilogueKind::Matvec;
  e.alpha = 2.0;
  e.beta = 0.5;
  gauss_epilogue_element<double, double>(e, 1, 2, 3.0, 0.0);
  EXPECT_EQ(out[5], 6.5);
  e.beta = 0.0;
  out[4] = std::numeric_limits<double>::quiet_NaN();  // beta == 0: not read
  gauss_epilogue_element<double, double>(e, 1, 1, 3.0, 0.0);
  EXPECT_EQ(out[4], 6.0);
  e.kind = GaussEpilogueKind::MeanShift;
  gauss_epilogue_element<double, double>(e, 0, 0, 3.0, 4.0);
  EXPECT_EQ(out[0], 0.75);
  e.kind = GaussEpilogueKind::Grad;
  e.x = x.data();
  e.ldx = 3;
  e.u = u.data();
  e.u_stride = 1;
  e.grad_scale = 0.5;
  e.accumulate = false;
  gauss_epilogue_element<double, double>(e, 1, 0, 10.0, 2.0);  // 0.5 * 3 * (10 - 4 * 2)
  EXPECT_EQ(out[3], 3.0);
  e.accumulate = true;
  gauss_epilogue_element<double, double>(e, 1, 0, 10.0, 2.0);
  EXPECT_EQ(out[3], 6.0);
  e.kind = GaussEpilogueKind::Kde;
  e.log = true;
  e.log_norm = -1.0;
  gauss_epilogue_row<double, double>(e, 2, 8.0, -2.0);  // ln2 * (-2 + 3) - 1
  EXPECT_NEAR(out[2], std::log(2.0) - 1.0, 1e-15);
  const double total = 4.0;
  e.weight_total = &total;
  e.log = false;
  gauss_epilogue_row<double, double>(e, 2, 8.0, -2.0);
  EXPECT_NEAR(out[2], std::exp(std::log(2.0) - 1.0) / 4.0, 1e-15);
  e.kind = GaussEpilogueKind::RowSum;
  gauss_epilogue_row<double, double>(e, 0, 8.0, 0.0);
  EXPECT_EQ(out[0], 8.0);
  EXPECT_TRUE(gauss_epilogue_is_row(GaussEpilogueKind::Kde));
  EXPECT_FALSE(gauss_epilogue_is_row(GaussEpilogueKind::Grad));
}

}  // namespace
}  // namespace kfuse::detail
