// The fusion family's backwards (rp_fuse_backward, kron_fuse_backward), per backend
// (Cpu/ everywhere, Cuda/ on a GPU or the emulated device): each gradient against
// central finite differences of a forward written here in double from the
// definitions in fuse.hpp (feature maps, U from the public rp_projection_matrix, an
// Rbf side's frequencies from the documented Philox stream), zero rows, untouched
// padding, and bad arguments rejected with nothing written.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/fuse/math.hpp"  // the documented draws of an Rbf side's frequencies
#include "kfuse/fuse.hpp"
#include "support/fuse_reference.hpp"
#include "support/test_memory.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {
namespace {

class FuseBackward : public ::testing::TestWithParam<Backend> {
 protected:
  Backend b() const { return GetParam(); }
};

template <class T>
std::vector<T> values_of(std::size_t n, std::uint64_t seed) {
  const std::vector<double> f = uniform<double>(n, seed);
  std::vector<T> out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = from_double<T>(f[i]);
  return out;
}

// ------------------------------------------------------------------ the reference

// A side's feature map of one row in double: Linear, Cosine, or Rbf's random
// Fourier features with the frequencies of Philox stream "SF" + slot.
std::vector<double> feature_of(const std::vector<double>& x, const FuseSide& side,
                               std::uint64_t seed, int slot) {
  if (side.kernel != SideKernel::Rbf) return feature(x, side.kernel);
  const std::int64_t r = side.rff_features;
  std::vector<double> f(static_cast<std::size_t>(2 * r));
  for (std::int64_t c = 0; c < r; ++c) {
    double a = 0.0;
    for (std::size_t k = 0; k < x.size(); ++k)
      a += x[k] / side.sigma *
           detail::random_entry(seed, detail::kStreamSideFourier + static_cast<std::uint32_t>(slot),
                                k, static_cast<std::uint64_t>(c), detail::kDrawGaussian);
    f[c] = std::cos(a) / std::sqrt(double(r));
    f[r + c] = std::sin(a) / std::sqrt(double(r));
  }
  return f;
}

// One fused row from the inputs' rows (the forward in double).
using RowForward = std::function<std::vector<double>(const std::vector<std::vector<double>>&)>;

// dL/d rows[j] for L = <dz, forward(rows)> by central differences (the forward is
// smooth in every entry: O(h^2) truncation, ~1e-10 here, and ~1e-16 / h roundoff).
std::vector<double> finite_difference(const RowForward& forward,
                                      std::vector<std::vector<double>> rows,
                                      const std::vector<double>& dz, std::size_t j) {
  std::vector<double> g(rows[j].size());
  for (std::size_t k = 0; k < g.size(); ++k) {
    const double x = rows[j][k], h = 1e-5 * std::max(1.0, std::fabs(x));
    rows[j][k] = x + h;
    const double up = dot(dz, forward(rows));
    rows[j][k] = x - h;
    const double down = dot(dz, forward(rows));
    rows[j][k] = x;
    g[k] = (up - down) / (2 * h);
  }
  return g;
}

// The inputs, grad_out and the gradients of one call, in the backend's memory:
// inputs with ld = d + 1, grads with ld = d + 2 and NaN padding.
template <class T, class G>
struct Problem {
  std::int64_t n;
  std::vector<std::int64_t> dims;
  std::vector<TestArray<T>> inputs;
  std::vector<TestArray<G>> grads;
  TestArray<G> dz;
  std::int64_t width, ldz;
  Problem(Backend b, std::int64_t rows, const std::vector<std::int64_t>& d, std::int64_t w,
          std::uint64_t seed)
      : n(rows),
        dims(d),
        dz(b, values_of<G>(static_cast<std::size_t>(rows * (w + 3)), seed)),
        width(w),
        ldz(w + 3) {
    for (std::size_t j = 0; j < d.size(); ++j) {
      inputs.emplace_back(b,
                          values_of<T>(static_cast<std::size_t>(rows * (d[j] + 1)), seed + j + 1));
      grads.emplace_back(b, nan_filled<G>(static_cast<std::size_t>(rows * (d[j] + 2))));
    }
  }
  std::vector<MatrixView<const T>> in() const {
    std::vector<MatrixView<const T>> v;
    for (std::size_t j = 0; j < dims.size(); ++j)
      v.push_back(inputs[j].cmatrix(n, dims[j], dims[j] + 1));
    return v;
  }
  std::vector<MatrixView<G>> out() {
    std::vector<MatrixView<G>> v;
    for (std::size_t j = 0; j < dims.size(); ++j)
      v.push_back(grads[j].matrix(n, dims[j], dims[j] + 2));
    return v;
  }
  MatrixView<const G> grad_out() const { return dz.cmatrix(n, width, ldz); }
  std::vector<std::vector<double>> rows(std::int64_t i) const {
    std::vector<std::vector<double>> r;
    for (std::size_t j = 0; j < dims.size(); ++j)
      r.push_back(ref_from(inputs[j].values(), n, dims[j], dims[j] + 1).row(i));
    return r;
  }
  std::vector<double> dz_row(std::int64_t i) const {
    return ref_from(dz.values(), n, width, ldz).row(i);
  }

