// The C API of the contrastive loss family: descriptors to views, one dispatch on
// the input dtype (and on the gradients' dtype), then the C++ call.
#include "kfuse/kfuse_contrastive.h"

#include <string>
#include <type_traits>

#include "kfuse/contrastive.hpp"
#include "src/core/c_api_util.hpp"

using namespace kfuse::c_api;

namespace {

using kfuse::bf16;
using kfuse::f16;

template <class T>
kfuse::VectorView<T> optional_f32(const kfuse_vector_t* v, const char* op, const char* argument) {
  return optional_vector<T>(v, KFUSE_F32, op, argument);
}

kfuse::LossScalar scalar(const kfuse_loss_scalar_t& s, const char* op, const char* argument) {
  return {s.value, optional_vector<const float>(&s.in_memory, KFUSE_F32, op, argument)};
}

kfuse::LossScalar grad_loss_of(const kfuse_loss_scalar_t* s, const char* op) {
  return s == nullptr ? kfuse::LossScalar(1.0) : scalar(*s, op, "grad_loss");
}

kfuse::VectorView<const std::int64_t> labels_of(const kfuse_vector_t* labels, const char* op) {
  return optional_vector<const std::int64_t>(labels, KFUSE_I64, op, "labels");
}

kfuse::ContrastiveWorkspace workspace_of(void* data, size_t bytes) {
  return {data, bytes};
}

kfuse::ClipLossOptions clip_options(const kfuse_clip_options_t& o, const char* op) {
  kfuse::ClipLossOptions c;
  c.direction = enum_of<kfuse::ClipDirection>(o.direction, op, "direction");
  c.logit_scale = scalar(o.logit_scale, op, "logit_scale");
  c.bias = scalar(o.bias, op, "bias");
  c.label_smoothing = o.label_smoothing;
  c.precision = precision_of(o.precision, op);
  c.deterministic = o.deterministic != 0;
  c.check_device_labels = o.check_device_labels != 0;
  c.workspace = workspace_of(o.workspace, o.workspace_bytes);
  return c;
}

kfuse::SiglipLossOptions siglip_options(const kfuse_siglip_options_t& o, const char* op) {
  kfuse::SiglipLossOptions s;
  s.logit_scale = scalar(o.logit_scale, op, "logit_scale");
  s.bias = scalar(o.bias, op, "bias");
  s.precision = precision_of(o.precision, op);
  s.deterministic = o.deterministic != 0;
  s.check_device_labels = o.check_device_labels != 0;
  s.workspace = workspace_of(o.workspace, o.workspace_bytes);
  return s;
}

kfuse::ClipForwardOutputs clip_outputs(const kfuse_clip_outputs_t* out, const char* op) {
  if (out == nullptr) fail(kfuse::Status::InvalidArgument, op, "out", "is null");
  kfuse::ClipForwardOutputs o;
  o.loss = out->loss == nullptr ? kfuse::VectorView<float>{}
                                : vector<float>(out->loss, KFUSE_F32, op, "loss");
  o.row_losses = optional_f32<float>(out->row_losses, op, "row_losses");
  o.col_losses = optional_f32<float>(out->col_losses, op, "col_losses");
  o.lse_rows = optional_f32<float>(out->lse_rows, op, "lse_rows");
  o.lse_cols = optional_f32<float>(out->lse_cols, op, "lse_cols");
  return o;
}

// The gradients' element type: that of dA (or dB), A's dtype or KFUSE_F32.
kfuse_dtype_t grad_dtype(const kfuse_contrastive_grads_t* g, kfuse_dtype_t input, const char* op) {
  const kfuse_matrix_t* first = g->dA != nullptr ? g->dA : g->dB;
  if (first == nullptr) return input;
  const char* name = g->dA != nullptr ? "dA" : "dB";
  const kfuse::DType dtype = checked_dtype(first->dtype, op, name);
  if (dtype != static_cast<kfuse::DType>(input) && dtype != kfuse::DType::F32)
    fail(kfuse::Status::InvalidArgument, op, name,
         std::string("expected the dtype of A or f32, got ") + kfuse::dtype_name(dtype));
  return static_cast<kfuse_dtype_t>(dtype);
}

template <class G>
kfuse::ContrastiveGradients<G> gradients(const kfuse_contrastive_grads_t* g, kfuse_dtype_t dtype,
                                         const char* op) {
  kfuse::ContrastiveGradients<G> out;
  out.dA = optional_matrix<G>(g->dA, dtype, op, "dA");
  out.dB = optional_matrix<G>(g->dB, dtype, op, "dB");
  out.dt = optional_f32<float>(g->dt, op, "dt");
  out.db = optional_f32<float>(g->db, op, "db");
  return out;
}

// Calls body(T{}, G{}) for the input and gradient element types.
template <class Body>
void dispatch_grads(const kfuse_matrix_t* A, const kfuse_contrastive_grads_t* grads, const char* op,
                    Body&& body) {
  if (grads == nullptr) fail(kfuse::Status::InvalidArgument, op, "grads", "is null");
  dispatch_matrix<float, bf16, f16>(A, op, "A", [&](auto zero) {
    using T = decltype(zero);
    const kfuse_dtype_t gd = grad_dtype(grads, A->dtype, op);
    if (gd == KFUSE_F32) return body(zero, float{});
    if constexpr (!std::is_same_v<T, float>) return body(zero, T{});
  });
}

}  // namespace

