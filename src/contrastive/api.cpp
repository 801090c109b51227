// The contrastive family's host layer: validate every argument, then compose each
// call from passes over the logits (kernels/contrastive/problem.hpp), lay
// out their workspace, and reduce their per-row results to the scalar outputs.
//
// Orientation. A CLIP call has a main direction whose rows are "P" and whose
// columns are "Q": (P, Q) = (A, B) for Both and AtoB, (B, A) for BtoA. The forward
// is one pass over P's rows that also collects Q's statistics (direction Both).
// The backward is a pass over P's rows (dP) and one over Q's rows (dQ), the
// latter with the roles of rows and columns swapped.
#include "kfuse/contrastive.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "kernels/contrastive/launch.hpp"
#include "kernels/contrastive/plan.hpp"
#include "kernels/contrastive/problem.hpp"
#include "src/contrastive/cpu.hpp"
#include "src/core/backend.hpp"
#include "src/core/reduce.hpp"
#include "src/core/scratch.hpp"
#include "src/core/validate.hpp"

namespace kfuse {
namespace {

namespace cd = detail::contrastive;
using detail::number;
using detail::Validator;

// The accepted host values of t, b and the upstream gradient (the argument is in
// include/kfuse/contrastive.hpp, "Accepted ranges").
constexpr double kMaxLogScale = 11.090354888959125;  // 16 ln 2: tau <= 2^16
constexpr double kMinLogScale = -87.0;               // tau = e^-87 > FLT_MIN: a normal fp32
constexpr double kMaxAbsBias = 65536.0;              // 2^16

// ------------------------------------------------------------------ dispatch

cd::Machine machine_of(const Context& ctx) {
  return KFUSE_DISPATCH(ctx, (cd::Machine{true, cuda::contrastive::sm_count(ctx)}),
                        (cd::Machine{false, 0}));
}

// kept: the CPU's dot products handed from a forward to its backward (or null).
void run(Context& ctx, const cd::ForwardProblem& p, cpu::KeptDots* kept = nullptr) {
  return KFUSE_DISPATCH(ctx, cuda::contrastive::forward(ctx, p), cpu::contrastive_forward(p, kept));
}

void run(Context& ctx, const cd::BackwardProblem& p, cpu::KeptDots* kept = nullptr) {
  return KFUSE_DISPATCH(ctx, cuda::contrastive::backward(ctx, p),
                        cpu::contrastive_backward(p, kept));
}

// Labels in ctx's memory, readable on the host (a device copy synchronises).
std::vector<std::int64_t> labels_on_host(Context& ctx, const VectorView<const std::int64_t>& l) {
  std::vector<std::int64_t> host(static_cast<std::size_t>(l.size));
  const std::size_t bytes = host.size() * sizeof(std::int64_t);
  if (bytes > 0)
    KFUSE_DISPATCH(ctx, cuda::contrastive::copy_to_host(ctx, l.data, bytes, host.data()),
                   (void)std::memcpy(host.data(), l.data, bytes));
  return host;
}

// dQ accumulated in fp32 by the P pass: on a GPU with deterministic = false (by
// atomics), on the CPU wherever its BLAS scheme runs (deterministically, from
// per-row-group partials).
bool dq_in_p_pass(const cd::Machine& m, bool deterministic, std::int64_t np, std::int64_t nq,
                  std::int64_t d) {
  return m.gpu ? !deterministic : cpu::contrastive_dy_in_row_pass(np, nq, d);
}

void zero_accumulator(Context& ctx, float* p, std::size_t bytes) {
  return KFUSE_DISPATCH(ctx, cuda::contrastive::fill_zero(ctx, p, bytes),
                        (void)std::memset(p, 0, bytes));
}

void store_accumulator(Context& ctx, const float* src, std::int64_t ld_src, std::int64_t rows,
                       std::int64_t d, void* dst, DType dtype, std::int64_t ld_dst) {
  return KFUSE_DISPATCH(
      ctx, cuda::contrastive::store_rows(ctx, src, ld_src, rows, d, dst, dtype, ld_dst),
      cpu::contrastive_store_rows(src, ld_src, rows, d, dst, dtype, ld_dst));
}

// ------------------------------------------------------------------ validation

// Na, Nb and d within the documented bounds (contrastive.hpp), so that no workspace
// size overflows. na_name, nb_name: the arguments that carry them.
void check_extents(const Validator& v, std::int64_t na, std::int64_t nb, std::int64_t d,
                   const char* na_name, const char* nb_name) {
  const std::pair<const char*, std::int64_t> sides[2] = {{na_name, na}, {nb_name, nb}};
  for (const auto& [name, rows] : sides) {
    if (rows > kContrastiveMaxRows)
      v.fail(Status::InvalidArgument, name,
             "expected at most 2^31 - 1 rows, got " + std::to_string(rows));
    if (d > kContrastiveMaxElements / rows)
      v.fail(Status::InvalidArgument, name,
             "expected rows * d <= 2^47, got " + std::to_string(rows) + " x " + std::to_string(d));
  }
}

template <class T>
void check_embeddings(const Validator& v, const MatrixView<const T>& A,
                      const MatrixView<const T>& B) {
  v.matrix("A", A);
  v.matrix("B", B);
  v.at_least("A", "rows (Na)", 1, A.rows);
  v.at_least("B", "rows (Nb)", 1, B.rows);
  v.at_least("A", "cols (the dimension d)", 1, A.cols);
  v.extent("B", "cols (the dimension d of A)", A.cols, B.cols);
  check_extents(v, A.rows, B.rows, A.cols, "A", "B");
}

enum class ScalarKind { LogScale, Bias, GradLoss };

void check_scalar(const Validator& v, const char* name, const LossScalar& s, ScalarKind kind) {
  if (!s.device.absent()) {
    v.vector(name, s.device);
    v.extent(name, "size (a scalar in the context's memory)", 1, s.device.size);
    return;
  }
  v.finite(name, s.value);
  switch (kind) {
    case ScalarKind::LogScale:
      if (s.value > kMaxLogScale || s.value < kMinLogScale)
        v.fail(Status::InvalidArgument, name,
               "expected t in [-87, 16 ln 2 = 11.09] (tau = exp(t) in [e^-87, 65536]: a normal "
               "fp32 whose logits keep their differences), got " +
                   number(s.value));
      break;
    case ScalarKind::Bias:
      if (std::fabs(s.value) > kMaxAbsBias)
        v.fail(
            Status::InvalidArgument, name,
            "expected |b| <= 65536 (fp32 logits keep their differences), got " + number(s.value));
      break;
    case ScalarKind::GradLoss:
      if (std::fabs(s.value) > static_cast<double>(std::numeric_limits<float>::max()))
        v.fail(Status::InvalidArgument, name,
               "expected a value finite in fp32 (|dL| <= 3.4e38), got " + number(s.value));
      break;
  }
}

// Which values the labels of a call may take.
struct LabelRule {
  const char* size_what;  // "size (Na)"
  std::int64_t count;     // expected size
  std::int64_t lo, hi;    // values in [lo, hi)
  bool permutation;       // each of [0, hi) exactly once
};

void check_labels(Context& ctx, const Validator& v, const VectorView<const std::int64_t>& labels,
                  const LabelRule& rule, bool check_device, std::int64_t na, std::int64_t nb) {
  if (labels.absent()) {
    if (na != nb)
      v.fail(Status::ShapeMismatch, "labels",
             "absent labels pair row i of A with row i of B, which needs Na == Nb, got Na = " +
                 std::to_string(na) + ", Nb = " + std::to_string(nb));
    return;
  }
  v.vector("labels", labels);
  v.extent("labels", rule.size_what, rule.count, labels.size);
  if (labels.memory == Memory::Device && !check_device) return;
  std::vector<std::int64_t> copy;
  const std::int64_t* values = labels.data;
  if (labels.memory == Memory::Device) {
    copy = labels_on_host(ctx, labels);
    values = copy.data();
  }
  std::vector<bool> seen(rule.permutation ? static_cast<std::size_t>(rule.hi) : 0, false);
  for (std::int64_t k = 0; k < labels.size; ++k) {
    const std::int64_t l = values[k];
    if (l < rule.lo || l >= rule.hi)
      v.fail(Status::InvalidArgument, "labels",
             "expected values in [" + std::to_string(rule.lo) + ", " + std::to_string(rule.hi) +
                 "), got labels[" + std::to_string(k) + "] = " + std::to_string(l));
    if (rule.permutation) {
      if (seen[static_cast<std::size_t>(l)])
        v.fail(Status::InvalidArgument, "labels",
               "direction Both needs a permutation (each row of B paired once), got value " +
                   std::to_string(l) + " twice");
      seen[static_cast<std::size_t>(l)] = true;
    }
  }
}

// A named byte range, for the overlap checks.
struct Region {
  const char* name;
  const void* data;
  std::size_t bytes;
};

template <class View>
Region region(const char* name, const View& view) {
  return {name, view.data, detail::span_bytes(view)};
}

bool overlaps(const Region& a, const Region& b) {
  return detail::ranges_overlap(a.data, a.bytes, b.data, b.bytes);
}

// Outputs must not overlap the inputs nor each other: backends read inputs while
// they write outputs, and write outputs in no particular order.
void check_disjoint(const Validator& v, const std::vector<Region>& outputs,
                    const std::vector<Region>& inputs) {
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    for (const Region& in : inputs)
      if (overlaps(outputs[k], in))
        v.fail(Status::InvalidArgument, outputs[k].name,
               std::string("must not overlap input '") + in.name + "'");
    for (std::size_t q = k + 1; q < outputs.size(); ++q)
      if (overlaps(outputs[k], outputs[q]))
        v.fail(Status::InvalidArgument, outputs[k].name,
               std::string("must not overlap output '") + outputs[q].name + "'");
  }
}

// An optional fp32 vector of n entries; `allowed` false: it must be absent.
template <class T>
void check_optional(const Validator& v, const char* name, const VectorView<T>& x, bool allowed,
                    std::int64_t n, const char* why) {
  if (x.absent()) return;
  if (!allowed) v.fail(Status::InvalidArgument, name, std::string("must be absent: ") + why);
  v.vector(name, x);
  v.extent(name, "size", n, x.size);
}

void check_required(const Validator& v, const char* name, const VectorView<float>& x,
                    std::int64_t n) {
  if (x.absent()) v.fail(Status::InvalidArgument, name, "is required");
  v.vector(name, x);
  v.extent(name, "size", n, x.size);
}

template <class G>
void check_gradients(const Validator& v, const ContrastiveGradients<G>& g, std::int64_t na,
                     std::int64_t nb, std::int64_t d) {
  if (!(g.dA.data == nullptr && g.dA.rows == 0)) {
    v.matrix("dA", g.dA);
    v.extent("dA", "rows (Na)", na, g.dA.rows);
    v.extent("dA", "cols (d)", d, g.dA.cols);
  }
  if (!(g.dB.data == nullptr && g.dB.rows == 0)) {
    v.matrix("dB", g.dB);
    v.extent("dB", "rows (Nb)", nb, g.dB.rows);
    v.extent("dB", "cols (d)", d, g.dB.cols);
  }
  check_optional(v, "dt", g.dt, true, 1, "");
  check_optional(v, "db", g.db, true, 1, "");
}

template <class G>
bool present(const MatrixView<G>& m) {
  return !(m.data == nullptr && m.rows == 0);
}

template <class G>
void gradient_regions(const ContrastiveGradients<G>& g, std::vector<Region>& out) {
  out.push_back(region("dA", g.dA));
  out.push_back(region("dB", g.dB));
  out.push_back(region("dt", g.dt));
  out.push_back(region("db", g.db));
}

// ------------------------------------------------------------------ workspace

// The caller's workspace, or one from ctx (released at the end of the call,
// stream-ordered on a GPU).
class Workspace {
 public:
  Workspace(Context& ctx, const ContrastiveWorkspace& given, std::size_t bytes)
      : scratch_(ctx, given.data != nullptr ? 0 : bytes),
        base_(given.data != nullptr ? static_cast<unsigned char*>(given.data)
                                    : scratch_.as<unsigned char>()) {}
  template <class T>
  T* at(std::size_t offset) const {
    return reinterpret_cast<T*>(base_ + offset);
  }

