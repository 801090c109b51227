// The contrastive loss family, three ways: brute force in double with the logits
// materialised (in the test), the CPU path, the GPU path. Instances named Cpu/...
// run everywhere, Cuda/... skip without a usable device.
#include <gtest/gtest.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "kfuse/contrastive.hpp"
#include "support/contrastive_inputs.hpp"
#include "support/contrastive_reference.hpp"
#include "support/test_memory.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {
namespace {

struct Shape {
  std::int64_t na, nb, d;
};

std::string shape_name(const Shape& s) {
  return "Na" + std::to_string(s.na) + "_Nb" + std::to_string(s.nb) + "_d" + std::to_string(s.d);
}

// Every N in {1, 2, 63, 64, 65, 1000} and d in {1, 7, 64, 512} appears, square and
// rectangular, on both sides of the GPU's 64-wide tiles. The CPU's reference stays
// small (these tests must take seconds); the GPU adds the large sizes.
const std::vector<Shape> kCpuShapes = {
    {1, 1, 1},
    {2, 2, 7},
    {63, 63, 64},
    {64, 64, 7},
    {65, 65, 1},
    {64, 65, 512},
    {65, 63, 7},
    {1000, 1000, 7},
    {1000, 63, 64},
    {2, 1000, 64},
    {65, 1, 7},
    {13, 17, 3},
    // The CPU path's blockings: d around its 16-float strips, rows around its
    // 64-row backward tasks (plus one block plus one row), 16 = 6 + 6 + 4 rows.
    {129, 130, 17},
    {16, 16, 16},
    {17, 15, 15},
    // 17 row blocks per forward rectangle: more than the CPU packs at a time (16).
    {2100, 70, 9},
};
std::vector<Shape> cuda_shapes() {
  std::vector<Shape> s = kCpuShapes;
  // 20000 rows give more row blocks than an H100 keeps in flight: the persistent
  // (unsplit) backward, its blocks reusing their accumulators; the others split.
  // Emulated, the three largest run smaller (each took minutes): the same paths, as
  // the emulated device also runs with 1 SM.
  const std::vector<Shape> big =
      emulated()
          ? std::vector<Shape>{{1100, 1100, 64}, {1100, 300, 512}, {1000, 4099, 7}, {300, 300, 512},
                               {129, 4099, 1},   {20000, 300, 32}, {300, 20000, 16}}
          : std::vector<Shape>{{4099, 4099, 64},  {4099, 1000, 512}, {1000, 4099, 7},
                               {1000, 1000, 512}, {129, 4099, 1},    {20000, 300, 32},
                               {300, 20000, 16}};
  s.insert(s.end(), big.begin(), big.end());
  return s;
}

// ------------------------------------------------------------------ tolerances

struct Tol {
  double loss, grad;
};

// The CPU path forms its dot products in fp32 (as the GPU's fp32 path does) and
// everything else in double, whatever the input type. Its dot products come from
// the BLAS's sgemm, which sums in an order of its choosing (blocked, not one
// in-order FMA chain); for any order a dot product of length d errs by at most
// gamma_d sum_k |x_k y_k| (gamma_d = d eps32 / (1 - d eps32)), about
// sqrt(d) eps32 |x||y| in practice. dS' is rounded to fp32 (eps32) for the dX and
// dY products, which sum in fp32 within one BLAS call (over at most ~768 columns
// for dX, 512 rows for dY: again at most gamma_k sum |dS'| |y| each) and in double
// across calls. The shape tests' outputs stay below 3e-6 (most below 5e-7); at the
// ends of the scalar ranges (NumericEdges) up to 9e-6, as with the former in-order
// chains; so 1e-5 still catches a wrong index. Only a gradient stored in bf16/f16
// loses more digits. On the GPU: fp32 ~1e-5, TF32 ~1e-3, 16-bit ~1e-2.
template <class T, class G>
Tol tolerances(Backend backend, Precision precision) {
  const bool low_in = !std::is_same_v<T, float>;
  const bool low_out = !std::is_same_v<G, float>;
  Tol t{1e-5, 1e-5};
  if (backend == Backend::Cuda) {
    if (low_in || precision == Precision::BF16)
      t = {1e-2, 1e-2};
    else if (precision == Precision::TF32)
      t = {1e-3, 1e-3};
    else
      t = {1e-5, 2e-5};
  }
  if (low_out) t.grad = std::max(t.grad, 1e-2);
  return t;
}

// ------------------------------------------------------------------ one checked run

RefDirection ref_direction(ClipDirection d) {
  return d == ClipDirection::Both
             ? RefDirection::Both
             : (d == ClipDirection::AtoB ? RefDirection::AtoB : RefDirection::BtoA);
}

struct ClipSetup {
  ClipDirection dir = ClipDirection::Both;
  bool custom_labels = false;
  double eps = 0.0, t = 0.0, bias = 0.0, grad_loss = 1.0;
  Precision precision = Precision::Exact;
};

std::vector<std::int64_t> clip_labels(const ClipSetup& c, const Shape& s, std::uint64_t seed) {
  if (!c.custom_labels) return {};
  if (c.dir == ClipDirection::Both) return permutation(s.na, seed);
  if (c.dir == ClipDirection::AtoB) return random_labels(s.na, 0, s.nb, seed);
  return random_labels(s.nb, 0, s.na, seed);
}

template <class V>
VectorView<V> maybe(bool present, TestArray<std::remove_const_t<V>>& a) {
  return present ? VectorView<V>(a.vector()) : VectorView<V>{};
}

// Forward then backward against the reference: losses, log-sum-exps, dA, dB, dt, db.
template <class T, class G>
void check_clip(Backend backend, const Shape& s, const ClipSetup& c, std::uint64_t seed) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend);
  const std::int64_t lda = s.d + 3, ldg = s.d + 2;
  const auto a = embeddings<T>(s.na, s.d, lda, seed);
  const auto b = embeddings<T>(s.nb, s.d, s.d, seed + 1);
  const auto labels = clip_labels(c, s, seed + 2);
  const bool rows = c.dir != ClipDirection::BtoA, cols = c.dir != ClipDirection::AtoB;
  TestArray<T> A(backend, a), B(backend, b);
  TestArray<std::int64_t> L(backend, labels);
  TestArray<float> loss(backend, nan_filled<float>(1)),
      row_losses(backend, nan_filled<float>(s.na)), lse_rows(backend, nan_filled<float>(s.na)),
      col_losses(backend, nan_filled<float>(s.nb)), lse_cols(backend, nan_filled<float>(s.nb)),
      dt(backend, nan_filled<float>(1)), db(backend, nan_filled<float>(1));
  TestArray<G> dA(backend, std::vector<G>(s.na * ldg, nan_of<G>())),
      dB(backend, std::vector<G>(s.nb * ldg, nan_of<G>()));
  ClipLossOptions o;
  o.direction = c.dir;
  o.logit_scale.value = c.t;
  o.bias.value = c.bias;
  o.label_smoothing = c.eps;
  o.precision = c.precision;
  const auto lab = labels.empty() ? VectorView<const std::int64_t>{} : L.cvector();
  ClipForwardOutputs out{loss.vector(), maybe<float>(rows, row_losses),
                         maybe<float>(cols, col_losses), maybe<float>(rows, lse_rows),
                         maybe<float>(cols, lse_cols)};
  clip_loss_forward(ctx, A.cmatrix(s.na, s.d, lda), B.cmatrix(s.nb, s.d), lab, out, o);
  ContrastiveGradients<G> g{dA.matrix(s.na, s.d, ldg), dB.matrix(s.nb, s.d, ldg), dt.vector(),
                            db.vector()};
  clip_loss_backward(
      ctx, A.cmatrix(s.na, s.d, lda), B.cmatrix(s.nb, s.d), lab,
      ClipSavedStats{maybe<const float>(rows, lse_rows), maybe<const float>(cols, lse_cols)},
      LossScalar{c.grad_loss, {}}, g, o);
  ctx.synchronize();

  const RefResult ref = ref_clip(to_ref(a, s.na, s.d, lda), to_ref(b, s.nb, s.d, s.d), labels, c.t,
                                 c.bias, ref_direction(c.dir), c.eps, c.grad_loss);
  const Tol tol = tolerances<T, G>(backend, c.precision);
  EXPECT_LE(relative_error(loss.values(), std::vector<double>{ref.loss}), tol.loss);
  if (rows) {
    EXPECT_LE(relative_error(row_losses.values(), ref.row_loss), tol.loss);
    EXPECT_LE(relative_error(lse_rows.values(), ref.lse_row), tol.loss);
  }
  if (cols) {
    EXPECT_LE(relative_error(col_losses.values(), ref.col_loss), tol.loss);
    EXPECT_LE(relative_error(lse_cols.values(), ref.lse_col), tol.loss);
  }
  const auto ga = dA.values(), gb = dB.values();
  EXPECT_LE(typed_error(ga, ref.dA, s.na, s.d, ldg), tol.grad);
  EXPECT_LE(typed_error(gb, ref.dB, s.nb, s.d, ldg), tol.grad);
  EXPECT_TRUE(padding_untouched(ga, s.na, s.d, ldg));
  EXPECT_TRUE(padding_untouched(gb, s.nb, s.d, ldg));
  EXPECT_LE(std::fabs(dt.values()[0] - ref.dt), tol.grad * ref.dt_scale + 1e-30)
      << "dt " << dt.values()[0] << " vs " << ref.dt;
  EXPECT_EQ(db.values()[0], 0.0f);  // CLIP does not depend on b
}

