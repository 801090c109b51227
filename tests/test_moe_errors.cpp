// Bad input to every mixture-of-experts function, argument by argument: a
// kfuse::Error with the right status and a message naming the argument, and every
// output left exactly as it was.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "kfuse/moe.hpp"
#include "support/moe_test_data.hpp"
#include "support/test_memory.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {
namespace {

constexpr std::int64_t T = 6, K = 2, E = 3, H = 8, F = 8, LD = 16;  // LD: aligned, > cols

template <class V, class F_>
V with(V view, F_ change) {
  change(view);
  return view;
}

class MoeErrors : public ::testing::TestWithParam<Backend> {
 protected:
  Backend b() const { return GetParam(); }
  Memory wrong_memory() const { return b() == Backend::Cuda ? Memory::Host : Memory::Device; }

  // Snapshots of outputs: after a rejected call, each must hold what it held before.
  std::vector<std::function<bool()>> outputs_;
  template <class U>
  void watch(const TestArray<U>& a) {
    const auto before = a.values();
    outputs_.push_back([&a, before] { return bitwise_equal(a.values(), before); });
  }
  void reject(Context& ctx, const std::function<void()>& call, Status status,
              const std::string& needle) {
    expect_error(call, status, needle);
    ctx.synchronize();
    for (std::size_t i = 0; i < outputs_.size(); ++i)
      EXPECT_TRUE(outputs_[i]()) << "output " << i << " written on error (" << needle << ")";
  }
  // The mutations every matrix argument must survive: null data, ld < cols, a wrong
  // row count, the wrong memory space; with `aligned`, a misaligned ld and pointer.
  template <class U>
  void reject_matrix(Context& ctx, const std::function<void(MatrixView<U>)>& call, MatrixView<U> m,
                     const std::string& name, bool aligned) {
    const std::string needle = "'" + name + "'";
    reject(
        ctx, [&] { call(with(m, [](auto& v) { v.data = nullptr; })); }, Status::InvalidArgument,
        needle);
    reject(
        ctx, [&] { call(with(m, [](auto& v) { v.ld = v.cols - 1; })); }, Status::ShapeMismatch,
        needle);
    reject(
        ctx, [&] { call(with(m, [](auto& v) { v.rows -= 1; })); }, Status::ShapeMismatch, needle);
    reject(
        ctx, [&] { call(with(m, [](auto& v) { v.rows = -1; })); }, Status::ShapeMismatch, needle);
    reject(
        ctx, [&] { call(with(m, [&](auto& v) { v.memory = wrong_memory(); })); },
        Status::MemoryLocation, needle);
    if (aligned) {
      reject(
          ctx, [&] { call(with(m, [](auto& v) { v.ld += 1; })); }, Status::ShapeMismatch, needle);
      reject(
          ctx, [&] { call(with(m, [](auto& v) { v.data += 1; })); }, Status::InvalidArgument,
          needle);
    }
  }
};

// A valid problem: routing, plan, inputs, NaN outputs.
struct Problem {
  Routing r;
  BackendPlan bp;
  TestArray<float> X, Xp, W, Wt, Y, Yp, gates, dgates, dW;
  Problem(Context& ctx, Backend b)
      : r(make_routing(Case{"errors", T, H, F, E, K}, 9)),
        bp(build_plan(ctx, b, r, MoePlanOptions{})),
        X(b, uniform<float>(T * LD, 1)),
        Xp(b, uniform<float>(bp.layout.rows * LD, 2)),
        W(b, uniform<float>(E * H * LD, 3)),
        Wt(b, uniform<float>(E * F * LD, 4)),
        Y(b, nan_filled<float>(T * LD)),
        Yp(b, nan_filled<float>(bp.layout.rows * LD)),
        gates(b, r.gates),
        dgates(b, nan_filled<float>(T * K)),
        dW(b, nan_filled<float>(E * H * LD)) {}
  std::int64_t rows() const { return bp.layout.rows; }
};

TEST(MoeLayoutErrors, EveryExtentAndOption) {
  auto bad = [](std::int64_t t, std::int64_t k, std::int64_t e, MoePlanOptions o,
                const char* needle) {
    expect_error([&] { moe_plan_layout(t, k, e, o); }, Status::InvalidArgument, needle);
  };
  const MoePlanOptions ok;
  bad(-1, 2, 4, ok, "'tokens'");
  bad(std::int64_t(1) << 31, 1, 4, ok, "'tokens'");
  bad(std::int64_t(1) << 29, 8, 8, ok, "'tokens'");  // T k = 2^32 slots
  bad(4, 0, 4, ok, "'top_k'");
  bad(4, 5, 4, ok, "'top_k'");  // k > E
  bad(4, 1, 0, ok, "'experts'");
  bad(4, 1, kMoeMaxExperts + 1, ok, "'experts'");
  bad(4, 1, 4, MoePlanOptions{0, 0, false}, "'options.pad_to'");
  bad(4, 1, 4, MoePlanOptions{65537, 0, false}, "'options.pad_to'");
  bad(4, 1, 4, MoePlanOptions{1, -1, false}, "'options.capacity'");
  const MoePlanLayout L = moe_plan_layout(5, 2, 4, MoePlanOptions{8, 3, false});
  EXPECT_EQ(L.rows, 4 * 8);  // every expert at its capacity, padded
  EXPECT_EQ(L.storage_size(), 4 + 5 + 32 + 10);
}

// A layout built by hand: its sizes near 2^62 once overflowed in storage_size and
// moe_plan_views before anything checked them.
TEST(MoeLayoutErrors, HandMadeLayoutsAreCheckedBeforeTheirSizes) {
  const MoePlanLayout good = moe_plan_layout(5, 2, 4);
  constexpr std::int64_t kHuge = std::int64_t(1) << 62;
  auto changed = [&](auto change) {
    MoePlanLayout L = good;
    change(L);
    return L;
  };
  const std::pair<MoePlanLayout, const char*> cases[] = {
      {changed([&](MoePlanLayout& L) { L.tokens = kHuge; }), "'layout.tokens'"},
      {changed([&](MoePlanLayout& L) { L.top_k = kHuge; }), "'layout.top_k'"},
      {changed([&](MoePlanLayout& L) { L.experts = kHuge; }), "'layout.experts'"},
      {changed([&](MoePlanLayout& L) { L.rows = kHuge; }), "'layout.rows'"},
      {changed([&](MoePlanLayout& L) { L.rows = std::numeric_limits<std::int64_t>::max(); }),
       "'layout.rows'"},
      {changed([&](MoePlanLayout& L) { L.rows = good.rows - 1; }), "'layout.rows'"},
      {changed([&](MoePlanLayout& L) { L.options.capacity = kHuge; }), "'layout.options.capacity'"},
  };
  std::vector<std::int32_t> storage(64, 5);
  for (const auto& [L, needle] : cases) {
    expect_error([&] { (void)L.storage_size(); }, Status::InvalidArgument, needle);
    expect_error([&] { moe_plan_views(L, storage.data(), Memory::Host); }, Status::InvalidArgument,
                 needle);
  }
  EXPECT_EQ(storage, std::vector<std::int32_t>(64, 5));
  expect_error([&] { moe_plan_views(good, nullptr, Memory::Host); }, Status::InvalidArgument,
               "'storage'");
}

TEST_P(MoeErrors, Router) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  TestArray<float> logits(b(), uniform<float>(T * 8, 1));
  TestArray<std::int32_t> ids(b(), std::vector<std::int32_t>(T * K, -5));
  TestArray<float> gates(b(), nan_filled<float>(T * K));
  watch(ids);
  watch(gates);
  const auto l = logits.cmatrix(T, E, 8);
  const auto i = ids.matrix(T, K);
  const auto g = gates.matrix(T, K);
  RouterOptions o;
  auto run = [&](MatrixView<const float> l_, MatrixView<std::int32_t> i_, MatrixView<float> g_,
                 RouterOptions o_) { moe_router_topk(ctx, l_, i_, g_, o_); };
  reject(
      ctx, [&] { run(with(l, [](auto& v) { v.ld = v.cols - 1; }), i, g, o); },
      Status::ShapeMismatch, "'logits'");
  reject(
      ctx, [&] { run(with(l, [](auto& v) { v.data = nullptr; }), i, g, o); },
      Status::InvalidArgument, "'logits'");
  reject(
      ctx, [&] { run(with(l, [&](auto& v) { v.memory = wrong_memory(); }), i, g, o); },
      Status::MemoryLocation, "'logits'");
  reject(
      ctx, [&] { run(with(l, [](auto& v) { v.cols = 0; }), i, g, o); }, Status::ShapeMismatch,
      "'logits'");
  reject(
      ctx, [&] { run(with(l, [](auto& v) { v.cols = v.ld = kMoeMaxExperts + 1; }), i, g, o); },
      Status::ShapeMismatch, "'logits'");
  reject_matrix<std::int32_t>(
      ctx, [&](auto m) { run(l, m, g, o); }, i, "ids", false);
  reject_matrix<float>(
      ctx, [&](auto m) { run(l, i, m, o); }, g, "gates", false);
  // k > E, k = 0, gates' k differs from ids'
  reject(
      ctx, [&] { run(with(l, [](auto& v) { v.cols = 1; }), i, g, o); }, Status::InvalidArgument,
      "'ids'");
  reject(
      ctx,
      [&] {
        run(l, with(i, [](auto& v) { v.cols = 0; }), with(g, [](auto& v) { v.cols = 0; }), o);
      },
      Status::ShapeMismatch, "'ids'");
  reject(
      ctx, [&] { run(l, i, with(g, [](auto& v) { v.cols = 1; }), o); }, Status::ShapeMismatch,
      "'gates'");
  RouterOptions bad;
  bad.mode = static_cast<RouterMode>(5);
  reject(
      ctx, [&] { run(l, i, g, bad); }, Status::InvalidArgument, "'mode'");
  // gates overlapping the logits
  reject(
      ctx, [&] { run(l, i, MatrixView<float>(logits.data(), T, K, K, logits.memory()), o); },
      Status::InvalidArgument, "'gates'");
  run(l, i, g, o);  // the valid call succeeds
}

