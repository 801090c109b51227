// Bad input to every contrastive-family function, argument by argument: a
// kfuse::Error with the right status and a message naming the argument, and every
// output left exactly as it was.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kfuse/contrastive.hpp"
#include "support/contrastive_inputs.hpp"
#include "support/test_memory.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {
namespace {

constexpr std::int64_t Na = 6, Nb = 6, Nr = 9, d = 5;  // Nr: rows of a rectangular B
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

template <class V>
V with(V view, const std::function<void(V&)>& change) {
  change(view);
  return view;
}

// Inputs and NaN-poisoned outputs of one problem in the backend's memory.
class ContrastiveErrors : public ::testing::TestWithParam<Backend> {
 protected:
  Backend b() const { return GetParam(); }
  Memory wrong_memory() const { return b() == Backend::Cuda ? Memory::Host : Memory::Device; }

  void SetUp() override {
    if (b() == Backend::Cuda && cuda_device_count() == 0) return;  // the tests skip
    A_ = std::make_unique<TestArray<float>>(b(), embeddings<float>(Na, d, d, 1));
    B_ = std::make_unique<TestArray<float>>(b(), embeddings<float>(Nr, d, d, 2));
    L_ = std::make_unique<TestArray<std::int64_t>>(b(), permutation(Na, 3));
    for (std::int64_t n : {std::int64_t(1), Na, Nr, Nr, Na, std::int64_t(1), std::int64_t(1),
                           Na * d, Nr * d, std::int64_t(2)})
      out_.emplace_back(b(), nan_filled<float>(n));
  }
  TestArray<float>& out(int k) { return out_[static_cast<std::size_t>(k)]; }
  // loss, row_losses, col_losses, lse_cols, lse_rows, dt, db, dA, dB, spare
  VectorView<float> loss() { return out(0).vector(); }
  VectorView<float> row_losses() { return out(1).vector(); }
  VectorView<float> col_losses(std::int64_t nb = Nb) {
    return {out(2).data(), nb, out(2).memory()};
  }
  VectorView<float> lse_cols(std::int64_t nb = Nb) { return {out(3).data(), nb, out(3).memory()}; }
  VectorView<float> lse_rows() { return out(4).vector(); }
  VectorView<float> dt() { return out(5).vector(); }
  VectorView<float> db() { return out(6).vector(); }
  MatrixView<float> dA() { return out(7).matrix(Na, d); }
  MatrixView<float> dB(std::int64_t nb = Nb) { return out(8).matrix(nb, d); }
  MatrixView<const float> A() { return A_->cmatrix(Na, d); }
  MatrixView<const float> B(std::int64_t nb = Nb) { return B_->cmatrix(nb, d); }
  VectorView<const std::int64_t> labels() { return L_->cvector(); }
  ContrastiveGradients<float> grads(std::int64_t nb = Nb) { return {dA(), dB(nb), dt(), db()}; }