struct SiglipSetup {
  bool custom_labels = false;
  double t = 2.302585092994046, bias = -10.0, grad_loss = 1.0;
  Precision precision = Precision::Exact;
  bool fused = false;
};

// Forward then backward (or the fused call) against the reference.
template <class T, class G>
void check_siglip(Backend backend, const Shape& s, const SiglipSetup& c, std::uint64_t seed) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend);
  const std::int64_t ldb = s.d + 1, ldg = s.d + 2;
  const auto a = embeddings<T>(s.na, s.d, s.d, seed);
  const auto b = embeddings<T>(s.nb, s.d, ldb, seed + 1);
  // Some rows without a positive (-1) among custom labels.
  const auto labels =
      c.custom_labels ? random_labels(s.na, -1, s.nb, seed + 2) : std::vector<std::int64_t>{};
  TestArray<T> A(backend, a), B(backend, b);
  TestArray<std::int64_t> L(backend, labels);
  TestArray<float> loss(backend, nan_filled<float>(1)),
      row_losses(backend, nan_filled<float>(s.na)), dt(backend, nan_filled<float>(1)),
      db(backend, nan_filled<float>(1));
  TestArray<G> dA(backend, std::vector<G>(s.na * ldg, nan_of<G>())),
      dB(backend, std::vector<G>(s.nb * ldg, nan_of<G>()));
  SiglipLossOptions o;
  o.logit_scale.value = c.t;
  o.bias.value = c.bias;
  o.precision = c.precision;
  const auto lab = labels.empty() ? VectorView<const std::int64_t>{} : L.cvector();
  ContrastiveGradients<G> g{dA.matrix(s.na, s.d, ldg), dB.matrix(s.nb, s.d, ldg), dt.vector(),
                            db.vector()};
  const auto Av = A.cmatrix(s.na, s.d), Bv = B.cmatrix(s.nb, s.d, ldb);
  if (c.fused) {
    siglip_loss_forward_backward(ctx, Av, Bv, lab, loss.vector(), row_losses.vector(),
                                 LossScalar{c.grad_loss, {}}, g, o);
  } else {
    siglip_loss_forward(ctx, Av, Bv, lab, loss.vector(), row_losses.vector(), o);
    siglip_loss_backward(ctx, Av, Bv, lab, LossScalar{c.grad_loss, {}}, g, o);
  }
  ctx.synchronize();

  const RefResult ref = ref_siglip(to_ref(a, s.na, s.d, s.d), to_ref(b, s.nb, s.d, ldb), labels,
                                   c.t, c.bias, c.grad_loss);
  const Tol tol = tolerances<T, G>(backend, c.precision);
  EXPECT_LE(relative_error(loss.values(), std::vector<double>{ref.loss}), tol.loss);
  EXPECT_LE(relative_error(row_losses.values(), ref.row_loss), tol.loss);
  const auto ga = dA.values(), gb = dB.values();
  EXPECT_LE(typed_error(ga, ref.dA, s.na, s.d, ldg), tol.grad);
  EXPECT_LE(typed_error(gb, ref.dB, s.nb, s.d, ldg), tol.grad);
  EXPECT_TRUE(padding_untouched(ga, s.na, s.d, ldg));
  EXPECT_TRUE(padding_untouched(gb, s.nb, s.d, ldg));
  EXPECT_LE(std::fabs(dt.values()[0] - ref.dt), tol.grad * ref.dt_scale + 1e-30);
  EXPECT_LE(std::fabs(db.values()[0] - ref.db), tol.grad * ref.db_scale + 1e-30);
}

