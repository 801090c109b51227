// The Gaussian kernel family, three ways: brute force in double (in the test),
// the CPU path, the GPU path. Every test runs per backend: instances named Cpu/...
// run everywhere, Cuda/... skip without a usable device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "kfuse/gauss.hpp"
#include "support/gauss_reference.hpp"
#include "support/test_memory.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {
namespace {

struct Shape {
  std::int64_t M, N, d, R;
};

std::string shape_name(const Shape& s) {
  return "M" + std::to_string(s.M) + "_N" + std::to_string(s.N) + "_d" + std::to_string(s.d) +
         "_R" + std::to_string(s.R);
}

// Every M, N in {1, 31, 32, 33, 1000, 1031}, d in {1, 2, 3, 16, 64, 257, 1024} and
// R in {1, 3, 64} appears, with M != N, plus GPU tile edges (64 +- 1, 128 +- 1).
const std::vector<Shape> kShapes = {
    {1, 1, 1, 1},       {1, 31, 2, 3},       {31, 33, 3, 1},     {32, 32, 16, 64},
    {33, 31, 1, 3},     {1000, 1031, 3, 1},  {1031, 1000, 2, 3}, {33, 1000, 64, 3},
    {1000, 33, 257, 1}, {31, 1031, 1024, 3}, {32, 33, 1024, 64}, {1031, 32, 16, 64},
    {63, 65, 33, 5},    {129, 127, 65, 17},  {127, 129, 31, 63}, {65, 129, 128, 65},
};

// Inputs uniform in [-1, 1]; sigma = sigma_factor * sqrt(d) keeps the kernel values
// spread over (0, 1) for every d.
double sigma_for(std::int64_t d, double factor = 0.6) {
  return factor * std::sqrt(double(d));
}

using ShapeParam = std::tuple<Backend, Shape>;

std::string param_name(const ::testing::TestParamInfo<ShapeParam>& info) {
  return shape_name(std::get<1>(info.param));
}

// ------------------------------------------------------------------- gauss_matvec

class GaussMatvec : public ::testing::TestWithParam<ShapeParam> {};

template <class T>
void check_matvec(Backend backend, const Shape& s, Precision precision, std::uint64_t seed) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend);
  // Padded leading dimensions on X and out; Y and V dense.
  const std::int64_t ldx = s.d + 1, ldo = s.R + 2;
  const double sigma = sigma_for(s.d);
  TestArray<T> X(backend, uniform<T>(s.M * ldx, seed));
  TestArray<T> Y(backend, uniform<T>(s.N * s.d, seed + 1));
  TestArray<T> V(backend, uniform<T>(s.N * s.R, seed + 2));
  TestArray<T> out(backend, nan_filled<T>(s.M * ldo));
  GaussMatvecOptions o;
  o.sigma = sigma;
  o.precision = precision;
  gauss_matvec(ctx, X.cmatrix(s.M, s.d, ldx), Y.cmatrix(s.N, s.d), V.cmatrix(s.N, s.R),
               out.matrix(s.M, s.R, ldo), o);
  ctx.synchronize();
  const auto ref = ref_matvec(to_ref(X.values(), s.M, s.d, ldx), to_ref(Y.values(), s.N, s.d, s.d),
                              to_ref(V.values(), s.N, s.R, s.R), sigma);
  const std::vector<T> got = out.values();
  EXPECT_LE(relative_error(got, ref, s.M, s.R, ldo, s.R), tolerance<T>(backend, precision));
  // The padding between rows is never written.
  for (std::int64_t i = 0; i < s.M; ++i)
    for (std::int64_t c = s.R; c < ldo; ++c)
      ASSERT_TRUE(std::isnan(got[i * ldo + c]));
}

TEST_P(GaussMatvec, MatchesBruteForceF32) {
  check_matvec<float>(std::get<0>(GetParam()), std::get<1>(GetParam()), Precision::Exact, 11);
}
TEST_P(GaussMatvec, MatchesBruteForceF64) {
  check_matvec<double>(std::get<0>(GetParam()), std::get<1>(GetParam()), Precision::Exact, 12);
}
TEST_P(GaussMatvec, MatchesBruteForceTF32) {
  check_matvec<float>(std::get<0>(GetParam()), std::get<1>(GetParam()), Precision::TF32, 13);
}
TEST_P(GaussMatvec, MatchesBruteForceBF16) {
  check_matvec<float>(std::get<0>(GetParam()), std::get<1>(GetParam()), Precision::BF16, 14);
}

INSTANTIATE_TEST_SUITE_P(Cpu, GaussMatvec,
                         ::testing::Combine(::testing::Values(Backend::Cpu),
                                            ::testing::ValuesIn(kShapes)),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, GaussMatvec,
                         ::testing::Combine(::testing::Values(Backend::Cuda),
                                            ::testing::ValuesIn(kShapes)),
                         param_name);

// ------------------------------------------------------------------- per-backend properties

class GaussFamily : public ::testing::TestWithParam<Backend> {};

std::string backend_param_name(const ::testing::TestParamInfo<Backend>& info) {
  return backend_label(info.param);
}

// alpha * K V + beta * out, with out read when beta != 0.
TEST_P(GaussFamily, MatvecAlphaBeta) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const Shape s{70, 90, 5, 3};
  const auto x = uniform<double>(s.M * s.d, 1), y = uniform<double>(s.N * s.d, 2),
             v = uniform<double>(s.N * s.R, 3), o0 = uniform<double>(s.M * s.R, 4);
  TestArray<double> X(GetParam(), x), Y(GetParam(), y), V(GetParam(), v), out(GetParam(), o0);
  GaussMatvecOptions o;
  o.sigma = 0.7;
  o.alpha = -1.5;
  o.beta = 0.25;
  gauss_matvec(ctx, X.cmatrix(s.M, s.d), Y.cmatrix(s.N, s.d), V.cmatrix(s.N, s.R),
               out.matrix(s.M, s.R), o);
  ctx.synchronize();
  auto ref =
      ref_matvec(to_ref(x, s.M, s.d, s.d), to_ref(y, s.N, s.d, s.d), to_ref(v, s.N, s.R, s.R), 0.7);
  for (std::size_t k = 0; k < ref.size(); ++k)
    ref[k] = -1.5 * ref[k] + 0.25 * o0[k];
  EXPECT_LE(relative_error(out.values(), ref), 1e-12);
}

