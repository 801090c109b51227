// Bad input to every fusion-family function, argument by argument: a kfuse::Error
// with the right status and a message naming the argument, and the output left
// exactly as it was.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kfuse/fuse.hpp"
#include "support/test_memory.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {
namespace {

constexpr std::int64_t n = 6, d1 = 3, d2 = 4, l = 8;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

class FuseErrors : public ::testing::TestWithParam<Backend> {
 protected:
  Backend b() const { return GetParam(); }
  Memory wrong_memory() const { return b() == Backend::Cuda ? Memory::Host : Memory::Device; }
};

template <class V, class F>
V with(V view, F change) {
  change(view);
  return view;
}

TEST_P(FuseErrors, KronFuse) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<float> A(b(), uniform<float>(n * d1, 1)), B(b(), uniform<float>(n * d2, 2)),
      C(b(), uniform<float>(n * d2, 3)), out(b(), nan_filled<float>(n * d1 * d2 + 8));
  const auto before = out.values();
  const auto a = A.cmatrix(n, d1), bm = B.cmatrix(n, d2);
  const auto o = out.matrix(n, d1 * d2);
  auto reject = [&](std::vector<MatrixView<const float>> in, MatrixView<float> out_,
                    KronFuseOptions opt, Status s, const char* needle) {
    expect_rejected([&] { kron_fuse(ctx, in, out_, opt); }, s, needle, ctx, out, before);
  };
  const KronFuseOptions opt;
  reject({a}, o, opt, Status::InvalidArgument, "'inputs'");
  reject({a, bm, bm, bm, bm}, o, opt, Status::InvalidArgument, "'inputs'");
  // mismatched row counts between A and B
  reject({a, B.cmatrix(n - 1, d2)}, o, opt, Status::ShapeMismatch, "'inputs[1]'");
  reject({with(a, [](auto& m) { m.data = nullptr; }), bm}, o, opt, Status::InvalidArgument,
         "'inputs[0]'");
  reject({a, with(bm, [](auto& m) { m.ld = d2 - 1; })}, o, opt, Status::ShapeMismatch,
         "'inputs[1]'");
  reject({a, B.cmatrix(n, 0)}, out.matrix(n, 0), opt, Status::ShapeMismatch, "'inputs[1]'");
  reject({a, bm}, out.matrix(n - 1, d1 * d2), opt, Status::ShapeMismatch, "'out'");
  reject({a, bm}, out.matrix(n, d1 * d2 + 1), opt, Status::ShapeMismatch, "'out'");
  reject({a, bm}, out.matrix(n, d1 * d2, d1 * d2 - 1), opt, Status::ShapeMismatch, "'out'");
  reject({a, bm}, with(o, [](auto& m) { m.data = nullptr; }), opt, Status::InvalidArgument,
         "'out'");
  // sides: count, kernel, Rbf parameters
  KronFuseOptions bad;
  bad.sides = {FuseSide{}};
  reject({a, bm}, o, bad, Status::InvalidArgument, "'sides'");
  bad.sides = {FuseSide{}, FuseSide{static_cast<SideKernel>(5), 1.0, 0}};
  reject({a, bm}, o, bad, Status::InvalidArgument, "'sides[1].kernel'");
  bad.sides = {FuseSide{SideKernel::Rbf, 0.0, 4}, FuseSide{}};
  reject({a, bm}, out.matrix(n, 8 * d2), bad, Status::InvalidArgument, "'sides[0].sigma'");
  bad.sides = {FuseSide{SideKernel::Rbf, kNaN, 4}, FuseSide{}};
  reject({a, bm}, out.matrix(n, 8 * d2), bad, Status::InvalidArgument, "'sides[0].sigma'");
  bad.sides = {FuseSide{SideKernel::Rbf, 1.0, 0}, FuseSide{}};
  reject({a, bm}, o, bad, Status::InvalidArgument, "'sides[0].rff_features'");
  // an Rbf side changes the width: the Linear width is now wrong
  bad.sides = {FuseSide{SideKernel::Rbf, 1.0, 2}, FuseSide{}};
  reject({a, bm}, o, bad, Status::ShapeMismatch, "'out'");
  // host/device mismatch
  reject({with(a, [&](auto& m) { m.memory = wrong_memory(); }), bm}, o, opt, Status::MemoryLocation,
         "'inputs[0]'");
  reject({a, bm}, with(o, [&](auto& m) { m.memory = wrong_memory(); }), opt, Status::MemoryLocation,
         "'out'");
  // a fused row of 2^31 columns or more
  reject({MatrixView<const float>(a.data, n, 1 << 16, 1 << 16, a.memory),
          MatrixView<const float>(bm.data, n, 1 << 16, 1 << 16, bm.memory)},
         o, opt, Status::Unsupported, "'out'");
  // out overlapping an input
  TestArray<float> shared(b(), uniform<float>(n * d1 * d2 + n * d1, 4));
  expect_error(
      [&] {
        kron_fuse(ctx, {shared.cmatrix(n, d1), bm}, shared.matrix(n, d1 * d2), KronFuseOptions{});
      },
      Status::InvalidArgument, "'out'");
}