  std::vector<float> snapshot() {
    std::vector<float> all;
    for (auto& o : out_) {
      const auto v = o.values();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  }

  void reject(Context& ctx, const std::function<void()>& call, Status status,
              const std::string& needle) {
    const auto before = snapshot();
    expect_error(call, status, needle);
    ctx.synchronize();
    EXPECT_TRUE(bitwise_equal(snapshot(), before)) << "output written on error (" << needle << ")";
  }

  std::unique_ptr<TestArray<float>> A_, B_;
  std::unique_ptr<TestArray<std::int64_t>> L_;
  std::vector<TestArray<float>> out_;
};

TEST_P(ContrastiveErrors, ClipForward) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  ClipLossOptions o;
  ClipForwardOutputs good{loss(), row_losses(), col_losses(), lse_rows(), lse_cols()};
  auto call = [&](MatrixView<const float> a, MatrixView<const float> bb,
                  VectorView<const std::int64_t> l, ClipForwardOutputs out, ClipLossOptions op) {
    return [=, &ctx] { clip_loss_forward(ctx, a, bb, l, out, op); };
  };
  auto a = A(), bv = B();
  auto l = labels();
  // The embeddings: null data, ld < cols, N = 0, d = 0, mismatched d, memory.
  reject(ctx,
         call(with<MatrixView<const float>>(a, [](auto& m) { m.data = nullptr; }), bv, l, good, o),
         Status::InvalidArgument, "'A'");
  reject(ctx, call(a, with<MatrixView<const float>>(bv, [](auto& m) { m.ld = 2; }), l, good, o),
         Status::ShapeMismatch, "'B'");
  reject(ctx, call(with<MatrixView<const float>>(a, [](auto& m) { m.rows = -1; }), bv, l, good, o),
         Status::ShapeMismatch, "'A'");
  reject(ctx, call(A_->cmatrix(0, d), bv, {}, good, o), Status::ShapeMismatch, "'A'");
  reject(ctx, call(a, B_->cmatrix(0, d), {}, good, o), Status::ShapeMismatch, "'B'");
  reject(ctx, call(A_->cmatrix(Na, 0), B_->cmatrix(Nb, 0), l, good, o), Status::ShapeMismatch,
         "'A'");
  reject(ctx, call(a, B_->cmatrix(Nb, d - 1), l, good, o), Status::ShapeMismatch, "'B'");
  reject(ctx,
         call(with<MatrixView<const float>>(a, [&](auto& m) { m.memory = wrong_memory(); }), bv, l,
              good, o),
         Status::MemoryLocation, "'A'");
  // Both needs Na == Nb; absent labels need Na == Nb.
  reject(ctx, call(a, B(Nr), {}, good, o), Status::ShapeMismatch, "'B'");
  ClipLossOptions atob = o;
  atob.direction = ClipDirection::AtoB;
  ClipForwardOutputs rows_only{loss(), row_losses(), {}, lse_rows(), {}};
  reject(ctx, call(a, B(Nr), {}, rows_only, atob), Status::ShapeMismatch, "'labels'");
  // Labels: size, range, permutation, memory.
  reject(ctx, call(a, bv, VectorView<const std::int64_t>(l.data, Na - 1, l.memory), good, o),
         Status::ShapeMismatch, "'labels'");
  reject(ctx,
         call(a, bv,
              with<VectorView<const std::int64_t>>(l, [&](auto& v) { v.memory = wrong_memory(); }),
              good, o),
         Status::MemoryLocation, "'labels'");
  for (auto bad :
       {std::vector<std::int64_t>{0, 1, 2, 3, 4, 6}, std::vector<std::int64_t>{0, 1, 2, 3, 4, -1},
        std::vector<std::int64_t>{0, 1, 2, 3, 4, 4}}) {
    TestArray<std::int64_t> L(b(), bad);
    reject(ctx, call(a, bv, L.cvector(), good, o), Status::InvalidArgument, "'labels'");
  }
  {
    TestArray<std::int64_t> L(b(), std::vector<std::int64_t>{0, 1, 2, 3, 4, 9});  // AtoB: [0, Nb)
    reject(ctx, call(a, B(Nr), L.cvector(), rows_only, atob), Status::InvalidArgument, "'labels'");
  }
  // Options.
  ClipLossOptions bad = o;
  bad.direction = static_cast<ClipDirection>(3);
  reject(ctx, call(a, bv, l, good, bad), Status::InvalidArgument, "'direction'");
  // Beyond 16 ln 2 fp32 logits lose their differences; below -87 tau is subnormal
  // (contrastive.hpp, "Accepted ranges").
  for (double t : {kNaN, kInf, -kInf, 89.0, 11.1, 20.0, 40.0, 88.0, -87.5, -1e30}) {
    bad = o;
    bad.logit_scale.value = t;
    reject(ctx, call(a, bv, l, good, bad), Status::InvalidArgument, "'logit_scale'");
  }
  for (double bias : {kNaN, 1e300, -1e300, 65536.5, -1e5}) {
    bad = o;
    bad.bias.value = bias;
    reject(ctx, call(a, bv, l, good, bad), Status::InvalidArgument, "'bias'");
  }
  bad = o;
  bad.logit_scale.device = VectorView<const float>(out(9).data(), 2, out(9).memory());
  reject(ctx, call(a, bv, l, good, bad), Status::ShapeMismatch, "'logit_scale'");
  for (double eps : {-0.1, 1.0, kNaN}) {
    bad = o;
    bad.label_smoothing = eps;
    reject(ctx, call(a, bv, l, good, bad), Status::InvalidArgument, "'label_smoothing'");
  }
  bad = o;
  bad.precision = static_cast<Precision>(9);
  reject(ctx, call(a, bv, l, good, bad), Status::InvalidArgument, "'precision'");
  // Outputs: loss required and of size 1, sizes, directions, overlaps.
  ClipForwardOutputs w = good;
  w.loss = {};
  reject(ctx, call(a, bv, l, w, o), Status::InvalidArgument, "'loss'");
  w = good;
  w.loss.size = 2;
  reject(ctx, call(a, bv, l, w, o), Status::ShapeMismatch, "'loss'");
  w = good;
  w.row_losses.size = Na + 1;
  reject(ctx, call(a, bv, l, w, o), Status::ShapeMismatch, "'row_losses'");
  w = good;
  w.lse_cols.size = Nb - 1;
  reject(ctx, call(a, bv, l, w, o), Status::ShapeMismatch, "'lse_cols'");
  w = good;
  w.lse_rows.memory = wrong_memory();
  reject(ctx, call(a, bv, l, w, o), Status::MemoryLocation, "'lse_rows'");
  reject(ctx,
         call(a, B(Nr), l, ClipForwardOutputs{loss(), row_losses(), col_losses(Nr), {}, {}}, atob),
         Status::InvalidArgument, "'col_losses'");
  ClipLossOptions btoa = o;
  btoa.direction = ClipDirection::BtoA;
  reject(ctx, call(a, bv, l, good, btoa), Status::InvalidArgument, "'row_losses'");
  w = good;
  w.lse_rows = VectorView<float>(const_cast<float*>(a.data), Na, a.memory);  // overlaps A
  reject(ctx, call(a, bv, l, w, o), Status::InvalidArgument, "'lse_rows'");
  w = good;
  w.lse_rows = VectorView<float>(out(1).data(), Na, out(1).memory());  // = row_losses
  reject(ctx, call(a, bv, l, w, o), Status::InvalidArgument, "'row_losses'");
  // Workspace: too small, misaligned, null with bytes.
  bad = o;
  bad.workspace = {out(7).data(), 64};
  reject(ctx, call(a, bv, l, good, bad), Status::ShapeMismatch, "'workspace'");
  const std::size_t need = clip_loss_workspace_bytes(ctx, Na, Nb, d, ContrastivePass::Forward, o);
  TestArray<double> big(b(), std::vector<double>(need / 8 + 64, 0.0));
  bad.workspace = {reinterpret_cast<unsigned char*>(big.data()) + 8, need};
  reject(ctx, call(a, bv, l, good, bad), Status::InvalidArgument, "'workspace'");
  bad.workspace = {nullptr, 100};
  reject(ctx, call(a, bv, l, good, bad), Status::InvalidArgument, "'workspace'");
}

TEST_P(ContrastiveErrors, ClipBackward) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  ClipLossOptions o;
  const ClipSavedStats saved{lse_rows(), lse_cols()};
  auto call = [&](MatrixView<const float> a, MatrixView<const float> bb, ClipSavedStats s,
                  LossScalar g, ContrastiveGradients<float> gr, ClipLossOptions op) {
    auto l = labels();
    return [=, &ctx] { clip_loss_backward(ctx, a, bb, l, s, g, gr, op); };
  };
  const auto a = A(), bv = B();
  const LossScalar one{1.0, {}};
  reject(ctx, call(a, B_->cmatrix(Nb, d + 1), saved, one, grads(), o), Status::ShapeMismatch,
         "'B'");
  reject(ctx, call(a, bv, ClipSavedStats{{}, lse_cols()}, one, grads(), o), Status::InvalidArgument,
         "'lse_rows'");
  reject(ctx, call(a, bv, ClipSavedStats{lse_rows(), {}}, one, grads(), o), Status::InvalidArgument,
         "'lse_cols'");
  reject(ctx, call(a, bv, ClipSavedStats{lse_rows(), lse_cols(Nb - 1)}, one, grads(), o),
         Status::ShapeMismatch, "'lse_cols'");
  ClipLossOptions atob = o;
  atob.direction = ClipDirection::AtoB;
  reject(ctx, call(a, bv, saved, one, grads(), atob), Status::InvalidArgument, "'lse_cols'");
  reject(ctx, call(a, bv, saved, LossScalar{kNaN, {}}, grads(), o), Status::InvalidArgument,
         "'grad_loss'");
  reject(ctx, call(a, bv, saved, LossScalar{1e39, {}}, grads(), o), Status::InvalidArgument,
         "'grad_loss'");
  ContrastiveGradients<float> g = grads();
  g.dA = out(7).matrix(Na - 1, d);
  reject(ctx, call(a, bv, saved, one, g, o), Status::ShapeMismatch, "'dA'");
  g = grads();
  g.dB = out(8).matrix(Nb, d - 1);
  reject(ctx, call(a, bv, saved, one, g, o), Status::ShapeMismatch, "'dB'");
  g = grads();
  g.dB.ld = d - 1;
  reject(ctx, call(a, bv, saved, one, g, o), Status::ShapeMismatch, "'dB'");
  g = grads();
  g.dt = VectorView<float>(out(9).data(), 2, out(9).memory());
  reject(ctx, call(a, bv, saved, one, g, o), Status::ShapeMismatch, "'dt'");
  g = grads();
  g.dA.memory = wrong_memory();
  reject(ctx, call(a, bv, saved, one, g, o), Status::MemoryLocation, "'dA'");
  g = grads();
  g.dA = MatrixView<float>(const_cast<float*>(bv.data), Na, d, d, bv.memory);  // overlaps B
  reject(ctx, call(a, bv, saved, one, g, o), Status::InvalidArgument, "'dA'");
  g = grads();
  g.db = VectorView<float>(out(7).data(), 1, out(7).memory());  // inside dA
  reject(ctx, call(a, bv, saved, one, g, o), Status::InvalidArgument, "'dA'");
  g = grads();
  g.dt = VectorView<float>(out(4).data(), 1, out(4).memory());  // inside lse_rows
  reject(ctx, call(a, bv, saved, one, g, o), Status::InvalidArgument, "'dt'");
  ClipLossOptions bad = o;
  bad.logit_scale.value = kInf;
  reject(ctx, call(a, bv, saved, one, grads(), bad), Status::InvalidArgument, "'logit_scale'");
}

