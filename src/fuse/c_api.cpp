// The C API of the fusion family.
#include <cstdint>
#include <string>
#include <vector>

#include "kfuse/kfuse_fuse.h"
#include "src/core/c_api_util.hpp"

using namespace kfuse::c_api;

namespace {

// The output type of an input type: double for double, float otherwise.
template <class T>
using out_of = std::conditional_t<std::is_same_v<T, double>, double, float>;
template <class T>
constexpr kfuse_dtype_t out_dtype = std::is_same_v<T, double> ? KFUSE_F64 : KFUSE_F32;

template <class T>
std::vector<kfuse::MatrixView<const T>> input_views(const kfuse_matrix_t* inputs, int count,
                                                    const char* op) {
  if (count < 0 || count > KFUSE_MAX_FUSE_INPUTS)
    fail(kfuse::Status::InvalidArgument, op, "inputs",
         "expected 0 to " + std::to_string(KFUSE_MAX_FUSE_INPUTS) + " input matrices, got " +
             std::to_string(count));
  static const char* const names[KFUSE_MAX_FUSE_INPUTS] = {"inputs[0]", "inputs[1]", "inputs[2]",
                                                           "inputs[3]"};
  std::vector<kfuse::MatrixView<const T>> views;
  for (int j = 0; j < count; ++j)
    views.push_back(matrix<const T>(&inputs[j], inputs[0].dtype, op, names[j]));
  return views;
}

// The gradients of a backward, one per input, of the output type O.
template <class O>
std::vector<kfuse::MatrixView<O>> grad_views(const kfuse_matrix_t* grads, int count,
                                             kfuse_dtype_t dtype, const char* op) {
  static const char* const names[KFUSE_MAX_FUSE_INPUTS] = {"grads[0]", "grads[1]", "grads[2]",
                                                           "grads[3]"};
  if (grads == nullptr) fail(kfuse::Status::InvalidArgument, op, "grads", "is null");
  std::vector<kfuse::MatrixView<O>> views;
  for (int j = 0; j < count && j < KFUSE_MAX_FUSE_INPUTS; ++j)
    views.push_back(matrix<O>(&grads[j], dtype, op, names[j]));
  return views;
}

// `name`: the side as the C++ validation names it ("sides[1]", "shared", ...).
kfuse::FuseSide side_of(const kfuse_fuse_side_t& s, const std::string& name, const char* op) {
  const std::string argument = name + ".kernel";
  return kfuse::FuseSide{enum_of<kfuse::SideKernel>(s.kernel, op, argument.c_str()), s.sigma,
                         s.rff_features};
}

std::vector<kfuse::FuseSide> sides_of(int side_count, const kfuse_fuse_side_t* sides,
                                      const char* op) {
  if (side_count < 0 || side_count > KFUSE_MAX_FUSE_INPUTS)
    fail(kfuse::Status::InvalidArgument, op, "side_count",
         "expected 0 to " + std::to_string(KFUSE_MAX_FUSE_INPUTS) + ", got " +
             std::to_string(side_count));
  std::vector<kfuse::FuseSide> out;
  for (int j = 0; j < side_count; ++j)
    out.push_back(side_of(sides[j], "sides[" + std::to_string(j) + "]", op));
  return out;
}

kfuse::RpFuseOptions rp_options(const kfuse_rp_fuse_options_t& o, const char* op) {
  kfuse::RpFuseOptions r;
  r.sides = sides_of(o.side_count, o.sides, op);
  r.seed = o.seed;
  r.distribution = enum_of<kfuse::RpDistribution>(o.distribution, op, "distribution");
  r.scaling = enum_of<kfuse::RpScaling>(o.scaling, op, "scaling");
  r.precision = precision_of(o.precision, op);
  return r;
}

kfuse::CrossModalOptions cross_options(const kfuse_cross_modal_options_t& o, const char* op) {
  kfuse::CrossModalOptions r;
  r.C = o.C;
  r.image_dim = o.image_dim;
  r.text_dim = o.text_dim;
  r.shared = side_of(o.shared, "shared", op);
  r.image_expert = side_of(o.image_expert, "image_expert", op);
  r.text_expert = side_of(o.text_expert, "text_expert", op);
  r.seed = o.seed;
  r.distribution = enum_of<kfuse::RpDistribution>(o.distribution, op, "distribution");
  r.scaling = enum_of<kfuse::RpScaling>(o.scaling, op, "scaling");
  r.precision = precision_of(o.precision, op);
  return r;
}

kfuse_fuse_side_t default_side() {
  kfuse_fuse_side_t s;
  s.kernel = KFUSE_SIDE_LINEAR;
  s.sigma = 1.0;
  s.rff_features = 0;
  return s;
}

}  // namespace

