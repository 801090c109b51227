// The fusion family, per backend (Cpu/ everywhere, Cuda/ on a GPU): brute force in
// double (in the test) against the library, the identities the fused rows must
// satisfy, the random features' statistics with bounds derived from their
// variances, exact bitwise checks of the documented arithmetic, and (Cuda) bitwise
// agreement of the GPU with the CPU.
// Compiled with -ffp-contract=off: the bitwise references below are fma chains.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/fuse/math.hpp"  // draws, tested in test_fuse_math
#include "kfuse/fuse.hpp"
#include "src/fuse/cpu.hpp"
#include "support/fuse_reference.hpp"
#include "support/test_memory.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {
namespace {

template <class T>
std::vector<T> inputs_of(std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  const std::vector<float> f = uniform<float>(n, seed, lo, hi);
  std::vector<T> out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = detail::from_float<T>(f[i]);
  return out;
}
template <>
std::vector<double> inputs_of<double>(std::size_t n, std::uint64_t seed, double lo, double hi) {
  return uniform<double>(n, seed, lo, hi);
}

class Fuse : public ::testing::TestWithParam<Backend> {
 protected:
  Backend b() const { return GetParam(); }
};

// n rows of `dims[j]` columns each (ld = d + 1), in the backend's memory.
template <class T>
struct InputSet {
  std::vector<TestArray<T>> arrays;
  std::vector<std::int64_t> dims;
  std::int64_t n = 0;
  InputSet(Backend b, std::int64_t rows, const std::vector<std::int64_t>& d, std::uint64_t seed)
      : dims(d), n(rows) {
    for (std::size_t j = 0; j < d.size(); ++j)
      arrays.emplace_back(b, inputs_of<T>(static_cast<std::size_t>(rows * (d[j] + 1)), seed + j));
  }
  std::vector<MatrixView<const T>> views() const {
    std::vector<MatrixView<const T>> v;
    for (std::size_t j = 0; j < dims.size(); ++j)
      v.push_back(arrays[j].cmatrix(n, dims[j], dims[j] + 1));
    return v;
  }
  RefMatrix ref(std::size_t j) const {
    return ref_from(arrays[j].values(), n, dims[j], dims[j] + 1);
  }
};

std::vector<FuseSide> sides_of(const std::vector<SideKernel>& kinds) {
  std::vector<FuseSide> s(kinds.size());
  for (std::size_t j = 0; j < kinds.size(); ++j)
    s[j].kernel = kinds[j];
  return s;
}

// ------------------------------------------------------------------ kron_fuse

struct KronCase {
  std::int64_t n;
  std::vector<std::int64_t> dims;
  std::vector<SideKernel> kinds;
};

const std::vector<KronCase> kKronCases = {
    {1, {1, 1}, {SideKernel::Linear, SideKernel::Linear}},
    {3, {4, 5}, {SideKernel::Linear, SideKernel::Cosine}},
    {33, {17, 3}, {SideKernel::Cosine, SideKernel::Cosine}},
    {5, {64, 31}, {SideKernel::Linear, SideKernel::Linear}},
    {7, {3, 5, 7}, {SideKernel::Linear, SideKernel::Cosine, SideKernel::Linear}},
    {2,
     {2, 3, 2, 5},
     {SideKernel::Cosine, SideKernel::Linear, SideKernel::Linear, SideKernel::Cosine}},
    {4, {1, 129}, {SideKernel::Linear, SideKernel::Linear}},
};

template <class T, class O>
void check_kron(Backend b, const KronCase& c, std::uint64_t seed, double tol) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b);
  const InputSet<T> in(b, c.n, c.dims, seed);
  std::int64_t width = 1;
  for (auto d : c.dims)
    width *= d;
  const std::int64_t ldo = width + 3;
  TestArray<O> out(b, nan_filled<O>(static_cast<std::size_t>(c.n * ldo)));
  KronFuseOptions o;
  o.sides = sides_of(c.kinds);
  kron_fuse(ctx, in.views(), out.matrix(c.n, width, ldo), o);
  ctx.synchronize();
  const std::vector<O> got = out.values();
  std::vector<double> ref;
  for (std::int64_t i = 0; i < c.n; ++i) {
    std::vector<double> row = feature(in.ref(0).row(i), c.kinds[0]);
    for (std::size_t j = 1; j < c.dims.size(); ++j)
      row = kron(row, feature(in.ref(j).row(i), c.kinds[j]));
    ref.insert(ref.end(), row.begin(), row.end());
  }
  EXPECT_LE(relative_error(got, ref, c.n, width, ldo, width), tol);
  for (std::int64_t i = 0; i < c.n; ++i)
    for (std::int64_t p = width; p < ldo; ++p)
      ASSERT_TRUE(std::isnan(static_cast<double>(got[i * ldo + p]))) << "padding written";
}

TEST_P(Fuse, KronMatchesBruteForce) {
  for (const KronCase& c : kKronCases) {
    SCOPED_TRACE("n " + std::to_string(c.n) + ", inputs " + std::to_string(c.dims.size()));
    check_kron<float, float>(b(), c, 10, 1e-6);
    check_kron<double, double>(b(), c, 20, 1e-14);
    check_kron<bf16, float>(b(), c, 30, 1e-6);
    check_kron<f16, float>(b(), c, 40, 1e-6);
  }
}

// <a (x) b (x) c, a' (x) b' (x) c'> = <a, a'> <b, b'> <c, c'>, in fp64.
TEST_P(Fuse, KronIdentityInFp64) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  for (const std::vector<std::int64_t>& dims :
       {std::vector<std::int64_t>{6, 9}, {3, 4, 5}, {2, 3, 2, 3}}) {
    for (SideKernel kind : {SideKernel::Linear, SideKernel::Cosine}) {
      const std::int64_t n = 6;
      const InputSet<double> in(b(), n, dims, 7);
      std::int64_t width = 1;
      for (auto d : dims)
        width *= d;
      TestArray<double> out(b(), nan_filled<double>(static_cast<std::size_t>(n * width)));
      KronFuseOptions o;
      o.sides = std::vector<FuseSide>(dims.size());
      for (auto& s : o.sides)
        s.kernel = kind;
      kron_fuse(ctx, in.views(), out.matrix(n, width), o);
      ctx.synchronize();
      const RefMatrix z = ref_from(out.values(), n, width, width);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          double expected = 1.0;
          for (std::size_t s = 0; s < dims.size(); ++s)
            expected *= side_kernel(in.ref(s).row(i), in.ref(s).row(j), o.sides[s]);
          EXPECT_NEAR(dot(z.row(i), z.row(j)), expected,
                      1e-12 * std::max(1.0, std::fabs(expected)));
        }
    }
  }
}

// An Rbf side's random Fourier features have unit norm: <z_i, z_i> = |b_i|^2.
TEST_P(Fuse, KronWithAnRbfSideKeepsUnitFeatureNorms) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n = 9, r = 40;
  const InputSet<float> in(b(), n, {5, 3}, 3);
  KronFuseOptions o;
  o.sides = {FuseSide{SideKernel::Rbf, 0.7, r}, FuseSide{}};
  TestArray<float> out(b(), nan_filled<float>(static_cast<std::size_t>(n * 2 * r * 3)));
  kron_fuse(ctx, in.views(), out.matrix(n, 2 * r * 3), o);
  ctx.synchronize();
  const RefMatrix z = ref_from(out.values(), n, 2 * r * 3, 2 * r * 3);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto bi = in.ref(1).row(i);
    EXPECT_NEAR(dot(z.row(i), z.row(i)), dot(bi, bi), 1e-5 * dot(bi, bi));
  }
}

// ------------------------------------------------------------------ rp_fuse

struct RpCase {
  std::int64_t n, l;
  std::vector<std::int64_t> dims;
  std::vector<SideKernel> kinds;
};

const std::vector<RpCase> kRpCases = {
    {1, 1, {1, 1}, {SideKernel::Linear, SideKernel::Linear}},
    {7, 5, {3, 17}, {SideKernel::Linear, SideKernel::Cosine}},
    {65, 64, {64, 31}, {SideKernel::Cosine, SideKernel::Cosine}},
    {63, 129, {17, 64}, {SideKernel::Linear, SideKernel::Linear}},
    {2, 33, {5, 4, 6}, {SideKernel::Linear, SideKernel::Cosine, SideKernel::Linear}},
    {129, 127, {31, 33}, {SideKernel::Linear, SideKernel::Linear}},
};