TEST_P(ContrastiveErrors, ClipForwardBackwardAndBf16) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<bf16> A16(b(), embeddings<bf16>(Na, d, d, 5)), B16(b(), embeddings<bf16>(Nb, d, d, 6));
  TestArray<bf16> dA16(b(), std::vector<bf16>(Na * d, nan_of<bf16>()));
  ClipLossOptions o;
  const ClipForwardOutputs outs{loss(), row_losses(), col_losses(), lse_rows(), lse_cols()};
  reject(
      ctx,
      [&] {
        clip_loss_forward_backward(ctx, A16.cmatrix(Na, d), B16.cmatrix(Nb, d - 1), labels(), outs,
                                   {1.0, {}}, ContrastiveGradients<float>{dA(), dB()}, o);
      },
      Status::ShapeMismatch, "'B'");
  reject(
      ctx,
      [&] {
        clip_loss_forward_backward(ctx, A16.cmatrix(Na, d), B16.cmatrix(Nb, d), labels(),
                                   ClipForwardOutputs{}, {1.0, {}},
                                   ContrastiveGradients<float>{dA(), dB()}, o);
      },
      Status::InvalidArgument, "'loss'");
  reject(
      ctx,
      [&] {
        clip_loss_forward_backward(ctx, A16.cmatrix(Na, d), B16.cmatrix(Nb, d), labels(), outs,
                                   {1.0, {}},
                                   ContrastiveGradients<bf16>{dA16.matrix(Na, d + 1), {}}, o);
      },
      Status::ShapeMismatch, "'dA'");
  EXPECT_TRUE(bitwise_equal(dA16.values(), std::vector<bf16>(Na * d, nan_of<bf16>())));
}

