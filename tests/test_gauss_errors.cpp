// Bad input to every Gaussian-family function, argument by argument: a
// kfuse::Error with the right status and a message naming the argument, and the
// output left exactly as it was.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kfuse/gauss.hpp"
#include "support/test_memory.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {
namespace {

constexpr std::int64_t M = 6, N = 9, d = 3, R = 2;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

class GaussErrors : public ::testing::TestWithParam<Backend> {
 protected:
  Backend b() const { return GetParam(); }
  Memory wrong_memory() const { return b() == Backend::Cuda ? Memory::Host : Memory::Device; }
};

TEST_P(GaussErrors, Matvec) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<float> X(b(), uniform<float>(M * d, 1)), Y(b(), uniform<float>(N * d, 2)),
      V(b(), uniform<float>(N * R, 3)), out(b(), nan_filled<float>(M * R + 8));
  const auto before = out.values();
  const auto x = X.cmatrix(M, d), y = Y.cmatrix(N, d), v = V.cmatrix(N, R);
  const auto o = out.matrix(M, R);
  GaussMatvecOptions opt;
  auto call = [&](MatrixView<const float> X_, MatrixView<const float> Y_,
                  MatrixView<const float> V_, MatrixView<float> O_, GaussMatvecOptions op) {
    return [=, &ctx] { gauss_matvec(ctx, X_, Y_, V_, O_, op); };
  };
  auto reject = [&](std::function<void()> f, Status s, const char* needle) {
    expect_rejected(f, s, needle, ctx, out, before);
  };
  auto with = [](auto view, auto change) {
    change(view);
    return view;
  };
  // null data
  reject(call(with(x, [](auto& m) { m.data = nullptr; }), y, v, o, opt), Status::InvalidArgument,
         "'X'");
  reject(call(x, with(y, [](auto& m) { m.data = nullptr; }), v, o, opt), Status::InvalidArgument,
         "'Y'");
  reject(call(x, y, with(v, [](auto& m) { m.data = nullptr; }), o, opt), Status::InvalidArgument,
         "'V'");
  reject(call(x, y, v, with(o, [](auto& m) { m.data = nullptr; }), opt), Status::InvalidArgument,
         "'out'");
  // ld < cols, negative extents
  reject(call(with(x, [](auto& m) { m.ld = d - 1; }), y, v, o, opt), Status::ShapeMismatch, "'X'");
  reject(call(x, with(y, [](auto& m) { m.ld = 1; }), v, o, opt), Status::ShapeMismatch, "'Y'");
  reject(call(x, y, with(v, [](auto& m) { m.ld = 0; }), o, opt), Status::ShapeMismatch, "'V'");
  reject(call(x, y, v, with(o, [](auto& m) { m.ld = 1; }), opt), Status::ShapeMismatch, "'out'");
  reject(call(with(x, [](auto& m) { m.rows = -1; }), y, v, o, opt), Status::ShapeMismatch, "'X'");
  // spans (rows - 1) * ld + cols past 64 bits: once accepted and written out of bounds
  constexpr std::int64_t kMaxLd = std::numeric_limits<std::int64_t>::max();
  reject(call(x, y, v, with(o, [](auto& m) { m.ld = kMaxLd; }), opt), Status::InvalidArgument,
         "'out'");
  reject(call(x, y, v, with(o, [](auto& m) { m.ld = kMaxLd / 2 + 1; }), opt),
         Status::InvalidArgument, "'out'");
  reject(call(with(x, [](auto& m) { m.ld = kMaxLd / 4; }), y, v, o, opt), Status::InvalidArgument,
         "'X'");
  // in elements it fits, in bytes it does not
  reject(call(x, y, with(v, [](auto& m) { m.ld = kMaxLd / 16; }), o, opt), Status::InvalidArgument,
         "'V'");
  // wrong shapes
  reject(call(x, with(y, [](auto& m) { m.cols = d - 1; }), v, o, opt), Status::ShapeMismatch,
         "'Y'");
  reject(call(x, y, with(v, [](auto& m) { m.rows = N - 1; }), o, opt), Status::ShapeMismatch,
         "'V'");
  reject(call(x, y, v, with(o, [](auto& m) { m.rows = M - 1; }), opt), Status::ShapeMismatch,
         "'out'");
  reject(call(x, y, v, with(o, [](auto& m) { m.cols = R + 1; }), opt), Status::ShapeMismatch,
         "'out'");
  reject(
      call(with(x, [](auto& m) { m.cols = 0; }), with(y, [](auto& m) { m.cols = 0; }), v, o, opt),
      Status::ShapeMismatch, "'X'");
  // R = 0 is illegal
  reject(
      call(x, y, with(v, [](auto& m) { m.cols = 0; }), with(o, [](auto& m) { m.cols = 0; }), opt),
      Status::ShapeMismatch, "'V'");
  // sigma, alpha, beta, precision
  for (double s : {0.0, -1.0, kNaN, std::numeric_limits<double>::infinity()}) {
    GaussMatvecOptions bad = opt;
    bad.sigma = s;
    reject(call(x, y, v, o, bad), Status::InvalidArgument, "'sigma'");
  }
  GaussMatvecOptions bad = opt;
  bad.alpha = kNaN;
  reject(call(x, y, v, o, bad), Status::InvalidArgument, "'alpha'");
  bad = opt;
  bad.beta = std::numeric_limits<double>::infinity();
  reject(call(x, y, v, o, bad), Status::InvalidArgument, "'beta'");
  bad = opt;
  bad.precision = static_cast<Precision>(7);
  reject(call(x, y, v, o, bad), Status::InvalidArgument, "'precision'");
  // memory location
  reject(call(with(x, [&](auto& m) { m.memory = wrong_memory(); }), y, v, o, opt),
         Status::MemoryLocation, "'X'");
  reject(call(x, y, v, with(o, [&](auto& m) { m.memory = wrong_memory(); }), opt),
         Status::MemoryLocation, "'out'");
  // out overlapping an input
  TestArray<float> shared(b(), uniform<float>(64, 4));
  expect_error([&] { gauss_matvec(ctx, shared.cmatrix(M, d), y, v, shared.matrix(M, R), opt); },
               Status::InvalidArgument, "'out'");
}