// N = 0: K V is empty, out = beta * out; M = 0: nothing happens.
TEST_P(GaussFamily, MatvecEmptySample) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const auto o0 = uniform<float>(6, 5);
  TestArray<float> X(GetParam(), uniform<float>(6, 6)), Y(GetParam(), std::vector<float>{}),
      V(GetParam(), std::vector<float>{}), out(GetParam(), o0);
  GaussMatvecOptions o;
  o.beta = 2.0;
  gauss_matvec(ctx, X.cmatrix(3, 2), Y.cmatrix(0, 2), V.cmatrix(0, 2), out.matrix(3, 2), o);
  ctx.synchronize();
  const auto got = out.values();
  for (std::size_t k = 0; k < got.size(); ++k)
    EXPECT_FLOAT_EQ(got[k], 2.0f * o0[k]);
  // M = 0 writes nothing.
  gauss_matvec(ctx, X.cmatrix(0, 2), X.cmatrix(3, 2), X.cmatrix(3, 2), out.matrix(0, 2), o);
  ctx.synchronize();
  const auto again = out.values();
  for (std::size_t k = 0; k < got.size(); ++k)
    EXPECT_EQ(again[k], got[k]);
}

// A tiny sigma leaves only exact duplicates (K = 1) and underflows the rest to 0;
// a huge one makes every K ~ 1.
TEST_P(GaussFamily, MatvecExtremeSigma) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const std::int64_t M = 40, N = 100, d = 3, R = 2;
  auto y = uniform<float>(N * d, 7);
  std::vector<float> x(M * d);
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t k = 0; k < d; ++k)
      x[i * d + k] = y[(2 * i) * d + k];  // x_i = y_2i
  const auto v = uniform<float>(N * R, 8);
  TestArray<float> X(GetParam(), x), Y(GetParam(), y), V(GetParam(), v);
  for (double sigma : {1e-6, 1e-30, 1e6, 1e30}) {
    TestArray<float> out(GetParam(), nan_filled<float>(M * R));
    GaussMatvecOptions o;
    o.sigma = sigma;
    gauss_matvec(ctx, X.cmatrix(M, d), Y.cmatrix(N, d), V.cmatrix(N, R), out.matrix(M, R), o);
    ctx.synchronize();
    std::vector<double> ref(M * R, 0.0);
    for (std::int64_t i = 0; i < M; ++i)
      for (std::int64_t r = 0; r < R; ++r)
        for (std::int64_t j = 0; j < N; ++j)
          if (sigma < 1) {
            if (j == 2 * i) ref[i * R + r] += v[j * R + r];
          } else {
            ref[i * R + r] += v[j * R + r];
          }
    EXPECT_LE(relative_error(out.values(), ref), 1e-5) << "sigma " << sigma;
  }
}

// Nearby points far from the origin: the expanded |x|^2 + |y|^2 - 2 x.y form
// cancels catastrophically unless the inputs are centred first.
TEST_P(GaussFamily, NearDuplicatePointsFarFromOrigin) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  for (Precision precision : {Precision::Exact, Precision::TF32, Precision::BF16}) {
    const std::int64_t M = 70, N = 130, d = 96, R = 2;
    const double sigma = 0.05;
    auto y = uniform<float>(N * d, 21, -0.02, 0.02);
    auto x = uniform<float>(M * d, 22, -0.02, 0.02);
    for (auto& t : y)
      t += 1000.0f;
    for (auto& t : x)
      t += 1000.0f;
    TestArray<float> X(GetParam(), x), Y(GetParam(), y), V(GetParam(), uniform<float>(N * R, 23));
    TestArray<float> out(GetParam(), nan_filled<float>(M * R));
    GaussMatvecOptions o;
    o.sigma = sigma;
    o.precision = precision;
    gauss_matvec(ctx, X.cmatrix(M, d), Y.cmatrix(N, d), V.cmatrix(N, R), out.matrix(M, R), o);
    ctx.synchronize();
    const auto ref =
        ref_matvec(to_ref(x, M, d, d), to_ref(y, N, d, d), to_ref(V.values(), N, R, R), sigma);
    // The inputs themselves are only float-accurate (1000 + 0.02 keeps 13 bits of
    // the offset), which the reference sees too; the bound is the precision's.
    EXPECT_LE(relative_error(out.values(), ref), tolerance<float>(GetParam(), precision))
        << precision_name(precision);
  }
}

// v with every element times scale (a power of two: exact).
std::vector<float> scaled(std::vector<float> v, float scale) {
  for (float& t : v)
    t *= scale;
  return v;
}

