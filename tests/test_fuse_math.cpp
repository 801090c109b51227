// The fusion family's shared math (kernels/fuse/math.hpp): the exactly
// rounded operations, the library's own log / sin / cos / exp2, the random draws
// (against independent computations from the Philox words, and their moments with
// statistical bounds), operands, top-k insertion and merging, Kronecker indexing.
// Compiled with -ffp-contract=off, like the CPU path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/fuse/math.hpp"
#include "kernels/fuse/problem.hpp"
#include "src/fuse/cpu.hpp"

namespace kfuse::detail {
namespace {

// ------------------------------------------------------------------ rounding

TEST(FuseMath, SeparateMultiplyAndAddAreNotContracted) {
  // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24: the rounded product loses 2^-24, the fused
  // multiply-add keeps it.
  const float a = 1.0f + 0x1p-12f, c = -(1.0f + 0x1p-11f);
  volatile float va = a, vc = c;  // no constant folding
  EXPECT_EQ(add_rn(mul_rn(va, va), vc), 0.0f);
  EXPECT_EQ(fma_rn(va, va, vc), 0x1p-24f);
  const double da = 1.0 + 0x1p-40, dc = -(1.0 + 0x1p-39);
  volatile double vda = da, vdc = dc;
  EXPECT_EQ(add_rn(mul_rn(vda, vda), vdc), 0.0);
  EXPECT_EQ(fma_rn(vda, vda, vdc), 0x1p-80);
}

TEST(FuseMath, FmaIsCorrectlyRoundedOnTheHost) {
  // float a * b is exact in double; a double sum of it and c that is itself exact
  // (checked by Sterbenz-free integers) rounds once to float: the reference.
  std::mt19937 gen(5);
  std::uniform_int_distribution<int> small(-(1 << 12), 1 << 12);
  for (int t = 0; t < 10000; ++t) {
    const float a = float(small(gen)) * 0x1p-6f, b = float(small(gen)) * 0x1p-7f,
                c = float(small(gen)) * 0x1p-3f;
    const double exact = double(a) * double(b) + double(c);  // < 2^53: exact
    EXPECT_EQ(fma_rn(a, b, c), static_cast<float>(exact));
  }
}

TEST(FuseMath, RoundSmallRoundsHalfToEven) {
  EXPECT_EQ(round_small(2.5f), 2.0f);
  EXPECT_EQ(round_small(3.5f), 4.0f);
  EXPECT_EQ(round_small(-2.5f), -2.0f);
  EXPECT_EQ(round_small(-0.4f), 0.0f);
  EXPECT_EQ(round_small(1234567.25f), 1234567.0f);
}

// ------------------------------------------------------------------ elementary functions

TEST(FuseMath, LogIsAccurate) {
  double worst = 0.0;
  for (int t = 1; t <= 200000; ++t) {
    const float x = float(t) * 0x1p-17f;  // (0, 1.53]
    const double err = std::fabs(double(log_rn(x)) - std::log(double(x)));
    worst = std::max(worst, err / std::max(1.0, std::fabs(std::log(double(x)))));
  }
  EXPECT_LT(worst, 4e-7);  // a few float ulps of max(1, |log x|)
  EXPECT_EQ(log_rn(1.0f), 0.0f);
  EXPECT_NEAR(log_rn(0x1p-25f), -25 * std::log(2.0), 1e-5);
  EXPECT_NEAR(log_rn(1e30f), std::log(1e30), 1e-5);
}

TEST(FuseMath, SinCosAreAccurate) {
  double worst = 0.0;
  for (int t = -400000; t <= 400000; ++t) {
    const float x = float(t) * 0x1p-10f;  // [-390, 390]
    float s, c;
    sincos_rn(x, &s, &c);
    worst = std::max({worst, std::fabs(double(s) - std::sin(double(x))),
                      std::fabs(double(c) - std::cos(double(x)))});
  }
  EXPECT_LT(worst, 3e-7);
  float s, c;
  sincos_rn(0.0f, &s, &c);
  EXPECT_EQ(s, 0.0f);
  EXPECT_EQ(c, 1.0f);
  sincos_rn(1e4f, &s, &c);
  EXPECT_NEAR(s, std::sin(1e4), 2e-6);
  EXPECT_NEAR(c, std::cos(1e4), 2e-6);
}

TEST(FuseMath, Exp2IsAccurateOverItsDomain) {
  double worst = 0.0;
  for (int t = 0; t <= 1260000; ++t) {
    const float x = -126.0f * float(t) / 1260000.0f;
    worst = std::max(worst, std::fabs(double(exp2_rn(x)) / std::exp2(double(x)) - 1.0));
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_EQ(exp2_rn(0.0f), 1.0f);
  EXPECT_EQ(exp2_rn(-1.0f), 0.5f);
  EXPECT_EQ(exp2_rn(-126.0f), 0x1p-126f);
  EXPECT_EQ(exp2_rn(-127.0f), 0.0f);
  EXPECT_EQ(exp2_rn(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_TRUE(std::isnan(exp2_rn(std::numeric_limits<float>::quiet_NaN())));
}

// ------------------------------------------------------------------ random draws

TEST(FuseMath, CentredUniformIsExactAndSymmetric) {
  EXPECT_EQ(centred_uniform(0u), -1.0f + 0x1p-24f);
  EXPECT_EQ(centred_uniform(0xffffffffu), 1.0f - 0x1p-24f);
  EXPECT_EQ(centred_uniform(0x80000000u), 0x1p-24f);
  EXPECT_EQ(centred_uniform(0x7fffffffu), -0x1p-24f);
  // word and its complement give opposite values: the distribution is symmetric.
  for (std::uint32_t w : {0u, 12345u, 0x0badf00du, 0x7fffff00u})
    EXPECT_EQ(centred_uniform(w), -centred_uniform(~w));
}

// Entries against independent computations from the Philox words (philox_draw
// is checked against the Random123 vectors in test_philox): the uniform entry is
// (2k + 1 - 2^24) 2^-24 * float(sqrt 3) rounded once, which double arithmetic gives
// exactly (a 24-bit by 24-bit product).
TEST(FuseMath, UniformAndRademacherEntriesFollowFromThePhiloxWords) {
  const float sqrt3 = static_cast<float>(std::sqrt(3.0));
  for (std::uint64_t row : {0ull, 1ull, 767ull, 123456789ull})
    for (std::uint64_t col : {0ull, 1ull, 2ull, 3ull, 4ull, 4999ull}) {
      const PhiloxBlock b = philox_draw(99, kStreamProjection + 1, (row << 32) | (col / 4));
      const std::uint32_t w = b.v[col % 4];
      const double cell = (2.0 * double(w >> 8) + 1.0 - 16777216.0) / 16777216.0;
      EXPECT_EQ(random_entry(99, kStreamProjection + 1, row, col, kDrawUniform),
                static_cast<float>(cell * double(sqrt3)));
      EXPECT_EQ(random_entry(99, kStreamProjection + 1, row, col, kDrawRademacher),
                (w >> 31) ? -1.0f : 1.0f);
    }
}

TEST(FuseMath, GaussianEntriesAreBoxMuller) {
  for (std::uint64_t q = 0; q < 2000; ++q) {
    const PhiloxBlock b = philox_draw(7, kStreamFourier, q);
    float z[4];
    random_quad(7, kStreamFourier, 0, q, kDrawGaussian, z);
    for (int pair = 0; pair < 2; ++pair) {
      const double u = (2.0 * double(b.v[2 * pair] >> 8) + 1.0) / 33554432.0;
      const double v = (2.0 * double(b.v[2 * pair + 1] >> 8) + 1.0 - 16777216.0) / 16777216.0;
      const double r = std::sqrt(-2.0 * std::log(u));
      EXPECT_NEAR(z[2 * pair], r * std::cos(M_PI * v), 3e-6);
      EXPECT_NEAR(z[2 * pair + 1], r * std::sin(M_PI * v), 3e-6);
    }
  }
}

TEST(FuseMath, EntriesArePureFunctionsOfSeedStreamRowAndColumn) {
  const float a = random_entry(1, kStreamProjection, 3, 10, kDrawGaussian);
  EXPECT_EQ(a, random_entry(1, kStreamProjection, 3, 10, kDrawGaussian));
  EXPECT_NE(a, random_entry(2, kStreamProjection, 3, 10, kDrawGaussian));
  EXPECT_NE(a, random_entry(1, kStreamProjection + 1, 3, 10, kDrawGaussian));
  EXPECT_NE(a, random_entry(1, kStreamProjection, 4, 10, kDrawGaussian));
  EXPECT_NE(a, random_entry(1, kStreamProjection, 3, 11, kDrawGaussian));
}

// Moments over n draws, each checked at 6 standard errors (a false alarm has
// probability ~2e-9 per check): mean (sd 1/sqrt n for variance 1), the second
// moment (sd sqrt((E x^4 - 1) / n)), the fourth moment (sd sqrt((E x^8 - (E x^4)^2) / n)).
struct Moments {
  double m1 = 0, m2 = 0, m4 = 0, cross = 0, lo = 1e30, hi = -1e30;
};
Moments draw_moments(int distribution, int n) {
  Moments m;
  for (int q = 0; q < n / 4; ++q) {
    float z[4];
    random_quad(2024, kStreamProjection + 2, static_cast<std::uint64_t>(q / 1000),
                static_cast<std::uint64_t>(q % 1000), distribution, z);
    for (int t = 0; t < 4; ++t) {
      const double x = z[t];
      m.m1 += x;
      m.m2 += x * x;
      m.m4 += x * x * x * x;
      m.lo = std::min(m.lo, x);
      m.hi = std::max(m.hi, x);
    }
    m.cross += double(z[0]) * z[1] + double(z[2]) * z[3];
  }
  m.m1 /= n;
  m.m2 /= n;
  m.m4 /= n;
  m.cross /= n / 2;
  return m;
}

TEST(FuseMath, DistributionsHaveMeanZeroAndVarianceOne) {
  const int n = 1 << 20;
  const double z = 6.0;
  {
    // Uniform[-sqrt 3, sqrt 3]: E x^4 = 9/5, E x^8 = 81/9 = 9.
    const Moments m = draw_moments(kDrawUniform, n);
    EXPECT_LT(std::fabs(m.m1), z / std::sqrt(double(n)));
    EXPECT_LT(std::fabs(m.m2 - 1.0), z * std::sqrt(0.8 / n));
    EXPECT_LT(std::fabs(m.m4 - 1.8), z * std::sqrt((9.0 - 1.8 * 1.8) / n));
    EXPECT_GE(m.lo, -std::sqrt(3.0));
    EXPECT_LE(m.hi, std::sqrt(3.0));
    EXPECT_LT(std::fabs(m.cross), z / std::sqrt(n / 2.0));
  }
  {
    // N(0, 1): E x^4 = 3, E x^8 = 105.
    const Moments m = draw_moments(kDrawGaussian, n);
    EXPECT_LT(std::fabs(m.m1), z / std::sqrt(double(n)));
    EXPECT_LT(std::fabs(m.m2 - 1.0), z * std::sqrt(2.0 / n));
    EXPECT_LT(std::fabs(m.m4 - 3.0), z * std::sqrt(96.0 / n));
    // Box-Muller pairs (cos, sin of one angle) are uncorrelated.
    EXPECT_LT(std::fabs(m.cross), z / std::sqrt(n / 2.0));
    // The tails exist (|x| > 4 has probability 6.3e-5: ~66 expected).
    EXPECT_LT(m.lo, -4.0);
    EXPECT_GT(m.hi, 4.0);
  }
  {
    const Moments m = draw_moments(kDrawRademacher, n);
    EXPECT_LT(std::fabs(m.m1), z / std::sqrt(double(n)));
    EXPECT_EQ(m.m2, 1.0);
    EXPECT_EQ(m.lo, -1.0);
    EXPECT_EQ(m.hi, 1.0);
  }
}

// The CPU path's lane-parallel Philox gives exactly random_quad's entries.
TEST(FuseMath, CpuRowDrawsEqualTheDefinition) {
  for (int dist : {kDrawUniform, kDrawGaussian, kDrawRademacher}) {
    RandomMatrix r;
    r.seed = 0xabcdef0123456789ull;
    r.stream = kStreamProjection + 3;
    r.distribution = dist;
    for (std::int64_t row : {0ll, 5ll, 4000000000ll})
      for (std::int64_t quad0 : {0ll, 3ll, 1000ll})
        for (std::int64_t count : {1ll, 7ll, 8ll, 9ll, 33ll}) {
          std::vector<float> got(static_cast<std::size_t>(4 * count));
          kfuse::cpu::random_row_quads(r, row, quad0, count, got.data());
          for (std::int64_t q = 0; q < count; ++q) {
            float want[4];
            random_quad(r.seed, r.stream, static_cast<std::uint64_t>(row),
                        static_cast<std::uint64_t>(quad0 + q), dist, want);
            for (int e = 0; e < 4; ++e)
              ASSERT_EQ(got[4 * q + e], want[e])
                  << "dist " << dist << " row " << row << " quad " << quad0 + q << " entry " << e;
          }
        }
  }
}

TEST(FuseMath, SketchHashesAreUniformAndSignsBalanced) {
  const std::int64_t l = 37, d = 370000;
  std::vector<double> counts(l, 0.0);
  double signs = 0.0;
  for (std::int64_t k = 0; k < d; ++k) {
    const SketchHash h = sketch_hash(11, 1, k, l);
    ASSERT_GE(h.bucket, 0);
    ASSERT_LT(h.bucket, l);
    ASSERT_TRUE(h.sign == 1.0f || h.sign == -1.0f);
    counts[h.bucket] += 1.0;
    signs += h.sign;
  }
  // Chi-square with l - 1 = 36 degrees of freedom: mean 36, sd sqrt(72) = 8.5; the
  // bound 36 + 6 sd = 87 fails by chance with probability < 1e-7.
  const double expected = double(d) / l;
  double chi2 = 0.0;
  for (double c : counts)
    chi2 += (c - expected) * (c - expected) / expected;
  EXPECT_LT(chi2, 87.0);
  EXPECT_LT(std::fabs(signs), 6.0 * std::sqrt(double(d)));
  // Keyed by the seed and the input: other keys give other hashes.
  int same_seed = 0, same_input = 0;
  for (std::int64_t k = 0; k < 1000; ++k) {
    same_seed += sketch_hash(11, 1, k, 1000).bucket == sketch_hash(12, 1, k, 1000).bucket;
    same_input += sketch_hash(11, 1, k, 1000).bucket == sketch_hash(11, 0, k, 1000).bucket;
  }
  EXPECT_LT(same_seed, 20);  // ~1 expected by chance
  EXPECT_LT(same_input, 20);
}

// ------------------------------------------------------------------ operands

TEST(FuseMath, OperandValues) {
  const float x[6] = {1.0f, -2.0f, 0.5f, 3.0f, 4.0f, -1.0f};  // 2 rows x 3, ld 3
  FuseOperand op;
  op.data = x;
  op.ld = 3;
  op.d = 3;
  op.width = 3;
  EXPECT_EQ(operand_value<float>(op, 1, 2), -1.0f);
  const float scales[2] = {2.0f, 0.25f};
  op.row_scale = scales;
  op.scale = 0.5;
  EXPECT_EQ(operand_value<float>(op, 1, 1), 4.0f * 0.25f * 0.5f);
  op.map = OperandMap::PlusMinus;
  op.width = 6;
  op.gamma = 3.0;
  op.row_scale = nullptr;
  op.scale = 1.0;
  const float h = static_cast<float>(1.0 / std::sqrt(2.0));
  EXPECT_EQ(operand_value<float>(op, 0, 1), (3.0f + -2.0f) * h);
  EXPECT_EQ(operand_value<float>(op, 0, 4), (3.0f - -2.0f) * h);
  op.map = OperandMap::Constant;
  op.constant = 0.125;
  EXPECT_EQ(operand_value<float>(op, 1, 5), 0.125f);
  // A zero leading dimension reads row 0 for every row.
  op = FuseOperand{};
  op.data = x;
  op.d = 3;
  op.width = 3;
  EXPECT_EQ(operand_value<float>(op, 7, 1), -2.0f);
  // bf16 / fp16 / fp64 inputs.
  const bf16 b[2] = {to_bf16(1.5f), to_bf16(-0.25f)};
  const f16 h16[2] = {to_f16(2.5f), to_f16(-8.0f)};
  const double dd[2] = {0.1, -0.3};
  op.ld = 2;
  op.d = 2;
  op.width = 2;
  op.data = b;
  op.dtype = DType::BF16;
  EXPECT_EQ(operand_value<float>(op, 0, 1), -0.25f);
  op.data = h16;
  op.dtype = DType::F16;
  EXPECT_EQ(operand_value<double>(op, 0, 0), 2.5);
  op.data = dd;
  op.dtype = DType::F64;
  EXPECT_EQ(operand_value<double>(op, 0, 1), -0.3);
}

TEST(FuseMath, RowInverseNorms) {
  const float x[6] = {3.0f, 4.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  FuseOperand op;
  op.data = x;
  op.ld = 3;
  op.d = 3;
  EXPECT_EQ(row_inv_norm<float>(op, 0), 0.2f);
  EXPECT_EQ(row_inv_norm<float>(op, 1), 0.0f);  // a zero row stays zero
  std::mt19937 gen(3);
  std::normal_distribution<double> nd;
  std::vector<double> v(768);
  for (auto& e : v)
    e = nd(gen);
  FuseOperand dop;
  dop.data = v.data();
  dop.dtype = DType::F64;
  dop.ld = 768;
  dop.d = 768;
  const double norm = std::sqrt(std::inner_product(v.begin(), v.end(), v.begin(), 0.0));
  EXPECT_NEAR(row_inv_norm<double>(dop, 0) * norm, 1.0, 1e-14);
}

// ------------------------------------------------------------------ per-pair kernels

TEST(FuseMath, PairKernels) {
  EXPECT_EQ(pair_step(PairKernel::Dot, 2.0f, 3.0f, 1.0f), 7.0f);
  EXPECT_EQ(pair_step(PairKernel::Rbf, 2.0f, 5.0f, 1.0f), 10.0f);
  EXPECT_EQ(pair_value(PairKernel::Dot, 0.75f, 9.0f, 9.0f, 9.0f), 0.75f);
  EXPECT_EQ(pair_value(PairKernel::Cosine, 8.0f, 0.5f, 0.25f, 9.0f), 1.0f);
  // exp(-d2 / (2 sigma^2)) with sigma = 1, d2 = 2: 2^(-c d2) = e^-1.
  const float c = static_cast<float>(1.4426950408889634 / 2.0);
  EXPECT_NEAR(pair_value(PairKernel::Rbf, 2.0f, 0.f, 0.f, c), std::exp(-1.0), 1e-7);
  EXPECT_EQ(pair_value(PairKernel::Rbf, 0.0f, 0.f, 0.f, std::numeric_limits<float>::max()), 1.0f);
  EXPECT_EQ(product_score(0.5f, 0.25f, 1.0f), 0.625f);
}

// ------------------------------------------------------------------ top-k

TEST(FuseMath, TopkInsertKeepsTheBestWithTiesToTheLowerIndex) {
  const int k = 3;
  float s[k] = {};  // initialised for the compiler: entries are read only once written
  std::int64_t j[k] = {};
  int count = 0;
  EXPECT_TRUE(topk_insert(s, j, &count, k, 1.0f, std::int64_t(5)));
  EXPECT_TRUE(topk_insert(s, j, &count, k, 2.0f, std::int64_t(9)));
  EXPECT_TRUE(topk_insert(s, j, &count, k, 1.0f, std::int64_t(2)));  // tie: before 5
  EXPECT_EQ(count, 3);
  EXPECT_FALSE(topk_insert(s, j, &count, k, 1.0f, std::int64_t(7)));  // tie, higher index
  EXPECT_TRUE(topk_insert(s, j, &count, k, 1.0f, std::int64_t(3)));   // tie, drops 5
  EXPECT_FALSE(
      topk_insert(s, j, &count, k, std::numeric_limits<float>::quiet_NaN(), std::int64_t(0)));
  EXPECT_EQ(s[0], 2.0f);
  EXPECT_EQ(j[0], 9);
  EXPECT_EQ(j[1], 2);
  EXPECT_EQ(j[2], 3);
  // NaN ranks below -inf, whatever its index; NaNs among themselves by index.
  EXPECT_TRUE(topk_before(-std::numeric_limits<float>::infinity(), 9,
                          std::numeric_limits<float>::quiet_NaN(), 1));
  EXPECT_TRUE(topk_before(std::numeric_limits<float>::quiet_NaN(), 1,
                          std::numeric_limits<float>::quiet_NaN(), 2));
}

// Random lists with many ties, against a stable sort.
TEST(FuseMath, TopkInsertAndMergeMatchAStableSort) {
  std::mt19937 gen(17);
  std::uniform_int_distribution<int> value(0, 20);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + trial * 3, k = 1 + trial % 40 < n ? 1 + trial % 40 : n;
    std::vector<float> scores(n);
    for (auto& x : scores)
      x = value(gen) == 0 ? std::numeric_limits<float>::quiet_NaN()
                          : (value(gen) < 0 ? -INFINITY : float(value(gen)));
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      if (std::isnan(scores[a]) || std::isnan(scores[b])) return !std::isnan(scores[a]);
      return scores[a] > scores[b];
    });
    // Insert in a shuffled order: the result does not depend on it.
    std::vector<int> arrival(order);
    std::shuffle(arrival.begin(), arrival.end(), gen);
    std::vector<float> s(k);
    std::vector<int> j(k);
    int count = 0;
    for (int a : arrival)
      topk_insert(s.data(), j.data(), &count, k, scores[a], a);
    ASSERT_EQ(count, k);
    for (int t = 0; t < k; ++t)
      ASSERT_EQ(j[t], order[t]) << "trial " << trial << " rank " << t;
    // Split into parts (contiguous index ranges), top-k each, padded, then merged.
    const int parts = 1 + trial % 7;
    const std::int64_t stride = k;
    std::vector<float> ps(parts * stride, std::numeric_limits<float>::quiet_NaN());
    std::vector<int> pj(parts * stride, std::numeric_limits<int>::max());
    for (int p = 0; p < parts; ++p) {
      int c = 0;
      for (int a = p * n / parts; a < (p + 1) * n / parts; ++a)
        topk_insert(ps.data() + p * stride, pj.data() + p * stride, &c, k, scores[a], a);
    }
    std::vector<float> ms(k);
    std::vector<std::int64_t> mj(k);
    topk_merge(ps.data(), pj.data(), stride, parts, k, k, ms.data(), mj.data());
    for (int t = 0; t < k; ++t)
      ASSERT_EQ(mj[t], order[t]) << "merge, trial " << trial << " rank " << t;
  }
}

// ------------------------------------------------------------------ Kronecker indexing

TEST(FuseMath, KronDecodeIsMixedRadix) {
  const std::int64_t w[3] = {3, 5, 7};
  std::int64_t p = 0;
  for (std::int64_t a = 0; a < 3; ++a)
    for (std::int64_t b = 0; b < 5; ++b)
      for (std::int64_t c = 0; c < 7; ++c, ++p) {
        std::int64_t idx[3];
        kron_decode(p, w, 3, idx);
        ASSERT_EQ(idx[0], a);
        ASSERT_EQ(idx[1], b);
        ASSERT_EQ(idx[2], c);
      }
}

TEST(FuseMath, ProjectionCombine) {
  ProjectionProblem p;
  p.factor_scale = 0.5f;
  EXPECT_EQ(projection_combine(p, 0, 3.0f, 99.0f), 1.5f);
  EXPECT_EQ(projection_combine(p, 1, 3.0f, 2.0f), 3.0f);
}

}  // namespace
}  // namespace kfuse::detail