TEST_P(ContrastiveErrors, Siglip) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  SiglipLossOptions o;
  const auto a = A(), bv = B(Nr);
  const LossScalar one{1.0, {}};
  // Absent labels need Na == Nb; labels in [-1, Nb).
  reject(
      ctx, [&] { siglip_loss_forward(ctx, a, bv, {}, loss(), row_losses(), o); },
      Status::ShapeMismatch, "'labels'");
  for (auto bad : {std::vector<std::int64_t>{0, 1, 2, 3, 4, 9},
                   std::vector<std::int64_t>{0, 1, 2, 3, 4, -2}}) {
    TestArray<std::int64_t> L(b(), bad);
    reject(
        ctx, [&] { siglip_loss_forward(ctx, a, bv, L.cvector(), loss(), row_losses(), o); },
        Status::InvalidArgument, "'labels'");
    reject(
        ctx, [&] { siglip_loss_backward(ctx, a, bv, L.cvector(), one, grads(Nr), o); },
        Status::InvalidArgument, "'labels'");
  }
  TestArray<std::int64_t> L(b(), std::vector<std::int64_t>{0, -1, 8, 3, 4, 2});  // valid
  const auto l = L.cvector();
  reject(
      ctx, [&] { siglip_loss_forward(ctx, a, bv, l, {}, row_losses(), o); },
      Status::InvalidArgument, "'loss'");
  reject(
      ctx,
      [&] {
        siglip_loss_forward(ctx, a, bv, l, loss(),
                            VectorView<float>(out(1).data(), Na - 1, out(1).memory()), o);
      },
      Status::ShapeMismatch, "'row_losses'");
  SiglipLossOptions bad = o;
  bad.logit_scale.value = kNaN;
  reject(
      ctx, [&] { siglip_loss_forward(ctx, a, bv, l, loss(), row_losses(), bad); },
      Status::InvalidArgument, "'logit_scale'");
  for (double t : {20.0, -88.0}) {
    bad = o;
    bad.logit_scale.value = t;
    reject(
        ctx, [&] { siglip_loss_backward(ctx, a, bv, l, one, grads(Nr), bad); },
        Status::InvalidArgument, "'logit_scale'");
  }
  for (double bias : {-kInf, 1e300, -70000.0}) {
    bad = o;
    bad.bias.value = bias;
    reject(
        ctx, [&] { siglip_loss_backward(ctx, a, bv, l, one, grads(Nr), bad); },
        Status::InvalidArgument, "'bias'");
  }
  bad = o;
  bad.precision = static_cast<Precision>(-1);
  reject(
      ctx, [&] { siglip_loss_backward(ctx, a, bv, l, one, grads(Nr), bad); },
      Status::InvalidArgument, "'precision'");
  reject(
      ctx, [&] { siglip_loss_backward(ctx, a, bv, l, one, grads(Nb), o); }, Status::ShapeMismatch,
      "'dB'");
  reject(
      ctx,
      [&] {
        siglip_loss_backward(ctx, a, bv, l, LossScalar{kInf, {}}, grads(Nr), o);
      },
      Status::InvalidArgument, "'grad_loss'");
  reject(
      ctx,
      [&] {
        siglip_loss_forward_backward(ctx, a, bv, l, VectorView<float>{}, row_losses(), one,
                                     grads(Nr), o);
      },
      Status::InvalidArgument, "'loss'");
  reject(
      ctx,
      [&] {
        siglip_loss_forward_backward(
            ctx, a, bv, l, loss(), row_losses(), one,
            ContrastiveGradients<float>{dA(), dB(Nr),
                                        VectorView<float>(out(0).data(), 1, out(0).memory()), db()},
            o);
      },
      Status::InvalidArgument, "'loss'");  // dt aliases loss
  reject(
      ctx, [&] { siglip_loss_forward(ctx, a, B_->cmatrix(Nr, d, d - 1), l, loss(), {}, o); },
      Status::ShapeMismatch, "'B'");
}