// At large d the CPU path expands |x - y|^2 = |a|^2 + |b|^2 - 2 a.b on points centred
// at the sample's mean (a GEMM) and takes the direct form for every pair where that
// would not be accurate. Here half the sample is a cluster at 1000 (spread 1e-2),
// the other half lies near 0, so the mean is ~500 from every point: within the
// cluster the expansion loses all digits (its rounding, ~u (|a| + |b|)^2, exceeds the
// distances). The queries lie in the cluster and include exact and near duplicates
// of sample points; the pairs across the two halves still take the GEMM. The same
// points scaled by 2^40 and 2^-40 (with sigma) take the paths for sigma far from 1.
TEST_P(GaussFamily, LargeDClusterFarFromTheSampleMean) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const std::int64_t M = 70, N = 130, d = 520, R = 3;
  auto y = uniform<float>(N * d, 24, -0.01, 0.01);
  auto x = uniform<float>(M * d, 25, -0.01, 0.01);
  for (std::int64_t j = N / 2; j < N; ++j)
    for (std::int64_t k = 0; k < d; ++k)
      y[j * d + k] += 1000.0f;
  for (auto& t : x)
    t += 1000.0f;
  for (std::int64_t i = 0; i < 20; ++i) {
    // Rows 0-9 exact duplicates of cluster points, rows 10-19 one ulp away in a few
    // coordinates.
    const std::int64_t j = N / 2 + 3 * i;
    for (std::int64_t k = 0; k < d; ++k)
      x[i * d + k] = y[j * d + k];
    if (i >= 10)
      for (std::int64_t k = 0; k < d; k += 37)
        x[i * d + k] = std::nextafter(x[i * d + k], 2000.0f);
  }
  const auto v = uniform<float>(N * R, 26);
  for (const float scale : {1.0f, 0x1p40f, 0x1p-40f}) {
    const std::vector<float> xs = scaled(x, scale), ys = scaled(y, scale);
    const double sigma = 0.1 * double(scale);
    TestArray<float> X(GetParam(), xs), Y(GetParam(), ys), V(GetParam(), v);
    TestArray<float> out(GetParam(), nan_filled<float>(M * R)),
        logp(GetParam(), nan_filled<float>(M));
    GaussMatvecOptions o;
    o.sigma = sigma;
    gauss_matvec(ctx, X.cmatrix(M, d), Y.cmatrix(N, d), V.cmatrix(N, R), out.matrix(M, R), o);
    KdeOptions ko;
    ko.sigma = sigma;
    kde(ctx, X.cmatrix(M, d), Y.cmatrix(N, d), VectorView<const float>{}, logp.vector(), ko);
    ctx.synchronize();
    const auto ref =
        ref_matvec(to_ref(xs, M, d, d), to_ref(ys, N, d, d), to_ref(v, N, R, R), sigma);
    EXPECT_LE(relative_error(out.values(), ref), tolerance<float>(GetParam(), Precision::Exact))
        << "scale " << scale;
    const auto ref_logp = ref_log_kde(to_ref(xs, M, d, d), to_ref(ys, N, d, d), {}, sigma);
    const auto got_logp = logp.values();
    for (std::int64_t i = 0; i < M; ++i)
      EXPECT_NEAR(got_logp[i], ref_logp[i], 1e-5 * std::max(1.0, std::fabs(ref_logp[i])))
          << "scale " << scale << " row " << i;
  }
}

// Random points at large d (the GEMM route on the CPU), also scaled with sigma by
// 2^40 and 2^-40 (sigma far from 1), against brute force: gauss_matvec, and mmd2,
// whose self terms leave the diagonal out.
TEST_P(GaussFamily, LargeDRandomPoints) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const std::int64_t m = 150, n = 170, d = 600, R = 2;
  const auto x = uniform<float>(m * d, 27), y = uniform<float>(n * d, 28, -0.9, 1.1);
  const auto v = uniform<float>(n * R, 29);
  for (const float scale : {1.0f, 0x1p40f, 0x1p-40f}) {
    const std::vector<float> xs = scaled(x, scale), ys = scaled(y, scale);
    const double sigma = sigma_for(d) * double(scale);
    TestArray<float> X(GetParam(), xs), Y(GetParam(), ys), V(GetParam(), v);
    TestArray<float> out(GetParam(), nan_filled<float>(m * R)),
        mmd(GetParam(), nan_filled<float>(1));
    GaussMatvecOptions o;
    o.sigma = sigma;
    gauss_matvec(ctx, X.cmatrix(m, d), Y.cmatrix(n, d), V.cmatrix(n, R), out.matrix(m, R), o);
    ctx.synchronize();
    const auto ref =
        ref_matvec(to_ref(xs, m, d, d), to_ref(ys, n, d, d), to_ref(v, n, R, R), sigma);
    EXPECT_LE(relative_error(out.values(), ref), tolerance<float>(GetParam(), Precision::Exact))
        << "scale " << scale;
    for (const bool unbiased : {false, true}) {
      Mmd2Options mo;
      mo.sigma = sigma;
      mo.unbiased = unbiased;
      mmd2(ctx, X.cmatrix(m, d), Y.cmatrix(n, d), mmd.vector(), mo);
      ctx.synchronize();
      const double want = ref_mmd2(to_ref(xs, m, d, d), to_ref(ys, n, d, d), sigma, unbiased);
      EXPECT_NEAR(mmd.values()[0], want, 1e-5)
          << "scale " << scale << (unbiased ? " unbiased" : " biased");
    }
  }
}

// NaN at large d (on the CPU: the GEMM route hands the pair to the direct form):
// a NaN query coordinate makes that row NaN and leaves the others exact; a NaN
// sample coordinate makes every row NaN.
TEST_P(GaussFamily, LargeDNanCoordinates) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const std::int64_t M = 3, N = 40, d = 600, R = 2;
  const double sigma = sigma_for(d);
  auto x = uniform<float>(M * d, 30);
  const auto y = uniform<float>(N * d, 31), v = uniform<float>(N * R, 32);
  x[1 * d + 17] = std::numeric_limits<float>::quiet_NaN();
  TestArray<float> X(GetParam(), x), Y(GetParam(), y), V(GetParam(), v);
  TestArray<float> out(GetParam(), nan_filled<float>(M * R));
  GaussMatvecOptions o;
  o.sigma = sigma;
  gauss_matvec(ctx, X.cmatrix(M, d), Y.cmatrix(N, d), V.cmatrix(N, R), out.matrix(M, R), o);
  ctx.synchronize();
  const auto got = out.values();
  auto ref = ref_matvec(to_ref(x, M, d, d), to_ref(y, N, d, d), to_ref(v, N, R, R), sigma);
  for (std::int64_t i : {0, 2}) {
    const std::vector<float> row(got.begin() + i * R, got.begin() + (i + 1) * R);
    const std::vector<double> want(ref.begin() + i * R, ref.begin() + (i + 1) * R);
    EXPECT_LE(relative_error(row, want), tolerance<float>(GetParam(), Precision::Exact))
        << "row " << i;
  }
  EXPECT_TRUE(std::isnan(got[1 * R]) && std::isnan(got[1 * R + 1]));

  auto y_nan = y;
  y_nan[5 * d + 300] = std::numeric_limits<float>::quiet_NaN();
  TestArray<float> Yn(GetParam(), y_nan);
  x[1 * d + 17] = 0.5f;
  TestArray<float> Xf(GetParam(), x);
  gauss_matvec(ctx, Xf.cmatrix(M, d), Yn.cmatrix(N, d), V.cmatrix(N, R), out.matrix(M, R), o);
  ctx.synchronize();
  for (const float t : out.values())
    EXPECT_TRUE(std::isnan(t));
}