TEST_P(MoeErrors, Plan) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  const MoePlanLayout layout = moe_plan_layout(T, K, E, MoePlanOptions{8, 0, false});
  TestArray<std::int32_t> storage(b(), std::vector<std::int32_t>(layout.storage_size(), 99));
  watch(storage);
  std::vector<std::int32_t> good = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2};
  TestArray<std::int32_t> ids(b(), good);
  const MoePlan plan = moe_plan_views(layout, storage.data(), storage.memory());
  const auto i = ids.cmatrix(T, K);
  reject_matrix<const std::int32_t>(
      ctx, [&](auto m) { moe_plan(ctx, m, plan); }, i, "ids", false);
  reject(
      ctx, [&] { moe_plan(ctx, with(i, [](auto& v) { v.cols = 1; }), plan); },
      Status::ShapeMismatch, "'ids'");
  if (b() == Backend::Cpu) {  // host ids out of range (device ids: test_moe.cpp)
    for (std::int32_t badid : {-1, 3, 1 << 30}) {
      auto ids_bad = good;
      ids_bad[7] = badid;
      TestArray<std::int32_t> in(b(), ids_bad);
      reject(
          ctx, [&] { moe_plan(ctx, in.cmatrix(T, K), plan); }, Status::InvalidArgument, "'ids'");
    }
  }
  // The plan's own views and layout.
  reject(
      ctx, [&] { moe_plan(ctx, i, with(plan, [](auto& p) { p.layout.rows += 1; })); },
      Status::ShapeMismatch, "'plan.layout'");
  reject(
      ctx, [&] { moe_plan(ctx, i, with(plan, [](auto& p) { p.layout.top_k = 4; })); },
      Status::InvalidArgument, "'plan.layout.top_k'");
  reject(
      ctx, [&] { moe_plan(ctx, i, with(plan, [](auto& p) { p.counts.size -= 1; })); },
      Status::ShapeMismatch, "'plan.counts'");
  reject(
      ctx, [&] { moe_plan(ctx, i, with(plan, [](auto& p) { p.offsets.data = nullptr; })); },
      Status::InvalidArgument, "'plan.offsets'");
  reject(
      ctx, [&] { moe_plan(ctx, i, with(plan, [](auto& p) { p.row_slot.size += 1; })); },
      Status::ShapeMismatch, "'plan.row_slot'");
  reject(
      ctx,
      [&] { moe_plan(ctx, i, with(plan, [&](auto& p) { p.slot_row.memory = wrong_memory(); })); },
      Status::MemoryLocation, "'plan.slot_row'");
  // host_counts: host memory, E entries.
  std::vector<std::int32_t> counts(E + 1, -3);
  reject(
      ctx, [&] { moe_plan(ctx, i, plan, host_vector(counts.data(), E + 1)); },
      Status::ShapeMismatch, "'host_counts'");
  reject(
      ctx,
      [&] { moe_plan(ctx, i, plan, VectorView<std::int32_t>(counts.data(), E, Memory::Device)); },
      Status::MemoryLocation, "'host_counts'");
  EXPECT_EQ(counts, std::vector<std::int32_t>(E + 1, -3));
  // ids overlapping the plan
  reject(
      ctx,
      [&] {
        moe_plan(ctx, MatrixView<const std::int32_t>(storage.data(), T, K, K, storage.memory()),
                 plan);
      },
      Status::InvalidArgument, "'plan'");
  if (b() == Backend::Cpu) {  // host_counts (host memory) overlapping ids or the plan
    watch(ids);
    reject(
        ctx, [&] { moe_plan(ctx, i, plan, host_vector(ids.data() + 1, E)); },
        Status::InvalidArgument, "'host_counts'");
    for (const auto& array : {plan.counts, plan.offsets, plan.row_slot, plan.slot_row})
      reject(
          ctx, [&] { moe_plan(ctx, i, plan, host_vector(array.data, E)); }, Status::InvalidArgument,
          "'host_counts'");
    // the plan's arrays overlapping one another
    reject(
        ctx, [&] { moe_plan(ctx, i, with(plan, [](auto& p) { p.offsets.data = p.counts.data; })); },
        Status::InvalidArgument, "'plan.offsets'");
  }
  moe_plan(ctx, i, plan);
}