// ------------------------------------------------------------------ against brute force, per shape

using ShapeParam = std::tuple<Backend, Shape>;

class ContrastiveShapes : public ::testing::TestWithParam<ShapeParam> {
 protected:
  Backend backend() const { return std::get<0>(GetParam()); }
  Shape shape() const { return std::get<1>(GetParam()); }
};

std::string param_name(const ::testing::TestParamInfo<ShapeParam>& info) {
  return shape_name(std::get<1>(info.param));
}

TEST_P(ContrastiveShapes, ClipBoth) {
  const Shape s = shape();
  if (s.na != s.nb) GTEST_SKIP() << "direction Both needs Na == Nb";
  ClipSetup c;
  c.t = std::log(10.0);
  check_clip<float, float>(backend(), s, c, 100);
  // Permuted pairs, label smoothing, a bias, an upstream gradient.
  c.custom_labels = true;
  c.eps = 0.1;
  c.bias = 0.25;
  c.grad_loss = 0.75;
  check_clip<float, float>(backend(), s, c, 110);
}

TEST_P(ContrastiveShapes, ClipAtoB) {
  ClipSetup c;
  c.dir = ClipDirection::AtoB;
  c.custom_labels = true;
  c.eps = 0.05;
  c.t = std::log(20.0);
  c.bias = -0.5;
  c.grad_loss = 1.5;
  check_clip<float, float>(backend(), shape(), c, 120);
}

TEST_P(ContrastiveShapes, ClipBtoA) {
  ClipSetup c;
  c.dir = ClipDirection::BtoA;
  c.custom_labels = true;
  c.eps = 0.2;
  c.t = 0.0;
  check_clip<float, float>(backend(), shape(), c, 130);
}

TEST_P(ContrastiveShapes, Siglip) {
  SiglipSetup c;
  c.custom_labels = shape().na != shape().nb || shape().na % 2 == 1;
  check_siglip<float, float>(backend(), shape(), c, 140);
}

TEST_P(ContrastiveShapes, SiglipFused) {
  SiglipSetup c;
  c.custom_labels = true;
  c.fused = true;
  c.bias = -2.0;
  c.grad_loss = 2.0;
  check_siglip<float, float>(backend(), shape(), c, 150);
}

INSTANTIATE_TEST_SUITE_P(Cpu, ContrastiveShapes,
                         ::testing::Combine(::testing::Values(Backend::Cpu),
                                            ::testing::ValuesIn(kCpuShapes)),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, ContrastiveShapes,
                         ::testing::Combine(::testing::Values(Backend::Cuda),
                                            ::testing::ValuesIn(cuda_shapes())),
                         param_name);

// ------------------------------------------------------------------ precisions

class Contrastive : public ::testing::TestWithParam<Backend> {
 protected:
  Backend backend() const { return GetParam(); }
};

std::string backend_param_name(const ::testing::TestParamInfo<Backend>& info) {
  return backend_label(info.param);
}

// 16-bit inputs (tensor cores on a GPU), gradients in the input type or fp32;
// fp32 inputs with TF32 or BF16 tensor cores. The reference sees the rounded inputs.
TEST_P(Contrastive, ClipPrecisions) {
  ClipSetup c;
  c.custom_labels = true;
  c.eps = 0.1;
  c.t = std::log(10.0);
  for (Shape s : {Shape{130, 130, 96}, Shape{63, 63, 64}}) {
    check_clip<bf16, bf16>(backend(), s, c, 200);
    check_clip<bf16, float>(backend(), s, c, 201);
    check_clip<f16, f16>(backend(), s, c, 202);
    check_clip<f16, float>(backend(), s, c, 203);
    ClipSetup p = c;
    p.precision = Precision::TF32;
    check_clip<float, float>(backend(), s, p, 204);
    p.precision = Precision::BF16;
    check_clip<float, float>(backend(), s, p, 205);
  }
  c.dir = ClipDirection::AtoB;
  check_clip<bf16, bf16>(backend(), Shape{65, 200, 64}, c, 206);
  check_clip<f16, float>(backend(), Shape{200, 65, 33}, c, 207);
}

TEST_P(Contrastive, SiglipPrecisions) {
  SiglipSetup c;
  c.custom_labels = true;
  for (Shape s : {Shape{130, 130, 96}, Shape{63, 200, 64}}) {
    check_siglip<bf16, bf16>(backend(), s, c, 210);
    check_siglip<bf16, float>(backend(), s, c, 211);
    check_siglip<f16, f16>(backend(), s, c, 212);
    SiglipSetup p = c;
    p.fused = true;
    check_siglip<f16, float>(backend(), s, p, 213);
    p.precision = Precision::TF32;
    check_siglip<float, float>(backend(), s, p, 214);
    p.precision = Precision::BF16;
    check_siglip<float, float>(backend(), s, p, 215);
  }
}

// ------------------------------------------------------------------ finite differences

// The loss as the library computes it (fp32 inputs), for central differences.
struct LossFn {
  Backend backend;
  Shape s;
  std::vector<std::int64_t> labels;
  bool siglip;
  ClipDirection dir;
  double eps;

  double operator()(Context& ctx, const std::vector<float>& a, const std::vector<float>& b,
                    double t, double bias) const {
    TestArray<float> A(backend, a), B(backend, b), loss(backend, nan_filled<float>(1));
    TestArray<std::int64_t> L(backend, labels);
    const auto lab = labels.empty() ? VectorView<const std::int64_t>{} : L.cvector();
    if (siglip) {
      SiglipLossOptions o;
      o.logit_scale.value = t;
      o.bias.value = bias;
      siglip_loss_forward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), lab, loss.vector(), {},
                          o);
    } else {
      ClipLossOptions o;
      o.direction = dir;
      o.logit_scale.value = t;
      o.bias.value = bias;
      o.label_smoothing = eps;
      ClipForwardOutputs out;
      out.loss = loss.vector();
      clip_loss_forward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), lab, out, o);
    }
    ctx.synchronize();
    return loss.values()[0];
  }
};