// Same inputs, same bits, run to run.
TEST_P(GaussFamily, MatvecDeterministic) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const Shape s{300, 2000, 8, 4};
  TestArray<float> X(GetParam(), uniform<float>(s.M * s.d, 31)),
      Y(GetParam(), uniform<float>(s.N * s.d, 32)), V(GetParam(), uniform<float>(s.N * s.R, 33));
  TestArray<float> a(GetParam(), nan_filled<float>(s.M * s.R)),
      b(GetParam(), nan_filled<float>(s.M * s.R));
  GaussMatvecOptions o;
  gauss_matvec(ctx, X.cmatrix(s.M, s.d), Y.cmatrix(s.N, s.d), V.cmatrix(s.N, s.R),
               a.matrix(s.M, s.R), o);
  gauss_matvec(ctx, X.cmatrix(s.M, s.d), Y.cmatrix(s.N, s.d), V.cmatrix(s.N, s.R),
               b.matrix(s.M, s.R), o);
  ctx.synchronize();
  EXPECT_TRUE(bitwise_equal(a.values(), b.values()));
}

// Permuting the sample rows (with V) changes nothing beyond rounding.
TEST_P(GaussFamily, MatvecInvariantToSampleOrder) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const Shape s{50, 400, 4, 2};
  const auto y = uniform<double>(s.N * s.d, 41), v = uniform<double>(s.N * s.R, 42);
  std::vector<double> yp(y.size()), vp(v.size());
  for (std::int64_t j = 0; j < s.N; ++j) {
    const std::int64_t src = (j * 7 + 3) % s.N;  // 7 is coprime with 400
    for (std::int64_t k = 0; k < s.d; ++k)
      yp[j * s.d + k] = y[src * s.d + k];
    for (std::int64_t r = 0; r < s.R; ++r)
      vp[j * s.R + r] = v[src * s.R + r];
  }
  TestArray<double> X(GetParam(), uniform<double>(s.M * s.d, 43)), Y(GetParam(), y),
      V(GetParam(), v), Yp(GetParam(), yp), Vp(GetParam(), vp);
  TestArray<double> a(GetParam(), nan_filled<double>(s.M * s.R)),
      b(GetParam(), nan_filled<double>(s.M * s.R));
  GaussMatvecOptions o;
  gauss_matvec(ctx, X.cmatrix(s.M, s.d), Y.cmatrix(s.N, s.d), V.cmatrix(s.N, s.R),
               a.matrix(s.M, s.R), o);
  gauss_matvec(ctx, X.cmatrix(s.M, s.d), Yp.cmatrix(s.N, s.d), Vp.cmatrix(s.N, s.R),
               b.matrix(s.M, s.R), o);
  ctx.synchronize();
  const auto av = a.values();
  EXPECT_LE(relative_error(b.values(), std::vector<double>(av.begin(), av.end())), 1e-13);
}

// ------------------------------------------------------------------- kde

template <class T>
void check_kde(Backend backend, bool weighted, bool log, std::uint64_t seed, double tol) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend);
  const std::int64_t M = 97, N = 1031, d = 3;
  const double sigma = 0.3;
  auto q = uniform<T>(M * d, seed, -1.5, 1.5);
  // The last queries lie far from every sample point: their densities underflow
  // fp32 (and fp64) but their log-densities are finite.
  for (std::int64_t i = M - 5; i < M; ++i)
    q[i * d] = static_cast<T>(40.0 + 30.0 * (M - i));
  const auto y = uniform<T>(N * d, seed + 1);
  std::vector<T> w;
  if (weighted) {
    w = uniform<T>(N, seed + 2, 0.0, 2.0);
    for (std::int64_t j = 0; j < N; j += 7)
      w[j] = 0;  // zero weights are allowed
  }
  TestArray<T> Q(backend, q), Y(backend, y), W(backend, w), out(backend, nan_filled<T>(M));
  KdeOptions o;
  o.sigma = sigma;
  o.log = log;
  kde(ctx, Q.cmatrix(M, d), Y.cmatrix(N, d), weighted ? W.cvector() : VectorView<const T>{},
      out.vector(), o);
  ctx.synchronize();
  const std::vector<double> wd(w.begin(), w.end());
  auto ref = ref_log_kde(to_ref(q, M, d, d), to_ref(y, N, d, d), wd, sigma);
  const auto got = out.values();
  for (std::int64_t i = 0; i < M; ++i) {
    ASSERT_TRUE(std::isfinite(ref[i]));
    if (log) {
      ASSERT_TRUE(std::isfinite(got[i])) << "row " << i;
      EXPECT_NEAR(got[i], ref[i], tol * std::max(1.0, std::fabs(ref[i]))) << "row " << i;
    } else {
      const double p = std::exp(ref[i]);
      EXPECT_NEAR(got[i], p, tol * std::max(p, 1e-300) + (std::is_same_v<T, float> ? 1e-37 : 0))
          << "row " << i;
    }
  }
}

TEST_P(GaussFamily, KdeLogF64) {
  check_kde<double>(GetParam(), false, true, 51, 1e-10);
}
TEST_P(GaussFamily, KdeLogWeightedF64) {
  check_kde<double>(GetParam(), true, true, 52, 1e-10);
}
TEST_P(GaussFamily, KdeLogF32) {
  check_kde<float>(GetParam(), false, true, 53, 1e-5);
}
TEST_P(GaussFamily, KdeLogWeightedF32) {
  check_kde<float>(GetParam(), true, true, 54, 1e-5);
}
TEST_P(GaussFamily, KdeDensityF64) {
  check_kde<double>(GetParam(), true, false, 55, 1e-10);
}
TEST_P(GaussFamily, KdeDensityF32) {
  check_kde<float>(GetParam(), false, false, 56, 1e-5);
}