TEST_P(ContrastiveErrors, WorkspaceQueries) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  expect_error([&] { clip_loss_workspace_bytes(ctx, 0, 5, 5, ContrastivePass::Forward, {}); },
               Status::ShapeMismatch, "Na");
  expect_error([&] { siglip_loss_workspace_bytes(ctx, 5, 5, 0, ContrastivePass::Backward, {}); },
               Status::ShapeMismatch, "d");
  // The message names the extent as an argument (found by the C API fuzzer).
  expect_error([&] { clip_loss_workspace_bytes(ctx, 0, 5, 5, ContrastivePass::Forward, {}); },
               Status::ShapeMismatch, "argument 'Na'");
  expect_error([&] { siglip_loss_workspace_bytes(ctx, 5, -1, 5, ContrastivePass::Forward, {}); },
               Status::ShapeMismatch, "argument 'Nb'");
  expect_error([&] { clip_loss_workspace_bytes(ctx, 5, 5, 0, ContrastivePass::Backward, {}); },
               Status::ShapeMismatch, "argument 'd'");
  // Extents past the documented bounds: their workspace sizes once overflowed.
  constexpr std::int64_t kHuge = std::int64_t(1) << 62;
  for (ContrastivePass pass :
       {ContrastivePass::Forward, ContrastivePass::Backward, ContrastivePass::ForwardBackward}) {
    expect_error([&] { clip_loss_workspace_bytes(ctx, kHuge, 5, 5, pass, {}); },
                 Status::InvalidArgument, "'Na'");
    expect_error([&] { clip_loss_workspace_bytes(ctx, 5, kHuge, 5, pass, {}); },
                 Status::InvalidArgument, "'Nb'");
    expect_error([&] { siglip_loss_workspace_bytes(ctx, 5, 5, kHuge, pass, {}); },
                 Status::InvalidArgument, "'Na'");
    expect_error([&] { siglip_loss_workspace_bytes(ctx, kContrastiveMaxRows + 1, 5, 5, pass, {}); },
                 Status::InvalidArgument, "'Na'");
    expect_error([&] { clip_loss_workspace_bytes(ctx, 5, 1 << 20, 1 << 28, pass, {}); },
                 Status::InvalidArgument, "'Nb'");
  }
  // At the bounds the query answers.
  EXPECT_GT(clip_loss_workspace_bytes(ctx, kContrastiveMaxRows, kContrastiveMaxRows, 1 << 16,
                                      ContrastivePass::ForwardBackward, {}),
            0u);
}

