// The mixture-of-experts family, three ways: brute force in double (in the test,
// support/moe_reference.hpp), the CPU path, the GPU path. Instances named Cpu/...
// run everywhere, Cuda/... skip without a usable device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "kfuse/moe.hpp"
#include "support/moe_reference.hpp"
#include "support/moe_test_data.hpp"
#include "support/test_memory.hpp"
#include "support/test_util.hpp"

namespace kfuse::test {
namespace {

// Tile edges of the GPU kernels (64 and 128 rows), empty experts, one expert with
// everything, k = 1, k = E, T = 1, E = 1, padding, capacity drops, many experts,
// and one case large enough for the CPU path's parallel loops.
const std::vector<Case> kCases = {
    {"T1_E1_k1", 1, 8, 8, 1, 1},
    {"k1", 37, 24, 16, 4, 1},
    {"k_eq_E", 13, 16, 12, 4, 4},
    {"E1", 9, 16, 8, 1, 1},
    {"one_expert", 70, 16, 8, 6, 1, 1, 0, IdsKind::OneExpert},
    {"one_expert_k2", 33, 16, 8, 3, 2, 1, 0, IdsKind::OneExpert},
    {"odd_dims", 65, 33, 17, 5, 2},
    {"pad8", 40, 16, 16, 6, 2, 8},
    {"pad16_capacity", 50, 16, 8, 4, 2, 16, 20},
    {"capacity_drop", 64, 16, 8, 4, 3, 1, 10},
    {"tile_edges", 577, 24, 40, 8, 1, 1, 0, IdsKind::Counts, {63, 128, 0, 129, 1, 64, 65, 127}},
    {"many_experts", 40, 16, 8, 64, 8},
    {"large_enough_for_threads", 300, 128, 64, 4, 2, 1, 0},  // the CPU path's parallel loops
};

using Param = std::tuple<Backend, Case>;
std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  return case_name(std::get<1>(info.param));
}

class MoeCase : public ::testing::TestWithParam<Param> {
 protected:
  Backend backend() const { return std::get<0>(GetParam()); }
  const Case& c() const { return std::get<1>(GetParam()); }
};

// ------------------------------------------------------------------ plan

TEST_P(MoeCase, PlanMatchesBruteForceAndIsStable) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  const Routing r = make_routing(c(), 100);
  BackendPlan bp = build_plan(ctx, backend(), r, options_of(c()));
  const RefPlan p = ref_plan(r.ids, c().T, c().k, c().E, c().pad_to, c().capacity);
  const auto all = bp.storage.values();
  const std::int64_t E = c().E, rows = bp.layout.rows, slots = c().T * c().k;
  const std::int32_t* counts = all.data();
  const std::int32_t* offsets = counts + E;
  const std::int32_t* row_slot = offsets + E + 1;
  const std::int32_t* slot_row = row_slot + rows;
  for (std::int64_t e = 0; e < E; ++e)
    EXPECT_EQ(counts[e], p.counts[e]) << "expert " << e;
  for (std::int64_t e = 0; e <= E; ++e)
    EXPECT_EQ(offsets[e], p.offsets[e]) << "offset " << e;
  ASSERT_LE(p.offsets[E], rows);
  for (std::int64_t row = 0; row < rows; ++row)
    EXPECT_EQ(row_slot[row], row < p.offsets[E] ? p.row_slot[row] : -1) << "row " << row;
  for (std::int64_t s = 0; s < slots; ++s)
    EXPECT_EQ(slot_row[s], p.slot_row[s]) << "slot " << s;
  // Stability, stated directly: within an expert, slots increase with the row;
  // offsets are multiples of pad_to; slot_row and row_slot are inverse.
  for (std::int64_t e = 0; e < E; ++e) {
    EXPECT_EQ(offsets[e] % c().pad_to, 0);
    for (std::int64_t row = offsets[e] + 1; row < offsets[e] + counts[e]; ++row)
      EXPECT_LT(row_slot[row - 1], row_slot[row]) << "expert " << e << " row " << row;
  }
  for (std::int64_t s = 0; s < slots; ++s)
    if (slot_row[s] >= 0) {
      EXPECT_EQ(row_slot[slot_row[s]], s);
    }
  // Host counts on request.
  std::vector<std::int32_t> host_counts(static_cast<std::size_t>(E), -7);
  TestArray<std::int32_t> ids(backend(), r.ids);
  moe_plan(ctx, ids.cmatrix(c().T, c().k), bp.plan, host_vector(host_counts.data(), E));
  for (std::int64_t e = 0; e < E; ++e)
    EXPECT_EQ(host_counts[e], p.counts[e]);
}

// ------------------------------------------------------------------ scatter / gather