// Central differences of the library's own forward against its backward, for
// every entry of A and B and for t and b. h = 5e-3: truncation error h^2 f''' / 6
// ~ 1e-5 and rounding error ~ 1e-7 |L| / h ~ 1e-5 against gradients of ~1e-2..1.
void check_finite_differences(Backend backend, const LossFn& f, double t, double bias) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend);
  const Shape s = f.s;
  const auto a = embeddings<float>(s.na, s.d, s.d, 300), b = embeddings<float>(s.nb, s.d, s.d, 301);
  TestArray<float> A(backend, a), B(backend, b), L0(backend, nan_filled<float>(s.na)),
      L1(backend, nan_filled<float>(s.nb)), loss(backend, nan_filled<float>(1));
  TestArray<float> dA(backend, nan_filled<float>(s.na * s.d)),
      dB(backend, nan_filled<float>(s.nb * s.d)), dt(backend, nan_filled<float>(1)),
      db(backend, nan_filled<float>(1));
  TestArray<std::int64_t> L(backend, f.labels);
  const auto lab = f.labels.empty() ? VectorView<const std::int64_t>{} : L.cvector();
  ContrastiveGradients<float> g{dA.matrix(s.na, s.d), dB.matrix(s.nb, s.d), dt.vector(),
                                db.vector()};
  if (f.siglip) {
    SiglipLossOptions o;
    o.logit_scale.value = t;
    o.bias.value = bias;
    siglip_loss_backward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), lab, LossScalar{1.0, {}},
                         g, o);
  } else {
    ClipLossOptions o;
    o.direction = f.dir;
    o.logit_scale.value = t;
    o.bias.value = bias;
    o.label_smoothing = f.eps;
    const bool rows = f.dir != ClipDirection::BtoA, cols = f.dir != ClipDirection::AtoB;
    ClipForwardOutputs out;
    out.loss = loss.vector();
    if (rows) out.lse_rows = L0.vector();
    if (cols) out.lse_cols = L1.vector();
    clip_loss_forward_backward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), lab, out,
                               LossScalar{1.0, {}}, g, o);
  }
  ctx.synchronize();

  const double h = 5e-3;
  std::vector<double> fd_a(a.size()), fd_b(b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    auto plus = a, minus = a;
    plus[k] += float(h);
    minus[k] -= float(h);
    // The step actually taken in fp32.
    fd_a[k] = (f(ctx, plus, b, t, bias) - f(ctx, minus, b, t, bias)) / double(plus[k] - minus[k]);
  }
  for (std::size_t k = 0; k < b.size(); ++k) {
    auto plus = b, minus = b;
    plus[k] += float(h);
    minus[k] -= float(h);
    fd_b[k] = (f(ctx, a, plus, t, bias) - f(ctx, a, minus, t, bias)) / double(plus[k] - minus[k]);
  }
  const double fd_t = (f(ctx, a, b, t + h, bias) - f(ctx, a, b, t - h, bias)) / (2 * h);
  const double fd_b0 = (f(ctx, a, b, t, bias + h) - f(ctx, a, b, t, bias - h)) / (2 * h);
  EXPECT_LE(relative_error(dA.values(), fd_a), 5e-3);
  EXPECT_LE(relative_error(dB.values(), fd_b), 5e-3);
  EXPECT_NEAR(dt.values()[0], fd_t, 5e-3 * std::max(1.0, std::fabs(fd_t)));
  EXPECT_NEAR(db.values()[0], fd_b0, 5e-3 * std::max(1.0, std::fabs(fd_b0)));
}

TEST_P(Contrastive, ClipGradientsMatchFiniteDifferences) {
  const Shape sq{5, 5, 3}, rect{5, 7, 4};
  check_finite_differences(backend(),
                           {backend(), sq, permutation(5, 7), false, ClipDirection::Both, 0.1},
                           std::log(3.0), 0.3);
  check_finite_differences(
      backend(), {backend(), rect, random_labels(5, 0, 7, 8), false, ClipDirection::AtoB, 0.0},
      std::log(5.0), -0.2);
  check_finite_differences(
      backend(), {backend(), rect, random_labels(7, 0, 5, 9), false, ClipDirection::BtoA, 0.3}, 1.0,
      0.0);
}

TEST_P(Contrastive, SiglipGradientsMatchFiniteDifferences) {
  check_finite_differences(backend(),
                           {backend(), Shape{6, 4, 3}, random_labels(6, -1, 4, 10), true, {}, 0.0},
                           1.2, -1.5);
  check_finite_differences(backend(), {backend(), Shape{5, 5, 8}, {}, true, {}, 0.0}, 2.0, -3.0);
}

// ------------------------------------------------------------------ stability

// tau = 100 with nearly parallel embeddings (every logit ~ 100), all-identical
// rows, and a row of zeros: finite results, loss within 1e-5 of the reference.
template <class F>
void for_each_hard_input(std::int64_t n, std::int64_t d, F&& check) {
  std::mt19937_64 gen(400);
  std::normal_distribution<double> normal;
  std::vector<double> u(d);
  double norm = 0.0;
  for (auto& x : u) {
    x = normal(gen);
    norm += x * x;
  }
  for (auto& x : u)
    x /= std::sqrt(norm);
  std::vector<float> parallel_a(n * d), parallel_b(n * d), same_a(n * d), same_b(n * d);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k) {
      parallel_a[i * d + k] = float(u[k] + 1e-3 * normal(gen));
      parallel_b[i * d + k] = float(u[k] + 1e-3 * normal(gen));
      same_a[i * d + k] = float(u[k]);
      same_b[i * d + k] = float(-0.5 * u[k]);
    }
  auto zero_row = parallel_a;
  for (std::int64_t k = 0; k < d; ++k)
    zero_row[3 * d + k] = 0.0f;
  check("nearly parallel", parallel_a, parallel_b);
  check("identical rows", same_a, same_b);
  check("a row of zeros", zero_row, parallel_b);
}