  // Every gradient against the finite differences of `forward`, within `tol`
  // (normwise over each gradient), padding untouched.
  void check(const RowForward& forward, double tol) const {
    for (std::size_t j = 0; j < dims.size(); ++j) {
      SCOPED_TRACE("input " + std::to_string(j));
      std::vector<double> ref;
      for (std::int64_t i = 0; i < n; ++i) {
        const auto g = finite_difference(forward, rows(i), dz_row(i), j);
        ref.insert(ref.end(), g.begin(), g.end());
      }
      const std::vector<G> got = grads[j].values();
      EXPECT_LE(relative_error(got, ref, n, dims[j], dims[j] + 2, dims[j]), tol);
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t p = dims[j]; p < dims[j] + 2; ++p)
          ASSERT_TRUE(std::isnan(as_double(got[i * (dims[j] + 2) + p]))) << "padding written";
    }
  }
};

std::vector<FuseSide> sides_of(const std::vector<SideKernel>& kinds) {
  std::vector<FuseSide> s(kinds.size());
  for (std::size_t j = 0; j < kinds.size(); ++j) {
    s[j].kernel = kinds[j];
    if (kinds[j] == SideKernel::Rbf) {
      s[j].sigma = 0.75 + 0.25 * double(j);
      s[j].rff_features = 5 + static_cast<std::int64_t>(j);
    }
  }
  return s;
}

// ------------------------------------------------------------------ rp_fuse_backward

struct RpCase {
  std::int64_t n, l;
  std::vector<std::int64_t> dims;
  std::vector<SideKernel> kinds;
};

const std::vector<RpCase> kRpCases = {
    {1, 1, {1, 1}, {SideKernel::Linear, SideKernel::Linear}},
    {3, 7, {4, 5}, {SideKernel::Linear, SideKernel::Linear}},
    {4, 16, {6, 3}, {SideKernel::Cosine, SideKernel::Linear}},
    {3, 9, {3, 4, 5}, {SideKernel::Linear, SideKernel::Cosine, SideKernel::Cosine}},
    {2, 8, {3, 5}, {SideKernel::Rbf, SideKernel::Cosine}},
    {2,
     6,
     {2, 3, 2, 4},
     {SideKernel::Cosine, SideKernel::Linear, SideKernel::Rbf, SideKernel::Linear}},
};

// U_j as rp_fuse uses it, read back through the public rp_projection_matrix.
RefMatrix projection_of(Context& ctx, Backend b, int j, std::int64_t rows, std::int64_t l,
                        const RpFuseOptions& o) {
  TestArray<float> u(b, nan_filled<float>(static_cast<std::size_t>(rows * l)));
  rp_projection_matrix(ctx, j, u.matrix(rows, l), o);
  ctx.synchronize();
  return ref_from(u.values(), rows, l, l);
}