template <class T>
void check_rows(Context& ctx, Backend b, const Case& c) {
  const Routing r = make_routing(c, 101);
  BackendPlan bp = build_plan(ctx, b, r, options_of(c));
  const RefPlan p = ref_plan(r.ids, c.T, c.k, c.E, c.pad_to, c.capacity);
  const std::int64_t rows = bp.layout.rows, used = p.offsets[c.E], H = c.H, nt = c.T, k = c.k;
  TestArray<float> gates(b, r.gates);
  // Aligned rows take the 16-byte vector path on the GPU, unaligned ones the scalar path.
  for (std::int64_t ld : {aligned_ld(H), H + 3}) {
    SCOPED_TRACE("ld " + std::to_string(ld) + " " + type_name<T>());
    const Mat<T> X = random_mat<T>(nt, H, ld, 1);
    const Mat<T> G = random_mat<T>(rows, H, ld, 2);  // dXp / Yp
    const Mat<T> dY = random_mat<T>(nt, H, ld, 3);
    const RefMat x = X.ref(), g = G.ref(), dy = dY.ref();
    TestArray<T> x_in(b, X.host), g_in(b, G.host), dy_in(b, dY.host);

    // scatter: an exact copy; padding rows zero.
    TestArray<T> xp(b, nan_mat<T>(rows, H, ld).host);
    moe_scatter(ctx, bp.plan, x_in.cmatrix(nt, H, ld), xp.matrix(rows, H, ld));
    ctx.synchronize();
    RefMat want(used, H);
    for (std::int64_t row = 0; row < used; ++row)
      if (p.row_slot[row] >= 0)
        for (std::int64_t j = 0; j < H; ++j)
          want(row, j) = x(p.token(p.row_slot[row]), j);
    const auto xp_got = xp.values();
    EXPECT_EQ(values_of(xp_got, used, H, ld).v, want.v);
    EXPECT_TRUE(untouched(xp_got, rows, H, ld, used));

    // scatter backward and gather: sums over each token's kept slots.
    RefMat sum(nt, H), gathered(nt, H);
    for (std::int64_t t = 0; t < nt; ++t)
      for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t row = p.slot_row[t * k + j];
        if (row < 0) continue;
        for (std::int64_t col = 0; col < H; ++col) {
          sum(t, col) += g(row, col);
          gathered(t, col) += r.gates_d[t * k + j] * g(row, col);
        }
      }
    TestArray<T> dx(b, nan_mat<T>(nt, H, ld).host), y(b, nan_mat<T>(nt, H, ld).host);
    moe_scatter_backward(ctx, bp.plan, g_in.cmatrix(rows, H, ld), dx.matrix(nt, H, ld));
    moe_gather(ctx, bp.plan, g_in.cmatrix(rows, H, ld), gates.cmatrix(nt, k), y.matrix(nt, H, ld));
    ctx.synchronize();
    const auto dx_got = dx.values(), y_got = y.values();
    EXPECT_LE(rel_err(values_of(dx_got, nt, H, ld), sum), tol<T>());
    EXPECT_LE(rel_err(values_of(y_got, nt, H, ld), gathered), tol<T>());
    // Both backends form the gather as one fp32 fma chain per element over the kept
    // slots in slot order, from 0 (src/moe/cpu.cpp, kernels/moe/rows.cu): bit for bit.
    RefMat chain(nt, H);
    for (std::int64_t t = 0; t < nt; ++t)
      for (std::int64_t col = 0; col < H; ++col) {
        float acc = 0.0f;
        for (std::int64_t j = 0; j < k; ++j) {
          const std::int64_t row = p.slot_row[t * k + j];
          if (row < 0) continue;
          acc = std::fma(r.gates[t * k + j], static_cast<float>(as_double(G.host[row * ld + col])),
                         acc);
        }
        chain(t, col) = as_double(from_double<T>(acc));
      }
    EXPECT_EQ(values_of(y_got, nt, H, ld).v, chain.v);
    EXPECT_TRUE(untouched(dx_got, nt, H, ld, nt));
    EXPECT_TRUE(untouched(y_got, nt, H, ld, nt));

    // gather backward: dYp = g dY[token] (padding rows zero), dgates = <Yp row, dY row>.
    TestArray<T> dyp(b, nan_mat<T>(rows, H, ld).host);
    TestArray<float> dgates(b, nan_filled<float>(static_cast<std::size_t>(nt * k)));
    moe_gather_backward(ctx, bp.plan, g_in.cmatrix(rows, H, ld), gates.cmatrix(nt, k),
                        dy_in.cmatrix(nt, H, ld), dyp.matrix(rows, H, ld), dgates.matrix(nt, k));
    ctx.synchronize();
    RefMat want_dyp(used, H), want_dg(nt, k);
    for (std::int64_t row = 0; row < used; ++row) {
      const std::int64_t s = p.row_slot[row];
      if (s < 0) continue;
      for (std::int64_t col = 0; col < H; ++col) {
        want_dyp(row, col) = r.gates_d[s] * dy(p.token(s), col);
        want_dg(p.token(s), s % k) += g(row, col) * dy(p.token(s), col);
      }
    }
    const auto dyp_got = dyp.values();
    EXPECT_LE(rel_err(values_of(dyp_got, used, H, ld), want_dyp), tol<T>());
    EXPECT_TRUE(untouched(dyp_got, rows, H, ld, used));
    EXPECT_LE(rel_err(values_of(dgates.values(), nt, k, k), want_dg), tol<T>());
  }
}

TEST_P(MoeCase, ScatterGatherF32) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  check_rows<float>(ctx, backend(), c());
}
TEST_P(MoeCase, ScatterGatherBF16) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  check_rows<bf16>(ctx, backend(), c());
}

// ------------------------------------------------------------------ grouped GEMMs

