// The per-pair and per-row math shared by the CPU path and the kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "../kernels/common/gauss_math.hpp"
#include "../kernels/common/gauss_problem.hpp"

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
  // Overflow clamps: identical points still get K = 1, all others K = 0.
  const float c = gauss_log2_coefficient<float>(1e-30);
  EXPECT_EQ(c, std::numeric_limits<float>::max());
  EXPECT_EQ(std::exp2(-0.0f * c), 1.0f);
  EXPECT_EQ(std::exp2(-1e-6f * c), 0.0f);
  EXPECT_EQ(gauss_log2_coefficient<float>(1e30), 0.0f);
}

TEST(GaussMath, ZeroWeightsVanishOnceARealTermSetsTheMaximum) {
  // A row whose first term has weight 0 and whose second has weight 1 at distance
  // 10 (s = -10): the online merge must end with den = 1 * 2^(-10 - m) and m = -10.
  float m = kRunningMaxInit, den = 0.0f;
  for (float s : {log2_weight(0.0f) - 0.0f, log2_weight(1.0f) - 10.0f}) {
    const float new_m = std::max(m, s);
    den = den * rescale_factor(m, new_m) + std::exp2(s - new_m);
    m = new_m;
  }
  EXPECT_EQ(m, -10.0f);
  EXPECT_EQ(den, 1.0f);
  EXPECT_EQ(log2_weight(0.0), double(kLog2ZeroWeight));
  EXPECT_EQ(log2_weight(8.0), 3.0);
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
