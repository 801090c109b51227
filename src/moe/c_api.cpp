// The C API of the mixture-of-experts family: descriptors to views, then the C++ API.
#include "kfuse/kfuse_moe.h"

#include <string>

#include "src/core/c_api_util.hpp"

using namespace kfuse::c_api;

namespace {

kfuse::MoePlanOptions plan_options(const kfuse_moe_plan_options_t& o) {
  kfuse::MoePlanOptions out;
  out.pad_to = o.pad_to;
  out.capacity = o.capacity;
  out.check_device_ids = o.check_device_ids != 0;
  return out;
}

// The C++ plan over the C plan's storage. moe_plan_views checks the layout (and null
// storage); the storage_size the caller allocated by must also be the one its extents
// give: the arrays are carved from the storage by the extents, so extents changed after
// kfuse_moe_plan_layout would carve arrays past the storage's end.
kfuse::MoePlan plan_of(const kfuse_moe_plan_t* p, const char* op) {
  if (p == nullptr) fail(kfuse::Status::InvalidArgument, op, "plan", "is null");
  kfuse::MoePlanLayout layout;
  layout.tokens = p->layout.tokens;
  layout.top_k = p->layout.top_k;
  layout.experts = p->layout.experts;
  layout.options = plan_options(p->layout.options);
  layout.rows = p->layout.rows;
  const kfuse::Memory memory = memory_of(p->memory, op, "plan");
  kfuse::MoePlan plan;
  try {
    plan = kfuse::moe_plan_views(layout, p->storage, memory);
  } catch (const kfuse::Error& e) {  // the C caller's argument is the plan
    fail(e.status(), op, "plan", e.what());
  }
  if (p->layout.storage_size != layout.storage_size())
    fail(kfuse::Status::InvalidArgument, op, "plan",
         "layout.storage_size " + std::to_string(p->layout.storage_size) +
             " is not that of the layout's extents (" + std::to_string(layout.storage_size()) +
             "): describe the plan with kfuse_moe_plan_layout");
  return plan;
}

// The grouped GEMM and its fused-gather twin share one shape.
template <bool Gather>
kfuse_status_t grouped(const char* op, const char* x_name, kfuse_context_t ctx,
                       const kfuse_moe_plan_t* plan, const kfuse_matrix_t* X,
                       const kfuse_matrix_t* W, const kfuse_matrix_t* Yp, int transpose_w) {
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const kfuse::MoePlan p = plan_of(plan, op);
    kfuse::MoeGemmOptions o;
    o.transpose_w = transpose_w != 0;
    dispatch_matrix<float, kfuse::bf16>(X, op, x_name, [&](auto zero) {
      using T = decltype(zero);
      const kfuse_dtype_t dt = X->dtype;
      const auto x = matrix<const T>(X, dt, op, x_name);
      const auto w = matrix<const T>(W, dt, op, "W");
      const auto y = matrix<T>(Yp, dt, op, "Yp");
      if (Gather)
        kfuse::moe_gather_gemm(c, p, x, w, y, o);
      else
        kfuse::moe_grouped_gemm(c, p, x, w, y, o);
    });
  });
}

}  // namespace

extern "C" {

kfuse_router_options_t kfuse_router_options_default(void) {
  return {KFUSE_ROUTER_SOFTMAX_TOPK, 0};
}

kfuse_moe_plan_options_t kfuse_moe_plan_options_default(void) {
  return {1, 0, 0};
}

kfuse_status_t kfuse_moe_router_topk(kfuse_context_t ctx, const kfuse_matrix_t* logits,
                                     const kfuse_matrix_t* ids, const kfuse_matrix_t* gates,
                                     const kfuse_router_options_t* options) {
  static const char* op = "kfuse_moe_router_topk";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const auto& o = options_of(options, op);
    kfuse::RouterOptions ro;
    ro.mode = enum_of<kfuse::RouterMode>(o.mode, op, "mode");
    ro.renormalize = o.renormalize != 0;
    dispatch_matrix<float, kfuse::bf16>(logits, op, "logits", [&](auto zero) {
      using L = decltype(zero);
      kfuse::moe_router_topk(c, matrix<const L>(logits, logits->dtype, op, "logits"),
                             matrix<std::int32_t>(ids, KFUSE_I32, op, "ids"),
                             matrix<float>(gates, KFUSE_F32, op, "gates"), ro);
    });
  });
}

kfuse_status_t kfuse_moe_plan_layout(int64_t tokens, int64_t top_k, int64_t experts,
                                     const kfuse_moe_plan_options_t* options,
                                     kfuse_moe_plan_layout_t* out) {
  static const char* op = "kfuse_moe_plan_layout";
  return guarded([&] {
    if (out == nullptr) fail(kfuse::Status::InvalidArgument, op, "out", "is null");
    const kfuse_moe_plan_options_t o = options ? *options : kfuse_moe_plan_options_default();
    const kfuse::MoePlanLayout L = kfuse::moe_plan_layout(tokens, top_k, experts, plan_options(o));
    *out = {L.tokens, L.top_k, L.experts, o, L.rows, L.storage_size()};
  });
}