template <class T>
void check_rp_backward(Backend b, const RpCase& c, RpDistribution dist, RpScaling scaling,
                       std::uint64_t seed, Precision precision = Precision::Exact) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b);
  Problem<T, float> p(b, c.n, c.dims, c.l, seed);
  RpFuseOptions o;
  o.sides = sides_of(c.kinds);
  o.seed = seed * 7919;
  o.distribution = dist;
  o.scaling = scaling;
  o.precision = precision;
  rp_fuse_backward(ctx, p.in(), p.grad_out(), p.out(), o);
  ctx.synchronize();
  std::vector<RefMatrix> U;
  for (std::size_t j = 0; j < c.dims.size(); ++j)
    U.push_back(
        projection_of(ctx, b, static_cast<int>(j), fuse_side_width(o.sides[j], c.dims[j]), c.l, o));
  const double s = 1.0 / std::sqrt(double(c.l));
  const RowForward forward = [&](const std::vector<std::vector<double>>& rows) {
    std::vector<double> z(static_cast<std::size_t>(c.l), scaling == RpScaling::Unbiased ? s : 1.0);
    for (std::size_t j = 0; j < rows.size(); ++j) {
      const std::vector<double> v = feature_of(rows[j], o.sides[j], o.seed, static_cast<int>(j));
      for (std::int64_t col = 0; col < c.l; ++col) {
        double f = 0.0;
        for (std::size_t k = 0; k < v.size(); ++k)
          f += v[k] * U[j](static_cast<std::int64_t>(k), col);
        z[col] *= scaling == RpScaling::AuthorsCompat ? f * s : f;
      }
    }
    return z;
  };
  // Exact: fp32 products and sums of at most a few dozen terms, ~1e-6 relative (the
  // forward's tests' tolerance against double, 1e-5). A GPU under TF32 / BF16 rounds
  // the operands of its products, each product within tolerance() of test_util.hpp;
  // a gradient passes through m of them (the m - 1 other factors, then U_j^T): m
  // times that (on the CPU, tolerance() is the exact one).
  p.check(forward, tolerance<float>(b, precision) *
                       (precision == Precision::Exact ? 1.0 : double(c.dims.size())));
}

TEST_P(FuseBackward, RpMatchesFiniteDifferences) {
  for (const RpCase& c : kRpCases) {
    SCOPED_TRACE("n " + std::to_string(c.n) + ", l " + std::to_string(c.l) + ", " +
                 std::to_string(c.dims.size()) + " inputs");
    check_rp_backward<float>(b(), c, RpDistribution::Uniform, RpScaling::Unbiased, 1);
    check_rp_backward<float>(b(), c, RpDistribution::Gaussian, RpScaling::AuthorsCompat, 2);
    check_rp_backward<bf16>(b(), c, RpDistribution::Rademacher, RpScaling::Unbiased, 3);
    check_rp_backward<f16>(b(), c, RpDistribution::Uniform, RpScaling::AuthorsCompat, 4);
  }
}

// Under a TF32 / BF16 permission the CPU path multiplies through the BLAS's fp32
// sgemm: the same fp32 accumulation in another order, so the exact tolerance. The
// GPU's tensor cores round the operands (to TF32, or BF16 in the forward's factors).
TEST_P(FuseBackward, RpPermittedPrecisionsMatchFiniteDifferences) {
  for (const RpCase& c : kRpCases) {
    check_rp_backward<float>(b(), c, RpDistribution::Uniform, RpScaling::Unbiased, 5,
                             Precision::TF32);
    check_rp_backward<bf16>(b(), c, RpDistribution::Gaussian, RpScaling::Unbiased, 6,
                            Precision::BF16);
  }
}