// On a Cuda context, a view that claims Device but points at host memory is
// caught by the pointer check (and the reverse on a Cpu context).
TEST_P(GaussErrors, PointerDisagreesWithItsView) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  if (cuda_device_count() == 0) GTEST_SKIP() << "the runtime check needs a CUDA device";
  std::vector<float> host(64, 1.0f);
  TestArray<float> dev(Backend::Cuda, std::vector<float>(64, 1.0f));
  TestArray<float> out(b(), nan_filled<float>(4));
  GaussMatvecOptions opt;
  const Memory claimed = b() == Backend::Cuda ? Memory::Device : Memory::Host;
  float* wrong = b() == Backend::Cuda ? host.data() : dev.data();
  MatrixView<const float> lie(wrong, 2, 2, 2, claimed);
  expect_error([&] { gauss_matvec(ctx, lie, lie, lie, out.matrix(2, 2), opt); },
               Status::MemoryLocation, "'X'");
}

TEST_P(GaussErrors, Kde) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<double> Q(b(), uniform<double>(M * d, 1)), Y(b(), uniform<double>(N * d, 2)),
      W(b(), uniform<double>(N, 3, 0.0, 1.0)), out(b(), nan_filled<double>(M));
  const auto before = out.values();
  const auto q = Q.cmatrix(M, d), y = Y.cmatrix(N, d);
  const auto w = W.cvector();
  const auto o = out.vector();
  KdeOptions opt;
  auto reject = [&](std::function<void()> f, Status s, const char* needle) {
    expect_rejected(f, s, needle, ctx, out, before);
  };
  reject([&] { kde(ctx, MatrixView<const double>(nullptr, M, d, d, q.memory), y, w, o, opt); },
         Status::InvalidArgument, "'queries'");
  reject([&] { kde(ctx, q, Y.cmatrix(N, d + 1), w, o, opt); }, Status::ShapeMismatch, "'Y'");
  reject([&] { kde(ctx, q, Y.cmatrix(0, d), VectorView<const double>{}, o, opt); },
         Status::ShapeMismatch, "'Y'");
  reject([&] { kde(ctx, q, y, VectorView<const double>(w.data, N - 1, w.memory), o, opt); },
         Status::ShapeMismatch, "'weights'");
  reject([&] { kde(ctx, q, y, w, VectorView<double>(o.data, M - 1, o.memory), opt); },
         Status::ShapeMismatch, "'out'");
  reject([&] { kde(ctx, q, y, w, VectorView<double>(nullptr, M, o.memory), opt); },
         Status::InvalidArgument, "'out'");
  KdeOptions bad = opt;
  bad.sigma = 0.0;
  reject([&] { kde(ctx, q, y, w, o, bad); }, Status::InvalidArgument, "'sigma'");
  if (b() == Backend::Cpu) {
    // Host weights are checked: negative, NaN, all zero.
    for (double value : {-1.0, kNaN}) {
      auto wv = W.values();
      wv[4] = value;
      TestArray<double> Wb(b(), wv);
      reject([&] { kde(ctx, q, y, Wb.cvector(), o, opt); }, Status::InvalidArgument, "'weights'");
    }
    TestArray<double> Wz(b(), std::vector<double>(N, 0.0));
    reject([&] { kde(ctx, q, y, Wz.cvector(), o, opt); }, Status::InvalidArgument, "'weights'");
  }
}