// ------------------------------------------------------------------- grad and mean shift

template <class T>
void check_grad(Backend backend, const Shape& s, std::uint64_t seed, double tol) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend);
  const double sigma = sigma_for(s.d);
  const auto x = uniform<T>(s.M * s.d, seed), y = uniform<T>(s.N * s.d, seed + 1),
             v = uniform<T>(s.N * s.R, seed + 2), u = uniform<T>(s.M * s.R, seed + 3);
  TestArray<T> X(backend, x), Y(backend, y), V(backend, v), U(backend, u),
      grad(backend, nan_filled<T>(s.M * s.d));
  GaussGradOptions o;
  o.sigma = sigma;
  gauss_matvec_grad_x(ctx, X.cmatrix(s.M, s.d), Y.cmatrix(s.N, s.d), V.cmatrix(s.N, s.R),
                      U.cmatrix(s.M, s.R), grad.matrix(s.M, s.d), o);
  ctx.synchronize();
  const auto ref = ref_grad_x(to_ref(x, s.M, s.d, s.d), to_ref(y, s.N, s.d, s.d),
                              to_ref(v, s.N, s.R, s.R), to_ref(u, s.M, s.R, s.R), sigma);
  EXPECT_LE(relative_error(grad.values(), ref), tol);
}

TEST_P(GaussFamily, GradMatchesBruteForce) {
  for (const Shape& s : {Shape{1, 1, 1, 1}, Shape{33, 31, 3, 1}, Shape{40, 70, 16, 3},
                         Shape{31, 65, 64, 2}, Shape{9, 40, 257, 1}}) {
    check_grad<double>(GetParam(), s, 61, 1e-12);
    check_grad<float>(GetParam(), s, 62, 1e-4);
  }
}

// Central finite differences of f(X) = <U, K(X, Y) V>, f evaluated by gauss_matvec
// in fp64.
TEST_P(GaussFamily, GradMatchesFiniteDifferences) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const Shape s{5, 17, 3, 2};
  const double sigma = 0.8, h = 1e-5;
  auto x = uniform<double>(s.M * s.d, 71);
  const auto y = uniform<double>(s.N * s.d, 72), v = uniform<double>(s.N * s.R, 73),
             u = uniform<double>(s.M * s.R, 74);
  TestArray<double> Y(GetParam(), y), V(GetParam(), v), U(GetParam(), u);
  auto f = [&](const std::vector<double>& xs) {
    TestArray<double> X(GetParam(), xs), kv(GetParam(), nan_filled<double>(s.M * s.R));
    GaussMatvecOptions o;
    o.sigma = sigma;
    gauss_matvec(ctx, X.cmatrix(s.M, s.d), Y.cmatrix(s.N, s.d), V.cmatrix(s.N, s.R),
                 kv.matrix(s.M, s.R), o);
    ctx.synchronize();
    const auto k = kv.values();
    double total = 0.0;
    for (std::size_t t = 0; t < k.size(); ++t)
      total += u[t] * k[t];
    return total;
  };
  TestArray<double> X(GetParam(), x), grad(GetParam(), nan_filled<double>(s.M * s.d));
  GaussGradOptions o;
  o.sigma = sigma;
  gauss_matvec_grad_x(ctx, X.cmatrix(s.M, s.d), Y.cmatrix(s.N, s.d), V.cmatrix(s.N, s.R),
                      U.cmatrix(s.M, s.R), grad.matrix(s.M, s.d), o);
  ctx.synchronize();
  const auto g = grad.values();
  for (std::size_t t = 0; t < x.size(); ++t) {
    auto xp = x, xm = x;
    xp[t] += h;
    xm[t] -= h;
    const double fd = (f(xp) - f(xm)) / (2 * h);
    EXPECT_NEAR(g[t], fd, 1e-7 * std::max(1.0, std::fabs(fd))) << "coordinate " << t;
  }
}

TEST_P(GaussFamily, MeanShiftStep) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const std::int64_t M = 45, N = 300, d = 4;
  const double sigma = 0.4;
  auto x = uniform<double>(M * d, 81, -1.2, 1.2);
  for (std::int64_t k = 0; k < d; ++k)
    x[(M - 1) * d + k] = 200.0;  // far from every point
  const auto y = uniform<double>(N * d, 82);
  auto w = uniform<double>(N, 83, 0.0, 1.0);
  w[5] = 0.0;
  TestArray<double> X(GetParam(), x), Y(GetParam(), y), W(GetParam(), w),
      out(GetParam(), nan_filled<double>(M * d));
  GaussGradOptions o;
  o.sigma = sigma;
  mean_shift_step(ctx, X.cmatrix(M, d), Y.cmatrix(N, d), W.cvector(), out.matrix(M, d), o);
  ctx.synchronize();
  const auto ref = ref_mean_shift(to_ref(x, M, d, d), to_ref(y, N, d, d), w, sigma);
  EXPECT_LE(relative_error(out.values(), ref), 1e-11);

  // The step is x + sigma^2 grad log p(x): check it against the gradient of the
  // density (U = 1, V = w) divided by the density (matvec with V = w).
  TestArray<double> ones(GetParam(), std::vector<double>(M, 1.0)),
      grad(GetParam(), nan_filled<double>(M * d)), dens(GetParam(), nan_filled<double>(M));
  gauss_matvec_grad_x(ctx, X.cmatrix(M - 1, d), Y.cmatrix(N, d), W.cmatrix(N, 1),
                      ones.cmatrix(M - 1, 1), grad.matrix(M - 1, d), o);
  GaussMatvecOptions mo;
  mo.sigma = sigma;
  gauss_matvec(ctx, X.cmatrix(M - 1, d), Y.cmatrix(N, d), W.cmatrix(N, 1), dens.matrix(M - 1, 1),
               mo);
  ctx.synchronize();
  const auto g = grad.values(), p = dens.values(), ms = out.values();
  for (std::int64_t i = 0; i < M - 1; ++i)
    for (std::int64_t k = 0; k < d; ++k)
      EXPECT_NEAR(ms[i * d + k], x[i * d + k] + sigma * sigma * g[i * d + k] / p[i], 1e-10);
}