// U_j as rp_fuse uses it, read back through the public rp_projection_matrix.
RefMatrix projection_of(Context& ctx, Backend b, int j, std::int64_t rows, std::int64_t l,
                        const RpFuseOptions& o) {
  TestArray<float> u(b, nan_filled<float>(static_cast<std::size_t>(rows * l)));
  rp_projection_matrix(ctx, j, u.matrix(rows, l), o);
  ctx.synchronize();
  return ref_from(u.values(), rows, l, l);
}

// Z in double from the inputs' feature maps and U.
std::vector<double> rp_reference(const std::vector<std::vector<double>>& rows_per_input,
                                 const std::vector<RefMatrix>& U, std::int64_t l,
                                 RpScaling scaling) {
  const double s = 1.0 / std::sqrt(double(l));
  std::vector<double> z(static_cast<std::size_t>(l));
  for (std::int64_t c = 0; c < l; ++c) {
    double prod = 1.0;
    for (std::size_t j = 0; j < U.size(); ++j) {
      double f = 0.0;
      for (std::int64_t k = 0; k < U[j].rows; ++k)
        f += rows_per_input[j][k] * U[j](k, c);
      prod *= scaling == RpScaling::AuthorsCompat ? f * s : f;
    }
    z[c] = scaling == RpScaling::AuthorsCompat ? prod : prod * s;
  }
  return z;
}

template <class T>
void check_rp(Backend b, const RpCase& c, RpDistribution dist, RpScaling scaling,
              std::uint64_t seed, Precision precision = Precision::Exact) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b);
  const InputSet<T> in(b, c.n, c.dims, seed);
  const std::int64_t ldo = c.l + 2;
  TestArray<float> out(b, nan_filled<float>(static_cast<std::size_t>(c.n * ldo)));
  RpFuseOptions o;
  o.sides = sides_of(c.kinds);
  o.seed = seed * 7919;
  o.distribution = dist;
  o.scaling = scaling;
  o.precision = precision;
  rp_fuse(ctx, in.views(), out.matrix(c.n, c.l, ldo), o);
  ctx.synchronize();
  std::vector<RefMatrix> U;
  for (std::size_t j = 0; j < c.dims.size(); ++j)
    U.push_back(projection_of(ctx, b, static_cast<int>(j), c.dims[j], c.l, o));
  std::vector<double> ref;
  for (std::int64_t i = 0; i < c.n; ++i) {
    std::vector<std::vector<double>> rows;
    for (std::size_t j = 0; j < c.dims.size(); ++j)
      rows.push_back(feature(in.ref(j).row(i), c.kinds[j]));
    const auto z = rp_reference(rows, U, c.l, scaling);
    ref.insert(ref.end(), z.begin(), z.end());
  }
  const std::vector<float> got = out.values();
  EXPECT_LE(relative_error(got, ref, c.n, c.l, ldo, c.l), 1e-5);
  for (std::int64_t i = 0; i < c.n; ++i)
    for (std::int64_t p = c.l; p < ldo; ++p)
      ASSERT_TRUE(std::isnan(got[i * ldo + p])) << "padding written";
}

TEST_P(Fuse, RpMatchesTheProjectionReference) {
  for (const RpCase& c : kRpCases) {
    SCOPED_TRACE("n " + std::to_string(c.n) + ", l " + std::to_string(c.l));
    check_rp<float>(b(), c, RpDistribution::Uniform, RpScaling::Unbiased, 1);
    check_rp<float>(b(), c, RpDistribution::Gaussian, RpScaling::AuthorsCompat, 2);
    check_rp<bf16>(b(), c, RpDistribution::Rademacher, RpScaling::Unbiased, 3);
    check_rp<f16>(b(), c, RpDistribution::Uniform, RpScaling::AuthorsCompat, 4);
  }
}

// Under a TF32 / BF16 permission the CPU path multiplies through the BLAS (fp32
// sgemm per operand, then the product): the same fp32 accumulation over the same
// columns as the exact chain, in another order, so the exact path's tolerance
// against the double reference holds unchanged (per factor about sqrt(width) u
// relative, width <= 127 here: ~1e-6; the product of up to three factors ~3x that).
// (The GPU's tensor cores round the operands: GpuTensorCorePrecisions.)
// The cases of kRpCases take the exact chains under the permission (fewer than
// cpu::kProjectionGemmMinRows rows); the two added ones the BLAS route.
TEST_P(Fuse, RpPermittedPrecisionsOnTheCpuMatchTheProjectionReference) {
  if (b() != Backend::Cpu) GTEST_SKIP() << "the GPU rounds operands under TF32/BF16";
  std::vector<RpCase> cases = kRpCases;
  cases.push_back(
      {cpu::kProjectionGemmMinRows, 65, {64, 31}, {SideKernel::Cosine, SideKernel::Linear}});
  cases.push_back({cpu::kProjectionGemmMinRows + 259,
                   33,
                   {5, 4, 6},
                   {SideKernel::Linear, SideKernel::Cosine, SideKernel::Linear}});
  for (const RpCase& c : cases) {
    SCOPED_TRACE("n " + std::to_string(c.n) + ", l " + std::to_string(c.l));
    check_rp<float>(b(), c, RpDistribution::Uniform, RpScaling::Unbiased, 1, Precision::TF32);
    check_rp<float>(b(), c, RpDistribution::Gaussian, RpScaling::AuthorsCompat, 2, Precision::BF16);
    check_rp<bf16>(b(), c, RpDistribution::Rademacher, RpScaling::Unbiased, 3, Precision::TF32);
  }
}

// The exact path's arithmetic, bit for bit: v_k = x_k (or x_k * (1 / sqrt(sum x^2))
// for a cosine side, the sum an fma chain), f_j = fma chain over k in increasing
// order, z = (f_0 f_1 ...) * float(1/sqrt l), written here from the documentation.
TEST_P(Fuse, RpFollowsTheDocumentedChainBitwise) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n = 37, l = 70;
  const std::vector<std::int64_t> dims = {45, 23, 9};
  const InputSet<bf16> in(b(), n, dims, 5);
  RpFuseOptions o;
  o.sides = sides_of({SideKernel::Cosine, SideKernel::Linear, SideKernel::Cosine});
  o.seed = 0xfeedfaceull;
  o.distribution = RpDistribution::Gaussian;
  TestArray<float> out(b(), nan_filled<float>(static_cast<std::size_t>(n * l)));
  rp_fuse(ctx, in.views(), out.matrix(n, l), o);
  ctx.synchronize();
  const std::vector<float> got = out.values();
  std::vector<std::vector<float>> U;
  for (int j = 0; j < 3; ++j) {
    const RefMatrix u = projection_of(ctx, b(), j, dims[j], l, o);
    U.emplace_back(u.v.begin(), u.v.end());
  }
  const float scale = static_cast<float>(1.0 / std::sqrt(double(l)));
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<std::vector<float>> v(3);
    for (int j = 0; j < 3; ++j) {
      const std::vector<bf16> x = in.arrays[j].values();
      float inv = 1.0f;
      if (o.sides[j].kernel == SideKernel::Cosine) {
        float sum = 0.0f;
        for (std::int64_t k = 0; k < dims[j]; ++k) {
          const float e = detail::to_float(x[i * (dims[j] + 1) + k]);
          sum = std::fma(e, e, sum);
        }
        inv = 1.0f / std::sqrt(sum);
      }
      for (std::int64_t k = 0; k < dims[j]; ++k) {
        const float e = detail::to_float(x[i * (dims[j] + 1) + k]);
        v[j].push_back(o.sides[j].kernel == SideKernel::Cosine ? e * inv : e);
      }
    }
    for (std::int64_t c = 0; c < l; ++c) {
      float prod = 0.0f;
      for (int j = 0; j < 3; ++j) {
        float acc = 0.0f;
        for (std::int64_t k = 0; k < dims[j]; ++k)
          acc = std::fma(v[j][k], U[j][k * l + c], acc);
        prod = j == 0 ? acc : prod * acc;
      }
      ASSERT_EQ(got[i * l + c], prod * scale) << "row " << i << " col " << c;
    }
  }
}