TEST_P(Contrastive, ClipIsStableAtTau100) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  const std::int64_t n = 70, d = 64;
  for_each_hard_input(
      n, d, [&](const char* what, const std::vector<float>& a, const std::vector<float>& b) {
        TestArray<float> A(backend(), a), B(backend(), b), loss(backend(), nan_filled<float>(1)),
            rl(backend(), nan_filled<float>(n)), cl(backend(), nan_filled<float>(n)),
            lr(backend(), nan_filled<float>(n)), lc(backend(), nan_filled<float>(n)),
            dA(backend(), nan_filled<float>(n * d)), dB(backend(), nan_filled<float>(n * d)),
            dt(backend(), nan_filled<float>(1));
        ClipLossOptions o;
        o.logit_scale.value = std::log(100.0);
        o.label_smoothing = 0.1;
        clip_loss_forward_backward(
            ctx, A.cmatrix(n, d), B.cmatrix(n, d), {},
            ClipForwardOutputs{loss.vector(), rl.vector(), cl.vector(), lr.vector(), lc.vector()},
            LossScalar{1.0, {}},
            ContrastiveGradients<float>{dA.matrix(n, d), dB.matrix(n, d), dt.vector(), {}}, o);
        ctx.synchronize();
        const RefResult ref = ref_clip(to_ref(a, n, d, d), to_ref(b, n, d, d), {}, std::log(100.0),
                                       0.0, RefDirection::Both, 0.1);
        EXPECT_LE(relative_error(loss.values(), std::vector<double>{ref.loss}), 1e-5) << what;
        EXPECT_LE(relative_error(rl.values(), ref.row_loss), 1e-5) << what;
        EXPECT_LE(relative_error(lc.values(), ref.lse_col), 1e-5) << what;
        // Gradients: finite, and as accurate as fp32 logits of size 100 allow, relative
        // to the size of their terms (identical rows make them exactly 0).
        EXPECT_LE(absolute_error(dA.values(), ref.dA), 1e-4 * ref.dA_scale) << what;
        EXPECT_LE(absolute_error(dB.values(), ref.dB), 1e-4 * ref.dB_scale) << what;
        EXPECT_TRUE(std::isfinite(dt.values()[0])) << what;
      });
}

TEST_P(Contrastive, SiglipIsStableAtTau100) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  const std::int64_t n = 70, d = 64;
  for_each_hard_input(
      n, d, [&](const char* what, const std::vector<float>& a, const std::vector<float>& b) {
        TestArray<float> A(backend(), a), B(backend(), b), loss(backend(), nan_filled<float>(1)),
            rl(backend(), nan_filled<float>(n)), dA(backend(), nan_filled<float>(n * d)),
            dB(backend(), nan_filled<float>(n * d)), dt(backend(), nan_filled<float>(1)),
            db(backend(), nan_filled<float>(1));
        SiglipLossOptions o;
        o.logit_scale.value = std::log(100.0);
        siglip_loss_forward_backward(
            ctx, A.cmatrix(n, d), B.cmatrix(n, d), {}, loss.vector(), rl.vector(),
            LossScalar{1.0, {}},
            ContrastiveGradients<float>{dA.matrix(n, d), dB.matrix(n, d), dt.vector(), db.vector()},
            o);
        ctx.synchronize();
        const RefResult ref =
            ref_siglip(to_ref(a, n, d, d), to_ref(b, n, d, d), {}, std::log(100.0), -10.0);
        EXPECT_LE(relative_error(loss.values(), std::vector<double>{ref.loss}), 1e-5) << what;
        EXPECT_LE(relative_error(rl.values(), ref.row_loss), 1e-5) << what;
        EXPECT_LE(absolute_error(dA.values(), ref.dA), 1e-4 * ref.dA_scale) << what;
        EXPECT_LE(absolute_error(dB.values(), ref.dB), 1e-4 * ref.dB_scale) << what;
        EXPECT_TRUE(std::isfinite(dt.values()[0]) && std::isfinite(db.values()[0])) << what;
      });
}

// ------------------------------------------------------------------ determinism and options

// Every output of a CLIP forward + backward and a fused SigLIP call, one vector
// per output.
struct AllOutputs {
  std::vector<std::vector<float>> clip, siglip;
};

AllOutputs run_all(Context& ctx, Backend backend, const Shape& s, bool deterministic,
                   std::uint64_t seed, Precision precision = Precision::Exact) {
  const auto a = embeddings<float>(s.na, s.d, s.d, seed),
             b = embeddings<float>(s.nb, s.d, s.d, seed + 1);
  TestArray<float> A(backend, a), B(backend, b);
  TestArray<std::int64_t> L(backend, permutation(s.na, seed + 2));
  auto vec = [&](std::int64_t n) { return TestArray<float>(backend, nan_filled<float>(n)); };
  auto loss = vec(1), rl = vec(s.na), cl = vec(s.nb), lr = vec(s.na), lc = vec(s.nb),
       dA = vec(s.na * s.d), dB = vec(s.nb * s.d), dt = vec(1), db = vec(1);
  ClipLossOptions o;
  o.logit_scale.value = std::log(30.0);
  o.label_smoothing = 0.1;
  o.deterministic = deterministic;
  o.precision = precision;
  ContrastiveGradients<float> g{dA.matrix(s.na, s.d), dB.matrix(s.nb, s.d), dt.vector(),
                                db.vector()};
  clip_loss_forward_backward(
      ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), L.cvector(),
      ClipForwardOutputs{loss.vector(), rl.vector(), cl.vector(), lr.vector(), lc.vector()},
      LossScalar{1.0, {}}, g, o);
  ctx.synchronize();
  AllOutputs out;
  for (const auto* t : {&loss, &rl, &cl, &lr, &lc, &dA, &dB, &dt})
    out.clip.push_back(t->values());
  SiglipLossOptions so;
  so.deterministic = deterministic;
  so.precision = precision;
  siglip_loss_forward_backward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), L.cvector(),
                               loss.vector(), rl.vector(), LossScalar{1.0, {}}, g, so);
  ctx.synchronize();
  for (const auto* t : {&loss, &rl, &dA, &dB, &dt, &db})
    out.siglip.push_back(t->values());
  return out;
}