extern "C" {

kfuse_loss_scalar_t kfuse_loss_scalar(double value) {
  kfuse_loss_scalar_t s;
  s.value = value;
  s.in_memory = kfuse_vector_t{nullptr, 0, KFUSE_F32, KFUSE_HOST};
  return s;
}

kfuse_clip_options_t kfuse_clip_options_default(void) {
  kfuse_clip_options_t o;
  o.direction = KFUSE_CLIP_BOTH;
  o.logit_scale = kfuse_loss_scalar(0.0);
  o.bias = kfuse_loss_scalar(0.0);
  o.label_smoothing = 0.0;
  o.precision = KFUSE_PRECISION_EXACT;
  o.deterministic = 1;
  o.check_device_labels = 1;
  o.workspace = nullptr;
  o.workspace_bytes = 0;
  return o;
}

kfuse_siglip_options_t kfuse_siglip_options_default(void) {
  const kfuse::SiglipLossOptions d;
  kfuse_siglip_options_t o;
  o.logit_scale = kfuse_loss_scalar(d.logit_scale.value);
  o.bias = kfuse_loss_scalar(d.bias.value);
  o.precision = KFUSE_PRECISION_EXACT;
  o.deterministic = 1;
  o.check_device_labels = 1;
  o.workspace = nullptr;
  o.workspace_bytes = 0;
  return o;
}

kfuse_status_t kfuse_clip_loss_forward(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                       const kfuse_matrix_t* B, const kfuse_vector_t* labels,
                                       const kfuse_clip_outputs_t* out,
                                       const kfuse_clip_options_t* options) {
  static const char* op = "kfuse_clip_loss_forward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto o = clip_options(options_of(options, op), op);
    dispatch_matrix<float, bf16, f16>(A, op, "A", [&](auto zero) {
      using T = decltype(zero);
      kfuse::clip_loss_forward(c, matrix<const T>(A, A->dtype, op, "A"),
                               matrix<const T>(B, A->dtype, op, "B"), labels_of(labels, op),
                               clip_outputs(out, op), o);
    });
  });
}

kfuse_status_t kfuse_clip_loss_backward(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                        const kfuse_matrix_t* B, const kfuse_vector_t* labels,
                                        const kfuse_vector_t* lse_rows,
                                        const kfuse_vector_t* lse_cols,
                                        const kfuse_loss_scalar_t* grad_loss,
                                        const kfuse_contrastive_grads_t* grads,
                                        const kfuse_clip_options_t* options) {
  static const char* op = "kfuse_clip_loss_backward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto o = clip_options(options_of(options, op), op);
    dispatch_grads(A, grads, op, [&](auto zero, auto gzero) {
      using T = decltype(zero);
      using G = decltype(gzero);
      const kfuse::ClipSavedStats saved{optional_f32<const float>(lse_rows, op, "lse_rows"),
                                        optional_f32<const float>(lse_cols, op, "lse_cols")};
      kfuse::clip_loss_backward(
          c, matrix<const T>(A, A->dtype, op, "A"), matrix<const T>(B, A->dtype, op, "B"),
          labels_of(labels, op), saved, grad_loss_of(grad_loss, op),
          gradients<G>(grads, kfuse::dtype_of<G>::value == kfuse::DType::F32 ? KFUSE_F32 : A->dtype,
                       op),
          o);
    });
  });
}

kfuse_status_t kfuse_clip_loss_forward_backward(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                                const kfuse_matrix_t* B,
                                                const kfuse_vector_t* labels,
                                                const kfuse_clip_outputs_t* out,
                                                const kfuse_loss_scalar_t* grad_loss,
                                                const kfuse_contrastive_grads_t* grads,
                                                const kfuse_clip_options_t* options) {
  static const char* op = "kfuse_clip_loss_forward_backward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto o = clip_options(options_of(options, op), op);
    dispatch_grads(A, grads, op, [&](auto zero, auto gzero) {
      using T = decltype(zero);
      using G = decltype(gzero);
      kfuse::clip_loss_forward_backward(
          c, matrix<const T>(A, A->dtype, op, "A"), matrix<const T>(B, A->dtype, op, "B"),
          labels_of(labels, op), clip_outputs(out, op), grad_loss_of(grad_loss, op),
          gradients<G>(grads, kfuse::dtype_of<G>::value == kfuse::DType::F32 ? KFUSE_F32 : A->dtype,
                       op),
          o);
    });
  });
}