// E <z, z'> = <a, a'> <b, b'>. Per seed, <z, z'> = (1/l) sum_c X_c with X_c =
// (a.u)(a'.u)(b.v)(b'.v) i.i.d. over columns, and E X^2 = A B with
//   A = |a|^2 |a'|^2 + 2 <a, a'>^2 + (kappa - 3) sum_k a_k^2 a'_k^2
// (kappa = E u^4: 9/5 uniform, 3 Gaussian, 1 Rademacher), likewise B. The mean over
// S seeds then has standard deviation sqrt((A B - truth^2) / (l S)); it must lie
// within 6 of them of the truth (a false alarm has probability ~2e-9).
double fourth_moment(RpDistribution d) {
  return d == RpDistribution::Uniform ? 1.8 : d == RpDistribution::Gaussian ? 3.0 : 1.0;
}
double second_order(const std::vector<double>& a, const std::vector<double>& a2, double kappa) {
  double cross = 0.0;
  for (std::size_t k = 0; k < a.size(); ++k)
    cross += a[k] * a[k] * a2[k] * a2[k];
  return dot(a, a) * dot(a2, a2) + 2 * dot(a, a2) * dot(a, a2) + (kappa - 3) * cross;
}

TEST_P(Fuse, RpIsUnbiased) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t l = 64;
  const int seeds = 200;
  const InputSet<float> in(b(), 2, {8, 5}, 11);
  const auto a = in.ref(0), bm = in.ref(1);
  const double truth = dot(a.row(0), a.row(1)) * dot(bm.row(0), bm.row(1));
  for (RpDistribution dist :
       {RpDistribution::Uniform, RpDistribution::Gaussian, RpDistribution::Rademacher}) {
    double mean = 0.0;
    for (int s = 0; s < seeds; ++s) {
      TestArray<float> out(b(), nan_filled<float>(2 * l));
      RpFuseOptions o;
      o.seed = 1000 + s;
      o.distribution = dist;
      rp_fuse(ctx, in.views(), out.matrix(2, l), o);
      ctx.synchronize();
      const RefMatrix z = ref_from(out.values(), 2, l, l);
      mean += dot(z.row(0), z.row(1)) / seeds;
    }
    const double kappa = fourth_moment(dist);
    const double var_x =
        second_order(a.row(0), a.row(1), kappa) * second_order(bm.row(0), bm.row(1), kappa) -
        truth * truth;
    EXPECT_LT(std::fabs(mean - truth), 6.0 * std::sqrt(var_x / (double(l) * seeds)))
        << "distribution " << static_cast<int>(dist) << ": mean " << mean << ", truth " << truth;
  }
}

// The error's variance is Var(X) / l: the mean squared error over S = 100 seeds,
// times l / Var(X), is ~ chi^2_100 / 100 (the per-seed error is a mean of l i.i.d.
// terms, near Gaussian); it lies in [0.45, 1.9] except with probability < 1e-6.
// Both l = 256 and l = 4096 pass: the error shrinks like 1/sqrt(l).
TEST_P(Fuse, RpErrorShrinksLikeOneOverSqrtL) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const int seeds = 100;
  const InputSet<float> in(b(), 2, {8, 5}, 12);
  const auto a = in.ref(0), bm = in.ref(1);
  const double truth = dot(a.row(0), a.row(1)) * dot(bm.row(0), bm.row(1));
  const double var_x =
      second_order(a.row(0), a.row(1), 1.8) * second_order(bm.row(0), bm.row(1), 1.8) -
      truth * truth;
  double mse[2];
  const std::int64_t ls[2] = {256, 4096};
  for (int t = 0; t < 2; ++t) {
    const std::int64_t l = ls[t];
    mse[t] = 0.0;
    for (int s = 0; s < seeds; ++s) {
      TestArray<float> out(b(), nan_filled<float>(static_cast<std::size_t>(2 * l)));
      RpFuseOptions o;
      o.seed = 5000 + s;
      rp_fuse(ctx, in.views(), out.matrix(2, l), o);
      ctx.synchronize();
      const RefMatrix z = ref_from(out.values(), 2, l, l);
      const double e = dot(z.row(0), z.row(1)) - truth;
      mse[t] += e * e / seeds;
    }
    const double normalised = mse[t] * double(l) / var_x;
    EXPECT_GT(normalised, 0.45) << "l = " << l;
    EXPECT_LT(normalised, 1.9) << "l = " << l;
  }
  EXPECT_GT(mse[0] / mse[1], 16.0 * 0.45 / 1.9);
}

// Unbiased = AuthorsCompat * sqrt(l) for two inputs; with l a power of 4 every
// scaling is by a power of two, so the relation holds bit for bit.
TEST_P(Fuse, CompatScalingDiffersByExactlySqrtL) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n = 5;
  const InputSet<float> in(b(), n, {12, 7}, 13);
  for (std::int64_t l : {std::int64_t(256), std::int64_t(4096)}) {
    std::vector<float> z[2];
    for (int t = 0; t < 2; ++t) {
      TestArray<float> out(b(), nan_filled<float>(static_cast<std::size_t>(n * l)));
      RpFuseOptions o;
      o.seed = 77;
      o.scaling = t == 0 ? RpScaling::Unbiased : RpScaling::AuthorsCompat;
      rp_fuse(ctx, in.views(), out.matrix(n, l), o);
      ctx.synchronize();
      z[t] = out.values();
    }
    const float root = std::sqrt(float(l));
    for (std::size_t e = 0; e < z[0].size(); ++e)
      ASSERT_EQ(z[0][e], z[1][e] * root) << "l = " << l << ", entry " << e;
  }
}

TEST_P(Fuse, ProjectionMatrixIsKeyedBySeedAndInput) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  RpFuseOptions o;
  o.seed = 3;
  const RefMatrix u = projection_of(ctx, b(), 0, 20, 100, o);
  EXPECT_EQ(u.v, projection_of(ctx, b(), 0, 20, 100, o).v);  // same seed: same U
  // The first columns do not depend on l.
  const RefMatrix narrow = projection_of(ctx, b(), 0, 20, 37, o);
  for (std::int64_t k = 0; k < 20; ++k)
    for (std::int64_t c = 0; c < 37; ++c)
      ASSERT_EQ(narrow(k, c), u(k, c));
  // Another seed, another input: different entries (equal ones are rare: the
  // uniform has 2^24 values, so ~0 of 2000 coincide).
  for (const RefMatrix& other : {projection_of(ctx, b(), 0, 20, 100, RpFuseOptions{{}, 4}),
                                 projection_of(ctx, b(), 1, 20, 100, o)}) {
    int same = 0;
    for (std::size_t e = 0; e < u.v.size(); ++e)
      same += u.v[e] == other.v[e];
    EXPECT_LT(same, 5);
  }
}

// Moments of U through the public API, bounds as in test_fuse_math (6 standard errors).
TEST_P(Fuse, ProjectionMatrixHasMeanZeroAndVarianceOne) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t rows = 64, cols = 4096;
  const double n = double(rows * cols);
  for (RpDistribution dist :
       {RpDistribution::Uniform, RpDistribution::Gaussian, RpDistribution::Rademacher}) {
    RpFuseOptions o;
    o.seed = 99;
    o.distribution = dist;
    const RefMatrix u = projection_of(ctx, b(), 2, rows, cols, o);
    double m1 = 0, m2 = 0;
    for (double x : u.v) {
      m1 += x / n;
      m2 += x * x / n;
    }
    const double kappa = fourth_moment(dist);
    EXPECT_LT(std::fabs(m1), 6.0 / std::sqrt(n));
    EXPECT_LE(std::fabs(m2 - 1.0), 6.0 * std::sqrt((kappa - 1.0) / n) + 1e-12);
  }
}

TEST_P(Fuse, RpIsDeterministicAndSeeded) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n = 70, l = 300;
  const InputSet<float> in(b(), n, {40, 24}, 17);
  std::vector<float> z[3];
  for (int t = 0; t < 3; ++t) {
    TestArray<float> out(b(), nan_filled<float>(static_cast<std::size_t>(n * l)));
    RpFuseOptions o;
    o.seed = t < 2 ? 8 : 9;
    rp_fuse(ctx, in.views(), out.matrix(n, l), o);
    ctx.synchronize();
    z[t] = out.values();
  }
  EXPECT_TRUE(bitwise_equal(z[0], z[1]));
  EXPECT_FALSE(bitwise_equal(z[0], z[2]));
}

// ------------------------------------------------------------------ cross-modal

