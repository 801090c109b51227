// The fusion family: KrossFuse and its relatives.
//
// KrossFuse fuses embeddings of the same item from several models (say CLIP's 512-d
// and DINOv2's 768-d) by the Kronecker product of their feature maps, so that the
// fused kernel is the product k1 k2 of the per-model kernels: two items are similar
// only if every model finds them similar. The exact fused row is d1 d2 wide;
// RP-KrossFuse approximates it with l random features. This header offers:
//   kron_fuse             the exact fused rows a (x) b (x) ...
//   rp_fuse               RP-KrossFuse: Z = scale (A U1) o (B U2) o ...
//   kron_fuse_backward,   their gradients with respect to the inputs
//   rp_fuse_backward
//   cross_modal_kron/_rp  the paper's cross-modal fusion (Algorithm 2)
//   rff_fuse              random Fourier features of a product of RBF kernels
//   tensor_sketch         TensorSketch (count sketches multiplied in Fourier space)
//   product_kernel_topk   exact retrieval under k1 (C + k2), never forming the
//                         fused space nor the query x gallery score matrix
//
// Every function validates all its arguments before it writes anything (a
// kfuse::Error names the argument), runs on the context's backend, and on a Cuda
// context is asynchronous on the context's stream. Inputs are fp32, bf16 or fp16
// (fp64 too for kron_fuse); outputs and accumulation are fp32 (fp64 for fp64).
//
// Randomness: every random object is a pure function of (seed, input j, row,
// column) drawn from Philox (kernels/core/philox.hpp), and the exact paths
// compute every output as the same chain of exactly rounded fp32 operations on the
// CPU and the GPU: the same seed gives bitwise the same U and the same rp_fuse,
// rff_fuse and cross_modal_rp outputs on both (Precision::Exact; TF32/BF16 are
// faster on a GPU and not bitwise reproducible).
//
// Drawn once per context (CPU path): because the same (seed, input j, distribution,
// width, l) always gives the same U, the CPU path keeps the matrices it draws (U_j of
// rp_fuse, rp_fuse_backward and cross_modal_rp; rff_fuse's and Rbf sides' frequencies;
// not rp_projection_matrix's, which the caller keeps) in the context's draw cache, in the
// layout it reads (the exact chains: 16-column strips, w_j x ceil(l / 16) x 16 floats;
// TF32 / BF16 and the backwards' products: w_j x l floats), keyed by all of those, so
// a repeated call skips the draw and gives the same bits as a fresh context. It holds
// at most 256 MiB by default, least recently used dropped first;
// Context::set_draw_cache_budget (0: off), clear_draw_cache and the environment's
// KFUSE_DRAW_CACHE_BYTES control it (include/kfuse/context.hpp).
#pragma once

#include <cstdint>
#include <vector>

#include "kfuse/context.hpp"
#include "kfuse/precision.hpp"
#include "kfuse/view.hpp"