template <class T>
void check_gemms(Context& ctx, Backend b, const Case& c) {
  const Routing r = make_routing(c, 102);
  BackendPlan bp = build_plan(ctx, b, r, options_of(c));
  const RefPlan p = ref_plan(r.ids, c.T, c.k, c.E, c.pad_to, c.capacity);
  const std::int64_t rows = bp.layout.rows, used = p.offsets[c.E], nt = c.T, k = c.k, E = c.E;
  const std::int64_t K = c.H, N = c.F, ldk = aligned_ld(K), ldn = aligned_ld(N);
  TestArray<float> gates(b, r.gates);
  const Mat<T> Xp = random_mat<T>(rows, K, ldk, 11);  // every row random, padding rows too
  const Mat<T> X = random_mat<T>(nt, K, ldk, 12);
  const RefMat xp = Xp.ref(), x = X.ref();
  TestArray<T> xp_in(b, Xp.host), x_in(b, X.host);
  for (bool trans : {false, true}) {
    SCOPED_TRACE(std::string(type_name<T>()) + (trans ? " transpose_w" : ""));
    const double s = std::sqrt(3.0 / double(K));
    const Mat<T> W =
        random_mat<T>(trans ? E * N : E * K, trans ? K : N, aligned_ld(trans ? K : N), 13, -s, s);
    const RefMat w = W.ref();
    std::vector<RefMat> B;
    for (std::int64_t e = 0; e < E; ++e)
      B.push_back(ref_expert_weight(w, e, K, N, trans));
    TestArray<T> w_in(b, W.host);
    MoeGemmOptions o;
    o.transpose_w = trans;

    // grouped: Yp[r] = Xp[r] W_e; gather: Yp[r] = X[token] W_e; padding rows zero.
    RefMat want_grouped(used, N), want_gather(used, N), want_combine(nt, N);
    for (std::int64_t row = 0; row < used; ++row) {
      const std::int64_t s = p.row_slot[row];
      if (s < 0) continue;
      const std::int64_t e = expert_of_row(p, row);
      const auto a = ref_row_times(xp.row(row), B[e]), g = ref_row_times(x.row(p.token(s)), B[e]);
      for (std::int64_t j = 0; j < N; ++j) {
        want_grouped(row, j) = a[j];
        want_gather(row, j) = g[j];
        want_combine(p.token(s), j) += r.gates_d[s] * a[j];
      }
    }
    TestArray<T> yp(b, nan_mat<T>(rows, N, ldn).host), yg(b, nan_mat<T>(rows, N, ldn).host),
        y(b, nan_mat<T>(nt, N, ldn).host);
    const auto w_view = w_in.cmatrix(W.rows, W.cols, W.ld);
    moe_grouped_gemm(ctx, bp.plan, xp_in.cmatrix(rows, K, ldk), w_view, yp.matrix(rows, N, ldn), o);
    moe_gather_gemm(ctx, bp.plan, x_in.cmatrix(nt, K, ldk), w_view, yg.matrix(rows, N, ldn), o);
    moe_gemm_combine(ctx, bp.plan, xp_in.cmatrix(rows, K, ldk), w_view, gates.cmatrix(nt, k),
                     y.matrix(nt, N, ldn), o);
    ctx.synchronize();
    const auto yp_got = yp.values(), yg_got = yg.values(), y_got = y.values();
    EXPECT_LE(rel_err(values_of(yp_got, used, N, ldn), want_grouped), tol<T>());
    EXPECT_LE(rel_err(values_of(yg_got, used, N, ldn), want_gather), tol<T>());
    EXPECT_LE(rel_err(values_of(y_got, nt, N, ldn), want_combine), tol<T>());
    EXPECT_TRUE(untouched(yp_got, rows, N, ldn, used));
    EXPECT_TRUE(untouched(yg_got, rows, N, ldn, used));
    EXPECT_TRUE(untouched(y_got, nt, N, ldn, nt));
  }

  // wgrad: dW_e = Xp_e^nt dYp_e over the expert's rows (zero without rows).
  const Mat<T> dYp = random_mat<T>(rows, N, ldn, 14);
  const RefMat dyp = dYp.ref();
  TestArray<T> dyp_in(b, dYp.host), dw(b, nan_mat<T>(E * K, N, ldn).host);
  moe_grouped_gemm_wgrad(ctx, bp.plan, xp_in.cmatrix(rows, K, ldk), dyp_in.cmatrix(rows, N, ldn),
                         dw.matrix(E * K, N, ldn));
  ctx.synchronize();
  RefMat want_dw(E * K, N);
  for (std::int64_t e = 0; e < E; ++e)
    for (std::int64_t row = p.offsets[e]; row < p.offsets[e] + p.counts[e]; ++row)
      for (std::int64_t i = 0; i < K; ++i)
        for (std::int64_t j = 0; j < N; ++j)
          want_dw(e * K + i, j) += xp(row, i) * dyp(row, j);
  const auto dw_got = dw.values();
  EXPECT_LE(rel_err(values_of(dw_got, E * K, N, ldn), want_dw), tol<T>());
  EXPECT_TRUE(untouched(dw_got, E * K, N, ldn, E * K));
  for (std::int64_t e = 0; e < E; ++e) {
    if (p.counts[e] != 0) continue;
    for (std::int64_t i = 0; i < K; ++i)
      for (std::int64_t j = 0; j < N; ++j)
        ASSERT_EQ(as_double(dw_got[(e * K + i) * ldn + j]), 0.0) << "empty expert " << e;
  }
}

TEST_P(MoeCase, GroupedGemmsF32) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  check_gemms<float>(ctx, backend(), c());
}
TEST_P(MoeCase, GroupedGemmsBF16) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  check_gemms<bf16>(ctx, backend(), c());
}

// ------------------------------------------------------------------ SwiGLU MLP

template <class T>
struct MlpData {
  Routing r;
  Mat<T> X, W1, W3, W2, dY;
  MlpData(const Case& c, std::uint64_t seed)
      : r(make_routing(c, seed)),
        X(random_mat<T>(c.T, c.H, aligned_ld(c.H), seed + 1)),
        W1(random_mat<T>(c.E * c.H, c.F, aligned_ld(c.F), seed + 2, -std::sqrt(3.0 / c.H),
                         std::sqrt(3.0 / c.H))),
        W3(random_mat<T>(c.E * c.H, c.F, aligned_ld(c.F), seed + 3, -std::sqrt(3.0 / c.H),
                         std::sqrt(3.0 / c.H))),
        W2(random_mat<T>(c.E * c.F, c.H, aligned_ld(c.H), seed + 4, -std::sqrt(3.0 / c.F),
                         std::sqrt(3.0 / c.F))),
        dY(random_mat<T>(c.T, c.H, aligned_ld(c.H), seed + 5)) {}
};

// The MLP's outputs on the backend: Y, then every gradient.
template <class T>
struct MlpRun {
  std::vector<T> Y, dX, dW1, dW3, dW2;
  std::vector<float> dgates;
};

template <class T>
MlpRun<T> run_mlp(Context& ctx, Backend b, const Case& c, const MlpData<T>& d, bool keep,
                  bool backward = true) {
  BackendPlan bp = build_plan(ctx, b, d.r, options_of(c));
  const std::int64_t rows = bp.layout.rows, T_ = c.T, H = c.H, F = c.F, E = c.E;
  const std::int64_t ldh = aligned_ld(H), ldf = aligned_ld(F);
  TestArray<T> X(b, d.X.host), W1(b, d.W1.host), W3(b, d.W3.host), W2(b, d.W2.host),
      dY(b, d.dY.host);
  TestArray<float> gates(b, d.r.gates);
  TestArray<T> Y(b, nan_mat<T>(T_, H, ldh).host), h1(b, nan_mat<T>(keep ? rows : 0, F, ldf).host),
      h3(b, nan_mat<T>(keep ? rows : 0, F, ldf).host);
  MoeMlpWeights<T> w{W1.cmatrix(E * H, F, ldf), W3.cmatrix(E * H, F, ldf),
                     W2.cmatrix(E * F, H, ldh)};
  MoeMlpSaved<T> saved;
  if (keep) saved = {h1.matrix(rows, F, ldf), h3.matrix(rows, F, ldf)};
  moe_mlp_forward(ctx, bp.plan, X.cmatrix(T_, H, ldh), gates.cmatrix(T_, c.k), w,
                  Y.matrix(T_, H, ldh), saved);
  MlpRun<T> out;
  if (backward) {
    TestArray<T> dX(b, nan_mat<T>(T_, H, ldh).host), dW1(b, nan_mat<T>(E * H, F, ldf).host),
        dW3(b, nan_mat<T>(E * H, F, ldf).host), dW2(b, nan_mat<T>(E * F, H, ldh).host);
    TestArray<float> dgates(b, nan_filled<float>(static_cast<std::size_t>(T_ * c.k)));
    MoeMlpGrads<T> g{dX.matrix(T_, H, ldh), dgates.matrix(T_, c.k), dW1.matrix(E * H, F, ldf),
                     dW3.matrix(E * H, F, ldf), dW2.matrix(E * F, H, ldh)};
    moe_mlp_backward(ctx, bp.plan, X.cmatrix(T_, H, ldh), gates.cmatrix(T_, c.k), w,
                     dY.cmatrix(T_, H, ldh), saved, g);
    ctx.synchronize();
    out.dX = dX.values();
    out.dW1 = dW1.values();
    out.dW3 = dW3.values();
    out.dW2 = dW2.values();
    out.dgates = dgates.values();
  }
  ctx.synchronize();
  out.Y = Y.values();
  return out;
}