// ------------------------------------------------------------------- mmd2

TEST_P(GaussFamily, Mmd2MatchesBruteForce) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  for (bool unbiased : {false, true}) {
    const std::int64_t m = 130, n = 97, d = 5;
    const auto x = uniform<double>(m * d, 91), y = uniform<double>(n * d, 92, -0.8, 1.2);
    TestArray<double> X(GetParam(), x), Y(GetParam(), y), out(GetParam(), nan_filled<double>(1));
    Mmd2Options o;
    o.sigma = 0.9;
    o.unbiased = unbiased;
    mmd2(ctx, X.cmatrix(m, d), Y.cmatrix(n, d), out.vector(), o);
    ctx.synchronize();
    const double ref = ref_mmd2(to_ref(x, m, d, d), to_ref(y, n, d, d), 0.9, unbiased);
    EXPECT_NEAR(out.values()[0], ref, 1e-12) << (unbiased ? "unbiased" : "biased");

    TestArray<float> Xf(GetParam(), std::vector<float>(x.begin(), x.end())),
        Yf(GetParam(), std::vector<float>(y.begin(), y.end())),
        outf(GetParam(), nan_filled<float>(1));
    mmd2(ctx, Xf.cmatrix(m, d), Yf.cmatrix(n, d), outf.vector(), o);
    ctx.synchronize();
    EXPECT_NEAR(outf.values()[0], ref, 1e-5);
  }
}

TEST_P(GaussFamily, Mmd2Statistics) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const std::int64_t n = 600, d = 3;
  const auto a = uniform<float>(n * d, 101), b = uniform<float>(n * d, 102);
  auto shifted = uniform<float>(n * d, 103);
  for (auto& t : shifted)
    t += 0.5f;
  TestArray<float> A(GetParam(), a), B(GetParam(), b), S(GetParam(), shifted),
      out(GetParam(), nan_filled<float>(1));
  Mmd2Options o;
  o.sigma = 0.5;
  auto run = [&](const TestArray<float>& P, const TestArray<float>& Q, bool unbiased) {
    o.unbiased = unbiased;
    mmd2(ctx, P.cmatrix(n, d), Q.cmatrix(n, d), out.vector(), o);
    ctx.synchronize();
    return double(out.values()[0]);
  };
  // A sample against itself: the three terms are computed identically.
  EXPECT_EQ(run(A, A, false), 0.0);
  // Two draws of one distribution: the unbiased estimate is centred on 0 with a
  // standard deviation of order 1/n = 1.7e-3; a 0.5 shift of every coordinate is far out.
  const double same = run(A, B, true), apart = run(A, S, true);
  // (Seen on the CPU: 1.8e-4 and 8.6e-2.)
  EXPECT_LT(std::fabs(same), 5e-3);
  EXPECT_GT(apart, 0.05);
}

INSTANTIATE_TEST_SUITE_P(Cpu, GaussFamily, ::testing::Values(Backend::Cpu), backend_param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, GaussFamily, ::testing::Values(Backend::Cuda), backend_param_name);

// ------------------------------------------------------------------ numerical edges

// Bandwidths and coordinates at the ends of fp32 (1e+-30) and fp64 (1e+-200), far
// queries and NaN input (issue 13, defects 6-8), each against a brute force in long
// double, whose range holds every square and every 1 / sigma^2 below.
class NumericEdges : public ::testing::TestWithParam<Backend> {};

using LD = long double;

template <class T>
LD sq_dist(const std::vector<T>& a, std::int64_t i, const std::vector<T>& b, std::int64_t j,
           std::int64_t d) {
  LD s = 0;
  for (std::int64_t k = 0; k < d; ++k) {
    const LD diff = LD(a[i * d + k]) - LD(b[j * d + k]);
    s += diff * diff;
  }
  return s;
}

// K(X, Y) V, [M x R].
template <class T>
std::vector<double> ld_matvec(const std::vector<T>& x, const std::vector<T>& y,
                              const std::vector<T>& v, std::int64_t d, std::int64_t R, LD sigma) {
  const std::int64_t M = std::int64_t(x.size()) / d, N = std::int64_t(y.size()) / d;
  std::vector<double> out(M * R);
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t r = 0; r < R; ++r) {
      LD acc = 0;
      for (std::int64_t j = 0; j < N; ++j)
        acc += std::exp(-sq_dist(x, i, y, j, d) / (2 * sigma * sigma)) * LD(v[j * R + r]);
      out[i * R + r] = double(acc);
    }
  return out;
}

// log p(q) of the weighted KDE (log-sum-exp in long double).
template <class T>
std::vector<double> ld_log_kde(const std::vector<T>& q, const std::vector<T>& y,
                               const std::vector<T>& w, std::int64_t d, LD sigma) {
  const std::int64_t M = std::int64_t(q.size()) / d, N = std::int64_t(y.size()) / d;
  const LD kPi = 3.14159265358979323846264338327950288L;
  std::vector<double> out(M);
  LD total = 0;
  for (T wj : w)
    total += LD(wj);
  for (std::int64_t i = 0; i < M; ++i) {
    LD m = -INFINITY, sum = 0;
    for (std::int64_t j = 0; j < N; ++j)
      if (w[j] > 0) m = std::max(m, -sq_dist(q, i, y, j, d) / (2 * sigma * sigma));
    for (std::int64_t j = 0; j < N; ++j)
      if (w[j] > 0) sum += LD(w[j]) * std::exp(-sq_dist(q, i, y, j, d) / (2 * sigma * sigma) - m);
    out[i] =
        double(m + std::log(sum / total) - LD(d) / 2 * std::log(2 * kPi) - LD(d) * std::log(sigma));
  }
  return out;
}