TEST_P(MoeErrors, ScatterAndGather) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  Problem p(ctx, b());
  watch(p.Y);
  watch(p.Yp);
  watch(p.dgates);
  const MoePlan& plan = p.bp.plan;
  const std::int64_t rows = p.rows();
  const auto X = p.X.cmatrix(T, H, LD), Xp = p.Xp.cmatrix(rows, H, LD);
  const auto Y = p.Y.matrix(T, H, LD), Yp = p.Yp.matrix(rows, H, LD);
  const auto g = p.gates.cmatrix(T, K);
  const auto dg = p.dgates.matrix(T, K);

  reject_matrix<const float>(
      ctx, [&](auto m) { moe_scatter(ctx, plan, m, Yp); }, X, "X", false);
  reject_matrix<float>(
      ctx, [&](auto m) { moe_scatter(ctx, plan, X, m); }, Yp, "Xp", false);
  reject(
      ctx, [&] { moe_scatter(ctx, plan, X, with(Yp, [](auto& v) { v.cols -= 1; })); },
      Status::ShapeMismatch, "'Xp'");
  reject(
      ctx, [&] { moe_scatter(ctx, with(plan, [](auto& q) { q.layout.tokens += 1; }), X, Yp); },
      Status::ShapeMismatch, "'plan.layout'");
  reject(
      ctx,
      [&] {
        moe_scatter(ctx, plan, MatrixView<const float>(p.Yp.data(), T, H, LD, Yp.memory), Yp);
      },
      Status::InvalidArgument, "'Xp'");

  reject_matrix<const float>(
      ctx, [&](auto m) { moe_scatter_backward(ctx, plan, m, Y); }, Xp, "dXp", false);
  reject_matrix<float>(
      ctx, [&](auto m) { moe_scatter_backward(ctx, plan, Xp, m); }, Y, "dX", false);

  reject_matrix<const float>(
      ctx, [&](auto m) { moe_gather(ctx, plan, m, g, Y); }, Xp, "Yp", false);
  reject_matrix<const float>(
      ctx, [&](auto m) { moe_gather(ctx, plan, Xp, m, Y); }, g, "gates", false);
  reject_matrix<float>(
      ctx, [&](auto m) { moe_gather(ctx, plan, Xp, g, m); }, Y, "Y", false);
  reject(
      ctx, [&] { moe_gather(ctx, plan, Xp, with(g, [](auto& v) { v.cols = 1; }), Y); },
      Status::ShapeMismatch, "'gates'");
  reject(
      ctx, [&] { moe_gather(ctx, plan, Xp, g, with(Y, [](auto& v) { v.cols += 1; })); },
      Status::ShapeMismatch, "'Y'");

  auto gb = [&](MatrixView<const float> yp, MatrixView<const float> gt, MatrixView<const float> dy,
                MatrixView<float> dyp,
                MatrixView<float> dgt) { moe_gather_backward(ctx, plan, yp, gt, dy, dyp, dgt); };
  reject_matrix<const float>(
      ctx, [&](auto m) { gb(m, g, X, Yp, dg); }, Xp, "Yp", false);
  reject_matrix<const float>(
      ctx, [&](auto m) { gb(Xp, m, X, Yp, dg); }, g, "gates", false);
  reject_matrix<const float>(
      ctx, [&](auto m) { gb(Xp, g, m, Yp, dg); }, X, "dY", false);
  reject_matrix<float>(
      ctx, [&](auto m) { gb(Xp, g, X, m, dg); }, Yp, "dYp", false);
  reject_matrix<float>(
      ctx, [&](auto m) { gb(Xp, g, X, Yp, m); }, dg, "dgates", false);
  reject(
      ctx, [&] { gb(Xp, g, X, Yp, with(dg, [](auto& v) { v.cols = 1; })); }, Status::ShapeMismatch,
      "'dgates'");
  // dgates overlapping the gates
  reject(
      ctx, [&] { gb(Xp, g, X, Yp, MatrixView<float>(p.gates.data(), T, K, K, g.memory)); },
      Status::InvalidArgument, "'dgates'");
}