TEST_P(FuseErrors, RpFuse) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<float> A(b(), uniform<float>(n * d1, 1)), B(b(), uniform<float>(n * d2, 2)),
      out(b(), nan_filled<float>(n * l + 8));
  const auto before = out.values();
  const auto a = A.cmatrix(n, d1), bm = B.cmatrix(n, d2);
  const auto o = out.matrix(n, l);
  auto reject = [&](std::vector<MatrixView<const float>> in, MatrixView<float> out_,
                    RpFuseOptions opt, Status s, const char* needle) {
    expect_rejected([&] { rp_fuse(ctx, in, out_, opt); }, s, needle, ctx, out, before);
  };
  const RpFuseOptions opt;
  reject({a}, o, opt, Status::InvalidArgument, "'inputs'");
  reject({a, B.cmatrix(n + 1, d2)}, o, opt, Status::ShapeMismatch, "'inputs[1]'");
  // l = 0
  reject({a, bm}, out.matrix(n, 0), opt, Status::ShapeMismatch, "'out'");
  reject({a, bm}, out.matrix(n - 1, l), opt, Status::ShapeMismatch, "'out'");
  RpFuseOptions bad;
  bad.distribution = static_cast<RpDistribution>(3);
  reject({a, bm}, o, bad, Status::InvalidArgument, "'distribution'");
  bad = opt;
  bad.distribution = static_cast<RpDistribution>(-1);
  reject({a, bm}, o, bad, Status::InvalidArgument, "'distribution'");
  bad = opt;
  bad.scaling = static_cast<RpScaling>(2);
  reject({a, bm}, o, bad, Status::InvalidArgument, "'scaling'");
  bad = opt;
  bad.precision = static_cast<Precision>(9);
  reject({a, bm}, o, bad, Status::InvalidArgument, "'precision'");
  bad = opt;
  bad.sides = {FuseSide{}, FuseSide{}, FuseSide{}};
  reject({a, bm}, o, bad, Status::InvalidArgument, "'sides'");
  bad.sides = {FuseSide{SideKernel::Rbf, -2.0, 3}, FuseSide{}};
  reject({a, bm}, o, bad, Status::InvalidArgument, "'sides[0].sigma'");
  reject({with(a, [&](auto& m) { m.memory = wrong_memory(); }), bm}, o, opt, Status::MemoryLocation,
         "'inputs[0]'");
  reject({a, bm}, with(o, [&](auto& m) { m.memory = wrong_memory(); }), opt, Status::MemoryLocation,
         "'out'");
  TestArray<float> shared(b(), uniform<float>(n * l + n * d1, 4));
  expect_error(
      [&] {
        rp_fuse(ctx, {shared.cmatrix(n, d1), bm}, shared.matrix(n, l), opt);
      },
      Status::InvalidArgument, "'out'");
}