kfuse_status_t kfuse_moe_plan(kfuse_context_t ctx, const kfuse_matrix_t* ids,
                              const kfuse_moe_plan_t* plan, int32_t* host_counts) {
  static const char* op = "kfuse_moe_plan";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const kfuse::MoePlan p = plan_of(plan, op);
    kfuse::VectorView<std::int32_t> counts;
    if (host_counts != nullptr) counts = kfuse::host_vector(host_counts, p.layout.experts);
    kfuse::moe_plan(c, matrix<const std::int32_t>(ids, KFUSE_I32, op, "ids"), p, counts);
  });
}

kfuse_status_t kfuse_moe_scatter(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                 const kfuse_matrix_t* X, const kfuse_matrix_t* Xp) {
  static const char* op = "kfuse_moe_scatter";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const kfuse::MoePlan p = plan_of(plan, op);
    dispatch_matrix<float, kfuse::bf16>(X, op, "X", [&](auto zero) {
      using T = decltype(zero);
      kfuse::moe_scatter(c, p, matrix<const T>(X, X->dtype, op, "X"),
                         matrix<T>(Xp, X->dtype, op, "Xp"));
    });
  });
}

kfuse_status_t kfuse_moe_scatter_backward(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                          const kfuse_matrix_t* dXp, const kfuse_matrix_t* dX) {
  static const char* op = "kfuse_moe_scatter_backward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const kfuse::MoePlan p = plan_of(plan, op);
    dispatch_matrix<float, kfuse::bf16>(dXp, op, "dXp", [&](auto zero) {
      using T = decltype(zero);
      kfuse::moe_scatter_backward(c, p, matrix<const T>(dXp, dXp->dtype, op, "dXp"),
                                  matrix<T>(dX, dXp->dtype, op, "dX"));
    });
  });
}

kfuse_status_t kfuse_moe_gather(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                const kfuse_matrix_t* Yp, const kfuse_matrix_t* gates,
                                const kfuse_matrix_t* Y) {
  static const char* op = "kfuse_moe_gather";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const kfuse::MoePlan p = plan_of(plan, op);
    dispatch_matrix<float, kfuse::bf16>(Yp, op, "Yp", [&](auto zero) {
      using T = decltype(zero);
      kfuse::moe_gather(c, p, matrix<const T>(Yp, Yp->dtype, op, "Yp"),
                        matrix<const float>(gates, KFUSE_F32, op, "gates"),
                        matrix<T>(Y, Yp->dtype, op, "Y"));
    });
  });
}

kfuse_status_t kfuse_moe_gather_backward(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                         const kfuse_matrix_t* Yp, const kfuse_matrix_t* gates,
                                         const kfuse_matrix_t* dY, const kfuse_matrix_t* dYp,
                                         const kfuse_matrix_t* dgates) {
  static const char* op = "kfuse_moe_gather_backward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const kfuse::MoePlan p = plan_of(plan, op);
    dispatch_matrix<float, kfuse::bf16>(Yp, op, "Yp", [&](auto zero) {
      using T = decltype(zero);
      const kfuse_dtype_t dt = Yp->dtype;
      kfuse::moe_gather_backward(c, p, matrix<const T>(Yp, dt, op, "Yp"),
                                 matrix<const float>(gates, KFUSE_F32, op, "gates"),
                                 matrix<const T>(dY, dt, op, "dY"), matrix<T>(dYp, dt, op, "dYp"),
                                 matrix<float>(dgates, KFUSE_F32, op, "dgates"));
    });
  });
}

kfuse_status_t kfuse_moe_grouped_gemm(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                      const kfuse_matrix_t* Xp, const kfuse_matrix_t* W,
                                      const kfuse_matrix_t* Yp, int transpose_w) {
  return grouped<false>("kfuse_moe_grouped_gemm", "Xp", ctx, plan, Xp, W, Yp, transpose_w);
}

kfuse_status_t kfuse_moe_gather_gemm(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                     const kfuse_matrix_t* X, const kfuse_matrix_t* W,
                                     const kfuse_matrix_t* Yp, int transpose_w) {
  return grouped<true>("kfuse_moe_gather_gemm", "X", ctx, plan, X, W, Yp, transpose_w);
}