kfuse_status_t kfuse_clip_loss_workspace_bytes(kfuse_context_t ctx, int64_t Na, int64_t Nb,
                                               int64_t d, kfuse_contrastive_pass_t pass,
                                               const kfuse_clip_options_t* options, size_t* bytes) {
  static const char* op = "kfuse_clip_loss_workspace_bytes";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto o = clip_options(options_of(options, op), op);
    if (bytes == nullptr) fail(kfuse::Status::InvalidArgument, op, "bytes", "is null");
    *bytes = kfuse::clip_loss_workspace_bytes(c, Na, Nb, d,
                                              enum_of<kfuse::ContrastivePass>(pass, op, "pass"), o);
  });
}

kfuse_status_t kfuse_siglip_loss_forward(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                         const kfuse_matrix_t* B, const kfuse_vector_t* labels,
                                         const kfuse_vector_t* loss,
                                         const kfuse_vector_t* row_losses,
                                         const kfuse_siglip_options_t* options) {
  static const char* op = "kfuse_siglip_loss_forward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto o = siglip_options(options_of(options, op), op);
    dispatch_matrix<float, bf16, f16>(A, op, "A", [&](auto zero) {
      using T = decltype(zero);
      kfuse::siglip_loss_forward(c, matrix<const T>(A, A->dtype, op, "A"),
                                 matrix<const T>(B, A->dtype, op, "B"), labels_of(labels, op),
                                 optional_f32<float>(loss, op, "loss"),
                                 optional_f32<float>(row_losses, op, "row_losses"), o);
    });
  });
}

kfuse_status_t kfuse_siglip_loss_backward(kfuse_context_t ctx, const kfuse_matrix_t* A,
                                          const kfuse_matrix_t* B, const kfuse_vector_t* labels,
                                          const kfuse_loss_scalar_t* grad_loss,
                                          const kfuse_contrastive_grads_t* grads,
                                          const kfuse_siglip_options_t* options) {
  static const char* op = "kfuse_siglip_loss_backward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto o = siglip_options(options_of(options, op), op);
    dispatch_grads(A, grads, op, [&](auto zero, auto gzero) {
      using T = decltype(zero);
      using G = decltype(gzero);
      kfuse::siglip_loss_backward(
          c, matrix<const T>(A, A->dtype, op, "A"), matrix<const T>(B, A->dtype, op, "B"),
          labels_of(labels, op), grad_loss_of(grad_loss, op),
          gradients<G>(grads, kfuse::dtype_of<G>::value == kfuse::DType::F32 ? KFUSE_F32 : A->dtype,
                       op),
          o);
    });
  });
}

kfuse_status_t kfuse_siglip_loss_forward_backward(
    kfuse_context_t ctx, const kfuse_matrix_t* A, const kfuse_matrix_t* B,
    const kfuse_vector_t* labels, const kfuse_vector_t* loss, const kfuse_vector_t* row_losses,
    const kfuse_loss_scalar_t* grad_loss, const kfuse_contrastive_grads_t* grads,
    const kfuse_siglip_options_t* options) {
  static const char* op = "kfuse_siglip_loss_forward_backward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto o = siglip_options(options_of(options, op), op);
    dispatch_grads(A, grads, op, [&](auto zero, auto gzero) {
      using T = decltype(zero);
      using G = decltype(gzero);
      kfuse::siglip_loss_forward_backward(
          c, matrix<const T>(A, A->dtype, op, "A"), matrix<const T>(B, A->dtype, op, "B"),
          labels_of(labels, op), optional_f32<float>(loss, op, "loss"),
          optional_f32<float>(row_losses, op, "row_losses"), grad_loss_of(grad_loss, op),
          gradients<G>(grads, kfuse::dtype_of<G>::value == kfuse::DType::F32 ? KFUSE_F32 : A->dtype,
                       op),
          o);
    });
  });
}

kfuse_status_t kfuse_siglip_loss_workspace_bytes(kfuse_context_t ctx, int64_t Na, int64_t Nb,
                                                 int64_t d, kfuse_contrastive_pass_t pass,
                                                 const kfuse_siglip_options_t* options,
                                                 size_t* bytes) {
  static const char* op = "kfuse_siglip_loss_workspace_bytes";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto o = siglip_options(options_of(options, op), op);
    if (bytes == nullptr) fail(kfuse::Status::InvalidArgument, op, "bytes", "is null");
    *bytes = kfuse::siglip_loss_workspace_bytes(
        c, Na, Nb, d, enum_of<kfuse::ContrastivePass>(pass, op, "pass"), o);
  });
}

}  // extern "C"
