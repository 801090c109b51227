// The fusion family's host layer: validate every argument, turn each input into
// the operand of its feature map (row scales for a cosine side, random Fourier
// features for an Rbf side, computed into scratch in the context's memory), draw
// the random matrices, and hand the problem to the backend.
#include "kfuse/fuse.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/fuse/launch.hpp"
#include "kernels/fuse/problem.hpp"
#include "src/core/backend.hpp"
#include "src/core/checked.hpp"
#include "src/core/context_impl.hpp"
#include "src/core/scratch.hpp"
#include "src/core/validate.hpp"
#include "src/fuse/cpu.hpp"

namespace kfuse {

namespace {

// 0 <= value <= limit, or InvalidArgument naming the argument.
void check_width_bound(const char* op, const std::string& argument, std::int64_t value,
                       std::int64_t limit) {
  if (value < 0 || value > limit)
    detail::argument_error(
        Status::InvalidArgument, op, argument,
        "expected 0 <= value <= " + std::to_string(limit) + ", got " + std::to_string(value));
}

std::int64_t side_width(const char* op, const std::string& name, const FuseSide& side,
                        const std::string& d_name, std::int64_t d) {
  check_width_bound(op, d_name, d, kMaxFuseWidth);
  if (side.kernel != SideKernel::Rbf) return d;
  check_width_bound(op, name + ".rff_features", side.rff_features, kMaxFuseWidth / 2);
  return 2 * side.rff_features;
}

}  // namespace

std::int64_t fuse_side_width(const FuseSide& side, std::int64_t d) {
  return side_width("fuse_side_width", "side", side, "d", d);
}

std::int64_t cross_modal_width(const CrossModalOptions& o, std::int64_t shared_dim) {
  const char* op = "cross_modal_width";
  check_width_bound(op, "options.image_dim", o.image_dim, kMaxFuseWidth / 2);
  check_width_bound(op, "options.text_dim", o.text_dim, kMaxFuseWidth / 2);
  std::int64_t width = side_width(op, "options.shared", o.shared, "shared_dim", shared_dim);
  for (std::int64_t factor :
       {2 * side_width(op, "options.image_expert", o.image_expert, "options.image_dim",
                       o.image_dim),
        2 * side_width(op, "options.text_expert", o.text_expert, "options.text_dim", o.text_dim)}) {
    const std::optional<std::int64_t> product = detail::checked_mul(width, factor);
    if (!product)
      detail::argument_error(Status::InvalidArgument, op, "options",
                             "the cross-modal width overflows 64 bits");
    width = *product;
  }
  return width;
}

namespace {

using detail::FuseOperand;
using detail::KronProblem;
using detail::OperandMap;
using detail::ProjectionKind;
using detail::ProjectionProblem;
using detail::RandomMatrix;
using detail::Scratch;
using detail::SketchProblem;
using detail::TopkProblem;
using detail::Validator;

// ------------------------------------------------------------------ backend dispatch

template <class W>
void run_inv_norms(Context& ctx, const FuseOperand& op, std::int64_t n, W* out) {
  return KFUSE_DISPATCH(ctx, cuda::fuse_inv_norms<W>(ctx, op, n, out),
                        cpu::fuse_inv_norms<W>(op, n, out));
}

void run_random(Context& ctx, const RandomMatrix& r, float* out) {
  return KFUSE_DISPATCH(ctx, cuda::fuse_random_matrix(ctx, r, out),
                        cpu::fuse_random_matrix(r, out));
}

// The backwards' draws, through the CPU path's draw cache (rp_projection_matrix, an
// explicit request for U that the caller keeps, draws without it).
void run_random_cached(Context& ctx, const RandomMatrix& r, float* out) {
  return KFUSE_DISPATCH(ctx, cuda::fuse_random_matrix(ctx, r, out),
                        cpu::fuse_random_matrix(r, out, &detail::draw_cache(ctx)));
}

template <class W>
void run_kron(Context& ctx, const KronProblem& p) {
  return KFUSE_DISPATCH(ctx, cuda::kron_fuse<W>(ctx, p), cpu::kron_fuse<W>(p));
}

void run_projection(Context& ctx, const ProjectionProblem& p, Precision precision) {
  return KFUSE_DISPATCH(ctx, cuda::fuse_projection(ctx, p, precision),
                        cpu::fuse_projection(p, precision, &detail::draw_cache(ctx)));
}

void run_sketch(Context& ctx, const SketchProblem& p) {
  return KFUSE_DISPATCH(ctx, cuda::tensor_sketch(ctx, p), cpu::tensor_sketch(p));
}

void run_topk(Context& ctx, const TopkProblem& p, Precision precision) {
  return KFUSE_DISPATCH(ctx, cuda::product_topk(ctx, p, precision), cpu::product_topk(p));
}

void run_factor_grad(Context& ctx, const detail::FactorGradProblem& p) {
  return KFUSE_DISPATCH(ctx, cuda::fuse_factor_grad(ctx, p), cpu::fuse_factor_grad(p));
}

void run_grad_gemm(Context& ctx, const detail::GradGemm& g, Precision precision) {
  return KFUSE_DISPATCH(ctx, cuda::fuse_grad_gemm(ctx, g, precision),
                        cpu::fuse_grad_gemm(g, precision));
}

template <class W>
void run_cosine_grad(Context& ctx, const detail::CosineGradProblem& p) {
  return KFUSE_DISPATCH(ctx, cuda::fuse_cosine_grad<W>(ctx, p), cpu::fuse_cosine_grad<W>(p));
}

void run_fourier_grad(Context& ctx, const detail::FourierGradProblem& p) {
  return KFUSE_DISPATCH(ctx, cuda::fuse_fourier_grad(ctx, p), cpu::fuse_fourier_grad(p));
}

template <class W>
void run_kron_grad(Context& ctx, const detail::KronGradProblem& p) {
  return KFUSE_DISPATCH(ctx, cuda::kron_fuse_grad<W>(ctx, p), cpu::kron_fuse_grad<W>(p));
}

// ------------------------------------------------------------------ validation

const char* const kInputNames[kMaxFuseInputs] = {"inputs[0]", "inputs[1]", "inputs[2]",
                                                 "inputs[3]"};

// A width (columns of an input or of out, the number of random features) within
// kMaxFuseWidth.
void check_width(const Validator& v, const char* name, const char* what, std::int64_t width) {
  if (width > kMaxFuseWidth)
    v.fail(Status::InvalidArgument, name,
           std::string("expected ") + what + " <= 2^31 - 1, got " + std::to_string(width));
}

// The columns of `name` (out, grad_out): l, the number of random features, 1 to
// kMaxFuseWidth.
void check_random_features(const Validator& v, const char* name, std::int64_t l) {
  v.at_least(name, "cols (l, the number of random features)", 1, l);
  check_width(v, name, "cols (l, the number of random features)", l);
}

// A random projection's options (RpFuseOptions, CrossModalOptions): U's distribution,
// the scaling and the precision.
template <class Options>
void check_projection_options(const Validator& v, const Options& o) {
  v.enumeration("distribution", o.distribution, RpDistribution::Rademacher,
                "Uniform, Gaussian or Rademacher");
  v.enumeration("scaling", o.scaling, RpScaling::AuthorsCompat, "Unbiased or AuthorsCompat");
  v.precision(o.precision);
}

// A side's kernel and its parameters; `feature_map`: the call needs an Rbf side's
// random Fourier features (rff_features >= 1).
void check_side(const Validator& v, const std::string& name, const FuseSide& side,
                bool feature_map) {
  v.enumeration(name + ".kernel", side.kernel, SideKernel::Rbf, "Linear, Cosine or Rbf");
  if (side.kernel != SideKernel::Rbf) return;
  v.positive_finite((name + ".sigma").c_str(), side.sigma);
  if (feature_map && (side.rff_features < 1 || side.rff_features > kMaxFuseWidth / 2))
    v.fail(Status::InvalidArgument, name + ".rff_features",
           "expected 1 to 2^30 - 1 random Fourier features for an Rbf side, got " +
               std::to_string(side.rff_features));
}

// 2 (or min_count) to kMaxFuseInputs inputs with equal row counts and >= 1 column
// each; returns the row count.
template <class T>
std::int64_t check_inputs(const Validator& v, const std::vector<MatrixView<const T>>& inputs,
                          int min_count) {
  const auto count = static_cast<std::int64_t>(inputs.size());
  if (count < min_count || count > kMaxFuseInputs)
    v.fail(Status::InvalidArgument, "inputs",
           "expected " + std::to_string(min_count) + " to " + std::to_string(kMaxFuseInputs) +
               " input matrices, got " + std::to_string(count));
  for (std::int64_t j = 0; j < count; ++j) {
    v.matrix(kInputNames[j], inputs[j]);
    v.at_least(kInputNames[j], "cols (the embedding dimension)", 1, inputs[j].cols);
    check_width(v, kInputNames[j], "cols (the embedding dimension)", inputs[j].cols);
    if (j > 0)
      v.extent(kInputNames[j], "rows (the rows of inputs[0])", inputs[0].rows, inputs[j].rows);
  }
  return inputs[0].rows;
}

std::vector<FuseSide> check_sides(const Validator& v, const std::vector<FuseSide>& sides,
                                  std::size_t count) {
  if (sides.empty()) return std::vector<FuseSide>(count);
  if (sides.size() != count)
    v.fail(Status::InvalidArgument, "sides",
           "expected one side per input (" + std::to_string(count) + ") or none, got " +
               std::to_string(sides.size()));
  for (std::size_t j = 0; j < count; ++j)
    check_side(v, "sides[" + std::to_string(j) + "]", sides[j], true);
  return sides;
}

// The product of the widths, failing when a fused row would reach 2^31 columns.
std::int64_t fused_width(const Validator& v, const std::int64_t* widths, int count,
                         const char* out_name = "out") {
  std::int64_t width = 1;
  for (int j = 0; j < count; ++j) {
    if (widths[j] > kMaxFuseWidth / width)
      v.fail(Status::Unsupported, out_name,
             "the fused row would have more than 2^31 - 1 columns (input " + std::to_string(j) +
                 " has width " + std::to_string(widths[j]) + ")");
    width *= widths[j];
  }
  return width;
}

template <class O, class T>
void check_out_disjoint(const Validator& v, const MatrixView<O>& out,
                        const std::vector<MatrixView<const T>>& inputs) {
  for (std::size_t j = 0; j < inputs.size(); ++j)
    v.disjoint("out", out, kInputNames[j], inputs[j]);
}

const char* const kGradNames[kMaxFuseInputs] = {"grads[0]", "grads[1]", "grads[2]", "grads[3]"};

// One gradient per input, of its input's shape, disjoint from every input, from
// grad_out and from each other (a backward writes them while it reads those).
template <class G, class T, class D>
void check_grads(const Validator& v, const std::vector<MatrixView<G>>& grads,
                 const std::vector<MatrixView<const T>>& inputs,
                 const MatrixView<const D>& grad_out) {
  if (grads.size() != inputs.size())
    v.fail(Status::InvalidArgument, "grads",
           "expected one gradient per input (" + std::to_string(inputs.size()) + "), got " +
               std::to_string(grads.size()));
  for (std::size_t j = 0; j < grads.size(); ++j) {
    v.matrix(kGradNames[j], grads[j]);
    v.extent(kGradNames[j], "rows (the rows of the inputs)", inputs[j].rows, grads[j].rows);
    v.extent(kGradNames[j], "cols (the cols of its input)", inputs[j].cols, grads[j].cols);
  }
  for (std::size_t j = 0; j < grads.size(); ++j) {
    for (std::size_t k = 0; k < inputs.size(); ++k)
      v.disjoint(kGradNames[j], grads[j], kInputNames[k], inputs[k]);
    v.disjoint(kGradNames[j], grads[j], "grad_out", grad_out);
    for (std::size_t k = 0; k < j; ++k)
      if (detail::views_overlap(grads[j], grads[k]))
        v.fail(Status::InvalidArgument, kGradNames[j],
               std::string("must not overlap '") + kGradNames[k] + "'");
  }
}

// ------------------------------------------------------------------ operands

// The [rows x cols] matrix of Philox stream `stream` under `seed`.
RandomMatrix random_matrix(std::uint64_t seed, std::uint32_t stream, int distribution,
                           std::int64_t rows, std::int64_t cols) {
  RandomMatrix r;
  r.seed = seed;
  r.stream = stream;
  r.distribution = distribution;
  r.rows = rows;
  r.cols = cols;
  r.ld = cols;
  return r;
}

// U_j of rp_fuse: [rows x l], stream "RP" + j.
RandomMatrix projection_matrix(std::uint64_t seed, int j, RpDistribution distribution,
                               std::int64_t rows, std::int64_t l) {
  return random_matrix(seed, detail::kStreamProjection + static_cast<std::uint32_t>(j),
                       static_cast<int>(distribution), rows, l);
}

template <class T>
FuseOperand raw_operand(const MatrixView<const T>& m) {
  FuseOperand op;
  op.data = m.data;
  op.dtype = dtype_of<T>::value;
  op.ld = m.ld;
  op.d = m.cols;
  op.width = m.cols;
  return op;
}

// Turns inputs into the operands of their feature maps, owning the scratch that
// row scales and random Fourier features live in. W: the working type of row scales.
template <class W>
class FeatureMaps {
 public:
  explicit FeatureMaps(Context& ctx) : ctx_(ctx) {}