template <class T>
void check_mlp(Context& ctx, Backend b, const Case& c, bool keep) {
  SCOPED_TRACE(std::string(type_name<T>()) + (keep ? " saved" : " recomputed"));
  const MlpData<T> d(c, 200);
  const RefPlan p = ref_plan(d.r.ids, c.T, c.k, c.E, c.pad_to, c.capacity);
  const RefMlp ref =
      ref_mlp(p, d.r.ids, d.X.ref(), d.r.gates_d, d.W1.ref(), d.W3.ref(), d.W2.ref(), d.dY.ref());
  const MlpRun<T> got = run_mlp(ctx, b, c, d, keep);
  const std::int64_t H = c.H, F = c.F, E = c.E, ldh = aligned_ld(H), ldf = aligned_ld(F);
  // Backward tolerances for bf16 allow for the extra stored intermediates (u, dh1, dh3).
  const double tb = std::is_same_v<T, float> ? 1e-5 : 2.5e-2;
  EXPECT_LE(rel_err(values_of(got.Y, c.T, H, ldh), ref.Y), tol<T>()) << "Y";
  EXPECT_LE(rel_err(values_of(got.dX, c.T, H, ldh), ref.dX), tb) << "dX";
  EXPECT_LE(rel_err(values_of(got.dgates, c.T, c.k, c.k), ref.dgates), tb) << "dgates";
  EXPECT_LE(rel_err(values_of(got.dW1, E * H, F, ldf), ref.dW1), tb) << "dW1";
  EXPECT_LE(rel_err(values_of(got.dW3, E * H, F, ldf), ref.dW3), tb) << "dW3";
  EXPECT_LE(rel_err(values_of(got.dW2, E * F, H, ldh), ref.dW2), tb) << "dW2";
  EXPECT_TRUE(untouched(got.Y, c.T, H, ldh, c.T));
  EXPECT_TRUE(untouched(got.dW1, E * H, F, ldf, E * H));
  // Experts without a row: exactly zero weight gradients.
  for (std::int64_t e = 0; e < E; ++e) {
    if (p.counts[e] != 0) continue;
    for (std::int64_t i = 0; i < H; ++i)
      for (std::int64_t f = 0; f < F; ++f) {
        ASSERT_EQ(as_double(got.dW1[(e * H + i) * ldf + f]), 0.0);
        ASSERT_EQ(as_double(got.dW3[(e * H + i) * ldf + f]), 0.0);
        ASSERT_EQ(as_double(got.dW2[(e * F + f) * ldh + i]), 0.0);
      }
  }
}

TEST_P(MoeCase, MlpF32) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  check_mlp<float>(ctx, backend(), c(), true);
  check_mlp<float>(ctx, backend(), c(), false);
}
TEST_P(MoeCase, MlpBF16) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  check_mlp<bf16>(ctx, backend(), c(), true);
}

// ------------------------------------------------------------------ finite differences

// <grad, v> against the central difference of f along v (v = 0 on padding).
// The bound: h^2-truncation of a smooth f plus fp32 rounding of f over 2h, far
// below 1e-3 |grad| |v| at h = 1e-2 for O(1) values and these sizes.
void expect_directional(const std::function<double(const std::vector<float>&)>& f,
                        const std::vector<float>& x, const std::vector<double>& grad,
                        std::uint64_t seed, const char* what) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(x.size(), 0.0);
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!std::isnan(x[i])) v[i] = dist(gen);
  const double h = 1e-2;
  std::vector<float> plus(x), minus(x);
  double analytic = 0, gnorm = 0, vnorm = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) continue;
    plus[i] = static_cast<float>(x[i] + h * v[i]);
    minus[i] = static_cast<float>(x[i] - h * v[i]);
    v[i] = (double(plus[i]) - double(minus[i])) / (2 * h);  // the step actually taken
    analytic += grad[i] * v[i];
    gnorm += grad[i] * grad[i];
    vnorm += v[i] * v[i];
  }
  const double fd = (f(plus) - f(minus)) / (2 * h);
  EXPECT_NEAR(fd, analytic, 1e-3 * std::sqrt(gnorm * vnorm) + 1e-6) << what;
}

// The values as doubles, NaN (an unwritten entry) as 0.
template <class T>
std::vector<double> doubles_of(const std::vector<T>& v) {
  std::vector<double> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    out[i] = is_nan(v[i]) ? 0.0 : as_double(v[i]);
  return out;
}

double dot_rows(const std::vector<float>& a, const std::vector<float>& b, std::int64_t rows,
                std::int64_t cols, std::int64_t ld) {
  double s = 0;
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j)
      s += double(a[i * ld + j]) * double(b[i * ld + j]);
  return s;
}