namespace kfuse {

// The most inputs one fused row combines (kron_fuse, rp_fuse, rff_fuse).
constexpr int kMaxFuseInputs = 4;

// Every width in this family (an input's columns, a feature map, a fused row, the number
// l of random features) is at most kMaxFuseWidth; rff_features, image_dim and text_dim,
// which are doubled in their slots, at most kMaxFuseWidth / 2. Larger values are an
// InvalidArgument naming the argument (a fused row wider than kMaxFuseWidth:
// Unsupported), never a wrapped size.
constexpr std::int64_t kMaxFuseWidth = (std::int64_t(1) << 31) - 1;

// The kernel of one input embedding, i.e. its feature map in a fused row.
//   Linear: k(a, a') = <a, a'>, feature map a.
//   Cosine: k = <a, a'> / (|a| |a'|), feature map a / |a| (a zero row stays zero).
//           |a| is rescaled by a power of two where |a|^2 would under- or overflow,
//           so every finite row keeps its direction whatever its norm, except one
//           whose 1 / |a| overflows (|a| < 2^-128 in fp32, 2^-1024 in fp64): it is
//           a zero row, as is a row holding a NaN or an inf. product_kernel_topk
//           forms <q, g> before normalising: there |<q, g>| must also fit fp32.
//   Rbf:    k = exp(-|a - a'|^2 / (2 sigma^2)). product_kernel_topk evaluates it
//           exactly; the feature-map functions use its random Fourier features,
//           2 * rff_features wide (rff_fuse applied to that input alone, with the
//           frequencies of Philox stream "side j" under the call's seed).
enum class SideKernel : int { Linear = 0, Cosine = 1, Rbf = 2 };

struct FuseSide {
  SideKernel kernel = SideKernel::Linear;
  double sigma = 1.0;             // Rbf: the bandwidth, finite and > 0
  std::int64_t rff_features = 0;  // Rbf in a feature-map function: r >= 1
};

// The width of an input's feature map: d (Linear, Cosine) or 2 * rff_features (Rbf).
// InvalidArgument when d or rff_features is negative or past the bounds above.
std::int64_t fuse_side_width(const FuseSide& side, std::int64_t d);

// ------------------------------------------------------------------ kron_fuse

struct KronFuseOptions {
  std::vector<FuseSide> sides;  // one per input, or empty: every input Linear
  std::uint64_t seed = 0;       // Rbf sides' random Fourier features
};

// out [n x w0 w1 ...] row i = phi0(a_i) (x) phi1(b_i) (x) ..., 2 to kMaxFuseInputs
// inputs with n rows each; column (k0 w1 + k1) w2 + k2 ... = (v0[k0] v1[k1]) v2[k2]
// (products rounded left to right). The fused width must be < 2^31. One pass that
// writes out once (16-byte stores on the GPU when out's rows are 16-byte aligned).
void kron_fuse(Context& ctx, const std::vector<MatrixView<const float>>& inputs,
               MatrixView<float> out, const KronFuseOptions& options = {});
void kron_fuse(Context& ctx, const std::vector<MatrixView<const double>>& inputs,
               MatrixView<double> out, const KronFuseOptions& options = {});
void kron_fuse(Context& ctx, const std::vector<MatrixView<const bf16>>& inputs,
               MatrixView<float> out, const KronFuseOptions& options = {});
void kron_fuse(Context& ctx, const std::vector<MatrixView<const f16>>& inputs,
               MatrixView<float> out, const KronFuseOptions& options = {});

// The gradient of kron_fuse: given the inputs, the options of the forward call and
// grad_out [n x w0 w1 ...] (dL/dout), writes grads[j] = dL/d inputs[j] [n x d_j] for
// every input (each grads[j] of its input's shape; disjoint from every input, from
// grad_out and from each other). dL/dv_j[k] is the sum of grad_out over the fused
// columns with index k in slot j times the other slots' values; a Linear side passes
// it on, a Cosine side maps it through v = a / |a| (g -> (g - (g . v) v) / |a|, with
// |a| exactly as the forward computes it: a row the forward treats as zero, or one
// holding a NaN or an inf, gets a zero gradient), an Rbf side through its random
// Fourier features as rp_fuse_backward says (fp32 and fp16/bf16 inputs only: with
// fp64 inputs an Rbf side is Unsupported, its features being fp32). Sums in the
// working type (fp32, fp64 for fp64), not bitwise the same on the CPU and the GPU.
// bf16 and fp16 inputs get fp32 gradients.
void kron_fuse_backward(Context& ctx, const std::vector<MatrixView<const float>>& inputs,
                        MatrixView<const float> grad_out,
                        const std::vector<MatrixView<float>>& grads,
                        const KronFuseOptions& options = {});
void kron_fuse_backward(Context& ctx, const std::vector<MatrixView<const double>>& inputs,
                        MatrixView<const double> grad_out,
                        const std::vector<MatrixView<double>>& grads,
                        const KronFuseOptions& options = {});
void kron_fuse_backward(Context& ctx, const std::vector<MatrixView<const bf16>>& inputs,
                        MatrixView<const float> grad_out,
                        const std::vector<MatrixView<float>>& grads,
                        const KronFuseOptions& options = {});
void kron_fuse_backward(Context& ctx, const std::vector<MatrixView<const f16>>& inputs,
                        MatrixView<const float> grad_out,
                        const std::vector<MatrixView<float>>& grads,
                        const KronFuseOptions& options = {});

// ------------------------------------------------------------------ rp_fuse

// The distribution of U's entries, each with mean 0 and variance 1.
enum class RpDistribution : int {
  Uniform = 0,     // Uniform[-sqrt 3, sqrt 3] (the paper's choice): 2^24 equally likely values
  Gaussian = 1,    // N(0, 1) (Box-Muller on Philox words)
  Rademacher = 2,  // +-1
};

enum class RpScaling : int {
  // Z = (1/sqrt l) (A U1) o (B U2) o ...: <z, z'> is an unbiased estimate of
  // <a, a'> <b, b'> ... (for any number of inputs).
  Unbiased = 0,
  // The authors' code: each factor divided by sqrt l, Z = (A U1 / sqrt l) o (B U2 /
  // sqrt l) o ...; <z, z'> estimates the product kernel / l^(m-1) (two inputs: / l).
  AuthorsCompat = 1,
};

struct RpFuseOptions {
  std::vector<FuseSide> sides;  // one per input, or empty: every input Linear
  std::uint64_t seed = 0;
  RpDistribution distribution = RpDistribution::Uniform;
  RpScaling scaling = RpScaling::Unbiased;
  // Exact: every entry of A U is an fp32 FMA chain over the input's columns in
  // increasing order, with the product fused into the projection: bitwise the same
  // on the CPU and the GPU. TF32 / BF16: cuBLAS GEMMs on tensor cores (the CPU: the
  // BLAS's fp32 sgemm), then the product; faster, not bitwise reproducible.
  Precision precision = Precision::Exact;
};

// out [n x l] = Z for 2 to kMaxFuseInputs inputs with n rows each; l = out.cols >= 1.
// U_j [w_j x l] (w_j the width of input j's feature map) has entries drawn from
// Philox keyed by (seed, j, row, column): the same seed gives the same U in every
// call, on every backend, and the first l columns of U do not depend on l.
void rp_fuse(Context& ctx, const std::vector<MatrixView<const float>>& inputs,
             MatrixView<float> out, const RpFuseOptions& options = {});
void rp_fuse(Context& ctx, const std::vector<MatrixView<const bf16>>& inputs, MatrixView<float> out,
             const RpFuseOptions& options = {});
void rp_fuse(Context& ctx, const std::vector<MatrixView<const f16>>& inputs, MatrixView<float> out,
             const RpFuseOptions& options = {});

// The gradient of rp_fuse: given the inputs, the options of the forward call and
// grad_out [n x l] (dL/dZ), writes grads[j] = dL/d inputs[j] [n x d_j] for every
// input (each of its input's shape, fp32 whatever the inputs' dtype; disjoint from
// every input, from grad_out and from each other). With P_k = phi_k(A_k) U_k and Z =
// s P_0 o P_1 o ...:  dL/dphi_j = (s grad_out o prod_{k != j} P_k) U_j^T, then
//   Linear: passed on;
//   Cosine: through v = a / |a|: g -> (g - (g . v) v) / |a|, |a| exactly as the
//           forward computes it (a row it treats as zero, or one holding a NaN or an
//           inf, gets a zero gradient);
//   Rbf:    through its random Fourier features f = [cos(a W / sigma), sin(a W /
//           sigma)] / sqrt r: dL/da = ((g_sin o f_cos - g_cos o f_sin) W^T) / sigma.
// The P_k are recomputed as the forward computes them (options.precision). The
// matrix products with U_j^T and W^T: fp32 with double sums on the CPU and fp32
// cuBLAS on the GPU under Exact, the BLAS's sgemm / TF32 tensor cores under a TF32 or
// BF16 permission. Not bitwise the same on the CPU and the GPU.
void rp_fuse_backward(Context& ctx, const std::vector<MatrixView<const float>>& inputs,
                      MatrixView<const float> grad_out, const std::vector<MatrixView<float>>& grads,
                      const RpFuseOptions& options = {});
void rp_fuse_backward(Context& ctx, const std::vector<MatrixView<const bf16>>& inputs,
                      MatrixView<const float> grad_out, const std::vector<MatrixView<float>>& grads,
                      const RpFuseOptions& options = {});
void rp_fuse_backward(Context& ctx, const std::vector<MatrixView<const f16>>& inputs,
                      MatrixView<const float> grad_out, const std::vector<MatrixView<float>>& grads,
                      const RpFuseOptions& options = {});

// Writes U_input [rows x cols] as rp_fuse draws it for input `input` (0-based)
// under options.seed and options.distribution: rows = the width of that input's
// feature map, cols = l (any rows, cols >= 0 are allowed: entries are defined for all).
void rp_projection_matrix(Context& ctx, int input, MatrixView<float> out,
                          const RpFuseOptions& options = {});

// ------------------------------------------------------------------ cross-modal fusion

enum class Modality : int { Image = 0, Text = 1 };

// The paper's Algorithm 2: a cross-modal model (CLIP: psi, image and text in one
// space) fused with a unimodal expert per modality (DINOv2 phi2 for images, E5
// phi3 for text), a constant vector standing in for the absent modality's expert:
//   image x: psi(x) (x) u2(x) (x) e3,   text t: psi(t) (x) e2 (x) u3(t),
//   u_j(x) = [(g_j 1 + phi_j(x)) / sqrt 2 ; (g_j 1 - phi_j(x)) / sqrt 2],  g_j = sqrt(C / w_j),
//   e_j = 1 / sqrt(2 w_j) (2 w_j entries),  w_j the width of expert j's feature map.
// This is the paper's construction (c 1 blocks) with the constants normalised so that
//   image-image = k_psi (C + k_phi2),  text-text = k_psi (C + k_phi3),
//   image-text  = C k_psi:             zero-shot alignment is preserved.
// (The paper's unnormalised form scales these by 4 w3 c^2, 4 w2 c^2 and 4 w2 w3 c^4;
// its c relates to C by C = w c^2.)
struct CrossModalOptions {
  double C = 1.0;              // finite, > 0
  std::int64_t image_dim = 0;  // columns of the image expert's embedding (>= 1)
  std::int64_t text_dim = 0;   // columns of the text expert's embedding (>= 1)
  FuseSide shared;             // psi's kernel
  FuseSide image_expert;       // phi2's kernel
  FuseSide text_expert;        // phi3's kernel
  std::uint64_t seed = 0;      // U (rp form) and Rbf sides' random Fourier features
  RpDistribution distribution = RpDistribution::Uniform;  // rp form
  RpScaling scaling = RpScaling::Unbiased;                // rp form
  Precision precision = Precision::Exact;                 // rp form, as in RpFuseOptions
};

// The width of the exact cross-modal row: w_psi * 2 w2 * 2 w3. InvalidArgument when a
// dimension or rff_features is past the bounds above, or the product overflows 64 bits.
std::int64_t cross_modal_width(const CrossModalOptions& options, std::int64_t shared_dim);

// Exact form. shared [n x d_psi], expert [n x image_dim] (Image) or [n x text_dim]
// (Text), out [n x cross_modal_width(...)] (< 2^31).
void cross_modal_kron(Context& ctx, Modality modality, MatrixView<const float> shared,
                      MatrixView<const float> expert, MatrixView<float> out,
                      const CrossModalOptions& options);
void cross_modal_kron(Context& ctx, Modality modality, MatrixView<const double> shared,
                      MatrixView<const double> expert, MatrixView<double> out,
                      const CrossModalOptions& options);
void cross_modal_kron(Context& ctx, Modality modality, MatrixView<const bf16> shared,
                      MatrixView<const bf16> expert, MatrixView<float> out,
                      const CrossModalOptions& options);
void cross_modal_kron(Context& ctx, Modality modality, MatrixView<const f16> shared,
                      MatrixView<const f16> expert, MatrixView<float> out,
                      const CrossModalOptions& options);

// Random-projection form: the triple Hadamard product of rp_fuse over the three
// slots (psi, image slot, text slot), U_j keyed by slot j, so image and text rows
// land in one l-dimensional space: out [n x l].
void cross_modal_rp(Context& ctx, Modality modality, MatrixView<const float> shared,
                    MatrixView<const float> expert, MatrixView<float> out,
                    const CrossModalOptions& options);
void cross_modal_rp(Context& ctx, Modality modality, MatrixView<const bf16> shared,
                    MatrixView<const bf16> expert, MatrixView<float> out,
                    const CrossModalOptions& options);
void cross_modal_rp(Context& ctx, Modality modality, MatrixView<const f16> shared,
                    MatrixView<const f16> expert, MatrixView<float> out,
                    const CrossModalOptions& options);

// ------------------------------------------------------------------ random Fourier features

struct RffOptions {
  std::vector<double> sigmas;  // one bandwidth per input, finite and > 0
  std::uint64_t seed = 0;
};

// Random Fourier features of prod_j exp(-|a_j - a_j'|^2 / (2 sigma_j^2)): with x =
// [a_0 / sigma_0; a_1 / sigma_1; ...] and frequencies w_t ~ N(0, I) drawn jointly
// (input j's rows from Philox stream j under the seed), out [n x 2r] row =
// (1/sqrt r) [cos(w_1 x) ... cos(w_r x), sin(w_1 x) ... sin(w_r x)], r = out.cols / 2:
// <z, z'> is an unbiased estimate of the product kernel. 1 to kMaxFuseInputs
// inputs. Exact fp32 (sin and cos implemented in the library), bitwise the same on
// the CPU and the GPU.
void rff_fuse(Context& ctx, const std::vector<MatrixView<const float>>& inputs,
              MatrixView<float> out, const RffOptions& options);
void rff_fuse(Context& ctx, const std::vector<MatrixView<const bf16>>& inputs,
              MatrixView<float> out, const RffOptions& options);
void rff_fuse(Context& ctx, const std::vector<MatrixView<const f16>>& inputs, MatrixView<float> out,
              const RffOptions& options);

// ------------------------------------------------------------------ TensorSketch

struct TensorSketchOptions {
  FuseSide side_a, side_b;  // the two inputs' kernels
  std::uint64_t seed = 0;   // hashes and signs (Philox), Rbf sides' Fourier features
};

// TensorSketch (Pham & Pagh 2013) of a (x) b: count sketches C_a, C_b of the two
// feature maps (bucket h(k) and sign s(k) of coordinate k from Philox keyed by
// (seed, input, k)), combined by circular convolution, out [n x l] row =
// IFFT(FFT(C_a) o FFT(C_b)): <z, z'> is an unbiased estimate of k_a k_b, at
// O(d + l log l) per row. GPU: cuFFT; CPU: the convolution taken directly over the
// nonzero buckets (O(min(d_a, l) min(d_b, l)) per row) in double. The GPU result is
// not bitwise the CPU's (cuFFT's sums), only the same to fp32 rounding.
// Synchronisation: on a GPU this call returns after its work has run (cuFFT plans are
// created and destroyed per call, and their destruction frees device memory).
void tensor_sketch(Context& ctx, MatrixView<const float> A, MatrixView<const float> B,
                   MatrixView<float> out, const TensorSketchOptions& options);
void tensor_sketch(Context& ctx, MatrixView<const bf16> A, MatrixView<const bf16> B,
                   MatrixView<float> out, const TensorSketchOptions& options);
void tensor_sketch(Context& ctx, MatrixView<const f16> A, MatrixView<const f16> B,
                   MatrixView<float> out, const TensorSketchOptions& options);

// ------------------------------------------------------------------ product_kernel_topk

struct ProductTopkOptions {
  FuseSide side1, side2;  // per-side kernels (Rbf exact: sigma used, rff_features ignored)
  double C = 0.0;         // s = k1 (C + k2); C = 0 is the plain product kernel
  // A permission (kfuse/precision.hpp): the present kernels compute exactly.
  Precision precision = Precision::Exact;
};

// For each query i, the k gallery rows j with the highest scores
//   s_ij = k1(q1_i, g1_j) (C + k2(q2_i, g2_j)),
// highest first, equal scores by lower index (NaN ranks lowest): indices [M x k]
// and scores [M x k], k = indices.cols with 1 <= k <= N (k <= 256 on a GPU).
// Q1 [M x d1], Q2 [M x d2], G1 [N x d1], G2 [N x d2]. O(M N (d1 + d2)) work, O(M k)
// extra memory: neither the d1 d2 space nor the M x N scores are ever formed. Each
// side's value is an fp32 chain in increasing column order (Rbf in the direct form
// sum (q - g)^2, free of cancellation), the same on the CPU and the GPU.
void product_kernel_topk(Context& ctx, MatrixView<const float> Q1, MatrixView<const float> Q2,
                         MatrixView<const float> G1, MatrixView<const float> G2,
                         MatrixView<std::int64_t> indices, MatrixView<float> scores,
                         const ProductTopkOptions& options);
void product_kernel_topk(Context& ctx, MatrixView<const bf16> Q1, MatrixView<const bf16> Q2,
                         MatrixView<const bf16> G1, MatrixView<const bf16> G2,
                         MatrixView<std::int64_t> indices, MatrixView<float> scores,
                         const ProductTopkOptions& options);
void product_kernel_topk(Context& ctx, MatrixView<const f16> Q1, MatrixView<const f16> Q2,
                         MatrixView<const f16> G1, MatrixView<const f16> G2,
                         MatrixView<std::int64_t> indices, MatrixView<float> scores,
                         const ProductTopkOptions& options);

// The largest k product_kernel_topk accepts on a GPU. The lists live in shared
// memory: 256 fits an H100 (227 KiB per block); a device with less (an A100 offers
// 163 KiB: k <= 236) rejects a k that does not fit with Status::Unsupported.
constexpr std::int64_t kMaxTopkGpu = 256;

}  // namespace kfuse