  // `slot` keys an Rbf side's frequencies (Philox stream kStreamSideFourier + slot).
  FuseOperand map(const FuseOperand& raw, std::int64_t n, const FuseSide& side, std::uint64_t seed,
                  int slot) {
    FuseOperand op = raw;
    if (side.kernel == SideKernel::Cosine) {
      W* scales = allocate<W>(n);
      run_inv_norms<W>(ctx_, raw, n, scales);
      op.row_scale = scales;
    } else if (side.kernel == SideKernel::Rbf) {
      const std::int64_t r = side.rff_features;
      float* features = allocate<float>(n, 2 * r);
      ProjectionProblem p;
      p.in[0] = raw;
      p.in[0].scale = 1.0 / side.sigma;
      p.weight[0] =
          random_matrix(seed, detail::kStreamSideFourier + static_cast<std::uint32_t>(slot),
                        detail::kDrawGaussian, raw.d, r);
      p.count = 1;
      p.n = n;
      p.l = r;
      p.kind = ProjectionKind::Fourier;
      p.amplitude = static_cast<float>(1.0 / std::sqrt(static_cast<double>(r)));
      p.out = features;
      p.ldo = 2 * r;
      run_projection(ctx_, p, Precision::Exact);
      op = FuseOperand{};
      op.data = features;
      op.dtype = DType::F32;
      op.ld = 2 * r;
      op.d = 2 * r;
      op.width = 2 * r;
    }
    return op;
  }