TEST_P(MoeCase, BackwardsMatchFiniteDifferences) {
  KFUSE_CONTEXT_OR_SKIP(ctx, backend());
  const Backend b = backend();
  const Case& cs = c();
  if (cs.T * cs.k > 200) GTEST_SKIP() << "finite differences run on the small cases";
  const std::int64_t T = cs.T, k = cs.k, E = cs.E, H = cs.H, F = cs.F;
  const std::int64_t ldh = aligned_ld(H), ldf = aligned_ld(F);

  // The MLP: f = <dY, Y(X, gates, W1, W3, W2)>.
  MlpData<float> d(cs, 300);
  const MlpRun<float> grads = run_mlp(ctx, b, cs, d, false);
  auto f_mlp = [&](const MlpData<float>& m) {
    const MlpRun<float> out = run_mlp(ctx, b, cs, m, false, false);
    return dot_rows(out.Y, d.dY.host, T, H, ldh);
  };
  expect_directional(
      [&](const std::vector<float>& x) {
        MlpData<float> m = d;
        m.X.host = x;
        return f_mlp(m);
      },
      d.X.host, doubles_of(grads.dX), 1, "dX");
  expect_directional(
      [&](const std::vector<float>& g) {
        MlpData<float> m = d;
        m.r.gates = g;
        return f_mlp(m);
      },
      d.r.gates, doubles_of(grads.dgates), 2, "dgates");
  expect_directional(
      [&](const std::vector<float>& w) {
        MlpData<float> m = d;
        m.W1.host = w;
        return f_mlp(m);
      },
      d.W1.host, doubles_of(grads.dW1), 3, "dW1");
  expect_directional(
      [&](const std::vector<float>& w) {
        MlpData<float> m = d;
        m.W3.host = w;
        return f_mlp(m);
      },
      d.W3.host, doubles_of(grads.dW3), 4, "dW3");
  expect_directional(
      [&](const std::vector<float>& w) {
        MlpData<float> m = d;
        m.W2.host = w;
        return f_mlp(m);
      },
      d.W2.host, doubles_of(grads.dW2), 5, "dW2");

  // The building blocks: f = <G, scatter(X)>, f = <dY, gather(Yp, gates)>,
  // f = <dYp, grouped_gemm(Xp, W)>; their backwards give the gradients.
  BackendPlan bp = build_plan(ctx, b, d.r, options_of(cs));
  const RefPlan p = ref_plan(d.r.ids, T, k, E, cs.pad_to, cs.capacity);
  const std::int64_t rows = bp.layout.rows, used = p.offsets[E];
  const Mat<float> G = random_mat<float>(rows, H, ldh, 7);
  TestArray<float> g_in(b, G.host), gates(b, d.r.gates), dy_in(b, d.dY.host);
  auto scatter_f = [&](const std::vector<float>& x) {
    TestArray<float> xin(b, x), xp(b, nan_mat<float>(rows, H, ldh).host);
    moe_scatter(ctx, bp.plan, xin.cmatrix(T, H, ldh), xp.matrix(rows, H, ldh));
    ctx.synchronize();
    return dot_rows(xp.values(), G.host, used, H, ldh);
  };
  TestArray<float> dx(b, nan_mat<float>(T, H, ldh).host);
  moe_scatter_backward(ctx, bp.plan, g_in.cmatrix(rows, H, ldh), dx.matrix(T, H, ldh));
  ctx.synchronize();
  expect_directional(scatter_f, d.X.host, doubles_of(dx.values()), 8, "scatter");

  auto gather_f = [&](const std::vector<float>& yp, const std::vector<float>& gt) {
    TestArray<float> yin(b, yp), gin(b, gt), y(b, nan_mat<float>(T, H, ldh).host);
    moe_gather(ctx, bp.plan, yin.cmatrix(rows, H, ldh), gin.cmatrix(T, k), y.matrix(T, H, ldh));
    ctx.synchronize();
    return dot_rows(y.values(), d.dY.host, T, H, ldh);
  };
  TestArray<float> dyp(b, nan_mat<float>(rows, H, ldh).host);
  TestArray<float> dgates(b, nan_filled<float>(static_cast<std::size_t>(T * k)));
  moe_gather_backward(ctx, bp.plan, g_in.cmatrix(rows, H, ldh), gates.cmatrix(T, k),
                      dy_in.cmatrix(T, H, ldh), dyp.matrix(rows, H, ldh), dgates.matrix(T, k));
  ctx.synchronize();
  expect_directional([&](const std::vector<float>& yp) { return gather_f(yp, d.r.gates); }, G.host,
                     doubles_of(dyp.values()), 9, "gather dYp");
  expect_directional([&](const std::vector<float>& gt) { return gather_f(G.host, gt); }, d.r.gates,
                     doubles_of(dgates.values()), 10, "gather dgates");

  const Mat<float> W = random_mat<float>(E * H, F, ldf, 11);
  const Mat<float> dYp = random_mat<float>(rows, F, ldf, 12);
  TestArray<float> w_in(b, W.host), dyp_in(b, dYp.host);
  auto gemm_f = [&](const std::vector<float>& xp, const std::vector<float>& w) {
    TestArray<float> xin(b, xp), win(b, w), yp(b, nan_mat<float>(rows, F, ldf).host);
    moe_grouped_gemm(ctx, bp.plan, xin.cmatrix(rows, H, ldh), win.cmatrix(E * H, F, ldf),
                     yp.matrix(rows, F, ldf));
    ctx.synchronize();
    // Padding rows of Yp are zero: they add nothing.
    return dot_rows(yp.values(), dYp.host, used, F, ldf);
  };
  TestArray<float> dw(b, nan_mat<float>(E * H, F, ldf).host),
      dxp(b, nan_mat<float>(rows, H, ldh).host);
  moe_grouped_gemm_wgrad(ctx, bp.plan, g_in.cmatrix(rows, H, ldh), dyp_in.cmatrix(rows, F, ldf),
                         dw.matrix(E * H, F, ldf));
  // d/dXp <dYp, Xp W> = dYp W_e^T: the same grouped GEMM with the weights transposed.
  MoeGemmOptions t;
  t.transpose_w = true;
  moe_grouped_gemm(ctx, bp.plan, dyp_in.cmatrix(rows, F, ldf), w_in.cmatrix(E * H, F, ldf),
                   dxp.matrix(rows, H, ldh), t);
  ctx.synchronize();
  expect_directional([&](const std::vector<float>& w) { return gemm_f(G.host, w); }, W.host,
                     doubles_of(dw.values()), 13, "wgrad");
  // Padding rows of Xp do not reach the output: the transposed product there is 0.
  expect_directional([&](const std::vector<float>& xp) { return gemm_f(xp, W.host); }, G.host,
                     doubles_of(dxp.values()), 14, "grouped gemm dXp");
}