// Widths past kMaxFuseWidth (views whose spans fit 64 bits, over small buffers): once
// taken as sizes, they overflowed or ended as "out of host memory" naming nothing.
TEST_P(FuseErrors, WidthsPastTheBounds) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<float> A(b(), uniform<float>(n * d1, 1)), B(b(), uniform<float>(n * d2, 2)),
      out(b(), nan_filled<float>(n * l + 8));
  const auto before = out.values();
  const auto a = A.cmatrix(n, d1), bm = B.cmatrix(n, d2);
  auto reject = [&](const std::function<void()>& f, Status s, const char* needle) {
    expect_rejected(f, s, needle, ctx, out, before);
  };
  constexpr std::int64_t kWide = kMaxFuseWidth + 1;
  const MatrixView<float> wide(out.data(), n, kWide, kWide, out.memory());
  const MatrixView<float> wide_row(out.data(), 1, std::int64_t(1) << 40, std::int64_t(1) << 40,
                                   out.memory());
  const MatrixView<const float> wide_in(A.data(), n, kWide, kWide, A.memory());
  reject([&] { rp_fuse(ctx, {a, bm}, wide); }, Status::InvalidArgument, "'out'");
  reject(
      [&] {
        rp_fuse(ctx, {A.cmatrix(1, d1), B.cmatrix(1, d2)}, wide_row);
      },
      Status::InvalidArgument, "'out'");
  reject(
      [&] {
        rp_fuse(ctx, {wide_in, bm}, out.matrix(n, l));
      },
      Status::InvalidArgument, "'inputs[0]'");
  reject([&] { tensor_sketch(ctx, a, bm, wide, {}); }, Status::InvalidArgument, "'out'");
  reject([&] { tensor_sketch(ctx, a, wide_in, out.matrix(n, l), {}); }, Status::InvalidArgument,
         "'B'");
  RffOptions r;
  r.sigmas = {1.0, 1.0};
  reject(
      [&] {
        rff_fuse(ctx, {a, bm}, MatrixView<float>(out.data(), n, kWide + 1, kWide + 1, out.memory()),
                 r);
      },
      Status::InvalidArgument, "'out'");
  CrossModalOptions cm;
  cm.image_dim = d2;
  cm.text_dim = 2;
  reject([&] { cross_modal_rp(ctx, Modality::Image, a, bm, wide, cm); }, Status::InvalidArgument,
         "'out'");
  CrossModalOptions huge_dim = cm;
  huge_dim.text_dim = std::int64_t(1) << 61;
  reject([&] { cross_modal_rp(ctx, Modality::Image, a, bm, out.matrix(n, l), huge_dim); },
         Status::InvalidArgument, "'text_dim'");
  // rff_features near 2^61 doubled once wrapped; the queries reject what the calls reject.
  for (std::int64_t features :
       {std::int64_t(1) << 30, std::int64_t(1) << 61, std::numeric_limits<std::int64_t>::max()}) {
    const FuseSide rbf{SideKernel::Rbf, 1.0, features};
    RpFuseOptions rp;
    rp.sides = {rbf, FuseSide{}};
    reject(
        [&] {
          rp_fuse(ctx, {a, bm}, out.matrix(n, l), rp);
        },
        Status::InvalidArgument, "'sides[0].rff_features'");
    KronFuseOptions kr;
    kr.sides = {FuseSide{}, rbf};
    reject(
        [&] {
          kron_fuse(ctx, {a, bm}, out.matrix(n, l), kr);
        },
        Status::InvalidArgument, "'sides[1].rff_features'");
    expect_error([&] { fuse_side_width(rbf, 3); }, Status::InvalidArgument, "'side.rff_features'");
    CrossModalOptions q = cm;
    q.text_expert = rbf;
    expect_error([&] { cross_modal_width(q, d1); }, Status::InvalidArgument,
                 "'options.text_expert.rff_features'");
  }
  expect_error([&] { fuse_side_width(FuseSide{}, -1); }, Status::InvalidArgument, "'d'");
  expect_error([&] { cross_modal_width(huge_dim, d1); }, Status::InvalidArgument,
               "'options.text_dim'");
  // At the bounds the query answers; a product past 64 bits is an error, not a wrap.
  CrossModalOptions big = cm;
  big.image_dim = kMaxFuseWidth / 2;
  big.text_dim = 1;
  EXPECT_EQ(cross_modal_width(big, 2), 2 * (2 * (kMaxFuseWidth / 2)) * 2);
  big.text_dim = kMaxFuseWidth / 2;
  expect_error([&] { cross_modal_width(big, kMaxFuseWidth); }, Status::InvalidArgument,
               "'options'");
}