// The exact slots of a cross-modal row (fuse.hpp), in double.
std::vector<double> cross_row(const std::vector<double>& psi, const std::vector<double>& expert,
                              Modality m, double C, std::int64_t image_dim, std::int64_t text_dim) {
  const std::int64_t w = m == Modality::Image ? image_dim : text_dim;
  const std::int64_t other = m == Modality::Image ? text_dim : image_dim;
  const double g = std::sqrt(C / double(w)), h = 1.0 / std::sqrt(2.0);
  std::vector<double> pm;
  for (double x : expert)
    pm.push_back((g + x) * h);
  for (double x : expert)
    pm.push_back((g - x) * h);
  const std::vector<double> constant(static_cast<std::size_t>(2 * other),
                                     1.0 / std::sqrt(2.0 * double(other)));
  return m == Modality::Image ? kron(kron(psi, pm), constant) : kron(kron(psi, constant), pm);
}

TEST_P(Fuse, CrossModalIdentities) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n_img = 5, n_txt = 4, d_psi = 6, d_img = 3, d_txt = 4;
  for (SideKernel kind : {SideKernel::Linear, SideKernel::Cosine}) {
    CrossModalOptions o;
    o.C = 0.37;
    o.image_dim = d_img;
    o.text_dim = d_txt;
    o.shared.kernel = o.image_expert.kernel = o.text_expert.kernel = kind;
    const std::int64_t w = cross_modal_width(o, d_psi);
    ASSERT_EQ(w, d_psi * 2 * d_img * 2 * d_txt);
    const InputSet<double> img(b(), n_img, {d_psi, d_img}, 21), txt(b(), n_txt, {d_psi, d_txt}, 23);
    TestArray<double> zi(b(), nan_filled<double>(static_cast<std::size_t>(n_img * w))),
        zt(b(), nan_filled<double>(static_cast<std::size_t>(n_txt * w)));
    const auto vi = img.views(), vt = txt.views();
    cross_modal_kron(ctx, Modality::Image, vi[0], vi[1], zi.matrix(n_img, w), o);
    cross_modal_kron(ctx, Modality::Text, vt[0], vt[1], zt.matrix(n_txt, w), o);
    ctx.synchronize();
    const RefMatrix ZI = ref_from(zi.values(), n_img, w, w),
                    ZT = ref_from(zt.values(), n_txt, w, w);
    auto k = [&](const std::vector<double>& x, const std::vector<double>& y) {
      return side_kernel(x, y, o.shared);
    };
    for (std::int64_t i = 0; i < n_img; ++i) {
      for (std::int64_t j = 0; j < n_txt; ++j)  // image-text: C k_psi
        EXPECT_NEAR(dot(ZI.row(i), ZT.row(j)), o.C * k(img.ref(0).row(i), txt.ref(0).row(j)),
                    1e-12);
      for (std::int64_t j = 0; j < n_img; ++j)  // image-image: k_psi (C + k_phi2)
        EXPECT_NEAR(dot(ZI.row(i), ZI.row(j)),
                    k(img.ref(0).row(i), img.ref(0).row(j)) *
                        (o.C + side_kernel(img.ref(1).row(i), img.ref(1).row(j), o.image_expert)),
                    1e-12);
    }
    for (std::int64_t i = 0; i < n_txt; ++i)
      for (std::int64_t j = 0; j < n_txt; ++j)  // text-text: k_psi (C + k_phi3)
        EXPECT_NEAR(dot(ZT.row(i), ZT.row(j)),
                    k(txt.ref(0).row(i), txt.ref(0).row(j)) *
                        (o.C + side_kernel(txt.ref(1).row(i), txt.ref(1).row(j), o.text_expert)),
                    1e-12);
    // The rows are the documented construction.
    for (std::int64_t i = 0; i < n_img; ++i) {
      const auto ref = cross_row(feature(img.ref(0).row(i), kind), feature(img.ref(1).row(i), kind),
                                 Modality::Image, o.C, d_img, d_txt);
      for (std::int64_t p = 0; p < w; ++p)
        ASSERT_NEAR(ZI(i, p), ref[p], 1e-15);
    }
  }
}

// The rp form is the triple Hadamard product of the slots' projections on U_j
// (slot widths d_psi, 2 image_dim, 2 text_dim).
// (n: enough rows for the CPU's BLAS route under TF32.)
TEST_P(Fuse, CrossModalRpMatchesTheProjectionReference) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n = cpu::kProjectionGemmMinRows + 9, l = 77, d_psi = 10, d_img = 7, d_txt = 5;
  CrossModalOptions o;
  o.C = 2.5;
  o.image_dim = d_img;
  o.text_dim = d_txt;
  o.shared.kernel = SideKernel::Cosine;
  o.seed = 4242;
  RpFuseOptions ro;
  ro.seed = o.seed;
  const RefMatrix U[3] = {projection_of(ctx, b(), 0, d_psi, l, ro),
                          projection_of(ctx, b(), 1, 2 * d_img, l, ro),
                          projection_of(ctx, b(), 2, 2 * d_txt, l, ro)};
  for (Modality m : {Modality::Image, Modality::Text}) {
    const std::int64_t de = m == Modality::Image ? d_img : d_txt;
    const InputSet<float> in(b(), n, {d_psi, de}, 31 + static_cast<int>(m));
    TestArray<float> out(b(), nan_filled<float>(static_cast<std::size_t>(n * l)));
    const auto v = in.views();
    cross_modal_rp(ctx, m, v[0], v[1], out.matrix(n, l), o);
    ctx.synchronize();
    // On the CPU, the BLAS route too (the constant slot as a broadcast factor row);
    // the same tolerance as the exact chains (see the Rp test above).
    TestArray<float> out_tf32(b(), nan_filled<float>(static_cast<std::size_t>(n * l)));
    if (b() == Backend::Cpu) {
      CrossModalOptions t = o;
      t.precision = Precision::TF32;
      cross_modal_rp(ctx, m, v[0], v[1], out_tf32.matrix(n, l), t);
    }
    std::vector<double> ref;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto psi = feature(in.ref(0).row(i), SideKernel::Cosine);
      const auto e = in.ref(1).row(i);
      // The three slot vectors, from the documented construction.
      std::vector<std::vector<double>> slots(3);
      slots[0] = psi;
      const double g = std::sqrt(o.C / double(de)), h = 1.0 / std::sqrt(2.0);
      std::vector<double> pm;
      for (double x : e)
        pm.push_back((g + x) * h);
      for (double x : e)
        pm.push_back((g - x) * h);
      const std::int64_t other = m == Modality::Image ? d_txt : d_img;
      const std::vector<double> constant(static_cast<std::size_t>(2 * other),
                                         1.0 / std::sqrt(2.0 * double(other)));
      slots[m == Modality::Image ? 1 : 2] = pm;
      slots[m == Modality::Image ? 2 : 1] = constant;
      const auto z = rp_reference(slots, {U[0], U[1], U[2]}, l, RpScaling::Unbiased);
      ref.insert(ref.end(), z.begin(), z.end());
    }
    EXPECT_LE(relative_error(out.values(), ref), 1e-5);
    if (b() == Backend::Cpu) {
      EXPECT_LE(relative_error(out_tf32.values(), ref), 1e-5) << "TF32";
    }
  }
}

// Zero-shot alignment survives the random projection: the mean over seeds of
// <z_image, z_text> is C k_psi, within 6 standard errors estimated from the seeds
// (the per-seed values are means of l i.i.d. column terms: their mean is
// asymptotically normal).
TEST_P(Fuse, CrossModalRpPreservesImageTextAlignment) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t l = 256, d_psi = 6, d_img = 4, d_txt = 3;
  const int seeds = 120;
  CrossModalOptions o;
  o.C = 1.7;
  o.image_dim = d_img;
  o.text_dim = d_txt;
  const InputSet<float> img(b(), 1, {d_psi, d_img}, 41), txt(b(), 1, {d_psi, d_txt}, 43);
  const double truth = o.C * dot(img.ref(0).row(0), txt.ref(0).row(0));
  std::vector<double> est;
  for (int s = 0; s < seeds; ++s) {
    o.seed = 300 + s;
    TestArray<float> zi(b(), nan_filled<float>(l)), zt(b(), nan_filled<float>(l));
    const auto vi = img.views(), vt = txt.views();
    cross_modal_rp(ctx, Modality::Image, vi[0], vi[1], zi.matrix(1, l), o);
    cross_modal_rp(ctx, Modality::Text, vt[0], vt[1], zt.matrix(1, l), o);
    ctx.synchronize();
    est.push_back(
        dot(ref_from(zi.values(), 1, l, l).row(0), ref_from(zt.values(), 1, l, l).row(0)));
  }
  double mean = 0, var = 0;
  for (double e : est)
    mean += e / seeds;
  for (double e : est)
    var += (e - mean) * (e - mean) / (seeds - 1);
  EXPECT_LT(std::fabs(mean - truth), 6.0 * std::sqrt(var / seeds))
      << "mean " << mean << " truth " << truth;
}