INSTANTIATE_TEST_SUITE_P(Cpu, MoeCase,
                         ::testing::Combine(::testing::Values(Backend::Cpu),
                                            ::testing::ValuesIn(kCases)),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, MoeCase,
                         ::testing::Combine(::testing::Values(Backend::Cuda),
                                            ::testing::ValuesIn(kCases)),
                         param_name);

// ------------------------------------------------------------------ per-backend properties

class MoeFamily : public ::testing::TestWithParam<Backend> {};

std::string backend_param_name(const ::testing::TestParamInfo<Backend>& info) {
  return backend_label(info.param);
}

// Logits uniform in [-4, 4], or on a coarse grid (many ties), stored in L with a
// padded leading dimension.
template <class L>
void check_router(Context& ctx, Backend b, std::int64_t T, std::int64_t E, std::int64_t k,
                  bool ties, std::uint64_t seed) {
  SCOPED_TRACE("T " + std::to_string(T) + " E " + std::to_string(E) + " k " + std::to_string(k) +
               (ties ? " ties " : " ") + type_name<L>());
  const std::int64_t ld = E + 3;
  Mat<L> logits = random_mat<L>(T, E, ld, seed, -4.0, 4.0);
  if (ties)
    for (auto& v : logits.host)
      if (!is_nan(v)) v = from_double<L>(std::floor(as_double(v)) * 0.5);
  const RefMat l = logits.ref();
  TestArray<L> in(b, logits.host);
  for (RouterMode mode : {RouterMode::SoftmaxTopK, RouterMode::TopKSoftmax})
    for (bool renorm : {false, true}) {
      if (mode == RouterMode::TopKSoftmax && renorm) continue;
      TestArray<std::int32_t> ids(b,
                                  std::vector<std::int32_t>(static_cast<std::size_t>(T * k), -1));
      TestArray<float> gates(b, nan_filled<float>(static_cast<std::size_t>(T * k)));
      RouterOptions o;
      o.mode = mode;
      o.renormalize = renorm;
      moe_router_topk(ctx, in.cmatrix(T, E, ld), ids.matrix(T, k), gates.matrix(T, k), o);
      ctx.synchronize();
      const RefRouting ref = ref_router(l.v, T, E, k, mode, renorm);
      EXPECT_EQ(ids.values(), ref.ids) << "mode " << int(mode) << " renorm " << renorm;
      // fp32 exp and sums over up to E terms: a few 1e-7 relative.
      RefMat want(T, k);
      want.v = ref.gates;
      EXPECT_LE(rel_err(values_of(gates.values(), T, k, k), want), 1e-5);
    }
}

TEST_P(MoeFamily, RouterMatchesBruteForce) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  std::uint64_t seed = 500;
  for (std::int64_t E : {1, 5, 64, 257, 512})
    for (std::int64_t k : {1, 2, 8, 16, 512}) {
      if (k > E) continue;
      for (std::int64_t T : {1, 37})
        for (bool ties : {false, true}) {
          check_router<float>(ctx, GetParam(), T, E, k, ties, ++seed);
          check_router<bf16>(ctx, GetParam(), T, E, k, ties, ++seed);
        }
    }
  // k = E, and the largest E.
  check_router<float>(ctx, GetParam(), 3, 7, 7, true, ++seed);
  check_router<bf16>(ctx, GetParam(), 5, kMoeMaxExperts, 16, false, ++seed);
}

// NaN ranks below -inf; ties go to the lower index; the same in both modes.
TEST_P(MoeFamily, RouterOrderWithNanAndTies) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> logits = {nan, 1.0f, -INFINITY, 1.0f, 0.5f, 1.0f};  // one row, E = 6
  TestArray<float> in(GetParam(), logits);
  TestArray<std::int32_t> ids(GetParam(), std::vector<std::int32_t>(5, -1));
  TestArray<float> gates(GetParam(), nan_filled<float>(5));
  RouterOptions o;
  o.mode = RouterMode::TopKSoftmax;
  moe_router_topk(ctx, in.cmatrix(1, 6), ids.matrix(1, 5), gates.matrix(1, 5), o);
  ctx.synchronize();
  EXPECT_EQ(ids.values(), (std::vector<std::int32_t>{1, 3, 5, 4, 2}));
  const auto g = gates.values();
  const double z = 3.0 + std::exp(-0.5);  // exp(-inf - 1) = 0
  for (int j = 0; j < 3; ++j)
    EXPECT_NEAR(g[j], 1.0 / z, 1e-7);
  EXPECT_NEAR(g[3], std::exp(-0.5) / z, 1e-7);
  EXPECT_EQ(g[4], 0.0f);
}

// Same inputs, same bits: the plan, the router, the whole MLP forward and backward.
TEST_P(MoeFamily, TwoRunsAreBitwiseEqual) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const Case c{"determinism", 300, 40, 24, 16, 4, 8, 0};
  const MlpData<float> f(c, 400);
  const MlpData<bf16> h(c, 401);
  const auto a = run_mlp(ctx, GetParam(), c, f, true), b = run_mlp(ctx, GetParam(), c, f, true);
  EXPECT_TRUE(bitwise_equal(a.Y, b.Y) && bitwise_equal(a.dX, b.dX) &&
              bitwise_equal(a.dgates, b.dgates) && bitwise_equal(a.dW1, b.dW1) &&
              bitwise_equal(a.dW3, b.dW3) && bitwise_equal(a.dW2, b.dW2));
  const auto p = run_mlp(ctx, GetParam(), c, h, false), q = run_mlp(ctx, GetParam(), c, h, false);
  EXPECT_TRUE(bitwise_equal(p.Y, q.Y) && bitwise_equal(p.dX, q.dX) &&
              bitwise_equal(p.dgates, q.dgates) && bitwise_equal(p.dW1, q.dW1) &&
              bitwise_equal(p.dW3, q.dW3) && bitwise_equal(p.dW2, q.dW2));
  const BackendPlan one = build_plan(ctx, GetParam(), f.r, options_of(c));
  const BackendPlan two = build_plan(ctx, GetParam(), f.r, options_of(c));
  EXPECT_TRUE(bitwise_equal(one.storage.values(), two.storage.values()));
}