extern "C" {

kfuse_fuse_side_t kfuse_fuse_side_default(void) {
  return default_side();
}

kfuse_kron_fuse_options_t kfuse_kron_fuse_options_default(void) {
  kfuse_kron_fuse_options_t o;
  o.side_count = 0;
  for (auto& s : o.sides)
    s = default_side();
  o.seed = 0;
  return o;
}

kfuse_rp_fuse_options_t kfuse_rp_fuse_options_default(void) {
  kfuse_rp_fuse_options_t o;
  o.side_count = 0;
  for (auto& s : o.sides)
    s = default_side();
  o.seed = 0;
  o.distribution = KFUSE_RP_UNIFORM;
  o.scaling = KFUSE_RP_UNBIASED;
  o.precision = KFUSE_PRECISION_EXACT;
  return o;
}

kfuse_cross_modal_options_t kfuse_cross_modal_options_default(void) {
  kfuse_cross_modal_options_t o;
  o.C = 1.0;
  o.image_dim = 0;
  o.text_dim = 0;
  o.shared = o.image_expert = o.text_expert = default_side();
  o.seed = 0;
  o.distribution = KFUSE_RP_UNIFORM;
  o.scaling = KFUSE_RP_UNBIASED;
  o.precision = KFUSE_PRECISION_EXACT;
  return o;
}

kfuse_rff_options_t kfuse_rff_options_default(void) {
  kfuse_rff_options_t o;
  o.sigma_count = 0;
  for (auto& s : o.sigmas)
    s = 1.0;
  o.seed = 0;
  return o;
}

kfuse_tensor_sketch_options_t kfuse_tensor_sketch_options_default(void) {
  kfuse_tensor_sketch_options_t o;
  o.side_a = o.side_b = default_side();
  o.seed = 0;
  return o;
}

kfuse_product_topk_options_t kfuse_product_topk_options_default(void) {
  kfuse_product_topk_options_t o;
  o.side1 = o.side2 = default_side();
  o.C = 0.0;
  o.precision = KFUSE_PRECISION_EXACT;
  return o;
}

kfuse_status_t kfuse_kron_fuse(kfuse_context_t ctx, const kfuse_matrix_t* inputs, int count,
                               const kfuse_matrix_t* out,
                               const kfuse_kron_fuse_options_t* options) {
  static const char* op = "kfuse_kron_fuse";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    if (count < 1) fail(kfuse::Status::InvalidArgument, op, "inputs", "expected >= 1 input");
    dispatch_matrix<float, kfuse::bf16, kfuse::f16, double>(inputs, op, "inputs", [&](auto zero) {
      using T = decltype(zero);
      using O = out_of<T>;
      kfuse::KronFuseOptions k;
      k.sides = sides_of(o.side_count, o.sides, op);
      k.seed = o.seed;
      kfuse::kron_fuse(c, input_views<T>(inputs, count, op),
                       matrix<O>(out, out_dtype<T>, op, "out"), k);
    });
  });
}

kfuse_status_t kfuse_rp_fuse(kfuse_context_t ctx, const kfuse_matrix_t* inputs, int count,
                             const kfuse_matrix_t* out, const kfuse_rp_fuse_options_t* options) {
  static const char* op = "kfuse_rp_fuse";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    if (count < 1) fail(kfuse::Status::InvalidArgument, op, "inputs", "expected >= 1 input");
    dispatch_matrix<float, kfuse::bf16, kfuse::f16>(inputs, op, "inputs", [&](auto zero) {
      using T = decltype(zero);
      kfuse::rp_fuse(c, input_views<T>(inputs, count, op), matrix<float>(out, KFUSE_F32, op, "out"),
                     rp_options(o, op));
    });
  });
}