  // rows x cols elements (at least one), the size checked: a matrix of two validated
  // widths (U_j of a backward: up to 2^31 x 2^31, an Rbf side's n x 2r features) can
  // pass 64 bits in bytes, which is OutOfMemory, never a wrapped size.
  template <class U>
  U* allocate(std::int64_t rows, std::int64_t cols = 1) {
    const std::size_t bytes = detail::workspace_bytes(detail::checked_mul(rows, cols), sizeof(U));
    buffers_.push_back(std::make_unique<Scratch>(ctx_, bytes > 0 ? bytes : sizeof(U)));
    return buffers_.back()->template as<U>();
  }

 private:
  Context& ctx_;
  std::vector<std::unique_ptr<Scratch>> buffers_;
};

void set_scaling(ProjectionProblem& p, RpScaling scaling, std::int64_t l) {
  const float s = static_cast<float>(1.0 / std::sqrt(static_cast<double>(l)));
  p.factor_scale = scaling == RpScaling::AuthorsCompat ? s : 1.0f;
  p.final_scale = scaling == RpScaling::AuthorsCompat ? 1.0f : s;
}

// ------------------------------------------------------------------ kron_fuse

template <class T, class O>
void kron_impl(Context& ctx, const std::vector<MatrixView<const T>>& inputs, MatrixView<O> out,
               const KronFuseOptions& o) {
  const Validator v("kron_fuse", ctx);
  const std::int64_t n = check_inputs(v, inputs, 2);
  const int count = static_cast<int>(inputs.size());
  const std::vector<FuseSide> sides = check_sides(v, o.sides, inputs.size());
  v.matrix("out", out);
  v.extent("out", "rows (the rows of the inputs)", n, out.rows);
  std::int64_t widths[kMaxFuseInputs];
  for (int j = 0; j < count; ++j)
    widths[j] = fuse_side_width(sides[j], inputs[j].cols);
  v.extent("out", "cols (the fused width, the product of the inputs' widths)",
           fused_width(v, widths, count), out.cols);
  check_out_disjoint(v, out, inputs);
  if (n == 0) return;

  FeatureMaps<O> maps(ctx);
  KronProblem p;
  for (int j = 0; j < count; ++j)
    p.in[j] = maps.map(raw_operand(inputs[j]), n, sides[j], o.seed, j);
  p.count = count;
  p.n = n;
  p.width = out.cols;
  p.out = out.data;
  p.out_dtype = dtype_of<O>::value;
  p.ldo = out.ld;
  run_kron<O>(ctx, p);
}

// ------------------------------------------------------------------ rp_fuse

template <class T>
void rp_impl(Context& ctx, const std::vector<MatrixView<const T>>& inputs, MatrixView<float> out,
             const RpFuseOptions& o) {
  const Validator v("rp_fuse", ctx);
  const std::int64_t n = check_inputs(v, inputs, 2);
  const int count = static_cast<int>(inputs.size());
  const std::vector<FuseSide> sides = check_sides(v, o.sides, inputs.size());
  v.matrix("out", out);
  v.extent("out", "rows (the rows of the inputs)", n, out.rows);
  check_random_features(v, "out", out.cols);
  check_projection_options(v, o);
  check_out_disjoint(v, out, inputs);
  if (n == 0) return;

  const std::int64_t l = out.cols;
  FeatureMaps<float> maps(ctx);
  ProjectionProblem p;
  for (int j = 0; j < count; ++j) {
    p.in[j] = maps.map(raw_operand(inputs[j]), n, sides[j], o.seed, j);
    p.weight[j] = projection_matrix(o.seed, j, o.distribution, p.in[j].width, l);
  }
  p.count = count;
  p.n = n;
  p.l = l;
  p.kind = ProjectionKind::Product;
  set_scaling(p, o.scaling, l);
  p.out = out.data;
  p.ldo = out.ld;
  run_projection(ctx, p, o.precision);
}

// ------------------------------------------------------------------ backwards

// The gradient with respect to input `slot`'s mapped row has landed in
// `mapped_grad`: grad itself for a Linear or Cosine side (whose map keeps the
// width), scratch [n x 2r] (leading dimension 2r) for an Rbf side. This takes it
// back through the side's map into grad. (An Rbf side needs W = float: the host
// layer rejects it otherwise.)
template <class W, class T>
void side_backward(Context& ctx, FeatureMaps<W>& maps, const FuseSide& side,
                   const MatrixView<const T>& input, const FuseOperand& mapped, std::uint64_t seed,
                   int slot, W* mapped_grad, MatrixView<W> grad) {
  const std::int64_t n = input.rows;
  if (side.kernel == SideKernel::Cosine) {
    detail::CosineGradProblem c;
    c.in = raw_operand(input);
    c.in.row_scale = mapped.row_scale;
    c.n = n;
    c.grad = grad.data;
    c.ldg = grad.ld;
    run_cosine_grad<W>(ctx, c);
  } else if constexpr (std::is_same_v<W, float>) {
    if (side.kernel != SideKernel::Rbf) return;
    const std::int64_t r = side.rff_features;
    detail::FourierGradProblem f;
    f.features = static_cast<const float*>(mapped.data);
    f.grad = mapped_grad;
    f.n = n;
    f.r = r;
    run_fourier_grad(ctx, f);
    // The frequencies W [d x r] the forward drew (FeatureMaps::map), then
    // grad = (h W^T) / sigma.
    float* freq = maps.template allocate<float>(input.cols, r);
    run_random_cached(
        ctx,
        random_matrix(seed, detail::kStreamSideFourier + static_cast<std::uint32_t>(slot),
                      detail::kDrawGaussian, input.cols, r),
        freq);
    detail::GradGemm g;
    g.m = n;
    g.n = input.cols;
    g.k = r;
    g.alpha = static_cast<float>(1.0 / side.sigma);
    g.A = mapped_grad;
    g.lda = 2 * r;
    g.B = freq;
    g.ldb = r;
    g.C = grad.data;
    g.ldc = grad.ld;
    run_grad_gemm(ctx, g, Precision::Exact);
  }
}

// The mapped-row gradient's home for side_backward: grad itself, or scratch for an
// Rbf side.
template <class W>
W* mapped_grad_of(FeatureMaps<W>& maps, const FuseOperand& mapped, const FuseSide& side,
                  std::int64_t n, const MatrixView<W>& grad, std::int64_t* ld) {
  if (side.kernel != SideKernel::Rbf) {
    *ld = grad.ld;
    return grad.data;
  }
  *ld = mapped.width;
  return maps.template allocate<W>(n, mapped.width);
}

template <class T, class O>
void kron_backward_impl(Context& ctx, const std::vector<MatrixView<const T>>& inputs,
                        MatrixView<const O> grad_out, const std::vector<MatrixView<O>>& grads,
                        const KronFuseOptions& o) {
  const Validator v("kron_fuse_backward", ctx);
  const std::int64_t n = check_inputs(v, inputs, 2);
  const int count = static_cast<int>(inputs.size());
  const std::vector<FuseSide> sides = check_sides(v, o.sides, inputs.size());
  if constexpr (!std::is_same_v<O, float>)
    for (int j = 0; j < count; ++j)
      if (sides[j].kernel == SideKernel::Rbf)
        v.fail(Status::Unsupported, "sides[" + std::to_string(j) + "]",
               "the gradient through an Rbf side's random Fourier features is fp32 only");
  v.matrix("grad_out", grad_out);
  v.extent("grad_out", "rows (the rows of the inputs)", n, grad_out.rows);
  std::int64_t widths[kMaxFuseInputs];
  for (int j = 0; j < count; ++j)
    widths[j] = fuse_side_width(sides[j], inputs[j].cols);
  v.extent("grad_out", "cols (the fused width, the product of the inputs' widths)",
           fused_width(v, widths, count, "grad_out"), grad_out.cols);
  check_grads(v, grads, inputs, grad_out);
  if (n == 0) return;

  FeatureMaps<O> maps(ctx);
  detail::KronGradProblem p;
  for (int j = 0; j < count; ++j)
    p.in[j] = maps.map(raw_operand(inputs[j]), n, sides[j], o.seed, j);
  p.count = count;
  p.n = n;
  p.width = grad_out.cols;
  p.dz = grad_out.data;
  p.ldz = grad_out.ld;
  for (int j = 0; j < count; ++j) {
    O* mapped_grad = mapped_grad_of(maps, p.in[j], sides[j], n, grads[j], &p.ldo);
    p.skip = j;
    p.out = mapped_grad;
    run_kron_grad<O>(ctx, p);
    side_backward<O>(ctx, maps, sides[j], inputs[j], p.in[j], o.seed, j, mapped_grad, grads[j]);
  }
}

template <class T>
void rp_backward_impl(Context& ctx, const std::vector<MatrixView<const T>>& inputs,
                      MatrixView<const float> grad_out, const std::vector<MatrixView<float>>& grads,
                      const RpFuseOptions& o) {
  const Validator v("rp_fuse_backward", ctx);
  const std::int64_t n = check_inputs(v, inputs, 2);
  const int count = static_cast<int>(inputs.size());
  const std::vector<FuseSide> sides = check_sides(v, o.sides, inputs.size());
  v.matrix("grad_out", grad_out);
  v.extent("grad_out", "rows (the rows of the inputs)", n, grad_out.rows);
  check_random_features(v, "grad_out", grad_out.cols);
  check_projection_options(v, o);
  check_grads(v, grads, inputs, grad_out);
  if (n == 0) return;

  const std::int64_t l = grad_out.cols;
  FeatureMaps<float> maps(ctx);
  ProjectionProblem scaled;  // the forward's scales
  set_scaling(scaled, o.scaling, l);
  // The forward's factors F_k = (v_k U_k) * factor_scale, each by the forward's own
  // projection (one operand, no final scale): under Exact the same bits.
  FuseOperand mapped[kMaxFuseInputs];
  detail::FactorGradProblem fg;
  for (int j = 0; j < count; ++j) {
    mapped[j] = maps.map(raw_operand(inputs[j]), n, sides[j], o.seed, j);
    float* factor = maps.template allocate<float>(n, l);
    ProjectionProblem p;
    p.in[0] = mapped[j];
    p.weight[0] = projection_matrix(o.seed, j, o.distribution, mapped[j].width, l);
    p.count = 1;
    p.n = n;
    p.l = l;
    p.kind = ProjectionKind::Product;
    p.factor_scale = scaled.factor_scale;
    p.out = factor;
    p.ldo = l;
    run_projection(ctx, p, o.precision);
    fg.factor[j] = factor;
  }
  fg.count = count;
  fg.n = n;
  fg.l = l;
  fg.dz = grad_out.data;
  fg.ldz = grad_out.ld;
  fg.scale = scaled.final_scale;
  fg.out = maps.template allocate<float>(n, l);
  for (int j = 0; j < count; ++j) {
    // G_j = final_scale dZ o prod_{k != j} F_k; dL/dv_j = factor_scale G_j U_j^T.
    fg.skip = j;
    run_factor_grad(ctx, fg);
    const std::int64_t w = mapped[j].width;
    float* u = maps.template allocate<float>(w, l);
    run_random_cached(ctx, projection_matrix(o.seed, j, o.distribution, w, l), u);
    detail::GradGemm g;
    g.m = n;
    g.n = w;
    g.k = l;
    g.alpha = scaled.factor_scale;
    g.A = fg.out;
    g.lda = l;
    g.B = u;
    g.ldb = l;
    g.C = mapped_grad_of(maps, mapped[j], sides[j], n, grads[j], &g.ldc);
    run_grad_gemm(ctx, g, o.precision);
    side_backward<float>(ctx, maps, sides[j], inputs[j], mapped[j], o.seed, j, g.C, grads[j]);
  }
}

// ------------------------------------------------------------------ cross-modal

template <class T>
void check_cross_modal(const Validator& v, Modality modality, const MatrixView<const T>& shared,
                       const MatrixView<const T>& expert, const CrossModalOptions& o) {
  const int m = static_cast<int>(modality);
  if (m != 0 && m != 1)
    v.fail(Status::InvalidArgument, "modality", "expected Image or Text, got " + std::to_string(m));
  v.matrix("shared", shared);
  v.at_least("shared", "cols (the embedding dimension)", 1, shared.cols);
  check_width(v, "shared", "cols (the embedding dimension)", shared.cols);
  v.matrix("expert", expert);
  v.extent("expert", "rows (the rows of shared)", shared.rows, expert.rows);
  v.positive_finite("C", o.C);
  v.at_least("image_dim", "value", 1, o.image_dim);
  v.at_least("text_dim", "value", 1, o.text_dim);
  for (const auto& [name, dim] : {std::pair{"image_dim", o.image_dim}, {"text_dim", o.text_dim}})
    if (dim > kMaxFuseWidth / 2)
      v.fail(Status::InvalidArgument, name,
             "expected a value <= 2^30 - 1 (doubled in its slot), got " + std::to_string(dim));
  v.extent("expert",
           modality == Modality::Image ? "cols (options.image_dim)" : "cols (options.text_dim)",
           modality == Modality::Image ? o.image_dim : o.text_dim, expert.cols);
  check_side(v, "shared", o.shared, true);
  check_side(v, "image_expert", o.image_expert, true);
  check_side(v, "text_expert", o.text_expert, true);
}

// The three slots of a cross-modal row: psi, the image slot, the text slot.
template <class W, class T>
void cross_modal_slots(FeatureMaps<W>& maps, Modality modality, const MatrixView<const T>& shared,
                       const MatrixView<const T>& expert, const CrossModalOptions& o,
                       FuseOperand slots[3]) {
  const std::int64_t n = shared.rows;
  slots[0] = maps.map(raw_operand(shared), n, o.shared, o.seed, 0);
  const int present = modality == Modality::Image ? 1 : 2;
  const FuseSide& side = modality == Modality::Image ? o.image_expert : o.text_expert;
  FuseOperand plus_minus = maps.map(raw_operand(expert), n, side, o.seed, present);
  plus_minus.map = OperandMap::PlusMinus;
  plus_minus.gamma = std::sqrt(o.C / static_cast<double>(plus_minus.width));
  plus_minus.width = 2 * plus_minus.width;
  const std::int64_t other_width = modality == Modality::Image
                                       ? fuse_side_width(o.text_expert, o.text_dim)
                                       : fuse_side_width(o.image_expert, o.image_dim);
  FuseOperand constant;
  constant.map = OperandMap::Constant;
  constant.width = 2 * other_width;
  constant.constant = 1.0 / std::sqrt(2.0 * static_cast<double>(other_width));
  slots[present] = plus_minus;
  slots[3 - present] = constant;
}

template <class T, class O>
void cross_kron_impl(Context& ctx, Modality modality, MatrixView<const T> shared,
                     MatrixView<const T> expert, MatrixView<O> out, const CrossModalOptions& o) {
  const Validator v("cross_modal_kron", ctx);
  check_cross_modal(v, modality, shared, expert, o);
  v.matrix("out", out);
  v.extent("out", "rows (the rows of shared)", shared.rows, out.rows);
  const std::int64_t widths[3] = {fuse_side_width(o.shared, shared.cols),
                                  2 * fuse_side_width(o.image_expert, o.image_dim),
                                  2 * fuse_side_width(o.text_expert, o.text_dim)};
  v.extent("out", "cols (cross_modal_width)", fused_width(v, widths, 3), out.cols);
  v.disjoint("out", out, "shared", shared);
  v.disjoint("out", out, "expert", expert);
  if (shared.rows == 0) return;

  FeatureMaps<O> maps(ctx);
  KronProblem p;
  cross_modal_slots(maps, modality, shared, expert, o, p.in);
  p.count = 3;
  p.n = shared.rows;
  p.width = out.cols;
  p.out = out.data;
  p.out_dtype = dtype_of<O>::value;
  p.ldo = out.ld;
  run_kron<O>(ctx, p);
}

template <class T>
void cross_rp_impl(Context& ctx, Modality modality, MatrixView<const T> shared,
                   MatrixView<const T> expert, MatrixView<float> out, const CrossModalOptions& o) {
  const Validator v("cross_modal_rp", ctx);
  check_cross_modal(v, modality, shared, expert, o);
  v.matrix("out", out);
  v.extent("out", "rows (the rows of shared)", shared.rows, out.rows);
  check_random_features(v, "out", out.cols);
  check_projection_options(v, o);
  v.disjoint("out", out, "shared", shared);
  v.disjoint("out", out, "expert", expert);
  if (shared.rows == 0) return;

  const std::int64_t l = out.cols;
  FeatureMaps<float> maps(ctx);
  ProjectionProblem p;
  cross_modal_slots(maps, modality, shared, expert, o, p.in);
  for (int j = 0; j < 3; ++j) {
    p.weight[j] = projection_matrix(o.seed, j, o.distribution, p.in[j].width, l);
    if (p.in[j].map != OperandMap::Constant) continue;
    // The constant slot's projection is the same for every row: one row, computed
    // by the same chain, then broadcast.
    float* row = maps.template allocate<float>(l);
    ProjectionProblem c;
    c.in[0] = p.in[j];
    c.weight[0] = p.weight[j];
    c.count = 1;
    c.n = 1;
    c.l = l;
    c.kind = ProjectionKind::Product;
    c.out = row;
    c.ldo = l;
    run_projection(ctx, c, Precision::Exact);
    p.factor_row[j] = row;
  }
  p.count = 3;
  p.n = shared.rows;
  p.l = l;
  p.kind = ProjectionKind::Product;
  set_scaling(p, o.scaling, l);
  p.out = out.data;
  p.ldo = out.ld;
  run_projection(ctx, p, o.precision);
}

// ------------------------------------------------------------------ rff_fuse

template <class T>
void rff_impl(Context& ctx, const std::vector<MatrixView<const T>>& inputs, MatrixView<float> out,
              const RffOptions& o) {
  const Validator v("rff_fuse", ctx);
  const std::int64_t n = check_inputs(v, inputs, 1);
  const int count = static_cast<int>(inputs.size());
  if (o.sigmas.size() != inputs.size())
    v.fail(Status::InvalidArgument, "sigmas",
           "expected one bandwidth per input (" + std::to_string(count) + "), got " +
               std::to_string(o.sigmas.size()));
  for (int j = 0; j < count; ++j)
    v.positive_finite(("sigmas[" + std::to_string(j) + "]").c_str(), o.sigmas[j]);
  v.matrix("out", out);
  v.extent("out", "rows (the rows of the inputs)", n, out.rows);
  v.at_least("out", "cols (2r, twice the number of frequencies)", 2, out.cols);
  check_width(v, "out", "cols (2r, twice the number of frequencies)", out.cols);
  if (out.cols % 2 != 0)
    v.fail(Status::ShapeMismatch, "out",
           "expected an even number of cols (2r: cos and sin per frequency), got " +
               std::to_string(out.cols));
  check_out_disjoint(v, out, inputs);
  if (n == 0) return;

  const std::int64_t r = out.cols / 2;
  FeatureMaps<float> maps(ctx);
  ProjectionProblem p;
  for (int j = 0; j < count; ++j) {
    p.in[j] = raw_operand(inputs[j]);
    p.in[j].scale = 1.0 / o.sigmas[j];
    p.weight[j] = random_matrix(o.seed, detail::kStreamFourier + static_cast<std::uint32_t>(j),
                                detail::kDrawGaussian, inputs[j].cols, r);
  }
  p.count = count;
  p.n = n;
  p.l = r;
  p.kind = ProjectionKind::Fourier;
  p.amplitude = static_cast<float>(1.0 / std::sqrt(static_cast<double>(r)));
  p.out = out.data;
  p.ldo = out.ld;
  run_projection(ctx, p, Precision::Exact);
}

// ------------------------------------------------------------------ tensor_sketch

template <class T>
void sketch_impl(Context& ctx, MatrixView<const T> A, MatrixView<const T> B, MatrixView<float> out,
                 const TensorSketchOptions& o) {
  const Validator v("tensor_sketch", ctx);
  v.matrix("A", A);
  v.at_least("A", "cols (the embedding dimension)", 1, A.cols);
  check_width(v, "A", "cols (the embedding dimension)", A.cols);
  v.matrix("B", B);
  v.at_least("B", "cols (the embedding dimension)", 1, B.cols);
  check_width(v, "B", "cols (the embedding dimension)", B.cols);
  v.extent("B", "rows (the rows of A)", A.rows, B.rows);
  check_side(v, "side_a", o.side_a, true);
  check_side(v, "side_b", o.side_b, true);
  v.matrix("out", out);
  v.extent("out", "rows (the rows of A)", A.rows, out.rows);
  v.at_least("out", "cols (l, the sketch dimension)", 1, out.cols);
  check_width(v, "out", "cols (l, the sketch dimension)", out.cols);
  v.disjoint("out", out, "A", A);
  v.disjoint("out", out, "B", B);
  if (A.rows == 0) return;

  FeatureMaps<float> maps(ctx);
  SketchProblem p;
  p.in[0] = maps.map(raw_operand(A), A.rows, o.side_a, o.seed, 0);
  p.in[1] = maps.map(raw_operand(B), B.rows, o.side_b, o.seed, 1);
  p.n = A.rows;
  p.l = out.cols;
  p.seed = o.seed;
  p.out = out.data;
  p.ldo = out.ld;
  run_sketch(ctx, p);
}

// ------------------------------------------------------------------ product_kernel_topk

detail::PairKernel pair_kernel(SideKernel k) {
  switch (k) {
    case SideKernel::Cosine:
      return detail::PairKernel::Cosine;
    case SideKernel::Rbf:
      return detail::PairKernel::Rbf;
    default:
      return detail::PairKernel::Dot;
  }
}

template <class T>
void topk_impl(Context& ctx, MatrixView<const T> Q1, MatrixView<const T> Q2, MatrixView<const T> G1,
               MatrixView<const T> G2, MatrixView<std::int64_t> indices, MatrixView<float> scores,
               const ProductTopkOptions& o) {
  const Validator v("product_kernel_topk", ctx);
  v.matrix("Q1", Q1);
  v.matrix("Q2", Q2);
  v.matrix("G1", G1);
  v.matrix("G2", G2);
  v.at_least("Q1", "cols (d1)", 1, Q1.cols);
  v.at_least("Q2", "cols (d2)", 1, Q2.cols);
  v.extent("Q2", "rows (the rows of Q1, M)", Q1.rows, Q2.rows);
  v.extent("G1", "cols (the cols of Q1, d1)", Q1.cols, G1.cols);
  v.extent("G2", "cols (the cols of Q2, d2)", Q2.cols, G2.cols);
  v.extent("G2", "rows (the rows of G1, N)", G1.rows, G2.rows);
  check_side(v, "side1", o.side1, false);
  check_side(v, "side2", o.side2, false);
  v.finite("C", o.C);
  v.precision(o.precision);
  v.matrix("indices", indices);
  v.matrix("scores", scores);
  const std::int64_t M = Q1.rows, N = G1.rows, k = indices.cols;
  v.extent("indices", "rows (the rows of Q1, M)", M, indices.rows);
  if (k < 1 || k > N)
    v.fail(Status::InvalidArgument, "k",
           "expected 1 <= k <= N (the gallery rows, " + std::to_string(N) +
               "); k is the cols of indices, got " + std::to_string(k));
  if (ctx.backend() == Backend::Cuda && k > kMaxTopkGpu)
    v.fail(Status::Unsupported, "k",
           "expected k <= " + std::to_string(kMaxTopkGpu) + " on a GPU, got " + std::to_string(k));
  if (ctx.backend() == Backend::Cuda && N >= (std::int64_t(1) << 31) - 1)
    v.fail(Status::Unsupported, "G1", "expected fewer than 2^31 - 1 gallery rows on a GPU");
  v.extent("scores", "rows (the rows of Q1, M)", M, scores.rows);
  v.extent("scores", "cols (k, the cols of indices)", k, scores.cols);
  const char* in_names[4] = {"Q1", "Q2", "G1", "G2"};
  const MatrixView<const T> ins[4] = {Q1, Q2, G1, G2};
  for (int t = 0; t < 4; ++t) {
    v.disjoint("indices", indices, in_names[t], ins[t]);
    v.disjoint("scores", scores, in_names[t], ins[t]);
  }
  v.disjoint("scores", scores, "indices", indices);
  if (M == 0) return;

  FeatureMaps<float> maps(ctx);
  TopkProblem p;
  const FuseSide* sides[2] = {&o.side1, &o.side2};
  const MatrixView<const T>* qs[2] = {&Q1, &Q2};
  const MatrixView<const T>* gs[2] = {&G1, &G2};
  for (int s = 0; s < 2; ++s) {
    detail::TopkSide& side = p.side[s];
    side.q = raw_operand(*qs[s]);
    side.g = raw_operand(*gs[s]);
    side.kind = pair_kernel(sides[s]->kernel);
    if (side.kind == detail::PairKernel::Cosine) {
      float* qi = maps.template allocate<float>(M);
      float* gi = maps.template allocate<float>(N);
      run_inv_norms<float>(ctx, side.q, M, qi);
      run_inv_norms<float>(ctx, side.g, N, gi);
      side.q_inv = qi;
      side.g_inv = gi;
    }
    if (side.kind == detail::PairKernel::Rbf) {
      const double c = 1.4426950408889634074 / (2.0 * sides[s]->sigma * sides[s]->sigma);
      const double fmax = static_cast<double>(std::numeric_limits<float>::max());
      side.rbf_c = static_cast<float>(c < fmax ? c : fmax);
    }
  }
  p.m = M;
  p.n = N;
  p.k = static_cast<int>(k);
  p.C = static_cast<float>(o.C);
  p.indices = indices.data;
  p.ldi = indices.ld;
  p.scores = scores.data;
  p.lds = scores.ld;
  run_topk(ctx, p, o.precision);
}

}  // namespace

// ------------------------------------------------------------------ public overloads

#define KFUSE_FUSE_FEATURE_OVERLOADS(T)                                                  \
  void rp_fuse(Context& ctx, const std::vector<MatrixView<const T>>& inputs,             \
               MatrixView<float> out, const RpFuseOptions& o) {                          \
    rp_impl<T>(ctx, inputs, out, o);                                                     \
  }                                                                                      \
  void cross_modal_rp(Context& ctx, Modality modality, MatrixView<const T> shared,       \
                      MatrixView<const T> expert, MatrixView<float> out,                 \
                      const CrossModalOptions& o) {                                      \
    cross_rp_impl<T>(ctx, modality, shared, expert, out, o);                             \
  }                                                                                      \
  void rff_fuse(Context& ctx, const std::vector<MatrixView<const T>>& inputs,            \
                MatrixView<float> out, const RffOptions& o) {                            \
    rff_impl<T>(ctx, inputs, out, o);                                                    \
  }                                                                                      \
  void tensor_sketch(Context& ctx, MatrixView<const T> A, MatrixView<const T> B,         \
                     MatrixView<float> out, const TensorSketchOptions& o) {              \
    sketch_impl<T>(ctx, A, B, out, o);                                                   \
  }                                                                                      \
  void product_kernel_topk(Context& ctx, MatrixView<const T> Q1, MatrixView<const T> Q2, \
                           MatrixView<const T> G1, MatrixView<const T> G2,               \
                           MatrixView<std::int64_t> indices, MatrixView<float> scores,   \
                           const ProductTopkOptions& o) {                                \
    topk_impl<T>(ctx, Q1, Q2, G1, G2, indices, scores, o);                               \
  }

#define KFUSE_FUSE_BACKWARD_OVERLOADS(T)                                                           \
  void rp_fuse_backward(Context& ctx, const std::vector<MatrixView<const T>>& inputs,              \
                        MatrixView<const float> grad_out,                                          \
                        const std::vector<MatrixView<float>>& grads, const RpFuseOptions& o) {     \
    rp_backward_impl<T>(ctx, inputs, grad_out, grads, o);                                          \
  }                                                                                                \
  void kron_fuse_backward(Context& ctx, const std::vector<MatrixView<const T>>& inputs,            \
                          MatrixView<const float> grad_out,                                        \
                          const std::vector<MatrixView<float>>& grads, const KronFuseOptions& o) { \
    kron_backward_impl<T, float>(ctx, inputs, grad_out, grads, o);                                 \
  }

KFUSE_FUSE_BACKWARD_OVERLOADS(float)
KFUSE_FUSE_BACKWARD_OVERLOADS(bf16)
KFUSE_FUSE_BACKWARD_OVERLOADS(f16)

void kron_fuse_backward(Context& ctx, const std::vector<MatrixView<const double>>& inputs,
                        MatrixView<const double> grad_out,
                        const std::vector<MatrixView<double>>& grads, const KronFuseOptions& o) {
  kron_backward_impl<double, double>(ctx, inputs, grad_out, grads, o);
}

KFUSE_FUSE_FEATURE_OVERLOADS(float)
KFUSE_FUSE_FEATURE_OVERLOADS(bf16)
KFUSE_FUSE_FEATURE_OVERLOADS(f16)

#define KFUSE_FUSE_KRON_OVERLOADS(T, O)                                                           \
  void kron_fuse(Context& ctx, const std::vector<MatrixView<const T>>& inputs, MatrixView<O> out, \
                 const KronFuseOptions& o) {                                                      \
    kron_impl<T, O>(ctx, inputs, out, o);                                                         \
  }                                                                                               \
  void cross_modal_kron(Context& ctx, Modality modality, MatrixView<const T> shared,              \
                        MatrixView<const T> expert, MatrixView<O> out,                            \
                        const CrossModalOptions& o) {                                             \
    cross_kron_impl<T, O>(ctx, modality, shared, expert, out, o);                                 \
  }

KFUSE_FUSE_KRON_OVERLOADS(float, float)
KFUSE_FUSE_KRON_OVERLOADS(double, double)
KFUSE_FUSE_KRON_OVERLOADS(bf16, float)
KFUSE_FUSE_KRON_OVERLOADS(f16, float)

void rp_projection_matrix(Context& ctx, int input, MatrixView<float> out, const RpFuseOptions& o) {
  const Validator v("rp_projection_matrix", ctx);
  if (input < 0 || input >= kMaxFuseInputs)
    v.fail(Status::InvalidArgument, "input",
           "expected 0 <= input < " + std::to_string(kMaxFuseInputs) + ", got " +
               std::to_string(input));
  v.enumeration("distribution", o.distribution, RpDistribution::Rademacher,
                "Uniform, Gaussian or Rademacher");
  v.matrix("out", out);
  if (out.empty()) return;
  RandomMatrix r = projection_matrix(o.seed, input, o.distribution, out.rows, out.cols);
  r.ld = out.ld;
  run_random(ctx, r, out.data);
}

}  // namespace kfuse
