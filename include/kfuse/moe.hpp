// The sparse mixture-of-experts family: a router picks k of E experts for each of
// T tokens (hidden size H), a dispatch plan groups the T * k (token, choice) slots
// by expert, the tokens are scattered into expert order, each expert runs its rows
// through its own weights (grouped GEMMs), and the results are combined back in
// token order, weighted by the router's gates; plus the backward of every step and
// a whole SwiGLU expert MLP (W1, W3: H -> F, W2: F -> H) forward and backward.
//
// Vocabulary
//   slot s = t * k + j      the j-th choice of token t (ids[t][j], gates[t][j])
//   permuted row r          a row of an expert-ordered buffer ("Xp"): expert e owns
//                           rows [offsets[e], offsets[e] + counts[e]); rows from
//                           offsets[e] + counts[e] to offsets[e + 1] are padding
//                           (zero rows), and rows from offsets[E] to plan.layout.rows
//                           are never touched.
//
// Guarantees
//   - Stability and determinism of the plan: within an expert, rows follow the slot
//     order s = t * k + j (tokens in their original order, then the choice rank).
//     The plan is a pure function of ids and the options: the same on every run and
//     bitwise the same on the CPU and the GPU.
//   - Every reduction (over k, over H in a gate gradient, over an expert's rows in a
//     weight gradient) runs in a fixed order with fp32 (GPU) or wider (CPU)
//     accumulation and no floating-point atomics: two runs give the same bits. The
//     matrix products accumulate in fp32 on both backends (the CPU's through the
//     BLAS, whose order is fixed for a machine, its OpenBLAS kernels and a thread count).
//   - No host synchronisation anywhere, except where a function says so (moe_plan
//     when the caller asks for host counts or for a check of device ids).
//   - 64-bit element offsets everywhere: T * k * H beyond 2^31 works. Slot and row
//     indices are int32: T * k and plan.layout.rows must stay below 2^31.
//
// Element types: float (exact fp32 arithmetic) and bf16 (fp32 accumulation, tensor
// cores on the GPU); router logits float or bf16; ids int32; gates always float.
// Every function validates all of its arguments before writing anything; on a Cuda
// context it is asynchronous on the context's stream. Outputs may not overlap inputs.
#pragma once

#include <cstdint>

#include "kfuse/context.hpp"
#include "kfuse/view.hpp"