// Same inputs, same bits, on sizes that use the GPU's column splits and its
// persistent blocks alike. (Emulated, the GPU sizes would take hours: the smaller
// ones reach the same code paths with the emulated device's SM count of 1 or 132.)
TEST_P(Contrastive, DeterministicRunToRun) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  std::vector<Shape> shapes = {{130, 130, 64}};
  if (backend() == Backend::Cuda)
    shapes = emulated()
                 ? std::vector<Shape>{{300, 300, 64}, {1100, 1100, 32}}
                 : std::vector<Shape>{{1000, 1000, 64}, {4099, 4099, 96}, {20000, 20000, 32}};
  for (const Shape& s : shapes) {
    const AllOutputs first = run_all(ctx, backend(), s, true, 500);
    const AllOutputs second = run_all(ctx, backend(), s, true, 500);
    for (std::size_t k = 0; k < first.clip.size(); ++k)
      EXPECT_TRUE(bitwise_equal(first.clip[k], second.clip[k])) << shape_name(s) << " output " << k;
    for (std::size_t k = 0; k < first.siglip.size(); ++k)
      EXPECT_TRUE(bitwise_equal(first.siglip[k], second.siglip[k]))
          << shape_name(s) << " output " << k;
  }
}

// The CPU's results do not depend on the number of OpenMP threads: its plans and
// the order of its sums are fixed, and its BLAS calls run inside parallel regions,
// on one thread each. 1, 2 and 3 threads give the same bits, on a size with
// several row groups and logit pieces.
TEST_P(Contrastive, CpuSameBitsWhateverTheThreadCount) {
  if (backend() != Backend::Cpu) GTEST_SKIP() << "the CPU path's threads";
#ifndef _OPENMP
  GTEST_SKIP() << "built without OpenMP";
#else
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  const Shape s{700, 700, 40};
  const int threads_before = omp_get_max_threads();
  std::vector<AllOutputs> runs;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    runs.push_back(run_all(ctx, backend(), s, true, 800));
  }
  omp_set_num_threads(threads_before);
  for (std::size_t r = 1; r < runs.size(); ++r) {
    for (std::size_t k = 0; k < runs[0].clip.size(); ++k)
      EXPECT_TRUE(bitwise_equal(runs[0].clip[k], runs[r].clip[k])) << "clip output " << k;
    for (std::size_t k = 0; k < runs[0].siglip.size(); ++k)
      EXPECT_TRUE(bitwise_equal(runs[0].siglip[k], runs[r].siglip[k])) << "siglip output " << k;
  }
#endif
}

// On the CPU, clip_loss_forward_backward (whose backward reuses the forward's dot
// products) and clip_loss_forward then clip_loss_backward (whose backward forms
// them again) give the same bits: both passes form every logit through identical
// BLAS calls, which is what lets a backward meet the forward's log-sum-exps at
// tau = 2^16 (NumericEdges below). Both orientations, several row groups and
// column pieces.
TEST_P(Contrastive, CpuFusedAndSeparateClipGiveTheSameBits) {
  if (backend() != Backend::Cpu) GTEST_SKIP() << "bitwise only on the CPU";
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  for (ClipDirection dir : {ClipDirection::Both, ClipDirection::BtoA}) {
    const Shape s{600, 600, 48};
    const auto a = embeddings<float>(s.na, s.d, s.d, 810),
               b = embeddings<float>(s.nb, s.d, s.d, 811);
    TestArray<float> A(backend(), a), B(backend(), b);
    ClipLossOptions o;
    o.logit_scale.value = 11.090354888959125;  // tau = 2^16
    o.direction = dir;
    auto run = [&](bool fused) {
      auto vec = [&](std::int64_t n) { return TestArray<float>(backend(), nan_filled<float>(n)); };
      auto loss = vec(1), lr = vec(s.na), lc = vec(s.nb), dA = vec(s.na * s.d),
           dB = vec(s.nb * s.d), dt = vec(1);
      const bool rows = dir != ClipDirection::BtoA;
      ClipForwardOutputs out{
          loss.vector(), {}, {}, rows ? lr.vector() : VectorView<float>{}, lc.vector()};
      ContrastiveGradients<float> g{dA.matrix(s.na, s.d), dB.matrix(s.nb, s.d), dt.vector(), {}};
      if (fused) {
        clip_loss_forward_backward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), {}, out,
                                   LossScalar{1.0, {}}, g, o);
      } else {
        clip_loss_forward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), {}, out, o);
        clip_loss_backward(
            ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), {},
            ClipSavedStats{rows ? lr.cvector() : VectorView<const float>{}, lc.cvector()},
            LossScalar{1.0, {}}, g, o);
      }
      ctx.synchronize();
      return std::vector<std::vector<float>>{loss.values(), dA.values(), dB.values(), dt.values()};
    };
    const auto fused = run(true), separate = run(false);
    for (std::size_t k = 0; k < fused.size(); ++k)
      EXPECT_TRUE(bitwise_equal(fused[k], separate[k]))
          << "direction " << int(dir) << " output " << k;
  }
}

// deterministic = false (fp32 atomics for dB on a GPU; ignored on the CPU) still
// gives the right answer, in every precision (each has its own dY scatter on a GPU:
// the tensor-core ones through WMMA fragments, atomicAdd and __syncwarp).
TEST_P(Contrastive, NonDeterministicModeIsAccurate) {
  std::vector<Shape> shapes = {{130, 130, 96}};
  if (backend() == Backend::Cuda)
    shapes = emulated() ? std::vector<Shape>{{130, 130, 96}, {700, 700, 64}}
                        : std::vector<Shape>{{130, 130, 96}, {1000, 1000, 64}, {17000, 17000, 16}};
  for (Precision precision : {Precision::Exact, Precision::TF32, Precision::BF16})
    for (Shape s : shapes) {
      SCOPED_TRACE(precision_name(precision));
      KFUSE_CONTEXT_OR_SKIP(ctx, backend());
      const AllOutputs det = run_all(ctx, backend(), s, true, 600, precision);
      const AllOutputs fast = run_all(ctx, backend(), s, false, 600, precision);
      // Output by output (dB, the one the atomics compute, is output 6 and 3).
      for (std::size_t k = 0; k < det.clip.size(); ++k) {
        const std::vector<double> ref(det.clip[k].begin(), det.clip[k].end());
        EXPECT_LE(relative_error(fast.clip[k], ref), 1e-5) << shape_name(s) << " output " << k;
        if (backend() == Backend::Cpu) {
          EXPECT_TRUE(bitwise_equal(det.clip[k], fast.clip[k]));
        }
      }
      for (std::size_t k = 0; k < det.siglip.size(); ++k) {
        const std::vector<double> ref(det.siglip[k].begin(), det.siglip[k].end());
        EXPECT_LE(relative_error(fast.siglip[k], ref), 1e-5) << shape_name(s) << " output " << k;
      }
    }
}