// ------------------------------------------------------------------ random Fourier features

TEST_P(Fuse, RffMatchesItsDefinition) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n = 11, r = 33;
  const std::vector<std::int64_t> dims = {6, 9};
  const InputSet<float> in(b(), n, dims, 51);
  RffOptions o;
  o.sigmas = {0.8, 1.9};
  o.seed = 61;
  const std::int64_t ldo = 2 * r + 1;
  TestArray<float> out(b(), nan_filled<float>(static_cast<std::size_t>(n * ldo)));
  rff_fuse(ctx, in.views(), out.matrix(n, 2 * r, ldo), o);
  ctx.synchronize();
  // Frequencies: N(0, 1) entries of Philox stream "RF" + j (the draw is tested
  // against Box-Muller in test_fuse_math).
  std::vector<double> ref;
  for (std::int64_t i = 0; i < n; ++i) {
    std::vector<double> row(static_cast<std::size_t>(2 * r));
    for (std::int64_t t = 0; t < r; ++t) {
      double arg = 0.0;
      for (std::size_t j = 0; j < dims.size(); ++j)
        for (std::int64_t k = 0; k < dims[j]; ++k)
          arg += in.ref(j)(i, k) / o.sigmas[j] *
                 detail::random_entry(o.seed, detail::kStreamFourier + std::uint32_t(j),
                                      std::uint64_t(k), std::uint64_t(t), detail::kDrawGaussian);
      row[t] = std::cos(arg) / std::sqrt(double(r));
      row[r + t] = std::sin(arg) / std::sqrt(double(r));
    }
    ref.insert(ref.end(), row.begin(), row.end());
  }
  const std::vector<float> got = out.values();
  EXPECT_LE(relative_error(got, ref, n, 2 * r, ldo, 2 * r), 1e-5);
  for (std::int64_t i = 0; i < n; ++i)
    ASSERT_TRUE(std::isnan(got[i * ldo + 2 * r]));
}

// E <z, z'> = exp(-|a - a'|^2 / 2 s1^2) exp(-|b - b'|^2 / 2 s2^2) = K. Per seed
// <z, z'> = (1/r) sum_t cos(w_t . D), D the scaled difference, with variance
// ((1 + K^4) / 2 - K^2) / r (E cos(2 w.D) = K^4); the mean over S seeds lies within
// 6 standard deviations of K.
TEST_P(Fuse, RffIsUnbiasedForTheProductKernel) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t r = 64;
  const int seeds = 200;
  const InputSet<float> in(b(), 2, {5, 4}, 71);
  RffOptions o;
  o.sigmas = {1.3, 0.9};
  const double K =
      side_kernel(in.ref(0).row(0), in.ref(0).row(1), FuseSide{SideKernel::Rbf, 1.3, 0}) *
      side_kernel(in.ref(1).row(0), in.ref(1).row(1), FuseSide{SideKernel::Rbf, 0.9, 0});
  double mean = 0.0;
  for (int s = 0; s < seeds; ++s) {
    o.seed = 800 + s;
    TestArray<float> out(b(), nan_filled<float>(static_cast<std::size_t>(4 * r)));
    rff_fuse(ctx, in.views(), out.matrix(2, 2 * r), o);
    ctx.synchronize();
    const RefMatrix z = ref_from(out.values(), 2, 2 * r, 2 * r);
    EXPECT_NEAR(dot(z.row(0), z.row(0)), 1.0, 1e-5);  // cos^2 + sin^2, r times, / r
    mean += dot(z.row(0), z.row(1)) / seeds;
  }
  const double var = ((1.0 + K * K * K * K) / 2.0 - K * K) / double(r);
  EXPECT_LT(std::fabs(mean - K), 6.0 * std::sqrt(var / seeds)) << "mean " << mean << " K " << K;
}

// ------------------------------------------------------------------ TensorSketch

std::vector<double> sketch_reference(const std::vector<double>& a, const std::vector<double>& bv,
                                     std::int64_t l, std::uint64_t seed) {
  std::vector<double> ca(static_cast<std::size_t>(l)), cb(static_cast<std::size_t>(l)),
      out(static_cast<std::size_t>(l));
  for (std::size_t k = 0; k < a.size(); ++k) {
    const auto h = detail::sketch_hash(seed, 0, std::int64_t(k), l);
    ca[h.bucket] += h.sign * a[k];
  }
  for (std::size_t k = 0; k < bv.size(); ++k) {
    const auto h = detail::sketch_hash(seed, 1, std::int64_t(k), l);
    cb[h.bucket] += h.sign * bv[k];
  }
  for (std::int64_t t = 0; t < l; ++t)
    for (std::int64_t u = 0; u < l; ++u)
      out[(t + u) % l] += ca[t] * cb[u];
  return out;
}

// tensor_sketch of 13 rows (a partial last group of the CPU FFT route's four rows)
// against sketch_reference for each l, B through side_b's feature map.
void expect_sketch_matches_definition(Context& ctx, Backend backend,
                                      const std::vector<std::int64_t>& widths,
                                      const std::vector<std::int64_t>& lengths, SideKernel side_b,
                                      std::uint64_t seed0, std::uint64_t data_seed) {
  const std::int64_t n = 13;
  const InputSet<float> in(backend, n, widths, data_seed);
  for (std::int64_t l : lengths) {
    TensorSketchOptions o;
    o.seed = seed0 + l;
    o.side_b.kernel = side_b;
    TestArray<float> out(backend, nan_filled<float>(static_cast<std::size_t>(n * (l + 1))));
    const auto v = in.views();
    tensor_sketch(ctx, v[0], v[1], out.matrix(n, l, l + 1), o);
    ctx.synchronize();
    std::vector<double> ref;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto z =
          sketch_reference(in.ref(0).row(i), feature(in.ref(1).row(i), side_b), l, o.seed);
      ref.insert(ref.end(), z.begin(), z.end());
    }
    const std::vector<float> got = out.values();
    EXPECT_LE(relative_error(got, ref, n, l, l + 1, l), 1e-5) << "l = " << l;
    for (std::int64_t i = 0; i < n; ++i)
      ASSERT_TRUE(std::isnan(got[i * (l + 1) + l]));
  }
}

TEST_P(Fuse, TensorSketchMatchesItsDefinition) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  expect_sketch_matches_definition(ctx, b(), {20, 33}, {1, 7, 64, 200}, SideKernel::Cosine, 5, 81);
}

// Shapes where the CPU path convolves through its FFT (test_fft checks the route
// choice), which transforms at the sketch's own length l: a power of two (1024),
// smooth lengths (1000 = 2^3 5^3, 1500) and a prime (1009, FFTW's prime-length
// algorithm).
TEST_P(Fuse, TensorSketchByFftMatchesItsDefinition) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  expect_sketch_matches_definition(ctx, b(), {300, 500}, {1000, 1009, 1024, 1500},
                                   SideKernel::Linear, 17, 83);
}

// Rows of very different magnitudes and a row holding a NaN, on the FFT route (the CPU
// packs a row's two count sketches into one complex transform and two rows into one
// inverse transform): each finite row matches the definition within 1e-5 of its own norm,
// and the NaN reaches no other row.
TEST_P(Fuse, TensorSketchByFftKeepsEachRowOnItsOwn) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n = 6, wa = 300, wb = 500, l = 1000;
  std::vector<float> a = inputs_of<float>(static_cast<std::size_t>(n * wa), 91);
  std::vector<float> bv = inputs_of<float>(static_cast<std::size_t>(n * wb), 92);
  for (std::int64_t k = 0; k < wa; ++k) {
    a[1 * wa + k] = std::ldexp(a[1 * wa + k], -70);  // row 1: A tiny against its B and row 0
    a[3 * wa + k] = std::ldexp(a[3 * wa + k], 60);   // row 3: huge against row 2
  }
  for (std::int64_t k = 0; k < wb; ++k)
    bv[5 * wb + k] = std::ldexp(bv[5 * wb + k], -40);        // row 5: B tiny
  a[4 * wa + 17] = std::numeric_limits<float>::quiet_NaN();  // row 4: a NaN (paired with 5)
  TestArray<float> A(b(), a), B(b(), bv);
  TestArray<float> out(b(), nan_filled<float>(static_cast<std::size_t>(n * l)));
  TensorSketchOptions o;
  o.seed = 77;
  tensor_sketch(ctx, A.cmatrix(n, wa), B.cmatrix(n, wb), out.matrix(n, l), o);
  ctx.synchronize();
  const std::vector<float> got = out.values();
  const RefMatrix ra = ref_from(a, n, wa, wa), rb = ref_from(bv, n, wb, wb);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::vector<float> row(got.begin() + i * l, got.begin() + (i + 1) * l);
    if (i == 4) {
      EXPECT_TRUE(std::any_of(row.begin(), row.end(), [](float v) { return std::isnan(v); }));
      continue;
    }
    const auto ref = sketch_reference(ra.row(i), feature(rb.row(i), SideKernel::Linear), l, o.seed);
    EXPECT_LE(relative_error(row, ref), 1e-5) << "row " << i;
  }
}