// A zero row of a cosine side (which the forward maps to zero) has a zero gradient,
// and so does a row with a NaN; the other rows are unaffected.
TEST_P(FuseBackward, CosineZeroAndNaNRowsGetZeroGradients) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n = 3, d0 = 4, d1 = 3, l = 6;
  std::vector<float> a = values_of<float>(n * d0, 11);
  for (std::int64_t k = 0; k < d0; ++k) {
    a[0 * d0 + k] = 0.0f;
    a[2 * d0 + k] = k == 1 ? std::numeric_limits<float>::quiet_NaN() : 1.0f;
  }
  TestArray<float> A(b(), a), B(b(), values_of<float>(n * d1, 12)),
      dz(b(), values_of<float>(n * l, 13)), gA(b(), nan_filled<float>(n * d0)),
      gB(b(), nan_filled<float>(n * d1));
  RpFuseOptions o;
  o.sides = sides_of({SideKernel::Cosine, SideKernel::Linear});
  rp_fuse_backward(ctx, {A.cmatrix(n, d0), B.cmatrix(n, d1)}, dz.cmatrix(n, l),
                   {gA.matrix(n, d0), gB.matrix(n, d1)}, o);
  ctx.synchronize();
  const std::vector<float> ga = gA.values();
  for (std::int64_t k = 0; k < d0; ++k) {
    EXPECT_EQ(ga[0 * d0 + k], 0.0f) << "zero row, column " << k;
    EXPECT_EQ(ga[2 * d0 + k], 0.0f) << "NaN row, column " << k;
    EXPECT_TRUE(std::isfinite(ga[1 * d0 + k]));
  }
  const std::vector<float> gb = gB.values();
  for (std::int64_t k = 0; k < d1; ++k)
    EXPECT_EQ(gb[0 * d1 + k], 0.0f) << "B's gradient through a zero factor";
}

// ------------------------------------------------------------------ kron_fuse_backward

struct KronCase {
  std::int64_t n;
  std::vector<std::int64_t> dims;
  std::vector<SideKernel> kinds;
};

const std::vector<KronCase> kKronCases = {
    {1, {1, 1}, {SideKernel::Linear, SideKernel::Linear}},
    {3, {4, 5}, {SideKernel::Linear, SideKernel::Cosine}},
    {4, {6, 3}, {SideKernel::Cosine, SideKernel::Cosine}},
    {2, {3, 2, 4}, {SideKernel::Linear, SideKernel::Cosine, SideKernel::Linear}},
    {2,
     {2, 3, 2, 3},
     {SideKernel::Cosine, SideKernel::Linear, SideKernel::Linear, SideKernel::Cosine}},
};

template <class T, class G>
void check_kron_backward(Backend b, const KronCase& c, std::uint64_t seed, double tol) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b);
  KronFuseOptions o;
  o.sides = sides_of(c.kinds);
  o.seed = seed * 31;
  std::int64_t width = 1;
  for (std::size_t j = 0; j < c.dims.size(); ++j)
    width *= fuse_side_width(o.sides[j], c.dims[j]);
  Problem<T, G> p(b, c.n, c.dims, width, seed);
  kron_fuse_backward(ctx, p.in(), p.grad_out(), p.out(), o);
  ctx.synchronize();
  const RowForward forward = [&](const std::vector<std::vector<double>>& rows) {
    std::vector<double> z = feature_of(rows[0], o.sides[0], o.seed, 0);
    for (std::size_t j = 1; j < rows.size(); ++j)
      z = kron(z, feature_of(rows[j], o.sides[j], o.seed, static_cast<int>(j)));
    return z;
  };
  p.check(forward, tol);
}