// T = 0: every function accepts empty token sets; weight gradients are zero.
TEST_P(MoeFamily, NoTokens) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const Case c{"empty", 0, 16, 8, 4, 2, 8, 0};
  const MlpData<float> d(c, 600);
  const MlpRun<float> out = run_mlp(ctx, GetParam(), c, d, true);
  EXPECT_TRUE(out.Y.empty() && out.dX.empty() && out.dgates.empty());
  for (std::int64_t i = 0; i < c.E * c.H; ++i)
    for (std::int64_t f = 0; f < c.F; ++f)
      ASSERT_EQ(out.dW1[i * aligned_ld(c.F) + f], 0.0f);
}

// Ids out of range on the device: a dropped slot by default, an error (nothing
// written) with check_device_ids. Host ids are always checked (test_moe_errors).
TEST_P(MoeFamily, DeviceIdsOutOfRange) {
  if (GetParam() != Backend::Cuda) GTEST_SKIP() << "device ids only";
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const std::vector<std::int32_t> ids = {0, 3, 1, -1, 2, 0};  // T = 3, k = 2, E = 3
  TestArray<std::int32_t> in(GetParam(), ids);
  MoePlanLayout layout = moe_plan_layout(3, 2, 3);
  TestArray<std::int32_t> storage(GetParam(), std::vector<std::int32_t>(layout.storage_size(), 77));
  moe_plan(ctx, in.cmatrix(3, 2), moe_plan_views(layout, storage.data(), storage.memory()));
  ctx.synchronize();
  const auto got = storage.values();
  const std::int32_t* slot_row = got.data() + 3 + 4 + layout.rows;
  EXPECT_EQ(got[0], 2);  // expert 0: slots 0 and 5
  EXPECT_EQ(slot_row[1], -1);
  EXPECT_EQ(slot_row[3], -1);
  layout.options.check_device_ids = true;
  TestArray<std::int32_t> untouched_storage(GetParam(),
                                            std::vector<std::int32_t>(layout.storage_size(), 77));
  expect_error(
      [&] {
        moe_plan(ctx, in.cmatrix(3, 2),
                 moe_plan_views(layout, untouched_storage.data(), untouched_storage.memory()));
      },
      Status::InvalidArgument, "'ids'");
  ctx.synchronize();
  for (std::int32_t v : untouched_storage.values())
    ASSERT_EQ(v, 77);
}

// T k H beyond 2^31 elements: 64-bit offsets in scatter and gather (GPU only).
// Only a failed allocation of the test's buffers skips: an error of the calls under
// test (an illegal address from a wrapped 32-bit offset, say) must fail the test.
TEST_P(MoeFamily, BeyondInt32Elements) {
  if (GetParam() != Backend::Cuda) GTEST_SKIP() << "too large for the CPU test budget";
  if (emulated())
    GTEST_SKIP() << "~12 GB of buffers in host memory, beside other tests in CI: GPU only";
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const Case c{"huge", 32768, 8448, 8, 8, 8};  // T k H = 2.21e9 > 2^31
  const Routing r = make_routing(c, 700);
  BackendPlan bp = build_plan(ctx, GetParam(), r, options_of(c));
  const RefPlan p = ref_plan(r.ids, c.T, c.k, c.E, 1, 0);
  const std::int64_t rows = bp.layout.rows, H = c.H;
  std::vector<bf16> x(static_cast<std::size_t>(c.T * H));
  for (std::int64_t t = 0; t < c.T; ++t)
    for (std::int64_t j = 0; j < H; ++j)
      x[t * H + j] = from_double<bf16>(double((t * 7 + j) % 61) - 30.0);  // exact in bf16
  std::unique_ptr<TestArray<bf16>> X, Xp, Y;
  std::unique_ptr<TestArray<float>> gates;
  try {
    X = std::make_unique<TestArray<bf16>>(GetParam(), x);
    Xp = std::make_unique<TestArray<bf16>>(GetParam(),
                                           std::vector<bf16>(static_cast<std::size_t>(rows * H)));
    Y = std::make_unique<TestArray<bf16>>(GetParam(),
                                          std::vector<bf16>(static_cast<std::size_t>(c.T * H)));
    gates = std::make_unique<TestArray<float>>(
        GetParam(), std::vector<float>(static_cast<std::size_t>(c.T * c.k), 1.0f));
  } catch (const std::exception& e) {  // host or device buffers of the test
    GTEST_SKIP() << "not enough memory for the test's buffers: " << e.what();
  }
  moe_scatter(ctx, bp.plan, X->cmatrix(c.T, H), Xp->matrix(rows, H));
  moe_gather(ctx, bp.plan, Xp->cmatrix(rows, H), gates->cmatrix(c.T, c.k), Y->matrix(c.T, H));
  ctx.synchronize();
  // The last rows of Xp lie past element 2^31.
  std::vector<bf16> tail(static_cast<std::size_t>(4 * H));
  support::copy_to_host(tail.data(), Xp->data() + (rows - 4) * H, tail.size() * sizeof(bf16));
  for (std::int64_t i = 0; i < 4; ++i) {
    const std::int64_t t = p.token(p.row_slot[rows - 4 + i]);
    for (std::int64_t j = 0; j < H; ++j)
      ASSERT_EQ(tail[i * H + j].bits, x[t * H + j].bits);
  }
  const auto y = Y->values();  // every token: k copies of its row, summed exactly
  for (std::int64_t t = c.T - 3; t < c.T; ++t)
    for (std::int64_t j = 0; j < H; ++j)
      ASSERT_EQ(as_double(y[t * H + j]), double(c.k) * as_double(x[t * H + j]));
}