// E <TS(a, b), TS(a', b')> = <a, a'> <b, b'>: the mean over seeds lies within 6
// standard errors (estimated from the seeds; the per-seed values are sums over
// independent hash collisions, their mean asymptotically normal).
TEST_P(Fuse, TensorSketchIsUnbiased) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t l = 16;
  const int seeds = 300;
  const InputSet<float> in(b(), 2, {12, 10}, 91);
  const double truth =
      dot(in.ref(0).row(0), in.ref(0).row(1)) * dot(in.ref(1).row(0), in.ref(1).row(1));
  std::vector<double> est;
  for (int s = 0; s < seeds; ++s) {
    TensorSketchOptions o;
    o.seed = 10000 + s;
    TestArray<float> out(b(), nan_filled<float>(static_cast<std::size_t>(2 * l)));
    const auto v = in.views();
    tensor_sketch(ctx, v[0], v[1], out.matrix(2, l), o);
    ctx.synchronize();
    const RefMatrix z = ref_from(out.values(), 2, l, l);
    est.push_back(dot(z.row(0), z.row(1)));
  }
  double mean = 0, var = 0;
  for (double e : est)
    mean += e / seeds;
  for (double e : est)
    var += (e - mean) * (e - mean) / (seeds - 1);
  EXPECT_LT(std::fabs(mean - truth), 6.0 * std::sqrt(var / seeds))
      << "mean " << mean << " truth " << truth;
}

// tensor_sketch returns after its work has run (fuse.hpp): its output read at once,
// with no synchronize, holds the finished values. On a GPU the tests' copies run on
// the legacy stream, not ordered after the context's, so a missing synchronisation
// would let the read see the NaN poison; the count sketch of 2000 columns per row
// (one thread per row when l == 1, the path without an FFT) is long enough for that.
TEST_P(Fuse, TensorSketchReturnsAfterItsWork) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n = 4096;
  const InputSet<float> in(b(), n, {2000, 3}, 97);
  for (std::int64_t l : {std::int64_t(1), std::int64_t(64)}) {
    TestArray<float> out(b(), nan_filled<float>(static_cast<std::size_t>(n * l)));
    const auto v = in.views();
    tensor_sketch(ctx, v[0], v[1], out.matrix(n, l), TensorSketchOptions{});
    const std::vector<float> early = out.values();  // no synchronize
    ctx.synchronize();
    const std::vector<float> late = out.values();
    for (std::size_t t = 0; t < late.size(); ++t) {
      ASSERT_FALSE(std::isnan(late[t])) << "l = " << l << ", entry " << t;
      ASSERT_EQ(early[t], late[t]) << "l = " << l << ", entry " << t;
    }
  }
}

// ------------------------------------------------------------------ product_kernel_topk

struct TopkCase {
  std::int64_t M, N, k, d1, d2;
  FuseSide s1, s2;
  double C;
};

const FuseSide kLin{SideKernel::Linear, 1.0, 0}, kCos{SideKernel::Cosine, 1.0, 0},
    kRbf{SideKernel::Rbf, 1.5, 0};
const std::vector<TopkCase> kTopkCases = {
    {1, 1, 1, 1, 1, kLin, kLin, 0.0},
    {1, 5, 5, 3, 2, kCos, kCos, 1.0},
    {3, 64, 1, 7, 5, kRbf, kCos, 0.5},
    {65, 63, 10, 16, 9, kLin, kRbf, -0.25},
    {63, 129, 63, 9, 17, kRbf, kRbf, 2.0},
    {64, 128, 100, 5, 4, kCos, kLin, 0.0},
    {129, 300, 37, 33, 31, kLin, kLin, 1.5},
    {17, 1000, 256, 12, 8, kCos, kRbf, 0.1},
    // A last query block of one row (M = 64 + 1): the CPU path once read its register
    // block past the packed queries (caught by the AddressSanitizer configuration).
    {65, 1, 1, 1, 1, kLin, kLin, 0.0},
    {121, 2, 1, 3, 2, kLin, kCos, 0.0},
    // Two query blocks of the CPU path (240 rows, then 5: a partial register block),
    // the gallery split over the threads in panels of 64 rows.
    {245, 700, 9, 6, 5, kCos, kLin, 0.5},
};

TEST_P(Fuse, TopkMatchesBruteForce) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  for (const TopkCase& c : kTopkCases) {
    SCOPED_TRACE("M " + std::to_string(c.M) + " N " + std::to_string(c.N) + " k " +
                 std::to_string(c.k));
    const InputSet<float> q(b(), c.M, {c.d1, c.d2}, 101), g(b(), c.N, {c.d1, c.d2}, 103);
    const std::int64_t ldi = c.k + 1, lds = c.k + 2;
    TestArray<std::int64_t> idx(b(), std::vector<std::int64_t>(c.M * ldi, -7));
    TestArray<float> sc(b(), nan_filled<float>(static_cast<std::size_t>(c.M * lds)));
    ProductTopkOptions o;
    o.side1 = c.s1;
    o.side2 = c.s2;
    o.C = c.C;
    const auto qv = q.views(), gv = g.views();
    product_kernel_topk(ctx, qv[0], qv[1], gv[0], gv[1], idx.matrix(c.M, c.k, ldi),
                        sc.matrix(c.M, c.k, lds), o);
    ctx.synchronize();
    const RefTopk ref = ref_topk(q.ref(0), q.ref(1), g.ref(0), g.ref(1), c.s1, c.s2, c.C);
    const std::vector<std::int64_t> gi = idx.values();
    const std::vector<float> gs = sc.values();
    const double tol = 2e-5;  // fp32 chains of <= 33 terms, scores O(1)
    for (std::int64_t i = 0; i < c.M; ++i) {
      const auto& order = ref.order[i];
      for (std::int64_t t = 0; t < c.k; ++t) {
        const std::int64_t j = gi[i * ldi + t];
        ASSERT_GE(j, 0);
        ASSERT_LT(j, c.N);
        // The score returned is the pair's, and the t-th best.
        EXPECT_NEAR(gs[i * lds + t], ref.scores(i, j), tol);
        EXPECT_NEAR(gs[i * lds + t], ref.scores(i, order[t]), tol);
        // Where the ranking is unambiguous at float precision, the index is exact.
        const double here = ref.scores(i, order[t]);
        const bool clear_above = t == 0 || ref.scores(i, order[t - 1]) - here > 2 * tol;
        const bool clear_below = t + 1 == c.N || here - ref.scores(i, order[t + 1]) > 2 * tol;
        if (clear_above && clear_below) {
          EXPECT_EQ(j, order[t]) << "query " << i << " rank " << t;
        }
      }
      ASSERT_EQ(gi[i * ldi + c.k], -7) << "indices padding written";
      ASSERT_TRUE(std::isnan(gs[i * lds + c.k])) << "scores padding written";
    }
  }
}