// t, b and the upstream gradient read from the context's memory give the same bits
// as the same (fp32-representable) host values.
TEST_P(Contrastive, ScalarsInContextMemory) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  const Shape s{70, 90, 33};
  const auto a = embeddings<float>(s.na, s.d, s.d, 700), b = embeddings<float>(s.nb, s.d, s.d, 701);
  TestArray<float> A(backend(), a), B(backend(), b), t(backend(), {1.5f}),
      bias(backend(), {-0.25f}), dl(backend(), {0.5f});
  auto run = [&](bool in_memory) {
    TestArray<float> loss(backend(), nan_filled<float>(1)), lr(backend(), nan_filled<float>(s.na)),
        dA(backend(), nan_filled<float>(s.na * s.d)), dB(backend(), nan_filled<float>(s.nb * s.d)),
        dt(backend(), nan_filled<float>(1)), db(backend(), nan_filled<float>(1));
    ClipLossOptions o;
    o.direction = ClipDirection::AtoB;
    o.logit_scale.value = 1.5;
    o.bias.value = -0.25;
    LossScalar grad{0.5, {}};
    if (in_memory) {
      o.logit_scale = LossScalar{99.0, t.cvector()};  // the value is ignored
      o.bias = LossScalar{99.0, bias.cvector()};
      grad = LossScalar{99.0, dl.cvector()};
    }
    ClipForwardOutputs out;
    out.loss = loss.vector();
    out.lse_rows = lr.vector();
    TestArray<std::int64_t> L(backend(), random_labels(s.na, 0, s.nb, 702));
    ContrastiveGradients<float> g{dA.matrix(s.na, s.d), dB.matrix(s.nb, s.d), dt.vector(),
                                  db.vector()};
    clip_loss_forward_backward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), L.cvector(), out,
                               grad, g, o);
    ctx.synchronize();
    std::vector<float> all;
    for (const auto* x : {&loss, &lr, &dA, &dB, &dt, &db}) {
      const auto v = x->values();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  EXPECT_TRUE(bitwise_equal(run(false), run(true)));
}

// Only one gradient asked for (a frozen tower): the others are not computed, and
// what is computed has the bits of a full call.
TEST_P(Contrastive, PartialGradientsMatchAFullCall) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  const Shape s{70, 70, 40};
  const auto a = embeddings<float>(s.na, s.d, s.d, 800), b = embeddings<float>(s.nb, s.d, s.d, 801);
  TestArray<float> A(backend(), a), B(backend(), b), lr(backend(), nan_filled<float>(s.na)),
      lc(backend(), nan_filled<float>(s.nb)), loss(backend(), nan_filled<float>(1));
  ClipLossOptions o;
  o.logit_scale.value = 2.0;
  clip_loss_forward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), {},
                    ClipForwardOutputs{loss.vector(), {}, {}, lr.vector(), lc.vector()}, o);
  const ClipSavedStats saved{lr.cvector(), lc.cvector()};
  auto vec = [&](std::int64_t n) { return TestArray<float>(backend(), nan_filled<float>(n)); };
  auto full_a = vec(s.na * s.d), full_b = vec(s.nb * s.d), full_t = vec(1);
  auto only_a = vec(s.na * s.d), only_b = vec(s.nb * s.d), only_t = vec(1);
  auto backward = [&](ContrastiveGradients<float> g) {
    clip_loss_backward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), {}, saved, {1.0, {}}, g, o);
  };
  backward({full_a.matrix(s.na, s.d), full_b.matrix(s.nb, s.d), full_t.vector(), {}});
  backward({only_a.matrix(s.na, s.d), {}, {}, {}});
  backward({{}, only_b.matrix(s.nb, s.d), {}, {}});
  backward({{}, {}, only_t.vector(), {}});
  ctx.synchronize();
  EXPECT_TRUE(bitwise_equal(full_a.values(), only_a.values()));
  EXPECT_TRUE(bitwise_equal(full_b.values(), only_b.values()));
  EXPECT_TRUE(bitwise_equal(full_t.values(), only_t.values()));
}

// A workspace in the options gives the bits of an allocated one; its size is what
// *_workspace_bytes reports.
TEST_P(Contrastive, CallerWorkspace) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  const Shape s{100, 80, 24};
  const std::size_t bytes =
      clip_loss_workspace_bytes(ctx, s.na, s.nb, s.d, ContrastivePass::ForwardBackward, {});
  ASSERT_GT(bytes, 0u);
  // 256-byte aligned storage in the context's memory.
  TestArray<double> storage(backend(), std::vector<double>(bytes / sizeof(double) + 64, 0.0));
  auto* base = reinterpret_cast<unsigned char*>(storage.data());
  base += (256 - reinterpret_cast<std::uintptr_t>(base) % 256) % 256;
  const auto a = embeddings<float>(s.na, s.d, s.d, 900), b = embeddings<float>(s.nb, s.d, s.d, 901);
  TestArray<float> A(backend(), a), B(backend(), b);
  TestArray<std::int64_t> L(backend(), random_labels(s.na, 0, s.nb, 902));
  auto run = [&](ContrastiveWorkspace w) {
    TestArray<float> loss(backend(), nan_filled<float>(1)),
        dA(backend(), nan_filled<float>(s.na * s.d)), dB(backend(), nan_filled<float>(s.nb * s.d));
    ClipLossOptions o;
    o.direction = ClipDirection::AtoB;
    o.workspace = w;
    ClipForwardOutputs out;
    out.loss = loss.vector();
    clip_loss_forward_backward(
        ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), L.cvector(), out, {1.0, {}},
        ContrastiveGradients<float>{dA.matrix(s.na, s.d), dB.matrix(s.nb, s.d)}, o);
    ctx.synchronize();
    auto all = loss.values();
    for (const auto* x : {&dA, &dB}) {
      const auto v = x->values();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  EXPECT_TRUE(bitwise_equal(run({}), run({base, bytes})));
}