 private:
  detail::Scratch scratch_;
  unsigned char* base_;
};

void check_workspace(const Validator& v, const Context& ctx, const ContrastiveWorkspace& w,
                     std::size_t needed, std::vector<Region>& outputs) {
  if (w.data == nullptr) {
    if (w.bytes != 0) v.fail(Status::InvalidArgument, "workspace", "data is null, bytes is not 0");
    return;
  }
  if (w.bytes < needed)
    v.fail(
        Status::ShapeMismatch, "workspace",
        "expected at least " + std::to_string(needed) + " bytes, got " + std::to_string(w.bytes));
  if (reinterpret_cast<std::uintptr_t>(w.data) % 256 != 0)
    v.fail(Status::InvalidArgument, "workspace", "expected a 256-byte aligned address");
  const Memory memory = ctx.backend() == Backend::Cuda ? Memory::Device : Memory::Host;
  v.vector("workspace",
           VectorView<const unsigned char>(static_cast<const unsigned char*>(w.data),
                                           static_cast<std::int64_t>(w.bytes), memory));
  outputs.push_back({"workspace", w.data, w.bytes});
}

std::size_t align256(std::size_t bytes) {
  return (bytes + 255) / 256 * 256;
}

// A backward's workspace: its passes run one after the other and share it.
std::size_t backward_bytes(const cd::Machine& m, std::int64_t np, std::int64_t nq, std::int64_t d,
                           bool dy_accumulate) {
  return std::max(cd::backward_layout(m, np, nq, d, dy_accumulate).bytes,
                  cd::backward_layout(m, nq, np, d, false).bytes);
}

std::size_t pass_bytes(const cd::Machine& m, std::int64_t np, std::int64_t nq, std::int64_t d,
                       ContrastivePass pass, bool dy_accumulate) {
  const std::size_t f = cd::forward_layout(m, np, nq).bytes;
  const std::size_t b = backward_bytes(m, np, nq, d, dy_accumulate);
  switch (pass) {
    case ContrastivePass::Forward:
      return f;
    case ContrastivePass::Backward:
      return b;
    default:
      return align256(f) + b;
  }
}

// ------------------------------------------------------------------ passes

template <class T>
cd::Logits logits(const MatrixView<const T>& X, const MatrixView<const T>& Y, const LossScalar& t,
                  const LossScalar& b, cd::LabelMode mode, const std::int64_t* labels,
                  Precision precision) {
  cd::Logits s;
  s.dtype = dtype_of<T>::value;
  s.x = X.data;
  s.ldx = X.ld;
  s.nx = X.rows;
  s.y = Y.data;
  s.ldy = Y.ld;
  s.ny = Y.rows;
  s.d = X.cols;
  s.t = {t.value, t.device.absent() ? nullptr : t.device.data};
  s.b = {b.value, b.device.absent() ? nullptr : b.device.data};
  s.label_mode = labels == nullptr ? cd::LabelMode::Identity : mode;
  s.labels = labels;
  s.precision = precision;
  return s;
}

cd::Scalar scalar(const LossScalar& s) {
  return {s.value, s.device.absent() ? nullptr : s.device.data};
}

// A CLIP call in the orientation of its main direction.
template <class T>
struct Oriented {
  MatrixView<const T> P, Q;
  bool swapped;  // P is B
  double wp, wq;
};

template <class T>
Oriented<T> orient(const MatrixView<const T>& A, const MatrixView<const T>& B, ClipDirection d) {
  if (d == ClipDirection::BtoA) return {B, A, true, 1.0, 0.0};
  if (d == ClipDirection::AtoB) return {A, B, false, 1.0, 0.0};
  return {A, B, false, 0.5, 0.5};
}

// The backward passes of either loss, given the P pass's description. dP and dQ
// may be absent; `first_sums` receive the scalar gradients' per-row sums.
struct GradientPlan {
  bool run_p = false, run_q = false, dq_by_atomics = false;
};

GradientPlan plan_gradients(const Context& ctx, bool deterministic, bool want_dp, bool want_dq,
                            bool need_p_rows, std::int64_t np, std::int64_t nq, std::int64_t d) {
  GradientPlan g;
  if (ctx.backend() != Backend::Cuda && cpu::contrastive_dy_in_row_pass(np, nq, d)) {
    // One pass over P's rows, whatever is wanted (see contrastive_dy_in_row_pass).
    g.dq_by_atomics = want_dq;
    g.run_p = true;
    return g;
  }
  g.dq_by_atomics = ctx.backend() == Backend::Cuda && !deterministic && want_dp && want_dq;
  g.run_p = want_dp || need_p_rows || !want_dq;
  g.run_q = want_dq && !g.dq_by_atomics;
  return g;
}

template <class G>
void set_dx(cd::BackwardProblem& b, const MatrixView<G>& dx) {
  if (!present(dx)) return;
  b.dx = dx.data;
  b.dx_dtype = dtype_of<G>::value;
  b.lddx = dx.ld;
}

// Runs the P pass (then the Q pass) of a backward whose P-pass description is
// `bp` and Q-pass description `bq`; reduces the first pass's sums into dt, db and
// (SigLIP) the loss.
template <class G>
void run_gradients(Context& ctx, const GradientPlan& plan, cd::BackwardProblem bp,
                   cd::BackwardProblem bq, const MatrixView<G>& dP, const MatrixView<G>& dQ,
                   const ContrastiveGradients<G>& grads, unsigned char* base, bool clip,
                   VectorView<float> loss, double loss_coef, float* p_loss_rows,
                   cpu::KeptDots* kept = nullptr) {
  const cd::Machine m = machine_of(ctx);
  const std::int64_t d = bp.s.d;
  const bool sums_wanted = !grads.dt.absent() || (!clip && !grads.db.absent()) || !loss.absent();
  auto prepare = [&](cd::BackwardProblem& b, bool first, bool atomics, float* loss_rows) {
    const cd::BackwardLayout l = cd::backward_layout(m, b.s.nx, b.s.ny, d, atomics);
    b.plan = l.plan;
    b.slots = reinterpret_cast<float*>(base + l.slots);
    b.split_sums = reinterpret_cast<double*>(base + l.split_sums);
    if (first && sums_wanted) {
      b.dt_rows = reinterpret_cast<double*>(base + l.dt_rows);
      b.db_rows = reinterpret_cast<double*>(base + l.db_rows);
      if (!clip && !loss.absent())
        b.loss_rows =
            loss_rows != nullptr ? loss_rows : reinterpret_cast<float*>(base + l.loss_rows);
    }
    if (atomics) {
      b.dy_accum = reinterpret_cast<float*>(base + l.dy_accum);
      b.ld_dy_accum = l.ld_dy_accum;
    }
    return l;
  };
  auto reduce = [&](const cd::BackwardProblem& b, const cd::BackwardLayout& l) {
    if (!sums_wanted) return;
    double* sums = reinterpret_cast<double*>(base + l.sums);
    const double one = 1.0;
    if (!grads.dt.absent()) {
      detail::sum_to_f64(ctx, b.dt_rows, b.s.nx, 1, sums);
      detail::combine_f64(ctx, sums, &one, 1, grads.dt.data);
    }
    if (!clip && !grads.db.absent()) {
      detail::sum_to_f64(ctx, b.db_rows, b.s.nx, 1, sums + 1);
      detail::combine_f64(ctx, sums + 1, &one, 1, grads.db.data);
    }
    if (!clip && !loss.absent()) {
      detail::sum_to_f64(ctx, b.loss_rows, b.s.nx, 1, sums + 2);
      detail::combine_f64(ctx, sums + 2, &loss_coef, 1, loss.data);
    }
  };

  if (clip && !grads.db.absent()) {
    // CLIP's loss is invariant to b: db is exactly 0 (a combination of no terms).
    const double none = 0.0;
    detail::combine_f64(ctx, &none, &none, 0, grads.db.data);
  }
  if (clip && !present(dP) && !present(dQ) && grads.dt.absent()) return;
  if (plan.run_p) {
    set_dx(bp, dP);
    const cd::BackwardLayout l = prepare(bp, true, plan.dq_by_atomics, p_loss_rows);
    if (plan.dq_by_atomics)
      zero_accumulator(ctx, bp.dy_accum,
                       static_cast<std::size_t>(bp.s.ny * bp.ld_dy_accum) * sizeof(float));
    run(ctx, bp, kept);
    reduce(bp, l);
    if (plan.dq_by_atomics)
      store_accumulator(ctx, bp.dy_accum, bp.ld_dy_accum, dQ.rows, d, dQ.data, dtype_of<G>::value,
                        dQ.ld);
  }
  if (plan.run_q) {
    set_dx(bq, dQ);
    const cd::BackwardLayout l = prepare(bq, !plan.run_p, false, nullptr);
    run(ctx, bq);
    if (!plan.run_p) reduce(bq, l);
  }
}

// ------------------------------------------------------------------ CLIP

void check_clip_options(const Validator& v, const ClipLossOptions& o) {
  v.enumeration("direction", o.direction, ClipDirection::BtoA, "Both, AtoB or BtoA");
  check_scalar(v, "logit_scale", o.logit_scale, ScalarKind::LogScale);
  check_scalar(v, "bias", o.bias, ScalarKind::Bias);
  if (!(std::isfinite(o.label_smoothing) && o.label_smoothing >= 0.0 && o.label_smoothing < 1.0))
    v.fail(Status::InvalidArgument, "label_smoothing",
           "expected a value in [0, 1), got " + number(o.label_smoothing));
  v.precision(o.precision);
}

template <class T>
void check_clip_inputs(Context& ctx, const Validator& v, const MatrixView<const T>& A,
                       const MatrixView<const T>& B, const VectorView<const std::int64_t>& labels,
                       const ClipLossOptions& o, std::vector<Region>& inputs) {
  check_embeddings(v, A, B);
  check_clip_options(v, o);
  if (o.direction == ClipDirection::Both)
    v.extent("B", "rows (Na: direction Both pairs every row of A with one of B)", A.rows, B.rows);
  LabelRule rule{"size (Na)", A.rows, 0, B.rows, o.direction == ClipDirection::Both};
  if (o.direction == ClipDirection::BtoA) rule = {"size (Nb)", B.rows, 0, A.rows, false};
  check_labels(ctx, v, labels, rule, o.check_device_labels, A.rows, B.rows);
  inputs = {region("A", A), region("B", B), region("labels", labels),
            region("logit_scale", o.logit_scale.device), region("bias", o.bias.device)};
}

bool has_rows(ClipDirection d) {
  return d != ClipDirection::BtoA;
}
bool has_cols(ClipDirection d) {
  return d != ClipDirection::AtoB;
}

void check_forward_outputs(const Validator& v, const ClipForwardOutputs& out, std::int64_t na,
                           std::int64_t nb, ClipDirection dir, std::vector<Region>& outputs) {
  check_required(v, "loss", out.loss, 1);
  const char* why_rows = "direction BtoA has no row quantities";
  const char* why_cols = "direction AtoB has no column quantities";
  check_optional(v, "row_losses", out.row_losses, has_rows(dir), na, why_rows);
  check_optional(v, "lse_rows", out.lse_rows, has_rows(dir), na, why_rows);
  check_optional(v, "col_losses", out.col_losses, has_cols(dir), nb, why_cols);
  check_optional(v, "lse_cols", out.lse_cols, has_cols(dir), nb, why_cols);
  for (Region r : {region("loss", out.loss), region("row_losses", out.row_losses),
                   region("col_losses", out.col_losses), region("lse_rows", out.lse_rows),
                   region("lse_cols", out.lse_cols)})
    outputs.push_back(r);
}

// Enqueues the forward; `base` is its workspace (forward_layout of P, Q).
template <class T>
void enqueue_clip_forward(Context& ctx, const MatrixView<const T>& A, const MatrixView<const T>& B,
                          const VectorView<const std::int64_t>& labels,
                          const ClipForwardOutputs& out, const ClipLossOptions& o,
                          unsigned char* base, float** lse_p, float** lse_q,
                          cpu::KeptDots* keep = nullptr) {
  const Oriented<T> w = orient(A, B, o.direction);
  const cd::ForwardLayout l = cd::forward_layout(machine_of(ctx), w.P.rows, w.Q.rows);
  auto ws = [&](std::size_t offset) { return reinterpret_cast<float*>(base + offset); };
  auto pick = [&](const VectorView<float>& given, std::size_t offset) {
    return given.absent() ? ws(offset) : given.data;
  };
  cd::ForwardProblem f;
  f.loss = cd::Loss::Clip;
  f.s = logits(w.P, w.Q, o.logit_scale, o.bias, cd::LabelMode::Rows, labels.data, o.precision);
  f.smoothing = o.label_smoothing;
  f.want_rows = true;
  f.want_cols = w.wq > 0.0;
  f.plan = l.plan;
  f.row_part = base + l.row_part;
  f.col_part = base + l.col_part;
  f.pos_x = ws(l.pos_x);
  f.pos_y = ws(l.pos_y);
  f.lse_x = pick(w.swapped ? out.lse_cols : out.lse_rows, l.lse_x);
  f.loss_x = pick(w.swapped ? out.col_losses : out.row_losses, l.loss_x);
  f.lse_y = pick(out.lse_cols, l.lse_y);
  f.loss_y = pick(out.col_losses, l.loss_y);
  run(ctx, f, keep);
  double* sums = reinterpret_cast<double*>(base + l.sums);
  detail::sum_to_f64(ctx, f.loss_x, w.P.rows, 1, sums);
  if (f.want_cols) detail::sum_to_f64(ctx, f.loss_y, w.Q.rows, 1, sums + 1);
  const double coeff[2] = {w.wp / double(w.P.rows), w.wq / double(w.Q.rows)};
  detail::combine_f64(ctx, sums, coeff, f.want_cols ? 2 : 1, out.loss.data);
  if (lse_p != nullptr) *lse_p = f.lse_x;
  if (lse_q != nullptr) *lse_q = f.want_cols ? f.lse_y : nullptr;
}

template <class T, class G>
void enqueue_clip_backward(Context& ctx, const MatrixView<const T>& A, const MatrixView<const T>& B,
                           const VectorView<const std::int64_t>& labels, const float* lse_p,
                           const float* lse_q, const LossScalar& grad_loss,
                           const ContrastiveGradients<G>& grads, const ClipLossOptions& o,
                           unsigned char* base, cpu::KeptDots* kept = nullptr) {
  const Oriented<T> w = orient(A, B, o.direction);
  const MatrixView<G>& dP = w.swapped ? grads.dB : grads.dA;
  const MatrixView<G>& dQ = w.swapped ? grads.dA : grads.dB;
  const GradientPlan plan = plan_gradients(ctx, o.deterministic, present(dP), present(dQ), false,
                                           w.P.rows, w.Q.rows, A.cols);
  if (!present(dP) && !present(dQ) && grads.dt.absent() && grads.db.absent()) return;
  const cd::ClipFactors fp = cd::clip_factors(w.wp, w.wq, double(w.P.rows), double(w.Q.rows));
  cd::BackwardProblem bp;
  bp.loss = cd::Loss::Clip;
  bp.s = logits(w.P, w.Q, o.logit_scale, o.bias, cd::LabelMode::Rows, labels.data, o.precision);
  bp.smoothing = o.label_smoothing;
  bp.lse_x = lse_p;
  bp.lse_y = lse_q;
  bp.rx = fp.rx;
  bp.ry = fp.ry;
  bp.coef = fp.coef;
  bp.grad_loss = scalar(grad_loss);
  cd::BackwardProblem bq = bp;
  bq.s = logits(w.Q, w.P, o.logit_scale, o.bias, cd::LabelMode::Cols, labels.data, o.precision);
  bq.lse_x = lse_q;
  bq.lse_y = lse_p;
  bq.rx = fp.ry;
  bq.ry = fp.rx;
  run_gradients(ctx, plan, bp, bq, dP, dQ, grads, base, true, VectorView<float>{}, 0.0, nullptr,
                kept);
}

template <class T>
void clip_forward_impl(Context& ctx, MatrixView<const T> A, MatrixView<const T> B,
                       VectorView<const std::int64_t> labels, const ClipForwardOutputs& out,
                       const ClipLossOptions& o) {
  const Validator v("clip_loss_forward", ctx);
  std::vector<Region> inputs, outputs;
  check_clip_inputs(ctx, v, A, B, labels, o, inputs);
  check_forward_outputs(v, out, A.rows, B.rows, o.direction, outputs);
  const Oriented<T> w = orient(A, B, o.direction);
  const std::size_t bytes = cd::forward_layout(machine_of(ctx), w.P.rows, w.Q.rows).bytes;
  check_workspace(v, ctx, o.workspace, bytes, outputs);
  check_disjoint(v, outputs, inputs);
  Workspace ws(ctx, o.workspace, bytes);
  enqueue_clip_forward(ctx, A, B, labels, out, o, ws.at<unsigned char>(0), nullptr, nullptr);
}

template <class T, class G>
void clip_backward_impl(Context& ctx, MatrixView<const T> A, MatrixView<const T> B,
                        VectorView<const std::int64_t> labels, const ClipSavedStats& saved,
                        LossScalar grad_loss, const ContrastiveGradients<G>& grads,
                        const ClipLossOptions& o) {
  const Validator v("clip_loss_backward", ctx);
  std::vector<Region> inputs, outputs;
  check_clip_inputs(ctx, v, A, B, labels, o, inputs);
  const bool rows = has_rows(o.direction), cols = has_cols(o.direction);
  if (rows) {
    if (saved.lse_rows.absent()) v.fail(Status::InvalidArgument, "lse_rows", "is required");
    check_optional(v, "lse_rows", saved.lse_rows, true, A.rows, "");
  } else {
    check_optional(v, "lse_rows", saved.lse_rows, false, A.rows, "direction BtoA has no rows");
  }
  if (cols) {
    if (saved.lse_cols.absent()) v.fail(Status::InvalidArgument, "lse_cols", "is required");
    check_optional(v, "lse_cols", saved.lse_cols, true, B.rows, "");
  } else {
    check_optional(v, "lse_cols", saved.lse_cols, false, B.rows, "direction AtoB has no columns");
  }
  check_scalar(v, "grad_loss", grad_loss, ScalarKind::GradLoss);
  check_gradients(v, grads, A.rows, B.rows, A.cols);
  inputs.push_back(region("lse_rows", saved.lse_rows));
  inputs.push_back(region("lse_cols", saved.lse_cols));
  inputs.push_back(region("grad_loss", grad_loss.device));
  gradient_regions(grads, outputs);
  const Oriented<T> w = orient(A, B, o.direction);
  const cd::Machine m = machine_of(ctx);
  const bool atomics = dq_in_p_pass(m, o.deterministic, w.P.rows, w.Q.rows, A.cols);
  const std::size_t bytes = backward_bytes(m, w.P.rows, w.Q.rows, A.cols, atomics);
  check_workspace(v, ctx, o.workspace, bytes, outputs);
  check_disjoint(v, outputs, inputs);
  Workspace ws(ctx, o.workspace, bytes);
  const float* lse_p = w.swapped ? saved.lse_cols.data : saved.lse_rows.data;
  const float* lse_q =
      w.wq > 0.0 ? (w.swapped ? saved.lse_rows.data : saved.lse_cols.data) : nullptr;
  enqueue_clip_backward(ctx, A, B, labels, lse_p, lse_q, grad_loss, grads, o,
                        ws.at<unsigned char>(0));
}

template <class T, class G>
void clip_forward_backward_impl(Context& ctx, MatrixView<const T> A, MatrixView<const T> B,
                                VectorView<const std::int64_t> labels,
                                const ClipForwardOutputs& out, LossScalar grad_loss,
                                const ContrastiveGradients<G>& grads, const ClipLossOptions& o) {
  const Validator v("clip_loss_forward_backward", ctx);
  std::vector<Region> inputs, outputs;
  check_clip_inputs(ctx, v, A, B, labels, o, inputs);
  check_forward_outputs(v, out, A.rows, B.rows, o.direction, outputs);
  check_scalar(v, "grad_loss", grad_loss, ScalarKind::GradLoss);
  check_gradients(v, grads, A.rows, B.rows, A.cols);
  inputs.push_back(region("grad_loss", grad_loss.device));
  gradient_regions(grads, outputs);
  const Oriented<T> w = orient(A, B, o.direction);
  const cd::Machine m = machine_of(ctx);
  const bool atomics = dq_in_p_pass(m, o.deterministic, w.P.rows, w.Q.rows, A.cols);
  const std::size_t fbytes = align256(cd::forward_layout(m, w.P.rows, w.Q.rows).bytes);
  const std::size_t bytes = fbytes + backward_bytes(m, w.P.rows, w.Q.rows, A.cols, atomics);
  check_workspace(v, ctx, o.workspace, bytes, outputs);
  check_disjoint(v, outputs, inputs);
  Workspace ws(ctx, o.workspace, bytes);
  float* lse_p = nullptr;
  float* lse_q = nullptr;
  // CPU: the backward reuses the forward's dot products (see cpu::KeptDots).
  cpu::KeptDots kept;
  enqueue_clip_forward(ctx, A, B, labels, out, o, ws.at<unsigned char>(0), &lse_p, &lse_q, &kept);
  enqueue_clip_backward(ctx, A, B, labels, lse_p, lse_q, grad_loss, grads, o,
                        ws.at<unsigned char>(fbytes), &kept);
}

// ------------------------------------------------------------------ SigLIP

template <class T>
void check_siglip_inputs(Context& ctx, const Validator& v, const MatrixView<const T>& A,
                         const MatrixView<const T>& B, const VectorView<const std::int64_t>& labels,
                         const SiglipLossOptions& o, std::vector<Region>& inputs) {
  check_embeddings(v, A, B);
  check_scalar(v, "logit_scale", o.logit_scale, ScalarKind::LogScale);
  check_scalar(v, "bias", o.bias, ScalarKind::Bias);
  v.precision(o.precision);
  check_labels(ctx, v, labels, LabelRule{"size (Na)", A.rows, -1, B.rows, false},
               o.check_device_labels, A.rows, B.rows);
  inputs = {region("A", A), region("B", B), region("labels", labels),
            region("logit_scale", o.logit_scale.device), region("bias", o.bias.device)};
}

template <class T>
void siglip_forward_impl(Context& ctx, MatrixView<const T> A, MatrixView<const T> B,
                         VectorView<const std::int64_t> labels, VectorView<float> loss,
                         VectorView<float> row_losses, const SiglipLossOptions& o) {
  const Validator v("siglip_loss_forward", ctx);
  std::vector<Region> inputs, outputs;
  check_siglip_inputs(ctx, v, A, B, labels, o, inputs);
  check_required(v, "loss", loss, 1);
  check_optional(v, "row_losses", row_losses, true, A.rows, "");
  outputs = {region("loss", loss), region("row_losses", row_losses)};
  const cd::ForwardLayout l = cd::forward_layout(machine_of(ctx), A.rows, B.rows);
  check_workspace(v, ctx, o.workspace, l.bytes, outputs);
  check_disjoint(v, outputs, inputs);
  Workspace ws(ctx, o.workspace, l.bytes);
  cd::ForwardProblem f;
  f.loss = cd::Loss::Siglip;
  f.s = logits(A, B, o.logit_scale, o.bias, cd::LabelMode::Rows, labels.data, o.precision);
  f.want_rows = true;
  f.plan = l.plan;
  f.row_part = ws.at<unsigned char>(l.row_part);
  f.col_part = ws.at<unsigned char>(l.col_part);
  f.loss_x = row_losses.absent() ? ws.at<float>(l.loss_x) : row_losses.data;
  run(ctx, f);
  double* sums = ws.at<double>(l.sums);
  detail::sum_to_f64(ctx, f.loss_x, A.rows, 1, sums);
  const double coeff = 1.0 / double(A.rows);
  detail::combine_f64(ctx, sums, &coeff, 1, loss.data);
}

// Backward, and with `loss` present the fused forward + backward.
template <class T, class G>
void siglip_backward_impl(const char* op, Context& ctx, MatrixView<const T> A,
                          MatrixView<const T> B, VectorView<const std::int64_t> labels,
                          VectorView<float> loss, VectorView<float> row_losses, bool fused,
                          LossScalar grad_loss, const ContrastiveGradients<G>& grads,
                          const SiglipLossOptions& o) {
  const Validator v(op, ctx);
  std::vector<Region> inputs, outputs;
  check_siglip_inputs(ctx, v, A, B, labels, o, inputs);
  if (fused) {
    check_required(v, "loss", loss, 1);
    check_optional(v, "row_losses", row_losses, true, A.rows, "");
    outputs = {region("loss", loss), region("row_losses", row_losses)};
  }
  check_scalar(v, "grad_loss", grad_loss, ScalarKind::GradLoss);
  check_gradients(v, grads, A.rows, B.rows, A.cols);
  inputs.push_back(region("grad_loss", grad_loss.device));
  gradient_regions(grads, outputs);
  const cd::Machine m = machine_of(ctx);
  const bool atomics = dq_in_p_pass(m, o.deterministic, A.rows, B.rows, A.cols);
  const std::size_t bytes = backward_bytes(m, A.rows, B.rows, A.cols, atomics);
  check_workspace(v, ctx, o.workspace, bytes, outputs);
  check_disjoint(v, outputs, inputs);
  Workspace ws(ctx, o.workspace, bytes);

  const GradientPlan plan =
      plan_gradients(ctx, o.deterministic, present(grads.dA), present(grads.dB),
                     !row_losses.absent(), A.rows, B.rows, A.cols);
  if (!fused && !present(grads.dA) && !present(grads.dB) && grads.dt.absent() && grads.db.absent())
    return;
  cd::BackwardProblem bp;
  bp.loss = cd::Loss::Siglip;
  bp.s = logits(A, B, o.logit_scale, o.bias, cd::LabelMode::Rows, labels.data, o.precision);
  bp.coef = 1.0 / double(A.rows);
  bp.grad_loss = scalar(grad_loss);
  cd::BackwardProblem bq = bp;
  bq.s = logits(B, A, o.logit_scale, o.bias, cd::LabelMode::Cols, labels.data, o.precision);
  run_gradients(ctx, plan, bp, bq, grads.dA, grads.dB, grads, ws.at<unsigned char>(0), false, loss,
                1.0 / double(A.rows), row_losses.absent() ? nullptr : row_losses.data);
}

}  // namespace