TEST_P(FuseBackward, KronMatchesFiniteDifferences) {
  for (const KronCase& c : kKronCases) {
    SCOPED_TRACE("n " + std::to_string(c.n) + ", " + std::to_string(c.dims.size()) + " inputs");
    check_kron_backward<float, float>(b(), c, 1, 1e-5);
    // fp64: the finite differences' own error (~1e-10) bounds the check.
    check_kron_backward<double, double>(b(), c, 2, 1e-8);
    check_kron_backward<bf16, float>(b(), c, 3, 1e-5);
    check_kron_backward<f16, float>(b(), c, 4, 1e-5);
  }
}

TEST_P(FuseBackward, KronThroughAnRbfSideInFp32) {
  check_kron_backward<float, float>(b(), {2, {3, 2}, {SideKernel::Rbf, SideKernel::Cosine}}, 5,
                                    1e-5);
  check_kron_backward<bf16, float>(b(), {3, {2, 4}, {SideKernel::Linear, SideKernel::Rbf}}, 6,
                                   1e-5);
}

// ------------------------------------------------------------------ bad arguments

template <class V, class F>
V with(V view, F change) {
  change(view);
  return view;
}

TEST_P(FuseBackward, RpRejectsBadArgumentsWritingNothing) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n = 4, d0 = 3, d1 = 5, l = 6;
  TestArray<float> A(b(), values_of<float>(n * d0, 1)), B(b(), values_of<float>(n * d1, 2)),
      dz(b(), values_of<float>(n * l, 3)),
      grads(b(), nan_filled<float>(static_cast<std::size_t>(n * (d0 + d1))));
  const std::vector<float> before = grads.values();
  const auto a = A.cmatrix(n, d0), bm = B.cmatrix(n, d1);
  const auto g0 = grads.matrix(n, d0);
  const MatrixView<float> g1{grads.data() + n * d0, n, d1, d1, g0.memory};
  const auto z = dz.cmatrix(n, l);
  auto reject = [&](std::vector<MatrixView<const float>> in, MatrixView<const float> dz_,
                    std::vector<MatrixView<float>> out, RpFuseOptions opt, Status s,
                    const char* needle) {
    expect_rejected([&] { rp_fuse_backward(ctx, in, dz_, out, opt); }, s, needle, ctx, grads,
                    before);
  };
  const RpFuseOptions opt;
  reject({a}, z, {g0}, opt, Status::InvalidArgument, "'inputs'");
  reject({a, bm}, z, {g0}, opt, Status::InvalidArgument, "'grads'");
  reject({a, bm}, z, {g0, g1, g1}, opt, Status::InvalidArgument, "'grads'");
  reject({a, bm}, z, {g0, with(g1, [](auto& m) { m.cols -= 1; })}, opt, Status::ShapeMismatch,
         "'grads[1]'");
  reject({a, bm}, z, {with(g0, [](auto& m) { m.rows -= 1; }), g1}, opt, Status::ShapeMismatch,
         "'grads[0]'");
  reject({a, bm}, z, {g0, with(g1, [](auto& m) { m.data = nullptr; })}, opt,
         Status::InvalidArgument, "'grads[1]'");
  reject({a, bm}, dz.cmatrix(n - 1, l), {g0, g1}, opt, Status::ShapeMismatch, "'grad_out'");
  reject({a, bm}, dz.cmatrix(n, 0), {g0, g1}, opt, Status::ShapeMismatch, "'grad_out'");
  // Overlaps: a gradient with another, with an input, with grad_out.
  reject({a, bm}, z, {g0, with(g1, [&](auto& m) { m.data = g0.data + 1; })}, opt,
         Status::InvalidArgument, "'grads[1]'");
  reject({grads.cmatrix(n, d0), bm}, z, {g0, g1}, opt, Status::InvalidArgument, "'grads[0]'");
  reject({a, bm}, MatrixView<const float>{grads.data(), n, l, l, g0.memory}, {g0, g1}, opt,
         Status::InvalidArgument, "'grads[0]'");
  // Options.
  RpFuseOptions bad = opt;
  bad.sides = sides_of({SideKernel::Rbf, SideKernel::Linear});
  bad.sides[0].sigma = std::numeric_limits<double>::quiet_NaN();
  reject({a, bm}, z, {g0, g1}, bad, Status::InvalidArgument, "sigma");
  bad = opt;
  bad.sides = sides_of({SideKernel::Rbf, SideKernel::Linear});
  bad.sides[0].rff_features = 0;
  reject({a, bm}, z, {g0, g1}, bad, Status::InvalidArgument, "rff_features");
  bad = opt;
  bad.sides = sides_of({SideKernel::Linear});
  reject({a, bm}, z, {g0, g1}, bad, Status::InvalidArgument, "'sides'");
  bad = opt;
  bad.distribution = static_cast<RpDistribution>(7);
  reject({a, bm}, z, {g0, g1}, bad, Status::InvalidArgument, "distribution");
  bad = opt;
  bad.scaling = static_cast<RpScaling>(-1);
  reject({a, bm}, z, {g0, g1}, bad, Status::InvalidArgument, "scaling");
}