TEST_P(FuseErrors, ProjectionMatrix) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<float> out(b(), nan_filled<float>(d1 * l));
  const auto before = out.values();
  const auto o = out.matrix(d1, l);
  auto reject = [&](std::function<void()> f, Status s, const char* needle) {
    expect_rejected(f, s, needle, ctx, out, before);
  };
  reject([&] { rp_projection_matrix(ctx, -1, o, {}); }, Status::InvalidArgument, "'input'");
  reject([&] { rp_projection_matrix(ctx, kMaxFuseInputs, o, {}); }, Status::InvalidArgument,
         "'input'");
  RpFuseOptions bad;
  bad.distribution = static_cast<RpDistribution>(4);
  reject([&] { rp_projection_matrix(ctx, 0, o, bad); }, Status::InvalidArgument, "'distribution'");
  reject([&] { rp_projection_matrix(ctx, 0, out.matrix(d1, l, l - 1), {}); }, Status::ShapeMismatch,
         "'out'");
  // A span (rows - 1) * ld + cols past 64 bits: once accepted, and the rows written
  // before the buffer.
  for (std::int64_t ld :
       {std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::max() / 2 + 1})
    reject([&] { rp_projection_matrix(ctx, 0, with(o, [&](auto& m) { m.ld = ld; }), {}); },
           Status::InvalidArgument, "'out'");
  reject(
      [&] {
        rp_projection_matrix(ctx, 0, with(o, [&](auto& m) { m.memory = wrong_memory(); }), {});
      },
      Status::MemoryLocation, "'out'");
}

TEST_P(FuseErrors, CrossModal) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  CrossModalOptions opt;
  opt.image_dim = d2;
  opt.text_dim = 2;
  const std::int64_t w = cross_modal_width(opt, d1);
  TestArray<float> S(b(), uniform<float>(n * d1, 1)), E(b(), uniform<float>(n * d2, 2)),
      out(b(), nan_filled<float>(n * w + 8));
  const auto before = out.values();
  const auto s = S.cmatrix(n, d1), e = E.cmatrix(n, d2);
  auto reject = [&](std::function<void()> f, Status st, const char* needle) {
    expect_rejected(f, st, needle, ctx, out, before);
  };
  for (int form = 0; form < 2; ++form) {
    const std::int64_t cols = form == 0 ? w : l;
    auto call = [&](Modality m, MatrixView<const float> s_, MatrixView<const float> e_,
                    MatrixView<float> o_, CrossModalOptions op) {
      return [=, &ctx] {
        if (form == 0)
          cross_modal_kron(ctx, m, s_, e_, o_, op);
        else
          cross_modal_rp(ctx, m, s_, e_, o_, op);
      };
    };
    const auto o = out.matrix(n, cols);
    reject(call(static_cast<Modality>(2), s, e, o, opt), Status::InvalidArgument, "'modality'");
    reject(call(Modality::Image, s, E.cmatrix(n - 1, d2), o, opt), Status::ShapeMismatch,
           "'expert'");
    // the expert's width must be the modality's dimension
    reject(call(Modality::Text, s, e, o, opt), Status::ShapeMismatch, "'expert'");
    reject(call(Modality::Image, S.cmatrix(n, 0), e, o, opt), Status::ShapeMismatch, "'shared'");
    CrossModalOptions bad = opt;
    bad.C = 0.0;
    reject(call(Modality::Image, s, e, o, bad), Status::InvalidArgument, "'C'");
    bad.C = kNaN;
    reject(call(Modality::Image, s, e, o, bad), Status::InvalidArgument, "'C'");
    bad = opt;
    bad.text_dim = 0;
    reject(call(Modality::Image, s, e, o, bad), Status::ShapeMismatch, "'text_dim'");
    bad = opt;
    bad.image_expert.kernel = static_cast<SideKernel>(-1);
    reject(call(Modality::Image, s, e, o, bad), Status::InvalidArgument, "'image_expert.kernel'");
    bad = opt;
    bad.shared = FuseSide{SideKernel::Rbf, 1.0, 0};
    reject(call(Modality::Image, s, e, o, bad), Status::InvalidArgument, "'shared.rff_features'");
    reject(call(Modality::Image, s, e, out.matrix(n + 1, cols), opt), Status::ShapeMismatch,
           "'out'");
    reject(call(Modality::Image, with(s, [&](auto& m) { m.memory = wrong_memory(); }), e, o, opt),
           Status::MemoryLocation, "'shared'");
    if (form == 0) {
      reject(call(Modality::Image, s, e, out.matrix(n, w - 1), opt), Status::ShapeMismatch,
             "'out'");
    } else {
      reject(call(Modality::Image, s, e, out.matrix(n, 0), opt), Status::ShapeMismatch, "'out'");
      bad = opt;
      bad.distribution = static_cast<RpDistribution>(7);
      reject(call(Modality::Image, s, e, o, bad), Status::InvalidArgument, "'distribution'");
      bad = opt;
      bad.scaling = static_cast<RpScaling>(7);
      reject(call(Modality::Image, s, e, o, bad), Status::InvalidArgument, "'scaling'");
    }
  }
}