TEST_P(MoeErrors, GroupedGemms) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  Problem p(ctx, b());
  watch(p.Y);
  watch(p.Yp);
  watch(p.dW);
  const MoePlan& plan = p.bp.plan;
  const std::int64_t rows = p.rows();
  const auto X = p.X.cmatrix(T, H, LD), Xp = p.Xp.cmatrix(rows, H, LD);
  const auto W = p.W.cmatrix(E * H, F, LD), Wt = p.Wt.cmatrix(E * F, H, LD);
  const auto Y = p.Y.matrix(T, F, LD), Yp = p.Yp.matrix(rows, F, LD);
  const auto g = p.gates.cmatrix(T, K);
  MoeGemmOptions o, t;
  t.transpose_w = true;

  reject_matrix<const float>(
      ctx, [&](auto m) { moe_grouped_gemm(ctx, plan, m, W, Yp, o); }, Xp, "Xp", true);
  reject_matrix<const float>(
      ctx, [&](auto m) { moe_grouped_gemm(ctx, plan, Xp, m, Yp, o); }, W, "W", true);
  reject_matrix<float>(
      ctx, [&](auto m) { moe_grouped_gemm(ctx, plan, Xp, W, m, o); }, Yp, "Yp", true);
  reject(
      ctx, [&] { moe_grouped_gemm(ctx, plan, Xp, with(W, [](auto& v) { v.cols -= 1; }), Yp, o); },
      Status::ShapeMismatch, "'W'");
  // The transposed layout wants W [E*F x H]: W [E*H x F] fits only when H == F,
  // so probe with a mismatched row count.
  reject(
      ctx, [&] { moe_grouped_gemm(ctx, plan, Xp, with(Wt, [](auto& v) { v.rows += 8; }), Yp, t); },
      Status::ShapeMismatch, "'W'");
  moe_grouped_gemm(ctx, plan, Xp, Wt, Yp, t);  // valid: transposed
  ctx.synchronize();
  outputs_.clear();
  watch(p.Y);
  watch(p.Yp);
  watch(p.dW);

  reject_matrix<const float>(
      ctx, [&](auto m) { moe_gather_gemm(ctx, plan, m, W, Yp, o); }, X, "X", true);
  reject_matrix<float>(
      ctx, [&](auto m) { moe_gather_gemm(ctx, plan, X, W, m, o); }, Yp, "Yp", true);

  reject_matrix<const float>(
      ctx, [&](auto m) { moe_gemm_combine(ctx, plan, m, W, g, Y, o); }, Xp, "Hp", true);
  reject_matrix<const float>(
      ctx, [&](auto m) { moe_gemm_combine(ctx, plan, Xp, W, m, Y, o); }, g, "gates", false);
  reject_matrix<float>(
      ctx, [&](auto m) { moe_gemm_combine(ctx, plan, Xp, W, g, m, o); }, Y, "Y", true);

  const auto dYp = p.Yp.cmatrix(rows, F, LD);
  const auto dW = p.dW.matrix(E * H, F, LD);
  reject_matrix<const float>(
      ctx, [&](auto m) { moe_grouped_gemm_wgrad(ctx, plan, m, dYp, dW); }, Xp, "Xp", true);
  reject_matrix<const float>(
      ctx, [&](auto m) { moe_grouped_gemm_wgrad(ctx, plan, Xp, m, dW); }, dYp, "dYp", true);
  reject_matrix<float>(
      ctx, [&](auto m) { moe_grouped_gemm_wgrad(ctx, plan, Xp, dYp, m); }, dW, "dW", true);
  // bf16: rows must be a multiple of 8 elements.
  TestArray<bf16> a(b(), std::vector<bf16>(rows * LD)), w(b(), std::vector<bf16>(E * H * LD)),
      y(b(), std::vector<bf16>(rows * LD, nan_of<bf16>()));
  watch(y);
  reject(
      ctx,
      [&] {
        moe_grouped_gemm(ctx, plan, a.cmatrix(rows, H, 12), w.cmatrix(E * H, F, LD),
                         y.matrix(rows, F, LD));
      },
      Status::ShapeMismatch, "'Xp'");
}