TEST_P(FuseBackward, KronRejectsBadArgumentsWritingNothing) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const std::int64_t n = 4, d0 = 3, d1 = 2;
  TestArray<double> A(b(), values_of<double>(n * d0, 1)), B(b(), values_of<double>(n * d1, 2)),
      dz(b(), values_of<double>(n * d0 * d1, 3)),
      grads(b(), nan_filled<double>(static_cast<std::size_t>(n * (d0 + d1))));
  const std::vector<double> before = grads.values();
  const auto a = A.cmatrix(n, d0), bm = B.cmatrix(n, d1);
  const auto g0 = grads.matrix(n, d0);
  const MatrixView<double> g1{grads.data() + n * d0, n, d1, d1, g0.memory};
  const auto z = dz.cmatrix(n, d0 * d1);
  auto reject = [&](std::vector<MatrixView<const double>> in, MatrixView<const double> dz_,
                    std::vector<MatrixView<double>> out, KronFuseOptions opt, Status s,
                    const char* needle) {
    expect_rejected([&] { kron_fuse_backward(ctx, in, dz_, out, opt); }, s, needle, ctx, grads,
                    before);
  };
  const KronFuseOptions opt;
  reject({a, bm}, z, {g0}, opt, Status::InvalidArgument, "'grads'");
  reject({a, bm}, dz.cmatrix(n, d0 * d1 - 1), {g0, g1}, opt, Status::ShapeMismatch, "'grad_out'");
  reject({a, bm}, z, {g0, with(g1, [](auto& m) { m.cols += 1; })}, opt, Status::ShapeMismatch,
         "'grads[1]'");
  reject({a, bm}, z, {g0, with(g1, [&](auto& m) { m.data = g0.data; })}, opt,
         Status::InvalidArgument, "'grads[1]'");
  reject({a, bm}, MatrixView<const double>{grads.data(), n, d0 * d1, d0 * d1, g0.memory}, {g0, g1},
         opt, Status::InvalidArgument, "'grads[0]'");
  KronFuseOptions bad = opt;
  bad.sides = sides_of({SideKernel::Linear, SideKernel::Rbf});
  reject({a, bm}, dz.cmatrix(n, d0 * 2 * bad.sides[1].rff_features), {g0, g1}, bad,
         Status::Unsupported, "sides[1]");
  bad.sides[1].sigma = -1.0;
  reject({a, bm}, z, {g0, g1}, bad, Status::InvalidArgument, "sigma");
}

INSTANTIATE_TEST_SUITE_P(Cpu, FuseBackward, ::testing::Values(Backend::Cpu),
                         [](const auto& info) { return backend_label(info.param); });
INSTANTIATE_TEST_SUITE_P(Cuda, FuseBackward, ::testing::Values(Backend::Cuda),
                         [](const auto& info) { return backend_label(info.param); });

}  // namespace
}  // namespace kfuse::test
