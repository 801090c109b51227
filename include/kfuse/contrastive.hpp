// The contrastive loss family: CLIP's InfoNCE and SigLIP's sigmoid loss, forward
// and backward, computed tile by tile without ever storing the Na x Nb logits.
//
// Notation. A [Na x d] and B [Nb x d] are two batches of embeddings (image and
// text, say); the logits are S = tau A B^T + b with tau = exp(t), t the learnable
// log-scale and b an optional bias. The pairs (positives) are given by labels:
// row i of A pairs with row labels[i] of B (default: i, which needs Na == Nb).
//
//   CLIP, direction Both (Na == Nb == N, labels a permutation):
//     L = 1/2 [ (1/N) sum_i CE(S_i., labels[i]) + (1/N) sum_j CE(S_.j, i with labels[i] == j) ]
//   CLIP, AtoB: L = (1/Na) sum_i CE(S_i., labels[i]),  labels [Na] in [0, Nb)
//   CLIP, BtoA: L = (1/Nb) sum_j CE(S_.j, labels[j]),  labels [Nb] in [0, Na)
//     (one direction at a time with Na != Nb: local rows against gathered columns,
//      the building block of a multi-GPU loss)
//   CE with label smoothing eps over C classes: lse(s) - (1 - eps) s_pos - (eps / C) sum_c s_c.
//   SigLIP: L = (1/Na) sum_ij softplus(-z_ij S_ij), z_ij = +1 where labels[i] == j and
//     -1 elsewhere; labels [Na] in [0, Nb), or -1 for a row without a positive here.
//
// Gradients (backward): dA, dB, dt = dL/dt and db = dL/db, given the upstream dL.
// CLIP's loss does not depend on b (softmax is shift-invariant), so its db is
// exactly 0.
//
// Types. A and B share one element type: float, bf16 or f16. Statistics,
// accumulation and every scalar output are fp32 (the CPU path forms the dot
// products with fp32 FMAs and accumulates everything after them in double).
// Gradients are written in the input type or in fp32 (the overloads).
// Precision (fp32 inputs on a GPU): Exact (default) computes the logits with fp32
// FMAs; TF32 and BF16 allow tensor cores on rounded inputs. bf16/f16 inputs use
// tensor cores with fp32 accumulation whatever the precision. The CPU path ignores
// it: fp32 FMAs (as Exact) for every input type.
//
// Cost, in units of one Na x Nb x d matrix product ("GEMM equivalents"):
//   clip_loss_forward                          1
//   clip_loss_backward, deterministic          4 (logits recomputed once for dA, once for dB)
//   clip_loss_backward, deterministic = false  3 (GPU: dB accumulated with fp32 atomics)
//   -> CLIP forward + backward: 5 by default, 4 with deterministic = false
//   siglip_loss_forward                        1
//   siglip_loss_backward / _forward_backward   4 deterministic, 3 with deterministic = false
//     (the fused call computes the loss inside the backward's passes: no extra pass)
//   a backward that asks for one of dA, dB only (a frozen tower)   2
// The CPU, where Na x Nb fp32 fit 256 MiB (N up to 8192 square; the environment
// variable KFUSE_CPU_CONTRASTIVE_KEEP_BYTES sets that bound, 0 for none), instead keeps
// dS' in memory it allocates (Na Nb 4 bytes, outside the workspace) and forms dA and dB
// in one pass, deterministically: clip_loss_backward 3, siglip backward 3, CLIP
// forward + backward 3 (the fused call hands the forward's logits to its backward);
// its workspace then holds an Nb x d fp32 accumulator for dB. Beyond that, the
// counts above.
// Why 5 and not 4 by default: dA sums over columns, dB over rows; a pass that owns
// rows of A can only add its dB contributions to rows owned by other blocks,
// which without floating-point atomics (whose order varies) needs either
// O(blocks * Nb * d) partial sums or a second pass. kfuse takes the second pass.
//
// Memory beyond inputs, outputs and gradients (the workspace; query it with
// *_workspace_bytes, or pass one in the options):
//   forward: the pairs are cut into G x H rectangles whose partial log-sum-exp
//     states ([H][Na] and [G][Nb], 3 floats each) are merged in a fixed order:
//     12 (G Nb + H Na) bytes on a GPU (G, H <= 32), 24 (G Nb + H Na) on the CPU
//     (G, H <= 8), plus O(Na + Nb);
//   backward, deterministic: O(Na + Nb), plus on a GPU one fp32 accumulator of
//     64 x d floats per block in flight, fewer than 4 x SMs of them whatever N;
//   backward, deterministic = false (GPU), or on the CPU where its dS' fits (see
//     above): in addition Nb x d fp32 for dB.
// At Na = Nb = 65536, d = 1024 on an H100 (132 SMs): 36 MiB forward, 67 MiB
// backward, 0.6% of the 16 GiB the fp32 logits alone would take.
//
// Extents: 1 <= Na, Nb <= kContrastiveMaxRows (2^31 - 1: row indices in the tiles are
// 32-bit) and Na d, Nb d <= kContrastiveMaxElements (2^47, above any device's memory:
// every workspace size then fits 64 bits); larger extents are an InvalidArgument naming
// the argument, in the calls and in the *_workspace_bytes queries alike.
//
// Determinism: with deterministic = true (the default) the same inputs give
// bitwise the same outputs run to run on one device (and on the CPU for any
// number of threads); results differ between the CPU and the GPU, and between
// GPU models (the partition into groups follows the SM count).
//
// Accepted ranges of the host scalars (a value outside is an InvalidArgument naming
// it; device-resident scalars are not checked):
//   logit_scale t in [-87, 16 ln 2 = 11.09], i.e. tau = exp(t) in [e^-87, 2^16].
//     The loss and its gradients depend only on differences of logits S_ij - S_ik,
//     and the logits are fp32: each carries a rounding error of up to |S| 2^-24 on
//     top of the dot product's own (more with TF32/BF16 tensor cores), and an error
//     delta in a logit scales its softmax weight by e^delta. Embeddings are
//     normalised in CLIP and SigLIP, |<a, b>| <= 1, so |S - b| <= tau, and tau <= 2^16
//     bounds that rounding by 2^-8. Far beyond, the logits carry no information:
//     at t = 20 (tau = 4.9e8) consecutive fp32 logits are 32 apart, and a loss that
//     is truly ~0 came out as 4.36 with dt = 7e13 (CLIP itself clamps tau at 100).
//     The lower end keeps tau a normal fp32, so that dt = tau dL/dtau keeps fp32's
//     relative precision (below it every logit is b to fp32 precision anyway).
//   bias b: |b| <= 2^16, so that |S| <= 2^17 for normalised embeddings and a logit's
//     rounding stays below 2^-7 (a larger b, say 1e300, would not even fit fp32).
//   grad_loss (the backward's upstream dL): finite in fp32, |dL| <= FLT_MAX.
//
// Synchronisation: none, except that custom labels in device memory are copied
// to the host and checked there (one stream synchronisation) unless
// check_device_labels is false; unchecked labels that are out of range give NaN
// losses and gradients, and duplicates in direction Both a NaN loss, never an
// out-of-bounds access. The determinism promised above (`deterministic`) does not
// cover such unchecked duplicates: on a GPU the column quantities of a column named
// by several rows take the positive logit of whichever of those rows is stored last.
// Device-resident scalars (LossScalar::device) are read by the kernels: no
// synchronisation, and no validation of their values (a non-finite t or b gives NaN).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kfuse/context.hpp"
#include "kfuse/precision.hpp"
#include "kfuse/view.hpp"