namespace kfuse {

// The largest number of experts any function accepts.
constexpr std::int64_t kMoeMaxExperts = 8192;

// ------------------------------------------------------------------ router

enum class RouterMode : int {
  // Softmax over all E logits, then the k largest probabilities (optionally
  // renormalised to sum to 1 over the k): gates are p_e = exp(l_e) / sum_all exp.
  SoftmaxTopK = 0,
  // The k largest logits, then a softmax over those k (gates sum to 1).
  TopKSoftmax = 1,
};

struct RouterOptions {
  RouterMode mode = RouterMode::SoftmaxTopK;
  bool renormalize = false;  // SoftmaxTopK: divide the k gates by their sum
};

// logits [T x E] -> ids [T x k] (int32) and gates [T x k] (float), k = ids.cols,
// 1 <= k <= E <= kMoeMaxExperts. Each row lists its experts by decreasing logit;
// equal logits go to the lower expert index first. Selection compares the logits
// themselves (the softmax is monotonic, and comparing logits is free of rounding
// ties); a NaN logit ranks below -inf. All math in fp32 whatever the logits' type.
// Gates are finite for finite logits and 0 for a selected -inf (a row whose logits
// are all -inf gets k gates of 0); a NaN or +inf logit that enters a softmax
// (SoftmaxTopK sums over all E) makes its row's gates NaN.
void moe_router_topk(Context& ctx, MatrixView<const float> logits, MatrixView<std::int32_t> ids,
                     MatrixView<float> gates, const RouterOptions& options = {});
void moe_router_topk(Context& ctx, MatrixView<const bf16> logits, MatrixView<std::int32_t> ids,
                     MatrixView<float> gates, const RouterOptions& options = {});

// ------------------------------------------------------------------ dispatch plan

struct MoePlanOptions {
  // Each expert's row range is rounded up to a multiple of pad_to (1: no padding;
  // 8, 16, 128 align experts to GEMM tiles). An expert with no row takes no padding.
  std::int64_t pad_to = 1;
  // At most `capacity` rows per expert (0: no limit). Drop policy: an expert keeps
  // the first `capacity` slots routed to it in slot order (earlier tokens first);
  // a dropped slot has no row, its combine contribution is zero, its gradients
  // (token and gate) are zero.
  std::int64_t capacity = 0;
  // Device ids are trusted by default: an id outside [0, E) is treated as a dropped
  // slot (never an out-of-bounds access). true: moe_plan checks them first, at the
  // cost of one host synchronisation, and throws InvalidArgument naming 'ids' with
  // nothing written. Host ids are always checked.
  bool check_device_ids = false;
};

// The sizes of a plan, fixed on the host before any id is known (so that no step
// waits for the device). rows bounds offsets[E] for every possible ids:
//   min(T k, E capacity) + (pad_to - 1) * min(E, T k), and at most E * round_up(capacity, pad_to).
struct MoePlanLayout {
  std::int64_t tokens = 0;
  std::int64_t top_k = 0;
  std::int64_t experts = 0;
  MoePlanOptions options;
  std::int64_t rows = 0;  // the rows of every permuted (expert-ordered) buffer
  // int32 elements of a plan: counts [E], offsets [E + 1], row_slot [rows], slot_row [T k].
  // Throws InvalidArgument (naming the field) for a layout that moe_plan_layout would not
  // return: its sizes are only defined, and only fit 64 bits, for such a layout.
  std::int64_t storage_size() const;
};

// Validates the extents and options (tokens >= 0, 1 <= top_k <= experts <=
// kMoeMaxExperts, pad_to >= 1, capacity >= 0, every index below 2^31).
MoePlanLayout moe_plan_layout(std::int64_t tokens, std::int64_t top_k, std::int64_t experts,
                              const MoePlanOptions& options = {});

// A plan: views of int32 arrays in one memory space.
//   counts   [E]      rows of expert e (kept slots, after capacity)
//   offsets  [E + 1]  first row of expert e; offsets[E] = rows in use (<= layout.rows)
//   row_slot [rows]   the slot t * k + j held by permuted row r; -1 for a padding or unused row
//   slot_row [T k]    the permuted row of slot t * k + j; -1 for a dropped slot
struct MoePlan {
  MoePlanLayout layout;
  VectorView<std::int32_t> counts;
  VectorView<std::int32_t> offsets;
  VectorView<std::int32_t> row_slot;
  VectorView<std::int32_t> slot_row;
};

// Carves a plan's four arrays, in the order above, out of one buffer of
// layout.storage_size() int32 elements in `memory`. The layout is checked as
// storage_size() checks it; null storage is an error when the size is not 0.
MoePlan moe_plan_views(const MoePlanLayout& layout, std::int32_t* storage, Memory memory);

// Fills `plan` from ids [T x k] (T = layout.tokens, k = layout.top_k). On the GPU:
// a stable radix sort of the slots by expert (CUB), a binary search for the counts,
// a scan for the offsets; no host synchronisation unless host_counts is given or
// check_device_ids is set. host_counts (optional, host memory, size E) receives
// counts; on a Cuda context that waits for the stream. No two of ids, the plan's
// arrays and host_counts may overlap (InvalidArgument).
void moe_plan(Context& ctx, MatrixView<const std::int32_t> ids, const MoePlan& plan,
              VectorView<std::int32_t> host_counts = {});

// ------------------------------------------------------------------ scatter / gather
// Memory-bound, one pass each. X, Xp, Y, Yp, dX, ... are [rows x H] matrices of one
// element type; permuted ones have plan.layout.rows rows, token-ordered ones T rows;
// gates and dgates [T x k] float.

// Xp[r] = X[t] for every kept slot (t, j) with row r; padding rows of Xp are zeroed.
void moe_scatter(Context& ctx, const MoePlan& plan, MatrixView<const float> X,
                 MatrixView<float> Xp);
void moe_scatter(Context& ctx, const MoePlan& plan, MatrixView<const bf16> X, MatrixView<bf16> Xp);

// The backward of moe_scatter: dX[t] = sum over the token's kept slots of dXp[row].
void moe_scatter_backward(Context& ctx, const MoePlan& plan, MatrixView<const float> dXp,
                          MatrixView<float> dX);
void moe_scatter_backward(Context& ctx, const MoePlan& plan, MatrixView<const bf16> dXp,
                          MatrixView<bf16> dX);

// Y[t] = sum_j gates[t][j] * Yp[row of (t, j)] over kept slots, in order j = 0..k-1,
// accumulated in fp32 (or wider); a token with no kept slot gets a zero row.
void moe_gather(Context& ctx, const MoePlan& plan, MatrixView<const float> Yp,
                MatrixView<const float> gates, MatrixView<float> Y);
void moe_gather(Context& ctx, const MoePlan& plan, MatrixView<const bf16> Yp,
                MatrixView<const float> gates, MatrixView<bf16> Y);

// The backward of moe_gather: dYp[row] = gates[t][j] * dY[t] (padding rows zeroed),
// dgates[t][j] = <Yp[row], dY[t]> (0 for a dropped slot).
void moe_gather_backward(Context& ctx, const MoePlan& plan, MatrixView<const float> Yp,
                         MatrixView<const float> gates, MatrixView<const float> dY,
                         MatrixView<float> dYp, MatrixView<float> dgates);
void moe_gather_backward(Context& ctx, const MoePlan& plan, MatrixView<const bf16> Yp,
                         MatrixView<const float> gates, MatrixView<const bf16> dY,
                         MatrixView<bf16> dYp, MatrixView<float> dgates);

// ------------------------------------------------------------------ grouped GEMMs
// Expert weights are one tensor [E x K x N] seen as a matrix W [E*K x N] (expert e's
// K x N block at rows e*K), or with transpose_w a tensor [E x N x K] (W [E*N x K],
// used as W_e^T). The offsets are read on the device: no host synchronisation;
// experts without rows cost nothing. Alignment: every matrix operand of these
// functions (and of moe_mlp_*) has a 16-byte aligned data pointer and a leading
// dimension whose rows are a multiple of 16 bytes (ld % 4 == 0 for float, % 8 for
// bf16), on every backend, so that the GPU's tile loads are vector loads and a
// program behaves the same on the CPU and the GPU. Gates need no alignment.
// GPU limit: a product's output columns N (and moe_mlp_*'s F and H) up to
// 65535 * 64 = 4,194,240 (65535 * 128 for a bf16 product other than SwiGLU's);
// wider throws Unsupported.

struct MoeGemmOptions {
  bool transpose_w = false;
};

// Yp [rows x N] = Xp_e [rows of e x K] * W_e for every expert; padding rows of Yp zeroed.
void moe_grouped_gemm(Context& ctx, const MoePlan& plan, MatrixView<const float> Xp,
                      MatrixView<const float> W, MatrixView<float> Yp,
                      const MoeGemmOptions& options = {});
void moe_grouped_gemm(Context& ctx, const MoePlan& plan, MatrixView<const bf16> Xp,
                      MatrixView<const bf16> W, MatrixView<bf16> Yp,
                      const MoeGemmOptions& options = {});

// The same product with the scatter fused into the GEMM's tile loads: X [T x K] in
// token order, Yp [rows x N] = X[token of r] * W_e. No permuted copy of X is made.
void moe_gather_gemm(Context& ctx, const MoePlan& plan, MatrixView<const float> X,
                     MatrixView<const float> W, MatrixView<float> Yp,
                     const MoeGemmOptions& options = {});
void moe_gather_gemm(Context& ctx, const MoePlan& plan, MatrixView<const bf16> X,
                     MatrixView<const bf16> W, MatrixView<bf16> Yp,
                     const MoeGemmOptions& options = {});

// The down-projection with the combine fused into its epilogue: Hp [rows x K] in
// expert order, Y [T x N] = sum_j gates[t][j] * (Hp[row of (t, j)] * W_e). The
// epilogue scales each product row by its gate and stores it at its slot (one
// writer per slot row, in a [T k x N] workspace); a second pass sums each token's
// k contiguous slot rows in order j = 0..k-1. No atomics.
void moe_gemm_combine(Context& ctx, const MoePlan& plan, MatrixView<const float> Hp,
                      MatrixView<const float> W, MatrixView<const float> gates, MatrixView<float> Y,
                      const MoeGemmOptions& options = {});
void moe_gemm_combine(Context& ctx, const MoePlan& plan, MatrixView<const bf16> Hp,
                      MatrixView<const bf16> W, MatrixView<const float> gates, MatrixView<bf16> Y,
                      const MoeGemmOptions& options = {});

// Weight gradient: dW [E*K x N], dW_e = Xp_e^T * dYp_e (zero for an expert without
// rows), Xp [rows x K], dYp [rows x N].
void moe_grouped_gemm_wgrad(Context& ctx, const MoePlan& plan, MatrixView<const float> Xp,
                            MatrixView<const float> dYp, MatrixView<float> dW);
void moe_grouped_gemm_wgrad(Context& ctx, const MoePlan& plan, MatrixView<const bf16> Xp,
                            MatrixView<const bf16> dYp, MatrixView<bf16> dW);

// ------------------------------------------------------------------ SwiGLU expert MLP
// For every kept slot (t, j) routed to expert e:
//   h1 = x_t W1_e, h3 = x_t W3_e   (W1, W3: [E*H x F])
//   a  = silu(h1) * h3             (silu(x) = x / (1 + exp(-x)))
//   Y[t] = sum_j gates[t][j] * (a W2_e)   (W2: [E*F x H])
// Forward: the gather is fused into the W1/W3 GEMM (one kernel computes both
// products and the SwiGLU), the combine into the W2 GEMM's epilogue.

template <class T>
struct MoeMlpWeights {
  MatrixView<const T> w1;  // [E*H x F]
  MatrixView<const T> w3;  // [E*H x F]
  MatrixView<const T> w2;  // [E*F x H]
};

// The forward's saved activations h1, h3 [rows x F] (permuted order). Empty views
// (null data): the forward keeps nothing and the backward recomputes them.
template <class T>
struct MoeMlpSaved {
  MatrixView<T> h1;
  MatrixView<T> h3;
  bool empty() const { return h1.data == nullptr && h3.data == nullptr; }
};

template <class T>
struct MoeMlpGrads {
  MatrixView<T> dX;          // [T x H]
  MatrixView<float> dgates;  // [T x k]
  MatrixView<T> dw1;         // [E*H x F]
  MatrixView<T> dw3;         // [E*H x F]
  MatrixView<T> dw2;         // [E*F x H]
};

// Y [T x H]. X [T x H] in token order, gates [T x k].
void moe_mlp_forward(Context& ctx, const MoePlan& plan, MatrixView<const float> X,
                     MatrixView<const float> gates, const MoeMlpWeights<float>& weights,
                     MatrixView<float> Y, const MoeMlpSaved<float>& saved = {});
void moe_mlp_forward(Context& ctx, const MoePlan& plan, MatrixView<const bf16> X,
                     MatrixView<const float> gates, const MoeMlpWeights<bf16>& weights,
                     MatrixView<bf16> Y, const MoeMlpSaved<bf16>& saved = {});

// Gradients of <dY, Y> with respect to X, the gates and the three weight tensors.
// saved: what the forward kept (read only), or empty to recompute h1, h3.
void moe_mlp_backward(Context& ctx, const MoePlan& plan, MatrixView<const float> X,
                      MatrixView<const float> gates, const MoeMlpWeights<float>& weights,
                      MatrixView<const float> dY, const MoeMlpSaved<float>& saved,
                      const MoeMlpGrads<float>& grads);
void moe_mlp_backward(Context& ctx, const MoePlan& plan, MatrixView<const bf16> X,
                      MatrixView<const float> gates, const MoeMlpWeights<bf16>& weights,
                      MatrixView<const bf16> dY, const MoeMlpSaved<bf16>& saved,
                      const MoeMlpGrads<bf16>& grads);

}  // namespace kfuse