// A view of more rows than the bound (its span fits 64 bits) is rejected before
// anything reads it.
TEST_P(ContrastiveErrors, RowsPastTheBound) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const MatrixView<const float> tall(A().data, kContrastiveMaxRows + 1, 1, 1, A().memory);
  reject(
      ctx,
      [&] {
        clip_loss_forward(ctx, tall, tall, {}, {loss(), {}, {}, {}, {}}, {});
      },
      Status::InvalidArgument, "'A'");
}

// On a Cuda context, a view that claims Device but points at host memory is caught
// by the pointer check.
TEST_P(ContrastiveErrors, PointerDisagreesWithItsView) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  if (cuda_device_count() == 0) GTEST_SKIP() << "the runtime check needs a CUDA device";
  std::vector<float> host(Na * d, 1.0f);
  TestArray<float> dev(Backend::Cuda, std::vector<float>(Na * d, 1.0f));
  const Memory claimed = b() == Backend::Cuda ? Memory::Device : Memory::Host;
  float* wrong = b() == Backend::Cuda ? host.data() : dev.data();
  const MatrixView<const float> lie(wrong, Na, d, d, claimed);
  reject(
      ctx, [&] { clip_loss_forward(ctx, lie, B(), {}, ClipForwardOutputs{loss()}, {}); },
      Status::MemoryLocation, "'A'");
}

INSTANTIATE_TEST_SUITE_P(Cpu, ContrastiveErrors, ::testing::Values(Backend::Cpu),
                         [](const auto& info) { return backend_label(info.param); });
INSTANTIATE_TEST_SUITE_P(Cuda, ContrastiveErrors, ::testing::Values(Backend::Cuda),
                         [](const auto& info) { return backend_label(info.param); });

}  // namespace
}  // namespace kfuse::test