TEST_P(FuseErrors, RffFuse) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<float> A(b(), uniform<float>(n * d1, 1)), B(b(), uniform<float>(n * d2, 2)),
      out(b(), nan_filled<float>(n * l + 8));
  const auto before = out.values();
  const auto a = A.cmatrix(n, d1), bm = B.cmatrix(n, d2);
  const auto o = out.matrix(n, l);
  RffOptions opt;
  opt.sigmas = {1.0, 2.0};
  auto reject = [&](std::vector<MatrixView<const float>> in, MatrixView<float> out_, RffOptions op,
                    Status s, const char* needle) {
    expect_rejected([&] { rff_fuse(ctx, in, out_, op); }, s, needle, ctx, out, before);
  };
  reject({}, o, opt, Status::InvalidArgument, "'inputs'");
  reject({a, B.cmatrix(n - 1, d2)}, o, opt, Status::ShapeMismatch, "'inputs[1]'");
  RffOptions bad = opt;
  bad.sigmas = {1.0};
  reject({a, bm}, o, bad, Status::InvalidArgument, "'sigmas'");
  bad.sigmas = {1.0, 0.0};
  reject({a, bm}, o, bad, Status::InvalidArgument, "'sigmas[1]'");
  reject({a, bm}, out.matrix(n, 7), opt, Status::ShapeMismatch, "'out'");  // odd
  reject({a, bm}, out.matrix(n, 0), opt, Status::ShapeMismatch, "'out'");
  reject({a, bm}, out.matrix(n - 1, l), opt, Status::ShapeMismatch, "'out'");
  reject({a, bm}, with(o, [&](auto& m) { m.memory = wrong_memory(); }), opt, Status::MemoryLocation,
         "'out'");
}

TEST_P(FuseErrors, TensorSketch) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<float> A(b(), uniform<float>(n * d1, 1)), B(b(), uniform<float>(n * d2, 2)),
      out(b(), nan_filled<float>(n * l + 8));
  const auto before = out.values();
  const auto a = A.cmatrix(n, d1), bm = B.cmatrix(n, d2);
  const auto o = out.matrix(n, l);
  TensorSketchOptions opt;
  auto reject = [&](MatrixView<const float> a_, MatrixView<const float> b_, MatrixView<float> o_,
                    TensorSketchOptions op, Status s, const char* needle) {
    expect_rejected([&] { tensor_sketch(ctx, a_, b_, o_, op); }, s, needle, ctx, out, before);
  };
  reject(a, B.cmatrix(n - 1, d2), o, opt, Status::ShapeMismatch, "'B'");
  reject(A.cmatrix(n, 0), bm, o, opt, Status::ShapeMismatch, "'A'");
  reject(a, bm, out.matrix(n, 0), opt, Status::ShapeMismatch, "'out'");
  reject(a, bm, out.matrix(n + 1, l), opt, Status::ShapeMismatch, "'out'");
  TensorSketchOptions bad = opt;
  bad.side_b.kernel = static_cast<SideKernel>(3);
  reject(a, bm, o, bad, Status::InvalidArgument, "'side_b.kernel'");
  bad = opt;
  bad.side_a = FuseSide{SideKernel::Rbf, 1.0, 0};
  reject(a, bm, o, bad, Status::InvalidArgument, "'side_a.rff_features'");
  reject(with(a, [&](auto& m) { m.memory = wrong_memory(); }), bm, o, opt, Status::MemoryLocation,
         "'A'");
}