// More output columns than a GPU grid has column blocks (grid.y <= 65535 blocks of
// 64 columns for fp32): the CPU computes the product; a GPU refuses it as
// Unsupported, naming N, with nothing written (not a failed launch).
TEST_P(MoeFamily, GemmWiderThanTheGridsColumnBlocks) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const std::int64_t K = 4, N = 65535 * 64 + 4;  // one token, one expert, one row
  const Case c{"wide", 1, K, 1, 1, 1};
  const Routing r = make_routing(c, 800);
  BackendPlan bp = build_plan(ctx, GetParam(), r, options_of(c));
  ASSERT_EQ(bp.layout.rows, 1);
  const std::vector<float> x = {1.0f, -2.0f, 3.0f, 0.5f};
  std::vector<float> w(static_cast<std::size_t>(K * N));
  for (std::int64_t i = 0; i < K; ++i)
    for (std::int64_t j = 0; j < N; ++j)
      w[i * N + j] = static_cast<float>((i * 5 + j) % 7) - 3.0f;  // small integers: exact sums
  TestArray<float> Xp(GetParam(), x), W(GetParam(), w);
  const std::vector<float> poison(static_cast<std::size_t>(N), std::nanf(""));
  TestArray<float> Yp(GetParam(), poison);
  auto call = [&] {
    moe_grouped_gemm(ctx, bp.plan, Xp.cmatrix(1, K), W.cmatrix(K, N), Yp.matrix(1, N));
  };
  if (GetParam() == Backend::Cuda) {
    expect_rejected<float>(call, Status::Unsupported, "N = ", ctx, Yp, poison);
    return;
  }
  call();
  ctx.synchronize();
  const auto y = Yp.values();
  for (std::int64_t j = 0; j < N; ++j) {
    double want = 0.0;
    for (std::int64_t i = 0; i < K; ++i)
      want += double(x[i]) * double(w[i * N + j]);
    ASSERT_EQ(double(y[j]), want) << "column " << j;
  }
}

// ------------------------------------------------------------------ numerical edges

// Extreme router logits, each row's gates against the softmax evaluated in the
// test in long double (issue 13, defect 10).
class NumericEdges : public ::testing::TestWithParam<Backend> {};

// The gates of one row by their definition, in long double: the selected logits
// v[0..k) (decreasing), the whole row l[0..E). A selected -inf gets gate 0.
std::vector<double> softmax_gates(const std::vector<float>& row, const std::vector<float>& v,
                                  bool over_k) {
  long double m = -INFINITY;
  for (float x : v)
    m = std::max<long double>(m, x);
  std::vector<double> g;
  long double den = 0;
  for (float x : over_k ? v : row)
    if (x != -INFINITY) den += std::exp(static_cast<long double>(x) - m);
  for (float x : v)
    g.push_back(x == -INFINITY ? 0.0 : static_cast<double>(std::exp((long double)x - m) / den));
  return g;
}

TEST_P(NumericEdges, RouterRowOfMinusInfinityGetsZeroGates) {
  KFUSE_CONTEXT_OR_SKIP(ctx, GetParam());
  const float inf = std::numeric_limits<float>::infinity();
  const float big = 1e38f;  // near the top of fp32 (and of bf16)
  // E = 4: all -inf; one finite among -inf; huge logits of both signs; all -inf but one
  // NaN (a NaN that enters SoftmaxTopK's sum makes the gates NaN).
  const std::vector<std::vector<float>> rows = {{-inf, -inf, -inf, -inf},
                                                {-inf, -inf, 3.0f, -inf},
                                                {big, -big, 0.0f, big},
                                                {-inf, -inf, std::nanf(""), -inf}};
  const std::int64_t T = static_cast<std::int64_t>(rows.size()), E = 4, k = 2;
  std::vector<float> flat;
  for (const auto& r : rows)
    flat.insert(flat.end(), r.begin(), r.end());
  TestArray<float> in_f(GetParam(), flat);
  std::vector<bf16> flat_b;
  for (float x : flat)
    flat_b.push_back(from_double<bf16>(x));
  TestArray<bf16> in_b(GetParam(), flat_b);
  for (RouterMode mode : {RouterMode::SoftmaxTopK, RouterMode::TopKSoftmax})
    for (bool renorm : {false, true}) {
      if (mode == RouterMode::TopKSoftmax && renorm) continue;
      const bool over_k = mode == RouterMode::TopKSoftmax || renorm;
      for (bool bf : {false, true}) {
        SCOPED_TRACE("mode " + std::to_string(int(mode)) + " renorm " + std::to_string(renorm) +
                     (bf ? " bf16" : " f32"));
        TestArray<std::int32_t> ids(GetParam(), std::vector<std::int32_t>(T * k, -1));
        TestArray<float> gates(GetParam(), nan_filled<float>(T * k));
        RouterOptions o;
        o.mode = mode;
        o.renormalize = renorm;
        if (bf)
          moe_router_topk(ctx, in_b.cmatrix(T, E), ids.matrix(T, k), gates.matrix(T, k), o);
        else
          moe_router_topk(ctx, in_f.cmatrix(T, E), ids.matrix(T, k), gates.matrix(T, k), o);
        ctx.synchronize();
        const auto got_ids = ids.values();
        const auto got = gates.values();
        for (std::int64_t t = 0; t < T; ++t) {
          std::vector<float> row, v;
          for (std::int64_t e = 0; e < E; ++e)
            row.push_back(bf ? static_cast<float>(as_double(flat_b[t * E + e])) : flat[t * E + e]);
          for (std::int64_t j = 0; j < k; ++j)
            v.push_back(row[got_ids[t * k + j]]);
          const bool nan_row = t == 3 && !over_k;
          const std::vector<double> want = softmax_gates(row, v, over_k);
          for (std::int64_t j = 0; j < k; ++j) {
            const float g = got[t * k + j];
            if (nan_row)
              EXPECT_TRUE(std::isnan(g)) << "row " << t << " gate " << j;
            else
              EXPECT_NEAR(g, want[j], 1e-6) << "row " << t << " gate " << j;
          }
        }
        // The all -inf row selects the lowest indices (ties go to the lower index).
        EXPECT_EQ(got_ids[0], 0);
        EXPECT_EQ(got_ids[1], 1);
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Cpu, NumericEdges, ::testing::Values(Backend::Cpu), backend_param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, NumericEdges, ::testing::Values(Backend::Cuda), backend_param_name);

INSTANTIATE_TEST_SUITE_P(Cpu, MoeFamily, ::testing::Values(Backend::Cpu), backend_param_name);
INSTANTIATE_TEST_SUITE_P(Cuda, MoeFamily, ::testing::Values(Backend::Cuda), backend_param_name);

}  // namespace
}  // namespace kfuse::test