TEST_P(MoeErrors, Mlp) {
  KFUSE_CONTEXT_OR_SKIP(ctx, b());
  Problem p(ctx, b());
  const MoePlan& plan = p.bp.plan;
  const std::int64_t rows = p.rows();
  TestArray<float> W1(b(), uniform<float>(E * H * LD, 5)), W3(b(), uniform<float>(E * H * LD, 6)),
      W2(b(), uniform<float>(E * F * LD, 7)), h1(b(), nan_filled<float>(rows * LD)),
      h3(b(), nan_filled<float>(rows * LD)), dX(b(), nan_filled<float>(T * LD)),
      dW1(b(), nan_filled<float>(E * H * LD)), dW3(b(), nan_filled<float>(E * H * LD)),
      dW2(b(), nan_filled<float>(E * F * LD));
  for (auto* out : {&p.Y, &h1, &h3, &dX, &p.dgates, &dW1, &dW3, &dW2})
    watch(*out);
  const auto X = p.X.cmatrix(T, H, LD);
  const auto g = p.gates.cmatrix(T, K);
  const MoeMlpWeights<float> w{W1.cmatrix(E * H, F, LD), W3.cmatrix(E * H, F, LD),
                               W2.cmatrix(E * F, H, LD)};
  const auto Y = p.Y.matrix(T, H, LD);
  const MoeMlpSaved<float> saved{h1.matrix(rows, F, LD), h3.matrix(rows, F, LD)};
  const MoeMlpGrads<float> gr{dX.matrix(T, H, LD), p.dgates.matrix(T, K), dW1.matrix(E * H, F, LD),
                              dW3.matrix(E * H, F, LD), dW2.matrix(E * F, H, LD)};
  auto fwd = [&](MatrixView<const float> x, MatrixView<const float> gt,
                 const MoeMlpWeights<float>& ww, MatrixView<float> y,
                 const MoeMlpSaved<float>& s) { moe_mlp_forward(ctx, plan, x, gt, ww, y, s); };
  reject_matrix<const float>(
      ctx, [&](auto m) { fwd(m, g, w, Y, saved); }, X, "X", true);
  reject_matrix<const float>(
      ctx, [&](auto m) { fwd(X, m, w, Y, saved); }, g, "gates", false);
  reject_matrix<float>(
      ctx, [&](auto m) { fwd(X, g, w, m, saved); }, Y, "Y", true);
  reject_matrix<const float>(
      ctx, [&](auto m) { fwd(X, g, with(w, [&](auto& v) { v.w3 = m; }), Y, saved); }, w.w3,
      "weights.w3", true);
  reject_matrix<const float>(
      ctx, [&](auto m) { fwd(X, g, with(w, [&](auto& v) { v.w2 = m; }), Y, saved); }, w.w2,
      "weights.w2", true);
  reject(
      ctx, [&] { fwd(X, g, with(w, [](auto& v) { v.w1.rows -= 1; }), Y, saved); },
      Status::ShapeMismatch, "'weights.w1'");
  reject(
      ctx, [&] { fwd(X, g, with(w, [](auto& v) { v.w3.cols -= 1; }), Y, saved); },
      Status::ShapeMismatch, "'weights.w3'");
  reject_matrix<float>(
      ctx, [&](auto m) { fwd(X, g, w, Y, with(saved, [&](auto& s) { s.h1 = m; })); }, saved.h1,
      "saved.h1", true);
  reject(
      ctx, [&] { fwd(X, g, w, Y, with(saved, [](auto& s) { s.h3 = {}; })); }, Status::ShapeMismatch,
      "'saved.h3'");
  reject(
      ctx, [&] { fwd(X, g, w, with(Y, [](auto& v) { v.cols -= 1; }), saved); },
      Status::ShapeMismatch, "'Y'");

  const auto dY = p.X.cmatrix(T, H, LD);
  auto bwd = [&](MatrixView<const float> dy, const MoeMlpSaved<float>& s,
                 const MoeMlpGrads<float>& gg) { moe_mlp_backward(ctx, plan, X, g, w, dy, s, gg); };
  reject_matrix<const float>(
      ctx, [&](auto m) { bwd(m, saved, gr); }, dY, "dY", true);
  reject_matrix<float>(
      ctx, [&](auto m) { bwd(dY, saved, with(gr, [&](auto& q) { q.dX = m; })); }, gr.dX, "grads.dX",
      true);
  reject_matrix<float>(
      ctx, [&](auto m) { bwd(dY, saved, with(gr, [&](auto& q) { q.dgates = m; })); }, gr.dgates,
      "grads.dgates", false);
  reject_matrix<float>(
      ctx, [&](auto m) { bwd(dY, saved, with(gr, [&](auto& q) { q.dw1 = m; })); }, gr.dw1,
      "grads.dw1", true);
  reject_matrix<float>(
      ctx, [&](auto m) { bwd(dY, saved, with(gr, [&](auto& q) { q.dw3 = m; })); }, gr.dw3,
      "grads.dw3", true);
  reject_matrix<float>(
      ctx, [&](auto m) { bwd(dY, saved, with(gr, [&](auto& q) { q.dw2 = m; })); }, gr.dw2,
      "grads.dw2", true);
  // A gradient overlapping another, or an input.
  reject(
      ctx, [&] { bwd(dY, saved, with(gr, [&](auto& q) { q.dw3 = q.dw1; })); },
      Status::InvalidArgument, "'grads.dw1'");
  reject(
      ctx,
      [&] {
        bwd(dY, saved, with(gr, [&](auto& q) {
              q.dw1 = MatrixView<float>(W1.data(), E * H, F, LD, X.memory);
            }));
      },
      Status::InvalidArgument, "'grads.dw1'");
}

INSTANTIATE_TEST_SUITE_P(Cpu, MoeErrors, ::testing::Values(Backend::Cpu),
                         [](const auto& info) { return backend_label(info.param); });
INSTANTIATE_TEST_SUITE_P(Cuda, MoeErrors, ::testing::Values(Backend::Cuda),
                         [](const auto& info) { return backend_label(info.param); });

}  // namespace
}  // namespace kfuse::test