// Small integer inputs make every score exact in fp32, with many exact ties: the
// result must be the stable order (ties to the lower index) exactly.
TEST_P(Fuse, TopkBreaksTiesTowardsTheLowerIndex) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t M = 70, N = 333, k = 50, d1 = 3, d2 = 2;
  auto ints = [](std::size_t n, std::uint64_t seed) {
    std::vector<float> v = uniform<float>(n, seed, -2.5, 2.5);
    for (auto& x : v)
      x = std::round(x);
    return v;
  };
  TestArray<float> Q1(b(), ints(M * d1, 1)), Q2(b(), ints(M * d2, 2)), G1(b(), ints(N * d1, 3)),
      G2(b(), ints(N * d2, 4));
  TestArray<std::int64_t> idx(b(), std::vector<std::int64_t>(M * k, -1));
  TestArray<float> sc(b(), nan_filled<float>(static_cast<std::size_t>(M * k)));
  ProductTopkOptions o;
  o.C = 3.0;
  product_kernel_topk(ctx, Q1.cmatrix(M, d1), Q2.cmatrix(M, d2), G1.cmatrix(N, d1),
                      G2.cmatrix(N, d2), idx.matrix(M, k), sc.matrix(M, k), o);
  ctx.synchronize();
  const RefTopk ref = ref_topk(ref_from(Q1.values(), M, d1, d1), ref_from(Q2.values(), M, d2, d2),
                               ref_from(G1.values(), N, d1, d1), ref_from(G2.values(), N, d2, d2),
                               o.side1, o.side2, o.C);
  const auto gi = idx.values();
  const auto gs = sc.values();
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t t = 0; t < k; ++t) {
      ASSERT_EQ(gi[i * k + t], ref.order[i][t]) << "query " << i << " rank " << t;
      ASSERT_EQ(gs[i * k + t], static_cast<float>(ref.scores(i, ref.order[i][t])));
    }
}

TEST_P(Fuse, TopkAcceptsHalfPrecisionInputs) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t M = 20, N = 90, k = 7, d1 = 24, d2 = 16;
  const InputSet<bf16> q(b(), M, {d1, d2}, 111), g(b(), N, {d1, d2}, 113);
  TestArray<std::int64_t> idx(b(), std::vector<std::int64_t>(M * k, -1));
  TestArray<float> sc(b(), nan_filled<float>(static_cast<std::size_t>(M * k)));
  ProductTopkOptions o;
  o.side1 = kCos;
  o.side2 = kRbf;
  const auto qv = q.views(), gv = g.views();
  product_kernel_topk(ctx, qv[0], qv[1], gv[0], gv[1], idx.matrix(M, k), sc.matrix(M, k), o);
  ctx.synchronize();
  const RefTopk ref = ref_topk(q.ref(0), q.ref(1), g.ref(0), g.ref(1), o.side1, o.side2, o.C);
  const auto gi = idx.values();
  const auto gs = sc.values();
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t t = 0; t < k; ++t)
      EXPECT_NEAR(gs[i * k + t], ref.scores(i, ref.order[i][t]), 2e-5);
  EXPECT_EQ(gi[0], ref.order[0][0]);
}

// ------------------------------------------------------------------ GPU against CPU

// Runs `op` on a context of backend b with fresh copies of `inputs` and returns
// the output's values.
template <class T, class O, class Op>
std::vector<O> run_on(Backend b, const std::vector<std::vector<T>>& inputs, std::size_t out_size,
                      Op op) {
  Context ctx = b == Backend::Cuda ? Context::cuda(0) : Context::cpu();
  std::vector<TestArray<T>> in;
  for (const auto& v : inputs)
    in.emplace_back(b, v);
  TestArray<O> out(b, nan_filled<O>(out_size));
  op(ctx, in, out);
  ctx.synchronize();
  return out.values();
}

#define KFUSE_GPU_ONLY()                                                            \
  if (GetParam() != Backend::Cuda) GTEST_SKIP() << "compares the GPU with the CPU"; \
  if (cuda_device_count() == 0)                                                     \
  GTEST_SKIP() << "no usable CUDA device (no driver, no GPU, or a CPU-only build)"

// The same seed gives the same bits on the CPU and the GPU (Precision::Exact).
TEST_P(Fuse, GpuMatchesCpuBitwise) {
  KFUSE_GPU_ONLY();
  const std::int64_t n = 129, l = 130;
  const std::vector<std::int64_t> dims = {67, 16, 33};
  std::vector<std::vector<float>> f;
  std::vector<std::vector<bf16>> h;
  for (std::size_t j = 0; j < dims.size(); ++j) {
    f.push_back(inputs_of<float>(static_cast<std::size_t>(n * dims[j]), 200 + j));
    h.push_back(inputs_of<bf16>(static_cast<std::size_t>(n * dims[j]), 300 + j));
  }
  for (RpDistribution dist :
       {RpDistribution::Uniform, RpDistribution::Gaussian, RpDistribution::Rademacher}) {
    RpFuseOptions o;
    o.seed = 0x1234567890ull;
    o.distribution = dist;
    o.sides = sides_of({SideKernel::Cosine, SideKernel::Linear, SideKernel::Cosine});
    auto rp = [&](Context& ctx, auto& in, auto& out) {
      std::vector<std::decay_t<decltype(in[0].cmatrix(1, 1))>> v;
      for (std::size_t j = 0; j < dims.size(); ++j)
        v.push_back(in[j].cmatrix(n, dims[j]));
      rp_fuse(ctx, v, out.matrix(n, l), o);
    };
    EXPECT_TRUE(bitwise_equal(run_on<float, float>(Backend::Cpu, f, n * l, rp),
                              run_on<float, float>(Backend::Cuda, f, n * l, rp)))
        << "rp_fuse fp32, distribution " << static_cast<int>(dist);
    EXPECT_TRUE(bitwise_equal(run_on<bf16, float>(Backend::Cpu, h, n * l, rp),
                              run_on<bf16, float>(Backend::Cuda, h, n * l, rp)))
        << "rp_fuse bf16, distribution " << static_cast<int>(dist);
    auto u = [&](Context& ctx, auto&, auto& out) {
      rp_projection_matrix(ctx, 1, out.matrix(dims[1], l), o);
    };
    EXPECT_TRUE(bitwise_equal(run_on<float, float>(Backend::Cpu, f, dims[1] * l, u),
                              run_on<float, float>(Backend::Cuda, f, dims[1] * l, u)))
        << "U, distribution " << static_cast<int>(dist);
  }
  {
    RffOptions o;
    o.sigmas = {0.9, 2.0};
    o.seed = 5;
    auto rff = [&](Context& ctx, auto& in, auto& out) {
      rff_fuse(ctx, {in[0].cmatrix(n, dims[0]), in[1].cmatrix(n, dims[1])}, out.matrix(n, 2 * l),
               o);
    };
    EXPECT_TRUE(bitwise_equal(run_on<float, float>(Backend::Cpu, f, n * 2 * l, rff),
                              run_on<float, float>(Backend::Cuda, f, n * 2 * l, rff)))
        << "rff_fuse";
  }
  {
    CrossModalOptions o;
    o.C = 0.8;
    o.image_dim = dims[1];
    o.text_dim = 9;
    o.seed = 77;
    o.shared.kernel = SideKernel::Cosine;
    o.image_expert = FuseSide{SideKernel::Rbf, 1.1, 12};
    auto cm = [&](Context& ctx, auto& in, auto& out) {
      cross_modal_rp(ctx, Modality::Image, in[0].cmatrix(n, dims[0]), in[1].cmatrix(n, dims[1]),
                     out.matrix(n, l), o);
    };
    EXPECT_TRUE(bitwise_equal(run_on<float, float>(Backend::Cpu, f, n * l, cm),
                              run_on<float, float>(Backend::Cuda, f, n * l, cm)))
        << "cross_modal_rp";
  }
  {
    KronFuseOptions o;
    o.sides = sides_of({SideKernel::Linear, SideKernel::Cosine});
    const std::int64_t w = dims[1] * dims[2];
    auto kr = [&](Context& ctx, auto& in, auto& out) {
      kron_fuse(ctx, {in[1].cmatrix(n, dims[1]), in[2].cmatrix(n, dims[2])}, out.matrix(n, w), o);
    };
    EXPECT_TRUE(bitwise_equal(run_on<float, float>(Backend::Cpu, f, n * w, kr),
                              run_on<float, float>(Backend::Cuda, f, n * w, kr)))
        << "kron_fuse";
  }
}