namespace kfuse {

// A scalar input: a host value, or one float in the context's memory (read by the
// backend when the call runs: a training loop keeps t and b on the device).
// A double converts to a host LossScalar: options.logit_scale = std::log(1 / 0.07).
struct LossScalar {
  double value = 0.0;
  VectorView<const float> device;  // present (size 1): used instead of `value`

  LossScalar(double v = 0.0) : value(v) {}  // NOLINT(google-explicit-constructor)
  LossScalar(double v, VectorView<const float> in_memory) : value(v), device(in_memory) {}
};

// Caller-provided workspace in the context's memory space. Absent: kfuse takes one
// from the context's allocator (stream-ordered on a GPU).
struct ContrastiveWorkspace {
  void* data = nullptr;
  std::size_t bytes = 0;
};

enum class ClipDirection : int {
  Both = 0,  // the symmetric CLIP loss (Na == Nb)
  AtoB = 1,  // rows of A against all of B (image -> text)
  BtoA = 2,  // rows of B against all of A (text -> image)
};

enum class ContrastivePass : int { Forward = 0, Backward = 1, ForwardBackward = 2 };

struct ClipLossOptions {
  ClipDirection direction = ClipDirection::Both;
  LossScalar logit_scale{0.0};   // t (tau = exp(t)); a host value in [-87, 11.09]
  LossScalar bias{0.0};          // b; a host value with |b| <= 65536
  double label_smoothing = 0.0;  // eps in [0, 1)
  Precision precision = Precision::Exact;
  bool deterministic = true;
  bool check_device_labels = true;
  ContrastiveWorkspace workspace;
};

// Outputs of clip_loss_forward, all fp32 in the context's memory. Only `loss` is
// required; the others may be absent. Row quantities exist for directions Both and
// AtoB, column quantities for Both and BtoA (a view for a direction that has none
// must be absent).
struct ClipForwardOutputs {
  VectorView<float> loss;        // [1]: the loss
  VectorView<float> row_losses;  // [Na]: CE of each row of A (A -> B)
  VectorView<float> col_losses;  // [Nb]: CE of each row of B (B -> A)
  VectorView<float> lse_rows;    // [Na]: log-sum-exp of each row of S, for the backward
  VectorView<float> lse_cols;    // [Nb]: log-sum-exp of each column of S
};

// The forward's saved log-sum-exps, as the backward reads them (same presence rules).
struct ClipSavedStats {
  VectorView<const float> lse_rows;
  VectorView<const float> lse_cols;
};

// Gradient outputs; each may be absent (then it is not computed: dB absent skips
// the pass that computes it, which is what a frozen tower wants). dA/dB share
// one element type G: the input type or float.
template <class G>
struct ContrastiveGradients {
  MatrixView<G> dA;      // [Na x d]
  MatrixView<G> dB;      // [Nb x d]
  VectorView<float> dt;  // [1]: dL/dt
  VectorView<float> db;  // [1]: dL/db
};

struct SiglipLossOptions {
  LossScalar logit_scale{2.302585092994046};  // t = log 10, SigLIP's initial value
  LossScalar bias{-10.0};                     // SigLIP's initial value
  Precision precision = Precision::Exact;
  bool deterministic = true;
  bool check_device_labels = true;
  ContrastiveWorkspace workspace;
};

// ------------------------------------------------------------------- CLIP

// labels: absent (identity), or in the context's memory (see the top of the file).
void clip_loss_forward(Context& ctx, MatrixView<const float> A, MatrixView<const float> B,
                       VectorView<const std::int64_t> labels, const ClipForwardOutputs& out,
                       const ClipLossOptions& options);
void clip_loss_forward(Context& ctx, MatrixView<const bf16> A, MatrixView<const bf16> B,
                       VectorView<const std::int64_t> labels, const ClipForwardOutputs& out,
                       const ClipLossOptions& options);
void clip_loss_forward(Context& ctx, MatrixView<const f16> A, MatrixView<const f16> B,
                       VectorView<const std::int64_t> labels, const ClipForwardOutputs& out,
                       const ClipLossOptions& options);

// Gradients of L (times grad_loss, default 1) from the forward's saved statistics:
// lse_rows is required for directions Both and AtoB, lse_cols for Both and BtoA.
void clip_loss_backward(Context& ctx, MatrixView<const float> A, MatrixView<const float> B,
                        VectorView<const std::int64_t> labels, const ClipSavedStats& saved,
                        LossScalar grad_loss, const ContrastiveGradients<float>& grads,
                        const ClipLossOptions& options);
void clip_loss_backward(Context& ctx, MatrixView<const bf16> A, MatrixView<const bf16> B,
                        VectorView<const std::int64_t> labels, const ClipSavedStats& saved,
                        LossScalar grad_loss, const ContrastiveGradients<bf16>& grads,
                        const ClipLossOptions& options);
void clip_loss_backward(Context& ctx, MatrixView<const bf16> A, MatrixView<const bf16> B,
                        VectorView<const std::int64_t> labels, const ClipSavedStats& saved,
                        LossScalar grad_loss, const ContrastiveGradients<float>& grads,
                        const ClipLossOptions& options);
void clip_loss_backward(Context& ctx, MatrixView<const f16> A, MatrixView<const f16> B,
                        VectorView<const std::int64_t> labels, const ClipSavedStats& saved,
                        LossScalar grad_loss, const ContrastiveGradients<f16>& grads,
                        const ClipLossOptions& options);
void clip_loss_backward(Context& ctx, MatrixView<const f16> A, MatrixView<const f16> B,
                        VectorView<const std::int64_t> labels, const ClipSavedStats& saved,
                        LossScalar grad_loss, const ContrastiveGradients<float>& grads,
                        const ClipLossOptions& options);

// Forward then backward in one call (the statistics the caller does not ask for
// live in the workspace).
void clip_loss_forward_backward(Context& ctx, MatrixView<const float> A, MatrixView<const float> B,
                                VectorView<const std::int64_t> labels,
                                const ClipForwardOutputs& out, LossScalar grad_loss,
                                const ContrastiveGradients<float>& grads,
                                const ClipLossOptions& options);
void clip_loss_forward_backward(Context& ctx, MatrixView<const bf16> A, MatrixView<const bf16> B,
                                VectorView<const std::int64_t> labels,
                                const ClipForwardOutputs& out, LossScalar grad_loss,
                                const ContrastiveGradients<bf16>& grads,
                                const ClipLossOptions& options);
void clip_loss_forward_backward(Context& ctx, MatrixView<const bf16> A, MatrixView<const bf16> B,
                                VectorView<const std::int64_t> labels,
                                const ClipForwardOutputs& out, LossScalar grad_loss,
                                const ContrastiveGradients<float>& grads,
                                const ClipLossOptions& options);
void clip_loss_forward_backward(Context& ctx, MatrixView<const f16> A, MatrixView<const f16> B,
                                VectorView<const std::int64_t> labels,
                                const ClipForwardOutputs& out, LossScalar grad_loss,
                                const ContrastiveGradients<f16>& grads,
                                const ClipLossOptions& options);
void clip_loss_forward_backward(Context& ctx, MatrixView<const f16> A, MatrixView<const f16> B,
                                VectorView<const std::int64_t> labels,
                                const ClipForwardOutputs& out, LossScalar grad_loss,
                                const ContrastiveGradients<float>& grads,
                                const ClipLossOptions& options);

constexpr std::int64_t kContrastiveMaxRows = (std::int64_t(1) << 31) - 1;
constexpr std::int64_t kContrastiveMaxElements = std::int64_t(1) << 47;

// Workspace the calls above take for these extents on ctx's backend (an upper bound
// over element types and optional outputs).
std::size_t clip_loss_workspace_bytes(const Context& ctx, std::int64_t Na, std::int64_t Nb,
                                      std::int64_t d, ContrastivePass pass,
                                      const ClipLossOptions& options);

// ------------------------------------------------------------------- SigLIP

// loss [1]; row_losses [Na] optional: sum_j softplus(-z_ij S_ij) (loss = their mean).
void siglip_loss_forward(Context& ctx, MatrixView<const float> A, MatrixView<const float> B,
                         VectorView<const std::int64_t> labels, VectorView<float> loss,
                         VectorView<float> row_losses, const SiglipLossOptions& options);
void siglip_loss_forward(Context& ctx, MatrixView<const bf16> A, MatrixView<const bf16> B,
                         VectorView<const std::int64_t> labels, VectorView<float> loss,
                         VectorView<float> row_losses, const SiglipLossOptions& options);
void siglip_loss_forward(Context& ctx, MatrixView<const f16> A, MatrixView<const f16> B,
                         VectorView<const std::int64_t> labels, VectorView<float> loss,
                         VectorView<float> row_losses, const SiglipLossOptions& options);

void siglip_loss_backward(Context& ctx, MatrixView<const float> A, MatrixView<const float> B,
                          VectorView<const std::int64_t> labels, LossScalar grad_loss,
                          const ContrastiveGradients<float>& grads,
                          const SiglipLossOptions& options);
void siglip_loss_backward(Context& ctx, MatrixView<const bf16> A, MatrixView<const bf16> B,
                          VectorView<const std::int64_t> labels, LossScalar grad_loss,
                          const ContrastiveGradients<bf16>& grads,
                          const SiglipLossOptions& options);
void siglip_loss_backward(Context& ctx, MatrixView<const bf16> A, MatrixView<const bf16> B,
                          VectorView<const std::int64_t> labels, LossScalar grad_loss,
                          const ContrastiveGradients<float>& grads,
                          const SiglipLossOptions& options);
void siglip_loss_backward(Context& ctx, MatrixView<const f16> A, MatrixView<const f16> B,
                          VectorView<const std::int64_t> labels, LossScalar grad_loss,
                          const ContrastiveGradients<f16>& grads, const SiglipLossOptions& options);
void siglip_loss_backward(Context& ctx, MatrixView<const f16> A, MatrixView<const f16> B,
                          VectorView<const std::int64_t> labels, LossScalar grad_loss,
                          const ContrastiveGradients<float>& grads,
                          const SiglipLossOptions& options);

// Loss and gradients in the backward's passes (no separate forward pass).
void siglip_loss_forward_backward(Context& ctx, MatrixView<const float> A,
                                  MatrixView<const float> B, VectorView<const std::int64_t> labels,
                                  VectorView<float> loss, VectorView<float> row_losses,
                                  LossScalar grad_loss, const ContrastiveGradients<float>& grads,
                                  const SiglipLossOptions& options);
void siglip_loss_forward_backward(Context& ctx, MatrixView<const bf16> A, MatrixView<const bf16> B,
                                  VectorView<const std::int64_t> labels, VectorView<float> loss,
                                  VectorView<float> row_losses, LossScalar grad_loss,
                                  const ContrastiveGradients<bf16>& grads,
                                  const SiglipLossOptions& options);
void siglip_loss_forward_backward(Context& ctx, MatrixView<const bf16> A, MatrixView<const bf16> B,
                                  VectorView<const std::int64_t> labels, VectorView<float> loss,
                                  VectorView<float> row_losses, LossScalar grad_loss,
                                  const ContrastiveGradients<float>& grads,
                                  const SiglipLossOptions& options);
void siglip_loss_forward_backward(Context& ctx, MatrixView<const f16> A, MatrixView<const f16> B,
                                  VectorView<const std::int64_t> labels, VectorView<float> loss,
                                  VectorView<float> row_losses, LossScalar grad_loss,
                                  const ContrastiveGradients<f16>& grads,
                                  const SiglipLossOptions& options);
void siglip_loss_forward_backward(Context& ctx, MatrixView<const f16> A, MatrixView<const f16> B,
                                  VectorView<const std::int64_t> labels, VectorView<float> loss,
                                  VectorView<float> row_losses, LossScalar grad_loss,
                                  const ContrastiveGradients<float>& grads,
                                  const SiglipLossOptions& options);

std::size_t siglip_loss_workspace_bytes(const Context& ctx, std::int64_t Na, std::int64_t Nb,
                                        std::int64_t d, ContrastivePass pass,
                                        const SiglipLossOptions& options);

}  // namespace kfuse