TEST_P(FuseErrors, ProductKernelTopk) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  constexpr std::int64_t M = 4, N = 9, k = 3;
  TestArray<float> Q1(b(), uniform<float>(M * d1, 1)), Q2(b(), uniform<float>(M * d2, 2)),
      G1(b(), uniform<float>(N * d1, 3)), G2(b(), uniform<float>(N * d2, 4)),
      sc(b(), nan_filled<float>(M * (N + 1)));
  TestArray<std::int64_t> idx(b(), std::vector<std::int64_t>(M * (N + 1), -5));
  const auto before_s = sc.values();
  const auto before_i = idx.values();
  const auto q1 = Q1.cmatrix(M, d1), q2 = Q2.cmatrix(M, d2), g1 = G1.cmatrix(N, d1),
             g2 = G2.cmatrix(N, d2);
  const auto ix = idx.matrix(M, k);
  const auto so = sc.matrix(M, k);
  ProductTopkOptions opt;
  auto reject = [&](std::function<void()> f, Status s, const char* needle) {
    expect_error(f, s, needle);
    ctx.synchronize();
    EXPECT_TRUE(bitwise_equal(sc.values(), before_s))
        << "scores written on error (" << needle << ")";
    EXPECT_TRUE(bitwise_equal(idx.values(), before_i))
        << "indices written on error (" << needle << ")";
  };
  auto call = [&](MatrixView<const float> a, MatrixView<const float> bq, MatrixView<const float> c,
                  MatrixView<const float> dg, MatrixView<std::int64_t> i_, MatrixView<float> s_,
                  ProductTopkOptions op) {
    return [=, &ctx] { product_kernel_topk(ctx, a, bq, c, dg, i_, s_, op); };
  };
  reject(call(q1, Q2.cmatrix(M - 1, d2), g1, g2, ix, so, opt), Status::ShapeMismatch, "'Q2'");
  reject(call(q1, q2, G1.cmatrix(N, d1 - 1), g2, ix, so, opt), Status::ShapeMismatch, "'G1'");
  reject(call(q1, q2, g1, G2.cmatrix(N - 1, d2), ix, so, opt), Status::ShapeMismatch, "'G2'");
  reject(call(Q1.cmatrix(M, 0), q2, G1.cmatrix(N, 0), g2, ix, so, opt), Status::ShapeMismatch,
         "'Q1'");
  // k out of range: 0, > N
  reject(call(q1, q2, g1, g2, idx.matrix(M, 0, 1), sc.matrix(M, 0, 1), opt),
         Status::InvalidArgument, "'k'");
  reject(call(q1, q2, g1, g2, idx.matrix(M, N + 1), sc.matrix(M, N + 1), opt),
         Status::InvalidArgument, "'k'");
  reject(call(q1, q2, g1, g2, ix, sc.matrix(M, k + 1), opt), Status::ShapeMismatch, "'scores'");
  reject(call(q1, q2, g1, g2, idx.matrix(M + 1, k), so, opt), Status::ShapeMismatch, "'indices'");
  ProductTopkOptions bad = opt;
  bad.side1.kernel = static_cast<SideKernel>(9);
  reject(call(q1, q2, g1, g2, ix, so, bad), Status::InvalidArgument, "'side1.kernel'");
  bad = opt;
  bad.side2 = FuseSide{SideKernel::Rbf, 0.0, 0};
  reject(call(q1, q2, g1, g2, ix, so, bad), Status::InvalidArgument, "'side2.sigma'");
  bad = opt;
  bad.C = std::numeric_limits<double>::infinity();
  reject(call(q1, q2, g1, g2, ix, so, bad), Status::InvalidArgument, "'C'");
  bad = opt;
  bad.precision = static_cast<Precision>(-3);
  reject(call(q1, q2, g1, g2, ix, so, bad), Status::InvalidArgument, "'precision'");
  reject(call(q1, q2, g1, with(g2, [&](auto& m) { m.memory = wrong_memory(); }), ix, so, opt),
         Status::MemoryLocation, "'G2'");
  reject(call(q1, q2, g1, g2, with(ix, [&](auto& m) { m.memory = wrong_memory(); }), so, opt),
         Status::MemoryLocation, "'indices'");
  // outputs overlapping each other
  reject(call(q1, q2, g1, g2, ix,
              MatrixView<float>(reinterpret_cast<float*>(idx.data()), M, k, k, so.memory), opt),
         Status::InvalidArgument, "'scores'");
}

INSTANTIATE_TEST_SUITE_P(Cpu, FuseErrors, ::testing::Values(Backend::Cpu),
                         [](const auto& info) { return backend_label(info.param); });
INSTANTIATE_TEST_SUITE_P(Cuda, FuseErrors, ::testing::Values(Backend::Cuda),
                         [](const auto& info) { return backend_label(info.param); });

}  // namespace
}  // namespace kfuse::test