// ------------------------------------------------------------------ public entry points

#define KFUSE_CLIP_FORWARD(T)                                                                  \
  void clip_loss_forward(Context& ctx, MatrixView<const T> A, MatrixView<const T> B,           \
                         VectorView<const std::int64_t> labels, const ClipForwardOutputs& out, \
                         const ClipLossOptions& o) {                                           \
    clip_forward_impl<T>(ctx, A, B, labels, out, o);                                           \
  }                                                                                            \
  void siglip_loss_forward(Context& ctx, MatrixView<const T> A, MatrixView<const T> B,         \
                           VectorView<const std::int64_t> labels, VectorView<float> loss,      \
                           VectorView<float> row_losses, const SiglipLossOptions& o) {         \
    siglip_forward_impl<T>(ctx, A, B, labels, loss, row_losses, o);                            \
  }
KFUSE_CLIP_FORWARD(float)
KFUSE_CLIP_FORWARD(bf16)
KFUSE_CLIP_FORWARD(f16)
#undef KFUSE_CLIP_FORWARD

#define KFUSE_CONTRASTIVE_BACKWARD(T, G)                                                           \
  void clip_loss_backward(Context& ctx, MatrixView<const T> A, MatrixView<const T> B,              \
                          VectorView<const std::int64_t> labels, const ClipSavedStats& saved,      \
                          LossScalar grad_loss, const ContrastiveGradients<G>& grads,              \
                          const ClipLossOptions& o) {                                              \
    clip_backward_impl<T, G>(ctx, A, B, labels, saved, grad_loss, grads, o);                       \
  }                                                                                                \
  void clip_loss_forward_backward(                                                                 \
      Context& ctx, MatrixView<const T> A, MatrixView<const T> B,                                  \
      VectorView<const std::int64_t> labels, const ClipForwardOutputs& out, LossScalar grad_loss,  \
      const ContrastiveGradients<G>& grads, const ClipLossOptions& o) {                            \
    clip_forward_backward_impl<T, G>(ctx, A, B, labels, out, grad_loss, grads, o);                 \
  }                                                                                                \
  void siglip_loss_backward(Context& ctx, MatrixView<const T> A, MatrixView<const T> B,            \
                            VectorView<const std::int64_t> labels, LossScalar grad_loss,           \
                            const ContrastiveGradients<G>& grads, const SiglipLossOptions& o) {    \
    siglip_backward_impl<T, G>("siglip_loss_backward", ctx, A, B, labels, VectorView<float>{},     \
                               VectorView<float>{}, false, grad_loss, grads, o);                   \
  }                                                                                                \
  void siglip_loss_forward_backward(                                                               \
      Context& ctx, MatrixView<const T> A, MatrixView<const T> B,                                  \
      VectorView<const std::int64_t> labels, VectorView<float> loss, VectorView<float> row_losses, \
      LossScalar grad_loss, const ContrastiveGradients<G>& grads, const SiglipLossOptions& o) {    \
    siglip_backward_impl<T, G>("siglip_loss_forward_backward", ctx, A, B, labels, loss,            \
                               row_losses, true, grad_loss, grads, o);                             \
  }