TEST_P(Fuse, GpuTopkMatchesCpuBitwise) {
  KFUSE_GPU_ONLY();
  // Few queries and a long gallery: the gallery is split across blocks and merged.
  for (std::int64_t M : {std::int64_t(5), std::int64_t(130)}) {
    const std::int64_t N = 3001, k = 37, d1 = 24, d2 = 40;
    std::vector<std::vector<float>> in = {inputs_of<float>(M * d1, 1), inputs_of<float>(M * d2, 2),
                                          inputs_of<float>(N * d1, 3), inputs_of<float>(N * d2, 4)};
    ProductTopkOptions o;
    o.side1 = kRbf;
    o.side2 = kCos;
    o.C = 0.3;
    auto scores = [&](Context& ctx, auto& a, auto& out) {
      TestArray<std::int64_t> idx(ctx.backend(), std::vector<std::int64_t>(M * k, -1));
      product_kernel_topk(ctx, a[0].cmatrix(M, d1), a[1].cmatrix(M, d2), a[2].cmatrix(N, d1),
                          a[3].cmatrix(N, d2), idx.matrix(M, k), out.matrix(M, k), o);
      ctx.synchronize();
    };
    auto indices = [&](Context& ctx, auto& a, auto& out) {
      TestArray<float> sc(ctx.backend(), nan_filled<float>(M * k));
      product_kernel_topk(ctx, a[0].cmatrix(M, d1), a[1].cmatrix(M, d2), a[2].cmatrix(N, d1),
                          a[3].cmatrix(N, d2), out.matrix(M, k), sc.matrix(M, k), o);
      ctx.synchronize();
    };
    EXPECT_TRUE(bitwise_equal(run_on<float, float>(Backend::Cpu, in, M * k, scores),
                              run_on<float, float>(Backend::Cuda, in, M * k, scores)))
        << "scores, M = " << M;
    const auto cpu_idx = run_on<float, std::int64_t>(Backend::Cpu, in, M * k, indices);
    EXPECT_EQ(cpu_idx, (run_on<float, std::int64_t>(Backend::Cuda, in, M * k, indices)))
        << "indices, M = " << M;
    EXPECT_EQ(cpu_idx, (run_on<float, std::int64_t>(Backend::Cuda, in, M * k, indices)))
        << "indices run to run, M = " << M;
  }
}

// The TF32 / BF16 paths against the exact CPU output: each factor carries the
// operands' rounding (tf32 ~1e-3, bf16 ~1e-2 relative); their product about twice.
TEST_P(Fuse, GpuTensorCorePrecisions) {
  KFUSE_GPU_ONLY();
  const std::int64_t n = 300, l = 257;
  const std::vector<std::int64_t> dims = {96, 64};
  std::vector<std::vector<float>> f;
  for (std::size_t j = 0; j < dims.size(); ++j)
    f.push_back(inputs_of<float>(static_cast<std::size_t>(n * dims[j]), 400 + j));
  std::vector<double> exact;
  for (Precision precision : {Precision::Exact, Precision::TF32, Precision::BF16}) {
    RpFuseOptions o;
    o.seed = 9;
    o.precision = precision;
    auto rp = [&](Context& ctx, auto& in, auto& out) {
      rp_fuse(ctx, {in[0].cmatrix(n, dims[0]), in[1].cmatrix(n, dims[1])}, out.matrix(n, l), o);
    };
    const auto got = run_on<float, float>(
        precision == Precision::Exact ? Backend::Cpu : Backend::Cuda, f, n * l, rp);
    if (precision == Precision::Exact) {
      exact.assign(got.begin(), got.end());
      continue;
    }
    EXPECT_LE(relative_error(got, exact), precision == Precision::TF32 ? 2e-3 : 2e-2)
        << precision_name(precision);
  }
}

// ------------------------------------------------------------------ numerical edges

// A Cosine side of rows with extreme norms (issue 13, defect 10): the plain sum of
// squares under- or overflows (|x| below ~1e-19 or above ~1e19 in fp32, 1e+-154 in
// fp64), and such rows used to become zero rows. Checked against x / |x| and cosines
// evaluated in long double.
class NumericEdges : public ::testing::TestWithParam<Backend> {};

// Rows of d columns: a fixed direction per row, scaled to the norms given (and one
// zero row, which stays zero).
template <class T>
std::vector<T> rows_with_norms(const std::vector<double>& norms, std::int64_t d) {
  std::vector<T> v;
  for (std::size_t i = 0; i < norms.size(); ++i)
    for (std::int64_t k = 0; k < d; ++k) {
      const double dir = std::sin(1.0 + double(i) * 0.7 + double(k) * 1.3);  // |dir| < 1
      v.push_back(static_cast<T>(norms[i] * dir));
    }
  return v;
}

template <class T>
void check_cosine_feature_map(Context& ctx, Backend b, const std::vector<double>& norms,
                              double tol) {
  const std::int64_t d = 5, n = static_cast<std::int64_t>(norms.size());
  const std::vector<T> a = rows_with_norms<T>(norms, d);
  TestArray<T> A(b, a), ones(b, std::vector<T>(n, T(1)));
  TestArray<T> out(b, nan_filled<T>(static_cast<std::size_t>(n * d)));
  KronFuseOptions o;
  o.sides = sides_of({SideKernel::Cosine, SideKernel::Linear});
  kron_fuse(ctx, {A.cmatrix(n, d), ones.cmatrix(n, 1)}, out.matrix(n, d), o);
  ctx.synchronize();
  const std::vector<T> got = out.values();
  for (std::int64_t i = 0; i < n; ++i) {
    long double sum = 0;
    for (std::int64_t k = 0; k < d; ++k)
      sum += (long double)a[i * d + k] * (long double)a[i * d + k];
    for (std::int64_t k = 0; k < d; ++k) {
      const double want = sum == 0 ? 0.0 : double((long double)a[i * d + k] / std::sqrt(sum));
      EXPECT_NEAR(double(got[i * d + k]), want, tol) << "norm " << norms[i] << " column " << k;
    }
  }
}

TEST_P(NumericEdges, CosineFeatureMapOfExtremeRows) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  check_cosine_feature_map<float>(ctx, GetParam(),
                                  {1e30, 1e-30, 1e25, 1e-25, 3e-20, 1e19, 1.0, 0.0, 1e-37}, 1e-6);
  check_cosine_feature_map<double>(ctx, GetParam(),
                                   {1e200, 1e-200, 1e160, 1e-160, 1.0, 0.0, 1e-300}, 1e-14);
}

// product_kernel_topk with a Cosine side: queries of norm 1e+-30 against an ordinary
// gallery (their products <q, g> stay in range; the norms did not).
TEST_P(NumericEdges, TopkCosineOfExtremeQueries) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const std::int64_t d = 4, M = 4, N = 6;
  const std::vector<float> q = rows_with_norms<float>({1e30, 1e-30, 1e25, 1e-25}, d);
  const std::vector<float> g = rows_with_norms<float>({1, 2, 3, 0.5, 1, 4}, d);
  TestArray<float> Q1(GetParam(), q), G1(GetParam(), g), Q2(GetParam(), std::vector<float>(M, 1)),
      G2(GetParam(), std::vector<float>(N, 1));
  TestArray<std::int64_t> idx(GetParam(), std::vector<std::int64_t>(M * N, -1));
  TestArray<float> sc(GetParam(), nan_filled<float>(static_cast<std::size_t>(M * N)));
  ProductTopkOptions o;
  o.side1.kernel = SideKernel::Cosine;  // s = cos(q1, g1) * (0 + <q2, g2>) = cos(q1, g1)
  product_kernel_topk(ctx, Q1.cmatrix(M, d), Q2.cmatrix(M, 1), G1.cmatrix(N, d), G2.cmatrix(N, 1),
                      idx.matrix(M, N), sc.matrix(M, N), o);
  ctx.synchronize();
  const auto gi = idx.values();
  const auto gs = sc.values();
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t t = 0; t < N; ++t) {
      const std::int64_t j = gi[i * N + t];
      ASSERT_GE(j, 0);
      ASSERT_LT(j, N);
      long double qq = 0, gg = 0, qg = 0;
      for (std::int64_t k = 0; k < d; ++k) {
        const long double x = q[i * d + k], y = g[j * d + k];
        qq += x * x;
        gg += y * y;
        qg += x * y;
      }
      EXPECT_NEAR(gs[i * N + t], double(qg / std::sqrt(qq * gg)), 1e-6)
          << "query " << i << " rank " << t;
      if (t > 0) {
        EXPECT_GE(gs[i * N + t - 1], gs[i * N + t]);
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Cpu, NumericEdges, ::testing::Values(Backend::Cpu),
                         [](const auto& info) { return backend_label(info.param); });
INSTANTIATE_TEST_SUITE_P(Cuda, NumericEdges, ::testing::Values(Backend::Cuda),
                         [](const auto& info) { return backend_label(info.param); });

INSTANTIATE_TEST_SUITE_P(Cpu, Fuse, ::testing::Values(Backend::Cpu),
                         [](const auto& info) { return backend_label(info.param); });
INSTANTIATE_TEST_SUITE_P(Cuda, Fuse, ::testing::Values(Backend::Cuda),
                         [](const auto& info) { return backend_label(info.param); });

}  // namespace
}  // namespace kfuse::test