// sum_j w_j K_ij y_j / sum_j w_j K_ij, stabilised by the row's largest exponent.
template <class T>
std::vector<double> ld_mean_shift(const std::vector<T>& x, const std::vector<T>& y,
                                  const std::vector<T>& w, std::int64_t d, LD sigma) {
  const std::int64_t M = std::int64_t(x.size()) / d, N = std::int64_t(y.size()) / d;
  std::vector<double> out(M * d);
  for (std::int64_t i = 0; i < M; ++i) {
    LD m = -INFINITY;
    for (std::int64_t j = 0; j < N; ++j)
      if (w[j] > 0) m = std::max(m, -sq_dist(x, i, y, j, d) / (2 * sigma * sigma));
    for (std::int64_t k = 0; k < d; ++k) {
      LD num = 0, den = 0;
      for (std::int64_t j = 0; j < N; ++j) {
        if (!(w[j] > 0)) continue;
        const LD e = LD(w[j]) * std::exp(-sq_dist(x, i, y, j, d) / (2 * sigma * sigma) - m);
        num += e * LD(y[j * d + k]);
        den += e;
      }
      out[i * d + k] = double(num / den);
    }
  }
  return out;
}

// Relative error against the long double value, exact zeros and infinities included.
template <class T>
void expect_close(const std::vector<T>& got, const std::vector<double>& want, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t k = 0; k < got.size(); ++k) {
    const double g = double(got[k]), w = double(static_cast<T>(want[k]));  // rounded to T
    if (std::isinf(w) || w == 0.0)
      EXPECT_EQ(g, w) << what << " [" << k << "]";
    else
      EXPECT_LE(std::fabs(g - w), tol * std::fabs(w))
          << what << " [" << k << "] " << g << " vs " << w;
  }
}

template <class T>
constexpr double edge_tol() {
  return std::is_same_v<T, float> ? 2e-6 : 1e-13;
}

// X = {e, -e}, Y = {e}, sigma = e: K = {1, e^-2}, where c = 1 / (2 e^2) under- or
// overflows and |x - y|^2 = 4 e^2 over- or underflows. And near duplicates one ulp
// apart with sigma of the order of that ulp: the difference stays exact.
template <class T>
void check_matvec_extreme_sigma(Context& ctx, Backend b, T e) {
  for (T sigma : {e, T(1) / e}) {
    const std::vector<T> x = {sigma, -sigma}, y = {sigma}, v = {T(1)};
    TestArray<T> X(b, x), Y(b, y), V(b, v), out(b, nan_filled<T>(2));
    GaussMatvecOptions o;
    o.sigma = double(sigma);
    gauss_matvec(ctx, X.cmatrix(2, 1), Y.cmatrix(1, 1), V.cmatrix(1, 1), out.matrix(2, 1), o);
    ctx.synchronize();
    expect_close(out.values(), ld_matvec(x, y, v, 1, 1, LD(sigma)), edge_tol<T>(),
                 "sigma " + std::to_string(double(sigma)));
  }
  // Points at 1e7 sigma whose spacing is of the order of sigma.
  const T sigma = T(1) / e, base = sigma * T(1e7);
  const T next = std::nextafter(base, T(1) / T(0));
  const std::vector<T> x = {base, next}, y = {base, std::nextafter(next, T(1) / T(0))},
                       v = {T(1), T(1)};
  TestArray<T> X(b, x), Y(b, y), V(b, v), out(b, nan_filled<T>(2));
  GaussMatvecOptions o;
  o.sigma = double(sigma);
  gauss_matvec(ctx, X.cmatrix(2, 1), Y.cmatrix(2, 1), V.cmatrix(2, 1), out.matrix(2, 1), o);
  ctx.synchronize();
  expect_close(out.values(), ld_matvec(x, y, v, 1, 1, LD(sigma)), edge_tol<T>(), "near duplicates");
}

TEST_P(NumericEdges, MatvecWithExtremeSigma) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  check_matvec_extreme_sigma<float>(ctx, GetParam(), 1e30f);
  check_matvec_extreme_sigma<double>(ctx, GetParam(), 1e200);
}

// NaN in a query row makes that row NaN (gauss.hpp) and leaves the others exact.
template <class T>
void check_nan_query(Context& ctx, Backend b) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const std::vector<T> x = {nan, T(0.5), T(0.25), T(0.75)}, y = {T(0), T(1), T(0.5), T(0.75)},
                       v = {T(1), T(2), T(-1), T(0.5)};
  TestArray<T> X(b, x), Y(b, y), V(b, v), out(b, std::vector<T>(4, T(7)));
  GaussMatvecOptions o;
  o.sigma = 0.5;
  gauss_matvec(ctx, X.cmatrix(2, 2), Y.cmatrix(2, 2), V.cmatrix(2, 2), out.matrix(2, 2), o);
  TestArray<T> dens(b, std::vector<T>(2, T(7)));
  KdeOptions ko;
  ko.sigma = 0.5;
  kde(ctx, X.cmatrix(2, 2), Y.cmatrix(2, 2), {}, dens.vector(), ko);
  ctx.synchronize();
  const auto got = out.values();
  EXPECT_TRUE(std::isnan(got[0]) && std::isnan(got[1]));
  const std::vector<T> x1 = {T(0.25), T(0.75)};
  const auto want = ld_matvec(x1, y, v, 2, 2, 0.5L);
  expect_close(std::vector<T>(got.begin() + 2, got.end()), want, edge_tol<T>(), "finite row");
  EXPECT_TRUE(std::isnan(dens.values()[0]));
  EXPECT_FALSE(std::isnan(dens.values()[1]));
}

TEST_P(NumericEdges, NanQueryGivesANanRow) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  check_nan_query<float>(ctx, GetParam());
  check_nan_query<double>(ctx, GetParam());
}