kfuse_status_t kfuse_kron_fuse_backward(kfuse_context_t ctx, const kfuse_matrix_t* inputs,
                                        int count, const kfuse_matrix_t* grad_out,
                                        const kfuse_matrix_t* grads,
                                        const kfuse_kron_fuse_options_t* options) {
  static const char* op = "kfuse_kron_fuse_backward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    if (count < 1) fail(kfuse::Status::InvalidArgument, op, "inputs", "expected >= 1 input");
    dispatch_matrix<float, kfuse::bf16, kfuse::f16, double>(inputs, op, "inputs", [&](auto zero) {
      using T = decltype(zero);
      using O = out_of<T>;
      kfuse::KronFuseOptions k;
      k.sides = sides_of(o.side_count, o.sides, op);
      k.seed = o.seed;
      kfuse::kron_fuse_backward(c, input_views<T>(inputs, count, op),
                                matrix<const O>(grad_out, out_dtype<T>, op, "grad_out"),
                                grad_views<O>(grads, count, out_dtype<T>, op), k);
    });
  });
}

kfuse_status_t kfuse_rp_fuse_backward(kfuse_context_t ctx, const kfuse_matrix_t* inputs, int count,
                                      const kfuse_matrix_t* grad_out, const kfuse_matrix_t* grads,
                                      const kfuse_rp_fuse_options_t* options) {
  static const char* op = "kfuse_rp_fuse_backward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    if (count < 1) fail(kfuse::Status::InvalidArgument, op, "inputs", "expected >= 1 input");
    dispatch_matrix<float, kfuse::bf16, kfuse::f16>(inputs, op, "inputs", [&](auto zero) {
      using T = decltype(zero);
      kfuse::rp_fuse_backward(c, input_views<T>(inputs, count, op),
                              matrix<const float>(grad_out, KFUSE_F32, op, "grad_out"),
                              grad_views<float>(grads, count, KFUSE_F32, op), rp_options(o, op));
    });
  });
}

kfuse_status_t kfuse_rp_projection_matrix(kfuse_context_t ctx, int input, const kfuse_matrix_t* out,
                                          const kfuse_rp_fuse_options_t* options) {
  static const char* op = "kfuse_rp_projection_matrix";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    kfuse::rp_projection_matrix(c, input, matrix<float>(out, KFUSE_F32, op, "out"),
                                rp_options(o, op));
  });
}

int64_t kfuse_cross_modal_width(const kfuse_cross_modal_options_t* options, int64_t shared_dim) {
  int64_t width = 0;
  // 0 (and kfuse_last_error) for options naming an unknown enumerator.
  guarded([&] {
    if (options != nullptr)
      width =
          kfuse::cross_modal_width(cross_options(*options, "kfuse_cross_modal_width"), shared_dim);
  });
  return width;
}

kfuse_status_t kfuse_cross_modal_kron(kfuse_context_t ctx, kfuse_modality_t modality,
                                      const kfuse_matrix_t* shared, const kfuse_matrix_t* expert,
                                      const kfuse_matrix_t* out,
                                      const kfuse_cross_modal_options_t* options) {
  static const char* op = "kfuse_cross_modal_kron";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    dispatch_matrix<float, kfuse::bf16, kfuse::f16, double>(shared, op, "shared", [&](auto zero) {
      using T = decltype(zero);
      using O = out_of<T>;
      kfuse::cross_modal_kron(c, enum_of<kfuse::Modality>(modality, op, "modality"),
                              matrix<const T>(shared, shared->dtype, op, "shared"),
                              matrix<const T>(expert, shared->dtype, op, "expert"),
                              matrix<O>(out, out_dtype<T>, op, "out"), cross_options(o, op));
    });
  });
}