kfuse_status_t kfuse_moe_gemm_combine(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                      const kfuse_matrix_t* Hp, const kfuse_matrix_t* W,
                                      const kfuse_matrix_t* gates, const kfuse_matrix_t* Y,
                                      int transpose_w) {
  static const char* op = "kfuse_moe_gemm_combine";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const kfuse::MoePlan p = plan_of(plan, op);
    kfuse::MoeGemmOptions o;
    o.transpose_w = transpose_w != 0;
    dispatch_matrix<float, kfuse::bf16>(Hp, op, "Hp", [&](auto zero) {
      using T = decltype(zero);
      const kfuse_dtype_t dt = Hp->dtype;
      kfuse::moe_gemm_combine(
          c, p, matrix<const T>(Hp, dt, op, "Hp"), matrix<const T>(W, dt, op, "W"),
          matrix<const float>(gates, KFUSE_F32, op, "gates"), matrix<T>(Y, dt, op, "Y"), o);
    });
  });
}

kfuse_status_t kfuse_moe_grouped_gemm_wgrad(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                            const kfuse_matrix_t* Xp, const kfuse_matrix_t* dYp,
                                            const kfuse_matrix_t* dW) {
  static const char* op = "kfuse_moe_grouped_gemm_wgrad";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const kfuse::MoePlan p = plan_of(plan, op);
    dispatch_matrix<float, kfuse::bf16>(Xp, op, "Xp", [&](auto zero) {
      using T = decltype(zero);
      const kfuse_dtype_t dt = Xp->dtype;
      kfuse::moe_grouped_gemm_wgrad(c, p, matrix<const T>(Xp, dt, op, "Xp"),
                                    matrix<const T>(dYp, dt, op, "dYp"),
                                    matrix<T>(dW, dt, op, "dW"));
    });
  });
}

kfuse_status_t kfuse_moe_mlp_forward(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                     const kfuse_matrix_t* X, const kfuse_matrix_t* gates,
                                     const kfuse_matrix_t* W1, const kfuse_matrix_t* W3,
                                     const kfuse_matrix_t* W2, const kfuse_matrix_t* Y,
                                     const kfuse_matrix_t* h1, const kfuse_matrix_t* h3) {
  static const char* op = "kfuse_moe_mlp_forward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const kfuse::MoePlan p = plan_of(plan, op);
    dispatch_matrix<float, kfuse::bf16>(X, op, "X", [&](auto zero) {
      using T = decltype(zero);
      const kfuse_dtype_t dt = X->dtype;
      const kfuse::MoeMlpWeights<T> w{matrix<const T>(W1, dt, op, "W1"),
                                      matrix<const T>(W3, dt, op, "W3"),
                                      matrix<const T>(W2, dt, op, "W2")};
      const kfuse::MoeMlpSaved<T> saved{optional_matrix<T>(h1, dt, op, "h1"),
                                        optional_matrix<T>(h3, dt, op, "h3")};
      kfuse::moe_mlp_forward(c, p, matrix<const T>(X, dt, op, "X"),
                             matrix<const float>(gates, KFUSE_F32, op, "gates"), w,
                             matrix<T>(Y, dt, op, "Y"), saved);
    });
  });
}

kfuse_status_t kfuse_moe_mlp_backward(kfuse_context_t ctx, const kfuse_moe_plan_t* plan,
                                      const kfuse_matrix_t* X, const kfuse_matrix_t* gates,
                                      const kfuse_matrix_t* W1, const kfuse_matrix_t* W3,
                                      const kfuse_matrix_t* W2, const kfuse_matrix_t* dY,
                                      const kfuse_matrix_t* h1, const kfuse_matrix_t* h3,
                                      const kfuse_matrix_t* dX, const kfuse_matrix_t* dgates,
                                      const kfuse_matrix_t* dW1, const kfuse_matrix_t* dW3,
                                      const kfuse_matrix_t* dW2) {
  static const char* op = "kfuse_moe_mlp_backward";
  return guarded([&] {
    kfuse::Context& c = context_of(ctx, op);
    const kfuse::MoePlan p = plan_of(plan, op);
    dispatch_matrix<float, kfuse::bf16>(X, op, "X", [&](auto zero) {
      using T = decltype(zero);
      const kfuse_dtype_t dt = X->dtype;
      const kfuse::MoeMlpWeights<T> w{matrix<const T>(W1, dt, op, "W1"),
                                      matrix<const T>(W3, dt, op, "W3"),
                                      matrix<const T>(W2, dt, op, "W2")};
      const kfuse::MoeMlpSaved<T> saved{optional_matrix<T>(h1, dt, op, "h1"),
                                        optional_matrix<T>(h3, dt, op, "h3")};
      const kfuse::MoeMlpGrads<T> grads{
          matrix<T>(dX, dt, op, "dX"), matrix<float>(dgates, KFUSE_F32, op, "dgates"),
          matrix<T>(dW1, dt, op, "dW1"), matrix<T>(dW3, dt, op, "dW3"),
          matrix<T>(dW2, dt, op, "dW2")};
      kfuse::moe_mlp_backward(c, p, matrix<const T>(X, dt, op, "X"),
                              matrix<const float>(gates, KFUSE_F32, op, "gates"), w,
                              matrix<const T>(dY, dt, op, "dY"), saved, grads);
    });
  });
}

}  // extern "C"