// The fused CLIP call is the forward then the backward: the same bits.
TEST_P(Contrastive, ClipForwardBackwardIsForwardThenBackward) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  const Shape s{90, 90, 50};
  const auto a = embeddings<float>(s.na, s.d, s.d, 1000),
             b = embeddings<float>(s.nb, s.d, s.d, 1001);
  TestArray<float> A(backend(), a), B(backend(), b);
  auto run = [&](bool fused) {
    auto vec = [&](std::int64_t n) { return TestArray<float>(backend(), nan_filled<float>(n)); };
    auto loss = vec(1), lr = vec(s.na), lc = vec(s.nb), dA = vec(s.na * s.d), dB = vec(s.nb * s.d),
         dt = vec(1);
    ClipLossOptions o;
    o.logit_scale.value = 2.5;
    o.label_smoothing = 0.05;
    const ClipForwardOutputs out{loss.vector(), {}, {}, lr.vector(), lc.vector()};
    const ContrastiveGradients<float> g{
        dA.matrix(s.na, s.d), dB.matrix(s.nb, s.d), dt.vector(), {}};
    if (fused) {
      clip_loss_forward_backward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), {}, out,
                                 {1.0, {}}, g, o);
    } else {
      clip_loss_forward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), {}, out, o);
      clip_loss_backward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), {},
                         ClipSavedStats{lr.cvector(), lc.cvector()}, {1.0, {}}, g, o);
    }
    ctx.synchronize();
    std::vector<float> all;
    for (const auto* x : {&loss, &lr, &lc, &dA, &dB, &dt}) {
      const auto v = x->values();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  EXPECT_TRUE(bitwise_equal(run(false), run(true)));
}

// Device labels left unchecked (check_device_labels = false) that are out of range
// poison what they touch with NaN instead of reading past an array. Host labels
// are always checked, so this is a GPU property.
TEST_P(Contrastive, UncheckedBadDeviceLabelsGiveNaN) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  if (backend() != Backend::Cuda) GTEST_SKIP() << "host labels are always checked";
  const Shape s{70, 50, 16};
  auto labels = random_labels(s.na, 0, s.nb, 1100);
  labels[5] = s.nb;  // out of range
  TestArray<float> A(backend(), embeddings<float>(s.na, s.d, s.d, 1101)),
      B(backend(), embeddings<float>(s.nb, s.d, s.d, 1102)), loss(backend(), nan_filled<float>(1)),
      rl(backend(), nan_filled<float>(s.na)), lr(backend(), nan_filled<float>(s.na)),
      dA(backend(), nan_filled<float>(s.na * s.d));
  TestArray<std::int64_t> L(backend(), labels);
  ClipLossOptions o;
  o.direction = ClipDirection::AtoB;
  o.check_device_labels = false;
  clip_loss_forward_backward(ctx, A.cmatrix(s.na, s.d), B.cmatrix(s.nb, s.d), L.cvector(),
                             ClipForwardOutputs{loss.vector(), rl.vector(), {}, lr.vector(), {}},
                             1.0, ContrastiveGradients<float>{dA.matrix(s.na, s.d)}, o);
  ctx.synchronize();
  EXPECT_TRUE(std::isnan(loss.values()[0]));
  const auto rows = rl.values();
  const auto grad = dA.values();
  EXPECT_TRUE(std::isnan(rows[5]));
  EXPECT_TRUE(std::isfinite(rows[4]));
  EXPECT_TRUE(std::isnan(grad[5 * s.d]));
  EXPECT_TRUE(std::isfinite(grad[4 * s.d]));
}

// 64k pairs never need the 16 GiB of their logits: the workspace of a full CLIP
// step at d = 1024 stays under 1% of it.
TEST_P(Contrastive, WorkspaceOfSixtyFourThousandPairs) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  const double logits_bytes = 65536.0 * 65536.0 * 4.0;
  for (bool deterministic : {true, false}) {
    ClipLossOptions o;
    o.deterministic = deterministic;
    const double clip = double(
        clip_loss_workspace_bytes(ctx, 65536, 65536, 1024, ContrastivePass::ForwardBackward, o));
    SiglipLossOptions so;
    so.deterministic = deterministic;
    const double siglip =
        double(siglip_loss_workspace_bytes(ctx, 65536, 65536, 1024, ContrastivePass::Backward, so));
    // deterministic = false adds dB's fp32 accumulator on a GPU (Nb x d floats).
    const double extra = deterministic ? 0.0 : 65536.0 * 1024.0 * 4.0;
    EXPECT_LT(clip, 0.01 * logits_bytes + extra);
    EXPECT_LT(siglip, 0.01 * logits_bytes + extra);
  }
}

// ------------------------------------------------------------------ numerical edges

// The ends of the accepted scalar ranges (contrastive.hpp, "Accepted ranges";
// issue 13, defect 9), each against the double-precision reference: the smallest
// temperature (t = 16 ln 2, tau = 65536: the loss is nearly a hard max and its
// logits' differences still carry information), the largest (t = -87: every
// logit is b to fp32 precision, dt tiny but with fp32's relative precision), and
// SigLIP with a bias of +-2^16. The rejection just beyond each end is in
// test_contrastive_errors.cpp.
class NumericEdges : public ::testing::TestWithParam<Backend> {};

constexpr double kMaxLogScale = 11.090354888959125;  // 16 ln 2

TEST_P(NumericEdges, ClipAtTheEndsOfTheLogScaleRange) {
  for (double t : {kMaxLogScale, -87.0}) {
    SCOPED_TRACE("t " + std::to_string(t));
    ClipSetup c;
    c.t = t;
    check_clip<float, float>(GetParam(), Shape{37, 37, 24}, c, 900);
    c.dir = ClipDirection::AtoB;
    c.custom_labels = true;
    c.eps = 0.1;
    check_clip<float, float>(GetParam(), Shape{37, 20, 24}, c, 910);
  }
}

TEST_P(NumericEdges, SiglipAtTheEndsOfTheLogScaleAndBiasRanges) {
  for (double t : {kMaxLogScale, -87.0})
    for (double bias : {-65536.0, 0.0, 65536.0}) {
      SCOPED_TRACE("t " + std::to_string(t) + " bias " + std::to_string(bias));
      SiglipSetup c;
      c.t = t;
      c.bias = bias;
      c.custom_labels = true;
      check_siglip<float, float>(GetParam(), Shape{37, 29, 24}, c, 920);
    }
}

INSTANTIATE_TEST_SUITE_P(Cpu, NumericEdges, ::testing::Values(Backend::Cpu), backend_param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, NumericEdges, ::testing::Values(Backend::Cuda), backend_param_name);

INSTANTIATE_TEST_SUITE_P(Cpu, Contrastive, ::testing::Values(Backend::Cpu), backend_param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, Contrastive, ::testing::Values(Backend::Cuda), backend_param_name);

}  // namespace
}  // namespace kfuse::test