kfuse_status_t kfuse_cross_modal_rp(kfuse_context_t ctx, kfuse_modality_t modality,
                                    const kfuse_matrix_t* shared, const kfuse_matrix_t* expert,
                                    const kfuse_matrix_t* out,
                                    const kfuse_cross_modal_options_t* options) {
  static const char* op = "kfuse_cross_modal_rp";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    dispatch_matrix<float, kfuse::bf16, kfuse::f16>(shared, op, "shared", [&](auto zero) {
      using T = decltype(zero);
      kfuse::cross_modal_rp(c, enum_of<kfuse::Modality>(modality, op, "modality"),
                            matrix<const T>(shared, shared->dtype, op, "shared"),
                            matrix<const T>(expert, shared->dtype, op, "expert"),
                            matrix<float>(out, KFUSE_F32, op, "out"), cross_options(o, op));
    });
  });
}

kfuse_status_t kfuse_rff_fuse(kfuse_context_t ctx, const kfuse_matrix_t* inputs, int count,
                              const kfuse_matrix_t* out, const kfuse_rff_options_t* options) {
  static const char* op = "kfuse_rff_fuse";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    if (count < 1) fail(kfuse::Status::InvalidArgument, op, "inputs", "expected >= 1 input");
    if (o.sigma_count < 0 || o.sigma_count > KFUSE_MAX_FUSE_INPUTS)
      fail(kfuse::Status::InvalidArgument, op, "sigma_count",
           "expected 0 to " + std::to_string(KFUSE_MAX_FUSE_INPUTS) + ", got " +
               std::to_string(o.sigma_count));
    dispatch_matrix<float, kfuse::bf16, kfuse::f16>(inputs, op, "inputs", [&](auto zero) {
      using T = decltype(zero);
      kfuse::RffOptions r;
      r.sigmas.assign(o.sigmas, o.sigmas + o.sigma_count);
      r.seed = o.seed;
      kfuse::rff_fuse(c, input_views<T>(inputs, count, op),
                      matrix<float>(out, KFUSE_F32, op, "out"), r);
    });
  });
}

kfuse_status_t kfuse_tensor_sketch(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                   const kfuse_matrix_t* B, const kfuse_matrix_t* out,
                                   const kfuse_tensor_sketch_options_t* options) {
  static const char* op = "kfuse_tensor_sketch";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    dispatch_matrix<float, kfuse::bf16, kfuse::f16>(A, op, "A", [&](auto zero) {
      using T = decltype(zero);
      kfuse::TensorSketchOptions t;
      t.side_a = side_of(o.side_a, "side_a", op);
      t.side_b = side_of(o.side_b, "side_b", op);
      t.seed = o.seed;
      kfuse::tensor_sketch(c, matrix<const T>(A, A->dtype, op, "A"),
                           matrix<const T>(B, A->dtype, op, "B"),
                           matrix<float>(out, KFUSE_F32, op, "out"), t);
    });
  });
}

kfuse_status_t kfuse_product_kernel_topk(kfuse_context_t ctx, const kfuse_matrix_t* Q1,
                                         const kfuse_matrix_t* Q2, const kfuse_matrix_t* G1,
                                         const kfuse_matrix_t* G2, const kfuse_matrix_t* indices,
                                         const kfuse_matrix_t* scores,
                                         const kfuse_product_topk_options_t* options) {
  static const char* op = "kfuse_product_kernel_topk";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    dispatch_matrix<float, kfuse::bf16, kfuse::f16>(Q1, op, "Q1", [&](auto zero) {
      using T = decltype(zero);
      const kfuse_dtype_t dt = Q1->dtype;  // checked by dispatch_matrix
      kfuse::ProductTopkOptions t;
      t.side1 = side_of(o.side1, "side1", op);
      t.side2 = side_of(o.side2, "side2", op);
      t.C = o.C;
      t.precision = precision_of(o.precision, op);
      kfuse::product_kernel_topk(
          c, matrix<const T>(Q1, dt, op, "Q1"), matrix<const T>(Q2, dt, op, "Q2"),
          matrix<const T>(G1, dt, op, "G1"), matrix<const T>(G2, dt, op, "G2"),
          matrix<std::int64_t>(indices, KFUSE_I64, op, "indices"),
          matrix<float>(scores, KFUSE_F32, op, "scores"), t);
    });
  });
}

}  // extern "C"