TEST_P(GaussErrors, GradAndMeanShift) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<float> X(b(), uniform<float>(M * d, 1)), Y(b(), uniform<float>(N * d, 2)),
      V(b(), uniform<float>(N * R, 3)), U(b(), uniform<float>(M * R, 4)),
      out(b(), nan_filled<float>(M * d));
  const auto before = out.values();
  const auto x = X.cmatrix(M, d), y = Y.cmatrix(N, d), v = V.cmatrix(N, R), u = U.cmatrix(M, R);
  const auto g = out.matrix(M, d);
  GaussGradOptions opt;
  auto reject = [&](std::function<void()> f, Status s, const char* needle) {
    expect_rejected(f, s, needle, ctx, out, before);
  };
  reject([&] { gauss_matvec_grad_x(ctx, x, y, v, U.cmatrix(M, R - 1), g, opt); },
         Status::ShapeMismatch, "'U'");
  reject([&] { gauss_matvec_grad_x(ctx, x, y, v, U.cmatrix(M - 1, R), g, opt); },
         Status::ShapeMismatch, "'U'");
  reject([&] { gauss_matvec_grad_x(ctx, x, y, V.cmatrix(N - 1, R), u, g, opt); },
         Status::ShapeMismatch, "'V'");
  reject([&] { gauss_matvec_grad_x(ctx, x, y, v, u, out.matrix(M, d - 1), opt); },
         Status::ShapeMismatch, "'grad'");
  reject([&] { gauss_matvec_grad_x(ctx, x, y, v, u, out.matrix(M, d, d - 1), opt); },
         Status::ShapeMismatch, "'grad'");
  GaussGradOptions bad = opt;
  bad.sigma = kNaN;
  reject([&] { gauss_matvec_grad_x(ctx, x, y, v, u, g, bad); }, Status::InvalidArgument, "'sigma'");
  reject([&] { mean_shift_step(ctx, x, y, {}, out.matrix(M - 1, d), opt); }, Status::ShapeMismatch,
         "'out'");
  reject([&] { mean_shift_step(ctx, x, Y.cmatrix(0, d), {}, g, opt); }, Status::ShapeMismatch,
         "'Y'");
  reject([&] { mean_shift_step(ctx, x, y, {}, g, bad); }, Status::InvalidArgument, "'sigma'");
  reject(
      [&] { mean_shift_step(ctx, x, y, VectorView<const float>(X.data(), 3, X.memory()), g, opt); },
      Status::ShapeMismatch, "'weights'");
  // out aliasing X (iterating in place) is refused.
  expect_error([&] { mean_shift_step(ctx, x, y, {}, X.matrix(M, d), opt); },
               Status::InvalidArgument, "'out'");
}

TEST_P(GaussErrors, Mmd2) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<double> X(b(), uniform<double>(M * d, 1)), Y(b(), uniform<double>(N * d, 2)),
      out(b(), nan_filled<double>(2));
  const auto before = out.values();
  const auto x = X.cmatrix(M, d), y = Y.cmatrix(N, d);
  Mmd2Options opt;
  auto reject = [&](std::function<void()> f, Status s, const char* needle) {
    expect_rejected(f, s, needle, ctx, out, before);
  };
  reject([&] { mmd2(ctx, x, y, out.vector(), opt); }, Status::ShapeMismatch, "'out'");
  const auto o = VectorView<double>(out.data(), 1, out.memory());
  reject([&] { mmd2(ctx, X.cmatrix(0, d), y, o, opt); }, Status::ShapeMismatch, "'X'");
  reject([&] { mmd2(ctx, x, Y.cmatrix(N, d - 1), o, opt); }, Status::ShapeMismatch, "'Y'");
  Mmd2Options unbiased = opt;
  unbiased.unbiased = true;
  reject([&] { mmd2(ctx, x, Y.cmatrix(1, d), o, unbiased); }, Status::ShapeMismatch, "'Y'");
  Mmd2Options bad = opt;
  bad.sigma = -2.0;
  reject([&] { mmd2(ctx, x, y, o, bad); }, Status::InvalidArgument, "'sigma'");
}

std::string name(const ::testing::TestParamInfo<Backend>& info) {
  return backend_label(info.param);
}
INSTANTIATE_TEST_SUITE_P(Cpu, GaussErrors, ::testing::Values(Backend::Cpu), name);
INSTANTIATE_TEST_SUITE_P(Cuda, GaussErrors, ::testing::Values(Backend::Cuda), name);

}  // namespace
}  // namespace kfuse::test
