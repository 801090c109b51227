// The mixture-of-experts family's host layer: validate every argument, describe
// each step (kernels/moe/problem.hpp), and hand it to the backend. The
// composite operations (moe_gemm_combine, moe_mlp_*) are sequences of steps,
// written once here for both backends.
#include "kfuse/moe.hpp"

#include <climits>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>

#include "kernels/moe/launch.hpp"
#include "kernels/moe/math.hpp"
#include "kernels/moe/problem.hpp"
#include "src/core/backend.hpp"
#include "src/core/checked.hpp"
#include "src/core/device.hpp"
#include "src/core/scratch.hpp"
#include "src/core/validate.hpp"
#include "src/moe/cpu.hpp"

namespace kfuse {
namespace {

using detail::Validator;
using std::int64_t;

// ------------------------------------------------------------------ dispatch

template <class L>
void run(Context& ctx, const detail::RouterProblem<L>& a) {
  return KFUSE_DISPATCH(ctx, cuda::moe_router_topk(ctx, a), cpu::moe_router_topk(a));
}
void run(Context& ctx, const detail::PlanProblem& a) {
  return KFUSE_DISPATCH(ctx, cuda::moe_plan(ctx, a), cpu::moe_plan(a));
}
template <class T>
void run(Context& ctx, const detail::ScatterProblem<T>& a) {
  return KFUSE_DISPATCH(ctx, cuda::moe_scatter(ctx, a), cpu::moe_scatter(a));
}
template <class T>
void run(Context& ctx, const detail::CombineProblem<T>& a) {
  return KFUSE_DISPATCH(ctx, cuda::moe_combine(ctx, a), cpu::moe_combine(a));
}
template <class T>
void run(Context& ctx, const detail::GatherBackwardProblem<T>& a) {
  return KFUSE_DISPATCH(ctx, cuda::moe_gather_backward(ctx, a), cpu::moe_gather_backward(a));
}
template <class T>
void run(Context& ctx, const detail::GroupedGemmProblem<T>& a) {
  return KFUSE_DISPATCH(ctx, cuda::moe_grouped_gemm(ctx, a), cpu::moe_grouped_gemm(a));
}
template <class T>
void run(Context& ctx, const detail::WgradProblem<T>& a) {
  return KFUSE_DISPATCH(ctx, cuda::moe_wgrad(ctx, a), cpu::moe_wgrad(a));
}
template <class T>
void run(Context& ctx, const detail::SwigluBackwardProblem<T>& a) {
  return KFUSE_DISPATCH(ctx, cuda::moe_swiglu_backward(ctx, a), cpu::moe_swiglu_backward(a));
}
// Device ids in range? (One host synchronisation; Cuda only.)
bool device_ids_valid(Context& ctx, const MatrixView<const std::int32_t>& ids,
                      std::int64_t experts) {
  return KFUSE_DISPATCH(
      ctx, cuda::moe_ids_valid(ctx, ids.data, ids.ld, ids.rows, ids.cols, experts), true);
}
// host <- counts (waits for the stream on a Cuda context).
void copy_counts_to_host(Context& ctx, const std::int32_t* counts, std::int64_t n,
                         std::int32_t* host) {
  return KFUSE_DISPATCH(
      ctx, cuda::moe_copy_to_host(ctx, counts, n, host),
      (void)std::memcpy(host, counts, static_cast<std::size_t>(n) * sizeof(std::int32_t)));
}

// ------------------------------------------------------------------ checks

[[noreturn]] void layout_fail(const char* op, const std::string& argument,
                              const std::string& what) {
  detail::argument_error(Status::InvalidArgument, op, argument, what);
}

// The layout's extents and options; `prefix` names them ("" or "plan.layout.").
void check_layout_fields(const char* op, const std::string& prefix, int64_t tokens, int64_t top_k,
                         int64_t experts, const MoePlanOptions& o) {
  if (tokens < 0 || tokens > INT32_MAX)
    layout_fail(op, prefix + "tokens",
                "expected 0 <= tokens < 2^31, got " + std::to_string(tokens));
  if (experts < 1 || experts > kMoeMaxExperts)
    layout_fail(op, prefix + "experts",
                "expected 1 <= experts <= " + std::to_string(kMoeMaxExperts) + ", got " +
                    std::to_string(experts));
  if (top_k < 1 || top_k > experts)
    layout_fail(op, prefix + "top_k",
                "expected 1 <= top_k <= experts (" + std::to_string(experts) + "), got " +
                    std::to_string(top_k));
  if (tokens * top_k > INT32_MAX)
    layout_fail(op, prefix + "tokens",
                "expected tokens * top_k < 2^31 (int32 slot indices), got " +
                    std::to_string(tokens * top_k));
  if (o.pad_to < 1 || o.pad_to > 65536)
    layout_fail(op, prefix + "options.pad_to",
                "expected 1 <= pad_to <= 65536, got " + std::to_string(o.pad_to));
  if (o.capacity < 0 || o.capacity > INT32_MAX)
    layout_fail(op, prefix + "options.capacity",
                "expected 0 <= capacity < 2^31, got " + std::to_string(o.capacity));
  const int64_t rows = detail::plan_rows_bound(tokens, top_k, experts, o.pad_to, o.capacity);
  if (rows > INT32_MAX)
    layout_fail(op, prefix + "options.pad_to",
                "the permuted rows bound " + std::to_string(rows) + " must stay below 2^31");
}

// A whole layout: its fields, and rows equal to the bound they give (what moe_plan_layout
// returns). After this every size derived from it fits in 32-bit indices.
void check_layout(const char* op, const std::string& prefix, const MoePlanLayout& L) {
  check_layout_fields(op, prefix, L.tokens, L.top_k, L.experts, L.options);
  const int64_t rows =
      detail::plan_rows_bound(L.tokens, L.top_k, L.experts, L.options.pad_to, L.options.capacity);
  if (L.rows != rows)
    layout_fail(op, prefix + "rows",
                "expected the bound for the layout's extents and options (" + std::to_string(rows) +
                    "), got " + std::to_string(L.rows));
}

// A plan's layout and arrays: consistent extents, in the context's memory space.
void check_plan(const Validator& v, const char* op, const MoePlan& plan) {
  const MoePlanLayout& L = plan.layout;
  check_layout_fields(op, "plan.layout.", L.tokens, L.top_k, L.experts, L.options);
  const int64_t rows =
      detail::plan_rows_bound(L.tokens, L.top_k, L.experts, L.options.pad_to, L.options.capacity);
  v.extent("plan.layout", "rows (the bound for its extents and options)", rows, L.rows);
  v.vector("plan.counts", plan.counts);
  v.extent("plan.counts", "size (experts)", L.experts, plan.counts.size);
  v.vector("plan.offsets", plan.offsets);
  v.extent("plan.offsets", "size (experts + 1)", L.experts + 1, plan.offsets.size);
  v.vector("plan.row_slot", plan.row_slot);
  v.extent("plan.row_slot", "size (layout.rows)", L.rows, plan.row_slot.size);
  v.vector("plan.slot_row", plan.slot_row);
  v.extent("plan.slot_row", "size (tokens * top_k)", L.tokens * L.top_k, plan.slot_row.size);
}

detail::PlanArrays arrays_of(const MoePlan& plan) {
  detail::PlanArrays p;
  p.tokens = plan.layout.tokens;
  p.top_k = plan.layout.top_k;
  p.experts = plan.layout.experts;
  p.rows = plan.layout.rows;
  p.pad_to = plan.layout.options.pad_to;
  p.counts = plan.counts.data;
  p.offsets = plan.offsets.data;
  p.row_slot = plan.row_slot.data;
  p.slot_row = plan.slot_row.data;
  return p;
}

// A matrix with `rows` x `cols` (cols >= 1 where `cols` < 0 means "any, >= 1").
template <class T>
void check_matrix(const Validator& v, const char* name, const MatrixView<T>& m, int64_t rows,
                  const char* rows_what, int64_t cols, const char* cols_what) {
  v.matrix(name, m);
  v.extent(name, rows_what, rows, m.rows);
  if (cols < 0)
    v.at_least(name, cols_what, 1, m.cols);
  else
    v.extent(name, cols_what, cols, m.cols);
}

void check_gates(const Validator& v, const char* name, const MatrixView<const float>& g,
                 const MoePlan& plan) {
  check_matrix(v, name, g, plan.layout.tokens, "rows (plan tokens)", plan.layout.top_k,
               "cols (plan top_k)");
}

// 16-byte aligned data and rows (the GEMM family's requirement, on every backend).
template <class T>
void check_aligned(const Validator& v, const char* name, const MatrixView<T>& m) {
  if (m.empty()) return;
  const auto address = reinterpret_cast<std::uintptr_t>(m.data);
  if (address % 16 != 0)
    v.fail(Status::InvalidArgument, name,
           "expected a 16-byte aligned data pointer, got address % 16 == " +
               std::to_string(address % 16));
  if ((m.ld * static_cast<int64_t>(sizeof(T))) % 16 != 0)
    v.fail(Status::ShapeMismatch, name,
           "expected ld * sizeof(element) to be a multiple of 16 bytes (ld % " +
               std::to_string(16 / sizeof(T)) + " == 0), got ld = " + std::to_string(m.ld));
}

// Expert weights [E*K x N] (or [E*N x K] transposed), aligned.
template <class T>
void check_weights(const Validator& v, const char* name, const MatrixView<const T>& W,
                   int64_t experts, int64_t k, int64_t n, bool trans) {
  v.matrix(name, W);
  // K and N come from other views; their product with E must not wrap before comparing.
  if (!detail::checked_mul(experts, trans ? n : k))
    v.fail(Status::InvalidArgument, name,
           "experts * " + std::string(trans ? "N" : "K") + " overflows 64 bits");
  if (!trans) {
    v.extent(name, "rows (experts * K, the input columns)", experts * k, W.rows);
    v.extent(name, "cols (N, the output columns)", n, W.cols);
  } else {
    v.extent(name, "rows (experts * N, the output columns; transpose_w)", experts * n, W.rows);
    v.extent(name, "cols (K, the input columns; transpose_w)", k, W.cols);
  }
  check_aligned(v, name, W);
}

// A workspace matrix [rows x cols] of T with 16-byte aligned rows.
template <class T>
struct Workspace {
  int64_t ld;
  detail::Scratch scratch;
  Workspace(Context& ctx, int64_t rows, int64_t cols)
      : ld(detail::round_up(cols, 16 / static_cast<int64_t>(sizeof(T)))),
        scratch(ctx, detail::workspace_bytes(detail::checked_mul(rows, ld), sizeof(T))) {}
  T* data() const { return scratch.as<T>(); }
};

// ------------------------------------------------------------------ router

template <class L>
void router_impl(Context& ctx, MatrixView<const L> logits, MatrixView<std::int32_t> ids,
                 MatrixView<float> gates, const RouterOptions& o) {
  const Validator v("moe_router_topk", ctx);
  v.matrix("logits", logits);
  if (logits.cols < 1 || logits.cols > kMoeMaxExperts)
    v.fail(Status::ShapeMismatch, "logits",
           "expected 1 <= cols (experts) <= " + std::to_string(kMoeMaxExperts) + ", got " +
               std::to_string(logits.cols));
  v.matrix("ids", ids);
  v.extent("ids", "rows (the rows of logits)", logits.rows, ids.rows);
  v.at_least("ids", "cols (k)", 1, ids.cols);
  if (ids.cols > logits.cols)
    v.fail(Status::InvalidArgument, "ids",
           "expected cols (k) <= experts (" + std::to_string(logits.cols) +
               "), got k = " + std::to_string(ids.cols));
  check_matrix(v, "gates", gates, logits.rows, "rows (the rows of logits)", ids.cols,
               "cols (k, the cols of ids)");
  v.enumeration("mode", o.mode, RouterMode::TopKSoftmax, "SoftmaxTopK or TopKSoftmax");
  v.disjoint("ids", ids, "logits", logits);
  v.disjoint("gates", gates, "logits", logits);
  v.disjoint("gates", gates, "ids", ids);

  detail::RouterProblem<L> a;
  a.logits = logits.data;
  a.ld_logits = logits.ld;
  a.tokens = logits.rows;
  a.experts = logits.cols;
  a.top_k = ids.cols;
  a.ids = ids.data;
  a.ld_ids = ids.ld;
  a.gates = gates.data;
  a.ld_gates = gates.ld;
  a.mode = o.mode;
  a.renormalize = o.renormalize;
  if (a.tokens > 0) run(ctx, a);
}

// ------------------------------------------------------------------ plan

void plan_impl(Context& ctx, MatrixView<const std::int32_t> ids, const MoePlan& plan,
               VectorView<std::int32_t> host_counts) {
  const char* op = "moe_plan";
  const Validator v(op, ctx);
  check_plan(v, op, plan);
  const MoePlanLayout& L = plan.layout;
  check_matrix(v, "ids", ids, L.tokens, "rows (plan tokens)", L.top_k, "cols (plan top_k)");
  if (!host_counts.absent()) {
    if (host_counts.memory != Memory::Host ||
        detail::pointer_kind(host_counts.data) == detail::PointerKind::Device)
      v.fail(Status::MemoryLocation, "host_counts", "expected host memory");
    if (host_counts.data == nullptr) v.fail(Status::InvalidArgument, "host_counts", "data is null");
    v.extent("host_counts", "size (experts)", L.experts, host_counts.size);
  }
  // The plan's arrays and host_counts are all written, ids read throughout: no two of
  // them may share memory (host_counts over ids would rewrite the caller's ids, over
  // plan.counts would be a self-overlapping copy).
  const std::pair<const char*, const VectorView<std::int32_t>*> outputs[] = {
      {"plan.counts", &plan.counts},
      {"plan.offsets", &plan.offsets},
      {"plan.row_slot", &plan.row_slot},
      {"plan.slot_row", &plan.slot_row},
      {"host_counts", &host_counts}};
  for (std::size_t i = 0; i < std::size(outputs); ++i) {
    const bool is_plan = i + 1 < std::size(outputs);
    v.disjoint(is_plan ? "plan" : outputs[i].first, *outputs[i].second, "ids", ids);
    for (std::size_t j = 0; j < i; ++j)
      if (detail::views_overlap(*outputs[i].second, *outputs[j].second))
        v.fail(Status::InvalidArgument, outputs[i].first,
               std::string("must not overlap the output '") + outputs[j].first + "'");
  }
  if (ids.memory == Memory::Host) {
    for (int64_t t = 0; t < ids.rows; ++t)
      for (int64_t j = 0; j < ids.cols; ++j) {
        const std::int32_t id = ids(t, j);
        if (id < 0 || id >= L.experts)
          v.fail(Status::InvalidArgument, "ids",
                 "expected expert ids in [0, " + std::to_string(L.experts) + "), got ids[" +
                     std::to_string(t) + "][" + std::to_string(j) + "] = " + std::to_string(id));
      }
  } else if (L.options.check_device_ids && !device_ids_valid(ctx, ids, L.experts)) {
    v.fail(Status::InvalidArgument, "ids",
           "an expert id outside [0, " + std::to_string(L.experts) + ") (check_device_ids)");
  }

  detail::PlanProblem a;
  a.ids = ids.data;
  a.ld_ids = ids.ld;
  a.tokens = L.tokens;
  a.top_k = L.top_k;
  a.experts = L.experts;
  a.pad_to = L.options.pad_to;
  a.capacity = L.options.capacity;
  a.rows = L.rows;
  a.counts = plan.counts.data;
  a.offsets = plan.offsets.data;
  a.row_slot = plan.row_slot.data;
  a.slot_row = plan.slot_row.data;
  run(ctx, a);
  if (!host_counts.absent())
    copy_counts_to_host(ctx, plan.counts.data, L.experts, host_counts.data);
}

// ------------------------------------------------------------------ scatter / gather

template <class T>
void scatter_impl(Context& ctx, const MoePlan& plan, MatrixView<const T> X, MatrixView<T> Xp) {
  const char* op = "moe_scatter";
  const Validator v(op, ctx);
  check_plan(v, op, plan);
  check_matrix(v, "X", X, plan.layout.tokens, "rows (plan tokens)", -1, "cols (H)");
  check_matrix(v, "Xp", Xp, plan.layout.rows, "rows (plan.layout.rows)", X.cols,
               "cols (the cols of X)");
  v.disjoint("Xp", Xp, "X", X);
  detail::ScatterProblem<T> a;
  a.plan = arrays_of(plan);
  a.cols = X.cols;
  a.src = X.data;
  a.ld_src = X.ld;
  a.dst = Xp.data;
  a.ld_dst = Xp.ld;
  if (plan.layout.rows > 0) run(ctx, a);
}

template <class T>
void combine_to_tokens(Context& ctx, const MoePlan& plan, detail::CombineSource source,
                       const T* src, int64_t ld_src, int64_t cols, const float* gates,
                       int64_t ld_gates, T* dst, int64_t ld_dst) {
  detail::CombineProblem<T> a;
  a.plan = arrays_of(plan);
  a.cols = cols;
  a.source = source;
  a.src = src;
  a.ld_src = ld_src;
  a.gates = gates;
  a.ld_gates = ld_gates;
  a.dst = dst;
  a.ld_dst = ld_dst;
  if (plan.layout.tokens > 0) run(ctx, a);
}

template <class T>
void scatter_backward_impl(Context& ctx, const MoePlan& plan, MatrixView<const T> dXp,
                           MatrixView<T> dX) {
  const char* op = "moe_scatter_backward";
  const Validator v(op, ctx);
  check_plan(v, op, plan);
  check_matrix(v, "dXp", dXp, plan.layout.rows, "rows (plan.layout.rows)", -1, "cols (H)");
  check_matrix(v, "dX", dX, plan.layout.tokens, "rows (plan tokens)", dXp.cols,
               "cols (the cols of dXp)");
  v.disjoint("dX", dX, "dXp", dXp);
  combine_to_tokens<T>(ctx, plan, detail::CombineSource::Permuted, dXp.data, dXp.ld, dXp.cols,
                       nullptr, 0, dX.data, dX.ld);
}

template <class T>
void gather_impl(Context& ctx, const MoePlan& plan, MatrixView<const T> Yp,
                 MatrixView<const float> gates, MatrixView<T> Y) {
  const char* op = "moe_gather";
  const Validator v(op, ctx);
  check_plan(v, op, plan);
  check_matrix(v, "Yp", Yp, plan.layout.rows, "rows (plan.layout.rows)", -1, "cols (H)");
  check_gates(v, "gates", gates, plan);
  check_matrix(v, "Y", Y, plan.layout.tokens, "rows (plan tokens)", Yp.cols,
               "cols (the cols of Yp)");
  v.disjoint("Y", Y, "Yp", Yp);
  v.disjoint("Y", Y, "gates", gates);
  combine_to_tokens<T>(ctx, plan, detail::CombineSource::Permuted, Yp.data, Yp.ld, Yp.cols,
                       gates.data, gates.ld, Y.data, Y.ld);
}

template <class T>
void gather_backward_impl(Context& ctx, const MoePlan& plan, MatrixView<const T> Yp,
                          MatrixView<const float> gates, MatrixView<const T> dY, MatrixView<T> dYp,
                          MatrixView<float> dgates) {
  const char* op = "moe_gather_backward";
  const Validator v(op, ctx);
  check_plan(v, op, plan);
  check_matrix(v, "Yp", Yp, plan.layout.rows, "rows (plan.layout.rows)", -1, "cols (H)");
  check_gates(v, "gates", gates, plan);
  check_matrix(v, "dY", dY, plan.layout.tokens, "rows (plan tokens)", Yp.cols,
               "cols (the cols of Yp)");
  check_matrix(v, "dYp", dYp, plan.layout.rows, "rows (plan.layout.rows)", Yp.cols,
               "cols (the cols of Yp)");
  check_matrix(v, "dgates", dgates, plan.layout.tokens, "rows (plan tokens)", plan.layout.top_k,
               "cols (plan top_k)");
  v.disjoint("dYp", dYp, "Yp", Yp);
  v.disjoint("dYp", dYp, "gates", gates);
  v.disjoint("dYp", dYp, "dY", dY);
  v.disjoint("dgates", dgates, "Yp", Yp);
  v.disjoint("dgates", dgates, "gates", gates);
  v.disjoint("dgates", dgates, "dY", dY);
  v.disjoint("dgates", dgates, "dYp", dYp);
  detail::GatherBackwardProblem<T> a;
  a.plan = arrays_of(plan);
  a.cols = Yp.cols;
  a.yp = Yp.data;
  a.ld_yp = Yp.ld;
  a.gates = gates.data;
  a.ld_gates = gates.ld;
  a.dy = dY.data;
  a.ld_dy = dY.ld;
  a.dyp = dYp.data;
  a.ld_dyp = dYp.ld;
  a.dgates = dgates.data;
  a.ld_dgates = dgates.ld;
  if (plan.layout.rows > 0 || plan.layout.tokens > 0) run(ctx, a);
}

// ------------------------------------------------------------------ grouped GEMMs

// The input X/Xp [in_rows x K] and the weights of a grouped GEMM with N output columns.
template <class T>
void check_gemm_operands(const Validator& v, const MoePlan& plan, const char* x_name,
                         const MatrixView<const T>& X, int64_t in_rows, const char* rows_what,
                         const MatrixView<const T>& W, int64_t n, bool trans) {
  check_matrix(v, x_name, X, in_rows, rows_what, -1, "cols (K)");
  check_aligned(v, x_name, X);
  if (n < 1) v.fail(Status::ShapeMismatch, "W", "expected at least one output column");
  check_weights(v, "W", W, plan.layout.experts, X.cols, n, trans);
}

template <class T>
detail::GroupedGemmProblem<T> gemm_args(const MoePlan& plan, const MatrixView<const T>& A,
                                        bool a_gather, const MatrixView<const T>& W, bool trans,
                                        int64_t n) {
  detail::GroupedGemmProblem<T> g;
  g.plan = arrays_of(plan);
  g.n = n;
  g.k = A.cols;
  g.a[0] = A.data;
  g.lda[0] = A.ld;
  g.a_gather = a_gather;
  g.b[0] = W.data;
  g.ldb[0] = W.ld;
  g.b_trans = trans;
  return g;
}

template <class T>
void grouped_gemm_impl(Context& ctx, const char* op, const MoePlan& plan, MatrixView<const T> X,
                       bool gather, MatrixView<const T> W, MatrixView<T> Yp,
                       const MoeGemmOptions& o) {
  const Validator v(op, ctx);
  check_plan(v, op, plan);
  check_matrix(v, "Yp", Yp, plan.layout.rows, "rows (plan.layout.rows)", -1, "cols (N)");
  check_aligned(v, "Yp", Yp);
  check_gemm_operands(
      v, plan, gather ? "X" : "Xp", X, gather ? plan.layout.tokens : plan.layout.rows,
      gather ? "rows (plan tokens)" : "rows (plan.layout.rows)", W, Yp.cols, o.transpose_w);
  v.disjoint("Yp", Yp, gather ? "X" : "Xp", X);
  v.disjoint("Yp", Yp, "W", W);
  detail::GroupedGemmProblem<T> g = gemm_args(plan, X, gather, W, o.transpose_w, Yp.cols);
  g.epilogue = detail::GemmEpilogue::Rows;
  g.c = Yp.data;
  g.ldc = Yp.ld;
  if (plan.layout.rows > 0) run(ctx, g);
}

// Y [T x N] = sum_j w_tj (A[row of (t, j)] op(B)) for the products described by g
// (its epilogue and output are set here): the Slots epilogue into a slot-ordered
// workspace, then the contiguous combine.
template <class T>
void gemm_then_combine(Context& ctx, const MoePlan& plan, detail::GroupedGemmProblem<T> g,
                       const float* gates, int64_t ld_gates, T* Y, int64_t ldy) {
  Workspace<T> slots(ctx, plan.layout.tokens * plan.layout.top_k, g.n);
  g.epilogue = detail::GemmEpilogue::Slots;
  g.c = slots.data();
  g.ldc = slots.ld;
  g.gates = gates;
  g.ld_gates = ld_gates;
  if (plan.layout.rows > 0) run(ctx, g);
  combine_to_tokens<T>(ctx, plan, detail::CombineSource::Slots, slots.data(), slots.ld, g.n,
                       nullptr, 0, Y, ldy);
}

template <class T>
void gemm_combine_impl(Context& ctx, const MoePlan& plan, MatrixView<const T> Hp,
                       MatrixView<const T> W, MatrixView<const float> gates, MatrixView<T> Y,
                       const MoeGemmOptions& o) {
  const char* op = "moe_gemm_combine";
  const Validator v(op, ctx);
  check_plan(v, op, plan);
  check_matrix(v, "Y", Y, plan.layout.tokens, "rows (plan tokens)", -1, "cols (N)");
  check_aligned(v, "Y", Y);
  check_gemm_operands(v, plan, "Hp", Hp, plan.layout.rows, "rows (plan.layout.rows)", W, Y.cols,
                      o.transpose_w);
  check_gates(v, "gates", gates, plan);
  v.disjoint("Y", Y, "Hp", Hp);
  v.disjoint("Y", Y, "W", W);
  v.disjoint("Y", Y, "gates", gates);
  gemm_then_combine(ctx, plan, gemm_args(plan, Hp, false, W, o.transpose_w, Y.cols), gates.data,
                    gates.ld, Y.data, Y.ld);
}

template <class T>
void wgrad_impl(Context& ctx, const MoePlan& plan, MatrixView<const T> Xp, MatrixView<const T> dYp,
                MatrixView<T> dW) {
  const char* op = "moe_grouped_gemm_wgrad";
  const Validator v(op, ctx);
  check_plan(v, op, plan);
  check_matrix(v, "Xp", Xp, plan.layout.rows, "rows (plan.layout.rows)", -1, "cols (K)");
  check_aligned(v, "Xp", Xp);
  check_matrix(v, "dYp", dYp, plan.layout.rows, "rows (plan.layout.rows)", -1, "cols (N)");
  check_aligned(v, "dYp", dYp);
  const std::optional<int64_t> dw_rows = detail::checked_mul(plan.layout.experts, Xp.cols);
  if (!dw_rows)
    v.fail(Status::InvalidArgument, "Xp", "experts * K (the cols of Xp) overflows 64 bits");
  check_matrix(v, "dW", dW, *dw_rows, "rows (experts * K)", dYp.cols, "cols (N, the cols of dYp)");
  check_aligned(v, "dW", dW);
  v.disjoint("dW", dW, "Xp", Xp);
  v.disjoint("dW", dW, "dYp", dYp);
  detail::WgradProblem<T> w;
  w.plan = arrays_of(plan);
  w.m = Xp.cols;
  w.n = dYp.cols;
  w.a = Xp.data;
  w.lda = Xp.ld;
  w.b = dYp.data;
  w.ldb = dYp.ld;
  w.c = dW.data;
  w.ldc = dW.ld;
  run(ctx, w);
}

// ------------------------------------------------------------------ SwiGLU MLP

template <class T>
void check_mlp_common(const Validator& v, const char* op, const MoePlan& plan,
                      const MatrixView<const T>& X, const MatrixView<const float>& gates,
                      const MoeMlpWeights<T>& w) {
  check_plan(v, op, plan);
  const int64_t E = plan.layout.experts;
  check_matrix(v, "X", X, plan.layout.tokens, "rows (plan tokens)", -1, "cols (H)");
  check_aligned(v, "X", X);
  check_gates(v, "gates", gates, plan);
  const int64_t H = X.cols;
  v.matrix("weights.w1", w.w1);
  v.at_least("weights.w1", "cols (F)", 1, w.w1.cols);
  const int64_t F = w.w1.cols;
  check_weights(v, "weights.w1", w.w1, E, H, F, false);
  check_weights(v, "weights.w3", w.w3, E, H, F, false);
  check_weights(v, "weights.w2", w.w2, E, F, H, false);
}

// Saved h1, h3 [rows x F]: both or neither.
template <class T>
void check_saved(const Validator& v, const MoePlan& plan, const MoeMlpSaved<T>& s, int64_t F) {
  // Absent (nothing kept) is two default views: NULL data and no extents. Views
  // with NULL data but extents (a C caller's descriptors) are given ones, checked
  // as such: garbage extents must not pass for "absent".
  const auto is_default = [](const MatrixView<T>& m) {
    return m.data == nullptr && m.rows == 0 && m.cols == 0;
  };
  if (is_default(s.h1) && is_default(s.h3)) return;
  check_matrix(v, "saved.h1", s.h1, plan.layout.rows, "rows (plan.layout.rows)", F,
               "cols (F, the cols of w1)");
  check_aligned(v, "saved.h1", s.h1);
  check_matrix(v, "saved.h3", s.h3, plan.layout.rows, "rows (plan.layout.rows)", F,
               "cols (F, the cols of w1)");
  check_aligned(v, "saved.h3", s.h3);
}

template <class T, class U>
void disjoint_from_inputs(const Validator& v, const char* name, const MatrixView<U>& out,
                          const MatrixView<const T>& X, const MatrixView<const float>& gates,
                          const MoeMlpWeights<T>& w) {
  v.disjoint(name, out, "X", X);
  v.disjoint(name, out, "gates", gates);
  v.disjoint(name, out, "weights.w1", w.w1);
  v.disjoint(name, out, "weights.w3", w.w3);
  v.disjoint(name, out, "weights.w2", w.w2);
}

// h1, h3 (optional stores) and a = silu(h1) h3, from the fused gather GEMM.
template <class T>
void mlp_up(Context& ctx, const MoePlan& plan, const MatrixView<const T>& X,
            const MoeMlpWeights<T>& w, T* h1, int64_t ld_h1, T* h3, int64_t ld_h3, T* a,
            int64_t ld_a) {
  detail::GroupedGemmProblem<T> g = gemm_args(plan, X, true, w.w1, false, w.w1.cols);
  g.b[1] = w.w3.data;
  g.ldb[1] = w.w3.ld;
  g.epilogue = detail::GemmEpilogue::SwiGLU;
  g.c = a;
  g.ldc = ld_a;
  g.h1 = h1;
  g.ld_h1 = ld_h1;
  g.h3 = h3;
  g.ld_h3 = ld_h3;
  if (plan.layout.rows > 0) run(ctx, g);
}

template <class T>
void mlp_forward_impl(Context& ctx, const MoePlan& plan, MatrixView<const T> X,
                      MatrixView<const float> gates, const MoeMlpWeights<T>& w, MatrixView<T> Y,
                      const MoeMlpSaved<T>& saved) {
  const char* op = "moe_mlp_forward";
  const Validator v(op, ctx);
  check_mlp_common(v, op, plan, X, gates, w);
  const int64_t H = X.cols, F = w.w1.cols;
  check_matrix(v, "Y", Y, plan.layout.tokens, "rows (plan tokens)", H, "cols (H, the cols of X)");
  check_aligned(v, "Y", Y);
  check_saved(v, plan, saved, F);
  disjoint_from_inputs(v, "Y", Y, X, gates, w);
  if (!saved.empty()) {
    disjoint_from_inputs(v, "saved.h1", saved.h1, X, gates, w);
    disjoint_from_inputs(v, "saved.h3", saved.h3, X, gates, w);
    v.disjoint("saved.h1", saved.h1, "Y", Y);
    v.disjoint("saved.h3", saved.h3, "Y", Y);
    v.disjoint("saved.h1", saved.h1, "saved.h3", saved.h3);
  }

  Workspace<T> a(ctx, plan.layout.rows, F);
  mlp_up(ctx, plan, X, w, saved.h1.data, saved.h1.ld, saved.h3.data, saved.h3.ld, a.data(), a.ld);
  detail::GroupedGemmProblem<T> down =
      gemm_args(plan, MatrixView<const T>(a.data(), plan.layout.rows, F, a.ld, X.memory), false,
                w.w2, false, H);
  gemm_then_combine(ctx, plan, down, gates.data, gates.ld, Y.data, Y.ld);
}

template <class T>
void mlp_backward_impl(Context& ctx, const MoePlan& plan, MatrixView<const T> X,
                       MatrixView<const float> gates, const MoeMlpWeights<T>& w,
                       MatrixView<const T> dY, const MoeMlpSaved<T>& saved,
                       const MoeMlpGrads<T>& grads) {
  const char* op = "moe_mlp_backward";
  const Validator v(op, ctx);
  check_mlp_common(v, op, plan, X, gates, w);
  const int64_t E = plan.layout.experts, H = X.cols, F = w.w1.cols;
  const int64_t rows = plan.layout.rows;
  check_matrix(v, "dY", dY, plan.layout.tokens, "rows (plan tokens)", H, "cols (H, the cols of X)");
  check_aligned(v, "dY", dY);
  check_saved(v, plan, saved, F);
  check_matrix(v, "grads.dX", grads.dX, plan.layout.tokens, "rows (plan tokens)", H,
               "cols (H, the cols of X)");
  check_aligned(v, "grads.dX", grads.dX);
  check_matrix(v, "grads.dgates", grads.dgates, plan.layout.tokens, "rows (plan tokens)",
               plan.layout.top_k, "cols (plan top_k)");
  check_matrix(v, "grads.dw1", grads.dw1, E * H, "rows (experts * H)", F, "cols (F)");
  check_aligned(v, "grads.dw1", grads.dw1);
  check_matrix(v, "grads.dw3", grads.dw3, E * H, "rows (experts * H)", F, "cols (F)");
  check_aligned(v, "grads.dw3", grads.dw3);
  check_matrix(v, "grads.dw2", grads.dw2, E * F, "rows (experts * F)", H, "cols (H)");
  check_aligned(v, "grads.dw2", grads.dw2);
  const char* names[5] = {"grads.dX", "grads.dgates", "grads.dw1", "grads.dw3", "grads.dw2"};
  auto each_output = [&](auto&& f) {
    f(names[0], grads.dX);
    f(names[1], grads.dgates);
    f(names[2], grads.dw1);
    f(names[3], grads.dw3);
    f(names[4], grads.dw2);
  };
  each_output([&](const char* name, const auto& out) {
    disjoint_from_inputs(v, name, out, X, gates, w);
    v.disjoint(name, out, "dY", dY);
    if (!saved.empty()) {
      v.disjoint(name, out, "saved.h1", saved.h1);
      v.disjoint(name, out, "saved.h3", saved.h3);
    }
  });
  v.disjoint("grads.dX", grads.dX, "grads.dgates", grads.dgates);
  v.disjoint("grads.dX", grads.dX, "grads.dw1", grads.dw1);
  v.disjoint("grads.dX", grads.dX, "grads.dw3", grads.dw3);
  v.disjoint("grads.dX", grads.dX, "grads.dw2", grads.dw2);
  v.disjoint("grads.dgates", grads.dgates, "grads.dw1", grads.dw1);
  v.disjoint("grads.dgates", grads.dgates, "grads.dw3", grads.dw3);
  v.disjoint("grads.dgates", grads.dgates, "grads.dw2", grads.dw2);
  v.disjoint("grads.dw1", grads.dw1, "grads.dw3", grads.dw3);
  v.disjoint("grads.dw1", grads.dw1, "grads.dw2", grads.dw2);
  v.disjoint("grads.dw3", grads.dw3, "grads.dw2", grads.dw2);

  const Memory mem = X.memory;
  // h1, h3: the forward's, or recomputed.
  Workspace<T> h1_ws(ctx, saved.empty() ? rows : 0, F), h3_ws(ctx, saved.empty() ? rows : 0, F);
  const T* h1 = saved.h1.data;
  const T* h3 = saved.h3.data;
  int64_t ld_h1 = saved.h1.ld, ld_h3 = saved.h3.ld;
  Workspace<T> act(ctx, rows, F);
  if (saved.empty()) {
    mlp_up(ctx, plan, X, w, h1_ws.data(), h1_ws.ld, h3_ws.data(), h3_ws.ld, act.data(), act.ld);
    h1 = h1_ws.data();
    h3 = h3_ws.data();
    ld_h1 = h1_ws.ld;
    ld_h3 = h3_ws.ld;
  }
  // u = dY[token] W2_e^T (the gather fused into the GEMM).
  Workspace<T> u(ctx, rows, F);
  {
    detail::GroupedGemmProblem<T> g = gemm_args(plan, dY, true, w.w2, true, F);
    g.epilogue = detail::GemmEpilogue::Rows;
    g.c = u.data();
    g.ldc = u.ld;
    if (rows > 0) run(ctx, g);
  }
  // dgates, dh1, dh3 and the activation a.
  Workspace<T> dh1(ctx, rows, F), dh3(ctx, rows, F);
  {
    detail::SwigluBackwardProblem<T> s;
    s.plan = arrays_of(plan);
    s.cols = F;
    s.h1 = h1;
    s.ld_h1 = ld_h1;
    s.h3 = h3;
    s.ld_h3 = ld_h3;
    s.u = u.data();
    s.ld_u = u.ld;
    s.gates = gates.data;
    s.ld_gates = gates.ld;
    s.dh1 = dh1.data();
    s.ld_dh1 = dh1.ld;
    s.dh3 = dh3.data();
    s.ld_dh3 = dh3.ld;
    s.a_out = act.data();
    s.ld_a = act.ld;
    s.dgates = grads.dgates.data;
    s.ld_dgates = grads.dgates.ld;
    if (rows > 0 || plan.layout.tokens > 0) run(ctx, s);
  }
  // Weight gradients: dW2_e = a_e^T (g dY[token]), dW1_e = X[token]^T dh1, dW3_e likewise.
  auto wgrad = [&](const T* a, int64_t lda, bool a_gather, int64_t m, const T* b, int64_t ldb,
                   bool b_gather, const float* b_gates, int64_t n, T* c, int64_t ldc) {
    detail::WgradProblem<T> wg;
    wg.plan = arrays_of(plan);
    wg.m = m;
    wg.n = n;
    wg.a = a;
    wg.lda = lda;
    wg.a_gather = a_gather;
    wg.b = b;
    wg.ldb = ldb;
    wg.b_gather = b_gather;
    wg.b_gates = b_gates;
    wg.ld_gates = gates.ld;
    wg.c = c;
    wg.ldc = ldc;
    run(ctx, wg);
  };
  wgrad(act.data(), act.ld, false, F, dY.data, dY.ld, true, gates.data, H, grads.dw2.data,
        grads.dw2.ld);
  wgrad(X.data, X.ld, true, H, dh1.data(), dh1.ld, false, nullptr, F, grads.dw1.data, grads.dw1.ld);
  wgrad(X.data, X.ld, true, H, dh3.data(), dh3.ld, false, nullptr, F, grads.dw3.data, grads.dw3.ld);
  // dX[t] = sum_j (dh1 W1_e^T + dh3 W3_e^T)[row of (t, j)]: two segments, combined.
  detail::GroupedGemmProblem<T> g =
      gemm_args(plan, MatrixView<const T>(dh1.data(), rows, F, dh1.ld, mem), false, w.w1, true, H);
  g.segments = 2;
  g.a[1] = dh3.data();
  g.lda[1] = dh3.ld;
  g.b[1] = w.w3.data;
  g.ldb[1] = w.w3.ld;
  gemm_then_combine(ctx, plan, g, nullptr, 0, grads.dX.data, grads.dX.ld);
}

}  // namespace

// ------------------------------------------------------------------ public entry points

MoePlanLayout moe_plan_layout(std::int64_t tokens, std::int64_t top_k, std::int64_t experts,
                              const MoePlanOptions& options) {
  check_layout_fields("moe_plan_layout", "", tokens, top_k, experts, options);
  MoePlanLayout L;
  L.tokens = tokens;
  L.top_k = top_k;
  L.experts = experts;
  L.options = options;
  L.rows = detail::plan_rows_bound(tokens, top_k, experts, options.pad_to, options.capacity);
  return L;
}

std::int64_t MoePlanLayout::storage_size() const {
  check_layout("MoePlanLayout::storage_size", "layout.", *this);
  return experts + (experts + 1) + rows + tokens * top_k;
}

MoePlan moe_plan_views(const MoePlanLayout& layout, std::int32_t* storage, Memory memory) {
  if (layout.storage_size() > 0 && storage == nullptr)
    layout_fail("moe_plan_views", "storage", "is null");
  MoePlan p;
  p.layout = layout;
  std::int32_t* at = storage;
  auto take = [&](std::int64_t n) {
    VectorView<std::int32_t> view(at, n, memory);
    at += n;
    return view;
  };
  p.counts = take(layout.experts);
  p.offsets = take(layout.experts + 1);
  p.row_slot = take(layout.rows);
  p.slot_row = take(layout.tokens * layout.top_k);
  return p;
}

void moe_router_topk(Context& ctx, MatrixView<const float> logits, MatrixView<std::int32_t> ids,
                     MatrixView<float> gates, const RouterOptions& options) {
  router_impl<float>(ctx, logits, ids, gates, options);
}
void moe_router_topk(Context& ctx, MatrixView<const bf16> logits, MatrixView<std::int32_t> ids,
                     MatrixView<float> gates, const RouterOptions& options) {
  router_impl<bf16>(ctx, logits, ids, gates, options);
}

void moe_plan(Context& ctx, MatrixView<const std::int32_t> ids, const MoePlan& plan,
              VectorView<std::int32_t> host_counts) {
  plan_impl(ctx, ids, plan, host_counts);
}

#define KFUSE_MOE_OVERLOADS(T)                                                                    \
  void moe_scatter(Context& ctx, const MoePlan& plan, MatrixView<const T> X, MatrixView<T> Xp) {  \
    scatter_impl<T>(ctx, plan, X, Xp);                                                            \
  }                                                                                               \
  void moe_scatter_backward(Context& ctx, const MoePlan& plan, MatrixView<const T> dXp,           \
                            MatrixView<T> dX) {                                                   \
    scatter_backward_impl<T>(ctx, plan, dXp, dX);                                                 \
  }                                                                                               \
  void moe_gather(Context& ctx, const MoePlan& plan, MatrixView<const T> Yp,                      \
                  MatrixView<const float> gates, MatrixView<T> Y) {                               \
    gather_impl<T>(ctx, plan, Yp, gates, Y);                                                      \
  }                                                                                               \
  void moe_gather_backward(Context& ctx, const MoePlan& plan, MatrixView<const T> Yp,             \
                           MatrixView<const float> gates, MatrixView<const T> dY,                 \
                           MatrixView<T> dYp, MatrixView<float> dgates) {                         \
    gather_backward_impl<T>(ctx, plan, Yp, gates, dY, dYp, dgates);                               \
  }                                                                                               \
  void moe_grouped_gemm(Context& ctx, const MoePlan& plan, MatrixView<const T> Xp,                \
                        MatrixView<const T> W, MatrixView<T> Yp, const MoeGemmOptions& o) {       \
    grouped_gemm_impl<T>(ctx, "moe_grouped_gemm", plan, Xp, false, W, Yp, o);                     \
  }                                                                                               \
  void moe_gather_gemm(Context& ctx, const MoePlan& plan, MatrixView<const T> X,                  \
                       MatrixView<const T> W, MatrixView<T> Yp, const MoeGemmOptions& o) {        \
    grouped_gemm_impl<T>(ctx, "moe_gather_gemm", plan, X, true, W, Yp, o);                        \
  }                                                                                               \
  void moe_gemm_combine(Context& ctx, const MoePlan& plan, MatrixView<const T> Hp,                \
                        MatrixView<const T> W, MatrixView<const float> gates, MatrixView<T> Y,    \
                        const MoeGemmOptions& o) {                                                \
    gemm_combine_impl<T>(ctx, plan, Hp, W, gates, Y, o);                                          \
  }                                                                                               \
  void moe_grouped_gemm_wgrad(Context& ctx, const MoePlan& plan, MatrixView<const T> Xp,          \
                              MatrixView<const T> dYp, MatrixView<T> dW) {                        \
    wgrad_impl<T>(ctx, plan, Xp, dYp, dW);                                                        \
  }                                                                                               \
  void moe_mlp_forward(Context& ctx, const MoePlan& plan, MatrixView<const T> X,                  \
                       MatrixView<const float> gates, const MoeMlpWeights<T>& w, MatrixView<T> Y, \
                       const MoeMlpSaved<T>& saved) {                                             \
    mlp_forward_impl<T>(ctx, plan, X, gates, w, Y, saved);                                        \
  }                                                                                               \
  void moe_mlp_backward(Context& ctx, const MoePlan& plan, MatrixView<const T> X,                 \
                        MatrixView<const float> gates, const MoeMlpWeights<T>& w,                 \
                        MatrixView<const T> dY, const MoeMlpSaved<T>& saved,                      \
                        const MoeMlpGrads<T>& grads) {                                            \
    mlp_backward_impl<T>(ctx, plan, X, gates, w, dY, saved, grads);                               \
  }

KFUSE_MOE_OVERLOADS(float)
KFUSE_MOE_OVERLOADS(bf16)
#undef KFUSE_MOE_OVERLOADS

}  // namespace kfuse