// The KDE's normalisation at sigma = 1e+-200 (fp64) and 1e+-30 (fp32): log(2 pi
// sigma^2) over- or underflows, log(2 pi) / 2 + log sigma does not.
template <class T>
void check_kde_extreme_sigma(Context& ctx, Backend b, T e) {
  for (T sigma : {e, T(1) / e}) {
    const std::vector<T> q = {T(0), sigma, -T(3) * sigma}, y = {T(0)}, w = {T(1)};
    TestArray<T> Q(b, q), Y(b, y), out(b, nan_filled<T>(3));
    KdeOptions o;
    o.sigma = double(sigma);
    kde(ctx, Q.cmatrix(3, 1), Y.cmatrix(1, 1), {}, out.vector(), o);
    ctx.synchronize();
    expect_close(out.values(), ld_log_kde(q, y, w, 1, LD(sigma)), edge_tol<T>(),
                 "sigma " + std::to_string(double(sigma)));
  }
}

TEST_P(NumericEdges, KdeWithExtremeSigma) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  check_kde_extreme_sigma<float>(ctx, GetParam(), 1e30f);
  check_kde_extreme_sigma<double>(ctx, GetParam(), 1e200);
}

// A query at 1e20 in fp64: log p = -5e39, below the old running-maximum floor of
// -3e38; a zero-weight point nearer than every real one must not count.
TEST_P(NumericEdges, KdeFarQueryF64) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const std::vector<double> q = {1e20, 0.5, -1e20, 3e20}, y = {0.0, 9e19}, w = {1.0, 0.0};
  TestArray<double> Q(GetParam(), q), Y(GetParam(), y), W(GetParam(), w),
      out(GetParam(), nan_filled<double>(4));
  KdeOptions o;
  kde(ctx, Q.cmatrix(4, 1), Y.cmatrix(2, 1), W.cvector(), out.vector(), o);
  ctx.synchronize();
  expect_close(out.values(), ld_log_kde(q, y, w, 1, 1.0L), 1e-13, "far queries");
  EXPECT_NEAR(out.values()[0], -5e39, 1e27);
}

// A far query moves to its nearest point(s) of positive weight: fp64 at 1e20 (its
// terms are finite, far below the old floor), fp32 at 1e30 (every squared distance
// overflows fp32: all terms underflow, den = 0).
template <class T>
void check_mean_shift_far(Context& ctx, Backend b, T far) {
  const std::int64_t d = 2;
  // Y: two points equally near the first query (equal weights: at |s| ~ 1e39 a log2
  // weight is below the resolution of s, gauss.hpp), a nearer one of weight 0, two
  // farther ones; the second query is ordinary.
  const std::vector<T> x = {far, T(0), T(0.25), T(0.5)};
  const std::vector<T> y = {far / T(2), far / T(10), far / T(2), -far / T(10), far * T(0.75),
                            T(0),       -far,        T(0),       T(0.5),       T(0.5)};
  const std::vector<T> w = {T(2), T(2), T(0), T(1), T(5)};
  TestArray<T> X(b, x), Y(b, y), W(b, w), out(b, nan_filled<T>(2 * d));
  GaussGradOptions o;
  o.sigma = 1.0;
  mean_shift_step(ctx, X.cmatrix(2, d), Y.cmatrix(5, d), W.cvector(), out.matrix(2, d), o);
  ctx.synchronize();
  const auto want = ld_mean_shift(x, y, w, d, 1.0L);
  EXPECT_EQ(want[0], double(far / T(2)));
  EXPECT_EQ(want[1], 0.0);
  expect_close(out.values(), want, edge_tol<T>(), "far query " + std::to_string(double(far)));
}

TEST_P(NumericEdges, MeanShiftFarQueryMovesToTheNearestPoints) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  check_mean_shift_far<double>(ctx, GetParam(), 1e20);
  check_mean_shift_far<double>(ctx, GetParam(), 1e200);
  check_mean_shift_far<float>(ctx, GetParam(), 1e30f);
  check_mean_shift_far<float>(ctx, GetParam(), 1e20f);
}

// grad = (1 / sigma^2) sum_j K_ij <u_i, v_j> (y_j - x_i) at sigma = 1e-200 (1 / sigma^2
// overflows fp64) and 1e+-30 in fp32: 0 where K underflows or x = y, and the exact
// 6e199 where |y - x| = sigma.
template <class T>
void check_grad_extreme_sigma(Context& ctx, Backend b, T sigma) {
  // One pair per call: |y - x| = sigma (K = e^-1/2), x = y, |y - x| = 1.
  const std::vector<T> xs = {sigma, T(0.5), T(0)}, ys = {T(2) * sigma, T(0.5), T(1)};
  const LD s = LD(sigma);
  for (std::size_t t = 0; t < xs.size(); ++t) {
    TestArray<T> X(b, {xs[t]}), Y(b, {ys[t]}), V(b, {T(1)}), U(b, {T(1)}),
        grad(b, nan_filled<T>(1));
    GaussGradOptions o;
    o.sigma = double(sigma);
    gauss_matvec_grad_x(ctx, X.cmatrix(1, 1), Y.cmatrix(1, 1), V.cmatrix(1, 1), U.cmatrix(1, 1),
                        grad.matrix(1, 1), o);
    ctx.synchronize();
    const LD dx = LD(ys[t]) - LD(xs[t]);
    const double want = double(std::exp(-dx * dx / (2 * s * s)) * dx / (s * s));
    expect_close(grad.values(), {want}, edge_tol<T>(),
                 "sigma " + std::to_string(double(sigma)) + " pair " + std::to_string(t));
  }
}

TEST_P(NumericEdges, GradWithExtremeSigma) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  check_grad_extreme_sigma<double>(ctx, GetParam(), 1e-200);
  check_grad_extreme_sigma<double>(ctx, GetParam(), 1e200);
  check_grad_extreme_sigma<float>(ctx, GetParam(), 1e-30f);
  check_grad_extreme_sigma<float>(ctx, GetParam(), 1e30f);
}

INSTANTIATE_TEST_SUITE_P(Cpu, NumericEdges, ::testing::Values(Backend::Cpu), backend_param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, NumericEdges, ::testing::Values(Backend::Cuda), backend_param_name);

}  // namespace
}  // namespace kfuse::test