KFUSE_CONTRASTIVE_BACKWARD(float, float)
KFUSE_CONTRASTIVE_BACKWARD(bf16, bf16)
KFUSE_CONTRASTIVE_BACKWARD(bf16, float)
KFUSE_CONTRASTIVE_BACKWARD(f16, f16)
KFUSE_CONTRASTIVE_BACKWARD(f16, float)
#undef KFUSE_CONTRASTIVE_BACKWARD

namespace {

void check_query(const Context& ctx, const char* op, std::int64_t Na, std::int64_t Nb,
                 std::int64_t d, ContrastivePass pass) {
  // Each extent by name: a rejection names the argument ("op: argument 'Nb': ...").
  const std::pair<const char*, std::int64_t> extents[] = {{"Na", Na}, {"Nb", Nb}, {"d", d}};
  for (const auto& [name, value] : extents)
    if (value < 1)
      detail::argument_error(Status::ShapeMismatch, op, name,
                             "expected >= 1, got " + std::to_string(value));
  const Validator v(op, ctx);
  check_extents(v, Na, Nb, d, "Na", "Nb");
  v.enumeration("pass", pass, ContrastivePass::ForwardBackward,
                "Forward, Backward or ForwardBackward");
}

}  // namespace

std::size_t clip_loss_workspace_bytes(const Context& ctx, std::int64_t Na, std::int64_t Nb,
                                      std::int64_t d, ContrastivePass pass,
                                      const ClipLossOptions& options) {
  check_query(ctx, "clip_loss_workspace_bytes", Na, Nb, d, pass);
  const cd::Machine m = machine_of(ctx);
  const bool atomics = dq_in_p_pass(m, options.deterministic, Na, Nb, d);
  return std::max(pass_bytes(m, Na, Nb, d, pass, atomics), pass_bytes(m, Nb, Na, d, pass, atomics));
}

std::size_t siglip_loss_workspace_bytes(const Context& ctx, std::int64_t Na, std::int64_t Nb,
                                        std::int64_t d, ContrastivePass pass,
                                        const SiglipLossOptions& options) {
  check_query(ctx, "siglip_loss_workspace_bytes", Na, Nb, d, pass);
  const cd::Machine m = machine_of(ctx);
  const bool atomics = dq_in_p_pass(m, options.deterministic, Na, Nb, d);
  if (pass == ContrastivePass::Forward) return cd::forward_layout(m, Na, Nb).bytes;
  return backward_bytes(m, Na, Nb, d, atomics);
}

}  // namespace kfuse
